//! The server's side of every server function. The `deskproof` server crate implements
//! [`Backend`] and puts it in the Leptos context; server functions stay thin and only hand over.
use std::sync::Arc;

use tower_sessions::Session;

use crate::model::{AttemptRow, CurrentUser, PodFrame, PodSession, PodView, VerificationPage};

/// An error a server function may show to the person who asked.
#[derive(Debug, Clone)]
pub enum BackendError {
    /// Not signed in, or the session expired.
    Unauthenticated,
    /// Signed in, but the role does not allow this.
    Forbidden,
    /// The input was wrong; the message says how, in words fit for the page.
    Invalid(String),
    /// Something failed inside; details are in the server log only.
    Internal,
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::Unauthenticated => f.write_str("Please sign in."),
            BackendError::Forbidden => f.write_str("You are not allowed to do that."),
            BackendError::Invalid(msg) => f.write_str(msg),
            BackendError::Internal => {
                f.write_str("Something went wrong on the server. Please try again.")
            }
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn current_user(&self, session: &Session) -> BackendResult<Option<CurrentUser>>;
    async fn sign_in(
        &self,
        session: &Session,
        username: &str,
        password: &str,
    ) -> BackendResult<CurrentUser>;
    async fn sign_out(&self, session: &Session) -> BackendResult<()>;

    /// The ticket behind a verification link. Reads only: never sends a push.
    async fn verification(&self, session: &Session, token: &str)
        -> BackendResult<VerificationPage>;
    /// The pushes asked for on the ticket behind a link, newest first.
    async fn attempts(&self, session: &Session, token: &str) -> BackendResult<Vec<AttemptRow>>;
    /// Sends the Duo Push (or records why none could be sent).
    async fn send_push(&self, session: &Session, token: &str) -> BackendResult<AttemptRow>;

    // ConnectWise pod: no session; the member is confirmed with ConnectWise and then carried
    // by a short-lived pod token.
    /// The ConnectWise origins a pod of this connection talks to.
    async fn pod_frame(&self, connection_id: i64) -> BackendResult<PodFrame>;
    /// Confirms the member with ConnectWise, checks the ticket, and hands out a pod token.
    async fn pod_open(&self, request: PodOpen) -> BackendResult<PodSession>;
    /// The ticket behind a pod token.
    async fn pod_status(&self, pod_token: &str) -> BackendResult<PodView>;
    /// Sends the Duo Push for the ticket behind a pod token.
    async fn pod_verify(&self, pod_token: &str) -> BackendResult<AttemptRow>;
    /// For a genuine link that expired (or still works): the path of a new link to the same
    /// ticket, `/verify/<token>`. A forged or altered link gets none.
    async fn fresh_link(&self, session: &Session, token: &str) -> BackendResult<String>;
}

/// What the pod page learned from ConnectWise's handshake. Nothing here is trusted as is.
#[derive(Clone)]
pub struct PodOpen {
    pub connection_id: i64,
    pub ticket_id: String,
    pub member_id: String,
    pub member_hash: String,
}

impl std::fmt::Debug for PodOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodOpen")
            .field("connection_id", &self.connection_id)
            .field("ticket_id", &self.ticket_id)
            .field("member_id", &self.member_id)
            .finish_non_exhaustive()
    }
}

pub type SharedBackend = Arc<dyn Backend>;

/// The backend and session of the request being served.
pub async fn request_context() -> Result<(SharedBackend, Session), leptos::prelude::ServerFnError> {
    use leptos::prelude::*;
    let backend = use_context::<SharedBackend>()
        .ok_or_else(|| ServerFnError::new("server is missing its backend"))?;
    let session: Session = leptos_axum::extract().await?;
    Ok((backend, session))
}

/// The backend of the request being served, for pod calls: they carry no session.
pub fn pod_context() -> Result<SharedBackend, leptos::prelude::ServerFnError> {
    use leptos::prelude::*;
    use_context::<SharedBackend>()
        .ok_or_else(|| ServerFnError::new("server is missing its backend"))
}

impl From<BackendError> for leptos::prelude::ServerFnError {
    fn from(e: BackendError) -> Self {
        leptos::prelude::ServerFnError::new(e.to_string())
    }
}
