//! Shared test setup: a deskproof on port 0 with its own SQLite file.
#![allow(dead_code)]

pub mod flow;

use app::model::Role;
use deskproof::config::Config;
use deskproof::startup::Application;
use deskproof::storage::Store;

pub struct TestApp {
    pub url: String,
    pub store: Store,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub const TECH: (&str, &str) = ("casey", "correct horse battery");
pub const ADMIN: (&str, &str) = ("morgan", "admin password 123");

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}/deskproof.db", dir.path().display());
    let config = Config::for_database(db);
    let app = Application::build(config).await.expect("app builds");
    let url = app.url();
    let store = app.store.clone();
    tokio::spawn(app.run());
    deskproof::auth::create_user(&store, TECH.0, "Casey Tech", Role::Technician, TECH.1)
        .await
        .expect("technician");
    deskproof::auth::create_user(&store, ADMIN.0, "Morgan Admin", Role::Admin, ADMIN.1)
        .await
        .expect("admin");
    TestApp {
        url,
        store,
        client: new_client(),
        dir,
    }
}

/// A client that keeps cookies, like a browser, and does not follow redirects.
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl TestApp {
    /// Calls the sign-in server function the way the page's form does.
    pub async fn sign_in(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/api/sign_in", self.url))
            .header("Accept", "application/json")
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("request")
    }

    pub async fn whoami(&self) -> serde_json::Value {
        self.client
            .post(format!("{}/api/whoami", self.url))
            .header("Accept", "application/json")
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }
}
