//! The registries `compare` starts: berth (without and with auth), CNCF distribution, and the
//! bare hello endpoint, each on a free loopback port with a fresh data directory; and for the
//! scale-out comparison the PostgreSQL and Garage they share, berth as two replicas on them,
//! and distribution on Garage through its S3 driver.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// How long a server may take to answer `/v2/`.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A server `compare` started (one process, or several replicas of one registry) and stops
/// when dropped.
pub struct Server {
    pub label: String,
    /// Where each process listens, `http://127.0.0.1:PORT`.
    pub bases: Vec<String>,
    pub pids: Vec<u32>,
    /// For berth with auth: the superuser's name and password.
    pub credentials: Option<(String, String)>,
    /// berth's config file, which every replica reads.
    config: Option<PathBuf>,
    children: Vec<Child>,
}

impl Server {
    fn new(label: &str, processes: Vec<(Child, String)>) -> Server {
        let pids = processes.iter().map(|(c, _)| c.id().unwrap_or(0)).collect();
        let (children, bases) = processes.into_iter().unzip();
        Server {
            label: label.into(),
            bases,
            pids,
            credentials: None,
            config: None,
            children,
        }
    }

    /// Stops every process and waits for them.
    pub async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        for child in &mut self.children {
            let _ = child.wait().await;
        }
    }

    /// Replaces `from` by `to` in berth's config file and has every replica read it again at
    /// once (SIGHUP) instead of at its next poll.
    pub fn reconfigure(&self, from: &str, to: &str) -> anyhow::Result<()> {
        let path = self
            .config
            .as_ref()
            .context("this server has no config file")?;
        let text = std::fs::read_to_string(path)?;
        if !text.contains(from) {
            bail!("{} does not say {from}", path.display());
        }
        // Written aside and renamed, so a replica's poll never reads half a file.
        let staged = path.with_extension("new");
        std::fs::write(&staged, text.replace(from, to))?;
        std::fs::rename(&staged, path)?;
        for &pid in &self.pids {
            // SAFETY: kill(2) with a pid this program started and still holds.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
        }
        Ok(())
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
    let mut child = command
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
        if let Ok(Some(status)) = child.try_wait() {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log_text.lines().rev().take(10).collect();
            bail!(
                "{label} exited ({status}) before it answered; the end of {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
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

/// Starts one berth process with `config` and `data`, logging to `log`.
async fn berth_process(
    label: &str,
    binary: &Path,
    data: &Path,
    config: &Path,
    log: &Path,
    initial_admin: bool,
) -> anyhow::Result<(Child, String)> {
    std::fs::create_dir_all(data)?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env(
            "BERTH_LOG",
            std::env::var("BENCH_BERTH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("NO_COLOR", "1");
    if !initial_admin {
        command.arg("--no-initial-admin");
    }
    start(label, command, port, log).await
}

/// The superuser berth created at its first start in `data`.
fn initial_admin(data: &Path) -> anyhow::Result<(String, String)> {
    let password = std::fs::read_to_string(data.join("initial-admin-password"))
        .context("read berth's initial admin password")?;
    Ok(("admin".to_string(), password.trim().to_string()))
}

/// berth on the embedded default (SQLite + files). Without auth, every caller may push and
/// pull, as distribution without auth; with auth, clients use the Docker token flow.
pub async fn berth(binary: &Path, work: &Path, with_auth: bool) -> anyhow::Result<Server> {
    berth_with(binary, work, with_auth, "").await
}

/// [`berth`] with `extra` lines appended to its config file (features a bench needs).
pub async fn berth_with(
    binary: &Path,
    work: &Path,
    with_auth: bool,
    extra: &str,
) -> anyhow::Result<Server> {
    let label = if with_auth { "berth+auth" } else { "berth" };
    let dir = work.join(label.replace('+', "-"));
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let config = dir.join("config.yaml");
    let base = if with_auth {
        "FEATURE_GENERAL_OCI_SUPPORT: true\n"
    } else {
        "FEATURE_GENERAL_OCI_SUPPORT: true\nAUTHENTICATION_TYPE: None\n"
    };
    std::fs::write(&config, format!("{base}{extra}"))?;
    let process =
        berth_process(label, binary, &data, &config, &dir.join("server.log"), true).await?;
    let mut server = Server::new(label, vec![process]);
    if with_auth {
        server.credentials = Some(initial_admin(&data)?);
    }
    server.config = Some(config);
    Ok(server)
}

/// The config line that makes berth stream blobs itself; `false` redirects downloads to
/// presigned URLs of the object store.
pub const PROXY_STORAGE_ON: &str = "FEATURE_PROXY_STORAGE: true";
pub const PROXY_STORAGE_OFF: &str = "FEATURE_PROXY_STORAGE: false";

/// `replicas` berth processes sharing one PostgreSQL database (`database`, created here) and
/// one key prefix (`prefix`) of the Garage bucket, each with its own data directory (which
/// holds only the first start's admin password), streaming blobs themselves
/// (`FEATURE_PROXY_STORAGE: true`). The first replica starts alone and creates the superuser;
/// the others join it.
pub async fn berth_replicas(
    binary: &Path,
    work: &Path,
    backing: &Backing,
    with_auth: bool,
    replicas: usize,
) -> anyhow::Result<Server> {
    let label = if with_auth { "berth+auth" } else { "berth" };
    let name = label.replace('+', "-");
    let dir = work.join(&name);
    std::fs::create_dir_all(&dir)?;
    let database = backing
        .create_database(&format!("bench_{}", name.replace('-', "_")))
        .await?;
    let s3 = &backing.s3;
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "DB_URI: \"{database}\"\n\
             DISTRIBUTED_STORAGE_CONFIG:\n  default:\n  - S3Storage\n\
             \x20 - endpoint_url: \"{}\"\n\
             \x20   s3_bucket: \"{}\"\n\
             \x20   s3_access_key: \"{}\"\n\
             \x20   s3_secret_key: \"{}\"\n\
             \x20   s3_region: \"{}\"\n\
             \x20   storage_path: /{name}\n\
             DISTRIBUTED_STORAGE_PREFERENCE: [default]\n\
             {PROXY_STORAGE_ON}\n\
             FEATURE_GENERAL_OCI_SUPPORT: true\n{}",
            s3.endpoint,
            s3.bucket,
            s3.access_key,
            s3.secret_key,
            s3.region,
            if with_auth {
                ""
            } else {
                "AUTHENTICATION_TYPE: None\n"
            }
        ),
    )?;
    let mut processes = Vec::new();
    for n in 0..replicas.max(1) {
        let replica = dir.join(format!("replica{}", n + 1));
        processes.push(
            berth_process(
                &format!("{label} replica {}", n + 1),
                binary,
                &replica.join("data"),
                &config,
                &replica.join("server.log"),
                n == 0,
            )
            .await?,
        );
    }
    let mut server = Server::new(label, processes);
    if with_auth {
        server.credentials = Some(initial_admin(&dir.join("replica1").join("data"))?);
    }
    server.config = Some(config);
    Ok(server)
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
    let process = start("distribution", command, port, &dir.join("server.log")).await?;
    Ok(Server::new("distribution", vec![process]))
}

/// CNCF distribution on the Garage of `backing` through its S3 driver, in its own root
/// directory of the bucket, with redirects to the store turned off so blobs stream through it
/// as through berth; otherwise configured as [`distribution`].
pub async fn distribution_s3(
    binary: &Path,
    work: &Path,
    backing: &Backing,
) -> anyhow::Result<Server> {
    let dir = work.join("distribution");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let s3 = &backing.s3;
    let config = dir.join("config.yml");
    // distribution 2.8 addresses the bucket by path when `regionendpoint` is set, and checks
    // `region` against AWS's list only when it is not.
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  s3:\n    accesskey: \"{}\"\n    secretkey: \"{}\"\n\
             \x20   region: \"{}\"\n    regionendpoint: \"{}\"\n    bucket: \"{}\"\n\
             \x20   secure: false\n    v4auth: true\n    rootdirectory: /distribution\n\
             \x20 redirect:\n    disable: true\n\
             \x20 delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            s3.access_key, s3.secret_key, s3.region, s3.endpoint, s3.bucket
        ),
    )?;
    let mut command = Command::new(binary);
    // The AWS SDK in distribution 2.8 panics at start when told of a CA bundle (its HTTP
    // transport cannot take one); Garage is reached over plain HTTP anyway.
    command
        .arg("serve")
        .arg(&config)
        .env_remove("AWS_CA_BUNDLE");
    let process = start("distribution", command, port, &dir.join("server.log")).await?;
    Ok(Server::new("distribution", vec![process]))
}

/// This program's own bare axum endpoint, in a process of its own so its CPU and memory are
/// measured like a registry's.
pub async fn hello(work: &Path) -> anyhow::Result<Server> {
    let dir = work.join("hello");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["hello", "--listen", &format!("127.0.0.1:{port}")]);
    let process = start("hello", command, port, &dir.join("server.log")).await?;
    Ok(Server::new("axum hello", vec![process]))
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

/// The project's throwaway PostgreSQL and Garage scripts, run with their state in the work
/// directory.
const POSTGRES_SH: &str = include_str!("../../../scripts/postgres.sh");
const GARAGE_SH: &str = include_str!("../../../scripts/garage.sh");

/// How berth and distribution reach the Garage bucket.
pub struct S3 {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// The PostgreSQL and the single-node Garage that the scale-out comparison's registries share,
/// started by `scripts/postgres.sh` and `scripts/garage.sh` with their state in the work
/// directory. Stopped (and their state removed) when dropped, so an error or an interrupted
/// run leaves nothing running.
pub struct Backing {
    dir: PathBuf,
    /// `postgresql://berth:…@127.0.0.1:PORT/berth`; the role may create databases.
    uri: String,
    pub s3: S3,
    psql: PathBuf,
}

impl Backing {
    /// Starts PostgreSQL and Garage under `work` (`postgres/`, `garage/`, the scripts beside).
    pub async fn start(work: &Path) -> anyhow::Result<Backing> {
        reachable_by_postgres(work)?;
        std::fs::write(work.join("postgres.sh"), POSTGRES_SH)?;
        std::fs::write(work.join("garage.sh"), GARAGE_SH)?;
        let psql = which("psql")
            .or_else(|| pg_bin().map(|b| b.join("psql")))
            .context("no psql on PATH (install Debian's postgresql package)")?;
        // From here on, dropping `backing` stops whatever has started.
        let mut backing = Backing {
            dir: work.to_path_buf(),
            uri: String::new(),
            s3: S3 {
                endpoint: String::new(),
                bucket: String::new(),
                access_key: String::new(),
                secret_key: String::new(),
                region: String::new(),
            },
            psql,
        };
        eprintln!("starting PostgreSQL (scripts/postgres.sh)");
        backing.uri = backing.script("postgres", "start").await?;
        eprintln!("starting Garage (scripts/garage.sh)");
        backing.script("garage", "start").await?;
        let env = std::fs::read_to_string(work.join("garage").join("env"))
            .context("read Garage's env file")?;
        let var = |key: &str| -> anyhow::Result<String> {
            env.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
                .with_context(|| format!("{key} missing from Garage's env file"))
        };
        backing.s3 = S3 {
            endpoint: var("BERTH_TEST_S3_ENDPOINT")?,
            bucket: var("BERTH_TEST_S3_BUCKET")?,
            access_key: var("BERTH_TEST_S3_ACCESS_KEY")?,
            secret_key: var("BERTH_TEST_S3_SECRET_KEY")?,
            region: var("BERTH_TEST_S3_REGION")?,
        };
        Ok(backing)
    }

    /// Runs `scripts/<name>.sh <verb>` with its state in the work directory, returning its
    /// standard output (written to a file: the servers it starts must not hold a pipe open).
    async fn script(&self, name: &str, verb: &str) -> anyhow::Result<String> {
        let out = self.dir.join(format!("{name}-{verb}.out"));
        let status = Command::new("bash")
            .arg(self.dir.join(format!("{name}.sh")))
            .arg(verb)
            .envs(script_env(&self.dir))
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&out)?))
            .status()
            .await
            .with_context(|| format!("run scripts/{name}.sh {verb}"))?;
        let output = std::fs::read_to_string(&out).unwrap_or_default();
        if !status.success() {
            bail!("scripts/{name}.sh {verb} failed ({status}): {output}");
        }
        Ok(output.trim().to_string())
    }

    /// Creates the database `name` and returns its URI.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let status = Command::new(&self.psql)
            .arg(&self.uri)
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .stdin(Stdio::null())
            .status()
            .await
            .context("run psql")?;
        if !status.success() {
            bail!("psql could not create the database {name}");
        }
        let (server, _) = self
            .uri
            .rsplit_once('/')
            .context("the PostgreSQL URI names no database")?;
        Ok(format!("{server}/{name}"))
    }

    /// The servers' versions, for the report.
    pub async fn versions(&self) -> Vec<(String, String)> {
        let postgres = match Command::new(&self.psql)
            .arg(&self.uri)
            .args(["-tAc", "SHOW server_version"])
            .output()
            .await
        {
            Ok(out) if out.status.success() => {
                format!("PostgreSQL {}", String::from_utf8_lossy(&out.stdout).trim())
            }
            _ => "unknown".into(),
        };
        let garage = match garage_binary() {
            Some(g) => version(&g, "--version").await,
            None => "unknown".into(),
        };
        vec![("PostgreSQL".into(), postgres), ("Garage".into(), garage)]
    }

    /// Stops Garage and PostgreSQL left in `work` by a run that could not clean up (killed).
    pub fn stop_leftovers(work: &Path) {
        for name in ["garage", "postgres"] {
            if work.join(name).exists() {
                eprintln!(
                    "stopping the {name} a previous run left in {}",
                    work.display()
                );
            }
        }
        Backing::stop(work);
    }

    /// Stops Garage and PostgreSQL in `work` with their scripts, which remove their state.
    fn stop(work: &Path) {
        for name in ["garage", "postgres"] {
            let script = work.join(format!("{name}.sh"));
            if script.is_file() && work.join(name).exists() {
                let _ = std::process::Command::new("bash")
                    .arg(&script)
                    .arg("stop")
                    .envs(script_env(work))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        eprintln!("stopping Garage and PostgreSQL");
        // Their logs stay in the work directory (with --keep) after their state is removed.
        for (log, copy) in [
            ("postgres/server.log", "postgres.log"),
            ("garage/node1/garage.log", "garage.log"),
        ] {
            let _ = std::fs::copy(self.dir.join(log), self.dir.join(copy));
        }
        Backing::stop(&self.dir);
    }
}

/// As root, scripts/postgres.sh runs PostgreSQL as the `postgres` user, which must be able to
/// reach its state directory under `work`: opens `work` to it and checks the directories
/// above.
fn reachable_by_postgres(work: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let work = std::fs::canonicalize(work)?;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o711))?;
    for dir in work.ancestors().skip(1) {
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o001 == 0 {
            bail!(
                "PostgreSQL runs as the postgres user, which cannot enter {} (mode {:o}); choose another --work-dir or `chmod o+x` it",
                dir.display(),
                mode & 0o777
            );
        }
    }
    Ok(())
}

/// The scripts' settings: their state under `work`, one Garage node, the bench's bucket.
fn script_env(work: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("BERTH_PG_STATE", work.join("postgres")),
        ("BERTH_GARAGE_STATE", work.join("garage")),
        ("BERTH_GARAGE_BUCKET", "berth-bench".into()),
        ("GARAGE_NODES", "1".into()),
    ]
}

/// PostgreSQL's newest `bin` directory, where scripts/postgres.sh looks for it.
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

/// Garage where scripts/garage.sh finds it.
fn garage_binary() -> Option<PathBuf> {
    which("garage").or_else(|| {
        let home = std::env::var_os("HOME")?;
        let path = Path::new(&home).join(".cargo/bin/garage");
        path.is_file().then_some(path)
    })
}
