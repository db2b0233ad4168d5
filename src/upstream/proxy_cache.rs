//! Proxy cache configurations (Quay's `FEATURE_PROXY_CACHE`): validated, credentials sealed
//! before they are stored, and the [`Upstream`] client of an organization built from them.

use std::sync::Arc;

use serde::Deserialize;

use super::{Credentials, Upstream, UpstreamConfig, UpstreamError, UpstreamRegistry};
use crate::metadata::proxy_cache::{ProxyCacheRecord, ProxyCacheStore};
use crate::metadata::{now_millis, MetadataError};
use crate::sealed::{SealError, Sealer, SealerCell};

/// Quay's default staleness of a cached tag: one day.
pub const DEFAULT_EXPIRATION_S: i64 = 86_400;
/// The longest staleness accepted (ten years).
pub const MAX_EXPIRATION_S: i64 = 10 * 365 * 86_400;
/// The longest username or password accepted.
const MAX_CREDENTIAL_LEN: usize = 4096;

/// A proxy cache configuration as the API receives it (Quay's body). Unknown fields are
/// ignored; `org_name`, which Quay's own UI sends, must name the organization of the path.
#[derive(Deserialize, Default)]
pub struct ProxyCacheRequest {
    pub org_name: Option<String>,
    pub upstream_registry: Option<String>,
    pub expiration_s: Option<serde_json::Value>,
    pub insecure: Option<bool>,
    pub upstream_registry_username: Option<String>,
    pub upstream_registry_password: Option<String>,
}

impl std::fmt::Debug for ProxyCacheRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCacheRequest")
            .field("upstream_registry", &self.upstream_registry)
            .field("expiration_s", &self.expiration_s)
            .field("insecure", &self.insecure)
            .field(
                "upstream_registry_username",
                &self.upstream_registry_username,
            )
            .finish_non_exhaustive()
    }
}

/// A request that passed validation.
#[derive(Debug)]
pub struct ValidConfig {
    pub registry: UpstreamRegistry,
    pub expiration_s: i64,
    pub insecure: bool,
    pub credentials: Option<Credentials>,
}

impl ProxyCacheRequest {
    /// Reads Quay's JSON body. Errors name the field but never quote a value, so a password
    /// sent with the wrong type is not echoed into an answer or a log line.
    pub fn from_json(body: &[u8]) -> Result<ProxyCacheRequest, String> {
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            body
        };
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| "the body is not valid JSON".to_string())?;
        let object = value
            .as_object()
            .ok_or_else(|| "the body must be a JSON object".to_string())?;
        let text = |key: &str| -> Result<Option<String>, String> {
            match object.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{key} must be a string")),
            }
        };
        let insecure = match object.get("insecure") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Bool(b)) => Some(*b),
            Some(_) => return Err("insecure must be true or false".into()),
        };
        Ok(ProxyCacheRequest {
            org_name: text("org_name")?,
            upstream_registry: text("upstream_registry")?,
            expiration_s: object.get("expiration_s").cloned(),
            insecure,
            upstream_registry_username: text("upstream_registry_username")?,
            upstream_registry_password: text("upstream_registry_password")?,
        })
    }

    /// Checks the request for organization `org`; the error is shown to the caller.
    pub fn validate(&self, org: &str) -> Result<ValidConfig, String> {
        if let Some(name) = &self.org_name {
            if name != org {
                return Err("org_name does not match the organization of the path".into());
            }
        }
        let registry = self
            .upstream_registry
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or("upstream_registry is required")?
            .parse::<UpstreamRegistry>()
            .map_err(|e| e.to_string())?;
        let expiration_s = match &self.expiration_s {
            None | Some(serde_json::Value::Null) => DEFAULT_EXPIRATION_S,
            Some(serde_json::Value::String(s)) if s.is_empty() => DEFAULT_EXPIRATION_S,
            Some(v) => v
                .as_i64()
                .filter(|n| (1..=MAX_EXPIRATION_S).contains(n))
                .ok_or_else(|| {
                    format!("expiration_s must be a whole number of seconds from 1 to {MAX_EXPIRATION_S}")
                })?,
        };
        let present = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let credentials = match (
            present(&self.upstream_registry_username),
            present(&self.upstream_registry_password),
        ) {
            (None, None) => None,
            (Some(username), Some(password)) => {
                if username.len() > MAX_CREDENTIAL_LEN || password.len() > MAX_CREDENTIAL_LEN {
                    return Err("upstream credentials are too long".into());
                }
                if username.contains(':') || username.chars().any(char::is_control) {
                    return Err(
                        "the upstream username may not contain ':' or control characters".into(),
                    );
                }
                Some(Credentials { username, password })
            }
            _ => return Err(
                "give both upstream_registry_username and upstream_registry_password, or neither"
                    .into(),
            ),
        };
        Ok(ValidConfig {
            registry,
            expiration_s,
            insecure: self.insecure.unwrap_or(false),
            credentials,
        })
    }
}

/// What validating a configuration against its upstream came to (Quay's answers).
#[derive(Debug, PartialEq, Eq)]
pub enum Validation {
    /// The upstream accepted the credentials (or needs none).
    Valid,
    /// No credentials were given and the upstream wants some for `/v2/`; anonymous pulls may
    /// still work for public repositories.
    Anonymous,
}

/// Why a proxy cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyCacheError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("stored upstream registry is invalid: {0}")]
    Stored(String),
    #[error("cannot build the upstream client: {0}")]
    Client(String),
    #[error("cannot load the credential key: {0}")]
    Key(String),
}

/// The proxy cache configurations: their store and the sealing key, the upstream clients
/// built from them (kept, so tokens are reused) and the blob fetches in progress.
pub struct ProxyCaches {
    store: Arc<dyn ProxyCacheStore>,
    sealer: Arc<SealerCell>,
    /// By organization: the configuration a client was built from, and the client.
    clients: std::sync::Mutex<std::collections::HashMap<String, (ProxyCacheRecord, Upstream)>>,
    /// Blob fetches in progress on this replica (single flight).
    pub pulls: crate::proxy::Flights,
    /// When this replica last asked each upstream for a subject's referrers.
    pub referrer_asks: crate::proxy::ReferrerAsks,
}

impl ProxyCaches {
    /// The configurations in `store`, their credentials sealed by `sealer`.
    pub fn new(store: Arc<dyn ProxyCacheStore>, sealer: Arc<SealerCell>) -> ProxyCaches {
        ProxyCaches {
            store,
            sealer,
            clients: Default::default(),
            pulls: Default::default(),
            referrer_asks: Default::default(),
        }
    }

    /// The sealer, loading its key on first use.
    pub fn sealer(&self) -> Result<&Sealer, ProxyCacheError> {
        self.sealer
            .get()
            .map_err(|e| ProxyCacheError::Key(e.to_string()))
    }

    /// Stores `config` for `org`, its credentials sealed. `Conflict` when `org` has one,
    /// `NotFound` when `org` is not an organization.
    pub async fn create(&self, org: &str, config: &ValidConfig) -> Result<(), ProxyCacheError> {
        let (sealed_username, sealed_password) = match &config.credentials {
            None => (None, None),
            Some(c) => (
                Some(self.sealer()?.seal(org, &c.username)?),
                Some(self.sealer()?.seal(org, &c.password)?),
            ),
        };
        self.store
            .create_proxy_cache(&ProxyCacheRecord {
                organization: org.to_string(),
                upstream_registry: config.registry.to_string(),
                expiration_s: config.expiration_s,
                insecure: config.insecure,
                sealed_username,
                sealed_password,
                created_at: now_millis(),
            })
            .await?;
        Ok(())
    }

    /// The stored configuration of `org` (credentials still sealed).
    pub async fn get(&self, org: &str) -> Result<Option<ProxyCacheRecord>, ProxyCacheError> {
        Ok(self.store.proxy_cache(org).await?)
    }

    /// Removes the configuration of `org`; whether there was one.
    pub async fn delete(&self, org: &str) -> Result<bool, ProxyCacheError> {
        Ok(self.store.delete_proxy_cache(org).await?)
    }

    /// The upstream client of `org`'s configuration, its credentials opened; `None` when `org`
    /// is not a proxy cache.
    pub async fn upstream(
        &self,
        org: &str,
    ) -> Result<Option<(ProxyCacheRecord, Upstream)>, ProxyCacheError> {
        let Some(record) = self.store.proxy_cache(org).await? else {
            return Ok(None);
        };
        let upstream = self.client(&record)?;
        Ok(Some((record, upstream)))
    }

    /// The store of configurations and cached tags.
    pub fn store(&self) -> &dyn ProxyCacheStore {
        self.store.as_ref()
    }

    /// The upstream client of `record`, its credentials opened: the one built before for the
    /// same configuration (its tokens still cached), or a new one.
    pub fn client(&self, record: &ProxyCacheRecord) -> Result<Upstream, ProxyCacheError> {
        let org = record.organization.as_str();
        {
            let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((built_from, client)) = clients.get(org) {
                if built_from == record {
                    return Ok(client.clone());
                }
            }
        }
        let registry = record
            .upstream_registry
            .parse::<UpstreamRegistry>()
            .map_err(|e| ProxyCacheError::Stored(e.to_string()))?;
        let credentials = match (&record.sealed_username, &record.sealed_password) {
            (Some(u), Some(p)) => Some(Credentials {
                username: self.sealer()?.open(org, u)?,
                password: self.sealer()?.open(org, p)?,
            }),
            _ => None,
        };
        let upstream = Upstream::new(UpstreamConfig {
            registry,
            insecure: record.insecure,
            credentials,
        })
        .map_err(|e| ProxyCacheError::Client(e.to_string()))?;
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= 10_000 {
            clients.clear();
        }
        clients.insert(org.to_string(), (record.clone(), upstream.clone()));
        Ok(upstream)
    }
}

/// Contacts the upstream of `config` with its credentials (`GET /v2/` through the challenge it
/// answers: a token fetch for the token flow, Basic otherwise), as Quay's validation does.
pub async fn validate_upstream(config: &ValidConfig) -> Result<Validation, UpstreamError> {
    let upstream = Upstream::new(UpstreamConfig {
        registry: config.registry.clone(),
        insecure: config.insecure,
        credentials: config.credentials.clone(),
    })
    .map_err(|e| UpstreamError::Invalid(format!("cannot build the client: {e}")))?;
    match upstream.ping(None).await {
        Ok(()) => Ok(Validation::Valid),
        Err(UpstreamError::Unauthorized(_)) if config.credentials.is_none() => {
            Ok(Validation::Anonymous)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: serde_json::Value) -> ProxyCacheRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn body_errors_never_quote_values() {
        for body in [
            &br#"{"upstream_registry": "q", "upstream_registry_password": 987654321}"#[..],
            br#"{"upstream_registry": "q", "insecure": "987654321"}"#,
            br#"{"upstream_registry_password": "987654321""#,
            br#"["987654321"]"#,
        ] {
            let e = ProxyCacheRequest::from_json(body).unwrap_err();
            assert!(!e.contains("987654321"), "{e}");
        }
        let r = ProxyCacheRequest::from_json(b"  ").unwrap();
        assert!(r.upstream_registry.is_none());
    }

    #[test]
    fn defaults_and_checks() {
        let c = request(json!({"upstream_registry": "quay.io/ns"}))
            .validate("cache")
            .unwrap();
        assert_eq!(c.expiration_s, DEFAULT_EXPIRATION_S);
        assert!(!c.insecure);
        assert!(c.credentials.is_none());
        let c = request(json!({"org_name": "cache", "upstream_registry": "h:5000",
            "expiration_s": 60, "insecure": true,
            "upstream_registry_username": "u", "upstream_registry_password": "p"}))
        .validate("cache")
        .unwrap();
        assert_eq!((c.expiration_s, c.insecure), (60, true));
        assert_eq!(c.credentials.unwrap().password, "p");
        for bad in [
            json!({}),
            json!({"upstream_registry": ""}),
            json!({"upstream_registry": "https://quay.io"}),
            json!({"upstream_registry": "quay.io", "org_name": "other"}),
            json!({"upstream_registry": "quay.io", "expiration_s": 0}),
            json!({"upstream_registry": "quay.io", "expiration_s": -5}),
            json!({"upstream_registry": "quay.io", "expiration_s": 1.5}),
            json!({"upstream_registry": "quay.io", "expiration_s": "soon"}),
            json!({"upstream_registry": "quay.io", "upstream_registry_username": "u"}),
            json!({"upstream_registry": "quay.io", "upstream_registry_password": "p"}),
            json!({"upstream_registry": "quay.io", "upstream_registry_username": "a:b",
                   "upstream_registry_password": "p"}),
        ] {
            assert!(request(bad.clone()).validate("cache").is_err(), "{bad}");
        }
        let shown = format!(
            "{:?}",
            request(json!({"upstream_registry": "q", "upstream_registry_password": "hunter2"}))
        );
        assert!(!shown.contains("hunter2"));
    }
}
