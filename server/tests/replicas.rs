//! deskproof as separate processes: several replicas on one PostgreSQL database, and a
//! process killed with SIGKILL while work is in flight.
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::model::Role;
use deskproof::crypto::MasterKey;
use deskproof::psa::connectwise::callback::deskproof_callback_url;
use deskproof::psa::{ContactId, TicketId};
use deskproof::sim::demo::{seed_world_in, DemoWorld};
use deskproof::sim::duo::SimUser;
use deskproof::storage::{self, Store};
use support::flow::{token_in, TECH};
use tokio::sync::Semaphore;

/// How long a claimed job stays with a process here: short, so the test sees a takeover.
const LEASE_SECS: &str = "4";
const PATIENCE: Duration = Duration::from_secs(90);

/// One `deskproof serve` process.
struct Process {
    child: Child,
    url: String,
}

impl Process {
    async fn start(db_url: &str, dir: &Path, name: &str) -> Process {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_deskproof"))
            .arg("serve")
            .env("DESKPROOF_BIND", format!("127.0.0.1:{port}"))
            .env("DESKPROOF_DATABASE_URL", db_url)
            .env("DESKPROOF_MASTER_KEY_FILE", dir.join("master.key"))
            .env("DESKPROOF_JOB_LEASE_SECS", LEASE_SECS)
            .env("DESKPROOF_NOTE_RETRY_BASE_MS", "100")
            .env("DESKPROOF_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("deskproof starts");
        let process = Process { child, url };
        process.wait_until_healthy().await;
        process
    }

    async fn wait_until_healthy(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = client.get(format!("{}/healthz", self.url)).send().await {
                if res.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} never became healthy",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no shutdown, no lease released, nothing flushed.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// A database with the demo organization, Duo account, ConnectWise connection and a
/// technician, plus its running simulators.
async fn seeded(dir: &Path) -> (String, Store, DemoWorld) {
    let db_url = support::test_database(dir).await;
    let store = storage::connect(&db_url).await.expect("database");
    let key = MasterKey::load_or_create(&dir.join("master.key")).expect("master key");
    let world = seed_world_in(&store, &key, "http://127.0.0.1:9")
        .await
        .expect("demo world");
    world.duo.set_long_poll_wait(Duration::from_millis(300));
    world.duo.set_push_timeout(Duration::from_secs(120));
    deskproof::auth::create_user(&store, TECH.0, "Casey Tech", Role::Technician, TECH.1)
        .await
        .expect("technician");
    (db_url, store, world)
}

fn point_callbacks_at(world: &DemoWorld, process: &Process) {
    world.cw.set_callback_url(Some(deskproof_callback_url(
        &process.url,
        world.connection_id,
    )));
}

fn count_notes(world: &DemoWorld, ticket: TicketId, needle: &str) -> usize {
    world
        .cw
        .notes(ticket)
        .iter()
        .filter(|n| n.text.contains(needle))
        .count()
}

/// Waits until `done` holds, re-checking every 200 ms; panics with `what` after [`PATIENCE`].
async fn eventually(what: impl Fn() -> String, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn sign_in(client: &reqwest::Client, url: &str) {
    let res = client
        .post(format!("{url}/api/sign_in"))
        .header("Accept", "application/json")
        .form(&[("username", TECH.0), ("password", TECH.1)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), 200);
}

async fn send_push(client: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let res = client
        .post(format!("{url}/api/send_push"))
        .header("Accept", "application/json")
        .form(&[("token", token)])
        .send()
        .await
        .expect("send_push");
    let status = res.status();
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn two_replicas_share_the_work_and_one_killed_midway_loses_nothing() {
    let Some(_) = support::postgres_server() else {
        eprintln!("skipped: set DESKPROOF_TEST_POSTGRES_URL (make test does) to run it");
        return;
    };
    // Arrange: one database, two processes, twenty contacts who each get one push.
    let dir = tempfile::tempdir().expect("temp dir");
    let (db_url, _store, world) = seeded(dir.path()).await;
    let mut a = Process::start(&db_url, dir.path(), "a").await;
    let b = Process::start(&db_url, dir.path(), "b").await;
    let pushers: Vec<(ContactId, String)> = (0..20)
        .map(|i| {
            let username = format!("replica{i}");
            let email = format!("{username}@contoso.example");
            world.duo.add_user(
                SimUser::new(&username)
                    .name("Replica", &format!("Tester{i}"))
                    .email(&email)
                    .push_phone(&format!("+1555010{i:04}")),
            );
            let contact = world.cw.add_contact_at(
                Some(world.company),
                "Replica",
                &format!("Tester{i}"),
                &email,
            );
            (contact, username)
        })
        .collect();
    let client = support::new_client();
    // Signed in through one replica; the session is in the database, so both know it.
    sign_in(&client, &a.url).await;

    // Act 1: the first hundred tickets, alternating between the replicas.
    let mut tickets = Vec::new();
    for i in 0..100 {
        point_callbacks_at(&world, if i % 2 == 0 { &a } else { &b });
        let contact = pushers
            .get(i)
            .map(|(c, _)| *c)
            .unwrap_or(world.contacts.alex);
        let created = world
            .cw
            .create_ticket(Some(world.company), Some(contact), &format!("Ticket {i}"))
            .await;
        tickets.push(created.id);
    }
    // Twenty verifications, clicked half on each replica.
    let mut tokens = Vec::new();
    for (i, ticket) in tickets.iter().take(pushers.len()).enumerate() {
        eventually(
            || format!("no link note on ticket {ticket}"),
            || count_notes(&world, *ticket, "/verify/") > 0,
        )
        .await;
        let text = world
            .cw
            .notes(*ticket)
            .into_iter()
            .find(|n| n.text.contains("/verify/"))
            .expect("link note")
            .text;
        let token = token_in(&text).expect("token in the link");
        let replica = if i % 2 == 0 { &a.url } else { &b.url };
        let attempt = send_push(&client, replica, &token).await;
        assert_eq!(attempt["state"], "pushed", "{attempt}");
        tokens.push(token);
    }
    // Half the phones answer, then one replica dies in the middle of the work: while it
    // holds some of it.
    for (_, username) in pushers.iter().take(10) {
        assert!(world.duo.approve_latest(username).is_some(), "{username}");
    }
    let db = sqlx::PgPool::connect(&db_url).await.expect("database");
    let held_by_a = format!("pid{}-%", a.child.id());
    let held = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM jobs WHERE NOT done AND leased_by LIKE $1",
        )
        .bind(&held_by_a)
        .fetch_one(&db)
        .await
        .expect("count leases")
    };
    let deadline = Instant::now() + PATIENCE;
    while held().await == 0 {
        assert!(Instant::now() < deadline, "replica A never held a job");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill();
    // SIGKILL releases nothing: the jobs A held stay leased to it until the lease runs out.
    let orphaned = held().await;
    assert!(orphaned > 0, "replica A held nothing when it died");

    // Act 2: the second hundred tickets reach the survivor; the other phones answer.
    point_callbacks_at(&world, &b);
    for i in 100..200 {
        let created = world
            .cw
            .create_ticket(
                Some(world.company),
                Some(world.contacts.alex),
                &format!("Ticket {i}"),
            )
            .await;
        tickets.push(created.id);
    }
    for (_, username) in pushers.iter().skip(10) {
        eventually(
            || format!("no pending push for {username}"),
            || !world.duo.pending_pushes(username).is_empty(),
        )
        .await;
        assert!(world.duo.approve_latest(username).is_some(), "{username}");
    }

    // Assert: every ticket has its link note and every push its outcome note, once each.
    eventually(
        || {
            let missing: Vec<_> = tickets
                .iter()
                .filter(|t| count_notes(&world, **t, "/verify/") == 0)
                .collect();
            format!("tickets without a link note: {missing:?}")
        },
        || {
            tickets
                .iter()
                .all(|t| count_notes(&world, *t, "/verify/") > 0)
        },
    )
    .await;
    eventually(
        || "not every push has its outcome note".to_owned(),
        || {
            tickets
                .iter()
                .take(pushers.len())
                .all(|t| count_notes(&world, *t, "has verified this ticket") > 0)
        },
    )
    .await;
    // Anything still running would show up as a second note now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, ticket) in tickets.iter().enumerate() {
        let links = count_notes(&world, *ticket, "/verify/");
        assert_eq!(links, 1, "ticket {i} ({ticket}) has {links} link notes");
        if i < pushers.len() {
            let outcomes = count_notes(&world, *ticket, "has verified this ticket");
            assert_eq!(outcomes, 1, "ticket {i} has {outcomes} outcome notes");
        }
    }
    assert_eq!(world.duo.pushes().len(), pushers.len(), "one push each");
    assert_eq!(held().await, 0, "the survivor took over every job A held");
    eprintln!("replica B took over {orphaned} jobs that replica A held when it was killed");
    drop(b);
}

#[tokio::test]
async fn every_callback_answered_200_before_a_sigkill_is_processed_after_restart() {
    // Arrange: one process taking a burst of a thousand ticket callbacks.
    let dir = tempfile::tempdir().expect("temp dir");
    let (db_url, _store, world) = seeded(dir.path()).await;
    let mut process = Process::start(&db_url, dir.path(), "first").await;
    point_callbacks_at(&world, &process);
    let world = Arc::new(world);
    let gate = Arc::new(Semaphore::new(32));
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let (world, gate) = (world.clone(), gate.clone());
        burst.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let created = world
                .cw
                .create_ticket(
                    Some(world.company),
                    Some(world.contacts.alex),
                    &format!("Burst {i}"),
                )
                .await;
            created.id
        });
    }

    // Act: SIGKILL once about a third of the callbacks were answered, then start again.
    let accepted = |world: &DemoWorld| {
        world
            .cw
            .deliveries()
            .iter()
            .filter(|d| d.status == Some(200))
            .count()
    };
    eventually(
        || "the burst never got going".to_owned(),
        || accepted(&world) >= 300,
    )
    .await;
    process.kill();
    while burst.join_next().await.is_some() {}
    let deliveries = world.cw.deliveries();
    let answered: HashMap<i64, u16> = deliveries
        .iter()
        .filter_map(|d| d.status.map(|s| (d.ticket_id, s)))
        .collect();
    let ok: Vec<TicketId> = answered
        .iter()
        .filter(|(_, status)| **status == 200)
        .map(|(id, _)| TicketId(*id))
        .collect();
    let refused = deliveries.iter().filter(|d| d.status.is_none()).count();
    assert!(ok.len() >= 300, "{} accepted", ok.len());
    assert!(refused > 0, "the kill came after the whole burst");
    let _restarted = Process::start(&db_url, dir.path(), "second").await;

    // Assert: each accepted callback's ticket gets exactly one link note.
    eventually(
        || {
            let missing = ok
                .iter()
                .filter(|t| count_notes(&world, **t, "/verify/") == 0)
                .count();
            format!(
                "{missing} of {} accepted tickets have no link note",
                ok.len()
            )
        },
        || ok.iter().all(|t| count_notes(&world, *t, "/verify/") > 0),
    )
    .await;
    for ticket in &ok {
        assert_eq!(
            count_notes(&world, *ticket, "/verify/"),
            1,
            "ticket {ticket}"
        );
    }
    eprintln!(
        "{} callbacks answered 200 before the kill, {refused} refused after it; all processed",
        ok.len()
    );
}
