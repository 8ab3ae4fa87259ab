//! Interactive programs away from home, in a real terminal (tmux): a shell in node 1 of a
//! 2-node cluster starts `bc -l` with `mosrun -2`, so that it runs at node 2 while its
//! terminal stays at home. It must answer line after line, stop on Ctrl-Z (the shell says
//! "Stopped") and go on after `fg`, stop for tty input when put in the background, keep
//! reading across window resizes, and run its Ctrl-C handler. Needs root and tmux.

use omcluster::harness::{TestCluster, Tmux};
use omcluster::spec::FsSpec;
use omcluster::{ClusterSpec, DaemonSpec};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omcluster");
/// The socket of this test's own tmux server.
const SOCKET: &str = "om-terminal-test";

fn tool(name: &str) -> String {
    omcluster::harness::workspace_tool(BIN, name)
}

fn tmux(args: &[&str]) -> String {
    omcluster::harness::tmux(SOCKET, args)
}

/// Types `keys` (tmux key names) into the pane.
fn keys(k: &[&str]) {
    let mut args = vec!["send-keys", "-t", "t"];
    args.extend_from_slice(k);
    tmux(&args);
}

/// Types a line and Enter.
fn line(text: &str) {
    keys(&["-l", text]);
    keys(&["Enter"]);
}

fn screen() -> String {
    tmux(&["capture-pane", "-t", "t", "-p", "-S", "-200"])
}

/// Waits until the screen, below `mark` lines already seen, shows `what`.
fn until(what: &str, after: usize) -> usize {
    let start = Instant::now();
    loop {
        let s = screen();
        let lines: Vec<&str> = s.lines().collect();
        if let Some(i) = lines.iter().skip(after).position(|l| l.contains(what)) {
            return after + i + 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the terminal never showed {what:?}:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks that bc's guest at node 2 is stopped.
fn assert_guest_stopped(c: &TestCluster) {
    let state = c.sh(2, "ps -o stat= -C bc");
    assert!(
        String::from_utf8_lossy(&state.stdout).starts_with('T'),
        "the guest is stopped: {state:?}"
    );
}

/// Where bc runs, as node 1's `mosctl where` says.
fn where_bc(c: &TestCluster) -> String {
    let o = c.sh(1, &format!("{} where $(pgrep -x bc)", tool("mosctl")));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn an_interactive_program_away_from_home_behaves_as_at_home() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the terminal test must run as root"
    );
    let mut spec = ClusterSpec::new("t-term", 2, None, None).unwrap();
    spec.daemon = Some(DaemonSpec {
        bin: PathBuf::from(tool("omd")),
        args: vec![],
    });
    spec.fs = FsSpec::private(None, vec![]);
    let c = TestCluster::up_with(&spec, BIN).unwrap();
    let _t = Tmux::new(SOCKET);
    let shell = format!(
        "{BIN} exec --name {} 1 -- bash --norc --noprofile -i",
        c.name()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "40",
        &shell,
    ]);
    // Node 2 must be known at node 1 before mosrun can send bc there.
    let start = Instant::now();
    while !c
        .sh(1, &format!("{} isup 2", tool("mosctl")))
        .status
        .success()
    {
        assert!(start.elapsed() < Duration::from_secs(15), "node 2 not up");
        std::thread::sleep(Duration::from_millis(200));
    }
    line("PS1='$ '");
    line(&format!("{} -2 bc -l", tool("mosrun")));
    let mut seen = until("warranty", 0);
    let start = Instant::now();
    while where_bc(&c) != "2" {
        assert!(start.elapsed() < Duration::from_secs(15), "bc never left");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Several lines, each answered (the first used to kill it: TCGETS copied 60 bytes).
    for (q, a) in [("6*7", "42"), ("2^20", "1048576"), ("scale=3; 1/8", ".125")] {
        line(q);
        seen = until(a, seen);
    }

    // Ctrl-Z stops it, as the shell sees; fg resumes it, still at node 2.
    keys(&["C-z"]);
    seen = until("Stopped", seen);
    line("jobs -l");
    seen = until("Stopped", seen);
    assert_eq!(where_bc(&c), "2", "stopped at node 2");
    assert_guest_stopped(&c);
    line("fg");
    line("3+4");
    seen = until("7", seen + 1);

    // In the background, reading the terminal stops it for tty input.
    keys(&["C-z"]);
    seen = until("Stopped", seen);
    line("bg");
    // Continued in the background, it stops again on the terminal, as natively: for
    // tty output when readline resets the terminal first (the shell prints a plain
    // "Stopped"), or, once a line typed to the shell wakes its pselect, for tty input.
    // The shell tells at its next prompt.
    seen = until("&", seen);
    let mut tries = 0;
    seen = loop {
        line("jobs");
        tries += 1;
        let s = screen();
        if let Some(i) = s.lines().skip(seen).position(|l| l.contains("Stopped")) {
            break seen + i + 1;
        }
        assert!(tries < 20, "never stopped in the background:\n{s}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_guest_stopped(&c);
    line("fg");
    line("10-1");
    seen = until("9", seen + 1);

    // A window resize while it waits in read is not the end of its input.
    for (x, y) in [("80", "30"), ("120", "45")] {
        tmux(&["resize-window", "-t", "t", "-x", x, "-y", y]);
        std::thread::sleep(Duration::from_millis(300));
    }
    line("5*5");
    seen = until("25", seen);

    // Ctrl-C runs its handler, which says how to leave.
    keys(&["C-c"]);
    seen = until("use quit to exit", seen);
    line("1+1");
    seen = until("2", seen);
    assert_eq!(where_bc(&c), "2", "it stayed at node 2 throughout");

    line("quit");
    line("echo \"status $?\"");
    until("status 0", seen);
    for node in 1..=2u16 {
        let left = c.sh(node, "pgrep -x bc || true");
        assert!(
            String::from_utf8_lossy(&left.stdout).trim().is_empty(),
            "bc left at node {node}"
        );
    }
}
