//! omckpt end to end: every test program of tests/testprogs runs natively, then several
//! times with a checkpoint at a random moment followed by a restore (eager and lazy). The
//! output, the exit status and the files it writes must be byte-identical to the native
//! run, and nothing may be left running. Set OMCKPT_SEED to replay the random moments.

use rand::Rng;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const OMCKPT: &str = env!("CARGO_BIN_EXE_omckpt");

/// Builds the test program `tests/testprogs/NAME.c` (see [`om_testprogs::build`]).
fn build(name: &str) -> PathBuf {
    om_testprogs::build(
        name,
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("omckpt-programs"),
    )
}

/// What one program does, as the test sees it.
#[derive(Clone, Copy)]
struct Spec {
    name: &'static str,
    args: &'static [&'static str],
    /// Written to standard input (after a pause, or after the restore).
    stdin: Option<&'static str>,
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    status: Option<i32>,
    signal: Option<i32>,
    files: BTreeMap<String, Vec<u8>>,
}

fn workdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("omckpt-{tag}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn spawn(spec: &Spec, dir: &Path) -> Child {
    Command::new(build("launch"))
        .arg(build(spec.name))
        .args(spec.args)
        .current_dir(dir)
        .env("OMTEST", "hello")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn reader(child: &mut Child) -> JoinHandle<String> {
    let mut out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    })
}

fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                m.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    m
}

fn outcome(stdout: String, status: ExitStatus, dir: &Path) -> Outcome {
    Outcome {
        stdout,
        status: status.code(),
        signal: status.signal(),
        files: files_in(dir),
    }
}

fn feed(child: &mut Child, input: Option<&str>) {
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).unwrap();
    }
}

fn native(spec: &Spec) -> (Outcome, Duration) {
    let dir = workdir("native");
    let t0 = Instant::now();
    let mut child = spawn(spec, dir.path());
    let out = reader(&mut child);
    if spec.stdin.is_some() {
        std::thread::sleep(Duration::from_millis(200));
    }
    feed(&mut child, spec.stdin);
    let status = child.wait().unwrap();
    let took = t0.elapsed();
    (outcome(out.join().unwrap(), status, dir.path()), took)
}

/// `omckpt dump [EXTRA...] PID DIR`, its output collected.
fn dump(pid: u32, dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(OMCKPT)
        .arg("dump")
        .args(extra)
        .arg(pid.to_string())
        .arg(dir)
        .output()
        .unwrap()
}

/// `omckpt restore DIR`, run to its end, its output collected.
fn restore_output(dir: &Path) -> std::process::Output {
    Command::new(OMCKPT)
        .arg("restore")
        .arg(dir)
        .output()
        .unwrap()
}

/// Processes whose working directory is inside `dir` (there must be none left).
fn processes_in(dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) {
            if cwd.starts_with(dir) {
                left.push(name);
            }
        }
    }
    left
}

/// Waits until `launch` has become the program (a process in the middle of execve cannot
/// be traced), at most 5 s.
fn exec_done(pid: u32, name: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        match std::fs::read_link(format!("/proc/{pid}/exe")) {
            Ok(exe)
                if exe
                    .file_name()
                    .is_some_and(|f| f.to_string_lossy() == name.replace('/', "_")) =>
            {
                return
            }
            Err(_) => return,
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// One checkpointed run: start, dump after `delay`, restore, finish.
fn checkpointed(spec: &Spec, delay: f64, lazy: bool) -> Option<Outcome> {
    let dir = workdir(spec.name);
    let ckpt = workdir("image");
    let mut child = spawn(spec, dir.path());
    let before = reader(&mut child);
    let stdin = child.stdin.take();
    exec_done(child.id(), spec.name);
    std::thread::sleep(Duration::from_secs_f64(delay));
    let dump = dump(child.id(), ckpt.path(), &[]);
    if !dump.status.success() {
        let err = String::from_utf8_lossy(&dump.stderr);
        // The program may simply have finished before the dump, or had a child at that
        // moment (which a checkpoint cannot take along): not a failure, no test.
        drop(stdin);
        let st = child.wait().unwrap();
        assert!(
            err.contains("no process") || err.contains("zombie") || err.contains("child processes"),
            "{}: dump failed while it ran: {err}",
            spec.name
        );
        assert!(st.success());
        return None;
    }
    let st = child.wait().unwrap();
    assert_eq!(
        st.signal(),
        Some(9),
        "{}: the original must end after a dump",
        spec.name
    );
    drop(stdin);
    let a = before.join().unwrap();

    let mut cmd = Command::new(OMCKPT);
    cmd.arg("restore");
    if lazy {
        cmd.arg("--lazy");
    }
    let mut restored = cmd
        .arg(ckpt.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let after = reader(&mut restored);
    feed(&mut restored, spec.stdin);
    let status = restored.wait().unwrap();
    let b = after.join().unwrap();
    let left = processes_in(dir.path());
    assert!(
        left.is_empty(),
        "{}: processes left running: {left:?}",
        spec.name
    );
    Some(outcome(a + &b, status, dir.path()))
}

fn run_program(spec: Spec) {
    let mut rng = om_testprogs::seeded_rng("OMCKPT_SEED");
    let (reference, took) = native(&spec);
    assert_eq!(
        reference.status,
        Some(0),
        "{}: native run failed: {}",
        spec.name,
        reference.stdout
    );
    assert!(!reference.stdout.contains("FAIL"), "{}", reference.stdout);
    let window = if spec.stdin.is_some() {
        0.15
    } else {
        took.as_secs_f64() * 0.85
    };
    for lazy in [false, true] {
        let mut tested = 0;
        let mut attempts = 0;
        while tested < 3 {
            attempts += 1;
            assert!(
                attempts < 12,
                "{}: could not checkpoint it while it ran",
                spec.name
            );
            let delay = rng.random_range(0.03..window.max(0.06));
            let mode = if lazy { "lazy" } else { "eager" };
            let Some(got) = checkpointed(&spec, delay, lazy) else {
                continue;
            };
            assert_eq!(
                got, reference,
                "{}: {mode} restore after a checkpoint at {delay:.3}s differs from the native run",
                spec.name
            );
            tested += 1;
        }
    }
}

/// One test per program of the manifest ([`om_testprogs::with_programs`]) that this
/// runner takes. It dumps at random moments, so it sets no `OMTEST_SYNC`: a window is
/// a plain busy wait here.
macro_rules! program_test {
    ($name:ident, $args:expr, $stdin:expr, $window:expr) => {
        #[test]
        fn $name() {
            run_program(Spec {
                name: stringify!($name),
                args: $args,
                stdin: $stdin,
            });
        }
    };
}

om_testprogs::with_programs!(ckpt, program_test);

/// Starts program `name` (no arguments, no input) in a fresh work directory tagged `tag`
/// and lets it run for `ms` milliseconds.
fn started(
    name: &'static str,
    tag: &str,
    ms: u64,
) -> (Child, JoinHandle<String>, tempfile::TempDir) {
    let dir = workdir(tag);
    let spec = Spec {
        name,
        args: &[],
        stdin: None,
    };
    let mut child = spawn(&spec, dir.path());
    let out = reader(&mut child);
    exec_done(child.id(), name);
    std::thread::sleep(Duration::from_millis(ms));
    (child, out, dir)
}

/// A refused dump names the reason and leaves the program running to a normal end.
fn refused(name: &'static str, reason: &str, expected_output: &str) {
    let (mut child, out, _dir) = started(name, "refused", 300);
    let ckpt = workdir("image");
    let dump = dump(child.id(), ckpt.path(), &[]);
    let err = String::from_utf8_lossy(&dump.stderr);
    assert!(!dump.status.success(), "{name}: the dump should be refused");
    assert!(err.contains(reason), "{name}: reason missing from: {err}");
    assert!(
        !ckpt.path().join("image.json").exists(),
        "{name}: a refused dump wrote an image"
    );
    drop(child.stdin.take());
    let st = child.wait().unwrap();
    assert!(st.success(), "{name}: harmed by the refused dump: {st:?}");
    assert_eq!(out.join().unwrap(), expected_output);
}

#[test]
fn refuses_multithreaded() {
    refused(
        "refuse/threads",
        "multi-threaded (2 threads)",
        "threads done\n",
    );
}

#[test]
fn refuses_sysv_shm() {
    refused("refuse/sysv_shm", "SysV shared memory", "shm says shared\n");
}

#[test]
fn refuses_shared_memory_a_live_child_maps() {
    refused(
        "refuse/shared_live",
        "is also mapped by process",
        "child wrote shared\n",
    );
}

/// Shared memory only the process maps is checkpointed with it, but a checkpoint holds
/// only the pages a process changed: the file it mapped and then deleted is named as
/// not found (not "changed") when the restore is refused.
#[test]
fn a_deleted_mapped_file_is_named_not_found_at_restore() {
    let (mut child, _out, _dir) = started("shared_mem", "deleted", 300);
    let ckpt = workdir("image");
    let d = dump(child.id(), ckpt.path(), &[]);
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    child.wait().unwrap();
    let r = restore_output(ckpt.path());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(err.contains(" (deleted) is not found here"), "{err}");
}

/// The calls a capture injects would kill a process in seccomp strict mode: it is
/// refused before any, and runs on to its end.
#[test]
fn refuses_seccomp_strict_mode_unharmed() {
    refused(
        "refuse/seccomp_strict",
        "seccomp strict mode",
        "strict mode survived\n",
    );
}

/// A seccomp filter of its own is not captured: refused (moved without it, the process
/// would be free of what it forbade itself), and it runs on under its filter.
#[test]
fn refuses_a_seccomp_filter_of_its_own_unharmed() {
    refused(
        "refuse/seccomp_filter",
        "seccomp filters of its own",
        "getppid under the filter: Operation not permitted\n",
    );
}

#[test]
fn refuses_pipe_descriptor() {
    refused(
        "refuse/pipe_fd",
        "descriptor 3 is a pipe",
        "pipe still open\n",
    );
}

/// Starts file_write, dumps it with `extra` dump arguments; returns (child, dir, image).
fn dumped(
    extra: &[&str],
) -> (
    Child,
    JoinHandle<String>,
    tempfile::TempDir,
    tempfile::TempDir,
) {
    let (child, out, dir) = started("file_write", "file", 300);
    let ckpt = workdir("image");
    let st = dump(child.id(), ckpt.path(), extra);
    assert!(st.status.success());
    (child, out, dir, ckpt)
}

#[test]
fn restore_refuses_a_shrunk_or_missing_file() {
    let (mut child, _out, dir, ckpt) = dumped(&[]);
    child.wait().unwrap();
    let out = dir.path().join("out.txt");
    std::fs::write(&out, b"short").unwrap();
    let r = restore_output(ckpt.path());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("shrunk to 5 bytes, below the saved offset"),
        "{err}"
    );
    assert!(err.contains("out.txt"), "{err}");
    std::fs::remove_file(&out).unwrap();
    let r = restore_output(ckpt.path());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("cannot reopen descriptor 3") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn leave_running_keeps_the_original_and_the_image_restores_too() {
    let spec = Spec {
        name: "file_write",
        args: &[],
        stdin: None,
    };
    let (reference, _) = native(&spec);
    let (mut child, out, dir, ckpt) = dumped(&["--leave-running"]);
    let st = child.wait().unwrap();
    let original = out.join().unwrap();
    assert!(st.success());
    assert_eq!(outcome(original.clone(), st, dir.path()), reference);
    // The image, taken mid-write, restores against the same file: the process rewrites
    // its second half in place and ends with the same file and output.
    let r = restore_output(ckpt.path());
    assert!(r.status.success());
    let lines = String::from_utf8(r.stdout).unwrap();
    assert_eq!(lines, reference.stdout);
    assert_eq!(files_in(dir.path()), reference.files);
}

#[test]
fn signals_reach_the_restored_process_and_its_death_is_reproduced() {
    let (mut child, _out, dir) = started("nanosleep", "signal", 150);
    let ckpt = workdir("image");
    assert!(dump(child.id(), ckpt.path(), &[]).status.success());
    child.wait().unwrap();
    let mut r = Command::new(OMCKPT)
        .arg("restore")
        .arg(ckpt.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(r.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = r.wait().unwrap();
    assert_eq!(
        st.signal(),
        Some(15),
        "omckpt restore must die as the process did: {st:?}"
    );
    assert!(processes_in(dir.path()).is_empty());
}

#[test]
fn restore_rejects_a_truncated_or_corrupt_image() {
    let (mut child, _out, _dir, ckpt) = dumped(&[]);
    child.wait().unwrap();
    let pages = ckpt.path().join("pages.img");
    let len = std::fs::metadata(&pages).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&pages)
        .unwrap();
    f.set_len(len - 4096).unwrap();
    let r = restore_output(ckpt.path());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains(&format!(
            "holds {} bytes but its index lists {len}",
            len - 4096
        )),
        "{err}"
    );
    std::fs::write(ckpt.path().join("image.json"), b"{\"format\": 1}").unwrap();
    let r = restore_output(ckpt.path());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(err.contains("image.json: not a valid image"), "{err}");
    assert!(processes_in(_dir.path()).is_empty());
}

/// A process with a child cannot be checkpointed (the restored process could never wait
/// for it): the dump is refused, names the child, and the process runs on to its end.
#[test]
fn refuses_a_process_with_children() {
    let sh = Command::new(build("launch"))
        .args(["/bin/sh", "-c", "sleep 1 & wait; echo waited"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let children = format!("/proc/{0}/task/{0}/children", sh.id());
    while std::fs::read_to_string(&children)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(t.elapsed() < Duration::from_secs(5), "sh never forked");
        std::thread::sleep(Duration::from_millis(5));
    }
    let ckpt = workdir("image");
    let dump = dump(sh.id(), ckpt.path(), &[]);
    let err = String::from_utf8_lossy(&dump.stderr);
    assert!(!dump.status.success(), "a parent was checkpointed: {err}");
    assert!(err.contains("has child processes"), "{err}");
    assert!(!ckpt.path().join("image.json").exists());
    let out = sh.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "waited\n");
}
