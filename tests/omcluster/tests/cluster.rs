//! omcluster against the real kernel: namespaces, veths, cgroups, processes. Needs root.
//!
//! Every test brings up its own cluster under its own name, through the same harness the
//! migration tests use, and checks what a user of the cluster would see.

use omcluster::harness::TestCluster;
use omcluster::{cgroup::Cgroups, net, ClusterSpec};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omcluster");

fn cluster(name: &str, nodes: usize, cpu: Option<&str>, mem: Option<&str>) -> TestCluster {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the omcluster tests must run as root"
    );
    let spec = ClusterSpec::new(name, nodes, cpu, mem).unwrap();
    TestCluster::up_with(&spec, BIN).unwrap_or_else(|e| panic!("omcluster up {name}: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}): stdout: {} stderr: {}",
        o.status,
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

fn omcluster(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Runs a Python script inside `node`.
fn python(c: &TestCluster, node: u16, script: &str) -> Output {
    c.command(node, "python3")
        .args(["-c", script])
        .output()
        .unwrap()
}

/// Everything of a cluster that the host can see: namespaces, cgroups, processes.
fn traces_of(name: &str) -> Vec<String> {
    let mut found = net::cluster_namespaces(name);
    let cg = Cgroups::detect().unwrap();
    found.extend(
        cg.cluster_dirs(name)
            .into_iter()
            .filter(|d| d.exists())
            .map(|d| d.display().to_string()),
    );
    let ps = ok(Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap());
    found.extend(
        ps.lines()
            .filter(|l| l.contains("__node-") && l.split_whitespace().any(|w| w == name))
            .map(String::from),
    );
    if Path::new("/run/omcluster").join(name).exists() {
        found.push(format!("/run/omcluster/{name}"));
    }
    found
}

#[test]
fn files_written_in_one_node_are_invisible_in_another() {
    let c = cluster("t-files", 2, None, None);
    ok(c.sh(
        1,
        "echo secret > /tmp/omc-t-files; echo mine > /etc/omc-t-files; echo r > /run/omc-t-files",
    ));
    assert_eq!(ok(c.sh(1, "cat /tmp/omc-t-files")), "secret\n");
    for f in ["/tmp/omc-t-files", "/etc/omc-t-files", "/run/omc-t-files"] {
        let o = c.sh(2, &format!("test -e {f}"));
        assert_eq!(o.status.code(), Some(1), "node 2 sees node 1's {f}");
        assert!(!Path::new(f).exists(), "the host sees node 1's {f}");
    }
    // Each node has its own map, host name and hosts file.
    assert_eq!(
        ok(c.sh(2, "cat /etc/openmosix.map")),
        omcluster::cluster::map_text(2)
    );
    assert_eq!(ok(c.sh(2, "hostname; cat /etc/hostname")), "node2\nnode2\n");
    assert!(ok(c.sh(1, "cat /etc/hosts")).contains("198.18.0.2 node2\n"));
    // ... and its own processes: pid 1 is the node's init, the host's are not there.
    let ps = ok(c.sh(1, "ps -eo pid,args"));
    assert!(ps.lines().nth(1).unwrap().trim().starts_with("1 "), "{ps}");
    assert!(ps.contains("__node-pid1 t-files 1"), "{ps}");
    assert!(
        !ps.contains("__node-pid1 t-files 2"),
        "node 1 sees node 2's init:\n{ps}"
    );
    assert_eq!(ps.lines().count(), 4, "node 1 sees other processes:\n{ps}");
}

#[test]
fn nodes_reach_each_other_over_tcp_and_nothing_else() {
    let host_links_before = ok(Command::new("ip").args(["-o", "link"]).output().unwrap());
    let c = cluster("t-net", 3, None, None);

    // A TCP server at node 2's address, a client in node 1.
    let server = "import socket\n\
s = socket.socket(); s.bind(('198.18.0.2', 7000)); s.listen(1); print('listening', flush=True)\n\
conn, peer = s.accept(); conn.sendall(b'hello from node2 to ' + peer[0].encode()); conn.close()\n";
    let mut srv = c
        .command(2, "python3")
        .args(["-c", server])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(srv.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "listening\n");
    let client = "import socket\n\
s = socket.create_connection(('198.18.0.2', 7000), timeout=5); print(s.recv(100).decode())\n";
    let got = ok(python(&c, 1, client));
    assert_eq!(got, "hello from node2 to 198.18.0.1\n");
    assert!(srv.wait().unwrap().success());

    // The only route is the cluster's subnet: no default route, no way out.
    let routes = ok(c.sh(1, "ip -o route; ip -o -6 route | grep -v fe80:: || true"));
    assert_eq!(
        routes.trim(),
        "198.18.0.0/24 dev eth0 proto kernel scope link src 198.18.0.1"
    );
    // Outside the subnet there is no route: connect fails at once, no packet is sent.
    let probe = "import socket\n\
try:\n  socket.create_connection(('198.19.0.1', 7000), timeout=2)\nexcept OSError as e:\n  print(e.strerror)\n";
    assert_eq!(ok(python(&c, 1, probe)), "Network is unreachable\n");
    // The host's loopback is not the node's: a host server is unreachable from a node.
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let probe = format!(
        "import socket\ntry:\n  socket.create_connection(('127.0.0.1', {port}), timeout=2); print('reached')\nexcept OSError as e:\n  print(e.strerror)\n"
    );
    assert_eq!(ok(python(&c, 3, &probe)), "Connection refused\n");

    // The host's network namespace was not touched.
    let host_links_after = ok(Command::new("ip").args(["-o", "link"]).output().unwrap());
    let names = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            .collect()
    };
    assert_eq!(names(&host_links_before), names(&host_links_after));
}

/// CPU share used by a busy loop in `node` over `secs`, from the node's cgroup accounting.
fn measure_share(c: &TestCluster, node: u16, secs: f64) -> f64 {
    let cg = Cgroups::detect().unwrap();
    let mut spin = c
        .command(node, "sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500)); // let the quota settle
    let (t0, u0) = (Instant::now(), cg.cpu_usage_ns(c.name(), node).unwrap());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (t1, u1) = (Instant::now(), cg.cpu_usage_ns(c.name(), node).unwrap());
    let status = omcluster::harness::terminate(&mut spin);
    assert_eq!(
        status.signal(),
        Some(15),
        "the loop ends by the SIGTERM passed on to it"
    );
    (u1 - u0) as f64 / 1e9 / (t1 - t0).as_secs_f64()
}

#[test]
fn cpu_quota_caps_a_busy_loop() {
    let c = cluster("t-cpu", 2, Some("0.25,0.5"), None);
    let quarter = measure_share(&c, 1, 3.0);
    let half = measure_share(&c, 2, 3.0);
    eprintln!("busy loop: node capped at 0.25 CPU used {quarter:.3}; at 0.5 CPU used {half:.3}");
    assert!(
        (0.20..=0.27).contains(&quarter),
        "0.25-CPU node used {quarter:.3} CPU"
    );
    assert!(
        (0.42..=0.53).contains(&half),
        "0.5-CPU node used {half:.3} CPU"
    );
}

#[test]
fn memory_limit_stops_a_hog() {
    let c = cluster("t-mem", 1, None, Some("64M"));
    let small = "b = b'x' * (16 << 20); print(len(b) >> 20)";
    assert_eq!(ok(python(&c, 1, small)), "16\n");
    let hog = "b = b'x' * (256 << 20); print('not stopped')";
    let o = python(&c, 1, hog);
    assert_eq!(
        o.status.signal(),
        Some(9),
        "the hog was not OOM-killed: {:?} {}",
        o.status,
        stdout(&o)
    );
}

#[test]
fn exec_passes_exit_codes_signals_and_identity() {
    let c = cluster("t-exec", 3, None, None);
    assert_eq!(c.sh(1, "exit 7").status.code(), Some(7));
    assert_eq!(c.sh(1, "kill -USR2 $$").status.signal(), Some(12));
    assert_eq!(ok(c.sh(3, "uname -n")), "node3\n");
    let o = c.command(2, "/nonexistent/prog").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot run `/nonexistent/prog` in node 2"));
    // Standard input goes through.
    let mut child = c
        .command(2, "cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through the wrapper\n")
        .unwrap();
    assert_eq!(
        ok(child.wait_with_output().unwrap()),
        "through the wrapper\n"
    );
    // Status lists the nodes with their capacity.
    let st = ok(omcluster(&["status", "--name", "t-exec"]));
    assert_eq!(st.lines().count(), 4, "{st}");
    assert!(
        st.lines()
            .nth(3)
            .unwrap()
            .starts_with("3     node3   198.18.0.3    1.00  1G"),
        "{st}"
    );
}

#[test]
fn cli_refuses_bad_input_with_the_reason() {
    let o = omcluster(&["up", "--nodes", "3", "--cpu", "1,2", "--name", "t-bad"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "omcluster: --cpu 1,2: 2 values for 3 nodes (give one value, or one per node)\n"
    );
    let o = omcluster(&["exec", "--name", "t-never-up", "1", "--", "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no cluster named `t-never-up` is up"));

    let c = cluster("t-twice", 1, None, None);
    let o = omcluster(&["up", "--nodes", "1", "--name", "t-twice"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cluster `t-twice` is already up"));
    let o = omcluster(&["exec", "--name", "t-twice", "2", "--", "true"]);
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("cluster `t-twice` has no node 2 (its nodes are 1 to 1)"));
    drop(c);
}

#[test]
fn down_removes_processes_namespaces_cgroups_and_files() {
    let c = cluster("t-down", 2, None, None);
    let mut sleepers: Vec<_> = (1..=2)
        .map(|n| c.command(n, "sleep").arg("1000").spawn().unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let cg = Cgroups::detect().unwrap();
    let pids = cg.cluster_procs("t-down");
    assert!(pids.len() >= 6, "inits, wrappers and sleeps: {pids:?}");
    assert!(!traces_of("t-down").is_empty());

    let out = ok(omcluster(&["down", "--name", "t-down"]));
    assert!(out.starts_with("cluster t-down: removed"), "{out}");
    for s in &mut sleepers {
        assert_eq!(
            s.wait().unwrap().signal(),
            Some(9),
            "the node's processes were killed"
        );
    }
    assert_eq!(traces_of("t-down"), Vec::<String>::new());
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "pid {p} is still there"
        );
    }
    assert_eq!(
        ok(omcluster(&["down", "--name", "t-down"])),
        "cluster t-down: nothing to remove\n"
    );
    drop(c);
}

#[test]
fn leftovers_of_a_crashed_run_are_found_and_removed() {
    let first = cluster("t-crash", 2, None, None);
    let old_inits: Vec<u32> = first.state.nodes.iter().map(|n| n.init_pid).collect();
    // A crash that lost the record: only the namespaces, cgroups and processes remain.
    std::fs::remove_file("/run/omcluster/t-crash/state.json").unwrap();
    std::mem::forget(first);

    let second = cluster("t-crash", 1, None, None);
    for p in &old_inits {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "old init {p} survived"
        );
    }
    assert_eq!(
        net::cluster_namespaces("t-crash").len(),
        2,
        "bridge + 1 node"
    );
    assert_eq!(ok(second.sh(1, "hostname")), "node1\n");

    // Same again, cleaned up by `down` instead of `up`.
    std::fs::remove_file("/run/omcluster/t-crash/state.json").unwrap();
    std::mem::forget(second);
    ok(omcluster(&["down", "--name", "t-crash"]));
    assert_eq!(traces_of("t-crash"), Vec::<String>::new());
}

#[test]
fn harness_tears_down_when_a_test_panics() {
    let result = std::panic::catch_unwind(|| {
        let c = cluster("t-panic", 1, None, None);
        assert_eq!(ok(c.sh(1, "hostname")), "node1\n");
        panic!("a failing test");
    });
    assert!(result.is_err());
    assert_eq!(traces_of("t-panic"), Vec::<String>::new());
}

#[test]
fn a_binary_under_tmp_still_starts_its_nodes() {
    // The node's own /tmp hides the host's: omcluster must not need its path after that.
    let dir = tempfile_dir();
    let bin = format!("{dir}/omcluster");
    std::fs::copy(BIN, &bin).unwrap();
    let spec = ClusterSpec::new("t-tmpbin", 1, None, None).unwrap();
    let c = TestCluster::up_with(&spec, &bin).unwrap();
    assert_eq!(ok(c.sh(1, "hostname")), "node1\n");
    drop(c);
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempfile_dir() -> String {
    let dir = format!("/tmp/omc-test-{}", std::process::id());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn writes_its_man_page_and_completions() {
    let d = std::env::temp_dir().join(format!("omcluster-docs-{}", std::process::id()));
    let out = Command::new(BIN)
        .env("OM_GENERATE_DOCS", &d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(d.join("man/man1/omcluster.1")).unwrap();
    assert!(
        page.contains(".TH omcluster 1") && page.contains("exec"),
        "{page}"
    );
    assert!(d.join("completions/bash/omcluster").is_file());
    std::fs::remove_dir_all(&d).unwrap();
}
