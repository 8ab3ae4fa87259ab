//! The /proc-style tree over FUSE (default mount point `/run/hpc`):
//!
//! ```text
//! nodes/<N>/{load,speed,mem,tmem,util,status,CPUs}   what this node knows of node N
//! admin/{block,lstay,stay,quiet}                      0 or 1; writing sets it (root)
//! admin/speed                                         this node's speed; writing sets it
//! ```
//!
//! Reads and writes go through exactly the requests `mosctl` sends
//! ([`crate::control::answer`]), with the caller's uid from the FUSE request, so the files
//! and the commands can never disagree or differ in who may do what.

use crate::control::answer;
use crate::node::Node;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyWrite,
    Request as FuseRequest, WriteFlags,
};
use om_proto::{Field, NodeId, Request, Response, Setting};
use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub const DEFAULT_ROOT: &str = "/run/hpc";

const ROOT: u64 = 1;
const NODES: u64 = 2;
const ADMIN: u64 = 3;
const ADMIN_FILES: [&str; 5] = ["block", "lstay", "stay", "quiet", "speed"];
const ADMIN_BASE: u64 = 0x100;
const NODE_BASE: u64 = 1 << 32;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ino {
    Root,
    Nodes,
    Admin,
    AdminFile(usize),
    NodeDir(NodeId),
    NodeFile(NodeId, Field),
}

impl Ino {
    fn number(self) -> u64 {
        match self {
            Ino::Root => ROOT,
            Ino::Nodes => NODES,
            Ino::Admin => ADMIN,
            Ino::AdminFile(i) => ADMIN_BASE + i as u64,
            Ino::NodeDir(n) => NODE_BASE + (u64::from(n) << 4),
            Ino::NodeFile(n, f) => {
                let k = Field::FILES.iter().position(|x| *x == f).expect("a file") as u64;
                NODE_BASE + (u64::from(n) << 4) + 1 + k
            }
        }
    }

    fn parse(ino: u64) -> Option<Ino> {
        Some(match ino {
            ROOT => Ino::Root,
            NODES => Ino::Nodes,
            ADMIN => Ino::Admin,
            i if (ADMIN_BASE..ADMIN_BASE + ADMIN_FILES.len() as u64).contains(&i) => {
                Ino::AdminFile((i - ADMIN_BASE) as usize)
            }
            i if i >= NODE_BASE => {
                let rel = i - NODE_BASE;
                let node = NodeId::try_from(rel >> 4).ok()?;
                match rel & 0xf {
                    0 => Ino::NodeDir(node),
                    k => Ino::NodeFile(node, *Field::FILES.get(k as usize - 1)?),
                }
            }
            _ => return None,
        })
    }

    fn is_dir(self) -> bool {
        matches!(self, Ino::Root | Ino::Nodes | Ino::Admin | Ino::NodeDir(_))
    }
}

/// The filesystem: a view of the daemon's state.
pub struct HpcFs {
    node: Arc<Mutex<Node>>,
}

impl HpcFs {
    pub fn new(node: Arc<Mutex<Node>>) -> Self {
        Self { node }
    }

    fn exists(&self, ino: Ino) -> bool {
        match ino {
            Ino::NodeDir(n) | Ino::NodeFile(n, _) => {
                self.node.lock().expect("node lock").members().contains(&n)
            }
            _ => true,
        }
    }

    /// The content of a file, read through the same requests as mosctl's.
    fn content(&self, ino: Ino) -> Option<String> {
        let text = match ino {
            Ino::NodeFile(n, field) => match answer(&self.node, Request::Node { node: Some(n) }, 0)
            {
                Response::Node(v) => field.format(&v),
                _ => return None,
            },
            Ino::AdminFile(i) => {
                let n = self.node.lock().expect("node lock");
                match setting(i) {
                    Some(s) => u8::from(n.setting(s)).to_string(),
                    None => n.speed().to_string(),
                }
            }
            _ => return None,
        };
        Some(text + "\n")
    }

    fn attr(&self, ino: Ino) -> FileAttr {
        let (kind, perm, size) = if ino.is_dir() {
            (FileType::Directory, 0o555, 0)
        } else {
            let perm = if matches!(ino, Ino::AdminFile(_)) {
                0o644
            } else {
                0o444
            };
            let size = self.content(ino).map_or(0, |c| c.len() as u64);
            (FileType::RegularFile, perm, size)
        };
        let now = SystemTime::now();
        FileAttr {
            ino: INodeNo(ino.number()),
            size,
            blocks: size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink: if ino.is_dir() { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 512,
        }
    }

    fn children(&self, ino: Ino) -> Vec<(Ino, String)> {
        match ino {
            Ino::Root => vec![(Ino::Nodes, "nodes".into()), (Ino::Admin, "admin".into())],
            Ino::Nodes => self
                .node
                .lock()
                .expect("node lock")
                .members()
                .iter()
                .map(|&n| (Ino::NodeDir(n), n.to_string()))
                .collect(),
            Ino::Admin => ADMIN_FILES
                .iter()
                .enumerate()
                .map(|(i, name)| (Ino::AdminFile(i), name.to_string()))
                .collect(),
            Ino::NodeDir(n) => Field::FILES
                .iter()
                .map(|&f| (Ino::NodeFile(n, f), f.name().to_string()))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn write_admin(&self, i: usize, text: &str, uid: u32) -> Result<(), Errno> {
        let value = text.trim();
        let request = match setting(i) {
            Some(s) => Request::Set {
                setting: s,
                on: match value {
                    "1" => true,
                    "0" => false,
                    _ => return Err(Errno::EINVAL),
                },
            },
            None => Request::SetSpeed {
                speed: value.parse().map_err(|_| Errno::EINVAL)?,
            },
        };
        match answer(&self.node, request, uid) {
            Response::Done { .. } => Ok(()),
            Response::Error {
                kind: om_proto::ErrorKind::PermissionDenied,
                ..
            } => Err(Errno::EACCES),
            _ => Err(Errno::EINVAL),
        }
    }
}

fn setting(admin_file: usize) -> Option<Setting> {
    Setting::ALL
        .into_iter()
        .find(|s| s.name() == ADMIN_FILES[admin_file])
}

const TTL: Duration = Duration::ZERO;

impl Filesystem for HpcFs {
    fn lookup(&self, _req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = Ino::parse(parent.0).and_then(|p| {
            self.children(p)
                .into_iter()
                .find(|(_, n)| OsStr::new(n) == name)
        });
        match found {
            Some((ino, _)) => reply.entry(&TTL, &self.attr(ino), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &FuseRequest, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match Ino::parse(ino.0).filter(|i| self.exists(*i)) {
            Some(i) => reply.attr(&TTL, &self.attr(i)),
            None => reply.error(Errno::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        req: &FuseRequest,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // `echo 1 > file` truncates first: accepted (and ignored) on admin files only.
        match Ino::parse(ino.0) {
            Some(i @ Ino::AdminFile(_)) if req.uid() == 0 => reply.attr(&TTL, &self.attr(i)),
            Some(Ino::AdminFile(_)) | Some(Ino::NodeFile(..)) => reply.error(Errno::EACCES),
            _ => reply.error(Errno::EISDIR),
        }
    }

    fn open(&self, req: &FuseRequest, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let writing = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        match Ino::parse(ino.0).filter(|i| self.exists(*i)) {
            None => reply.error(Errno::ENOENT),
            Some(i) if i.is_dir() => reply.error(Errno::EISDIR),
            Some(Ino::NodeFile(..)) if writing => reply.error(Errno::EACCES),
            Some(Ino::AdminFile(_)) if writing && req.uid() != 0 => reply.error(Errno::EACCES),
            // Direct I/O: every read asks again, like /proc.
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
        }
    }

    fn read(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match Ino::parse(ino.0).and_then(|i| self.content(i)) {
            Some(text) => {
                let b = text.as_bytes();
                let start = (offset as usize).min(b.len());
                let end = (start + size as usize).min(b.len());
                reply.data(&b[start..end]);
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        req: &FuseRequest,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(Ino::AdminFile(i)) = Ino::parse(ino.0) else {
            reply.error(Errno::EACCES);
            return;
        };
        let Ok(text) = std::str::from_utf8(data) else {
            reply.error(Errno::EINVAL);
            return;
        };
        match self.write_admin(i, text, req.uid()) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(dir) = Ino::parse(ino.0).filter(|i| i.is_dir() && self.exists(*i)) else {
            reply.error(Errno::ENOTDIR);
            return;
        };
        let mut entries = vec![(dir, ".".to_string()), (Ino::Root, "..".to_string())];
        entries.extend(self.children(dir));
        for (k, (ino, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            let kind = if ino.is_dir() {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(ino.number()), (k + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mounts the tree at `root` (made if missing) and serves it on a thread of its own.
/// Dropping the session unmounts it.
pub fn mount(
    node: Arc<Mutex<Node>>,
    root: &std::path::Path,
) -> std::io::Result<fuser::BackgroundSession> {
    std::fs::create_dir_all(root)?;
    // A tree left mounted by an omd that was killed: unmount it first.
    let _ = nix::mount::umount2(root, nix::mount::MntFlags::MNT_DETACH);
    let mut cfg = fuser::Config::default();
    cfg.mount_options.extend([
        fuser::MountOption::FSName("omd".into()),
        fuser::MountOption::Subtype("hpc".into()),
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoExec,
    ]);
    cfg.acl = fuser::SessionACL::All;
    fuser::spawn_mount(HpcFs::new(node), root, &cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_numbers_round_trip() {
        let all = [
            Ino::Root,
            Ino::Nodes,
            Ino::Admin,
            Ino::AdminFile(0),
            Ino::AdminFile(4),
            Ino::NodeDir(1),
            Ino::NodeDir(65535),
            Ino::NodeFile(7, Field::Load),
            Ino::NodeFile(65535, Field::Cpus),
        ];
        for i in all {
            assert_eq!(Ino::parse(i.number()), Some(i), "{i:?}");
        }
        assert_eq!(Ino::parse(0), None);
        assert_eq!(Ino::parse(ADMIN_BASE + 5), None);
        assert_eq!(setting(0), Some(Setting::Block));
        assert_eq!(setting(4), None);
    }
}
