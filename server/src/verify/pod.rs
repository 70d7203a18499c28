//! The ConnectWise pod: deskproof inside ConnectWise's ticket screen.
//!
//! The browser tells us which member is signed in and which ticket is open; neither is taken
//! on trust. The member id and hash are checked against ConnectWise (`/system/myMembers/info`
//! with the member's own credentials), the ticket is read with the connection's API key and
//! must belong to a company this connection maps to an organization. Only then is a pod token
//! handed out: a short-lived, signed statement of member, ticket case and organization that
//! the page keeps in memory and sends with every later call (no cookie is needed, so browsers
//! that block third-party cookies inside the iframe still work).
use std::time::{Duration, Instant};

use app::backend::PodOpen;
use app::model::PodView;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::psa::connectwise::ConnectWiseClient;
use crate::psa::source::connectwise_config;
use crate::psa::{PsaError, PsaKind};
use crate::secret::Secret;
use crate::storage::{
    Attempt, AuditEntry, Lane, PsaConnectionRow, StorageError, Store, TicketCase,
};
use crate::verify::flow::{now, now_ms, Flow, FlowError};
use crate::verify::worker::Worker;

/// How long a pod token works. The pod asks ConnectWise again after a reload.
pub const POD_TOKEN_MINUTES: i64 = 30;

/// What a pod token states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodClaims {
    /// The deskproof ticket case.
    pub case_id: i64,
    /// The ConnectWise connection the member was confirmed with.
    pub connection_id: i64,
    /// The organization the ticket's company maps to.
    pub organization_id: i64,
    /// The member as notes and the audit log name them.
    pub member: String,
    /// Unix seconds after which the token no longer works.
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("This pod address names no ConnectWise connection in deskproof.")]
    UnknownConnection,
    #[error(
        "No ConnectWise address is set up for this connection's pod. An administrator adds it \
         under Settings → PSA connections (ConnectWise addresses) or as pod_origins in the \
         setup file."
    )]
    NoOrigins,
    #[error("ConnectWise did not confirm who is signed in. Reload the ticket and try again.")]
    MemberRefused,
    #[error("{0:?} is not a ConnectWise ticket number.")]
    BadTicket(String),
    #[error(
        "This ticket's company is not mapped to an organization for this ConnectWise \
         connection, so deskproof cannot verify it."
    )]
    NotServed,
    #[error("The pod's sign-in has expired. Reload the ticket to continue.")]
    Expired,
    #[error("The pod's sign-in is not valid. Reload the ticket to continue.")]
    BadToken,
    #[error("ConnectWise could not be asked ({0}).")]
    Remote(String),
    #[error(transparent)]
    Flow(#[from] FlowError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8; 32], payload: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    // A label of its own, so a verification link can never pass as a pod token.
    mac.update(b"deskproof-pod-v1\0");
    mac.update(payload);
    mac
}

/// Signs pod claims.
pub fn sign(key: &[u8; 32], claims: &PodClaims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let tag = mac(key, &payload).finalize().into_bytes();
    format!("{}.{}", B64URL.encode(&payload), B64URL.encode(tag))
}

/// Checks a pod token's signature and expiry.
pub fn verify(key: &[u8; 32], token: &str, now: i64) -> Result<PodClaims, PodError> {
    let (payload_b64, tag_b64) = token.split_once('.').ok_or(PodError::BadToken)?;
    let payload = B64URL.decode(payload_b64).map_err(|_| PodError::BadToken)?;
    let tag = B64URL.decode(tag_b64).map_err(|_| PodError::BadToken)?;
    mac(key, &payload)
        .verify_slice(&tag)
        .map_err(|_| PodError::BadToken)?;
    let claims: PodClaims = serde_json::from_slice(&payload).map_err(|_| PodError::BadToken)?;
    if now > claims.expires_at {
        return Err(PodError::Expired);
    }
    Ok(claims)
}

/// The ConnectWise origins stored for a connection's pod (`pod_origins` in its settings),
/// each reduced to `scheme://host[:port]`. Anything that is not an http(s) origin is left out,
/// so a stored value can never add more to a header than one origin.
pub fn pod_origins(settings: &serde_json::Value) -> Vec<String> {
    let Some(list) = settings.get("pod_origins").and_then(|v| v.as_array()) else {
        return Vec::new();
    };
    let mut origins: Vec<String> = list
        .iter()
        .filter_map(|v| v.as_str())
        .filter_map(|v| url::Url::parse(v.trim()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.origin())
        .filter(|o| o.is_tuple())
        .map(|o| o.ascii_serialization())
        .collect();
    origins.dedup();
    origins
}

/// Checks one pod origin as an admin typed it (setup file or settings page): a bare
/// `scheme://host[:port]` with http or https, nothing after it but an optional `/`. Returns
/// it as browsers write origins, or why not.
pub fn parse_pod_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{text:?} is not a bare address: use scheme://host[:port] only, e.g. \
             https://na.myconnectwise.net"
        )
    };
    let url = url::Url::parse(text).map_err(|_| bad())?;
    let origin = url.origin();
    if !matches!(url.scheme(), "http" | "https") || !origin.is_tuple() {
        return Err(bad());
    }
    let origin = origin.ascii_serialization();
    if !origin.eq_ignore_ascii_case(text.trim_end_matches('/')) {
        return Err(bad());
    }
    Ok(origin)
}

/// Pod origins as an admin lists them, separated by spaces, commas or line breaks; each is
/// checked with [`parse_pod_origin`], duplicates dropped.
pub fn parse_pod_origins(text: &str) -> Result<Vec<String>, String> {
    let mut origins: Vec<String> = Vec::new();
    for part in text.split(|c: char| c.is_whitespace() || c == ',') {
        if part.is_empty() {
            continue;
        }
        let origin = parse_pod_origin(part)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// The origins of a stored connection's pod: empty for a connection whose PSA has no pod, or
/// whose pod has no origin set up (such a pod cannot talk to its PSA, so it is not offered).
pub fn connection_pod_origins(connection: &PsaConnectionRow) -> Vec<String> {
    match PsaKind::parse(&connection.kind) {
        Some(kind) if kind.has_pod() => pod_origins(&connection.settings),
        _ => Vec::new(),
    }
}

/// A ConnectWise member id as the Basic-auth user name takes it: no separators, no spaces.
fn plausible_member_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Opens pods: confirms members with ConnectWise and answers pod calls.
#[derive(Clone)]
pub struct PodGate {
    pub flow: Flow,
    worker: Worker,
    http: reqwest::Client,
}

/// How long opening a pod waits for a ticket it had to take in before it answers with the
/// ticket still being read (the page then asks again).
const INTAKE_WAIT: Duration = Duration::from_secs(5);

impl PodGate {
    pub fn new(flow: Flow, worker: Worker) -> Result<PodGate, PsaError> {
        Ok(PodGate {
            flow,
            worker,
            http: ConnectWiseClient::http_client()?,
        })
    }

    fn store(&self) -> &Store {
        &self.flow.store
    }

    async fn connection(&self, connection_id: i64) -> Result<PsaConnectionRow, PodError> {
        self.store()
            .psa_connection(connection_id)
            .await?
            .filter(|c| PsaKind::parse(&c.kind).is_some_and(PsaKind::has_pod))
            .ok_or(PodError::UnknownConnection)
    }

    /// The origins a connection's pod accepts messages from and may be framed by.
    pub async fn origins(&self, connection_id: i64) -> Result<Vec<String>, PodError> {
        Ok(connection_pod_origins(
            &self.connection(connection_id).await?,
        ))
    }

    /// Confirms the member with ConnectWise, checks the ticket, takes it in if deskproof has
    /// not seen it yet, and hands out a pod token.
    #[tracing::instrument(skip(self, request), fields(connection.id = request.connection_id, ticket.id = %request.ticket_id))]
    pub async fn open(&self, request: &PodOpen) -> Result<(String, PodView), PodError> {
        let connection = self.connection(request.connection_id).await?;
        if connection_pod_origins(&connection).is_empty() {
            return Err(PodError::NoOrigins);
        }
        let ticket = request.ticket_id.trim();
        if !ticket.parse::<u64>().is_ok_and(|t| t > 0) {
            return Err(PodError::BadTicket(ticket.chars().take(20).collect()));
        }
        let member = self.confirm_member(&connection, request).await?;

        // The ticket as ConnectWise has it now, read with the connection's own key.
        let source = self
            .flow
            .clients
            .ticket_source(connection.id)
            .await
            .map_err(|e| PodError::Remote(e.to_string()))?;
        let facts = source
            .ticket_facts(ticket)
            .await
            .map_err(|e| PodError::Remote(e.to_string()))?;
        let company = facts.company_id.clone().ok_or(PodError::NotServed)?;
        let organization_id = self
            .store()
            .organization_for_company(connection.id, &company)
            .await?
            .ok_or_else(|| {
                tracing::warn!("pod refused: the ticket's company is not mapped");
                PodError::NotServed
            })?;

        // A ticket deskproof has not seen yet is taken in by the workers, as if its callback
        // had arrived, so its first note is written exactly once.
        let mut case = self.case_for(connection.id, ticket).await?;
        let deadline = Instant::now() + INTAKE_WAIT;
        while case.state == "received" && Instant::now() < deadline {
            self.worker.nudge(Lane::Work);
            tokio::time::sleep(Duration::from_millis(100)).await;
            case = self.case_for(connection.id, ticket).await?;
        }
        if case.organization_id.is_some_and(|o| o != organization_id) {
            return Err(PodError::NotServed);
        }
        let claims = PodClaims {
            case_id: case.id,
            connection_id: connection.id,
            organization_id,
            member,
            expires_at: now() + POD_TOKEN_MINUTES * 60,
        };
        let token = sign(self.flow.key.link_key(), &claims);
        self.store()
            .append_audit(&AuditEntry {
                actor: claims.member.clone(),
                action: "pod opened".into(),
                organization_id: Some(organization_id),
                connection_id: Some(connection.id),
                ticket: Some(case.ticket_id.clone()),
                ..Default::default()
            })
            .await?;
        tracing::info!(case.id = case.id, "pod opened");
        let view = self.view_of(&case, &claims).await?;
        Ok((token, view))
    }

    /// `/system/myMembers/info` as the member: a wrong or expired hash is refused by
    /// ConnectWise, and the answer must name the member the page claimed.
    async fn confirm_member(
        &self,
        connection: &PsaConnectionRow,
        request: &PodOpen,
    ) -> Result<String, PodError> {
        let claimed = request.member_id.trim();
        if !plausible_member_id(claimed) || request.member_hash.is_empty() {
            return Err(PodError::MemberRefused);
        }
        let secrets = self
            .flow
            .key
            .open(&connection.secrets_sealed)
            .map_err(|e| PodError::Remote(format!("stored settings cannot be used: {e}")))?;
        let config = connectwise_config(&connection.settings, secrets.expose())
            .map_err(|e| PodError::Remote(e.to_string()))?;
        let client = ConnectWiseClient::with_http(config, self.http.clone())
            .map_err(|e| PodError::Remote(e.to_string()))?;
        let hash = Secret::new(request.member_hash.clone());
        let info = match client.member_info(claimed, &hash).await {
            Ok(info) => info,
            Err(PsaError::Unauthorized | PsaError::Forbidden | PsaError::NotFound { .. }) => {
                tracing::warn!("pod refused: ConnectWise did not accept the member credentials");
                return Err(PodError::MemberRefused);
            }
            Err(e) => return Err(PodError::Remote(e.to_string())),
        };
        if !info.identifier.eq_ignore_ascii_case(claimed) {
            tracing::warn!("pod refused: ConnectWise answered for another member");
            return Err(PodError::MemberRefused);
        }
        let name = [info.first_name.as_deref(), info.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|n| !n.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(if name.is_empty() {
            format!("{} (ConnectWise)", info.identifier)
        } else {
            format!("{name} ({}, ConnectWise)", info.identifier)
        })
    }

    /// The case of a ticket, created (with its intake job) when deskproof has not seen the
    /// ticket yet, e.g. when ConnectWise's callback has not arrived.
    async fn case_for(&self, connection_id: i64, ticket: &str) -> Result<TicketCase, PodError> {
        if let Some(case) = self
            .store()
            .ticket_case_for_ticket(connection_id, ticket)
            .await?
        {
            return Ok(case);
        }
        self.store()
            .record_delivery(connection_id, &format!("pod:{ticket}"), ticket, now_ms())
            .await?;
        self.store()
            .ticket_case_for_ticket(connection_id, ticket)
            .await?
            .ok_or(PodError::Flow(FlowError::UnknownCase))
    }

    /// Checks a pod token and returns what it states with its ticket case.
    pub async fn open_token(&self, token: &str) -> Result<(PodClaims, TicketCase), PodError> {
        let claims = verify(self.flow.key.link_key(), token, now())?;
        let case = self
            .store()
            .ticket_case(claims.case_id)
            .await?
            .ok_or(PodError::BadToken)?;
        if case.connection_id != claims.connection_id
            || case
                .organization_id
                .is_some_and(|o| o != claims.organization_id)
        {
            return Err(PodError::BadToken);
        }
        Ok((claims, case))
    }

    async fn view_of(&self, case: &TicketCase, claims: &PodClaims) -> Result<PodView, PodError> {
        Ok(PodView {
            member: claims.member.clone(),
            reading: case.state == "received",
            page: self.flow.page(case).await?,
        })
    }

    /// The ticket behind a pod token.
    pub async fn view(&self, token: &str) -> Result<PodView, PodError> {
        let (claims, case) = self.open_token(token).await?;
        self.view_of(&case, &claims).await
    }

    /// Sends the push for the ticket behind a pod token, as the confirmed member.
    pub async fn push(&self, token: &str) -> Result<Attempt, PodError> {
        let (claims, case) = self.open_token(token).await?;
        Ok(self.flow.request_push(&case, None, &claims.member).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [9; 32];

    fn claims() -> PodClaims {
        PodClaims {
            case_id: 4,
            connection_id: 1,
            organization_id: 2,
            member: "Jordan Tech (jtech, ConnectWise)".into(),
            expires_at: 1_000,
        }
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let token = sign(&KEY, &claims());
        assert_eq!(verify(&KEY, &token, 999).ok(), Some(claims()));
        assert!(matches!(
            verify(&KEY, &token, 1_001),
            Err(PodError::Expired)
        ));
    }

    #[test]
    fn a_changed_token_or_another_key_is_refused() {
        let token = sign(&KEY, &claims());
        let mut other = claims();
        other.case_id = 5;
        let (_, tag) = token.split_once('.').unwrap_or_default();
        let forged = format!(
            "{}.{tag}",
            B64URL.encode(serde_json::to_vec(&other).unwrap_or_default())
        );
        assert!(matches!(verify(&KEY, &forged, 0), Err(PodError::BadToken)));
        assert!(matches!(
            verify(&[1; 32], &token, 0),
            Err(PodError::BadToken)
        ));
    }

    #[test]
    fn a_verification_link_is_not_a_pod_token() {
        let link = crate::verify::link::sign(
            &KEY,
            crate::verify::link::LinkClaims {
                case_id: 4,
                organization_id: 2,
                expires_at: 1_000,
            },
        );
        assert!(matches!(verify(&KEY, &link, 0), Err(PodError::BadToken)));
    }

    #[test]
    fn only_http_origins_are_kept() {
        let settings = serde_json::json!({"pod_origins": [
            "https://na.myconnectwise.net/some/path",
            "http://127.0.0.1:8080",
            "javascript:alert(1)",
            "https://x.example 'unsafe-inline'",
            "not a url"
        ]});
        assert_eq!(
            pod_origins(&settings),
            vec!["https://na.myconnectwise.net", "http://127.0.0.1:8080"]
        );
        assert!(pod_origins(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn member_ids_cannot_smuggle_separators() {
        assert!(plausible_member_id("jtech"));
        assert!(!plausible_member_id("jtech:other"));
        assert!(!plausible_member_id("a+b"));
        assert!(!plausible_member_id(""));
    }
}
