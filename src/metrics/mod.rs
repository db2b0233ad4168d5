//! Prometheus metrics: what berth counts, and `/metrics` in the text exposition format
//! (version 0.0.4).
//!
//! One registry per process ([`metrics`]): Prometheus scrapes processes, and a process-wide
//! registry lets the layers that see an event (the read cache, the token issuer, the
//! collector) count it without a handle threaded through every constructor. Every label is
//! bounded by its type: route templates (never a path), methods, statuses, and small enums;
//! no repository, tag or digest is ever a label. Recording is a hash lookup under a shared
//! read lock and relaxed atomic adds: no mutex, no allocation for a /v2 request.
//!
//! Totals of the registry as a whole (blobs and bytes stored, open upload sessions) are read
//! from the metadata database at each scrape, so every replica reports the same, right
//! figures.

mod endpoint;
pub mod histogram;
mod process;

pub use endpoint::{on_main_listener, router};

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Duration;

use axum::http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::registry::facts::ManifestKind;
use histogram::DurationHistogram;

/// The `Content-Type` of `/metrics`: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Cow<'static, str>,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Cow<'static, str>,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MediaTypeLabel {
    media_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyLabel {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabel {
    lookup: &'static str,
}

/// Why a login or credential was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// A wrong password, robot token or unknown name.
    BadCredentials,
    /// The failed-login limiter refused the attempt.
    TooManyAttempts,
    /// A registry or API token that is invalid, expired, revoked or outdated.
    BadToken,
    /// An `Authorization` header berth cannot read.
    Malformed,
}

impl AuthFailure {
    fn label(self) -> &'static str {
        match self {
            AuthFailure::BadCredentials => "bad_credentials",
            AuthFailure::TooManyAttempts => "too_many_attempts",
            AuthFailure::BadToken => "bad_token",
            AuthFailure::Malformed => "malformed",
        }
    }
}

/// How one attempt to deliver a repository notification ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The receiver accepted it.
    Success,
    /// The attempt failed and another will follow.
    Retry,
    /// The attempt failed and no other will follow (the retry time is spent).
    Failure,
    /// The delivery was given up without an attempt (its notification is gone).
    Dropped,
}

impl WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            WebhookOutcome::Success => "success",
            WebhookOutcome::Retry => "retry",
            WebhookOutcome::Failure => "failure",
            WebhookOutcome::Dropped => "dropped",
        }
    }
}

/// What the read cache was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheLookup {
    Manifest,
    Tags,
    Repository,
}

/// What one garbage-collection run deleted, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcDeletions {
    pub manifests: u64,
    pub blobs: u64,
    pub orphan_bytes: u64,
    pub uploads: u64,
    pub bytes_freed: u64,
}

/// Every metric berth keeps (see the README's Metrics section for the list).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, DurationHistogram>,
    request_bytes: Family<RouteLabels, Counter>,
    response_bytes: Family<RouteLabels, Counter>,
    uploads_open: Gauge,
    blobs_stored: Gauge,
    blob_bytes_stored: Gauge,
    manifests_pushed: Family<KindLabel, Counter>,
    policy_refusals: Family<MediaTypeLabel, Counter>,
    auth_failures: Family<ReasonLabel, Counter>,
    tokens_issued: Counter,
    usage_logs_stored: Counter,
    usage_logs_dropped: Counter,
    gc_runs: Family<ResultLabel, Counter>,
    gc_deletions: Family<KindLabel, Counter>,
    gc_freed_bytes: Counter,
    gc_duration: Family<ResultLabel, DurationHistogram, fn() -> DurationHistogram>,
    config_reloads: Family<ResultLabel, Counter>,
    webhook_deliveries: Family<OutcomeLabel, Counter>,
    trust_verifications: Family<StatusLabel, Counter>,
    trust_refusals: Family<TargetLabel, Counter>,
    mirror_syncs: Family<ResultLabel, Counter>,
    mirror_sync_duration: Family<ResultLabel, DurationHistogram, fn() -> DurationHistogram>,
    mirror_tags: Family<ResultLabel, Counter>,
    mirror_blobs_copied: Counter,
    mirror_bytes_copied: Counter,
    proxy_requests: Family<ProxyLabel, Counter>,
    proxy_upstream_bytes: Counter,
    proxy_upstream_fetches: Family<ResultLabel, Counter>,
    proxy_tags_expired: Counter,
    /// Hits and misses per [`CacheLookup`], resolved once so a lookup only adds.
    cache_hits: [Counter; 3],
    cache_misses: [Counter; 3],
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The label value of a method: the standard ones by name, any other as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The label value of a refused media type: a type berth knows by name, or `other`, so a
/// client inventing types cannot grow the exposition.
fn media_type_label(media_type: &str) -> &'static str {
    use oci::media_type as mt;
    let named = [
        mt::OCI_MANIFEST,
        mt::OCI_INDEX,
        mt::DOCKER_MANIFEST,
        mt::DOCKER_MANIFEST_LIST,
        mt::DOCKER_SCHEMA1,
        mt::DOCKER_SCHEMA1_SIGNED,
        mt::OCI_EMPTY,
        mt::OCI_IMAGE_CONFIG,
        mt::DOCKER_IMAGE_CONFIG,
        mt::HELM_CONFIG,
        mt::HELM_CHART,
        mt::HELM_CHART_LEGACY,
        mt::HELM_PROVENANCE,
        mt::COSIGN_SIMPLESIGNING,
        mt::COSIGN_SIG_ARTIFACT,
        mt::SIGSTORE_BUNDLE,
        mt::DSSE_ENVELOPE,
        mt::IN_TOTO,
        mt::NOTARY_SIGNATURE,
        mt::JOSE_JSON,
        mt::COSE,
        "application/vnd.oci.image.layer.v1.tar+encrypted",
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
        "application/vnd.oci.image.layer.v1.tar+zstd+encrypted",
    ];
    named
        .into_iter()
        .chain(mt::IMAGE_LAYER_TYPES.iter().copied())
        .chain(mt::SBOM_TYPES.iter().copied())
        .find(|known| *known == media_type)
        .unwrap_or("other")
}

/// The series one request records into, for one (route, method, status).
struct RequestSeries {
    requests: Counter,
    duration: DurationHistogram,
    bytes_in: Counter,
    bytes_out: Counter,
}

/// Series key: the metrics instance, route, method label and status.
type SeriesKey = (usize, Cow<'static, str>, &'static str, u16);

thread_local! {
    static REQUEST_SERIES: std::cell::RefCell<std::collections::HashMap<SeriesKey, RequestSeries>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl Metrics {
    fn new() -> Metrics {
        let cache = Family::<LookupLabel, Counter>::default();
        let cache_misses_family = Family::<LookupLabel, Counter>::default();
        let lookups = ["manifest", "tags", "repository"];
        let handles = |family: &Family<LookupLabel, Counter>| {
            lookups.map(|lookup| family.get_or_create_owned(&LookupLabel { lookup }))
        };
        let gc_duration: Family<ResultLabel, DurationHistogram, fn() -> DurationHistogram> =
            Family::new_with_constructor(|| DurationHistogram::new(histogram::GC_BUCKETS));
        let mirror_sync_duration: Family<
            ResultLabel,
            DurationHistogram,
            fn() -> DurationHistogram,
        > = Family::new_with_constructor(|| DurationHistogram::new(histogram::GC_BUCKETS));
        let mut m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            request_duration: Family::default(),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            uploads_open: Gauge::default(),
            blobs_stored: Gauge::default(),
            blob_bytes_stored: Gauge::default(),
            manifests_pushed: Family::default(),
            policy_refusals: Family::default(),
            auth_failures: Family::default(),
            tokens_issued: Counter::default(),
            usage_logs_stored: Counter::default(),
            usage_logs_dropped: Counter::default(),
            gc_runs: Family::default(),
            gc_deletions: Family::default(),
            gc_freed_bytes: Counter::default(),
            gc_duration,
            config_reloads: Family::default(),
            webhook_deliveries: Family::default(),
            trust_verifications: Family::default(),
            trust_refusals: Family::default(),
            mirror_syncs: Family::default(),
            mirror_sync_duration,
            mirror_tags: Family::default(),
            mirror_blobs_copied: Counter::default(),
            mirror_bytes_copied: Counter::default(),
            proxy_requests: Family::default(),
            proxy_upstream_bytes: Counter::default(),
            proxy_upstream_fetches: Family::default(),
            proxy_tags_expired: Counter::default(),
            cache_hits: handles(&cache),
            cache_misses: handles(&cache_misses_family),
        };
        // Counters are registered without `_total`: the encoder appends it.
        let r = &mut m.registry;
        r.register(
            "berth_http_requests",
            "HTTP requests answered, by route template, method and status",
            m.requests.clone(),
        );
        r.register(
            "berth_http_request_duration_seconds",
            "Time from a request's arrival to its response head, by route template and method",
            m.request_duration.clone(),
        );
        r.register(
            "berth_http_request_bytes",
            "Request body bytes received, by route template and method",
            m.request_bytes.clone(),
        );
        r.register(
            "berth_http_response_bytes",
            "Response body bytes sent (as declared by the response), by route template and method",
            m.response_bytes.clone(),
        );
        r.register(
            "berth_upload_sessions_open",
            "Blob upload sessions open in the registry (all replicas)",
            m.uploads_open.clone(),
        );
        r.register(
            "berth_stored_blobs",
            "Blobs stored in the registry (all replicas)",
            m.blobs_stored.clone(),
        );
        r.register(
            "berth_stored_blob_bytes",
            "Bytes of the blobs stored in the registry (all replicas)",
            m.blob_bytes_stored.clone(),
        );
        r.register(
            "berth_manifests_pushed",
            "Manifests stored by a push, by kind",
            m.manifests_pushed.clone(),
        );
        r.register(
            "berth_policy_refusals",
            "Manifest pushes the artifact policy refused, by the media type that caused it (other for types berth does not name)",
            m.policy_refusals.clone(),
        );
        r.register(
            "berth_auth_failures",
            "Refused logins and credentials, by reason",
            m.auth_failures.clone(),
        );
        r.register(
            "berth_tokens_issued",
            "Registry tokens issued by /v2/auth",
            m.tokens_issued.clone(),
        );
        r.register(
            "berth_usage_log_records_stored",
            "Usage-log records this process stored (a record of repeated pulls counts once)",
            m.usage_logs_stored.clone(),
        );
        r.register(
            "berth_usage_log_records_dropped",
            "Usage-log records this process dropped: its queue was full or the database refused them",
            m.usage_logs_dropped.clone(),
        );
        r.register(
            "berth_gc_runs",
            "Garbage-collection runs by this process, by result (busy: another process held the lease)",
            m.gc_runs.clone(),
        );
        r.register(
            "berth_gc_deletions",
            "What garbage collection deleted, by kind",
            m.gc_deletions.clone(),
        );
        r.register(
            "berth_gc_freed_bytes",
            "Bytes of blob storage garbage collection freed",
            m.gc_freed_bytes.clone(),
        );
        r.register(
            "berth_gc_duration_seconds",
            "How long garbage-collection runs took, by result",
            m.gc_duration.clone(),
        );
        r.register(
            "berth_config_reloads",
            "Config file changes seen, by result (applied or rejected)",
            m.config_reloads.clone(),
        );
        r.register(
            "berth_webhook_deliveries",
            "Repository notification delivery attempts, by outcome",
            m.webhook_deliveries.clone(),
        );
        r.register(
            "berth_trust_verifications",
            "Signature verdicts computed, by status",
            m.trust_verifications.clone(),
        );
        r.register(
            "berth_trust_refusals",
            "Reads refused by a trust policy, by target (manifest or blob)",
            m.trust_refusals.clone(),
        );
        r.register(
            "berth_mirror_syncs",
            "Repository mirror syncs finished, by result (success, failure, cancelled)",
            m.mirror_syncs.clone(),
        );
        r.register(
            "berth_mirror_sync_duration_seconds",
            "How long repository mirror syncs took, by result",
            m.mirror_sync_duration.clone(),
        );
        r.register(
            "berth_mirror_tags",
            "Tags a mirror sync handled, by result (copied, unchanged, failed, removed)",
            m.mirror_tags.clone(),
        );
        r.register(
            "berth_mirror_blobs_copied",
            "Blobs a mirror sync streamed from an upstream into the store",
            m.mirror_blobs_copied.clone(),
        );
        r.register(
            "berth_mirror_bytes_copied",
            "Bytes of blobs a mirror sync streamed from an upstream into the store",
            m.mirror_bytes_copied.clone(),
        );
        r.register(
            "berth_proxy_cache_requests",
            "Reads through proxy cache organizations, by kind (manifest, blob) and result (hit, miss, revalidated, stale, error)",
            m.proxy_requests.clone(),
        );
        r.register(
            "berth_proxy_cache_upstream_bytes",
            "Blob bytes proxy caches read from their upstream registries",
            m.proxy_upstream_bytes.clone(),
        );
        r.register(
            "berth_proxy_cache_upstream_blob_fetches",
            "Blob fetches from upstream registries, by result (ok, error)",
            m.proxy_upstream_fetches.clone(),
        );
        r.register(
            "berth_proxy_cache_tags_expired",
            "Cached tags removed because they were not revalidated within expiration_s",
            m.proxy_tags_expired.clone(),
        );
        r.register(
            "berth_read_cache_hits",
            "Reads the embedded backend's read cache answered, by lookup",
            cache,
        );
        r.register(
            "berth_read_cache_misses",
            "Reads the embedded backend's read cache sent to the database, by lookup",
            cache_misses_family,
        );
        r.register_collector(Box::new(process::ProcessCollector));
        m
    }

    /// Records one answered request. `route` is a template (`/v2/{name}/manifests/{reference}`,
    /// a router path), never a raw path.
    pub fn request(
        &self,
        route: Cow<'static, str>,
        method: &Method,
        status: u16,
        bytes_in: u64,
        bytes_out: u64,
        took: Duration,
    ) {
        let method = method_label(method);
        let key = (self as *const Metrics as usize, route, method, status);
        // Each thread keeps the handles of the series it recorded: looking them up in the
        // families takes their shared locks, and four such locks per request, bounced between
        // cores, were most of what recording cost.
        REQUEST_SERIES.with(|cache| {
            let mut cache = cache.borrow_mut();
            let series = match cache.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let (_, route, method, status) = e.key().clone();
                    let by_route = RouteLabels {
                        route: route.clone(),
                        method,
                    };
                    e.insert(RequestSeries {
                        requests: self
                            .requests
                            .get_or_create(&RequestLabels {
                                route,
                                method,
                                status,
                            })
                            .clone(),
                        duration: self.request_duration.get_or_create(&by_route).clone(),
                        bytes_in: self.request_bytes.get_or_create(&by_route).clone(),
                        bytes_out: self.response_bytes.get_or_create(&by_route).clone(),
                    })
                }
            };
            series.requests.inc();
            series.duration.observe(took);
            if bytes_in > 0 {
                series.bytes_in.inc_by(bytes_in);
            }
            if bytes_out > 0 {
                series.bytes_out.inc_by(bytes_out);
            }
        });
    }

    /// Counts a stored manifest push.
    pub fn manifest_pushed(&self, kind: ManifestKind) {
        self.manifests_pushed
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
    }

    /// Counts a push the artifact policy refused because of `media_type`.
    pub fn policy_refusal(&self, media_type: &str) {
        self.policy_refusals
            .get_or_create(&MediaTypeLabel {
                media_type: media_type_label(media_type),
            })
            .inc();
    }

    /// Counts a refused login or credential.
    pub fn auth_failure(&self, reason: AuthFailure) {
        self.auth_failures
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .inc();
    }

    /// Counts an issued registry token.
    pub fn token_issued(&self) {
        self.tokens_issued.inc();
    }

    /// Counts usage-log records stored.
    pub fn usage_logs_stored(&self, records: u64) {
        self.usage_logs_stored.inc_by(records);
    }

    /// Counts usage-log records dropped.
    pub fn usage_logs_dropped(&self, records: u64) {
        self.usage_logs_dropped.inc_by(records);
    }

    /// Records a garbage-collection run: `None` when another process held the lease,
    /// otherwise what it deleted (or `Err` when it failed) and how long it took.
    pub fn gc_run(&self, outcome: Option<Result<GcDeletions, ()>>, took: Duration) {
        let result = match outcome {
            None => "busy",
            Some(Ok(_)) => "success",
            Some(Err(())) => "failure",
        };
        self.gc_runs.get_or_create(&ResultLabel { result }).inc();
        if outcome.is_none() {
            return;
        }
        self.gc_duration
            .get_or_create(&ResultLabel { result })
            .observe(took);
        if let Some(Ok(deleted)) = outcome {
            for (kind, n) in [
                ("manifest", deleted.manifests),
                ("blob", deleted.blobs),
                ("orphan_bytes", deleted.orphan_bytes),
                ("upload", deleted.uploads),
            ] {
                self.gc_deletions
                    .get_or_create(&KindLabel { kind })
                    .inc_by(n);
            }
            self.gc_freed_bytes.inc_by(deleted.bytes_freed);
        }
    }

    /// Counts a config file change: applied, or rejected (the old config stays).
    pub fn config_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.config_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts one repository notification delivery attempt.
    pub fn webhook_delivery(&self, outcome: WebhookOutcome) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// A mirror sync ended with `result` after `elapsed`.
    pub fn mirror_sync(&self, result: &'static str, elapsed: std::time::Duration) {
        let label = ResultLabel { result };
        self.mirror_syncs.get_or_create(&label).inc();
        self.mirror_sync_duration
            .get_or_create(&label)
            .observe(elapsed);
    }

    /// A mirror sync handled a tag with `result`.
    pub fn mirror_tag(&self, result: &'static str) {
        self.mirror_tags
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// A mirror sync stored a blob of `bytes` from its upstream.
    pub fn mirror_blob_copied(&self, bytes: u64) {
        self.mirror_blobs_copied.inc();
        self.mirror_bytes_copied.inc_by(bytes);
    }

    /// Counts one signature verdict computed.
    pub fn trust_verification(&self, status: crate::trust::Status) {
        self.trust_verifications
            .get_or_create(&StatusLabel {
                status: status.as_str(),
            })
            .inc();
    }

    /// Counts one read a trust policy refused; `target` is `manifest` or `blob`.
    pub fn trust_refusal(&self, target: &'static str) {
        self.trust_refusals
            .get_or_create(&TargetLabel { target })
            .inc();
    }

    /// Counts one read through a proxy cache: `kind` is `manifest` or `blob`, `result` one of
    /// `hit`, `miss`, `revalidated`, `stale`, `error`.
    pub fn proxy_request(&self, kind: &'static str, result: &'static str) {
        self.proxy_requests
            .get_or_create(&ProxyLabel { kind, result })
            .inc();
    }

    /// Counts blob bytes read from an upstream registry.
    pub fn proxy_upstream_bytes(&self, n: u64) {
        self.proxy_upstream_bytes.inc_by(n);
    }

    /// Counts one blob fetch from an upstream registry that stored its blob or failed.
    pub fn proxy_upstream_fetch(&self, ok: bool) {
        self.proxy_upstream_fetches
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Counts cached tags the expiry sweep removed.
    pub fn proxy_tags_expired(&self, n: u64) {
        self.proxy_tags_expired.inc_by(n);
    }

    /// Counts a read-cache lookup.
    pub fn cache_lookup(&self, lookup: CacheLookup, hit: bool) {
        let i = lookup as usize;
        if hit {
            self.cache_hits[i].inc();
        } else {
            self.cache_misses[i].inc();
        }
    }

    /// Sets the registry-wide totals read at a scrape.
    fn set_totals(&self, totals: &crate::metadata::Totals) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.uploads_open.set(gauge(totals.uploads));
        self.blobs_stored.set(gauge(totals.blobs));
        self.blob_bytes_stored.set(gauge(totals.blob_bytes));
    }

    /// The exposition, in the Prometheus text format.
    fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(
            media_type_label(oci::media_type::HELM_CONFIG),
            oci::media_type::HELM_CONFIG
        );
        assert_eq!(
            media_type_label("application/x-made-up-by-a-client-1234"),
            "other"
        );
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }

    #[test]
    fn the_exposition_is_text_format_with_totals_suffixes() {
        let m = Metrics::new();
        m.request(
            Cow::Borrowed("/v2/{name}/manifests/{reference}"),
            &Method::GET,
            200,
            0,
            512,
            Duration::from_millis(3),
        );
        m.auth_failure(AuthFailure::BadCredentials);
        m.cache_lookup(CacheLookup::Tags, true);
        let text = m.encode();
        for line in [
            "# TYPE berth_http_requests_total counter",
            "berth_http_requests_total{route=\"/v2/{name}/manifests/{reference}\",method=\"GET\",status=\"200\"} 1",
            "berth_http_response_bytes_total{route=\"/v2/{name}/manifests/{reference}\",method=\"GET\"} 512",
            "berth_http_request_duration_seconds_bucket{route=\"/v2/{name}/manifests/{reference}\",method=\"GET\",le=\"0.005\"} 1",
            "berth_http_request_duration_seconds_count{route=\"/v2/{name}/manifests/{reference}\",method=\"GET\"} 1",
            "berth_auth_failures_total{reason=\"bad_credentials\"} 1",
            "berth_read_cache_hits_total{lookup=\"tags\"} 1",
            "berth_read_cache_misses_total{lookup=\"tags\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
    }
}
