//! [`ProxyCacheStore`] on SQL.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{has_nul, SqlStore};
use oci::{Digest, RepoName, Tag};

use crate::metadata::proxy_cache::{CachedTag, ProxyCacheRecord, ProxyCacheStore};
use crate::metadata::{MetadataError, Result};

fn record(r: &AnyRow) -> Result<ProxyCacheRecord> {
    Ok(ProxyCacheRecord {
        organization: r.get(0),
        upstream_registry: r.get(1),
        expiration_s: r.get(2),
        insecure: r.get::<i64, _>(3) != 0,
        sealed_username: r.get(4),
        sealed_password: r.get(5),
        created_at: r.get(6),
    })
}

#[async_trait]
impl ProxyCacheStore for SqlStore {
    async fn create_proxy_cache(&self, config: &ProxyCacheRecord) -> Result<()> {
        if has_nul(&config.organization) {
            return Err(MetadataError::NotFound);
        }
        // One statement: the organization's row decides NotFound, the primary key Conflict.
        let query = sqlx::query(
            "INSERT INTO proxy_cache_configs (namespace_id, upstream_registry, expiration_s,
                 insecure, sealed_username, sealed_password, created_at)
             SELECT id, $2, $3, $4, $5, $6, $7 FROM accounts
             WHERE name = $1 AND kind = 'organization'
             ON CONFLICT (namespace_id) DO NOTHING",
        )
        .bind(&config.organization)
        .bind(&config.upstream_registry)
        .bind(config.expiration_s)
        .bind(i64::from(config.insecure))
        .bind(&config.sealed_username)
        .bind(&config.sealed_password)
        .bind(config.created_at);
        if self.write(query).await? == 1 {
            return Ok(());
        }
        match self.proxy_cache(&config.organization).await? {
            Some(_) => Err(MetadataError::Conflict),
            None => Err(MetadataError::NotFound),
        }
    }

    async fn proxy_cache(&self, organization: &str) -> Result<Option<ProxyCacheRecord>> {
        if has_nul(organization) {
            return Ok(None);
        }
        let query = sqlx::query(
            "SELECT a.name, p.upstream_registry, p.expiration_s, p.insecure, p.sealed_username,
                    p.sealed_password, p.created_at
             FROM proxy_cache_configs p JOIN accounts a ON a.id = p.namespace_id
             WHERE a.name = $1",
        )
        .bind(organization);
        self.read_one(query, record).await
    }

    async fn delete_proxy_cache(&self, organization: &str) -> Result<bool> {
        if has_nul(organization) {
            return Ok(false);
        }
        let query = sqlx::query(
            "DELETE FROM proxy_cache_configs
             WHERE namespace_id = (SELECT id FROM accounts WHERE name = $1)",
        )
        .bind(organization);
        Ok(self.write(query).await? > 0)
    }

    async fn cached_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<CachedTag>> {
        let query = sqlx::query(
            "SELECT t.manifest_digest, t.validated_at FROM tags t
             JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = $1 AND t.name = $2",
        )
        .bind(repo.as_str())
        .bind(tag.as_str());
        self.read_one(query, |r| {
            let digest: String = r.get(0);
            Ok(CachedTag {
                digest: digest.parse().map_err(|_| {
                    MetadataError::Backend(
                        format!("stored tag digest {digest:?} is invalid").into(),
                    )
                })?,
                validated_at: r.get(1),
            })
        })
        .await
    }

    async fn mark_tag_validated(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
        at: i64,
    ) -> Result<bool> {
        let query = sqlx::query(
            "UPDATE tags SET validated_at = $4
             WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)
               AND name = $2 AND manifest_digest = $3",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .bind(digest.to_string())
        .bind(at);
        Ok(self.write(query).await? > 0)
    }

    async fn stale_proxy_tags(&self, now: i64, limit: u32) -> Result<Vec<(RepoName, Tag)>> {
        // A repository belongs to the organization its name starts with (`org/...`).
        let query = sqlx::query(
            "SELECT r.name, t.name FROM proxy_cache_configs p
             JOIN accounts a ON a.id = p.namespace_id
             JOIN repositories r ON substr(r.name, 1, length(a.name) + 1) = a.name || '/'
             JOIN tags t ON t.repository_id = r.id
             WHERE t.validated_at IS NOT NULL AND t.validated_at < $1 - p.expiration_s * 1000
             ORDER BY t.validated_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit));
        let rows: Vec<Option<(RepoName, Tag)>> = self
            .read_all(query, |r| {
                let repo: String = r.get(0);
                let tag: String = r.get(1);
                Ok(repo.parse().ok().zip(tag.parse().ok()))
            })
            .await?;
        Ok(rows.into_iter().flatten().collect())
    }
}
