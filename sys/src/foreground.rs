//! A foreground child, run the way a shell or `env(1)` runs one: its waiter passes on
//! the signals sent to it, and ends the way the child ended. Used by `omckpt restore`
//! and `omcluster exec`.

use std::process::ExitCode;

use nix::sys::signal::{kill, raise, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The signals passed on to the child. Ctrl-C and Ctrl-\ (SIGINT, SIGQUIT) reach it from
/// the terminal directly, so the waiter only keeps them from ending itself.
pub const PASSED_ON: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// The waiter's signals, blocked in the calling thread (and the threads it starts
/// afterwards) so that they are only ever taken by [`Foreground::wait`].
pub struct Foreground {
    signals: SigSet,
}

impl Foreground {
    /// Blocks SIGCHLD, SIGINT, SIGQUIT and [`PASSED_ON`]. A child started afterwards
    /// inherits the mask, so start it first unless something else sets its mask.
    pub fn block() -> nix::Result<Self> {
        let mut signals = SigSet::empty();
        for s in PASSED_ON
            .iter()
            .chain(&[Signal::SIGCHLD, Signal::SIGINT, Signal::SIGQUIT])
        {
            signals.add(*s);
        }
        signals.thread_block()?;
        Ok(Self { signals })
    }

    /// Waits until child `pid` has ended (and reaps it), passing [`PASSED_ON`] on to it.
    /// A SIGCHLD that came before the signals were blocked is seen by the first poll.
    pub fn wait(&self, pid: Pid) -> nix::Result<WaitStatus> {
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(s),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
            match self.signals.wait()? {
                Signal::SIGCHLD | Signal::SIGINT | Signal::SIGQUIT => {}
                sig => {
                    let _ = kill(pid, sig);
                }
            }
        }
    }
}

/// Ends the way `status` says the child ended: its exit code, or death by its signal.
/// No handlers are installed, so after unblocking it, raising the child's signal ends
/// this process the same way (as `env(1)` and `timeout(1)` do); a signal this process
/// ignores (Rust ignores SIGPIPE) gives 128 + its number, as a shell reports it.
pub fn end_like(status: WaitStatus) -> ExitCode {
    match status {
        WaitStatus::Exited(_, code) => ExitCode::from(code as u8),
        WaitStatus::Signaled(_, sig, _) => {
            let mut one = SigSet::empty();
            one.add(sig);
            let _ = one.thread_unblock();
            let _ = raise(sig);
            ExitCode::from(128 + sig as u8)
        }
        _ => ExitCode::FAILURE,
    }
}
