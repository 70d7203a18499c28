//! Duo answers as the client reads them, for each response type, on arbitrary bytes.
#![no_main]

#[path = "../bodies/duo_response.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
