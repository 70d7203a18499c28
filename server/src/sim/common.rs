//! What the Autotask, Freshdesk and HaloPSA simulators share: serving on a free port until
//! dropped, failures injected into the next note posts, and webhook deliveries to deskproof.
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::Router;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::oneshot;

pub use crate::sim::connectwise::Delivery;

/// A simulator's listener: stops serving when dropped.
pub struct Served {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `addr` (port 0 picks a free port); `router` is built once the address is known.
pub async fn serve(
    addr: SocketAddr,
    name: &'static str,
    router: impl FnOnce(SocketAddr) -> Router,
) -> std::io::Result<Served> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let router = router(addr);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, simulator = name, "simulator stopped");
        }
    });
    Ok(Served {
        addr,
        shutdown: Some(tx),
    })
}

/// The outbound client simulators send webhooks with.
pub fn outbound() -> std::io::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(std::io::Error::other)
}

/// Posts one webhook and records how the receiver answered. `auth` is the header that
/// authenticates it (name, value), also kept in [`Delivery::signature`].
pub async fn deliver(
    http: &reqwest::Client,
    ticket_id: i64,
    url: String,
    body: Vec<u8>,
    auth: Option<(String, String)>,
) -> Delivery {
    let mut request = http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone());
    if let Some((name, value)) = &auth {
        request = request.header(name.as_str(), value.as_str());
    }
    let (status, error) = match request.send().await {
        Ok(response) => (Some(response.status().as_u16()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Delivery {
        ticket_id,
        url,
        body,
        signature: auth.map(|(_, v)| v).unwrap_or_default(),
        status,
        error,
    }
}

/// What an injected failure does to a note post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteFault {
    /// The status the post is answered with.
    pub status: u16,
    /// The note is stored before the failure is answered, as when a gateway times out after
    /// the PSA wrote it: the caller cannot tell whether it was written.
    pub stored: bool,
}

/// Failures queued for the next note posts, one per post.
#[derive(Debug, Default)]
pub struct NoteFaults {
    queued: Vec<NoteFault>,
    /// Every note POST that reached the simulator, failed or not.
    pub posts: usize,
}

impl NoteFaults {
    /// The next `n` posts are refused with `status` and store nothing.
    pub fn queue(&mut self, n: usize, status: u16) {
        self.queued = vec![
            NoteFault {
                status,
                stored: false
            };
            n
        ];
    }

    /// The next `n` posts store their note and are then answered with `status`.
    pub fn queue_stored(&mut self, n: usize, status: u16) {
        self.queued = vec![
            NoteFault {
                status,
                stored: true
            };
            n
        ];
    }

    /// Counts a post and returns the failure it must get, if any.
    pub fn take_next(&mut self) -> Option<NoteFault> {
        self.posts += 1;
        if self.queued.is_empty() {
            None
        } else {
            Some(self.queued.remove(0))
        }
    }
}

/// The answer a note post that failed after storing its note gets: a gateway time-out.
pub fn stored_but_failed(status: u16) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status =
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::GATEWAY_TIMEOUT);
    (status, "The upstream server did not answer in time").into_response()
}

/// `Retry-After` sent with every simulated 429.
pub const RETRY_AFTER_SECS: u64 = 1;

/// A header value as text, when present.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// RFC 3339 in UTC with whole seconds, as the PSAs write times.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok()
}

/// Now, to the whole second.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Adds `Retry-After` to a simulated 429.
pub fn with_retry_after(mut response: axum::response::Response) -> axum::response::Response {
    if response.status() == axum::http::StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
    response
}

/// HTML note bodies as text, for assertions on wording: tags removed, `<br>` as a line break,
/// the five escapes undone.
pub fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.replace("<br>", "\n").chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
