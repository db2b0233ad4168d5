//! The metadata stores on SQL, written once for both databases.
//!
//! Every query is written here, once, in SQL that SQLite and PostgreSQL both accept, and runs
//! through sqlx's `Any` driver, so one implementation of [`MetadataStore`](super::MetadataStore),
//! [`AccountStore`](super::accounts::AccountStore), [`GcStore`](super::gc::GcStore) and
//! [`FsckStore`](super::fsck::FsckStore) serves both (and the notification, usage-log and trust
//! stores beside them). The few places where the databases
//! really differ are [`Dialect`]'s:
//! - how a write transaction begins (SQLite: `BEGIN IMMEDIATE` on the one writer connection);
//! - locks between replicas ([`SqlStore::lock`]: PostgreSQL advisory locks; on SQLite the
//!   single writer already serializes every write transaction);
//! - a handful of spellings, rewritten once per query text by [`sql!`]: row locks (`FOR
//!   UPDATE`, `FOR SHARE`, dropped on SQLite), `instr` (`strpos` on PostgreSQL) and a JSON list
//!   parameter `json_each($N)` (`json_array_elements_text` on PostgreSQL).
//!
//! Opening a database (pools, pragmas, migrations) is each backend's own: [`super::sqlite`]
//! and [`super::postgres`]. So is the embedded backend's read cache, which this layer calls
//! where it is present.
//!
//! Values are only what both databases store alike: 64-bit integers (flags are 0/1, times
//! milliseconds since the Unix epoch), text and bytes.

use std::sync::OnceLock;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Transaction};
use sqlx::{AnyPool, Row};

use super::sqlite::cache::{ContentCache, Invalidation};
use super::{stored, MetadataError, Result};

mod accounts;
mod collection;
mod integrity;
mod mirror;
mod notifications;
mod proxy_cache;
mod registry;
mod trust;
mod usage_log;

/// Which database a [`SqlStore`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite = 0,
    Postgres = 1,
}

impl Dialect {
    /// `portable` as this database spells it.
    fn spell(self, portable: &str) -> String {
        match self {
            Dialect::Sqlite => {
                // SQLite has no row locks: its one writer holds the whole database.
                let lock = portable
                    .find(" FOR UPDATE")
                    .or_else(|| portable.find(" FOR SHARE"));
                portable[..lock.unwrap_or(portable.len())].to_string()
            }
            Dialect::Postgres => {
                let mut text = portable.replace("instr(", "strpos(");
                while let Some(at) = text.find("json_each($") {
                    let rest = &text[at + "json_each(".len()..];
                    let Some(close) = rest.find(')') else { break };
                    let parameter = rest[..close].to_string();
                    text.replace_range(
                        at..at + "json_each(".len() + close + 1,
                        &format!("json_array_elements_text(CAST({parameter} AS json)) AS value"),
                    );
                }
                text
            }
        }
    }

    /// The spelling of `portable` for this database, from a call site's own cache.
    fn pick(self, cache: &'static OnceLock<[String; 2]>, portable: &str) -> &'static str {
        let both = [Dialect::Sqlite, Dialect::Postgres];
        &cache.get_or_init(|| both.map(|dialect| dialect.spell(portable)))[self as usize]
    }
}

/// A query text in portable SQL (see the module documentation), spelled for `$store`'s
/// database. Every text with a row lock, `instr` or `json_each` goes through this; a row lock
/// ends its statement.
macro_rules! sql {
    ($store:expr, $text:expr) => {{
        static SPELLINGS: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        $store.dialect.pick(&SPELLINGS, $text)
    }};
}
pub(crate) use sql;

/// A write transaction.
type Tx = Transaction<'static, Any>;

/// A statement with its parameters bound.
type Query = sqlx::query::Query<'static, Any, AnyArguments>;

/// How a lock between replicas is held.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockMode {
    /// Many holders at once, none while an exclusive holder has it.
    Shared,
    Exclusive,
}

/// The metadata stores on one SQL database.
pub struct SqlStore {
    /// Runs every write. On SQLite a single connection, so that this process's transactions
    /// never contend with each other.
    pub(super) writer: AnyPool,
    /// Runs reads outside transactions, concurrently with writes (the same pool as `writer`
    /// on PostgreSQL).
    pub(super) reader: AnyPool,
    pub(super) dialect: Dialect,
    /// The embedded backend's hot reads; every write that changes tags, manifests or
    /// repositories invalidates it.
    pub(super) cache: Option<ContentCache>,
    /// The embedded backend's reader of the access generation.
    pub(super) generations: Option<super::sqlite::GenerationReader>,
}

/// An advisory-lock key for a name: the first 32 bits of its SHA-256, the same on every
/// replica and every build.
pub(crate) fn lock_key(name: &str) -> i32 {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(name.as_bytes());
    i32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]])
}

impl SqlStore {
    /// Begins a write transaction.
    async fn begin(&self) -> Result<Tx> {
        if self.dialect == Dialect::Postgres {
            return Ok(self.writer.begin().await?);
        }
        // IMMEDIATE takes the write lock up front, so another process (the CLI) makes this
        // wait on the busy timeout instead of failing the transaction half-way.
        match self.writer.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                // A COMMIT that failed on a full disk is rolled back by SQLite itself, so the
                // driver's own ROLLBACK fails and its count of open transactions stays at one:
                // the writer connection would refuse every later transaction. Replace it.
                tracing::warn!("replacing the metadata writer connection after a failed commit");
                let stale = self.writer.acquire().await?;
                let _ = sqlx::Connection::close(stale.detach()).await;
                Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
            }
            result => Ok(result?),
        }
    }

    /// Takes the lock `(class, key)` (`class` names what is locked in four ASCII letters) until
    /// `tx` ends; nothing to take on SQLite, whose write transactions hold the whole database.
    async fn lock(&self, tx: &mut Tx, mode: LockMode, class: &[u8; 4], key: i32) -> Result<()> {
        if self.dialect == Dialect::Sqlite {
            return Ok(());
        }
        let statement = match mode {
            LockMode::Shared => "SELECT pg_advisory_xact_lock_shared($1, $2)",
            LockMode::Exclusive => "SELECT pg_advisory_xact_lock($1, $2)",
        };
        sqlx::query(statement)
            .bind(i32::from_be_bytes(*class))
            .bind(key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Takes the per-digest lock until `tx` ends: shared by pushes linking or referencing the
    /// blob, exclusive for a collector or the integrity check taking it out of service.
    async fn lock_digest(&self, tx: &mut Tx, mode: LockMode, digest: &oci::Digest) -> Result<()> {
        // The first 32 bits of the digest.
        let key = u32::from_str_radix(&digest.hex()[..8], 16).unwrap_or(0) as i32;
        self.lock(tx, mode, b"blob", key).await
    }

    /// Begins a write transaction holding `digest`'s lock exclusively, as a collector or the
    /// integrity check does to take a blob out of service; with the digest as text.
    async fn begin_exclusive(&self, digest: &oci::Digest) -> Result<(Tx, String)> {
        let mut tx = self.begin().await?;
        self.lock_digest(&mut tx, LockMode::Exclusive, digest)
            .await?;
        Ok((tx, digest.to_string()))
    }

    /// Runs a statement outside a transaction; how many rows it changed.
    async fn write(&self, query: Query) -> Result<u64> {
        Ok(query.execute(&self.writer).await?.rows_affected())
    }

    /// What a query reads outside a transaction, each row mapped by `row`.
    async fn read_all<T, C: FromIterator<T>>(
        &self,
        query: Query,
        row: impl FnMut(&AnyRow) -> Result<T>,
    ) -> Result<C> {
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter().map(row).collect()
    }

    /// The first row a query reads outside a transaction, mapped by `row`.
    async fn read_one<T>(
        &self,
        query: Query,
        row: impl FnOnce(&AnyRow) -> Result<T>,
    ) -> Result<Option<T>> {
        let found = query.fetch_optional(&self.reader).await?;
        found.as_ref().map(row).transpose()
    }

    /// Drops what the read cache holds for `repo` (every repository for `None`) once the
    /// returned guard goes, on every path out of the write it guards.
    fn invalidate_on_exit(&self, repo: Option<&str>) -> Option<Invalidation<'_>> {
        self.cache.as_ref().map(|c| c.invalidate_on_exit(repo))
    }
}

/// `Ok` when a statement changed exactly one row (`changed`), else `otherwise`.
fn changed_one(changed: u64, otherwise: MetadataError) -> Result<()> {
    (changed == 1).then_some(()).ok_or(otherwise)
}

/// A list of values bound as one parameter, which a query reads as `json_each($N)`.
fn json_list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    serde_json::Value::from_iter(items.into_iter().map(|i| i.to_string())).to_string()
}

/// A row's first column: text this store wrote from a `T`.
fn first<T: std::str::FromStr<Err: std::fmt::Display>>(r: &AnyRow) -> Result<T> {
    stored(r.get(0))
}

/// A `(digest, size)` row.
fn digest_and_size(r: &AnyRow) -> Result<(oci::Digest, u64)> {
    Ok((first(r)?, r.get::<i64, _>(1) as u64))
}

/// PostgreSQL text cannot hold NUL and refuses a parameter that has one; SQLite would only
/// find nothing. No stored value has one, so a value with NUL matches nothing on either.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// A pagination bound (`name > bound`) both databases accept: cut at the first NUL. Since no
/// stored name holds NUL, every name above the cut prefix is also above the original bound.
fn ordering_bound(s: &str) -> &str {
    s.split('\0').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn row_locks_are_dropped_on_sqlite_only() {
        let text = "SELECT id FROM manifests m WHERE digest = $1 ORDER BY id FOR UPDATE OF m";
        assert_eq!(
            Dialect::Sqlite.spell(text),
            "SELECT id FROM manifests m WHERE digest = $1 ORDER BY id"
        );
        assert_eq!(Dialect::Postgres.spell(text), text);
        assert_eq!(
            Dialect::Sqlite.spell("SELECT 1 FROM t WHERE a = $1 FOR SHARE"),
            "SELECT 1 FROM t WHERE a = $1"
        );
    }

    #[test]
    fn postgres_spells_instr_and_json_lists_its_way() {
        let text = "SELECT digest FROM blobs WHERE instr(name, $3) > 0
                    AND digest IN (SELECT value FROM json_each($1))
                    AND other IN (SELECT value FROM json_each($12))";
        assert_eq!(Dialect::Sqlite.spell(text), text);
        assert_eq!(
            Dialect::Postgres.spell(text),
            "SELECT digest FROM blobs WHERE strpos(name, $3) > 0
                    AND digest IN (SELECT value FROM json_array_elements_text(CAST($1 AS json)) AS value)
                    AND other IN (SELECT value FROM json_array_elements_text(CAST($12 AS json)) AS value)"
        );
    }
}
