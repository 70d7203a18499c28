//! A deskproof wired to both simulators, as `deskproof demo` wires them, for flow tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use app::model::Role;
use deskproof::config::Config;
use deskproof::psa::connectwise::callback::deskproof_callback_url;
use deskproof::psa::{ContactId, TicketId};
use deskproof::sim::connectwise::SimNote;
use deskproof::sim::demo::{seed_world, DemoWorld};
use deskproof::startup::Application;
use deskproof::storage::{Store, TicketCase};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct FlowApp {
    pub url: String,
    pub store: Store,
    pub world: DemoWorld,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub db_url: String,
    /// A second connection to the same database, for reading rows the way an operator would.
    pub db: sqlx::AnyPool,
    server: Option<Running>,
}

/// A served deskproof and the switch that stops it.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

pub const TECH: (&str, &str) = ("casey", "correct horse battery");

/// How long tests wait for something the flow does in the background.
const PATIENCE: Duration = Duration::from_secs(20);

/// The configuration of every flow test: port 0, the given database and key, fast note retries.
pub fn flow_config(db_url: &str, dir: &std::path::Path) -> Config {
    let mut config = super::config_for(db_url, dir);
    config.note_retry_base_ms = 100;
    config
}

fn serve(app: Application) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

/// A fresh database, deskproof on port 0, and seeded simulators with fast push time-outs.
pub async fn spawn_flow() -> FlowApp {
    spawn_flow_with(|_| {}).await
}

/// [`spawn_flow`] with the configuration changed by `adjust` first.
pub async fn spawn_flow_with(adjust: impl FnOnce(&mut Config)) -> FlowApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = super::test_database(dir.path()).await;
    deskproof::telemetry::init(deskproof::config::LogFormat::Text);
    let mut config = flow_config(&db_url, dir.path());
    adjust(&mut config);
    let app = Application::build(config).await.expect("app builds");
    let url = app.url();
    let store = app.store.clone();
    let world = seed_world(&app).await.expect("demo world");
    world.duo.set_push_timeout(Duration::from_secs(2));
    world.duo.set_long_poll_wait(Duration::from_millis(300));
    let server = serve(app);
    deskproof::auth::create_user(&store, TECH.0, "Casey Tech", Role::Technician, TECH.1)
        .await
        .expect("technician");
    let client = super::new_client();
    sign_in(&client, &url).await;
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&db_url)
        .await
        .expect("second connection");
    FlowApp {
        url,
        store,
        world,
        client,
        dir,
        db_url,
        db,
        server: Some(server),
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

impl FlowApp {
    pub async fn new_ticket(&self, contact: ContactId, summary: &str) -> TicketId {
        let created = self
            .world
            .cw
            .create_ticket(Some(self.world.company), Some(contact), summary)
            .await;
        created.id
    }

    /// Stops deskproof: the server and its background workers. The database, the master key
    /// beside it and both simulators stay.
    pub async fn stop(&mut self) {
        let running = self.server.take().expect("deskproof is running");
        let _ = running.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), running.task)
            .await
            .expect("deskproof stops within 10 s")
            .expect("the server task ends cleanly")
            .expect("the server ends without error");
    }

    /// Starts a new deskproof on the same database (and so the same master key), without
    /// seeding anything: the stored connection and Duo account still point at the simulators.
    pub async fn start_again(&mut self) {
        assert!(self.server.is_none(), "stop deskproof first");
        let app = Application::build(flow_config(&self.db_url, self.dir.path()))
            .await
            .expect("app builds again");
        self.url = app.url();
        self.store = app.store.clone();
        self.world.cw.set_callback_url(Some(deskproof_callback_url(
            &self.url,
            self.world.connection_id,
        )));
        let w = &self.world;
        w.autotask.sim.set_webhook_url(Some(format!(
            "{}/hooks/autotask/{}",
            self.url, w.autotask.connection_id
        )));
        w.freshdesk.sim.set_webhook_url(Some(format!(
            "{}/hooks/freshdesk/{}",
            self.url, w.freshdesk.connection_id
        )));
        w.halo.sim.set_webhook_url(Some(format!(
            "{}/hooks/halopsa/{}",
            self.url, w.halo.connection_id
        )));
        self.server = Some(serve(app));
        sign_in(&self.client, &self.url).await;
    }

    /// Waits until the ticket has a note containing `needle`; returns all its notes.
    pub async fn wait_for_note(&self, ticket: TicketId, needle: &str) -> Vec<SimNote> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let notes = self.world.cw.notes(ticket);
            if notes.iter().any(|n| n.text.contains(needle)) {
                return notes;
            }
            assert!(
                Instant::now() < deadline,
                "no note containing {needle:?} on ticket {ticket}; notes: {:#?}",
                notes.iter().map(|n| &n.text).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The texts of the ticket's notes, oldest first.
    pub fn note_texts(&self, ticket: TicketId) -> Vec<String> {
        self.world
            .cw
            .notes(ticket)
            .into_iter()
            .map(|n| n.text)
            .collect()
    }

    /// Waits until no background job is left to run (nothing queued, nothing being polled).
    pub async fn wait_until_idle(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let open = self
                .count("SELECT COUNT(*) FROM jobs WHERE done = FALSE")
                .await;
            if open == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{open} background jobs are still open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a `SELECT COUNT(*) …` on the database.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The stored ticket case of a PSA ticket, read fresh.
    pub async fn case_of(&self, ticket: TicketId) -> Option<TicketCase> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM tickets WHERE ticket_id = $1")
            .bind(ticket.to_string())
            .fetch_optional(&self.db)
            .await
            .expect("tickets query");
        match id {
            Some(id) => self.store.ticket_case(id).await.expect("ticket case"),
            None => None,
        }
    }

    /// The token of the newest verification link on the ticket.
    pub async fn link_token(&self, ticket: TicketId) -> String {
        let notes = self.wait_for_note(ticket, "/verify/").await;
        let text = &notes
            .iter()
            .rev()
            .find(|n| n.text.contains("/verify/"))
            .expect("link")
            .text;
        token_in(text).expect("link")
    }

    pub async fn call(&self, function: &str, token: &str) -> (u16, serde_json::Value) {
        let res = self
            .client
            .post(format!("{}/api/{function}", self.url))
            .header("Accept", "application/json")
            .form(&[("token", token)])
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Opens the link and sends the push as the technician; returns the attempt.
    pub async fn send_push(&self, token: &str) -> serde_json::Value {
        let (status, attempt) = self.call("send_push", token).await;
        assert_eq!(status, 200, "{attempt}");
        attempt
    }

    /// The ticket's attempts, newest first, as the verification page lists them.
    pub async fn attempts(&self, token: &str) -> Vec<serde_json::Value> {
        let (status, rows) = self.call("attempts", token).await;
        assert_eq!(status, 200, "{rows}");
        rows.as_array().cloned().unwrap_or_default()
    }

    /// Waits until the newest attempt has left `matching` and `pushed`; returns it.
    pub async fn wait_for_outcome(&self, token: &str) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let rows = self.attempts(token).await;
            if let Some(newest) = rows.first() {
                if newest["state"] != "matching" && newest["state"] != "pushed" {
                    return newest.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no outcome yet; attempts: {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The token of the first verification link in a note's text.
pub fn token_in(text: &str) -> Option<String> {
    let start = text.find("/verify/")? + "/verify/".len();
    text[start..]
        .split_whitespace()
        .next()
        .map(|t| t.trim_end_matches(['.', ',', ')']).to_owned())
}

/// The claims a link token carries, unchecked: `(case id, organization id, expires at)`.
pub fn claims_in(token: &str) -> (i64, i64, i64) {
    use base64::Engine;
    let payload = token.split('.').next().expect("payload");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64 payload");
    let payload = String::from_utf8(payload).expect("text payload");
    let parts: Vec<i64> = payload
        .split('.')
        .map(|p| p.parse().expect("number"))
        .collect();
    assert!(matches!(parts.len(), 3 | 4), "{payload}");
    (parts[0], parts[1], parts[2])
}

/// Polls `read` until `done` holds for what it returns (at most 20 s); returns that value.
pub async fn wait_until<T: std::fmt::Debug>(
    what: &str,
    mut read: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = read();
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: still {value:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl FlowApp {
    /// Runs a `SELECT COUNT(*) …` with one bound integer (a connection id).
    pub async fn count_for(&self, sql: &str, connection_id: i64) -> i64 {
        sqlx::query_scalar(sql)
            .bind(connection_id)
            .fetch_one(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Inbound deliveries, ticket cases and notes stored for one connection.
    pub async fn stored_for(&self, connection_id: i64) -> (i64, i64, i64) {
        (
            self.count_for(
                "SELECT COUNT(*) FROM inbound_events WHERE connection_id = $1",
                connection_id,
            )
            .await,
            self.count_for(
                "SELECT COUNT(*) FROM tickets WHERE connection_id = $1",
                connection_id,
            )
            .await,
            self.count_for(
                "SELECT COUNT(*) FROM notes n JOIN tickets t ON t.id = n.ticket_ref \
                 WHERE t.connection_id = $1",
                connection_id,
            )
            .await,
        )
    }

    /// Sends the push for a link token, has `duo_user` approve it and checks the attempt
    /// ends approved.
    pub async fn push_and_approve(&self, token: &str, duo_user: &str) {
        let attempt = self.send_push(token).await;
        assert_eq!(attempt["state"], "pushed", "{attempt}");
        self.world
            .duo
            .wait_for_push(duo_user, Duration::from_secs(5))
            .await
            .expect("a push reached the phone");
        self.world
            .duo
            .approve_latest(duo_user)
            .expect("pending push");
        assert_eq!(self.wait_for_outcome(token).await["state"], "approved");
    }
}

/// The admin account [`FlowApp::admin_client`] signs in with.
pub const FLOW_ADMIN: (&str, &str) = ("robin.admin", "admin password 4567");

impl FlowApp {
    /// A client signed in as an admin (created on first use).
    pub async fn admin_client(&self) -> reqwest::Client {
        if self
            .store
            .user_by_username(FLOW_ADMIN.0)
            .await
            .expect("user")
            .is_none()
        {
            deskproof::auth::create_user(
                &self.store,
                FLOW_ADMIN.0,
                "Robin Admin",
                Role::Admin,
                FLOW_ADMIN.1,
            )
            .await
            .expect("admin");
        }
        let client = super::new_client();
        let res = client
            .post(format!("{}/api/sign_in", self.url))
            .header("Accept", "application/json")
            .form(&[("username", FLOW_ADMIN.0), ("password", FLOW_ADMIN.1)])
            .send()
            .await
            .expect("sign in");
        assert_eq!(res.status(), 200);
        client
    }

    /// Calls an admin server function with form fields; returns status and JSON body.
    pub async fn admin_call(
        &self,
        client: &reqwest::Client,
        function: &str,
        form: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let res = client
            .post(format!("{}/api/admin/{function}", self.url))
            .header("Accept", "application/json")
            .form(form)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
}
