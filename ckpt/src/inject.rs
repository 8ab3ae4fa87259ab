//! System-call injection into a ptrace-stopped process: point its registers at a
//! `syscall` instruction, single-step over it, read the result, and put the registers
//! back when done.

use std::fs::File;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::InjectError;

/// Whether raw result `r` of a system call is an error (-4095..-1).
fn failed(r: i64) -> bool {
    (-4095..0).contains(&r)
}

/// Raw result `r` of call `name`, a negative one as an error naming the call.
pub fn checked(name: &'static str, r: i64) -> Result<u64, InjectError> {
    if failed(r) {
        Err(InjectError::Failed {
            call: name,
            errno: Errno::from_raw(-r as i32),
        })
    } else {
        Ok(r as u64)
    }
}

/// Drives system calls inside a stopped tracee. Must be used on the tracer thread.
pub struct Injector {
    pid: Pid,
    /// Address of a `syscall` instruction in the tracee.
    pub insn: u64,
    /// Registers to return to when done.
    saved: libc::user_regs_struct,
    /// `/proc/PID/mem`, for the bytes of pointer arguments.
    mem: File,
    /// A writable scratch area in the tracee for pointer arguments.
    pub scratch: u64,
    pub scratch_len: u64,
    /// Where [`Injector::load_batch_code`] put the batch loop, if it did.
    batch_code: Option<u64>,
}

/// One call of a batch (see [`Injector::batch`]).
#[derive(Clone, Copy, Debug)]
pub struct Queued {
    pub nr: i64,
    pub args: [u64; 6],
    /// Its error is ignored (best-effort calls such as advice).
    pub may_fail: bool,
}

impl Injector {
    pub fn new(pid: Pid, insn: u64) -> Result<Self, InjectError> {
        let saved = ptrace::getregs(pid).map_err(|e| InjectError::Ptrace("PTRACE_GETREGS", e))?;
        let mem = File::options()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(|e| InjectError::Mem(0, e))?;
        Ok(Self {
            pid,
            insn,
            saved,
            mem,
            scratch: 0,
            scratch_len: 0,
            batch_code: None,
        })
    }

    /// Executes system call `nr` with `args` in the tracee; returns the raw result
    /// (negative errno on failure).
    pub fn raw(&mut self, nr: i64, args: &[u64]) -> Result<i64, InjectError> {
        self.raw_with(nr, args, || Ok(()))
    }

    /// Like [`Injector::raw`], running `during` while the call is under way (to answer
    /// it from a seccomp listener, for example).
    pub fn raw_with(
        &mut self,
        nr: i64,
        args: &[u64],
        during: impl FnOnce() -> std::io::Result<()>,
    ) -> Result<i64, InjectError> {
        let mut regs = self.saved;
        if self.scratch_len > 0 {
            // The stack pointer is off any alternate signal stack: a process caught in a
            // handler on it may not change it (sigaltstack fails with EPERM while on it).
            // Injected calls use no stack; the top of the scratch area is a safe value.
            regs.rsp = (self.scratch + self.scratch_len) & !15;
        }
        start_call(self.pid, regs, self.insn, nr, args)?;
        during().map_err(|e| InjectError::Mem(0, e))?;
        self.wait_trap(nr)?;
        let after =
            ptrace::getregs(self.pid).map_err(|e| InjectError::Ptrace("PTRACE_GETREGS", e))?;
        Ok(after.rax as i64)
    }

    /// Waits for the tracee's trap after call `nr` (or a batch, whose first is `nr`).
    fn wait_trap(&self, nr: i64) -> Result<(), InjectError> {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => return Ok(()),
                Ok(WaitStatus::Stopped(_, sig)) => {
                    return Err(InjectError::Signal { nr, signal: sig })
                }
                Ok(WaitStatus::Exited(_, code)) => return Err(InjectError::Exited(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Err(InjectError::Killed(sig)),
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(InjectError::Ptrace("waitpid", e)),
            }
        }
    }

    /// Writes the batch loop ([`crate::sys::arch::BATCH_CODE`]) at `at`, which must be
    /// executable in the tracee, so that [`Injector::batch`] can run.
    pub fn load_batch_code(&mut self, at: u64) -> Result<(), InjectError> {
        self.write(at, &crate::sys::arch::BATCH_CODE)?;
        self.batch_code = Some(at);
        Ok(())
    }

    /// Makes `calls` in order inside the tracee, as many at a time as the scratch area
    /// holds, each run of them costing the ptrace stops of one injected call. Stops at
    /// the first that fails and may not: Some(its index, its error). Without the batch
    /// loop loaded, makes them one by one.
    pub fn batch(&mut self, calls: &[Queued]) -> Result<Option<(usize, Errno)>, InjectError> {
        self.run_batch(calls, None)
    }

    /// Makes every one of `calls` (as [`Injector::batch`] does, each may fail) and returns
    /// each one's raw result (negative errno on failure), in order.
    pub fn batch_each(&mut self, calls: &[Queued]) -> Result<Vec<i64>, InjectError> {
        let calls: Vec<Queued> = calls
            .iter()
            .map(|q| Queued {
                may_fail: true,
                ..*q
            })
            .collect();
        let mut results = Vec::with_capacity(calls.len());
        self.run_batch(&calls, Some(&mut results))?;
        Ok(results)
    }

    fn run_batch(
        &mut self,
        calls: &[Queued],
        mut results: Option<&mut Vec<i64>>,
    ) -> Result<Option<(usize, Errno)>, InjectError> {
        use crate::sys::arch::{BATCH_ENTRY, BATCH_MAY_FAIL};
        let Some(code) = self
            .batch_code
            .filter(|_| self.scratch_len >= BATCH_ENTRY as u64)
        else {
            for (i, q) in calls.iter().enumerate() {
                let r = self.raw(q.nr, &q.args)?;
                if let Some(out) = results.as_deref_mut() {
                    out.push(r);
                }
                if failed(r) && !q.may_fail {
                    return Ok(Some((i, Errno::from_raw(-r as i32))));
                }
            }
            return Ok(None);
        };
        let per_run = self.scratch_len as usize / BATCH_ENTRY;
        for (run, chunk) in calls.chunks(per_run).enumerate() {
            let mut table = Vec::with_capacity(chunk.len() * BATCH_ENTRY);
            for q in chunk {
                table.extend_from_slice(&(q.nr as u64).to_ne_bytes());
                for a in q.args {
                    table.extend_from_slice(&a.to_ne_bytes());
                }
                let flags = if q.may_fail { BATCH_MAY_FAIL } else { 0 };
                table.extend_from_slice(&flags.to_ne_bytes());
            }
            self.write(self.scratch, &table)?;
            let mut regs = self.saved;
            regs.rip = code;
            regs.rbx = self.scratch;
            regs.r12 = chunk.len() as u64;
            regs.rsp = (self.scratch + self.scratch_len) & !15;
            // No restart of whatever call the registers were stopped in.
            regs.orig_rax = u64::MAX;
            ptrace::setregs(self.pid, regs)
                .map_err(|e| InjectError::Ptrace("PTRACE_SETREGS", e))?;
            ptrace::cont(self.pid, None).map_err(|e| InjectError::Ptrace("PTRACE_CONT", e))?;
            self.wait_trap(chunk[0].nr)?;
            let after =
                ptrace::getregs(self.pid).map_err(|e| InjectError::Ptrace("PTRACE_GETREGS", e))?;
            let left = (after.r12 as usize).min(chunk.len());
            if let Some(out) = results.as_deref_mut() {
                // Each call done left its result in its entry's first word.
                let done = self.read(self.scratch, (chunk.len() - left) * BATCH_ENTRY)?;
                out.extend(
                    done.chunks_exact(BATCH_ENTRY)
                        .map(|e| i64::from_ne_bytes(e[..8].try_into().expect("8 bytes"))),
                );
            }
            if left != 0 {
                let i = chunk.len() - left;
                return Ok(Some((
                    run * per_run + i,
                    Errno::from_raw(-(after.rax as i64) as i32),
                )));
            }
        }
        Ok(None)
    }

    /// Like [`Injector::raw`], but a negative result is an error naming the call.
    pub fn call(&mut self, name: &'static str, nr: i64, args: &[u64]) -> Result<u64, InjectError> {
        checked(name, self.raw(nr, args)?)
    }

    /// Writes `data` into the tracee at `addr` (any protection: `/proc/PID/mem` forces).
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), InjectError> {
        self.mem
            .write_all_at(data, addr)
            .map_err(|e| InjectError::Mem(addr, e))
    }

    /// Reads `len` bytes of the tracee at `addr`.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, InjectError> {
        let mut buf = vec![0u8; len];
        self.mem
            .read_exact_at(&mut buf, addr)
            .map_err(|e| InjectError::Mem(addr, e))?;
        Ok(buf)
    }

    /// Writes `data` at offset `off` of the scratch area; returns its address there.
    pub fn put(&self, off: u64, data: &[u8]) -> Result<u64, InjectError> {
        if off + data.len() as u64 > self.scratch_len {
            return Err(InjectError::ScratchTooSmall(off + data.len() as u64));
        }
        self.write(self.scratch + off, data)?;
        Ok(self.scratch + off)
    }

    /// A NUL-terminated string at offset `off` of the scratch area.
    pub fn put_str(&self, off: u64, s: &str) -> Result<u64, InjectError> {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(off, &b)
    }

    /// Opens `path` in the tracee (`openat(AT_FDCWD, path, flags)`), the path passed
    /// through the start of the scratch area; returns the new descriptor.
    pub fn open(&mut self, path: &str, flags: i32) -> Result<u64, InjectError> {
        let p = self.put_str(0, path)?;
        self.call(
            "openat",
            libc::SYS_openat,
            &[libc::AT_FDCWD as u64, p, flags as u64, 0],
        )
    }

    /// Puts the saved registers back.
    pub fn finish(self) -> Result<(), InjectError> {
        ptrace::setregs(self.pid, self.saved).map_err(|e| InjectError::Ptrace("PTRACE_SETREGS", e))
    }
}

/// Points `regs` (of stopped tracee `pid`) at the `syscall` instruction `insn` with call
/// `nr(args)` loaded, and single-steps it: the call runs, and the tracee stops after it.
pub fn start_call(
    pid: Pid,
    regs: libc::user_regs_struct,
    insn: u64,
    nr: i64,
    args: &[u64],
) -> Result<(), InjectError> {
    ptrace::setregs(pid, call_regs(regs, insn, nr, args))
        .map_err(|e| InjectError::Ptrace("PTRACE_SETREGS", e))?;
    ptrace::step(pid, None).map_err(|e| InjectError::Ptrace("PTRACE_SINGLESTEP", e))
}

/// `regs` pointed at the `syscall` instruction `insn` with call `nr(args)` loaded.
pub fn call_regs(
    mut regs: libc::user_regs_struct,
    insn: u64,
    nr: i64,
    args: &[u64],
) -> libc::user_regs_struct {
    regs.rip = insn;
    regs.rax = nr as u64;
    // No restart of whatever call the registers were stopped in.
    regs.orig_rax = u64::MAX;
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    regs.rdi = a[0];
    regs.rsi = a[1];
    regs.rdx = a[2];
    regs.r10 = a[3];
    regs.r8 = a[4];
    regs.r9 = a[5];
    regs
}

/// Finds a `syscall` instruction in the code of `pid` between `start` and `end` (its
/// `[vdso]`), the instruction injected calls go through.
pub fn syscall_insn_in(pid: i32, start: u64, end: u64) -> std::io::Result<Option<u64>> {
    let mut code = vec![0u8; (end - start) as usize];
    File::open(format!("/proc/{pid}/mem"))?.read_exact_at(&mut code, start)?;
    Ok(find_syscall_insn(&code, start))
}

/// Finds a `syscall` instruction (0f 05) in `code`, which was read at `base`.
fn find_syscall_insn(code: &[u8], base: u64) -> Option<u64> {
    code.windows(2)
        .position(|w| w == [0x0f, 0x05])
        .map(|i| base + i as u64)
}
