//! Request guards shared by every route: cross-site request refusal, body size and type limits,
//! security headers, and status codes for refused server function calls.
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The largest webhook body accepted. PSA callbacks are a few kilobytes.
pub const HOOK_BODY_LIMIT: usize = 64 * 1024;
/// The largest body any other request may carry: forms and server function calls.
pub const FORM_BODY_LIMIT: usize = 16 * 1024;

/// What the guards need to know about the deployment.
#[derive(Clone, Debug)]
pub struct GuardSettings {
    /// The origin browsers use to reach deskproof (`scheme://host[:port]`), from `public_url`.
    pub public_origin: Option<String>,
    /// Send `Strict-Transport-Security`: the public URL is https.
    pub hsts: bool,
}

impl GuardSettings {
    pub fn from_public_url(public_url: &str) -> GuardSettings {
        let parsed = url::Url::parse(public_url).ok();
        let public_origin = parsed
            .as_ref()
            .map(|u| u.origin())
            .filter(url::Origin::is_tuple)
            .map(|o| o.ascii_serialization());
        GuardSettings {
            public_origin,
            hsts: parsed.is_some_and(|u| u.scheme() == "https"),
        }
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "status": status.as_u16(), "message": message })),
    )
        .into_response()
}

/// [`refuse`] for a server function: the body is in the framework's error form
/// (`ServerError|message`), so the page shows the message itself rather than a decoding error.
pub(crate) fn refuse_call(status: StatusCode, message: &str) -> Response {
    (status, format!("ServerError|{message}")).into_response()
}

fn is_hook(request: &Request<Body>) -> bool {
    request.uri().path().starts_with("/hooks/")
}

/// Pod server functions. They carry no cookie: the pod token (or, to open a pod, the member's
/// ConnectWise credentials) is in the request itself, so a request that names no origin cannot
/// borrow anyone's sign-in.
fn is_pod_call(request: &Request<Body>) -> bool {
    request
        .uri()
        .path()
        .strip_prefix("/api/")
        .is_some_and(|f| f.starts_with("pod_"))
}

/// Refuses state-changing requests that do not come from deskproof's own pages. A browser
/// names the page's origin in `Origin` and tells in `Sec-Fetch-Site` whether it is another
/// site; either one pointing elsewhere is refused, and so is a request that names neither
/// (every current browser sends `Origin` with a POST, so only something that is not a browser,
/// or a very old one, arrives without). Webhooks are exempt: PSAs are not browsers and
/// authenticate every delivery by signature or secret. Pod calls may name no origin, since they
/// carry their credentials in the request, but one naming another origin is still refused.
pub async fn same_origin_only(
    State(settings): State<GuardSettings>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe || is_hook(&request) {
        return next.run(request).await;
    }
    let headers = request.headers();
    // `same-site` is refused too: a sibling subdomain is not deskproof.
    let foreign_fetch = headers
        .get("sec-fetch-site")
        .map(|v| !matches!(v.to_str(), Ok("same-origin" | "none")))
        .unwrap_or(false);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let foreign_origin = match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => false,
        Some(Err(_)) | Some(Ok("null")) => true,
        Some(Ok(origin)) => {
            let own = settings
                .public_origin
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case(origin));
            let authority = origin.split_once("://").map(|(_, rest)| rest);
            let same_host = match (authority, host) {
                (Some(a), Some(h)) => a.eq_ignore_ascii_case(h),
                _ => false,
            };
            !(own || same_host)
        }
    };
    if foreign_fetch || foreign_origin {
        tracing::warn!(path = %request.uri().path(), "cross-site request refused");
        return refuse(
            StatusCode::FORBIDDEN,
            "Cross-site requests are not accepted.",
        );
    }
    let unnamed = !headers.contains_key(header::ORIGIN) && !headers.contains_key("sec-fetch-site");
    if unnamed && !is_pod_call(&request) {
        tracing::warn!(path = %request.uri().path(), "request without an origin refused");
        return refuse(
            StatusCode::FORBIDDEN,
            "Cross-site requests are not accepted: this request names neither its Origin nor \
             Sec-Fetch-Site, which every browser sends from deskproof's own pages.",
        );
    }
    next.run(request).await
}

/// Caps request bodies (64 KiB for webhooks, 16 KiB for everything else) with a clear 413, and
/// refuses bodies of a type the route cannot read with 415.
pub async fn body_limits(request: Request<Body>, next: Next) -> Response {
    let hook = is_hook(&request);
    let api = request.uri().path().starts_with("/api/");
    let limit = if hook {
        HOOK_BODY_LIMIT
    } else {
        FORM_BODY_LIMIT
    };
    let answer = if api { refuse_call } else { refuse };
    let too_large = || {
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "The request body is larger than the {} KiB allowed here.",
                limit / 1024
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => return too_large(),
    };
    if !bytes.is_empty() && parts.method == Method::POST {
        let kind = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let accepted: &[&str] = if hook {
            &["application/json"]
        } else if api {
            // Every server function reads a URL-encoded form, as browsers post it.
            &["application/x-www-form-urlencoded"]
        } else {
            &[]
        };
        if !accepted.is_empty() && !accepted.contains(&kind.as_str()) {
            return answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!(
                    "Content type {:?} is not accepted here; send {}.",
                    kind,
                    accepted.join(" or ")
                ),
            );
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Server functions answer every error with 500. Errors that are the caller's (not signed in,
/// not allowed, a bad link or bad input) get a 4xx instead, with the same body, which the
/// browser side reads the same way.
pub async fn server_fn_status(request: Request<Body>, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on the server.",
        );
    };
    let text = String::from_utf8_lossy(&bytes);
    let (kind, message) = text.split_once('|').unwrap_or(("", ""));
    if matches!(kind, "Args" | "Deserialization" | "MissingArg") {
        // The framework's own words ("missing field `token`") say what is wrong but not
        // where; the kind stays in front, so the browser side reads the error as before.
        parts.status = StatusCode::BAD_REQUEST;
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = format!("{kind}|The request's arguments could not be read: {message}");
        return Response::from_parts(parts, Body::from(body));
    }
    let status = match kind {
        "ServerError" if message == app::backend::BackendError::Unauthenticated.to_string() => {
            StatusCode::UNAUTHORIZED
        }
        "ServerError" if message == app::backend::BackendError::Forbidden.to_string() => {
            StatusCode::FORBIDDEN
        }
        "ServerError"
            if message == app::backend::BackendError::Internal.to_string()
                || message.starts_with("server is missing") =>
        {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        "ServerError" => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    parts.status = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// Answers a method a route does not take with a message saying which ones it does, instead of
/// the router's empty 405. Server functions are all called with POST.
pub async fn method_not_allowed(request: Request<Body>, next: Next) -> Response {
    let method = request.method().clone();
    let api = request.uri().path().starts_with("/api/");
    let hook = is_hook(&request);
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    if api {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("This server function does not accept {method}; it is called with POST."),
        );
    }
    // The router leaves out `Allow` behind layers; deskproof's routes outside /api/ are
    // webhooks (POST) and pages, files, the health check and the export (GET).
    let allowed = if hook { "POST" } else { "GET" };
    let mut refused = refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("This address does not accept {method}; it answers {allowed}."),
    );
    refused.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static(if hook { "POST" } else { "GET, HEAD" }),
    );
    refused
}

/// The `Content-Security-Policy` of deskproof's answers. Scripts and the WebAssembly bundle
/// come from deskproof itself; the inline hydration scripts of a page carry `nonce`, fresh for
/// each page. No inline styles, plugins, `<base>` or foreign form targets, and no framing
/// (the pod page replaces `frame-ancestors` with its ConnectWise origins).
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{nonce}; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
         object-src 'none'; frame-ancestors 'none'"
    )
}

/// Sets the policy of a page being rendered, with the nonce Leptos put on its inline scripts.
/// Called in the Leptos context of each page; without a nonce (a static file) it does nothing
/// and the general policy applies.
pub fn provide_page_policy() {
    use leptos::prelude::use_context;
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    match HeaderValue::from_str(&content_security_policy(Some(&nonce))) {
        Ok(policy) => response.insert_header(header::CONTENT_SECURITY_POLICY, policy),
        // A nonce is URL-safe base64; anything else leaves the general policy, which blocks
        // the page's inline scripts rather than allowing them.
        Err(_) => tracing::error!("page nonce is not a header value"),
    }
}

/// Headers every answer carries: the content security policy (a page rendered by Leptos has
/// already set its own, with its nonce), no framing (the ConnectWise pod's own rule is set
/// outside this layer), MIME types are not guessed, links do not leak the verification token,
/// and an https deployment asks browsers to stay on https.
pub async fn security_headers(
    State(settings): State<GuardSettings>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(policy) = HeaderValue::from_str(&content_security_policy(None)) {
            h.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if settings.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_origin_and_hsts_follow_the_public_url() {
        let s = GuardSettings::from_public_url("https://desk.example.net/");
        assert_eq!(s.public_origin.as_deref(), Some("https://desk.example.net"));
        assert!(s.hsts);
        let s = GuardSettings::from_public_url("http://127.0.0.1:3000");
        assert_eq!(s.public_origin.as_deref(), Some("http://127.0.0.1:3000"));
        assert!(!s.hsts);
    }
}
