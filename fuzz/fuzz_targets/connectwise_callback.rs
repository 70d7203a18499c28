//! The ConnectWise callback parser and key URL check on arbitrary bytes: never a panic.
#![no_main]

#[path = "../bodies/connectwise_callback.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
