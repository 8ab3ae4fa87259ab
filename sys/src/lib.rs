//! om-sys: the raw kernel interfaces the project needs and neither `nix` nor `libc`
//! wraps safely: ptrace register sets and queries, `pidfd_getfd`, the userfaultfd
//! handshake, seccomp user notification, the fork of the restore stub, and the SIGPIPE
//! disposition of the tools. Every `unsafe` block of the project's user-space code lives
//! in this crate (the kernel module's own FFI aside), each with a `// SAFETY:` comment;
//! what depends on the processor's architecture is in [`arch`].
//!
//! It is the bottom of the stack and uses no other crate of the project.
#![allow(unsafe_code)]

#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "om-sys supports x86-64 only: the register sets, the XSAVE area and the siginfo layout \
     it reads are x86-64's (add src/arch/<arch>.rs to port it)"
);

#[cfg(target_arch = "x86_64")]
#[path = "arch/x86_64.rs"]
pub mod arch;
pub mod foreground;
pub mod sigpipe;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::unistd::Pid;

use crate::arch::{NT_X86_XSTATE, XSTATE_MAX};

const PTRACE_GETSIGMASK: libc::c_uint = 0x420a;
const PTRACE_SETSIGMASK: libc::c_uint = 0x420b;
const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;
const PTRACE_PEEKSIGINFO_SHARED: u32 = 1;

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Queues the signal of the raw `siginfo` (a `siginfo_t`, at most 128 bytes) to process
/// `pid`, as rt_sigqueueinfo(2) does. Codes the kernel itself makes and that are
/// negative, such as SI_TIMER, may be queued to another process.
pub fn queue_siginfo(pid: i32, siginfo: &[u8]) -> io::Result<()> {
    let mut info = [0u8; 128];
    let n = siginfo.len().min(128);
    info[..n].copy_from_slice(&siginfo[..n]);
    let sig = i32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
    // SAFETY: the kernel reads one 128-byte siginfo_t from `info`, which is that long.
    let ret = unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, pid, sig, info.as_ptr()) };
    check(ret).map(drop)
}

/// Reads the XSAVE area of a ptrace-stopped tracee.
pub fn get_xstate(pid: Pid) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; XSTATE_MAX];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, which outlives the call; the kernel writes at most
    // `iov_len` bytes and updates `iov_len` to the size written.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            pid.as_raw(),
            NT_X86_XSTATE as usize as *mut libc::c_void,
            &mut iov as *mut libc::iovec,
        )
    };
    check(ret)?;
    buf.truncate(iov.iov_len);
    Ok(buf)
}

/// Writes the XSAVE area of a ptrace-stopped tracee.
pub fn set_xstate(pid: Pid, data: &[u8]) -> io::Result<()> {
    let mut copy = data.to_vec();
    let mut iov = libc::iovec {
        iov_base: copy.as_mut_ptr().cast(),
        iov_len: copy.len(),
    };
    // SAFETY: `iov` describes `copy`, which outlives the call; the kernel only reads it.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGSET,
            pid.as_raw(),
            NT_X86_XSTATE as usize as *mut libc::c_void,
            &mut iov as *mut libc::iovec,
        )
    };
    check(ret).map(drop)
}

/// The tracee's blocked-signal mask.
pub fn get_sigmask(pid: Pid) -> io::Result<u64> {
    let mut mask = 0u64;
    // SAFETY: the kernel writes exactly 8 bytes (the size passed as `addr`) to `mask`.
    let ret = unsafe {
        libc::ptrace(
            PTRACE_GETSIGMASK,
            pid.as_raw(),
            8usize as *mut libc::c_void,
            &mut mask as *mut u64,
        )
    };
    check(ret)?;
    Ok(mask)
}

/// Sets the tracee's blocked-signal mask (the kernel never blocks SIGKILL/SIGSTOP).
pub fn set_sigmask(pid: Pid, mask: u64) -> io::Result<()> {
    // SAFETY: the kernel reads exactly 8 bytes from `mask`.
    let ret = unsafe {
        libc::ptrace(
            PTRACE_SETSIGMASK,
            pid.as_raw(),
            8usize as *mut libc::c_void,
            &mask as *const u64,
        )
    };
    check(ret).map(drop)
}

#[repr(C)]
struct PeekSiginfoArgs {
    off: u64,
    flags: u32,
    nr: i32,
}

/// Queued signals of the tracee: its own queue, or the process-wide one.
pub fn peek_siginfo(pid: Pid, shared: bool) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let args = PeekSiginfoArgs {
            off: out.len() as u64,
            flags: if shared { PTRACE_PEEKSIGINFO_SHARED } else { 0 },
            nr: 16,
        };
        let mut buf = [0u8; 128 * 16];
        // SAFETY: `args` is a valid `ptrace_peeksiginfo_args`; the kernel writes at most
        // `nr` (16) 128-byte siginfo records into `buf`, which has room for exactly that.
        let ret = unsafe {
            libc::ptrace(
                libc::PTRACE_PEEKSIGINFO,
                pid.as_raw(),
                &args as *const PeekSiginfoArgs,
                buf.as_mut_ptr(),
            )
        };
        let n = check(ret)? as usize;
        out.extend(buf.chunks(128).take(n).map(<[u8]>::to_vec));
        if n < 16 {
            return Ok(out);
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct RseqConfiguration {
    rseq_abi_pointer: u64,
    rseq_abi_size: u32,
    signature: u32,
    flags: u32,
    pad: u32,
}

/// A restartable sequence registration (`rseq(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rseq {
    /// Address of the `struct rseq`.
    pub addr: u64,
    /// Its registered length.
    pub len: u32,
    /// The abort signature.
    pub signature: u32,
}

/// The tracee's registered restartable sequence, if any.
pub fn get_rseq(pid: Pid) -> io::Result<Option<Rseq>> {
    let mut conf = RseqConfiguration::default();
    let size = std::mem::size_of::<RseqConfiguration>();
    // SAFETY: the kernel writes at most `size` bytes into `conf`, which is that large.
    let ret = unsafe {
        libc::ptrace(
            PTRACE_GET_RSEQ_CONFIGURATION,
            pid.as_raw(),
            size as *mut libc::c_void,
            &mut conf as *mut RseqConfiguration,
        )
    };
    check(ret)?;
    Ok((conf.rseq_abi_pointer != 0).then_some(Rseq {
        addr: conf.rseq_abi_pointer,
        len: conf.rseq_abi_size,
        signature: conf.signature,
    }))
}

/// Head and length of another process's robust futex list.
pub fn get_robust_list(pid: Pid) -> io::Result<(u64, u64)> {
    let mut head = 0u64;
    let mut len = 0u64;
    // SAFETY: the kernel stores one pointer into `head` and one size_t into `len`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            pid.as_raw(),
            &mut head as *mut u64,
            &mut len as *mut u64,
        )
    };
    check(ret)?;
    Ok((head, len))
}

/// Reads one resource limit of any process (`prlimit64`).
pub fn get_rlimit(pid: Pid, resource: i32) -> io::Result<(u64, u64)> {
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new limit means "read only"; the kernel fills `old`.
    let ret = unsafe {
        libc::prlimit64(
            pid.as_raw(),
            resource as libc::__rlimit_resource_t,
            std::ptr::null(),
            &mut old,
        )
    };
    check(ret as libc::c_long)?;
    Ok((old.rlim_cur, old.rlim_max))
}

/// Sets one resource limit of any process (`prlimit64`).
pub fn set_rlimit(pid: Pid, resource: i32, cur: u64, max: u64) -> io::Result<()> {
    let new = libc::rlimit64 {
        rlim_cur: cur,
        rlim_max: max,
    };
    // SAFETY: the kernel only reads `new`; a null old limit is allowed.
    let ret = unsafe {
        libc::prlimit64(
            pid.as_raw(),
            resource as libc::__rlimit_resource_t,
            &new,
            std::ptr::null_mut(),
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) })?;
    // SAFETY: on success the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_getfd`: a duplicate of descriptor `fd` of the process behind `pidfd`.
pub fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain system call with integer arguments.
    let new = check(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })?;
    // SAFETY: on success the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new as RawFd) })
}

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}
const UFFD_API: u64 = 0xAA;
nix::ioctl_readwrite!(uffdio_api_ioctl, 0xAA, 0x3F, UffdioApi);

/// The userfaultfd API handshake (`UFFDIO_API`) asking for `features`; returns the
/// features the kernel granted.
pub fn uffd_api(fd: RawFd, features: u64) -> io::Result<u64> {
    let mut api = UffdioApi {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    // SAFETY: `api` is a valid `struct uffdio_api` the kernel reads and updates in place.
    unsafe { uffdio_api_ioctl(fd, &mut api) }.map_err(io::Error::from)?;
    Ok(api.features)
}

/// Forks the restore stub: the child maps `len` bytes read/write/execute at `scratch`,
/// copies `code` to its start, asks to be traced by the calling thread and stops itself
/// with SIGSTOP. It runs no Rust code after the fork, only async-signal-safe libc calls.
pub fn fork_stub(scratch: u64, len: usize, code: &[u8]) -> io::Result<Pid> {
    // SAFETY: after fork the child only calls async-signal-safe functions (mmap, memcpy
    // on its private copy, ptrace, raise, _exit) and never returns into Rust code that
    // could touch locks held by other threads of the parent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; every pointer used is to memory the child owns.
        unsafe {
            let p = libc::mmap(
                scratch as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            );
            if p as u64 != scratch {
                libc::_exit(126);
            }
            libc::memcpy(p, code.as_ptr().cast(), code.len());
            // Every signal action back to the kernel default (all-zero), so that restore
            // only has to set the actions the image does not have at their default.
            let dfl = [0u64; 4];
            for sig in 1..=64 {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8,
                );
            }
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
                libc::_exit(125);
            }
            libc::raise(libc::SIGSTOP);
            libc::_exit(124);
        }
    }
    Ok(Pid::from_raw(pid))
}

/// `UFFDIO_COPY` of `src` to `dst` in the address space behind `uffd`, waking the faulting
/// thread. Returns the bytes copied.
pub fn uffd_copy(uffd: &userfaultfd::Uffd, src: &[u8], dst: u64) -> Result<usize, UffdErr> {
    // SAFETY: `src` is a live slice of this process, valid for `src.len()` bytes; `dst` is
    // an address in the *other* process's registered range, which the kernel checks and
    // which aliases nothing of ours.
    unsafe {
        uffd.copy(
            src.as_ptr().cast(),
            dst as *mut libc::c_void,
            src.len(),
            true,
        )
    }
    .map_err(UffdErr::from)
}

/// A failed userfaultfd operation, with the errno pulled out of the crate's error (which
/// uses another `nix` version's `Errno`).
#[derive(Debug)]
pub enum UffdErr {
    /// Only this many bytes were copied (an event is pending).
    Partial(usize),
    /// The kernel's error number.
    Errno(i32),
    /// Anything else.
    Other(userfaultfd::Error),
}

impl From<userfaultfd::Error> for UffdErr {
    fn from(e: userfaultfd::Error) -> Self {
        match e {
            userfaultfd::Error::PartiallyCopied(n) => UffdErr::Partial(n),
            userfaultfd::Error::CopyFailed(e) | userfaultfd::Error::ZeropageFailed(e) => {
                UffdErr::Errno(e as i32)
            }
            e => UffdErr::Other(e),
        }
    }
}

/// `UFFDIO_ZEROPAGE` of `[dst, dst + len)` behind `uffd`, waking the faulting thread.
pub fn uffd_zeropage(uffd: &userfaultfd::Uffd, dst: u64, len: usize) -> Result<usize, UffdErr> {
    // SAFETY: `dst` is an address in the other process's registered range; nothing of
    // this process is read or written.
    unsafe { uffd.zeropage(dst as *mut libc::c_void, len, true) }.map_err(UffdErr::from)
}

#[repr(C)]
struct UffdioPoison {
    start: u64,
    len: u64,
    mode: u64,
    updated: i64,
}
nix::ioctl_readwrite!(uffdio_poison_ioctl, 0xAA, 0x08, UffdioPoison);

/// `UFFDIO_POISON` of `[dst, dst + len)` behind `uffd` (Linux 6.6): each missing page
/// there raises SIGBUS when touched, and faulting threads are woken to meet it. Returns
/// the bytes poisoned.
pub fn uffd_poison(uffd: &userfaultfd::Uffd, dst: u64, len: usize) -> Result<usize, UffdErr> {
    use std::os::fd::AsRawFd;
    let mut arg = UffdioPoison {
        start: dst,
        len: len as u64,
        mode: 0,
        updated: 0,
    };
    // SAFETY: `arg` is a valid `struct uffdio_poison` the kernel reads and whose `updated`
    // it writes; `dst` is in the other process's registered range, nothing of ours.
    match unsafe { uffdio_poison_ioctl(uffd.as_raw_fd(), &mut arg) } {
        Ok(_) => Ok(len),
        Err(_) if arg.updated > 0 => Err(UffdErr::Partial(arg.updated as usize)),
        Err(e) => Err(UffdErr::Errno(e as i32)),
    }
}

/// Wraps a userfaultfd descriptor (already through the `UFFDIO_API` handshake).
pub fn uffd_from_fd(fd: OwnedFd) -> userfaultfd::Uffd {
    use std::os::fd::IntoRawFd;
    // SAFETY: `fd` is an open userfaultfd descriptor we own; ownership moves into `Uffd`,
    // which closes it on drop.
    unsafe { userfaultfd::Uffd::from_raw_fd(fd.into_raw_fd()) }
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const _: () = assert!(std::mem::size_of::<SeccompNotif>() == 80);
const _: () = assert!(std::mem::size_of::<SeccompNotifResp>() == 24);

nix::ioctl_readwrite!(notif_recv_ioctl, b'!', 0, SeccompNotif);
nix::ioctl_readwrite!(notif_send_ioctl, b'!', 1, SeccompNotifResp);

/// Let the call run in the kernel as if it had been allowed.
pub const NOTIF_FLAG_CONTINUE: u32 = 1;

/// `struct seccomp_notif_addfd`.
#[repr(C)]
struct SeccompNotifAddfd {
    id: u64,
    flags: u32,
    srcfd: u32,
    newfd: u32,
    newfd_flags: u32,
}

const _: () = assert!(std::mem::size_of::<SeccompNotifAddfd>() == 24);

nix::ioctl_write_ptr!(notif_addfd_ioctl, b'!', 3, SeccompNotifAddfd);

/// `SECCOMP_ADDFD_FLAG_SETFD`: install at `newfd`, replacing what is there.
const ADDFD_FLAG_SETFD: u32 = 1;

/// Puts a duplicate of our descriptor `src` into the process whose call `id` waits on
/// listener `fd`, as its descriptor `at` (close-on-exec), replacing any there.
pub fn notif_addfd(fd: RawFd, id: u64, src: RawFd, at: u32) -> io::Result<()> {
    let a = SeccompNotifAddfd {
        id,
        flags: ADDFD_FLAG_SETFD,
        srcfd: src as u32,
        newfd: at,
        newfd_flags: libc::O_CLOEXEC as u32,
    };
    // SAFETY: `a` is a valid `struct seccomp_notif_addfd`; the kernel only reads it.
    unsafe { notif_addfd_ioctl(fd, &a) }.map_err(io::Error::from)?;
    Ok(())
}

/// A call trapped by the seccomp filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// Cookie for the answer.
    pub id: u64,
    /// Thread that made it.
    pub pid: u32,
    /// Call number.
    pub nr: u64,
    /// Audit architecture.
    pub arch: u32,
    /// Its arguments.
    pub args: [u64; 6],
}

/// Receives the next trapped call from seccomp listener `fd` (blocks until there is one).
pub fn notif_recv(fd: RawFd) -> io::Result<Notification> {
    let mut n = SeccompNotif::default();
    // SAFETY: `n` is a zeroed `struct seccomp_notif` of the size the ioctl expects; the
    // kernel fills it in.
    unsafe { notif_recv_ioctl(fd, &mut n) }.map_err(io::Error::from)?;
    Ok(Notification {
        id: n.id,
        pid: n.pid,
        nr: n.nr as u64,
        arch: n.arch,
        args: n.args,
    })
}

/// Answers trapped call `id`: its result is `val`, or `-error` when `error` is not zero;
/// with [`NOTIF_FLAG_CONTINUE`] the kernel runs the call itself.
pub fn notif_send(fd: RawFd, id: u64, val: i64, error: i32, flags: u32) -> io::Result<()> {
    let mut r = SeccompNotifResp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: `r` is a valid `struct seccomp_notif_resp`; the kernel only reads it.
    unsafe { notif_send_ioctl(fd, &mut r) }.map_err(io::Error::from)?;
    Ok(())
}

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the kernel wakes the supervisor and
/// the caller synchronously, on the waker's CPU, as a `poll`-less request and reply do.
const NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

nix::ioctl_write_int_bad!(
    notif_set_flags_ioctl,
    nix::request_code_write!(b'!', 4, std::mem::size_of::<u64>())
);

/// Asks for synchronous wake-ups on seccomp listener `fd`: a trapped call and its answer
/// then hand the CPU over directly between the caller and the supervisor rather than
/// waking the other on any CPU (a cross-CPU wake costs tens of microseconds on a VM).
/// Kernels before 6.6 refuse it (EINVAL); the listener works as before.
pub fn notif_sync_wake_up(fd: RawFd) -> io::Result<()> {
    // SAFETY: SECCOMP_IOCTL_NOTIF_SET_FLAGS takes its flags by value; no memory is passed.
    unsafe { notif_set_flags_ioctl(fd, NOTIF_FD_SYNC_WAKE_UP as libc::c_int) }
        .map_err(io::Error::from)?;
    Ok(())
}

/// The `struct stat` of open descriptor `fd`, as the bytes `fstat(2)` writes.
pub fn fstat_bytes(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is a writable `struct stat`, which is what fstat fills in.
    check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: zero-initialised and then filled by the kernel: every byte is initialised.
    let st = unsafe { st.assume_init() };
    // SAFETY: `st` is a plain C struct of `size_of::<stat>()` initialised bytes that
    // lives for the whole borrow.
    let raw = unsafe {
        std::slice::from_raw_parts(
            (&st as *const libc::stat).cast::<u8>(),
            std::mem::size_of::<libc::stat>(),
        )
    };
    Ok(raw.to_vec())
}

/// Makes system call `nr` with `args` in this process. For tests only (feature
/// `test-raw-syscall`): they measure how many bytes the kernel writes into a buffer, to
/// check the system-call table's struct sizes.
#[cfg(feature = "test-raw-syscall")]
pub fn raw_syscall(nr: i64, args: [u64; 6]) -> i64 {
    // SAFETY: tests call this only with pointer arguments into buffers they own that are
    // larger than anything the call writes (4 KiB), or with descriptors they own.
    let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if r < 0 {
        -(io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
    } else {
        r
    }
}

/// `PTRACE_LISTEN`: the seized tracee, in a group-stop, stays stopped (as its parent
/// sees it) but is woken, and reports again, when SIGCONT or another signal arrives.
pub fn ptrace_listen(pid: Pid) -> io::Result<()> {
    // SAFETY: PTRACE_LISTEN takes no addresses (both are 0); it only changes the tracee's
    // state, and the kernel refuses it unless the tracee is in a group-stop.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_LISTEN,
            pid.as_raw(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret).map(|_| ())
}

/// `PTRACE_CONT` delivering signal `sig` (0 for none). Unlike nix's, any signal number
/// the kernel has: real-time signals too.
pub fn ptrace_cont(pid: Pid, sig: i32) -> io::Result<()> {
    // SAFETY: PTRACE_CONT reads no memory: its address is unused and its data is the
    // signal number, passed by value.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_CONT,
            pid.as_raw(),
            std::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long as *mut libc::c_void,
        )
    };
    check(ret).map(|_| ())
}

/// `waitpid(pid, &status, __WALL | (WNOHANG if !block))`: the raw status (decode it with
/// libc's `WIFSTOPPED`, ...), or `None` if not blocking and nothing changed. Unlike nix's,
/// it reads any status, a stop with a real-time signal too.
pub fn wait_raw(pid: Pid, block: bool) -> io::Result<Option<i32>> {
    let mut status = 0;
    let flags = libc::__WALL | if block { 0 } else { libc::WNOHANG };
    // SAFETY: the kernel writes one int into `status`, which outlives the call.
    let ret = unsafe { libc::waitpid(pid.as_raw(), &mut status, flags) };
    match check(ret as libc::c_long)? {
        0 => Ok(None),
        _ => Ok(Some(status)),
    }
}

/// Of the signal a ptrace-stopped tracee stopped with (`PTRACE_GETSIGINFO`): its number,
/// `si_code` and the sending process (`si_pid`, meaningful for signals sent by kill).
pub fn stop_siginfo(pid: Pid) -> io::Result<(i32, i32, i32)> {
    let mut info = [0u8; 128];
    // SAFETY: the kernel writes one 128-byte `siginfo_t` into `info`, which has exactly
    // that size and outlives the call.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGINFO,
            pid.as_raw(),
            std::ptr::null_mut::<libc::c_void>(),
            info.as_mut_ptr(),
        )
    };
    check(ret)?;
    Ok(siginfo_sender(&info))
}

/// (`si_signo`, `si_code`, `si_pid`) of a raw x86-64 `siginfo_t`.
pub fn siginfo_sender(info: &[u8]) -> (i32, i32, i32) {
    let at = |o: usize| {
        info.get(o..o + 4)
            .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
            .unwrap_or(0)
    };
    (at(0), at(8), at(16))
}

/// `struct pm_scan_arg` of `PAGEMAP_SCAN` (Linux 6.7).
#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

const _: () = assert!(std::mem::size_of::<PmScanArg>() == 96);

/// `struct page_region`: pages `[start, end)` whose categories are `categories`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PageRegion {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Their `PAGE_IS_*` bits (only those asked for).
    pub categories: u64,
}

const _: () = assert!(std::mem::size_of::<PageRegion>() == 24);

/// `PAGE_IS_FILE`: a file page (or shared memory), not private anonymous memory.
pub const PAGE_IS_FILE: u64 = 1 << 2;
/// `PAGE_IS_PRESENT`: in memory.
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
/// `PAGE_IS_SWAPPED`: in swap.
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;

nix::ioctl_readwrite!(pagemap_scan_ioctl, b'f', 16, PmScanArg);

/// `PAGEMAP_SCAN` on the `/proc/PID/pagemap` of a process: the regions of
/// `[start, end)` that have at least one of the categories `any_of`, each with its
/// categories among `report` (regions of equal categories come merged). Fills `out`
/// (which must not be empty) and returns how many regions it holds and the address the
/// walk stopped at: below `end` when `out` was full, and the caller asks again from there.
/// Kernels before 6.7 answer `ENOTTY` (or `EINVAL`).
pub fn pagemap_scan(
    pagemap: std::os::fd::BorrowedFd<'_>,
    start: u64,
    end: u64,
    any_of: u64,
    report: u64,
    out: &mut [PageRegion],
) -> io::Result<(usize, u64)> {
    use std::os::fd::AsRawFd;
    let mut arg = PmScanArg {
        size: std::mem::size_of::<PmScanArg>() as u64,
        start,
        end,
        vec: out.as_mut_ptr() as u64,
        vec_len: out.len() as u64,
        category_anyof_mask: any_of,
        return_mask: report,
        ..Default::default()
    };
    // SAFETY: `arg` is a valid `struct pm_scan_arg`; the kernel writes at most `vec_len`
    // `struct page_region`s to `vec`, which points at `out`, borrowed mutably for the call,
    // and updates `walk_end` in `arg`.
    let n =
        unsafe { pagemap_scan_ioctl(pagemap.as_raw_fd(), &mut arg) }.map_err(io::Error::from)?;
    Ok(((n as usize).min(out.len()), arg.walk_end))
}
