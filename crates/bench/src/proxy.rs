//! `berth-bench proxy`: what pulling through a proxy cache organization costs. CNCF
//! distribution (no auth) is the upstream; berth (with auth, embedded, `FEATURE_PROXY_CACHE`)
//! holds one organization (`local`) with the image pushed to it directly and one (`cache`)
//! configured as a proxy cache of the upstream. Each round measures, in alternating order:
//! (a) a pull of the image pushed to berth, (b) a pull of the same image through the cache
//! once it is cached, then (c) the first pull through the cache of an image nobody pulled
//! before (new content, so nothing of it is in berth) and (d) the same image pulled directly
//! from the upstream. A pull is what a client does: the manifest by tag, then the config and
//! every layer at once, each on its own connection, every status, digest and length checked.
//! With `FEATURE_REPO_MIRROR` in the binary, a mirror sync of the image is timed too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use http::{Method, StatusCode};

use crate::client::{Call, Conn, Payload, Target};
use crate::content::{Image, CONFIG_TYPE};
use crate::ops;

/// The organization holding the image pushed to berth directly.
const LOCAL_ORG: &str = "local";
/// The proxy cache organization.
const CACHE_ORG: &str = "cache";
/// The upstream namespace the images live in.
const UPSTREAM_NS: &str = "bench";
/// The mirror organization.
const MIRROR_ORG: &str = "mirrors";
/// The proxy cache organization whose upstream is reached over the paced link.
const LINK_ORG: &str = "cachelink";

#[derive(clap::Args)]
pub struct ProxyArgs {
    /// The berth binary (default: `berth` beside this program).
    #[arg(long)]
    berth: Option<PathBuf>,
    /// The distribution binary (default: `docker-registry` on PATH).
    #[arg(long)]
    distribution: Option<PathBuf>,
    /// Rounds; each figure is the median over them.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Layers per image.
    #[arg(long, default_value_t = 4)]
    layers: u64,
    /// The image's total size in MiB (its layers share it).
    #[arg(long, default_value_t = 64)]
    image_mib: u64,
    /// Data directories and logs (emptied first). Default: `target/berth-bench-proxy`.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// An 8 MiB image (a check that every step works, not a measurement).
    #[arg(long)]
    quick: bool,
    /// The capacity, in MiB/s, of the network link the upstream is also reached over for the
    /// second pair of cold pulls (0: no link measurement).
    #[arg(long, default_value_t = 100)]
    link_mib_s: u64,
    /// Where the report goes (also printed).
    #[arg(long, default_value = "benchmarks/proxy.md")]
    out: PathBuf,
}

/// An `/api/v1` call with Basic credentials; the status and body.
async fn api(
    conn: &mut Conn,
    basic: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(StatusCode, bytes::Bytes)> {
    let mut call = Call::new(method, path.to_string()).header("authorization", basic);
    if let Some(body) = body {
        call = call
            .header("content-type", "application/json")
            .payload(Payload::Bytes(bytes::Bytes::from(body.to_string())));
    }
    let reply = conn.send(call, true).await?;
    Ok((reply.status, reply.body))
}

/// As [`api`], failing on anything but a success.
async fn api_ok(
    conn: &mut Conn,
    basic: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<bytes::Bytes> {
    let (status, body) = api(conn, basic, method, path, body).await?;
    if !status.is_success() {
        bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

/// Pulls `image` from `repo:tag` as a client does: the manifest by tag (its digest checked),
/// then the config and every layer at once, each on a connection of its own (lengths
/// checked). Returns how long it took.
async fn pull(
    target: &Arc<Target>,
    repo: &str,
    tag: &str,
    image: &Image,
) -> anyhow::Result<Duration> {
    let scope = format!("repository:{repo}:pull");
    target.prefetch_token(&scope).await?;
    let started = Instant::now();
    let mut conn = Conn::new(target.clone());
    ops::get_manifest(&mut conn, repo, tag, false, &image.manifest_digest)
        .await
        .with_context(|| format!("{repo}:{tag}"))?;
    let mut tasks = Vec::new();
    {
        let (target, repo, digest) = (
            target.clone(),
            repo.to_string(),
            image.config_digest.clone(),
        );
        let len = image.config.len() as u64;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target);
            let reply = conn
                .send(
                    Call::new(Method::GET, format!("/v2/{repo}/blobs/{digest}"))
                        .scope(format!("repository:{repo}:pull"))
                        .header("accept", CONFIG_TYPE),
                    false,
                )
                .await?;
            if reply.status != StatusCode::OK || reply.body_len != len {
                bail!(
                    "config {digest} of {repo}: {} with {} bytes",
                    reply.status,
                    reply.body_len
                );
            }
            anyhow::Ok(())
        }));
    }
    for layer in &image.layers {
        let (target, repo, layer) = (target.clone(), repo.to_string(), layer.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target);
            ops::pull_blob(&mut conn, &repo, &layer)
                .await
                .with_context(|| format!("layer {} of {repo}", layer.digest))?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("a pull task panicked")??;
    }
    Ok(started.elapsed())
}

/// One round's pull times.
struct Round {
    local: Duration,
    cached: Duration,
    first: Duration,
    direct: Duration,
    /// (c) and (d) over the paced link, when measured.
    over_link: Option<(Duration, Duration)>,
}

/// The first three fields of /proc/loadavg.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// The mirror sync timings, when the binary has the mirror worker.
struct MirrorTimes {
    first: Duration,
    second: Duration,
    /// Bytes each sync streamed from the upstream (`berth_mirror_bytes_copied_total`).
    first_bytes: u64,
    second_bytes: u64,
}

pub async fn run(args: &ProxyArgs) -> anyhow::Result<()> {
    let (berth, work) = crate::berth_and_work(
        args.berth.as_deref(),
        args.work_dir.as_deref(),
        "target/berth-bench-proxy",
    )?;
    let distribution = args
        .distribution
        .clone()
        .or_else(|| crate::servers::which("docker-registry"))
        .context("no docker-registry on PATH (install Debian's docker-registry package, or pass --distribution)")?;
    let layers = args.layers.clamp(1, 4);
    let image_mib = if args.quick { 8 } else { args.image_mib.max(1) };
    let layer_size = (image_mib << 20) / layers;
    let repeats = args.repeats.max(1);

    let load_before = load_average();
    eprintln!("measuring the machine (SHA-256 on one core, durable disk writes)");
    let machine = crate::machine::describe(&work, true);
    let upstream = crate::servers::distribution(&distribution, &work).await?;
    let upstream_addr = upstream.bases[0]
        .strip_prefix("http://")
        .context("distribution listens on http")?
        .to_string();
    let server = crate::servers::berth_with(
        &berth,
        &work,
        true,
        "FEATURE_PROXY_CACHE: true\nFEATURE_REPO_MIRROR: true\n",
    )
    .await?;
    let result = measure(
        args,
        &server,
        &upstream,
        &upstream_addr,
        layers,
        layer_size,
        repeats,
    )
    .await;
    server.stop().await;
    upstream.stop().await;
    let (rounds, mirror) = result?;
    let load_after = load_average();

    let image_bytes = layers * layer_size;
    let mut table = String::from(
        "| round | (a) local pull | (b) cached pull | (c) first pull through the cache | (d) direct pull from the upstream | (b)/(a) | (c)/(d) |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (i, r) in rounds.iter().enumerate() {
        table.push_str(&format!(
            "| {} | {:.0} MiB/s ({:.3} s) | {:.0} MiB/s ({:.3} s) | {:.0} MiB/s ({:.3} s) | {:.0} MiB/s ({:.3} s) | {:.2} | {:.2} |\n",
            i + 1,
            mib_s(image_bytes, r.local),
            r.local.as_secs_f64(),
            mib_s(image_bytes, r.cached),
            r.cached.as_secs_f64(),
            mib_s(image_bytes, r.first),
            r.first.as_secs_f64(),
            mib_s(image_bytes, r.direct),
            r.direct.as_secs_f64(),
            r.local.as_secs_f64() / r.cached.as_secs_f64(),
            r.direct.as_secs_f64() / r.first.as_secs_f64(),
        ));
    }
    let med =
        |f: fn(&Round) -> Duration| median(rounds.iter().map(|r| f(r).as_secs_f64()).collect());
    let (local, cached, first, direct) = (
        med(|r| r.local),
        med(|r| r.cached),
        med(|r| r.first),
        med(|r| r.direct),
    );
    let mib = image_bytes as f64 / (1 << 20) as f64;
    // Speed ratios: time of the reference over time of the pull measured.
    let cached_ratio = local / cached;
    let first_ratio = direct / first;
    table.push_str(&format!(
        "| **median** | **{:.0} MiB/s** | **{:.0} MiB/s** | **{:.0} MiB/s** | **{:.0} MiB/s** | **{cached_ratio:.2}** | **{first_ratio:.2}** |\n",
        mib / local,
        mib / cached,
        mib / first,
        mib / direct
    ));
    // The median decides; a median below the target that some rounds reach is said so.
    let verdict = |median: f64, (_, hi): (f64, f64), target: f64| {
        if median >= target {
            "meets"
        } else if hi >= target {
            "MISSES on the median (some rounds reach it)"
        } else {
            "MISSES"
        }
    };
    let spread = |v: Vec<f64>| {
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(0.0, f64::max);
        (lo, hi)
    };
    let cached_range = spread(
        rounds
            .iter()
            .map(|r| r.local.as_secs_f64() / r.cached.as_secs_f64())
            .collect(),
    );
    let first_range = spread(
        rounds
            .iter()
            .map(|r| r.direct.as_secs_f64() / r.first.as_secs_f64())
            .collect(),
    );
    let cached_spread = format!("{:.2}-{:.2}", cached_range.0, cached_range.1);
    let first_spread = format!("{:.2}-{:.2}", first_range.0, first_range.1);
    let link_text = if rounds.iter().all(|r| r.over_link.is_some()) {
        let pairs: Vec<(f64, f64)> = rounds
            .iter()
            .filter_map(|r| r.over_link)
            .map(|(f, d)| (f.as_secs_f64(), d.as_secs_f64()))
            .collect();
        let ratios: Vec<f64> = pairs.iter().map(|(f, d)| d / f).collect();
        let (first, direct) = (
            median(pairs.iter().map(|p| p.0).collect()),
            median(pairs.iter().map(|p| p.1).collect()),
        );
        let ratio = direct / first;
        let range = spread(ratios.clone());
        let mut rows = String::new();
        for (i, (f, d)) in pairs.iter().enumerate() {
            rows.push_str(&format!(
                "| {} | {:.0} MiB/s ({:.3} s) | {:.0} MiB/s ({:.3} s) | {:.2} |\n",
                i + 1,
                mib / f,
                f,
                mib / d,
                d,
                d / f
            ));
        }
        format!(
            "\n## First pulls over a network link\n\n\
             On loopback the upstream's bytes cost nothing to move, so the machine's two cores decide (c): berth does the most work per byte. An upstream is usually across a network, where the link decides. So each round also pulls a second new image over a link of {link} MiB/s (a relay in the bench paces everything the upstream sends, shared by all connections, as one uplink): (c) through the organization `{LINK_ORG}`, whose upstream is the relay, and (d) directly from the relay.\n\n\
             | round | (c) first pull through the cache | (d) direct pull | (c)/(d) |\n|---:|---:|---:|---:|\n{rows}\
             | **median** | **{:.0} MiB/s** | **{:.0} MiB/s** | **{ratio:.2}** |\n\n\
             - Over the link, a first pull through the cache at least 80% of a direct pull: median ratio **{ratio:.2}** (rounds {:.2}-{:.2}): **{}**. berth streams each blob to the client as it arrives, so a first pull takes about as long as the link needs.\n",
            mib / first,
            mib / direct,
            range.0,
            range.1,
            verdict(ratio, range, 0.8),
            link = args.link_mib_s,
        )
    } else {
        String::new()
    };
    let mirror_text = match &mirror {
        Some(m) => format!(
            "\n## Mirror sync of an image of the same size\n\n\
             A repository of organization `{MIRROR_ORG}` in state `MIRROR` of `{upstream_ns}/mirror` on the upstream (rule `1`), an image of the same shape with content berth has never seen, \
             synced with `POST .../mirror/sync-now` and timed until `sync_status` is `SYNC_SUCCESS` (polled every 20 ms): \
             first sync **{:.2} s** ({:.0} MiB/s, {:.1} MiB streamed from the upstream), second sync, which has nothing to transfer, **{:.2} s** ({} bytes streamed).\n",
            m.first.as_secs_f64(),
            mib / m.first.as_secs_f64(),
            m.first_bytes as f64 / (1 << 20) as f64,
            m.second.as_secs_f64(),
            m.second_bytes,
            upstream_ns = UPSTREAM_NS,
        ),
        None => "\nThe mirror sync was not timed: this berth has no mirror worker (a `sync-now` never ended in `SYNC_SUCCESS` or `SYNC_FAILED`).\n".to_string(),
    };
    let report = format!(
        "# Pulls through a proxy cache organization\n\n\
         Written by `berth-bench proxy --repeats {repeats} --layers {layers}{}` on {}. \
         The upstream is CNCF distribution (Debian's `docker-registry`, filesystem storage, no auth); berth runs on the embedded default (SQLite + files) with auth and `FEATURE_PROXY_CACHE: true`, every request carrying a bearer token (fetched before the clock starts). Both on loopback, sharing the machine with the load generator.\n\n\
         The image: a config and {layers} layers of {} MiB each ({mib:.0} MiB, random bytes, so nothing compresses). A pull is the manifest by tag, then the config and every layer at once, each on its own connection, as clients pull; every status, digest header and length is checked. Each round measures, in alternating order:\n\n\
         - (a) **local pull**: the image pushed to berth directly (`{LOCAL_ORG}/app:1`);\n\
         - (b) **cached pull**: the same image through the proxy cache organization `{CACHE_ORG}` (upstream `{UPSTREAM_NS}/app:1`, already pulled once, within `expiration_s`);\n\
         - (c) **first pull through the cache**: a new image (new content, new repository) pushed to the upstream for the round, pulled through `{CACHE_ORG}`, so berth fetches every byte from the upstream while it serves them;\n\
         - (d) **direct pull** of that image from the upstream.\n\n\
         ## Machine\n\n{} cores ({}), {:.1} GiB, kernel {}; SHA-256 on one core {:.0} MiB/s; durable disk writes {:.0} MiB/s. Load average (1, 5, 15 minutes) {load_before} at the start and {load_after} at the end: other work on the machine shares its cores.\n\n\
         ## Figures\n\n{table}\n\
         Ratios are speed ratios (a time over the other): (b)/(a) is the local pull's time over the cached pull's, (c)/(d) the direct pull's over the first pull through the cache's.\n\n\
         ## Verdicts\n\n\
         - A cached pull at least as fast as a local pull: median ratio **{cached_ratio:.2}** (rounds {cached_spread}): **{}**.\n\
         - A first pull through the cache at least 80% of a direct pull from the upstream: median ratio **{first_ratio:.2}** (rounds {first_spread}): **{}**.\n\n\
         What bounds (c) on this machine: a first pull through the cache does all that a direct pull does (the upstream reads and sends every byte) and more: berth receives every byte, verifies it against its digest (SHA-256 of the image alone takes {:.3} s of one core here, against {:.3} s for the whole direct pull), stores it durably and sends it on, while the client, the upstream and berth share {} cores.\n{link_text}{mirror_text}",
        if args.quick { " --quick" } else { "" },
        crate::today().await,
        layer_size >> 20,
        machine.cores,
        machine.cpu_model,
        machine.memory_gib,
        machine.kernel,
        machine.sha256_mib_s,
        machine.disk_write_mib_s,
        verdict(cached_ratio, cached_range, 1.0),
        verdict(first_ratio, first_range, 0.8),
        mib / machine.sha256_mib_s,
        direct,
        machine.cores,
    );
    print!("{report}");
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, report).with_context(|| format!("write {}", args.out.display()))?;
    if !args.quick && (cached_ratio < 1.0 || first_ratio < 0.8) {
        eprintln!("warning: a target is missed (see {})", args.out.display());
    }
    Ok(())
}

/// Sets up both registries and runs the rounds (and the mirror sync, when there is a worker).
async fn measure(
    args: &ProxyArgs,
    server: &crate::servers::Server,
    upstream: &crate::servers::Server,
    upstream_addr: &str,
    layers: u64,
    layer_size: u64,
    repeats: usize,
) -> anyhow::Result<(Vec<Round>, Option<MirrorTimes>)> {
    let (user, password) = server
        .credentials
        .clone()
        .context("berth with auth has an admin")?;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let berth = Target::connect(&server.bases, Some((&user, &password))).await?;
    let up = Target::connect(&upstream.bases, None).await?;
    let mut conn = Conn::new(berth.clone());
    for org in [LOCAL_ORG, CACHE_ORG, MIRROR_ORG, LINK_ORG] {
        api_ok(
            &mut conn,
            &basic,
            Method::POST,
            "/api/v1/organization/",
            Some(serde_json::json!({ "name": org })),
        )
        .await?;
    }
    api_ok(
        &mut conn,
        &basic,
        Method::POST,
        &format!("/api/v1/organization/{CACHE_ORG}/proxycache"),
        Some(serde_json::json!({
            "upstream_registry": upstream_addr,
            "insecure": true,
            "expiration_s": 86400,
        })),
    )
    .await
    .context("configure the proxy cache (is FEATURE_PROXY_CACHE in this berth?)")?;
    let link = if args.link_mib_s > 0 {
        let server: std::net::SocketAddr = upstream_addr.parse().context("upstream address")?;
        let link = crate::link::start(server, args.link_mib_s << 20).await?;
        api_ok(
            &mut conn,
            &basic,
            Method::POST,
            &format!("/api/v1/organization/{LINK_ORG}/proxycache"),
            Some(serde_json::json!({
                "upstream_registry": link.addr.to_string(),
                "insecure": true,
                "expiration_s": 86400,
            })),
        )
        .await?;
        let target = Target::connect(&[format!("http://{}", link.addr)], None).await?;
        Some((link, target))
    } else {
        None
    };

    eprintln!(
        "pushing the {} MiB image to berth and to the upstream",
        (layers * layer_size) >> 20
    );
    let image = Image::with_layers(0, layers, layer_size);
    let local_repo = format!("{LOCAL_ORG}/app");
    let upstream_repo = format!("{UPSTREAM_NS}/app");
    let cached_repo = format!("{CACHE_ORG}/{upstream_repo}");
    ops::push_image(&mut conn, &local_repo, "1", &image).await?;
    let mut up_conn = Conn::new(up.clone());
    ops::push_image(&mut up_conn, &upstream_repo, "1", &image).await?;

    // The mirror first: it needs only the upstream, and an image of its own that berth has
    // never seen, so the first sync transfers every blob.
    let mirrored =
        tokio::task::spawn_blocking(move || Image::with_layers(1000, layers, layer_size))
            .await
            .context("hashing the image panicked")?;
    ops::push_image(
        &mut up_conn,
        &format!("{UPSTREAM_NS}/mirror"),
        "1",
        &mirrored,
    )
    .await?;
    let mirror = mirror_sync(&mut conn, &basic, upstream_addr, args.quick).await?;

    // Warm-up: the first local pull, and the pull that fills the cache.
    pull(&berth, &local_repo, "1", &image).await?;
    let fill = pull(&berth, &cached_repo, "1", &image)
        .await
        .context("pull through the proxy cache organization (does this berth serve pulls through a proxy cache?)")?;
    eprintln!(
        "cache filled in {:.3} s; {repeats} rounds",
        fill.as_secs_f64()
    );

    let mut rounds = Vec::new();
    for r in 0..repeats {
        let mut local = Duration::ZERO;
        let mut cached = Duration::ZERO;
        let order = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for through_cache in order {
            if through_cache {
                cached = pull(&berth, &cached_repo, "1", &image).await?;
            } else {
                local = pull(&berth, &local_repo, "1", &image).await?;
            }
        }
        // A new image for the cold pulls: content berth has never seen.
        let n = r as u64 + 1;
        let cold = tokio::task::spawn_blocking(move || Image::with_layers(n, layers, layer_size))
            .await
            .context("hashing the image panicked")?;
        let cold_repo = format!("{UPSTREAM_NS}/cold{n}");
        ops::push_image(&mut up_conn, &cold_repo, "1", &cold).await?;
        let mut first = Duration::ZERO;
        let mut direct = Duration::ZERO;
        for through_cache in order {
            if through_cache {
                first = pull(&berth, &format!("{CACHE_ORG}/{cold_repo}"), "1", &cold).await?;
            } else {
                direct = pull(&up, &cold_repo, "1", &cold).await?;
            }
        }
        let mut over_link = None;
        if let Some((_, up_link)) = &link {
            let n = n + 500;
            let cold =
                tokio::task::spawn_blocking(move || Image::with_layers(n, layers, layer_size))
                    .await
                    .context("hashing the image panicked")?;
            let cold_repo = format!("{UPSTREAM_NS}/cold{n}");
            ops::push_image(&mut up_conn, &cold_repo, "1", &cold).await?;
            let (mut first, mut direct) = (Duration::ZERO, Duration::ZERO);
            for through_cache in order {
                if through_cache {
                    first = pull(&berth, &format!("{LINK_ORG}/{cold_repo}"), "1", &cold).await?;
                } else {
                    direct = pull(up_link, &cold_repo, "1", &cold).await?;
                }
            }
            over_link = Some((first, direct));
        }
        eprintln!(
            "round {}/{repeats}: local {:.3} s, cached {:.3} s, first through the cache {:.3} s, direct {:.3} s",
            r + 1,
            local.as_secs_f64(),
            cached.as_secs_f64(),
            first.as_secs_f64(),
            direct.as_secs_f64()
        );
        rounds.push(Round {
            local,
            cached,
            first,
            direct,
            over_link,
        });
    }
    Ok((rounds, mirror))
}

/// `sync_status` of a mirror.
async fn sync_status(conn: &mut Conn, basic: &str, path: &str) -> anyhow::Result<String> {
    let body = api_ok(conn, basic, Method::GET, path, None).await?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(v["sync_status"].as_str().unwrap_or("").to_string())
}

/// Asks for a sync now and waits for its end; its duration, or None when nothing ends it
/// within `patience` (no worker).
async fn sync_once(
    conn: &mut Conn,
    basic: &str,
    path: &str,
    patience: Duration,
) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    api_ok(conn, basic, Method::POST, &format!("{path}/sync-now"), None).await?;
    let mut seen_running = false;
    loop {
        let status = sync_status(conn, basic, path).await?;
        match status.as_str() {
            "SYNC_SUCCESS" if seen_running => return Ok(Some(started.elapsed())),
            "SYNC_FAILED" => bail!("the mirror sync failed"),
            "SYNCING" => seen_running = true,
            // Done before a poll saw it running: it is the answer to this sync-now once the
            // status left SYNC_NOW.
            "SYNC_SUCCESS" => return Ok(Some(started.elapsed())),
            _ => {}
        }
        if started.elapsed() > patience {
            if seen_running {
                bail!("the mirror sync did not end within {patience:?}");
            }
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Times a first and a second sync of the upstream image into a mirror repository, when
/// berth has a mirror worker.
async fn mirror_sync(
    conn: &mut Conn,
    basic: &str,
    upstream_addr: &str,
    quick: bool,
) -> anyhow::Result<Option<MirrorTimes>> {
    let robot = format!("{MIRROR_ORG}+sync");
    api_ok(
        conn,
        basic,
        Method::PUT,
        &format!("/api/v1/organization/{MIRROR_ORG}/robots/sync"),
        None,
    )
    .await?;
    api_ok(
        conn,
        basic,
        Method::POST,
        "/api/v1/repository",
        Some(serde_json::json!({
            "namespace": MIRROR_ORG, "repository": "app", "visibility": "private", "description": "",
        })),
    )
    .await?;
    let repo = format!("/api/v1/repository/{MIRROR_ORG}/app");
    api_ok(
        conn,
        basic,
        Method::POST,
        &format!("{repo}/mirror"),
        Some(serde_json::json!({
            "is_enabled": true,
            "external_reference": format!("{upstream_addr}/{UPSTREAM_NS}/mirror"),
            "sync_interval": 86400,
            "sync_start_date": "2100-01-01T00:00:00Z",
            "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["1"]},
            "robot_username": robot,
            "external_registry_config": {"verify_tls": false},
        })),
    )
    .await?;
    api_ok(
        conn,
        basic,
        Method::PUT,
        &format!("{repo}/changerepostate"),
        Some(serde_json::json!({"state": "MIRROR"})),
    )
    .await?;
    let path = format!("{repo}/mirror");
    // A worker that exists starts a due sync within seconds.
    let patience = Duration::from_secs(if quick { 30 } else { 120 });
    let before = copied(conn, basic).await?;
    let Some(first) = sync_once(conn, basic, &path, patience).await? else {
        eprintln!("no mirror worker answered sync-now: the mirror sync is not timed");
        return Ok(None);
    };
    let between = copied(conn, basic).await?;
    let Some(second) = sync_once(conn, basic, &path, patience).await? else {
        bail!("the second mirror sync did not start");
    };
    let after = copied(conn, basic).await?;
    eprintln!(
        "mirror sync: first {:.3} s ({} bytes copied), second {:.3} s ({} bytes copied)",
        first.as_secs_f64(),
        between - before,
        second.as_secs_f64(),
        after - between
    );
    Ok(Some(MirrorTimes {
        first,
        second,
        first_bytes: between - before,
        second_bytes: after - between,
    }))
}

/// `berth_mirror_bytes_copied_total` at berth's `/metrics` (which superusers may read).
async fn copied(conn: &mut Conn, basic: &str) -> anyhow::Result<u64> {
    let body = api_ok(conn, basic, Method::GET, "/metrics", None).await?;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("berth_mirror_bytes_copied_total "))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum::<f64>() as u64)
}
