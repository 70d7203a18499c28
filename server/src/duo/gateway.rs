//! The verification flow's view of one Duo account: its Admin API directory, its Auth API push
//! and the Admin API verification push.
use std::sync::Arc;
use std::time::Duration;

use crate::duo::client::DuoClient;
use crate::duo::error::DuoError;
use crate::duo::types::{
    DuoUser, DuoUserId, PushOutcome, PushRefusal, PushRequest, TxId, VerificationPushId,
};
use crate::verify::matching::{Candidate, Directory};
use crate::verify::ports::{
    CallerCodeVia, DuoGateway, Preauth, PushStatus, RemoteError, VerificationPushError,
    VerificationPushSent,
};

/// How long one [`DuoGateway::verification_status`] call keeps asking before it answers
/// `Waiting`, like one Auth API long poll.
const VERIFICATION_WAIT: Duration = Duration::from_secs(20);

/// The two applications of one Duo account deskproof uses.
pub struct DuoAccount {
    pub auth: DuoClient,
    /// Admin API calls: the account's own Admin API keys, or an MSP parent's Accounts API
    /// keys bound to the child account (see [`DuoClient::for_child_account`]).
    pub admin: DuoClient,
    pub caller_code: CallerCodeVia,
}

fn remote(e: DuoError) -> RemoteError {
    let retryable = match &e {
        DuoError::RateLimited { .. } | DuoError::Timeout(_) | DuoError::Transport(_) => true,
        DuoError::Api { http_status, .. } => *http_status >= 500,
        _ => false,
    };
    RemoteError {
        message: e.to_string(),
        retryable,
        retry_after: None,
    }
}

fn candidate(u: DuoUser) -> Candidate {
    Candidate {
        user_id: u.user_id.0.clone(),
        aliases: u.aliases.values().cloned().collect(),
        email: u.email.as_ref().map(|m| m.expose().to_owned()),
        first_name: u.firstname,
        last_name: u.lastname,
        real_name: u.realname,
        status: serde_json::to_value(&u.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into()),
        is_enrolled: u.is_enrolled,
        username: u.username,
    }
}

#[async_trait::async_trait]
impl DuoGateway for DuoAccount {
    async fn directory(&self) -> Result<Arc<Directory>, RemoteError> {
        let users = self.admin.list_users(300).await.map_err(remote)?;
        Ok(Arc::new(Directory::new(
            users.into_iter().map(candidate).collect(),
        )))
    }

    async fn user(&self, user_id: &str) -> Result<Option<Candidate>, RemoteError> {
        let user = self
            .admin
            .user_by_id(&DuoUserId(user_id.to_owned()))
            .await
            .map_err(remote)?;
        Ok(user.map(candidate))
    }

    async fn preauth(&self, username: &str) -> Result<Preauth, RemoteError> {
        let result = self.auth.preauth(username).await.map_err(remote)?;
        Ok(match result.push_device() {
            Ok(_) => Preauth::Push,
            Err(PushRefusal::NoPushDevice) => Preauth::NoPushDevice,
            Err(PushRefusal::NotEnrolled) => Preauth::NotEnrolled,
            Err(PushRefusal::WouldNotPush { .. }) => Preauth::Allow,
            Err(PushRefusal::Disabled { status_msg } | PushRefusal::LockedOut { status_msg }) => {
                Preauth::Deny(status_msg)
            }
        })
    }

    async fn push(&self, username: &str, text: &str) -> Result<String, RemoteError> {
        self.push_with_details(username, text, &[]).await
    }

    async fn push_with_details(
        &self,
        username: &str,
        text: &str,
        details: &[(String, String)],
    ) -> Result<String, RemoteError> {
        let mut pushinfo = vec![("Request".to_owned(), text.to_owned())];
        pushinfo.extend(details.iter().cloned());
        let request = PushRequest {
            username: username.to_owned(),
            device: None,
            type_text: Some(text.to_owned()),
            display_username: None,
            pushinfo,
        };
        let txid = self.auth.auth_push_async(&request).await.map_err(remote)?;
        Ok(txid.0)
    }

    async fn status(&self, txid: &str) -> Result<PushStatus, RemoteError> {
        let status = self
            .auth
            .auth_status(&TxId(txid.to_owned()))
            .await
            .map_err(remote)?;
        Ok(push_status(status.outcome()))
    }

    fn caller_code_via(&self) -> CallerCodeVia {
        self.caller_code
    }

    async fn verification_push(
        &self,
        user_id: &str,
    ) -> Result<VerificationPushSent, VerificationPushError> {
        let user_id = DuoUserId(user_id.to_owned());
        let user = self
            .admin
            .user_by_id(&user_id)
            .await
            .map_err(verification_error)?
            .ok_or(VerificationPushError::UnknownUser)?;
        // Limitation: a user with several push phones gets the push on the first one listed;
        // Duo's Admin API offers no "auto" device here.
        let phone = user
            .verification_phone()
            .ok_or(VerificationPushError::NoPushPhone)?;
        let sent = self
            .admin
            .send_verification_push(&user_id, &phone.phone_id)
            .await
            .map_err(verification_error)?;
        Ok(VerificationPushSent {
            push_id: sent.push_id.0,
            confirmation_code: sent.confirmation_code,
        })
    }

    async fn verification_status(
        &self,
        user_id: &str,
        push_id: &str,
    ) -> Result<PushStatus, RemoteError> {
        let result = self
            .admin
            .wait_for_verification(
                &DuoUserId(user_id.to_owned()),
                &VerificationPushId(push_id.to_owned()),
                VERIFICATION_WAIT,
            )
            .await
            .map_err(remote)?;
        Ok(match result {
            // Duo keeps the answer for 120 s, then answers 404: the push timed out.
            None => PushStatus::TimedOut,
            Some(result) => push_status(result.outcome()),
        })
    }
}

fn push_status(outcome: Option<PushOutcome>) -> PushStatus {
    match outcome {
        None => PushStatus::Waiting,
        Some(PushOutcome::Approved) => PushStatus::Approved,
        Some(PushOutcome::Denied) => PushStatus::Denied,
        Some(PushOutcome::Fraud) => PushStatus::Fraud,
        Some(PushOutcome::Bypass) => PushStatus::Bypass,
        Some(PushOutcome::LockedOut) => PushStatus::LockedOut,
        Some(PushOutcome::TimedOut) => PushStatus::TimedOut,
    }
}

fn verification_error(e: DuoError) -> VerificationPushError {
    match e {
        DuoError::Forbidden { code, ref message } => VerificationPushError::NotPermitted(format!(
            "{e}: {message}{}",
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        )),
        other => VerificationPushError::Remote(remote(other)),
    }
}
