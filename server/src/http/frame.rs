//! Who may frame deskproof's pages. Only the ConnectWise pod may be shown inside another site,
//! and only inside the ConnectWise origins configured for its connection; everything else
//! keeps the general `frame-ancestors 'none'` and `X-Frame-Options: DENY`.
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::storage::Store;
use crate::verify::pod::connection_pod_origins;

/// The connection id of a pod page path, `/pod/connectwise/{id}`.
fn pod_connection(path: &str) -> Option<i64> {
    path.strip_prefix("/pod/connectwise/")?
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// The `Content-Security-Policy` of a pod page framed by `origins` (none: not framed at all).
pub fn pod_policy(origins: &[String]) -> String {
    let ancestors = if origins.is_empty() {
        "'none'".to_owned()
    } else {
        origins.join(" ")
    };
    format!("frame-ancestors {ancestors}; object-src 'none'; base-uri 'self'")
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
    match HeaderValue::from_str(&pod_policy(&origins)) {
        Ok(policy) if !origins.is_empty() => {
            h.insert(header::CONTENT_SECURITY_POLICY, policy);
            h.remove(header::X_FRAME_OPTIONS);
        }
        _ => {
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
                ),
            );
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
    fn the_policy_lists_the_origins() {
        assert_eq!(
            pod_policy(&["https://na.myconnectwise.net".into()]),
            "frame-ancestors https://na.myconnectwise.net; object-src 'none'; base-uri 'self'"
        );
        assert!(pod_policy(&[]).starts_with("frame-ancestors 'none'"));
    }
}
