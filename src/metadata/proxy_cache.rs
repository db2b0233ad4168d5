//! Proxy cache organizations (Quay's `FEATURE_PROXY_CACHE`): which upstream registry an
//! organization caches, how long cached tags stay fresh, and the sealed credentials.

use async_trait::async_trait;

use super::Result;

/// A proxy cache configuration as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyCacheRecord {
    /// The organization.
    pub organization: String,
    /// `host[:port][/namespace]`, as validated at creation.
    pub upstream_registry: String,
    /// How long a cached tag is served before it is revalidated upstream (seconds).
    pub expiration_s: i64,
    /// Plain HTTP, or TLS without verification.
    pub insecure: bool,
    /// The sealed username and password (`crate::sealed`), when configured.
    pub sealed_username: Option<String>,
    pub sealed_password: Option<String>,
    /// When it was created (milliseconds since the Unix epoch).
    pub created_at: i64,
}

/// The stored proxy cache configurations.
#[async_trait]
pub trait ProxyCacheStore: Send + Sync + 'static {
    /// Makes `config.organization` a proxy cache. `NotFound` when the organization does not
    /// exist (or is not an organization), `Conflict` when it already has a configuration.
    async fn create_proxy_cache(&self, config: &ProxyCacheRecord) -> Result<()>;

    /// The configuration of `organization`, if any.
    async fn proxy_cache(&self, organization: &str) -> Result<Option<ProxyCacheRecord>>;

    /// Removes the configuration of `organization`; whether there was one.
    async fn delete_proxy_cache(&self, organization: &str) -> Result<bool>;
}
