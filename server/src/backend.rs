//! The server side of the UI's server functions.
use app::backend::{Backend, BackendError, BackendResult};
use app::model::{AttemptRow, CurrentUser, VerificationPage};
use tower_sessions::Session;

use crate::auth::{self, AuthError, SESSION_USER_KEY};
use crate::storage::{Attempt, Store};
use crate::verify::flow::{Flow, FlowError};
use crate::verify::worker::Worker;

pub struct AppBackend {
    pub store: Store,
    pub flow: Flow,
    pub worker: Worker,
}

fn internal(e: impl std::fmt::Display) -> BackendError {
    tracing::error!(error = %e, "server function failed");
    BackendError::Internal
}

fn flow_error(e: FlowError) -> BackendError {
    match e {
        FlowError::Storage(e) => internal(e),
        FlowError::Remote(e) => BackendError::Invalid(format!("Duo or the PSA failed: {e}")),
        other => BackendError::Invalid(other.to_string()),
    }
}

fn attempt_row(a: Attempt) -> AttemptRow {
    AttemptRow {
        id: a.id,
        state: a.state,
        technician: a.technician_name,
        duo_user: a
            .duo_username
            .as_deref()
            .map(crate::verify::matching::mask_username),
        reason: a.reason,
        created_at: a.created_at,
    }
}

impl AppBackend {
    async fn require_user(&self, session: &Session) -> BackendResult<CurrentUser> {
        self.current_user(session)
            .await?
            .ok_or(BackendError::Unauthenticated)
    }
}

#[async_trait::async_trait]
impl Backend for AppBackend {
    async fn current_user(&self, session: &Session) -> BackendResult<Option<CurrentUser>> {
        let Some(id) = session
            .get::<i64>(SESSION_USER_KEY)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        match self.store.user_by_id(id).await.map_err(internal)? {
            Some(user) if !user.disabled => Ok(Some(auth::current_user(&user))),
            _ => {
                session.flush().await.map_err(internal)?;
                Ok(None)
            }
        }
    }

    async fn sign_in(
        &self,
        session: &Session,
        username: &str,
        password: &str,
    ) -> BackendResult<CurrentUser> {
        match auth::check_credentials(&self.store, username, password).await {
            Ok(user) => {
                // A new session id at sign-in, so a planted id never becomes authenticated.
                session.cycle_id().await.map_err(internal)?;
                session
                    .insert(SESSION_USER_KEY, user.id)
                    .await
                    .map_err(internal)?;
                tracing::info!(user.id = user.id, "signed in");
                Ok(auth::current_user(&user))
            }
            Err(e @ (AuthError::BadCredentials | AuthError::Disabled)) => {
                tracing::info!("sign-in refused");
                Err(BackendError::Invalid(e.to_string()))
            }
            Err(e) => Err(internal(e)),
        }
    }

    async fn sign_out(&self, session: &Session) -> BackendResult<()> {
        session.flush().await.map_err(internal)
    }

    async fn verification(
        &self,
        session: &Session,
        token: &str,
    ) -> BackendResult<VerificationPage> {
        self.require_user(session).await?;
        let case = self.flow.open_link(token).await.map_err(flow_error)?;
        let view = self.flow.view(&case).await.map_err(flow_error)?;
        let (matched, problem) = if case.state == "ready" {
            match self.flow.preview_match(&case).await {
                Ok(m) => (m, None),
                Err(e) => (format!("Duo could not be asked ({e})."), None),
            }
        } else {
            let problem = case.problem.clone().unwrap_or_else(|| case.state.clone());
            (
                "(not looked up)".to_owned(),
                Some(format!("This ticket cannot be verified: {problem}")),
            )
        };
        Ok(VerificationPage {
            ticket_id: view.case.ticket_id,
            summary: view.case.summary,
            contact: view.case.contact,
            organization: view.case.organization,
            matched,
            problem,
            attempts: view
                .attempts
                .into_iter()
                .map(|a| AttemptRow {
                    id: a.id,
                    state: a.state,
                    technician: a.technician,
                    duo_user: a.duo_user,
                    reason: a.reason,
                    created_at: a.created_at,
                })
                .collect(),
        })
    }

    async fn attempts(&self, session: &Session, token: &str) -> BackendResult<Vec<AttemptRow>> {
        self.require_user(session).await?;
        let case = self.flow.open_link(token).await.map_err(flow_error)?;
        let attempts = self
            .store
            .attempts_for_case(case.id)
            .await
            .map_err(internal)?;
        Ok(attempts.into_iter().map(attempt_row).collect())
    }

    async fn send_push(&self, session: &Session, token: &str) -> BackendResult<AttemptRow> {
        let user = self.require_user(session).await?;
        let case = self.flow.open_link(token).await.map_err(flow_error)?;
        let attempt = self
            .flow
            .request_push(&case, Some(user.id), &user.display_name)
            .await
            .map_err(flow_error)?;
        self.worker.nudge();
        Ok(attempt_row(attempt))
    }
}
