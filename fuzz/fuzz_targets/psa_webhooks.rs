//! The Autotask, Freshdesk and HaloPSA webhook readers on arbitrary bytes: never a panic.
//! Autotask's body is signed here with the right key, so the reader behind the signature check
//! sees every input.
#![no_main]

#[path = "../bodies/psa_webhooks.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
