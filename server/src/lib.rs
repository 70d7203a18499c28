//! deskproof proves who submitted a help-desk ticket with the contact's own Duo Push.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod duo;
pub mod http;
pub mod policy;
pub mod psa;
pub mod rotate;
pub mod secret;
pub mod setup;
pub mod sim;
pub mod startup;
pub mod storage;
pub mod sweep;
pub mod telemetry;
pub mod verify;
