//! Crash cycles: concurrent pushes, `kill -9` at a random moment, restart, verify.
//!
//! A ledger records what berth acknowledged (a 201 or 202 received) and what was in flight
//! when it died. After each restart:
//! - every acknowledged blob and manifest must be served with exactly its bytes;
//! - anything in flight may be absent, but if served it must be exactly right;
//! - a tag must name its last acknowledged manifest or the one being pushed when berth died;
//! - an interrupted chunked upload must report the bytes it acknowledged (or those plus the
//!   chunk in flight, appends being all-or-nothing), or be unknown; it is then finished;
//! - no temporary file may remain in the data directory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::content::{self, sha256};
use crate::registry::{Answer, Failure, Registry};
use crate::server::{self, Launcher};
use crate::ServerArgs;

#[derive(clap::Args)]
pub struct CrashArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// How many kill -9 and restart cycles to run.
    #[arg(long, default_value_t = 10)]
    cycles: u32,
    /// Concurrent pushing clients.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// The longest a cycle's workload runs before the kill, in milliseconds (the kill comes
    /// at a uniformly random moment up to this).
    #[arg(long, default_value_t = 2500)]
    max_kill_ms: u64,
    /// Verify every object, not only the new ones and a sample, every this many cycles (and
    /// always after the last).
    #[arg(long, default_value_t = 25)]
    full_every: u32,
}

/// Shared layers every worker pushes into its own repository, so pushes of one digest race.
const SHARED_LAYERS: u64 = 12;
const SAMPLE: usize = 150;

/// What berth answered, or was being asked, about each object.
#[derive(Default)]
struct Ledger {
    /// (repo, digest) -> size, acknowledged.
    blobs: BTreeMap<(String, String), u64>,
    /// (repo, digest) -> size, in flight when berth died.
    blobs_in_flight: BTreeMap<(String, String), u64>,
    /// (repo, digest) -> bytes, acknowledged.
    manifests: BTreeMap<(String, String), Bytes>,
    /// (repo, digest) -> bytes, in flight.
    manifests_in_flight: BTreeMap<(String, String), Bytes>,
    /// (repo, tag) -> its state.
    tags: BTreeMap<(String, String), TagState>,
    /// Chunked uploads not finished (or not known to be).
    uploads: HashMap<u64, OpenUpload>,
    next_upload: u64,
    /// Keys acknowledged since the last verification, checked in full after the restart.
    fresh: Vec<Key>,
}

#[derive(Clone)]
enum Key {
    Blob(String, String),
    Manifest(String, String),
}

#[derive(Default, Clone)]
struct TagState {
    acked: Option<String>,
    /// Digests pushed under the tag whose answer never came.
    pending: Vec<String>,
}

#[derive(Clone)]
struct OpenUpload {
    repo: String,
    session: String,
    data: Bytes,
    acked: u64,
    /// The length of a chunk sent but not acknowledged.
    in_flight: Option<u64>,
    finishing: bool,
}

/// Results of the whole run.
#[derive(Default)]
struct Totals {
    acked_blobs: u64,
    acked_manifests: u64,
    tag_moves: u64,
    mounts: u64,
    violations: Vec<String>,
    verified_blobs: u64,
    verified_manifests: u64,
    in_flight_found: u64,
    in_flight_absent: u64,
    uploads_resumed: u64,
    uploads_finished_at_kill: u64,
    uploads_unknown: u64,
    temporary_before_restart: u64,
    kill_moments_ms: Vec<u64>,
    unexpected_answers: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

pub async fn run(args: CrashArgs) -> anyhow::Result<bool> {
    let (work, keep) = server::work_dir(&args.server, "crash")?;
    let launcher = Launcher::new(&args.server, &work)?;
    let seed = args.server.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    println!(
        "crash: {} cycles, {} workers, kill within {} ms, seed {seed}, work dir {}",
        args.cycles,
        args.workers,
        args.max_kill_ms,
        work.display()
    );
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    let mut totals = Totals::default();
    let started = Instant::now();

    for cycle in 1..=args.cycles {
        let berth = launcher.start().await?;
        let client = Registry::basic(&berth.base, "admin", &berth.password);
        let leftovers = server::temporary_files(&launcher.data_dir);
        for path in &leftovers {
            totals.violations.push(format!(
                "temporary file left after start: {}",
                path.display()
            ));
        }
        if cycle > 1 {
            let full = (cycle - 1) % args.full_every == 0;
            check_after_restart(&client, &ledger, &mut totals, &mut rng, full).await;
        }
        let kill_after = Duration::from_millis(rng.gen_range(50..=args.max_kill_ms.max(51)));
        totals.kill_moments_ms.push(kill_after.as_millis() as u64);
        let workers: Vec<_> = (0..args.workers)
            .map(|w| {
                let client = Registry::basic(&berth.base, "admin", &berth.password);
                let ledger = ledger.clone();
                let seed = rng.gen::<u64>();
                tokio::spawn(worker(client, ledger, w, args.workers, cycle, seed))
            })
            .collect();
        tokio::time::sleep(kill_after).await;
        berth.kill9().await;
        for w in workers {
            match tokio::time::timeout(Duration::from_secs(60), w).await {
                Ok(Ok(report)) => {
                    totals.acked_blobs += report.blobs;
                    totals.acked_manifests += report.manifests;
                    totals.tag_moves += report.tag_moves;
                    totals.mounts += report.mounts;
                    totals.unexpected_answers.extend(report.unexpected);
                }
                Ok(Err(e)) => totals.violations.push(format!("a worker panicked: {e}")),
                Err(_) => totals
                    .violations
                    .push("a worker did not stop within 60 s of the kill".into()),
            }
        }
        totals.temporary_before_restart += server::temporary_files(&launcher.data_dir).len() as u64;
        let l = ledger.lock().unwrap();
        println!(
            "cycle {cycle}/{}: killed after {} ms; acknowledged so far: {} blobs, {} manifests; {} uploads open; {} problems",
            args.cycles,
            kill_after.as_millis(),
            l.blobs.len(),
            l.manifests.len(),
            l.uploads.len(),
            totals.violations.len() + totals.unexpected_answers.len(),
        );
    }

    // The last restart, verified in full.
    let berth = launcher.start().await?;
    let client = Registry::basic(&berth.base, "admin", &berth.password);
    for path in server::temporary_files(&launcher.data_dir) {
        totals.violations.push(format!(
            "temporary file left after start: {}",
            path.display()
        ));
    }
    check_after_restart(&client, &ledger, &mut totals, &mut rng, true).await;
    let stopped_cleanly = berth.stop().await?;
    if !stopped_cleanly {
        totals
            .violations
            .push("berth did not exit cleanly on SIGTERM".into());
    }

    let l = ledger.lock().unwrap();
    let mut moments = totals.kill_moments_ms.clone();
    moments.sort_unstable();
    println!();
    println!(
        "crash summary (seed {seed}, {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    println!("  cycles:                      {}", args.cycles);
    println!(
        "  kill moments:                {} to {} ms after start (median {} ms)",
        moments.first().unwrap_or(&0),
        moments.last().unwrap_or(&0),
        moments.get(moments.len() / 2).unwrap_or(&0)
    );
    println!(
        "  acknowledged pushes:         {} blobs, {} manifests ({} tag moves, {} mounts)",
        totals.acked_blobs, totals.acked_manifests, totals.tag_moves, totals.mounts
    );
    println!(
        "  objects held at the end:     {} blobs, {} manifests, {} tags",
        l.blobs.len(),
        l.manifests.len(),
        l.tags.len()
    );
    println!(
        "  verifications:               {} blob reads, {} manifest reads",
        totals.verified_blobs, totals.verified_manifests
    );
    println!(
        "  in flight at a kill:         {} found complete and correct, {} absent",
        totals.in_flight_found, totals.in_flight_absent
    );
    println!(
        "  interrupted chunked uploads: {} resumed and finished, {} had finished as berth died, {} unknown after restart",
        totals.uploads_resumed, totals.uploads_finished_at_kill, totals.uploads_unknown
    );
    println!(
        "  temporary files:             {} present after kills, 0 allowed after start ({} found)",
        totals.temporary_before_restart,
        totals
            .violations
            .iter()
            .filter(|v| v.starts_with("temporary"))
            .count()
    );
    println!(
        "  corrupt or lost objects:     {}",
        totals
            .violations
            .iter()
            .filter(|v| v.starts_with("corrupt") || v.starts_with("lost"))
            .count()
    );
    println!(
        "  unexpected answers:          {}",
        totals.unexpected_answers.len()
    );
    let problems: Vec<&String> = totals
        .violations
        .iter()
        .chain(totals.unexpected_answers.iter())
        .collect();
    for p in problems.iter().take(30) {
        println!("  PROBLEM: {p}");
    }
    let ok = problems.is_empty();
    println!("crash: {}", if ok { "PASSED" } else { "FAILED" });
    if ok && !keep {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!(
            "work dir kept: {} (berth log: {})",
            work.display(),
            launcher.log_path().display()
        );
    }
    Ok(ok)
}

// ---------------------------------------------------------------------------------------------
// After a restart

async fn check_after_restart(
    client: &Registry,
    ledger: &Shared,
    totals: &mut Totals,
    rng: &mut StdRng,
    full: bool,
) {
    if let Err(e) = check(client, ledger, totals, rng, full).await {
        totals
            .violations
            .push(format!("verification could not finish: {e}"));
    }
}

async fn check(
    client: &Registry,
    ledger: &Shared,
    totals: &mut Totals,
    rng: &mut StdRng,
    full: bool,
) -> Answer<()> {
    // Objects in flight at the kill: absent, or exactly right (and then kept from now on).
    let (blobs_in_flight, manifests_in_flight) = {
        let mut l = ledger.lock().unwrap();
        (
            std::mem::take(&mut l.blobs_in_flight),
            std::mem::take(&mut l.manifests_in_flight),
        )
    };
    for ((repo, digest), size) in blobs_in_flight {
        totals.verified_blobs += 1;
        match client.get_blob(&repo, &digest).await? {
            None => totals.in_flight_absent += 1,
            Some(served) if served.digest == digest && served.len == size => {
                totals.in_flight_found += 1;
                ledger.lock().unwrap().blobs.insert((repo, digest), size);
            }
            Some(served) => totals.violations.push(format!(
                "corrupt blob {repo}@{digest} (in flight at the kill): served {} bytes hashing to {}",
                served.len, served.digest
            )),
        }
    }
    for ((repo, digest), bytes) in manifests_in_flight {
        totals.verified_manifests += 1;
        match client.get_manifest(&repo, &digest).await? {
            None => totals.in_flight_absent += 1,
            Some(served) if served == bytes => {
                totals.in_flight_found += 1;
                ledger
                    .lock()
                    .unwrap()
                    .manifests
                    .insert((repo, digest), bytes);
            }
            Some(_) => totals.violations.push(format!(
                "corrupt manifest {repo}@{digest} (in flight at the kill): other bytes served"
            )),
        }
    }

    // Interrupted uploads: they report what they acknowledged, and finish.
    let uploads: Vec<(u64, OpenUpload)> = ledger.lock().unwrap().uploads.drain().collect();
    for (_, u) in uploads {
        let digest = sha256(&u.data);
        match client.upload_offset(&u.session).await? {
            None => {
                // Finished before the kill (the answer lost), or unknown: either way the blob
                // must not be served wrong; it is re-pushed in full if absent.
                let present = client.get_blob(&u.repo, &digest).await?;
                if u.finishing && present.is_some() {
                    totals.uploads_finished_at_kill += 1;
                } else {
                    totals.uploads_unknown += 1;
                }
                if let Some(served) = &present {
                    if served.digest != digest || served.len != u.data.len() as u64 {
                        totals.violations.push(format!(
                            "corrupt blob {}@{digest} after an interrupted upload",
                            u.repo
                        ));
                    }
                }
                if present.is_none() {
                    client.push_blob(&u.repo, &u.data, 256 * 1024).await?;
                }
            }
            Some(offset) => {
                let allowed =
                    offset == u.acked || u.in_flight.is_some_and(|n| offset == u.acked + n);
                if !allowed {
                    totals.violations.push(format!(
                        "lost upload bytes: session in {} holds {offset} bytes, acknowledged {}{}",
                        u.repo,
                        u.acked,
                        u.in_flight
                            .map(|n| format!(" (+{n} in flight)"))
                            .unwrap_or_default()
                    ));
                    continue;
                }
                let mut session = u.session.clone();
                if offset < u.data.len() as u64 {
                    let rest = u.data.slice(offset as usize..);
                    session = client.patch(&session, offset, &rest).await?;
                }
                client.finish(&session, &digest).await?;
                totals.uploads_resumed += 1;
            }
        }
        let mut l = ledger.lock().unwrap();
        l.blobs
            .insert((u.repo.clone(), digest.clone()), u.data.len() as u64);
        l.fresh.push(Key::Blob(u.repo, digest));
    }

    // Tags: the last acknowledged manifest, or one whose push was cut off.
    let tags: Vec<((String, String), TagState)> = ledger
        .lock()
        .unwrap()
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for ((repo, tag), state) in tags {
        totals.verified_manifests += 1;
        let served = client.get_manifest(&repo, &tag).await?;
        let now = served.as_ref().map(|b| sha256(b));
        let allowed = match &now {
            None => state.acked.is_none(),
            Some(d) => state.acked.as_ref() == Some(d) || state.pending.contains(d),
        };
        if !allowed {
            totals.violations.push(format!(
                "lost tag {repo}:{tag}: serves {:?}, acknowledged {:?} (pending {:?})",
                now, state.acked, state.pending
            ));
        }
        let mut l = ledger.lock().unwrap();
        if let (Some(d), Some(bytes)) = (&now, served) {
            if !l.manifests.contains_key(&(repo.clone(), d.clone())) && state.pending.contains(d) {
                l.manifests.insert((repo.clone(), d.clone()), bytes);
            }
        }
        let entry = l.tags.entry((repo, tag)).or_default();
        entry.pending.clear();
        if now.is_some() {
            entry.acked = now;
        }
    }

    // Acknowledged objects: the fresh ones, and all or a sample of the rest.
    let keys: Vec<Key> = {
        let mut l = ledger.lock().unwrap();
        let mut keys = std::mem::take(&mut l.fresh);
        if full {
            keys = l
                .blobs
                .keys()
                .map(|(r, d)| Key::Blob(r.clone(), d.clone()))
                .chain(
                    l.manifests
                        .keys()
                        .map(|(r, d)| Key::Manifest(r.clone(), d.clone())),
                )
                .collect();
        } else {
            let blobs: Vec<_> = l.blobs.keys().collect();
            let manifests: Vec<_> = l.manifests.keys().collect();
            for (r, d) in blobs.choose_multiple(rng, SAMPLE) {
                keys.push(Key::Blob(r.clone(), d.clone()));
            }
            for (r, d) in manifests.choose_multiple(rng, SAMPLE) {
                keys.push(Key::Manifest(r.clone(), d.clone()));
            }
        }
        keys
    };
    for key in keys {
        match key {
            Key::Blob(repo, digest) => {
                let size = ledger
                    .lock()
                    .unwrap()
                    .blobs
                    .get(&(repo.clone(), digest.clone()))
                    .copied();
                let Some(size) = size else { continue };
                totals.verified_blobs += 1;
                match client.get_blob(&repo, &digest).await? {
                    None => totals.violations.push(format!(
                        "lost blob {repo}@{digest} ({size} bytes, acknowledged)"
                    )),
                    Some(s) if s.digest == digest && s.len == size => {}
                    Some(s) => totals.violations.push(format!(
                        "corrupt blob {repo}@{digest}: served {} bytes hashing to {}",
                        s.len, s.digest
                    )),
                }
            }
            Key::Manifest(repo, digest) => {
                let bytes = ledger
                    .lock()
                    .unwrap()
                    .manifests
                    .get(&(repo.clone(), digest.clone()))
                    .cloned();
                let Some(bytes) = bytes else { continue };
                totals.verified_manifests += 1;
                match client.get_manifest(&repo, &digest).await? {
                    None => totals
                        .violations
                        .push(format!("lost manifest {repo}@{digest} (acknowledged)")),
                    Some(served) if served == bytes => {}
                    Some(_) => totals.violations.push(format!(
                        "corrupt manifest {repo}@{digest}: other bytes served"
                    )),
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The workload

#[derive(Default)]
struct WorkerReport {
    blobs: u64,
    manifests: u64,
    tag_moves: u64,
    mounts: u64,
    unexpected: Vec<String>,
}

struct Worker {
    client: Registry,
    ledger: Shared,
    repo: String,
    peers: usize,
    rng: StdRng,
    report: WorkerReport,
    /// This worker's tags and the manifests it may move them to: (digest, bytes, media type).
    images: Vec<(String, Bytes, &'static str)>,
    next_seed: u64,
}

async fn worker(
    client: Registry,
    ledger: Shared,
    index: usize,
    peers: usize,
    cycle: u32,
    seed: u64,
) -> WorkerReport {
    let repo = format!("torture/w{index}");
    let images = {
        let l = ledger.lock().unwrap();
        l.manifests
            .iter()
            .filter(|((r, _), _)| *r == repo)
            .map(|((_, d), b)| {
                let is_index = serde_json::from_slice::<serde_json::Value>(b)
                    .map(|v| v["mediaType"] == content::OCI_INDEX)
                    .unwrap_or(false);
                let media_type = if is_index {
                    content::OCI_INDEX
                } else {
                    content::OCI_MANIFEST
                };
                (d.clone(), b.clone(), media_type)
            })
            .collect()
    };
    let mut w = Worker {
        client,
        ledger,
        repo,
        peers,
        rng: StdRng::seed_from_u64(seed),
        report: WorkerReport::default(),
        images,
        next_seed: (u64::from(cycle) << 40) | ((index as u64) << 32),
    };
    loop {
        let roll = w.rng.gen_range(0..100);
        let result = match roll {
            0..=49 => w.push_image().await,
            50..=64 => w.move_tag().await,
            65..=74 => w.push_index().await,
            75..=84 => w.mount_from_peer().await,
            _ => w.chunked_blob(true).await.map(|_| ()),
        };
        match result {
            Ok(()) => {}
            // berth was killed: this cycle's work is over.
            Err(Failure::Gone(_)) => break,
            Err(wrong @ Failure::Wrong { .. }) => {
                w.report.unexpected.push(wrong.to_string());
                if w.report.unexpected.len() > 20 {
                    break;
                }
            }
        }
    }
    w.report
}

impl Worker {
    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        self.next_seed
    }

    /// Pushes a blob in one POST, recording it in flight until acknowledged.
    async fn monolithic(&mut self, data: &Bytes) -> Answer<(String, usize)> {
        let digest = sha256(data);
        let key = (self.repo.clone(), digest.clone());
        self.ledger
            .lock()
            .unwrap()
            .blobs_in_flight
            .insert(key.clone(), data.len() as u64);
        let piece = *[16 * 1024, 64 * 1024, 1024 * 1024]
            .choose(&mut self.rng)
            .unwrap();
        self.client.push_blob(&self.repo, data, piece).await?;
        self.acked_blob(key, data.len() as u64);
        Ok((digest, data.len()))
    }

    fn acked_blob(&mut self, key: (String, String), size: u64) {
        let mut l = self.ledger.lock().unwrap();
        l.blobs_in_flight.remove(&key);
        l.blobs.insert(key.clone(), size);
        l.fresh.push(Key::Blob(key.0, key.1));
        self.report.blobs += 1;
    }

    /// Pushes a blob in chunks, recording the session and each acknowledged chunk.
    async fn chunked_blob(&mut self, large: bool) -> Answer<(String, usize)> {
        let seed = self.seed();
        let size = content::layer_size(&mut self.rng, large).max(2);
        let data = content::bytes(seed, size);
        self.chunked(data).await
    }

    async fn chunked(&mut self, data: Bytes) -> Answer<(String, usize)> {
        let digest = sha256(&data);
        let session = self.client.start_upload(&self.repo).await?;
        let id = {
            let mut l = self.ledger.lock().unwrap();
            l.next_upload += 1;
            let id = l.next_upload;
            l.uploads.insert(
                id,
                OpenUpload {
                    repo: self.repo.clone(),
                    session: session.clone(),
                    data: data.clone(),
                    acked: 0,
                    in_flight: None,
                    finishing: false,
                },
            );
            id
        };
        let chunk = self.rng.gen_range(32 * 1024..=512 * 1024).max(2);
        let mut session = session;
        let mut offset = 0usize;
        while offset < data.len() {
            let end = (offset + chunk).min(data.len());
            // A final one-byte chunk would be ambiguous in berth's `0-0` Range answer.
            let end = if data.len() - end == 1 {
                data.len()
            } else {
                end
            };
            self.ledger
                .lock()
                .unwrap()
                .uploads
                .get_mut(&id)
                .unwrap()
                .in_flight = Some((end - offset) as u64);
            session = self
                .client
                .patch(&session, offset as u64, &data.slice(offset..end))
                .await?;
            offset = end;
            let mut l = self.ledger.lock().unwrap();
            let u = l.uploads.get_mut(&id).unwrap();
            u.acked = offset as u64;
            u.in_flight = None;
            u.session = session.clone();
        }
        self.ledger
            .lock()
            .unwrap()
            .uploads
            .get_mut(&id)
            .unwrap()
            .finishing = true;
        self.client.finish(&session, &digest).await?;
        self.ledger.lock().unwrap().uploads.remove(&id);
        self.acked_blob((self.repo.clone(), digest.clone()), data.len() as u64);
        Ok((digest, data.len()))
    }

    async fn layer(&mut self) -> Answer<(String, usize)> {
        if self.rng.gen_bool(0.4) {
            // A shared layer: every worker pushes the same bytes into its own repository.
            let n = self.rng.gen_range(0..SHARED_LAYERS);
            let data = content::bytes(u64::MAX - n, 8 * 1024 + (n as usize) * 20_000);
            return self.monolithic(&data).await;
        }
        if self.rng.gen_bool(0.35) {
            return self.chunked_blob(false).await;
        }
        let seed = self.seed();
        let size = content::layer_size(&mut self.rng, false);
        self.monolithic(&content::bytes(seed, size)).await
    }

    async fn put_manifest(
        &mut self,
        tag: Option<String>,
        bytes: Bytes,
        media_type: &'static str,
    ) -> Answer<()> {
        let digest = sha256(&bytes);
        let key = (self.repo.clone(), digest.clone());
        {
            let mut l = self.ledger.lock().unwrap();
            if !l.manifests.contains_key(&key) {
                l.manifests_in_flight.insert(key.clone(), bytes.clone());
            }
            if let Some(tag) = &tag {
                l.tags
                    .entry((self.repo.clone(), tag.clone()))
                    .or_default()
                    .pending
                    .push(digest.clone());
            }
        }
        let reference = tag.clone().unwrap_or_else(|| digest.clone());
        self.client
            .put_manifest(&self.repo, &reference, media_type, &bytes)
            .await?;
        let mut l = self.ledger.lock().unwrap();
        l.manifests_in_flight.remove(&key);
        if l.manifests.insert(key.clone(), bytes.clone()).is_none() {
            l.fresh.push(Key::Manifest(key.0.clone(), key.1.clone()));
        }
        if let Some(tag) = tag {
            let state = l.tags.entry((self.repo.clone(), tag)).or_default();
            state.pending.clear();
            state.acked = Some(digest.clone());
        }
        drop(l);
        self.report.manifests += 1;
        if !self.images.iter().any(|(d, _, _)| *d == digest) {
            self.images.push((digest, bytes, media_type));
        }
        Ok(())
    }

    async fn push_image(&mut self) -> Answer<()> {
        let seed = self.seed();
        let config = content::config(seed);
        let (config_digest, config_size) = self.monolithic(&config).await?;
        let mut layers = Vec::new();
        for _ in 0..self.rng.gen_range(1..=3) {
            layers.push(self.layer().await?);
        }
        let manifest = Bytes::from(content::image_manifest(
            (&config_digest, config_size),
            &layers,
        ));
        let tag = format!("t{}", self.rng.gen_range(0..40));
        self.put_manifest(Some(tag), manifest, content::OCI_MANIFEST)
            .await
    }

    async fn move_tag(&mut self) -> Answer<()> {
        let Some((_, bytes, media_type)) = self.images.choose(&mut self.rng).cloned() else {
            return self.push_image().await;
        };
        let tag = format!("t{}", self.rng.gen_range(0..40));
        self.report.tag_moves += 1;
        self.put_manifest(Some(tag), bytes, media_type).await
    }

    async fn push_index(&mut self) -> Answer<()> {
        let children: Vec<(String, usize)> = self
            .images
            .iter()
            .filter(|(_, _, t)| *t == content::OCI_MANIFEST)
            .map(|(d, b, _)| (d.clone(), b.len()))
            .collect::<Vec<_>>()
            .choose_multiple(&mut self.rng, 2)
            .cloned()
            .collect();
        if children.len() < 2 {
            return self.push_image().await;
        }
        let index = Bytes::from(content::image_index(&children));
        let tag = if self.rng.gen_bool(0.7) {
            Some(format!("i{}", self.rng.gen_range(0..10)))
        } else {
            None
        };
        self.put_manifest(tag, index, content::OCI_INDEX).await
    }

    async fn mount_from_peer(&mut self) -> Answer<()> {
        let peer = format!("torture/w{}", self.rng.gen_range(0..self.peers));
        let candidate = {
            let l = self.ledger.lock().unwrap();
            let theirs: Vec<_> = l
                .blobs
                .iter()
                .filter(|((r, d), _)| {
                    *r == peer && !l.blobs.contains_key(&(self.repo.clone(), d.clone()))
                })
                .map(|((_, d), s)| (d.clone(), *s))
                .take(64)
                .collect();
            theirs.choose(&mut self.rng).cloned()
        };
        let Some((digest, size)) = candidate else {
            return self.push_image().await;
        };
        let key = (self.repo.clone(), digest.clone());
        self.ledger
            .lock()
            .unwrap()
            .blobs_in_flight
            .insert(key.clone(), size);
        if self.client.mount(&self.repo, &peer, &digest).await? {
            self.report.mounts += 1;
            self.acked_blob(key, size);
        } else {
            // berth answers 202 only if it does not hold the blob in `peer`: a lost blob.
            self.ledger.lock().unwrap().blobs_in_flight.remove(&key);
            self.report.unexpected.push(format!(
                "mount of {digest} from {peer} was refused although acknowledged there"
            ));
        }
        Ok(())
    }
}
