//! The trust service: computing and storing verdicts, the background worker that keeps them
//! current, and the enforcement decision of a trust policy.
//!
//! Invariants (see ARCHITECTURE.md):
//! - A verdict is stored with the marks read *before* its evidence (the subject's signature
//!   version, the trust generation), and only when no newer one is stored: a slow computation
//!   never replaces a newer one, and one that raced a change stays stale and is done again.
//! - The policy in force on a repository is the stricter of its own and its namespace's; it is
//!   remembered per access generation ([`crate::auth::Auth::trust_policy_at`]), so a request on
//!   a repository without a policy costs one map lookup.
//! - [`Trust::gate`] only ever refuses under a policy, and never a signature, attestation or
//!   SBOM; a stale verdict is recomputed before it decides.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use oci::{Digest, RepoName};

use super::{blobs_needed, check, verdict, Status, TrustedKey, Verdict, MAX_EVIDENCE_BLOB};
use crate::metadata::trust::{PendingVerdict, StoredVerdict, TrustScope, TrustStore};
use crate::metadata::{MetadataError, Store};
use crate::metrics::metrics;
use crate::registry::Registry;

/// Stale verdicts the worker takes per round.
const BATCH: u32 = 64;
/// How often the worker looks for stale verdicts when nothing woke it (other replicas'
/// pushes, key changes).
const POLL: Duration = Duration::from_secs(1);
/// Manifests referencing a blob that a blob read looks at before refusing it.
const MAX_BLOB_USERS: usize = 256;

/// What a read under a trust policy asks for.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A manifest, by its digest (a tag resolved first).
    Manifest(&'a Digest),
    /// A blob fetched by digest through the repository.
    Blob(&'a Digest),
    /// A manifest's descriptor only: a HEAD by digest, which serves no content. Answered for
    /// verified manifests and for those that carry signatures (untrusted or invalid), because
    /// signature verifiers resolve the descriptor before they read the signatures
    /// (`notation verify` compares the signed media type and size with it).
    Descriptor(&'a Digest),
}

/// Why a read was refused: the policy's scope and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The trust service of a process.
pub struct Trust {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    /// Woken when this process stores a signature manifest.
    wake: tokio::sync::Notify,
}

impl Trust {
    pub fn new(store: Arc<dyn Store>, registry: Arc<Registry>) -> Trust {
        Trust {
            store,
            registry,
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The store of keys, policies and verdicts.
    pub fn store(&self) -> &dyn TrustStore {
        &*self.store
    }

    /// Tells the worker a signature manifest was just stored here.
    pub fn signature_stored(&self) {
        self.wake.notify_one();
    }

    /// Computes the verdict of `subject` in `repo` from its signature manifests and the keys
    /// that apply, and stores it under the marks read before the evidence (unless a newer one
    /// is stored by then). Returns what was computed.
    pub async fn refresh(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> Result<Verdict, MetadataError> {
        let marks = self.store.pending_marks(repo, subject).await?;
        self.compute(&marks).await
    }

    async fn compute(&self, marks: &PendingVerdict) -> Result<Verdict, MetadataError> {
        let (repo, subject) = (&marks.repository, &marks.digest);
        let keys: Vec<TrustedKey> = self
            .store
            .keys_for(repo)
            .await?
            .into_iter()
            .map(|k| TrustedKey {
                name: k.name,
                kind: k.kind,
                material: k.material,
            })
            .collect();
        let mut checks = Vec::new();
        for signature in self.store.signature_manifests(repo, subject).await? {
            let mut blobs = HashMap::new();
            for (digest, size) in blobs_needed(&signature.content) {
                if size > MAX_EVIDENCE_BLOB {
                    continue;
                }
                if let Some(bytes) = self.evidence(repo, &digest).await {
                    blobs.insert(digest, bytes);
                }
            }
            checks.extend(check(
                subject,
                &signature.digest,
                &signature.content,
                &blobs,
                &keys,
            ));
        }
        let computed = verdict(checks);
        self.store.store_verdict(marks, &computed).await?;
        metrics().trust_verification(computed.status);
        Ok(computed)
    }

    /// A small blob linked in `repo`, whole; `None` when it is not linked there, larger than
    /// [`MAX_EVIDENCE_BLOB`] or unreadable (its signature then does not verify).
    async fn evidence(&self, repo: &RepoName, digest: &Digest) -> Option<Bytes> {
        let size = self.registry.stat_blob(repo, digest).await.ok()?;
        if size > MAX_EVIDENCE_BLOB {
            return None;
        }
        let mut stream = match self.registry.open_blob(repo, digest, None).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%repo, %digest, error = %e, "cannot read a signature's blob");
                return None;
            }
        };
        let mut bytes = BytesMut::with_capacity(size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.ok()?;
            if (bytes.len() + chunk.len()) as u64 > MAX_EVIDENCE_BLOB {
                return None;
            }
            bytes.extend_from_slice(&chunk);
        }
        Some(bytes.freeze())
    }

    /// Recomputes up to one batch of stale verdicts, oldest first; how many it took.
    pub async fn run_once(&self) -> Result<usize, MetadataError> {
        let stale = self.store.stale_verdicts(BATCH).await?;
        for marks in &stale {
            if let Err(e) = self.compute(marks).await {
                tracing::warn!(repository = %marks.repository, digest = %marks.digest, error = %e,
                    "cannot compute a signature verdict");
            }
        }
        Ok(stale.len())
    }

    /// The current verdict of a manifest: the stored one when current, else computed now.
    async fn current(
        &self,
        repo: &RepoName,
        digest: &Digest,
        stored: Option<&StoredVerdict>,
    ) -> Result<Status, MetadataError> {
        match stored {
            Some(v) if v.current => Ok(v.verdict.status),
            Some(_) => Ok(self.refresh(repo, digest).await?.status),
            None => Ok(Status::Unsigned),
        }
    }

    /// Whether a manifest may be served under a policy: it is a signature, attestation or
    /// SBOM, or verified, or a child of a verified index of the repository. `Err` carries its
    /// status when it may not.
    async fn servable(
        &self,
        repo: &RepoName,
        digest: &Digest,
        kind: Option<&str>,
    ) -> Result<Result<(), Status>, MetadataError> {
        let kind = match kind {
            Some(k) => Some(k.to_string()),
            None => self.store.manifest_kind(repo, digest).await?,
        };
        if matches!(kind.as_deref(), Some("signature" | "attestation" | "sbom")) {
            return Ok(Ok(()));
        }
        let mut wanted = vec![digest.clone()];
        let parents = self.store.parent_manifests(repo, digest).await?;
        wanted.extend(parents.iter().cloned());
        let stored = self.store.verdicts(repo, &wanted).await?;
        let find = |d: &Digest| stored.iter().find(|v| &v.digest == d);
        let own = self.current(repo, digest, find(digest)).await?;
        if own == Status::Verified {
            return Ok(Ok(()));
        }
        for parent in &parents {
            if self.current(repo, parent, find(parent)).await? == Status::Verified {
                return Ok(Ok(()));
            }
        }
        Ok(Err(own))
    }

    /// The enforcement decision for a read of `target` in `repo`: `Ok` when no policy is in
    /// force (one remembered lookup under `generation`, the access generation the request was
    /// authorized under) or the target is servable under it.
    pub async fn gate(
        &self,
        auth: &crate::auth::Auth,
        generation: Option<u64>,
        repo: &RepoName,
        target: Target<'_>,
    ) -> Result<Result<(), Refusal>, MetadataError> {
        let Some(scope) = auth.trust_policy_at(generation, repo, self.store()).await? else {
            return Ok(Ok(()));
        };
        let policy = match &*scope {
            TrustScope::Namespace(ns) => format!("trust policy of organization {ns:?}"),
            TrustScope::Repository(r) => format!("trust policy of repository \"{r}\""),
        };
        match target {
            Target::Manifest(digest) | Target::Descriptor(digest) => {
                match self.servable(repo, digest, None).await? {
                    Ok(()) => Ok(Ok(())),
                    Err(Status::Untrusted | Status::Invalid)
                        if matches!(target, Target::Descriptor(_)) =>
                    {
                        Ok(Ok(()))
                    }
                    Err(status) => {
                        metrics().trust_refusal("manifest");
                        Ok(Err(Refusal(format!(
                            "{policy} requires verified signatures; {digest} is {}",
                            status.as_str()
                        ))))
                    }
                }
            }
            Target::Blob(digest) => {
                let users = self.store.blob_users(repo, digest).await?;
                let mut first = None;
                for (manifest, kind) in users.iter().take(MAX_BLOB_USERS) {
                    match self.servable(repo, manifest, Some(kind)).await? {
                        Ok(()) => return Ok(Ok(())),
                        Err(status) => {
                            first.get_or_insert((manifest.clone(), status));
                        }
                    }
                }
                metrics().trust_refusal("blob");
                let why = match first {
                    Some((manifest, status)) => format!(
                        "blob {digest} belongs to no verified manifest ({manifest} is {})",
                        status.as_str()
                    ),
                    None => format!("blob {digest} belongs to no verified manifest"),
                };
                Ok(Err(Refusal(format!(
                    "{policy} requires verified signatures; {why}"
                ))))
            }
        }
    }
}

/// Keeps the verdicts current while berth serves: every replica runs one. Woken at once by a
/// signature stored by this process, else every [`POLL`]; errors are logged and retried.
pub async fn verify_periodically(trust: Arc<Trust>) {
    loop {
        // Work through a backlog without waiting between full batches.
        loop {
            match trust.run_once().await {
                Ok(n) if n as u32 >= BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read stale signature verdicts; retrying");
                    break;
                }
            }
        }
        let _ = tokio::time::timeout(POLL, trust.wake.notified()).await;
    }
}
