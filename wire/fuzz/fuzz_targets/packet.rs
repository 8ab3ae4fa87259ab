//! Fuzz the gossip packet decoder. Arbitrary bytes must never panic it and (almost
//! always) fail the tag. So that the checks behind the tag are reached too, the bytes are
//! also signed with the key, padded or cut to a packet's size: then decoding must either
//! refuse with a reason or give a packet that encodes and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use om_wire::{decode, encode, Key, PACKET_LEN, TAG_LEN};

fuzz_target!(|data: &[u8]| {
    let key = Key([0x5a; 32]);
    let _ = decode(&key, data);

    let mut buf = vec![0u8; PACKET_LEN];
    let n = data.len().min(PACKET_LEN - TAG_LEN);
    buf[..n].copy_from_slice(&data[..n]);
    let tag = blake3::keyed_hash(&key.0, &buf[..PACKET_LEN - TAG_LEN]);
    buf[PACKET_LEN - TAG_LEN..].copy_from_slice(&tag.as_bytes()[..TAG_LEN]);
    if let Ok(p) = decode(&key, &buf) {
        assert!(!p.records.is_empty());
        assert_eq!(p.records[0].node, p.sender);
        let again = decode(&key, &encode(&key, &p)).expect("an encoded packet decodes");
        assert_eq!(again, p);
    }
});
