//! Verification link tokens on arbitrary text: only a token signed with the key verifies.
#![no_main]

use deskproof::verify::link::{sign, verify};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(claims) = verify(&KEY, token, 0) {
        // Anything that verifies must be exactly what signing those claims gives.
        assert_eq!(sign(&KEY, claims), token);
    }
});
