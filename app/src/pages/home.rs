use leptos::prelude::*;

use crate::pages::layout::SignedIn;

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <SignedIn children=|user| {
            view! {
                <h1>"Verifications"</h1>
                <p class="lead" data-testid="welcome">
                    "Welcome, " {user.display_name.clone()} "."
                </p>
                <p>
                    "Open a verification link from a ticket's internal note to check the caller's identity with a Duo Push."
                </p>
            }
        } />
    }
}
