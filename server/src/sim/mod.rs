//! Simulators of Duo and the PSAs, for the demo and for tests. They are as strict as the real
//! services: bad signatures, paging and rate limits are enforced.
pub mod autotask;
pub mod common;
pub mod connectwise;
pub mod demo;
pub mod duo;
pub mod freshdesk;
pub mod halopsa;

/// Escapes text for HTML element content and attribute values in the simulators' pages.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
