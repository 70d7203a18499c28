//! ConnectWise REST payloads, read tolerantly: every field the service does not need is ignored
//! and most of the ones it does need may be absent.
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::psa::{CompanyId, Contact, ContactId, Ticket, TicketId};

/// `{id, identifier, name}`: how ConnectWise points at another record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CwReference {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// The `_info` block: metadata ConnectWise adds to every record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CwInfo {
    #[serde(default)]
    pub date_entered: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
}

/// `GET /service/tickets/{id}`. The contact's e-mail and phone on the ticket are not read: the
/// service takes them from the contact record only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CwTicket {
    pub id: i64,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub record_type: Option<String>,
    #[serde(default)]
    pub company: Option<CwReference>,
    #[serde(default)]
    pub contact: Option<CwReference>,
    #[serde(default)]
    pub contact_name: Option<String>,
    #[serde(default)]
    pub closed_flag: Option<bool>,
    #[serde(default, rename = "_info")]
    pub info: Option<CwInfo>,
}

impl CwTicket {
    pub fn into_ticket(self) -> Ticket {
        let company = self.company.unwrap_or_default();
        let contact = self.contact.unwrap_or_default();
        Ticket {
            id: TicketId(self.id),
            summary: self.summary.unwrap_or_default(),
            company_id: company.id.map(CompanyId),
            company_name: company.name.or(company.identifier),
            contact_id: contact.id.map(ContactId),
            contact_name_hint: self.contact_name.or(contact.name),
        }
    }
}

/// `GET /company/contacts/{id}`. `communicationItems` is kept as raw JSON because its entry
/// shape is not confirmed; see [`primary_email`].
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CwContact {
    pub id: i64,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub company: Option<CwReference>,
    #[serde(default)]
    pub inactive_flag: Option<bool>,
    #[serde(default)]
    pub communication_items: Option<Value>,
}

impl fmt::Debug for CwContact {
    // communicationItems hold e-mail addresses and phone numbers: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CwContact")
            .field("id", &self.id)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("company", &self.company)
            .finish_non_exhaustive()
    }
}

impl CwContact {
    pub fn into_contact(self) -> Contact {
        let email = self.communication_items.as_ref().and_then(primary_email);
        Contact {
            id: ContactId(self.id),
            first_name: self.first_name,
            last_name: self.last_name,
            email,
            company_id: self.company.and_then(|c| c.id).map(CompanyId),
        }
    }
}

/// Whether one `communicationItems` entry is an e-mail address. The documented field is
/// `communicationType: "Email"`; when it is absent, the type's name (`type.name` or a plain
/// `type` string) is used instead.
fn is_email_item(item: &Value) -> bool {
    let says_email = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("email"))
    };
    match item.get("communicationType") {
        Some(Value::String(_)) => says_email(item.get("communicationType")),
        _ => {
            let ty = item.get("type");
            says_email(ty) || says_email(ty.and_then(|t| t.get("name")))
        }
    }
}

/// The contact's e-mail address from `communicationItems`: the default e-mail entry when there
/// is one, else the first. Entries that are not objects, or have no usable value, are skipped.
pub fn primary_email(items: &Value) -> Option<String> {
    let items = items.as_array()?;
    let emails: Vec<(&str, bool)> = items
        .iter()
        .filter(|item| is_email_item(item))
        .filter_map(|item| {
            let value = item.get("value")?.as_str()?.trim();
            let default = item
                .get("defaultFlag")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (!value.is_empty() && value.contains('@')).then_some((value, default))
        })
        .collect();
    emails
        .iter()
        .find(|(_, default)| *default)
        .or_else(|| emails.first())
        .map(|(value, _)| (*value).to_owned())
}

/// A ticket note as returned by `POST /service/tickets/{id}/notes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CwNote {
    pub id: i64,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub ticket_id: Option<i64>,
    #[serde(default)]
    pub internal_analysis_flag: Option<bool>,
}

/// The body of an internal note: visible to technicians only, and no e-mail goes out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalNoteRequest<'a> {
    pub text: &'a str,
    pub internal_analysis_flag: bool,
    pub detail_description_flag: bool,
    pub resolution_flag: bool,
    pub process_notifications: bool,
}

impl<'a> InternalNoteRequest<'a> {
    pub fn new(text: &'a str) -> Self {
        InternalNoteRequest {
            text,
            internal_analysis_flag: true,
            detail_description_flag: false,
            resolution_flag: false,
            process_notifications: false,
        }
    }
}

/// `GET /system/myMembers/info`: the member the credentials belong to.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    #[serde(default)]
    pub id: Option<i64>,
    pub identifier: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
}

/// A callback registration (`/system/callbacks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub url: String,
    pub object_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub level: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_flag: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_self_suppressed_flag: Option<bool>,
}

impl CallbackEntry {
    /// A callback for every ticket of the tenant. ConnectWise appends the record id to `url`
    /// as it is, so a URL ending in `?recordId=` keeps the path intact.
    pub fn all_tickets(url: impl Into<String>, description: impl Into<String>) -> Self {
        CallbackEntry {
            id: None,
            url: url.into(),
            object_id: 1,
            kind: "ticket".into(),
            level: "owner".into(),
            description: Some(description.into()),
            member_id: None,
            payload_version: Some("3.0.0".into()),
            inactive_flag: Some(false),
            is_self_suppressed_flag: Some(false),
        }
    }
}

/// The height in pixels of the pod deskproof registers (Manage Hosted API `podHeight`); the
/// pod's layout is made to fit it.
pub const POD_HEIGHT: i64 = 320;

/// A Manage Hosted API entry (`/system/connectwisehostedsetups`): a pod or tab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedSetup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// From the ConnectWiseHostedApiScreen report; the service ticket screen for deskproof.
    pub screen_id: i64,
    pub description: String,
    pub url: String,
    /// `Pod` or `Tab`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_height: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_flag: Option<bool>,
}

/// ConnectWise's error body: `{"code": …, "message": …, "errors": [{code, message, field}]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub errors: Option<Vec<ApiFieldError>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiFieldError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
}

impl ApiError {
    /// One line for an error message: the code, the message and each field error.
    pub fn summary(&self) -> String {
        let mut out = match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "no error details".to_owned(),
        };
        for e in self.errors.iter().flatten() {
            out.push_str("; ");
            if let Some(field) = &e.field {
                out.push_str(field);
                out.push_str(": ");
            }
            out.push_str(
                e.message
                    .as_deref()
                    .or(e.code.as_deref())
                    .unwrap_or("invalid"),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TICKET: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/psa-payloads/connectwise-ticket.json"
    ));
    const CONTACT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/psa-payloads/connectwise-contact.json"
    ));

    #[test]
    fn the_ticket_fixture_becomes_a_normalized_ticket() {
        let t: CwTicket = serde_json::from_str(TICKET).unwrap();
        let t = t.into_ticket();
        assert_eq!(t.id, TicketId(1234));
        assert_eq!(t.summary, "Password reset for Alex Example");
        assert_eq!(t.company_id, Some(CompanyId(250)));
        assert_eq!(t.company_name.as_deref(), Some("Contoso"));
        assert_eq!(t.contact_id, Some(ContactId(4321)));
        assert_eq!(t.contact_name_hint.as_deref(), Some("Alex Example"));
    }

    #[test]
    fn the_contact_fixture_yields_the_default_email() {
        let c: CwContact = serde_json::from_str(CONTACT).unwrap();
        let c = c.into_contact();
        assert_eq!(c.first_name.as_deref(), Some("Alex"));
        assert_eq!(c.last_name.as_deref(), Some("Example"));
        assert_eq!(c.email.as_deref(), Some("alex.example@contoso.example"));
        assert_eq!(c.company_id, Some(CompanyId(250)));
    }

    #[test]
    fn the_default_email_wins_over_an_earlier_one() {
        let items = json!([
            {"communicationType": "Email", "value": "old@contoso.example", "defaultFlag": false},
            {"communicationType": "Phone", "value": "555", "defaultFlag": true},
            {"communicationType": "Email", "value": "new@contoso.example", "defaultFlag": true}
        ]);
        assert_eq!(
            primary_email(&items).as_deref(),
            Some("new@contoso.example")
        );
    }

    #[test]
    fn other_communication_item_shapes_are_read_tolerantly() {
        // No communicationType: the type's name decides; a plain string type is accepted too.
        let by_type_name = json!([{"type": {"id": 1, "name": "Email"}, "value": "a@b.example"}]);
        assert_eq!(primary_email(&by_type_name).as_deref(), Some("a@b.example"));
        let by_type_string = json!([{"type": "email", "value": "c@d.example"}]);
        assert_eq!(
            primary_email(&by_type_string).as_deref(),
            Some("c@d.example")
        );
        // Junk entries, missing values and non-addresses are skipped, not errors.
        let junk = json!([42, null, {"communicationType": "Email"},
                          {"communicationType": "Email", "value": "not an address"},
                          {"communicationType": "Email", "value": 7}]);
        assert_eq!(primary_email(&junk), None);
        assert_eq!(primary_email(&json!({"not": "a list"})), None);
    }

    #[test]
    fn a_contact_without_communication_items_has_no_email() {
        let c: CwContact = serde_json::from_value(json!({"id": 5, "firstName": "A"})).unwrap();
        let c = c.into_contact();
        assert_eq!(c.email, None);
        assert_eq!(c.last_name, None);
    }

    #[test]
    fn the_internal_note_body_never_notifies_the_customer() {
        let body = serde_json::to_value(InternalNoteRequest::new("hi")).unwrap();
        assert_eq!(
            body,
            json!({"text": "hi", "internalAnalysisFlag": true, "detailDescriptionFlag": false,
                   "resolutionFlag": false, "processNotifications": false})
        );
    }
}
