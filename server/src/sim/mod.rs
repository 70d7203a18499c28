//! Simulators of Duo and the PSAs, for the demo and for tests. They are as strict as the real
//! services: bad signatures, paging and rate limits are enforced.
pub mod connectwise;
pub mod demo;
pub mod duo;
