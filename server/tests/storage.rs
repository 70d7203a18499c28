//! The storage contract, on SQLite or (with `DESKPROOF_TEST_POSTGRES_URL`) PostgreSQL.
mod support;

use std::collections::HashSet;

use app::model::Role;
use deskproof::storage::{
    self, AuditEntry, AuditFilter, DuoAccountRow, DuoDirectoryKeys, Lane, MspChildAccess,
    NewAttempt, NewJob, NewPsaConnection, NewUser, StorageError, Store,
};
use deskproof::verify::ports::CallerCodeVia;

struct Fresh {
    _dir: tempfile::TempDir,
    url: String,
    store: Store,
}

async fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = support::test_database(dir.path()).await;
    let store = storage::connect(&url).await.expect("database opens");
    Fresh {
        _dir: dir,
        url,
        store,
    }
}

async fn connection(store: &Store) -> i64 {
    store
        .create_psa_connection(&NewPsaConnection {
            kind: "connectwise".into(),
            name: "Main".into(),
            settings: serde_json::json!({}),
            secrets_sealed: "sealed".into(),
        })
        .await
        .expect("connection")
}

#[tokio::test]
async fn usernames_are_unique_whatever_their_case() {
    let Fresh { store, _dir, .. } = fresh().await;
    let user = |name: &str| NewUser {
        username: name.into(),
        display_name: "Casey".into(),
        role: Role::Technician,
        password_hash: "hash".into(),
    };
    let created = store.create_user(user("Casey")).await.expect("first");
    assert!(!created.disabled);
    let again = store.create_user(user("casey")).await;
    assert!(matches!(again, Err(StorageError::Conflict(_))), "{again:?}");
    let found = store.user_by_username("CASEY").await.expect("lookup");
    assert_eq!(found.map(|u| u.id), Some(created.id));
}

#[tokio::test]
async fn a_delivery_is_recorded_once_and_queues_one_intake() {
    let Fresh { store, _dir, .. } = fresh().await;
    let conn = connection(&store).await;
    assert!(store
        .record_delivery(conn, "k1", "100", 0)
        .await
        .expect("first"));
    assert!(!store
        .record_delivery(conn, "k1", "100", 0)
        .await
        .expect("again"));
    // A second delivery for the same ticket is recorded but opens no second case.
    assert!(store
        .record_delivery(conn, "k2", "100", 0)
        .await
        .expect("other key"));
    let mut intakes = 0;
    while let Some(job) = store
        .claim_job(1, 1000, "test", Lane::Work)
        .await
        .expect("claim")
    {
        assert_eq!(job.kind, "intake");
        intakes += 1;
        assert!(store.finish_job(job.id, "test").await.expect("finish"));
    }
    assert_eq!(intakes, 1);
}

#[tokio::test]
async fn deliveries_arriving_together_are_each_new_once_and_open_one_case_per_ticket() {
    // Arrange: 100 delivery keys, each delivered twice, for 50 tickets (two keys each); one
    // key was stored before.
    let Fresh { store, _dir, .. } = fresh().await;
    let conn = connection(&store).await;
    assert!(store
        .record_delivery(conn, "key-0", "ticket-0", 0)
        .await
        .expect("earlier delivery"));

    // Act: all 200 at once, so they are stored in shared batches.
    let mut calls = tokio::task::JoinSet::new();
    for copy in 0..2 {
        for n in 0..100 {
            let store = store.clone();
            calls.spawn(async move {
                let stored = store
                    .record_delivery(conn, &format!("key-{n}"), &format!("ticket-{}", n / 2), 0)
                    .await
                    .expect("delivery");
                (copy, n, stored)
            });
        }
    }
    let mut new_per_key = vec![0; 100];
    while let Some(done) = calls.join_next().await {
        let (_, n, stored) = done.expect("call");
        if stored {
            new_per_key[n] += 1;
        }
    }

    // Assert
    assert_eq!(new_per_key[0], 0, "stored before");
    assert!(new_per_key[1..].iter().all(|&k| k == 1), "{new_per_key:?}");
    let mut intake_cases = Vec::new();
    while let Some(job) = store
        .claim_job(1, 1000, "test", Lane::Work)
        .await
        .expect("claim")
    {
        assert_eq!(job.kind, "intake");
        intake_cases.push(job.payload["case_id"].as_i64().expect("case id"));
    }
    intake_cases.sort_unstable();
    intake_cases.dedup();
    assert_eq!(
        intake_cases.len(),
        50,
        "one intake per ticket: {intake_cases:?}"
    );
    for case_id in intake_cases {
        let case = store
            .ticket_case(case_id)
            .await
            .expect("read")
            .expect("case");
        assert_eq!(case.state, "received");
        assert_eq!(case.connection_id, conn);
    }
}

#[tokio::test]
async fn concurrent_claims_never_hand_out_one_job_twice() {
    let Fresh { store, _dir, .. } = fresh().await;
    for n in 0..200 {
        store
            .enqueue_job(&NewJob {
                kind: "note".into(),
                payload: serde_json::json!({ "n": n }),
                dedupe_key: Some(format!("job:{n}")),
                run_at: 0,
            })
            .await
            .expect("enqueue");
    }
    let mut claimers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        claimers.spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = store
                .claim_job(10, 60_000, "test", Lane::Work)
                .await
                .expect("claim")
            {
                mine.push(job.id);
            }
            mine
        });
    }
    let mut seen = HashSet::new();
    while let Some(mine) = claimers.join_next().await {
        for id in mine.expect("claimer") {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 200);
}

#[tokio::test]
async fn a_lease_that_ran_out_makes_the_job_claimable_again() {
    let Fresh { store, _dir, .. } = fresh().await;
    store
        .enqueue_job(&NewJob {
            kind: "poll".into(),
            payload: serde_json::json!({}),
            dedupe_key: None,
            run_at: 0,
        })
        .await
        .expect("enqueue");
    let first = store
        .claim_job(100, 200, "test", Lane::Polls)
        .await
        .expect("claim")
        .expect("job");
    assert!(store
        .claim_job(150, 300, "test", Lane::Polls)
        .await
        .expect("claim")
        .is_none());
    let again = store
        .claim_job(201, 400, "test", Lane::Polls)
        .await
        .expect("claim")
        .expect("job again");
    assert_eq!(again.id, first.id);
    assert_eq!(again.attempts, 2);
}

#[tokio::test]
async fn a_process_whose_lease_ran_out_cannot_finish_or_reschedule_the_job() {
    let Fresh { store, _dir, .. } = fresh().await;
    store
        .enqueue_job(&NewJob {
            kind: "note".into(),
            payload: serde_json::json!({}),
            dedupe_key: None,
            run_at: 0,
        })
        .await
        .expect("enqueue");
    let stale = store
        .claim_job(100, 200, "replica-a", Lane::Work)
        .await
        .expect("claim")
        .expect("job");
    // Replica A stalls past its lease; replica B takes the job over.
    let taken = store
        .claim_job(201, 400, "replica-b", Lane::Work)
        .await
        .expect("claim")
        .expect("job taken over");
    assert_eq!(taken.id, stale.id);

    assert!(!store
        .finish_job(stale.id, "replica-a")
        .await
        .expect("finish"));
    assert!(!store
        .retry_job(stale.id, "replica-a", 0, "late")
        .await
        .expect("retry"));
    // B's lease still stands: nobody else can claim the job before it runs out.
    assert!(store
        .claim_job(300, 500, "replica-c", Lane::Work)
        .await
        .expect("claim")
        .is_none());
    assert!(store
        .finish_job(taken.id, "replica-b")
        .await
        .expect("finish"));
    assert!(store
        .claim_job(10_000, 20_000, "replica-c", Lane::Work)
        .await
        .expect("claim")
        .is_none());
}

#[tokio::test]
async fn one_open_attempt_per_ticket_even_under_concurrent_clicks() {
    let Fresh { store, _dir, .. } = fresh().await;
    let conn = connection(&store).await;
    store
        .record_delivery(conn, "k", "7", 0)
        .await
        .expect("case");
    let job = store
        .claim_job(1, 100, "test", Lane::Work)
        .await
        .expect("claim")
        .expect("intake");
    let case_id = job.payload["case_id"].as_i64().expect("case id");
    let mut clicks = tokio::task::JoinSet::new();
    for n in 0..10 {
        let store = store.clone();
        clicks.spawn(async move {
            store
                .create_attempt(&NewAttempt {
                    case_id,
                    technician_id: None,
                    technician_name: format!("Tech {n}"),
                    state: "matching".into(),
                })
                .await
        });
    }
    let mut opened = 0;
    while let Some(result) = clicks.join_next().await {
        match result.expect("task") {
            Ok(_) => opened += 1,
            Err(StorageError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(opened, 1);
}

#[tokio::test]
async fn the_audit_log_cannot_be_changed_or_emptied() {
    let Fresh { store, url, _dir } = fresh().await;
    store
        .append_audit(&AuditEntry {
            actor: "Casey".into(),
            action: "push".into(),
            ticket: Some("7".into()),
            ..Default::default()
        })
        .await
        .expect("append");
    let entries = store.audit_entries(10).await.expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].actor, "Casey");
    // Even with direct SQL, the database refuses.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("pool");
    let update = sqlx::query("UPDATE audit_log SET actor = 'Mallory'")
        .execute(&pool)
        .await;
    assert!(update.is_err());
    let delete = sqlx::query("DELETE FROM audit_log").execute(&pool).await;
    assert!(delete.is_err());
    if url.starts_with("postgres") {
        let truncate = sqlx::query("TRUNCATE audit_log").execute(&pool).await;
        assert!(truncate.is_err(), "TRUNCATE bypasses row triggers");
    }
    assert_eq!(
        store.audit_entries(10).await.expect("entries")[0].actor,
        "Casey"
    );
}

#[tokio::test]
async fn the_audit_search_by_name_matches_percent_and_underscore_as_typed() {
    let Fresh { store, _dir, .. } = fresh().await;
    for actor in ["Jordan Tech", "Ann_Lee", "100% Sam", "Back\\slash"] {
        store
            .append_audit(&AuditEntry {
                actor: actor.into(),
                action: "push".into(),
                ..Default::default()
            })
            .await
            .expect("append");
    }
    let found = |needle: &str| {
        let store = store.clone();
        let filter = AuditFilter {
            actor: Some(needle.into()),
            limit: 10,
            ..Default::default()
        };
        async move {
            let mut names: Vec<String> = store
                .search_audit(&filter)
                .await
                .expect("search")
                .into_iter()
                .map(|r| r.entry.actor)
                .collect();
            names.sort();
            names
        }
    };

    assert_eq!(found("_").await, ["Ann_Lee"]);
    assert_eq!(found("%").await, ["100% Sam"]);
    assert!(found("J%n").await.is_empty());
    assert_eq!(found("k\\s").await, ["Back\\slash"]);
    assert_eq!(found("JORDAN").await, ["Jordan Tech"]);
}

#[tokio::test]
async fn a_process_stopping_cleanly_hands_back_only_its_own_jobs() {
    let Fresh { store, _dir, .. } = fresh().await;
    for n in 0..2 {
        store
            .enqueue_job(&NewJob {
                kind: "poll".into(),
                payload: serde_json::json!({ "n": n }),
                dedupe_key: None,
                run_at: 0,
            })
            .await
            .expect("enqueue");
    }
    let mine = store
        .claim_job(1, 1_000, "me", Lane::Polls)
        .await
        .expect("claim")
        .expect("job");
    let theirs = store
        .claim_job(1, 1_000, "them", Lane::Polls)
        .await
        .expect("claim")
        .expect("job");
    assert!(store
        .claim_job(2, 1_000, "next", Lane::Polls)
        .await
        .expect("claim")
        .is_none());

    store.release_leases(Some("me")).await.expect("release");

    let next = store
        .claim_job(3, 1_000, "next", Lane::Polls)
        .await
        .expect("claim")
        .expect("freed job");
    assert_eq!(next.id, mine.id);
    assert_ne!(next.id, theirs.id);
    assert!(store
        .claim_job(4, 1_000, "next", Lane::Polls)
        .await
        .expect("claim")
        .is_none());
}

#[tokio::test]
async fn duo_accounts_of_both_kinds_round_trip_and_switching_kind_clears_the_other_keys() {
    let Fresh { store, _dir, url } = fresh().await;
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&url)
        .await
        .expect("second connection");
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .expect(sql)
        }
    };
    let org = store.create_organization("Northwind").await.expect("org");
    let direct = DuoAccountRow::direct(
        org,
        "api-1.example",
        "DIAUTH",
        "a".into(),
        "DIADMIN",
        "b".into(),
    );
    store.save_duo_account(&direct).await.expect("direct");
    assert_eq!(store.duo_account(org).await.expect("read"), Some(direct));

    let msp = DuoAccountRow {
        organization_id: org,
        api_host: "api-child.example".into(),
        auth_ikey: "DICHILD".into(),
        auth_skey_sealed: "c".into(),
        directory: DuoDirectoryKeys::AccountsApi(MspChildAccess {
            parent_api_host: "api-parent.example".into(),
            ikey: "DIACCOUNTS".into(),
            skey_sealed: "p".into(),
            account_id: "DACHILD".into(),
            name: "Northwind".into(),
            api_hostname: "api-child.example".into(),
        }),
        caller_code: CallerCodeVia::VerificationPush,
    };
    store.save_duo_account(&msp).await.expect("msp");
    assert_eq!(store.duo_account(org).await.expect("read"), Some(msp));
    let admin_keys_left = count(
        "SELECT COUNT(*) FROM duo_accounts WHERE admin_ikey <> '' OR admin_skey_sealed <> ''",
    )
    .await;
    assert_eq!(
        admin_keys_left, 0,
        "no Admin API key stays behind an MSP child"
    );

    // Re-sealing touches the two secrets in use, not the empty Admin API columns.
    let audit = AuditEntry {
        actor: "test".into(),
        action: "master key rotated".into(),
        ..Default::default()
    };
    let resealed = store
        .reseal_secrets(&|s: &str| Some(format!("re:{s}")), &audit)
        .await
        .expect("re-sealed");
    assert_eq!(resealed, 2);
    let row = store.duo_account(org).await.expect("read").expect("row");
    assert_eq!(row.auth_skey_sealed, "re:c");
    let DuoDirectoryKeys::AccountsApi(child) = &row.directory else {
        panic!("{row:?}");
    };
    assert_eq!(child.skey_sealed, "re:p");

    // Back to direct keys: the MSP columns are cleared.
    let direct = DuoAccountRow::direct(
        org,
        "api-1.example",
        "DIAUTH",
        "a".into(),
        "DIADMIN",
        "b".into(),
    );
    store.save_duo_account(&direct).await.expect("direct again");
    assert_eq!(store.duo_account(org).await.expect("read"), Some(direct));
    let msp_keys_left = count(
        "SELECT COUNT(*) FROM duo_accounts WHERE accounts_ikey IS NOT NULL \
         OR accounts_skey_sealed IS NOT NULL OR child_account_id IS NOT NULL",
    )
    .await;
    assert_eq!(
        msp_keys_left, 0,
        "no Accounts API key stays behind direct keys"
    );
    let refused = store.reseal_secrets(&|_: &str| None, &audit).await;
    assert!(
        matches!(refused, Err(StorageError::Corrupt(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn commits_leave_the_write_ahead_log_to_the_checkpoint_which_copies_all_of_it() {
    // Arrange
    let Fresh { store, _dir, url } = fresh().await;
    let conn = connection(&store).await;

    // Act: enough deliveries to pass SQLite's own checkpoint threshold (1000 log pages).
    for n in 0..3000 {
        let key = format!("delivery-{n}");
        store
            .record_delivery(conn, &key, &n.to_string(), 0)
            .await
            .expect("delivery");
    }
    let first = store.checkpoint().await.expect("checkpoint");
    let second = store.checkpoint().await.expect("checkpoint");

    // Assert
    if url.starts_with("postgres") {
        assert_eq!(first, None, "PostgreSQL checkpoints by itself");
        return;
    }
    let first = first.expect("SQLite has a write-ahead log");
    assert!(!first.busy, "{first:?}");
    assert!(
        first.log_frames > 1000,
        "no commit checkpointed on its own: {first:?}"
    );
    assert_eq!(first.copied_frames, first.log_frames, "{first:?}");
    let second = second.expect("SQLite has a write-ahead log");
    assert_eq!(second.copied_frames, second.log_frames, "{second:?}");
}
