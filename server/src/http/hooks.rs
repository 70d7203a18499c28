//! Inbound PSA webhooks. A delivery is authenticated, stored, and only then answered 200;
//! the ticket itself is fetched later by a background job, never trusted as sent.
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::AppState;
use crate::psa::source::{connect, Purpose};
use crate::psa::{Inbound, InboundRequest, Psa, PsaKind, WebhookError};
use crate::storage::Lane;
use crate::storage::StorageError;
use crate::verify::flow::now_ms;

fn answer(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "status": status.as_u16(), "message": message })),
    )
        .into_response()
}

/// `POST /hooks/connectwise/{connection_id}?recordId=…`: `x-content-signature` checked with
/// the key behind `Metadata.key_url` (fetched only from the connection's ConnectWise host),
/// `added` tickets only, de-duplicated on `MessageId`; see
/// [`crate::psa::connectwise::ConnectWiseClient`]'s `check_webhook`.
pub async fn connectwise(
    State(state): State<AppState>,
    Path(connection_id): Path<i64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    psa_webhook(
        state,
        PsaKind::ConnectWise,
        connection_id,
        headers,
        query,
        body,
    )
    .await
}

/// `POST /hooks/{psa}/{connection_id}`: the PSA's own check of the delivery (signature,
/// shared secret or credentials), then one way of storing and de-duplicating it for every PSA.
async fn psa_webhook(
    state: AppState,
    kind: PsaKind,
    connection_id: i64,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
) -> Response {
    state.worker.webhook_arrived();
    let psa = match state
        .webhook_checkers
        .get(&state, kind, connection_id)
        .await
    {
        Ok(Some(psa)) => psa,
        Ok(None) => {
            return answer(
                StatusCode::NOT_FOUND,
                &format!("no such {} connection", kind.product()),
            )
        }
        Err(CheckerError::Storage(e)) => {
            tracing::error!(error = %e, "cannot read a PSA connection");
            return answer(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable");
        }
        Err(CheckerError::Misconfigured(e)) => {
            tracing::error!(connection.id = connection_id, error = %e, "connection misconfigured");
            return answer(StatusCode::SERVICE_UNAVAILABLE, "connection misconfigured");
        }
    };
    let request = InboundRequest {
        headers: &headers,
        query: query.as_deref(),
        body: &body,
    };
    let (delivery_key, ticket) = match psa.check_webhook(&request).await {
        Ok(Inbound::NewTicket {
            delivery_key,
            ticket,
        }) => (delivery_key, ticket),
        Ok(Inbound::Ignored(why)) => return answer(StatusCode::OK, &why),
        Err(e) => {
            let status = match e {
                WebhookError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
                WebhookError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            tracing::warn!(psa = %kind, connection.id = connection_id, error = %e,
                "webhook refused");
            return answer(status, &e.to_string());
        }
    };
    store_delivery(&state, connection_id, &delivery_key, &ticket.to_string()).await
}

/// How long a connection's webhook checker is reused. A burst of deliveries reads and unseals
/// its connection once; a connection changed on another replica is checked with its new
/// settings within this (this process's own changes take effect at once).
const CHECKER_TTL: Duration = Duration::from_secs(5);

/// A connection's webhook checker and when it was made.
type Kept = (Instant, Arc<dyn Psa>);

/// The PSA clients that check webhooks, per connection, kept for [`CHECKER_TTL`].
#[derive(Clone, Default)]
pub struct WebhookCheckers(Arc<Mutex<HashMap<i64, Kept>>>);

enum CheckerError {
    Storage(StorageError),
    Misconfigured(String),
}

impl WebhookCheckers {
    /// The checker for `connection_id` if it is a `kind` connection.
    async fn get(
        &self,
        state: &AppState,
        kind: PsaKind,
        connection_id: i64,
    ) -> Result<Option<Arc<dyn Psa>>, CheckerError> {
        if let Some((loaded, psa)) = self.lock().get(&connection_id) {
            if loaded.elapsed() < CHECKER_TTL {
                return Ok((psa.kind() == kind).then(|| psa.clone()));
            }
        }
        let row = match state.store.psa_connection(connection_id).await {
            Ok(Some(row)) if row.kind == kind.as_str() => row,
            Ok(_) => return Ok(None),
            Err(e) => return Err(CheckerError::Storage(e)),
        };
        let psa = state
            .flow
            .key
            .open(&row.secrets_sealed)
            .map_err(|e| e.to_string())
            .and_then(|secrets| {
                connect(
                    &row.kind,
                    &row.settings,
                    secrets.expose(),
                    &state.psa_http,
                    Purpose::Webhooks,
                )
                .map_err(|e| e.to_string())
            })
            .map_err(CheckerError::Misconfigured)?;
        self.lock()
            .insert(connection_id, (Instant::now(), psa.clone()));
        Ok(Some(psa))
    }

    /// Drops the kept checker of a connection that was just changed.
    pub fn forget(&self, connection_id: i64) {
        self.lock().remove(&connection_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Kept>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Records an authentic delivery (once per key) and wakes the worker for a new ticket.
async fn store_delivery(
    state: &AppState,
    connection_id: i64,
    delivery_key: &str,
    ticket_id: &str,
) -> Response {
    match state
        .store
        .record_delivery(connection_id, delivery_key, ticket_id, now_ms())
        .await
    {
        Ok(true) => {
            tracing::info!(connection.id = connection_id, ticket.id = %ticket_id, "ticket received");
            state.worker.nudge(Lane::Work);
            answer(StatusCode::OK, "accepted")
        }
        Ok(false) => answer(StatusCode::OK, "duplicate delivery: already accepted"),
        Err(e) => {
            tracing::error!(error = %e, "cannot store a webhook delivery");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the delivery could not be stored",
            )
        }
    }
}

/// `POST /hooks/autotask/{connection_id}`
pub async fn autotask(
    State(state): State<AppState>,
    Path(connection_id): Path<i64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    psa_webhook(
        state,
        PsaKind::Autotask,
        connection_id,
        headers,
        query,
        body,
    )
    .await
}

/// `POST /hooks/freshdesk/{connection_id}`
pub async fn freshdesk(
    State(state): State<AppState>,
    Path(connection_id): Path<i64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    psa_webhook(
        state,
        PsaKind::Freshdesk,
        connection_id,
        headers,
        query,
        body,
    )
    .await
}

/// `POST /hooks/halopsa/{connection_id}`
pub async fn halopsa(
    State(state): State<AppState>,
    Path(connection_id): Path<i64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    psa_webhook(state, PsaKind::HaloPsa, connection_id, headers, query, body).await
}
