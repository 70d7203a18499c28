//! Turns stored connection settings into a PSA client: the flow's [`TicketSource`], the
//! webhook receiver's checker and the sweep's ticket lister all come from [`connect`].
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::psa::autotask::{AutotaskClient, AutotaskConfig, ZoneCache, DEFAULT_ZONE_LOOKUP};
use crate::psa::connectwise::{
    CallbackVerifier, ConnectWiseClient, ConnectWiseConfig, HttpKeyFetcher, KeyCache,
};
use crate::psa::freshdesk::{FreshdeskClient, FreshdeskConfig, DEFAULT_WEBHOOK_HEADER};
use crate::psa::halopsa::{HaloClient, HaloConfig, OutcomeCache, TokenCache};
use crate::psa::{contact_of_other_company, Psa, PsaError, PsaKind, TicketId};
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

/// Non-secret Autotask settings as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AutotaskSettings {
    /// The API user's e-mail address.
    pub username: String,
    pub integration_code: String,
    /// Default: Autotask's public `zoneInformation` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_lookup_url: Option<String>,
    /// `noteType` picklist value for written notes; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note_type: Option<i64>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct AutotaskSecrets {
    pub secret: String,
    /// The ticket webhook's `SecretKey`.
    pub webhook_secret: String,
}

/// Non-secret Freshdesk settings as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FreshdeskSettings {
    /// `https://{domain}.freshdesk.com`.
    pub base_url: String,
    /// Default `X-Webhook-Token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_header: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct FreshdeskSecrets {
    pub api_key: String,
    pub webhook_secret: String,
}

/// Non-secret HaloPSA settings as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HaloSettings {
    pub auth_url: String,
    pub api_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub client_id: String,
    /// Set: webhooks use Basic with this user; unset: Bearer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_username: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct HaloSecrets {
    pub client_secret: String,
    pub webhook_secret: String,
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

fn settings_of<T: serde::de::DeserializeOwned>(
    settings: &serde_json::Value,
) -> Result<T, SourceError> {
    serde_json::from_value(settings.clone()).map_err(|e| SourceError::Settings(e.to_string()))
}

fn secrets_of<T: serde::de::DeserializeOwned>(
    secrets_json: &str,
    kind: PsaKind,
) -> Result<T, SourceError> {
    serde_json::from_str(secrets_json).map_err(|_| {
        SourceError::Settings(format!(
            "the sealed secrets are not {} credentials",
            kind.product()
        ))
    })
}

fn url_of(name: &str, value: &str) -> Result<Url, SourceError> {
    Url::parse(value).map_err(|e| SourceError::Settings(format!("{name}: {e}")))
}

pub fn connectwise_config(
    settings: &serde_json::Value,
    secrets_json: &str,
) -> Result<ConnectWiseConfig, SourceError> {
    let s: ConnectWiseSettings = settings_of(settings)?;
    let secrets: ConnectWiseSecrets = secrets_of(secrets_json, PsaKind::ConnectWise)?;
    Ok(ConnectWiseConfig {
        base_url: url_of("base_url", &s.base_url)?,
        company_id: s.company_id,
        public_key: s.public_key,
        private_key: Secret::new(secrets.private_key),
        client_id: s.client_id,
    })
}

pub fn autotask_config(
    settings: &serde_json::Value,
    secrets_json: &str,
) -> Result<AutotaskConfig, SourceError> {
    let s: AutotaskSettings = settings_of(settings)?;
    let secrets: AutotaskSecrets = secrets_of(secrets_json, PsaKind::Autotask)?;
    Ok(AutotaskConfig {
        zone_lookup_url: url_of(
            "zone_lookup_url",
            s.zone_lookup_url.as_deref().unwrap_or(DEFAULT_ZONE_LOOKUP),
        )?,
        username: s.username,
        secret: Secret::new(secrets.secret),
        integration_code: s.integration_code,
        webhook_secret: Secret::new(secrets.webhook_secret),
        note_type: s
            .note_type
            .unwrap_or(crate::psa::autotask::client::DEFAULT_NOTE_TYPE),
    })
}

pub fn freshdesk_config(
    settings: &serde_json::Value,
    secrets_json: &str,
) -> Result<FreshdeskConfig, SourceError> {
    let s: FreshdeskSettings = settings_of(settings)?;
    let secrets: FreshdeskSecrets = secrets_of(secrets_json, PsaKind::Freshdesk)?;
    Ok(FreshdeskConfig {
        base_url: url_of("base_url", &s.base_url)?,
        api_key: Secret::new(secrets.api_key),
        webhook_secret: Secret::new(secrets.webhook_secret),
        webhook_header: s
            .webhook_header
            .unwrap_or_else(|| DEFAULT_WEBHOOK_HEADER.to_owned()),
    })
}

pub fn halo_config(
    settings: &serde_json::Value,
    secrets_json: &str,
) -> Result<HaloConfig, SourceError> {
    let s: HaloSettings = settings_of(settings)?;
    let secrets: HaloSecrets = secrets_of(secrets_json, PsaKind::HaloPsa)?;
    Ok(HaloConfig {
        auth_url: url_of("auth_url", &s.auth_url)?,
        api_url: url_of("api_url", &s.api_url)?,
        tenant: s.tenant,
        client_id: s.client_id,
        client_secret: Secret::new(secrets.client_secret),
        webhook_username: s.webhook_username,
        webhook_secret: Secret::new(secrets.webhook_secret),
    })
}

/// Checks stored settings and sealed-secret JSON of a connection before they are stored: the
/// settings must make a client configuration and no secret may be blank (a blank webhook
/// secret would let anyone in). The setup file and the settings pages both use this.
pub fn check_connection(
    kind: PsaKind,
    settings: &serde_json::Value,
    secrets_json: &str,
) -> Result<(), SourceError> {
    match kind {
        PsaKind::ConnectWise => connectwise_config(settings, secrets_json).map(drop),
        PsaKind::Autotask => autotask_config(settings, secrets_json).map(drop),
        PsaKind::Freshdesk => freshdesk_config(settings, secrets_json).map(drop),
        PsaKind::HaloPsa => halo_config(settings, secrets_json).map(drop),
    }?;
    let secrets: serde_json::Value = serde_json::from_str(secrets_json)
        .map_err(|_| SourceError::Settings("the secrets are not a JSON object".into()))?;
    let blank = secrets
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, v)| v.as_str().is_some_and(|s| s.trim().is_empty()));
    if let Some((field, _)) = blank {
        return Err(SourceError::Settings(format!("{field} is empty")));
    }
    Ok(())
}

/// HTTP clients and caches shared by every connection, so connection pools, ConnectWise
/// signing keys, Autotask zones and HaloPSA tokens and outcomes are reused across jobs and
/// webhook deliveries.
#[derive(Clone)]
pub struct PsaHttp {
    pub connectwise: reqwest::Client,
    /// Fetches ConnectWise callback signing keys (never follows redirects).
    pub callback_keys_http: reqwest::Client,
    pub callback_keys: KeyCache,
    /// Autotask, Freshdesk and HaloPSA.
    pub others: reqwest::Client,
    pub autotask_zones: ZoneCache,
    pub halo_tokens: TokenCache,
    pub halo_outcomes: OutcomeCache,
}

impl PsaHttp {
    pub fn new() -> Result<PsaHttp, SourceError> {
        Ok(PsaHttp {
            connectwise: ConnectWiseClient::http_client()?,
            callback_keys_http: HttpKeyFetcher::http_client()
                .map_err(|e| SourceError::Settings(e.to_string()))?,
            callback_keys: KeyCache::default(),
            others: crate::psa::http::http_client()?,
            autotask_zones: ZoneCache::default(),
            halo_tokens: TokenCache::default(),
            halo_outcomes: OutcomeCache::default(),
        })
    }
}

/// What the client is for: webhooks need ConnectWise's signing-key fetcher, API calls not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Api,
    Webhooks,
}

/// A client for the stored connection of the given kind.
pub fn connect(
    kind: &str,
    settings: &serde_json::Value,
    secrets_json: &str,
    http: &PsaHttp,
    purpose: Purpose,
) -> Result<Arc<dyn Psa>, SourceError> {
    let kind = PsaKind::parse(kind).ok_or_else(|| SourceError::UnknownKind(kind.to_owned()))?;
    Ok(match kind {
        PsaKind::ConnectWise => {
            let config = connectwise_config(settings, secrets_json)?;
            let mut client =
                ConnectWiseClient::with_http(config.clone(), http.connectwise.clone())?;
            if purpose == Purpose::Webhooks {
                // Key URLs only ever on this tenant's host, keys cached across deliveries.
                let fetcher = HttpKeyFetcher::with_http(
                    http.callback_keys_http.clone(),
                    Some(config.client_id.clone()),
                );
                let verifier = CallbackVerifier::new(&config.base_url, Arc::new(fetcher))
                    .with_company(config.company_id.clone())
                    .with_key_cache(http.callback_keys.clone());
                client = client.with_callback_verifier(Arc::new(verifier));
            }
            Arc::new(client)
        }
        PsaKind::Autotask => Arc::new(AutotaskClient::with_http(
            autotask_config(settings, secrets_json)?,
            http.others.clone(),
            http.autotask_zones.clone(),
        )?),
        PsaKind::Freshdesk => Arc::new(FreshdeskClient::with_http(
            freshdesk_config(settings, secrets_json)?,
            http.others.clone(),
        )?),
        PsaKind::HaloPsa => Arc::new(
            HaloClient::with_http(
                halo_config(settings, secrets_json)?,
                http.others.clone(),
                http.halo_tokens.clone(),
            )?
            .with_outcomes(http.halo_outcomes.clone()),
        ),
    })
}

/// The flow's [`TicketSource`] for the stored connection of the given kind.
pub fn ticket_source(
    kind: &str,
    settings: &serde_json::Value,
    secrets_json: &str,
    http: &PsaHttp,
) -> Result<Arc<dyn TicketSource>, SourceError> {
    let psa = connect(kind, settings, secrets_json, http, Purpose::Api)?;
    Ok(Arc::new(PsaTicketSource(psa)))
}

/// Adapts a [`Psa`] to the flow's [`TicketSource`].
pub struct PsaTicketSource(pub Arc<dyn Psa>);

/// A PSA failure in the flow's terms, keeping the wait the PSA asked for.
pub fn remote(e: PsaError) -> RemoteError {
    RemoteError {
        retryable: e.is_retryable(),
        retry_after: e.retry_after(),
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
        let contact_company_elsewhere =
            contact_of_other_company(&loaded.ticket, loaded.contact.as_ref())
                .map(|c| c.to_string());
        Ok(match loaded.normalized {
            Ok(n) => TicketFacts {
                summary: Some(n.summary),
                company_id: Some(n.company_id.to_string()),
                company_name,
                first_name: Some(n.first_name),
                last_name: Some(n.last_name),
                email: n.email,
                missing: Vec::new(),
                contact_company_elsewhere,
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
                    contact_company_elsewhere,
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
