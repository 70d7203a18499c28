//! The scheduled sweep over real HTTP, for all four PSAs: a ticket whose webhook never came
//! is still taken in, and one already taken in through its webhook gets no second link; a new
//! connection misses nothing before its first sweep; replicas sharing a database sweep each
//! connection once per interval and never move its watermark back.
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use deskproof::crypto::MasterKey;
use deskproof::psa::{CompanyId, TicketId};
use deskproof::sim::halopsa::HaloSim;
use deskproof::storage::{NewPsaConnection, PsaConnectionRow, Store};
use deskproof::sweep::{SweepOutcome, Sweeper};
use deskproof::verify::clients::StoredClients;
use deskproof::verify::flow::{Flow, FlowSettings};
use deskproof::verify::worker::Worker;
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
    // Arrange: each connection's first sweep has run.
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

    // Act: the first sweep is refused; then several more pass.
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
    assert_eq!(
        wrong_watermark, 1,
        "only the starting point of its creation"
    );
}

fn master_key(app: &FlowApp) -> MasterKey {
    MasterKey::from_config(&support::flow::flow_config(&app.db_url, app.dir.path()))
        .expect("master key")
}

/// A sweeper as a deskproof process builds one, on `store`, sweeping every `interval`.
fn sweeper(store: Store, key: MasterKey, interval: Duration) -> Sweeper {
    let clients = StoredClients::new(store.clone(), key.clone()).expect("clients");
    let psa_http = clients.psa_http.clone();
    let flow = Flow {
        store: store.clone(),
        clients: Arc::new(clients),
        key: key.clone(),
        settings: FlowSettings::default(),
    };
    let worker = Worker::new(flow, Duration::from_secs(60));
    Sweeper::new(store, key, psa_http, worker, interval)
}

/// A new HaloPSA tenant with Alex Example, stored as a connection of the demo's HaloPSA
/// organization; returns the simulator, the stored connection and Alex.
async fn new_halo_connection(
    app: &FlowApp,
) -> (HaloSim, PsaConnectionRow, deskproof::psa::ContactId) {
    let sim = HaloSim::start().await.expect("sim");
    let company: CompanyId = sim.add_client("Contoso");
    let alex = sim.add_user(company, "Alex Example", "alex.example@contoso.example");
    let (settings, secrets) = sim.connection();
    let id = app
        .store
        .create_psa_connection(&NewPsaConnection {
            kind: "halopsa".into(),
            name: format!("HaloPSA at {}", sim.url()),
            settings: serde_json::to_value(settings).expect("json"),
            secrets_sealed: master_key(app).seal(&serde_json::to_string(&secrets).expect("json")),
        })
        .await
        .expect("connection");
    app.store
        .map_company(id, &company.to_string(), app.world.halo.organization_id)
        .await
        .expect("mapping");
    let row = app
        .store
        .psa_connection(id)
        .await
        .expect("read")
        .expect("stored");
    (sim, row, alex)
}

fn halo_links(sim: &HaloSim, ticket: TicketId) -> usize {
    let texts: Vec<String> = sim.notes(ticket).into_iter().map(|n| n.text()).collect();
    links(&texts)
}

#[tokio::test]
async fn a_ticket_created_before_a_new_connections_first_sweep_is_taken_in() {
    // Arrange: deskproof's own sweep is off; this test sweeps by hand.
    let app = spawn_flow_with(|c| c.sweep_interval_secs = 0).await;
    let created_after = now_ms();
    let (sim, row, alex) = new_halo_connection(&app).await;
    let ticket = sim.create_ticket_quietly(alex, "Before the first sweep");
    let sweeper = sweeper(
        app.store.clone(),
        master_key(&app),
        Duration::from_secs(300),
    );

    // Act
    let watermark = app.store.sweep_watermark(row.id).await.expect("watermark");
    let outcome = sweeper.sweep(&row).await.expect("sweep");

    // Assert: the watermark was set when the connection was stored, so the first sweep lists.
    let watermark = watermark.expect("set with the connection");
    assert!(watermark >= created_after, "{watermark} < {created_after}");
    assert_eq!(outcome, SweepOutcome::Swept(1));
    wait_until(
        "the sweep's link note",
        || halo_links(&sim, ticket),
        |n| *n == 1,
    )
    .await;
}

#[tokio::test]
async fn a_connection_saved_as_the_settings_page_saves_it_gets_its_watermark_at_once() {
    // Arrange
    let app = spawn_flow_with(|c| c.sweep_interval_secs = 0).await;
    let before = now_ms();

    // Act
    let id = app
        .store
        .save_psa_connection(
            None,
            &NewPsaConnection {
                kind: "freshdesk".into(),
                name: "Saved in settings".into(),
                settings: serde_json::json!({"base_url": "https://example.freshdesk.com"}),
                secrets_sealed: master_key(&app).seal(r#"{"api_key":"k","webhook_secret":"s"}"#),
            },
            &deskproof::storage::AuditEntry {
                actor: "morgan".into(),
                action: "PSA connection created".into(),
                ..Default::default()
            },
        )
        .await
        .expect("saved");
    let watermark = app.store.sweep_watermark(id).await.expect("watermark");

    // Assert
    let watermark = watermark.expect("a watermark from the start");
    assert!(watermark >= before && watermark <= now_ms(), "{watermark}");
}

#[tokio::test]
async fn the_overlap_is_at_least_the_sweep_interval() {
    // Arrange: a ticket the PSA dated twenty minutes before the connection's watermark (a
    // ticket stored late, or a PSA clock running behind).
    let app = spawn_flow_with(|c| c.sweep_interval_secs = 0).await;
    let (sim, row, alex) = new_halo_connection(&app).await;
    let late = sim.create_old_ticket_quietly(alex, "Stored late", Duration::from_secs(20 * 60));
    let hourly = sweeper(
        app.store.clone(),
        master_key(&app),
        Duration::from_secs(3600),
    );

    // Act
    let outcome = hourly.sweep(&row).await.expect("sweep");

    // Assert: an hourly sweep looks an hour back, not five minutes.
    assert_eq!(hourly.overlap(), Duration::from_secs(3600));
    assert_eq!(outcome, SweepOutcome::Swept(1));
    wait_until(
        "the sweep's link note",
        || halo_links(&sim, late),
        |n| *n == 1,
    )
    .await;
}

#[tokio::test]
async fn two_replicas_sweeping_at_once_sweep_a_connection_once_per_interval() {
    // Arrange: two processes' sweepers, each with its own connection to the database.
    let app = spawn_flow_with(|c| c.sweep_interval_secs = 0).await;
    let (sim, row, alex) = new_halo_connection(&app).await;
    let ticket = sim.create_ticket_quietly(alex, "Seen by both replicas");
    let other_store = deskproof::storage::connect(&app.db_url)
        .await
        .expect("second replica's database");
    let interval = Duration::from_secs(1);
    let first = sweeper(app.store.clone(), master_key(&app), interval);
    let second = sweeper(other_store, master_key(&app), interval);

    // Act
    let (a, b) = tokio::join!(first.sweep(&row), second.sweep(&row));
    let a_again = first.sweep(&row).await.expect("sweep");
    tokio::time::sleep(interval).await;
    let b_later = second.sweep(&row).await.expect("sweep");

    // Assert: one of the two swept, the other found the claim; within the interval even the
    // first is held off, and after it the other replica sweeps.
    let mut outcomes = [a.expect("sweep"), b.expect("sweep")];
    outcomes.sort_by_key(|o| matches!(o, SweepOutcome::Claimed));
    assert_eq!(outcomes, [SweepOutcome::Swept(1), SweepOutcome::Claimed]);
    assert_eq!(a_again, SweepOutcome::Claimed);
    assert_eq!(b_later, SweepOutcome::Swept(0), "listed again, nothing new");
    wait_until("one link note", || halo_links(&sim, ticket), |n| *n == 1).await;
    app.wait_until_idle().await;
    assert_eq!(halo_links(&sim, ticket), 1);
}

#[tokio::test]
async fn a_sweep_that_finishes_last_never_moves_the_watermark_back() {
    // Arrange
    let app = spawn_flow_with(|c| c.sweep_interval_secs = 0).await;
    let (_sim, row, _) = new_halo_connection(&app).await;
    let start = app
        .store
        .sweep_watermark(row.id)
        .await
        .expect("watermark")
        .expect("set");

    // Act: a sweep that started later saves first; one that started earlier saves after it.
    app.store
        .save_sweep_watermark(row.id, start + 60_000)
        .await
        .expect("save");
    app.store
        .save_sweep_watermark(row.id, start + 1_000)
        .await
        .expect("save");

    // Assert
    let watermark = app.store.sweep_watermark(row.id).await.expect("watermark");
    assert_eq!(watermark, Some(start + 60_000));
}
