//! Duo accounts reached through an MSP parent's Accounts API keys, over real HTTP against the
//! Duo simulator: listing child accounts, saving with a picked child, refusals named next to
//! their field, the Test button, a verification that finds the user in the child account, and
//! the same account described in a setup file.
mod support;

use std::time::Duration;

use deskproof::duo::AccountId;
use deskproof::sim::duo::{PushKind, SimKeys, SimUser};
use deskproof::storage::DuoDirectoryKeys;
use serde_json::{json, Value};
use support::flow::{spawn_flow, FlowApp};

/// An MSP child account in the simulator with one user (Adele), and its Auth API keys.
fn child_with_adele(app: &FlowApp, name: &str) -> (AccountId, SimKeys) {
    let duo = &app.world.duo;
    let child = duo.add_child_account(name);
    duo.add_user_to(
        &child,
        SimUser::new("adele.vance")
            .name("Adele", "Vance")
            .email("adele.vance@fabrikam.example")
            .push_phone("+15555550301"),
    );
    let keys = duo.child_auth_keys(&child);
    (child, keys)
}

/// Creates an organization through the admin functions; returns its id as text.
async fn new_organization(app: &FlowApp, admin: &reqwest::Client, name: &str) -> String {
    let (status, body) = app
        .admin_call(admin, "save_organization", &[("id", ""), ("name", name)])
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, settings) = app.admin_call(admin, "settings", &[]).await;
    settings["organizations"]
        .as_array()
        .expect("organizations")
        .iter()
        .find(|o| o["name"] == name)
        .and_then(|o| o["id"].as_i64())
        .expect("created")
        .to_string()
}

/// The MSP form of the Duo account: the parent's Accounts keys and the child's Auth keys.
fn msp_form<'a>(
    org: &'a str,
    accounts: &'a SimKeys,
    child_auth: &'a SimKeys,
    child_id: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("organization_id", org),
        ("fields[directory]", "accounts_api"),
        ("fields[accounts_api_host]", &accounts.api_host),
        ("fields[accounts_ikey]", &accounts.ikey),
        ("fields[accounts_skey]", accounts.skey.expose()),
        ("fields[child_account_id]", child_id),
        ("fields[auth_ikey]", &child_auth.ikey),
        ("fields[auth_skey]", child_auth.skey.expose()),
    ]
}

async fn ok(
    app: &FlowApp,
    admin: &reqwest::Client,
    function: &str,
    form: &[(&str, &str)],
) -> Value {
    let (status, body) = app.admin_call(admin, function, form).await;
    assert_eq!(status, 200, "{function}: {body}");
    body
}

#[tokio::test]
async fn child_accounts_are_listed_as_duo_returns_them_and_wrong_keys_are_named_by_field() {
    // Arrange
    let app = spawn_flow().await;
    let admin = app.admin_client().await;
    let northwind = app.world.duo.add_child_account("Northwind");
    let adventure = app.world.duo.add_child_account("Adventure Works");
    let org = new_organization(&app, &admin, "Northwind").await;
    let accounts = app.world.duo.accounts_keys();
    let list = |ikey: String, skey: String| {
        vec![
            ("organization_id".to_owned(), org.clone()),
            (
                "fields[accounts_api_host]".to_owned(),
                accounts.api_host.clone(),
            ),
            ("fields[accounts_ikey]".to_owned(), ikey),
            ("fields[accounts_skey]".to_owned(), skey),
        ]
    };
    let call = |form: Vec<(String, String)>| {
        let (app, admin) = (&app, &admin);
        async move {
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ok(app, admin, "list_duo_children", &form).await
        }
    };

    // Act
    let listed = call(list(
        accounts.ikey.clone(),
        accounts.skey.expose().to_owned(),
    ))
    .await;
    let wrong_secret = call(list(
        accounts.ikey.clone(),
        "not-the-accounts-secret-key-000000000000".into(),
    ))
    .await;
    let admin_keys = app.world.duo.admin_keys();
    let admin_as_accounts = call(list(
        admin_keys.ikey.clone(),
        admin_keys.skey.expose().into(),
    ))
    .await;
    let blank = call(list(String::new(), String::new())).await;

    // Assert: sorted by name, as Duo named them, with Duo's ids and hosts.
    let host = accounts.api_host.trim_start_matches("http://");
    assert_eq!(listed["errors"], json!({}), "{listed}");
    assert_eq!(
        listed["children"],
        json!([
            {"account_id": adventure.as_str(), "name": "Adventure Works", "api_hostname": host},
            {"account_id": northwind.as_str(), "name": "Northwind", "api_hostname": host},
        ])
    );
    assert_eq!(wrong_secret["children"], json!([]));
    let secret_error = wrong_secret["errors"]["accounts_skey"]
        .as_str()
        .unwrap_or("");
    assert!(secret_error.contains("40103"), "{wrong_secret}");
    let ikey_error = admin_as_accounts["errors"]["accounts_ikey"]
        .as_str()
        .unwrap_or("");
    assert!(
        ikey_error.contains("not an Accounts API application") && ikey_error.contains("40102"),
        "{admin_as_accounts}"
    );
    assert_eq!(
        blank["errors"]["accounts_ikey"], "Enter the integration key.",
        "{blank}"
    );
    assert_eq!(blank["errors"]["accounts_skey"], "Enter the secret key.");
}

#[tokio::test]
async fn a_picked_child_is_saved_with_duo_s_name_and_host_and_no_secret_comes_back() {
    // Arrange
    let app = spawn_flow().await;
    let admin = app.admin_client().await;
    let (child, child_auth) = child_with_adele(&app, "Fabrikam");
    let org = new_organization(&app, &admin, "Fabrikam").await;
    let accounts = app.world.duo.accounts_keys();
    let mut form = msp_form(&org, &accounts, &child_auth, child.as_str());
    form.push(("fields[caller_code]", "verification_push"));

    // Act
    let saved = ok(&app, &admin, "save_duo", &form).await;

    // Assert
    assert_eq!(saved["errors"], json!({}), "{saved}");
    assert_eq!(
        saved["message"],
        "Saved the Duo keys of Fabrikam (child account Fabrikam)."
    );
    let row = app
        .store
        .duo_account(org.parse().expect("id"))
        .await
        .expect("read")
        .expect("stored");
    let DuoDirectoryKeys::AccountsApi(stored) = &row.directory else {
        panic!("not an MSP child: {row:?}");
    };
    assert_eq!(stored.account_id, child.as_str());
    assert_eq!(stored.name, "Fabrikam");
    assert_eq!(
        stored.api_hostname,
        accounts.api_host.trim_start_matches("http://")
    );
    assert_eq!(
        row.api_host, accounts.api_host,
        "pushes go to the child's host"
    );
    assert_eq!(row.auth_ikey, child_auth.ikey);
    assert_eq!(row.caller_code.as_str(), "verification_push");
    let (_, settings) = app.admin_call(&admin, "settings", &[]).await;
    let text = settings.to_string();
    for secret in [accounts.skey.expose(), child_auth.skey.expose()] {
        assert!(!text.contains(secret), "a secret was sent back");
        let in_db = app
            .count(&format!(
                "SELECT COUNT(*) FROM duo_accounts WHERE accounts_skey_sealed LIKE '%{secret}%' \
                 OR auth_skey_sealed LIKE '%{secret}%'"
            ))
            .await;
        assert_eq!(in_db, 0, "secrets are sealed");
    }
    let view = settings["organizations"]
        .as_array()
        .expect("organizations")
        .iter()
        .find(|o| o["id"].as_i64().map(|id| id.to_string()).as_deref() == Some(org.as_str()))
        .expect("org")["duo"]
        .clone();
    assert_eq!(view["directory"], "accounts_api");
    assert_eq!(view["accounts_ikey"], accounts.ikey.as_str());
    assert_eq!(view["accounts_skey_set"], true);
    assert_eq!(view["auth_skey_set"], true);
    assert_eq!(view["admin_skey_set"], false);
    assert_eq!(view["child"]["name"], "Fabrikam");
    assert_eq!(view["caller_code"], "verification_push");

    // Blank secrets keep the stored ones, and the Test button reads the child's users.
    let kept = form
        .iter()
        .map(|&(k, v)| {
            if k.ends_with("skey]") {
                (k, "")
            } else {
                (k, v)
            }
        })
        .collect::<Vec<_>>();
    let saved = ok(&app, &admin, "save_duo", &kept).await;
    assert_eq!(saved["errors"], json!({}), "{saved}");
    let tested = ok(&app, &admin, "test_duo", &[("organization_id", &org)]).await;
    assert_eq!(tested["ok"], true, "{tested}");
    assert_eq!(
        tested["lines"][0],
        "Auth API: keys accepted (/auth/v2/check)."
    );
    assert_eq!(
        tested["lines"][1],
        "Accounts API (child account \"Fabrikam\"): keys accepted; 1 user(s) in the account."
    );
    assert!(
        tested["lines"][2]
            .as_str()
            .is_some_and(|l| l.contains("Grant write resource")),
        "{tested}"
    );
    assert_eq!(app.world.duo.admin_calls(&child), 1);

    let audit = app.store.audit_entries(10).await.expect("audit");
    let entry = audit
        .iter()
        .find(|e| e.action == "Duo account saved")
        .expect("audited");
    let detail = entry.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("child account \"Fabrikam\"")
            && detail.contains("secret keys replaced: none"),
        "{detail}"
    );
}

#[tokio::test]
async fn nothing_is_stored_when_duo_refuses_the_accounts_keys_or_does_not_list_the_child() {
    // Arrange: the demo organization has direct keys that must survive every refusal.
    let app = spawn_flow().await;
    let admin = app.admin_client().await;
    let (child, child_auth) = child_with_adele(&app, "Fabrikam");
    let org = app.world.organization_id.to_string();
    let before = app.store.duo_account(app.world.organization_id).await;
    let audit_before = app.count("SELECT COUNT(*) FROM audit_log").await;
    let accounts = app.world.duo.accounts_keys();
    let wrong = SimKeys {
        skey: deskproof::secret::Secret::new("not-the-accounts-secret-key-000000000000"),
        ..accounts.clone()
    };

    // Act
    let refused = ok(
        &app,
        &admin,
        "save_duo",
        &msp_form(&org, &wrong, &child_auth, child.as_str()),
    )
    .await;
    let unlisted = ok(
        &app,
        &admin,
        "save_duo",
        &msp_form(&org, &accounts, &child_auth, "DANOSUCHCHILD0000000"),
    )
    .await;
    let unpicked = ok(
        &app,
        &admin,
        "save_duo",
        &msp_form(&org, &accounts, &child_auth, ""),
    )
    .await;
    let mut bad_setting = msp_form(&org, &accounts, &child_auth, child.as_str());
    bad_setting.push(("fields[caller_code]", "sms"));
    let bad_setting = ok(&app, &admin, "save_duo", &bad_setting).await;

    // Assert
    assert!(
        refused["errors"]["accounts_skey"]
            .as_str()
            .is_some_and(|e| e.contains("secret key is wrong (40103)")),
        "{refused}"
    );
    assert!(
        unlisted["errors"]["child_account_id"]
            .as_str()
            .is_some_and(|e| e.contains("does not list this child account")),
        "{unlisted}"
    );
    assert_eq!(
        unpicked["errors"]["child_account_id"],
        "List the child accounts and pick one."
    );
    assert!(
        bad_setting["errors"].get("caller_code").is_some(),
        "{bad_setting}"
    );
    // Switching to an MSP parent needs its secret key; the Admin API's is not reused.
    let mut no_secret = msp_form(&org, &accounts, &child_auth, child.as_str());
    no_secret.retain(|(k, _)| *k != "fields[accounts_skey]");
    let no_secret = ok(&app, &admin, "save_duo", &no_secret).await;
    assert_eq!(
        no_secret["errors"]["accounts_skey"],
        "Enter the secret key."
    );
    assert_eq!(
        app.store.duo_account(app.world.organization_id).await.ok(),
        before.ok(),
        "the stored account is unchanged"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log").await,
        audit_before
    );
}

#[tokio::test]
async fn the_test_button_shows_duo_s_refusal_on_the_child_path() {
    // Arrange
    let app = spawn_flow().await;
    let admin = app.admin_client().await;
    let (child, child_auth) = child_with_adele(&app, "Fabrikam");
    let org = new_organization(&app, &admin, "Fabrikam").await;
    let accounts = app.world.duo.accounts_keys();
    ok(
        &app,
        &admin,
        "save_duo",
        &msp_form(&org, &accounts, &child_auth, child.as_str()),
    )
    .await;
    app.world.duo.set_accounts_permissions(false, false);

    // Act
    let tested = ok(&app, &admin, "test_duo", &[("organization_id", &org)]).await;

    // Assert
    assert_eq!(tested["ok"], false, "{tested}");
    assert_eq!(tested["message"], "Duo refused the keys.");
    assert_eq!(
        tested["lines"][1],
        "Accounts API (child account \"Fabrikam\"): Duo refused access; check the \
         application's permissions (403)"
    );
}

#[tokio::test]
async fn a_verification_matches_the_user_in_the_child_account_and_pushes_there() {
    // Arrange: Adele exists only in the child account, so only a child lookup finds her.
    let app = spawn_flow().await;
    let admin = app.admin_client().await;
    let (child, child_auth) = child_with_adele(&app, "Fabrikam");
    let company = app.world.cw.add_company("Fabrikam");
    let contact = app.world.cw.add_contact_at(
        Some(company),
        "Adele",
        "Vance",
        "adele.vance@fabrikam.example",
    );
    let org = new_organization(&app, &admin, "Fabrikam").await;
    let connection = app.world.connection_id.to_string();
    let company_text = company.to_string();
    ok(
        &app,
        &admin,
        "save_mapping",
        &[
            ("connection_id", &connection),
            ("company_id", &company_text),
            ("organization_id", &org),
        ],
    )
    .await;
    let accounts = app.world.duo.accounts_keys();
    let saved = ok(
        &app,
        &admin,
        "save_duo",
        &msp_form(&org, &accounts, &child_auth, child.as_str()),
    )
    .await;
    assert_eq!(saved["errors"], json!({}), "{saved}");
    let main_calls = app.world.duo.admin_calls(&app.world.duo.main_account_id());

    // Act
    let ticket = app
        .world
        .cw
        .create_ticket(Some(company), Some(contact), "New laptop for Adele")
        .await
        .id;
    let token = app.link_token(ticket).await;
    let (_, page) = app.call("verification", &token).await;
    app.send_push(&token).await;
    let push = app
        .world
        .duo
        .wait_for_push("adele.vance", Duration::from_secs(5))
        .await
        .expect("a push reached Adele's phone");
    app.world
        .duo
        .approve_latest("adele.vance")
        .expect("pending");

    // Assert
    assert!(
        page["matched"]
            .as_str()
            .is_some_and(|m| m.contains("matched by e-mail")),
        "{page}"
    );
    assert_eq!(push.account_id, child, "the push went through the child");
    assert_eq!(push.kind, PushKind::Auth);
    assert_eq!(app.wait_for_outcome(&token).await["state"], "approved");
    assert!(app.world.duo.admin_calls(&child) >= 1);
    assert_eq!(
        app.world.duo.admin_calls(&app.world.duo.main_account_id()),
        main_calls,
        "the parent's own account was not asked"
    );

    // With Duo's verification push, the Accounts keys send it on the child account.
    let mut form = msp_form(&org, &accounts, &child_auth, child.as_str());
    form.push(("fields[caller_code]", "verification_push"));
    ok(&app, &admin, "save_duo", &form).await;
    let ticket = app
        .world
        .cw
        .create_ticket(Some(company), Some(contact), "Second laptop")
        .await
        .id;
    let token = app.link_token(ticket).await;
    app.send_push(&token).await;
    let push = app
        .world
        .duo
        .wait_for_push("adele.vance", Duration::from_secs(5))
        .await
        .expect("a verification push reached Adele's phone");
    assert_eq!(push.kind, PushKind::Verification);
    assert_eq!(push.account_id, child);
    let (_, page) = app.call("verification", &token).await;
    assert_eq!(
        page["caller_code"].as_str(),
        push.confirmation_code.as_deref()
    );
    app.world
        .duo
        .approve_latest("adele.vance")
        .expect("pending");
    assert_eq!(app.wait_for_outcome(&token).await["state"], "approved");
}

#[tokio::test]
async fn a_setup_file_names_the_child_by_id_and_duo_s_list_supplies_the_rest() {
    // Arrange
    let app = spawn_flow().await;
    let (child, child_auth) = child_with_adele(&app, "Fabrikam");
    let accounts = app.world.duo.accounts_keys();
    let file = |child_id: &str| {
        format!(
            r#"
[[organization]]
name = "Fabrikam"
[organization.duo]
auth_ikey = "{}"
auth_skey = "{}"
accounts_api_host = "{}"
accounts_ikey = "{}"
accounts_skey = "{}"
child_account_id = "{child_id}"
caller_code = "verification_push"
"#,
            child_auth.ikey,
            child_auth.skey.expose(),
            accounts.api_host,
            accounts.ikey,
            accounts.skey.expose()
        )
    };
    let dir = tempfile::tempdir().expect("dir");
    let store = deskproof::storage::connect(&format!("sqlite://{}/setup.db", dir.path().display()))
        .await
        .expect("store");
    let (key, _) = deskproof::crypto::MasterKey::generate();
    let path = dir.path().join("setup.toml");

    // Act: an unknown child first, then the real one.
    std::fs::write(&path, file("DANOSUCHCHILD0000000")).expect("write");
    let unknown = deskproof::setup::SetupFile::read(&path)
        .expect("the file itself is valid")
        .apply(&store, &key, "http://deskproof.example")
        .await;
    let organizations_after_refusal = store.organizations().await.expect("list").len();
    std::fs::write(&path, file(child.as_str())).expect("write");
    deskproof::setup::SetupFile::read(&path)
        .expect("valid")
        .apply(&store, &key, "http://deskproof.example")
        .await
        .expect("stored");

    // Assert
    let message = format!("{:#}", unknown.expect_err("refused"));
    assert!(message.contains("Duo lists no child account"), "{message}");
    assert_eq!(organizations_after_refusal, 0, "nothing was stored");
    let row = store.duo_account(1).await.expect("read").expect("stored");
    let DuoDirectoryKeys::AccountsApi(stored) = &row.directory else {
        panic!("not an MSP child: {row:?}");
    };
    assert_eq!(stored.name, "Fabrikam");
    assert_eq!(row.api_host, accounts.api_host);
    assert_eq!(row.caller_code.as_str(), "verification_push");
    assert_eq!(
        key.open(&stored.skey_sealed).expect("sealed").expose(),
        accounts.skey.expose()
    );
}
