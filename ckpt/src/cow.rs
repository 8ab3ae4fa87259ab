//! Coming home without losing copy-on-write sharing.
//!
//! A process that forked a child before it left shares its unchanged private pages with
//! that child, as `fork` left them. Rebuilding its memory from the returning image
//! (new mappings, every page written) would make private copies of all of them: nothing
//! a program can see, but the memory the two use doubles. So coming home, a private
//! anonymous mapping that the home process still has exactly as the image has it (same
//! bounds, protection and flags), and of which it shares pages with another process, is
//! kept: a page shared at home whose bytes did not change away is left alone, every
//! other page of the image is written, and the pages the image lacks (the process
//! dropped them away) are dropped.
//!
//! This relies on the original process holding the pages as they were when it left:
//! whatever kept it meanwhile (a deputy) must not have touched its memory outside its
//! own area, and may have dropped only the pages it did not share.

use procfs::process::{MMPermissions, MMapPath, MemoryMap};

use crate::capture::advice_of;
use crate::error::RestoreError;
use crate::image::{Backing, PageRun, ProcessImage, Vma, PAGE_SIZE};
use crate::pages::{shared_pages, PageSource, ProcessMemory};
use crate::ranges::RangeMap;

/// A mapping of the home process kept as it is.
#[derive(Debug)]
pub(crate) struct Kept {
    pub start: u64,
    pub end: u64,
    /// Its pages shared with another process.
    shared: RangeMap,
}

/// The private anonymous mappings of the home process `pid` to keep (see the module
/// documentation), in address order. Best effort: what cannot be read is rebuilt, as
/// every mapping was before.
pub(crate) fn shared_at_home(pid: i32, image: &ProcessImage) -> Vec<Kept> {
    let Ok(maps) = crate::smaps::read(pid) else {
        return Vec::new();
    };
    let Ok(pagemap) = std::fs::File::open(format!("/proc/{pid}/pagemap")) else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    for m in maps.iter() {
        let (start, end) = m.address;
        let Ok(v) = image.vmas.binary_search_by_key(&start, |v| v.start) else {
            continue;
        };
        if !same_mapping(m, &image.vmas[v]) {
            continue;
        }
        let Ok(runs) = shared_pages(&pagemap, start, end) else {
            continue;
        };
        if runs.is_empty() {
            continue;
        }
        let mut shared = RangeMap::new();
        for r in runs {
            shared.insert(r.addr, r.end());
        }
        kept.push(Kept { start, end, shared });
    }
    kept
}

/// Whether home's mapping `m` is the image's private anonymous mapping `v`, with
/// nothing a restore would set differently. Locked memory is rebuilt (it cannot be
/// dropped page by page).
fn same_mapping(m: &MemoryMap, v: &Vma) -> bool {
    let flags = m.extension.vm_flags;
    let named = match &m.pathname {
        MMapPath::Anonymous => "",
        MMapPath::Heap => "[heap]",
        MMapPath::Stack => "[stack]",
        _ => return false,
    };
    let mut prot = 0;
    for (p, bit) in [
        (MMPermissions::READ, libc::PROT_READ),
        (MMPermissions::WRITE, libc::PROT_WRITE),
        (MMPermissions::EXECUTE, libc::PROT_EXEC),
    ] {
        if m.perms.contains(p) {
            prot |= bit;
        }
    }
    v.backing == Backing::Anon
        && !v.shared
        && !m.perms.contains(MMPermissions::SHARED)
        && m.address == (v.start, v.end)
        && v.name == named
        && v.prot == prot
        && v.grows_down == flags.contains(procfs::process::VmFlags::GD)
        && !v.locked
        && !flags.contains(procfs::process::VmFlags::LO)
        && advice_of(flags) == v.advice
}

/// Whether `v` is one of the `kept` mappings.
pub(crate) fn is_kept(kept: &[Kept], v: &Vma) -> bool {
    kept.iter().any(|k| (k.start, k.end) == (v.start, v.end))
}

/// The `runs` that lie in a kept mapping, and the others.
pub(crate) fn split_runs(kept: &[Kept], runs: Vec<PageRun>) -> (Vec<PageRun>, Vec<PageRun>) {
    runs.into_iter()
        .partition(|r| kept.iter().any(|k| k.start <= r.addr && r.end() <= k.end))
}

/// The parts of the kept mappings that no run of the image covers: the process has no
/// page there any more, so neither may home.
pub(crate) fn uncovered(kept: &[Kept], runs: &[PageRun]) -> Vec<(u64, u64)> {
    let mut gaps = RangeMap::new();
    for k in kept {
        gaps.insert(k.start, k.end);
    }
    for r in runs {
        gaps.remove(r.addr, r.end());
    }
    gaps.iter().map(|p| (p.start, p.end)).collect()
}

/// Writes the image's pages `runs` (all in `kept` mappings) from `source` into home's
/// memory `mem`, except the pages home shares with another process and holds with the
/// same bytes already.
pub(crate) fn fill_kept(
    mem: &ProcessMemory,
    source: &mut dyn PageSource,
    runs: &[PageRun],
    kept: &[Kept],
) -> Result<(), RestoreError> {
    const CHUNK: u64 = 4 << 20;
    // Sized to the largest chunk only when there is something to fill: a zeroed buffer
    // from the heap is a memset, 1.5 ms for each 4 MiB here, paid inside the freeze.
    let largest = runs
        .iter()
        .map(|r| (r.end() - r.addr).min(CHUNK))
        .max()
        .unwrap_or(0) as usize;
    if kept.is_empty() || largest == 0 {
        return Ok(());
    }
    let mut buf = vec![0u8; largest];
    let mut home = vec![0u8; largest];
    let write_err = |addr: u64| {
        move |source| RestoreError::Sys {
            what: format!("writing memory at {addr:#x}"),
            source,
        }
    };
    for r in runs {
        let Some(k) = kept.iter().find(|k| k.start <= r.addr && r.end() <= k.end) else {
            continue;
        };
        let mut addr = r.addr;
        while addr < r.end() {
            let n = (r.end() - addr).min(CHUNK);
            let incoming = &mut buf[..n as usize];
            source.read(addr, incoming)?;
            let shared = k.shared.intersect(addr, addr + n);
            if shared.is_empty() {
                mem.write_at(addr, incoming).map_err(write_err(addr))?;
                addr += n;
                continue;
            }
            let mut same = vec![false; (n / PAGE_SIZE) as usize];
            for p in &shared {
                let (off, len) = ((p.start - addr) as usize, p.len() as usize);
                let at_home = &mut home[off..off + len];
                mem.read_at(p.start, at_home)
                    .map_err(|source| RestoreError::Sys {
                        what: format!("reading home's memory at {:#x}", p.start),
                        source,
                    })?;
                for (i, page) in at_home.chunks(PAGE_SIZE as usize).enumerate() {
                    let at = off + i * PAGE_SIZE as usize;
                    same[at / PAGE_SIZE as usize] = page == &incoming[at..at + page.len()];
                }
            }
            for (first, count) in changed_runs(&same) {
                let (off, len) = (first * PAGE_SIZE as usize, count * PAGE_SIZE as usize);
                let at = addr + off as u64;
                mem.write_at(at, &incoming[off..off + len])
                    .map_err(write_err(at))?;
            }
            addr += n;
        }
    }
    Ok(())
}

/// The runs (first page, number of pages) of pages not marked `same`.
fn changed_runs(same: &[bool]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, _) in same.iter().enumerate().filter(|(_, s)| !**s) {
        match runs.last_mut() {
            Some((first, count)) if *first + *count == i => *count += 1,
            _ => runs.push((i, 1)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::{changed_runs, split_runs, uncovered, Kept};
    use crate::image::PageRun;
    use crate::ranges::RangeMap;

    fn kept(start: u64, end: u64) -> Kept {
        Kept {
            start,
            end,
            shared: RangeMap::new(),
        }
    }

    #[test]
    fn only_changed_pages_are_written() {
        assert_eq!(changed_runs(&[true, true]), []);
        assert_eq!(changed_runs(&[false, false, true]), [(0, 2)]);
        assert_eq!(
            changed_runs(&[true, false, true, false, false]),
            [(1, 1), (3, 2)]
        );
    }

    #[test]
    fn runs_split_by_kept_mappings_and_the_rest_dropped() {
        let k = [kept(0x10000, 0x20000), kept(0x40000, 0x42000)];
        let runs = vec![
            PageRun {
                addr: 0x10000,
                pages: 2,
            },
            PageRun {
                addr: 0x30000,
                pages: 1,
            },
            PageRun {
                addr: 0x40000,
                pages: 2,
            },
        ];
        let (inside, outside) = split_runs(&k, runs);
        assert_eq!(inside.len(), 2);
        assert_eq!(outside[0].addr, 0x30000);
        // The first mapping lacks all but its first two pages; the second is covered.
        assert_eq!(uncovered(&k, &inside), [(0x12000, 0x20000)]);
    }
}
