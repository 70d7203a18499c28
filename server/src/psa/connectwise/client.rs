//! The ConnectWise REST client: tickets, contacts, internal notes, callbacks, pods and members.
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

use std::sync::Arc;

use super::callback::{CallbackError, CallbackVerifier};
use super::model::{
    ApiError, CallbackEntry, CwContact, CwNote, CwTicket, HostedSetup, InternalNoteRequest,
    MemberInfo,
};
use crate::psa::{
    Contact, ContactId, Inbound, InboundRequest, NoteId, Psa, PsaError, PsaKind, Ticket, TicketId,
    WebhookError,
};
use crate::secret::Secret;

/// How to reach one ConnectWise tenant.
#[derive(Debug, Clone)]
pub struct ConnectWiseConfig {
    /// REST base, e.g. `https://api-na.myconnectwise.net/v4_6_release/apis/3.0`.
    pub base_url: Url,
    /// The tenant's company id (the "company" on the login screen).
    pub company_id: String,
    pub public_key: String,
    pub private_key: Secret,
    /// The integration's clientId GUID from the ConnectWise developer portal.
    pub client_id: String,
}

impl ConnectWiseConfig {
    /// The scheme, host and port of the tenant, e.g. `https://api-na.myconnectwise.net`.
    pub fn origin(&self) -> url::Origin {
        self.base_url.origin()
    }
}

/// Largest page ConnectWise serves.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// A sweep stops after this many pages rather than loop forever on a misbehaving server.
const MAX_PAGES: u32 = 100;

/// A client for one tenant. Cheap to clone.
#[derive(Clone)]
pub struct ConnectWiseClient {
    http: reqwest::Client,
    base: String,
    company_id: String,
    client_id: String,
    authorization: Secret,
    page_size: u32,
    /// Checks inbound callbacks; absent on clients built only to call the API.
    callbacks: Option<Arc<CallbackVerifier>>,
}

impl std::fmt::Debug for ConnectWiseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectWiseClient")
            .field("base", &self.base)
            .field("company_id", &self.company_id)
            .finish_non_exhaustive()
    }
}

fn basic(user: &str, password: &str) -> Secret {
    Secret::new(format!(
        "Basic {}",
        BASE64.encode(format!("{user}:{password}"))
    ))
}

impl ConnectWiseClient {
    /// A client with its own HTTP connection pool and a 20-second timeout per request.
    pub fn new(config: ConnectWiseConfig) -> Result<Self, PsaError> {
        Self::with_http(config, Self::http_client()?)
    }

    /// The HTTP client ConnectWise clients use; one can serve every connection.
    pub fn http_client() -> Result<reqwest::Client, PsaError> {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| PsaError::Config(format!("HTTP client: {e}")))
    }

    /// A client sharing an existing HTTP connection pool.
    pub fn with_http(config: ConnectWiseConfig, http: reqwest::Client) -> Result<Self, PsaError> {
        if !crate::http::secure_or_local(&config.base_url) {
            return Err(PsaError::Config(
                "base_url must be https (plain http only to this machine)".into(),
            ));
        }
        if config.company_id.trim().is_empty() || config.public_key.trim().is_empty() {
            return Err(PsaError::Config(
                "company_id and public_key are required".into(),
            ));
        }
        let authorization = basic(
            &format!("{}+{}", config.company_id, config.public_key),
            config.private_key.expose(),
        );
        Ok(ConnectWiseClient {
            http,
            base: config.base_url.as_str().trim_end_matches('/').to_owned(),
            company_id: config.company_id,
            client_id: config.client_id,
            authorization,
            page_size: MAX_PAGE_SIZE,
            callbacks: None,
        })
    }

    /// Lets [`Psa::check_webhook`] verify callbacks with `verifier` (which caches signing keys,
    /// so keep one per tenant).
    pub fn with_callback_verifier(mut self, verifier: Arc<CallbackVerifier>) -> Self {
        self.callbacks = Some(verifier);
        self
    }

    /// Sets the page size of collection reads (clamped to 1..=1000).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn request(&self, method: Method, path: &str, authorization: &Secret) -> RequestBuilder {
        let mut headers = HeaderMap::new();
        if let Ok(mut value) = HeaderValue::from_str(authorization.expose()) {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if let Ok(value) = HeaderValue::from_str(&self.client_id) {
            headers.insert("clientId", value);
        }
        self.http
            .request(method, self.url(path))
            .headers(headers)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        what: impl FnOnce() -> String,
    ) -> Result<T, PsaError> {
        let response = request.send().await.map_err(PsaError::Transport)?;
        let response = check(response, what).await?;
        let bytes = response.bytes().await.map_err(PsaError::Transport)?;
        serde_json::from_slice(&bytes).map_err(|e| PsaError::Decode(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        what: impl FnOnce() -> String,
    ) -> Result<T, PsaError> {
        let request = self.request(Method::GET, path, &self.authorization);
        self.send(request, what).await
    }

    async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        what: impl FnOnce() -> String,
    ) -> Result<T, PsaError> {
        let request = self
            .request(Method::POST, path, &self.authorization)
            .json(body);
        self.send(request, what).await
    }

    /// `GET /service/tickets/{id}`, as ConnectWise returns it.
    #[tracing::instrument(skip(self), fields(psa = "connectwise", ticket.id = %id))]
    pub async fn ticket(&self, id: TicketId) -> Result<CwTicket, PsaError> {
        self.get(&format!("/service/tickets/{id}"), || format!("ticket {id}"))
            .await
    }

    /// `GET /company/contacts/{id}`, as ConnectWise returns it.
    #[tracing::instrument(skip(self), fields(psa = "connectwise", contact.id = %id))]
    pub async fn contact(&self, id: ContactId) -> Result<CwContact, PsaError> {
        self.get(&format!("/company/contacts/{id}"), || {
            format!("contact {id}")
        })
        .await
    }

    /// `POST /service/tickets/{id}/notes` with the internal-only flags.
    #[tracing::instrument(skip(self, text), fields(psa = "connectwise", ticket.id = %ticket))]
    pub async fn add_internal_note(
        &self,
        ticket: TicketId,
        text: &str,
    ) -> Result<CwNote, PsaError> {
        let note: CwNote = self
            .post(
                &format!("/service/tickets/{ticket}/notes"),
                &InternalNoteRequest::new(text),
                || format!("ticket {ticket}"),
            )
            .await?;
        tracing::info!(note.id = note.id, "internal note written");
        Ok(note)
    }

    /// `GET /service/tickets/{id}/notes`, every page.
    #[tracing::instrument(skip(self), fields(psa = "connectwise", ticket.id = %ticket))]
    pub async fn notes(&self, ticket: TicketId) -> Result<Vec<CwNote>, PsaError> {
        let mut notes = Vec::new();
        for page in 1..=MAX_PAGES {
            let batch: Vec<CwNote> = self
                .get(
                    &format!(
                        "/service/tickets/{ticket}/notes?page={page}&pageSize={}",
                        self.page_size
                    ),
                    || format!("notes of ticket {ticket}"),
                )
                .await?;
            let done = batch.len() < self.page_size as usize;
            notes.extend(batch);
            if done {
                break;
            }
        }
        Ok(notes)
    }

    /// `GET /system/myMembers/info` as a member, with the member id and hash a Hosted API pod
    /// hands over. `Unauthorized` means the hash is wrong or expired. The caller still has to
    /// compare the answer's `identifier` with the member it expected.
    #[tracing::instrument(skip(self, member_hash), fields(psa = "connectwise"))]
    pub async fn member_info(
        &self,
        member_id: &str,
        member_hash: &Secret,
    ) -> Result<MemberInfo, PsaError> {
        let authorization = basic(
            &format!("{}+{}", self.company_id, member_id),
            member_hash.expose(),
        );
        let request = self.request(Method::GET, "/system/myMembers/info", &authorization);
        self.send(request, || "member".to_owned()).await
    }

    /// `POST /system/callbacks`: ConnectWise calls `url` (with the ticket id appended) for
    /// every ticket of the tenant.
    #[tracing::instrument(skip(self), fields(psa = "connectwise"))]
    pub async fn register_ticket_callback(
        &self,
        url: &str,
        description: &str,
    ) -> Result<CallbackEntry, PsaError> {
        let entry = CallbackEntry::all_tickets(url, description);
        self.post("/system/callbacks", &entry, || "callback".to_owned())
            .await
    }

    /// `GET /system/callbacks` (first page of up to 1000).
    pub async fn list_callbacks(&self) -> Result<Vec<CallbackEntry>, PsaError> {
        self.get("/system/callbacks?pageSize=1000", || "callbacks".to_owned())
            .await
    }

    /// `POST /system/connectwisehostedsetups`: registers a pod or tab.
    #[tracing::instrument(skip(self, setup), fields(psa = "connectwise"))]
    pub async fn register_hosted_setup(
        &self,
        setup: &HostedSetup,
    ) -> Result<HostedSetup, PsaError> {
        self.post("/system/connectwisehostedsetups", setup, || {
            "hosted setup".to_owned()
        })
        .await
    }

    /// `GET /system/connectwisehostedsetups` (first page of up to 1000).
    pub async fn list_hosted_setups(&self) -> Result<Vec<HostedSetup>, PsaError> {
        self.get("/system/connectwisehostedsetups?pageSize=1000", || {
            "hosted setups".to_owned()
        })
        .await
    }

    /// Tickets entered after `since`, oldest id first, reading every page.
    #[tracing::instrument(skip(self), fields(psa = "connectwise"))]
    pub async fn list_tickets_since(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<CwTicket>, PsaError> {
        let since = since
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(since)
            .format(&Rfc3339)
            .map_err(|e| PsaError::Config(format!("date: {e}")))?;
        let conditions = format!("dateEntered > [{since}]");
        let mut tickets = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = Url::parse(&self.url("/service/tickets"))
                .map_err(|e| PsaError::Config(format!("base_url: {e}")))?;
            url.query_pairs_mut()
                .append_pair("conditions", &conditions)
                .append_pair("orderBy", "id asc")
                .append_pair("page", &page.to_string())
                .append_pair("pageSize", &self.page_size.to_string());
            let path = &url.as_str()[self.base.len()..];
            let batch: Vec<CwTicket> = self.get(path, || "tickets".to_owned()).await?;
            let done = batch.len() < self.page_size as usize;
            tickets.extend(batch);
            if done {
                return Ok(tickets);
            }
        }
        tracing::warn!(pages = MAX_PAGES, "ticket sweep stopped at the page limit");
        Ok(tickets)
    }
}

/// `Retry-After` is either seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Turns a non-success answer into a [`PsaError`].
async fn check(response: Response, what: impl FnOnce() -> String) -> Result<Response, PsaError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body: ApiError = match response.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => ApiError::default(),
    };
    tracing::warn!(
        http.status = status.as_u16(),
        error.code = body.code.as_deref().unwrap_or(""),
        "ConnectWise refused the request"
    );
    Err(match status {
        StatusCode::UNAUTHORIZED => PsaError::Unauthorized,
        StatusCode::FORBIDDEN => PsaError::Forbidden,
        StatusCode::NOT_FOUND => PsaError::NotFound { what: what() },
        StatusCode::TOO_MANY_REQUESTS => PsaError::RateLimited { retry_after },
        s if s.is_server_error() => PsaError::Server { status: s.as_u16() },
        s => PsaError::Rejected {
            status: s.as_u16(),
            message: body.summary(),
        },
    })
}

#[async_trait::async_trait]
impl Psa for ConnectWiseClient {
    fn kind(&self) -> PsaKind {
        PsaKind::ConnectWise
    }

    async fn fetch_ticket(&self, id: TicketId) -> Result<Ticket, PsaError> {
        Ok(self.ticket(id).await?.into_ticket())
    }

    async fn fetch_contact(&self, id: ContactId) -> Result<Contact, PsaError> {
        Ok(self.contact(id).await?.into_contact())
    }

    async fn post_internal_note(&self, ticket: TicketId, text: &str) -> Result<NoteId, PsaError> {
        Ok(NoteId(self.add_internal_note(ticket, text).await?.id))
    }

    async fn find_note(&self, ticket: TicketId, marker: &str) -> Result<Option<NoteId>, PsaError> {
        Ok(self
            .notes(ticket)
            .await?
            .into_iter()
            .find(|n| n.text.as_deref().is_some_and(|t| t.contains(marker)))
            .map(|n| NoteId(n.id)))
    }

    /// `x-content-signature` with the key behind `Metadata.key_url`; only `added` tickets count.
    async fn check_webhook(&self, request: &InboundRequest<'_>) -> Result<Inbound, WebhookError> {
        let verifier = self.callbacks.as_ref().ok_or_else(|| {
            WebhookError::Unavailable("callback checking is not set up for this connection".into())
        })?;
        let event = verifier
            .verify_request(request.headers, request.body)
            .await
            .map_err(|e| match e {
                CallbackError::MissingSignature
                | CallbackError::BadSignature
                | CallbackError::KeyUrlNotAllowed { .. } => {
                    WebhookError::Unauthenticated(e.to_string())
                }
                CallbackError::Malformed(_) => WebhookError::Malformed(e.to_string()),
                CallbackError::KeyFetch(_) => {
                    tracing::warn!(error = %e, "callback key unavailable");
                    WebhookError::Unavailable("the signing key could not be fetched".into())
                }
            })?;
        // The message id is what makes a replayed delivery recognizable: none, no delivery.
        if event.message_id.trim().is_empty() {
            return Err(WebhookError::Malformed(
                "the callback body is malformed: no MessageId".into(),
            ));
        }
        Ok(match event.ticket_id.filter(|_| event.is_ticket_added()) {
            Some(ticket) => Inbound::NewTicket {
                delivery_key: event.message_id.clone(),
                ticket,
            },
            None => Inbound::Ignored("ignored: only new tickets are verified".into()),
        })
    }

    async fn tickets_created_since(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<TicketId>, PsaError> {
        Ok(self
            .list_tickets_since(since)
            .await?
            .into_iter()
            .map(|t| TicketId(t.id))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConnectWiseConfig {
        ConnectWiseConfig {
            base_url: Url::parse("https://api-na.myconnectwise.net/v4_6_release/apis/3.0/")
                .unwrap(),
            company_id: "examplemsp".into(),
            public_key: "pub".into(),
            private_key: Secret::new("s3cr3t-value"),
            client_id: "client".into(),
        }
    }

    #[test]
    fn the_client_never_prints_its_credentials() {
        let client = ConnectWiseClient::new(config()).unwrap();
        let shown = format!("{client:?} {:?}", config());
        assert!(!shown.contains("s3cr3t-value"));
        assert!(!shown.contains("Basic"));
        assert_eq!(
            client.url("/service/tickets/1"),
            "https://api-na.myconnectwise.net/v4_6_release/apis/3.0/service/tickets/1"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn basic_auth_joins_company_and_public_key() {
        let header = basic("examplemsp+pub", "priv");
        let encoded = header.expose().strip_prefix("Basic ").unwrap();
        assert_eq!(BASE64.decode(encoded).unwrap(), b"examplemsp+pub:priv");
    }
}
