//! Registry operations: the domain steps behind every /v2 endpoint, free of HTTP types.
//!
//! Invariants kept here:
//! - A blob becomes readable in a repository only after its digest was verified and its bytes
//!   are durable; the metadata link is written after the bytes.
//! - A manifest is stored only when every blob and child manifest it references is readable
//!   in the same repository (its `subject` may be absent), except what the sparse-manifest
//!   switches let it leave absent ([`SparseSettings`]).
//! - Deleting a tag, manifest or blob link never deletes bytes; that is garbage collection's job.

mod blobs;
mod error;
pub mod facts;
mod listing;
mod manifests;
mod slots;
mod sparse;
mod uploads;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use blobs::BlobBody;
pub use error::RegistryError;
pub use listing::{Page, ReferrersPage};
pub use manifests::PushedManifest;
pub use sparse::SparseSettings;
pub use uploads::{ChunkRange, UploadState, Uploader};

use crate::config::Settings;
use crate::metadata::{MetadataError, MetadataStore};
use crate::policy::ArtifactPolicy;
use crate::storage::{BlobStore, StorageError, UploadId};
use slots::{UploadSlot, UploadSlots};

/// Limits and switches the registry operations obey.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// Largest page the tag list, catalog and referrers endpoints return.
    pub max_page_size: u32,
    /// How long a deleted or moved tag stays restorable (`DEFAULT_TAG_EXPIRATION`).
    pub tag_expiration: std::time::Duration,
    /// Stream blob bytes through berth even when the store can sign a URL for them.
    pub proxy_storage: bool,
    /// Open upload sessions, blob size and tags per push.
    pub limits: crate::config::Limits,
    /// Which references a manifest push may leave absent.
    pub sparse: SparseSettings,
}

/// The settings that a config reload replaces, swapped as one value.
struct Live {
    options: RegistryOptions,
    policy: Arc<ArtifactPolicy>,
}

impl Live {
    fn from_settings(settings: &Settings) -> Self {
        Live {
            options: RegistryOptions {
                max_manifest_bytes: settings.manifest_max_bytes,
                max_page_size: settings.list_max_page_size,
                tag_expiration: settings.gc.tag_expiration,
                proxy_storage: settings.proxy_storage,
                limits: settings.limits,
                sparse: settings.sparse.clone(),
            },
            policy: Arc::new(ArtifactPolicy::new(settings.policy.clone())),
        }
    }
}

/// The registry: metadata, blob storage and the in-process state of active uploads.
pub struct Registry {
    meta: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    live: RwLock<Arc<Live>>,
    /// Serializes the requests on one upload session, holding only the sessions in use.
    slots: UploadSlots,
}

impl Registry {
    /// Wires a registry over the given stores.
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        settings: &Settings,
    ) -> Self {
        Registry {
            meta,
            blobs,
            live: RwLock::new(Arc::new(Live::from_settings(settings))),
            slots: UploadSlots::default(),
        }
    }

    fn live(&self) -> Arc<Live> {
        self.live.read().expect("settings lock poisoned").clone()
    }

    /// Replaces the reloadable settings; requests that already started keep the old ones.
    pub fn apply_settings(&self, settings: &Settings) {
        *self.live.write().expect("settings lock poisoned") =
            Arc::new(Live::from_settings(settings));
    }

    /// The options in force.
    pub fn options(&self) -> RegistryOptions {
        self.live().options.clone()
    }

    /// The artifact policy in force.
    pub fn policy(&self) -> Arc<ArtifactPolicy> {
        self.live().policy.clone()
    }

    /// A real write and read of the metadata database, by a probe named `probe`.
    pub async fn probe_metadata(&self, probe: &str) -> Result<(), MetadataError> {
        self.meta.probe(probe).await
    }

    /// The registry-wide totals (blobs, their bytes, open upload sessions) for the metrics.
    pub async fn totals(&self) -> Result<crate::metadata::Totals, MetadataError> {
        self.meta.totals().await
    }

    /// A real write and read of the blob store, by a probe named `probe`.
    pub async fn probe_storage(&self, probe: &str) -> Result<(), StorageError> {
        self.blobs.probe(probe).await
    }

    /// How many upload sessions requests are working on in this process right now (each
    /// has an in-memory lock while, and only while, a request uses it).
    pub fn upload_slots_in_use(&self) -> usize {
        self.slots.len()
    }

    /// Reconciles storage with metadata after a restart: upload data without a session is
    /// removed, data longer than its recorded length (a crash mid-append) is cut back, and a
    /// session whose data is missing is forgotten. Sessions of single-request pushes, which no
    /// client can resume, are discarded with their data.
    pub async fn recover(&self) -> Result<(), RegistryError> {
        if self.blobs.is_shared() {
            // Other replicas' live uploads are in a shared store; abandoned ones are reclaimed
            // by garbage collection after their configured age.
            return Ok(());
        }
        let removed = self.blobs.remove_leftovers().await?;
        if removed > 0 {
            tracing::info!("removed {removed} temporary files left by an interrupted commit");
        }
        let mut recorded: HashMap<UploadId, u64> = HashMap::new();
        for upload in self.meta.list_uploads().await? {
            if upload.resumable {
                recorded.insert(upload.id, upload.length);
            } else {
                // Left by a single-request push cut off by a crash: no client can resume it.
                self.meta.delete_upload(&upload.id).await?;
            }
        }
        let stored: HashMap<UploadId, u64> = self.blobs.list_uploads().await?.into_iter().collect();
        for (id, len) in &stored {
            match recorded.get(id) {
                None => self.blobs.delete_upload(id, None).await?,
                Some(&want) if *len > want => self.blobs.truncate_upload(id, want).await?,
                Some(&want) if *len < want => {
                    tracing::warn!(upload = %id, "upload data shorter than recorded; discarding the session");
                    self.meta.delete_upload(id).await?;
                    self.blobs.delete_upload(id, None).await?;
                }
                Some(_) => {}
            }
        }
        for id in recorded.keys().filter(|id| !stored.contains_key(*id)) {
            tracing::warn!(upload = %id, "upload data missing; discarding the session");
            self.meta.delete_upload(id).await?;
        }
        Ok(())
    }
}
