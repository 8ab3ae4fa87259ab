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
use std::time::Duration;

mod common;

use common::{build, Cuttable, CUT};
use om_engine::guest::Guest;
use om_engine::relay::{run_home, run_remote, Command as Cmd, HomeEnd, Link, Msg};
use om_engine::{capture_with, Options, Paging, ProcessMemory};

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
    run_cut(name, args, migrate_after, home_after, false)
}

/// [`run_args`]; with `cut`, the guest's page source fails from the moment it starts
/// (after which the program is let go: `reshape` waits for a file `go`).
fn run_cut(
    name: &str,
    args: &[&str],
    migrate_after: Option<f64>,
    home_after: Option<f64>,
    cut: bool,
) -> (Outcome, String) {
    let dir = tempfile::Builder::new()
        .prefix("relay-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    // The guest runs as nobody; the files it writes are written at home by the deputy.
    // A shell is the program's parent (the test is its tracer) and reports its status.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("\"$@\"; echo \"status $?\"")
        .arg("sh")
        .arg(build("launch"))
        .arg(build(name))
        .args(args)
        .current_dir(dir.path())
        .env("OMTEST", "hello")
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
    let mut how = String::new();
    let pid = loop {
        let c = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .unwrap_or_default();
        if let Some(p) = c.split_whitespace().next() {
            break p.parse::<i32>().unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if let Some(t) = migrate_after {
        std::thread::sleep(Duration::from_secs_f64(t));
        let frozen = capture_with(
            pid,
            Options {
                keep_files: true,
                while_stopping: None,
            },
        )
        .unwrap();
        let image = frozen.image().clone();
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
        let (_htx, hrx) = channel::<Cmd>();
        let (rtx, rrx) = channel::<Cmd>();
        let remote = std::thread::spawn(move || run_remote(guest, remote_link.as_ref(), &rrx));
        // The request to come home is sent while both ends run (into_deputy returns only
        // when the home end is done).
        let asker = home_after.map(|h| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs_f64(h));
                let _ = rtx.send(Cmd::ComeHome);
            })
        });
        let home = frozen
            .into_deputy(move |ctl| match ctl {
                Ok(ctl) => run_home(ctl, &home_link, &hrx, &|_| {}),
                Err(e) => HomeEnd::Lost(format!("no deputy: {e}")),
            })
            .unwrap();
        let r = remote.join().unwrap();
        if let Some(a) = asker {
            a.join().unwrap();
        }
        how = format!("{:?} / {:?}", home, r);
    }
    let st = child.wait().unwrap();
    let stdout = reader.join().unwrap();
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
    (
        Outcome {
            stdout,
            code: st.code(),
            signal: st.signal(),
            files,
        },
        how,
    )
}

fn same(name: &str) {
    let (native, _) = run(name, None, None);
    assert_eq!(native.code, Some(0), "{name}: {}", native.stdout);
    let (moved, how) = run(name, Some(0.05), None);
    assert_eq!(moved, native, "{name} migrated: {how}");
    eprintln!("{name}: {how}");
    assert!(
        how.starts_with("Ended(Exited(0))") || how.starts_with("CameHome"),
        "{name}: {how}"
    );
}

fn there_and_back(name: &str) {
    let (native, _) = run(name, None, None);
    let (moved, how) = run(name, Some(0.05), Some(0.1));
    assert_eq!(moved, native, "{name} migrated and brought home: {how}");
    eprintln!("{name}: {how}");
    assert!(
        how.starts_with("CameHome"),
        "{name} did not come home: {how}"
    );
}

macro_rules! relay_tests {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            same(stringify!($name));
            there_and_back(stringify!($name));
        }
    )*};
}

relay_tests!(
    altstack,
    attrs,
    avx,
    bigheap,
    brk,
    checksum,
    cwd,
    env_argv,
    file_flags,
    file_read,
    file_write,
    fork_after,
    fpu,
    itimer,
    mappings,
    mmap_file,
    mprotect,
    nanosleep,
    pending,
    recursion,
    rseq_robust,
    sighandler,
    stdio_buffered,
    tls,
    vdso_time
);

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
    let (moved, how) = run_cut("reshape", &[], Some(0.05), None, true);
    assert_eq!(moved.stdout, "status 135\n", "{how}");
    let end = how.split(" / ").nth(1).unwrap_or_default();
    assert!(
        end.starts_with("Ended { lost_pages: Some(") && end.contains(CUT),
        "the remote end did not say pages were lost: {how}"
    );
}
