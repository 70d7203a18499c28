//! Shared test setup: a deskproof on port 0 with its own database: a SQLite file, or a fresh
//! database on the PostgreSQL server named by `DESKPROOF_TEST_POSTGRES_URL` when that is set.
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

/// The PostgreSQL server the storage and flow tests also run against, if any.
pub fn postgres_server() -> Option<String> {
    std::env::var("DESKPROOF_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .map(|url| url.trim_end_matches('/').to_owned())
}

/// A new empty database for one test: on the PostgreSQL test server when one is named,
/// otherwise a SQLite file in `dir`.
pub async fn test_database(dir: &std::path::Path) -> String {
    match postgres_server() {
        Some(server) => {
            use sqlx::Connection;
            let name = format!("deskproof_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
                .await
                .expect("the PostgreSQL test server answers");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .expect("create a test database");
            format!("{server}/{name}")
        }
        None => format!("sqlite://{}/deskproof.db", dir.display()),
    }
}

/// A configuration on `db` with the master key file in `dir`, so restarts find the same key.
pub fn config_for(db: &str, dir: &std::path::Path) -> Config {
    let mut config = Config::for_database(db);
    config.master_key_file = Some(dir.join("master.key"));
    config
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = test_database(dir.path()).await;
    let config = config_for(&db, dir.path());
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

/// A client that keeps cookies, like a browser, and does not follow redirects. Like a browser
/// on deskproof's own pages it says its requests are `Sec-Fetch-Site: same-origin`; a request
/// may set its own `Sec-Fetch-Site` or `Origin` to play another site.
pub fn new_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "sec-fetch-site",
        reqwest::header::HeaderValue::from_static("same-origin"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
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
