//! The soak: many concurrent clients, each logged in through the token flow with its own
//! connections, mixing pushes and pulls for a while. Every answer is checked (pulled bytes
//! hash to their digest); the run fails on any error, or when berth's resident memory grows
//! over the run instead of staying flat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::content::{self, sha256};
use crate::registry::{Answer, Failure, Registry};
use crate::server::{self, Launcher, Usage};
use crate::ServerArgs;

#[derive(clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// How long the load runs (e.g. 30s, 10m).
    #[arg(long, default_value = "10m", value_parser = crate::parse_duration)]
    duration: Duration,
    /// Concurrent clients, each with its own connections and token.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Repositories the clients share.
    #[arg(long, default_value_t = 20)]
    repos: usize,
    /// Percent of operations that push an image (the rest pull one).
    #[arg(long, default_value_t = 25)]
    push_percent: u32,
    /// Drive a registry that is already running at this URL instead of starting berth.
    #[arg(long, requires_all = ["user", "password"])]
    url: Option<String>,
    /// With --url: the process whose memory to watch.
    #[arg(long)]
    pid: Option<u32>,
    /// With --url: the account to log in as.
    #[arg(long)]
    user: Option<String>,
    /// With --url: its password.
    #[arg(long)]
    password: Option<String>,
    /// Memory is flat when the resident size at the end is at most this many percent above
    /// the size once warmed up (a fifth of the way in), plus 32 MiB for allocator slack.
    #[arg(long, default_value_t = 25)]
    max_growth_percent: u64,
}

/// An image some client pushed, for others to pull.
#[derive(Clone)]
struct Image {
    repo: String,
    tag: String,
    manifest: String,
    blobs: Vec<(String, u64)>,
}

/// What all clients saw.
#[derive(Default)]
struct Tally {
    pushes: AtomicU64,
    pulls: AtomicU64,
    heads: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    /// Latencies in microseconds, by operation.
    push_us: Mutex<Vec<u32>>,
    pull_us: Mutex<Vec<u32>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 20 {
            first.push(what);
        }
    }
}

/// Layers many images share, as base layers do.
const SHARED: u64 = 16;
/// How many recent images pulls choose from.
const RECENT: usize = 4096;

pub async fn run(args: SoakArgs) -> anyhow::Result<bool> {
    let (work, keep) = server::work_dir(&args.server, "soak")?;
    let seed = args.server.seed.unwrap_or_else(rand::random);
    let (berth, base, user, password, pid) = match &args.url {
        Some(url) => (
            None,
            url.clone(),
            args.user.clone().unwrap_or_default(),
            args.password.clone().unwrap_or_default(),
            args.pid,
        ),
        None => {
            let launcher = Launcher::new(&args.server, &work)?;
            let berth = launcher.start().await?;
            let (base, password, pid) = (berth.base.clone(), berth.password.clone(), berth.pid());
            (Some(berth), base, "admin".to_string(), password, Some(pid))
        }
    };
    println!(
        "soak: {} clients for {:?} against {base}, {}% pushes, {} repositories, seed {seed}",
        args.clients, args.duration, args.push_percent, args.repos
    );
    let repos: Vec<String> = (0..args.repos).map(|i| format!("soak/r{i}")).collect();
    let scopes: Vec<String> = repos
        .iter()
        .map(|r| format!("repository:{r}:pull,push"))
        .collect();

    // Seed images so the first pulls have something to read.
    let images: Arc<RwLock<Vec<Image>>> = Arc::new(RwLock::new(Vec::new()));
    let tally = Arc::new(Tally::default());
    let seeder = Registry::token(&base, &user, &password, scopes.clone());
    seeder.ping().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rng = StdRng::seed_from_u64(seed);
    for (i, repo) in repos.iter().enumerate() {
        let image = push_image(&seeder, repo, &format!("seed-{i}"), &mut rng, i as u64)
            .await
            .map_err(|e| anyhow::anyhow!("seeding {repo}: {e}"))?;
        images.write().unwrap().push(image);
    }

    let start_usage = pid.and_then(server::usage);
    let started = Instant::now();
    let deadline = started + args.duration;
    let samples: Arc<Mutex<Vec<(Duration, Usage)>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let samples = samples.clone();
        let tally = tally.clone();
        let total = args.duration;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_report = Instant::now();
            while Instant::now() < deadline {
                tick.tick().await;
                if let Some(u) = pid.and_then(server::usage) {
                    samples.lock().unwrap().push((started.elapsed(), u));
                }
                if last_report.elapsed() >= Duration::from_secs(10) {
                    last_report = Instant::now();
                    let rss = samples
                        .lock()
                        .unwrap()
                        .last()
                        .map(|(_, u)| u.rss)
                        .unwrap_or(0);
                    println!(
                        "  {:>4.0}/{:.0} s: {} pushes, {} pulls, {} errors, RSS {}",
                        started.elapsed().as_secs_f64(),
                        total.as_secs_f64(),
                        tally.pushes.load(Ordering::Relaxed),
                        tally.pulls.load(Ordering::Relaxed),
                        tally.errors.load(Ordering::Relaxed),
                        mib(rss)
                    );
                }
            }
        })
    };

    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            let client = Registry::token(&base, &user, &password, scopes.clone());
            let repo = repos[c % repos.len()].clone();
            let images = images.clone();
            let tally = tally.clone();
            let seed = rng.gen::<u64>();
            let push_percent = args.push_percent;
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let t = Instant::now();
                    if rng.gen_range(0..100) < push_percent {
                        let tag = format!("c{c}-{}", n % 8);
                        let unique = (c as u64) << 32 | n;
                        match push_image(&client, &repo, &tag, &mut rng, unique).await {
                            Ok(image) => {
                                tally.pushes.fetch_add(1, Ordering::Relaxed);
                                let size: u64 = image.blobs.iter().map(|(_, s)| s).sum();
                                tally.bytes_up.fetch_add(size, Ordering::Relaxed);
                                tally.push_us.lock().unwrap().push(micros(t));
                                let mut all = images.write().unwrap();
                                if all.len() >= RECENT {
                                    let i = rng.gen_range(0..all.len());
                                    all[i] = image;
                                } else {
                                    all.push(image);
                                }
                            }
                            Err(e) => tally.error(format!("push to {repo}: {e}")),
                        }
                    } else {
                        let image = images.read().unwrap().choose(&mut rng).cloned();
                        let Some(image) = image else { continue };
                        match pull_image(&client, &image, &mut rng).await {
                            Ok((bytes, headed)) => {
                                tally.pulls.fetch_add(1, Ordering::Relaxed);
                                tally.heads.fetch_add(headed, Ordering::Relaxed);
                                tally.bytes_down.fetch_add(bytes, Ordering::Relaxed);
                                tally.pull_us.lock().unwrap().push(micros(t));
                            }
                            Err(e) => tally.error(format!("pull of {}: {e}", image.repo)),
                        }
                    }
                }
            })
        })
        .collect();
    for c in clients {
        if let Err(e) = c.await {
            tally.error(format!("a client panicked: {e}"));
        }
    }
    let elapsed = started.elapsed();
    let _ = sampler.await;
    let after_usage = pid.and_then(server::usage);
    let stopped_cleanly = match berth {
        Some(b) => b.stop().await?,
        None => true,
    };

    // Memory: warm (a fifth of the way in) against the end.
    let samples = samples.lock().unwrap().clone();
    let warm = samples
        .iter()
        .find(|(t, _)| *t >= elapsed / 5)
        .map(|(_, u)| *u);
    // The last sample taken under load, not after it: memory must stay flat while working.
    let end_usage = samples.last().map(|(_, u)| *u);
    let pushes = tally.pushes.load(Ordering::Relaxed);
    let pulls = tally.pulls.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    println!();
    println!(
        "soak summary ({} clients, {:.0} s, seed {seed})",
        args.clients, secs
    );
    println!(
        "  operations:     {pushes} image pushes, {pulls} image pulls ({} tag HEADs), {:.0} ops/s",
        tally.heads.load(Ordering::Relaxed),
        (pushes + pulls) as f64 / secs
    );
    println!(
        "  data:           {} up, {} down",
        mib(tally.bytes_up.load(Ordering::Relaxed)),
        mib(tally.bytes_down.load(Ordering::Relaxed))
    );
    println!(
        "  latency:        push p50 {} p99 {}; pull p50 {} p99 {}",
        percentile(&tally.push_us, 50.0),
        percentile(&tally.push_us, 99.0),
        percentile(&tally.pull_us, 50.0),
        percentile(&tally.pull_us, 99.0)
    );
    println!("  errors:         {errors}");
    for e in tally.first_errors.lock().unwrap().iter() {
        println!("  ERROR: {e}");
    }
    let mut ok = errors == 0 && stopped_cleanly && pushes > 0 && pulls > 0;
    if !stopped_cleanly {
        println!("  PROBLEM: berth did not exit cleanly on SIGTERM");
    }
    match (start_usage, warm, end_usage) {
        (Some(start), Some(warm), Some(end)) => {
            let limit = warm.rss + warm.rss * args.max_growth_percent / 100 + 32 * 1024 * 1024;
            let flat = end.rss <= limit;
            let after = after_usage.unwrap_or(end);
            println!(
                "  berth RSS:      start {}, warm {} (at {:.0} s), end of load {} (limit {}), after the load {}, peak {}; CPU {:.1} s ({:.0}% of one core)",
                mib(start.rss),
                mib(warm.rss),
                secs / 5.0,
                mib(end.rss),
                mib(limit),
                mib(after.rss),
                mib(after.peak_rss.max(end.peak_rss)),
                after.cpu_seconds - start.cpu_seconds,
                100.0 * (after.cpu_seconds - start.cpu_seconds) / secs
            );
            if !flat {
                println!(
                    "  PROBLEM: resident memory grew from {} to {}",
                    mib(warm.rss),
                    mib(end.rss)
                );
                ok = false;
            }
        }
        _ => println!("  berth RSS:      not measured (no process id)"),
    }
    println!("soak: {}", if ok { "PASSED" } else { "FAILED" });
    if ok && !keep {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("work dir kept: {}", work.display());
    }
    Ok(ok)
}

fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u32::MAX as u128) as u32
}

fn percentile(samples: &Mutex<Vec<u32>>, p: f64) -> String {
    let mut v = samples.lock().unwrap().clone();
    if v.is_empty() {
        return "-".into();
    }
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    format!("{:.1} ms", v[i] as f64 / 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Pushes config, a shared layer and a unique layer, then the manifest under `tag`.
async fn push_image(
    client: &Registry,
    repo: &str,
    tag: &str,
    rng: &mut StdRng,
    unique: u64,
) -> Answer<Image> {
    let config = content::config(unique);
    let shared_n = rng.gen_range(0..SHARED);
    let shared = content::bytes(u64::MAX - shared_n, 64 * 1024 + shared_n as usize * 8192);
    let own = content::bytes(unique ^ 0x5eed, rng.gen_range(4 * 1024..256 * 1024));
    let mut blobs = Vec::new();
    for data in [&config, &shared, &own] {
        client.push_blob(repo, data, 64 * 1024).await?;
        blobs.push((sha256(data), data.len() as u64));
    }
    let layers: Vec<(String, usize)> = blobs[1..]
        .iter()
        .map(|(d, s)| (d.clone(), *s as usize))
        .collect();
    let manifest = Bytes::from(content::image_manifest(
        (&blobs[0].0, config.len()),
        &layers,
    ));
    client
        .put_manifest(repo, tag, content::OCI_MANIFEST, &manifest)
        .await?;
    Ok(Image {
        repo: repo.to_string(),
        tag: tag.to_string(),
        manifest: sha256(&manifest),
        blobs,
    })
}

/// Pulls an image by digest and checks every byte; sometimes HEADs its tag first, as clients
/// do. Returns the bytes pulled and how many HEADs were sent.
async fn pull_image(client: &Registry, image: &Image, rng: &mut StdRng) -> Answer<(u64, u64)> {
    let mut heads = 0;
    if rng.gen_bool(0.3) {
        // The tag may have moved on to another image since; it must still exist.
        if !client.head_manifest(&image.repo, &image.tag).await? {
            return Err(wrong(format!("tag {}:{} is gone", image.repo, image.tag)));
        }
        heads += 1;
    }
    let manifest = client
        .get_manifest(&image.repo, &image.manifest)
        .await?
        .ok_or_else(|| {
            wrong(format!(
                "manifest {}@{} is gone",
                image.repo, image.manifest
            ))
        })?;
    if sha256(&manifest) != image.manifest {
        return Err(wrong(format!(
            "manifest {} served with other bytes",
            image.manifest
        )));
    }
    let mut bytes = manifest.len() as u64;
    for (digest, size) in &image.blobs {
        let served = client
            .get_blob(&image.repo, digest)
            .await?
            .ok_or_else(|| wrong(format!("blob {}@{digest} is gone", image.repo)))?;
        if served.digest != *digest || served.len != *size {
            return Err(wrong(format!(
                "blob {digest} served as {} ({} bytes)",
                served.digest, served.len
            )));
        }
        bytes += served.len;
    }
    Ok((bytes, heads))
}

fn wrong(what: String) -> Failure {
    Failure::Wrong {
        what,
        status: 200,
        body: String::new(),
    }
}
