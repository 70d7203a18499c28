//! `/settings/*`: organizations, Duo keys, policy, PSA connections, company mappings and local
//! accounts. Admins only: the server answers 403 to anyone else.
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::admin::{
    admin_settings, psa_kind, AddUser, ConnectPsa, ConnectionView, DuoChildrenReply, DuoView,
    FormReply, ListDuoChildren, RemoveMapping, ResetPassword, SaveConnection, SaveDuo, SaveMapping,
    SaveOrganization, SavePolicy, SetUserDisabled, SettingsView, TestConnection, TestDuo,
    TestReply, UserView, CALLER_CODE_CHOICES, DUO_DIRECTORY_CHOICES, POLICY_FIELDS, PSA_KINDS,
};
use crate::api::error_text;
use crate::model::Role;
use crate::pages::layout::SignedIn;

/// The reply of a save action as a signal; a failed call becomes a form-wide error.
macro_rules! reply_signal {
    ($action:expr) => {{
        let action = $action;
        Signal::derive(move || match action.value().get() {
            Some(Ok(reply)) => Some(reply),
            Some(Err(e)) => Some(FormReply::field("_form", error_text(&e))),
            None => None,
        })
    }};
}

macro_rules! test_signal {
    ($action:expr) => {{
        let action = $action;
        Signal::derive(move || match action.value().get() {
            Some(Ok(reply)) => Some(reply),
            Some(Err(e)) => Some(TestReply {
                ok: false,
                message: error_text(&e),
                lines: Vec::new(),
            }),
            None => None,
        })
    }};
}

/// A form that is reset after each successful save, so typed secrets never stay on the page
/// and the inputs show what was stored.
fn reset_after_save(reply: Signal<Option<FormReply>>) -> NodeRef<leptos::html::Form> {
    let form = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if reply.get().is_some_and(|r| r.ok()) {
            if let Some(f) = form.get_untracked() {
                f.reset();
            }
        }
    });
    form
}

/// The frame of every admin page: the signed-in layout, then the settings navigation.
#[component]
fn AdminFrame<F, V>(children: F) -> impl IntoView
where
    F: Fn() -> V + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let children = std::sync::Arc::new(children);
    view! {
        <SignedIn children=move |user| {
            let children = children.clone();
            if user.role != Role::Admin {
                return view! {
                    <h1>"Not allowed"</h1>
                    <p class="error" data-testid="forbidden">"This page is for administrators."</p>
                }
                    .into_any();
            }
            view! {
                <nav class="subnav" data-testid="settings-nav">
                    <a href="/settings/organizations">"Organizations"</a>
                    <a href="/settings/connections">"PSA connections"</a>
                    <a href="/settings/policy">"Default policy"</a>
                    <a href="/settings/users">"Users"</a>
                    <a href="/audit">"Audit log"</a>
                </nav>
                {children()}
            }
                .into_any()
        } />
    }
}

#[component]
fn FieldError(reply: Signal<Option<FormReply>>, name: &'static str) -> impl IntoView {
    move || {
        reply
            .get()
            .and_then(|r| r.errors.get(name).cloned())
            .map(|m| {
                view! {
                    <p class="field-error" data-testid=format!("error-{name}")>
                        {m}
                    </p>
                }
            })
    }
}

#[component]
fn FormStatus(reply: Signal<Option<FormReply>>) -> impl IntoView {
    move || {
        reply.get().and_then(|r| {
            let problems = !r.errors.is_empty();
            match (r.message, r.errors.get("_form").cloned()) {
                (_, Some(e)) => Some(view! { <p class="error" role="alert">{e}</p> }.into_any()),
                (Some(m), None) => {
                    Some(view! { <p class="success" data-testid="saved">{m}</p> }.into_any())
                }
                // An answer with nothing to say (a listing that worked) shows nothing.
                (None, None) if !problems => None,
                (None, None) => Some(
                    view! {
                        <p class="error" role="alert">
                            "Please correct the fields marked in red."
                        </p>
                    }
                    .into_any(),
                ),
            }
        })
    }
}

#[component]
fn TestResult(reply: Signal<Option<TestReply>>, testid: &'static str) -> impl IntoView {
    move || {
        reply.get().map(|r| {
            let class = if r.ok { "success" } else { "error" };
            view! {
                <div class=class data-testid=testid>
                    <strong>{r.message.clone()}</strong>
                    <ul>{r.lines.into_iter().map(|l| view! { <li>{l}</li> }).collect_view()}</ul>
                </div>
            }
        })
    }
}

/// Loads the settings again whenever `version` changes.
fn settings_resource(
    version: impl Fn() -> usize + Send + Sync + 'static,
) -> Resource<Result<SettingsView, ServerFnError>> {
    Resource::new(version, |_| admin_settings())
}

/// Shows `view` with the loaded settings, or the loading and error states.
fn with_settings<V: IntoView + 'static>(
    settings: Resource<Result<SettingsView, ServerFnError>>,
    view: impl Fn(SettingsView) -> V + Send + Sync + Clone + 'static,
) -> impl IntoView {
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {
                let view = view.clone();
                move || {
                    let view = view.clone();
                    settings
                        .get()
                        .map(move |r| match r {
                            Ok(s) => view(s).into_any(),
                            Err(e) => {
                                view! { <p class="error" data-testid="load-error">{error_text(&e)}</p> }
                                    .into_any()
                            }
                        })
                }
            }
        </Transition>
    }
}

/// `/settings`: where each part of the administration lives.
#[component]
pub fn SettingsPage() -> impl IntoView {
    view! {
        <AdminFrame children=|| {
            view! {
                <h1>"Settings"</h1>
                <ul class="cards">
                    <li>
                        <a href="/settings/organizations">"Organizations"</a>
                        " — client organizations, their Duo keys and policy."
                    </li>
                    <li>
                        <a href="/settings/connections">"PSA connections"</a>
                        " — ConnectWise and other PSAs, and which company is which organization."
                    </li>
                    <li>
                        <a href="/settings/policy">"Default policy"</a>
                        " — what every organization inherits."
                    </li>
                    <li><a href="/settings/users">"Users"</a> " — technicians and admins."</li>
                    <li>
                        <a href="/audit">"Audit log"</a>
                        " — every verification and every change, with CSV export."
                    </li>
                </ul>
            }
        } />
    }
}

/// `/settings/organizations`: the list and a form to add one.
#[component]
pub fn OrganizationsPage() -> impl IntoView {
    view! { <AdminFrame children=|| view! { <Organizations /> } /> }
}

#[component]
fn Organizations() -> impl IntoView {
    let create = ServerAction::<SaveOrganization>::new();
    let reply = reply_signal!(create);
    let form = reset_after_save(reply);
    let settings = settings_resource(move || create.version().get());
    view! {
        <h1>"Organizations"</h1>
        {with_settings(
            settings,
            |s: SettingsView| {
                view! {
                    <div class="table-scroll">
                    <table data-testid="organizations">
                        <thead>
                            <tr>
                                <th>"Name"</th>
                                <th>"Duo account"</th>
                                <th>"Companies mapped"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {s
                                .organizations
                                .iter()
                                .map(|o| {
                                    let mapped = s
                                        .mappings
                                        .iter()
                                        .filter(|m| m.organization_id == o.id)
                                        .count();
                                    view! {
                                        <tr>
                                            <td>
                                                <a href=format!(
                                                    "/settings/organizations/{}",
                                                    o.id,
                                                )>{o.name.clone()}</a>
                                            </td>
                                            <td>
                                                {if o.duo.is_some() { "set up" } else { "not set up" }}
                                            </td>
                                            <td>{mapped}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                    </div>
                }
            },
        )}
        <h2>"Add an organization"</h2>
        <ActionForm
            action=create
            node_ref=form
            attr:class="card form"
            attr:data-testid="new-organization"
        >
            <input type="hidden" name="id" value="" />
            <label for="org-name">"Name"</label>
            <input id="org-name" name="name" />
            <FieldError reply name="name" />
            <FormStatus reply />
            <button type="submit" disabled=move || create.pending().get() class="primary">
                "Add organization"
            </button>
        </ActionForm>
    }
}

/// `/settings/organizations/:id`: rename, Duo keys with Test, and the policy.
#[component]
pub fn OrganizationPage() -> impl IntoView {
    view! { <AdminFrame children=|| view! { <Organization /> } /> }
}

#[component]
fn Organization() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_default()
    };
    let rename = ServerAction::<SaveOrganization>::new();
    let duo = ServerAction::<SaveDuo>::new();
    let test = ServerAction::<TestDuo>::new();
    let policy = ServerAction::<SavePolicy>::new();
    let settings = settings_resource(move || {
        rename.version().get() + duo.version().get() + policy.version().get()
    });
    let rename_reply = reply_signal!(rename);
    let duo_reply = reply_signal!(duo);
    let policy_reply = reply_signal!(policy);
    with_settings(settings, move |s: SettingsView| {
        let org_id = id();
        let Some(org) = s.organizations.iter().find(|o| o.id == org_id).cloned() else {
            return view! { <p class="error">"No such organization."</p> }.into_any();
        };
        let inherited = s
            .policy_builtin
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    s.policy_defaults.get(k).cloned().unwrap_or(v.clone()),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>();
        let mapped = s
            .mappings
            .iter()
            .filter(|m| m.organization_id == org_id)
            .map(|m| format!("{} company {}", m.connection_name, m.company_id))
            .collect::<Vec<_>>();
        view! {
            <h1 data-testid="organization-name">{org.name.clone()}</h1>
            <p class="muted">
                {if mapped.is_empty() {
                    "No PSA company is mapped to this organization yet.".to_owned()
                } else {
                    format!("Mapped: {}", mapped.join(", "))
                }}
            </p>
            <h2>"Name"</h2>
            <ActionForm action=rename attr:class="card form inline">
                <input type="hidden" name="id" value=org_id.to_string() />
                <label for="rename">"Name"</label>
                <input id="rename" name="name" value=org.name.clone() />
                <FieldError reply=rename_reply name="name" />
                <FormStatus reply=rename_reply />
                <button type="submit" disabled=move || rename.pending().get() class="secondary">"Rename"</button>
            </ActionForm>

            <h2>"Duo account"</h2>
            <DuoForm org_id duo_view=org.duo.clone() action=duo reply=duo_reply test />

            <h2>"Policy"</h2>
            <p class="muted">"Blank fields inherit the default shown."</p>
            <PolicyForm
                action=policy
                reply=policy_reply
                organization_id=org_id.to_string()
                values=org.policy.clone()
                inherited=inherited
            />
        }
        .into_any()
    })
}

/// Which of the Duo form's two buttons answered last: its errors are the ones shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DuoFormAction {
    Save,
    ListChildren,
}

/// An organization's Duo account: the Auth API keys, then direct Admin API keys or an MSP
/// parent's Accounts API keys with a child account picked from Duo's list, and how the caller
/// code travels.
#[component]
fn DuoForm(
    org_id: i64,
    duo_view: Option<DuoView>,
    action: ServerAction<SaveDuo>,
    reply: Signal<Option<FormReply>>,
    test: ServerAction<TestDuo>,
) -> impl IntoView {
    let list = ServerAction::<ListDuoChildren>::new();
    let last = RwSignal::new(DuoFormAction::Save);
    Effect::new(move |_| {
        if action.input().get().is_some() {
            last.set(DuoFormAction::Save);
        }
    });
    let list_reply = Signal::derive(move || match list.value().get() {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => Some(DuoChildrenReply {
            errors: [("_form".to_owned(), error_text(&e))].into(),
            children: Vec::new(),
        }),
        None => None,
    });
    // Field errors of whichever button was used last.
    let errors = Signal::derive(move || match last.get() {
        DuoFormAction::Save => reply.get(),
        DuoFormAction::ListChildren => list_reply.get().map(|r| FormReply {
            errors: r.errors,
            message: None,
        }),
    });
    let form = reset_after_save(reply);
    let test_reply = test_signal!(test);
    let d = duo_view.unwrap_or(DuoView {
        api_host: String::new(),
        auth_ikey: String::new(),
        admin_ikey: String::new(),
        auth_skey_set: false,
        admin_skey_set: false,
        directory: DUO_DIRECTORY_CHOICES[0].0.to_owned(),
        accounts_api_host: String::new(),
        accounts_ikey: String::new(),
        accounts_skey_set: false,
        child: None,
        caller_code: CALLER_CODE_CHOICES[0].0.to_owned(),
    });
    let directory = RwSignal::new(d.directory.clone());
    let msp = move || directory.get() == "accounts_api";
    // The fields of the other choice stay in the form, out of sight; the server reads only
    // the chosen kind's.
    let secret_state = |set: bool| {
        if set {
            "set — leave blank to keep"
        } else {
            "not set"
        }
    };
    let stored_child = d.child.clone();
    let stored_child_id = stored_child.as_ref().map(|c| c.account_id.clone());
    // Duo's fresh list once asked for, else the child account stored.
    let children = move || match list_reply.get() {
        Some(r) if !r.children.is_empty() => r.children,
        _ => stored_child.clone().into_iter().collect(),
    };
    let host_input = NodeRef::<leptos::html::Input>::new();
    let ikey_input = NodeRef::<leptos::html::Input>::new();
    let skey_input = NodeRef::<leptos::html::Input>::new();
    let list_children = move |_| {
        let value = |input: NodeRef<leptos::html::Input>| {
            input.get_untracked().map(|i| i.value()).unwrap_or_default()
        };
        let fields = [
            ("accounts_api_host", value(host_input)),
            ("accounts_ikey", value(ikey_input)),
            ("accounts_skey", value(skey_input)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        last.set(DuoFormAction::ListChildren);
        list.dispatch(ListDuoChildren {
            organization_id: org_id,
            fields,
        });
    };
    view! {
        <ActionForm action node_ref=form attr:class="card form" attr:data-testid="duo-form">
            <input type="hidden" name="organization_id" value=org_id.to_string() />
            <fieldset class="choice" data-testid="duo-directory">
                <legend>"Users are read with"</legend>
                {DUO_DIRECTORY_CHOICES
                    .iter()
                    .map(|(value, label)| {
                        let id = format!("directory-{value}");
                        let label_for = id.clone();
                        view! {
                            <label for=label_for>
                                <input
                                    type="radio"
                                    id=id
                                    name="fields[directory]"
                                    value=*value
                                    checked=d.directory == *value
                                    on:change=move |_| directory.set((*value).to_owned())
                                />
                                " "
                                {*label}
                            </label>
                        }
                    })
                    .collect_view()}
            </fieldset>
            <FieldError reply=errors name="directory" />

            <div class="form" hidden=msp>
                <label for="api_host">"API hostname"</label>
                <input
                    id="api_host"
                    name="fields[api_host]"
                    value=d.api_host.clone()
                    placeholder="api-xxxxxxxx.duosecurity.com"
                />
                <FieldError reply=errors name="api_host" />
            </div>
            <div class="form" hidden=move || !msp() data-testid="duo-msp">
                <label for="accounts_api_host">"MSP parent's API hostname"</label>
                <input
                    id="accounts_api_host"
                    name="fields[accounts_api_host]"
                    node_ref=host_input
                    value=d.accounts_api_host.clone()
                    placeholder="api-xxxxxxxx.duosecurity.com"
                />
                <FieldError reply=errors name="accounts_api_host" />
                <label for="accounts_ikey">"Accounts API integration key"</label>
                <input
                    id="accounts_ikey"
                    name="fields[accounts_ikey]"
                    node_ref=ikey_input
                    value=d.accounts_ikey.clone()
                />
                <FieldError reply=errors name="accounts_ikey" />
                <label for="accounts_skey">"Accounts API secret key"</label>
                <input
                    id="accounts_skey"
                    name="fields[accounts_skey]"
                    node_ref=skey_input
                    type="password"
                    autocomplete="off"
                    placeholder=secret_state(d.accounts_skey_set)
                />
                <span class="muted" data-testid="accounts-skey-state">
                    {if d.accounts_skey_set { "set" } else { "not set" }}
                </span>
                <FieldError reply=errors name="accounts_skey" />
                <div class="buttons">
                    <button
                        type="button"
                        class="secondary"
                        data-testid="list-children"
                        disabled=move || list.pending().get()
                        on:click=list_children
                    >
                        "List child accounts"
                    </button>
                </div>
                <label for="child_account_id">"Child account"</label>
                <select id="child_account_id" name="fields[child_account_id]">
                    <option value="">"Choose…"</option>
                    {move || {
                        children()
                            .into_iter()
                            .map(|c| {
                                let selected = stored_child_id.as_deref() == Some(&c.account_id);
                                view! {
                                    <option value=c.account_id.clone() selected=selected>
                                        {format!("{} ({})", c.name, c.api_hostname)}
                                    </option>
                                }
                            })
                            .collect_view()
                    }}
                </select>
                <span class="muted help">
                    "The child's users are read with the parent's Accounts API keys; pushes still \
                     need the child's own Auth API application below."
                </span>
                <FieldError reply=errors name="child_account_id" />
            </div>

            <label for="auth_ikey">"Auth API integration key"</label>
            <input id="auth_ikey" name="fields[auth_ikey]" value=d.auth_ikey.clone() />
            <FieldError reply=errors name="auth_ikey" />
            <label for="auth_skey">"Auth API secret key"</label>
            <input
                id="auth_skey"
                name="fields[auth_skey]"
                type="password"
                autocomplete="off"
                placeholder=secret_state(d.auth_skey_set)
            />
            <span class="muted" data-testid="auth-skey-state">
                {if d.auth_skey_set { "set" } else { "not set" }}
            </span>
            <FieldError reply=errors name="auth_skey" />

            <div class="form" hidden=msp>
                <label for="admin_ikey">"Admin API integration key"</label>
                <input id="admin_ikey" name="fields[admin_ikey]" value=d.admin_ikey.clone() />
                <FieldError reply=errors name="admin_ikey" />
                <label for="admin_skey">"Admin API secret key"</label>
                <input
                    id="admin_skey"
                    name="fields[admin_skey]"
                    type="password"
                    autocomplete="off"
                    placeholder=secret_state(d.admin_skey_set)
                />
                <span class="muted" data-testid="admin-skey-state">
                    {if d.admin_skey_set { "set" } else { "not set" }}
                </span>
                <FieldError reply=errors name="admin_skey" />
            </div>

            <label for="caller_code">"Code the caller reads back"</label>
            <select id="caller_code" name="fields[caller_code]">
                {CALLER_CODE_CHOICES
                    .iter()
                    .map(|(value, label)| {
                        view! {
                            <option value=*value selected=d.caller_code == *value>
                                {*label}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <span class="muted help">
                "With Duo's verification push, Duo's own text replaces the ticket text in the push, \
                 and the Admin API keys (for an MSP child account, the parent's Accounts API keys) need \
                 the \"Grant write resource\" permission; without it \
                 deskproof sends the push with its own code in the details."
            </span>
            <FieldError reply=errors name="caller_code" />
            <FormStatus reply=errors />
            <div class="buttons">
                <button type="submit" disabled=move || action.pending().get() class="primary" data-testid="save-duo">
                    "Save Duo keys"
                </button>
                <button
                    type="button"
                    class="secondary"
                    data-testid="test-duo"
                    disabled=move || test.pending().get()
                    on:click=move |_| {
                        test.dispatch(TestDuo { organization_id: org_id });
                    }
                >
                    "Test"
                </button>
            </div>
            <TestResult reply=test_reply testid="duo-test-result" />
        </ActionForm>
    }
}

#[component]
fn PolicyForm(
    action: ServerAction<SavePolicy>,
    reply: Signal<Option<FormReply>>,
    organization_id: String,
    values: std::collections::BTreeMap<String, String>,
    inherited: std::collections::BTreeMap<String, String>,
) -> impl IntoView {
    view! {
        <ActionForm action attr:class="card form policy" attr:data-testid="policy-form">
            <input type="hidden" name="organization_id" value=organization_id />
            {POLICY_FIELDS
                .iter()
                .map(|(name, label, unit)| {
                    let id = format!("policy-{name}");
                    let value = values.get(*name).cloned().unwrap_or_default();
                    let placeholder = inherited
                        .get(*name)
                        .map(|v| format!("inherit: {v}"))
                        .unwrap_or_default();
                    view! {
                        <label for=id.clone()>{*label} " (" {*unit} ")"</label>
                        <input
                            id=id
                            name=format!("fields[{name}]")
                            value=value
                            placeholder=placeholder
                        />
                        <FieldError reply name=name />
                    }
                })
                .collect_view()}
            <FormStatus reply />
            <button type="submit" disabled=move || action.pending().get() class="primary">"Save policy"</button>
        </ActionForm>
    }
}

/// `/settings/policy`: the deployment-wide defaults.
#[component]
pub fn DefaultPolicyPage() -> impl IntoView {
    view! {
        <AdminFrame children=|| {
            let policy = ServerAction::<SavePolicy>::new();
            let reply = reply_signal!(policy);
            let settings = settings_resource(move || policy.version().get());
            view! {
                <h1>"Default policy"</h1>
                <p class="muted">
                    "Every organization inherits these values unless it sets its own. Blank fields use the built-in value shown."
                </p>
                {with_settings(
                    settings,
                    move |s: SettingsView| {
                        view! {
                            <PolicyForm
                                action=policy
                                reply
                                organization_id=String::new()
                                values=s.policy_defaults.clone()
                                inherited=s.policy_builtin.clone()
                            />
                        }
                    },
                )}
            }
        } />
    }
}

/// `/settings/connections`: PSA connections with Test and Connect, and company mappings.
#[component]
pub fn ConnectionsPage() -> impl IntoView {
    view! { <AdminFrame children=|| view! { <Connections /> } /> }
}

#[component]
fn Connections() -> impl IntoView {
    let create = ServerAction::<SaveConnection>::new();
    let map = ServerAction::<SaveMapping>::new();
    let unmap = ServerAction::<RemoveMapping>::new();
    let edits = RwSignal::new(0usize);
    // A save reloads the list, which draws every card again: the answer is kept here so the
    // card still says it was saved.
    let last_saved = RwSignal::new(None::<(i64, FormReply)>);
    let settings = settings_resource(move || {
        create.version().get() + map.version().get() + unmap.version().get() + edits.get()
    });
    let create_reply = reply_signal!(create);
    let map_reply = reply_signal!(map);
    let unmap_reply = reply_signal!(unmap);
    view! {
        <h1>"PSA connections"</h1>
        {with_settings(
            settings,
            move |s: SettingsView| {
                let orgs = s.organizations.clone();
                let conns = s.connections.clone();
                view! {
                    {s
                        .connections
                        .iter()
                        .cloned()
                        .map(|c| view! { <ConnectionCard conn=c edits last_saved /> })
                        .collect_view()}
                    <h2>"Company mappings"</h2>
                    <p class="muted">
                        "A ticket is verified against the Duo account of the organization its PSA company maps to."
                    </p>
                    <div class="table-scroll">
                    <table data-testid="mappings">
                        <thead>
                            <tr>
                                <th>"Connection"</th>
                                <th>"Company id"</th>
                                <th>"Organization"</th>
                                <th></th>
                            </tr>
                        </thead>
                        <tbody>
                            {s
                                .mappings
                                .iter()
                                .map(|m| {
                                    let connection = m.connection_id.to_string();
                                    let company = m.company_id.clone();
                                    view! {
                                        <tr>
                                            <td>{m.connection_name.clone()}</td>
                                            <td>{m.company_id.clone()}</td>
                                            <td>{m.organization_name.clone()}</td>
                                            <td>
                                                <ActionForm action=unmap attr:class="inline">
                                                    <input
                                                        type="hidden"
                                                        name="connection_id"
                                                        value=connection
                                                    />
                                                    <input
                                                        type="hidden"
                                                        name="company_id"
                                                        value=company
                                                    />
                                                    <button
                                                        type="submit"
                                                        disabled=move || unmap.pending().get()
                                                        data-testid="remove-mapping"
                                                        title="New tickets of this company are no longer verified"
                                                    >
                                                        "Remove"
                                                    </button>
                                                </ActionForm>
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                    </div>
                    <div data-testid="mapping-removed">
                        <FormStatus reply=unmap_reply />
                    </div>
                    <ActionForm action=map attr:class="card form" attr:data-testid="mapping-form">
                        <label for="map-connection">"PSA connection"</label>
                        <select id="map-connection" name="connection_id">
                            {conns
                                .iter()
                                .map(|c| {
                                    view! { <option value=c.id.to_string()>{c.name.clone()}</option> }
                                })
                                .collect_view()}
                        </select>
                        <FieldError reply=map_reply name="connection_id" />
                        <label for="map-company">"PSA company id"</label>
                        <input id="map-company" name="company_id" />
                        <FieldError reply=map_reply name="company_id" />
                        <label for="map-organization">"Organization"</label>
                        <select id="map-organization" name="organization_id">
                            <option value="">"Choose…"</option>
                            {orgs
                                .iter()
                                .map(|o| {
                                    view! { <option value=o.id.to_string()>{o.name.clone()}</option> }
                                })
                                .collect_view()}
                        </select>
                        <FieldError reply=map_reply name="organization_id" />
                        <FormStatus reply=map_reply />
                        <button type="submit" disabled=move || map.pending().get() class="primary" data-testid="save-mapping">
                            "Map company"
                        </button>
                    </ActionForm>
                }
            },
        )}
        <h2>"Add a PSA connection"</h2>
        <ConnectionForm action=create reply=create_reply conn=None />
    }
}

#[component]
fn ConnectionCard(
    conn: ConnectionView,
    edits: RwSignal<usize>,
    last_saved: RwSignal<Option<(i64, FormReply)>>,
) -> impl IntoView {
    let save = ServerAction::<SaveConnection>::new();
    let test = ServerAction::<TestConnection>::new();
    let connect = ServerAction::<ConnectPsa>::new();
    let id = conn.id;
    Effect::new(move |_| {
        if let Some(Ok(r)) = save.value().get() {
            if r.ok() {
                last_saved.set(Some((id, r)));
                edits.update(|n| *n += 1);
            }
        }
    });
    let own_reply = reply_signal!(save);
    let reply = Signal::derive(move || {
        own_reply.get().or_else(|| {
            last_saved
                .get()
                .filter(|(saved, _)| *saved == id)
                .map(|(_, r)| r)
        })
    });
    let test_reply = test_signal!(test);
    let connect_reply = test_signal!(connect);
    let label = psa_kind(&conn.kind).map(|k| k.label).unwrap_or("PSA");
    let one_click = psa_kind(&conn.kind).is_some_and(|k| k.one_click_connect);
    view! {
        <section class="card" data-testid=format!("connection-{id}")>
            <h2>{conn.name.clone()} " " <span class="muted">"(" {label} ")"</span></h2>
            {if one_click {
                view! {
                    <p class="muted">
                        "Callback URL: " <code data-testid="hook-url">{conn.callback_url.clone()}</code>
                    </p>
                }
                    .into_any()
            } else {
                view! {
                    <p class="muted">
                        "Webhook URL to configure in " {label} ": "
                        <code data-testid="hook-url">{conn.callback_url.clone()}</code>
                    </p>
                }
                    .into_any()
            }}
            <ConnectionForm action=save reply conn=Some(conn.clone()) />
            <div class="buttons">
                <button
                    type="button"
                    class="secondary"
                    data-testid="test-connection"
                    disabled=move || test.pending().get()
                    on:click=move |_| {
                        test.dispatch(TestConnection { id });
                    }
                >
                    "Test connection"
                </button>
                <Show when=move || one_click>
                    <button
                        type="button"
                        class="secondary"
                        data-testid="connect-psa"
                        disabled=move || connect.pending().get()
                        on:click=move |_| {
                            connect.dispatch(ConnectPsa { id });
                        }
                    >
                        "Connect: register callback and pod"
                    </button>
                </Show>
            </div>
            <TestResult reply=test_reply testid="connection-test-result" />
            <TestResult reply=connect_reply testid="connect-result" />
        </section>
    }
}

/// The form of one PSA connection: a kind select, then the fields of that kind.
#[component]
fn ConnectionForm(
    action: ServerAction<SaveConnection>,
    reply: Signal<Option<FormReply>>,
    conn: Option<ConnectionView>,
) -> impl IntoView {
    let kind = RwSignal::new(
        conn.as_ref()
            .map(|c| c.kind.clone())
            .unwrap_or_else(|| PSA_KINDS[0].kind.to_owned()),
    );
    let editing = conn.is_some();
    let conn = StoredValue::new(conn);
    let id = conn.with_value(|c| c.as_ref().map(|c| c.id.to_string()).unwrap_or_default());
    let name = conn.with_value(|c| c.as_ref().map(|c| c.name.clone()).unwrap_or_default());
    let prefix = if editing {
        format!("conn{id}")
    } else {
        "new-conn".to_owned()
    };
    let p1 = prefix.clone();
    let form = reset_after_save(reply);
    let form_id = format!("{prefix}-form");
    let kind_id = format!("{prefix}-kind");
    let name_id = format!("{prefix}-name");
    view! {
        <ActionForm action node_ref=form attr:class="card form" attr:data-testid=form_id>
            <input type="hidden" name="id" value=id />
            <label for=kind_id.clone()>"Kind"</label>
            <select
                id=kind_id
                name="kind"
                disabled=editing
                on:change=move |ev| kind.set(event_target_value(&ev))
            >
                {PSA_KINDS
                    .iter()
                    .map(|k| {
                        view! {
                            <option value=k.kind selected=move || kind.get() == k.kind>
                                {k.label}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            {editing.then(|| view! { <input type="hidden" name="kind" value=move || kind.get() /> })}
            <FieldError reply name="kind" />
            <label for=name_id.clone()>"Name"</label>
            <input id=name_id name="name" value=name />
            <FieldError reply name="name" />
            {move || {
                let p = p1.clone();
                psa_kind(&kind.get())
                    .map(|spec| {
                        spec.fields
                            .iter()
                            .map(|f| {
                                let input_id = format!("{p}-{}", f.name);
                                let (value, placeholder) = conn
                                    .with_value(|c| match c {
                                        Some(c) if f.secret => {
                                            let set = c.secrets_set.get(f.name).copied().unwrap_or(false);
                                            (
                                                String::new(),
                                                if set { "set — leave blank to keep" } else { "not set" }
                                                    .to_owned(),
                                            )
                                        }
                                        Some(c) => {
                                            (c.settings.get(f.name).cloned().unwrap_or_default(), String::new())
                                        }
                                        None => (String::new(), String::new()),
                                    });
                                view! {
                                    <label for=input_id.clone()>{f.label}</label>
                                    <input
                                        id=input_id
                                        name=format!("fields[{}]", f.name)
                                        type=if f.secret { "password" } else { "text" }
                                        autocomplete="off"
                                        value=value
                                        placeholder=placeholder
                                    />
                                    <span class="muted help">{f.help}</span>
                                    <FieldError reply name=f.name />
                                }
                            })
                            .collect_view()
                    })
            }}
            <FormStatus reply />
            <button type="submit" disabled=move || action.pending().get() class="primary" data-testid="save-connection">
                {if editing { "Save connection" } else { "Add connection" }}
            </button>
        </ActionForm>
    }
}

/// One account in the users table, with its own Disable and Reset actions: a problem with
/// either is shown in this row, next to its button or field.
#[component]
fn UserRow(
    user: UserView,
    edits: RwSignal<usize>,
    done: RwSignal<Option<String>>,
) -> impl IntoView {
    let toggle = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let toggle_reply = reply_signal!(toggle);
    let reset_reply = reply_signal!(reset);
    let reset_form = reset_after_save(reset_reply);
    for reply in [toggle_reply, reset_reply] {
        Effect::new(move |_| {
            if let Some(r) = reply.get().filter(FormReply::ok) {
                done.set(r.message);
                edits.update(|n| *n += 1);
            }
        });
    }
    // A failed call (e.g. an unknown account) shows in the row, like a field problem.
    let problem = move |reply: Signal<Option<FormReply>>, field: &'static str| {
        move || {
            reply.get().and_then(|r| {
                r.errors
                    .get(field)
                    .or_else(|| r.errors.get("_form"))
                    .cloned()
            })
        }
    };
    let toggle_problem = problem(toggle_reply, "disabled");
    let reset_problem = problem(reset_reply, "password");
    let id = user.id;
    let disabled = user.disabled;
    let row_id = format!("user-{}", user.username);
    let aria = format!("New password for {}", user.username);
    view! {
        <tr data-testid=row_id>
            <td>{user.username.clone()}</td>
            <td>{user.display_name.clone()}</td>
            <td>{user.role.clone()}</td>
            <td>{if disabled { "disabled" } else { "active" }}</td>
            <td>
                <button
                    type="button"
                    class="secondary"
                    data-testid="toggle-user"
                    disabled=move || toggle.pending().get()
                    on:click=move |_| {
                        toggle.dispatch(SetUserDisabled { id, disabled: !disabled });
                    }
                >
                    {if disabled { "Enable" } else { "Disable" }}
                </button>
                {move || {
                    toggle_problem()
                        .map(|m| view! { <p class="field-error" data-testid="error-disabled">{m}</p> })
                }}
            </td>
            <td>
                <ActionForm action=reset node_ref=reset_form attr:class="inline">
                    <input type="hidden" name="id" value=id.to_string() />
                    <input
                        name="password"
                        type="password"
                        autocomplete="new-password"
                        aria-label=aria
                    />
                    <button type="submit" disabled=move || reset.pending().get() class="secondary" data-testid="reset-password">
                        "Reset"
                    </button>
                </ActionForm>
                {move || {
                    reset_problem()
                        .map(|m| view! { <p class="field-error" data-testid="error-password">{m}</p> })
                }}
            </td>
        </tr>
    }
}

/// `/settings/users`: technicians and admins.
#[component]
pub fn UsersPage() -> impl IntoView {
    view! { <AdminFrame children=|| view! { <Users /> } /> }
}

#[component]
fn Users() -> impl IntoView {
    let add = ServerAction::<AddUser>::new();
    // Bumped by a row after a change it saved, to load the list again.
    let edits = RwSignal::new(0usize);
    // What the last row change did; a row's problems stay in that row.
    let done = RwSignal::new(None::<String>);
    let settings = settings_resource(move || add.version().get() + edits.get());
    let add_reply = reply_signal!(add);
    let add_form = reset_after_save(add_reply);
    view! {
        <h1>"Users"</h1>
        {move || done.get().map(|m| view! { <p class="success" data-testid="saved">{m}</p> })}
        {with_settings(
            settings,
            move |s: SettingsView| {
                view! {
                    <div class="table-scroll">
                    <table data-testid="users">
                        <thead>
                            <tr>
                                <th>"Username"</th>
                                <th>"Name"</th>
                                <th>"Role"</th>
                                <th>"State"</th>
                                <th></th>
                                <th>"New password"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {s
                                .users
                                .into_iter()
                                .map(|u| view! { <UserRow user=u edits done /> })
                                .collect_view()}
                        </tbody>
                    </table>
                    </div>
                }
            },
        )}
        <h2>"Add a user"</h2>
        <ActionForm
            action=add
            node_ref=add_form
            attr:class="card form"
            attr:data-testid="new-user"
        >
            <label for="new-username">"Username"</label>
            <input id="new-username" name="fields[username]" autocomplete="off" />
            <FieldError reply=add_reply name="username" />
            <label for="new-display">"Display name"</label>
            <input id="new-display" name="fields[display_name]" />
            <FieldError reply=add_reply name="display_name" />
            <label for="new-role">"Role"</label>
            <select id="new-role" name="fields[role]">
                <option value="technician">"Technician"</option>
                <option value="admin">"Admin"</option>
            </select>
            <FieldError reply=add_reply name="role" />
            <label for="new-password">"Password"</label>
            <input
                id="new-password"
                name="fields[password]"
                type="password"
                autocomplete="new-password"
            />
            <FieldError reply=add_reply name="password" />
            <FormStatus reply=add_reply />
            <button type="submit" disabled=move || add.pending().get() class="primary">"Add user"</button>
        </ActionForm>
    }
}
