//! The guest's seccomp filter, built from the system-call table: calls of class
//! [`Class::Native`] run in the kernel (anonymous `mmap` only), every other call waits for
//! the supervisor (`SECCOMP_RET_USER_NOTIF`), and so does anything that is not a plain
//! x86-64 call (the 32-bit `int $0x80` entry, x32 numbers): the supervisor sends the
//! process home to make it, where it is answered as it always was.

use crate::syscalls::{guard_of, table, Class, GUARDED};

/// `seccomp(2)` operation installing a filter.
pub const SET_MODE_FILTER: u64 = 1;
/// Return a listener descriptor for user notifications.
pub const FLAG_NEW_LISTENER: u64 = 1 << 3;
/// Once the supervisor has received a notification, only fatal signals interrupt the wait
/// (so a signal forwarded while a call runs at home is handled when the call returns).
pub const FLAG_WAIT_KILLABLE_RECV: u64 = 1 << 5;

/// `seccomp_data.arch` of a call through the 64-bit entry.
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
/// The bit of an x32 call's number.
pub(crate) const X32_BIT: u32 = 0x4000_0000;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0_LO: u32 = 16;
const OFF_ARG3_LO: u32 = 16 + 3 * 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// Numbers the kernel runs for the guest (mmap is checked separately).
pub fn native_numbers() -> Vec<u32> {
    table()
        .iter()
        .filter(|e| e.class == Class::Native && e.name != "mmap")
        .map(|e| e.nr as u32)
        .collect()
}

fn program() -> Vec<Insn> {
    let native: Vec<u32> = native_numbers()
        .into_iter()
        .filter(|&nr| guard_of(u64::from(nr)).is_none())
        .collect();
    let prctl_home = crate::syscalls::prctl_forwarded();
    // Layout: [arch check][x32 check][one jeq per native call][mmap jeq][prctl jeq]
    //         [one jeq per guarded call][notify][mmap: load flags][jset anon][notify]
    //         [prctl: load option][one jeq per forwarded option][allow][notify]
    //         [per guarded call: load arg0, jeq its value][notify]
    //         [allow]
    let n = native.len();
    let m = prctl_home.len();
    let g = GUARDED.len();
    let mut p = Vec::new();
    p.push(insn(LD_W_ABS, 0, 0, OFF_ARCH));
    // Index of each label, computed from the layout above.
    let after_checks = 4;
    let mmap_jeq = after_checks + n;
    let prctl_jeq = mmap_jeq + 1;
    let guard_jeq = prctl_jeq + 1;
    let notify = guard_jeq + g;
    let mmap_body = notify + 1;
    let prctl_body = mmap_body + 3;
    let prctl_allow = prctl_body + 1 + m;
    let prctl_notify = prctl_allow + 1;
    let guard_body = prctl_notify + 1;
    let guard_notify = guard_body + 2 * g;
    let allow = guard_notify + 1;
    let rel = |from: usize, to: usize| -> u8 {
        u8::try_from(to - from - 1).expect("filter jump fits in 8 bits")
    };
    p.push(insn(JEQ_K, 0, rel(1, notify), AUDIT_ARCH_X86_64));
    p.push(insn(LD_W_ABS, 0, 0, OFF_NR));
    p.push(insn(JGE_K, rel(3, notify), 0, X32_BIT));
    for (i, nr) in native.iter().enumerate() {
        let at = after_checks + i;
        p.push(insn(JEQ_K, rel(at, allow), 0, *nr));
    }
    p.push(insn(
        JEQ_K,
        rel(mmap_jeq, mmap_body),
        0,
        libc::SYS_mmap as u32,
    ));
    p.push(insn(
        JEQ_K,
        rel(prctl_jeq, prctl_body),
        0,
        libc::SYS_prctl as u32,
    ));
    for (i, gd) in GUARDED.iter().enumerate() {
        let at = guard_jeq + i;
        p.push(insn(JEQ_K, rel(at, guard_body + 2 * i), 0, gd.nr as u32));
    }
    p.push(insn(RET_K, 0, 0, RET_USER_NOTIF));
    p.push(insn(LD_W_ABS, 0, 0, OFF_ARG3_LO));
    p.push(insn(
        JSET_K,
        rel(mmap_body + 1, allow),
        0,
        libc::MAP_ANONYMOUS as u32,
    ));
    p.push(insn(RET_K, 0, 0, RET_USER_NOTIF));
    p.push(insn(LD_W_ABS, 0, 0, OFF_ARG0_LO));
    for (j, opt) in prctl_home.iter().enumerate() {
        let at = prctl_body + 1 + j;
        p.push(insn(JEQ_K, rel(at, prctl_notify), 0, *opt));
    }
    p.push(insn(RET_K, 0, 0, RET_ALLOW));
    p.push(insn(RET_K, 0, 0, RET_USER_NOTIF));
    for (i, gd) in GUARDED.iter().enumerate() {
        let at = guard_body + 2 * i;
        p.push(insn(LD_W_ABS, 0, 0, OFF_ARG0_LO));
        p.push(insn(
            JEQ_K,
            rel(at + 1, allow),
            rel(at + 1, guard_notify),
            gd.native_when,
        ));
    }
    p.push(insn(RET_K, 0, 0, RET_USER_NOTIF));
    p.push(insn(RET_K, 0, 0, RET_ALLOW));
    debug_assert_eq!(p.len(), allow + 1);
    p
}

/// The filter as the bytes of a `struct sock_filter` array.
pub fn guest_filter() -> Vec<u8> {
    let mut out = Vec::new();
    for i in program() {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the filter decides for a call: runs the program as the kernel would.
    fn decide(arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let prog = program();
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_ne_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0;
        while pc < prog.len() {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    let o = i.k as usize;
                    acc = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap_or([0; 4]));
                }
                JEQ_K | JGE_K | JSET_K => {
                    let taken = match i.code {
                        JEQ_K => acc == i.k,
                        JGE_K => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
                _ => return i.k,
            }
        }
        panic!("the filter ran off its end")
    }

    #[test]
    fn native_calls_pass_and_others_and_foreign_abis_notify() {
        let none = [0u64; 6];
        assert_eq!(
            decide(AUDIT_ARCH_X86_64, libc::SYS_futex as u32, none),
            RET_ALLOW
        );
        assert_eq!(
            decide(AUDIT_ARCH_X86_64, libc::SYS_brk as u32, none),
            RET_ALLOW
        );
        assert_eq!(
            decide(AUDIT_ARCH_X86_64, libc::SYS_read as u32, none),
            RET_USER_NOTIF
        );
        assert_eq!(
            decide(AUDIT_ARCH_X86_64, libc::SYS_openat as u32, none),
            RET_USER_NOTIF
        );
        assert_eq!(
            decide(AUDIT_ARCH_X86_64, libc::SYS_clone as u32, none),
            RET_USER_NOTIF
        );
        assert_eq!(decide(AUDIT_ARCH_X86_64, 999, none), RET_USER_NOTIF);
        // i386 (`int $0x80`) calls, even with the number of a native x86-64 call, and
        // x32 calls wait for the supervisor, which sends the process home.
        assert_eq!(decide(0x4000_0003, 1, none), RET_USER_NOTIF);
        assert_eq!(
            decide(0x4000_0003, libc::SYS_futex as u32, none),
            RET_USER_NOTIF
        );
        assert_eq!(
            decide(AUDIT_ARCH_X86_64, X32_BIT | libc::SYS_getpid as u32, none),
            RET_USER_NOTIF
        );
        let mut anon = none;
        anon[3] = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        assert_eq!(
            decide(AUDIT_ARCH_X86_64, libc::SYS_mmap as u32, anon),
            RET_ALLOW
        );
        let mut file = none;
        file[3] = libc::MAP_PRIVATE as u64;
        assert_eq!(
            decide(AUDIT_ARCH_X86_64, libc::SYS_mmap as u32, file),
            RET_USER_NOTIF
        );
        for nr in native_numbers() {
            let mut a = none;
            a[0] = guard_of(u64::from(nr)).map_or(0, |g| u64::from(g.native_when));
            assert_eq!(decide(AUDIT_ARCH_X86_64, nr, a), RET_ALLOW, "{nr}");
        }
        // prctl: the options answered at home are trapped, the rest run here (a capture
        // of the guest injects PR_GET_TID_ADDRESS, which must not wait for anyone).
        let prctl = |option: i32| {
            let mut a = none;
            a[0] = option as u64;
            decide(AUDIT_ARCH_X86_64, libc::SYS_prctl as u32, a)
        };
        assert_eq!(prctl(libc::PR_SET_PDEATHSIG), RET_USER_NOTIF);
        assert_eq!(prctl(libc::PR_GET_DUMPABLE), RET_USER_NOTIF);
        assert_eq!(prctl(libc::PR_SET_SECCOMP), RET_USER_NOTIF);
        assert_eq!(prctl(libc::PR_GET_TID_ADDRESS), RET_ALLOW);
        assert_eq!(prctl(libc::PR_SET_THP_DISABLE), RET_ALLOW);
        // Guarded calls: native about the caller itself (pid 0) or as a query, trapped
        // when they name a pid (the home pid means nothing here) or set a personality.
        let first = |nr: i64, a0: u64| {
            let mut a = none;
            a[0] = a0;
            decide(AUDIT_ARCH_X86_64, nr as u32, a)
        };
        for gd in GUARDED {
            let nr = gd.nr as i64;
            assert_eq!(
                first(nr, u64::from(gd.native_when)),
                RET_ALLOW,
                "{}",
                gd.name
            );
            assert_eq!(first(nr, 4242), RET_USER_NOTIF, "{}", gd.name);
        }
        assert_eq!(first(libc::SYS_sched_getaffinity, 0), RET_ALLOW);
        assert_eq!(first(libc::SYS_sched_getaffinity, 1), RET_USER_NOTIF);
        assert_eq!(first(libc::SYS_personality, 0xffff_ffff), RET_ALLOW);
        assert_eq!(first(libc::SYS_personality, 0x0040_0000), RET_USER_NOTIF);
    }
}
