//! The migration link's decoders, fed what a peer may send: the framing (length, payload,
//! tag) and the two message types its payloads carry, the setup messages and the
//! session's. None may panic or allocate without bound; a frame made with the session
//! key must come back as it was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omd::link::{decode, frame, read_frame, Setup};
use om_remote::relay::Msg;

fuzz_target!(|data: &[u8]| {
    let session = [7u8; 32];
    // As it comes, from a peer that may not hold the key.
    let _ = read_frame(&mut std::io::Cursor::new(data), &session, 0);
    // Authenticated: the payload comes back, whatever it holds.
    let sent = frame(&session, 3, data);
    let got = read_frame(&mut std::io::Cursor::new(&sent), &session, 3);
    assert_eq!(got.ok().as_deref(), Some(data));
    // Replayed under another sequence number: refused.
    assert!(read_frame(&mut std::io::Cursor::new(&sent), &session, 4).is_err());
    let _ = decode::<Setup>(data);
    let _ = decode::<Msg>(data);
});
