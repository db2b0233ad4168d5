//! Pushing, pulling and deleting manifests.

use oci::media_type::{EMPTY_JSON_DIGEST, OCI_EMPTY};
use oci::{Algorithm, Digest, ManifestError, ParsedManifest, Reference, RepoName, Tag};

use super::{facts, Registry, RegistryError, Uploader};
use crate::metadata::{ManifestKey, MetadataError, NewManifest, StoredManifest};
use crate::metrics::metrics;
use crate::storage::ByteStream;

/// The outcome of a manifest push.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    pub digest: Digest,
    /// The `subject` the manifest names, for the `OCI-Subject` reply header.
    pub subject: Option<Digest>,
    /// Every tag now pointing at the manifest.
    pub tags: Vec<Tag>,
    /// What the manifest is (a signature wakes the trust worker).
    pub kind: facts::ManifestKind,
}

impl From<ManifestError> for RegistryError {
    fn from(e: ManifestError) -> Self {
        RegistryError::ManifestInvalid(e.to_string())
    }
}

impl Registry {
    /// Stores `bytes` as a manifest, unchanged, under `reference` and any `extra_tags`.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        extra_tags: Vec<Tag>,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<PushedManifest, RegistryError> {
        let sparse = self.options().sparse;
        self.put_manifest_with(repo, reference, extra_tags, content_type, bytes, &sparse)
            .await
    }

    /// Stores a manifest a proxy cache read from its upstream: as [`Registry::put_manifest`],
    /// but every layer and child manifest may be absent (they are fetched when pulled); the
    /// config of an image must be stored first.
    pub async fn put_cached_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<PushedManifest, RegistryError> {
        let sparse = super::SparseSettings {
            index: true,
            required_archs: Vec::new(),
            manifests: true,
        };
        self.put_manifest_with(repo, reference, Vec::new(), content_type, bytes, &sparse)
            .await
    }

    async fn put_manifest_with(
        &self,
        repo: &RepoName,
        reference: &Reference,
        extra_tags: Vec<Tag>,
        content_type: &str,
        bytes: Vec<u8>,
        sparse: &super::SparseSettings,
    ) -> Result<PushedManifest, RegistryError> {
        let limit = self.options().max_manifest_bytes;
        if bytes.len() > limit {
            return Err(RegistryError::ManifestTooLarge { limit });
        }
        let parsed = oci::manifest::parse(&bytes, content_type)?;
        self.policy().check(&parsed).map_err(|v| {
            metrics().policy_refusal(&v.refused);
            RegistryError::PolicyDenied(Box::new(v))
        })?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = expected.algorithm().digest_of(&bytes);
                if &actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Algorithm::Sha256.digest_of(&bytes),
        };
        let optional = sparse.optional_references(&parsed);
        self.check_references(repo, &parsed, &optional).await?;
        let mut tags = extra_tags;
        if let Reference::Tag(t) = reference {
            tags.insert(0, t.clone());
        }
        tags.dedup();
        let subject = parsed.subject.as_ref().map(|s| s.digest.clone());
        let chart = match parsed.config.as_ref() {
            Some(c) if c.media_type == oci::media_type::HELM_CONFIG => {
                self.read_small_json(&c.digest, c.size).await
            }
            _ => None,
        };
        let facts = facts::facts(&parsed, bytes.len(), &tags, chart.as_ref());
        let kind = facts.kind;
        let record = NewManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            artifact_type: parsed.artifact_type.clone(),
            config_media_type: parsed.config.as_ref().map(|c| c.media_type.clone()),
            subject: subject.clone(),
            annotations: parsed.annotations.clone(),
            blobs: parsed.blob_references().map(|d| d.digest.clone()).collect(),
            children: parsed.manifests.iter().map(|d| d.digest.clone()).collect(),
            optional,
            content: bytes,
            facts,
        };
        match self.meta.put_manifest(repo, &record, &tags).await {
            Err(MetadataError::Conflict) => {
                // Garbage collection removed a referenced blob or child since the check above:
                // checking again names what is gone; if nothing is, a second attempt goes
                // through.
                self.check_references(repo, &parsed, &record.optional)
                    .await?;
                self.meta.put_manifest(repo, &record, &tags).await?;
            }
            other => other?,
        }
        metrics().manifest_pushed(kind);
        Ok(PushedManifest {
            digest,
            subject,
            tags,
            kind,
        })
    }

    /// Checks that every blob and child manifest is readable in `repo` with the declared size,
    /// except those in `optional` (sorted), which may be absent (a sparse manifest's).
    async fn check_references(
        &self,
        repo: &RepoName,
        parsed: &ParsedManifest,
        optional: &[Digest],
    ) -> Result<(), RegistryError> {
        let may_be_absent = |d: &Digest| optional.binary_search(d).is_ok();
        let wanted: Vec<Digest> = parsed.blob_references().map(|d| d.digest.clone()).collect();
        // The empty blob is supplied only once every other reference is known to be there, so
        // a refused manifest leaves nothing behind.
        let mut supply_empty_json = false;
        if !wanted.is_empty() {
            let found = self.meta.linked_blobs(repo, &wanted).await?;
            for d in parsed.blob_references() {
                match found.get(&d.digest) {
                    Some(&size) if size == d.size => {}
                    Some(&size) => {
                        return Err(RegistryError::ManifestInvalid(format!(
                            "descriptor of {} says {} bytes but the blob has {size}",
                            d.digest, d.size
                        )))
                    }
                    None if is_empty_json(d) => supply_empty_json = true,
                    None if may_be_absent(&d.digest) => {}
                    None => return Err(RegistryError::ManifestBlobUnknown(d.digest.clone())),
                }
            }
        }
        if !parsed.manifests.is_empty() {
            let children: Vec<Digest> = parsed.manifests.iter().map(|d| d.digest.clone()).collect();
            let present = self.meta.present_manifests(repo, &children).await?;
            let missing = children
                .iter()
                .find(|d| !present.contains(*d) && !may_be_absent(d));
            if let Some(missing) = missing {
                return Err(RegistryError::ManifestBlobUnknown(missing.clone()));
            }
        }
        if supply_empty_json {
            self.ensure_empty_json_blob(repo).await?;
        }
        Ok(())
    }

    /// Reads a small JSON blob (a Helm chart's config). `None` when it is large, unreadable or
    /// not JSON: facts are best effort and never fail a push.
    async fn read_small_json(&self, digest: &Digest, size: u64) -> Option<serde_json::Value> {
        use futures::TryStreamExt;
        const LIMIT: u64 = 1024 * 1024;
        if size > LIMIT {
            return None;
        }
        let stream = self.blobs.open(digest, None).await.ok()?;
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.ok()?;
        serde_json::from_slice(&chunks.concat()).ok()
    }

    /// Stores the two-byte `{}` blob of the OCI empty descriptor, which some clients reference
    /// without uploading; its content is fixed by the spec, so berth can supply it.
    async fn ensure_empty_json_blob(&self, repo: &RepoName) -> Result<(), RegistryError> {
        let digest: Digest = EMPTY_JSON_DIGEST.parse().expect("constant digest is valid");
        let body: ByteStream = Box::pin(futures::stream::once(async {
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{}"))
        }));
        self.push_blob(repo, &digest, Some(2), body, Uploader::Registry)
            .await
    }

    /// Resolves a tag or digest to a stored manifest.
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest, RegistryError> {
        let key = match reference {
            Reference::Tag(t) => ManifestKey::Tag(t),
            Reference::Digest(d) => ManifestKey::Digest(d),
        };
        self.meta
            .manifest(repo, key)
            .await?
            .ok_or(RegistryError::ManifestUnknown)
    }

    /// Deletes a tag (the manifest stays) or a manifest by digest (with every tag on it).
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(), RegistryError> {
        let existed = match reference {
            Reference::Tag(t) => self.meta.delete_tag(repo, t).await?,
            Reference::Digest(d) => self.meta.delete_manifest(repo, d).await?,
        };
        if existed {
            Ok(())
        } else {
            Err(RegistryError::ManifestUnknown)
        }
    }
}

fn is_empty_json(d: &oci::Descriptor) -> bool {
    d.size == 2
        && d.digest.to_string() == EMPTY_JSON_DIGEST
        && (d.media_type == OCI_EMPTY || d.media_type.ends_with("json"))
}
