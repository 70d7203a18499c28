//! Caller binding with Duo's Admin API verification push, over real HTTP between deskproof and
//! the simulators: the code Duo puts in the push is the code the page shows; every answer,
//! the 404 after the push's expiry, and the fall-back to the Auth API push when the Admin API
//! application may not write.
mod support;

use std::time::Duration;

use deskproof::sim::duo::{PushKind, PushView};
use deskproof::storage::AuditFilter;
use deskproof::verify::ports::CallerCodeVia;
use support::flow::{spawn_flow, FlowApp};

/// Switches the demo organization's caller code to Duo's verification push.
async fn use_verification_push(app: &FlowApp) {
    let org = app.world.organization_id;
    let mut row = app
        .store
        .duo_account(org)
        .await
        .expect("read")
        .expect("the demo organization has a Duo account");
    row.caller_code = CallerCodeVia::VerificationPush;
    app.store.save_duo_account(&row).await.expect("saved");
}

/// A new ticket for `contact`, its link and the push its button sent to `duo_user`.
async fn pushed(
    app: &FlowApp,
    contact: deskproof::psa::ContactId,
    duo_user: &str,
) -> (deskproof::psa::TicketId, String, PushView) {
    let ticket = app.new_ticket(contact, "Reset my MFA").await;
    let token = app.link_token(ticket).await;
    let attempt = app.send_push(&token).await;
    assert_eq!(attempt["state"], "pushed", "{attempt}");
    let push = app
        .world
        .duo
        .wait_for_push(duo_user, Duration::from_secs(5))
        .await
        .expect("a push reached the phone");
    (ticket, token, push)
}

async fn audit_details(app: &FlowApp, ticket: deskproof::psa::TicketId) -> Vec<(String, String)> {
    app.store
        .search_audit(&AuditFilter {
            ticket: Some(ticket.to_string()),
            oldest_first: true,
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_iter()
        .map(|r| {
            (
                r.entry.action,
                format!(
                    "{} {}",
                    r.entry.txid.unwrap_or_default(),
                    r.entry.detail.unwrap_or_default()
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_page_shows_the_confirmation_code_duo_put_on_the_phone_and_approval_verifies() {
    // Arrange
    let app = spawn_flow().await;
    app.world.duo.set_admin_write_allowed(true);
    use_verification_push(&app).await;

    // Act
    let (ticket, token, push) = pushed(&app, app.world.contacts.alex, "alex.example").await;

    // Assert: one push, Duo's verification push, and its code is the one deskproof shows.
    assert_eq!(push.kind, PushKind::Verification);
    assert_eq!(app.world.duo.pushes().len(), 1, "one push for one click");
    let code = push
        .confirmation_code
        .clone()
        .expect("Duo's confirmation code");
    let (status, page) = app.call("verification", &token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["caller_code"], code.as_str(), "{page}");
    let phone = reqwest::get(app.world.duo.phone_url("alex.example"))
        .await
        .expect("phone page")
        .text()
        .await
        .expect("html");
    assert!(
        phone.contains(&format!("data-testid=\"confirmation-code\">{code}<")),
        "{phone}"
    );

    // Act: the caller approves on the phone.
    app.world
        .duo
        .approve_latest("alex.example")
        .expect("pending");

    // Assert
    let outcome = app.wait_for_outcome(&token).await;
    assert_eq!(outcome["state"], "approved", "{outcome}");
    app.wait_for_note(ticket, "alex.example has verified this ticket.")
        .await;
    let audit = audit_details(&app, ticket).await;
    let sent = audit.iter().find(|(a, _)| a == "push sent").expect("sent");
    assert!(sent.1.starts_with(push.txid.as_str()), "{audit:?}");
    assert_eq!(
        app.world.duo.pushes().len(),
        1,
        "{:?}",
        app.world.duo.pushes()
    );
}

#[tokio::test]
async fn a_denied_or_fraud_reported_verification_push_is_not_verified() {
    // Arrange
    let app = spawn_flow().await;
    app.world.duo.set_admin_write_allowed(true);
    use_verification_push(&app).await;
    let (denied_ticket, denied, push) = pushed(&app, app.world.contacts.alex, "alex.example").await;
    assert_eq!(push.kind, PushKind::Verification);
    let (fraud_ticket, fraud, push) = pushed(&app, app.world.contacts.megan, "megan.bowen").await;
    assert_eq!(push.kind, PushKind::Verification);

    // Act
    app.world.duo.deny_latest("alex.example").expect("pending");
    app.world.duo.fraud_latest("megan.bowen").expect("pending");

    // Assert
    assert_eq!(app.wait_for_outcome(&denied).await["state"], "denied");
    assert_eq!(app.wait_for_outcome(&fraud).await["state"], "fraud");
    app.wait_for_note(denied_ticket, "DENIED").await;
    app.wait_for_note(fraud_ticket, "URGENT").await;
}

#[tokio::test]
async fn a_verification_push_duo_no_longer_knows_after_its_expiry_has_timed_out() {
    // Arrange: Duo keeps a verification push's answer for 120 s; here for one second.
    let app = spawn_flow().await;
    app.world.duo.set_admin_write_allowed(true);
    app.world
        .duo
        .set_verification_push_expiry(Duration::from_secs(1));
    use_verification_push(&app).await;

    // Act: nobody answers.
    let (ticket, token, push) = pushed(&app, app.world.contacts.alex, "alex.example").await;

    // Assert
    assert_eq!(push.kind, PushKind::Verification);
    let outcome = app.wait_for_outcome(&token).await;
    assert_eq!(outcome["state"], "timed_out", "{outcome}");
    app.wait_for_note(ticket, "was not answered in time").await;
    // Answering after the expiry changes nothing.
    assert!(app.world.duo.approve_latest("alex.example").is_none());
}

#[tokio::test]
async fn without_write_permission_the_auth_api_push_carries_deskproof_s_code_once() {
    // Arrange: the simulator's Admin application is read-only, as the basic setup asks.
    let app = spawn_flow().await;
    use_verification_push(&app).await;

    // Act
    let (ticket, token, push) = pushed(&app, app.world.contacts.alex, "alex.example").await;

    // Assert: Duo refused the verification push before sending anything, so exactly one push
    // went out: the Auth API push with the ticket text and deskproof's code.
    assert_eq!(push.kind, PushKind::Auth);
    assert_eq!(
        app.world.duo.pushes().len(),
        1,
        "{:?}",
        app.world.duo.pushes()
    );
    let (_, page) = app.call("verification", &token).await;
    let code = page["caller_code"].as_str().expect("a code").to_owned();
    assert_eq!(code.len(), 6, "{page}");
    assert!(
        push.pushinfo_pairs
            .iter()
            .any(|(k, v)| k == "Code to read back" && *v == code),
        "{push:?}"
    );
    assert!(push
        .type_text
        .as_deref()
        .is_some_and(|t| t.contains("Reset my MFA")));
    let audit = audit_details(&app, ticket).await;
    let sent = audit.iter().find(|(a, _)| a == "push sent").expect("sent");
    assert!(
        sent.1.contains("Duo refused the verification push") && sent.1.contains("40301"),
        "{audit:?}"
    );

    app.world
        .duo
        .approve_latest("alex.example")
        .expect("pending");
    assert_eq!(app.wait_for_outcome(&token).await["state"], "approved");
    assert_eq!(app.world.duo.pushes().len(), 1);
}

#[tokio::test]
async fn with_push_details_the_auth_api_push_is_sent_as_before() {
    // Arrange: write permission granted, but the account keeps the default setting.
    let app = spawn_flow().await;
    app.world.duo.set_admin_write_allowed(true);

    // Act
    let (_, token, push) = pushed(&app, app.world.contacts.alex, "alex.example").await;

    // Assert
    assert_eq!(push.kind, PushKind::Auth);
    let (_, page) = app.call("verification", &token).await;
    assert!(
        push.pushinfo_pairs
            .iter()
            .any(|(k, v)| k == "Code to read back" && page["caller_code"] == v.as_str()),
        "{push:?} {page}"
    );
}
