//! The ConnectWise client against the strict simulator, over real HTTP, and the simulator's own
//! strictness seen from a plain HTTP client.
use std::time::{Duration, Instant};

use deskproof::psa::connectwise::model::HostedSetup;
use deskproof::psa::connectwise::{ConnectWiseClient, ConnectWiseConfig};
use deskproof::psa::{CompanyId, ContactId, MissingField, Psa, PsaError, PsaKind, TicketId};
use deskproof::secret::Secret;
use deskproof::sim::connectwise::ConnectWiseSim;
use serde_json::{json, Value};
use time::OffsetDateTime;

struct Seeded {
    sim: ConnectWiseSim,
    client: ConnectWiseClient,
    company: CompanyId,
    contact: ContactId,
    ticket: TicketId,
}

async fn seeded() -> Seeded {
    let sim = ConnectWiseSim::start().await.unwrap();
    let company = sim.add_company("Contoso");
    let contact = sim.add_contact_at(
        Some(company),
        "Alex",
        "Example",
        "alex.example@contoso.example",
    );
    let ticket = sim
        .create_ticket(
            Some(company),
            Some(contact),
            "Password reset for Alex Example",
        )
        .await
        .id;
    let client = ConnectWiseClient::new(sim.client_config()).unwrap();
    Seeded {
        sim,
        client,
        company,
        contact,
        ticket,
    }
}

fn with(sim: &ConnectWiseSim, change: impl FnOnce(&mut ConnectWiseConfig)) -> ConnectWiseClient {
    let mut config = sim.client_config();
    change(&mut config);
    ConnectWiseClient::new(config).unwrap()
}

#[tokio::test]
async fn the_client_fetches_a_ticket_and_its_contact_with_the_email_from_communication_items() {
    let s = seeded().await;

    let ticket = s.client.fetch_ticket(s.ticket).await.unwrap();
    let contact = s.client.fetch_contact(s.contact).await.unwrap();

    assert_eq!(s.client.kind(), PsaKind::ConnectWise);
    assert_eq!(ticket.id, s.ticket);
    assert_eq!(ticket.summary, "Password reset for Alex Example");
    assert_eq!(ticket.company_id, Some(s.company));
    assert_eq!(ticket.company_name.as_deref(), Some("Contoso"));
    assert_eq!(ticket.contact_id, Some(s.contact));
    assert_eq!(contact.first_name.as_deref(), Some("Alex"));
    assert_eq!(contact.last_name.as_deref(), Some("Example"));
    assert_eq!(
        contact.email.as_deref(),
        Some("alex.example@contoso.example")
    );
}

#[tokio::test]
async fn a_complete_ticket_loads_and_normalizes() {
    let s = seeded().await;

    let loaded = s.client.load_ticket(s.ticket).await.unwrap();

    let normalized = loaded.normalized.unwrap();
    assert_eq!(normalized.first_name, "Alex");
    assert_eq!(normalized.company_id, s.company);
}

#[tokio::test]
async fn tickets_missing_a_contact_a_last_name_or_a_company_report_exactly_that() {
    let s = seeded().await;
    let no_last = s
        .sim
        .add_contact_at(Some(s.company), "Sam", "", "sam@contoso.example");
    let no_contact = s.sim.create_ticket(Some(s.company), None, "a").await.id;
    let missing_last = s
        .sim
        .create_ticket(Some(s.company), Some(no_last), "b")
        .await
        .id;
    let no_company = s.sim.create_ticket(None, Some(s.contact), "c").await.id;

    let missing = |id| {
        let client = s.client.clone();
        async move {
            client
                .load_ticket(id)
                .await
                .unwrap()
                .normalized
                .unwrap_err()
                .fields()
                .to_vec()
        }
    };

    assert_eq!(missing(no_contact).await, vec![MissingField::Contact]);
    assert_eq!(missing(missing_last).await, vec![MissingField::LastName]);
    assert_eq!(missing(no_company).await, vec![MissingField::Company]);
}

#[tokio::test]
async fn an_internal_note_is_recorded_as_internal_without_notifications() {
    let s = seeded().await;

    let note = s
        .client
        .post_internal_note(s.ticket, "Identity verified via Duo Push.")
        .await
        .unwrap();

    let notes = s.sim.notes(s.ticket);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].id, note.0);
    assert_eq!(notes[0].text, "Identity verified via Duo Push.");
    assert!(notes[0].internal_analysis_flag);
    assert!(!notes[0].process_notifications);
    assert!(!notes[0].detail_description_flag);
    assert!(!notes[0].resolution_flag);
    assert!(!notes[0].is_customer_visible());
}

#[tokio::test]
async fn a_wrong_private_key_is_unauthorized() {
    let s = seeded().await;
    let client = with(&s.sim, |c| c.private_key = Secret::new("wrong"));

    let result = client.fetch_ticket(s.ticket).await;

    assert!(matches!(result, Err(PsaError::Unauthorized)), "{result:?}");
    assert!(!result.unwrap_err().is_retryable());
}

#[tokio::test]
async fn a_wrong_company_is_unauthorized() {
    let s = seeded().await;
    let client = with(&s.sim, |c| c.company_id = "othermsp".into());

    let result = client.fetch_ticket(s.ticket).await;

    assert!(matches!(result, Err(PsaError::Unauthorized)));
}

#[tokio::test]
async fn a_missing_client_id_is_rejected() {
    let s = seeded().await;
    let client = with(&s.sim, |c| c.client_id = String::new());

    let result = client.fetch_ticket(s.ticket).await;

    match result {
        Err(PsaError::Rejected { status, message }) => {
            assert_eq!(status, 400);
            assert!(message.contains("clientId"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_ticket_is_not_found() {
    let s = seeded().await;

    let result = s.client.fetch_ticket(TicketId(999_999)).await;

    assert!(matches!(result, Err(PsaError::NotFound { .. })));
}

#[tokio::test]
async fn a_503_on_a_note_post_is_retryable_and_the_retry_succeeds() {
    let s = seeded().await;
    s.sim.fail_next_note_posts(1, 503);

    let first = s.client.post_internal_note(s.ticket, "x").await;
    let second = s.client.post_internal_note(s.ticket, "x").await;

    let err = first.unwrap_err();
    assert!(matches!(err, PsaError::Server { status: 503 }));
    assert!(err.is_retryable());
    assert!(second.is_ok());
    assert_eq!(s.sim.notes(s.ticket).len(), 1);
}

#[tokio::test]
async fn a_429_on_a_note_post_is_retryable_with_its_retry_after() {
    let s = seeded().await;
    s.sim.fail_next_note_posts(2, 429);

    let first = s
        .client
        .post_internal_note(s.ticket, "x")
        .await
        .unwrap_err();
    let second = s
        .client
        .post_internal_note(s.ticket, "x")
        .await
        .unwrap_err();

    for err in [first, second] {
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    }
    assert!(s.sim.notes(s.ticket).is_empty());
}

#[tokio::test]
async fn my_member_info_accepts_the_right_member_hash_and_refuses_a_forged_one() {
    let s = seeded().await;
    s.sim.add_member("jtech", "good-member-hash");

    let good = s
        .client
        .member_info("jtech", &Secret::new("good-member-hash"))
        .await
        .unwrap();
    let forged = s
        .client
        .member_info("jtech", &Secret::new("forged-hash"))
        .await;
    let other_member = s
        .client
        .member_info("admin", &Secret::new("good-member-hash"))
        .await;

    assert_eq!(good.identifier, "jtech");
    assert!(matches!(forged, Err(PsaError::Unauthorized)));
    assert!(matches!(other_member, Err(PsaError::Unauthorized)));
}

#[tokio::test]
async fn callbacks_and_pods_are_registered() {
    let s = seeded().await;

    let callback = s
        .client
        .register_ticket_callback("https://deskproof.example/hooks/cw?recordId=", "deskproof")
        .await
        .unwrap();
    let pod = s
        .client
        .register_hosted_setup(&HostedSetup {
            id: None,
            screen_id: 1,
            description: "deskproof".into(),
            url: "https://deskproof.example/embed/ticket/[cw_id]".into(),
            kind: "Pod".into(),
            origin: Some("https://deskproof.example".into()),
            pod_height: Some(300),
            disabled_flag: None,
        })
        .await
        .unwrap();

    assert!(callback.id.is_some());
    assert_eq!(
        s.client.list_callbacks().await.unwrap(),
        vec![callback.clone()]
    );
    assert_eq!(s.sim.callbacks(), vec![callback]);
    assert!(pod.id.is_some());
    assert_eq!(s.sim.hosted_setups(), vec![pod]);
}

#[tokio::test]
async fn an_incomplete_pod_registration_is_a_validation_error() {
    let s = seeded().await;

    let result = s
        .client
        .register_hosted_setup(&HostedSetup {
            id: None,
            screen_id: 1,
            description: "deskproof".into(),
            url: "https://deskproof.example/embed".into(),
            kind: "Sidebar".into(),
            origin: None,
            pod_height: None,
            disabled_flag: None,
        })
        .await;

    assert!(matches!(
        result,
        Err(PsaError::Rejected { status: 400, .. })
    ));
}

#[tokio::test]
async fn tickets_since_a_time_are_read_across_pages() {
    let s = seeded().await;
    for n in 0..4 {
        s.sim
            .create_ticket(None, None, &format!("ticket {n}"))
            .await;
    }
    let client = s.client.clone().with_page_size(2);
    let hour = time::Duration::hours(1);

    let recent = client
        .list_tickets_since(OffsetDateTime::now_utc() - hour)
        .await
        .unwrap();
    let future = client
        .list_tickets_since(OffsetDateTime::now_utc() + hour)
        .await
        .unwrap();

    let ids: Vec<i64> = recent.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert!(future.is_empty());
}

#[tokio::test]
async fn configured_latency_delays_every_call() {
    let s = seeded().await;
    s.sim.set_latency(Duration::from_millis(50));

    let started = Instant::now();
    s.client.fetch_ticket(s.ticket).await.unwrap();

    assert!(started.elapsed() >= Duration::from_millis(50));
}

// The simulator seen from a plain HTTP client.

fn raw(s: &Seeded, path: &str) -> reqwest::RequestBuilder {
    let config = s.sim.config();
    reqwest::Client::new()
        .get(format!("{}{path}", s.sim.base_url()))
        .basic_auth(
            format!("{}+{}", config.company_id, config.public_key),
            Some(config.private_key),
        )
        .header("clientId", config.client_id)
}

fn raw_post(s: &Seeded, path: &str, body: Value) -> reqwest::RequestBuilder {
    let config = s.sim.config();
    reqwest::Client::new()
        .post(format!("{}{path}", s.sim.base_url()))
        .basic_auth(
            format!("{}+{}", config.company_id, config.public_key),
            Some(config.private_key),
        )
        .header("clientId", config.client_id)
        .json(&body)
}

#[tokio::test]
async fn the_simulator_answers_errors_in_connectwise_shape() {
    let s = seeded().await;

    let missing = raw(&s, "/service/tickets/999999").send().await.unwrap();
    let unauth = reqwest::Client::new()
        .get(format!("{}/service/tickets/{}", s.sim.base_url(), s.ticket))
        .header("clientId", "x")
        .send()
        .await
        .unwrap();
    let no_client_id = reqwest::Client::new()
        .get(format!("{}/service/tickets/{}", s.sim.base_url(), s.ticket))
        .send()
        .await
        .unwrap();

    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "NotFound");
    assert!(body["message"].as_str().unwrap().contains("999999"));
    assert_eq!(unauth.status(), 401);
    assert_eq!(
        unauth.json::<Value>().await.unwrap()["code"],
        "Unauthorized"
    );
    assert_eq!(no_client_id.status(), 400);
}

#[tokio::test]
async fn the_simulator_serves_both_codebases_and_refuses_others() {
    let s = seeded().await;
    let config = s.sim.config();
    let get = |codebase: &str| {
        reqwest::Client::new()
            .get(format!(
                "{}/{codebase}/apis/3.0/service/tickets/{}",
                s.sim.url(),
                s.ticket
            ))
            .basic_auth(
                format!("{}+{}", config.company_id, config.public_key),
                Some(config.private_key.clone()),
            )
            .header("clientId", config.client_id.clone())
            .send()
    };

    assert_eq!(get("v4_6_release").await.unwrap().status(), 200);
    assert_eq!(get("v2025_1").await.unwrap().status(), 200);
    assert_eq!(get("nonsense").await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_note_without_text_or_with_bad_flags_is_a_validation_error() {
    let s = seeded().await;
    let path = format!("/service/tickets/{}/notes", s.ticket);

    let no_text = raw_post(&s, &path, json!({"internalAnalysisFlag": true}))
        .send()
        .await
        .unwrap();
    let bad_flag = raw_post(
        &s,
        &path,
        json!({"text": "x", "internalAnalysisFlag": "yes"}),
    )
    .send()
    .await
    .unwrap();
    let unknown_ticket = raw_post(
        &s,
        "/service/tickets/999999/notes",
        json!({"text": "x", "internalAnalysisFlag": true}),
    )
    .send()
    .await
    .unwrap();

    assert_eq!(no_text.status(), 400);
    let body: Value = no_text.json().await.unwrap();
    assert_eq!(body["code"], "InvalidObject");
    assert_eq!(body["errors"][0]["field"], "text");
    assert_eq!(bad_flag.status(), 400);
    assert_eq!(unknown_ticket.status(), 404);
    assert!(s.sim.all_notes().is_empty());
}

#[tokio::test]
async fn a_note_without_flags_becomes_a_customer_visible_discussion_note() {
    let s = seeded().await;

    let response = raw_post(
        &s,
        &format!("/service/tickets/{}/notes", s.ticket),
        json!({"text": "hello"}),
    )
    .send()
    .await
    .unwrap();

    assert_eq!(response.status(), 201);
    let notes = s.sim.notes(s.ticket);
    assert!(notes[0].is_customer_visible());
    assert!(notes[0].process_notifications);
}

#[tokio::test]
async fn collections_page_and_refuse_bad_paging() {
    let s = seeded().await;
    for n in 0..3 {
        s.sim.add_company(&format!("Company {n}"));
    }

    let first: Vec<Value> = raw(&s, "/company/companies?page=1&pageSize=3")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second: Vec<Value> = raw(&s, "/company/companies?page=2&pageSize=3")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let huge = raw(&s, "/company/companies?pageSize=5000")
        .send()
        .await
        .unwrap();
    let zero = raw(&s, "/company/companies?page=0").send().await.unwrap();
    let bad_conditions = raw(&s, "/service/tickets?conditions=summary%20like%20%22x%22")
        .send()
        .await
        .unwrap();

    assert_eq!(first.len(), 3);
    assert_eq!(second.len(), 1);
    assert_eq!(huge.status(), 200);
    assert_eq!(zero.status(), 400);
    assert_eq!(bad_conditions.status(), 400);
}

#[tokio::test]
async fn the_key_endpoint_serves_the_key_only_for_the_current_key_url() {
    let s = seeded().await;
    let http = reqwest::Client::new();

    let good: Value = http
        .get(s.sim.key_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wrong_id = http
        .get(format!(
            "{}/v2025_1//system/callbackkey/index.rails?companyName=examplemsp&id=nope",
            s.sim.url()
        ))
        .send()
        .await
        .unwrap();

    assert_eq!(good, json!({"signing_key": "test-signing-key"}));
    assert_eq!(wrong_id.status(), 404);
    assert_eq!(s.sim.key_fetches(), 1);
}

#[tokio::test]
async fn the_sim_pages_create_tickets_and_show_notes_escaped_with_links() {
    let s = seeded().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let created: Value = http
        .post(format!("{}/sim/tickets", s.sim.url()))
        .json(&json!({"company_id": s.company.0, "contact_id": s.contact.0, "summary": "Via JSON"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = TicketId(created["id"].as_i64().unwrap());
    s.client
        .post_internal_note(id, "Verify <here>: https://deskproof.example/v/abc")
        .await
        .unwrap();
    let page = http
        .get(format!("{}/sim/tickets/{id}", s.sim.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = http
        .get(format!("{}/sim/new-ticket", s.sim.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let submitted = http
        .post(format!("{}/sim/new-ticket", s.sim.url()))
        .form(&[
            ("company", s.company.0.to_string()),
            ("contact", String::new()),
            ("summary", "From the form".into()),
        ])
        .send()
        .await
        .unwrap();

    assert!(page.contains("Via JSON"));
    assert!(page.contains("Verify &lt;here&gt;"));
    assert!(page.contains(r#"<a href="https://deskproof.example/v/abc">"#));
    assert!(page.contains("Internal"));
    assert!(form.contains("Contoso"));
    assert_eq!(submitted.status(), 303);
    let location = submitted.headers()["location"].to_str().unwrap().to_owned();
    let new_id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();
    let ticket = s.client.fetch_ticket(TicketId(new_id)).await.unwrap();
    assert_eq!(ticket.summary, "From the form");
    assert_eq!(ticket.contact_id, None);
}
