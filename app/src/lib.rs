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
    // An admin page's code is fetched before the page is hydrated (see `shell`), so hydration
    // is asynchronous; the marker browser tests wait for before they click is set after it.
    wasm_bindgen_futures::spawn_local(async {
        let app = leptos::mount::hydrate_from_async(leptos::tachys::dom::body(), App).await;
        app.forget();
        let _ = js_sys::Reflect::set(
            &js_sys::global(),
            &"__deskproof_hydrated".into(),
            &wasm_bindgen::JsValue::TRUE,
        );
    });
}
