//! The protocol between the `/proc/hpc` kernel module (`kmod/omhpc`) and omd, over the
//! misc device `/dev/hpc`. One definition for both sides: omd uses this crate; the module
//! compiles its one source file, `wire.rs`, as a module of its own (it cannot link
//! crates), so it is `no_std` and allocates nothing.
//!
//! Every message is one `read(2)` or `write(2)` of the device: a 16-byte header, then the
//! payload.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "HPC1"
//! 4       2     version (VERSION)
//! 6       2     kind (Kind)
//! 8       4     id: the request a reply answers (0 for Tree)
//! 12      4     payload length
//! ```
//!
//! Kernel → omd (omd reads them): `Read { path }` when a file of the tree is read,
//! `Write { uid, path, data }` when one is written; `path` is relative to /proc/hpc
//! (`nodes/2/load`, `admin/block`, `1234/goto`).
//!
//! omd → kernel (omd writes them): `Reply { id, errno, data }` answers a request (errno 0:
//! `data` is the file's content, or empty for a write); `Tree { entries }` is the whole
//! tree below /proc/hpc, replacing the one before. Each entry is
//!
//! ```text
//! 0  2  mode (S_IFDIR or S_IFREG | permission bits)
//! 2  4  owner uid
//! 6  2  path length n
//! 8  n  path
//! ```
//!
//! sorted by path (byte order), so that every directory comes before what it holds.
//! The kernel holds no policy: it creates what omd lists and relays every read and write.

#![no_std]

mod wire;
pub use wire::*;

#[cfg(test)]
mod tests {
    use super::wire::put;
    use super::*;

    fn round(m: Msg<'_>) {
        let mut buf = [0u8; HEADER + 512];
        let n = encode(&m, &mut buf).unwrap();
        assert_eq!(n, m.encoded_len());
        assert_eq!(payload_len(&buf[..n]), Ok(n - HEADER));
        assert_eq!(decode(&buf[..n]), Ok(m));
    }

    fn tree(list: &[(u16, u32, &str)], out: &mut [u8]) -> usize {
        let mut at = 0;
        for &(mode, uid, path) in list {
            let e = Entry {
                mode,
                uid,
                path: path.as_bytes(),
            };
            at += e.put(&mut out[at..]).unwrap();
        }
        at
    }

    #[test]
    fn messages_round_trip() {
        round(Msg::Read {
            id: 7,
            path: b"nodes/2/load",
        });
        round(Msg::Write {
            id: 8,
            uid: 1000,
            path: b"1234/goto",
            data: b"2\n",
        });
        round(Msg::Reply {
            id: 7,
            errno: 13,
            data: b"x",
        });
        // The largest request fits MAX_REQUEST exactly.
        let (path, data) = ([b'p'; MAX_PATH], [b'd'; MAX_DATA]);
        let big = Msg::Write {
            id: 1,
            uid: 0,
            path: &path,
            data: &data,
        };
        assert_eq!(big.encoded_len(), MAX_REQUEST);
        let mut out = [0u8; MAX_REQUEST];
        assert_eq!(encode(&big, &mut out), Ok(MAX_REQUEST));
        let mut t = [0u8; 256];
        let n = tree(
            &[
                (S_IFDIR | 0o555, 0, "1234"),
                (S_IFREG | 0o200, 1000, "1234/goto"),
                (S_IFDIR | 0o555, 0, "admin"),
                (S_IFREG | 0o644, 0, "admin/block"),
            ],
            &mut t,
        );
        round(Msg::Tree { entries: &t[..n] });
        let got: [Entry<'_>; 4] =
            core::array::from_fn(|i| entries(&t[..n]).nth(i).unwrap().unwrap());
        assert!(got[0].is_dir() && !got[1].is_dir());
        assert_eq!(got[1].uid, 1000);
        assert_eq!(got[1].parent(), b"1234");
        assert_eq!(got[1].name(), b"goto");
        assert_eq!(got[2].parent(), b"");
        assert_eq!(got[2].name(), b"admin");
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
        let n = put(Kind::Write, 1, &[&[0; 4], b"abc", &[], &[]], &mut buf).unwrap();
        assert_eq!(decode(&buf[..n]), Err(Error::Malformed));
        let n = put(Kind::Write, 1, &[&[0; 3], &[], &[], &[]], &mut buf).unwrap();
        assert_eq!(decode(&buf[..n]), Err(Error::Malformed));
        let big = [b'a'; 1024];
        let mut out = [0u8; 512];
        assert_eq!(
            encode(&Msg::Read { id: 1, path: &big }, &mut out),
            Err(Error::TooLong)
        );
    }

    #[test]
    fn bad_trees_are_refused() {
        let mut t = [0u8; 256];
        let bad = |list: &[(u16, u32, &str)]| {
            let mut t = [0u8; 256];
            let mut at = 0;
            for &(mode, uid, path) in list {
                let p = path.as_bytes();
                t[at..at + 2].copy_from_slice(&mode.to_le_bytes());
                t[at + 2..at + 6].copy_from_slice(&uid.to_le_bytes());
                t[at + 6..at + 8].copy_from_slice(&(p.len() as u16).to_le_bytes());
                t[at + 8..at + 8 + p.len()].copy_from_slice(p);
                at += 8 + p.len();
            }
            let mut m = [0u8; 300];
            let n = put(Kind::Tree, 0, &[&t[..at], &[], &[], &[]], &mut m).unwrap();
            assert_eq!(decode(&m[..n]), Err(Error::Malformed), "{list:?}");
        };
        bad(&[(S_IFDIR, 0, "b"), (S_IFDIR, 0, "a")]); // out of order
        bad(&[(S_IFDIR, 0, "a"), (S_IFDIR, 0, "a")]); // twice
        bad(&[(S_IFDIR, 0, "/a")]);
        bad(&[(S_IFDIR, 0, "a/")]);
        bad(&[(S_IFDIR, 0, "a//b")]);
        bad(&[(S_IFDIR, 0, "a/../b")]);
        bad(&[(S_IFDIR, 0, "")]);
        bad(&[(0o020000, 0, "dev")]); // a character device
        bad(&[(S_IFDIR, 0, "a\0b")]);
        // An entry cut short.
        let n = tree(&[(S_IFDIR | 0o555, 0, "admin")], &mut t);
        let mut m = [0u8; 300];
        let k = put(Kind::Tree, 0, &[&t[..n - 1], &[], &[], &[]], &mut m).unwrap();
        assert_eq!(decode(&m[..k]), Err(Error::Malformed));
        // Entry::put refuses what the reader would.
        let e = Entry {
            mode: S_IFREG,
            uid: 0,
            path: b"x/../y",
        };
        assert_eq!(e.put(&mut t), Err(Error::Malformed));
    }

    #[test]
    fn decoding_never_panics_on_garbage() {
        // Every prefix and every single-byte change of valid messages.
        let mut t = [0u8; 128];
        let n = tree(
            &[(S_IFDIR | 0o555, 0, "a"), (S_IFREG | 0o444, 0, "a/b")],
            &mut t,
        );
        let mut buf = [0u8; 160];
        let w = encode(
            &Msg::Write {
                id: 3,
                uid: 0,
                path: b"admin/block",
                data: b"1",
            },
            &mut buf,
        )
        .unwrap();
        let mut tb = [0u8; 160];
        let tn = encode(&Msg::Tree { entries: &t[..n] }, &mut tb).unwrap();
        for (b, n) in [(buf, w), (tb, tn)] {
            for cut in 0..=n {
                let _ = decode(&b[..cut]);
            }
            for i in 0..n {
                for v in [0u8, 1, 0x2f, 0x7f, 0xff] {
                    let mut c = b;
                    c[i] = v;
                    if let Ok(Msg::Tree { entries: e }) = decode(&c[..n]) {
                        for x in entries(e) {
                            let _ = x.map(|x| (x.parent(), x.name()));
                        }
                    }
                }
            }
        }
    }
}
