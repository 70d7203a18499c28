//! Background work: takes due jobs from the database and runs them. Jobs survive restarts;
//! a job whose lease runs out (its process stopped) is taken again.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::storage::{Job, Lane};
use crate::verify::flow::{now_ms, Flow, FlowError};

const MAX_BACKOFF_MS: u64 = 60_000;
/// Idle workers look for due jobs at least this often.
/// Work queued by this process wakes a worker at once; work queued by another replica is seen
/// within this.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// While webhooks keep arriving (one within this), most intake workers wait: answering the
/// PSA quickly comes first, and the stored deliveries are taken in right after the burst.
const BURST_QUIET_MS: i64 = 50;
/// How long a webhook burst may put off copying SQLite's write-ahead log into the database.
const CHECKPOINT_DEFER_MAX: Duration = Duration::from_secs(30);
/// How often a waiting worker looks whether the burst is over.
const BURST_RECHECK: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct Worker {
    flow: Flow,
    /// One per lane, so a wake-up reaches one idle worker that can take the new job.
    wake_work: Arc<Notify>,
    /// For the workers that stand aside during a webhook burst, so a wake-up meant for new work
    /// never lands on one that would only wait.
    wake_extra: Arc<Notify>,
    wake_polls: Arc<Notify>,
    /// How long a claimed job stays with this process; longer than Duo's long poll.
    lease_ms: i64,
    /// This process's name on the leases it holds: its process id, so an operator can tell
    /// whose a lease is, and a random part, unique across hosts and restarts.
    owner: Arc<str>,
    /// When this process last received a webhook (milliseconds since the epoch).
    last_webhook_ms: Arc<AtomicI64>,
}

impl Worker {
    pub fn new(flow: Flow, lease: Duration) -> Worker {
        Worker {
            flow,
            wake_work: Arc::new(Notify::new()),
            wake_extra: Arc::new(Notify::new()),
            wake_polls: Arc::new(Notify::new()),
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
            owner: Arc::from(format!(
                "pid{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            )),
            last_webhook_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Hands back the jobs this process holds, for another process to take straight away.
    pub async fn release(&self) {
        if let Err(e) = self.flow.store.release_leases(Some(&self.owner)).await {
            tracing::warn!(error = %e, "cannot hand back claimed jobs; their leases will run out");
        }
    }

    /// Wakes one idle worker of `lane` (and, outside a webhook burst, one of those that stand
    /// aside during bursts): call after queueing a job in it. Waking every idle worker, or a
    /// lane with nothing new, would only send them to the database for nothing.
    pub fn nudge(&self, lane: Lane) {
        match lane {
            Lane::Work => {
                self.wake_work.notify_one();
                if !self.in_webhook_burst() {
                    self.wake_extra.notify_one();
                }
            }
            Lane::Polls => self.wake_polls.notify_one(),
        }
    }

    /// Call when a webhook arrives: during a burst most intake workers stand aside.
    pub fn webhook_arrived(&self) {
        self.last_webhook_ms.store(now_ms(), Ordering::Relaxed);
    }

    fn in_webhook_burst(&self) -> bool {
        now_ms().saturating_sub(self.last_webhook_ms.load(Ordering::Relaxed)) < BURST_QUIET_MS
    }

    /// Copies SQLite's write-ahead log into the database file every `every` until aborted
    /// (commits leave that to this task). During a webhook burst the copy, which competes with
    /// the burst's commits for the disk, waits, for up to [`CHECKPOINT_DEFER_MAX`]. Ends at once
    /// for a database without such a log.
    pub fn spawn_checkpoints(&self, every: Duration) -> tokio::task::AbortHandle {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                if me.in_webhook_burst() && last.elapsed() < CHECKPOINT_DEFER_MAX {
                    continue;
                }
                last = tokio::time::Instant::now();
                match me.flow.store.checkpoint().await {
                    Ok(Some(done)) => tracing::trace!(?done, "write-ahead log checkpointed"),
                    Ok(None) => return,
                    Err(e) => tracing::warn!(error = %e, "write-ahead log checkpoint failed"),
                }
            }
        })
        .abort_handle()
    }

    /// Wakes a poller for a push just sent, and a worker for the note that says so.
    pub fn nudge_after_push(&self) {
        self.nudge(Lane::Polls);
        self.nudge(Lane::Work);
    }

    /// Starts `workers` tasks for ticket intake and notes and `pollers` that wait on Duo for
    /// pushes' answers; abort them through the returned handles to stop them.
    /// A quarter of the workers (at least one) keep taking in tickets during a webhook burst.
    pub fn spawn(&self, workers: usize, pollers: usize) -> Vec<tokio::task::AbortHandle> {
        let steady = workers.div_ceil(4).max(1);
        let lanes = std::iter::repeat_n(Lane::Work, workers)
            .chain(std::iter::repeat_n(Lane::Polls, pollers));
        lanes
            .enumerate()
            .map(|(n, lane)| {
                let me = self.clone();
                let yields = lane == Lane::Work && n >= steady;
                tokio::spawn(async move { me.run(n, lane, yields).await }).abort_handle()
            })
            .collect()
    }

    async fn run(self, n: usize, lane: Lane, yields_to_webhooks: bool) {
        loop {
            while yields_to_webhooks && self.in_webhook_burst() {
                tokio::time::sleep(BURST_RECHECK).await;
            }
            match self
                .flow
                .store
                .claim_job(
                    now_ms(),
                    now_ms().saturating_add(self.lease_ms),
                    &self.owner,
                    lane,
                )
                .await
            {
                Ok(Some(job)) => self.handle(job).await,
                Ok(None) => {
                    let wake = match lane {
                        Lane::Work if yields_to_webhooks => &self.wake_extra,
                        Lane::Work => &self.wake_work,
                        Lane::Polls => &self.wake_polls,
                    };
                    let _ = tokio::time::timeout(IDLE_WAIT, wake.notified()).await;
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
            Ok(true) => store.finish_job(job.id, &self.owner).await,
            // A push still waiting: poll again straight away (the poll itself waits).
            Ok(false) => {
                store
                    .retry_job(job.id, &self.owner, now_ms(), "waiting")
                    .await
            }
            Err(FlowError::Remote(e)) if e.retryable => {
                // Never sooner than the remote system asked (`Retry-After`).
                let asked = e.retry_after.map_or(0, |d| d.as_millis() as u64);
                let delay = self.backoff_ms(job.attempts).max(asked);
                tracing::warn!(job.id = job.id, kind = %job.kind, error = %e, delay_ms = delay,
                    "will try again");
                store
                    .retry_job(job.id, &self.owner, now_ms() + delay as i64, &e.to_string())
                    .await
            }
            Err(e) => {
                tracing::error!(job.id = job.id, kind = %job.kind, error = %e, "job failed");
                store.finish_job(job.id, &self.owner).await
            }
        };
        match outcome {
            Ok(true) => {}
            // The lease ran out while the job ran: another process has it now, and its run
            // records the result.
            Ok(false) => tracing::warn!(job.id = job.id, kind = %job.kind,
                "job outlived its lease; left to the process that took it over"),
            Err(e) => tracing::error!(job.id = job.id, error = %e, "cannot record job result"),
        }
        // An intake queues its note and a poll its outcome note; a posted note queues nothing.
        if job.kind != "note" {
            self.nudge(Lane::Work);
        }
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
