//! The registries `compare` starts: berth (without and with auth), CNCF distribution, and the
//! bare hello endpoint, each on a free loopback port with a fresh data directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// How long a server may take to answer `/v2/`.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A server `compare` started and stops when dropped.
pub struct Server {
    pub label: String,
    pub base: String,
    pub pid: u32,
    /// For berth with auth: the superuser's name and password.
    pub credentials: Option<(String, String)>,
    child: Child,
}

impl Server {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `command` (its output to `log`) and waits until `/v2/` answers anything.
async fn start(
    label: &str,
    mut command: Command,
    port: u16,
    log: &Path,
) -> anyhow::Result<(Child, String)> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let child = command
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {label}"))?;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let asked = stream
                .write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await;
            let mut answer = [0u8; 12];
            if asked.is_ok()
                && stream.read_exact(&mut answer).await.is_ok()
                && answer.starts_with(b"HTTP/1.1 ")
            {
                return Ok((child, base));
            }
        }
        if started.elapsed() > READY_WITHIN {
            bail!(
                "{label} did not answer within {READY_WITHIN:?} (see {})",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// berth on the embedded default (SQLite + files). Without auth, every caller may push and
/// pull, as distribution without auth; with auth, clients use the Docker token flow.
pub async fn berth(binary: &Path, work: &Path, with_auth: bool) -> anyhow::Result<Server> {
    let label = if with_auth { "berth+auth" } else { "berth" };
    let dir = work.join(label.replace('+', "-"));
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        if with_auth {
            "FEATURE_GENERAL_OCI_SUPPORT: true\n"
        } else {
            "FEATURE_GENERAL_OCI_SUPPORT: true\nAUTHENTICATION_TYPE: None\n"
        },
    )?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .env("BERTH_LOG", "warn")
        .env("NO_COLOR", "1");
    let (child, base) = start(label, command, port, &dir.join("server.log")).await?;
    let credentials = if with_auth {
        let password = std::fs::read_to_string(data.join("initial-admin-password"))
            .context("read berth's initial admin password")?;
        Some(("admin".to_string(), password.trim().to_string()))
    } else {
        None
    };
    Ok(Server {
        label: label.into(),
        base,
        pid: child.id().unwrap_or(0),
        credentials,
        child,
    })
}

/// CNCF distribution (Debian's `docker-registry`) on filesystem storage without auth, logging
/// only errors as berth does, with its in-memory blob descriptor cache (Debian's default).
pub async fn distribution(binary: &Path, work: &Path) -> anyhow::Result<Server> {
    let dir = work.join("distribution");
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let port = free_port()?;
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: 127.0.0.1:{port}\n",
            data.display()
        ),
    )?;
    let mut command = Command::new(binary);
    command.arg("serve").arg(&config);
    let (child, base) = start("distribution", command, port, &dir.join("server.log")).await?;
    Ok(Server {
        label: "distribution".into(),
        base,
        pid: child.id().unwrap_or(0),
        credentials: None,
        child,
    })
}

/// This program's own bare axum endpoint, in a process of its own so its CPU and memory are
/// measured like a registry's.
pub async fn hello(work: &Path) -> anyhow::Result<Server> {
    let dir = work.join("hello");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["hello", "--listen", &format!("127.0.0.1:{port}")]);
    let (child, base) = start("hello", command, port, &dir.join("server.log")).await?;
    Ok(Server {
        label: "axum hello".into(),
        base,
        pid: child.id().unwrap_or(0),
        credentials: None,
        child,
    })
}

/// A program's version line, for the report.
pub async fn version(binary: &Path, arg: &str) -> String {
    match Command::new(binary).arg(arg).output().await {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
            .next()
            .unwrap_or("unknown")
            .trim()
            .to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}
