//! `berth fsck`: one integrity check of a berth's stores, with the registry running or stopped.

use berth::fsck::{Checker, Note};

use super::admin::{self, Target};

/// Options of `berth fsck`.
#[derive(clap::Args)]
pub struct FsckArgs {
    #[command(flatten)]
    pub target: Target,
    /// Move corrupt blobs to the quarantine area and forget blobs whose bytes are missing, so
    /// clients push them again. Bytes are never deleted; manifests, tags and uploads are only
    /// reported.
    #[arg(long)]
    pub repair: bool,
}

/// Runs one check, printing each problem, warning and repair on standard output and progress
/// and a summary on standard error. Exits 1 when it found problems, 2 when `--repair` could
/// not take the gc lease (a collection or another repair is running).
pub async fn run(args: FsckArgs) -> anyhow::Result<()> {
    let settings = admin::settings(&args.target)?;
    let meta = admin::store(&args.target).await?;
    let blobs = berth::open_blob_store(&args.target.data_dir, &settings).await?;
    let checker = Checker::new(meta, blobs);
    let out = |note: Note<'_>| match note {
        Note::Progress(line) => eprintln!("fsck: {line}"),
        Note::Problem(p) => println!("{p}"),
        Note::Warning(w) => println!("{w}"),
        Note::Repair(r) => println!("{r}"),
    };
    let report = checker.run(args.repair, &out).await?;
    eprintln!("fsck: {}", report.summary());
    if report.busy {
        std::process::exit(2);
    }
    if !report.problems.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
