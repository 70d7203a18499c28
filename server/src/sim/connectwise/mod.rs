//! A strict ConnectWise PSA simulator over real HTTP: the REST paths deskproof uses, the callback
//! key endpoint, signed callbacks on ticket creation, and pages to create and view tickets.
//!
//! Served URLs (`{codebase}` is `v4_6_release` or a versioned one such as `v2025_1`):
//!
//! - `GET  /{codebase}/apis/3.0/service/tickets` (`conditions`, `page`, `pageSize`), `…/{id}`,
//!   `GET|POST …/service/tickets/{id}/notes`
//! - `GET  /{codebase}/apis/3.0/company/companies`, `…/{id}`, `company/contacts`, `…/{id}`
//! - `GET  /{codebase}/apis/3.0/system/members`, `system/myMembers/info`
//! - `GET|POST /{codebase}/apis/3.0/system/callbacks`, `DELETE …/{id}`
//! - `GET|POST /{codebase}/apis/3.0/system/connectwisehostedsetups`
//! - `GET  /v2025_1//system/callbackkey/index.rails?companyName=…&id=…` → `{"signing_key": …}`
//! - `POST /sim/tickets` (JSON), `GET|POST /sim/new-ticket` (form), `GET /sim/tickets/{id}`
//! - `GET  /sim/connectwise/tickets/{id}/screen`: the ticket screen with the hosted pod
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use url::Url;

use crate::psa::connectwise::callback::{sign, SIGNATURE_HEADER};
use crate::psa::connectwise::model::{CallbackEntry, HostedSetup};
use crate::psa::connectwise::ConnectWiseConfig;
use crate::psa::{CompanyId, ContactId, TicketId};
use crate::secret::Secret;

mod api;
mod pages;
mod screen;
mod state;

use state::{now, SimCompany, SimContact, SimMember, SimTicket, State};
pub use state::{Delivery, SimConfig, SimNote};

/// A signed ticket callback, as ConnectWise would POST it.
#[derive(Clone, Debug)]
pub struct CallbackRequest {
    pub url: String,
    pub body: Vec<u8>,
    /// The value of the signature header.
    pub signature: String,
}

impl CallbackRequest {
    pub const SIGNATURE_HEADER: &'static str = SIGNATURE_HEADER;
}

/// The simulator's shared state and its outbound HTTP client.
pub(crate) struct Shared {
    state: Mutex<State>,
    http: reqwest::Client,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a ticket and delivers the `added` callback to every matching target.
    pub(crate) async fn create_ticket(
        &self,
        company: Option<i64>,
        contact: Option<i64>,
        summary: &str,
    ) -> CreatedTicket {
        let id = self.store_ticket(company, contact, summary);
        let deliveries = self.fire(id, "added", None).await;
        CreatedTicket {
            id: TicketId(id),
            deliveries,
        }
    }

    /// Stores a ticket without calling anyone back; returns its id.
    pub(crate) fn store_ticket(
        &self,
        company: Option<i64>,
        contact: Option<i64>,
        summary: &str,
    ) -> i64 {
        {
            let mut s = self.lock();
            let id = s.next_ticket;
            s.next_ticket += 1;
            s.tickets.insert(
                id,
                SimTicket {
                    id,
                    summary: summary.to_owned(),
                    company_id: company,
                    contact_id: contact,
                    date_entered: now(),
                },
            );
            id
        }
    }

    /// Sends the callback for ticket `id` to every target; `wrong_key` signs with another key.
    pub(crate) async fn fire(
        &self,
        id: i64,
        action: &str,
        wrong_key: Option<&str>,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        for request in self.callback_requests(id, action, wrong_key) {
            out.push(
                self.deliver(id, request.url, request.body, request.signature)
                    .await,
            );
        }
        out
    }

    /// The signed callback requests ConnectWise would send for ticket `id`, not yet sent.
    pub(crate) fn callback_requests(
        &self,
        id: i64,
        action: &str,
        wrong_key: Option<&str>,
    ) -> Vec<CallbackRequest> {
        {
            let s = self.lock();
            let Some(ticket) = s.tickets.get(&id) else {
                return Vec::new();
            };
            let mut targets: Vec<(i64, String)> = s
                .callbacks
                .iter()
                .filter(|c| callback_matches(c, ticket))
                .filter_map(|c| {
                    let cb_id = c.get("id")?.as_i64()?;
                    // ConnectWise appends the record id to the registered URL as it is.
                    Some((cb_id, format!("{}{id}", c.get("url")?.as_str()?)))
                })
                .collect();
            if let Some(url) = &s.callback_url {
                targets.push((0, format!("{url}{id}")));
            }
            let entity = s.ticket_json(ticket).to_string();
            targets
                .into_iter()
                .map(|(cb_id, url)| {
                    let body = callback_body(&s, id, action, entity.clone(), cb_id);
                    let key = wrong_key.unwrap_or(&s.config.signing_key);
                    let signature = sign(key, &body);
                    CallbackRequest {
                        url,
                        body,
                        signature,
                    }
                })
                .collect()
        }
    }

    async fn deliver(
        &self,
        ticket_id: i64,
        url: String,
        body: Vec<u8>,
        signature: String,
    ) -> Delivery {
        let result = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .body(body.clone())
            .send()
            .await;
        let (status, error) = match result {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let delivery = Delivery {
            ticket_id,
            url,
            body,
            signature,
            status,
            error,
        };
        self.lock().deliveries.push(delivery.clone());
        delivery
    }
}

fn callback_matches(c: &Value, ticket: &SimTicket) -> bool {
    let is_ticket = c
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("ticket"));
    let inactive = c
        .get("inactiveFlag")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let level = c.get("level").and_then(Value::as_str).unwrap_or("");
    let object_id = c.get("objectId").and_then(Value::as_i64);
    let in_scope = level.eq_ignore_ascii_case("owner")
        || (level.eq_ignore_ascii_case("company") && object_id == ticket.company_id)
        || (level.eq_ignore_ascii_case("ticket") && object_id == Some(ticket.id));
    is_ticket && !inactive && in_scope
}

fn callback_body(s: &State, id: i64, action: &str, entity: String, callback_id: i64) -> Vec<u8> {
    let host = Url::parse(&s.origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let body = json!({
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "FromUrl": host,
        "CompanyId": s.config.company_id,
        "MemberId": "sim",
        "Action": action,
        "Type": "ticket",
        "ID": id,
        "ProductInstanceId": "3d2b6c1e-8f4a-4b9e-a7c5-0e1f2a3b4c5d",
        "PartnerId": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5e",
        "Entity": entity,
        "Metadata": {"key_url": s.key_url()},
        "CallbackObjectRecId": callback_id
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A ticket the simulator created, and the callbacks it sent for it.
#[derive(Debug, Clone)]
pub struct CreatedTicket {
    pub id: TicketId,
    pub deliveries: Vec<Delivery>,
}

/// A running simulator. Dropping it stops the server.
pub struct ConnectWiseSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl ConnectWiseSim {
    /// Starts on `127.0.0.1` on a free port with the default tenant.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(SimConfig::default(), SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts with the given tenant on `addr` (port 0 picks a free port).
    pub async fn start_with(config: SimConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config, format!("http://{addr}"))),
            http,
        });
        let router = api::router(shared.clone())
            .merge(pages::router(shared.clone()))
            .merge(screen::router(shared.clone()));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "ConnectWise simulator stopped");
            }
        });
        Ok(ConnectWiseSim {
            shared,
            addr,
            shutdown: Some(tx),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The REST base: `http://127.0.0.1:PORT/v4_6_release/apis/3.0`.
    pub fn base_url(&self) -> Url {
        let base = self.shared.lock().api_base();
        Url::parse(&base).unwrap_or_else(|_| unreachable!("the simulator's own URL parses"))
    }

    /// The key URL callbacks carry right now.
    pub fn key_url(&self) -> String {
        self.shared.lock().key_url()
    }

    pub fn config(&self) -> SimConfig {
        self.shared.lock().config.clone()
    }

    /// Client settings with the right credentials for this simulator.
    pub fn client_config(&self) -> ConnectWiseConfig {
        let config = self.config();
        ConnectWiseConfig {
            base_url: self.base_url(),
            company_id: config.company_id,
            public_key: config.public_key,
            private_key: Secret::new(config.private_key),
            client_id: config.client_id,
        }
    }

    pub fn add_company(&self, name: &str) -> CompanyId {
        let mut s = self.shared.lock();
        let id = s.next_company;
        s.next_company += 1;
        let identifier: String = name.chars().filter(|c| c.is_alphanumeric()).collect();
        s.companies.insert(
            id,
            SimCompany {
                id,
                identifier,
                name: name.to_owned(),
            },
        );
        CompanyId(id)
    }

    /// A contact with no company; an empty string leaves that field out of the record.
    pub fn add_contact(&self, first: &str, last: &str, email: &str) -> ContactId {
        self.add_contact_at(None, first, last, email)
    }

    /// A contact of `company`; an empty string leaves that field out of the record.
    pub fn add_contact_at(
        &self,
        company: Option<CompanyId>,
        first: &str,
        last: &str,
        email: &str,
    ) -> ContactId {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        let mut s = self.shared.lock();
        let id = s.next_contact;
        s.next_contact += 1;
        s.contacts.insert(
            id,
            SimContact {
                id,
                company_id: company.map(|c| c.0),
                first_name: some(first),
                last_name: some(last),
                email: some(email),
            },
        );
        ContactId(id)
    }

    /// A member who can sign in to `/system/myMembers/info` with `member_hash`.
    pub fn add_member(&self, identifier: &str, member_hash: &str) -> i64 {
        let mut s = self.shared.lock();
        let id = s.next_member;
        s.next_member += 1;
        s.members.insert(
            id,
            SimMember {
                id,
                identifier: identifier.to_owned(),
                first_name: "Jordan".into(),
                last_name: "Tech".into(),
                member_hash: member_hash.to_owned(),
            },
        );
        id
    }

    /// The pod URL the ticket screen hosts in an iframe, as a Manage Hosted API setup would
    /// name it; `None` shows the screen without a pod.
    pub fn set_pod_url(&self, url: Option<String>) {
        self.shared.lock().pod_url = url;
    }

    /// The ticket screen of `ticket`, with the pod when one is set.
    pub fn screen_url(&self, ticket: TicketId) -> String {
        format!("{}/sim/connectwise/tickets/{ticket}/screen", self.url())
    }

    /// Creates a ticket and sends the signed `added` callback to every registered callback
    /// and to the configured callback URL.
    pub async fn create_ticket(
        &self,
        company: Option<CompanyId>,
        contact: Option<ContactId>,
        summary: &str,
    ) -> CreatedTicket {
        self.shared
            .create_ticket(company.map(|c| c.0), contact.map(|c| c.0), summary)
            .await
    }

    /// Stores a ticket without sending any callback, as if the callback were lost.
    pub fn add_ticket(
        &self,
        company: Option<CompanyId>,
        contact: Option<ContactId>,
        summary: &str,
    ) -> TicketId {
        TicketId(
            self.shared
                .store_ticket(company.map(|c| c.0), contact.map(|c| c.0), summary),
        )
    }

    /// The signed `added` callbacks for `ticket`, built but not sent.
    pub fn callback_requests(&self, ticket: TicketId) -> Vec<CallbackRequest> {
        self.shared.callback_requests(ticket.0, "added", None)
    }

    /// Sends the callback for an existing ticket again, with a fresh body and signature.
    pub async fn fire_callback(&self, ticket: TicketId, action: &str) -> Vec<Delivery> {
        self.shared.fire(ticket.0, action, None).await
    }

    /// Sends exactly the same request again, e.g. to test duplicate handling.
    pub async fn redeliver(&self, delivery: &Delivery) -> Delivery {
        self.shared
            .deliver(
                delivery.ticket_id,
                delivery.url.clone(),
                delivery.body.clone(),
                delivery.signature.clone(),
            )
            .await
    }

    /// Sends the `added` callback for `ticket` signed with a key that is not the tenant's.
    pub async fn deliver_with_wrong_signature(&self, ticket: TicketId) -> Vec<Delivery> {
        self.shared
            .fire(ticket.0, "added", Some("not-the-signing-key"))
            .await
    }

    /// Every callback sent so far, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    pub fn last_delivery(&self) -> Option<Delivery> {
        self.shared.lock().deliveries.last().cloned()
    }

    /// Registers an owner-level ticket callback to `url`, as `POST /system/callbacks` would;
    /// returns its id.
    pub fn register_ticket_callback(&self, url: &str, description: &str) -> i64 {
        let entry = json!({
            "description": description,
            "url": url,
            "objectId": 1,
            "type": "Ticket",
            "level": "Owner",
            "inactiveFlag": false,
        });
        let stored = self.shared.lock().add_callback(entry, 1);
        stored["id"].as_i64().unwrap_or_default()
    }

    /// Also deliver callbacks to `url` (the ticket id is appended, as for registered ones).
    pub fn set_callback_url(&self, url: Option<String>) {
        self.shared.lock().callback_url = url;
    }

    /// Changes the signing key and the key URL's `id`, as a key rotation does.
    pub fn rotate_signing_key(&self, key: &str) {
        let mut s = self.shared.lock();
        s.config.signing_key = key.to_owned();
        s.key_id = uuid::Uuid::new_v4().to_string();
    }

    /// How many times the key endpoint handed out the key.
    pub fn key_fetches(&self) -> usize {
        self.shared.lock().key_fetches
    }

    /// The next `n` note POSTs fail with `status` (503, 429 with `Retry-After: 1`, …).
    pub fn fail_next_note_posts(&self, n: usize, status: u16) {
        self.shared.lock().note_faults.queue(n, status);
    }

    /// The next `n` note POSTs store their note and are then answered with `status` (504 is
    /// a gateway that gave up waiting): the note is there, but the caller was not told.
    pub fn store_then_fail_next_note_posts(&self, n: usize, status: u16) {
        self.shared.lock().note_faults.queue_stored(n, status);
    }

    /// Every note POST that reached the simulator, failed or not.
    pub fn note_posts(&self) -> usize {
        self.shared.lock().note_faults.posts
    }

    /// Every REST call waits this long before it is answered.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// The notes of one ticket, oldest first.
    pub fn notes(&self, ticket: TicketId) -> Vec<SimNote> {
        let s = self.shared.lock();
        s.notes
            .iter()
            .filter(|n| n.ticket_id == ticket.0)
            .cloned()
            .collect()
    }

    pub fn all_notes(&self) -> Vec<SimNote> {
        self.shared.lock().notes.clone()
    }

    /// Registered callbacks as ConnectWise would list them.
    pub fn callbacks(&self) -> Vec<CallbackEntry> {
        let s = self.shared.lock();
        s.callbacks
            .iter()
            .filter_map(|c| serde_json::from_value(c.clone()).ok())
            .collect()
    }

    pub fn hosted_setups(&self) -> Vec<HostedSetup> {
        let s = self.shared.lock();
        s.hosted_setups
            .iter()
            .filter_map(|c| serde_json::from_value(c.clone()).ok())
            .collect()
    }
}

impl Drop for ConnectWiseSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
