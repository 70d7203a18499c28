//! What the PSA clients share on the wire: one HTTP client setup, refusals turned into
//! [`PsaError`]s, `Retry-After` read in both of its forms.
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::psa::PsaError;

/// An HTTP client with a 20-second timeout per request that never follows redirects (a
/// redirect would carry credentials to another address).
pub fn http_client() -> Result<reqwest::Client, PsaError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PsaError::Config(format!("HTTP client: {e}")))
}

/// `Retry-After` is either seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A short message from the error bodies the PSAs send: `message`, `description`,
/// `error_description`, `error` or the first of `errors`.
fn message_of(body: &[u8]) -> String {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let message = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        [
            "message",
            "Message",
            "description",
            "error_description",
            "error",
        ]
        .iter()
        .find_map(|k| v.get(*k).and_then(text))
        .or_else(|| {
            let first = v.get("errors")?.as_array()?.first()?.clone();
            text(&first).or_else(|| first.get("message").and_then(text))
        })
    });
    let message = message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    message.chars().take(200).collect()
}

/// Turns a non-success answer into a [`PsaError`]; `what` names the record for a 404.
pub async fn check(
    response: Response,
    psa: &str,
    what: impl FnOnce() -> String,
) -> Result<Response, PsaError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.bytes().await.unwrap_or_default();
    tracing::warn!(
        psa,
        http.status = status.as_u16(),
        "the PSA refused the request"
    );
    Err(match status {
        StatusCode::UNAUTHORIZED => PsaError::Unauthorized,
        StatusCode::FORBIDDEN => PsaError::Forbidden,
        StatusCode::NOT_FOUND => PsaError::NotFound { what: what() },
        StatusCode::TOO_MANY_REQUESTS => PsaError::RateLimited { retry_after },
        s if s.is_server_error() => PsaError::Server { status: s.as_u16() },
        s => PsaError::Rejected {
            status: s.as_u16(),
            message: message_of(&body),
        },
    })
}

/// Sends a request, checks the answer and reads its JSON body.
pub async fn send_json<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    psa: &str,
    what: impl FnOnce() -> String,
) -> Result<T, PsaError> {
    let response = request.send().await.map_err(PsaError::Transport)?;
    let response = check(response, psa, what).await?;
    let bytes = response.bytes().await.map_err(PsaError::Transport)?;
    serde_json::from_slice(&bytes).map_err(|e| PsaError::Decode(e.to_string()))
}

/// Reads an integer id that may arrive as a number or as a string of digits.
pub fn id_value(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_found_in_each_shape() {
        assert_eq!(message_of(br#"{"errors":["Bad filter"]}"#), "Bad filter");
        assert_eq!(
            message_of(br#"{"description":"Validation failed","errors":[]}"#),
            "Validation failed"
        );
        assert_eq!(
            message_of(br#"{"errors":[{"field":"x","message":"It is invalid"}]}"#),
            "It is invalid"
        );
        assert_eq!(message_of(b"plain words"), "plain words");
    }

    #[test]
    fn ids_are_read_from_numbers_and_strings() {
        assert_eq!(id_value(&serde_json::json!(12)), Some(12));
        assert_eq!(id_value(&serde_json::json!(" 12 ")), Some(12));
        assert_eq!(id_value(&serde_json::json!("x")), None);
        assert_eq!(id_value(&serde_json::json!(null)), None);
    }
}
