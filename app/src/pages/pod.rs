//! `/pod/connectwise/:connection_id`: deskproof inside a ConnectWise ticket screen.
//!
//! The page speaks ConnectWise's Hosted API: it says `ready`, learns its frame id, acknowledges
//! every screen event, takes the ticket id from `onLoad` and asks for the member's credentials.
//! The server confirms the member with ConnectWise and checks the ticket before anything else.
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{error_text, pod_origins, pod_status, pod_verify};
use crate::model::{AttemptRow, PodFrame, PodView};

/// Where the handshake with ConnectWise stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))] // Only the browser moves past Connecting.
pub(crate) enum Stage {
    Connecting,
    Checking,
    Ready,
    Failed(String),
}

#[component]
pub fn PodPage() -> impl IntoView {
    let params = use_params_map();
    let connection = move || {
        params
            .read()
            .get("connection_id")
            .and_then(|c| c.parse::<i64>().ok())
    };
    let frame = Resource::new(connection, |c| async move {
        match c {
            Some(c) => pod_origins(c).await.map(Some),
            None => Ok(None),
        }
    });
    view! {
        <main class="pod">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    frame
                        .get()
                        .map(|r| match r {
                            Ok(Some(f)) => view! { <Pod frame=f /> }.into_any(),
                            Ok(None) => {
                                view! {
                                    <p class="error" data-testid="pod-error">
                                        "This pod address is not valid: it must end in the \
                                         number of a ConnectWise connection in deskproof."
                                    </p>
                                }
                                    .into_any()
                            }
                            Err(e) => {
                                view! {
                                    <p class="error" data-testid="pod-error">{error_text(&e)}</p>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Suspense>
        </main>
    }
}

#[component]
fn Pod(frame: PodFrame) -> impl IntoView {
    let stage = RwSignal::new(if frame.origins.is_empty() {
        Stage::Failed(
            "No ConnectWise address is set up for this connection, so the pod cannot talk to \
             ConnectWise. An administrator adds it under Settings → PSA connections \
             (ConnectWise addresses) or as pod_origins in deskproof's setup file."
                .into(),
        )
    } else {
        Stage::Connecting
    });
    let current = RwSignal::new(None::<PodView>);
    // The pod token: in this page's memory only, never in a cookie or storage.
    let token = RwSignal::new(None::<String>);
    let url_ticket = use_query_map().read_untracked().get("id");
    Effect::new(move |started: Option<()>| {
        if started.is_none() && stage.get_untracked() == Stage::Connecting {
            handshake::start(frame.clone(), url_ticket.clone(), stage, current, token);
        }
    });
    view! {
        {move || match stage.get() {
            Stage::Connecting => {
                view! {
                    <p class="loading" data-testid="pod-stage">"Connecting to ConnectWise…"</p>
                }
                    .into_any()
            }
            Stage::Checking => {
                view! {
                    <p class="loading" data-testid="pod-stage">
                        "Checking your ConnectWise sign-in…"
                    </p>
                }
                    .into_any()
            }
            Stage::Failed(msg) => {
                view! { <p class="error" data-testid="pod-error">{msg}</p> }.into_any()
            }
            Stage::Ready => view! { <PodTicket current token /> }.into_any(),
        }}
    }
}

#[component]
fn PodTicket(current: RwSignal<Option<PodView>>, token: RwSignal<Option<String>>) -> impl IntoView {
    let pod_token = move || token.get_untracked().unwrap_or_default();
    let verify = Action::new(move |_: &()| pod_verify(pod_token()));
    let lost = RwSignal::new(None::<String>);
    let verify_error = move || {
        verify
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|e| error_text(&e))
    };
    let latest =
        move || current.with(|v| v.as_ref().and_then(|v| v.page.attempts.first().cloned()));
    let waiting = move || {
        current.with(|v| {
            v.as_ref().is_some_and(|v| {
                v.reading || v.page.attempts.first().is_some_and(AttemptRow::is_open)
            })
        })
    };

    Effect::new(move |_| {
        if let Some(Ok(attempt)) = verify.value().get() {
            current.update(|v| {
                if let Some(v) = v {
                    v.page.attempts.retain(|a| a.id != attempt.id);
                    v.page.attempts.insert(0, attempt);
                }
            });
        }
    });
    // While the ticket is being read or a push is open, ask again once a second.
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || {
                if waiting() {
                    leptos::task::spawn_local(async move {
                        match pod_status(pod_token()).await {
                            Ok(v) => {
                                lost.set(None);
                                current.set(Some(v));
                            }
                            // E.g. the pod token expired: say so rather than wait for ever.
                            Err(e) => lost.set(Some(error_text(&e))),
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

    // While an approval counts, a push would be refused: the pod says until when instead.
    let verified_until = move || {
        current.with(|v| {
            v.as_ref().and_then(|v| {
                v.page.verified_until.clone().or_else(|| {
                    v.page
                        .attempts
                        .first()
                        .and_then(|a| a.verified_until.clone())
                })
            })
        })
    };
    let can_push = move || {
        current.with(|v| {
            v.as_ref()
                .is_some_and(|v| !v.reading && v.page.problem.is_none())
        }) && verified_until().is_none()
    };
    let busy = move || verify.pending().get() || waiting();
    let label = move || match latest() {
        None => "Verify",
        Some(a) if a.is_open() => "Verifying…",
        Some(_) => "Try again",
    };
    let caller_code = move || {
        latest()
            .filter(AttemptRow::is_open)
            .and_then(|a| a.caller_code)
    };
    let field = move |f: fn(&PodView) -> String| {
        move || current.with(|v| v.as_ref().map(f).unwrap_or_default())
    };
    view! {
        <div class="pod-head">
            <dl class="facts compact">
                <dt>"Contact"</dt>
                <dd data-testid="pod-contact">{field(|v| v.page.contact.clone())}</dd>
                <dt>"Duo user"</dt>
                <dd data-testid="pod-matched">{field(|v| v.page.matched.clone())}</dd>
            </dl>
            <Show when=can_push>
                <button
                    type="button"
                    class="primary"
                    data-testid="pod-verify"
                    disabled=busy
                    on:click=move |_| {
                        verify.dispatch(());
                    }
                >
                    {label}
                </button>
            </Show>
        </div>
        <Show when=move || current.with(|v| v.as_ref().is_some_and(|v| v.reading))>
            <p class="loading">"deskproof is still reading this ticket from ConnectWise…"</p>
        </Show>
        {move || {
            current
                .with(|v| v.as_ref().and_then(|v| v.page.problem.clone()))
                .filter(|_| !current.with(|v| v.as_ref().is_some_and(|v| v.reading)))
                .map(|p| view! { <p class="notice" data-testid="pod-problem">{p}</p> })
        }}
        {move || {
            lost.get().map(|e| view! { <p class="error" role="alert" data-testid="pod-lost">{e}</p> })
        }}
        <Show when=move || verify_error().is_some()>
            <p class="error" role="alert" data-testid="pod-verify-error">{verify_error}</p>
        </Show>
        {move || {
            latest()
                .map(|a| {
                    view! {
                        <p class="lead">
                            <span class=format!("status {}", a.state) data-testid="pod-status">
                                {a.headline()}
                            </span>
                            {a.reason.clone().map(|r| view! { <span class="muted">" " {r}</span> })}
                        </p>
                    }
                })
        }}
        {move || {
            caller_code()
                .map(|code| {
                    view! {
                        <p class="pod-code">
                            "Code to read back: "
                            <strong data-testid="pod-caller-code">{code}</strong>
                            <span class="muted">" — ask the caller to read it from the push."</span>
                        </p>
                    }
                })
        }}
        {move || {
            verified_until()
                .map(|until| {
                    view! {
                        <p class="pod-verified" data-testid="pod-verified-until">
                            "Verified until " {until}
                        </p>
                    }
                })
        }}
        <Show when=move || current.with(|v| v.as_ref().is_some_and(|v| v.page.attempts.len() > 1))>
            <ul class="pod-history" data-testid="pod-history">
                <For
                    each=move || {
                        current
                            .with(|v| {
                                v.as_ref().map(|v| v.page.attempts.clone()).unwrap_or_default()
                            })
                    }
                    key=|a| (a.id, a.state.clone())
                    children=|a| {
                        let when = a.created_at.replace('T', " ").replace('Z', " UTC");
                        // The time of day is enough beside the ticket; the title has the date.
                        let time = when.split(' ').nth(1).unwrap_or_default().to_owned();
                        view! {
                            <li title=when>
                                <span class="muted">{time}</span>
                                " "
                                {a.headline()}
                                " · "
                                {a.technician.clone()}
                            </li>
                        }
                    }
                />
            </ul>
        </Show>
        <p class="muted pod-member" data-testid="pod-member">
            "Signed in to ConnectWise as " {field(|v| v.member.clone())}
        </p>
    }
}

#[cfg(not(feature = "hydrate"))]
mod handshake {
    use leptos::prelude::RwSignal;

    use super::Stage;
    use crate::model::{PodFrame, PodView};

    /// The handshake only runs in the browser.
    pub(crate) fn start(
        _frame: PodFrame,
        _url_ticket: Option<String>,
        _stage: RwSignal<Stage>,
        _current: RwSignal<Option<PodView>>,
        _token: RwSignal<Option<String>>,
    ) {
    }
}

#[cfg(feature = "hydrate")]
mod handshake {
    use std::cell::RefCell;
    use std::rc::Rc;

    use leptos::prelude::*;
    use serde_json::{json, Value};

    use super::Stage;
    use crate::api::{error_text, pod_open};
    use crate::model::{PodFrame, PodView};

    /// What the page learned from ConnectWise so far.
    #[derive(Default)]
    struct Link {
        /// The ConnectWise origin that answered; every later message must come from it.
        origin: Option<String>,
        frame_id: Option<Value>,
        ticket: Option<String>,
        opening: bool,
    }

    fn post(target: &web_sys::Window, origin: &str, message: &Value) {
        let _ = target.post_message(&message.to_string().into(), origin);
    }

    pub(crate) fn start(
        frame: PodFrame,
        url_ticket: Option<String>,
        stage: RwSignal<Stage>,
        current: RwSignal<Option<PodView>>,
        token: RwSignal<Option<String>>,
    ) {
        let own = window();
        let parent = own
            .parent()
            .ok()
            .flatten()
            .filter(|p| !js_sys::Object::is(p, &own));
        let Some(parent) = parent else {
            stage.set(Stage::Failed(
                "This page works inside ConnectWise: open a service ticket and use the \
                 deskproof pod there."
                    .into(),
            ));
            return;
        };
        let link = Rc::new(RefCell::new(Link::default()));
        let ready_to = frame.origins.clone();
        let origins = frame.origins.clone();
        let target = parent.clone();
        let _listener = window_event_listener(leptos::ev::message, move |e| {
            on_message(
                &e,
                &origins,
                &target,
                &link,
                &frame,
                &url_ticket,
                stage,
                current,
                token,
            );
        });
        // `ready` goes to each configured origin: the browser delivers it only to a parent
        // that really has that origin.
        for origin in &ready_to {
            post(&parent, origin, &json!({"message": "ready"}));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_message(
        e: &web_sys::MessageEvent,
        origins: &[String],
        parent: &web_sys::Window,
        link: &Rc<RefCell<Link>>,
        frame: &PodFrame,
        url_ticket: &Option<String>,
        stage: RwSignal<Stage>,
        current: RwSignal<Option<PodView>>,
        token: RwSignal<Option<String>>,
    ) {
        let origin = e.origin();
        if !origins.contains(&origin) {
            return;
        }
        let from_parent = e
            .source()
            .is_some_and(|s| js_sys::Object::is(&s, parent.as_ref()));
        if !from_parent {
            return;
        }
        let Some(msg) = e
            .data()
            .as_string()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        else {
            return;
        };
        let mut l = link.borrow_mut();
        match &l.origin {
            Some(o) if *o != origin => return,
            Some(_) => {}
            None => l.origin = Some(origin.clone()),
        }
        if let Some(id) = msg.get("MessageFrameID") {
            l.frame_id = Some(id.clone());
            return;
        }
        if let Some(event) = msg.get("event").and_then(Value::as_str) {
            // Every event is acknowledged: ConnectWise waits on `beforeSave` before saving.
            let ack = json!({
                "event": event,
                "_id": msg.get("_id").cloned().unwrap_or(Value::Null),
                "result": "success",
                "errors": [],
                "frameID": l.frame_id.clone().unwrap_or(Value::Null),
            });
            post(parent, &origin, &ack);
            if event == "onLoad" && l.ticket.is_none() {
                let screen = msg
                    .pointer("/data/screenObject/screen")
                    .and_then(Value::as_str);
                if screen.is_some_and(|s| !s.eq_ignore_ascii_case("ticket")) {
                    stage.set(Stage::Failed(
                        "deskproof's pod belongs on the service ticket screen.".into(),
                    ));
                    return;
                }
                let ticket = match msg.pointer("/data/screenObject/id") {
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                    _ => url_ticket.clone(),
                };
                let Some(ticket) = ticket else {
                    stage.set(Stage::Failed(
                        "ConnectWise did not say which ticket is open. Reload the ticket.".into(),
                    ));
                    return;
                };
                l.ticket = Some(ticket);
                stage.set(Stage::Checking);
                let request = json!({
                    "hosted_request": "getMemberAuthentication",
                    "frameID": l.frame_id.clone().unwrap_or(Value::Null),
                });
                post(parent, &origin, &request);
            }
            return;
        }
        let is_member = msg
            .get("response")
            .and_then(Value::as_str)
            .is_some_and(|r| r.eq_ignore_ascii_case("getmemberauthentication"));
        if !is_member || l.opening {
            return;
        }
        let Some(ticket) = l.ticket.clone() else {
            return;
        };
        let text = |key: &str| {
            msg.pointer(&format!("/data/{key}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .filter(|v| !v.is_empty())
        };
        let (Some(member_id), Some(member_hash)) = (text("memberid"), text("memberHash")) else {
            stage.set(Stage::Failed(
                "ConnectWise did not say who is signed in. Reload the ticket and try again.".into(),
            ));
            return;
        };
        l.opening = true;
        let connection_id = frame.connection_id;
        leptos::task::spawn_local(async move {
            match pod_open(connection_id, ticket, member_id, member_hash).await {
                Ok(session) => {
                    token.set(Some(session.token));
                    current.set(Some(session.view));
                    stage.set(Stage::Ready);
                }
                Err(e) => stage.set(Stage::Failed(error_text(&e))),
            }
        });
    }
}
