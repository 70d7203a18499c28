//! The Autotask, Freshdesk and HaloPSA webhook readers on arbitrary bytes: never a panic.
//! Autotask's body is signed here with the right key, so the reader behind the signature check
//! sees every input.
//! Shared by the libFuzzer target and the short run in the test suite.
use axum::http::{HeaderMap, HeaderValue};
use deskproof::psa::autotask::webhook::{check, sign, SIGNATURE_HEADER};
use deskproof::psa::inbound::{authorization, InboundRequest};
use deskproof::psa::names::split_full_name;

const SECRET: &str = "fuzz-secret";

pub fn run(data: &[u8]) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&sign(SECRET, data)) {
        headers.insert(SIGNATURE_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        headers.insert("authorization", value);
    }
    let request = InboundRequest {
        headers: &headers,
        query: None,
        body: data,
    };
    let _ = check(SECRET, &request);
    let _ = authorization(&request);
    let _ = deskproof::psa::freshdesk::client::ticket_of(data);
    let _ = deskproof::psa::halopsa::client::ticket_of(data);
    let _ = deskproof::psa::halopsa::client::logged_at_of(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = split_full_name(text);
    }
}
