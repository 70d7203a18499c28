//! Where a ConnectWise callback is checked: its `key_url` is validated, the signing key fetched
//! (and cached briefly), and `x-content-signature` compared with an HMAC of the raw body.
//!
//! The signature is `base64(HMAC-SHA256(key = SHA-256(signing_key), message = raw body))`.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::model::CwTicket;
use super::ConnectWiseConfig;
use crate::psa::{CompanyId, TicketId};
use crate::secret::Secret;

/// The header ConnectWise puts the signature in.
pub const SIGNATURE_HEADER: &str = "x-content-signature";
/// How every callback key URL's path ends.
pub const KEY_PATH_SUFFIX: &str = "/system/callbackkey/index.rails";
/// Key URLs rotate and expire, so a fetched key is reused only this long.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(300);

/// Why a callback was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback has no {SIGNATURE_HEADER} header")]
    MissingSignature,
    #[error("the callback signature does not match")]
    BadSignature,
    #[error("the callback's key_url is not on the configured ConnectWise host: {url}")]
    KeyUrlNotAllowed { url: String },
    #[error("the callback body is malformed: {0}")]
    Malformed(String),
    #[error("could not fetch the callback signing key: {0}")]
    KeyFetch(String),
}

/// Where ConnectWise delivers a connection's ticket callbacks: deskproof's address with the
/// connection, ending in the query parameter ConnectWise appends the record id to.
pub fn deskproof_callback_url(public_url: &str, connection_id: i64) -> String {
    format!(
        "{}/hooks/connectwise/{connection_id}?recordId=",
        public_url.trim_end_matches('/')
    )
}

/// Computes the signature ConnectWise sends for `body` under `signing_key`.
pub fn sign(signing_key: &str, body: &[u8]) -> String {
    BASE64.encode(mac(signing_key, body).finalize().into_bytes())
}

fn mac(signing_key: &str, body: &[u8]) -> Hmac<Sha256> {
    let key = Sha256::digest(signing_key.as_bytes());
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(body);
    mac
}

/// Whether `signature` (base64, as in the header) is right for `body`, compared in constant time.
pub fn signature_matches(signing_key: &str, body: &[u8], signature: &str) -> bool {
    match BASE64.decode(signature.trim()) {
        Ok(given) => mac(signing_key, body).verify_slice(&given).is_ok(),
        Err(_) => false,
    }
}

/// Fetches the signing key behind a validated `key_url`.
#[async_trait::async_trait]
pub trait KeyFetcher: Send + Sync {
    async fn fetch(&self, key_url: &Url) -> Result<Secret, CallbackError>;
}

/// Fetches keys over HTTP(S): `GET key_url` → `{"signing_key": "…"}`. Redirects are not
/// followed, so only the validated URL is ever requested.
#[derive(Debug, Clone)]
pub struct HttpKeyFetcher {
    http: reqwest::Client,
    client_id: Option<String>,
}

impl HttpKeyFetcher {
    /// `client_id` is sent as a `clientId` header; ConnectWise does not require it here.
    pub fn new(client_id: Option<String>) -> Result<Self, CallbackError> {
        Ok(Self::with_http(Self::http_client()?, client_id))
    }

    /// Fetches with `http`, which must not follow redirects (see [`HttpKeyFetcher::http_client`]).
    pub fn with_http(http: reqwest::Client, client_id: Option<String>) -> Self {
        HttpKeyFetcher { http, client_id }
    }

    /// The HTTP client key fetches need: no redirects, a 10-second timeout.
    pub fn http_client() -> Result<reqwest::Client, CallbackError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CallbackError::KeyFetch(format!("HTTP client: {e}")))
    }
}

#[derive(Deserialize)]
struct KeyResponse {
    signing_key: String,
}

#[async_trait::async_trait]
impl KeyFetcher for HttpKeyFetcher {
    async fn fetch(&self, key_url: &Url) -> Result<Secret, CallbackError> {
        let mut request = self.http.get(key_url.clone());
        if let Some(client_id) = &self.client_id {
            request = request.header("clientId", client_id);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallbackError::KeyFetch(e.without_url().to_string()))?;
        let status = response.status();
        // A redirect is refused too: it would lead away from the validated URL.
        if !status.is_success() {
            return Err(CallbackError::KeyFetch(format!("HTTP {status}")));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CallbackError::KeyFetch(e.without_url().to_string()))?;
        let key: KeyResponse = serde_json::from_slice(&bytes)
            .map_err(|_| CallbackError::KeyFetch("answer has no signing_key".into()))?;
        if key.signing_key.is_empty() {
            return Err(CallbackError::KeyFetch("empty signing_key".into()));
        }
        Ok(Secret::new(key.signing_key))
    }
}

/// Answers every fetch with one key and counts the calls; for tests and fixed setups.
#[derive(Debug)]
pub struct StaticKeyFetcher {
    key: Secret,
    calls: AtomicUsize,
}

impl StaticKeyFetcher {
    pub fn new(key: impl Into<String>) -> Self {
        StaticKeyFetcher {
            key: Secret::new(key),
            calls: AtomicUsize::new(0),
        }
    }

    /// How many times a key was asked for.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl KeyFetcher for StaticKeyFetcher {
    async fn fetch(&self, _key_url: &Url) -> Result<Secret, CallbackError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.key.clone())
    }
}

/// What the callback says happened to the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackAction {
    Added,
    Updated,
    Deleted,
    Other(String),
}

impl CallbackAction {
    fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "added" => CallbackAction::Added,
            "updated" => CallbackAction::Updated,
            "deleted" => CallbackAction::Deleted,
            _ => CallbackAction::Other(s.to_owned()),
        }
    }
}

/// A verified callback. Treat it as a hint: re-read the ticket through the API before acting.
#[derive(Debug, Clone)]
pub struct CallbackEvent {
    pub message_id: String,
    pub action: CallbackAction,
    /// `Type`, e.g. `ticket`.
    pub record_type: String,
    /// `ID` when the record is a ticket.
    pub ticket_id: Option<TicketId>,
    /// The tenant's ConnectWise company id (`CompanyId`), e.g. `examplemsp`.
    pub tenant_company_id: Option<String>,
    /// The ticket's customer company, from `Entity` when present.
    pub company_id: Option<CompanyId>,
    /// The ticket record from `Entity`, when present and readable.
    pub entity: Option<CwTicket>,
}

impl CallbackEvent {
    /// Only a new ticket starts a verification; updates include the service's own notes.
    pub fn is_ticket_added(&self) -> bool {
        self.action == CallbackAction::Added
            && self.record_type.eq_ignore_ascii_case("ticket")
            && self.ticket_id.is_some()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawCallback {
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    company_id: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default, rename = "Type")]
    record_type: Option<String>,
    #[serde(default, rename = "ID")]
    id: Option<Value>,
    #[serde(default)]
    entity: Option<Value>,
    #[serde(default)]
    metadata: Option<RawMetadata>,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    key_url: Option<String>,
}

fn id_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Fetched signing keys by key URL, shareable between verifiers so a key outlives the
/// verifier that fetched it. A key is only looked up after its URL passed the asking
/// verifier's [`CallbackVerifier::check_key_url`], so sharing never lets one tenant's check
/// accept a key URL another tenant's would refuse.
#[derive(Clone, Default)]
pub struct KeyCache(Arc<Mutex<HashMap<String, (Instant, Secret)>>>);

/// Checks ConnectWise callbacks for one tenant.
pub struct CallbackVerifier {
    origin: url::Origin,
    company_id: Option<String>,
    fetcher: Arc<dyn KeyFetcher>,
    ttl: Duration,
    cache: KeyCache,
}

impl std::fmt::Debug for CallbackVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackVerifier")
            .field("origin", &self.origin.ascii_serialization())
            .field("company_id", &self.company_id)
            .finish_non_exhaustive()
    }
}

impl CallbackVerifier {
    /// Accepts key URLs on exactly the origin (scheme, host, port) of `connectwise_url`, e.g.
    /// the REST base URL of the tenant, and fetches keys with `fetcher`.
    pub fn new(connectwise_url: &Url, fetcher: Arc<dyn KeyFetcher>) -> Self {
        CallbackVerifier {
            origin: connectwise_url.origin(),
            company_id: None,
            fetcher,
            ttl: DEFAULT_KEY_TTL,
            cache: KeyCache::default(),
        }
    }

    /// Fetches keys over HTTP(S) with an [`HttpKeyFetcher`].
    pub fn over_http(
        connectwise_url: &Url,
        client_id: Option<String>,
    ) -> Result<Self, CallbackError> {
        Ok(Self::new(
            connectwise_url,
            Arc::new(HttpKeyFetcher::new(client_id)?),
        ))
    }

    /// The verifier for a configured tenant: its origin, its company name in key URLs, keys
    /// fetched over HTTP(S) with its clientId.
    pub fn for_tenant(config: &ConnectWiseConfig) -> Result<Self, CallbackError> {
        Ok(
            Self::over_http(&config.base_url, Some(config.client_id.clone()))?
                .with_company(config.company_id.clone()),
        )
    }

    /// Also requires the key URL's `companyName` to be this tenant (case-insensitive).
    pub fn with_company(mut self, company_id: impl Into<String>) -> Self {
        self.company_id = Some(company_id.into());
        self
    }

    /// Keeps fetched keys in `cache`, shared with other verifiers.
    pub fn with_key_cache(mut self, cache: KeyCache) -> Self {
        self.cache = cache;
        self
    }

    /// How long a fetched key is reused for the same `key_url`.
    pub fn with_key_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Checks `key_url` before anything is fetched from it.
    pub fn check_key_url(&self, key_url: &str) -> Result<Url, CallbackError> {
        let refuse = || CallbackError::KeyUrlNotAllowed {
            url: key_url.to_owned(),
        };
        let url = Url::parse(key_url).map_err(|_| refuse())?;
        // Origin equality covers the scheme too: http passes only when the tenant is http.
        if !url.origin().is_tuple() || url.origin() != self.origin {
            return Err(refuse());
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(refuse());
        }
        if !url.path().ends_with(KEY_PATH_SUFFIX) {
            return Err(refuse());
        }
        if let Some(company) = &self.company_id {
            let named = url
                .query_pairs()
                .find(|(k, _)| k == "companyName")
                .is_some_and(|(_, v)| v.eq_ignore_ascii_case(company));
            if !named {
                return Err(refuse());
            }
        }
        Ok(url)
    }

    async fn key_for(&self, url: &Url) -> Result<Secret, CallbackError> {
        let now = Instant::now();
        {
            let mut cache = self.cache.0.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, (fetched, _)| now.duration_since(*fetched) < self.ttl);
            if let Some((_, key)) = cache.get(url.as_str()) {
                return Ok(key.clone());
            }
        }
        let key = self.fetcher.fetch(url).await?;
        self.cache
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url.as_str().to_owned(), (now, key.clone()));
        Ok(key)
    }

    /// Verifies a callback from its `x-content-signature` header value and its raw body bytes.
    pub async fn verify(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<CallbackEvent, CallbackError> {
        let signature = signature
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(CallbackError::MissingSignature)?;
        let raw: RawCallback = serde_json::from_slice(body)
            .map_err(|e| CallbackError::Malformed(format!("not a callback: {e}")))?;
        let key_url = raw
            .metadata
            .as_ref()
            .and_then(|m| m.key_url.as_deref())
            .ok_or_else(|| CallbackError::Malformed("no Metadata.key_url".into()))?;
        let key_url = self.check_key_url(key_url)?;
        let key = self.key_for(&key_url).await?;
        if !signature_matches(key.expose(), body, signature) {
            return Err(CallbackError::BadSignature);
        }
        Ok(event_from(raw))
    }

    /// Verifies a callback from the request's headers and raw body.
    pub async fn verify_request(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<CallbackEvent, CallbackError> {
        let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        self.verify(signature, body).await
    }
}

/// Reads a callback body without checking its signature: the event and its `key_url`.
/// [`CallbackVerifier::verify`] is the only way to trust one; this is for inspection and for
/// exercising the parser on arbitrary bytes.
pub fn parse_unverified(body: &[u8]) -> Result<(CallbackEvent, Option<String>), CallbackError> {
    let raw: RawCallback = serde_json::from_slice(body)
        .map_err(|e| CallbackError::Malformed(format!("not a callback: {e}")))?;
    let key_url = raw.metadata.as_ref().and_then(|m| m.key_url.clone());
    Ok((event_from(raw), key_url))
}

fn event_from(raw: RawCallback) -> CallbackEvent {
    let record_type = raw.record_type.unwrap_or_default();
    // Entity is normally a JSON string holding the record; accept an object too, and carry on
    // without it when it is missing or unreadable.
    let entity: Option<CwTicket> = match raw.entity {
        Some(Value::String(s)) => serde_json::from_str(&s).ok(),
        Some(v @ Value::Object(_)) => serde_json::from_value(v).ok(),
        _ => None,
    };
    let is_ticket = record_type.eq_ignore_ascii_case("ticket");
    let ticket_id = raw
        .id
        .as_ref()
        .and_then(id_of)
        .or_else(|| entity.as_ref().map(|e| e.id))
        .filter(|id| is_ticket && *id > 0)
        .map(TicketId);
    CallbackEvent {
        message_id: raw.message_id.unwrap_or_default(),
        action: CallbackAction::parse(raw.action.as_deref().unwrap_or("")),
        record_type,
        ticket_id,
        tenant_company_id: raw.company_id,
        company_id: entity
            .as_ref()
            .and_then(|e| e.company.as_ref())
            .and_then(|c| c.id)
            .map(CompanyId),
        entity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_matches_the_reference_answer() {
        let body = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/psa-payloads/connectwise-callback-ticket-added.json"
        ));
        assert_eq!(
            sign("test-signing-key", body),
            "F24ldJwpaQhkcZT1ihnQ1Gpc3QdlivrKb9SfSeo1v0s="
        );
        assert!(signature_matches(
            "test-signing-key",
            body,
            "F24ldJwpaQhkcZT1ihnQ1Gpc3QdlivrKb9SfSeo1v0s="
        ));
        assert!(!signature_matches("test-signing-key", body, "not base64!"));
    }

    #[test]
    fn key_urls_must_be_on_the_configured_origin_with_the_key_path() {
        let base = Url::parse("https://api-na.myconnectwise.net/v4_6_release/apis/3.0").unwrap();
        let v = CallbackVerifier::new(&base, Arc::new(StaticKeyFetcher::new("k")))
            .with_company("examplemsp");
        let good = "https://api-na.myconnectwise.net/v2025_1//system/callbackkey/index.rails?companyName=examplemsp&id=1";
        assert!(v.check_key_url(good).is_ok());
        for bad in [
            "https://api-eu.myconnectwise.net/v2025_1//system/callbackkey/index.rails?companyName=examplemsp",
            "https://api-na.myconnectwise.net:8443/v2025_1//system/callbackkey/index.rails?companyName=examplemsp",
            "http://api-na.myconnectwise.net/v2025_1//system/callbackkey/index.rails?companyName=examplemsp",
            "https://api-na.myconnectwise.net.evil.example/v2025_1//system/callbackkey/index.rails?companyName=examplemsp",
            "https://evil@api-na.myconnectwise.net/v2025_1//system/callbackkey/index.rails?companyName=examplemsp",
            "https://api-na.myconnectwise.net/v2025_1/other?companyName=examplemsp",
            "https://api-na.myconnectwise.net/v2025_1//system/callbackkey/index.rails?companyName=other",
            "not a url",
        ] {
            assert!(
                matches!(v.check_key_url(bad), Err(CallbackError::KeyUrlNotAllowed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_entity_that_is_missing_or_unreadable_still_gives_an_event() {
        let raw: RawCallback = serde_json::from_str(
            r#"{"MessageId":"m","Action":"added","Type":"ticket","ID":"77","Entity":"{oops"}"#,
        )
        .unwrap();
        let event = event_from(raw);
        assert_eq!(event.ticket_id, Some(TicketId(77)));
        assert!(event.entity.is_none());
        assert!(event.is_ticket_added());
    }
}
