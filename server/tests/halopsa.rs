//! HaloPSA over real HTTP: webhook with Basic or Bearer credentials → private action with a
//! link → Duo Push → approved action; OAuth tokens cached and renewed after a 401; webhooks
//! that are not about a new ticket start nothing; a note cut short is not posted twice.
mod support;

use std::time::Duration;

use base64::Engine as _;
use deskproof::psa::{ContactId, TicketId};
use deskproof::sim::halopsa::{HaloSim, HaloSimAction, HaloSimConfig};
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

/// A second Halo tenant whose webhook authenticates with a Bearer token (no webhook user
/// name), stored as a connection of the Halo organization and pointed at deskproof.
async fn bearer_tenant(app: &FlowApp) -> (HaloSim, i64, ContactId) {
    let sim = HaloSim::start_with(
        HaloSimConfig {
            webhook_username: None,
            webhook_secret: "bearer-webhook-token".into(),
            ..HaloSimConfig::default()
        },
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("sim");
    let company = sim.add_client("Contoso");
    let alex = sim.add_user(company, "Alex Example", "alex.example@contoso.example");
    let key = deskproof::crypto::MasterKey::from_config(&support::flow::flow_config(
        &app.db_url,
        app.dir.path(),
    ))
    .expect("master key");
    let (settings, secrets) = sim.connection();
    assert_eq!(settings.webhook_username, None);
    let id = app
        .store
        .create_psa_connection(&deskproof::storage::NewPsaConnection {
            kind: "halopsa".into(),
            name: "HaloPSA with a Bearer webhook".into(),
            settings: serde_json::to_value(settings).expect("json"),
            secrets_sealed: key.seal(&serde_json::to_string(&secrets).expect("json")),
        })
        .await
        .expect("connection");
    app.store
        .map_company(id, &company.to_string(), app.world.halo.organization_id)
        .await
        .expect("mapping");
    sim.set_webhook_url(Some(format!("{}/hooks/halopsa/{id}", app.url)));
    (sim, id, alex)
}

#[tokio::test]
async fn a_bearer_webhook_is_accepted_with_its_token_only() {
    // Arrange
    let app = spawn_flow().await;
    let (sim, connection, alex) = bearer_tenant(&app).await;
    let forged = sim.create_ticket_quietly(alex, "Forged");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("deskproof:bearer-webhook-token")
    );

    // Act
    let (ticket, delivery) = sim.create_ticket(alex, "Bearer webhook").await;
    let notes = wait_until(
        "a link note",
        || sim.notes(ticket),
        |n| link_of(n).is_some(),
    )
    .await;
    app.wait_until_idle().await;
    let mut refused = Vec::new();
    for authorization in [
        "Bearer wrong-token",
        "Bearer bearer-webhook-toke",
        basic.as_str(),
        "",
    ] {
        let d = sim
            .deliver_with_authorization(forged, authorization)
            .await
            .expect("sent");
        refused.push(d.status);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Assert
    let delivery = delivery.expect("the webhook was sent");
    assert_eq!(delivery.signature, "Bearer bearer-webhook-token");
    assert_eq!(delivery.status, Some(200), "{delivery:?}");
    assert_eq!(notes.len(), 1);
    assert_eq!(refused, [Some(401); 4]);
    assert_eq!(
        app.stored_for(connection).await,
        (1, 1, 1),
        "only the genuine one"
    );
    assert!(sim.notes(forged).is_empty());
}

#[tokio::test]
async fn a_webhook_for_a_ticket_logged_long_ago_starts_nothing() {
    // Arrange: a webhook wired to ticket updates fires for an old ticket, once with the
    // ticket's date in its body and once without (the date is then read through the API).
    let app = spawn_flow().await;
    let halo = &app.world.halo;
    let week = Duration::from_secs(7 * 24 * 3600);
    let dated = halo
        .sim
        .create_old_ticket_quietly(halo.alex, "Logged last week", week);
    let undated = halo
        .sim
        .create_old_ticket_quietly(halo.megan, "Also last week", week);

    // Act
    let with_date = halo
        .sim
        .deliver_update(dated, "Any news?")
        .await
        .expect("sent");
    halo.sim.set_webhook_dates(false);
    let without_date = halo
        .sim
        .deliver_update(undated, "Still waiting")
        .await
        .expect("sent");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Assert
    for d in [&with_date, &without_date] {
        assert_eq!(d.status, Some(200), "{d:?}");
    }
    assert!(!String::from_utf8_lossy(&without_date.body).contains("dateoccurred"));
    assert_eq!(app.stored_for(halo.connection_id).await, (0, 0, 0));
    assert!(halo.sim.notes(dated).is_empty() && halo.sim.notes(undated).is_empty());
}

#[tokio::test]
async fn an_update_webhook_for_a_ticket_already_taken_in_gets_no_second_note() {
    // Arrange
    let app = spawn_flow().await;
    let halo = &app.world.halo;
    let (ticket, _) = halo.sim.create_ticket(halo.alex, "New ticket").await;
    link_token(&app, ticket).await;
    app.wait_until_idle().await;

    // Act: the same ticket is updated a minute later and the webhook fires again.
    let update = halo
        .sim
        .deliver_update(ticket, "More details")
        .await
        .expect("sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.wait_until_idle().await;

    // Assert
    assert_eq!(update.status, Some(200));
    assert_eq!(halo.sim.notes(ticket).len(), 1);
    assert_eq!(app.stored_for(halo.connection_id).await, (1, 1, 1));
}
