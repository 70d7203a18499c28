//! Datto Autotask PSA (REST v1.0): zone lookup, the three authentication headers, tickets,
//! contacts, internal ticket notes, and ticket webhooks signed with `X-Hook-Signature`.
//!
//! Notes are written with `publish` 2 ("Internal Project Team"), never 1 (customer-visible),
//! and always with a title, since tenants may require one.
pub mod client;
pub mod webhook;

pub use client::{AutotaskClient, AutotaskConfig, ZoneCache, DEFAULT_ZONE_LOOKUP};
pub use webhook::{sign, SIGNATURE_HEADER};
