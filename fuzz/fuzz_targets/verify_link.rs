//! Verification link tokens on arbitrary text: only a token signed with the key verifies.
#![no_main]

#[path = "../bodies/verify_link.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
