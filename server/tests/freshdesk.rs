//! Freshdesk over real HTTP: automation-rule webhook with a shared secret header → private
//! note with a link → Duo Push → approved note; the one-`name` rule for contacts; 429 with
//! `Retry-After` honoured.
mod support;

use std::time::{Duration, Instant};

use deskproof::psa::{ContactId, TicketId};
use deskproof::sim::duo::SimUser;
use deskproof::sim::freshdesk::FdSimNote;
use support::flow::{spawn_flow, token_in, wait_until, FlowApp};

fn link_of(notes: &[FdSimNote]) -> Option<String> {
    notes.iter().rev().find_map(|n| token_in(&n.text()))
}

async fn link_token(app: &FlowApp, ticket: TicketId) -> String {
    let sim = &app.world.freshdesk.sim;
    let notes = wait_until(
        "a link note",
        || sim.notes(ticket),
        |n| link_of(n).is_some(),
    )
    .await;
    link_of(&notes).expect("link")
}

async fn wait_for_text(app: &FlowApp, ticket: TicketId, needle: &str) -> Vec<FdSimNote> {
    let sim = &app.world.freshdesk.sim;
    wait_until(
        needle,
        || sim.notes(ticket),
        |n| n.iter().any(|n| n.text().contains(needle)),
    )
    .await
}

#[tokio::test]
async fn a_rule_webhook_leads_to_private_notes_and_an_approved_push() {
    // Arrange
    let app = spawn_flow().await;
    let fd = &app.world.freshdesk;

    // Act
    let (ticket, delivery) = fd
        .sim
        .create_ticket(fd.alex, "Password reset for Alex")
        .await;
    let token = link_token(&app, ticket).await;
    let (status, page) = app.call("verification", &token).await;
    app.push_and_approve(&token, "alex.example").await;

    // Assert
    let delivery = delivery.expect("the rule sent a webhook");
    assert_eq!(delivery.status, Some(200), "{delivery:?}");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["contact"], "Alex Example");
    assert_eq!(page["organization"], "Contoso (Freshdesk)");
    let notes = wait_for_text(&app, ticket, "alex.example has verified this ticket.").await;
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(notes.iter().all(|n| n.private), "{notes:#?}");
    assert!(
        notes[0].body.contains("<a href=\""),
        "the link is clickable: {}",
        notes[0].body
    );
}

#[tokio::test]
async fn webhooks_without_the_right_secret_are_refused_and_nothing_is_stored() {
    // Arrange
    let app = spawn_flow().await;
    let fd = &app.world.freshdesk;
    let ticket = fd.sim.create_ticket_quietly(fd.alex, "Forged");

    // Act
    let missing = fd.sim.deliver_with_secret(ticket, "").await.expect("sent");
    let wrong = fd
        .sim
        .deliver_with_secret(ticket, "guess")
        .await
        .expect("sent");
    let almost = {
        let mut secret = fd.sim.config().webhook_secret;
        secret.pop();
        fd.sim
            .deliver_with_secret(ticket, &secret)
            .await
            .expect("sent")
    };

    // Assert
    for d in [&missing, &wrong, &almost] {
        assert_eq!(d.status, Some(401), "{d:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.stored_for(fd.connection_id).await, (0, 0, 0));
    assert!(fd.sim.notes(ticket).is_empty());
}

#[tokio::test]
async fn the_ticket_is_read_through_the_api_not_from_the_webhook() {
    // Arrange: the rule's body names the requester, but deskproof must use the API's record.
    let app = spawn_flow().await;
    let fd = &app.world.freshdesk;
    let ticket = fd
        .sim
        .create_ticket_quietly(fd.megan, "Sent as someone else");
    let body = serde_json::json!({
        "ticket_id": ticket.to_string(),
        "subject": "Password reset for Alex",
        "requester_name": "Alex Example",
        "requester_email": "alex.example@contoso.example"
    });

    // Act
    let res = app
        .client
        .post(format!("{}/hooks/freshdesk/{}", app.url, fd.connection_id))
        .header("X-Webhook-Token", fd.sim.config().webhook_secret)
        .json(&body)
        .send()
        .await
        .expect("request");
    let token = link_token(&app, ticket).await;
    let (_, page) = app.call("verification", &token).await;

    // Assert
    assert_eq!(res.status(), 200);
    assert_eq!(page["summary"], "Sent as someone else");
    assert_eq!(page["contact"], "Megan Bowen");
}

#[tokio::test]
async fn notes_refused_with_429_wait_for_retry_after_and_are_posted_once() {
    // Arrange
    let app = spawn_flow().await;
    let fd = &app.world.freshdesk;
    fd.sim.fail_next_note_posts(2, 429);

    // Act
    let started = Instant::now();
    let (ticket, _) = fd.sim.create_ticket(fd.alex, "Busy helpdesk").await;
    link_token(&app, ticket).await;
    let waited = started.elapsed();
    app.wait_until_idle().await;

    // Assert
    assert_eq!(fd.sim.notes(ticket).len(), 1);
    assert_eq!(fd.sim.note_posts(), 3, "two 429s, then the note");
    // The retry base is 100 ms; only `Retry-After: 1` makes the two retries take 2 s.
    assert!(waited >= Duration::from_secs(2), "waited only {waited:?}");
}

#[tokio::test]
async fn a_note_refused_with_a_server_error_is_posted_once() {
    // Arrange
    let app = spawn_flow().await;
    let fd = &app.world.freshdesk;
    fd.sim.fail_next_note_posts(3, 502);

    // Act
    let (ticket, _) = fd.sim.create_ticket(fd.alex, "Flaky helpdesk").await;
    link_token(&app, ticket).await;
    app.wait_until_idle().await;

    // Assert
    assert_eq!(fd.sim.notes(ticket).len(), 1);
    assert_eq!(fd.sim.note_posts(), 4);
    assert_eq!(app.stored_for(fd.connection_id).await, (1, 1, 1));
}

async fn ticket_for(app: &FlowApp, name: &str, email: &str) -> (TicketId, ContactId) {
    let fd = &app.world.freshdesk;
    let contact = fd.sim.add_contact(fd.company, name, email);
    let (ticket, _) = fd
        .sim
        .create_ticket(contact, &format!("Help for {name}"))
        .await;
    (ticket, contact)
}

#[tokio::test]
async fn one_word_three_part_and_accented_names_follow_the_documented_rule() {
    // Arrange: Duo users whose names are split differently from Freshdesk's one field.
    let app = spawn_flow().await;
    let duo = &app.world.duo;
    duo.add_user(
        SimUser::new("maryann.smith")
            .name("Mary Ann", "Smith")
            .push_phone("+15555550301"),
    );
    duo.add_user(
        SimUser::new("zoe.angstrom")
            .name("Zoe", "Angstrom")
            .push_phone("+15555550302"),
    );

    // Act
    let (cher, _) = ticket_for(&app, "Cher", "").await;
    let (mary, _) = ticket_for(&app, "Mary  Ann Smith", "").await;
    let (zoe, _) = ticket_for(&app, "Zoë Ångström", "").await;
    let (alexander, _) = ticket_for(
        &app,
        "Alexander Example-Smith",
        "alex.example@contoso.example",
    )
    .await;

    // Assert: one word is a first name only, so the last name is reported missing.
    let notes = wait_for_text(&app, cher, "cannot be verified yet").await;
    assert!(notes[0].text().contains("contact last name"), "{notes:#?}");
    // Three parts: first word / the rest; Duo's "Mary Ann" + "Smith" still matches by full name.
    let token = link_token(&app, mary).await;
    let (_, page) = app.call("verification", &token).await;
    assert_eq!(page["contact"], "Mary Ann Smith");
    assert!(
        page["matched"]
            .as_str()
            .unwrap_or_default()
            .contains("matched by name"),
        "{page}"
    );
    app.push_and_approve(&token, "maryann.smith").await;
    // Accents are kept as typed and folded only when compared.
    let token = link_token(&app, zoe).await;
    let (_, page) = app.call("verification", &token).await;
    assert_eq!(page["contact"], "Zoë Ångström");
    assert!(
        page["matched"]
            .as_str()
            .unwrap_or_default()
            .contains("matched by name"),
        "{page}"
    );
    app.push_and_approve(&token, "zoe.angstrom").await;
    // The e-mail is tried before any name.
    let token = link_token(&app, alexander).await;
    let (_, page) = app.call("verification", &token).await;
    assert!(
        page["matched"]
            .as_str()
            .unwrap_or_default()
            .contains("matched by e-mail"),
        "{page}"
    );
}

#[tokio::test]
async fn a_note_stored_by_a_post_answered_504_is_found_and_not_posted_again() {
    // Arrange: Freshdesk stores the link note, but the gateway in front answers 504; the
    // ticket already has more conversation entries than one page holds.
    let app = spawn_flow().await;
    let fd = &app.world.freshdesk;
    let (ticket, _) = fd.sim.create_ticket(fd.megan, "Chatty ticket").await;
    link_token(&app, ticket).await;
    app.wait_until_idle().await;
    let client = deskproof::psa::freshdesk::FreshdeskClient::with_http(
        deskproof::psa::source::freshdesk_config(
            &serde_json::to_value(fd.sim.connection().0).expect("json"),
            &serde_json::to_string(&fd.sim.connection().1).expect("json"),
        )
        .expect("config"),
        deskproof::psa::http::http_client().expect("http"),
    )
    .expect("client");
    for n in 0..100 {
        deskproof::psa::Psa::post_internal_note(&client, ticket, &format!("Earlier note {n}"))
            .await
            .expect("note");
    }
    let posts_before = fd.sim.note_posts();
    fd.sim.store_then_fail_next_note_posts(1, 504);

    // Act: the approval note is the one cut short; the 100 earlier notes push it to page two.
    let token = link_token(&app, ticket).await;
    app.push_and_approve(&token, "megan.bowen").await;
    wait_for_text(&app, ticket, "megan.bowen has verified this ticket.").await;
    app.wait_until_idle().await;

    // Assert: one approval note, found on the second page of conversations.
    let approvals = fd
        .sim
        .notes(ticket)
        .iter()
        .filter(|n| n.text().contains("has verified this ticket."))
        .count();
    assert_eq!(approvals, 1);
    assert_eq!(fd.sim.note_posts(), posts_before + 1);
    assert!(fd.sim.conversation_reads() >= 2, "read past the first page");
}

#[tokio::test]
async fn the_requester_embedded_in_the_ticket_saves_the_contact_read() {
    // Arrange
    let app = spawn_flow().await;
    let fd = &app.world.freshdesk;

    // Act
    let (embedded, _) = fd.sim.create_ticket(fd.alex, "Embedded requester").await;
    link_token(&app, embedded).await;
    app.wait_until_idle().await;
    let reads_with_embedding = fd.sim.contact_reads();
    fd.sim.set_embed_requester(false);
    let (plain, _) = fd
        .sim
        .create_ticket(fd.megan, "No embedded requester")
        .await;
    let token = link_token(&app, plain).await;
    app.wait_until_idle().await;

    // Assert: the contact is read only when the ticket does not carry it.
    assert_eq!(reads_with_embedding, 0);
    assert_eq!(fd.sim.contact_reads(), 1);
    let (_, page) = app.call("verification", &token).await;
    assert_eq!(page["contact"], "Megan Bowen");
}

#[tokio::test]
async fn a_webhook_secret_changed_in_the_settings_applies_to_the_next_delivery() {
    // Arrange: a delivery checked with the current secret, so its checker is in use.
    let app = spawn_flow().await;
    let fd = &app.world.freshdesk;
    let (settings, secrets) = fd.sim.connection();
    let admin = app.admin_client().await;
    let first = fd.sim.create_ticket_quietly(fd.alex, "Before the change");
    let before = fd
        .sim
        .deliver_with_secret(first, &secrets.webhook_secret)
        .await
        .expect("sent");
    let id = fd.connection_id.to_string();
    let name = app
        .store
        .psa_connection(fd.connection_id)
        .await
        .expect("read")
        .expect("connection")
        .name;

    // Act
    let (saved, reply) = app
        .admin_call(
            &admin,
            "save_connection",
            &[
                ("id", &id),
                ("kind", "freshdesk"),
                ("name", &name),
                ("fields[base_url]", &settings.base_url),
                ("fields[webhook_secret]", "a-new-webhook-secret-2k4m"),
            ],
        )
        .await;
    let second = fd.sim.create_ticket_quietly(fd.alex, "After the change");
    let old = fd
        .sim
        .deliver_with_secret(second, &secrets.webhook_secret)
        .await
        .expect("sent");
    let new = fd
        .sim
        .deliver_with_secret(second, "a-new-webhook-secret-2k4m")
        .await
        .expect("sent");

    // Assert
    assert_eq!(before.status, Some(200), "{before:?}");
    assert_eq!(saved, 200, "{reply}");
    assert!(
        reply["errors"].as_object().is_none_or(|e| e.is_empty()),
        "{reply}"
    );
    assert_eq!(
        old.status,
        Some(401),
        "the old secret no longer works: {old:?}"
    );
    assert_eq!(new.status, Some(200), "{new:?}");
}
