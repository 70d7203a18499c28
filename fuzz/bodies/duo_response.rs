//! Duo answers as the client reads them, for each response type, on arbitrary bytes.
//! Shared by the libFuzzer target and the short run in the test suite.
use deskproof::duo::client::{
    check_time, parse_response, parse_users_page, preauth_result, push_txid,
};
use deskproof::duo::types::{AuthStatus, ChildAccount, DuoUser};

const STATUSES: [u16; 8] = [200, 400, 401, 403, 404, 429, 500, 503];

pub fn run(data: &[u8]) {
    // A body starting as JSON does is read as a 200 answer; any other first byte picks one of
    // the statuses the client tells apart, so error envelopes are read as well.
    let (status, body) = match data.split_first() {
        None | Some((b'{' | b'[' | b' ' | b'\n', _)) => (200, data),
        Some((b, rest)) => (STATUSES[usize::from(*b) % STATUSES.len()], rest),
    };
    if let Ok(status) = parse_response::<AuthStatus>("/auth/v2/auth_status", status, body) {
        let _ = status.outcome();
    }
    // The envelope once, then every reading the client makes of its `response`.
    if let Ok(response) = parse_response::<serde_json::Value>("/auth/v2/preauth", status, body) {
        if let Ok(preauth) = preauth_result(response.clone()) {
            let _ = preauth.push_device();
        }
        let _ = push_txid(response.clone());
        let _ = check_time(response.clone());
        if let Ok(user) = serde_json::from_value::<DuoUser>(response) {
            let _ = user.has_push_phone();
        }
    }
    if let Ok(page) = parse_users_page(status, body) {
        for user in &page.users {
            let _ = user.has_push_phone();
        }
    }
    let _ = parse_response::<DuoUser>("/admin/v1/users/DU", status, body);
    let _ = parse_response::<Vec<ChildAccount>>("/accounts/v1/account/list", status, body);
}
