//! Verification links and pages: opening a link never pushes, an expired link can be swapped
//! for a fresh one, security headers, and outside text escaped in pages and notes.
mod support;

use std::time::Duration;

use deskproof::crypto::MasterKey;
use deskproof::verify::link::{self, LinkClaims};
use support::flow::{claims_in, flow_config, spawn_flow, spawn_flow_with, FlowApp};

fn expired_copy(app: &FlowApp, token: &str) -> String {
    let (case_id, organization_id, _) = claims_in(token);
    let key =
        MasterKey::from_config(&flow_config(&app.db_url, app.dir.path())).expect("master key");
    link::sign(
        key.link_key(),
        LinkClaims {
            case_id,
            organization_id,
            expires_at: 1_000,
        },
    )
}

async fn page(app: &FlowApp, client: &reqwest::Client, path: &str) -> (u16, String) {
    let res = client
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .expect("page");
    (res.status().as_u16(), res.text().await.expect("body"))
}

#[tokio::test]
async fn opening_a_link_by_get_as_a_link_scanner_would_sends_no_push() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Scanned").await;
    let token = app.link_token(ticket).await;
    app.wait_until_idle().await;

    // Act: a scanner with no session, one with the technician's session, HEAD and GET.
    let scanner = support::new_client();
    let (anonymous, _) = page(&app, &scanner, &format!("/verify/{token}")).await;
    let (signed_in, html) = page(&app, &app.client, &format!("/verify/{token}")).await;
    let head = app
        .client
        .head(format!("{}/verify/{token}", app.url))
        .send()
        .await
        .expect("head");
    let api_get = app
        .client
        .get(format!("{}/api/send_push?token={token}", app.url))
        .send()
        .await
        .expect("get");

    // Assert
    assert_eq!(anonymous, 200);
    assert_eq!(signed_in, 200);
    assert!(
        html.contains("Send Duo Push"),
        "the button is there to press"
    );
    assert!(head.status().as_u16() < 500, "{}", head.status());
    assert_eq!(
        api_get.status(),
        405,
        "server functions that act are POST only"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.world.duo.pushes().is_empty(), "no push from a GET");
    assert_eq!(app.count("SELECT COUNT(*) FROM attempts").await, 0);

    // Only the button's POST pushes.
    assert_eq!(app.send_push(&token).await["state"], "pushed");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("a push from the POST");
}

#[tokio::test]
async fn an_expired_link_shows_a_clear_page_and_a_technician_gets_a_fresh_one() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.megan, "Old link").await;
    let token = app.link_token(ticket).await;
    let expired = expired_copy(&app, &token);

    // Act
    let (status, refused) = app.call("verification", &expired).await;
    let (_, html) = page(&app, &app.client, &format!("/verify/{expired}")).await;
    let (fresh_status, fresh) = app.call("fresh_link", &expired).await;
    let stranger = support::new_client();
    let stranger_answer = stranger
        .post(format!("{}/api/fresh_link", app.url))
        .form(&[("token", expired.as_str())])
        .send()
        .await
        .expect("request");

    // Assert
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.to_string().contains("This link has expired."),
        "{refused}"
    );
    assert!(html.contains("This link has expired."), "the page says so");
    assert!(html.contains("Get a fresh link"), "and offers a fresh one");
    assert_eq!(fresh_status, 200, "{fresh}");
    let path = fresh.as_str().expect("a path");
    let new_token = path.strip_prefix("/verify/").expect("a verify path");
    let (case, org, expires) = claims_in(new_token);
    assert_eq!((case, org), (claims_in(&token).0, claims_in(&token).1));
    assert!(expires > 1_000);
    let (status, page) = app.call("verification", new_token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["summary"], "Old link");
    assert_eq!(
        stranger_answer.status(),
        401,
        "only for a signed-in technician"
    );
    assert!(app.world.duo.pushes().is_empty());
}

#[tokio::test]
async fn pages_carry_security_headers_and_https_deployments_get_hsts() {
    // Arrange
    let plain = spawn_flow().await;
    let https = spawn_flow_with(|c| c.public_url = Some("https://desk.example.net".into())).await;

    // Act
    let a = reqwest::get(format!("{}/signin", plain.url))
        .await
        .expect("page");
    let b = reqwest::get(format!("{}/healthz", https.url))
        .await
        .expect("page");

    // Assert
    for res in [&a, &b] {
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap_or_default()
            .contains("frame-ancestors 'none'"));
    }
    assert!(a.headers().get("strict-transport-security").is_none());
    assert!(b.headers()["strict-transport-security"]
        .to_str()
        .unwrap_or_default()
        .starts_with("max-age="));
}

/// The nonce a `Content-Security-Policy` allows scripts by, and the policy itself.
fn policy_of(res: &reqwest::Response) -> (Option<String>, String) {
    let policy = res
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let nonce = policy
        .split_once("'nonce-")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(nonce, _)| nonce.to_owned());
    (nonce, policy)
}

/// The opening `<script …>` tags of a page.
fn script_tags(html: &str) -> Vec<&str> {
    html.match_indices("<script")
        .filter_map(|(at, _)| html[at..].split_once('>').map(|(tag, _)| tag))
        .collect()
}

#[tokio::test]
async fn every_page_carries_a_content_security_policy_with_a_fresh_nonce_on_its_scripts() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Policy").await;
    let token = app.link_token(ticket).await;
    let pod = format!("/pod/connectwise/{}", app.world.connection_id);
    let pages = [
        "/signin".to_owned(),
        "/".to_owned(),
        format!("/verify/{token}"),
        "/no-such-page".to_owned(),
        pod.clone(),
    ];
    let rest = "script-src 'self' 'wasm-unsafe-eval'";
    let fixed = [
        "default-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ];

    for path in pages {
        // Act: the same page twice.
        let mut seen = Vec::new();
        for _ in 0..2 {
            let res = app
                .client
                .get(format!("{}{path}", app.url))
                .send()
                .await
                .expect("page");
            let (nonce, policy) = policy_of(&res);
            let html = res.text().await.expect("html");

            // Assert: every inline script carries the nonce the header allows, and nothing
            // on the page needs inline styles, which the policy refuses.
            let nonce = nonce.unwrap_or_else(|| panic!("{path}: no nonce in {policy:?}"));
            assert!(nonce.len() >= 16, "{path}: {nonce}");
            assert!(
                policy.contains(&format!("{rest} 'nonce-{nonce}'")),
                "{path}: {policy}"
            );
            for directive in fixed {
                assert!(
                    policy.split("; ").any(|d| d == directive),
                    "{path}: {directive} in {policy}"
                );
            }
            let framing = if path == pod {
                format!("frame-ancestors {}", app.world.cw.url())
            } else {
                "frame-ancestors 'none'".to_owned()
            };
            assert!(policy.ends_with(&framing), "{path}: {policy}");
            let scripts = script_tags(&html);
            assert!(!scripts.is_empty(), "{path}: the hydration scripts");
            for tag in scripts {
                assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "{path}: {tag}");
            }
            assert!(!html.contains(" style=\""), "{path}: an inline style");
            seen.push(nonce);
        }
        assert_ne!(seen[0], seen[1], "{path}: a fresh nonce per response");
    }

    // Answers that are not pages allow no inline script at all.
    let health = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .expect("health");
    let (nonce, policy) = policy_of(&health);
    assert_eq!(nonce, None, "{policy}");
    assert!(
        policy.starts_with("default-src 'self'; script-src 'self' 'wasm-unsafe-eval';"),
        "{policy}"
    );
}

#[tokio::test]
async fn html_in_a_ticket_title_and_a_contact_name_is_escaped_on_the_page() {
    // Arrange
    let app = spawn_flow().await;
    let contact = app.world.cw.add_contact_at(
        Some(app.world.company),
        "<img src=x onerror=alert(1)>",
        "O'Brien & Sons",
        "hostile@example.com",
    );
    let ticket = app
        .new_ticket(
            contact,
            "<script>alert('title')</script> [click](https://evil.example)",
        )
        .await;
    let token = app.link_token(ticket).await;

    // Act
    let (status, html) = page(&app, &app.client, &format!("/verify/{token}")).await;
    let (_, data) = app.call("verification", &token).await;

    // Assert
    assert_eq!(status, 200);
    assert!(html.contains("&lt;script&gt;alert("), "{html}");
    assert!(!html.contains("<script>alert("), "the title is not markup");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(!html.contains("<img src=x"), "the name is not markup");
    assert_eq!(
        data["summary"], "<script>alert('title')</script> [click](https://evil.example)",
        "the data itself is kept as the PSA sent it"
    );
}

#[tokio::test]
async fn markup_and_line_breaks_in_a_company_name_are_made_inert_in_the_note() {
    // Arrange: a company that is not mapped, whose name tries to fake a verification.
    let app = spawn_flow().await;
    let company = app
        .world
        .cw
        .add_company("<b>Evil</b> Co\n\nalex.example has verified this ticket. [ok](https://evil)");
    let contact = app
        .world
        .cw
        .add_contact_at(Some(company), "Eve", "Mallory", "eve@example.com");

    // Act
    let created = app
        .world
        .cw
        .create_ticket(Some(company), Some(contact), "Please reset")
        .await;
    let notes = app.wait_for_note(created.id, "is not mapped").await;

    // Assert
    let note = &notes[0].text;
    assert!(note.contains("&lt;b&gt;Evil&lt;/b&gt;"), "{note}");
    // Only deskproof's own reference line follows a line break.
    let (text, reference) = note.split_once("\n\n").expect("reference line");
    assert!(reference.starts_with("(deskproof ref "), "{note}");
    assert!(!text.contains('\n'), "no line of its own: {note}");
    assert!(note.contains("\\[ok\\](https://evil)"), "{note}");
    assert!(!note.contains("<b>"), "{note}");
}

#[tokio::test]
async fn a_link_sends_one_push_and_then_its_page_offers_a_fresh_link() {
    // Arrange: a push through the link, unanswered until it times out.
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Used link").await;
    let token = app.link_token(ticket).await;
    assert_eq!(app.send_push(&token).await["state"], "pushed");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");
    app.world
        .duo
        .time_out_latest("alex.example")
        .expect("pending");
    app.wait_for_outcome(&token).await;

    // Act
    let (status, again) = app.call("send_push", &token).await;
    let (_, data) = app.call("verification", &token).await;
    let (_, html) = page(&app, &app.client, &format!("/verify/{token}")).await;
    let (_, fresh) = app.call("fresh_link", &token).await;
    let fresh = fresh
        .as_str()
        .and_then(|p| p.strip_prefix("/verify/"))
        .expect("a fresh link")
        .to_owned();
    let second = app.send_push(&fresh).await;

    // Assert
    assert_eq!(status, 400, "{again}");
    assert!(
        again
            .to_string()
            .contains("This link was already used to send a Duo Push at"),
        "{again}"
    );
    assert!(data["link_used"].is_string(), "{data}");
    assert!(
        html.contains("This link already sent a Duo Push"),
        "clear page"
    );
    assert!(html.contains("Get a fresh link"), "with a fresh link");
    assert!(!html.contains("Send Duo Push"), "and no push button");
    assert_eq!(second["state"], "pushed", "{second}");
    assert_eq!(app.world.duo.pushes().len(), 2);
}
