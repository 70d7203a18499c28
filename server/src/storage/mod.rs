//! Everything deskproof keeps: one [`Storage`] trait, one implementation per database.
use std::sync::Arc;

use app::model::Role;

mod sqlite;

pub use sqlite::SqliteStorage;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("unsupported database URL {0:?}: use sqlite://path")]
    UnsupportedUrl(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database folder {path}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A local account: a technician or an admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
}

#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// A cheap query proving the database answers.
    async fn ping(&self) -> Result<(), StorageError>;

    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StorageError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StorageError>;
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StorageError>;
    async fn set_password(&self, id: i64, password_hash: &str) -> Result<(), StorageError>;

    /// The session store for sign-in, kept in the same database.
    fn session_store(&self) -> Arc<dyn tower_sessions::SessionStore>;
}

pub type Store = Arc<dyn Storage>;

/// Opens the database named by `url`, creating it if needed, and applies the migrations.
pub async fn connect(url: &str) -> Result<Store, StorageError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStorage::connect(url).await?))
    } else {
        Err(StorageError::UnsupportedUrl(url.to_owned()))
    }
}

/// Adapts a shared session store to the session layer, which wants a concrete type.
#[derive(Clone, Debug)]
pub struct SharedSessionStore(pub Arc<dyn tower_sessions::SessionStore>);

#[async_trait::async_trait]
impl tower_sessions::SessionStore for SharedSessionStore {
    async fn create(
        &self,
        record: &mut tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.create(record).await
    }

    async fn save(
        &self,
        record: &tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.save(record).await
    }

    async fn load(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<tower_sessions::session::Record>> {
        self.0.load(id).await
    }

    async fn delete(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.delete(id).await
    }
}
