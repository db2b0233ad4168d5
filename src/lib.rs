//! berth: an OCI artifact registry.
//!
//! [`open`] builds the application from a data directory and settings; [`serve`] runs it on a
//! listener until a shutdown signal. Integration tests call both in-process.

pub mod api;
pub mod app;
pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod fsck;
pub mod gc;
pub mod health;
pub mod metadata;
pub mod metrics;
pub mod mirror;
pub mod notify;
pub mod policy;
pub mod proxy;
pub mod registry;
pub mod sealed;
pub mod server;
pub mod storage;
pub mod tls;
pub mod trust;
pub mod ui;
pub mod upstream;
pub mod usage_log;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use app::AppState;
use auth::Auth;
use config::{DatabaseUri, Settings, StorageSettings};
use metadata::Store;
use registry::Registry;
use storage::fs::FsBlobStore;
use storage::s3::S3BlobStore;
use storage::BlobStore;

/// Opens the embedded backends under `data_dir` (creating it), recovers interrupted uploads,
/// loads the token signing key, and returns the application state. Everything berth creates
/// from then on is private to the account it runs as ([`restrict_new_files`]), and so is the
/// data directory ([`prepare_data_dir`]).
pub async fn open(data_dir: &Path, settings: &Settings) -> anyhow::Result<AppState> {
    restrict_new_files();
    prepare_data_dir(data_dir)?;
    let meta = open_metadata(&database_uri(data_dir, settings)?).await?;
    let blobs = open_blob_store(data_dir, settings).await?;
    let registry = Arc::new(Registry::new(meta.clone(), blobs.clone(), settings));
    let trust = trust::service::Trust::new(meta.clone(), registry.clone());
    let notifier =
        notify::Notifier::new(meta.clone()).context("cannot build the notification client")?;
    let collector = gc::Collector::new(meta.clone(), blobs);
    let usage = usage_log::UsageLog::start(meta.clone(), &settings.usage_logs);
    let sealer = Arc::new(sealed::SealerCell::new(
        data_dir.to_path_buf(),
        settings.database_secret_key.clone(),
    ));
    let mirrors = mirror::Mirrors::new(meta.clone(), sealer.clone());
    registry
        .recover()
        .await
        .context("cannot recover upload state")?;
    let auth = Auth::new(meta.clone(), settings.auth.clone())
        .await
        .context("cannot load token signing keys")?;
    let proxy_caches = upstream::proxy_cache::ProxyCaches::new(meta.clone(), sealer.clone());
    if settings.proxy_cache || settings.repo_mirror {
        // Load the key now, so a missing DATABASE_SECRET_KEY is warned about at start.
        sealer
            .get()
            .context("cannot load the upstream credential key")?;
    }
    Ok(AppState::new(
        registry,
        Arc::new(auth),
        Arc::new(collector),
        app::Services {
            notifier: Arc::new(notifier),
            trust: Arc::new(trust),
            mirrors: Arc::new(mirrors),
            proxy_caches: Arc::new(proxy_caches),
        },
        Arc::new(usage),
        settings.clone(),
    ))
}

/// Makes every file and directory the process creates from now on private to the account it
/// runs as (umask 077), whatever umask it was started with: the metadata database and its
/// journals, blobs, uploads, keys and the initial password hold secrets or private content.
pub fn restrict_new_files() {
    #[cfg(unix)]
    // SAFETY: umask only replaces the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// What berth keeps in a data directory: the metadata database and its companions, the blob
/// store's areas, the self-signed TLS pair and the initial password.
const DATA_DIR_ENTRIES: &[&str] = &[
    "metadata.db",
    "metadata.db-wal",
    "metadata.db-shm",
    "metadata.db-journal",
    "metadata.db-changes",
    "blobs",
    "uploads",
    "quarantine",
    tls::SELF_SIGNED_DIR,
    INITIAL_ADMIN_PASSWORD_FILE,
    sealed::KEY_FILE,
];

/// Creates the data directory, or, when it exists and other accounts may enter or read it
/// (an older berth kept the mode it found, and wrote files with the umask's 0644), makes it and
/// what berth keeps in it private to its owner and says so. That walk happens once: afterwards
/// the directory is 0700 and new files are private. Entries berth does not know are left as
/// they are (the directory's mode keeps others out of them). A directory berth cannot restrict
/// is reported.
pub fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir)
            .with_context(|| format!("cannot read data directory {}", data_dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            let dir = data_dir.display();
            let restricted =
                std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode & 0o7700))
                    .and_then(|()| {
                        DATA_DIR_ENTRIES.iter().try_for_each(|name| {
                            match restrict_tree(&data_dir.join(name)) {
                                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                                other => other,
                            }
                        })
                    });
            match restricted {
                Ok(()) => tracing::warn!(
                    "the data directory {dir} was open to other accounts (mode {:o}); berth made it and what it keeps there private to its owner",
                    mode & 0o777
                ),
                Err(e) => tracing::warn!(
                    "the data directory {dir} is open to other accounts (mode {:o}) and berth cannot restrict it ({e}): they may read the token signing key, password hashes and private blobs",
                    mode & 0o777
                ),
            }
        }
    }
    Ok(())
}

/// Takes group and other permissions away from `path` and everything below it; symbolic links
/// and what they point to are left alone.
#[cfg(unix)]
fn restrict_tree(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o077))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            restrict_tree(&entry?.path())?;
        }
    }
    Ok(())
}

/// The metadata database berth uses: `BERTH_DB_URI` from the environment when set, else the
/// config's `DB_URI`, else SQLite at `data_dir/metadata.db`.
pub fn database_uri(data_dir: &Path, settings: &Settings) -> anyhow::Result<DatabaseUri> {
    match std::env::var(config::DB_URI_ENV) {
        Ok(uri) if !uri.trim().is_empty() => DatabaseUri::parse(&uri)
            .map_err(|expected| anyhow::anyhow!("{}: expected {expected}", config::DB_URI_ENV)),
        _ => Ok(settings
            .database
            .clone()
            .unwrap_or_else(|| DatabaseUri::Sqlite(data_dir.join("metadata.db")))),
    }
}

/// Opens the blob store the settings name: a directory (by default `data_dir`) or an S3
/// bucket, which must answer a listing now, so a wrong endpoint, bucket or key stops start-up.
pub async fn open_blob_store(
    data_dir: &Path,
    settings: &Settings,
) -> anyhow::Result<Arc<dyn BlobStore>> {
    let storage = &settings.storage;
    let store: Arc<dyn BlobStore> = match storage {
        StorageSettings::Local(root) => {
            let root = root.as_deref().unwrap_or(data_dir);
            Arc::new(
                FsBlobStore::open(root)
                    .with_context(|| format!("cannot open the blob store in {}", root.display()))?,
            )
        }
        StorageSettings::S3(s3) => Arc::new(
            S3BlobStore::connect(s3)
                .await
                .map_err(|e| match e {
                    storage::StorageError::Backend(source) => anyhow::Error::new(source),
                    other => anyhow::Error::new(other),
                })
                .with_context(|| format!("cannot open the blob store {s3}"))?,
        ),
    };
    tracing::debug!(%storage, "blob store open");
    Ok(store)
}

/// Opens (and migrates) the metadata database at `uri`.
pub async fn open_metadata(uri: &DatabaseUri) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match uri {
        DatabaseUri::Sqlite(path) => Arc::new(
            metadata::sqlite::open(path)
                .await
                .with_context(|| format!("cannot open the metadata database {}", path.display()))?,
        ),
        DatabaseUri::Postgres(conninfo) => Arc::new(
            metadata::postgres::open(conninfo)
                .await
                .with_context(|| format!("cannot open the metadata database {}", uri.redacted()))?,
        ),
    };
    tracing::debug!(database = %uri, "metadata database open");
    Ok(store)
}

/// Name of the file holding the first-start admin password.
pub const INITIAL_ADMIN_PASSWORD_FILE: &str = "initial-admin-password";

/// On a registry without users, creates the superuser `admin` with a random password and
/// writes the password to `initial-admin-password` in the data directory (mode 0600), so the
/// embedded default is usable at once. Returns the password when it created the account.
pub async fn create_initial_admin(
    state: &AppState,
    data_dir: &Path,
) -> anyhow::Result<Option<String>> {
    let accounts = state.auth.accounts();
    if accounts.count_users().await? > 0 {
        return Ok(None);
    }
    let password = auth::secret::random_password();
    let hash = auth::secret::hash_password(&password);
    match accounts.create_user("admin", &hash, None, true).await {
        Ok(_) => {}
        // Another replica or a concurrent CLI call got there first.
        Err(metadata::MetadataError::Conflict) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let path = data_dir.join(INITIAL_ADMIN_PASSWORD_FILE);
    write_private(&path, format!("{password}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(password))
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// How long in-flight requests may run after a shutdown signal before berth exits anyway,
/// unless the state says otherwise ([`AppState::shutdown_grace`]).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `state` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (up to the state's `shutdown_grace`). Connections are bounded as [`server`] describes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _deliveries = DeliveryWorker::start(&state);
    server::run(listener, state, None, shutdown).await
}

/// The background workers of a serving process (notification deliveries, signature
/// verdicts, repository mirror syncs); they stop when this is dropped.
struct DeliveryWorker(Vec<tokio::task::JoinHandle<()>>);

impl DeliveryWorker {
    fn start(state: &AppState) -> DeliveryWorker {
        DeliveryWorker(vec![
            tokio::spawn(notify::deliver_periodically(state.clone())),
            tokio::spawn(trust::service::verify_periodically(state.trust.clone())),
            tokio::spawn(mirror::sync::sync_periodically(state.clone())),
            tokio::spawn(proxy::sweep_periodically(state.clone())),
        ])
    }
}

impl Drop for DeliveryWorker {
    fn drop(&mut self) {
        for worker in &self.0 {
            worker.abort();
        }
    }
}

/// Serves `/metrics` without authentication on `listener` (the dedicated metrics listener,
/// `--metrics-listen` or `PROMETHEUS_LISTEN`) until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics::router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `state` over HTTPS on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish (up to the state's `shutdown_grace`). The TLS handshake happens in each
/// connection's task, under the same deadline as a request head.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    mut state: AppState,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.tls = true;
    let _deliveries = DeliveryWorker::start(&state);
    server::run(listener, state, Some(tls), shutdown).await
}
