//! Test databases: with `BERTH_TEST_DB_URI=postgresql://user:pw@host:port/db` set, every data
//! directory a test uses gets a fresh PostgreSQL database `berth_test_<random>` on that
//! server, so the whole suite runs against PostgreSQL; without it, berth uses SQLite in the
//! data directory as usual.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sqlx::Connection;

/// The environment variable that points the suite at a PostgreSQL server.
pub const TEST_DB_URI_ENV: &str = "BERTH_TEST_DB_URI";

/// The PostgreSQL server tests run against, if any.
pub fn postgres_under_test() -> Option<String> {
    std::env::var(TEST_DB_URI_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Data directory -> URI of its test database, so a restart, the admin CLI or a respawned
/// process on the same directory finds the same database.
static DATABASES: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

/// `uri` with its database name replaced by `name`.
pub fn with_database_name(uri: &str, name: &str) -> String {
    let (scheme, rest) = uri.split_once("://").expect("database URI has a scheme");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.split_once('?').map(|(_, q)| q);
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// Creates a fresh database on the server under test and returns its URI.
pub async fn create_test_database(server: &str) -> String {
    let name = format!("berth_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("connect to BERTH_TEST_DB_URI");
    // The name is ours (letters, digits and `_`), so formatting it in is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let _ = conn.close().await;
    with_database_name(server, &name)
}

/// The test database of `data_dir` under PostgreSQL (created on first use), or None on SQLite.
pub async fn test_database_for(data_dir: &Path) -> Option<String> {
    let server = postgres_under_test()?;
    let key = data_dir.to_path_buf();
    if let Some(uri) = DATABASES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return Some(uri.clone());
    }
    let uri = create_test_database(&server).await;
    let mut map = DATABASES.lock().unwrap();
    let map = map.get_or_insert_with(HashMap::new);
    Some(map.entry(key).or_insert(uri).clone())
}

/// Drops the test database of `data_dir`, if it has one. Best effort: the throwaway server
/// is removed after the run anyway.
pub fn drop_test_database_for(data_dir: &Path) {
    let Some(server) = postgres_under_test() else {
        return;
    };
    let Some(uri) = DATABASES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .remove(data_dir)
    else {
        return;
    };
    drop_test_database(&server, &uri);
}

/// Drops the database of `uri` (connected through `server`), disconnecting its users.
pub fn drop_test_database(server: &str, uri: &str) {
    let name = uri
        .rsplit('/')
        .next()
        .and_then(|t| t.split('?').next())
        .unwrap_or_default()
        .to_string();
    if !name.starts_with("berth_test_")
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return;
    }
    let server = server.to_string();
    // Drop may run inside an async test: use a thread with its own runtime.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        });
    })
    .join();
}
