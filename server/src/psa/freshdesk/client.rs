//! The Freshdesk REST client.
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::psa::http::{id_value, send_json};
use crate::psa::inbound::secret_matches;
use crate::psa::names::split_full_name;
use crate::psa::{
    CompanyId, Contact, ContactId, Inbound, InboundRequest, LoadedTicket, NoteId, Psa, PsaError,
    PsaKind, Ticket, TicketId, WebhookError,
};
use crate::secret::Secret;

/// The header the automation rule must send the shared secret in, unless configured.
pub const DEFAULT_WEBHOOK_HEADER: &str = "X-Webhook-Token";
/// Largest page Freshdesk serves.
pub const MAX_PER_PAGE: u32 = 100;
const MAX_PAGES: u32 = 300;

/// How to reach one Freshdesk account.
#[derive(Debug, Clone)]
pub struct FreshdeskConfig {
    /// `https://{domain}.freshdesk.com`.
    pub base_url: Url,
    pub api_key: Secret,
    /// The secret the automation rule sends in `webhook_header`.
    pub webhook_secret: Secret,
    pub webhook_header: String,
}

#[derive(Clone)]
pub struct FreshdeskClient {
    http: reqwest::Client,
    base: String,
    authorization: Secret,
    webhook_secret: Secret,
    webhook_header: String,
    per_page: u32,
}

impl std::fmt::Debug for FreshdeskClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshdeskClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// `GET /api/v2/tickets/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct FdTicket {
    pub id: i64,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub requester_id: Option<i64>,
    #[serde(default)]
    pub company_id: Option<i64>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub requester: Option<FdRequester>,
}

/// The requester `include=requester` embeds: the contact's `id`, `name` and `email`.
#[derive(Debug, Clone, Deserialize)]
pub struct FdRequester {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl FdTicket {
    pub fn into_ticket(self) -> Ticket {
        Ticket {
            id: TicketId(self.id),
            summary: self.subject.unwrap_or_default(),
            company_id: self.company_id.map(CompanyId),
            company_name: None,
            contact_id: self.requester_id.map(ContactId),
            contact_name_hint: self.requester.and_then(|r| r.name),
        }
    }

    /// The embedded requester as the ticket's contact, when it is the ticket's requester: it
    /// carries the same `name` and `email` as `GET /contacts/{id}`, so no second call is needed.
    pub fn embedded_contact(&self) -> Option<Contact> {
        let requester = self.requester.as_ref()?;
        let id = requester.id.filter(|id| Some(*id) == self.requester_id)?;
        Some(
            FdContact {
                id,
                name: requester.name.clone(),
                email: requester.email.clone(),
            }
            .into_contact(),
        )
    }
}

/// `GET /api/v2/contacts/{id}`.
#[derive(Clone, Deserialize)]
pub struct FdContact {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl FdContact {
    /// The one `name` split by the rule in [`crate::psa::names`].
    pub fn into_contact(self) -> Contact {
        let (first_name, last_name) = split_full_name(self.name.as_deref().unwrap_or_default());
        Contact {
            id: ContactId(self.id),
            first_name,
            last_name,
            email: self.email,
            // Limitation: not compared with the ticket's company. The embedded requester, read
            // in the same call as the ticket, carries no company, and a Freshdesk contact can
            // belong to several companies.
            company_id: None,
        }
    }
}

/// Plain text as the HTML a note body takes: escaped, line breaks kept, links clickable.
pub fn note_html(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            line.split(' ')
                .map(|word| {
                    let escaped = crate::sim::escape_html(word);
                    if word.starts_with("https://") || word.starts_with("http://") {
                        format!("<a href=\"{escaped}\">{escaped}</a>")
                    } else {
                        escaped
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    format!("<div>{}</div>", lines.join("<br>"))
}

impl FreshdeskClient {
    pub fn with_http(config: FreshdeskConfig, http: reqwest::Client) -> Result<Self, PsaError> {
        if !crate::http::secure_or_local(&config.base_url) {
            return Err(PsaError::Config(
                "base_url must be https (plain http only to this machine)".into(),
            ));
        }
        if config.api_key.expose().trim().is_empty() {
            return Err(PsaError::Config("api_key is required".into()));
        }
        // The API key is the user name; the password is a literal X.
        let authorization = Secret::new(format!(
            "Basic {}",
            BASE64.encode(format!("{}:X", config.api_key.expose().trim()))
        ));
        let header = config.webhook_header.trim();
        Ok(FreshdeskClient {
            http,
            base: config.base_url.as_str().trim_end_matches('/').to_owned(),
            authorization,
            webhook_secret: config.webhook_secret,
            webhook_header: if header.is_empty() {
                DEFAULT_WEBHOOK_HEADER.to_owned()
            } else {
                header.to_owned()
            },
            per_page: MAX_PER_PAGE,
        })
    }

    /// Sets the page size of ticket lists (clamped to 1..=100).
    pub fn with_page_size(mut self, per_page: u32) -> Self {
        self.per_page = per_page.clamp(1, MAX_PER_PAGE);
        self
    }

    fn request(&self, method: Method, path_and_query: &str) -> RequestBuilder {
        let mut builder = self
            .http
            .request(method, format!("{}/api/v2{path_and_query}", self.base))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Ok(mut value) = HeaderValue::from_str(self.authorization.expose()) {
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        builder
    }

    /// `GET /api/v2/tickets/{id}?include=requester`.
    #[tracing::instrument(skip(self), fields(psa = "freshdesk", ticket.id = %id))]
    pub async fn ticket(&self, id: TicketId) -> Result<FdTicket, PsaError> {
        let request = self.request(Method::GET, &format!("/tickets/{id}?include=requester"));
        send_json(request, "freshdesk", || format!("ticket {id}")).await
    }

    /// `GET /api/v2/contacts/{id}`.
    #[tracing::instrument(skip(self), fields(psa = "freshdesk", contact.id = %id))]
    pub async fn contact(&self, id: ContactId) -> Result<FdContact, PsaError> {
        let request = self.request(Method::GET, &format!("/contacts/{id}"));
        send_json(request, "freshdesk", || format!("contact {id}")).await
    }

    /// `POST /api/v2/tickets/{id}/notes` with `private: true`.
    #[tracing::instrument(skip(self, text), fields(psa = "freshdesk", ticket.id = %ticket))]
    pub async fn add_private_note(&self, ticket: TicketId, text: &str) -> Result<i64, PsaError> {
        let request = self
            .request(Method::POST, &format!("/tickets/{ticket}/notes"))
            .json(&json!({"body": note_html(text), "private": true, "incoming": false}));
        let note: Value = send_json(request, "freshdesk", || format!("ticket {ticket}")).await?;
        let id = note
            .get("id")
            .and_then(id_value)
            .ok_or_else(|| PsaError::Decode("the answer has no note id".into()))?;
        tracing::info!(note.id = id, "private note written");
        Ok(id)
    }

    /// The id of the ticket's note whose text contains `marker`, from every page of
    /// `GET /api/v2/tickets/{id}/conversations`.
    #[tracing::instrument(skip(self, marker), fields(psa = "freshdesk", ticket.id = %ticket))]
    pub async fn note_with_marker(
        &self,
        ticket: TicketId,
        marker: &str,
    ) -> Result<Option<i64>, PsaError> {
        for page in 1..=MAX_PAGES {
            let path = format!(
                "/tickets/{ticket}/conversations?per_page={}&page={page}",
                self.per_page
            );
            let batch: Vec<Value> =
                send_json(self.request(Method::GET, &path), "freshdesk", || {
                    format!("ticket {ticket}")
                })
                .await?;
            let found = batch.iter().find(|c| {
                ["body_text", "body"].iter().any(|k| {
                    c.get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.contains(marker))
                })
            });
            if let Some(id) = found.and_then(|c| c.get("id")).and_then(id_value) {
                return Ok(Some(id));
            }
            if batch.len() < self.per_page as usize {
                return Ok(None);
            }
        }
        tracing::warn!(pages = MAX_PAGES, "note lookup stopped at the page limit");
        Ok(None)
    }

    /// Tickets created after `since`. Freshdesk filters lists by `updated_since` only, so
    /// creation times are checked here; every page is read, oldest first.
    #[tracing::instrument(skip(self), fields(psa = "freshdesk"))]
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
            let mut url = Url::parse(&format!("{}/api/v2/tickets", self.base))
                .map_err(|e| PsaError::Config(format!("base_url: {e}")))?;
            url.query_pairs_mut()
                .append_pair("updated_since", &since_text)
                .append_pair("order_by", "created_at")
                .append_pair("order_type", "asc")
                .append_pair("per_page", &self.per_page.to_string())
                .append_pair("page", &page.to_string());
            let path = &url.as_str()[self.base.len() + "/api/v2".len()..];
            let batch: Vec<FdTicket> =
                send_json(self.request(Method::GET, path), "freshdesk", || {
                    "tickets".into()
                })
                .await?;
            let done = batch.len() < self.per_page as usize;
            ids.extend(
                batch
                    .into_iter()
                    .filter(|t| {
                        t.created_at
                            .as_deref()
                            .and_then(|c| OffsetDateTime::parse(c, &Rfc3339).ok())
                            .is_some_and(|c| c > since)
                    })
                    .map(|t| TicketId(t.id)),
            );
            if done {
                return Ok(ids);
            }
        }
        tracing::warn!(pages = MAX_PAGES, "ticket sweep stopped at the page limit");
        Ok(ids)
    }
}

/// The automation rule's body: `{"ticket_id": "{{ticket.id}}", …}`; values arrive as strings.
/// The ticket id a webhook body names; the ticket itself is then read through the API.
pub fn ticket_of(body: &[u8]) -> Result<TicketId, WebhookError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("the webhook body is not JSON: {e}")))?;
    value
        .get("ticket_id")
        .or_else(|| value.get("id"))
        .and_then(id_value)
        .filter(|id| *id > 0)
        .map(TicketId)
        .ok_or_else(|| {
            WebhookError::Malformed(
                "the webhook body has no ticket_id: set the rule's content to \
                 {\"ticket_id\": \"{{ticket.id}}\"}"
                    .into(),
            )
        })
}

#[async_trait::async_trait]
impl Psa for FreshdeskClient {
    fn kind(&self) -> PsaKind {
        PsaKind::Freshdesk
    }

    async fn fetch_ticket(&self, id: TicketId) -> Result<Ticket, PsaError> {
        Ok(self.ticket(id).await?.into_ticket())
    }

    async fn fetch_contact(&self, id: ContactId) -> Result<Contact, PsaError> {
        Ok(self.contact(id).await?.into_contact())
    }

    async fn post_internal_note(&self, ticket: TicketId, text: &str) -> Result<NoteId, PsaError> {
        Ok(NoteId(self.add_private_note(ticket, text).await?))
    }

    async fn find_note(&self, ticket: TicketId, marker: &str) -> Result<Option<NoteId>, PsaError> {
        Ok(self.note_with_marker(ticket, marker).await?.map(NoteId))
    }

    /// One call when the ticket embeds its requester (`include=requester`); the contact is
    /// read on its own only when it does not. Freshdesk's rate limit is per account.
    async fn load_ticket(&self, id: TicketId) -> Result<LoadedTicket, PsaError> {
        let read = self.ticket(id).await?;
        let embedded = read.embedded_contact();
        let ticket = read.into_ticket();
        let contact = match (embedded, ticket.contact_id) {
            (Some(contact), _) => Some(contact),
            (None, Some(contact_id)) => match self.fetch_contact(contact_id).await {
                Ok(contact) => Some(contact),
                Err(PsaError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            (None, None) => None,
        };
        let normalized = crate::psa::normalize(&ticket, contact.as_ref());
        Ok(LoadedTicket {
            ticket,
            contact,
            normalized,
        })
    }

    /// The shared secret header, then the ticket id; nothing else in the body is used.
    async fn check_webhook(&self, request: &InboundRequest<'_>) -> Result<Inbound, WebhookError> {
        let presented = request.header(&self.webhook_header).ok_or_else(|| {
            WebhookError::Unauthenticated(format!(
                "the {} header is missing: add it to the automation rule's webhook",
                self.webhook_header
            ))
        })?;
        if !secret_matches(presented, self.webhook_secret.expose()) {
            return Err(WebhookError::Unauthenticated(format!(
                "the {} header does not carry this connection's secret",
                self.webhook_header
            )));
        }
        let ticket = ticket_of(request.body)?;
        Ok(Inbound::NewTicket {
            delivery_key: format!("created:{ticket}"),
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
        "/../../shared/fixtures/psa-payloads/freshdesk-ticket.json"
    ));
    const CONTACT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/psa-payloads/freshdesk-contact.json"
    ));
    const WEBHOOK: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/psa-payloads/freshdesk-webhook.json"
    ));

    #[test]
    fn the_fixtures_become_a_normalized_ticket() {
        let ticket: FdTicket = serde_json::from_str(TICKET).expect("ticket fixture");
        let contact: FdContact = serde_json::from_str(CONTACT).expect("contact fixture");
        let ticket = ticket.into_ticket();
        assert_eq!(ticket.contact_name_hint.as_deref(), Some("Alex Example"));
        let n = crate::psa::normalize(&ticket, Some(&contact.into_contact())).expect("complete");
        assert_eq!(n.ticket_id, TicketId(1234));
        assert_eq!(n.company_id, CompanyId(43000000250));
        assert_eq!(
            (n.first_name.as_str(), n.last_name.as_str()),
            ("Alex", "Example")
        );
        assert_eq!(n.email.as_deref(), Some("alex.example@contoso.example"));
    }

    #[test]
    fn the_embedded_requester_is_the_same_contact_as_the_contact_fixture() {
        let ticket: FdTicket = serde_json::from_str(TICKET).expect("ticket fixture");
        let contact: FdContact = serde_json::from_str(CONTACT).expect("contact fixture");
        assert_eq!(ticket.embedded_contact(), Some(contact.into_contact()));
        let other = FdTicket {
            requester_id: Some(1),
            ..ticket
        };
        assert_eq!(other.embedded_contact(), None, "another requester's record");
    }

    #[test]
    fn the_webhook_fixture_names_its_ticket() {
        assert_eq!(ticket_of(WEBHOOK), Ok(TicketId(1234)));
        assert!(matches!(ticket_of(b"{}"), Err(WebhookError::Malformed(_))));
        assert!(matches!(
            ticket_of(br#"{"ticket_id": -1}"#),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            ticket_of(br#"{"ticket_id": "0"}"#),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            ticket_of(b"ticket"),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn note_bodies_are_escaped_html_with_clickable_links() {
        assert_eq!(
            note_html("Verify <now>:\nhttps://d.example/verify/a&b"),
            "<div>Verify &lt;now&gt;:<br><a href=\"https://d.example/verify/a&amp;b\">\
             https://d.example/verify/a&amp;b</a></div>"
        );
    }
}
