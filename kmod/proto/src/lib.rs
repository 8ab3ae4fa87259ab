//! The protocol between the `/proc/hpc` kernel module and omd, over the misc device
//! `/dev/hpc`. One definition for both sides: omd uses this crate; the module includes
//! this file's source (it cannot link crates), so it is `no_std` and allocates nothing.
//!
//! Every message is one `read(2)` or `write(2)` of the device: a 16-byte header, then the
//! payload.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "HPC1"
//! 4       2     version (VERSION)
//! 6       2     kind (Kind)
//! 8       4     id: the request a reply answers (0 for Pids)
//! 12      4     payload length
//! ```
//!
//! Kernel → omd (omd reads them): `Read { path }` when a file of the tree is read,
//! `Write { path, data }` when one is written; `path` is relative to /proc/hpc
//! (`nodes/2/load`, `admin/block`, `1234/goto`).
//! omd → kernel (omd writes them): `Reply { id, errno, data }` answers a request (errno 0:
//! `data` is the file's content or the count written); `Pids { pids }` lists the processes
//! that get a `<pid>/` directory (replacing the previous list).

#![no_std]

/// The protocol version; both sides refuse messages of another.
pub const VERSION: u16 = 1;
pub const MAGIC: [u8; 4] = *b"HPC1";
pub const HEADER: usize = 16;
/// The largest payload either side sends or accepts.
pub const MAX_PAYLOAD: usize = 4096;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    Read = 1,
    Write = 2,
    Reply = 3,
    Pids = 4,
}

impl Kind {
    fn from_u16(v: u16) -> Option<Kind> {
        Some(match v {
            1 => Kind::Read,
            2 => Kind::Write,
            3 => Kind::Reply,
            4 => Kind::Pids,
            _ => return None,
        })
    }
}

/// A decoded message, borrowing its bytes from the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg<'a> {
    Read {
        id: u32,
        path: &'a [u8],
    },
    /// Path, then the bytes written (the path ends at the first NUL).
    Write {
        id: u32,
        path: &'a [u8],
        data: &'a [u8],
    },
    Reply {
        id: u32,
        errno: i32,
        data: &'a [u8],
    },
    /// Little-endian u32 pids.
    Pids {
        pids: &'a [u8],
    },
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
    /// A malformed payload (a Write without its NUL, a pid list of odd size).
    Malformed,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes the message at the start of `b`.
pub fn decode(b: &[u8]) -> Result<Msg<'_>, Error> {
    if b.len() < HEADER {
        return Err(Error::Short);
    }
    if b[..4] != MAGIC {
        return Err(Error::BadMagic);
    }
    let version = u16_at(b, 4);
    if version != VERSION {
        return Err(Error::Version(version));
    }
    let kind = u16_at(b, 6);
    let id = u32_at(b, 8);
    let len = u32_at(b, 12) as usize;
    if len > MAX_PAYLOAD {
        return Err(Error::TooLong);
    }
    let p = b.get(HEADER..HEADER + len).ok_or(Error::Short)?;
    Ok(match Kind::from_u16(kind).ok_or(Error::BadKind(kind))? {
        Kind::Read => Msg::Read { id, path: p },
        Kind::Write => {
            let nul = p.iter().position(|&c| c == 0).ok_or(Error::Malformed)?;
            Msg::Write {
                id,
                path: &p[..nul],
                data: &p[nul + 1..],
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
        Kind::Pids => {
            if p.len() % 4 != 0 {
                return Err(Error::Malformed);
            }
            Msg::Pids { pids: p }
        }
    })
}

/// Encodes `m` into `out`; returns the bytes used.
pub fn encode(m: &Msg<'_>, out: &mut [u8]) -> Result<usize, Error> {
    let (kind, id, parts): (Kind, u32, [&[u8]; 3]) = match m {
        Msg::Read { id, path } => (Kind::Read, *id, [path, &[], &[]]),
        Msg::Write { id, path, data } => {
            if path.contains(&0) {
                return Err(Error::Malformed);
            }
            (Kind::Write, *id, [path, &[0], data])
        }
        Msg::Reply { .. } => return Err(Error::Malformed), // see encode_reply
        Msg::Pids { pids } => {
            if pids.len() % 4 != 0 {
                return Err(Error::Malformed);
            }
            (Kind::Pids, 0, [pids, &[], &[]])
        }
    };
    put(kind, id, &parts, out)
}

/// Encodes a reply (its errno goes before the data).
pub fn encode_reply(id: u32, errno: i32, data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    put(Kind::Reply, id, &[&errno.to_le_bytes(), data, &[]], out)
}

fn put(kind: Kind, id: u32, parts: &[&[u8]; 3], out: &mut [u8]) -> Result<usize, Error> {
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

/// The pids of a [`Msg::Pids`] payload.
pub fn pids(payload: &[u8]) -> impl Iterator<Item = u32> + '_ {
    payload
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(m: Msg<'_>) {
        let mut buf = [0u8; HEADER + MAX_PAYLOAD];
        let n = encode(&m, &mut buf).unwrap();
        assert_eq!(decode(&buf[..n]), Ok(m));
    }

    #[test]
    fn messages_round_trip() {
        round(Msg::Read {
            id: 7,
            path: b"nodes/2/load",
        });
        round(Msg::Write {
            id: 8,
            path: b"1234/goto",
            data: b"2\n",
        });
        round(Msg::Pids {
            pids: &[1, 0, 0, 0, 0xd2, 0x04, 0, 0],
        });
        let mut buf = [0u8; 64];
        let n = encode_reply(7, -13, b"x", &mut buf).unwrap();
        assert_eq!(
            decode(&buf[..n]),
            Ok(Msg::Reply {
                id: 7,
                errno: -13,
                data: b"x"
            })
        );
        let p: [u8; 8] = [1, 0, 0, 0, 0xd2, 0x04, 0, 0];
        assert!(pids(&p).eq([1u32, 1234]));
    }

    #[test]
    fn bad_messages_are_refused() {
        let mut buf = [0u8; 64];
        let n = encode(&Msg::Read { id: 1, path: b"a" }, &mut buf).unwrap();
        assert_eq!(decode(&buf[..n - 1]), Err(Error::Short));
        assert_eq!(decode(&buf[..10]), Err(Error::Short));
        let mut v = buf;
        v[4] = 9;
        assert_eq!(decode(&v[..n]), Err(Error::Version(9)));
        let mut v = buf;
        v[0] = b'X';
        assert_eq!(decode(&v[..n]), Err(Error::BadMagic));
        let mut v = buf;
        v[6] = 77;
        assert_eq!(decode(&v[..n]), Err(Error::BadKind(77)));
        let mut v = buf;
        v[12..16].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        assert_eq!(decode(&v), Err(Error::TooLong));
        // A Write without the NUL after its path.
        let n = put(Kind::Write, 1, &[b"abc", &[], &[]], &mut buf).unwrap();
        assert_eq!(decode(&buf[..n]), Err(Error::Malformed));
        assert_eq!(
            encode(&Msg::Pids { pids: &[1, 2, 3] }, &mut buf),
            Err(Error::Malformed)
        );
        let big = [0u8; MAX_PAYLOAD + 1];
        let mut out = [0u8; 2 * MAX_PAYLOAD];
        assert_eq!(
            encode(&Msg::Read { id: 1, path: &big }, &mut out),
            Err(Error::TooLong)
        );
    }

    #[test]
    fn decoding_never_panics_on_garbage() {
        // Every prefix and every single-byte change of a valid message.
        let mut buf = [0u8; 64];
        let n = encode(
            &Msg::Write {
                id: 3,
                path: b"admin/block",
                data: b"1",
            },
            &mut buf,
        )
        .unwrap();
        for cut in 0..=n {
            let _ = decode(&buf[..cut]);
        }
        for i in 0..n {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = buf;
                b[i] = v;
                let _ = decode(&b[..n]);
            }
        }
    }
}
