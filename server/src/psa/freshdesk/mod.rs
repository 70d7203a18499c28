//! Freshdesk (API v2): API-key authentication, tickets with their requester, contacts, private
//! notes, and webhooks sent by an automation rule.
//!
//! Freshdesk keeps one `name` per contact. It is split into first and last name by the rule in
//! [`crate::psa::names`]: one word is a first name only (the ticket is reported as missing the
//! last name), otherwise the first word is the first name and the rest the last name,
//! `Last, First` is turned around, accents are kept, and a name that is an e-mail address
//! counts as no name. The contact's e-mail is always tried first when looking for the Duo user.
//!
//! Automation-rule webhooks are not signed. They must carry a shared secret in a header
//! (`X-Webhook-Token` unless configured otherwise), compared in constant time; the body is
//! only read for the ticket id, and the ticket is then fetched through the API.
//!
//! Over the rate limit Freshdesk answers 429 with `Retry-After` in seconds; the note is posted
//! again no earlier than that.
pub mod client;

pub use client::{FreshdeskClient, FreshdeskConfig, DEFAULT_WEBHOOK_HEADER};
