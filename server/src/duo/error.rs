//! What can go wrong when talking to Duo, in Duo's own terms (one variant per documented code).
use std::time::Duration;

/// An error from a Duo API call.
#[derive(Debug, thiserror::Error)]
pub enum DuoError {
    /// 40002: a parameter is missing or invalid; Duo names it in `message_detail`.
    #[error("Duo rejected the request parameters (40002): {detail}")]
    InvalidParameters { detail: String },
    /// 40101: no `Authorization` header reached Duo.
    #[error("Duo saw no request credentials (40101)")]
    MissingCredentials,
    /// 40102: unknown integration key, or keys of the wrong application type.
    #[error("Duo does not know this integration key for this API (40102)")]
    InvalidIntegrationKey,
    /// 40103: the signature does not match; most often a wrong or rotated secret key.
    #[error("Duo rejected the request signature (40103)")]
    InvalidSignature,
    /// 40104: missing or unparseable date header.
    #[error("Duo saw no valid request timestamp (40104)")]
    MissingTimestamp,
    /// 40105: the date header is too far from Duo's clock.
    #[error("Duo rejected the request timestamp; check the clock (40105)")]
    BadTimestamp,
    /// 40112: Duo does not support this signature type.
    #[error("Duo does not support this signature type (40112)")]
    UnsupportedSignature,
    /// 403: the Admin API application lacks the permission this call needs.
    #[error("Duo refused access; check the application's permissions (403)")]
    Forbidden { code: Option<u32>, message: String },
    /// 40401: the user, transaction or other object does not exist.
    #[error("Duo found no such resource (40401)")]
    NotFound,
    /// 42901: still rate limited after the configured number of attempts.
    #[error("Duo rate limit still in force after {attempts} attempts (42901)")]
    RateLimited { attempts: u32 },
    /// Any other error Duo answered with its failure envelope.
    #[error("Duo error {code:?} (HTTP {http_status}): {message}")]
    Api {
        http_status: u16,
        code: Option<u32>,
        message: String,
        detail: Option<String>,
    },
    /// The request did not complete within its deadline.
    #[error("Duo did not answer within {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure below HTTP.
    #[error("could not reach Duo")]
    Transport(#[source] reqwest::Error),
    /// Duo answered with something that is not the documented JSON.
    #[error("Duo's answer to {path} could not be read: {reason}")]
    Decode { path: String, reason: String },
    /// The client was configured with an API host that is not usable.
    #[error("invalid Duo API host {0:?}")]
    InvalidApiHost(String),
    /// A polling loop hit its overall cap without a final answer.
    #[error("gave up polling Duo after {0:?}")]
    PollCapReached(Duration),
}

impl DuoError {
    /// Builds the error for a Duo failure envelope.
    pub fn from_envelope(
        http_status: u16,
        code: Option<u32>,
        message: String,
        detail: Option<String>,
    ) -> Self {
        match code {
            Some(40002) => DuoError::InvalidParameters {
                detail: detail.unwrap_or(message),
            },
            Some(40101) => DuoError::MissingCredentials,
            Some(40102) => DuoError::InvalidIntegrationKey,
            Some(40103) => DuoError::InvalidSignature,
            Some(40104) => DuoError::MissingTimestamp,
            Some(40105) => DuoError::BadTimestamp,
            Some(40112) => DuoError::UnsupportedSignature,
            Some(40401) => DuoError::NotFound,
            _ if http_status == 403 => DuoError::Forbidden { code, message },
            _ if http_status == 404 => DuoError::NotFound,
            _ => DuoError::Api {
                http_status,
                code,
                message,
                detail,
            },
        }
    }

    /// The numeric Duo code this error stands for, where there is one.
    pub fn code(&self) -> Option<u32> {
        match self {
            DuoError::InvalidParameters { .. } => Some(40002),
            DuoError::MissingCredentials => Some(40101),
            DuoError::InvalidIntegrationKey => Some(40102),
            DuoError::InvalidSignature => Some(40103),
            DuoError::MissingTimestamp => Some(40104),
            DuoError::BadTimestamp => Some(40105),
            DuoError::UnsupportedSignature => Some(40112),
            DuoError::NotFound => Some(40401),
            DuoError::RateLimited { .. } => Some(42901),
            DuoError::Forbidden { code, .. } | DuoError::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// True when the failure is about our keys, clock or signing rather than the request.
    pub fn is_credentials_problem(&self) -> bool {
        matches!(
            self,
            DuoError::MissingCredentials
                | DuoError::InvalidIntegrationKey
                | DuoError::InvalidSignature
                | DuoError::MissingTimestamp
                | DuoError::BadTimestamp
                | DuoError::UnsupportedSignature
                | DuoError::Forbidden { .. }
        )
    }
}
