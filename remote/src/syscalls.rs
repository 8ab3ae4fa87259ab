//! The system-call table: one entry for every x86-64 system call, saying what happens to
//! it when a migrated process makes it at a remote node, and which bytes its pointer
//! arguments carry in and out.
//!
//! - [`Class::Native`]: runs in the remote kernel at full speed (the seccomp filter allows
//!   it): memory, scheduling, time and signal-state calls that concern only the process.
//! - [`Class::Forward`]: executed at home by the deputy (the frozen original), so its
//!   meaning is exactly the home node's: files, pipes, sockets, terminal, pids, identity.
//! - [`Class::Exit`]: the process ends; the deputy ends the same way at home.
//! - [`Class::Home`]: the process is brought home first and makes the call natively there
//!   (fork, execve, shared file mappings, SysV IPC, ptrace, and what is not forwarded yet;
//!   the remote end makes private file mappings itself, see [`crate::homefile`]).
//! - [`Class::Refuse`]: numbers no kernel implements: `ENOSYS`, as natively.
//!
//! [`CALLS`] lists every call once, literally: its number (from the `libc` crate), class,
//! argument layout and the reason for its class. The calls whose meaning depends on an
//! argument have sub-tables of the same form: [`IOCTLS`], [`PRCTLS`], [`FCNTLS`].
//!
//! This module is pure: [`plan`] turns a trapped call into a [`Call`] (reading the
//! process's memory through [`GuestMem`]), [`execute`] runs a [`Call`] anywhere a
//! [`Scratch`] area and a way to make system calls exist, and [`Reply::outs`] are the bytes
//! to write back into the process.

use serde::{Deserialize, Serialize};

/// What happens to a system call made by a process running away from home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Runs in the remote kernel (allowed by the seccomp filter).
    Native,
    /// Executed at home by the deputy; arguments marshalled as the entry says.
    Forward,
    /// `exit`/`exit_group`: the deputy exits the same way.
    Exit,
    /// Bring the process home first; the call then runs natively there.
    Home,
    /// Not a system call of any kernel: `ENOSYS`.
    Refuse,
}

/// How long a buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// The value of argument `i`, in bytes.
    Of(usize),
    /// A fixed size (a struct).
    Fixed(u32),
    /// Argument `i` items of `size` bytes.
    Items(usize, u32),
    /// The `u32` that argument `i` points to (socket address lengths).
    PtrU32(usize),
    /// An `fd_set` for `nfds` in argument `i`.
    FdSet(usize),
}

/// How much of an output buffer the call filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// All of it (structs).
    Whole,
    /// As many bytes as the call returned (read, getdents64, readlink, ...).
    RetBytes,
    /// As many items of this size as the call returned (epoll_wait, getgroups).
    RetItems(u32),
}

/// One argument of a forwarded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A number (descriptor, flags, size, pid): passed as it is.
    Val,
    /// A NUL-terminated string the call reads (a path).
    Str,
    /// A buffer the call reads.
    In(Len),
    /// A buffer the call writes.
    Out(Len, Bound),
    /// A buffer the call reads and writes.
    InOut(Len),
    /// An `iovec` array (count in argument `i`) whose buffers the call reads.
    IovIn(usize),
    /// An `iovec` array (count in argument `i`) whose buffers the call fills, up to the
    /// returned number of bytes.
    IovOut(usize),
    /// A pointer the deputy passes as NULL (pselect6's signal-mask pair: signals are
    /// the remote process's business).
    Null,
}

/// One entry of the table.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Its number.
    pub nr: u64,
    /// Its name ("" for unused numbers).
    pub name: &'static str,
    /// What happens to it.
    pub class: Class,
    /// Its arguments, for forwarded calls.
    pub args: &'static [Arg],
    /// Why it is in its class, in a line.
    pub why: &'static str,
}

use Arg::*;
use Bound::*;
use Len::*;

/// Sizes of the structs forwarded calls carry, as the kernel lays them out on x86-64,
/// taken from the `libc` crate's definitions (the test `struct_sizes_are_what_the_kernel_writes`
/// checks each against what the kernel really writes).
mod size {
    const fn of<T>() -> u32 {
        std::mem::size_of::<T>() as u32
    }
    pub const STAT: u32 = of::<libc::stat>();
    pub const RUSAGE: u32 = of::<libc::rusage>();
    pub const TIMESPEC2: u32 = 2 * of::<libc::timespec>();
    pub const TIMEVAL2: u32 = 2 * of::<libc::timeval>();
    pub const ITIMERSPEC: u32 = of::<libc::itimerspec>();
    pub const UTIMBUF: u32 = of::<libc::utimbuf>();
    pub const UTSNAME: u32 = of::<libc::utsname>();
    pub const SYSINFO: u32 = of::<libc::sysinfo>();
    pub const TMS: u32 = of::<libc::tms>();
    pub const RLIMIT: u32 = of::<libc::rlimit>();
    pub const SIGINFO: u32 = of::<libc::siginfo_t>();
    pub const STATFS: u32 = of::<libc::statfs>();
    pub const STATX: u32 = of::<libc::statx>();
    pub const EPOLL_EVENT: u32 = of::<libc::epoll_event>();
    pub const POLLFD: u32 = of::<libc::pollfd>();
    pub const FDS2: u32 = 2 * of::<libc::c_int>();
    pub const INT: u32 = of::<libc::c_int>();
    pub const SOCKLEN: u32 = of::<libc::socklen_t>();
    pub const ID: u32 = of::<libc::uid_t>();
    pub const OFF: u32 = of::<libc::off_t>();
    pub const FLOCK: u32 = of::<libc::flock>();
    /// `struct f_owner_ex { int type; pid_t pid; }` (not in the `libc` crate).
    pub const F_OWNER_EX: u32 = 2 * of::<libc::c_int>();
    pub const WINSIZE: u32 = of::<libc::winsize>();
    /// The kernel's `struct termios` (TCGETS, TCSETS): `termios2` without the two speeds
    /// at its end. glibc's `struct termios` (60 bytes) is larger: copying that much back
    /// overwrites the caller's stack.
    pub const KTERMIOS: u32 = std::mem::offset_of!(libc::termios2, c_ispeed) as u32;
    /// `fd_set`'s timeout in select (a `timeval`) and ppoll/pselect6 (a `timespec`).
    pub const TIMEVAL: u32 = of::<libc::timeval>();
    pub const TIMESPEC: u32 = of::<libc::timespec>();
    /// A task's name (`TASK_COMM_LEN`), as PR_SET_NAME and PR_GET_NAME pass it.
    pub const TASK_COMM: u32 = 16;
    /// `u64` hints of F_GET_RW_HINT and friends.
    pub const U64: u32 = of::<u64>();
}
use size::*;

/// `"read"` from `"SYS_read"`.
const fn call_name(sys: &'static str) -> &'static str {
    let (_, name) = sys.as_bytes().split_at(4);
    match std::str::from_utf8(name) {
        Ok(n) => n,
        Err(_) => panic!("a call's name is ASCII"),
    }
}

/// One entry of [`CALLS`]: `call!(SYS_name, Class, [args], "why")`, its number taken
/// from the `libc` crate, or `call!(NR name, ...)` for a call the crate does not know
/// yet.
macro_rules! call {
    ($sys:ident, $class:ident, [$($arg:expr),*], $why:literal) => {
        Entry {
            nr: libc::$sys as u64,
            name: call_name(stringify!($sys)),
            class: Class::$class,
            args: &[$($arg),*],
            why: $why,
        }
    };
    ($nr:literal $name:ident, $class:ident, [$($arg:expr),*], $why:literal) => {
        Entry {
            nr: $nr,
            name: stringify!($name),
            class: Class::$class,
            args: &[$($arg),*],
            why: $why,
        }
    };
}

/// Every x86-64 system call, by number: what happens to it away from home, how its
/// arguments are laid out when it is forwarded, and why. A number missing here is one
/// the kernel does not use (refused with `ENOSYS`, as natively). The seccomp filter, the
/// remote end and the deputy all read this table and nothing else; the test
/// `numbers_and_names_are_the_kernels` checks it against the kernel's headers.
#[rustfmt::skip]
pub const CALLS: &[Entry] = &[
    call!(SYS_read, Forward, [Val, Out(Of(2), RetBytes), Val], "descriptors are the home process's"),
    call!(SYS_write, Forward, [Val, In(Of(2)), Val], "descriptors are the home process's"),
    call!(SYS_open, Forward, [Str, Val, Val], "paths name the home node's files"),
    call!(SYS_close, Forward, [Val], "descriptors are the home process's"),
    call!(SYS_stat, Forward, [Str, Out(Fixed(STAT), Whole)], "paths name the home node's files"),
    call!(SYS_fstat, Forward, [Val, Out(Fixed(STAT), Whole)], "descriptors are the home process's"),
    call!(SYS_lstat, Forward, [Str, Out(Fixed(STAT), Whole)], "paths name the home node's files"),
    call!(SYS_poll, Forward, [InOut(Items(1, POLLFD)), Val, Val], "waits on home descriptors"),
    call!(SYS_lseek, Forward, [Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_mmap, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_mprotect, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_munmap, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_brk, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_rt_sigaction, Native, [], "signal state is the process's own; signals sent at home are relayed to it"),
    call!(SYS_rt_sigprocmask, Native, [], "signal state is the process's own; signals sent at home are relayed to it"),
    call!(SYS_rt_sigreturn, Native, [], "signal state is the process's own; signals sent at home are relayed to it"),
    call!(SYS_ioctl, Forward, [Val, Val, Val], "devices are home's; requests as ioctl_arg lays them out, others go home"),
    call!(SYS_pread64, Forward, [Val, Out(Of(2), RetBytes), Val, Val], "descriptors are the home process's"),
    call!(SYS_pwrite64, Forward, [Val, In(Of(2)), Val, Val], "descriptors are the home process's"),
    call!(SYS_readv, Forward, [Val, IovOut(2), Val], "descriptors are the home process's"),
    call!(SYS_writev, Forward, [Val, IovIn(2), Val], "descriptors are the home process's"),
    call!(SYS_access, Forward, [Str, Val], "paths name the home node's files"),
    call!(SYS_pipe, Forward, [Out(Fixed(FDS2), Whole)], "makes or uses a descriptor of the home process"),
    call!(SYS_select, Forward, [Val, InOut(FdSet(0)), InOut(FdSet(0)), InOut(FdSet(0)), InOut(Fixed(TIMEVAL))], "waits on home descriptors"),
    call!(SYS_sched_yield, Native, [], "scheduling of the process on the CPUs it runs on"),
    call!(SYS_mremap, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_msync, Home, [], "works on file mappings, which are home's files"),
    call!(SYS_mincore, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_madvise, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_shmget, Home, [], "System V IPC objects live at home"),
    call!(SYS_shmat, Home, [], "System V IPC objects live at home"),
    call!(SYS_shmctl, Home, [], "System V IPC objects live at home"),
    call!(SYS_dup, Forward, [Val], "descriptors are the home process's"),
    call!(SYS_dup2, Forward, [Val, Val], "descriptors are the home process's"),
    call!(SYS_pause, Native, [], "signal state is the process's own; signals sent at home are relayed to it"),
    call!(SYS_nanosleep, Native, [], "sleeping needs no home; the clocks of the nodes agree"),
    call!(SYS_getitimer, Native, [], "an interval timer signals the process where it runs"),
    call!(SYS_alarm, Native, [], "an interval timer signals the process where it runs"),
    call!(SYS_setitimer, Native, [], "an interval timer signals the process where it runs"),
    call!(SYS_getpid, Forward, [], "its pid, parent, group and session are at home"),
    call!(SYS_sendfile, Forward, [Val, Val, InOut(Fixed(OFF)), Val], "moves bytes between home descriptors"),
    call!(SYS_socket, Forward, [Val, Val, Val], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_connect, Forward, [Val, In(Of(2)), Val], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_accept, Forward, [Val, Out(PtrU32(2), Whole), InOut(Fixed(SOCKLEN))], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_sendto, Forward, [Val, In(Of(2)), Val, Val, In(Of(5)), Val], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_recvfrom, Forward, [Val, Out(Of(2), RetBytes), Val, Val, Out(PtrU32(5), Whole), InOut(Fixed(SOCKLEN))], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_sendmsg, Home, [], "may carry descriptors and credentials: not forwarded yet"),
    call!(SYS_recvmsg, Home, [], "may carry descriptors and credentials: not forwarded yet"),
    call!(SYS_shutdown, Forward, [Val, Val], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_bind, Forward, [Val, In(Of(2)), Val], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_listen, Forward, [Val, Val], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_getsockname, Forward, [Val, Out(PtrU32(2), Whole), InOut(Fixed(SOCKLEN))], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_getpeername, Forward, [Val, Out(PtrU32(2), Whole), InOut(Fixed(SOCKLEN))], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_socketpair, Forward, [Val, Val, Val, Out(Fixed(FDS2), Whole)], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_setsockopt, Forward, [Val, Val, Val, In(Of(4)), Val], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_getsockopt, Forward, [Val, Val, Val, Out(PtrU32(4), Whole), InOut(Fixed(SOCKLEN))], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_clone, Home, [], "a new process is made at home, where its pids are"),
    call!(SYS_fork, Home, [], "a new process is made at home, where its pids are"),
    call!(SYS_vfork, Home, [], "a new process is made at home, where its pids are"),
    call!(SYS_execve, Home, [], "a new program starts at home"),
    call!(SYS_exit, Exit, [], "the process ends; its deputy ends the same way at home"),
    call!(SYS_wait4, Forward, [Val, Out(Fixed(INT), Whole), Val, Out(Fixed(RUSAGE), Whole)], "its children live at home"),
    call!(SYS_kill, Forward, [Val, Val], "pids name home processes"),
    call!(SYS_uname, Forward, [Out(Fixed(UTSNAME), Whole)], "it believes it runs on its home node"),
    call!(SYS_semget, Home, [], "System V IPC objects live at home"),
    call!(SYS_semop, Home, [], "System V IPC objects live at home"),
    call!(SYS_semctl, Home, [], "System V IPC objects live at home"),
    call!(SYS_shmdt, Home, [], "System V IPC objects live at home"),
    call!(SYS_msgget, Home, [], "System V IPC objects live at home"),
    call!(SYS_msgsnd, Home, [], "System V IPC objects live at home"),
    call!(SYS_msgrcv, Home, [], "System V IPC objects live at home"),
    call!(SYS_msgctl, Home, [], "System V IPC objects live at home"),
    call!(SYS_fcntl, Forward, [Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_flock, Forward, [Val, Val], "descriptors are the home process's"),
    call!(SYS_fsync, Forward, [Val], "descriptors are the home process's"),
    call!(SYS_fdatasync, Forward, [Val], "descriptors are the home process's"),
    call!(SYS_truncate, Forward, [Str, Val], "paths name the home node's files"),
    call!(SYS_ftruncate, Forward, [Val, Val], "descriptors are the home process's"),
    call!(SYS_getdents, Forward, [Val, Out(Of(2), RetBytes), Val], "descriptors are the home process's"),
    call!(SYS_getcwd, Forward, [Out(Of(1), RetBytes), Val], "paths name the home node's files"),
    call!(SYS_chdir, Forward, [Str], "paths name the home node's files"),
    call!(SYS_fchdir, Forward, [Val], "descriptors are the home process's"),
    call!(SYS_rename, Forward, [Str, Str], "paths name the home node's files"),
    call!(SYS_mkdir, Forward, [Str, Val], "paths name the home node's files"),
    call!(SYS_rmdir, Forward, [Str], "paths name the home node's files"),
    call!(SYS_creat, Forward, [Str, Val], "paths name the home node's files"),
    call!(SYS_link, Forward, [Str, Str], "paths name the home node's files"),
    call!(SYS_unlink, Forward, [Str], "paths name the home node's files"),
    call!(SYS_symlink, Forward, [Str, Str], "paths name the home node's files"),
    call!(SYS_readlink, Forward, [Str, Out(Of(2), RetBytes), Val], "paths name the home node's files"),
    call!(SYS_chmod, Forward, [Str, Val], "paths name the home node's files"),
    call!(SYS_fchmod, Forward, [Val, Val], "descriptors are the home process's"),
    call!(SYS_chown, Forward, [Str, Val, Val], "paths name the home node's files"),
    call!(SYS_fchown, Forward, [Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_lchown, Forward, [Str, Val, Val], "paths name the home node's files"),
    call!(SYS_umask, Forward, [Val], "attributes the home process keeps for it"),
    call!(SYS_gettimeofday, Native, [], "the clocks of the nodes agree (as the vDSO reads them anyway)"),
    call!(SYS_getrlimit, Forward, [Val, Out(Fixed(RLIMIT), Whole)], "attributes the home process keeps for it"),
    call!(SYS_getrusage, Forward, [Val, Out(Fixed(RUSAGE), Whole)], "home accounts its time and its children"),
    call!(SYS_sysinfo, Forward, [Out(Fixed(SYSINFO), Whole)], "it believes it runs on its home node"),
    call!(SYS_times, Forward, [Out(Fixed(TMS), Whole)], "home accounts its time and its children"),
    call!(SYS_ptrace, Home, [], "works on other processes, which are at home"),
    call!(SYS_getuid, Forward, [], "its credentials are the home process's"),
    call!(SYS_syslog, Home, [], "system administration of the home node"),
    call!(SYS_getgid, Forward, [], "its credentials are the home process's"),
    call!(SYS_setuid, Forward, [Val], "its credentials are the home process's"),
    call!(SYS_setgid, Forward, [Val], "its credentials are the home process's"),
    call!(SYS_geteuid, Forward, [], "its credentials are the home process's"),
    call!(SYS_getegid, Forward, [], "its credentials are the home process's"),
    call!(SYS_setpgid, Forward, [Val, Val], "its pid, parent, group and session are at home"),
    call!(SYS_getppid, Forward, [], "its pid, parent, group and session are at home"),
    call!(SYS_getpgrp, Forward, [], "its pid, parent, group and session are at home"),
    call!(SYS_setsid, Forward, [], "its pid, parent, group and session are at home"),
    call!(SYS_setreuid, Forward, [Val, Val], "its credentials are the home process's"),
    call!(SYS_setregid, Forward, [Val, Val], "its credentials are the home process's"),
    call!(SYS_getgroups, Forward, [Val, Out(Items(0, ID), RetItems(ID))], "its credentials are the home process's"),
    call!(SYS_setgroups, Forward, [Val, In(Items(0, ID))], "its credentials are the home process's"),
    call!(SYS_setresuid, Forward, [Val, Val, Val], "its credentials are the home process's"),
    call!(SYS_getresuid, Forward, [Out(Fixed(ID), Whole), Out(Fixed(ID), Whole), Out(Fixed(ID), Whole)], "its credentials are the home process's"),
    call!(SYS_setresgid, Forward, [Val, Val, Val], "its credentials are the home process's"),
    call!(SYS_getresgid, Forward, [Out(Fixed(ID), Whole), Out(Fixed(ID), Whole), Out(Fixed(ID), Whole)], "its credentials are the home process's"),
    call!(SYS_getpgid, Forward, [Val], "its pid, parent, group and session are at home"),
    call!(SYS_setfsuid, Forward, [Val], "its credentials are the home process's"),
    call!(SYS_setfsgid, Forward, [Val], "its credentials are the home process's"),
    call!(SYS_getsid, Forward, [Val], "its pid, parent, group and session are at home"),
    call!(SYS_capget, Home, [], "security state of the home process"),
    call!(SYS_capset, Home, [], "security state of the home process"),
    call!(SYS_rt_sigpending, Native, [], "signal state is the process's own; signals sent at home are relayed to it"),
    call!(SYS_rt_sigtimedwait, Native, [], "signal state is the process's own; signals sent at home are relayed to it"),
    call!(SYS_rt_sigqueueinfo, Forward, [Val, Val, In(Fixed(SIGINFO))], "pids name home processes"),
    call!(SYS_rt_sigsuspend, Native, [], "signal state is the process's own; signals sent at home are relayed to it"),
    call!(SYS_sigaltstack, Native, [], "signal state is the process's own; signals sent at home are relayed to it"),
    call!(SYS_utime, Forward, [Str, In(Fixed(UTIMBUF))], "paths name the home node's files"),
    call!(SYS_mknod, Forward, [Str, Val, Val], "paths name the home node's files"),
    call!(SYS_uselib, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_personality, Native, [], "the execution domain of the process where it runs"),
    call!(SYS_ustat, Home, [], "system administration of the home node"),
    call!(SYS_statfs, Forward, [Str, Out(Fixed(STATFS), Whole)], "paths name the home node's files"),
    call!(SYS_fstatfs, Forward, [Val, Out(Fixed(STATFS), Whole)], "descriptors are the home process's"),
    call!(SYS_sysfs, Home, [], "system administration of the home node"),
    call!(SYS_getpriority, Forward, [Val, Val], "attributes the home process keeps for it"),
    call!(SYS_setpriority, Forward, [Val, Val, Val], "attributes the home process keeps for it"),
    call!(SYS_sched_setparam, Home, [], "may need privileges only home grants"),
    call!(SYS_sched_getparam, Native, [], "scheduling of the process on the CPUs it runs on"),
    call!(SYS_sched_setscheduler, Home, [], "may need privileges only home grants"),
    call!(SYS_sched_getscheduler, Native, [], "scheduling of the process on the CPUs it runs on"),
    call!(SYS_sched_get_priority_max, Native, [], "scheduling of the process on the CPUs it runs on"),
    call!(SYS_sched_get_priority_min, Native, [], "scheduling of the process on the CPUs it runs on"),
    call!(SYS_sched_rr_get_interval, Native, [], "scheduling of the process on the CPUs it runs on"),
    call!(SYS_mlock, Native, [], "locks the process's own memory here"),
    call!(SYS_munlock, Native, [], "locks the process's own memory here"),
    call!(SYS_mlockall, Native, [], "locks the process's own memory here"),
    call!(SYS_munlockall, Native, [], "locks the process's own memory here"),
    call!(SYS_vhangup, Home, [], "system administration of the home node"),
    call!(SYS_modify_ldt, Home, [], "system administration of the home node"),
    call!(SYS_pivot_root, Home, [], "changes or reads the home node's mounts"),
    call!(SYS__sysctl, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    // Its options are sorted by `prctl_arg`: those about the process's place at home
    // are forwarded, the rest run here.
    call!(SYS_prctl, Forward, [Val, Val, Val, Val, Val], "options about its place at home forwarded, the rest native (prctl_arg)"),
    call!(SYS_arch_prctl, Native, [], "per-thread state the kernel keeps where the thread runs"),
    call!(SYS_adjtimex, Home, [], "system administration of the home node"),
    call!(SYS_setrlimit, Forward, [Val, In(Fixed(RLIMIT))], "attributes the home process keeps for it"),
    call!(SYS_chroot, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_sync, Forward, [], "the home node's files are where its writes went"),
    call!(SYS_acct, Home, [], "system administration of the home node"),
    call!(SYS_settimeofday, Home, [], "system administration of the home node"),
    call!(SYS_mount, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_umount2, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_swapon, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_swapoff, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_reboot, Home, [], "system administration of the home node"),
    call!(SYS_sethostname, Home, [], "system administration of the home node"),
    call!(SYS_setdomainname, Home, [], "system administration of the home node"),
    call!(SYS_iopl, Home, [], "system administration of the home node"),
    call!(SYS_ioperm, Home, [], "system administration of the home node"),
    call!(174 create_module, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_init_module, Home, [], "system administration of the home node"),
    call!(SYS_delete_module, Home, [], "system administration of the home node"),
    call!(177 get_kernel_syms, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(178 query_module, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_quotactl, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_nfsservctl, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_getpmsg, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_putpmsg, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_afs_syscall, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_tuxcall, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_security, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_gettid, Forward, [], "its pid, parent, group and session are at home"),
    call!(SYS_readahead, Home, [], "not forwarded yet"),
    call!(SYS_setxattr, Forward, [Str, Str, In(Of(3)), Val, Val], "paths name the home node's files"),
    call!(SYS_lsetxattr, Forward, [Str, Str, In(Of(3)), Val, Val], "paths name the home node's files"),
    call!(SYS_fsetxattr, Forward, [Val, Str, In(Of(3)), Val, Val], "descriptors are the home process's"),
    call!(SYS_getxattr, Forward, [Str, Str, Out(Of(3), RetBytes), Val], "paths name the home node's files"),
    call!(SYS_lgetxattr, Forward, [Str, Str, Out(Of(3), RetBytes), Val], "paths name the home node's files"),
    call!(SYS_fgetxattr, Forward, [Val, Str, Out(Of(3), RetBytes), Val], "descriptors are the home process's"),
    call!(SYS_listxattr, Forward, [Str, Out(Of(2), RetBytes), Val], "paths name the home node's files"),
    call!(SYS_llistxattr, Forward, [Str, Out(Of(2), RetBytes), Val], "paths name the home node's files"),
    call!(SYS_flistxattr, Forward, [Val, Out(Of(2), RetBytes), Val], "descriptors are the home process's"),
    call!(SYS_removexattr, Forward, [Str, Str], "paths name the home node's files"),
    call!(SYS_lremovexattr, Forward, [Str, Str], "paths name the home node's files"),
    call!(SYS_fremovexattr, Forward, [Val, Str], "descriptors are the home process's"),
    call!(SYS_tkill, Forward, [Val, Val], "pids name home processes"),
    call!(SYS_time, Native, [], "the clocks of the nodes agree (as the vDSO reads them anyway)"),
    call!(SYS_futex, Native, [], "private futexes live in the process's own memory"),
    call!(SYS_sched_setaffinity, Native, [], "scheduling of the process on the CPUs it runs on"),
    call!(SYS_sched_getaffinity, Native, [], "scheduling of the process on the CPUs it runs on"),
    call!(SYS_set_thread_area, Home, [], "32-bit thread areas: not forwarded"),
    call!(SYS_io_setup, Home, [], "asynchronous I/O on home descriptors: not forwarded yet"),
    call!(SYS_io_destroy, Home, [], "asynchronous I/O on home descriptors: not forwarded yet"),
    call!(SYS_io_getevents, Home, [], "asynchronous I/O on home descriptors: not forwarded yet"),
    call!(SYS_io_submit, Home, [], "asynchronous I/O on home descriptors: not forwarded yet"),
    call!(SYS_io_cancel, Home, [], "asynchronous I/O on home descriptors: not forwarded yet"),
    call!(SYS_get_thread_area, Home, [], "32-bit thread areas: not forwarded"),
    call!(SYS_lookup_dcookie, Home, [], "system administration of the home node"),
    call!(SYS_epoll_create, Forward, [Val], "waits on home descriptors"),
    call!(SYS_epoll_ctl_old, Home, [], "never implemented on x86-64: as at home"),
    call!(SYS_epoll_wait_old, Home, [], "never implemented on x86-64: as at home"),
    call!(SYS_remap_file_pages, Home, [], "works on file mappings, which are home's files"),
    call!(SYS_getdents64, Forward, [Val, Out(Of(2), RetBytes), Val], "descriptors are the home process's"),
    call!(SYS_set_tid_address, Native, [], "per-thread state the kernel keeps where the thread runs"),
    call!(SYS_restart_syscall, Native, [], "restarts a native call that a signal interrupted"),
    call!(SYS_semtimedop, Home, [], "System V IPC objects live at home"),
    call!(SYS_fadvise64, Forward, [Val, Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_timer_create, Native, [], "a POSIX timer signals the process where it runs"),
    call!(SYS_timer_settime, Native, [], "a POSIX timer signals the process where it runs"),
    call!(SYS_timer_gettime, Native, [], "a POSIX timer signals the process where it runs"),
    call!(SYS_timer_getoverrun, Native, [], "a POSIX timer signals the process where it runs"),
    call!(SYS_timer_delete, Native, [], "a POSIX timer signals the process where it runs"),
    call!(SYS_clock_settime, Home, [], "system administration of the home node"),
    call!(SYS_clock_gettime, Native, [], "the clocks of the nodes agree (as the vDSO reads them anyway)"),
    call!(SYS_clock_getres, Native, [], "the clocks of the nodes agree (as the vDSO reads them anyway)"),
    call!(SYS_clock_nanosleep, Native, [], "sleeping needs no home; the clocks of the nodes agree"),
    call!(SYS_exit_group, Exit, [], "the process ends; its deputy ends the same way at home"),
    call!(SYS_epoll_wait, Forward, [Val, Out(Items(2, EPOLL_EVENT), RetItems(EPOLL_EVENT)), Val, Val], "waits on home descriptors"),
    call!(SYS_epoll_ctl, Forward, [Val, Val, Val, In(Fixed(EPOLL_EVENT))], "waits on home descriptors"),
    call!(SYS_tgkill, Forward, [Val, Val, Val], "pids name home processes"),
    call!(SYS_utimes, Forward, [Str, In(Fixed(TIMEVAL2))], "paths name the home node's files"),
    call!(SYS_vserver, Refuse, [], "no kernel implements it: ENOSYS, as natively"),
    call!(SYS_mbind, Home, [], "NUMA policy: not forwarded yet"),
    call!(SYS_set_mempolicy, Home, [], "NUMA policy: not forwarded yet"),
    call!(SYS_get_mempolicy, Home, [], "NUMA policy: not forwarded yet"),
    call!(SYS_mq_open, Home, [], "message queues live at home"),
    call!(SYS_mq_unlink, Home, [], "message queues live at home"),
    call!(SYS_mq_timedsend, Home, [], "message queues live at home"),
    call!(SYS_mq_timedreceive, Home, [], "message queues live at home"),
    call!(SYS_mq_notify, Home, [], "message queues live at home"),
    call!(SYS_mq_getsetattr, Home, [], "message queues live at home"),
    call!(SYS_kexec_load, Home, [], "system administration of the home node"),
    call!(SYS_waitid, Forward, [Val, Val, Out(Fixed(SIGINFO), Whole), Val, Out(Fixed(RUSAGE), Whole)], "its children live at home"),
    call!(SYS_add_key, Home, [], "keyrings are the home node's"),
    call!(SYS_request_key, Home, [], "keyrings are the home node's"),
    call!(SYS_keyctl, Home, [], "keyrings are the home node's"),
    call!(SYS_ioprio_set, Forward, [Val, Val, Val], "attributes the home process keeps for it"),
    call!(SYS_ioprio_get, Forward, [Val, Val], "attributes the home process keeps for it"),
    call!(SYS_inotify_init, Forward, [], "makes or uses a descriptor of the home process"),
    call!(SYS_inotify_add_watch, Forward, [Val, Str, Val], "makes or uses a descriptor of the home process"),
    call!(SYS_inotify_rm_watch, Forward, [Val, Val], "makes or uses a descriptor of the home process"),
    call!(SYS_migrate_pages, Home, [], "NUMA policy: not forwarded yet"),
    call!(SYS_openat, Forward, [Val, Str, Val, Val], "paths name the home node's files"),
    call!(SYS_mkdirat, Forward, [Val, Str, Val], "paths name the home node's files"),
    call!(SYS_mknodat, Forward, [Val, Str, Val, Val], "paths name the home node's files"),
    call!(SYS_fchownat, Forward, [Val, Str, Val, Val, Val], "paths name the home node's files"),
    call!(SYS_futimesat, Forward, [Val, Str, In(Fixed(TIMEVAL2))], "paths name the home node's files"),
    call!(SYS_newfstatat, Forward, [Val, Str, Out(Fixed(STAT), Whole), Val], "paths name the home node's files"),
    call!(SYS_unlinkat, Forward, [Val, Str, Val], "paths name the home node's files"),
    call!(SYS_renameat, Forward, [Val, Str, Val, Str], "paths name the home node's files"),
    call!(SYS_linkat, Forward, [Val, Str, Val, Str, Val], "paths name the home node's files"),
    call!(SYS_symlinkat, Forward, [Str, Val, Str], "paths name the home node's files"),
    call!(SYS_readlinkat, Forward, [Val, Str, Out(Of(3), RetBytes), Val], "paths name the home node's files"),
    call!(SYS_fchmodat, Forward, [Val, Str, Val], "paths name the home node's files"),
    call!(SYS_faccessat, Forward, [Val, Str, Val], "paths name the home node's files"),
    call!(SYS_pselect6, Forward, [Val, InOut(FdSet(0)), InOut(FdSet(0)), InOut(FdSet(0)), InOut(Fixed(TIMESPEC)), Null], "waits on home descriptors"),
    call!(SYS_ppoll, Forward, [InOut(Items(1, POLLFD)), Val, InOut(Fixed(TIMESPEC)), Null, Val], "waits on home descriptors"),
    call!(SYS_unshare, Home, [], "namespaces are the home node's"),
    call!(SYS_set_robust_list, Native, [], "per-thread state the kernel keeps where the thread runs"),
    call!(SYS_get_robust_list, Native, [], "per-thread state the kernel keeps where the thread runs"),
    call!(SYS_splice, Forward, [Val, InOut(Fixed(OFF)), Val, InOut(Fixed(OFF)), Val, Val], "moves bytes between home descriptors"),
    call!(SYS_tee, Forward, [Val, Val, Val, Val], "moves bytes between home descriptors"),
    call!(SYS_sync_file_range, Forward, [Val, Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_vmsplice, Home, [], "not forwarded yet"),
    call!(SYS_move_pages, Home, [], "NUMA policy: not forwarded yet"),
    call!(SYS_utimensat, Forward, [Val, Str, In(Fixed(TIMESPEC2)), Val], "paths name the home node's files"),
    call!(SYS_epoll_pwait, Forward, [Val, Out(Items(2, EPOLL_EVENT), RetItems(EPOLL_EVENT)), Val, Val, Null, Val], "waits on home descriptors"),
    call!(SYS_signalfd, Home, [], "a signalfd is made at home (see sigfd)"),
    call!(SYS_timerfd_create, Forward, [Val, Val], "makes or uses a descriptor of the home process"),
    call!(SYS_eventfd, Forward, [Val], "makes or uses a descriptor of the home process"),
    call!(SYS_fallocate, Forward, [Val, Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_timerfd_settime, Forward, [Val, Val, In(Fixed(ITIMERSPEC)), Out(Fixed(ITIMERSPEC), Whole)], "makes or uses a descriptor of the home process"),
    call!(SYS_timerfd_gettime, Forward, [Val, Out(Fixed(ITIMERSPEC), Whole)], "makes or uses a descriptor of the home process"),
    call!(SYS_accept4, Forward, [Val, Out(PtrU32(2), Whole), InOut(Fixed(SOCKLEN)), Val], "sockets are the home node's: its addresses, its peers"),
    call!(SYS_signalfd4, Home, [], "a signalfd is made at home (see sigfd)"),
    call!(SYS_eventfd2, Forward, [Val, Val], "makes or uses a descriptor of the home process"),
    call!(SYS_epoll_create1, Forward, [Val], "waits on home descriptors"),
    call!(SYS_dup3, Forward, [Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_pipe2, Forward, [Out(Fixed(FDS2), Whole), Val], "makes or uses a descriptor of the home process"),
    call!(SYS_inotify_init1, Forward, [Val], "makes or uses a descriptor of the home process"),
    call!(SYS_preadv, Forward, [Val, IovOut(2), Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_pwritev, Forward, [Val, IovIn(2), Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_rt_tgsigqueueinfo, Forward, [Val, Val, Val, In(Fixed(SIGINFO))], "pids name home processes"),
    call!(SYS_perf_event_open, Home, [], "not forwarded yet"),
    call!(SYS_recvmmsg, Home, [], "may carry descriptors and credentials: not forwarded yet"),
    call!(SYS_fanotify_init, Home, [], "not forwarded yet"),
    call!(SYS_fanotify_mark, Home, [], "not forwarded yet"),
    call!(SYS_prlimit64, Forward, [Val, Val, In(Fixed(RLIMIT)), Out(Fixed(RLIMIT), Whole)], "attributes the home process keeps for it"),
    call!(SYS_name_to_handle_at, Home, [], "not forwarded yet"),
    call!(SYS_open_by_handle_at, Home, [], "not forwarded yet"),
    call!(SYS_clock_adjtime, Home, [], "system administration of the home node"),
    call!(SYS_syncfs, Forward, [Val], "descriptors are the home process's"),
    call!(SYS_sendmmsg, Home, [], "may carry descriptors and credentials: not forwarded yet"),
    call!(SYS_setns, Home, [], "namespaces are the home node's"),
    call!(SYS_getcpu, Native, [], "the CPU it runs on is here"),
    call!(SYS_process_vm_readv, Home, [], "works on other processes, which are at home"),
    call!(SYS_process_vm_writev, Home, [], "works on other processes, which are at home"),
    call!(SYS_kcmp, Home, [], "works on other processes, which are at home"),
    call!(SYS_finit_module, Home, [], "system administration of the home node"),
    call!(SYS_sched_setattr, Home, [], "may need privileges only home grants"),
    call!(SYS_sched_getattr, Native, [], "scheduling of the process on the CPUs it runs on"),
    call!(SYS_renameat2, Forward, [Val, Str, Val, Str, Val], "paths name the home node's files"),
    call!(SYS_seccomp, Home, [], "security state of the home process"),
    call!(SYS_getrandom, Native, [], "random bytes are as good here"),
    call!(SYS_memfd_create, Forward, [Str, Val], "makes or uses a descriptor of the home process"),
    call!(SYS_kexec_file_load, Home, [], "system administration of the home node"),
    call!(SYS_bpf, Home, [], "not forwarded yet"),
    call!(SYS_execveat, Home, [], "a new program starts at home"),
    call!(SYS_userfaultfd, Home, [], "not forwarded yet"),
    call!(SYS_membarrier, Native, [], "orders the process's own memory accesses"),
    call!(SYS_mlock2, Native, [], "locks the process's own memory here"),
    call!(SYS_copy_file_range, Forward, [Val, InOut(Fixed(OFF)), Val, InOut(Fixed(OFF)), Val, Val], "moves bytes between home descriptors"),
    call!(SYS_preadv2, Forward, [Val, IovOut(2), Val, Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_pwritev2, Forward, [Val, IovIn(2), Val, Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_pkey_mprotect, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_pkey_alloc, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_pkey_free, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(SYS_statx, Forward, [Val, Str, Val, Val, Out(Fixed(STATX), Whole)], "paths name the home node's files"),
    call!(333 io_pgetevents, Home, [], "asynchronous I/O on home descriptors: not forwarded yet"),
    call!(SYS_rseq, Native, [], "per-thread state the kernel keeps where the thread runs"),
    call!(SYS_pidfd_send_signal, Home, [], "works on other processes, which are at home"),
    call!(SYS_io_uring_setup, Home, [], "asynchronous I/O on home descriptors: not forwarded yet"),
    call!(SYS_io_uring_enter, Home, [], "asynchronous I/O on home descriptors: not forwarded yet"),
    call!(SYS_io_uring_register, Home, [], "asynchronous I/O on home descriptors: not forwarded yet"),
    call!(SYS_open_tree, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_move_mount, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_fsopen, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_fsconfig, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_fsmount, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_fspick, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_pidfd_open, Home, [], "works on other processes, which are at home"),
    call!(SYS_clone3, Home, [], "a new process is made at home, where its pids are"),
    call!(SYS_close_range, Forward, [Val, Val, Val], "descriptors are the home process's"),
    call!(SYS_openat2, Forward, [Val, Str, In(Of(3)), Val], "paths name the home node's files"),
    call!(SYS_pidfd_getfd, Home, [], "works on other processes, which are at home"),
    call!(SYS_faccessat2, Forward, [Val, Str, Val, Val], "paths name the home node's files"),
    call!(SYS_process_madvise, Home, [], "works on other processes, which are at home"),
    call!(SYS_epoll_pwait2, Home, [], "waits on home descriptors: not forwarded yet"),
    call!(SYS_mount_setattr, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_quotactl_fd, Home, [], "changes or reads the home node's mounts"),
    call!(SYS_landlock_create_ruleset, Home, [], "security state of the home process"),
    call!(SYS_landlock_add_rule, Home, [], "security state of the home process"),
    call!(SYS_landlock_restrict_self, Home, [], "security state of the home process"),
    call!(SYS_memfd_secret, Home, [], "not forwarded yet"),
    call!(SYS_process_mrelease, Home, [], "works on other processes, which are at home"),
    call!(SYS_futex_waitv, Native, [], "private futexes live in the process's own memory"),
    call!(SYS_set_mempolicy_home_node, Home, [], "NUMA policy: not forwarded yet"),
    call!(451 cachestat, Home, [], "not forwarded yet"),
    call!(SYS_fchmodat2, Forward, [Val, Str, Val, Val], "paths name the home node's files"),
    call!(453 map_shadow_stack, Native, [], "the process's own memory, which is here"),
    call!(454 futex_wake, Native, [], "private futexes live in the process's own memory"),
    call!(455 futex_wait, Native, [], "private futexes live in the process's own memory"),
    call!(456 futex_requeue, Native, [], "private futexes live in the process's own memory"),
    call!(457 statmount, Home, [], "changes or reads the home node's mounts"),
    call!(458 listmount, Home, [], "changes or reads the home node's mounts"),
    call!(459 lsm_get_self_attr, Home, [], "security state of the home process"),
    call!(460 lsm_set_self_attr, Home, [], "security state of the home process"),
    call!(461 lsm_list_modules, Home, [], "security state of the home process"),
    call!(SYS_mseal, Native, [], "the process's own memory, which is here (file mappings: see plan)"),
    call!(463 setxattrat, Home, [], "paths of the home node's files: not forwarded yet"),
    call!(464 getxattrat, Home, [], "paths of the home node's files: not forwarded yet"),
    call!(465 listxattrat, Home, [], "paths of the home node's files: not forwarded yet"),
    call!(466 removexattrat, Home, [], "paths of the home node's files: not forwarded yet"),
    call!(467 open_tree_attr, Home, [], "changes or reads the home node's mounts"),
    call!(468 file_getattr, Home, [], "paths of the home node's files: not forwarded yet"),
    call!(469 file_setattr, Home, [], "paths of the home node's files: not forwarded yet"),
];

/// The whole table, by number (unused numbers included, refused).
pub fn table() -> &'static [Entry] {
    static TABLE: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let len = CALLS.iter().map(|e| e.nr + 1).max().unwrap_or(0);
        let mut t: Vec<Entry> = (0..len).map(unused).collect();
        for e in CALLS {
            t[e.nr as usize] = *e;
        }
        t
    })
}

/// The entry of a number no call has.
fn unused(nr: u64) -> Entry {
    Entry {
        nr,
        name: "",
        class: Class::Refuse,
        args: &[],
        why: "no call has this number: ENOSYS, as natively",
    }
}

/// The entry for call `nr` (numbers past the table are refused, as natively).
pub fn entry(nr: u64) -> Entry {
    table()
        .get(nr as usize)
        .copied()
        .unwrap_or_else(|| unused(nr))
}

/// The name of call `nr`, or `syscall N` for numbers without one.
pub fn name(nr: u64) -> String {
    match entry(nr).name {
        "" => format!("syscall {nr}"),
        n => n.to_string(),
    }
}

/// The memory of the process that made the call.
pub trait GuestMem {
    /// Reads `len` bytes at `addr` (fails like `EFAULT` when unmapped).
    fn read(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>>;
}

/// A forwarded call: its number, its arguments as the process passed them, and the bytes
/// its pointer arguments carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// System call number.
    pub nr: u64,
    /// Arguments as passed (pointers are the process's addresses).
    pub args: [u64; 6],
    /// One slot per non-NULL pointer argument.
    pub slots: Vec<Slot>,
    /// Of SIGTTIN and SIGTTOU, those the process blocks or ignores (a signal mask), for
    /// calls that may reach a terminal: the terminal asks that of the caller before it
    /// stops a background job, so home must block them too while the call runs.
    #[serde(default)]
    pub tty_quiet: u64,
}

/// One pointer argument of a forwarded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Which argument.
    pub arg: u8,
    /// What it carries.
    pub kind: SlotKind,
}

/// The bytes behind one pointer argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotKind {
    /// Bytes the call reads.
    In(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A buffer of `len` bytes the call writes; `items` > 0 bounds what is copied back to
    /// the returned count of items of that size, `items` = 1 to the returned bytes, 0
    /// means the whole buffer.
    Out {
        /// Buffer size.
        len: u64,
        /// Item size when the result counts items (1 for bytes), 0 for whole.
        items: u32,
    },
    /// Bytes the call reads and overwrites.
    InOut(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The buffers of an iovec array the call reads.
    IovIn(#[serde(with = "crate::bytes::list")] Vec<Vec<u8>>),
    /// The (address, length) of each buffer of an iovec array the call fills.
    IovOut(Vec<(u64, u64)>),
    /// Passed as NULL.
    Null,
}

/// The result of a forwarded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Return value (negative errno on failure).
    pub ret: i64,
    /// Bytes to write into the process: (address, bytes).
    #[serde(with = "crate::bytes::placed")]
    pub outs: Vec<(u64, Vec<u8>)>,
}

/// What to do with a trapped call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Let it run in this kernel.
    Native,
    /// Forward it to the deputy.
    Forward(Call),
    /// The process exits with this code.
    Exit(i32),
    /// Bring the process home first; the reason names the call.
    Home(String),
    /// Fail it with this errno without running it (EFAULT for a bad pointer, ENOSYS).
    Errno(i32),
}

/// Largest buffer a forwarded call carries; reads and writes beyond it are shortened
/// (a short read or write, which callers handle as natively), anything else goes home.
pub const MAX_BUFFER: u64 = 8 << 20;
/// Longest path or name string.
const MAX_STR: usize = 4096;

/// One case of a call whose meaning depends on an argument (an ioctl request, a prctl
/// option, an fcntl command): what happens to it and, when forwarded, the layout of the
/// argument that depends on it. `case!(NAME, Class, arg, "why")` takes the code from the
/// `libc` crate; `case!(NAME = CODE, ..)` names one the crate does not have.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub code: u64,
    pub name: &'static str,
    pub class: Class,
    pub arg: Arg,
    pub why: &'static str,
}

macro_rules! case {
    ($name:ident, $class:ident, $arg:expr, $why:literal) => {
        Case {
            code: libc::$name as u64,
            name: stringify!($name),
            class: Class::$class,
            arg: $arg,
            why: $why,
        }
    };
    ($name:ident = $code:literal, $class:ident, $arg:expr, $why:literal) => {
        Case {
            code: $code,
            name: stringify!($name),
            class: Class::$class,
            arg: $arg,
            why: $why,
        }
    };
}

/// The ioctl requests forwarded (the argument is the third); any other request brings
/// the process home, where its device is.
#[rustfmt::skip]
pub const IOCTLS: &[Case] = &[
    case!(TCGETS, Forward, Out(Fixed(KTERMIOS), Whole), "the terminal is home's: its settings"),
    case!(TCSETS, Forward, In(Fixed(KTERMIOS)), "the terminal is home's: its settings"),
    case!(TCSETSW, Forward, In(Fixed(KTERMIOS)), "the terminal is home's: its settings"),
    case!(TCSETSF, Forward, In(Fixed(KTERMIOS)), "the terminal is home's: its settings"),
    case!(TIOCGWINSZ, Forward, Out(Fixed(WINSIZE), Whole), "the terminal's size is home's"),
    case!(TIOCSWINSZ, Forward, In(Fixed(WINSIZE)), "the terminal's size is home's"),
    case!(FIONREAD, Forward, Out(Fixed(INT), Whole), "bytes waiting in a home descriptor"),
    case!(TIOCGPGRP, Forward, Out(Fixed(INT), Whole), "the terminal's foreground group is at home"),
    case!(TIOCGSID, Forward, Out(Fixed(INT), Whole), "the terminal's session is at home"),
    case!(TIOCSPGRP, Forward, In(Fixed(INT)), "the terminal's foreground group is at home"),
    case!(FIONBIO, Forward, In(Fixed(INT)), "a flag of a home descriptor"),
    case!(FIOASYNC, Forward, In(Fixed(INT)), "a flag of a home descriptor"),
    case!(FIONCLEX, Forward, Val, "a flag of a home descriptor"),
    case!(FIOCLEX, Forward, Val, "a flag of a home descriptor"),
    case!(TCSBRK, Forward, Val, "drains or breaks the home terminal"),
    case!(TCXONC, Forward, Val, "flow control of the home terminal"),
    case!(TCFLSH, Forward, Val, "flushes the home terminal"),
];

/// The prctl options that are not the remote kernel's business (the option is the first
/// argument, the layout the second's): what the home node's kernel answers for is
/// forwarded, a new seccomp filter brings the process home; any other option (memory,
/// timers, THP, ...) runs natively.
#[rustfmt::skip]
pub const PRCTLS: &[Case] = &[
    case!(PR_SET_PDEATHSIG, Forward, Val, "its parent is at home"),
    case!(PR_GET_PDEATHSIG, Forward, Out(Fixed(INT), Whole), "its parent is at home"),
    case!(PR_GET_DUMPABLE, Forward, Val, "the home process's, which ps and ptrace see"),
    case!(PR_SET_DUMPABLE, Forward, Val, "the home process's, which ps and ptrace see"),
    case!(PR_GET_KEEPCAPS, Forward, Val, "its credentials are the home process's"),
    case!(PR_SET_KEEPCAPS, Forward, Val, "its credentials are the home process's"),
    case!(PR_SET_CHILD_SUBREAPER, Forward, Val, "its children are at home"),
    case!(PR_GET_CHILD_SUBREAPER, Forward, Out(Fixed(INT), Whole), "its children are at home"),
    case!(PR_CAP_AMBIENT, Forward, Val, "its credentials are the home process's"),
    case!(PR_CAPBSET_READ, Forward, Val, "its credentials are the home process's"),
    case!(PR_CAPBSET_DROP, Forward, Val, "its credentials are the home process's"),
    case!(PR_GET_SECUREBITS, Forward, Val, "its credentials are the home process's"),
    case!(PR_SET_SECUREBITS, Forward, Val, "its credentials are the home process's"),
    case!(PR_GET_NO_NEW_PRIVS, Forward, Val, "the guest's own kernel would say otherwise"),
    case!(PR_SET_NO_NEW_PRIVS, Forward, Val, "the guest's own kernel would say otherwise"),
    case!(PR_SET_NAME, Forward, In(Fixed(TASK_COMM)), "the name ps shows is at home"),
    case!(PR_GET_NAME, Forward, Out(Fixed(TASK_COMM), Whole), "the name ps shows is at home"),
    case!(PR_SET_SECCOMP, Home, Val, "a filter of its own is made at home"),
];

/// The fcntl commands whose third argument is a pointer; any other command's third
/// argument is a number (all are forwarded: descriptors are the home process's).
#[rustfmt::skip]
pub const FCNTLS: &[Case] = &[
    case!(F_GETLK, Forward, InOut(Fixed(FLOCK)), "a lock of a home file"),
    case!(F_SETLK, Forward, InOut(Fixed(FLOCK)), "a lock of a home file"),
    case!(F_SETLKW, Forward, InOut(Fixed(FLOCK)), "a lock of a home file"),
    case!(F_OFD_GETLK, Forward, InOut(Fixed(FLOCK)), "a lock of a home file"),
    case!(F_OFD_SETLK, Forward, InOut(Fixed(FLOCK)), "a lock of a home file"),
    case!(F_OFD_SETLKW, Forward, InOut(Fixed(FLOCK)), "a lock of a home file"),
    case!(F_SETOWN_EX = 15, Forward, In(Fixed(F_OWNER_EX)), "the owner is a home process"),
    case!(F_GETOWN_EX = 16, Forward, Out(Fixed(F_OWNER_EX), Whole), "the owner is a home process"),
    case!(F_GET_RW_HINT = 1035, Forward, InOut(Fixed(U64)), "a hint on a home file"),
    case!(F_SET_RW_HINT = 1036, Forward, InOut(Fixed(U64)), "a hint on a home file"),
    case!(F_GET_FILE_RW_HINT = 1037, Forward, InOut(Fixed(U64)), "a hint on a home file"),
    case!(F_SET_FILE_RW_HINT = 1038, Forward, InOut(Fixed(U64)), "a hint on a home file"),
];

/// A native call that may name another process or change what home keeps, allowed in
/// the remote kernel only when its first argument is `native_when` (pid 0, the caller
/// itself; a query). Otherwise the process goes home to make it, where a pid means the
/// process it means to the caller (its own pid is its home pid) and state home shows in
/// `/proc` is changed there. `guard!(SYS_name, VALUE, "why")`.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    pub nr: u64,
    pub name: &'static str,
    pub native_when: u32,
    pub why: &'static str,
}

macro_rules! guard {
    ($sys:ident, $when:expr, $why:literal) => {
        Guard {
            nr: libc::$sys as u64,
            name: call_name(stringify!($sys)),
            native_when: $when,
            why: $why,
        }
    };
}

/// The guarded native calls (see [`Guard`]); the seccomp filter checks their first
/// argument (its low 32 bits, all the kernel reads of a pid or a personality).
#[rustfmt::skip]
pub const GUARDED: &[Guard] = &[
    guard!(SYS_sched_setaffinity, 0, "another pid names a process at home"),
    guard!(SYS_sched_getaffinity, 0, "another pid names a process at home"),
    guard!(SYS_sched_getparam, 0, "another pid names a process at home"),
    guard!(SYS_sched_getscheduler, 0, "another pid names a process at home"),
    guard!(SYS_sched_rr_get_interval, 0, "another pid names a process at home"),
    guard!(SYS_sched_getattr, 0, "another pid names a process at home"),
    guard!(SYS_get_robust_list, 0, "another pid names a process at home"),
    guard!(SYS_personality, 0xffff_ffff, "a new personality is set at home, where /proc shows it"),
];

/// The guard of call `nr`, if it has one.
pub fn guard_of(nr: u64) -> Option<&'static Guard> {
    GUARDED.iter().find(|g| g.nr == nr)
}

/// The case of `code` in `cases`.
fn case_of(cases: &[Case], code: u64) -> Option<&Case> {
    cases.iter().find(|c| c.code == code)
}

/// How the argument of ioctl request `req` is laid out, if it is forwarded.
fn ioctl_arg(req: u64) -> Option<Arg> {
    case_of(IOCTLS, req & 0xffff_ffff).map(|c| c.arg)
}

/// What happens to `prctl(option, ...)` away from home: forwarded with its second
/// argument's layout, `Err` to go home, `None` to run natively.
fn prctl_arg(option: u64) -> Option<Result<Arg, ()>> {
    // The kernel takes the option as an int.
    case_of(PRCTLS, option & 0xffff_ffff).map(|c| match c.class {
        Class::Forward => Ok(c.arg),
        _ => Err(()),
    })
}

/// The `prctl` options that do not run in the guest's kernel (see [`PRCTLS`]): the
/// seccomp filter traps these and lets the others through.
pub fn prctl_forwarded() -> Vec<u32> {
    let mut v: Vec<u32> = PRCTLS.iter().map(|c| c.code as u32).collect();
    v.sort_unstable();
    v
}

/// How the third argument of fcntl command `cmd` is laid out.
fn fcntl_arg(cmd: u64) -> Arg {
    // The kernel takes the command as an unsigned int.
    case_of(FCNTLS, cmd & 0xffff_ffff).map_or(Val, |c| c.arg)
}

/// SIGTTIN and SIGTTOU, as a signal mask: the signals a terminal stops a background job
/// with, which it sends only when the caller neither blocks nor ignores them.
pub const TTY_STOP_SIGNALS: u64 = (1 << (libc::SIGTTIN - 1)) | (1 << (libc::SIGTTOU - 1));

/// Whether call `nr` may read, write or control a terminal (the calls in which the
/// terminal stops background jobs with SIGTTIN and SIGTTOU).
pub fn may_reach_tty(nr: u64) -> bool {
    [
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_ioctl,
    ]
    .contains(&(nr as i64))
}

/// Calls whose buffer may be shortened to [`MAX_BUFFER`].
fn may_shorten(name: &str) -> bool {
    matches!(
        name,
        "read" | "write" | "pread64" | "pwrite64" | "sendto" | "recvfrom" | "getdents64"
    )
}

const EFAULT: i32 = libc::EFAULT;
const ENOSYS: i32 = libc::ENOSYS;

fn read_str(mem: &dyn GuestMem, addr: u64) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < MAX_STR {
        // Up to the end of the page, so that a string ending just before an unmapped
        // page is still read.
        let n = (4096 - (at % 4096)) as usize;
        let chunk = mem.read(at, n).map_err(|_| EFAULT)?;
        if let Some(i) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..=i]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
        // A string running past the top of the address space: no such memory.
        at = at.checked_add(n as u64).ok_or(EFAULT)?;
    }
    Err(libc::ENAMETOOLONG)
}

fn u64s(b: &[u8]) -> impl Iterator<Item = u64> + '_ {
    b.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
}

/// The argument layout of the forwarded call `e` with `args`: its entry's, with the
/// pointer argument of an ioctl, fcntl or prctl from their sub-tables; or what happens
/// to the call instead (an ioctl or prctl that is not forwarded).
fn layout(e: &Entry, args: &[u64; 6]) -> Result<Vec<Arg>, Action> {
    let mut specs: Vec<Arg> = e.args.to_vec();
    match e.name {
        "ioctl" => match ioctl_arg(args[1]) {
            Some(a) => specs[2] = a,
            None => return Err(Action::Home(format!("ioctl {:#x}", args[1]))),
        },
        "fcntl" => specs[2] = fcntl_arg(args[1]),
        "prctl" => match prctl_arg(args[0]) {
            None => return Err(Action::Native),
            Some(Err(())) => return Err(Action::Home("prctl(PR_SET_SECCOMP)".into())),
            Some(Ok(a)) => specs[1] = a,
        },
        _ => {}
    }
    Ok(specs)
}

/// Why a [`Call`] from the remote end is not one the deputy may make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unlawful {
    /// The table does not forward this call (it runs at the remote node, brings the
    /// process home, ends it, or does not exist).
    #[error("{0} is not a forwarded call")]
    NotForwarded(String),
    /// The table forwards the call, but not with these arguments (an ioctl, fcntl or
    /// prctl it does not forward).
    #[error("{0} with these arguments is not forwarded")]
    NotWithThese(String),
    /// An argument is not laid out as the table says: a pointer without its bytes, a
    /// buffer of another size than its length argument says, a string without its end.
    #[error("{name}: argument {arg} is not laid out as the table says")]
    Layout {
        /// The call.
        name: String,
        /// Which argument (0-based).
        arg: usize,
    },
}

/// Decides what happens to call `nr` with `args`, reading the bytes it passes in.
pub fn plan(nr: u64, mut args: [u64; 6], mem: &dyn GuestMem) -> Action {
    let e = entry(nr);
    match e.class {
        Class::Refuse => return Action::Errno(ENOSYS),
        Class::Exit => return Action::Exit(args[0] as i32),
        Class::Home => return Action::Home(name(nr)),
        // The filter lets these through unless they need home (mmap of a file).
        Class::Native if e.name == "mmap" && args[3] & libc::MAP_ANONYMOUS as u64 == 0 => {
            return Action::Home("mmap of a file".into())
        }
        Class::Native => {
            return match guard_of(nr) {
                Some(g) if args[0] as u32 != g.native_when => {
                    Action::Home(format!("{}({}): {}", g.name, args[0] as u32, g.why))
                }
                _ => Action::Native,
            }
        }
        Class::Forward => {}
    }
    let specs = match layout(&e, &args) {
        Ok(specs) => specs,
        Err(a) => return a,
    };
    let len_of = |l: Len, args: &[u64; 6]| -> Result<u64, i32> {
        Ok(match l {
            Of(i) => args[i],
            Fixed(n) => n as u64,
            Items(i, size) => args[i].saturating_mul(size as u64),
            FdSet(i) => args[i].min(1 << 20).div_ceil(64) * 8,
            PtrU32(i) => {
                if args[i] == 0 {
                    0
                } else {
                    let b = mem.read(args[i], 4).map_err(|_| EFAULT)?;
                    u32::from_ne_bytes(b[..4].try_into().unwrap_or([0; 4])) as u64
                }
            }
        })
    };
    let mut slots = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let ptr = args[i];
        if matches!(spec, Val) || (ptr == 0 && !matches!(spec, Null)) {
            continue;
        }
        let sized = |l: Len, args: &mut [u64; 6]| -> Result<u64, Action> {
            let n = len_of(l, args).map_err(Action::Errno)?;
            if n <= MAX_BUFFER {
                return Ok(n);
            }
            match l {
                Of(j) if may_shorten(e.name) => {
                    args[j] = MAX_BUFFER;
                    Ok(MAX_BUFFER)
                }
                _ => Err(Action::Home(format!("{} of {n} bytes", e.name))),
            }
        };
        let kind = match *spec {
            Val => continue,
            Null => SlotKind::Null,
            Str => match read_str(mem, ptr) {
                Ok(s) => SlotKind::In(s),
                Err(errno) => return Action::Errno(errno),
            },
            In(l) | InOut(l) => {
                let n = match sized(l, &mut args) {
                    Ok(n) => n,
                    Err(a) => return a,
                };
                let Ok(b) = mem.read(ptr, n as usize) else {
                    return Action::Errno(EFAULT);
                };
                if matches!(spec, In(_)) {
                    SlotKind::In(b)
                } else {
                    SlotKind::InOut(b)
                }
            }
            Out(l, bound) => {
                let len = match sized(l, &mut args) {
                    Ok(n) => n,
                    Err(a) => return a,
                };
                let items = match bound {
                    Whole => 0,
                    RetBytes => 1,
                    RetItems(s) => s,
                };
                SlotKind::Out { len, items }
            }
            IovIn(c) | IovOut(c) => {
                let count = args[c];
                if count > 1024 {
                    return Action::Errno(22); // EINVAL, as natively (UIO_MAXIOV)
                }
                let Ok(raw) = mem.read(ptr, count as usize * 16) else {
                    return Action::Errno(EFAULT);
                };
                let v: Vec<u64> = u64s(&raw).collect();
                let parts: Vec<(u64, u64)> = v.chunks_exact(2).map(|p| (p[0], p[1])).collect();
                let total: u64 = parts.iter().map(|p| p.1).fold(0, u64::saturating_add);
                if total > MAX_BUFFER {
                    return Action::Home(format!("{} of {total} bytes", e.name));
                }
                if matches!(spec, IovIn(_)) {
                    let mut bufs = Vec::new();
                    for (a, n) in parts {
                        match mem.read(a, n as usize) {
                            Ok(b) => bufs.push(b),
                            Err(_) if n == 0 => bufs.push(Vec::new()),
                            Err(_) => return Action::Errno(EFAULT),
                        }
                    }
                    SlotKind::IovIn(bufs)
                } else {
                    SlotKind::IovOut(parts)
                }
            }
        };
        slots.push(Slot { arg: i as u8, kind });
    }
    Action::Forward(Call {
        nr,
        args,
        slots,
        tty_quiet: 0,
    })
}

/// Memory at the executing end where a call's buffers are placed.
pub trait Scratch {
    /// Writes `data` at `addr`.
    fn write(&mut self, addr: u64, data: &[u8]) -> std::io::Result<()>;
    /// Reads `len` bytes at `addr`.
    fn read(&mut self, addr: u64, len: usize) -> std::io::Result<Vec<u8>>;
}

impl Call {
    /// Checks a call that came from the remote end against the table, before the deputy
    /// makes it at home: it must be a forwarded call, and each argument must be laid out
    /// as [`plan`] lays it out (a value; a pointer with the bytes or buffer of exactly the
    /// size its length argument gives, at most [`MAX_BUFFER`]; or a NULL pointer). A
    /// remote node that sends anything else is refused, so that it cannot make the home
    /// process fork, exec, ptrace or map memory at home, or make a call read or write home
    /// memory outside the buffers placed for it.
    pub fn check(&self) -> Result<(), Unlawful> {
        let e = entry(self.nr);
        if e.class != Class::Forward {
            return Err(Unlawful::NotForwarded(name(self.nr)));
        }
        let specs =
            layout(&e, &self.args).map_err(|_| Unlawful::NotWithThese(e.name.to_string()))?;
        let bad = |arg: usize| Unlawful::Layout {
            name: e.name.to_string(),
            arg,
        };
        for (k, s) in self.slots.iter().enumerate() {
            let i = s.arg as usize;
            if i >= specs.len() || self.slots[..k].iter().any(|t| t.arg == s.arg) {
                return Err(bad(i));
            }
        }
        let slot = |i: usize| {
            self.slots
                .iter()
                .find(|s| s.arg as usize == i)
                .map(|s| &s.kind)
        };
        let len_of = |l: Len| -> u64 {
            match l {
                Of(j) => self.args[j],
                Fixed(n) => n as u64,
                Items(j, size) => self.args[j].saturating_mul(size as u64),
                FdSet(j) => self.args[j].min(1 << 20).div_ceil(64) * 8,
                PtrU32(j) => match slot(j) {
                    Some(SlotKind::In(b) | SlotKind::InOut(b)) if b.len() == 4 => {
                        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u64
                    }
                    _ => 0,
                },
            }
        };
        let sized = |l: Len, n: usize| n as u64 == len_of(l) && n as u64 <= MAX_BUFFER;
        let iov_ok = |c: usize, lens: &mut dyn Iterator<Item = u64>| {
            let (mut count, mut total) = (0u64, 0u64);
            for n in lens {
                count += 1;
                total = total.saturating_add(n);
            }
            count == self.args[c] && count <= 1024 && total <= MAX_BUFFER
        };
        for (i, spec) in specs.iter().enumerate() {
            let ok = match (*spec, slot(i)) {
                (Val, s) => s.is_none(),
                (Null, s) => {
                    matches!(s, Some(SlotKind::Null)) || (s.is_none() && self.args[i] == 0)
                }
                // A NULL pointer passes as it is.
                (_, None) => self.args[i] == 0,
                (Str, Some(SlotKind::In(b))) => b.len() <= MAX_STR && b.last() == Some(&0),
                (In(l), Some(SlotKind::In(b))) | (InOut(l), Some(SlotKind::InOut(b))) => {
                    sized(l, b.len())
                }
                (Out(l, bound), Some(SlotKind::Out { len, items })) => {
                    let want = match bound {
                        Whole => 0,
                        RetBytes => 1,
                        RetItems(s) => s,
                    };
                    *items == want && sized(l, *len as usize)
                }
                (IovIn(c), Some(SlotKind::IovIn(bufs))) => {
                    iov_ok(c, &mut bufs.iter().map(|b| b.len() as u64))
                }
                (IovOut(c), Some(SlotKind::IovOut(parts))) => {
                    iov_ok(c, &mut parts.iter().map(|p| p.1))
                }
                _ => false,
            };
            if !ok {
                return Err(bad(i));
            }
        }
        Ok(())
    }

    /// Bytes of scratch memory the call needs (each buffer 16-byte aligned).
    pub fn scratch_len(&self) -> u64 {
        let a = |n: u64| n.div_ceil(16) * 16;
        self.slots
            .iter()
            .map(|s| match &s.kind {
                SlotKind::In(b) | SlotKind::InOut(b) => a(b.len() as u64),
                SlotKind::Out { len, .. } => a(*len),
                SlotKind::IovIn(bufs) => {
                    a(bufs.len() as u64 * 16) + bufs.iter().map(|b| a(b.len() as u64)).sum::<u64>()
                }
                SlotKind::IovOut(parts) => {
                    a(parts.len() as u64 * 16) + parts.iter().map(|p| a(p.1)).sum::<u64>()
                }
                SlotKind::Null => 0,
            })
            .sum()
    }

    /// Places the call's buffers in `scratch` starting at `base` and returns the arguments
    /// to make the call with there.
    pub fn place(&self, base: u64, scratch: &mut dyn Scratch) -> std::io::Result<[u64; 6]> {
        let mut args = self.args;
        let mut at = base;
        let mut take = |n: u64| {
            let p = at;
            at += n.div_ceil(16) * 16;
            p
        };
        for s in &self.slots {
            let i = s.arg as usize;
            args[i] = match &s.kind {
                SlotKind::Null => 0,
                SlotKind::In(b) | SlotKind::InOut(b) => {
                    let p = take(b.len() as u64);
                    scratch.write(p, b)?;
                    p
                }
                SlotKind::Out { len, .. } => take(*len),
                SlotKind::IovIn(bufs) => {
                    let arr = take(bufs.len() as u64 * 16);
                    let mut iov = Vec::new();
                    for b in bufs {
                        let p = take(b.len() as u64);
                        scratch.write(p, b)?;
                        iov.extend_from_slice(&p.to_ne_bytes());
                        iov.extend_from_slice(&(b.len() as u64).to_ne_bytes());
                    }
                    scratch.write(arr, &iov)?;
                    arr
                }
                SlotKind::IovOut(parts) => {
                    let arr = take(parts.len() as u64 * 16);
                    let mut iov = Vec::new();
                    for p in parts {
                        iov.extend_from_slice(&take(p.1).to_ne_bytes());
                        iov.extend_from_slice(&p.1.to_ne_bytes());
                    }
                    scratch.write(arr, &iov)?;
                    arr
                }
            };
        }
        Ok(args)
    }

    /// After the call returned `ret` with `placed` arguments, the bytes to copy back into
    /// the process at its own addresses.
    pub fn collect(
        &self,
        ret: i64,
        placed: &[u64; 6],
        scratch: &mut dyn Scratch,
    ) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
        let mut outs = Vec::new();
        if ret < 0 {
            // Failed calls leave user memory alone, except that some (select, ppoll,
            // splice offsets) may still update in-out arguments: copy those back.
            for s in &self.slots {
                if let SlotKind::InOut(b) = &s.kind {
                    let i = s.arg as usize;
                    outs.push((self.args[i], scratch.read(placed[i], b.len())?));
                }
            }
            return Ok(outs);
        }
        for s in &self.slots {
            let i = s.arg as usize;
            match &s.kind {
                SlotKind::InOut(b) => outs.push((self.args[i], scratch.read(placed[i], b.len())?)),
                SlotKind::Out { len, items } => {
                    let n = match items {
                        0 => *len,
                        k => (ret as u64).saturating_mul(*k as u64).min(*len),
                    };
                    if n > 0 {
                        outs.push((self.args[i], scratch.read(placed[i], n as usize)?));
                    }
                }
                SlotKind::IovOut(parts) => {
                    let arr = scratch.read(placed[i], parts.len() * 16)?;
                    let mut left = ret as u64;
                    for (p, there) in parts.iter().zip(u64s(&arr).step_by(2)) {
                        let n = left.min(p.1);
                        if n == 0 {
                            break;
                        }
                        outs.push((p.0, scratch.read(there, n as usize)?));
                        left -= n;
                    }
                }
                _ => {}
            }
        }
        Ok(outs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn each_case_once_and_as_the_calls_need() {
        for (cases, what) in [(IOCTLS, "ioctl"), (PRCTLS, "prctl"), (FCNTLS, "fcntl")] {
            let codes: std::collections::HashSet<u64> = cases.iter().map(|c| c.code).collect();
            assert_eq!(codes.len(), cases.len(), "an {what} case twice");
            for c in cases {
                assert!(!c.why.is_empty(), "{what} {} says no why", c.name);
                assert!(
                    matches!(c.class, Class::Forward | Class::Home),
                    "{}",
                    c.name
                );
            }
        }
        assert!(IOCTLS
            .iter()
            .chain(FCNTLS)
            .all(|c| c.class == Class::Forward));
        // The ones without a libc constant, against <fcntl.h>'s numbers.
        assert_eq!(fcntl_arg(libc::F_SETLKW as u64), InOut(Fixed(FLOCK)));
        assert_eq!(fcntl_arg(16), Out(Fixed(F_OWNER_EX), Whole));
        assert_eq!(fcntl_arg(1038), InOut(Fixed(U64)));
        assert_eq!(fcntl_arg(libc::F_SETFL as u64), Val);
        assert_eq!(prctl_arg(libc::PR_SET_SECCOMP as u64), Some(Err(())));
        assert_eq!(prctl_arg(libc::PR_SET_TIMERSLACK as u64), None);
        assert_eq!(ioctl_arg(libc::TIOCSTI), None);
    }

    #[test]
    fn numbers_and_names_are_the_kernels() {
        // Each number and each name once.
        let mut nrs = HashMap::new();
        for e in CALLS {
            assert!(nrs.insert(e.nr, e.name).is_none(), "{} twice", e.nr);
            assert!(!e.why.is_empty(), "{} says no why", e.name);
            if e.class == Class::Forward {
                assert!(e.args.len() <= 6, "{}", e.name);
            } else {
                assert!(
                    e.args.is_empty(),
                    "{} has a layout but is not forwarded",
                    e.name
                );
            }
        }
        let names: std::collections::HashSet<_> = CALLS.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), CALLS.len(), "a name twice");
        // The kernel's own list (linux-libc-dev, which gcc needs): every call it names is
        // in the table under its number. Calls newer than these headers are the ones
        // given by number (`call!(NR name, ..)`), past the headers' last.
        let path = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
        let hdr = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path} (package linux-libc-dev): {e}"));
        let mut last = 0;
        for l in hdr.lines() {
            let mut w = l.split_whitespace();
            let (Some("#define"), Some(n), Some(nr)) = (w.next(), w.next(), w.next()) else {
                continue;
            };
            let (Some(name), Ok(nr)) = (n.strip_prefix("__NR_"), nr.parse::<u64>()) else {
                continue;
            };
            assert_eq!(nrs.get(&nr), Some(&name), "the kernel's {name} is {nr}");
            last = last.max(nr);
        }
        assert!(last > 400, "{path} lists too few calls");
        for e in CALLS {
            assert!(
                e.nr > last || hdr.contains(&format!("__NR_{} {}\n", e.name, e.nr)),
                "{} {} is not in {path}",
                e.name,
                e.nr
            );
        }
        for e in table() {
            assert_eq!(entry(e.nr).name, e.name);
        }
        // The ones the design names, in the class it gives them.
        for (n, c) in [
            ("read", Class::Forward),
            ("openat", Class::Forward),
            ("getppid", Class::Forward),
            ("wait4", Class::Forward),
            ("clone", Class::Home),
            ("fork", Class::Home),
            ("execve", Class::Home),
            ("shmat", Class::Home),
            ("ptrace", Class::Home),
            ("futex", Class::Native),
            ("mmap", Class::Native),
            ("exit_group", Class::Exit),
            ("tuxcall", Class::Refuse),
        ] {
            let e = table().iter().find(|e| e.name == n).unwrap();
            assert_eq!(e.class, c, "{n}");
        }
        assert_eq!(entry(10_000).class, Class::Refuse);
    }

    /// How many bytes call `nr(args)` writes into the 4 KiB buffer that argument `at`
    /// points to (`args[at]` is replaced by the buffer): the call is made twice, into
    /// buffers filled with two different bytes, and the last byte changed in either run
    /// marks the end of what the kernel wrote.
    fn written_by(nr: i64, mut args: [u64; 6], at: usize) -> usize {
        let mut end = 0;
        for fill in [0xaau8, 0x55] {
            let mut buf = vec![fill; 4096];
            args[at] = buf.as_mut_ptr() as u64;
            let r = crate::sys::raw_syscall(nr, args);
            assert!(r >= 0, "{} failed: {r}", name(nr as u64));
            if let Some(i) = buf.iter().rposition(|&b| b != fill) {
                end = end.max(i + 1);
            }
            if nr == libc::SYS_pipe2 {
                for fd in buf[..8].chunks(4) {
                    let fd = i32::from_ne_bytes(fd.try_into().unwrap());
                    crate::sys::raw_syscall(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
                }
            }
        }
        end
    }

    /// The size the table gives the output buffer of `nr(args)` at argument `at`.
    fn table_len(nr: i64, mut args: [u64; 6], at: usize) -> u64 {
        let mut dummy = [0u8; 4096];
        args[at] = dummy.as_mut_ptr() as u64;
        let me = crate::pages::ProcessMemory::open(std::process::id() as i32).unwrap();
        let Action::Forward(call) = plan(nr as u64, args, &me) else {
            panic!("{} is not forwarded", name(nr as u64));
        };
        let slot = call.slots.iter().find(|s| s.arg as usize == at).unwrap();
        match slot.kind {
            SlotKind::Out { len, .. } => len,
            SlotKind::InOut(ref b) => b.len() as u64,
            ref k => panic!("{}: argument {at} is {k:?}", name(nr as u64)),
        }
    }

    #[test]
    fn struct_sizes_are_what_the_kernel_writes() {
        use std::os::fd::AsRawFd;
        let file = tempfile::tempfile().unwrap();
        let fd = file.as_raw_fd() as u64;
        // The controlling side of a pty answers the terminal ioctls.
        let pty = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/ptmx")
            .unwrap();
        let tty = pty.as_raw_fd() as u64;
        let root = c"/".as_ptr() as u64;
        let at = libc::AT_FDCWD as u64;
        let tfd = crate::sys::raw_syscall(libc::SYS_timerfd_create, [1, 0, 0, 0, 0, 0]);
        assert!(tfd >= 0);
        let cases: &[(&str, i64, [u64; 6], usize)] = &[
            ("fstat", libc::SYS_fstat, [fd, 0, 0, 0, 0, 0], 1),
            (
                "newfstatat",
                libc::SYS_newfstatat,
                [at, root, 0, 0, 0, 0],
                2,
            ),
            ("statfs", libc::SYS_statfs, [root, 0, 0, 0, 0, 0], 1),
            ("fstatfs", libc::SYS_fstatfs, [fd, 0, 0, 0, 0, 0], 1),
            ("statx", libc::SYS_statx, [at, root, 0, 0xfff, 0, 0], 4),
            ("sysinfo", libc::SYS_sysinfo, [0; 6], 0),
            ("times", libc::SYS_times, [0; 6], 0),
            ("uname", libc::SYS_uname, [0; 6], 0),
            ("getrusage", libc::SYS_getrusage, [0; 6], 1),
            ("getrlimit", libc::SYS_getrlimit, [7, 0, 0, 0, 0, 0], 1),
            (
                "pipe2",
                libc::SYS_pipe2,
                [0, libc::O_CLOEXEC as u64, 0, 0, 0, 0],
                0,
            ),
            (
                "timerfd_gettime",
                libc::SYS_timerfd_gettime,
                [tfd as u64, 0, 0, 0, 0, 0],
                1,
            ),
            (
                "TCGETS",
                libc::SYS_ioctl,
                [tty, libc::TCGETS, 0, 0, 0, 0],
                2,
            ),
            (
                "TIOCGWINSZ",
                libc::SYS_ioctl,
                [tty, libc::TIOCGWINSZ, 0, 0, 0, 0],
                2,
            ),
            (
                "FIONREAD",
                libc::SYS_ioctl,
                [tty, libc::FIONREAD, 0, 0, 0, 0],
                2,
            ),
            ("F_GETOWN_EX", libc::SYS_fcntl, [fd, 16, 0, 0, 0, 0], 2),
        ];
        for (what, nr, args, at) in cases {
            let wrote = written_by(*nr, *args, *at);
            let said = table_len(*nr, *args, *at);
            assert_eq!(
                said, wrote as u64,
                "{what}: the kernel writes {wrote} bytes"
            );
        }
        // The kernel's termios is 36 bytes, not glibc's 60 (the bug that crashed bc).
        assert_eq!(size::KTERMIOS, 36);
        crate::sys::raw_syscall(libc::SYS_close, [tfd as u64, 0, 0, 0, 0, 0]);
    }

    /// A process's memory and a deputy's scratch, as byte maps.
    struct Bytes(HashMap<u64, u8>);
    impl GuestMem for Bytes {
        fn read(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
            (0..len as u64)
                .map(|i| {
                    self.0
                        .get(&(addr + i))
                        .copied()
                        .ok_or_else(|| std::io::Error::other("unmapped"))
                })
                .collect()
        }
    }
    impl Scratch for Bytes {
        fn write(&mut self, addr: u64, data: &[u8]) -> std::io::Result<()> {
            for (i, b) in data.iter().enumerate() {
                self.0.insert(addr + i as u64, *b);
            }
            Ok(())
        }
        fn read(&mut self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
            GuestMem::read(self, addr, len)
        }
    }
    fn mem(at: &[(u64, &[u8])]) -> Bytes {
        let mut m = Bytes(HashMap::new());
        for (a, d) in at {
            Scratch::write(&mut m, *a, d).unwrap();
        }
        m
    }

    #[test]
    fn a_path_goes_in_and_a_stat_comes_out() {
        // Memory is read a page at a time: a whole mapped page holds the path.
        let mut page = b"/etc/hostname\0junk".to_vec();
        page.resize(4096, 0xaa);
        let guest = mem(&[(0x1000, &page)]);
        let Action::Forward(call) = plan(
            libc::SYS_newfstatat as u64,
            [libc::AT_FDCWD as u64, 0x1000, 0x2000, 0, 0, 0],
            &guest,
        ) else {
            panic!("newfstatat is forwarded");
        };
        assert_eq!(call.slots.len(), 2);
        assert_eq!(
            call.slots[0].kind,
            SlotKind::In(b"/etc/hostname\0".to_vec())
        );
        assert_eq!(call.slots[1].kind, SlotKind::Out { len: 144, items: 0 });
        let mut deputy = Bytes(HashMap::new());
        let args = call.place(0x9000, &mut deputy).unwrap();
        assert_eq!(args[0], libc::AT_FDCWD as u64);
        assert_eq!(
            GuestMem::read(&deputy, args[1], 14).unwrap(),
            b"/etc/hostname\0"
        );
        // The call fills the stat buffer at the deputy's address.
        Scratch::write(&mut deputy, args[2], &[7u8; 144]).unwrap();
        let outs = call.collect(0, &args, &mut deputy).unwrap();
        assert_eq!(outs, vec![(0x2000, vec![7u8; 144])]);
        // A failed call writes nothing back.
        assert!(call.collect(-2, &args, &mut deputy).unwrap().is_empty());
    }

    #[test]
    fn reads_copy_back_only_what_was_read_and_iovecs_are_split() {
        let guest = mem(&[]);
        let Action::Forward(call) = plan(libc::SYS_read as u64, [0, 0x5000, 100, 0, 0, 0], &guest)
        else {
            panic!()
        };
        let mut deputy = Bytes(HashMap::new());
        let args = call.place(0x9000, &mut deputy).unwrap();
        Scratch::write(&mut deputy, args[1], b"hello").unwrap();
        assert_eq!(
            call.collect(5, &args, &mut deputy).unwrap(),
            vec![(0x5000, b"hello".to_vec())]
        );
        // readv of 3 + 4 bytes that returns 5: 3 to the first buffer, 2 to the second.
        let mut iov = Vec::new();
        for (a, l) in [(0x6000u64, 3u64), (0x7000, 4)] {
            iov.extend_from_slice(&a.to_ne_bytes());
            iov.extend_from_slice(&l.to_ne_bytes());
        }
        let guest = mem(&[(0x3000, &iov)]);
        let Action::Forward(call) = plan(libc::SYS_readv as u64, [0, 0x3000, 2, 0, 0, 0], &guest)
        else {
            panic!()
        };
        let mut deputy = Bytes(HashMap::new());
        let args = call.place(0x9000, &mut deputy).unwrap();
        let arr = GuestMem::read(&deputy, args[1], 32).unwrap();
        let first = u64::from_ne_bytes(arr[0..8].try_into().unwrap());
        let second = u64::from_ne_bytes(arr[16..24].try_into().unwrap());
        Scratch::write(&mut deputy, first, b"abc").unwrap();
        Scratch::write(&mut deputy, second, b"de").unwrap();
        assert_eq!(
            call.collect(5, &args, &mut deputy).unwrap(),
            vec![(0x6000, b"abc".to_vec()), (0x7000, b"de".to_vec())]
        );
    }

    #[test]
    fn bad_pointers_fail_as_natively_and_home_calls_say_which() {
        let guest = mem(&[]);
        assert_eq!(
            plan(libc::SYS_openat as u64, [0, 0xdead, 0, 0, 0, 0], &guest),
            Action::Errno(EFAULT)
        );
        assert_eq!(
            plan(libc::SYS_clone as u64, [0; 6], &guest),
            Action::Home("clone".into())
        );
        assert_eq!(
            plan(
                libc::SYS_mmap as u64,
                [0, 4096, 1, libc::MAP_PRIVATE as u64, 3, 0],
                &guest
            ),
            Action::Home("mmap of a file".into())
        );
        assert_eq!(
            plan(libc::SYS_exit_group as u64, [7, 0, 0, 0, 0, 0], &guest),
            Action::Exit(7)
        );
        // A huge write is shortened (a short write), not refused.
        let Action::Forward(call) = plan(
            libc::SYS_write as u64,
            [1, 0x1000, 1 << 40, 0, 0, 0],
            &mem(&[]),
        ) else {
            // Unreadable at that size: EFAULT is also what the kernel would say.
            return;
        };
        assert_eq!(call.args[2], MAX_BUFFER);
    }

    /// Memory that holds zeros at every address.
    struct Zeros;
    impl GuestMem for Zeros {
        fn read(&self, _addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
            Ok(vec![0; len])
        }
    }

    #[test]
    fn a_path_running_past_the_top_of_memory_is_efault() {
        // Found by the planner's fuzz target: the string reader's address overflowed.
        struct NoNul;
        impl GuestMem for NoNul {
            fn read(&self, _addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
                Ok(vec![b'a'; len])
            }
        }
        let args = [libc::AT_FDCWD as u64, u64::MAX - 100, 0, 0, 0, 0];
        assert_eq!(
            plan(libc::SYS_openat as u64, args, &NoNul),
            Action::Errno(EFAULT)
        );
    }

    #[test]
    fn every_call_the_remote_end_plans_passes_the_deputys_check() {
        // Arguments drawn from values that make every layout happen: descriptors,
        // small lengths and counts, pointers, NULL, and the ioctl, fcntl and prctl
        // commands the sub-tables forward.
        let values: Vec<u64> = [0u64, 1, 2, 3, 16, 144, 0x10000, 0x7fff_0000]
            .into_iter()
            .chain([
                libc::TCGETS,
                libc::TIOCGWINSZ,
                libc::TIOCSPGRP,
                libc::FIONBIO,
            ])
            .chain([5, 7, 15, 16, 1035])
            .chain([libc::PR_GET_NAME, libc::PR_SET_NAME, libc::PR_SET_PDEATHSIG].map(|v| v as u64))
            .collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            values[(seed % values.len() as u64) as usize]
        };
        let mut checked = 0;
        for e in table().iter().filter(|e| e.class == Class::Forward) {
            for _ in 0..300 {
                let args = [next(), next(), next(), next(), next(), next()];
                if let Action::Forward(call) = plan(e.nr, args, &Zeros) {
                    assert_eq!(call.check(), Ok(()), "{} {args:x?}: {call:?}", e.name);
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "only {checked} calls were planned");
    }

    #[test]
    fn the_deputy_refuses_calls_the_table_does_not_forward_as_they_are() {
        let call = |nr: i64, args: [u64; 6], slots: Vec<Slot>| Call {
            nr: nr as u64,
            args,
            slots,
            tty_quiet: 0,
        };
        let slot = |arg: u8, kind: SlotKind| Slot { arg, kind };
        // Calls that are not forwarded at all.
        for nr in [
            libc::SYS_execve,
            libc::SYS_fork,
            libc::SYS_clone,
            libc::SYS_ptrace,
            libc::SYS_mmap,
            libc::SYS_exit_group,
            1000,
        ] {
            assert!(
                matches!(
                    call(nr, [0; 6], vec![]).check(),
                    Err(Unlawful::NotForwarded(_))
                ),
                "{}",
                name(nr as u64)
            );
        }
        // An ioctl the table does not forward (TIOCSTI would type into home's terminal).
        let sti = call(libc::SYS_ioctl, [0, libc::TIOCSTI, 0, 0, 0, 0], vec![]);
        assert!(matches!(sti.check(), Err(Unlawful::NotWithThese(_))));
        let layout = |c: Call, arg: usize| {
            assert_eq!(
                c.check(),
                Err(Unlawful::Layout {
                    name: name(c.nr),
                    arg
                }),
                "{c:?}"
            )
        };
        // write of 100 bytes with 10 of them: the kernel would read 90 of home's.
        let w = |n: usize| {
            call(
                libc::SYS_write,
                [1, 0x1000, 100, 0, 0, 0],
                vec![slot(1, SlotKind::In(vec![b'x'; n]))],
            )
        };
        assert_eq!(w(100).check(), Ok(()));
        layout(w(10), 1);
        // read into a raw pointer: it would write into home's memory at that address.
        layout(call(libc::SYS_read, [0, 0x5000, 100, 0, 0, 0], vec![]), 1);
        // A read buffer smaller than the count.
        let short = SlotKind::Out { len: 10, items: 1 };
        layout(
            call(
                libc::SYS_read,
                [0, 0x5000, 100, 0, 0, 0],
                vec![slot(1, short)],
            ),
            1,
        );
        // A path without its end.
        let open = |p: &[u8]| {
            call(
                libc::SYS_openat,
                [0, 0x1000, 0, 0, 0, 0],
                vec![slot(1, SlotKind::In(p.to_vec()))],
            )
        };
        assert_eq!(open(b"/etc/hostname\0").check(), Ok(()));
        layout(open(b"/etc/hostname"), 1);
        // Bytes for a number, and two slots for one argument.
        layout(
            call(
                libc::SYS_close,
                [3, 0, 0, 0, 0, 0],
                vec![slot(0, SlotKind::In(vec![0; 8]))],
            ),
            0,
        );
        let twice = vec![
            slot(1, SlotKind::In(vec![0; 4])),
            slot(1, SlotKind::In(vec![0; 4])),
        ];
        layout(call(libc::SYS_write, [1, 0x1000, 4, 0, 0, 0], twice), 1);
        // An iovec array of another count than the call's.
        let iov = SlotKind::IovIn(vec![vec![1; 4]]);
        layout(
            call(
                libc::SYS_writev,
                [1, 0x1000, 2, 0, 0, 0],
                vec![slot(1, iov)],
            ),
            1,
        );
        // A buffer larger than any forwarded call carries.
        let big = SlotKind::Out {
            len: MAX_BUFFER + 4096,
            items: 1,
        };
        layout(
            call(
                libc::SYS_read,
                [0, 0x5000, MAX_BUFFER + 4096, 0, 0, 0],
                vec![slot(1, big)],
            ),
            1,
        );
    }
}
