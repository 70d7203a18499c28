//! The ConnectWise pod over real HTTP: the member is confirmed with the ConnectWise simulator,
//! the ticket must belong to a company this connection maps, pushes go out under a pod token,
//! pod mode changes the notes, and only the pod page may be framed, by ConnectWise only.
mod support;

use std::time::Duration;

use deskproof::policy::PolicySettings;
use deskproof::psa::TicketId;
use deskproof::sim::demo::DEMO_MEMBER;
use deskproof::storage::NewPsaConnection;
use serde_json::Value;
use support::flow::{spawn_flow, FlowApp};

/// Calls a pod server function without any cookie, as the framed pod does.
async fn pod_call(app: &FlowApp, function: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/{function}", app.url))
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

async fn open_pod(app: &FlowApp, ticket: &str, member: &str, hash: &str) -> (u16, Value) {
    let connection = app.world.connection_id.to_string();
    pod_call(
        app,
        "pod_open",
        &[
            ("connection_id", connection.as_str()),
            ("ticket_id", ticket),
            ("member_id", member),
            ("member_hash", hash),
        ],
    )
    .await
}

/// Opens the pod as the demo member; returns the pod token and the first view.
async fn opened(app: &FlowApp, ticket: TicketId) -> (String, Value) {
    let (status, session) = open_pod(app, &ticket.to_string(), DEMO_MEMBER.0, DEMO_MEMBER.1).await;
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().expect("pod token").to_owned();
    (token, session["view"].clone())
}

fn text(v: &Value) -> String {
    v.to_string()
}

#[tokio::test]
async fn a_confirmed_member_verifies_the_ticket_from_the_pod() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Pod reset").await;

    // Act
    let (token, view) = opened(&app, ticket).await;
    let (status, attempt) = pod_call(&app, "pod_verify", &[("pod_token", &token)]).await;
    assert_eq!(status, 200, "{attempt}");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("a push reached the phone");
    app.world
        .duo
        .approve_latest("alex.example")
        .expect("pending push");

    // Assert
    assert_eq!(view["member"], "Jordan Tech (jtech, ConnectWise)", "{view}");
    assert_eq!(view["page"]["contact"], "Alex Example", "{view}");
    assert!(
        view["page"]["matched"]
            .as_str()
            .unwrap_or_default()
            .starts_with("al***le"),
        "{view}"
    );
    assert_eq!(attempt["state"], "pushed", "{attempt}");
    assert_eq!(attempt["technician"], "Jordan Tech (jtech, ConnectWise)");
    let notes = app
        .wait_for_note(ticket, "alex.example has verified this ticket.")
        .await;
    let outcome = notes.last().expect("outcome note");
    assert!(
        outcome
            .text
            .contains("requested by Jordan Tech (jtech, ConnectWise)"),
        "{outcome:?}"
    );
    let (status, view) = pod_call(&app, "pod_status", &[("pod_token", &token)]).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["page"]["attempts"][0]["state"], "approved", "{view}");
    let audit = app.store.audit_entries(10).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.actor == "Jordan Tech (jtech, ConnectWise)" && e.action == "push sent"),
        "{audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|e| e.actor == "Jordan Tech (jtech, ConnectWise)" && e.action == "pod opened"),
        "{audit:#?}"
    );
}

#[tokio::test]
async fn a_forged_member_hash_or_member_id_is_refused() {
    // Arrange
    let app = spawn_flow().await;
    app.world.cw.add_member("other", "other-member-hash");
    let ticket = app.new_ticket(app.world.contacts.alex, "Forged").await;
    let id = ticket.to_string();

    // Act
    let wrong_hash = open_pod(&app, &id, DEMO_MEMBER.0, "guessed-hash").await;
    let borrowed_hash = open_pod(&app, &id, "other", DEMO_MEMBER.1).await;
    let separator = open_pod(&app, &id, "jtech:x", DEMO_MEMBER.1).await;
    let empty = open_pod(&app, &id, DEMO_MEMBER.0, "").await;
    let forged_token = pod_call(&app, "pod_verify", &[("pod_token", "e30.AAAA")]).await;
    let no_token = pod_call(&app, "pod_status", &[("pod_token", "")]).await;

    // Assert
    for (status, body) in [&wrong_hash, &borrowed_hash, &separator, &empty] {
        assert_ne!(*status, 200, "{body}");
        assert!(
            text(body).contains("ConnectWise did not confirm who is signed in"),
            "{body}"
        );
    }
    for (status, body) in [&forged_token, &no_token] {
        assert_ne!(*status, 200, "{body}");
        assert!(text(body).contains("not valid"), "{body}");
    }
    assert!(app.world.duo.pushes().is_empty(), "no push was sent");
    assert_eq!(app.count("SELECT COUNT(*) FROM attempts").await, 0);
}

#[tokio::test]
async fn a_ticket_of_a_company_this_connection_does_not_map_is_refused() {
    // Arrange: Fabrikam is mapped only on a second connection; Northwind nowhere.
    let app = spawn_flow().await;
    let fabrikam = app.world.cw.add_company("Fabrikam");
    let northwind = app.world.cw.add_company("Northwind");
    let other_connection = app
        .store
        .create_psa_connection(&NewPsaConnection {
            kind: "connectwise".into(),
            name: "Another tenant".into(),
            settings: serde_json::json!({}),
            secrets_sealed: String::new(),
        })
        .await
        .expect("second connection");
    app.store
        .map_company(
            other_connection,
            &fabrikam.to_string(),
            app.world.organization_id,
        )
        .await
        .expect("mapping");
    let dana = app
        .world
        .cw
        .add_contact_at(Some(fabrikam), "Dana", "Fab", "dana@fabrikam.example");
    let noel =
        app.world
            .cw
            .add_contact_at(Some(northwind), "Noel", "North", "noel@northwind.example");
    let fab_ticket = app
        .world
        .cw
        .create_ticket(Some(fabrikam), Some(dana), "Fabrikam reset")
        .await
        .id;
    let north_ticket = app
        .world
        .cw
        .create_ticket(Some(northwind), Some(noel), "Northwind reset")
        .await
        .id;

    // Act
    let fab = open_pod(&app, &fab_ticket.to_string(), DEMO_MEMBER.0, DEMO_MEMBER.1).await;
    let north = open_pod(
        &app,
        &north_ticket.to_string(),
        DEMO_MEMBER.0,
        DEMO_MEMBER.1,
    )
    .await;
    let nonsense = open_pod(&app, "1 OR 1=1", DEMO_MEMBER.0, DEMO_MEMBER.1).await;

    // Assert
    for (status, body) in [&fab, &north] {
        assert_ne!(*status, 200, "{body}");
        assert!(text(body).contains("not mapped"), "{body}");
    }
    assert_ne!(nonsense.0, 200);
    assert!(
        text(&nonsense.1).contains("is not a ConnectWise ticket number"),
        "{}",
        nonsense.1
    );
    assert!(app.world.duo.pushes().is_empty());
}

#[tokio::test]
async fn pod_mode_notes_point_to_the_pod_and_carry_no_link() {
    // Arrange
    let app = spawn_flow().await;
    app.store
        .save_policy_settings(
            Some(app.world.organization_id),
            &PolicySettings {
                pod_enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("policy");
    let ticket = app.new_ticket(app.world.contacts.alex, "Pod mode").await;
    app.wait_for_note(ticket, "deskproof pod").await;

    // Act: a push from the pod, denied by the contact.
    let (token, _) = opened(&app, ticket).await;
    let (status, attempt) = pod_call(&app, "pod_verify", &[("pod_token", &token)]).await;
    assert_eq!(status, 200, "{attempt}");
    app.world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");
    app.world.duo.deny_latest("alex.example").expect("pending");

    // Assert
    let notes = app.wait_for_note(ticket, "DENIED").await;
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(
        notes[0]
            .text
            .contains("can be verified in the deskproof pod on this ticket's screen"),
        "{notes:#?}"
    );
    assert!(
        notes[1]
            .text
            .contains("To try again: use the deskproof pod on this ticket's screen."),
        "{notes:#?}"
    );
    for note in &notes {
        assert!(!note.text.contains("/verify/"), "{note:?}");
        assert!(note.internal_analysis_flag, "{note:?}");
    }
}

#[tokio::test]
async fn a_ticket_the_callback_never_announced_is_taken_in_by_the_pod() {
    // Arrange: no callback reaches deskproof.
    let app = spawn_flow().await;
    app.world.cw.set_callback_url(None);
    let ticket = app.new_ticket(app.world.contacts.alex, "Quiet").await;

    // Act
    let (_, view) = opened(&app, ticket).await;

    // Assert
    assert_eq!(view["reading"], false, "{view}");
    assert_eq!(view["page"]["contact"], "Alex Example", "{view}");
    assert!(view["page"]["problem"].is_null(), "{view}");
    app.wait_for_note(ticket, "/verify/").await;
    app.wait_until_idle().await;
    assert_eq!(app.note_texts(ticket).len(), 1, "one link note");
}

#[tokio::test]
async fn only_the_pod_may_be_framed_and_only_by_connectwise() {
    // Arrange
    let app = spawn_flow().await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{}{path}", app.url);
        async move { client.get(url).send().await.expect("request") }
    };
    let header = |res: &reqwest::Response, name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };

    // Act
    let pod = get(format!("/pod/connectwise/{}", app.world.connection_id)).await;
    let unknown = get("/pod/connectwise/999".into()).await;
    let signin = get("/signin".into()).await;

    // Assert
    assert_eq!(pod.status(), 200);
    let policy = header(&pod, "content-security-policy").unwrap_or_default();
    assert!(
        policy.ends_with(&format!("; frame-ancestors {}", app.world.cw.url())),
        "{policy}"
    );
    assert_eq!(policy.matches("frame-ancestors").count(), 1, "{policy}");
    assert!(
        policy.contains("'nonce-"),
        "the pod page's scripts: {policy}"
    );
    assert_eq!(header(&pod, "x-frame-options"), None);
    for res in [&unknown, &signin] {
        assert!(
            header(res, "content-security-policy")
                .is_some_and(|v| v.contains("frame-ancestors 'none'")),
            "{:?}",
            res.headers()
        );
        assert_eq!(header(res, "x-frame-options").as_deref(), Some("DENY"));
    }
}

#[tokio::test]
async fn a_connection_without_pod_origins_has_no_pod() {
    // Arrange: the same tenant stored again, without pod origins.
    let app = spawn_flow().await;
    let row = app
        .store
        .psa_connection(app.world.connection_id)
        .await
        .expect("read")
        .expect("connection");
    let mut settings = row.settings.clone();
    settings
        .as_object_mut()
        .expect("settings object")
        .remove("pod_origins");
    let bare = app
        .store
        .create_psa_connection(&NewPsaConnection {
            kind: "connectwise".into(),
            name: "No pod".into(),
            settings,
            secrets_sealed: row.secrets_sealed.clone(),
        })
        .await
        .expect("connection");
    let ticket = app.new_ticket(app.world.contacts.alex, "No pod").await;

    // Act
    let bare_id = bare.to_string();
    let ticket_id = ticket.to_string();
    let (status, body) = pod_call(
        &app,
        "pod_open",
        &[
            ("connection_id", bare_id.as_str()),
            ("ticket_id", ticket_id.as_str()),
            ("member_id", DEMO_MEMBER.0),
            ("member_hash", DEMO_MEMBER.1),
        ],
    )
    .await;
    let page = reqwest::get(format!("{}/pod/connectwise/{bare}", app.url))
        .await
        .expect("pod page");

    // Assert
    assert_ne!(status, 200, "{body}");
    assert!(
        text(&body).contains("No ConnectWise address is set up"),
        "{body}"
    );
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(app.world.duo.pushes().is_empty());
}

/// Sets the organization's own policy.
async fn org_policy(app: &FlowApp, settings: PolicySettings) {
    app.store
        .save_policy_settings(Some(app.world.organization_id), &settings)
        .await
        .expect("policy");
}

/// Polls `pod_status` until the newest attempt has an outcome; returns the view.
async fn wait_for_pod_outcome(app: &FlowApp, token: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, view) = pod_call(app, "pod_status", &[("pod_token", token)]).await;
        assert_eq!(status, 200, "{view}");
        let state = view["page"]["attempts"][0]["state"].as_str().unwrap_or("");
        if !matches!(state, "" | "matching" | "pushed") {
            return view;
        }
        assert!(std::time::Instant::now() < deadline, "no outcome: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The caller code a push carries in its details.
fn code_of(push: &deskproof::sim::duo::PushView) -> String {
    push.pushinfo_pairs
        .iter()
        .find(|(k, _)| k == deskproof::verify::flow::CALLER_CODE_LABEL)
        .map(|(_, v)| v.clone())
        .expect("the push carries a caller code")
}

#[tokio::test]
async fn after_a_denied_push_the_pod_sends_another_when_the_deny_cooldown_is_zero() {
    // Arrange
    let app = spawn_flow().await;
    org_policy(
        &app,
        PolicySettings {
            deny_cooldown_minutes: Some(0),
            ..Default::default()
        },
    )
    .await;
    let ticket = app
        .new_ticket(app.world.contacts.megan, "Deny, then retry")
        .await;
    let (token, _) = opened(&app, ticket).await;
    let (status, first) = pod_call(&app, "pod_verify", &[("pod_token", &token)]).await;
    assert_eq!(status, 200, "{first}");
    app.world
        .duo
        .wait_for_push("megan.bowen", Duration::from_secs(5))
        .await
        .expect("the first push");
    app.world.duo.deny_latest("megan.bowen").expect("pending");
    let denied = wait_for_pod_outcome(&app, &token).await;
    assert_eq!(denied["page"]["attempts"][0]["state"], "denied", "{denied}");

    // Act
    let (status, second) = pod_call(&app, "pod_verify", &[("pod_token", &token)]).await;

    // Assert
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["state"], "pushed", "{second}");
    assert_ne!(second["id"], first["id"]);
    app.world
        .duo
        .wait_for_push("megan.bowen", Duration::from_secs(5))
        .await
        .expect("a second push reached the phone");
    let to_megan = app
        .world
        .duo
        .pushes()
        .into_iter()
        .filter(|p| p.username == "megan.bowen")
        .count();
    assert_eq!(to_megan, 2);
}

#[tokio::test]
async fn pod_mode_on_a_connection_without_pod_origins_writes_the_link_note() {
    // Arrange: pod mode on, but the connection's pod has no ConnectWise address, so it
    // could never open.
    let app = spawn_flow().await;
    org_policy(
        &app,
        PolicySettings {
            pod_enabled: Some(true),
            ..Default::default()
        },
    )
    .await;
    let row = app
        .store
        .psa_connection(app.world.connection_id)
        .await
        .expect("read")
        .expect("connection");
    let mut settings = row.settings.clone();
    settings
        .as_object_mut()
        .expect("settings object")
        .remove("pod_origins");
    app.store
        .save_psa_connection(
            Some(row.id),
            &NewPsaConnection {
                kind: row.kind.clone(),
                name: row.name.clone(),
                settings,
                secrets_sealed: row.secrets_sealed.clone(),
            },
            &Default::default(),
        )
        .await
        .expect("connection saved");

    // Act
    let ticket = app.new_ticket(app.world.contacts.alex, "No pod here").await;

    // Assert
    let notes = app.wait_for_note(ticket, "/verify/").await;
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(!notes[0].text.contains("deskproof pod"), "{:?}", notes[0]);
}

#[tokio::test]
async fn the_pod_shows_the_code_to_read_back_and_then_until_when_the_approval_counts() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Read back").await;
    let (token, _) = opened(&app, ticket).await;

    // Act
    let (_, attempt) = pod_call(&app, "pod_verify", &[("pod_token", &token)]).await;
    let push = app
        .world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("push");
    let (_, waiting) = pod_call(&app, "pod_status", &[("pod_token", &token)]).await;
    app.world
        .duo
        .approve_latest("alex.example")
        .expect("pending");
    let approved = wait_for_pod_outcome(&app, &token).await;
    let (status, again) = pod_call(&app, "pod_verify", &[("pod_token", &token)]).await;

    // Assert: the code of the push, on the attempt as the pod gets it and while it waits.
    let code = code_of(&push);
    assert_eq!(attempt["caller_code"], code.as_str(), "{attempt}");
    assert_eq!(
        waiting["page"]["attempts"][0]["state"], "pushed",
        "{waiting}"
    );
    assert_eq!(
        waiting["page"]["attempts"][0]["caller_code"],
        code.as_str(),
        "{waiting}"
    );
    assert!(waiting["page"]["verified_until"].is_null(), "{waiting}");
    // Approved: no code any more, and until when the approval counts.
    let newest = &approved["page"]["attempts"][0];
    assert_eq!(newest["state"], "approved", "{approved}");
    assert!(newest["caller_code"].is_null(), "{approved}");
    let until = approved["page"]["verified_until"]
        .as_str()
        .expect("verified until");
    assert!(until.ends_with(" UTC"), "{until}");
    assert_eq!(newest["verified_until"], until, "{approved}");
    // What the pod no longer offers, the server refuses too.
    assert_ne!(status, 200, "{again}");
    assert!(text(&again).contains("counts until"), "{again}");
}

#[tokio::test]
async fn the_ticket_screen_frames_the_pod_at_the_height_registered_for_it() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Height").await;
    let screen = || async {
        reqwest::get(app.world.cw.screen_url(ticket))
            .await
            .expect("screen")
            .text()
            .await
            .expect("html")
    };

    // Act
    let unregistered = screen().await;
    let client = deskproof::psa::connectwise::ConnectWiseClient::new(app.world.cw.client_config())
        .expect("client");
    client
        .register_hosted_setup(&deskproof::psa::connectwise::model::HostedSetup {
            id: None,
            screen_id: 25,
            description: "deskproof".into(),
            url: format!(
                "{}/pod/connectwise/{}?id=[cw_id]",
                app.url, app.world.connection_id
            ),
            kind: "Pod".into(),
            origin: None,
            pod_height: Some(260),
            disabled_flag: None,
        })
        .await
        .expect("registered");
    let registered = screen().await;

    // Assert: deskproof's own height when nothing is registered, else the registered one.
    let frame = |html: &str| {
        html.lines()
            .find(|l| l.contains("<iframe id=\"pod\""))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert_eq!(deskproof::psa::connectwise::model::POD_HEIGHT, 320);
    assert!(
        frame(&unregistered).contains("style=\"height:320px\""),
        "{unregistered}"
    );
    assert!(
        frame(&registered).contains("style=\"height:260px\""),
        "{registered}"
    );
}
