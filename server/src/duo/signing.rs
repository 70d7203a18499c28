//! Duo request signing (v2 and v5) as pure functions, shared by the client and the simulator.
//!
//! The rules follow `shared/reference/duo-api.md` §2: parameters are UTF-8, percent-encoded with
//! only `A-Za-z0-9-_.~` left literal, uppercase hex, sorted by encoded key then encoded value.
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha512};
use time::OffsetDateTime;

/// Request parameters in the order the caller gave them; a key may repeat.
pub type Params = Vec<(String, String)>;

/// SHA-512 of the empty string: line 6 of a v5 GET, and line 7 when no X-Duo header is signed.
pub const EMPTY_SHA512_HEX: &str = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

/// The HMAC hash function of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlg {
    Sha1,
    Sha512,
}

/// How a request is signed: the canonical format plus, for v2, the HMAC hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// Five-line canonical form, parameters in the query string or a form body.
    V2(DigestAlg),
    /// Seven-line canonical form, POST parameters as a JSON body; always HMAC-SHA512.
    V5,
}

impl SignatureVersion {
    pub fn digest(self) -> DigestAlg {
        match self {
            SignatureVersion::V2(d) => d,
            SignatureVersion::V5 => DigestAlg::Sha512,
        }
    }
}

/// An X-Duo header that cannot be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("header name {0:?} does not start with X-Duo-")]
    NotXDuo(String),
    #[error("header {0:?} contains a NUL byte")]
    ContainsNul(String),
    #[error("header {0:?} appears more than once")]
    Repeated(String),
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes one key or value the way Duo signs it (uppercase hex, space as `%20`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Line 5 of the canonical form: encoded `key=value` pairs sorted bytewise, joined by `&`.
pub fn canon_params<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (encode_component(k.as_ref()), encode_component(v.as_ref())))
        .collect();
    // Sorting whole (key, value) tuples gives "by key, then by value" including repeated keys.
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lowercase hex SHA-512 of some bytes (v5 lines 6 and 7).
pub fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(Sha512::digest(bytes))
}

/// The NUL-joined `name\0value` string of X-Duo headers, names lowercased and sorted.
pub fn canon_x_duo_headers<K: AsRef<str>, V: AsRef<str>>(
    headers: &[(K, V)],
) -> Result<String, HeaderError> {
    let mut lowered: Vec<(String, &str)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.as_ref().to_ascii_lowercase();
        let value = value.as_ref();
        if !name.starts_with("x-duo-") {
            return Err(HeaderError::NotXDuo(name));
        }
        if name.contains('\0') || value.contains('\0') {
            return Err(HeaderError::ContainsNul(name));
        }
        if lowered.iter().any(|(n, _)| *n == name) {
            return Err(HeaderError::Repeated(name));
        }
        lowered.push((name, value));
    }
    lowered.sort();
    let mut parts = Vec::with_capacity(lowered.len() * 2);
    for (name, value) in &lowered {
        parts.push(name.as_str());
        parts.push(value);
    }
    Ok(parts.join("\0"))
}

/// v5 line 7: SHA-512 of the canonical X-Duo headers.
pub fn x_duo_headers_hash<K: AsRef<str>, V: AsRef<str>>(
    headers: &[(K, V)],
) -> Result<String, HeaderError> {
    Ok(sha512_hex(canon_x_duo_headers(headers)?.as_bytes()))
}

/// The v2 canonical string: date, method, host, path, parameters.
pub fn canonical_v2(date: &str, method: &str, host: &str, path: &str, params_line: &str) -> String {
    [
        date,
        &method.to_ascii_uppercase(),
        &host.to_ascii_lowercase(),
        path,
        params_line,
    ]
    .join("\n")
}

/// The v5 canonical string: the v2 lines plus the body hash and the X-Duo header hash.
pub fn canonical_v5(
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params_line: &str,
    body: &[u8],
    x_duo_hash: &str,
) -> String {
    [
        date,
        &method.to_ascii_uppercase(),
        &host.to_ascii_lowercase(),
        path,
        params_line,
        &sha512_hex(body),
        x_duo_hash,
    ]
    .join("\n")
}

/// Lowercase hex HMAC of the canonical string keyed by the secret key.
pub fn hmac_hex(digest: DigestAlg, skey: &[u8], canonical: &str) -> String {
    match digest {
        DigestAlg::Sha1 => {
            // HMAC accepts keys of any length, so new_from_slice cannot fail here.
            let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(skey) {
                Ok(m) => m,
                Err(_) => unreachable!("HMAC takes keys of any length"),
            };
            mac.update(canonical.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        DigestAlg::Sha512 => {
            let mut mac = match Hmac::<Sha512>::new_from_slice(skey) {
                Ok(m) => m,
                Err(_) => unreachable!("HMAC takes keys of any length"),
            };
            mac.update(canonical.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
    }
}

/// `Basic base64(ikey:signature)`.
pub fn authorization_header(ikey: &str, signature_hex: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{ikey}:{signature_hex}"));
    format!("Basic {token}")
}

/// Everything that goes into a signature.
#[derive(Debug, Clone, Copy)]
pub struct SigningInput<'a> {
    pub date: &'a str,
    pub method: &'a str,
    /// The host (and `:port` if not the default) the request is sent to.
    pub host: &'a str,
    pub path: &'a str,
    /// Parameters signed on line 5 (query parameters; for v2 also the form body).
    pub params: &'a [(String, String)],
    /// v5 only: the exact body bytes sent.
    pub body: &'a [u8],
    /// v5 only: X-Duo headers sent with the request.
    pub x_duo_headers: &'a [(String, String)],
}

/// The canonical string of a request for a given signature version.
pub fn canonical_string(
    version: SignatureVersion,
    input: &SigningInput<'_>,
) -> Result<String, HeaderError> {
    let params_line = canon_params(input.params);
    Ok(match version {
        SignatureVersion::V2(_) => canonical_v2(
            input.date,
            input.method,
            input.host,
            input.path,
            &params_line,
        ),
        SignatureVersion::V5 => canonical_v5(
            input.date,
            input.method,
            input.host,
            input.path,
            &params_line,
            input.body,
            &x_duo_headers_hash(input.x_duo_headers)?,
        ),
    })
}

/// The lowercase hex signature of a request.
pub fn sign(
    version: SignatureVersion,
    skey: &str,
    input: &SigningInput<'_>,
) -> Result<String, HeaderError> {
    let canonical = canonical_string(version, input)?;
    Ok(hmac_hex(version.digest(), skey.as_bytes(), &canonical))
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats a UTC time as an English RFC 2822 date, e.g. `Tue, 21 Aug 2012 17:29:18 -0000`.
///
/// Written by hand so that no locale can ever change the day or month names (40104).
pub fn format_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} -0000",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A fresh date for one request.
pub fn now_date() -> String {
    format_date(OffsetDateTime::now_utc())
}

/// Parses English RFC 2822 / RFC 1123 dates: `[Day, ]DD Mon YYYY HH:MM:SS ZONE`, where ZONE is
/// `±HHMM`, `GMT`, `UT`, `UTC` or `Z`. Returns `None` for anything else.
pub fn parse_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let rest = match s.split_once(',') {
        Some((day, rest)) => {
            if !DAYS.contains(&day.trim()) {
                return None;
            }
            rest
        }
        None => s,
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, clock, zone] = fields.as_slice() else {
        return None;
    };
    let day: u8 = day.parse().ok()?;
    let month_index = MONTHS.iter().position(|m| m == month)?;
    let month = time::Month::try_from(u8::try_from(month_index + 1).ok()?).ok()?;
    let year: i32 = year.parse().ok()?;
    let mut hms = clock.split(':');
    let hour: u8 = hms.next()?.parse().ok()?;
    let minute: u8 = hms.next()?.parse().ok()?;
    let second: u8 = hms.next()?.parse().ok()?;
    if hms.next().is_some() {
        return None;
    }
    let offset_seconds: i32 = match *zone {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let digits = &z[1..];
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hh: i32 = digits[..2].parse().ok()?;
            let mm: i32 = digits[2..].parse().ok()?;
            let magnitude = hh * 3600 + mm * 60;
            if z.starts_with('-') {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => return None,
    };
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let clock = time::Time::from_hms(hour, minute, second).ok()?;
    let offset = time::UtcOffset::from_whole_seconds(offset_seconds).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_formatted_in_english_with_a_numeric_zone() {
        let t = time::macros::datetime!(2012-08-21 17:29:18 UTC);
        assert_eq!(format_date(t), "Tue, 21 Aug 2012 17:29:18 -0000");
    }

    #[test]
    fn the_three_date_forms_of_the_official_libraries_parse_to_the_same_instant() {
        let expected = time::macros::datetime!(2012-08-21 17:29:18 UTC);
        for s in [
            "Tue, 21 Aug 2012 17:29:18 -0000",
            "Tue, 21 Aug 2012 17:29:18 +0000",
            "Tue, 21 Aug 2012 17:29:18 GMT",
            "Tue, 21 Aug 2012 19:29:18 +0200",
        ] {
            assert_eq!(parse_date(s), Some(expected), "{s}");
        }
    }

    #[test]
    fn localised_or_garbled_dates_do_not_parse() {
        for s in [
            "Di, 21 Aug 2012 17:29:18 -0000",
            "Tue, 21 Okt 2012 17:29:18 -0000",
            "2012-08-21T17:29:18Z",
            "",
            "Tue, 21 Aug 2012 17:29 -0000",
        ] {
            assert_eq!(parse_date(s), None, "{s}");
        }
    }

    #[test]
    fn a_date_survives_formatting_and_parsing() {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).ok();
        let now = now.unwrap_or_else(OffsetDateTime::now_utc);
        assert_eq!(parse_date(&format_date(now)), Some(now));
    }

    #[test]
    fn x_duo_headers_must_start_with_x_duo_and_not_repeat() {
        assert!(matches!(
            canon_x_duo_headers(&[("Date", "x")]),
            Err(HeaderError::NotXDuo(_))
        ));
        assert!(matches!(
            canon_x_duo_headers(&[("X-Duo-A", "1"), ("x-duo-a", "2")]),
            Err(HeaderError::Repeated(_))
        ));
        assert_eq!(
            x_duo_headers_hash::<&str, &str>(&[]),
            Ok(EMPTY_SHA512_HEX.into())
        );
    }
}
