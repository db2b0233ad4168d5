//! Registry tokens: short-lived ES256 JWTs with Docker's `access` claim.
//!
//! The signing key lives in the metadata database, so every replica signs and verifies with
//! the same key; the first process to start stores it.

use std::collections::HashMap;
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
}

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
        })
    }

    /// A MAC key for `purpose` (say, signing a cookie), the same on every replica and kept as
    /// secret as the signing key it comes from.
    pub fn mac_key(&self, purpose: &str) -> MacKey {
        self.mac_root.sub_key(purpose)
    }

    /// Signs a token for `subject` (empty for anonymous) and `audience` (the service it is
    /// for) with `access`, valid for `lifetime` seconds. Returns the token and its issue time.
    pub fn issue(
        &self,
        subject: &str,
        audience: &str,
        access: Vec<AccessEntry>,
        lifetime: u64,
    ) -> (String, u64) {
        let now = now_secs();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: subject.into(),
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
