//! HaloPSA over real HTTP: webhook with Basic or Bearer credentials → private action with a
//! link → Duo Push → approved action; OAuth tokens cached and renewed after a 401.
mod support;

use std::time::Duration;

use base64::Engine as _;
use deskproof::psa::TicketId;
use deskproof::sim::halopsa::HaloSimAction;
use support::flow::{spawn_flow, token_in, wait_until, FlowApp};

const APPROVED: &str = "alex.example has verified this ticket.";

fn link_of(actions: &[HaloSimAction]) -> Option<String> {
    actions.iter().rev().find_map(|a| token_in(&a.text()))
}

async fn link_token(app: &FlowApp, ticket: TicketId) -> String {
    let sim = &app.world.halo.sim;
    let notes = wait_until(
        "a link note",
        || sim.notes(ticket),
        |n| link_of(n).is_some(),
    )
    .await;
    link_of(&notes).expect("link")
}

#[tokio::test]
async fn a_webhook_leads_to_private_actions_and_an_approved_push() {
    // Arrange
    let app = spawn_flow().await;
    let halo = &app.world.halo;

    // Act
    let (ticket, delivery) = halo
        .sim
        .create_ticket(halo.alex, "Password reset for Alex")
        .await;
    let token = link_token(&app, ticket).await;
    let (status, page) = app.call("verification", &token).await;
    app.push_and_approve(&token, "alex.example").await;

    // Assert
    let delivery = delivery.expect("the webhook was sent");
    assert_eq!(delivery.status, Some(200), "{delivery:?}");
    assert!(delivery.signature.starts_with("Basic "));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["contact"], "Alex Example");
    assert_eq!(page["organization"], "Contoso (HaloPSA)");
    let notes = wait_until(
        "the approved note",
        || halo.sim.notes(ticket),
        |n| n.iter().any(|a| a.text().contains(APPROVED)),
    )
    .await;
    assert_eq!(notes.len(), 2, "{notes:#?}");
    for action in &notes {
        assert!(action.hidden_from_user, "{action:?}");
        assert!(!action.send_email, "{action:?}");
        assert_eq!(action.outcome, "Private Note");
    }
    assert_eq!(halo.sim.tokens_issued(), 1, "one token serves every call");
}

#[tokio::test]
async fn webhooks_with_wrong_credentials_are_refused_and_nothing_is_stored() {
    // Arrange
    let app = spawn_flow().await;
    let halo = &app.world.halo;
    let ticket = halo.sim.create_ticket_quietly(halo.alex, "Forged");
    let secret = halo.sim.config().webhook_secret;
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };

    // Act
    let mut statuses = Vec::new();
    for authorization in [
        String::new(),
        basic("deskproof", "guess"),
        basic("someone-else", &secret),
        // This connection expects Basic; the right secret as a Bearer token is not enough.
        format!("Bearer {secret}"),
    ] {
        let d = halo
            .sim
            .deliver_with_authorization(ticket, &authorization)
            .await
            .expect("sent");
        statuses.push(d.status);
    }

    // Assert
    assert_eq!(statuses, [Some(401); 4]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.stored_for(halo.connection_id).await, (0, 0, 0));
    assert!(halo.sim.notes(ticket).is_empty());
}

#[tokio::test]
async fn a_revoked_token_is_renewed_once_and_the_note_still_posted() {
    // Arrange
    let app = spawn_flow().await;
    let halo = &app.world.halo;
    let (first, _) = halo.sim.create_ticket(halo.alex, "First").await;
    link_token(&app, first).await;
    app.wait_until_idle().await;
    assert_eq!(halo.sim.tokens_issued(), 1);

    // Act
    halo.sim.revoke_tokens();
    let (second, _) = halo.sim.create_ticket(halo.megan, "Second").await;
    link_token(&app, second).await;
    app.wait_until_idle().await;

    // Assert
    assert_eq!(halo.sim.tokens_issued(), 2, "one new token after the 401");
    assert_eq!(halo.sim.notes(second).len(), 1);
}

#[tokio::test]
async fn a_note_refused_with_429_then_503_is_posted_exactly_once() {
    // Arrange
    let app = spawn_flow().await;
    let halo = &app.world.halo;
    halo.sim.fail_next_note_posts(1, 429);

    // Act
    let (ticket, _) = halo.sim.create_ticket(halo.alex, "Busy").await;
    let token = link_token(&app, ticket).await;
    halo.sim.fail_next_note_posts(2, 503);
    app.push_and_approve(&token, "alex.example").await;
    wait_until(
        "the approved note",
        || halo.sim.notes(ticket),
        |n| n.iter().any(|a| a.text().contains(APPROVED)),
    )
    .await;
    app.wait_until_idle().await;

    // Assert
    assert_eq!(halo.sim.notes(ticket).len(), 2);
    assert_eq!(
        halo.sim.note_posts(),
        5,
        "a 429, the link, two 503s, the outcome"
    );
}

#[tokio::test]
async fn a_note_stored_by_a_post_answered_504_is_found_and_not_posted_again() {
    // Arrange: Halo stores the action, but the gateway in front answers 504.
    let app = spawn_flow().await;
    let halo = &app.world.halo;
    halo.sim.store_then_fail_next_note_posts(1, 504);

    // Act
    let (ticket, _) = halo.sim.create_ticket(halo.alex, "Slow gateway").await;
    link_token(&app, ticket).await;
    app.wait_until_idle().await;

    // Assert
    let notes = halo.sim.notes(ticket);
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(halo.sim.note_posts(), 1);
    assert!(halo.sim.action_reads() >= 1);
    let posted = app
        .count_for(
            "SELECT COUNT(*) FROM notes n JOIN tickets t ON t.id = n.ticket_ref \
             WHERE t.connection_id = $1 AND n.psa_note_id IS NOT NULL",
            halo.connection_id,
        )
        .await;
    assert_eq!(posted, 1, "the note is recorded as posted");
}
