//! HTTP: the router, request logging and the small endpoints that are not pages.
pub mod admin;
pub mod frame;
pub mod guard;
pub mod hooks;
use std::sync::Arc;
use std::time::Duration;

use app::backend::SharedBackend;
use axum::body::Body;
use axum::extract::{FromRef, MatchedPath, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, handle_server_fns_with_context, LeptosRoutes};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::Config;
use crate::storage::{SharedSessionStore, Store};
use crate::verify::flow::Flow;
use crate::verify::worker::Worker;

/// What every handler can reach, shared: the router hands a copy to every request and to
/// each middleware that needs it, so a copy is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Self {
        state.store.clone()
    }
}

/// The parts of [`AppState`].
pub struct Services {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub backend: SharedBackend,
    pub config: Arc<Config>,
    pub flow: Flow,
    pub worker: Worker,
    /// Connection pools and caches for the PSA clients that check webhooks.
    pub psa_http: crate::psa::source::PsaHttp,
    /// Kept per connection so a burst of deliveries is checked without reading each time.
    pub webhook_checkers: hooks::WebhookCheckers,
    pub admin: Arc<crate::admin::AdminService>,
}

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let backend = state.backend.clone();
    let admin_backend: app::admin::SharedAdminBackend = state.admin.clone();
    let context = move || {
        provide_context(backend.clone());
        provide_context(admin_backend.clone());
        guard::provide_page_policy();
    };
    let options = state.leptos_options.clone();
    let sessions = SessionManagerLayer::new(SharedSessionStore(state.store.session_store()))
        .with_name("deskproof_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.cookies_secure())
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(
            state.config.session_minutes,
        )));

    let guards = guard::GuardSettings::from_public_url(&state.flow.settings.public_url);
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/hooks/connectwise/{connection_id}",
            post(hooks::connectwise),
        )
        .route("/hooks/autotask/{connection_id}", post(hooks::autotask))
        .route("/hooks/freshdesk/{connection_id}", post(hooks::freshdesk))
        .route("/hooks/halopsa/{connection_id}", post(hooks::halopsa))
        .route("/api/{*fn_name}", get(server_fns).post(server_fns))
        .route("/audit/export.csv", get(admin::audit_export))
        .leptos_routes_with_context(&state, routes, context.clone(), move || {
            app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, app::shell))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin::admin_pages_guard,
        ))
        .layer(sessions)
        .layer(axum::middleware::from_fn(guard::server_fn_status))
        .layer(axum::middleware::from_fn(guard::method_not_allowed))
        .layer(axum::middleware::from_fn_with_state(
            guards.clone(),
            guard::same_origin_only,
        ))
        .layer(axum::middleware::from_fn(guard::body_limits))
        .layer(axum::middleware::from_fn_with_state(
            guards,
            guard::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.store.clone(),
            frame::pod_frame_ancestors,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response),
        )
        .with_state(state)
}

async fn server_fns(State(state): State<AppState>, request: Request<Body>) -> Response {
    let backend = state.backend.clone();
    let admin_backend: app::admin::SharedAdminBackend = state.admin.clone();
    handle_server_fns_with_context(
        move || {
            provide_context(backend.clone());
            provide_context(admin_backend.clone());
        },
        request,
    )
    .await
    .into_response()
}

/// `GET /healthz`: 200 when the database answers, 503 otherwise.
async fn healthz(State(store): State<Store>) -> Response {
    match store.ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ok", "database": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unavailable", "database": "error"})),
            )
                .into_response()
        }
    }
}

/// One span per request with method and matched route, and one line when it is answered.
fn request_span(req: &Request<Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    tracing::info_span!("request", method = %req.method(), route = %route)
}

fn log_response(res: &Response, latency: Duration, _span: &tracing::Span) {
    tracing::info!(
        status = res.status().as_u16(),
        duration_ms = latency.as_secs_f64() * 1000.0,
        "answered"
    );
}

/// Whether deskproof may send keys and tickets to `url`: over HTTPS, or over plain HTTP only to
/// this machine (the simulators), never in the clear across a network.
pub fn secure_or_local(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => url.has_host(),
        "http" => match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}
