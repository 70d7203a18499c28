//! Hostile input against every endpoint over real HTTP: each request is refused with a 4xx and
//! a clear message, nothing is stored (every table is counted before and after each request),
//! no push is sent, and deskproof keeps serving.
mod support;

use std::sync::Arc;
use std::time::Duration;

use app::model::Role;
use base64::Engine as _;
use deskproof::crypto::MasterKey;
use deskproof::sim::demo::DEMO_MEMBER;
use deskproof::verify::link::{self, LinkClaims};
use deskproof::verify::pod::{self as pod, PodClaims};
use reqwest::cookie::Jar;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use support::flow::{claims_in, flow_config, spawn_flow, FlowApp};

/// Every table deskproof stores anything in. The sessions table is counted as well.
const TABLES: [&str; 14] = [
    "users",
    "organizations",
    "duo_accounts",
    "psa_connections",
    "company_mappings",
    "policy_defaults",
    "inbound_events",
    "tickets",
    "jobs",
    "notes",
    "attempts",
    "used_links",
    "audit_log",
    "psa_sweeps",
];

const ADMIN: (&str, &str) = ("morgan.admin", "admin password 123");

#[derive(Clone, Copy, Debug)]
enum Who {
    /// The signed-in technician, from deskproof's own page.
    Technician,
    /// The signed-in technician's session in a request that names no origin at all.
    TechnicianNamingNoOrigin,
    /// The signed-in admin, from deskproof's own page.
    Admin,
    /// The signed-in admin's session in a request that names no origin at all.
    AdminNamingNoOrigin,
    /// A browser with no session, on deskproof's own page.
    Stranger,
    /// No session and no origin: a script, a PSA, the framed pod.
    Bare,
}

struct Case {
    name: String,
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

fn case(name: impl Into<String>, path: impl Into<String>) -> Case {
    Case {
        name: name.into(),
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
    fn fields(self, fields: &[(&str, &str)]) -> Self {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.form(body)
    }
    fn by(mut self, who: Who) -> Self {
        self.who = who;
        self
    }
    fn stranger(self) -> Self {
        self.by(Who::Stranger)
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

fn nested(depth: usize) -> Vec<u8> {
    let mut s = "[".repeat(depth);
    s.push_str(&"]".repeat(depth));
    s.into_bytes()
}

fn object_bomb(depth: usize) -> Vec<u8> {
    ("{\"a\":".repeat(depth) + "1" + &"}".repeat(depth)).into_bytes()
}

/// The deployment's master key, as the server has it.
fn master_key(app: &FlowApp) -> MasterKey {
    MasterKey::from_config(&flow_config(&app.db_url, app.dir.path())).expect("master key")
}

/// A link token signed with the deployment's own key, for any claims.
fn signed(app: &FlowApp, claims: LinkClaims) -> String {
    link::sign(master_key(app).link_key(), claims)
}

/// A pod token signed with the deployment's own key, for any claims.
fn pod_signed(app: &FlowApp, claims: &PodClaims) -> String {
    pod::sign(master_key(app).link_key(), claims)
}

/// The claims inside a pod token, unchecked.
fn pod_claims(token: &str) -> PodClaims {
    let payload = token.split('.').next().expect("payload");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&payload).expect("claims")
}

/// A browser-like client (cookies, `Sec-Fetch-Site: same-origin`) and a client sharing its
/// cookies that sends no origin headers at all.
fn client_pair() -> (reqwest::Client, reqwest::Client) {
    let jar = Arc::new(Jar::default());
    let mut headers = HeaderMap::new();
    headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let bare = reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    (browser, bare)
}

struct Clients {
    technician: (reqwest::Client, reqwest::Client),
    admin: (reqwest::Client, reqwest::Client),
    stranger: reqwest::Client,
    bare: reqwest::Client,
}

impl Clients {
    fn for_who(&self, who: Who) -> &reqwest::Client {
        match who {
            Who::Technician => &self.technician.0,
            Who::TechnicianNamingNoOrigin => &self.technician.1,
            Who::Admin => &self.admin.0,
            Who::AdminNamingNoOrigin => &self.admin.1,
            Who::Stranger => &self.stranger,
            Who::Bare => &self.bare,
        }
    }
}

async fn sign_in(app: &FlowApp, client: &reqwest::Client, who: (&str, &str)) {
    let res = client
        .post(format!("{}/api/sign_in", app.url))
        .header("Accept", "application/json")
        .form(&[("username", who.0), ("password", who.1)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), 200, "{} signs in", who.0);
}

/// Signed-in technician and admin clients (the admin account is created here), a stranger and
/// a bare client.
async fn clients(app: &FlowApp) -> Clients {
    deskproof::auth::create_user(&app.store, ADMIN.0, "Morgan Admin", Role::Admin, ADMIN.1)
        .await
        .expect("admin");
    let technician = client_pair();
    sign_in(app, &technician.0, support::flow::TECH).await;
    let admin = client_pair();
    sign_in(app, &admin.0, ADMIN).await;
    Clients {
        technician,
        admin,
        stranger: support::new_client(),
        bare: reqwest::Client::new(),
    }
}

/// Rows in every table, by table name.
async fn counts(app: &FlowApp) -> Vec<(&'static str, i64)> {
    let sessions = if app.db_url.starts_with("postgres") {
        "tower_sessions.sessions"
    } else {
        "sessions"
    };
    let mut out = Vec::new();
    for table in TABLES.into_iter().chain([sessions]) {
        out.push((
            table,
            app.count(&format!("SELECT COUNT(*) FROM {table}")).await,
        ));
    }
    out
}

async fn send(app: &FlowApp, clients: &Clients, c: &Case) -> (u16, String) {
    let mut headers = HeaderMap::new();
    for (name, value) in &c.headers {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    let mut request = clients
        .for_who(c.who)
        .request(c.method.clone(), format!("{}{}", app.url, c.path))
        .headers(headers);
    if !c.body.is_empty() || c.headers.iter().any(|(n, _)| *n == "content-type") {
        request = request.body(c.body.clone());
    }
    match request.send().await {
        Ok(res) => (res.status().as_u16(), res.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Sends each case and checks, for each on its own, the status and message, that no table
/// gained or lost a row, and that the health check still answers.
async fn run(app: &FlowApp, clients: &Clients, cases: Vec<Case>) -> usize {
    let total = cases.len();
    let mut failures = Vec::new();
    for c in cases {
        assert!(
            !c.says.is_empty(),
            "{}: every case names words its answer must carry",
            c.name
        );
        let before = counts(app).await;

        // Act
        let (status, text) = send(app, clients, &c).await;

        // Assert
        if status != c.status || !text.contains(c.says) {
            failures.push(format!(
                "{}: got {status} {:?}, wanted {} with {:?}",
                c.name,
                text.chars().take(300).collect::<String>(),
                c.status,
                c.says
            ));
        }
        let health = clients
            .stranger
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(health.ok(), Some(200), "not serving after {}", c.name);
        let after = counts(app).await;
        let changed: Vec<String> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b.1 != a.1)
            .map(|(b, a)| format!("{} {} -> {}", b.0, b.1, a.1))
            .collect();
        if !changed.is_empty() {
            failures.push(format!("{}: stored something: {changed:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    println!("{total} hostile requests refused, each storing nothing");
    total
}

#[tokio::test]
async fn hostile_callbacks_and_technician_requests_are_refused_clearly_and_store_nothing() {
    // Arrange: one ticket taken in, with its link, and a genuine signed callback to tamper with.
    let app = spawn_flow().await;
    let clients = clients(&app).await;
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
    let (case_id, org, expires) = claims_in(&token);
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
            organization_id: app.world.autotask.organization_id,
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
            .json(object_bomb(3000))
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
        case("webhook replayed exactly", &hook)
            .json(delivery.body.clone())
            .header(sig.0, sig.1.clone())
            .expect(200, "duplicate delivery: already accepted"),
        case(
            "webhook for a connection that does not exist",
            "/hooks/connectwise/999",
        )
        .json(delivery.body.clone())
        .header(sig.0, sig.1.clone())
        .expect(404, "no such ConnectWise connection"),
        case(
            "webhook for the Autotask connection's id",
            format!("/hooks/connectwise/{}", app.world.autotask.connection_id),
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
        case("webhook by GET", &hook)
            .get()
            .expect(405, "does not accept GET; it answers POST"),
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
        case(
            "push with the session but naming no origin",
            "/api/send_push",
        )
        .form(form_token(&token))
        .by(Who::TechnicianNamingNoOrigin)
        .expect(403, "names neither its Origin nor Sec-Fetch-Site"),
        case("sign-out naming no origin", "/api/sign_out")
            .by(Who::TechnicianNamingNoOrigin)
            .expect(403, "names neither its Origin nor Sec-Fetch-Site"),
        case("sign-in from another origin", "/api/sign_in")
            .form(b"username=casey&password=correct+horse+battery".to_vec())
            .header("origin", "https://evil.example")
            .stranger()
            .expect(403, "Cross-site"),
        case("sign-in naming no origin", "/api/sign_in")
            .form(b"username=casey&password=correct+horse+battery".to_vec())
            .by(Who::Bare)
            .expect(403, "names neither its Origin nor Sec-Fetch-Site"),
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
        case("page data for another tenant's ticket", "/api/verification")
            .form(form_token(&other_tenant))
            .expect(400, "This link is not valid."),
        case("history with an expired link", "/api/attempts")
            .form(form_token(&expired))
            .expect(400, "This link has expired."),
        case("history for another tenant's ticket", "/api/attempts")
            .form(form_token(&other_tenant))
            .expect(400, "This link is not valid."),
        case("fresh link for a tampered link", "/api/fresh_link")
            .form(form_token(&tampered))
            .expect(400, "This link is not valid."),
        case("fresh link for another tenant's ticket", "/api/fresh_link")
            .form(form_token(&other_tenant))
            .expect(400, "This link is not valid."),
        case("fresh link signed by another key", "/api/fresh_link")
            .form(form_token(&foreign_key))
            .expect(400, "This link is not valid."),
        // Server functions: bodies.
        case("push with a body over 16 KiB", "/api/send_push")
            .form(form_token(&big))
            .expect(413, "larger than the 16 KiB"),
        case("push as text/plain", "/api/send_push")
            .header("content-type", "text/plain")
            .body(form_token(&token))
            .expect(415, "is not accepted here"),
        case("push as JSON", "/api/send_push")
            .header("content-type", "application/json")
            .body(br#"{"token":"x"}"#.to_vec())
            .expect(415, "send application/x-www-form-urlencoded"),
        case("push as multipart", "/api/send_push")
            .header("content-type", "multipart/form-data; boundary=x")
            .body(b"--x\r\n\r\n--x--".to_vec())
            .expect(415, "is not accepted here"),
        case("push with invalid UTF-8", "/api/send_push")
            .form(vec![b't', b'o', b'k', b'e', b'n', b'=', 0xff, 0xfe])
            .expect(400, "could not be read: invalid utf-8"),
        case("push with percent-encoded invalid UTF-8", "/api/send_push")
            .form(b"token=%FF%FE%00".to_vec())
            .expect(400, "This link is not valid."),
        case("push without its argument", "/api/send_push")
            .form(b"other=1".to_vec())
            .expect(400, "could not be read: missing field `token`"),
        case("push with a JSON bomb", "/api/send_push")
            .json(nested(5000))
            .expect(415, "send application/x-www-form-urlencoded"),
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
            .expect(400, "Wrong username or password."),
        case("sign-in with HTML for a name", "/api/sign_in")
            .form(b"username=%3Cscript%3Ealert(1)%3C%2Fscript%3E&password=x".to_vec())
            .stranger()
            .expect(400, "Wrong username or password."),
        case("sign-in with a NUL in the name", "/api/sign_in")
            .form(b"username=casey%00&password=correct+horse+battery".to_vec())
            .stranger()
            .expect(400, "Wrong username or password."),
        // Other routes.
        case("a POST to the health check", "/healthz")
            .expect(405, "does not accept POST; it answers GET"),
        case("a POST to a page", format!("/verify/{token}"))
            .form(b"a=1".to_vec())
            .expect(405, "does not accept POST; it answers GET"),
        case("a DELETE of a page", "/signin")
            .body(Vec::new())
            .expect(405, "does not accept DELETE"),
    ];
    let cases: Vec<Case> = cases
        .into_iter()
        .map(|mut c| {
            if c.name == "a DELETE of a page" {
                c.method = reqwest::Method::DELETE;
            }
            c
        })
        .collect();

    let ran = run(&app, &clients, cases).await;

    assert!(ran >= 60, "{ran} cases");
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.wait_until_idle().await;
    assert!(app.world.duo.pushes().is_empty(), "no push was sent");
    assert_eq!(app.note_texts(ticket).len(), 1, "only the link note");
}

#[tokio::test]
async fn hostile_autotask_freshdesk_and_halopsa_webhooks_are_refused_clearly_and_store_nothing() {
    // Arrange: one genuine delivery per PSA, taken in, to replay and tamper with.
    let app = spawn_flow().await;
    let clients = clients(&app).await;
    let w = &app.world;
    let at = w
        .autotask
        .sim
        .create_ticket(
            w.autotask.company,
            Some(w.autotask.alex),
            "Autotask genuine",
        )
        .await;
    let at_delivery = at
        .deliveries
        .first()
        .cloned()
        .expect("an Autotask delivery");
    let (_, fd_delivery) = w
        .freshdesk
        .sim
        .create_ticket(w.freshdesk.alex, "Freshdesk genuine")
        .await;
    let fd_delivery = fd_delivery.expect("a Freshdesk delivery");
    let (_, halo_delivery) = w.halo.sim.create_ticket(w.halo.alex, "Halo genuine").await;
    let halo_delivery = halo_delivery.expect("a Halo delivery");
    for d in [&at_delivery, &fd_delivery, &halo_delivery] {
        assert_eq!(d.status, Some(200), "{d:?}");
    }
    app.wait_until_idle().await;

    let at_secret = w.autotask.sim.config().webhook_secret;
    let at_hook = format!("/hooks/autotask/{}", w.autotask.connection_id);
    let at_sign = |body: &[u8]| deskproof::psa::autotask::webhook::sign(&at_secret, body);
    let at_sig = "x-hook-signature";
    let at_body = at_delivery.body.clone();
    let at_id_bomb = {
        let mut body = br#"{"EntityType":"Ticket","Action":"Create","Id":"#.to_vec();
        body.extend(nested(3000));
        body.push(b'}');
        body
    };
    let at_update = {
        let mut v: serde_json::Value = serde_json::from_slice(&at_body).expect("json");
        v["Id"] = serde_json::Value::Null;
        serde_json::to_vec(&v).expect("body")
    };

    let fd_config = w.freshdesk.sim.config();
    let fd_header: &'static str = Box::leak(fd_config.webhook_header.to_ascii_lowercase().into());
    let fd_secret = fd_config.webhook_secret.clone();
    let fd_hook = format!("/hooks/freshdesk/{}", w.freshdesk.connection_id);

    let halo_auth = w.halo.sim.webhook_authorization();
    let halo_config = w.halo.sim.config();
    let halo_hook = format!("/hooks/halopsa/{}", w.halo.connection_id);
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024)).into_bytes();
    let invalid_utf8 = vec![b'{', 0xff, 0xfe, b'}'];

    let cases = vec![
        // Autotask: X-Hook-Signature, HMAC-SHA1 of the raw body.
        case("Autotask webhook without a signature", &at_hook)
            .json(at_body.clone())
            .expect(401, "the X-Hook-Signature header is missing"),
        case("Autotask webhook signed with another secret", &at_hook)
            .json(at_body.clone())
            .header(
                at_sig,
                deskproof::psa::autotask::webhook::sign("guessed-secret", &at_body),
            )
            .expect(401, "the X-Hook-Signature does not match"),
        case("Autotask webhook whose body was changed", &at_hook)
            .json(at_update.clone())
            .header(at_sig, at_sign(&at_body))
            .expect(401, "the X-Hook-Signature does not match"),
        case(
            "Autotask webhook with a signature that is not base64",
            &at_hook,
        )
        .json(at_body.clone())
        .header(at_sig, "sha1=%%%")
        .expect(401, "the X-Hook-Signature does not match"),
        case("Autotask webhook with a SHA-256 style signature", &at_hook)
            .json(at_body.clone())
            .header(at_sig, at_sign(&at_body).replace("sha1=", "sha256="))
            .expect(401, "the X-Hook-Signature does not match"),
        case("Autotask webhook as text/plain", &at_hook)
            .header("content-type", "text/plain")
            .body(at_body.clone())
            .header(at_sig, at_sign(&at_body))
            .expect(415, "send application/json"),
        case("Autotask webhook over 64 KiB", &at_hook)
            .json(big.clone())
            .header(at_sig, at_sign(&big))
            .expect(413, "larger than the 64 KiB"),
        case("Autotask webhook with invalid UTF-8", &at_hook)
            .json(invalid_utf8.clone())
            .header(at_sig, at_sign(&invalid_utf8))
            .expect(400, "not an Autotask webhook"),
        case("Autotask webhook JSON bomb", &at_hook)
            .json(nested(5000))
            .header(at_sig, at_sign(&nested(5000)))
            .expect(400, "not an Autotask webhook"),
        case("Autotask webhook with a nested bomb for an Id", &at_hook)
            .json(at_id_bomb.clone())
            .header(at_sig, at_sign(&at_id_bomb))
            .expect(400, "not an Autotask webhook"),
        case("Autotask webhook signed but naming no ticket", &at_hook)
            .json(at_update.clone())
            .header(at_sig, at_sign(&at_update))
            .expect(400, "the webhook has no ticket Id"),
        case("Autotask webhook replayed exactly", &at_hook)
            .json(at_body.clone())
            .header(at_sig, at_delivery.signature.clone())
            .expect(200, "duplicate delivery: already accepted"),
        case(
            "Autotask webhook for a connection that does not exist",
            "/hooks/autotask/999",
        )
        .json(at_body.clone())
        .header(at_sig, at_sign(&at_body))
        .expect(404, "no such Autotask connection"),
        case(
            "Autotask webhook for the Freshdesk connection's id",
            format!("/hooks/autotask/{}", w.freshdesk.connection_id),
        )
        .json(at_body.clone())
        .header(at_sig, at_sign(&at_body))
        .expect(404, "no such Autotask connection"),
        case(
            "Autotask webhook for a connection id that is SQL",
            "/hooks/autotask/1%20OR%201=1",
        )
        .json(at_body.clone())
        .header(at_sig, at_sign(&at_body))
        .expect(400, "Invalid URL"),
        case("Autotask webhook by GET", &at_hook)
            .get()
            .expect(405, "does not accept GET; it answers POST"),
        // Freshdesk: a shared secret in the rule's header.
        case("Freshdesk webhook without its secret header", &fd_hook)
            .json(fd_delivery.body.clone())
            .expect(401, "header is missing"),
        case("Freshdesk webhook with an empty secret", &fd_hook)
            .json(fd_delivery.body.clone())
            .header(fd_header, "")
            .expect(401, "header is missing"),
        case("Freshdesk webhook with a wrong secret", &fd_hook)
            .json(fd_delivery.body.clone())
            .header(fd_header, "guessed-secret")
            .expect(401, "does not carry this connection's secret"),
        case("Freshdesk webhook with the secret's first half", &fd_hook)
            .json(fd_delivery.body.clone())
            .header(fd_header, fd_secret[..fd_secret.len() / 2].to_owned())
            .expect(401, "does not carry this connection's secret"),
        case(
            "Freshdesk webhook with the secret in another header",
            &fd_hook,
        )
        .json(fd_delivery.body.clone())
        .header("authorization", format!("Bearer {fd_secret}"))
        .expect(401, "header is missing"),
        case("Freshdesk webhook as a form", &fd_hook)
            .form(b"ticket_id=1".to_vec())
            .header(fd_header, fd_secret.clone())
            .expect(415, "send application/json"),
        case("Freshdesk webhook over 64 KiB", &fd_hook)
            .json(big.clone())
            .header(fd_header, fd_secret.clone())
            .expect(413, "larger than the 64 KiB"),
        case("Freshdesk webhook with invalid UTF-8", &fd_hook)
            .json(invalid_utf8.clone())
            .header(fd_header, fd_secret.clone())
            .expect(400, "the webhook body is not JSON"),
        case("Freshdesk webhook JSON bomb", &fd_hook)
            .json(nested(5000))
            .header(fd_header, fd_secret.clone())
            .expect(400, "the webhook body is not JSON"),
        case("Freshdesk webhook naming no ticket", &fd_hook)
            .json(br#"{"subject":"no id"}"#.to_vec())
            .header(fd_header, fd_secret.clone())
            .expect(400, "the webhook body has no ticket_id"),
        case("Freshdesk webhook with SQL for a ticket id", &fd_hook)
            .json(br#"{"ticket_id":"1 OR 1=1"}"#.to_vec())
            .header(fd_header, fd_secret.clone())
            .expect(400, "the webhook body has no ticket_id"),
        case("Freshdesk webhook replayed exactly", &fd_hook)
            .json(fd_delivery.body.clone())
            .header(fd_header, fd_secret.clone())
            .expect(200, "duplicate delivery: already accepted"),
        case(
            "Freshdesk webhook for a connection that does not exist",
            "/hooks/freshdesk/999",
        )
        .json(fd_delivery.body.clone())
        .header(fd_header, fd_secret.clone())
        .expect(404, "no such Freshdesk connection"),
        case(
            "Freshdesk webhook for the HaloPSA connection's id",
            format!("/hooks/freshdesk/{}", w.halo.connection_id),
        )
        .json(fd_delivery.body.clone())
        .header(fd_header, fd_secret.clone())
        .expect(404, "no such Freshdesk connection"),
        case("Freshdesk webhook by GET", &fd_hook)
            .get()
            .expect(405, "does not accept GET; it answers POST"),
        // HaloPSA: Basic (or Bearer) credentials on the webhook.
        case("HaloPSA webhook without credentials", &halo_hook)
            .json(halo_delivery.body.clone())
            .expect(401, "the Authorization header is missing"),
        case("HaloPSA webhook with a wrong password", &halo_hook)
            .json(halo_delivery.body.clone())
            .header(
                "authorization",
                basic(
                    halo_config
                        .webhook_username
                        .as_deref()
                        .unwrap_or("deskproof"),
                    "guessed",
                ),
            )
            .expect(401, "the webhook credentials are wrong for this connection"),
        case("HaloPSA webhook with a wrong user", &halo_hook)
            .json(halo_delivery.body.clone())
            .header("authorization", basic("admin", &halo_config.webhook_secret))
            .expect(401, "the webhook credentials are wrong for this connection"),
        case(
            "HaloPSA webhook with the secret as a bearer token",
            &halo_hook,
        )
        .json(halo_delivery.body.clone())
        .header(
            "authorization",
            format!("Bearer {}", halo_config.webhook_secret),
        )
        .expect(401, "the webhook credentials are wrong for this connection"),
        case(
            "HaloPSA webhook with credentials that are not base64",
            &halo_hook,
        )
        .json(halo_delivery.body.clone())
        .header("authorization", "Basic %%%")
        .expect(401, "the Authorization header is missing"),
        case("HaloPSA webhook as XML", &halo_hook)
            .header("content-type", "application/xml")
            .body(b"<ticket id=\"1\"/>".to_vec())
            .header("authorization", halo_auth.clone())
            .expect(415, "send application/json"),
        case("HaloPSA webhook over 64 KiB", &halo_hook)
            .json(big.clone())
            .header("authorization", halo_auth.clone())
            .expect(413, "larger than the 64 KiB"),
        case("HaloPSA webhook with invalid UTF-8", &halo_hook)
            .json(invalid_utf8.clone())
            .header("authorization", halo_auth.clone())
            .expect(400, "the webhook body is not JSON"),
        case("HaloPSA webhook JSON bomb", &halo_hook)
            .json(nested(5000))
            .header("authorization", halo_auth.clone())
            .expect(400, "the webhook body is not JSON"),
        case("HaloPSA webhook naming no ticket", &halo_hook)
            .json(br#"{"ticket":{"summary":"no id"}}"#.to_vec())
            .header("authorization", halo_auth.clone())
            .expect(400, "the webhook body names no ticket"),
        case("HaloPSA webhook naming ticket 0", &halo_hook)
            .json(br#"{"ticket":{"id":0}}"#.to_vec())
            .header("authorization", halo_auth.clone())
            .expect(400, "the webhook body names no ticket"),
        case("HaloPSA webhook replayed exactly", &halo_hook)
            .json(halo_delivery.body.clone())
            .header("authorization", halo_auth.clone())
            .expect(200, "duplicate delivery: already accepted"),
        case(
            "HaloPSA webhook for a connection that does not exist",
            "/hooks/halopsa/999",
        )
        .json(halo_delivery.body.clone())
        .header("authorization", halo_auth.clone())
        .expect(404, "no such HaloPSA connection"),
        case(
            "HaloPSA webhook for the ConnectWise connection's id",
            format!("/hooks/halopsa/{}", w.connection_id),
        )
        .json(halo_delivery.body.clone())
        .header("authorization", halo_auth.clone())
        .expect(404, "no such HaloPSA connection"),
        case("HaloPSA webhook by GET", &halo_hook)
            .get()
            .expect(405, "does not accept GET; it answers POST"),
    ];
    // PSAs are not browsers: none of these requests names an origin.
    let cases: Vec<Case> = cases.into_iter().map(|c| c.by(Who::Bare)).collect();

    let ran = run(&app, &clients, cases).await;

    assert!(ran >= 45, "{ran} cases");
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.wait_until_idle().await;
    assert!(app.world.duo.pushes().is_empty(), "no push was sent");
}

#[tokio::test]
async fn hostile_pod_calls_are_refused_clearly_and_store_nothing() {
    // Arrange: a pod opened for a genuine ticket, a ticket of an unmapped company, and an
    // Autotask ticket (another tenant's case).
    let app = spawn_flow().await;
    let clients = clients(&app).await;
    let w = &app.world;
    let ticket = app.new_ticket(w.contacts.alex, "Pod genuine").await;
    app.link_token(ticket).await;
    let northwind = w.cw.add_company("Northwind");
    let noel =
        w.cw.add_contact_at(Some(northwind), "Noel", "North", "noel@northwind.example");
    let unmapped =
        w.cw.create_ticket(Some(northwind), Some(noel), "Northwind reset")
            .await
            .id;
    let at = w
        .autotask
        .sim
        .create_ticket(w.autotask.company, Some(w.autotask.alex), "Autotask case")
        .await
        .id;
    app.wait_until_idle().await;
    let connection = w.connection_id.to_string();
    let open = |ticket: &str, member: &str, hash: &str| {
        vec![
            ("connection_id".to_owned(), connection.clone()),
            ("ticket_id".to_owned(), ticket.to_owned()),
            ("member_id".to_owned(), member.to_owned()),
            ("member_hash".to_owned(), hash.to_owned()),
        ]
    };
    let res = clients
        .bare
        .post(format!("{}/api/pod_open", app.url))
        .header("Accept", "application/json")
        .form(&open(&ticket.to_string(), DEMO_MEMBER.0, DEMO_MEMBER.1))
        .send()
        .await
        .expect("pod open");
    assert_eq!(res.status(), 200, "a framed pod names no origin and opens");
    let session: serde_json::Value = res.json().await.expect("json");
    let token = session["token"].as_str().expect("pod token").to_owned();
    let claims = pod_claims(&token);
    app.wait_until_idle().await;
    let at_case: i64 =
        sqlx::query_scalar("SELECT id FROM tickets WHERE ticket_id = $1 AND connection_id = $2")
            .bind(at.to_string())
            .bind(w.autotask.connection_id)
            .fetch_one(&app.db)
            .await
            .expect("the Autotask case");
    let expired = pod_signed(
        &app,
        &PodClaims {
            expires_at: 1_000,
            ..claims.clone()
        },
    );
    let other_org = pod_signed(
        &app,
        &PodClaims {
            organization_id: w.autotask.organization_id,
            ..claims.clone()
        },
    );
    let other_case = pod_signed(
        &app,
        &PodClaims {
            case_id: at_case,
            ..claims.clone()
        },
    );
    let unknown_case = pod_signed(
        &app,
        &PodClaims {
            case_id: claims.case_id + 1000,
            ..claims.clone()
        },
    );
    let foreign_key = pod::sign(&[9; 32], &claims);
    let mut tampered = token.clone();
    let last = tampered.pop().expect("char");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let link_as_pod = signed(
        &app,
        LinkClaims {
            case_id: claims.case_id,
            organization_id: claims.organization_id,
            expires_at: claims.expires_at,
        },
    );
    let pod_form = |token: &str| format!("pod_token={}", urlencode(token));
    let open_form = |ticket: &str, member: &str, hash: &str| {
        open(ticket, member, hash)
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let open_as = |connection: &str, ticket: &str| {
        format!(
            "connection_id={}&ticket_id={ticket}&member_id={}&member_hash={}",
            urlencode(connection),
            DEMO_MEMBER.0,
            urlencode(DEMO_MEMBER.1)
        )
    };
    let tid = ticket.to_string();

    let mut cases = Vec::new();
    for function in ["pod_status", "pod_verify"] {
        for (what, token, says) in [
            (
                "a tampered",
                tampered.as_str(),
                "The pod's sign-in is not valid.",
            ),
            (
                "an expired",
                expired.as_str(),
                "The pod's sign-in has expired.",
            ),
            (
                "another organization's",
                other_org.as_str(),
                "The pod's sign-in is not valid.",
            ),
            (
                "another tenant's case in a",
                other_case.as_str(),
                "The pod's sign-in is not valid.",
            ),
            (
                "an unknown case's",
                unknown_case.as_str(),
                "The pod's sign-in is not valid.",
            ),
            (
                "another key's",
                foreign_key.as_str(),
                "The pod's sign-in is not valid.",
            ),
            (
                "a verification link as a",
                link_as_pod.as_str(),
                "The pod's sign-in is not valid.",
            ),
            ("an empty", "", "The pod's sign-in is not valid."),
            ("an SQL", "' OR 1=1; --", "The pod's sign-in is not valid."),
        ] {
            cases.push(
                case(
                    format!("{function} with {what} pod token"),
                    format!("/api/{function}"),
                )
                .form(pod_form(token))
                .by(Who::Bare)
                .expect(400, says),
            );
        }
    }
    cases.extend([
        case("pod verify from another origin", "/api/pod_verify")
            .form(pod_form(&token))
            .header("origin", "https://evil.example")
            .by(Who::Bare)
            .expect(403, "Cross-site requests are not accepted."),
        case("pod verify marked cross-site", "/api/pod_verify")
            .form(pod_form(&token))
            .header("sec-fetch-site", "cross-site")
            .by(Who::Bare)
            .expect(403, "Cross-site requests are not accepted."),
        case(
            "pod verify by GET",
            format!("/api/pod_verify?{}", pod_form(&token)),
        )
        .get()
        .by(Who::Bare)
        .expect(405, "it is called with POST"),
        case("pod verify without its argument", "/api/pod_verify")
            .form(b"token=x".to_vec())
            .by(Who::Bare)
            .expect(400, "could not be read: missing field `pod_token`"),
        case("pod open from another origin", "/api/pod_open")
            .form(open_form(&tid, DEMO_MEMBER.0, DEMO_MEMBER.1))
            .header("origin", "https://evil.example")
            .by(Who::Bare)
            .expect(403, "Cross-site requests are not accepted."),
        case("pod open with a forged member hash", "/api/pod_open")
            .form(open_form(&tid, DEMO_MEMBER.0, "guessed-hash"))
            .by(Who::Bare)
            .expect(400, "ConnectWise did not confirm who is signed in"),
        case("pod open with an empty member hash", "/api/pod_open")
            .form(open_form(&tid, DEMO_MEMBER.0, ""))
            .by(Who::Bare)
            .expect(400, "ConnectWise did not confirm who is signed in"),
        case(
            "pod open with a separator in the member id",
            "/api/pod_open",
        )
        .form(open_form(&tid, "jtech:x", DEMO_MEMBER.1))
        .by(Who::Bare)
        .expect(400, "ConnectWise did not confirm who is signed in"),
        case("pod open with HTML for a member id", "/api/pod_open")
            .form(open_form(&tid, "<script>alert(1)</script>", DEMO_MEMBER.1))
            .by(Who::Bare)
            .expect(400, "ConnectWise did not confirm who is signed in"),
        case(
            "pod open for a ticket of an unmapped company",
            "/api/pod_open",
        )
        .form(open_form(
            &unmapped.to_string(),
            DEMO_MEMBER.0,
            DEMO_MEMBER.1,
        ))
        .by(Who::Bare)
        .expect(400, "is not mapped to an organization"),
        case(
            "pod open for a ticket ConnectWise does not have",
            "/api/pod_open",
        )
        .form(open_form("987654", DEMO_MEMBER.0, DEMO_MEMBER.1))
        .by(Who::Bare)
        .expect(400, "ticket 987654 was not found in the PSA"),
        case("pod open with SQL for a ticket", "/api/pod_open")
            .form(open_form("1 OR 1=1", DEMO_MEMBER.0, DEMO_MEMBER.1))
            .by(Who::Bare)
            .expect(400, "is not a ConnectWise ticket number"),
        case("pod open with a negative ticket", "/api/pod_open")
            .form(open_form("-5", DEMO_MEMBER.0, DEMO_MEMBER.1))
            .by(Who::Bare)
            .expect(400, "is not a ConnectWise ticket number"),
        case(
            "pod open for a connection that does not exist",
            "/api/pod_open",
        )
        .form(open_as("999", &tid))
        .by(Who::Bare)
        .expect(400, "names no ConnectWise connection"),
        case("pod open for the Autotask connection", "/api/pod_open")
            .form(open_as(
                &w.autotask.connection_id.to_string(),
                &at.to_string(),
            ))
            .by(Who::Bare)
            .expect(400, "names no ConnectWise connection"),
        case("pod open with a connection id that is SQL", "/api/pod_open")
            .form(open_as("1 OR 1=1", &tid))
            .by(Who::Bare)
            .expect(400, "could not be read: invalid digit found in string"),
        case(
            "pod origins for the Autotask connection",
            "/api/pod_origins",
        )
        .form(format!("connection_id={}", w.autotask.connection_id))
        .by(Who::Bare)
        .expect(400, "names no ConnectWise connection"),
        case("pod open with a JSON bomb", "/api/pod_open")
            .json(nested(5000))
            .by(Who::Bare)
            .expect(415, "send application/x-www-form-urlencoded"),
        case("pod open over 16 KiB", "/api/pod_open")
            .form(open_form(&tid, DEMO_MEMBER.0, &"h".repeat(20 * 1024)))
            .by(Who::Bare)
            .expect(413, "larger than the 16 KiB"),
    ]);

    let ran = run(&app, &clients, cases).await;

    assert!(ran >= 35, "{ran} cases");
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.wait_until_idle().await;
    assert!(app.world.duo.pushes().is_empty(), "no push was sent");
}

/// Every admin server function with arguments an admin could send.
fn admin_functions(app: &FlowApp) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let org = app.world.organization_id.to_string();
    let connection = app.world.connection_id.to_string();
    vec![
        ("settings", vec![]),
        (
            "save_organization",
            vec![("id", String::new()), ("name", "Evil Corp".into())],
        ),
        (
            "save_mapping",
            vec![
                ("connection_id", connection.clone()),
                ("company_id", "9".into()),
                ("organization_id", org.clone()),
            ],
        ),
        (
            "remove_mapping",
            vec![
                ("connection_id", connection.clone()),
                ("company_id", app.world.company.to_string()),
            ],
        ),
        (
            "save_connection",
            vec![
                ("id", String::new()),
                ("kind", "freshdesk".into()),
                ("name", "Evil desk".into()),
                ("fields[base_url]", "https://evil.freshdesk.com".into()),
                ("fields[api_key]", "stolen-api-key".into()),
                ("fields[webhook_secret]", "stolen-secret".into()),
            ],
        ),
        ("test_connection", vec![("id", connection.clone())]),
        ("connect_psa", vec![("id", connection)]),
        (
            "save_duo",
            vec![
                ("organization_id", org.clone()),
                ("fields[api_host]", "api-evil.duosecurity.com".into()),
            ],
        ),
        ("test_duo", vec![("organization_id", org.clone())]),
        (
            "list_duo_children",
            vec![
                ("organization_id", org.clone()),
                (
                    "fields[accounts_api_host]",
                    "api-evil.duosecurity.com".into(),
                ),
            ],
        ),
        (
            "save_policy",
            vec![
                ("organization_id", org),
                ("fields[contact_pushes]", "1000".into()),
            ],
        ),
        (
            "add_user",
            vec![
                ("fields[username]", "mallory".into()),
                ("fields[display_name]", "Mallory".into()),
                ("fields[role]", "admin".into()),
                ("fields[password]", "mallory password 1".into()),
            ],
        ),
        (
            "set_user_disabled",
            vec![("id", "1".into()), ("disabled", "true".into())],
        ),
        (
            "reset_password",
            vec![("id", "1".into()), ("password", "0123456789ab".into())],
        ),
        ("audit", vec![]),
        ("ticket_timeline", vec![("ticket", "1".into())]),
    ]
}

fn encoded(fields: &[(&str, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn every_server_function_refuses_cross_site_requests_and_admin_ones_refuse_anyone_else() {
    // Arrange
    let app = spawn_flow().await;
    let clients = clients(&app).await;
    let functions = admin_functions(&app);
    let ticket = app.new_ticket(app.world.contacts.alex, "Cross-site").await;
    let token = app.link_token(ticket).await;
    app.wait_until_idle().await;

    // The table covers every server function deskproof registers, so a new one cannot go
    // untested here.
    let registered: std::collections::BTreeSet<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.to_owned())
        .collect();
    let technician_functions: Vec<(&str, String)> = vec![
        ("whoami", String::new()),
        (
            "sign_in",
            "username=casey&password=correct+horse+battery".into(),
        ),
        ("sign_out", String::new()),
        ("verification", form_token(&token)),
        ("attempts", form_token(&token)),
        ("send_push", form_token(&token)),
        ("fresh_link", form_token(&token)),
    ];
    let pod_functions: Vec<(&str, String)> = vec![
        (
            "pod_origins",
            format!("connection_id={}", app.world.connection_id),
        ),
        (
            "pod_open",
            format!(
                "connection_id={}&ticket_id={ticket}&member_id={}&member_hash={}",
                app.world.connection_id,
                DEMO_MEMBER.0,
                urlencode(DEMO_MEMBER.1)
            ),
        ),
        ("pod_status", "pod_token=x".into()),
        ("pod_verify", "pod_token=x".into()),
    ];
    let listed: std::collections::BTreeSet<String> = functions
        .iter()
        .map(|(f, _)| format!("/api/admin/{f}"))
        .chain(
            technician_functions
                .iter()
                .map(|(f, _)| format!("/api/{f}")),
        )
        .chain(pod_functions.iter().map(|(f, _)| format!("/api/{f}")))
        .collect();
    assert_eq!(listed, registered, "the table lists every server function");

    let mut cases = Vec::new();
    // Cross-site, with the admin's session: nothing is done, whatever the function.
    let everything = functions
        .iter()
        .map(|(f, fields)| (format!("admin/{f}"), encoded(fields)))
        .chain(
            technician_functions
                .iter()
                .chain(&pod_functions)
                .map(|(f, body)| (f.to_string(), body.clone())),
        );
    for (function, body) in everything {
        let path = format!("/api/{function}");
        cases.push(
            case(format!("{function} from another origin"), &path)
                .form(body.clone())
                .header("origin", "https://evil.example")
                .by(Who::Admin)
                .expect(403, "Cross-site requests are not accepted."),
        );
        cases.push(
            case(format!("{function} marked cross-site"), &path)
                .form(body.clone())
                .header("sec-fetch-site", "cross-site")
                .by(Who::Admin)
                .expect(403, "Cross-site requests are not accepted."),
        );
        if !function.starts_with("pod_") {
            cases.push(
                case(format!("{function} naming no origin"), &path)
                    .form(body)
                    .by(Who::AdminNamingNoOrigin)
                    .expect(403, "names neither its Origin nor Sec-Fetch-Site"),
            );
        }
    }
    // Admin functions: a technician is refused, a stranger asked to sign in.
    for (function, fields) in &functions {
        let path = format!("/api/admin/{function}");
        cases.push(
            case(format!("admin/{function} by a technician"), &path)
                .form(encoded(fields))
                .expect(403, "You are not allowed to do that."),
        );
        cases.push(
            case(format!("admin/{function} without a session"), &path)
                .form(encoded(fields))
                .stranger()
                .expect(401, "Please sign in."),
        );
    }
    // Admin functions: an admin's bad input.
    cases.extend([
        case(
            "admin save_organization with an unknown id",
            "/api/admin/save_organization",
        )
        .fields(&[("id", "999"), ("name", "Renamed")])
        .by(Who::Admin)
        .expect(400, "Unknown organization."),
        case(
            "admin save_organization with SQL for an id",
            "/api/admin/save_organization",
        )
        .fields(&[("id", "1 OR 1=1"), ("name", "Renamed")])
        .by(Who::Admin)
        .expect(400, "Unknown organization."),
        case(
            "admin save_connection with an unknown id",
            "/api/admin/save_connection",
        )
        .fields(&[("id", "999"), ("kind", "freshdesk"), ("name", "x")])
        .by(Who::Admin)
        .expect(400, "Unknown PSA connection."),
        case(
            "admin save_connection with another kind's id",
            "/api/admin/save_connection",
        )
        .form(format!(
            "id={}&kind=freshdesk&name=x",
            app.world.autotask.connection_id
        ))
        .by(Who::Admin)
        .expect(400, "Unknown PSA connection."),
        case(
            "admin test_connection for an unknown id",
            "/api/admin/test_connection",
        )
        .fields(&[("id", "999")])
        .by(Who::Admin)
        .expect(400, "Unknown PSA connection."),
        case(
            "admin test_connection with text for an id",
            "/api/admin/test_connection",
        )
        .fields(&[("id", "one")])
        .by(Who::Admin)
        .expect(400, "could not be read: invalid digit found in string"),
        case(
            "admin save_duo for an unknown organization",
            "/api/admin/save_duo",
        )
        .fields(&[("organization_id", "999")])
        .by(Who::Admin)
        .expect(400, "Unknown organization."),
        case(
            "admin test_duo for an unknown organization",
            "/api/admin/test_duo",
        )
        .fields(&[("organization_id", "999")])
        .by(Who::Admin)
        .expect(400, "Save the Duo keys of this organization first."),
        case("admin save_policy for SQL", "/api/admin/save_policy")
            .fields(&[("organization_id", "1; DROP TABLE policy_defaults")])
            .by(Who::Admin)
            .expect(400, "unknown organization"),
        // Admin forms answer their field errors with 200, for the page to show by the field.
        case(
            "admin save_mapping for an unknown connection",
            "/api/admin/save_mapping",
        )
        .fields(&[
            ("connection_id", "999"),
            ("company_id", "1"),
            ("organization_id", "1"),
        ])
        .by(Who::Admin)
        .expect(200, "Choose a PSA connection."),
        case(
            "admin set_user_disabled with text",
            "/api/admin/set_user_disabled",
        )
        .fields(&[("id", "1"), ("disabled", "perhaps")])
        .by(Who::Admin)
        .expect(
            400,
            "could not be read: provided string was not `true` or `false`",
        ),
        case(
            "admin set_user_disabled for an unknown user",
            "/api/admin/set_user_disabled",
        )
        .fields(&[("id", "999"), ("disabled", "true")])
        .by(Who::Admin)
        .expect(400, "Unknown user."),
        case(
            "admin reset_password for an unknown user",
            "/api/admin/reset_password",
        )
        .fields(&[("id", "999"), ("password", "0123456789ab")])
        .by(Who::Admin)
        .expect(400, "Unknown user."),
        case("admin audit with a bad date", "/api/admin/audit")
            .fields(&[("query[from]", "yesterday")])
            .by(Who::Admin)
            .expect(400, "The from date must look like 2026-01-31."),
        case(
            "admin audit with SQL for an organization",
            "/api/admin/audit",
        )
        .fields(&[("query[organization]", "1 OR 1=1")])
        .by(Who::Admin)
        .expect(400, "Unknown organization."),
        case("admin functions by GET", "/api/admin/settings")
            .get()
            .by(Who::Admin)
            .expect(405, "it is called with POST"),
        case("admin add_user as a JSON bomb", "/api/admin/add_user")
            .json(nested(5000))
            .by(Who::Admin)
            .expect(415, "send application/x-www-form-urlencoded"),
    ]);

    let ran = run(&app, &clients, cases).await;

    assert!(ran >= 100, "{ran} cases");
    assert!(app.world.duo.pushes().is_empty(), "no push was sent");
}

#[tokio::test]
async fn the_audit_export_refuses_a_technician_and_explains_bad_filters() {
    // Arrange
    let app = spawn_flow().await;
    let clients = clients(&app).await;
    let export = "/audit/export.csv";

    let cases = vec![
        case("export by a technician", export)
            .get()
            .expect(403, "admins only"),
        case(
            "export by a technician, with filters",
            format!("{export}?outcome=approved"),
        )
        .get()
        .expect(403, "admins only"),
        case(
            "export with a bad from date",
            format!("{export}?from=yesterday"),
        )
        .get()
        .by(Who::Admin)
        .expect(400, "The from date must look like 2026-01-31."),
        case(
            "export with a bad to date",
            format!("{export}?to=2026-13-45"),
        )
        .get()
        .by(Who::Admin)
        .expect(400, "The to date must look like 2026-01-31."),
        case(
            "export with SQL for an organization",
            format!("{export}?organization=1%20OR%201%3D1"),
        )
        .get()
        .by(Who::Admin)
        .expect(400, "Unknown organization."),
        case(
            "export with a date out of range",
            format!("{export}?from=99999-01-01"),
        )
        .get()
        .by(Who::Admin)
        .expect(400, "The from date must look like 2026-01-31."),
        case("export by POST", export)
            .by(Who::Admin)
            .expect(405, "does not accept POST; it answers GET"),
    ];

    let ran = run(&app, &clients, cases).await;

    assert_eq!(ran, 7);
    let stranger = clients
        .stranger
        .get(format!("{}{export}", app.url))
        .send()
        .await
        .expect("request");
    assert_eq!(stranger.status(), 303, "a stranger is sent to sign in");
}

async fn admin_call(
    app: &FlowApp,
    admin: &reqwest::Client,
    function: &str,
    fields: Vec<(&str, String)>,
) -> (u16, serde_json::Value) {
    let res = admin
        .post(format!("{}/api/admin/{function}", app.url))
        .header("Accept", "application/json")
        .form(&fields)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

async fn page_text(client: &reqwest::Client, app: &FlowApp, path: &str) -> String {
    client
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html")
}

#[tokio::test]
async fn html_and_sql_in_organization_and_connection_names_are_stored_as_text_and_shown_escaped() {
    // Arrange
    let app = spawn_flow().await;
    let clients = clients(&app).await;
    let admin = &clients.admin.0;
    let org_name = "<script>alert('org')</script>'; DROP TABLE organizations; --";
    let connection_name = "<img src=x onerror=alert(1)>\"); DELETE FROM psa_connections; --";
    let organizations = app.count("SELECT COUNT(*) FROM organizations").await;
    let connections = app.count("SELECT COUNT(*) FROM psa_connections").await;

    // Act
    let (org_status, org_reply) = admin_call(
        &app,
        admin,
        "save_organization",
        vec![("id", String::new()), ("name", org_name.into())],
    )
    .await;
    let (connection_status, connection_reply) = admin_call(
        &app,
        admin,
        "save_connection",
        vec![
            ("id", String::new()),
            ("kind", "freshdesk".into()),
            ("name", connection_name.into()),
            ("fields[base_url]", "https://hostile.freshdesk.com".into()),
            ("fields[api_key]", "hostile-api-key".into()),
            ("fields[webhook_secret]", "hostile-webhook-secret".into()),
        ],
    )
    .await;
    let organizations_page = page_text(admin, &app, "/settings/organizations").await;
    let connections_page = page_text(admin, &app, "/settings/connections").await;

    // Assert: stored exactly as typed, nothing dropped, and inert on the pages.
    assert_eq!(org_status, 200, "{org_reply}");
    assert_eq!(org_reply["errors"], serde_json::json!({}), "{org_reply}");
    assert_eq!(connection_status, 200, "{connection_reply}");
    assert_eq!(
        connection_reply["errors"],
        serde_json::json!({}),
        "{connection_reply}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM organizations").await,
        organizations + 1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM psa_connections").await,
        connections + 1
    );
    let stored_org: String = sqlx::query_scalar("SELECT name FROM organizations WHERE name = $1")
        .bind(org_name)
        .fetch_one(&app.db)
        .await
        .expect("the organization is stored under its name");
    assert_eq!(stored_org, org_name);
    let stored_connection: String =
        sqlx::query_scalar("SELECT name FROM psa_connections WHERE name = $1")
            .bind(connection_name)
            .fetch_one(&app.db)
            .await
            .expect("the connection is stored under its name");
    assert_eq!(stored_connection, connection_name);
    assert!(
        organizations_page.contains("&lt;script&gt;alert("),
        "{organizations_page}"
    );
    assert!(
        !organizations_page.contains("<script>alert("),
        "the organization name is not markup"
    );
    assert!(
        connections_page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{connections_page}"
    );
    assert!(
        !connections_page.contains("<img src=x"),
        "the connection name is not markup"
    );
    let audit = app.store.audit_entries(20).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.detail.as_deref().is_some_and(|d| d.contains(org_name))),
        "the change is audited with the name as text: {audit:#?}"
    );
}

#[tokio::test]
async fn a_contact_named_like_a_spreadsheet_formula_is_exported_as_text() {
    // Arrange: a PSA contact whose name is a formula, and a click on its ticket's link.
    let app = spawn_flow().await;
    let clients = clients(&app).await;
    let formula = "=HYPERLINK(\"https://evil.example/steal\",\"Details\")";
    let contact = app.world.cw.add_contact_at(
        Some(app.world.company),
        formula,
        "Smith",
        "formula@contoso.example",
    );
    let ticket = app.new_ticket(contact, "+cmd|' /C calc'!A0").await;
    let token = app.link_token(ticket).await;
    let (status, attempt) = app.call("send_push", &token).await;
    assert_eq!(status, 200, "{attempt}");
    app.wait_until_idle().await;

    // Act
    let csv = page_text(&clients.admin.0, &app, "/audit/export.csv").await;

    // Assert: the name is there, as text; no cell starts a formula.
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert!(
        records
            .iter()
            .any(|r| r.get(6) == Some(format!("'{formula} Smith").as_str())),
        "{csv}"
    );
    for record in &records {
        for cell in record {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {csv}"
            );
        }
    }
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
