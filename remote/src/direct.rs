//! Forwarded calls on home files that the home end makes itself, without the deputy.
//!
//! A call that works only on an open descriptor of a regular file (`read`, `write`,
//! `pread64`, `pwrite64`, `lseek`, `fstat`) does not need the process's own context:
//! the home end takes a copy of the descriptor with `pidfd_getfd` — the same open file
//! description, so the offset, the flags (`O_APPEND`) and the locks are shared with the
//! home process — and makes the call on it, which costs a system call where injecting it
//! into the deputy costs half a dozen ptrace stops.
//!
//! Only what keeps its meaning is made so: regular files (never a pipe, socket,
//! terminal or device, which may block or depend on the caller) on local file systems
//! whose reads and writes do not look at who makes them (ext2/3/4, xfs, btrfs, f2fs,
//! tmpfs, ramfs, overlayfs: not /proc or /sys, whose files check the reader, nor FUSE,
//! NFS or CIFS, which tell the server the caller's pid and credentials), not opened with
//! `O_DIRECT` (whose buffers must be aligned), and writes only while the process has no
//! file-size limit (an over-long write raises SIGXFSZ in the caller). Anything else, or
//! any doubt, goes to the deputy as before.
//!
//! The copies are kept per descriptor number and dropped whenever a call goes to the
//! deputy (any of those may close, replace or duplicate a descriptor, or change a
//! limit): the process is frozen at home and makes one call at a time, so its
//! descriptor table changes only through those calls.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::stat::SFlag;
use nix::sys::statfs::{self, FsType};
use nix::unistd::Pid;

use crate::sys;
use crate::syscalls::{Call, Reply, SlotKind};

/// The file systems whose regular files the home end reads and writes for the process.
const LOCAL: [FsType; 9] = [
    statfs::EXT2_SUPER_MAGIC,
    statfs::EXT3_SUPER_MAGIC,
    statfs::EXT4_SUPER_MAGIC,
    statfs::XFS_SUPER_MAGIC,
    statfs::BTRFS_SUPER_MAGIC,
    statfs::F2FS_SUPER_MAGIC,
    statfs::TMPFS_MAGIC,
    FsType(0x8584_58f6), // ramfs
    statfs::OVERLAYFS_SUPER_MAGIC,
];

/// Size of the `struct stat` that `fstat` fills.
const STAT_LEN: u64 = std::mem::size_of::<libc::stat>() as u64;

/// The home end's copies of the home process's file descriptors.
pub(crate) struct Direct {
    pid: i32,
    pidfd: Option<OwnedFd>,
    /// Per descriptor number: a copy if the descriptor qualifies, None if it does not.
    files: HashMap<i32, Option<OwnedFd>>,
    /// Whether the process may write files of any size (no RLIMIT_FSIZE), once asked.
    no_size_limit: Option<bool>,
}

impl Direct {
    pub(crate) fn new(pid: i32) -> Direct {
        Direct {
            pid,
            pidfd: None,
            files: HashMap::new(),
            no_size_limit: None,
        }
    }

    /// Drops every copy: the deputy is about to make a call, which may change the
    /// descriptor table or the limits.
    pub(crate) fn forget(&mut self) {
        self.files.clear();
        self.no_size_limit = None;
    }

    /// Makes `call` here if it is one that keeps its meaning so (see the module's
    /// documentation); None if the deputy must make it.
    pub(crate) fn call(&mut self, call: &Call) -> Option<Reply> {
        let op = Op::of(call)?;
        if op.writes() && !self.may_write_any_size() {
            return None;
        }
        let fd = i32::try_from(call.args[0]).ok()?;
        if !self.alive() {
            return None;
        }
        let file = self.file(fd)?;
        let fd = file.as_fd();
        let reply = match op {
            Op::Read { len, at } => {
                let mut buf = vec![0u8; len];
                let r = match at {
                    None => nix::unistd::read(fd, &mut buf),
                    Some(off) => nix::sys::uio::pread(fd, &mut buf, off),
                };
                match r {
                    Ok(n) => {
                        buf.truncate(n);
                        let outs = if n > 0 {
                            vec![(call.args[1], buf)]
                        } else {
                            Vec::new()
                        };
                        Reply {
                            ret: n as i64,
                            outs,
                        }
                    }
                    Err(e) => done(Err(e)),
                }
            }
            Op::Write { data, at } => {
                let r = match at {
                    None => nix::unistd::write(fd, data),
                    Some(off) => nix::sys::uio::pwrite(fd, data, off),
                };
                done(r.map(|n| n as i64))
            }
            Op::Seek { off, whence: w } => done(nix::unistd::lseek(fd, off, whence(w)?)),
            Op::Stat { buf } => match sys::fstat_bytes(fd) {
                Ok(st) => Reply {
                    ret: 0,
                    outs: vec![(call.args[buf], st)],
                },
                Err(e) => done(Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))),
            },
        };
        Some(reply)
    }

    /// Whether the home process still lives (its pidfd is readable once it has exited):
    /// a process killed at home makes no more calls.
    fn alive(&mut self) -> bool {
        if self.pidfd.is_none() {
            self.pidfd = sys::pidfd_open(Pid::from_raw(self.pid)).ok();
        }
        let Some(p) = &self.pidfd else {
            return false;
        };
        let mut fds = [nix::poll::PollFd::new(
            p.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        matches!(
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO),
            Ok(0)
        )
    }

    fn may_write_any_size(&mut self) -> bool {
        *self.no_size_limit.get_or_insert_with(|| {
            sys::get_rlimit(Pid::from_raw(self.pid), libc::RLIMIT_FSIZE as i32)
                .is_ok_and(|(cur, _)| cur == libc::RLIM_INFINITY)
        })
    }

    /// The copy of descriptor `fd`, if it qualifies.
    fn file(&mut self, fd: i32) -> Option<&OwnedFd> {
        if !self.files.contains_key(&fd) {
            let copy = self
                .pidfd
                .as_ref()
                .and_then(|p| sys::pidfd_getfd(p, fd).ok())
                .filter(qualifies);
            self.files.insert(fd, copy);
        }
        self.files.get(&fd)?.as_ref()
    }
}

/// Whether a copied descriptor is a regular file of a local file system, without
/// O_DIRECT.
fn qualifies(f: &OwnedFd) -> bool {
    let regular = nix::sys::stat::fstat(f.as_fd())
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG);
    let local = statfs::fstatfs(f.as_fd()).is_ok_and(|s| LOCAL.contains(&s.filesystem_type()));
    let direct = nix::fcntl::fcntl(f.as_fd(), nix::fcntl::FcntlArg::F_GETFL)
        .map_or(true, |fl| fl & libc::O_DIRECT != 0);
    regular && local && !direct
}

/// `lseek`'s `whence` (the kernel takes it as an unsigned int; another value fails with
/// EINVAL, which the deputy gives).
fn whence(w: i32) -> Option<nix::unistd::Whence> {
    use nix::unistd::Whence;
    Some(match w {
        libc::SEEK_SET => Whence::SeekSet,
        libc::SEEK_CUR => Whence::SeekCur,
        libc::SEEK_END => Whence::SeekEnd,
        libc::SEEK_DATA => Whence::SeekData,
        libc::SEEK_HOLE => Whence::SeekHole,
        _ => return None,
    })
}

/// The reply of a call that writes no memory: its result, or its negated errno.
fn done(r: nix::Result<i64>) -> Reply {
    Reply {
        ret: r.unwrap_or_else(|e| -(e as i64)),
        outs: Vec::new(),
    }
}

/// A call the home end may make itself, with its buffers.
#[derive(Debug, PartialEq, Eq)]
enum Op<'a> {
    Read {
        len: usize,
        at: Option<i64>,
    },
    Write {
        data: &'a [u8],
        at: Option<i64>,
    },
    Seek {
        off: i64,
        whence: i32,
    },
    /// `fstat`, or `newfstatat(fd, "", buf, AT_EMPTY_PATH)`; the argument of the buffer.
    Stat {
        buf: usize,
    },
}

impl<'a> Op<'a> {
    /// The call as one of these, if it is laid out exactly as the table lays them out
    /// (anything unusual, a NULL buffer, is the deputy's to make, error and all).
    fn of(call: &'a Call) -> Option<Op<'a>> {
        let a = &call.args;
        let one = |arg: u8| match call.slots.as_slice() {
            [s] if s.arg == arg => Some(&s.kind),
            _ => None,
        };
        let offset = |v: u64| i64::try_from(v).ok();
        let nr = call.nr as i64;
        Some(match nr {
            libc::SYS_read | libc::SYS_pread64 => {
                let SlotKind::Out { len, items: 1 } = one(1)? else {
                    return None;
                };
                if *len != a[2] {
                    return None;
                }
                Op::Read {
                    len: usize::try_from(*len).ok()?,
                    at: if nr == libc::SYS_pread64 {
                        Some(offset(a[3])?)
                    } else {
                        None
                    },
                }
            }
            libc::SYS_write | libc::SYS_pwrite64 => {
                let SlotKind::In(data) = one(1)? else {
                    return None;
                };
                if data.len() as u64 != a[2] {
                    return None;
                }
                Op::Write {
                    data,
                    at: if nr == libc::SYS_pwrite64 {
                        Some(offset(a[3])?)
                    } else {
                        None
                    },
                }
            }
            libc::SYS_lseek => {
                if !call.slots.is_empty() || whence(a[2] as i32).is_none() {
                    return None;
                }
                Op::Seek {
                    off: a[1] as i64,
                    whence: a[2] as i32,
                }
            }
            libc::SYS_fstat => match one(1)? {
                SlotKind::Out { len, items: 0 } if *len == STAT_LEN => Op::Stat { buf: 1 },
                _ => return None,
            },
            libc::SYS_newfstatat => {
                if a[3] as i32 != libc::AT_EMPTY_PATH {
                    return None;
                }
                match call.slots.as_slice() {
                    [p, b] if p.arg == 1 && b.arg == 2 => match (&p.kind, &b.kind) {
                        (SlotKind::In(path), SlotKind::Out { len, items: 0 })
                            if path.as_slice() == b"\0" && *len == STAT_LEN =>
                        {
                            Op::Stat { buf: 2 }
                        }
                        _ => return None,
                    },
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    fn writes(&self) -> bool {
        matches!(self, Op::Write { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::Slot;

    fn call(nr: i64, args: [u64; 6], slots: Vec<Slot>) -> Call {
        Call {
            nr: nr as u64,
            args,
            slots,
            tty_quiet: 0,
        }
    }

    fn out(arg: u8, len: u64, items: u32) -> Slot {
        Slot {
            arg,
            kind: SlotKind::Out { len, items },
        }
    }

    fn bytes(arg: u8, b: &[u8]) -> Slot {
        Slot {
            arg,
            kind: SlotKind::In(b.to_vec()),
        }
    }

    #[test]
    fn only_calls_laid_out_as_the_table_lays_them_out_are_made_here() {
        let read = call(
            libc::SYS_read,
            [3, 0x1000, 4096, 0, 0, 0],
            vec![out(1, 4096, 1)],
        );
        assert_eq!(
            Op::of(&read),
            Some(Op::Read {
                len: 4096,
                at: None
            })
        );
        let pread = call(
            libc::SYS_pread64,
            [3, 0x1000, 10, 7, 0, 0],
            vec![out(1, 10, 1)],
        );
        assert_eq!(
            Op::of(&pread),
            Some(Op::Read {
                len: 10,
                at: Some(7)
            })
        );
        // A buffer of another length than the count, or a NULL buffer: the deputy's.
        let odd = call(
            libc::SYS_read,
            [3, 0x1000, 4096, 0, 0, 0],
            vec![out(1, 10, 1)],
        );
        assert_eq!(Op::of(&odd), None);
        let null = call(libc::SYS_read, [3, 0, 4096, 0, 0, 0], vec![]);
        assert_eq!(Op::of(&null), None);
        let write = call(
            libc::SYS_write,
            [1, 0x1000, 3, 0, 0, 0],
            vec![bytes(1, b"abc")],
        );
        assert_eq!(
            Op::of(&write),
            Some(Op::Write {
                data: b"abc",
                at: None
            })
        );
        assert!(Op::of(&write).is_some_and(|o| o.writes()));
        let short = call(
            libc::SYS_write,
            [1, 0x1000, 4, 0, 0, 0],
            vec![bytes(1, b"abc")],
        );
        assert_eq!(Op::of(&short), None);
        // A negative offset fails with EINVAL at home.
        let neg = call(
            libc::SYS_pwrite64,
            [1, 0x1000, 3, u64::MAX, 0, 0],
            vec![bytes(1, b"abc")],
        );
        assert_eq!(Op::of(&neg), None);
        let seek = call(
            libc::SYS_lseek,
            [3, 5, libc::SEEK_END as u64, 0, 0, 0],
            vec![],
        );
        assert_eq!(
            Op::of(&seek),
            Some(Op::Seek {
                off: 5,
                whence: libc::SEEK_END
            })
        );
        let bad_whence = call(libc::SYS_lseek, [3, 5, 9, 0, 0, 0], vec![]);
        assert_eq!(Op::of(&bad_whence), None);
        let fstat = call(
            libc::SYS_fstat,
            [3, 0x1000, 0, 0, 0, 0],
            vec![out(1, STAT_LEN, 0)],
        );
        assert_eq!(Op::of(&fstat), Some(Op::Stat { buf: 1 }));
        let empty = libc::AT_EMPTY_PATH as u64;
        let at = call(
            libc::SYS_newfstatat,
            [3, 0x2000, 0x1000, empty, 0, 0],
            vec![bytes(1, b"\0"), out(2, STAT_LEN, 0)],
        );
        assert_eq!(Op::of(&at), Some(Op::Stat { buf: 2 }));
        // A path, or other flags: resolved by the deputy, in the process's directory.
        let path = call(
            libc::SYS_newfstatat,
            [3, 0x2000, 0x1000, empty, 0, 0],
            vec![bytes(1, b"x\0"), out(2, STAT_LEN, 0)],
        );
        assert_eq!(Op::of(&path), None);
        let nofollow = call(
            libc::SYS_newfstatat,
            [
                3,
                0x2000,
                0x1000,
                empty | libc::AT_SYMLINK_NOFOLLOW as u64,
                0,
                0,
            ],
            vec![bytes(1, b"\0"), out(2, STAT_LEN, 0)],
        );
        assert_eq!(Op::of(&nofollow), None);
        let other = call(libc::SYS_getppid, [0; 6], vec![]);
        assert_eq!(Op::of(&other), None);
    }
}
