//! What the usage logs (Quay's audit trail) ask of the metadata database: storing recorded
//! actions in batches, reading them newest first a page at a time, counting them per kind and
//! day, and forgetting those older than the retention.
//!
//! Records name accounts, namespaces and repositories by text, so they outlive what they name.
//! Pages are cut by `(at, id)`, which orders every record once, so paging is stable while
//! records are added.

use async_trait::async_trait;

use super::Result;

/// One recorded action, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLogRecord {
    /// Quay's kind name (`push_repo`, `pull_repo`, `create_tag`, ...).
    pub kind: String,
    /// When it happened (milliseconds since the Unix epoch).
    pub at: i64,
    /// The account (user or robot) that acted; `None` for an anonymous caller.
    pub performer: Option<String>,
    /// The namespace acted in, if any.
    pub namespace: Option<String>,
    /// The full repository name (`namespace/name`) acted on, if any.
    pub repository: Option<String>,
    /// The client's address, if known.
    pub ip: Option<String>,
    /// Quay's `metadata` details, as JSON object text.
    pub metadata: String,
    /// How many identical actions this record stands for: pulls repeated within one batch
    /// are stored once (see `usage_log::write_batches`); 1 for everything else.
    pub occurrences: i64,
}

/// Which records a listing reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogScope<'a> {
    /// Those on one repository (its full name).
    Repository(&'a str),
    /// Those in one namespace.
    Namespace(&'a str),
    /// Those in an account's own namespace or performed by it.
    Account(&'a str),
    /// Every record.
    All,
}

/// A page request: records of `scope` with `start <= at < end`, newest first, after the
/// position `after` (the `(at, id)` of the last record of the previous page).
#[derive(Debug, Clone, Copy)]
pub struct LogQuery<'a> {
    pub scope: LogScope<'a>,
    pub start: i64,
    pub end: i64,
    pub after: Option<(i64, i64)>,
    /// Only records of this kind.
    pub kind: Option<&'a str>,
    /// Only records by this performer.
    pub performer: Option<&'a str>,
    pub limit: u32,
}

/// How many records of one kind a day (UTC) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindCount {
    pub kind: String,
    /// Days since the Unix epoch.
    pub day: i64,
    pub count: u64,
}

/// The usage logs' storage.
#[async_trait]
pub trait UsageLogStore: Send + Sync + 'static {
    /// Stores `records` in one transaction (all or none).
    async fn insert_usage_logs(&self, records: Vec<UsageLogRecord>) -> Result<()>;

    /// One page of records (see [`LogQuery`]), each with its id, newest first.
    async fn usage_logs(&self, query: &LogQuery<'_>) -> Result<Vec<(i64, UsageLogRecord)>>;

    /// Counts of the records of `scope` with `start <= at < end`, per kind and day, by day
    /// then kind.
    async fn aggregate_usage_logs(
        &self,
        scope: LogScope<'_>,
        start: i64,
        end: i64,
    ) -> Result<Vec<KindCount>>;

    /// Deletes the records older than `before` (milliseconds since the epoch), a bounded
    /// number per statement so other writes go on between them. Returns how many went.
    async fn expire_usage_logs(&self, before: i64) -> Result<u64>;
}
