//! Fuzz the map parser with arbitrary bytes: it must never panic, every error must be
//! located (`origin:line:`), and every accepted map must survive a write/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use om_map::{parse, NoResolver};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text, "fuzz", &NoResolver) {
        Ok(map) => {
            assert!(!map.is_empty());
            let again = parse(&map.to_map_text(), "fuzz-again", &NoResolver)
                .expect("a written map parses");
            assert_eq!(again, map);
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors.iter() {
                assert!(e.to_string().starts_with("fuzz"));
            }
        }
    }
});
