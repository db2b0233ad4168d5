//! The embedded metadata backend: one SQLite database file in WAL mode, run by the shared
//! SQL layer ([`super::sql`]).
//!
//! Writes go through a single-connection pool so that transactions in this process never
//! contend with each other; reads use a separate pool and proceed concurrently with writes.
//! `synchronous=FULL` makes every commit durable before the client is told it succeeded.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use super::sql::{Dialect, SqlStore};
use super::{backend, MetadataError, Result};

pub(crate) mod cache;

/// Connections reading at once.
const READERS: u32 = 8;
/// How long a statement waits for another process's write lock (the CLI, `berth gc`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a database path may not carry literally in a `sqlite://` URL.
const PATH_IN_URL: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'?').add(b'#');

/// Opens (creating and migrating if needed) the database at `path`. A database file or
/// journal other accounts may read (as an older berth left them) is made private first.
pub async fn open(path: &Path) -> Result<SqlStore> {
    sqlx::any::install_default_drivers();
    restrict_database_files(path).map_err(backend)?;
    let path_text = path.to_str().ok_or_else(|| {
        MetadataError::Backend(format!("the database path {path:?} is not UTF-8").into())
    })?;
    let encoded = utf8_percent_encode(path_text, PATH_IN_URL);
    let url = |mode: &str| format!("sqlite://{encoded}?mode={mode}");
    let pragmas = format!(
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {};",
        BUSY_TIMEOUT.as_millis()
    );
    let durable = format!("{pragmas} PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
    let writer = pool(url("rwc"), 1, durable).await?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&writer)
        .await
        .map_err(backend)?;
    let reader = pool(url("ro"), READERS, pragmas).await?;
    let counter =
        cache::ChangeCounter::open(&path.with_extension("db-changes")).map_err(backend)?;
    Ok(SqlStore {
        writer,
        reader,
        dialect: Dialect::Sqlite,
        cache: Some(cache::ContentCache::with_counter(counter)),
        generations: Some(GenerationReader::open(path).map_err(backend)?),
    })
}

/// Reads the access generation (`crate::auth::decisions`) on the calling thread: through sqlx a
/// query goes to a worker thread and back, which cost more CPU than all the rest of a bearer
/// manifest GET. Like any read, it sees every process's commits.
///
/// Each thread that asks has a read-only connection of its own, so concurrent requests never
/// wait for one another here (one shared connection behind a mutex serialized every request
/// of an open registry, which reads the generation for its trust policies).
pub struct GenerationReader {
    path: std::path::PathBuf,
    /// Told apart from other databases a thread may read (tests open many).
    id: u64,
}

thread_local! {
    static GENERATION_CONNECTIONS: std::cell::RefCell<HashMap<u64, rusqlite::Connection>> =
        std::cell::RefCell::new(HashMap::new());
}

impl GenerationReader {
    fn open(path: &Path) -> rusqlite::Result<GenerationReader> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let reader = GenerationReader {
            path: path.to_path_buf(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        // Fails now, at start, if the database cannot be read this way.
        reader.connect()?;
        Ok(reader)
    }

    fn connect(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = rusqlite::Connection::open_with_flags(&self.path, flags)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        Ok(connection)
    }

    pub fn read(&self) -> Result<u64> {
        GENERATION_CONNECTIONS.with(|connections| {
            let mut connections = connections.borrow_mut();
            let connection = match connections.entry(self.id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(self.connect().map_err(backend)?)
                }
            };
            let query = connection.prepare_cached("SELECT value FROM access_generation");
            let value = query.and_then(|mut q| q.query_row([], |row| row.get::<_, i64>(0)));
            value.map(|v| v as u64).map_err(backend)
        })
    }
}

impl Drop for GenerationReader {
    fn drop(&mut self) {
        // This thread's connection goes now; other threads' go when they end.
        let _ = GENERATION_CONNECTIONS.try_with(|c| c.borrow_mut().remove(&self.id));
    }
}

/// A pool of `size` connections to `url`, each set up by `pragmas` first.
async fn pool(url: String, size: u32, pragmas: String) -> Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(size)
        .after_connect(move |conn, _| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(backend)
}

/// Takes group and other permissions away from the database at `path`, its journals and its
/// change counter, where they exist: they hold password hashes and the token signing key.
fn restrict_database_files(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut files = vec![path.to_path_buf(), path.with_extension("db-changes")];
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push(name.into());
        }
        for file in files {
            let mode = match std::fs::metadata(&file) {
                Ok(meta) => meta.permissions().mode(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & !0o077))?;
            }
        }
    }
    Ok(())
}
