//! A strict Duo simulator (Auth, Admin and Accounts APIs plus a web "phone") that tests and the
//! demo run on `127.0.0.1:0` over real HTTP.
//!
//! It checks credentials, dates and signatures like Duo does, enforces paging and configurable
//! rate limits, and lets a person (the phone page) or a test (the control API and the methods on
//! [`DuoSim`]) approve, deny, report or time out each push.
mod phone;
mod routes;
pub mod verify;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;
use tokio::sync::Notify;

use crate::duo::types::{AccountId, DuoUserId, TxId, UserStatus};
use crate::duo::DuoClient;
use crate::secret::Secret;

pub use routes::router;

/// A six-digit confirmation code for a verification push.
// Limitation: the form of Duo's real `confirmation_code` is not documented; six digits is a guess.
fn confirmation_code() -> String {
    format!("{:06}", rand::thread_rng().gen_range(0..1_000_000))
}

/// Which Duo API an application (and an endpoint) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKind {
    Auth,
    Admin,
    Accounts,
}

/// Rate limit buckets a test can configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// `GET /admin/v1/users` (Duo: "get page of objects", 200/min).
    AdminListUsers,
    /// Every Admin API call.
    Admin,
    /// Every signed Auth API call.
    Auth,
    /// Every Accounts API call.
    Accounts,
}

/// How a timed-out push is reported; sources disagree, so the client must handle both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutStyle {
    /// `result: deny, status: timeout` (Duo's mockduo).
    Deny,
    /// `result: waiting, status: timeout` (the C# enum).
    Waiting,
}

/// Keys and address of one simulated application.
#[derive(Debug, Clone)]
pub struct SimKeys {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub api_host: String,
    pub ikey: String,
    pub skey: Secret,
}

impl SimKeys {
    /// A client for these keys (fails only if the base URL is unusable).
    pub fn client(&self) -> Result<DuoClient, crate::duo::DuoError> {
        DuoClient::new(&self.api_host, self.ikey.clone(), self.skey.clone())
    }
}

/// A phone of a simulated user.
#[derive(Debug, Clone, Serialize)]
pub struct SimPhone {
    pub phone_id: String,
    pub number: String,
    pub name: String,
    pub platform: String,
    pub activated: bool,
    pub capabilities: Vec<String>,
}

/// A simulated Duo user; build with [`SimUser::new`] and the chained setters.
#[derive(Debug, Clone)]
pub struct SimUser {
    pub user_id: DuoUserId,
    pub username: String,
    pub aliases: Vec<String>,
    pub realname: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub status: UserStatus,
    pub phones: Vec<SimPhone>,
}

fn random_id(prefix: &str) -> String {
    let tail: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(18)
        .map(|b| char::from(b).to_ascii_uppercase())
        .collect();
    format!("{prefix}{tail}")
}

fn random_secret() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

impl SimUser {
    /// An active user with no phone (so not enrolled until a phone is added).
    pub fn new(username: &str) -> Self {
        SimUser {
            user_id: DuoUserId(random_id("DU")),
            username: username.to_owned(),
            aliases: Vec::new(),
            realname: String::new(),
            firstname: String::new(),
            lastname: String::new(),
            email: String::new(),
            status: UserStatus::Active,
            phones: Vec::new(),
        }
    }

    pub fn name(mut self, first: &str, last: &str) -> Self {
        self.firstname = first.to_owned();
        self.lastname = last.to_owned();
        self.realname = format!("{first} {last}");
        self
    }

    pub fn email(mut self, email: &str) -> Self {
        self.email = email.to_owned();
        self
    }

    pub fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.to_owned());
        self
    }

    pub fn status(mut self, status: UserStatus) -> Self {
        self.status = status;
        self
    }

    /// Adds an activated smartphone that can receive pushes.
    pub fn push_phone(mut self, number: &str) -> Self {
        self.phones.push(SimPhone {
            phone_id: random_id("DP"),
            number: number.to_owned(),
            name: format!("{}'s phone", self.username),
            platform: "Apple iOS".into(),
            activated: true,
            capabilities: ["auto", "push", "sms", "phone", "mobile_otp"]
                .map(String::from)
                .to_vec(),
        });
        self
    }

    /// Adds an activated phone that can only receive SMS and calls (no push).
    pub fn sms_only_phone(mut self, number: &str) -> Self {
        self.phones.push(SimPhone {
            phone_id: random_id("DP"),
            number: number.to_owned(),
            name: format!("{}'s landline", self.username),
            platform: "Generic".into(),
            activated: true,
            capabilities: ["auto", "sms", "phone"].map(String::from).to_vec(),
        });
        self
    }

    pub fn is_enrolled(&self) -> bool {
        self.phones.iter().any(|p| p.activated)
    }

    fn matches_username(&self, name: &str) -> bool {
        self.username == name || self.aliases.iter().any(|a| a == name)
    }
}

/// Where a push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    Pending,
    Approved,
    Denied,
    Fraud,
    TimedOut,
    LockedOut,
    Bypass,
    Disabled,
}

/// Which API sent a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// `POST /auth/v2/auth`; answered through `auth_status`.
    Auth,
    /// `POST /admin/v1/users/{user_id}/send_verification_push`; answered through
    /// `verification_push_response`, and only for [`DuoSim::set_verification_push_expiry`].
    Verification,
}

/// A push as the phone and the control API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushView {
    /// The Auth API `txid`, or the verification push's `push_id`.
    pub txid: TxId,
    pub kind: PushKind,
    pub account_id: AccountId,
    pub user_id: DuoUserId,
    pub username: String,
    pub type_text: Option<String>,
    pub display_username: Option<String>,
    /// `pushinfo` exactly as received (URL-encoded pairs).
    pub pushinfo: Option<String>,
    /// `pushinfo` decoded into its pairs.
    pub pushinfo_pairs: Vec<(String, String)>,
    /// The code a verification push shows (Duo's `confirmation_code`).
    pub confirmation_code: Option<String>,
    /// The phone a verification push was sent to.
    pub phone_id: Option<String>,
    /// What the phone displays, in one line.
    pub text: String,
    pub state: PushState,
}

#[derive(Debug)]
struct Push {
    view: PushView,
    created: Instant,
}

#[derive(Debug)]
struct App {
    kind: ApiKind,
    ikey: String,
    skey: String,
    account: AccountId,
    /// Admin API permission "Grant read resource" (Admin and Accounts applications).
    read: bool,
    /// Admin API permission "Grant write resource" (Admin and Accounts applications).
    write: bool,
}

impl App {
    fn new(kind: ApiKind, account: AccountId) -> App {
        App {
            kind,
            ikey: random_id("DI"),
            skey: random_secret(),
            account,
            read: true,
            // An Admin API application as deskproof's setup asks for it: read only. Accounts
            // keys act as a child's Admin API; their permissions there are not documented.
            write: kind == ApiKind::Accounts,
        }
    }
}

#[derive(Debug)]
struct Account {
    id: AccountId,
    name: String,
    parent: Option<AccountId>,
    users: Vec<SimUser>,
}

#[derive(Debug)]
struct RateLimit {
    max: u32,
    per: Duration,
    hits: VecDeque<Instant>,
}

#[derive(Debug)]
struct State {
    base_url: String,
    push_timeout: Duration,
    verification_expiry: Duration,
    long_poll_wait: Duration,
    latency: Duration,
    timeout_style: TimeoutStyle,
    main_account: AccountId,
    apps: Vec<App>,
    accounts: Vec<Account>,
    pushes: Vec<Push>,
    admin_calls: HashMap<AccountId, u64>,
    limits: HashMap<RateScope, RateLimit>,
    forced_rate_limits: u32,
}

impl State {
    fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.iter().find(|a| &a.id == id)
    }

    fn account_mut(&mut self, id: &AccountId) -> Option<&mut Account> {
        self.accounts.iter_mut().find(|a| &a.id == id)
    }

    /// Ends pending pushes whose lifetime has passed.
    fn expire_pushes(&mut self) {
        for push in &mut self.pushes {
            let lifetime = match push.view.kind {
                PushKind::Auth => self.push_timeout,
                PushKind::Verification => self.verification_expiry,
            };
            if push.view.state == PushState::Pending && push.created.elapsed() >= lifetime {
                push.view.state = PushState::TimedOut;
            }
        }
    }

    fn main_app_mut(&mut self, kind: ApiKind) -> Option<&mut App> {
        let main = self.main_account.clone();
        self.apps
            .iter_mut()
            .find(|a| a.kind == kind && a.account == main)
    }

    /// Records a hit in a rate-limit bucket; `false` when the bucket is full.
    fn take_rate(&mut self, scope: RateScope) -> bool {
        let Some(limit) = self.limits.get_mut(&scope) else {
            return true;
        };
        let now = Instant::now();
        while limit
            .hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limit.per)
        {
            limit.hits.pop_front();
        }
        if limit.hits.len() >= limit.max as usize {
            return false;
        }
        limit.hits.push_back(now);
        true
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

/// Handle on a running (or embeddable) Duo simulator. Cheap to clone.
#[derive(Clone)]
pub struct DuoSim {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DuoSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoSim")
            .field("base_url", &self.base_url())
            .finish()
    }
}

impl Default for DuoSim {
    fn default() -> Self {
        DuoSim::new()
    }
}

impl DuoSim {
    /// A simulator with one main account holding an Auth, an Admin and an Accounts application,
    /// no users, and Duo's 60 s push lifetime. Serve it with [`router`] or use [`DuoSim::start`].
    pub fn new() -> Self {
        let main = AccountId(random_id("DA"));
        let apps = [ApiKind::Auth, ApiKind::Admin, ApiKind::Accounts]
            .into_iter()
            .map(|kind| App::new(kind, main.clone()))
            .collect();
        let state = State {
            base_url: String::new(),
            push_timeout: Duration::from_secs(60),
            verification_expiry: Duration::from_secs(120),
            long_poll_wait: Duration::from_secs(2),
            latency: Duration::ZERO,
            timeout_style: TimeoutStyle::Deny,
            main_account: main.clone(),
            apps,
            accounts: vec![Account {
                id: main,
                name: "Main".into(),
                parent: None,
                users: Vec::new(),
            }],
            pushes: Vec::new(),
            admin_calls: HashMap::new(),
            limits: HashMap::new(),
            forced_rate_limits: 0,
        };
        DuoSim {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                changed: Notify::new(),
            }),
        }
    }

    /// Starts a new simulator on `127.0.0.1:0`; returns the handle and its base URL.
    pub async fn start() -> std::io::Result<(DuoSim, String)> {
        let sim = DuoSim::new();
        let url = sim.serve("127.0.0.1:0").await?;
        Ok((sim, url))
    }

    /// Serves this simulator on `addr` in a background task; returns the base URL.
    pub async fn serve(&self, addr: &str) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        self.state().base_url = url.clone();
        let app = router(self.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "duo simulator stopped");
            }
        });
        Ok(url)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.shared.changed.notify_waiters();
    }

    pub fn base_url(&self) -> String {
        self.state().base_url.clone()
    }

    /// The page a person opens to answer this user's pushes.
    pub fn phone_url(&self, username: &str) -> String {
        format!(
            "{}/phone/{}",
            self.base_url(),
            crate::duo::signing::encode_component(username)
        )
    }

    fn keys(&self, kind: ApiKind) -> SimKeys {
        let state = self.state();
        let (ikey, skey) = state
            .apps
            .iter()
            .find(|a| a.kind == kind && a.account == state.main_account)
            .map(|a| (a.ikey.clone(), a.skey.clone()))
            .unwrap_or_default();
        SimKeys {
            api_host: state.base_url.clone(),
            ikey,
            skey: Secret::new(skey),
        }
    }

    pub fn auth_keys(&self) -> SimKeys {
        self.keys(ApiKind::Auth)
    }

    pub fn admin_keys(&self) -> SimKeys {
        self.keys(ApiKind::Admin)
    }

    pub fn accounts_keys(&self) -> SimKeys {
        self.keys(ApiKind::Accounts)
    }

    pub fn main_account_id(&self) -> AccountId {
        self.state().main_account.clone()
    }

    /// The keys of the child account's own Auth API application (created on first use): the
    /// Accounts keys do not reach a child's Auth API.
    pub fn child_auth_keys(&self, child: &AccountId) -> SimKeys {
        let mut state = self.state();
        let existing = state
            .apps
            .iter()
            .find(|a| a.kind == ApiKind::Auth && &a.account == child)
            .map(|a| (a.ikey.clone(), a.skey.clone()));
        let (ikey, skey) = match existing {
            Some(keys) => keys,
            None => {
                let app = App::new(ApiKind::Auth, child.clone());
                let keys = (app.ikey.clone(), app.skey.clone());
                state.apps.push(app);
                keys
            }
        };
        SimKeys {
            api_host: state.base_url.clone(),
            ikey,
            skey: Secret::new(skey),
        }
    }

    // ---- seeding --------------------------------------------------------------------------

    /// Adds a user to the main account; returns its user ID.
    pub fn add_user(&self, user: SimUser) -> DuoUserId {
        let main = self.main_account_id();
        self.add_user_to(&main, user)
    }

    /// Adds a user to an account (the main one or a child).
    pub fn add_user_to(&self, account: &AccountId, user: SimUser) -> DuoUserId {
        let id = user.user_id.clone();
        if let Some(acc) = self.state().account_mut(account) {
            acc.users.push(user);
        }
        id
    }

    /// Adds a child account under the main account (reachable with the Accounts keys).
    pub fn add_child_account(&self, name: &str) -> AccountId {
        let id = AccountId(random_id("DA"));
        let mut state = self.state();
        let parent = state.main_account.clone();
        state.accounts.push(Account {
            id: id.clone(),
            name: name.to_owned(),
            parent: Some(parent),
            users: Vec::new(),
        });
        id
    }

    /// Changes a user's status in whichever account holds it.
    pub fn set_user_status(&self, username: &str, status: UserStatus) -> bool {
        let mut state = self.state();
        for acc in &mut state.accounts {
            if let Some(u) = acc.users.iter_mut().find(|u| u.matches_username(username)) {
                u.status = status;
                return true;
            }
        }
        false
    }

    /// Seeds a few Contoso users for the demo: one per interesting case.
    pub fn seed_contoso(&self) -> Vec<DuoUserId> {
        vec![
            self.add_user(
                SimUser::new("alex.example")
                    .name("Alex", "Example")
                    .email("alex.example@contoso.example")
                    .alias("aexample")
                    .push_phone("+15555550101"),
            ),
            self.add_user(
                SimUser::new("megan.bowen")
                    .name("Megan", "Bowen")
                    .email("megan.bowen@contoso.example")
                    .push_phone("+15555550102"),
            ),
            self.add_user(
                SimUser::new("sam.sample")
                    .name("Sam", "Sample")
                    .email("sam.sample@contoso.example")
                    .status(UserStatus::Bypass),
            ),
            self.add_user(
                SimUser::new("lee.landline")
                    .name("Lee", "Landline")
                    .email("lee.landline@contoso.example")
                    .sms_only_phone("+15555550104"),
            ),
            self.add_user(
                SimUser::new("nina.new")
                    .name("Nina", "New")
                    .email("nina.new@contoso.example"),
            ),
        ]
    }

    // ---- behaviour knobs ------------------------------------------------------------------

    /// How long a push waits for an answer before it ends as `timeout` (Duo: 60 s).
    pub fn set_push_timeout(&self, timeout: Duration) {
        self.state().push_timeout = timeout;
    }

    /// How long one `auth_status` call waits for news before answering `waiting`.
    pub fn set_long_poll_wait(&self, wait: Duration) {
        self.state().long_poll_wait = wait;
    }

    pub fn set_timeout_style(&self, style: TimeoutStyle) {
        self.state().timeout_style = style;
    }

    /// Artificial latency added to every signed API call.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// At most `max` calls per `per` in a bucket; further calls get 429 / 42901.
    pub fn set_rate_limit(&self, scope: RateScope, max: u32, per: Duration) {
        self.state().limits.insert(
            scope,
            RateLimit {
                max,
                per,
                hits: VecDeque::new(),
            },
        );
    }

    pub fn clear_rate_limit(&self, scope: RateScope) {
        self.state().limits.remove(&scope);
    }

    /// The next `n` signed calls answer 429 / 42901 whatever the buckets say.
    pub fn force_rate_limited(&self, n: u32) {
        self.state().forced_rate_limits = n;
    }

    /// Withdraws (or restores) the main Admin application's "read resource" permission (403).
    pub fn set_admin_read_allowed(&self, allowed: bool) {
        if let Some(app) = self.state().main_app_mut(ApiKind::Admin) {
            app.read = allowed;
        }
    }

    /// Grants (or withdraws) the main Admin application's "write resource" permission, which
    /// sending a verification push needs. Off by default, as deskproof's setup asks only for
    /// read.
    pub fn set_admin_write_allowed(&self, allowed: bool) {
        if let Some(app) = self.state().main_app_mut(ApiKind::Admin) {
            app.write = allowed;
        }
    }

    /// The Admin API permissions of the Accounts application on child accounts (both on by
    /// default).
    pub fn set_accounts_permissions(&self, read: bool, write: bool) {
        if let Some(app) = self.state().main_app_mut(ApiKind::Accounts) {
            app.read = read;
            app.write = write;
        }
    }

    /// How long a verification push's result can be read (Duo: 120 s); afterwards its
    /// response endpoint answers 404 and the phone no longer shows it.
    pub fn set_verification_push_expiry(&self, expiry: Duration) {
        self.state().verification_expiry = expiry;
    }

    /// Admin API calls that reached an account (after authentication).
    pub fn admin_calls(&self, account: &AccountId) -> u64 {
        self.state().admin_calls.get(account).copied().unwrap_or(0)
    }

    // ---- the phone ------------------------------------------------------------------------

    /// Every push so far, oldest first.
    pub fn pushes(&self) -> Vec<PushView> {
        let mut state = self.state();
        state.expire_pushes();
        state.pushes.iter().map(|p| p.view.clone()).collect()
    }

    /// Pushes still waiting for this user (by username), oldest first.
    pub fn pending_pushes(&self, username: &str) -> Vec<PushView> {
        self.pushes()
            .into_iter()
            .filter(|p| p.username == username && p.state == PushState::Pending)
            .collect()
    }

    /// Decides a pending push. `false` if unknown or already decided.
    pub fn decide(&self, txid: &TxId, decision: PushState) -> bool {
        let done = {
            let mut state = self.state();
            state.expire_pushes();
            match state
                .pushes
                .iter_mut()
                .find(|p| &p.view.txid == txid && p.view.state == PushState::Pending)
            {
                Some(push) => {
                    push.view.state = decision;
                    true
                }
                None => false,
            }
        };
        if done {
            self.changed();
        }
        done
    }

    pub fn approve(&self, txid: &TxId) -> bool {
        self.decide(txid, PushState::Approved)
    }

    pub fn deny(&self, txid: &TxId) -> bool {
        self.decide(txid, PushState::Denied)
    }

    pub fn report_fraud(&self, txid: &TxId) -> bool {
        self.decide(txid, PushState::Fraud)
    }

    /// Ends a pending push as timed out without waiting for the push lifetime.
    pub fn time_out(&self, txid: &TxId) -> bool {
        self.decide(txid, PushState::TimedOut)
    }

    fn decide_latest(&self, username: &str, decision: PushState) -> Option<TxId> {
        let latest = self.pending_pushes(username).pop()?;
        self.decide(&latest.txid, decision).then_some(latest.txid)
    }

    /// Approves this user's newest pending push; returns its txid.
    pub fn approve_latest(&self, username: &str) -> Option<TxId> {
        self.decide_latest(username, PushState::Approved)
    }

    pub fn deny_latest(&self, username: &str) -> Option<TxId> {
        self.decide_latest(username, PushState::Denied)
    }

    pub fn fraud_latest(&self, username: &str) -> Option<TxId> {
        self.decide_latest(username, PushState::Fraud)
    }

    pub fn time_out_latest(&self, username: &str) -> Option<TxId> {
        self.decide_latest(username, PushState::TimedOut)
    }

    /// Waits until this user has a pending push (or `within` passes) and returns it.
    pub async fn wait_for_push(&self, username: &str, within: Duration) -> Option<PushView> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(p) = self.pending_pushes(username).pop() {
                return Some(p);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
