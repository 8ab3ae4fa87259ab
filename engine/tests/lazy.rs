//! Lazy restore while the process reshapes its memory. The page source is the real
//! checkpoint image, read a little slowly (as over a network), and the program's 64 MiB
//! ballast keeps the background pass busy below its other mappings, so that those are
//! still to come when it moves, shrinks, drops and unmaps them. The pager must see each
//! change, and a moved mapping must get the bytes of its old place.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::build;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup, dup2_stdout, Pid};
use om_engine::error::PageError;
use om_engine::{capture, checkpoint, restore, ImagePages, PageSource, Paging};

/// The image's pages, each read taking `per_page` per page.
struct Slow {
    pages: ImagePages,
    per_page: Duration,
}

impl PageSource for Slow {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), PageError> {
        std::thread::sleep(self.per_page * (buf.len() as u32).div_ceil(4096));
        self.pages.read(addr, buf)
    }
}

/// Starts `bin` through `launch` (so that it holds no descriptor of ours) in `dir`, with
/// its output in `out`, and waits until it is running.
fn start(bin: &Path, dir: &Path, out: File) -> Child {
    let child = Command::new(build("launch"))
        .arg(bin)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let name = bin.file_name().unwrap().to_str().unwrap();
    let comm = format!("/proc/{}/comm", child.id());
    while std::fs::read_to_string(&comm).unwrap_or_default().trim() != name {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Time to make and fill its mappings.
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// Waits (at most a minute) for the restored child `pid` to end.
fn wait_restored(pid: Pid) -> WaitStatus {
    let start = Instant::now();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)).unwrap() {
            WaitStatus::StillAlive => {}
            s => return s,
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            panic!("the restored program hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn moved_shrunk_dropped_and_unmapped_mappings_follow_while_paging_is_lazy() {
    let bin = build("reshape");
    let dir = tempfile::Builder::new()
        .prefix("lazy-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let d = dir.path();

    let mut native = start(&bin, d, File::create(d.join("native.out")).unwrap());
    kill(Pid::from_raw(native.id() as i32), Signal::SIGUSR1).unwrap();
    assert!(native.wait().unwrap().success());
    let want = std::fs::read_to_string(d.join("native.out")).unwrap();
    assert!(want.starts_with("reshaped"), "natively: {want}");

    let mut child = start(&bin, d, File::create(d.join("ignored.out")).unwrap());
    let mut frozen = capture(child.id() as i32).unwrap();
    let image = frozen.image().clone();
    let ckpt = d.join("ckpt");
    checkpoint::write(&ckpt, &image, frozen.memory(), |_, _| {}).unwrap();
    frozen.kill().unwrap();
    // Its tracer, a thread of ours, has reaped it already.
    let _ = child.wait();

    let (image, pages) = checkpoint::read(&ckpt).unwrap();
    let source = Slow {
        pages,
        per_page: Duration::from_micros(20),
    };
    // The restored process's standard output is ours at the moment of restore (as
    // with `omckpt restore`): for that moment, ours is the file.
    let out = File::create(d.join("lazy.out")).unwrap();
    let saved = dup(std::io::stdout()).unwrap();
    dup2_stdout(&out).unwrap();
    let restored = restore(&image, Box::new(source), Paging::Lazy);
    dup2_stdout(&saved).unwrap();
    let mut restored = restored.unwrap();
    let pid = Pid::from_raw(restored.pid());
    kill(pid, Signal::SIGUSR1).unwrap();
    let status = wait_restored(pid);
    let stats = restored.finish_paging().unwrap().unwrap();
    let got = std::fs::read_to_string(d.join("lazy.out")).unwrap();
    assert_eq!(
        (got.as_str(), status),
        (want.as_str(), WaitStatus::Exited(pid, 0)),
        "pager: {stats:?}"
    );
    // The case this test is for happened: the mappings were reshaped before the
    // background pass reached them. (Of the 32 pages moved, a fault nearby may have
    // brought in a few early with its neighbours; likewise of the 56 dropped.)
    assert!(
        stats.moved_pages >= 16,
        "not moved while pending: {stats:?}"
    );
    assert!(
        stats.dropped_pages >= 16,
        "not dropped while pending: {stats:?}"
    );
}
