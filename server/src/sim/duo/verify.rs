//! Strict authentication of simulated Duo requests: credentials, date, skew, signature (v2 and
//! v5, recomputed from decoded and re-canonicalised parameters) and parameter placement.
use axum::http::{HeaderMap, Method};
use base64::Engine;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::duo::signing::{self, DigestAlg, SignatureVersion, SigningInput};

/// Allowed clock skew, as in Duo's own mock server.
pub const SKEW_WINDOW_SECS: i64 = 300;

/// A failure in Duo's envelope: `{"stat":"FAIL","code":…,"message":…,"message_detail"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    pub code: u32,
    pub message: &'static str,
    pub detail: Option<String>,
}

impl SimError {
    pub fn new(code: u32, message: &'static str) -> Self {
        SimError {
            code,
            message,
            detail: None,
        }
    }

    pub fn invalid_param(name: &str) -> Self {
        SimError {
            code: 40002,
            message: "Invalid request parameters",
            detail: Some(name.to_owned()),
        }
    }

    pub fn missing_credentials() -> Self {
        SimError::new(40101, "Missing request credentials")
    }
    pub fn invalid_ikey() -> Self {
        SimError::new(40102, "Invalid integration key in request credentials")
    }
    pub fn invalid_signature() -> Self {
        SimError::new(40103, "Invalid signature in request credentials")
    }
    pub fn missing_timestamp() -> Self {
        SimError::new(40104, "Missing request timestamp")
    }
    pub fn bad_timestamp() -> Self {
        SimError::new(40105, "Bad request timestamp")
    }
    pub fn unsupported_signature() -> Self {
        SimError::new(40112, "Signature type is not supported")
    }
    pub fn not_found() -> Self {
        SimError::new(40401, "Resource not found")
    }
    pub fn rate_limited() -> Self {
        SimError::new(42901, "Too Many Requests")
    }
    pub fn forbidden() -> Self {
        SimError::new(40301, "Access forbidden")
    }
    pub fn method_not_allowed() -> Self {
        SimError::new(40501, "Method not allowed")
    }

    /// Duo's HTTP status is the first three digits of the code.
    pub fn http_status(&self) -> u16 {
        u16::try_from(self.code / 100).unwrap_or(500)
    }
}

/// A request as it arrived, before any interpretation.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The `ikey` and hex signature carried by a Basic `Authorization` header.
pub fn basic_credentials(headers: &HeaderMap) -> Result<(String, String), SimError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(SimError::missing_credentials)?;
    let token = value
        .strip_prefix("Basic ")
        .ok_or_else(SimError::missing_credentials)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| SimError::missing_credentials())?;
    let text = String::from_utf8(decoded).map_err(|_| SimError::missing_credentials())?;
    let (ikey, sig) = text
        .split_once(':')
        .ok_or_else(SimError::missing_credentials)?;
    Ok((ikey.to_owned(), sig.to_owned()))
}

/// Checks date presence, format and skew (steps 3 and 4).
pub fn check_date(headers: &HeaderMap, now: OffsetDateTime) -> Result<String, SimError> {
    let date = headers
        .get("x-duo-date")
        .or_else(|| headers.get(axum::http::header::DATE))
        .and_then(|v| v.to_str().ok())
        .ok_or_else(SimError::missing_timestamp)?;
    let when = signing::parse_date(date).ok_or_else(SimError::missing_timestamp)?;
    if (now - when).whole_seconds().abs() > SKEW_WINDOW_SECS {
        return Err(SimError::bad_timestamp());
    }
    Ok(date.to_owned())
}

/// Parameters parsed from the body; an error is kept so the signature is checked first.
enum BodyParams {
    None,
    Form(Vec<(String, String)>),
    Json(Vec<(String, String)>),
    Invalid(&'static str),
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> BodyParams {
    if body.is_empty() {
        return BodyParams::None;
    }
    match content_type(headers).as_str() {
        "application/x-www-form-urlencoded" => {
            if std::str::from_utf8(body).is_err() {
                return BodyParams::Invalid("body");
            }
            BodyParams::Form(
                url::form_urlencoded::parse(body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            )
        }
        "application/json" => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(map)) => {
                let mut params = Vec::new();
                for (k, v) in map {
                    match v {
                        serde_json::Value::Array(values) => {
                            for item in values {
                                params.push((k.clone(), json_scalar(item)));
                            }
                        }
                        other => params.push((k, json_scalar(other))),
                    }
                }
                BodyParams::Json(params)
            }
            _ => BodyParams::Invalid("body"),
        },
        _ => BodyParams::Invalid("Content-Type"),
    }
}

fn json_scalar(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn x_duo_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-duo-"))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn same_signature(given: &str, computed: &str) -> bool {
    given
        .to_ascii_lowercase()
        .as_bytes()
        .ct_eq(computed.as_bytes())
        .into()
}

/// Steps 5 to 8 once the key is known: signature format, signature, placement, body parsing.
/// Returns the decoded parameters (query and body together).
pub fn verify_signature(
    req: &RawRequest,
    date: &str,
    skey: &str,
    signature: &str,
) -> Result<Vec<(String, String)>, SimError> {
    if !(signature.len() == 40 || signature.len() == 128)
        || !signature.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(SimError::unsupported_signature());
    }
    let query: Vec<(String, String)> = req
        .query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let body = parse_body(&req.headers, &req.body);
    let host = req
        .headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");

    // v2 signs query and form parameters alike; a JSON body has no v2 form.
    let mut v2_params = query.clone();
    if let BodyParams::Form(form) = &body {
        v2_params.extend(form.iter().cloned());
    }
    let no_headers: Vec<(String, String)> = Vec::new();
    let v2_input = SigningInput {
        date,
        method: req.method.as_str(),
        host,
        path: &req.path,
        params: &v2_params,
        body: &[],
        x_duo_headers: &no_headers,
    };
    let matches = if signature.len() == 40 {
        let computed = signing::sign(SignatureVersion::V2(DigestAlg::Sha1), skey, &v2_input);
        computed.is_ok_and(|c| same_signature(signature, &c))
    } else {
        // 128 hex digits could be v2-SHA512 or v5; the length alone cannot tell, so try both.
        let v2 = signing::sign(SignatureVersion::V2(DigestAlg::Sha512), skey, &v2_input)
            .is_ok_and(|c| same_signature(signature, &c));
        let headers = x_duo_headers(&req.headers);
        let v5_input = SigningInput {
            params: &query,
            body: &req.body,
            x_duo_headers: &headers,
            ..v2_input
        };
        let v5 = signing::sign(SignatureVersion::V5, skey, &v5_input)
            .is_ok_and(|c| same_signature(signature, &c));
        v2 | v5
    };
    if !matches {
        return Err(SimError::invalid_signature());
    }
    let body_params = match body {
        BodyParams::None => Vec::new(),
        BodyParams::Form(p) | BodyParams::Json(p) => p,
        BodyParams::Invalid(what) => return Err(SimError::invalid_param(what)),
    };
    if !query.is_empty() && !body_params.is_empty() {
        // Duo does not support splitting parameters between the query string and the body.
        return Err(SimError::invalid_signature());
    }
    let mut all = query;
    all.extend(body_params);
    Ok(all)
}
