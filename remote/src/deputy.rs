//! The deputy: the original process at home, kept frozen under ptrace while its user code
//! runs at another node. It keeps the pid, parent, descriptors, directory, credentials and
//! terminal; each forwarded call is injected into it, so its meaning is exactly the home
//! node's. Between calls it waits in an injected `pause()` with every signal unblocked, so
//! a signal sent to it stops it under ptrace: the signal is taken (never delivered at
//! home) and handed to the caller to deliver at the remote node.
//!
//! Pointer arguments are placed in a scratch area of the deputy (see
//! [`crate::syscalls::Call::place`]) rather than at the remote's addresses, so the
//! deputy's own memory, which serves the remote's lazy page faults, is never written.
//! All methods run on the tracer thread: see [`IntoDeputy::into_deputy`].

use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::capture::{Frozen, Options};
use crate::ended::Ended;
use crate::error::{CaptureError, InjectError, RestoreError};
use crate::image::{Backing, ProcessImage, PAGE_SIZE};
use crate::inject::{call_regs, start_call, syscall_insn_in, Injector};
use crate::pages::{shared_pages, PageSource};
use crate::ranges::RangeMap;
use crate::restore::{find_gap, foreign_files, restore_in_place};
use crate::sigfd;
use crate::sys;
use crate::syscalls::{Call, Reply, Scratch};

/// What a deputy operation saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Signals sent to the home process, to be delivered at the remote one, in order.
    Signals(Vec<i32>),
    /// The home process is gone.
    Gone(Ended),
}

/// How to capture a process that leaves home and keeps a deputy there: its descriptors
/// stay at home with the deputy, and so do the signals its signalfds watch (see
/// [`sigfd`]), queued for the forwarded reads of those signalfds to find.
pub fn leaving_home() -> Options {
    Options {
        keep_files: true,
        while_stopping: None,
        filtered: false,
        keep_queued: Some(sigfd::watched_signals),
        anon_index_later: false,
    }
}

/// Turns a [`Frozen`] process into the deputy of its migrated self.
pub trait IntoDeputy {
    /// Makes the frozen process the deputy and runs `f` with it on the tracer thread
    /// (every ptrace call must come from there). If the deputy cannot be set up, the
    /// process is put back as it was and runs on; `f` then gets the error. When `f`
    /// returns, the process must be gone or have come home.
    fn into_deputy<R: Send + 'static>(
        self,
        f: impl FnOnce(Result<DeputyCtl, InjectError>) -> R + Send + 'static,
    ) -> Result<R, CaptureError>;
}

impl IntoDeputy for Frozen {
    fn into_deputy<R: Send + 'static>(
        self,
        f: impl FnOnce(Result<DeputyCtl, InjectError>) -> R + Send + 'static,
    ) -> Result<R, CaptureError> {
        self.hand_over(DeputyCtl::new, f)
    }
}

/// The result of a forwarded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran: its reply, and the signals that arrived meanwhile (to deliver at the
    /// remote before the reply, so that they interrupt or follow the call as natively).
    Done(Reply, Vec<i32>),
    /// It was interrupted by a [`nudge`] before it did anything (it blocked): it is to be
    /// made again, here or wherever the process goes next.
    Interrupted,
    /// The home process is gone.
    Gone(Ended),
    /// The call is not one the deputy may make (see [`Call::check`]): it was not made.
    Refused(crate::syscalls::Unlawful),
}

/// The signal omd sends a deputy (see [`nudge`]).
const NUDGE: Signal = Signal::SIGURG;

/// Interrupts a forwarded call that blocks in the deputy `pid` (a read on an empty pipe)
/// because something needs the home end (the process is to come home, or its remote end
/// is gone): the call ends as [`Outcome::Interrupted`]. Sent by `kill` from this
/// process, which is how the deputy tells it from a signal meant for the process. Any
/// thread may call it; a nudge that finds no call blocking is dropped.
pub fn nudge(pid: i32) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), NUDGE);
}

/// Whether a signal with this `si_signo`, `si_code` and `si_pid` is a [`nudge`].
fn is_nudge_info((signo, code, from): (i32, i32, i32)) -> bool {
    signo == NUDGE as i32 && code == libc::SI_USER && from == std::process::id() as i32
}

/// The signals that stop a process by default and may be caught.
const STOPS: [i32; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// Restart codes the kernel leaves in `rax` when a signal interrupts a call.
const RESTARTS: [i64; 4] = [-512, -513, -514, -516];
const SYS_PAUSE: i64 = libc::SYS_pause;
const CODE: [u8; 3] = [0x0f, 0x05, 0xcc];

/// Control of the frozen original. Used only on its tracer thread.
pub struct DeputyCtl {
    pid: Pid,
    inj: Injector,
    /// The deputy's area: one code page (`syscall; int3`) then room for arguments.
    region: u64,
    region_len: u64,
    parked: bool,
    /// In a group-stop, as its guest is (listening: see [`DeputyCtl::stop`]).
    stopped: bool,
    /// A [`nudge`] arrived during the current call.
    nudged: bool,
    pending: Vec<i32>,
    /// The private mappings the process had when it left (not yet released).
    releasable: Vec<(u64, u64)>,
    /// The signals a signalfd of the process watches (see [`sigfd::watched_signals`]). They
    /// stay queued at home, blocked in the deputy, for forwarded reads of the signalfd
    /// to find, rather than going to the guest.
    watched: u64,
    /// A SIGCONT home sent itself to mirror a continue made at the remote node (see
    /// [`DeputyCtl::go_on`]): the guest has continued already and must not get it.
    own_cont: bool,
}

struct Mem<'a>(&'a Injector);

impl Scratch for Mem<'_> {
    fn write(&mut self, addr: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write(addr, data).map_err(std::io::Error::other)
    }
    fn read(&mut self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.0.read(addr, len).map_err(std::io::Error::other)
    }
}

pub(crate) fn gone_of(e: &InjectError) -> Option<Ended> {
    match e {
        InjectError::Exited(c) => Some(Ended::Exited(*c)),
        InjectError::Killed(s) => Some(Ended::killed(*s as i32)),
        InjectError::Ptrace(_, nix::errno::Errno::ESRCH) => Some(Ended::killed(libc::SIGKILL)),
        _ => None,
    }
}

/// What [`DeputyCtl::release_memory`] may drop of `image`'s memory at home: its private
/// mappings, except the pages of its command line and environment, which the kernel
/// reads from there for `/proc/PID/cmdline` and `environ` (asked of home, and shown by
/// ps and mps).
fn releasable(image: &ProcessImage) -> Vec<(u64, u64)> {
    let mm = &image.mm;
    let keep = (
        mm.arg_start.min(mm.env_start) / PAGE_SIZE * PAGE_SIZE,
        mm.arg_end.max(mm.env_end).div_ceil(PAGE_SIZE) * PAGE_SIZE,
    );
    let private = image
        .vmas
        .iter()
        .filter(|v| !v.shared && !matches!(v.backing, Backing::Vdso { .. }))
        .map(|v| (v.start, v.end));
    outside(private, keep)
}

/// The parts of `ranges` outside `[keep.0, keep.1)`.
fn outside(ranges: impl Iterator<Item = (u64, u64)>, keep: (u64, u64)) -> Vec<(u64, u64)> {
    ranges
        .flat_map(|(start, end)| [(start, end.min(keep.0)), (start.max(keep.1), end)])
        .filter(|(s, e)| s < e)
        .collect()
}

impl DeputyCtl {
    /// Prepares the frozen process `pid` (captured as `image`) to serve as deputy: maps
    /// its area, takes its queued signals (the image carries them to the remote), stops
    /// its interval timers (they run at the remote) and unblocks every signal.
    pub(crate) fn new(pid: i32, image: &ProcessImage) -> Result<Self, InjectError> {
        let p = Pid::from_raw(pid);
        // Capture found one there already, so this only fails if the process changed.
        let vdso = image
            .vmas
            .iter()
            .find(|v| v.name == "[vdso]")
            .ok_or(InjectError::NoSyscallInsn)?;
        let insn = syscall_insn_in(pid, vdso.start, vdso.end)
            .map_err(|e| InjectError::Mem(vdso.start, e))?
            .ok_or(InjectError::NoSyscallInsn)?;
        // If omd (the tracer) dies, the home process dies with it: it could never run on
        // with the deputy's registers, and must not hang.
        ptrace::setoptions(p, ptrace::Options::PTRACE_O_EXITKILL)
            .map_err(|e| InjectError::Ptrace("PTRACE_SETOPTIONS", e))?;
        // Signals wait (queued) while the deputy is set up.
        sys::set_sigmask(p, u64::MAX).map_err(|e| InjectError::Mem(0, e))?;
        let inj = Injector::new(p, insn)?;
        let mut d = DeputyCtl {
            pid: p,
            inj,
            region: 0,
            region_len: 0,
            parked: false,
            stopped: false,
            nudged: false,
            pending: Vec::new(),
            releasable: releasable(image),
            watched: sigfd::watched_signals(pid),
            own_cont: false,
        };
        d.map_region(1 << 20, None)?;
        // Take every queued signal without delivering it: those in the image go to the
        // remote with it, later ones are forwarded like any other.
        let set = d.inj.put(0, &(!d.watched).to_ne_bytes())?;
        let zero = d.inj.put(16, &[0u8; 16])?;
        let mut captured: Vec<i32> = image.pending.iter().map(|s| s.signo()).collect();
        for _ in 0..256 {
            let r = d.inj.raw(libc::SYS_rt_sigtimedwait, &[set, 0, zero, 8])?;
            if r <= 0 {
                break;
            }
            match captured.iter().position(|&s| s == r as i32) {
                Some(i) => {
                    captured.remove(i);
                }
                None => d.pending.push(r as i32),
            }
        }
        let off = d.inj.put(64, &[0u8; 32])?;
        for which in 0..3u64 {
            d.inj.raw(libc::SYS_setitimer, &[which, off, 0])?;
        }
        // So are its POSIX timers (coming home, restore deletes these and makes the
        // remote's).
        for t in &image.timers {
            d.inj
                .raw(libc::SYS_timer_settime, &[t.id as u64, 0, off, 0])?;
        }
        // The home process stops when its guest stops (see `stop`) by the same signal,
        // with its default action: a handler (readline's SIGTSTP) runs at the remote
        // node, never here. An ignored one stays ignored: the terminal asks whether
        // SIGTTIN and SIGTTOU are ignored before it sends them.
        let dfl = d.inj.put(0, &[0u8; 32])?;
        for sig in STOPS {
            let handled = image
                .sigactions
                .iter()
                .any(|a| a.signo == sig && a.handler > 1);
            if handled {
                d.inj
                    .raw(libc::SYS_rt_sigaction, &[sig as u64, dfl, 0, 8])?;
            }
        }
        sys::set_sigmask(p, d.watched).map_err(|e| InjectError::Mem(0, e))?;
        Ok(d)
    }

    /// The pid of the home process.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Maps a new area of at least `len` bytes (at `at` if given) and drops the old one.
    fn map_region(&mut self, len: u64, at: Option<u64>) -> Result<(), InjectError> {
        let len = (len + PAGE_SIZE).div_ceil(1 << 20) * (1 << 20);
        let (addr, flags) = match at {
            Some(a) => (a, libc::MAP_FIXED_NOREPLACE),
            None => (0, 0),
        };
        let new = self.inj.call(
            "mmap",
            libc::SYS_mmap,
            &[
                addr,
                len,
                (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags) as u64,
                u64::MAX,
                0,
            ],
        )?;
        self.inj.write(new, &CODE)?;
        let old = (self.region, self.region_len);
        self.inj.insn = new;
        self.region = new;
        self.region_len = len;
        self.inj.scratch = new + PAGE_SIZE;
        self.inj.scratch_len = len - PAGE_SIZE;
        if old.0 != 0 {
            self.inj.call("munmap", libc::SYS_munmap, &[old.0, old.1])?;
        }
        Ok(())
    }

    /// Waits in `pause()` for signals; call [`DeputyCtl::poll`] to collect them.
    pub fn park(&mut self) -> Result<(), InjectError> {
        if self.parked {
            return Ok(());
        }
        let regs =
            ptrace::getregs(self.pid).map_err(|e| InjectError::Ptrace("PTRACE_GETREGS", e))?;
        ptrace::setregs(self.pid, call_regs(regs, self.inj.insn, SYS_PAUSE, &[]))
            .map_err(|e| InjectError::Ptrace("PTRACE_SETREGS", e))?;
        ptrace::cont(self.pid, None).map_err(|e| InjectError::Ptrace("PTRACE_CONT", e))?;
        self.parked = true;
        Ok(())
    }

    /// Stops the home process by signal `sig` (SIGTSTP, SIGSTOP, ...), because its guest
    /// stopped so: it enters a group-stop, which its parent sees (the shell prints
    /// "Stopped", `jobs` lists it), and stays in it, listening, until SIGCONT (`fg`,
    /// `bg`) wakes it; [`DeputyCtl::poll`] then takes the SIGCONT for the guest. Called
    /// while parked. A stop the kernel discards (a process group without a parent in the
    /// session, for SIGTSTP) leaves it parked.
    pub fn stop(&mut self, sig: i32) -> Result<(), InjectError> {
        if self.stopped || !self.parked {
            return Ok(());
        }
        let s = Signal::try_from(sig).map_err(|e| InjectError::Ptrace("kill", e))?;
        nix::sys::signal::kill(self.pid, s).map_err(|e| InjectError::Ptrace("kill", e))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut passed = false;
        loop {
            let flags = WaitPidFlag::__WALL | WaitPidFlag::WNOHANG;
            let pid = self.pid;
            let cont = |sig: Option<Signal>| {
                ptrace::cont(pid, sig).map_err(|e| InjectError::Ptrace("PTRACE_CONT", e))
            };
            match waitpid(self.pid, Some(flags)) {
                Ok(WaitStatus::StillAlive) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(WaitStatus::StillAlive) => return Ok(()),
                // Its own stop signal: let it act.
                Ok(WaitStatus::Stopped(_, got)) if got == s && !passed => {
                    passed = true;
                    cont(Some(got))?;
                }
                Ok(WaitStatus::Stopped(_, got)) => {
                    self.take(got as i32);
                    cont(None)?;
                }
                Ok(WaitStatus::PtraceEvent(_, _, ev))
                    if ev == libc::PTRACE_EVENT_STOP && passed =>
                {
                    sys::ptrace_listen(self.pid).map_err(|e| InjectError::Mem(0, e))?;
                    self.stopped = true;
                    return Ok(());
                }
                Ok(WaitStatus::PtraceEvent(..)) => cont(None)?,
                Ok(WaitStatus::Exited(_, c)) => return Err(InjectError::Exited(c)),
                Ok(WaitStatus::Signaled(_, s, _)) => return Err(InjectError::Killed(s)),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(InjectError::Ptrace("waitpid", e)),
            }
        }
    }

    /// Ends the group-stop [`DeputyCtl::stop`] entered, because the guest continued
    /// without home's word (a SIGCONT sent to it at the remote node): the home process
    /// continues too, so that its parent sees it run again. The SIGCONT that does it is
    /// not passed on. Nothing happens if it is not stopped (home's own SIGCONT
    /// continued both).
    pub fn go_on(&mut self) -> Result<(), InjectError> {
        if !self.stopped {
            return Ok(());
        }
        self.own_cont = true;
        nix::sys::signal::kill(self.pid, Signal::SIGCONT)
            .map_err(|e| InjectError::Ptrace("kill", e))
    }

    /// Records a signal taken from the home process, for the guest.
    fn take(&mut self, sig: i32) {
        if sig == libc::SIGCONT && std::mem::take(&mut self.own_cont) {
            return;
        }
        self.pending.push(sig);
    }

    /// Signals that arrived while parked (without waiting), or the end of the process.
    pub fn poll(&mut self) -> Event {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                // Woken from its group-stop (SIGCONT, or a signal for the guest): on it
                // goes, and the signal is taken below.
                Ok(WaitStatus::PtraceEvent(..)) if self.stopped => {
                    self.stopped = false;
                    self.parked = false;
                    if let Err(e) = self.park() {
                        if let Some(g) = gone_of(&e) {
                            return Event::Gone(g);
                        }
                    }
                }
                Ok(WaitStatus::Stopped(_, sig)) => {
                    if !self.is_nudge(sig) {
                        self.take(sig as i32);
                    }
                    self.parked = false;
                    if let Err(e) = self.park() {
                        if let Some(g) = gone_of(&e) {
                            return Event::Gone(g);
                        }
                    }
                }
                Ok(WaitStatus::Exited(_, c)) => return Event::Gone(Ended::Exited(c)),
                Ok(WaitStatus::Signaled(_, s, core)) => {
                    return Event::Gone(Ended::Killed {
                        signal: s as i32,
                        core,
                    })
                }
                Ok(WaitStatus::PtraceEvent(..)) => {
                    self.parked = false;
                    let _ = self.park();
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Event::Gone(Ended::killed(libc::SIGKILL)),
            }
        }
        Event::Signals(std::mem::take(&mut self.pending))
    }

    /// Stops waiting in `pause()` so that calls can be injected.
    fn unpark(&mut self) -> Result<(), InjectError> {
        if !self.parked {
            return Ok(());
        }
        ptrace::interrupt(self.pid).map_err(|e| InjectError::Ptrace("PTRACE_INTERRUPT", e))?;
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::PtraceEvent(_, _, ev)) if ev == libc::PTRACE_EVENT_STOP => break,
                Ok(WaitStatus::Stopped(_, sig)) => {
                    // Taken, not delivered; the interrupt is still pending and stops it next.
                    if !self.is_nudge(sig) {
                        self.take(sig as i32);
                    }
                    ptrace::cont(self.pid, None)
                        .map_err(|e| InjectError::Ptrace("PTRACE_CONT", e))?;
                }
                Ok(WaitStatus::Exited(_, c)) => return Err(InjectError::Exited(c)),
                Ok(WaitStatus::Signaled(_, s, _)) => return Err(InjectError::Killed(s)),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(InjectError::Ptrace("waitpid", e)),
            }
        }
        self.parked = false;
        Ok(())
    }

    /// Runs `nr(args)` in the home process. A signal arriving meanwhile is taken (and
    /// recorded); if it interrupted the call, the call's result is the kernel's restart
    /// code, which the remote kernel then resolves with the remote process's own handlers
    /// (restart, or EINTR) as a native call would be.
    fn inject(&mut self, nr: i64, args: &[u64; 6]) -> Result<i64, InjectError> {
        let insn = self.inj.insn;
        let regs =
            ptrace::getregs(self.pid).map_err(|e| InjectError::Ptrace("PTRACE_GETREGS", e))?;
        start_call(self.pid, regs, insn, nr, args)?;
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => break,
                Ok(WaitStatus::Stopped(_, sig)) => {
                    if self.is_nudge(sig) {
                        self.nudged = true;
                    } else {
                        self.take(sig as i32);
                    }
                    let r = ptrace::getregs(self.pid)
                        .map_err(|e| InjectError::Ptrace("PTRACE_GETREGS", e))?;
                    if r.rip == insn + 2 && RESTARTS.contains(&(r.rax as i64)) {
                        return Ok(r.rax as i64);
                    }
                    // Not yet run, or already done: go on to the trap after it.
                    ptrace::step(self.pid, None)
                        .map_err(|e| InjectError::Ptrace("PTRACE_SINGLESTEP", e))?;
                }
                Ok(WaitStatus::Exited(_, c)) => return Err(InjectError::Exited(c)),
                Ok(WaitStatus::Signaled(_, s, _)) => return Err(InjectError::Killed(s)),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(InjectError::Ptrace("waitpid", e)),
            }
        }
        let after =
            ptrace::getregs(self.pid).map_err(|e| InjectError::Ptrace("PTRACE_GETREGS", e))?;
        Ok(after.rax as i64)
    }

    /// Whether the deputy stopped by a [`nudge`] (rather than a signal for the process).
    fn is_nudge(&self, sig: Signal) -> bool {
        sig == NUDGE && sys::stop_siginfo(self.pid).is_ok_and(is_nudge_info)
    }

    /// Takes the signals queued for the stopped deputy (without delivering them) into
    /// `pending`. Two queue peeks when there are none.
    fn take_queued(&mut self) -> Result<(), InjectError> {
        let watched = self.watched;
        let queued = |shared| {
            sys::peek_siginfo(self.pid, shared).map(|q| {
                q.iter().any(|i| {
                    watched & sigfd::signal_bit(i32::from_ne_bytes([i[0], i[1], i[2], i[3]])) == 0
                })
            })
        };
        let mem = |e| InjectError::Mem(0, e);
        if !(queued(false).map_err(mem)? || queued(true).map_err(mem)?) {
            return Ok(());
        }
        // Blocked while they are taken, so that none is delivered on the way in.
        sys::set_sigmask(self.pid, u64::MAX).map_err(mem)?;
        let set = self.inj.put(0, &(!watched).to_ne_bytes())?;
        let zero = self.inj.put(16, &[0u8; 16])?;
        let info = self.inj.put(64, &[0u8; 128])?;
        for _ in 0..256 {
            let r = self
                .inj
                .raw(libc::SYS_rt_sigtimedwait, &[set, info, zero, 8])?;
            if r <= 0 {
                break;
            }
            let raw = self.inj.read(info, 128)?;
            if !is_nudge_info(sys::siginfo_sender(&raw)) {
                self.pending.push(r as i32);
            }
        }
        sys::set_sigmask(self.pid, watched).map_err(mem)
    }

    /// Executes a forwarded call.
    pub fn call(&mut self, call: &Call) -> Result<Outcome, InjectError> {
        if let Err(why) = call.check() {
            return Ok(Outcome::Refused(why));
        }
        match self.call_inner(call) {
            Err(e) => match gone_of(&e) {
                Some(g) => Ok(Outcome::Gone(g)),
                None => Err(e),
            },
            ok => ok,
        }
    }

    fn call_inner(&mut self, call: &Call) -> Result<Outcome, InjectError> {
        self.unpark()?;
        self.nudged = false;
        let need = call.scratch_len();
        if need + PAGE_SIZE > self.region_len {
            self.map_region(need, None)?;
        }
        let base = self.inj.scratch;
        let args = call
            .place(base, &mut Mem(&self.inj))
            .map_err(|e| InjectError::Mem(base, e))?;
        // The terminal checks the caller's mask for SIGTTIN and SIGTTOU: the guest's.
        // They are the only signals a forwarded call may block at home.
        let quiet = call.tty_quiet & crate::syscalls::TTY_STOP_SIGNALS;
        let pid = self.pid;
        let mask = |m| sys::set_sigmask(pid, m).map_err(|e| InjectError::Mem(0, e));
        if quiet & !self.watched != 0 {
            mask(quiet | self.watched)?;
        }
        let ret = self.inject(call.nr as i64, &args);
        if quiet & !self.watched != 0 {
            mask(self.watched)?;
        }
        let ret = ret?;
        if may_change_signalfds(call.nr as i64, ret, self.watched) {
            let now = sigfd::watched_signals(pid.as_raw());
            if now != self.watched {
                self.watched = now;
                mask(now)?;
            }
        }
        let nudged = std::mem::take(&mut self.nudged);
        if nudged && RESTARTS.contains(&ret) && self.pending.is_empty() {
            return Ok(Outcome::Interrupted);
        }
        let outs = call
            .collect(ret, &args, &mut Mem(&self.inj))
            .map_err(|e| InjectError::Mem(base, e))?;
        // A signal the call itself queued (kill or tgkill of the process's own pid, a
        // killpg of its own group) is still pending: the trap after the call is reported
        // before it. Natively it is delivered before the call returns, so it goes with
        // the reply rather than after it.
        self.take_queued()?;
        Ok(Outcome::Done(
            Reply { ret, outs },
            std::mem::take(&mut self.pending),
        ))
    }

    /// Drops the home copy of the process's memory: every private mapping it had when it
    /// left (`MADV_DONTNEED`), once the remote node holds all of it. The home process
    /// runs calls only in the deputy's own area, and coming home rebuilds its memory from
    /// the remote, so nothing reads the old copy again. Returns how many resident bytes
    /// that freed. A mapping the kernel will not drop (locked memory) stays, and so do
    /// the pages the process shares with another (copy-on-write with a child it forked
    /// before it left): dropping them frees nothing, and [`DeputyCtl::come_home`] keeps
    /// the sharing of those still unchanged.
    pub fn release_memory(&mut self) -> Result<u64, InjectError> {
        let pid = self.pid.as_raw();
        let resident = || {
            procfs::process::Process::new(pid)
                .and_then(|p| p.statm())
                .map_or(0, |s| s.resident * PAGE_SIZE)
        };
        let before = resident();
        self.unpark()?;
        let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap")).ok();
        for (start, end) in std::mem::take(&mut self.releasable) {
            let mut drop = RangeMap::new();
            drop.insert(start, end);
            let shared = pagemap
                .as_ref()
                .and_then(|pm| shared_pages(pm, start, end).ok())
                .unwrap_or_default();
            for r in shared {
                drop.remove(r.addr, r.end());
            }
            let advice = libc::MADV_DONTNEED as u64;
            for p in drop.iter() {
                self.inject(libc::SYS_madvise, &[p.start, p.len(), advice, 0, 0, 0])?;
            }
        }
        self.park()?;
        Ok(before.saturating_sub(resident()))
    }

    /// Ends the home process with `exit_group(code)`, as the remote one did.
    pub fn exit(&mut self, code: i32) -> Ended {
        if self.unpark().is_err() {
            return self.reap();
        }
        match self.inject(libc::SYS_exit_group, &[code as u64, 0, 0, 0, 0, 0]) {
            Err(e) => gone_of(&e).unwrap_or_else(|| self.reap()),
            Ok(_) => self.reap(),
        }
    }

    /// Ends the home process by signal `sig` (default action), as the remote one died.
    pub fn die(&mut self, sig: i32) -> Ended {
        let r = (|| -> Result<(), InjectError> {
            self.unpark()?;
            let dfl = self.inj.put(0, &[0u8; 32])?;
            self.inj
                .raw(libc::SYS_rt_sigaction, &[sig as u64, dfl, 0, 8])?;
            sys::set_sigmask(self.pid, 0).map_err(|e| InjectError::Mem(0, e))?;
            let pid = self.pid.as_raw() as u64;
            self.inj
                .raw(libc::SYS_tgkill, &[pid, pid, sig as u64])
                .map(|_| ())
        })();
        match r {
            // The signal stopped it on the way out of tgkill: let it act now.
            Err(InjectError::Signal { signal, .. }) => {
                let _ = ptrace::cont(self.pid, Some(signal));
                self.reap_passing(sig)
            }
            Err(e) => gone_of(&e).unwrap_or_else(|| self.kill()),
            // The step trap came first: the signal is pending. Wait in pause() for it.
            Ok(()) => {
                self.parked = false;
                if self.park().is_err() {
                    return self.kill();
                }
                self.reap_passing(sig)
            }
        }
    }

    /// Waits for the end, letting signal `sig` act when it stops the process.
    fn reap_passing(&mut self, sig: i32) -> Ended {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => return Ended::Exited(c),
                Ok(WaitStatus::Signaled(_, s, core)) => {
                    return Ended::Killed {
                        signal: s as i32,
                        core,
                    }
                }
                Ok(WaitStatus::Stopped(_, s)) => {
                    let pass = (s as i32 == sig).then_some(s);
                    let _ = ptrace::cont(self.pid, pass);
                }
                Ok(WaitStatus::StillAlive) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(WaitStatus::StillAlive) => return self.kill(),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Ended::killed(sig),
            }
        }
    }

    /// Kills the home process (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) -> Ended {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        self.reap()
    }

    fn reap(&mut self) -> Ended {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(_, c)) => return Ended::Exited(c),
                Ok(WaitStatus::Signaled(_, s, core)) => {
                    return Ended::Killed {
                        signal: s as i32,
                        core,
                    }
                }
                Ok(WaitStatus::Stopped(..)) | Ok(WaitStatus::PtraceEvent(..)) => {
                    let _ = ptrace::cont(self.pid, None);
                }
                Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
                // Reaped by its parent already.
                Err(_) => return Ended::killed(libc::SIGKILL),
            }
        }
    }

    /// Brings the process home: the home process becomes `image` (captured at the remote,
    /// pages read from `source`) and runs on natively, no longer traced.
    ///
    /// `late` are signals for the process that did not reach the guest before it was
    /// captured (they come back from the remote end); they, and any the deputy took
    /// meanwhile, are queued to the home process, which handles them once it runs.
    pub fn come_home(
        mut self,
        image: &ProcessImage,
        source: Box<dyn PageSource>,
        late: &std::sync::Mutex<Vec<i32>>,
    ) -> Result<(), RestoreError> {
        self.unpark().map_err(|source| RestoreError::Step {
            step: "stop the deputy".into(),
            source,
        })?;
        // The deputy's area must lie outside the returning layout.
        let clash = image
            .vmas
            .iter()
            .any(|v| v.start < self.region + self.region_len && self.region < v.end);
        if clash || self.region_len < 16 * PAGE_SIZE {
            let mut occ: Vec<(u64, u64)> = image.vmas.iter().map(|v| (v.start, v.end)).collect();
            if let Ok(maps) =
                procfs::process::Process::new(self.pid.as_raw()).and_then(|p| p.maps())
            {
                occ.extend(maps.iter().map(|m| m.address));
            }
            let len = self.region_len.max(1 << 20);
            let at = find_gap(&occ, len, 0x1000_0000, 1 << 20).ok_or_else(|| {
                RestoreError::Incompatible("no room for the deputy's area at home".into())
            })?;
            self.map_region(len - PAGE_SIZE, Some(at))
                .map_err(|source| RestoreError::Step {
                    step: "move the deputy's area".into(),
                    source,
                })?;
        }
        let foreign = foreign_files(image, source.reads_any_address())?;
        let area = (self.region, self.region_len);
        restore_in_place(self.pid, area, image, source, &foreign)?;
        let mut signals = std::mem::take(&mut self.pending);
        if let Ok(mut l) = late.lock() {
            signals.append(&mut l);
        }
        for sig in signals {
            if let Ok(s) = Signal::try_from(sig) {
                let _ = nix::sys::signal::kill(self.pid, s);
            }
        }
        ptrace::detach(self.pid, None).map_err(|e| RestoreError::Step {
            step: "detach".into(),
            source: InjectError::Ptrace("PTRACE_DETACH", e),
        })
    }
}

/// Whether call `nr`, which returned `ret`, may have made, closed or replaced a signalfd
/// of the process (`watched` are the signals its signalfds watched before).
fn may_change_signalfds(nr: i64, ret: i64, watched: u64) -> bool {
    match nr {
        libc::SYS_signalfd | libc::SYS_signalfd4 => ret >= 0,
        libc::SYS_close | libc::SYS_close_range | libc::SYS_dup2 | libc::SYS_dup3 => watched != 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{may_change_signalfds, outside};

    #[test]
    fn calls_that_may_change_signalfds() {
        assert!(may_change_signalfds(libc::SYS_signalfd4, 3, 0));
        assert!(!may_change_signalfds(libc::SYS_signalfd4, -22, 0));
        assert!(!may_change_signalfds(libc::SYS_close, 0, 0));
        assert!(may_change_signalfds(libc::SYS_close, 0, 1));
        assert!(!may_change_signalfds(libc::SYS_read, 8, 1));
    }

    #[test]
    fn only_the_kept_range_is_cut_out() {
        let ranges = [(0x1000, 0x3000), (0x5000, 0x9000), (0xa000, 0xb000)];
        // Within one range: it is split around the kept pages.
        assert_eq!(
            outside(ranges.into_iter(), (0x6000, 0x7000)),
            [
                (0x1000, 0x3000),
                (0x5000, 0x6000),
                (0x7000, 0x9000),
                (0xa000, 0xb000)
            ]
        );
        // Over a whole range and the ends of two others.
        assert_eq!(
            outside(ranges.into_iter(), (0x2000, 0xa800)),
            [(0x1000, 0x2000), (0xa800, 0xb000)]
        );
        // Nothing to keep (no layout known).
        assert_eq!(outside(ranges.into_iter(), (0, 0)), ranges);
    }
}
