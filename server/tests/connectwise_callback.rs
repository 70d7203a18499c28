//! ConnectWise callback verification: the reference fixture, refused key URLs, and callbacks the
//! simulator signs and delivers over real HTTP.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use deskproof::psa::connectwise::{
    CallbackAction, CallbackError, CallbackVerifier, ConnectWiseClient, StaticKeyFetcher,
};
use deskproof::psa::TicketId;
use deskproof::sim::connectwise::ConnectWiseSim;
use url::Url;

const FIXTURE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/psa-payloads/connectwise-callback-ticket-added.json"
));
const FIXTURE_SIGNATURE: &str = "F24ldJwpaQhkcZT1ihnQ1Gpc3QdlivrKb9SfSeo1v0s=";

fn cloud_verifier() -> (CallbackVerifier, Arc<StaticKeyFetcher>) {
    let fetcher = Arc::new(StaticKeyFetcher::new("test-signing-key"));
    let base = Url::parse("https://api-na.myconnectwise.net/v4_6_release/apis/3.0").unwrap();
    (CallbackVerifier::new(&base, fetcher.clone()), fetcher)
}

fn fixture_with(from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(FIXTURE).unwrap();
    assert!(text.contains(from), "fixture should contain {from}");
    text.replacen(from, to, 1).into_bytes()
}

#[tokio::test]
async fn the_fixture_callback_verifies_with_the_fixture_key_and_signature() {
    let (verifier, fetcher) = cloud_verifier();

    let event = verifier
        .verify(Some(FIXTURE_SIGNATURE), FIXTURE)
        .await
        .unwrap();

    assert_eq!(event.message_id, "6f1c2a8e-3b7d-4e55-9a0c-2d4f8b1e7c93");
    assert_eq!(event.action, CallbackAction::Added);
    assert_eq!(event.record_type, "ticket");
    assert_eq!(event.ticket_id, Some(TicketId(1234)));
    assert_eq!(event.tenant_company_id.as_deref(), Some("examplemsp"));
    assert_eq!(event.company_id.map(|c| c.0), Some(250));
    assert_eq!(
        event.entity.as_ref().and_then(|e| e.summary.as_deref()),
        Some("Password reset for Alex Example")
    );
    assert!(event.is_ticket_added());
    assert_eq!(fetcher.calls(), 1);
}

#[tokio::test]
async fn a_second_callback_with_the_same_key_url_uses_the_cached_key() {
    let (verifier, fetcher) = cloud_verifier();

    verifier
        .verify(Some(FIXTURE_SIGNATURE), FIXTURE)
        .await
        .unwrap();
    verifier
        .verify(Some(FIXTURE_SIGNATURE), FIXTURE)
        .await
        .unwrap();

    assert_eq!(fetcher.calls(), 1);
}

#[tokio::test]
async fn the_company_name_in_the_key_url_is_checked_when_configured() {
    let (verifier, _) = cloud_verifier();
    let verifier = verifier.with_company("EXAMPLEMSP");
    assert!(verifier
        .verify(Some(FIXTURE_SIGNATURE), FIXTURE)
        .await
        .is_ok());

    let (other, fetcher) = cloud_verifier();
    let other = other.with_company("someoneelse");
    let result = other.verify(Some(FIXTURE_SIGNATURE), FIXTURE).await;
    assert!(matches!(
        result,
        Err(CallbackError::KeyUrlNotAllowed { .. })
    ));
    assert_eq!(fetcher.calls(), 0);
}

#[tokio::test]
async fn one_changed_byte_fails_the_signature() {
    let (verifier, _) = cloud_verifier();
    let body = fixture_with("Password reset for Alex", "Password reset for Alez");

    let result = verifier.verify(Some(FIXTURE_SIGNATURE), &body).await;

    assert!(
        matches!(result, Err(CallbackError::BadSignature)),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_signature_made_with_another_key_fails() {
    let (verifier, _) = cloud_verifier();
    let forged = deskproof::psa::connectwise::callback::sign("guessed-key", FIXTURE);

    let result = verifier.verify(Some(&forged), FIXTURE).await;

    assert!(matches!(result, Err(CallbackError::BadSignature)));
}

#[tokio::test]
async fn a_missing_signature_header_fails_without_fetching_a_key() {
    let (verifier, fetcher) = cloud_verifier();

    let missing = verifier.verify_request(&HeaderMap::new(), FIXTURE).await;
    let blank = verifier.verify(Some("  "), FIXTURE).await;

    assert!(matches!(missing, Err(CallbackError::MissingSignature)));
    assert!(matches!(blank, Err(CallbackError::MissingSignature)));
    assert_eq!(fetcher.calls(), 0);
}

#[tokio::test]
async fn a_key_url_on_another_host_is_refused_without_any_fetch() {
    let (verifier, fetcher) = cloud_verifier();
    let body = fixture_with(
        "https://api-na.myconnectwise.net/v2025_1",
        "https://attacker.example/v2025_1",
    );

    let result = verifier.verify(Some(FIXTURE_SIGNATURE), &body).await;

    match result {
        Err(CallbackError::KeyUrlNotAllowed { url }) => assert!(url.contains("attacker.example")),
        other => panic!("expected KeyUrlNotAllowed, got {other:?}"),
    }
    assert_eq!(fetcher.calls(), 0);
}

#[tokio::test]
async fn an_http_key_url_is_refused_when_https_is_configured() {
    let (verifier, fetcher) = cloud_verifier();
    let body = fixture_with(
        "https://api-na.myconnectwise.net/v2025_1",
        "http://api-na.myconnectwise.net/v2025_1",
    );

    let result = verifier.verify(Some(FIXTURE_SIGNATURE), &body).await;

    assert!(matches!(
        result,
        Err(CallbackError::KeyUrlNotAllowed { .. })
    ));
    assert_eq!(fetcher.calls(), 0);
}

#[tokio::test]
async fn a_body_that_is_not_a_callback_is_malformed() {
    let (verifier, fetcher) = cloud_verifier();

    let not_json = verifier.verify(Some(FIXTURE_SIGNATURE), b"hello").await;
    let no_key_url = verifier
        .verify(
            Some(FIXTURE_SIGNATURE),
            br#"{"Action":"added","Type":"ticket","ID":1}"#,
        )
        .await;

    assert!(matches!(not_json, Err(CallbackError::Malformed(_))));
    assert!(matches!(no_key_url, Err(CallbackError::Malformed(_))));
    assert_eq!(fetcher.calls(), 0);
}

/// What the test receiver saw: the ticket id of each verified callback, or the error.
type Seen = Arc<Mutex<Vec<Result<(Option<TicketId>, bool), String>>>>;

struct Receiver {
    url: String,
    seen: Seen,
}

/// A small HTTP endpoint that verifies callbacks with the real verifier, fetching keys from
/// the simulator over HTTP.
async fn spawn_receiver(verifier: CallbackVerifier) -> Receiver {
    let seen: Seen = Arc::default();
    let state = (Arc::new(verifier), seen.clone());
    let app = Router::new()
        .route(
            "/hooks/cw",
            post(
                |State((verifier, seen)): State<(Arc<CallbackVerifier>, Seen)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    match verifier.verify_request(&headers, &body).await {
                        Ok(event) => {
                            let added = event.is_ticket_added();
                            seen.lock().unwrap().push(Ok((event.ticket_id, added)));
                            StatusCode::OK
                        }
                        Err(e) => {
                            seen.lock().unwrap().push(Err(e.to_string()));
                            StatusCode::UNAUTHORIZED
                        }
                    }
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/hooks/cw?recordId="),
        seen,
    }
}

async fn sim_and_receiver() -> (ConnectWiseSim, Receiver) {
    let sim = ConnectWiseSim::start().await.unwrap();
    let verifier = CallbackVerifier::for_tenant(&sim.client_config()).unwrap();
    let receiver = spawn_receiver(verifier).await;
    (sim, receiver)
}

#[tokio::test]
async fn a_simulator_ticket_fires_a_signed_callback_that_the_receiver_verifies() {
    // Arrange: the receiver's URL is registered through the real client.
    let (sim, receiver) = sim_and_receiver().await;
    let client = ConnectWiseClient::new(sim.client_config()).unwrap();
    client
        .register_ticket_callback(&receiver.url, "deskproof")
        .await
        .unwrap();
    let company = sim.add_company("Contoso");
    let contact = sim.add_contact_at(Some(company), "Alex", "Example", "alex@contoso.example");

    // Act
    let created = sim
        .create_ticket(Some(company), Some(contact), "Password reset")
        .await;

    // Assert
    assert_eq!(created.deliveries.len(), 1);
    let delivery = &created.deliveries[0];
    assert_eq!(delivery.status, Some(200), "{delivery:?}");
    assert_eq!(delivery.url, format!("{}{}", receiver.url, created.id));
    assert_eq!(
        receiver.seen.lock().unwrap().clone(),
        vec![Ok((Some(created.id), true))]
    );
    assert_eq!(sim.key_fetches(), 1);
    let body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    assert!(body["Entity"].is_string());
    assert_eq!(body["Action"], "added");
    assert!(body["Metadata"]["key_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!(
            "{}/v2025_1//system/callbackkey/index.rails?",
            sim.url()
        )));
}

#[tokio::test]
async fn a_redelivered_callback_verifies_again_with_the_cached_key() {
    let (sim, receiver) = sim_and_receiver().await;
    sim.set_callback_url(Some(receiver.url.clone()));
    let created = sim.create_ticket(None, None, "Printer on fire").await;

    let again = sim.redeliver(&created.deliveries[0]).await;

    assert_eq!(again.status, Some(200));
    assert_eq!(again.body, created.deliveries[0].body);
    assert_eq!(receiver.seen.lock().unwrap().len(), 2);
    assert_eq!(sim.key_fetches(), 1);
    assert_eq!(sim.deliveries().len(), 2);
}

#[tokio::test]
async fn a_callback_with_a_wrong_signature_is_rejected_by_the_receiver() {
    let (sim, receiver) = sim_and_receiver().await;
    sim.set_callback_url(Some(receiver.url.clone()));
    let created = sim.create_ticket(None, None, "VPN down").await;

    let forged = sim.deliver_with_wrong_signature(created.id).await;

    assert_eq!(forged.len(), 1);
    assert_eq!(forged[0].status, Some(401));
    let seen = receiver.seen.lock().unwrap().clone();
    assert!(matches!(seen.last(), Some(Err(e)) if e.contains("signature")));
}

#[tokio::test]
async fn an_updated_callback_verifies_but_is_not_a_new_ticket() {
    let (sim, receiver) = sim_and_receiver().await;
    let created = sim.create_ticket(None, None, "New laptop").await;
    sim.set_callback_url(Some(receiver.url.clone()));

    let updated = sim.fire_callback(created.id, "updated").await;

    assert_eq!(updated[0].status, Some(200));
    assert_eq!(
        receiver.seen.lock().unwrap().clone(),
        vec![Ok((Some(created.id), false))]
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_from_the_new_key_url() {
    let (sim, receiver) = sim_and_receiver().await;
    sim.set_callback_url(Some(receiver.url.clone()));
    sim.create_ticket(None, None, "one").await;

    sim.rotate_signing_key("rotated-signing-key");
    let second = sim.create_ticket(None, None, "two").await;

    assert_eq!(second.deliveries[0].status, Some(200));
    assert_eq!(sim.key_fetches(), 2);
}

#[tokio::test]
async fn a_key_url_the_simulator_does_not_know_is_a_key_fetch_error() {
    let sim = ConnectWiseSim::start().await.unwrap();
    let verifier = CallbackVerifier::for_tenant(&sim.client_config()).unwrap();
    let created = sim.create_ticket(None, None, "no receiver").await;
    assert!(created.deliveries.is_empty());
    let key_url = sim.key_url();
    sim.rotate_signing_key("new-key");
    let body = serde_json::to_vec(&serde_json::json!({
        "MessageId": "m", "Action": "added", "Type": "ticket", "ID": created.id.0,
        "Metadata": {"key_url": key_url}
    }))
    .unwrap();
    let signature = deskproof::psa::connectwise::callback::sign("test-signing-key", &body);

    let result = verifier.verify(Some(&signature), &body).await;

    assert!(
        matches!(result, Err(CallbackError::KeyFetch(_))),
        "{result:?}"
    );
    assert_eq!(sim.key_fetches(), 0);
}

#[tokio::test]
async fn a_delivery_to_an_unreachable_receiver_records_the_failure() {
    let sim = ConnectWiseSim::start().await.unwrap();
    // Bind and drop a listener so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    sim.set_callback_url(Some(format!("http://127.0.0.1:{port}/hooks/cw?recordId=")));

    let created = sim.create_ticket(None, None, "nobody listening").await;

    assert_eq!(created.deliveries.len(), 1);
    assert_eq!(created.deliveries[0].status, None);
    assert!(created.deliveries[0].error.is_some());
    assert!(!created.deliveries[0].succeeded());
}
