//! The scheduled sweep: every `sweep_interval_secs`, each PSA connection is asked for the
//! tickets created since its last sweep, and every one of them goes through the same
//! [`Storage::record_delivery`](crate::storage::Storage::record_delivery) path as a webhook.
//! A ticket that already has a case (its webhook arrived, or an earlier sweep found it) is not
//! taken in again, so no ticket ever gets two link notes.
//!
//! The first sweep of a connection only records where to start: tickets older than the
//! connection's first sweep are left alone. Each later sweep lists from a few minutes before
//! the watermark, so a ticket stored by the PSA a little late, or a clock that runs behind, is
//! not missed; listing a ticket twice is harmless.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::crypto::MasterKey;
use crate::psa::source::{connect, PsaHttp, Purpose};
use crate::storage::{PsaConnectionRow, StorageError, Store};
use crate::verify::flow::now_ms;
use crate::verify::worker::Worker;

/// How far before the watermark each sweep starts listing.
pub const OVERLAP: Duration = Duration::from_secs(300);
/// A connection whose credentials the PSA refused is not swept again for this long: repeated
/// refusals can lock the API user (Autotask does), and a wrong key needs a person anyway.
pub const REFUSED_HOLD: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("the connection cannot be used: {0}")]
    Connection(String),
    #[error("the PSA could not list tickets: {0}")]
    Psa(#[from] crate::psa::PsaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Runs sweeps for every stored PSA connection.
#[derive(Clone)]
pub struct Sweeper {
    pub store: Store,
    pub key: MasterKey,
    pub psa_http: PsaHttp,
    pub worker: Worker,
    /// Connections held back after refused credentials, until the given time.
    held: Arc<Mutex<HashMap<i64, Instant>>>,
}

impl Sweeper {
    pub fn new(store: Store, key: MasterKey, psa_http: PsaHttp, worker: Worker) -> Sweeper {
        Sweeper {
            store,
            key,
            psa_http,
            worker,
            held: Arc::default(),
        }
    }

    fn is_held(&self, connection_id: i64) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get(&connection_id) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                held.remove(&connection_id);
                false
            }
            None => false,
        }
    }

    fn hold(&self, connection_id: i64) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(connection_id, Instant::now() + REFUSED_HOLD);
    }

    /// Sweeps straight away and then every `interval`, until aborted.
    pub fn spawn(self, interval: Duration) -> tokio::task::AbortHandle {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                self.sweep_all().await;
            }
        })
        .abort_handle()
    }

    /// One sweep of every connection; a failing connection is logged and skipped. Returns how
    /// many listed tickets were recorded for the first time (see [`Sweeper::sweep`]).
    pub async fn sweep_all(&self) -> usize {
        let connections = match self.store.psa_connections().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "sweep: cannot list PSA connections");
                return 0;
            }
        };
        let mut taken = 0;
        for row in connections {
            if self.is_held(row.id) {
                continue;
            }
            match self.sweep(&row).await {
                Ok(n) => taken += n,
                Err(
                    e @ SweepError::Psa(
                        crate::psa::PsaError::Unauthorized | crate::psa::PsaError::Forbidden,
                    ),
                ) => {
                    self.hold(row.id);
                    tracing::error!(connection.id = row.id, psa = %row.kind, error = %e,
                        hold_secs = REFUSED_HOLD.as_secs(),
                        "sweep refused: check the connection's credentials; not swept again \
                         for a while so repeated refusals cannot lock the API user");
                }
                Err(e) => {
                    tracing::warn!(connection.id = row.id, psa = %row.kind, error = %e,
                        "sweep failed; the next one starts from the same point")
                }
            }
        }
        if taken > 0 {
            self.worker.nudge();
        }
        taken
    }

    /// Sweeps one connection; returns how many listed tickets it recorded for the first time.
    /// Recording a ticket that already has a case (its webhook came first) starts nothing.
    pub async fn sweep(&self, row: &PsaConnectionRow) -> Result<usize, SweepError> {
        let started = now_ms();
        let Some(watermark) = self.store.sweep_watermark(row.id).await? else {
            self.store.save_sweep_watermark(row.id, started).await?;
            tracing::info!(connection.id = row.id, psa = %row.kind, "sweep starts from now");
            return Ok(0);
        };
        let secrets = self
            .key
            .open(&row.secrets_sealed)
            .map_err(|e| SweepError::Connection(e.to_string()))?;
        let psa = connect(
            &row.kind,
            &row.settings,
            secrets.expose(),
            &self.psa_http,
            Purpose::Api,
        )
        .map_err(|e| SweepError::Connection(e.to_string()))?;
        let since = OffsetDateTime::from_unix_timestamp_nanos(i128::from(watermark) * 1_000_000)
            .map_err(|e| SweepError::Connection(format!("watermark: {e}")))?
            - OVERLAP;
        let tickets = psa.tickets_created_since(since).await?;
        let mut taken = 0;
        for ticket in &tickets {
            let key = format!("sweep:{ticket}");
            if self
                .store
                .record_delivery(row.id, &key, &ticket.to_string(), now_ms())
                .await?
            {
                taken += 1;
            }
        }
        self.store.save_sweep_watermark(row.id, started).await?;
        if taken > 0 {
            tracing::info!(connection.id = row.id, psa = %row.kind, listed = tickets.len(),
                recorded = taken, "sweep found tickets");
        } else {
            tracing::debug!(connection.id = row.id, psa = %row.kind, listed = tickets.len(),
                "sweep done");
        }
        Ok(taken)
    }
}
