//! Datto Autotask PSA (REST v1.0): zone lookup, the three authentication headers, tickets,
//! contacts, internal ticket notes, and ticket webhooks signed with `X-Hook-Signature`.
//!
//! Notes are written with the tenant's "Internal Project Team" `publish` value (read from the
//! picklist once, normally 2), never 1 (customer-visible), and always with a title, since
//! tenants may require one.
pub mod client;
pub mod webhook;

pub use client::{AutotaskClient, AutotaskConfig, ZoneCache, DEFAULT_ZONE_LOOKUP};
pub use webhook::{sign, SIGNATURE_HEADER};
