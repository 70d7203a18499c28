//! The Autotask REST client. The API host depends on the tenant's zone, found by asking
//! `zoneInformation` with the API user's e-mail; the answer is cached per user.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

use super::webhook;
use crate::psa::http::{id_value, send_json};
use crate::psa::{
    CompanyId, Contact, ContactId, Inbound, InboundRequest, NoteId, Psa, PsaError, PsaKind, Ticket,
    TicketId, WebhookError,
};
use crate::secret::Secret;

/// Autotask's public zone lookup; it needs no credentials.
pub const DEFAULT_ZONE_LOOKUP: &str =
    "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation";
/// `publish` value "Internal Project Team": technicians only, never the client portal. Used
/// when the tenant's picklist cannot be read; the picklist is asked first.
pub const PUBLISH_INTERNAL: i64 = 2;
/// The `publish` label deskproof writes notes with.
pub const PUBLISH_INTERNAL_LABEL: &str = "Internal Project Team";
/// `noteType` 1 ("Task Summary") unless the tenant's picklist says otherwise.
pub const DEFAULT_NOTE_TYPE: i64 = 1;
/// Title of every note deskproof writes; some tenants require one.
pub const NOTE_TITLE: &str = "deskproof identity verification";
/// Largest page Autotask serves from a query.
pub const MAX_RECORDS: u32 = 500;
const MAX_PAGES: u32 = 100;

/// API base URL and internal `publish` value per API user, shared by every client so the zone
/// and the picklist are looked up once.
#[derive(Clone, Default)]
pub struct ZoneCache(Arc<Mutex<HashMap<String, String>>>);

impl ZoneCache {
    fn get(&self, user: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }

    fn put(&self, user: &str, base: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_owned(), base.to_owned());
    }
}

/// How to reach one Autotask tenant.
#[derive(Debug, Clone)]
pub struct AutotaskConfig {
    /// The `zoneInformation` endpoint, normally [`DEFAULT_ZONE_LOOKUP`].
    pub zone_lookup_url: Url,
    /// The API user's e-mail (`UserName` header).
    pub username: String,
    pub secret: Secret,
    /// The integration's tracking identifier (`ApiIntegrationCode` header).
    pub integration_code: String,
    /// The `SecretKey` of the ticket webhook.
    pub webhook_secret: Secret,
    /// `noteType` of written notes; picklist values vary by tenant.
    pub note_type: i64,
}

/// A client for one tenant. Cheap to clone.
#[derive(Clone)]
pub struct AutotaskClient {
    http: reqwest::Client,
    config: AutotaskConfig,
    zones: ZoneCache,
    page_size: u32,
}

impl std::fmt::Debug for AutotaskClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutotaskClient")
            .field("username", &self.config.username)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ZoneInformation {
    url: String,
}

#[derive(Deserialize)]
struct Item<T> {
    item: Option<T>,
}

/// `GET /V1.0/Tickets/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtTicket {
    pub id: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, rename = "companyID")]
    pub company_id: Option<i64>,
    #[serde(default, rename = "contactID")]
    pub contact_id: Option<i64>,
    #[serde(default)]
    pub create_date: Option<String>,
}

impl AtTicket {
    pub fn into_ticket(self) -> Ticket {
        Ticket {
            id: TicketId(self.id),
            summary: self.title.unwrap_or_default(),
            // Autotask's own company (id 0) is never a client.
            company_id: self.company_id.filter(|c| *c > 0).map(CompanyId),
            company_name: None,
            contact_id: self.contact_id.map(ContactId),
            contact_name_hint: None,
        }
    }
}

/// `GET /V1.0/Contacts/{id}`.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtContact {
    pub id: i64,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default, rename = "companyID")]
    pub company_id: Option<i64>,
}

impl AtContact {
    pub fn into_contact(self) -> Contact {
        Contact {
            id: ContactId(self.id),
            first_name: self.first_name,
            last_name: self.last_name,
            email: self.email_address,
            company_id: self.company_id.map(CompanyId),
        }
    }
}

/// The body of `POST /V1.0/Tickets/{id}/Notes`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteRequest<'a> {
    #[serde(rename = "ticketID")]
    pub ticket_id: i64,
    pub title: &'a str,
    pub description: &'a str,
    pub note_type: i64,
    pub publish: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    item_id: Value,
}

#[derive(Deserialize)]
struct QueryPage {
    #[serde(default)]
    items: Vec<Value>,
}

impl AutotaskClient {
    pub fn with_http(
        config: AutotaskConfig,
        http: reqwest::Client,
        zones: ZoneCache,
    ) -> Result<Self, PsaError> {
        if !crate::http::secure_or_local(&config.zone_lookup_url) {
            return Err(PsaError::Config(
                "zone_lookup_url must be https (plain http only to this machine)".into(),
            ));
        }
        for (name, value) in [
            ("username", &config.username),
            ("integration_code", &config.integration_code),
            ("secret", &config.secret.expose().to_owned()),
        ] {
            if value.trim().is_empty() {
                return Err(PsaError::Config(format!("{name} is required")));
            }
        }
        Ok(AutotaskClient {
            http,
            config,
            zones,
            page_size: MAX_RECORDS,
        })
    }

    /// Sets the page size of ticket queries (clamped to 1..=500).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, MAX_RECORDS);
        self
    }

    /// The REST base of the tenant's zone, e.g. `https://webservices5.autotask.net/ATServicesRest/V1.0`.
    pub async fn api_base(&self) -> Result<String, PsaError> {
        if let Some(base) = self.zones.get(&self.config.username) {
            return Ok(base);
        }
        let mut url = self.config.zone_lookup_url.clone();
        url.query_pairs_mut()
            .append_pair("user", &self.config.username);
        let zone: ZoneInformation =
            send_json(self.http.get(url), "autotask", || "zone".to_owned()).await?;
        let zone_url =
            Url::parse(&zone.url).map_err(|e| PsaError::Decode(format!("zone url: {e}")))?;
        let base = format!("{}/V1.0", zone_url.as_str().trim_end_matches('/'));
        tracing::info!(psa = "autotask", zone = %zone_url, "Autotask zone found");
        self.zones.put(&self.config.username, &base);
        Ok(base)
    }

    async fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, PsaError> {
        let base = self.api_base().await?;
        let mut headers = HeaderMap::new();
        let mut insert = |name: &'static str, value: &str, sensitive: bool| {
            if let Ok(mut v) = HeaderValue::from_str(value) {
                v.set_sensitive(sensitive);
                headers.insert(name, v);
            }
        };
        insert("ApiIntegrationCode", &self.config.integration_code, true);
        insert("UserName", &self.config.username, false);
        insert("Secret", self.config.secret.expose(), true);
        Ok(self
            .http
            .request(method, format!("{base}{path}"))
            .headers(headers)
            .header(reqwest::header::ACCEPT, "application/json"))
    }

    /// `GET /V1.0/Tickets/{id}`.
    #[tracing::instrument(skip(self), fields(psa = "autotask", ticket.id = %id))]
    pub async fn ticket(&self, id: TicketId) -> Result<AtTicket, PsaError> {
        let request = self.request(Method::GET, &format!("/Tickets/{id}")).await?;
        let what = || format!("ticket {id}");
        let item: Item<AtTicket> = send_json(request, "autotask", what).await?;
        item.item.ok_or_else(|| PsaError::NotFound { what: what() })
    }

    /// `GET /V1.0/Contacts/{id}`.
    #[tracing::instrument(skip(self), fields(psa = "autotask", contact.id = %id))]
    pub async fn contact(&self, id: ContactId) -> Result<AtContact, PsaError> {
        let request = self
            .request(Method::GET, &format!("/Contacts/{id}"))
            .await?;
        let what = || format!("contact {id}");
        let item: Item<AtContact> = send_json(request, "autotask", what).await?;
        item.item.ok_or_else(|| PsaError::NotFound { what: what() })
    }

    /// The tenant's `publish` value labelled "Internal Project Team", from
    /// `GET /V1.0/TicketNotes/entityInformation/fields`. A picklist without that label is
    /// refused rather than guessed at: another value could reach the client portal. A tenant
    /// whose picklist cannot be read at all (older API users lack the right) gets the value
    /// seen in every tenant so far, 2.
    pub async fn internal_publish(&self) -> Result<i64, PsaError> {
        let key = format!("publish:{}", self.config.username);
        if let Some(value) = self.zones.get(&key).and_then(|v| v.parse().ok()) {
            return Ok(value);
        }
        let request = self
            .request(Method::GET, "/TicketNotes/entityInformation/fields")
            .await?;
        let fields: Value = match send_json(request, "autotask", || "note fields".into()).await {
            Ok(fields) => fields,
            Err(PsaError::Forbidden | PsaError::NotFound { .. }) => {
                tracing::warn!(
                    psa = "autotask",
                    "the publish picklist cannot be read; using 2"
                );
                return Ok(PUBLISH_INTERNAL);
            }
            Err(e) => return Err(e),
        };
        let publish = fields
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|f| {
                f.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case("publish"))
            })
            .and_then(|f| f.get("picklistValues"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| {
                v.get("label")
                    .and_then(Value::as_str)
                    .is_some_and(|l| l.trim().eq_ignore_ascii_case(PUBLISH_INTERNAL_LABEL))
            })
            .and_then(|v| v.get("value"))
            .and_then(id_value)
            .ok_or_else(|| {
                PsaError::Config(format!(
                    "the ticket note publish picklist has no {PUBLISH_INTERNAL_LABEL:?} value"
                ))
            })?;
        self.zones.put(&key, &publish.to_string());
        Ok(publish)
    }

    /// `POST /V1.0/Tickets/{id}/Notes` with `publish` internal and a title.
    #[tracing::instrument(skip(self, text), fields(psa = "autotask", ticket.id = %ticket))]
    pub async fn add_internal_note(&self, ticket: TicketId, text: &str) -> Result<i64, PsaError> {
        let body = NoteRequest {
            ticket_id: ticket.get(),
            title: NOTE_TITLE,
            description: text,
            note_type: self.config.note_type,
            publish: self.internal_publish().await?,
        };
        let request = self
            .request(Method::POST, &format!("/Tickets/{ticket}/Notes"))
            .await?
            .json(&body);
        let created: Created =
            send_json(request, "autotask", || format!("ticket {ticket}")).await?;
        let id = id_value(&created.item_id)
            .ok_or_else(|| PsaError::Decode("the answer has no itemId".into()))?;
        tracing::info!(note.id = id, "internal note written");
        Ok(id)
    }

    /// The id of the ticket's note whose description contains `marker`, read through
    /// `POST /V1.0/TicketNotes/query` by ticket and paged by id.
    #[tracing::instrument(skip(self, marker), fields(psa = "autotask", ticket.id = %ticket))]
    pub async fn note_with_marker(
        &self,
        ticket: TicketId,
        marker: &str,
    ) -> Result<Option<i64>, PsaError> {
        let mut after = 0i64;
        for _ in 0..MAX_PAGES {
            let query = json!({
                "MaxRecords": self.page_size,
                "IncludeFields": ["id", "description"],
                "filter": [
                    {"op": "eq", "field": "ticketID", "value": ticket.get()},
                    {"op": "gt", "field": "id", "value": after}
                ]
            });
            let request = self
                .request(Method::POST, "/TicketNotes/query")
                .await?
                .json(&query);
            let page: QueryPage =
                send_json(request, "autotask", || format!("notes of ticket {ticket}")).await?;
            let mut notes: Vec<(i64, &Value)> = page
                .items
                .iter()
                .filter_map(|n| Some((n.get("id").and_then(id_value)?, n)))
                .collect();
            notes.sort_unstable_by_key(|(id, _)| *id);
            let found = notes.iter().find(|(_, n)| {
                n.get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.contains(marker))
            });
            if let Some((id, _)) = found {
                return Ok(Some(*id));
            }
            match notes.last() {
                Some((last, _)) if notes.len() >= self.page_size as usize => after = *last,
                _ => return Ok(None),
            }
        }
        tracing::warn!(pages = MAX_PAGES, "note lookup stopped at the page limit");
        Ok(None)
    }

    /// Tickets with `createDate` after `since`, paged by id (`MaxRecords` at most 500).
    #[tracing::instrument(skip(self), fields(psa = "autotask"))]
    pub async fn ticket_ids_since(&self, since: OffsetDateTime) -> Result<Vec<TicketId>, PsaError> {
        let since = since
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(|e| PsaError::Config(format!("date: {e}")))?;
        let mut ids = Vec::new();
        let mut after = 0i64;
        for _ in 0..MAX_PAGES {
            let query = json!({
                "MaxRecords": self.page_size,
                "IncludeFields": ["id", "createDate"],
                "filter": [
                    {"op": "gt", "field": "createDate", "value": since},
                    {"op": "gt", "field": "id", "value": after}
                ]
            });
            let request = self
                .request(Method::POST, "/Tickets/query")
                .await?
                .json(&query);
            let page: QueryPage = send_json(request, "autotask", || "tickets".to_owned()).await?;
            let mut batch: Vec<i64> = page
                .items
                .iter()
                .filter_map(|t| t.get("id").and_then(id_value))
                .collect();
            batch.sort_unstable();
            let full = batch.len() >= self.page_size as usize;
            if let Some(last) = batch.last() {
                after = *last;
            }
            ids.extend(batch.into_iter().map(TicketId));
            if !full {
                return Ok(ids);
            }
        }
        tracing::warn!(pages = MAX_PAGES, "ticket sweep stopped at the page limit");
        Ok(ids)
    }
}

#[async_trait::async_trait]
impl Psa for AutotaskClient {
    fn kind(&self) -> PsaKind {
        PsaKind::Autotask
    }

    async fn fetch_ticket(&self, id: TicketId) -> Result<Ticket, PsaError> {
        Ok(self.ticket(id).await?.into_ticket())
    }

    async fn fetch_contact(&self, id: ContactId) -> Result<Contact, PsaError> {
        Ok(self.contact(id).await?.into_contact())
    }

    async fn post_internal_note(&self, ticket: TicketId, text: &str) -> Result<NoteId, PsaError> {
        Ok(NoteId(self.add_internal_note(ticket, text).await?))
    }

    async fn find_note(&self, ticket: TicketId, marker: &str) -> Result<Option<NoteId>, PsaError> {
        Ok(self.note_with_marker(ticket, marker).await?.map(NoteId))
    }

    async fn check_webhook(&self, request: &InboundRequest<'_>) -> Result<Inbound, WebhookError> {
        webhook::check(self.config.webhook_secret.expose(), request)
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
        "/../../shared/fixtures/psa-payloads/autotask-ticket.json"
    ));
    const CONTACT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/psa-payloads/autotask-contact.json"
    ));

    #[test]
    fn the_fixtures_become_a_normalized_ticket() {
        let ticket: Item<AtTicket> = serde_json::from_str(TICKET).expect("ticket fixture");
        let contact: Item<AtContact> = serde_json::from_str(CONTACT).expect("contact fixture");
        let ticket = ticket.item.expect("item").into_ticket();
        let contact = contact.item.expect("item").into_contact();
        let n = crate::psa::normalize(&ticket, Some(&contact)).expect("complete");
        assert_eq!(n.ticket_id, TicketId(1234));
        assert_eq!(n.summary, "Password reset for Alex Example");
        assert_eq!(n.company_id, CompanyId(250));
        assert_eq!(
            (n.first_name.as_str(), n.last_name.as_str()),
            ("Alex", "Example")
        );
        assert_eq!(n.email.as_deref(), Some("alex.example@contoso.example"));
        assert_eq!(contact.company_id, Some(CompanyId(250)));
    }

    #[test]
    fn notes_are_internal_and_titled() {
        let body = serde_json::to_value(NoteRequest {
            ticket_id: 7,
            title: NOTE_TITLE,
            description: "text",
            note_type: 2,
            publish: PUBLISH_INTERNAL,
        })
        .expect("json");
        assert_eq!(
            body,
            json!({"ticketID": 7, "title": NOTE_TITLE, "description": "text", "noteType": 2,
                   "publish": 2})
        );
    }
}
