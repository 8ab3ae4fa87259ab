//! The TCP link between two omds, for migration: a handshake proves that both ends hold
//! the cluster key (each answers the other's fresh challenge with a BLAKE3 keyed hash),
//! then every frame carries a tag over a per-connection session key and its sequence
//! number, so nothing can be forged, replayed or reordered on an established link. A
//! connection that fails the handshake is dropped and counted, never acted on.
//! Frames: `u32 length, postcard payload, 16-byte tag`. Contents are not encrypted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;
use std::time::Duration;

use om_map::NodeId;
use om_wire::Key;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest frame (the largest page reply plus headroom).
const MAX_FRAME: usize = om_ckpt::pages::MAX_PEER_READ as usize + 4096;
const TAG: usize = 16;
const MAGIC: &[u8; 8] = b"omd-mig1";

/// An authenticated connection.
pub struct Conn {
    read: Mutex<(TcpStream, u64)>,
    write: Mutex<(TcpStream, u64)>,
    session: [u8; 32],
    /// The same socket, for poll().
    poll: std::os::fd::OwnedFd,
    /// The node at the other end.
    pub peer: NodeId,
}

fn tag(session: &[u8; 32], seq: u64, payload: &[u8]) -> [u8; TAG] {
    let mut h = blake3::Hasher::new_keyed(session);
    h.update(&seq.to_le_bytes());
    h.update(payload);
    let mut t = [0u8; TAG];
    t.copy_from_slice(&h.finalize().as_bytes()[..TAG]);
    t
}

fn proof(key: &Key, role: &[u8], a: &[u8; 32], b: &[u8; 32], node: NodeId) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&key.0);
    h.update(MAGIC);
    h.update(role);
    h.update(a);
    h.update(b);
    h.update(&node.to_le_bytes());
    *h.finalize().as_bytes()
}

fn nonce() -> std::io::Result<[u8; 32]> {
    let mut n = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut n)?;
    Ok(n)
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, what.to_string())
}

/// Hello: magic, node, nonce.
fn hello(s: &mut TcpStream, node: NodeId, n: &[u8; 32]) -> std::io::Result<(NodeId, [u8; 32])> {
    let mut out = Vec::with_capacity(42);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&node.to_le_bytes());
    out.extend_from_slice(n);
    s.write_all(&out)?;
    let mut inb = [0u8; 42];
    s.read_exact(&mut inb)?;
    if &inb[..8] != MAGIC {
        return Err(bad("not an omd migration link"));
    }
    let peer = NodeId::from_le_bytes(inb[8..10].try_into().unwrap_or([0; 2]));
    let mut theirs = [0u8; 32];
    theirs.copy_from_slice(&inb[10..42]);
    Ok((peer, theirs))
}

impl Conn {
    /// Runs the handshake on `stream` as node `me`; `client` is the side that connected.
    pub fn handshake(
        mut stream: TcpStream,
        key: &Key,
        me: NodeId,
        client: bool,
    ) -> std::io::Result<Conn> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        let mine = nonce()?;
        let (peer, theirs) = hello(&mut stream, me, &mine)?;
        let (c, s) = if client {
            (&mine, &theirs)
        } else {
            (&theirs, &mine)
        };
        let (my_role, their_role): (&[u8], &[u8]) = if client {
            (b"client", b"server")
        } else {
            (b"server", b"client")
        };
        stream.write_all(&proof(key, my_role, c, s, me))?;
        let mut got = [0u8; 32];
        stream.read_exact(&mut got)?;
        let want = proof(key, their_role, c, s, peer);
        if !constant_eq(&got, &want) {
            return Err(bad("the other end does not hold the cluster key"));
        }
        let mut h = blake3::Hasher::new_keyed(&key.0);
        h.update(b"session");
        h.update(c);
        h.update(s);
        let session = *h.finalize().as_bytes();
        stream.set_read_timeout(None)?;
        let w = stream.try_clone()?;
        let poll = std::os::fd::OwnedFd::from(stream.try_clone()?);
        Ok(Conn {
            poll,
            read: Mutex::new((stream, 0)),
            write: Mutex::new((w, 0)),
            session,
            peer,
        })
    }

    /// Sends one message.
    pub fn send<T: Serialize>(&self, m: &T) -> std::io::Result<()> {
        let payload = postcard::to_stdvec(m).map_err(std::io::Error::other)?;
        let mut w = self.write.lock().map_err(|_| bad("poisoned"))?;
        let seq = w.1;
        w.1 += 1;
        w.0.write_all(&frame(&self.session, seq, &payload))
    }

    /// Receives one message, waiting at most `timeout` for it to start (None: forever).
    pub fn recv<T: DeserializeOwned>(
        &self,
        timeout: Option<Duration>,
    ) -> std::io::Result<Option<T>> {
        let mut r = self.read.lock().map_err(|_| bad("poisoned"))?;
        if let Some(t) = timeout {
            let mut pfd = [nix::poll::PollFd::new(
                r.0.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = u16::try_from(t.as_millis()).unwrap_or(u16::MAX);
            match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        let seq = r.1;
        r.1 += 1;
        let payload = read_frame(&mut r.0, &self.session, seq)?;
        decode(&payload).map(Some)
    }

    /// Readable when a frame waits.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.poll.as_fd()
    }
}

/// Frame number `seq` of a link with session key `session`, carrying `payload`:
/// `u32 length (little-endian), payload, 16-byte tag`.
pub fn frame(session: &[u8; 32], seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 4 + TAG);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(payload);
    frame.extend_from_slice(&tag(session, seq, payload));
    frame
}

/// Reads frame number `seq` from `r` and returns its payload once its tag proves it. A
/// length over the largest frame is refused before anything is allocated.
pub fn read_frame(r: &mut impl Read, session: &[u8; 32], seq: u64) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(bad("frame too large"));
    }
    let mut buf = vec![0u8; len + TAG];
    r.read_exact(&mut buf)?;
    let (payload, t) = buf.split_at(len);
    if !constant_eq(t, &tag(session, seq, payload)) {
        return Err(bad("a frame failed authentication"));
    }
    buf.truncate(len);
    Ok(buf)
}

/// Decodes a frame's payload: a [`Setup`] message, or once the migration runs, an
/// [`om_remote::relay::Msg`] (postcard).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> std::io::Result<T> {
    postcard::from_bytes(payload)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Messages while a migration is set up.
#[derive(Debug, Serialize, Deserialize)]
pub enum Setup {
    /// Home → target: may this process come? (size in bytes, the CPU flags it may use,
    /// its XSAVE features, its name and owner for the target's records.)
    Offer {
        /// Home pid.
        pid: i32,
        /// Command name.
        comm: String,
        /// Owner at home.
        uid: u32,
        /// Memory it brings.
        bytes: u64,
        /// CPU flags of the home node.
        cpu_flags: Vec<String>,
        /// XSAVE features in use.
        xcr0: u64,
        /// Copy all pages before it runs.
        eager: bool,
        /// How long it has run, milliseconds (the target's balancer's estimate of
        /// what is left).
        age_ms: u64,
        /// Locked against automatic migration.
        locked: bool,
        /// Its job hint.
        job: om_proto::JobKind,
        /// Sent by a balancer rather than asked for.
        auto: bool,
        /// How many times it has moved, this move included.
        moves: u32,
    },
    /// Target → home: yes; this id names the migration.
    Accept(u64),
    /// Target → home: no, and why.
    Refuse(String),
    /// Home → target (second connection): this connection serves migration `id`'s pages.
    PagesFor(u64),
    /// Home → target: the process.
    Image(Box<om_ckpt::ProcessImage>),
    /// Target → home: it runs, with this pid here.
    Started(i32),
    /// Page server: read.
    Read {
        /// Address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// Page server: the bytes (empty when unreadable).
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Node hosting a guest → its home: the balancer here would send home process `pid`
    /// on to node `to`. Answered with `Accept(0)` or `Refuse`.
    MoveOn { pid: i32, to: NodeId },
}

#[cfg(test)]
mod tests {
    use super::{decode, frame, read_frame, Setup, MAX_FRAME};
    use std::io::Cursor;

    #[test]
    fn frames_come_back_only_with_their_key_and_number() {
        let session = [9u8; 32];
        let payload = postcard::to_stdvec(&Setup::MoveOn { pid: 42, to: 3 }).unwrap();
        let f = frame(&session, 5, &payload);
        let got = read_frame(&mut Cursor::new(&f), &session, 5).unwrap();
        assert!(matches!(
            decode::<Setup>(&got).unwrap(),
            Setup::MoveOn { pid: 42, to: 3 }
        ));
        // Replayed, reordered or forged: refused.
        assert!(read_frame(&mut Cursor::new(&f), &session, 6).is_err());
        assert!(read_frame(&mut Cursor::new(&f), &[8u8; 32], 5).is_err());
        let mut flipped = f.clone();
        flipped[6] ^= 1;
        assert!(read_frame(&mut Cursor::new(&flipped), &session, 5).is_err());
        // Truncated, or announcing more than a frame may hold.
        assert!(read_frame(&mut Cursor::new(&f[..f.len() - 1]), &session, 5).is_err());
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        let e = read_frame(&mut Cursor::new(&huge), &session, 0).unwrap_err();
        assert_eq!(e.to_string(), "frame too large");
        // Garbage is an error, not a panic.
        assert!(decode::<Setup>(&[200, 200, 200]).is_err());
    }
}
