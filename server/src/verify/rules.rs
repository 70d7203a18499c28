//! The push limits of the verification policy, as a pure check over the attempt history that
//! storage reads inside the same transaction as the insert.
//!
//! "Contact" means the ticket's contact within one organization: their e-mail address without
//! case, accents or spacing, or, when the PSA has no e-mail for them, their first and last name
//! folded the same way. Tickets of one organization raised by the same person therefore share
//! one allowance, whichever ticket a technician opens.
use crate::policy::Policy;
use crate::verify::matching::{fold, ContactIdentity};

/// The limits in force, in seconds, taken from one organization's [`Policy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushLimits {
    pub per_contact: i64,
    pub contact_window_secs: i64,
    pub per_ticket: i64,
    pub per_technician: i64,
    pub technician_window_secs: i64,
    pub deny_cooldown_secs: i64,
    pub fraud_lock_secs: i64,
}

impl PushLimits {
    pub fn from_policy(p: &Policy) -> PushLimits {
        PushLimits {
            per_contact: p.pushes_per_contact,
            contact_window_secs: p.contact_window_minutes * 60,
            per_ticket: p.pushes_per_ticket,
            per_technician: p.pushes_per_technician,
            technician_window_secs: p.technician_window_minutes * 60,
            deny_cooldown_secs: p.deny_cooldown_minutes * 60,
            fraud_lock_secs: p.fraud_lock_hours * 3600,
        }
    }
}

/// What storage knows about earlier pushes, all times in Unix seconds. A push is an attempt
/// that reached Duo or is still finding its Duo user; refusals do not count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushHistory {
    /// Pushes ever sent for this ticket.
    pub ticket_pushes: i64,
    /// When each push to this contact within the contact window started.
    pub contact_pushes: Vec<i64>,
    /// When each push by this technician within the technician window started.
    pub technician_pushes: Vec<i64>,
    /// When this contact last denied a push.
    pub last_deny: Option<i64>,
    /// When this contact last reported a push as fraud.
    pub last_fraud: Option<i64>,
}

/// Which rule stopped a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    FraudLock,
    DenyCooldown,
    PerTicket,
    PerContact,
    PerTechnician,
}

/// Why no push may be sent now, and from when one may (never, for the per-ticket limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    pub next_allowed_at: Option<i64>,
    pub reason: String,
}

/// The key that identifies a contact within an organization; see the module documentation.
pub fn contact_key(contact: &ContactIdentity) -> String {
    let email = contact.email.as_deref().map(fold).unwrap_or_default();
    if !email.is_empty() {
        return format!("email:{email}");
    }
    let first = contact.first_name.as_deref().map(fold).unwrap_or_default();
    let last = contact.last_name.as_deref().map(fold).unwrap_or_default();
    format!("name:{first}|{last}")
}

/// `14:05 UTC` today, `2026-12-04 14:05 UTC` on another day.
pub fn clock(at: i64, now: i64) -> String {
    let (Ok(t), Ok(n)) = (
        time::OffsetDateTime::from_unix_timestamp(at),
        time::OffsetDateTime::from_unix_timestamp(now),
    ) else {
        return "an unknown time".into();
    };
    let hm = format!("{:02}:{:02} UTC", t.hour(), t.minute());
    if t.date() == n.date() {
        hm
    } else {
        format!("{} {hm}", t.date())
    }
}

/// Checks every rule; the first one broken (the most serious first) is returned.
pub fn check(history: &PushHistory, limits: &PushLimits, now: i64) -> Result<(), Refusal> {
    if let Some(at) = history.last_fraud {
        let until = at + limits.fraud_lock_secs;
        if now < until {
            return Err(Refusal {
                rule: Rule::FraudLock,
                next_allowed_at: Some(until),
                reason: format!(
                    "this contact reported a Duo Push as fraud at {}, so pushes to them are \
                     locked until {}. Treat the ticket as a possible social-engineering attempt.",
                    clock(at, now),
                    clock(until, now)
                ),
            });
        }
    }
    if let Some(at) = history.last_deny {
        let until = at + limits.deny_cooldown_secs;
        if now < until {
            return Err(Refusal {
                rule: Rule::DenyCooldown,
                next_allowed_at: Some(until),
                reason: format!(
                    "this contact denied a Duo Push at {}. The next push is allowed at {}.",
                    clock(at, now),
                    clock(until, now)
                ),
            });
        }
    }
    if history.ticket_pushes >= limits.per_ticket {
        return Err(Refusal {
            rule: Rule::PerTicket,
            next_allowed_at: None,
            reason: format!(
                "this ticket already had {} Duo Pushes, the most allowed for one ticket. Ask the \
                 caller to confirm their identity another way, or have an administrator raise \
                 the limit.",
                history.ticket_pushes
            ),
        });
    }
    if let Some(until) = window_full(
        &history.contact_pushes,
        limits.per_contact,
        limits.contact_window_secs,
    ) {
        return Err(Refusal {
            rule: Rule::PerContact,
            next_allowed_at: Some(until),
            reason: format!(
                "this contact already got {} Duo Pushes in the last {} minutes. The next push is \
                 allowed at {}.",
                history.contact_pushes.len(),
                limits.contact_window_secs / 60,
                clock(until, now)
            ),
        });
    }
    if let Some(until) = window_full(
        &history.technician_pushes,
        limits.per_technician,
        limits.technician_window_secs,
    ) {
        return Err(Refusal {
            rule: Rule::PerTechnician,
            next_allowed_at: Some(until),
            reason: format!(
                "you already sent {} Duo Pushes in the last {} minutes. Your next push is \
                 allowed at {}.",
                history.technician_pushes.len(),
                limits.technician_window_secs / 60,
                clock(until, now)
            ),
        });
    }
    Ok(())
}

/// When `times` (all inside the window) hold `limit` or more pushes: the moment enough of them
/// have left the window for one more.
fn window_full(times: &[i64], limit: i64, window: i64) -> Option<i64> {
    let count = times.len() as i64;
    if count < limit {
        return None;
    }
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    // With `count` pushes and room for `limit`, the (count - limit)th oldest must leave.
    let index = usize::try_from(count - limit).unwrap_or(0);
    sorted.get(index).map(|t| t + window)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn limits() -> PushLimits {
        PushLimits::from_policy(&Policy::default())
    }

    #[test]
    fn a_contact_with_no_history_may_get_a_push() {
        assert_eq!(check(&PushHistory::default(), &limits(), NOW), Ok(()));
    }

    #[test]
    fn the_contact_limit_names_when_the_oldest_push_leaves_the_window() {
        let history = PushHistory {
            contact_pushes: vec![NOW - 60, NOW - 600, NOW - 300],
            ticket_pushes: 1,
            ..Default::default()
        };
        let refusal = check(&history, &limits(), NOW).expect_err("three in 15 minutes");
        assert_eq!(refusal.rule, Rule::PerContact);
        assert_eq!(refusal.next_allowed_at, Some(NOW - 600 + 15 * 60));
        assert!(refusal.reason.contains("The next push is allowed at"));
    }

    #[test]
    fn the_ticket_limit_has_no_next_time() {
        let history = PushHistory {
            ticket_pushes: 5,
            ..Default::default()
        };
        let refusal = check(&history, &limits(), NOW).expect_err("five on the ticket");
        assert_eq!(
            (refusal.rule, refusal.next_allowed_at),
            (Rule::PerTicket, None)
        );
    }

    #[test]
    fn the_technician_limit_counts_only_their_pushes() {
        let history = PushHistory {
            technician_pushes: vec![NOW - 10; 30],
            ..Default::default()
        };
        let refusal = check(&history, &limits(), NOW).expect_err("thirty in an hour");
        assert_eq!(refusal.rule, Rule::PerTechnician);
        assert_eq!(refusal.next_allowed_at, Some(NOW - 10 + 3600));
    }

    #[test]
    fn a_deny_starts_a_cooldown_and_fraud_a_longer_lock() {
        let denied = PushHistory {
            last_deny: Some(NOW - 60),
            ..Default::default()
        };
        let refusal = check(&denied, &limits(), NOW).expect_err("cooldown");
        assert_eq!(refusal.rule, Rule::DenyCooldown);
        assert_eq!(refusal.next_allowed_at, Some(NOW - 60 + 300));
        assert_eq!(check(&denied, &limits(), NOW + 240), Ok(()));

        let fraud = PushHistory {
            last_fraud: Some(NOW - 3600),
            last_deny: Some(NOW - 60),
            ..Default::default()
        };
        let refusal = check(&fraud, &limits(), NOW).expect_err("locked");
        assert_eq!(refusal.rule, Rule::FraudLock);
        assert_eq!(refusal.next_allowed_at, Some(NOW - 3600 + 24 * 3600));
    }

    #[test]
    fn contacts_are_keyed_by_email_or_else_by_name_without_case_or_accents() {
        let c = |first: &str, last: &str, email: Option<&str>| ContactIdentity {
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            email: email.map(Into::into),
        };
        assert_eq!(
            contact_key(&c("A", "B", Some(" Alex@Example.COM "))),
            contact_key(&c("Other", "Name", Some("alex@example.com")))
        );
        assert_eq!(
            contact_key(&c("José", "Cruz", None)),
            contact_key(&c("jose", " CRUZ", Some("")))
        );
        assert_ne!(
            contact_key(&c("Jo", "Secruz", None)),
            contact_key(&c("Jose", "Cruz", None))
        );
    }

    #[test]
    fn times_read_as_a_clock_today_and_with_a_date_otherwise() {
        let noon = 1_800_000_000 - 1_800_000_000 % 86_400 + 12 * 3600;
        assert_eq!(clock(noon + 5 * 60, noon), "12:05 UTC");
        assert!(clock(noon + 86_400, noon).ends_with(" 12:00 UTC"));
    }
}
