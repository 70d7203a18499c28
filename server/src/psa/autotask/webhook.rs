//! Autotask ticket webhooks: `X-Hook-Signature: sha1=` + base64(HMAC-SHA1(secret, raw body)).
//! No timestamp is signed, so deliveries are de-duplicated on `Guid`, `Id` and
//! `SequenceNumber`.
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha1::Sha1;

use crate::psa::http::id_value;
use crate::psa::{Inbound, InboundRequest, TicketId, WebhookError};

pub const SIGNATURE_HEADER: &str = "x-hook-signature";

fn mac(secret: &str, body: &[u8]) -> Hmac<Sha1> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    mac
}

/// The `X-Hook-Signature` value Autotask sends for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    format!(
        "sha1={}",
        BASE64.encode(mac(secret, body).finalize().into_bytes())
    )
}

/// Whether `header` is the signature of `body` under `secret`, compared in constant time.
pub fn signature_matches(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(encoded) = header.trim().strip_prefix("sha1=") else {
        return false;
    };
    match BASE64.decode(encoded.trim()) {
        Ok(given) => !secret.is_empty() && mac(secret, body).verify_slice(&given).is_ok(),
        Err(_) => false,
    }
}

/// The webhook body; field casing inside `Fields` is not relied on.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookPayload {
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub guid: Option<String>,
    #[serde(default)]
    pub entity_type: Option<String>,
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub sequence_number: Option<Value>,
    #[serde(default)]
    pub event_time: Option<String>,
}

/// Checks the signature over the raw body, then reads what the delivery announces.
pub fn check(secret: &str, request: &InboundRequest<'_>) -> Result<Inbound, WebhookError> {
    let signature = request.header(SIGNATURE_HEADER).ok_or_else(|| {
        WebhookError::Unauthenticated("the X-Hook-Signature header is missing".into())
    })?;
    if !signature_matches(secret, request.body, signature) {
        return Err(WebhookError::Unauthenticated(
            "the X-Hook-Signature does not match: check the webhook's secret key".into(),
        ));
    }
    let payload: WebhookPayload = serde_json::from_slice(request.body)
        .map_err(|e| WebhookError::Malformed(format!("not an Autotask webhook: {e}")))?;
    let action = payload.action.as_deref().unwrap_or_default();
    if action.eq_ignore_ascii_case("deactivated") {
        tracing::warn!(psa = "autotask", "Autotask deactivated the webhook");
        return Ok(Inbound::Ignored(
            "ignored: the webhook was deactivated; reactivate it in Autotask".into(),
        ));
    }
    let is_ticket = payload
        .entity_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("ticket"));
    if !is_ticket || !action.eq_ignore_ascii_case("create") {
        return Ok(Inbound::Ignored(
            "ignored: only new tickets are verified".into(),
        ));
    }
    let id = payload
        .id
        .as_ref()
        .and_then(id_value)
        .filter(|id| *id > 0)
        .ok_or_else(|| WebhookError::Malformed("the webhook has no ticket Id".into()))?;
    let sequence = payload
        .sequence_number
        .as_ref()
        .and_then(id_value)
        .map(|n| n.to_string())
        .or(payload.event_time)
        .unwrap_or_default();
    Ok(Inbound::NewTicket {
        delivery_key: format!(
            "{}:{id}:{sequence}",
            payload.guid.unwrap_or_default().to_ascii_lowercase()
        ),
        ticket: TicketId(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn the_documented_fixture_signature_is_reproduced() {
        let body: &[u8] = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/psa-payloads/autotask-webhook-ticket-create.json"
        ));
        assert_eq!(
            sign("test-secret-key", body),
            "sha1=b3dKVrY1GSKYe05kA873++eA6Ec="
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            sign("test-secret-key", body).parse().unwrap(),
        );
        let request = InboundRequest {
            headers: &headers,
            query: None,
            body,
        };
        assert_eq!(
            check("test-secret-key", &request),
            Ok(Inbound::NewTicket {
                delivery_key: "c2f0d3a4-5b6e-4f70-8a91-b2c3d4e5f607:1234:1".into(),
                ticket: TicketId(1234)
            })
        );
        assert!(matches!(
            check("another-secret", &request),
            Err(WebhookError::Unauthenticated(_))
        ));
        // A signed body naming an impossible ticket is refused as malformed.
        let text = String::from_utf8_lossy(body);
        let negative = text.replacen("1234", "-1234", 1);
        assert_ne!(negative, text, "the fixture names ticket 1234");
        headers.insert(
            SIGNATURE_HEADER,
            sign("test-secret-key", negative.as_bytes())
                .parse()
                .unwrap(),
        );
        let request = InboundRequest {
            headers: &headers,
            query: None,
            body: negative.as_bytes(),
        };
        assert!(matches!(
            check("test-secret-key", &request),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn a_changed_body_or_bad_header_is_refused() {
        assert!(signature_matches("k", b"body", &sign("k", b"body")));
        assert!(!signature_matches("k", b"body ", &sign("k", b"body")));
        assert!(!signature_matches("k", b"body", "sha1=%%%"));
        assert!(!signature_matches(
            "k",
            b"body",
            sign("k", b"body").trim_start_matches("sha1=")
        ));
        assert!(!signature_matches("", b"body", &sign("", b"body")));
    }
}
