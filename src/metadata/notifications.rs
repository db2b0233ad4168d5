//! Repository notifications (Quay's feature) and their outbox of deliveries.
//!
//! A notification names an event of one repository and where to send it; the deliveries it is
//! owed are rows written in the transaction of the tag change that caused them
//! ([`super::MetadataStore::put_manifest`], `delete_tag`, `delete_manifest`), so they survive a
//! crash and exist only for changes that committed. Workers on every replica take turns on them
//! through claims ([`NotificationStore::claim_deliveries`]).

use async_trait::async_trait;
use oci::RepoName;

use super::Result;

/// The events a notification may be for, as Quay names them.
pub const EVENTS: &[&str] = &["repo_push", "tag_deleted"];

/// A notification as stored.
#[derive(Debug, Clone)]
pub struct NotificationRecord {
    pub uuid: String,
    pub repository: RepoName,
    /// `repo_push` or `tag_deleted`.
    pub event: String,
    /// `webhook` or `slack`.
    pub method: String,
    pub title: String,
    /// The method's configuration (JSON object text), as the API was given it.
    pub config: String,
    /// The event's configuration (JSON object text).
    pub event_config: String,
    /// Deliveries given up on after their last retry.
    pub number_of_failures: i64,
    /// When it was created (milliseconds since the Unix epoch).
    pub created_at: i64,
    /// The outcome of its latest delivery attempt, if any.
    pub last_attempt: Option<AttemptOutcome>,
    /// When a delivery last succeeded (milliseconds since the Unix epoch).
    pub last_delivered_at: Option<i64>,
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// When it ended (milliseconds since the Unix epoch).
    pub at: i64,
    /// The HTTP status the target answered, if it answered.
    pub status: Option<u16>,
    /// Why it failed (no answer, a refused address, a status outside 2xx); `None` on success.
    pub error: Option<String>,
}

impl AttemptOutcome {
    /// Whether the target took the delivery.
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// A new notification.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub uuid: String,
    pub event: String,
    pub method: String,
    pub title: String,
    pub config: String,
    pub event_config: String,
}

/// A delivery a worker has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub notification: NotificationRecord,
    /// What happened (JSON object text: `tags`, and `test` for a test delivery).
    pub event_data: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the change that caused it committed (milliseconds since the Unix epoch).
    pub created_at: i64,
}

/// What becomes of a claimed delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// It was delivered: the row goes.
    Delivered,
    /// It failed and is tried again at this time (milliseconds since the Unix epoch).
    RetryAt(i64),
    /// It failed for the last time: the row goes and the notification's failure count grows.
    GiveUp,
}

/// The notifications and their deliveries.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Stores a notification on `repo`; `NotFound` when the repository does not exist.
    async fn create_notification(&self, repo: &RepoName, new: &NewNotification) -> Result<()>;

    /// The notifications of `repo`, oldest first.
    async fn notifications(&self, repo: &RepoName) -> Result<Vec<NotificationRecord>>;

    /// One notification of `repo`.
    async fn notification(&self, repo: &RepoName, uuid: &str)
        -> Result<Option<NotificationRecord>>;

    /// Deletes a notification of `repo` and the deliveries it still owes. Returns whether it
    /// existed.
    async fn delete_notification(&self, repo: &RepoName, uuid: &str) -> Result<bool>;

    /// Sets a notification's failure count back to 0. Returns whether it exists.
    async fn reset_notification_failures(&self, repo: &RepoName, uuid: &str) -> Result<bool>;

    /// Queues one delivery of a notification of `repo` with `event_data`, due now. Returns
    /// whether the notification exists.
    async fn queue_delivery(&self, repo: &RepoName, uuid: &str, event_data: &str) -> Result<bool>;

    /// Whether any delivery is due at `now` and unclaimed (a read, so idle workers never write).
    async fn deliveries_due(&self, now: i64) -> Result<bool>;

    /// Claims up to `limit` deliveries due at `now` whose claims have expired, for `claim` until
    /// `lease_until`, in one conditional statement: a row another worker claimed first is not
    /// taken, on SQLite or PostgreSQL.
    async fn claim_deliveries(
        &self,
        claim: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>>;

    /// Records an attempt at a claimed delivery and what becomes of it, if `claim` still holds
    /// it (returns false otherwise: the lease ran out and another worker took it).
    async fn finish_delivery(
        &self,
        id: i64,
        claim: &str,
        outcome: &AttemptOutcome,
        after: AfterAttempt,
    ) -> Result<bool>;
}
