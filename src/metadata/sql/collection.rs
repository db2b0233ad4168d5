//! [`GcStore`] on SQL: garbage collection's queries and steps. Re-checks run under locks a
//! concurrent push also takes: on PostgreSQL, the manifest row (`FOR UPDATE` here, `FOR SHARE`
//! or a foreign-key check in a push) and a per-digest lock (exclusive here, shared in
//! `link_blob` and `put_manifest`); on SQLite, the one writer serializes them.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use oci::{Digest, RepoName};
use sqlx::Row;

use super::{json_list, sql, LockMode, SqlStore};
use crate::metadata::gc::{
    blob_lock_key, GcStore, BLOB_LOCK_CLASS, BLOB_STILL_UNREACHABLE, EXPIRE_HISTORY,
    STILL_UNREACHABLE, TAKE_LEASE, UNREACHABLE_BLOBS, UNREACHABLE_MANIFESTS,
};
use crate::metadata::{now_millis, stored, Result};

impl SqlStore {
    /// Takes the exclusive per-digest lock for the rest of the transaction.
    pub(super) async fn lock_digest(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        digest: &Digest,
    ) -> Result<()> {
        self.lock(
            tx,
            LockMode::Exclusive,
            BLOB_LOCK_CLASS,
            blob_lock_key(digest),
        )
        .await
    }
}

pub(super) async fn mark_pending(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    digest: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO blob_deletions (digest, started_at) VALUES ($1, $2)
         ON CONFLICT(digest) DO UPDATE SET started_at = excluded.started_at",
    )
    .bind(digest)
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl GcStore for SqlStore {
    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = now_millis();
        let done = sqlx::query(TAKE_LEASE)
            .bind(name)
            .bind(holder)
            .bind(now + ttl.as_millis() as i64)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn expire_tag_history(&self, before: i64) -> Result<u64> {
        let done = sqlx::query(EXPIRE_HISTORY)
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn unreachable_manifests(
        &self,
        created_since: i64,
        history_since: i64,
    ) -> Result<Vec<(RepoName, Digest)>> {
        let rows = sqlx::query(UNREACHABLE_MANIFESTS.as_str())
            .bind(created_since)
            .bind(history_since)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok((stored(r.get::<&str, _>(0))?, stored(r.get::<&str, _>(1))?)))
            .collect()
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
        let still = sqlx::query(STILL_UNREACHABLE)
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
        let rows = sqlx::query(UNREACHABLE_BLOBS.as_str())
            .bind(created_since)
            .bind(history_since)
            .bind(linked_before)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok((stored(r.get::<&str, _>(0))?, r.get::<i64, _>(1) as u64)))
            .collect()
    }

    async fn begin_blob_deletion(&self, digest: &Digest, linked_before: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        self.lock_digest(&mut tx, digest).await?;
        let digest = digest.to_string();
        let still = sqlx::query(BLOB_STILL_UNREACHABLE)
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
        mark_pending(&mut tx, &digest).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn begin_orphan_deletion(&self, digest: &Digest) -> Result<bool> {
        let mut tx = self.begin().await?;
        self.lock_digest(&mut tx, digest).await?;
        let digest = digest.to_string();
        let known = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_some() {
            return Ok(false);
        }
        mark_pending(&mut tx, &digest).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn end_blob_deletion(&self, digest: &Digest) -> Result<()> {
        sqlx::query("DELETE FROM blob_deletions WHERE digest = $1")
            .bind(digest.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn pending_blob_deletions(&self) -> Result<Vec<(Digest, i64)>> {
        let rows = sqlx::query("SELECT digest, started_at FROM blob_deletions ORDER BY digest")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok((stored(r.get::<&str, _>(0))?, r.get::<i64, _>(1))))
            .collect()
    }

    async fn known_blobs(&self, digests: &[Digest]) -> Result<HashSet<Digest>> {
        let mut known = HashSet::new();
        for batch in digests.chunks(1000) {
            let rows = sqlx::query(sql!(
                self,
                "SELECT digest FROM blobs WHERE digest IN (SELECT value FROM json_each($1))"
            ))
            .bind(json_list(batch))
            .fetch_all(&self.reader)
            .await?;
            for r in &rows {
                known.insert(stored(r.get::<&str, _>(0))?);
            }
        }
        Ok(known)
    }
}
