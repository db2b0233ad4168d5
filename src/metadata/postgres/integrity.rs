//! The integrity check's queries and repair steps on PostgreSQL. Step 1 takes the per-digest
//! advisory lock exclusively, as a collector does, so it waits for a `link_blob` of the digest
//! in flight and makes later ones see the pending deletion.

use std::sync::LazyLock;

use async_trait::async_trait;
use oci::{Digest, RepoName};
use sqlx::Row;

use super::collection::{lock_digest, mark_pending};
use super::PostgresStore;
use crate::metadata::fsck::{
    sort_references, DanglingTag, FsckStore, ManifestRecord, RecordedReferences, BLOBS_AFTER,
    BLOB_TOTALS, DANGLING_TAGS, FORGET_BLOB, LINKING_REPOSITORIES, MANIFESTS_AFTER,
    RECORDED_REFERENCES, TAG_COUNT,
};
use crate::metadata::gc::postgres_placeholders;
use crate::metadata::{backend, stored, MetadataError};

static PG_BLOBS_AFTER: LazyLock<String> = LazyLock::new(|| postgres_placeholders(BLOBS_AFTER));
static PG_MANIFESTS_AFTER: LazyLock<String> =
    LazyLock::new(|| postgres_placeholders(MANIFESTS_AFTER));
static PG_RECORDED_REFERENCES: LazyLock<String> =
    LazyLock::new(|| postgres_placeholders(RECORDED_REFERENCES));
static PG_LINKING_REPOSITORIES: LazyLock<String> =
    LazyLock::new(|| postgres_placeholders(LINKING_REPOSITORIES));
static PG_FORGET_BLOB: LazyLock<Vec<String>> = LazyLock::new(|| {
    FORGET_BLOB
        .iter()
        .map(|s| postgres_placeholders(s))
        .collect()
});

#[async_trait]
impl FsckStore for PostgresStore {
    async fn blob_totals(&self) -> Result<(u64, u64), MetadataError> {
        let row = sqlx::query(BLOB_TOTALS)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok((row.get::<i64, _>(0) as u64, row.get::<i64, _>(1) as u64))
    }

    async fn blobs_after(
        &self,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<(Digest, u64)>, MetadataError> {
        let rows = sqlx::query(PG_BLOBS_AFTER.as_str())
            .bind(after.map(Digest::to_string).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| Ok((stored(r.get::<&str, _>(0))?, r.get::<i64, _>(1) as u64)))
            .collect()
    }

    async fn manifests_after(
        &self,
        after: Option<(&RepoName, &Digest)>,
        limit: u32,
    ) -> Result<Vec<ManifestRecord>, MetadataError> {
        let (repo, digest) = after
            .map(|(r, d)| (r.to_string(), d.to_string()))
            .unwrap_or_default();
        let rows = sqlx::query(PG_MANIFESTS_AFTER.as_str())
            .bind(repo)
            .bind(digest)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(ManifestRecord {
                    repository: stored(r.get::<&str, _>(0))?,
                    digest: stored(r.get::<&str, _>(1))?,
                    media_type: r.get(2),
                    content: r.get(3),
                })
            })
            .collect()
    }

    async fn recorded_references(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<RecordedReferences, MetadataError> {
        let rows = sqlx::query(PG_RECORDED_REFERENCES.as_str())
            .bind(repo.as_str())
            .bind(digest.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let rows = rows
            .iter()
            .map(|r| Ok((r.get::<String, _>(0), stored(r.get::<&str, _>(1))?)))
            .collect::<Result<Vec<_>, MetadataError>>()?;
        Ok(sort_references(rows))
    }

    async fn tag_count(&self) -> Result<u64, MetadataError> {
        let row = sqlx::query(TAG_COUNT)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    async fn dangling_tags(&self) -> Result<Vec<DanglingTag>, MetadataError> {
        let rows = sqlx::query(DANGLING_TAGS)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(DanglingTag {
                    repository: stored(r.get::<&str, _>(0))?,
                    tag: r.get(1),
                    digest: stored(r.get::<&str, _>(2))?,
                })
            })
            .collect()
    }

    async fn begin_blob_quarantine(&self, digest: &Digest) -> Result<Option<u64>, MetadataError> {
        let mut tx = self.begin().await?;
        lock_digest(&mut tx, digest).await?;
        let digest = digest.to_string();
        let Some(size) = sqlx::query("SELECT size FROM blobs WHERE digest = $1")
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .map(|r| r.get::<i64, _>(0) as u64)
        else {
            return Ok(None);
        };
        mark_pending(&mut tx, &digest).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(size))
    }

    async fn forget_quarantined_blob(
        &self,
        digest: &Digest,
    ) -> Result<Vec<RepoName>, MetadataError> {
        let mut tx = self.begin().await?;
        lock_digest(&mut tx, digest).await?;
        let digest = digest.to_string();
        let repos = sqlx::query(PG_LINKING_REPOSITORIES.as_str())
            .bind(&digest)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?
            .iter()
            .map(|r| stored(r.get::<&str, _>(0)))
            .collect::<Result<Vec<RepoName>, _>>()?;
        for sql in PG_FORGET_BLOB.iter() {
            sqlx::query(sql.as_str())
                .bind(&digest)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(repos)
    }
}
