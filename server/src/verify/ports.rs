//! What the flow needs from a PSA and from Duo, in the flow's own terms. The PSA and Duo
//! modules provide these; tests and the flow never depend on one vendor's wire format.
use std::sync::Arc;
use std::time::Duration;

use crate::verify::matching::{Candidate, Directory};

/// A failure talking to an outside system.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub message: String,
    /// A later try may work (rate limit, 5xx, network).
    pub retryable: bool,
    /// The remote system asked not to be called again before this (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl RemoteError {
    pub fn retryable(message: impl Into<String>) -> Self {
        RemoteError {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        RemoteError {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }
}

/// A ticket and its contact, as far as the PSA could provide them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TicketFacts {
    pub summary: Option<String>,
    pub company_id: Option<String>,
    pub company_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// The required pieces the PSA did not provide, in words for a note; empty when complete.
    pub missing: Vec<&'static str>,
    /// The contact's own company, when the PSA files the contact under another company than
    /// the ticket's.
    pub contact_company_elsewhere: Option<String>,
}

#[async_trait::async_trait]
pub trait TicketSource: Send + Sync {
    async fn ticket_facts(&self, ticket_id: &str) -> Result<TicketFacts, RemoteError>;
    /// Writes an internal note; returns the PSA's id of the note.
    async fn post_internal_note(&self, ticket_id: &str, text: &str) -> Result<String, RemoteError>;
    /// The PSA's id of the ticket's note containing `marker`, if there is one and the PSA can
    /// list notes.
    async fn find_note(&self, ticket_id: &str, marker: &str)
        -> Result<Option<String>, RemoteError>;
}

/// What Duo said before a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preauth {
    /// A push can be sent.
    Push,
    /// Duo would let the user in without a push (bypass, trusted network): proves nothing.
    Allow,
    Deny(String),
    NotEnrolled,
    NoPushDevice,
}

/// How the code the caller reads back reaches their phone; one setting per Duo account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CallerCodeVia {
    /// deskproof's six-digit code in the details of the Auth API push, which carries the
    /// ticket text.
    #[default]
    PushDetails,
    /// Duo's confirmation code in an Admin API verification push (Duo's own text, not the
    /// ticket's). Needs the Admin API's "Grant write resource" permission.
    VerificationPush,
}

impl CallerCodeVia {
    pub fn as_str(self) -> &'static str {
        match self {
            CallerCodeVia::PushDetails => "push_details",
            CallerCodeVia::VerificationPush => "verification_push",
        }
    }

    pub fn parse(text: &str) -> Option<CallerCodeVia> {
        match text {
            "push_details" => Some(CallerCodeVia::PushDetails),
            "verification_push" => Some(CallerCodeVia::VerificationPush),
            _ => None,
        }
    }
}

/// A verification push Duo accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerificationPushSent {
    pub push_id: String,
    /// Duo's confirmation code, shown in the push.
    pub confirmation_code: String,
}

/// Why no verification push was sent.
#[derive(Clone, Debug, thiserror::Error)]
pub enum VerificationPushError {
    /// Duo refused the call for lack of permission (403 / 40301): nothing reached the phone,
    /// so the Auth API push may be sent instead.
    #[error("{0}")]
    NotPermitted(String),
    /// The user has no activated phone that can receive a push.
    #[error("the Duo user has no activated phone that can receive a push")]
    NoPushPhone,
    /// The user is not in the directory any more.
    #[error("the matched Duo user no longer exists")]
    UnknownUser,
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushStatus {
    Waiting,
    Approved,
    Denied,
    Fraud,
    Bypass,
    LockedOut,
    TimedOut,
    /// Any other final answer, with Duo's words.
    Failed(String),
}

#[async_trait::async_trait]
pub trait DuoGateway: Send + Sync {
    /// Every user of the account (paged through by the implementation, or a kept copy).
    async fn directory(&self) -> Result<Arc<Directory>, RemoteError>;
    /// After a lookup in [`DuoGateway::directory`] found nobody: a newer listing, or `None`
    /// when the directory was already current.
    async fn directory_after_miss(&self) -> Result<Option<Arc<Directory>>, RemoteError> {
        Ok(None)
    }
    /// True when [`DuoGateway::directory`] answers from a kept copy that may be minutes old.
    fn cached(&self) -> bool {
        false
    }
    /// One user, read fresh.
    async fn user(&self, user_id: &str) -> Result<Option<Candidate>, RemoteError>;
    async fn preauth(&self, username: &str) -> Result<Preauth, RemoteError>;
    /// Starts an asynchronous push; returns the transaction id.
    async fn push(&self, username: &str, text: &str) -> Result<String, RemoteError>;
    /// Like [`DuoGateway::push`], with key/value details shown in the push (e.g. the code the
    /// caller reads back). Gateways that cannot show details send the plain push.
    async fn push_with_details(
        &self,
        username: &str,
        text: &str,
        details: &[(String, String)],
    ) -> Result<String, RemoteError> {
        let _ = details;
        self.push(username, text).await
    }
    /// One long-poll of a push's status.
    async fn status(&self, txid: &str) -> Result<PushStatus, RemoteError>;
    /// How this account's pushes carry the code the caller reads back.
    fn caller_code_via(&self) -> CallerCodeVia;
    /// Sends an Admin API verification push to the user's activated, push-capable phone
    /// (read fresh from the directory). Never retried once it may have reached the phone.
    async fn verification_push(
        &self,
        user_id: &str,
    ) -> Result<VerificationPushSent, VerificationPushError>;
    /// Waits a while for a verification push's answer; `TimedOut` once Duo no longer has it.
    async fn verification_status(
        &self,
        user_id: &str,
        push_id: &str,
    ) -> Result<PushStatus, RemoteError>;
}

/// Builds clients from stored settings.
#[async_trait::async_trait]
pub trait Clients: Send + Sync {
    async fn ticket_source(&self, connection_id: i64)
        -> Result<Arc<dyn TicketSource>, RemoteError>;
    async fn duo(&self, organization_id: i64) -> Result<Arc<dyn DuoGateway>, RemoteError>;
}
