//! The process image: everything `capture` learns about a process, as plain data.
//!
//! This is the metadata half of a checkpoint (`image.json`); the memory itself travels
//! separately, as the runs listed in [`ProcessImage::pages`], through a
//! [`PageSource`](crate::PageSource). The format is versioned by [`IMAGE_VERSION`] and
//! documented in `docs/image-format.md`.

use serde::{Deserialize, Serialize};

/// Version of the image layout written. Bump on any incompatible change.
///
/// Version 2 added [`Backing::Shared`] and file backings of deleted or memfd files (whose
/// path ends in ` (deleted)`); a version 1 image is still read.
pub const IMAGE_VERSION: u32 = 2;

/// The image versions this build reads.
pub const READS_VERSIONS: std::ops::RangeInclusive<u32> = 1..=IMAGE_VERSION;

/// Size of a page on x86-64.
pub const PAGE_SIZE: u64 = 4096;

/// General-purpose registers, as `struct user_regs_struct` (x86-64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

/// Conversions to and from the kernel's `user_regs_struct`, from one list of the fields.
macro_rules! regs_conversions {
    ($($f:ident),*) => {
        impl Regs {
            /// From `PTRACE_GETREGS`.
            pub fn from_raw(r: &libc::user_regs_struct) -> Regs {
                Regs { $($f: r.$f),* }
            }

            /// For `PTRACE_SETREGS`.
            pub fn to_raw(&self) -> libc::user_regs_struct {
                libc::user_regs_struct { $($f: self.$f),* }
            }
        }
    };
}

regs_conversions!(
    r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs,
    eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs
);

/// Kernel return codes that ask for a system call to be restarted.
const ERESTARTSYS: i64 = -512;
const ERESTARTNOINTR: i64 = -513;
const ERESTARTNOHAND: i64 = -514;
/// What an interrupted system call returns that the kernel restarts through
/// `restart_syscall`.
pub(crate) const ERESTART_RESTARTBLOCK: i64 = -516;

impl Regs {
    /// Whether the process was stopped inside a system call that the kernel would restart.
    pub fn interrupted_syscall(&self) -> Option<u64> {
        let rax = self.rax as i64;
        let restart = matches!(
            rax,
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND | ERESTART_RESTARTBLOCK
        );
        ((self.orig_rax as i64) >= 0 && restart).then_some(self.orig_rax)
    }

    /// The registers a restored process must start with: an interrupted system call is
    /// re-issued from its `syscall` instruction with its original arguments (which the
    /// kernel leaves in the argument registers), and the "in a system call" marker is
    /// cleared so the kernel does not apply its own restart logic on top.
    ///
    /// A sleep with a relative timeout (`nanosleep`, restart-block calls) therefore starts
    /// over with its full duration: it may last longer, but never returns early or with
    /// a spurious `EINTR`.
    pub fn for_resume(&self) -> Regs {
        let mut r = *self;
        if let Some(nr) = self.interrupted_syscall() {
            r.rax = nr;
            r.rip -= 2;
        }
        r.orig_rax = u64::MAX;
        r
    }
}

/// What backs a memory mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backing {
    /// Private anonymous memory (including `[heap]` and `[stack]`).
    Anon,
    /// A private (or read-only shared) mapping of a regular file. A file that was
    /// deleted (or a memfd) keeps the name the kernel shows, ending in ` (deleted)`: no
    /// node has it, and its pages come with the process.
    File(FileId),
    /// Shared memory that no other process maps: `MAP_SHARED|MAP_ANONYMOUS`, `/dev/zero`,
    /// or a shared mapping of a deleted file or memfd that no descriptor holds. Restored
    /// as new shared anonymous memory with the same contents (all of its pages are in
    /// the image).
    Shared,
    /// `[vdso]`, `[vvar]`, `[vvar_vclock]`: moved, never copied.
    Vdso {
        /// The name as `/proc/PID/maps` shows it, e.g. `[vdso]`.
        name: String,
    },
}

/// Identity of a mapped file: a mapping is made from the local file only when the file at
/// `path` has the same size and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// Absolute path.
    pub path: String,
    /// Size in bytes at capture time.
    pub size: u64,
    /// BLAKE3 hash of the whole file, lower-case hex.
    pub hash: String,
}

/// One virtual memory area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vma {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: i32,
    /// `MAP_SHARED` (only read-only file mappings can be shared).
    pub shared: bool,
    /// File offset of `start`.
    pub offset: u64,
    /// The name `/proc/PID/maps` shows (`[heap]`, `[stack]`, a path, or empty).
    pub name: String,
    /// What backs it.
    pub backing: Backing,
    /// Grows down (the main stack).
    pub grows_down: bool,
    /// `madvise` advice to re-apply (`MADV_*` values).
    pub advice: Vec<i32>,
    /// Locked in memory (`mlock`, `VM_LOCKED`).
    #[serde(default)]
    pub locked: bool,
}

impl Vma {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the area is empty (never, for a real mapping).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// A run of consecutive pages whose contents are part of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRun {
    /// Address of the first page.
    pub addr: u64,
    /// Number of pages.
    pub pages: u64,
}

impl PageRun {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.addr + self.pages * PAGE_SIZE
    }
}

/// `struct kernel_sigaction` for one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigAction {
    /// Signal number.
    pub signo: i32,
    /// Handler address, or `SIG_DFL` (0) / `SIG_IGN` (1).
    pub handler: u64,
    /// `SA_*` flags.
    pub flags: u64,
    /// `sa_restorer`.
    pub restorer: u64,
    /// Signals blocked while the handler runs.
    pub mask: u64,
}

/// A queued signal, as the 128-byte `siginfo_t` the kernel reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignal {
    /// Queued for the whole process (true) or for the thread.
    pub shared: bool,
    /// Raw `siginfo_t`.
    pub siginfo: Vec<u8>,
}

impl PendingSignal {
    /// The signal number (`si_signo`).
    pub fn signo(&self) -> i32 {
        i32::from_ne_bytes(self.siginfo[0..4].try_into().unwrap_or([0; 4]))
    }
}

/// `stack_t` of the alternate signal stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AltStack {
    /// Base address.
    pub sp: u64,
    /// `SS_*` flags (`SS_DISABLE` when there is none).
    pub flags: i32,
    /// Size in bytes.
    pub size: u64,
}

/// One interval timer (`ITIMER_REAL`, `ITIMER_VIRTUAL`, `ITIMER_PROF`), in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ITimer {
    /// `ITIMER_*`.
    pub which: i32,
    /// Reload value.
    pub interval_us: u64,
    /// Time to the next expiry.
    pub value_us: u64,
}

/// A POSIX timer (`timer_create`), as `/proc/PID/timers` and `timer_gettime` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosixTimer {
    /// Its id (restored as the same id).
    pub id: i32,
    /// `CLOCK_*`.
    pub clock: i32,
    /// `SIGEV_SIGNAL` or `SIGEV_NONE`, with `SIGEV_THREAD_ID` for a signal to the
    /// process's own thread.
    pub notify: i32,
    /// The signal it sends.
    pub signo: i32,
    /// `sigev_value` delivered with the signal.
    pub value: u64,
    /// Reload interval, in nanoseconds (0: one-shot).
    pub interval_ns: u64,
    /// Time to the next expiry, in nanoseconds (0: disarmed).
    pub remaining_ns: u64,
    /// What `timer_getoverrun` answered: the overruns of the last signal delivered.
    #[serde(default)]
    pub overrun: i32,
    /// A periodic timer whose signal was queued, not yet delivered: how many expirations
    /// it had missed since (its `si_overrun` so far). The signal is then not in
    /// [`ProcessImage::pending`]; restore makes the timer queue it again, with these
    /// overruns and those still to come.
    #[serde(default)]
    pub queued_overrun: Option<i32>,
}

/// State of the whole address space that neither the mappings nor the registers show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmState {
    /// `PR_SET_THP_DISABLE`: no transparent huge pages.
    pub thp_disable: bool,
    /// The `membarrier` commands the process registered for
    /// (`MEMBARRIER_CMD_GET_REGISTRATIONS`, a mask of `MEMBARRIER_CMD_REGISTER_*`).
    pub membarrier: u32,
}

/// Registered restartable sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rseq {
    /// Address of `struct rseq`.
    pub addr: u64,
    /// Its registered length.
    pub len: u32,
    /// The abort signature.
    pub signature: u32,
}

impl From<om_sys::Rseq> for Rseq {
    fn from(r: om_sys::Rseq) -> Self {
        Self {
            addr: r.addr,
            len: r.len,
            signature: r.signature,
        }
    }
}

/// An open file descriptor (regular file or directory) to reopen by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFile {
    /// Descriptor number.
    pub fd: i32,
    /// Absolute path.
    pub path: String,
    /// `O_*` flags as `/proc/PID/fdinfo` shows them (includes `O_CLOEXEC`).
    pub flags: i32,
    /// File offset.
    pub pos: u64,
}

/// The kernel's view of the address-space layout (`struct prctl_mm_map` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MmLayout {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// Resource limit (`RLIMIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_*`.
    pub resource: i32,
    /// Soft limit (`u64::MAX` = infinity).
    pub cur: u64,
    /// Hard limit.
    pub max: u64,
}

/// User and group identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creds {
    /// Real, effective, saved uid.
    pub uid: [u32; 3],
    /// Real, effective, saved gid.
    pub gid: [u32; 3],
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// Everything about one single-threaded process except its memory contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessImage {
    /// [`IMAGE_VERSION`] at the time of writing.
    pub version: u32,
    /// The pid it had.
    pub pid: i32,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// Path of the executable.
    pub exe: String,
    /// Working directory.
    pub cwd: String,
    /// General registers.
    pub regs: Regs,
    /// The XSAVE area (`NT_X86_XSTATE`): x87, SSE, AVX, AVX-512 ...
    pub xstate: Vec<u8>,
    /// XCR0 of the capturing CPU (which state components the area holds).
    pub xcr0: u64,
    /// Memory mappings, in address order.
    pub vmas: Vec<Vma>,
    /// Pages whose contents travel with the image, in address order.
    pub pages: Vec<PageRun>,
    /// The pages of its private anonymous mappings are not in [`ProcessImage::pages`]:
    /// any of them may hold data, and the page source lists them later
    /// ([`crate::PageSource::anon_index`]). A lazy migration captures so, to keep the
    /// page-table walk out of the freeze; such an image restores only lazily, from a
    /// source that reads the original.
    #[serde(default)]
    pub anon_unlisted: bool,
    /// Blocked signals.
    pub sigmask: u64,
    /// Queued signals.
    pub pending: Vec<PendingSignal>,
    /// Handlers for signals 1..=64 (except SIGKILL, SIGSTOP).
    pub sigactions: Vec<SigAction>,
    /// Alternate signal stack.
    pub altstack: AltStack,
    /// Interval timers.
    pub itimers: Vec<ITimer>,
    /// POSIX timers (none in a version 1 image).
    #[serde(default)]
    pub timers: Vec<PosixTimer>,
    /// When the timers' times were read: the time of day in nanoseconds since the epoch
    /// (0: unknown). Restored timers have run on since, as the clocks have.
    #[serde(default)]
    pub timers_read_at_ns: u64,
    /// Memory-wide state the kernel keeps for the process (version 2).
    #[serde(default)]
    pub mm_state: MmState,
    /// Robust futex list head and length.
    pub robust_list: (u64, u64),
    /// Restartable sequence registration.
    pub rseq: Option<Rseq>,
    /// `clear_child_tid` (`set_tid_address`).
    pub clear_child_tid: u64,
    /// Resource limits.
    pub rlimits: Vec<Rlimit>,
    /// File mode creation mask.
    pub umask: u32,
    /// Execution domain (`personality(2)`).
    pub personality: u32,
    /// Raw `/proc/PID/auxv`.
    pub auxv: Vec<u8>,
    /// Address-space layout known to the kernel.
    pub mm: MmLayout,
    /// Descriptors other than 0, 1, 2.
    pub files: Vec<OpenFile>,
    /// Identity.
    pub creds: Creds,
}

impl ProcessImage {
    /// Total bytes of memory contents listed in [`ProcessImage::pages`].
    pub fn page_bytes(&self) -> u64 {
        self.pages.iter().map(|r| r.pages * PAGE_SIZE).sum()
    }

    /// The interrupted system call, if the process was stopped inside one.
    pub fn interrupted_syscall(&self) -> Option<u64> {
        self.regs.interrupted_syscall()
    }
}
