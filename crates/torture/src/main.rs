//! `berth-torture`: proves berth's reliability promises against the real binary.
//!
//! - `crash` starts berth, runs concurrent pushes, kills it with SIGKILL at a random moment,
//!   restarts it on the same data directory and checks that every acknowledged push pulls back
//!   byte-identical, nothing is served with wrong content, temporary files are gone and
//!   interrupted chunked uploads resume; `--cycles N` times.
//! - `soak` runs many concurrent clients mixing pushes and pulls for `--duration`, and checks for
//!   zero errors and flat memory.
//!
//! Both exit with status 1 when a promise is broken, printing what broke.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod content;
mod crash;
mod registry;
mod server;
mod soak;

#[derive(Parser)]
#[command(name = "berth-torture", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Kill -9 berth under concurrent pushes, restart it and verify everything it acknowledged.
    Crash(crash::CrashArgs),
    /// Many concurrent clients pushing and pulling for a while: zero errors, flat memory.
    Soak(soak::SoakArgs),
}

/// Options shared by the commands that start berth themselves.
#[derive(clap::Args, Clone)]
pub struct ServerArgs {
    /// The berth binary (default: `berth` next to this program, e.g. target/release/berth).
    #[arg(long, value_name = "FILE")]
    berth: Option<PathBuf>,
    /// A config file berth is started with (e.g. to run on PostgreSQL + S3; `DB_URI` in the
    /// environment is passed on as well).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Work in DIR (data directory and logs) and keep it; default: a fresh temporary directory,
    /// removed after a successful run.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Seed of the random choices, to repeat a run.
    #[arg(long)]
    seed: Option<u64>,
}

/// Parses durations such as `90s`, `10m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 10m, 1h)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?} (use ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("{text:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("start the async runtime");
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Crash(args) => crash::run(args).await,
            Command::Soak(args) => soak::run(args).await,
        }
    });
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("berth-torture: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
