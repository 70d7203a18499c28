//! ConnectWise PSA (Manage): the REST client, callback signature verification, payload types.
pub mod callback;
pub mod client;
pub mod model;

pub use callback::{
    CallbackAction, CallbackError, CallbackEvent, CallbackVerifier, HttpKeyFetcher, KeyCache,
    KeyFetcher, StaticKeyFetcher,
};
pub use client::{ConnectWiseClient, ConnectWiseConfig};
