//! The control protocol's reader, as omd runs it on every line a local user sends:
//! any bytes are refused or give a request, never a panic, and a request read back
//! from its own encoding is the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use om_proto::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(env) = serde_json::from_str::<Envelope>(line) else {
        return;
    };
    let again = serde_json::to_string(&env).expect("a request encodes");
    let back: Envelope = serde_json::from_str(&again).expect("its encoding reads back");
    assert_eq!(back, env);
});
