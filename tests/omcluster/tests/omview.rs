//! omview (`omd --view`) in a real browser: headless Chromium, driven over the DevTools
//! protocol by omview_driver.py inside node 1 of a 4-node cluster, shows every node as
//! `mosctl status` does and moves a process by drag and drop and by its menu; the
//! screenshots are kept (target/tmp/omview/). Also: moves need the token, and the view
//! answers on localhost only. Needs root and Debian's chromium.

use omcluster::harness::TestCluster;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omcluster");
const PORT: &str = "9724";
const CHROMIUM: &str = "/usr/bin/chromium";

fn tool(name: &str) -> String {
    omcluster::harness::workspace_tool(BIN, name)
}

fn sh(c: &TestCluster, node: u16, script: &str) -> String {
    let o = c.sh(node, script);
    assert!(o.status.success(), "node {node}: {script}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a raw HTTP request `req` to 127.0.0.1:PORT answers, from node 1.
fn http(c: &TestCluster, req: &str) -> String {
    let o = c
        .command(1, "bash")
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/127.0.0.1/{PORT} && printf '%s' \"$REQ\" >&3 && cat <&3"
        ))
        .env("REQ", req)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn where_is(c: &TestCluster, pid: &str) -> String {
    sh(c, 1, &format!("{} where {pid}", tool("mosctl")))
        .trim()
        .to_string()
}

#[test]
fn omview_in_chromium_shows_the_nodes_and_moves_a_process_by_drag_and_by_menu() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing (apt install chromium)"
    );
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let c = omcluster::harness::private_cluster_with(
        BIN,
        "t-omview",
        4,
        (Some("1,1,1,0.5"), None),
        &checkout,
        &["--view", PORT],
    );
    let spin = om_testprogs::build(
        "balance/spin",
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("omview-programs"),
    );
    // A long job, locked at home so that only the page moves it.
    let mut job = c
        .command(1, "sh")
        .arg("-c")
        .arg(format!(
            "mkdir -p /tmp/ov; {} -h {} 1000 > /dev/null & echo $! > /tmp/ov/pid; wait",
            tool("mosrun"),
            spin.display()
        ))
        .spawn()
        .unwrap();
    let t = Instant::now();
    let pid = loop {
        let p = c.sh(1, "cat /tmp/ov/pid 2>/dev/null");
        let p = String::from_utf8_lossy(&p.stdout).trim().to_string();
        if !p.is_empty() {
            break p;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no pid");
        std::thread::sleep(Duration::from_millis(100));
    };

    // Moves need the token; the view answers to local names only.
    let post = |token: &str, host: &str| {
        let body = format!("{{\"pid\": {pid}, \"to\": \"2\"}}");
        http(
            &c,
            &format!(
                "POST /migrate HTTP/1.1\r\nHost: {host}\r\nX-Omview-Token: {token}\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let token = sh(&c, 1, "cat /run/omd/view.token").trim().to_string();
    assert_eq!(token.len(), 64);
    assert!(post("", "127.0.0.1").starts_with("HTTP/1.1 403"));
    assert!(post(&"0".repeat(64), "127.0.0.1").starts_with("HTTP/1.1 403"));
    assert!(post(&token, "evil.example:9724").starts_with("HTTP/1.1 421"));
    assert_eq!(where_is(&c, &pid), "0", "a refused request moved it");
    let far = c.sh(
        2,
        &format!(
            "exec 3<>/dev/tcp/{}/{PORT} && echo reached",
            omcluster::net::node_addr(1)
        ),
    );
    assert!(
        !String::from_utf8_lossy(&far.stdout).contains("reached"),
        "node 2 reached the view"
    );

    // The page in Chromium.
    let driver = checkout.join("tests/omcluster/tests/omview_driver.py");
    let url = format!("http://127.0.0.1:{PORT}/#token={token}");
    let mut d = c
        .command(1, "python3")
        .arg(&driver)
        .args([CHROMIUM, &url, &pid, "3", "/tmp/omview"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(d.stdout.take().unwrap()).lines();
    let mut next = || -> serde_json::Value {
        let l = lines.next().expect("the driver said nothing more").unwrap();
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert!(v.get("error").is_none(), "driver: {v}");
        v
    };

    // Every node, as mosctl status has it just before and just after the page's first
    // update (loads move meanwhile: Chromium starting at node 1 makes them jump).
    let status = || -> om_proto::Status {
        serde_json::from_str(&sh(&c, 1, &format!("{} status --json", tool("mosctl")))).unwrap()
    };
    let before = status();
    let first = next();
    let status = status();
    let bars = first["bars"].as_array().unwrap();
    assert_eq!(bars.len(), 4, "{bars:?}");
    assert_eq!(first["live"], "live");
    for v in &status.nodes {
        let b = bars
            .iter()
            .find(|b| b["node"] == v.node)
            .unwrap_or_else(|| panic!("no bar for node {}", v.node));
        let r = v.record.unwrap();
        assert_eq!(b["up"], v.up, "node {}", v.node);
        assert_eq!(b["speed"], r.speed, "node {}", v.node);
        assert_eq!(b["cpus"], r.cpus, "node {}", v.node);
        // The page's load lies near or between mosctl's two readings.
        let load = b["load"].as_f64().unwrap();
        let now = f64::from(r.load) / 100.0;
        let then = before
            .nodes
            .iter()
            .find(|w| w.node == v.node)
            .and_then(|w| w.record)
            .map_or(now, |w| f64::from(w.load) / 100.0);
        let (lo, hi) = (now.min(then), now.max(then));
        let slack = 0.6 + 0.5 * load.max(hi);
        assert!(
            load >= lo - slack && load <= hi + slack,
            "node {}: {load} against {then} before and {now} after",
            v.node
        );
        let width: f64 = b["width"]
            .as_str()
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        let want = (load / f64::from(r.cpus)).min(1.0) * 100.0;
        assert!(
            (width - want).abs() < 0.5,
            "node {}: bar {width}% for load {load}",
            v.node
        );
        assert!(b["text"]
            .as_str()
            .unwrap()
            .contains(&format!("speed {}", r.speed)));
    }

    // Dragged onto node 3: it runs there.
    let dragged = next();
    assert_eq!(dragged["highlighted"], true, "{dragged}");
    assert_eq!(dragged["moves"][0]["to"], "3", "{dragged}");
    assert_eq!(where_is(&c, &pid), "3");
    let mut stdin = d.stdin.take().unwrap();
    writeln!(stdin).unwrap();
    // Home by its menu.
    let home = next();
    assert_eq!(home["moves"][1]["to"], "home", "{home}");
    let t = Instant::now();
    while where_is(&c, &pid) != "0" {
        assert!(t.elapsed() < Duration::from_secs(20), "not home");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(d.wait().unwrap().success());

    // The screenshots, kept.
    let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("omview");
    std::fs::create_dir_all(&keep).unwrap();
    for shot in ["omview.png", "omview-moved.png"] {
        let o = c
            .command(1, "cat")
            .arg(format!("/tmp/omview/{shot}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{shot}: {o:?}");
        let png = o.stdout;
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{shot}: {} bytes",
            png.len()
        );
        std::fs::write(keep.join(shot), &png).unwrap();
        eprintln!("screenshot: {}", keep.join(shot).display());
    }

    sh(&c, 1, &format!("kill {pid}"));
    let _ = job.wait();
    let left = sh(
        &c,
        1,
        "ps -eo args | grep -c '[b]alance/spin\\|[s]pin 1000' || true",
    );
    assert_eq!(left.trim(), "0", "the job is gone");
}
