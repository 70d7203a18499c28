//! Local accounts: password hashing and the sign-in check.
use std::sync::OnceLock;

use app::model::{CurrentUser, Role};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

use crate::storage::{NewUser, StorageError, Store, UserRecord};

mod throttle;
pub use throttle::SignInThrottle;

/// The session key under which the signed-in user's id is kept.
pub const SESSION_USER_KEY: &str = "user_id";

/// The session key under which a digest of the password hash the user signed in with is kept:
/// a new password (its hash has a new salt) ends every session begun with the old one.
pub const SESSION_STAMP_KEY: &str = "password_stamp";

/// Why a session's user could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Session(#[from] tower_sessions::session::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn password_stamp(user: &UserRecord) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(user.password_hash.as_bytes())[..16])
}

/// Makes `session` a signed-in session of `user`, under a new session id so that a planted id
/// never becomes authenticated.
pub async fn begin_session(
    session: &tower_sessions::Session,
    user: &UserRecord,
) -> Result<(), tower_sessions::session::Error> {
    session.cycle_id().await?;
    session.insert(SESSION_USER_KEY, user.id).await?;
    session
        .insert(SESSION_STAMP_KEY, password_stamp(user))
        .await
}

/// The user `session` was begun for, while the account is enabled and its password is the one
/// signed in with. Any other signed-in session is ended here.
pub async fn session_user(
    store: &Store,
    session: &tower_sessions::Session,
) -> Result<Option<UserRecord>, SessionError> {
    let Some(id) = session.get::<i64>(SESSION_USER_KEY).await? else {
        return Ok(None);
    };
    let stamp = session.get::<String>(SESSION_STAMP_KEY).await?;
    match store.user_by_id(id).await? {
        Some(user) if !user.disabled && stamp.as_deref() == Some(&password_stamp(&user)) => {
            Ok(Some(user))
        }
        _ => {
            session.flush().await?;
            Ok(None)
        }
    }
}

pub const MIN_PASSWORD_LEN: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Wrong username or password.")]
    BadCredentials,
    #[error("This account is disabled. Ask an administrator.")]
    Disabled,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("password hashing failed")]
    Hash,
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A real hash of nothing in particular, checked when the username is unknown so that an
/// unknown user and a wrong password take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password("deskproof decoy password").unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$\
             8S4Kx3m6yKOQ0Z1z5s6a2Q8i9m4YyH3Vf2x0xq3t4Zw"
                .to_owned()
        })
    })
}

/// Checks a username and password. Unknown users cost one full hash check too.
pub async fn check_credentials(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<UserRecord, AuthError> {
    let user = store.user_by_username(username.trim()).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| decoy_hash().to_owned());
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(u) if ok && !u.disabled => Ok(u),
        Some(u) if ok && u.disabled => Err(AuthError::Disabled),
        _ => Err(AuthError::BadCredentials),
    }
}

pub fn validate_username(username: &str) -> Result<String, AuthError> {
    let username = username.trim();
    if username.is_empty() || username.len() > 64 {
        return Err(AuthError::Invalid(
            "A username has 1 to 64 characters.".into(),
        ));
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(AuthError::Invalid(
            "A username may contain letters, digits and . _ - @ only.".into(),
        ));
    }
    Ok(username.to_owned())
}

pub fn validate_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AuthError::Invalid(format!(
            "A password needs at least {MIN_PASSWORD_LEN} characters."
        )));
    }
    if password.trim().is_empty() {
        return Err(AuthError::Invalid(
            "A password cannot be only spaces.".into(),
        ));
    }
    Ok(())
}

/// Creates a local account after checking its fields.
pub async fn create_user(
    store: &Store,
    username: &str,
    display_name: &str,
    role: Role,
    password: &str,
) -> Result<UserRecord, AuthError> {
    let username = validate_username(username)?;
    validate_password(password)?;
    let display_name = match display_name.trim() {
        "" => username.clone(),
        name => name.to_owned(),
    };
    let password = password.to_owned();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| AuthError::Hash)??;
    Ok(store
        .create_user(NewUser {
            username,
            display_name,
            role,
            password_hash,
        })
        .await?)
}

pub fn current_user(user: &UserRecord) -> CurrentUser {
    CurrentUser {
        id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        role: user.role,
    }
}
