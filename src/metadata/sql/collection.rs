//! [`GcStore`] on SQL: garbage collection's queries and steps. Re-checks run under locks a
//! concurrent push also takes: on PostgreSQL, the manifest row (`FOR UPDATE` here, `FOR SHARE`
//! or a foreign-key check in a push) and a per-digest lock (exclusive here, shared in
//! `link_blob` and `put_manifest`); on SQLite, the one writer serializes them.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use oci::{Digest, RepoName};
use sqlx::Row;

use super::{digest_and_size, first, json_list, sql, SqlStore, Tx};
use crate::metadata::gc::GcStore;
use crate::metadata::{now_millis, stored, Result};

/// The manifests nothing keeps alive; `$1` = created since, `$2` = history ended since.
/// Edges run from a manifest to what it keeps alive: an index to its children, a subject to
/// its referrers.
macro_rules! live_manifests {
    () => {
        "WITH RECURSIVE edges(repository_id, parent, digest) AS (
    SELECT repository_id, manifest_digest, child_digest FROM manifest_references
        WHERE child_kind = 'manifest'
    UNION ALL
    SELECT repository_id, subject_digest, digest FROM manifests
        WHERE subject_digest IS NOT NULL
),
live(repository_id, digest) AS (
    SELECT repository_id, manifest_digest FROM tags
    UNION
    SELECT repository_id, manifest_digest FROM tag_history WHERE ended_at >= $2
    UNION
    SELECT repository_id, digest FROM manifests WHERE created_at >= $1
    UNION
    SELECT e.repository_id, e.digest FROM edges e
        JOIN live l ON e.repository_id = l.repository_id AND e.parent = l.digest
)"
    };
}

/// Records a pending deletion of `digest` and commits `tx`.
pub(super) async fn commit_pending_deletion(mut tx: Tx, digest: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO blob_deletions (digest, started_at) VALUES ($1, $2)
         ON CONFLICT(digest) DO UPDATE SET started_at = excluded.started_at",
    )
    .bind(digest)
    .bind(now_millis())
    .execute(&mut *tx)
    .await?;
    Ok(tx.commit().await?)
}

#[async_trait]
impl GcStore for SqlStore {
    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = now_millis();
        let query = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
            .bind(name)
            .bind(holder)
            .bind(now + ttl.as_millis() as i64)
            .bind(now);
        Ok(self.write(query).await? == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let query = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder);
        self.write(query).await.map(drop)
    }

    async fn expire_tag_history(&self, before: i64) -> Result<u64> {
        let query = sqlx::query(
            "DELETE FROM tag_history WHERE ended_at < $1
             OR NOT EXISTS (SELECT 1 FROM manifests m
                 WHERE m.repository_id = tag_history.repository_id
                   AND m.digest = tag_history.manifest_digest)",
        )
        .bind(before);
        self.write(query).await
    }

    async fn unreachable_manifests(
        &self,
        created_since: i64,
        history_since: i64,
    ) -> Result<Vec<(RepoName, Digest)>> {
        let query = sqlx::query(concat!(
            live_manifests!(),
            "
             SELECT r.name, m.digest FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             LEFT JOIN live l ON l.repository_id = m.repository_id AND l.digest = m.digest
             WHERE l.digest IS NULL
             ORDER BY r.name, m.digest"
        ))
        .bind(created_since)
        .bind(history_since);
        self.read_all(query, |r| Ok((stored(r.get(0))?, stored(r.get(1))?)))
            .await
    }

    async fn delete_unreachable_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        created_since: i64,
        history_since: i64,
    ) -> Result<bool> {
        let digest = digest.to_string();
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let mut tx = self.begin().await?;
        // The row lock waits for a push that is tagging this manifest or naming it as a child
        // (they hold a share lock on it), and makes later ones wait for this transaction.
        let Some(repo_id) = sqlx::query_scalar::<_, i64>(sql!(
            self,
            "SELECT m.repository_id FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.digest = $2 FOR UPDATE OF m"
        ))
        .bind(repo.as_str())
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        // Still unreachable by the direct conditions a concurrent writer can change?
        let still = sqlx::query(
            "SELECT 1 FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2 AND m.created_at < $3
             AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = $1 AND t.manifest_digest = $2)
             AND NOT EXISTS (SELECT 1 FROM tag_history h
                 WHERE h.repository_id = $1 AND h.manifest_digest = $2 AND h.ended_at >= $4)
             AND NOT EXISTS (SELECT 1 FROM manifest_references mr JOIN manifests p
                     ON p.repository_id = mr.repository_id AND p.digest = mr.manifest_digest
                 WHERE mr.repository_id = $1 AND mr.child_kind = 'manifest' AND mr.child_digest = $2
                 AND (p.created_at >= $3
                      OR EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = $1 AND t.manifest_digest = p.digest)))
             AND NOT EXISTS (SELECT 1 FROM tags t
                 WHERE t.repository_id = $1 AND m.subject_digest IS NOT NULL AND t.manifest_digest = m.subject_digest)",
        )
            .bind(repo_id)
            .bind(&digest)
            .bind(created_since)
            .bind(history_since)
            .fetch_optional(&mut *tx)
            .await?;
        if still.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(&digest)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM manifest_contents WHERE digest = $1
             AND NOT EXISTS (SELECT 1 FROM manifests WHERE digest = $1)",
        )
        .bind(&digest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn unreachable_blobs(
        &self,
        linked_before: i64,
        created_since: i64,
        history_since: i64,
    ) -> Result<Vec<(Digest, u64)>> {
        let query = sqlx::query(concat!(
            live_manifests!(),
            ",
             live_blobs(digest) AS (
                 SELECT DISTINCT mr.child_digest FROM manifest_references mr
                 JOIN live l ON l.repository_id = mr.repository_id AND l.digest = mr.manifest_digest
                 WHERE mr.child_kind = 'blob'
             )
             SELECT b.digest, b.size FROM blobs b
             LEFT JOIN live_blobs lb ON lb.digest = b.digest
             WHERE b.linked_at < $3 AND lb.digest IS NULL
             ORDER BY b.digest"
        ))
        .bind(created_since)
        .bind(history_since)
        .bind(linked_before);
        self.read_all(query, digest_and_size).await
    }

    async fn begin_blob_deletion(&self, digest: &Digest, linked_before: i64) -> Result<bool> {
        let (mut tx, digest) = self.begin_exclusive(digest).await?;
        // No manifest references it and no link is newer than the cutoff?
        let still = sqlx::query(
            "SELECT 1 FROM blobs b WHERE b.digest = $1 AND b.linked_at < $2
             AND NOT EXISTS (SELECT 1 FROM manifest_references mr
                 WHERE mr.child_kind = 'blob' AND mr.child_digest = $1)",
        )
        .bind(&digest)
        .bind(linked_before)
        .fetch_optional(&mut *tx)
        .await?;
        if still.is_none() {
            return Ok(false);
        }
        for sql in [
            "DELETE FROM repository_blobs WHERE digest = $1",
            "DELETE FROM blobs WHERE digest = $1",
        ] {
            sqlx::query(sql).bind(&digest).execute(&mut *tx).await?;
        }
        commit_pending_deletion(tx, &digest).await?;
        Ok(true)
    }

    async fn begin_orphan_deletion(&self, digest: &Digest) -> Result<bool> {
        let (mut tx, digest) = self.begin_exclusive(digest).await?;
        let known = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_some() {
            return Ok(false);
        }
        commit_pending_deletion(tx, &digest).await?;
        Ok(true)
    }

    async fn end_blob_deletion(&self, digest: &Digest) -> Result<()> {
        let query =
            sqlx::query("DELETE FROM blob_deletions WHERE digest = $1").bind(digest.to_string());
        self.write(query).await.map(drop)
    }

    async fn pending_blob_deletions(&self) -> Result<Vec<(Digest, i64)>> {
        let query = sqlx::query("SELECT digest, started_at FROM blob_deletions ORDER BY digest");
        self.read_all(query, |r| Ok((first(r)?, r.get(1)))).await
    }

    async fn known_blobs(&self, digests: &[Digest]) -> Result<HashSet<Digest>> {
        let mut known = HashSet::new();
        for batch in digests.chunks(1000) {
            let query = sqlx::query(sql!(
                self,
                "SELECT digest FROM blobs WHERE digest IN (SELECT value FROM json_each($1))"
            ))
            .bind(json_list(batch));
            known.extend(self.read_all::<_, Vec<_>>(query, first).await?);
        }
        Ok(known)
    }
}
