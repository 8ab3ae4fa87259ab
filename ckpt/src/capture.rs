//! Capture: freeze a process with `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, read its whole user
//! context (registers, XSAVE state, memory map, signal state, ...) and keep it frozen until
//! the caller resumes or kills it. Every refusal is decided before anything is changed.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::ptrace;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use procfs::process::{MMPermissions, MMapPath, Process, VmFlags};

use crate::error::{CaptureError, InjectError, PageError, Refusal};
use crate::image::*;
use crate::inject::{checked, syscall_insn_in, Injector, Queued};
use crate::pages::{touched_pages, PageSource, ProcessMemory};
use crate::restore::{Laps, StepTimes};
use crate::sys;
use crate::tracer::TracerThread;

/// A captured process, still frozen under ptrace. Dropping it resumes the process.
pub struct Frozen {
    pid: i32,
    image: ProcessImage,
    memory: ProcessMemory,
    tracer: Option<TracerThread>,
    /// Timer signals the capture took from the process's queue (see [`Requeue`]).
    taken: Requeue,
    /// How long each step of the capture took.
    steps: StepTimes,
    before: Before,
}

/// What a capture did before the freeze proper (see [`Frozen::before`]).
#[derive(Clone, Copy, Debug)]
pub struct Before {
    /// When the freeze began: the process was asked to stop for the capture.
    pub frozen_since: Instant,
    /// How long the process was stopped before, to trace its system calls while its
    /// memory map was read (zero if it was not).
    pub stopped: Duration,
    /// How long reading the map took meanwhile.
    pub reading: Duration,
    /// Whether that map stood, or had to be read again frozen.
    pub map_kept: bool,
}

/// Timer signals a capture dequeued, to learn how many expirations they had missed
/// (only `sigtimedwait` tells). Dropped, it queues them back to the process, with those
/// overruns in their siginfo: a capture that does not end in a move leaves the process
/// with its signals. [`Requeue::forget`] once the process has moved.
#[derive(Default)]
pub(crate) struct Requeue {
    pid: i32,
    sigs: Vec<Vec<u8>>,
}

impl Requeue {
    fn forget(&mut self) {
        self.sigs.clear();
    }
}

impl Drop for Requeue {
    fn drop(&mut self) {
        for info in std::mem::take(&mut self.sigs) {
            let _ = sys::queue_siginfo(self.pid, &info);
        }
    }
}

impl Frozen {
    /// The captured state.
    pub fn image(&self) -> &ProcessImage {
        &self.image
    }

    /// The captured state, for a caller that knows more than the process's own maps and
    /// registers tell (a supervisor that gave it stand-in mappings).
    pub fn image_mut(&mut self) -> &mut ProcessImage {
        &mut self.image
    }

    /// How long each step of the capture took, in order, from the moment the process was
    /// asked to stop (for a breakdown of where the freeze goes).
    pub fn steps(&self) -> &[(&'static str, Duration)] {
        &self.steps
    }

    /// What happened before the freeze: when it began, and the memory map read while the
    /// process still ran.
    pub fn before(&self) -> Before {
        self.before
    }

    /// The pid of the frozen process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Its memory, readable while it stays frozen.
    pub fn memory(&mut self) -> &mut ProcessMemory {
        &mut self.memory
    }

    /// Lets the process run on, exactly where it was.
    pub fn resume(mut self) -> Result<(), CaptureError> {
        self.detach()
    }

    /// Ends the process (SIGKILL), e.g. after a complete checkpoint, and waits until it is
    /// gone. If the caller is also its parent, the process is reaped here.
    pub fn kill(mut self) -> Result<(), CaptureError> {
        self.taken.forget();
        let pid = self.pid;
        let Some(tracer) = self.tracer.take() else {
            return Ok(());
        };
        let r = tracer.run(move || {
            let p = Pid::from_raw(pid);
            kill(p, Signal::SIGKILL)?;
            loop {
                match waitpid(p, Some(WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => return Ok(()),
                    Err(nix::errno::Errno::ECHILD) => return Ok(()),
                    Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
                    Err(e) => return Err(e),
                }
            }
        });
        flatten(pid, "kill", r)
    }

    /// Hands the frozen process over to a controller of the caller's, on the tracer
    /// thread (every ptrace call must come from there): `setup` makes it from the pid
    /// and the image, then `f` runs with it. If `setup` fails, the process is put back
    /// as it was and runs on; `f` then gets the error. When `f` returns, the process must
    /// be gone or running untraced: a tracer thread that ends lets its tracee run on.
    pub fn hand_over<T, E, R: Send + 'static>(
        mut self,
        setup: impl FnOnce(i32, &ProcessImage) -> Result<T, E> + Send + 'static,
        f: impl FnOnce(Result<T, E>) -> R + Send + 'static,
    ) -> Result<R, CaptureError> {
        let pid = self.pid;
        let Some(tracer) = self.tracer.take() else {
            return Err(CaptureError::Proc {
                pid,
                what: "tracer".into(),
                source: std::io::Error::other("the process is no longer frozen"),
            });
        };
        let image = self.image.clone();
        let mut taken = std::mem::take(&mut self.taken);
        let r = tracer.run(move || {
            let ctl = setup(pid, &image);
            if ctl.is_err() {
                let p = Pid::from_raw(pid);
                let _ = ptrace::setregs(p, image.regs.to_raw());
                let _ = sys::set_sigmask(p, image.sigmask);
                let _ = ptrace::detach(p, None);
                drop(taken);
            } else {
                taken.forget();
            }
            f(ctl)
        });
        r.map_err(|source| CaptureError::Proc {
            pid,
            what: "tracer".into(),
            source,
        })
    }

    fn detach(&mut self) -> Result<(), CaptureError> {
        let pid = self.pid;
        let Some(tracer) = self.tracer.take() else {
            return Ok(());
        };
        let r = tracer.run(move || ptrace::detach(Pid::from_raw(pid), None));
        flatten(pid, "detach", r)
    }
}

fn flatten(
    pid: i32,
    what: &'static str,
    r: std::io::Result<nix::Result<()>>,
) -> Result<(), CaptureError> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CaptureError::Inject {
            pid,
            source: InjectError::Ptrace(what, e),
        }),
        Err(source) => Err(CaptureError::Proc {
            pid,
            what: what.into(),
            source,
        }),
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}

impl PageSource for Frozen {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), PageError> {
        self.memory.read(addr, buf)
    }
    fn reads_any_address(&self) -> bool {
        true
    }
}

/// Freezes `pid` and captures its state. On any error the process runs on unharmed.
pub fn capture(pid: i32) -> Result<Frozen, CaptureError> {
    capture_with(pid, Options::default())
}

/// Something to do while the process is being stopped.
pub type Hook = Box<dyn FnMut() + Send>;

/// How to capture.
#[derive(Default)]
pub struct Options {
    /// The descriptors stay where they are (with a deputy): they are neither checked nor
    /// recorded.
    pub keep_files: bool,
    /// Called repeatedly until the process has stopped (a guest waiting for its seccomp
    /// supervisor stops only once its trapped call is answered).
    pub while_stopping: Option<Hook>,
    /// The process's seccomp filter is the caller's own (one a restore installed, see
    /// [`crate::restore::Mode::Confined`]), and the caller answers what the filter traps:
    /// the filter does not refuse the capture.
    pub filtered: bool,
    /// Signals to leave queued in the process rather than take into the image, asked of
    /// the frozen process's pid (signals its signalfds watch, for a process whose
    /// descriptors stay where they are).
    pub keep_queued: Option<fn(i32) -> u64>,
    /// Leave the pages of private anonymous mappings out of the page index (the image
    /// says so: [`ProcessImage::anon_unlisted`]); [`anon_index`] lists them later, while
    /// the process is still stopped. This keeps the page-table walk, about 10 ms per GiB,
    /// out of a lazy migration's freeze.
    pub anon_index_later: bool,
}

/// [`capture`] with options.
pub fn capture_with(pid: i32, opts: Options) -> Result<Frozen, CaptureError> {
    check_status(pid, opts.filtered)?;
    let tracer =
        TracerThread::spawn(&format!("om-trace-{pid}")).map_err(|source| CaptureError::Proc {
            pid,
            what: "a tracer thread".into(),
            source,
        })?;
    let (image, taken, steps, before) =
        tracer
            .run(move || capture_on_tracer(pid, opts))
            .map_err(|source| CaptureError::Proc {
                pid,
                what: "tracer".into(),
                source,
            })??;
    let memory = ProcessMemory::open(pid).map_err(|source| CaptureError::Proc {
        pid,
        what: "memory".into(),
        source,
    })?;
    Ok(Frozen {
        pid,
        image,
        memory,
        tracer: Some(tracer),
        taken,
        steps,
        before,
    })
}

fn refused(pid: i32, reason: Refusal) -> CaptureError {
    CaptureError::Refused { pid, reason }
}

fn proc_err(pid: i32, what: &str) -> impl FnOnce(std::io::Error) -> CaptureError + '_ {
    move |source| CaptureError::Proc {
        pid,
        what: what.to_string(),
        source,
    }
}

/// Fields of `/proc/PID/status` the engine uses.
#[derive(Debug, Default)]
struct Status {
    state: char,
    threads: u64,
    tracer: i32,
    /// 0 none, 1 strict, 2 filter.
    seccomp: u32,
    umask: u32,
    uid: [u32; 3],
    gid: [u32; 3],
    groups: Vec<u32>,
}

fn read_status(pid: i32) -> Result<Status, CaptureError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            refused(pid, Refusal::NoSuchProcess(pid))
        } else {
            proc_err(pid, "status")(e)
        }
    })?;
    let mut st = Status::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        let nums = || v.split_whitespace().filter_map(|x| x.parse::<u32>().ok());
        match k {
            "State" => st.state = v.chars().next().unwrap_or('?'),
            "Threads" => st.threads = v.parse().unwrap_or(0),
            "TracerPid" => st.tracer = v.parse().unwrap_or(0),
            "Seccomp" => st.seccomp = v.parse().unwrap_or(0),
            "Umask" => st.umask = u32::from_str_radix(v, 8).unwrap_or(0o022),
            "Uid" => nums().take(3).enumerate().for_each(|(i, x)| st.uid[i] = x),
            "Gid" => nums().take(3).enumerate().for_each(|(i, x)| st.gid[i] = x),
            "Groups" => st.groups = nums().collect(),
            _ => {}
        }
    }
    Ok(st)
}

/// The pages of `vmas`' private anonymous mappings that hold data in process `pid` (the
/// part of the page index a capture with [`Options::anon_index_later`] left out), in
/// address order. The process must still be stopped as it was captured.
pub fn anon_index(pid: i32, vmas: &[Vma]) -> Result<Vec<PageRun>, CaptureError> {
    let anon: Vec<(u64, u64)> = vmas
        .iter()
        .filter(|v| v.backing == Backing::Anon)
        .map(|v| (v.start, v.end))
        .collect();
    crate::pages::anon_pages(pid, &anon).map_err(proc_err(pid, "pagemap"))
}

/// What can be known without stopping process `pid` that would make capturing it fail:
/// it is gone, a zombie, multi-threaded, or traced by someone else. (Its mappings are
/// checked only once it is stopped.)
pub fn check_movable(pid: i32) -> Result<(), CaptureError> {
    check_status(pid, false)
}

/// [`check_movable`], for a process whose seccomp filter is ours (`filtered`) or not.
fn check_status(pid: i32, filtered: bool) -> Result<(), CaptureError> {
    if pid as u32 == std::process::id() {
        return Err(refused(pid, Refusal::SelfCapture));
    }
    let st = read_status(pid)?;
    if st.state == 'Z' && st.threads > 1 {
        return Err(refused(pid, Refusal::LeaderExited(st.threads - 1)));
    }
    if st.state == 'Z' || st.state == 'X' {
        return Err(refused(pid, Refusal::Zombie));
    }
    injectable(pid, &st, filtered)?;
    if st.tracer != 0 {
        return Err(refused(pid, Refusal::Traced(st.tracer)));
    }
    Ok(())
}

/// Refuses a process (with `st` its status) that the capture's injected calls would
/// harm or could not capture whole: in seccomp strict mode the first one kills it, a
/// filter of its own (unless `filtered`: the caller's) may kill it or fail them, and
/// only one thread is captured.
fn injectable(pid: i32, st: &Status, filtered: bool) -> Result<(), CaptureError> {
    match st.seccomp {
        1 => return Err(refused(pid, Refusal::SeccompStrict)),
        2 if !filtered => return Err(refused(pid, Refusal::SeccompFilter)),
        _ => {}
    }
    if st.threads > 1 {
        return Err(refused(pid, Refusal::MultiThreaded(st.threads)));
    }
    Ok(())
}

/// Whether process `pid` is ending: gone or a zombie within 50 ms.
fn exiting(pid: i32) -> bool {
    for _ in 0..10 {
        match read_status(pid) {
            Ok(st) if st.state != 'Z' && st.state != 'X' => {}
            _ => return true,
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
}

/// Attaches to the process without stopping it (`PTRACE_SEIZE`); runs on the tracer
/// thread.
fn seize(pid: Pid) -> Result<(), CaptureError> {
    let raw = pid.as_raw();
    ptrace::seize(pid, ptrace::Options::empty()).map_err(|e| match e {
        nix::errno::Errno::ESRCH => refused(raw, Refusal::NoSuchProcess(raw)),
        // A process that is exiting cannot be traced either (EPERM): say that it ended,
        // once it has, rather than that it may not be traced.
        nix::errno::Errno::EPERM if exiting(raw) => match read_status(raw) {
            Ok(_) => refused(raw, Refusal::Zombie),
            Err(e) => e,
        },
        e => refused(raw, Refusal::NotPermitted(e)),
    })
}

/// Stops the seized process (`PTRACE_INTERRUPT`) and waits until it has. What it does
/// meanwhile is let happen as it would have: a signal is delivered, a system call it
/// enters under `PTRACE_SYSCALL` runs, once noted in `ran`. Returns the signal of the
/// stop: `SIGTRAP` for the interrupt, a stop signal if job control stopped it.
fn interrupt(pid: Pid, hook: &mut Option<Hook>, ran: &mut Window) -> Result<i32, CaptureError> {
    let raw = pid.as_raw();
    let inject_err = |what, e| CaptureError::Inject {
        pid: raw,
        source: InjectError::Ptrace(what, e),
    };
    let io_err = |what, e: std::io::Error| {
        inject_err(
            what,
            nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    };
    ptrace::interrupt(pid).map_err(|e| inject_err("PTRACE_INTERRUPT", e))?;
    loop {
        let status = match sys::wait_raw(pid, hook.is_none()) {
            Ok(Some(status)) => status,
            Ok(None) => {
                if let Some(h) = hook.as_mut() {
                    h();
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("waitpid", e)),
        };
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Err(refused(raw, Refusal::NoSuchProcess(raw)));
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let (sig, event) = (libc::WSTOPSIG(status), status >> 16);
        if event == libc::PTRACE_EVENT_STOP {
            return Ok(sig);
        }
        let deliver = if sig == libc::SIGTRAP | 0x80 {
            // The first system call since the map was read: it runs, and the interrupt
            // (pending) stops the process as it returns.
            let nr = ptrace::getregs(pid)
                .map_err(|e| inject_err("PTRACE_GETREGS", e))?
                .orig_rax as i64;
            ran.syscall(nr);
            0
        } else if event != 0 {
            0
        } else {
            // A signal arrived before the interrupt took effect: let it be delivered as
            // it would have been; the interrupt stays pending and stops the process next.
            ran.signal();
            sig
        };
        sys::ptrace_cont(pid, deliver).map_err(|e| io_err("PTRACE_CONT", e))?;
    }
}

/// What a process did between the reading of its memory map and its freeze.
#[derive(Default)]
struct Window {
    /// It may have changed a mapping's flags without changing the layout.
    flags_may_differ: bool,
}

impl Window {
    fn syscall(&mut self, nr: i64) {
        self.flags_may_differ |= may_change_mappings(nr);
    }

    /// A signal handler may run and make calls untraced.
    fn signal(&mut self) {
        self.flags_may_differ = true;
    }
}

/// Whether system call `nr` may change a mapping or its flags (`VmFlags`) — whatever
/// else it does. Generous: a call missing here could make a capture miss a flag. (An
/// io_uring's kernel thread could `madvise` without a call, but a process with an
/// io_uring mapped is refused anyway.)
fn may_change_mappings(nr: i64) -> bool {
    [
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_pkey_mprotect,
        libc::SYS_brk,
        libc::SYS_madvise,
        libc::SYS_process_madvise,
        libc::SYS_mlock,
        libc::SYS_mlock2,
        libc::SYS_munlock,
        libc::SYS_mlockall,
        libc::SYS_munlockall,
        libc::SYS_mseal,
        libc::SYS_remap_file_pages,
        libc::SYS_shmat,
        libc::SYS_shmdt,
        libc::SYS_prctl,
        libc::SYS_ioctl,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_enter,
        libc::SYS_execve,
        libc::SYS_execveat,
    ]
    .contains(&nr)
}

/// The memory map of the process, read before its freeze.
struct ReadEarly {
    map: Option<crate::smaps::Early>,
    window: Window,
    /// How long it was stopped to start the window, and how long the reading took.
    stopped: Duration,
    reading: Duration,
    /// When the freeze proper was asked for.
    frozen_since: Instant,
    /// The system call it was first stopped in, if the kernel restarts it through
    /// `restart_syscall` (a sleep with a timeout).
    restarted: Option<u64>,
}

/// Seizes the process and freezes it. Reading a memory map (`/proc/PID/smaps`) walks
/// every page table, megabytes of text for tens of thousands of mappings: so it is read
/// first, while the process runs on, after a stop just long enough to trace its system
/// calls. The first call it makes waits until the map is read; if it (or a signal
/// handler) could change a mapping, or if the layout in `/proc/PID/maps` differs once
/// the process is frozen, the map is read again frozen.
fn freeze(pid: Pid, mut hook: Option<Hook>) -> Result<Option<ReadEarly>, CaptureError> {
    seize(pid)?;
    let mut ran = Window::default();
    let t = Instant::now();
    let sig = interrupt(pid, &mut hook, &mut ran)?;
    // A process that job control stopped stays stopped (PTRACE_SYSCALL would resume it).
    if sig != libc::SIGTRAP || ran.flags_may_differ {
        return Ok(None);
    }
    let raw = pid.as_raw();
    let inject_err = |what, e| CaptureError::Inject {
        pid: raw,
        source: InjectError::Ptrace(what, e),
    };
    let first = ptrace::getregs(pid).map_err(|e| inject_err("PTRACE_GETREGS", e))?;
    let restarted = (first.rax as i64 == ERESTART_RESTARTBLOCK && (first.orig_rax as i64) >= 0)
        .then_some(first.orig_rax);
    ptrace::setoptions(pid, ptrace::Options::PTRACE_O_TRACESYSGOOD)
        .map_err(|e| inject_err("PTRACE_SETOPTIONS", e))?;
    ptrace::syscall(pid, None).map_err(|e| inject_err("PTRACE_SYSCALL", e))?;
    let stopped = t.elapsed();
    let t = Instant::now();
    let map = crate::smaps::read_early(raw);
    let reading = t.elapsed();
    let frozen_since = Instant::now();
    interrupt(pid, &mut hook, &mut ran)?;
    ptrace::setoptions(pid, ptrace::Options::empty())
        .map_err(|e| inject_err("PTRACE_SETOPTIONS", e))?;
    Ok(Some(ReadEarly {
        // Unreadable early, it is read frozen (and the error told then).
        map: map.ok(),
        window: ran,
        stopped,
        reading,
        frozen_since,
        restarted,
    }))
}

fn capture_on_tracer(
    pid: i32,
    mut opts: Options,
) -> Result<(ProcessImage, Requeue, StepTimes, Before), CaptureError> {
    let p = Pid::from_raw(pid);
    let asked = Instant::now();
    let early = freeze(p, opts.while_stopping.take())?;
    let mut before = Before {
        frozen_since: early.as_ref().map_or(asked, |e| e.frozen_since),
        stopped: early.as_ref().map_or(Duration::ZERO, |e| e.stopped),
        reading: early.as_ref().map_or(Duration::ZERO, |e| e.reading),
        map_kept: false,
    };
    let mut laps = Laps::since(before.frozen_since);
    laps.lap("stop");
    match capture_frozen(pid, &opts, early, &mut before.map_kept, &mut laps) {
        Ok((image, taken)) => Ok((image, taken, laps.steps, before)),
        Err(e) => {
            let _ = ptrace::detach(p, None);
            Err(e)
        }
    }
}

fn capture_frozen(
    pid: i32,
    opts: &Options,
    early: Option<ReadEarly>,
    map_kept: &mut bool,
    laps: &mut Laps,
) -> Result<(ProcessImage, Requeue), CaptureError> {
    let &Options {
        keep_files,
        filtered,
        keep_queued,
        anon_index_later,
        ..
    } = opts;
    let p = Pid::from_raw(pid);
    let inject_err = |source| CaptureError::Inject { pid, source };
    let st = read_status(pid)?;
    // Checked again now that it is stopped, before anything is injected.
    injectable(pid, &st, filtered)?;

    // Memory map and refusals that depend on it.
    let proc_ =
        Process::new(pid).map_err(|e| proc_err(pid, "process")(std::io::Error::other(e)))?;
    let restarted = early.as_ref().and_then(|e| e.restarted);
    let early = early.filter(|e| !e.window.flags_may_differ);
    let maps = match early.and_then(|e| e.map) {
        Some(e) if e.unchanged(pid).map_err(proc_err(pid, "maps"))? => {
            *map_kept = true;
            e.maps
        }
        _ => crate::smaps::read(pid).map_err(proc_err(pid, "smaps"))?,
    };
    let pagemap = File::open(format!("/proc/{pid}/pagemap")).map_err(proc_err(pid, "pagemap"))?;
    let mut hashes: HashMap<String, FileId> = HashMap::new();
    let mut vmas = Vec::new();
    let mut pages = Vec::new();
    let mut vdso_text = None;
    let mut shared_mem = SharedMem::default();
    let mut indexing = Duration::ZERO;
    for m in maps.iter() {
        let (start, end) = m.address;
        let shared = m.perms.contains(MMPermissions::SHARED);
        let flags = m.extension.vm_flags;
        let name = match &m.pathname {
            MMapPath::Path(p) => p.to_string_lossy().into_owned(),
            MMapPath::Heap => "[heap]".into(),
            MMapPath::Stack => "[stack]".into(),
            MMapPath::Vdso => "[vdso]".into(),
            MMapPath::Vvar => "[vvar]".into(),
            MMapPath::Other(s) if s.starts_with('[') => s.clone(),
            MMapPath::Other(s) => format!("[{s}]"),
            _ => String::new(),
        };
        let backing = match &m.pathname {
            MMapPath::Vsyscall => continue,
            MMapPath::Vdso | MMapPath::Vvar => Backing::Vdso { name: name.clone() },
            MMapPath::Other(s) if s.trim_start_matches('[').starts_with("vvar") => {
                Backing::Vdso { name: name.clone() }
            }
            MMapPath::Vsys(key) => return Err(refused(pid, Refusal::SysvShm(start, *key))),
            MMapPath::Heap | MMapPath::Stack | MMapPath::Anonymous => {
                if shared {
                    shared_mem.check(pid, m)?;
                    Backing::Shared
                } else {
                    Backing::Anon
                }
            }
            MMapPath::Path(path) => {
                let ps = path.to_string_lossy().into_owned();
                let deleted = ps.ends_with(" (deleted)");
                if flags.intersects(VmFlags::IO | VmFlags::PF) || ps.starts_with("/dev/") {
                    if ps.starts_with("/dev/zero") && shared {
                        shared_mem.check(pid, m)?;
                        Backing::Shared
                    } else {
                        return Err(refused(pid, Refusal::DeviceMapping(ps)));
                    }
                } else if !ps.starts_with('/') {
                    return Err(refused(pid, Refusal::DeletedFile(ps)));
                } else if deleted && shared {
                    // A memfd or a deleted file: nobody else can open it by name.
                    shared_mem.check(pid, m)?;
                    Backing::Shared
                } else {
                    if shared && flags.contains(VmFlags::MW) {
                        return Err(refused(pid, Refusal::SharedWritable(ps)));
                    }
                    let id = match hashes.get(&ps) {
                        Some(id) => id.clone(),
                        None => {
                            // A deleted file (or memfd) is read through the mapping's
                            // own link; it exists at no node by its name.
                            let open_as = if deleted {
                                format!("/proc/{pid}/map_files/{start:x}-{end:x}")
                            } else {
                                ps.clone()
                            };
                            let id = file_id(Path::new(&open_as))
                                .map(|id| FileId {
                                    path: ps.clone(),
                                    ..id
                                })
                                .map_err(|e| match e.kind() {
                                    std::io::ErrorKind::InvalidInput => {
                                        refused(pid, Refusal::UnsupportedMapping(ps.clone()))
                                    }
                                    _ => proc_err(pid, &ps)(e),
                                })?;
                            hashes.insert(ps.clone(), id.clone());
                            id
                        }
                    };
                    Backing::File(id)
                }
            }
            other => {
                return Err(refused(
                    pid,
                    Refusal::UnsupportedMapping(format!("{other:?}")),
                ))
            }
        };
        let mut prot = 0;
        if m.perms.contains(MMPermissions::READ) {
            prot |= libc::PROT_READ;
        }
        if m.perms.contains(MMPermissions::WRITE) {
            prot |= libc::PROT_WRITE;
        }
        if m.perms.contains(MMPermissions::EXECUTE) {
            prot |= libc::PROT_EXEC;
        }
        let advice = advice_of(flags);
        let t = Instant::now();
        match &backing {
            Backing::Anon if anon_index_later => {}
            Backing::Anon => pages.extend(
                touched_pages(&pagemap, start, end, false).map_err(proc_err(pid, "pagemap"))?,
            ),
            // Pages of shared memory this process never touched may hold what another
            // (exited) process wrote: all of it goes.
            Backing::Shared => pages.push(PageRun {
                addr: start,
                pages: (end - start) / PAGE_SIZE,
            }),
            Backing::File(_) if !shared => pages.extend(
                touched_pages(&pagemap, start, end, true).map_err(proc_err(pid, "pagemap"))?,
            ),
            _ => {}
        }
        indexing += t.elapsed();
        if name == "[vdso]" {
            vdso_text = Some((start, end));
        }
        vmas.push(Vma {
            start,
            end,
            prot,
            shared,
            offset: m.offset,
            name,
            backing,
            grows_down: flags.contains(VmFlags::GD),
            locked: flags.contains(VmFlags::LO),
            advice,
        });
    }

    laps.lap_with("memory map", "page index", indexing);

    // Descriptors and timers.
    let files = if keep_files {
        Vec::new()
    } else {
        open_files(pid)?
    };
    let timer_list =
        std::fs::read_to_string(format!("/proc/{pid}/timers")).map_err(proc_err(pid, "timers"))?;
    let timers = parse_timers(&timer_list)
        .ok_or_else(|| refused(pid, Refusal::PosixTimers(timer_list.trim().to_string())))?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(proc_err(pid, "exe"))?
        .to_string_lossy()
        .into_owned();

    laps.lap("descriptors, timers");

    // Registers and signal state readable by ptrace.
    let mut regs =
        ptrace::getregs(p).map_err(|e| inject_err(InjectError::Ptrace("PTRACE_GETREGS", e)))?;
    // Stopped twice in a sleep the kernel restarts through `restart_syscall` (whose
    // state a restore cannot have), it is recorded in the call it was first stopped in,
    // as if stopped once: that call (its arguments are still in place) is made again.
    if let Some(nr) = restarted {
        if regs.orig_rax as i64 == libc::SYS_restart_syscall
            && regs.rax as i64 == ERESTART_RESTARTBLOCK
        {
            regs.orig_rax = nr;
        }
    }
    let xstate = sys::get_xstate(p).map_err(proc_err(pid, "XSAVE state"))?;
    let xcr0 = sys::arch::xstate_xcr0(&xstate);
    let sigmask = sys::get_sigmask(p).map_err(proc_err(pid, "signal mask"))?;
    let mut pending = Vec::new();
    let stay = keep_queued.map_or(0, |f| f(pid));
    for signal in queued_signals(p).map_err(proc_err(pid, "pending signals"))? {
        let bit = 1u64.checked_shl(signal.signo() as u32 - 1).unwrap_or(0);
        if stay & bit == 0 {
            pending.push(signal);
        }
    }
    let rseq = sys::get_rseq(p)
        .map_err(proc_err(pid, "rseq"))?
        .map(Rseq::from);
    let robust_list = sys::get_robust_list(p).map_err(proc_err(pid, "robust list"))?;
    let mut rlimits = Vec::new();
    for res in 0..16 {
        // prlimit64 on another user's process needs CAP_SYS_RESOURCE; /proc/PID/limits
        // tells the same to root.
        let (cur, max) = match sys::get_rlimit(p, res) {
            Ok(l) => l,
            Err(e) => proc_limit(pid, res).ok_or_else(|| proc_err(pid, "rlimits")(e))?,
        };
        rlimits.push(Rlimit {
            resource: res,
            cur,
            max,
        });
    }

    laps.lap("registers, signals, limits");

    // State only the process itself can tell: ask it, by injection.
    let (vs, ve) = vdso_text.ok_or_else(|| {
        refused(
            pid,
            Refusal::UnsupportedMapping("no [vdso] to inject through".into()),
        )
    })?;
    let insn = syscall_insn_in(pid, vs, ve)
        .map_err(proc_err(pid, "vdso"))?
        .ok_or_else(|| {
            refused(
                pid,
                Refusal::UnsupportedMapping("no syscall instruction in [vdso]".into()),
            )
        })?;
    // Queued timer signals are taken, for their overruns (see `Requeue`).
    let queued = queued_timer_signals(&pending, &timers);
    let mut injected = ask_process(p, insn, sigmask, timers, &queued).map_err(inject_err)?;
    let taken = Requeue {
        pid,
        sigs: std::mem::take(&mut injected.taken),
    };
    for t in injected
        .timers
        .iter()
        .filter(|t| t.queued_overrun.is_some())
    {
        if let Some(i) = pending
            .iter()
            .position(|s| timer_signal_of(&s.siginfo) == Some(t.id))
        {
            pending.remove(i);
        }
    }

    laps.lap("injected queries");

    let stat = proc_
        .stat()
        .map_err(|e| proc_err(pid, "stat")(std::io::Error::other(e)))?;
    let mm = MmLayout {
        start_code: stat.startcode,
        end_code: stat.endcode,
        start_data: stat.start_data.unwrap_or(0),
        end_data: stat.end_data.unwrap_or(0),
        start_brk: stat.start_brk.unwrap_or(0),
        brk: injected.brk,
        start_stack: stat.startstack,
        arg_start: stat.arg_start.unwrap_or(0),
        arg_end: stat.arg_end.unwrap_or(0),
        env_start: stat.env_start.unwrap_or(0),
        env_end: stat.env_end.unwrap_or(0),
    };
    let read =
        |what: &str| std::fs::read(format!("/proc/{pid}/{what}")).map_err(proc_err(pid, what));
    let auxv = read("auxv")?;
    let personality =
        u32::from_str_radix(String::from_utf8_lossy(&read("personality")?).trim(), 16).unwrap_or(0);
    let comm = String::from_utf8_lossy(&read("comm")?)
        .trim_end()
        .to_string();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .map_err(proc_err(pid, "cwd"))?
        .to_string_lossy()
        .into_owned();

    laps.lap("layout, auxv, cwd");

    let image = ProcessImage {
        version: IMAGE_VERSION,
        pid,
        comm,
        exe,
        cwd,
        regs: Regs::from_raw(&regs),
        xstate,
        xcr0,
        vmas,
        pages,
        anon_unlisted: anon_index_later,
        sigmask,
        pending,
        sigactions: injected.sigactions,
        altstack: injected.altstack,
        itimers: injected.itimers,
        timers: injected.timers,
        timers_read_at_ns: injected.timers_read_at_ns,
        mm_state: injected.mm_state,
        robust_list,
        rseq,
        clear_child_tid: injected.clear_child_tid,
        rlimits,
        umask: st.umask,
        personality,
        auxv,
        mm,
        files,
        creds: Creds {
            uid: st.uid,
            gid: st.gid,
            groups: st.groups,
        },
    };
    Ok((image, taken))
}

/// `si_code` of a signal a POSIX timer queued.
pub(crate) const SI_TIMER: i32 = -2;

/// The id of the timer that queued the raw `siginfo`, if a timer did.
pub(crate) fn timer_signal_of(siginfo: &[u8]) -> Option<i32> {
    let int_at = |at: usize| {
        Some(i32::from_ne_bytes(
            siginfo.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    (int_at(8)? == SI_TIMER).then(|| int_at(16)).flatten()
}

/// The signals queued to the stopped process `p`: its own queue, then the shared one.
fn queued_signals(p: Pid) -> std::io::Result<Vec<PendingSignal>> {
    let mut out = Vec::new();
    for shared in [false, true] {
        let queue = sys::peek_siginfo(p, shared)?;
        out.extend(
            queue
                .into_iter()
                .map(|siginfo| PendingSignal { shared, siginfo }),
        );
    }
    Ok(out)
}

/// The timers (id, signal) whose signal is queued first of its number (so that
/// `sigtimedwait` for that number takes it): a timer's signal is queued once, whatever
/// it misses meanwhile, and only its delivery tells how much that was.
fn queued_timer_signals(pending: &[PendingSignal], timers: &[PosixTimer]) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for t in timers {
        let first = pending.iter().find(|s| s.signo() == t.signo);
        if first.is_some_and(|s| timer_signal_of(&s.siginfo) == Some(t.id)) {
            out.push((t.id, t.signo));
        }
    }
    out
}

/// `membarrier` command: the commands the process registered for.
pub(crate) const MEMBARRIER_CMD_GET_REGISTRATIONS: u64 = 1 << 9;

/// What the process is asked by injected system calls.
struct Injected {
    sigactions: Vec<SigAction>,
    altstack: AltStack,
    itimers: Vec<ITimer>,
    timers: Vec<PosixTimer>,
    mm_state: MmState,
    clear_child_tid: u64,
    brk: u64,
    /// Raw siginfos of the timer signals taken (see [`Requeue`]).
    taken: Vec<Vec<u8>>,
    /// When the timers' times were read (time of day, ns since the epoch).
    timers_read_at_ns: u64,
}

/// The POSIX timers `/proc/PID/timers` lists, without their times (asked of the process
/// with `timer_gettime`). None if one notifies in a way not restored (a thread of its
/// own, SIGEV_THREAD, is glibc's: such a process has threads anyway).
pub(crate) fn parse_timers(text: &str) -> Option<Vec<PosixTimer>> {
    let mut out: Vec<PosixTimer> = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k == "ID" {
            out.push(PosixTimer {
                id: v.parse().ok()?,
                clock: 0,
                notify: 0,
                signo: 0,
                value: 0,
                interval_ns: 0,
                remaining_ns: 0,
                overrun: 0,
                queued_overrun: None,
            });
            continue;
        }
        let t = out.last_mut()?;
        match k {
            "signal" => {
                let (sig, value) = v.split_once('/')?;
                t.signo = sig.parse().ok()?;
                t.value = u64::from_str_radix(value, 16).ok()?;
            }
            "notify" => {
                let (how, target) = v.split_once('/')?;
                let base = match how {
                    "signal" => libc::SIGEV_SIGNAL,
                    "none" => libc::SIGEV_NONE,
                    _ => return None,
                };
                let tid = if target.starts_with("tid.") {
                    libc::SIGEV_THREAD_ID
                } else {
                    0
                };
                t.notify = base | tid;
            }
            "ClockID" => t.clock = v.parse().ok()?,
            _ => {}
        }
    }
    Some(out)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap_or([0; 8]))
}

fn ask_process(
    p: Pid,
    insn: u64,
    sigmask: u64,
    timers: Vec<PosixTimer>,
    queued: &[(i32, i32)],
) -> Result<Injected, InjectError> {
    let mut inj = Injector::new(p, insn)?;
    sys::set_sigmask(p, u64::MAX).map_err(|e| InjectError::Mem(0, e))?;
    let result = ask_with(&mut inj, p, timers, queued);
    if inj.scratch != 0 {
        let _ = inj.raw(libc::SYS_munmap, &[inj.scratch, SCRATCH_PAGES * PAGE_SIZE]);
    }
    let finished = inj.finish();
    let masked = sys::set_sigmask(p, sigmask).map_err(|e| InjectError::Mem(0, e));
    let r = result?;
    finished?;
    masked?;
    Ok(r)
}

/// The pages of [`ask_with`]'s scratch area, from `Injector::scratch` on.
const SCRATCH_PAGES: u64 = 4;

fn ask_with(
    inj: &mut Injector,
    p: Pid,
    mut timers: Vec<PosixTimer>,
    queued: &[(i32, i32)],
) -> Result<Injected, InjectError> {
    // The scratch pages: two for a table of calls, one for what they write back, and
    // one for the batch loop that makes them all in one run (read-only and executable;
    // the tracer writes it through /proc/PID/mem). See [`ask_process`] for their end.
    let base = inj.call(
        "mmap",
        libc::SYS_mmap,
        &[
            0,
            SCRATCH_PAGES * PAGE_SIZE,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    )?;
    inj.scratch = base;
    inj.scratch_len = 2 * PAGE_SIZE;
    let scratch = base + 2 * PAGE_SIZE;
    let code = base + 3 * PAGE_SIZE;
    // Where a policy forbids executable anonymous memory, the calls are made one by one.
    let rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
    if inj.raw(libc::SYS_mprotect, &[code, PAGE_SIZE, rx])? == 0 {
        inj.load_batch_code(code)?;
    }

    // What every process has: its signal actions, altstack, interval timers, a few
    // per-mm settings, clear_child_tid and brk, each written to its own place.
    const ACTION: u64 = 32;
    let signals: Vec<u64> = (1..=64u64)
        .filter(|&s| s != libc::SIGKILL as u64 && s != libc::SIGSTOP as u64)
        .collect();
    let alt_at = scratch + 2048;
    let itimer_at = |which: u64| alt_at + 32 + which * 32;
    let tid_at = itimer_at(3);
    const PR_GET_TID_ADDRESS: u64 = 40;
    let q = |nr: i64, a: &[u64]| {
        let mut args = [0; 6];
        args[..a.len()].copy_from_slice(a);
        Queued {
            nr,
            args,
            may_fail: true,
        }
    };
    let mut calls: Vec<Queued> = signals
        .iter()
        .enumerate()
        .map(|(i, &sig)| {
            let at = scratch + i as u64 * ACTION;
            q(libc::SYS_rt_sigaction, &[sig, 0, at, 8])
        })
        .collect();
    calls.push(q(libc::SYS_sigaltstack, &[0, alt_at]));
    calls.extend((0..3).map(|which| q(libc::SYS_getitimer, &[which, itimer_at(which)])));
    calls.push(q(
        libc::SYS_prctl,
        &[libc::PR_GET_THP_DISABLE as u64, 0, 0, 0, 0],
    ));
    calls.push(q(
        libc::SYS_membarrier,
        &[MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0],
    ));
    calls.push(q(libc::SYS_prctl, &[PR_GET_TID_ADDRESS, tid_at]));
    calls.push(q(libc::SYS_brk, &[0]));
    let results = inj.batch_each(&calls)?;
    let mut result = results.into_iter();
    let mut next = |name| checked(name, result.next().unwrap_or(-(libc::EIO as i64)));
    let b = inj.read(scratch, (tid_at + 8 - scratch) as usize)?;
    let at = |addr: u64, off: usize| u64_at(&b, (addr - scratch) as usize + off);
    let mut sigactions = Vec::new();
    for (i, &sig) in signals.iter().enumerate() {
        next("rt_sigaction")?;
        let a = scratch + i as u64 * ACTION;
        sigactions.push(SigAction {
            signo: sig as i32,
            handler: at(a, 0),
            flags: at(a, 8),
            restorer: at(a, 16),
            mask: at(a, 24),
        });
    }
    next("sigaltstack")?;
    let altstack = AltStack {
        sp: at(alt_at, 0),
        flags: at(alt_at, 8) as i32,
        size: at(alt_at, 16),
    };
    let mut itimers = Vec::new();
    for which in 0..3u64 {
        next("getitimer")?;
        let t = itimer_at(which);
        itimers.push(ITimer {
            which: which as i32,
            interval_us: at(t, 0) * 1_000_000 + at(t, 8),
            value_us: at(t, 16) * 1_000_000 + at(t, 24),
        });
    }
    let thp = next("prctl(PR_GET_THP_DISABLE)")?;
    // Linux 6.3; an older kernel says EINVAL, and nothing can be registered again then.
    let membarrier = next("membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)").unwrap_or(0) as u32;
    let mm_state = MmState {
        thp_disable: thp == 1,
        membarrier,
    };
    next("prctl(PR_GET_TID_ADDRESS)")?;
    let clear_child_tid = at(tid_at, 0);
    let brk = next("brk")?;
    // Last, so that nothing else can fail once a signal is taken (the caller puts it back
    // if the capture goes no further; so does this, if it fails itself).
    //
    // A periodic timer's state is its queued signal (with the expirations it stands for)
    // and its next expiry, and they must be read together: an expiry between the two
    // readings would be lost (its signal queued after the queue was read) or counted
    // twice. So the timers are read, their queued signals taken, the timers read again,
    // and the queue looked at once more: a signal queued meanwhile is taken too, until
    // none came (a few rounds at most, but for intervals of microseconds).
    let ns = |b: &[u8], at: usize| u64_at(b, at) * 1_000_000_000 + u64_at(b, at + 8);
    let mut requeue = Requeue {
        pid: p.as_raw(),
        sigs: Vec::new(),
    };
    let mut queued = queued.to_vec();
    let mut timers_read_at_ns;
    let mut round = 0u32;
    loop {
        for t in &mut timers {
            inj.call(
                "timer_gettime",
                libc::SYS_timer_gettime,
                &[t.id as u64, scratch],
            )?;
            let b = inj.read(scratch, 32)?;
            t.interval_ns = ns(&b, 0);
            t.remaining_ns = ns(&b, 16);
            if t.interval_ns > 0 {
                t.overrun = inj.call(
                    "timer_getoverrun",
                    libc::SYS_timer_getoverrun,
                    &[t.id as u64],
                )? as i32;
            }
        }
        timers_read_at_ns = crate::restore::wall_clock_ns();
        let mut took = false;
        for t in timers.iter_mut().filter(|t| t.interval_ns > 0) {
            if !queued.contains(&(t.id, t.signo)) {
                continue;
            }
            inj.write(scratch, &(1u64 << (t.signo - 1)).to_ne_bytes())?;
            inj.write(scratch + 16, &[0u8; 16])?;
            let got = inj.call(
                "rt_sigtimedwait",
                libc::SYS_rt_sigtimedwait,
                &[scratch, scratch + 64, scratch + 16, 8],
            );
            if !matches!(got, Ok(n) if n == t.signo as u64) {
                continue;
            }
            let info = inj.read(scratch + 64, 128)?;
            if timer_signal_of(&info) == Some(t.id) {
                let k = i32::from_ne_bytes(info[20..24].try_into().unwrap_or([0; 4]));
                // Two signals taken stand for all their expirations: 1 + k each.
                t.queued_overrun = Some(t.queued_overrun.map_or(k, |q| q + 1 + k));
            }
            requeue.sigs.push(info);
            took = true;
        }
        round += 1;
        let now = queued_signals(p).map_err(|e| InjectError::Mem(0, e))?;
        queued = queued_timer_signals(&now, &timers);
        // Once more after taking, as the signals taken re-armed their timers.
        if (!took && queued.is_empty()) || round == 8 {
            break;
        }
    }
    let taken = std::mem::take(&mut requeue.sigs);
    Ok(Injected {
        sigactions,
        altstack,
        itimers,
        timers,
        mm_state,
        clear_child_tid,
        brk,
        taken,
        timers_read_at_ns,
    })
}

/// Size and BLAKE3 hash of a regular file; `InvalidInput` if it is not one.
pub(crate) fn file_id(path: &Path) -> std::io::Result<FileId> {
    let mut f = File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hash = h.finalize().to_hex().to_string();
    Ok(FileId {
        path: path.to_string_lossy().into_owned(),
        size: meta.len(),
        hash,
    })
}

/// The shared memory of a process being captured: it moves only when nothing else can
/// reach it, since the copy at another node no longer shares anything.
#[derive(Default)]
struct SharedMem {
    /// (device, inode) of each shared object seen, and the address it is mapped at.
    seen: Vec<((u64, u64), u64, u64)>,
    /// Every other process's mappings of shared objects, read once: (device, inode) ->
    /// a pid that maps it.
    others: Option<HashMap<(u64, u64), i32>>,
}

impl SharedMem {
    /// Refuses the shared mapping `m` of process `pid` if another process maps the same
    /// object, if a descriptor of the process holds it (a memfd it also reads and writes
    /// by descriptor), or if the process maps it twice (other than pieces of one
    /// mapping, which mprotect or madvise split).
    fn check(&mut self, pid: i32, m: &procfs::process::MemoryMap) -> Result<(), CaptureError> {
        let start = m.address.0;
        let key = (libc::makedev(m.dev.0 as u32, m.dev.1 as u32), m.inode);
        let offset = m.offset;
        for &(k, at, off_at) in &self.seen {
            // A piece of the same mapping continues exactly where the last one ended.
            if k == key && !(off_at + (start - at) == offset && at < start) {
                return Err(refused(pid, Refusal::SharedTwice(at, start)));
            }
        }
        self.seen.push((key, start, offset));
        let others = self.others.get_or_insert_with(|| others_shared(pid));
        if let Some(&other) = others.get(&key) {
            return Err(refused(pid, Refusal::SharedAnon(start, other)));
        }
        if let Some(fd) = fd_on(pid, key) {
            return Err(refused(pid, Refusal::SharedWithFd(start, fd)));
        }
        Ok(())
    }
}

/// The shared objects (device, inode) that processes other than `pid` map, with a pid
/// that maps each: from every process's `/proc/PID/maps` (shared mappings only).
fn others_shared(pid: i32) -> HashMap<(u64, u64), i32> {
    let mut out = HashMap::new();
    let Ok(all) = procfs::process::all_processes() else {
        return out;
    };
    for p in all.flatten() {
        if p.pid == pid {
            continue;
        }
        let Ok(maps) = p.maps() else { continue };
        for m in maps.iter() {
            if m.perms.contains(MMPermissions::SHARED) && m.inode != 0 {
                let key = (libc::makedev(m.dev.0 as u32, m.dev.1 as u32), m.inode);
                out.entry(key).or_insert(p.pid);
            }
        }
    }
    out
}

/// A descriptor of `pid` open on the object (device, inode) `key`, if any.
fn fd_on(pid: i32, key: (u64, u64)) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    dir.flatten().find_map(|e| {
        let meta = std::fs::metadata(e.path()).ok()?;
        ((meta.dev(), meta.ino()) == key)
            .then(|| e.file_name().to_str()?.parse().ok())
            .flatten()
    })
}

fn open_files(pid: i32) -> Result<Vec<OpenFile>, CaptureError> {
    let dir = format!("/proc/{pid}/fd");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(proc_err(pid, "fd"))? {
        let entry = entry.map_err(proc_err(pid, "fd"))?;
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if fd <= 2 {
            continue;
        }
        let target = std::fs::read_link(entry.path())
            .map_err(proc_err(pid, "fd"))?
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::metadata(entry.path()).map_err(proc_err(pid, "fd"))?;
        let kind = meta.file_type();
        // Stateless devices are as easy to reopen as files.
        const STATELESS: [&str; 5] = [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
        ];
        let regular = kind.is_file() || kind.is_dir() || STATELESS.contains(&target.as_str());
        if !regular || !target.starts_with('/') || target.ends_with(" (deleted)") {
            use std::os::unix::fs::FileTypeExt;
            let what = if target.starts_with("pipe:") {
                format!("a pipe ({target})")
            } else if target.starts_with("socket:") {
                format!("a socket ({target})")
            } else if kind.is_char_device() {
                format!("a character device ({target})")
            } else if kind.is_block_device() {
                format!("a block device ({target})")
            } else if kind.is_fifo() {
                format!("a FIFO ({target})")
            } else if target.ends_with(" (deleted)") {
                format!("a deleted file ({target})")
            } else {
                target.clone()
            };
            return Err(refused(pid, Refusal::UnsupportedFd { fd, what }));
        }
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
            .map_err(proc_err(pid, "fdinfo"))?;
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        files.push(OpenFile {
            fd,
            path: target,
            flags: i32::from_str_radix(&field("flags:"), 8).unwrap_or(0),
            pos: field("pos:").parse().unwrap_or(0),
        });
    }
    files.sort_by_key(|f| f.fd);
    Ok(files)
}

/// Resource limit `res` read from `/proc/PID/limits` (one line per resource, in order).
fn proc_limit(pid: i32, res: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().nth(1 + res as usize)?;
    // "Max cpu time   unlimited   unlimited   seconds": the two values start at column 26.
    let mut it = line.get(26..)?.split_whitespace();
    let num = |s: &str| {
        if s == "unlimited" {
            Some(u64::MAX)
        } else {
            s.parse().ok()
        }
    };
    Some((num(it.next()?)?, num(it.next()?)?))
}

/// The `madvise` advice a mapping with `flags` (`/proc/PID/smaps` VmFlags) was given,
/// as far as a restore can give it again.
pub(crate) fn advice_of(flags: VmFlags) -> Vec<i32> {
    [
        (VmFlags::DD, libc::MADV_DONTDUMP),
        (VmFlags::WF, libc::MADV_WIPEONFORK),
        (VmFlags::DC, libc::MADV_DONTFORK),
        (VmFlags::HG, libc::MADV_HUGEPAGE),
        (VmFlags::NH, libc::MADV_NOHUGEPAGE),
    ]
    .into_iter()
    .filter(|(f, _)| flags.contains(*f))
    .map(|(_, a)| a)
    .collect()
}

/// The XSAVE features (XCR0) every process of this machine runs with, as a capture
/// records them in [`ProcessImage::xcr0`].
pub fn machine_xcr0() -> u64 {
    sys::arch::xcr0()
}

#[cfg(test)]
mod tests {
    use super::parse_timers;

    #[test]
    fn timers_are_read_from_proc() {
        let text = "ID: 0\nsignal: 35/0000000000001234\nnotify: signal/pid.42\nClockID: 1\n\
                    ID: 3\nsignal: 14/0000000000000000\nnotify: none/pid.42\nClockID: 0\n\
                    ID: 4\nsignal: 10/0000000000000000\nnotify: signal/tid.42\nClockID: 1\n";
        let t = parse_timers(text).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].id, t[0].signo, t[0].value, t[0].clock),
            (0, 35, 0x1234, 1)
        );
        assert_eq!(t[0].notify, libc::SIGEV_SIGNAL);
        assert_eq!((t[1].id, t[1].notify, t[1].clock), (3, libc::SIGEV_NONE, 0));
        assert_eq!(t[2].notify, libc::SIGEV_SIGNAL | libc::SIGEV_THREAD_ID);
        assert!(parse_timers("").unwrap().is_empty());
        // glibc's SIGEV_THREAD timers are not restored.
        assert!(parse_timers("ID: 1\nsignal: 32/0\nnotify: thread/tid.7\nClockID: 1\n").is_none());
    }
}
