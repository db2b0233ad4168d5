//! [`FsckStore`] on SQL: the integrity check's queries and repair steps. Step 1 takes the
//! per-digest lock exclusively, as a collector does, so it waits for a `link_blob` of the
//! digest in flight and makes later ones see the pending deletion (on SQLite the one writer
//! serializes them).

use async_trait::async_trait;
use oci::{Digest, RepoName};
use sqlx::Row;

use super::collection::mark_pending;
use super::SqlStore;
use crate::metadata::fsck::{
    sort_references, DanglingTag, FsckStore, ManifestRecord, RecordedReferences, BLOBS_AFTER,
    BLOB_TOTALS, DANGLING_TAGS, FORGET_BLOB, LINKING_REPOSITORIES, MANIFESTS_AFTER,
    RECORDED_REFERENCES, TAG_COUNT,
};
use crate::metadata::{stored, MetadataError};

#[async_trait]
impl FsckStore for SqlStore {
    async fn blob_totals(&self) -> Result<(u64, u64), MetadataError> {
        let row = sqlx::query(BLOB_TOTALS).fetch_one(&self.reader).await?;
        Ok((row.get::<i64, _>(0) as u64, row.get::<i64, _>(1) as u64))
    }

    async fn blobs_after(
        &self,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<(Digest, u64)>, MetadataError> {
        let rows = sqlx::query(BLOBS_AFTER)
            .bind(after.map(Digest::to_string).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
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
        let rows = sqlx::query(MANIFESTS_AFTER)
            .bind(repo)
            .bind(digest)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ManifestRecord {
                    repository: stored(r.get::<&str, _>(0))?,
                    digest: stored(r.get::<&str, _>(1))?,
                    media_type: r.get(2),
                    content: r.get(3),
                    sparse: r.get::<i64, _>(4) != 0,
                })
            })
            .collect()
    }

    async fn recorded_references(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<RecordedReferences, MetadataError> {
        let rows = sqlx::query(RECORDED_REFERENCES)
            .bind(repo.as_str())
            .bind(digest.to_string())
            .fetch_all(&self.reader)
            .await?;
        let rows = rows
            .iter()
            .map(|r| Ok((r.get::<String, _>(0), stored(r.get::<&str, _>(1))?)))
            .collect::<Result<Vec<_>, MetadataError>>()?;
        Ok(sort_references(rows))
    }

    async fn tag_count(&self) -> Result<u64, MetadataError> {
        let row = sqlx::query(TAG_COUNT).fetch_one(&self.reader).await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    async fn dangling_tags(&self) -> Result<Vec<DanglingTag>, MetadataError> {
        let rows = sqlx::query(DANGLING_TAGS).fetch_all(&self.reader).await?;
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
        self.lock_digest(&mut tx, digest).await?;
        let digest = digest.to_string();
        let Some(size) = sqlx::query("SELECT size FROM blobs WHERE digest = $1")
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get::<i64, _>(0) as u64)
        else {
            return Ok(None);
        };
        mark_pending(&mut tx, &digest).await?;
        tx.commit().await?;
        Ok(Some(size))
    }

    async fn forget_quarantined_blob(
        &self,
        digest: &Digest,
    ) -> Result<Vec<RepoName>, MetadataError> {
        let mut tx = self.begin().await?;
        self.lock_digest(&mut tx, digest).await?;
        let digest = digest.to_string();
        let repos = sqlx::query(LINKING_REPOSITORIES)
            .bind(&digest)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| stored(r.get::<&str, _>(0)))
            .collect::<Result<Vec<RepoName>, _>>()?;
        for statement in FORGET_BLOB {
            sqlx::query(statement)
                .bind(&digest)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(repos)
    }
}
