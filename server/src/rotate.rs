//! `deskproof rotate-key`: re-seals every stored secret with a new master key.
use std::path::Path;

use anyhow::{bail, Context};

use crate::crypto::MasterKey;
use crate::storage::{AuditEntry, DuoDirectoryKeys, Store};

/// Opens every sealed secret with `old` and seals it again with `new`, in one transaction:
/// when any secret does not open with `old`, nothing changes. Returns how many were re-sealed.
pub async fn reseal_all(store: &Store, old: &MasterKey, new: &MasterKey) -> anyhow::Result<usize> {
    if old.open(&new.seal("key check")).is_ok() {
        bail!("the new master key is the same as the current one");
    }
    let reseal = |sealed: &str| old.open(sealed).ok().map(|s| new.seal(s.expose()));
    let audit = AuditEntry {
        actor: "deskproof rotate-key".into(),
        action: "master key rotated".into(),
        detail: Some("every stored secret re-sealed with the new master key".into()),
        ..Default::default()
    };
    store
        .reseal_secrets(&reseal, &audit)
        .await
        .context("re-sealing the stored secrets (nothing was changed)")
}

/// The command: checks that the current key opens every stored secret, then reads (or creates)
/// the new key file and re-seals. A refused rotation leaves no new file behind.
pub async fn run(store: &Store, old: &MasterKey, new_key_file: &Path) -> anyhow::Result<usize> {
    let unopened = secrets_not_opening(store, old).await?;
    if unopened > 0 {
        bail!(
            "{unopened} stored secret(s) do not open with the current master key; nothing was \
             changed and no new key file was written"
        );
    }
    let new = MasterKey::load_or_create(new_key_file)
        .with_context(|| format!("reading the new key file {}", new_key_file.display()))?;
    reseal_all(store, old, &new).await
}

/// How many stored secrets `key` does not open.
async fn secrets_not_opening(store: &Store, key: &MasterKey) -> anyhow::Result<usize> {
    let mut sealed: Vec<String> = Vec::new();
    for organization in store.organizations().await? {
        if let Some(account) = store.duo_account(organization.id).await? {
            sealed.push(account.auth_skey_sealed);
            sealed.push(match account.directory {
                DuoDirectoryKeys::AdminApi { skey_sealed, .. } => skey_sealed,
                DuoDirectoryKeys::AccountsApi(child) => child.skey_sealed,
            });
        }
    }
    for connection in store.psa_connections().await? {
        sealed.push(connection.secrets_sealed);
    }
    Ok(sealed
        .iter()
        .filter(|s| !s.is_empty() && key.open(s).is_err())
        .count())
}
