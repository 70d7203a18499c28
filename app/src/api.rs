//! Server functions. Each checks who is asking, then hands over to the backend.
use leptos::prelude::*;

use crate::model::CurrentUser;

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

/// The text of a server function error, without the framework's prefix.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(msg) => msg.clone(),
        other => other.to_string(),
    }
}
