//! Inbound PSA webhooks in PSA-neutral terms: the request as received, what it announced, and
//! why it was refused. Each PSA checks its own deliveries in [`crate::psa::Psa::check_webhook`].
use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::psa::TicketId;

/// A webhook request exactly as it arrived: the body is the raw bytes, never re-serialised.
#[derive(Clone, Copy, Debug)]
pub struct InboundRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The raw query string, without the `?`.
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> InboundRequest<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

/// What an authentic delivery asks deskproof to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A ticket was created. `delivery_key` identifies this delivery, so a repeated delivery is
    /// stored once.
    NewTicket {
        delivery_key: String,
        ticket: TicketId,
    },
    /// Authentic, but nothing to do (an update, a deletion, another record type).
    Ignored(String),
}

/// Why a delivery was refused. Every variant is answered with a 4xx or 503 and nothing stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Missing or wrong signature, secret or credentials: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authentic or not, the body cannot be read: 400.
    #[error("{0}")]
    Malformed(String),
    /// deskproof cannot check the delivery right now (signing key unreachable): 503.
    #[error("{0}")]
    Unavailable(String),
}

/// Compares a presented secret with the expected one in constant time. Both must be non-empty.
pub fn secret_matches(presented: &str, expected: &str) -> bool {
    !expected.is_empty()
        && !presented.is_empty()
        && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Credentials in an `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    Basic { user: String, password: String },
    Bearer(String),
}

/// Reads `Authorization: Basic …` or `Authorization: Bearer …` (scheme case-insensitive).
pub fn authorization(request: &InboundRequest<'_>) -> Option<Presented> {
    let value = request.header("authorization")?;
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Presented::Bearer(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = BASE64.decode(rest).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        return Some(Presented::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &HeaderMap) -> InboundRequest<'_> {
        InboundRequest {
            headers,
            query: None,
            body: b"",
        }
    }

    #[test]
    fn empty_secrets_never_match() {
        assert!(secret_matches("abc", "abc"));
        assert!(!secret_matches("abd", "abc"));
        assert!(!secret_matches("", ""));
        assert!(!secret_matches("abc", ""));
    }

    #[test]
    fn basic_and_bearer_credentials_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Basic dXNlcjpwYTpzcw==".parse().unwrap());
        assert_eq!(
            authorization(&request(&headers)),
            Some(Presented::Basic {
                user: "user".into(),
                password: "pa:ss".into()
            })
        );
        headers.insert("authorization", "bearer  tok".parse().unwrap());
        assert_eq!(
            authorization(&request(&headers)),
            Some(Presented::Bearer("tok".into()))
        );
        headers.insert("authorization", "Digest x".parse().unwrap());
        assert_eq!(authorization(&request(&headers)), None);
    }
}
