//! A typed client for Duo's Auth API (push), Admin API (user directory) and Accounts API
//! (MSP child accounts). Every request gets a fresh date and signature; only 429 is retried.
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::error::DuoError;
use super::signing::{self, DigestAlg, Params, SignatureVersion, SigningInput};
use super::types::{
    AccountId, AuthStatus, ChildAccount, DuoUser, DuoUserId, PreauthResult, PushOutcome,
    PushRequest, TxId, VerificationPush, VerificationPushId, VerificationResult,
};
use crate::secret::Secret;

/// Most users Duo returns in one Admin API page.
pub const MAX_PAGE_LIMIT: u32 = 300;
/// Duo's limit on the size of `pushinfo`.
pub const MAX_PUSHINFO_BYTES: usize = 20_000;

/// How 429 answers are retried: exponential backoff with jitter, as Duo's own libraries do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry; doubles after each one.
    pub base_delay: Duration,
    /// Largest wait between two attempts, also the cap on a `Retry-After` value.
    pub max_delay: Duration,
    /// Random extra wait in `[0, max_jitter)` so clients do not retry in lockstep.
    pub max_jitter: Duration,
    /// Total attempts including the first.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(32),
            max_jitter: Duration::from_secs(1),
            max_attempts: 7,
        }
    }
}

impl RetryPolicy {
    /// The same schedule scaled down to start at `base_delay` (tests use milliseconds).
    pub fn with_base_delay(base_delay: Duration) -> Self {
        RetryPolicy {
            base_delay,
            max_delay: base_delay * 32,
            max_jitter: base_delay,
            ..RetryPolicy::default()
        }
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay_for(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let backoff = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let jitter = if self.max_jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::thread_rng().gen_range(Duration::ZERO..self.max_jitter)
        };
        match retry_after {
            Some(server_says) => server_says.min(self.max_delay),
            None => backoff + jitter,
        }
    }
}

/// Reads `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Timeouts of the HTTP calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Every call except `auth_status`.
    pub call: Duration,
    /// `auth_status` long-polls; above Duo's 60 s push lifetime so the two never race.
    pub long_poll: Duration,
    /// Shortest time between two `auth_status` calls, in case a server does not long-poll.
    pub min_poll_interval: Duration,
    /// Time between two reads of a verification push's result, which does not long-poll.
    pub verification_poll_interval: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            call: Duration::from_secs(15),
            long_poll: Duration::from_secs(75),
            min_poll_interval: Duration::from_millis(500),
            // Duo allows 300 single-object reads a minute per account (reference §8.1).
            verification_poll_interval: Duration::from_secs(2),
        }
    }
}

/// One page of Admin API users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersPage {
    pub users: Vec<DuoUser>,
    pub next_offset: Option<u64>,
    pub total_objects: Option<u64>,
}

/// A signed client of one Duo application (Auth, Admin or Accounts keys).
#[derive(Clone)]
pub struct DuoClient {
    http: reqwest::Client,
    scheme: String,
    /// `host[:port]` exactly as the `Host` header carries it; this is what gets signed.
    host: String,
    ikey: String,
    skey: Secret,
    signature: SignatureVersion,
    retry: RetryPolicy,
    timeouts: Timeouts,
    account_id: Option<AccountId>,
}

impl std::fmt::Debug for DuoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoClient")
            .field("base", &format!("{}://{}", self.scheme, self.host))
            .field("ikey", &self.ikey)
            .field("skey", &self.skey)
            .field("signature", &self.signature)
            .field("account_id", &self.account_id)
            .finish()
    }
}

#[derive(Deserialize)]
struct Envelope {
    stat: String,
    #[serde(default)]
    response: Value,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    message_detail: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CallKind {
    Normal,
    LongPoll,
}

/// Splits an API host setting into scheme and `host[:port]`.
///
/// A bare host means HTTPS; a full base URL (`http://127.0.0.1:8080`) is kept as given.
pub fn parse_api_host(api_host: &str) -> Result<(String, String), DuoError> {
    let invalid = || DuoError::InvalidApiHost(api_host.to_owned());
    let trimmed = api_host.trim().trim_end_matches('/');
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|_| invalid())?;
    if !crate::http::secure_or_local(&url) || url.path() != "/" || url.query().is_some() {
        return Err(invalid());
    }
    let host = url.host_str().ok_or_else(invalid)?;
    // Url drops a default port, just as reqwest's Host header does.
    let host_port = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    Ok((url.scheme().to_owned(), host_port.to_ascii_lowercase()))
}

impl DuoClient {
    /// A client for one application. `api_host` is `api-xxxx.duosecurity.com` (HTTPS) or a full
    /// base URL such as `http://127.0.0.1:PORT` for the simulator.
    pub fn new(api_host: &str, ikey: impl Into<String>, skey: Secret) -> Result<Self, DuoError> {
        Self::with_http(api_host, ikey, skey, Self::http_client()?)
    }

    /// The HTTP client Duo clients use; one can serve every Duo account.
    pub fn http_client() -> Result<reqwest::Client, DuoError> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("deskproof/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(DuoError::Transport)
    }

    /// A client sharing `http`'s connection pool (see [`DuoClient::http_client`]).
    pub fn with_http(
        api_host: &str,
        ikey: impl Into<String>,
        skey: Secret,
        http: reqwest::Client,
    ) -> Result<Self, DuoError> {
        let (scheme, host) = parse_api_host(api_host)?;
        Ok(DuoClient {
            http,
            scheme,
            host,
            ikey: ikey.into(),
            skey,
            signature: SignatureVersion::V5,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            account_id: None,
        })
    }

    pub fn with_signature(mut self, signature: SignatureVersion) -> Self {
        self.signature = signature;
        self
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The `host[:port]` this client signs and sends to.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    // ---- Auth API -------------------------------------------------------------------------

    /// `GET /auth/v2/check`: proves the keys and the signing work. Returns Duo's unix time.
    pub async fn check(&self) -> Result<i64, DuoError> {
        let env = self
            .call(Method::GET, CHECK_PATH, Vec::new(), CallKind::Normal)
            .await?;
        check_time(env.response)
    }

    /// `POST /auth/v2/preauth`: may this user get a push, and on which devices?
    pub async fn preauth(&self, username: &str) -> Result<PreauthResult, DuoError> {
        let params = vec![("username".to_owned(), username.to_owned())];
        let env = self
            .call(Method::POST, PREAUTH_PATH, params, CallKind::Normal)
            .await?;
        preauth_result(env.response)
    }

    /// `POST /auth/v2/auth` with `factor=push` and `async=1`; returns the transaction ID.
    ///
    /// Never retried after a timeout or 5xx: the push may already be on the user's phone.
    pub async fn auth_push_async(&self, request: &PushRequest) -> Result<TxId, DuoError> {
        const PATH: &str = AUTH_PATH;
        let mut params: Params = vec![
            ("username".into(), request.username.clone()),
            ("factor".into(), "push".into()),
            (
                "device".into(),
                request
                    .device
                    .as_ref()
                    .map_or_else(|| "auto".to_owned(), |d| d.0.clone()),
            ),
            ("async".into(), "1".into()),
        ];
        if let Some(t) = &request.type_text {
            params.push(("type".into(), t.clone()));
        }
        if let Some(d) = &request.display_username {
            params.push(("display_username".into(), d.clone()));
        }
        if !request.pushinfo.is_empty() {
            let pushinfo = encode_pushinfo(&request.pushinfo);
            if pushinfo.len() >= MAX_PUSHINFO_BYTES {
                return Err(DuoError::InvalidParameters {
                    detail: format!("pushinfo must be under {MAX_PUSHINFO_BYTES} bytes"),
                });
            }
            params.push(("pushinfo".into(), pushinfo));
        }
        let env = self
            .call(Method::POST, PATH, params, CallKind::Normal)
            .await?;
        push_txid(env.response)
    }

    /// One `GET /auth/v2/auth_status` long-poll.
    pub async fn auth_status(&self, txid: &TxId) -> Result<AuthStatus, DuoError> {
        const PATH: &str = "/auth/v2/auth_status";
        let params = vec![("txid".to_owned(), txid.0.clone())];
        let env = self
            .call(Method::GET, PATH, params, CallKind::LongPoll)
            .await?;
        decode(PATH, env.response)
    }

    /// Polls `auth_status` until the push has a final outcome or `cap` has passed.
    pub async fn wait_for_outcome(
        &self,
        txid: &TxId,
        cap: Duration,
    ) -> Result<PushOutcome, DuoError> {
        let deadline = Instant::now() + cap;
        loop {
            let started = Instant::now();
            let remaining = deadline.saturating_duration_since(started);
            if remaining.is_zero() {
                return Err(DuoError::PollCapReached(cap));
            }
            let status = tokio::time::timeout(remaining, self.auth_status(txid))
                .await
                .map_err(|_| DuoError::PollCapReached(cap))??;
            if let Some(outcome) = status.outcome() {
                return Ok(outcome);
            }
            let elapsed = started.elapsed();
            if elapsed < self.timeouts.min_poll_interval {
                let pause = (self.timeouts.min_poll_interval - elapsed)
                    .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
        }
    }

    // ---- Admin API ------------------------------------------------------------------------

    /// One page of `GET /admin/v1/users`. `limit` is clamped to 1..=300.
    pub async fn users_page(&self, limit: u32, offset: u64) -> Result<UsersPage, DuoError> {
        let params = vec![
            (
                "limit".to_owned(),
                limit.clamp(1, MAX_PAGE_LIMIT).to_string(),
            ),
            ("offset".to_owned(), offset.to_string()),
        ];
        self.users_query(params).await
    }

    /// Every user, following `metadata.next_offset`; each page is signed with a fresh date.
    pub async fn list_users(&self, page_limit: u32) -> Result<Vec<DuoUser>, DuoError> {
        let mut users = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.users_page(page_limit, offset).await?;
            users.extend(page.users);
            match page.next_offset {
                // A server that does not move forward would loop forever.
                Some(next) if next > offset => offset = next,
                _ => return Ok(users),
            }
        }
    }

    /// The user whose username or alias is `username`, if any.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<DuoUser>, DuoError> {
        let page = self
            .users_query(vec![("username".into(), username.into())])
            .await?;
        Ok(page.users.into_iter().next())
    }

    /// Users with this e-mail address (Duo does not guarantee uniqueness).
    pub async fn users_by_email(&self, email: &str) -> Result<Vec<DuoUser>, DuoError> {
        Ok(self
            .users_query(vec![("email".into(), email.into())])
            .await?
            .users)
    }

    /// `GET /admin/v1/users/{user_id}`; `None` when Duo answers 404.
    pub async fn user_by_id(&self, user_id: &DuoUserId) -> Result<Option<DuoUser>, DuoError> {
        let path = format!(
            "/admin/v1/users/{}",
            signing::encode_component(user_id.as_str())
        );
        match self
            .call(Method::GET, &path, Vec::new(), CallKind::Normal)
            .await
        {
            Ok(env) => Ok(Some(decode(&path, env.response)?)),
            Err(DuoError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---- Admin API: verification push -----------------------------------------------------

    /// `POST /admin/v1/users/{user_id}/send_verification_push` to one of the user's phones;
    /// Duo's answer carries the confirmation code shown in the push. Needs the "Grant write
    /// resource" permission ([`DuoError::Forbidden`] otherwise).
    ///
    /// Never retried after a timeout or 5xx: the push may already be on the user's phone.
    pub async fn send_verification_push(
        &self,
        user_id: &DuoUserId,
        phone_id: &str,
    ) -> Result<VerificationPush, DuoError> {
        let path = format!(
            "/admin/v1/users/{}/send_verification_push",
            signing::encode_component(user_id.as_str())
        );
        let params = vec![("phone_id".to_owned(), phone_id.to_owned())];
        let env = self
            .call(Method::POST, &path, params, CallKind::Normal)
            .await?;
        decode(&path, env.response)
    }

    /// One `GET /admin/v1/users/{user_id}/verification_push_response`. `None` when Duo no
    /// longer has the push: it answers 404 once 120 seconds have passed, so it timed out.
    pub async fn verification_push_response(
        &self,
        user_id: &DuoUserId,
        push_id: &VerificationPushId,
    ) -> Result<Option<VerificationResult>, DuoError> {
        #[derive(Deserialize)]
        struct Raw {
            result: VerificationResult,
        }
        let path = format!(
            "/admin/v1/users/{}/verification_push_response",
            signing::encode_component(user_id.as_str())
        );
        let params = vec![("push_id".to_owned(), push_id.as_str().to_owned())];
        match self
            .call(Method::GET, &path, params, CallKind::Normal)
            .await
        {
            Ok(env) => Ok(Some(decode::<Raw>(&path, env.response)?.result)),
            Err(DuoError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a verification push's result every `verification_poll_interval` until it is
    /// final or gone (`None`), or until `window` has passed (then `Waiting`): the endpoint
    /// answers at once, so this stands in for a long poll.
    pub async fn wait_for_verification(
        &self,
        user_id: &DuoUserId,
        push_id: &VerificationPushId,
        window: Duration,
    ) -> Result<Option<VerificationResult>, DuoError> {
        let deadline = Instant::now() + window;
        loop {
            let result = self.verification_push_response(user_id, push_id).await?;
            if result != Some(VerificationResult::Waiting) {
                return Ok(result);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(result);
            }
            tokio::time::sleep(self.timeouts.verification_poll_interval.min(left)).await;
        }
    }

    async fn users_query(&self, params: Params) -> Result<UsersPage, DuoError> {
        const PATH: &str = "/admin/v1/users";
        let env = self
            .call(Method::GET, PATH, params, CallKind::Normal)
            .await?;
        users_page_of(env)
    }

    // ---- Accounts API ---------------------------------------------------------------------

    /// `POST /accounts/v1/account/list` (Accounts API keys).
    pub async fn list_child_accounts(&self) -> Result<Vec<ChildAccount>, DuoError> {
        const PATH: &str = "/accounts/v1/account/list";
        let env = self
            .call(Method::POST, PATH, Vec::new(), CallKind::Normal)
            .await?;
        decode(PATH, env.response)
    }

    /// A client for Admin API calls on a child account: same Accounts keys, the child's
    /// `api_hostname`, and `account_id` added (and signed) on every call.
    ///
    /// A bare `api_hostname` keeps this client's scheme, so a parent reached over plain HTTP
    /// (the simulator) reaches its children the same way.
    pub fn for_child_account(&self, account: &ChildAccount) -> Result<DuoClient, DuoError> {
        let (scheme, host) = parse_api_host(&self.child_base_url(account))?;
        Ok(DuoClient {
            scheme,
            host,
            account_id: Some(account.account_id.clone()),
            ..self.clone()
        })
    }

    /// Where a child account is reached: its `api_hostname`, with this client's scheme when
    /// Duo gives a bare host.
    pub fn child_base_url(&self, account: &ChildAccount) -> String {
        if account.api_hostname.contains("://") {
            account.api_hostname.clone()
        } else {
            format!("{}://{}", self.scheme, account.api_hostname)
        }
    }

    // ---- transport ------------------------------------------------------------------------

    async fn call(
        &self,
        method: Method,
        path: &str,
        mut params: Params,
        kind: CallKind,
    ) -> Result<Envelope, DuoError> {
        if let Some(account) = &self.account_id {
            params.push(("account_id".into(), account.0.clone()));
        }
        let timeout = match kind {
            CallKind::Normal => self.timeouts.call,
            CallKind::LongPoll => self.timeouts.long_poll,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Date and signature are rebuilt for every attempt; a reused date is a 40103 cause.
            let request = self.build_request(&method, path, &params, timeout)?;
            let response = request.send().await.map_err(|e| {
                if e.is_timeout() {
                    DuoError::Timeout(timeout)
                } else {
                    DuoError::Transport(e)
                }
            })?;
            let status = response.status().as_u16();
            tracing::debug!(method = %method, path, status, attempt, "duo call");
            if status == 429 {
                if attempt >= self.retry.max_attempts {
                    return Err(DuoError::RateLimited { attempts: attempt });
                }
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let delay = self.retry.delay_for(attempt, retry_after);
                tracing::info!(path, attempt, ?delay, "duo rate limited; backing off");
                tokio::time::sleep(delay).await;
                continue;
            }
            let bytes = response.bytes().await.map_err(|e| {
                if e.is_timeout() {
                    DuoError::Timeout(timeout)
                } else {
                    DuoError::Transport(e)
                }
            })?;
            return parse_envelope(path, status, &bytes);
        }
    }

    fn build_request(
        &self,
        method: &Method,
        path: &str,
        params: &Params,
        timeout: Duration,
    ) -> Result<reqwest::RequestBuilder, DuoError> {
        let date = signing::now_date();
        let params_in_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        let method_str = method.as_str();
        let no_params: Params = Vec::new();
        let no_headers: Vec<(String, String)> = Vec::new();

        let (url, body, content_type, signed_params): (String, Vec<u8>, Option<&str>, &Params) =
            if !params_in_body {
                let query = signing::canon_params(params);
                let url = if query.is_empty() {
                    format!("{}{}", self.base_url(), path)
                } else {
                    format!("{}{}?{}", self.base_url(), path, query)
                };
                (url, Vec::new(), None, params)
            } else {
                let url = format!("{}{}", self.base_url(), path);
                match self.signature {
                    SignatureVersion::V2(_) => (
                        url,
                        signing::canon_params(params).into_bytes(),
                        Some("application/x-www-form-urlencoded"),
                        params,
                    ),
                    SignatureVersion::V5 => (
                        url,
                        json_body(params).into_bytes(),
                        Some("application/json"),
                        &no_params,
                    ),
                }
            };

        let input = SigningInput {
            date: &date,
            method: method_str,
            host: &self.host,
            path,
            params: signed_params,
            body: &body,
            x_duo_headers: &no_headers,
        };
        let signature = signing::sign(self.signature, self.skey.expose(), &input).map_err(|e| {
            DuoError::Decode {
                path: path.into(),
                reason: e.to_string(),
            }
        })?;
        let mut request = self
            .http
            .request(method.clone(), url)
            .timeout(timeout)
            .header(reqwest::header::DATE, &date)
            .header(
                reqwest::header::AUTHORIZATION,
                signing::authorization_header(&self.ikey, &signature),
            );
        if let Some(ct) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, ct).body(body);
        }
        Ok(request)
    }
}

/// `k=v&k2=v2` with both sides percent-encoded; Duo shows the decoded pairs in the push.
pub fn encode_pushinfo(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                signing::encode_component(k),
                signing::encode_component(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The v5 JSON body: an object with keys sorted, as duo_client_python sends it. A repeated key
/// becomes an array of its values.
fn json_body(params: &Params) -> String {
    let mut map = serde_json::Map::new();
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    for (k, v) in sorted {
        match map.get_mut(k) {
            Some(Value::Array(values)) => values.push(Value::String(v.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v.clone())]);
            }
            None => {
                map.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    // serde_json's Map is ordered by key (no preserve_order feature), which Duo does not
    // require but keeps bodies reproducible.
    Value::Object(map).to_string()
}

const CHECK_PATH: &str = "/auth/v2/check";
const PREAUTH_PATH: &str = "/auth/v2/preauth";
const USERS_PATH: &str = "/admin/v1/users";

/// Reads Duo's unix time from the `response` of `GET /auth/v2/check`.
pub fn check_time(response: Value) -> Result<i64, DuoError> {
    #[derive(Deserialize)]
    struct Time {
        time: i64,
    }
    Ok(decode::<Time>(CHECK_PATH, response)?.time)
}

fn users_page_of(env: Envelope) -> Result<UsersPage, DuoError> {
    let users: Vec<DuoUser> = decode(USERS_PATH, env.response)?;
    let meta = env.metadata.unwrap_or(Value::Null);
    Ok(UsersPage {
        users,
        next_offset: meta.get("next_offset").and_then(Value::as_u64),
        total_objects: meta.get("total_objects").and_then(Value::as_u64),
    })
}

/// Reads a page of `GET /admin/v1/users` as the client does, paging metadata included.
pub fn parse_users_page(status: u16, bytes: &[u8]) -> Result<UsersPage, DuoError> {
    users_page_of(parse_envelope(USERS_PATH, status, bytes)?)
}
const AUTH_PATH: &str = "/auth/v2/auth";

/// Reads the `response` of `POST /auth/v2/preauth`. Public, with [`push_txid`], so the fuzz
/// targets read Duo's answers exactly as the client does.
pub fn preauth_result(response: Value) -> Result<PreauthResult, DuoError> {
    #[derive(Deserialize)]
    struct Raw {
        result: String,
        #[serde(default)]
        status_msg: String,
        #[serde(default)]
        devices: Vec<super::types::Device>,
        #[serde(default)]
        enroll_portal_url: Option<String>,
    }
    let raw: Raw = decode(PREAUTH_PATH, response)?;
    let status_msg = raw.status_msg;
    match raw.result.as_str() {
        "auth" => Ok(PreauthResult::Auth {
            devices: raw.devices,
            status_msg,
        }),
        "allow" => Ok(PreauthResult::Allow { status_msg }),
        "deny" => Ok(PreauthResult::Deny { status_msg }),
        "enroll" => Ok(PreauthResult::Enroll {
            status_msg,
            enroll_portal_url: raw.enroll_portal_url,
        }),
        other => Err(DuoError::Decode {
            path: PREAUTH_PATH.into(),
            reason: format!("unknown preauth result {other:?}"),
        }),
    }
}

/// Reads the transaction ID from the `response` of an asynchronous `POST /auth/v2/auth`.
pub fn push_txid(response: Value) -> Result<TxId, DuoError> {
    #[derive(Deserialize)]
    struct Raw {
        txid: TxId,
    }
    Ok(decode::<Raw>(AUTH_PATH, response)?.txid)
}

/// Reads a Duo answer as the client does: the `{"stat": …}` envelope for `status`, then its
/// `response` as `T`. Public so the parser can be exercised on arbitrary bytes.
pub fn parse_response<T: DeserializeOwned>(
    path: &str,
    status: u16,
    bytes: &[u8],
) -> Result<T, DuoError> {
    decode(path, parse_envelope(path, status, bytes)?.response)
}

fn parse_envelope(path: &str, status: u16, bytes: &[u8]) -> Result<Envelope, DuoError> {
    let decoded: Result<Envelope, _> = serde_json::from_slice(bytes);
    match decoded {
        Ok(env) if env.stat == "OK" && (200..300).contains(&status) => Ok(env),
        Ok(env) => Err(DuoError::from_envelope(
            status,
            env.code,
            env.message.unwrap_or_else(|| format!("HTTP {status}")),
            env.message_detail,
        )),
        Err(e) if (200..300).contains(&status) => Err(DuoError::Decode {
            path: path.into(),
            reason: e.to_string(),
        }),
        Err(_) => Err(DuoError::from_envelope(
            status,
            None,
            format!("HTTP {status} without a Duo error body"),
            None,
        )),
    }
}

fn decode<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, DuoError> {
    serde_json::from_value(value).map_err(|e| DuoError::Decode {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// The v2 SHA-1 signature, for talking to something that only accepts the original form.
pub const V2_SHA1: SignatureVersion = SignatureVersion::V2(DigestAlg::Sha1);
/// The v2 SHA-512 signature used by Duo's Go, Node, C# and Unix clients.
pub const V2_SHA512: SignatureVersion = SignatureVersion::V2(DigestAlg::Sha512);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_host_means_https_and_a_base_url_keeps_its_scheme_and_port() {
        assert_eq!(
            parse_api_host("api-XXXX.duosecurity.com").unwrap(),
            ("https".into(), "api-xxxx.duosecurity.com".into())
        );
        assert_eq!(
            parse_api_host("http://127.0.0.1:4567/").unwrap(),
            ("http".into(), "127.0.0.1:4567".into())
        );
        assert_eq!(
            parse_api_host("https://api-x.duosecurity.com:443").unwrap(),
            ("https".into(), "api-x.duosecurity.com".into())
        );
        assert!(parse_api_host("ftp://x").is_err());
        assert!(parse_api_host("http://169.254.169.254").is_err());
        assert!(parse_api_host("http://api-x.duosecurity.com").is_err());
        assert!(parse_api_host("http://localhost:8080").is_ok());
        assert!(parse_api_host("http://[::1]:8080").is_ok());
        assert!(parse_api_host("https://x/some/path").is_err());
    }

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let policy = RetryPolicy {
            max_jitter: Duration::ZERO,
            ..RetryPolicy::default()
        };
        let waits: Vec<u64> = (1..=8)
            .map(|a| policy.delay_for(a, None).as_secs())
            .collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 32, 32]);
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        let policy = RetryPolicy::default();
        for _ in 0..100 {
            let d = policy.delay_for(1, None);
            assert!(d >= Duration::from_secs(1) && d < Duration::from_secs(2));
        }
    }

    #[test]
    fn retry_after_is_honoured_in_seconds_and_as_a_date_but_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let in_a_while = std::time::SystemTime::now() + Duration::from_secs(120);
        let as_date = parse_retry_after(&httpdate::fmt_http_date(in_a_while)).unwrap();
        assert!(as_date > Duration::from_secs(100));
        assert_eq!(
            policy.delay_for(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.delay_for(1, Some(Duration::from_secs(600))),
            Duration::from_secs(32)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn pushinfo_is_url_encoded_with_percent_twenty() {
        let pairs = vec![
            ("ticket".to_owned(), "INC-1234".to_owned()),
            ("summary".to_owned(), "Reset password".to_owned()),
        ];
        assert_eq!(
            encode_pushinfo(&pairs),
            "ticket=INC-1234&summary=Reset%20password"
        );
    }

    #[test]
    fn the_debug_form_of_a_client_hides_the_secret_key() {
        let client =
            DuoClient::new("api-x.duosecurity.com", "DIKEY", Secret::new("s3cr3t-skey")).unwrap();
        assert!(!format!("{client:?}").contains("s3cr3t"));
    }

    #[test]
    fn error_envelopes_map_to_their_variants() {
        let body = br#"{"stat":"FAIL","code":40002,"message":"Invalid request parameters","message_detail":"username"}"#;
        assert!(matches!(
            parse_envelope("/x", 400, body),
            Err(DuoError::InvalidParameters { detail }) if detail == "username"
        ));
        let body = br#"{"stat":"FAIL","code":40301,"message":"Access forbidden"}"#;
        assert!(matches!(
            parse_envelope("/x", 403, body),
            Err(DuoError::Forbidden { .. })
        ));
        assert!(matches!(
            parse_envelope("/x", 502, b"<html>bad gateway</html>"),
            Err(DuoError::Api {
                http_status: 502,
                ..
            })
        ));
        assert!(matches!(
            parse_envelope("/x", 200, b"not json"),
            Err(DuoError::Decode { .. })
        ));
    }
}
