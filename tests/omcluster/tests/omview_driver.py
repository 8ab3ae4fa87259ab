#!/usr/bin/env python3
"""Drives omview in headless Chromium for tests/omcluster/tests/omview.rs, over the
DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ending in NUL, on
descriptors 3 and 4), with nothing but Python's standard library. Runs inside the node
that serves the page.

    omview_driver.py CHROMIUM URL PID NODE OUTDIR

1. Loads URL and waits for the page's first state; prints {"bars": [...]} (what each
   node's box shows, once the loads have settled) and saves OUTDIR/omview.png.
2. Drags the row of process PID onto node NODE's box with the mouse (press, moves,
   release: real input events), waits until the page shows PID at NODE, prints
   {"dragged": ...}, saves OUTDIR/omview-moved.png, and waits for a line on stdin.
3. Clicks the "home" button of PID's row, waits until the page shows it home, prints
   {"home": ...}.
Every wait is bounded; a failure prints {"error": ...} and exits 1.
"""
import base64
import json
import os
import subprocess
import sys
import time


class Browser:
    def __init__(self, chromium, profile, log):
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()

        def fds():
            os.dup2(cmd_r, 3)
            os.dup2(out_w, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-pipe", "--window-size=1280,860",
             "--user-data-dir=" + profile, "about:blank"],
            preexec_fn=fds, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=log)
        os.close(cmd_r)
        os.close(out_w)
        self.w = os.fdopen(cmd_w, "wb", buffering=0)
        self.r = os.fdopen(out_r, "rb", buffering=0)
        self.buf = b""
        self.next_id = 0
        self.session = None

    def send(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self.w.write(json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = self.r.read(65536)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url):
        target = self.send("Target.createTarget", {"url": url}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True}, session=False)["sessionId"]

    def js(self, expression):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def mouse(self, kind, x, y, buttons=0):
        self.send("Input.dispatchMouseEvent",
                  {"type": kind, "x": x, "y": y, "button": "left" if kind != "mouseMoved" or buttons else "none",
                   "buttons": buttons, "clickCount": 1 if kind != "mouseMoved" else 0})

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait(what, f, limit=30):
    end = time.time() + limit
    while time.time() < end:
        v = f()
        if v:
            return v
        time.sleep(0.2)
    raise RuntimeError("not within %d s: %s" % (limit, what))


def say(**kw):
    print(json.dumps(kw), flush=True)


def center(b, selector):
    r = b.js("(() => { const e = document.querySelector(%s); if (!e) return null; "
             "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
             % json.dumps(selector))
    if not r:
        raise RuntimeError("nothing on the page matches " + selector)
    return r


def where_shown(b, pid):
    return b.js("(() => { const s = window.omview.state; const p = s && s.processes.find(p => p.pid === %d);"
                " return p ? p.node : null; })()" % pid)


def main():
    chromium, url, pid, node, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "chromium.log")
    # A browser that dies at its very first start (it happened once, on a fresh
    # profile) is started once more.
    for attempt in (1, 2):
        b = Browser(chromium, os.path.join(out, "profile"), open(log_path, "w"))
        try:
            b.open(url)
            break
        except (OSError, RuntimeError) as e:
            b.close()
            if attempt == 2:
                say(error="chromium did not start: %s" % e)
                sys.exit(1)
    try:
        wait("the page's first state", lambda: b.js("!!(window.omview && window.omview.state)"))
        wait("process %d listed" % pid,
             lambda: b.js("!!document.querySelector('tr.proc[data-pid=\"%d\"]')" % pid))
        # Chromium's start makes this node's load jump: wait until it settles (two
        # states a second apart within 10%), so that the bars can be held against
        # mosctl's numbers.
        prev = []

        def settled():
            loads = b.js("window.omview.state.nodes.map(n => n.load)")
            ok = prev and all(abs(a - c) <= 0.1 * max(a, c) + 0.05 for a, c in zip(loads, prev[-1]))
            prev.append(loads)
            time.sleep(0.8)
            return ok
        wait("the loads settle", settled)
        bars = b.js("[...document.querySelectorAll('.node')].map(n => ({node: +n.dataset.node,"
                    " up: n.dataset.up === 'true', load: +n.dataset.load, speed: +n.dataset.speed,"
                    " cpus: +n.dataset.cpus, width: n.querySelector('.load > div').style.width,"
                    " text: n.innerText}))")
        say(bars=bars, live=b.js("document.getElementById('conn').textContent"))
        b.screenshot(os.path.join(out, "omview.png"))

        # Drag the row onto the node's box.
        x0, y0 = center(b, 'tr.proc[data-pid="%d"] td.cmd' % pid)
        x1, y1 = center(b, '.node[data-node="%d"]' % node)
        b.mouse("mouseMoved", x0, y0)
        b.mouse("mousePressed", x0, y0, 1)
        for i in range(1, 11):
            b.mouse("mouseMoved", x0 + (x1 - x0) * i / 10, y0 + (y1 - y0) * i / 10, 1)
        highlighted = b.js("!!document.querySelector('.node.drop[data-node=\"%d\"]')" % node)
        b.mouse("mouseReleased", x1, y1, 1)
        wait("the page shows %d at node %d" % (pid, node), lambda: where_shown(b, pid) == node)
        say(dragged=True, highlighted=highlighted, moves=b.js("window.omview.moves"),
            message=b.js("document.getElementById('message').textContent"))
        b.screenshot(os.path.join(out, "omview-moved.png"))
        sys.stdin.readline()

        # Its menu: the "home" button.
        x, y = center(b, 'tr.proc[data-pid="%d"] button.go[data-to="home"]' % pid)
        b.mouse("mouseMoved", x, y)
        b.mouse("mousePressed", x, y, 1)
        b.mouse("mouseReleased", x, y, 1)
        wait("the page shows %d home" % pid, lambda: where_shown(b, pid) == 0)
        say(home=True, moves=b.js("window.omview.moves"))
    except Exception as e:
        with open(log_path) as f:
            tail = [l for l in f.read().splitlines() if "dbus" not in l][-5:]
        say(error=str(e), chromium=tail)
        sys.exit(1)
    finally:
        b.close()


main()
