//! HaloPSA: OAuth client credentials (tokens cached per tenant and refreshed early), tickets,
//! users, private notes written as Actions with the tenant's own "Private Note" outcome
//! (hidden from the user, no e-mail), and webhooks authenticated with Basic or Bearer
//! credentials. Halo's webhooks are not signed and their layout does not reliably name the
//! event: the body is read for the ticket id and the logging date only, a ticket logged long
//! ago is ignored, and the ticket is then fetched through the API.
pub mod client;

pub use client::{HaloClient, HaloConfig, NoteOutcome, OutcomeCache, TokenCache, NOTE_OUTCOME};
