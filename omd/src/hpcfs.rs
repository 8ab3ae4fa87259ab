//! The /proc-style tree over FUSE (default mount point `/run/hpc`):
//!
//! ```text
//! nodes/<N>/{load,speed,mem,tmem,util,status,CPUs}   what this node knows of node N
//! admin/{block,lstay,stay,quiet}                      0 or 1; writing sets it (root)
//! admin/speed                                         this node's speed; writing sets it
//! <pid>/where                                         where it runs (0 = here, its home)
//! <pid>/goto                                          write a node number, `home` or
//!                                                     `balance` to move it (its owner)
//! <pid>/lock                                          1 = locked against automatic
//!                                                     migration; writable by its owner
//! <pid>/{nmigs,cantmove}                              times moved; why it cannot move
//! <pid>/group                                         its migration group (0: none);
//!                                                     write a number to set it (its owner)
//! remote/<pid>/{from,homepid,comm}                    guests of other nodes running here
//! ```
//!
//! The root lists the processes under migration control (started by mosrun, locked, or
//! moved at least once); `<pid>/` of any other process of this node can be opened by
//! name, so that any process can be sent away with `echo 2 > /run/hpc/PID/goto`.
//!
//! Reads and writes go through exactly the requests `mosctl` sends
//! ([`crate::control::answer`]), with the caller's uid from the FUSE request, so the files
//! and the commands can never disagree or differ in who may do what.

use crate::control::{answer, Omd};
use crate::migrate::owner;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyWrite,
    Request as FuseRequest, WriteFlags,
};
use om_proto::{ErrorKind, Field, NodeId, ProcState, Request, Response, Setting};
use std::ffi::OsStr;
use std::time::{Duration, SystemTime};

pub const DEFAULT_ROOT: &str = "/run/hpc";

const ROOT: u64 = 1;
const NODES: u64 = 2;
const ADMIN: u64 = 3;
const REMOTE: u64 = 4;
const ADMIN_FILES: [&str; 5] = ["block", "lstay", "stay", "quiet", "speed"];
const ADMIN_BASE: u64 = 0x100;
const NODE_BASE: u64 = 1 << 32;
const PID_BASE: u64 = 1 << 48;
const REMOTE_BASE: u64 = 1 << 52;
const PID_FILES: [&str; 6] = ["where", "goto", "lock", "nmigs", "cantmove", "group"];
const REMOTE_FILES: [&str; 3] = ["from", "homepid", "comm"];
/// The widest a pid can be (`/proc/sys/kernel/pid_max` is at most 2^22).
const PID_BITS: u32 = 22;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ino {
    Root,
    Nodes,
    Admin,
    AdminFile(usize),
    NodeDir(NodeId),
    NodeFile(NodeId, Field),
    Remote,
    PidDir(i32),
    /// A process's file: index into [`PID_FILES`].
    PidFile(i32, usize),
    RemoteDir(i32),
    /// A guest's file: index into [`REMOTE_FILES`].
    RemoteFile(i32, usize),
}

/// `base + (pid << 4) + k`, for a directory (`k` = 0) and its files.
fn pid_ino(base: u64, pid: i32, k: u64) -> u64 {
    base + ((pid as u64) << 4) + k
}

/// The pid and entry of an inode made by [`pid_ino`] with `base`, if `files` has it.
fn parse_pid_ino(ino: u64, base: u64, files: usize) -> Option<(i32, usize)> {
    let rel = ino.checked_sub(base)?;
    let pid = i32::try_from(rel >> 4)
        .ok()
        .filter(|p| *p > 0 && *p < 1 << PID_BITS)?;
    let k = (rel & 0xf) as usize;
    (k <= files).then_some((pid, k))
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
            Ino::Remote => REMOTE,
            Ino::PidDir(p) => pid_ino(PID_BASE, p, 0),
            Ino::PidFile(p, k) => pid_ino(PID_BASE, p, 1 + k as u64),
            Ino::RemoteDir(p) => pid_ino(REMOTE_BASE, p, 0),
            Ino::RemoteFile(p, k) => pid_ino(REMOTE_BASE, p, 1 + k as u64),
        }
    }

    fn parse(ino: u64) -> Option<Ino> {
        Some(match ino {
            ROOT => Ino::Root,
            NODES => Ino::Nodes,
            ADMIN => Ino::Admin,
            REMOTE => Ino::Remote,
            i if i >= REMOTE_BASE => match parse_pid_ino(i, REMOTE_BASE, REMOTE_FILES.len())? {
                (p, 0) => Ino::RemoteDir(p),
                (p, k) => Ino::RemoteFile(p, k - 1),
            },
            i if i >= PID_BASE => match parse_pid_ino(i, PID_BASE, PID_FILES.len())? {
                (p, 0) => Ino::PidDir(p),
                (p, k) => Ino::PidFile(p, k - 1),
            },
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
        matches!(
            self,
            Ino::Root
                | Ino::Nodes
                | Ino::Admin
                | Ino::NodeDir(_)
                | Ino::Remote
                | Ino::PidDir(_)
                | Ino::RemoteDir(_)
        )
    }
}

/// The filesystem: a view of the daemon's state.
pub struct HpcFs {
    omd: Omd,
}

impl HpcFs {
    pub fn new(omd: Omd) -> Self {
        Self { omd }
    }

    fn exists(&self, ino: Ino) -> bool {
        match ino {
            Ino::NodeDir(n) | Ino::NodeFile(n, _) => self
                .omd
                .node
                .lock()
                .expect("node lock")
                .members()
                .contains(&n),
            Ino::PidDir(p) | Ino::PidFile(p, _) => self.proc_state(p).is_some(),
            Ino::RemoteDir(p) | Ino::RemoteFile(p, _) => self.guest(p).is_some(),
            _ => true,
        }
    }

    /// The migration state of process `pid` of this node, if there is such a process.
    fn proc_state(&self, pid: i32) -> Option<ProcState> {
        match answer(&self.omd, Request::Proc { pid }, 0) {
            Response::Proc(p) => Some(p),
            _ => None,
        }
    }

    fn controlled(&self) -> om_proto::Controlled {
        match answer(&self.omd, Request::Controlled, 0) {
            Response::Controlled(c) => c,
            _ => Default::default(),
        }
    }

    /// The guest with pid `pid` at this node.
    fn guest(&self, pid: i32) -> Option<om_proto::GuestState> {
        self.controlled().guests.into_iter().find(|g| g.pid == pid)
    }

    /// The content of a file, read through the same requests as mosctl's.
    fn content(&self, ino: Ino) -> Option<String> {
        let text = match ino {
            Ino::NodeFile(n, field) => {
                match answer(&self.omd, Request::Node { node: Some(n) }, 0) {
                    Response::Node(v) => field.format(&v),
                    _ => return None,
                }
            }
            Ino::AdminFile(i) => {
                let n = self.omd.node.lock().expect("node lock");
                match setting(i) {
                    Some(s) => u8::from(n.setting(s)).to_string(),
                    None => n.speed().to_string(),
                }
            }
            Ino::PidFile(pid, k) => {
                let p = self.proc_state(pid)?;
                match PID_FILES[k] {
                    "where" => p.node.to_string(),
                    "lock" => u8::from(p.lock).to_string(),
                    "nmigs" => p.nmigs.to_string(),
                    "group" => p.group.to_string(),
                    "cantmove" if p.cantmove.is_empty() => return Some(String::new()),
                    "cantmove" => p.cantmove,
                    _ => return Some(String::new()), // goto is written, not read
                }
            }
            Ino::RemoteFile(pid, k) => {
                let g = self.guest(pid)?;
                match REMOTE_FILES[k] {
                    "from" => g.from.to_string(),
                    "homepid" => g.home_pid.to_string(),
                    _ => g.comm,
                }
            }
            _ => return None,
        };
        Some(text + "\n")
    }

    fn attr(&self, ino: Ino) -> FileAttr {
        let perm = perm(ino);
        let (kind, size) = if ino.is_dir() {
            (FileType::Directory, 0)
        } else {
            let size = self.content(ino).map_or(0, |c| c.len() as u64);
            (FileType::RegularFile, size)
        };
        let uid = owner_of(ino);
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
            uid,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 512,
        }
    }

    fn children(&self, ino: Ino) -> Vec<(Ino, String)> {
        match ino {
            Ino::Root => {
                let mut v = vec![
                    (Ino::Nodes, "nodes".into()),
                    (Ino::Admin, "admin".into()),
                    (Ino::Remote, "remote".into()),
                ];
                v.extend(
                    self.controlled()
                        .processes
                        .iter()
                        .map(|p| (Ino::PidDir(p.pid), p.pid.to_string())),
                );
                v
            }
            Ino::Remote => self
                .controlled()
                .guests
                .iter()
                .map(|g| (Ino::RemoteDir(g.pid), g.pid.to_string()))
                .collect(),
            Ino::PidDir(p) => (0..PID_FILES.len())
                .map(|k| (Ino::PidFile(p, k), PID_FILES[k].to_string()))
                .collect(),
            Ino::RemoteDir(p) => (0..REMOTE_FILES.len())
                .map(|k| (Ino::RemoteFile(p, k), REMOTE_FILES[k].to_string()))
                .collect(),
            Ino::Nodes => self
                .omd
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
        done(answer(&self.omd, request, uid))
    }

    /// `goto`, `lock` and `group` of process `pid`; everything else is read-only.
    fn write_pid(&self, pid: i32, k: usize, text: &str, uid: u32) -> Result<(), Errno> {
        let value = text.trim();
        let request = match PID_FILES[k] {
            "goto" => Request::Migrate {
                pid,
                to: value.parse().map_err(|_| Errno::EINVAL)?,
                wait: false,
                eager: false,
            },
            "lock" => Request::Lock {
                pid,
                on: match value {
                    "1" => true,
                    "0" => false,
                    _ => return Err(Errno::EINVAL),
                },
            },
            "group" => Request::Group {
                pid,
                group: value.parse().map_err(|_| Errno::EINVAL)?,
            },
            _ => return Err(Errno::EACCES),
        };
        done(answer(&self.omd, request, uid))
    }

    /// Entry `name` of directory `parent`; `<pid>` of any process of this node resolves
    /// at the root, listed or not.
    fn child(&self, parent: Ino, name: &str) -> Option<Ino> {
        if let (Ino::Root, Ok(pid)) = (parent, name.parse::<i32>()) {
            let dir = Ino::PidDir(pid);
            return self.exists(dir).then_some(dir);
        }
        self.children(parent)
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(ino, _)| ino)
    }

    /// The entry at `path`, relative to the root of the tree (`nodes/1/load`).
    fn resolve(&self, path: &str) -> Option<Ino> {
        path.split('/')
            .try_fold(Ino::Root, |dir, name| self.child(dir, name))
    }

    /// The content of the file at `path`, as a read of it returns it.
    pub fn read_path(&self, path: &str) -> Result<Vec<u8>, Errno> {
        match self.resolve(path) {
            Some(i) if i.is_dir() => Err(Errno::EISDIR),
            Some(i) => self.content(i).map(String::into_bytes).ok_or(Errno::ENOENT),
            None => Err(Errno::ENOENT),
        }
    }

    /// Writes `data` to the file at `path` for user `uid`, as a write of it does.
    pub fn write_path(&self, path: &str, data: &[u8], uid: u32) -> Result<(), Errno> {
        match self.resolve(path) {
            Some(i) if i.is_dir() => Err(Errno::EISDIR),
            Some(i) => self.write_ino(i, data, uid),
            None => Err(Errno::ENOENT),
        }
    }

    fn write_ino(&self, ino: Ino, data: &[u8], uid: u32) -> Result<(), Errno> {
        if !self.writable_by(ino, uid) {
            return Err(Errno::EACCES);
        }
        let text = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
        match ino {
            Ino::AdminFile(i) => self.write_admin(i, text, uid),
            Ino::PidFile(pid, k) => self.write_pid(pid, k, text, uid),
            _ => Err(Errno::EACCES),
        }
    }

    /// Every entry of the tree as it is listed (the root's `<pid>/` only for processes
    /// under migration control), sorted by path, so each directory precedes its content.
    pub fn entries(&self) -> Vec<TreeEntry> {
        let mut out = Vec::new();
        let mut stack = vec![(Ino::Root, String::new(), 0)];
        while let Some((dir, path, dir_uid)) = stack.pop() {
            for (ino, name) in self.children(dir) {
                let p = if path.is_empty() {
                    name
                } else {
                    format!("{path}/{name}")
                };
                // A process's files have its directory's owner: /proc read once per pid.
                let uid = match ino {
                    Ino::PidFile(..) => dir_uid,
                    _ => owner_of(ino),
                };
                out.push(TreeEntry {
                    path: p.clone(),
                    dir: ino.is_dir(),
                    perm: perm(ino),
                    uid,
                });
                if ino.is_dir() {
                    stack.push((ino, p, uid));
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// May user `uid` write file `ino`?
    fn writable_by(&self, ino: Ino, uid: u32) -> bool {
        match ino {
            Ino::AdminFile(_) => uid == 0,
            Ino::PidFile(pid, k) if matches!(PID_FILES[k], "goto" | "lock" | "group") => {
                uid == 0 || owner(pid) == Some(uid)
            }
            _ => false,
        }
    }
}

/// One entry of [`HpcFs::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Relative to the root of the tree.
    pub path: String,
    pub dir: bool,
    /// Permission bits.
    pub perm: u16,
    pub uid: u32,
}

/// Permission bits: directories 0555; admin files, `lock` and `group` 0644; `goto` 0200 (written,
/// not read); the rest 0444.
fn perm(ino: Ino) -> u16 {
    match ino {
        i if i.is_dir() => 0o555,
        Ino::AdminFile(_) => 0o644,
        Ino::PidFile(_, k) if PID_FILES[k] == "goto" => 0o200,
        Ino::PidFile(_, k) if matches!(PID_FILES[k], "lock" | "group") => 0o644,
        _ => 0o444,
    }
}

/// A process's entries belong to its owner, who may write goto and lock; the rest to root.
fn owner_of(ino: Ino) -> u32 {
    match ino {
        Ino::PidDir(p) | Ino::PidFile(p, _) => owner(p).unwrap_or(0),
        _ => 0,
    }
}

/// A change request's answer as a file operation's result.
fn done(r: Response) -> Result<(), Errno> {
    match r {
        Response::Done { .. } => Ok(()),
        Response::Error {
            kind: ErrorKind::PermissionDenied,
            ..
        } => Err(Errno::EACCES),
        Response::Error {
            kind: ErrorKind::NotFound,
            ..
        } => Err(Errno::ESRCH),
        _ => Err(Errno::EINVAL),
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
        let found =
            Ino::parse(parent.0).and_then(|p| name.to_str().and_then(|name| self.child(p, name)));
        match found {
            Some(ino) => reply.entry(&TTL, &self.attr(ino), Generation(0)),
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
        // `echo 1 > file` truncates first: accepted (and ignored) on writable files.
        match Ino::parse(ino.0) {
            Some(i) if i.is_dir() => reply.error(Errno::EISDIR),
            Some(i) if self.writable_by(i, req.uid()) => reply.attr(&TTL, &self.attr(i)),
            Some(_) => reply.error(Errno::EACCES),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, req: &FuseRequest, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let writing = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        match Ino::parse(ino.0).filter(|i| self.exists(*i)) {
            None => reply.error(Errno::ENOENT),
            Some(i) if i.is_dir() => reply.error(Errno::EISDIR),
            Some(i) if writing && !self.writable_by(i, req.uid()) => reply.error(Errno::EACCES),
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
        let result = match Ino::parse(ino.0) {
            Some(i) => self.write_ino(i, data, req.uid()),
            None => Err(Errno::ENOENT),
        };
        match result {
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
pub fn mount(omd: Omd, root: &std::path::Path) -> std::io::Result<fuser::BackgroundSession> {
    // A tree left mounted by an omd that was killed: unmount it first. Until then the
    // directory cannot even be looked at (ENOTCONN), so making it would fail with
    // "File exists".
    let _ = nix::mount::umount2(root, nix::mount::MntFlags::MNT_DETACH);
    std::fs::create_dir_all(root)?;
    let mut cfg = fuser::Config::default();
    cfg.mount_options.extend([
        fuser::MountOption::FSName("omd".into()),
        fuser::MountOption::Subtype("hpc".into()),
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoExec,
    ]);
    cfg.acl = fuser::SessionACL::All;
    fuser::spawn_mount(HpcFs::new(omd), root, &cfg)
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
            Ino::Remote,
            Ino::PidDir(1),
            Ino::PidDir((1 << PID_BITS) - 1),
            Ino::PidFile(4_194_303, 4),
            Ino::PidFile(77, 0),
            Ino::RemoteDir(12345),
            Ino::RemoteFile(12345, 2),
        ];
        for i in all {
            assert_eq!(Ino::parse(i.number()), Some(i), "{i:?}");
        }
        assert_eq!(Ino::parse(0), None);
        assert_eq!(Ino::parse(ADMIN_BASE + 5), None);
        assert_eq!(
            Ino::parse(pid_ino(PID_BASE, 5, 1 + PID_FILES.len() as u64)),
            None
        );
        assert_eq!(Ino::parse(PID_BASE), None, "pid 0");
        assert_eq!(Ino::parse(pid_ino(REMOTE_BASE, 5, 4)), None);
        assert_eq!(setting(0), Some(Setting::Block));
        assert_eq!(setting(4), None);
    }
}
