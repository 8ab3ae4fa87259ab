//! Files a process maps while it is away from home.
//!
//! Its descriptors are at home, so a private file mapping (`mmap` of a file with
//! `MAP_PRIVATE`, as the dynamic loader and most readers of data files make) cannot be
//! made at the remote node from the file itself. The remote end copies the file's bytes
//! from home (forwarded `pread`s) into a memfd of its own, puts the memfd into the guest
//! at the descriptor number the call names (seccomp's ADDFD) and lets the kernel make the
//! call on it (CONTINUE): the mapping has the file's bytes, flags and protections, and its
//! private changes are the process's own, as natively.
//!
//! A [`HomeFiles`] table keeps one copy per file (device, inode, size and modification
//! time, as `fstat` at home says), filled as mappings need it. A file no larger than
//! [`WHOLE`] is copied whole, and hashed: when the process is captured, its mappings of
//! the copy become mappings of the file at home again ([`HomeFiles::give_back`]), so that
//! home, or a node with the same file, maps its own. Of a larger file only the mapped
//! ranges are copied; its mappings stay memfd mappings, whose pages come from where the
//! process was, like those of a deleted file.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::image::{Backing, FileId, ProcessImage, PAGE_SIZE};

/// Files up to this size are copied whole on their first mapping.
pub const WHOLE: u64 = 64 << 20;

/// The most a guest's copies may hold in all. They are this node's memory, charged to
/// omd rather than to the guest: past it, the process goes home to map more.
pub const LIMIT: u64 = 512 << 20;

/// The prefix of the memfds' names (`/memfd:om-home-file:N (deleted)` in the maps).
const NAME: &str = "om-home-file:";

/// What `fstat` at home says of a file, as far as mappings care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` and its nanoseconds.
    pub mtime: (i64, i64),
}

impl Identity {
    /// The identity in a raw `struct stat`, if it is a regular file's.
    pub fn of_stat(stat: &[u8]) -> Option<Identity> {
        use std::mem::offset_of;
        let u64_at = |at: usize| Some(u64::from_ne_bytes(stat.get(at..at + 8)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_ne_bytes(stat.get(at..at + 4)?.try_into().ok()?));
        let mode = u32_at(offset_of!(libc::stat, st_mode))?;
        if mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        Some(Identity {
            dev: u64_at(offset_of!(libc::stat, st_dev))?,
            ino: u64_at(offset_of!(libc::stat, st_ino))?,
            size: u64_at(offset_of!(libc::stat, st_size))?,
            mtime: (
                u64_at(offset_of!(libc::stat, st_mtime))? as i64,
                u64_at(offset_of!(libc::stat, st_mtime_nsec))? as i64,
            ),
        })
    }
}

/// The page-aligned range of a file of `size` bytes that a mapping of `len` bytes at
/// file offset `offset` shows (empty past the end of the file), or the whole file if it
/// is small enough to copy whole.
pub fn wanted(size: u64, offset: u64, len: u64) -> (u64, u64) {
    let round = |x: u64| x.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
    if size <= WHOLE {
        return (0, round(size));
    }
    let start = (offset / PAGE_SIZE) * PAGE_SIZE;
    let end = round(offset.saturating_add(len).min(size)).max(start);
    (start, end)
}

/// The parts of `want` that `have` (sorted, disjoint ranges) lacks.
pub fn missing(have: &[(u64, u64)], want: (u64, u64)) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = want.0;
    for &(s, e) in have {
        if e <= at || s >= want.1 {
            continue;
        }
        if s > at {
            out.push((at, s));
        }
        at = at.max(e);
    }
    if at < want.1 {
        out.push((at, want.1));
    }
    out
}

/// Adds range `r` to the sorted, disjoint `have`, merging neighbours.
fn add(have: &mut Vec<(u64, u64)>, r: (u64, u64)) {
    have.push(r);
    have.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(have.len());
    for &(s, e) in have.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *have = merged;
}

/// The copy of one home file.
pub struct Copy {
    /// The memfd holding it, at the file's own offsets.
    pub memfd: OwnedFd,
    /// Which ranges of it are filled.
    filled: Vec<(u64, u64)>,
    /// The file at home, once it is copied whole and hashed.
    home: Option<FileId>,
}

impl Copy {
    /// What of `want` it still lacks.
    pub fn missing(&self, want: (u64, u64)) -> Vec<(u64, u64)> {
        missing(&self.filled, want)
    }

    /// Writes `bytes` at file offset `at`.
    pub fn fill(&mut self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        let f = std::fs::File::from(self.memfd.try_clone()?);
        std::os::unix::fs::FileExt::write_all_at(&f, bytes, at)?;
        add(&mut self.filled, (at, at + bytes.len() as u64));
        Ok(())
    }

    /// Marks the range from `at` to the end of the file as read (the file ended there).
    pub fn ends_at(&mut self, at: u64, end: u64) {
        if at < end {
            add(&mut self.filled, (at, end));
        }
    }

    /// Records that the copy holds all of home's `path`, whose BLAKE3 hash is `hash`.
    pub fn whole(&mut self, path: String, size: u64, hash: String) {
        self.home = Some(FileId { path, size, hash });
    }
}

/// The home files a guest has mapped while away.
#[derive(Default)]
pub struct HomeFiles {
    copies: HashMap<Identity, (u32, Copy)>,
}

impl HomeFiles {
    /// Whether copying `more` bytes keeps the copies within [`LIMIT`].
    pub fn has_room(&self, more: u64) -> bool {
        let held: u64 = self
            .copies
            .values()
            .flat_map(|(_, c)| c.filled.iter().map(|(s, e)| e - s))
            .sum();
        held.saturating_add(more) <= LIMIT
    }

    /// The copy of file `id`, made (empty, of the file's size) on first use.
    pub fn copy_of(&mut self, id: Identity) -> std::io::Result<&mut Copy> {
        let n = self.copies.len() as u32;
        let made = match self.copies.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let name = format!("{NAME}{n}");
                let memfd = nix::sys::memfd::memfd_create(
                    name.as_str(),
                    nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
                )
                .map_err(std::io::Error::from)?;
                std::fs::File::from(memfd.try_clone()?).set_len(id.size)?;
                e.insert((
                    n,
                    Copy {
                        memfd,
                        filled: Vec::new(),
                        home: None,
                    },
                ))
            }
        };
        Ok(&mut made.1)
    }

    /// The raw descriptor of the copy of `id` (for ADDFD).
    pub fn fd_of(&self, id: &Identity) -> Option<i32> {
        self.copies.get(id).map(|(_, c)| c.memfd.as_raw_fd())
    }

    /// Makes the mappings of whole copies in a captured guest's `image` mappings of their
    /// home files again (the pages the process changed are in the image; the rest are the
    /// file's), so that home's maps show the file and the next node maps its own copy if
    /// it has the same.
    pub fn give_back(&self, image: &mut ProcessImage) {
        for v in &mut image.vmas {
            let Some(n) = v
                .name
                .strip_prefix("/memfd:")
                .and_then(|r| r.strip_prefix(NAME))
                .and_then(|r| r.strip_suffix(" (deleted)"))
                .and_then(|r| r.parse::<u32>().ok())
            else {
                continue;
            };
            let home = self
                .copies
                .values()
                .find(|(k, _)| *k == n)
                .and_then(|(_, c)| c.home.clone());
            if let Some(id) = home {
                v.name = id.path.clone();
                v.backing = Backing::File(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_copied_whole_and_large_ones_by_range() {
        assert_eq!(wanted(10_000, 4096, 4096), (0, 12_288));
        let big = WHOLE + 4096;
        assert_eq!(wanted(big, 8192, 100), (8192, 12_288));
        // The last page of the file, partly past its end.
        assert_eq!(wanted(big + 10, big, 8192), (big, big + 4096));
        // Past the end of the file nothing is wanted.
        assert_eq!(wanted(big, big + 8192, 4096), (big + 8192, big + 8192));
    }

    #[test]
    fn what_is_missing_is_found_and_filled_ranges_merge() {
        let mut have = Vec::new();
        add(&mut have, (4096, 8192));
        add(&mut have, (12_288, 16_384));
        assert_eq!(
            missing(&have, (0, 20_480)),
            vec![(0, 4096), (8192, 12_288), (16_384, 20_480)]
        );
        add(&mut have, (8192, 12_288));
        assert_eq!(have, vec![(4096, 16_384)]);
        assert!(missing(&have, (4096, 16_384)).is_empty());
    }

    #[test]
    fn only_regular_files_have_an_identity() {
        let mut st = [0u8; std::mem::size_of::<libc::stat>()];
        let put = |st: &mut [u8], at: usize, b: &[u8]| st[at..at + b.len()].copy_from_slice(b);
        put(
            &mut st,
            std::mem::offset_of!(libc::stat, st_mode),
            &(libc::S_IFREG | 0o644).to_ne_bytes(),
        );
        put(
            &mut st,
            std::mem::offset_of!(libc::stat, st_ino),
            &77u64.to_ne_bytes(),
        );
        put(
            &mut st,
            std::mem::offset_of!(libc::stat, st_size),
            &5000i64.to_ne_bytes(),
        );
        let id = Identity::of_stat(&st).unwrap();
        assert_eq!((id.ino, id.size), (77, 5000));
        put(
            &mut st,
            std::mem::offset_of!(libc::stat, st_mode),
            &libc::S_IFCHR.to_ne_bytes(),
        );
        assert_eq!(Identity::of_stat(&st), None);
        assert_eq!(Identity::of_stat(&st[..10]), None);
    }
}
