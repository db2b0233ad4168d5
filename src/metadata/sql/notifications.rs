//! [`NotificationStore`] on SQL: notifications and the outbox of their deliveries.
//!
//! Deliveries are queued by the statements that change tags (`sql/registry.rs`, through
//! [`queue_event`]) inside their transactions. A claim is one `UPDATE` whose condition is
//! repeated on the row itself (`claim_expires_at <= now`), so on PostgreSQL a worker that waited
//! for another's row lock re-checks the row as committed and skips it; on SQLite the single
//! writer serializes claims.

use async_trait::async_trait;
use oci::RepoName;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{has_nul, SqlStore, Tx};
use crate::metadata::notifications::{
    AfterAttempt, AttemptOutcome, ClaimedDelivery, NewNotification, NotificationRecord,
    NotificationStore,
};
use crate::metadata::{now_millis, stored, MetadataError, Result};

/// The columns [`notification_row`] reads, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "n.uuid, r.name, n.event, n.method, n.title, n.config, n.event_config,
         n.number_of_failures, n.created_at, n.last_attempt_at, n.last_status, n.last_error,
         n.last_delivered_at"
    };
}

fn notification_row(r: &AnyRow, at: usize) -> Result<NotificationRecord> {
    let last_attempt = r.get::<Option<i64>, _>(at + 9).map(|when| AttemptOutcome {
        at: when,
        status: r
            .get::<Option<i64>, _>(at + 10)
            .and_then(|s| u16::try_from(s).ok()),
        error: r.get(at + 11),
    });
    Ok(NotificationRecord {
        uuid: r.get(at),
        repository: stored(r.get(at + 1))?,
        event: r.get(at + 2),
        method: r.get(at + 3),
        title: r.get(at + 4),
        config: r.get(at + 5),
        event_config: r.get(at + 6),
        number_of_failures: r.get(at + 7),
        created_at: r.get(at + 8),
        last_attempt,
        last_delivered_at: r.get(at + 12),
    })
}

/// Queues, inside `tx`, one delivery of `event` with `event_data` for every notification of the
/// repository `repo_id` on that event.
pub(super) async fn queue_event(
    tx: &mut Tx,
    repo_id: i64,
    event: &str,
    event_data: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notification_deliveries (notification_uuid, event_data, created_at, due_at)
         SELECT uuid, $3, $4, $4 FROM repository_notifications
         WHERE repository_id = $1 AND event = $2",
    )
    .bind(repo_id)
    .bind(event)
    .bind(event_data)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The event data of a tag change: the tags, as JSON text.
pub(super) fn tags_data<'a>(tags: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::json!({ "tags": tags.into_iter().collect::<Vec<_>>() }).to_string()
}

#[async_trait]
impl NotificationStore for SqlStore {
    async fn create_notification(&self, repo: &RepoName, new: &NewNotification) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO repository_notifications (uuid, repository_id, event, method, title,
                 config, event_config, created_at)
             SELECT $2, id, $3, $4, $5, $6, $7, $8 FROM repositories WHERE name = $1",
        )
        .bind(repo.as_str())
        .bind(&new.uuid)
        .bind(&new.event)
        .bind(&new.method)
        .bind(&new.title)
        .bind(&new.config)
        .bind(&new.event_config)
        .bind(now_millis());
        match self.write(query).await? {
            0 => Err(MetadataError::NotFound),
            _ => Ok(()),
        }
    }

    async fn notifications(&self, repo: &RepoName) -> Result<Vec<NotificationRecord>> {
        let query = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM repository_notifications n
             JOIN repositories r ON r.id = n.repository_id
             WHERE r.name = $1 ORDER BY n.created_at, n.uuid"
        ))
        .bind(repo.as_str());
        self.read_all(query, |r| notification_row(r, 0)).await
    }

    async fn notification(
        &self,
        repo: &RepoName,
        uuid: &str,
    ) -> Result<Option<NotificationRecord>> {
        if has_nul(uuid) {
            return Ok(None);
        }
        let query = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM repository_notifications n
             JOIN repositories r ON r.id = n.repository_id
             WHERE r.name = $1 AND n.uuid = $2"
        ))
        .bind(repo.as_str())
        .bind(uuid);
        self.read_one(query, |r| notification_row(r, 0)).await
    }

    async fn delete_notification(&self, repo: &RepoName, uuid: &str) -> Result<bool> {
        if has_nul(uuid) {
            return Ok(false);
        }
        let query = sqlx::query(
            "DELETE FROM repository_notifications WHERE uuid = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo.as_str())
        .bind(uuid);
        Ok(self.write(query).await? > 0)
    }

    async fn reset_notification_failures(&self, repo: &RepoName, uuid: &str) -> Result<bool> {
        if has_nul(uuid) {
            return Ok(false);
        }
        let query = sqlx::query(
            "UPDATE repository_notifications SET number_of_failures = 0 WHERE uuid = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo.as_str())
        .bind(uuid);
        Ok(self.write(query).await? > 0)
    }

    async fn queue_delivery(&self, repo: &RepoName, uuid: &str, event_data: &str) -> Result<bool> {
        if has_nul(uuid) {
            return Ok(false);
        }
        let now = now_millis();
        let query = sqlx::query(
            "INSERT INTO notification_deliveries (notification_uuid, event_data, created_at, due_at)
             SELECT n.uuid, $3, $4, $4 FROM repository_notifications n
             JOIN repositories r ON r.id = n.repository_id
             WHERE r.name = $1 AND n.uuid = $2",
        )
        .bind(repo.as_str())
        .bind(uuid)
        .bind(event_data)
        .bind(now);
        Ok(self.write(query).await? > 0)
    }

    async fn deliveries_due(&self, now: i64) -> Result<bool> {
        let query = sqlx::query(
            "SELECT 1 FROM notification_deliveries
             WHERE due_at <= $1 AND claim_expires_at <= $1 LIMIT 1",
        )
        .bind(now);
        Ok(self.read_one(query, |_| Ok(())).await?.is_some())
    }

    async fn claim_deliveries(
        &self,
        claim: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        let query = sqlx::query(
            "UPDATE notification_deliveries SET claim = $1, claim_expires_at = $2
             WHERE due_at <= $3 AND claim_expires_at <= $3 AND id IN (
                 SELECT id FROM notification_deliveries
                 WHERE due_at <= $3 AND claim_expires_at <= $3
                 ORDER BY due_at, id LIMIT $4)",
        )
        .bind(claim)
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit));
        if self.write(query).await? == 0 {
            return Ok(Vec::new());
        }
        let query = sqlx::query(concat!(
            "SELECT d.id, d.event_data, d.attempts, d.created_at, ",
            columns!(),
            "
             FROM notification_deliveries d
             JOIN repository_notifications n ON n.uuid = d.notification_uuid
             JOIN repositories r ON r.id = n.repository_id
             WHERE d.claim = $1 AND d.claim_expires_at = $2 ORDER BY d.due_at, d.id"
        ))
        .bind(claim)
        .bind(lease_until);
        // Read through the writer: on SQLite the reader pool might not see the claim yet.
        let rows = query.fetch_all(&self.writer).await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedDelivery {
                    id: r.get(0),
                    event_data: r.get(1),
                    attempts: u32::try_from(r.get::<i64, _>(2)).unwrap_or(u32::MAX),
                    created_at: r.get(3),
                    notification: notification_row(r, 4)?,
                })
            })
            .collect()
    }

    async fn finish_delivery(
        &self,
        id: i64,
        claim: &str,
        outcome: &AttemptOutcome,
        after: AfterAttempt,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = match after {
            AfterAttempt::Delivered | AfterAttempt::GiveUp => {
                sqlx::query(
                    "DELETE FROM notification_deliveries WHERE id = $1 AND claim = $2
                     RETURNING notification_uuid",
                )
                .bind(id)
                .bind(claim)
                .fetch_optional(&mut *tx)
                .await?
            }
            AfterAttempt::RetryAt(due) => {
                sqlx::query(
                    "UPDATE notification_deliveries
                     SET attempts = attempts + 1, due_at = $3, claim = '', claim_expires_at = 0
                     WHERE id = $1 AND claim = $2 RETURNING notification_uuid",
                )
                .bind(id)
                .bind(claim)
                .bind(due)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let Some(row) = changed else {
            return Ok(false);
        };
        let uuid: String = row.get(0);
        let delivered_at = outcome.delivered().then_some(outcome.at);
        let failed = i64::from(after == AfterAttempt::GiveUp);
        sqlx::query(
            "UPDATE repository_notifications
             SET last_attempt_at = $2, last_status = $3, last_error = $4,
                 last_delivered_at = coalesce($5, last_delivered_at),
                 number_of_failures = number_of_failures + $6
             WHERE uuid = $1",
        )
        .bind(&uuid)
        .bind(outcome.at)
        .bind(outcome.status.map(i64::from))
        .bind(&outcome.error)
        .bind(delivered_at)
        .bind(failed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
