//! Verification policy: how long links and pushes last, pod mode, and the rules that limit
//! pushes. Built-in defaults (partly from the configuration) are overridden by the stored
//! deployment-wide defaults, which are overridden per organization.
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The settings in force for one organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// A push nobody answered counts as timed out after this many seconds.
    pub push_timeout_secs: i64,
    /// How long a verification link in a note keeps working.
    pub link_lifetime_hours: i64,
    /// ConnectWise only: verification happens in the deskproof pod, notes carry no link.
    pub pod_enabled: bool,
    /// At most this many pushes to one contact within `contact_window_minutes`.
    pub pushes_per_contact: i64,
    pub contact_window_minutes: i64,
    /// At most this many pushes for one ticket, ever.
    pub pushes_per_ticket: i64,
    /// At most this many pushes by one technician within `technician_window_minutes`.
    pub pushes_per_technician: i64,
    pub technician_window_minutes: i64,
    /// No new push to a contact for this long after they denied one.
    pub deny_cooldown_minutes: i64,
    /// A fraud report blocks pushes to that contact for this long.
    pub fraud_lock_hours: i64,
    /// An approval counts as verified for this long.
    pub verified_minutes: i64,
}

impl Policy {
    /// The built-in defaults, with the two values the configuration file can set.
    pub fn builtin(config: &Config) -> Policy {
        Policy {
            push_timeout_secs: config.push_timeout_secs,
            link_lifetime_hours: config.link_lifetime_hours,
            ..Policy::default()
        }
    }

    /// These settings with every value `overrides` sets replaced.
    pub fn with(&self, overrides: &PolicySettings) -> Policy {
        let o = overrides;
        Policy {
            push_timeout_secs: o.push_timeout_secs.unwrap_or(self.push_timeout_secs),
            link_lifetime_hours: o.link_lifetime_hours.unwrap_or(self.link_lifetime_hours),
            pod_enabled: o.pod_enabled.unwrap_or(self.pod_enabled),
            pushes_per_contact: o.pushes_per_contact.unwrap_or(self.pushes_per_contact),
            contact_window_minutes: o
                .contact_window_minutes
                .unwrap_or(self.contact_window_minutes),
            pushes_per_ticket: o.pushes_per_ticket.unwrap_or(self.pushes_per_ticket),
            pushes_per_technician: o
                .pushes_per_technician
                .unwrap_or(self.pushes_per_technician),
            technician_window_minutes: o
                .technician_window_minutes
                .unwrap_or(self.technician_window_minutes),
            deny_cooldown_minutes: o
                .deny_cooldown_minutes
                .unwrap_or(self.deny_cooldown_minutes),
            fraud_lock_hours: o.fraud_lock_hours.unwrap_or(self.fraud_lock_hours),
            verified_minutes: o.verified_minutes.unwrap_or(self.verified_minutes),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            push_timeout_secs: 150,
            link_lifetime_hours: 168,
            pod_enabled: false,
            pushes_per_contact: 3,
            contact_window_minutes: 15,
            pushes_per_ticket: 5,
            pushes_per_technician: 30,
            technician_window_minutes: 60,
            deny_cooldown_minutes: 5,
            fraud_lock_hours: 24,
            verified_minutes: 30,
        }
    }
}

/// Stored overrides: only the values someone set. Unknown keys in stored JSON are kept out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicySettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_timeout_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_lifetime_hours: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushes_per_contact: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_window_minutes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushes_per_ticket: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushes_per_technician: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub technician_window_minutes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_cooldown_minutes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraud_lock_hours: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_minutes: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: &'static str,
    pub message: String,
}

impl PolicySettings {
    /// Checks every set value against its allowed range; the first bad field is named.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every set value outside its allowed range, in form order.
    pub fn problems(&self) -> Vec<PolicyError> {
        let ranges: [(&'static str, Option<i64>, i64, i64); 10] = [
            ("push_timeout_secs", self.push_timeout_secs, 30, 600),
            ("link_lifetime_hours", self.link_lifetime_hours, 1, 24 * 90),
            ("pushes_per_contact", self.pushes_per_contact, 1, 100),
            (
                "contact_window_minutes",
                self.contact_window_minutes,
                1,
                24 * 60,
            ),
            ("pushes_per_ticket", self.pushes_per_ticket, 1, 100),
            (
                "pushes_per_technician",
                self.pushes_per_technician,
                1,
                10_000,
            ),
            (
                "technician_window_minutes",
                self.technician_window_minutes,
                1,
                24 * 60,
            ),
            (
                "deny_cooldown_minutes",
                self.deny_cooldown_minutes,
                0,
                24 * 60,
            ),
            ("fraud_lock_hours", self.fraud_lock_hours, 0, 24 * 30),
            ("verified_minutes", self.verified_minutes, 0, 24 * 60),
        ];
        let mut problems = Vec::new();
        for (field, value, min, max) in ranges {
            if let Some(v) = value {
                if !(min..=max).contains(&v) {
                    problems.push(PolicyError {
                        field,
                        message: format!("must be between {min} and {max}"),
                    });
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organization_overrides_win_over_defaults() {
        let global = PolicySettings {
            push_timeout_secs: Some(90),
            pod_enabled: Some(true),
            ..Default::default()
        };
        let org = PolicySettings {
            pod_enabled: Some(false),
            pushes_per_contact: Some(7),
            ..Default::default()
        };
        let p = Policy::default().with(&global).with(&org);
        assert_eq!(p.push_timeout_secs, 90);
        assert!(!p.pod_enabled);
        assert_eq!(p.pushes_per_contact, 7);
        assert_eq!(p.link_lifetime_hours, Policy::default().link_lifetime_hours);
    }

    #[test]
    fn stored_json_keeps_only_what_was_set() {
        let s = PolicySettings {
            verified_minutes: Some(10),
            ..Default::default()
        };
        let json = serde_json::to_string(&s).expect("serializes");
        assert_eq!(json, r#"{"verified_minutes":10}"#);
        let back: PolicySettings = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, s);
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let s = PolicySettings {
            push_timeout_secs: Some(5),
            ..Default::default()
        };
        assert_eq!(s.validate().map_err(|e| e.field), Err("push_timeout_secs"));
        let s = PolicySettings {
            deny_cooldown_minutes: Some(0),
            pushes_per_ticket: Some(2),
            ..Default::default()
        };
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn every_out_of_range_value_is_named_at_once() {
        let s = PolicySettings {
            push_timeout_secs: Some(5),
            pushes_per_ticket: Some(2),
            verified_minutes: Some(-1),
            ..Default::default()
        };
        let fields: Vec<_> = s.problems().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["push_timeout_secs", "verified_minutes"]);
    }
}
