//! Bad requests to the Duo simulator get Duo's error envelope with the right code, never a 500.
use std::time::Duration;

use deskproof::duo::signing::{self, DigestAlg, SignatureVersion, SigningInput};
use deskproof::sim::duo::{DuoSim, SimKeys, SimUser};
use serde_json::Value;

/// One hand-built request, signed (or not) exactly as described.
struct Req<'a> {
    method: &'a str,
    path: &'a str,
    query: Vec<(String, String)>,
    body: Vec<u8>,
    content_type: Option<&'a str>,
    /// v2 signs query and form parameters; v5 signs the query line plus the body hash.
    version: SignatureVersion,
    date: Option<String>,
    authorization: Option<String>,
}

impl<'a> Req<'a> {
    fn get(path: &'a str, query: &[(&str, &str)]) -> Self {
        Req {
            method: "GET",
            path,
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            content_type: None,
            version: SignatureVersion::V2(DigestAlg::Sha512),
            date: Some(signing::now_date()),
            authorization: None,
        }
    }

    fn post_form(path: &'a str, form: &[(&str, &str)]) -> Self {
        let pairs: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Req {
            method: "POST",
            body: signing::canon_params(&pairs).into_bytes(),
            content_type: Some("application/x-www-form-urlencoded"),
            ..Req::get(path, &[])
        }
    }

    fn post_raw(path: &'a str, body: &[u8], content_type: &'a str) -> Self {
        Req {
            method: "POST",
            body: body.to_vec(),
            content_type: Some(content_type),
            version: SignatureVersion::V5,
            ..Req::get(path, &[])
        }
    }

    async fn send(self, base: &str, keys: Option<&SimKeys>) -> (u16, Value) {
        let host = base.trim_start_matches("http://");
        let query_line = signing::canon_params(&self.query);
        let url = if query_line.is_empty() {
            format!("{base}{}", self.path)
        } else {
            format!("{base}{}?{query_line}", self.path)
        };
        let mut signed_params = self.query.clone();
        if self.content_type == Some("application/x-www-form-urlencoded") {
            signed_params
                .extend(url::form_urlencoded::parse(&self.body).map(|(k, v)| (k.into(), v.into())));
        }
        let http = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut rb = http.request(method, url).body(self.body.clone());
        if let Some(ct) = self.content_type {
            rb = rb.header("content-type", ct);
        }
        if let Some(date) = &self.date {
            rb = rb.header("date", date);
        }
        let auth = match (self.authorization, keys) {
            (Some(a), _) => Some(a),
            (None, Some(keys)) => {
                let date = self.date.clone().unwrap_or_else(signing::now_date);
                let sig = signing::sign(
                    self.version,
                    keys.skey.expose(),
                    &SigningInput {
                        date: &date,
                        method: self.method,
                        host,
                        path: self.path,
                        params: if self.version == SignatureVersion::V5 {
                            &self.query
                        } else {
                            &signed_params
                        },
                        body: &self.body,
                        x_duo_headers: &[],
                    },
                )
                .unwrap();
                Some(signing::authorization_header(&keys.ikey, &sig))
            }
            (None, None) => None,
        };
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

fn assert_duo_error(got: &(u16, Value), code: u64, detail: Option<&str>) {
    let (status, body) = got;
    assert_eq!(body["stat"], "FAIL", "{body}");
    assert_eq!(body["code"].as_u64(), Some(code), "{body}");
    assert_eq!(u64::from(*status), code / 100, "{body}");
    assert!(body["message"].is_string(), "{body}");
    if let Some(detail) = detail {
        assert_eq!(body["message_detail"], detail, "{body}");
    }
}

async fn sim() -> (DuoSim, String) {
    let (sim, url) = DuoSim::start().await.unwrap();
    sim.add_user(SimUser::new("alex").push_phone("+15555550101"));
    (sim, url)
}

#[tokio::test]
async fn a_request_without_credentials_is_401_40101() {
    let (_sim, url) = sim().await;
    let got = Req::get("/auth/v2/check", &[]).send(&url, None).await;
    assert_duo_error(&got, 40101, None);
    let mut garbage = Req::get("/auth/v2/check", &[]);
    garbage.authorization = Some("Bearer abc".into());
    assert_duo_error(&garbage.send(&url, None).await, 40101, None);
}

#[tokio::test]
async fn an_unknown_integration_key_is_401_40102() {
    let (sim, url) = sim().await;
    let stranger = SimKeys {
        ikey: "DINOTAREALKEY0000000".into(),
        ..sim.auth_keys()
    };
    let got = Req::get("/auth/v2/check", &[])
        .send(&url, Some(&stranger))
        .await;
    assert_duo_error(&got, 40102, None);
}

#[tokio::test]
async fn a_missing_or_localised_date_is_40104_and_a_skewed_one_is_40105() {
    let (sim, url) = sim().await;
    let keys = sim.auth_keys();
    let mut no_date = Req::get("/auth/v2/check", &[]);
    no_date.date = None;
    assert_duo_error(&no_date.send(&url, Some(&keys)).await, 40104, None);

    let mut german = Req::get("/auth/v2/check", &[]);
    german.date = Some("Di, 21 Aug 2012 17:29:18 -0000".into());
    assert_duo_error(&german.send(&url, Some(&keys)).await, 40104, None);

    let mut skewed = Req::get("/auth/v2/check", &[]);
    skewed.date = Some(signing::format_date(
        time::OffsetDateTime::now_utc() - Duration::from_secs(600),
    ));
    assert_duo_error(&skewed.send(&url, Some(&keys)).await, 40105, None);
}

#[tokio::test]
async fn a_signature_signed_with_plus_for_space_is_rejected() {
    let (sim, url) = sim().await;
    let keys = sim.admin_keys();
    let date = signing::now_date();
    let host = url.trim_start_matches("http://");
    // What a client that signs the wire encoding (space as '+') would send.
    let wrong = format!("{date}\nGET\n{host}\n/admin/v1/users\nusername=Alex+Example");
    let sig = signing::hmac_hex(DigestAlg::Sha512, keys.skey.expose().as_bytes(), &wrong);
    let mut req = Req::get("/admin/v1/users", &[("username", "Alex Example")]);
    req.date = Some(date);
    req.authorization = Some(signing::authorization_header(&keys.ikey, &sig));
    assert_duo_error(&req.send(&url, None).await, 40103, None);
}

#[tokio::test]
async fn missing_parameters_are_400_40002_naming_the_parameter() {
    let (sim, url) = sim().await;
    let auth = sim.auth_keys();
    let got = Req::post_form("/auth/v2/preauth", &[])
        .send(&url, Some(&auth))
        .await;
    assert_duo_error(&got, 40002, Some("username"));

    let got = Req::post_form("/auth/v2/auth", &[("username", "alex"), ("async", "1")])
        .send(&url, Some(&auth))
        .await;
    assert_duo_error(&got, 40002, Some("factor"));

    let got = Req::post_form("/auth/v2/auth", &[("username", "alex"), ("factor", "push")])
        .send(&url, Some(&auth))
        .await;
    assert_duo_error(&got, 40002, Some("async"));

    let got = Req::get("/auth/v2/auth_status", &[])
        .send(&url, Some(&auth))
        .await;
    assert_duo_error(&got, 40002, Some("txid"));
}

#[tokio::test]
async fn unknown_users_and_transactions_are_404_40401() {
    let (sim, url) = sim().await;
    let got = Req::get("/admin/v1/users/DUNOSUCHUSER", &[])
        .send(&url, Some(&sim.admin_keys()))
        .await;
    assert_duo_error(&got, 40401, None);
    let got = Req::get("/auth/v2/auth_status", &[("txid", "no-such-txid")])
        .send(&url, Some(&sim.auth_keys()))
        .await;
    assert_duo_error(&got, 40401, None);
    let got = Req::get("/no/such/endpoint", &[]).send(&url, None).await;
    assert_duo_error(&got, 40401, None);
}

#[tokio::test]
async fn paging_limits_above_300_or_not_numbers_are_40002() {
    let (sim, url) = sim().await;
    let keys = sim.admin_keys();
    for limit in ["301", "0", "abc", "-1"] {
        let got = Req::get("/admin/v1/users", &[("limit", limit)])
            .send(&url, Some(&keys))
            .await;
        assert_duo_error(&got, 40002, Some("limit"));
    }
    let got = Req::get("/admin/v1/users", &[("limit", "300"), ("offset", "x")])
        .send(&url, Some(&keys))
        .await;
    assert_duo_error(&got, 40002, Some("offset"));
}

#[tokio::test]
async fn a_malformed_json_body_is_40002_not_500() {
    let (sim, url) = sim().await;
    let keys = sim.auth_keys();
    for body in [&b"{not json"[..], b"[1,2,3]", b"\xff\xfe"] {
        let got = Req::post_raw("/auth/v2/preauth", body, "application/json")
            .send(&url, Some(&keys))
            .await;
        assert_duo_error(&got, 40002, Some("body"));
    }
}

#[tokio::test]
async fn a_body_of_the_wrong_content_type_is_40002() {
    let (sim, url) = sim().await;
    let got = Req::post_raw("/auth/v2/preauth", b"username=alex", "text/plain")
        .send(&url, Some(&sim.auth_keys()))
        .await;
    assert_duo_error(&got, 40002, Some("Content-Type"));
}

#[tokio::test]
async fn parameters_split_between_query_and_body_are_rejected() {
    let (sim, url) = sim().await;
    let mut req = Req::post_raw(
        "/auth/v2/preauth",
        br#"{"username":"alex"}"#,
        "application/json",
    );
    req.query = vec![("ipaddr".into(), "10.0.0.1".into())];
    assert_duo_error(&req.send(&url, Some(&sim.auth_keys())).await, 40103, None);
}

#[tokio::test]
async fn the_wrong_method_gets_a_duo_envelope() {
    let (sim, url) = sim().await;
    let got = Req::get("/auth/v2/preauth", &[("username", "alex")])
        .send(&url, Some(&sim.auth_keys()))
        .await;
    assert_duo_error(&got, 40501, None);
}

#[tokio::test]
async fn the_phone_page_shows_the_push_text_and_its_buttons_decide_it() {
    let (sim, url) = sim().await;
    let auth = sim.auth_keys().client().unwrap();
    let txid = auth
        .auth_push_async(&deskproof::duo::PushRequest {
            username: "alex".into(),
            type_text: Some("Ticket <b>check</b>".into()),
            pushinfo: vec![("ticket".into(), "INC-42".into())],
            ..Default::default()
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();

    let page = http
        .get(sim.phone_url("alex"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Ticket &lt;b&gt;check&lt;/b&gt;"));
    assert!(page.contains("INC-42"));
    assert!(page.contains(&format!("/phone/alex/{txid}/approve")));
    let listed: Value = http
        .get(format!("{url}/control/pushes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["txid"], txid.as_str());
    assert!(listed[0]["text"].as_str().unwrap().contains("INC-42"));

    let resp = http
        .post(format!("{url}/phone/alex/{txid}/fraud"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(sim.pushes()[0].state, deskproof::sim::duo::PushState::Fraud);
    let again = http
        .post(format!("{url}/control/push/{txid}/approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);
}

/// The simulator with an Admin application allowed to write, and alex's user id and phone.
async fn writable_sim() -> (DuoSim, String, String, String) {
    let (sim, url) = DuoSim::start().await.unwrap();
    sim.set_admin_write_allowed(true);
    let user = SimUser::new("alex").push_phone("+15555550101");
    let phone = user.phones[0].phone_id.clone();
    let id = sim.add_user(user);
    (sim, url, id.0, phone)
}

#[tokio::test]
async fn a_verification_push_with_a_bad_signature_is_40103_and_sends_nothing() {
    let (sim, url, user, phone) = writable_sim().await;
    let path = format!("/admin/v1/users/{user}/send_verification_push");
    let wrong = SimKeys {
        skey: deskproof::secret::Secret::new("not-the-admin-secret-key-000000000000000"),
        ..sim.admin_keys()
    };
    let got = Req::post_form(&path, &[("phone_id", &phone)])
        .send(&url, Some(&wrong))
        .await;
    assert_duo_error(&got, 40103, None);
    // Auth API keys are not Admin API keys.
    let got = Req::post_form(&path, &[("phone_id", &phone)])
        .send(&url, Some(&sim.auth_keys()))
        .await;
    assert_duo_error(&got, 40102, None);
    assert!(sim.pushes().is_empty(), "{:?}", sim.pushes());
}

#[tokio::test]
async fn a_verification_push_needs_a_phone_id_of_an_activated_push_phone_and_a_known_user() {
    let (sim, url, user, phone) = writable_sim().await;
    let keys = sim.admin_keys();
    let path = format!("/admin/v1/users/{user}/send_verification_push");
    let got = Req::post_form(&path, &[]).send(&url, Some(&keys)).await;
    assert_duo_error(&got, 40002, Some("phone_id"));
    let got = Req::post_form(&path, &[("phone_id", "DPNOSUCHPHONE")])
        .send(&url, Some(&keys))
        .await;
    assert_duo_error(&got, 40002, Some("phone_id"));
    let landline = SimUser::new("lee").sms_only_phone("+15555550104");
    let landline_phone = landline.phones[0].phone_id.clone();
    let lee = sim.add_user(landline);
    let got = Req::post_form(
        &format!("/admin/v1/users/{lee}/send_verification_push"),
        &[("phone_id", &landline_phone)],
    )
    .send(&url, Some(&keys))
    .await;
    assert_duo_error(&got, 40002, Some("phone_id"));
    let got = Req::post_form(
        "/admin/v1/users/DUNOSUCHUSER/send_verification_push",
        &[("phone_id", &phone)],
    )
    .send(&url, Some(&keys))
    .await;
    assert_duo_error(&got, 40401, None);
    // GET is not how a push is sent.
    let got = Req::get(&path, &[("phone_id", &phone)])
        .send(&url, Some(&keys))
        .await;
    assert_duo_error(&got, 40501, None);
    assert!(sim.pushes().is_empty(), "{:?}", sim.pushes());
}

#[tokio::test]
async fn a_verification_push_response_needs_the_push_id_of_that_user() {
    let (sim, url, user, phone) = writable_sim().await;
    let keys = sim.admin_keys();
    let sent = Req::post_form(
        &format!("/admin/v1/users/{user}/send_verification_push"),
        &[("phone_id", &phone)],
    )
    .send(&url, Some(&keys))
    .await;
    assert_eq!(sent.0, 200, "{}", sent.1);
    let push_id = sent.1["response"]["push_id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/users/{user}/verification_push_response");

    let got = Req::get(&path, &[]).send(&url, Some(&keys)).await;
    assert_duo_error(&got, 40002, Some("push_id"));
    let got = Req::get(&path, &[("push_id", "no-such-push")])
        .send(&url, Some(&keys))
        .await;
    assert_duo_error(&got, 40401, None);
    let other = sim.add_user(SimUser::new("megan").push_phone("+15555550102"));
    let got = Req::get(
        &format!("/admin/v1/users/{other}/verification_push_response"),
        &[("push_id", &push_id)],
    )
    .send(&url, Some(&keys))
    .await;
    assert_duo_error(&got, 40401, None);
    let got = Req::get(&path, &[("push_id", &push_id)])
        .send(&url, Some(&keys))
        .await;
    assert_eq!(got.1["response"]["result"], "waiting", "{}", got.1);
}

#[tokio::test]
async fn accounts_keys_reach_a_child_only_with_its_account_id() {
    let (sim, url) = DuoSim::start().await.unwrap();
    let child = sim.add_child_account("Fabrikam");
    sim.add_user_to(&child, SimUser::new("fab.user"));
    let keys = sim.accounts_keys();
    let got = Req::get("/admin/v1/users", &[])
        .send(&url, Some(&keys))
        .await;
    assert_duo_error(&got, 40002, Some("account_id"));
    // The parent's own account is not one of its children.
    let parent = sim.main_account_id();
    let got = Req::get("/admin/v1/users", &[("account_id", parent.as_str())])
        .send(&url, Some(&keys))
        .await;
    assert_duo_error(&got, 40002, Some("account_id"));
    let got = Req::get("/admin/v1/users", &[("account_id", "DANOSUCHACCOUNT")])
        .send(&url, Some(&keys))
        .await;
    assert_duo_error(&got, 40002, Some("account_id"));
    let got = Req::get("/admin/v1/users", &[("account_id", child.as_str())])
        .send(&url, Some(&keys))
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1["response"][0]["username"], "fab.user");
    // Accounts keys are no Auth API keys, not even the child's.
    let got = Req::get("/auth/v2/check", &[("account_id", child.as_str())])
        .send(&url, Some(&keys))
        .await;
    assert_duo_error(&got, 40102, None);
}
