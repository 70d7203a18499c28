//! Server functions. Each checks who is asking, then hands over to the backend.
use leptos::prelude::*;

use crate::model::{AttemptRow, CurrentUser, VerificationPage};

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
