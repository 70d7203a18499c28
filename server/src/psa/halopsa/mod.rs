//! HaloPSA: OAuth client credentials (tokens cached and refreshed), tickets, users, private
//! notes written as Actions (hidden from the user, no e-mail), and webhooks authenticated with
//! Basic or Bearer credentials. Halo's webhooks are not signed: the body is only read for the
//! ticket id, and the ticket is then fetched through the API.
pub mod client;

pub use client::{HaloClient, HaloConfig, NoteOutcome, OutcomeCache, TokenCache, NOTE_OUTCOME};
