use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use app::model::Role;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use tower_sessions_sqlx_store::SqliteStore;

use super::{NewUser, Storage, StorageError, UserRecord};

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

    fn session_store(&self) -> Arc<dyn tower_sessions::SessionStore> {
        Arc::new(self.sessions.clone())
    }
}
