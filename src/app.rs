//! Application state and the HTTP router.

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{any, get};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutBody;
use tower_http::trace::TraceLayer;

use crate::api;
use crate::auth::Auth;
use crate::client::Client;
use crate::config::Settings;
use crate::gc::Collector;
use crate::registry::Registry;

/// Shared handles every request handler may use.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub auth: Arc<Auth>,
    pub gc: Arc<Collector>,
    /// The usage logs' recorder (Quay's audit trail).
    pub usage: Arc<crate::usage_log::UsageLog>,
    settings: Arc<RwLock<Arc<Settings>>>,
    /// Whether berth serves HTTPS (decides the scheme of the URLs it hands out).
    pub tls: bool,
    /// How long in-flight requests may run after a shutdown signal before berth exits anyway.
    pub shutdown_grace: std::time::Duration,
    /// Turns for building heavy dashboard pages (`DASHBOARD_MAX_CONCURRENT_RENDERS`).
    pub renders: Arc<crate::ui::RenderGate>,
    /// Repository notifications: their store and the delivery client.
    pub notifier: Arc<crate::notify::Notifier>,
    /// Signature trust: verdicts, their worker and the enforcement decision.
    pub trust: Arc<crate::trust::service::Trust>,
    /// Repository mirroring: configurations, sync claims and the sealed passwords' key.
    pub mirrors: Arc<crate::mirror::Mirrors>,
    /// Proxy cache organizations: their configurations and the credential key.
    pub proxy_caches: Arc<crate::upstream::proxy_cache::ProxyCaches>,
}

/// The features with a store and a worker of their own, as [`AppState::new`] takes them.
pub struct Services {
    pub notifier: Arc<crate::notify::Notifier>,
    pub trust: Arc<crate::trust::service::Trust>,
    pub mirrors: Arc<crate::mirror::Mirrors>,
    pub proxy_caches: Arc<crate::upstream::proxy_cache::ProxyCaches>,
}

impl AppState {
    /// Assembles the state: one handle per service, each built by `crate::open`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: Arc<Registry>,
        auth: Arc<Auth>,
        gc: Arc<Collector>,
        services: Services,
        usage: Arc<crate::usage_log::UsageLog>,
        settings: Settings,
    ) -> Self {
        let Services {
            notifier,
            trust,
            mirrors,
            proxy_caches,
        } = services;
        AppState {
            mirrors,
            proxy_caches,
            notifier,
            trust,
            registry,
            auth,
            gc,
            usage,
            renders: Arc::new(crate::ui::RenderGate::new(
                settings.dashboard_max_concurrent_renders,
            )),
            settings: Arc::new(RwLock::new(Arc::new(settings))),
            tls: false,
            shutdown_grace: crate::SHUTDOWN_GRACE,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .expect("settings lock poisoned")
            .clone()
    }

    /// The client of a request (its address and forwarded scheme), read through the
    /// `TRUSTED_PROXIES` in force.
    pub fn client(&self, extensions: &Extensions, headers: &HeaderMap) -> Client {
        Client::of(extensions, headers, &self.settings().trusted_proxies)
    }

    /// Applies reloaded settings everywhere they are used. The storage location applies at
    /// start only: a change is logged and the running one kept.
    pub fn apply_settings(&self, mut settings: Settings) {
        let running = self.settings();
        if let Some(asked) = crate::config::keep_storage(&mut settings, &running.storage) {
            // The blob store was opened at start; switching it live would split the blobs
            // between two stores.
            tracing::warn!(
                "the storage location changed to {asked} in the config file; restart berth to use it (still using {})",
                running.storage
            );
        }
        self.registry.apply_settings(&settings);
        self.auth.apply_settings(settings.auth.clone());
        self.usage.apply_settings(&settings.usage_logs);
        self.renders
            .set_limit(settings.dashboard_max_concurrent_renders);
        *self.settings.write().expect("settings lock poisoned") = Arc::new(settings);
    }
}

/// Runs garbage collection every `GC_INTERVAL_SECONDS` while `FEATURE_GARBAGE_COLLECTION` is on,
/// reading the settings in force before each run; replicas take turns through the lease.
pub async fn collect_periodically(state: AppState) {
    loop {
        let settings = state.settings().gc.clone();
        tokio::time::sleep(settings.interval).await;
        let settings = state.settings().gc.clone();
        if !settings.enabled {
            continue;
        }
        match state.gc.run(&settings, false, &|_| {}).await {
            Ok(report) if report.busy => tracing::debug!("{}", report.summary()),
            Ok(report) => tracing::info!("garbage collection: {}", report.summary()),
            Err(e) => {
                tracing::warn!(error = %e, "garbage collection failed; retrying at the next interval")
            }
        }
    }
}

/// Gives every request body an idle timeout (`BODY_IDLE_TIMEOUT_SECONDS`, read per request so a
/// config reload applies to the next request): a read that waits longer than that for the next
/// bytes fails, and the handler reading it answers as for any broken body (for an upload,
/// `BLOB_UPLOAD_INVALID`, with the session left as it was before the request). The clock runs
/// only while a handler waits for body bytes, never while it works.
async fn limit_body_idle_time(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let idle = state.settings().body_idle_timeout;
    let request = request.map(|body| Body::new(TimeoutBody::new(idle, body)));
    next.run(request).await
}

/// The full HTTP surface of berth.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(crate::health::instance))
        .route("/health/instance", get(crate::health::instance))
        .route("/health/endtoend", get(crate::health::endtoend))
        .route("/metrics", get(crate::metrics::on_main_listener))
        .route("/v2/auth", any(api::token::token))
        .route("/v2", any(api::v2::dispatch))
        .route("/v2/", any(api::v2::dispatch))
        .route("/v2/{*path}", any(api::v2::dispatch))
        .merge(api::manage::routes())
        .merge(crate::ui::routes())
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("docker-distribution-api-version"),
            HeaderValue::from_static("registry/2.0"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_body_idle_time,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::request_log::log_requests,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
