//! `deskproof demo`: the whole flow on this machine with the built-in simulators.
use std::time::Duration;

use anyhow::Context;
use app::model::Role;

use crate::config::Config;
use crate::psa::source::{ConnectWiseSecrets, ConnectWiseSettings};
use crate::psa::{CompanyId, ContactId};
use crate::sim::connectwise::ConnectWiseSim;
use crate::sim::duo::{DuoSim, SimUser};
use crate::startup::Application;
use crate::storage::{DuoAccountRow, NewPsaConnection, Store};
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

/// The simulated Duo account and ConnectWise tenant, wired to a running deskproof.
pub struct DemoWorld {
    pub duo: DuoSim,
    pub duo_url: String,
    pub cw: ConnectWiseSim,
    pub connection_id: i64,
    pub organization_id: i64,
    pub company: CompanyId,
    pub contacts: DemoContacts,
}

/// The Contoso contacts in the ConnectWise simulator, one per interesting case.
pub struct DemoContacts {
    /// Matches one Duo user by e-mail, with a push phone.
    pub alex: ContactId,
    pub megan: ContactId,
    /// Duo user in bypass status.
    pub sam: ContactId,
    /// Duo user without a push-capable device.
    pub lee: ContactId,
    /// Duo user not enrolled.
    pub nina: ContactId,
    /// Two Duo users share this name and the contact has no e-mail.
    pub chris: ContactId,
    /// No last name in the PSA.
    pub pat: ContactId,
    /// No Duo user at all.
    pub robin: ContactId,
}

/// Starts both simulators, seeds them and stores the organization, its Duo keys, the
/// ConnectWise connection and the company mapping in deskproof.
pub async fn seed_world(app: &Application) -> anyhow::Result<DemoWorld> {
    let (duo, duo_url) = DuoSim::start()
        .await
        .context("starting the Duo simulator")?;
    duo.seed_contoso();
    for n in 1..=2 {
        duo.add_user(
            SimUser::new(&format!("chris.doe{n}"))
                .name("Chris", "Doe")
                .push_phone(&format!("+1555555020{n}")),
        );
    }
    let cw = ConnectWiseSim::start()
        .await
        .context("starting the ConnectWise simulator")?;
    let company = cw.add_company("Contoso");
    let c = Some(company);
    let contacts = DemoContacts {
        alex: cw.add_contact_at(c, "Alex", "Example", "alex.example@contoso.example"),
        megan: cw.add_contact_at(c, "Megan", "Bowen", "megan.bowen@contoso.example"),
        sam: cw.add_contact_at(c, "Sam", "Sample", "sam.sample@contoso.example"),
        lee: cw.add_contact_at(c, "Lee", "Landline", "lee.landline@contoso.example"),
        nina: cw.add_contact_at(c, "Nina", "New", "nina.new@contoso.example"),
        chris: cw.add_contact_at(c, "Chris", "Doe", ""),
        pat: cw.add_contact_at(c, "Pat", "", "pat@contoso.example"),
        robin: cw.add_contact_at(c, "Robin", "Nobody", "robin@contoso.example"),
    };

    let store = &app.store;
    let key = &app.flow.key;
    let organization_id = store.create_organization("Contoso").await?;
    let (auth_keys, admin_keys) = (duo.auth_keys(), duo.admin_keys());
    store
        .save_duo_account(&DuoAccountRow {
            organization_id,
            api_host: auth_keys.api_host.clone(),
            auth_ikey: auth_keys.ikey.clone(),
            auth_skey_sealed: key.seal(auth_keys.skey.expose()),
            admin_ikey: admin_keys.ikey.clone(),
            admin_skey_sealed: key.seal(admin_keys.skey.expose()),
        })
        .await?;
    let cw_config = cw.client_config();
    let settings = ConnectWiseSettings {
        base_url: cw_config.base_url.to_string(),
        company_id: cw_config.company_id.clone(),
        public_key: cw_config.public_key.clone(),
        client_id: cw_config.client_id.clone(),
    };
    let secrets = serde_json::to_string(&ConnectWiseSecrets {
        private_key: cw_config.private_key.expose().to_owned(),
    })?;
    let connection_id = store
        .create_psa_connection(&NewPsaConnection {
            kind: "connectwise".into(),
            name: "ConnectWise (simulator)".into(),
            settings: serde_json::to_value(settings)?,
            secrets_sealed: key.seal(&secrets),
        })
        .await?;
    store
        .map_company(connection_id, &company.to_string(), organization_id)
        .await?;
    // ConnectWise appends the record id to the URL, so it ends in a query parameter.
    cw.set_callback_url(Some(format!(
        "{}/hooks/connectwise/{connection_id}?recordId=",
        app.url()
    )));
    Ok(DemoWorld {
        duo,
        duo_url,
        cw,
        connection_id,
        organization_id,
        company,
        contacts,
    })
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = storage::connect(&config.database_url).await?;
    seed_accounts(&store).await?;
    let app = Application::with_store(config, store).await?;
    let world = seed_world(&app).await?;
    if std::env::var_os("DESKPROOF_DEMO_FAST").is_some() {
        world.duo.set_push_timeout(Duration::from_secs(8));
    }
    // A second client company that is not set up yet: an admin adds it in Settings.
    let fabrikam = world.cw.add_company("Fabrikam");
    world.cw.add_contact_at(
        Some(fabrikam),
        "Adele",
        "Vance",
        "adele.vance@fabrikam.example",
    );
    world.duo.add_user(
        SimUser::new("adele.vance")
            .name("Adele", "Vance")
            .email("adele.vance@fabrikam.example")
            .push_phone("+15555550301"),
    );
    let url = app.url();
    println!();
    println!("deskproof demo is running at {url}");
    println!("  sign in:       {url}/signin");
    println!("  admin:         {} / {}", DEMO_ADMIN.0, DEMO_ADMIN.1);
    println!(
        "  technician:    {} / {}",
        DEMO_TECHNICIAN.0, DEMO_TECHNICIAN.1
    );
    println!();
    println!("ConnectWise simulator (company Contoso):");
    println!("  new ticket:    {}/sim/new-ticket", world.cw.url());
    println!("  tickets:       {}/sim/tickets/{{id}}", world.cw.url());
    println!();
    println!("Duo simulator phones:");
    for user in [
        "alex.example",
        "megan.bowen",
        "sam.sample",
        "lee.landline",
        "nina.new",
        "chris.doe1",
        "chris.doe2",
        "adele.vance",
    ] {
        println!("  phone {user}: {}", world.duo.phone_url(user));
    }
    println!();
    println!("Not set up yet: ConnectWise company Fabrikam (company id {fabrikam}, contact");
    println!("Adele Vance). Set it up in Settings with the Duo simulator's keys:");
    let (auth, admin) = (world.duo.auth_keys(), world.duo.admin_keys());
    println!("  duo api host:   {}", auth.api_host);
    println!("  duo auth ikey:  {}", auth.ikey);
    println!("  duo auth skey:  {}", auth.skey.expose());
    println!("  duo admin ikey: {}", admin.ikey);
    println!("  duo admin skey: {}", admin.skey.expose());
    println!();
    println!(
        "Contacts: Alex Example and Megan Bowen verify; Sam Sample is in bypass; Lee Landline"
    );
    println!("has no push device; Nina New is not enrolled; Chris Doe matches two Duo users;");
    println!("Pat has no last name; Robin Nobody has no Duo user.");
    println!();
    app.run().await?;
    drop(world);
    Ok(())
}
