//! Repository notifications: validating what a repository admin asks for, and the delivery
//! worker every replica runs.
//!
//! Deliveries are rows of the metadata database's outbox, written in the transaction of the
//! tag change (see [`crate::metadata::notifications`]); [`deliver_periodically`] claims the due
//! ones with a lease, sends them, and records each attempt's outcome
//! ([`Notifier::attempt`], the one place an outcome is known). A failure is retried after
//! `NOTIFICATION_RETRY_BASE_DELAY_MS`, doubling up to `NOTIFICATION_RETRY_MAX_DELAY_MS`, for
//! `NOTIFICATION_MAX_ATTEMPTS` attempts in all; then the delivery is dropped and the
//! notification's `number_of_failures` grows. A push never waits on a delivery.

pub mod payload;
pub mod target;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::app::AppState;
use crate::metadata::notifications::{
    AfterAttempt, AttemptOutcome, ClaimedDelivery, NewNotification, NotificationStore, EVENTS,
};
use crate::metadata::{now_millis, Result as MetadataResult};
use crate::metrics::WebhookOutcome;
use payload::EventContext;

/// The methods a notification may use.
pub const METHODS: &[&str] = &["webhook", "slack"];

/// Custom headers a webhook may not set: they describe the request itself.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
];

/// How many custom headers a webhook may set.
const MAX_HEADERS: usize = 32;

/// How many deliveries a worker claims at once, and sends concurrently.
const BATCH: u32 = 16;

/// The notification keys of the config, with production defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSettings {
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`: targets on loopback, link-local and private addresses
    /// are allowed (off by default).
    pub allow_private_targets: bool,
    /// `NOTIFICATION_POLL_INTERVAL_MS`: how often a worker looks for due deliveries.
    pub poll_interval: Duration,
    /// `NOTIFICATION_RETRY_BASE_DELAY_MS`: the wait before the first retry; it doubles with
    /// each further one.
    pub retry_base_delay: Duration,
    /// `NOTIFICATION_RETRY_MAX_DELAY_MS`: the longest wait between two attempts.
    pub retry_max_delay: Duration,
    /// `NOTIFICATION_MAX_ATTEMPTS`: attempts per delivery before it is given up.
    pub max_attempts: u32,
    /// `NOTIFICATION_TIMEOUT_SECONDS`: how long one attempt may take (connect to answer).
    pub timeout: Duration,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            allow_private_targets: false,
            poll_interval: Duration::from_secs(1),
            retry_base_delay: Duration::from_secs(10),
            retry_max_delay: Duration::from_secs(15 * 60),
            max_attempts: 10,
            timeout: Duration::from_secs(10),
        }
    }
}

impl NotificationSettings {
    /// When a delivery that failed its `attempt`th attempt (counting from 0) is tried again,
    /// or `None` when that was its last.
    pub fn retry_after(&self, attempt: u32) -> Option<Duration> {
        if attempt.saturating_add(1) >= self.max_attempts {
            return None;
        }
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        Some(
            self.retry_base_delay
                .saturating_mul(factor)
                .min(self.retry_max_delay),
        )
    }

    /// How long a claim holds: past any attempt's end, so a live worker never loses one.
    fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

/// A notification as the API asks for it (Quay's `NotificationCreateRequest`).
#[derive(Debug, serde::Deserialize)]
pub struct CreateRequest {
    pub event: Option<String>,
    pub method: Option<String>,
    pub config: Option<Value>,
    #[serde(rename = "eventConfig")]
    pub event_config: Option<Value>,
    pub title: Option<String>,
}

/// Checks a request and turns it into a notification to store; the error says what is wrong
/// (a 400). The target's host is resolved and refused if internal, unless allowed.
pub async fn validate(
    request: CreateRequest,
    allow_private: bool,
) -> Result<NewNotification, String> {
    let event = request.event.ok_or("event is required")?;
    if !EVENTS.contains(&event.as_str()) {
        return Err(format!(
            "unknown event {event:?}; berth has {}",
            EVENTS.join(", ")
        ));
    }
    let method = request.method.ok_or("method is required")?;
    if !METHODS.contains(&method.as_str()) {
        return Err(format!(
            "unknown method {method:?}; berth has {}",
            METHODS.join(", ")
        ));
    }
    let config = match request.config {
        Some(Value::Object(map)) => map,
        Some(_) => return Err("config must be an object".into()),
        None => return Err("config is required".into()),
    };
    let event_config = match request.event_config {
        Some(Value::Object(map)) => map,
        Some(_) => return Err("eventConfig must be an object".into()),
        None => return Err("eventConfig is required".into()),
    };
    let url = match config.get("url") {
        Some(Value::String(s)) => target::parse_url(s)?,
        Some(_) => return Err("config.url must be a string".into()),
        None => return Err("config.url is required".into()),
    };
    for key in config.keys() {
        let known = key == "url" || (key == "headers" && method == "webhook");
        if !known {
            return Err(format!("config.{key} is not a {method} setting"));
        }
    }
    if let Some(headers) = config.get("headers") {
        custom_headers(headers)?;
    }
    let title = request.title.unwrap_or_default();
    if title.len() > 256 || title.chars().any(char::is_control) {
        return Err("title must be at most 256 characters, without control characters".into());
    }
    target::check_reachable(&url, allow_private).await?;
    Ok(NewNotification {
        uuid: uuid::Uuid::new_v4().to_string(),
        event,
        method,
        title,
        config: Value::Object(config).to_string(),
        event_config: Value::Object(event_config).to_string(),
    })
}

/// A webhook's custom headers (`config.headers`, names to string values), checked.
fn custom_headers(value: &Value) -> Result<reqwest::header::HeaderMap, String> {
    let Value::Object(map) = value else {
        return Err("config.headers must be an object of header names to strings".into());
    };
    if map.len() > MAX_HEADERS {
        return Err(format!(
            "config.headers may name at most {MAX_HEADERS} headers"
        ));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in map {
        let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("config.headers: {name:?} is not a header name"))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(format!("config.headers may not set {header}"));
        }
        // The value is a secret as often as not: errors never repeat it.
        let value = value
            .as_str()
            .and_then(|v| reqwest::header::HeaderValue::from_str(v).ok())
            .ok_or_else(|| {
                format!("config.headers: the value of {header} is not a valid header value")
            })?;
        headers.insert(header, value);
    }
    Ok(headers)
}

/// Sends deliveries: the HTTP client, with its guarded resolver.
pub struct Notifier {
    store: Arc<dyn NotificationStore>,
    client: reqwest::Client,
    allow_private: Arc<AtomicBool>,
}

impl Notifier {
    /// A notifier over `store`; the client verifies TLS against the system's roots, follows
    /// no redirects, uses no proxy, and reaches only addresses [`target::GuardedResolver`] allows.
    pub fn new(store: Arc<dyn NotificationStore>) -> anyhow::Result<Notifier> {
        let allow_private = Arc::new(AtomicBool::new(false));
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(target::GuardedResolver {
                allow_private: allow_private.clone(),
            }))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Notifier {
            store,
            client,
            allow_private,
        })
    }

    /// The store notifications live in.
    pub fn store(&self) -> &Arc<dyn NotificationStore> {
        &self.store
    }

    /// Claims the deliveries due now and attempts them, concurrently; how many it attempted.
    pub async fn run_once(&self, state: &AppState) -> MetadataResult<usize> {
        let settings = state.settings();
        let notifications = &settings.notifications;
        self.allow_private
            .store(notifications.allow_private_targets, Ordering::Relaxed);
        let now = now_millis();
        if !self.store.deliveries_due(now).await? {
            return Ok(0);
        }
        let claim = uuid::Uuid::new_v4().to_string();
        let lease_until = now + notifications.lease().as_millis() as i64;
        let claimed = self
            .store
            .claim_deliveries(&claim, now, lease_until, BATCH)
            .await?;
        let count = claimed.len();
        let (host, scheme) = public_address(state);
        futures::stream::iter(claimed)
            .for_each_concurrent(BATCH as usize, |delivery| {
                let (host, scheme, claim) = (&host, &scheme, &claim);
                async move {
                    self.attempt(delivery, claim, host, scheme, notifications)
                        .await
                }
            })
            .await;
        Ok(count)
    }

    /// Sends one claimed delivery and records the outcome: the one place where a delivery's
    /// outcome is known (a metrics counter belongs here).
    async fn attempt(
        &self,
        delivery: ClaimedDelivery,
        claim: &str,
        host: &str,
        scheme: &str,
        settings: &NotificationSettings,
    ) {
        let note = &delivery.notification;
        let target = note.target_host();
        let outcome = match self.send(&delivery, host, scheme, settings).await {
            Ok(status) if (200..300).contains(&status) => AttemptOutcome {
                at: now_millis(),
                status: Some(status),
                error: None,
            },
            Ok(status) => AttemptOutcome {
                at: now_millis(),
                status: Some(status),
                error: Some(format!("the target answered {status}")),
            },
            Err(error) => AttemptOutcome {
                at: now_millis(),
                status: None,
                error: Some(error),
            },
        };
        let after = if outcome.delivered() {
            AfterAttempt::Delivered
        } else {
            match settings.retry_after(delivery.attempts) {
                Some(wait) => AfterAttempt::RetryAt(outcome.at + wait.as_millis() as i64),
                None => AfterAttempt::GiveUp,
            }
        };
        crate::metrics::metrics().webhook_delivery(match after {
            AfterAttempt::Delivered => WebhookOutcome::Success,
            AfterAttempt::RetryAt(_) => WebhookOutcome::Retry,
            AfterAttempt::GiveUp => WebhookOutcome::Failure,
        });
        match &after {
            AfterAttempt::Delivered => tracing::info!(
                notification = %note.uuid, repository = %note.repository, event = %note.event,
                method = %note.method, %target, status = outcome.status, "notification delivered"
            ),
            AfterAttempt::RetryAt(_) => tracing::info!(
                notification = %note.uuid, repository = %note.repository, %target,
                attempt = delivery.attempts + 1, error = outcome.error.as_deref(),
                "notification delivery failed; it will be retried"
            ),
            AfterAttempt::GiveUp => tracing::warn!(
                notification = %note.uuid, repository = %note.repository, %target,
                attempts = delivery.attempts + 1, error = outcome.error.as_deref(),
                "notification delivery failed for the last time; giving up"
            ),
        }
        match self
            .store
            .finish_delivery(delivery.id, claim, &outcome, after)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                notification = %note.uuid,
                "a notification delivery outlived its claim; another worker may send it again"
            ),
            Err(e) => tracing::warn!(
                notification = %note.uuid, error = %e,
                "cannot record a notification delivery; it will be attempted again"
            ),
        }
    }

    /// Sends a delivery; the HTTP status, or why there was none (without the URL, which may
    /// hold a secret).
    async fn send(
        &self,
        delivery: &ClaimedDelivery,
        host: &str,
        scheme: &str,
        settings: &NotificationSettings,
    ) -> Result<u16, String> {
        let note = &delivery.notification;
        let config: Value =
            serde_json::from_str(&note.config).map_err(|_| "stored config is not JSON")?;
        let url = target::parse_url(config["url"].as_str().unwrap_or_default())?;
        // A literal address never reaches the resolver, so it is checked here.
        let literal = url.host_str().unwrap_or_default();
        let literal = literal.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
            if !settings.allow_private_targets && target::is_internal(ip) {
                return Err("the target is an internal address".into());
            }
        }
        let data: Value =
            serde_json::from_str(&delivery.event_data).map_err(|_| "stored event is not JSON")?;
        let context = EventContext {
            event: note.event.clone(),
            repository: note.repository.clone(),
            docker_url: format!("{host}/{}", note.repository),
            homepage: format!("{scheme}://{host}/repository/{}", note.repository),
            tags: data["tags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            test: data["test"].as_bool().unwrap_or(false),
        };
        let (body, headers) = match note.method.as_str() {
            "slack" => (context.slack_body(&note.title), Default::default()),
            _ => (
                context.webhook_body(),
                config
                    .get("headers")
                    .map(custom_headers)
                    .transpose()?
                    .unwrap_or_default(),
            ),
        };
        let response = self
            .client
            .post(url)
            .headers(headers)
            .json(&body)
            .timeout(settings.timeout)
            .send()
            .await
            .map_err(|e| describe(&e.without_url()))?;
        if let Some(peer) = response.remote_addr() {
            if !settings.allow_private_targets && target::is_internal(peer.ip()) {
                return Err("the target connected to is an internal address".into());
            }
        }
        Ok(response.status().as_u16())
    }
}

impl crate::metadata::notifications::NotificationRecord {
    /// The target URL of its config.
    pub fn config_url(&self) -> Option<String> {
        let config: Value = serde_json::from_str(&self.config).ok()?;
        config.get("url")?.as_str().map(String::from)
    }

    /// The host (and port) of its target, for display; never the path, which may be a secret.
    pub fn target_host(&self) -> String {
        target::display_host(&self.config_url().unwrap_or_default())
    }
}

/// What a one-line error says, through its sources (reqwest's top level says only "error
/// sending request").
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The host (`SERVER_HOSTNAME`, else `localhost`) and scheme berth's URLs in payloads use.
fn public_address(state: &AppState) -> (String, String) {
    let settings = state.settings();
    let host = settings
        .server_hostname
        .clone()
        .unwrap_or_else(|| "localhost".into());
    let scheme = settings
        .preferred_url_scheme
        .clone()
        .unwrap_or_else(|| if state.tls { "https" } else { "http" }.to_string());
    (host, scheme)
}

/// Event data for a test delivery of a notification of `repo`.
pub fn test_event_data() -> String {
    serde_json::json!({ "tags": ["latest"], "test": true }).to_string()
}

/// Attempts due deliveries every `NOTIFICATION_POLL_INTERVAL_MS` (read before each round),
/// while berth serves. Every replica runs one; claims keep them from sending a delivery twice.
pub async fn deliver_periodically(state: AppState) {
    loop {
        let interval = state.settings().notifications.poll_interval;
        tokio::time::sleep(interval).await;
        // Work through a backlog without waiting between full batches.
        loop {
            match state.notifier.run_once(&state).await {
                Ok(n) if n as u32 >= BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read notification deliveries; retrying");
                    break;
                }
            }
        }
    }
}
