//! The `berth` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod cli;
use cli::admin;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "berth: an OCI artifact registry (images, Helm charts, signatures, any OCI artifact)",
    after_help = "Logging (to standard output):\n  \
        BERTH_LOG          what to log, as a tracing filter: a level (error, warn, info, debug,\n                     \
        trace) and per-target levels, e.g. BERTH_LOG=warn or\n                     \
        BERTH_LOG=info,berth::request=off (no request lines); default info\n  \
        BERTH_LOG_FORMAT   text (default) or json: one JSON object per line (also the config\n                     \
        key LOG_FORMAT); colours only when the output is a terminal and NO_COLOR is unset"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve(ServeArgs),
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage users.
    User {
        #[command(flatten)]
        target: admin::Target,
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// Manage organizations.
    Org {
        #[command(flatten)]
        target: admin::Target,
        #[command(subcommand)]
        command: admin::OrgCommand,
    },
    /// Manage the teams of organizations.
    Team {
        #[command(flatten)]
        target: admin::Target,
        #[command(subcommand)]
        command: admin::TeamCommand,
    },
    /// Manage robot accounts (NAMESPACE+NAME, with a token as password).
    Robot {
        #[command(flatten)]
        target: admin::Target,
        #[command(subcommand)]
        command: admin::RobotCommand,
    },
    /// Manage repositories: create, visibility, permissions, delete.
    Repo {
        #[command(flatten)]
        target: admin::Target,
        #[command(subcommand)]
        command: admin::RepoCommand,
    },
    /// Collect garbage once: unreachable manifests, unreferenced blobs, orphaned bytes and
    /// abandoned uploads (the registry may keep running). Prints each item deleted, or with
    /// --dry-run each item a run would delete.
    Gc(cli::gc::GcArgs),
    /// Check integrity: every blob's bytes against its digest and size, every manifest's
    /// bytes and references, tags, upload data, and bytes metadata does not know. Prints one
    /// line per problem and exits 1 if there were any; --repair quarantines corrupt blobs.
    Fsck(cli::fsck::FsckArgs),
    /// Manage API tokens for /api/v1.
    Token {
        #[command(flatten)]
        target: admin::Target,
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file and print the effective artifact policy (defaults merged).
    /// Exits 1 when the file is invalid.
    Check {
        /// The YAML config file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "ADDR")]
    listen: SocketAddr,
    /// Directory holding the metadata database (metadata.db), blobs and uploads; created if missing.
    #[arg(long, default_value = "./berth-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// YAML config file (Quay-style keys; unknown keys are warned about and ignored). It is
    /// watched: a valid change applies within seconds without a restart (also on SIGHUP); an
    /// invalid one is logged and the config in force stays.
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Do not create the superuser `admin` on a first start without users.
    #[arg(long)]
    no_initial_admin: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate for localhost, 127.0.0.1 and ::1, kept in
    /// DIR/tls/ (clients trust it with DIR/tls/cert.pem as a CA). For local trials.
    #[arg(long)]
    tls_self_signed: bool,
    /// After SIGTERM or Ctrl-C, how many seconds in-flight requests may take to finish before
    /// berth exits anyway (new connections are refused at once).
    #[arg(long, default_value_t = berth::SHUTDOWN_GRACE.as_secs(), value_name = "SECONDS")]
    shutdown_timeout: u64,
    /// Also serve Prometheus metrics at http://ADDR/metrics, without authentication: bind it
    /// where only your monitoring can reach it (overrides the config key PROMETHEUS_LISTEN).
    /// /metrics on the main address answers superusers only, unless METRICS_ALLOW_ANONYMOUS.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

fn main() -> anyhow::Result<()> {
    // Every command writes into the data directory (the database, its journals, blobs, keys):
    // what it creates is private to this account whatever the umask.
    berth::restrict_new_files();
    // glibc gives each thread that allocates under contention an arena of its own (up to 8 per
    // core) and rarely returns their free memory: with the blocking pool's many threads that is
    // most of berth's resident memory. Two arenas are plenty for a server this size.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing, before any other thread exists; mallopt only sets a tunable.
    // Allocations of 4 MiB and more (a password check's 19 MiB, the direct-write buffers) are
    // mapped and unmapped each time instead of staying in the heap once freed: glibc's moving
    // threshold otherwise let concurrent logins grow the heap to hundreds of MiB.
    // Fixing that threshold also fixes the trim threshold at its 128 KiB default (glibc's moving
    // rule keeps it at twice the mapping threshold): an arena then hands every free stretch of
    // that size at its top back to the kernel, and the next allocation faults it in again page
    // by page. Streaming 1 GiB through hyper's read buffers took about 120,000 such faults and a
    // sixth of the push's CPU; 8 MiB restores glibc's own pairing and bounds what each of the
    // three arenas keeps.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Config(ConfigCommand::Check { file }) => check_config(&file),
        Command::User { target, command } => runtime.block_on(admin::user(&target, command)),
        Command::Org { target, command } => runtime.block_on(admin::org(&target, command)),
        Command::Team { target, command } => runtime.block_on(admin::team(&target, command)),
        Command::Robot { target, command } => runtime.block_on(admin::robot(&target, command)),
        Command::Repo { target, command } => runtime.block_on(admin::repo(&target, command)),
        Command::Token { target, command } => runtime.block_on(admin::token(&target, command)),
        Command::Gc(args) => runtime.block_on(cli::gc::run(args)),
        Command::Fsck(args) => runtime.block_on(cli::fsck::run(args)),
    }
}

/// Logging as `BERTH_LOG`, `BERTH_LOG_FORMAT` (or the config's `LOG_FORMAT`) and the output
/// say. Escape sequences only reach a terminal: in a file or a log collector they are noise.
fn init_logging(cli: &Cli) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| "info".into());
    let json = match std::env::var("BERTH_LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some(_) => false,
        // A config that does not parse is reported by `serve` itself, once logging is up.
        None => match &cli.command {
            Command::Serve(ServeArgs {
                config: Some(path), ..
            }) => std::fs::read_to_string(path)
                .ok()
                .and_then(|text| berth::config::parse(&text).ok())
                .is_some_and(|loaded| loaded.settings.log_json),
            _ => false,
        },
    };
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    match berth::config::load(file) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            println!("# {}: valid", file.display());
            print!(
                "{}",
                berth::policy::ArtifactPolicy::new(loaded.settings.policy).describe()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let text = match &args.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?,
        ),
        None => None,
    };
    let loaded = berth::config::parse(text.as_deref().unwrap_or("")).with_context(|| {
        format!(
            "invalid config file {}",
            args.config.as_deref().unwrap_or("".as_ref()).display()
        )
    })?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if loaded.settings.auth.open_registry {
        tracing::warn!("AUTHENTICATION_TYPE is None: every client may push, pull and delete in every repository without logging in");
    }
    let database = berth::database_uri(&args.data_dir, &loaded.settings)?;
    let mut state = berth::open(&args.data_dir, &loaded.settings).await?;
    state.shutdown_grace = std::time::Duration::from_secs(args.shutdown_timeout);
    if !args.no_initial_admin
        && berth::create_initial_admin(&state, &args.data_dir)
            .await?
            .is_some()
    {
        // Only where it is: logs are collected, shipped and kept where a password must not
        // be.
        tracing::warn!(
            "created superuser admin; its password is in {} (readable by this account only); change it or create other accounts",
            args.data_dir.join(berth::INITIAL_ADMIN_PASSWORD_FILE).display()
        );
    }
    state.auth.warn_about_missing_super_users().await;
    if let Some(path) = &args.config {
        let live = state.clone();
        let configured = loaded.settings.database.clone();
        let running = database.redacted();
        berth::config::watch(path.clone(), text, move |mut loaded| {
            if let Some(asked) = berth::config::keep_database(&mut loaded.settings, &configured) {
                // The connection pools were built at start; switching databases live would
                // split the registry's state between two of them.
                let asked = asked.map_or_else(|| "the default".to_string(), |d| d.redacted());
                tracing::warn!(
                    "DB_URI changed to {asked} in the config file; restart berth to use it (still using {running})"
                );
            }
            let was_open = live.settings().auth.open_registry;
            let now_open = loaded.settings.auth.open_registry;
            live.apply_settings(loaded.settings);
            match (was_open, now_open) {
                (false, true) => tracing::warn!("AUTHENTICATION_TYPE changed to None: from now on every client may push, pull and delete in every repository without logging in"),
                (true, false) => tracing::warn!("AUTHENTICATION_TYPE changed to Database: clients must log in again; anonymous pushes and deletes are refused from now on"),
                _ => {}
            }
            let policy = live.registry.policy();
            tracing::info!(policy = %policy.describe().replace('\n', "; "), "settings applied");
            let auth = live.auth.clone();
            tokio::spawn(async move { auth.warn_about_missing_super_users().await });
        });
    }
    tokio::spawn(berth::app::collect_periodically(state.clone()));
    tokio::spawn(berth::usage_log::expire_periodically(state.clone()));
    let tls_files = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => Some((cert.clone(), key.clone())),
        (_, _, true) => {
            let names: Vec<String> = state
                .settings()
                .server_hostname
                .iter()
                .map(|h| h.split(':').next().unwrap_or(h).to_string())
                .collect();
            let (cert, key) = berth::tls::self_signed(&args.data_dir, &names)?;
            tracing::info!(cert = %cert.display(), "serving with a self-signed certificate; trust it as a CA to connect");
            Some((cert, key))
        }
        _ => None,
    };
    let tls = match &tls_files {
        Some((cert, key)) => Some(berth::tls::load(cert, key)?),
        None => None,
    };
    // Connections are bounded by file descriptors: take what the hard limit allows.
    berth::server::raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!("serving plain HTTP on {addr}: passwords and tokens cross the network in clear; use --tls-cert/--tls-key");
    }
    if let Some(metrics_addr) = args.metrics_listen.or(state.settings().metrics_listen) {
        let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {metrics_addr}"))?;
        let bound = metrics_listener.local_addr()?;
        tracing::info!("metrics on http://{bound}/metrics");
        let served = state.clone();
        // It ends with the process: scrapes are short, and a scrape during the shutdown
        // grace still tells the truth.
        tokio::spawn(async move {
            let forever = std::future::pending::<()>();
            if let Err(e) = berth::serve_metrics(metrics_listener, served, forever).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(data_dir = %args.data_dir.display(), %database, "berth ready on {scheme}://{addr}");
    match tls {
        Some(tls) => berth::serve_tls(listener, state, tls, shutdown_signal()).await?,
        None => berth::serve(listener, state, shutdown_signal()).await?,
    }
    tracing::info!("berth stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
