//! Remote execution on one machine: a program is captured, restored as a guest (user
//! nobody, seccomp-confined) and its home process becomes the deputy; the two ends talk
//! over an in-process link. Output, status and files must equal a native run's, and the
//! process may be brought home halfway.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::BorrowedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../../ckpt/tests/common/mod.rs"]
mod common;

use common::{build, Cuttable, CUT};
use om_ckpt::{capture_with, Paging, ProcessMemory};
use om_remote::deputy::{leaving_home, IntoDeputy};
use om_remote::guest::Guest;
use om_remote::relay::{run_home, run_remote, Command as Cmd, HomeEnd, Link, Msg, RemoteEnd};

struct ChanLink {
    tx: Sender<Msg>,
    rx: Mutex<Receiver<Msg>>,
}

impl Link for ChanLink {
    fn send(&self, m: &Msg) -> std::io::Result<()> {
        self.tx.send(m.clone()).map_err(std::io::Error::other)
    }
    fn recv(&self, timeout: Option<Duration>) -> std::io::Result<Option<Msg>> {
        let rx = self.rx.lock().unwrap();
        match timeout {
            None => rx.recv().map(Some).map_err(std::io::Error::other),
            Some(t) => match rx.recv_timeout(t) {
                Ok(m) => Ok(Some(m)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(None),
                Err(e) => Err(std::io::Error::other(e)),
            },
        }
    }
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

fn pair() -> (Arc<dyn Link>, Arc<dyn Link>) {
    let (a_tx, a_rx) = channel();
    let (b_tx, b_rx) = channel();
    (
        Arc::new(ChanLink {
            tx: a_tx,
            rx: Mutex::new(b_rx),
        }),
        Arc::new(ChanLink {
            tx: b_tx,
            rx: Mutex::new(a_rx),
        }),
    )
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    code: Option<i32>,
    signal: Option<i32>,
    /// Name and BLAKE3 hash of each file written.
    files: BTreeMap<String, String>,
}

fn run(name: &str, migrate_after: Option<f64>, home_after: Option<f64>) -> (Outcome, String) {
    run_args(name, &[], migrate_after, home_after)
}

fn run_args(
    name: &str,
    args: &[&str],
    migrate_after: Option<f64>,
    home_after: Option<f64>,
) -> (Outcome, String) {
    let plan = Plan {
        migrate_after,
        home_after,
        ..Plan::default()
    };
    let r = run_plan(name, args, plan);
    (r.outcome, r.how)
}

/// What a [`run_plan`] run gave.
struct Run {
    outcome: Outcome,
    /// How both ends finished, for messages (empty when it did not migrate).
    how: String,
    /// How the remote end finished.
    remote: Option<RemoteEnd>,
    /// With [`Plan::release`]: the home process's resident bytes as it left, and once
    /// its memory was released.
    resident: Option<(u64, u64)>,
}

/// How a run goes.
#[derive(Default, Clone, Copy)]
struct Plan {
    /// Migrate it (to a guest on this machine) after this many seconds.
    migrate_after: Option<f64>,
    /// Ask it home this many seconds after it migrated.
    home_after: Option<f64>,
    /// The guest's page source fails from the moment it starts; then the file `go` is
    /// made (`reshape` waits for it).
    cut: bool,
    /// For `reshape`: wait until the home process's memory is released, then make `go`
    /// (natively: at once).
    release: Option<AfterRelease>,
    /// For `interrupt`: send it signals while it waits in calls, and feed its fifo.
    interrupt: bool,
    /// Run a copy of the program, and once it is captured, take that copy away from
    /// the node the guest starts on (as on a node without the home node's files).
    exe: Option<Exe>,
    /// For `blocked_read`: once it waits in its read at home, ask it home from this
    /// end, and feed its fifo once it is home.
    home_while_blocked: Option<Side>,
    /// For `poll_timeout`: ask it home (from the remote end) a second into its timed
    /// wait (poll, ppoll, select or pselect6).
    home_during_poll: bool,
    /// Wait until the program has made this file before counting `migrate_after`.
    ready: Option<&'static str>,
    /// The program has a `window()` (prog.h's handshake): it gets an `OMTEST_SYNC`
    /// directory, is moved once it says "ready" (after `migrate_after`), and is told
    /// "go" once it runs away, or with `home_after`, once it is home again. Natively,
    /// "go" is there from the start.
    window: bool,
}

/// One end of a migration.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Side {
    Home,
    Remote,
}

/// What becomes of the program's file after the capture.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Exe {
    /// It is deleted.
    Gone,
    /// Other bytes are written at its path (a different build of the same program).
    Changed,
}

#[derive(Clone, Copy, PartialEq)]
enum AfterRelease {
    /// The program goes on at the remote end.
    StayAway,
    /// It is brought home first, so that it checks its memory at home.
    ComeHome,
}

/// Resident bytes of process `pid`.
fn resident(pid: i32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|r| r.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// Runs `name` with `args` natively, or as `plan` says.
fn run_plan(name: &str, args: &[&str], plan: Plan) -> Run {
    let Plan {
        migrate_after,
        home_after,
        cut,
        release,
        interrupt,
        exe,
        home_while_blocked,
        home_during_poll,
        ready,
        window,
    } = plan;
    let dir = tempfile::Builder::new()
        .prefix("relay-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let program = match exe {
        None => build(name),
        Some(_) => {
            let copy = dir.path().join(format!("{name}.bin"));
            std::fs::copy(build(name), &copy).unwrap();
            copy
        }
    };
    let sync = tempfile::Builder::new()
        .prefix("relay-sync-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let go = sync.path().join("go");
    if migrate_after.is_none() {
        std::fs::write(&go, "").unwrap();
    }
    // The guest runs as nobody; the files it writes are written at home by the deputy.
    // A shell is the program's parent (the test is its tracer) and reports its status.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("\"$@\"; echo \"status $?\"")
        .arg("sh")
        .arg(build("launch"))
        .arg(&program)
        .args(args)
        .current_dir(dir.path())
        .env("OMTEST", "hello")
        .envs(window.then_some(("OMTEST_SYNC", sync.path())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let (mut how, mut remote_end, mut rss) = (String::new(), None, None);
    let pid = loop {
        let c = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .unwrap_or_default();
        if let Some(p) = c.split_whitespace().next() {
            break p.parse::<i32>().unwrap();
        }
        // A native run through a window with "go" made beforehand can end in a
        // millisecond, before it is seen; nothing needs its pid then.
        if child.try_wait().unwrap().is_some() {
            assert!(
                migrate_after.is_none() && !interrupt,
                "{name} ended before the test saw it start"
            );
            break 0;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let interrupter = interrupt.then(|| {
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || interrupt_steps(pid, &dir))
    });
    if release.is_some() && migrate_after.is_none() {
        std::fs::write(dir.path().join("go"), "").unwrap();
    }
    if let Some(t) = migrate_after {
        if let Some(f) = ready {
            wait_for_file(&dir.path().join(f));
        }
        if window {
            wait_for_file(&sync.path().join("ready"));
        }
        std::thread::sleep(Duration::from_secs_f64(t));
        let frozen = capture_with(pid, leaving_home()).unwrap();
        let image = frozen.image().clone();
        match exe {
            None => {}
            Some(Exe::Gone) => std::fs::remove_file(&program).unwrap(),
            // A new file: the home process keeps mapping the old one.
            Some(Exe::Changed) => {
                let mut other = std::fs::read(&program).unwrap();
                let n = other.len();
                other[n - 100..].fill(0x5a);
                std::fs::remove_file(&program).unwrap();
                std::fs::write(&program, other).unwrap();
            }
        }
        let rss_before = resident(pid);
        let cutter = Arc::new(AtomicBool::new(false));
        let source = Cuttable {
            pages: ProcessMemory::open(pid).unwrap(),
            cut: cutter.clone(),
        };
        let guest = Guest::start(&image, Box::new(source), Paging::Lazy, 65534, 65534).unwrap();
        if cut {
            cutter.store(true, Ordering::SeqCst);
            std::fs::write(dir.path().join("go"), "").unwrap();
        }
        let (home_link, remote_link) = pair();
        let (htx, hrx) = channel::<Cmd>();
        let (rtx, rrx) = channel::<Cmd>();
        let poller = home_during_poll.then(|| {
            let tx = rtx.clone();
            let fifo = dir.path().join("in");
            std::thread::spawn(move || {
                wait_for_file(&fifo);
                wait_in_any(
                    pid,
                    &[
                        libc::SYS_poll,
                        libc::SYS_ppoll,
                        libc::SYS_select,
                        libc::SYS_pselect6,
                    ],
                );
                std::thread::sleep(Duration::from_millis(1000));
                tx.send(Cmd::ComeHome).unwrap();
            })
        });
        let unblocker = home_while_blocked.map(|side| {
            let tx = match side {
                Side::Home => htx.clone(),
                Side::Remote => rtx.clone(),
            };
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let fifo = dir.join("in");
                let start = wait_for_file(&fifo);
                wait_in(pid, libc::SYS_read);
                std::thread::sleep(Duration::from_millis(100));
                tx.send(Cmd::ComeHome).unwrap();
                // Well before the 60 s a remote end waits for home to take the process.
                wait_home(pid, Duration::from_secs(20).saturating_sub(start.elapsed()));
                std::fs::write(&fifo, "line one\n").unwrap();
            })
        });
        let remote = std::thread::spawn(move || run_remote(guest, remote_link.as_ref(), &rrx));
        // The request to come home is sent while both ends run (into_deputy returns only
        // when the home end is done).
        let asker = home_after.map(|h| {
            let rtx = rtx.clone();
            let go = go.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs_f64(h));
                let _ = rtx.send(Cmd::ComeHome);
                if window {
                    wait_home(pid, Duration::from_secs(40));
                    std::fs::write(go, "").unwrap();
                }
            })
        });
        if window && home_after.is_none() {
            std::fs::write(&go, "").unwrap();
        }
        // Waits until the home copy of its memory is gone (the home process keeps little
        // more than the deputy's area), then lets it go on, away or at home.
        let watcher = release.map(|after| {
            let go = dir.path().join("go");
            std::thread::spawn(move || {
                let start = Instant::now();
                while resident(pid) > 16 << 20 {
                    assert!(
                        start.elapsed() < Duration::from_secs(20),
                        "home still holds {} of {rss_before} bytes after 20 s",
                        resident(pid)
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                let rss_after = resident(pid);
                if after == AfterRelease::ComeHome {
                    let _ = rtx.send(Cmd::ComeHome);
                    wait_home(pid, Duration::from_secs(40).saturating_sub(start.elapsed()));
                }
                std::fs::write(go, "").unwrap();
                (rss_before, rss_after)
            })
        });
        let home = frozen
            .into_deputy(move |ctl| match ctl {
                Ok(ctl) => run_home(ctl, &home_link, hrx, &|_| {}),
                Err(e) => HomeEnd::Lost(format!("no deputy: {e}")),
            })
            .unwrap();
        let r = remote.join().unwrap();
        if let Some(a) = asker {
            a.join().unwrap();
        }
        if let Some(u) = unblocker {
            u.join().unwrap();
        }
        if let Some(p) = poller {
            p.join().unwrap();
        }
        how = format!("{:?} / {:?}", home, r);
        remote_end = Some(r);
        rss = watcher.map(|w| w.join().unwrap());
    }
    if let Some(i) = interrupter {
        i.join().unwrap();
    }
    let st = child.wait().unwrap();
    let stdout = reader.join().unwrap();
    if exe.is_some() {
        let _ = std::fs::remove_file(&program);
    }
    let mut files = BTreeMap::new();
    let mut dirs = vec![dir.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if p.is_dir() {
                files.insert(rel, "directory".into());
                dirs.push(p);
            } else {
                let h = blake3::hash(&std::fs::read(&p).unwrap())
                    .to_hex()
                    .to_string();
                files.insert(rel, h);
            }
        }
    }
    Run {
        outcome: Outcome {
            stdout,
            code: st.code(),
            signal: st.signal(),
            files,
        },
        how,
        remote: remote_end,
        resident: rss,
    }
}

/// Waits (at most `limit`) until process `pid` is home: nothing traces it any more.
fn wait_home(pid: i32, limit: Duration) {
    let start = Instant::now();
    while !std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .contains("TracerPid:\t0\n")
    {
        assert!(start.elapsed() < limit, "{pid} not home within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the program has made `path` (its sign that it is ready); returns when the
/// wait began.
fn wait_for_file(path: &std::path::Path) -> Instant {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    start
}

/// The call process `pid` waits in (`/proc/PID/syscall`'s number), if any.
fn waits_in(pid: i32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Waits until process `pid` waits in call `nr` (at home: natively, or its deputy).
fn wait_in(pid: i32, nr: i64) {
    wait_in_any(pid, &[nr])
}

/// Waits until process `pid` waits in one of the calls `nrs`.
fn wait_in_any(pid: i32, nrs: &[i64]) {
    let nr = nrs[0];
    let start = Instant::now();
    while !waits_in(pid).is_some_and(|n| nrs.contains(&n)) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never waited in {nr}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The runner's half of `interrupt.c` (see there): each signal is sent to the home pid
/// while the program waits in the call it is meant to interrupt.
fn interrupt_steps(pid: i32, dir: &std::path::Path) {
    use nix::sys::signal::{kill, Signal};
    use std::io::Write;
    let fifo = dir.join("in");
    wait_for_file(&fifo);
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let p = nix::unistd::Pid::from_raw(pid);
    let settle = Duration::from_millis(100);
    for (sig, text) in [
        (Signal::SIGWINCH, "one\n"),
        (Signal::SIGUSR1, "two\n"),
        (Signal::SIGUSR2, "three\n"),
    ] {
        wait_in(pid, libc::SYS_read);
        kill(p, sig).unwrap();
        std::thread::sleep(settle);
        w.write_all(text.as_bytes()).unwrap();
        // Until the line is read and the program has moved on from that read.
        std::thread::sleep(settle);
    }
    wait_in(pid, libc::SYS_poll);
    std::thread::sleep(settle);
    kill(p, Signal::SIGWINCH).unwrap();
    wait_in(pid, libc::SYS_ppoll);
    std::thread::sleep(settle);
    kill(p, Signal::SIGUSR2).unwrap();
}

/// Runs program `name` natively, then moves it and lets it end away; with `window`,
/// through its handshake.
fn same(name: &str, window: bool) {
    let timed = |migrate_after| Plan {
        migrate_after,
        window,
        ..Plan::default()
    };
    let native = run_plan(name, &[], timed(None)).outcome;
    assert_eq!(native.code, Some(0), "{name}: {}", native.stdout);
    let Run {
        outcome: moved,
        how,
        ..
    } = run_plan(name, &[], timed(Some(0.05)));
    assert_eq!(moved, native, "{name} migrated: {how}");
    eprintln!("{name}: {how}");
    assert!(
        how.starts_with("Ended(Exited(0))") || how.starts_with("CameHome"),
        "{name}: {how}"
    );
}

/// Runs program `name` natively, then moves it and brings it home; with `window`,
/// through its handshake.
fn there_and_back(name: &str, window: bool) {
    let plan = |migrate_after, home_after| Plan {
        migrate_after,
        home_after,
        window,
        ..Plan::default()
    };
    let native = run_plan(name, &[], plan(None, None)).outcome;
    let Run {
        outcome: moved,
        how,
        ..
    } = run_plan(name, &[], plan(Some(0.05), Some(0.1)));
    assert_eq!(moved, native, "{name} migrated and brought home: {how}");
    eprintln!("{name}: {how}");
    assert!(
        how.starts_with("CameHome"),
        "{name} did not come home: {how}"
    );
}

/// One test per program of the manifest ([`om_testprogs::with_programs`]) that this
/// runner takes.
macro_rules! relay_test {
    ($name:ident, $args:expr, $stdin:expr, $window:expr) => {
        #[test]
        fn $name() {
            same(stringify!($name), $window);
            there_and_back(stringify!($name), $window);
        }
    };
}

om_testprogs::with_programs!(relay, relay_test);

/// A periodic timer's overruns survive a move at each stage: moved while its signal
/// waits queued (the expirations it missed are counted at delivery away), and moved and
/// brought home after a signal was taken (timer_getoverrun still says what it said).
#[test]
fn posix_timer_overruns_survive_moves() {
    let (native, _) = run("posix_timer", None, None);
    assert!(
        native.stdout.contains("overruns right (>= 5)"),
        "{}",
        native.stdout
    );
    for (away, home) in [(0.3, 0.2), (0.65, 0.3)] {
        let (moved, how) = run("posix_timer", Some(away), Some(home));
        assert_eq!(
            moved, native,
            "moved at {away} s, home {home} s later: {how}"
        );
        assert!(how.starts_with("CameHome"), "{how}");
    }
}

/// Files mapped while away are mapped there, from copies read at home: the process
/// stays away to its end, with every mapping right.
#[test]
fn files_mapped_away_are_mapped_there() {
    let (native, _) = run("mmap_away", None, None);
    let (moved, how) = run("mmap_away", Some(0.05), None);
    assert_eq!(moved, native, "{how}");
    assert!(how.starts_with("Ended(Exited(0))"), "it went home: {how}");
    // Brought home while it keeps one: home maps its own file there again.
    let (native, _) = run_args("mmap_away", &["maps"], None, None);
    assert!(
        native.stdout.contains("kept mapping shows the file 1"),
        "{}",
        native.stdout
    );
    let (moved, how) = run_args("mmap_away", &["maps"], Some(0.05), Some(1.0));
    assert_eq!(moved, native, "{how}");
    assert!(how.starts_with("CameHome"), "{how}");
}

/// Pages shared copy-on-write with a child forked before the move stay shared, away
/// (home keeps them when it releases its copy) and once home again (only the pages the
/// process changed away are written): the program reads its sharing in smaps.
#[test]
fn pages_shared_with_a_child_stay_shared() {
    let (native, _) = run("cow_fork", None, None);
    assert!(
        native.stdout.contains("at least 30 MiB") && native.stdout.contains("child exit 42"),
        "{}",
        native.stdout
    );
    for home_after in [None, Some(0.2)] {
        let plan = Plan {
            migrate_after: Some(0.0),
            home_after,
            ready: Some("forked"),
            ..Plan::default()
        };
        let run = run_plan("cow_fork", &[], plan);
        assert_eq!(run.outcome, native, "{}", run.how);
        let (want, why) = match home_after {
            None => ("Ended(Exited(0))", "it went home"),
            Some(_) => (
                "CameHome(\"asked to go home\")",
                "it did not come home when asked",
            ),
        };
        assert!(run.how.starts_with(want), "{why}: {}", run.how);
    }
}

#[test]
fn remote_death_by_signal_is_death_by_signal_at_home() {
    let (native, _) = run_args("remote", &["segv"], None, None);
    assert_eq!(native.stdout, "status 139\n");
    let (moved, how) = run_args("remote", &["segv"], Some(0.1), None);
    assert_eq!(moved, native, "{how}");
    let (native, _) = run_args("remote", &["exit42"], None, None);
    let (moved, how) = run_args("remote", &["exit42"], Some(0.1), None);
    assert_eq!(moved, native, "{how}");
}

/// The guest's memory stops coming (its page source fails as it starts): it dies of
/// SIGBUS at the first page it lacks, home dies the same way, and the remote end says
/// why, so that omd can log it.
#[test]
fn a_guest_whose_pages_cannot_come_dies_of_sigbus_and_the_remote_end_says_why() {
    let plan = Plan {
        migrate_after: Some(0.05),
        cut: true,
        ..Plan::default()
    };
    let run = run_plan("reshape", &[], plan);
    let how = &run.how;
    assert_eq!(run.outcome.stdout, "status 135\n", "{how}");
    assert!(
        matches!(&run.remote, Some(RemoteEnd::Ended { lost_pages: Some(why) }) if why.contains(CUT)),
        "the remote end did not say pages were lost: {how}"
    );
}

/// Once every page is at the remote node, home drops its copy of the process's memory
/// (64 MiB of ballast and more, down to under 16 MiB). The program then checks all of it,
/// away or after coming home (rebuilt from the remote's memory), and must print what it
/// prints natively.
#[test]
fn home_memory_is_released_once_all_of_it_is_away() {
    let native = Plan {
        release: Some(AfterRelease::StayAway),
        ..Plan::default()
    };
    let native = run_plan("reshape", &[], native).outcome;
    assert_eq!(native.code, Some(0), "{}", native.stdout);
    for after in [AfterRelease::StayAway, AfterRelease::ComeHome] {
        let plan = Plan {
            migrate_after: Some(0.3),
            release: Some(after),
            ..Plan::default()
        };
        let run = run_plan("reshape", &[], plan);
        let how = &run.how;
        assert_eq!(run.outcome, native, "{how}");
        let (before, released) = run.resident.expect("the release was watched");
        eprintln!("{how} / home resident {before} -> {released} bytes");
        assert!(before > 64 << 20, "the ballast was not resident: {how}");
        if after == AfterRelease::ComeHome {
            assert!(how.starts_with("CameHome"), "{how}");
        }
    }
}

/// A process that signals itself while away gets the signal before the call returns, as
/// natively: its handler has run, and kill(getpid(), SIGTERM) ends it there and then.
#[test]
fn signals_to_oneself_arrive_before_the_call_returns() {
    let (native, _) = run("selfsig", None, None);
    assert_eq!(native.stdout, "usr1 40 usr2 20\nstatus 143\n");
    let (moved, how) = run("selfsig", Some(0.05), None);
    assert_eq!(moved, native, "{how}");
    assert!(
        how.starts_with("Ended(Killed { signal: 15, core: false })"),
        "{how}"
    );
}

/// Calls blocked at home that a signal interrupts end as natively: not at all for a
/// signal the process ignores (no errno 512), restarted under SA_RESTART, EINTR after the
/// handler ran otherwise, and a poll keeps the time it had left.
#[test]
fn interrupted_forwarded_calls_end_as_natively() {
    let plan = |migrate_after| Plan {
        migrate_after,
        interrupt: true,
        ..Plan::default()
    };
    let native = run_plan("interrupt", &[], plan(None)).outcome;
    assert_eq!(
        native.stdout,
        "winch: read one\nusr1: read two\nusr1 handled 1\n\
         usr2: read failed, errno 4 (Interrupted system call)\nusr2: read three\n\
         usr2 handled 1\npoll returned 0, waited its time 1\n\
         poll interrupted after the handler ran\nstatus 0\n"
    );
    let run = run_plan("interrupt", &[], plan(Some(0.05)));
    assert_eq!(run.outcome, native, "{}", run.how);
    assert!(run.how.starts_with("Ended(Exited(0))"), "{}", run.how);
}

/// A program whose executable the guest's node lacks, or holds with other bytes, runs
/// there from the home process's own copy of its file mappings (paged from home), there
/// and back, and prints what it prints natively.
#[test]
fn a_program_whose_file_is_only_at_home_moves() {
    for name in ["checksum", "mappings"] {
        let native = run_plan(name, &[], Plan::default()).outcome;
        assert_eq!(native.code, Some(0), "{}", native.stdout);
        for exe in [Exe::Gone, Exe::Changed] {
            for home_after in [None, Some(0.1)] {
                let plan = Plan {
                    migrate_after: Some(0.05),
                    home_after,
                    exe: Some(exe),
                    ..Plan::default()
                };
                let run = run_plan(name, &[], plan);
                let how = &run.how;
                assert_eq!(run.outcome, native, "{name}, file {exe:?}: {how}");
                let ended = if home_after.is_some() {
                    "CameHome"
                } else {
                    "Ended(Exited(0))"
                };
                assert!(how.starts_with(ended), "{name}, file {exe:?}: {how}");
            }
        }
    }
}

/// A process blocked at home in a forwarded read (a fifo nobody writes to yet) comes home
/// when asked, from either end, and its read, made again at home, returns the line.
#[test]
fn a_process_blocked_in_a_forwarded_call_comes_home() {
    for side in [Side::Home, Side::Remote] {
        let plan = Plan {
            migrate_after: Some(0.05),
            home_while_blocked: Some(side),
            ..Plan::default()
        };
        let run = run_plan("blocked_read", &[], plan);
        assert_eq!(
            run.outcome.stdout, "read line one\nstatus 0\n",
            "{side:?}: {}",
            run.how
        );
        assert!(run.how.starts_with("CameHome"), "{side:?}: {}", run.how);
    }
}

/// A timed wait, in flight when the process is brought home, returns after its own
/// timeout (2 s), not after the time before the move plus a fresh 2 s: poll's timeout
/// passed by value, and the ones ppoll, select and pselect keep in the process's memory.
#[test]
fn a_timed_call_in_flight_across_a_move_keeps_its_time() {
    for how in ["poll", "ppoll", "select", "pselect"] {
        let native = run_plan("poll_timeout", &[how], Plan::default()).outcome;
        assert_eq!(
            native.stdout,
            format!("{how} returned 0 after its own timeout 1\nstatus 0\n")
        );
        let plan = Plan {
            migrate_after: Some(0.05),
            home_during_poll: true,
            ..Plan::default()
        };
        let run = run_plan("poll_timeout", &[how], plan);
        assert_eq!(run.outcome, native, "{how}: {}", run.how);
        assert!(run.how.starts_with("CameHome"), "{how}: {}", run.how);
    }
}

/// A remote end that lies: it asks the deputy for calls the table does not forward
/// (execve, fork, ptrace, mmap) and for forwarded calls laid out wrongly (a write whose
/// bytes are fewer than its count, a read into a raw pointer, a path without its end).
/// The deputy makes none of them: each is answered EPERM and reported, the home process
/// neither forks nor execs, and an honest call afterwards still works.
#[test]
fn a_remote_end_that_lies_gets_no_call_it_may_not_make() {
    use om_remote::relay::Progress;
    use om_remote::syscalls::{Call, Slot, SlotKind};
    let program = build("recursion");
    let mut child = Command::new(&program)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // Running the program (not still the test's fork about to exec it).
    let exe = |pid: i32| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let start = Instant::now();
    while exe(pid).as_deref() != Some(program.as_path()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "it did not start"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let frozen = capture_with(pid, leaving_home()).unwrap();
    let (home_link, remote_link) = pair();
    let (_htx, hrx) = channel::<Cmd>();
    let slot = |arg: u8, kind: SlotKind| Slot { arg, kind };
    let call = |nr: i64, args: [u64; 6], slots: Vec<Slot>| Call {
        nr: nr as u64,
        args,
        slots,
        tty_quiet: 0,
    };
    let lies = vec![
        call(libc::SYS_execve, [0x1000, 0, 0, 0, 0, 0], vec![]),
        call(libc::SYS_fork, [0; 6], vec![]),
        call(
            libc::SYS_ptrace,
            [libc::PTRACE_TRACEME as u64, 0, 0, 0, 0, 0],
            vec![],
        ),
        call(libc::SYS_mmap, [0, 4096, 7, 0x22, u64::MAX, 0], vec![]),
        call(
            libc::SYS_write,
            [2, 0x1000, 4096, 0, 0, 0],
            vec![slot(1, SlotKind::In(b"ten bytes!".to_vec()))],
        ),
        call(libc::SYS_read, [0, 0x7fff_0000_0000, 64, 0, 0, 0], vec![]),
        call(
            libc::SYS_openat,
            [libc::AT_FDCWD as u64, 0x1000, 0, 0, 0, 0],
            vec![slot(1, SlotKind::In(b"/etc/passwd".to_vec()))],
        ),
    ];
    let n_lies = lies.len();
    let liar = std::thread::spawn(move || {
        let reply = |id: u64| loop {
            match remote_link.recv(Some(Duration::from_secs(20))).unwrap() {
                Some(Msg::Reply { id: got, reply, .. }) if got == id => break reply.ret,
                Some(Msg::Reply { id: got, .. }) => panic!("reply to {got}, not {id}"),
                Some(_) => {}
                None => panic!("no reply to call {id} in 20 s"),
            }
        };
        let mut rets = Vec::new();
        for (id, c) in lies.into_iter().enumerate() {
            remote_link
                .send(&Msg::Call {
                    id: id as u64,
                    call: c,
                })
                .unwrap();
            rets.push(reply(id as u64));
        }
        // An honest call still works: the home process's parent is this test.
        let honest = call(libc::SYS_getppid, [0; 6], vec![]);
        remote_link
            .send(&Msg::Call {
                id: 100,
                call: honest,
            })
            .unwrap();
        let ppid = reply(100);
        // No child was forked at home.
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
        remote_link.send(&Msg::Exit(7)).unwrap();
        (rets, ppid, children)
    });
    let refused = Arc::new(Mutex::new(Vec::new()));
    let seen = refused.clone();
    let progress = move |p: Progress| {
        if let Progress::Refused(why) = p {
            seen.lock().unwrap().push(why);
        }
    };
    let end = frozen
        .into_deputy(move |ctl| match ctl {
            Ok(ctl) => run_home(ctl, &home_link, hrx, &progress),
            Err(e) => HomeEnd::Lost(format!("no deputy: {e}")),
        })
        .unwrap();
    let (rets, ppid, children) = liar.join().unwrap();
    assert_eq!(rets, vec![-i64::from(libc::EPERM); n_lies]);
    assert_eq!(ppid, i64::from(std::process::id() as i32));
    assert_eq!(children.trim(), "", "the home process forked");
    let refused = refused.lock().unwrap().clone();
    assert_eq!(refused.len(), n_lies, "{refused:?}");
    assert!(
        refused[0].contains("execve is not a forwarded call"),
        "{refused:?}"
    );
    assert!(refused[4].contains("write: argument 1"), "{refused:?}");
    // It exited as the (lying) remote end said, never having exec'd anything; the
    // deputy reaped it (this test is its parent and, through the deputy, its tracer).
    assert!(
        matches!(end, HomeEnd::Ended(om_remote::ended::Ended::Exited(7))),
        "{end:?}"
    );
    let _ = child.try_wait();
}
