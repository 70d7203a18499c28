//! Background work: takes due jobs from the database and runs them. Jobs survive restarts;
//! a job whose lease runs out (its process stopped) is taken again.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::storage::Job;
use crate::verify::flow::{now_ms, Flow, FlowError};

/// How long a claimed job stays with its worker; longer than Duo's long-poll.
const LEASE_MS: i64 = 120_000;
const MAX_BACKOFF_MS: u64 = 60_000;
/// Idle workers look for due jobs at least this often.
const IDLE_WAIT: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct Worker {
    flow: Flow,
    wake: Arc<Notify>,
}

impl Worker {
    pub fn new(flow: Flow) -> Worker {
        Worker {
            flow,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes an idle worker: call after queueing work.
    pub fn nudge(&self) {
        self.wake.notify_waiters();
    }

    /// Starts `workers` tasks; abort them through the returned handles to stop them.
    pub fn spawn(&self, workers: usize) -> Vec<tokio::task::AbortHandle> {
        (0..workers)
            .map(|n| {
                let me = self.clone();
                tokio::spawn(async move { me.run(n).await }).abort_handle()
            })
            .collect()
    }

    async fn run(self, n: usize) {
        loop {
            match self
                .flow
                .store
                .claim_job(now_ms(), now_ms() + LEASE_MS)
                .await
            {
                Ok(Some(job)) => self.handle(job).await,
                Ok(None) => {
                    let _ = tokio::time::timeout(IDLE_WAIT, self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::error!(worker = n, error = %e, "cannot claim work");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn handle(&self, job: Job) {
        let id = |key: &str| {
            job.payload
                .get(key)
                .and_then(|v| v.as_i64())
                .unwrap_or_default()
        };
        let store = &self.flow.store;
        let result = match job.kind.as_str() {
            "intake" => self.flow.intake(id("case_id")).await.map(|()| true),
            "note" => self.flow.post_note(id("note_id")).await.map(|()| true),
            "poll" => self.flow.poll(id("attempt_id")).await,
            other => {
                tracing::error!(kind = other, "unknown job kind");
                Ok(true)
            }
        };
        let outcome = match result {
            Ok(true) => store.finish_job(job.id).await,
            // A push still waiting: poll again straight away (the poll itself waits).
            Ok(false) => store.retry_job(job.id, now_ms(), "waiting").await,
            Err(FlowError::Remote(e)) if e.retryable => {
                // Never sooner than the remote system asked (`Retry-After`).
                let asked = e.retry_after.map_or(0, |d| d.as_millis() as u64);
                let delay = self.backoff_ms(job.attempts).max(asked);
                tracing::warn!(job.id = job.id, kind = %job.kind, error = %e, delay_ms = delay,
                    "will try again");
                store
                    .retry_job(job.id, now_ms() + delay as i64, &e.to_string())
                    .await
            }
            Err(e) => {
                tracing::error!(job.id = job.id, kind = %job.kind, error = %e, "job failed");
                store.finish_job(job.id).await
            }
        };
        if let Err(e) = outcome {
            tracing::error!(job.id = job.id, error = %e, "cannot record job result");
        }
        self.nudge();
    }

    fn backoff_ms(&self, attempts: i64) -> u64 {
        let exp = attempts.clamp(1, 16) as u32 - 1;
        self.flow
            .settings
            .retry_base_ms
            .saturating_mul(2u64.saturating_pow(exp))
            .min(MAX_BACKOFF_MS)
    }
}
