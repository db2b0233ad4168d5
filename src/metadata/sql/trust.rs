//! [`TrustStore`] on SQL: trusted keys, trust policies and the stored signature verdicts
//! (migration 0018).
//!
//! A scope is stored as two texts: `namespace`, and `repository` (the repository's full name,
//! or '' for the namespace itself). The verdicts' marks are moved by triggers (a signature
//! manifest stored, deleted or given its `signed_digest` moves its subject's `version`; a key
//! added or removed moves `trust_generation`), so nothing here has to remember to move them.
//! A verdict is stored by one conditional `UPDATE`: only while the row's `version` is still the
//! one it was computed under and no verdict of a later generation is stored.

use async_trait::async_trait;
use oci::{Digest, RepoName};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::accounts::conflict;
use super::{has_nul, json_list, sql, SqlStore};
use crate::metadata::trust::{
    PendingVerdict, Requirement, SignatureManifest, StoredKey, StoredVerdict, TrustScope,
    TrustStore,
};
use crate::metadata::{now_millis, stored, MetadataError, Result};
use crate::trust::{KeyKind, SignatureCheck, Status, Verdict};

/// The `(namespace, repository)` columns of a scope.
fn scope_columns(scope: &TrustScope) -> (&str, &str) {
    match scope {
        TrustScope::Namespace(ns) => (ns.as_str(), ""),
        TrustScope::Repository(repo) => (repo.namespace(), repo.as_str()),
    }
}

/// The scope of `(namespace, repository)` columns.
fn scope_of(namespace: String, repository: &str) -> Result<TrustScope> {
    Ok(match repository {
        "" => TrustScope::Namespace(namespace),
        repo => TrustScope::Repository(stored(repo)?),
    })
}

/// The columns [`key_row`] reads, as a literal for `concat!`.
macro_rules! key_columns {
    () => {
        "id, namespace, repository, name, kind, material, fingerprint, description, created_at"
    };
}

fn key_row(r: &AnyRow) -> Result<StoredKey> {
    let kind: String = r.get(4);
    Ok(StoredKey {
        id: r.get(0),
        scope: scope_of(r.get(1), r.get::<&str, _>(2))?,
        name: r.get(3),
        kind: KeyKind::parse(&kind).ok_or_else(|| corrupt("key kind", &kind))?,
        material: r.get(5),
        fingerprint: r.get(6),
        description: r.get(7),
        created_at: r.get(8),
    })
}

fn corrupt(what: &str, value: &str) -> MetadataError {
    MetadataError::Backend(format!("corrupt {what} {value:?}").into())
}

/// The stored text of a requirement (`none` is never stored: it removes the row).
const VERIFIED: &str = "verified";

/// A verdict from its `status, keys, checks` columns starting at `at`.
fn verdict_columns(r: &AnyRow, at: usize) -> Result<Verdict> {
    let status: String = r.get(at);
    let keys: String = r.get(at + 1);
    let checks: String = r.get(at + 2);
    Ok(Verdict {
        status: Status::parse(&status).ok_or_else(|| corrupt("verdict status", &status))?,
        keys: serde_json::from_str::<Vec<String>>(&keys)
            .map_err(|_| corrupt("verdict keys", &keys))?,
        checks: serde_json::from_str::<Vec<SignatureCheck>>(&checks)
            .map_err(|_| corrupt("verdict checks", &checks))?,
    })
}

/// The text of a digest read back: the subject of a verdict row.
fn digest_of(text: &str) -> Result<Digest> {
    stored(text)
}

#[async_trait]
impl TrustStore for SqlStore {
    async fn add_trust_key(&self, key: &StoredKey) -> Result<()> {
        let (namespace, repository) = scope_columns(&key.scope);
        let query = sqlx::query(
            "INSERT INTO trust_keys (id, namespace, repository, name, kind, material,
                 fingerprint, description, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key.id.clone())
        .bind(namespace.to_string())
        .bind(repository.to_string())
        .bind(key.name.clone())
        .bind(key.kind.as_str())
        .bind(key.material.clone())
        .bind(key.fingerprint.clone())
        .bind(key.description.clone())
        .bind(key.created_at);
        query.execute(&self.writer).await.map_err(conflict)?;
        Ok(())
    }

    async fn trust_keys(&self, scope: &TrustScope) -> Result<Vec<StoredKey>> {
        let (namespace, repository) = scope_columns(scope);
        if has_nul(namespace) {
            return Ok(Vec::new());
        }
        let query = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM trust_keys WHERE namespace = $1 AND repository = $2 ORDER BY created_at, id"
        ))
        .bind(namespace.to_string())
        .bind(repository.to_string());
        self.read_all(query, key_row).await
    }

    async fn delete_trust_key(&self, scope: &TrustScope, id: &str) -> Result<bool> {
        let (namespace, repository) = scope_columns(scope);
        if has_nul(namespace) || has_nul(id) {
            return Ok(false);
        }
        let query = sqlx::query(
            "DELETE FROM trust_keys WHERE id = $1 AND namespace = $2 AND repository = $3",
        )
        .bind(id.to_string())
        .bind(namespace.to_string())
        .bind(repository.to_string());
        Ok(self.write(query).await? > 0)
    }

    async fn keys_for(&self, repo: &RepoName) -> Result<Vec<StoredKey>> {
        let query = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM trust_keys WHERE namespace = $1 AND (repository = '' OR repository = $2)
             ORDER BY created_at, id"
        ))
        .bind(repo.namespace().to_string())
        .bind(repo.as_str().to_string());
        self.read_all(query, key_row).await
    }

    async fn set_trust_policy(&self, scope: &TrustScope, require: Requirement) -> Result<()> {
        let (namespace, repository) = scope_columns(scope);
        let query = match require {
            Requirement::None => {
                sqlx::query("DELETE FROM trust_policies WHERE namespace = $1 AND repository = $2")
                    .bind(namespace.to_string())
                    .bind(repository.to_string())
            }
            Requirement::Verified => sqlx::query(
                "INSERT INTO trust_policies (namespace, repository, require, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (namespace, repository)
                 DO UPDATE SET require = excluded.require, updated_at = excluded.updated_at",
            )
            .bind(namespace.to_string())
            .bind(repository.to_string())
            .bind(VERIFIED)
            .bind(now_millis()),
        };
        self.write(query).await?;
        Ok(())
    }

    async fn trust_policy(&self, scope: &TrustScope) -> Result<Requirement> {
        let (namespace, repository) = scope_columns(scope);
        if has_nul(namespace) {
            return Ok(Requirement::None);
        }
        let query = sqlx::query(
            "SELECT require FROM trust_policies WHERE namespace = $1 AND repository = $2",
        )
        .bind(namespace.to_string())
        .bind(repository.to_string());
        let found = self.read_one(query, |r| Ok(r.get::<String, _>(0))).await?;
        Ok(requirement(found.as_deref()))
    }

    async fn policy_in_force(&self, repo: &RepoName) -> Result<Option<TrustScope>> {
        let query = sqlx::query(
            "SELECT repository FROM trust_policies
             WHERE namespace = $1 AND (repository = '' OR repository = $2) AND require = $3
             ORDER BY repository",
        )
        .bind(repo.namespace().to_string())
        .bind(repo.as_str().to_string())
        .bind(VERIFIED);
        // '' sorts first: the namespace's policy is named when both require it.
        let found = self.read_one(query, |r| Ok(r.get::<String, _>(0))).await?;
        found
            .map(|repository| scope_of(repo.namespace().to_string(), &repository))
            .transpose()
    }

    async fn verdicts(&self, repo: &RepoName, digests: &[Digest]) -> Result<Vec<StoredVerdict>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let query = sqlx::query(sql!(
            self,
            "SELECT v.digest, v.status, v.keys, v.checks, v.computed_at,
                    CASE WHEN v.verified_version = v.version AND v.generation = g.value
                         THEN 1 ELSE 0 END
             FROM signature_verdicts v
             JOIN repositories r ON r.id = v.repository_id
             CROSS JOIN trust_generation g
             WHERE r.name = $1 AND v.digest IN (SELECT value FROM json_each($2))"
        ))
        .bind(repo.as_str().to_string())
        .bind(json_list(digests));
        self.read_all(query, |r| {
            Ok(StoredVerdict {
                digest: digest_of(r.get::<&str, _>(0))?,
                verdict: verdict_columns(r, 1)?,
                computed_at: r.get(4),
                current: r.get::<i64, _>(5) == 1,
            })
        })
        .await
    }

    async fn pending_marks(&self, repo: &RepoName, digest: &Digest) -> Result<PendingVerdict> {
        let query = sqlx::query(
            "SELECT COALESCE((SELECT v.version FROM signature_verdicts v
                              JOIN repositories r ON r.id = v.repository_id
                              WHERE r.name = $1 AND v.digest = $2), 0),
                    (SELECT value FROM trust_generation)",
        )
        .bind(repo.as_str().to_string())
        .bind(digest.to_string());
        let (version, generation) = self
            .read_one(query, |r| Ok((r.get::<i64, _>(0), r.get::<i64, _>(1))))
            .await?
            .unwrap_or((0, 0));
        Ok(PendingVerdict {
            repository: repo.clone(),
            digest: digest.clone(),
            version,
            generation,
        })
    }

    async fn stale_verdicts(&self, limit: u32) -> Result<Vec<PendingVerdict>> {
        let query = sqlx::query(
            "SELECT r.name, v.digest, v.version, g.value
             FROM signature_verdicts v
             JOIN repositories r ON r.id = v.repository_id
             CROSS JOIN trust_generation g
             WHERE v.verified_version <> v.version OR v.generation <> g.value
             ORDER BY v.computed_at, v.repository_id, v.digest
             LIMIT $1",
        )
        .bind(i64::from(limit));
        self.read_all(query, |r| {
            Ok(PendingVerdict {
                repository: stored(r.get::<&str, _>(0))?,
                digest: digest_of(r.get::<&str, _>(1))?,
                version: r.get(2),
                generation: r.get(3),
            })
        })
        .await
    }

    async fn store_verdict(&self, marks: &PendingVerdict, verdict: &Verdict) -> Result<()> {
        let keys = serde_json::to_string(&verdict.keys)
            .map_err(|e| MetadataError::Backend(Box::new(e)))?;
        let checks = serde_json::to_string(&verdict.checks)
            .map_err(|e| MetadataError::Backend(Box::new(e)))?;
        // Versions only grow and `verified_version <= version`, so with `version = $3` the
        // stored verdict is older unless it was computed under this version and a later
        // generation.
        let query = sqlx::query(
            "UPDATE signature_verdicts
             SET status = $5, keys = $6, checks = $7, verified_version = $3, generation = $4,
                 computed_at = $8
             WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)
               AND digest = $2 AND version = $3
               AND (verified_version < $3 OR generation <= $4)",
        )
        .bind(marks.repository.as_str().to_string())
        .bind(marks.digest.to_string())
        .bind(marks.version)
        .bind(marks.generation)
        .bind(verdict.status.as_str())
        .bind(keys)
        .bind(checks)
        .bind(now_millis());
        self.write(query).await?;
        Ok(())
    }

    async fn signature_manifests(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> Result<Vec<SignatureManifest>> {
        let query = sqlx::query(
            "SELECT m.digest, c.content FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             JOIN manifest_contents c ON c.digest = m.digest
             WHERE r.name = $1 AND m.signed_digest = $2 AND m.kind = 'signature'
             ORDER BY m.created_at, m.digest",
        )
        .bind(repo.as_str().to_string())
        .bind(subject.to_string());
        self.read_all(query, |r| {
            Ok(SignatureManifest {
                digest: digest_of(r.get::<&str, _>(0))?,
                content: bytes::Bytes::from(r.get::<Vec<u8>, _>(1)),
            })
        })
        .await
    }

    async fn manifest_kind(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        let query = sqlx::query(
            "SELECT m.kind FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.digest = $2",
        )
        .bind(repo.as_str().to_string())
        .bind(digest.to_string());
        self.read_one(query, |r| Ok(r.get::<String, _>(0))).await
    }

    async fn parent_manifests(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Digest>> {
        let query = sqlx::query(
            "SELECT f.manifest_digest FROM manifest_references f
             JOIN repositories r ON r.id = f.repository_id
             WHERE r.name = $1 AND f.child_digest = $2 AND f.child_kind = 'manifest'
             ORDER BY f.manifest_digest",
        )
        .bind(repo.as_str().to_string())
        .bind(digest.to_string());
        self.read_all(query, |r| digest_of(r.get::<&str, _>(0)))
            .await
    }

    async fn blob_users(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<(Digest, String)>> {
        let query = sqlx::query(
            "SELECT f.manifest_digest, m.kind FROM manifest_references f
             JOIN repositories r ON r.id = f.repository_id
             JOIN manifests m ON m.repository_id = f.repository_id
                 AND m.digest = f.manifest_digest
             WHERE r.name = $1 AND f.child_digest = $2 AND f.child_kind = 'blob'
             ORDER BY f.manifest_digest",
        )
        .bind(repo.as_str().to_string())
        .bind(digest.to_string());
        self.read_all(query, |r| {
            Ok((digest_of(r.get::<&str, _>(0))?, r.get::<String, _>(1)))
        })
        .await
    }
}

/// A stored requirement text (absent: none).
fn requirement(stored: Option<&str>) -> Requirement {
    match stored {
        Some(VERIFIED) => Requirement::Verified,
        _ => Requirement::None,
    }
}
