//! The simulator's records and how they are rendered in ConnectWise's JSON shapes.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Credentials and keys of the simulated tenant.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub company_id: String,
    pub public_key: String,
    pub private_key: String,
    /// Any non-empty clientId is accepted; this one is what [`super::ConnectWiseSim::client_config`]
    /// hands out.
    pub client_id: String,
    pub signing_key: String,
    /// The REST codebase in URLs handed out (`v4_6_release`).
    pub codebase: String,
    /// The codebase in callback key URLs (`v2025_1`).
    pub key_codebase: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            company_id: "examplemsp".into(),
            public_key: "sim-public-key".into(),
            private_key: "sim-private-key".into(),
            client_id: "00000000-0000-4000-8000-00000000c11d".into(),
            signing_key: "test-signing-key".into(),
            codebase: "v4_6_release".into(),
            key_codebase: "v2025_1".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimCompany {
    pub id: i64,
    pub identifier: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct SimContact {
    pub id: i64,
    pub company_id: Option<i64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
}

impl SimContact {
    pub fn display_name(&self) -> String {
        [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone)]
pub struct SimTicket {
    pub id: i64,
    pub summary: String,
    pub company_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub date_entered: OffsetDateTime,
}

/// A note as the simulator stored it, with the flags as ConnectWise would apply them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimNote {
    pub id: i64,
    pub ticket_id: i64,
    pub text: String,
    pub internal_analysis_flag: bool,
    pub detail_description_flag: bool,
    pub resolution_flag: bool,
    /// ConnectWise runs notification workflows unless told not to.
    pub process_notifications: bool,
    pub date_created: OffsetDateTime,
}

impl SimNote {
    /// Whether the customer could see this note.
    pub fn is_customer_visible(&self) -> bool {
        self.detail_description_flag || self.resolution_flag
    }
}

#[derive(Debug, Clone)]
pub struct SimMember {
    pub id: i64,
    pub identifier: String,
    pub first_name: String,
    pub last_name: String,
    pub member_hash: String,
}

/// One callback POST the simulator made, and how the receiver answered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub ticket_id: i64,
    pub url: String,
    pub body: Vec<u8>,
    pub signature: String,
    /// The receiver's HTTP status, when it answered at all.
    pub status: Option<u16>,
    /// Why nothing was delivered, when nothing was.
    pub error: Option<String>,
}

impl Delivery {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub config: SimConfig,
    /// `http://127.0.0.1:PORT`, set once the listener is bound.
    pub origin: String,
    pub companies: BTreeMap<i64, SimCompany>,
    pub contacts: BTreeMap<i64, SimContact>,
    pub tickets: BTreeMap<i64, SimTicket>,
    pub notes: Vec<SimNote>,
    pub members: BTreeMap<i64, SimMember>,
    pub callbacks: Vec<Value>,
    pub hosted_setups: Vec<Value>,
    pub next_company: i64,
    pub next_contact: i64,
    pub next_ticket: i64,
    pub next_note: i64,
    pub next_member: i64,
    pub next_callback: i64,
    pub next_setup: i64,
    /// The `id` of the current callback key URL.
    pub key_id: String,
    pub key_fetches: usize,
    /// Failures of the next note POSTs, one per POST.
    pub note_faults: crate::sim::common::NoteFaults,
    pub latency: Duration,
    /// Also deliver callbacks here, besides any registered callback.
    pub callback_url: Option<String>,
    pub deliveries: Vec<Delivery>,
    /// The pod the ticket screen hosts (Manage Hosted API setup), when one is set.
    pub pod_url: Option<String>,
}

impl State {
    pub fn new(config: SimConfig, origin: String) -> Self {
        State {
            config,
            origin,
            companies: BTreeMap::new(),
            contacts: BTreeMap::new(),
            tickets: BTreeMap::new(),
            notes: Vec::new(),
            members: BTreeMap::new(),
            callbacks: Vec::new(),
            hosted_setups: Vec::new(),
            next_company: 250,
            next_contact: 4321,
            next_ticket: 1234,
            next_note: 7001,
            next_member: 150,
            next_callback: 88,
            next_setup: 1,
            key_id: uuid::Uuid::new_v4().to_string(),
            key_fetches: 0,
            note_faults: Default::default(),
            latency: Duration::ZERO,
            callback_url: None,
            deliveries: Vec::new(),
            pod_url: None,
        }
    }

    /// Stores a callback entry as `POST /system/callbacks` does: with its id, the member who
    /// registered it and ConnectWise's bookkeeping fields. Returns the stored entry.
    pub fn add_callback(&mut self, mut entry: Value, member_id: i64) -> Value {
        let id = self.next_callback;
        self.next_callback += 1;
        entry["id"] = json!(id);
        entry["memberId"] = json!(member_id);
        entry["connectWiseID"] = json!(uuid::Uuid::new_v4().to_string());
        entry["_info"] = json!({"lastUpdated": format_time(now()), "updatedBy": "sim"});
        self.callbacks.push(entry.clone());
        entry
    }

    pub fn api_base(&self) -> String {
        format!("{}/{}/apis/3.0", self.origin, self.config.codebase)
    }

    pub fn key_url(&self) -> String {
        format!(
            "{}/{}//system/callbackkey/index.rails?companyName={}&id={}",
            self.origin, self.config.key_codebase, self.config.company_id, self.key_id
        )
    }

    fn company_ref(&self, id: i64) -> Value {
        let (identifier, name) = self
            .companies
            .get(&id)
            .map(|c| (c.identifier.clone(), c.name.clone()))
            .unwrap_or_default();
        json!({"id": id, "identifier": identifier, "name": name,
               "_info": {"company_href": format!("{}/company/companies/{id}", self.api_base())}})
    }

    pub fn company_json(&self, c: &SimCompany) -> Value {
        json!({"id": c.id, "identifier": c.identifier, "name": c.name,
               "status": {"id": 1, "name": "Active"}, "deletedFlag": false,
               "_info": {"lastUpdated": "2025-01-01T00:00:00Z", "updatedBy": "sim"}})
    }

    pub fn contact_json(&self, c: &SimContact) -> Value {
        let mut v = json!({
            "id": c.id,
            "inactiveFlag": false,
            "communicationItems": c.email.as_ref().map(|email| vec![json!({
                "id": c.id * 10 + 1,
                "type": {"id": 1, "name": "Email"},
                "value": email,
                "defaultFlag": true,
                "communicationType": "Email"
            })]).unwrap_or_default(),
            "types": [{"id": 3, "name": "End User"}],
            "customFields": [],
            "_info": {"lastUpdated": "2025-01-01T00:00:00Z", "updatedBy": "sim"}
        });
        if let Some(first) = &c.first_name {
            v["firstName"] = json!(first);
        }
        if let Some(last) = &c.last_name {
            v["lastName"] = json!(last);
        }
        if let Some(company) = c.company_id {
            v["company"] = self.company_ref(company);
        }
        v
    }

    pub fn ticket_json(&self, t: &SimTicket) -> Value {
        let entered = format_time(t.date_entered);
        let mut v = json!({
            "id": t.id,
            "summary": t.summary,
            "recordType": "ServiceTicket",
            "board": {"id": 1, "name": "Service Desk"},
            "status": {"id": 16, "name": "New"},
            "priority": {"id": 8, "name": "Priority 3 - Normal Response"},
            "source": {"id": 2, "name": "Email"},
            "closedFlag": false,
            "customFields": [],
            "_info": {"lastUpdated": entered, "updatedBy": "sim",
                      "dateEntered": entered, "enteredBy": "sim"}
        });
        if let Some(company) = t.company_id {
            v["company"] = self.company_ref(company);
        }
        if let Some(contact) = t.contact_id.and_then(|id| self.contacts.get(&id)) {
            let name = contact.display_name();
            v["contact"] = json!({"id": contact.id, "name": name,
                "_info": {"contact_href": format!("{}/company/contacts/{}", self.api_base(), contact.id)}});
            v["contactName"] = json!(name);
            if let Some(email) = &contact.email {
                v["contactEmailAddress"] = json!(email);
            }
        }
        v
    }

    pub fn note_json(&self, n: &SimNote) -> Value {
        json!({
            "id": n.id,
            "ticketId": n.ticket_id,
            "text": n.text,
            "detailDescriptionFlag": n.detail_description_flag,
            "internalAnalysisFlag": n.internal_analysis_flag,
            "resolutionFlag": n.resolution_flag,
            "processNotifications": n.process_notifications,
            "member": {"id": 1, "identifier": "deskproof-api", "name": "deskproof API"},
            "dateCreated": format_time(n.date_created),
            "createdBy": "deskproof-api",
            "internalFlag": n.internal_analysis_flag,
            "externalFlag": !n.internal_analysis_flag,
            "_info": {"lastUpdated": format_time(n.date_created), "updatedBy": "deskproof-api"}
        })
    }

    pub fn member_json(m: &SimMember) -> Value {
        json!({"id": m.id, "identifier": m.identifier, "firstName": m.first_name,
               "lastName": m.last_name, "inactiveFlag": false,
               "_info": {"lastUpdated": "2025-01-01T00:00:00Z"}})
    }
}

/// ConnectWise writes times as `2025-03-14T09:12:00Z`: UTC, whole seconds.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Now, to the whole second, as ConnectWise stores it.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}
