//! Turns stored connection settings into a PSA client the verification flow can use.
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::psa::connectwise::{ConnectWiseClient, ConnectWiseConfig};
use crate::psa::{Psa, PsaError, TicketId};
use crate::secret::Secret;
use crate::verify::ports::{RemoteError, TicketFacts, TicketSource};

/// Non-secret ConnectWise settings as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnectWiseSettings {
    /// REST base, e.g. `https://api-na.myconnectwise.net/v4_6_release/apis/3.0`.
    pub base_url: String,
    pub company_id: String,
    pub public_key: String,
    pub client_id: String,
}

/// Secret ConnectWise settings, sealed as one JSON object.
#[derive(Clone, Serialize, Deserialize)]
pub struct ConnectWiseSecrets {
    pub private_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("unsupported PSA kind {0:?}")]
    UnknownKind(String),
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Psa(#[from] PsaError),
}

pub fn connectwise_config(
    settings: &serde_json::Value,
    secrets_json: &str,
) -> Result<ConnectWiseConfig, SourceError> {
    let s: ConnectWiseSettings = serde_json::from_value(settings.clone())
        .map_err(|e| SourceError::Settings(e.to_string()))?;
    let secrets: ConnectWiseSecrets = serde_json::from_str(secrets_json).map_err(|_| {
        SourceError::Settings("the sealed secrets are not a ConnectWise key".into())
    })?;
    Ok(ConnectWiseConfig {
        base_url: Url::parse(&s.base_url).map_err(|e| SourceError::Settings(e.to_string()))?,
        company_id: s.company_id,
        public_key: s.public_key,
        private_key: Secret::new(secrets.private_key),
        client_id: s.client_id,
    })
}

/// HTTP clients shared by every connection of each PSA kind, so connection pools are reused.
#[derive(Clone)]
pub struct PsaHttp {
    pub connectwise: reqwest::Client,
}

impl PsaHttp {
    pub fn new() -> Result<PsaHttp, SourceError> {
        Ok(PsaHttp {
            connectwise: ConnectWiseClient::http_client()?,
        })
    }
}

/// A client for the stored connection of the given kind.
pub fn ticket_source(
    kind: &str,
    settings: &serde_json::Value,
    secrets_json: &str,
    http: &PsaHttp,
) -> Result<Arc<dyn TicketSource>, SourceError> {
    let psa: Arc<dyn Psa> = match kind {
        "connectwise" => Arc::new(ConnectWiseClient::with_http(
            connectwise_config(settings, secrets_json)?,
            http.connectwise.clone(),
        )?),
        other => return Err(SourceError::UnknownKind(other.to_owned())),
    };
    Ok(Arc::new(PsaTicketSource(psa)))
}

/// Adapts a [`Psa`] to the flow's [`TicketSource`].
pub struct PsaTicketSource(pub Arc<dyn Psa>);

fn remote(e: PsaError) -> RemoteError {
    RemoteError {
        retryable: e.is_retryable(),
        message: e.to_string(),
    }
}

fn ticket_id(id: &str) -> Result<TicketId, RemoteError> {
    id.parse()
        .map_err(|_| RemoteError::permanent(format!("{id:?} is not a ticket number")))
}

#[async_trait::async_trait]
impl TicketSource for PsaTicketSource {
    async fn ticket_facts(&self, id: &str) -> Result<TicketFacts, RemoteError> {
        let loaded = self.0.load_ticket(ticket_id(id)?).await.map_err(remote)?;
        let company_name = loaded.ticket.company_name.clone();
        Ok(match loaded.normalized {
            Ok(n) => TicketFacts {
                summary: Some(n.summary),
                company_id: Some(n.company_id.to_string()),
                company_name,
                first_name: Some(n.first_name),
                last_name: Some(n.last_name),
                email: n.email,
                missing: Vec::new(),
            },
            Err(missing) => {
                let contact = loaded.contact.as_ref();
                TicketFacts {
                    summary: Some(loaded.ticket.summary.clone()),
                    company_id: loaded.ticket.company_id.map(|c| c.to_string()),
                    company_name,
                    first_name: contact.and_then(|c| c.first_name.clone()),
                    last_name: contact.and_then(|c| c.last_name.clone()),
                    email: contact.and_then(|c| c.email.clone()),
                    missing: missing.fields().iter().map(|f| f.label()).collect(),
                }
            }
        })
    }

    async fn post_internal_note(&self, id: &str, text: &str) -> Result<String, RemoteError> {
        let note = self
            .0
            .post_internal_note(ticket_id(id)?, text)
            .await
            .map_err(remote)?;
        Ok(note.to_string())
    }

    async fn find_note(&self, id: &str, marker: &str) -> Result<Option<String>, RemoteError> {
        let found = self
            .0
            .find_note(ticket_id(id)?, marker)
            .await
            .map_err(remote)?;
        Ok(found.map(|n| n.to_string()))
    }
}
