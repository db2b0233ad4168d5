//! [`UsageLogStore`] on SQL: batched inserts, keyset pages and daily counts of usage logs.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::SqlStore;
use crate::metadata::usage_log::{KindCount, LogQuery, LogScope, UsageLogRecord, UsageLogStore};
use crate::metadata::Result;

/// Columns of a record, in [`record`]'s order.
const COLUMNS: &str = "kind, at, performer, namespace, repository, ip, metadata, occurrences";

/// Records deleted per statement by retention.
const EXPIRE_BATCH: i64 = 5_000;

/// Rows one insert statement takes: a batch is cut into statements of these sizes, largest
/// first, so only these few statements are ever prepared.
const INSERT_SIZES: [usize; 5] = [256, 64, 16, 4, 1];

/// The insert statement for the largest of [`INSERT_SIZES`] not above `remaining`, and its
/// row count.
fn insert_text(remaining: usize) -> (&'static str, usize) {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        INSERT_SIZES
            .iter()
            .map(|&rows| {
                let values: Vec<String> = (0..rows)
                    .map(|i| {
                        let n = i * 8;
                        format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            n + 1,
                            n + 2,
                            n + 3,
                            n + 4,
                            n + 5,
                            n + 6,
                            n + 7,
                            n + 8
                        )
                    })
                    .collect();
                format!(
                    "INSERT INTO usage_logs ({COLUMNS}) VALUES {}",
                    values.join(",")
                )
            })
            .collect()
    });
    let i = INSERT_SIZES
        .iter()
        .position(|&rows| rows <= remaining)
        .unwrap_or(INSERT_SIZES.len() - 1);
    (texts[i].as_str(), INSERT_SIZES[i])
}

/// The condition selecting `scope`'s records, on parameter `$1`, and its value.
fn scope_filter<'a>(scope: LogScope<'a>) -> (usize, &'a str) {
    match scope {
        LogScope::Repository(r) => (0, r),
        LogScope::Namespace(n) => (1, n),
        LogScope::Account(a) => (2, a),
        LogScope::All => (3, ""),
    }
}

/// A page query per scope (see [`scope_filter`]): the text is static so each is prepared once.
macro_rules! per_scope {
    ($head:literal, $tail:literal) => {
        [
            concat!($head, "repository = $1", $tail),
            concat!($head, "namespace = $1", $tail),
            concat!($head, "(namespace = $1 OR performer = $1)", $tail),
            concat!($head, "$1 = ''", $tail),
        ]
    };
}

const PAGES: [&str; 4] = per_scope!(
    "SELECT id, kind, at, performer, namespace, repository, ip, metadata, occurrences FROM usage_logs WHERE ",
    " AND at >= $2 AND at < $3 AND (at < $4 OR (at = $4 AND id < $5))
      AND ($6 = '' OR kind = $6) AND ($7 = '' OR performer = $7)
      ORDER BY at DESC, id DESC LIMIT $8"
);

const AGGREGATES: [&str; 4] = per_scope!(
    "SELECT kind, at / 86400000, CAST(sum(occurrences) AS BIGINT) FROM usage_logs WHERE ",
    " AND at >= $2 AND at < $3 GROUP BY kind, at / 86400000 ORDER BY at / 86400000, kind"
);

fn record(r: &AnyRow, from: usize) -> UsageLogRecord {
    UsageLogRecord {
        kind: r.get(from),
        at: r.get(from + 1),
        performer: r.get(from + 2),
        namespace: r.get(from + 3),
        repository: r.get(from + 4),
        ip: r.get(from + 5),
        metadata: r.get(from + 6),
        occurrences: r.get(from + 7),
    }
}

#[async_trait]
impl UsageLogStore for SqlStore {
    async fn insert_usage_logs(&self, records: Vec<UsageLogRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let mut rest = records.into_iter();
        while rest.len() > 0 {
            let (text, n) = insert_text(rest.len());
            let mut query = sqlx::query(text);
            for r in rest.by_ref().take(n) {
                query = query
                    .bind(r.kind)
                    .bind(r.at)
                    .bind(r.performer)
                    .bind(r.namespace)
                    .bind(r.repository)
                    .bind(r.ip)
                    .bind(r.metadata)
                    .bind(r.occurrences);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn usage_logs(&self, q: &LogQuery<'_>) -> Result<Vec<(i64, UsageLogRecord)>> {
        let (which, value) = scope_filter(q.scope);
        let (after_at, after_id) = q.after.unwrap_or((i64::MAX, i64::MAX));
        let query = sqlx::query(PAGES[which])
            .bind(value.to_string())
            .bind(q.start)
            .bind(q.end)
            .bind(after_at)
            .bind(after_id)
            .bind(q.kind.unwrap_or_default().to_string())
            .bind(q.performer.unwrap_or_default().to_string())
            .bind(i64::from(q.limit));
        self.read_all(query, |r| Ok((r.get::<i64, _>(0), record(r, 1))))
            .await
    }

    async fn aggregate_usage_logs(
        &self,
        scope: LogScope<'_>,
        start: i64,
        end: i64,
    ) -> Result<Vec<KindCount>> {
        let (which, value) = scope_filter(scope);
        let query = sqlx::query(AGGREGATES[which])
            .bind(value.to_string())
            .bind(start)
            .bind(end);
        self.read_all(query, |r| {
            Ok(KindCount {
                kind: r.get(0),
                day: r.get(1),
                count: r.get::<i64, _>(2) as u64,
            })
        })
        .await
    }

    async fn expire_usage_logs(&self, before: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let gone = self
                .write(
                    sqlx::query(
                        "DELETE FROM usage_logs WHERE id IN
                         (SELECT id FROM usage_logs WHERE at < $1 LIMIT $2)",
                    )
                    .bind(before)
                    .bind(EXPIRE_BATCH),
                )
                .await?;
            total += gone;
            if gone < EXPIRE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}
