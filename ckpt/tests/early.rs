//! A capture reads the memory map (`/proc/PID/smaps`) while the process still runs, and
//! keeps it only if nothing could have changed it before the freeze: no system call that
//! changes mappings or their flags, and the same layout in `/proc/PID/maps` once frozen.
//! Programs that change their map all the time must be captured as they are frozen.

// Not every test file uses every helper.
#[allow(dead_code)]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use common::build;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `map_window MODE`, and the address it printed.
fn start(mode: &str) -> (Running, i32, u64) {
    let mut child = Command::new(build("map_window"))
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out: ChildStdout = child.stdout.take().unwrap();
    let pid = child.id() as i32;
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let addr = u64::from_str_radix(line.trim(), 16).unwrap();
    (running, pid, addr)
}

/// Captures `pid` (whose descriptors, a pipe among them, are not the point).
fn capture(pid: i32) -> om_ckpt::Frozen {
    let opts = om_ckpt::Options {
        keep_files: true,
        ..Default::default()
    };
    om_ckpt::capture_with(pid, opts).unwrap()
}

/// The `/proc/PID/smaps` entry (its line and its VmFlags) of the mapping holding `addr`.
fn entry(pid: i32, addr: u64) -> (u64, u64, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut at = None;
    for line in text.lines() {
        if let Some((range, _)) = line.split_once(' ').filter(|_| !line.contains(": ")) {
            let (a, b) = range.split_once('-').unwrap();
            let (a, b) = (
                u64::from_str_radix(a, 16).unwrap(),
                u64::from_str_radix(b, 16).unwrap(),
            );
            at = (a <= addr && addr < b).then_some((a, b));
        } else if let (Some((a, b)), Some(flags)) = (at, line.strip_prefix("VmFlags:")) {
            return (a, b, flags.to_string());
        }
    }
    panic!("no mapping of {pid} holds {addr:#x}");
}

#[test]
fn flags_changed_while_the_map_is_read_are_captured_as_they_are_frozen() {
    let (_p, pid, addr) = start("flip");
    let mut kept = 0;
    for i in 0..30 {
        let frozen = capture(pid);
        let vma = frozen
            .image()
            .vmas
            .iter()
            .find(|v| v.start <= addr && addr < v.end)
            .unwrap();
        let (_, _, flags) = entry(pid, addr);
        assert_eq!(
            vma.advice.contains(&libc::MADV_DONTDUMP),
            flags.split_whitespace().any(|f| f == "dd"),
            "capture {i}: the image's advice {:?}, the frozen process's flags {flags}",
            vma.advice
        );
        kept += usize::from(frozen.before().map_kept);
        frozen.resume().unwrap();
    }
    // It changes its flags with every call: the map read early rarely stands (only when
    // the process did not get to make a call while it was read).
    assert!(kept < 15, "the map read early stood {kept} times of 30");
}

#[test]
fn a_stack_grown_while_the_map_is_read_is_captured_as_it_is_frozen() {
    let (_p, pid, addr) = start("grow");
    let (mut grown, mut quiet) = (0, 0);
    for i in 0..20000 {
        let frozen = capture(pid);
        let stack = frozen
            .image()
            .vmas
            .iter()
            .find(|v| v.name == "[stack]")
            .unwrap();
        let (start, end, _) = entry(pid, addr);
        assert_eq!(
            (stack.start, stack.end),
            (start, end),
            "capture {i}: the image's stack is not the frozen process's"
        );
        let done = end - start >= 7 << 20;
        match (frozen.before().map_kept, done) {
            (false, false) => grown += 1,
            (true, true) => quiet += 1,
            _ => {}
        }
        frozen.resume().unwrap();
        if quiet >= 3 {
            break;
        }
    }
    // It makes no system call: only a change of layout made the map be read again.
    assert!(
        grown > 0,
        "the growing stack never made the map be read again"
    );
    // Once it has stopped growing, the map read early stands.
    assert!(
        quiet >= 3,
        "the map read early of a quiet process did not stand"
    );
}
