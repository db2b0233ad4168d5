//! berth-bench: measures OCI registries over HTTP (`run`), and compares berth with CNCF
//! distribution side by side, writing BENCHMARKS.md (`compare`).

mod client;
mod content;
mod hello;
mod link;
mod machine;
mod measure;
mod ops;
mod proxy;
mod report;
mod scenarios;
mod servers;
mod svg;
mod trust;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use client::Target;
use report::{Results, ScenarioResult, BERTH, BERTH_AUTH, BERTH_REDIRECT, DISTRIBUTION, HELLO};
use scenarios::{Fixture, Scale, Scenario};

#[derive(Parser)]
#[command(name = "berth-bench", about = "Benchmarks for OCI registries")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scenarios once against a registry that is already running.
    Run {
        /// The registry, `http://HOST:PORT`.
        #[arg(long)]
        url: String,
        /// The server's process id, to report its peak memory and CPU time from /proc.
        #[arg(long)]
        pid: Option<u32>,
        /// Log in with the Docker token flow as this user.
        #[arg(long, requires = "password")]
        user: Option<String>,
        #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Start berth, berth with auth and distribution (Debian's docker-registry) on loopback
    /// with fresh data directories, run every scenario on each in turn, and write BENCHMARKS.md
    /// (its embedded section, or with `--backend scale-out` its scale-out section).
    Compare(CompareArgs),
    /// Measure manifest GET by tag on berth (without and with auth) with pulls recorded in the
    /// usage logs (`ACTION_LOG_AUDIT_PULLS: true`, the default) against not recorded, switching
    /// the key live (SIGHUP) between alternating runs, and print the medians and their ratio.
    PullLogs(PullLogsArgs),
    /// Measure what verifying cosign signatures in the background costs concurrent pushes:
    /// pushers' rate while signed images arrive against a control window, and how soon the
    /// signatures show as verified.
    Trust(trust::TrustArgs),
    /// Measure pulls through a proxy cache organization against CNCF distribution as the
    /// upstream: a cached pull against a local pull, a first pull through the cache against a
    /// direct pull from the upstream (and a mirror sync of the same image, when berth has the
    /// mirror worker).
    Proxy(proxy::ProxyArgs),
    /// Serve the bare axum endpoint (the ceiling `compare` measures).
    #[command(hide = true)]
    Hello {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

#[derive(clap::Args)]
struct PullLogsArgs {
    /// The berth binary (default: `berth` beside this program).
    #[arg(long)]
    berth: Option<PathBuf>,
    /// How often each scenario runs with pull logs on and off.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Data directories and logs (emptied first). Default: `target/berth-bench-pull-logs`.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Short windows (a quick check, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Where the table goes (also printed).
    #[arg(long, default_value = "benchmarks/pull-logs.md")]
    out: PathBuf,
    /// Manifest GET scenarios to run (ids starting with these; default `manifest-get-8`,
    /// `manifest-get-32`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[derive(clap::Args)]
struct CompareArgs {
    /// What the registries run on. `embedded`: berth on SQLite + files, distribution on files.
    /// `scale-out`: a throwaway PostgreSQL and Garage (scripts/postgres.sh, scripts/garage.sh),
    /// berth as two replicas on them, distribution on Garage through its S3 driver.
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    backend: Backend,
    /// The berth binary (default: `berth` beside this program).
    #[arg(long)]
    berth: Option<PathBuf>,
    /// The distribution binary (default: `docker-registry` on PATH).
    #[arg(long)]
    distribution: Option<PathBuf>,
    /// How often each scenario runs on each server.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Where the report goes (only the backend's own section is replaced); its plots go in
    /// `benchmarks/` beside it.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Data directories, servers' state and logs (emptied first, removed at the end unless
    /// --keep). Default: `target/berth-bench`, or `target/berth-bench-scale-out`.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work directory.
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Embedded,
    ScaleOut,
}

/// berth replicas in the scale-out comparison.
const REPLICAS: usize = 2;

#[derive(clap::Args)]
struct Common {
    /// About a minute in all: small sizes, short windows; checks that every scenario works.
    #[arg(long)]
    quick: bool,
    /// Run only the scenarios whose id starts with one of these (comma-separated), e.g.
    /// `manifest-get,push-1024`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Common {
    fn selected(&self, scenarios: Vec<Scenario>) -> Vec<Scenario> {
        scenarios
            .into_iter()
            .filter(|s| {
                self.only.is_empty() || self.only.iter().any(|o| s.id.starts_with(o.as_str()))
            })
            .collect()
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Hello { listen } => {
                // Printed for a human starting it by hand; `compare` polls the port.
                println!("hello ready on http://{listen}");
                hello::serve(listen).await
            }
            Command::Run {
                url,
                pid,
                user,
                password,
                common,
            } => run(&url, pid, user.zip(password), &common).await,
            // An interrupted run drops `compare`, whose servers (and PostgreSQL and Garage)
            // stop as they are dropped.
            Command::Compare(args) => tokio::select! {
                result = compare(&args) => result,
                signal = interrupted() => bail!("interrupted by {signal}; the servers were stopped"),
            },
            Command::PullLogs(args) => tokio::select! {
                result = pull_logs(&args) => result,
                signal = interrupted() => bail!("interrupted by {signal}; the servers were stopped"),
            },
            Command::Trust(args) => tokio::select! {
                result = trust::run(&args) => result,
                signal = interrupted() => bail!("interrupted by {signal}; the servers were stopped"),
            },
            Command::Proxy(args) => tokio::select! {
                result = proxy::run(&args) => result,
                signal = interrupted() => bail!("interrupted by {signal}; the servers were stopped"),
            },
        }
    })
}

/// Waits for SIGINT, SIGTERM or SIGHUP.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

fn describe(s: &Scenario, sample: &measure::Sample) -> String {
    let headline = if s.is_throughput() {
        format!("{:.0} MiB/s", sample.mib_per_second())
    } else {
        format!("{:.0} {}/s", sample.ops_per_second(), s.unit())
    };
    let server = sample
        .server
        .map(|u| {
            format!(
                ", server peak RSS {} MiB, CPU {:.2} s",
                u.peak_rss >> 20,
                u.cpu_seconds
            )
        })
        .unwrap_or_default();
    let errors = match &sample.first_error {
        Some(e) => format!(", {} ERRORS (first: {e})", sample.errors),
        None => String::new(),
    };
    format!(
        "{headline}, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms{server}{errors}",
        sample.p50_ms, sample.p90_ms, sample.p99_ms
    )
}

async fn run(
    url: &str,
    pid: Option<u32>,
    login: Option<(String, String)>,
    common: &Common,
) -> anyhow::Result<()> {
    let scale = Scale {
        quick: common.quick,
    };
    let target = Target::connect(
        &[url.to_string()],
        login.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
    )
    .await?;
    eprintln!("setting up {url}");
    let fixture = scenarios::setup(&target, scale, &|step| eprintln!("  pushing {step}")).await?;
    let mut errors = 0;
    for s in common.selected(scenarios::all(scale)) {
        let work = s.prepare(scale, 0).await;
        let pids: Vec<u32> = pid.into_iter().collect();
        let sample = s.run(scale, &work, &target, &fixture, &pids).await;
        errors += sample.errors;
        println!("{:<60} {}", s.title, describe(&s, &sample));
    }
    if errors > 0 {
        bail!("{errors} operations failed");
    }
    Ok(())
}

struct Contender {
    server: servers::Server,
    target: Arc<Target>,
    fixture: Fixture,
}

/// Switches berth's replicas to redirecting blob downloads to presigned storage URLs
/// (`FEATURE_PROXY_STORAGE: false`) or back to streaming them, and waits until every replica
/// answers that way.
async fn redirects(c: &Contender, on: bool) -> anyhow::Result<()> {
    let (from, to) = if on {
        (servers::PROXY_STORAGE_ON, servers::PROXY_STORAGE_OFF)
    } else {
        (servers::PROXY_STORAGE_OFF, servers::PROXY_STORAGE_ON)
    };
    c.server.reconfigure(from, to)?;
    let replicas = c.server.pids.len();
    let want = if on { replicas } else { 0 };
    let started = std::time::Instant::now();
    while scenarios::redirected_pulls(&c.target, &c.fixture, replicas).await? != want {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            bail!("berth's replicas did not take `{to}` within 20 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

pub(crate) async fn today() -> String {
    tokio::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The berth binary (`berth`, or `berth` beside this program), checked to exist, and the
/// work directory (`work_dir`, or `default`), emptied and created: what the single-server
/// benches (`pull-logs`, `trust`, `proxy`) start from.
pub(crate) fn berth_and_work(
    berth: Option<&std::path::Path>,
    work_dir: Option<&std::path::Path>,
    default: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let berth = match berth {
        Some(b) => b.to_path_buf(),
        None => std::env::current_exe()?.with_file_name("berth"),
    };
    if !berth.is_file() {
        bail!("no berth binary at {} (pass --berth)", berth.display());
    }
    let work = work_dir.map_or_else(|| PathBuf::from(default), |w| w.to_path_buf());
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("empty {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    Ok((berth, work))
}

/// The config line that records pulls in the usage logs, and the one that does not.
const PULL_LOGS_ON: &str = "ACTION_LOG_AUDIT_PULLS: true";
const PULL_LOGS_OFF: &str = "ACTION_LOG_AUDIT_PULLS: false";

async fn pull_logs(args: &PullLogsArgs) -> anyhow::Result<()> {
    let scale = Scale { quick: args.quick };
    let (berth, work) = berth_and_work(
        args.berth.as_deref(),
        args.work_dir.as_deref(),
        "target/berth-bench-pull-logs",
    )?;
    let only = if args.only.is_empty() {
        vec!["manifest-get-8".to_string(), "manifest-get-32".to_string()]
    } else {
        args.only.clone()
    };
    let list: Vec<Scenario> = scenarios::all(scale)
        .into_iter()
        .filter(|s| {
            s.id.starts_with("manifest-get") && only.iter().any(|o| s.id.starts_with(o.as_str()))
        })
        .collect();
    let repeats = args.repeats.max(1);
    let mut table = String::from(
        "| server | scenario | pull logs on (ops/s) | pull logs off (ops/s) | on / off |\n|---|---|---:|---:|---:|\n",
    );
    for with_auth in [false, true] {
        let server = servers::berth(&berth, &work, with_auth).await?;
        // Said explicitly (it is the default), so the switch below has a line to flip.
        server.reconfigure(
            "FEATURE_GENERAL_OCI_SUPPORT: true",
            &format!("FEATURE_GENERAL_OCI_SUPPORT: true\n{PULL_LOGS_ON}"),
        )?;
        let target = Target::connect(
            &server.bases,
            server
                .credentials
                .as_ref()
                .map(|(u, p)| (u.as_str(), p.as_str())),
        )
        .await?;
        let fixture =
            scenarios::setup(&target, scale, &|step| eprintln!("  pushing {step}")).await?;
        for s in &list {
            let mut on = Vec::new();
            let mut off = Vec::new();
            for repeat in 0..repeats {
                let work = s.prepare(scale, repeat as u64).await;
                // Alternate which goes first, so drift on the machine favours neither.
                let order = if repeat % 2 == 0 {
                    [true, false]
                } else {
                    [false, true]
                };
                for logs in order {
                    let (from, to) = if logs {
                        (PULL_LOGS_OFF, PULL_LOGS_ON)
                    } else {
                        (PULL_LOGS_ON, PULL_LOGS_OFF)
                    };
                    if server.reconfigure(from, to).is_ok() {
                        // berth rereads its config on SIGHUP at once; give it a moment.
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    let sample = s.run(scale, &work, &target, &fixture, &server.pids).await;
                    eprintln!(
                        "{:<11} {} · {}/{repeats} · pull logs {:<3} {}",
                        server.label,
                        s.title,
                        repeat + 1,
                        if logs { "on" } else { "off" },
                        describe(s, &sample)
                    );
                    if sample.errors > 0 {
                        bail!("{} operations failed", sample.errors);
                    }
                    if logs {
                        on.push(sample.ops_per_second())
                    } else {
                        off.push(sample.ops_per_second())
                    }
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(|a, b| a.total_cmp(b));
                v[v.len() / 2]
            };
            let (on, off) = (median(&mut on), median(&mut off));
            table.push_str(&format!(
                "| {} | {} | {on:.0} | {off:.0} | {:.3} |\n",
                server.label,
                s.title,
                on / off
            ));
        }
    }
    let report = format!(
        "# Manifest GET with usage logs of pulls on and off\n\n\
         Written by `berth-bench pull-logs --repeats {repeats}{}` on {}. berth runs on the embedded default (SQLite + files), without auth (`berth`, anonymous pulls) and with auth (`berth+auth`, bearer tokens); `ACTION_LOG_AUDIT_PULLS` is switched live (config file rewritten, SIGHUP) between runs, in alternating order; each figure is the median of the repetitions. \
         With it on, the first GET of a kind (performer, address, repository, tag, digest) is queued for the usage logs' writer, which stores it in the same SQLite database, and its repeats until the writer's next drain (every 50 ms) are only counted, then stored as one record with their count. These GETs are all alike (one client, one tag), the case of a fleet pulling one image; pulls that all differ (other tags, clients or addresses) cost a queued record and a row each.\n\n{table}",
        if args.quick { " --quick" } else { "" },
        today().await
    );
    print!("{table}");
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, report).with_context(|| format!("write {}", args.out.display()))?;
    Ok(())
}

async fn compare(args: &CompareArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let scale = Scale {
        quick: common.quick,
    };
    let scale_out = args.backend == Backend::ScaleOut;
    let repeats = args.repeats.max(1);
    let berth = match &args.berth {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("berth"),
    };
    if !berth.is_file() {
        bail!(
            "no berth binary at {} (build it with `cargo build --release`, or pass --berth)",
            berth.display()
        );
    }
    let distribution = args
        .distribution
        .clone()
        .or_else(|| servers::which("docker-registry"))
        .context("no docker-registry on PATH (install Debian's docker-registry package, or pass --distribution)")?;
    let work = args.work_dir.clone().unwrap_or_else(|| {
        PathBuf::from(if scale_out {
            "target/berth-bench-scale-out"
        } else {
            "target/berth-bench"
        })
    });
    let work = work.as_path();
    if work.exists() {
        if scale_out {
            servers::Backing::stop_leftovers(work);
        }
        std::fs::remove_dir_all(work).with_context(|| format!("empty {}", work.display()))?;
    }
    std::fs::create_dir_all(work)?;
    // Absolute: PostgreSQL resolves its socket directory from its own data directory.
    let work = std::fs::canonicalize(work)?;
    let work = work.as_path();

    // PostgreSQL and Garage keep their metadata, logs and write-ahead log beside the blobs.
    let need = scenarios::disk_needed(scale, repeats, 3) + if scale_out { 2 << 30 } else { 0 };
    let free = machine::free_bytes(work).unwrap_or(u64::MAX);
    if free < need {
        bail!(
            "{} has {} GiB free; this run stores about {} GiB (fewer --repeats, --quick or --only need less)",
            work.display(),
            free >> 30,
            need >> 30
        );
    }
    eprintln!("measuring the machine (SHA-256 on one core, durable disk writes)");
    let machine = machine::describe(work, scale.quick);
    eprintln!(
        "  {} cores, {:.1} GiB, SHA-256 {:.0} MiB/s, disk {:.0} MiB/s",
        machine.cores, machine.memory_gib, machine.sha256_mib_s, machine.disk_write_mib_s
    );
    let mut versions = BTreeMap::new();
    versions.insert(
        "berth".to_string(),
        servers::version(&berth, "--version").await,
    );
    versions.insert(
        "distribution".to_string(),
        servers::version(&distribution, "--version").await,
    );
    // Declared before the servers, so it is dropped (and stops) after them.
    let backing = if scale_out {
        let backing = servers::Backing::start(work).await?;
        versions.extend(backing.versions().await);
        Some(backing)
    } else {
        None
    };

    let mut contenders = Vec::new();
    for which in [BERTH, DISTRIBUTION, BERTH_AUTH] {
        eprintln!("starting {which}");
        let server = match (which, &backing) {
            (BERTH, None) => servers::berth(&berth, work, false).await?,
            (BERTH_AUTH, None) => servers::berth(&berth, work, true).await?,
            (_, None) => servers::distribution(&distribution, work).await?,
            (BERTH, Some(b)) => servers::berth_replicas(&berth, work, b, false, REPLICAS).await?,
            (BERTH_AUTH, Some(b)) => {
                servers::berth_replicas(&berth, work, b, true, REPLICAS).await?
            }
            (_, Some(b)) => servers::distribution_s3(&distribution, work, b).await?,
        };
        let target = Target::connect(
            &server.bases,
            server
                .credentials
                .as_ref()
                .map(|(u, p)| (u.as_str(), p.as_str())),
        )
        .await?;
        eprintln!("setting up {which} at {}", server.bases.join(" and "));
        let fixture = scenarios::setup(&target, scale, &|step| eprintln!("  pushing {step}"))
            .await
            .with_context(|| format!("set up {which}"))?;
        contenders.push(Contender {
            server,
            target,
            fixture,
        });
    }

    let list = common.selected(scenarios::all(scale));
    let total = list.len();
    let mut results = Vec::new();
    for (n, s) in list.iter().enumerate() {
        let mut result = ScenarioResult {
            id: s.id.clone(),
            title: s.title.clone(),
            throughput: s.is_throughput(),
            unit: s.unit().into(),
            connections: s.connections(),
            samples: BTreeMap::new(),
        };
        for repeat in 0..repeats {
            let work = s.prepare(scale, repeat as u64).await;
            for c in &contenders {
                let sample = s
                    .run(scale, &work, &c.target, &c.fixture, &c.server.pids)
                    .await;
                eprintln!(
                    "[{}/{total}] {} · {}/{repeats} · {:<12} {}",
                    n + 1,
                    s.title,
                    repeat + 1,
                    c.server.label,
                    describe(s, &sample)
                );
                result
                    .samples
                    .entry(c.server.label.clone())
                    .or_default()
                    .push(sample);
            }
            if scale_out && s.id.starts_with("pull-") {
                // The same pull from berth redirecting to presigned Garage URLs, right after
                // the others, so all four meet the same conditions on the machine.
                let c = &contenders[0];
                redirects(c, true).await?;
                let sample = s
                    .run(scale, &work, &c.target, &c.fixture, &c.server.pids)
                    .await;
                redirects(c, false).await?;
                eprintln!(
                    "[{}/{total}] {} · {}/{repeats} · {:<12} {}",
                    n + 1,
                    s.title,
                    repeat + 1,
                    BERTH_REDIRECT,
                    describe(s, &sample)
                );
                result
                    .samples
                    .entry(BERTH_REDIRECT.to_string())
                    .or_default()
                    .push(sample);
            }
        }
        results.push(result);
    }

    let mut peak_rss = BTreeMap::new();
    for c in &contenders {
        // Replicas add up: the registry's memory is all of its processes'.
        let peaks: Option<Vec<u64>> = c
            .server
            .pids
            .iter()
            .map(|&p| measure::proc::peak_rss(p))
            .collect();
        if let Some(peaks) = peaks {
            peak_rss.insert(c.server.label.clone(), peaks.iter().sum());
        }
    }
    for c in contenders {
        c.server.stop().await;
    }

    if !scale_out
        && (common.only.is_empty()
            || common
                .only
                .iter()
                .any(|o| "hello".starts_with(o.as_str()) || o.starts_with("hello")))
    {
        eprintln!("starting the bare axum endpoint");
        let hello = servers::hello(work).await?;
        let target = Target::connect(&hello.bases, None).await?;
        for s in scenarios::hello_scenarios() {
            let mut result = ScenarioResult {
                id: s.id.clone(),
                title: s.title.clone(),
                throughput: false,
                unit: "requests".into(),
                connections: s.connections(),
                samples: BTreeMap::new(),
            };
            for repeat in 0..repeats {
                let sample = scenarios::run_hello(&s, scale, &target, &hello.pids).await;
                eprintln!(
                    "[hello] {} · {}/{repeats} · {}",
                    s.title,
                    repeat + 1,
                    describe(&s, &sample)
                );
                result
                    .samples
                    .entry(HELLO.to_string())
                    .or_default()
                    .push(sample);
            }
            results.push(result);
        }
        hello.stop().await;
    }
    drop(backing);

    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let results = Results {
        date: today().await,
        command: format!("berth-bench {command}"),
        backend: if scale_out {
            report::SCALE_OUT
        } else {
            report::EMBEDDED
        }
        .into(),
        quick: scale.quick,
        repeats,
        machine,
        versions,
        scenarios: results,
        peak_rss,
    };
    report::write(&results, &args.out)?;
    eprintln!("wrote {}", args.out.display());
    if !args.keep {
        let _ = std::fs::remove_dir_all(work);
    }
    let errors = results.total_errors();
    if errors > 0 {
        for e in results.first_errors() {
            eprintln!("error: {e}");
        }
        bail!("{errors} operations failed");
    }
    Ok(())
}
