//! The push policy over real HTTP against the Duo simulator: limits per contact, ticket and
//! technician, the cooldown after a deny, the lock after a fraud report, and "verified until".
mod support;

use std::time::Duration;

use deskproof::policy::PolicySettings;
use support::flow::{spawn_flow, FlowApp};

async fn set_policy(app: &FlowApp, settings: PolicySettings) {
    app.store
        .save_policy_settings(None, &settings)
        .await
        .expect("policy saved");
}

/// A new ticket for `contact` and its link token.
async fn ticket_for(
    app: &FlowApp,
    contact: deskproof::psa::ContactId,
    summary: &str,
) -> (deskproof::psa::TicketId, String) {
    let ticket = app.new_ticket(contact, summary).await;
    let token = app.link_token(ticket).await;
    (ticket, token)
}

/// Waits until `username` has `n` pushes at the simulator, then a little longer.
async fn pushes_settle(app: &FlowApp) -> usize {
    app.wait_until_idle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.world.duo.pushes().len()
}

/// A fresh link to the same ticket, as the page's button gets it.
async fn fresh(app: &FlowApp, token: &str) -> String {
    let (status, path) = app.call("fresh_link", token).await;
    assert_eq!(status, 200, "{path}");
    path.as_str()
        .and_then(|p| p.strip_prefix("/verify/"))
        .expect("a verify path")
        .to_owned()
}

/// The verification page as the server renders it for the signed-in technician.
async fn page_html(app: &FlowApp, token: &str) -> String {
    app.client
        .get(format!("{}/verify/{token}", app.url))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html")
        .replace("<!>", "")
        .replace("<!-- -->", "")
}

fn assert_refused(attempt: &serde_json::Value, needle: &str) {
    assert_eq!(attempt["state"], "refused", "{attempt}");
    let reason = attempt["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(needle), "{needle:?} not in {attempt}");
}

#[tokio::test]
async fn a_burst_of_twenty_clicks_on_one_contact_sends_only_the_allowed_three_pushes() {
    // Arrange: twenty tickets raised by the same contact (policy: 3 pushes per 15 minutes).
    let app = spawn_flow().await;
    let mut tokens = Vec::new();
    for n in 0..20 {
        tokens.push(
            ticket_for(&app, app.world.contacts.alex, &format!("Burst {n}"))
                .await
                .1,
        );
    }

    // Act: all twenty Verify clicks at once.
    let mut clicks = tokio::task::JoinSet::new();
    for token in tokens {
        let (client, url) = (app.client.clone(), app.url.clone());
        clicks.spawn(async move {
            let res = client
                .post(format!("{url}/api/send_push"))
                .header("Accept", "application/json")
                .form(&[("token", token.as_str())])
                .send()
                .await
                .expect("click");
            assert_eq!(res.status(), 200);
            let attempt = res.json::<serde_json::Value>().await.expect("attempt");
            (token, attempt)
        });
    }
    let (tokens, answers): (Vec<String>, Vec<serde_json::Value>) =
        clicks.join_all().await.into_iter().unzip();

    // Assert: Duo saw exactly three pushes; every other click says why and when.
    let pushed = answers.iter().filter(|a| a["state"] == "pushed").count();
    let refused: Vec<_> = answers.iter().filter(|a| a["state"] == "refused").collect();
    assert_eq!(pushed, 3, "{answers:#?}");
    assert_eq!(refused.len(), 17, "{answers:#?}");
    for r in &refused {
        assert_refused(
            r,
            "this contact already got 3 Duo Pushes in the last 15 minutes",
        );
        assert!(r["next_push_at"].is_string(), "{r}");
    }
    let refused_at = answers
        .iter()
        .position(|a| a["state"] == "refused")
        .expect("a refusal");
    let html = page_html(&app, &tokens[refused_at]).await;
    assert!(
        html.contains("this contact already got 3 Duo Pushes in the last 15 minutes"),
        "the page says why and when"
    );
    assert_eq!(
        pushes_settle(&app).await,
        3,
        "{:#?}",
        app.world.duo.pushes()
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM attempts WHERE txid IS NOT NULL")
            .await,
        3
    );
}

#[tokio::test]
async fn the_ticket_limit_refuses_a_further_push_for_good() {
    // Arrange
    let app = spawn_flow().await;
    set_policy(
        &app,
        PolicySettings {
            pushes_per_ticket: Some(2),
            ..Default::default()
        },
    )
    .await;
    let (_, mut token) = ticket_for(&app, app.world.contacts.alex, "Twice only").await;
    for _ in 0..2 {
        token = fresh(&app, &token).await;
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
    }

    // Act
    let third = app.send_push(&fresh(&app, &token).await).await;

    // Assert
    assert_refused(
        &third,
        "this ticket already had 2 Duo Pushes, the most allowed",
    );
    assert!(third["next_push_at"].is_null(), "{third}");
    assert_eq!(pushes_settle(&app).await, 2);
    let (_, rows) = app.call("attempts", &token).await;
    assert_eq!(rows[0]["state"], "refused", "shown on the page: {rows}");
}

#[tokio::test]
async fn the_technician_limit_counts_pushes_across_contacts() {
    // Arrange: a technician may send two pushes an hour.
    let app = spawn_flow().await;
    set_policy(
        &app,
        PolicySettings {
            pushes_per_technician: Some(2),
            ..Default::default()
        },
    )
    .await;
    let (_, a) = ticket_for(&app, app.world.contacts.alex, "One").await;
    let (_, b) = ticket_for(&app, app.world.contacts.megan, "Two").await;
    let (_, c) = ticket_for(&app, app.world.contacts.alex, "Three").await;
    assert_eq!(app.send_push(&a).await["state"], "pushed");
    assert_eq!(app.send_push(&b).await["state"], "pushed");

    // Act
    let third = app.send_push(&c).await;

    // Assert
    assert_refused(
        &third,
        "you already sent 2 Duo Pushes in the last 60 minutes",
    );
    assert!(third["next_push_at"].is_string(), "{third}");
    assert_eq!(pushes_settle(&app).await, 2);
}

#[tokio::test]
async fn a_deny_starts_a_cooldown_for_that_contact_on_every_ticket() {
    // Arrange
    let app = spawn_flow().await;
    let (ticket, token) = ticket_for(&app, app.world.contacts.alex, "Deny").await;
    assert_eq!(app.send_push(&token).await["state"], "pushed");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");
    app.world.duo.deny_latest("alex.example").expect("pending");
    let notes = app.wait_for_note(ticket, "DENIED").await;
    assert!(
        notes[1]
            .text
            .contains("The next push to this contact is allowed at"),
        "{}",
        notes[1].text
    );
    app.wait_for_outcome(&token).await;

    // Act: again on the same ticket, and on another ticket of the same contact.
    let (used_status, used) = app.call("send_push", &token).await;
    let same = app.send_push(&fresh(&app, &token).await).await;
    let (_, other) = ticket_for(&app, app.world.contacts.alex, "Other").await;
    let other = app.send_push(&other).await;
    let (_, megan) = ticket_for(&app, app.world.contacts.megan, "Megan").await;
    let megan = app.send_push(&megan).await;

    // Assert
    assert_eq!(used_status, 400, "the link sent its push: {used}");
    assert!(used.to_string().contains("already used"), "{used}");
    assert_refused(&same, "this contact denied a Duo Push at");
    assert_refused(&other, "The next push is allowed at");
    assert_eq!(
        megan["state"], "pushed",
        "another contact is not held: {megan}"
    );
    assert_eq!(pushes_settle(&app).await, 2);
}

#[tokio::test]
async fn a_fraud_report_locks_the_contact_and_writes_an_urgent_note() {
    // Arrange
    let app = spawn_flow().await;
    let (ticket, token) = ticket_for(&app, app.world.contacts.alex, "Wire money").await;
    assert_eq!(app.send_push(&token).await["state"], "pushed");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");

    // Act
    app.world.duo.fraud_latest("alex.example").expect("pending");
    let notes = app.wait_for_note(ticket, "FRAUDULENT").await;
    app.wait_for_outcome(&token).await;
    let (_, later) = ticket_for(&app, app.world.contacts.alex, "Later").await;
    let refused = app.send_push(&later).await;

    // Assert
    let urgent = &notes[1].text;
    assert!(urgent.starts_with("URGENT"), "{urgent}");
    assert!(
        urgent.contains("deskproof sends no Duo Push to this contact until"),
        "{urgent}"
    );
    assert_refused(&refused, "reported a Duo Push as fraud");
    assert_refused(&refused, "locked until");
    assert!(refused["next_push_at"].is_string(), "{refused}");
    assert_eq!(pushes_settle(&app).await, 1);
}

#[tokio::test]
async fn an_approval_counts_as_verified_for_a_while_and_a_new_click_sends_nothing() {
    // Arrange
    let app = spawn_flow().await;
    let (ticket, token) = ticket_for(&app, app.world.contacts.alex, "Verified").await;
    assert_eq!(app.send_push(&token).await["state"], "pushed");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");
    app.world
        .duo
        .approve_latest("alex.example")
        .expect("pending");
    app.wait_for_note(ticket, "has verified this ticket").await;

    // Act
    let (status, page) = app.call("verification", &token).await;
    let (again_status, again) = app.call("send_push", &token).await;

    // Assert
    assert_eq!(status, 200, "{page}");
    let until = page["verified_until"].as_str().unwrap_or_default();
    assert!(until.ends_with(" UTC") && until.len() >= 9, "{page}");
    assert_eq!(again_status, 400, "{again}");
    let text = again.to_string();
    assert!(text.contains("was verified at"), "{text}");
    assert!(text.contains(&format!("counts until {until}")), "{text}");
    assert_eq!(pushes_settle(&app).await, 1);
    let html = page_html(&app, &token).await;
    assert!(
        html.contains(&format!("Verified until {until}")),
        "the page shows it"
    );
    assert!(!html.contains("Send Duo Push"), "and offers no push");
}

#[tokio::test]
async fn with_verified_minutes_zero_an_approval_does_not_hold_off_a_new_push() {
    // Arrange
    let app = spawn_flow().await;
    set_policy(
        &app,
        PolicySettings {
            verified_minutes: Some(0),
            ..Default::default()
        },
    )
    .await;
    let (ticket, token) = ticket_for(&app, app.world.contacts.megan, "Again").await;
    assert_eq!(app.send_push(&token).await["state"], "pushed");
    app.world
        .duo
        .wait_for_push("megan.bowen", Duration::from_secs(5))
        .await
        .expect("push");
    app.world
        .duo
        .approve_latest("megan.bowen")
        .expect("pending");
    app.wait_for_note(ticket, "has verified this ticket").await;
    app.wait_for_outcome(&token).await;

    // Act
    let (_, page) = app.call("verification", &token).await;
    let again = app.send_push(&fresh(&app, &token).await).await;

    // Assert
    assert!(page["verified_until"].is_null(), "{page}");
    assert_eq!(again["state"], "pushed", "{again}");
}

#[tokio::test]
async fn the_push_carries_the_code_the_page_shows_for_the_caller_to_read_back() {
    // Arrange
    let app = spawn_flow().await;
    let (_, token) = ticket_for(&app, app.world.contacts.alex, "Read it back").await;

    // Act
    assert_eq!(app.send_push(&token).await["state"], "pushed");
    let push = app
        .world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");
    let (_, page) = app.call("verification", &token).await;

    // Assert
    let code = page["caller_code"].as_str().expect("a code on the page");
    assert_eq!(code.len(), 6, "{page}");
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");
    assert!(
        push.pushinfo_pairs
            .iter()
            .any(|(k, v)| k == deskproof::verify::flow::CALLER_CODE_LABEL && v == code),
        "{:?}",
        push.pushinfo_pairs
    );
}

#[tokio::test]
async fn the_code_and_the_approval_reach_the_verification_page_without_a_reload() {
    // Arrange: the page was loaded before any push.
    let app = spawn_flow().await;
    let (_, token) = ticket_for(&app, app.world.contacts.alex, "Without reload").await;
    let (_, before) = app.call("verification", &token).await;

    // Act: what the page's button and its once-a-second refresh get.
    let sent = app.send_push(&token).await;
    let push = app
        .world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");
    let waiting = app.attempts(&token).await;
    app.world
        .duo
        .approve_latest("alex.example")
        .expect("pending");
    app.wait_for_outcome(&token).await;
    let answered = app.attempts(&token).await;

    // Assert
    let code = push
        .pushinfo_pairs
        .iter()
        .find(|(k, _)| k == deskproof::verify::flow::CALLER_CODE_LABEL)
        .map(|(_, v)| v.clone())
        .expect("a code in the push");
    assert!(before["caller_code"].is_null(), "{before}");
    assert_eq!(sent["caller_code"], code.as_str(), "{sent}");
    assert_eq!(waiting[0]["caller_code"], code.as_str(), "{waiting:?}");
    assert_eq!(answered[0]["state"], "approved", "{answered:?}");
    assert!(answered[0]["caller_code"].is_null(), "{answered:?}");
    let until = answered[0]["verified_until"]
        .as_str()
        .expect("verified until");
    assert!(until.ends_with(" UTC"), "{until}");
}

#[tokio::test]
async fn a_technician_without_a_local_account_is_limited_by_name() {
    // Arrange: three tickets, and claims made as a PSA member with no deskproof account.
    let app = spawn_flow().await;
    let mut cases = Vec::new();
    for (contact, summary) in [
        (app.world.contacts.alex, "One"),
        (app.world.contacts.megan, "Two"),
        (app.world.contacts.alex, "Three"),
    ] {
        let (ticket, _) = ticket_for(&app, contact, summary).await;
        cases.push(app.case_of(ticket).await.expect("case"));
    }
    let limits = deskproof::verify::rules::PushLimits {
        per_technician: 2,
        ..deskproof::verify::rules::PushLimits::from_policy(&Default::default())
    };
    let claim = |case: &deskproof::storage::TicketCase, who: &str| {
        let attempt = deskproof::storage::NewAttempt {
            case_id: case.id,
            technician_id: None,
            technician_name: who.to_owned(),
            state: "matching".into(),
        };
        let claim = deskproof::storage::PushClaim {
            organization_id: case.organization_id.expect("mapped"),
            contact_key: format!("email:{}", case.contact_email.clone().unwrap_or_default()),
            caller_code: "123456".into(),
            limits,
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            link_digest: None,
            matching_until: i64::MAX,
        };
        (attempt, claim)
    };

    // Act
    let mut grants = Vec::new();
    for case in &cases[..2] {
        let (a, c) = claim(case, "Jordan Member");
        grants.push(app.store.claim_push(&a, &c).await.expect("claim"));
    }
    let (a, c) = claim(&cases[2], "Jordan Member");
    let third = app.store.claim_push(&a, &c).await.expect("claim");
    let (a, c) = claim(&cases[2], "Someone Else");
    let other = app.store.claim_push(&a, &c).await.expect("claim");

    // Assert
    use deskproof::storage::PushGrant;
    assert!(
        grants.iter().all(|g| matches!(g, PushGrant::Created(_))),
        "{grants:?}"
    );
    match third {
        PushGrant::Refused(_, refusal) => {
            assert_eq!(refusal.rule, deskproof::verify::rules::Rule::PerTechnician)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(other, PushGrant::Created(_)), "{other:?}");
}
