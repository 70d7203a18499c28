//! Verification link tokens on arbitrary text: only a token signed with the key verifies.
//! Shared by the libFuzzer target and the short run in the test suite.
use deskproof::verify::link::{sign, verify};

const KEY: [u8; 32] = [7; 32];

pub fn run(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(claims) = verify(&KEY, token, 0) {
        // Whatever verifies was signed with the key: signing its claims again verifies alike.
        assert_eq!(verify(&KEY, &sign(&KEY, claims), 0), Ok(claims));
    }
}
