//! Configuration: built-in defaults, then an optional TOML file, then `DESKPROOF_*` variables.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::verify::directory::DirectoryMode;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// The address people and PSAs use to reach deskproof; links in notes start with it.
    /// Default: `http://` and the address the server is bound to.
    pub public_url: Option<String>,
    /// `sqlite://path` (the default, a file under `./data/`) or `postgres://…`.
    pub database_url: String,
    /// Folder with the compiled WebAssembly bundle, the stylesheet and the images.
    pub site_root: PathBuf,
    pub log_format: LogFormat,
    /// Mark the session cookie `Secure`. Unset: on when `public_url` is https.
    pub secure_cookies: Option<bool>,
    /// Minutes of inactivity after which a session ends.
    pub session_minutes: i64,
    /// Key that encrypts stored secrets and signs links (base64 of 32 bytes).
    pub master_key: Option<Secret>,
    /// File holding the master key, used when `master_key` is not set. Default: `master.key`
    /// beside the SQLite database (created on first start).
    pub master_key_file: Option<PathBuf>,
    /// How long a verification link in a note keeps working.
    pub link_lifetime_hours: i64,
    /// A push nobody answered counts as timed out after this many seconds.
    pub push_timeout_secs: i64,
    /// Background workers for ticket intake and note posting.
    pub workers: usize,
    /// Pushes whose answer is awaited from Duo at the same moment; more pending pushes take
    /// turns.
    pub push_pollers: usize,
    /// First delay before a note the PSA refused is posted again; doubles each try.
    pub note_retry_base_ms: u64,
    /// `cached` (default): Duo users are matched against a copy kept in memory and refreshed in
    /// the background; `live`: the whole Duo account is listed on every lookup.
    pub directory: DirectoryMode,
    /// How old a kept Duo directory may get before it is listed again.
    pub directory_refresh_secs: u64,
    /// How long a claimed background job stays with its process. A job whose process stopped
    /// is taken by another (or by the same one restarted) once this runs out; it must exceed
    /// Duo's long poll (about a minute).
    pub job_lease_secs: u64,
    /// How long a click holds its ticket while deskproof matches the contact and sends the
    /// push, renewed every third of it: should deskproof stop mid-click, the ticket is free
    /// again after this.
    pub matching_lease_secs: u64,
    /// Every this many seconds each PSA connection is asked for tickets created since the last
    /// sweep, so a ticket whose webhook never arrived is still verified. 0 turns it off.
    #[serde(default)]
    pub sweep_interval_secs: u64,
}

/// Defaults that need no file at all.
#[derive(Serialize)]
struct Defaults {
    bind: &'static str,
    database_url: &'static str,
    site_root: &'static str,
    log_format: LogFormat,
    session_minutes: i64,
    link_lifetime_hours: i64,
    push_timeout_secs: i64,
    workers: usize,
    push_pollers: usize,
    note_retry_base_ms: u64,
    directory: DirectoryMode,
    directory_refresh_secs: u64,
    job_lease_secs: u64,
    matching_lease_secs: u64,
    sweep_interval_secs: u64,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            bind: "127.0.0.1:3000",
            database_url: "sqlite://data/deskproof.db",
            site_root: "target/site",
            log_format: LogFormat::Text,
            session_minutes: 480,
            link_lifetime_hours: 168,
            push_timeout_secs: 150,
            workers: 16,
            push_pollers: 64,
            note_retry_base_ms: 1000,
            directory: DirectoryMode::Cached,
            directory_refresh_secs: 300,
            job_lease_secs: 120,
            matching_lease_secs: 30,
            sweep_interval_secs: 300,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads the configuration. `file` is the `--config` argument; without it, `deskproof.toml`
    /// in the working folder is read when present.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Defaults::default()));
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.into())),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None => figment = figment.merge(Toml::file("deskproof.toml")),
        }
        figment = figment.merge(Env::prefixed("DESKPROOF_").ignore(&["config"]));
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(public_url) = &self.public_url {
            let url = url::Url::parse(public_url)
                .map_err(|e| ConfigError::Invalid(format!("public_url: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid(
                    "public_url must start with http:// or https://".into(),
                ));
            }
        }
        for (name, value) in [
            ("session_minutes", self.session_minutes),
            ("link_lifetime_hours", self.link_lifetime_hours),
            ("push_timeout_secs", self.push_timeout_secs),
            ("workers", self.workers as i64),
            ("push_pollers", self.push_pollers as i64),
        ] {
            if value <= 0 {
                return Err(ConfigError::Invalid(format!("{name} must be positive")));
            }
        }
        if self.job_lease_secs == 0 {
            return Err(ConfigError::Invalid(
                "job_lease_secs must be positive".into(),
            ));
        }
        if self.matching_lease_secs == 0 {
            return Err(ConfigError::Invalid(
                "matching_lease_secs must be positive".into(),
            ));
        }
        if self.directory_refresh_secs == 0 {
            return Err(ConfigError::Invalid(
                "directory_refresh_secs must be positive".into(),
            ));
        }
        if self.note_retry_base_ms == 0 {
            return Err(ConfigError::Invalid(
                "note_retry_base_ms must be positive".into(),
            ));
        }
        Ok(())
    }

    pub fn public_url_is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies
            .unwrap_or_else(|| self.public_url_is_https())
    }

    /// A configuration for tests and tools: defaults with the given database.
    pub fn for_database(database_url: impl Into<String>) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            database_url: database_url.into(),
            site_root: PathBuf::from("target/site"),
            log_format: LogFormat::Text,
            secure_cookies: None,
            session_minutes: 480,
            master_key: None,
            master_key_file: None,
            link_lifetime_hours: 168,
            push_timeout_secs: 150,
            workers: 4,
            push_pollers: 8,
            note_retry_base_ms: 1000,
            directory: DirectoryMode::Cached,
            directory_refresh_secs: 300,
            job_lease_secs: 120,
            matching_lease_secs: 30,
            sweep_interval_secs: 0,
        }
    }

    /// The public URL: as configured, else `http://` and the address the server is bound to.
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
    }

    /// Where the master key file is: as configured, else beside the SQLite database.
    pub fn master_key_path(&self) -> PathBuf {
        if let Some(path) = &self.master_key_file {
            return path.clone();
        }
        let db_file = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))
            .map(|rest| rest.split('?').next().unwrap_or(rest));
        match db_file.map(Path::new).and_then(Path::parent) {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("master.key"),
            _ => PathBuf::from("data/master.key"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure type
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        figment::Jail::expect_with(|_jail| {
            let c = Config::load(None).expect("defaults load");
            assert_eq!(c.bind.to_string(), "127.0.0.1:3000");
            assert_eq!(c.database_url, "sqlite://data/deskproof.db");
            assert!(!c.cookies_secure());
            Ok(())
        });
    }

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "deskproof.toml",
                "public_url = \"https://desk.example.net\"\nsession_minutes = 60\n",
            )?;
            jail.set_env("DESKPROOF_SESSION_MINUTES", "30");
            let c = Config::load(None).expect("load");
            assert_eq!(c.public_url.as_deref(), Some("https://desk.example.net"));
            assert_eq!(c.session_minutes, 30);
            assert!(c.cookies_secure());
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_is_a_clear_error() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DESKPROOF_PUBLIC_URL", "ftp://x");
            let err = Config::load(None).expect_err("must fail");
            assert!(err.to_string().contains("public_url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/deskproof.toml"))).expect_err("fail");
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }
}
