//! The hot reads of the embedded backend, kept in memory: manifests by tag and by digest, each
//! repository's whole tag list and which repositories exist (who may read them is remembered
//! by `crate::auth::decisions`).
//!
//! The embedded database has one writer, this process, so every change that can make an
//! entry wrong passes through [`ContentCache::invalidate`] after its commit. Two rules keep the
//! cache exact under concurrency:
//! - a reader notes the generation before it queries and stores its answer only if no
//!   invalidation happened since (an answer read before a commit is never stored after it);
//! - invalidation runs after the commit, so a reader that starts afterwards sees the new rows.
//!
//! Other processes may write the same database (`berth gc`, the admin commands, a second
//! server by mistake). Every writer bumps a counter in a small shared-memory file beside the
//! database ([`ChangeCounter`]) after each such commit; a reader that finds the counter moved
//! by someone else drops everything before it answers. SQLite's WAL mode already needs memory
//! shared between the processes on one database, so this asks nothing new of the filesystem.
//! Entries also expire after [`TIME_TO_LIVE`], for writers that are not berth at all.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use oci::Tag;

use crate::metadata::StoredManifest;
use crate::metrics::{metrics, CacheLookup};

/// Long enough that hot entries are rarely reloaded (a reload of a 10,000-tag list by every
/// waiting request at once showed in the p99), short enough to bound what a writer that is
/// not berth can leave unseen.
pub const TIME_TO_LIVE: Duration = Duration::from_secs(30);
/// Beyond these the cache starts over, so memory stays bounded whatever is pulled.
const MAX_ENTRIES: usize = 20_000;
const MAX_BYTES: usize = 32 << 20;
/// Longer tag lists are read from the database page by page.
pub const MAX_CACHED_TAGS: usize = 50_000;

struct Entry<T> {
    value: T,
    loaded: Instant,
}

impl<T: Clone> Entry<T> {
    fn new(value: T) -> Entry<T> {
        Entry {
            value,
            loaded: Instant::now(),
        }
    }

    fn fresh(&self) -> Option<T> {
        (self.loaded.elapsed() < TIME_TO_LIVE).then(|| self.value.clone())
    }
}

#[derive(Default)]
struct RepositoryEntries {
    exists: Option<Entry<()>>,
    by_tag: HashMap<String, Entry<Arc<StoredManifest>>>,
    by_digest: HashMap<String, Entry<Arc<StoredManifest>>>,
    tags: Option<Entry<Arc<Vec<Tag>>>>,
}

#[derive(Default)]
struct Entries {
    repositories: HashMap<String, RepositoryEntries>,
    count: usize,
    bytes: usize,
    /// The shared counter's value these entries are consistent with.
    seen: u64,
}

impl Entries {
    /// Drops every entry; the counter value they are consistent with stays.
    fn clear(&mut self) {
        *self = Entries {
            seen: self.seen,
            ..Entries::default()
        };
    }
}

/// A change counter in shared memory, common to every process that opens the database.
pub struct ChangeCounter {
    map: memmap2::MmapRaw,
}

impl ChangeCounter {
    /// Maps `path` (created if missing).
    pub fn open(path: &Path) -> std::io::Result<ChangeCounter> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() < 8 {
            file.set_len(8)?;
        }
        let map = memmap2::MmapOptions::new().len(8).map_raw(&file)?;
        Ok(ChangeCounter { map })
    }

    fn value(&self) -> &AtomicU64 {
        // SAFETY: the mapping is 8 bytes, page-aligned (so aligned for u64), lives as long as
        // `self`, and is only ever accessed atomically, by this process and the others that
        // map the same file.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().cast::<u64>()) }
    }
}

/// What a reader holds between noting the generation and storing its answer.
#[derive(Clone, Copy)]
pub struct Ticket(u64);

#[derive(Default)]
pub struct ContentCache {
    entries: Mutex<Entries>,
    generation: AtomicU64,
    shared: Option<ChangeCounter>,
}

/// Which manifest lookup an entry answers.
pub enum Lookup<'a> {
    Tag(&'a str),
    Digest(&'a str),
}

impl ContentCache {
    /// A cache that also sees the writes of other processes through `shared`.
    pub fn with_counter(shared: ChangeCounter) -> ContentCache {
        let seen = shared.value().load(Ordering::Acquire);
        ContentCache {
            entries: Mutex::new(Entries {
                seen,
                ..Entries::default()
            }),
            generation: AtomicU64::new(0),
            shared: Some(shared),
        }
    }

    /// The entries, emptied first if another process wrote since they were filled.
    fn lock(&self) -> MutexGuard<'_, Entries> {
        // The entries are a cache: after a panic elsewhere they are still consistent maps.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = &self.shared {
            let now = shared.value().load(Ordering::Acquire);
            if now != entries.seen {
                entries.clear();
                entries.seen = now;
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
        entries
    }

    /// Call before querying the database for an answer to store.
    pub fn ticket(&self) -> Ticket {
        let _synced = self.lock();
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Tells other processes, and the generation, that a write happened.
    fn announce(&self, entries: &mut Entries) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(shared) = &self.shared {
            let before = shared.value().fetch_add(1, Ordering::AcqRel);
            // Only our own write since the last look: these entries stay valid. Otherwise
            // the next look drops them.
            if before == entries.seen {
                entries.seen = before + 1;
            }
        }
    }

    /// Forgets everything about `repo`. Call after the commit that changed it.
    pub fn invalidate(&self, repo: &str) {
        let mut entries = self.lock();
        if let Some(gone) = entries.repositories.remove(repo) {
            let (count, bytes) = gone.size();
            entries.count -= count;
            entries.bytes -= bytes;
        }
        self.announce(&mut entries);
    }

    /// Forgets everything. Call after a commit whose repositories are not known by name.
    pub fn invalidate_all(&self) {
        let mut entries = self.lock();
        entries.clear();
        self.announce(&mut entries);
    }

    /// Invalidates `repo` (or everything) when dropped: at the end of a write method,
    /// after its commit, on every path out of it.
    pub fn invalidate_on_exit(&self, repo: Option<&str>) -> Invalidation<'_> {
        Invalidation {
            cache: self,
            repo: repo.map(str::to_string),
        }
    }

    fn store(
        &self,
        ticket: Ticket,
        repo: &str,
        cost: usize,
        put: impl FnOnce(&mut RepositoryEntries),
    ) {
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if entries.count + 1 > MAX_ENTRIES || entries.bytes + cost > MAX_BYTES {
            entries.clear();
        }
        let repository = entries.repositories.entry(repo.to_string()).or_default();
        let before = repository.size();
        put(repository);
        let after = repository.size();
        entries.count = entries.count + after.0 - before.0;
        entries.bytes = entries.bytes + after.1 - before.1;
    }

    pub fn manifest(&self, repo: &str, lookup: &Lookup<'_>) -> Option<Arc<StoredManifest>> {
        let found = (|| {
            let entries = self.lock();
            let repository = entries.repositories.get(repo)?;
            match lookup {
                Lookup::Tag(t) => repository.by_tag.get(*t)?.fresh(),
                Lookup::Digest(d) => repository.by_digest.get(*d)?.fresh(),
            }
        })();
        metrics().cache_lookup(CacheLookup::Manifest, found.is_some());
        found
    }

    pub fn store_manifest(
        &self,
        ticket: Ticket,
        repo: &str,
        lookup: &Lookup<'_>,
        manifest: Arc<StoredManifest>,
    ) {
        let cost = manifest_cost(&manifest);
        self.store(ticket, repo, cost, |r| {
            let entry = Entry::new(manifest);
            match lookup {
                Lookup::Tag(t) => r.by_tag.insert(t.to_string(), entry),
                Lookup::Digest(d) => r.by_digest.insert(d.to_string(), entry),
            };
        });
    }

    /// Whether `repo` is known to exist (absence is never cached: creating a repository
    /// needs no invalidation).
    pub fn exists(&self, repo: &str) -> bool {
        let found = self
            .lock()
            .repositories
            .get(repo)
            .and_then(|r| r.exists.as_ref()?.fresh())
            .is_some();
        metrics().cache_lookup(CacheLookup::Repository, found);
        found
    }

    pub fn store_exists(&self, ticket: Ticket, repo: &str) {
        self.store(ticket, repo, 0, |r| r.exists = Some(Entry::new(())));
    }

    /// The whole sorted tag list of `repo`.
    pub fn tags(&self, repo: &str) -> Option<Arc<Vec<Tag>>> {
        let found = (|| self.lock().repositories.get(repo)?.tags.as_ref()?.fresh())();
        metrics().cache_lookup(CacheLookup::Tags, found.is_some());
        found
    }

    pub fn store_tags(&self, ticket: Ticket, repo: &str, tags: Arc<Vec<Tag>>) {
        let cost = tags_cost(&tags);
        self.store(ticket, repo, cost, |r| r.tags = Some(Entry::new(tags)));
    }
}

pub struct Invalidation<'a> {
    cache: &'a ContentCache,
    repo: Option<String>,
}

impl Drop for Invalidation<'_> {
    fn drop(&mut self) {
        match &self.repo {
            Some(repo) => self.cache.invalidate(repo),
            None => self.cache.invalidate_all(),
        }
    }
}

fn manifest_cost(m: &StoredManifest) -> usize {
    m.content.len() + m.media_type.len() + 128
}

fn tags_cost(tags: &[Tag]) -> usize {
    tags.iter().map(|t| t.as_str().len() + 32).sum()
}

impl RepositoryEntries {
    /// Entries and approximate bytes held.
    fn size(&self) -> (usize, usize) {
        let manifests = self.by_tag.values().chain(self.by_digest.values());
        let bytes: usize = manifests.map(|e| manifest_cost(&e.value)).sum::<usize>()
            + self.tags.as_ref().map_or(0, |e| tags_cost(&e.value));
        (
            self.by_tag.len()
                + self.by_digest.len()
                + usize::from(self.tags.is_some())
                + usize::from(self.exists.is_some()),
            bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(n: u8) -> Arc<StoredManifest> {
        Arc::new(StoredManifest {
            digest: format!("sha256:{}", hex::encode([n; 32])).parse().unwrap(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content: vec![n; 10],
        })
    }

    #[test]
    fn an_answer_read_before_an_invalidation_is_not_stored() {
        let cache = ContentCache::default();
        let ticket = cache.ticket();
        cache.invalidate("a/b");
        cache.store_manifest(ticket, "a/b", &Lookup::Tag("latest"), manifest(1));
        assert!(cache.manifest("a/b", &Lookup::Tag("latest")).is_none());
        let ticket = cache.ticket();
        cache.store_manifest(ticket, "a/b", &Lookup::Tag("latest"), manifest(1));
        assert_eq!(
            cache
                .manifest("a/b", &Lookup::Tag("latest"))
                .unwrap()
                .content,
            vec![1; 10]
        );
    }

    #[test]
    fn invalidation_is_per_repository_and_counts_stay_right() {
        let cache = ContentCache::default();
        let t = cache.ticket();
        cache.store_manifest(t, "a/b", &Lookup::Tag("x"), manifest(1));
        cache.store_manifest(t, "a/c", &Lookup::Digest("d"), manifest(2));
        cache.store_exists(t, "a/c");
        cache.invalidate("a/b");
        assert!(cache.manifest("a/b", &Lookup::Tag("x")).is_none());
        assert!(cache.manifest("a/c", &Lookup::Digest("d")).is_some());
        assert!(cache.exists("a/c"));
        let entries = cache.lock();
        assert_eq!(entries.count, 2);
        assert_eq!(entries.bytes, manifest_cost(&manifest(2)));
    }

    #[test]
    fn a_write_by_another_process_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("changes");
        let ours = ContentCache::with_counter(ChangeCounter::open(&path).unwrap());
        let theirs = ContentCache::with_counter(ChangeCounter::open(&path).unwrap());
        let t = ours.ticket();
        ours.store_manifest(t, "a/b", &Lookup::Tag("x"), manifest(1));
        ours.store_manifest(t, "a/c", &Lookup::Tag("y"), manifest(2));
        // Our own write keeps what it did not touch.
        ours.invalidate("a/c");
        assert!(ours.manifest("a/b", &Lookup::Tag("x")).is_some());
        // Theirs does not.
        let stale = ours.ticket();
        theirs.invalidate("a/z");
        assert!(ours.manifest("a/b", &Lookup::Tag("x")).is_none());
        // An answer read before their write is not stored after it.
        ours.store_manifest(stale, "a/b", &Lookup::Tag("x"), manifest(1));
        assert!(ours.manifest("a/b", &Lookup::Tag("x")).is_none());
    }

    #[test]
    fn memory_stays_bounded() {
        let cache = ContentCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            let t = cache.ticket();
            cache.store_manifest(t, "a/b", &Lookup::Tag(&format!("t{i}")), manifest(1));
        }
        assert!(cache.lock().count <= MAX_ENTRIES);
    }
}
