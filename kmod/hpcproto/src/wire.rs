// The wire format of /dev/hpc. This file is the whole protocol: omd compiles it through
// `om_hpcproto` (lib.rs); the kernel module compiles the same file as its `wire` module
// (`#[path = "../hpcproto/src/wire.rs"]`), because a module cannot link crates. So it uses
// only `core`, allocates nothing, and never panics on any input.

/// The protocol version; both sides refuse messages of another.
pub const VERSION: u16 = 2;
pub const MAGIC: [u8; 4] = *b"HPC1";
pub const HEADER: usize = 16;
/// The largest payload either side sends or accepts (a tree of thousands of entries).
pub const MAX_PAYLOAD: usize = 1 << 18;
/// The most a file of the tree holds, or a single write to it carries.
pub const MAX_DATA: usize = 4096;
/// The longest path of an entry, relative to /proc/hpc.
pub const MAX_PATH: usize = 255;
/// The largest request the kernel sends: a write of MAX_DATA bytes to a MAX_PATH path.
pub const MAX_REQUEST: usize = HEADER + 4 + MAX_PATH + 1 + MAX_DATA;
/// `mode` bits of a directory entry (S_IFDIR); files carry S_IFREG.
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFREG: u16 = 0o100000;
/// Bytes of an entry of a tree before its path: mode (u16), uid (u32), path length (u16).
pub const ENTRY_HEADER: usize = 8;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    Read = 1,
    Write = 2,
    Reply = 3,
    Tree = 4,
}

impl Kind {
    fn from_u16(v: u16) -> Option<Kind> {
        Some(match v {
            1 => Kind::Read,
            2 => Kind::Write,
            3 => Kind::Reply,
            4 => Kind::Tree,
            _ => return None,
        })
    }
}

/// A decoded message, borrowing its bytes from the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg<'a> {
    /// A file of the tree is read (kernel → omd).
    Read { id: u32, path: &'a [u8] },
    /// A file of the tree is written by `uid` (kernel → omd). On the wire: uid, path, NUL,
    /// data.
    Write {
        id: u32,
        uid: u32,
        path: &'a [u8],
        data: &'a [u8],
    },
    /// The answer to request `id` (omd → kernel): errno 0 and the file's content (for a
    /// read), or a positive errno.
    Reply { id: u32, errno: i32, data: &'a [u8] },
    /// The whole tree below /proc/hpc (omd → kernel), replacing the previous one: entries
    /// (see [`entries`]) sorted by path, each directory before what it holds.
    Tree { entries: &'a [u8] },
}

impl Msg<'_> {
    /// The bytes [`encode`] writes for it (what a buffer for it must hold).
    pub fn encoded_len(&self) -> usize {
        HEADER
            + match self {
                Msg::Read { path, .. } => path.len(),
                Msg::Write { path, data, .. } => 4 + path.len() + 1 + data.len(),
                Msg::Reply { data, .. } => 4 + data.len(),
                Msg::Tree { entries } => entries.len(),
            }
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its header says, or than a header.
    Short,
    BadMagic,
    /// Another protocol version (the other side's is given).
    Version(u16),
    BadKind(u16),
    /// A payload over [`MAX_PAYLOAD`], or a buffer too small to encode into.
    TooLong,
    /// A malformed payload (a Write without its NUL, a bad tree entry, ...).
    Malformed,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The payload length a message starting with header `h` announces, if `h` is a whole
/// header of this protocol (lets a reader learn how much to read).
pub fn payload_len(h: &[u8]) -> Result<usize, Error> {
    if h.len() < HEADER {
        return Err(Error::Short);
    }
    if h[..4] != MAGIC {
        return Err(Error::BadMagic);
    }
    let version = u16_at(h, 4);
    if version != VERSION {
        return Err(Error::Version(version));
    }
    let len = u32_at(h, 12) as usize;
    if len > MAX_PAYLOAD {
        return Err(Error::TooLong);
    }
    Ok(len)
}

/// Decodes the message at the start of `b`.
pub fn decode(b: &[u8]) -> Result<Msg<'_>, Error> {
    let len = payload_len(b)?;
    let kind = u16_at(b, 6);
    let id = u32_at(b, 8);
    let p = b.get(HEADER..HEADER + len).ok_or(Error::Short)?;
    Ok(match Kind::from_u16(kind).ok_or(Error::BadKind(kind))? {
        Kind::Read => Msg::Read { id, path: p },
        Kind::Write => {
            if p.len() < 4 {
                return Err(Error::Malformed);
            }
            let rest = &p[4..];
            let nul = rest.iter().position(|&c| c == 0).ok_or(Error::Malformed)?;
            Msg::Write {
                id,
                uid: u32_at(p, 0),
                path: &rest[..nul],
                data: &rest[nul + 1..],
            }
        }
        Kind::Reply => {
            if p.len() < 4 {
                return Err(Error::Malformed);
            }
            Msg::Reply {
                id,
                errno: u32_at(p, 0) as i32,
                data: &p[4..],
            }
        }
        Kind::Tree => {
            for e in entries(p) {
                e?;
            }
            Msg::Tree { entries: p }
        }
    })
}

/// Encodes `m` into `out`; returns the bytes used.
pub fn encode(m: &Msg<'_>, out: &mut [u8]) -> Result<usize, Error> {
    match m {
        Msg::Read { id, path } => put(Kind::Read, *id, &[path, &[], &[], &[]], out),
        Msg::Write {
            id,
            uid,
            path,
            data,
        } => {
            if path.contains(&0) {
                return Err(Error::Malformed);
            }
            put(
                Kind::Write,
                *id,
                &[&uid.to_le_bytes(), path, &[0], data],
                out,
            )
        }
        Msg::Reply { id, errno, data } => put(
            Kind::Reply,
            *id,
            &[&errno.to_le_bytes(), data, &[], &[]],
            out,
        ),
        Msg::Tree { entries: e } => {
            for x in entries(e) {
                x?;
            }
            put(Kind::Tree, 0, &[e, &[], &[], &[]], out)
        }
    }
}

pub(crate) fn put(kind: Kind, id: u32, parts: &[&[u8]; 4], out: &mut [u8]) -> Result<usize, Error> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > MAX_PAYLOAD || out.len() < HEADER + len {
        return Err(Error::TooLong);
    }
    out[..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&VERSION.to_le_bytes());
    out[6..8].copy_from_slice(&(kind as u16).to_le_bytes());
    out[8..12].copy_from_slice(&id.to_le_bytes());
    out[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    let mut at = HEADER;
    for p in parts {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    Ok(at)
}

/// One entry of a [`Msg::Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// `S_IFDIR` or `S_IFREG`, and the permission bits.
    pub mode: u16,
    /// The owner.
    pub uid: u32,
    /// Relative to /proc/hpc, components separated by `/`, e.g. `1234/goto`.
    pub path: &'a [u8],
}

impl<'a> Entry<'a> {
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == S_IFDIR
    }

    /// The directory holding it (empty for /proc/hpc itself).
    pub fn parent(&self) -> &'a [u8] {
        match self.path.iter().rposition(|&c| c == b'/') {
            Some(i) => &self.path[..i],
            None => &[],
        }
    }

    /// Its last component.
    pub fn name(&self) -> &'a [u8] {
        match self.path.iter().rposition(|&c| c == b'/') {
            Some(i) => &self.path[i + 1..],
            None => self.path,
        }
    }

    /// The bytes of this entry on the wire.
    pub fn wire_len(&self) -> usize {
        ENTRY_HEADER + self.path.len()
    }

    /// Writes it at the start of `out`; returns the bytes used.
    pub fn put(&self, out: &mut [u8]) -> Result<usize, Error> {
        valid_path(self.path)?;
        let n = self.wire_len();
        let o = out.get_mut(..n).ok_or(Error::TooLong)?;
        o[..2].copy_from_slice(&self.mode.to_le_bytes());
        o[2..6].copy_from_slice(&self.uid.to_le_bytes());
        o[6..8].copy_from_slice(&(self.path.len() as u16).to_le_bytes());
        o[8..].copy_from_slice(self.path);
        Ok(n)
    }
}

/// A path is 1..=MAX_PATH bytes of non-empty components other than `.` and `..`, without
/// NUL, separated by single `/`, neither starting nor ending with one.
fn valid_path(p: &[u8]) -> Result<(), Error> {
    if p.is_empty() || p.len() > MAX_PATH || p.contains(&0) {
        return Err(Error::Malformed);
    }
    for c in p.split(|&c| c == b'/') {
        if c.is_empty() || c == b"." || c == b".." {
            return Err(Error::Malformed);
        }
    }
    Ok(())
}

/// The entries of a tree payload, each checked: a valid path, a directory or regular
/// file, in strictly increasing byte order of path. (That a parent is listed, and is a
/// directory, is for the reader to check as it builds the tree: byte order puts every
/// directory before what it holds.)
pub fn entries(p: &[u8]) -> Entries<'_> {
    Entries {
        rest: p,
        prev: &[],
        failed: false,
    }
}

/// Iterator returned by [`entries`]; yields one error and stops on a bad entry.
pub struct Entries<'a> {
    rest: &'a [u8],
    prev: &'a [u8],
    failed: bool,
}

impl<'a> Entries<'a> {
    fn next_entry(&mut self) -> Result<Entry<'a>, Error> {
        let b = self.rest;
        if b.len() < ENTRY_HEADER {
            return Err(Error::Malformed);
        }
        let n = u16_at(b, 6) as usize;
        let path = b
            .get(ENTRY_HEADER..ENTRY_HEADER + n)
            .ok_or(Error::Malformed)?;
        let e = Entry {
            mode: u16_at(b, 0),
            uid: u32_at(b, 2),
            path,
        };
        valid_path(path)?;
        let t = e.mode & 0o170000;
        if (t != S_IFDIR && t != S_IFREG) || path <= self.prev {
            return Err(Error::Malformed);
        }
        self.rest = &b[ENTRY_HEADER + n..];
        self.prev = path;
        Ok(e)
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.next_entry();
        self.failed = r.is_err();
        Some(r)
    }
}
