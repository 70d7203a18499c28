//! Master key rotation: every sealed secret re-sealed in one transaction, or none.

use deskproof::crypto::MasterKey;
use deskproof::rotate;
use deskproof::storage::{self, DuoAccountRow, DuoDirectoryKeys, MspChildAccess, NewPsaConnection};

/// The sealed secret key of the account's directory keys (Admin API or Accounts API).
fn directory_secret(row: &DuoAccountRow) -> &str {
    match &row.directory {
        DuoDirectoryKeys::AdminApi { skey_sealed, .. } => skey_sealed,
        DuoDirectoryKeys::AccountsApi(child) => &child.skey_sealed,
    }
}

async fn seeded(key: &MasterKey) -> (tempfile::TempDir, deskproof::storage::Store, i64) {
    let dir = tempfile::tempdir().expect("dir");
    let store = storage::connect(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .expect("store");
    let org = store.create_organization("Contoso").await.expect("org");
    store
        .save_duo_account(&DuoAccountRow::direct(
            org,
            "api-1.duosecurity.com",
            "DIAUTH",
            key.seal("auth secret"),
            "DIADMIN",
            key.seal("admin secret"),
        ))
        .await
        .expect("duo");
    // An MSP child: its own Auth API key and the parent's Accounts API key, no Admin API key.
    let msp = store.create_organization("Northwind").await.expect("org");
    store
        .save_duo_account(&DuoAccountRow {
            organization_id: msp,
            api_host: "api-child.duosecurity.com".into(),
            auth_ikey: "DICHILDAUTH".into(),
            auth_skey_sealed: key.seal("child auth secret"),
            directory: DuoDirectoryKeys::AccountsApi(MspChildAccess {
                parent_api_host: "api-parent.duosecurity.com".into(),
                ikey: "DIACCOUNTS".into(),
                skey_sealed: key.seal("accounts secret"),
                account_id: "DACHILD".into(),
                name: "Northwind".into(),
                api_hostname: "api-child.duosecurity.com".into(),
            }),
            caller_code: Default::default(),
        })
        .await
        .expect("msp duo");
    let conn = store
        .create_psa_connection(&NewPsaConnection {
            kind: "connectwise".into(),
            name: "CW".into(),
            settings: serde_json::json!({}),
            secrets_sealed: key.seal(r#"{"private_key":"cw secret"}"#),
        })
        .await
        .expect("connection");
    (dir, store, conn)
}

#[tokio::test]
async fn rotation_reseals_every_secret_so_only_the_new_key_opens_them() {
    let (old, _) = MasterKey::generate();
    let (_dir, store, conn) = seeded(&old).await;
    let key_dir = tempfile::tempdir().expect("dir");
    let new_file = key_dir.path().join("new.key");

    let count = rotate::run(&store, &old, &new_file).await.expect("rotates");
    assert_eq!(
        count, 5,
        "two Duo keys per organization and the PSA secrets"
    );

    let new = MasterKey::load_or_create(&new_file).expect("the new key file was written");
    let duo = store.duo_account(1).await.expect("read").expect("account");
    let msp = store.duo_account(2).await.expect("read").expect("account");
    assert!(matches!(msp.directory, DuoDirectoryKeys::AccountsApi(_)));
    let cw = store
        .psa_connection(conn)
        .await
        .expect("read")
        .expect("conn");
    for (sealed, plain) in [
        (duo.auth_skey_sealed.as_str(), "auth secret"),
        (directory_secret(&duo), "admin secret"),
        (msp.auth_skey_sealed.as_str(), "child auth secret"),
        (directory_secret(&msp), "accounts secret"),
        (cw.secrets_sealed.as_str(), r#"{"private_key":"cw secret"}"#),
    ] {
        assert_eq!(
            new.open(sealed).expect("opens with the new key").expose(),
            plain
        );
        assert!(old.open(sealed).is_err(), "the old key no longer opens it");
    }
    let audit = store.audit_entries(10).await.expect("audit");
    assert_eq!(audit[0].action, "master key rotated");

    // Rotating to the key in use is refused.
    assert!(rotate::reseal_all(&store, &new, &new).await.is_err());
}

#[tokio::test]
async fn a_secret_the_current_key_cannot_open_stops_the_rotation_with_nothing_changed() {
    let (old, _) = MasterKey::generate();
    let (stranger, _) = MasterKey::generate();
    let (_dir, store, _) = seeded(&old).await;
    // A second connection sealed with some other key.
    store
        .create_psa_connection(&NewPsaConnection {
            kind: "connectwise".into(),
            name: "Other".into(),
            settings: serde_json::json!({}),
            secrets_sealed: stranger.seal("{}"),
        })
        .await
        .expect("connection");
    let before = store.duo_account(1).await.expect("read").expect("account");
    let (new, _) = MasterKey::generate();

    let result = rotate::reseal_all(&store, &old, &new).await;

    assert!(result.is_err());
    let after = store.duo_account(1).await.expect("read").expect("account");
    assert_eq!(before, after, "the Duo keys were not re-sealed");
    assert!(old.open(&after.auth_skey_sealed).is_ok());
    assert!(store.audit_entries(10).await.expect("audit").is_empty());
}

#[tokio::test]
async fn a_rotation_refused_for_the_current_key_writes_no_new_key_file() {
    let (old, _) = MasterKey::generate();
    let (wrong, _) = MasterKey::generate();
    let (dir, store, _) = seeded(&old).await;
    let new_file = dir.path().join("not-yet").join("master-2.key");

    let result = rotate::run(&store, &wrong, &new_file).await;

    let message = format!("{:#}", result.expect_err("refused"));
    assert!(message.contains("5 stored secret(s)"), "{message}");
    assert!(!new_file.exists());
    assert!(!dir.path().join("not-yet").exists());
    assert!(store.audit_entries(10).await.expect("audit").is_empty());
}

#[tokio::test]
async fn the_rotate_key_command_reseals_the_configured_database() {
    let dir = tempfile::tempdir().expect("dir");
    let db_url = format!("sqlite://{}/deskproof.db", dir.path().display());
    // The key file the configuration uses by default: master.key beside the database.
    let old = MasterKey::load_or_create(&dir.path().join("master.key")).expect("key");
    {
        let store = storage::connect(&db_url).await.expect("store");
        let org = store.create_organization("Contoso").await.expect("org");
        store
            .save_duo_account(&DuoAccountRow::direct(
                org,
                "api-1.duosecurity.com",
                "DIAUTH",
                old.seal("auth secret"),
                "DIADMIN",
                old.seal("admin secret"),
            ))
            .await
            .expect("duo");
    }
    let new_file = dir.path().join("master-2.key");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_deskproof"))
        .args(["rotate-key", "--new-key-file"])
        .arg(&new_file)
        .current_dir(dir.path())
        .env("DESKPROOF_DATABASE_URL", &db_url)
        .env("DESKPROOF_LOG", "warn")
        .output()
        .expect("runs");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("re-sealed 2 secret(s)"), "{stdout}");
    let new = MasterKey::load_or_create(&new_file).expect("new key");
    let store = storage::connect(&db_url).await.expect("store");
    let duo = store.duo_account(1).await.expect("read").expect("account");
    assert_eq!(
        new.open(&duo.auth_skey_sealed).expect("opens").expose(),
        "auth secret"
    );
    assert!(old.open(directory_secret(&duo)).is_err());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&new_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
