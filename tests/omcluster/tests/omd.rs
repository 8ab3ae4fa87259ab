//! omd in a real cluster: membership, load, gossip, failure, authentication, and the
//! tools and files that show them. Needs root. Every test starts its own cluster with an
//! omd in every node (a fresh cluster key each time).

use om_proto::{NodeRecord, Status};
use omcluster::harness::TestCluster;
use omcluster::{ClusterSpec, DaemonSpec};
use omd::wire::{self, Key, Packet, WireRecord};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omcluster");

fn tool(name: &str) -> String {
    omcluster::harness::workspace_tool(BIN, name)
}

fn cluster(name: &str, nodes: usize, cpu: Option<&str>, down_after: &str) -> TestCluster {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the omd tests must run as root"
    );
    let mut spec = ClusterSpec::new(name, nodes, cpu, None).unwrap();
    spec.daemon = Some(DaemonSpec {
        bin: PathBuf::from(tool("omd")),
        args: vec![format!("--down-after={down_after}")],
    });
    TestCluster::up_with(&spec, BIN).unwrap_or_else(|e| panic!("omcluster up {name}: {e}"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed ({}): {}{}",
        o.status,
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    text(&o)
}

/// Runs a tool of the workspace inside `node`.
fn run(c: &TestCluster, node: u16, tool_name: &str, args: &[&str]) -> Output {
    c.command(node, &tool(tool_name))
        .args(args)
        .output()
        .unwrap()
}

fn status(c: &TestCluster, node: u16) -> Status {
    serde_json::from_str(&ok(run(c, node, "mosctl", &["status", "--json"]))).unwrap()
}

/// Polls `f` every 200 ms until it gives `Some`, or panics after `limit` saying `what`.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn record(s: &Status, node: u16) -> (bool, NodeRecord) {
    let v = s
        .nodes
        .iter()
        .find(|n| n.node == node)
        .expect("node listed");
    (v.up, v.record.unwrap_or_default())
}

#[test]
fn four_nodes_know_each_other_and_the_tools_agree() {
    let c = cluster("t-omd4", 4, Some("1,1,1,0.25"), "4");
    let started = Instant::now();
    // Gossip converges in about 3 s; node 4 has a quarter of a CPU, and on a machine
    // busy with other tests (CI once missed 5 s) its omd answers late.
    for node in 1..=4u16 {
        let s = wait_for(Duration::from_secs(15), "all four nodes up", || {
            let s = status(&c, node);
            s.nodes.iter().all(|n| n.up).then_some(s)
        });
        assert_eq!(s.node, node);
        assert_eq!(s.nodes.len(), 4);
        for n in &s.nodes {
            let r = n.record.unwrap();
            assert!(r.load < 1000, "idle node {} has load {}", n.node, r.load);
            assert!(r.speed > 100, "node {} speed {}", n.node, r.speed);
            assert_eq!(r.cpus, 1, "node {} is capped to at most one CPU", n.node);
            assert_eq!(r.tmem, 1 << 30, "node {} has a 1 GiB memory limit", n.node);
            assert!(r.mem > 0 && r.mem <= r.tmem && r.free <= r.tmem);
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // A quarter of a CPU is a slower node.
    let s = status(&c, 2);
    let full = record(&s, 1).1.speed;
    let quarter = record(&s, 4).1.speed;
    assert!(
        f64::from(quarter) < f64::from(full) * 0.5,
        "0.25 CPU: speed {quarter}, 1 CPU: speed {full}"
    );

    // The /proc-style files and mosctl give the same numbers.
    let mosctl = tool("mosctl");
    for node in 1..=4 {
        for (file, get) in [("speed", "getspeed"), ("tmem", "getmem"), ("CPUs", "")] {
            let script = if get.is_empty() {
                format!("cat /run/hpc/nodes/{node}/{file}")
            } else {
                format!("cat /run/hpc/nodes/{node}/{file}; {mosctl} {get} {node}")
            };
            let out = ok(c.sh(1, &script));
            let lines: Vec<&str> = out.lines().collect();
            if file == "tmem" {
                // getmem is the memory available, tmem the total: both from one record.
                let avail: u64 = lines[1].parse().unwrap();
                assert!(avail <= lines[0].parse().unwrap());
            } else if file == "speed" {
                assert_eq!(lines[0], lines[1], "node {node} {file}");
            } else {
                assert_eq!(lines[0], "1");
            }
        }
        let out = ok(c.sh(
            1,
            &format!("cat /run/hpc/nodes/{node}/status; {mosctl} status {node}"),
        ));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, ["up", "up"]);
    }
    // Load changes all the time; the file and the command agree on an idle node
    // whenever both read the same record (retry across a record update).
    wait_for(
        Duration::from_secs(5),
        "file and mosctl agree on load",
        || {
            let out = ok(c.sh(1, &format!("cat /run/hpc/nodes/3/load; {mosctl} getload 3")));
            let l: Vec<&str> = out.lines().collect();
            (l[0] == l[1]).then_some(())
        },
    );

    // mtop --json shows this node's own record: the same speed and memory as mosctl.
    let mtop: serde_json::Value =
        serde_json::from_str(&ok(run(&c, 2, "mtop", &["--json", "-d", "0.3"]))).unwrap();
    assert_eq!(mtop["node"], 2);
    assert_eq!(
        mtop["speed"].to_string(),
        ok(run(&c, 2, "mosctl", &["getspeed"])).trim()
    );
    assert_eq!(mtop["tmem"], 1u64 << 30);
    assert!(mtop["processes"].as_array().unwrap().len() >= 2);

    // mps lists a process started in the node, at home (node 0), and its pid only.
    let out = ok(c.sh(
        3,
        &format!(
            "sleep 30 & p=$!; {} --json $p; {} $p; kill $p",
            tool("mps"),
            tool("mps")
        ),
    ));
    let (json, table) = out.split_at(out.rfind("  PID").unwrap());
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let procs = v["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{json}");
    assert_eq!(procs[0]["comm"], "sleep");
    assert_eq!(procs[0]["node"], 0);
    let row = table.lines().nth(1).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cols[0], cols[2]),
        (procs[0]["pid"].to_string().as_str(), "0"),
        "{row}"
    );

    // setpe -r prints the map in use; it is the cluster's map.
    let out = ok(c.sh(
        1,
        &format!(
            "{0} -r -f /run/map.txt && {0} -c -f /run/map.txt",
            tool("setpe")
        ),
    ));
    assert!(out.contains("OK: 4 node(s), numbers 1 to 4"), "{out}");
}

#[test]
fn settings_through_mosctl_and_files_need_root() {
    let c = cluster("t-omdset", 2, None, "4");
    // Root sets block by file; mosctl and the other node see it.
    ok(c.sh(1, "echo 1 > /run/hpc/admin/block"));
    assert_eq!(ok(c.sh(1, "cat /run/hpc/admin/block")), "1\n");
    let s = status(&c, 1);
    assert_eq!(s.settings, vec![om_proto::Setting::Block]);
    wait_for(Duration::from_secs(5), "node 2 sees node 1 blocked", || {
        let out = ok(run(&c, 2, "mosctl", &["status", "1"]));
        (out == "up block\n").then_some(())
    });
    ok(run(&c, 1, "mosctl", &["noblock"]));
    assert_eq!(ok(c.sh(1, "cat /run/hpc/admin/block")), "0\n");
    ok(run(&c, 1, "mosctl", &["setspeed", "4321"]));
    assert_eq!(ok(c.sh(1, "cat /run/hpc/admin/speed")), "4321\n");
    assert_eq!(ok(run(&c, 1, "mosctl", &["getspeed"])), "4321\n");

    // An ordinary user may look but not change anything (with a copy of mosctl it can
    // reach wherever the checkout is).
    let mosctl = c.for_everyone(1, &tool("mosctl"));
    let as_nobody = |cmd: &str| c.sh_as_nobody(1, cmd);
    let o = as_nobody(&format!("{mosctl} block"));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs root (you are uid 65534)"),
        "{o:?}"
    );
    let o = as_nobody("echo 1 > /run/hpc/admin/block");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{o:?}"
    );
    assert_eq!(ok(as_nobody(&format!("{mosctl} getspeed"))), "4321\n");
    assert!(status(&c, 1).settings.is_empty());
}

#[test]
fn a_busy_node_shows_its_load_elsewhere_and_it_decays() {
    let c = cluster("t-omdload", 4, None, "5");
    // How fast news spreads is another test's subject; here it only has to arrive (the
    // suite starts many clusters at once, and each omd first measures its speed).
    wait_for(Duration::from_secs(15), "node 4 sees node 2", || {
        record(&status(&c, 4), 2).0.then_some(())
    });
    let before = record(&status(&c, 4), 2).1.load;
    // The loop runs until the rise has been seen (SIGTERM to `omcluster exec` is passed on
    // to timeout(1), which passes it on to the shell); `timeout` bounds it if the test
    // dies first.
    let mut spin = c
        .command(2, "timeout")
        .args(["60", "sh", "-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    // Like the sight above, the rise only has to arrive: under a loaded machine starting
    // the loop, measuring a full second and a few hops of gossip can take several seconds.
    let peak = wait_for(
        Duration::from_secs(20),
        "node 2's load rises at node 4",
        || {
            let l = record(&status(&c, 4), 2).1.load;
            (l >= before + 50).then_some(l)
        },
    );
    // A little longer, so that node 2 has measured whole seconds of the loop.
    std::thread::sleep(Duration::from_secs(2));
    let ended = omcluster::harness::terminate(&mut spin);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&ended),
        Some(nix::sys::signal::Signal::SIGTERM as i32),
        "the loop ended by the SIGTERM passed on: {ended}"
    );
    // The exported load rises at once, so the highest it got is about what node 4 shows
    // when the loop ends (the first sight above may have been of a partial second); it
    // then halves about every 3 s, plus the time news takes to travel.
    let peak = peak.max(record(&status(&c, 4), 2).1.load);
    wait_for(
        Duration::from_secs(25),
        "node 2's load decays at node 4",
        || {
            let l = record(&status(&c, 4), 2).1.load;
            (l < peak / 2).then_some(())
        },
    );
}

#[test]
fn a_dead_omd_is_shown_down_and_comes_back() {
    let c = cluster("t-omddown", 3, None, "3");
    for node in [1, 2] {
        wait_for(Duration::from_secs(5), "all up at nodes 1 and 2", || {
            status(&c, node).nodes.iter().all(|n| n.up).then_some(())
        });
    }
    // How old node 3's news already is at nodes 1 and 2 when it dies: each may show it
    // down once its freshest record is --down-after (3 s) old, and not before.
    let age_before = |node: u16| {
        status(&c, node)
            .nodes
            .iter()
            .find(|n| n.node == 3)
            .and_then(|n| n.age_ms)
            .expect("node 3 was heard of")
    };
    let t = Instant::now();
    let ages = [age_before(1), age_before(2)];
    ok(c.sh(3, "kill $(cat /run/omd/omd.pid)"));
    for (i, node) in [1, 2].into_iter().enumerate() {
        wait_for(Duration::from_secs(6), "node 3 shown down", || {
            (!record(&status(&c, node), 3).0).then_some(())
        });
        // The clock started before the ages were read, so this over-estimates the age by
        // the time the status calls took: the check can only err towards passing.
        let age = Duration::from_millis(ages[i]) + t.elapsed();
        assert!(
            age >= Duration::from_millis(2800),
            "node {node} showed node 3 down when its news was only {age:?} old"
        );
    }
    let o = run(&c, 1, "mosctl", &["isup", "3"]);
    assert_eq!((text(&o).as_str(), o.status.code()), ("down\n", Some(1)));
    // It cleaned up after itself: no socket, no mounted tree.
    let o = run(&c, 3, "mosctl", &["status"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("omd is not running on this node"));
    assert_eq!(ok(c.sh(3, "ls /run/hpc | wc -l")).trim(), "0");

    ok(c.command(3, &tool("omd"))
        .args(["--log", "/run/omd/omd.log", "--down-after=3"])
        .output()
        .unwrap());
    for node in [1, 2] {
        wait_for(Duration::from_secs(10), "node 3 up again", || {
            record(&status(&c, node), 3).0.then_some(())
        });
    }
}

/// A user who floods the control socket (omd was OOM-killed by 70 connections that each
/// sent 15 MiB without a newline) gets at most `PER_USER` connections, each line cut at
/// 64 KiB, and omd's memory barely moves while root's `mosctl status` still answers.
#[test]
fn a_user_flooding_the_control_socket_gets_bounded_and_others_are_served() {
    let c = cluster("t-omdflood", 1, None, "4");
    let mosctl = c.for_everyone(1, &tool("mosctl"));
    let script = format!(
        r#"python3 - <<'EOF'
import socket, subprocess, time
pid = open("/run/omd/omd.pid").read().strip()
def hwm():
    for l in open(f"/proc/{{pid}}/status"):
        if l.startswith("VmHWM:"):
            return int(l.split()[1])
before = hwm()
conns = []
for _ in range(48):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/run/omd/control.sock")
    conns.append(s)
time.sleep(1)
refused, held = 0, []
for s in conns:
    s.settimeout(0.05)
    try:
        got = s.recv(4096)
    except socket.timeout:
        held.append(s)
        continue
    refused += b"too many connections" in got
chunk = b"x" * (1 << 20)
for s in held:
    s.settimeout(5)
    try:
        s.sendall(chunk)
    except OSError:
        pass
cut = 0
for s in held:
    s.settimeout(0.5)
    try:
        cut += b"request longer than 65536 bytes" in s.recv(4096)
    except OSError:
        pass
st = subprocess.run(["{mosctl}", "status"], capture_output=True).returncode
print(f"refused={{refused}} held={{len(held)}} cut={{cut}} status={{st}} grew_kib={{hwm() - before}}")
EOF"#
    );
    let out = ok(c.sh_as_nobody(1, &script));
    let field = |k: &str| -> i64 {
        out.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {out}"))
    };
    assert_eq!((field("refused"), field("held")), (16, 32), "{out}");
    assert_eq!(field("cut"), 32, "{out}");
    assert_eq!(field("status"), 0, "{out}");
    assert!(
        field("grew_kib") < 16 << 10,
        "omd's peak memory grew: {out}"
    );
    // Root answers as ever.
    ok(run(&c, 1, "mosctl", &["status"]));
}

/// For the test below, run inside a node (elsewhere it does nothing): opens a migration
/// link to `$OMTEST_LINK_TO` with the key at `$OMTEST_LINK_KEY`, saying it is node
/// `$OMTEST_LINK_AS`, asks something (`$OMTEST_LINK_ASK`: `moveon`, or `pages` to offer a
/// page link for a migration nobody accepted), and prints what became of it.
#[test]
fn link_peer_helper() {
    use om_migrate::{Conn, Setup};
    let var = |k: &str| std::env::var(k).ok();
    let (Some(to), Some(key), Some(claim)) = (
        var("OMTEST_LINK_TO"),
        var("OMTEST_LINK_KEY"),
        var("OMTEST_LINK_AS"),
    ) else {
        return;
    };
    let key = omd::key::load(Path::new(&key)).unwrap();
    let s = std::net::TcpStream::connect(&to).unwrap();
    let conn = match Conn::open(s, &key, claim.parse().unwrap(), 1) {
        Ok(c) => c,
        Err(e) => return println!("link: dropped ({e})"),
    };
    if var("OMTEST_LINK_ASK").as_deref() == Some("pages") {
        conn.send(&Setup::PagesFor(0x5eed)).unwrap();
    } else {
        conn.send(&Setup::MoveOn { pid: 1, to: 2 }).unwrap();
    }
    match conn.recv::<Setup>(Some(Duration::from_secs(5))) {
        Ok(Some(m)) => println!("link: answered {m:?}"),
        Ok(None) => println!("link: no answer"),
        Err(e) => println!("link: dropped ({e})"),
    }
}

/// A node that holds the key but says it is another is dropped: node 3 saying it is node
/// 2 gets no answer, and node 1 says why; saying it is itself, it is answered.
#[test]
fn a_peer_that_says_it_is_another_node_is_dropped() {
    let c = cluster("t-omdlie", 3, None, "4");
    let at1 = status(&c, 1)
        .nodes
        .iter()
        .find(|n| n.node == 1)
        .map(|n| n.addr.clone())
        .expect("node 1's address");
    // Every node has the cluster key at the usual place.
    let key = "/etc/omd/cluster.key";
    let me = std::env::current_exe().unwrap();
    let ask = |claim: &str, what: &str| {
        let o = c
            .command(3, me.to_str().unwrap())
            .args([
                "--exact",
                "link_peer_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("OMTEST_LINK_TO", format!("{at1}:723"))
            .env("OMTEST_LINK_KEY", key)
            .env("OMTEST_LINK_AS", claim)
            .env("OMTEST_LINK_ASK", what)
            .output()
            .unwrap();
        let out = text(&o);
        // The test harness prints the helper's line after its own "test ... ".
        out.lines()
            .find_map(|l| l.find("link: ").map(|i| l[i..].to_string()))
            .unwrap_or_else(|| panic!("no link line: {out}{}", String::from_utf8_lossy(&o.stderr)))
    };
    let honest = ask("3", "moveon");
    assert!(honest.starts_with("link: answered Refuse"), "{honest}");
    let lie = ask("2", "moveon");
    assert!(
        lie.starts_with("link: dropped") || lie == "link: no answer",
        "{lie}"
    );
    let log = ok(c.sh(1, "cat /run/omd/omd.log"));
    assert!(
        log.contains("it says it is node 2, which the map puts elsewhere"),
        "{log}"
    );
    let links = |s: Status| s.links.expect("migration runs in omd");
    assert!(links(status(&c, 1)).wrong_node >= 1);

    // A page link for a migration node 1 never accepted from node 3 is dropped at once
    // and counted, and holds nothing: omd's descriptors come back to what they were.
    let fds = || {
        let o = ok(c.sh(1, "ls /proc/$(cat /run/omd/omd.pid)/fd | wc -l"));
        o.trim().parse::<usize>().unwrap()
    };
    let (held, stray) = (fds(), links(status(&c, 1)).stray_pages);
    for _ in 0..5 {
        let got = ask("3", "pages");
        assert!(
            got.starts_with("link: dropped") || got == "link: no answer",
            "{got}"
        );
    }
    assert_eq!(links(status(&c, 1)).stray_pages, stray + 5);
    wait_for(Duration::from_secs(5), "node 1's descriptors back", || {
        (fds() <= held).then_some(())
    });
}

/// An omd killed outright (SIGKILL, as the OOM killer does) leaves its tree mounted with
/// nobody serving it; the next omd must unmount it and serve again. Meanwhile no ordinary
/// user can take its port.
#[test]
fn an_omd_killed_outright_comes_back_and_serves_its_tree() {
    let c = cluster("t-omdkill", 2, None, "3");
    wait_for(Duration::from_secs(5), "the tree at node 2", || {
        let o = c.sh(2, "ls /run/hpc/nodes");
        (o.status.success() && text(&o).contains('1')).then_some(())
    });
    ok(c.sh(2, "kill -9 $(cat /run/omd/omd.pid)"));
    wait_for(Duration::from_secs(5), "a dead tree at node 2", || {
        let o = c.sh(2, "ls /run/hpc 2>&1");
        (!o.status.success() && text(&o).contains("not connected")).then_some(())
    });
    // While omd is down, an ordinary user cannot take its port (a privileged one).
    let squat = c.sh_as_nobody(
        2,
        "python3 -c \"import socket; [socket.socket(socket.AF_INET, t).bind(('', 723)) for t in (socket.SOCK_STREAM, socket.SOCK_DGRAM)]\" 2>&1",
    );
    assert!(!squat.status.success(), "nobody took port 723: {squat:?}");
    assert!(
        text(&squat).contains("Permission denied"),
        "{}",
        text(&squat)
    );
    // Fails ("cannot mount ... File exists") if the dead tree is in the way.
    ok(c.command(2, &tool("omd"))
        .args(["--log", "/run/omd/omd.log", "--down-after=3"])
        .output()
        .unwrap());
    wait_for(Duration::from_secs(5), "the tree served again", || {
        let o = c.sh(2, "cat /run/hpc/nodes/2/speed");
        (o.status.success() && !text(&o).trim().is_empty()).then_some(())
    });
    ok(run(&c, 2, "mosctl", &["status"]));
}

/// Node 1's copy of the cluster key.
fn key_of_node1(c: &TestCluster) -> Key {
    let file = format!(
        "/run/omcluster/{}/node1/etc.upper/omd/cluster.key",
        c.name()
    );
    omd::key::load(Path::new(&file)).unwrap()
}

/// A packet from node 1 with sequence number `seq` and a record that must never be
/// believed (load 99,999, 1 byte of memory).
fn evil_packet(seq: u64) -> Packet {
    Packet {
        sender: 1,
        seq,
        records: vec![WireRecord {
            node: 1,
            age_ms: 0,
            record: NodeRecord {
                load: 99_999,
                speed: 1,
                cpus: 1,
                tmem: 1,
                ..Default::default()
            },
        }],
    }
}

#[test]
fn forged_truncated_replayed_and_random_packets_are_dropped_and_counted() {
    // Two nodes: node 2 hears node 1 only from node 1 itself, so the replayed packet's
    // sequence number is surely an old one there.
    let c = cluster("t-omdauth", 2, None, "4");
    wait_for(Duration::from_secs(5), "node 2 hears node 1", || {
        record(&status(&c, 2), 1).0.then_some(())
    });
    let key = key_of_node1(&c);
    let packet = evil_packet;
    let forged = wire::encode(&Key([7; 32]), &packet(u64::MAX), 2);
    let replayed = wire::encode(&key, &packet(1), 2);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("t-omdauth");
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        ("forged", forged.to_vec()),
        ("truncated", replayed[..100].to_vec()),
        ("replayed", replayed.to_vec()),
        (
            "random-exact",
            omd::key::random().unwrap().0.repeat(45)[..wire::PACKET_LEN].to_vec(),
        ),
        ("random-short", b"\x01\x02 not a gossip packet".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let before = status(&c, 2).counters;
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for f in {:?}:\n    s.sendto(open('{}/' + f, 'rb').read(), ('198.18.0.2', 723))\n",
        files.iter().map(|f| f.0).collect::<Vec<_>>(),
        dir.display()
    );
    ok(c.command(1, "python3")
        .args(["-c", &script])
        .output()
        .unwrap());
    let after = wait_for(Duration::from_secs(5), "five drops counted", || {
        let a = status(&c, 2).counters;
        (a.dropped() >= before.dropped() + 5).then_some(a)
    });
    assert_eq!(
        after.bad_tag - before.bad_tag,
        2,
        "forged + random of the right size"
    );
    assert_eq!(
        after.malformed - before.malformed,
        2,
        "truncated + short random"
    );
    assert_eq!(after.replayed - before.replayed, 1);
    // Never acted on: node 1 is still up at node 2 with its real numbers.
    std::thread::sleep(Duration::from_millis(1500));
    let (up, r) = record(&status(&c, 2), 1);
    assert!(up);
    assert_ne!(r.load, 99_999);
    assert_ne!(r.tmem, 1);
    let text = ok(run(&c, 2, "mosctl", &["status"]));
    assert!(
        text.contains("bad tag 2, malformed 2, replayed 1"),
        "{text}"
    );
}

/// A packet is good only at the node it was sent to: one that node 1 sent to node 2,
/// replayed at node 3 (where its sequence number is new), fails its tag there and is
/// never acted on.
#[test]
fn a_packet_replayed_at_another_node_is_dropped() {
    let c = cluster("t-omdrelay", 3, None, "4");
    wait_for(Duration::from_secs(5), "node 3 hears node 1", || {
        record(&status(&c, 3), 1).0.then_some(())
    });
    let key = key_of_node1(&c);
    let packet = evil_packet(u64::MAX / 2);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("t-omdrelay");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("for-node2"), wire::encode(&key, &packet, 2)).unwrap();
    let before = status(&c, 3).counters;
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(open('{}/for-node2', 'rb').read(), ('198.18.0.3', 723))\n",
        dir.display()
    );
    ok(c.command(1, "python3")
        .args(["-c", &script])
        .output()
        .unwrap());
    let after = wait_for(
        Duration::from_secs(5),
        "the replay counted at node 3",
        || {
            let a = status(&c, 3).counters;
            (a.dropped() > before.dropped()).then_some(a)
        },
    );
    assert_eq!(after.bad_tag - before.bad_tag, 1);
    let (_, r) = record(&status(&c, 3), 1);
    assert_ne!(r.load, 99_999, "node 3 took node 2's packet");
}

/// An announcement (`omd --discover`) of node `sender` at `addr`, signed with `key`.
fn announcement(key: &Key, sender: u16, addr: &str) -> String {
    let a = wire::Announcement {
        sender,
        seq: u64::MAX / 2,
        addr: addr.parse().unwrap(),
        port: 723,
        record: NodeRecord {
            speed: 10_000,
            cpus: 1,
            tmem: 1 << 30,
            ..Default::default()
        },
    };
    wire::encode_announcement(key, &a)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The nodes and addresses of `showmap --json` at `node`.
fn shown_map(c: &TestCluster, node: u16) -> Vec<(u16, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(run(c, node, "showmap", &["--json"]))).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_u64().unwrap() as u16,
                n["address"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `omd --discover` with no map file: the nodes find each other, a silent one goes down
/// and joins again when it is back, announcements that lie are refused, and a job moves
/// between discovered nodes.
#[test]
fn nodes_without_a_map_discover_each_other_and_refuse_lying_announcements() {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let omd_args = ["--discover", "--down-after", "3"];
    let mut spec = ClusterSpec::new("t-discover", 3, None, None).unwrap();
    spec.map = false;
    spec.fs = omcluster::spec::FsSpec::private(Some(&checkout), vec![]);
    spec.daemon = Some(DaemonSpec {
        bin: PathBuf::from(tool("omd")),
        args: omd_args.iter().map(|a| a.to_string()).collect(),
    });
    // Returns once every node sees every other.
    let c = omcluster::harness::up_and_all_seen(&spec, BIN);
    let addrs: Vec<(u16, String)> = (1..=3)
        .map(|n| (n, omcluster::net::node_addr(n).to_string()))
        .collect();
    for n in 1..=3 {
        let o = c.sh(n, "test ! -e /etc/openmosix.map");
        assert!(o.status.success(), "node {n} has a map file");
        assert_eq!(shown_map(&c, n), addrs, "showmap at node {n}");
        assert_eq!(status(&c, n).counters.discovered, 2, "at node {n}");
    }

    // A silent node goes down; back, it joins again within seconds.
    let o = c.sh(3, "kill $(cat /run/omd/omd.pid)");
    assert!(o.status.success(), "{o:?}");
    wait_for(Duration::from_secs(15), "node 3 down at node 1", || {
        (!record(&status(&c, 1), 3).0).then_some(())
    });
    assert_eq!(shown_map(&c, 1), addrs, "a down node stays in the map");
    let omd = tool("omd");
    let mut again = vec!["--log", "/run/omd/omd.log"];
    again.extend(omd_args);
    ok(c.command(3, &omd).args(&again).output().unwrap());
    let back = Instant::now();
    // (Node 3 starts alone in its map.)
    let up_at = |s: &Status, n: u16| s.nodes.iter().any(|v| v.node == n && v.up);
    wait_for(Duration::from_secs(10), "node 3 back everywhere", || {
        let s1 = status(&c, 1);
        let s3 = status(&c, 3);
        (up_at(&s1, 3) && up_at(&s3, 1) && up_at(&s3, 2)).then_some(())
    });
    eprintln!("node 3 rejoined in {:?}", back.elapsed());

    // Lies, sent from node 2 to the group: another key; the key, but an address it is
    // not sent from; node 1's number at node 2's address; a new number at node 2's
    // address. None changes a map, each is counted.
    let key = key_of_node1(&c);
    let lies = [
        announcement(&Key([7; 32]), 9, "198.18.0.2"),
        announcement(&key, 9, "198.18.0.9"),
        announcement(&key, 1, "198.18.0.2"),
        announcement(&key, 9, "198.18.0.2"),
    ];
    let before = status(&c, 3).counters;
    let script = "import socket, sys\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        s.bind(('198.18.0.2', 0))\n\
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('198.18.0.2'))\n\
        for h in sys.argv[1:]:\n    s.sendto(bytes.fromhex(h), ('239.255.72.3', 723))\n";
    ok(c.command(2, "python3")
        .args(["-c", script])
        .args(&lies)
        .output()
        .unwrap());
    let after = wait_for(
        Duration::from_secs(5),
        "four lies counted at node 3",
        || {
            let a = status(&c, 3).counters;
            (a.dropped() >= before.dropped() + 4).then_some(a)
        },
    );
    assert_eq!(after.bad_tag - before.bad_tag, 1, "another key");
    assert_eq!(after.misplaced - before.misplaced, 3, "the key, but lies");
    for n in 1..=3 {
        assert_eq!(shown_map(&c, n), addrs, "after the lies, at node {n}");
    }
    let text = ok(run(&c, 3, "mosctl", &["status"]));
    assert!(text.contains("Discovery: 2 node(s) found"), "{text}");

    // The discovered map is good for migration too.
    let job = "echo 'scale=1200; 4*a(1)' | bc -l";
    let native = ok(c.sh(1, job));
    let moved = ok(c.sh(
        1,
        &job.replace("bc -l", &format!("{} -2 bc -l", tool("mosrun"))),
    ));
    assert_eq!(moved, native);
    let log = ok(c
        .command(2, "cat")
        .arg("/run/omd/omd.log")
        .output()
        .unwrap());
    assert!(log.contains("guest arrived"), "{log}");
}
