use leptos::prelude::*;
use leptos_router::components::Redirect;

use crate::api::{whoami, SignOut};
use crate::model::{CurrentUser, Role};

/// The frame of every signed-in page: header with navigation and sign-out, then the content.
/// Anyone without a session is sent to the sign-in page.
#[component]
pub fn SignedIn<F, V>(children: F) -> impl IntoView
where
    F: Fn(CurrentUser) -> V + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let user = Resource::new(|| (), |_| whoami());
    let children = std::sync::Arc::new(children);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                let children = children.clone();
                user.get()
                    .map(move |u| match u {
                        Ok(Some(u)) => {
                            view! {
                                <Header user=u.clone() />
                                <main class="content">{children(u)}</main>
                            }
                                .into_any()
                        }
                        Ok(None) => {
                            // The page to come back to, with its query (a filtered list, say).
                            let location = leptos_router::hooks::use_location();
                            let mut next = location.pathname.get_untracked();
                            let search = location.search.get_untracked();
                            let search = search.trim_start_matches('?');
                            if !search.is_empty() {
                                next = format!("{next}?{search}");
                            }
                            let path = format!("/signin?next={}", encode_path(&next));
                            view! { <Redirect path=path /> }.into_any()
                        }
                        Err(e) => {
                            view! {
                                <p class="error">{crate::api::error_text(&e)}</p>
                            }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Header(user: CurrentUser) -> impl IntoView {
    let sign_out = ServerAction::<SignOut>::new();
    let is_admin = user.role == Role::Admin;
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <img src="/logo.svg" alt="" width="28" height="28" />
                <span>"deskproof"</span>
            </a>
            <nav>
                <a href="/">"Verifications"</a>
                <Show when=move || is_admin>
                    <a href="/settings">"Settings"</a>
                    <a href="/audit">"Audit log"</a>
                </Show>
            </nav>
            <div class="who">
                <span class="user" data-testid="current-user">{user.display_name.clone()}</span>
                <span class="role">{user.role.as_str()}</span>
                <ActionForm action=sign_out>
                    <button type="submit" class="link">"Sign out"</button>
                </ActionForm>
            </div>
        </header>
    }
}

/// Percent-encodes a path for a query value (it only ever holds URL-safe path characters).
fn encode_path(path: &str) -> String {
    path.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' | '/' => c.to_string(),
            other => {
                let mut buf = [0u8; 4];
                other
                    .encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect()
            }
        })
        .collect()
}
