//! Server functions. Each checks who is asking, then hands over to the backend.
use leptos::prelude::*;

use crate::model::{AttemptRow, CurrentUser, PodFrame, PodSession, PodView, VerificationPage};

#[server(prefix = "/api", endpoint = "whoami")]
pub async fn whoami() -> Result<Option<CurrentUser>, ServerFnError> {
    let (backend, session) = crate::backend::request_context().await?;
    Ok(backend.current_user(&session).await?)
}

#[server(prefix = "/api", endpoint = "sign_in")]
pub async fn sign_in(username: String, password: String) -> Result<CurrentUser, ServerFnError> {
    let (backend, session) = crate::backend::request_context().await?;
    Ok(backend.sign_in(&session, &username, &password).await?)
}

#[server(prefix = "/api", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    let (backend, session) = crate::backend::request_context().await?;
    backend.sign_out(&session).await?;
    leptos_axum::redirect("/signin");
    Ok(())
}

#[server(prefix = "/api", endpoint = "verification")]
pub async fn verification(token: String) -> Result<VerificationPage, ServerFnError> {
    let (backend, session) = crate::backend::request_context().await?;
    Ok(backend.verification(&session, &token).await?)
}

#[server(prefix = "/api", endpoint = "attempts")]
pub async fn attempts(token: String) -> Result<Vec<AttemptRow>, ServerFnError> {
    let (backend, session) = crate::backend::request_context().await?;
    Ok(backend.attempts(&session, &token).await?)
}

#[server(prefix = "/api", endpoint = "send_push")]
pub async fn send_push(token: String) -> Result<AttemptRow, ServerFnError> {
    let (backend, session) = crate::backend::request_context().await?;
    Ok(backend.send_push(&session, &token).await?)
}

#[server(prefix = "/api", endpoint = "fresh_link")]
pub async fn fresh_link(token: String) -> Result<String, ServerFnError> {
    let (backend, session) = crate::backend::request_context().await?;
    Ok(backend.fresh_link(&session, &token).await?)
}

/// The text of a server function error, without the framework's prefix.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(msg) => msg.clone(),
        other => other.to_string(),
    }
}

// ConnectWise pod. The pod token lives in the page's memory only and is sent with each call:
// inside ConnectWise's iframe, third-party cookies may be blocked or partitioned.

#[server(prefix = "/api", endpoint = "pod_origins")]
pub async fn pod_origins(connection_id: i64) -> Result<PodFrame, ServerFnError> {
    let backend = crate::backend::pod_context()?;
    Ok(backend.pod_frame(connection_id).await?)
}

#[server(prefix = "/api", endpoint = "pod_open")]
pub async fn pod_open(
    connection_id: i64,
    ticket_id: String,
    member_id: String,
    member_hash: String,
) -> Result<PodSession, ServerFnError> {
    let backend = crate::backend::pod_context()?;
    let request = crate::backend::PodOpen {
        connection_id,
        ticket_id,
        member_id,
        member_hash,
    };
    Ok(backend.pod_open(request).await?)
}

#[server(prefix = "/api", endpoint = "pod_status")]
pub async fn pod_status(pod_token: String) -> Result<PodView, ServerFnError> {
    let backend = crate::backend::pod_context()?;
    Ok(backend.pod_status(&pod_token).await?)
}

#[server(prefix = "/api", endpoint = "pod_verify")]
pub async fn pod_verify(pod_token: String) -> Result<AttemptRow, ServerFnError> {
    let backend = crate::backend::pod_context()?;
    Ok(backend.pod_verify(&pod_token).await?)
}
