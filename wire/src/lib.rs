//! `om-wire`: the gossip packet of omd: one fixed-size UDP datagram, authenticated with the cluster key;
//! and the discovery announcement ([`Announcement`], `omd --discover`).
//!
//! ```text
//! offset  size  field
//!      0     4  magic "omgs"
//!      4     1  version (2)
//!      5     1  count: records that follow and are valid (1 ..= 1 + MAX_WINDOW)
//!      6     2  sender node number
//!      8     8  sequence number (strictly increasing per sender; replays are dropped)
//!     16    44  record 0: the sender's own
//!     60    44  records 1 .. count-1: the freshest records the sender holds; the rest of
//!               the 1 + MAX_WINDOW slots are zero
//!   last    16  tag: BLAKE3 keyed hash (the cluster key) of everything before it
//!               followed by the destination's node number (u16, not sent: the
//!               receiver puts its own), truncated to 16 bytes
//! record: node u16, flags u16, age_ms u32, load u32, speed u32, cpus u16, util u16,
//!         mem u64, free u64, tmem u64          (all little-endian)
//! ```
//!
//! Every packet has the same size whatever the window, so the size says nothing and a
//! truncated packet is known at once. A packet is good only at the node it was sent to:
//! replayed to another, its tag fails (sequence numbers are per sender and receiver, so
//! without this a captured packet could be replayed to every other node in turn). Decoding checks the size, then the tag, then the
//! contents; it never panics on any input (there is a fuzz target for it).

use om_proto::{NodeId, NodeRecord};

mod announce;
pub use announce::{
    decode_announcement, encode_announcement, Announcement, ANNOUNCE_LEN, ANNOUNCE_MAGIC,
    ANNOUNCE_VERSION,
};

pub const MAGIC: [u8; 4] = *b"omgs";
pub const VERSION: u8 = 2;
/// The most records a packet carries besides the sender's own.
pub const MAX_WINDOW: usize = 31;
pub const HEADER_LEN: usize = 16;
pub const RECORD_LEN: usize = 44;
pub const TAG_LEN: usize = 16;
/// The size of every gossip packet.
pub const PACKET_LEN: usize = HEADER_LEN + (1 + MAX_WINDOW) * RECORD_LEN + TAG_LEN;
// One packet fits one Ethernet frame (1500 bytes less the IP and UDP headers).
const _: () = assert!(PACKET_LEN <= 1472);
/// The oldest age a record may claim (a day): anything older is nonsense.
pub const MAX_AGE_MS: u32 = 86_400_000;

/// The cluster key: 32 secret bytes shared by all nodes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// One node's record as carried in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireRecord {
    pub node: NodeId,
    /// How old the information was when the packet was sent, in milliseconds.
    pub age_ms: u32,
    pub record: NodeRecord,
}

/// A decoded, authenticated packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub sender: NodeId,
    pub seq: u64,
    /// `records[0]` is the sender's own.
    pub records: Vec<WireRecord>,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes, but every gossip packet has {PACKET_LEN}")]
    Size(usize),
    #[error("the authentication tag does not match (another key, or altered)")]
    Tag,
    #[error("not a gossip packet of version {VERSION}")]
    Header,
    #[error("{0} records: a packet has 1 to {max}", max = 1 + MAX_WINDOW)]
    Count(usize),
    #[error("record 0 is about node {record}, not its sender {sender}")]
    NotOwnRecord { sender: NodeId, record: NodeId },
    #[error("impossible record about node {node}")]
    Record { node: NodeId },
}

impl DecodeError {
    /// True when the tag was wrong (the other errors are malformed packets).
    pub fn is_tag(&self) -> bool {
        matches!(self, DecodeError::Tag)
    }
}

fn tag(key: &Key, body: &[u8], to: NodeId) -> [u8; TAG_LEN] {
    let mut h = blake3::Hasher::new_keyed(&key.0);
    h.update(body);
    h.update(&to.to_le_bytes());
    let full = h.finalize();
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full.as_bytes()[..TAG_LEN]);
    t
}

/// Comparison whose time does not depend on where the first difference is (for tags
/// and tokens).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Encodes `packet` for node `to` (at most 1 + MAX_WINDOW records; extra ones are left
/// out).
pub fn encode(key: &Key, packet: &Packet, to: NodeId) -> [u8; PACKET_LEN] {
    let mut buf = [0u8; PACKET_LEN];
    let count = packet.records.len().min(1 + MAX_WINDOW);
    buf[0..4].copy_from_slice(&MAGIC);
    buf[4] = VERSION;
    buf[5] = count as u8;
    buf[6..8].copy_from_slice(&packet.sender.to_le_bytes());
    buf[8..16].copy_from_slice(&packet.seq.to_le_bytes());
    for (i, r) in packet.records.iter().take(count).enumerate() {
        let at = HEADER_LEN + i * RECORD_LEN;
        put_record(&mut buf[at..at + RECORD_LEN], r);
    }
    let body = PACKET_LEN - TAG_LEN;
    let t = tag(key, &buf[..body], to);
    buf[body..].copy_from_slice(&t);
    buf
}

/// Decodes and authenticates one datagram received by node `me`.
pub fn decode(key: &Key, buf: &[u8], me: NodeId) -> Result<Packet, DecodeError> {
    if buf.len() != PACKET_LEN {
        return Err(DecodeError::Size(buf.len()));
    }
    let body = PACKET_LEN - TAG_LEN;
    if !same(&tag(key, &buf[..body], me), &buf[body..]) {
        return Err(DecodeError::Tag);
    }
    if buf[0..4] != MAGIC || buf[4] != VERSION {
        return Err(DecodeError::Header);
    }
    let count = buf[5] as usize;
    if count == 0 || count > 1 + MAX_WINDOW {
        return Err(DecodeError::Count(count));
    }
    let sender = u16::from_le_bytes([buf[6], buf[7]]);
    let seq = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    let mut records = Vec::with_capacity(count);
    for i in 0..count {
        let at = HEADER_LEN + i * RECORD_LEN;
        let r = get_record(&buf[at..at + RECORD_LEN]);
        if !possible(&r) {
            return Err(DecodeError::Record { node: r.node });
        }
        records.push(r);
    }
    if records[0].node != sender {
        return Err(DecodeError::NotOwnRecord {
            sender,
            record: records[0].node,
        });
    }
    Ok(Packet {
        sender,
        seq,
        records,
    })
}

/// Whether a record could be true.
fn possible(r: &WireRecord) -> bool {
    r.node != 0
        && r.age_ms <= MAX_AGE_MS
        && r.record.util <= 10_000
        && r.record.mem <= r.record.tmem
        && r.record.free <= r.record.tmem
}

fn put_record(b: &mut [u8], r: &WireRecord) {
    let x = &r.record;
    b[0..2].copy_from_slice(&r.node.to_le_bytes());
    b[2..4].copy_from_slice(&x.flags.to_le_bytes());
    b[4..8].copy_from_slice(&r.age_ms.to_le_bytes());
    b[8..12].copy_from_slice(&x.load.to_le_bytes());
    b[12..16].copy_from_slice(&x.speed.to_le_bytes());
    b[16..18].copy_from_slice(&x.cpus.to_le_bytes());
    b[18..20].copy_from_slice(&x.util.to_le_bytes());
    b[20..28].copy_from_slice(&x.mem.to_le_bytes());
    b[28..36].copy_from_slice(&x.free.to_le_bytes());
    b[36..44].copy_from_slice(&x.tmem.to_le_bytes());
}

fn get_record(b: &[u8]) -> WireRecord {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    WireRecord {
        node: u16_at(0),
        age_ms: u32_at(4),
        record: NodeRecord {
            flags: u16_at(2),
            load: u32_at(8),
            speed: u32_at(12),
            cpus: u16_at(16),
            util: u16_at(18),
            mem: u64_at(20),
            free: u64_at(28),
            tmem: u64_at(36),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> Key {
        Key([b; 32])
    }

    fn rec(node: NodeId, age_ms: u32) -> WireRecord {
        WireRecord {
            node,
            age_ms,
            record: NodeRecord {
                load: 123,
                speed: 9000,
                cpus: 2,
                util: 5000,
                flags: 4,
                mem: 100,
                free: 50,
                tmem: 200,
            },
        }
    }

    #[test]
    fn round_trip_and_fixed_size() {
        let p = Packet {
            sender: 3,
            seq: 77,
            records: vec![rec(3, 0), rec(1, 1500), rec(65535, 42)],
        };
        let b = encode(&key(1), &p, 5);
        assert_eq!(b.len(), PACKET_LEN);
        assert_eq!(decode(&key(1), &b, 5).unwrap(), p);
    }

    #[test]
    fn wrong_key_truncated_and_altered_packets_are_refused() {
        let p = Packet {
            sender: 2,
            seq: 1,
            records: vec![rec(2, 0)],
        };
        let b = encode(&key(1), &p, 5);
        assert_eq!(decode(&key(2), &b, 5), Err(DecodeError::Tag));
        assert_eq!(decode(&key(1), &b[..100], 5), Err(DecodeError::Size(100)));
        for i in [0, 5, 7, 20, PACKET_LEN - 1] {
            let mut c = b;
            c[i] ^= 1;
            assert_eq!(decode(&key(1), &c, 5), Err(DecodeError::Tag), "byte {i}");
        }
    }

    #[test]
    fn contents_are_checked_after_the_tag() {
        // A well-signed packet whose own record is about someone else.
        let p = Packet {
            sender: 2,
            seq: 1,
            records: vec![rec(5, 0)],
        };
        let b = encode(&key(1), &p, 5);
        assert_eq!(
            decode(&key(1), &b, 5),
            Err(DecodeError::NotOwnRecord {
                sender: 2,
                record: 5
            })
        );
        let mut r = rec(2, 0);
        r.record.util = 10_001;
        let b = encode(
            &key(1),
            &Packet {
                sender: 2,
                seq: 1,
                records: vec![r],
            },
            5,
        );
        assert_eq!(decode(&key(1), &b, 5), Err(DecodeError::Record { node: 2 }));
        let b = encode(
            &key(1),
            &Packet {
                sender: 2,
                seq: 1,
                records: vec![],
            },
            5,
        );
        assert_eq!(decode(&key(1), &b, 5), Err(DecodeError::Count(0)));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decode(&key(9), &bytes, 5);
        }

        #[test]
        fn any_valid_packet_round_trips(
            sender in 1u16..,
            seq in any::<u64>(),
            ages in proptest::collection::vec(0u32..MAX_AGE_MS, 0..MAX_WINDOW),
        ) {
            let mut records = vec![rec(sender, 0)];
            records.extend(ages.iter().enumerate().map(|(i, &a)| rec(i as u16 + 1, a)));
            let p = Packet { sender, seq, records };
            prop_assert_eq!(decode(&key(3), &encode(&key(3), &p, 5), 5).unwrap(), p);
        }
    }
}
