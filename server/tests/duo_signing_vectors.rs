//! Known-answer vectors for Duo request signing, checked against the signing functions and the
//! simulator's verifier.
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use deskproof::duo::signing::{self, DigestAlg, SignatureVersion, SigningInput};
use deskproof::sim::duo::verify::{self, RawRequest};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/duo-signing-vectors.json"
);

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(VECTORS).expect("vectors file is readable");
    serde_json::from_str(&text).expect("vectors file is JSON")
}

fn params_of(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(map) = v["params"].as_object() {
        for (k, val) in map {
            match val {
                Value::Array(items) => {
                    for item in items {
                        out.push((k.clone(), item.as_str().unwrap().to_owned()));
                    }
                }
                other => out.push((k.clone(), other.as_str().unwrap().to_owned())),
            }
        }
    }
    out
}

fn x_duo_of(v: &Value) -> Vec<(String, String)> {
    v["x_duo_headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, val)| (k.clone(), val.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn version_of(v: &Value) -> SignatureVersion {
    match (v["sig_version"].as_u64(), v["digest"].as_str()) {
        (Some(2), Some("sha1")) => SignatureVersion::V2(DigestAlg::Sha1),
        (Some(2), _) => SignatureVersion::V2(DigestAlg::Sha512),
        _ => SignatureVersion::V5,
    }
}

fn name(v: &Value) -> &str {
    v["name"].as_str().unwrap()
}

#[test]
fn every_vector_reproduces_its_canonical_parameters() {
    let mut checked = 0;
    for v in vectors() {
        if let Some(expected) = v["expected_canon_params"].as_str() {
            assert_eq!(
                signing::canon_params(&params_of(&v)),
                expected,
                "{}",
                name(&v)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} vectors had canonical parameters"
    );
}

#[test]
fn every_vector_reproduces_its_body_and_x_duo_header_hashes() {
    let mut checked = 0;
    for v in vectors() {
        if let Some(expected) = v["expected_body_hash"].as_str() {
            let body = v["body"].as_str().unwrap_or("");
            assert_eq!(
                signing::sha512_hex(body.as_bytes()),
                expected,
                "{}",
                name(&v)
            );
            checked += 1;
        }
        if let Some(expected) = v["expected_x_duo_headers_hash"].as_str() {
            assert_eq!(
                signing::x_duo_headers_hash(&x_duo_of(&v)).unwrap(),
                expected,
                "{}",
                name(&v)
            );
            checked += 1;
        }
    }
    assert!(checked >= 10);
}

fn input_of<'a>(
    v: &'a Value,
    params: &'a [(String, String)],
    headers: &'a [(String, String)],
) -> SigningInput<'a> {
    SigningInput {
        date: v["date"].as_str().unwrap(),
        method: v["method"].as_str().unwrap(),
        host: v["host"].as_str().unwrap(),
        path: v["path"].as_str().unwrap(),
        params,
        body: v["body"].as_str().unwrap_or("").as_bytes(),
        x_duo_headers: headers,
    }
}

#[test]
fn every_vector_reproduces_its_canonical_string_signature_and_authorization() {
    let (mut canon, mut sigs, mut auths) = (0, 0, 0);
    for v in vectors() {
        if v["method"].is_null() {
            continue;
        }
        let params = params_of(&v);
        let headers = x_duo_of(&v);
        let input = input_of(&v, &params, &headers);
        let version = version_of(&v);
        if let Some(expected) = v["expected_canonical"].as_str() {
            assert_eq!(
                signing::canonical_string(version, &input).unwrap(),
                expected,
                "{}",
                name(&v)
            );
            canon += 1;
        }
        let Some(skey) = v["skey"].as_str() else {
            continue;
        };
        let sig = signing::sign(version, skey, &input).unwrap();
        if let Some(expected) = v["expected_signature_hex"].as_str() {
            assert_eq!(sig, expected, "{}", name(&v));
            sigs += 1;
        }
        if let Some(expected) = v["expected_authorization"].as_str() {
            let ikey = v["ikey"].as_str().unwrap();
            assert_eq!(
                signing::authorization_header(ikey, &sig),
                expected,
                "{}",
                name(&v)
            );
            auths += 1;
        }
    }
    assert!(
        canon >= 5 && sigs >= 12 && auths >= 5,
        "{canon} {sigs} {auths}"
    );
}

#[test]
fn negative_vectors_differ_from_the_correct_canonical_form_and_signature() {
    let mut checked = 0;
    for v in vectors() {
        let Some(neg) = v.get("negative").filter(|n| n.is_object()) else {
            continue;
        };
        let params = params_of(&v);
        let input = input_of(&v, &params, &[]);
        let version = version_of(&v);
        let canonical = signing::canonical_string(version, &input).unwrap();
        assert_ne!(
            canonical,
            neg["canonical"].as_str().unwrap(),
            "{}",
            name(&v)
        );
        let skey = v["skey"].as_str().unwrap();
        // The negative signature really is the HMAC of the wrong form, and not of the right one.
        assert_eq!(
            signing::hmac_hex(
                version.digest(),
                skey.as_bytes(),
                neg["canonical"].as_str().unwrap()
            ),
            neg["signature_hex"].as_str().unwrap()
        );
        assert_ne!(
            signing::sign(version, skey, &input).unwrap(),
            neg["signature_hex"].as_str().unwrap()
        );
        checked += 1;
    }
    assert!(checked >= 1);
}

/// The request a vector describes, as it would arrive at the simulator.
fn raw_request(v: &Value) -> RawRequest {
    let method = Method::from_bytes(
        v["method"]
            .as_str()
            .unwrap()
            .to_ascii_uppercase()
            .as_bytes(),
    )
    .unwrap();
    let params = params_of(v);
    let mut headers = HeaderMap::new();
    headers.insert(
        "host",
        HeaderValue::from_str(v["host"].as_str().unwrap()).unwrap(),
    );
    for (k, val) in x_duo_of(v) {
        headers.insert(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(&val).unwrap(),
        );
    }
    let in_body = method == Method::POST;
    let (query, body) = match (version_of(v), in_body) {
        (SignatureVersion::V2(_), true) => {
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            (None, signing::canon_params(&params).into_bytes())
        }
        (SignatureVersion::V5, true) => {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let q = signing::canon_params(&params);
            (
                (!q.is_empty()).then_some(q),
                v["body"].as_str().unwrap_or("").as_bytes().to_vec(),
            )
        }
        _ => {
            let q = signing::canon_params(&params);
            ((!q.is_empty()).then_some(q), Vec::new())
        }
    };
    RawRequest {
        method,
        path: v["path"].as_str().unwrap().to_owned(),
        query,
        headers,
        body,
    }
}

#[test]
fn the_simulator_accepts_every_signed_vector_and_rejects_the_negative_one() {
    let mut accepted = 0;
    for v in vectors() {
        let (Some(skey), Some(sig)) = (v["skey"].as_str(), v["expected_signature_hex"].as_str())
        else {
            continue;
        };
        let raw = raw_request(&v);
        let date = v["date"].as_str().unwrap();
        let query_and_body = raw.query.is_some() && !raw.body.is_empty();
        let result = verify::verify_signature(&raw, date, skey, sig);
        if query_and_body {
            // D1 splits parameters between query and body, which Duo does not accept.
            assert_eq!(result.unwrap_err().code, 40103, "{}", name(&v));
        } else {
            assert!(result.is_ok(), "{}: {:?}", name(&v), result);
            accepted += 1;
        }
        if let Some(neg) = v.get("negative").filter(|n| n.is_object()) {
            let bad = neg["signature_hex"].as_str().unwrap();
            let rejected = verify::verify_signature(&raw, date, skey, bad).unwrap_err();
            assert_eq!(rejected.code, 40103, "{}", name(&v));
        }
    }
    assert!(accepted >= 10, "accepted {accepted}");
}

#[test]
fn the_simulator_rejects_signatures_of_the_wrong_length_as_unsupported() {
    let v = vectors().into_iter().next().unwrap();
    let raw = raw_request(&v);
    let date = v["date"].as_str().unwrap();
    let skey = v["skey"].as_str().unwrap();
    for bad in ["abc", &"a".repeat(64), &"z".repeat(40)] {
        let err = verify::verify_signature(&raw, date, skey, bad).unwrap_err();
        assert_eq!(err.code, 40112, "{bad}");
    }
}
