use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use app::model::Role;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use tower_sessions_sqlx_store::SqliteStore;

use crate::policy::PolicySettings;
use crate::verify::rules::{self, PushHistory};

use super::{
    Attempt, AuditEntry, DuoAccountRow, Job, NewAttempt, NewJob, NewNote, NewPsaConnection,
    NewUser, NoteRow, Organization, PsaConnectionRow, PushClaim, PushGrant, Storage, StorageError,
    TicketCase, UserRecord,
};

/// The embedded default: one SQLite file in WAL mode.
#[derive(Clone, Debug)]
pub struct SqliteStorage {
    pool: SqlitePool,
    sessions: SqliteStore,
}

impl SqliteStorage {
    pub async fn connect(url: &str) -> Result<SqliteStorage, StorageError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let file = options.get_filename();
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StorageError::Folder {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        let sessions = SqliteStore::new(pool.clone())
            .with_table_name("sessions")
            .map_err(|e| StorageError::Conflict(e.to_string()))?;
        sessions.migrate().await?;
        Ok(SqliteStorage { pool, sessions })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<UserRecord, StorageError> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: Role::parse(&role).ok_or_else(|| {
            StorageError::Database(sqlx::Error::Decode(format!("unknown role {role:?}").into()))
        })?,
        password_hash: row.try_get("password_hash")?,
        disabled: row.try_get("disabled")?,
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

fn case_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<TicketCase, StorageError> {
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
    duo_user_id, duo_username, txid, reason, created_at, finished_at, caller_code, next_push_at";

fn attempt_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Attempt, StorageError> {
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
    })
}

fn note_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<NoteRow, StorageError> {
    Ok(NoteRow {
        id: row.try_get("id")?,
        case_id: row.try_get("ticket_ref")?,
        kind: row.try_get("kind")?,
        body: row.try_get("body")?,
        psa_note_id: row.try_get("psa_note_id")?,
    })
}

fn connection_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<PsaConnectionRow, StorageError> {
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

fn json_column(
    row: &sqlx::sqlite::SqliteRow,
    name: &str,
) -> Result<serde_json::Value, StorageError> {
    let text: String = row.try_get(name)?;
    serde_json::from_str(&text).map_err(|e| StorageError::Database(sqlx::Error::Decode(e.into())))
}

/// Inserts a note and the job that posts it, inside the caller's transaction.
async fn insert_note(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    note: &NewNote,
) -> Result<i64, StorageError> {
    let row =
        sqlx::query("INSERT INTO notes (ticket_ref, kind, body) VALUES (?, ?, ?) RETURNING id")
            .bind(note.case_id)
            .bind(&note.kind)
            .bind(&note.body)
            .fetch_one(&mut **tx)
            .await?;
    let note_id: i64 = row.try_get("id")?;
    sqlx::query("INSERT INTO jobs (kind, payload, dedupe_key, run_at) VALUES ('note', ?, ?, ?)")
        .bind(serde_json::json!({ "note_id": note_id }).to_string())
        .bind(format!("note:{note_id}"))
        .bind(note.run_at)
        .execute(&mut **tx)
        .await?;
    Ok(note_id)
}

const USER_COLUMNS: &str = "id, username, display_name, role, password_hash, disabled";

#[async_trait::async_trait]
impl Storage for SqliteStorage {
    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StorageError> {
        let result = sqlx::query(&format!(
            "INSERT INTO users (username, display_name, role, password_hash) VALUES (?, ?, ?, ?) \
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
            "SELECT {USER_COLUMNS} FROM users WHERE username = ? COLLATE NOCASE"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StorageError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn set_password(&self, id: i64, password_hash: &str) -> Result<(), StorageError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
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
        let row = sqlx::query("INSERT INTO organizations (name) VALUES (?) RETURNING id")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(conflict(format!("an organization named {name:?}")))?;
        Ok(row.try_get("id")?)
    }

    async fn organization(&self, id: i64) -> Result<Option<Organization>, StorageError> {
        let row = sqlx::query("SELECT id, name FROM organizations WHERE id = ?")
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
        sqlx::query(
            "INSERT INTO duo_accounts (organization_id, api_host, auth_ikey, auth_skey_sealed, \
             admin_ikey, admin_skey_sealed) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (organization_id) DO UPDATE SET api_host = excluded.api_host, \
             auth_ikey = excluded.auth_ikey, auth_skey_sealed = excluded.auth_skey_sealed, \
             admin_ikey = excluded.admin_ikey, admin_skey_sealed = excluded.admin_skey_sealed, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
        )
        .bind(a.organization_id)
        .bind(&a.api_host)
        .bind(&a.auth_ikey)
        .bind(&a.auth_skey_sealed)
        .bind(&a.admin_ikey)
        .bind(&a.admin_skey_sealed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn duo_account(
        &self,
        organization_id: i64,
    ) -> Result<Option<DuoAccountRow>, StorageError> {
        let row = sqlx::query(
            "SELECT organization_id, api_host, auth_ikey, auth_skey_sealed, admin_ikey, \
             admin_skey_sealed FROM duo_accounts WHERE organization_id = ?",
        )
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(DuoAccountRow {
                organization_id: r.try_get("organization_id")?,
                api_host: r.try_get("api_host")?,
                auth_ikey: r.try_get("auth_ikey")?,
                auth_skey_sealed: r.try_get("auth_skey_sealed")?,
                admin_ikey: r.try_get("admin_ikey")?,
                admin_skey_sealed: r.try_get("admin_skey_sealed")?,
            })
        })
        .transpose()
    }

    async fn create_psa_connection(&self, c: &NewPsaConnection) -> Result<i64, StorageError> {
        let row = sqlx::query(
            "INSERT INTO psa_connections (kind, name, settings, secrets_sealed) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(&c.kind)
        .bind(&c.name)
        .bind(c.settings.to_string())
        .bind(&c.secrets_sealed)
        .fetch_one(&self.pool)
        .await
        .map_err(conflict(format!("a PSA connection named {:?}", c.name)))?;
        Ok(row.try_get("id")?)
    }

    async fn psa_connection(&self, id: i64) -> Result<Option<PsaConnectionRow>, StorageError> {
        let row = sqlx::query(
            "SELECT id, kind, name, settings, secrets_sealed FROM psa_connections WHERE id = ?",
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
        sqlx::query(
            "INSERT INTO company_mappings (connection_id, psa_company_id, organization_id) \
             VALUES (?, ?, ?)",
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
             WHERE connection_id = ? AND psa_company_id = ?",
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
                sqlx::query_scalar("SELECT policy FROM organizations WHERE id = ?")
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
        let text = serde_json::to_string(settings).map_err(|_| StorageError::Corrupt("policy"))?;
        let done = match organization_id {
            None => {
                sqlx::query(
                    "INSERT INTO policy_defaults (id, settings) VALUES (1, ?) \
                 ON CONFLICT (id) DO UPDATE SET settings = excluded.settings",
                )
                .bind(&text)
                .execute(&self.pool)
                .await?
            }
            Some(id) => {
                sqlx::query("UPDATE organizations SET policy = ? WHERE id = ?")
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
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO inbound_events (connection_id, delivery_key, ticket_id) VALUES (?, ?, ?) \
             ON CONFLICT (connection_id, delivery_key) DO NOTHING",
        )
        .bind(connection_id)
        .bind(delivery_key)
        .bind(ticket_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        let case = sqlx::query(
            "INSERT INTO tickets (connection_id, ticket_id, state) VALUES (?, ?, 'received') \
             ON CONFLICT (connection_id, ticket_id) DO NOTHING RETURNING id",
        )
        .bind(connection_id)
        .bind(ticket_id)
        .fetch_optional(&mut *tx)
        .await?;
        // A ticket already under verification is not taken in again.
        if let Some(case) = case {
            let case_id: i64 = case.try_get("id")?;
            sqlx::query(
                "INSERT INTO jobs (kind, payload, dedupe_key, run_at) VALUES ('intake', ?, ?, ?)",
            )
            .bind(serde_json::json!({ "case_id": case_id }).to_string())
            .bind(format!("intake:{case_id}"))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn ticket_case(&self, id: i64) -> Result<Option<TicketCase>, StorageError> {
        let row = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM tickets WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(case_from_row).transpose()
    }

    async fn update_ticket_case(
        &self,
        c: &TicketCase,
        note: Option<&NewNote>,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE tickets SET state = ?, organization_id = ?, summary = ?, company_id = ?, \
             contact_first = ?, contact_last = ?, contact_email = ?, problem = ?, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?",
        )
        .bind(&c.state)
        .bind(c.organization_id)
        .bind(&c.summary)
        .bind(&c.company_id)
        .bind(&c.contact_first)
        .bind(&c.contact_last)
        .bind(&c.contact_email)
        .bind(&c.problem)
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
        let mut tx = self.pool.begin().await?;
        // Matching takes seconds; one still matching after ten minutes was cut short by a stop.
        sqlx::query(
            "UPDATE attempts SET state = 'failed', \
             reason = 'interrupted before a push was sent', \
             finished_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') \
             WHERE ticket_ref = ? AND state = 'matching' \
             AND created_at < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-10 minutes')",
        )
        .bind(a.case_id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "INSERT INTO attempts (ticket_ref, technician_id, technician_name, state) \
             SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM attempts \
             WHERE ticket_ref = ? AND state IN ('matching', 'pushed')) RETURNING id",
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
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    async fn attempts_for_case(&self, case_id: i64) -> Result<Vec<Attempt>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE ticket_ref = ? ORDER BY id DESC"
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
        note: Option<&NewNote>,
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE attempts SET state = ?, duo_user_id = ?, duo_username = ?, txid = ?, \
             reason = ?, finished_at = ? WHERE id = ? AND state = ?",
        )
        .bind(&a.state)
        .bind(&a.duo_user_id)
        .bind(&a.duo_username)
        .bind(&a.txid)
        .bind(&a.reason)
        .bind(&a.finished_at)
        .bind(a.id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(note) = note {
            insert_note(&mut tx, note).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn note(&self, id: i64) -> Result<Option<NoteRow>, StorageError> {
        let row =
            sqlx::query("SELECT id, ticket_ref, kind, body, psa_note_id FROM notes WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(note_from_row).transpose()
    }

    async fn notes_for_case(&self, case_id: i64) -> Result<Vec<NoteRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, ticket_ref, kind, body, psa_note_id FROM notes WHERE ticket_ref = ? \
             ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(note_from_row).collect()
    }

    async fn mark_note_posted(&self, id: i64, psa_note_id: &str) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE notes SET psa_note_id = ?, posted_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') \
             WHERE id = ?",
        )
        .bind(psa_note_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn enqueue_job(&self, job: &NewJob) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO jobs (kind, payload, dedupe_key, run_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(&job.kind)
        .bind(job.payload.to_string())
        .bind(&job.dedupe_key)
        .bind(job.run_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_job(&self, now: i64, lease_until: i64) -> Result<Option<Job>, StorageError> {
        // SQLite serialises writers, so one UPDATE … RETURNING claims atomically.
        let row = sqlx::query(
            "UPDATE jobs SET leased_until = ?, attempts = attempts + 1 WHERE id = (\
                SELECT id FROM jobs WHERE done = FALSE AND run_at <= ? \
                AND (leased_until IS NULL OR leased_until < ?) ORDER BY run_at, id LIMIT 1) \
             RETURNING id, kind, payload, attempts",
        )
        .bind(lease_until)
        .bind(now)
        .bind(now)
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

    async fn finish_job(&self, id: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE jobs SET done = TRUE, leased_until = NULL WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn retry_job(&self, id: i64, run_at: i64, error: &str) -> Result<(), StorageError> {
        sqlx::query("UPDATE jobs SET run_at = ?, leased_until = NULL, last_error = ? WHERE id = ?")
            .bind(run_at)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_leases(&self) -> Result<(), StorageError> {
        sqlx::query("UPDATE jobs SET leased_until = NULL WHERE done = FALSE")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO audit_log (actor, action, organization_id, ticket, contact, duo_user, \
             outcome, txid, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, StorageError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, organization_id, ticket, contact, duo_user, outcome, txid, \
             detail FROM audit_log ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    organization_id: r.try_get("organization_id")?,
                    ticket: r.try_get("ticket")?,
                    contact: r.try_get("contact")?,
                    duo_user: r.try_get("duo_user")?,
                    outcome: r.try_get("outcome")?,
                    txid: r.try_get("txid")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn claim_push(
        &self,
        a: &NewAttempt,
        claim: &PushClaim,
    ) -> Result<PushGrant, StorageError> {
        // BEGIN IMMEDIATE takes the write lock before the first read, so a second request
        // waits here until the first has inserted its row and committed.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE attempts SET state = 'failed', \
             reason = 'interrupted before a push was sent', \
             finished_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') \
             WHERE ticket_ref = ? AND state = 'matching' \
             AND created_at < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-10 minutes')",
        )
        .bind(a.case_id)
        .execute(&mut *tx)
        .await?;
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM attempts WHERE ticket_ref = ? AND state IN ('matching', 'pushed') \
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
            let earlier: Option<(i64, i64, bool)> = sqlx::query_as(
                "SELECT u.attempt_id, u.used_at, (a.txid IS NOT NULL) \
                 FROM used_links u JOIN attempts a ON a.id = u.attempt_id \
                 WHERE u.token_digest = ?",
            )
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?;
            match earlier {
                // The link's attempt reached Duo: the link is used up.
                Some((_, at, true)) => {
                    tx.commit().await?;
                    return Ok(PushGrant::LinkUsed(at));
                }
                // Refused before any push a moment ago: a second click gets that answer.
                Some((id, at, false)) if claim.now - at < LINK_DEBOUNCE_SECS => {
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
             finished_at, organization_id, contact_key, caller_code, next_push_at) \
             VALUES (?, ?, ?, ?, ?, \
             CASE WHEN ? THEN strftime('%Y-%m-%dT%H:%M:%SZ', 'now') END, ?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(a.case_id)
        .bind(a.technician_id)
        .bind(&a.technician_name)
        .bind(state)
        .bind(reason.as_ref().map(|r| r.reason.clone()))
        .bind(reason.is_some())
        .bind(claim.organization_id)
        .bind(&claim.contact_key)
        .bind(reason.is_none().then_some(&claim.caller_code))
        .bind(reason.as_ref().and_then(|r| r.next_allowed_at))
        .fetch_one(&mut *tx)
        .await?;
        if let (None, Some(digest)) = (&reason, &claim.link_digest) {
            sqlx::query(
                "INSERT INTO used_links (token_digest, case_id, attempt_id, used_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (token_digest) \
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
             WHERE u.token_digest = ? AND a.txid IS NOT NULL",
        )
        .bind(token_digest)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn last_approval(&self, case_id: i64) -> Result<Option<i64>, StorageError> {
        let at: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT CAST(strftime('%s', COALESCE(finished_at, created_at)) AS INTEGER) \
             FROM attempts WHERE ticket_ref = ? AND state = 'approved' ORDER BY id DESC LIMIT 1",
        )
        .bind(case_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(at.flatten())
    }

    fn session_store(&self) -> Arc<dyn tower_sessions::SessionStore> {
        Arc::new(self.sessions.clone())
    }
}

/// A click on a link within this many seconds of the attempt it started, which was refused
/// before any push, gets that attempt rather than a new one.
const LINK_DEBOUNCE_SECS: i64 = 10;

/// A push is an attempt that reached Duo (it has a transaction id) or may still reach it.
const IS_PUSH: &str = "(txid IS NOT NULL OR state = 'matching')";
const UNIX_CREATED: &str = "CAST(strftime('%s', created_at) AS INTEGER)";
const UNIX_FINISHED: &str = "CAST(strftime('%s', COALESCE(finished_at, created_at)) AS INTEGER)";

/// Reads what the push rules need, inside the caller's write transaction.
async fn push_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    a: &NewAttempt,
    claim: &PushClaim,
) -> Result<PushHistory, StorageError> {
    let limits = &claim.limits;
    let ticket_pushes: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM attempts WHERE ticket_ref = ? AND {IS_PUSH}"
    ))
    .bind(a.case_id)
    .fetch_one(&mut **tx)
    .await?;
    let contact_pushes: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT {UNIX_CREATED} FROM attempts WHERE organization_id = ? AND contact_key = ? \
         AND {IS_PUSH} AND {UNIX_CREATED} > ?"
    ))
    .bind(claim.organization_id)
    .bind(&claim.contact_key)
    .bind(claim.now - limits.contact_window_secs)
    .fetch_all(&mut **tx)
    .await?;
    // A technician without a local account (e.g. a PSA member) is counted by name.
    let technician_pushes: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT {UNIX_CREATED} FROM attempts WHERE \
         (technician_id = ? OR (? IS NULL AND technician_id IS NULL AND technician_name = ?)) \
         AND {IS_PUSH} AND {UNIX_CREATED} > ?"
    ))
    .bind(a.technician_id)
    .bind(a.technician_id)
    .bind(&a.technician_name)
    .bind(claim.now - limits.technician_window_secs)
    .fetch_all(&mut **tx)
    .await?;
    let (last_deny, last_fraud): (Option<i64>, Option<i64>) = sqlx::query_as(&format!(
        "SELECT MAX(CASE WHEN state = 'denied' THEN {UNIX_FINISHED} END), \
         MAX(CASE WHEN state = 'fraud' THEN {UNIX_FINISHED} END) \
         FROM attempts WHERE organization_id = ? AND contact_key = ? \
         AND state IN ('denied', 'fraud')"
    ))
    .bind(claim.organization_id)
    .bind(&claim.contact_key)
    .fetch_one(&mut **tx)
    .await?;
    Ok(PushHistory {
        ticket_pushes,
        contact_pushes,
        technician_pushes,
        last_deny,
        last_fraud,
    })
}
