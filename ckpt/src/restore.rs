//! Restore: fork a stub, trace it, and turn it into the captured process by injecting
//! system calls: drop the stub's own mappings, move its vDSO to the original's addresses,
//! recreate every mapping at its original address, fill memory (eagerly, or lazily through
//! userfaultfd), restore signal state, files, limits and identity, then set the registers
//! and let it run.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
use nix::sys::ptrace;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::capture::{file_id, u64_at};
use crate::cow;
use crate::error::{InjectError, PageError, RestoreError};
use crate::image::*;
use crate::inject::{Injector, Queued};
use crate::lazy::{LazyPager, PagerStats};
use crate::pages::{PageSource, ProcessMemory};
use crate::ranges::RangeMap;
use crate::sys;
use crate::tracer::TracerThread;

/// How memory reaches the restored process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// Every page is copied before the process runs.
    Eager,
    /// The process runs at once; userfaultfd supplies each page on first touch (with its
    /// neighbours), and a background pass fills in the rest.
    Lazy,
}

/// A restored, running process.
pub struct Restored {
    pid: i32,
    pager: Option<LazyPager>,
    steps: StepTimes,
}

impl Restored {
    /// Its pid (a new one: the original's pid is not reused).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// How long each step of the restore took while the process was stopped (for a
    /// breakdown of where the time goes; `ckpt-bench` prints it).
    pub fn steps(&self) -> &[(&'static str, Duration)] {
        &self.steps
    }

    /// Whether paging is over (always for eager restore): every page is in place, or the
    /// source failed and the rest were poisoned. Does not wait.
    pub fn paging_done(&self) -> bool {
        self.pager.as_ref().is_none_or(LazyPager::is_finished)
    }

    /// Waits until every page is in place (at once for eager restore), after which the
    /// page source has been dropped and the process depends on nothing else.
    pub fn finish_paging(&mut self) -> Result<Option<PagerStats>, PageError> {
        match self.pager.take() {
            Some(p) => p.join().map(Some),
            None => Ok(None),
        }
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        let _ = self.finish_paging();
    }
}

/// Size of the stub's scratch area: one page of code, the rest for arguments.
const SCRATCH_LEN: u64 = 16 * PAGE_SIZE;
/// Highest user address (47-bit address space).
const TASK_END: u64 = 0x7fff_ffff_f000;
const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;

/// The mapped files of `image` that this node lacks, or holds with other contents: the
/// restored process cannot map them from here. With a source that reads any address of
/// the original ([`PageSource::reads_any_address`]: a migration), such a mapping becomes
/// anonymous memory filled from the original's own view of the file; otherwise (a
/// checkpoint, which carries only the pages the process changed) it is refused, saying
/// whether the file is not found or has changed.
pub fn foreign_files(
    image: &ProcessImage,
    any_address: bool,
) -> Result<HashSet<String>, RestoreError> {
    let mut foreign = HashSet::new();
    let mut seen = HashSet::new();
    for v in &image.vmas {
        let Backing::File(id) = &v.backing else {
            continue;
        };
        if !seen.insert(id.path.as_str()) {
            continue;
        }
        let why = match file_id(std::path::Path::new(&id.path)) {
            Err(e) if !any_address => {
                return Err(RestoreError::FileNotFound {
                    path: id.path.clone(),
                    why: e.to_string(),
                })
            }
            Err(_) => Some(String::new()),
            Ok(here) if here.size != id.size => {
                Some(format!("size {} instead of {}", here.size, id.size))
            }
            Ok(here) if here.hash != id.hash => Some("different contents".into()),
            Ok(_) => None,
        };
        match why {
            None => {}
            Some(_) if any_address => {
                foreign.insert(id.path.clone());
            }
            Some(why) => {
                return Err(RestoreError::FileChanged {
                    path: id.path.clone(),
                    why,
                })
            }
        }
    }
    Ok(foreign)
}

/// Refuses an image that does not list its anonymous pages unless it is restored lazily
/// from the original (`any_address`): the pager asks the original which of them hold
/// data once the process runs.
fn unlisted_restorable(
    image: &ProcessImage,
    paging: Paging,
    any_address: bool,
) -> Result<(), RestoreError> {
    if image.anon_unlisted && (paging == Paging::Eager || !any_address) {
        return Err(RestoreError::Incompatible(
            "the image does not list its anonymous pages: it can only be restored \
             lazily, from the original process"
                .into(),
        ));
    }
    Ok(())
}

/// Checks what can be checked before anything is created: the image's version, that an
/// image which does not list its anonymous pages is restored lazily from the original,
/// its mapped files (see [`foreign_files`], whose answer it returns), the executable and
/// the descriptors to reopen.
pub fn check_restorable(
    image: &ProcessImage,
    paging: Paging,
    any_address: bool,
) -> Result<HashSet<String>, RestoreError> {
    if !READS_VERSIONS.contains(&image.version) {
        return Err(RestoreError::Incompatible(format!(
            "image version {} (this engine reads versions {} to {})",
            image.version,
            READS_VERSIONS.start(),
            READS_VERSIONS.end()
        )));
    }
    unlisted_restorable(image, paging, any_address)?;
    let foreign = foreign_files(image, any_address)?;
    // A migrated process needs no executable here: its code is memory like any other,
    // and /proc/self/exe is asked of home.
    if let Err(e) = std::fs::metadata(&image.exe) {
        if !any_address {
            return Err(RestoreError::FileNotFound {
                path: image.exe.clone(),
                why: format!("the executable: {e}"),
            });
        }
    }
    for f in &image.files {
        let meta = std::fs::metadata(&*own_path(&f.path, image.pid)).map_err(|e| {
            RestoreError::FileGone {
                fd: f.fd,
                path: f.path.clone(),
                why: e.to_string(),
            }
        })?;
        if meta.is_file() && meta.len() < f.pos {
            return Err(RestoreError::FileGone {
                fd: f.fd,
                path: f.path.clone(),
                why: format!(
                    "it has shrunk to {} bytes, below the saved offset {}",
                    meta.len(),
                    f.pos
                ),
            });
        }
    }
    Ok(foreign)
}

/// The path by which the restored process reopens a descriptor the original, pid `pid`,
/// had open on `path`. One of the original's own files under `/proc` (its `environ`, say,
/// opened as `/proc/self/environ`) becomes the same file of the process that opens it:
/// `/proc/self/...`, or `/proc/thread-self/...` for its thread's. The restored process
/// opens it itself, and its command line and environment read the same as the original's.
fn own_path(path: &str, pid: i32) -> std::borrow::Cow<'_, str> {
    let own = format!("/proc/{pid}");
    let Some(rest) = path.strip_prefix(&own) else {
        return path.into();
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return path.into();
    }
    let thread = format!("/task/{pid}");
    match rest.strip_prefix(&thread) {
        Some(r) if r.is_empty() || r.starts_with('/') => format!("/proc/thread-self{r}").into(),
        _ => format!("/proc/self{rest}").into(),
    }
}

/// Restores `image` as a new child process of the caller, taking memory from `source`.
pub fn restore(
    image: &ProcessImage,
    source: Box<dyn PageSource>,
    paging: Paging,
) -> Result<Restored, RestoreError> {
    restore_as(image, source, paging, Mode::Fresh).map(|(r, _)| r)
}

/// Restores `image` as a confined process (see [`Mode::Confined`]) on the calling
/// thread, which must be the one that will trace and supervise it: `confine` may tie
/// the process's life to this thread (a parent-death signal). Returns it, the
/// descriptor `confine` gave, and the files it maps from `source` (see
/// [`foreign_files`]).
pub fn restore_confined_here(
    image: &ProcessImage,
    source: Box<dyn PageSource>,
    paging: Paging,
    (uid, gid): (u32, u32),
    confine: Confine,
) -> Result<(Restored, OwnedFd, HashSet<String>), RestoreError> {
    let foreign = check_restorable(image, paging, source.reads_any_address())?;
    let mode = Mode::Confined { uid, gid, confine };
    let (pid, (pager, listener, steps)) = restore_on_tracer(image, source, paging, mode, &foreign)?;
    let listener = listener
        .ok_or_else(|| RestoreError::Incompatible("confining gave no descriptor".into()))?;
    Ok((Restored { pid, pager, steps }, listener, foreign))
}

fn restore_as(
    image: &ProcessImage,
    source: Box<dyn PageSource>,
    paging: Paging,
    mode: Mode,
) -> Result<(Restored, Option<OwnedFd>), RestoreError> {
    let foreign = check_restorable(image, paging, source.reads_any_address())?;
    let tracer = TracerThread::spawn("om-restore").map_err(|source| RestoreError::Sys {
        what: "starting the tracer thread".into(),
        source,
    })?;
    let image = image.clone();
    let (pid, (pager, listener, steps)) = tracer
        .run(move || restore_on_tracer(&image, source, paging, mode, &foreign))
        .map_err(|source| RestoreError::Sys {
            what: "tracer thread".into(),
            source,
        })??;
    Ok((Restored { pid, pager, steps }, listener))
}

/// Kills the half-made stub unless disarmed.
struct StubGuard(Option<Pid>);

impl Drop for StubGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = kill(p, Signal::SIGKILL);
            let _ = waitpid(p, Some(WaitPidFlag::__WALL));
        }
    }
}

fn sys_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RestoreError {
    let what = what.into();
    move |source| RestoreError::Sys { what, source }
}

fn step(name: impl Into<String>) -> impl FnOnce(InjectError) -> RestoreError {
    let step = name.into();
    move |source| RestoreError::Step { step, source }
}

/// `start-end name` of every mapping of a process.
fn read_maps(pid: &str) -> std::io::Result<Vec<(u64, u64, String)>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((s, e)) = it.next().and_then(|r| r.split_once('-')) else {
            continue;
        };
        let name = it.nth(4).unwrap_or("").to_string();
        let (Ok(s), Ok(e)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else {
            continue;
        };
        out.push((s, e, name));
    }
    Ok(out)
}

/// The lowest address `>= lo` where `len` bytes fit between the `occupied` ranges, each
/// kept `margin` bytes away.
pub fn find_gap(occupied: &[(u64, u64)], len: u64, lo: u64, margin: u64) -> Option<u64> {
    let mut occ: Vec<(u64, u64)> = occupied
        .iter()
        .map(|&(s, e)| (s.saturating_sub(margin), e.saturating_add(margin)))
        .collect();
    occ.sort_unstable();
    let mut cand = lo;
    for (s, e) in occ {
        if e <= cand {
            continue;
        }
        if s >= cand + len {
            break;
        }
        cand = cand.max(e);
    }
    (cand + len <= TASK_END).then_some(cand)
}

/// Installs what confines a restored process (a seccomp filter), as its last step
/// before the registers, through the restore's injector, and returns a descriptor for
/// the caller to keep (the filter's listener).
pub type Confine = fn(&mut Injector, Pid) -> Result<OwnedFd, RestoreError>;

/// What the restored process is to become.
#[derive(Clone, Copy)]
pub enum Mode {
    /// A new process with the image's identity, descriptors and directory.
    Fresh,
    /// A new process as an unprivileged user, with no descriptors and `/` as its
    /// directory, confined at the end by `confine`, whose descriptor goes to the caller.
    Confined {
        /// Its user.
        uid: u32,
        /// Its group.
        gid: u32,
        /// What confines it.
        confine: Confine,
    },
    /// The original process itself, still there (stopped under ptrace), becoming the
    /// image again: it keeps its descriptors, directory, identity and umask, and the
    /// mappings it shares copy-on-write with another process where they are unchanged
    /// (see [`crate::cow`]).
    InPlace,
}

fn restore_on_tracer(
    image: &ProcessImage,
    source: Box<dyn PageSource>,
    paging: Paging,
    mode: Mode,
    foreign: &HashSet<String>,
) -> Result<(i32, Rebuilt), RestoreError> {
    // A scratch area free in both the target layout and ours (the stub starts as our copy).
    let mut occupied: Vec<(u64, u64)> = image.vmas.iter().map(|v| (v.start, v.end)).collect();
    occupied.extend(
        read_maps("self")
            .map_err(sys_err("reading /proc/self/maps"))?
            .iter()
            .map(|m| (m.0, m.1)),
    );
    let scratch = find_gap(&occupied, SCRATCH_LEN, 0x1000_0000, 4 << 20)
        .ok_or_else(|| RestoreError::Incompatible("no room for the restore scratch area".into()))?;

    // Tracer and stub share one CPU while the stub is driven: every injected call is a
    // round trip between them, several times slower across CPUs.
    let all_cpus =
        sched_getaffinity(Pid::from_raw(0)).map_err(|e| sys_err("sched_getaffinity")(e.into()))?;
    if let Ok(cpu) = sched_getcpu() {
        let mut one = CpuSet::new();
        if one.set(cpu).is_ok() {
            let _ = sched_setaffinity(Pid::from_raw(0), &one);
        }
    }
    let stub = sys::fork_stub(scratch, SCRATCH_LEN as usize, &[0x0f, 0x05, 0xcc])
        .map_err(sys_err("forking the restore stub"))?;
    let mut guard = StubGuard(Some(stub));
    match waitpid(stub, Some(WaitPidFlag::__WALL)) {
        Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
        other => {
            return Err(RestoreError::Sys {
                what: "starting the restore stub".into(),
                source: std::io::Error::other(format!("unexpected state {other:?}")),
            })
        }
    }
    let built = rebuild(
        stub,
        scratch,
        SCRATCH_LEN,
        image,
        source,
        paging,
        mode,
        foreign,
    );
    // This thread may live on (a guest's supervisor): give it back every CPU.
    let _ = sched_setaffinity(Pid::from_raw(0), &all_cpus);
    let (pager, listener, steps) = built?;
    let _ = sched_setaffinity(stub, &all_cpus);
    ptrace::detach(stub, None)
        .map_err(|e| step("detach")(InjectError::Ptrace("PTRACE_DETACH", e)))?;
    guard.0 = None;
    if let Some(p) = &pager {
        p.release();
    }
    Ok((stub.as_raw(), (pager, listener, steps)))
}

/// The part of file mapping `v` (of a file of `size` bytes) that the file backs: its
/// pages past the file's last page fault with SIGBUS natively, and the original's copy
/// cannot be read there either.
fn file_backed_run(v: &Vma, size: u64) -> Option<PageRun> {
    let file_end = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let len = v.len().min(file_end.saturating_sub(v.offset));
    (len > 0).then_some(PageRun {
        addr: v.start,
        pages: len / PAGE_SIZE,
    })
}

/// Makes the stopped process `pid`, traced by the calling thread and still there (the
/// original, kept frozen while its image was elsewhere), the process of `image` again,
/// with memory from `source` copied in before it runs (see [`Mode::InPlace`]). A
/// `syscall` instruction is at `scratch`, whose first page is code and the rest room for
/// arguments; `foreign` are the mapped files this node lacks ([`foreign_files`]).
/// Leaves it stopped with the image's registers; the area is unmapped.
pub fn restore_in_place(
    pid: Pid,
    (scratch, scratch_len): (u64, u64),
    image: &ProcessImage,
    source: Box<dyn PageSource>,
    foreign: &HashSet<String>,
) -> Result<(), RestoreError> {
    unlisted_restorable(image, Paging::Eager, source.reads_any_address())?;
    let mode = Mode::InPlace;
    rebuild(
        pid,
        scratch,
        scratch_len,
        image,
        source,
        Paging::Eager,
        mode,
        foreign,
    )
    .map(drop)
}

/// Turns the stopped tracee `stub` into the process of `image`. A `syscall` instruction
/// is at `scratch`, whose first page is code and the rest room for arguments; the whole
/// area is unmapped at the end. Leaves the tracee stopped with the image's registers.
///
/// Mappings of the `foreign` files (see [`foreign_files`]) become anonymous memory whose
/// every page comes from `source`, like the process's own anonymous memory.
#[allow(clippy::too_many_arguments)]
fn rebuild(
    stub: Pid,
    scratch: u64,
    scratch_len: u64,
    image: &ProcessImage,
    source: Box<dyn PageSource>,
    paging: Paging,
    mode: Mode,
    foreign: &HashSet<String>,
) -> Result<Rebuilt, RestoreError> {
    // Signals wait until the end (timers restored below fire meanwhile).
    sys::set_sigmask(stub, u64::MAX).map_err(sys_err("blocking signals"))?;

    // CPU state format.
    let local_xstate = sys::get_xstate(stub).map_err(sys_err("reading XSAVE state"))?;
    let local_xcr0 = sys::arch::xstate_xcr0(&local_xstate);
    if local_xstate.len() != image.xstate.len() || image.xcr0 & !local_xcr0 != 0 {
        return Err(RestoreError::Incompatible(format!(
            "CPU state differs: image XSAVE area {} bytes with features {:#x}, this CPU {} bytes with {:#x}",
            image.xstate.len(),
            image.xcr0,
            local_xstate.len(),
            local_xcr0
        )));
    }

    let mut inj = Injector::new(stub, scratch).map_err(step("attach"))?;
    inj.scratch = scratch + PAGE_SIZE;
    inj.scratch_len = scratch_len - PAGE_SIZE;
    // The batch loop goes in the stub's code page, after its `syscall; int3`.
    inj.load_batch_code(scratch + 64)
        .map_err(step("load the batch loop"))?;
    let home = matches!(mode, Mode::InPlace);
    // Coming home, mappings shared copy-on-write with a child stay (see `cow`).
    let kept = if home {
        cow::shared_at_home(stub.as_raw(), image)
    } else {
        Vec::new()
    };
    let fixed = Fixed {
        stub,
        image,
        mode,
        paging,
        scratch,
        scratch_len,
        s: inj.scratch,
        home,
    };
    let mut b = Build {
        fixed,
        inj,
        foreign: foreign.clone(),
        kept,
        source: Some(source),
        stub_vdso: Vec::new(),
        pager: None,
        listener: None,
    };
    let mut times = Vec::with_capacity(STEPS.len());
    for (name, step) in STEPS {
        let t = Instant::now();
        step(&mut b)?;
        times.push((name, t.elapsed()));
    }
    Ok((b.pager, b.listener, times))
}

/// `ranges` (in address order) with every run of ranges that adjoin one another made one.
fn adjoining(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges {
        match out.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => out.push((start, end)),
        }
    }
    out
}

/// Whether `v` maps one of the `foreign` files (see [`foreign_files`]).
fn foreign_mapping(foreign: &HashSet<String>, v: &Vma) -> bool {
    matches!(&v.backing, Backing::File(id) if foreign.contains(&id.path))
}

/// What every step of a rebuild reads and none changes.
#[derive(Clone, Copy)]
struct Fixed<'a> {
    stub: Pid,
    image: &'a ProcessImage,
    mode: Mode,
    paging: Paging,
    /// The scratch area: its first page holds the `syscall` instruction.
    scratch: u64,
    scratch_len: u64,
    /// The injector's room for arguments, after that page.
    s: u64,
    /// The original process itself is the stub ([`Mode::InPlace`]).
    home: bool,
}

/// What a rebuild carries from step to step.
struct Build<'a> {
    fixed: Fixed<'a>,
    inj: Injector,
    /// The mapped files this node lacks (grown by those the process cannot open).
    foreign: HashSet<String>,
    /// Coming home, the mappings kept as they are (see `cow`).
    kept: Vec<cow::Kept>,
    /// Where memory comes from, until the fill step takes it.
    source: Option<Box<dyn PageSource>>,
    /// The stub's own vDSO and vvar areas, as step 1 found them.
    stub_vdso: Vec<(u64, u64, String)>,
    pager: Option<LazyPager>,
    listener: Option<OwnedFd>,
}

/// What a rebuild leaves: the pager (lazy paging), the descriptor confinement gave, and
/// how long each step took.
type Rebuilt = (Option<LazyPager>, Option<OwnedFd>, StepTimes);

/// How long each step of a restore took, by name, in order (the process is stopped
/// throughout).
pub type StepTimes = Vec<(&'static str, Duration)>;

/// Times steps that follow one another (a capture's, a migration's).
pub struct Laps {
    at: Instant,
    /// The steps ended so far, with their times.
    pub steps: StepTimes,
}

impl Laps {
    /// The first step begins now.
    pub fn new() -> Laps {
        Laps::since(Instant::now())
    }

    /// The first step began at `at`.
    pub fn since(at: Instant) -> Laps {
        Laps {
            at,
            steps: Vec::with_capacity(8),
        }
    }

    /// Ends step `name` (begun where the last one ended).
    pub fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.steps.push((name, now - self.at));
        self.at = now;
    }

    /// Ends step `name`, of which `part` was step `part_name`.
    pub fn lap_with(&mut self, name: &'static str, part_name: &'static str, part: Duration) {
        let now = Instant::now();
        self.steps
            .push((name, (now - self.at).saturating_sub(part)));
        self.steps.push((part_name, part));
        self.at = now;
    }
}

impl Default for Laps {
    fn default() -> Laps {
        Laps::new()
    }
}

/// One step of a rebuild.
type Step = fn(&mut Build<'_>) -> Result<(), RestoreError>;

/// The steps of a rebuild, in order, with short names for timing tables: shed the stub's
/// own state; move the vDSO; recreate the mappings; fill memory (or start the pager);
/// signal state and timers; process attributes and layout; identity and directory;
/// open files; queued signals; confinement; registers. Each says in its own errors what
/// it was doing.
const STEPS: [(&str, Step); 11] = [
    ("shed", |b| b.shed_stub()),
    ("vdso", |b| b.place_vdso()),
    ("map", |b| b.map_memory()),
    ("fill", |b| b.fill_memory()),
    ("signals", |b| b.signals()),
    ("attrs", |b| b.attributes()),
    ("identity", |b| b.identity()),
    ("files", |b| b.files()),
    ("queued", |b| b.queue_signals()),
    ("confine", |b| b.confine()),
    ("regs", |b| b.registers()),
];

impl Build<'_> {
    fn shed_stub(&mut self) -> Result<(), RestoreError> {
        let Fixed {
            stub,
            mode,
            scratch,
            scratch_len,
            home,
            ..
        } = self.fixed;
        let Build {
            inj,
            kept,
            stub_vdso,
            ..
        } = self;
        // 1. Shed the stub's own state: rseq, descriptors, mappings.
        if let Some(r) = sys::get_rseq(stub).map_err(sys_err("reading the stub's rseq"))? {
            inj.call(
                "rseq",
                libc::SYS_rseq,
                &[r.addr, r.len as u64, 1, r.signature as u64],
            )
            .map_err(step("unregister the stub's rseq"))?;
        }
        if !home {
            let first = if matches!(mode, Mode::Confined { .. }) {
                0
            } else {
                3
            };
            inj.call(
                "close_range",
                libc::SYS_close_range,
                &[first, u32::MAX as u64, 0],
            )
            .map_err(step("close the stub's descriptors"))?;
        }
        let stub_maps = read_maps(&stub.to_string()).map_err(sys_err("reading the stub's maps"))?;
        let vdso: Vec<(u64, u64, String)> = stub_maps
            .iter()
            .filter(|m| m.2 == "[vdso]" || m.2.starts_with("[vvar"))
            .cloned()
            .collect();
        let mut keep: Vec<(u64, u64)> = vdso.iter().map(|m| (m.0, m.1)).collect();
        keep.push((scratch, scratch + scratch_len));
        keep.extend(kept.iter().map(|k| (k.start, k.end)));
        keep.sort_unstable();
        let mut at = PAGE_SIZE;
        for &(s0, e0) in keep.iter().chain(std::iter::once(&(TASK_END, TASK_END))) {
            if s0 > at {
                inj.call("munmap", libc::SYS_munmap, &[at, s0 - at])
                    .map_err(step("unmap the stub's memory"))?;
            }
            at = at.max(e0);
        }
        *stub_vdso = vdso;
        Ok(())
    }

    fn place_vdso(&mut self) -> Result<(), RestoreError> {
        let Fixed {
            image,
            scratch,
            scratch_len,
            ..
        } = self.fixed;
        let Build { inj, stub_vdso, .. } = self;
        // 2. Move the vDSO (all its parts together) to the original's addresses.
        let target_vdso: Vec<&Vma> = image
            .vmas
            .iter()
            .filter(|v| matches!(v.backing, Backing::Vdso { .. }))
            .collect();
        move_vdso(inj, stub_vdso, &target_vdso, image, (scratch, scratch_len))?;
        Ok(())
    }

    fn map_memory(&mut self) -> Result<(), RestoreError> {
        let Fixed { image, .. } = self.fixed;
        let Build {
            inj,
            foreign,
            kept,
            source,
            ..
        } = self;
        // 3. Recreate every mapping. The files are opened first, by the process itself: one
        //    it cannot open (coming home into a chroot of its own, an executable it may run
        //    but not read) is taken like a foreign file, from the source, when it can.
        let mut file_fds: HashMap<String, u64> = HashMap::new();
        for v in &image.vmas {
            let Backing::File(id) = &v.backing else {
                continue;
            };
            if foreign.contains(&id.path) || file_fds.contains_key(&id.path) {
                continue;
            }
            match inj.open(&id.path, libc::O_RDONLY | libc::O_CLOEXEC) {
                Ok(fd) => {
                    file_fds.insert(id.path.clone(), fd);
                }
                Err(InjectError::Failed { .. })
                    if source.as_ref().is_some_and(|src| src.reads_any_address()) =>
                {
                    foreign.insert(id.path.clone());
                }
                Err(e) => return Err(step(format!("open {}", id.path))(e)),
            }
        }
        // The calls go in batches (a process may have tens of thousands of mappings);
        // `whose` names, per call, the mapping it is for.
        let mut calls = Vec::with_capacity(image.vmas.len());
        let mut whose = Vec::with_capacity(image.vmas.len());
        let mut queue = |i: usize, nr: i64, args: [u64; 6], may_fail: bool| {
            calls.push(Queued { nr, args, may_fail });
            whose.push(i);
        };
        for (i, v) in image.vmas.iter().enumerate() {
            let len = v.len();
            let (flags, fd, offset) = match &v.backing {
                Backing::Vdso { .. } => continue,
                _ if cow::is_kept(kept, v) => (None, u64::MAX, 0),
                Backing::File(id) if !foreign.contains(&id.path) => {
                    let share = if v.shared {
                        libc::MAP_SHARED
                    } else {
                        libc::MAP_PRIVATE
                    };
                    (Some(share | libc::MAP_FIXED), file_fds[&id.path], v.offset)
                }
                Backing::Shared => (
                    Some(libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_FIXED),
                    u64::MAX,
                    0,
                ),
                _ => {
                    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
                    if v.grows_down {
                        flags |= libc::MAP_GROWSDOWN;
                    }
                    (Some(flags), u64::MAX, 0)
                }
            };
            if let Some(flags) = flags {
                let args = [v.start, len, v.prot as u64, flags as u64, fd, offset];
                queue(i, libc::SYS_mmap, args, false);
            }
            for a in &v.advice {
                // Advice is best effort: a kernel without it still runs the process correctly.
                queue(
                    i,
                    libc::SYS_madvise,
                    [v.start, len, *a as u64, 0, 0, 0],
                    true,
                );
            }
            if v.locked {
                // MLOCK_ONFAULT: locked as its pages arrive (lazily, or filled below). A
                // node whose limits refuse it runs the process unlocked.
                queue(i, libc::SYS_mlock2, [v.start, len, 1, 0, 0, 0], true);
            }
        }
        if let Some((at, errno)) = inj.batch(&calls).map_err(step("map memory"))? {
            let v = &image.vmas[whose[at]];
            let what = match &v.backing {
                Backing::File(id) => format!("map {} at {:#x}", id.path, v.start),
                Backing::Shared => format!("map shared memory at {:#x}", v.start),
                _ => format!("map anonymous memory at {:#x}", v.start),
            };
            return Err(step(what)(InjectError::Failed {
                call: "mmap",
                errno,
            }));
        }
        for fd in file_fds.values() {
            inj.call("close", libc::SYS_close, &[*fd])
                .map_err(step("close a mapped file"))?;
        }
        Ok(())
    }

    fn fill_memory(&mut self) -> Result<(), RestoreError> {
        let Fixed {
            stub,
            image,
            paging,
            ..
        } = self.fixed;
        let Build {
            inj,
            foreign,
            kept,
            source,
            pager,
            ..
        } = self;
        // 4. Memory contents. Private copies of file pages and shared memory always go in
        //    now; anonymous memory now (eager) or on demand (lazy).
        let mut source = source
            .take()
            .ok_or_else(|| RestoreError::Incompatible("the page source was used already".into()))?;
        let is_foreign = |v: &Vma| foreign_mapping(foreign, v);
        let anon_here = |v: &Vma| v.backing == Backing::Anon || is_foreign(v);
        let mem =
            ProcessMemory::open_rw(stub.as_raw()).map_err(sys_err("opening the stub's memory"))?;
        let mut anon_runs = Vec::new();
        let mut file_runs = Vec::new();
        for r in &image.pages {
            let vma = image
                .vmas
                .iter()
                .find(|v| v.start <= r.addr && r.end() <= v.end);
            match vma.map(|v| (&v.backing, is_foreign(v))) {
                // A foreign file's mapping comes whole, below.
                Some((Backing::File(_), true)) => {}
                Some((Backing::Anon, _)) => anon_runs.push(*r),
                // Shared memory is not registered with userfaultfd: it comes now.
                Some((Backing::File(_), false) | (Backing::Shared, _)) => file_runs.push(*r),
                _ => {
                    return Err(RestoreError::Incompatible(format!(
                        "page run at {:#x} lies outside the image's mappings",
                        r.addr
                    )))
                }
            }
        }
        for v in image.vmas.iter().filter(|v| is_foreign(v) && v.prot != 0) {
            if let Backing::File(id) = &v.backing {
                anon_runs.extend(file_backed_run(v, id.size));
            }
        }
        anon_runs.sort_unstable_by_key(|r| r.addr);
        let (kept_runs, anon_runs) = cow::split_runs(kept, anon_runs);
        for (start, end) in cow::uncovered(kept, &kept_runs) {
            let advice = libc::MADV_DONTNEED as u64;
            inj.call("madvise", libc::SYS_madvise, &[start, end - start, advice])
                .map_err(step(format!("drop the pages at {start:#x}-{end:#x}")))?;
        }
        cow::fill_kept(&mem, source.as_mut(), &kept_runs, kept)?;
        fill(&mem, source.as_mut(), &file_runs)?;
        match paging {
            Paging::Eager => fill(&mem, source.as_mut(), &anon_runs)?,
            Paging::Lazy => {
                let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64;
                let fd_there = inj
                    .call("userfaultfd", libc::SYS_userfaultfd, &[flags])
                    .map_err(step("create a userfaultfd"))?;
                let pidfd = sys::pidfd_open(stub).map_err(sys_err("pidfd_open"))?;
                let ufd =
                    sys::pidfd_getfd(&pidfd, fd_there as i32).map_err(sys_err("pidfd_getfd"))?;
                inj.call("close", libc::SYS_close, &[fd_there])
                    .map_err(step("close the userfaultfd"))?;
                let uffd = crate::lazy::handshake(ufd)?;
                let mut pending = RangeMap::new();
                for r in &anon_runs {
                    pending.insert(r.addr, r.end());
                }
                // Unlisted, every page of an anonymous mapping may hold data until the
                // pager hears which do.
                let unlisted: Vec<(u64, u64)> = if image.anon_unlisted {
                    image
                        .vmas
                        .iter()
                        .filter(|v| v.backing == Backing::Anon && !is_foreign(v))
                        .map(|v| (v.start, v.end))
                        .collect()
                } else {
                    Vec::new()
                };
                for &(start, end) in &unlisted {
                    pending.insert(start, end);
                }
                let anon: Vec<&Vma> = image.vmas.iter().filter(|v| anon_here(v)).collect();
                let ranges: Vec<(u64, u64)> = anon.iter().map(|v| (v.start, v.end)).collect();
                // One registration covers neighbouring mappings together (a process may
                // have tens of thousands).
                for (start, end) in adjoining(&ranges) {
                    uffd.register(start as *mut libc::c_void, (end - start) as usize)
                        .map_err(|e| RestoreError::Sys {
                            what: format!("registering {start:#x}-{end:#x} with userfaultfd"),
                            source: std::io::Error::other(e),
                        })?;
                }
                *pager = Some(
                    LazyPager::start(uffd, &ranges, pending, unlisted, source)
                        .map_err(sys_err("starting the pager"))?,
                );
            }
        }
        Ok(())
    }

    fn signals(&mut self) -> Result<(), RestoreError> {
        let Fixed {
            stub,
            image,
            home,
            s,
            ..
        } = self.fixed;
        let inj = &mut self.inj;
        // 5. Signals.
        // The stub starts with every action at the all-zero default; the original at home
        // has its own, so every action is set.
        let mut actions = image.sigactions.clone();
        if home {
            for signo in (1..=64).filter(|&n| n != libc::SIGKILL && n != libc::SIGSTOP) {
                if !actions.iter().any(|a| a.signo == signo) {
                    actions.push(SigAction {
                        signo,
                        handler: 0,
                        flags: 0,
                        restorer: 0,
                        mask: 0,
                    });
                }
            }
        }
        for a in actions
            .iter()
            .filter(|a| home || (a.handler, a.flags, a.restorer, a.mask) != (0, 0, 0, 0))
        {
            let mut b = Vec::with_capacity(32);
            for x in [a.handler, a.flags, a.restorer, a.mask] {
                b.extend_from_slice(&x.to_ne_bytes());
            }
            inj.put(0, &b).map_err(step("sigaction"))?;
            inj.call(
                "rt_sigaction",
                libc::SYS_rt_sigaction,
                &[a.signo as u64, s, 0, 8],
            )
            .map_err(step(format!("restore the action of signal {}", a.signo)))?;
        }
        let ss = &image.altstack;
        let mut b = Vec::new();
        b.extend_from_slice(&ss.sp.to_ne_bytes());
        b.extend_from_slice(&((ss.flags & !libc::SS_ONSTACK) as u64).to_ne_bytes());
        b.extend_from_slice(&ss.size.to_ne_bytes());
        inj.put(0, &b).map_err(step("sigaltstack"))?;
        inj.call("sigaltstack", libc::SYS_sigaltstack, &[s, 0])
            .map_err(step("restore the alternate signal stack"))?;
        for t in image
            .itimers
            .iter()
            .filter(|t| t.value_us != 0 || t.interval_us != 0)
        {
            // An interval timer that just expired reads 0 until its signal is dequeued (the
            // kernel re-arms it then); arming with 0 would disarm it, so start a new period.
            let value = if t.value_us == 0 {
                t.interval_us
            } else {
                t.value_us
            };
            let mut b = Vec::new();
            for us in [t.interval_us, value] {
                b.extend_from_slice(&(us / 1_000_000).to_ne_bytes());
                b.extend_from_slice(&(us % 1_000_000).to_ne_bytes());
            }
            inj.put(0, &b).map_err(step("setitimer"))?;
            inj.call("setitimer", libc::SYS_setitimer, &[t.which as u64, s, 0])
                .map_err(step("restore an interval timer"))?;
        }
        restore_timers(inj, stub, image, home)?;
        restore_mm_state(inj, &image.mm_state)?;
        Ok(())
    }

    fn attributes(&mut self) -> Result<(), RestoreError> {
        let Fixed {
            stub, image, home, ..
        } = self.fixed;
        let Build { inj, foreign, .. } = self;
        // 6. Process attributes and the kernel's view of the address space.
        if !home {
            inj.call("umask", libc::SYS_umask, &[image.umask as u64])
                .map_err(step("umask"))?;
        }
        inj.call(
            "personality",
            libc::SYS_personality,
            &[image.personality as u64],
        )
        .map_err(step("personality"))?;
        let p = inj.put_str(0, &image.comm).map_err(step("comm"))?;
        inj.call("prctl", libc::SYS_prctl, &[libc::PR_SET_NAME as u64, p])
            .map_err(step("set the name"))?;
        // At home the process still maps its own executable, and the kernel refuses to
        // change the executable of such a process (EBUSY): keep it (-1) and set the rest.
        // A guest whose executable this node lacks, or holds with other contents, keeps the
        // stub's (its /proc/self/exe is read at home anyway).
        let keep_exe =
            home || foreign.contains(&image.exe) || std::fs::metadata(&image.exe).is_err();
        let exe_fd = if keep_exe {
            u64::from(u32::MAX)
        } else {
            inj.open(&image.exe, libc::O_RDONLY | libc::O_CLOEXEC)
                .map_err(step(format!("open the executable {}", image.exe)))?
        };
        let auxv_at = inj.put(2048, &image.auxv).map_err(step("auxv"))?;
        let m = &image.mm;
        let mut b = Vec::new();
        for x in [
            m.start_code,
            m.end_code,
            m.start_data,
            m.end_data,
            m.start_brk,
            m.brk,
            m.start_stack,
            m.arg_start,
            m.arg_end,
            m.env_start,
            m.env_end,
            auxv_at,
        ] {
            b.extend_from_slice(&x.to_ne_bytes());
        }
        b.extend_from_slice(&(image.auxv.len() as u32).to_ne_bytes());
        b.extend_from_slice(&(exe_fd as u32).to_ne_bytes());
        let map_at = inj.put(1024, &b).map_err(step("mm map"))?;
        const PR_SET_MM: u64 = 35;
        const PR_SET_MM_MAP: u64 = 14;
        let r = inj.call(
            "prctl(PR_SET_MM_MAP)",
            libc::SYS_prctl,
            &[PR_SET_MM, PR_SET_MM_MAP, map_at, b.len() as u64, 0],
        );
        // The heap's end (brk) moved with the process: without it, a heap that grew away
        // from home could no longer grow or shrink by brk at home. Coming home, a refusal
        // (a layout the kernel finds out of limits) is not worth losing the process for:
        // malloc falls back to mmap when brk fails.
        if !home {
            r.map_err(step("set the address-space layout (PR_SET_MM_MAP)"))?;
        }
        if !keep_exe {
            inj.call("close", libc::SYS_close, &[exe_fd])
                .map_err(step("close the executable"))?;
        }
        if let Some(r) = &image.rseq {
            inj.call(
                "rseq",
                libc::SYS_rseq,
                &[r.addr, r.len as u64, 0, r.signature as u64],
            )
            .map_err(step("register rseq"))?;
        }
        inj.call(
            "set_robust_list",
            libc::SYS_set_robust_list,
            &[image.robust_list.0, image.robust_list.1],
        )
        .map_err(step("set_robust_list"))?;
        inj.call(
            "set_tid_address",
            libc::SYS_set_tid_address,
            &[image.clear_child_tid],
        )
        .map_err(step("set_tid_address"))?;

        // Limits while the stub may still raise them (before it takes another identity).
        for l in image.rlimits.iter().filter(|_| !home) {
            sys::set_rlimit(stub, l.resource, l.cur, l.max)
                .map_err(sys_err(format!("restoring resource limit {}", l.resource)))?;
        }
        Ok(())
    }

    fn identity(&mut self) -> Result<(), RestoreError> {
        let Fixed {
            stub,
            image,
            mode,
            home,
            s,
            ..
        } = self.fixed;
        let inj = &mut self.inj;
        // 7. Identity: from here on the stub has the original's credentials, so files are
        //    opened with the original's permissions.
        let me = read_creds(stub).map_err(sys_err("reading the stub's credentials"))?;
        let want = match mode {
            Mode::Confined { uid, gid, .. } => Creds {
                uid: [uid; 3],
                gid: [gid; 3],
                groups: Vec::new(),
            },
            _ => image.creds.clone(),
        };
        if !home && me != want {
            let c = &want;
            let mut b = Vec::new();
            for g in &c.groups {
                b.extend_from_slice(&g.to_ne_bytes());
            }
            inj.put(0, &b).map_err(step("groups"))?;
            inj.call(
                "setgroups",
                libc::SYS_setgroups,
                &[c.groups.len() as u64, s],
            )
            .map_err(step("setgroups"))?;
            inj.call(
                "setresgid",
                libc::SYS_setresgid,
                &[c.gid[0] as u64, c.gid[1] as u64, c.gid[2] as u64],
            )
            .map_err(step("setresgid"))?;
            inj.call(
                "setresuid",
                libc::SYS_setresuid,
                &[c.uid[0] as u64, c.uid[1] as u64, c.uid[2] as u64],
            )
            .map_err(step("setresuid"))?;
        }
        if matches!(mode, Mode::Fresh) {
            let p = inj.put_str(0, &image.cwd).map_err(step("cwd"))?;
            inj.call("chdir", libc::SYS_chdir, &[p])
                .map_err(step(format!("change directory to {}", image.cwd)))?;
        } else if !home {
            let p = inj.put_str(0, "/").map_err(step("cwd"))?;
            inj.call("chdir", libc::SYS_chdir, &[p])
                .map_err(step("change directory to /"))?;
        }
        Ok(())
    }

    fn files(&mut self) -> Result<(), RestoreError> {
        let Fixed { image, mode, .. } = self.fixed;
        let inj = &mut self.inj;
        // 8. Open files, at their numbers and offsets (a guest has none: its descriptors
        //    stay at home with the deputy).
        for f in image.files.iter().filter(|_| matches!(mode, Mode::Fresh)) {
            let flags = f.flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOCTTY);
            let got = inj
                .open(&own_path(&f.path, image.pid), flags)
                .map_err(step(format!("reopen descriptor {} ({})", f.fd, f.path)))?;
            if got != f.fd as u64 {
                inj.call(
                    "dup3",
                    libc::SYS_dup3,
                    &[got, f.fd as u64, (f.flags & libc::O_CLOEXEC) as u64],
                )
                .map_err(step(format!("move descriptor {} into place", f.fd)))?;
                inj.call("close", libc::SYS_close, &[got])
                    .map_err(step("close"))?;
            }
            inj.call(
                "lseek",
                libc::SYS_lseek,
                &[f.fd as u64, f.pos, libc::SEEK_SET as u64],
            )
            .map_err(step(format!("seek descriptor {} to {}", f.fd, f.pos)))?;
        }
        Ok(())
    }

    fn queue_signals(&mut self) -> Result<(), RestoreError> {
        let Fixed { stub, image, s, .. } = self.fixed;
        let inj = &mut self.inj;
        // 9. Limits, queued signals, and the scratch area goes.
        for sig in &image.pending {
            inj.put(0, &sig.siginfo).map_err(step("siginfo"))?;
            let signo = sig.signo() as u64;
            let pid = stub.as_raw() as u64;
            if sig.shared {
                inj.call(
                    "rt_sigqueueinfo",
                    libc::SYS_rt_sigqueueinfo,
                    &[pid, signo, s],
                )
            } else {
                inj.call(
                    "rt_tgsigqueueinfo",
                    libc::SYS_rt_tgsigqueueinfo,
                    &[pid, pid, signo, s],
                )
            }
            .map_err(step(format!("queue pending signal {signo}")))?;
        }
        Ok(())
    }

    fn confine(&mut self) -> Result<(), RestoreError> {
        let Fixed {
            stub,
            mode,
            scratch,
            scratch_len,
            ..
        } = self.fixed;
        let Build { inj, listener, .. } = self;
        // 10. Confinement (a guest's seccomp filter: from here on every call it makes is
        //     checked, and those not allowed wait for the supervisor holding the listener).
        if let Mode::Confined { confine, .. } = mode {
            *listener = Some(confine(inj, stub)?);
        }
        inj.call("munmap", libc::SYS_munmap, &[scratch, scratch_len])
            .map_err(step("unmap the scratch area"))?;
        Ok(())
    }

    fn registers(&mut self) -> Result<(), RestoreError> {
        let Fixed { stub, image, .. } = self.fixed;
        // 11. Registers last.
        sys::set_xstate(stub, &image.xstate).map_err(sys_err("restoring the XSAVE state"))?;
        ptrace::setregs(stub, image.regs.for_resume().to_raw())
            .map_err(|e| step("set registers")(InjectError::Ptrace("PTRACE_SETREGS", e)))?;
        sys::set_sigmask(stub, image.sigmask).map_err(sys_err("restoring the signal mask"))?;
        Ok(())
    }
}

fn read_creds(pid: Pid) -> std::io::Result<Creds> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mut c = Creds {
        uid: [0; 3],
        gid: [0; 3],
        groups: Vec::new(),
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let nums: Vec<u32> = v
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        match k {
            "Uid" if nums.len() >= 3 => c.uid.copy_from_slice(&nums[..3]),
            "Gid" if nums.len() >= 3 => c.gid.copy_from_slice(&nums[..3]),
            "Groups" => c.groups = nums,
            _ => {}
        }
    }
    Ok(c)
}

/// Moves the stub's `[vvar]`, `[vvar_vclock]` and `[vdso]` to the target's addresses,
/// together, keeping their relative offsets (the program's libc cached the old ones).
/// `scratch` is the (start, length) of the injection area, which must stay clear.
fn move_vdso(
    inj: &mut Injector,
    stub_vdso: &[(u64, u64, String)],
    target: &[&Vma],
    image: &ProcessImage,
    scratch: (u64, u64),
) -> Result<(), RestoreError> {
    if target.is_empty() {
        for m in stub_vdso {
            inj.call("munmap", libc::SYS_munmap, &[m.0, m.1 - m.0])
                .map_err(step("unmap the vDSO"))?;
        }
        return Ok(());
    }
    let mut pairs = Vec::new();
    for t in target {
        let s = stub_vdso.iter().find(|m| m.2 == t.name).ok_or_else(|| {
            RestoreError::Incompatible(format!("this kernel has no {} mapping", t.name))
        })?;
        if s.1 - s.0 != t.len() {
            return Err(RestoreError::Incompatible(format!(
                "{} is {} bytes here, {} in the image",
                t.name,
                s.1 - s.0,
                t.len()
            )));
        }
        pairs.push((s.0, t.start, t.len()));
    }
    if stub_vdso.len() != target.len() {
        return Err(RestoreError::Incompatible(
            "the vDSO has different parts here".into(),
        ));
    }
    let lo_s = pairs.iter().map(|p| p.0).min().unwrap_or(0);
    let lo_t = pairs.iter().map(|p| p.1).min().unwrap_or(0);
    if pairs.iter().any(|p| p.1 - lo_t != p.0 - lo_s) {
        return Err(RestoreError::Incompatible(
            "the vDSO parts are laid out differently here".into(),
        ));
    }
    if lo_s == lo_t {
        return Ok(());
    }
    let span = pairs.iter().map(|p| p.0 + p.2).max().unwrap_or(0) - lo_s;
    let overlaps = lo_s < lo_t + span && lo_t < lo_s + span;
    let mut cur = lo_s;
    let mut hops = Vec::new();
    if overlaps {
        let mut occ: Vec<(u64, u64)> = image.vmas.iter().map(|v| (v.start, v.end)).collect();
        occ.push((lo_s, lo_s + span));
        occ.push((scratch.0, scratch.0 + scratch.1));
        let tmp = find_gap(&occ, span, 0x1000_0000, PAGE_SIZE)
            .ok_or_else(|| RestoreError::Incompatible("no room to move the vDSO".into()))?;
        hops.push(tmp);
    }
    hops.push(lo_t);
    for dest in hops {
        for p in &pairs {
            let from = p.0 - lo_s + cur;
            let to = p.0 - lo_s + dest;
            inj.call(
                "mremap",
                libc::SYS_mremap,
                &[from, p.2, p.2, MREMAP_MAYMOVE | MREMAP_FIXED, to],
            )
            .map_err(step("move the vDSO"))?;
        }
        cur = dest;
    }
    Ok(())
}

/// Sets the memory-wide state of `mm`: THP disabled, membarrier registrations (each
/// `MEMBARRIER_CMD_REGISTER_*` bit of the mask is registered again).
fn restore_mm_state(inj: &mut Injector, mm: &MmState) -> Result<(), RestoreError> {
    inj.call(
        "prctl(PR_SET_THP_DISABLE)",
        libc::SYS_prctl,
        &[
            libc::PR_SET_THP_DISABLE as u64,
            mm.thp_disable as u64,
            0,
            0,
            0,
        ],
    )
    .map_err(step("set THP disable"))?;
    for bit in 0..32 {
        let cmd = 1u64 << bit;
        if mm.membarrier as u64 & cmd != 0 {
            inj.call("membarrier", libc::SYS_membarrier, &[cmd, 0, 0])
                .map_err(step(format!("register membarrier command {cmd:#x}")))?;
        }
    }
    Ok(())
}

/// Whether timer `t` counts time on a clock it can be set on by an absolute time that
/// means the same here as where it was captured (not a CPU-time clock, whose time the new
/// process starts at zero).
fn on_a_shared_clock(t: &PosixTimer) -> bool {
    matches!(
        t.clock,
        libc::CLOCK_REALTIME
            | libc::CLOCK_MONOTONIC
            | libc::CLOCK_BOOTTIME
            | libc::CLOCK_REALTIME_ALARM
            | libc::CLOCK_BOOTTIME_ALARM
            | libc::CLOCK_TAI
    )
}

/// The time of day, in nanoseconds since the epoch.
pub(crate) fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// How a restored timer is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    /// To expire this long from now (0: disarmed).
    Relative(u64),
    /// To expire at this time of its clock; `take`: its signal, due at once, is taken
    /// by the restore (so that timer_getoverrun says the overruns it brings).
    Absolute { at: u64, take: bool },
}

/// How to set timer `t` again, its clock reading `now` (None: a clock of the process's
/// own), `elapsed` ns after it was read at the capture.
///
/// Its next expiry is where it would have been had the process not moved. A periodic
/// timer that signals is set that many intervals earlier as it has overruns to bring
/// (the kernel counts the intervals it forwards over as overruns): those of the signal it
/// had queued, which it then queues again at once, or else those of its last signal,
/// which restore then takes. A timer due already (it expired on the way) is set to
/// expire at once.
fn arm(t: &PosixTimer, now: Option<u64>, elapsed: u64) -> Arm {
    let Some(now) = now.filter(|_| t.remaining_ns > 0) else {
        return Arm::Relative(t.remaining_ns);
    };
    let next = now as i128 + t.remaining_ns as i128 - elapsed as i128;
    let interval = t.interval_ns as i128;
    let signals = t.notify & !libc::SIGEV_THREAD_ID == libc::SIGEV_SIGNAL
        && interval > 0
        && (1..=64).contains(&t.signo);
    let (at, take) = match t.queued_overrun {
        Some(k) if signals => (next - (k.max(0) as i128 + 1) * interval, false),
        None if signals && t.overrun > 0 && next > now as i128 => {
            (next - (t.overrun as i128 + 1) * interval, true)
        }
        _ => (next, false),
    };
    match u64::try_from(at) {
        Ok(at) if at > 0 => Arm::Absolute { at, take },
        _ => Arm::Relative(t.remaining_ns.saturating_sub(elapsed).max(1)),
    }
}

/// The siginfo a timer queues (SI_TIMER), with `overrun` missed expirations.
fn timer_siginfo(t: &PosixTimer, overrun: i32) -> Vec<u8> {
    let mut info = vec![0u8; 128];
    info[0..4].copy_from_slice(&t.signo.to_ne_bytes());
    info[8..12].copy_from_slice(&crate::capture::SI_TIMER.to_ne_bytes());
    info[16..20].copy_from_slice(&t.id.to_ne_bytes());
    info[20..24].copy_from_slice(&overrun.to_ne_bytes());
    info[24..32].copy_from_slice(&t.value.to_ne_bytes());
    info
}

/// `prctl` option asking `timer_create` for the id its argument holds (Linux 6.16).
const PR_TIMER_CREATE_RESTORE_IDS: u64 = 77;

/// Recreates the POSIX timers of `image` in `stub` with their ids, clocks, signals,
/// values and times left. Coming home, the process's own (disarmed while it was away)
/// are deleted first: it may have deleted or made others away.
fn restore_timers(
    inj: &mut Injector,
    stub: Pid,
    image: &ProcessImage,
    home: bool,
) -> Result<(), RestoreError> {
    if home {
        let text = std::fs::read_to_string(format!("/proc/{stub}/timers"))
            .map_err(sys_err("reading the process's timers"))?;
        for t in crate::capture::parse_timers(&text).unwrap_or_default() {
            inj.call("timer_delete", libc::SYS_timer_delete, &[t.id as u64])
                .map_err(step(format!("delete timer {}", t.id)))?;
        }
    }
    if image.timers.is_empty() {
        return Ok(());
    }
    inj.call(
        "prctl(PR_TIMER_CREATE_RESTORE_IDS)",
        libc::SYS_prctl,
        &[PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0],
    )
    .map_err(|e| {
        RestoreError::Incompatible(format!(
            "this kernel cannot give POSIX timers back their ids (PR_TIMER_CREATE_RESTORE_IDS, Linux 6.16): {e}"
        ))
    })?;
    let s = inj.scratch;
    for t in &image.timers {
        // struct sigevent: value, signo, notify, then the thread id.
        let mut sev = Vec::with_capacity(64);
        sev.extend_from_slice(&t.value.to_ne_bytes());
        sev.extend_from_slice(&t.signo.to_ne_bytes());
        sev.extend_from_slice(&t.notify.to_ne_bytes());
        sev.extend_from_slice(&stub.as_raw().to_ne_bytes());
        sev.resize(64, 0);
        inj.put(0, &sev).map_err(step("sigevent"))?;
        inj.put(64, &t.id.to_ne_bytes()).map_err(step("timer id"))?;
        inj.call(
            "timer_create",
            libc::SYS_timer_create,
            &[t.clock as u64, s, s + 64],
        )
        .map_err(step(format!("recreate timer {}", t.id)))?;
    }
    // Timers ran on since they were read, as the clocks did: their next expiry is where
    // it would have been had the process not moved or stopped (the nodes' clocks agree),
    // and what they missed meanwhile are overruns.
    let elapsed = match image.timers_read_at_ns {
        0 => 0,
        at => wall_clock_ns().saturating_sub(at),
    };
    // Overruns first: a timer whose last signal had missed expirations is set to have
    // missed as many by now and its signal taken at once, so that timer_getoverrun says
    // so again (timer_settime clears it) before any other timer can signal. Then the
    // others; one whose signal was queued is set to queue it again now, its overruns
    // counted from its missed expirations, as the kernel counts at delivery.
    let (taken, others): (Vec<&PosixTimer>, Vec<&PosixTimer>) = image
        .timers
        .iter()
        .partition(|t| t.queued_overrun.is_none() && t.overrun > 0);
    let mut requeue = Vec::new();
    for t in taken.into_iter().chain(others) {
        let now = if on_a_shared_clock(t) {
            inj.call(
                "clock_gettime",
                libc::SYS_clock_gettime,
                &[t.clock as u64, s],
            )
            .map_err(step(format!("read the clock of timer {}", t.id)))?;
            let b = inj.read(s, 16).map_err(step("clock"))?;
            Some(u64_at(&b, 0) * 1_000_000_000 + u64_at(&b, 8))
        } else {
            None
        };
        let armed = arm(t, now, elapsed);
        let (flags, value, take) = match armed {
            Arm::Relative(ns) => (0, ns, false),
            Arm::Absolute { at, take } => (libc::TIMER_ABSTIME as u64, at, take),
        };
        let mut its = Vec::with_capacity(32);
        for ns in [t.interval_ns, value] {
            its.extend_from_slice(&(ns / 1_000_000_000).to_ne_bytes());
            its.extend_from_slice(&(ns % 1_000_000_000).to_ne_bytes());
        }
        inj.put(128, &its).map_err(step("itimerspec"))?;
        inj.call(
            "timer_settime",
            libc::SYS_timer_settime,
            &[t.id as u64, flags, s + 128, 0],
        )
        .map_err(step(format!("set timer {}", t.id)))?;
        if take {
            // It expires at once (the kernel signals from its timer interrupt).
            inj.put(0, &(1u64 << (t.signo - 1)).to_ne_bytes())
                .map_err(step("signal set"))?;
            inj.put(16, &[1u64.to_ne_bytes(), 0u64.to_ne_bytes()].concat())
                .map_err(step("timeout"))?;
            let got = inj.call(
                "rt_sigtimedwait",
                libc::SYS_rt_sigtimedwait,
                &[s, s + 64, s + 16, 8],
            );
            if got.is_ok_and(|n| n == t.signo as u64) {
                let info = inj.read(s + 64, 128).map_err(step("siginfo"))?;
                if crate::capture::timer_signal_of(&info) != Some(t.id) {
                    requeue.push(info);
                }
            }
        }
        // Set relative, its queued signal cannot come from the timer: it is queued as it
        // was captured.
        if let (Arm::Relative(_), Some(k)) = (armed, t.queued_overrun) {
            requeue.push(timer_siginfo(t, k));
        }
    }
    for info in requeue {
        sys::queue_siginfo(stub.as_raw(), &info)
            .map_err(sys_err("queue a timer's signal again"))?;
    }
    inj.call(
        "prctl(PR_TIMER_CREATE_RESTORE_IDS)",
        libc::SYS_prctl,
        &[PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0],
    )
    .map_err(step("end PR_TIMER_CREATE_RESTORE_IDS"))?;
    Ok(())
}

/// Copies `runs` from `source` into the stub's memory.
fn fill(
    mem: &ProcessMemory,
    source: &mut dyn PageSource,
    runs: &[PageRun],
) -> Result<(), RestoreError> {
    const CHUNK: u64 = 4 << 20;
    let mut wanted = Vec::new();
    for r in runs {
        let mut addr = r.addr;
        while addr < r.end() {
            let n = (r.end() - addr).min(CHUNK);
            wanted.push((addr, n as usize));
            addr += n;
        }
    }
    let mut write_err = None;
    let r = source.read_each(&wanted, &mut |addr, bytes| {
        mem.write_at(addr, bytes).map_err(|e| {
            let why = std::io::Error::new(e.kind(), e.to_string());
            write_err = Some(sys_err(format!("writing memory at {addr:#x}"))(e));
            PageError::Io { addr, source: why }
        })
    });
    match (r, write_err) {
        (_, Some(e)) => Err(e),
        (r, None) => Ok(r?),
    }
}

#[cfg(test)]
mod tests {
    use super::{adjoining, arm, find_gap, own_path, Arm};
    use crate::image::PosixTimer;

    const MS: u64 = 1_000_000;

    fn timer(interval: u64, remaining: u64, overrun: i32, queued: Option<i32>) -> PosixTimer {
        PosixTimer {
            id: 0,
            clock: libc::CLOCK_MONOTONIC,
            notify: libc::SIGEV_SIGNAL,
            signo: 40,
            value: 0,
            interval_ns: interval,
            remaining_ns: remaining,
            overrun,
            queued_overrun: queued,
        }
    }

    #[test]
    fn timers_run_on_while_the_process_moves_and_bring_their_overruns() {
        let now = 1_000_000 * MS;
        // Plain: next expiry where it would have been, the 30 ms on the way counted.
        let t = timer(250 * MS, 100 * MS, 0, None);
        assert_eq!(
            arm(&t, Some(now), 30 * MS),
            Arm::Absolute {
                at: now + 70 * MS,
                take: false
            }
        );
        // Its last signal had missed 2: set 3 intervals back, and the signal taken.
        let t = timer(250 * MS, 100 * MS, 2, None);
        assert_eq!(
            arm(&t, Some(now), 0),
            Arm::Absolute {
                at: now + 100 * MS - 750 * MS,
                take: true
            }
        );
        // Its signal was queued with 1 missed: set 2 intervals back, the signal left to
        // queue itself (the last signal's overruns cannot be said as well).
        let t = timer(250 * MS, 100 * MS, 2, Some(1));
        assert_eq!(
            arm(&t, Some(now), 0),
            Arm::Absolute {
                at: now + 100 * MS - 500 * MS,
                take: false
            }
        );
        // Due on the way: it expires at once, and counts what it missed.
        let t = timer(250 * MS, 100 * MS, 2, None);
        assert_eq!(
            arm(&t, Some(now), 400 * MS),
            Arm::Absolute {
                at: now - 300 * MS,
                take: false
            }
        );
        // A checkpoint's (nothing elapsed), a CPU-time clock's, a disarmed one.
        assert_eq!(
            arm(&timer(0, 5 * MS, 0, None), None, 0),
            Arm::Relative(5 * MS)
        );
        assert_eq!(arm(&timer(MS, 0, 0, None), Some(now), 0), Arm::Relative(0));
        // Never before the clock's zero.
        let t = timer(250 * MS, 100 * MS, 0, Some(3));
        assert_eq!(arm(&t, Some(10 * MS), 0), Arm::Relative(100 * MS));
    }

    #[test]
    fn the_originals_own_proc_files_become_the_restored_ones() {
        assert_eq!(own_path("/proc/4242/environ", 4242), "/proc/self/environ");
        assert_eq!(own_path("/proc/4242", 4242), "/proc/self");
        assert_eq!(
            own_path("/proc/4242/task/4242/stat", 4242),
            "/proc/thread-self/stat"
        );
        assert_eq!(own_path("/proc/42420/environ", 4242), "/proc/42420/environ");
        assert_eq!(own_path("/proc/1/environ", 4242), "/proc/1/environ");
        assert_eq!(own_path("/home/4242/x", 4242), "/home/4242/x");
    }

    #[test]
    fn adjoining_ranges_are_joined_and_apart_ones_kept() {
        let r = [
            (0x1000, 0x2000),
            (0x2000, 0x5000),
            (0x6000, 0x7000),
            (0x7000, 0x8000),
        ];
        assert_eq!(adjoining(&r), vec![(0x1000, 0x5000), (0x6000, 0x8000)]);
        assert_eq!(adjoining(&[]), vec![]);
    }

    #[test]
    fn gap_skips_occupied_ranges_with_margin() {
        let occ = [(0x1000_0000, 0x1000_2000), (0x1000_5000, 0x1000_6000)];
        assert_eq!(find_gap(&occ, 0x1000, 0x1000_0000, 0), Some(0x1000_2000));
        // With a margin of one page the 3-page hole keeps only its middle page.
        assert_eq!(
            find_gap(&occ, 0x1000, 0x1000_0000, 0x1000),
            Some(0x1000_3000)
        );
        assert_eq!(
            find_gap(&occ, 0x2000, 0x1000_0000, 0x1000),
            Some(0x1000_7000)
        );
        assert_eq!(find_gap(&occ, 0x4000, 0x1000_0000, 0), Some(0x1000_6000));
        assert_eq!(find_gap(&[], 0x1000, 0x2000, 0), Some(0x2000));
    }
}
