//! The server side of the UI's server functions.
use app::backend::{Backend, BackendError, BackendResult, PodOpen};
use app::model::{AttemptRow, CurrentUser, PodFrame, PodSession, PodView, VerificationPage};
use tower_sessions::Session;

use crate::auth::{self, AuthError};
use crate::storage::Store;
use crate::verify::flow::{attempt_row, Flow, FlowError};
use crate::verify::pod::{PodError, PodGate};
use crate::verify::worker::Worker;

pub struct AppBackend {
    pub store: Store,
    pub flow: Flow,
    pub worker: Worker,
    pub pod: PodGate,
    pub sign_ins: auth::SignInThrottle,
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

fn pod_error(e: PodError) -> BackendError {
    match e {
        PodError::Flow(e) => flow_error(e),
        PodError::Storage(e) => internal(e),
        other => BackendError::Invalid(other.to_string()),
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
        Ok(auth::session_user(&self.store, session)
            .await
            .map_err(internal)?
            .map(|user| auth::current_user(&user)))
    }

    async fn sign_in(
        &self,
        session: &Session,
        username: &str,
        password: &str,
    ) -> BackendResult<CurrentUser> {
        if let Err(wait) = self.sign_ins.attempt(username) {
            tracing::warn!("sign-in refused: too many attempts for one account");
            return Err(BackendError::Invalid(format!(
                "Too many sign-in attempts for this account. Try again in {} seconds.",
                wait.as_secs().max(1)
            )));
        }
        match auth::check_credentials(&self.store, username, password).await {
            Ok(user) => {
                auth::begin_session(session, &user)
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
        let mut page = self.flow.page(&case).await.map_err(flow_error)?;
        page.link_used = self.flow.link_used_at(token).await.map_err(flow_error)?;
        Ok(page)
    }

    async fn attempts(&self, session: &Session, token: &str) -> BackendResult<Vec<AttemptRow>> {
        self.require_user(session).await?;
        let case = self.flow.open_link(token).await.map_err(flow_error)?;
        self.flow.attempt_rows(&case).await.map_err(flow_error)
    }

    async fn send_push(&self, session: &Session, token: &str) -> BackendResult<AttemptRow> {
        let user = self.require_user(session).await?;
        let case = self.flow.open_link(token).await.map_err(flow_error)?;
        let attempt = self
            .flow
            .request_push_via_link(&case, token, Some(user.id), &user.display_name)
            .await
            .map_err(flow_error)?;
        self.worker.nudge_after_push();
        Ok(attempt_row(attempt))
    }

    async fn pod_frame(&self, connection_id: i64) -> BackendResult<PodFrame> {
        let origins = self.pod.origins(connection_id).await.map_err(pod_error)?;
        Ok(PodFrame {
            connection_id,
            origins,
        })
    }

    async fn pod_open(&self, request: PodOpen) -> BackendResult<PodSession> {
        let (token, view) = self.pod.open(&request).await.map_err(pod_error)?;
        Ok(PodSession { token, view })
    }

    async fn pod_status(&self, pod_token: &str) -> BackendResult<PodView> {
        self.pod.view(pod_token).await.map_err(pod_error)
    }

    async fn pod_verify(&self, pod_token: &str) -> BackendResult<AttemptRow> {
        let attempt = self.pod.push(pod_token).await.map_err(pod_error)?;
        self.worker.nudge_after_push();
        Ok(attempt_row(attempt))
    }

    async fn fresh_link(&self, session: &Session, token: &str) -> BackendResult<String> {
        self.require_user(session).await?;
        self.flow.renew_link(token).await.map_err(flow_error)
    }
}
