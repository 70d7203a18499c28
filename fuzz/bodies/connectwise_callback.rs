//! The ConnectWise callback parser and key URL check on arbitrary bytes: never a panic.
//! Shared by the libFuzzer target and the short run in the test suite.
use std::sync::{Arc, OnceLock};

use deskproof::psa::connectwise::callback::{parse_unverified, CallbackVerifier, StaticKeyFetcher};

fn verifier() -> &'static CallbackVerifier {
    static VERIFIER: OnceLock<CallbackVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let base = url::Url::parse("https://api-na.myconnectwise.net/v4_6_release/apis/3.0")
            .unwrap_or_else(|_| unreachable!());
        CallbackVerifier::new(&base, Arc::new(StaticKeyFetcher::new("fuzz")))
            .with_company("examplemsp")
    })
}

pub fn run(data: &[u8]) {
    if let Ok((event, key_url)) = parse_unverified(data) {
        let _ = event.is_ticket_added();
        if let Some(url) = key_url {
            let _ = verifier().check_key_url(&url);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verifier().check_key_url(text);
    }
}
