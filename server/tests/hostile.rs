//! Hostile input against every endpoint over real HTTP: each request is refused with a 4xx and
//! a clear message, nothing is stored, no push is sent, and deskproof keeps serving.
mod support;

use std::time::Duration;

use deskproof::crypto::MasterKey;
use deskproof::verify::link::{self, LinkClaims};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use support::flow::{flow_config, spawn_flow, FlowApp};

/// The tables a hostile request must leave alone.
const TABLES: [&str; 7] = [
    "inbound_events",
    "tickets",
    "jobs",
    "notes",
    "attempts",
    "audit_log",
    "users",
];

#[derive(Clone, Copy)]
enum Who {
    /// The signed-in technician's client.
    Technician,
    /// A client with no session.
    Stranger,
}

struct Case {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    who: Who,
    /// The expected status.
    status: u16,
    /// Words the answer must contain.
    says: &'static str,
}

fn case(name: &'static str, path: impl Into<String>) -> Case {
    Case {
        name,
        method: reqwest::Method::POST,
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        who: Who::Technician,
        status: 400,
        says: "",
    }
}

impl Case {
    fn get(mut self) -> Self {
        self.method = reqwest::Method::GET;
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.header("content-type", "application/json").body(body)
    }
    fn form(self, body: impl Into<Vec<u8>>) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
    fn stranger(mut self) -> Self {
        self.who = Who::Stranger;
        self
    }
    fn expect(mut self, status: u16, says: &'static str) -> Self {
        self.status = status;
        self.says = says;
        self
    }
}

fn form_token(token: &str) -> String {
    format!("token={}", urlencode(token))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A link token signed with the deployment's own key, for any claims.
fn signed(app: &FlowApp, claims: LinkClaims) -> String {
    let key =
        MasterKey::from_config(&flow_config(&app.db_url, app.dir.path())).expect("master key");
    link::sign(key.link_key(), claims)
}

async fn counts(app: &FlowApp) -> Vec<i64> {
    let mut out = Vec::new();
    for table in TABLES {
        out.push(app.count(&format!("SELECT COUNT(*) FROM {table}")).await);
    }
    out
}

fn nested(depth: usize) -> Vec<u8> {
    let mut s = "[".repeat(depth);
    s.push_str(&"]".repeat(depth));
    s.into_bytes()
}

#[tokio::test]
async fn every_hostile_request_is_refused_clearly_stores_nothing_and_the_service_keeps_serving() {
    // Arrange: one ticket taken in, with its link, and a genuine signed callback to tamper with.
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Genuine").await;
    let token = app.link_token(ticket).await;
    app.wait_until_idle().await;
    let delivery = app.world.cw.deliveries().pop().expect("a delivery");
    let signing_key = app.world.cw.config().signing_key;
    let hook = format!("/hooks/connectwise/{}", app.world.connection_id);
    let genuine: serde_json::Value = serde_json::from_slice(&delivery.body).expect("json body");
    let resigned = |body: &serde_json::Value| {
        let bytes = serde_json::to_vec(body).expect("body");
        let signature = deskproof::psa::connectwise::callback::sign(&signing_key, &bytes);
        (bytes, signature)
    };
    let mut no_message_id = genuine.clone();
    no_message_id["MessageId"] = serde_json::Value::Null;
    let (no_message_id, no_message_id_sig) = resigned(&no_message_id);
    let mut other_host = genuine.clone();
    other_host["Metadata"]["key_url"] = serde_json::json!(
        "https://attacker.example/v2025_1/system/callbackkey/index.rails?companyName=examplemsp"
    );
    let (other_host, other_host_sig) = resigned(&other_host);
    let mut metadata_ip = genuine.clone();
    metadata_ip["Metadata"]["key_url"] =
        serde_json::json!("http://169.254.169.254/latest/meta-data/system/callbackkey/index.rails");
    let (metadata_ip, metadata_ip_sig) = resigned(&metadata_ip);
    let mut forged = genuine.clone();
    forged["ID"] = serde_json::json!(999_999);
    forged["MessageId"] = serde_json::json!("forged-message");
    let forged = serde_json::to_vec(&forged).expect("body");
    let (case_id, org, expires) = support::flow::claims_in(&token);
    let expired = signed(
        &app,
        LinkClaims {
            case_id,
            organization_id: org,
            expires_at: 1_000,
        },
    );
    let other_tenant = signed(
        &app,
        LinkClaims {
            case_id,
            organization_id: org + 1,
            expires_at: expires,
        },
    );
    let unknown_case = signed(
        &app,
        LinkClaims {
            case_id: case_id + 1000,
            organization_id: org,
            expires_at: expires,
        },
    );
    let mut tampered = token.clone();
    let last = tampered.pop().expect("char");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let foreign_key = link::sign(
        &[9; 32],
        LinkClaims {
            case_id,
            organization_id: org,
            expires_at: expires,
        },
    );
    let big = "x".repeat(20 * 1024);
    let sig = ("x-content-signature", delivery.signature.clone());

    let cases = vec![
        // Webhooks.
        case("webhook over 64 KiB", &hook)
            .json(format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024)))
            .header(sig.0, sig.1.clone())
            .expect(413, "larger than the 64 KiB"),
        case("webhook as text/plain", &hook)
            .header("content-type", "text/plain")
            .body(delivery.body.clone())
            .header(sig.0, sig.1.clone())
            .expect(415, "application/json"),
        case("webhook as a form", &hook)
            .form(b"a=b".to_vec())
            .expect(415, "application/json"),
        case("webhook as XML", &hook)
            .header("content-type", "application/xml")
            .body(b"<a/>".to_vec())
            .expect(415, "not accepted"),
        case("webhook without a signature", &hook)
            .json(delivery.body.clone())
            .expect(401, "no x-content-signature"),
        case("webhook with an empty signature", &hook)
            .json(delivery.body.clone())
            .header(sig.0, "")
            .expect(401, "no x-content-signature"),
        case("webhook with a forged signature", &hook)
            .json(forged.clone())
            .header(sig.0, sig.1.clone())
            .expect(401, "signature does not match"),
        case("webhook with a signature that is not base64", &hook)
            .json(delivery.body.clone())
            .header(sig.0, "%%%not base64%%%")
            .expect(401, "signature does not match"),
        case("webhook with invalid UTF-8", &hook)
            .json(vec![b'{', 0xff, 0xfe, b'}'])
            .header(sig.0, sig.1.clone())
            .expect(400, "malformed"),
        case("webhook JSON bomb", &hook)
            .json(nested(5000))
            .header(sig.0, sig.1.clone())
            .expect(400, "malformed"),
        case("webhook deep object bomb", &hook)
            .json("{\"a\":".repeat(3000) + "1" + &"}".repeat(3000))
            .header(sig.0, sig.1.clone())
            .expect(400, "malformed"),
        case("webhook that is a JSON array", &hook)
            .json(b"[]".to_vec())
            .header(sig.0, sig.1.clone())
            .expect(400, "malformed"),
        case("webhook that is not JSON", &hook)
            .json(b"'; DROP TABLE tickets; --".to_vec())
            .header(sig.0, sig.1.clone())
            .expect(400, "malformed"),
        case("webhook with an empty body", &hook)
            .json(Vec::new())
            .header(sig.0, sig.1.clone())
            .expect(400, "malformed"),
        case("webhook without Metadata.key_url", &hook)
            .json(br#"{"MessageId":"m","Action":"added","Type":"ticket","ID":1}"#.to_vec())
            .header(sig.0, sig.1.clone())
            .expect(400, "no Metadata.key_url"),
        case("webhook with a key_url on another host", &hook)
            .json(other_host)
            .header(sig.0, other_host_sig)
            .expect(401, "not on the configured ConnectWise host"),
        case("webhook with a key_url at a metadata address", &hook)
            .json(metadata_ip)
            .header(sig.0, metadata_ip_sig)
            .expect(401, "not on the configured ConnectWise host"),
        case("webhook signed but without a MessageId", &hook)
            .json(no_message_id)
            .header(sig.0, no_message_id_sig)
            .expect(400, "no MessageId"),
        case(
            "webhook for a connection that does not exist",
            "/hooks/connectwise/999",
        )
        .json(delivery.body.clone())
        .header(sig.0, sig.1.clone())
        .expect(404, "no such ConnectWise connection"),
        case(
            "webhook for a connection id that is SQL",
            "/hooks/connectwise/1%20OR%201=1",
        )
        .json(delivery.body.clone())
        .header(sig.0, sig.1.clone())
        .expect(400, "Invalid URL"),
        case("webhook by GET", &hook).get().expect(405, ""),
        // Server functions: authentication and cross-site requests.
        case("push without a session", "/api/send_push")
            .form(form_token(&token))
            .stranger()
            .expect(401, "Please sign in."),
        case("page data without a session", "/api/verification")
            .form(form_token(&token))
            .stranger()
            .expect(401, "Please sign in."),
        case("fresh link without a session", "/api/fresh_link")
            .form(form_token(&expired))
            .stranger()
            .expect(401, "Please sign in."),
        case("push from another origin", "/api/send_push")
            .form(form_token(&token))
            .header("origin", "https://evil.example")
            .expect(403, "Cross-site requests are not accepted."),
        case("push marked cross-site", "/api/send_push")
            .form(form_token(&token))
            .header("sec-fetch-site", "cross-site")
            .expect(403, "Cross-site"),
        case("push from a sibling site", "/api/send_push")
            .form(form_token(&token))
            .header("sec-fetch-site", "same-site")
            .expect(403, "Cross-site"),
        case("push from a sandboxed page", "/api/send_push")
            .form(form_token(&token))
            .header("origin", "null")
            .expect(403, "Cross-site"),
        case("push from a look-alike host", "/api/send_push")
            .form(form_token(&token))
            .header("origin", "http://127.0.0.1.evil.example")
            .expect(403, "Cross-site"),
        case("sign-in from another origin", "/api/sign_in")
            .form(b"username=casey&password=correct+horse+battery".to_vec())
            .header("origin", "https://evil.example")
            .stranger()
            .expect(403, "Cross-site"),
        // Server functions: links.
        case("push with a tampered link", "/api/send_push")
            .form(form_token(&tampered))
            .expect(400, "This link is not valid."),
        case("push with a link signed by another key", "/api/send_push")
            .form(form_token(&foreign_key))
            .expect(400, "This link is not valid."),
        case("push with an expired link", "/api/send_push")
            .form(form_token(&expired))
            .expect(400, "This link has expired."),
        case("push with another tenant's ticket", "/api/send_push")
            .form(form_token(&other_tenant))
            .expect(400, "This link is not valid."),
        case("push for a ticket that does not exist", "/api/send_push")
            .form(form_token(&unknown_case))
            .expect(400, "not known to deskproof"),
        case("push with SQL for a link", "/api/send_push")
            .form(form_token("' OR 1=1; DELETE FROM attempts; --"))
            .expect(400, "This link is not valid."),
        case("push with HTML for a link", "/api/send_push")
            .form(form_token("<script>alert(1)</script>.x"))
            .expect(400, "This link is not valid."),
        case("push with a path for a link", "/api/send_push")
            .form(form_token("../../etc/passwd"))
            .expect(400, "This link is not valid."),
        case("push with a 12 KiB link", "/api/send_push")
            .form(form_token(&"A".repeat(12 * 1024)))
            .expect(400, "This link is not valid."),
        case("page data with a tampered link", "/api/verification")
            .form(form_token(&tampered))
            .expect(400, "This link is not valid."),
        case("history with an expired link", "/api/attempts")
            .form(form_token(&expired))
            .expect(400, "This link has expired."),
        case("fresh link for a tampered link", "/api/fresh_link")
            .form(form_token(&tampered))
            .expect(400, "This link is not valid."),
        case("fresh link for another tenant's ticket", "/api/fresh_link")
            .form(form_token(&other_tenant))
            .expect(400, "This link is not valid."),
        // Server functions: bodies.
        case("push with a body over 16 KiB", "/api/send_push")
            .form(form_token(&big))
            .expect(413, "larger than the 16 KiB"),
        case("push as text/plain", "/api/send_push")
            .header("content-type", "text/plain")
            .body(form_token(&token))
            .expect(415, "is not accepted here"),
        case("push as multipart", "/api/send_push")
            .header("content-type", "multipart/form-data; boundary=x")
            .body(b"--x\r\n\r\n--x--".to_vec())
            .expect(415, "is not accepted here"),
        case("push with invalid UTF-8", "/api/send_push")
            .form(vec![b't', b'o', b'k', b'e', b'n', b'=', 0xff, 0xfe])
            .expect(400, ""),
        case("push with percent-encoded invalid UTF-8", "/api/send_push")
            .form(b"token=%FF%FE%00".to_vec())
            .expect(400, ""),
        case("push without its argument", "/api/send_push")
            .form(b"other=1".to_vec())
            .expect(400, ""),
        case("push with a JSON bomb", "/api/send_push")
            .json(nested(5000))
            .expect(400, ""),
        case(
            "push by GET, as a link scanner would",
            format!("/api/send_push?{}", form_token(&token)),
        )
        .get()
        .expect(405, "it is called with POST"),
        case("a server function that does not exist", "/api/drop_tables")
            .form(b"a=1".to_vec())
            .expect(400, "Could not find a server function"),
        case("sign-in with SQL for a name", "/api/sign_in")
            .form(b"username=admin%27+OR+%271%27%3D%271&password=x".to_vec())
            .stranger()
            .expect(400, ""),
        case("sign-in with HTML for a name", "/api/sign_in")
            .form(b"username=%3Cscript%3Ealert(1)%3C%2Fscript%3E&password=x".to_vec())
            .stranger()
            .expect(400, ""),
        case("sign-in with a NUL in the name", "/api/sign_in")
            .form(b"username=casey%00&password=correct+horse+battery".to_vec())
            .stranger()
            .expect(400, ""),
        // Other routes.
        case("a POST to the health check", "/healthz").expect(405, ""),
        case("a POST to a page", format!("/verify/{token}"))
            .form(b"a=1".to_vec())
            .expect(405, ""),
    ];
    assert!(cases.len() >= 50, "{} cases", cases.len());

    let before = counts(&app).await;
    let stranger = support::new_client();
    let mut failures = Vec::new();
    for c in cases {
        // Act
        let client = match c.who {
            Who::Technician => &app.client,
            Who::Stranger => &stranger,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &c.headers {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let mut request = client
            .request(c.method.clone(), format!("{}{}", app.url, c.path))
            .headers(headers);
        if !c.body.is_empty() || c.headers.iter().any(|(n, _)| *n == "content-type") {
            request = request.body(c.body.clone());
        }
        let res = request.send().await;

        // Assert
        let (status, text) = match res {
            Ok(res) => (res.status().as_u16(), res.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        if status != c.status || !text.contains(c.says) {
            failures.push(format!(
                "{}: got {status} {:?}, wanted {} with {:?}",
                c.name,
                text.chars().take(200).collect::<String>(),
                c.status,
                c.says
            ));
        }
        let health = app
            .client
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(health.ok(), Some(200), "not serving after {}", c.name);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.wait_until_idle().await;
    assert_eq!(counts(&app).await, before, "rows in {TABLES:?}");
    assert!(app.world.duo.pushes().is_empty(), "no push was sent");
    assert_eq!(app.note_texts(ticket).len(), 1, "only the link note");
}

#[tokio::test]
async fn a_replayed_delivery_is_answered_as_a_duplicate_and_stores_nothing_new() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app.new_ticket(app.world.contacts.alex, "Replay").await;
    app.link_token(ticket).await;
    app.wait_until_idle().await;
    let first = app.world.cw.deliveries().pop().expect("a delivery");
    let before = counts(&app).await;

    // Act: the very same signed request, three times.
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(app.world.cw.redeliver(&first).await);
    }

    // Assert: a PSA retrying is told it was already accepted; nothing new is stored.
    for a in &answers {
        assert_eq!(a.status, Some(200), "{a:?}");
    }
    app.wait_until_idle().await;
    assert_eq!(counts(&app).await, before);
    assert_eq!(app.note_texts(ticket).len(), 1);
}
