//! The verification flow: ticket intake, the link note, matching the contact to a Duo user,
//! the push, and the outcome note.
pub mod clients;
pub mod directory;
pub mod flow;
pub mod link;
pub mod matching;
pub mod notes;
pub mod pod;
pub mod ports;
pub mod rules;
pub mod worker;
