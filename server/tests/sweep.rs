//! The scheduled sweep over real HTTP, for all four PSAs: a ticket whose webhook never came
//! is still taken in, and one already taken in through its webhook gets no second link.
mod support;

use std::time::{Duration, Instant};

use deskproof::psa::TicketId;
use support::flow::{spawn_flow_with, token_in, wait_until, FlowApp};

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Waits until every connection's sweep has recorded a watermark later than `after`.
async fn wait_for_sweeps_after(app: &FlowApp, after: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let behind = app
            .count_for(
                "SELECT 4 - COUNT(*) FROM psa_sweeps WHERE swept_until > $1 AND connection_id <= 4",
                after,
            )
            .await;
        if behind == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{behind} connections not swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Link notes on a ticket, whatever the PSA.
fn links(texts: &[String]) -> usize {
    texts.iter().filter(|t| token_in(t).is_some()).count()
}

async fn sweep_key_stored(app: &FlowApp, connection_id: i64, ticket: TicketId) -> bool {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM inbound_events WHERE connection_id = $1 AND delivery_key = $2",
    )
    .bind(connection_id)
    .bind(format!("sweep:{ticket}"))
    .fetch_one(&app.db)
    .await
    .expect("query");
    n == 1
}

#[tokio::test]
async fn the_sweep_takes_in_tickets_without_a_webhook_and_skips_handled_ones() {
    // Arrange: the first sweep of each connection only records where to start.
    let app = spawn_flow_with(|c| c.sweep_interval_secs = 1).await;
    let w = &app.world;
    wait_for_sweeps_after(&app, 0).await;
    let (at, fd, halo) = (&w.autotask, &w.freshdesk, &w.halo);

    // Act: one ticket per PSA arrives through its webhook, one without.
    let cw_handled = app.new_ticket(w.contacts.alex, "With callback").await;
    let at_handled = at
        .sim
        .create_ticket(at.company, Some(at.alex), "With webhook")
        .await
        .id;
    let (fd_handled, _) = fd.sim.create_ticket(fd.alex, "With webhook").await;
    let (halo_handled, _) = halo.sim.create_ticket(halo.alex, "With webhook").await;
    app.link_token(cw_handled).await;
    w.cw.set_callback_url(None);
    let cw_quiet = app.new_ticket(w.contacts.megan, "No callback").await;
    let at_quiet = at
        .sim
        .create_ticket_quietly(at.company, Some(at.megan), "No webhook");
    let fd_quiet = fd.sim.create_ticket_quietly(fd.megan, "No webhook");
    let halo_quiet = halo.sim.create_ticket_quietly(halo.megan, "No webhook");

    // Assert: the quiet tickets get their link note from the sweep.
    app.link_token(cw_quiet).await;
    let at_texts = |t| {
        at.sim
            .notes(t)
            .into_iter()
            .map(|n| n.description)
            .collect::<Vec<_>>()
    };
    let fd_texts = |t| {
        fd.sim
            .notes(t)
            .into_iter()
            .map(|n| n.text())
            .collect::<Vec<_>>()
    };
    let halo_texts = |t| {
        halo.sim
            .notes(t)
            .into_iter()
            .map(|n| n.text())
            .collect::<Vec<_>>()
    };
    wait_until(
        "autotask sweep link",
        || at_texts(at_quiet),
        |t| links(t) == 1,
    )
    .await;
    wait_until(
        "freshdesk sweep link",
        || fd_texts(fd_quiet),
        |t| links(t) == 1,
    )
    .await;
    wait_until(
        "halo sweep link",
        || halo_texts(halo_quiet),
        |t| links(t) == 1,
    )
    .await;
    for (conn, ticket) in [
        (w.connection_id, cw_quiet),
        (at.connection_id, at_quiet),
        (fd.connection_id, fd_quiet),
        (halo.connection_id, halo_quiet),
    ] {
        assert!(
            sweep_key_stored(&app, conn, ticket).await,
            "{conn} {ticket}"
        );
    }

    // Assert: the handled tickets were listed again by a later sweep, and skipped.
    wait_for_sweeps_after(&app, now_ms()).await;
    app.wait_until_idle().await;
    for (conn, ticket) in [
        (w.connection_id, cw_handled),
        (at.connection_id, at_handled),
        (fd.connection_id, fd_handled),
        (halo.connection_id, halo_handled),
    ] {
        assert!(
            sweep_key_stored(&app, conn, ticket).await,
            "{conn} {ticket}"
        );
    }
    assert_eq!(links(&app.note_texts(cw_handled)), 1);
    assert_eq!(links(&at_texts(at_handled)), 1);
    assert_eq!(links(&fd_texts(fd_handled)), 1);
    assert_eq!(links(&halo_texts(halo_handled)), 1);
    for conn in [
        w.connection_id,
        at.connection_id,
        fd.connection_id,
        halo.connection_id,
    ] {
        let (_, cases, notes) = app.stored_for(conn).await;
        assert_eq!((cases, notes), (2, 2), "connection {conn}");
    }
}

#[tokio::test]
async fn a_connection_whose_credentials_are_refused_is_not_swept_again_at_once() {
    // Arrange: a second Autotask connection to the same tenant with a wrong secret.
    let app = spawn_flow_with(|c| c.sweep_interval_secs = 1).await;
    let at = &app.world.autotask;
    let key = deskproof::crypto::MasterKey::from_config(&support::flow::flow_config(
        &app.db_url,
        app.dir.path(),
    ))
    .expect("master key");
    let (settings, mut secrets) = at.sim.connection();
    secrets.secret = "wrong-secret".into();
    let wrong = app
        .store
        .create_psa_connection(&deskproof::storage::NewPsaConnection {
            kind: "autotask".into(),
            name: "Autotask with a wrong secret".into(),
            settings: serde_json::to_value(settings).expect("json"),
            secrets_sealed: key.seal(&serde_json::to_string(&secrets).expect("json")),
        })
        .await
        .expect("connection");

    // Act: the first sweep records the start, the second is refused; then several more pass.
    let deadline = Instant::now() + Duration::from_secs(20);
    while at.sim.refused_calls() == 0 {
        assert!(Instant::now() < deadline, "the wrong secret was never used");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_sweeps_after(&app, now_ms() + 1500).await;

    // Assert: one refusal only, while the good connections keep being swept.
    assert_eq!(at.sim.refused_calls(), 1);
    let wrong_watermark = app
        .count_for(
            "SELECT COUNT(*) FROM psa_sweeps WHERE connection_id = $1",
            wrong,
        )
        .await;
    assert_eq!(wrong_watermark, 1, "only the first sweep's starting point");
}
