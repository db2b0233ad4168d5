//! Proxy cache organizations (Quay's `FEATURE_PROXY_CACHE`): which upstream registry an
//! organization caches, how long cached tags stay fresh, and the sealed credentials.

use async_trait::async_trait;

use oci::{Digest, RepoName, Tag};

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

    /// The manifest `tag` of `repo` points at, and when the proxy last confirmed it upstream
    /// (milliseconds; `None` when never), read from the database, so replicas agree.
    async fn cached_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<CachedTag>>;

    /// Records that `tag` of `repo`, still pointing at `digest`, was confirmed upstream `at`.
    /// False when the tag is gone or points elsewhere now.
    async fn mark_tag_validated(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
        at: i64,
    ) -> Result<bool>;

    /// Up to `limit` cached tags of proxy cache organizations that were last confirmed
    /// upstream longer than their organization's `expiration_s` before `now`.
    async fn stale_proxy_tags(&self, now: i64, limit: u32) -> Result<Vec<(RepoName, Tag)>>;
}

/// A cached tag as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedTag {
    pub digest: Digest,
    /// When the proxy last confirmed the tag upstream (milliseconds since the Unix epoch).
    pub validated_at: Option<i64>,
}
