//! A kept copy of each Duo account's user list, so matching a contact costs no Admin API call.
//!
//! Lookups are answered from memory. A copy older than the refresh interval is still used while
//! one background task lists the account again; a lookup that finds nobody forces a new listing
//! when the copy is more than a minute old, so a user added in Duo a moment ago is found. The
//! flow never pushes on the strength of the copy alone: it asks Duo's Auth API (preauth) about
//! the matched user right before the push, which refuses disabled and locked-out users.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::verify::matching::{Candidate, Directory};
use crate::verify::ports::{
    CallerCodeVia, DuoGateway, Preauth, PushStatus, RemoteError, VerificationPushError,
    VerificationPushSent,
};

/// How matching reads a Duo account's users.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryMode {
    /// From a copy kept in memory and refreshed in the background.
    #[default]
    Cached,
    /// The whole account is listed on every lookup.
    Live,
}

/// Users of one account as last listed.
struct Entry {
    users: Arc<Directory>,
    listed_at: Instant,
    /// The newest gateway for the account, used by background refreshes.
    gateway: Arc<dyn DuoGateway>,
    refreshing: bool,
}

/// The kept copies of every account this process has looked up, by account identity.
pub struct DirectoryCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// One listing per account at a time: callers of a missing copy wait for the same listing.
    listing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    refresh_after: Duration,
    miss_refresh_after: Duration,
}

impl DirectoryCache {
    pub fn new(refresh_after: Duration) -> Arc<DirectoryCache> {
        Arc::new(DirectoryCache {
            entries: Mutex::new(HashMap::new()),
            listing: Mutex::new(HashMap::new()),
            refresh_after,
            miss_refresh_after: Duration::from_secs(60).min(refresh_after),
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves the map itself intact.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn listing_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.listing.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.to_owned()).or_default().clone()
    }

    /// Wraps `gateway` (the account `key` names) so its directory is answered from the copy.
    pub fn wrap(self: &Arc<Self>, key: String, gateway: Arc<dyn DuoGateway>) -> CachedGateway {
        CachedGateway {
            cache: self.clone(),
            key,
            inner: gateway,
        }
    }

    /// How many accounts have a copy.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops an account's copy, e.g. after its keys were changed.
    pub fn forget(&self, key: &str) {
        self.entries().remove(key);
    }

    async fn users(
        self: &Arc<Self>,
        key: &str,
        gateway: &Arc<dyn DuoGateway>,
    ) -> Result<Arc<Directory>, RemoteError> {
        let stale = {
            let mut entries = self.entries();
            match entries.get_mut(key) {
                Some(entry) => {
                    entry.gateway = gateway.clone();
                    let stale = entry.listed_at.elapsed() >= self.refresh_after;
                    if stale && !entry.refreshing {
                        entry.refreshing = true;
                        Some((entry.users.clone(), true))
                    } else {
                        Some((entry.users.clone(), false))
                    }
                }
                None => None,
            }
        };
        match stale {
            Some((users, refresh)) => {
                if refresh {
                    let cache = self.clone();
                    let key = key.to_owned();
                    tokio::spawn(async move { cache.refresh(&key).await });
                }
                Ok(users)
            }
            None => self.list(key, gateway, None).await,
        }
    }

    /// Lists the account unless a listing newer than `newer_than` arrived while waiting.
    async fn list(
        &self,
        key: &str,
        gateway: &Arc<dyn DuoGateway>,
        newer_than: Option<Instant>,
    ) -> Result<Arc<Directory>, RemoteError> {
        let lock = self.listing_lock(key);
        let _one_at_a_time = lock.lock().await;
        if let Some(entry) = self.entries().get(key) {
            if newer_than.is_none_or(|t| entry.listed_at > t) {
                return Ok(entry.users.clone());
            }
        }
        let started = Instant::now();
        let users = gateway.directory().await?;
        tracing::info!(
            users = users.len(),
            ms = started.elapsed().as_millis() as u64,
            "Duo directory listed"
        );
        self.entries().insert(
            key.to_owned(),
            Entry {
                users: users.clone(),
                listed_at: Instant::now(),
                gateway: gateway.clone(),
                refreshing: false,
            },
        );
        Ok(users)
    }

    async fn refresh(&self, key: &str) {
        let found = self
            .entries()
            .get(key)
            .map(|e| (e.gateway.clone(), e.listed_at));
        let Some((gateway, listed_at)) = found else {
            return;
        };
        if let Err(e) = self.list(key, &gateway, Some(listed_at)).await {
            tracing::warn!(error = %e, "Duo directory refresh failed; keeping the previous copy");
            if let Some(entry) = self.entries().get_mut(key) {
                entry.refreshing = false;
            }
        }
    }

    /// A listing after a lookup found nobody, when the copy is old enough to be worth it.
    async fn after_miss(
        &self,
        key: &str,
        gateway: &Arc<dyn DuoGateway>,
    ) -> Result<Option<Arc<Directory>>, RemoteError> {
        let listed_at = self.entries().get(key).map(|e| e.listed_at);
        match listed_at {
            Some(t) if t.elapsed() < self.miss_refresh_after => Ok(None),
            _ => Ok(Some(self.list(key, gateway, listed_at).await?)),
        }
    }

    /// Lists again every account whose copy is older than the refresh interval, one at a time,
    /// so background work stays far below the Admin API's rate limits.
    pub async fn refresh_due(&self) {
        let due: Vec<String> = self
            .entries()
            .iter()
            .filter(|(_, e)| e.listed_at.elapsed() >= self.refresh_after && !e.refreshing)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.refresh(&key).await;
        }
    }

    /// Runs [`DirectoryCache::refresh_due`] at a fraction of the refresh interval, for ever.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        let tick = (self.refresh_after / 4).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                cache.refresh_due().await;
            }
        })
    }
}

/// A Duo account whose directory comes from the [`DirectoryCache`].
pub struct CachedGateway {
    cache: Arc<DirectoryCache>,
    key: String,
    inner: Arc<dyn DuoGateway>,
}

#[async_trait::async_trait]
impl DuoGateway for CachedGateway {
    async fn directory(&self) -> Result<Arc<Directory>, RemoteError> {
        self.cache.users(&self.key, &self.inner).await
    }

    async fn directory_after_miss(&self) -> Result<Option<Arc<Directory>>, RemoteError> {
        self.cache.after_miss(&self.key, &self.inner).await
    }

    fn cached(&self) -> bool {
        true
    }

    async fn user(&self, user_id: &str) -> Result<Option<Candidate>, RemoteError> {
        self.inner.user(user_id).await
    }

    async fn preauth(&self, username: &str) -> Result<Preauth, RemoteError> {
        self.inner.preauth(username).await
    }

    async fn push(&self, username: &str, text: &str) -> Result<String, RemoteError> {
        self.inner.push(username, text).await
    }

    async fn push_with_details(
        &self,
        username: &str,
        text: &str,
        details: &[(String, String)],
    ) -> Result<String, RemoteError> {
        self.inner.push_with_details(username, text, details).await
    }

    async fn status(&self, txid: &str) -> Result<PushStatus, RemoteError> {
        self.inner.status(txid).await
    }

    fn caller_code_via(&self) -> CallerCodeVia {
        self.inner.caller_code_via()
    }

    async fn verification_push(
        &self,
        user_id: &str,
    ) -> Result<VerificationPushSent, VerificationPushError> {
        self.inner.verification_push(user_id).await
    }

    async fn verification_status(
        &self,
        user_id: &str,
        push_id: &str,
    ) -> Result<PushStatus, RemoteError> {
        self.inner.verification_status(user_id, push_id).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counting {
        listings: AtomicUsize,
        users: Mutex<Vec<Candidate>>,
    }

    fn user(name: &str) -> Candidate {
        Candidate {
            user_id: format!("id-{name}"),
            username: name.into(),
            aliases: vec![],
            email: None,
            first_name: None,
            last_name: None,
            real_name: None,
            status: "active".into(),
            is_enrolled: true,
        }
    }

    #[async_trait::async_trait]
    impl DuoGateway for Counting {
        async fn directory(&self) -> Result<Arc<Directory>, RemoteError> {
            self.listings.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Arc::new(Directory::new(
                self.users.lock().expect("lock").clone(),
            )))
        }
        async fn user(&self, _: &str) -> Result<Option<Candidate>, RemoteError> {
            Ok(None)
        }
        async fn preauth(&self, _: &str) -> Result<Preauth, RemoteError> {
            Ok(Preauth::Push)
        }
        async fn push(&self, _: &str, _: &str) -> Result<String, RemoteError> {
            Ok("tx".into())
        }
        async fn status(&self, _: &str) -> Result<PushStatus, RemoteError> {
            Ok(PushStatus::Waiting)
        }
        fn caller_code_via(&self) -> CallerCodeVia {
            CallerCodeVia::PushDetails
        }
        async fn verification_push(
            &self,
            _: &str,
        ) -> Result<VerificationPushSent, VerificationPushError> {
            Err(VerificationPushError::NoPushPhone)
        }
        async fn verification_status(&self, _: &str, _: &str) -> Result<PushStatus, RemoteError> {
            Ok(PushStatus::Waiting)
        }
    }

    fn counting(names: &[&str]) -> Arc<Counting> {
        Arc::new(Counting {
            listings: AtomicUsize::new(0),
            users: Mutex::new(names.iter().map(|n| user(n)).collect()),
        })
    }

    #[tokio::test]
    async fn simultaneous_first_lookups_share_one_listing() {
        let duo = counting(&["alex", "megan"]);
        let cache = DirectoryCache::new(Duration::from_secs(300));
        let gw = Arc::new(cache.wrap("acct".into(), duo.clone()));
        let lookups = (0..10).map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.directory().await.map(|u| u.len()) })
        });
        for l in lookups {
            assert_eq!(l.await.expect("task").expect("listing"), 2);
        }
        assert_eq!(duo.listings.load(Ordering::SeqCst), 1);
        gw.directory().await.expect("cached");
        assert_eq!(duo.listings.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stale_copy_is_served_while_one_refresh_runs() {
        let duo = counting(&["alex"]);
        let cache = DirectoryCache::new(Duration::from_millis(50));
        let gw = cache.wrap("acct".into(), duo.clone());
        gw.directory().await.expect("first listing");
        duo.users.lock().expect("lock").push(user("megan"));
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Stale: answered at once from the old copy, one refresh started.
        assert_eq!(gw.directory().await.expect("stale").len(), 1);
        assert_eq!(gw.directory().await.expect("stale").len(), 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(gw.directory().await.expect("refreshed").len(), 2);
        assert_eq!(duo.listings.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_miss_lists_again_only_when_the_copy_is_old_enough() {
        let duo = counting(&["alex"]);
        let cache = DirectoryCache::new(Duration::from_millis(100));
        let gw = cache.wrap("acct".into(), duo.clone());
        gw.directory().await.expect("first listing");
        assert!(gw.directory_after_miss().await.expect("fresh").is_none());
        tokio::time::sleep(Duration::from_millis(110)).await;
        duo.users.lock().expect("lock").push(user("megan"));
        let again = gw.directory_after_miss().await.expect("listing");
        assert_eq!(again.map(|u| u.len()), Some(2));
    }

    #[tokio::test]
    async fn forgetting_an_account_lists_it_again() {
        let duo = counting(&["alex"]);
        let cache = DirectoryCache::new(Duration::from_secs(300));
        let gw = cache.wrap("acct".into(), duo.clone());
        gw.directory().await.expect("listing");
        cache.forget("acct");
        assert!(cache.is_empty());
        gw.directory().await.expect("listing");
        assert_eq!(duo.listings.load(Ordering::SeqCst), 2);
    }
}
