//! [`FsckStore`] on SQL: the integrity check's queries and repair steps. Step 1 takes the
//! per-digest lock exclusively, as a collector does, so it waits for a `link_blob` of the
//! digest in flight and makes later ones see the pending deletion (on SQLite the one writer
//! serializes them).

use async_trait::async_trait;
use oci::{Digest, RepoName};
use sqlx::Row;

use super::collection::commit_pending_deletion;
use super::{digest_and_size, SqlStore};
use crate::metadata::fsck::{DanglingTag, FsckStore, ManifestRecord, RecordedReferences};
use crate::metadata::{stored, Result};

#[async_trait]
impl FsckStore for SqlStore {
    async fn blob_totals(&self) -> Result<(u64, u64)> {
        let (count, size): (i64, i64) =
            sqlx::query_as("SELECT count(*), CAST(coalesce(sum(size), 0) AS BIGINT) FROM blobs")
                .fetch_one(&self.reader)
                .await?;
        Ok((count as u64, size as u64))
    }

    async fn blobs_after(&self, after: Option<&Digest>, limit: u32) -> Result<Vec<(Digest, u64)>> {
        let query = sqlx::query(
            "SELECT digest, size FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2",
        )
        .bind(after.map(Digest::to_string).unwrap_or_default())
        .bind(i64::from(limit));
        self.read_all(query, digest_and_size).await
    }

    async fn manifests_after(
        &self,
        after: Option<(&RepoName, &Digest)>,
        limit: u32,
    ) -> Result<Vec<ManifestRecord>> {
        let (repo, digest) = after
            .map(|(r, d)| (r.to_string(), d.to_string()))
            .unwrap_or_default();
        let query = sqlx::query(
            "SELECT r.name, m.digest, m.media_type, c.content, m.sparse FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             LEFT JOIN manifest_contents c ON c.digest = m.digest
             WHERE r.name > $1 OR (r.name = $1 AND m.digest > $2)
             ORDER BY r.name, m.digest LIMIT $3",
        )
        .bind(repo)
        .bind(digest)
        .bind(i64::from(limit));
        self.read_all(query, |r| {
            Ok(ManifestRecord {
                repository: stored(r.get(0))?,
                digest: stored(r.get(1))?,
                media_type: r.get(2),
                content: r.get(3),
                sparse: r.get::<i64, _>(4) != 0,
            })
        })
        .await
    }

    async fn recorded_references(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<RecordedReferences> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT mr.child_kind, mr.child_digest FROM manifest_references mr
             JOIN repositories r ON r.id = mr.repository_id
             WHERE r.name = $1 AND mr.manifest_digest = $2 ORDER BY mr.child_digest",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_all(&self.reader)
        .await?;
        let mut refs = RecordedReferences::default();
        for (kind, digest) in rows {
            let digest = stored(&digest)?;
            match kind.as_str() {
                "manifest" => refs.children.push(digest),
                _ => refs.blobs.push(digest),
            }
        }
        Ok(refs)
    }

    async fn tag_count(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tags")
            .fetch_one(&self.reader)
            .await?;
        Ok(count as u64)
    }

    async fn dangling_tags(&self) -> Result<Vec<DanglingTag>> {
        let query = sqlx::query(
            "SELECT r.name, t.name, t.manifest_digest FROM tags t
             JOIN repositories r ON r.id = t.repository_id
             LEFT JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
             WHERE m.digest IS NULL
             ORDER BY r.name, t.name",
        );
        self.read_all(query, |r| {
            Ok(DanglingTag {
                repository: stored(r.get(0))?,
                tag: r.get(1),
                digest: stored(r.get(2))?,
            })
        })
        .await
    }

    async fn begin_blob_quarantine(&self, digest: &Digest) -> Result<Option<u64>> {
        let (mut tx, digest) = self.begin_exclusive(digest).await?;
        let Some(size) = sqlx::query_scalar::<_, i64>("SELECT size FROM blobs WHERE digest = $1")
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        commit_pending_deletion(tx, &digest).await?;
        Ok(Some(size as u64))
    }

    async fn forget_quarantined_blob(&self, digest: &Digest) -> Result<Vec<RepoName>> {
        let (mut tx, digest) = self.begin_exclusive(digest).await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = $1 ORDER BY r.name",
        )
        .bind(&digest)
        .fetch_all(&mut *tx)
        .await?;
        let repos = names.iter().map(|r| stored(r)).collect::<Result<_>>()?;
        for sql in [
            "DELETE FROM repository_blobs WHERE digest = $1",
            "DELETE FROM blobs WHERE digest = $1",
            "DELETE FROM blob_deletions WHERE digest = $1",
        ] {
            sqlx::query(sql).bind(&digest).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(repos)
    }
}
