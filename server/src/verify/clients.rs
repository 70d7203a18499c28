//! Builds PSA and Duo clients from what admins stored, opening sealed secrets on the way.
use std::sync::Arc;

use crate::crypto::MasterKey;
use crate::duo::gateway::DuoAccount;
use crate::duo::{AccountId, ChildAccount, DuoClient, RetryPolicy};
use crate::psa::source::PsaHttp;
use crate::storage::{DuoAccountRow, DuoDirectoryKeys, Store};
use crate::verify::directory::DirectoryCache;
use crate::verify::ports::{Clients, DuoGateway, RemoteError, TicketSource};

#[derive(Clone)]
pub struct StoredClients {
    pub store: Store,
    pub key: MasterKey,
    pub duo_retry: RetryPolicy,
    /// One connection pool for every Duo account, one per PSA kind: clients are built per
    /// use from stored settings, their pools are not.
    pub duo_http: reqwest::Client,
    pub psa_http: PsaHttp,
    /// Kept Duo directories; `None` lists the whole account on every lookup.
    pub directories: Option<Arc<DirectoryCache>>,
}

impl StoredClients {
    pub fn new(store: Store, key: MasterKey) -> anyhow::Result<StoredClients> {
        Ok(StoredClients {
            store,
            key,
            duo_retry: RetryPolicy::default(),
            duo_http: DuoClient::http_client()?,
            psa_http: PsaHttp::new()?,
            directories: None,
        })
    }
}

fn stored(e: impl std::fmt::Display) -> RemoteError {
    RemoteError::permanent(format!("stored settings cannot be used: {e}"))
}

#[async_trait::async_trait]
impl Clients for StoredClients {
    async fn ticket_source(
        &self,
        connection_id: i64,
    ) -> Result<Arc<dyn TicketSource>, RemoteError> {
        let row = self
            .store
            .psa_connection(connection_id)
            .await
            .map_err(|e| RemoteError::retryable(e.to_string()))?
            .ok_or_else(|| RemoteError::permanent(format!("no PSA connection {connection_id}")))?;
        let secrets = self.key.open(&row.secrets_sealed).map_err(stored)?;
        crate::psa::ticket_source(&row.kind, &row.settings, secrets.expose(), &self.psa_http)
            .map_err(|e| stored(format!("{} connection {:?}: {e}", row.kind, row.name)))
    }

    async fn duo(&self, organization_id: i64) -> Result<Arc<dyn DuoGateway>, RemoteError> {
        let row = self
            .store
            .duo_account(organization_id)
            .await
            .map_err(|e| RemoteError::retryable(e.to_string()))?
            .ok_or_else(|| {
                RemoteError::permanent("no Duo account is set up for this organization")
            })?;
        let auth_skey = self.key.open(&row.auth_skey_sealed).map_err(stored)?;
        let auth = DuoClient::with_http(
            &row.api_host,
            row.auth_ikey.clone(),
            auth_skey,
            self.duo_http.clone(),
        )
        .map_err(stored)?
        .with_retry_policy(self.duo_retry);
        let admin = directory_client(&row.api_host, &row.directory, &self.key, &self.duo_http)
            .map_err(stored)?
            .with_retry_policy(self.duo_retry);
        let account: Arc<dyn DuoGateway> = Arc::new(DuoAccount {
            auth,
            admin,
            caller_code: row.caller_code,
        });
        Ok(match &self.directories {
            // Keyed by the keys too, so a copy never outlives a change of account.
            Some(cache) => Arc::new(cache.wrap(directory_key(&row), account)),
            None => account,
        })
    }
}

/// The client that reads an account's users: its own Admin API keys, or an MSP parent's
/// Accounts API keys bound to the child account.
pub fn directory_client(
    api_host: &str,
    keys: &DuoDirectoryKeys,
    key: &MasterKey,
    http: &reqwest::Client,
) -> Result<DuoClient, String> {
    match keys {
        DuoDirectoryKeys::AdminApi { ikey, skey_sealed } => {
            let skey = key.open(skey_sealed).map_err(|e| e.to_string())?;
            DuoClient::with_http(api_host, ikey.clone(), skey, http.clone())
                .map_err(|e| e.to_string())
        }
        DuoDirectoryKeys::AccountsApi(child) => {
            let skey = key.open(&child.skey_sealed).map_err(|e| e.to_string())?;
            let parent = DuoClient::with_http(
                &child.parent_api_host,
                child.ikey.clone(),
                skey,
                http.clone(),
            )
            .map_err(|e| e.to_string())?;
            parent
                .for_child_account(&ChildAccount {
                    account_id: AccountId(child.account_id.clone()),
                    name: child.name.clone(),
                    api_hostname: child.api_hostname.clone(),
                })
                .map_err(|e| e.to_string())
        }
    }
}

/// Which kept directory an account's users are in: changes of host, keys or child account
/// start a new one.
fn directory_key(row: &DuoAccountRow) -> String {
    match &row.directory {
        DuoDirectoryKeys::AdminApi { ikey, .. } => {
            format!("{}:{}:{ikey}", row.organization_id, row.api_host)
        }
        DuoDirectoryKeys::AccountsApi(child) => format!(
            "{}:{}:{}:{}",
            row.organization_id, child.api_hostname, child.ikey, child.account_id
        ),
    }
}
