//! Matching against a kept Duo directory: Admin API calls saved, and never a push on the
//! strength of an old copy alone. Real HTTP between deskproof and both simulators.
mod support;

use std::time::Duration;

use deskproof::duo::types::UserStatus;
use deskproof::sim::duo::SimUser;
use deskproof::verify::directory::DirectoryMode;
use support::flow::{spawn_flow_with, FlowApp};

fn admin_calls(app: &FlowApp) -> u64 {
    let account = app.world.duo.main_account_id();
    app.world.duo.admin_calls(&account)
}

/// Sends a push for a new ticket of `contact` and returns the attempt as the page shows it.
async fn push_for(app: &FlowApp, contact: deskproof::psa::ContactId) -> serde_json::Value {
    let ticket = app.new_ticket(contact, "Password reset").await;
    let token = app.link_token(ticket).await;
    app.send_push(&token).await
}

#[tokio::test]
async fn with_a_kept_directory_later_verifications_make_no_admin_api_call() {
    // Arrange
    let app = spawn_flow_with(|c| c.directory = DirectoryMode::Cached).await;
    let first = push_for(&app, app.world.contacts.alex).await;
    assert_eq!(first["state"], "pushed", "{first}");
    let after_first = admin_calls(&app);
    assert!(after_first >= 1, "the first lookup lists the account");

    // Act
    for contact in [app.world.contacts.megan, app.world.contacts.alex] {
        let attempt = push_for(&app, contact).await;
        assert_eq!(attempt["state"], "pushed", "{attempt}");
    }

    // Assert
    assert_eq!(admin_calls(&app), after_first, "matched from memory");
    assert_eq!(app.world.duo.pushes().len(), 3);
}

#[tokio::test]
async fn in_live_mode_every_verification_lists_the_account() {
    // Arrange
    let app = spawn_flow_with(|c| c.directory = DirectoryMode::Live).await;
    push_for(&app, app.world.contacts.alex).await;
    let after_first = admin_calls(&app);

    // Act
    let attempt = push_for(&app, app.world.contacts.megan).await;

    // Assert
    assert_eq!(attempt["state"], "pushed", "{attempt}");
    assert!(admin_calls(&app) > after_first, "listed again");
}

#[tokio::test]
async fn a_user_disabled_after_the_listing_gets_no_push() {
    // Arrange: the directory is listed while Megan is active.
    let app = spawn_flow_with(|c| c.directory = DirectoryMode::Cached).await;
    push_for(&app, app.world.contacts.alex).await;
    assert!(app
        .world
        .duo
        .set_user_status("megan.bowen", UserStatus::Disabled));

    // Act
    let attempt = push_for(&app, app.world.contacts.megan).await;

    // Assert
    assert_eq!(attempt["state"], "refused", "{attempt}");
    assert!(
        app.world.duo.pending_pushes("megan.bowen").is_empty(),
        "no push to a disabled user"
    );
}

#[tokio::test]
async fn a_user_added_after_the_listing_is_found_once_the_copy_is_old_enough() {
    // Arrange: a short refresh interval so the copy ages within the test.
    let app = spawn_flow_with(|c| {
        c.directory = DirectoryMode::Cached;
        c.directory_refresh_secs = 1;
    })
    .await;
    push_for(&app, app.world.contacts.alex).await;
    let company = Some(app.world.company);
    let jordan =
        app.world
            .cw
            .add_contact_at(company, "Jordan", "Lately", "jordan.lately@contoso.example");
    app.world.duo.add_user(
        SimUser::new("jordan.lately")
            .name("Jordan", "Lately")
            .email("jordan.lately@contoso.example")
            .push_phone("+15555550999"),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Act
    let attempt = push_for(&app, jordan).await;

    // Assert
    assert_eq!(attempt["state"], "pushed", "{attempt}");
    assert_eq!(app.world.duo.pending_pushes("jordan.lately").len(), 1);
}

#[tokio::test]
async fn a_user_re_enabled_since_the_listing_is_read_again_and_pushed() {
    // Arrange: Megan is disabled when the directory is listed, enabled afterwards.
    let app = spawn_flow_with(|c| c.directory = DirectoryMode::Cached).await;
    app.world
        .duo
        .set_user_status("megan.bowen", UserStatus::Disabled);
    push_for(&app, app.world.contacts.alex).await;
    app.world
        .duo
        .set_user_status("megan.bowen", UserStatus::Active);

    // Act
    let attempt = push_for(&app, app.world.contacts.megan).await;

    // Assert
    assert_eq!(attempt["state"], "pushed", "{attempt}");
}
