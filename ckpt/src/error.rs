//! Typed errors of the engine, one `Display` line each: what failed and why.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use thiserror::Error;

/// A system call injected into a stopped process did not complete.
#[derive(Debug, Error)]
pub enum InjectError {
    /// A ptrace request failed.
    #[error("{0} failed: {1}")]
    Ptrace(&'static str, Errno),
    /// The injected call returned an error.
    #[error("injected {call} failed: {errno}")]
    Failed {
        /// The system call's name.
        call: &'static str,
        /// Its error.
        errno: Errno,
    },
    /// A signal stopped the process instead of the single-step trap.
    #[error("injected system call {nr} was interrupted by {signal}")]
    Signal {
        /// System call number.
        nr: i64,
        /// The signal.
        signal: Signal,
    },
    /// The process exited during injection.
    #[error("the process exited with status {0} during injection")]
    Exited(i32),
    /// The process was killed during injection.
    #[error("the process was killed by {0} during injection")]
    Killed(Signal),
    /// Reading or writing its memory failed.
    #[error("cannot access the process's memory at {0:#x}: {1}")]
    Mem(u64, std::io::Error),
    /// No `syscall` instruction in the process's `[vdso]` to inject through.
    #[error("the process has no [vdso] with a syscall instruction to inject through")]
    NoSyscallInsn,
    /// Arguments do not fit the scratch area.
    #[error("arguments of {0} bytes do not fit the scratch area")]
    ScratchTooSmall(u64),
}

/// Why a process cannot be captured. Each is checked before anything is changed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// There is no such process.
    #[error("no process with pid {0}")]
    NoSuchProcess(i32),
    /// The caller asked to capture itself.
    #[error("a process cannot capture itself")]
    SelfCapture,
    /// The process has exited but was not yet reaped.
    #[error("the process is a zombie")]
    Zombie,
    /// Its main thread has exited; other threads run on.
    #[error("its main thread has exited while {0} other thread(s) run on; only single-threaded processes can move")]
    LeaderExited(u64),
    /// Seccomp strict mode: any call but read, write, exit and sigreturn kills it.
    #[error(
        "it runs in seccomp strict mode, where the system calls a capture makes would kill it"
    )]
    SeccompStrict,
    /// A seccomp filter of its own.
    #[error("it has seccomp filters of its own, which are not captured")]
    SeccompFilter,
    /// More than one thread.
    #[error("it is multi-threaded ({0} threads); only single-threaded processes can move")]
    MultiThreaded(u64),
    /// Someone else traces it.
    #[error("it is being traced by pid {0}")]
    Traced(i32),
    /// ptrace attach was refused.
    #[error("not permitted to trace it: {0}")]
    NotPermitted(Errno),
    /// SysV shared memory is attached.
    #[error("it has SysV shared memory attached at {0:#x} (key {1})")]
    SysvShm(u64, i32),
    /// A shared writable file mapping (writes must reach the file).
    #[error("it has a shared writable mapping of {0}")]
    SharedWritable(String),
    /// Shared anonymous memory (shared with other processes).
    #[error("its shared memory at {0:#x} is also mapped by process {1}; shared memory moves only when no other process maps it")]
    SharedAnon(u64, i32),
    /// Shared memory the process also holds open as a descriptor (a memfd).
    #[error("its shared memory at {0:#x} is also open as descriptor {1}, whose reads and writes would happen at home")]
    SharedWithFd(u64, i32),
    /// The same shared memory mapped twice.
    #[error("it maps the same shared memory twice (at {0:#x} and {1:#x})")]
    SharedTwice(u64, u64),
    /// A device is mapped.
    #[error("it has a device mapped: {0}")]
    DeviceMapping(String),
    /// A mapped file or its executable was deleted.
    #[error("a file it maps is deleted or unnamed: {0}")]
    DeletedFile(String),
    /// Mapped memory of a kind we do not handle.
    #[error("it has a mapping of an unsupported kind: {0}")]
    UnsupportedMapping(String),
    /// A descriptor that is not a regular file or directory (beyond 0, 1, 2).
    #[error("descriptor {fd} is {what}; only regular files, directories and /dev/null-like devices can be reopened")]
    UnsupportedFd {
        /// Descriptor number.
        fd: i32,
        /// What it is.
        what: String,
    },
    /// POSIX timers (`timer_create`) exist.
    #[error("it has a POSIX timer that notifies in a way not restored: {0}")]
    PosixTimers(String),
}

/// Reading the original's memory or the image's page file failed.
#[derive(Debug, Error)]
pub enum PageError {
    /// An I/O error at `addr`.
    #[error("cannot read page data for {addr:#x}")]
    Io {
        /// Address asked for.
        addr: u64,
        /// The error.
        source: std::io::Error,
    },
    /// The address is not part of the image.
    #[error("address {0:#x} is not in the image's page index")]
    NotInImage(u64),
    /// The source cannot say which anonymous pages hold data (see
    /// [`crate::PageSource::anon_index`]), or said something impossible.
    #[error("the page source cannot list the process's anonymous pages: {0}")]
    NoIndex(String),
    /// A userfaultfd operation failed.
    #[error("userfaultfd {op} at {addr:#x} failed")]
    Uffd {
        /// Which operation.
        op: &'static str,
        /// Address.
        addr: u64,
        /// The error.
        source: userfaultfd::Error,
    },
}

/// Capture failed; the process was left running as it was.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// The process cannot be captured.
    #[error("cannot capture pid {pid}: {reason}")]
    Refused {
        /// Its pid.
        pid: i32,
        /// Why.
        reason: Refusal,
    },
    /// Reading its state from /proc failed.
    #[error("cannot read {what} of pid {pid}")]
    Proc {
        /// Pid.
        pid: i32,
        /// What was being read.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A ptrace or injection step failed.
    #[error("capturing pid {pid}")]
    Inject {
        /// Pid.
        pid: i32,
        /// The error.
        source: InjectError,
    },
    /// Reading memory failed.
    #[error(transparent)]
    Pages(#[from] PageError),
}

/// Restore failed; the half-made process was killed.
#[derive(Debug, Error)]
pub enum RestoreError {
    /// The image is not usable here.
    #[error("the image cannot be restored here: {0}")]
    Incompatible(String),
    /// A mapped file differs from the one captured.
    #[error("mapped file {path} has changed since the capture ({why})")]
    FileChanged {
        /// Path.
        path: String,
        /// What differs.
        why: String,
    },
    /// A mapped file is not at this node, and the image carries only the pages the
    /// process changed (a checkpoint; a migration takes the rest from the source).
    #[error("mapped file {path} is not found here ({why})")]
    FileNotFound {
        /// Path.
        path: String,
        /// What the lookup said.
        why: String,
    },
    /// An open file cannot be reopened.
    #[error("cannot reopen descriptor {fd} ({path}): {why}")]
    FileGone {
        /// Descriptor.
        fd: i32,
        /// Path.
        path: String,
        /// Why.
        why: String,
    },
    /// A step of the restore failed.
    #[error("restore step '{step}' failed")]
    Step {
        /// The step.
        step: String,
        /// The error.
        source: InjectError,
    },
    /// Something else at the system level.
    #[error("{what}")]
    Sys {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Page data could not be supplied.
    #[error(transparent)]
    Pages(#[from] PageError),
}
