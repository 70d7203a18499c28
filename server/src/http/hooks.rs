//! Inbound PSA webhooks. A delivery is authenticated, stored, and only then answered 200;
//! the ticket itself is fetched later by a background job, never trusted as sent.
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::sync::Mutex;

use crate::http::AppState;
use crate::psa::connectwise::{CallbackError, CallbackVerifier};
use crate::psa::source::{connect, connectwise_config, Purpose};
use crate::psa::{Inbound, InboundRequest, PsaKind, WebhookError};
use crate::verify::flow::now_ms;

/// Verifiers per connection, kept so their signing-key caches live across deliveries.
#[derive(Clone, Default)]
pub struct Verifiers(Arc<Mutex<HashMap<i64, Arc<CallbackVerifier>>>>);

fn answer(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "status": status.as_u16(), "message": message })),
    )
        .into_response()
}

/// `POST /hooks/connectwise/{connection_id}`
pub async fn connectwise(
    State(state): State<AppState>,
    Path(connection_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let verifier = match verifier_for(&state, connection_id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let event = match verifier.verify_request(&headers, &body).await {
        Ok(event) => event,
        Err(e @ (CallbackError::MissingSignature | CallbackError::BadSignature)) => {
            tracing::warn!(connection.id = connection_id, error = %e, "callback refused");
            return answer(StatusCode::UNAUTHORIZED, &e.to_string());
        }
        Err(e @ CallbackError::KeyUrlNotAllowed { .. }) => {
            tracing::warn!(
                connection.id = connection_id,
                "callback key_url not allowed"
            );
            return answer(StatusCode::UNAUTHORIZED, &e.to_string());
        }
        Err(e @ CallbackError::Malformed(_)) => {
            return answer(StatusCode::BAD_REQUEST, &e.to_string());
        }
        Err(e @ CallbackError::KeyFetch(_)) => {
            tracing::warn!(connection.id = connection_id, error = %e, "callback key unavailable");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the signing key could not be fetched",
            );
        }
    };
    // The message id is what makes a replayed delivery recognizable: none, no delivery.
    if event.message_id.trim().is_empty() {
        return answer(
            StatusCode::BAD_REQUEST,
            "the callback body is malformed: no MessageId",
        );
    }
    let Some(ticket_id) = event.ticket_id.filter(|_| event.is_ticket_added()) else {
        return answer(StatusCode::OK, "ignored: only new tickets are verified");
    };
    match state
        .store
        .record_delivery(
            connection_id,
            &event.message_id,
            &ticket_id.to_string(),
            now_ms(),
        )
        .await
    {
        Ok(true) => {
            tracing::info!(connection.id = connection_id, ticket.id = %ticket_id, "ticket received");
            state.worker.nudge();
            answer(StatusCode::OK, "accepted")
        }
        Ok(false) => answer(StatusCode::OK, "duplicate delivery: already accepted"),
        Err(e) => {
            tracing::error!(error = %e, "cannot store a callback");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the delivery could not be stored",
            )
        }
    }
}

async fn verifier_for(
    state: &AppState,
    connection_id: i64,
) -> Result<Arc<CallbackVerifier>, Response> {
    let mut cache = state.verifiers.0.lock().await;
    if let Some(v) = cache.get(&connection_id) {
        return Ok(v.clone());
    }
    let row = match state.store.psa_connection(connection_id).await {
        Ok(Some(row)) if row.kind == "connectwise" => row,
        Ok(_) => {
            return Err(answer(
                StatusCode::NOT_FOUND,
                "no such ConnectWise connection",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read a PSA connection");
            return Err(answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable",
            ));
        }
    };
    let secrets = state.flow.key.open(&row.secrets_sealed).map_err(|_| {
        tracing::error!(
            connection.id = connection_id,
            "connection secrets cannot be opened"
        );
        answer(StatusCode::SERVICE_UNAVAILABLE, "connection misconfigured")
    })?;
    let verifier = connectwise_config(&row.settings, secrets.expose())
        .map_err(|e| e.to_string())
        .and_then(|config| CallbackVerifier::for_tenant(&config).map_err(|e| e.to_string()))
        .map_err(|e| {
            tracing::error!(connection.id = connection_id, error = %e, "connection misconfigured");
            answer(StatusCode::SERVICE_UNAVAILABLE, "connection misconfigured")
        })?;
    let verifier = Arc::new(verifier);
    cache.insert(connection_id, verifier.clone());
    Ok(verifier)
}

/// `POST /hooks/{autotask|freshdesk|halopsa}/{connection_id}`: the PSA's own check of the
/// delivery (signature, shared secret or credentials), then the same storing and
/// de-duplication as ConnectWise callbacks.
async fn psa_webhook(
    state: AppState,
    kind: PsaKind,
    connection_id: i64,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
) -> Response {
    let row = match state.store.psa_connection(connection_id).await {
        Ok(Some(row)) if row.kind == kind.as_str() => row,
        Ok(_) => {
            return answer(
                StatusCode::NOT_FOUND,
                &format!("no such {} connection", kind.product()),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read a PSA connection");
            return answer(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable");
        }
    };
    let psa = match state
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
        }) {
        Ok(psa) => psa,
        Err(e) => {
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
            state.worker.nudge();
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
