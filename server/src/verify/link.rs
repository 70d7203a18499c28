//! Verification links: a ticket case id and an expiry, signed with a key derived from the
//! master key, so a link cannot be forged, moved to another ticket, or used after it expires.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkClaims {
    /// The deskproof ticket case.
    pub case_id: i64,
    /// The organization the ticket mapped to when the link was made.
    pub organization_id: i64,
    /// Unix seconds after which the link no longer works.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("This link is not valid. It may have been changed or cut off.")]
    Malformed,
    #[error("This link has expired. A signed-in technician can get a fresh link to the ticket.")]
    Expired(LinkClaims),
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8; 32], payload: &str) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"deskproof-link-v1\0");
    mac.update(payload.as_bytes());
    mac
}

/// Signs the claims. Every link gets a random nonce as well, so two links to one ticket made
/// in the same second still differ (a link is used up by the push it sends).
pub fn sign(key: &[u8; 32], claims: LinkClaims) -> String {
    let nonce: u32 = rand::random();
    let payload = format!(
        "{}.{}.{}.{nonce}",
        claims.case_id, claims.organization_id, claims.expires_at
    );
    sign_payload(key, &payload)
}

/// A token carrying `payload` as its signed part, whatever the payload says. [`sign`] builds
/// the payload from claims; the fuzz target signs arbitrary text so [`verify`]'s reading of
/// the payload sees every input.
pub fn sign_payload(key: &[u8; 32], payload: &str) -> String {
    let tag = mac(key, payload).finalize().into_bytes();
    format!("{}.{}", B64URL.encode(payload), B64URL.encode(tag))
}

pub fn verify(key: &[u8; 32], token: &str, now: i64) -> Result<LinkClaims, LinkError> {
    let (payload_b64, tag_b64) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let payload = B64URL
        .decode(payload_b64)
        .ok()
        .and_then(|p| String::from_utf8(p).ok())
        .ok_or(LinkError::Malformed)?;
    let tag = B64URL.decode(tag_b64).map_err(|_| LinkError::Malformed)?;
    mac(key, &payload)
        .verify_slice(&tag)
        .map_err(|_| LinkError::Malformed)?;
    // Links made before nonces were added have three parts; they verify the same way.
    let mut parts = payload.split('.').map(str::parse::<i64>);
    let (Some(Ok(case_id)), Some(Ok(organization_id)), Some(Ok(expires_at))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(LinkError::Malformed);
    };
    if !matches!(
        (parts.next(), parts.next()),
        (None, None) | (Some(Ok(_)), None)
    ) {
        return Err(LinkError::Malformed);
    }
    let claims = LinkClaims {
        case_id,
        organization_id,
        expires_at,
    };
    if now > expires_at {
        return Err(LinkError::Expired(claims));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const CLAIMS: LinkClaims = LinkClaims {
        case_id: 42,
        organization_id: 3,
        expires_at: 1_000,
    };

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let token = sign(&KEY, CLAIMS);
        assert_eq!(verify(&KEY, &token, 999), Ok(CLAIMS));
        assert_eq!(verify(&KEY, &token, 1_001), Err(LinkError::Expired(CLAIMS)));
    }

    #[test]
    fn two_links_for_the_same_claims_differ() {
        assert_ne!(sign(&KEY, CLAIMS), sign(&KEY, CLAIMS));
    }

    #[test]
    fn a_tampered_or_foreign_link_is_refused() {
        let token = sign(&KEY, CLAIMS);
        let other = sign(
            &KEY,
            LinkClaims {
                case_id: 43,
                ..CLAIMS
            },
        );
        let (payload, _) = other.split_once('.').expect("dot");
        let (_, tag) = token.split_once('.').expect("dot");
        assert_eq!(
            verify(&KEY, &format!("{payload}.{tag}"), 0),
            Err(LinkError::Malformed)
        );
        assert_eq!(verify(&[8; 32], &token, 0), Err(LinkError::Malformed));
        assert_eq!(verify(&KEY, "nonsense", 0), Err(LinkError::Malformed));
        assert_eq!(
            verify(&KEY, &token[..token.len() - 2], 0),
            Err(LinkError::Malformed)
        );
    }
}
