//! Health checks in Quay's shape, for load balancers, orchestrators and monitoring.
//!
//! `GET /health/instance` (and `/health`) answers whether this process can serve: it is up
//! and reads its metadata database. `GET /health/endtoend` answers whether the registry as a
//! whole works: the metadata database and the blob store each take a real write and read of
//! a probe of their own. Both answer `{"data":{"services":{name: bool}},"status_code":N}`, 200
//! when every service passes and 503 naming the one that failed otherwise, as Quay does. Why a
//! service failed goes to the log (it may name hosts and paths), not to the anonymous caller.

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::app::AppState;

/// Longest a service may take to answer before it counts as down: a database that hangs must
/// not hang the check (and the load balancer asking it).
pub const SERVICE_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one service's check.
type Outcome = (&'static str, Result<(), String>);

async fn check<E: std::fmt::Display>(
    name: &'static str,
    probe: impl Future<Output = Result<(), E>>,
) -> Outcome {
    let outcome = match tokio::time::timeout(SERVICE_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", SERVICE_TIMEOUT.as_secs())),
    };
    (name, outcome)
}

/// Quay's health answer for these outcomes; failures are logged with their reason.
fn answer(check: &str, outcomes: &[Outcome]) -> Response {
    let mut services = Map::new();
    for (name, outcome) in outcomes {
        services.insert((*name).to_string(), Value::Bool(outcome.is_ok()));
        if let Err(why) = outcome {
            tracing::warn!(check, service = name, reason = %why, "health check failed");
        }
    }
    let status = if outcomes.iter().all(|(_, o)| o.is_ok()) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"data": {"services": services}, "status_code": status.as_u16()});
    (status, Json(body)).into_response()
}

/// `GET /health/instance`: this process serves and reads its metadata database.
pub async fn instance(State(state): State<AppState>) -> Response {
    let database = check("database", async {
        state.auth.accounts().access_generation().await.map(|_| ())
    })
    .await;
    answer("instance", &[("registry", Ok(())), database])
}

/// `GET /health/endtoend`: the metadata database and the blob store each take a real write
/// and read.
pub async fn endtoend(State(state): State<AppState>) -> Response {
    // Unique per check, so replicas and concurrent checks never read each other's probe.
    let probe = uuid::Uuid::new_v4().to_string();
    let (database, storage) = tokio::join!(
        check("database", state.registry.probe_metadata(&probe)),
        check("storage", state.registry.probe_storage(&probe)),
    );
    answer("endtoend", &[database, storage])
}
