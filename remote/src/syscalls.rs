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
//!   (fork, execve, shared file mappings, SysV IPC, ptrace, and everything not listed here;
//!   the remote end makes private file mappings itself, see [`crate::homefile`]).
//! - [`Class::Refuse`]: numbers no kernel implements: `ENOSYS`, as natively.
//!
//! This module is pure: [`plan`] turns a trapped call into a [`Call`] (reading the
//! process's memory through [`GuestMem`]), [`execute`] runs a [`Call`] anywhere a
//! [`Scratch`] area and a way to make system calls exist, and [`Reply::outs`] are the bytes
//! to write back into the process.

use serde::{Deserialize, Serialize};

/// Names of the x86-64 system calls by number ("" for numbers the kernel does not use).
pub const NAMES: [&str; 470] = [
    "read",
    "write",
    "open",
    "close",
    "stat",
    "fstat",
    "lstat",
    "poll",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "access",
    "pipe",
    "select",
    "sched_yield",
    "mremap",
    "msync",
    "mincore",
    "madvise",
    "shmget",
    "shmat",
    "shmctl",
    "dup",
    "dup2",
    "pause",
    "nanosleep",
    "getitimer",
    "alarm",
    "setitimer",
    "getpid",
    "sendfile",
    "socket",
    "connect",
    "accept",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
    "bind",
    "listen",
    "getsockname",
    "getpeername",
    "socketpair",
    "setsockopt",
    "getsockopt",
    "clone",
    "fork",
    "vfork",
    "execve",
    "exit",
    "wait4",
    "kill",
    "uname",
    "semget",
    "semop",
    "semctl",
    "shmdt",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "fcntl",
    "flock",
    "fsync",
    "fdatasync",
    "truncate",
    "ftruncate",
    "getdents",
    "getcwd",
    "chdir",
    "fchdir",
    "rename",
    "mkdir",
    "rmdir",
    "creat",
    "link",
    "unlink",
    "symlink",
    "readlink",
    "chmod",
    "fchmod",
    "chown",
    "fchown",
    "lchown",
    "umask",
    "gettimeofday",
    "getrlimit",
    "getrusage",
    "sysinfo",
    "times",
    "ptrace",
    "getuid",
    "syslog",
    "getgid",
    "setuid",
    "setgid",
    "geteuid",
    "getegid",
    "setpgid",
    "getppid",
    "getpgrp",
    "setsid",
    "setreuid",
    "setregid",
    "getgroups",
    "setgroups",
    "setresuid",
    "getresuid",
    "setresgid",
    "getresgid",
    "getpgid",
    "setfsuid",
    "setfsgid",
    "getsid",
    "capget",
    "capset",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_sigsuspend",
    "sigaltstack",
    "utime",
    "mknod",
    "uselib",
    "personality",
    "ustat",
    "statfs",
    "fstatfs",
    "sysfs",
    "getpriority",
    "setpriority",
    "sched_setparam",
    "sched_getparam",
    "sched_setscheduler",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "mlock",
    "munlock",
    "mlockall",
    "munlockall",
    "vhangup",
    "modify_ldt",
    "pivot_root",
    "_sysctl",
    "prctl",
    "arch_prctl",
    "adjtimex",
    "setrlimit",
    "chroot",
    "sync",
    "acct",
    "settimeofday",
    "mount",
    "umount2",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "create_module",
    "init_module",
    "delete_module",
    "get_kernel_syms",
    "query_module",
    "quotactl",
    "nfsservctl",
    "getpmsg",
    "putpmsg",
    "afs_syscall",
    "tuxcall",
    "security",
    "gettid",
    "readahead",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "tkill",
    "time",
    "futex",
    "sched_setaffinity",
    "sched_getaffinity",
    "set_thread_area",
    "io_setup",
    "io_destroy",
    "io_getevents",
    "io_submit",
    "io_cancel",
    "get_thread_area",
    "lookup_dcookie",
    "epoll_create",
    "epoll_ctl_old",
    "epoll_wait_old",
    "remap_file_pages",
    "getdents64",
    "set_tid_address",
    "restart_syscall",
    "semtimedop",
    "fadvise64",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "clock_settime",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "exit_group",
    "epoll_wait",
    "epoll_ctl",
    "tgkill",
    "utimes",
    "vserver",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "kexec_load",
    "waitid",
    "add_key",
    "request_key",
    "keyctl",
    "ioprio_set",
    "ioprio_get",
    "inotify_init",
    "inotify_add_watch",
    "inotify_rm_watch",
    "migrate_pages",
    "openat",
    "mkdirat",
    "mknodat",
    "fchownat",
    "futimesat",
    "newfstatat",
    "unlinkat",
    "renameat",
    "linkat",
    "symlinkat",
    "readlinkat",
    "fchmodat",
    "faccessat",
    "pselect6",
    "ppoll",
    "unshare",
    "set_robust_list",
    "get_robust_list",
    "splice",
    "tee",
    "sync_file_range",
    "vmsplice",
    "move_pages",
    "utimensat",
    "epoll_pwait",
    "signalfd",
    "timerfd_create",
    "eventfd",
    "fallocate",
    "timerfd_settime",
    "timerfd_gettime",
    "accept4",
    "signalfd4",
    "eventfd2",
    "epoll_create1",
    "dup3",
    "pipe2",
    "inotify_init1",
    "preadv",
    "pwritev",
    "rt_tgsigqueueinfo",
    "perf_event_open",
    "recvmmsg",
    "fanotify_init",
    "fanotify_mark",
    "prlimit64",
    "name_to_handle_at",
    "open_by_handle_at",
    "clock_adjtime",
    "syncfs",
    "sendmmsg",
    "setns",
    "getcpu",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "finit_module",
    "sched_setattr",
    "sched_getattr",
    "renameat2",
    "seccomp",
    "getrandom",
    "memfd_create",
    "kexec_file_load",
    "bpf",
    "execveat",
    "userfaultfd",
    "membarrier",
    "mlock2",
    "copy_file_range",
    "preadv2",
    "pwritev2",
    "pkey_mprotect",
    "pkey_alloc",
    "pkey_free",
    "statx",
    "io_pgetevents",
    "rseq",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "pidfd_send_signal",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pidfd_open",
    "clone3",
    "close_range",
    "openat2",
    "pidfd_getfd",
    "faccessat2",
    "process_madvise",
    "epoll_pwait2",
    "mount_setattr",
    "quotactl_fd",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "memfd_secret",
    "process_mrelease",
    "futex_waitv",
    "set_mempolicy_home_node",
    "cachestat",
    "fchmodat2",
    "map_shadow_stack",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "mseal",
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",
    "file_getattr",
    "file_setattr",
];

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

/// Calls that run in the remote kernel.
const NATIVE: &[&str] = &[
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "mremap",
    "madvise",
    "mincore",
    "mlock",
    "munlock",
    "mlock2",
    "mlockall",
    "munlockall",
    "mseal",
    "map_shadow_stack",
    "pkey_mprotect",
    "pkey_alloc",
    "pkey_free",
    "futex",
    "futex_waitv",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "set_tid_address",
    "arch_prctl",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "sigaltstack",
    "pause",
    "alarm",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "nanosleep",
    "clock_nanosleep",
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "time",
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getparam",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "sched_getattr",
    "getcpu",
    "getrandom",
    "membarrier",
    "restart_syscall",
    "personality",
];

/// Calls the deputy executes at home, with their arguments.
const FORWARD: &[(&str, &[Arg])] = &[
    ("read", &[Val, Out(Of(2), RetBytes), Val]),
    ("write", &[Val, In(Of(2)), Val]),
    ("open", &[Str, Val, Val]),
    ("close", &[Val]),
    ("stat", &[Str, Out(Fixed(STAT), Whole)]),
    ("fstat", &[Val, Out(Fixed(STAT), Whole)]),
    ("lstat", &[Str, Out(Fixed(STAT), Whole)]),
    ("poll", &[InOut(Items(1, POLLFD)), Val, Val]),
    ("lseek", &[Val, Val, Val]),
    ("pread64", &[Val, Out(Of(2), RetBytes), Val, Val]),
    ("pwrite64", &[Val, In(Of(2)), Val, Val]),
    ("readv", &[Val, IovOut(2), Val]),
    ("writev", &[Val, IovIn(2), Val]),
    ("preadv", &[Val, IovOut(2), Val, Val, Val]),
    ("pwritev", &[Val, IovIn(2), Val, Val, Val]),
    ("preadv2", &[Val, IovOut(2), Val, Val, Val, Val]),
    ("pwritev2", &[Val, IovIn(2), Val, Val, Val, Val]),
    ("access", &[Str, Val]),
    ("pipe", &[Out(Fixed(FDS2), Whole)]),
    ("pipe2", &[Out(Fixed(FDS2), Whole), Val]),
    (
        "select",
        &[
            Val,
            InOut(FdSet(0)),
            InOut(FdSet(0)),
            InOut(FdSet(0)),
            InOut(Fixed(TIMEVAL)),
        ],
    ),
    (
        "pselect6",
        &[
            Val,
            InOut(FdSet(0)),
            InOut(FdSet(0)),
            InOut(FdSet(0)),
            InOut(Fixed(TIMESPEC)),
            Null,
        ],
    ),
    (
        "ppoll",
        &[
            InOut(Items(1, POLLFD)),
            Val,
            InOut(Fixed(TIMESPEC)),
            Null,
            Val,
        ],
    ),
    ("dup", &[Val]),
    ("dup2", &[Val, Val]),
    ("dup3", &[Val, Val, Val]),
    ("getpid", &[]),
    ("getppid", &[]),
    ("gettid", &[]),
    ("getuid", &[]),
    ("geteuid", &[]),
    ("getgid", &[]),
    ("getegid", &[]),
    ("getpgrp", &[]),
    ("getpgid", &[Val]),
    ("getsid", &[Val]),
    ("setpgid", &[Val, Val]),
    ("setsid", &[]),
    ("setuid", &[Val]),
    ("setgid", &[Val]),
    ("setreuid", &[Val, Val]),
    ("setregid", &[Val, Val]),
    ("setresuid", &[Val, Val, Val]),
    ("setresgid", &[Val, Val, Val]),
    (
        "getresuid",
        &[
            Out(Fixed(ID), Whole),
            Out(Fixed(ID), Whole),
            Out(Fixed(ID), Whole),
        ],
    ),
    (
        "getresgid",
        &[
            Out(Fixed(ID), Whole),
            Out(Fixed(ID), Whole),
            Out(Fixed(ID), Whole),
        ],
    ),
    ("setfsuid", &[Val]),
    ("setfsgid", &[Val]),
    ("getgroups", &[Val, Out(Items(0, ID), RetItems(ID))]),
    ("setgroups", &[Val, In(Items(0, ID))]),
    ("umask", &[Val]),
    ("uname", &[Out(Fixed(UTSNAME), Whole)]),
    ("sysinfo", &[Out(Fixed(SYSINFO), Whole)]),
    ("times", &[Out(Fixed(TMS), Whole)]),
    ("getrusage", &[Val, Out(Fixed(RUSAGE), Whole)]),
    ("getrlimit", &[Val, Out(Fixed(RLIMIT), Whole)]),
    ("setrlimit", &[Val, In(Fixed(RLIMIT))]),
    (
        "prlimit64",
        &[Val, Val, In(Fixed(RLIMIT)), Out(Fixed(RLIMIT), Whole)],
    ),
    ("getpriority", &[Val, Val]),
    ("setpriority", &[Val, Val, Val]),
    ("kill", &[Val, Val]),
    ("tkill", &[Val, Val]),
    ("tgkill", &[Val, Val, Val]),
    ("rt_sigqueueinfo", &[Val, Val, In(Fixed(SIGINFO))]),
    ("rt_tgsigqueueinfo", &[Val, Val, Val, In(Fixed(SIGINFO))]),
    (
        "wait4",
        &[Val, Out(Fixed(INT), Whole), Val, Out(Fixed(RUSAGE), Whole)],
    ),
    (
        "waitid",
        &[
            Val,
            Val,
            Out(Fixed(SIGINFO), Whole),
            Val,
            Out(Fixed(RUSAGE), Whole),
        ],
    ),
    ("socket", &[Val, Val, Val]),
    ("socketpair", &[Val, Val, Val, Out(Fixed(FDS2), Whole)]),
    ("connect", &[Val, In(Of(2)), Val]),
    ("bind", &[Val, In(Of(2)), Val]),
    ("listen", &[Val, Val]),
    (
        "accept",
        &[Val, Out(PtrU32(2), Whole), InOut(Fixed(SOCKLEN))],
    ),
    (
        "accept4",
        &[Val, Out(PtrU32(2), Whole), InOut(Fixed(SOCKLEN)), Val],
    ),
    ("shutdown", &[Val, Val]),
    (
        "getsockname",
        &[Val, Out(PtrU32(2), Whole), InOut(Fixed(SOCKLEN))],
    ),
    (
        "getpeername",
        &[Val, Out(PtrU32(2), Whole), InOut(Fixed(SOCKLEN))],
    ),
    ("setsockopt", &[Val, Val, Val, In(Of(4)), Val]),
    (
        "getsockopt",
        &[Val, Val, Val, Out(PtrU32(4), Whole), InOut(Fixed(SOCKLEN))],
    ),
    ("sendto", &[Val, In(Of(2)), Val, Val, In(Of(5)), Val]),
    (
        "recvfrom",
        &[
            Val,
            Out(Of(2), RetBytes),
            Val,
            Val,
            Out(PtrU32(5), Whole),
            InOut(Fixed(SOCKLEN)),
        ],
    ),
    ("fcntl", &[Val, Val, Val]),
    ("ioctl", &[Val, Val, Val]),
    ("flock", &[Val, Val]),
    ("fsync", &[Val]),
    ("fdatasync", &[Val]),
    ("sync", &[]),
    ("syncfs", &[Val]),
    ("truncate", &[Str, Val]),
    ("ftruncate", &[Val, Val]),
    ("fallocate", &[Val, Val, Val, Val]),
    ("fadvise64", &[Val, Val, Val, Val]),
    ("getdents", &[Val, Out(Of(2), RetBytes), Val]),
    ("getdents64", &[Val, Out(Of(2), RetBytes), Val]),
    ("getcwd", &[Out(Of(1), RetBytes), Val]),
    ("chdir", &[Str]),
    ("fchdir", &[Val]),
    ("rename", &[Str, Str]),
    ("mkdir", &[Str, Val]),
    ("rmdir", &[Str]),
    ("creat", &[Str, Val]),
    ("link", &[Str, Str]),
    ("unlink", &[Str]),
    ("symlink", &[Str, Str]),
    ("readlink", &[Str, Out(Of(2), RetBytes), Val]),
    ("chmod", &[Str, Val]),
    ("fchmod", &[Val, Val]),
    ("chown", &[Str, Val, Val]),
    ("fchown", &[Val, Val, Val]),
    ("lchown", &[Str, Val, Val]),
    ("utime", &[Str, In(Fixed(UTIMBUF))]),
    ("utimes", &[Str, In(Fixed(TIMEVAL2))]),
    ("mknod", &[Str, Val, Val]),
    ("statfs", &[Str, Out(Fixed(STATFS), Whole)]),
    ("fstatfs", &[Val, Out(Fixed(STATFS), Whole)]),
    ("getxattr", &[Str, Str, Out(Of(3), RetBytes), Val]),
    ("lgetxattr", &[Str, Str, Out(Of(3), RetBytes), Val]),
    ("fgetxattr", &[Val, Str, Out(Of(3), RetBytes), Val]),
    ("setxattr", &[Str, Str, In(Of(3)), Val, Val]),
    ("lsetxattr", &[Str, Str, In(Of(3)), Val, Val]),
    ("fsetxattr", &[Val, Str, In(Of(3)), Val, Val]),
    ("listxattr", &[Str, Out(Of(2), RetBytes), Val]),
    ("llistxattr", &[Str, Out(Of(2), RetBytes), Val]),
    ("flistxattr", &[Val, Out(Of(2), RetBytes), Val]),
    ("removexattr", &[Str, Str]),
    ("lremovexattr", &[Str, Str]),
    ("fremovexattr", &[Val, Str]),
    ("epoll_create", &[Val]),
    ("epoll_create1", &[Val]),
    ("epoll_ctl", &[Val, Val, Val, In(Fixed(EPOLL_EVENT))]),
    (
        "epoll_wait",
        &[
            Val,
            Out(Items(2, EPOLL_EVENT), RetItems(EPOLL_EVENT)),
            Val,
            Val,
        ],
    ),
    (
        "epoll_pwait",
        &[
            Val,
            Out(Items(2, EPOLL_EVENT), RetItems(EPOLL_EVENT)),
            Val,
            Val,
            Null,
            Val,
        ],
    ),
    ("openat", &[Val, Str, Val, Val]),
    ("openat2", &[Val, Str, In(Of(3)), Val]),
    ("mkdirat", &[Val, Str, Val]),
    ("mknodat", &[Val, Str, Val, Val]),
    ("fchownat", &[Val, Str, Val, Val, Val]),
    ("futimesat", &[Val, Str, In(Fixed(TIMEVAL2))]),
    ("newfstatat", &[Val, Str, Out(Fixed(STAT), Whole), Val]),
    ("statx", &[Val, Str, Val, Val, Out(Fixed(STATX), Whole)]),
    ("unlinkat", &[Val, Str, Val]),
    ("renameat", &[Val, Str, Val, Str]),
    ("renameat2", &[Val, Str, Val, Str, Val]),
    ("linkat", &[Val, Str, Val, Str, Val]),
    ("symlinkat", &[Str, Val, Str]),
    ("readlinkat", &[Val, Str, Out(Of(3), RetBytes), Val]),
    ("fchmodat", &[Val, Str, Val]),
    ("fchmodat2", &[Val, Str, Val, Val]),
    ("faccessat", &[Val, Str, Val]),
    ("faccessat2", &[Val, Str, Val, Val]),
    ("utimensat", &[Val, Str, In(Fixed(TIMESPEC2)), Val]),
    ("close_range", &[Val, Val, Val]),
    ("sendfile", &[Val, Val, InOut(Fixed(OFF)), Val]),
    (
        "splice",
        &[Val, InOut(Fixed(OFF)), Val, InOut(Fixed(OFF)), Val, Val],
    ),
    ("tee", &[Val, Val, Val, Val]),
    (
        "copy_file_range",
        &[Val, InOut(Fixed(OFF)), Val, InOut(Fixed(OFF)), Val, Val],
    ),
    ("sync_file_range", &[Val, Val, Val, Val]),
    ("memfd_create", &[Str, Val]),
    ("eventfd", &[Val]),
    ("eventfd2", &[Val, Val]),
    ("timerfd_create", &[Val, Val]),
    (
        "timerfd_settime",
        &[
            Val,
            Val,
            In(Fixed(ITIMERSPEC)),
            Out(Fixed(ITIMERSPEC), Whole),
        ],
    ),
    ("timerfd_gettime", &[Val, Out(Fixed(ITIMERSPEC), Whole)]),
    ("inotify_init", &[]),
    ("inotify_init1", &[Val]),
    ("inotify_add_watch", &[Val, Str, Val]),
    ("inotify_rm_watch", &[Val, Val]),
    ("ioprio_get", &[Val, Val]),
    ("ioprio_set", &[Val, Val, Val]),
    // Its options are sorted by `prctl_arg`: those about the process's place at home
    // are forwarded, the rest run here.
    ("prctl", &[Val, Val, Val, Val, Val]),
];

/// Calls that end the process.
const EXIT: &[&str] = &["exit", "exit_group"];

/// Names that no kernel implements any more (or never did): `ENOSYS` as natively.
const REFUSE: &[&str] = &[
    "uselib",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "getpmsg",
    "putpmsg",
    "afs_syscall",
    "tuxcall",
    "security",
    "vserver",
    "_sysctl",
];

/// The whole table, by number.
pub fn table() -> &'static [Entry] {
    static TABLE: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        NAMES
            .iter()
            .enumerate()
            .map(|(nr, &name)| {
                let (class, args) = if name.is_empty() || REFUSE.contains(&name) {
                    (Class::Refuse, &[][..])
                } else if NATIVE.contains(&name) {
                    (Class::Native, &[][..])
                } else if EXIT.contains(&name) {
                    (Class::Exit, &[][..])
                } else if let Some((_, a)) = FORWARD.iter().find(|(n, _)| *n == name) {
                    (Class::Forward, *a)
                } else {
                    (Class::Home, &[][..])
                };
                Entry {
                    nr: nr as u64,
                    name,
                    class,
                    args,
                }
            })
            .collect()
    })
}

/// The entry for call `nr` (numbers past the table are refused, as natively).
pub fn entry(nr: u64) -> Entry {
    table().get(nr as usize).copied().unwrap_or(Entry {
        nr,
        name: "",
        class: Class::Refuse,
        args: &[],
    })
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

/// ioctl requests forwarded, with their argument; anything else brings the process home.
fn ioctl_arg(req: u64) -> Option<Arg> {
    Some(match req & 0xffff_ffff {
        libc::TCGETS => Out(Fixed(KTERMIOS), Whole),
        libc::TCSETS | libc::TCSETSW | libc::TCSETSF => In(Fixed(KTERMIOS)),
        libc::TIOCGWINSZ => Out(Fixed(WINSIZE), Whole),
        libc::TIOCSWINSZ => In(Fixed(WINSIZE)),
        libc::FIONREAD | libc::TIOCGPGRP | libc::TIOCGSID => Out(Fixed(INT), Whole),
        libc::TIOCSPGRP | libc::FIONBIO | libc::FIOASYNC => In(Fixed(INT)),
        libc::FIONCLEX | libc::FIOCLEX | libc::TCSBRK | libc::TCXONC | libc::TCFLSH => Val,
        _ => return None,
    })
}

/// What happens to `prctl(option, ...)` away from home: the state the home node's kernel
/// answers for (the parent-death signal, whose parent is at home; dumpable; the name ps
/// shows at home; subreaper, whose children are at home; capabilities, securebits,
/// no_new_privs, which the guest's own kernel answers differently) is forwarded with its
/// second argument's layout; a new seccomp filter brings the process home first; the
/// rest (memory, timers, THP, ...) runs in the guest's kernel (None).
fn prctl_arg(option: u64) -> Option<Result<Arg, ()>> {
    Some(Ok(match option as i32 {
        libc::PR_SET_PDEATHSIG
        | libc::PR_GET_DUMPABLE
        | libc::PR_SET_DUMPABLE
        | libc::PR_GET_KEEPCAPS
        | libc::PR_SET_KEEPCAPS
        | libc::PR_SET_CHILD_SUBREAPER
        | libc::PR_CAP_AMBIENT
        | libc::PR_CAPBSET_READ
        | libc::PR_CAPBSET_DROP
        | libc::PR_GET_SECUREBITS
        | libc::PR_SET_SECUREBITS
        | libc::PR_GET_NO_NEW_PRIVS
        | libc::PR_SET_NO_NEW_PRIVS => Val,
        libc::PR_GET_PDEATHSIG | libc::PR_GET_CHILD_SUBREAPER => Out(Fixed(INT), Whole),
        libc::PR_SET_NAME => In(Fixed(TASK_COMM)),
        libc::PR_GET_NAME => Out(Fixed(TASK_COMM), Whole),
        libc::PR_SET_SECCOMP => return Some(Err(())),
        _ => return None,
    }))
}

/// The `prctl` options that do not run in the guest's kernel (see `prctl_arg`): the
/// seccomp filter traps these and lets the others through.
pub fn prctl_forwarded() -> Vec<u32> {
    (0..128u64)
        .filter(|&o| prctl_arg(o).is_some())
        .map(|o| o as u32)
        .collect()
}

/// fcntl commands whose third argument is a pointer.
fn fcntl_arg(cmd: u64) -> Arg {
    match cmd {
        5..=7 | 36..=38 => InOut(Fixed(FLOCK)), // F_GETLK/SETLK/SETLKW, F_OFD_*
        16 => Out(Fixed(F_OWNER_EX), Whole),    // F_GETOWN_EX
        15 => In(Fixed(F_OWNER_EX)),            // F_SETOWN_EX
        1035..=1038 => InOut(Fixed(U64)),       // F_{GET,SET}_{FILE_,}RW_HINT
        _ => Val,
    }
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

const EFAULT: i32 = 14;
const ENOSYS: i32 = 38;

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
        Class::Native => return Action::Native,
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
    fn every_call_has_exactly_one_class() {
        let names: Vec<&str> = NAMES.iter().copied().filter(|n| !n.is_empty()).collect();
        let mut listed: HashMap<&str, usize> = HashMap::new();
        for n in NATIVE.iter().chain(EXIT).chain(REFUSE) {
            *listed.entry(n).or_default() += 1;
        }
        for (n, _) in FORWARD {
            *listed.entry(n).or_default() += 1;
        }
        for (n, count) in &listed {
            assert_eq!(*count, 1, "{n} is listed {count} times");
            assert!(names.contains(n), "{n} is not an x86-64 system call");
        }
        assert_eq!(table().len(), NAMES.len());
        for e in table() {
            assert_eq!(e.name, NAMES[e.nr as usize]);
            if e.class == Class::Forward {
                assert!(e.args.len() <= 6, "{}", e.name);
            }
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
