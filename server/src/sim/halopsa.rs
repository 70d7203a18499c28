//! A strict HaloPSA simulator over real HTTP: OAuth client credentials with expiring tokens,
//! tickets, users, private notes through Actions, and webhooks with Basic or Bearer
//! authentication.
//!
//! Served URLs:
//!
//! - `POST /auth/token` (form: `grant_type=client_credentials`, `client_id`, `client_secret`,
//!   `scope=all`; `?tenant=` when the simulator has one)
//! - `GET  /api/Tickets` (`pageinate`, `page_size` ≤ 100, `page_no`, `order`, `orderdesc`,
//!   `datesearch=dateoccurred`, `startdate`), `GET /api/Tickets/{id}`
//! - `GET  /api/Users/{id}`
//! - `GET  /api/Actions` (`ticket_id`, `pageinate`, `page_size` ≤ 100, `page_no`),
//!   `POST /api/Actions` (the body is an array; each action names an existing outcome by
//!   `outcome_id` or `outcome`)
//! - `GET  /api/Outcome`: the tenant's action outcomes
//!
//! Token errors use the OAuth shape `{"error", "error_description"}`; the API answers 401 to a
//! missing, unknown or expired token and `{"message": …}` otherwise.
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::psa::source::{HaloSecrets, HaloSettings};
use crate::psa::{CompanyId, ContactId, TicketId};
use crate::sim::common::{self, header, Delivery, NoteFaults, Served};

/// Credentials of the simulated tenant.
#[derive(Debug, Clone)]
pub struct HaloSimConfig {
    pub client_id: String,
    pub client_secret: String,
    pub tenant: Option<String>,
    /// Seconds an access token lives.
    pub token_lifetime_secs: u64,
    /// Set: webhooks use Basic with this user and the secret; unset: Bearer.
    pub webhook_username: Option<String>,
    pub webhook_secret: String,
    /// The tenant's action outcomes (`GET /api/Outcome`): id and name.
    pub outcomes: Vec<(i64, String)>,
}

/// The id of the simulated tenant's "Private Note" outcome.
pub const PRIVATE_NOTE_OUTCOME_ID: i64 = 21;

impl Default for HaloSimConfig {
    fn default() -> Self {
        HaloSimConfig {
            client_id: "sim-halo-client".into(),
            client_secret: "sim-halo-client-secret".into(),
            tenant: Some("examplemsp".into()),
            token_lifetime_secs: 3600,
            webhook_username: Some("deskproof".into()),
            webhook_secret: "sim-halo-webhook-secret".into(),
            outcomes: vec![
                (1, "Ticket Logged".into()),
                (2, "Email User".into()),
                (3, "Note".into()),
                (PRIVATE_NOTE_OUTCOME_ID, "Private Note".into()),
            ],
        }
    }
}

/// An action (note) as Halo stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaloSimAction {
    pub id: i64,
    pub ticket_id: i64,
    pub outcome_id: i64,
    pub outcome: String,
    /// `note_html`, or `note` when only plain text was sent.
    pub note: String,
    pub hidden_from_user: bool,
    pub send_email: bool,
}

impl HaloSimAction {
    /// The note as text (tags removed).
    pub fn text(&self) -> String {
        common::html_text(&self.note)
    }
}

#[derive(Debug, Clone)]
struct User {
    name: String,
    email: String,
    client_id: i64,
}

#[derive(Debug, Clone)]
struct Ticket {
    id: i64,
    summary: String,
    client_id: i64,
    user_id: i64,
    occurred: OffsetDateTime,
}

#[derive(Debug)]
struct State {
    config: HaloSimConfig,
    clients: BTreeMap<i64, String>,
    users: BTreeMap<i64, User>,
    tickets: BTreeMap<i64, Ticket>,
    actions: Vec<HaloSimAction>,
    tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    next_client: i64,
    next_user: i64,
    next_ticket: i64,
    next_action: i64,
    faults: NoteFaults,
    webhook_url: Option<String>,
    deliveries: Vec<Delivery>,
    /// Ticket lists carry `record_count` (on by default).
    record_count: bool,
    /// Webhook bodies carry the ticket's `dateoccurred` (on by default).
    webhook_dates: bool,
    /// How long `POST /auth/token` takes to answer.
    token_delay: Duration,
    /// API calls answered 401 for a missing, unknown or expired token.
    unauthorized: usize,
    outcome_reads: usize,
    action_reads: usize,
}

struct Shared {
    state: Mutex<State>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Authorization` value the configured webhook sends.
    fn webhook_authorization(&self) -> String {
        let c = self.lock().config.clone();
        match c.webhook_username {
            Some(user) => format!(
                "Basic {}",
                BASE64.encode(format!("{user}:{}", c.webhook_secret))
            ),
            None => format!("Bearer {}", c.webhook_secret),
        }
    }

    fn store_ticket(&self, user: ContactId, summary: &str) -> i64 {
        self.store_ticket_at(user, summary, common::now())
    }

    fn store_ticket_at(&self, user: ContactId, summary: &str, occurred: OffsetDateTime) -> i64 {
        let mut s = self.lock();
        let id = s.next_ticket;
        s.next_ticket += 1;
        let client_id = s
            .users
            .get(&user.0)
            .map(|u| u.client_id)
            .unwrap_or_default();
        s.tickets.insert(
            id,
            Ticket {
                id,
                summary: summary.to_owned(),
                client_id,
                user_id: user.0,
                occurred,
            },
        );
        id
    }

    /// Sends the "New Ticket Logged" webhook of ticket `id`.
    async fn fire(&self, id: i64, authorization: Option<&str>) -> Option<Delivery> {
        self.fire_event(id, authorization, None).await
    }

    /// Sends a webhook for ticket `id`: the new-ticket body, or with `update` the body of a
    /// later action (a webhook wired to ticket updates).
    async fn fire_event(
        &self,
        id: i64,
        authorization: Option<&str>,
        update: Option<&str>,
    ) -> Option<Delivery> {
        let authorization = authorization
            .map(str::to_owned)
            .unwrap_or_else(|| self.webhook_authorization());
        let (url, body) = {
            let s = self.lock();
            let url = s.webhook_url.clone()?;
            let ticket = s.tickets.get(&id)?;
            let mut ticket_body = ticket_json(&s, ticket);
            if !s.webhook_dates {
                if let Some(t) = ticket_body.as_object_mut() {
                    t.remove("dateoccurred");
                }
            }
            let action = match update {
                None => json!({"id": 1, "ticket_id": id, "outcome": "Ticket Logged",
                               "note": ticket.summary, "hiddenfromuser": false}),
                Some(note) => json!({"id": 2, "ticket_id": id, "outcome": "Note",
                                     "note": note, "hiddenfromuser": false}),
            };
            let body = json!({ "ticket": ticket_body, "action": action });
            (url, serde_json::to_vec(&body).unwrap_or_default())
        };
        let auth = (!authorization.is_empty()).then(|| ("authorization".to_owned(), authorization));
        let sent = common::deliver(&self.http, id, url, body, auth).await;
        self.lock().deliveries.push(sent.clone());
        Some(sent)
    }
}

type St = AxState<Arc<Shared>>;

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn authenticate(s: &mut State, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = header(headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| s.tokens.get(t.trim())) {
        Some(expires) if Instant::now() < *expires => Ok(()),
        _ => {
            s.unauthorized += 1;
            Err(Box::new(message(StatusCode::UNAUTHORIZED, "Unauthorized")))
        }
    }
}

/// `pageinate`, `page_size` (1 to 100, default 50) and `page_no` (from 1) of a list.
fn paging(q: &BTreeMap<String, String>) -> Result<Option<(usize, usize)>, Box<Response>> {
    let page_size = match q.get("page_size").map(|p| p.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => {
            return Err(Box::new(message(
                StatusCode::BAD_REQUEST,
                "page_size must be between 1 and 100",
            )))
        }
    };
    let page_no = match q.get("page_no").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        _ => {
            return Err(Box::new(message(
                StatusCode::BAD_REQUEST,
                "page_no must be a positive number",
            )))
        }
    };
    let paginate = q.get("pageinate").is_some_and(|p| p == "true");
    Ok(paginate.then_some((page_no, page_size)))
}

fn page_of<T>(items: Vec<T>, paging: Option<(usize, usize)>) -> Vec<T> {
    match paging {
        Some((page_no, page_size)) => items
            .into_iter()
            .skip((page_no - 1) * page_size)
            .take(page_size)
            .collect(),
        None => items,
    }
}

fn ticket_json(s: &State, t: &Ticket) -> Value {
    json!({
        "id": t.id,
        "summary": t.summary,
        "details": format!("<p>{}</p>", crate::sim::escape_html(&t.summary)),
        "client_id": t.client_id,
        "client_name": s.clients.get(&t.client_id).cloned().unwrap_or_default(),
        "site_id": 31,
        "user_id": t.user_id,
        "user_name": s.users.get(&t.user_id).map(|u| u.name.clone()).unwrap_or_default(),
        "status_id": 1,
        "dateoccurred": common::format_time(t.occurred),
    })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/sim/tickets", post(sim_ticket))
        .route("/sim/tickets/{id}/notes", get(sim_notes))
        .route("/auth/token", post(token))
        .route("/api/Tickets", get(list_tickets))
        .route("/api/Tickets/{id}", get(get_ticket))
        .route("/api/Users/{id}", get(get_user))
        .route("/api/Actions", get(list_actions).post(post_actions))
        .route("/api/Outcome", get(list_outcomes))
        .fallback(|| async { message(StatusCode::NOT_FOUND, "Not Found") })
        .with_state(shared)
}

async fn token(
    AxState(shared): St,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = shared.lock().token_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = shared.lock();
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let is_form = header(&headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be form-encoded",
        );
    }
    if s.config.tenant.is_some() && q.get("tenant") != s.config.tenant.as_ref() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "unknown tenant");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "use client_credentials",
        );
    }
    if form.get("client_id") != Some(&s.config.client_id)
        || form.get("client_secret") != Some(&s.config.client_secret)
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "invalid client credentials",
        );
    }
    if !form
        .get("scope")
        .is_some_and(|scope| scope.split(' ').any(|p| p == "all"))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "the scope must be all",
        );
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let lifetime = s.config.token_lifetime_secs;
    s.tokens.insert(
        token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    s.tokens_issued += 1;
    Json(
        json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime,
                "scope": "all"}),
    )
    .into_response()
}

async fn get_ticket(AxState(shared): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    match id.parse::<i64>().ok().and_then(|id| s.tickets.get(&id)) {
        Some(t) => Json(ticket_json(&s, t)).into_response(),
        None => message(StatusCode::NOT_FOUND, "Ticket not found"),
    }
}

async fn get_user(AxState(shared): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    match id
        .parse::<i64>()
        .ok()
        .and_then(|id| s.users.get(&id).map(|u| (id, u)))
    {
        // Only `name` is certain in Halo's user record; this tenant has no split names.
        Some((id, u)) => Json(json!({"id": id, "name": u.name, "emailaddress": u.email,
                                     "client_id": u.client_id, "site_id": 31}))
        .into_response(),
        None => message(StatusCode::NOT_FOUND, "User not found"),
    }
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
    let start = match (q.get("datesearch").map(String::as_str), q.get("startdate")) {
        (_, None) => None,
        (Some("dateoccurred"), Some(text)) => match common::parse_time(text) {
            Some(t) => Some(t),
            None => return message(StatusCode::BAD_REQUEST, "startdate is not a date"),
        },
        _ => return message(StatusCode::BAD_REQUEST, "startdate needs datesearch"),
    };
    let mut tickets: Vec<&Ticket> = s
        .tickets
        .values()
        .filter(|t| start.is_none_or(|start| t.occurred >= start))
        .collect();
    if q.get("orderdesc").is_some_and(|d| d == "true") {
        tickets.reverse();
    }
    let record_count = tickets.len();
    let page: Vec<Value> = page_of(tickets, paging)
        .into_iter()
        .map(|t| ticket_json(&s, t))
        .collect();
    let (page_no, page_size) = paging.unwrap_or((1, record_count));
    let mut answer = json!({"page_no": page_no, "page_size": page_size, "tickets": page});
    if s.record_count {
        answer["record_count"] = record_count.into();
    }
    Json(answer).into_response()
}

async fn list_actions(
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
    let ticket = match q.get("ticket_id").map(|t| t.parse::<i64>()) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return message(StatusCode::BAD_REQUEST, "ticket_id must be a number"),
    };
    s.action_reads += 1;
    let actions: Vec<Value> = s
        .actions
        .iter()
        .filter(|a| ticket.is_none_or(|t| a.ticket_id == t))
        .map(|a| {
            json!({"id": a.id, "ticket_id": a.ticket_id, "outcome_id": a.outcome_id,
                   "outcome": a.outcome, "note": a.note, "hiddenfromuser": a.hidden_from_user})
        })
        .collect();
    let record_count = actions.len();
    let actions = page_of(actions, paging);
    Json(json!({"record_count": record_count, "actions": actions})).into_response()
}

/// `GET /api/Outcome`: the tenant's action outcomes.
async fn list_outcomes(AxState(shared): St, headers: HeaderMap) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    s.outcome_reads += 1;
    let outcomes: Vec<Value> = s
        .config
        .outcomes
        .iter()
        .map(|(id, name)| json!({"id": id, "outcome": name, "buttonname": name}))
        .collect();
    Json(Value::Array(outcomes)).into_response()
}

async fn post_actions(AxState(shared): St, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = shared.lock();
    if let Err(r) = authenticate(&mut s, &headers) {
        return *r;
    }
    let fault = s.faults.take_next();
    if let Some(fault) = fault.filter(|f| !f.stored) {
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return common::with_retry_after(message(status, "The service is busy; try again later"));
    }
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) else {
        return message(
            StatusCode::BAD_REQUEST,
            "The request body must be an array of actions",
        );
    };
    let mut created = Vec::new();
    let mut stored = Vec::new();
    for item in &items {
        let Some(ticket_id) = item.get("ticket_id").and_then(crate::psa::http::id_value) else {
            return message(StatusCode::BAD_REQUEST, "ticket_id is required");
        };
        if !s.tickets.contains_key(&ticket_id) {
            return message(
                StatusCode::BAD_REQUEST,
                &format!("Ticket {ticket_id} does not exist"),
            );
        }
        let text = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .filter(|t| !t.trim().is_empty())
        };
        let Some(note) = text("note_html").or_else(|| text("note")) else {
            return message(StatusCode::BAD_REQUEST, "note or note_html is required");
        };
        let outcomes = &s.config.outcomes;
        let outcome = match (
            item.get("outcome_id").and_then(crate::psa::http::id_value),
            text("outcome"),
        ) {
            (Some(id), _) => outcomes
                .iter()
                .find(|(o, _)| *o == id)
                .ok_or(format!("Outcome {id} does not exist")),
            (None, Some(name)) => outcomes
                .iter()
                .find(|(_, o)| o.eq_ignore_ascii_case(name.trim()))
                .ok_or(format!("Outcome {name:?} does not exist")),
            (None, None) => Err("outcome_id or outcome is required".to_owned()),
        };
        let (outcome_id, outcome) = match outcome {
            Ok((id, name)) => (*id, name.clone()),
            Err(e) => return message(StatusCode::BAD_REQUEST, &e),
        };
        let flag = |k: &str| item.get(k).and_then(Value::as_bool);
        // Halo's defaults: visible to the end user, and e-mailed when the outcome says so.
        let action = HaloSimAction {
            id: 0,
            ticket_id,
            outcome_id,
            outcome,
            note: note.to_owned(),
            hidden_from_user: flag("hiddenfromuser").unwrap_or(false),
            send_email: flag("sendemail").unwrap_or(true),
        };
        stored.push(action);
    }
    for mut action in stored {
        action.id = s.next_action;
        s.next_action += 1;
        created.push(json!({"id": action.id, "ticket_id": action.ticket_id,
                            "outcome_id": action.outcome_id, "outcome": action.outcome,
                            "hiddenfromuser": action.hidden_from_user}));
        s.actions.push(action);
    }
    if let Some(fault) = fault {
        return common::stored_but_failed(fault.status);
    }
    // One action is answered with the object itself, several with an array.
    if created.len() == 1 {
        Json(created.remove(0)).into_response()
    } else {
        Json(Value::Array(created)).into_response()
    }
}

/// A running HaloPSA simulator. Dropping it stops the server.
pub struct HaloSim {
    shared: Arc<Shared>,
    served: Served,
}

impl HaloSim {
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(
            HaloSimConfig::default(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
    }

    pub async fn start_with(config: HaloSimConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                config,
                clients: BTreeMap::new(),
                users: BTreeMap::new(),
                tickets: BTreeMap::new(),
                actions: Vec::new(),
                tokens: HashMap::new(),
                tokens_issued: 0,
                next_client: 25,
                next_user: 4321,
                next_ticket: 1234,
                next_action: 1,
                faults: NoteFaults::default(),
                webhook_url: None,
                deliveries: Vec::new(),
                record_count: true,
                webhook_dates: true,
                token_delay: Duration::ZERO,
                unauthorized: 0,
                outcome_reads: 0,
                action_reads: 0,
            }),
            http: common::outbound()?,
        });
        let for_router = shared.clone();
        let served = common::serve(addr, "halopsa", move |_| router(for_router)).await?;
        Ok(HaloSim { shared, served })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.served.addr)
    }

    pub fn config(&self) -> HaloSimConfig {
        self.shared.lock().config.clone()
    }

    /// Stored connection settings and secrets that reach this simulator.
    pub fn connection(&self) -> (HaloSettings, HaloSecrets) {
        let c = self.config();
        (
            HaloSettings {
                auth_url: format!("{}/auth", self.url()),
                api_url: format!("{}/api", self.url()),
                tenant: c.tenant,
                client_id: c.client_id,
                webhook_username: c.webhook_username,
            },
            HaloSecrets {
                client_secret: c.client_secret,
                webhook_secret: c.webhook_secret,
            },
        )
    }

    pub fn add_client(&self, name: &str) -> CompanyId {
        let mut s = self.shared.lock();
        let id = s.next_client;
        s.next_client += 1;
        s.clients.insert(id, name.to_owned());
        CompanyId(id)
    }

    /// A user (end user) with one full `name`.
    pub fn add_user(&self, client: CompanyId, name: &str, email: &str) -> ContactId {
        let mut s = self.shared.lock();
        let id = s.next_user;
        s.next_user += 1;
        s.users.insert(
            id,
            User {
                name: name.to_owned(),
                email: email.to_owned(),
                client_id: client.0,
            },
        );
        ContactId(id)
    }

    /// The webhook's URL ("New Ticket Logged"); `None` sends none.
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.shared.lock().webhook_url = url;
    }

    fn store_ticket(&self, user: ContactId, summary: &str) -> i64 {
        self.shared.store_ticket(user, summary)
    }

    /// Logs a ticket and sends the webhook.
    pub async fn create_ticket(
        &self,
        user: ContactId,
        summary: &str,
    ) -> (TicketId, Option<Delivery>) {
        let id = self.store_ticket(user, summary);
        let delivery = self.fire(id, None).await;
        (TicketId(id), delivery)
    }

    /// Logs a ticket without sending the webhook.
    pub fn create_ticket_quietly(&self, user: ContactId, summary: &str) -> TicketId {
        TicketId(self.store_ticket(user, summary))
    }

    /// A ticket logged `age` ago (its `dateoccurred`), without any webhook.
    pub fn create_old_ticket_quietly(
        &self,
        user: ContactId,
        summary: &str,
        age: Duration,
    ) -> TicketId {
        TicketId(
            self.shared
                .store_ticket_at(user, summary, common::now() - age),
        )
    }

    /// Sends the webhook a ticket update would send (a later action, `note`), correctly
    /// authenticated: what a webhook wired to "ticket updated" delivers.
    pub async fn deliver_update(&self, ticket: TicketId, note: &str) -> Option<Delivery> {
        self.shared.fire_event(ticket.0, None, Some(note)).await
    }

    /// Whether webhook bodies carry the ticket's `dateoccurred` (they do by default).
    pub fn set_webhook_dates(&self, on: bool) {
        self.shared.lock().webhook_dates = on;
    }

    /// Whether ticket lists carry `record_count` (they do by default).
    pub fn set_record_count(&self, on: bool) {
        self.shared.lock().record_count = on;
    }

    /// `POST /auth/token` answers only after `delay` (a slow or distant tenant).
    pub fn set_token_delay(&self, delay: Duration) {
        self.shared.lock().token_delay = delay;
    }

    /// API calls answered 401 because the token was missing, unknown or expired.
    pub fn unauthorized_calls(&self) -> usize {
        self.shared.lock().unauthorized
    }

    /// `GET /api/Outcome` calls so far.
    pub fn outcome_reads(&self) -> usize {
        self.shared.lock().outcome_reads
    }

    /// `GET /api/Actions` calls so far.
    pub fn action_reads(&self) -> usize {
        self.shared.lock().action_reads
    }

    /// Sends the webhook of `ticket` with this `Authorization` value (`""` sends none).
    pub async fn deliver_with_authorization(
        &self,
        ticket: TicketId,
        value: &str,
    ) -> Option<Delivery> {
        self.fire(ticket.0, Some(value)).await
    }

    /// The `Authorization` value the configured webhook sends.
    pub fn webhook_authorization(&self) -> String {
        self.shared.webhook_authorization()
    }

    async fn fire(&self, id: i64, authorization: Option<&str>) -> Option<Delivery> {
        self.shared.fire(id, authorization).await
    }

    /// Every access token handed out so far stops working (as after a key rotation).
    pub fn revoke_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    pub fn tokens_issued(&self) -> usize {
        self.shared.lock().tokens_issued
    }

    /// The next `n` action posts fail with `status` (429 carries `Retry-After: 1`).
    pub fn fail_next_note_posts(&self, n: usize, status: u16) {
        self.shared.lock().faults.queue(n, status);
    }

    /// The next `n` action posts store their actions and are then answered with `status`
    /// (504 is a gateway that gave up waiting): the note is there, but the caller was not told.
    pub fn store_then_fail_next_note_posts(&self, n: usize, status: u16) {
        self.shared.lock().faults.queue_stored(n, status);
    }

    pub fn note_posts(&self) -> usize {
        self.shared.lock().faults.posts
    }

    /// The actions of one ticket, oldest first.
    pub fn notes(&self, ticket: TicketId) -> Vec<HaloSimAction> {
        let s = self.shared.lock();
        s.actions
            .iter()
            .filter(|a| a.ticket_id == ticket.0)
            .cloned()
            .collect()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }
}

/// `POST /sim/tickets` `{"user": 4321, "summary": "…"}`: logs a ticket and sends the webhook,
/// as logging it in HaloPSA would.
async fn sim_ticket(AxState(shared): St, Json(body): Json<Value>) -> Response {
    let user = body
        .get("user")
        .and_then(Value::as_i64)
        .filter(|u| shared.lock().users.contains_key(u));
    let Some(user) = user else {
        return message(StatusCode::BAD_REQUEST, "user must be the id of a user");
    };
    let summary = body
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or("Password reset");
    let id = shared.store_ticket(ContactId(user), summary);
    let delivery = shared.fire(id, None).await;
    Json(json!({"id": id, "webhook_status": delivery.and_then(|d| d.status)})).into_response()
}

/// `GET /sim/tickets/{id}/notes`: the ticket's actions, for people trying the demo.
async fn sim_notes(AxState(shared): St, Path(id): Path<i64>) -> Response {
    let s = shared.lock();
    let notes: Vec<Value> = s
        .actions
        .iter()
        .filter(|a| a.ticket_id == id)
        .map(|a| json!({"id": a.id, "text": a.text(), "hiddenfromuser": a.hidden_from_user}))
        .collect();
    Json(notes).into_response()
}
