//! The bad-input corpus (issue 7): more than a thousand malformed or hostile requests across
//! every endpoint (the distribution API, the token endpoint, the management API and the
//! dashboard), generated deterministically from a fixed seed, plus raw-socket cases no HTTP
//! client sends (broken framing, huge heads, truncated, stalled and oversized bodies).
//!
//! Every case states its answer: for /v2 the exact status and OCI error code, elsewhere the
//! exact status and that surface's error format. The run asserts no panic, no 5xx, no dropped
//! connection, no unexpected answer, and no change to what is stored, comparing a snapshot of
//! the store (metadata, registry API and blob storage; see `fixture.rs`) after each category
//! with the one taken before the first. Afterwards the server must still push and pull.
//!
//! `BERTH_CORPUS_SEED` picks another corpus of the same shape; every seed must pass.

use crate::common;

#[path = "bad_input_corpus/cases.rs"]
mod cases;
#[path = "bad_input_corpus/fixture.rs"]
mod fixture;
#[path = "bad_input_corpus/gen_other.rs"]
mod gen_other;
#[path = "bad_input_corpus/gen_v2.rs"]
mod gen_v2;
#[path = "bad_input_corpus/raw.rs"]
mod raw;
#[path = "bad_input_corpus/wire.rs"]
mod wire;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::SeedableRng;

use cases::{Case, Gen, Setup};
use common::*;
use fixture::{diff, Fixture};

/// The corpus seed unless `BERTH_CORPUS_SEED` names another.
const SEED: u64 = 0x0be7_7007;
/// How long berth waits for body bytes in this test (the default is 60 s).
const IDLE: Duration = Duration::from_secs(2);
/// The manifest size limit in this test (the default is 4 MiB).
const MANIFEST_LIMIT: usize = 256 * 1024;
/// Requests in flight at once.
const PARALLEL: usize = 8;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics anywhere in this process, the in-process server's tasks included (their
/// panics would otherwise surface only as dropped connections).
fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

fn settings() -> berth::config::Settings {
    let mut s = berth::config::Settings {
        manifest_max_bytes: MANIFEST_LIMIT,
        body_idle_timeout: IDLE,
        ..Default::default()
    };
    // Junk credentials are many failed logins from one address; the limiter has its own tests.
    s.auth.login_failures_per_minute = 1_000_000;
    s.gc.enabled = false;
    s
}

/// The generated corpus, in category order.
fn generate(f: &Fixture, seed: u64) -> Vec<Vec<Case>> {
    type Generator = fn(&mut Gen);
    let generators: [Generator; 13] = [
        gen_v2::names,
        gen_v2::digests,
        gen_v2::references,
        gen_v2::listings,
        gen_v2::manifests,
        gen_v2::blobs,
        gen_v2::uploads,
        gen_v2::referrers,
        gen_v2::methods,
        gen_other::auth,
        gen_other::token,
        gen_other::manage,
        gen_other::ui,
    ];
    let mut g = Gen {
        rng: rand::rngs::StdRng::seed_from_u64(seed),
        f,
        cases: Vec::new(),
    };
    generators
        .iter()
        .map(|generate| {
            generate(&mut g);
            std::mem::take(&mut g.cases)
        })
        .collect()
}

/// Runs one case: its setup, its request, and the checks of its reply.
async fn run(f: &Fixture, case: &Case) -> Result<(), String> {
    let mut req = case.req.clone();
    if let Some(Setup::FreshUpload) = case.setup {
        let location = f.s.upload("seed/repo").await;
        let r = f.s.patch(&location, None, b"abc").await;
        if r.status() != 202 {
            return Err(format!("setup: PATCH answered {}", r.status()));
        }
        req.target = req.target.replace("{fresh}", &location);
    }
    let reply = wire::exchange(&f.addr, req.to_bytes(&f.addr)).await?;
    cases::check(case, &reply)
}

#[derive(Default)]
struct Tally {
    /// Category -> (cases, failures).
    counts: BTreeMap<&'static str, (usize, usize)>,
    failures: Vec<String>,
    server_errors: usize,
    dropped: usize,
    store_changes: Vec<String>,
}

impl Tally {
    fn record(&mut self, category: &'static str, what: String, result: Result<(), String>) {
        let entry = self.counts.entry(category).or_default();
        entry.0 += 1;
        if let Err(e) = result {
            entry.1 += 1;
            if e.starts_with("server error") {
                self.server_errors += 1;
            }
            if e.contains("without a reply") {
                self.dropped += 1;
            }
            self.failures.push(format!("{what}: {e}"));
        }
    }

    async fn compare(&mut self, f: &Fixture, before: &BTreeMap<String, String>, after: &str) {
        let changes = diff(before, &f.snapshot().await);
        self.store_changes
            .extend(changes.into_iter().map(|c| format!("after {after}: {c}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_hostile_requests_change_nothing() {
    count_panics();
    let seed = std::env::var("BERTH_CORPUS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let started = Instant::now();
    let f = Fixture::start(settings()).await;
    let before = f.snapshot().await;
    assert_eq!(
        before.get("meta uploads").map(|u| u.lines().count()),
        Some(2),
        "the fixture's two upload sessions"
    );
    let corpus = generate(&f, seed);
    let mut tally = Tally::default();
    for cases in &corpus {
        let Some(category) = cases.first().map(|c| c.category) else {
            continue;
        };
        let results: Vec<(String, &'static str, Result<(), String>)> = futures::stream::iter(cases)
            .map(|case| async { (case.describe(), case.category, run(&f, case).await) })
            .buffered(PARALLEL)
            .collect()
            .await;
        for (what, category, result) in results {
            tally.record(category, what, result);
        }
        tally.compare(&f, &before, category).await;
    }
    for (label, outcomes) in [
        ("http framing", raw::framing(&f).await),
        ("truncated bodies", raw::truncated(&f).await),
        ("slow bodies", raw::slow(&f, IDLE).await),
        ("huge bodies", raw::huge(&f, MANIFEST_LIMIT).await),
    ] {
        for o in outcomes {
            let what = format!("[{}] {}", o.category, o.what);
            tally.record(o.category, what, o.result);
        }
        tally.compare(&f, &before, label).await;
    }

    // The server is still whole: the seeded content reads back, and a push and pull work.
    let health = f.s.get("/v2/").await;
    assert_eq!(health.status(), 200, "GET /v2/ after the corpus");
    assert_eq!(f.s.pull("seed/repo", &f.blob).await, b"seed layer");
    let layer = sample(7, 4096);
    let digest = push_image(&f.s.client, &f.s.base, "after/corpus", "v1", &layer).await;
    let r =
        f.s.get(&format!("/v2/after/corpus/manifests/{digest}"))
            .await;
    assert_eq!(r.status(), 200, "pull the image pushed after the corpus");
    assert_eq!(f.s.pull("after/corpus", &sha256(&layer)).await, layer);

    let total: usize = tally.counts.values().map(|(n, _)| n).sum();
    println!(
        "bad-input corpus (seed {seed:#x}): {total} cases in {:.1?}",
        started.elapsed()
    );
    for (category, (n, failed)) in &tally.counts {
        println!("  {category:<18} {n:>5} cases, {failed} failed");
    }
    for failure in tally.failures.iter().take(60) {
        println!("FAILED {failure}");
    }
    for change in tally.store_changes.iter().take(60) {
        println!("STORE CHANGED {change}");
    }
    let panics = PANICS.load(Ordering::SeqCst);
    assert!(total >= 1000, "only {total} cases");
    assert_eq!(panics, 0, "panics during the corpus");
    assert_eq!(tally.server_errors, 0, "5xx replies");
    assert_eq!(tally.dropped, 0, "connections dropped without a reply");
    assert!(
        tally.failures.is_empty(),
        "{} unexpected answers",
        tally.failures.len()
    );
    assert!(
        tally.store_changes.is_empty(),
        "{} store changes",
        tally.store_changes.len()
    );
}

/// A refused first push by a superuser into a namespace that does not exist yet leaves the
/// organization that the push created for it (the repository itself is removed). Known and
/// not fixed yet: removing the namespace safely needs an "organization is empty" check in both
/// metadata backends.
#[tokio::test]
#[ignore = "berth keeps the organization a refused first push created"]
async fn a_refused_first_push_into_a_new_namespace_leaves_no_organization() {
    let s = TestServer::start().await;
    let r = put_manifest(
        &s.client,
        &s.base,
        "brandnew/repo",
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        b"{not json",
    )
    .await;
    assert_eq!(r.status(), 400);
    let store = s.metadata_store().await;
    assert_eq!(store.account("brandnew").await.expect("lookup"), None);
}
