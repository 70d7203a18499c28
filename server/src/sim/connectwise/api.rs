//! The simulated REST API under `/{codebase}/apis/3.0`, and the callback key endpoint.
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::state::{now, SimNote, State};
use super::Shared;
use crate::psa::connectwise::callback::KEY_PATH_SUFFIX;

type AppState = Arc<Shared>;

const MAX_PAGE_SIZE: usize = 1000;

/// ConnectWise's error body.
fn cw_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message.into(), "errors": null})),
    )
        .into_response()
}

fn invalid(resource: &str, field: &str, code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "code": "InvalidObject",
            "message": format!("{resource} object is invalid"),
            "errors": [{"code": code, "message": message, "resource": resource, "field": field}]
        })),
    )
        .into_response()
}

fn not_found(what: &str, id: &str) -> Response {
    cw_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{what} ID {id} not found"),
    )
}

/// Who the request is authenticated as.
#[derive(Debug, Clone)]
enum Principal {
    ApiMember,
    Member(i64),
}

fn codebase_ok(codebase: &str) -> bool {
    // `v4_6_release`, or a versioned codebase such as `v2025_1`.
    codebase == "v4_6_release"
        || codebase.strip_prefix('v').is_some_and(|rest| {
            let mut parts = rest.split('_');
            matches!((parts.next(), parts.next(), parts.next()),
                (Some(y), Some(n), None) if y.len() == 4
                    && y.chars().all(|c| c.is_ascii_digit())
                    && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
}

async fn authenticate(
    AxState(shared): AxState<AppState>,
    Path(params): Path<HashMap<String, String>>,
    mut request: Request,
    next: Next,
) -> Response {
    let latency = shared.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !params.get("codebase").is_some_and(|c| codebase_ok(c)) {
        return cw_error(StatusCode::NOT_FOUND, "NotFound", "Unknown codebase");
    }
    let principal = match principal(&shared.lock(), request.headers()) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    request.extensions_mut().insert(principal);
    next.run(request).await
}

fn principal(s: &State, headers: &HeaderMap) -> Result<Principal, Box<Response>> {
    let unauthorized = || {
        Box::new(cw_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The credentials supplied are not valid",
        ))
    };
    // Limitation: the exact status and code ConnectWise answers a missing clientId with are
    // not confirmed; 400 with a ConnectWise-shaped body is assumed.
    let client_id = headers
        .get("clientid")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if client_id.is_empty() {
        return Err(Box::new(cw_error(
            StatusCode::BAD_REQUEST,
            "InvalidClientId",
            "A clientId header is required. See https://developer.connectwise.com/ClientID",
        )));
    }
    let encoded = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or_else(unauthorized)?;
    let decoded = BASE64
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(unauthorized)?;
    let (user, password) = decoded.split_once(':').ok_or_else(unauthorized)?;
    let (company, who) = user.split_once('+').ok_or_else(unauthorized)?;
    if !company.eq_ignore_ascii_case(&s.config.company_id) {
        return Err(unauthorized());
    }
    if who == s.config.public_key && password == s.config.private_key {
        return Ok(Principal::ApiMember);
    }
    s.members
        .values()
        .find(|m| m.identifier.eq_ignore_ascii_case(who) && m.member_hash == password)
        .map(|m| Principal::Member(m.id))
        .ok_or_else(unauthorized)
}

pub(crate) fn router(shared: AppState) -> Router {
    let api = Router::new()
        .route("/{codebase}/apis/3.0/service/tickets", get(list_tickets))
        .route("/{codebase}/apis/3.0/service/tickets/{id}", get(get_ticket))
        .route(
            "/{codebase}/apis/3.0/service/tickets/{id}/notes",
            get(list_notes).post(post_note),
        )
        .route(
            "/{codebase}/apis/3.0/company/companies",
            get(list_companies),
        )
        .route(
            "/{codebase}/apis/3.0/company/companies/{id}",
            get(get_company),
        )
        .route("/{codebase}/apis/3.0/company/contacts", get(list_contacts))
        .route(
            "/{codebase}/apis/3.0/company/contacts/{id}",
            get(get_contact),
        )
        .route("/{codebase}/apis/3.0/system/members", get(list_members))
        .route("/{codebase}/apis/3.0/system/myMembers/info", get(my_member))
        .route(
            "/{codebase}/apis/3.0/system/callbacks",
            get(list_callbacks).post(post_callback),
        )
        .route(
            "/{codebase}/apis/3.0/system/callbacks/{id}",
            delete(delete_callback),
        )
        .route(
            "/{codebase}/apis/3.0/system/connectwisehostedsetups",
            get(list_setups).post(post_setup),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), authenticate));
    // The key path has a double slash after the codebase; it is matched in the fallback so the
    // router never has to express an empty path segment.
    api.fallback(fallback).with_state(shared)
}

async fn fallback(
    AxState(shared): AxState<AppState>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path();
    if method == Method::GET && path.ends_with(KEY_PATH_SUFFIX) {
        let mut s = shared.lock();
        let codebase = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        let company_ok = query
            .get("companyName")
            .is_some_and(|c| c.eq_ignore_ascii_case(&s.config.company_id));
        let id_ok = query.get("id").is_some_and(|id| *id == s.key_id);
        if codebase_ok(codebase) && company_ok && id_ok {
            s.key_fetches += 1;
            return Json(json!({"signing_key": s.config.signing_key})).into_response();
        }
        return cw_error(StatusCode::NOT_FOUND, "NotFound", "Callback key not found");
    }
    cw_error(StatusCode::NOT_FOUND, "NotFound", "Resource not found")
}

/// `page` (from 1) and `pageSize` (default 25, at most 1000: larger values are capped).
fn paging(q: &HashMap<String, String>) -> Result<(usize, usize), Box<Response>> {
    let parse = |name: &str, default: usize| -> Result<usize, Box<Response>> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    Box::new(cw_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidParameter",
                        format!("{name} must be a positive integer"),
                    ))
                }),
        }
    };
    Ok((parse("page", 1)?, parse("pageSize", 25)?.min(MAX_PAGE_SIZE)))
}

fn page<T: Clone>(items: Vec<T>, (page, size): (usize, usize)) -> Vec<T> {
    items
        .into_iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .collect()
}

fn parse_id(raw: &str) -> Option<i64> {
    raw.parse().ok()
}

/// The conditions the simulator understands: `dateEntered >|>=|< [time]` and `id >|>=|< n`,
/// joined with `and`. Anything else is refused rather than ignored.
fn ticket_filter(conditions: &str) -> Result<Vec<(String, String, Value)>, Box<Response>> {
    let bad = |c: &str| {
        Box::new(cw_error(
            StatusCode::BAD_REQUEST,
            "InvalidConditions",
            format!("Unsupported condition: {c}"),
        ))
    };
    let mut out = Vec::new();
    for clause in conditions
        .split(" and ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let (field, rest) = clause.split_once(' ').ok_or_else(|| bad(clause))?;
        let (op, value) = rest.trim().split_once(' ').ok_or_else(|| bad(clause))?;
        if !matches!(op, ">" | ">=" | "<" | "<=" | "=") {
            return Err(bad(clause));
        }
        let value = value.trim();
        let parsed = match field {
            "dateEntered" | "_info/dateEntered" => value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok())
                .map(|t| json!(t.unix_timestamp()))
                .ok_or_else(|| bad(clause))?,
            "id" => value
                .parse::<i64>()
                .map(|n| json!(n))
                .map_err(|_| bad(clause))?,
            _ => return Err(bad(clause)),
        };
        let field = if field == "id" { "id" } else { "dateEntered" };
        out.push((field.to_owned(), op.to_owned(), parsed));
    }
    Ok(out)
}

fn compare(op: &str, left: i64, right: i64) -> bool {
    match op {
        ">" => left > right,
        ">=" => left >= right,
        "<" => left < right,
        "<=" => left <= right,
        _ => left == right,
    }
}

async fn list_tickets(
    AxState(shared): AxState<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let paging = match paging(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let filter = match ticket_filter(q.get("conditions").map(String::as_str).unwrap_or("")) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let descending = q
        .get("orderBy")
        .is_some_and(|o| o.trim().eq_ignore_ascii_case("id desc"));
    let s = shared.lock();
    let mut tickets: Vec<Value> = s
        .tickets
        .values()
        .filter(|t| {
            filter.iter().all(|(field, op, value)| {
                let right = value.as_i64().unwrap_or_default();
                match field.as_str() {
                    "id" => compare(op, t.id, right),
                    _ => compare(op, t.date_entered.unix_timestamp(), right),
                }
            })
        })
        .map(|t| s.ticket_json(t))
        .collect();
    if descending {
        tickets.reverse();
    }
    Json(page(tickets, paging)).into_response()
}

async fn get_ticket(
    AxState(shared): AxState<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let s = shared.lock();
    match parse_id(&id).and_then(|id| s.tickets.get(&id)) {
        Some(t) => Json(s.ticket_json(t)).into_response(),
        None => not_found("Ticket", &id),
    }
}

async fn list_notes(
    AxState(shared): AxState<AppState>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let paging = match paging(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let s = shared.lock();
    let Some(ticket) = parse_id(&id).filter(|id| s.tickets.contains_key(id)) else {
        return not_found("Ticket", &id);
    };
    let notes: Vec<Value> = s
        .notes
        .iter()
        .filter(|n| n.ticket_id == ticket)
        .map(|n| s.note_json(n))
        .collect();
    Json(page(notes, paging)).into_response()
}

/// A flag that is absent takes `default`; one that is not a boolean is a validation error.
fn flag(body: &Value, name: &str, default: bool) -> Result<bool, Box<Response>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Box::new(invalid(
            "ticketNote",
            name,
            "InvalidValue",
            &format!("{name} must be true or false"),
        ))),
    }
}

async fn post_note(
    AxState(shared): AxState<AppState>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = shared.lock().note_faults.take_next();
    if let Some(fault) = fault.filter(|f| !f.stored) {
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let code = if status == StatusCode::TOO_MANY_REQUESTS {
            "TooManyRequests"
        } else {
            "ServiceUnavailable"
        };
        let mut response = cw_error(status, code, "Injected failure");
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        return response;
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return cw_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type must be application/json",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return cw_error(
            StatusCode::BAD_REQUEST,
            "InvalidObject",
            "The body is not valid JSON",
        );
    };
    if !body.is_object() {
        return cw_error(
            StatusCode::BAD_REQUEST,
            "InvalidObject",
            "ticketNote object is invalid",
        );
    }
    let text = match body.get("text") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return invalid(
                "ticketNote",
                "text",
                "NullValue",
                "The text field is required.",
            )
        }
        Some(_) => {
            return invalid(
                "ticketNote",
                "text",
                "InvalidValue",
                "text must be a string",
            )
        }
    };
    let flags = (|| {
        Ok::<_, Box<Response>>((
            flag(&body, "detailDescriptionFlag", false)?,
            flag(&body, "internalAnalysisFlag", false)?,
            flag(&body, "resolutionFlag", false)?,
            flag(&body, "processNotifications", true)?,
        ))
    })();
    let (mut detail, internal, resolution, notify) = match flags {
        Ok(f) => f,
        Err(r) => return *r,
    };
    // A note with no type flag is a Discussion note, which the customer sees.
    if !detail && !internal && !resolution {
        detail = true;
    }
    let mut s = shared.lock();
    let Some(ticket) = parse_id(&id).filter(|id| s.tickets.contains_key(id)) else {
        return not_found("Ticket", &id);
    };
    let note = SimNote {
        id: s.next_note,
        ticket_id: ticket,
        text,
        internal_analysis_flag: internal,
        detail_description_flag: detail,
        resolution_flag: resolution,
        process_notifications: notify,
        date_created: now(),
    };
    s.next_note += 1;
    let json = s.note_json(&note);
    s.notes.push(note);
    if let Some(fault) = fault {
        return crate::sim::common::stored_but_failed(fault.status);
    }
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn list_companies(
    AxState(shared): AxState<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let paging = match paging(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let s = shared.lock();
    let all: Vec<Value> = s.companies.values().map(|c| s.company_json(c)).collect();
    Json(page(all, paging)).into_response()
}

async fn get_company(
    AxState(shared): AxState<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let s = shared.lock();
    match parse_id(&id).and_then(|id| s.companies.get(&id)) {
        Some(c) => Json(s.company_json(c)).into_response(),
        None => not_found("Company", &id),
    }
}

async fn list_contacts(
    AxState(shared): AxState<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let paging = match paging(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let s = shared.lock();
    let all: Vec<Value> = s.contacts.values().map(|c| s.contact_json(c)).collect();
    Json(page(all, paging)).into_response()
}

async fn get_contact(
    AxState(shared): AxState<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let s = shared.lock();
    match parse_id(&id).and_then(|id| s.contacts.get(&id)) {
        Some(c) => Json(s.contact_json(c)).into_response(),
        None => not_found("Contact", &id),
    }
}

async fn list_members(
    AxState(shared): AxState<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let paging = match paging(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let s = shared.lock();
    let all: Vec<Value> = s.members.values().map(State::member_json).collect();
    Json(page(all, paging)).into_response()
}

async fn my_member(
    AxState(shared): AxState<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let s = shared.lock();
    match principal {
        Principal::Member(id) => match s.members.get(&id) {
            Some(m) => Json(State::member_json(m)).into_response(),
            None => not_found("Member", &id.to_string()),
        },
        Principal::ApiMember => Json(json!({
            "id": 1, "identifier": "deskproof-api", "firstName": "deskproof",
            "lastName": "API", "inactiveFlag": false
        }))
        .into_response(),
    }
}

/// A required field and how to tell that its value is usable.
type Required<'a> = (&'a str, fn(&Value) -> bool);

fn required(body: &Value, resource: &str, fields: &[Required<'_>]) -> Option<Response> {
    fields.iter().find_map(|(name, ok)| {
        let valid = body.get(*name).is_some_and(ok);
        (!valid).then(|| {
            invalid(
                resource,
                name,
                "NullValue",
                &format!("The {name} field is required."),
            )
        })
    })
}

fn is_text(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.trim().is_empty())
}

fn is_int(v: &Value) -> bool {
    v.as_i64().is_some()
}

async fn list_callbacks(AxState(shared): AxState<AppState>) -> Response {
    Json(shared.lock().callbacks.clone()).into_response()
}

async fn post_callback(
    AxState(shared): AxState<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return cw_error(
            StatusCode::BAD_REQUEST,
            "InvalidObject",
            "The body is not valid JSON",
        );
    };
    if let Some(r) = required(
        &body,
        "callbackEntry",
        &[
            ("url", is_text),
            ("objectId", is_int),
            ("type", is_text),
            ("level", is_text),
        ],
    ) {
        return r;
    }
    let url_ok = body
        .get("url")
        .and_then(Value::as_str)
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| matches!(u.scheme(), "http" | "https"));
    if !url_ok {
        return invalid(
            "callbackEntry",
            "url",
            "InvalidValue",
            "url must be an http(s) URL",
        );
    }
    let member = match principal {
        Principal::Member(m) => m,
        Principal::ApiMember => 1,
    };
    let body = shared.lock().add_callback(body, member);
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn delete_callback(
    AxState(shared): AxState<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let mut s = shared.lock();
    let before = s.callbacks.len();
    let target = parse_id(&id);
    s.callbacks
        .retain(|c| c.get("id").and_then(Value::as_i64) != target || target.is_none());
    if s.callbacks.len() == before {
        return not_found("Callback", &id);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_setups(AxState(shared): AxState<AppState>) -> Response {
    Json(shared.lock().hosted_setups.clone()).into_response()
}

async fn post_setup(AxState(shared): AxState<AppState>, body: Bytes) -> Response {
    let Ok(mut body) = serde_json::from_slice::<Value>(&body) else {
        return cw_error(
            StatusCode::BAD_REQUEST,
            "InvalidObject",
            "The body is not valid JSON",
        );
    };
    if let Some(r) = required(
        &body,
        "connectWiseHostedSetup",
        &[
            ("screenId", is_int),
            ("description", is_text),
            ("url", is_text),
            ("type", is_text),
        ],
    ) {
        return r;
    }
    if body.get("screenId").and_then(Value::as_i64).unwrap_or(0) <= 0 {
        return invalid(
            "connectWiseHostedSetup",
            "screenId",
            "InvalidValue",
            "screenId must be the id of a Hosted API screen",
        );
    }
    let url_ok = body
        .get("url")
        .and_then(Value::as_str)
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| matches!(u.scheme(), "http" | "https"));
    if !url_ok {
        return invalid(
            "connectWiseHostedSetup",
            "url",
            "InvalidValue",
            "url must be an http(s) URL",
        );
    }
    let kind_ok = body
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| matches!(t, "Pod" | "Tab" | "ToolbarButton"));
    if !kind_ok {
        return invalid(
            "connectWiseHostedSetup",
            "type",
            "InvalidValue",
            "type must be Pod, Tab or ToolbarButton",
        );
    }
    let mut s = shared.lock();
    let id = s.next_setup;
    s.next_setup += 1;
    body["id"] = json!(id);
    body["createdBy"] = json!("deskproof-api");
    body["dateCreated"] = json!(super::state::format_time(now()));
    s.hosted_setups.push(body.clone());
    (StatusCode::CREATED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codebases_are_recognised() {
        assert!(codebase_ok("v4_6_release"));
        assert!(codebase_ok("v2025_1"));
        assert!(!codebase_ok("v4_7_release"));
        assert!(!codebase_ok("apis"));
    }

    #[test]
    fn unknown_conditions_are_refused() {
        assert!(ticket_filter("dateEntered > [2025-03-14T09:12:00Z]").is_ok());
        assert!(ticket_filter("id > 5 and dateEntered >= [2025-03-14T09:12:00Z]").is_ok());
        assert!(ticket_filter("summary like \"x\"").is_err());
        assert!(ticket_filter("dateEntered > 2025").is_err());
    }
}
