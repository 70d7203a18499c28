use leptos::prelude::*;

use crate::api::{error_text, SignIn};

#[component]
pub fn SignInPage() -> impl IntoView {
    let sign_in = ServerAction::<SignIn>::new();
    let show_password = RwSignal::new(false);
    let error = move || {
        sign_in
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|e| error_text(&e))
    };
    let query = leptos_router::hooks::use_query_map();
    let navigate = leptos_router::hooks::use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(_)) = sign_in.value().get() {
            let next = query
                .read_untracked()
                .get("next")
                .filter(|n| is_local_path(n))
                .unwrap_or_else(|| "/".to_owned());
            navigate(&next, Default::default());
        }
    });
    view! {
        <main class="centered signin">
            <div class="card">
                <div class="brand large">
                    <img src="/logo.svg" alt="" width="40" height="40" />
                    <span>"deskproof"</span>
                </div>
                <h1>"Sign in"</h1>
                <ActionForm action=sign_in>
                    <label for="username">"Username"</label>
                    <input id="username" name="username" autocomplete="username" required />
                    <label for="password">"Password"</label>
                    <div class="password-row">
                        <input
                            id="password"
                            name="password"
                            autocomplete="current-password"
                            required
                            type=move || if show_password.get() { "text" } else { "password" }
                        />
                        <button
                            type="button"
                            class="secondary"
                            data-testid="toggle-password"
                            on:click=move |_| show_password.update(|s| *s = !*s)
                        >
                            {move || if show_password.get() { "Hide" } else { "Show" }}
                        </button>
                    </div>
                    <Show when=move || error().is_some()>
                        <p class="error" role="alert">{error}</p>
                    </Show>
                    <button type="submit" class="primary" disabled=move || sign_in.pending().get()>
                        "Sign in"
                    </button>
                </ActionForm>
            </div>
        </main>
    }
}

/// Whether `next` is a path on this site and nothing else: it starts with one `/`, and holds
/// no backslash (browsers read `/\host` as `//host`, another site) and no control character
/// (which browsers strip, so `/\t/host` would also become `//host`).
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn only_paths_on_this_site_are_followed_after_sign_in() {
        for local in ["/", "/verify/abc.def", "/settings?tab=users", "/audit#top"] {
            assert!(is_local_path(local), "{local}");
        }
        for elsewhere in [
            "",
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example/x",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "javascript:alert(1)",
            "evil.example",
        ] {
            assert!(!is_local_path(elsewhere), "{elsewhere:?}");
        }
    }
}
