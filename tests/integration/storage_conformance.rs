//! The `BlobStore` contract, run against every backend: the filesystem store always, the S3
//! store when `BERTH_TEST_S3_ENDPOINT` (and friends, see `scripts/garage.sh`) point at a bucket.
//! Each backend gets one test per clause, stamped by `conformance!`.

use crate::common;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use berth::storage::fs::FsBlobStore;
use berth::storage::s3::{S3BlobStore, PART_SIZE};
use berth::storage::{BlobStore, ByteRange, ByteStream, StorageError, UploadId, UploadProgress};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use oci::{Algorithm, Digest};

const MIB: usize = 1024 * 1024;

/// One backend under test: a store, a way to open a second instance over the same bytes (a
/// replica), and a look at what it stored.
struct Harness {
    store: Arc<dyn BlobStore>,
    backend: Backend,
}

enum Backend {
    Fs(tempfile::TempDir),
    S3 {
        settings: berth::config::S3Settings,
        raw: AmazonS3,
    },
}

impl Harness {
    fn fs() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsBlobStore::open(dir.path()).expect("open fs store");
        Harness {
            store: Arc::new(store),
            backend: Backend::Fs(dir),
        }
    }

    async fn s3() -> Option<Harness> {
        let prefix = format!("conformance/{}", uuid::Uuid::new_v4().simple());
        let Some(settings) = common::s3_under_test(&prefix) else {
            println!(
                "S3 conformance not run: {} is not set (bash scripts/garage.sh start)",
                common::TEST_S3_ENDPOINT_ENV
            );
            return None;
        };
        let store = S3BlobStore::connect(&settings)
            .await
            .expect("connect to the test bucket");
        let credentials = settings.credentials.clone().expect("credentials");
        let raw = AmazonS3Builder::new()
            .with_endpoint(settings.endpoint.clone().expect("endpoint"))
            .with_allow_http(true)
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(credentials.access_key)
            .with_secret_access_key(credentials.secret_key)
            .build()
            .expect("raw client");
        Some(Harness {
            store: Arc::new(store),
            backend: Backend::S3 { settings, raw },
        })
    }

    /// A second, independent store instance over the same bytes.
    async fn replica(&self) -> Arc<dyn BlobStore> {
        match &self.backend {
            Backend::Fs(dir) => Arc::new(FsBlobStore::open(dir.path()).expect("reopen")),
            Backend::S3 { settings, .. } => {
                Arc::new(S3BlobStore::connect(settings).await.expect("reconnect"))
            }
        }
    }

    /// Everything stored for upload `id` (object keys or file names).
    async fn upload_leftovers(&self, id: &UploadId) -> Vec<String> {
        match &self.backend {
            Backend::Fs(dir) => {
                let path = dir.path().join("uploads").join(id.as_str());
                if path.exists() {
                    vec![path.display().to_string()]
                } else {
                    Vec::new()
                }
            }
            Backend::S3 { settings, raw } => {
                let prefix = Key::from(format!("{}/uploads/{id}", settings.prefix));
                raw.list(Some(&prefix))
                    .map_ok(|m| m.location.to_string())
                    .try_collect()
                    .await
                    .expect("list upload objects")
            }
        }
    }

    /// Stores something under `blobs/` that is not a blob.
    async fn put_junk_under_blobs(&self) {
        match &self.backend {
            Backend::Fs(dir) => {
                let junk = dir.path().join("blobs/sha256/zz");
                std::fs::create_dir_all(&junk).expect("mkdir");
                std::fs::write(junk.join("not-a-digest"), b"junk").expect("write");
            }
            Backend::S3 { settings, raw } => {
                for key in ["blobs/sha256/zz/not-a-digest", "blobs/README"] {
                    raw.put(
                        &Key::from(format!("{}/{key}", settings.prefix)),
                        Bytes::from_static(b"junk").into(),
                    )
                    .await
                    .expect("put junk");
                }
            }
        }
    }

    /// The bytes at a location `quarantine_blob` answered (a path, or a key in the bucket).
    async fn read_location(&self, location: &str) -> Option<Vec<u8>> {
        match &self.backend {
            Backend::Fs(_) => std::fs::read(location).ok(),
            Backend::S3 { raw, .. } => match raw.get(&Key::from(location)).await {
                Ok(got) => Some(got.bytes().await.expect("read object").to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("get {location}: {e}"),
            },
        }
    }

    /// Where a location `quarantine_blob` answered sits, relative to the store's root.
    fn relative<'a>(&self, location: &'a str) -> &'a str {
        let root = match &self.backend {
            Backend::Fs(dir) => format!("{}/", dir.path().display()),
            Backend::S3 { settings, .. } => format!("{}/", settings.prefix),
        };
        location
            .strip_prefix(&root)
            .expect("under the store's root")
    }

    fn is_s3(&self) -> bool {
        matches!(self.backend, Backend::S3 { .. })
    }
}

/// Deterministic bytes that differ per `seed`.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> Digest {
    Algorithm::Sha256.digest_of(bytes)
}

/// A body of the given chunks.
fn body(chunks: Vec<Bytes>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(Ok)).boxed()
}

/// `bytes` as a body in chunks of `chunk` bytes.
fn body_of(bytes: &[u8], chunk: usize) -> ByteStream {
    body(
        bytes
            .chunks(chunk.max(1))
            .map(Bytes::copy_from_slice)
            .collect(),
    )
}

/// Where an upload stands between calls, as the registry records it.
struct Session {
    id: UploadId,
    len: u64,
    progress: UploadProgress,
    hasher: oci::Hasher,
}

impl Session {
    async fn new(store: &dyn BlobStore) -> Session {
        let id = UploadId::generate();
        store.create_upload(&id).await.expect("create upload");
        Session {
            id,
            len: 0,
            progress: None,
            hasher: Algorithm::Sha256.hasher(),
        }
    }

    async fn append(&mut self, store: &dyn BlobStore, body: ByteStream) {
        let appended = store
            .append_upload(
                &self.id,
                self.len,
                self.progress.clone(),
                self.hasher.clone(),
                body,
            )
            .await
            .expect("append");
        self.len = appended.len;
        self.progress = appended.progress;
        self.hasher = appended.hasher;
    }

    async fn commit(&self, store: &dyn BlobStore, digest: &Digest) {
        store
            .commit_upload(&self.id, self.len, self.progress.clone(), digest)
            .await
            .expect("commit");
    }

    async fn delete(&self, store: &dyn BlobStore) {
        store
            .delete_upload(&self.id, self.progress.clone())
            .await
            .expect("delete upload");
    }
}

/// Uploads `bytes` in one append and commits them; returns the digest.
async fn put_blob(store: &dyn BlobStore, bytes: &[u8]) -> Digest {
    let digest = sha256(bytes);
    let mut s = Session::new(store).await;
    s.append(store, body_of(bytes, 64 * 1024)).await;
    s.commit(store, &digest).await;
    s.delete(store).await;
    digest
}

async fn read_all(store: &dyn BlobStore, digest: &Digest, range: Option<ByteRange>) -> Vec<u8> {
    let mut stream = store.open(digest, range).await.expect("open");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("read"));
    }
    out
}

async fn listed(store: &dyn BlobStore) -> Vec<(Digest, u64)> {
    let mut all: Vec<(Digest, u64)> = store
        .list_blobs()
        .map_ok(|(d, stat)| (d, stat.size))
        .try_collect()
        .await
        .expect("list blobs");
    all.sort();
    all
}

// ---- the contract ----

async fn commit_is_visible_only_after_commit(h: Harness) {
    let store = &*h.store;
    let bytes = data(3 * MIB + 17, 1);
    let digest = sha256(&bytes);
    let mut s = Session::new(store).await;
    s.append(store, body_of(&bytes, 100_000)).await;
    assert_eq!(s.len, bytes.len() as u64);
    assert_eq!(
        s.hasher.clone().finish(),
        digest,
        "the hasher saw every byte"
    );
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(
        store.open(&digest, None).await.err(),
        Some(StorageError::NotFound)
    ));
    assert!(listed(store).await.is_empty());
    s.commit(store, &digest).await;
    let stat = store.stat(&digest).await.unwrap().expect("committed");
    assert_eq!(stat.size, bytes.len() as u64);
    assert_eq!(read_all(store, &digest, None).await, bytes);
    // Deleting the session keeps the blob.
    s.delete(store).await;
    assert_eq!(read_all(store, &digest, None).await, bytes);
}

async fn commit_is_repeatable_and_rewrites_the_modified_time(h: Harness) {
    let store = &*h.store;
    // One part and a tail on S3: the repeat finds the completed data object.
    let bytes = data(PART_SIZE as usize + 5 * 1024, 2);
    let digest = sha256(&bytes);
    let mut s = Session::new(store).await;
    s.append(store, body_of(&bytes, MIB)).await;
    s.commit(store, &digest).await;
    let first = store.stat(&digest).await.unwrap().expect("committed");
    // S3's Last-Modified has one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.commit(store, &digest).await;
    let second = store.stat(&digest).await.unwrap().expect("committed again");
    assert!(
        second.modified > first.modified,
        "a repeated commit rewrites the blob: {:?} then {:?}",
        first.modified,
        second.modified
    );
    // Garbage collection deleted the bytes meanwhile: the repeat brings them back.
    store.delete_blob(&digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    s.commit(store, &digest).await;
    assert_eq!(read_all(store, &digest, None).await, bytes);
    // Small and empty blobs (no part at all) are repeatable too.
    for bytes in [data(10, 3), Vec::new()] {
        let digest = sha256(&bytes);
        let mut s = Session::new(store).await;
        s.append(store, body_of(&bytes, 4)).await;
        s.commit(store, &digest).await;
        s.commit(store, &digest).await;
        assert_eq!(read_all(store, &digest, None).await, bytes);
        assert_eq!(
            store.stat(&digest).await.unwrap().unwrap().size,
            bytes.len() as u64
        );
        s.delete(store).await;
    }
    s.delete(store).await;
}

async fn many_small_and_large_chunks_across_part_boundaries(h: Harness) {
    let store = &*h.store;
    // Appends of 1 KiB to 7 MiB, some of several body chunks, crossing the 8 MiB part
    // boundaries at odd offsets; 31 MiB in all.
    let appends: &[&[usize]] = &[
        &[1024],
        &[7 * MIB],
        &[3, MIB + 1, 5 * MIB],
        &[64 * 1024],
        &[2 * MIB - 1, 7 * MIB, 9 * 1024],
        &[1024; 5],
        &[7 * MIB],
    ];
    let total: usize = appends.iter().flat_map(|a| a.iter()).sum();
    let bytes = data(total, 4);
    let digest = sha256(&bytes);
    let mut s = Session::new(store).await;
    let mut at = 0;
    for append in appends {
        let mut chunks = Vec::new();
        for n in *append {
            chunks.push(Bytes::copy_from_slice(&bytes[at..at + n]));
            at += n;
        }
        s.append(store, body(chunks)).await;
        assert_eq!(s.len, at as u64);
    }
    // An empty append changes nothing.
    let before = s.progress.clone();
    s.append(store, body(Vec::new())).await;
    assert_eq!((s.len, &s.progress), (total as u64, &before));
    assert_eq!(s.hasher.clone().finish(), digest);
    if h.is_s3() {
        // Replaced tails are cleaned up as the session goes: at most the current one and the
        // one it replaced remain.
        let left = h.upload_leftovers(&s.id).await;
        assert!(left.len() <= 2, "{left:?}");
    }
    s.commit(store, &digest).await;
    let back = read_all(store, &digest, None).await;
    assert_eq!(back.len(), bytes.len());
    assert_eq!(sha256(&back), digest);
    assert!(back == bytes);
    s.delete(store).await;
}

async fn a_replica_continues_from_the_progress_alone(h: Harness) {
    let first = &*h.store;
    let replica = h.replica().await;
    let bytes = data(PART_SIZE as usize * 2 + 3 * MIB, 5);
    let digest = sha256(&bytes);
    let cut = PART_SIZE as usize + 2 * MIB;
    let mut s = Session::new(first).await;
    s.append(first, body_of(&bytes[..cut], 256 * 1024)).await;
    // The replica knows only what the metadata holds: id, length, progress, hash state.
    let saved = s.hasher.save_state();
    let mut continued = Session {
        id: s.id.clone(),
        len: s.len,
        progress: s.progress.clone(),
        hasher: oci::Hasher::restore(Algorithm::Sha256, &saved).expect("restore"),
    };
    continued
        .append(&*replica, body_of(&bytes[cut..], 300_000))
        .await;
    assert_eq!(continued.hasher.clone().finish(), digest);
    // And the first instance commits what the replica appended.
    continued.commit(first, &digest).await;
    assert_eq!(read_all(&*replica, &digest, None).await, bytes);
    continued.delete(&*replica).await;
}

/// A body that yields `bytes` and then fails.
fn failing_body(bytes: &[u8]) -> ByteStream {
    let chunks: Vec<Result<Bytes, io::Error>> = bytes
        .chunks(MIB)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .chain([Err(io::Error::other("client went away"))])
        .collect();
    futures::stream::iter(chunks).boxed()
}

async fn a_failed_append_leaves_the_old_progress_valid(h: Harness) {
    let store = &*h.store;
    let head = data(PART_SIZE as usize + MIB, 6);
    let tail = data(3 * MIB, 7);
    let mut s = Session::new(store).await;
    s.append(store, body_of(&head, MIB)).await;
    // This append writes two more parts and then its body fails.
    let result = store
        .append_upload(
            &s.id,
            s.len,
            s.progress.clone(),
            s.hasher.clone(),
            failing_body(&data(2 * PART_SIZE as usize + MIB, 8)),
        )
        .await;
    assert!(
        matches!(result, Err(StorageError::Body(_))),
        "a body error is reported as such"
    );
    // A failure before any byte arrived is harmless too.
    let result = store
        .append_upload(
            &s.id,
            s.len,
            s.progress.clone(),
            s.hasher.clone(),
            failing_body(&[]),
        )
        .await;
    assert!(result.is_err());
    // An append that succeeded but whose progress was never recorded (the metadata write
    // failed, or the chunk's length was wrong) is forgotten as well.
    let unrecorded = store
        .append_upload(
            &s.id,
            s.len,
            s.progress.clone(),
            s.hasher.clone(),
            body_of(&data(PART_SIZE as usize, 9), MIB),
        )
        .await
        .expect("append");
    assert!(unrecorded.len > s.len);
    drop(unrecorded);
    // The session goes on from what it had recorded.
    s.append(store, body_of(&tail, MIB)).await;
    let whole = [head, tail].concat();
    let digest = sha256(&whole);
    assert_eq!(s.hasher.clone().finish(), digest);
    s.commit(store, &digest).await;
    assert_eq!(read_all(store, &digest, None).await, whole);
    s.delete(store).await;
}

async fn range_reads(h: Harness) {
    let store = &*h.store;
    let bytes = data(PART_SIZE as usize + 1000, 9);
    let digest = put_blob(store, &bytes).await;
    let last = bytes.len() as u64 - 1;
    for (start, end) in [
        (0, 0),
        (0, 99),
        (1000, 1999),
        (PART_SIZE - 10, PART_SIZE + 10),
        (last, last),
        (0, last),
    ] {
        let got = read_all(store, &digest, Some(ByteRange { start, end })).await;
        assert!(
            got == bytes[start as usize..=end as usize],
            "range {start}-{end}"
        );
    }
}

/// Reads long enough for the S3 store to fetch ranges in parallel (past 16 MiB, in 8 MiB
/// parts): whole, and ranges that start and end inside parts or on their boundaries.
async fn large_reads(h: Harness) {
    let store = &*h.store;
    let bytes = data(40 * MIB + 1234, 10);
    let digest = put_blob(store, &bytes).await;
    let whole = read_all(store, &digest, None).await;
    assert!(whole.len() == bytes.len() && sha256(&whole) == digest);
    let last = bytes.len() as u64 - 1;
    let part = 8 * MIB as u64;
    for (start, end) in [
        (0, last),
        (1, last - 1),
        (part - 1, 3 * part + 5),
        (part, 3 * part - 1),
        (7, 7 + 16 * MIB as u64),
        (last - 17 * MIB as u64, last),
    ] {
        let got = read_all(store, &digest, Some(ByteRange { start, end })).await;
        assert!(
            got == bytes[start as usize..=end as usize],
            "range {start}-{end}"
        );
    }
    // A reader dropped after its first chunk (a client gone) leaves the store usable.
    let mut stream = store.open(&digest, None).await.expect("open");
    stream.next().await.expect("a chunk").expect("read");
    drop(stream);
    assert_eq!(read_all(store, &digest, None).await.len(), bytes.len());
}

/// A blob that disappears while it is being read fails the read with an error: the client
/// must never take a short body for the whole blob.
async fn a_blob_removed_mid_read_fails_the_read(h: Harness) {
    if !h.is_s3() {
        // An open file stays readable after it is unlinked.
        return;
    }
    let store = &*h.store;
    let bytes = data(80 * MIB + 3, 11);
    let digest = put_blob(store, &bytes).await;
    let mut stream = store.open(&digest, None).await.expect("open");
    stream.next().await.expect("a chunk").expect("read");
    store.delete_blob(&digest).await.expect("delete");
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "a read that lost its blob ended without an error");
}

async fn delete_upload_removes_everything_it_stored(h: Harness) {
    let store = &*h.store;
    // An unfinished upload with parts and a tail.
    let mut s = Session::new(store).await;
    s.append(store, body_of(&data(PART_SIZE as usize + 10, 10), MIB))
        .await;
    s.append(store, body_of(&data(100, 11), 7)).await;
    assert!(!h.upload_leftovers(&s.id).await.is_empty());
    s.delete(store).await;
    assert_eq!(h.upload_leftovers(&s.id).await, Vec::<String>::new());
    if let (Backend::S3 { settings, raw }, Some(progress)) = (&h.backend, &s.progress) {
        // The multipart upload is gone too: a part can no longer be added to it.
        use object_store::multipart::MultipartStore;
        let progress: serde_json::Value = serde_json::from_slice(progress).unwrap();
        let multipart = progress["multipart"].as_str().expect("a multipart upload");
        let data_key = Key::from(format!("{}/uploads/{}/data", settings.prefix, s.id));
        let late = raw
            .put_part(
                &data_key,
                &multipart.to_string(),
                5,
                Bytes::from_static(b"x").into(),
            )
            .await;
        assert!(late.is_err(), "the multipart upload was aborted");
    }
    // Deleting again, or an upload that never stored anything, is fine.
    s.delete(store).await;
    let fresh = Session::new(store).await;
    fresh.delete(store).await;
    // A committed upload: the session's objects go, the blob stays.
    let bytes = data(PART_SIZE as usize + 5, 12);
    let digest = sha256(&bytes);
    let mut s = Session::new(store).await;
    s.append(store, body_of(&bytes, MIB)).await;
    s.commit(store, &digest).await;
    s.delete(store).await;
    assert_eq!(h.upload_leftovers(&s.id).await, Vec::<String>::new());
    assert_eq!(read_all(store, &digest, None).await, bytes);
}

async fn delete_blob(h: Harness) {
    let store = &*h.store;
    let digest = put_blob(store, b"short-lived").await;
    store.delete_blob(&digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(
        store.open(&digest, None).await.err(),
        Some(StorageError::NotFound)
    ));
    // Absent blobs are not an error.
    store.delete_blob(&digest).await.unwrap();
}

async fn quarantine_moves_the_bytes_and_never_deletes_them(h: Harness) {
    let store = &*h.store;
    let bytes = data(300_000, 40);
    let digest = put_blob(store, &bytes).await;
    let first = store
        .quarantine_blob(&digest)
        .await
        .unwrap()
        .expect("the blob was there");
    assert!(
        h.relative(&first)
            .starts_with(&format!("quarantine/sha256/{}.", digest.hex())),
        "{first}"
    );
    assert_eq!(h.read_location(&first).await, Some(bytes.clone()));
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(listed(store).await.is_empty(), "quarantine is not listed");
    // Absent blobs are not an error.
    assert_eq!(store.quarantine_blob(&digest).await.unwrap(), None);
    // The digest can be committed again, and a second quarantine keeps both copies.
    put_blob(store, &bytes).await;
    assert_eq!(read_all(store, &digest, None).await, bytes);
    let second = store.quarantine_blob(&digest).await.unwrap().unwrap();
    assert_ne!(first, second);
    assert_eq!(h.read_location(&first).await, Some(bytes.clone()));
    assert_eq!(h.read_location(&second).await, Some(bytes));
}

async fn upload_data_presence(h: Harness) {
    let store = &*h.store;
    let mut s = Session::new(store).await;
    assert!(store
        .upload_data_present(&s.id, 0, s.progress.clone())
        .await
        .unwrap());
    s.append(store, body_of(&data(1000, 41), 300)).await;
    assert!(store
        .upload_data_present(&s.id, 1000, s.progress.clone())
        .await
        .unwrap());
    s.delete(store).await;
    assert!(!store
        .upload_data_present(&s.id, 1000, s.progress.clone())
        .await
        .unwrap());
}

async fn list_blobs(h: Harness) {
    let store = &*h.store;
    assert!(listed(store).await.is_empty());
    let mut expected = Vec::new();
    for (i, len) in [0usize, 10, 200_000].into_iter().enumerate() {
        let bytes = data(len, 20 + i as u64);
        expected.push((put_blob(store, &bytes).await, len as u64));
    }
    // An unfinished upload is not a blob.
    let mut s = Session::new(store).await;
    s.append(store, body_of(b"pending", 3)).await;
    h.put_junk_under_blobs().await;
    expected.sort();
    assert_eq!(listed(store).await, expected);
    s.delete(store).await;
}

async fn presigned_urls(h: Harness) {
    let store = &*h.store;
    let bytes = data(100_000, 30);
    let digest = put_blob(store, &bytes).await;
    let url = store
        .presigned_url(&digest, Duration::from_secs(300))
        .await
        .unwrap();
    if !h.is_s3() {
        assert_eq!(url, None, "the filesystem store cannot sign URLs");
        return;
    }
    let url = url.expect("the S3 store signs URLs");
    assert!(!url.contains(
        &common::s3_under_test("")
            .unwrap()
            .credentials
            .unwrap()
            .secret_key
    ));
    let r = reqwest::get(&url).await.expect("fetch presigned URL");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), bytes);
    let r = reqwest::Client::new()
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), bytes[10..20]);
}

macro_rules! conformance {
    ($backend:ident, $harness:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(h) = $harness.await {
                        super::$case(h).await;
                    }
                }
            )*
        }
    };
}

macro_rules! every_backend {
    ($($case:ident),* $(,)?) => {
        conformance!(fs, async { Some(super::Harness::fs()) }, [$($case),*]);
        conformance!(s3, super::Harness::s3(), [$($case),*]);
    };
}

every_backend!(
    commit_is_visible_only_after_commit,
    commit_is_repeatable_and_rewrites_the_modified_time,
    many_small_and_large_chunks_across_part_boundaries,
    a_replica_continues_from_the_progress_alone,
    a_failed_append_leaves_the_old_progress_valid,
    range_reads,
    large_reads,
    a_blob_removed_mid_read_fails_the_read,
    delete_upload_removes_everything_it_stored,
    delete_blob,
    quarantine_moves_the_bytes_and_never_deletes_them,
    upload_data_presence,
    list_blobs,
    presigned_urls,
);
