//! `deskproof rotate-key`: re-seals every stored secret with a new master key.
use std::path::Path;

use anyhow::{bail, Context};

use crate::crypto::MasterKey;
use crate::storage::{AuditEntry, Store};

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

/// The command: reads (or creates) the new key file, then re-seals.
pub async fn run(store: &Store, old: &MasterKey, new_key_file: &Path) -> anyhow::Result<usize> {
    let new = MasterKey::load_or_create(new_key_file)
        .with_context(|| format!("reading the new key file {}", new_key_file.display()))?;
    reseal_all(store, old, &new).await
}
