//! The Autotask, Freshdesk and HaloPSA clients against their simulators over real HTTP:
//! paging through ticket lists, refused credentials and the documented error shapes.
use std::time::Duration;

use deskproof::psa::autotask::{AutotaskClient, ZoneCache};
use deskproof::psa::freshdesk::FreshdeskClient;
use deskproof::psa::halopsa::client::TokenCache;
use deskproof::psa::halopsa::{HaloClient, OutcomeCache};
use deskproof::psa::source::{autotask_config, freshdesk_config, halo_config};
use deskproof::psa::{Psa, PsaError, TicketId};
use deskproof::sim::autotask::{AutotaskSim, AutotaskSimConfig};
use deskproof::sim::freshdesk::FreshdeskSim;
use deskproof::sim::halopsa::{HaloSim, HaloSimConfig, PRIVATE_NOTE_OUTCOME_ID};
use time::OffsetDateTime;

fn http() -> reqwest::Client {
    deskproof::psa::http::http_client().expect("client")
}

fn an_hour_ago() -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::hours(1)
}

async fn autotask(sim: &AutotaskSim, secret: Option<&str>) -> AutotaskClient {
    let (settings, mut secrets) = sim.connection();
    if let Some(secret) = secret {
        secrets.secret = secret.to_owned();
    }
    let config = autotask_config(
        &serde_json::to_value(settings).expect("json"),
        &serde_json::to_string(&secrets).expect("json"),
    )
    .expect("config");
    AutotaskClient::with_http(config, http(), ZoneCache::default()).expect("client")
}

#[tokio::test]
async fn autotask_lists_every_page_and_refuses_a_wrong_secret() {
    // Arrange
    let sim = AutotaskSim::start().await.expect("sim");
    let company = sim.add_company("Contoso");
    let contact = sim.add_contact(company, "Alex", "Example", "alex@contoso.example");
    let created: Vec<TicketId> = (0..5)
        .map(|n| sim.create_ticket_quietly(company, Some(contact), &format!("T{n}")))
        .collect();

    // Act
    let listed = autotask(&sim, None)
        .await
        .with_page_size(2)
        .tickets_created_since(an_hour_ago())
        .await
        .expect("list");
    let later = autotask(&sim, None)
        .await
        .tickets_created_since(OffsetDateTime::now_utc() + time::Duration::minutes(1))
        .await
        .expect("list");
    let refused = autotask(&sim, Some("wrong"))
        .await
        .fetch_ticket(created[0])
        .await;
    let missing = autotask(&sim, None).await.fetch_ticket(TicketId(99)).await;

    // Assert
    assert_eq!(listed, created);
    assert!(later.is_empty(), "{later:?}");
    assert!(
        matches!(refused, Err(PsaError::Unauthorized)),
        "{refused:?}"
    );
    assert!(
        matches!(missing, Err(PsaError::NotFound { .. })),
        "{missing:?}"
    );
}

async fn freshdesk(sim: &FreshdeskSim, api_key: Option<&str>) -> FreshdeskClient {
    let (settings, mut secrets) = sim.connection();
    if let Some(key) = api_key {
        secrets.api_key = key.to_owned();
    }
    let config = freshdesk_config(
        &serde_json::to_value(settings).expect("json"),
        &serde_json::to_string(&secrets).expect("json"),
    )
    .expect("config");
    FreshdeskClient::with_http(config, http()).expect("client")
}

#[tokio::test]
async fn freshdesk_lists_every_page_reports_retry_after_and_refuses_a_wrong_key() {
    // Arrange
    let sim = FreshdeskSim::start().await.expect("sim");
    let company = sim.add_company("Contoso");
    let contact = sim.add_contact(company, "Alex Example", "alex@contoso.example");
    let created: Vec<TicketId> = (0..5)
        .map(|n| sim.create_ticket_quietly(contact, &format!("T{n}")))
        .collect();
    sim.fail_next_note_posts(1, 429);

    // Act
    let client = freshdesk(&sim, None).await;
    let listed = client
        .clone()
        .with_page_size(2)
        .tickets_created_since(an_hour_ago())
        .await
        .expect("list");
    let limited = client.post_internal_note(created[0], "text").await;
    let posted = client.post_internal_note(created[0], "a <b> & c").await;
    let refused = freshdesk(&sim, Some("wrong"))
        .await
        .fetch_ticket(created[0])
        .await;
    let contact = client
        .fetch_contact(deskproof::psa::ContactId(contact.0))
        .await;

    // Assert
    assert_eq!(listed, created);
    match limited {
        Err(e @ PsaError::RateLimited { .. }) => {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
            assert!(e.is_retryable());
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    assert!(posted.is_ok(), "{posted:?}");
    let notes = sim.notes(created[0]);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].private);
    assert_eq!(notes[0].text(), "a <b> & c");
    assert!(
        matches!(refused, Err(PsaError::Unauthorized)),
        "{refused:?}"
    );
    let contact = contact.expect("contact");
    assert_eq!(contact.first_name.as_deref(), Some("Alex"));
    assert_eq!(contact.last_name.as_deref(), Some("Example"));
}

async fn halo(sim: &HaloSim, client_secret: Option<&str>, tokens: &TokenCache) -> HaloClient {
    let (settings, mut secrets) = sim.connection();
    if let Some(secret) = client_secret {
        secrets.client_secret = secret.to_owned();
    }
    let config = halo_config(
        &serde_json::to_value(settings).expect("json"),
        &serde_json::to_string(&secrets).expect("json"),
    )
    .expect("config");
    HaloClient::with_http(config, http(), tokens.clone()).expect("client")
}

#[tokio::test]
async fn halo_lists_every_page_keeps_one_token_and_refuses_wrong_client_credentials() {
    // Arrange
    let sim = HaloSim::start().await.expect("sim");
    let client_id = sim.add_client("Contoso");
    let user = sim.add_user(client_id, "Alex Example", "alex@contoso.example");
    let created: Vec<TicketId> = (0..5)
        .map(|n| sim.create_ticket_quietly(user, &format!("T{n}")))
        .collect();
    let tokens = TokenCache::default();

    // Act
    let client = halo(&sim, None, &tokens).await;
    let listed = client
        .clone()
        .with_page_size(2)
        .tickets_created_since(an_hour_ago())
        .await
        .expect("list");
    let ticket = client.fetch_ticket(created[0]).await.expect("ticket");
    let again = halo(&sim, None, &tokens)
        .await
        .fetch_ticket(created[1])
        .await;
    let refused = halo(&sim, Some("wrong"), &TokenCache::default())
        .await
        .fetch_ticket(created[0])
        .await;

    // Assert
    assert_eq!(listed, created);
    assert_eq!(ticket.summary, "T0");
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(
        sim.tokens_issued(),
        1,
        "clients sharing a cache share the token"
    );
    assert!(
        matches!(refused, Err(PsaError::Unauthorized)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn freshdesk_answers_429_with_the_rest_of_the_minute_once_the_limit_is_used() {
    // Arrange
    let sim = FreshdeskSim::start().await.expect("sim");
    let company = sim.add_company("Contoso");
    let contact = sim.add_contact(company, "Alex Example", "alex@contoso.example");
    let ticket = sim.create_ticket_quietly(contact, "Limited");
    let client = freshdesk(&sim, None).await;
    sim.set_rate_limit(2);

    // Act
    let first = client.fetch_ticket(ticket).await;
    let second = client.fetch_ticket(ticket).await;
    let third = client.fetch_ticket(ticket).await;

    // Assert
    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    match third {
        Err(e @ PsaError::RateLimited { .. }) => {
            let wait = e.retry_after().expect("Retry-After");
            assert!(
                wait >= Duration::from_secs(50) && wait <= Duration::from_secs(60),
                "{wait:?}"
            );
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
}

#[tokio::test]
async fn autotask_writes_notes_with_the_tenants_internal_publish_value() {
    // Arrange: a tenant whose "Internal Project Team" is not the usual 2.
    let sim = AutotaskSim::start_with(
        AutotaskSimConfig {
            internal_publish: 5,
            ..AutotaskSimConfig::default()
        },
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("sim");
    let company = sim.add_company("Contoso");
    let contact = sim.add_contact(company, "Alex", "Example", "alex@contoso.example");
    let ticket = sim.create_ticket_quietly(company, Some(contact), "Internal only");
    let client = autotask(&sim, None).await;

    // Act
    let first = client.post_internal_note(ticket, "one").await;
    let second = client.post_internal_note(ticket, "two").await;

    // Assert
    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    let notes = sim.notes(ticket);
    assert_eq!(notes.iter().map(|n| n.publish).collect::<Vec<_>>(), [5, 5]);
    assert!(notes.iter().all(|n| !n.is_customer_visible()));
}

fn local() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn halo_lists_every_page_when_the_answer_has_no_record_count() {
    // Arrange: five tickets, pages of two, and a Halo that leaves record_count out.
    let sim = HaloSim::start().await.expect("sim");
    let client_id = sim.add_client("Contoso");
    let user = sim.add_user(client_id, "Alex Example", "alex@contoso.example");
    let created: Vec<TicketId> = (0..5)
        .map(|n| sim.create_ticket_quietly(user, &format!("T{n}")))
        .collect();
    sim.set_record_count(false);

    // Act
    let listed = halo(&sim, None, &TokenCache::default())
        .await
        .with_page_size(2)
        .tickets_created_since(an_hour_ago())
        .await
        .expect("list");

    // Assert
    assert_eq!(listed, created);
}

#[tokio::test]
async fn halo_takes_a_new_token_before_the_old_one_expires_without_a_401() {
    // Arrange: tokens that live two seconds are renewed after one.
    let sim = HaloSim::start_with(
        HaloSimConfig {
            token_lifetime_secs: 2,
            ..HaloSimConfig::default()
        },
        local(),
    )
    .await
    .expect("sim");
    let client_id = sim.add_client("Contoso");
    let user = sim.add_user(client_id, "Alex Example", "alex@contoso.example");
    let ticket = sim.create_ticket_quietly(user, "Short tokens");
    let client = halo(&sim, None, &TokenCache::default()).await;

    // Act
    client.fetch_ticket(ticket).await.expect("first call");
    let issued = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let again = client.fetch_ticket(ticket).await;
    let at = issued.elapsed();

    // Assert: a second token, fetched while the first was still valid, and Halo never had to
    // refuse one.
    assert!(again.is_ok(), "{again:?}");
    assert!(at < Duration::from_secs(2), "{at:?}");
    assert_eq!(sim.tokens_issued(), 2);
    assert_eq!(sim.unauthorized_calls(), 0);
}

#[tokio::test]
async fn a_slow_halo_token_server_holds_up_only_its_own_tenant() {
    // Arrange: two tenants sharing the deployment's token cache; one answers tokens slowly.
    let slow = HaloSim::start().await.expect("sim");
    let fast = HaloSim::start_with(
        HaloSimConfig {
            client_id: "other-client".into(),
            ..HaloSimConfig::default()
        },
        local(),
    )
    .await
    .expect("sim");
    let mut tickets = Vec::new();
    for sim in [&slow, &fast] {
        let client_id = sim.add_client("Contoso");
        let user = sim.add_user(client_id, "Alex Example", "alex@contoso.example");
        tickets.push(sim.create_ticket_quietly(user, "Token race"));
    }
    slow.set_token_delay(Duration::from_secs(3));
    let tokens = TokenCache::default();
    let slow_client = halo(&slow, None, &tokens).await;
    let fast_client = halo(&fast, None, &tokens).await;

    // Act
    let slow_ticket = tickets[0];
    let waiting = tokio::spawn(async move { slow_client.fetch_ticket(slow_ticket).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let fast_answer = fast_client.fetch_ticket(tickets[1]).await;
    let fast_took = started.elapsed();
    let slow_finished = waiting.is_finished();
    let slow_answer = waiting.await.expect("task");

    // Assert
    assert!(fast_answer.is_ok(), "{fast_answer:?}");
    assert!(fast_took < Duration::from_secs(1), "{fast_took:?}");
    assert!(
        !slow_finished,
        "the slow tenant was still waiting for its token"
    );
    assert!(slow_answer.is_ok(), "{slow_answer:?}");
}

#[tokio::test]
async fn halo_notes_use_the_tenants_private_note_outcome_read_once() {
    // Arrange
    let sim = HaloSim::start().await.expect("sim");
    let client_id = sim.add_client("Contoso");
    let user = sim.add_user(client_id, "Alex Example", "alex@contoso.example");
    let ticket = sim.create_ticket_quietly(user, "Outcomes");
    let outcomes = OutcomeCache::default();

    // Act: two clients of the same connection share the outcome cache.
    for text in ["one", "two"] {
        halo(&sim, None, &TokenCache::default())
            .await
            .with_outcomes(outcomes.clone())
            .post_internal_note(ticket, text)
            .await
            .expect("note");
    }

    // Assert
    let notes = sim.notes(ticket);
    assert_eq!(notes.len(), 2);
    for note in &notes {
        assert_eq!(note.outcome_id, PRIVATE_NOTE_OUTCOME_ID);
        assert_eq!(note.outcome, "Private Note");
        assert!(note.hidden_from_user && !note.send_email, "{note:?}");
    }
    assert_eq!(sim.outcome_reads(), 1);
}

#[tokio::test]
async fn a_halo_tenant_without_a_private_note_outcome_gets_a_clear_error_and_no_note() {
    // Arrange: a tenant whose outcomes were renamed; then one with a renamed private outcome.
    let config = |outcomes: &[(i64, &str)]| HaloSimConfig {
        outcomes: outcomes
            .iter()
            .map(|(id, n)| (*id, n.to_string()))
            .collect(),
        ..HaloSimConfig::default()
    };
    let none = HaloSim::start_with(config(&[(1, "Ticket Logged"), (3, "Note")]), local())
        .await
        .expect("sim");
    let renamed = HaloSim::start_with(
        config(&[(1, "Ticket Logged"), (44, "Private (technicians only)")]),
        local(),
    )
    .await
    .expect("sim");
    let mut tickets = Vec::new();
    for sim in [&none, &renamed] {
        let client_id = sim.add_client("Contoso");
        let user = sim.add_user(client_id, "Alex Example", "alex@contoso.example");
        tickets.push(sim.create_ticket_quietly(user, "Outcomes"));
    }

    // Act
    let refused = halo(&none, None, &TokenCache::default())
        .await
        .post_internal_note(tickets[0], "text")
        .await;
    let written = halo(&renamed, None, &TokenCache::default())
        .await
        .post_internal_note(tickets[1], "text")
        .await;

    // Assert
    match refused {
        Err(e @ PsaError::Config(_)) => {
            let message = e.to_string();
            assert!(
                message.contains("no \"Private Note\" action outcome"),
                "{message}"
            );
            assert!(message.contains("Ticket Logged, Note"), "{message}");
            assert!(!e.is_retryable());
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert!(none.notes(tickets[0]).is_empty());
    assert_eq!(none.note_posts(), 0);
    assert!(written.is_ok(), "{written:?}");
    assert_eq!(renamed.notes(tickets[1])[0].outcome_id, 44);
}
