//! The ConnectWise callback parser, key URL check and signature verification on arbitrary
//! bytes: never a panic, and a body is trusted only with its own signature.
//! Shared by the libFuzzer target and the short run in the test suite.
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use deskproof::psa::connectwise::callback::{
    parse_unverified, sign, CallbackError, CallbackVerifier, StaticKeyFetcher,
};

const SIGNING_KEY: &str = "fuzz";

fn verifier() -> &'static CallbackVerifier {
    static VERIFIER: OnceLock<CallbackVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let base = url::Url::parse("https://api-na.myconnectwise.net/v4_6_release/apis/3.0")
            .unwrap_or_else(|_| unreachable!());
        CallbackVerifier::new(&base, Arc::new(StaticKeyFetcher::new(SIGNING_KEY)))
            .with_company("examplemsp")
    })
}

/// Runs a future that never waits (the static key fetcher answers at once) to its end.
fn at_once<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the callback verifier waited with a static key"),
    }
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
    // Signed with the right key, the whole verification runs, reader included.
    let signature = sign(SIGNING_KEY, data);
    if let Ok(event) = at_once(verifier().verify(Some(&signature), data)) {
        let _ = event.is_ticket_added();
    }
    // Signed with another key (or the body itself as the signature), it never verifies.
    for wrong in [
        sign("not-the-key", data),
        String::from_utf8_lossy(data).into_owned(),
    ] {
        match at_once(verifier().verify(Some(&wrong), data)) {
            Ok(event) => panic!("a callback verified without its signature: {event:?}"),
            Err(
                CallbackError::BadSignature
                | CallbackError::MissingSignature
                | CallbackError::Malformed(_)
                | CallbackError::KeyUrlNotAllowed { .. },
            ) => {}
            Err(e @ CallbackError::KeyFetch(_)) => panic!("the static key failed: {e}"),
        }
    }
}
