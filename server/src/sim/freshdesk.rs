//! A strict Freshdesk (API v2) simulator over real HTTP: API-key Basic authentication, tickets
//! with `include=requester`, contacts with one `name`, private notes, rate-limit headers and
//! automation-rule webhooks carrying a shared secret header.
//!
//! Served URLs:
//!
//! - `GET  /api/v2/tickets` (`updated_since`, `order_by`, `order_type`, `per_page` ≤ 100,
//!   `page`; a `Link: <…>; rel="next"` header while more pages exist)
//! - `GET  /api/v2/tickets/{id}` (`include=requester|company|stats`)
//! - `POST /api/v2/tickets/{id}/notes`, `GET /api/v2/tickets/{id}/conversations` (`per_page`
//!   ≤ 100, `page`, the same `Link` header)
//! - `GET  /api/v2/contacts/{id}`
//!
//! Errors use Freshdesk's shapes: `{"code": …, "message": …}` for 401/404/429 and
//! `{"description": "Validation failed", "errors": [{field, message, code}]}` for 400.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::psa::freshdesk::DEFAULT_WEBHOOK_HEADER;
use crate::psa::source::{FreshdeskSecrets, FreshdeskSettings};
use crate::psa::{CompanyId, ContactId, TicketId};
use crate::sim::common::{self, header, Delivery, NoteFaults, Served};

/// Credentials of the simulated helpdesk.
#[derive(Debug, Clone)]
pub struct FreshdeskSimConfig {
    pub api_key: String,
    /// The value the automation rule puts in [`FreshdeskSimConfig::webhook_header`].
    pub webhook_secret: String,
    pub webhook_header: String,
    /// Calls allowed per minute (reported in `X-RateLimit-Total`).
    pub rate_limit: u32,
}

impl Default for FreshdeskSimConfig {
    fn default() -> Self {
        FreshdeskSimConfig {
            api_key: "simFreshdeskApiKey123".into(),
            webhook_secret: "sim-freshdesk-webhook-secret".into(),
            webhook_header: DEFAULT_WEBHOOK_HEADER.into(),
            rate_limit: 700,
        }
    }
}

/// A note as Freshdesk stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdSimNote {
    pub id: i64,
    pub ticket_id: i64,
    /// HTML.
    pub body: String,
    pub private: bool,
}

impl FdSimNote {
    /// The body with tags removed, for assertions on wording.
    pub fn text(&self) -> String {
        common::html_text(&self.body)
    }
}

#[derive(Debug, Clone)]
struct Contact {
    name: String,
    email: Option<String>,
    company_id: i64,
}

#[derive(Debug, Clone)]
struct Ticket {
    id: i64,
    subject: String,
    requester_id: i64,
    company_id: Option<i64>,
    created: OffsetDateTime,
}

#[derive(Debug)]
struct State {
    config: FreshdeskSimConfig,
    origin: String,
    companies: BTreeMap<i64, String>,
    contacts: BTreeMap<i64, Contact>,
    tickets: BTreeMap<i64, Ticket>,
    notes: Vec<FdSimNote>,
    next_company: i64,
    next_contact: i64,
    next_ticket: i64,
    next_note: i64,
    faults: NoteFaults,
    webhook_url: Option<String>,
    deliveries: Vec<Delivery>,
    /// `include=requester` embeds the requester (Freshdesk always does; off to test readers).
    embed_requester: bool,
    /// Every API call, refused ones included, as they count against the account's limit.
    api_calls: usize,
    contact_reads: usize,
    conversation_reads: usize,
    used_this_minute: u32,
    /// When the current one-minute rate-limit window began.
    window_start: std::time::Instant,
}

struct Shared {
    state: Mutex<State>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store_ticket(&self, requester: ContactId, subject: &str) -> i64 {
        let mut s = self.lock();
        let id = s.next_ticket;
        s.next_ticket += 1;
        let company_id = s.contacts.get(&requester.0).map(|c| c.company_id);
        s.tickets.insert(
            id,
            Ticket {
                id,
                subject: subject.to_owned(),
                requester_id: requester.0,
                company_id,
                created: common::now(),
            },
        );
        id
    }

    async fn fire(&self, id: i64, secret: Option<&str>) -> Option<Delivery> {
        let (url, body, auth) = {
            let s = self.lock();
            let url = s.webhook_url.clone()?;
            let ticket = s.tickets.get(&id)?;
            let requester = s.contacts.get(&ticket.requester_id);
            // "Advanced" content: every placeholder arrives as a string.
            let body = json!({
                "ticket_id": id.to_string(),
                "subject": ticket.subject,
                "requester_name": requester.map(|c| c.name.clone()).unwrap_or_default(),
                "requester_email": requester.and_then(|c| c.email.clone()).unwrap_or_default(),
            });
            let secret = secret.unwrap_or(&s.config.webhook_secret);
            let auth =
                (!secret.is_empty()).then(|| (s.config.webhook_header.clone(), secret.to_owned()));
            (url, serde_json::to_vec(&body).unwrap_or_default(), auth)
        };
        let sent = common::deliver(&self.http, id, url, body, auth).await;
        self.lock().deliveries.push(sent.clone());
        Some(sent)
    }
}

type St = AxState<Arc<Shared>>;

fn coded(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

fn invalid(field: &str, code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"description": "Validation failed",
                    "errors": [{"field": field, "message": message, "code": code}]})),
    )
        .into_response()
}

/// Checks `Authorization: Basic base64(APIKEY:X)` and counts the call against the
/// account's per-minute limit; every call counts, refused ones too, as in Freshdesk.
fn authenticate(s: &mut State, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let user = header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| BASE64.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, _)| u.to_owned()));
    s.api_calls += 1;
    let elapsed = s.window_start.elapsed();
    if elapsed >= std::time::Duration::from_secs(60) {
        s.window_start = std::time::Instant::now();
        s.used_this_minute = 0;
    }
    s.used_this_minute += 1;
    if s.used_this_minute > s.config.rate_limit {
        let wait = 60u64
            .saturating_sub(s.window_start.elapsed().as_secs())
            .max(1);
        let mut response = limited(
            s,
            coded(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "You have exceeded the limit of requests per minute",
            ),
        );
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(wait));
        return Err(Box::new(response));
    }
    if user.as_deref() != Some(s.config.api_key.as_str()) {
        return Err(Box::new(coded(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "You have to be logged in to perform this action.",
        )));
    }
    Ok(())
}

fn limited(s: &State, mut response: Response) -> Response {
    let headers = response.headers_mut();
    let total = s.config.rate_limit;
    headers.insert("x-ratelimit-total", HeaderValue::from(total));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(total.saturating_sub(s.used_this_minute)),
    );
    headers.insert("x-ratelimit-used-currentrequest", HeaderValue::from(1u32));
    response
}

fn requester_json(id: i64, c: &Contact) -> Value {
    json!({"id": id, "name": c.name, "email": c.email, "mobile": null, "phone": null})
}

fn ticket_json(s: &State, t: &Ticket, include_requester: bool) -> Value {
    let mut v = json!({
        "id": t.id,
        "subject": t.subject,
        "description": format!("<div>{}</div>", crate::sim::escape_html(&t.subject)),
        "description_text": t.subject,
        "requester_id": t.requester_id,
        "company_id": t.company_id,
        "responder_id": null,
        "group_id": null,
        "status": 2,
        "priority": 1,
        "source": 1,
        "type": null,
        "custom_fields": {},
        "created_at": common::format_time(t.created),
        "updated_at": common::format_time(t.created),
    });
    if include_requester && s.embed_requester {
        if let Some(c) = s.contacts.get(&t.requester_id) {
            v["requester"] = requester_json(t.requester_id, c);
        }
    }
    v
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/sim/tickets", post(sim_ticket))
        .route("/sim/tickets/{id}/notes", get(sim_notes))
        .route("/api/v2/tickets", get(list_tickets))
        .route("/api/v2/tickets/{id}", get(get_ticket))
        .route("/api/v2/tickets/{id}/notes", post(post_note))
        .route("/api/v2/tickets/{id}/conversations", get(conversations))
        .route("/api/v2/contacts/{id}", get(get_contact))
        .fallback(|| async {
            coded(
                StatusCode::NOT_FOUND,
                "not_found",
                "The requested URL was not found",
            )
        })
        .with_state(shared)
}

fn id_of(raw: &str) -> Result<i64, Box<Response>> {
    raw.parse().map_err(|_| {
        Box::new(coded(
            StatusCode::NOT_FOUND,
            "not_found",
            "Record not found",
        ))
    })
}

async fn get_ticket(
    AxState(shared): St,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let mut requester = false;
    if let Some(include) = q.get("include") {
        for part in include.split(',') {
            match part.trim() {
                "requester" => requester = true,
                "company" | "stats" | "conversations" => {}
                _ => {
                    return invalid(
                        "include",
                        "invalid_value",
                        "It should be one/more of: requester,company,stats,conversations",
                    )
                }
            }
        }
    }
    let response = match id_of(&id).map(|id| s.tickets.get(&id).cloned()) {
        Ok(Some(t)) => Json(ticket_json(&s, &t, requester)).into_response(),
        Ok(None) | Err(_) => coded(StatusCode::NOT_FOUND, "not_found", "Record not found"),
    };
    limited(&s, response)
}

async fn get_contact(AxState(shared): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    s.contact_reads += 1;
    let response = match id_of(&id).map(|id| (id, s.contacts.get(&id).cloned())) {
        Ok((id, Some(c))) => Json(json!({
            "id": id, "name": c.name, "email": c.email, "phone": null, "mobile": null,
            "company_id": c.company_id, "job_title": null, "active": true,
            "created_at": "2024-11-02T10:00:00Z", "updated_at": "2025-02-03T15:40:00Z"
        }))
        .into_response(),
        _ => coded(StatusCode::NOT_FOUND, "not_found", "Record not found"),
    };
    limited(&s, response)
}

async fn list_tickets(
    AxState(shared): St,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let paging = match paging(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let since = match q.get("updated_since") {
        None => None,
        Some(text) => match common::parse_time(text) {
            Some(t) => Some(t),
            None => {
                return invalid(
                    "updated_since",
                    "invalid_date",
                    "It should be in the 'YYYY-MM-DDTHH:MM:SSZ' format",
                )
            }
        },
    };
    match q.get("order_by").map(String::as_str) {
        None | Some("created_at" | "updated_at" | "due_by" | "status") => {}
        Some(_) => {
            return invalid(
                "order_by",
                "invalid_value",
                "It should be one of these values: 'created_at,due_by,updated_at,status'",
            )
        }
    }
    let ascending = match q.get("order_type").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => {
            return invalid(
                "order_type",
                "invalid_value",
                "It should be one of these values: 'asc,desc'",
            )
        }
    };
    let mut tickets: Vec<&Ticket> = s
        .tickets
        .values()
        .filter(|t| since.is_none_or(|since| t.created >= since))
        .collect();
    tickets.sort_by_key(|t| (t.created, t.id));
    if !ascending {
        tickets.reverse();
    }
    let items: Vec<Value> = tickets
        .into_iter()
        .map(|t| ticket_json(&s, t, false))
        .collect();
    page_of(&s, "/tickets", &q, items, paging)
}

/// `page` (from 1) and `per_page` (1 to 100, default 30) of a list, as Freshdesk checks them.
fn paging(q: &BTreeMap<String, String>) -> Result<(usize, usize), Box<Response>> {
    let per_page = match q.get("per_page").map(|p| p.parse::<usize>()) {
        None => 30,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => {
            return Err(Box::new(invalid(
                "per_page",
                "invalid_value",
                "It should be between 1 and 100",
            )))
        }
    };
    let page = match q.get("page").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        _ => {
            return Err(Box::new(invalid(
                "page",
                "invalid_value",
                "It should be a positive number",
            )))
        }
    };
    Ok((page, per_page))
}

/// One page of `items` as a response, with `Link: <…>; rel="next"` while more pages exist.
fn page_of(
    s: &State,
    path: &str,
    q: &BTreeMap<String, String>,
    items: Vec<Value>,
    (page, per_page): (usize, usize),
) -> Response {
    let start = (page - 1) * per_page;
    let more = items.len() > start + per_page;
    let items: Vec<Value> = items.into_iter().skip(start).take(per_page).collect();
    let mut response = Json(items).into_response();
    if more {
        let mut next: BTreeMap<String, String> = q.clone();
        next.insert("page".into(), (page + 1).to_string());
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next.iter())
            .finish();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "<{}/api/v2{path}?{query}>; rel=\"next\"",
            s.origin
        )) {
            response.headers_mut().insert("link", v);
        }
    }
    limited(s, response)
}

async fn conversations(
    AxState(shared): St,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let paging = match paging(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let Some(id) = id_of(&id).ok().filter(|id| s.tickets.contains_key(id)) else {
        return coded(StatusCode::NOT_FOUND, "not_found", "Record not found");
    };
    s.conversation_reads += 1;
    let items: Vec<Value> = s
        .notes
        .iter()
        .filter(|n| n.ticket_id == id)
        .map(|n| {
            json!({"id": n.id, "body": n.body, "body_text": n.text(), "private": n.private,
                   "incoming": false, "source": 2, "ticket_id": id})
        })
        .collect();
    page_of(
        &s,
        &format!("/tickets/{id}/conversations"),
        &q,
        items,
        paging,
    )
}

async fn post_note(
    AxState(shared): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let fault = s.faults.take_next();
    if let Some(fault) = fault.filter(|f| !f.stored) {
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let response = if status == StatusCode::TOO_MANY_REQUESTS {
            coded(
                status,
                "too_many_requests",
                "You have exceeded the limit of requests per minute",
            )
        } else {
            coded(
                status,
                "internal_error",
                "We're sorry, but something went wrong.",
            )
        };
        return common::with_retry_after(limited(&s, response));
    }
    let Ok(id) = id_of(&id) else {
        return coded(StatusCode::NOT_FOUND, "not_found", "Record not found");
    };
    if !s.tickets.contains_key(&id) {
        return coded(StatusCode::NOT_FOUND, "not_found", "Record not found");
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return invalid(
            "body",
            "invalid_json",
            "Request body has invalid json format",
        );
    };
    for field in body.keys() {
        if !matches!(
            field.as_str(),
            "body" | "private" | "incoming" | "notify_emails" | "user_id"
        ) {
            return invalid(
                field,
                "invalid_field",
                "Unexpected/invalid field in request",
            );
        }
    }
    let text = match body.get("body") {
        Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
        Some(_) => return invalid("body", "datatype_mismatch", "It should be a/an String"),
        None => return invalid("body", "missing_field", "It should be a/an String"),
    };
    let private = match body.get("private") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return invalid("private", "datatype_mismatch", "It should be a/an Boolean"),
    };
    if body.get("incoming").is_some_and(|v| !v.is_boolean()) {
        return invalid("incoming", "datatype_mismatch", "It should be a/an Boolean");
    }
    let note_id = s.next_note;
    s.next_note += 1;
    s.notes.push(FdSimNote {
        id: note_id,
        ticket_id: id,
        body: text.clone(),
        private,
    });
    if let Some(fault) = fault {
        return common::stored_but_failed(fault.status);
    }
    let now = common::format_time(common::now());
    let response = (
        StatusCode::CREATED,
        Json(
            json!({"id": note_id, "body": text, "private": private, "incoming": false,
                    "ticket_id": id, "user_id": 43000000001i64, "created_at": now,
                    "updated_at": now}),
        ),
    )
        .into_response();
    limited(&s, response)
}

/// A running Freshdesk simulator. Dropping it stops the server.
pub struct FreshdeskSim {
    shared: Arc<Shared>,
    served: Served,
}

impl FreshdeskSim {
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(
            FreshdeskSimConfig::default(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
    }

    pub async fn start_with(config: FreshdeskSimConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                config,
                origin: String::new(),
                companies: BTreeMap::new(),
                contacts: BTreeMap::new(),
                tickets: BTreeMap::new(),
                notes: Vec::new(),
                next_company: 43000000250,
                next_contact: 43000004321,
                next_ticket: 1234,
                next_note: 43000009001,
                faults: NoteFaults::default(),
                webhook_url: None,
                deliveries: Vec::new(),
                embed_requester: true,
                api_calls: 0,
                contact_reads: 0,
                conversation_reads: 0,
                used_this_minute: 0,
                window_start: std::time::Instant::now(),
            }),
            http: common::outbound()?,
        });
        let for_router = shared.clone();
        let served = common::serve(addr, "freshdesk", move |addr| {
            for_router.lock().origin = format!("http://{addr}");
            router(for_router)
        })
        .await?;
        Ok(FreshdeskSim { shared, served })
    }

    /// `http://127.0.0.1:PORT`, standing for `https://{domain}.freshdesk.com`.
    pub fn url(&self) -> String {
        format!("http://{}", self.served.addr)
    }

    pub fn config(&self) -> FreshdeskSimConfig {
        self.shared.lock().config.clone()
    }

    /// Stored connection settings and secrets that reach this simulator.
    pub fn connection(&self) -> (FreshdeskSettings, FreshdeskSecrets) {
        let c = self.config();
        (
            FreshdeskSettings {
                base_url: self.url(),
                webhook_header: Some(c.webhook_header),
            },
            FreshdeskSecrets {
                api_key: c.api_key,
                webhook_secret: c.webhook_secret,
            },
        )
    }

    pub fn add_company(&self, name: &str) -> CompanyId {
        let mut s = self.shared.lock();
        let id = s.next_company;
        s.next_company += 1;
        s.companies.insert(id, name.to_owned());
        CompanyId(id)
    }

    /// A contact with one full `name`; an empty e-mail leaves it out.
    pub fn add_contact(&self, company: CompanyId, name: &str, email: &str) -> ContactId {
        let mut s = self.shared.lock();
        let id = s.next_contact;
        s.next_contact += 1;
        s.contacts.insert(
            id,
            Contact {
                name: name.to_owned(),
                email: (!email.is_empty()).then(|| email.to_owned()),
                company_id: company.0,
            },
        );
        ContactId(id)
    }

    /// The automation rule's "Trigger webhook" URL; `None` sends none.
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.shared.lock().webhook_url = url;
    }

    fn store_ticket(&self, requester: ContactId, subject: &str) -> i64 {
        self.shared.store_ticket(requester, subject)
    }

    /// Creates a ticket and runs the "Ticket creation" automation rule's webhook.
    pub async fn create_ticket(
        &self,
        requester: ContactId,
        subject: &str,
    ) -> (TicketId, Option<Delivery>) {
        let id = self.store_ticket(requester, subject);
        let delivery = self.fire(id, None).await;
        (TicketId(id), delivery)
    }

    /// Creates a ticket without any webhook (a rule that did not run).
    pub fn create_ticket_quietly(&self, requester: ContactId, subject: &str) -> TicketId {
        TicketId(self.store_ticket(requester, subject))
    }

    /// Sends the rule's webhook for `ticket` with `secret` (`""` leaves the header out).
    pub async fn deliver_with_secret(&self, ticket: TicketId, secret: &str) -> Option<Delivery> {
        self.fire(ticket.0, Some(secret)).await
    }

    async fn fire(&self, id: i64, secret: Option<&str>) -> Option<Delivery> {
        self.shared.fire(id, secret).await
    }

    /// The next `n` note posts fail with `status` (429 carries `Retry-After: 1`).
    pub fn fail_next_note_posts(&self, n: usize, status: u16) {
        self.shared.lock().faults.queue(n, status);
    }

    /// Allows `calls` per minute from now on, starting a fresh window; more are answered 429
    /// with `Retry-After` set to the rest of the minute.
    pub fn set_rate_limit(&self, calls: u32) {
        let mut s = self.shared.lock();
        s.config.rate_limit = calls;
        s.used_this_minute = 0;
        s.window_start = std::time::Instant::now();
    }

    /// The next `n` note posts store their note and are then answered with `status` (504 is
    /// a gateway that gave up waiting): the note is there, but the caller was not told.
    pub fn store_then_fail_next_note_posts(&self, n: usize, status: u16) {
        self.shared.lock().faults.queue_stored(n, status);
    }

    pub fn note_posts(&self) -> usize {
        self.shared.lock().faults.posts
    }

    /// Whether `include=requester` embeds the requester; on by default, as in Freshdesk.
    pub fn set_embed_requester(&self, embed: bool) {
        self.shared.lock().embed_requester = embed;
    }

    /// Every API call so far, refused ones included (each counts against the rate limit).
    pub fn api_calls(&self) -> usize {
        self.shared.lock().api_calls
    }

    /// `GET /api/v2/contacts/{id}` calls so far.
    pub fn contact_reads(&self) -> usize {
        self.shared.lock().contact_reads
    }

    /// `GET /api/v2/tickets/{id}/conversations` pages served so far.
    pub fn conversation_reads(&self) -> usize {
        self.shared.lock().conversation_reads
    }

    pub fn notes(&self, ticket: TicketId) -> Vec<FdSimNote> {
        let s = self.shared.lock();
        s.notes
            .iter()
            .filter(|n| n.ticket_id == ticket.0)
            .cloned()
            .collect()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }
}

/// `POST /sim/tickets` `{"contact": 43000004321, "subject": "…"}`: creates a ticket and runs
/// the automation rule's webhook, as a new ticket in Freshdesk would.
async fn sim_ticket(AxState(shared): St, Json(body): Json<Value>) -> Response {
    let contact = body
        .get("contact")
        .and_then(Value::as_i64)
        .filter(|c| shared.lock().contacts.contains_key(c));
    let Some(contact) = contact else {
        return invalid(
            "contact",
            "invalid_value",
            "It should be the id of a contact",
        );
    };
    let subject = body
        .get("subject")
        .and_then(Value::as_str)
        .unwrap_or("Password reset");
    let id = shared.store_ticket(ContactId(contact), subject);
    let delivery = shared.fire(id, None).await;
    Json(json!({"id": id, "webhook_status": delivery.and_then(|d| d.status)})).into_response()
}

/// `GET /sim/tickets/{id}/notes`: the ticket's notes, for people trying the demo.
async fn sim_notes(AxState(shared): St, Path(id): Path<i64>) -> Response {
    let s = shared.lock();
    let notes: Vec<Value> = s
        .notes
        .iter()
        .filter(|n| n.ticket_id == id)
        .map(|n| json!({"id": n.id, "text": n.text(), "private": n.private}))
        .collect();
    Json(notes).into_response()
}
