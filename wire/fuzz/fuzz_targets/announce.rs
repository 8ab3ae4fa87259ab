//! Fuzz the discovery announcement decoder. Arbitrary bytes must never panic it and
//! (almost always) fail the tag. So that the checks behind the tag are reached too, the
//! bytes are also signed with the key, padded or cut to an announcement's size: then
//! decoding must either refuse with a reason or give an announcement that encodes to the
//! same bytes and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use om_wire::{decode_announcement, encode_announcement, Key, ANNOUNCE_LEN, TAG_LEN};

fuzz_target!(|data: &[u8]| {
    let key = Key([0x5a; 32]);
    let _ = decode_announcement(&key, data);

    let mut buf = vec![0u8; ANNOUNCE_LEN];
    let n = data.len().min(ANNOUNCE_LEN - TAG_LEN);
    buf[..n].copy_from_slice(&data[..n]);
    let mut h = blake3::Hasher::new_keyed(&key.0);
    h.update(&buf[..ANNOUNCE_LEN - TAG_LEN]);
    h.update(&0u16.to_le_bytes());
    let tag = h.finalize();
    buf[ANNOUNCE_LEN - TAG_LEN..].copy_from_slice(&tag.as_bytes()[..TAG_LEN]);
    if let Ok(a) = decode_announcement(&key, &buf) {
        assert_ne!(a.sender, 0);
        assert_ne!(a.port, 0);
        let again = encode_announcement(&key, &a);
        assert_eq!(decode_announcement(&key, &again), Ok(a));
        assert!(decode_announcement(&Key([0x5b; 32]), &buf).is_err(), "good with another key");
    }
});
