//! The discovery announcement (`omd --discover`): one fixed-size UDP datagram a node sends
//! to the cluster's multicast group, so that the others find it without a map, as
//! openMosix's `omdiscd` did. Authenticated with the cluster key, like the gossip packet.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "omdi"
//!      4     1  version (1)
//!      5     1  zero
//!      6     2  sender node number
//!      8     8  sequence number (the sender's gossip counter: strictly increasing)
//!     16    16  the sender's address: IPv6, or IPv4 as ::ffff:a.b.c.d
//!     32     2  the sender's port (gossip and migration)
//!     34     2  zero
//!     36    44  the sender's own record (the gossip packet's record layout)
//!     80    16  tag: BLAKE3 keyed hash (the cluster key) of bytes 0..80 followed by
//!               node number 0 (u16; "to everyone"; no node has number 0), truncated
//! ```
//!
//! The address is inside the tag, and a receiver takes an announcement only from the
//! address it names: one captured and sent again from elsewhere names the wrong place.
//! Decoding checks the size, then the tag, then the contents; it never panics (fuzzed).

use crate::{get_record, put_record, same, tag, DecodeError, Key, WireRecord, RECORD_LEN, TAG_LEN};
use om_proto::{NodeId, NodeRecord};
use std::net::{IpAddr, Ipv6Addr};

pub const ANNOUNCE_MAGIC: [u8; 4] = *b"omdi";
pub const ANNOUNCE_VERSION: u8 = 1;
/// The size of every announcement.
pub const ANNOUNCE_LEN: usize = 36 + RECORD_LEN + TAG_LEN;
const BODY: usize = ANNOUNCE_LEN - TAG_LEN;
/// The destination an announcement's tag is made for: everyone.
const EVERYONE: NodeId = 0;

/// A decoded, authenticated announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub sender: NodeId,
    pub seq: u64,
    /// Where the sender is (and speaks from).
    pub addr: IpAddr,
    pub port: u16,
    pub record: NodeRecord,
}

/// Encodes `a`.
pub fn encode_announcement(key: &Key, a: &Announcement) -> [u8; ANNOUNCE_LEN] {
    let mut buf = [0u8; ANNOUNCE_LEN];
    buf[0..4].copy_from_slice(&ANNOUNCE_MAGIC);
    buf[4] = ANNOUNCE_VERSION;
    buf[6..8].copy_from_slice(&a.sender.to_le_bytes());
    buf[8..16].copy_from_slice(&a.seq.to_le_bytes());
    let v6 = match a.addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    buf[16..32].copy_from_slice(&v6.octets());
    buf[32..34].copy_from_slice(&a.port.to_le_bytes());
    put_record(
        &mut buf[36..36 + RECORD_LEN],
        &WireRecord {
            node: a.sender,
            age_ms: 0,
            record: a.record,
        },
    );
    let t = tag(key, &buf[..BODY], EVERYONE);
    buf[BODY..].copy_from_slice(&t);
    buf
}

/// Decodes and authenticates one announcement.
pub fn decode_announcement(key: &Key, buf: &[u8]) -> Result<Announcement, DecodeError> {
    if buf.len() != ANNOUNCE_LEN {
        return Err(DecodeError::Size(buf.len()));
    }
    if !same(&tag(key, &buf[..BODY], EVERYONE), &buf[BODY..]) {
        return Err(DecodeError::Tag);
    }
    if buf[0..4] != ANNOUNCE_MAGIC
        || buf[4] != ANNOUNCE_VERSION
        || buf[5] != 0
        || buf[34..36] != [0, 0]
    {
        return Err(DecodeError::Header);
    }
    let sender = u16::from_le_bytes([buf[6], buf[7]]);
    let seq = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(&buf[16..32]).expect("16 bytes"));
    let addr = IpAddr::V6(v6).to_canonical();
    let port = u16::from_le_bytes([buf[32], buf[33]]);
    let r = get_record(&buf[36..36 + RECORD_LEN]);
    if r.node != sender {
        return Err(DecodeError::NotOwnRecord {
            sender,
            record: r.node,
        });
    }
    let unusable = addr.is_unspecified() || addr.is_multicast() || addr.is_loopback();
    if sender == 0 || port == 0 || unusable || r.age_ms != 0 || !crate::possible(&r) {
        return Err(DecodeError::Record { node: sender });
    }
    Ok(Announcement {
        sender,
        seq,
        addr,
        port,
        record: r.record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ann(sender: NodeId, addr: &str) -> Announcement {
        Announcement {
            sender,
            seq: 41,
            addr: addr.parse().unwrap(),
            port: 723,
            record: NodeRecord {
                load: 10,
                speed: 9000,
                cpus: 2,
                util: 100,
                flags: 0,
                mem: 1,
                free: 1,
                tmem: 2,
            },
        }
    }

    #[test]
    fn round_trip_for_both_families() {
        for a in [ann(7, "198.18.0.7"), ann(65535, "fd00::7")] {
            let b = encode_announcement(&Key([1; 32]), &a);
            assert_eq!(b.len(), ANNOUNCE_LEN);
            assert_eq!(decode_announcement(&Key([1; 32]), &b), Ok(a));
        }
    }

    #[test]
    fn another_key_any_change_and_impossible_contents_are_refused() {
        let a = ann(7, "198.18.0.7");
        let b = encode_announcement(&Key([1; 32]), &a);
        assert_eq!(
            decode_announcement(&Key([2; 32]), &b),
            Err(DecodeError::Tag)
        );
        for i in 0..ANNOUNCE_LEN {
            let mut c = b;
            c[i] ^= 0x10;
            assert_eq!(
                decode_announcement(&Key([1; 32]), &c),
                Err(DecodeError::Tag),
                "byte {i}"
            );
        }
        assert_eq!(
            decode_announcement(&Key([1; 32]), &b[1..]),
            Err(DecodeError::Size(ANNOUNCE_LEN - 1))
        );
        // A gossip packet's tag is for one node; an announcement's for node 0 alone.
        let gossip = crate::encode(
            &Key([1; 32]),
            &crate::Packet {
                sender: 7,
                seq: 1,
                records: vec![WireRecord {
                    node: 7,
                    age_ms: 0,
                    record: a.record,
                }],
            },
            0,
        );
        assert!(decode_announcement(&Key([1; 32]), &gossip).is_err());
        for bad in [
            ann(0, "198.18.0.7"),
            ann(7, "0.0.0.0"),
            ann(7, "239.255.72.3"),
            ann(7, "127.0.0.1"),
            Announcement { port: 0, ..a },
        ] {
            let b = encode_announcement(&Key([1; 32]), &bad);
            assert!(decode_announcement(&Key([1; 32]), &b).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_announcement(&Key([9; 32]), &bytes);
        }
    }
}
