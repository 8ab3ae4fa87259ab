//! The migration link's decoders, fed what a peer may send: its records (a length, then
//! ciphertext) and the two message types its frames carry, the setup messages and the
//! session's. None may panic or allocate without bound; a frame sealed with the link's
//! keys must come back as it was sent, once, and only in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use om_migrate::link::{decode, next_record, pair, seal, Opener};
use om_migrate::Setup;
use om_remote::relay::Msg;
use std::sync::OnceLock;

type Pair = (om_migrate::link::Transport, om_migrate::link::Transport);

fn keys() -> &'static Pair {
    static KEYS: OnceLock<Pair> = OnceLock::new();
    KEYS.get_or_init(|| pair(&om_wire::Key([7; 32])))
}

fuzz_target!(|data: &[u8]| {
    let (i, r) = keys();
    // As it comes, from a peer that may not hold the keys: every record refused or
    // opened, never a panic.
    let (mut wire, mut nonce, mut o) = (data, 0u64, Opener::default());
    while let Some((rec, rest)) = next_record(wire) {
        if o.open(r, &mut nonce, rec).is_err() {
            break;
        }
        wire = rest;
    }
    // Sealed with the keys: the payload comes back, whatever it holds.
    let sealed = seal(i, &mut 1000, data).unwrap();
    let (mut wire, mut nonce, mut o, mut got) = (&sealed[..], 1000u64, Opener::default(), None);
    while let Some((rec, rest)) = next_record(wire) {
        got = o.open(r, &mut nonce, rec).unwrap();
        wire = rest;
    }
    assert_eq!(got.as_deref(), Some(data));
    // Opened again under the next nonces (a replay): refused.
    let (rec, _) = next_record(&sealed).unwrap();
    assert!(Opener::default().open(r, &mut nonce, rec).is_err());
    let _ = decode::<Setup>(data);
    let _ = decode::<Msg>(data);
});
