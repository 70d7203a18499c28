//! Duo Security APIs: request signing, the Auth, Admin and Accounts API client.
pub mod client;
pub mod error;
pub mod gateway;
pub mod signing;
pub mod types;

pub use client::{DuoClient, RetryPolicy, Timeouts, UsersPage};
pub use error::DuoError;
pub use signing::{DigestAlg, SignatureVersion};
pub use types::{
    AccountId, AuthStatus, ChildAccount, Device, DeviceId, DuoUser, DuoUserId, Masked, Phone,
    PreauthResult, PushOutcome, PushRefusal, PushRequest, TxId, UserStatus, VerificationPush,
    VerificationPushId, VerificationResult,
};
