//! `berth gc`: one garbage collection run against a berth's stores, with the registry running
//! or stopped.

use std::sync::Arc;

use berth::gc::Collector;

use super::admin::{self, Target};

/// Options of `berth gc`.
#[derive(clap::Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub target: Target,
    /// List what a run would delete, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs one collection, printing progress on standard error and each deleted (or, with
/// `--dry-run`, deletable) item on standard output, then a summary. Exits 2 when another
/// process holds the collection lease.
pub async fn run(args: GcArgs) -> anyhow::Result<()> {
    let settings = admin::settings(&args.target)?;
    let meta = admin::store(&args.target).await?;
    let blobs = berth::open_blob_store(&args.target.data_dir, &settings).await?;
    let collector = Collector::new(meta, Arc::clone(&blobs));
    let progress = |line: &str| {
        if is_item(line) {
            println!("{line}");
        } else {
            eprintln!("gc: {line}");
        }
    };
    let report = collector.run(&settings.gc, args.dry_run, &progress).await?;
    eprintln!("gc: {}", report.summary());
    if report.busy {
        std::process::exit(2);
    }
    Ok(())
}

/// Whether a progress line names a collected item (as `Collected` prints them).
fn is_item(line: &str) -> bool {
    ["manifest ", "blob ", "orphan ", "upload "]
        .iter()
        .any(|p| line.starts_with(p))
}
