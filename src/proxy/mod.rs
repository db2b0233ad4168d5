//! The pull-through proxy cache (Quay's `FEATURE_PROXY_CACHE`, issue 20): `/v2` reads of a
//! repository `{org}/{path}` whose organization is a proxy cache are answered from what is
//! cached, and what is not (or no longer fresh) is read from `{upstream}/{path}` and stored.
//!
//! - Manifests by tag: a tag the proxy confirmed upstream less than `expiration_s` ago is
//!   served without contacting the upstream. After that a HEAD revalidates it: the same digest
//!   marks it confirmed, another (or a tag not cached) fetches the manifest, checks its digest,
//!   stores the exact bytes and moves the tag. An upstream 404 removes the cached tag. When the
//!   upstream cannot be asked, the answer is `MANIFEST_UNKNOWN` saying so (Quay's answer: the
//!   cached copy is stale). Manifests by digest are fetched once and kept.
//! - Manifests are stored without their layers or child manifests (fetched when pulled); an
//!   image's config blob is fetched first, since clients need it before anything else.
//! - Blobs: a miss is streamed to the client while it is stored through an ordinary upload
//!   session, which verifies length and digest before the blob becomes visible; the client's
//!   last chunk is held back until the upstream stream has ended with its length and digest
//!   checked, so a corrupt or truncated upstream answer ends the client's body with an error
//!   (and the store refuses it: nothing is cached). Concurrent pulls of one
//!   missing blob on a replica fetch it once ([`Flights`]): the others wait for the fetch and
//!   read the stored blob. Bytes already stored for another repository are linked only after
//!   the upstream confirmed (HEAD) that this repository has them.
//! - Cached tags not confirmed within `expiration_s` are removed by [`sweep`] (to the tag
//!   history, like a deletion), after which garbage collection reclaims their content.
//!
//! Who may pull is decided by `crate::auth` (any member of the organization); whether a
//! namespace is a proxy cache is remembered under the access generation
//! ([`crate::auth::Auth::proxy_cache_at`]), so ordinary repositories pay nothing for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use oci::media_type::EMPTY_JSON_DIGEST;
use oci::{Digest, ErrorCode, Reference, RepoName};
use tokio::sync::{mpsc, watch};

use crate::app::AppState;
use crate::error::ApiError;
use crate::metadata::proxy_cache::ProxyCacheRecord;
use crate::metadata::{now_millis, MetadataError, StoredManifest};
use crate::metrics::metrics;
use crate::registry::{Registry, RegistryError, Uploader};
use crate::storage::ByteStream;
use crate::upstream::{BlobStream, Upstream, UpstreamError};

/// Chunks buffered between the upstream and the store, and between the upstream and the
/// client: with the chunk held back, memory per fetch stays a few chunks whatever the size.
const CHANNEL_CHUNKS: usize = 4;
/// The upstream's chunks (often a few KiB) are passed on in pieces of at least this size, so
/// a blob costs a few hundred channel hand-offs, not tens of thousands.
const PIECE_BYTES: usize = 256 * 1024;
/// A client that takes no chunk for this long is left behind; the blob is still stored.
const CLIENT_STALL: Duration = Duration::from_secs(60);
/// Referrers of one subject fetched per referrers request at most.
const MAX_REFERRERS: usize = 256;
/// Stale tags the sweep removes per round.
const SWEEP_BATCH: u32 = 500;
/// How often [`sweep_periodically`] looks for stale tags.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Why the content of a proxy cache repository may not change by a push (a manifest, blob,
/// upload, mount, tag move or restore), or `None` when `repo` is not in a proxy cache. Deletes
/// stay allowed to those who may delete: they evict cached content.
pub async fn push_refusal(
    state: &AppState,
    generation: Option<u64>,
    repo: &RepoName,
) -> Result<Option<String>, MetadataError> {
    Ok(state
        .auth
        .proxy_cache_at(generation, repo.namespace())
        .await?
        .map(|config| {
            format!(
                "organization {} is a proxy cache of {}; its content is pulled from there and cannot be pushed",
                config.organization, config.upstream_registry
            )
        }))
}

/// The manifest `reference` names in `repo`: through the proxy cache when `repo` is in one,
/// else as stored.
pub async fn get_manifest(
    state: &AppState,
    generation: Option<u64>,
    repo: &RepoName,
    reference: &Reference,
) -> Result<StoredManifest, ApiError> {
    match Cache::of(state, generation, repo).await? {
        None => Ok(state.registry.get_manifest(repo, reference).await?),
        Some(cache) => cache.manifest(reference).await,
    }
}

/// What a blob that `repo` does not have came to.
pub enum BlobMiss {
    /// `repo` is not in a proxy cache: the miss stands.
    NotProxied,
    /// The blob is now readable in `repo`.
    Local,
    /// The upstream has it, of this size (a HEAD, answered without fetching).
    Head { size: u64 },
    /// Fetched from the upstream: the body streams while it is stored.
    Streaming { size: Option<u64>, body: ByteStream },
}

/// A blob `repo` does not have: fetched from the upstream when `repo` is in a proxy cache.
pub async fn blob_miss(
    state: &AppState,
    generation: Option<u64>,
    repo: &RepoName,
    digest: &Digest,
    head: bool,
) -> Result<BlobMiss, ApiError> {
    match Cache::of(state, generation, repo).await? {
        None => Ok(BlobMiss::NotProxied),
        Some(cache) => cache.blob(digest, head).await,
    }
}

/// Refreshes the cached referrers of `subject` in `repo` from the upstream when `repo` is in a
/// proxy cache; the listing is then answered from what is stored. An upstream that cannot be
/// asked leaves what is cached.
pub async fn refresh_referrers(
    state: &AppState,
    generation: Option<u64>,
    repo: &RepoName,
    subject: &Digest,
) -> Result<(), ApiError> {
    if let Some(cache) = Cache::of(state, generation, repo).await? {
        let window = Duration::from_secs(
            u64::try_from(cache.config.expiration_s.clamp(0, REFERRERS_WINDOW_S)).unwrap_or(0),
        );
        if state
            .proxy_caches
            .referrer_asks
            .due(repo, subject, window, Instant::now())
        {
            cache.referrers(subject).await;
        }
    }
    Ok(())
}

/// The longest a subject's cached referrers are listed without asking the upstream again: a
/// signature added upstream shows within a minute.
const REFERRERS_WINDOW_S: i64 = 60;
/// Subjects whose last ask is remembered, at most.
const MAX_REFERRER_ASKS: usize = 10_000;

/// When this replica last asked an upstream for a subject's referrers, so that listings ask
/// at most once per window (`expiration_s`, at most a minute) and an unreachable upstream
/// does not hold every listing for its connect timeout.
#[derive(Default)]
pub struct ReferrerAsks {
    asked: Mutex<HashMap<(String, Digest), Instant>>,
}

impl ReferrerAsks {
    /// Whether to ask the upstream now for `subject`'s referrers in `repo`; records the ask
    /// when so.
    fn due(&self, repo: &RepoName, subject: &Digest, window: Duration, now: Instant) -> bool {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        let key = (repo.to_string(), subject.clone());
        let recent = |at: &Instant| now.saturating_duration_since(*at) < window;
        if asked.get(&key).is_some_and(recent) {
            return false;
        }
        if asked.len() >= MAX_REFERRER_ASKS {
            asked.retain(|_, at| recent(at));
            if asked.len() >= MAX_REFERRER_ASKS {
                asked.clear();
            }
        }
        asked.insert(key, now);
        true
    }
}

/// Blob fetches in progress on this replica, by repository and digest.
#[derive(Default)]
pub struct Flights {
    running: Mutex<HashMap<(String, Digest), watch::Receiver<bool>>>,
}

impl Flights {
    /// How many fetches are running (for tests and diagnostics).
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Ends a flight when dropped: removes it and wakes the waiting pulls.
struct Flight {
    state: AppState,
    key: (String, Digest),
    done: watch::Sender<bool>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.state
            .proxy_caches
            .pulls
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        let _ = self.done.send(true);
    }
}

/// One repository of a proxy cache organization and its upstream.
struct Cache {
    state: AppState,
    config: Arc<ProxyCacheRecord>,
    upstream: Upstream,
    repo: RepoName,
    /// The repository upstream (the configured namespace prefix applied).
    remote: RepoName,
}

impl Cache {
    /// The cache `repo` is in, if its namespace is a proxy cache organization.
    async fn of(
        state: &AppState,
        generation: Option<u64>,
        repo: &RepoName,
    ) -> Result<Option<Cache>, ApiError> {
        let namespace = repo.namespace();
        let Some(config) = state
            .auth
            .proxy_cache_at(generation, namespace)
            .await
            .map_err(ApiError::internal)?
        else {
            return Ok(None);
        };
        let Some(path) = repo.as_str().strip_prefix(&format!("{namespace}/")) else {
            return Ok(None);
        };
        let upstream = state.proxy_caches.client(&config).map_err(|e| {
            tracing::error!(org = %config.organization, error = %e, "cannot build the proxy cache's upstream client");
            ApiError::new(ErrorCode::Unavailable, "the proxy cache's upstream client cannot be built")
        })?;
        let remote = upstream.repository(path).map_err(|e| {
            ApiError::new(
                ErrorCode::NameInvalid,
                format!("{path} cannot be named upstream: {e}"),
            )
        })?;
        Ok(Some(Cache {
            state: state.clone(),
            config,
            upstream,
            repo: repo.clone(),
            remote,
        }))
    }

    fn registry(&self) -> &Arc<Registry> {
        &self.state.registry
    }

    /// Logs why talking to the upstream failed (the error never carries credentials).
    fn log_failure(&self, what: &str, e: &UpstreamError) {
        tracing::warn!(
            org = %self.config.organization,
            upstream = %self.config.upstream_registry,
            repository = %self.remote,
            error = %e,
            "proxy cache: {what} from the upstream failed"
        );
    }

    /// The answer when the upstream could not give a manifest.
    fn manifest_error(&self, e: &UpstreamError, stale: bool) -> ApiError {
        let upstream = &self.config.upstream_registry;
        let message = match e {
            UpstreamError::NotFound => {
                return ApiError::new(
                    ErrorCode::ManifestUnknown,
                    format!("manifest unknown to the upstream registry {upstream}"),
                )
            }
            UpstreamError::Unreachable(_) if stale => format!(
                "the upstream registry {upstream} is unreachable and the cached copy is stale (not revalidated within {} s)",
                self.config.expiration_s
            ),
            UpstreamError::Unreachable(_) => {
                format!("the upstream registry {upstream} is unreachable")
            }
            UpstreamError::Unauthorized(_) => {
                format!("the upstream registry {upstream} refused the proxy cache's credentials")
            }
            other => format!("the upstream registry {upstream} failed: {other}"),
        };
        ApiError::new(ErrorCode::ManifestUnknown, message)
    }

    /// The answer when the upstream could not give a blob: `BLOB_UNKNOWN` saying why (the
    /// codes a client knows; Quay answers an upstream failure as unknown content too).
    fn blob_error(&self, digest: &Digest, e: &UpstreamError) -> ApiError {
        let upstream = &self.config.upstream_registry;
        let message = match e {
            UpstreamError::NotFound => {
                format!("blob {digest} unknown to the upstream registry {upstream}")
            }
            UpstreamError::Unreachable(_) => {
                format!("blob {digest} is not cached and the upstream registry {upstream} is unreachable")
            }
            UpstreamError::Unauthorized(_) => {
                format!("the upstream registry {upstream} refused the proxy cache's credentials")
            }
            other => format!("the upstream registry {upstream} failed: {other}"),
        };
        ApiError::new(ErrorCode::BlobUnknown, message)
    }

    /// Creates the repository on its first pull: private, as Quay does.
    async fn ensure_repository(&self) -> Result<(), ApiError> {
        let accounts = self.state.auth.accounts();
        if accounts
            .repository_info(&self.repo)
            .await
            .map_err(ApiError::internal)?
            .is_some()
        {
            return Ok(());
        }
        match accounts
            .create_repository(&self.repo, false, "", None)
            .await
        {
            Ok(()) | Err(MetadataError::Conflict) => Ok(()),
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    async fn manifest(&self, reference: &Reference) -> Result<StoredManifest, ApiError> {
        let tag = match reference {
            Reference::Tag(tag) => tag,
            Reference::Digest(digest) => return self.manifest_by_digest(digest).await,
        };
        let store = self.state.proxy_caches.store();
        let cached = store
            .cached_tag(&self.repo, tag)
            .await
            .map_err(ApiError::internal)?;
        let now = now_millis();
        let fresh_until = |validated: i64| validated + self.config.expiration_s * 1000;
        if let Some(c) = &cached {
            if c.validated_at.is_some_and(|v| now < fresh_until(v)) {
                if let Ok(m) = self.registry().get_manifest(&self.repo, reference).await {
                    metrics().proxy_request("manifest", "hit");
                    return Ok(m);
                }
            }
        }
        let head = self.upstream.head_manifest(&self.remote, reference).await;
        match head {
            Ok(head) => {
                if let (Some(c), Some(said)) = (&cached, &head.digest) {
                    if c.digest == *said {
                        store
                            .mark_tag_validated(&self.repo, tag, said, now)
                            .await
                            .map_err(ApiError::internal)?;
                        if let Ok(m) = self.registry().get_manifest(&self.repo, reference).await {
                            metrics().proxy_request("manifest", "revalidated");
                            return Ok(m);
                        }
                    }
                }
                let fetched = match self.upstream.get_manifest(&self.remote, reference).await {
                    Ok(m) => m,
                    Err(e) => {
                        self.log_failure("fetching a manifest", &e);
                        metrics().proxy_request("manifest", "error");
                        return Err(self.manifest_error(&e, cached.is_some()));
                    }
                };
                let stored = self.store_manifest(fetched, reference).await?;
                store
                    .mark_tag_validated(&self.repo, tag, &stored.digest, now)
                    .await
                    .map_err(ApiError::internal)?;
                metrics().proxy_request("manifest", "miss");
                Ok(stored)
            }
            Err(UpstreamError::NotFound) => {
                if cached.is_some() {
                    // Gone upstream: the cached tag goes too (to the tag history).
                    match self.registry().delete_manifest(&self.repo, reference).await {
                        Ok(()) | Err(RegistryError::ManifestUnknown) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                metrics().proxy_request("manifest", "miss");
                Err(self.manifest_error(&UpstreamError::NotFound, false))
            }
            Err(e) => {
                self.log_failure("revalidating a tag", &e);
                let result = if cached.is_some() { "stale" } else { "error" };
                metrics().proxy_request("manifest", result);
                Err(self.manifest_error(&e, cached.is_some()))
            }
        }
    }

    async fn manifest_by_digest(&self, digest: &Digest) -> Result<StoredManifest, ApiError> {
        let reference = Reference::Digest(digest.clone());
        match self.registry().get_manifest(&self.repo, &reference).await {
            Ok(m) => {
                metrics().proxy_request("manifest", "hit");
                return Ok(m);
            }
            Err(RegistryError::ManifestUnknown) => {}
            Err(e) => return Err(e.into()),
        }
        let fetched = match self.upstream.get_manifest(&self.remote, &reference).await {
            Ok(m) => m,
            Err(e) => {
                if !matches!(e, UpstreamError::NotFound) {
                    self.log_failure("fetching a manifest", &e);
                }
                metrics().proxy_request("manifest", "error");
                return Err(self.manifest_error(&e, false));
            }
        };
        let stored = self.store_manifest(fetched, &reference).await?;
        metrics().proxy_request("manifest", "miss");
        Ok(stored)
    }

    /// Stores a manifest read from the upstream (its digest already checked), unchanged,
    /// after its config blob.
    async fn store_manifest(
        &self,
        fetched: crate::upstream::Manifest,
        reference: &Reference,
    ) -> Result<StoredManifest, ApiError> {
        let parsed = oci::manifest::parse(&fetched.bytes, &fetched.media_type).map_err(|e| {
            ApiError::new(
                ErrorCode::ManifestInvalid,
                format!("the upstream's manifest is invalid: {e}"),
            )
        })?;
        self.ensure_repository().await?;
        if let Some(config) = &parsed.config {
            if config.digest.to_string() != EMPTY_JSON_DIGEST {
                self.ensure_blob(&config.digest).await?;
            }
        }
        let pushed = self
            .registry()
            .put_cached_manifest(
                &self.repo,
                reference,
                &fetched.media_type,
                fetched.bytes.to_vec(),
            )
            .await?;
        if pushed.kind == crate::registry::facts::ManifestKind::Signature {
            self.state.trust.signature_stored();
        }
        Ok(StoredManifest {
            digest: pushed.digest,
            media_type: fetched.media_type,
            content: fetched.bytes.to_vec(),
        })
    }

    /// Makes `digest` readable in the repository, fetching it when needed (an image config).
    async fn ensure_blob(&self, digest: &Digest) -> Result<(), ApiError> {
        match self.registry().stat_blob(&self.repo, digest).await {
            Ok(_) => return Ok(()),
            Err(RegistryError::BlobUnknown(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match self.blob(digest, false).await? {
            BlobMiss::Local => Ok(()),
            BlobMiss::Streaming { mut body, .. } => {
                // This pull leads the fetch: it reads the body to its end (one chunk at a
                // time), which comes once the blob is stored, or ends with the failure.
                while let Some(chunk) = body.next().await {
                    if let Err(e) = chunk {
                        return Err(ApiError::new(
                            ErrorCode::BlobUnknown,
                            format!("blob {digest} could not be cached: {e}"),
                        ));
                    }
                }
                Ok(())
            }
            _ => Err(ApiError::new(
                ErrorCode::BlobUnknown,
                format!("blob {digest} could not be cached"),
            )),
        }
    }

    /// A blob the repository does not have. `head`: the client only asks whether it exists.
    async fn blob(&self, digest: &Digest, head: bool) -> Result<BlobMiss, ApiError> {
        // Bytes stored for another repository are linked only once the upstream confirmed
        // that this repository has them: knowing a digest reads nothing it could not pull.
        if let Some(size) = self.registry().stored_blob_size(digest).await? {
            match self.upstream.head_blob(&self.remote, digest).await {
                Ok(said) if said.is_none_or(|s| s == size) => {
                    self.ensure_repository().await?;
                    if self
                        .registry()
                        .link_stored_blob(&self.repo, digest, size)
                        .await?
                    {
                        metrics().proxy_request("blob", "hit");
                        return Ok(BlobMiss::Local);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if !matches!(e, UpstreamError::NotFound) {
                        self.log_failure("confirming a blob", &e);
                    }
                    metrics().proxy_request("blob", "error");
                    return Err(self.blob_error(digest, &e));
                }
            }
        }
        if head {
            return match self.upstream.head_blob(&self.remote, digest).await {
                Ok(Some(size)) => {
                    metrics().proxy_request("blob", "miss");
                    Ok(BlobMiss::Head { size })
                }
                // The upstream has it but does not say its size (a redirect): fetched, so the
                // answer carries the size clients read from a HEAD.
                Ok(None) => match self.fetch(digest).await? {
                    BlobMiss::Streaming { mut body, .. } => {
                        while let Some(chunk) = body.next().await {
                            if let Err(e) = chunk {
                                return Err(ApiError::new(
                                    ErrorCode::BlobUnknown,
                                    format!("blob {digest} could not be cached: {e}"),
                                ));
                            }
                        }
                        Ok(BlobMiss::Local)
                    }
                    other => Ok(other),
                },
                Err(e) => {
                    if !matches!(e, UpstreamError::NotFound) {
                        self.log_failure("asking for a blob", &e);
                    }
                    metrics().proxy_request("blob", "error");
                    Err(self.blob_error(digest, &e))
                }
            };
        }
        self.fetch(digest).await
    }

    /// Fetches a blob from the upstream once per replica: the first pull (the leader) streams
    /// it while storing it; the others wait for it to be stored and read it from the store.
    async fn fetch(&self, digest: &Digest) -> Result<BlobMiss, ApiError> {
        let key = (self.repo.to_string(), digest.clone());
        let flights = &self.state.proxy_caches.pulls;
        let (done_tx, done_rx) = watch::channel(false);
        let running = {
            let mut running = flights.running.lock().unwrap_or_else(|e| e.into_inner());
            match running.get(&key) {
                Some(rx) => Some(rx.clone()),
                None => {
                    running.insert(key.clone(), done_rx.clone());
                    None
                }
            }
        };
        if let Some(mut rx) = running {
            // A follower: wait for the leader, then read what it stored.
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
            return self.after_flight(digest).await;
        }
        let flight = Flight {
            state: self.state.clone(),
            key,
            done: done_tx,
        };
        // A flight that ended just before this one began may have stored it.
        if self.registry().stat_blob(&self.repo, digest).await.is_ok() {
            metrics().proxy_request("blob", "hit");
            return Ok(BlobMiss::Local);
        }
        let started = std::time::Instant::now();
        let stream = match self.upstream.get_blob(&self.remote, digest).await {
            Ok(s) => s,
            Err(e) => {
                if !matches!(e, UpstreamError::NotFound) {
                    self.log_failure("fetching a blob", &e);
                }
                metrics().proxy_request("blob", "error");
                return Err(self.blob_error(digest, &e));
            }
        };
        let limit = self.registry().options().limits.max_blob_bytes;
        if stream.size.is_some_and(|s| s > limit) {
            return Err(RegistryError::BlobTooLarge { limit }.into());
        }
        self.ensure_repository().await?;
        metrics().proxy_request("blob", "miss");
        let size = stream.size;
        let (client_tx, mut client_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let job = Pump {
            registry: self.registry().clone(),
            repo: self.repo.clone(),
            digest: digest.clone(),
            org: self.config.organization.clone(),
            upstream: self.config.upstream_registry.clone(),
            started,
        };
        // Its own task: a client that goes away does not stop the blob being stored.
        tokio::spawn(job.run(stream, client_tx, flight));
        let body: ByteStream =
            Box::pin(futures::stream::poll_fn(move |cx| client_rx.poll_recv(cx)));
        Ok(BlobMiss::Streaming { size, body })
    }

    /// What a pull that waited for another's fetch reads.
    async fn after_flight(&self, digest: &Digest) -> Result<BlobMiss, ApiError> {
        match self.registry().stat_blob(&self.repo, digest).await {
            Ok(_) => {
                metrics().proxy_request("blob", "hit");
                Ok(BlobMiss::Local)
            }
            Err(RegistryError::BlobUnknown(_)) => {
                metrics().proxy_request("blob", "error");
                Err(ApiError::new(
                    ErrorCode::BlobUnknown,
                    format!(
                        "fetching blob {digest} from the upstream registry {} failed",
                        self.config.upstream_registry
                    ),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Fetches the referrers of `subject` from the upstream and stores those not cached.
    async fn referrers(&self, subject: &Digest) {
        let listed = match self.upstream.referrers(&self.remote, subject).await {
            Ok(r) => r.manifests,
            Err(e) => {
                self.log_failure("listing referrers", &e);
                return;
            }
        };
        for descriptor in listed.iter().take(MAX_REFERRERS) {
            let Some(digest) = descriptor
                .get("digest")
                .and_then(|d| d.as_str())
                .and_then(|d| d.parse::<Digest>().ok())
            else {
                continue;
            };
            if let Err(e) = self.manifest_by_digest(&digest).await {
                tracing::warn!(repository = %self.repo, %digest, error = %e.message(), "proxy cache: cannot cache a referrer");
            }
        }
    }
}

/// A blob fetch's storing half, running in its own task.
struct Pump {
    registry: Arc<Registry>,
    repo: RepoName,
    digest: Digest,
    org: String,
    upstream: String,
    started: std::time::Instant,
}

type Chunk = Result<Bytes, std::io::Error>;

impl Pump {
    /// Streams `stream` into an upload session and to the client. The client's last chunk
    /// is held back until the stream has verified length and digest, so a blob that fails
    /// verification ends the client's body with an error instead of a clean end; the client
    /// does not wait for the store to make the blob durable.
    async fn run(self, stream: BlobStream, client: mpsc::Sender<Chunk>, flight: Flight) {
        let (store_tx, mut store_rx) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
        let body: ByteStream = Box::pin(futures::stream::poll_fn(move |cx| store_rx.poll_recv(cx)));
        let size = stream.size;
        let store =
            self.registry
                .push_blob(&self.repo, &self.digest, size, body, Uploader::Registry);
        let mut stream = coalesced(stream, PIECE_BYTES);
        let pump = async move {
            let mut client = Some(client);
            let mut held: Option<Bytes> = None;
            let mut failure: Option<String> = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) => {
                        metrics().proxy_upstream_bytes(chunk.len() as u64);
                        if store_tx.send(Ok(chunk.clone())).await.is_err() {
                            failure = Some("storing stopped".into());
                            break;
                        }
                        if let Some(previous) = held.replace(chunk) {
                            if let Some(tx) = &client {
                                match tokio::time::timeout(CLIENT_STALL, tx.send(Ok(previous)))
                                    .await
                                {
                                    Ok(Ok(())) => {}
                                    // Gone or stalled: the blob is stored all the same.
                                    _ => client = None,
                                }
                            }
                        }
                    }
                    Err(e) => {
                        failure = Some(e.to_string());
                        let _ = store_tx
                            .send(Err(std::io::Error::other(e.to_string())))
                            .await;
                        break;
                    }
                }
            }
            drop(store_tx);
            // The upstream stream ended cleanly, so its length and digest were checked as it
            // ended: the client may have its last bytes now, while the store makes the blob
            // durable and visible (waiting pulls still wait for that).
            if failure.is_none() {
                if let (Some(tx), Some(last)) = (&client, held.take()) {
                    if !matches!(
                        tokio::time::timeout(CLIENT_STALL, tx.send(Ok(last))).await,
                        Ok(Ok(()))
                    ) {
                        client = None;
                    }
                }
            }
            (client, held, failure)
        };
        let (stored, (client, held, failure)) = tokio::join!(store, pump);
        let failure = failure.or_else(|| stored.err().map(|e| e.to_string()));
        metrics().proxy_upstream_fetch(failure.is_none());
        match &failure {
            None => tracing::info!(
                org = %self.org, repository = %self.repo, digest = %self.digest,
                seconds = self.started.elapsed().as_secs_f64(),
                "proxy cache: blob fetched from the upstream and stored"
            ),
            Some(why) => tracing::warn!(
                org = %self.org, upstream = %self.upstream, repository = %self.repo,
                digest = %self.digest, error = %why,
                "proxy cache: fetching a blob from the upstream failed; nothing was cached"
            ),
        }
        // The blob is visible (or definitely not) before the waiting pulls wake.
        drop(flight);
        if let Some(tx) = client {
            let last = match failure {
                None => held.map(Ok),
                Some(why) => Some(Err(std::io::Error::other(format!(
                    "fetching the blob from the upstream failed: {why}"
                )))),
            };
            if let Some(last) = last {
                let _ = tokio::time::timeout(CLIENT_STALL, tx.send(last)).await;
            }
        }
    }
}

/// `stream` in pieces of at least `min` bytes (the last may be shorter); an error ends it.
fn coalesced(
    stream: BlobStream,
    min: usize,
) -> impl futures::Stream<Item = Result<Bytes, UpstreamError>> + Unpin {
    Box::pin(futures::stream::unfold(
        (stream, false),
        move |(mut stream, done)| async move {
            if done {
                return None;
            }
            let mut piece = bytes::BytesMut::new();
            loop {
                match stream.next().await {
                    Some(Ok(chunk)) => {
                        if piece.is_empty() && chunk.len() >= min {
                            return Some((Ok(chunk), (stream, false)));
                        }
                        piece.extend_from_slice(&chunk);
                        if piece.len() >= min {
                            return Some((Ok(piece.freeze()), (stream, false)));
                        }
                    }
                    // The bytes before an error are not passed on: the blob is refused.
                    Some(Err(e)) => return Some((Err(e), (stream, true))),
                    None if piece.is_empty() => return None,
                    None => return Some((Ok(piece.freeze()), (stream, true))),
                }
            }
        },
    ))
}

/// Removes cached tags not confirmed upstream within their organization's `expiration_s`
/// (to the tag history, like deletions); garbage collection then reclaims their content.
/// Idempotent, so replicas sweeping at once only repeat each other's work. Returns how many
/// tags it removed.
pub async fn sweep(state: &AppState) -> Result<u64, RegistryError> {
    let store = state.proxy_caches.store();
    let mut removed = 0;
    loop {
        let stale = store.stale_proxy_tags(now_millis(), SWEEP_BATCH).await?;
        let n = stale.len();
        for (repo, tag) in stale {
            match state
                .registry
                .delete_manifest(&repo, &Reference::Tag(tag.clone()))
                .await
            {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(%repo, %tag, "proxy cache: removed a tag not revalidated within expiration_s");
                }
                Err(RegistryError::ManifestUnknown) => {}
                Err(e) => return Err(e),
            }
        }
        if n < SWEEP_BATCH as usize {
            break;
        }
    }
    metrics().proxy_tags_expired(removed);
    Ok(removed)
}

/// Runs [`sweep`] every [`SWEEP_INTERVAL`].
pub async fn sweep_periodically(state: AppState) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "proxy cache: the expiry sweep failed; retrying later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrers_are_asked_for_once_per_window() {
        let asks = ReferrerAsks::default();
        let repo: RepoName = "cache/library/app".parse().unwrap();
        let other: RepoName = "cache/library/other".parse().unwrap();
        let subject: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let window = Duration::from_secs(60);
        let t0 = Instant::now();
        assert!(asks.due(&repo, &subject, window, t0));
        assert!(!asks.due(&repo, &subject, window, t0 + Duration::from_secs(59)));
        assert!(asks.due(&other, &subject, window, t0), "per repository");
        assert!(asks.due(&repo, &subject, window, t0 + Duration::from_secs(61)));
        // A window of zero (expiration_s 0) asks every time.
        assert!(asks.due(
            &repo,
            &subject,
            Duration::ZERO,
            t0 + Duration::from_secs(61)
        ));
    }
}
