//! A strict Datto Autotask simulator over real HTTP: the zone lookup, the three
//! authentication headers, tickets, contacts, ticket notes and signed ticket webhooks.
//!
//! Served URLs:
//!
//! - `GET  /atservicesrest/v1.0/zoneInformation?user=…` (no credentials)
//! - `GET  /ATServicesRest/V1.0/Tickets/{id}`, `POST …/Tickets/query`
//! - `GET|POST /ATServicesRest/V1.0/Tickets/{id}/Notes`, `POST …/TicketNotes/query` (by `id`
//!   and `ticketID`)
//! - `GET  /ATServicesRest/V1.0/Contacts/{id}`
//!
//! Errors use Autotask's shape `{"errors": ["…"]}`. A missing or wrong `ApiIntegrationCode`,
//! `UserName` or `Secret` is a 401. Notes need a title (the tenant requires titles), a
//! description, a `noteType` and a `publish` of 1, 2 or 4. Queries need a filter and at most
//! 500 `MaxRecords`.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::psa::autotask::sign;
use crate::psa::autotask::SIGNATURE_HEADER;
use crate::psa::source::{AutotaskSecrets, AutotaskSettings};
use crate::psa::{CompanyId, ContactId, TicketId};
use crate::sim::common::{self, header, Delivery, NoteFaults, Served};

/// Credentials of the simulated tenant.
#[derive(Debug, Clone)]
pub struct AutotaskSimConfig {
    pub username: String,
    pub secret: String,
    pub integration_code: String,
    /// The ticket webhook's `SecretKey`.
    pub webhook_secret: String,
    /// The ticket webhook's `WebhookGUID`.
    pub webhook_guid: String,
    /// The tenant's `publish` picklist value labelled "Internal Project Team".
    pub internal_publish: i64,
}

impl Default for AutotaskSimConfig {
    fn default() -> Self {
        AutotaskSimConfig {
            username: "deskproof-api@examplemsp.example".into(),
            secret: "sim-autotask-secret".into(),
            integration_code: "SIMINTEGRATIONCODE".into(),
            webhook_secret: "test-secret-key".into(),
            webhook_guid: "c2f0d3a4-5b6e-4f70-8a91-b2c3d4e5f607".into(),
            internal_publish: 2,
        }
    }
}

/// A note as Autotask stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtSimNote {
    pub id: i64,
    pub ticket_id: i64,
    pub title: String,
    pub description: String,
    pub note_type: i64,
    pub publish: i64,
}

impl AtSimNote {
    /// `publish` 1 ("All Autotask Users") reaches the client portal.
    pub fn is_customer_visible(&self) -> bool {
        self.publish == 1
    }
}

#[derive(Debug, Clone)]
struct Contact {
    company_id: i64,
    first_name: String,
    last_name: String,
    email: String,
}

#[derive(Debug, Clone)]
struct Ticket {
    id: i64,
    title: String,
    company_id: i64,
    contact_id: Option<i64>,
    created: OffsetDateTime,
}

#[derive(Debug)]
struct State {
    config: AutotaskSimConfig,
    origin: String,
    companies: BTreeMap<i64, String>,
    contacts: BTreeMap<i64, Contact>,
    tickets: BTreeMap<i64, Ticket>,
    notes: Vec<AtSimNote>,
    next_company: i64,
    next_contact: i64,
    next_ticket: i64,
    next_note: i64,
    sequence: i64,
    faults: NoteFaults,
    webhook_url: Option<String>,
    deliveries: Vec<Delivery>,
    zone_lookups: usize,
    /// `POST /TicketNotes/query` calls.
    note_queries: usize,
    /// API calls refused for bad credentials.
    refused: usize,
}

struct Shared {
    state: Mutex<State>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store_ticket(&self, company: CompanyId, contact: Option<ContactId>, title: &str) -> i64 {
        let mut s = self.lock();
        let id = s.next_ticket;
        s.next_ticket += 1;
        s.tickets.insert(
            id,
            Ticket {
                id,
                title: title.to_owned(),
                company_id: company.0,
                contact_id: contact.map(|c| c.0),
                created: common::now(),
            },
        );
        id
    }

    async fn fire(&self, id: i64, secret: Option<&str>) -> Option<Delivery> {
        self.fire_action(id, "Create", secret).await
    }

    async fn fire_action(&self, id: i64, action: &str, secret: Option<&str>) -> Option<Delivery> {
        let (url, body, signature) = {
            let mut s = self.lock();
            let url = s.webhook_url.clone()?;
            let ticket = s.tickets.get(&id)?.clone();
            s.sequence += 1;
            let body = json!({
                "Action": action,
                "Guid": s.config.webhook_guid,
                "EntityType": "Ticket",
                "Id": id,
                "Fields": {"id": id, "title": ticket.title, "companyID": ticket.company_id,
                           "contactID": ticket.contact_id, "status": 1},
                "EventTime": common::format_time(ticket.created),
                "SequenceNumber": s.sequence,
                "PersonID": 29683001
            });
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let signature = sign(secret.unwrap_or(&s.config.webhook_secret), &body);
            (url, body, signature)
        };
        // An empty secret stands for a delivery without any signature header.
        let auth = (secret != Some("")).then(|| (SIGNATURE_HEADER.to_owned(), signature));
        let sent = common::deliver(&self.http, id, url, body, auth).await;
        self.lock().deliveries.push(sent.clone());
        Some(sent)
    }
}

type St = AxState<Arc<Shared>>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "errors": [message.into()] }))).into_response()
}

fn authenticate(s: &mut State, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let given = |name| header(headers, name).unwrap_or_default();
    let ok = given("ApiIntegrationCode") == s.config.integration_code
        && given("UserName").eq_ignore_ascii_case(&s.config.username)
        && given("Secret") == s.config.secret;
    if ok {
        Ok(())
    } else {
        s.refused += 1;
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "User is not authorized: check UserName, Secret and ApiIntegrationCode",
        )))
    }
}

fn ticket_json(t: &Ticket) -> Value {
    json!({
        "id": t.id,
        "ticketNumber": format!("T{}.{:04}", t.created.date().to_string().replace('-', ""), t.id % 10000),
        "title": t.title,
        "description": "",
        "companyID": t.company_id,
        "contactID": t.contact_id,
        "status": 1,
        "priority": 2,
        "queueID": 29682833,
        "assignedResourceID": null,
        "createDate": common::format_time(t.created),
    })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/sim/tickets", post(sim_ticket))
        .route("/sim/tickets/{id}/notes", get(sim_notes))
        .route("/atservicesrest/v1.0/zoneInformation", get(zone))
        .route("/ATServicesRest/V1.0/Tickets/query", post(query_tickets))
        .route("/ATServicesRest/V1.0/Tickets/{id}", get(get_ticket))
        .route(
            "/ATServicesRest/V1.0/Tickets/{id}/Notes",
            get(list_notes).post(post_note),
        )
        .route("/ATServicesRest/V1.0/TicketNotes/query", post(query_notes))
        .route("/ATServicesRest/V1.0/Contacts/{id}", get(get_contact))
        .route(
            "/ATServicesRest/V1.0/TicketNotes/entityInformation/fields",
            get(note_fields),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "The requested resource does not exist",
            )
        })
        .with_state(shared)
}

async fn zone(AxState(shared): St, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let mut s = shared.lock();
    s.zone_lookups += 1;
    match q.get("user") {
        Some(user) if user.eq_ignore_ascii_case(&s.config.username) => Json(json!({
            "zoneName": "Simulated Zone",
            "url": format!("{}/ATServicesRest/", s.origin),
            "webUrl": format!("{}/", s.origin),
            "ci": 1
        }))
        .into_response(),
        _ => error(
            StatusCode::NOT_FOUND,
            "Zone information could not be determined for this user",
        ),
    }
}

fn parse_id(raw: &str) -> Result<i64, Box<Response>> {
    raw.parse().map_err(|_| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("{raw:?} is not an id"),
        ))
    })
}

async fn get_ticket(AxState(shared): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    // Autotask answers an unknown id with an empty item, not a 404.
    Json(json!({ "item": s.tickets.get(&id).map(ticket_json) })).into_response()
}

async fn get_contact(AxState(shared): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let item = s.contacts.get(&id).map(|c| {
        json!({"id": id, "firstName": c.first_name, "lastName": c.last_name,
               "emailAddress": c.email, "companyID": c.company_id, "isActive": 1})
    });
    Json(json!({ "item": item })).into_response()
}

fn compare(op: &str, left: &Value, right: &Value) -> Option<bool> {
    let ordering = match (left, right) {
        (Value::Number(a), _) => {
            let b = crate::psa::http::id_value(right)?;
            a.as_i64()?.cmp(&b)
        }
        (Value::String(a), Value::String(b)) => common::parse_time(a)?.cmp(&common::parse_time(b)?),
        _ => return None,
    };
    use std::cmp::Ordering::*;
    Some(match op {
        "eq" => ordering == Equal,
        "noteq" => ordering != Equal,
        "gt" => ordering == Greater,
        "gte" => ordering != Less,
        "lt" => ordering == Less,
        "lte" => ordering != Greater,
        _ => return None,
    })
}

/// Runs an Autotask query (`{"MaxRecords", "filter": [{op, field, value}]}`) over `records`,
/// each filter on one of `fields`; every filter must hold. Answers the first `MaxRecords`.
fn run_query(body: &[u8], records: Vec<Value>, fields: &[&str], entity: &str) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON",
        );
    };
    let max = body
        .get("MaxRecords")
        .and_then(Value::as_i64)
        .unwrap_or(500);
    if !(1..=500).contains(&max) {
        return error(
            StatusCode::BAD_REQUEST,
            "MaxRecords must be between 1 and 500",
        );
    }
    let filters = body
        .get("filter")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if filters.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "A query requires at least one filter",
        );
    }
    let mut items = Vec::new();
    for record in records {
        let mut keep = true;
        for f in &filters {
            let op = f.get("op").and_then(Value::as_str).unwrap_or_default();
            let field = f.get("field").and_then(Value::as_str).unwrap_or_default();
            let value = f.get("value").cloned().unwrap_or(Value::Null);
            let Some(left) = fields
                .iter()
                .find(|k| k.eq_ignore_ascii_case(field))
                .and_then(|k| record.get(*k))
            else {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("Unable to find {field} in the {entity} entity"),
                );
            };
            match compare(&op.to_ascii_lowercase(), left, &value) {
                Some(true) => {}
                Some(false) => keep = false,
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("Invalid filter: {op} {field} {value}"),
                    )
                }
            }
        }
        if keep {
            items.push(record);
        }
    }
    let more = items.len() > max as usize;
    items.truncate(max as usize);
    let count = items.len();
    Json(json!({
        "items": items,
        "pageDetails": {"count": count, "requestCount": max, "prevPageUrl": null,
                        "nextPageUrl": if more { Value::from("(use an id filter)") } else { Value::Null }}
    }))
    .into_response()
}

async fn query_tickets(AxState(shared): St, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let records = s.tickets.values().map(ticket_json).collect();
    run_query(
        &body,
        records,
        &["id", "createDate", "companyID", "contactID"],
        "Ticket",
    )
}

fn note_json(n: &AtSimNote) -> Value {
    json!({"id": n.id, "ticketID": n.ticket_id, "title": n.title,
           "description": n.description, "noteType": n.note_type, "publish": n.publish})
}

/// `POST /TicketNotes/query`: notes by `id` and `ticketID`.
async fn query_notes(AxState(shared): St, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    s.note_queries += 1;
    let records = s.notes.iter().map(note_json).collect();
    run_query(&body, records, &["id", "ticketID"], "TicketNote")
}

async fn list_notes(AxState(shared): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let items: Vec<Value> = s
        .notes
        .iter()
        .filter(|n| n.ticket_id == id)
        .map(note_json)
        .collect();
    Json(json!({"items": items, "pageDetails": {"count": items.len()}})).into_response()
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
        return common::with_retry_after(error(
            status,
            "The request could not be processed right now",
        ));
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    if !s.tickets.contains_key(&id) {
        return error(StatusCode::NOT_FOUND, format!("Ticket {id} does not exist"));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON",
        );
    };
    if let Some(given) = body.get("ticketID") {
        if crate::psa::http::id_value(given) != Some(id) {
            return error(
                StatusCode::BAD_REQUEST,
                "ticketID does not match the parent ticket",
            );
        }
    }
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let Some(title) = text("title") else {
        return error(StatusCode::BAD_REQUEST, "Title is required on ticket notes");
    };
    let Some(description) = text("description") else {
        return error(StatusCode::BAD_REQUEST, "Description is required");
    };
    if title.chars().count() > 250 || description.chars().count() > 32000 {
        return error(StatusCode::BAD_REQUEST, "Title or description is too long");
    }
    let Some(note_type) = body.get("noteType").and_then(Value::as_i64) else {
        return error(StatusCode::BAD_REQUEST, "noteType is required");
    };
    let publish = body.get("publish").and_then(Value::as_i64);
    let Some(publish) = publish.filter(|p| publish_picklist(&s.config).iter().any(|(v, _)| v == p))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "publish must be a value of the Publish picklist",
        );
    };
    let note_id = s.next_note;
    s.next_note += 1;
    s.notes.push(AtSimNote {
        id: note_id,
        ticket_id: id,
        title: body
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        description: body
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        note_type,
        publish,
    });
    if let Some(fault) = fault {
        return common::stored_but_failed(fault.status);
    }
    Json(json!({ "itemId": note_id })).into_response()
}

/// A ticket the simulator created, and the webhooks it sent for it.
#[derive(Debug, Clone)]
pub struct CreatedTicket {
    pub id: TicketId,
    pub deliveries: Vec<Delivery>,
}

/// A running Autotask simulator. Dropping it stops the server.
pub struct AutotaskSim {
    shared: Arc<Shared>,
    served: Served,
}

impl AutotaskSim {
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(
            AutotaskSimConfig::default(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
    }

    pub async fn start_with(config: AutotaskSimConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                config,
                origin: String::new(),
                companies: BTreeMap::new(),
                contacts: BTreeMap::new(),
                tickets: BTreeMap::new(),
                notes: Vec::new(),
                next_company: 250,
                next_contact: 4321,
                next_ticket: 1234,
                next_note: 555,
                sequence: 0,
                faults: NoteFaults::default(),
                webhook_url: None,
                deliveries: Vec::new(),
                zone_lookups: 0,
                note_queries: 0,
                refused: 0,
            }),
            http: common::outbound()?,
        });
        let for_router = shared.clone();
        let served = common::serve(addr, "autotask", move |addr| {
            for_router.lock().origin = format!("http://{addr}");
            router(for_router)
        })
        .await?;
        Ok(AutotaskSim { shared, served })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.served.addr)
    }

    pub fn config(&self) -> AutotaskSimConfig {
        self.shared.lock().config.clone()
    }

    /// The zone lookup URL to configure in deskproof.
    pub fn zone_lookup_url(&self) -> String {
        format!("{}/atservicesrest/v1.0/zoneInformation", self.url())
    }

    /// Stored connection settings and secrets that reach this simulator.
    pub fn connection(&self) -> (AutotaskSettings, AutotaskSecrets) {
        let c = self.config();
        (
            AutotaskSettings {
                username: c.username,
                integration_code: c.integration_code,
                zone_lookup_url: Some(self.zone_lookup_url()),
                note_type: None,
            },
            AutotaskSecrets {
                secret: c.secret,
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

    pub fn add_contact(
        &self,
        company: CompanyId,
        first: &str,
        last: &str,
        email: &str,
    ) -> ContactId {
        let mut s = self.shared.lock();
        let id = s.next_contact;
        s.next_contact += 1;
        s.contacts.insert(
            id,
            Contact {
                company_id: company.0,
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                email: email.to_owned(),
            },
        );
        ContactId(id)
    }

    /// Where ticket webhooks go (the webhook's `WebhookUrl`); `None` sends none.
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.shared.lock().webhook_url = url;
    }

    fn store_ticket(&self, company: CompanyId, contact: Option<ContactId>, title: &str) -> i64 {
        self.shared.store_ticket(company, contact, title)
    }

    /// Creates a ticket and sends the signed `Create` webhook.
    pub async fn create_ticket(
        &self,
        company: CompanyId,
        contact: Option<ContactId>,
        title: &str,
    ) -> CreatedTicket {
        let id = self.store_ticket(company, contact, title);
        let deliveries = self.fire(id, None).await.into_iter().collect();
        CreatedTicket {
            id: TicketId(id),
            deliveries,
        }
    }

    /// Creates a ticket without sending any webhook (a lost delivery).
    pub fn create_ticket_quietly(
        &self,
        company: CompanyId,
        contact: Option<ContactId>,
        title: &str,
    ) -> TicketId {
        TicketId(self.store_ticket(company, contact, title))
    }

    /// Sends the `Create` webhook of `ticket` signed with `secret` instead of the tenant's
    /// (`""` sends no `X-Hook-Signature` at all).
    pub async fn deliver_with_secret(&self, ticket: TicketId, secret: &str) -> Option<Delivery> {
        self.fire(ticket.0, Some(secret)).await
    }

    /// Sends a correctly signed webhook with another `Action` (`Update`, `Delete`,
    /// `Deactivated`), as Autotask does when a ticket changes.
    pub async fn deliver_action(&self, ticket: TicketId, action: &str) -> Option<Delivery> {
        self.shared.fire_action(ticket.0, action, None).await
    }

    /// Sends exactly the same request again.
    pub async fn redeliver(&self, delivery: &Delivery) -> Delivery {
        let sent = common::deliver(
            &self.shared.http,
            delivery.ticket_id,
            delivery.url.clone(),
            delivery.body.clone(),
            Some((SIGNATURE_HEADER.to_owned(), delivery.signature.clone())),
        )
        .await;
        self.shared.lock().deliveries.push(sent.clone());
        sent
    }

    async fn fire(&self, id: i64, secret: Option<&str>) -> Option<Delivery> {
        self.shared.fire(id, secret).await
    }

    /// The next `n` note posts fail with `status` (429 carries `Retry-After: 1`).
    pub fn fail_next_note_posts(&self, n: usize, status: u16) {
        self.shared.lock().faults.queue(n, status);
    }

    /// The next `n` note posts store their note and are then answered with `status` (504 is
    /// a gateway that gave up waiting): the note is there, but the caller was not told.
    pub fn store_then_fail_next_note_posts(&self, n: usize, status: u16) {
        self.shared.lock().faults.queue_stored(n, status);
    }

    /// `POST /TicketNotes/query` calls so far.
    pub fn note_queries(&self) -> usize {
        self.shared.lock().note_queries
    }

    /// Every note POST that reached the simulator, including refused ones.
    pub fn note_posts(&self) -> usize {
        self.shared.lock().faults.posts
    }

    pub fn notes(&self, ticket: TicketId) -> Vec<AtSimNote> {
        let s = self.shared.lock();
        s.notes
            .iter()
            .filter(|n| n.ticket_id == ticket.0)
            .cloned()
            .collect()
    }

    /// API calls refused because of wrong credentials (Autotask may lock an account after
    /// repeated ones).
    pub fn refused_calls(&self) -> usize {
        self.shared.lock().refused
    }

    pub fn zone_lookups(&self) -> usize {
        self.shared.lock().zone_lookups
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }
}

/// `POST /sim/tickets` `{"contact": 4321, "title": "…"}`: creates a ticket of the contact's
/// company and sends its webhook, as creating it in Autotask would.
async fn sim_ticket(AxState(shared): St, Json(body): Json<Value>) -> Response {
    let contact = body.get("contact").and_then(Value::as_i64);
    let company = contact.and_then(|c| shared.lock().contacts.get(&c).map(|c| c.company_id));
    let (Some(contact), Some(company)) = (contact, company) else {
        return error(
            StatusCode::BAD_REQUEST,
            "contact must be the id of a contact",
        );
    };
    let title = body
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("Password reset");
    let id = shared.store_ticket(CompanyId(company), Some(ContactId(contact)), title);
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
        .map(|n| {
            json!({"id": n.id, "title": n.title, "description": n.description,
                        "publish": n.publish})
        })
        .collect();
    Json(notes).into_response()
}

/// The tenant's `publish` picklist: value and label.
fn publish_picklist(config: &AutotaskSimConfig) -> Vec<(i64, &'static str)> {
    let internal = config.internal_publish;
    let mut list = vec![
        (1, "All Autotask Users"),
        (internal, "Internal Project Team"),
    ];
    if internal != 4 {
        list.push((4, "Internal & Co-Managed"));
    }
    list
}

/// `GET /TicketNotes/entityInformation/fields`: the picklists notes are written with.
async fn note_fields(AxState(shared): St, headers: HeaderMap) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let picklist = |values: Vec<(i64, &str)>| -> Vec<Value> {
        values
            .into_iter()
            .map(|(v, l)| json!({"value": v.to_string(), "label": l, "isActive": true}))
            .collect()
    };
    Json(json!({"fields": [
        {"name": "publish", "dataType": "integer", "isPickList": true,
         "picklistValues": picklist(publish_picklist(&s.config))},
        {"name": "noteType", "dataType": "integer", "isPickList": true,
         "picklistValues": picklist(vec![(1, "Task Summary"), (2, "Task Detail"), (3, "Task Notes")])},
        {"name": "title", "dataType": "string", "isRequired": true, "isPickList": false},
        {"name": "description", "dataType": "string", "isRequired": true, "isPickList": false}
    ]}))
    .into_response()
}
