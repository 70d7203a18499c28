use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

use crate::pages::pod::PodPage;
use crate::pages::{audit, settings};
use crate::pages::{home::HomePage, not_found::NotFound, signin::SignInPage, verify::VerifyPage};

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="deskproof" href="/pkg/deskproof.css" />
        <Title text="deskproof" />
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/") view=HomePage />
                <Route path=path!("/signin") view=SignInPage />
                <Route path=path!("/verify/:token") view=VerifyPage />
                <Route path=path!("/pod/connectwise/:connection_id") view=PodPage />
                <Route path=path!("/settings") view=settings::SettingsPage />
                <Route path=path!("/settings/organizations") view=settings::OrganizationsPage />
                <Route
                    path=path!("/settings/organizations/:id")
                    view=settings::OrganizationPage
                />
                <Route path=path!("/settings/connections") view=settings::ConnectionsPage />
                <Route path=path!("/settings/policy") view=settings::DefaultPolicyPage />
                <Route path=path!("/settings/users") view=settings::UsersPage />
                <Route path=path!("/audit") view=audit::AuditPage />
                <Route path=path!("/audit/ticket/:ticket") view=audit::TicketTimelinePage />
                <Route
                    path=path!("/audit/ticket/:connection/:ticket")
                    view=audit::TicketTimelinePage
                />
            </Routes>
        </Router>
    }
}
