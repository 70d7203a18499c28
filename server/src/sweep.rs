//! The scheduled sweep: every `sweep_interval_secs`, each PSA connection is asked for the
//! tickets created since its last sweep, and every one of them goes through the same
//! [`Storage::record_delivery`](crate::storage::Storage::record_delivery) path as a webhook.
//! A ticket that already has a case (its webhook arrived, or an earlier sweep found it) is not
//! taken in again, so no ticket ever gets two link notes.
//!
//! A connection's watermark starts when the connection is created, so its first sweep lists
//! every ticket created since. Each sweep lists from an overlap before the watermark (at least
//! one interval), so a ticket stored by the PSA a little late, or a clock that runs behind, is
//! not missed; listing a ticket twice is harmless. With several replicas, each sweep of a
//! connection is claimed in the database for about one interval, so one replica sweeps it.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::crypto::MasterKey;
use crate::psa::source::{connect, PsaHttp, Purpose};
use crate::storage::{Lane, PsaConnectionRow, StorageError, Store};
use crate::verify::flow::now_ms;
use crate::verify::worker::Worker;

/// How far before the watermark each sweep starts listing, at the least; a longer interval
/// is used when the sweep interval is longer.
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
    /// How often every connection is swept.
    interval: Duration,
    /// This process's name on the sweeps it claims.
    owner: Arc<str>,
    /// Connections held back after refused credentials, until the given time.
    held: Arc<Mutex<HashMap<i64, Instant>>>,
}

/// What one sweep of a connection did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepOutcome {
    /// Listed; this many tickets were recorded for the first time.
    Swept(usize),
    /// Another sweep (another replica's, or an earlier one still within its interval) holds
    /// the claim.
    Claimed,
}

impl Sweeper {
    /// A sweeper that sweeps every connection each `interval`.
    pub fn new(
        store: Store,
        key: MasterKey,
        psa_http: PsaHttp,
        worker: Worker,
        interval: Duration,
    ) -> Sweeper {
        Sweeper {
            store,
            key,
            psa_http,
            worker,
            interval,
            owner: Arc::from(uuid::Uuid::new_v4().to_string()),
            held: Arc::default(),
        }
    }

    /// How far before the watermark a sweep lists: [`OVERLAP`], or the interval when longer,
    /// so a sweep that was skipped or late still overlaps the one before.
    pub fn overlap(&self) -> Duration {
        OVERLAP.max(self.interval)
    }

    /// How long a claim keeps other replicas from sweeping the connection: a little less than
    /// the interval, so this process's own next tick finds it expired.
    fn claim_ms(&self) -> i64 {
        let interval = i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX);
        interval - (interval / 10).min(5_000)
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

    /// Sweeps straight away and then every interval, until aborted.
    pub fn spawn(self) -> tokio::task::AbortHandle {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.interval);
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
                Ok(SweepOutcome::Swept(n)) => taken += n,
                Ok(SweepOutcome::Claimed) => {}
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
            self.worker.nudge(Lane::Work);
        }
        taken
    }

    /// Sweeps one connection unless its sweep is claimed elsewhere; says how many listed
    /// tickets it recorded for the first time. Recording a ticket that already has a case (its
    /// webhook came first) starts nothing.
    pub async fn sweep(&self, row: &PsaConnectionRow) -> Result<SweepOutcome, SweepError> {
        let started = now_ms();
        let Some(watermark) = self
            .store
            .claim_sweep(
                row.id,
                &self.owner,
                started,
                started.saturating_add(self.claim_ms()),
            )
            .await?
        else {
            tracing::debug!(connection.id = row.id, psa = %row.kind,
                "sweep claimed by another process");
            return Ok(SweepOutcome::Claimed);
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
            - self.overlap();
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
        Ok(SweepOutcome::Swept(taken))
    }
}
