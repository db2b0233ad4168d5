//! berth: an OCI artifact registry.
//!
//! [`open`] builds the application from a data directory and settings; [`serve`] runs it on a
//! listener until a shutdown signal. Integration tests call both in-process.

pub mod api;
pub mod app;
pub mod config;
pub mod error;
pub mod metadata;
pub mod policy;
pub mod registry;
pub mod storage;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use app::AppState;
use config::Settings;
use metadata::sqlite::SqliteStore;
use registry::Registry;
use storage::fs::FsBlobStore;

/// Opens the embedded backends under `data_dir` (creating it), recovers interrupted uploads,
/// and returns the application state.
pub async fn open(data_dir: &Path, settings: &Settings) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let meta = SqliteStore::open(&data_dir.join("metadata.db"))
        .await
        .context("cannot open the metadata database")?;
    let blobs = FsBlobStore::open(data_dir).context("cannot open the blob store")?;
    let registry = Registry::new(Arc::new(meta), Arc::new(blobs), settings);
    registry
        .recover()
        .await
        .context("cannot recover upload state")?;
    Ok(AppState {
        registry: Arc::new(registry),
    })
}

/// How long in-flight requests may run after a shutdown signal before berth exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `state` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    };
    let server = axum::serve(listener, app::router(state)).with_graceful_shutdown(shutdown);
    let server = tokio::spawn(async move { server.await });
    tokio::select! {
        result = server => result.map_err(std::io::Error::other)?,
        () = async {
            let _ = signalled_rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("requests still running after the shutdown grace period; exiting");
            Ok(())
        }
    }
}
