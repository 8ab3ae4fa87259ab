//! Where a restored process's memory comes from: the [`PageSource`] trait, a source
//! reading a (frozen) process's memory, and a source reading an image's page file.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

use crate::error::PageError;
use crate::image::{PageRun, PAGE_SIZE};
use crate::sys;

/// Supplies the bytes of pages listed in an image's page index.
///
/// Eager restore asks for every run before the process runs; lazy restore asks for the
/// pages around each fault first and streams the rest in the background. Requests never
/// leave the image's page index.
pub trait PageSource: Send {
    /// Fills `buf` with the original's memory at `addr`.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), PageError>;

    /// Reads each `(addr, len)` of `wanted` in turn, handing its bytes to `got` in the
    /// same order. A source across a link asks for several at once (the replies stream
    /// back while the caller writes the earlier ones); this one reads them one by one.
    /// After an error the source is not used again (the restore asking fails).
    fn read_each(
        &mut self,
        wanted: &[(u64, usize)],
        got: &mut PagesGot<'_>,
    ) -> Result<(), PageError> {
        let mut buf = Vec::new();
        for &(addr, len) in wanted {
            buf.resize(len, 0);
            self.read(addr, &mut buf)?;
            got(addr, &buf)?;
        }
        Ok(())
    }

    /// The pages that hold data in the original's private anonymous mappings `ranges`
    /// (the ones an image with [`ProcessImage::anon_unlisted`](crate::ProcessImage) does
    /// not list), in address order. Only a source that reads the original can tell; one
    /// across a link asks the original's node, which knows the ranges from the image.
    fn anon_index(&mut self, ranges: &[(u64, u64)]) -> Result<Vec<PageRun>, PageError> {
        let _ = ranges;
        Err(PageError::NoIndex(
            "it holds only the pages an image lists".into(),
        ))
    }

    /// Whether it reads any address of the original's memory (a live or frozen process,
    /// here or at another node), not only the pages the image lists (a checkpoint file).
    /// Only such a source can supply the pages of a mapped file this node lacks.
    fn reads_any_address(&self) -> bool {
        false
    }
}

/// Takes the bytes at an address, for [`PageSource::read_each`].
pub type PagesGot<'a> = dyn FnMut(u64, &[u8]) -> Result<(), PageError> + 'a;

/// Most bytes one page request from another node may ask for.
pub const MAX_PEER_READ: u64 = 64 << 20;

/// Serves a page request from another node: `len` bytes (at most [`MAX_PEER_READ`]) at
/// `addr`, or nothing if they cannot be read (the asking end reports that).
pub fn read_for_peer(source: &mut dyn PageSource, addr: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len.min(MAX_PEER_READ) as usize];
    match source.read(addr, &mut buf) {
        Ok(()) => buf,
        Err(_) => Vec::new(),
    }
}

/// Reads (and writes) a process's memory directly. Reads go through `process_vm_readv`,
/// which is fastest and waits for a page userfaultfd has not filled in yet, except
/// where the process shares a page copy-on-write with another (a child it forked):
/// `process_vm_readv` pins the pages it reads, which makes the process a private copy of
/// such a page (doubling the memory of a parent and child), so a range holding one is
/// read through `/proc/PID/mem`, which leaves it shared. `/proc/PID/mem` also reaches
/// what `process_vm_readv` cannot (`PROT_NONE` or read-only pages). Writes go through
/// `process_vm_writev` first, then `/proc/PID/mem`.
pub struct ProcessMemory {
    pid: Pid,
    mem: File,
    /// `/proc/PID/pagemap`, to find shared pages (None: every range is read as shared).
    pagemap: Option<File>,
}

impl ProcessMemory {
    /// Opens the memory of `pid` (which should be stopped while it is read) for reading.
    pub fn open(pid: i32) -> std::io::Result<Self> {
        Ok(Self {
            pid: Pid::from_raw(pid),
            mem: File::open(format!("/proc/{pid}/mem"))?,
            pagemap: File::open(format!("/proc/{pid}/pagemap")).ok(),
        })
    }

    /// Opens the memory of `pid` for reading and writing.
    pub fn open_rw(pid: i32) -> std::io::Result<Self> {
        Ok(Self {
            pid: Pid::from_raw(pid),
            mem: File::options()
                .read(true)
                .write(true)
                .open(format!("/proc/{pid}/mem"))?,
            pagemap: File::open(format!("/proc/{pid}/pagemap")).ok(),
        })
    }

    /// Whether `[addr, addr + len)` may hold a page shared with another process.
    fn may_share(&self, addr: u64, len: usize) -> bool {
        let Some(pm) = &self.pagemap else {
            return true;
        };
        let start = addr / PAGE_SIZE * PAGE_SIZE;
        let end = (addr + len as u64).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        shared_pages(pm, start, end).map_or(true, |runs| !runs.is_empty())
    }

    /// Reads `buf.len()` bytes at `addr`.
    pub fn read_at(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let len = buf.len();
        let mut done = 0;
        if self.may_share(addr, len) {
            while done < len {
                match self.mem.read_at(&mut buf[done..], addr + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        while done < len {
            let at = addr + done as u64;
            let mut local = [IoSliceMut::new(&mut buf[done..])];
            let remote = [RemoteIoVec {
                base: at as usize,
                len: len - done,
            }];
            match process_vm_readv(self.pid, &mut local, &remote) {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        if done < len {
            self.mem
                .read_exact_at(&mut buf[done..], addr + done as u64)?;
        }
        Ok(())
    }

    /// Writes `bytes` at `addr` (needs [`ProcessMemory::open_rw`]).
    pub fn write_at(&self, addr: u64, bytes: &[u8]) -> std::io::Result<()> {
        let done = process_vm_writev(
            self.pid,
            &[IoSlice::new(bytes)],
            &[RemoteIoVec {
                base: addr as usize,
                len: bytes.len(),
            }],
        )
        .unwrap_or(0);
        if done < bytes.len() {
            self.mem.write_all_at(&bytes[done..], addr + done as u64)?;
        }
        Ok(())
    }
}

impl PageSource for ProcessMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), PageError> {
        self.read_at(addr, buf)
            .map_err(|source| PageError::Io { addr, source })
    }
    fn reads_any_address(&self) -> bool {
        true
    }
    fn anon_index(&mut self, ranges: &[(u64, u64)]) -> Result<Vec<PageRun>, PageError> {
        anon_pages(self.pid.as_raw(), ranges)
            .map_err(|e| PageError::NoIndex(format!("pagemap: {e}")))
    }
}

/// The pages that hold data (present or swapped) in process `pid`'s anonymous mappings
/// `ranges`, in address order.
pub(crate) fn anon_pages(pid: i32, ranges: &[(u64, u64)]) -> std::io::Result<Vec<PageRun>> {
    let pagemap = File::open(format!("/proc/{pid}/pagemap"))?;
    let mut runs = Vec::new();
    for &(start, end) in ranges {
        runs.extend(touched_pages(&pagemap, start, end, false)?);
    }
    Ok(runs)
}

/// The page file of an image: the runs of the page index stored back to back.
pub struct ImagePages {
    file: File,
    /// (run, offset of its first byte in the file)
    index: Vec<(PageRun, u64)>,
}

impl ImagePages {
    /// Opens `path`, laid out after `runs`; its size must match.
    pub fn open(path: &Path, runs: &[PageRun]) -> Result<Self, PageError> {
        let file = File::open(path).map_err(|source| PageError::Io { addr: 0, source })?;
        let mut index = Vec::with_capacity(runs.len());
        let mut off = 0;
        for r in runs {
            index.push((*r, off));
            off += r.pages * PAGE_SIZE;
        }
        let size = file
            .metadata()
            .map_err(|source| PageError::Io { addr: 0, source })?
            .len();
        if size != off {
            return Err(PageError::Io {
                addr: 0,
                source: std::io::Error::other(format!(
                    "{} holds {size} bytes but its index lists {off}",
                    path.display()
                )),
            });
        }
        Ok(Self { file, index })
    }
}

impl PageSource for ImagePages {
    fn read(&mut self, mut addr: u64, mut buf: &mut [u8]) -> Result<(), PageError> {
        while !buf.is_empty() {
            let i = self.index.partition_point(|(r, _)| r.end() <= addr);
            let (run, off) = match self.index.get(i) {
                Some(&(run, off)) if run.addr <= addr => (run, off),
                _ => return Err(PageError::NotInImage(addr)),
            };
            let n = ((run.end() - addr) as usize).min(buf.len());
            let (head, tail) = buf.split_at_mut(n);
            self.file
                .read_exact_at(head, off + (addr - run.addr))
                .map_err(|source| PageError::Io { addr, source })?;
            addr += n as u64;
            buf = tail;
        }
        Ok(())
    }
}

/// Bits of a `/proc/PID/pagemap` entry.
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;
const PM_EXCLUSIVE: u64 = 1 << 56;

/// The runs of pages of `[start, end)` whose pagemap entry satisfies `keep`.
fn pages_where(
    pagemap: &File,
    start: u64,
    end: u64,
    keep: impl Fn(u64) -> bool,
) -> std::io::Result<Vec<PageRun>> {
    let n = ((end - start) / PAGE_SIZE) as usize;
    let mut raw = vec![0u8; n * 8];
    pagemap.read_exact_at(&mut raw, start / PAGE_SIZE * 8)?;
    let mut runs: Vec<PageRun> = Vec::new();
    for (i, e) in raw.chunks_exact(8).enumerate() {
        let e = u64::from_ne_bytes(e.try_into().unwrap_or([0; 8]));
        if !keep(e) {
            continue;
        }
        let addr = start + i as u64 * PAGE_SIZE;
        match runs.last_mut() {
            Some(r) if r.end() == addr => r.pages += 1,
            _ => runs.push(PageRun { addr, pages: 1 }),
        }
    }
    Ok(runs)
}

/// The pages of `[start, end)` whose contents belong in an image: for anonymous memory
/// every page that was ever touched (present or swapped); for a private file mapping
/// only the pages the process has written to (its private copies).
///
/// Asked of the kernel with `PAGEMAP_SCAN`, which answers in runs of pages rather than a
/// pagemap entry of 8 bytes per page to read and decode (kernels before 6.7 get that
/// instead). Both walk the page tables, which is most of the time either way (about 11 ms
/// per GiB of 4 KiB pages here); the scan holds no buffer that grows with the mapping.
pub(crate) fn touched_pages(
    pagemap: &File,
    start: u64,
    end: u64,
    file_backed: bool,
) -> std::io::Result<Vec<PageRun>> {
    match scanned_pages(pagemap, start, end, file_backed) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => {
            pages_where(pagemap, start, end, |e| touched_entry(e, file_backed))
        }
        r => r,
    }
}

/// Whether a pagemap entry `e` is of a page [`touched_pages`] keeps.
fn touched_entry(e: u64, file_backed: bool) -> bool {
    if file_backed {
        (e & PM_PRESENT != 0 && e & PM_FILE == 0) || e & PM_SWAPPED != 0
    } else {
        e & (PM_PRESENT | PM_SWAPPED) != 0
    }
}

/// [`touched_pages`] by `PAGEMAP_SCAN`.
fn scanned_pages(
    pagemap: &File,
    start: u64,
    end: u64,
    file_backed: bool,
) -> std::io::Result<Vec<PageRun>> {
    use std::os::fd::AsFd;
    use sys::{PageRegion, PAGE_IS_FILE, PAGE_IS_PRESENT, PAGE_IS_SWAPPED};
    let any_of = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    let report = any_of | PAGE_IS_FILE;
    let mut out = vec![PageRegion::default(); 512];
    let mut runs: Vec<PageRun> = Vec::new();
    let mut at = start;
    while at < end {
        let (n, walked) = sys::pagemap_scan(pagemap.as_fd(), at, end, any_of, report, &mut out)?;
        for r in &out[..n] {
            let c = r.categories;
            // A private file mapping's own pages are its anonymous copies (or swapped).
            let keep = !file_backed
                || (c & PAGE_IS_PRESENT != 0 && c & PAGE_IS_FILE == 0)
                || c & PAGE_IS_SWAPPED != 0;
            if !keep || r.end <= r.start {
                continue;
            }
            let pages = (r.end - r.start) / PAGE_SIZE;
            match runs.last_mut() {
                Some(last) if last.end() == r.start => last.pages += pages,
                _ => runs.push(PageRun {
                    addr: r.start,
                    pages,
                }),
            }
        }
        if walked <= at {
            break;
        }
        at = walked;
    }
    Ok(runs)
}

/// The private (anonymous) pages of `[start, end)` that another process maps too: the
/// copy-on-write sharing of a parent and a child it forked, until either writes the
/// page (the shared zero page counts too; it holds no memory of its own either).
/// Dropping such a page frees nothing, and writing it, even with the same bytes, makes
/// a copy.
pub fn shared_pages(pagemap: &File, start: u64, end: u64) -> std::io::Result<Vec<PageRun>> {
    pages_where(pagemap, start, end, |e| {
        e & PM_PRESENT != 0 && e & (PM_FILE | PM_EXCLUSIVE) == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs a per-entry pagemap read gives, the fallback of [`touched_pages`].
    fn by_entry(pagemap: &File, start: u64, end: u64, file_backed: bool) -> Vec<PageRun> {
        pages_where(pagemap, start, end, |e| touched_entry(e, file_backed)).unwrap()
    }

    #[test]
    fn a_scan_finds_the_pages_a_pagemap_read_finds() {
        // A heap block of 64 pages (malloc maps it on its own), some of them touched.
        let mut block = vec![0u8; 64 << 12];
        for i in [0usize, 1, 2, 3, 10, 11, 40, 41, 42, 43, 44, 63] {
            block[i << 12] = 7;
        }
        std::hint::black_box(&block);
        // Every mapping of this process: anonymous ones, and private file mappings with
        // pages of their own (the binary's and libc's data) and without.
        let pagemap = File::open("/proc/self/pagemap").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let (mut anon, mut file) = (0, 0);
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next().unwrap(), f.next().unwrap());
            let path = f.nth(3).unwrap_or("");
            if path == "[vsyscall]" || perms.ends_with('s') {
                continue;
            }
            let (s, e) = range.split_once('-').unwrap();
            let (s, e) = (
                u64::from_str_radix(s, 16).unwrap(),
                u64::from_str_radix(e, 16).unwrap(),
            );
            let file_backed = path.starts_with('/');
            let read = by_entry(&pagemap, s, e, file_backed);
            let scanned = scanned_pages(&pagemap, s, e, file_backed).unwrap();
            // The mapping changed meanwhile (this thread's own allocations, its stack).
            if by_entry(&pagemap, s, e, file_backed) != read {
                continue;
            }
            assert_eq!(scanned, read, "{line}");
            let n: u64 = scanned.iter().map(|r| r.pages).sum();
            if file_backed {
                file += n;
            } else {
                anon += n;
            }
        }
        assert!(anon >= 12, "{anon} anonymous pages");
        assert!(file > 0, "no private copies of file pages");
    }
}
