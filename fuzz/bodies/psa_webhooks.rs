//! The Autotask, Freshdesk and HaloPSA webhook checks on arbitrary bytes, through the clients
//! the server builds for a stored connection: never a panic, a delivery with the right
//! signature, secret or credentials always gets to the body reader, and one without never
//! gets in. The ConnectWise callback has a target of its own.
//! Shared by the libFuzzer target and the short run in the test suite.
use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::http::{HeaderMap, HeaderValue};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use deskproof::psa::autotask::webhook::{sign, SIGNATURE_HEADER};
use deskproof::psa::inbound::{authorization, InboundRequest, Presented};
use deskproof::psa::names::split_full_name;
use deskproof::psa::source::{connect, PsaHttp, Purpose};
use deskproof::psa::{Psa, WebhookError};
use serde_json::json;

const SECRET: &str = "fuzz-secret";
const FRESHDESK_HEADER: &str = "x-fuzz-token";
const HALO_USER: &str = "deskproof";

struct Readers {
    autotask: Arc<dyn Psa>,
    freshdesk: Arc<dyn Psa>,
    halo_basic: Arc<dyn Psa>,
    halo_bearer: Arc<dyn Psa>,
}

fn readers() -> &'static Readers {
    static READERS: OnceLock<Readers> = OnceLock::new();
    READERS.get_or_init(|| {
        let http = PsaHttp::new().unwrap_or_else(|e| panic!("PSA HTTP clients: {e}"));
        let make = |kind: &str, settings: serde_json::Value, secrets: serde_json::Value| {
            connect(
                kind,
                &settings,
                &secrets.to_string(),
                &http,
                Purpose::Webhooks,
            )
            .unwrap_or_else(|e| panic!("{kind} client: {e}"))
        };
        let halo = |user: Option<&str>| {
            make(
                "halopsa",
                json!({
                    "auth_url": "http://127.0.0.1:9/auth",
                    "api_url": "http://127.0.0.1:9/api",
                    "client_id": "fuzz",
                    "webhook_username": user,
                }),
                json!({"client_secret": "x", "webhook_secret": SECRET}),
            )
        };
        Readers {
            autotask: make(
                "autotask",
                json!({"username": "api@example.com", "integration_code": "FUZZ"}),
                json!({"secret": "x", "webhook_secret": SECRET}),
            ),
            freshdesk: make(
                "freshdesk",
                json!({"base_url": "https://fuzz.freshdesk.com", "webhook_header": FRESHDESK_HEADER}),
                json!({"api_key": "x", "webhook_secret": SECRET}),
            ),
            halo_basic: halo(Some(HALO_USER)),
            halo_bearer: halo(None),
        }
    })
}

/// Runs a webhook check to its end. HaloPSA's asks the API when the ticket was logged if the
/// body does not say; the API address here refuses connections at once, so such a check ends
/// quickly, taking the webhook as new as the server does when Halo cannot be reached.
fn at_once<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    headers
}

/// Checks `body` with `headers`; `authentic` says whether they carry the right credentials.
fn check(psa: &Arc<dyn Psa>, headers: &HeaderMap, body: &[u8], authentic: bool) {
    let request = InboundRequest {
        headers,
        query: None,
        body,
    };
    let answer = at_once(psa.check_webhook(&request));
    let refused = matches!(answer, Err(WebhookError::Unauthenticated(_)));
    assert_eq!(
        refused,
        !authentic,
        "{:?} with {} credentials: {answer:?}",
        psa.kind(),
        if authentic { "the right" } else { "wrong" }
    );
}

pub fn run(data: &[u8]) {
    let r = readers();
    let text = String::from_utf8_lossy(data);
    let basic = format!("Basic {}", BASE64.encode(format!("{HALO_USER}:{SECRET}")));
    let bearer = format!("Bearer {SECRET}");

    // The right credentials: every body reaches the reader.
    let signature = sign(SECRET, data);
    check(
        &r.autotask,
        &headers(&[(SIGNATURE_HEADER, &signature)]),
        data,
        true,
    );
    check(
        &r.freshdesk,
        &headers(&[(FRESHDESK_HEADER, SECRET)]),
        data,
        true,
    );
    check(
        &r.halo_basic,
        &headers(&[("authorization", &basic)]),
        data,
        true,
    );
    check(
        &r.halo_bearer,
        &headers(&[("authorization", &bearer)]),
        data,
        true,
    );

    // The input as the credentials: refused, unless it reads as the right ones. A body cannot
    // carry its own HMAC, so as an Autotask signature it is always refused.
    check(
        &r.autotask,
        &headers(&[(SIGNATURE_HEADER, &text)]),
        data,
        false,
    );
    let as_token = headers(&[(FRESHDESK_HEADER, &text)]);
    let presented = InboundRequest {
        headers: &as_token,
        query: None,
        body: data,
    };
    let right_token = presented.header(FRESHDESK_HEADER) == Some(SECRET);
    check(&r.freshdesk, &as_token, data, right_token);
    let as_authorization = headers(&[("authorization", &text)]);
    let presented = InboundRequest {
        headers: &as_authorization,
        query: None,
        body: data,
    };
    let (right_basic, right_bearer) = match authorization(&presented) {
        Some(Presented::Basic { user, password }) => {
            (user == HALO_USER && password == SECRET, false)
        }
        Some(Presented::Bearer(token)) => (false, token == SECRET),
        None => (false, false),
    };
    check(&r.halo_basic, &as_authorization, data, right_basic);
    check(&r.halo_bearer, &as_authorization, data, right_bearer);
    // Credentials for the other scheme never pass.
    check(
        &r.halo_basic,
        &headers(&[("authorization", &bearer)]),
        data,
        false,
    );
    check(
        &r.halo_bearer,
        &headers(&[("authorization", &basic)]),
        data,
        false,
    );

    // What the server reads from a body once it is let in.
    let _ = deskproof::psa::freshdesk::client::ticket_of(data);
    let _ = deskproof::psa::halopsa::client::ticket_of(data);
    let _ = deskproof::psa::halopsa::client::logged_at_of(data);
    let _ = split_full_name(&text);
}
