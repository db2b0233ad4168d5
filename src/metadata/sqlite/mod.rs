//! The embedded metadata backend: one SQLite database file in WAL mode.
//!
//! Writes go through a single-connection pool so that transactions in this process never
//! contend with each other; reads use a separate pool and proceed concurrently with writes.
//! `synchronous=FULL` makes every commit durable before the client is told it succeeded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oci::{Algorithm, Digest, RepoName, Tag};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{
    backend, gc, now_millis, stored, Describer, ManifestKey, ManifestSummary, MetadataError,
    MetadataStore, NewManifest, QuotaExceeded, Referrer, StoredManifest, TagDetail,
    TagHistoryEntry, TagQuery, UploadQuota, UploadRecord,
};
use crate::storage::UploadId;

mod accounts;
mod cache;
mod collection;
mod integrity;

/// Metadata in a local SQLite database.
pub struct SqliteStore {
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
    /// Hot reads; every write below that changes tags, manifests or repositories invalidates it.
    pub(super) cache: cache::ContentCache,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`. A database file or
    /// journal other accounts may read (as an older berth left them) is made private first.
    pub async fn open(path: &Path) -> Result<Self, MetadataError> {
        restrict_database_files(path).map_err(backend)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(backend)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.read_only(true))
            .await
            .map_err(backend)?;
        let counter =
            cache::ChangeCounter::open(&path.with_extension("db-changes")).map_err(backend)?;
        Ok(SqliteStore {
            writer,
            reader,
            cache: cache::ContentCache::with_counter(counter),
        })
    }

    pub(super) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, MetadataError> {
        // IMMEDIATE takes the write lock up front, so another process (the CLI) makes this
        // wait on the busy timeout instead of failing the transaction half-way.
        match self.writer.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                // A COMMIT that failed on a full disk is rolled back by SQLite itself, so the
                // driver's own ROLLBACK fails and its count of open transactions stays at one:
                // the writer connection would refuse every later transaction. Replace it.
                tracing::warn!("replacing the metadata writer connection after a failed commit");
                let stale = self.writer.acquire().await.map_err(backend)?;
                let _ = sqlx::Connection::close(stale.detach()).await;
                self.writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(backend)
            }
            result => result.map_err(backend),
        }
    }
}

/// Takes group and other permissions away from the database at `path`, its journals and its
/// change counter, where they exist: they hold password hashes and the token signing key.
fn restrict_database_files(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut files = vec![path.to_path_buf(), path.with_extension("db-changes")];
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push(name.into());
        }
        for file in files {
            let mode = match std::fs::metadata(&file) {
                Ok(meta) => meta.permissions().mode(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & !0o077))?;
            }
        }
    }
    Ok(())
}

const ENSURE_REPO: &str =
    "INSERT INTO repositories (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING";

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn ensure_repository(&self, repo: &RepoName) -> Result<(), MetadataError> {
        sqlx::query(ENSURE_REPO)
            .bind(repo.as_str())
            .bind(now_millis())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn repository_exists(&self, repo: &RepoName) -> Result<bool, MetadataError> {
        if self.cache.exists(repo.as_str()) {
            return Ok(true);
        }
        let ticket = self.cache.ticket();
        let row = sqlx::query("SELECT 1 FROM repositories WHERE name = ?1")
            .bind(repo.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        if row.is_some() {
            self.cache.store_exists(ticket, repo.as_str());
        }
        Ok(row.is_some())
    }

    async fn list_repositories(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepoName>, MetadataError> {
        let rows =
            sqlx::query("SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2")
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await
                .map_err(backend)?;
        rows.iter().map(|r| stored(r.get::<&str, _>(0))).collect()
    }

    async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<(), MetadataError> {
        let now = now_millis();
        let mut tx = self.begin().await?;
        let digest = digest.to_string();
        let pending = sqlx::query("SELECT started_at FROM blob_deletions WHERE digest = ?1")
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .map(|r| r.get::<i64, _>(0));
        if let Some(started_at) = pending {
            if started_at > now - gc::STALE_DELETION.as_millis() as i64 {
                // A collector is deleting these bytes; the push writes them again after.
                return Err(MetadataError::Conflict);
            }
            sqlx::query("DELETE FROM blob_deletions WHERE digest = ?1")
                .bind(&digest)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::query(ENSURE_REPO)
            .bind(repo.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, linked_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(digest) DO UPDATE SET linked_at = excluded.linked_at",
        )
        .bind(&digest)
        .bind(size as i64)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest, created_at)
             SELECT id, ?2, ?3 FROM repositories WHERE name = ?1
             ON CONFLICT DO NOTHING",
        )
        .bind(repo.as_str())
        .bind(&digest)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetadataError> {
        let done = sqlx::query(
            "DELETE FROM repository_blobs WHERE digest = ?2
             AND repository_id = (SELECT id FROM repositories WHERE name = ?1)",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn linked_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetadataError> {
        let row = sqlx::query(
            "SELECT b.size FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repository_id
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = ?1 AND rb.digest = ?2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    async fn linked_blobs(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<HashMap<Digest, u64>, MetadataError> {
        // One round trip: the digests travel as a JSON array and are unpacked by json_each.
        let list = serde_json::to_string(digests).map_err(backend)?;
        let rows = sqlx::query(
            "SELECT b.digest, b.size FROM json_each(?2) j
             JOIN repository_blobs rb ON rb.digest = j.value
             JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository_id = (SELECT id FROM repositories WHERE name = ?1)",
        )
        .bind(repo.as_str())
        .bind(list)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| Ok((stored(r.get::<&str, _>(0))?, r.get::<i64, _>(1) as u64)))
            .collect()
    }

    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, MetadataError> {
        let row = sqlx::query("SELECT size FROM blobs WHERE digest = ?1")
            .bind(digest.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    async fn create_upload(
        &self,
        upload: &UploadRecord,
        owner: &str,
        quota: UploadQuota,
    ) -> Result<Result<(), QuotaExceeded>, MetadataError> {
        let now = now_millis();
        // BEGIN IMMEDIATE holds the database's write lock from here: no other session can
        // open between the count and the insert, in this process or another.
        let mut tx = self.begin().await?;
        sqlx::query(ENSURE_REPO)
            .bind(upload.repository.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let open = sqlx::query(
            "SELECT (SELECT count(*) FROM uploads WHERE owner = ?1),
                    (SELECT count(*) FROM uploads
                     WHERE repository_id = (SELECT id FROM repositories WHERE name = ?2))",
        )
        .bind(owner)
        .bind(upload.repository.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(exceeded) = quota.exceeded(open.get(0), open.get(1)) {
            // Rolled back on drop, with the repository it may have created.
            return Ok(Err(exceeded));
        }
        sqlx::query(
            "INSERT INTO uploads (id, repository_id, algorithm, length, created_at, updated_at, resumable, owner)
             SELECT ?1, id, ?3, ?4, ?5, ?5, ?6, ?7 FROM repositories WHERE name = ?2",
        )
        .bind(upload.id.as_str())
        .bind(upload.repository.as_str())
        .bind(upload.algorithm.as_str())
        .bind(upload.length as i64)
        .bind(now)
        .bind(i64::from(upload.resumable))
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Ok(()))
    }

    async fn upload(&self, id: &UploadId) -> Result<Option<UploadRecord>, MetadataError> {
        let row = sqlx::query(
            "SELECT r.name, u.algorithm, u.length, u.resumable, u.hash_state, u.progress, u.updated_at
             FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.id = ?1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        row.map(|r| {
            Ok(UploadRecord {
                id: id.clone(),
                repository: stored(r.get::<&str, _>(0))?,
                algorithm: stored::<Algorithm>(r.get::<&str, _>(1))?,
                length: r.get::<i64, _>(2) as u64,
                resumable: r.get::<i64, _>(3) != 0,
                hash_state: r.get(4),
                progress: r.get(5),
                updated_at: r.get(6),
            })
        })
        .transpose()
    }

    async fn advance_upload(
        &self,
        id: &UploadId,
        from: u64,
        to: u64,
        hash_state: &[u8],
        progress: Option<&[u8]>,
    ) -> Result<(), MetadataError> {
        let done = sqlx::query(
            "UPDATE uploads SET length = ?3, updated_at = ?4, hash_state = ?5, progress = ?6
             WHERE id = ?1 AND length = ?2",
        )
        .bind(id.as_str())
        .bind(from as i64)
        .bind(to as i64)
        .bind(now_millis())
        .bind(hash_state)
        .bind(progress)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(MetadataError::Conflict)
        }
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<(), MetadataError> {
        sqlx::query("DELETE FROM uploads WHERE id = ?1")
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_uploads(&self) -> Result<Vec<UploadRecord>, MetadataError> {
        let rows = sqlx::query(
            "SELECT u.id, r.name, u.algorithm, u.length, u.resumable, u.hash_state, u.progress,
                    u.updated_at
             FROM uploads u JOIN repositories r ON r.id = u.repository_id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(UploadRecord {
                    id: UploadId::parse(r.get::<&str, _>(0))
                        .ok_or_else(|| MetadataError::Backend("corrupt upload id".into()))?,
                    repository: stored(r.get::<&str, _>(1))?,
                    algorithm: stored(r.get::<&str, _>(2))?,
                    length: r.get::<i64, _>(3) as u64,
                    resumable: r.get::<i64, _>(4) != 0,
                    hash_state: r.get(5),
                    progress: r.get(6),
                    updated_at: r.get(7),
                })
            })
            .collect()
    }

    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tags: &[Tag],
    ) -> Result<(), MetadataError> {
        let now = now_millis();
        let digest = manifest.digest.to_string();
        let annotations = manifest
            .annotations
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(backend)?;
        let mut tx = self.begin().await?;
        sqlx::query(ENSURE_REPO)
            .bind(repo.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let repo_id: i64 = sqlx::query("SELECT id FROM repositories WHERE name = ?1")
            .bind(repo.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?
            .get(0);
        verify_references(&mut tx, repo_id, manifest).await?;
        sqlx::query("INSERT INTO manifest_contents (digest, content) VALUES (?1, ?2) ON CONFLICT(digest) DO NOTHING")
            .bind(&digest)
            .bind(&manifest.content)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, size, artifact_type,
                 config_media_type, subject_digest, annotations, created_at,
                 kind, total_size, signed_digest, details)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
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
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if inserted.rows_affected() == 0 {
            if let Some(signed) = &manifest.facts.signed {
                // Pushed again under a cosign tag: remember what it signs.
                sqlx::query(
                    "UPDATE manifests SET signed_digest = ?3
                     WHERE repository_id = ?1 AND digest = ?2 AND signed_digest IS NULL",
                )
                .bind(repo_id)
                .bind(&digest)
                .bind(signed.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        if inserted.rows_affected() > 0 {
            let children = manifest
                .blobs
                .iter()
                .map(|d| (d, "blob"))
                .chain(manifest.children.iter().map(|d| (d, "manifest")));
            for (child, kind) in children {
                sqlx::query(
                    "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_kind)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )
                .bind(repo_id)
                .bind(&digest)
                .bind(child.to_string())
                .bind(kind)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        for tag in tags {
            sqlx::query(
                "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest,
                     updated_at = excluded.updated_at",
            )
            .bind(repo_id)
            .bind(tag.as_str())
            .bind(&digest)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        let committed = tx.commit().await.map_err(backend);
        self.cache.invalidate(repo.as_str());
        committed
    }

    async fn manifest(
        &self,
        repo: &RepoName,
        key: ManifestKey<'_>,
    ) -> Result<Option<StoredManifest>, MetadataError> {
        let digest_text;
        let lookup = match key {
            ManifestKey::Tag(tag) => cache::Lookup::Tag(tag.as_str()),
            ManifestKey::Digest(digest) => {
                digest_text = digest.to_string();
                cache::Lookup::Digest(&digest_text)
            }
        };
        if let Some(hit) = self.cache.manifest(repo.as_str(), &lookup) {
            return Ok(Some(StoredManifest::clone(&hit)));
        }
        let ticket = self.cache.ticket();
        let query = match key {
            ManifestKey::Tag(tag) => sqlx::query(
                "SELECT m.digest, m.media_type, c.content FROM tags t
                 JOIN repositories r ON r.id = t.repository_id
                 JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
                 JOIN manifest_contents c ON c.digest = m.digest
                 WHERE r.name = ?1 AND t.name = ?2",
            )
            .bind(repo.as_str())
            .bind(tag.as_str()),
            ManifestKey::Digest(digest) => sqlx::query(
                "SELECT m.digest, m.media_type, c.content FROM manifests m
                 JOIN repositories r ON r.id = m.repository_id
                 JOIN manifest_contents c ON c.digest = m.digest
                 WHERE r.name = ?1 AND m.digest = ?2",
            )
            .bind(repo.as_str())
            .bind(digest.to_string()),
        };
        let row = query.fetch_optional(&self.reader).await.map_err(backend)?;
        let found = row
            .map(|r| {
                Ok::<_, MetadataError>(StoredManifest {
                    digest: stored(r.get::<&str, _>(0))?,
                    media_type: r.get(1),
                    content: r.get(2),
                })
            })
            .transpose()?;
        if let Some(m) = &found {
            self.cache
                .store_manifest(ticket, repo.as_str(), &lookup, Arc::new(m.clone()));
        }
        Ok(found)
    }

    async fn present_manifests(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<HashSet<Digest>, MetadataError> {
        let list = serde_json::to_string(digests).map_err(backend)?;
        let rows = sqlx::query(
            "SELECT m.digest FROM json_each(?2) j JOIN manifests m ON m.digest = j.value
             WHERE m.repository_id = (SELECT id FROM repositories WHERE name = ?1)",
        )
        .bind(repo.as_str())
        .bind(list)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(|r| stored(r.get::<&str, _>(0))).collect()
    }

    async fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, MetadataError> {
        // Tags and reference rows go with it through ON DELETE CASCADE.
        let done = sqlx::query(
            "DELETE FROM manifests WHERE digest = ?2
             AND repository_id = (SELECT id FROM repositories WHERE name = ?1)",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .execute(&self.writer)
        .await;
        self.cache.invalidate(repo.as_str());
        Ok(done.map_err(backend)?.rows_affected() > 0)
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, MetadataError> {
        let done = sqlx::query(
            "DELETE FROM tags WHERE name = ?2
             AND repository_id = (SELECT id FROM repositories WHERE name = ?1)",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .execute(&self.writer)
        .await;
        self.cache.invalidate(repo.as_str());
        Ok(done.map_err(backend)?.rows_affected() > 0)
    }

    async fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Tag>, MetadataError> {
        let page = |all: &[Tag]| {
            // SQLite compares text bytewise, as `str` does.
            let from = after.map_or(0, |a| all.partition_point(|t| t.as_str() <= a));
            all[from..].iter().take(limit as usize).cloned().collect()
        };
        if let Some(all) = self.cache.tags(repo.as_str()) {
            return Ok(page(&all));
        }
        let ticket = self.cache.ticket();
        let rows = sqlx::query(
            "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = ?1 ORDER BY t.name LIMIT ?2",
        )
        .bind(repo.as_str())
        .bind(cache::MAX_CACHED_TAGS as i64 + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        if rows.len() <= cache::MAX_CACHED_TAGS {
            let all = rows
                .iter()
                .map(|r| stored(r.get::<&str, _>(0)))
                .collect::<Result<Vec<Tag>, _>>()?;
            let answer = page(&all);
            self.cache.store_tags(ticket, repo.as_str(), Arc::new(all));
            return Ok(answer);
        }
        let rows = sqlx::query(
            "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = ?1 AND t.name > ?2 ORDER BY t.name LIMIT ?3",
        )
        .bind(repo.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(|r| stored(r.get::<&str, _>(0))).collect()
    }

    async fn tag_details(
        &self,
        repo: &RepoName,
        query: &TagQuery<'_>,
    ) -> Result<Vec<TagDetail>, MetadataError> {
        let rows = sqlx::query(
            "SELECT t.name, m.digest, m.media_type, m.kind, COALESCE(m.artifact_type, m.config_media_type),
                    m.total_size, t.updated_at, m.signed_digest, m.details
             FROM tags t JOIN repositories r ON r.id = t.repository_id
             JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
             WHERE r.name = ?1 AND (?2 IS NULL OR instr(t.name, ?2) > 0)
               AND (?5 OR NOT (t.name GLOB 'sha256-*.sig' OR t.name GLOB 'sha256-*.att'
                               OR t.name GLOB 'sha256-*.sbom'))
             ORDER BY t.name LIMIT ?3 OFFSET ?4",
        )
        .bind(repo.as_str())
        .bind(query.filter)
        .bind(i64::from(query.limit))
        .bind(i64::from(query.offset))
        .bind(query.cosign_tags)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let signed: Option<&str> = r.get(7);
                Ok(TagDetail {
                    name: r.get(0),
                    digest: stored(r.get::<&str, _>(1))?,
                    media_type: r.get(2),
                    kind: r.get(3),
                    artifact_type: r.get(4),
                    total_size: r.get::<i64, _>(5) as u64,
                    updated_at: r.get(6),
                    signed: signed.map(stored).transpose()?,
                    details: r.get(8),
                })
            })
            .collect()
    }

    async fn describers(
        &self,
        repo: &RepoName,
        targets: &[Digest],
    ) -> Result<Vec<Describer>, MetadataError> {
        let mut found = Vec::new();
        for chunk in targets.chunks(500) {
            let targets: Vec<String> = chunk.iter().map(Digest::to_string).collect();
            let rows = sqlx::query(
                "SELECT m.signed_digest, m.digest, m.kind, COALESCE(m.artifact_type, m.config_media_type),
                        m.total_size,
                        (SELECT min(t.name) FROM tags t
                         WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)
                 FROM manifests m JOIN repositories r ON r.id = m.repository_id
                 WHERE r.name = ?1 AND m.signed_digest IN (SELECT value FROM json_each(?2))
                 ORDER BY m.signed_digest, m.kind, m.digest",
            )
            .bind(repo.as_str())
            .bind(serde_json::to_string(&targets).map_err(backend)?)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
            for r in &rows {
                found.push(Describer {
                    target: stored(r.get::<&str, _>(0))?,
                    digest: stored(r.get::<&str, _>(1))?,
                    kind: r.get(2),
                    artifact_type: r.get(3),
                    total_size: r.get::<i64, _>(4) as u64,
                    tag: r.get(5),
                });
            }
        }
        Ok(found)
    }

    async fn describers_page(
        &self,
        repo: &RepoName,
        target: &Digest,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<Describer>, u64), MetadataError> {
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = ?1 AND m.signed_digest = ?2",
        )
        .bind(repo.as_str())
        .bind(target.to_string())
        .fetch_one(&self.reader)
        .await
        .map_err(backend)?;
        let rows = sqlx::query(
            "SELECT m.digest, m.kind, COALESCE(m.artifact_type, m.config_media_type), m.total_size,
                    (SELECT min(t.name) FROM tags t
                     WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = ?1 AND m.signed_digest = ?2
             ORDER BY m.kind, m.digest
             LIMIT ?3 OFFSET ?4",
        )
        .bind(repo.as_str())
        .bind(target.to_string())
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        let page = rows
            .iter()
            .map(|r| {
                Ok(Describer {
                    target: target.clone(),
                    digest: stored(r.get::<&str, _>(0))?,
                    kind: r.get(1),
                    artifact_type: r.get(2),
                    total_size: r.get::<i64, _>(3) as u64,
                    tag: r.get(4),
                })
            })
            .collect::<Result<Vec<_>, MetadataError>>()?;
        Ok((page, total.max(0) as u64))
    }

    async fn manifest_summary(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestSummary>, MetadataError> {
        let row = sqlx::query(
            "SELECT m.media_type, m.kind, m.artifact_type, m.total_size, m.created_at,
                    m.signed_digest, m.details,
                    (SELECT json_group_array(name) FROM
                        (SELECT t.name FROM tags t WHERE t.repository_id = m.repository_id
                         AND t.manifest_digest = m.digest ORDER BY t.name))
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = ?1 AND m.digest = ?2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        let Some(r) = row else { return Ok(None) };
        let signed: Option<&str> = r.get(5);
        let tags: Vec<String> = serde_json::from_str(r.get::<&str, _>(7)).map_err(backend)?;
        Ok(Some(ManifestSummary {
            digest: digest.clone(),
            media_type: r.get(0),
            kind: r.get(1),
            artifact_type: r.get(2),
            total_size: r.get::<i64, _>(3) as u64,
            created_at: r.get(4),
            signed: signed.map(stored).transpose()?,
            details: r.get(6),
            tags,
        }))
    }

    async fn move_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<bool, MetadataError> {
        let done = sqlx::query(
            "INSERT INTO tags (repository_id, name, manifest_digest, updated_at)
             SELECT m.repository_id, ?2, m.digest, ?4 FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = ?1 AND m.digest = ?3
             ON CONFLICT(repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest,
                 updated_at = excluded.updated_at",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .bind(digest.to_string())
        .bind(now_millis())
        .execute(&self.writer)
        .await;
        self.cache.invalidate(repo.as_str());
        Ok(done.map_err(backend)?.rows_affected() > 0)
    }

    async fn tag_history(
        &self,
        repo: &RepoName,
        tag: Option<&Tag>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<TagHistoryEntry>, MetadataError> {
        let rows = sqlx::query(
            "SELECT h.name, h.manifest_digest, h.started_at, h.ended_at FROM tag_history h
             JOIN repositories r ON r.id = h.repository_id
             WHERE r.name = ?1 AND (?2 IS NULL OR h.name = ?2) AND h.ended_at >= ?3
               AND EXISTS (SELECT 1 FROM manifests m
                   WHERE m.repository_id = h.repository_id AND m.digest = h.manifest_digest)
             ORDER BY h.ended_at DESC, h.id DESC LIMIT ?4",
        )
        .bind(repo.as_str())
        .bind(tag.map(Tag::as_str))
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(TagHistoryEntry {
                    name: r.get::<String, _>(0),
                    digest: stored(r.get::<&str, _>(1))?,
                    started_at: r.get(2),
                    ended_at: r.get(3),
                })
            })
            .collect()
    }

    async fn restore_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
        since: i64,
    ) -> Result<bool, MetadataError> {
        let known = sqlx::query(
            "SELECT 1 FROM tag_history h JOIN repositories r ON r.id = h.repository_id
             WHERE r.name = ?1 AND h.name = ?2 AND h.manifest_digest = ?3 AND h.ended_at >= ?4",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .bind(digest.to_string())
        .bind(since)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        if known.is_none() {
            return Ok(false);
        }
        self.move_tag(repo, tag, digest).await
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<Referrer>, MetadataError> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.size, COALESCE(m.artifact_type, m.config_media_type),
                    m.annotations
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = ?1 AND m.subject_digest = ?2
               AND (?3 IS NULL OR COALESCE(m.artifact_type, m.config_media_type) = ?3)
               AND m.digest > ?4
             ORDER BY m.digest LIMIT ?5",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .bind(after.map(Digest::to_string).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let annotations: Option<&str> = r.get(4);
                Ok(Referrer {
                    digest: stored(r.get::<&str, _>(0))?,
                    media_type: r.get(1),
                    size: r.get::<i64, _>(2) as u64,
                    artifact_type: r.get(3),
                    annotations: annotations
                        .map(serde_json::from_str::<BTreeMap<String, String>>)
                        .transpose()
                        .map_err(backend)?,
                })
            })
            .collect()
    }
}

/// Checks, inside a manifest push's transaction, that every blob and child it references is
/// still there: garbage collection may have removed one since the registry checked. `Conflict`
/// when one is gone, so the registry checks again and names it.
async fn verify_references(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    repo_id: i64,
    manifest: &NewManifest,
) -> Result<(), MetadataError> {
    for (list, sql) in [
        (
            &manifest.blobs,
            "SELECT count(DISTINCT digest) FROM repository_blobs
             WHERE repository_id = ?1 AND digest IN (SELECT value FROM json_each(?2))",
        ),
        (
            &manifest.children,
            "SELECT count(DISTINCT digest) FROM manifests
             WHERE repository_id = ?1 AND digest IN (SELECT value FROM json_each(?2))",
        ),
    ] {
        if list.is_empty() {
            continue;
        }
        let wanted: HashSet<String> = list.iter().map(Digest::to_string).collect();
        let json = serde_json::to_string(&wanted).map_err(backend)?;
        let found: i64 = sqlx::query(sql)
            .bind(repo_id)
            .bind(json)
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?
            .get(0);
        if found as usize != wanted.len() {
            return Err(MetadataError::Conflict);
        }
    }
    Ok(())
}
