//! deskproof's user interface: pages rendered on the server and hydrated in the browser.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod model;
pub mod pages;
mod shell;

#[cfg(feature = "ssr")]
pub mod backend;

pub use shell::{shell, App};

/// Entry point of the WebAssembly bundle: attaches the client to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // A marker browser tests wait for before they click.
    let _ = js_sys::Reflect::set(
        &js_sys::global(),
        &"__deskproof_hydrated".into(),
        &wasm_bindgen::JsValue::TRUE,
    );
}
