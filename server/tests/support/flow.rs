//! A deskproof wired to both simulators, as `deskproof demo` wires them, for flow tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use app::model::Role;
use deskproof::config::Config;
use deskproof::psa::{ContactId, TicketId};
use deskproof::sim::connectwise::SimNote;
use deskproof::sim::demo::{seed_world, DemoWorld};
use deskproof::startup::Application;
use deskproof::storage::Store;

pub struct FlowApp {
    pub url: String,
    pub store: Store,
    pub world: DemoWorld,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub db_url: String,
}

pub const TECH: (&str, &str) = ("casey", "correct horse battery");

/// A fresh database, deskproof on port 0, and seeded simulators with fast push time-outs.
pub async fn spawn_flow() -> FlowApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = format!("sqlite://{}/deskproof.db", dir.path().display());
    deskproof::telemetry::init(deskproof::config::LogFormat::Text);
    let app = Application::build(Config::for_database(&db_url))
        .await
        .expect("app builds");
    let url = app.url();
    let store = app.store.clone();
    let world = seed_world(&app).await.expect("demo world");
    world.duo.set_push_timeout(Duration::from_secs(2));
    world.duo.set_long_poll_wait(Duration::from_millis(300));
    tokio::spawn(app.run());
    deskproof::auth::create_user(&store, TECH.0, "Casey Tech", Role::Technician, TECH.1)
        .await
        .expect("technician");
    let client = super::new_client();
    let res = client
        .post(format!("{url}/api/sign_in"))
        .header("Accept", "application/json")
        .form(&[("username", TECH.0), ("password", TECH.1)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), 200);
    FlowApp {
        url,
        store,
        world,
        client,
        dir,
        db_url,
    }
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

    /// Waits until the ticket has a note containing `needle`; returns all its notes.
    pub async fn wait_for_note(&self, ticket: TicketId, needle: &str) -> Vec<SimNote> {
        let deadline = Instant::now() + Duration::from_secs(20);
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

    /// The token of the newest verification link on the ticket.
    pub async fn link_token(&self, ticket: TicketId) -> String {
        let notes = self.wait_for_note(ticket, "/verify/").await;
        let text = &notes
            .iter()
            .rev()
            .find(|n| n.text.contains("/verify/"))
            .expect("link")
            .text;
        let start = text.find("/verify/").expect("link") + "/verify/".len();
        text[start..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
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
}
