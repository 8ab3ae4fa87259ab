//! The two ends of a migrated process, joined by a [`Link`]: at home the deputy executes
//! forwarded calls and catches signals ([`run_home`]); at the remote node the supervisor
//! takes the guest's trapped calls and delivers signals ([`run_remote`]). When the process
//! goes home, the remote end captures it and serves its pages over the same link.

use std::os::fd::BorrowedFd;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

use crate::deputy::{gone_of, DeputyCtl, Event, Outcome};
use crate::ended::Ended;
use crate::error::PageError;
use crate::guest::Guest;
use crate::image::ProcessImage;
use crate::pages::{read_for_peer, PageSource};
use crate::syscalls::{Action, Call, Reply};

/// Messages between the deputy (home) and the supervisor (remote).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Msg {
    /// Remote → home: execute this call (answer with [`Msg::Reply`] of the same id).
    Call {
        /// Cookie.
        id: u64,
        /// The call.
        call: Call,
    },
    /// Home → remote: a call's result, after delivering `signals` to the guest.
    Reply {
        /// Cookie of the call.
        id: u64,
        /// Result and output bytes.
        reply: Reply,
        /// Signals to deliver first.
        signals: Vec<i32>,
    },
    /// Home → remote: signals sent to the home process.
    Signals(Vec<i32>),
    /// Remote → home: the process called exit_group.
    Exit(i32),
    /// Remote → home: the process was killed by a signal.
    Died {
        /// The signal.
        signal: i32,
        /// It dumped core.
        core: bool,
    },
    /// Home → remote: send the process home.
    ComeHome,
    /// Remote → home: the process is captured and coming home; its pages follow on
    /// request.
    Coming {
        /// Its state.
        image: Box<ProcessImage>,
        /// Why (a call that needs home, or asked).
        reason: String,
    },
    /// Home → remote: send these bytes of the captured process.
    ReadPages {
        /// Address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// Remote → home: the bytes asked for (empty if they could not be read).
    Pages(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Either way: this end is finished (home: the process is home or ended; remote:
    /// nothing left).
    Done,
    /// Home → remote: the home process is gone; end the guest.
    Gone,
    /// Remote → home: the CPU time the guest has used on the remote node so far, in
    /// nanoseconds (sent every [`USAGE_EVERY`] while it runs, and as it leaves).
    Usage(u64),
    /// Remote → home: paging is over, every page is at the remote node; home may drop
    /// its copy.
    AllHere,
    /// Remote → home: the guest stopped, by this signal (SIGTSTP, SIGSTOP, ...): home
    /// stops the same way, so that its parent sees it stop.
    Stopped(i32),
    /// Remote → home: why the guest is about to be reported dead (its node's
    /// out-of-memory killer), for the home node's log.
    Why(String),
    /// Remote → home: the guest continued after a stop; if home did not continue it
    /// (a SIGCONT sent at the remote node), home continues too.
    Continued,
}

/// What the home end reports while the process is away (see [`run_home`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The CPU time the process has used at the remote node on this trip so far.
    CpuAway(Duration),
    /// The home copy of its memory was dropped, freeing this many resident bytes.
    MemoryReleased(u64),
    /// The remote end said why the process died there.
    DiedBecause(String),
    /// The remote end asked for a call the deputy may not make (a node that lies, or
    /// runs another build): it was answered EPERM, and not made.
    Refused(String),
}

/// How often the remote end reports the guest's CPU time.
pub const USAGE_EVERY: Duration = Duration::from_secs(1);

/// A message channel between the two ends.
pub trait Link: Send + Sync {
    /// Sends one message.
    fn send(&self, m: &Msg) -> std::io::Result<()>;
    /// Receives one message, waiting at most `timeout` (forever if None). An error means
    /// the other end is lost.
    fn recv(&self, timeout: Option<Duration>) -> std::io::Result<Option<Msg>>;
    /// A descriptor readable when a message waits, if the link has one (without one,
    /// the remote end checks the link every millisecond).
    fn fd(&self) -> Option<BorrowedFd<'_>>;
}

/// Requests to a running end from its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Bring the process home (asked at either end).
    ComeHome,
}

/// How the home end finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeEnd {
    /// The process ended (exited, killed, or died by a signal at the remote).
    Ended(Ended),
    /// The process is home and runs natively again.
    CameHome(String),
    /// The remote end was lost; the process was killed.
    Lost(String),
}

/// How the remote end finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteEnd {
    /// The process ended. `lost_pages` says why, if part of its memory never arrived:
    /// those pages were poisoned, so a touch of one killed it with SIGBUS.
    Ended { lost_pages: Option<String> },
    /// It went home.
    WentHome(String),
    /// Home was lost or gave up; the guest was killed.
    Lost(String),
}

const TICK: Duration = Duration::from_millis(5);

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s += &format!(": {c}");
        cause = c.source();
    }
    s
}

fn lost(e: impl std::fmt::Display) -> String {
    format!("the link to the other node failed: {e}")
}

/// What reaches the home end: a message from the remote end, or a request from its node.
enum In {
    Msg(Msg),
    Cmd(Command),
}

/// The home end's inbox: a thread reads the link and the node's requests into it, so
/// that the home end hears them even while a forwarded call blocks in the deputy, which
/// it then interrupts ([`crate::deputy::nudge`]) if they need the home end: a request to
/// come home, the process coming home from its side, or the remote end gone.
struct Inbox {
    rx: std::sync::Mutex<Receiver<std::io::Result<In>>>,
    /// Something waits that the home end must see now.
    attention: Arc<std::sync::atomic::AtomicBool>,
    /// A forwarded call runs in the deputy.
    in_call: Arc<std::sync::atomic::AtomicBool>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// How often a blocked call is nudged again while something waits (a nudge that comes
/// just before the call starts is lost).
const NUDGE_EVERY: Duration = Duration::from_millis(50);

impl Inbox {
    fn start(link: Arc<dyn Link>, commands: Receiver<Command>, deputy: i32) -> Inbox {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let (tx, rx) = std::sync::mpsc::channel();
        let attention = Arc::new(AtomicBool::new(false));
        let in_call = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, c, st) = (attention.clone(), in_call.clone(), stop.clone());
        let reader = std::thread::Builder::new()
            .name(format!("om-home-{deputy}"))
            .spawn(move || {
                let mut nudged = Instant::now() - NUDGE_EVERY;
                let mut direct = crate::direct::Direct::new(deputy);
                // Set before a command reaches the home end: from then on every call
                // goes to it (asked home, it answers none), so no call is made here
                // after the home end has asked the process home.
                let mut commanded = false;
                while !st.load(SeqCst) {
                    while let Ok(cmd) = commands.try_recv() {
                        commanded = true;
                        a.store(true, SeqCst);
                        let _ = tx.send(Ok(In::Cmd(cmd)));
                    }
                    match link.recv(Some(TICK)) {
                        Ok(Some(Msg::Call { id, call })) if !commanded => {
                            // A call on a home file is made here, on a copy of its
                            // descriptor (see `crate::direct`); the rest by the deputy.
                            if call.check().is_ok() {
                                if let Some(reply) = direct.call(&call) {
                                    let signals = Vec::new();
                                    if let Err(e) = link.send(&Msg::Reply { id, reply, signals }) {
                                        a.store(true, SeqCst);
                                        let _ = tx.send(Err(e));
                                        return;
                                    }
                                    continue;
                                }
                            }
                            direct.forget();
                            if tx.send(Ok(In::Msg(Msg::Call { id, call }))).is_err() {
                                return;
                            }
                        }
                        Ok(Some(m)) => {
                            direct.forget();
                            if matches!(m, Msg::Coming { .. } | Msg::Gone) {
                                a.store(true, SeqCst);
                            }
                            if tx.send(Ok(In::Msg(m))).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            a.store(true, SeqCst);
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                    if a.load(SeqCst) && c.load(SeqCst) && nudged.elapsed() >= NUDGE_EVERY {
                        nudged = Instant::now();
                        crate::deputy::nudge(deputy);
                    }
                }
            })
            .expect("a thread for the home end's inbox");
        Inbox {
            rx: std::sync::Mutex::new(rx),
            attention,
            in_call,
            stop,
            reader: Some(reader),
        }
    }

    /// The next item, waiting at most `timeout`. An error means the link is lost.
    fn recv(&self, timeout: Duration) -> std::io::Result<Option<In>> {
        let rx = self
            .rx
            .lock()
            .map_err(|_| std::io::Error::other("inbox poisoned"))?;
        match rx.recv_timeout(timeout) {
            Ok(Ok(item)) => Ok(Some(item)),
            Ok(Err(e)) => Err(e),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(std::io::Error::other("the link is closed"))
            }
        }
    }

    /// The next message of the remote end within `timeout` (requests of the node that
    /// come meanwhile are dropped: the process is on its way home).
    fn recv_msg(&self, timeout: Duration) -> std::io::Result<Option<Msg>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Some(In::Msg(m)) => return Ok(Some(m)),
                Some(In::Cmd(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    fn set_in_call(&self, on: bool) {
        self.in_call.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn seen(&self) {
        self.attention
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Pages of the process coming home, read over the link.
struct LinkPages {
    link: Arc<dyn Link>,
    inbox: Arc<Inbox>,
    /// Signals that came back from the remote end meanwhile.
    late: Arc<std::sync::Mutex<Vec<i32>>>,
}

impl PageSource for LinkPages {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), PageError> {
        let io = |e: std::io::Error| PageError::Io { addr, source: e };
        self.link
            .send(&Msg::ReadPages {
                addr,
                len: buf.len() as u64,
            })
            .map_err(io)?;
        loop {
            match self.inbox.recv_msg(Duration::from_secs(30)).map_err(io)? {
                Some(Msg::Pages(b)) if b.len() == buf.len() => {
                    buf.copy_from_slice(&b);
                    return Ok(());
                }
                Some(Msg::Pages(_)) => {
                    return Err(io(std::io::Error::other("the remote could not read them")))
                }
                Some(Msg::Signals(s)) => {
                    if let Ok(mut l) = self.late.lock() {
                        l.extend(s);
                    }
                }
                Some(_) => continue,
                None => return Err(io(std::io::Error::other("no answer within 30 s"))),
            }
        }
    }
    fn reads_any_address(&self) -> bool {
        true
    }
}

/// Runs the home end until the process ends or comes home. Runs on the deputy's tracer
/// thread (see [`crate::deputy::IntoDeputy::into_deputy`]).
///
/// `progress` hears the CPU time the process has used at the remote node (each time the
/// remote end reports it), and that the home copy of its memory was dropped (once the
/// remote end has all of it).
///
/// A forwarded call that blocks at home (a read on an empty pipe) does not keep the
/// process from coming home: a request to come home, from this node (`commands`) or from
/// the remote end, interrupts it, and it is made again wherever the process runs next,
/// as a restarted call is natively.
pub fn run_home(
    mut ctl: DeputyCtl,
    links: &Arc<dyn Link>,
    commands: Receiver<Command>,
    progress: &dyn Fn(Progress),
) -> HomeEnd {
    let link: &dyn Link = links.as_ref();
    let inbox = Arc::new(Inbox::start(links.clone(), commands, ctl.pid()));
    let mut asked_home = false;
    let late = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fail = |ctl: &mut DeputyCtl, why: String| {
        ctl.kill();
        let _ = link.send(&Msg::Gone);
        HomeEnd::Lost(why)
    };
    if let Err(e) = ctl.park() {
        return fail(&mut ctl, format!("the deputy cannot wait: {e}"));
    }
    // A call interrupted by a nudge, to make again unless the process leaves.
    let mut again: Option<(u64, Call)> = None;
    loop {
        let item = match inbox.recv(TICK) {
            Err(e) => return fail(&mut ctl, lost(e)),
            Ok(None) => match again.take() {
                // Nothing needed the home end after all: the call goes on.
                Some((id, call)) if !asked_home => Some(In::Msg(Msg::Call { id, call })),
                other => {
                    again = other;
                    None
                }
            },
            Ok(i) => i,
        };
        inbox.seen();
        let msg = match item {
            None => None,
            Some(In::Cmd(Command::ComeHome)) => {
                if !asked_home {
                    asked_home = true;
                    if let Err(e) = link.send(&Msg::ComeHome) {
                        return fail(&mut ctl, lost(e));
                    }
                }
                None
            }
            Some(In::Msg(m)) => Some(m),
        };
        match msg {
            None => {}
            // Asked home: the remote answers this call with "restart" and the process
            // makes it again at home.
            Some(Msg::Call { .. }) if asked_home => {}
            Some(Msg::Call { id, call }) => {
                inbox.set_in_call(true);
                let outcome = ctl.call(&call);
                inbox.set_in_call(false);
                match outcome {
                    Ok(Outcome::Done(reply, signals)) => {
                        if let Err(e) = link.send(&Msg::Reply { id, reply, signals }) {
                            return fail(&mut ctl, lost(e));
                        }
                    }
                    Ok(Outcome::Refused(why)) => {
                        progress(Progress::Refused(why.to_string()));
                        let reply = Reply {
                            ret: -i64::from(libc::EPERM),
                            outs: Vec::new(),
                        };
                        let signals = Vec::new();
                        if let Err(e) = link.send(&Msg::Reply { id, reply, signals }) {
                            return fail(&mut ctl, lost(e));
                        }
                    }
                    Ok(Outcome::Interrupted) => again = Some((id, call)),
                    Ok(Outcome::Gone(g)) => {
                        let _ = link.send(&Msg::Gone);
                        return HomeEnd::Ended(g);
                    }
                    Err(e) => return fail(&mut ctl, format!("the deputy failed: {e}")),
                }
                if let Err(e) = ctl.park() {
                    return fail(&mut ctl, format!("the deputy cannot wait: {e}"));
                }
            }
            Some(Msg::Exit(code)) => {
                let g = ctl.exit(code);
                let _ = link.send(&Msg::Done);
                return HomeEnd::Ended(g);
            }
            Some(Msg::Died { signal, .. }) => {
                let g = ctl.die(signal);
                let _ = link.send(&Msg::Done);
                return HomeEnd::Ended(g);
            }
            Some(Msg::Coming { image, reason }) => {
                let pid = ctl.pid();
                let pages = LinkPages {
                    link: links.clone(),
                    inbox: inbox.clone(),
                    late: late.clone(),
                };
                return match ctl.come_home(&image, Box::new(pages), &late) {
                    Ok(()) => {
                        let _ = link.send(&Msg::Done);
                        HomeEnd::CameHome(reason)
                    }
                    Err(e) => {
                        // Half rebuilt: it cannot run. End it rather than leave it broken.
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                        let _ = link.send(&Msg::Done);
                        HomeEnd::Lost(format!("coming home failed: {}", error_chain(&e)))
                    }
                };
            }
            Some(Msg::Gone) => return fail(&mut ctl, "the remote end gave up".into()),
            Some(Msg::Usage(ns)) => progress(Progress::CpuAway(Duration::from_nanos(ns))),
            Some(Msg::Why(why)) => progress(Progress::DiedBecause(why)),
            Some(Msg::Stopped(sig)) => {
                if let Err(e) = ctl.stop(sig) {
                    match gone_of(&e) {
                        Some(g) => {
                            let _ = link.send(&Msg::Gone);
                            return HomeEnd::Ended(g);
                        }
                        None => return fail(&mut ctl, format!("the deputy cannot stop: {e}")),
                    }
                }
            }
            Some(Msg::Continued) => {
                if let Err(e) = ctl.go_on() {
                    match gone_of(&e) {
                        Some(g) => {
                            let _ = link.send(&Msg::Gone);
                            return HomeEnd::Ended(g);
                        }
                        None => return fail(&mut ctl, format!("the deputy cannot continue: {e}")),
                    }
                }
            }
            Some(Msg::AllHere) => match ctl.release_memory() {
                Ok(freed) => progress(Progress::MemoryReleased(freed)),
                Err(e) => match gone_of(&e) {
                    Some(g) => {
                        let _ = link.send(&Msg::Gone);
                        return HomeEnd::Ended(g);
                    }
                    None => return fail(&mut ctl, format!("the deputy failed: {e}")),
                },
            },
            // Signals the remote end could no longer deliver (the process is on its way
            // home): kept for the home process.
            Some(Msg::Signals(s)) => {
                if let Ok(mut l) = late.lock() {
                    l.extend(s);
                }
            }
            Some(_) => {}
        }
        match ctl.poll() {
            Event::Signals(s) if s.is_empty() => {}
            Event::Signals(s) => {
                if let Err(e) = link.send(&Msg::Signals(s)) {
                    return fail(&mut ctl, lost(e));
                }
            }
            Event::Gone(g) => {
                let _ = link.send(&Msg::Gone);
                return HomeEnd::Ended(g);
            }
        }
    }
}

/// A forwarded call on a terminal from a background job fails at home with a restart
/// code and SIGTTIN or SIGTTOU for the job, unless the caller blocks or ignores that
/// signal (then the terminal lets the call through, or fails a read with EIO). Home runs
/// with nothing blocked; only when that happens is the guest's own mask asked (it would
/// cost every call a read of /proc otherwise). Such a signal, blocked or ignored by the
/// guest, is taken out of `signals` (natively it is never sent), and the mask to make
/// the call again with is returned (0 when nothing was taken).
fn tty_stop_unwanted(
    guest: &Guest,
    t: &crate::guest::Trapped,
    reply: &Reply,
    signals: &mut Vec<i32>,
) -> u64 {
    let bit = |s: &i32| 1u64 << (s - 1);
    let tty = |s: &i32| crate::syscalls::TTY_STOP_SIGNALS & bit(s) != 0;
    if !RESTARTS.contains(&reply.ret)
        || !crate::syscalls::may_reach_tty(t.nr)
        || !signals.iter().any(tty)
    {
        return 0;
    }
    let quiet = guest.tty_quiet();
    signals.retain(|s| !(tty(s) && quiet & bit(s) != 0));
    quiet
}

/// Restart codes a call interrupted at home returns (ERESTARTSYS, ERESTARTNOINTR,
/// ERESTARTNOHAND, ERESTART_RESTARTBLOCK). They are the kernel's own and must never
/// reach the process: the guest's kernel resolves them only while a signal acts.
const RESTARTS: [i64; 4] = [-512, -513, -514, -516];

/// A forwarded call interrupted at home (its reply a restart code) by a signal that,
/// here, does not act on the guest (blocked, or ignored as SIGWINCH is by default) is
/// made again, as the kernel restarts a call no handler interrupts: with its in-out
/// arguments as the interrupted call left them (select's remaining time), and a
/// `poll`'s timeout reduced by the time already spent. Returns what to do instead of
/// answering, or None to answer: a signal acts, and the guest's kernel resolves the
/// code with its own handlers (EINTR, or a restart under SA_RESTART) before the process
/// sees the result, as natively.
fn restart(
    guest: &Guest,
    t: &crate::guest::Trapped,
    args: &mut [u64; 6],
    reply: &Reply,
    signals: &[i32],
    sent: Instant,
) -> Option<Action> {
    // Some calls (epoll_wait) fail with EINTR themselves when a signal interrupts them.
    let interrupted = RESTARTS.contains(&reply.ret)
        || (reply.ret == -(libc::EINTR as i64) && !signals.is_empty());
    if !interrupted || guest.signal_will_act() {
        return None;
    }
    if guest.write_outs(reply).is_err() {
        return Some(Action::Errno(libc::EFAULT));
    }
    // Timeouts in milliseconds, passed by value: what is left of them.
    let timeout = match t.nr as i64 {
        libc::SYS_poll => Some(2),
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait => Some(3),
        _ => None,
    };
    if let Some(i) = timeout.filter(|&i| (args[i] as i32) > 0) {
        let spent = sent.elapsed().as_millis() as i64;
        args[i] = (args[i] as i32 as i64 - spent).max(0) as u64;
    }
    let again = crate::guest::Trapped { args: *args, ..*t };
    Some(guest.plan(&again))
}

fn deliver(guest: &mut Guest, signals: &[i32]) {
    for s in signals {
        let _ = guest.signal(*s);
    }
}

/// Tells home that the guest stopped (a stop signal acted on it) or continued, so that
/// home does the same (a continue home itself caused changes nothing there).
fn report_stop(guest: &mut Guest, link: &dyn Link) -> std::io::Result<()> {
    while let Some(sig) = guest.job_change() {
        link.send(&match sig {
            0 => Msg::Continued,
            s => Msg::Stopped(s),
        })?;
    }
    Ok(())
}

/// Waits until the guest traps a call, ends, or the link has a message.
fn wait(guest: &Guest, link: &dyn Link) {
    let lfd = link.fd();
    let mut fds = vec![
        PollFd::new(guest.listener(), PollFlags::POLLIN),
        PollFd::new(guest.pidfd(), PollFlags::POLLIN),
    ];
    // A stop shows in no descriptor: soon after a signal, look for one often.
    let slow = if guest.recently_signalled() {
        5
    } else {
        200u16
    };
    let t = match lfd {
        Some(fd) => {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
            slow
        }
        None => 1,
    };
    let _ = poll(&mut fds, PollTimeout::from(t));
}

/// Sends the guest home: captures it (answering a call it waits on with "restart") and
/// serves its pages until home has them all.
/// A forwarded call the guest waits on as it leaves: it is made again where the process
/// goes, with what is left of a timeout it passed by value.
#[derive(Clone, Copy)]
struct InFlight {
    id: u64,
    nr: u64,
    /// When it was (last) sent home.
    sent: Instant,
}

/// The registers of a process caught in call `nr`, to be made again, with a timeout
/// passed by value (`poll`'s milliseconds, `epoll_wait`'s) reduced by `spent`: a timed
/// call that moves resumes with the time it had left, as the kernel's restart does.
fn with_time_left(regs: &mut crate::image::Regs, nr: u64, spent: Duration) {
    let timeout = match nr as i64 {
        libc::SYS_poll => &mut regs.rdx,
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait => &mut regs.r10,
        _ => return,
    };
    let ms = *timeout as i32;
    if ms > 0 {
        *timeout = (ms as i64 - spent.as_millis() as i64).max(0) as u64;
    }
}

/// Where call `nr` keeps its timeout in the process's memory (select's `timeval`,
/// pselect6's and ppoll's `timespec`), with the unit of its second field in
/// nanoseconds, if it has one. The kernel updates it as the call waits, and a
/// restarted call waits only for what it holds.
fn timeout_in_memory(regs: &crate::image::Regs, nr: u64) -> Option<(u64, u64)> {
    let (addr, unit) = match nr as i64 {
        libc::SYS_select => (regs.r8, 1_000),
        libc::SYS_pselect6 => (regs.r8, 1),
        libc::SYS_ppoll => (regs.rdx, 1),
        _ => return None,
    };
    (addr != 0).then_some((addr, unit))
}

/// A `timeval` or `timespec` (second field in units of `unit` ns) less `spent`, never
/// below zero. A malformed one is left as it is: the call fails with EINVAL where the
/// process goes, as it would have here.
fn time_less(raw: [u8; 16], unit: u64, spent: Duration) -> [u8; 16] {
    let sec = i64::from_ne_bytes(raw[..8].try_into().unwrap());
    let frac = i64::from_ne_bytes(raw[8..].try_into().unwrap());
    let per_sec = 1_000_000_000 / unit as i64;
    if sec < 0 || !(0..per_sec).contains(&frac) {
        return raw;
    }
    let total = (sec as i128) * 1_000_000_000 + (frac as i128) * unit as i128;
    let left = (total - spent.as_nanos() as i128).max(0);
    let sec = (left / 1_000_000_000) as i64;
    let frac = ((left % 1_000_000_000) / unit as i128) as i64;
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&sec.to_ne_bytes());
    out[8..].copy_from_slice(&frac.to_ne_bytes());
    out
}

/// Takes `spent` off the timeout at `addr` in the memory of the frozen process `pid`.
fn less_time_in_memory(pid: i32, addr: u64, unit: u64, spent: Duration) -> std::io::Result<()> {
    let mem = crate::pages::ProcessMemory::open_rw(pid)?;
    let mut raw = [0u8; 16];
    mem.read_at(addr, &mut raw)?;
    mem.write_at(addr, &time_less(raw, unit, spent))
}

fn go_home(
    guest: Guest,
    in_flight: Option<InFlight>,
    reason: String,
    link: &dyn Link,
) -> RemoteEnd {
    let pid = guest.pid();
    report_usage(&guest, link);
    let (mut frozen, end) = match guest.capture(in_flight.map(|f| f.id)) {
        Ok(x) => x,
        Err(e) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = link.send(&Msg::Gone);
            return RemoteEnd::Lost(format!("cannot capture the guest to send it home: {e}"));
        }
    };
    if let Some(f) = in_flight {
        let spent = f.sent.elapsed();
        let regs = &mut frozen.image_mut().regs;
        if regs.interrupted_syscall() == Some(f.nr) {
            with_time_left(regs, f.nr, spent);
            if let Some((addr, unit)) = timeout_in_memory(regs, f.nr) {
                // Home reads the process's pages from here. Should the write fail (the
                // address unmapped), the call waits its full time again: late, never
                // early, as before.
                let _ = less_time_in_memory(frozen.pid(), addr, unit, spent);
            }
        }
    }
    let image = Box::new(frozen.image().clone());
    if let Err(e) = link.send(&Msg::Coming {
        image,
        reason: reason.clone(),
    }) {
        let _ = frozen.kill();
        drop(end);
        return RemoteEnd::Lost(lost(e));
    }
    let result = loop {
        match link.recv(Some(Duration::from_secs(60))) {
            Ok(Some(Msg::ReadPages { addr, len })) => {
                let bytes = read_for_peer(frozen.memory(), addr, len);
                if let Err(e) = link.send(&Msg::Pages(bytes)) {
                    break RemoteEnd::Lost(lost(e));
                }
            }
            Ok(Some(Msg::Done)) => break RemoteEnd::WentHome(reason),
            // Too late for the guest: back to home, which queues them to the process.
            Ok(Some(Msg::Signals(s))) => {
                if let Err(e) = link.send(&Msg::Signals(s)) {
                    break RemoteEnd::Lost(lost(e));
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break RemoteEnd::Lost("home did not take the process in 60 s".into()),
            Err(e) => break RemoteEnd::Lost(lost(e)),
        }
    };
    let _ = frozen.kill();
    drop(end);
    result
}

const ASKED: &str = "asked to go home";

/// What the remote end does after a message from home.
enum Next {
    /// Carry on.
    Go,
    /// Send the process home (answering this waiting call with "restart").
    Home(Option<InFlight>),
    /// Finished.
    End(RemoteEnd),
}

/// Handles a message home may send at any time: signals, a request to come home, or the
/// end of the home process. `in_flight` is the call the guest is waiting on, if any.
fn from_home(msg: Msg, guest: &mut Guest, in_flight: Option<InFlight>) -> Next {
    match msg {
        Msg::Signals(s) => {
            deliver(guest, &s);
            Next::Go
        }
        Msg::ComeHome => Next::Home(in_flight),
        Msg::Gone => {
            guest.kill();
            Next::End(RemoteEnd::Ended { lost_pages: None })
        }
        _ => Next::Go,
    }
}

/// Tells home how much CPU time the guest has used here (a lost link shows at the next
/// call or wait).
fn report_usage(guest: &Guest, link: &dyn Link) {
    if let Some(t) = guest.cpu_time() {
        let _ = link.send(&Msg::Usage(t.as_nanos() as u64));
    }
}

/// Upper bounds of the buckets of [`Latencies`], in microseconds: 25 µs (below any
/// round trip) doubling to about 0.8 s (a call that blocked); slower calls count above.
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    25, 50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 204_800,
    409_600, 819_200,
];

/// How long forwarded calls took, as a histogram over [`LATENCY_BOUNDS_US`]: shared by
/// every guest of a node, read while they run.
#[derive(Debug, Default)]
pub struct Latencies {
    /// One count per bound, and one for the calls above the last.
    buckets: [std::sync::atomic::AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_ns: std::sync::atomic::AtomicU64,
}

/// A reading of [`Latencies`]: the count of calls in each bucket (not cumulative; the
/// last one above every bound) and the time they took in all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    pub buckets: Vec<u64>,
    pub sum: Duration,
}

impl LatencySnapshot {
    /// Calls counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl Latencies {
    /// Counts one call that took `d`.
    pub fn observe(&self, d: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let us = d.as_micros();
        let i = LATENCY_BOUNDS_US.partition_point(|&b| u128::from(b) < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> LatencySnapshot {
        use std::sync::atomic::Ordering::Relaxed;
        LatencySnapshot {
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum: Duration::from_nanos(self.sum_ns.load(Relaxed)),
        }
    }
}

/// Forwarded calls a remote end has made: how many, and how long the guest waited for
/// their answers in all (the balancer's measure of how I/O-bound a guest is); each call
/// also counts in the node's [`Latencies`], if given one.
#[derive(Debug, Default)]
pub struct CallStats {
    calls: std::sync::atomic::AtomicU64,
    waited_ns: std::sync::atomic::AtomicU64,
    latencies: Option<std::sync::Arc<Latencies>>,
}

impl CallStats {
    /// Stats whose calls also count in `latencies`.
    pub fn feeding(latencies: std::sync::Arc<Latencies>) -> Self {
        Self {
            latencies: Some(latencies),
            ..Self::default()
        }
    }

    fn add(&self, waited: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.calls.fetch_add(1, Relaxed);
        self.waited_ns.fetch_add(waited.as_nanos() as u64, Relaxed);
        if let Some(l) = &self.latencies {
            l.observe(waited);
        }
    }

    /// Calls so far, and the time the guest waited for them.
    pub fn get(&self) -> (u64, Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.calls.load(Relaxed),
            Duration::from_nanos(self.waited_ns.load(Relaxed)),
        )
    }
}

/// Runs the remote end until the process ends, goes home, or home is lost.
pub fn run_remote(guest: Guest, link: &dyn Link, commands: &Receiver<Command>) -> RemoteEnd {
    run_remote_counting(guest, link, commands, &CallStats::default())
}

/// [`run_remote`], counting forwarded calls in `stats`.
pub fn run_remote_counting(
    mut guest: Guest,
    link: &dyn Link,
    commands: &Receiver<Command>,
    stats: &CallStats,
) -> RemoteEnd {
    let give_up = |guest: &Guest, why: String| {
        guest.kill();
        let _ = link.send(&Msg::Gone);
        RemoteEnd::Lost(why)
    };
    // The guest ended by itself: tell home how, wait until home has ended the same way,
    // and say whether memory it never got was to blame.
    let finish = |guest: &mut Guest, msg: Msg| {
        if link.send(&msg).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                match link.recv(Some(Duration::from_millis(100))) {
                    Ok(Some(Msg::Done)) | Ok(Some(Msg::Gone)) | Err(_) => break,
                    _ => {}
                }
            }
        }
        RemoteEnd::Ended {
            lost_pages: guest.finish_paging().err().map(|e| error_chain(&e)),
        }
    };
    let mut reported = Instant::now();
    let mut all_here = false;
    loop {
        if commands.try_recv() == Ok(Command::ComeHome) {
            return go_home(guest, None, ASKED.into(), link);
        }
        wait(&guest, link);
        if reported.elapsed() >= USAGE_EVERY {
            reported = Instant::now();
            report_usage(&guest, link);
        }
        if let Err(e) = report_stop(&mut guest, link) {
            return give_up(&guest, lost(e));
        }
        if !all_here && guest.paging_done() {
            all_here = true;
            let _ = link.send(&Msg::AllHere);
        }
        if let Some(end) = guest.ended() {
            return match end {
                Ended::Exited(code) => finish(&mut guest, Msg::Exit(code)),
                Ended::Killed { signal, core } => {
                    if signal == libc::SIGKILL {
                        if let Some(why) = guest.killed_why() {
                            let _ = link.send(&Msg::Why(why));
                        }
                    }
                    finish(&mut guest, Msg::Died { signal, core })
                }
            };
        }
        while let Some(t) = guest.next() {
            match guest.plan(&t) {
                Action::Native => {
                    let _ = guest.allow(t.id);
                }
                Action::Errno(e) => {
                    let _ = guest.fail(t.id, e);
                }
                Action::Exit(code) => {
                    guest.kill();
                    return finish(&mut guest, Msg::Exit(code));
                }
                Action::Home(reason) => {
                    if private_file_mapping(&t) {
                        match map_home_file(&mut guest, link, commands, &t) {
                            Mapped::Done => continue,
                            Mapped::Errno(e) => {
                                let _ = guest.fail(t.id, e);
                                continue;
                            }
                            Mapped::Home => {}
                            Mapped::Stop(Stop::Home(f)) => {
                                return go_home(guest, f, ASKED.into(), link)
                            }
                            Mapped::Stop(Stop::End(e)) => return give_up(&guest, e),
                            Mapped::Stop(Stop::Ended(e)) => return e,
                        }
                    }
                    let f = InFlight {
                        id: t.id,
                        // Another ABI's number is no x86-64 call whose time could be
                        // adjusted.
                        nr: if t.foreign_abi().is_some() {
                            u64::MAX
                        } else {
                            t.nr
                        },
                        sent: Instant::now(),
                    };
                    return go_home(guest, Some(f), reason, link);
                }
                Action::Forward(call) => {
                    if let Err(e) = link.send(&Msg::Call { id: t.id, call }) {
                        return give_up(&guest, lost(e));
                    }
                    let began = Instant::now();
                    let mut sent = began;
                    let mut args = t.args;
                    // Wait for the answer; signals and requests may come first.
                    loop {
                        match link.recv(Some(Duration::from_millis(200))) {
                            Err(e) => return give_up(&guest, lost(e)),
                            Ok(None) => {
                                if commands.try_recv() == Ok(Command::ComeHome) {
                                    let f = InFlight {
                                        id: t.id,
                                        nr: t.nr,
                                        sent,
                                    };
                                    return go_home(guest, Some(f), ASKED.into(), link);
                                }
                                if guest.ended().is_some() {
                                    return give_up(&guest, "the guest was killed here".into());
                                }
                            }
                            Ok(Some(Msg::Reply {
                                id,
                                reply,
                                mut signals,
                            })) if id == t.id => {
                                let quiet = tty_stop_unwanted(&guest, &t, &reply, &mut signals);
                                deliver(&mut guest, &signals);
                                if let Some(again) =
                                    restart(&guest, &t, &mut args, &reply, &signals, sent)
                                {
                                    match again {
                                        Action::Forward(mut call) => {
                                            call.tty_quiet |= quiet;
                                            sent = Instant::now();
                                            if let Err(e) = link.send(&Msg::Call { id, call }) {
                                                return give_up(&guest, lost(e));
                                            }
                                            continue;
                                        }
                                        Action::Errno(e) => {
                                            let _ = guest.fail(id, e);
                                        }
                                        _ => {
                                            let _ = guest.answer(id, &reply);
                                        }
                                    }
                                    break;
                                }
                                let _ = guest.answer(id, &reply);
                                break;
                            }
                            Ok(Some(m)) => match from_home(
                                m,
                                &mut guest,
                                Some(InFlight {
                                    id: t.id,
                                    nr: t.nr,
                                    sent,
                                }),
                            ) {
                                Next::Go => {}
                                Next::Home(f) => return go_home(guest, f, ASKED.into(), link),
                                Next::End(e) => return e,
                            },
                        }
                    }
                    stats.add(began.elapsed());
                }
            }
        }
        loop {
            match link.recv(Some(Duration::ZERO)) {
                Err(e) => return give_up(&guest, lost(e)),
                Ok(None) => break,
                Ok(Some(m)) => match from_home(m, &mut guest, None) {
                    Next::Go => {}
                    Next::Home(f) => return go_home(guest, f, ASKED.into(), link),
                    Next::End(e) => return e,
                },
            }
        }
    }
}

/// Whether trapped call `t` is an `mmap` of a file with `MAP_PRIVATE`, which the remote
/// end can make from a copy of the file (see [`crate::homefile`]).
fn private_file_mapping(t: &crate::guest::Trapped) -> bool {
    let flags = t.args[3] as i32;
    t.foreign_abi().is_none()
        && t.nr == libc::SYS_mmap as u64
        && flags & libc::MAP_ANONYMOUS == 0
        && flags & 0x0f == libc::MAP_PRIVATE
        && (t.args[4] as i32) >= 0
}

/// The id of the remote end's own forwarded calls (a guest's calls carry the kernel's
/// notification cookies, which start at a random number).
const OWN_CALL: u64 = u64::MAX;

/// Where the remote end's own calls keep their buffers (an address of no process: the
/// bytes travel in the call and its reply, never into the guest).
const OWN_BUF: u64 = 0x1000;

/// Why the remote end stopped waiting for its own call.
enum Stop {
    /// Asked to send the process home (the trapped call restarts there).
    Home(Option<InFlight>),
    /// The link failed, or the guest died: give up with this reason.
    End(String),
    /// The home process ended.
    Ended(RemoteEnd),
}

/// What became of a file mapping the guest asked for.
enum Mapped {
    /// It was made here (or the guest was interrupted and will ask again).
    Done,
    /// It fails with this errno, as it would at home.
    Errno(i32),
    /// It cannot be made here: the process goes home to make it.
    Home,
    Stop(Stop),
}

/// Memory for the remote end's own calls: `bytes` at `at`.
struct Given {
    at: u64,
    bytes: Vec<u8>,
}

impl crate::syscalls::GuestMem for Given {
    fn read(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let off = addr.checked_sub(self.at).map(|o| o as usize);
        match off.and_then(|o| self.bytes.get(o..o.checked_add(len)?)) {
            Some(b) => Ok(b.to_vec()),
            None => Err(std::io::Error::from_raw_os_error(libc::EFAULT)),
        }
    }
}

/// The remote end asking home for calls of its own, while the guest waits in trapped
/// call `t`; signals and requests from home are handled meanwhile.
struct AskHome<'a> {
    guest: &'a mut Guest,
    link: &'a dyn Link,
    commands: &'a Receiver<Command>,
    t: &'a crate::guest::Trapped,
}

impl AskHome<'_> {
    /// Makes call `nr(args)` at home (its pointers into `mem`).
    fn ask(&mut self, nr: i64, args: [u64; 6], mem: &Given) -> Result<Reply, Mapped> {
        let Action::Forward(call) = crate::syscalls::plan(nr as u64, args, mem) else {
            return Err(Mapped::Home);
        };
        if let Err(e) = self.link.send(&Msg::Call { id: OWN_CALL, call }) {
            return Err(Mapped::Stop(Stop::End(lost(e))));
        }
        let flight = InFlight {
            id: self.t.id,
            nr: self.t.nr,
            sent: Instant::now(),
        };
        loop {
            match self.link.recv(Some(Duration::from_millis(200))) {
                Err(e) => return Err(Mapped::Stop(Stop::End(lost(e)))),
                Ok(None) => {
                    if self.commands.try_recv() == Ok(Command::ComeHome) {
                        return Err(Mapped::Stop(Stop::Home(Some(flight))));
                    }
                    if self.guest.ended().is_some() {
                        return Err(Mapped::Stop(Stop::End("the guest was killed here".into())));
                    }
                }
                Ok(Some(Msg::Reply { id, reply, signals })) if id == OWN_CALL => {
                    deliver(self.guest, &signals);
                    return Ok(reply);
                }
                Ok(Some(m)) => match from_home(m, self.guest, Some(flight)) {
                    Next::Go => {}
                    Next::Home(f) => return Err(Mapped::Stop(Stop::Home(f))),
                    Next::End(e) => return Err(Mapped::Stop(Stop::Ended(e))),
                },
            }
        }
    }
}

/// Makes the private file mapping the guest asks for in trapped call `t` from a copy of
/// the file, read from home (see [`crate::homefile`]).
fn map_home_file(
    guest: &mut Guest,
    link: &dyn Link,
    commands: &Receiver<Command>,
    t: &crate::guest::Trapped,
) -> Mapped {
    match map_home_file_inner(guest, link, commands, t) {
        Ok(m) | Err(m) => m,
    }
}

fn map_home_file_inner(
    guest: &mut Guest,
    link: &dyn Link,
    commands: &Receiver<Command>,
    t: &crate::guest::Trapped,
) -> Result<Mapped, Mapped> {
    use crate::homefile::{wanted, Identity, WHOLE};
    let mut home = AskHome {
        guest,
        link,
        commands,
        t,
    };
    let fd = t.args[4] as i32 as u64;
    let (len, offset) = (t.args[1], t.args[5]);
    let none = Given {
        at: 0,
        bytes: Vec::new(),
    };
    let st = home.ask(libc::SYS_fstat, [fd, OWN_BUF, 0, 0, 0, 0], &none)?;
    if st.ret < 0 {
        return Ok(Mapped::Errno(-st.ret as i32));
    }
    let Some(id) = st.outs.first().and_then(|(_, b)| Identity::of_stat(b)) else {
        return Ok(Mapped::Home);
    };
    let want = wanted(id.size, offset, len);
    let io = |_| Mapped::Home;
    let missing = home
        .guest
        .home_files()
        .copy_of(id)
        .map_err(io)?
        .missing(want);
    let more = missing.iter().map(|(s, e)| e - s).sum();
    if !home.guest.home_files().has_room(more) {
        return Ok(Mapped::Home);
    }
    let whole = id.size <= WHOLE && missing.first().is_some_and(|r| r.0 == 0);
    let mut hash = whole.then(blake3::Hasher::new);
    for (start, end) in missing {
        let mut at = start;
        while at < end {
            let n = (end - at).min(crate::syscalls::MAX_BUFFER);
            let r = home.ask(libc::SYS_pread64, [fd, OWN_BUF, n, at, 0, 0], &none)?;
            // Not readable (a write-only descriptor): home says how mmap fails.
            let Some((_, bytes)) = r.outs.first().filter(|_| r.ret > 0) else {
                if r.ret < 0 {
                    return Ok(Mapped::Home);
                }
                home.guest
                    .home_files()
                    .copy_of(id)
                    .map_err(io)?
                    .ends_at(at, end);
                break;
            };
            if let Some(h) = hash.as_mut() {
                h.update(bytes);
            }
            home.guest
                .home_files()
                .copy_of(id)
                .map_err(io)?
                .fill(at, bytes)
                .map_err(io)?;
            at += bytes.len() as u64;
        }
    }
    if let Some(h) = hash {
        let link_path = format!("/proc/self/fd/{}\0", fd as i32);
        let mut bytes = link_path.into_bytes();
        bytes.resize(4096, 0);
        let path_at = OWN_BUF + 0x10000;
        let mem = Given { at: path_at, bytes };
        let r = home.ask(libc::SYS_readlink, [path_at, OWN_BUF, 4096, 0, 0, 0], &mem)?;
        let path = r
            .outs
            .first()
            .filter(|_| r.ret > 0)
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .filter(|p| p.starts_with('/') && !p.ends_with(" (deleted)"));
        if let Some(path) = path {
            let hash = h.finalize().to_hex().to_string();
            home.guest
                .home_files()
                .copy_of(id)
                .map_err(io)?
                .whole(path, id.size, hash);
        }
    }
    let Some(copy) = home.guest.home_files().fd_of(&id) else {
        return Ok(Mapped::Home);
    };
    match home.guest.allow_on(t.id, fd as u32, copy) {
        Ok(()) => Ok(Mapped::Done),
        // The guest was interrupted (a signal): it makes the call again.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Mapped::Done),
        Err(_) => Ok(Mapped::Home),
    }
}

#[cfg(test)]
mod tests {
    use super::{time_less, with_time_left, Latencies, LATENCY_BOUNDS_US};
    use std::time::Duration;

    #[test]
    fn latencies_fall_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let l = Latencies::default();
        let us = Duration::from_micros;
        for d in [
            us(0),
            us(25),
            us(26),
            us(50),
            us(819_200),
            us(819_201),
            us(10_000_000),
        ] {
            l.observe(d);
        }
        let s = l.snapshot();
        assert_eq!(s.buckets.len(), LATENCY_BOUNDS_US.len() + 1);
        let mut want = vec![0; LATENCY_BOUNDS_US.len() + 1];
        want[0] = 2; // 0 and 25 µs
        want[1] = 2; // 26 and 50 µs
        want[LATENCY_BOUNDS_US.len() - 1] = 1; // 819.2 ms
        want[LATENCY_BOUNDS_US.len()] = 2; // above every bound
        assert_eq!(s.buckets, want);
        assert_eq!(s.count(), 7);
        assert_eq!(s.sum, us(25 + 26 + 50 + 819_200 + 819_201 + 10_000_000));
    }

    fn tv(sec: i64, frac: i64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&sec.to_ne_bytes());
        b[8..].copy_from_slice(&frac.to_ne_bytes());
        b
    }

    #[test]
    fn a_timeout_in_memory_loses_the_time_spent() {
        let ms = Duration::from_millis;
        // timespec: 2 s less 1.25 s.
        assert_eq!(time_less(tv(2, 0), 1, ms(1250)), tv(0, 750_000_000));
        // timeval (microseconds): 1.5 s less 0.6 s.
        assert_eq!(time_less(tv(1, 500_000), 1000, ms(600)), tv(0, 900_000));
        // Never below zero.
        assert_eq!(time_less(tv(1, 0), 1, ms(5000)), tv(0, 0));
        // Malformed ones stay as they are, for the kernel to refuse.
        assert_eq!(time_less(tv(-1, 0), 1, ms(5)), tv(-1, 0));
        assert_eq!(time_less(tv(1, 1_000_000), 1000, ms(5)), tv(1, 1_000_000));
    }

    #[test]
    fn a_timed_call_that_moves_keeps_the_time_it_had_left() {
        let json = r#"{"r15":0,"r14":0,"r13":0,"r12":0,"rbp":0,"rbx":0,"r11":0,"r10":0,"r9":0,"r8":0,"rax":0,"rcx":0,"rdx":0,"rsi":0,"rdi":0,"orig_rax":0,"rip":0,"cs":0,"eflags":0,"rsp":0,"ss":0,"fs_base":0,"gs_base":0,"ds":0,"es":0,"fs":0,"gs":0}"#;
        let mut r: crate::image::Regs = serde_json::from_str(json).unwrap();
        r.rdx = 1000;
        with_time_left(&mut r, libc::SYS_poll as u64, Duration::from_millis(300));
        assert_eq!(r.rdx, 700);
        with_time_left(&mut r, libc::SYS_poll as u64, Duration::from_secs(5));
        assert_eq!(r.rdx, 0, "never below zero");
        // -1 waits for ever, and still does.
        r.rdx = u32::MAX as u64;
        with_time_left(&mut r, libc::SYS_poll as u64, Duration::from_secs(5));
        assert_eq!(r.rdx as i32, -1);
        r.r10 = 50;
        with_time_left(
            &mut r,
            libc::SYS_epoll_wait as u64,
            Duration::from_millis(20),
        );
        assert_eq!(r.r10, 30);
        // Other calls are left alone.
        r.rdx = 9;
        with_time_left(&mut r, libc::SYS_read as u64, Duration::from_secs(1));
        assert_eq!(r.rdx, 9);
    }
}
