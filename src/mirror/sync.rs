//! The repository mirror sync worker (issue 20): on every replica, [`sync_periodically`] looks
//! for due mirrors every `REPO_MIRROR_INTERVAL`, claims one through the store's lease (one
//! replica syncs a repository at a time), and copies the upstream repository's matching tags
//! into it through [`crate::registry::Registry`], as a push would, never over `/v2` (so the
//! refusal of user pushes into a `MIRROR` repository, which lives in the HTTP layer, does not
//! apply to it).
//!
//! A sync lists the upstream's tags, keeps those the `tag_glob_csv` rule matches and, for each:
//! compares the upstream digest with the local tag's (equal: nothing moves), otherwise fetches
//! the manifest (its digest checked), copies the children of an index first, then every blob the
//! repository lacks (linked when the store already holds it and the upstream served it,
//! otherwise streamed from the upstream into the store and verified before it is committed),
//! then stores the exact manifest bytes with the tag. The cosign tags (`sha256-<hex>.sig`,
//! `.att`, `.sbom`) and OCI 1.1 referrers of what it copied follow. Local tags that are no
//! longer upstream, or no longer match, are deleted (tag history keeps them).
//!
//! Every write is one the registry makes durable before it becomes visible (a blob is
//! committed after its digest is verified, a manifest after its blobs and children), so a
//! replica killed mid-sync leaves only consistent content; its lease then runs out and the
//! next sync, here or on another replica, finds the copied tags unchanged and finishes.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use oci::{Digest, Reference, RepoName, Tag};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::metadata::mirror::{MirrorRecord, SyncOutcome};
use crate::metadata::now_millis;
use crate::metrics::metrics;
use crate::registry::{RegistryError, Uploader};
use crate::storage::ByteStream;
use crate::upstream::{
    Credentials, Manifest, ProxyConfig, Upstream, UpstreamConfig, UpstreamError, UpstreamRegistry,
};
use crate::usage_log::{Event, Performer};

/// Mirrors claimed per look, at most.
const BATCH: u32 = 16;
/// Tag entries a sync log keeps; the rest are counted.
const MAX_LOG_TAGS: usize = 200;
/// Characters of one error message a sync log keeps.
const MAX_ERROR_CHARS: usize = 300;
/// How deep referrers of referrers (a signature of an SBOM) are followed.
const MAX_REFERRER_DEPTH: usize = 3;
/// The cosign tag-scheme suffixes copied with a digest.
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// How long a sync's claim lasts without renewal: three worker intervals, 5 s to 5 min.
pub fn lease_ttl(interval: Duration) -> Duration {
    (interval * 3).clamp(Duration::from_secs(5), Duration::from_secs(300))
}

/// Runs this replica's sync worker: while `FEATURE_REPO_MIRROR` is on, syncs every due mirror
/// it can claim, then waits `REPO_MIRROR_INTERVAL` (or a local "sync now"). Never returns; the
/// server aborts it on shutdown (a sync cut short is resumed by the next one).
pub async fn sync_periodically(state: AppState) {
    let holder = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    loop {
        let settings = state.settings();
        if settings.repo_mirror {
            if let Err(e) =
                run_once(&state, &holder, lease_ttl(settings.repo_mirror_interval)).await
            {
                tracing::warn!(error = %e, "cannot look for due repository mirrors; retrying");
            }
        }
        let _ = tokio::time::timeout(settings.repo_mirror_interval, state.mirrors.notified()).await;
    }
}

/// Syncs the mirrors due now that this replica claims; returns how many it synced.
pub async fn run_once(
    state: &AppState,
    holder: &str,
    ttl: Duration,
) -> Result<usize, crate::metadata::MetadataError> {
    let store = state.mirrors.store();
    let due = store.due_mirrors(now_millis(), BATCH).await?;
    let mut synced = 0;
    for repo in due {
        if let Some(mirror) = store
            .claim_mirror_sync(&repo, holder, ttl, now_millis())
            .await?
        {
            run_claimed(state, holder, ttl, mirror).await;
            synced += 1;
        }
    }
    Ok(synced)
}

/// What a sync did with one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagResult {
    /// The manifest (and whatever it lacked) was copied and the tag pointed at it.
    Copied,
    /// The local tag already pointed at the upstream's digest.
    Unchanged,
    /// The tag could not be copied (the error says why); the local tag, if any, stays.
    Failed,
    /// The tag is no longer upstream, or no longer matches the rule, and was deleted.
    Removed,
}

impl TagResult {
    /// The name the log and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            TagResult::Copied => "copied",
            TagResult::Unchanged => "unchanged",
            TagResult::Failed => "failed",
            TagResult::Removed => "removed",
        }
    }
}

/// One tag's line in a sync log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagLog {
    pub tag: String,
    pub result: TagResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last sync's log, stored with the configuration (bounded: [`MAX_LOG_TAGS`] tag lines,
/// [`MAX_ERROR_CHARS`] per message) and answered by the API and the dashboard.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncLog {
    pub started: String,
    pub finished: String,
    /// `success`, `failure` or `cancelled`.
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub tags: Vec<TagLog>,
    /// Tag lines left out beyond [`MAX_LOG_TAGS`].
    pub tags_omitted: usize,
    pub tags_copied: usize,
    pub tags_unchanged: usize,
    pub tags_failed: usize,
    pub tags_removed: usize,
    pub manifests_copied: u64,
    pub blobs_copied: u64,
    pub bytes_copied: u64,
}

impl SyncLog {
    /// The log stored as `text`, if it reads as one.
    pub fn parse(text: &str) -> Option<SyncLog> {
        serde_json::from_str(text).ok()
    }

    fn tag(
        &mut self,
        tag: &str,
        result: TagResult,
        digest: Option<&Digest>,
        error: Option<String>,
    ) {
        match result {
            TagResult::Copied => self.tags_copied += 1,
            TagResult::Unchanged => self.tags_unchanged += 1,
            TagResult::Failed => self.tags_failed += 1,
            TagResult::Removed => self.tags_removed += 1,
        }
        metrics().mirror_tag(result.as_str());
        if self.tags.len() >= MAX_LOG_TAGS {
            self.tags_omitted += 1;
            return;
        }
        self.tags.push(TagLog {
            tag: tag.to_string(),
            result,
            digest: digest.map(|d| d.to_string()),
            error: error.map(|e| bounded(&e)),
        });
    }
}

fn bounded(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        return text.to_string();
    }
    let mut out: String = text.chars().take(MAX_ERROR_CHARS).collect();
    out.push('…');
    out
}

/// Why a sync, or one tag of it, stopped.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("cannot store the copy: {0}")]
    Registry(#[from] RegistryError),
    #[error("the upstream sent an invalid manifest: {0}")]
    Manifest(#[from] oci::ManifestError),
    #[error("the mirror configuration is not usable: {0}")]
    Config(String),
    #[error("the sync was cancelled, or its claim lost")]
    Stopped,
}

/// Claims are renewed this often relative to their time to live.
fn renewal_period(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(500))
}

/// Runs a claimed sync to its end: status, log, usage logs and metrics.
async fn run_claimed(state: &AppState, holder: &str, ttl: Duration, mirror: MirrorRecord) {
    let started = Instant::now();
    let started_at = now_millis();
    let repo = mirror.repository.clone();
    let performer = match &mirror.robot_username {
        Some(robot) => Performer::Account(robot.clone()),
        None => Performer::Anonymous,
    };
    let rules = mirror.settings.rule_value.join(",");
    state.usage.record(
        Event::new("repo_mirror_sync_started", performer.clone(), None)
            .repository(&repo)
            .detail(
                "message",
                format!(
                    "'{}' with tag pattern '{rules}'",
                    mirror.settings.external_reference
                ),
            ),
    );
    tracing::info!(repository = %repo, source = %mirror.settings.external_reference, "mirror sync started");

    // The claim is renewed beside the sync; a failed renewal (cancelled, or the lease lost)
    // stops the sync: at once, dropping the step in flight (every step is a complete write or
    // none; an interrupted blob leaves only an upload session, collected as stale), and each
    // step also checks the flag before it starts.
    let stopped = Arc::new(AtomicBool::new(false));
    let stop_signal = Arc::new(tokio::sync::Notify::new());
    let renewer = {
        let state = state.clone();
        let repo = repo.clone();
        let holder = holder.to_string();
        let stopped = stopped.clone();
        let stop_signal = stop_signal.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(renewal_period(ttl)).await;
                match state
                    .mirrors
                    .store()
                    .renew_mirror_claim(&repo, &holder, ttl, now_millis())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        stopped.store(true, Ordering::SeqCst);
                        stop_signal.notify_one();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew a mirror sync claim"),
                }
            }
        })
    };

    let mut log = SyncLog {
        started: super::format_date(started_at),
        ..SyncLog::default()
    };
    let result = match Run::new(state, &mirror, performer.clone(), stopped.clone()) {
        Ok(mut sync) => {
            let result = tokio::select! {
                result = sync.run_tags(&mut log) => result,
                () = stop_signal.notified() => Err(SyncError::Stopped),
            };
            log.manifests_copied = sync.manifests_copied;
            log.blobs_copied = sync.blobs_copied;
            log.bytes_copied = sync.bytes_copied;
            result
        }
        Err(e) => Err(e),
    };
    renewer.abort();

    let cancelled = stopped.load(Ordering::SeqCst);
    let (outcome, label) = match (&result, cancelled) {
        (_, true) | (Err(SyncError::Stopped), _) => (SyncOutcome::Failure, "cancelled"),
        (Ok(()), _) if log.tags_failed == 0 => (SyncOutcome::Success, "success"),
        _ => (SyncOutcome::Failure, "failure"),
    };
    log.result = label.to_string();
    log.error = match &result {
        Err(e) => Some(bounded(&e.to_string())),
        Ok(()) if log.tags_failed > 0 => Some(format!("{} tag(s) failed", log.tags_failed)),
        Ok(()) => None,
    };
    let now = now_millis();
    log.finished = super::format_date(now);
    let store = state.mirrors.store();
    let text = serde_json::to_string(&log).expect("a sync log serializes");
    if let Err(e) = store.set_mirror_sync_log(&repo, holder, &text, now).await {
        tracing::warn!(error = %e, repository = %repo, "cannot store a mirror sync log");
    }
    match store.finish_mirror_sync(&repo, holder, outcome, now).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(repository = %repo, "a mirror sync ended after its claim was lost")
        }
        Err(e) => {
            tracing::warn!(error = %e, repository = %repo, "cannot record a mirror sync's end")
        }
    }
    metrics().mirror_sync(label, started.elapsed());
    let kind = if outcome == SyncOutcome::Success {
        "repo_mirror_sync_success"
    } else {
        "repo_mirror_sync_failed"
    };
    let mut event = Event::new(kind, performer, None)
        .repository(&repo)
        .detail(
            "message",
            format!(
                "'{}' with tag pattern '{rules}'",
                mirror.settings.external_reference
            ),
        )
        .detail(
            "tags",
            log.tags
                .iter()
                .filter(|t| t.result == TagResult::Copied)
                .map(|t| Value::from(t.tag.clone()))
                .collect::<Vec<_>>(),
        );
    if let Some(error) = &log.error {
        event = event.detail("error", error.clone());
    }
    state.usage.record(event);
    tracing::info!(
        repository = %repo,
        result = label,
        copied = log.tags_copied,
        unchanged = log.tags_unchanged,
        failed = log.tags_failed,
        removed = log.tags_removed,
        blobs = log.blobs_copied,
        bytes = log.bytes_copied,
        error = log.error.as_deref().unwrap_or(""),
        "mirror sync finished"
    );
}

/// `external_registry_config`, as the worker reads it.
struct RegistryConfig {
    verify_tls: bool,
    unsigned_images: bool,
    proxy: Option<ProxyConfig>,
}

fn registry_config(text: &str) -> RegistryConfig {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let string = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let proxy = value
        .get("proxy")
        .filter(|p| p.is_object())
        .map(|p| ProxyConfig {
            http_proxy: string(p, "http_proxy"),
            https_proxy: string(p, "https_proxy"),
            no_proxy: string(p, "no_proxy"),
        });
    RegistryConfig {
        verify_tls: value
            .get("verify_tls")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        unsigned_images: value
            .get("unsigned_images")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        proxy,
    }
}

/// Splits Quay's `external_reference` (`host[:port]/path`, a trailing `:tag` ignored) into the
/// registry and the repository.
pub fn split_reference(reference: &str) -> Result<(UpstreamRegistry, RepoName), String> {
    let (host, path) = reference
        .split_once('/')
        .ok_or_else(|| format!("{reference:?} names no repository"))?;
    let path = match path.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => path,
    };
    let registry: UpstreamRegistry = host.parse().map_err(|e| format!("{e}"))?;
    let repository: RepoName = path.parse().map_err(|e| format!("{e}"))?;
    Ok((registry, repository))
}

/// One sync's state.
struct Run<'a> {
    state: &'a AppState,
    repo: RepoName,
    source: RepoName,
    upstream: Upstream,
    rules: Vec<String>,
    uploader: Uploader,
    performer: Performer,
    unsigned_images: bool,
    stopped: Arc<AtomicBool>,
    /// Manifests known present in the repository during this sync.
    present: HashSet<Digest>,
    manifests_copied: u64,
    blobs_copied: u64,
    bytes_copied: u64,
}

impl<'a> Run<'a> {
    fn new(
        state: &'a AppState,
        mirror: &MirrorRecord,
        performer: Performer,
        stopped: Arc<AtomicBool>,
    ) -> Result<Run<'a>, SyncError> {
        let (registry, source) =
            split_reference(&mirror.settings.external_reference).map_err(SyncError::Config)?;
        let config = registry_config(&mirror.settings.registry_config);
        let password = state
            .mirrors
            .password(mirror)
            .map_err(|e| SyncError::Config(format!("cannot open the stored password: {e}")))?;
        let credentials = match (&mirror.settings.registry_username, password) {
            (Some(username), Some(password)) if !username.is_empty() => Some(Credentials {
                username: username.clone(),
                password,
            }),
            _ => None,
        };
        let upstream = Upstream::with_proxy(
            UpstreamConfig {
                registry,
                insecure: !config.verify_tls,
                credentials,
            },
            config.proxy.as_ref(),
        )
        .map_err(|e| SyncError::Config(format!("cannot build the upstream client: {e}")))?;
        Ok(Run {
            state,
            repo: mirror.repository.clone(),
            source,
            upstream,
            rules: mirror.settings.rule_value.clone(),
            uploader: mirror
                .settings
                .robot_id
                .map_or(Uploader::Registry, Uploader::Account),
            performer,
            unsigned_images: config.unsigned_images,
            stopped,
            present: HashSet::new(),
            manifests_copied: 0,
            blobs_copied: 0,
            bytes_copied: 0,
        })
    }

    fn check_stopped(&self) -> Result<(), SyncError> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(SyncError::Stopped);
        }
        Ok(())
    }

    async fn run_tags(&mut self, log: &mut SyncLog) -> Result<(), SyncError> {
        let upstream_tags: Vec<Tag> = self.upstream.list_tags(&self.source).await?;
        let upstream_names: HashSet<&str> = upstream_tags.iter().map(Tag::as_str).collect();
        let local = self.local_tags().await?;
        let mut wanted: Vec<&Tag> = upstream_tags
            .iter()
            .filter(|t| super::glob::matches_any(&self.rules, t.as_str()))
            .collect();
        wanted.sort();
        // Tags to keep: every matching one (a failed copy keeps its old local tag) and the
        // signature tags of what is kept.
        let mut keep: BTreeSet<String> = wanted.iter().map(|t| t.as_str().to_string()).collect();
        for tag in wanted {
            self.check_stopped()?;
            let local_digest = local.iter().find(|(t, _)| t == tag).map(|(_, d)| d.clone());
            match self.copy_tag(tag, local_digest.as_ref()).await {
                Ok((digest, copied)) => {
                    let signed = self
                        .copy_signatures(&digest, &upstream_names, &mut keep, log)
                        .await;
                    match signed {
                        Err(SyncError::Stopped) => return Err(SyncError::Stopped),
                        Err(e) if !self.unsigned_images => {
                            self.tag_failed(log, tag, format!("its signatures: {e}"));
                            continue;
                        }
                        _ => {}
                    }
                    let result = if copied {
                        TagResult::Copied
                    } else {
                        TagResult::Unchanged
                    };
                    let error = signed.err().map(|e| format!("signatures not copied: {e}"));
                    log.tag(tag.as_str(), result, Some(&digest), error);
                    if copied {
                        self.state.usage.record(
                            Event::new(
                                "repo_mirror_sync_tag_success",
                                self.performer.clone(),
                                None,
                            )
                            .repository(&self.repo)
                            .detail("tag", tag.as_str())
                            .detail("message", format!("copied {}", digest)),
                        );
                    }
                }
                Err(SyncError::Stopped) => return Err(SyncError::Stopped),
                Err(e) => self.tag_failed(log, tag, e.to_string()),
            }
        }
        self.check_stopped()?;
        for (tag, digest) in &local {
            if keep.contains(tag.as_str()) {
                continue;
            }
            match self
                .state
                .registry
                .delete_manifest(&self.repo, &Reference::Tag(tag.clone()))
                .await
            {
                Ok(()) | Err(RegistryError::ManifestUnknown) => {
                    log.tag(tag.as_str(), TagResult::Removed, Some(digest), None);
                    self.state.usage.record(
                        Event::new("delete_tag", self.performer.clone(), None)
                            .repository(&self.repo)
                            .detail("tag", tag.as_str())
                            .detail("digest", digest.to_string()),
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn tag_failed(&self, log: &mut SyncLog, tag: &Tag, error: String) {
        tracing::warn!(repository = %self.repo, tag = %tag, error = %error, "mirror sync: tag failed");
        self.state.usage.record(
            Event::new("repo_mirror_sync_tag_failed", self.performer.clone(), None)
                .repository(&self.repo)
                .detail("tag", tag.as_str())
                .detail("message", bounded(&error)),
        );
        log.tag(tag.as_str(), TagResult::Failed, None, Some(error));
    }

    /// Every local tag with its digest (cosign tags included), a page at a time.
    async fn local_tags(&self) -> Result<Vec<(Tag, Digest)>, SyncError> {
        const PAGE: u32 = 1000;
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let query = crate::metadata::TagQuery {
                filter: None,
                cosign_tags: true,
                offset,
                limit: PAGE,
            };
            let page = self.state.registry.tag_details(&self.repo, &query).await?;
            let full = page.len() as u32 == PAGE;
            for detail in page {
                if let Ok(tag) = detail.name.parse::<Tag>() {
                    out.push((tag, detail.digest));
                }
            }
            if !full {
                return Ok(out);
            }
            offset += PAGE;
        }
    }

    /// Copies `tag` unless the local one already points at the upstream's digest; returns
    /// the digest and whether anything was copied.
    async fn copy_tag(
        &mut self,
        tag: &Tag,
        local: Option<&Digest>,
    ) -> Result<(Digest, bool), SyncError> {
        let reference = Reference::Tag(tag.clone());
        if let Some(local) = local {
            let head = self
                .upstream
                .head_manifest(&self.source, &reference)
                .await?;
            if head.digest.as_ref() == Some(local) {
                return Ok((local.clone(), false));
            }
        }
        let manifest = self.upstream.get_manifest(&self.source, &reference).await?;
        if local == Some(&manifest.digest) {
            return Ok((manifest.digest, false));
        }
        self.copy_manifest(&manifest, Some(tag)).await?;
        Ok((manifest.digest, true))
    }

    /// Whether the repository holds manifest `digest`.
    async fn has_manifest(&mut self, digest: &Digest) -> Result<bool, SyncError> {
        if self.present.contains(digest) {
            return Ok(true);
        }
        let reference = Reference::Digest(digest.clone());
        match self
            .state
            .registry
            .get_manifest(&self.repo, &reference)
            .await
        {
            Ok(_) => {
                self.present.insert(digest.clone());
                Ok(true)
            }
            Err(RegistryError::ManifestUnknown) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies `manifest` (children first, then the blobs the repository lacks, then the exact
    /// bytes), tagged `tag` when given.
    fn copy_manifest<'s>(
        &'s mut self,
        manifest: &'s Manifest,
        tag: Option<&'s Tag>,
    ) -> futures::future::BoxFuture<'s, Result<(), SyncError>> {
        Box::pin(async move {
            let parsed = oci::manifest::parse(&manifest.bytes, &manifest.media_type)?;
            for child in &parsed.manifests {
                self.check_stopped()?;
                if self.has_manifest(&child.digest).await? {
                    continue;
                }
                let reference = Reference::Digest(child.digest.clone());
                let child = self.upstream.get_manifest(&self.source, &reference).await?;
                self.copy_manifest(&child, None).await?;
            }
            for blob in parsed.blob_references() {
                self.check_stopped()?;
                self.copy_blob(&blob.digest, blob.size).await?;
            }
            self.check_stopped()?;
            let pushed = self
                .state
                .registry
                .put_manifest(
                    &self.repo,
                    &Reference::Digest(manifest.digest.clone()),
                    tag.into_iter().cloned().collect(),
                    &manifest.media_type,
                    manifest.bytes.to_vec(),
                )
                .await?;
            self.present.insert(manifest.digest.clone());
            self.manifests_copied += 1;
            if pushed.kind == crate::registry::facts::ManifestKind::Signature {
                self.state.trust.signature_stored();
            }
            let mut event = Event::new("push_repo", self.performer.clone(), None)
                .repository(&self.repo)
                .detail("manifest_digest", pushed.digest.to_string())
                .detail("mirror", true);
            if let Some(tag) = tag {
                event = event
                    .detail("tag", tag.as_str())
                    .detail("tags", vec![tag.as_str()]);
            }
            self.state.usage.record(event);
            Ok(())
        })
    }

    /// Makes blob `digest` readable in the repository unless it already is: linked when the
    /// store holds it (after the upstream served it, so a digest alone gains nothing),
    /// otherwise streamed from the upstream into the store, verified as it ends.
    async fn copy_blob(&mut self, digest: &Digest, size: u64) -> Result<(), SyncError> {
        match self.state.registry.stat_blob(&self.repo, digest).await {
            Ok(_) => return Ok(()),
            Err(RegistryError::BlobUnknown(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let stream = self.upstream.get_blob(&self.source, digest).await?;
        if self
            .state
            .registry
            .link_stored_blob(&self.repo, digest, size)
            .await?
        {
            return Ok(());
        }
        let length = stream.size.or(Some(size));
        let body: ByteStream = stream
            .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())))
            .boxed();
        self.state
            .registry
            .push_blob(&self.repo, digest, length, body, self.uploader)
            .await?;
        self.blobs_copied += 1;
        self.bytes_copied += size;
        metrics().mirror_blob_copied(size);
        Ok(())
    }

    /// Copies the signatures of `digest` (and, for an index, of its children): its cosign
    /// tags among `upstream_tags` (added to `keep`) and its referrers, recursively.
    async fn copy_signatures(
        &mut self,
        digest: &Digest,
        upstream_tags: &HashSet<&str>,
        keep: &mut BTreeSet<String>,
        log: &mut SyncLog,
    ) -> Result<(), SyncError> {
        let mut subjects = vec![(digest.clone(), 0usize)];
        let reference = Reference::Digest(digest.clone());
        if let Ok(stored) = self
            .state
            .registry
            .get_manifest(&self.repo, &reference)
            .await
        {
            if let Ok(parsed) = oci::manifest::parse(&stored.content, &stored.media_type) {
                subjects.extend(parsed.manifests.iter().map(|c| (c.digest.clone(), 0)));
            }
        }
        let mut seen = HashSet::new();
        while let Some((subject, depth)) = subjects.pop() {
            if !seen.insert(subject.clone()) {
                continue;
            }
            self.check_stopped()?;
            for suffix in COSIGN_SUFFIXES {
                let name = format!("{}-{}.{suffix}", subject.algorithm(), subject.hex());
                if !upstream_tags.contains(name.as_str()) {
                    continue;
                }
                let tag: Tag = name
                    .parse()
                    .map_err(|_| SyncError::Config(format!("{name} is not a tag")))?;
                let local = self.local_tag(&tag).await?;
                let (signature, copied) = self.copy_tag(&tag, local.as_ref()).await?;
                if copied {
                    log.tag(tag.as_str(), TagResult::Copied, Some(&signature), None);
                }
                keep.insert(name);
            }
            if depth >= MAX_REFERRER_DEPTH {
                continue;
            }
            let referrers = self.upstream.referrers(&self.source, &subject).await?;
            for descriptor in referrers.manifests {
                let Some(referrer) = descriptor
                    .get("digest")
                    .and_then(Value::as_str)
                    .and_then(|d| d.parse::<Digest>().ok())
                else {
                    continue;
                };
                if !self.has_manifest(&referrer).await? {
                    let reference = Reference::Digest(referrer.clone());
                    let manifest = self.upstream.get_manifest(&self.source, &reference).await?;
                    self.copy_manifest(&manifest, None).await?;
                }
                subjects.push((referrer, depth + 1));
            }
        }
        Ok(())
    }

    async fn local_tag(&self, tag: &Tag) -> Result<Option<Digest>, SyncError> {
        let reference = Reference::Tag(tag.clone());
        match self
            .state
            .registry
            .get_manifest(&self.repo, &reference)
            .await
        {
            Ok(m) => Ok(Some(m.digest)),
            Err(RegistryError::ManifestUnknown) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_registry_and_repository() {
        let (registry, repo) = split_reference("127.0.0.1:5000/library/app").unwrap();
        assert_eq!(registry.authority(), "127.0.0.1:5000");
        assert_eq!(repo.as_str(), "library/app");
        let (_, repo) = split_reference("quay.io/coreos/etcd:v3").unwrap();
        assert_eq!(repo.as_str(), "coreos/etcd");
        assert!(split_reference("quay.io").is_err());
        assert!(split_reference("quay.io/Upper").is_err());
    }

    #[test]
    fn registry_config_defaults_as_quay() {
        let c = registry_config("{}");
        assert!(c.verify_tls && !c.unsigned_images && c.proxy.is_none());
        let c = registry_config(
            r#"{"verify_tls": false, "unsigned_images": true,
                "proxy": {"https_proxy": "http://proxy:3128", "no_proxy": "localhost"}}"#,
        );
        assert!(!c.verify_tls && c.unsigned_images);
        let proxy = c.proxy.unwrap();
        assert_eq!(proxy.https_proxy.as_deref(), Some("http://proxy:3128"));
        assert_eq!(proxy.http_proxy, None);
    }

    #[test]
    fn logs_are_bounded() {
        let mut log = SyncLog::default();
        for i in 0..(MAX_LOG_TAGS + 5) {
            log.tag(
                &format!("t{i}"),
                TagResult::Failed,
                None,
                Some("x".repeat(1000)),
            );
        }
        assert_eq!(log.tags.len(), MAX_LOG_TAGS);
        assert_eq!(log.tags_omitted, 5);
        assert_eq!(log.tags_failed, MAX_LOG_TAGS + 5);
        assert!(log.tags[0].error.as_ref().unwrap().chars().count() <= MAX_ERROR_CHARS + 1);
    }

    #[test]
    fn leases_follow_the_interval() {
        assert_eq!(lease_ttl(Duration::from_secs(1)), Duration::from_secs(5));
        assert_eq!(lease_ttl(Duration::from_secs(30)), Duration::from_secs(90));
        assert_eq!(
            lease_ttl(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
    }
}
