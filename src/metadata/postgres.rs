//! The shared metadata backend: one PostgreSQL database that several berth replicas use at
//! once, run by the shared SQL layer ([`super::sql`]).

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::sql::{Dialect, SqlStore};
use super::{backend, Result};

/// Connections each replica keeps open at most.
const POOL_SIZE: u32 = 16;

/// Connects to the database at `uri` (`postgresql://user:password@host:port/db`) and applies
/// pending migrations. Replicas starting at once are safe: the migrator holds a PostgreSQL
/// advisory lock while it checks and applies migrations.
pub async fn open(uri: &str) -> Result<SqlStore> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| {
            Box::pin(async move {
                // Notices ("relation already exists, skipping" from the migrator) are not
                // news, and the admin CLI's output must stay clean.
                conn.execute("SET client_min_messages = warning").await?;
                Ok(())
            })
        })
        .connect(uri)
        .await
        .map_err(backend)?;
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .map_err(backend)?;
    Ok(SqlStore {
        writer: pool.clone(),
        reader: pool,
        dialect: Dialect::Postgres,
        cache: None,
        generations: None,
    })
}
