//! Secrets berth must read back (upstream registry credentials of proxy caches and mirrors),
//! sealed at rest with AES-256-GCM (`ring`) before they are stored, so a copy of the database
//! alone does not reveal them.
//!
//! The key is derived (HKDF-SHA256) from Quay's `DATABASE_SECRET_KEY` when it is set, else
//! from a random secret berth creates once in the data directory ([`KEY_FILE`], mode 0600).
//! Replicas sharing one PostgreSQL database must share `DATABASE_SECRET_KEY`: each replica's
//! own key file could not open what another sealed.
//!
//! A sealed value is `v1.` and the URL-safe base64 of a random 96-bit nonce followed by the
//! ciphertext and its tag. The caller names what the secret belongs to (an organization, a
//! repository's mirror) as associated data, so a value copied into another row does not open.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// The key file in the data directory, used when `DATABASE_SECRET_KEY` is not set.
pub const KEY_FILE: &str = "database-secret.key";

/// The prefix of sealed values (the format's version).
const PREFIX: &str = "v1.";

/// Seals and opens upstream credentials.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
    /// Where the key came from, for messages.
    source: KeySource,
}

/// Where the sealing key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Quay's `DATABASE_SECRET_KEY`.
    Config,
    /// The random secret in this file of the data directory.
    File(PathBuf),
}

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the stored credential is malformed")]
    Malformed,
    #[error(
        "the stored credential cannot be decrypted: it was encrypted with another key \
         (replicas must share DATABASE_SECRET_KEY)"
    )]
    WrongKey,
    #[error("cannot seal a credential: {0}")]
    Crypto(&'static str),
    #[error("cannot load the credential key: {0}")]
    Key(String),
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// The sealer for `secret` (any length; HKDF makes the key).
    pub fn from_secret(secret: &[u8], source: KeySource) -> Sealer {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"berth upstream credentials");
        let prk = salt.extract(secret);
        let okm = prk
            .expand(&[b"aes-256-gcm v1"], &AES_256_GCM)
            .expect("HKDF output of one AES-256 key is within its limit");
        Sealer {
            key: LessSafeKey::new(UnboundKey::from(okm)),
            rng: SystemRandom::new(),
            source,
        }
    }

    /// The sealer from `DATABASE_SECRET_KEY` when given, else from the key file in `data_dir`
    /// (created with 32 random bytes on first use, mode 0600), with a warning that replicas
    /// must set `DATABASE_SECRET_KEY`.
    pub fn load(data_dir: &Path, configured: Option<&str>) -> anyhow::Result<Sealer> {
        if let Some(secret) = configured {
            return Ok(Sealer::from_secret(secret.as_bytes(), KeySource::Config));
        }
        let path = data_dir.join(KEY_FILE);
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => hex::decode(text.trim())
                .ok()
                .filter(|k| k.len() == 32)
                .ok_or_else(|| anyhow::anyhow!("{} is not 64 hex digits", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut secret)
                    .map_err(|_| anyhow::anyhow!("no randomness for the credential key"))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(&path) {
                    Ok(mut file) => {
                        file.write_all(hex::encode(secret).as_bytes())?;
                        file.sync_all()?;
                        secret.to_vec()
                    }
                    // Another process made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Sealer::load(data_dir, None);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        tracing::warn!(
            key_file = %path.display(),
            "DATABASE_SECRET_KEY is not set: upstream registry credentials are encrypted with \
             the key in the data directory; replicas sharing one database must all set the same \
             DATABASE_SECRET_KEY, or they cannot read each other's credentials"
        );
        Ok(Sealer::from_secret(&secret, KeySource::File(path)))
    }

    /// Where the key came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Seals `plaintext` for `org` (what the secret belongs to).
    pub fn seal(&self, org: &str, plaintext: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| SealError::Crypto("no randomness"))?;
        let mut data = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(org.as_bytes()),
                &mut data,
            )
            .map_err(|_| SealError::Crypto("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Opens a value [`Sealer::seal`] made for `org`.
    pub fn open(&self, org: &str, sealed: &str) -> Result<String, SealError> {
        let encoded = sealed.strip_prefix(PREFIX).ok_or(SealError::Malformed)?;
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Malformed);
        }
        let mut data = raw.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| SealError::Malformed)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(org.as_bytes()), &mut data)
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Malformed)
    }
}

/// The process's sealer, loaded on first use, so a registry that stores no secret makes no
/// key file and logs no warning about one.
pub struct SealerCell {
    data_dir: PathBuf,
    configured: Option<crate::config::SecretText>,
    sealer: OnceLock<Sealer>,
}

impl SealerCell {
    /// The sealer of `DATABASE_SECRET_KEY` (`configured`) or, without it, of the key file in
    /// `data_dir`.
    pub fn new(data_dir: PathBuf, configured: Option<crate::config::SecretText>) -> SealerCell {
        SealerCell {
            data_dir,
            configured,
            sealer: OnceLock::new(),
        }
    }

    /// The sealer, its key loaded (or made) on first use.
    pub fn get(&self) -> anyhow::Result<&Sealer> {
        if let Some(s) = self.sealer.get() {
            return Ok(s);
        }
        let loaded = Sealer::load(&self.data_dir, self.configured.as_ref().map(|k| k.expose()))?;
        Ok(self.sealer.get_or_init(|| loaded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_key_and_organization() {
        let a = Sealer::from_secret(b"secret one", KeySource::Config);
        let sealed = a.seal("cache", "hunter2").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            a.seal("cache", "hunter2").unwrap(),
            "nonces are random"
        );
        assert_eq!(a.open("cache", &sealed).unwrap(), "hunter2");
        assert!(matches!(a.open("other", &sealed), Err(SealError::WrongKey)));
        let b = Sealer::from_secret(b"secret two", KeySource::Config);
        assert!(matches!(b.open("cache", &sealed), Err(SealError::WrongKey)));
        for bad in ["", "v1.", "v2.abc", "v1.!!!", "hunter2"] {
            assert!(
                matches!(a.open("cache", bad), Err(SealError::Malformed)),
                "{bad}"
            );
        }
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(a.open("cache", &tampered).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Sealer::load(dir.path(), None).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(first.source(), &KeySource::File(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = first.seal("org", "pw").unwrap();
        let again = Sealer::load(dir.path(), None).unwrap();
        assert_eq!(again.open("org", &sealed).unwrap(), "pw");
        let configured = Sealer::load(dir.path(), Some("configured")).unwrap();
        assert_eq!(configured.source(), &KeySource::Config);
        assert!(configured.open("org", &sealed).is_err());
    }
}
