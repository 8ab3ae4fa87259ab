//! Lazy restore while the process reshapes its memory. The page source is the real
//! checkpoint image, read a little slowly (as over a network), and the program's 64 MiB
//! ballast keeps the background pass busy below its other mappings, so that those are
//! still to come when it moves, shrinks, drops and unmaps them. The pager must see each
//! change, and a moved mapping must get the bytes of its old place.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{build, Cuttable, CUT};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup, dup2_stdout, Pid};
use om_ckpt::error::PageError;
use om_ckpt::{
    capture, checkpoint, restore, ImagePages, PageSource, Paging, ProcessImage, Restored,
};

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

/// Tells `reshape`, running in `dir`, to reshape its mappings.
fn go(dir: &Path) {
    File::create(dir.join("go")).unwrap();
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

/// Starts `bin` in `dir`, checkpoints it into `dir/ckpt` and ends it; returns the
/// checkpoint's directory.
fn checkpointed(bin: &Path, dir: &Path) -> PathBuf {
    let mut child = start(bin, dir, File::create(dir.join("ignored.out")).unwrap());
    let mut frozen = capture(child.id() as i32).unwrap();
    let image = frozen.image().clone();
    // What an offer says of a process before it stops is what its capture finds.
    assert_eq!(image.xcr0, om_ckpt::capture::machine_xcr0());
    assert!(frozen.steps().iter().any(|(name, _)| *name == "page index"));
    let ckpt = dir.join("ckpt");
    checkpoint::write(&ckpt, &image, frozen.memory(), |_, _| {}).unwrap();
    frozen.kill().unwrap();
    // Its tracer, a thread of ours, has reaped it already.
    let _ = child.wait();
    ckpt
}

/// Restores `image` lazily from `source`, its output going to the file `out`.
fn restored_lazily(image: &ProcessImage, source: Box<dyn PageSource>, out: &Path) -> Restored {
    // The restored process's standard output is ours at the moment of restore (as
    // with `omckpt restore`): for that moment, ours is the file.
    let out = File::create(out).unwrap();
    let saved = dup(std::io::stdout()).unwrap();
    dup2_stdout(&out).unwrap();
    let restored = restore(image, source, Paging::Lazy);
    dup2_stdout(&saved).unwrap();
    restored.unwrap()
}

/// Runs `reshape` natively in a new directory named from `prefix`; returns the
/// directory, the program and what it printed.
fn reshaped_natively(prefix: &str) -> (tempfile::TempDir, PathBuf, String) {
    let bin = build("reshape");
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let d = dir.path();
    let mut native = start(&bin, d, File::create(d.join("native.out")).unwrap());
    go(d);
    assert!(native.wait().unwrap().success());
    let want = std::fs::read_to_string(d.join("native.out")).unwrap();
    std::fs::remove_file(d.join("go")).unwrap();
    assert!(want.starts_with("reshaped"), "natively: {want}");
    (dir, bin, want)
}

#[test]
fn moved_shrunk_dropped_and_unmapped_mappings_follow_while_paging_is_lazy() {
    let (dir, bin, want) = reshaped_natively("lazy-");
    let d = dir.path();

    let ckpt = checkpointed(&bin, d);
    let (image, pages) = checkpoint::read(&ckpt).unwrap();
    let source = Slow {
        pages,
        per_page: Duration::from_micros(20),
    };
    let mut restored = restored_lazily(&image, Box::new(source), &d.join("lazy.out"));
    let pid = Pid::from_raw(restored.pid());
    go(d);
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

/// The source fails once the process is restored: the pages it could not supply are
/// poisoned, so the program dies of SIGBUS when it reaches one, instead of reading zeros
/// and going on (before, the pager just ended and the kernel filled every missing page
/// with zeros); the pager reports the source's error.
#[test]
fn pages_a_failed_source_cannot_supply_raise_sigbus_instead_of_reading_zeros() {
    let bin = build("reshape");
    let dir = tempfile::Builder::new()
        .prefix("lazy-fail-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let d = dir.path();
    let ckpt = checkpointed(&bin, d);
    let (image, pages) = checkpoint::read(&ckpt).unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let source = Cuttable {
        pages,
        cut: cut.clone(),
    };
    let mut restored = restored_lazily(&image, Box::new(source), &d.join("lazy.out"));
    cut.store(true, Ordering::SeqCst);
    let pid = Pid::from_raw(restored.pid());
    go(d);
    let status = wait_restored(pid);
    let paging = restored.finish_paging();
    let out = std::fs::read_to_string(d.join("lazy.out")).unwrap();
    assert_eq!(
        status,
        WaitStatus::Signaled(pid, Signal::SIGBUS, false),
        "output: {out:?}; pager: {paging:?}"
    );
    assert_eq!(out, "", "it printed before it died");
    match paging {
        Err(PageError::Io { source, .. }) => {
            assert_eq!(source.to_string(), CUT)
        }
        other => panic!("the pager should report the source's error: {other:?}"),
    }
}

/// The original process itself (frozen), read a little slowly; it says which anonymous
/// pages hold data as a home node would, and counts how often it was asked.
struct Original {
    mem: om_ckpt::ProcessMemory,
    per_page: Duration,
    asked: Arc<std::sync::atomic::AtomicU32>,
}

impl PageSource for Original {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), PageError> {
        std::thread::sleep(self.per_page * (buf.len() as u32).div_ceil(4096));
        self.mem.read(addr, buf)
    }
    fn anon_index(
        &mut self,
        ranges: &[(u64, u64)],
    ) -> Result<Vec<om_ckpt::image::PageRun>, PageError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.mem.anon_index(ranges)
    }
    fn reads_any_address(&self) -> bool {
        true
    }
}

/// A lazy migration's capture leaves the anonymous pages out of the index (the walk of
/// the page tables stays out of the freeze). Restored lazily, the program runs on as
/// natively while it reshapes its mappings; the pager asks the original once which
/// pages hold data, and fills only those (and the pages the program itself touches
/// first): the pages that were empty at home stay empty, not written with zeros.
#[test]
fn anonymous_pages_listed_after_the_freeze_come_and_empty_ones_stay_empty() {
    let (dir, bin, want) = reshaped_natively("lazy-unlisted-");
    let d = dir.path();

    let mut child = start(&bin, d, File::create(d.join("ignored.out")).unwrap());
    let pid = child.id() as i32;
    let opts = om_ckpt::Options {
        anon_index_later: true,
        ..Default::default()
    };
    let frozen = om_ckpt::capture_with(pid, opts).unwrap();
    let image = frozen.image().clone();
    assert!(image.anon_unlisted);
    let anon: Vec<_> = image
        .vmas
        .iter()
        .filter(|v| v.backing == om_ckpt::image::Backing::Anon)
        .collect();
    assert!(
        !image
            .pages
            .iter()
            .any(|r| anon.iter().any(|v| v.start <= r.addr && r.addr < v.end)),
        "the image lists anonymous pages"
    );
    let listed: u64 = om_ckpt::capture::anon_index(pid, &image.vmas)
        .unwrap()
        .iter()
        .map(|r| r.pages)
        .sum();
    let room: u64 = anon.iter().map(|v| v.len() / 4096).sum();
    assert!(listed > 0 && listed < room, "listed {listed} of {room}");

    // An eager restore of such an image is refused, naming why.
    let eager = om_ckpt::ProcessMemory::open(pid).unwrap();
    let e = restore(&image, Box::new(eager), Paging::Eager)
        .err()
        .unwrap();
    assert!(e.to_string().contains("does not list"), "{e}");

    let asked = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let source = Original {
        mem: om_ckpt::ProcessMemory::open(pid).unwrap(),
        per_page: Duration::from_micros(5),
        asked: asked.clone(),
    };
    let mut restored = restored_lazily(&image, Box::new(source), &d.join("lazy.out"));
    let rpid = Pid::from_raw(restored.pid());
    go(d);
    let status = wait_restored(rpid);
    let stats = restored.finish_paging().unwrap().unwrap();
    frozen.kill().unwrap();
    let _ = child.wait();
    let got = std::fs::read_to_string(d.join("lazy.out")).unwrap();
    assert_eq!(
        (got.as_str(), status),
        (want.as_str(), WaitStatus::Exited(rpid, 0)),
        "pager: {stats:?}"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1, "{stats:?}");
    assert!(stats.empty_pages > 0, "{stats:?}");
    // Before the index came, each fault brought its own page only.
    let filled = stats.fault_pages + stats.background_pages;
    assert!(
        filled <= listed + stats.faults,
        "filled {filled} pages, {listed} held data: {stats:?}"
    );
}
