//! Garbage collection racing continuous pushes through two replicas: nothing that was tagged
//! is lost, and orphans are gone afterwards.
//!
//! `BERTH_GC_RACE_SECONDS` sets how long the pushes and collections race (default 8; the soak
//! run in the README uses 600).

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::config::Settings;
use berth::gc::GcSettings;
use common::*;
use futures::StreamExt;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const PUSHERS: u64 = 6;
const TAGS_PER_PUSHER: u64 = 3;
const SHARED_LAYERS: u8 = 4;

fn race_duration() -> Duration {
    let seconds = std::env::var("BERTH_GC_RACE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    Duration::from_secs(seconds)
}

/// What a tag must show at the end: its manifest and every blob with its bytes.
#[derive(Clone)]
struct Pushed {
    manifest: String,
    blobs: Vec<(String, Vec<u8>)>,
}

/// Pushes a blob through `via`: in one request, or chunked with the upload started on
/// `via` and finished on `other` (any replica continues any upload).
async fn push_blob_via(
    via: &TestServer,
    other: &TestServer,
    repo: &str,
    bytes: &[u8],
    chunked: bool,
) -> String {
    if !chunked {
        return via.push(repo, bytes).await;
    }
    let digest = sha256(bytes);
    let location = via.upload(repo).await;
    let half = bytes.len() / 2;
    let r = via
        .patch(&location, Some(&format!("0-{}", half - 1)), &bytes[..half])
        .await;
    assert_eq!(
        r.status(),
        202,
        "first chunk: {}",
        r.text().await.unwrap_or_default()
    );
    let location = header(&r, "location").to_string();
    let r = other.close(&location, &digest, &bytes[half..]).await;
    assert_eq!(
        r.status(),
        201,
        "finish on the other replica: {}",
        r.text().await.unwrap_or_default()
    );
    digest
}

async fn push_one(a: &TestServer, b: &TestServer, repo: &str, tag: &str, n: u64) -> Pushed {
    let (via, other) = if n.is_multiple_of(2) { (a, b) } else { (b, a) };
    let config = format!(r#"{{"architecture":"amd64","os":"linux","n":{n}}}"#).into_bytes();
    let shared = sample((n % u64::from(SHARED_LAYERS)) as u8, 40_000);
    let unique: Vec<u8> = sample((n % 251) as u8, 20_000 + (n as usize % 7) * 1000)
        .into_iter()
        .chain(n.to_le_bytes())
        .collect();
    let c = push_blob_via(via, other, repo, &config, false).await;
    let s = push_blob_via(via, other, repo, &shared, false).await;
    let u = push_blob_via(via, other, repo, &unique, n.is_multiple_of(3)).await;
    let manifest = image_manifest(
        (&c, config.len()),
        &[(&s, shared.len()), (&u, unique.len())],
    );
    let r = put_manifest(&other.client, &other.base, repo, tag, MANIFEST, &manifest).await;
    assert_eq!(
        r.status(),
        201,
        "manifest push: {}",
        r.text().await.unwrap_or_default()
    );
    Pushed {
        manifest: sha256(&manifest),
        blobs: vec![(c, config), (s, shared), (u, unique)],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_racing_pushes_on_two_replicas_loses_nothing_tagged() {
    let racing = GcSettings {
        grace: Duration::from_secs(2),
        tag_expiration: Duration::ZERO,
        ..GcSettings::default()
    };
    let settings = Settings {
        gc: racing.clone(),
        ..Settings::default()
    };
    let a = Arc::new(TestServer::start_with(settings).await);
    let b = Arc::new(a.replica().await);
    let deadline = Instant::now() + race_duration();
    let pushes = Arc::new(AtomicU64::new(0));

    let mut pushers = Vec::new();
    for p in 0..PUSHERS {
        let (a, b, pushes) = (a.clone(), b.clone(), pushes.clone());
        pushers.push(tokio::spawn(async move {
            let repo = format!("race/app{}", p % 2);
            let mut latest: BTreeMap<String, Pushed> = BTreeMap::new();
            let mut n = p;
            while Instant::now() < deadline {
                let tag = format!("p{p}-t{}", n % TAGS_PER_PUSHER);
                let pushed = push_one(&a, &b, &repo, &tag, n).await;
                latest.insert(tag, pushed);
                pushes.fetch_add(1, Ordering::Relaxed);
                n += PUSHERS;
            }
            (repo, latest)
        }));
    }
    let collectors = [a.collector().await, b.collector().await];
    let mut runs = 0u64;
    let mut collected = 0usize;
    while Instant::now() < deadline {
        let report = collectors[(runs % 2) as usize]
            .run(&racing, false, &|_| {})
            .await
            .expect("gc during pushes");
        collected += report.collected.len();
        runs += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut expected = Vec::new();
    for pusher in pushers {
        let (repo, latest) = pusher.await.expect("pusher");
        for (tag, pushed) in latest {
            expected.push((repo.clone(), tag, pushed));
        }
    }
    let total = pushes.load(Ordering::Relaxed);
    eprintln!("{total} pushes, {runs} collections deleting {collected} items while racing");
    assert!(
        total >= PUSHERS * 2 && runs >= 2,
        "the race ran: {total} pushes, {runs} runs"
    );
    assert!(collected > 0, "collections found garbage while racing");

    // Collect everything unreachable now, then check what tags show, through both replicas.
    let eager = GcSettings {
        grace: Duration::ZERO,
        tag_expiration: Duration::ZERO,
        ..GcSettings::default()
    };
    let report = collectors[0]
        .run(&eager, false, &|_| {})
        .await
        .expect("final gc");
    eprintln!("final collection: {}", report.summary());
    let mut referenced: HashSet<String> = HashSet::new();
    for (i, (repo, tag, pushed)) in expected.iter().enumerate() {
        let server = if i % 2 == 0 { &a } else { &b };
        let r = server
            .client
            .get(server.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("accept", MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{repo}:{tag}");
        assert_eq!(
            header(&r, "docker-content-digest"),
            pushed.manifest,
            "{repo}:{tag}"
        );
        for (digest, bytes) in &pushed.blobs {
            assert_eq!(
                &server.pull(repo, digest).await,
                bytes,
                "{repo}:{tag} blob {digest}"
            );
            referenced.insert(digest.clone());
        }
    }
    // Orphans are gone: storage holds exactly the blobs the tags reference.
    let blobs = berth::open_blob_store(a.data_dir(), a.settings())
        .await
        .unwrap();
    let stored: HashSet<String> = blobs
        .list_blobs()
        .map(|item| item.expect("list").0.to_string())
        .collect()
        .await;
    assert_eq!(
        stored, referenced,
        "storage holds exactly the tagged images' blobs"
    );
    let again = collectors[1].run(&eager, false, &|_| {}).await.unwrap();
    assert!(again.collected.is_empty(), "{}", again.summary());
}
