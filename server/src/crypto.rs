//! The master key: seals stored secrets (XChaCha20-Poly1305) and derives the link-signing key.
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

const SEALED_PREFIX: &str = "v1:";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("cannot read or write the master key file {path}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a stored secret cannot be opened: wrong master key or damaged data")]
    Open,
}

#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    link_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn from_base64(encoded: &str) -> Result<MasterKey, CryptoError> {
        let bytes = B64
            .decode(encoded.trim())
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(MasterKey::from_bytes(key))
    }

    fn from_bytes(key: [u8; 32]) -> MasterKey {
        let cipher = XChaCha20Poly1305::new(&key.into());
        let link_key = derive(&key, b"deskproof link signing v1");
        MasterKey { cipher, link_key }
    }

    pub fn generate() -> (MasterKey, String) {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let encoded = B64.encode(key);
        let bytes: [u8; 32] = key.into();
        (MasterKey::from_bytes(bytes), encoded)
    }

    /// Reads the key file, creating it (mode 0600) with a fresh key when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, CryptoError> {
        let io = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => MasterKey::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let (key, encoded) = MasterKey::generate();
                write_private(path, &encoded).map_err(io)?;
                tracing::info!(path = %path.display(), "created a new master key file");
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key the configuration names: `master_key` itself, else the key file (created on
    /// first use).
    pub fn from_config(config: &crate::config::Config) -> Result<MasterKey, CryptoError> {
        match &config.master_key {
            Some(k) => MasterKey::from_base64(k.expose()),
            None => MasterKey::load_or_create(&config.master_key_path()),
        }
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a valid key and nonce cannot fail for in-memory data.
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", B64.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<Secret, CryptoError> {
        let data = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .ok_or(CryptoError::Open)?;
        if data.len() < 24 {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = data.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| CryptoError::Open)
    }

    pub fn link_key(&self) -> &[u8; 32] {
        &self.link_key
    }
}

fn derive(key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(label);
    mac.finalize().into_bytes().into()
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_only() {
        let (key, _) = MasterKey::generate();
        let (other, _) = MasterKey::generate();
        let sealed = key.seal("duo secret key");
        assert!(!sealed.contains("duo secret key"));
        assert_eq!(key.open(&sealed).expect("opens").expose(), "duo secret key");
        assert!(matches!(other.open(&sealed), Err(CryptoError::Open)));
        assert!(matches!(key.open("v1:garbage"), Err(CryptoError::Open)));
    }

    #[test]
    fn the_same_secret_seals_differently_each_time() {
        let (key, _) = MasterKey::generate();
        assert_ne!(key.seal("x"), key.seal("x"));
    }

    #[test]
    fn a_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys/master.key");
        let a = MasterKey::load_or_create(&path).expect("create");
        let b = MasterKey::load_or_create(&path).expect("load");
        assert_eq!(b.open(&a.seal("s")).expect("open").expose(), "s");
        assert!(matches!(
            MasterKey::from_base64("c2hvcnQ="),
            Err(CryptoError::BadKey)
        ));
    }
}
