//! The simulated phone: an HTML page per user to answer pushes, and a control API for tests.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use serde_json::json;

use super::verify::SimError;
use super::{DuoSim, PushKind, PushState};
use crate::duo::types::TxId;

use crate::sim::escape_html as escape;

fn parse_action(action: &str) -> Option<PushState> {
    match action {
        "approve" => Some(PushState::Approved),
        "deny" => Some(PushState::Denied),
        "fraud" => Some(PushState::Fraud),
        "timeout" => Some(PushState::TimedOut),
        _ => None,
    }
}

/// `GET /phone/{username}`: the user's pending pushes with Approve / Deny / Report buttons.
pub async fn phone_page(State(sim): State<DuoSim>, Path(username): Path<String>) -> Html<String> {
    let pending = sim.pending_pushes(&username);
    let user = escape(&username);
    let user_path = escape(&crate::duo::signing::encode_component(&username));
    let mut cards = String::new();
    for push in &pending {
        let mut info = String::new();
        for (k, v) in &push.pushinfo_pairs {
            info.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(k),
                escape(v)
            ));
        }
        let action = |verb: &str, label: &str| {
            format!(
                "<form method=\"post\" action=\"/phone/{user_path}/{}/{verb}\">\
                 <button type=\"submit\" class=\"{verb}\">{label}</button></form>",
                escape(push.txid.as_str())
            )
        };
        // A verification push shows Duo's own text and its confirmation code.
        let (heading, code) = match (&push.kind, &push.confirmation_code) {
            (PushKind::Verification, Some(code)) => (
                "Verification request".to_owned(),
                format!(
                    "<p class=\"code\">Confirmation code: \
                     <strong data-testid=\"confirmation-code\">{}</strong></p>",
                    escape(code)
                ),
            ),
            _ => (
                format!(
                    "Verify request{}",
                    push.type_text
                        .as_deref()
                        .map(|t| format!(": {}", escape(t)))
                        .unwrap_or_default()
                ),
                String::new(),
            ),
        };
        cards.push_str(&format!(
            "<section class=\"push\" data-txid=\"{txid}\">\
             <h2>{heading}</h2>\
             <p class=\"who\">{who}</p>{code}\
             <table>{info}</table>\
             <div class=\"actions\">{approve}{deny}{fraud}</div></section>",
            txid = escape(push.txid.as_str()),
            who = escape(push.display_username.as_deref().unwrap_or(&push.username)),
            approve = action("approve", "Approve"),
            deny = action("deny", "Deny"),
            fraud = action("fraud", "Report fraud"),
        ));
    }
    if pending.is_empty() {
        cards.push_str("<p class=\"empty\">No pending requests.</p>");
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Duo Mobile (simulated) – {user}</title>\
         <style>body{{font-family:sans-serif;max-width:28rem;margin:2rem auto}}\
         .push{{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1rem 0}}\
         .actions form{{display:inline}} button{{margin-right:.5rem}}\
         .approve{{background:#2a7}} .deny{{background:#c33}} .fraud{{background:#fa0}}</style>\
         </head><body><h1>Duo Mobile (simulated)</h1><p>Phone of <b>{user}</b></p>{cards}\
         <script>setTimeout(function(){{location.reload()}},1000)</script></body></html>"
    ))
}

/// `POST /phone/{username}/{txid}/{action}`: the buttons of the phone page.
pub async fn phone_action(
    State(sim): State<DuoSim>,
    Path((username, txid, action)): Path<(String, String, String)>,
) -> Response {
    let Some(decision) = parse_action(&action) else {
        return SimError::not_found().into_response();
    };
    sim.decide(&TxId(txid), decision);
    let back = format!(
        "/phone/{}",
        crate::duo::signing::encode_component(&username)
    );
    Redirect::to(&back).into_response()
}

/// `GET /control/pushes`: every push with the text the phone shows.
pub async fn control_pushes(State(sim): State<DuoSim>) -> Response {
    Json(sim.pushes()).into_response()
}

/// `POST /control/push/{txid}/{approve|deny|fraud|timeout}`.
pub async fn control_push(
    State(sim): State<DuoSim>,
    Path((txid, action)): Path<(String, String)>,
) -> Response {
    let Some(decision) = parse_action(&action) else {
        return SimError::not_found().into_response();
    };
    let txid = TxId(txid);
    if sim.decide(&txid, decision) {
        Json(json!({"stat": "OK", "response": {"txid": txid, "state": decision}})).into_response()
    } else if sim.pushes().iter().any(|p| p.txid == txid) {
        (
            StatusCode::CONFLICT,
            Json(json!({"stat": "FAIL", "code": 40901, "message": "Push already decided"})),
        )
            .into_response()
    } else {
        SimError::not_found().into_response()
    }
}
