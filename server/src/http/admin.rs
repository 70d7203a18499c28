//! Admin-only HTTP: the guard in front of the settings and audit pages, and the CSV export.
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use tower_sessions::Session;

use app::admin::AuditQuery;
use app::backend::BackendError;

use crate::http::guard::refuse_call;
use crate::http::AppState;

/// Whether a path is an admin page (or the CSV export under it).
pub fn is_admin_path(path: &str) -> bool {
    ["/settings", "/audit"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Not allowed · deskproof</title>\
             <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\
             <link rel=\"stylesheet\" href=\"/pkg/deskproof.css\"></head>\
             <body><main class=\"centered\"><div class=\"card\">\
             <h1 data-testid=\"forbidden\">403: admins only</h1>\
             <p>This page is for administrators. <a href=\"/\">Back to verifications</a></p>\
             </div></main></body></html>",
        ),
    )
        .into_response()
}

/// Admin pages answer 403 to anyone signed in without the admin role; without a session the
/// browser is sent to sign in first.
pub async fn admin_pages_guard(
    State(state): State<AppState>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    // Admin server functions: who may call is checked before the arguments are read, so a
    // technician is told 403 whatever the call carries.
    if path.starts_with("/api/admin/") {
        let Some(session) = request.extensions().get::<Session>().cloned() else {
            return refuse_call(StatusCode::UNAUTHORIZED, "Please sign in.");
        };
        return match state.admin.require_admin(&session).await {
            Ok(_) => next.run(request).await,
            Err(e @ (BackendError::Unauthenticated | BackendError::Forbidden)) => {
                tracing::info!(path = %path, "admin function refused");
                refuse_call(status_of(&e), &e.to_string())
            }
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    }
    if !is_admin_path(&path) {
        return next.run(request).await;
    }
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return forbidden();
    };
    match state.admin.require_admin(&session).await {
        Ok(_) => next.run(request).await,
        Err(BackendError::Unauthenticated) => {
            let back = request
                .uri()
                .path_and_query()
                .map_or(path.as_str(), |p| p.as_str());
            Redirect::to(&format!("/signin?next={}", path_query_value(back))).into_response()
        }
        Err(BackendError::Forbidden) => {
            tracing::info!(path = %path, "admin page refused");
            forbidden()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn path_query_value(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn status_of(e: &BackendError) -> StatusCode {
    match e {
        BackendError::Unauthenticated => StatusCode::UNAUTHORIZED,
        BackendError::Forbidden => StatusCode::FORBIDDEN,
        BackendError::Invalid(_) => StatusCode::BAD_REQUEST,
        BackendError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `GET /audit/export.csv?organization=&connection=&ticket=&technician=&outcome=&from=&to=`
pub async fn audit_export(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<AuditQuery>,
) -> Response {
    if let Err(e) = state.admin.require_admin(&session).await {
        return (status_of(&e), e.to_string()).into_response();
    }
    let filter = match state.admin.audit_filter(&query) {
        Ok(filter) => filter,
        Err(e) => return (status_of(&e), e.to_string()).into_response(),
    };
    // Streamed a page of rows at a time: every matching entry, however many.
    let body = Body::from_stream(state.admin.audit_csv_stream(filter));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"deskproof-audit.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
