//! `deskproof demo`: the whole flow on this machine with the built-in simulators.
use anyhow::Context;
use app::model::Role;

use crate::config::Config;
use crate::startup::Application;
use crate::storage::Store;
use crate::{auth, storage};

pub const DEMO_ADMIN: (&str, &str) = ("admin", "demo-admin-password");
pub const DEMO_TECHNICIAN: (&str, &str) = ("tech", "demo-tech-password");

/// Creates the demo accounts unless they exist.
pub async fn seed_accounts(store: &Store) -> anyhow::Result<()> {
    for ((username, password), role, name) in [
        (DEMO_ADMIN, Role::Admin, "Demo Admin"),
        (DEMO_TECHNICIAN, Role::Technician, "Jordan Tech"),
    ] {
        if store.user_by_username(username).await?.is_none() {
            auth::create_user(store, username, name, role, password)
                .await
                .with_context(|| format!("creating demo user {username}"))?;
        }
    }
    Ok(())
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = storage::connect(&config.database_url).await?;
    seed_accounts(&store).await?;
    let app = Application::with_store(config, store).await?;
    let url = app.url();
    println!();
    println!("deskproof demo is running at {url}");
    println!("  sign in:     {url}/signin");
    println!("  admin:       {} / {}", DEMO_ADMIN.0, DEMO_ADMIN.1);
    println!(
        "  technician:  {} / {}",
        DEMO_TECHNICIAN.0, DEMO_TECHNICIAN.1
    );
    println!();
    app.run().await?;
    Ok(())
}
