//! The one SQL implementation of [`Storage`], over SQLite (embedded default) or PostgreSQL
//! (several replicas on one database). Queries are written once with `$n` parameters, which
//! both databases accept; the few statements that differ are chosen by [`Dialect`].
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use app::model::Role;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::AnyPool;
use sqlx::{Executor, Row};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::policy::PolicySettings;

use super::{
    Attempt, AuditEntry, AuditFilter, AuditRecord, CompanyMappingRow, ConnectionFilter,
    DuoAccountRow, DuoDirectoryKeys, Effects, Job, Lane, MspChildAccess, NewAttempt, NewJob,
    NewNote, NewPsaConnection, NewUser, NoteRow, Organization, PsaConnectionRow, PushClaim,
    PushGrant, PushKind, Storage, StorageError, TicketCase, UserRecord, WalCheckpoint,
    DIRECTORY_ACCOUNTS_API, DIRECTORY_ADMIN_API,
};
use crate::verify::ports::CallerCodeVia;
use crate::verify::rules::{self, PushHistory};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
enum Sessions {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// deskproof's tables in one database, reached through sqlx's driver-neutral pool.
#[derive(Clone, Debug)]
pub struct SqlStorage {
    pool: AnyPool,
    dialect: Dialect,
    sessions: Sessions,
    /// SQLite takes one writer at a time and makes the others sleep and retry; queueing
    /// writers here instead keeps every write's wait short and fair.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Webhook deliveries arriving together are stored in one transaction.
    deliveries: Arc<DeliveryQueue>,
}

/// One stored delivery: the webhook's identity of it and its ticket.
#[derive(Clone, Debug)]
struct Delivery {
    connection_id: i64,
    delivery_key: String,
    ticket_id: String,
    now: i64,
}

/// A delivery waiting to be stored, and where its caller waits for the answer.
type QueuedDelivery = (Delivery, oneshot::Sender<Result<bool, StorageError>>);

/// Group commit for deliveries: each caller queues its delivery and waits for the leader's
/// turn; the leader stores everything queued so far in one transaction and answers each
/// waiting caller. A burst of webhooks then costs one commit per batch, not per delivery.
#[derive(Debug, Default)]
struct DeliveryQueue {
    queued: std::sync::Mutex<Vec<QueuedDelivery>>,
    leader: tokio::sync::Mutex<()>,
}

/// The queue stays usable after a panic elsewhere: its entries are plain data.
fn lock_queue<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The most deliveries one transaction stores.
const DELIVERY_BATCH: usize = 256;

/// `($1, $2, $3), ($4, $5, $6), …`: `rows` value lists of `columns` parameters each.
fn placeholders(rows: usize, columns: usize) -> String {
    placeholders_with(rows, &vec!["$"; columns])
}

/// Value lists for `rows` rows whose columns are `columns`: a `$` is the next numbered
/// parameter, anything else is written as it is (a constant the same for every row).
fn placeholders_with(rows: usize, columns: &[&str]) -> String {
    let mut next = 0;
    let mut out = String::with_capacity(rows * columns.len() * 5);
    for row in 0..rows {
        out.push_str(if row == 0 { "(" } else { ", (" });
        for (n, column) in columns.iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            if *column == "$" {
                next += 1;
                out.push('$');
                out.push_str(&next.to_string());
            } else {
                out.push_str(column);
            }
        }
        out.push(')');
    }
    out
}

/// How long a SQLite writer waits for another before giving up.
const SQLITE_BUSY: Duration = Duration::from_secs(10);

impl SqlStorage {
    /// Opens (creating if needed) the SQLite file named by a `sqlite:` URL.
    pub async fn connect_sqlite(url: &str) -> Result<SqlStorage, StorageError> {
        sqlx::any::install_default_drivers();
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY);
        let file = options.get_filename();
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StorageError::Folder {
                path: parent.display().to_string(),
                source,
            })?;
        }
        // The native pool creates the file, switches it to WAL (a lasting property of the
        // file), migrates it and keeps the sessions.
        let native = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&native).await?;
        let sessions = SqliteStore::new(native)
            .with_table_name("sessions")
            .map_err(|e| StorageError::Conflict(e.to_string()))?;
        sessions.migrate().await?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            // A connection to a file cannot have dropped: no ping before each use.
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL with `synchronous = NORMAL` survives a crash of the process; a power
                    // failure can lose the last commits, which the ticket sweep picks up again.
                    // Commits never copy the log into the file (and wait for the disk): a
                    // background task does (see `checkpoint`), so a webhook is never answered
                    // late because its commit happened to be the one that checkpoints. A log
                    // that grew in a burst is cut back to 64 MiB once it has been copied.
                    conn.execute(
                        "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                         PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; \
                         PRAGMA journal_size_limit = 67108864",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        Ok(SqlStorage {
            pool,
            dialect: Dialect::Sqlite,
            sessions: Sessions::Sqlite(sessions),
            write_gate: Some(Arc::new(tokio::sync::Mutex::new(()))),
            deliveries: Arc::default(),
        })
    }

    /// Connects to the PostgreSQL database named by a `postgres:` URL; it must exist.
    pub async fn connect_postgres(url: &str) -> Result<SqlStorage, StorageError> {
        sqlx::any::install_default_drivers();
        let options = PgConnectOptions::from_str(url)?;
        let native = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        // Replicas starting together take turns: sqlx holds an advisory lock while migrating.
        sqlx::migrate!("../migrations/postgres")
            .run(&native)
            .await?;
        let sessions = PostgresStore::new(native)
            .with_table_name("sessions")
            .map_err(|e| StorageError::Conflict(e.to_string()))?;
        sessions.migrate().await?;
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await?;
        Ok(SqlStorage {
            pool,
            dialect: Dialect::Postgres,
            sessions: Sessions::Postgres(sessions),
            write_gate: None,
            deliveries: Arc::default(),
        })
    }

    /// Stores deliveries in one transaction: for each, whether it was new. A new delivery
    /// opens a ticket case and its intake job unless the ticket is already under way.
    /// Three statements store the whole batch, each covering every delivery in it.
    async fn store_deliveries(&self, batch: &[Delivery]) -> Result<Vec<bool>, StorageError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;

        let sql = format!(
            "INSERT INTO inbound_events (connection_id, delivery_key, ticket_id) VALUES {} \
             ON CONFLICT (connection_id, delivery_key) DO NOTHING \
             RETURNING connection_id, delivery_key",
            placeholders(batch.len(), 3)
        );
        let mut insert = sqlx::query(&sql).persistent(false);
        for d in batch {
            insert = insert
                .bind(d.connection_id)
                .bind(&d.delivery_key)
                .bind(&d.ticket_id);
        }
        let mut new_keys = HashSet::new();
        for row in insert.fetch_all(&mut *tx).await? {
            new_keys.insert((
                row.try_get::<i64, _>("connection_id")?,
                row.try_get::<String, _>("delivery_key")?,
            ));
        }
        // A delivery repeated within the batch is new only in its first copy.
        let stored: Vec<bool> = batch
            .iter()
            .map(|d| new_keys.remove(&(d.connection_id, d.delivery_key.clone())))
            .collect();

        // Each ticket of a new delivery opens a case, unless one is already under way.
        let tickets: Vec<&Delivery> = batch
            .iter()
            .zip(&stored)
            .filter_map(|(d, new)| new.then_some(d))
            .collect();
        if !tickets.is_empty() {
            let sql = format!(
                "INSERT INTO tickets (connection_id, ticket_id, state) VALUES {} \
                 ON CONFLICT (connection_id, ticket_id) DO NOTHING \
                 RETURNING id, connection_id, ticket_id",
                placeholders_with(tickets.len(), &["$", "$", "'received'"])
            );
            let mut insert = sqlx::query(&sql).persistent(false);
            for d in &tickets {
                insert = insert.bind(d.connection_id).bind(&d.ticket_id);
            }
            let mut cases = Vec::new();
            for row in insert.fetch_all(&mut *tx).await? {
                let (case_id, connection_id, ticket_id): (i64, i64, String) = (
                    row.try_get("id")?,
                    row.try_get("connection_id")?,
                    row.try_get("ticket_id")?,
                );
                let received = tickets
                    .iter()
                    .find(|d| d.connection_id == connection_id && d.ticket_id == ticket_id)
                    .map_or(0, |d| d.now);
                cases.push((case_id, received));
            }
            // Intake in the order the cases were opened.
            cases.sort_unstable();
            if !cases.is_empty() {
                let sql = format!(
                    "INSERT INTO jobs (kind, payload, dedupe_key, run_at) VALUES {}",
                    placeholders_with(cases.len(), &["'intake'", "$", "$", "$"])
                );
                let mut insert = sqlx::query(&sql).persistent(false);
                for (case_id, received) in &cases {
                    insert = insert
                        .bind(serde_json::json!({ "case_id": case_id }).to_string())
                        .bind(format!("intake:{case_id}"))
                        .bind(*received);
                }
                insert.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Waits for this process's turn to write (SQLite only).
    async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Records a new connection's first sweep watermark, now: tickets created from its creation
/// on are listed by its first sweep.
async fn start_sweep(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    connection_id: i64,
) -> Result<(), StorageError> {
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    sqlx::query("INSERT INTO psa_sweeps (connection_id, swept_until) VALUES ($1, $2)")
        .bind(connection_id)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Now, as the text timestamps in every table are written.
fn now_text() -> String {
    text_at(time::OffsetDateTime::now_utc())
}

fn text_at(at: time::OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.format(&format).unwrap_or_default()
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord, StorageError> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: Role::parse(&role).ok_or_else(|| {
            StorageError::Database(sqlx::Error::Decode(format!("unknown role {role:?}").into()))
        })?,
        password_hash: row.try_get("password_hash")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
    })
}

fn conflict(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StorageError {
    let what = what.into();
    move |e| match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict(what),
        other => StorageError::Database(other),
    }
}

const CASE_COLUMNS: &str = "id, connection_id, ticket_id, state, organization_id, summary, \
    company_id, contact_first, contact_last, contact_email, problem";

fn case_from_row(row: &AnyRow) -> Result<TicketCase, StorageError> {
    Ok(TicketCase {
        id: row.try_get("id")?,
        connection_id: row.try_get("connection_id")?,
        ticket_id: row.try_get("ticket_id")?,
        state: row.try_get("state")?,
        organization_id: row.try_get("organization_id")?,
        summary: row.try_get("summary")?,
        company_id: row.try_get("company_id")?,
        contact_first: row.try_get("contact_first")?,
        contact_last: row.try_get("contact_last")?,
        contact_email: row.try_get("contact_email")?,
        problem: row.try_get("problem")?,
    })
}

const ATTEMPT_COLUMNS: &str = "id, ticket_ref, technician_id, technician_name, state, \
    duo_user_id, duo_username, txid, reason, created_at, finished_at, caller_code, next_push_at, \
    push_kind";

fn attempt_from_row(row: &AnyRow) -> Result<Attempt, StorageError> {
    Ok(Attempt {
        id: row.try_get("id")?,
        case_id: row.try_get("ticket_ref")?,
        technician_id: row.try_get("technician_id")?,
        technician_name: row.try_get("technician_name")?,
        state: row.try_get("state")?,
        duo_user_id: row.try_get("duo_user_id")?,
        duo_username: row.try_get("duo_username")?,
        txid: row.try_get("txid")?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
        caller_code: row.try_get("caller_code")?,
        next_push_at: row.try_get("next_push_at")?,
        push_kind: match row.try_get::<String, _>("push_kind")?.as_str() {
            "auth" => PushKind::Auth,
            "verification" => PushKind::Verification,
            _ => return Err(StorageError::Corrupt("attempt push kind")),
        },
    })
}

const DUO_ACCOUNT_COLUMNS: &str = "organization_id, api_host, auth_ikey, auth_skey_sealed, \
    admin_ikey, admin_skey_sealed, directory_keys, accounts_api_host, accounts_ikey, \
    accounts_skey_sealed, child_account_id, child_name, child_api_host, caller_code_via";

fn duo_account_from_row(r: &AnyRow) -> Result<DuoAccountRow, StorageError> {
    let kind: String = r.try_get("directory_keys")?;
    let directory = match kind.as_str() {
        DIRECTORY_ADMIN_API => DuoDirectoryKeys::AdminApi {
            ikey: r.try_get("admin_ikey")?,
            skey_sealed: r.try_get("admin_skey_sealed")?,
        },
        DIRECTORY_ACCOUNTS_API => {
            let text = |name: &str| -> Result<String, StorageError> {
                r.try_get::<Option<String>, _>(name)?
                    .ok_or(StorageError::Corrupt("MSP child account of a Duo account"))
            };
            DuoDirectoryKeys::AccountsApi(MspChildAccess {
                parent_api_host: text("accounts_api_host")?,
                ikey: text("accounts_ikey")?,
                skey_sealed: text("accounts_skey_sealed")?,
                account_id: text("child_account_id")?,
                name: text("child_name")?,
                api_hostname: text("child_api_host")?,
            })
        }
        _ => return Err(StorageError::Corrupt("Duo account directory keys")),
    };
    let caller_code: String = r.try_get("caller_code_via")?;
    Ok(DuoAccountRow {
        organization_id: r.try_get("organization_id")?,
        api_host: r.try_get("api_host")?,
        auth_ikey: r.try_get("auth_ikey")?,
        auth_skey_sealed: r.try_get("auth_skey_sealed")?,
        directory,
        caller_code: CallerCodeVia::parse(&caller_code)
            .ok_or(StorageError::Corrupt("Duo account caller code setting"))?,
    })
}

/// Inserts or replaces an organization's Duo account inside the caller's transaction. The
/// columns of the directory kind not in use are cleared, so no stale key stays behind.
async fn upsert_duo_account(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    a: &DuoAccountRow,
) -> Result<(), StorageError> {
    let (admin_ikey, admin_skey, msp) = match &a.directory {
        DuoDirectoryKeys::AdminApi { ikey, skey_sealed } => {
            (ikey.as_str(), skey_sealed.as_str(), None)
        }
        DuoDirectoryKeys::AccountsApi(child) => ("", "", Some(child)),
    };
    sqlx::query(
        "INSERT INTO duo_accounts (organization_id, api_host, auth_ikey, auth_skey_sealed, \
         admin_ikey, admin_skey_sealed, directory_keys, accounts_api_host, accounts_ikey, \
         accounts_skey_sealed, child_account_id, child_name, child_api_host, caller_code_via, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (organization_id) DO UPDATE SET api_host = excluded.api_host, \
         auth_ikey = excluded.auth_ikey, auth_skey_sealed = excluded.auth_skey_sealed, \
         admin_ikey = excluded.admin_ikey, admin_skey_sealed = excluded.admin_skey_sealed, \
         directory_keys = excluded.directory_keys, accounts_api_host = excluded.accounts_api_host, \
         accounts_ikey = excluded.accounts_ikey, \
         accounts_skey_sealed = excluded.accounts_skey_sealed, \
         child_account_id = excluded.child_account_id, child_name = excluded.child_name, \
         child_api_host = excluded.child_api_host, caller_code_via = excluded.caller_code_via, \
         updated_at = excluded.updated_at",
    )
    .bind(a.organization_id)
    .bind(&a.api_host)
    .bind(&a.auth_ikey)
    .bind(&a.auth_skey_sealed)
    .bind(admin_ikey)
    .bind(admin_skey)
    .bind(a.directory.kind())
    .bind(msp.map(|c| c.parent_api_host.clone()))
    .bind(msp.map(|c| c.ikey.clone()))
    .bind(msp.map(|c| c.skey_sealed.clone()))
    .bind(msp.map(|c| c.account_id.clone()))
    .bind(msp.map(|c| c.name.clone()))
    .bind(msp.map(|c| c.api_hostname.clone()))
    .bind(a.caller_code.as_str())
    .bind(now_text())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Claims the next due job of a lane (`$4`: the poll lane). SQLite serialises writers, so one
/// UPDATE … RETURNING claims atomically.
const SQLITE_CLAIM_JOB: &str =
    "UPDATE jobs SET leased_until = $1, leased_by = $3, attempts = attempts + 1 WHERE id = (\
        SELECT id FROM jobs WHERE done = FALSE AND (kind = 'poll') = $4 AND run_at <= $2 \
        AND (leased_until IS NULL OR leased_until < $2) ORDER BY run_at, id LIMIT 1) \
     RETURNING id, kind, payload, attempts";

/// As [`SQLITE_CLAIM_JOB`]; each replica skips the rows another is claiming at that moment.
const POSTGRES_CLAIM_JOB: &str =
    "UPDATE jobs SET leased_until = $1, leased_by = $3, attempts = attempts + 1 WHERE id = (\
        SELECT id FROM jobs WHERE NOT done AND (kind = 'poll') = $4 AND run_at <= $2 \
        AND (leased_until IS NULL OR leased_until < $2) ORDER BY run_at, id LIMIT 1 \
        FOR UPDATE SKIP LOCKED) \
     RETURNING id, kind, payload, attempts";

fn notes_of_case_sql() -> String {
    format!("SELECT {NOTE_COLUMNS} FROM notes WHERE ticket_ref = $1 ORDER BY id")
}

const NOTE_COLUMNS: &str = "id, ticket_ref, kind, body, psa_note_id, \
    CASE WHEN post_started_at IS NULL THEN 0 ELSE 1 END AS post_started";

fn note_from_row(row: &AnyRow) -> Result<NoteRow, StorageError> {
    Ok(NoteRow {
        id: row.try_get("id")?,
        case_id: row.try_get("ticket_ref")?,
        kind: row.try_get("kind")?,
        body: row.try_get("body")?,
        psa_note_id: row.try_get("psa_note_id")?,
        post_started: row.try_get::<i64, _>("post_started")? != 0,
    })
}

fn connection_from_row(row: &AnyRow) -> Result<PsaConnectionRow, StorageError> {
    let settings: String = row.try_get("settings")?;
    Ok(PsaConnectionRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| StorageError::Database(sqlx::Error::Decode(e.into())))?,
        secrets_sealed: row.try_get("secrets_sealed")?,
    })
}

fn json_column(row: &AnyRow, name: &str) -> Result<serde_json::Value, StorageError> {
    let text: String = row.try_get(name)?;
    serde_json::from_str(&text).map_err(|e| StorageError::Database(sqlx::Error::Decode(e.into())))
}

/// Inserts a note and the job that posts it, inside the caller's transaction.
async fn insert_note(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    note: &NewNote,
) -> Result<i64, StorageError> {
    let row =
        sqlx::query("INSERT INTO notes (ticket_ref, kind, body) VALUES ($1, $2, $3) RETURNING id")
            .bind(note.case_id)
            .bind(&note.kind)
            .bind(&note.body)
            .fetch_one(&mut **tx)
            .await?;
    let note_id: i64 = row.try_get("id")?;
    sqlx::query("INSERT INTO jobs (kind, payload, dedupe_key, run_at) VALUES ('note', $1, $2, $3)")
        .bind(serde_json::json!({ "note_id": note_id }).to_string())
        .bind(format!("note:{note_id}"))
        .bind(note.run_at)
        .execute(&mut **tx)
        .await?;
    Ok(note_id)
}

/// Queues `job` unless one with its de-duplication key exists.
async fn insert_job<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    job: &NewJob,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO jobs (kind, payload, dedupe_key, run_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(&job.kind)
    .bind(job.payload.to_string())
    .bind(&job.dedupe_key)
    .bind(job.run_at)
    .execute(executor)
    .await?;
    Ok(())
}

/// Fails the case's attempts still `matching` whose process stopped: their lease ran out, or,
/// from before leases, they started more than ten minutes ago (matching takes seconds).
async fn fail_abandoned_matching(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    case_id: i64,
) -> Result<(), StorageError> {
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    sqlx::query(
        "UPDATE attempts SET state = 'failed', \
         reason = 'interrupted before a push was sent', finished_at = $1 \
         WHERE ticket_ref = $2 AND state = 'matching' AND (matching_until < $3 \
         OR (matching_until IS NULL AND created_at < $4))",
    )
    .bind(text_at(now))
    .bind(case_id)
    .bind(now_ms)
    .bind(text_at(now - time::Duration::minutes(10)))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends an audit entry inside the caller's transaction.
async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    e: &AuditEntry,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, organization_id, ticket, contact, duo_user, \
         outcome, txid, detail, connection_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&e.actor)
    .bind(&e.action)
    .bind(e.organization_id)
    .bind(&e.ticket)
    .bind(&e.contact)
    .bind(&e.duo_user)
    .bind(&e.outcome)
    .bind(&e.txid)
    .bind(&e.detail)
    .bind(e.connection_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn audit_entry_from_row(r: &AnyRow) -> Result<AuditEntry, StorageError> {
    Ok(AuditEntry {
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        organization_id: r.try_get("organization_id")?,
        connection_id: r.try_get("connection_id")?,
        ticket: r.try_get("ticket")?,
        contact: r.try_get("contact")?,
        duo_user: r.try_get("duo_user")?,
        outcome: r.try_get("outcome")?,
        txid: r.try_get("txid")?,
        detail: r.try_get("detail")?,
    })
}

/// The `WHERE` conditions of an audit search appended to `select`, with the values to bind in
/// order. Each condition adds one `$n`; every value is bound as text so they share one type.
/// `paged`: whether [`AuditFilter::after_id`] applies (a count ignores paging).
fn audit_query(select: &str, f: &AuditFilter, paged: bool) -> (String, Vec<String>) {
    let mut sql = String::from(select);
    let mut texts: Vec<String> = Vec::new();
    let mut condition = |sql: &mut String, clause: &str, value: String| {
        texts.push(value);
        sql.push_str(&format!(" AND {clause} ${}", texts.len()));
    };
    if let Some(org) = f.organization_id {
        condition(
            &mut sql,
            "CAST(a.organization_id AS TEXT) =",
            org.to_string(),
        );
    }
    match f.connection {
        Some(ConnectionFilter::Is(id)) => {
            condition(&mut sql, "CAST(a.connection_id AS TEXT) =", id.to_string())
        }
        Some(ConnectionFilter::Unrecorded) => sql.push_str(" AND a.connection_id IS NULL"),
        None => {}
    }
    if let Some(ticket) = &f.ticket {
        condition(&mut sql, "a.ticket =", ticket.clone());
    }
    if let Some(actor) = &f.actor {
        // The name is matched as typed: `%` and `_` in it are not wildcards.
        let needle = actor
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        condition(&mut sql, "LOWER(a.actor) LIKE", format!("%{needle}%"));
        sql.push_str(" ESCAPE '\\'");
    }
    if let Some(outcome) = &f.outcome {
        condition(&mut sql, "a.outcome =", outcome.clone());
    }
    if let Some(from) = &f.from {
        condition(&mut sql, "a.at >=", from.clone());
    }
    if let Some(until) = &f.until {
        condition(&mut sql, "a.at <", until.clone());
    }
    if let (Some(after), true) = (f.after_id, paged) {
        // Ids are compared as numbers: a cast of the bound text keeps one bound type.
        let op = if f.oldest_first { ">" } else { "<" };
        condition(&mut sql, &format!("a.id {op} CAST("), after.to_string());
        sql.push_str(" AS BIGINT)");
    }
    (sql, texts)
}

async fn organization_exists(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
) -> Result<bool, StorageError> {
    Ok(sqlx::query("SELECT 1 FROM organizations WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

// Booleans are read as integers: the two databases store them differently.
const USER_COLUMNS: &str = "id, username, display_name, role, password_hash, \
    CASE WHEN disabled THEN 1 ELSE 0 END AS disabled";

#[async_trait::async_trait]
impl Storage for SqlStorage {
    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn checkpoint(&self) -> Result<Option<WalCheckpoint>, StorageError> {
        if self.dialect != Dialect::Sqlite {
            return Ok(None);
        }
        // PASSIVE: copies what no reader still needs, without waiting for or blocking writers.
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(WalCheckpoint {
            busy: row.try_get::<i64, _>(0)? != 0,
            log_frames: row.try_get(1)?,
            copied_frames: row.try_get(2)?,
        }))
    }

    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StorageError> {
        let _writer = self.writer().await;
        let result = sqlx::query(&format!(
            "INSERT INTO users (username, display_name, role, password_hash) VALUES ($1, $2, $3, $4) \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(row) => user_from_row(&row),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(
                StorageError::Conflict(format!("a user named {:?}", user.username)),
            ),
            Err(e) => Err(e.into()),
        }
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StorageError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn set_password(&self, id: i64, password_hash: &str) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound(format!("user {id}")));
        }
        Ok(())
    }

    async fn create_organization(&self, name: &str) -> Result<i64, StorageError> {
        let _writer = self.writer().await;
        let row = sqlx::query("INSERT INTO organizations (name) VALUES ($1) RETURNING id")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(conflict(format!("an organization named {name:?}")))?;
        Ok(row.try_get("id")?)
    }

    async fn organization(&self, id: i64) -> Result<Option<Organization>, StorageError> {
        let row = sqlx::query("SELECT id, name FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Organization {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
            })
        })
        .transpose()
    }

    async fn save_duo_account(&self, a: &DuoAccountRow) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        upsert_duo_account(&mut tx, a).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn duo_account(
        &self,
        organization_id: i64,
    ) -> Result<Option<DuoAccountRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {DUO_ACCOUNT_COLUMNS} FROM duo_accounts WHERE organization_id = $1"
        ))
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(duo_account_from_row).transpose()
    }

    async fn create_psa_connection(&self, c: &NewPsaConnection) -> Result<i64, StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO psa_connections (kind, name, settings, secrets_sealed) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(&c.kind)
        .bind(&c.name)
        .bind(c.settings.to_string())
        .bind(&c.secrets_sealed)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict(format!("a PSA connection named {:?}", c.name)))?
        .try_get("id")?;
        start_sweep(&mut tx, id).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn psa_connection(&self, id: i64) -> Result<Option<PsaConnectionRow>, StorageError> {
        let row = sqlx::query(
            "SELECT id, kind, name, settings, secrets_sealed FROM psa_connections WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn psa_connections(&self) -> Result<Vec<PsaConnectionRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, kind, name, settings, secrets_sealed FROM psa_connections ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(connection_from_row).collect()
    }

    async fn map_company(
        &self,
        connection_id: i64,
        psa_company_id: &str,
        organization_id: i64,
    ) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        sqlx::query(
            "INSERT INTO company_mappings (connection_id, psa_company_id, organization_id) \
             VALUES ($1, $2, $3)",
        )
        .bind(connection_id)
        .bind(psa_company_id)
        .bind(organization_id)
        .execute(&self.pool)
        .await
        .map_err(conflict(format!(
            "a mapping for company {psa_company_id:?}"
        )))?;
        Ok(())
    }

    async fn organization_for_company(
        &self,
        connection_id: i64,
        psa_company_id: &str,
    ) -> Result<Option<i64>, StorageError> {
        let row = sqlx::query(
            "SELECT organization_id FROM company_mappings \
             WHERE connection_id = $1 AND psa_company_id = $2",
        )
        .bind(connection_id)
        .bind(psa_company_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("organization_id")).transpose()?)
    }

    async fn policy_settings(
        &self,
        organization_id: Option<i64>,
    ) -> Result<PolicySettings, StorageError> {
        let text: Option<String> = match organization_id {
            None => {
                sqlx::query_scalar("SELECT settings FROM policy_defaults WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await?
            }
            Some(id) => {
                sqlx::query_scalar("SELECT policy FROM organizations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        match text {
            None if organization_id.is_some() => Err(StorageError::NotFound("organization".into())),
            None => Ok(PolicySettings::default()),
            Some(t) => serde_json::from_str(&t).map_err(|_| StorageError::Corrupt("policy")),
        }
    }

    async fn save_policy_settings(
        &self,
        organization_id: Option<i64>,
        settings: &PolicySettings,
    ) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        let text = serde_json::to_string(settings).map_err(|_| StorageError::Corrupt("policy"))?;
        let done = match organization_id {
            None => {
                sqlx::query(
                    "INSERT INTO policy_defaults (id, settings) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET settings = excluded.settings",
                )
                .bind(&text)
                .execute(&self.pool)
                .await?
            }
            Some(id) => {
                sqlx::query("UPDATE organizations SET policy = $1 WHERE id = $2")
                    .bind(&text)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
            }
        };
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound("organization".into()));
        }
        Ok(())
    }

    async fn record_delivery(
        &self,
        connection_id: i64,
        delivery_key: &str,
        ticket_id: &str,
        now: i64,
    ) -> Result<bool, StorageError> {
        let delivery = Delivery {
            connection_id,
            delivery_key: delivery_key.to_owned(),
            ticket_id: ticket_id.to_owned(),
            now,
        };
        let (reply, mut answer) = oneshot::channel();
        lock_queue(&self.deliveries.queued).push((delivery.clone(), reply));
        let _leader = self.deliveries.leader.lock().await;
        match answer.try_recv() {
            // An earlier leader stored this delivery in its batch.
            Ok(result) => return result,
            // An earlier leader took it and was cancelled: its transaction may or may not
            // have committed, and storing again is safe (a stored delivery is not repeated).
            Err(oneshot::error::TryRecvError::Closed) => {
                return self
                    .store_deliveries(std::slice::from_ref(&delivery))
                    .await
                    .map(|stored| stored.first().copied().unwrap_or(false));
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        // This caller leads: everything queued so far goes in, its own delivery included.
        let mut queued = std::mem::take(&mut *lock_queue(&self.deliveries.queued));
        while !queued.is_empty() {
            let rest = queued.split_off(queued.len().min(DELIVERY_BATCH));
            let (batch, replies): (Vec<Delivery>, Vec<_>) =
                std::mem::replace(&mut queued, rest).into_iter().unzip();
            match self.store_deliveries(&batch).await {
                Ok(stored) => {
                    for (reply, stored) in replies.into_iter().zip(stored) {
                        let _ = reply.send(Ok(stored));
                    }
                }
                // One bad delivery must not fail the others: each is stored on its own.
                Err(_) => {
                    for (delivery, reply) in batch.iter().zip(replies) {
                        let result = self
                            .store_deliveries(std::slice::from_ref(delivery))
                            .await
                            .map(|stored| stored.first().copied().unwrap_or(false));
                        let _ = reply.send(result);
                    }
                }
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(StorageError::Conflict(
                "a delivery answer was lost".to_owned(),
            ))
        })
    }

    async fn sweep_watermark(&self, connection_id: i64) -> Result<Option<i64>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT swept_until FROM psa_sweeps WHERE connection_id = $1")
                .bind(connection_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn claim_sweep(
        &self,
        connection_id: i64,
        owner: &str,
        now: i64,
        claimed_until: i64,
    ) -> Result<Option<i64>, StorageError> {
        let _writer = self.writer().await;
        sqlx::query(
            "INSERT INTO psa_sweeps (connection_id, swept_until) VALUES ($1, $2) \
             ON CONFLICT (connection_id) DO NOTHING",
        )
        .bind(connection_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        // One statement: on PostgreSQL a second replica's UPDATE waits for the first and then
        // finds the claim taken; SQLite runs one writer at a time.
        Ok(sqlx::query_scalar(
            "UPDATE psa_sweeps SET claimed_by = $1, claimed_until = $2 \
             WHERE connection_id = $3 AND (claimed_until IS NULL OR claimed_until <= $4) \
             RETURNING swept_until",
        )
        .bind(owner)
        .bind(claimed_until)
        .bind(connection_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn save_sweep_watermark(
        &self,
        connection_id: i64,
        swept_until: i64,
    ) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        sqlx::query(
            "INSERT INTO psa_sweeps (connection_id, swept_until) VALUES ($1, $2) \
             ON CONFLICT (connection_id) DO UPDATE SET swept_until = excluded.swept_until, \
             updated_at = $3 WHERE psa_sweeps.swept_until < excluded.swept_until",
        )
        .bind(connection_id)
        .bind(swept_until)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn ticket_case(&self, id: i64) -> Result<Option<TicketCase>, StorageError> {
        let row = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM tickets WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(case_from_row).transpose()
    }

    async fn ticket_case_for_ticket(
        &self,
        connection_id: i64,
        ticket_id: &str,
    ) -> Result<Option<TicketCase>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM tickets WHERE connection_id = $1 AND ticket_id = $2"
        ))
        .bind(connection_id)
        .bind(ticket_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(case_from_row).transpose()
    }

    async fn update_ticket_case(
        &self,
        c: &TicketCase,
        note: Option<&NewNote>,
    ) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE tickets SET state = $1, organization_id = $2, summary = $3, company_id = $4, \
             contact_first = $5, contact_last = $6, contact_email = $7, problem = $8, \
             updated_at = $9 WHERE id = $10",
        )
        .bind(&c.state)
        .bind(c.organization_id)
        .bind(&c.summary)
        .bind(&c.company_id)
        .bind(&c.contact_first)
        .bind(&c.contact_last)
        .bind(&c.contact_email)
        .bind(&c.problem)
        .bind(now_text())
        .bind(c.id)
        .execute(&mut *tx)
        .await?;
        if let Some(note) = note {
            insert_note(&mut tx, note).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_attempt(&self, a: &NewAttempt) -> Result<i64, StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        if self.dialect == Dialect::Postgres {
            // SQLite runs one writer at a time; PostgreSQL needs the ticket locked so two
            // replicas cannot both open an attempt on it.
            sqlx::query("SELECT id FROM tickets WHERE id = $1 FOR UPDATE")
                .bind(a.case_id)
                .execute(&mut *tx)
                .await?;
        }
        fail_abandoned_matching(&mut tx, a.case_id).await?;
        let row = sqlx::query(
            "INSERT INTO attempts (ticket_ref, technician_id, technician_name, state) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM attempts \
             WHERE ticket_ref = $5 AND state IN ('matching', 'pushed')) RETURNING id",
        )
        .bind(a.case_id)
        .bind(a.technician_id)
        .bind(&a.technician_name)
        .bind(&a.state)
        .bind(a.case_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StorageError::Conflict("an open attempt for this ticket".into()))?;
        tx.commit().await?;
        Ok(row.try_get("id")?)
    }

    async fn attempt(&self, id: i64) -> Result<Option<Attempt>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    async fn attempts_for_case(&self, case_id: i64) -> Result<Vec<Attempt>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE ticket_ref = $1 ORDER BY id DESC"
        ))
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn transition_attempt(
        &self,
        a: &Attempt,
        from: &str,
        effects: Effects<'_>,
    ) -> Result<bool, StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE attempts SET state = $1, duo_user_id = $2, duo_username = $3, txid = $4, \
             reason = $5, finished_at = $6, caller_code = $7, push_kind = $8 \
             WHERE id = $9 AND state = $10",
        )
        .bind(&a.state)
        .bind(&a.duo_user_id)
        .bind(&a.duo_username)
        .bind(&a.txid)
        .bind(&a.reason)
        .bind(&a.finished_at)
        .bind(&a.caller_code)
        .bind(a.push_kind.as_str())
        .bind(a.id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(note) = effects.note {
            insert_note(&mut tx, note).await?;
        }
        if let Some(job) = effects.job {
            insert_job(&mut *tx, job).await?;
        }
        if let Some(entry) = effects.audit {
            insert_audit(&mut tx, entry).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn renew_matching(&self, attempt_id: i64, until: i64) -> Result<bool, StorageError> {
        let _writer = self.writer().await;
        let done = sqlx::query(
            "UPDATE attempts SET matching_until = $1 WHERE id = $2 AND state = 'matching'",
        )
        .bind(until)
        .bind(attempt_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn note(&self, id: i64) -> Result<Option<NoteRow>, StorageError> {
        let row = sqlx::query(&format!("SELECT {NOTE_COLUMNS} FROM notes WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(note_from_row).transpose()
    }

    async fn notes_for_case(&self, case_id: i64) -> Result<Vec<NoteRow>, StorageError> {
        let rows = sqlx::query(&notes_of_case_sql())
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(note_from_row).collect()
    }

    async fn mark_note_posted(&self, id: i64, psa_note_id: &str) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        sqlx::query("UPDATE notes SET psa_note_id = $1, posted_at = $2 WHERE id = $3")
            .bind(psa_note_id)
            .bind(now_text())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn start_note_post(&self, id: i64) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        sqlx::query("UPDATE notes SET post_started_at = $1 WHERE id = $2")
            .bind(now_text())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn enqueue_job(&self, job: &NewJob) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        insert_job(&self.pool, job).await
    }

    async fn claim_job(
        &self,
        now: i64,
        lease_until: i64,
        owner: &str,
        lane: Lane,
    ) -> Result<Option<Job>, StorageError> {
        let _writer = self.writer().await;
        // SQLite serialises writers, so one UPDATE … RETURNING claims atomically; on
        // PostgreSQL each replica skips the rows another is claiming at the same moment.
        let sql = match self.dialect {
            Dialect::Sqlite => SQLITE_CLAIM_JOB,
            Dialect::Postgres => POSTGRES_CLAIM_JOB,
        };
        let row = sqlx::query(sql)
            .bind(lease_until)
            .bind(now)
            .bind(owner)
            .bind(lane == Lane::Polls)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Job {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                payload: json_column(&r, "payload")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .transpose()
    }

    async fn finish_job(&self, id: i64, owner: &str) -> Result<bool, StorageError> {
        let _writer = self.writer().await;
        let done = sqlx::query(
            "UPDATE jobs SET done = TRUE, leased_until = NULL, leased_by = NULL \
             WHERE id = $1 AND leased_by = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry_job(
        &self,
        id: i64,
        owner: &str,
        run_at: i64,
        error: &str,
    ) -> Result<bool, StorageError> {
        let _writer = self.writer().await;
        let done = sqlx::query(
            "UPDATE jobs SET run_at = $1, leased_until = NULL, leased_by = NULL, last_error = $2 \
             WHERE id = $3 AND leased_by = $4",
        )
        .bind(run_at)
        .bind(error)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_leases(&self, owner: Option<&str>) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        match owner {
            Some(owner) => {
                sqlx::query(
                    "UPDATE jobs SET leased_until = NULL, leased_by = NULL \
                     WHERE leased_by = $1 AND done = FALSE",
                )
                .bind(owner)
                .execute(&self.pool)
                .await?;
            }
            // Other replicas may hold live leases on a shared PostgreSQL.
            None if self.dialect == Dialect::Postgres => {}
            None => {
                sqlx::query(
                    "UPDATE jobs SET leased_until = NULL, leased_by = NULL WHERE done = FALSE",
                )
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        sqlx::query(
            "INSERT INTO audit_log (actor, action, organization_id, ticket, contact, duo_user, \
             outcome, txid, detail, connection_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&e.actor)
        .bind(&e.action)
        .bind(e.organization_id)
        .bind(&e.ticket)
        .bind(&e.contact)
        .bind(&e.duo_user)
        .bind(&e.outcome)
        .bind(&e.txid)
        .bind(&e.detail)
        .bind(e.connection_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, StorageError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, organization_id, connection_id, ticket, contact, duo_user, \
             outcome, txid, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_entry_from_row).collect()
    }

    async fn organizations(&self) -> Result<Vec<Organization>, StorageError> {
        let rows = sqlx::query("SELECT id, name FROM organizations ORDER BY name, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Organization {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    async fn save_organization(
        &self,
        id: Option<i64>,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<i64, StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let taken = || format!("an organization named {name:?}");
        let id = match id {
            None => sqlx::query("INSERT INTO organizations (name) VALUES ($1) RETURNING id")
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict(taken()))?
                .try_get("id")?,
            Some(id) => {
                let done = sqlx::query("UPDATE organizations SET name = $1 WHERE id = $2")
                    .bind(name)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict(taken()))?;
                if done.rows_affected() == 0 {
                    return Err(StorageError::NotFound(format!("organization {id}")));
                }
                id
            }
        };
        let mut audit = audit.clone();
        audit.organization_id = Some(id);
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn company_mappings(&self) -> Result<Vec<CompanyMappingRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT m.connection_id, c.name AS connection_name, m.psa_company_id, \
             m.organization_id, o.name AS organization_name FROM company_mappings m \
             JOIN psa_connections c ON c.id = m.connection_id \
             JOIN organizations o ON o.id = m.organization_id \
             ORDER BY m.connection_id, m.psa_company_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CompanyMappingRow {
                    connection_id: r.try_get("connection_id")?,
                    connection_name: r.try_get("connection_name")?,
                    psa_company_id: r.try_get("psa_company_id")?,
                    organization_id: r.try_get("organization_id")?,
                    organization_name: r.try_get("organization_name")?,
                })
            })
            .collect()
    }

    async fn save_company_mapping(
        &self,
        connection_id: i64,
        psa_company_id: &str,
        organization_id: i64,
        audit: &AuditEntry,
    ) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        if !organization_exists(&mut tx, organization_id).await? {
            return Err(StorageError::NotFound(format!(
                "organization {organization_id}"
            )));
        }
        let connection = sqlx::query("SELECT 1 FROM psa_connections WHERE id = $1")
            .bind(connection_id)
            .fetch_optional(&mut *tx)
            .await?;
        if connection.is_none() {
            return Err(StorageError::NotFound(format!(
                "PSA connection {connection_id}"
            )));
        }
        sqlx::query(
            "INSERT INTO company_mappings (connection_id, psa_company_id, organization_id) \
             VALUES ($1, $2, $3) ON CONFLICT (connection_id, psa_company_id) \
             DO UPDATE SET organization_id = excluded.organization_id",
        )
        .bind(connection_id)
        .bind(psa_company_id)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_company_mapping(
        &self,
        connection_id: i64,
        psa_company_id: &str,
        audit: &AuditEntry,
    ) -> Result<Option<i64>, StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let removed: Option<i64> = sqlx::query_scalar(
            "DELETE FROM company_mappings WHERE connection_id = $1 AND psa_company_id = $2 \
             RETURNING organization_id",
        )
        .bind(connection_id)
        .bind(psa_company_id)
        .fetch_optional(&mut *tx)
        .await?;
        if removed.is_some() {
            let mut audit = audit.clone();
            audit.organization_id = removed;
            insert_audit(&mut tx, &audit).await?;
            tx.commit().await?;
        }
        Ok(removed)
    }

    async fn save_duo_account_audited(
        &self,
        a: &DuoAccountRow,
        audit: &AuditEntry,
    ) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        if !organization_exists(&mut tx, a.organization_id).await? {
            return Err(StorageError::NotFound(format!(
                "organization {}",
                a.organization_id
            )));
        }
        upsert_duo_account(&mut tx, a).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn save_psa_connection(
        &self,
        id: Option<i64>,
        c: &NewPsaConnection,
        audit: &AuditEntry,
    ) -> Result<i64, StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let taken = || format!("a PSA connection named {:?}", c.name);
        let id = match id {
            None => {
                let id: i64 = sqlx::query(
                    "INSERT INTO psa_connections (kind, name, settings, secrets_sealed) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(&c.kind)
                .bind(&c.name)
                .bind(c.settings.to_string())
                .bind(&c.secrets_sealed)
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict(taken()))?
                .try_get("id")?;
                start_sweep(&mut tx, id).await?;
                id
            }
            Some(id) => {
                let done = sqlx::query(
                    "UPDATE psa_connections SET name = $1, settings = $2, secrets_sealed = $3 \
                     WHERE id = $4 AND kind = $5",
                )
                .bind(&c.name)
                .bind(c.settings.to_string())
                .bind(&c.secrets_sealed)
                .bind(id)
                .bind(&c.kind)
                .execute(&mut *tx)
                .await
                .map_err(conflict(taken()))?;
                if done.rows_affected() == 0 {
                    return Err(StorageError::NotFound(format!(
                        "{} connection {id}",
                        c.kind
                    )));
                }
                id
            }
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn save_policy_settings_audited(
        &self,
        organization_id: Option<i64>,
        settings: &PolicySettings,
        audit: &AuditEntry,
    ) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        let text = serde_json::to_string(settings).map_err(|_| StorageError::Corrupt("policy"))?;
        let mut tx = self.pool.begin().await?;
        let done = match organization_id {
            None => {
                sqlx::query(
                    "INSERT INTO policy_defaults (id, settings) VALUES (1, $1) \
                     ON CONFLICT (id) DO UPDATE SET settings = excluded.settings",
                )
                .bind(&text)
                .execute(&mut *tx)
                .await?
            }
            Some(id) => {
                sqlx::query("UPDATE organizations SET policy = $1 WHERE id = $2")
                    .bind(&text)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
            }
        };
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound("organization".into()));
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY lower(username), id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn create_user_audited(
        &self,
        user: NewUser,
        audit: &AuditEntry,
    ) -> Result<UserRecord, StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO users (username, display_name, role, password_hash) VALUES ($1, $2, $3, $4) \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict(format!("a user named {:?}", user.username)))?;
        let record = user_from_row(&row)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn update_user(
        &self,
        id: i64,
        disabled: Option<bool>,
        password_hash: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<(), StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET disabled = COALESCE($1, disabled), \
             password_hash = COALESCE($2, password_hash) WHERE id = $3",
        )
        .bind(disabled)
        .bind(password_hash)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound(format!("user {id}")));
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn search_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StorageError> {
        let (mut sql, texts) = audit_query(
            "SELECT a.id, a.at, a.actor, a.action, a.organization_id, a.connection_id, a.ticket, \
             a.contact, a.duo_user, a.outcome, a.txid, a.detail, o.name AS organization_name, \
             c.name AS connection_name \
             FROM audit_log a LEFT JOIN organizations o ON o.id = a.organization_id \
             LEFT JOIN psa_connections c ON c.id = a.connection_id WHERE 1 = 1",
            f,
            true,
        );
        let order = if f.oldest_first { "ASC" } else { "DESC" };
        sql.push_str(&format!(
            " ORDER BY a.id {order} LIMIT ${}",
            texts.len() + 1
        ));
        let mut query = sqlx::query(&sql);
        for text in texts {
            query = query.bind(text);
        }
        let rows = query.bind(f.limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    organization_name: r.try_get("organization_name")?,
                    connection_name: r.try_get("connection_name")?,
                    entry: audit_entry_from_row(r)?,
                })
            })
            .collect()
    }

    async fn count_audit(&self, f: &AuditFilter) -> Result<i64, StorageError> {
        let (sql, texts) = audit_query(
            "SELECT COUNT(*) AS n FROM audit_log a WHERE 1 = 1",
            f,
            false,
        );
        let mut query = sqlx::query(&sql);
        for text in texts {
            query = query.bind(text);
        }
        Ok(query.fetch_one(&self.pool).await?.try_get("n")?)
    }

    async fn reseal_secrets(
        &self,
        reseal: &(dyn for<'s> Fn(&'s str) -> Option<String> + Send + Sync),
        audit: &AuditEntry,
    ) -> Result<usize, StorageError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let mut count = 0;
        let accounts = sqlx::query(
            "SELECT organization_id, auth_skey_sealed, admin_skey_sealed, accounts_skey_sealed \
             FROM duo_accounts",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in &accounts {
            let id: i64 = row.try_get("organization_id")?;
            // An MSP child's account has no Admin API key, a direct one no Accounts API key.
            let mut sealed = |column: &str| -> Result<Option<String>, StorageError> {
                let value: Option<String> = row.try_get(column)?;
                match value.filter(|v| !v.is_empty()) {
                    None => Ok(None),
                    Some(v) => {
                        count += 1;
                        reseal(&v)
                            .map(Some)
                            .ok_or(StorageError::Corrupt("Duo secret key"))
                    }
                }
            };
            let auth = sealed("auth_skey_sealed")?;
            let admin = sealed("admin_skey_sealed")?;
            let accounts = sealed("accounts_skey_sealed")?;
            sqlx::query(
                "UPDATE duo_accounts SET auth_skey_sealed = COALESCE($1, auth_skey_sealed), \
                 admin_skey_sealed = COALESCE($2, admin_skey_sealed), \
                 accounts_skey_sealed = COALESCE($3, accounts_skey_sealed) \
                 WHERE organization_id = $4",
            )
            .bind(auth)
            .bind(admin)
            .bind(accounts)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let connections = sqlx::query("SELECT id, secrets_sealed FROM psa_connections")
            .fetch_all(&mut *tx)
            .await?;
        for row in &connections {
            let id: i64 = row.try_get("id")?;
            let sealed: String = row.try_get("secrets_sealed")?;
            let sealed = reseal(&sealed).ok_or(StorageError::Corrupt("PSA connection secrets"))?;
            sqlx::query("UPDATE psa_connections SET secrets_sealed = $1 WHERE id = $2")
                .bind(sealed)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            count += 1;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(count)
    }

    async fn claim_push(
        &self,
        a: &NewAttempt,
        claim: &PushClaim,
    ) -> Result<PushGrant, StorageError> {
        // Reading the history and inserting must not interleave with another claim: SQLite
        // writers already take turns in this process; PostgreSQL replicas take a lock held
        // until this transaction ends.
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PUSH_CLAIM_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        fail_abandoned_matching(&mut tx, a.case_id).await?;
        let now = time::OffsetDateTime::now_utc();
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM attempts WHERE ticket_ref = $1 AND state IN ('matching', 'pushed') \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(a.case_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = open {
            tx.commit().await?;
            return Ok(PushGrant::Open(id));
        }
        if let Some(digest) = &claim.link_digest {
            let earlier: Option<(i64, i64, i64)> = sqlx::query_as(
                "SELECT u.attempt_id, u.used_at, \
                 CASE WHEN a.txid IS NOT NULL THEN 1 ELSE 0 END AS pushed \
                 FROM used_links u JOIN attempts a ON a.id = u.attempt_id \
                 WHERE u.token_digest = $1",
            )
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?;
            match earlier {
                // The link's attempt reached Duo: the link is used up.
                Some((_, at, 1)) => {
                    tx.commit().await?;
                    return Ok(PushGrant::LinkUsed(at));
                }
                // Refused before any push a moment ago: a second click gets that answer.
                Some((id, at, _)) if claim.now - at < LINK_DEBOUNCE_SECS => {
                    tx.commit().await?;
                    return Ok(PushGrant::Open(id));
                }
                _ => {}
            }
        }
        let history = push_history(&mut tx, a, claim).await?;
        let (state, reason) = match rules::check(&history, &claim.limits, claim.now) {
            Ok(()) => (a.state.as_str(), None),
            Err(refusal) => ("refused", Some(refusal)),
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO attempts (ticket_ref, technician_id, technician_name, state, reason, \
             finished_at, organization_id, contact_key, caller_code, next_push_at, created_at, \
             matching_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(a.case_id)
        .bind(a.technician_id)
        .bind(&a.technician_name)
        .bind(state)
        .bind(reason.as_ref().map(|r| r.reason.clone()))
        .bind(reason.is_some().then(|| text_at(now)))
        .bind(claim.organization_id)
        .bind(&claim.contact_key)
        .bind(reason.is_none().then_some(&claim.caller_code))
        .bind(reason.as_ref().and_then(|r| r.next_allowed_at))
        .bind(text_at(now))
        .bind(reason.is_none().then_some(claim.matching_until))
        .fetch_one(&mut *tx)
        .await?;
        if let (None, Some(digest)) = (&reason, &claim.link_digest) {
            sqlx::query(
                "INSERT INTO used_links (token_digest, case_id, attempt_id, used_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (token_digest) \
                 DO UPDATE SET attempt_id = excluded.attempt_id, used_at = excluded.used_at",
            )
            .bind(digest)
            .bind(a.case_id)
            .bind(id)
            .bind(claim.now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(match reason {
            None => PushGrant::Created(id),
            Some(refusal) => PushGrant::Refused(id, refusal),
        })
    }

    async fn link_used(&self, token_digest: &str) -> Result<Option<i64>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT u.used_at FROM used_links u JOIN attempts a ON a.id = u.attempt_id \
             WHERE u.token_digest = $1 AND a.txid IS NOT NULL",
        )
        .bind(token_digest)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn last_approval(&self, case_id: i64) -> Result<Option<i64>, StorageError> {
        let at: Option<String> = sqlx::query_scalar(
            "SELECT COALESCE(finished_at, created_at) FROM attempts \
             WHERE ticket_ref = $1 AND state = 'approved' ORDER BY id DESC LIMIT 1",
        )
        .bind(case_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(at.as_deref().and_then(unix_seconds))
    }

    fn session_store(&self) -> Arc<dyn tower_sessions::SessionStore> {
        match &self.sessions {
            Sessions::Sqlite(store) => Arc::new(GatedSessions {
                inner: store.clone(),
                gate: self.write_gate.clone(),
            }),
            Sessions::Postgres(store) => Arc::new(store.clone()),
        }
    }
}

/// The SQLite session store, writing in turn with everything else.
#[derive(Debug)]
struct GatedSessions {
    inner: SqliteStore,
    gate: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl GatedSessions {
    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }
}

#[async_trait::async_trait]
impl tower_sessions::SessionStore for GatedSessions {
    async fn create(
        &self,
        record: &mut tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        let _writer = self.turn().await;
        self.inner.create(record).await
    }

    async fn save(
        &self,
        record: &tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        let _writer = self.turn().await;
        self.inner.save(record).await
    }

    async fn load(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<tower_sessions::session::Record>> {
        self.inner.load(id).await
    }

    async fn delete(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<()> {
        let _writer = self.turn().await;
        self.inner.delete(id).await
    }
}

/// A click on a link within this many seconds of the attempt it started, which was refused
/// before any push, gets that attempt rather than a new one.
const LINK_DEBOUNCE_SECS: i64 = 10;

/// The PostgreSQL advisory lock that serializes push claims across replicas.
const PUSH_CLAIM_LOCK: i64 = 0x6465_736b_7075_7368;

/// A push is an attempt that reached Duo (it has a transaction id) or may still reach it.
const IS_PUSH: &str = "(txid IS NOT NULL OR state = 'matching')";

/// Unix seconds of a stored timestamp (`YYYY-MM-DDTHH:MM:SSZ`).
fn unix_seconds(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn text_of_unix(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map(text_at)
        .unwrap_or_default()
}

/// Reads what the push rules need, inside the caller's transaction. Timestamps are compared as
/// text (they sort as they read) and turned into Unix seconds here.
async fn push_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    a: &NewAttempt,
    claim: &PushClaim,
) -> Result<PushHistory, StorageError> {
    let limits = &claim.limits;
    let ticket_pushes: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM attempts WHERE ticket_ref = $1 AND {IS_PUSH}"
    ))
    .bind(a.case_id)
    .fetch_one(&mut **tx)
    .await?;
    let contact_pushes: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT created_at FROM attempts WHERE organization_id = $1 AND contact_key = $2 \
         AND {IS_PUSH} AND created_at > $3"
    ))
    .bind(claim.organization_id)
    .bind(&claim.contact_key)
    .bind(text_of_unix(claim.now - limits.contact_window_secs))
    .fetch_all(&mut **tx)
    .await?;
    // A technician without a local account (e.g. a PSA member) is counted by name.
    let technician_pushes: Vec<String> = match a.technician_id {
        Some(id) => {
            sqlx::query_scalar(&format!(
                "SELECT created_at FROM attempts WHERE technician_id = $1 \
                 AND {IS_PUSH} AND created_at > $2"
            ))
            .bind(id)
            .bind(text_of_unix(claim.now - limits.technician_window_secs))
            .fetch_all(&mut **tx)
            .await?
        }
        None => {
            sqlx::query_scalar(&format!(
                "SELECT created_at FROM attempts WHERE technician_id IS NULL \
                 AND technician_name = $1 AND {IS_PUSH} AND created_at > $2"
            ))
            .bind(&a.technician_name)
            .bind(text_of_unix(claim.now - limits.technician_window_secs))
            .fetch_all(&mut **tx)
            .await?
        }
    };
    let (last_deny, last_fraud): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT MAX(CASE WHEN state = 'denied' THEN COALESCE(finished_at, created_at) END), \
         MAX(CASE WHEN state = 'fraud' THEN COALESCE(finished_at, created_at) END) \
         FROM attempts WHERE organization_id = $1 AND contact_key = $2 \
         AND state IN ('denied', 'fraud')",
    )
    .bind(claim.organization_id)
    .bind(&claim.contact_key)
    .fetch_one(&mut **tx)
    .await?;
    let seconds = |texts: Vec<String>| texts.iter().filter_map(|t| unix_seconds(t)).collect();
    Ok(PushHistory {
        ticket_pushes,
        contact_pushes: seconds(contact_pushes),
        technician_pushes: seconds(technician_pushes),
        last_deny: last_deny.as_deref().and_then(unix_seconds),
        last_fraud: last_fraud.as_deref().and_then(unix_seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite does for `sql`, one line per step.
    async fn plan(store: &SqlStorage, sql: &str, params: usize) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explain);
        for _ in 0..params {
            query = query.bind(Option::<i64>::None);
        }
        query
            .fetch_all(&store.pool)
            .await
            .expect("plan")
            .iter()
            .map(|r| r.try_get::<String, _>("detail").expect("detail"))
            .collect()
    }

    #[test]
    fn value_lists_number_their_parameters_across_rows() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(
            placeholders_with(2, &["'intake'", "$", "$"]),
            "('intake', $1, $2), ('intake', $3, $4)"
        );
    }

    #[tokio::test]
    async fn claims_and_a_tickets_notes_are_found_through_indexes_not_scans() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/plan.db", dir.path().display());
        let store = SqlStorage::connect_sqlite(&url).await.expect("database");

        let claim = plan(&store, SQLITE_CLAIM_JOB, 4).await;
        let notes = plan(&store, &notes_of_case_sql(), 1).await;

        assert!(
            claim
                .iter()
                .any(|d| d.contains("USING INDEX jobs_due_by_lane")),
            "{claim:?}"
        );
        assert!(claim.iter().all(|d| !d.starts_with("SCAN")), "{claim:?}");
        assert!(
            notes.iter().any(|d| d.contains("INDEX notes_by_ticket")),
            "{notes:?}"
        );
        assert!(notes.iter().all(|d| !d.starts_with("SCAN")), "{notes:?}");
    }
}
