//! Repository mirroring's records (issue 20): a repository's mirror configuration, its sync
//! status as Quay names it, and the steps the sync worker takes (claim, renew, finish), each one
//! statement or one transaction so replicas never sync one repository at once.
//!
//! A sync is claimed through the `leases` table (a lease named `mirror/<repository id>`, as the
//! collector's `gc` lease), together with the configuration's move to `SYNCING` in the same
//! transaction; the lease's expiry is the claim's, so a replica that died mid-sync leaves a
//! claim another takes over after the time to live.

use std::time::Duration;

use async_trait::async_trait;
use oci::RepoName;

use super::Result;

/// How many failed syncs in a row are retried before a sync waits for its next interval (Quay's
/// `MAX_SYNC_RETRIES`).
pub const MAX_SYNC_RETRIES: i64 = 3;

/// Quay's `sync_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    NeverRun,
    SyncNow,
    Syncing,
    SyncSuccess,
    SyncFailed,
    Cancel,
}

impl SyncStatus {
    /// Quay's name, as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::NeverRun => "NEVER_RUN",
            SyncStatus::SyncNow => "SYNC_NOW",
            SyncStatus::Syncing => "SYNCING",
            SyncStatus::SyncSuccess => "SYNC_SUCCESS",
            SyncStatus::SyncFailed => "SYNC_FAILED",
            SyncStatus::Cancel => "CANCEL",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<SyncStatus> {
        Some(match name {
            "NEVER_RUN" => SyncStatus::NeverRun,
            "SYNC_NOW" => SyncStatus::SyncNow,
            "SYNCING" => SyncStatus::Syncing,
            "SYNC_SUCCESS" => SyncStatus::SyncSuccess,
            "SYNC_FAILED" => SyncStatus::SyncFailed,
            "CANCEL" => SyncStatus::Cancel,
            _ => return None,
        })
    }
}

/// What an administrator configures (everything but the status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSettings {
    pub is_enabled: bool,
    /// `host[:port]/path[:tag]` of the external repository.
    pub external_reference: String,
    /// The robot account (of the repository's namespace) recorded as the performer of syncs.
    pub robot_id: Option<i64>,
    pub registry_username: Option<String>,
    /// The external registry's password, sealed by [`crate::sealed::Sealer`]; never
    /// answered by the API.
    pub registry_password_sealed: Option<String>,
    /// `external_registry_config` as JSON text (`verify_tls`, `unsigned_images`, `proxy`).
    pub registry_config: String,
    /// The `tag_glob_csv` rule's globs.
    pub rule_value: Vec<String>,
    /// Seconds between syncs.
    pub sync_interval: i64,
    /// When the next sync may start (milliseconds since the epoch).
    pub sync_start_date: i64,
}

/// A repository's mirror configuration and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRecord {
    pub repository: RepoName,
    pub repository_id: i64,
    pub settings: MirrorSettings,
    /// The robot's account name (`None` once the robot was deleted).
    pub robot_username: Option<String>,
    /// While `SYNCING`: when the claim runs out unless renewed (milliseconds).
    pub sync_expiration_date: Option<i64>,
    pub sync_retries_remaining: i64,
    pub sync_status: SyncStatus,
    /// When the last sync finished (milliseconds), whatever its outcome.
    pub last_sync_at: Option<i64>,
    /// The last sync's log as JSON text (see `crate::mirror::sync::SyncLog`), once one ran.
    pub last_sync_log: Option<String>,
}

/// How a claimed sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    Success,
    Failure,
}

/// Mirror configurations and the sync worker's steps, on SQL (`metadata/sql/mirror.rs`).
#[async_trait]
pub trait MirrorStore: Send + Sync {
    /// The mirror configuration of `repo`, if it has one.
    async fn mirror(&self, repo: &RepoName) -> Result<Option<MirrorRecord>>;

    /// Creates `repo`'s mirror configuration with status `NEVER_RUN`; `Conflict` if it has one,
    /// `NotFound` if the repository does not exist.
    async fn create_mirror(&self, repo: &RepoName, settings: &MirrorSettings) -> Result<()>;

    /// Replaces `repo`'s mirror settings (the status stays); false if it has none.
    async fn update_mirror(&self, repo: &RepoName, settings: &MirrorSettings) -> Result<bool>;

    /// Quay's "sync now": status `SYNC_NOW`, next start `now`, at least one retry; refused
    /// (false) while a sync holds a live claim, or without a configuration.
    async fn request_mirror_sync(&self, repo: &RepoName, now: i64) -> Result<bool>;

    /// Quay's "sync cancel": a `SYNCING` or `SYNC_NOW` mirror becomes `CANCEL` with no
    /// retries left (so nothing claims it until the next "sync now"); false otherwise. A worker
    /// sees it when it renews its claim.
    async fn cancel_mirror_sync(&self, repo: &RepoName) -> Result<bool>;

    /// Mirrors due for a sync at `now` (enabled, the repository in state `MIRROR`, start date
    /// passed, retries left, and not held by a live claim), oldest start first.
    async fn due_mirrors(&self, now: i64, limit: u32) -> Result<Vec<RepoName>>;

    /// Claims `repo`'s sync for `holder` for `ttl`: takes the lease and moves the status to
    /// `SYNCING` in one transaction, if the mirror is due (as [`MirrorStore::due_mirrors`]
    /// says) and no other holder's lease is live. `None` when not claimed.
    async fn claim_mirror_sync(
        &self,
        repo: &RepoName,
        holder: &str,
        ttl: Duration,
        now: i64,
    ) -> Result<Option<MirrorRecord>>;

    /// Extends `holder`'s claim by `ttl`; false when it lost the claim or the sync was
    /// cancelled (the worker then stops).
    async fn renew_mirror_claim(
        &self,
        repo: &RepoName,
        holder: &str,
        ttl: Duration,
        now: i64,
    ) -> Result<bool>;

    /// Stores the log of `holder`'s sync of `repo` (JSON text); false when `holder` no longer
    /// holds the claim (its log is then not the latest).
    async fn set_mirror_sync_log(
        &self,
        repo: &RepoName,
        holder: &str,
        log: &str,
        now: i64,
    ) -> Result<bool>;

    /// Ends `holder`'s claim with `outcome`, as Quay releases a mirror: a success, or a failure
    /// with no retry left, resets the retries and moves the start date to the next interval
    /// boundary after `now`; a failure with retries left keeps the start date, so the sync is
    /// tried again. A cancelled sync stays `CANCEL`. False when `holder` no longer holds it.
    async fn finish_mirror_sync(
        &self,
        repo: &RepoName,
        holder: &str,
        outcome: SyncOutcome,
        now: i64,
    ) -> Result<bool>;
}

/// The lease name of `repository_id`'s sync.
pub fn lease_name(repository_id: i64) -> String {
    format!("mirror/{repository_id}")
}

/// The first interval boundary after `now` counted from `start` (Quay's next start date);
/// `now` itself for a zero interval.
pub fn next_start(start: i64, interval_secs: i64, now: i64) -> i64 {
    let interval = interval_secs.saturating_mul(1000);
    if interval <= 0 {
        return now;
    }
    if start > now {
        return start;
    }
    let elapsed = now - start;
    now + (interval - elapsed % interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_start_is_the_next_boundary() {
        assert_eq!(next_start(0, 10, 25_000), 30_000);
        assert_eq!(next_start(0, 10, 30_000), 40_000);
        assert_eq!(next_start(50_000, 10, 25_000), 50_000);
        assert_eq!(next_start(0, 0, 25_000), 25_000);
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            SyncStatus::NeverRun,
            SyncStatus::SyncNow,
            SyncStatus::Syncing,
            SyncStatus::SyncSuccess,
            SyncStatus::SyncFailed,
            SyncStatus::Cancel,
        ] {
            assert_eq!(SyncStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(SyncStatus::parse("syncing"), None);
    }
}
