//! The simulator's own endpoints under `/sim`: create tickets (JSON and an HTML form) and a
//! ticket page that shows the notes deskproof wrote.
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::state::format_time;
use super::Shared;

type AppState = Arc<Shared>;

pub(crate) fn router(shared: AppState) -> Router {
    Router::new()
        .route("/sim/tickets", axum::routing::post(create_ticket_json))
        .route(
            "/sim/new-ticket",
            get(new_ticket_form).post(create_ticket_form),
        )
        .route("/sim/tickets/{id}", get(ticket_page))
        .with_state(shared)
}

#[derive(Debug, Deserialize)]
struct NewTicket {
    #[serde(default)]
    company_id: Option<i64>,
    #[serde(default)]
    contact_id: Option<i64>,
    summary: String,
}

/// Checks that the ids refer to records the simulator has.
fn check_refs(shared: &Shared, company: Option<i64>, contact: Option<i64>) -> Result<(), String> {
    let s = shared.lock();
    if let Some(c) = company.filter(|c| !s.companies.contains_key(c)) {
        return Err(format!("no company {c}"));
    }
    if let Some(c) = contact.filter(|c| !s.contacts.contains_key(c)) {
        return Err(format!("no contact {c}"));
    }
    Ok(())
}

async fn create_ticket_json(
    State(shared): State<AppState>,
    Json(new): Json<NewTicket>,
) -> Response {
    if let Err(e) = check_refs(&shared, new.company_id, new.contact_id) {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
    }
    let created = shared
        .create_ticket(new.company_id, new.contact_id, &new.summary)
        .await;
    let deliveries: Vec<_> = created
        .deliveries
        .iter()
        .map(|d| json!({"url": d.url, "status": d.status, "error": d.error}))
        .collect();
    (
        StatusCode::CREATED,
        Json(json!({"id": created.id.0, "deliveries": deliveries})),
    )
        .into_response()
}

async fn create_ticket_form(
    State(shared): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let id = |name: &str| form.get(name).and_then(|v| v.trim().parse::<i64>().ok());
    let (company, contact) = (id("company"), id("contact"));
    let summary = form.get("summary").map(|s| s.trim()).unwrap_or_default();
    if let Err(e) = check_refs(&shared, company, contact) {
        return (StatusCode::BAD_REQUEST, Html(page("Error", &escape(&e)))).into_response();
    }
    let created = shared.create_ticket(company, contact, summary).await;
    Redirect::to(&format!("/sim/tickets/{}", created.id.0)).into_response()
}

async fn new_ticket_form(State(shared): State<AppState>) -> Html<String> {
    let s = shared.lock();
    let mut companies = String::from(r#"<option value="">(none)</option>"#);
    for c in s.companies.values() {
        companies.push_str(&format!(
            r#"<option value="{}">{}</option>"#,
            c.id,
            escape(&c.name)
        ));
    }
    let mut contacts = String::from(r#"<option value="">(none)</option>"#);
    for c in s.contacts.values() {
        contacts.push_str(&format!(
            r#"<option value="{}">{}</option>"#,
            c.id,
            escape(&c.display_name())
        ));
    }
    let mut recent = String::new();
    for t in s.tickets.values().rev().take(20) {
        recent.push_str(&format!(
            r#"<li><a href="/sim/tickets/{id}">#{id}</a> {}</li>"#,
            escape(&t.summary),
            id = t.id
        ));
    }
    let body = format!(
        r#"<form method="post" action="/sim/new-ticket">
<p><label>Company <select name="company">{companies}</select></label></p>
<p><label>Contact <select name="contact">{contacts}</select></label></p>
<p><label>Summary <input name="summary" size="60" value="Password reset"></label></p>
<p><button type="submit">Create ticket</button></p>
</form>
<h2>Recent tickets</h2><ul>{recent}</ul>"#
    );
    Html(page("New ConnectWise ticket", &body))
}

async fn ticket_page(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    let s = shared.lock();
    let Some(t) = id.parse::<i64>().ok().and_then(|id| s.tickets.get(&id)) else {
        return (
            StatusCode::NOT_FOUND,
            Html(page("Not found", "No such ticket.")),
        )
            .into_response();
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
        let kind = if n.is_customer_visible() {
            "Discussion (customer-visible)"
        } else {
            "Internal"
        };
        notes.push_str(&format!(
            r#"<li class="note"><p><strong>{kind}</strong> · {} · notifications {}</p><pre>{}</pre></li>"#,
            format_time(n.date_created),
            if n.process_notifications { "on" } else { "off" },
            linkify(&n.text)
        ));
    }
    if notes.is_empty() {
        notes.push_str("<li>No notes yet.</li>");
    }
    let body = format!(
        r#"<p>Company: {company}<br>Contact: {contact}<br>Entered: {}</p>
<h2>Notes</h2><ul>{notes}</ul>
<p><a href="/sim/connectwise/tickets/{id}/screen">Ticket screen (with pods)</a> ·
<a href="/sim/new-ticket">New ticket</a></p>"#,
        format_time(t.date_entered),
        id = t.id
    );
    Html(page(
        &format!("Ticket #{} · {}", t.id, escape(&t.summary)),
        &body,
    ))
    .into_response()
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:50rem;margin:2rem auto}}pre{{white-space:pre-wrap}}</style>
</head><body><p><em>ConnectWise simulator</em></p><h1>{title}</h1>{body}</body></html>"#
    )
}

pub(crate) use crate::sim::escape_html as escape;

/// Escapes `text` and turns each `http://` or `https://` URL in it into a link.
pub(crate) fn linkify(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let start = [rest.find("https://"), rest.find("http://")]
            .into_iter()
            .flatten()
            .min();
        let Some(start) = start else {
            out.push_str(&escape(rest));
            return out;
        };
        out.push_str(&escape(&rest[..start]));
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\''))
            .unwrap_or(tail.len());
        // A sentence's closing punctuation is not part of the link.
        let url = tail[..end].trim_end_matches(['.', ',', ')', ';', ':']);
        let url = escape(url);
        out.push_str(&format!(r#"<a href="{url}">{url}</a>"#));
        rest = &tail[tail[..end]
            .trim_end_matches(['.', ',', ')', ';', ':'])
            .len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_text_is_escaped_and_links_are_clickable() {
        let html = linkify("Verify <b>now</b>: https://deskproof.example/v/1?a=1&b=2. Thanks");
        assert_eq!(
            html,
            "Verify &lt;b&gt;now&lt;/b&gt;: \
             <a href=\"https://deskproof.example/v/1?a=1&amp;b=2\">https://deskproof.example/v/1?a=1&amp;b=2</a>. Thanks"
        );
        assert_eq!(linkify("javascript:alert(1)"), "javascript:alert(1)");
        assert_eq!(linkify("x\"><script>"), "x&quot;&gt;&lt;script&gt;");
    }
}
