//! Cross-check of the Duo simulator with Duo's official Python client (`duo_client` from PyPI):
//! if the reference implementation is accepted and its tampered requests rejected, the
//! simulator's checks match Duo's signing rules.
//!
//! The test makes a virtualenv at `target/duo-venv` on first use and installs `duo_client`
//! there; later runs reuse it.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use deskproof::sim::duo::{DuoSim, SimUser};
use serde_json::Value;

static VENV_SETUP: Mutex<()> = Mutex::new(());

fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("../duo-venv")
}

fn venv_python() -> PathBuf {
    venv_dir().join("bin/python")
}

fn has_duo_client(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import duo_client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Creates the virtualenv and installs duo_client once; panics with a clear message otherwise.
fn ensure_venv() -> PathBuf {
    let _guard = VENV_SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let python = venv_python();
    if has_duo_client(&python) {
        return python;
    }
    if !python.exists() {
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv_dir())
            .output()
            .expect("python3 must be installed to cross-check with duo_client");
        assert!(
            out.status.success(),
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "duo_client"])
        .output()
        .expect("pip runs inside the virtualenv");
    assert!(
        out.status.success(),
        "could not install duo_client from PyPI (is PyPI reachable?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(has_duo_client(&python), "duo_client still not importable");
    python
}

async fn run_crosscheck(sig_version: u32, digest: Option<&str>) -> Value {
    let python = ensure_venv();
    let (sim, url) = DuoSim::start().await.expect("simulator starts");
    sim.set_long_poll_wait(Duration::from_millis(200));
    sim.add_user(
        SimUser::new("alex.example")
            .name("Alex", "Example")
            .push_phone("+15555550101"),
    );
    for i in 0..4 {
        sim.add_user(SimUser::new(&format!("user {i}")).email("u@contoso.example"));
    }
    let (auth, admin) = (sim.auth_keys(), sim.admin_keys());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/duo_crosscheck.py");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script)
        .args(["--host", url.trim_start_matches("http://")])
        .args(["--auth-ikey", &auth.ikey, "--auth-skey", auth.skey.expose()])
        .args([
            "--admin-ikey",
            &admin.ikey,
            "--admin-skey",
            admin.skey.expose(),
        ])
        .args(["--username", "alex.example", "--page-limit", "2"])
        .args(["--sig-version", &sig_version.to_string()]);
    if let Some(d) = digest {
        cmd.args(["--digest", d]);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("crosscheck script finishes within a minute")
        .expect("crosscheck script runs");
    assert!(
        out.status.success(),
        "crosscheck script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    // Five users at two per page (three pages, so next_offset was followed twice) plus the one
    // untampered raw call; rejected requests never reach an account.
    assert_eq!(sim.admin_calls(&sim.main_account_id()), 3 + 1, "{summary}");
    summary
}

fn assert_summary(summary: &Value) {
    assert_eq!(
        summary["usernames"],
        serde_json::json!(["alex.example", "user 0", "user 1", "user 2", "user 3"])
    );
    assert_eq!(summary["preauth_result"], "auth");
    assert_eq!(summary["first_status"], "pushed");
    assert_eq!(summary["final_status"], "allow");
    assert_eq!(summary["final_success"], true);
    assert_eq!(summary["untampered_http"], 200);
    assert_eq!(summary["tampered"], serde_json::json!([401, 40103]));
    assert_eq!(summary["skewed"], serde_json::json!([401, 40105]));
}

#[tokio::test]
async fn duo_client_python_with_v5_signatures_is_accepted_and_its_tampered_requests_rejected() {
    assert_summary(&run_crosscheck(5, None).await);
}

#[tokio::test]
async fn duo_client_python_with_v2_sha512_signatures_is_accepted() {
    assert_summary(&run_crosscheck(2, Some("sha512")).await);
}

#[tokio::test]
async fn duo_client_python_with_v2_sha1_signatures_is_accepted() {
    assert_summary(&run_crosscheck(2, Some("sha1")).await);
}
