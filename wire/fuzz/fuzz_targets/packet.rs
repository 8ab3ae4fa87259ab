//! Fuzz the gossip packet decoder. Arbitrary bytes must never panic it and (almost
//! always) fail the tag. So that the checks behind the tag are reached too, the bytes are
//! also signed with the key, padded or cut to a packet's size: then decoding must either
//! refuse with a reason or give a packet that encodes and decodes to itself, at the node
//! it was signed for and nowhere else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use om_wire::{decode, encode, Key, PACKET_LEN, TAG_LEN};

fuzz_target!(|data: &[u8]| {
    let key = Key([0x5a; 32]);
    let me = 3;
    let _ = decode(&key, data, me);

    let mut buf = vec![0u8; PACKET_LEN];
    let n = data.len().min(PACKET_LEN - TAG_LEN);
    buf[..n].copy_from_slice(&data[..n]);
    let mut h = blake3::Hasher::new_keyed(&key.0);
    h.update(&buf[..PACKET_LEN - TAG_LEN]);
    h.update(&me.to_le_bytes());
    let tag = h.finalize();
    buf[PACKET_LEN - TAG_LEN..].copy_from_slice(&tag.as_bytes()[..TAG_LEN]);
    if let Ok(p) = decode(&key, &buf, me) {
        assert!(!p.records.is_empty());
        assert_eq!(p.records[0].node, p.sender);
        let again = decode(&key, &encode(&key, &p, 9), 9).expect("an encoded packet decodes");
        assert_eq!(again, p);
        assert!(decode(&key, &buf, me + 1).is_err(), "good at another node");
    }
});
