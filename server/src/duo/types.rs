//! Typed values of the Duo Auth, Admin and Accounts APIs, and what they mean for a verification.
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }
    };
}

id_type!(
    /// Duo's permanent user ID, e.g. `DU439XKOX2W6LMYHWLEV`.
    DuoUserId
);
id_type!(
    /// The transaction ID of an asynchronous push.
    TxId
);
id_type!(
    /// A device ID from preauth (`DP…`), or `auto`.
    DeviceId
);
id_type!(
    /// A child account under an MSP parent (Accounts API).
    AccountId
);
id_type!(
    /// An Admin API verification push (`push_id`).
    VerificationPushId
);

/// Personal data that must never appear in logs: `Debug` shows only the last two characters.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Masked(pub String);

impl Masked {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Masked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail: String = {
            let chars: Vec<char> = self.0.chars().collect();
            let start = chars.len().saturating_sub(2);
            chars[start..].iter().collect()
        };
        write!(f, "\"***{tail}\"")
    }
}

/// A device as listed by preauth.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Device {
    pub device: DeviceId,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub number: Option<Masked>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl Device {
    pub fn can_push(&self) -> bool {
        self.capabilities.iter().any(|c| c == "push")
    }
}

/// The answer of `POST /auth/v2/preauth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreauthResult {
    /// A second factor is required; these devices can provide it.
    Auth {
        devices: Vec<Device>,
        status_msg: String,
    },
    /// Duo would let the user in without any push (bypass, trusted network…): proves nothing.
    Allow { status_msg: String },
    /// Duo denies the user (disabled, locked out, or by policy).
    Deny { status_msg: String },
    /// The user has no usable enrollment (or is unknown and must enroll).
    Enroll {
        status_msg: String,
        enroll_portal_url: Option<String>,
    },
}

/// Why no push is sent to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushRefusal {
    /// Enrolled, but no device with the `push` capability.
    NoPushDevice,
    /// Not enrolled (or unknown to Duo, which answers the same way).
    NotEnrolled,
    /// Duo denies this user at preauth and its message does not say locked out.
    Disabled { status_msg: String },
    /// Duo denies this user at preauth and its message says locked out.
    LockedOut { status_msg: String },
    /// Duo would allow the user without a push (bypass status, remembered device, policy):
    /// a verification cannot rest on that.
    WouldNotPush { status_msg: String },
}

impl PreauthResult {
    /// The device to push to, or why there is none.
    ///
    /// Limitation: Duo's preauth `deny` does not say whether the user is disabled or locked
    /// out; we read that from `status_msg` (UNCONFIRMED wording). Both refuse the push anyway.
    pub fn push_device(&self) -> Result<&Device, PushRefusal> {
        match self {
            PreauthResult::Auth { devices, .. } => devices
                .iter()
                .find(|d| d.can_push())
                .ok_or(PushRefusal::NoPushDevice),
            PreauthResult::Allow { status_msg } => Err(PushRefusal::WouldNotPush {
                status_msg: status_msg.clone(),
            }),
            PreauthResult::Deny { status_msg } => {
                if status_msg.to_ascii_lowercase().contains("locked") {
                    Err(PushRefusal::LockedOut {
                        status_msg: status_msg.clone(),
                    })
                } else {
                    Err(PushRefusal::Disabled {
                        status_msg: status_msg.clone(),
                    })
                }
            }
            PreauthResult::Enroll { .. } => Err(PushRefusal::NotEnrolled),
        }
    }
}

/// The final outcome of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushOutcome {
    /// `result=allow` and `status=allow`: the only outcome that verifies anyone.
    Approved,
    Denied,
    /// The user reported the push as fraudulent: a security event.
    Fraud,
    /// `allow`/`bypass`: no push reached a device. Never a verification.
    Bypass,
    LockedOut,
    TimedOut,
}

impl PushOutcome {
    pub fn is_verified(self) -> bool {
        self == PushOutcome::Approved
    }
}

/// One answer of `GET /auth/v2/auth_status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AuthStatus {
    pub result: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub status_msg: String,
}

impl AuthStatus {
    /// The final outcome, or `None` while the push is still pending.
    ///
    /// `timeout` may come with `result` `waiting` or `deny` depending on the source; both end
    /// the transaction. An unknown `deny` status counts as denied; an unknown `allow` status is
    /// never treated as approval.
    pub fn outcome(&self) -> Option<PushOutcome> {
        match (self.result.as_str(), self.status.as_str()) {
            (_, "timeout") => Some(PushOutcome::TimedOut),
            ("allow", "allow") => Some(PushOutcome::Approved),
            ("allow", _) => Some(PushOutcome::Bypass),
            ("deny", "fraud") => Some(PushOutcome::Fraud),
            ("deny", "locked_out") => Some(PushOutcome::LockedOut),
            ("deny", _) => Some(PushOutcome::Denied),
            ("waiting", _) => None,
            // Anything undocumented: stop rather than poll forever, and never approve.
            _ => Some(PushOutcome::Denied),
        }
    }
}

/// What to show in the push.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushRequest {
    pub username: String,
    /// Device ID from preauth; `None` means `auto`.
    pub device: Option<DeviceId>,
    /// Shown after "Verify request"; e.g. "deskproof ticket check".
    pub type_text: Option<String>,
    pub display_username: Option<String>,
    /// Key/value context, URL-encoded into `pushinfo` by the client.
    pub pushinfo: Vec<(String, String)>,
}

/// A phone as listed by the Admin API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Phone {
    #[serde(default)]
    pub phone_id: String,
    #[serde(default)]
    pub number: Masked,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub activated: bool,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl Phone {
    pub fn can_push(&self) -> bool {
        self.activated && self.capabilities.iter().any(|c| c == "push")
    }
}

/// A user's Duo status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Bypass,
    Disabled,
    #[serde(rename = "locked out")]
    LockedOut,
    #[serde(rename = "pending deletion")]
    PendingDeletion,
    #[serde(untagged)]
    Other(String),
}

/// A user as listed by the Admin API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DuoUser {
    pub user_id: DuoUserId,
    pub username: String,
    #[serde(default)]
    pub realname: Option<String>,
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub lastname: Option<String>,
    #[serde(default)]
    pub email: Option<Masked>,
    pub status: UserStatus,
    #[serde(default)]
    pub is_enrolled: bool,
    /// `alias1`…`alias4` as Duo returns them in `aliases`.
    #[serde(default)]
    pub aliases: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub phones: Vec<Phone>,
}

impl DuoUser {
    pub fn has_push_phone(&self) -> bool {
        self.phones.iter().any(Phone::can_push)
    }

    /// The phone a verification push goes to: the first one that is activated and can push.
    pub fn verification_phone(&self) -> Option<&Phone> {
        self.phones.iter().find(|p| p.can_push())
    }
}

/// Duo's text or number as a string: the type of `push_id` and `confirmation_code` in the
/// verification push answers is not documented, so both are accepted.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

/// The answer of `POST /admin/v1/users/{user_id}/send_verification_push`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct VerificationPush {
    #[serde(deserialize_with = "string_or_number_id")]
    pub push_id: VerificationPushId,
    /// Shown in the push, for the technician to have the caller read it back.
    #[serde(deserialize_with = "string_or_number")]
    pub confirmation_code: String,
}

fn string_or_number_id<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<VerificationPushId, D::Error> {
    string_or_number(d).map(VerificationPushId)
}

/// `result` of `GET /admin/v1/users/{user_id}/verification_push_response`. These are not the
/// Auth API's values (`approve`, not `allow`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationResult {
    Approve,
    Deny,
    Fraud,
    Waiting,
    /// Anything undocumented.
    #[serde(other)]
    Unknown,
}

impl VerificationResult {
    /// The final outcome, or `None` while the user has not answered. An unknown result ends
    /// the push and is never an approval.
    pub fn outcome(&self) -> Option<PushOutcome> {
        match self {
            VerificationResult::Approve => Some(PushOutcome::Approved),
            VerificationResult::Deny | VerificationResult::Unknown => Some(PushOutcome::Denied),
            VerificationResult::Fraud => Some(PushOutcome::Fraud),
            VerificationResult::Waiting => None,
        }
    }
}

/// A child account of an MSP parent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChildAccount {
    pub account_id: AccountId,
    pub name: String,
    pub api_hostname: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(result: &str, status: &str) -> AuthStatus {
        AuthStatus {
            result: result.into(),
            status: status.into(),
            status_msg: String::new(),
        }
    }

    #[test]
    fn only_allow_allow_is_approved() {
        assert_eq!(
            status("allow", "allow").outcome(),
            Some(PushOutcome::Approved)
        );
        assert_eq!(
            status("allow", "bypass").outcome(),
            Some(PushOutcome::Bypass)
        );
        assert_eq!(
            status("allow", "weird").outcome(),
            Some(PushOutcome::Bypass)
        );
        assert_eq!(
            status("bogus", "allow").outcome(),
            Some(PushOutcome::Denied)
        );
    }

    #[test]
    fn timeout_is_final_whether_it_comes_with_waiting_or_deny() {
        assert_eq!(
            status("waiting", "timeout").outcome(),
            Some(PushOutcome::TimedOut)
        );
        assert_eq!(
            status("deny", "timeout").outcome(),
            Some(PushOutcome::TimedOut)
        );
        assert_eq!(status("waiting", "pushed").outcome(), None);
    }

    #[test]
    fn deny_statuses_map_to_their_outcomes() {
        assert_eq!(status("deny", "deny").outcome(), Some(PushOutcome::Denied));
        assert_eq!(status("deny", "fraud").outcome(), Some(PushOutcome::Fraud));
        assert_eq!(
            status("deny", "locked_out").outcome(),
            Some(PushOutcome::LockedOut)
        );
    }

    #[test]
    fn verification_push_answers_decode_with_text_or_numbers() {
        let text: VerificationPush =
            serde_json::from_str(r#"{"push_id":"abc-1","confirmation_code":"482913"}"#).unwrap();
        assert_eq!(text.push_id.as_str(), "abc-1");
        assert_eq!(text.confirmation_code, "482913");
        let numbers: VerificationPush =
            serde_json::from_str(r#"{"push_id":17,"confirmation_code":482913}"#).unwrap();
        assert_eq!(numbers.push_id.as_str(), "17");
        assert_eq!(numbers.confirmation_code, "482913");
        assert!(serde_json::from_str::<VerificationPush>(r#"{"push_id":null}"#).is_err());
    }

    #[test]
    fn verification_results_map_to_outcomes_and_unknown_never_approves() {
        let read = |r: &str| -> VerificationResult {
            serde_json::from_value(serde_json::Value::String(r.into())).unwrap()
        };
        assert_eq!(read("approve").outcome(), Some(PushOutcome::Approved));
        assert_eq!(read("deny").outcome(), Some(PushOutcome::Denied));
        assert_eq!(read("fraud").outcome(), Some(PushOutcome::Fraud));
        assert_eq!(read("waiting").outcome(), None);
        assert_eq!(read("allow"), VerificationResult::Unknown);
        assert_eq!(read("allow").outcome(), Some(PushOutcome::Denied));
    }

    #[test]
    fn the_verification_phone_is_activated_and_push_capable() {
        let phone = |id: &str, activated: bool, caps: &[&str]| Phone {
            phone_id: id.into(),
            number: Masked::default(),
            name: None,
            platform: None,
            kind: None,
            activated,
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
        };
        let mut user = DuoUser {
            user_id: "DU1".into(),
            username: "u".into(),
            realname: None,
            firstname: None,
            lastname: None,
            email: None,
            status: UserStatus::Active,
            is_enrolled: true,
            aliases: Default::default(),
            phones: vec![
                phone("DPSMS", true, &["sms", "phone"]),
                phone("DPNEW", false, &["push"]),
                phone("DPOK", true, &["auto", "push"]),
            ],
        };
        assert_eq!(
            user.verification_phone().map(|p| p.phone_id.as_str()),
            Some("DPOK")
        );
        user.phones.pop();
        assert_eq!(user.verification_phone(), None);
    }

    #[test]
    fn the_admin_users_page_fixture_decodes_into_users() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/psa-payloads/duo-admin-users-page.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let users: Vec<DuoUser> = serde_json::from_value(v["response"].clone()).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users[0].has_push_phone());
        assert_eq!(users[1].status, UserStatus::Bypass);
        assert!(!format!("{:?}", users[0]).contains("contoso.example"));
        assert!(!format!("{:?}", users[0]).contains("5555550101"));
    }

    #[test]
    fn the_preauth_fixture_offers_a_push_device() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/psa-payloads/duo-preauth-auth.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let devices: Vec<Device> =
            serde_json::from_value(v["response"]["devices"].clone()).unwrap();
        let pre = PreauthResult::Auth {
            devices,
            status_msg: String::new(),
        };
        assert_eq!(
            pre.push_device().map(|d| d.device.as_str()),
            Ok("DPQ4K7M2X9B3T6W1N8RZ")
        );
    }
}
