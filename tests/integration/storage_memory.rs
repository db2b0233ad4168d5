//! Memory stays flat while a blob store takes a large upload: the peak of live heap bytes
//! during a 200 MiB append and its commit, measured by a counting allocator (this file is its
//! own test binary, with one test, so nothing else allocates meanwhile).
//! Runs on the filesystem store always and on S3 when `BERTH_TEST_S3_ENDPOINT` is set.

use crate::common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use berth::storage::fs::FsBlobStore;
use berth::storage::s3::{S3BlobStore, PART_SIZE, READ_AHEAD_BYTES};
use berth::storage::{BlobStore, ByteStream, UploadId};
use bytes::Bytes;
use futures::StreamExt;
use oci::Algorithm;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1024 * 1024;
const TOTAL: usize = 200 * MIB;
const CHUNK: usize = 64 * 1024;

/// 200 MiB made chunk by chunk as the store reads them (never all in memory).
fn big_body() -> ByteStream {
    futures::stream::unfold(0usize, |sent| async move {
        (sent < TOTAL).then(|| {
            let n = CHUNK.min(TOTAL - sent);
            let chunk = Bytes::from(vec![(sent / CHUNK) as u8; n]);
            (Ok(chunk), sent + n)
        })
    })
    .boxed()
}

fn expected_digest() -> oci::Digest {
    let mut hasher = Algorithm::Sha256.hasher();
    let mut sent = 0;
    while sent < TOTAL {
        let n = CHUNK.min(TOTAL - sent);
        hasher.update(&vec![(sent / CHUNK) as u8; n]);
        sent += n;
    }
    hasher.finish()
}

/// Uploads and commits 200 MiB, then reads it back within `read_bound` bytes of live heap;
/// returns the peak of live heap bytes above the start during the upload.
async fn peak_during_upload(store: &dyn BlobStore, read_bound: usize) -> usize {
    let digest = expected_digest();
    let id = UploadId::generate();
    store.create_upload(&id).await.unwrap();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let appended = store
        .append_upload(&id, 0, None, Algorithm::Sha256.hasher(), big_body())
        .await
        .expect("append");
    assert_eq!(appended.len, TOTAL as u64);
    assert_eq!(appended.hasher.finish(), digest);
    store
        .commit_upload(&id, appended.len, appended.progress.clone(), &digest)
        .await
        .expect("commit");
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(
        store.stat(&digest).await.unwrap().unwrap().size,
        TOTAL as u64
    );
    // Reading it back streams too.
    let mut stream = store.open(&digest, None).await.unwrap();
    let mut hasher = Algorithm::Sha256.hasher();
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let read_base = LIVE.load(Ordering::Relaxed);
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk.unwrap());
    }
    assert_eq!(hasher.finish(), digest);
    let read_peak = PEAK.load(Ordering::Relaxed) - read_base;
    println!("read back 200 MiB with a peak of {} KiB", read_peak / 1024);
    assert!(read_peak < read_bound, "reading used {read_peak} bytes");
    store.delete_upload(&id, appended.progress).await.unwrap();
    store.delete_blob(&digest).await.unwrap();
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_during_a_200_mib_upload() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsBlobStore::open(dir.path()).unwrap();
    let peak = peak_during_upload(&fs, 16 * MIB).await;
    println!(
        "fs: 200 MiB upload with a peak of {} KiB live heap",
        peak / 1024
    );
    assert!(peak < 16 * MIB, "fs upload used {peak} bytes");

    let prefix = format!("memory/{}", uuid::Uuid::new_v4().simple());
    let Some(settings) = common::s3_under_test(&prefix) else {
        println!(
            "S3 memory test not run: {} is not set",
            common::TEST_S3_ENDPOINT_ENV
        );
        return;
    };
    let s3: Arc<dyn BlobStore> = Arc::new(S3BlobStore::connect(&settings).await.unwrap());
    // Reading ahead holds its parts (a fixed amount, whatever the blob's size), plus the
    // receive buffers of its five connections and the chunks they split into (measured up to
    // 9 MiB above the parts).
    let read_bound = READ_AHEAD_BYTES as usize + 16 * MIB;
    let peak = peak_during_upload(&*s3, read_bound).await;
    println!(
        "s3: 200 MiB upload with a peak of {} KiB live heap ({} MiB parts)",
        peak / 1024,
        PART_SIZE / MIB as u64
    );
    // One part at a time, plus a received chunk and the client's buffers.
    assert!(peak < 2 * PART_SIZE as usize, "S3 upload used {peak} bytes");
}
