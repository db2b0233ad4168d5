//! Usage logs, Quay's audit trail: who pushed, pulled, tagged, deleted, changed a permission
//! or a robot, created a token or failed to log in, from where and when.
//!
//! Recording never waits for the database: [`UsageLog::record`] puts the record on a bounded
//! in-memory queue, and one background writer stores what the queue holds in batches (one
//! transaction of multi-row inserts per batch, at least once a [`FLUSH_INTERVAL`] or every
//! [`BATCH`] records).
//! When the queue is full the record is dropped and counted, never blocking the request; a
//! graceful shutdown stores what is queued ([`UsageLog::flush`]). Records live in the metadata
//! database, so they survive restarts and every replica reads all of them.
//! Pulls are the hot path: with `ACTION_LOG_AUDIT_PULLS: false` they are not recorded at all.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oci::{Digest, RepoName};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Identity;
use crate::metadata::usage_log::{UsageLogRecord, UsageLogStore};

/// Records a batch holds at most (one transaction: a commit, so one disk sync, per batch).
pub const BATCH: usize = 4096;

/// Longest a record waits in the queue before it is stored.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How often the writer takes what is queued while a batch is open. Waking it for every record
/// instead (a cross-thread wake per pull) cost pulls more than storing them did.
pub const TICK: Duration = Duration::from_millis(50);

/// Records the queue holds at most; more are dropped and counted.
pub const QUEUE: usize = 16_384;

/// How often retention runs.
pub const EXPIRE_INTERVAL: Duration = Duration::from_secs(3600);

/// The usage-log keys of the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLogSettings {
    /// `ACTION_LOG_AUDIT_PULLS` (berth's key): pulls (`pull_repo`) are recorded. On by
    /// default; off saves the queue and the database the busiest kind of record.
    pub pulls: bool,
    /// `ACTION_LOG_AUDIT_LOGIN_FAILURES` (Quay's key, on by default in berth): failed logins
    /// (`login_failure`) are recorded.
    pub login_failures: bool,
    /// `ACTION_LOG_ROTATION_THRESHOLD` (Quay's key and format, e.g. `90d`): records older than
    /// this are deleted by the periodic worker (default 90 days).
    pub retention: Duration,
}

impl Default for UsageLogSettings {
    fn default() -> Self {
        UsageLogSettings {
            pulls: true,
            login_failures: true,
            retention: Duration::from_secs(90 * 86_400),
        }
    }
}

/// Who performed an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Performer {
    Anonymous,
    /// A user or robot account, by name (a robot's is `namespace+short`).
    Account(String),
}

impl Performer {
    /// The performer behind an identity, if any.
    pub fn of(identity: Option<&Identity>) -> Performer {
        match identity {
            Some(i) => Performer::Account(i.name.clone()),
            None => Performer::Anonymous,
        }
    }
}

/// One action about to be recorded.
#[derive(Debug, Clone)]
pub struct Event {
    kind: &'static str,
    at: i64,
    performer: Performer,
    ip: Option<IpAddr>,
    namespace: Option<String>,
    repository: Option<String>,
    metadata: Map<String, Value>,
    occurrences: i64,
}

impl Event {
    /// An action of Quay's kind `kind`, happening now, by `performer` from `ip`.
    pub fn new(kind: &'static str, performer: Performer, ip: Option<IpAddr>) -> Event {
        Event {
            kind,
            at: crate::metadata::now_millis(),
            performer,
            ip,
            namespace: None,
            repository: None,
            metadata: Map::new(),
            occurrences: 1,
        }
    }

    /// On repository `repo` (and its namespace), with Quay's `namespace` and `repo` details.
    pub fn repository(mut self, repo: &RepoName) -> Event {
        let name = repo.as_str();
        let (ns, short) = name.split_once('/').unwrap_or((name, ""));
        self.metadata.insert("namespace".into(), ns.into());
        self.metadata.insert("repo".into(), short.into());
        self.namespace = Some(ns.to_string());
        self.repository = Some(name.to_string());
        self
    }

    /// In namespace `ns`.
    pub fn namespace(mut self, ns: &str) -> Event {
        self.namespace = Some(ns.to_string());
        self
    }

    /// With one of Quay's `metadata` details.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.metadata.insert(key.to_string(), value.into());
        self
    }

    /// When it happened (milliseconds since the Unix epoch); for tests and imports.
    pub fn at(mut self, at: i64) -> Event {
        self.at = at;
        self
    }

    fn into_record(self) -> UsageLogRecord {
        UsageLogRecord {
            kind: self.kind.to_string(),
            at: self.at,
            performer: match self.performer {
                Performer::Anonymous => None,
                Performer::Account(name) => Some(name),
            },
            namespace: self.namespace,
            repository: self.repository,
            ip: self.ip.map(|ip| ip.to_string()),
            metadata: Value::Object(self.metadata).to_string(),
            occurrences: self.occurrences,
        }
    }
}

/// Shards of the pull tally; a pull locks one, chosen by its hash.
const TALLY_SHARDS: usize = 16;

/// Distinct pulls a shard tallies at most between two drains; others are queued one by one.
const TALLY_LIMIT: usize = 1024;

/// A pull as the tally tells pulls apart.
struct PullKey {
    performer: Option<String>,
    ip: Option<IpAddr>,
    repository: RepoName,
    tag: Option<String>,
    digest: Digest,
}

impl PullKey {
    fn is(&self, pull: &Pull<'_>) -> bool {
        self.performer.as_deref() == pull.performer
            && self.ip == pull.ip
            && &self.repository == pull.repository
            && self.tag.as_deref() == pull.tag
            && &self.digest == pull.digest
    }
}

/// One manifest GET, as the handler knows it.
pub struct Pull<'a> {
    /// The account pulling; `None` for an anonymous caller.
    pub performer: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub repository: &'a RepoName,
    /// The tag pulled, when the pull named one.
    pub tag: Option<&'a str>,
    /// The manifest served.
    pub digest: &'a Digest,
}

impl Pull<'_> {
    fn hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            self.performer,
            self.ip,
            self.repository.as_str(),
            self.tag,
            self.digest,
        )
            .hash(&mut h);
        h.finish()
    }

    fn event(&self, at: i64) -> Event {
        let performer = match self.performer {
            Some(name) => Performer::Account(name.to_string()),
            None => Performer::Anonymous,
        };
        let mut event = Event::new("pull_repo", performer, self.ip)
            .at(at)
            .repository(self.repository);
        if let Some(tag) = self.tag {
            event = event.detail("tag", tag);
        }
        event.detail("manifest_digest", self.digest.to_string())
    }
}

/// Repeats of pulls already queued, counted in place: a client or a fleet pulling the same tag
/// over and over would otherwise build and queue a record per request, which cost manifest
/// GETs a sixth of their rate on a 2-core machine. The first pull of a kind queues its record
/// as any action does; repeats until the writer's next drain only add to a counter, and the
/// drain turns them into one record carrying their count, which the writer's batch merges
/// with the first.
struct PullTally {
    shards: [std::sync::Mutex<std::collections::HashMap<u64, Tallied>>; TALLY_SHARDS],
}

struct Tallied {
    key: PullKey,
    first_at: i64,
    repeats: i64,
}

impl PullTally {
    fn new() -> PullTally {
        PullTally {
            shards: std::array::from_fn(|_| Default::default()),
        }
    }

    /// Counts `pull` if one like it was queued since the last drain; otherwise starts counting
    /// its kind and answers false, and the caller queues it.
    fn count(&self, pull: &Pull<'_>, hash: u64, at: i64) -> bool {
        let shard = &self.shards[(hash % TALLY_SHARDS as u64) as usize];
        let mut tally = shard.lock().expect("pull tally poisoned");
        match tally.get_mut(&hash) {
            Some(t) if t.key.is(pull) => {
                t.repeats += 1;
                true
            }
            // Another pull with the same hash: this one goes on its own.
            Some(_) => false,
            None => {
                if tally.len() < TALLY_LIMIT {
                    let key = PullKey {
                        performer: pull.performer.map(str::to_string),
                        ip: pull.ip,
                        repository: pull.repository.clone(),
                        tag: pull.tag.map(str::to_string),
                        digest: pull.digest.clone(),
                    };
                    tally.insert(
                        hash,
                        Tallied {
                            key,
                            first_at: at,
                            repeats: 0,
                        },
                    );
                }
                false
            }
        }
    }

    /// Takes what was counted: one event per kind of pull repeated, carrying the count. A
    /// pull after this finds no entry and is queued, which wakes the writer.
    fn drain(&self, into: &mut Batch) {
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock().expect("pull tally poisoned"));
            for t in taken.into_values().filter(|t| t.repeats > 0) {
                let k = &t.key;
                let pull = Pull {
                    performer: k.performer.as_deref(),
                    ip: k.ip,
                    repository: &k.repository,
                    tag: k.tag.as_deref(),
                    digest: &k.digest,
                };
                let mut event = pull.event(t.first_at);
                event.occurrences = t.repeats;
                into.add(event.into_record());
            }
        }
    }
}

enum Message {
    Record(Event),
    /// Store what is queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The recorder: a bounded queue and the writer draining it.
pub struct UsageLog {
    queue: mpsc::Sender<Message>,
    /// Wakes the writer for a flush, which otherwise waits for its next tick.
    flush_asked: Arc<tokio::sync::Notify>,
    tally: Arc<PullTally>,
    store: Arc<dyn UsageLogStore>,
    pulls: AtomicBool,
    login_failures: AtomicBool,
    dropped: Arc<AtomicU64>,
}

impl UsageLog {
    /// Starts the writer (on the current tokio runtime) over `store`.
    pub fn start(store: Arc<dyn UsageLogStore>, settings: &UsageLogSettings) -> UsageLog {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let flush_asked = Arc::new(tokio::sync::Notify::new());
        let tally = Arc::new(PullTally::new());
        tokio::spawn(write_batches(
            store.clone(),
            receiver,
            dropped.clone(),
            flush_asked.clone(),
            tally.clone(),
        ));
        let log = UsageLog {
            queue,
            flush_asked,
            tally,
            store,
            pulls: AtomicBool::new(true),
            login_failures: AtomicBool::new(true),
            dropped,
        };
        log.apply_settings(settings);
        log
    }

    /// Applies reloaded settings.
    pub fn apply_settings(&self, settings: &UsageLogSettings) {
        self.pulls.store(settings.pulls, Ordering::Relaxed);
        self.login_failures
            .store(settings.login_failures, Ordering::Relaxed);
    }

    /// Whether pulls are recorded (`ACTION_LOG_AUDIT_PULLS`).
    pub fn records_pulls(&self) -> bool {
        self.pulls.load(Ordering::Relaxed)
    }

    /// Whether failed logins are recorded (`ACTION_LOG_AUDIT_LOGIN_FAILURES`).
    pub fn records_login_failures(&self) -> bool {
        self.login_failures.load(Ordering::Relaxed)
    }

    /// Records a pull (`pull_repo`) unless `ACTION_LOG_AUDIT_PULLS` is off: a repeat of one
    /// queued moments ago only adds to its count (see [`PullTally`]); never waits.
    pub fn pull(&self, pull: &Pull<'_>) {
        if !self.records_pulls() {
            return;
        }
        let at = crate::metadata::now_millis();
        if !self.tally.count(pull, pull.hash(), at) {
            self.record(pull.event(at));
        }
    }

    /// Queues `event` for the writer; never waits. A full queue drops it and counts the drop.
    pub fn record(&self, event: Event) {
        if self.queue.try_send(Message::Record(event)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            crate::metrics::metrics().usage_logs_dropped(1);
        }
    }

    /// Records a failed login (`login_failure`) of `username` (if the client named one) through
    /// `via` (Quay's `type`: `v2auth` for the registry, `quayauth` for the API and dashboard),
    /// unless `ACTION_LOG_AUDIT_LOGIN_FAILURES` is off. The record is in the namespace the name
    /// belongs to, so its owner sees it; the performer is anonymous. Never holds the password.
    pub fn login_failure(
        &self,
        username: Option<&str>,
        ip: Option<IpAddr>,
        via: &'static str,
        message: &str,
    ) {
        if !self.records_login_failures() {
            return;
        }
        let mut event = Event::new("login_failure", Performer::Anonymous, ip)
            .detail("type", via)
            .detail("message", message);
        if let Some(name) = username.filter(|n| !n.is_empty() && n.len() <= 256) {
            let namespace = name.split_once('+').map_or(name, |(ns, _)| ns);
            let kind = if name.contains('+') { "robot" } else { "user" };
            event = event
                .namespace(namespace)
                .detail("username", name)
                .detail("kind", kind);
        }
        self.record(event);
    }

    /// How many records were dropped since start (a full queue or a failed write).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until everything queued before this call is stored (or its write failed).
    pub async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            self.flush_asked.notify_one();
            let _ = stored.await;
        }
    }

    /// The store the records go to, for the listings.
    pub fn store(&self) -> &Arc<dyn UsageLogStore> {
        &self.store
    }

    /// Deletes the records older than `retention`; returns how many went. Deleting old rows
    /// is idempotent, so replicas running it at once only repeat each other's work.
    pub async fn expire(&self, retention: Duration) -> crate::metadata::Result<u64> {
        let before = crate::metadata::now_millis()
            .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        self.store.expire_usage_logs(before).await
    }
}

/// The records of one write. Pulls repeat: a client or a fleet pulling the same tag again and
/// again would otherwise make the writer insert a row per request, and on a small machine that
/// costs the pulls themselves a third of their rate. So a pull identical to one already in the
/// batch (same performer, address, repository and details, within the batch's second) adds to
/// that record's `occurrences` instead: the record keeps the first pull's time, and daily
/// counts stay exact.
#[derive(Default)]
struct Batch {
    records: Vec<UsageLogRecord>,
    /// Index in `records` of each distinct pull, by its fields' hash.
    pulls: std::collections::HashMap<u64, usize>,
}

impl Batch {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn add(&mut self, record: UsageLogRecord) {
        if record.kind == "pull_repo" {
            let key = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (
                    &record.performer,
                    &record.ip,
                    &record.repository,
                    &record.metadata,
                )
                    .hash(&mut h);
                h.finish()
            };
            match self.pulls.get(&key).map(|&i| &mut self.records[i]) {
                Some(same)
                    if same.performer == record.performer
                        && same.ip == record.ip
                        && same.repository == record.repository
                        && same.metadata == record.metadata =>
                {
                    same.occurrences += record.occurrences;
                    return;
                }
                Some(_) => {}
                None => {
                    self.pulls.insert(key, self.records.len());
                }
            }
        }
        self.records.push(record);
    }

    fn take(&mut self) -> Vec<UsageLogRecord> {
        self.pulls.clear();
        std::mem::replace(&mut self.records, Vec::with_capacity(BATCH))
    }
}

/// The writer: gathers records, taking what is queued every [`TICK`], for up to
/// [`FLUSH_INTERVAL`] after the first one (or until
/// [`BATCH`] are in hand or a flush is asked) and stores them in one transaction.
async fn write_batches(
    store: Arc<dyn UsageLogStore>,
    mut receiver: mpsc::Receiver<Message>,
    dropped: Arc<AtomicU64>,
    flush_asked: Arc<tokio::sync::Notify>,
    tally: Arc<PullTally>,
) {
    let mut batch = Batch::default();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut inbox = Vec::with_capacity(BATCH);
    while let Some(first) = receiver.recv().await {
        let deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        let mut next = Some(first);
        loop {
            for message in next.take().into_iter().chain(inbox.drain(..)) {
                match message {
                    Message::Record(event) => batch.add(event.into_record()),
                    Message::Flush(done) => waiting.push(done),
                }
            }
            tally.drain(&mut batch);
            if batch.len() >= BATCH || !waiting.is_empty() {
                break;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.min(now + TICK)) => {}
                _ = flush_asked.notified() => {}
            }
            let room = BATCH - batch.len();
            while inbox.len() < room {
                match receiver.try_recv() {
                    Ok(message) => inbox.push(message),
                    Err(_) => break,
                }
            }
        }
        let records = batch.take();
        let count = records.len();
        if count > 0 {
            if let Err(e) = store.insert_usage_logs(records).await {
                dropped.fetch_add(count as u64, Ordering::Relaxed);
                crate::metrics::metrics().usage_logs_dropped(count as u64);
                tracing::warn!(error = %e, records = count, "cannot store usage logs; dropping them");
            } else {
                crate::metrics::metrics().usage_logs_stored(count as u64);
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// The opaque `next_page` token for the listing position after the record `(at, id)`.
pub fn position_token(at: i64, id: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{at}.{id}"))
}

/// The position a [`position_token`] names; `None` for anything else.
pub fn read_position(token: &str) -> Option<(i64, i64)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()?;
    let (at, id) = std::str::from_utf8(&bytes).ok()?.split_once('.')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

/// Deletes usage logs older than `ACTION_LOG_ROTATION_THRESHOLD` every [`EXPIRE_INTERVAL`],
/// reading the settings in force before each run.
pub async fn expire_periodically(state: crate::app::AppState) {
    loop {
        tokio::time::sleep(EXPIRE_INTERVAL).await;
        let retention = state.settings().usage_logs.retention;
        match state.usage.expire(retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "usage logs past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot delete old usage logs; retrying later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_records_with_quay_details() {
        let repo: RepoName = "acme/app".parse().unwrap();
        let r = Event::new("push_repo", Performer::Account("acme+ci".into()), None)
            .repository(&repo)
            .detail("tag", "v1")
            .at(5)
            .into_record();
        assert_eq!(r.kind, "push_repo");
        assert_eq!(r.at, 5);
        assert_eq!(r.performer.as_deref(), Some("acme+ci"));
        assert_eq!(r.namespace.as_deref(), Some("acme"));
        assert_eq!(r.repository.as_deref(), Some("acme/app"));
        let meta: Value = serde_json::from_str(&r.metadata).unwrap();
        assert_eq!(meta["repo"], "app");
        assert_eq!(meta["tag"], "v1");
        let anonymous = Event::new("pull_repo", Performer::Anonymous, None).into_record();
        assert_eq!(anonymous.performer, None);
    }
}
