//! Secrets berth must be able to read back (an external registry's password), sealed at rest
//! with AES-256-GCM (`ring`).
//!
//! The key is SHA-256 of Quay's `DATABASE_SECRET_KEY` when the config sets it, otherwise 32
//! random bytes kept in `DATA_DIR/secretbox.key` (mode 0600, made on first start). Replicas that
//! share a PostgreSQL database must share `DATABASE_SECRET_KEY`: a replica with another key
//! cannot open what a different one sealed (and says so, rather than using a wrong secret).
//!
//! A sealed value is `v1:` followed by base64url (no padding) of the 12-byte random nonce and
//! the ciphertext with its tag. The caller names what the secret is for (`context`, e.g. the
//! repository), bound as associated data, so a sealed value copied to another row does not
//! open there.

use std::path::Path;

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};

const PREFIX: &str = "v1:";
/// The key file's name in the data directory (without `DATABASE_SECRET_KEY`).
pub const KEY_FILE: &str = "secretbox.key";

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the sealed secret is malformed")]
    Malformed,
    #[error(
        "the sealed secret does not open with this key (replicas must share DATABASE_SECRET_KEY)"
    )]
    WrongKey,
}

/// Seals and opens secrets with one key.
pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox")
    }
}

impl SecretBox {
    /// A box whose key is derived from `secret` (the text of `DATABASE_SECRET_KEY`).
    pub fn from_secret(secret: &str) -> SecretBox {
        SecretBox::from_key(Sha256::digest(secret.as_bytes()).into())
    }

    fn from_key(key: [u8; 32]) -> SecretBox {
        SecretBox {
            key: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &key).expect("32 bytes is an AES-256 key"),
            ),
            rng: SystemRandom::new(),
        }
    }

    /// The box for this server: `DATABASE_SECRET_KEY` when given, otherwise the key file in
    /// `data_dir`, made with a random key when missing.
    pub fn open_for(data_dir: &Path, secret: Option<&str>) -> anyhow::Result<SecretBox> {
        if let Some(secret) = secret {
            return Ok(SecretBox::from_secret(secret));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display()))?;
                Ok(SecretBox::from_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| anyhow::anyhow!("no random bytes for the secret key"))?;
                write_private(&path, &key)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                tracing::warn!(
                    "DATABASE_SECRET_KEY is not set: secrets are sealed with a key made in {}; replicas sharing a database must all set the same DATABASE_SECRET_KEY",
                    path.display()
                );
                Ok(SecretBox::from_key(key))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Seals `plaintext` for `context`.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system random generator works");
        let mut data = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .expect("AES-GCM seals any length berth stores");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`SecretBox::seal`] sealed for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, OpenError> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() >= NONCE_LEN)
            .ok_or(OpenError::Malformed)?;
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| OpenError::WrongKey)?;
        String::from_utf8(plain.to_vec()).map_err(|_| OpenError::Malformed)
    }
}

/// Writes `bytes` to a new file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_for_the_same_context_only() {
        let b = SecretBox::from_secret("k");
        let sealed = b.seal("hunter2", "org/app");
        assert!(sealed.starts_with("v1:") && !sealed.contains("hunter2"));
        assert_ne!(sealed, b.seal("hunter2", "org/app"), "nonces are random");
        assert_eq!(b.open(&sealed, "org/app").unwrap(), "hunter2");
        assert!(matches!(
            b.open(&sealed, "org/other"),
            Err(OpenError::WrongKey)
        ));
        let other = SecretBox::from_secret("another key");
        assert!(matches!(
            other.open(&sealed, "org/app"),
            Err(OpenError::WrongKey)
        ));
        assert!(matches!(
            b.open("v1:!!", "org/app"),
            Err(OpenError::Malformed)
        ));
        assert!(matches!(
            b.open("hunter2", "org/app"),
            Err(OpenError::Malformed)
        ));
    }

    #[test]
    fn the_key_file_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretBox::open_for(dir.path(), None).unwrap();
        let sealed = first.seal("pw", "c");
        let again = SecretBox::open_for(dir.path(), None).unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap(), "pw");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let keyed = SecretBox::open_for(dir.path(), Some("k")).unwrap();
        assert!(keyed.open(&sealed, "c").is_err());
    }
}
