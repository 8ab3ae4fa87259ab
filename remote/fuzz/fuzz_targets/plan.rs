//! The syscall planner on random registers and memory: what a guest at the remote node
//! can make its supervisor read. `plan` must never panic, whatever the call number,
//! arguments and memory; a call it forwards must pass the deputy's own check
//! (`Call::check`), stay within the buffer bounds, and place and collect in a scratch
//! area without panicking.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use om_remote::syscalls::{plan, Action, GuestMem, Scratch, MAX_BUFFER};

/// The guest's memory: the fuzz input's tail, repeated, at every address below a limit
/// taken from the input (above it, reads fail like unmapped memory).
struct Mem<'a> {
    bytes: &'a [u8],
    mapped_below: u64,
}

impl GuestMem for Mem<'_> {
    fn read(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
        // Large reads fail too, to keep each run fast (the planner handles EFAULT).
        let end = addr.checked_add(len as u64);
        if end.is_none_or(|e| e > self.mapped_below) || len > 1 << 18 {
            return Err(std::io::Error::other("unmapped"));
        }
        if self.bytes.is_empty() {
            return Ok(vec![0; len]);
        }
        let n = self.bytes.len();
        let mut out = Vec::with_capacity(len);
        let mut at = (addr % n as u64) as usize;
        while out.len() < len {
            let take = (n - at).min(len - out.len());
            out.extend_from_slice(&self.bytes[at..at + take]);
            at = 0;
        }
        Ok(out)
    }
}

/// The deputy's scratch area, as a sparse byte map.
#[derive(Default)]
struct Area(HashMap<u64, u8>);

impl Scratch for Area {
    fn write(&mut self, addr: u64, data: &[u8]) -> std::io::Result<()> {
        for (i, b) in data.iter().enumerate() {
            self.0.insert(addr + i as u64, *b);
        }
        Ok(())
    }
    fn read(&mut self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
        Ok((0..len as u64)
            .map(|i| self.0.get(&(addr + i)).copied().unwrap_or(0))
            .collect())
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 + 6 * 8 + 8 + 8 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
    let nr = u64::from(u16::from_le_bytes([data[0], data[1]])) % 512;
    let mut args = [0u64; 6];
    for (k, a) in args.iter_mut().enumerate() {
        // Small values are the interesting ones (lengths, counts, commands).
        let w = word(2 + 8 * k);
        *a = if w & 1 == 0 { w >> 48 } else { w };
    }
    let mapped_below = word(50);
    let ret = word(58) as i64 % (1 << 20);
    let mem = Mem {
        bytes: &data[66..],
        mapped_below,
    };
    let Action::Forward(call) = plan(nr, args, &mem) else {
        return;
    };
    assert_eq!(call.check(), Ok(()), "{call:?}");
    assert!(call.scratch_len() <= 6 * (MAX_BUFFER + 1024 * 16 + 16), "{call:?}");
    // Only small areas are placed: the byte map is slow.
    if call.scratch_len() <= 1 << 16 {
        let mut area = Area::default();
        let placed = call.place(0x10_0000, &mut area).unwrap();
        let _ = call.collect(ret, &placed, &mut area).unwrap();
    }
});
