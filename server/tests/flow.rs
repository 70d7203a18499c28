//! The whole job over real HTTP: ConnectWise ticket → internal note with link → Duo Push →
//! outcome note, with SQLite and both simulators.
mod support;

use std::time::Duration;

use deskproof::sim::duo::PushState;
use support::flow::{claims_in, spawn_flow, spawn_flow_with, token_in};

#[tokio::test]
async fn an_approved_push_verifies_the_ticket_with_internal_notes_only() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app
        .new_ticket(app.world.contacts.alex, "Password reset for Alex")
        .await;

    // Act: the callback produces a link note; the technician opens it and sends the push.
    let token = app.link_token(ticket).await;
    let (status, page) = app.call("verification", &token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["summary"], "Password reset for Alex");
    assert_eq!(page["contact"], "Alex Example");
    assert!(
        page["matched"]
            .as_str()
            .unwrap_or_default()
            .starts_with("al***le"),
        "{page}"
    );
    assert!(
        app.world.duo.pushes().is_empty(),
        "opening the page sends no push"
    );

    let (status, attempt) = app.call("send_push", &token).await;
    assert_eq!(status, 200, "{attempt}");
    assert_eq!(attempt["state"], "pushed");
    let push = app
        .world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("a push reached the phone");
    assert_eq!(
        push.type_text.as_deref(),
        Some("Verification is required for the ticket you submitted: \"Password reset for Alex\"")
    );
    app.world
        .duo
        .approve_latest("alex.example")
        .expect("pending push");

    // Assert
    let notes = app
        .wait_for_note(ticket, "alex.example has verified this ticket.")
        .await;
    assert_eq!(notes.len(), 2, "one link note and one outcome note");
    for note in &notes {
        assert!(note.internal_analysis_flag, "{note:?}");
        assert!(!note.process_notifications, "{note:?}");
        assert!(
            !note.detail_description_flag && !note.resolution_flag,
            "{note:?}"
        );
    }
    let (_, rows) = app.call("attempts", &token).await;
    assert_eq!(rows[0]["state"], "approved");
}

/// Sends a push for `contact`'s new ticket and waits until it reaches `duo_user`'s phone.
/// Returns the ticket, the link token and the push's txid.
async fn pushed(
    app: &support::flow::FlowApp,
    contact: deskproof::psa::ContactId,
    duo_user: &str,
    summary: &str,
) -> (
    deskproof::psa::TicketId,
    String,
    deskproof::duo::types::TxId,
) {
    let ticket = app.new_ticket(contact, summary).await;
    let token = app.link_token(ticket).await;
    let attempt = app.send_push(&token).await;
    assert_eq!(attempt["state"], "pushed", "{attempt}");
    let push = app
        .world
        .duo
        .wait_for_push(duo_user, Duration::from_secs(5))
        .await
        .expect("a push reached the phone");
    (ticket, token, push.txid)
}

#[tokio::test]
async fn a_denied_push_is_not_verified_and_the_note_offers_a_working_link_to_try_again() {
    // Arrange: no cooldown after a deny, so the new link can be tried at once.
    let app = spawn_flow().await;
    app.store
        .save_policy_settings(
            None,
            &deskproof::policy::PolicySettings {
                deny_cooldown_minutes: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("policy");
    let (ticket, token, _) = pushed(&app, app.world.contacts.alex, "alex.example", "VPN").await;

    // Act
    app.world.duo.deny_latest("alex.example").expect("pending");

    // Assert
    let notes = app.wait_for_note(ticket, "DENIED").await;
    assert_eq!(notes.len(), 2, "{notes:#?}");
    let denied = &notes[1].text;
    assert!(
        denied.starts_with("deskproof: alex.example DENIED the Duo Push requested by Casey Tech."),
        "{denied}"
    );
    assert!(denied.contains("NOT verified"), "{denied}");
    assert!(!denied.contains("has verified"), "{denied}");
    let retry = token_in(denied).expect("the note links to a new try");
    let (case, org, expires) = claims_in(&retry);
    let (first_case, first_org, first_expires) = claims_in(&token);
    assert_eq!((case, org), (first_case, first_org), "same ticket case");
    assert!(
        expires >= first_expires,
        "the retry link lives a full lifetime"
    );
    assert_eq!(app.wait_for_outcome(&token).await["state"], "denied");

    // The link in the denial note starts a second, independent push.
    let again = app.send_push(&retry).await;
    assert_eq!(again["state"], "pushed", "{again}");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("second push");
    app.world
        .duo
        .approve_latest("alex.example")
        .expect("pending");
    app.wait_for_note(ticket, "alex.example has verified this ticket.")
        .await;
    let states: Vec<_> = app
        .attempts(&retry)
        .await
        .iter()
        .map(|a| a["state"].clone())
        .collect();
    assert_eq!(states, ["approved", "denied"]);
    assert_eq!(app.world.duo.pushes().len(), 2);
}

#[tokio::test]
async fn an_unanswered_push_times_out_and_the_note_offers_a_new_link() {
    // Arrange: the simulator ends unanswered pushes after 2 s.
    let app = spawn_flow().await;
    let (ticket, token, _) = pushed(&app, app.world.contacts.megan, "megan.bowen", "Mail").await;

    // Act: nobody answers.
    let notes = app.wait_for_note(ticket, "was not answered in time").await;

    // Assert
    assert_eq!(notes.len(), 2, "{notes:#?}");
    let note = &notes[1].text;
    assert!(
        note.starts_with("deskproof: The Duo Push to megan.bowen requested by Casey Tech"),
        "{note}"
    );
    assert!(note.contains("NOT verified"), "{note}");
    let retry = token_in(note).expect("a new link");
    assert_eq!(claims_in(&retry).0, claims_in(&token).0);
    let outcome = app.wait_for_outcome(&token).await;
    assert_eq!(outcome["state"], "timed_out", "{outcome}");
}

#[tokio::test]
async fn a_push_timed_out_on_the_phone_is_recorded_as_timed_out() {
    // Arrange
    let app = spawn_flow().await;
    let (ticket, token, _) = pushed(&app, app.world.contacts.alex, "alex.example", "Printer").await;

    // Act
    app.world
        .duo
        .time_out_latest("alex.example")
        .expect("pending");

    // Assert
    let notes = app.wait_for_note(ticket, "was not answered in time").await;
    assert!(token_in(&notes[1].text).is_some(), "{notes:#?}");
    assert_eq!(app.wait_for_outcome(&token).await["state"], "timed_out");
}

#[tokio::test]
async fn a_push_reported_as_fraud_writes_an_urgent_note_without_a_link() {
    // Arrange
    let app = spawn_flow().await;
    let (ticket, token, _) = pushed(&app, app.world.contacts.alex, "alex.example", "Wire").await;

    // Act
    app.world.duo.fraud_latest("alex.example").expect("pending");

    // Assert
    let notes = app.wait_for_note(ticket, "FRAUDULENT").await;
    assert_eq!(notes.len(), 2, "{notes:#?}");
    let note = &notes[1].text;
    assert!(note.starts_with("URGENT"), "{note}");
    assert!(
        note.contains("alex.example reported the Duo Push"),
        "{note}"
    );
    assert!(
        token_in(note).is_none(),
        "no invitation to try again: {note}"
    );
    assert!(notes[1].internal_analysis_flag && !notes[1].process_notifications);
    assert_eq!(app.wait_for_outcome(&token).await["state"], "fraud");
}

/// Sends a push for a new ticket of `contact` and expects deskproof to refuse it.
/// Returns the refused attempt and the ticket's notes.
async fn refused(
    app: &support::flow::FlowApp,
    contact: deskproof::psa::ContactId,
) -> (serde_json::Value, Vec<String>) {
    let ticket = app.new_ticket(contact, "Locked out").await;
    let token = app.link_token(ticket).await;
    let attempt = app.send_push(&token).await;
    assert_eq!(attempt["state"], "refused", "{attempt}");
    app.wait_for_note(ticket, "No Duo Push was sent").await;
    app.wait_until_idle().await;
    assert_eq!(app.attempts(&token).await, std::slice::from_ref(&attempt));
    (attempt, app.note_texts(ticket))
}

#[tokio::test]
async fn a_duo_user_in_bypass_status_gets_no_push_and_the_ticket_is_not_verified() {
    // Arrange
    let app = spawn_flow().await;

    // Act
    let (attempt, notes) = refused(&app, app.world.contacts.sam).await;

    // Assert
    let reason = attempt["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("bypass status"), "{attempt}");
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(notes[1].contains(reason), "{notes:#?}");
    assert!(notes[1].contains("NOT verified"), "{notes:#?}");
    assert!(
        app.world.duo.pushes().is_empty(),
        "no push for a bypass user: {:?}",
        app.world.duo.pushes()
    );
}

#[tokio::test]
async fn a_push_that_duo_answers_with_bypass_is_never_counted_as_approved() {
    // Arrange: alex is pushed normally…
    let app = spawn_flow().await;
    let (ticket, token, txid) =
        pushed(&app, app.world.contacts.alex, "alex.example", "Reset").await;

    // Act: …but Duo answers the push with allow/bypass instead of allow/allow.
    assert!(app.world.duo.decide(&txid, PushState::Bypass));

    // Assert
    let notes = app.wait_for_note(ticket, "Duo answered with bypass").await;
    assert_eq!(app.wait_for_outcome(&token).await["state"], "bypass");
    assert!(notes[1].text.contains("NOT verified"), "{notes:#?}");
    app.wait_until_idle().await;
    assert!(
        app.note_texts(ticket)
            .iter()
            .all(|n| !n.contains("has verified")),
        "{:#?}",
        app.note_texts(ticket)
    );
}

#[tokio::test]
async fn a_contact_without_a_duo_user_or_with_two_is_refused_with_the_reason() {
    // Arrange
    let app = spawn_flow().await;

    // Act
    let (nobody, nobody_notes) = refused(&app, app.world.contacts.robin).await;
    let (twins, twins_notes) = refused(&app, app.world.contacts.chris).await;

    // Assert
    assert_eq!(
        nobody["reason"],
        "no Duo user matches this contact's e-mail or name."
    );
    assert!(
        nobody_notes[1].contains("no Duo user matches"),
        "{nobody_notes:#?}"
    );
    assert_eq!(nobody["duo_user"], serde_json::Value::Null);
    assert!(
        twins["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("2 Duo users match this contact's name"),
        "{twins}"
    );
    assert!(
        twins_notes[1].contains("2 Duo users match"),
        "{twins_notes:#?}"
    );
    assert!(app.world.duo.pushes().is_empty());
}

#[tokio::test]
async fn a_duo_user_without_a_push_device_or_not_enrolled_is_refused_with_the_reason() {
    // Arrange
    let app = spawn_flow().await;

    // Act
    let (landline, landline_notes) = refused(&app, app.world.contacts.lee).await;
    let (new, new_notes) = refused(&app, app.world.contacts.nina).await;

    // Assert
    assert_eq!(
        landline["reason"],
        "the Duo user has no device that can receive a push."
    );
    assert!(landline_notes[1].contains("no device that can receive a push"));
    assert_eq!(new["reason"], "the Duo user is not enrolled.");
    assert!(new_notes[1].contains("not enrolled"), "{new_notes:#?}");
    assert!(app.world.duo.pushes().is_empty());
}

#[tokio::test]
async fn a_contact_without_a_last_name_gets_a_note_naming_the_missing_field_and_no_link() {
    // Arrange
    let app = spawn_flow().await;

    // Act
    let ticket = app.new_ticket(app.world.contacts.pat, "New laptop").await;

    // Assert
    let notes = app.wait_for_note(ticket, "cannot be verified yet").await;
    app.wait_until_idle().await;
    assert_eq!(app.note_texts(ticket).len(), 1, "{notes:#?}");
    assert!(
        notes[0]
            .text
            .contains("did not provide: contact last name."),
        "{}",
        notes[0].text
    );
    assert!(
        token_in(&notes[0].text).is_none(),
        "no link: {}",
        notes[0].text
    );
    let case = app.case_of(ticket).await.expect("stored case");
    assert_eq!(case.state, "incomplete");
    assert_eq!(case.problem.as_deref(), Some("missing: contact last name"));
    assert_eq!(case.organization_id, None);
    assert_eq!(app.count("SELECT COUNT(*) FROM attempts").await, 0);
}

#[tokio::test]
async fn a_ticket_whose_contact_belongs_to_another_company_gets_a_note_and_no_push() {
    // Arrange: Fabrikam is mapped to the same organization, so only the company check stands
    // between the ticket and a push to the Duo user who shares the contact's e-mail.
    let app = spawn_flow().await;
    let fabrikam = app.world.cw.add_company("Fabrikam");
    app.store
        .map_company(
            app.world.connection_id,
            &fabrikam.to_string(),
            app.world.organization_id,
        )
        .await
        .expect("mapping");
    let contact = app.world.cw.add_contact_at(
        Some(fabrikam),
        "Alex",
        "Example",
        "alex.example@contoso.example",
    );

    // Act: a Contoso ticket with Fabrikam's contact.
    let ticket = app.new_ticket(contact, "Reset my MFA").await;

    // Assert
    let notes = app
        .wait_for_note(ticket, "belongs to another company")
        .await;
    app.wait_until_idle().await;
    assert_eq!(app.note_texts(ticket).len(), 1, "{notes:#?}");
    let text = &notes[0].text;
    assert!(notes[0].internal_analysis_flag, "{:?}", notes[0]);
    assert!(text.contains("it is for Contoso"), "{text}");
    assert!(text.contains(&format!("company id {fabrikam}")), "{text}");
    assert!(token_in(text).is_none(), "no link: {text}");
    let case = app.case_of(ticket).await.expect("stored case");
    assert_eq!(case.state, "contact_elsewhere");
    assert_eq!(case.organization_id, None);
    assert_eq!(app.count("SELECT COUNT(*) FROM attempts").await, 0);
    assert!(app.world.duo.pushes().is_empty());
}

#[tokio::test]
async fn a_callback_with_a_wrong_signature_is_refused_and_nothing_is_stored() {
    // Arrange: a ticket whose own callback does not reach deskproof.
    let app = spawn_flow().await;
    let callback_url = format!(
        "{}/hooks/connectwise/{}?recordId=",
        app.url, app.world.connection_id
    );
    app.world.cw.set_callback_url(None);
    let ticket = app.new_ticket(app.world.contacts.alex, "Forged").await;
    assert!(app.world.cw.deliveries().is_empty());
    app.world.cw.set_callback_url(Some(callback_url));

    // Act
    let deliveries = app.world.cw.deliver_with_wrong_signature(ticket).await;

    // Assert
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, Some(401), "{deliveries:?}");
    app.wait_until_idle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.world.cw.notes(ticket).is_empty());
    assert!(app.case_of(ticket).await.is_none());
    for table in ["inbound_events", "tickets", "jobs", "notes", "attempts"] {
        assert_eq!(
            app.count(&format!("SELECT COUNT(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

#[tokio::test]
async fn a_callback_delivered_twice_is_taken_in_once() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Twice").await;
    let first = app.world.cw.deliveries().pop().expect("a delivery");
    assert_eq!(first.status, Some(200));

    // Act
    let again = app.world.cw.redeliver(&first).await;

    // Assert
    assert_eq!(again.status, Some(200), "{again:?}");
    app.link_token(ticket).await;
    app.wait_until_idle().await;
    let links = app
        .note_texts(ticket)
        .iter()
        .filter(|n| n.contains("/verify/"))
        .count();
    assert_eq!(links, 1, "{:#?}", app.note_texts(ticket));
    assert_eq!(app.count("SELECT COUNT(*) FROM inbound_events").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, 1);
}

#[tokio::test]
async fn callbacks_for_several_tickets_fetch_the_signing_key_once() {
    // Arrange
    let app = spawn_flow().await;

    // Act: three tickets, three callbacks signed with the key behind the same key_url.
    let mut tickets = Vec::new();
    for name in ["One", "Two", "Three"] {
        tickets.push(app.new_ticket(app.world.contacts.alex, name).await);
    }
    for ticket in &tickets {
        app.link_token(*ticket).await;
    }

    // Assert
    assert!(app
        .world
        .cw
        .deliveries()
        .iter()
        .all(|d| d.status == Some(200)));
    assert_eq!(app.world.cw.key_fetches(), 1);
}

#[tokio::test]
async fn a_new_callback_for_a_ticket_already_taken_in_writes_no_second_link() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Again").await;
    app.link_token(ticket).await;

    // Act: ConnectWise sends the `added` callback once more, as a new message.
    let deliveries = app.world.cw.fire_callback(ticket, "added").await;

    // Assert
    assert!(
        deliveries.iter().all(|d| d.status == Some(200)),
        "{deliveries:?}"
    );
    app.wait_until_idle().await;
    assert_eq!(
        app.note_texts(ticket).len(),
        1,
        "{:#?}",
        app.note_texts(ticket)
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, 1);
}

#[tokio::test]
async fn a_note_the_psa_refuses_three_times_is_posted_exactly_once() {
    // Arrange
    let app = spawn_flow().await;
    app.world.cw.fail_next_note_posts(3, 503);

    // Act
    let ticket = app.new_ticket(app.world.contacts.alex, "Flaky PSA").await;

    // Assert
    app.link_token(ticket).await;
    app.wait_until_idle().await;
    assert_eq!(
        app.note_texts(ticket).len(),
        1,
        "{:#?}",
        app.note_texts(ticket)
    );
    let (attempts, error): (i64, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM jobs WHERE kind = 'note'")
            .fetch_one(&app.db)
            .await
            .expect("note job");
    assert_eq!(attempts, 4, "three refusals, then the post");
    assert!(error.is_some_and(|e| !e.is_empty()));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM notes WHERE psa_note_id IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn a_push_answered_while_deskproof_is_down_is_recorded_once_after_a_restart() {
    // Arrange: a push is waiting on the phone.
    let mut app = spawn_flow().await;
    app.world.duo.set_push_timeout(Duration::from_secs(60));
    let (ticket, token, txid) =
        pushed(&app, app.world.contacts.alex, "alex.example", "Restart").await;

    // Act: deskproof stops, the contact approves, deskproof starts again on the same files.
    app.stop().await;
    assert!(app.world.duo.approve(&txid));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.note_texts(ticket).len(),
        1,
        "nobody is running to write it"
    );
    app.start_again().await;

    // Assert
    app.wait_for_note(ticket, "alex.example has verified this ticket.")
        .await;
    app.wait_until_idle().await;
    let notes = app.note_texts(ticket);
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert_eq!(
        notes.iter().filter(|n| n.contains("has verified")).count(),
        1
    );
    assert_eq!(app.wait_for_outcome(&token).await["state"], "approved");
    assert_eq!(app.world.duo.pushes().len(), 1);
}

#[tokio::test]
async fn two_clicks_in_a_row_on_send_push_send_one_push() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Double").await;
    let token = app.link_token(ticket).await;

    // Act
    let first = app.send_push(&token).await;
    let second = app.send_push(&token).await;

    // Assert
    assert_eq!(first["state"], "pushed", "{first}");
    assert_eq!(
        second["id"], first["id"],
        "the second click returns the push under way"
    );
    assert_eq!(second["state"], "pushed", "{second}");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");
    assert_eq!(app.world.duo.pushes().len(), 1);
    assert_eq!(app.attempts(&token).await.len(), 1);
}

#[tokio::test]
async fn two_clicks_at_the_same_moment_send_one_push() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.megan, "Race").await;
    let token = app.link_token(ticket).await;

    // Act
    let (a, b) = tokio::join!(app.send_push(&token), app.send_push(&token));

    // Assert
    assert_eq!(a["id"], b["id"], "{a} {b}");
    app.world
        .duo
        .wait_for_push("megan.bowen", Duration::from_secs(5))
        .await
        .expect("push");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.world.duo.pushes().len(),
        1,
        "{:#?}",
        app.world.duo.pushes()
    );
    assert_eq!(app.attempts(&token).await.len(), 1);
}

#[tokio::test]
async fn two_clicks_at_the_same_moment_for_an_unmatched_contact_write_one_refusal() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.robin, "Race").await;
    let token = app.link_token(ticket).await;

    // Act
    let (a, b) = tokio::join!(app.send_push(&token), app.send_push(&token));

    // Assert: the later click gets the attempt under way, which ends refused.
    assert_eq!(a["id"], b["id"], "{a} {b}");
    app.wait_for_note(ticket, "No Duo Push was sent").await;
    app.wait_until_idle().await;
    let attempts = app.attempts(&token).await;
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0]["state"], "refused");
    let notes = app.note_texts(ticket);
    assert_eq!(
        notes.iter().filter(|n| n.contains("No Duo Push")).count(),
        1,
        "{notes:#?}"
    );
}

#[tokio::test]
async fn an_attempt_interrupted_while_matching_does_not_block_the_ticket() {
    // Arrange: an attempt left in `matching` twenty minutes ago, as a stop would leave it.
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Interrupted").await;
    let token = app.link_token(ticket).await;
    let case = app.case_of(ticket).await.expect("case");
    sqlx::query(
        "INSERT INTO attempts (ticket_ref, technician_name, state, created_at) \
         VALUES ($1, 'Casey Tech', 'matching', $2)",
    )
    .bind(case.id)
    .bind(minutes_ago(20))
    .execute(&app.db)
    .await
    .expect("insert");

    // Act
    let attempt = app.send_push(&token).await;

    // Assert
    assert_eq!(attempt["state"], "pushed", "{attempt}");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("a push was sent");
    let rows = app.attempts(&token).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["state"], "failed");
    assert_eq!(rows[1]["reason"], "interrupted before a push was sent");
}

#[tokio::test]
async fn a_recent_attempt_still_matching_keeps_the_ticket_to_one_push() {
    // Arrange: an attempt that started matching a moment ago (another click in progress).
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "In progress").await;
    let token = app.link_token(ticket).await;
    let case = app.case_of(ticket).await.expect("case");
    sqlx::query(
        "INSERT INTO attempts (ticket_ref, technician_name, state) \
         VALUES ($1, 'Casey Tech', 'matching')",
    )
    .bind(case.id)
    .execute(&app.db)
    .await
    .expect("insert");

    // Act
    let attempt = app.send_push(&token).await;

    // Assert
    assert_eq!(attempt["state"], "matching", "{attempt}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.world.duo.pushes().is_empty(),
        "no second push while one is matching"
    );
}

#[tokio::test]
async fn an_attempt_whose_lease_ran_out_frees_the_ticket_within_seconds() {
    // Arrange: an attempt that started matching a minute ago and whose process stopped
    // renewing it five seconds ago, as a process killed mid-click leaves it.
    let app = spawn_flow().await;
    let ticket = app
        .new_ticket(app.world.contacts.alex, "Killed mid-click")
        .await;
    let token = app.link_token(ticket).await;
    let case = app.case_of(ticket).await.expect("case");
    let five_seconds_ago = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - 5_000;
    sqlx::query(
        "INSERT INTO attempts (ticket_ref, technician_name, state, created_at, matching_until) \
         VALUES ($1, 'Casey Tech', 'matching', $2, $3)",
    )
    .bind(case.id)
    .bind(minutes_ago(1))
    .bind(five_seconds_ago)
    .execute(&app.db)
    .await
    .expect("insert");

    // Act
    let attempt = app.send_push(&token).await;

    // Assert: the abandoned attempt is failed and the new click pushes.
    assert_eq!(attempt["state"], "pushed", "{attempt}");
    let rows = app.attempts(&token).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[1]["state"], "failed");
    assert_eq!(rows[1]["reason"], "interrupted before a push was sent");
}

#[tokio::test]
async fn an_attempt_renewed_by_its_process_holds_the_ticket_past_its_first_lease() {
    // Arrange: a one-second lease and a Duo that takes a second per call, so matching and
    // pushing (preauth and push at least) outlast the first lease.
    let app = spawn_flow_with(|config| config.matching_lease_secs = 1).await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Slow Duo").await;
    let token = app.link_token(ticket).await;
    app.wait_until_idle().await;
    app.world.duo.set_latency(Duration::from_secs(1));

    // Act: a second click 1.4 s into the first, while it still waits for Duo.
    let first = app.send_push(&token);
    let second = async {
        tokio::time::sleep(Duration::from_millis(1400)).await;
        app.send_push(&token).await
    };
    let (first, second) = tokio::join!(first, second);

    // Assert: the second click got the first's attempt, still under way; one push in all.
    assert_eq!(first["state"], "pushed", "{first}");
    assert_eq!(second["id"], first["id"], "{first} {second}");
    assert_eq!(second["state"], "matching", "{second}");
    let rows = app.attempts(&token).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(app.world.duo.pushes().len(), 1);
}

#[tokio::test]
async fn a_sent_push_is_recorded_with_its_poll_job_and_audit_entry_at_once() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Recorded").await;
    let token = app.link_token(ticket).await;

    // Act
    let attempt = app.send_push(&token).await;

    // Assert: the pushed attempt has its poll job and its audit entry.
    assert_eq!(attempt["state"], "pushed", "{attempt}");
    let id = attempt["id"].as_i64().expect("id");
    let polls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE dedupe_key = $1")
        .bind(format!("poll:{id}"))
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(polls, 1);
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'push sent' AND txid IS NOT NULL",
    )
    .fetch_one(&app.db)
    .await
    .expect("count");
    assert_eq!(audited, 1);
}

/// A timestamp `minutes` ago, written as the database's timestamps are.
fn minutes_ago(minutes: i64) -> String {
    let at = time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes);
    at.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .expect("format a timestamp")
}

#[tokio::test]
async fn a_note_posted_by_a_process_that_died_before_recording_it_is_not_posted_again() {
    // Arrange: the link note reached ConnectWise, but the database does not know it, as when
    // a process is killed between ConnectWise's answer and the commit.
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Cut short").await;
    app.link_token(ticket).await;
    app.wait_until_idle().await;
    sqlx::query("UPDATE notes SET psa_note_id = NULL")
        .execute(&app.db)
        .await
        .expect("forget the post");

    // Act: the note job runs again.
    sqlx::query("UPDATE jobs SET done = FALSE, run_at = 0 WHERE kind = 'note'")
        .execute(&app.db)
        .await
        .expect("requeue");
    app.wait_until_idle().await;

    // Assert: found in ConnectWise by its reference, recorded, not written twice.
    let texts = app.note_texts(ticket);
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert!(texts[0].contains("(deskproof ref "), "{}", texts[0]);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM notes WHERE psa_note_id IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn a_note_stored_by_a_post_answered_504_is_found_and_not_posted_again() {
    // Arrange: ConnectWise stores the link note, but the gateway in front answers 504.
    let app = spawn_flow().await;
    app.world.cw.store_then_fail_next_note_posts(1, 504);

    // Act
    let ticket = app
        .new_ticket(app.world.contacts.alex, "Slow gateway")
        .await;
    app.link_token(ticket).await;
    app.wait_until_idle().await;

    // Assert
    let texts = app.note_texts(ticket);
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert_eq!(app.world.cw.note_posts(), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM notes WHERE psa_note_id IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn tickets_are_still_taken_in_while_webhooks_keep_arriving() {
    // Arrange: eight workers, of which two keep taking in tickets during a burst.
    let app = spawn_flow_with(|c| c.workers = 8).await;
    let first = app
        .new_ticket(app.world.contacts.alex, "Earlier ticket")
        .await;
    app.wait_for_note(first, "/verify/").await;
    let stop = std::sync::atomic::AtomicBool::new(false);

    // Act: authentic updates of the first ticket arrive back to back while a new ticket is
    // created; they stop only once the new ticket has its note.
    let burst = async {
        let mut answers = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let deliveries = app.world.cw.fire_callback(first, "updated").await;
            answers.extend(deliveries.into_iter().map(|d| d.status));
        }
        answers
    };
    let intake = async {
        let ticket = app
            .new_ticket(app.world.contacts.megan, "During a burst")
            .await;
        let notes = app.wait_for_note(ticket, "/verify/").await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        notes
    };
    let (answers, notes) = tokio::join!(burst, intake);

    // Assert
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(
        answers.len() >= 10,
        "the burst lasted: {} webhooks",
        answers.len()
    );
    assert!(answers.iter().all(|s| *s == Some(200)), "{answers:?}");
}
