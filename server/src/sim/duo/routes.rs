//! HTTP endpoints of the Duo simulator: the signed Auth, Admin and Accounts APIs.
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::verify::{self, RawRequest, SimError};
use super::{
    ApiKind, DuoSim, Push, PushKind, PushState, PushView, RateScope, SimUser, TimeoutStyle,
};
use crate::duo::types::{AccountId, TxId, UserStatus};

/// Largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Duo's limit on `pushinfo`.
const MAX_PUSHINFO_BYTES: usize = 20_000;
/// Duo's largest page of users.
const MAX_PAGE_LIMIT: u64 = 300;

/// The simulator's router; the state is the handle itself.
pub fn router(sim: DuoSim) -> Router {
    Router::new()
        .route("/auth/v2/ping", any(ping))
        .route("/auth/v2/check", any(check))
        .route("/auth/v2/preauth", any(preauth))
        .route("/auth/v2/auth", any(auth))
        .route("/auth/v2/auth_status", any(auth_status))
        .route("/admin/v1/users", any(users))
        .route("/admin/v1/users/{user_id}", any(user_by_id))
        .route(
            "/admin/v1/users/{user_id}/send_verification_push",
            any(send_verification_push),
        )
        .route(
            "/admin/v1/users/{user_id}/verification_push_response",
            any(verification_push_response),
        )
        .route("/accounts/v1/account/list", any(account_list))
        .route("/phone/{username}", get(super::phone::phone_page))
        .route(
            "/phone/{username}/{txid}/{action}",
            post(super::phone::phone_action),
        )
        .route("/control/pushes", get(super::phone::control_pushes))
        .route(
            "/control/push/{txid}/{action}",
            post(super::phone::control_push),
        )
        .fallback(not_found)
        .with_state(sim)
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = json!({"stat": "FAIL", "code": self.code, "message": self.message});
        if let Some(detail) = self.detail {
            body["message_detail"] = Value::String(detail);
        }
        (status, Json(body)).into_response()
    }
}

fn ok(response: Value) -> Response {
    Json(json!({"stat": "OK", "response": response})).into_response()
}

fn respond(result: Result<Response, SimError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn not_found() -> Response {
    SimError::not_found().into_response()
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// An authenticated request: the account it acts on and its decoded parameters.
struct Authed {
    account: AccountId,
    params: Vec<(String, String)>,
    host: String,
}

impl Authed {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn read_raw(req: Request) -> Result<RawRequest, SimError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| SimError::invalid_param("body"))?;
    Ok(RawRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: bytes.to_vec(),
    })
}

/// The Admin API permission an endpoint needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// "Grant read resource".
    Read,
    /// "Grant write resource".
    Write,
}

/// [`authenticate_for`] an endpoint that only reads.
async fn authenticate(
    sim: &DuoSim,
    kind: ApiKind,
    expected: Method,
    scope: Option<RateScope>,
    req: Request,
) -> Result<Authed, SimError> {
    authenticate_for(sim, kind, Access::Read, expected, scope, req).await
}

/// The strict checks every signed endpoint goes through, in order (reference §2.7), then the
/// account, permission, counter and rate-limit bookkeeping.
async fn authenticate_for(
    sim: &DuoSim,
    kind: ApiKind,
    access: Access,
    expected: Method,
    scope: Option<RateScope>,
    req: Request,
) -> Result<Authed, SimError> {
    let latency = sim.state().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if req.method() != expected {
        return Err(SimError::method_not_allowed());
    }
    let raw = read_raw(req).await?;
    let (ikey, signature) = verify::basic_credentials(&raw.headers)?;
    let (skey, app_kind, app_account, permitted) = {
        let state = sim.state();
        let app = state
            .apps
            .iter()
            .find(|a| a.ikey == ikey)
            .ok_or_else(SimError::invalid_ikey)?;
        // Accounts API keys may call the Admin API of a child account (with account_id).
        let allowed = app.kind == kind || (kind == ApiKind::Admin && app.kind == ApiKind::Accounts);
        if !allowed {
            return Err(SimError::invalid_ikey());
        }
        let permitted = match access {
            Access::Read => app.read,
            Access::Write => app.write,
        };
        (app.skey.clone(), app.kind, app.account.clone(), permitted)
    };
    let date = verify::check_date(&raw.headers, OffsetDateTime::now_utc())?;
    let params = verify::verify_signature(&raw, &date, &skey, &signature)?;
    let host = raw
        .headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();

    let mut state = sim.state();
    let account = if kind == ApiKind::Admin && app_kind == ApiKind::Accounts {
        let wanted = params
            .iter()
            .find(|(k, _)| k == "account_id")
            .map(|(_, v)| AccountId(v.clone()))
            .ok_or_else(|| SimError::invalid_param("account_id"))?;
        let is_child = state
            .account(&wanted)
            .is_some_and(|a| a.parent.as_ref() == Some(&app_account));
        if !is_child {
            return Err(SimError::invalid_param("account_id"));
        }
        wanted
    } else {
        app_account
    };
    if kind == ApiKind::Admin {
        *state.admin_calls.entry(account.clone()).or_insert(0) += 1;
        if !permitted {
            return Err(SimError::forbidden());
        }
    }
    if state.forced_rate_limits > 0 {
        state.forced_rate_limits -= 1;
        return Err(SimError::rate_limited());
    }
    let api_scope = match kind {
        ApiKind::Auth => RateScope::Auth,
        ApiKind::Admin => RateScope::Admin,
        ApiKind::Accounts => RateScope::Accounts,
    };
    if !state.take_rate(api_scope) || scope.is_some_and(|s| !state.take_rate(s)) {
        return Err(SimError::rate_limited());
    }
    Ok(Authed {
        account,
        params,
        host,
    })
}

// ---- Auth API -------------------------------------------------------------------------------

async fn ping(State(sim): State<DuoSim>, req: Request) -> Response {
    if req.method() != Method::GET {
        return SimError::method_not_allowed().into_response();
    }
    let _ = sim;
    ok(json!({"time": now_unix()}))
}

async fn check(State(sim): State<DuoSim>, req: Request) -> Response {
    respond(
        authenticate(&sim, ApiKind::Auth, Method::GET, None, req)
            .await
            .map(|_| ok(json!({"time": now_unix()}))),
    )
}

/// Exactly one of `username` / `user_id` selects the user.
fn find_user(sim: &DuoSim, a: &Authed) -> Result<Option<SimUser>, SimError> {
    let state = sim.state();
    let users = state
        .account(&a.account)
        .map(|acc| acc.users.as_slice())
        .unwrap_or(&[]);
    match (a.param("username"), a.param("user_id")) {
        (Some(name), None) => Ok(users.iter().find(|u| u.matches_username(name)).cloned()),
        (None, Some(id)) => Ok(users.iter().find(|u| u.user_id.0 == id).cloned()),
        _ => Err(SimError::invalid_param("username")),
    }
}

fn masked_number(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let start = digits.len().saturating_sub(4);
    format!("XXX-XXX-{}", &digits[start..])
}

async fn preauth(State(sim): State<DuoSim>, req: Request) -> Response {
    respond(
        async {
            let a = authenticate(&sim, ApiKind::Auth, Method::POST, None, req).await?;
            let Some(user) = find_user(&sim, &a)? else {
                // Duo answers unknown users like unenrolled ones (default new-user policy).
                return Ok(ok(json!({
                    "result": "enroll",
                    "status_msg": "Enroll an authentication device to proceed",
                    "enroll_portal_url": format!("https://{}/portal?code=sim", a.host),
                })));
            };
            let body = match user.status {
                UserStatus::Bypass => json!({"result": "allow", "status_msg": "Allowing unknown user"}),
                UserStatus::Disabled | UserStatus::PendingDeletion | UserStatus::Other(_) => {
                    json!({"result": "deny", "status_msg": "Your account is disabled."})
                }
                UserStatus::LockedOut => {
                    json!({"result": "deny", "status_msg": "Your account is locked out."})
                }
                UserStatus::Active if !user.is_enrolled() => json!({
                    "result": "enroll",
                    "status_msg": "Enroll an authentication device to proceed",
                    "enroll_portal_url": format!("https://{}/portal?code=sim", a.host),
                }),
                UserStatus::Active => {
                    let devices: Vec<Value> = user
                        .phones
                        .iter()
                        .filter(|p| p.activated)
                        .map(|p| {
                            json!({
                                "device": p.phone_id,
                                "display_name": format!("{} ({})", p.name, masked_number(&p.number)),
                                "name": p.name,
                                "number": masked_number(&p.number),
                                "type": "phone",
                                "capabilities": p.capabilities,
                            })
                        })
                        .collect();
                    json!({"result": "auth", "status_msg": "Account is active", "devices": devices})
                }
            };
            Ok(ok(body))
        }
        .await,
    )
}

fn decode_pushinfo(pushinfo: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(pushinfo.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn auth(State(sim): State<DuoSim>, req: Request) -> Response {
    respond(
        async {
            let a = authenticate(&sim, ApiKind::Auth, Method::POST, None, req).await?;
            match a.param("factor") {
                Some("push") | Some("auto") => {}
                _ => return Err(SimError::invalid_param("factor")),
            }
            // The simulator only supports asynchronous pushes: a synchronous /auth ties up an
            // HTTP call for up to 60 s, which deskproof must never do.
            if a.param("async") != Some("1") {
                return Err(SimError::invalid_param("async"));
            }
            let pushinfo = a.param("pushinfo").map(str::to_owned);
            if pushinfo
                .as_ref()
                .is_some_and(|p| p.len() >= MAX_PUSHINFO_BYTES)
            {
                return Err(SimError::invalid_param("pushinfo"));
            }
            let user = find_user(&sim, &a)?.ok_or_else(|| SimError::invalid_param("username"))?;
            let device = a.param("device").unwrap_or("auto");
            let state = match user.status {
                UserStatus::Bypass => PushState::Bypass,
                UserStatus::LockedOut => PushState::LockedOut,
                UserStatus::Active => {
                    let has_device = user.phones.iter().any(|p| {
                        p.activated
                            && p.capabilities.iter().any(|c| c == "push")
                            && (device == "auto" || p.phone_id == device)
                    });
                    if !has_device {
                        return Err(SimError::invalid_param("device"));
                    }
                    PushState::Pending
                }
                _ => PushState::Disabled,
            };
            let type_text = a.param("type").map(str::to_owned);
            let display_username = a.param("display_username").map(str::to_owned);
            let pairs = pushinfo.as_deref().map(decode_pushinfo).unwrap_or_default();
            let text = {
                let mut t = format!(
                    "Verify request{} for {}",
                    type_text
                        .as_deref()
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default(),
                    display_username.as_deref().unwrap_or(&user.username)
                );
                for (k, v) in &pairs {
                    t.push_str(&format!("; {k}: {v}"));
                }
                t
            };
            let txid = TxId(uuid::Uuid::new_v4().to_string());
            sim.state().pushes.push(Push {
                view: PushView {
                    txid: txid.clone(),
                    kind: PushKind::Auth,
                    account_id: a.account.clone(),
                    user_id: user.user_id.clone(),
                    username: user.username.clone(),
                    type_text,
                    display_username,
                    pushinfo,
                    pushinfo_pairs: pairs,
                    confirmation_code: None,
                    phone_id: None,
                    text,
                    state,
                },
                created: Instant::now(),
            });
            sim.changed();
            Ok(ok(json!({"txid": txid})))
        }
        .await,
    )
}

fn status_body(state: PushState, style: TimeoutStyle) -> Value {
    let (result, status, msg) = match state {
        PushState::Pending => (
            "waiting",
            "pushed",
            "Pushed a login request to your device...",
        ),
        PushState::Approved => ("allow", "allow", "Success. Logging you in..."),
        PushState::Denied => ("deny", "deny", "Login request denied."),
        PushState::Fraud => ("deny", "fraud", "Login request reported as fraudulent."),
        PushState::TimedOut => match style {
            TimeoutStyle::Deny => ("deny", "timeout", "Login timed out."),
            TimeoutStyle::Waiting => ("waiting", "timeout", "Login timed out."),
        },
        PushState::LockedOut => ("deny", "locked_out", "Your account is locked out."),
        PushState::Bypass => ("allow", "bypass", "Allowing user in bypass mode."),
        PushState::Disabled => ("deny", "deny", "Your account is disabled."),
    };
    json!({"result": result, "status": status, "status_msg": msg})
}

async fn auth_status(State(sim): State<DuoSim>, req: Request) -> Response {
    respond(
        async {
            let a = authenticate(&sim, ApiKind::Auth, Method::GET, None, req).await?;
            let txid = TxId(
                a.param("txid")
                    .ok_or_else(|| SimError::invalid_param("txid"))?
                    .to_owned(),
            );
            let deadline = Instant::now() + sim.state().long_poll_wait;
            loop {
                let notified = sim.shared.changed.notified();
                tokio::pin!(notified);
                // Registered before looking, so a decision in between is not missed.
                notified.as_mut().enable();
                let (push_state, until_expiry, style) = {
                    let mut state = sim.state();
                    state.expire_pushes();
                    let timeout = state.push_timeout;
                    let push = state
                        .pushes
                        .iter()
                        .find(|p| {
                            p.view.txid == txid
                                && p.view.kind == PushKind::Auth
                                && p.view.account_id == a.account
                        })
                        .ok_or_else(SimError::not_found)?;
                    (
                        push.view.state,
                        timeout.saturating_sub(push.created.elapsed()),
                        state.timeout_style,
                    )
                };
                let now = Instant::now();
                if push_state != PushState::Pending || now >= deadline {
                    return Ok(ok(status_body(push_state, style)));
                }
                let wait = deadline
                    .saturating_duration_since(now)
                    .min(until_expiry)
                    .max(Duration::from_millis(1));
                let _ = tokio::time::timeout(wait, notified).await;
            }
        }
        .await,
    )
}

// ---- Admin API ------------------------------------------------------------------------------

fn status_str(status: &UserStatus) -> Value {
    serde_json::to_value(status).unwrap_or(Value::Null)
}

fn user_json(u: &SimUser) -> Value {
    let alias = |i: usize| u.aliases.get(i).cloned();
    let aliases: serde_json::Map<String, Value> = u
        .aliases
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("alias{}", i + 1), Value::String(a.clone())))
        .collect();
    json!({
        "user_id": u.user_id,
        "username": u.username,
        "realname": u.realname,
        "firstname": u.firstname,
        "lastname": u.lastname,
        "email": u.email,
        "status": status_str(&u.status),
        "alias1": alias(0), "alias2": alias(1), "alias3": alias(2), "alias4": alias(3),
        "aliases": aliases,
        "created": 1_700_000_000,
        "last_login": null,
        "is_enrolled": u.is_enrolled(),
        "lockout_reason": null,
        "notes": "",
        "external_id": null,
        "groups": [],
        "phones": u.phones.iter().map(|p| json!({
            "phone_id": p.phone_id,
            "number": p.number,
            "name": p.name,
            "model": "Simulated phone",
            "platform": p.platform,
            "type": "Mobile",
            "activated": p.activated,
            "capabilities": p.capabilities,
        })).collect::<Vec<_>>(),
        "tokens": [],
        "webauthncredentials": [],
        "u2ftokens": [],
    })
}

fn number_param(a: &Authed, name: &str, default: u64) -> Result<u64, SimError> {
    match a.param(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| SimError::invalid_param(name)),
    }
}

async fn users(State(sim): State<DuoSim>, req: Request) -> Response {
    respond(
        async {
            let a = authenticate(
                &sim,
                ApiKind::Admin,
                Method::GET,
                Some(RateScope::AdminListUsers),
                req,
            )
            .await?;
            let limit = number_param(&a, "limit", 100)?;
            if limit == 0 || limit > MAX_PAGE_LIMIT {
                return Err(SimError::invalid_param("limit"));
            }
            let offset = number_param(&a, "offset", 0)?;
            let username = a.param("username");
            let email = a.param("email");
            let state = sim.state();
            let all: Vec<&SimUser> = state
                .account(&a.account)
                .map(|acc| acc.users.iter().collect())
                .unwrap_or_default();
            let matching: Vec<&SimUser> = all
                .into_iter()
                .filter(|u| username.is_none_or(|n| u.matches_username(n)))
                .filter(|u| email.is_none_or(|e| u.email.eq_ignore_ascii_case(e)))
                .collect();
            let total = matching.len() as u64;
            let page: Vec<Value> = matching
                .iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|u| user_json(u))
                .collect();
            let mut metadata = json!({"total_objects": total});
            if offset + limit < total {
                metadata["next_offset"] = json!(offset + limit);
            }
            if offset > 0 {
                metadata["prev_offset"] = json!(offset.saturating_sub(limit));
            }
            Ok(Json(json!({"stat": "OK", "response": page, "metadata": metadata})).into_response())
        }
        .await,
    )
}

/// The `{user_id}` of an Admin API user path, still percent-encoded, before `suffix`.
fn raw_user_id(req: &Request, suffix: &str) -> String {
    req.uri()
        .path()
        .strip_prefix("/admin/v1/users/")
        .and_then(|rest| rest.strip_suffix(suffix))
        .unwrap_or("")
        .to_owned()
}

fn decode_user_id(raw: &str) -> Result<String, SimError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|id| id.into_owned())
        .map_err(|_| SimError::invalid_param("user_id"))
}

async fn user_by_id(State(sim): State<DuoSim>, req: Request) -> Response {
    let raw_id = raw_user_id(&req, "");
    respond(
        async {
            let a = authenticate(&sim, ApiKind::Admin, Method::GET, None, req).await?;
            let id = decode_user_id(&raw_id)?;
            let state = sim.state();
            let user = state
                .account(&a.account)
                .and_then(|acc| acc.users.iter().find(|u| u.user_id.0 == id))
                .ok_or_else(SimError::not_found)?;
            Ok(ok(user_json(user)))
        }
        .await,
    )
}

// ---- Admin API: verification push -------------------------------------------------------------

/// `POST /admin/v1/users/{user_id}/send_verification_push` with `phone_id`: needs the write
/// permission, an existing user, and one of that user's phones that is activated and can push.
async fn send_verification_push(State(sim): State<DuoSim>, req: Request) -> Response {
    let raw_id = raw_user_id(&req, "/send_verification_push");
    respond(
        async {
            let a = authenticate_for(&sim, ApiKind::Admin, Access::Write, Method::POST, None, req)
                .await?;
            let id = decode_user_id(&raw_id)?;
            let phone_id = a
                .param("phone_id")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| SimError::invalid_param("phone_id"))?
                .to_owned();
            let push_id = TxId(uuid::Uuid::new_v4().to_string());
            let code = super::confirmation_code();
            {
                let mut state = sim.state();
                let user = state
                    .account(&a.account)
                    .and_then(|acc| acc.users.iter().find(|u| u.user_id.0 == id))
                    .ok_or_else(SimError::not_found)?
                    .clone();
                // A phone that is not activated (or cannot push) is a 400, as for Duo.
                let usable = user.phones.iter().any(|p| {
                    p.phone_id == phone_id
                        && p.activated
                        && p.capabilities.iter().any(|c| c == "push")
                });
                if !usable {
                    return Err(SimError::invalid_param("phone_id"));
                }
                state.pushes.push(Push {
                    view: PushView {
                        txid: push_id.clone(),
                        kind: PushKind::Verification,
                        account_id: a.account.clone(),
                        user_id: user.user_id.clone(),
                        username: user.username.clone(),
                        type_text: None,
                        display_username: None,
                        pushinfo: None,
                        pushinfo_pairs: Vec::new(),
                        confirmation_code: Some(code.clone()),
                        phone_id: Some(phone_id),
                        text: format!(
                            "Verification request for {}; confirmation code: {code}",
                            user.username
                        ),
                        state: PushState::Pending,
                    },
                    created: Instant::now(),
                });
            }
            sim.changed();
            Ok(ok(json!({"push_id": push_id, "confirmation_code": code})))
        }
        .await,
    )
}

/// `GET /admin/v1/users/{user_id}/verification_push_response?push_id=`: the answer so far,
/// and 404 once the push's expiry has passed (or the push is not this user's).
async fn verification_push_response(State(sim): State<DuoSim>, req: Request) -> Response {
    let raw_id = raw_user_id(&req, "/verification_push_response");
    respond(
        async {
            let a = authenticate(&sim, ApiKind::Admin, Method::GET, None, req).await?;
            let id = decode_user_id(&raw_id)?;
            let push_id = a
                .param("push_id")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| SimError::invalid_param("push_id"))?;
            let mut state = sim.state();
            state.expire_pushes();
            let expiry = state.verification_expiry;
            let push = state
                .pushes
                .iter()
                .find(|p| {
                    p.view.kind == PushKind::Verification
                        && p.view.txid.0 == push_id
                        && p.view.account_id == a.account
                        && p.view.user_id.0 == id
                })
                .filter(|p| p.created.elapsed() < expiry)
                .ok_or_else(SimError::not_found)?;
            let result = match push.view.state {
                PushState::Pending => "waiting",
                PushState::Approved => "approve",
                PushState::Fraud => "fraud",
                // Timed out by the control API: gone, as after the expiry.
                PushState::TimedOut => return Err(SimError::not_found()),
                _ => "deny",
            };
            Ok(ok(json!({"push_id": push.view.txid, "result": result})))
        }
        .await,
    )
}

// ---- Accounts API ---------------------------------------------------------------------------

async fn account_list(State(sim): State<DuoSim>, req: Request) -> Response {
    respond(
        async {
            let a = authenticate(&sim, ApiKind::Accounts, Method::POST, None, req).await?;
            let state = sim.state();
            // Every simulated child is served on the same address as the parent.
            let children: Vec<Value> = state
                .accounts
                .iter()
                .filter(|acc| acc.parent.as_ref() == Some(&a.account))
                .map(|acc| json!({"account_id": acc.id, "name": acc.name, "api_hostname": a.host}))
                .collect();
            Ok(ok(Value::Array(children)))
        }
        .await,
    )
}
