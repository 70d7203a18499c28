//! Administration behind the settings and audit pages: organizations, company mappings, PSA
//! connections, Duo accounts, policy, local accounts and the audit log. Every call checks that
//! the session belongs to an enabled admin; every change is stored with its audit entry in one
//! transaction; secrets are sealed with the master key and never sent back.
use std::collections::BTreeMap;

use app::admin::{
    psa_kind, AdminBackend, AuditListing, AuditQuery, AuditRow, ConnectionView, DuoChildrenReply,
    FormReply, MappingView, OrganizationView, SettingsView, TestReply, UserView, POLICY_FIELDS,
};
use app::backend::{BackendError, BackendResult};
use app::model::Role;
use tower_sessions::Session;

use crate::auth;
use crate::crypto::MasterKey;
use crate::policy::{Policy, PolicySettings};
use crate::psa::connectwise::model::{HostedSetup, POD_HEIGHT};
use crate::psa::connectwise::ConnectWiseClient;
use crate::psa::halopsa::client::TokenCache;
use crate::psa::source::{check_connection, connect, connectwise_config, PsaHttp, Purpose};
use crate::psa::PsaKind;
use crate::storage::{
    AuditEntry, AuditFilter, AuditRecord, ConnectionFilter, NewPsaConnection, NewUser,
    StorageError, Store, UserRecord,
};
use crate::verify::pod::parse_pod_origins;

mod duo;

/// Connection fields stored as JSON numbers.
const NUMBER_FIELDS: &[&str] = &["note_type"];

/// The most rows the audit page shows; the page says when more match. The CSV export has
/// no limit: it streams every matching row.
pub const AUDIT_LIMIT: i64 = 5000;

/// Rows per database read while the CSV export streams.
const EXPORT_PAGE: i64 = 1000;

#[derive(Clone)]
pub struct AdminService {
    pub store: Store,
    pub key: MasterKey,
    /// Where PSAs reach this deployment (callback and pod URLs).
    pub public_url: String,
    /// The policy before stored defaults apply, shown as what blank fields inherit.
    pub builtin_policy: Policy,
    pub duo_http: reqwest::Client,
    pub psa_http: PsaHttp,
    /// Told of every saved connection, so its webhooks are checked with the new settings.
    pub webhook_checkers: crate::http::hooks::WebhookCheckers,
}

/// What is wrong with a name typed into a form, if anything: names are shown in lists, notes
/// and the audit log, so tabs, line breaks and characters that are invisible or turn the text
/// around (which can make two names look alike) are refused.
fn name_problem(name: &str) -> Option<&'static str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c,
                '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
    };
    if name.chars().count() > 100 {
        Some("A name has at most 100 characters.")
    } else if name.chars().any(hidden) {
        Some("Use visible characters only: no tabs, line breaks or invisible characters.")
    } else {
        None
    }
}

/// A name as stored: trimmed, with accents composed (NFC), so that the same name typed two ways
/// is one name.
fn stored_name(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    name.trim().nfc().collect()
}

/// Whether two stored names are the same name to a reader: equal after Unicode case folding.
fn same_name(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// What a failed call to a PSA tells the admin: that it could not be reached, or what it said.
fn psa_failure(product: &str, e: &crate::psa::PsaError) -> String {
    match e {
        crate::psa::PsaError::Transport(_) => format!(
            "Could not reach {product}: check the address, and that this server can connect to it."
        ),
        other => format!("{product} refused: {other}"),
    }
}

fn internal(e: impl std::fmt::Display) -> BackendError {
    tracing::error!(error = %e, "administration failed");
    BackendError::Internal
}

fn invalid(message: impl Into<String>) -> BackendError {
    BackendError::Invalid(message.into())
}

/// `""` is `None`; anything else must be an id.
fn optional_id(text: &str, what: &str) -> BackendResult<Option<i64>> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse()
            .map(Some)
            .map_err(|_| invalid(format!("Unknown {what}."))),
    }
}

fn field<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    fields.get(name).map(|v| v.trim()).unwrap_or("")
}

/// A policy as strings by field: numbers as digits, booleans as `yes`/`no`.
fn policy_strings(value: serde_json::Value) -> BTreeMap<String, String> {
    let serde_json::Value::Object(map) = value else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let text = match v {
                serde_json::Value::Bool(true) => "yes".to_owned(),
                serde_json::Value::Bool(false) => "no".to_owned(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((k, text))
        })
        .collect()
}

fn is_key_text(value: &str) -> bool {
    value.len() <= 100 && value.chars().all(|c| c.is_ascii_graphic())
}

impl AdminService {
    /// The signed-in, enabled admin behind `session`.
    pub async fn require_admin(&self, session: &Session) -> BackendResult<UserRecord> {
        match auth::session_user(&self.store, session)
            .await
            .map_err(internal)?
        {
            Some(u) if u.role == Role::Admin => Ok(u),
            Some(_) => Err(BackendError::Forbidden),
            None => Err(BackendError::Unauthenticated),
        }
    }

    fn change(
        admin: &UserRecord,
        action: &str,
        organization_id: Option<i64>,
        detail: String,
    ) -> AuditEntry {
        AuditEntry {
            actor: admin.display_name.clone(),
            action: action.to_owned(),
            organization_id,
            detail: Some(detail),
            ..Default::default()
        }
    }

    pub fn callback_url(&self, connection_id: i64) -> String {
        crate::psa::connectwise::callback::deskproof_callback_url(&self.public_url, connection_id)
    }

    /// Where the PSA of a connection of this kind delivers its ticket events: the ConnectWise
    /// callback, or `<public_url>/hooks/<kind>/<connection id>` for the other kinds.
    pub fn hook_url(&self, kind: &str, connection_id: i64) -> String {
        if kind == PsaKind::ConnectWise.as_str() {
            return self.callback_url(connection_id);
        }
        format!(
            "{}/hooks/{kind}/{connection_id}",
            self.public_url.trim_end_matches('/')
        )
    }

    pub fn pod_url(&self, connection_id: i64) -> String {
        format!(
            "{}/pod/connectwise/{connection_id}?id=[cw_id]&screen=[cw_screen]",
            self.public_url.trim_end_matches('/')
        )
    }

    /// The stored secrets of a connection as a JSON object of strings.
    fn connection_secrets(&self, sealed: &str) -> BackendResult<BTreeMap<String, String>> {
        let opened = self.key.open(sealed).map_err(internal)?;
        let value: serde_json::Value = serde_json::from_str(opened.expose()).map_err(internal)?;
        let serde_json::Value::Object(map) = value else {
            return Ok(BTreeMap::new());
        };
        Ok(map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect())
    }

    async fn connectwise_client(&self, id: i64) -> BackendResult<ConnectWiseClient> {
        let row = self
            .store
            .psa_connection(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| invalid("Unknown PSA connection."))?;
        if row.kind != "connectwise" {
            let product = PsaKind::parse(&row.kind).map_or(row.kind.as_str(), |k| k.product());
            return Err(invalid(format!(
                "One-click connect is for ConnectWise only: configure the webhook in {product} \
                 with the webhook URL shown on this page.",
            )));
        }
        let secrets = self.key.open(&row.secrets_sealed).map_err(internal)?;
        let config = connectwise_config(&row.settings, secrets.expose())
            .map_err(|e| invalid(format!("The stored settings cannot be used: {e}")))?;
        ConnectWiseClient::with_http(config, self.psa_http.connectwise.clone())
            .map_err(|e| invalid(format!("The stored settings cannot be used: {e}")))
    }

    /// Test connection for Autotask, Freshdesk and HaloPSA: builds the client from the stored
    /// connection and lists the tickets created in the last minute, one cheap authenticated
    /// read. A fresh token cache makes sure the stored secret itself is tried.
    async fn test_other_connection(
        &self,
        kind: PsaKind,
        row: &crate::storage::PsaConnectionRow,
    ) -> BackendResult<TestReply> {
        let secrets = self.key.open(&row.secrets_sealed).map_err(internal)?;
        let http = PsaHttp {
            halo_tokens: TokenCache::default(),
            ..self.psa_http.clone()
        };
        let client = connect(
            &row.kind,
            &row.settings,
            secrets.expose(),
            &http,
            Purpose::Api,
        )
        .map_err(|e| invalid(format!("The stored settings cannot be used: {e}")))?;
        let since = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
        Ok(match client.tickets_created_since(since).await {
            Ok(tickets) => TestReply {
                ok: true,
                message: format!("Connected: {} accepted the credentials.", kind.product()),
                lines: vec![
                    format!("{} ticket(s) created in the last minute", tickets.len()),
                    format!(
                        "Webhook URL to configure in {}: {}",
                        kind.product(),
                        self.hook_url(kind.as_str(), row.id)
                    ),
                ],
            },
            Err(e) => TestReply {
                ok: false,
                message: psa_failure(kind.product(), &e),
                lines: Vec::new(),
            },
        })
    }

    /// The audit filter of the page's and the export's query, checked.
    pub fn audit_filter(&self, query: &AuditQuery) -> BackendResult<AuditFilter> {
        let date = |text: &str, what: &str| -> BackendResult<Option<time::Date>> {
            match text.trim() {
                "" => Ok(None),
                t => {
                    time::Date::parse(t, time::macros::format_description!("[year]-[month]-[day]"))
                        .map(Some)
                        .map_err(|_| invalid(format!("The {what} date must look like 2026-01-31.")))
                }
            }
        };
        let day = |d: time::Date| d.to_string();
        let non_empty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let connection = match query.connection.trim() {
            "" => None,
            "none" => Some(ConnectionFilter::Unrecorded),
            id => Some(ConnectionFilter::Is(
                id.parse().map_err(|_| invalid("Unknown PSA connection."))?,
            )),
        };
        Ok(AuditFilter {
            organization_id: optional_id(&query.organization, "organization")?,
            connection,
            ticket: non_empty(&query.ticket),
            actor: non_empty(&query.technician),
            outcome: non_empty(&query.outcome),
            from: date(&query.from, "from")?.map(day),
            until: date(&query.to, "to")?.and_then(|d| d.next_day()).map(day),
            after_id: None,
            oldest_first: false,
            limit: AUDIT_LIMIT,
        })
    }

    /// Every audit entry matching `filter` as CSV, newest first, read from the database a
    /// page at a time and sent as it is written, so an export of any size is complete.
    pub fn audit_csv_stream(
        &self,
        filter: AuditFilter,
    ) -> tokio_stream::wrappers::ReceiverStream<Result<Vec<u8>, std::io::Error>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut filter = AuditFilter {
                limit: EXPORT_PAGE,
                oldest_first: false,
                after_id: None,
                ..filter
            };
            let mut chunk = audit_csv(&[], true);
            loop {
                let records = match (chunk, store.search_audit(&filter).await) {
                    (Ok(bytes), Ok(records)) => {
                        if tx.send(Ok(bytes)).await.is_err() {
                            return; // The download was cancelled.
                        }
                        records
                    }
                    (Err(e), _) => {
                        tracing::error!(error = %e, "audit export failed");
                        let _ = tx.send(Err(std::io::Error::other("csv"))).await;
                        return;
                    }
                    (_, Err(e)) => {
                        // The download ends unfinished rather than look complete.
                        tracing::error!(error = %e, "audit export failed");
                        let _ = tx.send(Err(std::io::Error::other("storage"))).await;
                        return;
                    }
                };
                let Some(last) = records.last().map(|r| r.id) else {
                    return;
                };
                let done = (records.len() as i64) < EXPORT_PAGE;
                let rows: Vec<AuditRow> = records.into_iter().map(audit_row).collect();
                chunk = audit_csv(&rows, false);
                filter.after_id = Some(last);
                if done {
                    if let Ok(bytes) = chunk {
                        let _ = tx.send(Ok(bytes)).await;
                    }
                    return;
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

pub fn audit_row(r: AuditRecord) -> AuditRow {
    let e = r.entry;
    AuditRow {
        id: r.id,
        at: e.at,
        actor: e.actor,
        action: e.action,
        organization: r.organization_name,
        connection_id: e.connection_id,
        connection: r.connection_name,
        ticket: e.ticket,
        contact: e.contact,
        duo_user: e.duo_user,
        outcome: e.outcome,
        txid: e.txid,
        detail: e.detail,
    }
}

/// The columns of the CSV export, in order. `connection` came last so existing columns kept
/// their places.
pub const AUDIT_CSV_HEADER: [&str; 12] = [
    "id",
    "at",
    "actor",
    "action",
    "organization",
    "ticket",
    "contact",
    "duo_user",
    "outcome",
    "txid",
    "detail",
    "connection",
];

/// A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab or carriage return
/// first) gets a leading `'`, so a contact named `=HYPERLINK(…)` stays text.
pub fn spreadsheet_text(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Audit entries as CSV, the header row first when `header`; every field is quoted as
/// needed and made inert for spreadsheets.
pub fn audit_csv(rows: &[AuditRow], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    if header {
        out.write_record(AUDIT_CSV_HEADER)?;
    }
    for r in rows {
        let opt = |v: &Option<String>| spreadsheet_text(v.as_deref().unwrap_or("")).into_owned();
        out.write_record([
            r.id.to_string(),
            spreadsheet_text(&r.at).into_owned(),
            spreadsheet_text(&r.actor).into_owned(),
            spreadsheet_text(&r.action).into_owned(),
            opt(&r.organization),
            opt(&r.ticket),
            opt(&r.contact),
            opt(&r.duo_user),
            opt(&r.outcome),
            opt(&r.txid),
            opt(&r.detail),
            opt(&r.connection),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

#[async_trait::async_trait]
impl AdminBackend for AdminService {
    async fn settings(&self, session: &Session) -> BackendResult<SettingsView> {
        self.require_admin(session).await?;
        let store = &self.store;
        let mut organizations = Vec::new();
        for org in store.organizations().await.map_err(internal)? {
            let duo = store
                .duo_account(org.id)
                .await
                .map_err(internal)?
                .as_ref()
                .map(duo::duo_view);
            let policy = store
                .policy_settings(Some(org.id))
                .await
                .map_err(internal)?;
            organizations.push(OrganizationView {
                id: org.id,
                name: org.name,
                duo,
                policy: policy_strings(serde_json::to_value(policy).map_err(internal)?),
            });
        }
        let mut connections = Vec::new();
        for row in store.psa_connections().await.map_err(internal)? {
            let spec = psa_kind(&row.kind);
            // A connection whose secrets no longer open (another master key) shows them as
            // not set, so the page still loads and they can be entered again.
            let secrets = self
                .connection_secrets(&row.secrets_sealed)
                .unwrap_or_default();
            let mut settings = BTreeMap::new();
            if let serde_json::Value::Object(map) = &row.settings {
                for (k, v) in map {
                    if let Some(s) = v.as_str() {
                        settings.insert(k.clone(), s.to_owned());
                    } else if let Some(n) = v.as_i64() {
                        settings.insert(k.clone(), n.to_string());
                    } else if let Some(list) = v.as_array() {
                        // Lists (pod origins) are edited as one field, separated by spaces.
                        let items: Vec<&str> = list.iter().filter_map(|i| i.as_str()).collect();
                        settings.insert(k.clone(), items.join(" "));
                    }
                }
            }
            let secret_names: Vec<String> = match spec {
                Some(spec) => spec
                    .fields
                    .iter()
                    .filter(|f| f.secret)
                    .map(|f| f.name.to_owned())
                    .collect(),
                None => secrets.keys().cloned().collect(),
            };
            let secrets_set = secret_names
                .into_iter()
                .map(|name| {
                    let set = secrets.get(&name).is_some_and(|v| !v.is_empty());
                    (name, set)
                })
                .collect();
            connections.push(ConnectionView {
                id: row.id,
                callback_url: self.hook_url(&row.kind, row.id),
                kind: row.kind,
                name: row.name,
                settings,
                secrets_set,
            });
        }
        let mappings = store
            .company_mappings()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|m| MappingView {
                connection_id: m.connection_id,
                connection_name: m.connection_name,
                company_id: m.psa_company_id,
                organization_id: m.organization_id,
                organization_name: m.organization_name,
            })
            .collect();
        let users = store
            .users()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|u| UserView {
                id: u.id,
                username: u.username,
                display_name: u.display_name,
                role: u.role.as_str().to_owned(),
                disabled: u.disabled,
            })
            .collect();
        let defaults = store.policy_settings(None).await.map_err(internal)?;
        Ok(SettingsView {
            organizations,
            connections,
            mappings,
            users,
            policy_defaults: policy_strings(serde_json::to_value(defaults).map_err(internal)?),
            policy_builtin: policy_strings(
                serde_json::to_value(&self.builtin_policy).map_err(internal)?,
            ),
        })
    }

    async fn save_organization(
        &self,
        session: &Session,
        id: &str,
        name: &str,
    ) -> BackendResult<FormReply> {
        let admin = self.require_admin(session).await?;
        let id = optional_id(id, "organization")?;
        let name = &stored_name(name);
        if name.is_empty() {
            return Ok(FormReply::field("name", "Enter a name."));
        }
        if let Some(problem) = name_problem(name) {
            return Ok(FormReply::field("name", problem));
        }
        let taken = self.store.organizations().await.map_err(internal)?;
        if taken
            .iter()
            .any(|o| Some(o.id) != id && same_name(&o.name, name))
        {
            return Ok(FormReply::field(
                "name",
                "An organization with this name already exists.",
            ));
        }
        let (action, detail) = match id {
            None => ("organization created", format!("name {name:?}")),
            Some(id) => {
                let old = self
                    .store
                    .organization(id)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| invalid("Unknown organization."))?;
                (
                    "organization renamed",
                    format!("from {:?} to {name:?}", old.name),
                )
            }
        };
        let audit = Self::change(&admin, action, id, detail);
        match self.store.save_organization(id, name, &audit).await {
            Ok(_) => Ok(FormReply::done(format!("Saved organization {name}."))),
            Err(StorageError::Conflict(_)) => Ok(FormReply::field(
                "name",
                "An organization with this name already exists.",
            )),
            Err(StorageError::NotFound(_)) => Err(invalid("Unknown organization.")),
            Err(e) => Err(internal(e)),
        }
    }

    async fn save_mapping(
        &self,
        session: &Session,
        connection_id: &str,
        company_id: &str,
        organization_id: &str,
    ) -> BackendResult<FormReply> {
        let admin = self.require_admin(session).await?;
        let mut reply = FormReply::default();
        let connection = match optional_id(connection_id, "PSA connection")? {
            Some(id) => self.store.psa_connection(id).await.map_err(internal)?,
            None => None,
        };
        let Some(connection) = connection else {
            return Ok(FormReply::field(
                "connection_id",
                "Choose a PSA connection.",
            ));
        };
        let company = company_id.trim();
        if company.is_empty() {
            reply
                .errors
                .insert("company_id".into(), "Enter the PSA's company id.".into());
        } else if !company.chars().all(|c| c.is_ascii_digit()) {
            // Every supported PSA names companies by a numeric record id.
            let product =
                PsaKind::parse(&connection.kind).map_or(connection.kind.as_str(), |k| k.product());
            reply.errors.insert(
                "company_id".into(),
                format!("A {product} company id is a number (the company's record id)."),
            );
        } else if company.len() > 64 {
            reply
                .errors
                .insert("company_id".into(), "At most 64 characters.".into());
        }
        let organization = match optional_id(organization_id, "organization")? {
            Some(id) => self.store.organization(id).await.map_err(internal)?,
            None => None,
        };
        if organization.is_none() {
            reply
                .errors
                .insert("organization_id".into(), "Choose an organization.".into());
        }
        let Some(organization) = organization.filter(|_| reply.ok()) else {
            return Ok(reply);
        };
        // A company mapped before is moved: the reply and the audit log name where it was.
        let previous = match self
            .store
            .organization_for_company(connection.id, company)
            .await
            .map_err(internal)?
        {
            Some(id) if id != organization.id => self
                .store
                .organization(id)
                .await
                .map_err(internal)?
                .map(|o| o.name),
            _ => None,
        };
        let detail = match &previous {
            Some(was) => format!(
                "{} company {company} from {was:?} to {:?}",
                connection.name, organization.name
            ),
            None => format!(
                "{} company {company} to {:?}",
                connection.name, organization.name
            ),
        };
        let mut audit = Self::change(&admin, "company mapped", Some(organization.id), detail);
        audit.connection_id = Some(connection.id);
        self.store
            .save_company_mapping(connection.id, company, organization.id, &audit)
            .await
            .map_err(internal)?;
        Ok(FormReply::done(match previous {
            Some(was) => format!(
                "Company {company} now belongs to {} (it belonged to {was}); its new tickets \
                 are verified with {}'s Duo account.",
                organization.name, organization.name
            ),
            None => format!("Company {company} now belongs to {}.", organization.name),
        }))
    }

    async fn remove_mapping(
        &self,
        session: &Session,
        connection_id: i64,
        company_id: &str,
    ) -> BackendResult<FormReply> {
        let admin = self.require_admin(session).await?;
        let connection = self
            .store
            .psa_connection(connection_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| invalid("Unknown PSA connection."))?;
        let company = company_id.trim();
        let not_mapped = || {
            invalid(format!(
                "Company {company} of {} is not mapped.",
                connection.name
            ))
        };
        let organization = match self
            .store
            .organization_for_company(connection.id, company)
            .await
            .map_err(internal)?
        {
            Some(id) => self.store.organization(id).await.map_err(internal)?,
            None => None,
        };
        let Some(organization) = organization else {
            return Err(not_mapped());
        };
        let mut audit = Self::change(
            &admin,
            "company unmapped",
            Some(organization.id),
            format!(
                "{} company {company} from {:?}",
                connection.name, organization.name
            ),
        );
        audit.connection_id = Some(connection.id);
        let removed = self
            .store
            .remove_company_mapping(connection.id, company, &audit)
            .await
            .map_err(internal)?;
        if removed.is_none() {
            // Removed by another admin since it was read.
            return Err(not_mapped());
        }
        Ok(FormReply::done(format!(
            "Company {company} of {} no longer belongs to {}; its new tickets get a note that \
             the company is not mapped.",
            connection.name, organization.name
        )))
    }

    async fn save_connection(
        &self,
        session: &Session,
        id: &str,
        kind: &str,
        name: &str,
        fields: &BTreeMap<String, String>,
    ) -> BackendResult<FormReply> {
        let admin = self.require_admin(session).await?;
        let id = optional_id(id, "PSA connection")?;
        let Some(spec) = psa_kind(kind) else {
            return Ok(FormReply::field("kind", "Choose a PSA kind."));
        };
        let mut reply = FormReply::default();
        let name = &stored_name(name);
        if name.is_empty() {
            reply
                .errors
                .insert("name".into(), "Enter a name for this connection.".into());
        } else if let Some(problem) = name_problem(name) {
            reply.errors.insert("name".into(), problem.into());
        } else if self
            .store
            .psa_connections()
            .await
            .map_err(internal)?
            .iter()
            .any(|c| Some(c.id) != id && same_name(&c.name, name))
        {
            reply.errors.insert(
                "name".into(),
                "A connection with this name already exists.".into(),
            );
        }
        let (existing, mut settings) = match id {
            Some(id) => {
                let row = self
                    .store
                    .psa_connection(id)
                    .await
                    .map_err(internal)?
                    .filter(|r| r.kind == spec.kind)
                    .ok_or_else(|| invalid("Unknown PSA connection."))?;
                // Settings the form does not send (e.g. stored by `deskproof setup`) are kept.
                let stored = match row.settings {
                    serde_json::Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                };
                // Secrets that no longer open must be entered again.
                let secrets = self
                    .connection_secrets(&row.secrets_sealed)
                    .unwrap_or_default();
                (secrets, stored)
            }
            None => (BTreeMap::new(), serde_json::Map::new()),
        };
        let mut secrets = existing.clone();
        let mut replaced = Vec::new();
        for f in spec.fields {
            if !f.secret && !fields.contains_key(f.name) && settings.contains_key(f.name) {
                continue; // Not in this form: the stored value stays.
            }
            settings.remove(f.name);
            let value = field(fields, f.name);
            if f.secret {
                if !value.is_empty() {
                    secrets.insert(f.name.to_owned(), value.to_owned());
                    replaced.push(f.name);
                } else if f.required && existing.get(f.name).is_none_or(|v| v.is_empty()) {
                    reply.errors.insert(
                        f.name.into(),
                        format!("Enter the {}.", f.label.to_lowercase()),
                    );
                }
                continue;
            }
            if value.is_empty() {
                if f.required {
                    reply.errors.insert(
                        f.name.into(),
                        format!("Enter the {}.", f.label.to_lowercase()),
                    );
                }
                continue;
            }
            if f.name == "pod_origins" {
                match parse_pod_origins(value) {
                    Ok(origins) => {
                        settings.insert(f.name.to_owned(), origins.into());
                    }
                    Err(e) => {
                        reply.errors.insert(f.name.into(), e);
                    }
                }
                continue;
            } else if f.name.ends_with("url") {
                let ok = url::Url::parse(value).is_ok_and(|u| crate::http::secure_or_local(&u));
                if !ok {
                    let example = f.help.strip_prefix("e.g. ").unwrap_or("https://…");
                    reply.errors.insert(
                        f.name.into(),
                        format!(
                            "Enter a full https URL, e.g. {example} (plain http only to this \
                             machine)"
                        ),
                    );
                    continue;
                }
            } else if f.name.ends_with("_id") && f.name.starts_with("pod_") {
                if value.parse::<i64>().map_or(true, |n| n <= 0) {
                    reply
                        .errors
                        .insert(f.name.into(), "Enter a positive number.".into());
                    continue;
                }
            } else if NUMBER_FIELDS.contains(&f.name) {
                // Stored as a JSON number, as the client configuration reads it.
                match value.parse::<i64>() {
                    Ok(n) if n > 0 => {
                        settings.insert(f.name.to_owned(), n.into());
                    }
                    _ => {
                        reply
                            .errors
                            .insert(f.name.into(), "Enter a positive number.".into());
                    }
                }
                continue;
            } else if !is_key_text(value) {
                reply.errors.insert(
                    f.name.into(),
                    "Use at most 100 printable characters without spaces.".into(),
                );
                continue;
            }
            settings.insert(f.name.to_owned(), value.into());
        }
        if !reply.ok() {
            return Ok(reply);
        }
        let settings = serde_json::Value::Object(settings);
        let secrets_json = serde_json::to_string(&secrets).map_err(internal)?;
        let Some(psa) = PsaKind::parse(spec.kind) else {
            return Ok(FormReply::field("kind", "Choose a PSA kind."));
        };
        // The same check as the setup file: the settings must make a client.
        if let Err(e) = check_connection(psa, &settings, &secrets_json) {
            let message = e.to_string();
            let field = spec
                .fields
                .iter()
                .find(|f| message.contains(f.name))
                .map_or("name", |f| f.name);
            return Ok(FormReply::field(field, message));
        }
        let detail = format!(
            "{} connection {name:?}; secrets replaced: {}",
            spec.label,
            if replaced.is_empty() {
                "none".to_owned()
            } else {
                replaced.join(", ")
            }
        );
        let action = if id.is_some() {
            "PSA connection updated"
        } else {
            "PSA connection created"
        };
        let mut audit = Self::change(&admin, action, None, detail);
        audit.connection_id = id;
        let conn = NewPsaConnection {
            kind: spec.kind.to_owned(),
            name: name.to_owned(),
            settings,
            secrets_sealed: self.key.seal(&secrets_json),
        };
        match self.store.save_psa_connection(id, &conn, &audit).await {
            Ok(id) => {
                self.webhook_checkers.forget(id);
                Ok(FormReply::done(if psa == PsaKind::ConnectWise {
                    format!("Saved {name}. Callback URL: {}", self.callback_url(id))
                } else {
                    format!(
                        "Saved {name}. Webhook URL to configure in {}: {}",
                        psa.product(),
                        self.hook_url(spec.kind, id)
                    )
                }))
            }
            Err(StorageError::Conflict(_)) => Ok(FormReply::field(
                "name",
                "A connection with this name already exists.",
            )),
            Err(StorageError::NotFound(_)) => Err(invalid("Unknown PSA connection.")),
            Err(e) => Err(internal(e)),
        }
    }

    async fn test_connection(&self, session: &Session, id: i64) -> BackendResult<TestReply> {
        self.require_admin(session).await?;
        let row = self
            .store
            .psa_connection(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| invalid("Unknown PSA connection."))?;
        let kind = PsaKind::parse(&row.kind)
            .ok_or_else(|| invalid(format!("Unsupported PSA kind {:?}.", row.kind)))?;
        if kind != PsaKind::ConnectWise {
            return self.test_other_connection(kind, &row).await;
        }
        let client = self.connectwise_client(id).await?;
        Ok(match client.list_callbacks().await {
            Ok(callbacks) => TestReply {
                ok: true,
                message: "Connected: ConnectWise accepted the API key.".into(),
                lines: vec![format!("{} callback(s) registered", callbacks.len())],
            },
            Err(e) => TestReply {
                ok: false,
                message: psa_failure("ConnectWise", &e),
                lines: Vec::new(),
            },
        })
    }

    async fn connect_psa(&self, session: &Session, id: i64) -> BackendResult<TestReply> {
        let admin = self.require_admin(session).await?;
        let client = self.connectwise_client(id).await?;
        let row = self
            .store
            .psa_connection(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| invalid("Unknown PSA connection."))?;
        let failed = |e: crate::psa::PsaError| TestReply {
            ok: false,
            message: psa_failure("ConnectWise", &e),
            lines: Vec::new(),
        };
        let callback_url = self.callback_url(id);
        let mut lines = Vec::new();
        let existing = match client.list_callbacks().await {
            Ok(list) => list.into_iter().find(|c| c.url == callback_url),
            Err(e) => return Ok(failed(e)),
        };
        match existing {
            Some(c) => lines.push(format!(
                "Ticket callback already registered (id {}): {callback_url}",
                c.id.unwrap_or_default()
            )),
            None => match client
                .register_ticket_callback(&callback_url, "deskproof ticket verification")
                .await
            {
                Ok(c) => lines.push(format!(
                    "Created ticket callback {}: {callback_url}",
                    c.id.unwrap_or_default()
                )),
                Err(e) => return Ok(failed(e)),
            },
        }
        let screen = row
            .settings
            .get("pod_screen_id")
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse::<i64>().ok());
        match screen {
            None => lines.push(
                "No pod registered: set the ticket screen id to add the deskproof pod.".into(),
            ),
            Some(screen_id) => {
                let pod_url = self.pod_url(id);
                let existing = match client.list_hosted_setups().await {
                    Ok(list) => list.into_iter().find(|s| s.url == pod_url),
                    Err(e) => return Ok(failed(e)),
                };
                match existing {
                    Some(s) => lines.push(format!(
                        "Pod already registered (id {}): {pod_url}",
                        s.id.unwrap_or_default()
                    )),
                    None => {
                        let origin = url::Url::parse(&self.public_url)
                            .map(|u| u.origin().ascii_serialization())
                            .unwrap_or_default();
                        let setup = HostedSetup {
                            id: None,
                            screen_id,
                            description: "deskproof".into(),
                            url: pod_url.clone(),
                            kind: "Pod".into(),
                            origin: Some(origin),
                            pod_height: Some(POD_HEIGHT),
                            disabled_flag: Some(false),
                        };
                        match client.register_hosted_setup(&setup).await {
                            Ok(s) => lines.push(format!(
                                "Created pod {} on screen {screen_id}: {pod_url}",
                                s.id.unwrap_or_default()
                            )),
                            Err(e) => return Ok(failed(e)),
                        }
                    }
                }
            }
        }
        let mut audit = Self::change(&admin, "ConnectWise connected", None, lines.join("; "));
        audit.connection_id = Some(id);
        self.store.append_audit(&audit).await.map_err(internal)?;
        Ok(TestReply {
            ok: true,
            message: format!("{} is connected.", row.name),
            lines,
        })
    }

    async fn save_duo(
        &self,
        session: &Session,
        organization_id: i64,
        fields: &BTreeMap<String, String>,
    ) -> BackendResult<FormReply> {
        let admin = self.require_admin(session).await?;
        let org = self
            .store
            .organization(organization_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| invalid("Unknown organization."))?;
        self.save_duo_form(&admin, organization_id, &org.name, fields)
            .await
    }

    async fn test_duo(&self, session: &Session, organization_id: i64) -> BackendResult<TestReply> {
        self.require_admin(session).await?;
        self.test_duo_account(organization_id).await
    }

    async fn list_duo_children(
        &self,
        session: &Session,
        organization_id: i64,
        fields: &BTreeMap<String, String>,
    ) -> BackendResult<DuoChildrenReply> {
        self.require_admin(session).await?;
        self.store
            .organization(organization_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| invalid("Unknown organization."))?;
        self.list_children(organization_id, fields).await
    }

    async fn save_policy(
        &self,
        session: &Session,
        organization_id: Option<i64>,
        fields: &BTreeMap<String, String>,
    ) -> BackendResult<FormReply> {
        let admin = self.require_admin(session).await?;
        let mut reply = FormReply::default();
        let mut values = serde_json::Map::new();
        for (name, _, _) in POLICY_FIELDS {
            let v = field(fields, name);
            if v.is_empty() {
                continue;
            }
            if *name == "pod_enabled" {
                match v.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "on" => values.insert((*name).into(), true.into()),
                    "no" | "false" | "off" => values.insert((*name).into(), false.into()),
                    _ => {
                        reply
                            .errors
                            .insert((*name).into(), "Choose yes or no.".into());
                        continue;
                    }
                };
                continue;
            }
            match v.parse::<i64>() {
                Ok(n) => {
                    values.insert((*name).into(), n.into());
                }
                Err(_) => {
                    reply
                        .errors
                        .insert((*name).into(), "Enter a whole number.".into());
                }
            }
        }
        // The numbers that parsed are checked against their ranges too, so every problem is
        // shown at once.
        let settings: PolicySettings =
            serde_json::from_value(serde_json::Value::Object(values)).map_err(internal)?;
        for e in settings.problems() {
            reply.errors.insert(
                e.field.into(),
                format!("Must be {}.", e.message.trim_start_matches("must be ")),
            );
        }
        if !reply.ok() {
            return Ok(reply);
        }
        let org_name = match organization_id {
            Some(id) => Some(
                self.store
                    .organization(id)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| invalid("Unknown organization."))?
                    .name,
            ),
            None => None,
        };
        let json = serde_json::to_string(&settings).map_err(internal)?;
        let audit = Self::change(
            &admin,
            if organization_id.is_some() {
                "organization policy saved"
            } else {
                "default policy saved"
            },
            organization_id,
            json,
        );
        self.store
            .save_policy_settings_audited(organization_id, &settings, &audit)
            .await
            .map_err(internal)?;
        Ok(FormReply::done(match org_name {
            Some(name) => format!("Saved the policy of {name}."),
            None => "Saved the default policy.".to_owned(),
        }))
    }

    async fn add_user(
        &self,
        session: &Session,
        fields: &BTreeMap<String, String>,
    ) -> BackendResult<FormReply> {
        let admin = self.require_admin(session).await?;
        let mut reply = FormReply::default();
        let username = match auth::validate_username(field(fields, "username")) {
            Ok(u) => u,
            Err(e) => {
                reply.errors.insert("username".into(), e.to_string());
                String::new()
            }
        };
        // The password is taken as typed: spaces at either end count.
        let password = fields.get("password").cloned().unwrap_or_default();
        if let Err(e) = auth::validate_password(&password) {
            reply.errors.insert("password".into(), e.to_string());
        }
        let role = Role::parse(field(fields, "role"));
        if role.is_none() {
            reply
                .errors
                .insert("role".into(), "Choose technician or admin.".into());
        }
        let display = field(fields, "display_name");
        if let Some(problem) = name_problem(display) {
            reply.errors.insert("display_name".into(), problem.into());
        }
        let Some(role) = role.filter(|_| reply.ok()) else {
            return Ok(reply);
        };
        let display_name = if display.is_empty() {
            username.clone()
        } else {
            display.to_owned()
        };
        let password_hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let audit = Self::change(
            &admin,
            "user added",
            None,
            format!("{} {username:?}", role.as_str()),
        );
        let user = NewUser {
            username: username.clone(),
            display_name,
            role,
            password_hash,
        };
        match self.store.create_user_audited(user, &audit).await {
            Ok(_) => Ok(FormReply::done(format!("Added {username}."))),
            Err(StorageError::Conflict(_)) => Ok(FormReply::field(
                "username",
                "A user with this username already exists.",
            )),
            Err(e) => Err(internal(e)),
        }
    }

    async fn set_user_disabled(
        &self,
        session: &Session,
        id: i64,
        disabled: bool,
    ) -> BackendResult<FormReply> {
        let admin = self.require_admin(session).await?;
        if admin.id == id && disabled {
            return Ok(FormReply::field(
                "disabled",
                "You cannot disable your own account.",
            ));
        }
        let user = self
            .store
            .user_by_id(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| invalid("Unknown user."))?;
        let action = if disabled {
            "user disabled"
        } else {
            "user enabled"
        };
        let audit = Self::change(&admin, action, None, format!("{:?}", user.username));
        self.store
            .update_user(id, Some(disabled), None, &audit)
            .await
            .map_err(internal)?;
        Ok(FormReply::done(format!(
            "{} is now {}.",
            user.username,
            if disabled { "disabled" } else { "enabled" }
        )))
    }

    async fn reset_password(
        &self,
        session: &Session,
        id: i64,
        password: &str,
    ) -> BackendResult<FormReply> {
        let admin = self.require_admin(session).await?;
        if let Err(e) = auth::validate_password(password) {
            return Ok(FormReply::field("password", e.to_string()));
        }
        let user = self
            .store
            .user_by_id(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| invalid("Unknown user."))?;
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let audit = Self::change(
            &admin,
            "password reset",
            None,
            format!("{:?}", user.username),
        );
        self.store
            .update_user(id, None, Some(&hash), &audit)
            .await
            .map_err(internal)?;
        let done = FormReply::done(format!("Set a new password for {}.", user.username));
        // The new password ends the user's other sessions; an admin setting their own stays
        // signed in here.
        if id == admin.id {
            let me = UserRecord {
                password_hash: hash,
                ..user
            };
            auth::begin_session(session, &me).await.map_err(internal)?;
        }
        Ok(done)
    }

    async fn audit(&self, session: &Session, query: &AuditQuery) -> BackendResult<AuditListing> {
        self.require_admin(session).await?;
        let filter = self.audit_filter(query)?;
        let rows: Vec<AuditRow> = self
            .store
            .search_audit(&filter)
            .await
            .map_err(internal)?
            .into_iter()
            .map(audit_row)
            .collect();
        // Counted only when the page is full: otherwise the rows are all there is.
        let total = if (rows.len() as i64) < filter.limit {
            rows.len() as i64
        } else {
            self.store.count_audit(&filter).await.map_err(internal)?
        };
        Ok(AuditListing {
            rows,
            total,
            limit: filter.limit,
        })
    }

    async fn ticket_timeline(
        &self,
        session: &Session,
        connection_id: Option<i64>,
        ticket: &str,
    ) -> BackendResult<Vec<AuditRow>> {
        self.require_admin(session).await?;
        let ticket = ticket.trim();
        if ticket.is_empty() {
            return Err(invalid("Which ticket?"));
        }
        let filter = AuditFilter {
            connection: Some(match connection_id {
                Some(id) => ConnectionFilter::Is(id),
                None => ConnectionFilter::Unrecorded,
            }),
            ticket: Some(ticket.to_owned()),
            oldest_first: true,
            limit: AUDIT_LIMIT,
            ..Default::default()
        };
        Ok(self
            .store
            .search_audit(&filter)
            .await
            .map_err(internal)?
            .into_iter()
            .map(audit_row)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_with_tabs_or_invisible_characters_are_refused() {
        assert_eq!(super::name_problem("Contoso Ltd. (Zürich)"), None);
        for bad in [
            "Con\ttoso",
            "Contoso\n",
            "Con\u{200B}toso",
            "\u{202E}osotnoC",
            "Con\u{FEFF}toso",
        ] {
            assert!(super::name_problem(bad).is_some(), "{bad:?}");
        }
        assert!(super::name_problem(&"x".repeat(101)).is_some());
    }

    use super::*;

    fn row(detail: &str) -> AuditRow {
        AuditRow {
            id: 7,
            at: "2026-01-02T03:04:05.678Z".into(),
            actor: "Ann \"the admin\" Lee".into(),
            action: "organization renamed".into(),
            organization: Some("Contoso, Ltd".into()),
            connection_id: None,
            connection: None,
            ticket: None,
            contact: None,
            duo_user: None,
            outcome: None,
            txid: None,
            detail: Some(detail.into()),
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let bytes = audit_csv(&[row("line one\nline two")], true).expect("csv");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(
            text.starts_with("id,at,actor,action,organization,"),
            "{text}"
        );
        assert!(text.contains(",\"Ann \"\"the admin\"\" Lee\","), "{text}");
        assert!(text.contains(",\"Contoso, Ltd\","), "{text}");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].get(2), Some("Ann \"the admin\" Lee"));
        assert_eq!(records[0].get(10), Some("line one\nline two"));
        assert_eq!(records[0].get(5), Some(""));
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_run_as_formulas_are_made_text() {
        let mut r = row("=1+1");
        r.contact = Some("=HYPERLINK(\"https://evil.example\",\"x\") Doe".into());
        r.actor = "+cmd".into();
        r.duo_user = Some("-2".into());
        r.txid = Some("@SUM(A1)".into());
        r.outcome = Some("\tapproved".into());
        r.organization = Some("\rContoso".into());
        r.ticket = Some("1234".into());
        let bytes = audit_csv(&[r], false).expect("csv");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice());
        let record = reader.records().next().expect("row").expect("record");
        assert_eq!(record.get(2), Some("'+cmd"));
        assert_eq!(record.get(4), Some("'\rContoso"));
        assert_eq!(record.get(5), Some("1234"));
        assert_eq!(
            record.get(6),
            Some("'=HYPERLINK(\"https://evil.example\",\"x\") Doe")
        );
        assert_eq!(record.get(7), Some("'-2"));
        assert_eq!(record.get(8), Some("'\tapproved"));
        assert_eq!(record.get(9), Some("'@SUM(A1)"));
        assert_eq!(record.get(10), Some("'=1+1"));
        assert_eq!(spreadsheet_text("Alex = Example"), "Alex = Example");
    }

    #[test]
    fn policy_values_read_as_form_text() {
        let map = policy_strings(serde_json::json!({"pod_enabled": false, "verified_minutes": 10}));
        assert_eq!(map.get("pod_enabled").map(String::as_str), Some("no"));
        assert_eq!(map.get("verified_minutes").map(String::as_str), Some("10"));
    }

    #[test]
    fn only_settings_and_audit_paths_are_admin_pages() {
        use crate::http::admin::is_admin_path;
        for p in [
            "/settings",
            "/settings/users",
            "/audit",
            "/audit/export.csv",
        ] {
            assert!(is_admin_path(p), "{p}");
        }
        for p in [
            "/",
            "/settingsx",
            "/auditor",
            "/verify/abc",
            "/api/admin/settings",
        ] {
            assert!(!is_admin_path(p), "{p}");
        }
    }
}
