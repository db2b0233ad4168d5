//! [`MirrorStore`] on SQL: mirror configurations and the sync claim.
//!
//! A claim takes the `mirror/<id>` lease and moves the configuration to `SYNCING` in one
//! transaction; on PostgreSQL the lease upsert's row lock serializes claimants and the
//! configuration's `UPDATE` repeats its condition on the committed row, on SQLite the single
//! writer serializes them.

use std::time::Duration;

use async_trait::async_trait;
use oci::RepoName;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{SqlStore, Tx};
use crate::metadata::mirror::{
    lease_name, next_start, MirrorRecord, MirrorSettings, MirrorStore, SyncOutcome, SyncStatus,
    MAX_SYNC_RETRIES,
};
use crate::metadata::{stored, MetadataError, Result};

/// The columns [`mirror_row`] reads, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "r.name, m.repository_id, m.is_enabled, m.external_reference, m.robot_id,
         m.registry_username, m.registry_password, m.registry_config, m.rule_value,
         m.sync_interval, m.sync_start_date, m.sync_expiration_date, m.sync_retries_remaining,
         m.sync_status, m.last_sync_at, a.name, m.last_sync_log"
    };
}

/// What makes a mirror due at `$N` (the time): enabled, in state `MIRROR`, started, retries
/// left, not cancelled, and not in a sync whose claim is still live.
macro_rules! due {
    ($now:literal) => {
        concat!(
            "m.is_enabled = 1 AND m.sync_retries_remaining > 0 AND m.sync_status <> 'CANCEL'
             AND m.sync_start_date <= ",
            $now,
            " AND (m.sync_status <> 'SYNCING' OR m.sync_expiration_date IS NULL
                  OR m.sync_expiration_date < ",
            $now,
            ") AND EXISTS (SELECT 1 FROM repositories rs
                 WHERE rs.id = m.repository_id AND rs.state = 'MIRROR')"
        )
    };
}

fn mirror_row(r: &AnyRow) -> Result<MirrorRecord> {
    let rules: String = r.get(8);
    let rule_value: Vec<String> = serde_json::from_str(&rules).map_err(|e| {
        MetadataError::Backend(format!("corrupt mirror rule {rules:?}: {e}").into())
    })?;
    let status: String = r.get(13);
    Ok(MirrorRecord {
        repository: stored(r.get(0))?,
        repository_id: r.get(1),
        settings: MirrorSettings {
            is_enabled: r.get::<i64, _>(2) != 0,
            external_reference: r.get(3),
            robot_id: r.get(4),
            registry_username: r.get(5),
            registry_password_sealed: r.get(6),
            registry_config: r.get(7),
            rule_value,
            sync_interval: r.get(9),
            sync_start_date: r.get(10),
        },
        sync_expiration_date: r.get(11),
        sync_retries_remaining: r.get(12),
        sync_status: SyncStatus::parse(&status).ok_or_else(|| {
            MetadataError::Backend(format!("corrupt mirror status {status:?}").into())
        })?,
        last_sync_at: r.get(14),
        robot_username: r.get(15),
        last_sync_log: r.get(16),
    })
}

const SELECT: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM repository_mirrors m JOIN repositories r ON r.id = m.repository_id
      LEFT JOIN accounts a ON a.id = m.robot_id WHERE r.name = $1"
);

async fn mirror_in(tx: &mut Tx, repo: &RepoName) -> Result<Option<MirrorRecord>> {
    let row = sqlx::query(SELECT)
        .bind(repo.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(mirror_row).transpose()
}

/// Takes or renews the lease `name` for `holder` until `until`, if no other holder's is live.
async fn take_lease(tx: &mut Tx, name: &str, holder: &str, until: i64, now: i64) -> Result<bool> {
    let taken = sqlx::query(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
    )
    .bind(name)
    .bind(holder)
    .bind(until)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// Whether `holder` holds the live lease `name`.
async fn holds_lease(tx: &mut Tx, name: &str, holder: &str, now: i64) -> Result<bool> {
    let row =
        sqlx::query("SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND expires_at >= $3")
            .bind(name)
            .bind(holder)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.is_some())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl MirrorStore for SqlStore {
    async fn mirror(&self, repo: &RepoName) -> Result<Option<MirrorRecord>> {
        self.read_one(sqlx::query(SELECT).bind(repo.as_str()), mirror_row)
            .await
    }

    async fn create_mirror(&self, repo: &RepoName, s: &MirrorSettings) -> Result<()> {
        let now = crate::metadata::now_millis();
        let mut tx = self.begin().await?;
        let id: Option<i64> = sqlx::query("SELECT id FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get(0));
        let Some(id) = id else {
            return Err(MetadataError::NotFound);
        };
        let inserted = sqlx::query(
            "INSERT INTO repository_mirrors (repository_id, is_enabled, external_reference,
                 robot_id, registry_username, registry_password, registry_config, rule_value,
                 sync_interval, sync_start_date, sync_expiration_date, sync_retries_remaining,
                 sync_status, last_sync_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, 'NEVER_RUN', NULL,
                 $12, $12)
             ON CONFLICT(repository_id) DO NOTHING",
        )
        .bind(id)
        .bind(i64::from(s.is_enabled))
        .bind(&s.external_reference)
        .bind(s.robot_id)
        .bind(&s.registry_username)
        .bind(&s.registry_password_sealed)
        .bind(&s.registry_config)
        .bind(serde_json::to_string(&s.rule_value).expect("strings serialize"))
        .bind(s.sync_interval)
        .bind(s.sync_start_date)
        .bind(MAX_SYNC_RETRIES)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(MetadataError::Conflict);
        }
        Ok(tx.commit().await?)
    }

    async fn update_mirror(&self, repo: &RepoName, s: &MirrorSettings) -> Result<bool> {
        let query = sqlx::query(
            "UPDATE repository_mirrors SET is_enabled = $2, external_reference = $3,
                 robot_id = $4, registry_username = $5, registry_password = $6,
                 registry_config = $7, rule_value = $8, sync_interval = $9,
                 sync_start_date = $10, updated_at = $11
             WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo.as_str())
        .bind(i64::from(s.is_enabled))
        .bind(&s.external_reference)
        .bind(s.robot_id)
        .bind(&s.registry_username)
        .bind(&s.registry_password_sealed)
        .bind(&s.registry_config)
        .bind(serde_json::to_string(&s.rule_value).expect("strings serialize"))
        .bind(s.sync_interval)
        .bind(s.sync_start_date)
        .bind(crate::metadata::now_millis());
        Ok(self.write(query).await? > 0)
    }

    async fn request_mirror_sync(&self, repo: &RepoName, now: i64) -> Result<bool> {
        let query = sqlx::query(
            "UPDATE repository_mirrors SET sync_status = 'SYNC_NOW', sync_start_date = $2,
                 sync_expiration_date = NULL,
                 sync_retries_remaining = CASE WHEN sync_retries_remaining < 1 THEN 1
                                               ELSE sync_retries_remaining END
             WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)
               AND (sync_status <> 'SYNCING' OR sync_expiration_date IS NULL
                    OR sync_expiration_date < $2)",
        )
        .bind(repo.as_str())
        .bind(now);
        Ok(self.write(query).await? > 0)
    }

    async fn cancel_mirror_sync(&self, repo: &RepoName) -> Result<bool> {
        let query = sqlx::query(
            "UPDATE repository_mirrors SET sync_status = 'CANCEL', sync_expiration_date = NULL,
                 sync_retries_remaining = 0
             WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)
               AND sync_status IN ('SYNCING', 'SYNC_NOW')",
        )
        .bind(repo.as_str());
        Ok(self.write(query).await? > 0)
    }

    async fn due_mirrors(&self, now: i64, limit: u32) -> Result<Vec<RepoName>> {
        let query = sqlx::query(concat!(
            "SELECT r.name FROM repository_mirrors m JOIN repositories r ON r.id = m.repository_id
             WHERE ",
            due!("$1"),
            " ORDER BY m.sync_start_date, r.name LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit));
        self.read_all(query, |r| stored(r.get(0))).await
    }

    async fn claim_mirror_sync(
        &self,
        repo: &RepoName,
        holder: &str,
        ttl: Duration,
        now: i64,
    ) -> Result<Option<MirrorRecord>> {
        let until = now.saturating_add(millis(ttl));
        let mut tx = self.begin().await?;
        let Some(mirror) = mirror_in(&mut tx, repo).await? else {
            return Ok(None);
        };
        if !take_lease(
            &mut tx,
            &lease_name(mirror.repository_id),
            holder,
            until,
            now,
        )
        .await?
        {
            return Ok(None);
        }
        let claimed = sqlx::query(concat!(
            "UPDATE repository_mirrors SET sync_status = 'SYNCING', sync_expiration_date = $2
             WHERE repository_id = $3 AND repository_id IN (
                 SELECT m.repository_id FROM repository_mirrors m WHERE ",
            due!("$1"),
            ")"
        ))
        .bind(now)
        .bind(until)
        .bind(mirror.repository_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            // Not due: the lease taken above goes with the rollback.
            return Ok(None);
        }
        let mirror = mirror_in(&mut tx, repo).await?;
        tx.commit().await?;
        Ok(mirror)
    }

    async fn renew_mirror_claim(
        &self,
        repo: &RepoName,
        holder: &str,
        ttl: Duration,
        now: i64,
    ) -> Result<bool> {
        let until = now.saturating_add(millis(ttl));
        let mut tx = self.begin().await?;
        let Some(mirror) = mirror_in(&mut tx, repo).await? else {
            return Ok(false);
        };
        let lease = lease_name(mirror.repository_id);
        if mirror.sync_status != SyncStatus::Syncing
            || !holds_lease(&mut tx, &lease, holder, now).await?
        {
            return Ok(false);
        }
        take_lease(&mut tx, &lease, holder, until, now).await?;
        sqlx::query(
            "UPDATE repository_mirrors SET sync_expiration_date = $2
             WHERE repository_id = $1 AND sync_status = 'SYNCING'",
        )
        .bind(mirror.repository_id)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_mirror_sync_log(
        &self,
        repo: &RepoName,
        holder: &str,
        log: &str,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let Some(mirror) = mirror_in(&mut tx, repo).await? else {
            return Ok(false);
        };
        if !holds_lease(&mut tx, &lease_name(mirror.repository_id), holder, now).await? {
            return Ok(false);
        }
        sqlx::query("UPDATE repository_mirrors SET last_sync_log = $2 WHERE repository_id = $1")
            .bind(mirror.repository_id)
            .bind(log)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_mirror_sync(
        &self,
        repo: &RepoName,
        holder: &str,
        outcome: SyncOutcome,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let Some(mirror) = mirror_in(&mut tx, repo).await? else {
            return Ok(false);
        };
        let lease = lease_name(mirror.repository_id);
        if !holds_lease(&mut tx, &lease, holder, now).await? {
            return Ok(false);
        }
        let retries = match outcome {
            SyncOutcome::Success => 0,
            SyncOutcome::Failure => (mirror.sync_retries_remaining - 1).max(0),
        };
        let (retries, start) = if outcome == SyncOutcome::Success || retries < 1 {
            let start = next_start(
                mirror.settings.sync_start_date,
                mirror.settings.sync_interval,
                now,
            );
            (MAX_SYNC_RETRIES, start)
        } else {
            (retries, mirror.settings.sync_start_date)
        };
        let status = match (mirror.sync_status, outcome) {
            (SyncStatus::Cancel, _) => SyncStatus::Cancel,
            (_, SyncOutcome::Success) => SyncStatus::SyncSuccess,
            (_, SyncOutcome::Failure) => SyncStatus::SyncFailed,
        };
        // A cancelled sync keeps no retries, so nothing claims it before the next "sync now".
        let retries = if status == SyncStatus::Cancel {
            0
        } else {
            retries
        };
        sqlx::query(
            "UPDATE repository_mirrors SET sync_status = $2, sync_start_date = $3,
                 sync_expiration_date = NULL, sync_retries_remaining = $4, last_sync_at = $5
             WHERE repository_id = $1",
        )
        .bind(mirror.repository_id)
        .bind(status.as_str())
        .bind(start)
        .bind(retries)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(&lease)
            .bind(holder)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
