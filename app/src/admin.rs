//! Administration: the data the settings and audit pages show, and their server functions.
//! Every function here is for admins only; anyone else gets 403.
use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One input of a form that depends on the PSA kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub label: &'static str,
    /// Sealed before storage and never shown again.
    pub secret: bool,
    pub required: bool,
    pub help: &'static str,
}

/// A PSA deskproof can connect to, and the fields its connection form asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PsaKindSpec {
    pub kind: &'static str,
    pub label: &'static str,
    pub fields: &'static [FieldSpec],
    /// Whether the one-click setup (callback and pod registration) is available.
    pub one_click_connect: bool,
}

const CONNECTWISE_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "base_url",
        label: "API base URL",
        secret: false,
        required: true,
        help: "e.g. https://api-na.myconnectwise.net/v4_6_release/apis/3.0",
    },
    FieldSpec {
        name: "company_id",
        label: "Company id",
        secret: false,
        required: true,
        help: "The company id you sign in to ConnectWise with.",
    },
    FieldSpec {
        name: "public_key",
        label: "Public key",
        secret: false,
        required: true,
        help: "API member public key.",
    },
    FieldSpec {
        name: "private_key",
        label: "Private key",
        secret: true,
        required: true,
        help: "API member private key.",
    },
    FieldSpec {
        name: "client_id",
        label: "Client id",
        secret: false,
        required: true,
        help: "From developer.connectwise.com. ConnectWise signs callbacks with its own \
               published key, so no callback secret is needed.",
    },
    FieldSpec {
        name: "pod_screen_id",
        label: "Ticket screen id (pod)",
        secret: false,
        required: false,
        help: "Optional: the service ticket screen from the ConnectWiseHostedApiScreen \
               report. Connect registers the deskproof pod on it.",
    },
    FieldSpec {
        name: "pod_origins",
        label: "ConnectWise addresses (pod)",
        secret: false,
        required: false,
        help: "For the pod: the addresses technicians open ConnectWise at, e.g. \
               https://na.myconnectwise.net, separated by spaces. Only these may show the pod.",
    },
];

const AUTOTASK_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "username",
        label: "API user name",
        secret: false,
        required: true,
        help: "The e-mail address of an API-only user (Admin > Resources/Users).",
    },
    FieldSpec {
        name: "secret",
        label: "API user secret",
        secret: true,
        required: true,
        help: "The secret of that API user.",
    },
    FieldSpec {
        name: "integration_code",
        label: "Tracking identifier",
        secret: false,
        required: true,
        help: "The API tracking identifier (integration code) of the API user.",
    },
    FieldSpec {
        name: "webhook_secret",
        label: "Webhook secret key",
        secret: true,
        required: true,
        help: "The SecretKey of the ticket webhook; deskproof checks its signature with it.",
    },
    FieldSpec {
        name: "zone_lookup_url",
        label: "Zone lookup URL",
        secret: false,
        required: false,
        help: "Optional: leave blank for Autotask's public zoneInformation endpoint.",
    },
    FieldSpec {
        name: "note_type",
        label: "Note type",
        secret: false,
        required: false,
        help: "Optional: the noteType picklist value of written notes (default 1).",
    },
];

const FRESHDESK_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "base_url",
        label: "Helpdesk URL",
        secret: false,
        required: true,
        help: "e.g. https://contoso.freshdesk.com",
    },
    FieldSpec {
        name: "api_key",
        label: "API key",
        secret: true,
        required: true,
        help: "An agent's API key (Profile settings > View API key).",
    },
    FieldSpec {
        name: "webhook_secret",
        label: "Webhook secret",
        secret: true,
        required: true,
        help: "The value the automation rule's webhook sends in its header.",
    },
    FieldSpec {
        name: "webhook_header",
        label: "Webhook header",
        secret: false,
        required: false,
        help: "Optional: the header carrying the secret (default X-Webhook-Token).",
    },
];

const HALOPSA_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "auth_url",
        label: "Authorisation server URL",
        secret: false,
        required: true,
        help: "e.g. https://contoso.halopsa.com/auth",
    },
    FieldSpec {
        name: "api_url",
        label: "Resource server URL",
        secret: false,
        required: true,
        help: "e.g. https://contoso.halopsa.com/api",
    },
    FieldSpec {
        name: "tenant",
        label: "Tenant",
        secret: false,
        required: false,
        help: "Optional: hosted tenants only.",
    },
    FieldSpec {
        name: "client_id",
        label: "Client id",
        secret: false,
        required: true,
        help: "Of the API application (Client ID and Secret (Services) authentication).",
    },
    FieldSpec {
        name: "client_secret",
        label: "Client secret",
        secret: true,
        required: true,
        help: "Of the same API application.",
    },
    FieldSpec {
        name: "webhook_username",
        label: "Webhook user name",
        secret: false,
        required: false,
        help: "Optional: set when the webhook uses Basic authentication; blank means Bearer.",
    },
    FieldSpec {
        name: "webhook_secret",
        label: "Webhook secret",
        secret: true,
        required: true,
        help: "The webhook's password (Basic) or token (Bearer).",
    },
];

/// Every PSA kind the connection page offers. A new kind adds one entry here and one arm
/// where the server builds its client.
pub const PSA_KINDS: &[PsaKindSpec] = &[
    PsaKindSpec {
        kind: "connectwise",
        label: "ConnectWise PSA",
        fields: CONNECTWISE_FIELDS,
        one_click_connect: true,
    },
    PsaKindSpec {
        kind: "autotask",
        label: "Datto Autotask",
        fields: AUTOTASK_FIELDS,
        one_click_connect: false,
    },
    PsaKindSpec {
        kind: "freshdesk",
        label: "Freshdesk",
        fields: FRESHDESK_FIELDS,
        one_click_connect: false,
    },
    PsaKindSpec {
        kind: "halopsa",
        label: "HaloPSA",
        fields: HALOPSA_FIELDS,
        one_click_connect: false,
    },
];

pub fn psa_kind(kind: &str) -> Option<&'static PsaKindSpec> {
    PSA_KINDS.iter().find(|k| k.kind == kind)
}

/// A policy setting as the policy form shows it: name, label, unit.
pub const POLICY_FIELDS: &[(&str, &str, &str)] = &[
    ("push_timeout_secs", "Push time-out", "seconds"),
    ("link_lifetime_hours", "Link lifetime", "hours"),
    ("pod_enabled", "Verify in the ConnectWise pod", "yes / no"),
    ("pushes_per_contact", "Pushes per contact", "per window"),
    ("contact_window_minutes", "Contact window", "minutes"),
    ("pushes_per_ticket", "Pushes per ticket", "ever"),
    (
        "pushes_per_technician",
        "Pushes per technician",
        "per window",
    ),
    ("technician_window_minutes", "Technician window", "minutes"),
    ("deny_cooldown_minutes", "Cool-down after a deny", "minutes"),
    ("fraud_lock_hours", "Lock after a fraud report", "hours"),
    ("verified_minutes", "Approval counts for", "minutes"),
];

/// The answer to a save: the error of each field by name, or what was done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormReply {
    pub errors: BTreeMap<String, String>,
    pub message: Option<String>,
}

impl FormReply {
    pub fn done(message: impl Into<String>) -> FormReply {
        FormReply {
            errors: BTreeMap::new(),
            message: Some(message.into()),
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> FormReply {
        let mut reply = FormReply::default();
        reply.errors.insert(field.to_owned(), message.into());
        reply
    }

    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The answer to a Test or Connect button.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReply {
    pub ok: bool,
    pub message: String,
    /// Details, one line each (e.g. what was created).
    pub lines: Vec<String>,
}

/// How an organization's Duo users are read: the form's choices, value and label.
pub const DUO_DIRECTORY_CHOICES: &[(&str, &str)] = &[
    ("admin_api", "Direct Admin API keys"),
    ("accounts_api", "MSP parent (Accounts API)"),
];

/// How the code the caller reads back reaches their phone: the form's choices.
pub const CALLER_CODE_CHOICES: &[(&str, &str)] = &[
    (
        "push_details",
        "In the push details (deskproof's code, with the ticket text)",
    ),
    (
        "verification_push",
        "Duo verification push (Duo's confirmation code)",
    ),
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoView {
    /// The Auth API host (for an MSP child: the child's API hostname).
    pub api_host: String,
    pub auth_ikey: String,
    pub admin_ikey: String,
    /// Secret keys are never sent back; only whether they are stored.
    pub auth_skey_set: bool,
    pub admin_skey_set: bool,
    /// One of [`DUO_DIRECTORY_CHOICES`].
    pub directory: String,
    /// The MSP parent's API hostname and Accounts API integration key, when used.
    pub accounts_api_host: String,
    pub accounts_ikey: String,
    pub accounts_skey_set: bool,
    /// The MSP child account in use, as Duo listed it.
    pub child: Option<DuoChildView>,
    /// One of [`CALLER_CODE_CHOICES`].
    pub caller_code: String,
}

/// A child account of an MSP parent, as Duo's account list gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoChildView {
    pub account_id: String,
    pub name: String,
    pub api_hostname: String,
}

/// The answer to "List child accounts": the accounts, or what is wrong with the keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoChildrenReply {
    /// The error of each field by name (`_form` for the whole form).
    pub errors: BTreeMap<String, String>,
    pub children: Vec<DuoChildView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationView {
    pub id: i64,
    pub name: String,
    pub duo: Option<DuoView>,
    /// The organization's own policy values by field; absent fields inherit.
    pub policy: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    pub id: i64,
    pub kind: String,
    pub name: String,
    /// Non-secret fields with their values.
    pub settings: BTreeMap<String, String>,
    /// Secret fields: whether each is set.
    pub secrets_set: BTreeMap<String, bool>,
    /// Where the PSA should deliver ticket callbacks (ConnectWise) or webhooks (other kinds).
    pub callback_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingView {
    pub connection_id: i64,
    pub connection_name: String,
    pub company_id: String,
    pub organization_id: i64,
    pub organization_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub disabled: bool,
}

/// Everything the settings pages show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsView {
    pub organizations: Vec<OrganizationView>,
    pub connections: Vec<ConnectionView>,
    pub mappings: Vec<MappingView>,
    pub users: Vec<UserView>,
    /// Deployment-wide policy values that were set.
    pub policy_defaults: BTreeMap<String, String>,
    /// The policy in force when nothing is set, by field.
    pub policy_builtin: BTreeMap<String, String>,
}

/// Filters of the audit log page; empty strings do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub organization: String,
    /// A PSA connection id, or `none` for entries recorded before the connection was noted.
    #[serde(default)]
    pub connection: String,
    #[serde(default)]
    pub ticket: String,
    #[serde(default)]
    pub technician: String,
    #[serde(default)]
    pub outcome: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    pub from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    pub to: String,
}

impl AuditQuery {
    /// The query string of these filters, for links and the CSV export.
    pub fn to_query_string(&self) -> String {
        [
            ("organization", &self.organization),
            ("connection", &self.connection),
            ("ticket", &self.ticket),
            ("technician", &self.technician),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", encode_component(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn encode_component(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub organization: Option<String>,
    /// The PSA connection of the ticket, when the entry recorded it.
    pub connection_id: Option<i64>,
    pub connection: Option<String>,
    pub ticket: Option<String>,
    pub contact: Option<String>,
    pub duo_user: Option<String>,
    pub outcome: Option<String>,
    pub txid: Option<String>,
    pub detail: Option<String>,
}

impl AuditRow {
    /// Where this entry's ticket timeline is: per connection, since ticket numbers repeat
    /// across PSAs; entries that did not record their connection share one timeline per
    /// ticket number.
    pub fn timeline_path(&self) -> Option<String> {
        let ticket = encode_component(self.ticket.as_deref()?);
        Some(match self.connection_id {
            Some(c) => format!("/audit/ticket/{c}/{ticket}"),
            None => format!("/audit/ticket/{ticket}"),
        })
    }
}

/// The audit log as the page shows it: the newest entries matching the filters, at most
/// `limit`, and how many match in all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditListing {
    pub rows: Vec<AuditRow>,
    pub total: i64,
    pub limit: i64,
}

impl AuditListing {
    /// Whether more entries match than are shown.
    pub fn truncated(&self) -> bool {
        self.total > self.rows.len() as i64
    }
}

#[cfg(feature = "ssr")]
pub use server::*;

#[cfg(feature = "ssr")]
mod server {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use tower_sessions::Session;

    use super::{
        AuditListing, AuditQuery, AuditRow, DuoChildrenReply, FormReply, SettingsView, TestReply,
    };
    use crate::backend::BackendResult;

    /// The server's side of the administration server functions. Each method checks that the
    /// session belongs to an enabled admin first.
    #[async_trait::async_trait]
    pub trait AdminBackend: Send + Sync + 'static {
        async fn settings(&self, session: &Session) -> BackendResult<SettingsView>;
        /// Creates (`id` empty) or renames an organization.
        async fn save_organization(
            &self,
            session: &Session,
            id: &str,
            name: &str,
        ) -> BackendResult<FormReply>;
        async fn save_mapping(
            &self,
            session: &Session,
            connection_id: &str,
            company_id: &str,
            organization_id: &str,
        ) -> BackendResult<FormReply>;
        /// Removes a company's mapping: its new tickets are no longer verified.
        async fn remove_mapping(
            &self,
            session: &Session,
            connection_id: i64,
            company_id: &str,
        ) -> BackendResult<FormReply>;
        /// Creates (`id` empty) or updates a PSA connection. Blank secret fields of an existing
        /// connection keep their stored value.
        async fn save_connection(
            &self,
            session: &Session,
            id: &str,
            kind: &str,
            name: &str,
            fields: &BTreeMap<String, String>,
        ) -> BackendResult<FormReply>;
        async fn test_connection(&self, session: &Session, id: i64) -> BackendResult<TestReply>;
        /// Registers the ticket callback and the hosted pod in the PSA.
        async fn connect_psa(&self, session: &Session, id: i64) -> BackendResult<TestReply>;
        /// Saves an organization's Duo keys. Blank secret keys keep their stored value.
        async fn save_duo(
            &self,
            session: &Session,
            organization_id: i64,
            fields: &BTreeMap<String, String>,
        ) -> BackendResult<FormReply>;
        async fn test_duo(
            &self,
            session: &Session,
            organization_id: i64,
        ) -> BackendResult<TestReply>;
        /// Lists the child accounts an MSP parent's Accounts API keys reach. A blank secret key
        /// uses the stored one.
        async fn list_duo_children(
            &self,
            session: &Session,
            organization_id: i64,
            fields: &BTreeMap<String, String>,
        ) -> BackendResult<DuoChildrenReply>;
        /// Saves the policy of an organization, or the defaults when `organization_id` is
        /// `None`. Blank fields inherit.
        async fn save_policy(
            &self,
            session: &Session,
            organization_id: Option<i64>,
            fields: &BTreeMap<String, String>,
        ) -> BackendResult<FormReply>;
        async fn add_user(
            &self,
            session: &Session,
            fields: &BTreeMap<String, String>,
        ) -> BackendResult<FormReply>;
        async fn set_user_disabled(
            &self,
            session: &Session,
            id: i64,
            disabled: bool,
        ) -> BackendResult<FormReply>;
        async fn reset_password(
            &self,
            session: &Session,
            id: i64,
            password: &str,
        ) -> BackendResult<FormReply>;
        async fn audit(&self, session: &Session, query: &AuditQuery)
            -> BackendResult<AuditListing>;
        /// Every entry about one ticket of one PSA connection, oldest first; with
        /// `connection_id` `None`, the entries about that ticket number that did not record
        /// their connection.
        async fn ticket_timeline(
            &self,
            session: &Session,
            connection_id: Option<i64>,
            ticket: &str,
        ) -> BackendResult<Vec<AuditRow>>;
    }

    pub type SharedAdminBackend = Arc<dyn AdminBackend>;

    /// The admin backend and session of the request being served.
    pub async fn admin_context(
    ) -> Result<(SharedAdminBackend, Session), leptos::prelude::ServerFnError> {
        use leptos::prelude::*;
        let backend = use_context::<SharedAdminBackend>()
            .ok_or_else(|| ServerFnError::new("server is missing its admin backend"))?;
        let session: Session = leptos_axum::extract().await?;
        Ok((backend, session))
    }

    /// Turns a backend error into a server function error with the matching HTTP status.
    pub fn admin_error(e: crate::backend::BackendError) -> leptos::prelude::ServerFnError {
        use crate::backend::BackendError;
        let status = match e {
            BackendError::Unauthenticated => Some(http::StatusCode::UNAUTHORIZED),
            BackendError::Forbidden => Some(http::StatusCode::FORBIDDEN),
            BackendError::Invalid(_) => Some(http::StatusCode::BAD_REQUEST),
            BackendError::Internal => None,
        };
        if let (Some(status), Some(response)) = (
            status,
            leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        ) {
            response.set_status(status);
        }
        e.into()
    }
}

#[cfg(feature = "ssr")]
macro_rules! admin_call {
    (| $b:ident, $s:ident | $body:expr) => {{
        let ($b, $s) = admin_context().await?;
        $body.await.map_err(admin_error)
    }};
}

#[server(prefix = "/api", endpoint = "admin/settings")]
pub async fn admin_settings() -> Result<SettingsView, ServerFnError> {
    admin_call!(|b, s| b.settings(&s))
}

#[server(prefix = "/api", endpoint = "admin/save_organization")]
pub async fn save_organization(id: String, name: String) -> Result<FormReply, ServerFnError> {
    admin_call!(|b, s| b.save_organization(&s, &id, &name))
}

#[server(prefix = "/api", endpoint = "admin/save_mapping")]
pub async fn save_mapping(
    connection_id: String,
    company_id: String,
    organization_id: String,
) -> Result<FormReply, ServerFnError> {
    admin_call!(|b, s| b.save_mapping(&s, &connection_id, &company_id, &organization_id))
}

#[server(prefix = "/api", endpoint = "admin/remove_mapping")]
pub async fn remove_mapping(
    connection_id: i64,
    company_id: String,
) -> Result<FormReply, ServerFnError> {
    admin_call!(|b, s| b.remove_mapping(&s, connection_id, &company_id))
}

#[server(prefix = "/api", endpoint = "admin/save_connection")]
pub async fn save_connection(
    id: String,
    kind: String,
    name: String,
    #[server(default)] fields: BTreeMap<String, String>,
) -> Result<FormReply, ServerFnError> {
    admin_call!(|b, s| b.save_connection(&s, &id, &kind, &name, &fields))
}

#[server(prefix = "/api", endpoint = "admin/test_connection")]
pub async fn test_connection(id: i64) -> Result<TestReply, ServerFnError> {
    admin_call!(|b, s| b.test_connection(&s, id))
}

#[server(prefix = "/api", endpoint = "admin/connect_psa")]
pub async fn connect_psa(id: i64) -> Result<TestReply, ServerFnError> {
    admin_call!(|b, s| b.connect_psa(&s, id))
}

#[server(prefix = "/api", endpoint = "admin/save_duo")]
pub async fn save_duo(
    organization_id: i64,
    #[server(default)] fields: BTreeMap<String, String>,
) -> Result<FormReply, ServerFnError> {
    admin_call!(|b, s| b.save_duo(&s, organization_id, &fields))
}

#[server(prefix = "/api", endpoint = "admin/test_duo")]
pub async fn test_duo(organization_id: i64) -> Result<TestReply, ServerFnError> {
    admin_call!(|b, s| b.test_duo(&s, organization_id))
}

#[server(prefix = "/api", endpoint = "admin/list_duo_children")]
pub async fn list_duo_children(
    organization_id: i64,
    #[server(default)] fields: BTreeMap<String, String>,
) -> Result<DuoChildrenReply, ServerFnError> {
    admin_call!(|b, s| b.list_duo_children(&s, organization_id, &fields))
}

/// `organization_id` empty saves the deployment-wide defaults.
#[server(prefix = "/api", endpoint = "admin/save_policy")]
pub async fn save_policy(
    organization_id: String,
    #[server(default)] fields: BTreeMap<String, String>,
) -> Result<FormReply, ServerFnError> {
    let org = match organization_id.trim() {
        "" => None,
        id => Some(
            id.parse::<i64>()
                .map_err(|_| ServerFnError::new("unknown organization"))?,
        ),
    };
    admin_call!(|b, s| b.save_policy(&s, org, &fields))
}

#[server(prefix = "/api", endpoint = "admin/add_user")]
pub async fn add_user(
    #[server(default)] fields: BTreeMap<String, String>,
) -> Result<FormReply, ServerFnError> {
    admin_call!(|b, s| b.add_user(&s, &fields))
}

#[server(prefix = "/api", endpoint = "admin/set_user_disabled")]
pub async fn set_user_disabled(id: i64, disabled: bool) -> Result<FormReply, ServerFnError> {
    admin_call!(|b, s| b.set_user_disabled(&s, id, disabled))
}

#[server(prefix = "/api", endpoint = "admin/reset_password")]
pub async fn reset_password(id: i64, password: String) -> Result<FormReply, ServerFnError> {
    admin_call!(|b, s| b.reset_password(&s, id, &password))
}

#[server(prefix = "/api", endpoint = "admin/audit")]
pub async fn audit_log(
    #[server(default)] query: AuditQuery,
) -> Result<AuditListing, ServerFnError> {
    admin_call!(|b, s| b.audit(&s, &query))
}

/// `connection` empty: the entries that did not record their PSA connection.
#[server(prefix = "/api", endpoint = "admin/ticket_timeline")]
pub async fn ticket_timeline(
    #[server(default)] connection: String,
    ticket: String,
) -> Result<Vec<AuditRow>, ServerFnError> {
    let connection = match connection.trim() {
        "" => None,
        id => Some(
            id.parse::<i64>()
                .map_err(|_| ServerFnError::new("unknown PSA connection"))?,
        ),
    };
    admin_call!(|b, s| b.ticket_timeline(&s, connection, &ticket))
}
