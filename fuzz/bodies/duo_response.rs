//! Duo answers as the client reads them, for each response type, on arbitrary bytes.
//! Shared by the libFuzzer target and the short run in the test suite.
use deskproof::duo::client::parse_response;
use deskproof::duo::types::{AuthStatus, DuoUser};

pub fn run(data: &[u8]) {
    // The first byte picks the HTTP status, so error envelopes are read as well.
    let (status, body) = match data.split_first() {
        Some((b, rest)) => (
            if b % 4 == 0 {
                400 + u16::from(*b % 100)
            } else {
                200
            },
            rest,
        ),
        None => (200, data),
    };
    if let Ok(status) = parse_response::<AuthStatus>("/auth/v2/auth_status", status, body) {
        let _ = status.outcome();
    }
    let _ = parse_response::<Vec<DuoUser>>("/admin/v1/users", status, body);
    let _ = parse_response::<serde_json::Value>("/auth/v2/check", status, body);
}
