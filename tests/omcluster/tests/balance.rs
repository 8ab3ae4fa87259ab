//! The balancer in real clusters: processes started at node 1 move by themselves to where
//! they run best, the controls hold them, nothing bounces, a node short of memory sends a
//! process away before its out-of-memory killer acts, an I/O-bound process comes home, a
//! late node gets work and `mosctl expel` empties a node. Every job's output is compared
//! with a native run's, and nothing may be left running anywhere. Needs root.

use omcluster::harness::TestCluster;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omcluster");

fn tool(name: &str) -> String {
    omcluster::harness::workspace_tool(BIN, name)
}

/// A cluster of `n` nodes with private files (`cpu`, `mem`: `omcluster up`'s lists), once
/// every node sees every other.
fn cluster(name: &str, n: u16, cpu: Option<&str>, mem: Option<&str>) -> TestCluster {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    omcluster::harness::private_cluster(BIN, name, usize::from(n), (cpu, mem), &checkout)
}

fn up(c: &TestCluster, at: u16, node: u16) -> bool {
    c.command(at, &tool("mosctl"))
        .args(["isup", &node.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(c: &TestCluster, node: u16, script: &str) -> String {
    let o = c.sh(node, script);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Test program `name` (below tests/testprogs), built on the host, copied into node 1's
/// own /var/tmp, which no other node has. Returns the host's build and node 1's copy.
fn program(c: &TestCluster, name: &str) -> (PathBuf, String) {
    let host = om_testprogs::build(
        name,
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("balance-programs"),
    );
    let file = host.file_name().unwrap().to_string_lossy().into_owned();
    let copy = format!("/var/tmp/ombal/{file}");
    let o = c.sh(
        1,
        &format!("mkdir -p /var/tmp/ombal && cp {} {copy}", host.display()),
    );
    assert!(o.status.success(), "copying {name} into node 1: {o:?}");
    (host, copy)
}

/// What `prog args` prints when run natively on the host, in a scratch directory.
fn native(prog: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "balance-native-{}",
        prog.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let o = std::process::Command::new(prog)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "native run of {prog:?}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

/// Starts `script` in node 1 in a fresh directory `dir` of its own /tmp.
fn start(c: &TestCluster, dir: &str, script: &str) -> Child {
    c.command(1, "sh")
        .arg("-c")
        .arg(format!(
            "rm -rf {dir}; mkdir -p {dir} && cd {dir} || exit 1; {script}"
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` (at most `limit`) and returns what it printed.
fn finish(mut child: Child, limit: Duration) -> (String, String) {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the script did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The pids a script wrote to `dir/pids` (one per line), once there are `n`.
fn pids(c: &TestCluster, dir: &str, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    wait_until("the pids are written", Duration::from_secs(60), || {
        got = sh(c, 1, &format!("cat {dir}/pids 2>/dev/null"))
            .split_whitespace()
            .map(str::to_string)
            .collect();
        got.len() >= n
    });
    got
}

/// Where each of `pids` (of node 1) runs now; a process that ended is left out.
fn wheres(c: &TestCluster, pids: &[String]) -> HashMap<String, u16> {
    let script: String = pids
        .iter()
        .map(|p| format!("echo {p} $({} where {p} 2>/dev/null);", tool("mosctl")))
        .collect();
    sh(c, 1, &script)
        .lines()
        .filter_map(|l| {
            let (p, n) = l.split_once(' ')?;
            Some((p.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

/// A `/run/hpc/PID/` file of process `pid` of node 1.
fn hpc(c: &TestCluster, pid: &str, file: &str) -> String {
    sh(c, 1, &format!("cat /run/hpc/{pid}/{file} 2>/dev/null"))
        .trim()
        .to_string()
}

/// Lines of node `node`'s omd log that contain `what`.
fn log_lines(c: &TestCluster, node: u16, what: &str) -> Vec<String> {
    sh(c, node, "cat /run/omd/omd.log")
        .lines()
        .filter(|l| l.contains(what))
        .map(str::to_string)
        .collect()
}

/// Checks that no process of program `prog` (node 1's copy) runs at any of the `n` nodes.
fn nothing_left(c: &TestCluster, n: u16, prog: &str) {
    let comm = omcluster::harness::comm_of(prog);
    for node in 1..=n {
        wait_until(
            &format!("nothing of {comm} left at node {node}"),
            Duration::from_secs(10),
            || sh(c, node, &format!("ps -eo comm | grep -cx '{comm}' || true")).trim() == "0",
        );
    }
}

/// Kills the processes `pids` of node 1 (started by the test) and waits for them.
fn kill(c: &TestCluster, pids: &[String]) {
    sh(c, 1, &format!("kill {} 2>/dev/null", pids.join(" ")));
}

/// The samples taken once the balancer has had 2 s, while all `n` jobs ran: those up to
/// 5 s, or the first one if none was taken by then.
fn settled(
    samples: &[(Duration, HashMap<String, u16>)],
    n: usize,
) -> impl Iterator<Item = &(Duration, HashMap<String, u16>)> {
    samples
        .iter()
        .filter(move |s| s.0 >= Duration::from_secs(2) && s.1.len() == n)
        .enumerate()
        .filter(|(i, s)| *i == 0 || s.0 <= Duration::from_secs(5))
        .map(|(_, s)| s)
}

#[test]
fn jobs_spread_by_themselves_and_faster_nodes_get_more() {
    let c = cluster("t-balspread", 4, Some("1,0.5,0.5,0.25"), None);
    let (host, bin) = program(&c, "balance/spin");
    let want = native(&host, &["8"], &[]);
    let dir = "/tmp/spread";
    // Plain mosrun: no node given, no lock.
    let job = start(
        &c,
        dir,
        &format!(
            "for j in 1 2 3 4 5 6; do {} {bin} 8 > out$j & echo $! >> pids; done; \
             for p in $(cat pids); do wait $p; echo \"status $?\"; done",
            tool("mosrun")
        ),
    );
    let pids = pids(&c, dir, 6);
    // Samples for 6 s, and on until one is taken after 2 s while all six still run: on a
    // loaded machine one sample (six `mosctl where`) can take seconds.
    let mut samples = Vec::new();
    let t = Instant::now();
    loop {
        let w = wheres(&c, &pids);
        let when = t.elapsed();
        let all_run = w.len() == pids.len();
        samples.push((when, w));
        let late = when >= Duration::from_secs(2);
        let done = when >= Duration::from_secs(6) && settled(&samples, pids.len()).next().is_some();
        if done || (late && !all_run) || when >= Duration::from_secs(40) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (out, err) = finish(job, Duration::from_secs(180));
    assert_eq!(out, "status 0\n".repeat(6), "{err}");
    for j in 1..=6 {
        assert_eq!(sh(&c, 1, &format!("cat {dir}/out{j}")), want, "job {j}");
    }
    // Within a few seconds, at least two other nodes run jobs; and while they all run,
    // node 1 (a whole CPU) runs more of them than node 4 (a quarter).
    let others: std::collections::HashSet<u16> = samples
        .iter()
        .flat_map(|s| s.1.values().copied())
        .filter(|&n| n != 0)
        .collect();
    assert!(
        others.len() >= 2,
        "jobs ran only at {others:?}: {samples:?}"
    );
    let settled: Vec<_> = settled(&samples, pids.len()).collect();
    assert!(
        !settled.is_empty(),
        "no sample after 2 s while all six ran: {samples:?}"
    );
    for (when, s) in settled {
        let at = |n: u16| s.values().filter(|&&v| v == n).count();
        assert!(
            at(0) > at(4),
            "at {when:?}: node 1 {} jobs, node 4 {}: {s:?}\n{}",
            at(0),
            at(4),
            log_lines(&c, 1, "balancer").join("\n")
        );
    }
    nothing_left(&c, 4, &bin);
}

#[test]
fn locked_staying_and_young_processes_stay_and_blocked_nodes_get_nothing() {
    let c = cluster("t-balhold", 3, None, None);
    let (_, bin) = program(&c, "balance/spin");
    assert_eq!(
        sh(&c, 2, &format!("{} block", tool("mosctl"))).trim(),
        "mosctl: block on"
    );
    let dir = "/tmp/hold";
    let mosrun = tool("mosrun");
    // Two locked and two free long jobs, started at home.
    let job = start(
        &c,
        dir,
        &format!(
            "for j in 1 2; do {mosrun} -h -L {bin} 1000 & echo $! >> pids; done; \
             for j in 1 2; do {mosrun} -h -l {bin} 1000 & echo $! >> pids; done; wait"
        ),
    );
    let all = pids(&c, dir, 4);
    let (locked, free) = all.split_at(2);
    let mut moved = false;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(12) {
        let w = wheres(&c, &all);
        for p in locked {
            assert_eq!(w.get(p), Some(&0), "locked {p} moved: {w:?}");
        }
        assert!(
            w.values().all(|&n| n != 2),
            "a process went to the blocked node 2: {w:?}"
        );
        moved |= free.iter().any(|p| w.get(p) == Some(&3));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(moved, "no free job went to node 3");
    for p in locked {
        assert_eq!(hpc(&c, p, "nmigs"), "0");
        assert!(
            hpc(&c, p, "cantmove").contains("locked"),
            "{}",
            hpc(&c, p, "cantmove")
        );
    }
    assert_eq!(
        sh(&c, 2, "ls /run/hpc/remote").trim(),
        "",
        "guests at node 2"
    );

    // Jobs shorter than the minimum age never move, even from a busy node.
    let short = start(
        &c,
        "/tmp/short",
        &format!(
            "for j in 1 2 3 4 5 6; do {mosrun} -h -l {bin} 1 > out$j & echo $! >> pids; wait $!; done"
        ),
    );
    let shorts = pids(&c, "/tmp/short", 6);
    finish(short, Duration::from_secs(120));
    for p in &shorts {
        let moves = log_lines(&c, 1, &format!("balancer: pid {p} "));
        assert!(moves.is_empty(), "short job {p} moved: {moves:?}");
    }

    // An I/O job (iojob, a link to mosrun) stays home however busy home is.
    let io = start(
        &c,
        "/tmp/iojob",
        &format!("ln -s {mosrun} iojob; ./iojob {bin} 1000 & echo $! > pids; wait"),
    );
    let iojob = pids(&c, "/tmp/iojob", 1);
    wait_until(
        "the balancer has judged the I/O job",
        Duration::from_secs(10),
        || hpc(&c, &iojob[0], "cantmove") == "an I/O job (iojob): it stays home",
    );
    assert_eq!(wheres(&c, &iojob).get(&iojob[0]), Some(&0));
    kill(&c, &iojob);
    finish(io, Duration::from_secs(30));

    // A node that stays sends nothing away.
    assert_eq!(
        sh(&c, 1, &format!("{} stay", tool("mosctl"))).trim(),
        "mosctl: stay on"
    );
    let staying = start(
        &c,
        "/tmp/stay",
        &format!("for j in 1 2; do {mosrun} -h -l {bin} 1000 & echo $! >> pids; done; wait"),
    );
    let stay = pids(&c, "/tmp/stay", 2);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(6) {
        let w = wheres(&c, &stay);
        assert!(w.values().all(|&n| n == 0), "moved from a stay node: {w:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    for p in &stay {
        assert_eq!(hpc(&c, p, "cantmove"), "this node stays (mosctl stay)");
    }
    kill(&c, &all);
    kill(&c, &stay);
    finish(job, Duration::from_secs(30));
    finish(staying, Duration::from_secs(30));
    nothing_left(&c, 3, &bin);
}

#[test]
fn a_steady_load_does_not_ping_pong() {
    let c = cluster("t-balpong", 3, Some("1,0.5,0.5"), None);
    let (_, bin) = program(&c, "balance/spin");
    let dir = "/tmp/pong";
    let job = start(
        &c,
        dir,
        &format!(
            "for j in 1 2 3 4 5; do {} -h -l {bin} 100000 & echo $! >> pids; done; wait",
            tool("mosrun")
        ),
    );
    let all = pids(&c, dir, 5);
    std::thread::sleep(Duration::from_secs(60));
    let w = wheres(&c, &all);
    assert!(w.values().any(|&n| n != 0), "nothing moved: {w:?}");
    // nmigs counts every leg: going away is one, coming home one more, and moving on
    // from one remote node to another goes through home (two). One move and, when the
    // noise of a loaded machine makes another node look better after the residency
    // (20 s), one move on, is 3; a ping-pong held by nothing but the margin moves every
    // few seconds.
    let mut total = 0;
    for p in &all {
        let n: u32 = hpc(&c, p, "nmigs").parse().unwrap();
        assert!(n <= 3, "process {p} moved {n} times in 60 s: {w:?}");
        total += n;
    }
    assert!(total <= 10, "{total} moves in 60 s: {w:?}");
    kill(&c, &all);
    finish(job, Duration::from_secs(30));
    nothing_left(&c, 3, &bin);
}

#[test]
fn a_node_short_of_memory_sends_a_process_away_before_the_oom_killer() {
    // 640 MiB at a node of 512 MiB would be killed there.
    let c = cluster("t-balmem", 2, None, Some("512M,1G"));
    let (host, bin) = program(&c, "balance/usher");
    let want = native(&host, &[], &[("USHER_MIB", "640")]);
    let job = start(
        &c,
        "/tmp/usher",
        &format!(
            "USHER_MIB=640 {} -h -l {bin} > out & echo $! > pids; wait $!; echo \"status $?\"; cat out",
            tool("mosrun")
        ),
    );
    let pid = pids(&c, "/tmp/usher", 1).remove(0);
    let (out, err) = finish(job, Duration::from_secs(120));
    assert_eq!(out, format!("status 0\n{want}"), "{err}");
    let ushered = log_lines(
        &c,
        1,
        &format!("balancer: pid {pid} to node 2: short of memory"),
    );
    assert_eq!(ushered.len(), 1, "{:?}", log_lines(&c, 1, "balancer"));
    nothing_left(&c, 2, &bin);
}

#[test]
fn an_io_bound_job_sent_away_comes_home() {
    let c = cluster("t-balio", 2, None, None);
    let (host, bin) = program(&c, "balance/iowrite");
    // 2 million writes: seconds at home (it must still run when it is sent away),
    // minutes away.
    let want = native(&host, &["2000000"], &[]);
    let dir = "/tmp/io";
    let job = start(
        &c,
        dir,
        &format!(
            "{} -h -l {bin} 2000000 > out & echo $! > pids; wait $!; echo \"status $?\"; cat out",
            tool("mosrun")
        ),
    );
    let pid = pids(&c, dir, 1).remove(0);
    let o = c
        .command(1, &tool("migrate"))
        .args(["--wait", &pid, "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let t = Instant::now();
    wait_until("it comes home", Duration::from_secs(20), || {
        wheres(&c, std::slice::from_ref(&pid)).get(&pid) != Some(&2)
    });
    let back = t.elapsed();
    let (out, err) = finish(job, Duration::from_secs(120));
    assert_eq!(out, format!("status 0\n{want}"), "{err}");
    let lines = log_lines(&c, 2, "I/O-bound");
    assert_eq!(
        lines.len(),
        1,
        "home after {back:?}: {lines:?}\n{}",
        sh(&c, 2, "cat /run/omd/omd.log")
    );
    // Its file is what a native run writes, at home only.
    let native_file = std::fs::read(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("balance-native-balance_iowrite/iowrite.out"),
    )
    .unwrap();
    let o = c.sh(1, &format!("cat {dir}/iowrite.out"));
    assert!(o.stdout == native_file, "iowrite.out differs");
    assert!(sh(&c, 2, &format!("ls {dir} 2>&1")).contains("No such file"));
    nothing_left(&c, 2, &bin);
}

#[test]
fn a_late_node_gets_work_and_expel_empties_a_node() {
    let c = cluster("t-ballate", 3, None, None);
    let (_, bin) = program(&c, "balance/spin");
    sh(&c, 3, "kill $(cat /run/omd/omd.pid)");
    wait_until("node 3 down at node 1", Duration::from_secs(30), || {
        !up(&c, 1, 3)
    });
    let dir = "/tmp/late";
    let job = start(
        &c,
        dir,
        &format!(
            "for j in 1 2 3 4; do {} -h -l {bin} 100000 & echo $! >> pids; done; wait",
            tool("mosrun")
        ),
    );
    let all = pids(&c, dir, 4);
    wait_until("a job at node 2", Duration::from_secs(20), || {
        wheres(&c, &all).values().any(|&n| n == 2)
    });
    let o = c
        .command(3, &tool("omd"))
        .args(["--log", "/run/omd/omd.log"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    wait_until("a job at the late node 3", Duration::from_secs(30), || {
        wheres(&c, &all).values().any(|&n| n == 3)
    });
    let said = sh(&c, 3, &format!("{} expel", tool("mosctl")));
    assert!(said.contains("guest"), "{said}");
    wait_until("node 3 empty", Duration::from_secs(20), || {
        sh(&c, 3, "ls /run/hpc/remote").trim().is_empty()
    });
    // And it stays empty: expel blocks the node.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        assert!(wheres(&c, &all).values().all(|&n| n != 3));
        std::thread::sleep(Duration::from_millis(300));
    }
    kill(&c, &all);
    finish(job, Duration::from_secs(30));
    nothing_left(&c, 3, &bin);
}
