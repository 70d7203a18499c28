//! The whole job over real HTTP: ConnectWise ticket → internal note with link → Duo Push →
//! outcome note, with SQLite and both simulators.
mod support;

use std::time::Duration;

use support::flow::spawn_flow;

#[tokio::test]
async fn an_approved_push_verifies_the_ticket_with_internal_notes_only() {
    // Arrange
    let app = spawn_flow().await;
    let ticket = app
        .new_ticket(app.world.contacts.alex, "Password reset for Alex")
        .await;

    // Act: the callback produces a link note; the technician opens it and sends the push.
    let token = app.link_token(ticket).await;
    let (status, page) = app.call("verification", &token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["summary"], "Password reset for Alex");
    assert_eq!(page["contact"], "Alex Example");
    assert!(
        page["matched"]
            .as_str()
            .unwrap_or_default()
            .starts_with("al***le"),
        "{page}"
    );
    assert!(
        app.world.duo.pushes().is_empty(),
        "opening the page sends no push"
    );

    let (status, attempt) = app.call("send_push", &token).await;
    assert_eq!(status, 200, "{attempt}");
    assert_eq!(attempt["state"], "pushed");
    let push = app
        .world
        .duo
        .wait_for_push("alex.example", Duration::from_secs(5))
        .await
        .expect("a push reached the phone");
    assert_eq!(
        push.type_text.as_deref(),
        Some("Verification is required for the ticket you submitted: \"Password reset for Alex\"")
    );
    app.world
        .duo
        .approve_latest("alex.example")
        .expect("pending push");

    // Assert
    let notes = app
        .wait_for_note(ticket, "alex.example has verified this ticket.")
        .await;
    assert_eq!(notes.len(), 2, "one link note and one outcome note");
    for note in &notes {
        assert!(note.internal_analysis_flag, "{note:?}");
        assert!(!note.process_notifications, "{note:?}");
        assert!(
            !note.detail_description_flag && !note.resolution_flag,
            "{note:?}"
        );
    }
    let (_, rows) = app.call("attempts", &token).await;
    assert_eq!(rows[0]["state"], "approved");
}
