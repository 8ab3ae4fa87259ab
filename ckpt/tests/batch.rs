//! Batched injection: a table of system calls made by a loop inside a traced stub, in
//! runs of what the scratch area holds, stopping at the first call that may not fail
//! and does; the same answers without the loop, one injected call at a time.

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use om_ckpt::inject::{Injector, Queued};

const PAGE: u64 = 4096;
/// Where the stub maps its code page and scratch area (16 pages), far from our own.
const SCRATCH: u64 = 0x3e00_0000_0000;
/// The memory the batches map and carve.
const AREA: u64 = 0x3f00_0000_0000;

struct Stub(Pid);

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGKILL);
        let _ = waitpid(self.0, Some(WaitPidFlag::__WALL));
    }
}

fn stub(with_loop: bool) -> (Stub, Injector) {
    let pid = om_sys::fork_stub(SCRATCH, 16 * PAGE as usize, &[0x0f, 0x05, 0xcc]).unwrap();
    let s = Stub(pid);
    assert!(matches!(
        waitpid(pid, Some(WaitPidFlag::__WALL)),
        Ok(WaitStatus::Stopped(_, Signal::SIGSTOP))
    ));
    let mut inj = Injector::new(pid, SCRATCH).unwrap();
    inj.scratch = SCRATCH + PAGE;
    inj.scratch_len = 15 * PAGE;
    if with_loop {
        inj.load_batch_code(SCRATCH + 64).unwrap();
    }
    (s, inj)
}

fn call(nr: i64, args: [u64; 6], may_fail: bool) -> Queued {
    Queued { nr, args, may_fail }
}

fn mmap(at: u64, pages: u64, flags: i32) -> Queued {
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags) as u64;
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    call(
        libc::SYS_mmap,
        [at, pages * PAGE, prot, flags, u64::MAX, 0],
        false,
    )
}

/// The stub's mappings inside the area.
fn area_maps(pid: Pid) -> Vec<(u64, u64, String)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .filter_map(|l| {
            let (range, rest) = l.split_once(' ')?;
            let (a, b) = range.split_once('-')?;
            let (a, b) = (
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            );
            let perms = rest.split(' ').next()?.to_string();
            (a >= AREA && b <= AREA + (1 << 32)).then_some((a, b, perms))
        })
        .collect()
}

/// Maps 2500 pages, then makes every other one read-only: more calls than one run holds.
fn carve(inj: &mut Injector) -> Option<(usize, Errno)> {
    let mut calls = vec![mmap(AREA, 2500, libc::MAP_FIXED)];
    for i in (1..2500).step_by(2) {
        let prot = libc::PROT_READ as u64;
        calls.push(call(
            libc::SYS_mprotect,
            [AREA + i * PAGE, PAGE, prot, 0, 0, 0],
            false,
        ));
    }
    // Advice the kernel has not got: may fail, and does.
    calls.push(call(libc::SYS_madvise, [AREA, PAGE, 9999, 0, 0, 0], true));
    assert!(calls.len() > 15 * PAGE as usize / 64);
    inj.batch(&calls).unwrap()
}

#[test]
fn a_batch_longer_than_the_scratch_area_makes_every_call() {
    for with_loop in [true, false] {
        let (s, mut inj) = stub(with_loop);
        assert_eq!(carve(&mut inj), None);
        let maps = area_maps(s.0);
        assert_eq!(maps.len(), 2500, "with the loop: {with_loop}");
        assert!(maps.iter().enumerate().all(|(i, m)| {
            let perms = if i % 2 == 0 { "rw-p" } else { "r--p" };
            m.0 == AREA + i as u64 * PAGE && m.2 == perms
        }));
        // The stub still takes single injected calls afterwards.
        assert_eq!(inj.raw(libc::SYS_getpid, &[]).unwrap(), s.0.as_raw() as i64);
    }
}

#[test]
fn a_batch_stops_at_the_first_call_that_may_not_fail_and_does() {
    for with_loop in [true, false] {
        let (s, mut inj) = stub(with_loop);
        let calls = [
            mmap(AREA, 3, libc::MAP_FIXED),
            call(libc::SYS_madvise, [AREA, PAGE, 9999, 0, 0, 0], true),
            mmap(AREA + PAGE, 1, libc::MAP_FIXED_NOREPLACE),
            mmap(AREA + 8 * PAGE, 1, libc::MAP_FIXED),
        ];
        assert_eq!(
            inj.batch(&calls).unwrap(),
            Some((2, Errno::EEXIST)),
            "with the loop: {with_loop}"
        );
        // What came before the failure was made, what came after was not.
        let maps = area_maps(s.0);
        assert_eq!(maps, vec![(AREA, AREA + 3 * PAGE, "rw-p".to_string())]);
    }
}

#[test]
fn a_batch_of_every_call_gives_each_ones_result() {
    for with_loop in [true, false] {
        let (s, mut inj) = stub(with_loop);
        // More than one run holds: getpid, a call that fails, getppid, over and over.
        let rounds = 400;
        let mut calls = Vec::new();
        for _ in 0..rounds {
            calls.push(call(libc::SYS_getpid, [0; 6], false));
            calls.push(call(libc::SYS_madvise, [AREA, PAGE, 9999, 0, 0, 0], false));
            calls.push(call(libc::SYS_getppid, [0; 6], false));
        }
        assert!(calls.len() > 15 * PAGE as usize / 64);
        let results = inj.batch_each(&calls).unwrap();
        let ppid = std::process::id() as i64;
        let expected: Vec<i64> = (0..rounds)
            .flat_map(|_| [s.0.as_raw() as i64, -(libc::EINVAL as i64), ppid])
            .collect();
        assert_eq!(results, expected, "with the loop: {with_loop}");
    }
}
