//! Who may frame deskproof's pages. Only the ConnectWise pod may be shown inside another site,
//! and only inside the ConnectWise origins configured for its connection; everything else
//! keeps the general `frame-ancestors 'none'` and `X-Frame-Options: DENY`.
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::guard::content_security_policy;
use crate::storage::Store;
use crate::verify::pod::connection_pod_origins;

/// The connection id of a pod page path, `/pod/connectwise/{id}`.
fn pod_connection(path: &str) -> Option<i64> {
    path.strip_prefix("/pod/connectwise/")?
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// `policy` with its `frame-ancestors` directive set to `origins` (none: not framed at all);
/// every other directive, the page's script nonce among them, is kept.
pub fn with_frame_ancestors(policy: &str, origins: &[String]) -> String {
    let ancestors = if origins.is_empty() {
        "'none'".to_owned()
    } else {
        origins.join(" ")
    };
    let mut directives: Vec<&str> = policy
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| {
            let name = d.split_ascii_whitespace().next().unwrap_or_default();
            !name.eq_ignore_ascii_case("frame-ancestors")
        })
        .collect();
    let framing = format!("frame-ancestors {ancestors}");
    directives.push(&framing);
    directives.join("; ")
}

/// Sets the pod page's own framing rule. It runs outside the general security headers, so it
/// replaces their `frame-ancestors 'none'` and drops `X-Frame-Options` (which cannot name an
/// allowed origin) on pod pages only.
pub async fn pod_frame_ancestors(
    State(store): State<Store>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let Some(connection_id) = pod_connection(request.uri().path()) else {
        return next.run(request).await;
    };
    let origins = match store.psa_connection(connection_id).await {
        Ok(Some(c)) => connection_pod_origins(&c),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::error!(error = %e, "pod framing: connection could not be read");
            Vec::new()
        }
    };
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let general = content_security_policy(None);
    let current = h
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(&general);
    let framed = HeaderValue::from_str(&with_frame_ancestors(current, &origins));
    match framed {
        Ok(policy) if !origins.is_empty() => {
            h.insert(header::CONTENT_SECURITY_POLICY, policy);
            h.remove(header::X_FRAME_OPTIONS);
        }
        _ => {
            let closed = with_frame_ancestors(current, &[]);
            let closed = HeaderValue::from_str(&closed)
                .unwrap_or_else(|_| HeaderValue::from_static("frame-ancestors 'none'"));
            h.insert(header::CONTENT_SECURITY_POLICY, closed);
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pod_paths_name_a_connection() {
        assert_eq!(pod_connection("/pod/connectwise/3"), Some(3));
        assert_eq!(pod_connection("/pod/connectwise/3/"), Some(3));
        assert_eq!(pod_connection("/pod/connectwise/x"), None);
        assert_eq!(pod_connection("/verify/3"), None);
    }

    #[test]
    fn the_framing_rule_lists_the_origins_and_keeps_the_rest_of_the_policy() {
        let page = content_security_policy(Some("abc123"));
        let framed = with_frame_ancestors(&page, &["https://na.myconnectwise.net".into()]);
        assert!(
            framed.ends_with("; frame-ancestors https://na.myconnectwise.net"),
            "{framed}"
        );
        assert!(framed.contains("script-src 'self' 'wasm-unsafe-eval' 'nonce-abc123'"));
        assert_eq!(framed.matches("frame-ancestors").count(), 1, "{framed}");
        assert_eq!(with_frame_ancestors(&framed, &[]), page);
        assert_eq!(
            with_frame_ancestors("default-src 'self'; FRAME-ANCESTORS *", &[]),
            "default-src 'self'; frame-ancestors 'none'"
        );
    }
}
