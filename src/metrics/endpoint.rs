//! `GET /metrics`: on the main listener for superusers (or anyone, with
//! `METRICS_ALLOW_ANONYMOUS`), and on the dedicated metrics listener (`--metrics-listen`,
//! `PROMETHEUS_LISTEN`) for anyone who can reach it.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{metrics, CONTENT_TYPE};
use crate::api::manage::{ApiCaller, ManageError};
use crate::app::AppState;

/// The exposition: the registry-wide totals read now, then every metric.
async fn scrape(state: &AppState) -> Response {
    match state.registry.totals().await {
        Ok(totals) => metrics().set_totals(&totals),
        // The other metrics are still worth answering with; the totals keep their last value.
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the registry's totals"),
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics().encode()).into_response()
}

/// `GET /metrics` on the main listener: superusers (Basic credentials or an API token) only,
/// unless `METRICS_ALLOW_ANONYMOUS` opens it to everyone.
pub async fn on_main_listener(
    State(state): State<AppState>,
    caller: Result<ApiCaller, ManageError>,
) -> Response {
    if !state.settings().metrics_allow_anonymous {
        let who = match caller {
            Ok(ApiCaller(Some(who), _)) => who,
            Ok(ApiCaller(None, _)) => {
                return ManageError::Unauthorized(
                    "metrics are for superusers: log in, or use the metrics listener".into(),
                )
                .into_response()
            }
            Err(e) => return e.into_response(),
        };
        if !state.auth.is_superuser(&who) {
            return ManageError::Forbidden.into_response();
        }
    }
    scrape(&state).await
}

async fn on_metrics_listener(State(state): State<AppState>) -> Response {
    scrape(&state).await
}

/// The dedicated metrics listener's routes: `/metrics`, without authentication (the operator
/// decides who can reach the address it binds).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(on_metrics_listener))
        .with_state(state)
}
