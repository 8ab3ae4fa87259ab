//! The TCP link between two omds, version 2: a Noise handshake (`NNpsk0`: fresh
//! ephemeral X25519 keys on both ends, mixed with a pre-shared key derived from the
//! cluster key) proves that both ends hold the key and gives each link its own keys, then
//! every frame travels as AES-256-GCM records under those keys with implicit, counted
//! nonces: nothing on the link can be read, forged, replayed or reordered, and a link
//! captured today cannot be read later with the cluster key alone (forward secrecy).
//!
//! Bounds, for a peer that holds no key and for one that holds it but misbehaves:
//! the handshake has one deadline as a whole ([`HANDSHAKE_DEADLINE`]); a record is at
//! most 64 KiB and is authenticated before its bytes join a frame; a frame, whose length
//! is itself inside the first authenticated record, is at most [`MAX_FRAME`]; once a
//! frame has begun, each of its records must arrive within [`RECORD_DEADLINE`]; a write
//! that the peer does not take within [`WRITE_DEADLINE`] fails the link. An established
//! link whose peer stops answering (a partition, a node that died without closing)
//! fails within [`PARTITION_LIMIT`], even while nothing is sent: both ends then end the
//! process (see `om_remote::relay`), the home with its deputy, the remote with its guest.
//!
//! The layout is in docs/protocols.md ("Migration link").

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use om_map::NodeId;
use om_wire::Key;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The version of the link, the last byte of its magic.
pub const LINK_VERSION: u8 = 3;
/// Sent first, in clear, by the side that connects.
pub const MAGIC: &[u8; 8] = b"omd-mig3";
/// The Noise protocol of the handshake and the records.
const NOISE: &str = "Noise_NNpsk0_25519_AESGCM_SHA256";
/// Largest frame payload (the largest page reply plus headroom).
pub const MAX_FRAME: usize = om_ckpt::pages::MAX_PEER_READ as usize + 4096;
/// Largest record on the wire (Noise's limit), and the plaintext it can carry.
const MAX_RECORD: usize = 65535;
const TAG: usize = 16;
const RECORD_PLAIN: usize = MAX_RECORD - TAG;
/// The whole handshake, from the first byte to the confirmation, must fit in this.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Once a frame has begun, each of its records must arrive within this.
pub const RECORD_DEADLINE: Duration = Duration::from_secs(15);
/// A write the peer does not take within this fails the link.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(60);
/// How long an established link survives a peer that does not answer (TCP keepalive
/// probes after [`KEEPALIVE_IDLE`] of silence, every [`KEEPALIVE_EVERY`], until this
/// much has passed; data the peer does not acknowledge for as long fails it too). A
/// shorter partition is ridden out by TCP.
pub const PARTITION_LIMIT: Duration = Duration::from_secs(30);
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);

/// Makes `s` fail within [`PARTITION_LIMIT`] once its peer stops answering.
fn keep_alive(s: &TcpStream) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let secs = |d: Duration| d.as_secs() as u32;
    let probes = secs(PARTITION_LIMIT - KEEPALIVE_IDLE) / secs(KEEPALIVE_EVERY);
    setsockopt(s, sockopt::KeepAlive, &true)?;
    setsockopt(s, sockopt::TcpKeepIdle, &secs(KEEPALIVE_IDLE))?;
    setsockopt(s, sockopt::TcpKeepInterval, &secs(KEEPALIVE_EVERY))?;
    setsockopt(s, sockopt::TcpKeepCount, &probes)?;
    setsockopt(
        s,
        sockopt::TcpUserTimeout,
        &(PARTITION_LIMIT.as_millis() as u32),
    )?;
    Ok(())
}

/// The initiator's first record, which tells the responder the initiator is live (the
/// first handshake message alone could be a replay).
const CONFIRM: &[u8] = b"omd-mig3 ready";

/// Why a link could not be set up, or broke.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("not an omd migration link")]
    NotOmd,
    #[error("the other end speaks migration link version {0}; this node speaks version {LINK_VERSION} (every node of a cluster must run the same release)")]
    Version(u8),
    #[error("the other end does not hold the cluster key")]
    WrongKey,
    #[error("it was asked for node {asked} and says it is node {answered}")]
    WrongNode { asked: NodeId, answered: NodeId },
    #[error("the other end hung up during the handshake (it may not hold the cluster key, or refuses links from this node)")]
    HungUp,
    #[error("the other end took longer than it may (a handshake must end within {} s, and each record of a frame must come within {} s)", HANDSHAKE_DEADLINE.as_secs(), RECORD_DEADLINE.as_secs())]
    Deadline,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<LinkError> for std::io::Error {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Io(e) => e,
            e => std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()),
        }
    }
}

/// The pre-shared key of the Noise handshake: the cluster key, kept apart from its use
/// for gossip.
fn psk(key: &Key) -> [u8; 32] {
    blake3::derive_key("omd migration link v2 psk", &key.0)
}

fn builder() -> snow::Builder<'static> {
    let resolver = snow::resolvers::FallbackResolver::new(
        Box::new(snow::resolvers::RingResolver),
        Box::new(snow::resolvers::DefaultResolver),
    );
    snow::Builder::with_resolver(
        NOISE.parse().expect("a valid Noise name"),
        Box::new(resolver),
    )
    .prologue(MAGIC)
    .expect("a prologue")
}

/// A handshake state of this link's protocol, keyed by the cluster key.
fn handshake_state(key: &Key, initiator: bool) -> Result<snow::HandshakeState, snow::Error> {
    let psk = psk(key);
    let b = builder().psk(0, &psk)?;
    if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
}

fn noise(e: snow::Error) -> LinkError {
    match e {
        snow::Error::Decrypt => LinkError::WrongKey,
        e => LinkError::Io(std::io::Error::other(e.to_string())),
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Reads exactly `buf.len()` bytes, failing once `by` has passed.
fn read_by(s: &mut TcpStream, buf: &mut [u8], by: Instant) -> Result<(), LinkError> {
    let mut got = 0;
    while got < buf.len() {
        let left = by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LinkError::Deadline);
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(LinkError::Deadline)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One handshake message, after `prefix` (the magic, first): u16 big-endian length,
/// then the message.
fn send_hs(s: &mut TcpStream, prefix: &[u8], msg: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(prefix.len() + 2 + msg.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
}

fn recv_hs(s: &mut TcpStream, by: Instant) -> Result<Vec<u8>, LinkError> {
    let mut len = [0u8; 2];
    read_by(s, &mut len, by)?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    read_by(s, &mut msg, by)?;
    Ok(msg)
}

/// The handshake's payload: two node numbers (u16 little-endian each).
fn node_pair(a: NodeId, b: NodeId) -> [u8; 4] {
    let [a0, a1] = a.to_le_bytes();
    let [b0, b1] = b.to_le_bytes();
    [a0, a1, b0, b1]
}

/// Node numbers carried in the handshake's payloads (inside its encryption).
fn nodes(payload: &[u8]) -> Result<(NodeId, NodeId), LinkError> {
    match payload {
        [a, b, c, d] => Ok((
            NodeId::from_le_bytes([*a, *b]),
            NodeId::from_le_bytes([*c, *d]),
        )),
        _ => Err(LinkError::NotOmd),
    }
}

/// The keys of an established link (both directions), as Noise leaves them.
pub type Transport = snow::StatelessTransportState;

/// One direction's state: the stream and the next record's nonce.
struct Half {
    stream: TcpStream,
    nonce: u64,
    /// Buffers kept from one frame to the next (a fresh 4 MiB buffer per page reply
    /// costs more in page faults than its encryption).
    plain: Vec<u8>,
    wire: Vec<u8>,
}

impl Half {
    fn new(stream: TcpStream) -> Half {
        Half {
            stream,
            nonce: 0,
            plain: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// Gives back buffers that one large frame grew, beyond what ordinary frames need.
    fn trim(&mut self) {
        for b in [&mut self.plain, &mut self.wire] {
            if b.capacity() > KEEP_BUFFER {
                *b = Vec::new();
            }
        }
    }
}

/// Records sealed before they are written.
const RECORDS_PER_WRITE: usize = 2;

/// Buffer capacity a link keeps between frames (a page reply of 4 MiB, and its records).
const KEEP_BUFFER: usize = 5 << 20;

/// An established, encrypted link.
pub struct Conn {
    noise: snow::StatelessTransportState,
    read: Mutex<Half>,
    write: Mutex<Half>,
    /// The same socket, for poll().
    poll: OwnedFd,
    /// The node at the other end.
    pub peer: NodeId,
}

impl Conn {
    /// Opens the link on `stream` (connected to node `to`) as node `me`. Fails unless the
    /// other end holds the cluster key and says it is node `to`.
    pub fn open(
        mut stream: TcpStream,
        key: &Key,
        me: NodeId,
        to: NodeId,
    ) -> Result<Conn, LinkError> {
        let by = Instant::now() + HANDSHAKE_DEADLINE;
        stream.set_nodelay(true)?;
        let mut hs = handshake_state(key, true).map_err(noise)?;
        let mut buf = vec![0u8; MAX_RECORD];
        let n = hs
            .write_message(&node_pair(me, to), &mut buf)
            .map_err(noise)?;
        send_hs(&mut stream, MAGIC, &buf[..n])?;
        let answer = recv_hs(&mut stream, by).map_err(|e| match e {
            LinkError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => LinkError::HungUp,
            e => e,
        })?;
        let n = hs.read_message(&answer, &mut buf).map_err(noise)?;
        let (answered, asked) = nodes(&buf[..n])?;
        if answered != to || asked != to {
            return Err(LinkError::WrongNode {
                asked: to,
                answered,
            });
        }
        let conn = Conn::established(stream, hs, to)?;
        conn.send_payload(CONFIRM)?;
        Ok(conn)
    }

    /// Answers a link on `stream` as node `me`; returns it with the peer's node number
    /// (its word, proven only to come from a holder of the key: check it against the map).
    pub fn accept(mut stream: TcpStream, key: &Key, me: NodeId) -> Result<Conn, LinkError> {
        let by = Instant::now() + HANDSHAKE_DEADLINE;
        stream.set_nodelay(true)?;
        let mut magic = [0u8; 8];
        read_by(&mut stream, &mut magic, by)?;
        if &magic != MAGIC {
            return Err(match magic {
                [b'o', b'm', b'd', b'-', b'm', b'i', b'g', v] => {
                    LinkError::Version(v.wrapping_sub(b'0'))
                }
                _ => LinkError::NotOmd,
            });
        }
        let mut hs = handshake_state(key, false).map_err(noise)?;
        let mut buf = vec![0u8; MAX_RECORD];
        let first = recv_hs(&mut stream, by)?;
        let n = hs.read_message(&first, &mut buf).map_err(noise)?;
        let (peer, asked) = nodes(&buf[..n])?;
        if asked != me {
            return Err(LinkError::WrongNode {
                asked,
                answered: me,
            });
        }
        let n = hs
            .write_message(&node_pair(me, asked), &mut buf)
            .map_err(noise)?;
        send_hs(&mut stream, &[], &buf[..n])?;
        let conn = Conn::established(stream, hs, peer)?;
        // The first message may be a replay; the confirmation cannot be.
        let confirm = {
            let mut r = conn.read.lock().map_err(|_| bad("poisoned"))?;
            conn.read_payload(&mut r, Some(by))
        };
        match confirm {
            Ok(p) if p == CONFIRM => Ok(conn),
            Ok(_) => Err(LinkError::NotOmd),
            Err(e) => Err(e),
        }
    }

    fn established(
        stream: TcpStream,
        hs: snow::HandshakeState,
        peer: NodeId,
    ) -> Result<Conn, LinkError> {
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(Some(WRITE_DEADLINE))?;
        keep_alive(&stream)?;
        let w = stream.try_clone()?;
        let poll = OwnedFd::from(stream.try_clone()?);
        Ok(Conn {
            noise: hs.into_stateless_transport_mode().map_err(noise)?,
            read: Mutex::new(Half::new(stream)),
            write: Mutex::new(Half::new(w)),
            poll,
            peer,
        })
    }

    /// Sends one message.
    pub fn send<T: Serialize>(&self, m: &T) -> std::io::Result<()> {
        let mut w = self.write.lock().map_err(|_| bad("poisoned"))?;
        let mut plain = std::mem::take(&mut w.plain);
        plain.clear();
        plain.extend_from_slice(&[0; 4]);
        let mut plain =
            postcard::serialize_with_flavor(m, Appended(plain)).map_err(std::io::Error::other)?;
        let len = plain.len() - 4;
        if len > MAX_FRAME {
            return Err(bad("a message larger than a frame may hold"));
        }
        plain[..4].copy_from_slice(&(len as u32).to_le_bytes());
        let r = self.write_plain(&mut w, &plain);
        w.plain = plain;
        w.trim();
        r
    }

    fn send_payload(&self, payload: &[u8]) -> std::io::Result<()> {
        let mut w = self.write.lock().map_err(|_| bad("poisoned"))?;
        self.write_plain(&mut w, &framed(payload))
    }

    /// Seals and writes a few records at a time, so that the other end decrypts the
    /// first while this end encrypts the next (a frame sealed whole before its first byte
    /// left made a 1 MiB page request five times slower than plain TCP).
    fn write_plain(&self, w: &mut Half, plain: &[u8]) -> std::io::Result<()> {
        let mut wire = std::mem::take(&mut w.wire);
        let mut r = Ok(());
        for group in plain.chunks(RECORD_PLAIN * RECORDS_PER_WRITE) {
            r = seal_plain(&self.noise, &mut w.nonce, group, &mut wire)
                .and_then(|()| w.stream.write_all(&wire));
            if r.is_err() {
                break;
            }
        }
        w.wire = wire;
        r
    }

    /// Receives one message, waiting at most `timeout` for it to start (None: forever).
    /// Once it has started, each of its records must come within [`RECORD_DEADLINE`].
    pub fn recv<T: DeserializeOwned>(
        &self,
        timeout: Option<Duration>,
    ) -> std::io::Result<Option<T>> {
        let mut r = self.read.lock().map_err(|_| bad("poisoned"))?;
        let ms = timeout.map_or(nix::poll::PollTimeout::NONE, |t| {
            nix::poll::PollTimeout::from(u16::try_from(t.as_millis()).unwrap_or(u16::MAX))
        });
        let mut pfd = [nix::poll::PollFd::new(
            r.stream.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut pfd, ms) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let payload = self.read_payload(&mut r, None)?;
        decode(&payload).map(Some)
    }

    fn read_payload(&self, r: &mut Half, by: Option<Instant>) -> Result<Vec<u8>, LinkError> {
        let mut opened = Opener {
            plain: std::mem::take(&mut r.plain),
            ..Opener::default()
        };
        let mut record = std::mem::take(&mut r.wire);
        let got = loop {
            let by = by.unwrap_or_else(|| Instant::now() + RECORD_DEADLINE);
            let mut len = [0u8; 2];
            if let Err(e) = read_by(&mut r.stream, &mut len, by) {
                break Err(e);
            }
            record.resize(u16::from_be_bytes(len) as usize, 0);
            if let Err(e) = read_by(&mut r.stream, &mut record, by) {
                break Err(e);
            }
            match opened.open(&self.noise, &mut r.nonce, &record) {
                Ok(Some(payload)) => break Ok(payload),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        r.plain = opened.plain;
        r.wire = record;
        got
    }

    /// Readable when a frame waits.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.poll.as_fd()
    }
}

/// Postcard output appended to a buffer a slice at a time (its `to_extend` goes a byte
/// at a time, which showed in the page stream's profile).
struct Appended(Vec<u8>);

impl postcard::ser_flavors::Flavor for Appended {
    type Output = Vec<u8>;
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }
    fn try_extend(&mut self, d: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(d);
        Ok(())
    }
    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// The records of one frame: the first record's plaintext starts with the payload's
/// length (u32 little-endian), then the payload, cut into records of at most 64 KiB.
pub fn seal(
    noise: &snow::StatelessTransportState,
    nonce: &mut u64,
    payload: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    seal_plain(noise, nonce, &framed(payload), &mut out)?;
    Ok(out)
}

/// A frame's plaintext: the payload's length (u32 little-endian), then the payload.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(4 + payload.len());
    plain.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    plain.extend_from_slice(payload);
    plain
}

/// [`seal`] of a frame's plaintext (its length already in front) into `out`.
fn seal_plain(
    noise: &snow::StatelessTransportState,
    nonce: &mut u64,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    let records = plain.len().div_ceil(RECORD_PLAIN);
    // Only what grows is zeroed; the rest is overwritten.
    out.resize(plain.len() + records * (2 + TAG), 0);
    let mut at = 0;
    for chunk in plain.chunks(RECORD_PLAIN) {
        let n = noise
            .write_message(*nonce, chunk, &mut out[at + 2..])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        *nonce += 1;
        out[at..at + 2].copy_from_slice(&(n as u16).to_be_bytes());
        at += 2 + n;
    }
    out.truncate(at);
    Ok(())
}

/// Reassembles one frame from its records, each authenticated before it is kept.
#[derive(Default)]
pub struct Opener {
    want: Option<usize>,
    payload: Vec<u8>,
    plain: Vec<u8>,
}

impl Opener {
    /// Takes the next record (its bytes after the length); returns the payload once the
    /// frame is whole. Fails on a record that does not authenticate under `nonce`, and
    /// on a frame that says it is larger than [`MAX_FRAME`] or runs past its length.
    pub fn open(
        &mut self,
        noise: &snow::StatelessTransportState,
        nonce: &mut u64,
        record: &[u8],
    ) -> Result<Option<Vec<u8>>, LinkError> {
        let failed = |_| LinkError::Io(bad("a frame failed authentication"));
        if let Some(want) = self.want {
            // Decrypted where it belongs: the record's plaintext is its length less the tag.
            let at = self.payload.len();
            let n = record.len().saturating_sub(TAG);
            Self::fits(at + n, want)?;
            self.payload.resize(at + n, 0);
            let got = noise
                .read_message(*nonce, record, &mut self.payload[at..])
                .map_err(failed)?;
            *nonce += 1;
            self.payload.truncate(at + got);
            return Ok(self.finished(want));
        }
        self.plain.resize(MAX_RECORD, 0);
        let n = noise
            .read_message(*nonce, record, &mut self.plain)
            .map_err(failed)?;
        *nonce += 1;
        // The first record of a frame: its length, then the payload's first bytes.
        let Some((len, got)) = self.plain[..n].split_first_chunk::<4>() else {
            return Err(LinkError::Io(bad("a frame without its length")));
        };
        let want = u32::from_le_bytes(*len) as usize;
        if want > MAX_FRAME {
            return Err(LinkError::Io(bad("frame too large")));
        }
        Self::fits(got.len(), want)?;
        self.want = Some(want);
        // The length is authenticated and bounded: room for all of it at once.
        self.payload = Vec::with_capacity(want);
        self.payload.extend_from_slice(got);
        Ok(self.finished(want))
    }

    /// Whether `len` bytes of payload fit the frame's announced length `want`.
    fn fits(len: usize, want: usize) -> Result<(), LinkError> {
        if len > want {
            return Err(LinkError::Io(bad("a frame runs past its length")));
        }
        Ok(())
    }

    fn finished(&mut self, want: usize) -> Option<Vec<u8>> {
        if self.payload.len() < want {
            return None;
        }
        self.want = None;
        Some(std::mem::take(&mut self.payload))
    }
}

/// Decodes a frame's payload: a [`crate::Setup`] message, or once the migration runs, the
/// session's messages (`om_remote::relay::Msg`), postcard.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> std::io::Result<T> {
    postcard::from_bytes(payload)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A pair of transport states as the two ends of a link would hold them, made in memory
/// (for tests and the fuzz target): (initiator's, responder's).
pub fn pair(key: &Key) -> (snow::StatelessTransportState, snow::StatelessTransportState) {
    let mut i = handshake_state(key, true).expect("initiator");
    let mut r = handshake_state(key, false).expect("responder");
    let (mut a, mut b) = (vec![0u8; MAX_RECORD], vec![0u8; MAX_RECORD]);
    let n = i
        .write_message(&node_pair(1, 2), &mut a)
        .expect("message 1");
    r.read_message(&a[..n], &mut b).expect("message 1 read");
    let n = r
        .write_message(&node_pair(2, 2), &mut a)
        .expect("message 2");
    i.read_message(&a[..n], &mut b).expect("message 2 read");
    (
        i.into_stateless_transport_mode()
            .expect("initiator transport"),
        r.into_stateless_transport_mode()
            .expect("responder transport"),
    )
}

/// Splits records off `wire` (u16 big-endian length, record); None when it is short.
pub fn next_record(wire: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = wire.split_first_chunk::<2>()?;
    let n = u16::from_be_bytes(*len) as usize;
    (rest.len() >= n).then(|| rest.split_at(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn key(b: u8) -> Key {
        Key([b; 32])
    }

    /// Opens every record of `wire` with `noise` from nonce 0 and returns the frames.
    fn open_all(
        noise: &snow::StatelessTransportState,
        mut wire: &[u8],
    ) -> Result<Vec<Vec<u8>>, LinkError> {
        let (mut nonce, mut o, mut frames) = (0, Opener::default(), vec![]);
        while let Some((rec, rest)) = next_record(wire) {
            if let Some(p) = o.open(noise, &mut nonce, rec)? {
                frames.push(p);
            }
            wire = rest;
        }
        Ok(frames)
    }

    #[test]
    fn frames_come_back_only_in_order_and_with_their_keys() {
        let (i, r) = pair(&key(9));
        let big: Vec<u8> = (0..200_000u32).map(|x| x as u8).collect();
        let mut nonce = 0;
        let mut wire = seal(&i, &mut nonce, b"small").unwrap();
        wire.extend(seal(&i, &mut nonce, &big).unwrap());
        assert_eq!(
            open_all(&r, &wire).unwrap(),
            vec![b"small".to_vec(), big.clone()]
        );
        // Another link's keys (same cluster key, other ephemeral keys): refused.
        let (_, r2) = pair(&key(9));
        assert!(open_all(&r2, &wire).is_err());
        // A record replayed, dropped or reordered: refused.
        let (first, rest) = next_record(&wire).unwrap();
        let mut replay = wire[..2 + first.len()].to_vec();
        replay.extend_from_slice(&wire[..2 + first.len()]);
        assert!(open_all(&r, &replay).is_err());
        assert!(open_all(&r, rest).is_err());
        // One bit flipped: refused.
        let mut flipped = wire.clone();
        flipped[9] ^= 1;
        assert!(open_all(&r, &flipped).is_err());
    }

    #[test]
    fn a_frame_longer_than_the_limit_is_refused_at_its_first_record() {
        let (i, r) = pair(&key(1));
        let mut plain = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        plain.extend_from_slice(&[0; 100]);
        let mut rec = vec![0u8; MAX_RECORD];
        let n = i.write_message(0, &plain, &mut rec).unwrap();
        let e = Opener::default().open(&r, &mut 0, &rec[..n]).unwrap_err();
        assert_eq!(e.to_string(), "frame too large");
    }

    fn linked(
        server_key: Key,
        server_me: NodeId,
        to: NodeId,
    ) -> (Result<Conn, LinkError>, Result<Conn, LinkError>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            Conn::accept(s, &server_key, server_me)
        });
        let client = Conn::open(TcpStream::connect(at).unwrap(), &key(5), 1, to);
        (client, server.join().unwrap())
    }

    #[test]
    fn two_ends_with_the_key_talk_and_nothing_travels_in_clear() {
        use crate::Setup;
        // A recording relay between the two ends: what an eavesdropper would capture.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let server_at = l.local_addr().unwrap();
        let relay = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay_at = relay.local_addr().unwrap();
        let captured = std::sync::Arc::new(Mutex::new(Vec::new()));
        let cap = captured.clone();
        std::thread::spawn(move || {
            let (c, _) = relay.accept().unwrap();
            let s = TcpStream::connect(server_at).unwrap();
            for (mut from, mut to) in [(c.try_clone().unwrap(), s.try_clone().unwrap()), (s, c)] {
                let cap = cap.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        cap.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let c = Conn::accept(s, &key(5), 2).unwrap();
            let got = c.recv::<Setup>(Some(Duration::from_secs(10))).unwrap();
            c.send(&Setup::Accept(7)).unwrap();
            (c.peer, got)
        });
        let secret = b"hunter2 is my password; 0123456789".repeat(1000);
        let c = Conn::open(TcpStream::connect(relay_at).unwrap(), &key(5), 1, 2).unwrap();
        c.send(&Setup::Bytes(secret.clone())).unwrap();
        let answer = c.recv::<Setup>(Some(Duration::from_secs(10))).unwrap();
        assert!(matches!(answer, Some(Setup::Accept(7))), "{answer:?}");
        let (peer, got) = server.join().unwrap();
        assert_eq!(peer, 1);
        assert!(matches!(got, Some(Setup::Bytes(b)) if b == secret));
        let wire = captured.lock().unwrap().clone();
        assert!(wire.len() > secret.len(), "the relay saw the traffic");
        assert!(
            !wire.windows(7).any(|w| w == b"hunter2"),
            "the password crossed the link in clear"
        );
    }

    #[test]
    fn a_wrong_key_or_node_fails_the_handshake_on_both_ends() {
        let (c, s) = linked(key(6), 2, 2);
        assert!(matches!(c, Err(LinkError::HungUp)), "{:?}", c.err());
        assert!(matches!(s, Err(LinkError::WrongKey)), "{:?}", s.err());
        // Node 1 asks for node 3, and node 2 answers.
        let (c, s) = linked(key(5), 2, 3);
        assert!(c.is_err());
        assert!(
            matches!(
                s,
                Err(LinkError::WrongNode {
                    asked: 3,
                    answered: 2
                })
            ),
            "{:?}",
            s.err()
        );
        let (c, s) = linked(key(5), 2, 2);
        assert_eq!(c.unwrap().peer, 2);
        assert_eq!(s.unwrap().peer, 1);
    }

    #[test]
    fn a_silent_or_old_peer_is_dropped_within_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let old = std::thread::spawn(move || {
            let mut s = TcpStream::connect(at).unwrap();
            s.write_all(b"omd-mig1").unwrap();
            let silent = TcpStream::connect(at).unwrap();
            std::thread::sleep(HANDSHAKE_DEADLINE + Duration::from_secs(2));
            drop(silent);
        });
        let (s, _) = l.accept().unwrap();
        let e = Conn::accept(s, &key(5), 2).err().unwrap();
        assert!(e.to_string().contains("version 1"), "{e}");
        let (s, _) = l.accept().unwrap();
        let t = Instant::now();
        let e = Conn::accept(s, &key(5), 2).err().unwrap();
        assert!(matches!(e, LinkError::Deadline), "{e}");
        assert!(t.elapsed() < HANDSHAKE_DEADLINE + Duration::from_secs(2));
        old.join().unwrap();
    }

    /// A peer that holds the key announces a 60 MiB frame, sends one record of it and
    /// stalls: the link fails once the next record is late, having kept one record.
    #[test]
    fn a_key_holder_that_stalls_inside_a_frame_is_dropped() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let c = Conn::open(TcpStream::connect(at).unwrap(), &key(5), 1, 2).unwrap();
            let mut w = c.write.lock().unwrap();
            let out = seal(&c.noise, &mut w.nonce, &vec![0u8; 60 << 20]).unwrap();
            w.stream.write_all(&out[..MAX_RECORD + 2]).unwrap();
            std::thread::sleep(RECORD_DEADLINE + Duration::from_secs(3));
        });
        let (s, _) = l.accept().unwrap();
        let c = Conn::accept(s, &key(5), 2).unwrap();
        let t = Instant::now();
        let e = c.recv::<crate::Setup>(None).expect_err("dropped");
        let waited = t.elapsed();
        assert!(e.to_string().contains("longer than"), "{e}");
        assert!(
            waited >= RECORD_DEADLINE && waited < RECORD_DEADLINE + Duration::from_secs(3),
            "{waited:?}"
        );
        peer.join().unwrap();
    }
}
