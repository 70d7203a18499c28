use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::{attempts, error_text, fresh_link, verification, SendPush};
use crate::model::{AttemptRow, VerificationPage};
use crate::pages::layout::SignedIn;

/// `/verify/:token`: the ticket, its contact, the matched Duo user and the push button.
#[component]
pub fn VerifyPage() -> impl IntoView {
    view! { <SignedIn children=|_user| view! { <Verification /> } /> }
}

#[component]
fn Verification() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let page = Resource::new(token, verification);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading the ticket…"</p> }>
            {move || {
                page.get()
                    .map(|r| match r {
                        Ok(p) => view! { <TicketCard page=p token=token() /> }.into_any(),
                        Err(e) => view! { <LinkProblem message=error_text(&e) token=token() /> }
                            .into_any(),
                    })
            }}
        </Suspense>
    }
}

/// A link that cannot be used. An expired one can be swapped for a fresh link to the same
/// ticket; an altered one cannot.
#[component]
fn LinkProblem(message: String, token: String) -> impl IntoView {
    let expired = message.contains("expired");
    view! {
        <h1>"Verification link"</h1>
        <p class="error" data-testid="link-error">{message}</p>
        <Show when=move || expired>
            <p>"The link is genuine but old. You can open a fresh link to the same ticket."</p>
            <FreshLink token=token.clone() />
        </Show>
    }
}

/// A button that swaps a genuine link for a fresh one to the same ticket and opens it.
#[component]
fn FreshLink(token: String) -> impl IntoView {
    let renew = Action::new(move |token: &String| fresh_link(token.clone()));
    let navigate = leptos_router::hooks::use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(path)) = renew.value().get() {
            navigate(&path, Default::default());
        }
    });
    let renew_error = move || {
        renew
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|e| error_text(&e))
    };
    let token = StoredValue::new(token);
    view! {
        <button
            class="primary"
            data-testid="fresh-link"
            on:click=move |_| {
                renew.dispatch(token.get_value());
            }
        >
            "Get a fresh link"
        </button>
        <Show when=move || renew_error().is_some()>
            <p class="error" role="alert">{renew_error}</p>
        </Show>
    }
}

#[component]
fn TicketCard(page: VerificationPage, token: String) -> impl IntoView {
    let history = RwSignal::new(page.attempts.clone());
    let send = ServerAction::<SendPush>::new();
    let push_error = move || {
        send.value()
            .get()
            .and_then(|r| r.err())
            .map(|e| error_text(&e))
    };

    // After a push, and while one is open, refresh the history once a second.
    let poll_token = token.clone();
    // A link sends one push; after that the page offers a fresh link instead.
    let link_used = RwSignal::new(page.link_used.clone());
    Effect::new(move |_| {
        if let Some(Ok(attempt)) = send.value().get() {
            if attempt.state != "refused" && link_used.get_untracked().is_none() {
                link_used.set(Some("just now".to_owned()));
            }
            history.update(|h| {
                h.retain(|a| a.id != attempt.id);
                h.insert(0, attempt);
            });
        }
    });
    Effect::new(move |_| {
        let token = poll_token.clone();
        let handle = set_interval_with_handle(
            move || {
                if history.with_untracked(|h| h.first().is_some_and(AttemptRow::is_open)) {
                    let token = token.clone();
                    leptos::task::spawn_local(async move {
                        if let Ok(rows) = attempts(token).await {
                            history.set(rows);
                        }
                    });
                }
            },
            std::time::Duration::from_millis(1000),
        );
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });

    // Both come with the attempts, so they change without a reload: the code once a push is
    // sent, the approval's time once the contact approves.
    let verified_until = move || {
        history.with(|h| {
            h.iter()
                .find(|a| a.state == "approved")
                .and_then(|a| a.verified_until.clone())
        })
    };
    let caller_code = move || {
        history.with(|h| {
            h.first()
                .filter(|a| a.is_open())
                .and_then(|a| a.caller_code.clone())
        })
    };
    let no_problem = page.problem.is_none();
    let can_push = move || no_problem && verified_until().is_none();
    let form_token = StoredValue::new(token.clone());
    let busy = move || {
        send.pending().get() || history.with(|h| h.first().is_some_and(AttemptRow::is_open))
    };
    view! {
        <h1>"Verify ticket #" {page.ticket_id.clone()}</h1>
        <div class="card">
            <dl class="facts">
                <dt>"Ticket"</dt>
                <dd data-testid="summary">{page.summary.clone()}</dd>
                <dt>"Contact"</dt>
                <dd data-testid="contact">{page.contact.clone()}</dd>
                <dt>"Organization"</dt>
                <dd>{page.organization.clone().unwrap_or_else(|| "(not mapped)".into())}</dd>
                <dt>"Duo user"</dt>
                <dd data-testid="matched">{page.matched.clone()}</dd>
            </dl>
            {page
                .problem
                .clone()
                .map(|p| view! { <p class="notice" data-testid="problem">{p}</p> })}
            {move || {
                verified_until()
                    .map(|until| {
                        view! {
                            <p class="status approved" data-testid="verified-until">
                                "Verified until " {until}
                            </p>
                        }
                    })
            }}
            {move || {
                caller_code()
                    .map(|code| {
                        view! {
                            <p class="notice">
                                "Ask the caller to read back the code in their push: "
                                <strong data-testid="caller-code">{code}</strong>
                            </p>
                        }
                    })
            }}
            <Show when=move || can_push() && link_used.get().is_some() && !busy()>
                <p class="notice" data-testid="link-used">
                    "This link already sent a Duo Push ("
                    {move || link_used.get().unwrap_or_default()}
                    "). A fresh link sends another."
                </p>
                <FreshLink token=form_token.get_value() />
            </Show>
            <Show when=move || can_push() && (link_used.get().is_none() || busy())>
                <ActionForm action=send>
                    <input type="hidden" name="token" value=form_token.get_value() />
                    <button
                        type="submit"
                        class="primary big"
                        data-testid="send-push"
                        disabled=busy
                    >
                        "Send Duo Push"
                    </button>
                </ActionForm>
            </Show>
            <Show when=move || push_error().is_some()>
                <p class="error" role="alert">{push_error}</p>
            </Show>
        </div>
        <StatusTimeline history=history />
    }
}

#[component]
fn StatusTimeline(history: RwSignal<Vec<AttemptRow>>) -> impl IntoView {
    view! {
        <Show when=move || history.with(|h| !h.is_empty())>
            <h2>"Status"</h2>
            {move || {
                history
                    .with(|h| h.first().cloned())
                    .map(|a| {
                        view! {
                            <p class="lead">
                                <span class=format!("status {}", a.state) data-testid="status">
                                    {a.headline()}
                                </span>
                                {a.reason.clone().map(|r| view! { <span class="muted">" " {r}</span> })}
                            </p>
                        }
                    })
            }}
            <div class="table-scroll">
            <table>
                <thead>
                    <tr>
                        <th>"When (UTC)"</th>
                        <th>"Technician"</th>
                        <th>"Duo user"</th>
                        <th>"Result"</th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || history.get()
                        key=|a| (a.id, a.state.clone())
                        children=|a| {
                            view! {
                                <tr>
                                    <td>{a.created_at.replace('T', " ").replace('Z', "")}</td>
                                    <td>{a.technician.clone()}</td>
                                    <td>{a.duo_user.clone().unwrap_or_default()}</td>
                                    <td>{a.headline()}</td>
                                </tr>
                            }
                        }
                    />
                </tbody>
            </table>
            </div>
        </Show>
    }
}
