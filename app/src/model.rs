//! Data shared between the server and the browser.
use serde::{Deserialize, Serialize};

/// What a signed-in person may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Technician,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Technician => "technician",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "technician" => Some(Role::Technician),
            _ => None,
        }
    }
}

/// The person behind the current session, as pages see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

/// A ticket as the verification page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationPage {
    pub ticket_id: String,
    pub summary: String,
    pub contact: String,
    pub organization: Option<String>,
    /// The Duo user the contact matches (masked), or why none does.
    pub matched: String,
    /// Why this ticket cannot be verified, when it cannot.
    pub problem: Option<String>,
    pub attempts: Vec<AttemptRow>,
    /// While an approval still counts: until when, e.g. `14:05 UTC`.
    #[serde(default)]
    pub verified_until: Option<String>,
    /// The code the contact's push carries, for the caller to read back.
    #[serde(default)]
    pub caller_code: Option<String>,
    /// When the link the page was opened with already sent a push: at what time. Such a link
    /// sends no other; a fresh link does.
    #[serde(default)]
    pub link_used: Option<String>,
}

/// One push a technician asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRow {
    pub id: i64,
    pub state: String,
    pub technician: String,
    pub duo_user: Option<String>,
    pub reason: Option<String>,
    pub created_at: String,
    /// For a push the policy refused: when the next one is allowed (RFC 3339, UTC); `None`
    /// when it never is on this ticket.
    #[serde(default)]
    pub next_push_at: Option<String>,
    /// While the push waits for an answer: the code it carries, for the caller to read back.
    #[serde(default)]
    pub caller_code: Option<String>,
    /// On the newest approval, while it counts: until when, e.g. `14:05 UTC`. No push is sent
    /// before then.
    #[serde(default)]
    pub verified_until: Option<String>,
}

impl AttemptRow {
    /// Still waiting for an answer from the contact.
    pub fn is_open(&self) -> bool {
        matches!(self.state.as_str(), "pushed" | "matching")
    }

    pub fn headline(&self) -> &'static str {
        match self.state.as_str() {
            "matching" => "Finding the Duo user…",
            "pushed" => "Waiting for the contact to approve the Duo Push…",
            "approved" => "Approved",
            "denied" => "Denied",
            "timed_out" => "Timed out",
            "fraud" => "Reported as fraud",
            "bypass" => "Not verified: Duo bypass",
            "locked_out" => "Not verified: user locked out",
            "refused" => "No push sent",
            _ => "Not verified",
        }
    }
}

// ConnectWise pod.

/// What the pod page needs before the ConnectWise handshake: where messages may come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodFrame {
    pub connection_id: i64,
    /// ConnectWise origins the pod accepts messages from and posts to; empty when none is set up.
    pub origins: Vec<String>,
}

/// The ticket as the pod shows it, and who is looking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodView {
    /// The ConnectWise member, as confirmed by ConnectWise.
    pub member: String,
    /// The ticket is still being read from ConnectWise; ask again shortly.
    pub reading: bool,
    pub page: VerificationPage,
}

/// A confirmed member on a checked ticket: the token for every further pod call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSession {
    pub token: String,
    pub view: PodView,
}
