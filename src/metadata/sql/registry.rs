//! [`MetadataStore`] on SQL: repositories, blobs, uploads, manifests, tags and referrers.
//!
//! What SQLite gets from serializing every writer is obtained on PostgreSQL per statement:
//! inserts that may race (a repository or blob link created by two pushes at once) use
//! `ON CONFLICT DO NOTHING` and select again, a manifest's tags are written in name order so
//! two pushes never deadlock, and the read-then-write sequences take a lock
//! ([`SqlStore::lock`]) or a row lock. Text columns compare bytewise on both (`COLLATE "C"` on
//! PostgreSQL), so listings and pagination order the same.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use oci::{Digest, RepoName, Tag};
use sqlx::any::{AnyExecutor, AnyRow};
use sqlx::Row;

use super::notifications;
use super::{
    changed_one, digest_and_size, first, has_nul, json_list, lock_key, ordering_bound, sql,
    LockMode, SqlStore, Tx,
};
use crate::metadata::sqlite::cache;
use crate::metadata::{
    backend, gc, now_millis, stored, Describer, ManifestKey, ManifestSummary, MetadataError,
    MetadataStore, NewManifest, QuotaExceeded, Referrer, Result, StoredManifest, TagDetail,
    TagHistoryEntry, TagQuery, Totals, UploadQuota, UploadRecord,
};
use crate::storage::UploadId;

/// Creates the repository unless it exists (pushes to a new one may race to create it).
async fn ensure_repo<'c>(db: impl AnyExecutor<'c>, repo: &RepoName, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT(name) DO NOTHING",
    )
    .bind(repo.as_str())
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// A query reading the columns [`upload_row`] expects, followed by `$tail`.
macro_rules! select_uploads {
    ($tail:literal) => {
        concat!(
            "SELECT u.id, r.name, u.algorithm, u.length, u.resumable, u.hash_state, u.progress, ",
            "u.updated_at FROM uploads u JOIN repositories r ON r.id = u.repository_id",
            $tail
        )
    };
}

fn upload_row(r: &AnyRow) -> Result<UploadRecord> {
    Ok(UploadRecord {
        id: UploadId::parse(r.get::<&str, _>(0))
            .ok_or_else(|| MetadataError::Backend("corrupt upload id".into()))?,
        repository: stored(r.get(1))?,
        algorithm: stored(r.get(2))?,
        length: r.get::<i64, _>(3) as u64,
        resumable: r.get::<i64, _>(4) != 0,
        hash_state: r.get(5),
        progress: r.get(6),
        updated_at: r.get(7),
    })
}

/// A query reading the columns [`describer_row`] expects for the manifests of repository `$1`
/// that match `$condition`.
macro_rules! select_describers {
    ($condition:literal) => {
        concat!(
            "SELECT m.signed_digest, m.digest, m.kind, COALESCE(m.artifact_type, m.config_media_type),
                    m.total_size,
                    (SELECT min(t.name) FROM tags t
                     WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND ",
            $condition
        )
    };
}

fn describer_row(r: &AnyRow) -> Result<Describer> {
    Ok(Describer {
        target: stored(r.get(0))?,
        digest: stored(r.get(1))?,
        kind: r.get(2),
        artifact_type: r.get(3),
        total_size: r.get::<i64, _>(4) as u64,
        tag: r.get(5),
    })
}

#[async_trait]
impl MetadataStore for SqlStore {
    async fn probe(&self, probe: &str) -> Result<()> {
        let at = now_millis();
        let write = sqlx::query(
            "INSERT INTO health_probes (name, at) VALUES ($1, $2)
             ON CONFLICT(name) DO UPDATE SET at = excluded.at",
        )
        .bind(probe)
        .bind(at);
        self.write(write).await?;
        let read = sqlx::query("SELECT at FROM health_probes WHERE name = $1").bind(probe);
        let found = self.read_one(read, |r| Ok(r.get::<i64, _>(0))).await;
        let delete = sqlx::query("DELETE FROM health_probes WHERE name = $1").bind(probe);
        let deleted = self.write(delete).await;
        match found? {
            Some(read) if read == at => deleted.map(|_| ()),
            _ => Err(MetadataError::Backend(
                "the probe's row did not read back".into(),
            )),
        }
    }

    async fn totals(&self) -> Result<Totals> {
        // Three aggregates in one statement, so they are of one snapshot. The sum is cast
        // because PostgreSQL sums BIGINTs as NUMERIC.
        let query = sqlx::query(
            "SELECT (SELECT count(*) FROM blobs),
                    (SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM blobs),
                    (SELECT count(*) FROM uploads)",
        );
        let row = self
            .read_one(query, |r| {
                let n = |i: usize| u64::try_from(r.get::<i64, _>(i)).unwrap_or(0);
                Ok(Totals {
                    blobs: n(0),
                    blob_bytes: n(1),
                    uploads: n(2),
                })
            })
            .await?;
        Ok(row.unwrap_or_default())
    }

    async fn ensure_repository(&self, repo: &RepoName) -> Result<()> {
        ensure_repo(&self.writer, repo, now_millis()).await
    }

    async fn repository_exists(&self, repo: &RepoName) -> Result<bool> {
        if self.cache.as_ref().is_some_and(|c| c.exists(repo.as_str())) {
            return Ok(true);
        }
        let ticket = self.cache.as_ref().map(|c| c.ticket());
        let query = sqlx::query("SELECT 1 FROM repositories WHERE name = $1").bind(repo.as_str());
        let found = self.read_one(query, |_| Ok(())).await?.is_some();
        if let (Some(cache), Some(ticket), true) = (&self.cache, ticket, found) {
            cache.store_exists(ticket, repo.as_str());
        }
        Ok(found)
    }

    async fn list_repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<RepoName>> {
        let query =
            sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(ordering_bound(after.unwrap_or("")))
                .bind(i64::from(limit));
        self.read_all(query, first).await
    }

    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()> {
        let now = now_millis();
        let mut tx = self.begin().await?;
        // Shared with other pushes, exclusive with a collector deleting this digest.
        self.lock_digest(&mut tx, LockMode::Shared, digest).await?;
        let digest = digest.to_string();
        let pending: Option<i64> =
            sqlx::query_scalar("SELECT started_at FROM blob_deletions WHERE digest = $1")
                .bind(&digest)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(started_at) = pending {
            if started_at > now - gc::STALE_DELETION.as_millis() as i64 {
                // A collector is deleting these bytes; the push writes them again after.
                return Err(MetadataError::Conflict);
            }
            sqlx::query("DELETE FROM blob_deletions WHERE digest = $1")
                .bind(&digest)
                .execute(&mut *tx)
                .await?;
        }
        ensure_repo(&mut *tx, repo, now).await?;
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, linked_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT(digest) DO UPDATE SET linked_at = excluded.linked_at",
        )
        .bind(&digest)
        .bind(size as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest, created_at)
             SELECT id, $2, $3 FROM repositories WHERE name = $1
             ON CONFLICT DO NOTHING",
        )
        .bind(repo.as_str())
        .bind(&digest)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map_err(backend)
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let query = sqlx::query(
            "DELETE FROM repository_blobs WHERE digest = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo.as_str())
        .bind(digest.to_string());
        Ok(self.write(query).await? > 0)
    }

    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let query = sqlx::query(
            "SELECT b.size FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repository_id
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string());
        self.read_one(query, |r| Ok(r.get::<i64, _>(0) as u64))
            .await
    }

    async fn linked_blobs(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<HashMap<Digest, u64>> {
        // One round trip: the digests travel as one JSON list.
        let query = sqlx::query(sql!(
            self,
            "SELECT b.digest, b.size FROM repository_blobs rb
             JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository_id = (SELECT id FROM repositories WHERE name = $1)
               AND rb.digest IN (SELECT value FROM json_each($2))"
        ))
        .bind(repo.as_str())
        .bind(json_list(digests));
        self.read_all(query, digest_and_size).await
    }

    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let query =
            sqlx::query("SELECT size FROM blobs WHERE digest = $1").bind(digest.to_string());
        self.read_one(query, |r| Ok(r.get::<i64, _>(0) as u64))
            .await
    }

    async fn create_upload(
        &self,
        upload: &UploadRecord,
        owner: &str,
        quota: UploadQuota,
    ) -> Result<Result<(), QuotaExceeded>> {
        let now = now_millis();
        let mut tx = self.begin().await?;
        ensure_repo(&mut *tx, &upload.repository, now).await?;
        // Sessions opening for the same owner or repository on any replica wait here until
        // this one has counted and inserted. Always the owner first, then the repository, so
        // two openings never wait for each other in a circle.
        for (class, key) in [(b"uplo", owner), (b"uplr", upload.repository.as_str())] {
            self.lock(&mut tx, LockMode::Exclusive, class, lock_key(key))
                .await?;
        }
        let (owner_open, repository_open) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM uploads WHERE owner = $1),
                    (SELECT count(*) FROM uploads
                     WHERE repository_id = (SELECT id FROM repositories WHERE name = $2))",
        )
        .bind(owner)
        .bind(upload.repository.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if let Some(exceeded) = quota.exceeded(owner_open, repository_open) {
            // Rolled back on drop, with the repository it may have created.
            return Ok(Err(exceeded));
        }
        sqlx::query(
            "INSERT INTO uploads (id, repository_id, algorithm, length, created_at, updated_at, resumable, owner)
             SELECT $1, id, $3, $4, $5, $5, $6, $7 FROM repositories WHERE name = $2",
        )
        .bind(upload.id.as_str())
        .bind(upload.repository.as_str())
        .bind(upload.algorithm.as_str())
        .bind(upload.length as i64)
        .bind(now)
        .bind(i64::from(upload.resumable))
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn upload(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        let query = sqlx::query(select_uploads!(" WHERE u.id = $1")).bind(id.as_str());
        self.read_one(query, upload_row).await
    }

    async fn advance_upload(
        &self,
        id: &UploadId,
        from: u64,
        to: u64,
        hash_state: &[u8],
        progress: Option<&[u8]>,
    ) -> Result<()> {
        let query = sqlx::query(
            "UPDATE uploads SET length = $3, updated_at = $4, hash_state = $5, progress = $6
             WHERE id = $1 AND length = $2",
        )
        .bind(id.as_str())
        .bind(from as i64)
        .bind(to as i64)
        .bind(now_millis())
        .bind(hash_state)
        .bind(progress);
        changed_one(self.write(query).await?, MetadataError::Conflict)
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<()> {
        let query = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id.as_str());
        self.write(query).await.map(drop)
    }

    async fn list_uploads(&self) -> Result<Vec<UploadRecord>> {
        let query = sqlx::query(select_uploads!(""));
        self.read_all(query, upload_row).await
    }

    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tags: &[Tag],
    ) -> Result<()> {
        let now = now_millis();
        let digest = manifest.digest.to_string();
        let annotations = manifest
            .annotations
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(backend)?;
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let mut tx = self.begin().await?;
        ensure_repo(&mut *tx, repo, now).await?;
        let repo_id: i64 = sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let sparse = self.verify_references(&mut tx, repo_id, manifest).await?;
        sqlx::query("INSERT INTO manifest_contents (digest, content) VALUES ($1, $2) ON CONFLICT(digest) DO NOTHING")
            .bind(&digest)
            .bind(&manifest.content)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, size, artifact_type,
                 config_media_type, subject_digest, annotations, created_at,
                 kind, total_size, signed_digest, details, sparse)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT(repository_id, digest) DO NOTHING",
        )
        .bind(repo_id)
        .bind(&digest)
        .bind(&manifest.media_type)
        .bind(manifest.content.len() as i64)
        .bind(&manifest.artifact_type)
        .bind(&manifest.config_media_type)
        .bind(manifest.subject.as_ref().map(Digest::to_string))
        .bind(&annotations)
        .bind(now)
        .bind(manifest.facts.kind.as_str())
        .bind(manifest.facts.total_size as i64)
        .bind(manifest.facts.signed.as_ref().map(Digest::to_string))
        .bind(serde_json::Value::Object(manifest.facts.details.clone()).to_string())
        .bind(i64::from(sparse))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 && (sparse || manifest.facts.signed.is_some()) {
            // Pushed again: under a cosign tag it says what it signs; with something it names
            // absent (a child deleted since, say) it is sparse from now on. The mark is never
            // cleared, so the integrity check keeps accepting what was accepted once.
            sqlx::query(
                "UPDATE manifests SET signed_digest = coalesce(signed_digest, $3),
                     sparse = CASE WHEN $4 = 1 THEN 1 ELSE sparse END
                 WHERE repository_id = $1 AND digest = $2",
            )
            .bind(repo_id)
            .bind(&digest)
            .bind(manifest.facts.signed.as_ref().map(Digest::to_string))
            .bind(i64::from(sparse))
            .execute(&mut *tx)
            .await?;
        }
        // One statement per list. `WHERE true` tells SQLite's parser that ON CONFLICT is not
        // a join constraint.
        let references = [(&manifest.blobs, "blob"), (&manifest.children, "manifest")];
        for (children, kind) in references {
            if inserted.rows_affected() == 0 || children.is_empty() {
                continue;
            }
            sqlx::query(sql!(
                self,
                "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_kind)
                 SELECT $1, $2, value, $3 FROM json_each($4) WHERE true ON CONFLICT DO NOTHING"
            ))
            .bind(repo_id)
            .bind(&digest)
            .bind(kind)
            .bind(json_list(children))
            .execute(&mut *tx)
            .await?;
        }
        // In name order, so two pushes moving overlapping tags lock them in the same order (and
        // once each: one statement may not update a row twice).
        let tags: BTreeSet<&str> = tags.iter().map(Tag::as_str).collect();
        if !tags.is_empty() {
            sqlx::query(sql!(
            self,
            "INSERT INTO tags (repository_id, name, manifest_digest, updated_at)
             SELECT $1, value, $2, $3 FROM json_each($4) WHERE true
             ON CONFLICT(repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest,
                 updated_at = excluded.updated_at"
        ))
        .bind(repo_id)
        .bind(&digest)
        .bind(now)
        .bind(json_list(&tags))
        .execute(&mut *tx)
        .await?;
            // The `repo_push` deliveries commit with the tags, so none is lost by a crash.
            let data = notifications::tags_data(tags.iter().copied());
            notifications::queue_event(&mut tx, repo_id, "repo_push", &data, now).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn manifest(
        &self,
        repo: &RepoName,
        key: ManifestKey<'_>,
    ) -> Result<Option<StoredManifest>> {
        let digest_text;
        let lookup = match key {
            ManifestKey::Tag(tag) => cache::Lookup::Tag(tag.as_str()),
            ManifestKey::Digest(digest) => {
                digest_text = digest.to_string();
                cache::Lookup::Digest(&digest_text)
            }
        };
        if let Some(hit) = self
            .cache
            .as_ref()
            .and_then(|c| c.manifest(repo.as_str(), &lookup))
        {
            return Ok(Some(StoredManifest::clone(&hit)));
        }
        let ticket = self.cache.as_ref().map(|c| c.ticket());
        let (sql, value) = match lookup {
            cache::Lookup::Tag(tag) => (
                "SELECT m.digest, m.media_type, c.content FROM tags t
                 JOIN repositories r ON r.id = t.repository_id
                 JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
                 JOIN manifest_contents c ON c.digest = m.digest
                 WHERE r.name = $1 AND t.name = $2",
                tag,
            ),
            cache::Lookup::Digest(digest) => (
                "SELECT m.digest, m.media_type, c.content FROM manifests m
                 JOIN repositories r ON r.id = m.repository_id
                 JOIN manifest_contents c ON c.digest = m.digest
                 WHERE r.name = $1 AND m.digest = $2",
                digest,
            ),
        };
        let query = sqlx::query(sql).bind(repo.as_str()).bind(value);
        let Some(r) = query.fetch_optional(&self.reader).await? else {
            return Ok(None);
        };
        let found = StoredManifest {
            digest: first(&r)?,
            media_type: r.get(1),
            content: r.get(2),
        };
        if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
            cache.store_manifest(ticket, repo.as_str(), &lookup, Arc::new(found.clone()));
        }
        Ok(Some(found))
    }

    async fn present_manifests(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<HashSet<Digest>> {
        let query = sqlx::query(sql!(
            self,
            "SELECT m.digest FROM manifests m
             WHERE m.repository_id = (SELECT id FROM repositories WHERE name = $1)
               AND m.digest IN (SELECT value FROM json_each($2))"
        ))
        .bind(repo.as_str())
        .bind(json_list(digests));
        self.read_all(query, first).await
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let now = now_millis();
        let mut tx = self.begin().await?;
        let Some(repo_id) =
            sqlx::query_scalar::<_, i64>("SELECT id FROM repositories WHERE name = $1")
                .bind(repo.as_str())
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        // The tags go first, named, for the `tag_deleted` deliveries; the reference rows go
        // with the manifest through ON DELETE CASCADE.
        let tags: Vec<String> = sqlx::query_scalar(
            "DELETE FROM tags WHERE repository_id = $1 AND manifest_digest = $2 RETURNING name",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        if !tags.is_empty() {
            let mut tags = tags;
            tags.sort();
            let data = notifications::tags_data(tags.iter().map(String::as_str));
            notifications::queue_event(&mut tx, repo_id, "tag_deleted", &data, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let mut tx = self.begin().await?;
        let deleted: Option<i64> = sqlx::query_scalar(
            "DELETE FROM tags WHERE name = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)
             RETURNING repository_id",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(repo_id) = deleted else {
            return Ok(false);
        };
        let data = notifications::tags_data([tag.as_str()]);
        notifications::queue_event(&mut tx, repo_id, "tag_deleted", &data, now_millis()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Tag>> {
        if let Some(cache) = &self.cache {
            let page = |all: &[Tag]| {
                // Both databases compare text bytewise, as `str` does.
                let from = after.map_or(0, |a| all.partition_point(|t| t.as_str() <= a));
                all[from..].iter().take(limit as usize).cloned().collect()
            };
            if let Some(all) = cache.tags(repo.as_str()) {
                return Ok(page(&all));
            }
            let ticket = cache.ticket();
            let query = sqlx::query(
                "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
                 WHERE r.name = $1 ORDER BY t.name LIMIT $2",
            )
            .bind(repo.as_str())
            .bind(cache::MAX_CACHED_TAGS as i64 + 1);
            let all: Vec<Tag> = self.read_all(query, first).await?;
            if all.len() <= cache::MAX_CACHED_TAGS {
                let answer = page(&all);
                cache.store_tags(ticket, repo.as_str(), Arc::new(all));
                return Ok(answer);
            }
        }
        let query = sqlx::query(
            "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = $1 AND t.name > $2 ORDER BY t.name LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(ordering_bound(after.unwrap_or("")))
        .bind(i64::from(limit));
        self.read_all(query, first).await
    }

    async fn tag_details(&self, repo: &RepoName, query: &TagQuery<'_>) -> Result<Vec<TagDetail>> {
        // A cosign tag is `sha256-<hex>` and a suffix; `substr` with one start compares the
        // same bytes on both databases (SQLite's GLOB and PostgreSQL's LIKE differ in case).
        let select = sqlx::query(sql!(
            self,
            "SELECT t.name, m.digest, m.media_type, m.kind, COALESCE(m.artifact_type, m.config_media_type),
                    m.total_size, t.updated_at, m.signed_digest, m.details
             FROM tags t JOIN repositories r ON r.id = t.repository_id
             JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
             WHERE r.name = $1 AND ($2 IS NULL OR instr(t.name, $2) > 0)
               AND ($5 OR NOT (substr(t.name, 1, 7) = 'sha256-'
                               AND (substr(t.name, length(t.name) - 3) IN ('.sig', '.att')
                                    OR substr(t.name, length(t.name) - 4) = '.sbom')))
             ORDER BY t.name LIMIT $3 OFFSET $4"
        ))
        .bind(repo.as_str())
        .bind(query.filter)
        .bind(i64::from(query.limit))
        .bind(i64::from(query.offset))
        .bind(query.cosign_tags);
        self.read_all(select, |r| {
            Ok(TagDetail {
                name: r.get(0),
                digest: stored(r.get(1))?,
                media_type: r.get(2),
                kind: r.get(3),
                artifact_type: r.get(4),
                total_size: r.get::<i64, _>(5) as u64,
                updated_at: r.get(6),
                signed: r.get::<Option<&str>, _>(7).map(stored).transpose()?,
                details: r.get(8),
            })
        })
        .await
    }

    async fn describers(&self, repo: &RepoName, targets: &[Digest]) -> Result<Vec<Describer>> {
        let mut found = Vec::new();
        for chunk in targets.chunks(500) {
            let query = sqlx::query(sql!(
                self,
                select_describers!(
                    "m.signed_digest IN (SELECT value FROM json_each($2))
                     ORDER BY m.signed_digest, m.kind, m.digest"
                )
            ))
            .bind(repo.as_str())
            .bind(json_list(chunk));
            found.extend(self.read_all::<_, Vec<_>>(query, describer_row).await?);
        }
        Ok(found)
    }

    async fn describers_page(
        &self,
        repo: &RepoName,
        target: &Digest,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<Describer>, u64)> {
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.signed_digest = $2",
        )
        .bind(repo.as_str())
        .bind(target.to_string())
        .fetch_one(&self.reader)
        .await?;
        let query = sqlx::query(select_describers!(
            "m.signed_digest = $2 ORDER BY m.kind, m.digest LIMIT $3 OFFSET $4"
        ))
        .bind(repo.as_str())
        .bind(target.to_string())
        .bind(i64::from(limit))
        .bind(i64::from(offset));
        let page = self.read_all(query, describer_row).await?;
        Ok((page, total.max(0) as u64))
    }

    async fn manifest_summary(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestSummary>> {
        let row = sqlx::query(
            "SELECT m.media_type, m.kind, m.artifact_type, m.total_size, m.created_at,
                    m.signed_digest, m.details
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.reader)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let tags = sqlx::query_scalar(
            "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = $1 AND t.manifest_digest = $2 ORDER BY t.name",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_all(&self.reader)
        .await?;
        Ok(Some(ManifestSummary {
            digest: digest.clone(),
            media_type: r.get(0),
            kind: r.get(1),
            artifact_type: r.get(2),
            total_size: r.get::<i64, _>(3) as u64,
            created_at: r.get(4),
            signed: r.get::<Option<&str>, _>(5).map(stored).transpose()?,
            details: r.get(6),
            tags,
        }))
    }

    async fn move_tag(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<bool> {
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let done = sqlx::query(
            "INSERT INTO tags (repository_id, name, manifest_digest, updated_at)
             SELECT m.repository_id, $2, m.digest, $4 FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.digest = $3
             ON CONFLICT(repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest,
                 updated_at = excluded.updated_at",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .bind(digest.to_string())
        .bind(now_millis())
        .execute(&self.writer)
        .await;
        match done {
            Ok(done) => Ok(done.rows_affected() > 0),
            // The manifest was deleted (by a client or garbage collection) between this
            // statement's read of it and its foreign-key check: it is not there.
            Err(sqlx::Error::Database(e))
                if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn tag_history(
        &self,
        repo: &RepoName,
        tag: Option<&Tag>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<TagHistoryEntry>> {
        let query = sqlx::query(
            "SELECT h.name, h.manifest_digest, h.started_at, h.ended_at FROM tag_history h
             JOIN repositories r ON r.id = h.repository_id
             WHERE r.name = $1 AND ($2 IS NULL OR h.name = $2) AND h.ended_at >= $3
               AND EXISTS (SELECT 1 FROM manifests m
                   WHERE m.repository_id = h.repository_id AND m.digest = h.manifest_digest)
             ORDER BY h.ended_at DESC, h.id DESC LIMIT $4",
        )
        .bind(repo.as_str())
        .bind(tag.map(Tag::as_str))
        .bind(since)
        .bind(i64::from(limit));
        self.read_all(query, |r| {
            Ok(TagHistoryEntry {
                name: r.get(0),
                digest: stored(r.get(1))?,
                started_at: r.get(2),
                ended_at: r.get(3),
            })
        })
        .await
    }

    async fn restore_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
        since: i64,
    ) -> Result<bool> {
        let query = sqlx::query(
            "SELECT 1 FROM tag_history h JOIN repositories r ON r.id = h.repository_id
             WHERE r.name = $1 AND h.name = $2 AND h.manifest_digest = $3 AND h.ended_at >= $4",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .bind(digest.to_string())
        .bind(since);
        let known = self.read_one(query, |_| Ok(())).await?.is_some();
        Ok(known && self.move_tag(repo, tag, digest).await?)
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<Referrer>> {
        if artifact_type.is_some_and(has_nul) {
            return Ok(Vec::new());
        }
        let query = sqlx::query(
            "SELECT m.digest, m.media_type, m.size, COALESCE(m.artifact_type, m.config_media_type),
                    m.annotations
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.subject_digest = $2
               AND ($3 IS NULL OR COALESCE(m.artifact_type, m.config_media_type) = $3)
               AND m.digest > $4
             ORDER BY m.digest LIMIT $5",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .bind(after.map(Digest::to_string).unwrap_or_default())
        .bind(i64::from(limit));
        self.read_all(query, |r| {
            Ok(Referrer {
                digest: stored(r.get(0))?,
                media_type: r.get(1),
                size: r.get::<i64, _>(2) as u64,
                artifact_type: r.get(3),
                annotations: r
                    .get::<Option<&str>, _>(4)
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(backend)?,
            })
        })
        .await
    }
}

impl SqlStore {
    /// Checks, inside a manifest push's transaction, that every reference `manifest` requires
    /// is still there (`Conflict` when one is gone, so the registry checks again and names it),
    /// and holds them against garbage collection until the push commits: a shared lock per
    /// blob digest (a collector takes it exclusively), and share locks on the child manifests
    /// and on the manifest itself if it exists (a collector locks the row for update). Returns
    /// whether an optional reference is absent: the manifest is stored sparse.
    async fn verify_references(
        &self,
        tx: &mut Tx,
        repo_id: i64,
        manifest: &NewManifest,
    ) -> Result<bool> {
        let mut blobs: Vec<&Digest> = manifest.blobs.iter().collect();
        blobs.sort_by_key(|d| d.to_string());
        blobs.dedup();
        // In digest order, so two pushes sharing layers take the locks in the same order.
        for digest in &blobs {
            self.lock_digest(tx, LockMode::Shared, digest).await?;
        }
        let mut children: Vec<&Digest> = manifest.children.iter().collect();
        children.sort();
        children.dedup();
        let blobs_found = sql!(
            self,
            "SELECT digest FROM repository_blobs
             WHERE repository_id = $1 AND digest IN (SELECT value FROM json_each($2))"
        );
        let children_found = sql!(
            self,
            "SELECT digest FROM manifests
             WHERE repository_id = $1 AND digest IN (SELECT value FROM json_each($2))
             ORDER BY digest FOR SHARE"
        );
        let mut sparse = false;
        for (wanted, query) in [(&blobs, blobs_found), (&children, children_found)] {
            if wanted.is_empty() {
                continue;
            }
            let found: HashSet<String> = sqlx::query_scalar(query)
                .bind(repo_id)
                .bind(json_list(wanted))
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .collect();
            for absent in wanted.iter().filter(|d| !found.contains(&d.to_string())) {
                if !manifest.optional.contains(absent) {
                    return Err(MetadataError::Conflict);
                }
                sparse = true;
            }
        }
        sqlx::query(sql!(
            self,
            "SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2 FOR SHARE"
        ))
        .bind(repo_id)
        .bind(manifest.digest.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        Ok(sparse)
    }
}
