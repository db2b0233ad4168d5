//! A berth process under test: started on an ephemeral loopback port, killed or stopped, and
//! measured through /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::ServerArgs;

/// How long berth may take to print its ready line.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// Where berth runs and how to start it again.
pub struct Launcher {
    binary: PathBuf,
    config: Option<PathBuf>,
    pub data_dir: PathBuf,
    log: PathBuf,
}

/// A running berth.
pub struct Berth {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The first-start superuser's password.
    pub password: String,
}

impl Launcher {
    /// A launcher for `work/data`, logging to `work/berth.log`.
    pub fn new(args: &ServerArgs, work: &Path) -> anyhow::Result<Launcher> {
        let binary = match &args.berth {
            Some(b) => b.clone(),
            None => std::env::current_exe()
                .context("locate this program")?
                .with_file_name("berth"),
        };
        if !binary.is_file() {
            bail!(
                "no berth binary at {} (build it with `cargo build --release`, or pass --berth)",
                binary.display()
            );
        }
        let data_dir = work.join("data");
        std::fs::create_dir_all(&data_dir).context("create the data directory")?;
        Ok(Launcher {
            binary,
            config: args.config.clone(),
            data_dir,
            log: work.join("berth.log"),
        })
    }

    /// The file berth's output is appended to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts berth and waits for its ready line.
    pub async fn start(&self) -> anyhow::Result<Berth> {
        let mut command = Command::new(&self.binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&self.data_dir)
            .env(
                "BERTH_LOG",
                std::env::var("BERTH_LOG").unwrap_or("info".into()),
            )
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        let mut log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .await
            .context("open the berth log")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stdout).lines();
        let ready = async {
            while let Some(line) = lines.next_line().await? {
                log.write_all(line.as_bytes()).await?;
                log.write_all(b"\n").await?;
                if let Some(i) = line.find("berth ready on ") {
                    let rest = &line[i + "berth ready on ".len()..];
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    return Ok::<_, std::io::Error>(Some(url.to_string()));
                }
            }
            Ok(None)
        };
        let base = match tokio::time::timeout(READY_WITHIN, ready).await {
            Ok(Ok(Some(base))) => base,
            Ok(Ok(None)) => bail!(
                "berth exited before it was ready (see {})",
                self.log.display()
            ),
            Ok(Err(e)) => return Err(e).context("read berth's output"),
            Err(_) => bail!("berth was not ready within {READY_WITHIN:?}"),
        };
        // Keep draining both streams into the log, so berth never blocks on a full pipe.
        let mut err_lines = BufReader::new(stderr).lines();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    line = lines.next_line() => match line {
                        Ok(Some(line)) => { let _ = log.write_all(format!("{line}\n").as_bytes()).await; }
                        _ => break,
                    },
                    line = err_lines.next_line() => match line {
                        Ok(Some(line)) => { let _ = log.write_all(format!("{line}\n").as_bytes()).await; }
                        _ => break,
                    },
                }
            }
            let _ = log.flush().await;
        });
        let password = std::fs::read_to_string(self.data_dir.join("initial-admin-password"))
            .context("read the first-start admin password")?
            .trim()
            .to_string();
        Ok(Berth {
            child,
            base,
            password,
        })
    }
}

impl Berth {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// SIGKILL, then reap.
    pub async fn kill9(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then wait for the exit; true when berth exited with success.
    pub async fn stop(mut self) -> anyhow::Result<bool> {
        let pid = self.pid().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("run kill")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        let exit = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("berth did not exit within 60 s of SIGTERM")??;
        Ok(exit.success())
    }
}

/// Memory and CPU use of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Resident memory now, bytes.
    pub rss: u64,
    /// Peak resident memory so far, bytes.
    pub peak_rss: u64,
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
}

/// Reads the usage of `pid`; `None` when the process is gone or /proc is unavailable.
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized command name; utime and stime are the 14th and 15th.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(Usage {
        rss: kib("VmRSS:")?,
        peak_rss: kib("VmHWM:")?,
        cpu_seconds: ticks / clock_ticks_per_second(),
    })
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A work directory: the one asked for, or a fresh temporary one.
pub fn work_dir(args: &ServerArgs, what: &str) -> anyhow::Result<(PathBuf, bool)> {
    match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).context("create the work directory")?;
            Ok((dir.clone(), true))
        }
        None => {
            let dir = std::env::temp_dir().join(format!(
                "berth-torture-{what}-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&dir).context("create the work directory")?;
            Ok((dir, false))
        }
    }
}

/// Files under `dir` whose names mark them as temporary (berth's staged names, and any
/// `.tmp` file).
pub fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".staged") || n.ends_with(".tmp"))
            {
                found.push(path);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_of_this_process_is_read_from_proc() {
        let u = usage(std::process::id()).expect("/proc is readable");
        assert!(u.rss > 0 && u.peak_rss >= u.rss);
        assert!(u.cpu_seconds >= 0.0);
    }

    #[test]
    fn temporary_files_are_found_at_any_depth() {
        let dir = std::env::temp_dir().join(format!("torture-tmp-{}", rand::random::<u32>()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/.abc.1.staged"), b"x").unwrap();
        std::fs::write(dir.join("a/data"), b"x").unwrap();
        assert_eq!(temporary_files(&dir), vec![dir.join("a/b/.abc.1.staged")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
