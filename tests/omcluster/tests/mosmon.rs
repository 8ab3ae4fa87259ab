//! mosmon against a real 4-node cluster, in a real terminal (tmux): started in node 1, it
//! shows the four nodes, and a CPU-bound loop started in node 3 raises node 3's bar.
//! Needs root and tmux.

use omcluster::harness::{TestCluster, Tmux};
use omcluster::{ClusterSpec, DaemonSpec};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omcluster");
/// The socket of this test's own tmux server.
const SOCKET: &str = "om-mosmon-test";

fn tool(name: &str) -> String {
    omcluster::harness::workspace_tool(BIN, name)
}

/// The number of full cells of each node's bar in a captured mosmon screen: the columns
/// of the node numbers under the bars, counted upwards.
fn bar_heights(screen: &str) -> Vec<(u16, usize)> {
    let lines: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let Some(li) = lines.iter().position(|l| {
        let s: String = l.iter().collect();
        let words: Vec<&str> = s.split_whitespace().collect();
        words == ["1", "2", "3", "4"]
    }) else {
        return Vec::new();
    };
    let labels = &lines[li];
    let mut out = Vec::new();
    for (x, c) in labels.iter().enumerate() {
        if let Some(n) = c.to_digit(10) {
            let full = (0..li)
                .rev()
                .take_while(|&y| lines[y].get(x) == Some(&'█'))
                .count();
            out.push((n as u16, full));
        }
    }
    out
}

#[test]
fn mosmon_shows_every_node_and_a_busy_one_rises() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the mosmon test must run as root"
    );
    let mut spec = ClusterSpec::new("t-mosmon", 4, None, None).unwrap();
    spec.daemon = Some(DaemonSpec {
        bin: PathBuf::from(tool("omd")),
        args: vec![],
    });
    let c = TestCluster::up_with(&spec, BIN).unwrap();
    let t = Tmux::new(SOCKET);
    let tmux = |args: &[&str]| t.run(args);
    let cmd = format!(
        "{BIN} exec --name {} 1 -- {} -d 0.5",
        c.name(),
        tool("mosmon")
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "mm",
        "-x",
        "100",
        "-y",
        "30",
        &cmd,
    ]);
    let capture = || tmux(&["capture-pane", "-p", "-t", "mm"]);
    let wait = |what: &str, limit: u64, f: &dyn Fn(&str) -> bool| {
        let start = Instant::now();
        loop {
            let s = capture();
            if f(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(limit),
                "not within {limit} s: {what}\n{s}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let s = wait("mosmon shows four nodes, all up", 20, &|s| {
        s.contains("nodes 1-4 of 4") && !s.contains("down") && bar_heights(s).len() == 4
    });
    let idle = bar_heights(&s);
    let mut spin = c
        .command(3, "timeout")
        .args(["30", "sh", "-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let s = wait("node 3's bar rises above the others", 20, &|s| {
        let h = bar_heights(s);
        let three = h.iter().find(|b| b.0 == 3).map_or(0, |b| b.1);
        let others = h
            .iter()
            .filter(|b| b.0 != 3)
            .map(|b| b.1)
            .max()
            .unwrap_or(0);
        three >= 4 && three > others + 2
    });
    // The per-node line of node 3 shows its load too.
    assert!(
        s.lines().any(|l| l.starts_with("│    3  ")),
        "no line for node 3\n{s}"
    );
    // q quits.
    tmux(&["send-keys", "-t", "mm", "q"]);
    let start = Instant::now();
    while tmux(&["list-sessions"]).contains("mm:") {
        assert!(start.elapsed() < Duration::from_secs(5), "q did not quit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = spin.kill();
    let _ = spin.wait();
    eprintln!("idle bars {idle:?}");
}
