//! The Duo client against the strict simulator over real HTTP: every push outcome, every
//! refusal, paging, child accounts and 429 back-off.
use std::time::Duration;

use deskproof::duo::client::{RetryPolicy, Timeouts, V2_SHA1, V2_SHA512};
use deskproof::duo::{
    DuoClient, DuoError, PreauthResult, PushOutcome, PushRefusal, PushRequest, SignatureVersion,
    UserStatus, VerificationResult,
};
use deskproof::secret::Secret;
use deskproof::sim::duo::{DuoSim, PushKind, PushState, RateScope, SimKeys, SimUser, TimeoutStyle};

fn fast(client: DuoClient) -> DuoClient {
    client
        .with_retry_policy(RetryPolicy::with_base_delay(Duration::from_millis(5)))
        .with_timeouts(Timeouts {
            call: Duration::from_secs(5),
            long_poll: Duration::from_secs(5),
            min_poll_interval: Duration::from_millis(5),
            verification_poll_interval: Duration::from_millis(20),
        })
}

fn client(keys: &SimKeys) -> DuoClient {
    fast(keys.client().expect("simulator URL is valid"))
}

async fn sim() -> DuoSim {
    let (sim, _url) = DuoSim::start().await.expect("simulator starts");
    sim.set_long_poll_wait(Duration::from_millis(200));
    sim
}

fn alex() -> SimUser {
    SimUser::new("alex.example")
        .name("Alex", "Example")
        .email("alex.example@contoso.example")
        .alias("aexample")
        .push_phone("+15555550101")
}

fn ticket_push(username: &str) -> PushRequest {
    PushRequest {
        username: username.into(),
        device: None,
        type_text: Some("Ticket confirmation".into()),
        display_username: Some("Alex Example".into()),
        pushinfo: vec![
            ("ticket".into(), "INC-1234".into()),
            ("summary".into(), "Reset password".into()),
        ],
    }
}

/// Preauth, push, let the phone answer with `answer`, and poll to the end.
async fn push_answered_by(
    answer: impl FnOnce(&DuoSim, &str) + Send + 'static,
) -> (DuoSim, PushOutcome) {
    let sim = sim().await;
    sim.add_user(alex());
    let auth = client(&sim.auth_keys());
    let pre = auth.preauth("alex.example").await.unwrap();
    let device = pre.push_device().unwrap().device.clone();
    let txid = auth
        .auth_push_async(&PushRequest {
            device: Some(device),
            ..ticket_push("alex.example")
        })
        .await
        .unwrap();
    let phone = sim.clone();
    tokio::spawn(async move {
        phone
            .wait_for_push("alex.example", Duration::from_secs(5))
            .await;
        answer(&phone, "alex.example");
    });
    let outcome = auth
        .wait_for_outcome(&txid, Duration::from_secs(10))
        .await
        .unwrap();
    (sim, outcome)
}

#[tokio::test]
async fn an_approved_push_is_verified_and_shows_the_ticket_on_the_phone() {
    let (sim, outcome) = push_answered_by(|s, u| {
        s.approve_latest(u);
    })
    .await;

    assert_eq!(outcome, PushOutcome::Approved);
    assert!(outcome.is_verified());
    let push = &sim.pushes()[0];
    assert_eq!(push.type_text.as_deref(), Some("Ticket confirmation"));
    assert_eq!(push.display_username.as_deref(), Some("Alex Example"));
    assert_eq!(
        push.pushinfo.as_deref(),
        Some("ticket=INC-1234&summary=Reset%20password")
    );
    assert_eq!(
        push.pushinfo_pairs,
        vec![
            ("ticket".to_owned(), "INC-1234".to_owned()),
            ("summary".to_owned(), "Reset password".to_owned())
        ]
    );
    assert!(push.text.contains("Reset password"));
}

#[tokio::test]
async fn a_denied_push_ends_as_denied() {
    let (_sim, outcome) = push_answered_by(|s, u| {
        s.deny_latest(u);
    })
    .await;
    assert_eq!(outcome, PushOutcome::Denied);
}

#[tokio::test]
async fn a_push_reported_as_fraud_ends_as_fraud() {
    let (_sim, outcome) = push_answered_by(|s, u| {
        s.fraud_latest(u);
    })
    .await;
    assert_eq!(outcome, PushOutcome::Fraud);
    assert!(!outcome.is_verified());
}

#[tokio::test]
async fn a_push_timed_out_from_the_control_side_ends_as_timed_out() {
    let (_sim, outcome) = push_answered_by(|s, u| {
        s.time_out_latest(u);
    })
    .await;
    assert_eq!(outcome, PushOutcome::TimedOut);
}

#[tokio::test]
async fn an_unanswered_push_times_out_whether_duo_says_deny_or_waiting() {
    for style in [TimeoutStyle::Deny, TimeoutStyle::Waiting] {
        let sim = sim().await;
        sim.set_push_timeout(Duration::from_millis(300));
        sim.set_timeout_style(style);
        sim.add_user(alex());
        let auth = client(&sim.auth_keys());

        let txid = auth
            .auth_push_async(&ticket_push("alex.example"))
            .await
            .unwrap();
        let outcome = auth.wait_for_outcome(&txid, Duration::from_secs(5)).await;

        assert_eq!(outcome.unwrap(), PushOutcome::TimedOut, "{style:?}");
    }
}

#[tokio::test]
async fn polling_gives_up_at_the_overall_cap() {
    let sim = sim().await;
    sim.add_user(alex());
    let auth = client(&sim.auth_keys());
    let txid = auth
        .auth_push_async(&ticket_push("alex.example"))
        .await
        .unwrap();

    let result = auth
        .wait_for_outcome(&txid, Duration::from_millis(300))
        .await;

    assert!(matches!(result, Err(DuoError::PollCapReached(_))));
}

#[tokio::test]
async fn a_bypass_user_is_refused_before_a_push_and_a_forced_push_is_never_approved() {
    let sim = sim().await;
    sim.add_user(alex().status(UserStatus::Bypass));
    let auth = client(&sim.auth_keys());

    let pre = auth.preauth("alex.example").await.unwrap();
    assert!(matches!(
        pre.push_device(),
        Err(PushRefusal::WouldNotPush { .. })
    ));
    let txid = auth
        .auth_push_async(&ticket_push("alex.example"))
        .await
        .unwrap();
    let outcome = auth
        .wait_for_outcome(&txid, Duration::from_secs(5))
        .await
        .unwrap();

    assert_eq!(outcome, PushOutcome::Bypass);
    assert!(!outcome.is_verified());
    assert!(sim.pending_pushes("alex.example").is_empty());
}

#[tokio::test]
async fn a_locked_out_user_is_refused_at_preauth_and_a_direct_push_ends_locked_out() {
    let sim = sim().await;
    sim.add_user(alex().status(UserStatus::LockedOut));
    let auth = client(&sim.auth_keys());

    let pre = auth.preauth("alex.example").await.unwrap();
    assert!(matches!(pre, PreauthResult::Deny { .. }));
    assert!(matches!(
        pre.push_device(),
        Err(PushRefusal::LockedOut { .. })
    ));
    let txid = auth
        .auth_push_async(&ticket_push("alex.example"))
        .await
        .unwrap();
    let outcome = auth.wait_for_outcome(&txid, Duration::from_secs(5)).await;

    assert_eq!(outcome.unwrap(), PushOutcome::LockedOut);
}

#[tokio::test]
async fn a_disabled_user_is_refused_at_preauth() {
    let sim = sim().await;
    sim.add_user(alex().status(UserStatus::Disabled));
    let auth = client(&sim.auth_keys());

    let pre = auth.preauth("alex.example").await.unwrap();

    assert!(matches!(
        pre.push_device(),
        Err(PushRefusal::Disabled { .. })
    ));
}

#[tokio::test]
async fn a_user_whose_only_phone_cannot_push_has_no_push_device() {
    let sim = sim().await;
    sim.add_user(SimUser::new("lee").sms_only_phone("+15555550104"));
    let auth = client(&sim.auth_keys());

    let pre = auth.preauth("lee").await.unwrap();
    assert!(matches!(pre, PreauthResult::Auth { .. }));
    assert_eq!(pre.push_device(), Err(PushRefusal::NoPushDevice));
    let direct = auth.auth_push_async(&ticket_push("lee")).await;
    assert!(matches!(direct, Err(DuoError::InvalidParameters { detail }) if detail == "device"));
}

#[tokio::test]
async fn an_unenrolled_or_unknown_user_must_enroll_first() {
    let sim = sim().await;
    sim.add_user(SimUser::new("nina"));
    let auth = client(&sim.auth_keys());

    for username in ["nina", "nobody-at-all"] {
        let pre = auth.preauth(username).await.unwrap();
        assert!(matches!(pre, PreauthResult::Enroll { .. }), "{username}");
        assert_eq!(pre.push_device(), Err(PushRefusal::NotEnrolled));
    }
}

#[tokio::test]
async fn every_signature_form_is_accepted_by_the_simulator() {
    let sim = sim().await;
    sim.add_user(alex());
    for version in [V2_SHA1, V2_SHA512, SignatureVersion::V5] {
        let auth = client(&sim.auth_keys()).with_signature(version);
        let admin = client(&sim.admin_keys()).with_signature(version);

        assert!(auth.check().await.is_ok(), "{version:?}");
        let pre = auth.preauth("alex.example").await;
        assert!(pre.is_ok_and(|p| p.push_device().is_ok()), "{version:?}");
        let user = admin.user_by_username("aexample").await.unwrap();
        assert_eq!(user.map(|u| u.username), Some("alex.example".into()));
    }
}

#[tokio::test]
async fn the_signed_host_includes_the_port_actually_requested() {
    let sim = sim().await;
    let auth = client(&sim.auth_keys());
    let port = sim.base_url().rsplit(':').next().unwrap().to_owned();
    assert_eq!(auth.host(), format!("127.0.0.1:{port}"));
    assert!(auth.check().await.is_ok());
}

#[tokio::test]
async fn wrong_keys_are_reported_as_the_matching_duo_errors() {
    let sim = sim().await;
    let auth_keys = sim.auth_keys();

    let auth_on_admin = client(&SimKeys {
        api_host: sim.base_url(),
        ..auth_keys.clone()
    })
    .users_page(10, 0)
    .await;
    assert!(matches!(
        auth_on_admin,
        Err(DuoError::InvalidIntegrationKey)
    ));

    let wrong_skey = client(&SimKeys {
        skey: Secret::new("not-the-secret-key-at-all-0000000000000"),
        ..auth_keys
    })
    .check()
    .await;
    assert!(matches!(wrong_skey, Err(DuoError::InvalidSignature)));
}

#[tokio::test]
async fn an_admin_application_without_read_permission_is_forbidden() {
    let sim = sim().await;
    sim.set_admin_read_allowed(false);
    let result = client(&sim.admin_keys()).users_page(10, 0).await;
    assert!(matches!(result, Err(DuoError::Forbidden { .. })));
}

#[tokio::test]
async fn listing_users_follows_next_offset_across_pages() {
    let sim = sim().await;
    for i in 0..7 {
        sim.add_user(SimUser::new(&format!("user{i}")).push_phone("+15555550100"));
    }
    let admin = client(&sim.admin_keys());

    let users = admin.list_users(3).await.unwrap();

    let names: Vec<String> = users.into_iter().map(|u| u.username).collect();
    assert_eq!(names.len(), 7);
    assert_eq!(names.first().map(String::as_str), Some("user0"));
    assert_eq!(names.last().map(String::as_str), Some("user6"));
    assert_eq!(sim.admin_calls(&sim.main_account_id()), 3);
    let first = admin.users_page(3, 0).await.unwrap();
    assert_eq!((first.next_offset, first.total_objects), (Some(3), Some(7)));
}

#[tokio::test]
async fn users_are_found_by_username_alias_email_and_id() {
    let sim = sim().await;
    let id = sim.add_user(alex());
    sim.add_user(SimUser::new("other").email("other@contoso.example"));
    let admin = client(&sim.admin_keys());

    let by_alias = admin.user_by_username("aexample").await.unwrap().unwrap();
    assert_eq!(by_alias.user_id, id);
    assert!(by_alias.is_enrolled && by_alias.has_push_phone());
    assert_eq!(by_alias.realname.as_deref(), Some("Alex Example"));
    assert_eq!(
        by_alias.aliases.get("alias1").map(String::as_str),
        Some("aexample")
    );
    let by_email = admin
        .users_by_email("alex.example@contoso.example")
        .await
        .unwrap();
    assert_eq!(by_email.len(), 1);
    assert_eq!(
        admin.user_by_id(&id).await.unwrap().map(|u| u.username),
        Some("alex.example".into())
    );
    assert_eq!(
        admin.user_by_id(&"DUNOSUCHUSER".into()).await.unwrap(),
        None
    );
    assert_eq!(admin.user_by_username("ghost").await.unwrap(), None);
}

#[tokio::test]
async fn admin_calls_on_a_child_account_go_through_the_accounts_keys() {
    let sim = sim().await;
    sim.add_user(alex());
    let child = sim.add_child_account("Fabrikam");
    sim.add_user_to(&child, SimUser::new("fab.user").push_phone("+15555550199"));
    let accounts = client(&sim.accounts_keys());

    let children = accounts.list_child_accounts().await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].name, "Fabrikam");
    let on_child = accounts.for_child_account(&children[0]).unwrap();
    let users = on_child.list_users(100).await.unwrap();

    assert_eq!(users.len(), 1);
    assert_eq!(users[0].username, "fab.user");
    assert_eq!(sim.admin_calls(&child), 1);
    assert_eq!(sim.admin_calls(&sim.main_account_id()), 0);
    // Without account_id the Accounts keys reach no Admin API.
    let without = accounts.users_page(10, 0).await;
    assert!(
        matches!(without, Err(DuoError::InvalidParameters { detail }) if detail == "account_id")
    );
}

#[tokio::test]
async fn rate_limited_calls_are_retried_with_backoff_until_they_succeed() {
    let sim = sim().await;
    sim.add_user(alex());
    sim.force_rate_limited(3);
    let admin = client(&sim.admin_keys());

    let users = admin.list_users(100).await.unwrap();

    assert_eq!(users.len(), 1);
    assert_eq!(sim.admin_calls(&sim.main_account_id()), 4);
}

#[tokio::test]
async fn rate_limiting_that_does_not_end_fails_after_the_configured_attempts() {
    let sim = sim().await;
    sim.force_rate_limited(1000);
    let admin = client(&sim.admin_keys()).with_retry_policy(RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::with_base_delay(Duration::from_millis(5))
    });

    let result = admin.list_users(100).await;

    assert!(matches!(result, Err(DuoError::RateLimited { attempts: 3 })));
    assert_eq!(sim.admin_calls(&sim.main_account_id()), 3);
}

#[tokio::test]
async fn a_per_minute_style_page_limit_slows_a_listing_down_but_it_completes() {
    let sim = sim().await;
    for i in 0..6 {
        sim.add_user(SimUser::new(&format!("user{i}")));
    }
    sim.set_rate_limit(RateScope::AdminListUsers, 2, Duration::from_millis(100));
    let admin = client(&sim.admin_keys())
        .with_retry_policy(RetryPolicy::with_base_delay(Duration::from_millis(20)));

    let users = admin.list_users(2).await.unwrap();

    assert_eq!(users.len(), 6);
    assert!(
        sim.admin_calls(&sim.main_account_id()) > 3,
        "some calls were refused"
    );
}

#[tokio::test]
async fn latency_is_added_to_every_call() {
    let sim = sim().await;
    sim.set_latency(Duration::from_millis(50));
    let auth = client(&sim.auth_keys());
    let started = std::time::Instant::now();
    auth.check().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
}

/// A simulator whose Admin application may write, with alex; the Admin client and alex.
async fn verification_setup() -> (DuoSim, DuoClient, deskproof::duo::DuoUser) {
    let sim = sim().await;
    sim.set_admin_write_allowed(true);
    let id = sim.add_user(alex());
    let admin = client(&sim.admin_keys());
    let user = admin.user_by_id(&id).await.unwrap().expect("alex");
    (sim, admin, user)
}

#[tokio::test]
async fn a_verification_push_shows_duo_s_confirmation_code_and_reports_each_answer() {
    for (answer, expected) in [
        (PushState::Approved, VerificationResult::Approve),
        (PushState::Denied, VerificationResult::Deny),
        (PushState::Fraud, VerificationResult::Fraud),
    ] {
        let (sim, admin, user) = verification_setup().await;
        let phone = user
            .verification_phone()
            .expect("push phone")
            .phone_id
            .clone();

        let sent = admin
            .send_verification_push(&user.user_id, &phone)
            .await
            .unwrap();
        let on_phone = sim
            .pending_pushes("alex.example")
            .pop()
            .expect("on the phone");
        assert_eq!(on_phone.kind, PushKind::Verification);
        assert_eq!(on_phone.txid.as_str(), sent.push_id.as_str());
        assert_eq!(
            on_phone.confirmation_code.as_deref(),
            Some(sent.confirmation_code.as_str())
        );
        assert_eq!(on_phone.phone_id.as_deref(), Some(phone.as_str()));
        assert_eq!(
            admin
                .verification_push_response(&user.user_id, &sent.push_id)
                .await
                .unwrap(),
            Some(VerificationResult::Waiting)
        );

        assert!(sim.decide(&on_phone.txid, answer));
        let result = admin
            .wait_for_verification(&user.user_id, &sent.push_id, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(result, Some(expected));
    }
}

#[tokio::test]
async fn a_verification_push_answer_is_gone_after_the_expiry_which_means_timed_out() {
    let (sim, admin, user) = verification_setup().await;
    sim.set_verification_push_expiry(Duration::from_millis(300));
    let phone = user
        .verification_phone()
        .expect("push phone")
        .phone_id
        .clone();
    let sent = admin
        .send_verification_push(&user.user_id, &phone)
        .await
        .unwrap();

    let result = admin
        .wait_for_verification(&user.user_id, &sent.push_id, Duration::from_secs(3))
        .await
        .unwrap();

    assert_eq!(result, None, "404 once the push has expired");
    assert!(sim.pending_pushes("alex.example").is_empty());
    // An answer given in time is readable until the expiry, then gone as well.
    let sent = admin
        .send_verification_push(&user.user_id, &phone)
        .await
        .unwrap();
    sim.approve_latest("alex.example").expect("pending");
    assert_eq!(
        admin
            .verification_push_response(&user.user_id, &sent.push_id)
            .await
            .unwrap(),
        Some(VerificationResult::Approve)
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        admin
            .verification_push_response(&user.user_id, &sent.push_id)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn an_admin_application_without_write_permission_cannot_send_a_verification_push() {
    let (sim, admin, user) = verification_setup().await;
    sim.set_admin_write_allowed(false);
    let phone = user
        .verification_phone()
        .expect("push phone")
        .phone_id
        .clone();

    let refused = admin.send_verification_push(&user.user_id, &phone).await;

    assert!(
        matches!(
            refused,
            Err(DuoError::Forbidden {
                code: Some(40301),
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(sim.pushes().is_empty(), "nothing reached the phone");
    // Reading still works: the permissions are separate.
    assert!(admin.user_by_id(&user.user_id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_phone_that_cannot_push_is_refused_with_400_naming_phone_id() {
    let sim = sim().await;
    sim.set_admin_write_allowed(true);
    let id = sim.add_user(SimUser::new("lee").sms_only_phone("+15555550104"));
    let admin = client(&sim.admin_keys());
    let user = admin.user_by_id(&id).await.unwrap().expect("lee");
    assert!(user.verification_phone().is_none());

    let refused = admin
        .send_verification_push(&user.user_id, &user.phones[0].phone_id)
        .await;

    assert!(
        matches!(&refused, Err(DuoError::InvalidParameters { detail }) if detail == "phone_id"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn accounts_keys_send_a_verification_push_on_a_child_but_reach_no_auth_api() {
    let sim = sim().await;
    let child = sim.add_child_account("Fabrikam");
    let id = sim.add_user_to(&child, alex());
    let accounts = client(&sim.accounts_keys());
    let children = accounts.list_child_accounts().await.unwrap();
    let on_child = accounts.for_child_account(&children[0]).unwrap();
    let user = on_child.user_by_id(&id).await.unwrap().expect("alex");
    let phone = user
        .verification_phone()
        .expect("push phone")
        .phone_id
        .clone();

    let sent = on_child
        .send_verification_push(&user.user_id, &phone)
        .await
        .unwrap();

    let push = sim.pending_pushes("alex.example").pop().expect("pushed");
    assert_eq!(push.account_id, child);
    assert_eq!(push.txid.as_str(), sent.push_id.as_str());
    // The Accounts keys do not check a child's Auth API; the child's own Auth keys do.
    assert!(matches!(
        accounts.check().await,
        Err(DuoError::InvalidIntegrationKey)
    ));
    let child_auth = client(&sim.child_auth_keys(&child));
    child_auth.check().await.unwrap();
    assert!(matches!(
        child_auth.preauth("alex.example").await.unwrap(),
        PreauthResult::Auth { .. }
    ));
    // Without the write permission on children, the Accounts keys get Duo's 403.
    sim.set_accounts_permissions(true, false);
    assert!(matches!(
        on_child.send_verification_push(&user.user_id, &phone).await,
        Err(DuoError::Forbidden { .. })
    ));
}
