//! Secrets: password hashing, random tokens, and hashing tokens for storage.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
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
}
