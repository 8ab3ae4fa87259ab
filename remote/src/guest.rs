//! The remote end of a migrated process: the guest, restored as an unprivileged user under
//! a seccomp filter, and what its supervisor needs — the trapped calls, the guest's memory
//! to read their arguments and write their results, its end, and its capture when it goes
//! home.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::capture::{capture_with, Frozen, Options};
use crate::error::{CaptureError, InjectError, RestoreError};
use crate::image::{Backing, PageRun, ProcessImage, Vma, PAGE_SIZE};
use crate::inject::Injector;
use crate::lazy::PagerStats;
use crate::pages::{PageSource, ProcessMemory};
use crate::restore::{restore_confined_here, Paging, Restored};
use crate::seccomp;
use crate::sys;
use crate::syscalls::{GuestMem, Reply};

/// A call the guest made that the filter did not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trapped {
    /// Cookie for the answer.
    pub id: u64,
    /// Call number.
    pub nr: u64,
    /// Arguments.
    pub args: [u64; 6],
    /// The entry it came through (`seccomp_data.arch`).
    pub arch: u32,
}

impl Trapped {
    /// What the call is, when it is not a plain x86-64 call: its number and arguments
    /// then mean something else, and only home can make it as it was always made.
    pub fn foreign_abi(&self) -> Option<&'static str> {
        if self.arch != crate::seccomp::AUDIT_ARCH_X86_64 {
            Some("a 32-bit system call (int $0x80)")
        } else if self.nr & u64::from(crate::seccomp::X32_BIT) != 0 {
            Some("an x32 system call")
        } else {
            None
        }
    }
}

pub use crate::ended::Ended;

/// A restored guest and its seccomp listener.
pub struct Guest {
    restored: Restored,
    listener: OwnedFd,
    pidfd: OwnedFd,
    /// Its memory, for the arguments and results of calls. A page it has not touched here
    /// yet may still be at home: the reads and writes wait for the pager to bring it.
    mem: ProcessMemory,
    /// The file mappings it left home with whose files this node lacks (or has with
    /// other contents): anonymous memory here, file mappings again once it leaves.
    stand_ins: Vec<Vma>,
    /// The terminal stop signal last delivered as SIGSTOP (see [`Guest::signal`]).
    stopped_by: Option<i32>,
    /// When a signal was last delivered (it may stop the guest any moment now).
    signalled: Option<std::time::Instant>,
    /// Its memory cgroup's file of OOM-kill counts, and the count as it started.
    oom: Option<(std::path::PathBuf, u64)>,
    /// Copies of the home files it mapped here (see [`crate::homefile`]).
    home_files: crate::homefile::HomeFiles,
}

impl GuestMem for ProcessMemory {
    fn read(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.read_at(addr, &mut b)?;
        Ok(b)
    }
}

impl Guest {
    /// Restores `image` as a guest running as `uid`:`gid`. The calling thread must be the
    /// one that supervises it: the guest is killed when that thread ends.
    pub fn start(
        image: &ProcessImage,
        source: Box<dyn PageSource>,
        paging: Paging,
        uid: u32,
        gid: u32,
    ) -> Result<Guest, RestoreError> {
        let (restored, listener, foreign) =
            restore_confined_here(image, source, paging, (uid, gid), confine)?;
        let stand_ins = image
            .vmas
            .iter()
            .filter(|v| matches!(&v.backing, Backing::File(id) if foreign.contains(&id.path)))
            .cloned()
            .collect();
        let pid = Pid::from_raw(restored.pid());
        let pidfd = sys::pidfd_open(pid).map_err(|source| RestoreError::Sys {
            what: "pidfd_open of the guest".into(),
            source,
        })?;
        let mem = ProcessMemory::open_rw(pid.as_raw()).map_err(|source| RestoreError::Sys {
            what: "opening the guest's memory".into(),
            source,
        })?;
        Ok(Guest {
            restored,
            listener,
            pidfd,
            mem,
            stand_ins,
            stopped_by: None,
            signalled: None,
            oom: oom_counter(pid.as_raw()).and_then(|f| Some((f.clone(), oom_kills(&f)?))),
            home_files: Default::default(),
        })
    }

    /// How long each step of its restore took (the process stopped throughout).
    pub fn steps(&self) -> &[(&'static str, std::time::Duration)] {
        self.restored.steps()
    }

    /// The guest's pid at this node.
    pub fn pid(&self) -> i32 {
        self.restored.pid()
    }

    /// The CPU time it has used (`/proc/PID/schedstat`: time on a CPU, in nanoseconds;
    /// a guest has one thread), or None once it is gone.
    pub fn cpu_time(&self) -> Option<std::time::Duration> {
        let s = std::fs::read_to_string(format!("/proc/{}/schedstat", self.pid())).ok()?;
        let ns = s.split_whitespace().next()?.parse().ok()?;
        Some(std::time::Duration::from_nanos(ns))
    }

    /// Readable when a trapped call waits.
    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Readable when the guest has ended.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The next trapped call, or None if there is none right now (or its process was
    /// interrupted before it could be taken).
    pub fn next(&self) -> Option<Trapped> {
        take_trapped(self.listener.as_fd())
    }

    /// What to do with a trapped call (reads the bytes it passes).
    pub fn plan(&self, t: &Trapped) -> crate::syscalls::Action {
        if let Some(what) = t.foreign_abi() {
            return crate::syscalls::Action::Home(what.into());
        }
        crate::syscalls::plan(t.nr, t.args, &self.mem)
    }

    /// Of SIGTTIN and SIGTTOU, those the guest blocks or ignores now (a signal mask).
    pub fn tty_quiet(&self) -> u64 {
        self.status().map(|s| tty_quiet(&s)).unwrap_or(0)
    }

    /// The text of its `/proc/PID/status` (signal masks and dispositions).
    fn status(&self) -> std::io::Result<String> {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
    }

    /// Answers a forwarded call: writes its output bytes into the guest, then its result.
    pub fn answer(&self, id: u64, reply: &Reply) -> std::io::Result<()> {
        for (addr, bytes) in &reply.outs {
            if let Err(e) = self.mem.write_at(*addr, bytes) {
                // Where it cannot be written, the call fails as natively (never leave
                // the guest waiting).
                self.send(id, 0, -libc::EFAULT)?;
                return Err(e);
            }
        }
        if reply.ret < 0 && reply.ret >= -4095 {
            self.send(id, 0, reply.ret as i32)
        } else {
            self.send(id, reply.ret, 0)
        }
    }

    /// Fails a trapped call with `-errno` (or a kernel restart code).
    pub fn fail(&self, id: u64, errno: i32) -> std::io::Result<()> {
        self.send(id, 0, -errno.abs())
    }

    /// Lets a trapped call run in this kernel.
    pub fn allow(&self, id: u64) -> std::io::Result<()> {
        sys::notif_send(
            self.listener.as_raw_fd(),
            id,
            0,
            0,
            sys::NOTIF_FLAG_CONTINUE,
        )
    }

    /// The copies of home files it mapped here.
    pub(crate) fn home_files(&mut self) -> &mut crate::homefile::HomeFiles {
        &mut self.home_files
    }

    /// Lets trapped call `id` (an `mmap` of its descriptor `fd`) run in this kernel on
    /// our descriptor `copy` instead, put into the guest as its descriptor `fd`. Its
    /// descriptors are all at home, so the number is free here.
    pub(crate) fn allow_on(
        &self,
        id: u64,
        fd: u32,
        copy: std::os::fd::RawFd,
    ) -> std::io::Result<()> {
        sys::notif_addfd(self.listener.as_raw_fd(), id, copy, fd)?;
        self.allow(id)
    }

    fn send(&self, id: u64, val: i64, error: i32) -> std::io::Result<()> {
        match sys::notif_send(self.listener.as_raw_fd(), id, val, error, 0) {
            // Its process was killed meanwhile: nothing waits for the answer.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    }

    /// Whether a signal queued for the guest will act on it when the call it waits in
    /// returns: one that is not blocked and whose action is not to ignore it (a handler,
    /// stop, or death). The kernel does not queue signals a process ignores, except
    /// those whose default is to ignore them (SIGCHLD, SIGURG, SIGWINCH, SIGCONT), which
    /// interrupt nothing unless caught.
    pub fn signal_will_act(&self) -> bool {
        self.status().map(|s| signal_acts(&s)).unwrap_or(false)
    }

    /// Writes the output bytes of `reply` into the guest (a call's updated in-out
    /// arguments when it is restarted rather than answered).
    pub fn write_outs(&self, reply: &Reply) -> std::io::Result<()> {
        for (addr, bytes) in &reply.outs {
            self.mem.write_at(*addr, bytes)?;
        }
        Ok(())
    }

    /// Delivers signal `sig` to the guest.
    ///
    /// A terminal stop signal (SIGTSTP, SIGTTIN, SIGTTOU) that would stop it (its default
    /// action, not blocked) is delivered as SIGSTOP, which stops it the same way: here the
    /// guest's process group has no parent in its session, and the kernel would discard
    /// the signal. [`Guest::job_change`] reports the stop by the signal that was sent.
    pub fn signal(&mut self, sig: i32) -> std::io::Result<()> {
        let mut sig = sig;
        if [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&sig) {
            let status = self.status()?;
            if stops_by_default(&status, sig) {
                self.stopped_by = Some(sig);
                sig = libc::SIGSTOP;
            }
        }
        let s = Signal::try_from(sig).map_err(std::io::Error::from)?;
        self.signalled = Some(std::time::Instant::now());
        kill(Pid::from_raw(self.pid()), s).map_err(std::io::Error::from)
    }

    /// Whether a signal was delivered within the last second: a stop it causes is
    /// looked for often (see [`Guest::job_change`]).
    pub fn recently_signalled(&self) -> bool {
        self.signalled
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
    }

    /// Whether the guest stopped or continued since last asked (`waitid` with WSTOPPED
    /// and WCONTINUED): the signal that stopped it, or 0 for continued. Does not wait.
    pub fn job_change(&mut self) -> Option<i32> {
        let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WCONTINUED | WaitPidFlag::WNOHANG;
        match waitid(Id::PIDFd(self.pidfd.as_fd()), flags) {
            Ok(WaitStatus::Stopped(_, s)) => {
                let by = match self.stopped_by.take() {
                    Some(tty) if s == Signal::SIGSTOP => tty,
                    _ => s as i32,
                };
                Some(by)
            }
            Ok(WaitStatus::Continued(_)) => Some(0),
            _ => None,
        }
    }

    /// How the guest ended, if it has.
    pub fn ended(&self) -> Option<Ended> {
        let fd = self.pidfd.as_fd();
        match waitid(Id::PIDFd(fd), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
            Ok(WaitStatus::Exited(_, c)) => Some(Ended::Exited(c)),
            Ok(WaitStatus::Signaled(_, s, core)) => Some(Ended::Killed {
                signal: s as i32,
                core,
            }),
            _ => None,
        }
    }

    /// Why a guest that died by SIGKILL was killed, when this node's kernel says: its
    /// memory cgroup's out-of-memory killer acted since it started.
    pub fn killed_why(&self) -> Option<String> {
        let (file, before) = self.oom.as_ref()?;
        let now = oom_kills(file)?;
        let cgroup = file
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        (now > *before).then(|| {
            format!("killed by the out-of-memory killer of its memory cgroup ({cgroup}), which had reached its limit")
        })
    }

    /// Kills the guest and waits until it is gone.
    pub fn kill(&self) {
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = waitid(Id::PIDFd(self.pidfd.as_fd()), WaitPidFlag::WEXITED);
    }

    /// Whether paging is over: all its memory is here, or what could not come never will
    /// (see [`Restored::paging_done`]). Does not wait.
    pub fn paging_done(&self) -> bool {
        self.restored.paging_done()
    }

    /// Waits until all its memory has arrived (lazy paging done).
    pub fn finish_paging(&mut self) -> Result<Option<PagerStats>, om_ckpt::PageError> {
        self.restored.finish_paging()
    }

    /// Captures the guest to send it home. A call it is waiting on (`in_flight`, or any
    /// trapped meanwhile) is answered with "restart", so that it runs again, natively,
    /// once the process is home.
    pub fn capture(mut self, in_flight: Option<u64>) -> Result<(Frozen, GuestEnd), CaptureError> {
        let _ = self.finish_paging();
        let listener = self
            .listener
            .try_clone()
            .map_err(|source| CaptureError::Proc {
                pid: self.pid(),
                what: "listener".into(),
                source,
            })?;
        let mut first = in_flight;
        // -ERESTARTNOINTR: with the stop pending, the call restarts.
        let hook = Box::new(move || {
            let fd = listener.as_raw_fd();
            if let Some(id) = first.take() {
                let _ = sys::notif_send(fd, id, 0, -ERESTARTNOINTR, 0);
            }
            if let Some(t) = take_trapped(listener.as_fd()) {
                let _ = sys::notif_send(fd, t.id, 0, -ERESTARTNOINTR, 0);
            }
        });
        let mut frozen = capture_with(
            self.pid(),
            Options {
                keep_files: true,
                while_stopping: Some(hook),
                filtered: true,
                keep_queued: Some(crate::sigfd::watched_signals),
                anon_index_later: false,
            },
        )?;
        give_files_back(frozen.image_mut(), &self.stand_ins);
        self.home_files.give_back(frozen.image_mut());
        Ok((frozen, GuestEnd { _guest: self }))
    }
}

/// Makes the anonymous stand-ins of file mappings in a captured guest's `image` file
/// mappings again, as they were when the process arrived (`stand_ins`), so that the next
/// node maps its own copy of the file where it has the same one, and `/proc/PID/maps`
/// at home shows the file again. The kernel may have merged a stand-in with the
/// anonymous memory beside it (a library's data with the heap after it): such areas,
/// and the page runs across them, are split at the stand-ins' bounds. Their pages are
/// all in the image (every page of a stand-in was filled here), so the next node has
/// their exact bytes whatever it maps.
pub(crate) fn give_files_back(image: &mut ProcessImage, stand_ins: &[Vma]) {
    if stand_ins.is_empty() {
        return;
    }
    let mut cuts: Vec<u64> = stand_ins.iter().flat_map(|s| [s.start, s.end]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut vmas = Vec::with_capacity(image.vmas.len());
    for v in image.vmas.drain(..) {
        if v.backing != Backing::Anon {
            vmas.push(v);
            continue;
        }
        let mut at = v.start;
        for &c in cuts
            .iter()
            .filter(|&&c| v.start < c && c < v.end)
            .chain([&v.end])
        {
            let mut piece = v.clone();
            piece.start = at;
            piece.end = c;
            if let Some(s) = stand_ins.iter().find(|s| s.start <= at && c <= s.end) {
                piece.backing = s.backing.clone();
                piece.name = s.name.clone();
                piece.offset = s.offset + (at - s.start);
                piece.shared = false;
                piece.grows_down = false;
            }
            vmas.push(piece);
            at = c;
        }
    }
    image.vmas = vmas;
    let mut runs = Vec::with_capacity(image.pages.len());
    for r in image.pages.drain(..) {
        let mut at = r.addr;
        for &c in cuts
            .iter()
            .filter(|&&c| r.addr < c && c < r.end())
            .chain([&r.end()])
        {
            runs.push(PageRun {
                addr: at,
                pages: (c - at) / PAGE_SIZE,
            });
            at = c;
        }
    }
    image.pages = runs;
}

/// The file counting OOM kills in the memory cgroup of process `pid`: `memory.events`
/// (cgroup v2) or `memory.oom_control` (v1), both with an `oom_kill N` line.
fn oom_counter(pid: i32) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let file = if controllers.split(',').any(|c| c == "memory") {
            std::path::Path::new("/sys/fs/cgroup/memory")
                .join(path)
                .join("memory.oom_control")
        } else if controllers.is_empty() {
            std::path::Path::new("/sys/fs/cgroup")
                .join(path)
                .join("memory.events")
        } else {
            continue;
        };
        if file.exists() {
            return Some(file);
        }
    }
    None
}

/// The `oom_kill` count in `file` (see [`oom_counter`]).
fn oom_kills(file: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// Signals whose default action is to ignore them.
const DEFAULT_IGNORED: [i32; 4] = [libc::SIGCHLD, libc::SIGURG, libc::SIGWINCH, libc::SIGCONT];

/// From the text of `/proc/PID/status`: whether a pending signal will act (see
/// [`Guest::signal_will_act`]).
pub(crate) fn signal_acts(status: &str) -> bool {
    let field = |name: &str| status_mask(status, name);
    let bit = |sig: i32| 1u64 << (sig - 1);
    let pending = (field("SigPnd:") | field("ShdPnd:")) & !field("SigBlk:");
    let quiet = DEFAULT_IGNORED.iter().fold(0, |m, &s| m | bit(s)) & !field("SigCgt:");
    pending & !quiet & !field("SigIgn:") != 0
}

/// From the text of `/proc/PID/status`: whether signal `sig` would stop the process
/// (neither caught, ignored nor blocked).
pub(crate) fn stops_by_default(status: &str, sig: i32) -> bool {
    let bit = 1u64 << (sig - 1);
    ["SigBlk:", "SigIgn:", "SigCgt:"]
        .iter()
        .all(|name| status_mask(status, name) & bit == 0)
}

/// From the text of `/proc/PID/status`: of SIGTTIN and SIGTTOU, those blocked or
/// ignored (as a signal mask).
pub(crate) fn tty_quiet(status: &str) -> u64 {
    (status_mask(status, "SigBlk:") | status_mask(status, "SigIgn:"))
        & crate::syscalls::TTY_STOP_SIGNALS
}

fn status_mask(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// The kernel's "restart this call, whatever the handlers say" code.
const ERESTARTNOINTR: i32 = 513;

/// The next trapped call waiting on `listener`, without blocking.
fn take_trapped(listener: BorrowedFd<'_>) -> Option<Trapped> {
    let mut pfd = [PollFd::new(listener, PollFlags::POLLIN)];
    if !matches!(poll(&mut pfd, PollTimeout::ZERO), Ok(n) if n > 0) {
        return None;
    }
    sys::notif_recv(listener.as_raw_fd()).ok().map(|n| Trapped {
        id: n.id,
        nr: n.nr,
        args: n.args,
        arch: n.arch,
    })
}

/// What remains of a guest that was captured: dropping it (after the frozen capture was
/// killed) releases the listener and pidfd.
pub struct GuestEnd {
    _guest: Guest,
}

/// Installs the guest's seccomp filter in `stub` (being restored: the last step before
/// its registers) and returns its listener; the guest dies with the restoring thread.
fn confine(inj: &mut Injector, stub: Pid) -> Result<OwnedFd, RestoreError> {
    const PR_SET_NO_NEW_PRIVS: u64 = 38;
    const PR_SET_PDEATHSIG: u64 = 1;
    // After the identity change, which would clear it: the guest dies with the thread
    // that restored it (its supervisor), so it never outlives omd.
    inj.call(
        "prctl",
        libc::SYS_prctl,
        &[PR_SET_PDEATHSIG, libc::SIGKILL as u64, 0, 0, 0],
    )
    .map_err(step("set the parent-death signal"))?;
    inj.call("prctl", libc::SYS_prctl, &[PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0])
        .map_err(step("set no_new_privs"))?;
    let prog = seccomp::guest_filter();
    let code = inj.put(256, &prog).map_err(step("seccomp filter"))?;
    let mut fprog = Vec::new();
    fprog.extend_from_slice(&((prog.len() / 8) as u64).to_ne_bytes());
    fprog.extend_from_slice(&code.to_ne_bytes());
    let fprog_at = inj.put(0, &fprog).map_err(step("seccomp program"))?;
    let fd = inj
        .call(
            "seccomp",
            libc::SYS_seccomp,
            &[
                seccomp::SET_MODE_FILTER,
                seccomp::FLAG_NEW_LISTENER | seccomp::FLAG_WAIT_KILLABLE_RECV,
                fprog_at,
            ],
        )
        .map_err(step("install the seccomp filter"))?;
    let pidfd = sys::pidfd_open(stub).map_err(sys_err("pidfd_open"))?;
    let listener = sys::pidfd_getfd(&pidfd, fd as i32).map_err(sys_err("pidfd_getfd"))?;
    // Each trapped call and its answer hand over the CPU directly (Linux 6.6): a
    // forwarded call then costs the link's round trip, not two cross-CPU wake-ups as
    // well. An older kernel refuses the flag and wakes as it always did.
    let _ = sys::notif_sync_wake_up(listener.as_raw_fd());
    // close() is no longer allowed for the guest: let this one through by hand.
    let r = inj
        .raw_with(libc::SYS_close, &[fd], || {
            let n = sys::notif_recv(listener.as_raw_fd())?;
            sys::notif_send(listener.as_raw_fd(), n.id, 0, 0, sys::NOTIF_FLAG_CONTINUE)
        })
        .map_err(step("close the listener in the guest"))?;
    if r != 0 {
        return Err(step("close the listener in the guest")(
            InjectError::Failed {
                call: "close",
                errno: nix::errno::Errno::from_raw(-r as i32),
            },
        ));
    }
    Ok(listener)
}

fn step(name: &str) -> impl FnOnce(InjectError) -> RestoreError + '_ {
    move |source| RestoreError::Step {
        step: name.into(),
        source,
    }
}

fn sys_err(what: &str) -> impl FnOnce(std::io::Error) -> RestoreError + '_ {
    move |source| RestoreError::Sys {
        what: what.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::{give_files_back, signal_acts};
    use crate::image::{Backing, FileId, PageRun, ProcessImage, Vma};

    fn vma(start: u64, end: u64, prot: i32, backing: Backing, name: &str) -> Vma {
        Vma {
            start,
            end,
            prot,
            shared: false,
            offset: 0,
            name: name.into(),
            backing,
            grows_down: false,
            advice: vec![],
            locked: false,
        }
    }

    #[test]
    fn stand_ins_become_file_mappings_again_even_when_merged() {
        let lib = Backing::File(FileId {
            path: "/tmp/u/libx.so".into(),
            size: 0x5000,
            hash: "h".into(),
        });
        // At arrival: code r-x at 0x10000, data rw- at 0x13000 (file offset 0x3000).
        let mut data = vma(0x13000, 0x15000, 3, lib.clone(), "/tmp/u/libx.so");
        data.offset = 0x3000;
        let mut relro = vma(0x12000, 0x13000, 1, lib.clone(), "/tmp/u/libx.so");
        relro.offset = 0x2000;
        let stand_ins = vec![
            vma(0x10000, 0x11000, 1, lib.clone(), "/tmp/u/libx.so"),
            vma(0x11000, 0x12000, 1, lib.clone(), "/tmp/u/libx.so"),
            relro,
            data,
        ];
        // Captured here: the two read-only areas merged, then the third, then the data
        // merged with the anonymous bss after it.
        let json = r#"{"version":1,"pid":1,"comm":"x","exe":"/x","cwd":"/","regs":{"r15":0,"r14":0,"r13":0,"r12":0,"rbp":0,"rbx":0,"r11":0,"r10":0,"r9":0,"r8":0,"rax":0,"rcx":0,"rdx":0,"rsi":0,"rdi":0,"orig_rax":0,"rip":0,"cs":0,"eflags":0,"rsp":0,"ss":0,"fs_base":0,"gs_base":0,"ds":0,"es":0,"fs":0,"gs":0},"xstate":[],"xcr0":0,"vmas":[],"pages":[],"sigmask":0,"pending":[],"sigactions":[],"altstack":{"sp":0,"flags":0,"size":0},"itimers":[],"robust_list":[0,0],"rseq":null,"clear_child_tid":0,"rlimits":[],"umask":0,"personality":0,"auxv":[],"mm":{"start_code":0,"end_code":0,"start_data":0,"end_data":0,"start_brk":0,"brk":0,"start_stack":0,"arg_start":0,"arg_end":0,"env_start":0,"env_end":0},"files":[],"creds":{"uid":[0,0,0],"gid":[0,0,0],"groups":[]}}"#;
        let mut image: ProcessImage = serde_json::from_str(json).unwrap();
        image.vmas = vec![
            vma(0x10000, 0x12000, 1, Backing::Anon, ""),
            vma(0x12000, 0x13000, 1, Backing::Anon, ""),
            vma(0x13000, 0x18000, 3, Backing::Anon, ""),
            vma(0x20000, 0x21000, 3, Backing::Anon, "[heap]"),
        ];
        image.pages = vec![
            PageRun {
                addr: 0x10000,
                pages: 3,
            },
            PageRun {
                addr: 0x14000,
                pages: 3,
            },
        ];
        give_files_back(&mut image, &stand_ins);
        let got: Vec<(u64, u64, bool, u64)> = image
            .vmas
            .iter()
            .map(|v| (v.start, v.end, v.backing == lib, v.offset))
            .collect();
        assert_eq!(
            got,
            [
                (0x10000, 0x11000, true, 0),
                (0x11000, 0x12000, true, 0),
                (0x12000, 0x13000, true, 0x2000),
                (0x13000, 0x15000, true, 0x3000),
                (0x15000, 0x18000, false, 0),
                (0x20000, 0x21000, false, 0),
            ]
        );
        assert_eq!(image.vmas[3].name, "/tmp/u/libx.so");
        assert_eq!(image.vmas[4].name, "");
        assert_eq!(
            image.pages,
            [
                PageRun {
                    addr: 0x10000,
                    pages: 1
                },
                PageRun {
                    addr: 0x11000,
                    pages: 1
                },
                PageRun {
                    addr: 0x12000,
                    pages: 1
                },
                PageRun {
                    addr: 0x14000,
                    pages: 1
                },
                PageRun {
                    addr: 0x15000,
                    pages: 2
                },
            ]
        );
    }

    fn status(pnd: u64, shd: u64, blk: u64, ign: u64, cgt: u64) -> String {
        format!(
            "Name:\tx\nSigQ:\t0/1\nSigPnd:\t{pnd:016x}\nShdPnd:\t{shd:016x}\nSigBlk:\t{blk:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n"
        )
    }
    const fn bit(sig: i32) -> u64 {
        1 << (sig - 1)
    }

    #[test]
    fn which_pending_signals_act() {
        // Nothing pending.
        assert!(!signal_acts(&status(0, 0, 0, 0, 0)));
        // SIGINT with its default action (death), in either queue.
        assert!(signal_acts(&status(bit(2), 0, 0, 0, 0)));
        assert!(signal_acts(&status(0, bit(2), 0, 0, 0)));
        // Blocked: it waits.
        assert!(!signal_acts(&status(0, bit(2), bit(2), 0, 0)));
        // SIGWINCH: ignored by default, acts only when caught.
        assert!(!signal_acts(&status(0, bit(28), 0, 0, 0)));
        assert!(signal_acts(&status(0, bit(28), 0, 0, bit(28))));
        // SIGTSTP by default stops the process: it acts.
        assert!(signal_acts(&status(0, bit(20), 0, 0, 0)));
        // Explicitly ignored.
        assert!(!signal_acts(&status(0, bit(15), 0, bit(15), 0)));
    }

    #[test]
    fn a_terminal_stop_stops_only_with_its_default_action() {
        use super::stops_by_default;
        let tstp = libc::SIGTSTP;
        assert!(stops_by_default(&status(0, 0, 0, 0, 0), tstp));
        assert!(
            !stops_by_default(&status(0, 0, bit(tstp), 0, 0), tstp),
            "blocked"
        );
        assert!(
            !stops_by_default(&status(0, 0, 0, bit(tstp), 0), tstp),
            "ignored"
        );
        assert!(
            !stops_by_default(&status(0, 0, 0, 0, bit(tstp)), tstp),
            "caught"
        );
    }

    #[test]
    fn terminal_signals_blocked_or_ignored_are_told_home() {
        use super::tty_quiet;
        let (ttin, ttou) = (bit(libc::SIGTTIN), bit(libc::SIGTTOU));
        assert_eq!(tty_quiet(&status(0, 0, 0, 0, 0)), 0);
        assert_eq!(tty_quiet(&status(0, 0, ttou | bit(2), 0, 0)), ttou);
        assert_eq!(tty_quiet(&status(0, 0, 0, ttin, ttou)), ttin);
    }
}
