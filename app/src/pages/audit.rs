//! `/audit`: the append-only record of verifications and admin changes, with filters, a
//! per-ticket timeline and CSV export. Admins only.
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::admin::{admin_settings, audit_log, ticket_timeline, AuditListing, AuditQuery};
use crate::api::error_text;
use crate::model::Role;
use crate::pages::layout::SignedIn;

const OUTCOMES: &[&str] = &[
    "approved",
    "denied",
    "timed_out",
    "fraud",
    "refused",
    "bypass",
    "locked_out",
    "failed",
    "pushed",
];

fn admin_only<V: IntoView + 'static>(
    view: impl Fn() -> V + Send + Sync + 'static,
) -> impl IntoView {
    let view = std::sync::Arc::new(view);
    view! {
        <SignedIn children=move |user| {
            if user.role == Role::Admin {
                view().into_any()
            } else {
                view! { <p class="error" data-testid="forbidden">"This page is for administrators."</p> }
                    .into_any()
            }
        } />
    }
}

#[component]
pub fn AuditPage() -> impl IntoView {
    admin_only(|| view! { <AuditLog /> })
}

#[component]
fn AuditLog() -> impl IntoView {
    let query = use_query_map();
    let filters = move || {
        let q = query.read();
        let get = |k: &str| q.get(k).unwrap_or_default();
        AuditQuery {
            organization: get("organization"),
            connection: get("connection"),
            ticket: get("ticket"),
            technician: get("technician"),
            outcome: get("outcome"),
            from: get("from"),
            to: get("to"),
        }
    };
    let rows = Resource::new(filters, audit_log);
    let orgs = Resource::new(|| (), |_| admin_settings());
    view! {
        <h1>"Audit log"</h1>
        <form method="get" action="/audit" class="card form filters" data-testid="audit-filters">
            <label for="f-organization">"Organization"</label>
            <select id="f-organization" name="organization">
                <option value="">"Any"</option>
                <Transition fallback=|| ()>
                    {move || {
                        let selected = filters().organization;
                        orgs.get()
                            .and_then(|r| r.ok())
                            .map(|s| {
                                s.organizations
                                    .into_iter()
                                    .map(|o| {
                                        let id = o.id.to_string();
                                        let is = id == selected;
                                        view! {
                                            <option value=id selected=is>
                                                {o.name}
                                            </option>
                                        }
                                    })
                                    .collect_view()
                            })
                    }}
                </Transition>
            </select>
            <label for="f-ticket">"Ticket"</label>
            <input id="f-ticket" name="ticket" value=move || filters().ticket />
            // Kept from a timeline's link, so the filters stay on that connection's ticket.
            <Show when=move || !filters().connection.is_empty()>
                <input type="hidden" name="connection" value=move || filters().connection />
            </Show>
            <label for="f-technician">"Technician or admin"</label>
            <input id="f-technician" name="technician" value=move || filters().technician />
            <label for="f-outcome">"Outcome"</label>
            <select id="f-outcome" name="outcome">
                <option value="">"Any"</option>
                {OUTCOMES
                    .iter()
                    .map(|o| {
                        view! {
                            <option value=*o selected=move || filters().outcome == *o>
                                {*o}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <label for="f-from">"From"</label>
            <input id="f-from" name="from" type="date" value=move || filters().from />
            <label for="f-to">"To"</label>
            <input id="f-to" name="to" type="date" value=move || filters().to />
            <div class="buttons">
                <button type="submit" class="primary" data-testid="apply-filters">"Filter"</button>
                <a
                    href=move || format!("/audit/export.csv?{}", filters().to_query_string())
                    rel="external"
                    download="deskproof-audit.csv"
                    data-testid="export-csv"
                >
                    "Export CSV"
                </a>
            </div>
        </form>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                rows.get()
                    .map(|r| match r {
                        Ok(listing) => view! { <AuditTable listing /> }.into_any(),
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    })
            }}
        </Transition>
    }
}

#[component]
fn AuditTable(listing: AuditListing) -> impl IntoView {
    if listing.rows.is_empty() {
        return view! { <p class="muted" data-testid="audit-empty">"No entries."</p> }.into_any();
    }
    let truncated = listing.truncated().then(|| {
        view! {
            <p class="notice" data-testid="audit-truncated">
                {format!(
                    "Showing the newest {} of {} entries; narrow the filters to see older ones. \
                     Export CSV has every matching entry.",
                    listing.rows.len(),
                    listing.total,
                )}
            </p>
        }
    });
    let rows = listing.rows;
    view! {
        {truncated}
        <div class="table-scroll">
        <table data-testid="audit-table" class="audit">
            <thead>
                <tr>
                    <th>"When (UTC)"</th>
                    <th>"Who"</th>
                    <th>"What"</th>
                    <th>"Organization"</th>
                    <th>"Ticket"</th>
                    <th>"Contact"</th>
                    <th>"Duo user"</th>
                    <th>"Outcome"</th>
                    <th>"Duo txid"</th>
                    <th>"Detail"</th>
                </tr>
            </thead>
            <tbody>
                {rows
                    .into_iter()
                    .map(|r| {
                        let ticket = r.ticket.clone();
                        let timeline = r.timeline_path();
                        view! {
                            <tr data-testid="audit-row">
                                <td>{r.at.replace('T', " ").replace('Z', "")}</td>
                                <td>{r.actor}</td>
                                <td>{r.action}</td>
                                <td>{r.organization.unwrap_or_default()}</td>
                                <td>
                                    {ticket
                                        .zip(timeline)
                                        .map(|(t, path)| {
                                            view! { <a href=path data-testid="ticket-link">{t}</a> }
                                        })}
                                    {r
                                        .connection
                                        .map(|c| view! { <br /><span class="muted">{c}</span> })}
                                </td>
                                <td>{r.contact.unwrap_or_default()}</td>
                                <td>{r.duo_user.unwrap_or_default()}</td>
                                <td>
                                    {r
                                        .outcome
                                        .map(|o| view! { <span class=format!("status {o}")>{o.clone()}</span> })}
                                </td>
                                <td class="mono">{r.txid.unwrap_or_default()}</td>
                                <td>{r.detail.unwrap_or_default()}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        </div>
    }
        .into_any()
}

/// `/audit/ticket/:connection/:ticket`: everything that happened to one ticket of one PSA
/// connection, oldest first; `/audit/ticket/:ticket`: the entries about that ticket number
/// recorded before deskproof noted the connection.
#[component]
pub fn TicketTimelinePage() -> impl IntoView {
    admin_only(|| view! { <TicketTimeline /> })
}

#[component]
fn TicketTimeline() -> impl IntoView {
    let params = use_params_map();
    let ticket = move || params.read().get("ticket").unwrap_or_default();
    let connection = move || params.read().get("connection").unwrap_or_default();
    let rows = Resource::new(
        move || (connection(), ticket()),
        |(connection, ticket)| ticket_timeline(connection, ticket),
    );
    let export = move || {
        AuditQuery {
            connection: Some(connection())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "none".into()),
            ticket: ticket(),
            ..Default::default()
        }
        .to_query_string()
    };
    let connection_name = move || {
        rows.get()
            .and_then(|r| r.ok())
            .and_then(|rows| rows.into_iter().find_map(|r| r.connection))
    };
    view! {
        <h1>"Ticket #" {ticket} " timeline"</h1>
        <Transition fallback=|| ()>
            <p class="muted" data-testid="timeline-connection">
                {move || match (connection().is_empty(), connection_name()) {
                    (true, _) => {
                        "Entries recorded before deskproof noted the PSA connection: they may \
                         come from any connection with this ticket number."
                            .to_owned()
                    }
                    (false, Some(name)) => format!("PSA connection: {name}"),
                    (false, None) => format!("PSA connection {}", connection()),
                }}
            </p>
        </Transition>
        <p>
            <a href="/audit">"← Audit log"</a>
            " · "
            <a
                href=move || format!("/audit/export.csv?{}", export())
                rel="external"
                download="deskproof-ticket.csv"
            >
                "Export CSV"
            </a>
        </p>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                rows.get()
                    .map(|r| match r {
                        Ok(rows) if rows.is_empty() => {
                            view! { <p class="muted" data-testid="timeline-empty">"No entries."</p> }
                                .into_any()
                        }
                        Ok(rows) => {
                            view! {
                                <ol class="timeline" data-testid="timeline">
                                    {rows
                                        .into_iter()
                                        .map(|r| {
                                            view! {
                                                <li>
                                                    <span class="muted">
                                                        {r.at.replace('T', " ").replace('Z', "")}
                                                    </span>
                                                    " "
                                                    <strong>{r.action}</strong>
                                                    " by "
                                                    {r.actor}
                                                    {r.duo_user.map(|u| format!(" · Duo user {u}"))}
                                                    {r.outcome.map(|o| format!(" · {o}"))}
                                                    {r.txid.map(|t| format!(" · txid {t}"))}
                                                    {r.detail.map(|d| format!(" · {d}"))}
                                                </li>
                                            }
                                        })
                                        .collect_view()}
                                </ol>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    })
            }}
        </Transition>
    }
}
