//! PSA systems: tickets, contacts, internal notes and inbound webhooks.
//!
//! Each PSA lives in its own module and implements [`Psa`]. The verification flow only sees the
//! normalized types here: a [`Ticket`], its [`Contact`], and the [`NormalizedTicket`] built from
//! both by [`normalize`], or the list of [`MissingField`]s that stopped it.
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::telemetry::mask_email;

pub mod autotask;
pub mod connectwise;
pub mod freshdesk;
pub mod halopsa;
pub mod http;
pub mod inbound;
pub mod names;
pub mod source;

pub use inbound::{Inbound, InboundRequest, WebhookError};
pub use source::ticket_source;

/// Which PSA a ticket comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PsaKind {
    ConnectWise,
    Autotask,
    Freshdesk,
    HaloPsa,
}

impl PsaKind {
    /// A stable lower-case name, used in logs, configuration and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            PsaKind::ConnectWise => "connectwise",
            PsaKind::Autotask => "autotask",
            PsaKind::Freshdesk => "freshdesk",
            PsaKind::HaloPsa => "halopsa",
        }
    }

    /// Every supported PSA.
    pub const ALL: [PsaKind; 4] = [
        PsaKind::ConnectWise,
        PsaKind::Autotask,
        PsaKind::Freshdesk,
        PsaKind::HaloPsa,
    ];

    /// The kind named by [`PsaKind::as_str`].
    pub fn parse(name: &str) -> Option<PsaKind> {
        PsaKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the PSA can host deskproof inside its ticket screen (the ConnectWise pod).
    pub fn has_pod(self) -> bool {
        self == PsaKind::ConnectWise
    }

    /// The product name, for people.
    pub fn product(self) -> &'static str {
        match self {
            PsaKind::ConnectWise => "ConnectWise",
            PsaKind::Autotask => "Autotask",
            PsaKind::Freshdesk => "Freshdesk",
            PsaKind::HaloPsa => "HaloPSA",
        }
    }
}

impl fmt::Display for PsaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// All four supported PSAs use integer record ids (Freshdesk's exceed 32 bits, hence
        /// `i64`); see `psa-apis.md` §1.3, §2.3, §3.2 and §4.2.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse().map($name)
            }
        }
    };
}

id_newtype!(
    /// A ticket's id in its PSA.
    TicketId
);
id_newtype!(
    /// A customer company's id in the PSA (not the PSA tenant).
    CompanyId
);
id_newtype!(
    /// A contact's (end user's) id in the PSA.
    ContactId
);
id_newtype!(
    /// The id of a note written to a ticket.
    NoteId
);

/// A ticket as read from a PSA, before anything is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: TicketId,
    pub summary: String,
    pub company_id: Option<CompanyId>,
    pub company_name: Option<String>,
    pub contact_id: Option<ContactId>,
    /// The contact's display name as the ticket shows it; only a hint, never used to identify.
    pub contact_name_hint: Option<String>,
}

/// A contact as read from a PSA.
#[derive(Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// The company the PSA files the contact under, where the contact record says so
    /// (ConnectWise, Autotask); `None` where it does not.
    pub company_id: Option<CompanyId>,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("email", &self.email.as_deref().map(mask_email))
            .field("company_id", &self.company_id)
            .finish()
    }
}

/// The company the ticket's contact belongs to, when the PSA says it is another company than
/// the ticket's. Such a ticket is not verified: the push would go through the ticket company's
/// Duo account to someone who only shares the contact's name, or an attacker who can open
/// tickets for one client could have a push sent to another client's employee.
pub fn contact_of_other_company(ticket: &Ticket, contact: Option<&Contact>) -> Option<CompanyId> {
    let contact = contact.filter(|c| ticket.contact_id == Some(c.id))?;
    match (ticket.company_id, contact.company_id) {
        (Some(ticket_company), Some(own)) if own != ticket_company => Some(own),
        _ => None,
    }
}

/// A required piece of a ticket that was missing or blank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingField {
    Contact,
    FirstName,
    LastName,
    Company,
    Summary,
}

impl MissingField {
    /// Words for a note a technician reads.
    pub fn label(self) -> &'static str {
        match self {
            MissingField::Contact => "contact",
            MissingField::FirstName => "contact first name",
            MissingField::LastName => "contact last name",
            MissingField::Company => "company",
            MissingField::Summary => "summary",
        }
    }
}

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Every required field a ticket lacks, in a fixed order, never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ticket is missing: {}", self.labels())]
pub struct MissingFields(pub Vec<MissingField>);

impl MissingFields {
    pub fn fields(&self) -> &[MissingField] {
        &self.0
    }

    /// `contact last name, company`, for a note.
    pub fn labels(&self) -> String {
        self.0
            .iter()
            .map(|m| m.label())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A ticket with everything the verification needs, each value non-blank and trimmed.
#[derive(Clone, PartialEq, Eq)]
pub struct NormalizedTicket {
    pub ticket_id: TicketId,
    pub summary: String,
    pub company_id: CompanyId,
    pub first_name: String,
    pub last_name: String,
    /// Not required: some contacts are matched to a Duo user by name alone.
    pub email: Option<String>,
}

impl fmt::Debug for NormalizedTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NormalizedTicket")
            .field("ticket_id", &self.ticket_id)
            .field("summary", &self.summary)
            .field("company_id", &self.company_id)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("email", &self.email.as_deref().map(mask_email))
            .finish()
    }
}

fn non_blank(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Checks a ticket and its contact (`None` when the ticket has none, or it could not be found)
/// and returns either the normalized ticket or every missing field at once, so one note can
/// name them all.
pub fn normalize(
    ticket: &Ticket,
    contact: Option<&Contact>,
) -> Result<NormalizedTicket, MissingFields> {
    let mut missing = Vec::new();
    // A contact whose id does not match the ticket's is treated as absent.
    let contact = contact.filter(|c| ticket.contact_id == Some(c.id));
    if ticket.contact_id.is_none() || contact.is_none() {
        missing.push(MissingField::Contact);
    }
    let first_name = contact.and_then(|c| non_blank(c.first_name.as_deref()));
    let last_name = contact.and_then(|c| non_blank(c.last_name.as_deref()));
    if contact.is_some() && first_name.is_none() {
        missing.push(MissingField::FirstName);
    }
    if contact.is_some() && last_name.is_none() {
        missing.push(MissingField::LastName);
    }
    if ticket.company_id.is_none() {
        missing.push(MissingField::Company);
    }
    let summary = non_blank(Some(&ticket.summary));
    if summary.is_none() {
        missing.push(MissingField::Summary);
    }
    match (first_name, last_name, ticket.company_id, summary) {
        (Some(first_name), Some(last_name), Some(company_id), Some(summary))
            if missing.is_empty() =>
        {
            Ok(NormalizedTicket {
                ticket_id: ticket.id,
                summary,
                company_id,
                first_name,
                last_name,
                email: contact.and_then(|c| non_blank(c.email.as_deref())),
            })
        }
        _ => Err(MissingFields(missing)),
    }
}

/// What went wrong talking to a PSA, in terms the flow can act on.
#[derive(Debug, thiserror::Error)]
pub enum PsaError {
    #[error("the PSA rejected the API credentials")]
    Unauthorized,
    #[error("the PSA refused access to this record")]
    Forbidden,
    #[error("{what} was not found in the PSA")]
    NotFound { what: String },
    #[error("the PSA is rate limiting requests (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the PSA answered with server error {status}")]
    Server { status: u16 },
    #[error("the PSA rejected the request with {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("could not reach the PSA")]
    Transport(#[source] reqwest::Error),
    #[error("could not read the PSA's answer: {0}")]
    Decode(String),
    #[error("PSA configuration is invalid: {0}")]
    Config(String),
}

impl PsaError {
    /// Whether trying the same request again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PsaError::RateLimited { .. } => true,
            PsaError::Server { status } => matches!(status, 500 | 502 | 503 | 504),
            PsaError::Transport(e) => e.is_timeout() || e.is_connect() || e.is_request(),
            _ => false,
        }
    }

    /// How long the PSA asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PsaError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// The ticket, its contact when it has one, and the outcome of [`normalize`].
#[derive(Debug, Clone)]
pub struct LoadedTicket {
    pub ticket: Ticket,
    pub contact: Option<Contact>,
    pub normalized: Result<NormalizedTicket, MissingFields>,
}

/// A PSA as the verification flow uses it.
#[async_trait::async_trait]
pub trait Psa: Send + Sync {
    fn kind(&self) -> PsaKind;

    async fn fetch_ticket(&self, id: TicketId) -> Result<Ticket, PsaError>;

    async fn fetch_contact(&self, id: ContactId) -> Result<Contact, PsaError>;

    /// Writes a note only technicians can see, with no notification sent to anyone.
    async fn post_internal_note(&self, ticket: TicketId, text: &str) -> Result<NoteId, PsaError>;

    /// The ticket's note whose text contains `marker`. Used to tell whether a post that was
    /// cut short reached the PSA; `None` means "post it". Every supported PSA lists notes;
    /// the default, for one that could not, always posts again.
    async fn find_note(&self, ticket: TicketId, marker: &str) -> Result<Option<NoteId>, PsaError> {
        let _ = (ticket, marker);
        Ok(None)
    }

    /// Checks that an inbound webhook really comes from this PSA tenant and says what it asks
    /// for. The delivery is only a hint: the ticket is read through the API afterwards.
    async fn check_webhook(&self, request: &InboundRequest<'_>) -> Result<Inbound, WebhookError>;

    /// Every ticket created after `since`, read through all pages, for the scheduled sweep.
    async fn tickets_created_since(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<TicketId>, PsaError>;

    /// Reads the ticket and its contact and normalizes them. A contact the PSA no longer has
    /// counts as a missing contact, not as an error.
    async fn load_ticket(&self, id: TicketId) -> Result<LoadedTicket, PsaError> {
        let ticket = self.fetch_ticket(id).await?;
        let contact = match ticket.contact_id {
            Some(contact_id) => match self.fetch_contact(contact_id).await {
                Ok(contact) => Some(contact),
                Err(PsaError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let normalized = normalize(&ticket, contact.as_ref());
        Ok(LoadedTicket {
            ticket,
            contact,
            normalized,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            id: TicketId(1234),
            summary: "Password reset".into(),
            company_id: Some(CompanyId(250)),
            company_name: Some("Contoso".into()),
            contact_id: Some(ContactId(4321)),
            contact_name_hint: Some("Alex Example".into()),
        }
    }

    fn contact() -> Contact {
        Contact {
            id: ContactId(4321),
            first_name: Some("Alex".into()),
            last_name: Some("Example".into()),
            email: Some("alex.example@contoso.example".into()),
            company_id: Some(CompanyId(250)),
        }
    }

    #[test]
    fn a_complete_ticket_normalizes() {
        let n = normalize(&ticket(), Some(&contact())).unwrap();
        assert_eq!(n.first_name, "Alex");
        assert_eq!(n.last_name, "Example");
        assert_eq!(n.company_id, CompanyId(250));
        assert_eq!(n.email.as_deref(), Some("alex.example@contoso.example"));
    }

    #[test]
    fn a_ticket_without_a_contact_reports_only_the_contact() {
        let mut t = ticket();
        t.contact_id = None;
        let err = normalize(&t, None).unwrap_err();
        assert_eq!(err.fields(), &[MissingField::Contact]);
    }

    #[test]
    fn a_contact_without_a_last_name_reports_the_last_name() {
        let mut c = contact();
        c.last_name = Some("   ".into());
        let err = normalize(&ticket(), Some(&c)).unwrap_err();
        assert_eq!(err.fields(), &[MissingField::LastName]);
        assert_eq!(err.labels(), "contact last name");
    }

    #[test]
    fn a_ticket_without_a_company_reports_the_company() {
        let mut t = ticket();
        t.company_id = None;
        let err = normalize(&t, Some(&contact())).unwrap_err();
        assert_eq!(err.fields(), &[MissingField::Company]);
    }

    #[test]
    fn every_missing_field_is_reported_at_once() {
        let t = Ticket {
            summary: "".into(),
            company_id: None,
            ..ticket()
        };
        let c = Contact {
            first_name: None,
            last_name: None,
            ..contact()
        };
        let err = normalize(&t, Some(&c)).unwrap_err();
        assert_eq!(
            err.fields(),
            &[
                MissingField::FirstName,
                MissingField::LastName,
                MissingField::Company,
                MissingField::Summary
            ]
        );
    }

    #[test]
    fn a_contact_for_another_id_counts_as_missing() {
        let c = Contact {
            id: ContactId(1),
            ..contact()
        };
        let err = normalize(&ticket(), Some(&c)).unwrap_err();
        assert_eq!(err.fields(), &[MissingField::Contact]);
    }

    #[test]
    fn a_contact_filed_under_another_company_is_named() {
        let c = Contact {
            company_id: Some(CompanyId(251)),
            ..contact()
        };
        assert_eq!(
            contact_of_other_company(&ticket(), Some(&c)),
            Some(CompanyId(251))
        );
    }

    #[test]
    fn a_contact_of_the_tickets_company_or_of_no_known_company_is_not_flagged() {
        let unknown = Contact {
            company_id: None,
            ..contact()
        };
        let no_ticket_company = Ticket {
            company_id: None,
            ..ticket()
        };
        let someone_else = Contact {
            id: ContactId(1),
            company_id: Some(CompanyId(251)),
            ..contact()
        };

        assert_eq!(contact_of_other_company(&ticket(), Some(&contact())), None);
        assert_eq!(contact_of_other_company(&ticket(), Some(&unknown)), None);
        assert_eq!(contact_of_other_company(&ticket(), None), None);
        assert_eq!(
            contact_of_other_company(&no_ticket_company, Some(&contact())),
            None
        );
        assert_eq!(
            contact_of_other_company(&ticket(), Some(&someone_else)),
            None
        );
    }

    #[test]
    fn debug_output_masks_the_email() {
        let shown = format!("{:?}", contact());
        assert!(!shown.contains("alex.example@"));
        assert!(shown.contains("a***@contoso.example"));
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(PsaError::Server { status: 503 }.is_retryable());
        assert!(PsaError::RateLimited { retry_after: None }.is_retryable());
        assert!(!PsaError::Unauthorized.is_retryable());
        assert!(!PsaError::NotFound {
            what: "ticket 1".into()
        }
        .is_retryable());
    }
}
