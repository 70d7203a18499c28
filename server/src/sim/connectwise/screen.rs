//! The simulated ticket screen: a ticket with its notes and, beside it, the pod configured in
//! Manage Hosted API, in an iframe that speaks ConnectWise's Hosted API over real postMessage.
//!
//! The screen answers only the pod's origin and only messages from the pod's window, sends
//! `MessageFrameID` and then `onLoad` after `ready`, and hands out the signed-in member's
//! credentials only for a `getMemberAuthentication` request carrying the frame id, once
//! `onLoad` was acknowledged. `?member=ID` picks the signed-in member (default: the first);
//! `?hold` keeps the screen from answering `ready` until `window.releaseHold()` is called;
//! `window.saveTicket()` sends `beforeSave`, which the pod must acknowledge like any event.
//! The pod's frame is as tall as the `podHeight` of the hosted setup registered for it, or the
//! height deskproof registers when none is.
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::pages::{escape, linkify};
use super::state::format_time;
use super::Shared;
use crate::psa::connectwise::model::POD_HEIGHT;

type AppState = Arc<Shared>;

pub(crate) fn router(shared: AppState) -> Router {
    Router::new()
        .route("/sim/connectwise/tickets/{id}/screen", get(ticket_screen))
        .with_state(shared)
}

/// JSON for a `<script>` element: `</` cannot end the element early.
fn script_json(value: &serde_json::Value) -> String {
    value.to_string().replace("</", "<\\/")
}

async fn ticket_screen(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = shared.lock();
    let Some(t) = id.parse::<i64>().ok().and_then(|id| s.tickets.get(&id)) else {
        return (StatusCode::NOT_FOUND, Html("No such ticket.".to_owned())).into_response();
    };
    let company = t
        .company_id
        .and_then(|c| s.companies.get(&c))
        .map(|c| escape(&c.name))
        .unwrap_or_else(|| "(none)".into());
    let contact = t
        .contact_id
        .and_then(|c| s.contacts.get(&c))
        .map(|c| escape(&c.display_name()))
        .unwrap_or_else(|| "(none)".into());
    let mut notes = String::new();
    for n in s.notes.iter().filter(|n| n.ticket_id == t.id) {
        notes.push_str(&format!(
            r#"<li class="note"><small>{} · {}</small><pre>{}</pre></li>"#,
            format_time(n.date_created),
            if n.is_customer_visible() {
                "Discussion"
            } else {
                "Internal"
            },
            linkify(&n.text)
        ));
    }
    if notes.is_empty() {
        notes.push_str("<li>No notes yet.</li>");
    }
    let member = match q.get("member") {
        Some(who) => s
            .members
            .values()
            .find(|m| m.identifier.eq_ignore_ascii_case(who)),
        None => s.members.values().next(),
    };
    let host = s
        .origin
        .split_once("://")
        .map(|(_, h)| h.to_owned())
        .unwrap_or_default();
    let member_json = match member {
        Some(m) => json!({
            "site": host,
            "companyid": s.config.company_id,
            "memberid": m.identifier,
            "memberHash": m.member_hash,
            "memberContext": format!("sim-context-{}", m.id),
            "memberEmail": format!("{}@{}.example", m.identifier, s.config.company_id),
            "codeBase": s.config.codebase,
        }),
        None => serde_json::Value::Null,
    };
    let signed_in = member
        .map(|m| {
            escape(&format!(
                "{} {} ({})",
                m.first_name, m.last_name, m.identifier
            ))
        })
        .unwrap_or_else(|| "nobody".into());
    let pod = match &s.pod_url {
        Some(url) => {
            // As tall as the hosted setup registered for this pod says, as ConnectWise frames
            // it; without one, the height deskproof registers.
            let height = s
                .hosted_setups
                .iter()
                .filter(|h| h.get("type").and_then(|t| t.as_str()) == Some("Pod"))
                .filter(|h| {
                    h.get("url")
                        .and_then(|u| u.as_str())
                        .is_some_and(|u| u.starts_with(url.as_str()))
                })
                .find_map(|h| h.get("podHeight").and_then(|v| v.as_i64()))
                .filter(|h| (50..=2000).contains(h))
                .unwrap_or(POD_HEIGHT);
            let sep = if url.contains('?') { '&' } else { '?' };
            let src = format!("{url}{sep}id={}&screen=ticket", t.id);
            format!(
                r#"<aside class="pods"><h2>deskproof</h2>
<iframe id="pod" title="deskproof" src="{src_attr}" style="height:{height}px"></iframe></aside>
<script>
(() => {{
  const POD = {pod};
  const TICKET = {ticket};
  const MEMBER = {member};
  const podOrigin = new URL(POD).origin;
  const frame = document.getElementById('pod');
  const frameId = 'pod-' + TICKET + '-' + Math.random().toString(36).slice(2, 8);
  const log = window.__hosted = {{ received: [], sent: [], acks: [], answered: 0 }};
  let hold = new URLSearchParams(location.search).has('hold');
  let readyWaiting = false;
  function send(msg) {{
    log.sent.push(msg);
    frame.contentWindow.postMessage(JSON.stringify(msg), podOrigin);
  }}
  function start() {{
    send({{ MessageFrameID: frameId }});
    send({{ event: 'onLoad', _id: 1,
            data: {{ screenObject: {{ screen: 'ticket', id: TICKET, hostedAs: 'pod' }} }} }});
  }}
  window.addEventListener('message', (e) => {{
    if (e.origin !== podOrigin || e.source !== frame.contentWindow) return;
    let msg;
    try {{ msg = JSON.parse(e.data); }} catch (_) {{ return; }}
    log.received.push(msg);
    if (msg.message === 'ready') {{
      if (hold) readyWaiting = true; else start();
    }} else if (msg.event) {{
      if (msg.frameID === frameId) log.acks.push(msg);
    }} else if ((msg.hosted_request || msg.request) === 'getMemberAuthentication') {{
      const acked = log.acks.some((a) => a.event === 'onLoad' && a.result === 'success');
      if (msg.frameID !== frameId || !acked || !MEMBER) return;
      log.answered += 1;
      send({{ response: 'getmemberauthentication', data: MEMBER }});
    }}
  }});
  window.releaseHold = () => {{ hold = false; if (readyWaiting) start(); }};
  // Saving the ticket: ConnectWise waits for the pod to acknowledge `beforeSave`.
  window.saveTicket = () => send({{ event: 'beforeSave', _id: 2,
    data: {{ screenObject: {{ screen: 'ticket', id: TICKET, hostedAs: 'pod' }} }} }});
}})();
</script>"#,
                src_attr = escape(&src),
                pod = script_json(&json!(src)),
                ticket = t.id,
                member = script_json(&member_json),
            )
        }
        None => r#"<aside class="pods"><p>No pod is set up.</p></aside>"#.to_owned(),
    };
    let body = format!(
        r#"<!doctype html><html><head><meta charset="utf-8">
<title>Service Ticket #{id} · {summary}</title>
<style>
body{{font-family:sans-serif;margin:0;background:#eef1f5}}
header{{background:#1d3b5c;color:#fff;padding:.6rem 1rem}}
main{{display:flex;gap:1rem;padding:1rem;align-items:flex-start}}
section{{flex:1;min-width:0;background:#fff;padding:1rem;border-radius:4px}}
aside.pods{{flex:none;width:400px;background:#fff;padding:.5rem;border-radius:4px}}
aside h2{{font-size:.9rem;margin:.2rem 0 .4rem;color:#1d3b5c}}
iframe{{width:100%;border:1px solid #ccd;border-radius:3px;box-sizing:border-box}}
pre{{white-space:pre-wrap;overflow-wrap:anywhere;margin:.2rem 0}} ul{{padding-left:1rem}}
</style></head><body>
<header><em>ConnectWise simulator</em> · signed in as {signed_in}</header>
<main><section><h1>Service Ticket #{id}</h1><p><strong>{summary}</strong></p>
<p>Company: {company}<br>Contact: {contact}<br>Entered: {entered}</p>
<h2>Notes</h2><ul id="notes">{notes}</ul></section>
{pod}</main></body></html>"#,
        id = t.id,
        summary = escape(&t.summary),
        entered = format_time(t.date_entered),
    );
    Html(body).into_response()
}
