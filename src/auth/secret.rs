//! Secrets: password hashing, random tokens, and hashing tokens for storage.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{KeyInit, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// Checks a password against a PHC string, in constant time with respect to the password.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time a password check takes, so an unknown user cannot be told from a wrong
/// password by timing.
pub fn verify_against_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash_password("berth-timing-equalizer"));
    let _ = verify_password(password, phc);
}

/// A random secret of 32 bytes, URL-safe base64 without padding, behind `prefix`.
pub fn random_token(prefix: &str) -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A random password for the first-start admin.
pub fn random_password() -> String {
    random_token("")
}

/// The stored form of a high-entropy token: hex SHA-256. Tokens are 256 random bits, so a
/// fast hash is enough; the lookup by hash never compares secrets byte by byte.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// A key for HMAC-SHA256: signs what berth hands out and must get back unchanged (the
/// dashboard's flash cookie), and keys the hashes the login limiter files attempts under.
#[derive(Clone)]
pub struct MacKey([u8; 32]);

impl MacKey {
    /// A fresh random key, for what lives only as long as this process.
    pub fn random() -> MacKey {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        MacKey(key)
    }

    /// A key derived from secret key material for one `purpose`, so several uses of the same
    /// material never share a key.
    pub fn derive(material: &[u8], purpose: &str) -> MacKey {
        MacKey(Sha256::digest(material).into()).sub_key(purpose)
    }

    /// A key derived from this one for one `purpose`.
    pub fn sub_key(&self, purpose: &str) -> MacKey {
        MacKey(self.sign(&[purpose.as_bytes()]))
    }

    /// The MAC of `parts`, each prefixed with its length so that no two different lists of
    /// parts have the same input.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.mac(parts).finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of `parts`, in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.mac(parts).verify_slice(tag).is_ok()
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

/// Constant-time equality for secrets of any length.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret ", &h));
        assert!(!verify_password("s3cret", "not a phc string"));
    }

    #[test]
    fn tokens() {
        let a = random_token("berth_");
        let b = random_token("berth_");
        assert_ne!(a, b);
        assert!(a.starts_with("berth_") && a.len() > 40);
        assert_eq!(token_hash(&a).len(), 64);
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"ab"));
    }

    #[test]
    fn macs() {
        let key = MacKey::derive(b"material", "flash");
        let tag = key.sign(&[b"a", b"bc"]);
        assert!(key.verify(&[b"a", b"bc"], &tag));
        assert!(!key.verify(&[b"ab", b"c"], &tag), "parts are delimited");
        assert!(!key.verify(&[b"a", b"bc"], &tag[..31]));
        assert!(!MacKey::derive(b"material", "other").verify(&[b"a", b"bc"], &tag));
        assert!(!MacKey::random().verify(&[b"a", b"bc"], &tag));
        assert_eq!(format!("{key:?}"), "MacKey(..)");
    }
}
