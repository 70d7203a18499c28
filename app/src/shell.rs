use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    lazy_route, path, Lazy, LazyRoute,
};

use crate::pages::pod::PodPage;
use crate::pages::{audit, settings};
use crate::pages::{home::HomePage, not_found::NotFound, signin::SignInPage, verify::VerifyPage};

/// An admin page loaded on first use: its code is in a WebAssembly chunk of its own, so the
/// pages technicians open (sign-in, verification, the ConnectWise pod) load only what they use.
macro_rules! admin_page {
    ($route:ident, $page:path) => {
        #[derive(Debug)]
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                $page().into_any()
            }
        }
    };
}

admin_page!(SettingsRoute, settings::SettingsPage);
admin_page!(OrganizationsRoute, settings::OrganizationsPage);
admin_page!(OrganizationRoute, settings::OrganizationPage);
admin_page!(ConnectionsRoute, settings::ConnectionsPage);
admin_page!(DefaultPolicyRoute, settings::DefaultPolicyPage);
admin_page!(UsersRoute, settings::UsersPage);
admin_page!(AuditRoute, audit::AuditPage);
admin_page!(TicketTimelineRoute, audit::TicketTimelinePage);

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
                <Route path=path!("/settings") view={Lazy::<SettingsRoute>::new()} />
                <Route
                    path=path!("/settings/organizations")
                    view={Lazy::<OrganizationsRoute>::new()}
                />
                <Route
                    path=path!("/settings/organizations/:id")
                    view={Lazy::<OrganizationRoute>::new()}
                />
                <Route
                    path=path!("/settings/connections")
                    view={Lazy::<ConnectionsRoute>::new()}
                />
                <Route
                    path=path!("/settings/policy")
                    view={Lazy::<DefaultPolicyRoute>::new()}
                />
                <Route path=path!("/settings/users") view={Lazy::<UsersRoute>::new()} />
                <Route path=path!("/audit") view={Lazy::<AuditRoute>::new()} />
                <Route
                    path=path!("/audit/ticket/:ticket")
                    view={Lazy::<TicketTimelineRoute>::new()}
                />
                <Route
                    path=path!("/audit/ticket/:connection/:ticket")
                    view={Lazy::<TicketTimelineRoute>::new()}
                />
            </Routes>
        </Router>
    }
}
