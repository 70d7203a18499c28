//! The service's basics over real HTTP: health, sign-in, sessions, sign-out and the CLI.
mod support;

use std::time::Instant;

use support::{spawn_app, ADMIN, TECH};

#[tokio::test]
async fn healthz_reports_the_database_as_ok() {
    let app = spawn_app().await;
    let res = reqwest::get(format!("{}/healthz", app.url))
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn the_signin_page_is_rendered_on_the_server() {
    let app = spawn_app().await;
    let res = reqwest::get(format!("{}/signin", app.url))
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("body");
    assert!(html.contains("<h1>Sign in</h1>"), "{html}");
    assert!(
        html.contains("/pkg/deskproof.js"),
        "hydration script is linked"
    );
}

#[tokio::test]
async fn a_technician_signs_in_and_the_session_cookie_is_httponly_and_lax() {
    let app = spawn_app().await;
    let res = app.sign_in(TECH.0, TECH.1).await;
    assert_eq!(res.status(), 200);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("deskproof_session="))
        .expect("session cookie set")
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http must not mark the cookie Secure: {cookie}"
    );

    let me = app.whoami().await;
    assert_eq!(me["username"], TECH.0);
    assert_eq!(me["role"], "technician");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_clear_message() {
    let app = spawn_app().await;
    let wrong = app
        .sign_in(TECH.0, "not the password")
        .await
        .text()
        .await
        .expect("body");
    let unknown = app
        .sign_in("nobody", "not the password")
        .await
        .text()
        .await
        .expect("body");
    assert!(wrong.contains("Wrong username or password."), "{wrong}");
    assert_eq!(wrong, unknown);
    assert!(
        app.whoami().await.is_null(),
        "no session after a failed sign-in"
    );
}

#[tokio::test]
async fn after_ten_wrong_passwords_even_the_right_one_waits_and_other_accounts_do_not() {
    // Arrange: ten wrong guesses at one account.
    let app = spawn_app().await;
    for _ in 0..10 {
        let text = app
            .sign_in(TECH.0, "a wrong guess")
            .await
            .text()
            .await
            .expect("body");
        assert!(text.contains("Wrong username or password."), "{text}");
    }

    // Act
    let held = app.sign_in(TECH.0, TECH.1).await;
    let status = held.status();
    let text = held.text().await.expect("body");

    // Assert: refused with when to try again, no session; another account signs in.
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("Too many sign-in attempts for this account. Try again in"),
        "{text}"
    );
    assert!(app.whoami().await.is_null(), "no session while held up");
    let other = app.sign_in(ADMIN.0, ADMIN.1).await;
    assert_eq!(other.status(), 200);
    assert_eq!(app.whoami().await["role"], "admin");
}

#[tokio::test]
async fn an_unknown_user_costs_a_full_password_check() {
    let app = spawn_app().await;
    // Warm up both paths once (the decoy hash is computed lazily).
    app.sign_in("nobody", "x").await;
    app.sign_in(TECH.0, "x").await;
    let mut wrong = std::time::Duration::ZERO;
    let mut unknown = std::time::Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        app.sign_in(TECH.0, "not the password").await;
        wrong += t.elapsed();
        let t = Instant::now();
        app.sign_in("nobody", "not the password").await;
        unknown += t.elapsed();
    }
    // Without the decoy check an unknown user answers in well under a tenth of the time.
    assert!(
        unknown.as_secs_f64() > wrong.as_secs_f64() * 0.4,
        "unknown {unknown:?} vs wrong password {wrong:?}"
    );
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = spawn_app().await;
    app.sign_in(ADMIN.0, ADMIN.1).await;
    assert_eq!(app.whoami().await["role"], "admin");
    let res = app
        .client
        .post(format!("{}/api/sign_out", app.url))
        .header("Accept", "application/json")
        .send()
        .await
        .expect("request");
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "{}",
        res.status()
    );
    assert!(app.whoami().await.is_null());
}

#[tokio::test]
async fn the_home_page_sends_strangers_to_sign_in() {
    let app = spawn_app().await;
    let html = support::new_client()
        .get(format!("{}/", app.url))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(!html.contains("Welcome"), "{html}");
}

#[tokio::test]
async fn the_cli_creates_an_account_that_can_sign_in() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}/cli.db", dir.path().display());
    let bin = env!("CARGO_BIN_EXE_deskproof");
    let migrate = std::process::Command::new(bin)
        .args(["migrate"])
        .env("DESKPROOF_DATABASE_URL", &db)
        .current_dir(dir.path())
        .output()
        .expect("run migrate");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    let mut child = std::process::Command::new(bin)
        .args(["user", "add", "--username", "riley", "--role", "admin"])
        .env("DESKPROOF_DATABASE_URL", &db)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run user add");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"a long enough password\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin \"riley\""));

    let store = deskproof::storage::connect(&db).await.expect("open");
    let user = deskproof::auth::check_credentials(&store, "riley", "a long enough password")
        .await
        .expect("signs in");
    assert_eq!(user.role, app::model::Role::Admin);

    let short = std::process::Command::new(bin)
        .args(["user", "add", "--username", "sam"])
        .env("DESKPROOF_DATABASE_URL", &db)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
}

#[tokio::test]
async fn the_demo_refuses_a_database_that_holds_accounts_and_adds_nothing_to_it() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}/real.db", dir.path().display());
    let store = deskproof::storage::connect(&db).await.expect("open");
    deskproof::auth::create_user(
        &store,
        "riley",
        "Riley",
        app::model::Role::Admin,
        "a long enough password",
    )
    .await
    .expect("user");

    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deskproof"))
        .arg("demo")
        .env("DESKPROOF_DATABASE_URL", &db)
        .env("DESKPROOF_BIND", "127.0.0.1:0")
        .env("DESKPROOF_LOG", "warn")
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child)
        .await
        .expect("the demo stops at once instead of starting")
        .expect("runs");

    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs a new, empty database"), "{stderr}");
    let users = store.users().await.expect("users");
    assert_eq!(users.len(), 1, "no demo account was added");
    assert!(store.organizations().await.expect("orgs").is_empty());
}

#[tokio::test]
async fn a_cross_site_post_is_refused_even_with_a_session() {
    let app = spawn_app().await;
    app.sign_in(TECH.0, TECH.1).await;
    let res = app
        .client
        .post(format!("{}/api/sign_out", app.url))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .post(format!("{}/api/sign_out", app.url))
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 403);
    assert_eq!(app.whoami().await["username"], TECH.0, "still signed in");
}

#[tokio::test]
async fn pages_carry_security_headers_and_refuse_framing() {
    let app = spawn_app().await;
    let res = reqwest::get(format!("{}/signin", app.url))
        .await
        .expect("request");
    let h = res.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap_or_default()
        .contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn setup_stores_an_organization_with_sealed_keys_and_refuses_a_bad_file_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}/setup.db", dir.path().display());
    let bin = env!("CARGO_BIN_EXE_deskproof");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        r#"
[[organization]]
name = "Contoso"
[organization.duo]
api_host = "api-12345678.duosecurity.com"
auth_ikey = "DIAUTHIKEY0000000000"
auth_skey = "auth-secret-key-value-1234567890"
admin_ikey = "DIADMINIKEY000000000"
admin_skey = "admin-secret-key-value-1234567890"

[[connectwise]]
name = "Our ConnectWise"
base_url = "https://api-na.myconnectwise.net/v4_6_release/apis/3.0"
company_id = "examplemsp"
public_key = "pub"
private_key = "connectwise-private-key-value"
client_id = "00000000-0000-0000-0000-000000000000"
companies = [{ company_id = "250", organization = "Contoso" }]
"#,
    )
    .expect("write");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&good)
            .expect("read")
            .replace("name = \"Contoso\"", "name = \"Fabrikam\""),
    )
    .expect("write");
    let run = |file: &std::path::Path| {
        std::process::Command::new(bin)
            .arg("setup")
            .arg(file)
            .env("DESKPROOF_DATABASE_URL", &db)
            .env("DESKPROOF_PUBLIC_URL", "https://desk.example.net")
            .current_dir(dir.path())
            .output()
            .expect("run setup")
    };

    let refused = run(&bad);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not an organization"));

    let out = run(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("callback URL https://desk.example.net/hooks/connectwise/1?recordId="));

    let store = deskproof::storage::connect(&db).await.expect("open");
    assert_eq!(
        store
            .organization_for_company(1, "250")
            .await
            .expect("query"),
        Some(1)
    );
    assert!(
        store.organization(2).await.expect("query").is_none(),
        "the bad file stored nothing"
    );
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().contains("setup.db") {
            bytes.extend(std::fs::read(&path).expect("read db"));
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("DIAUTHIKEY0000000000"),
        "the database was read"
    );
    for secret in [
        "auth-secret-key-value",
        "admin-secret-key-value",
        "connectwise-private-key-value",
    ] {
        assert!(!text.contains(secret), "{secret} is stored in clear text");
    }
}
