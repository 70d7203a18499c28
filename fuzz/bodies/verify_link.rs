//! Verification link tokens on arbitrary text: only a token signed with the key verifies, and
//! whatever the signed part says, reading it never panics.
//! Shared by the libFuzzer target and the short run in the test suite.
use deskproof::verify::link::{sign, sign_payload, verify, LinkError};

/// The key every seed of this target is signed with.
pub const KEY: [u8; 32] = [7; 32];

/// `payload` signed the way deskproof signs links, so the reader behind the signature check
/// sees every input (a mutated token almost never carries a valid signature).
pub fn signed_payload(payload: &str) -> String {
    sign_payload(&KEY, payload)
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As a whole token.
    if let Ok(claims) = verify(&KEY, text, 0) {
        // Whatever verifies was signed with the key: signing its claims again verifies alike.
        assert_eq!(verify(&KEY, &sign(&KEY, claims), 0), Ok(claims));
    }
    // As the signed part of a token.
    match verify(&KEY, &signed_payload(text), 0) {
        Ok(claims) | Err(LinkError::Expired(claims)) => {
            let again = verify(&KEY, &sign(&KEY, claims), 0);
            match again {
                Ok(c) | Err(LinkError::Expired(c)) => assert_eq!(c, claims),
                Err(LinkError::Malformed) => panic!("re-signed claims {claims:?} do not verify"),
            }
        }
        Err(LinkError::Malformed) => {}
    }
}
