//! `deskproof demo`: the whole flow on this machine with the built-in simulators.
use std::time::Duration;

use anyhow::Context;
use app::model::Role;

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::psa::connectwise::callback::deskproof_callback_url;
use crate::psa::source::{ConnectWiseSecrets, ConnectWiseSettings};
use crate::psa::{CompanyId, ContactId, PsaKind};
use crate::sim::autotask::AutotaskSim;
use crate::sim::connectwise::ConnectWiseSim;
use crate::sim::duo::{DuoSim, SimUser};
use crate::sim::freshdesk::FreshdeskSim;
use crate::sim::halopsa::HaloSim;
use crate::startup::Application;
use crate::storage::{DuoAccountRow, NewPsaConnection, Store};
use crate::{auth, storage};

pub const DEMO_ADMIN: (&str, &str) = ("admin", "demo-admin-password");
pub const DEMO_TECHNICIAN: (&str, &str) = ("tech", "demo-tech-password");
/// The ConnectWise member signed in to the simulated ticket screen: identifier and member hash.
pub const DEMO_MEMBER: (&str, &str) = ("jtech", "sim-member-hash-7f3c9a");

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
    /// One more tenant per PSA, each its own organization on the same Duo account.
    pub autotask: Tenant<AutotaskSim>,
    pub freshdesk: Tenant<FreshdeskSim>,
    pub halo: Tenant<HaloSim>,
}

/// A simulated PSA tenant stored in deskproof as its own organization, with company Contoso
/// mapped to it and the organization's Duo account on the Duo simulator.
pub struct Tenant<S> {
    pub sim: S,
    pub connection_id: i64,
    pub organization_id: i64,
    /// Contoso in this PSA.
    pub company: CompanyId,
    /// Matches Duo user `alex.example` by e-mail, with a push phone.
    pub alex: ContactId,
    /// Matches Duo user `megan.bowen` by e-mail, with a push phone.
    pub megan: ContactId,
}

/// Stores an organization with the Duo simulator's keys, a PSA connection and the mapping of
/// `company` to the organization. Returns `(connection id, organization id)`.
#[allow(clippy::too_many_arguments)]
async fn store_tenant(
    store: &Store,
    key: &MasterKey,
    duo: &DuoSim,
    kind: PsaKind,
    settings: serde_json::Value,
    secrets_json: &str,
    company: CompanyId,
) -> anyhow::Result<(i64, i64)> {
    let organization_id = store
        .create_organization(&format!("Contoso ({})", kind.product()))
        .await?;
    let (auth_keys, admin_keys) = (duo.auth_keys(), duo.admin_keys());
    store
        .save_duo_account(&DuoAccountRow::direct(
            organization_id,
            &auth_keys.api_host,
            &auth_keys.ikey,
            key.seal(auth_keys.skey.expose()),
            &admin_keys.ikey,
            key.seal(admin_keys.skey.expose()),
        ))
        .await?;
    let connection_id = store
        .create_psa_connection(&NewPsaConnection {
            kind: kind.as_str().into(),
            name: format!("{} (simulator)", kind.product()),
            settings,
            secrets_sealed: key.seal(secrets_json),
        })
        .await?;
    store
        .map_company(connection_id, &company.to_string(), organization_id)
        .await?;
    Ok((connection_id, organization_id))
}

/// Starts the Autotask, Freshdesk and HaloPSA simulators and stores one tenant for each,
/// with their webhooks pointed at deskproof at `url`.
pub async fn seed_other_psas(
    store: &Store,
    key: &MasterKey,
    duo: &DuoSim,
    url: &str,
) -> anyhow::Result<(Tenant<AutotaskSim>, Tenant<FreshdeskSim>, Tenant<HaloSim>)> {
    let at = AutotaskSim::start()
        .await
        .context("starting the Autotask simulator")?;
    let company = at.add_company("Contoso");
    let alex = at.add_contact(company, "Alex", "Example", "alex.example@contoso.example");
    let megan = at.add_contact(company, "Megan", "Bowen", "megan.bowen@contoso.example");
    let (settings, secrets) = at.connection();
    let (connection_id, organization_id) = store_tenant(
        store,
        key,
        duo,
        PsaKind::Autotask,
        serde_json::to_value(settings)?,
        &serde_json::to_string(&secrets)?,
        company,
    )
    .await?;
    at.set_webhook_url(Some(format!("{url}/hooks/autotask/{connection_id}")));
    let autotask = Tenant {
        sim: at,
        connection_id,
        organization_id,
        company,
        alex,
        megan,
    };

    let fd = FreshdeskSim::start()
        .await
        .context("starting the Freshdesk simulator")?;
    let company = fd.add_company("Contoso");
    let alex = fd.add_contact(company, "Alex Example", "alex.example@contoso.example");
    let megan = fd.add_contact(company, "Megan Bowen", "megan.bowen@contoso.example");
    let (settings, secrets) = fd.connection();
    let (connection_id, organization_id) = store_tenant(
        store,
        key,
        duo,
        PsaKind::Freshdesk,
        serde_json::to_value(settings)?,
        &serde_json::to_string(&secrets)?,
        company,
    )
    .await?;
    fd.set_webhook_url(Some(format!("{url}/hooks/freshdesk/{connection_id}")));
    let freshdesk = Tenant {
        sim: fd,
        connection_id,
        organization_id,
        company,
        alex,
        megan,
    };

    let halo = HaloSim::start()
        .await
        .context("starting the HaloPSA simulator")?;
    let company = halo.add_client("Contoso");
    let alex = halo.add_user(company, "Alex Example", "alex.example@contoso.example");
    let megan = halo.add_user(company, "Megan Bowen", "megan.bowen@contoso.example");
    let (settings, secrets) = halo.connection();
    let (connection_id, organization_id) = store_tenant(
        store,
        key,
        duo,
        PsaKind::HaloPsa,
        serde_json::to_value(settings)?,
        &serde_json::to_string(&secrets)?,
        company,
    )
    .await?;
    halo.set_webhook_url(Some(format!("{url}/hooks/halopsa/{connection_id}")));
    let halo = Tenant {
        sim: halo,
        connection_id,
        organization_id,
        company,
        alex,
        megan,
    };
    Ok((autotask, freshdesk, halo))
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
    seed_world_in(&app.store, &app.flow.key, &app.url()).await
}

/// [`seed_world`] for a database that deskproof processes elsewhere serve: ConnectWise's
/// callbacks go to `deskproof_url`.
pub async fn seed_world_in(
    store: &Store,
    key: &MasterKey,
    deskproof_url: &str,
) -> anyhow::Result<DemoWorld> {
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

    let organization_id = store.create_organization("Contoso").await?;
    let (auth_keys, admin_keys) = (duo.auth_keys(), duo.admin_keys());
    store
        .save_duo_account(&DuoAccountRow::direct(
            organization_id,
            &auth_keys.api_host,
            &auth_keys.ikey,
            key.seal(auth_keys.skey.expose()),
            &admin_keys.ikey,
            key.seal(admin_keys.skey.expose()),
        ))
        .await?;
    let cw_config = cw.client_config();
    let settings = ConnectWiseSettings {
        base_url: cw_config.base_url.to_string(),
        company_id: cw_config.company_id.clone(),
        public_key: cw_config.public_key.clone(),
        client_id: cw_config.client_id.clone(),
    };
    let mut settings = serde_json::to_value(settings)?;
    // The simulator's ticket screen is the ConnectWise origin that hosts the pod.
    settings["pod_origins"] = serde_json::json!([cw.url()]);
    let secrets = serde_json::to_string(&ConnectWiseSecrets {
        private_key: cw_config.private_key.expose().to_owned(),
    })?;
    let connection_id = store
        .create_psa_connection(&NewPsaConnection {
            kind: "connectwise".into(),
            name: "ConnectWise (simulator)".into(),
            settings,
            secrets_sealed: key.seal(&secrets),
        })
        .await?;
    store
        .map_company(connection_id, &company.to_string(), organization_id)
        .await?;
    // ConnectWise appends the record id to the URL, so it ends in a query parameter.
    cw.set_callback_url(Some(deskproof_callback_url(deskproof_url, connection_id)));
    let (autotask, freshdesk, halo) = seed_other_psas(store, key, &duo, deskproof_url).await?;
    cw.add_member(DEMO_MEMBER.0, DEMO_MEMBER.1);
    cw.set_pod_url(Some(format!(
        "{deskproof_url}/pod/connectwise/{connection_id}"
    )));
    Ok(DemoWorld {
        duo,
        duo_url,
        cw,
        connection_id,
        organization_id,
        company,
        contacts,
        autotask,
        freshdesk,
        halo,
    })
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = storage::connect(&config.database_url).await?;
    // The demo's accounts have published passwords: they go only into a database of its own.
    if !store.users().await?.is_empty() || !store.organizations().await?.is_empty() {
        anyhow::bail!(
            "the demo needs a new, empty database, and the configured one (database_url) \
             already holds users or organizations; nothing was added to it. `make demo` starts \
             one under data/demo, or set DESKPROOF_DATABASE_URL to a file that does not exist yet."
        );
    }
    seed_accounts(&store).await?;
    let app = Application::with_store(config, store).await?;
    let world = seed_world(&app).await?;
    // ConnectWise calls deskproof back through a registered callback, as after "Connect" in
    // Settings, so a Connect there finds it and adds no second one (each ticket would be
    // delivered twice).
    world.cw.set_callback_url(None);
    world.cw.register_ticket_callback(
        &deskproof_callback_url(&app.flow.settings.public_url, world.connection_id),
        "deskproof ticket verification",
    );
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
    // Another one, a child account of the Duo MSP parent: its users are read with the parent's
    // Accounts API keys, its pushes sent with its own Auth API keys.
    let northwind = world.cw.add_company("Northwind");
    world.cw.add_contact_at(
        Some(northwind),
        "Diego",
        "Siciliani",
        "diego.siciliani@northwind.example",
    );
    let northwind_duo = world.duo.add_child_account("Northwind");
    world.duo.add_user_to(
        &northwind_duo,
        SimUser::new("diego.siciliani")
            .name("Diego", "Siciliani")
            .email("diego.siciliani@northwind.example")
            .push_phone("+15555550401"),
    );
    // So that "Duo verification push" can be tried; the default setup asks only for read.
    world.duo.set_admin_write_allowed(true);
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
    println!(
        "  ticket screen: {}/sim/connectwise/tickets/{{id}}/screen (with the deskproof pod)",
        world.cw.url()
    );
    println!();
    println!(
        "Autotask simulator (organization \"Contoso (Autotask)\", connection {}):",
        world.autotask.connection_id
    );
    println!("  autotask api:  {}", world.autotask.sim.url());
    println!(
        "  autotask hook: {}/hooks/autotask/{}",
        url, world.autotask.connection_id
    );
    println!(
        "Freshdesk simulator (organization \"Contoso (Freshdesk)\", connection {}):",
        world.freshdesk.connection_id
    );
    println!("  freshdesk api:  {}", world.freshdesk.sim.url());
    println!(
        "  freshdesk hook: {}/hooks/freshdesk/{}",
        url, world.freshdesk.connection_id
    );
    println!(
        "HaloPSA simulator (organization \"Contoso (HaloPSA)\", connection {}):",
        world.halo.connection_id
    );
    println!("  halopsa api:  {}", world.halo.sim.url());
    println!(
        "  halopsa hook: {}/hooks/halopsa/{}",
        url, world.halo.connection_id
    );
    println!("Each has the contacts Alex Example and Megan Bowen. Create a ticket (its webhook is");
    println!("sent to deskproof at once) with, for Alex:");
    println!(
        "  curl -X POST -H 'content-type: application/json' -d '{{\"contact\": {}, \"title\": \"Password reset\"}}' {}/sim/tickets",
        world.autotask.alex,
        world.autotask.sim.url()
    );
    println!(
        "  curl -X POST -H 'content-type: application/json' -d '{{\"contact\": {}, \"subject\": \"Password reset\"}}' {}/sim/tickets",
        world.freshdesk.alex,
        world.freshdesk.sim.url()
    );
    println!(
        "  curl -X POST -H 'content-type: application/json' -d '{{\"user\": {}, \"summary\": \"Password reset\"}}' {}/sim/tickets",
        world.halo.alex,
        world.halo.sim.url()
    );
    println!("and read the ticket's notes (the verification link) at <simulator>/sim/tickets/<id>/notes.");
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
        "diego.siciliani",
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
    println!(
        "Nor is ConnectWise company Northwind (company id {northwind}, contact Diego Siciliani),"
    );
    println!("a child account of the Duo MSP parent: choose \"MSP parent (Accounts API)\" with");
    let (accounts, child_auth) = (
        world.duo.accounts_keys(),
        world.duo.child_auth_keys(&northwind_duo),
    );
    println!("  duo accounts api host: {}", accounts.api_host);
    println!("  duo accounts ikey:     {}", accounts.ikey);
    println!("  duo accounts skey:     {}", accounts.skey.expose());
    println!("  duo child auth ikey:   {}", child_auth.ikey);
    println!("  duo child auth skey:   {}", child_auth.skey.expose());
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
