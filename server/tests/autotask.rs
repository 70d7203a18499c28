//! Autotask over real HTTP: signed ticket webhook → internal titled note with a link → Duo
//! Push → approved note; forged webhooks refused; refused note posts retried exactly once.
mod support;

use std::time::Duration;

use deskproof::psa::TicketId;
use deskproof::sim::autotask::AtSimNote;
use support::flow::{spawn_flow, token_in, wait_until, FlowApp};

const FIXTURE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/psa-payloads/autotask-webhook-ticket-create.json"
));
const APPROVED: &str = "alex.example has verified this ticket.";

fn link_of(notes: &[AtSimNote]) -> Option<String> {
    notes.iter().rev().find_map(|n| token_in(&n.description))
}

async fn link_token(app: &FlowApp, ticket: TicketId) -> String {
    let sim = &app.world.autotask.sim;
    let notes = wait_until(
        "a link note",
        || sim.notes(ticket),
        |n| link_of(n).is_some(),
    )
    .await;
    link_of(&notes).expect("link")
}

#[tokio::test]
async fn a_signed_webhook_leads_to_internal_notes_and_an_approved_push() {
    // Arrange
    let app = spawn_flow().await;
    let at = &app.world.autotask;

    // Act
    let created = at
        .sim
        .create_ticket(at.company, Some(at.alex), "Password reset for Alex")
        .await;
    let token = link_token(&app, created.id).await;
    let (status, page) = app.call("verification", &token).await;
    app.push_and_approve(&token, "alex.example").await;

    // Assert
    assert_eq!(created.deliveries.len(), 1);
    assert_eq!(created.deliveries[0].status, Some(200), "{created:?}");
    assert!(created.deliveries[0].signature.starts_with("sha1="));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["summary"], "Password reset for Alex");
    assert_eq!(page["contact"], "Alex Example");
    assert_eq!(page["organization"], "Contoso (Autotask)");
    let notes = wait_until(
        "the approved note",
        || at.sim.notes(created.id),
        |n| n.iter().any(|n| n.description.contains(APPROVED)),
    )
    .await;
    assert_eq!(notes.len(), 2, "{notes:#?}");
    for note in &notes {
        assert_eq!(note.publish, 2, "internal only: {note:?}");
        assert!(!note.is_customer_visible());
        assert!(!note.title.trim().is_empty(), "{note:?}");
    }
    assert_eq!(
        at.sim.zone_lookups(),
        1,
        "the zone is looked up once and kept"
    );
}

#[tokio::test]
async fn webhooks_with_a_missing_wrong_or_stale_signature_are_refused_and_nothing_is_stored() {
    // Arrange
    let app = spawn_flow().await;
    let at = &app.world.autotask;
    let ticket = at
        .sim
        .create_ticket_quietly(at.company, Some(at.alex), "Forged");
    let body = FIXTURE.to_vec();
    let signature = deskproof::psa::autotask::sign(&at.sim.config().webhook_secret, &body);
    let mut changed = body.clone();
    let last = changed.len() - 2;
    changed[last] = b' ';

    // Act
    let unsigned = at
        .sim
        .deliver_with_secret(ticket, "")
        .await
        .expect("a delivery");
    let forged = at
        .sim
        .deliver_with_secret(ticket, "guess")
        .await
        .expect("a delivery");
    let tampered = app
        .client
        .post(format!("{}/hooks/autotask/{}", app.url, at.connection_id))
        .header("content-type", "application/json")
        .header("X-Hook-Signature", &signature)
        .body(changed)
        .send()
        .await
        .expect("request");

    // Assert
    assert_eq!(unsigned.status, Some(401), "{unsigned:?}");
    assert_eq!(forged.status, Some(401), "{forged:?}");
    assert_eq!(tampered.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.stored_for(at.connection_id).await, (0, 0, 0));
    assert!(at.sim.notes(ticket).is_empty());
}

#[tokio::test]
async fn a_repeated_delivery_is_stored_once() {
    // Arrange
    let app = spawn_flow().await;
    let at = &app.world.autotask;
    let created = at
        .sim
        .create_ticket(at.company, Some(at.alex), "Twice")
        .await;

    // Act
    let again = at.sim.redeliver(&created.deliveries[0]).await;

    // Assert
    assert_eq!(again.status, Some(200));
    link_token(&app, created.id).await;
    app.wait_until_idle().await;
    assert_eq!(at.sim.notes(created.id).len(), 1);
    assert_eq!(app.stored_for(at.connection_id).await, (1, 1, 1));
}

#[tokio::test]
async fn a_note_refused_with_503_then_429_is_posted_exactly_once() {
    // Arrange
    let app = spawn_flow().await;
    let at = &app.world.autotask;
    at.sim.fail_next_note_posts(2, 503);

    // Act
    let created = at
        .sim
        .create_ticket(at.company, Some(at.alex), "Flaky")
        .await;
    link_token(&app, created.id).await;
    at.sim.fail_next_note_posts(1, 429);
    let token = link_token(&app, created.id).await;
    app.push_and_approve(&token, "alex.example").await;
    wait_until(
        "the approved note",
        || at.sim.notes(created.id),
        |n| n.iter().any(|n| n.description.contains(APPROVED)),
    )
    .await;
    app.wait_until_idle().await;

    // Assert
    let notes = at.sim.notes(created.id);
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert_eq!(
        at.sim.note_posts(),
        5,
        "two 503s, the link, one 429, the outcome"
    );
}

#[tokio::test]
async fn update_and_deactivation_events_are_accepted_but_start_nothing() {
    // Arrange: writing the link note is itself a ticket change Autotask reports.
    let app = spawn_flow().await;
    let at = &app.world.autotask;
    let quiet = at
        .sim
        .create_ticket_quietly(at.company, Some(at.alex), "Changed");

    // Act
    let update = at.sim.deliver_action(quiet, "Update").await.expect("sent");
    let delete = at.sim.deliver_action(quiet, "Delete").await.expect("sent");
    let deactivated = at
        .sim
        .deliver_action(quiet, "Deactivated")
        .await
        .expect("sent");

    // Assert
    for d in [&update, &delete, &deactivated] {
        assert_eq!(d.status, Some(200), "{d:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.stored_for(at.connection_id).await, (0, 0, 0));
    assert!(at.sim.notes(quiet).is_empty());
}

#[tokio::test]
async fn a_webhook_for_another_kind_of_connection_is_not_found() {
    // Arrange: a genuine Autotask delivery, sent to the Freshdesk connection's id.
    let app = spawn_flow().await;
    let at = &app.world.autotask;
    let signature = deskproof::psa::autotask::sign(&at.sim.config().webhook_secret, FIXTURE);

    // Act
    let mut statuses = Vec::new();
    for connection in [app.world.freshdesk.connection_id, 9999] {
        let res = app
            .client
            .post(format!("{}/hooks/autotask/{connection}", app.url))
            .header("content-type", "application/json")
            .header("X-Hook-Signature", &signature)
            .body(FIXTURE.to_vec())
            .send()
            .await
            .expect("request");
        statuses.push(res.status().as_u16());
    }

    // Assert
    assert_eq!(statuses, [404, 404]);
    assert_eq!(app.count("SELECT COUNT(*) FROM inbound_events").await, 0);
}

#[tokio::test]
async fn a_note_stored_by_a_post_answered_504_is_found_and_not_posted_again() {
    // Arrange: the tenant stores the link note, but the gateway in front answers 504.
    let app = spawn_flow().await;
    let at = &app.world.autotask;
    at.sim.store_then_fail_next_note_posts(1, 504);

    // Act
    let created = at
        .sim
        .create_ticket(at.company, Some(at.alex), "Slow gateway")
        .await;
    link_token(&app, created.id).await;
    app.wait_until_idle().await;

    // Assert: the retry looked the note up by its reference instead of posting it twice.
    let notes = at.sim.notes(created.id);
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(at.sim.note_posts(), 1);
    assert!(at.sim.note_queries() >= 1);
    let posted = app
        .count_for(
            "SELECT COUNT(*) FROM notes n JOIN tickets t ON t.id = n.ticket_ref \
             WHERE t.connection_id = $1 AND n.psa_note_id IS NOT NULL",
            at.connection_id,
        )
        .await;
    assert_eq!(posted, 1, "the note is recorded as posted");
}
