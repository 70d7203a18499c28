//! The HaloPSA REST client.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use url::Url;

use crate::psa::http::{check, id_value, send_json};
use crate::psa::inbound::{authorization, secret_matches, Presented};
use crate::psa::names::split_full_name;
use crate::psa::{
    CompanyId, Contact, ContactId, Inbound, InboundRequest, NoteId, Psa, PsaError, PsaKind, Ticket,
    TicketId, WebhookError,
};
use crate::secret::Secret;

/// The outcome deskproof's notes are written with.
pub const NOTE_OUTCOME: &str = "Private Note";
/// A token is renewed this long before Halo says it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
const PAGE_SIZE: u32 = 100;
const MAX_PAGES: u32 = 100;

/// Access tokens per tenant and client id, shared by every client of the deployment.
#[derive(Clone, Default)]
pub struct TokenCache(Arc<Mutex<HashMap<String, (Secret, Instant)>>>);

/// How to reach one HaloPSA tenant.
#[derive(Debug, Clone)]
pub struct HaloConfig {
    /// The authorisation server, e.g. `https://contoso.halopsa.com/auth`.
    pub auth_url: Url,
    /// The resource server, e.g. `https://contoso.halopsa.com/api`.
    pub api_url: Url,
    /// Hosted tenants name themselves here (`?tenant=`).
    pub tenant: Option<String>,
    pub client_id: String,
    pub client_secret: Secret,
    /// With a user name the webhook must use Basic (this user, the secret as password);
    /// without one, `Authorization: Bearer <secret>`.
    pub webhook_username: Option<String>,
    pub webhook_secret: Secret,
}

#[derive(Clone)]
pub struct HaloClient {
    http: reqwest::Client,
    config: HaloConfig,
    tokens: TokenCache,
    page_size: u32,
}

impl std::fmt::Debug for HaloClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaloClient")
            .field("api_url", &self.config.api_url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `GET /api/Tickets/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct HaloTicket {
    pub id: i64,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub client_id: Option<i64>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub user_id: Option<i64>,
    #[serde(default)]
    pub user_name: Option<String>,
}

impl HaloTicket {
    pub fn into_ticket(self) -> Ticket {
        Ticket {
            id: TicketId(self.id),
            summary: self.summary.unwrap_or_default(),
            // Halo uses client 0 / user 0 for "none".
            company_id: self.client_id.filter(|c| *c > 0).map(CompanyId),
            company_name: self.client_name,
            contact_id: self.user_id.filter(|u| *u > 0).map(ContactId),
            contact_name_hint: self.user_name,
        }
    }
}

/// `GET /api/Users/{id}`.
#[derive(Clone, Deserialize)]
pub struct HaloUser {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub emailaddress: Option<String>,
}

impl HaloUser {
    /// `firstname`/`surname` when Halo has them, otherwise `name` split by the rule in
    /// [`crate::psa::names`].
    pub fn into_contact(self) -> Contact {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        let (first_name, last_name) = if blank(&self.firstname) && blank(&self.surname) {
            split_full_name(self.name.as_deref().unwrap_or_default())
        } else {
            (self.firstname, self.surname)
        };
        Contact {
            id: ContactId(self.id),
            first_name,
            last_name,
            email: self.emailaddress,
        }
    }
}

#[derive(Deserialize)]
struct TicketPage {
    #[serde(default)]
    record_count: Option<i64>,
    #[serde(default)]
    tickets: Vec<Value>,
}

impl HaloClient {
    pub fn with_http(
        config: HaloConfig,
        http: reqwest::Client,
        tokens: TokenCache,
    ) -> Result<Self, PsaError> {
        for (name, url) in [("auth_url", &config.auth_url), ("api_url", &config.api_url)] {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(PsaError::Config(format!("{name} must be http(s)")));
            }
        }
        if config.client_id.trim().is_empty() || config.client_secret.expose().is_empty() {
            return Err(PsaError::Config(
                "client_id and client_secret are required".into(),
            ));
        }
        Ok(HaloClient {
            http,
            config,
            tokens,
            page_size: PAGE_SIZE,
        })
    }

    /// Sets the page size of ticket lists.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, PAGE_SIZE);
        self
    }

    fn cache_key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.config.auth_url,
            self.config.tenant.as_deref().unwrap_or_default(),
            self.config.client_id
        )
    }

    /// A valid access token: the cached one, or a new one from `POST {auth}/token`.
    async fn token(&self) -> Result<Secret, PsaError> {
        let mut tokens = self.tokens.0.lock().await;
        let key = self.cache_key();
        if let Some((token, renew_at)) = tokens.get(&key) {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let mut url = Url::parse(&format!(
            "{}/token",
            self.config.auth_url.as_str().trim_end_matches('/')
        ))
        .map_err(|e| PsaError::Config(format!("auth_url: {e}")))?;
        if let Some(tenant) = self.config.tenant.as_deref().filter(|t| !t.is_empty()) {
            url.query_pairs_mut().append_pair("tenant", tenant);
        }
        let request = self.http.post(url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose()),
            ("scope", "all"),
        ]);
        let answer: TokenResponse = send_json(request, "halopsa", || "token".into()).await?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        // Renew a minute early, or half-way through a token shorter than two minutes.
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let token = Secret::new(answer.access_token);
        tokens.insert(key, (token.clone(), Instant::now() + lifetime - margin));
        tracing::debug!(psa = "halopsa", "access token obtained");
        Ok(token)
    }

    async fn forget_token(&self) {
        self.tokens.0.lock().await.remove(&self.cache_key());
    }

    async fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, PsaError> {
        let token = self.token().await?;
        let mut builder = self
            .http
            .request(
                method,
                format!(
                    "{}{path}",
                    self.config.api_url.as_str().trim_end_matches('/')
                ),
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        Ok(builder)
    }

    /// Sends a request built by `build`; a 401 (token revoked or expired early) gets one more
    /// try with a fresh token.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: impl Fn() -> String,
    ) -> Result<T, PsaError> {
        for attempt in 0..2 {
            let mut request = self.request(method.clone(), path).await?;
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(PsaError::Transport)?;
            if response.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.forget_token().await;
                continue;
            }
            let response = check(response, "halopsa", &what).await?;
            let bytes = response.bytes().await.map_err(PsaError::Transport)?;
            return serde_json::from_slice(&bytes).map_err(|e| PsaError::Decode(e.to_string()));
        }
        Err(PsaError::Unauthorized)
    }

    /// `GET /api/Tickets/{id}`.
    #[tracing::instrument(skip(self), fields(psa = "halopsa", ticket.id = %id))]
    pub async fn ticket(&self, id: TicketId) -> Result<HaloTicket, PsaError> {
        self.call(Method::GET, &format!("/Tickets/{id}"), None, || {
            format!("ticket {id}")
        })
        .await
    }

    /// `GET /api/Users/{id}`.
    #[tracing::instrument(skip(self), fields(psa = "halopsa", contact.id = %id))]
    pub async fn user(&self, id: ContactId) -> Result<HaloUser, PsaError> {
        self.call(Method::GET, &format!("/Users/{id}"), None, || {
            format!("user {id}")
        })
        .await
    }

    /// `POST /api/Actions` with one private note: hidden from the user, no e-mail, no
    /// automations fired by it.
    #[tracing::instrument(skip(self, text), fields(psa = "halopsa", ticket.id = %ticket))]
    pub async fn add_private_note(&self, ticket: TicketId, text: &str) -> Result<i64, PsaError> {
        let body = json!([{
            "ticket_id": ticket.get(),
            "outcome": NOTE_OUTCOME,
            "note_html": crate::psa::freshdesk::client::note_html(text),
            "hiddenfromuser": true,
            "sendemail": false,
            "_dont_fire_automations": true
        }]);
        let answer: Value = self
            .call(Method::POST, "/Actions", Some(&body), || {
                format!("ticket {ticket}")
            })
            .await?;
        let action = match &answer {
            Value::Array(items) => items.first().cloned().unwrap_or_default(),
            other => other.clone(),
        };
        let id = action
            .get("id")
            .and_then(id_value)
            .ok_or_else(|| PsaError::Decode("the answer has no action id".into()))?;
        tracing::info!(note.id = id, "private note written");
        Ok(id)
    }

    /// Tickets logged after `since`, every page.
    #[tracing::instrument(skip(self), fields(psa = "halopsa"))]
    pub async fn ticket_ids_since(&self, since: OffsetDateTime) -> Result<Vec<TicketId>, PsaError> {
        let since = since
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(since);
        let since_text = since
            .format(&Rfc3339)
            .map_err(|e| PsaError::Config(format!("date: {e}")))?;
        let mut ids = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = Url::parse("http://halo.invalid/Tickets")
                .map_err(|e| PsaError::Config(e.to_string()))?;
            url.query_pairs_mut()
                .append_pair("pageinate", "true")
                .append_pair("page_size", &self.page_size.to_string())
                .append_pair("page_no", &page.to_string())
                .append_pair("order", "id")
                .append_pair("orderdesc", "false")
                .append_pair("datesearch", "dateoccurred")
                .append_pair("startdate", &since_text);
            let path = format!("/Tickets?{}", url.query().unwrap_or_default());
            let batch: TicketPage = self
                .call(Method::GET, &path, None, || "tickets".into())
                .await?;
            let count = batch.tickets.len();
            ids.extend(
                batch
                    .tickets
                    .iter()
                    .filter_map(|t| t.get("id").and_then(id_value))
                    .map(TicketId),
            );
            let total = batch.record_count.unwrap_or_default();
            if count < self.page_size as usize || ids.len() as i64 >= total {
                return Ok(ids);
            }
        }
        tracing::warn!(pages = MAX_PAGES, "ticket sweep stopped at the page limit");
        Ok(ids)
    }

    fn webhook_authentic(&self, request: &InboundRequest<'_>) -> Result<(), WebhookError> {
        let secret = self.config.webhook_secret.expose();
        let expected_user = self
            .config
            .webhook_username
            .as_deref()
            .filter(|u| !u.is_empty());
        let ok = match (authorization(request), expected_user) {
            (Some(Presented::Basic { user, password }), Some(expected)) => {
                secret_matches(&user, expected) & secret_matches(&password, secret)
            }
            (Some(Presented::Bearer(token)), None) => secret_matches(&token, secret),
            (None, _) => {
                return Err(WebhookError::Unauthenticated(
                    "the Authorization header is missing: set the Halo webhook's \
                     authentication to this connection's credentials"
                        .into(),
                ))
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(WebhookError::Unauthenticated(
                "the webhook credentials are wrong for this connection".into(),
            ))
        }
    }
}

/// The ticket id of a Halo webhook body: `ticket.id`, else `ticket_id` or `id` at the top.
/// The ticket id a webhook body names; the ticket itself is then read through the API.
pub fn ticket_of(body: &[u8]) -> Result<TicketId, WebhookError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("the webhook body is not JSON: {e}")))?;
    value
        .get("ticket")
        .and_then(|t| t.get("id"))
        .or_else(|| value.get("ticket_id"))
        .or_else(|| value.get("id"))
        .and_then(id_value)
        .filter(|id| *id > 0)
        .map(TicketId)
        .ok_or_else(|| WebhookError::Malformed("the webhook body names no ticket".into()))
}

#[async_trait::async_trait]
impl Psa for HaloClient {
    fn kind(&self) -> PsaKind {
        PsaKind::HaloPsa
    }

    async fn fetch_ticket(&self, id: TicketId) -> Result<Ticket, PsaError> {
        Ok(self.ticket(id).await?.into_ticket())
    }

    async fn fetch_contact(&self, id: ContactId) -> Result<Contact, PsaError> {
        Ok(self.user(id).await?.into_contact())
    }

    async fn post_internal_note(&self, ticket: TicketId, text: &str) -> Result<NoteId, PsaError> {
        Ok(NoteId(self.add_private_note(ticket, text).await?))
    }

    async fn check_webhook(&self, request: &InboundRequest<'_>) -> Result<Inbound, WebhookError> {
        self.webhook_authentic(request)?;
        let ticket = ticket_of(request.body)?;
        Ok(Inbound::NewTicket {
            delivery_key: format!("ticket:{ticket}"),
            ticket,
        })
    }

    async fn tickets_created_since(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<TicketId>, PsaError> {
        self.ticket_ids_since(since).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKET: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/psa-payloads/halopsa-ticket.json"
    ));
    const USER: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/psa-payloads/halopsa-user.json"
    ));
    const WEBHOOK: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/psa-payloads/halopsa-webhook.json"
    ));

    #[test]
    fn the_fixtures_become_a_normalized_ticket() {
        let ticket: HaloTicket = serde_json::from_str(TICKET).expect("ticket fixture");
        let user: HaloUser = serde_json::from_str(USER).expect("user fixture");
        let n = crate::psa::normalize(&ticket.into_ticket(), Some(&user.into_contact()))
            .expect("complete");
        assert_eq!(n.ticket_id, TicketId(1234));
        assert_eq!(n.company_id, CompanyId(25));
        assert_eq!(
            (n.first_name.as_str(), n.last_name.as_str()),
            ("Alex", "Example")
        );
        assert_eq!(n.email.as_deref(), Some("alex.example@contoso.example"));
    }

    #[test]
    fn a_user_without_split_names_is_split_from_name() {
        let user: HaloUser =
            serde_json::from_str(r#"{"id": 1, "name": "Mary Ann Smith"}"#).expect("user");
        let c = user.into_contact();
        assert_eq!(c.first_name.as_deref(), Some("Mary"));
        assert_eq!(c.last_name.as_deref(), Some("Ann Smith"));
    }

    #[test]
    fn the_webhook_fixture_names_its_ticket() {
        assert_eq!(ticket_of(WEBHOOK), Ok(TicketId(1234)));
        assert!(matches!(
            ticket_of(b"{\"ticket\":{}}"),
            Err(WebhookError::Malformed(_))
        ));
    }
}

#[cfg(test)]
mod webhook_tests {
    use super::*;
    use axum::http::HeaderMap;

    fn client(webhook_username: Option<&str>) -> HaloClient {
        let url = |u: &str| Url::parse(u).expect("url");
        HaloClient::with_http(
            HaloConfig {
                auth_url: url("https://halo.example/auth"),
                api_url: url("https://halo.example/api"),
                tenant: None,
                client_id: "c".into(),
                client_secret: Secret::new("s".to_owned()),
                webhook_username: webhook_username.map(str::to_owned),
                webhook_secret: Secret::new("hook-secret".to_owned()),
            },
            reqwest::Client::new(),
            TokenCache::default(),
        )
        .expect("client")
    }

    async fn check_with(client: &HaloClient, authorization: &str) -> Result<Inbound, WebhookError> {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", authorization.parse().expect("header"));
        let request = InboundRequest {
            headers: &headers,
            query: None,
            body: br#"{"ticket": {"id": 7}}"#,
        };
        client.check_webhook(&request).await
    }

    #[tokio::test]
    async fn without_a_user_name_only_the_bearer_secret_is_accepted() {
        let bearer = client(None);
        assert_eq!(
            check_with(&bearer, "Bearer hook-secret").await,
            Ok(Inbound::NewTicket {
                delivery_key: "ticket:7".into(),
                ticket: TicketId(7)
            })
        );
        for refused in [
            "Bearer hook-secre",
            "Bearer hook-secret2",
            // user:hook-secret in Basic
            "Basic dXNlcjpob29rLXNlY3JldA==",
        ] {
            assert!(
                matches!(
                    check_with(&bearer, refused).await,
                    Err(WebhookError::Unauthenticated(_))
                ),
                "{refused}"
            );
        }
    }

    #[tokio::test]
    async fn with_a_user_name_only_basic_with_that_user_is_accepted() {
        let basic = client(Some("user"));
        assert!(check_with(&basic, "Basic dXNlcjpob29rLXNlY3JldA==")
            .await
            .is_ok());
        // other:hook-secret
        assert!(check_with(&basic, "Basic b3RoZXI6aG9vay1zZWNyZXQ=")
            .await
            .is_err());
        assert!(check_with(&basic, "Bearer hook-secret").await.is_err());
    }
}
