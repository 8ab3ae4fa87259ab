//! The lazy pager (post-copy): serves a restored process's missing anonymous pages through
//! userfaultfd. A fault is answered with the faulting page and its not-yet-filled
//! neighbours (an aligned [`FAULT_CHUNK`]); between events, a background pass copies the
//! rest in [`FILL_CHUNK`]s. Non-cooperative events keep the bookkeeping true: pages the
//! process drops (`MADV_DONTNEED`, `munmap`) are never filled later with stale bytes, pages
//! it moves (`mremap`) are filled at their new place, and a `fork` child gets its own
//! userfaultfd served from the same source. When nothing is left to fill, the source is
//! dropped and the userfaultfd closed: the process no longer depends on anything.
//!
//! An image may leave its anonymous pages unlisted (a lazy migration keeps the page-table
//! walk out of the freeze): every page of those mappings is then pending at first, a
//! fault fetches its own page only, and before the background pass the pager asks the
//! source which pages hold data; the others leave the pending set and read as zeros when
//! touched, as they would have at home.
//!
//! If the source fails (the link to the original's node is lost, the image is cut
//! short), every page still to come is poisoned (`UFFDIO_POISON`): a process that touches
//! one dies of SIGBUS, as on a memory error, instead of reading zeros and computing on
//! with them, and one that never does runs on. The pager then reports the source's error.
//!
//! Everything runs on one thread, so a fault, an event and the background pass never race:
//! a copy that meets a pending event fails with `EAGAIN` and is retried after the event
//! has been read.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;
use userfaultfd::{Event, EventBuffer, Uffd};

use crate::error::{PageError, RestoreError};
use crate::image::PAGE_SIZE;
use crate::pages::PageSource;
use crate::ranges::{Piece, RangeMap};
use crate::sys::{self, UffdErr};

/// Pages fetched around a fault (aligned window).
pub const FAULT_CHUNK: u64 = 64 * 1024;
/// Pages copied per background step.
pub const FILL_CHUNK: u64 = 1 << 20;

const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;
const UFFD_FEATURE_POISON: u64 = 1 << 14;

/// What the pager did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PagerStats {
    /// Page faults served.
    pub faults: u64,
    /// Pages copied in answer to faults.
    pub fault_pages: u64,
    /// Pages copied by the background pass.
    pub background_pages: u64,
    /// Faults on pages the image does not hold, answered with zeros.
    pub zero_pages: u64,
    /// Pages the process dropped or unmapped before they were filled.
    pub dropped_pages: u64,
    /// Pages of unlisted anonymous mappings that the source said hold nothing: they
    /// were never filled (their first touch reads zeros, as at home).
    pub empty_pages: u64,
    /// Pages the process moved (`mremap`) before they were filled; they are filled at
    /// their new place with the bytes of their old one.
    pub moved_pages: u64,
    /// Children forked while paging was in progress.
    pub forks: u64,
    /// Pages the source failed to supply (it reported an error, as when the link to
    /// the original's node is lost): each was poisoned, so that touching it raises
    /// SIGBUS rather than reading zeros. The pager then reports the source's error.
    pub lost_pages: u64,
    /// Time from start until every page was in place.
    pub elapsed: Duration,
}

/// Does the `UFFDIO_API` handshake with the events the pager needs, and checks that the
/// kernel can poison pages (Linux 6.6).
pub(crate) fn handshake(fd: OwnedFd) -> Result<Uffd, RestoreError> {
    use std::os::fd::AsRawFd;
    let want = UFFD_FEATURE_EVENT_FORK
        | UFFD_FEATURE_EVENT_REMAP
        | UFFD_FEATURE_EVENT_REMOVE
        | UFFD_FEATURE_EVENT_UNMAP;
    let got = sys::uffd_api(fd.as_raw_fd(), want).map_err(|source| RestoreError::Sys {
        what: "userfaultfd handshake (UFFDIO_API)".into(),
        source,
    })?;
    // The kernel reports every feature it has; UFFDIO_POISON needs no feature asked for.
    let need = want | UFFD_FEATURE_POISON;
    if got & need != need {
        return Err(RestoreError::Incompatible(format!(
            "userfaultfd lacks features for lazy paging (events, and UFFDIO_POISON of \
             Linux 6.6): needs {need:#x}, the kernel offers {got:#x}"
        )));
    }
    Ok(sys::uffd_from_fd(fd))
}

/// The running pager thread. Until [`LazyPager::release`] it only answers faults (the
/// restore itself touches a few pages), leaving the CPU to the restore; then the
/// background pass starts.
pub struct LazyPager {
    handle: Option<JoinHandle<Result<PagerStats, PageError>>>,
    go: Arc<AtomicBool>,
}

impl LazyPager {
    /// Starts serving `uffd`, whose registered `ranges` need `pending` from `source`;
    /// `unlisted` are the anonymous mappings whose pages the image did not list (all of
    /// them in `pending`, to be narrowed by [`PageSource::anon_index`]).
    pub fn start(
        uffd: Uffd,
        ranges: &[(u64, u64)],
        pending: RangeMap,
        unlisted: Vec<(u64, u64)>,
        source: Box<dyn PageSource>,
    ) -> std::io::Result<Self> {
        let mut boundaries: Vec<u64> = ranges.iter().flat_map(|&(s, e)| [s, e]).collect();
        boundaries.sort_unstable();
        boundaries.dedup();
        let go = Arc::new(AtomicBool::new(false));
        let go2 = go.clone();
        let handle = std::thread::Builder::new()
            .name("om-pager".into())
            .spawn(move || {
                // The pager runs wherever the scheduler finds room, not on the CPU the
                // restore was pinned to.
                if let Ok(all) = sched_getaffinity(Pid::from_raw(std::process::id() as i32)) {
                    let _ = sched_setaffinity(Pid::from_raw(0), &all);
                }
                Pager::new(uffd, pending, boundaries, unlisted, source).run(&go2)
            })?;
        Ok(Self {
            handle: Some(handle),
            go,
        })
    }

    /// Whether the pager has ended (every page in place, or the source failed), without
    /// waiting.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Starts the background pass.
    pub fn release(&self) {
        self.go.store(true, Ordering::Release);
    }

    /// Waits until every page is in place; if the source failed, returns its error once
    /// the pages it could not supply are poisoned.
    pub fn join(mut self) -> Result<PagerStats, PageError> {
        self.release();
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err(PageError::Io {
                addr: 0,
                source: std::io::Error::other("the pager thread panicked"),
            }),
        }
    }
}

impl Drop for LazyPager {
    fn drop(&mut self) {
        // Never leave the thread waiting: with the background pass on it finishes (or
        // finds the process gone) by itself.
        self.release();
    }
}

struct Client {
    uffd: Uffd,
    pending: RangeMap,
    alive: bool,
}

struct Pager {
    clients: Vec<Client>,
    /// Starts and ends of the registered mappings, sorted.
    boundaries: Vec<u64>,
    source: Box<dyn PageSource>,
    /// The unlisted anonymous mappings (source addresses) until the source has said
    /// which of their pages hold data; empty once it has.
    unlisted: Vec<(u64, u64)>,
    buf: Vec<u8>,
    stats: PagerStats,
    /// Why the source failed, once it has: the pages still pending are then poisoned.
    failed: Option<PageError>,
}

/// Outcome of one copy attempt.
enum Copy {
    Done,
    /// An event must be read first.
    Retry,
    /// The process is gone.
    Gone,
}

impl Pager {
    fn new(
        uffd: Uffd,
        pending: RangeMap,
        boundaries: Vec<u64>,
        unlisted: Vec<(u64, u64)>,
        source: Box<dyn PageSource>,
    ) -> Self {
        Self {
            boundaries,
            unlisted,
            clients: vec![Client {
                uffd,
                pending,
                alive: true,
            }],
            source,
            buf: vec![0u8; FILL_CHUNK as usize],
            stats: PagerStats::default(),
            failed: None,
        }
    }

    fn run(mut self, go: &AtomicBool) -> Result<PagerStats, PageError> {
        let start = Instant::now();
        let mut events = EventBuffer::new(64);
        loop {
            self.clients.retain(|c| c.alive && !c.pending.is_empty());
            if self.clients.is_empty() {
                break;
            }
            // Events first, without blocking: the background pass is always busy here.
            let ready: Vec<usize> = {
                let mut fds: Vec<PollFd> = self
                    .clients
                    .iter()
                    .map(|c| PollFd::new(c.uffd.as_fd(), PollFlags::POLLIN))
                    .collect();
                let released = go.load(Ordering::Acquire);
                let wait = if released {
                    PollTimeout::ZERO
                } else {
                    PollTimeout::from(1u8)
                };
                match poll(&mut fds, wait) {
                    Ok(_) => fds
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                        .map(|(i, _)| i)
                        .collect(),
                    Err(Errno::EINTR) => Vec::new(),
                    Err(e) => {
                        return Err(PageError::Io {
                            addr: 0,
                            source: e.into(),
                        })
                    }
                }
            };
            for i in ready {
                self.handle_events(i, &mut events);
            }
            if go.load(Ordering::Acquire) {
                self.background_step();
            }
        }
        self.stats.elapsed = start.elapsed();
        match self.failed {
            None => Ok(self.stats),
            Some(e) => Err(e),
        }
    }

    fn handle_events(&mut self, i: usize, events: &mut EventBuffer) {
        let mut todo = Vec::new();
        match self.clients[i].uffd.read_events(events) {
            Ok(it) => {
                for ev in it {
                    match ev {
                        Ok(ev) => todo.push(ev),
                        Err(_) => {
                            self.clients[i].alive = false;
                            return;
                        }
                    }
                }
            }
            Err(_) => {
                self.clients[i].alive = false;
                return;
            }
        }
        for ev in todo {
            match ev {
                Event::Pagefault { addr, .. } => self.fault(i, addr as u64),
                Event::Fork { uffd } => {
                    self.stats.forks += 1;
                    let pending = self.clients[i].pending.clone();
                    self.clients.push(Client {
                        uffd,
                        pending,
                        alive: true,
                    });
                }
                Event::Remap { from, to, len } => {
                    let moved =
                        self.clients[i]
                            .pending
                            .relocate(from as u64, to as u64, len as u64);
                    self.stats.moved_pages += moved / PAGE_SIZE;
                }
                Event::Remove { start, end } | Event::Unmap { start, end } => {
                    let dropped = self.clients[i].pending.remove(start as u64, end as u64);
                    self.stats.dropped_pages += dropped / PAGE_SIZE;
                }
            }
        }
    }

    /// Serves a fault at `addr`: the faulting page and its pending neighbours in the
    /// aligned window, or a zero page if the image never held it.
    fn fault(&mut self, i: usize, addr: u64) {
        self.stats.faults += 1;
        let page = addr & !(PAGE_SIZE - 1);
        if !self.clients[i].pending.contains(page) {
            self.stats.zero_pages += 1;
            match sys::uffd_zeropage(&self.clients[i].uffd, page, PAGE_SIZE as usize) {
                Ok(_) => {}
                Err(UffdErr::Errno(libc::EEXIST)) => {
                    let _ = self.clients[i]
                        .uffd
                        .wake(page as *mut libc::c_void, PAGE_SIZE as usize);
                }
                Err(UffdErr::Errno(libc::EAGAIN)) => {}
                Err(_) => self.clients[i].alive = false,
            }
            return;
        }
        // Until the index comes, a neighbour may be a page that never held anything:
        // filling it would make it resident where at home it was not.
        let chunk = if self.unlisted.is_empty() {
            FAULT_CHUNK
        } else {
            PAGE_SIZE
        };
        let window = page & !(chunk - 1);
        let pieces = self.clients[i].pending.intersect(window, window + chunk);
        // The faulting page's own piece first, so the process wakes as early as possible.
        let (mine, others): (Vec<_>, Vec<_>) = pieces
            .into_iter()
            .partition(|p| p.start <= page && page < p.end);
        for p in mine.into_iter().chain(others) {
            if let Copy::Gone = self.copy(i, p) {
                self.clients[i].alive = false;
                return;
            }
            if self.failed.is_none() {
                self.stats.fault_pages += p.len() / PAGE_SIZE;
            }
        }
    }

    /// Asks the source which pages of the unlisted mappings hold data, and drops the
    /// others from every client's pending set (forked children were made from the same
    /// memory). If it cannot tell, the source has failed: what is pending is lost.
    fn learn_index(&mut self) {
        let unlisted = std::mem::take(&mut self.unlisted);
        let listed = match self.source.anon_index(&unlisted) {
            Ok(runs) => runs,
            Err(e) => {
                self.failed.get_or_insert(e);
                return;
            }
        };
        let mut empty = RangeMap::new();
        for &(start, end) in &unlisted {
            empty.insert(start, end);
        }
        for r in &listed {
            empty.remove(r.addr, r.end());
        }
        for (n, c) in self.clients.iter_mut().enumerate() {
            let dropped = c.pending.remove_sources(&empty);
            if n == 0 {
                self.stats.empty_pages += dropped / PAGE_SIZE;
            }
        }
    }

    /// Copies the next chunk of some client's pending pages.
    fn background_step(&mut self) {
        if !self.unlisted.is_empty() && self.failed.is_none() {
            self.learn_index();
            return;
        }
        let Some(i) = self
            .clients
            .iter()
            .position(|c| c.alive && !c.pending.is_empty())
        else {
            return;
        };
        let Some(mut p) = self.clients[i].pending.first() else {
            return;
        };
        p.end = p.end.min(p.start + FILL_CHUNK);
        match self.copy(i, p) {
            Copy::Done if self.failed.is_none() => {
                self.stats.background_pages += p.len() / PAGE_SIZE
            }
            Copy::Done | Copy::Retry => {}
            Copy::Gone => self.clients[i].alive = false,
        }
    }

    /// Copies the piece `p` (its bytes read from the source at `p.src`, which differs
    /// from `p.start` once the process has moved it) into client `i` and marks it
    /// filled. One `UFFDIO_COPY` must stay inside one VMA, so the range is cut at the
    /// mapping boundaries known from the image; where the process has split or moved
    /// mappings since (`mprotect`, `mremap`), a refused copy (`ENOENT`) is retried page
    /// by page.
    fn copy(&mut self, i: usize, p: Piece) -> Copy {
        let mut at = p.start;
        while at < p.end {
            let cut = self
                .boundaries
                .get(self.boundaries.partition_point(|&b| b <= at))
                .copied()
                .unwrap_or(u64::MAX)
                .min(p.end);
            match self.copy_within_vma(i, at, cut, p.src + (at - p.start)) {
                Copy::Done => at = cut,
                other => return other,
            }
        }
        Copy::Done
    }

    /// Fills `[s, e)`, whose bytes the source holds at `src`, in client `i`: with those
    /// bytes, or, once the source has failed, with poison (see [`PagerStats::lost_pages`]).
    fn copy_within_vma(&mut self, i: usize, s: u64, e: u64, src: u64) -> Copy {
        let n = (e - s) as usize;
        if self.failed.is_none() {
            if let Err(err) = self.source.read(src, &mut self.buf[..n]) {
                self.failed = Some(err);
            }
        }
        let c = &mut self.clients[i];
        let page = PAGE_SIZE as usize;
        let mut off = 0usize;
        let mut single = false;
        while off < n {
            let len = if single { page } else { n - off };
            let at = s + off as u64;
            let poison = self.failed.is_some();
            let done = if poison {
                sys::uffd_poison(&c.uffd, at, len)
            } else {
                sys::uffd_copy(&c.uffd, &self.buf[off..off + len], at)
            };
            match done {
                Ok(done) => {
                    let done = if done == 0 || done > len { len } else { done };
                    if poison {
                        self.stats.lost_pages += (done / page) as u64;
                    }
                    off += done;
                }
                Err(UffdErr::Partial(done)) => {
                    // The kernel reports -EAGAIN in the count when nothing was copied.
                    let done = if done > len { 0 } else { done };
                    c.pending.remove(s, at + done as u64);
                    return Copy::Retry;
                }
                Err(UffdErr::Errno(libc::EAGAIN)) => {
                    c.pending.remove(s, at);
                    return Copy::Retry;
                }
                // Already present, or (for a single page) no longer registered: that page
                // needs nothing from us.
                Err(UffdErr::Errno(libc::EEXIST | libc::ENOENT)) if single || len == page => {
                    off += page
                }
                // Part of the range is present or crosses a mapping boundary.
                Err(UffdErr::Errno(libc::EEXIST | libc::ENOENT)) => single = true,
                Err(UffdErr::Errno(_)) => return Copy::Gone,
                // The copy itself failed: from here on, the pages are lost.
                Err(UffdErr::Other(source)) => {
                    self.failed = Some(PageError::Uffd {
                        op: "UFFDIO_COPY",
                        addr: at,
                        source,
                    })
                }
            }
        }
        c.pending.remove(s, e);
        Copy::Done
    }
}
