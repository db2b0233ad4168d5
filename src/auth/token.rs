//! Registry tokens: short-lived ES256 JWTs with Docker's `access` claim.
//!
//! The signing key lives in the metadata database, so every replica signs and verifies with
//! the same key; the first process to start stores it.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::scope::AccessEntry;
use super::secret::MacKey;
use crate::metadata::accounts::AccountStore;
use crate::metadata::MetadataError;

/// The `iss` of every berth token.
pub const ISSUER: &str = "berth";

/// How far apart the clocks of the issuing and the verifying replica may be: a token is
/// accepted this long before its `nbf` and after its `exp`.
pub const CLOCK_LEEWAY_SECS: u64 = 30;

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The account name; empty for anonymous tokens.
    pub sub: String,
    /// The service the token is for: this registry's `SERVER_HOSTNAME`, else the host clients
    /// reach it at.
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub access: Vec<AccessEntry>,
    /// The account's [`crate::auth::Identity::credential_mark`] when the token was issued;
    /// empty for anonymous tokens.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cred: String,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token was signed by an unknown key")]
    UnknownKey,
    #[error("token is invalid or expired: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Signing and verification keys.
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    /// Derived from the newest private key, so every replica derives the same MAC keys.
    mac_root: MacKey,
    /// Claims of tokens verified before, by SHA-256 of the token: a client sends one token
    /// with every request for its lifetime, and the ES256 check cost more than the rest of a
    /// manifest GET. A token's signature and claims never change, so a remembered one is
    /// refused exactly when a new check would refuse it: past its `exp` (with the leeway) or
    /// for another audience.
    verified: RwLock<HashMap<[u8; 32], Claims>>,
}

/// How many verified tokens are remembered; past it, expired ones are dropped, then all.
const MAX_VERIFIED_TOKENS: usize = 10_000;

fn key_id(public_pem: &str) -> String {
    hex::encode(&Sha256::digest(public_pem.as_bytes())[..12])
}

/// A new ES256 signing key as `(key id, private key PEM)`, the form the metadata database
/// stores; the key id is derived from the public key.
pub fn generate_signing_key() -> Result<(String, String), anyhow::Error> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    Ok((key_id(&pair.public_key_pem()), pair.serialize_pem()))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKeys {
    /// Loads the signing keys from metadata, generating and storing one on first start.
    pub async fn load(store: &dyn AccountStore) -> Result<TokenKeys, anyhow::Error> {
        let (candidate_kid, candidate_pem) = generate_signing_key()?;
        let keys = store
            .signing_keys((&candidate_kid, &candidate_pem))
            .await
            .map_err(|e: MetadataError| anyhow::anyhow!(e))?;
        TokenKeys::from_stored(&keys)
    }

    /// Builds the keys from stored `(key id, private key PEM)` pairs, oldest first: tokens are
    /// signed with the last one and verified with any of them.
    pub fn from_stored(keys: &[(String, String)]) -> Result<TokenKeys, anyhow::Error> {
        let mut decoding = HashMap::new();
        let mut newest = None;
        for (kid, pem) in keys {
            let pair = rcgen::KeyPair::from_pem(pem)?;
            decoding.insert(
                kid.clone(),
                DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes())?,
            );
            newest = Some((kid.clone(), pem.clone()));
        }
        let (kid, pem) = newest.ok_or_else(|| anyhow::anyhow!("no token signing key"))?;
        Ok(TokenKeys {
            encoding: EncodingKey::from_ec_pem(pem.as_bytes())?,
            kid,
            decoding,
            mac_root: MacKey::derive(pem.as_bytes(), "berth MAC keys"),
            verified: RwLock::new(HashMap::new()),
        })
    }

    /// A MAC key for `purpose` (say, signing a cookie), the same on every replica and kept as
    /// secret as the signing key it comes from.
    pub fn mac_key(&self, purpose: &str) -> MacKey {
        self.mac_root.sub_key(purpose)
    }

    /// Signs a token for `subject`, an account's name and credential mark (`None` for
    /// anonymous), and `audience` (the service it is for) with `access`, valid for `lifetime`
    /// seconds. Returns the token and its issue time.
    pub fn issue(
        &self,
        subject: Option<(&str, &str)>,
        audience: &str,
        access: Vec<AccessEntry>,
        lifetime: u64,
    ) -> (String, u64) {
        let now = now_secs();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: subject.map_or("", |(name, _)| name).into(),
            cred: subject.map_or("", |(_, mark)| mark).into(),
            aud: audience.into(),
            exp: now + lifetime,
            nbf: now.saturating_sub(5),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("ES256 signing with a valid key");
        (token, now)
    }

    /// Verifies signature, algorithm (ES256 only), issuer, audience (`audience`, the service
    /// of this registry) and lifetime: a token is refused before its `nbf` and after its `exp`,
    /// with [`CLOCK_LEEWAY_SECS`] of leeway for clocks of replicas that disagree.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Claims, TokenError> {
        if token.len() > 16 * 1024 {
            return Err(TokenError::Malformed);
        }
        let fingerprint: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let unexpired = |c: &Claims| now_secs() <= c.exp.saturating_add(CLOCK_LEEWAY_SECS);
        let verified = self.verified.read().expect("verified tokens lock poisoned");
        let remembered = verified.get(&fingerprint);
        if let Some(claims) = remembered.filter(|c| c.aud == audience && unexpired(c)) {
            return Ok(claims.clone());
        }
        drop(verified);
        let claims = self.verify_signature(token, audience)?;
        let mut verified = self
            .verified
            .write()
            .expect("verified tokens lock poisoned");
        if verified.len() >= MAX_VERIFIED_TOKENS {
            verified.retain(|_, c| unexpired(c));
            if verified.len() >= MAX_VERIFIED_TOKENS {
                verified.clear();
            }
        }
        verified.insert(fingerprint, claims.clone());
        Ok(claims)
    }

    fn verify_signature(&self, token: &str, audience: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.decoding.get(&kid).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_required_spec_claims(&["iss", "aud", "exp", "nbf"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECS;
        Ok(jsonwebtoken::decode::<Claims>(token, key, &validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_stored(&[generate_signing_key().unwrap()]).unwrap()
    }

    /// Signs `claims` as `issue` would, whatever their times say.
    fn sign(keys: &TokenKeys, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(keys.kid.clone());
        jsonwebtoken::encode(&header, claims, &keys.encoding).unwrap()
    }

    #[test]
    fn a_remembered_token_is_checked_again_for_audience_and_expiry() {
        let keys = keys();
        let (token, _) = keys.issue(Some(("alice", "mark")), "registry", Vec::new(), 60);
        let claims = keys.verify(&token, "registry").unwrap();
        assert_eq!(keys.verify(&token, "registry").unwrap(), claims);
        assert!(keys.verify(&token, "elsewhere").is_err());

        // A token verified while it was valid, now past its expiry and the leeway.
        let now = now_secs();
        let stale = Claims {
            exp: now - CLOCK_LEEWAY_SECS - 1,
            iat: now - 600,
            nbf: now - 600,
            ..claims
        };
        let expired = sign(&keys, &stale);
        let fingerprint: [u8; 32] = Sha256::digest(expired.as_bytes()).into();
        keys.verified.write().unwrap().insert(fingerprint, stale);
        assert!(keys.verify(&expired, "registry").is_err());
    }

    #[test]
    fn a_forged_token_is_never_remembered() {
        let keys = keys();
        let (token, _) = keys.issue(Some(("alice", "mark")), "registry", Vec::new(), 60);
        let forged = format!("{}x", token);
        assert!(keys.verify(&forged, "registry").is_err());
        assert!(keys.verify(&forged, "registry").is_err());
        assert_eq!(keys.verified.read().unwrap().len(), 0);
    }
}
