//! Test harness: a real berth server on an ephemeral loopback port with its own data directory.
//!
//! `TestServer::start` runs berth in-process (fast, and a restart on the same data directory is
//! a method call). `ProcessServer::spawn` runs the real binary, for tests that kill it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth::config::Settings;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod database;
#[allow(unused_imports)]
pub use database::*;
mod access;
#[allow(unused_imports)]
pub use access::*;
mod browser;
#[allow(unused_imports)]
pub use browser::*;
mod http;
#[allow(unused_imports)]
pub use http::*;
mod pattern;
#[allow(unused_imports)]
pub use pattern::*;
mod storage;
#[allow(unused_imports)]
pub use storage::*;
mod upstream;
#[allow(unused_imports)]
pub use upstream::*;

/// The superuser every test server has.
pub const ADMIN_USER: &str = "admin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "berth-test-password";

/// A client that sends HTTP Basic credentials with every request.
pub fn authed_client(user: &str, password: &str) -> reqwest::Client {
    use base64::Engine;
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        value.parse().expect("header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// An in-process berth.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    data: DataDir,
    settings: Settings,
    /// The running server's state, for tests that look inside it (dropped at shutdown).
    state: Option<berth::app::AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

enum DataDir {
    Owned(tempfile::TempDir),
    Borrowed(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Owned(t) => t.path(),
            DataDir::Borrowed(p) => p,
        }
    }
}

impl TestServer {
    /// Starts berth with default settings on a fresh data directory.
    pub async fn start() -> TestServer {
        Self::start_with(Settings::default()).await
    }

    /// Starts berth with the given settings on a fresh data directory.
    pub async fn start_with(settings: Settings) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::launch(DataDir::Owned(dir), settings).await
    }

    /// Starts berth on an existing data directory.
    pub async fn start_on(path: &Path) -> TestServer {
        Self::launch(DataDir::Borrowed(path.to_path_buf()), Settings::default()).await
    }

    async fn launch(data: DataDir, mut settings: Settings) -> TestServer {
        // Under BERTH_TEST_DB_URI each data directory gets its own fresh PostgreSQL database,
        // unless the test chose one (a replica of another test server).
        if settings.database.is_none() {
            if let Some(uri) = test_database_for(data.path()).await {
                settings.database = Some(berth::config::DatabaseUri::Postgres(uri));
            }
        }
        // Under BERTH_TEST_S3_ENDPOINT each data directory gets its own prefix in the bucket,
        // unless the test chose a storage location itself. berth streams the blobs (as it does
        // from the filesystem), so the suite checks its own download replies; redirects to
        // presigned URLs are tested in s3_storage.rs.
        if settings.storage == berth::config::StorageSettings::default() {
            if let Some(storage) = test_storage_for(data.path()) {
                settings.storage = storage;
                settings.proxy_storage = true;
            }
        }
        let state = berth::open(data.path(), &settings)
            .await
            .expect("open berth");
        // Access control is always on: tests act as a superuser unless they say otherwise.
        let accounts = state.auth.accounts();
        if accounts
            .account(ADMIN_USER)
            .await
            .expect("account lookup")
            .is_none()
        {
            let hash = berth::auth::secret::hash_password(ADMIN_PASSWORD);
            accounts
                .create_user(ADMIN_USER, &hash, None, true)
                .await
                .expect("create admin");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let served = state.clone();
        let task = tokio::spawn(async move {
            berth::serve(listener, served, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        TestServer {
            base,
            client: authed_client(ADMIN_USER, ADMIN_PASSWORD),
            data,
            settings,
            state: Some(state),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Stops the server gracefully and starts it again on the same data directory.
    pub async fn restart(mut self) -> TestServer {
        self.shutdown().await;
        let data = std::mem::replace(&mut self.data, DataDir::Borrowed(PathBuf::new()));
        Self::launch(data, self.settings.clone()).await
    }

    /// Stops the server and waits for in-flight requests to finish.
    pub async fn shutdown(&mut self) {
        self.state = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The metadata database this server uses.
    pub fn database_uri(&self) -> berth::config::DatabaseUri {
        berth::database_uri(self.data_dir(), &self.settings).expect("database uri")
    }

    /// The settings the server runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The running server's state (its registry, auth service and settings).
    pub fn state(&self) -> &berth::app::AppState {
        self.state.as_ref().expect("the server is running")
    }

    /// A garbage collector over this server's stores, as another replica (or `berth gc`)
    /// would open them.
    pub async fn collector(&self) -> berth::gc::Collector {
        let meta = self.metadata_store().await;
        let blobs = berth::open_blob_store(self.data_dir(), &self.settings)
            .await
            .expect("open blob store");
        berth::gc::Collector::new(meta, blobs)
    }

    /// Starts a second server (a replica) on this one's data directory and database.
    pub async fn replica(&self) -> TestServer {
        Self::launch(
            DataDir::Borrowed(self.data_dir().to_path_buf()),
            self.settings.clone(),
        )
        .await
    }

    /// A second handle on this server's metadata database, as another replica would open it.
    pub async fn metadata_store(&self) -> std::sync::Arc<dyn berth::metadata::Store> {
        berth::open_metadata(&self.database_uri())
            .await
            .expect("open metadata store")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A data directory that dies with the server takes its test database along.
        if let DataDir::Owned(dir) = &self.data {
            drop_test_database_for(dir.path());
        }
    }
}

/// The real `berth` binary as a child process, for crash tests.
pub struct ProcessServer {
    pub base: String,
    pub child: tokio::process::Child,
    /// A client authenticated as the first-start superuser `admin`.
    pub client: reqwest::Client,
    /// Every line the process has logged so far.
    pub log: std::sync::Arc<ProcessLog>,
}

/// What berth logs (at debug level for `tower_http`) when a handler starts on a request.
pub const REQUEST_STARTED: &str = "started processing request";

/// The log of a berth process, for tests that wait for something it reports.
#[derive(Default)]
pub struct ProcessLog {
    lines: std::sync::Mutex<Vec<String>>,
    changed: tokio::sync::Notify,
}

impl ProcessLog {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.changed.notify_waiters();
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// How many lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until at least `n` lines contain `needle`; false after `within`.
    pub async fn wait_for(&self, needle: &str, n: usize, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            if self.count(needle) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.count(needle) >= n;
            }
        }
    }
}

impl ProcessServer {
    /// Spawns `berth serve` on `data_dir` with an ephemeral port and waits for its ready line.
    pub async fn spawn(data_dir: &Path) -> ProcessServer {
        Self::spawn_with_config(data_dir, test_config_file_for(data_dir)).await
    }

    /// Spawns `berth serve` on `data_dir` with the config file `config` (which must carry the
    /// harness's storage keys, [`storage_config_yaml`], when the suite runs on S3).
    pub async fn spawn_with_config(data_dir: &Path, config: Option<PathBuf>) -> ProcessServer {
        Self::spawn_with_args(data_dir, config, &[]).await
    }

    /// Spawns `berth serve` with the config file `config` and extra `serve` options.
    pub async fn spawn_with_args(
        data_dir: &Path,
        config: Option<PathBuf>,
        extra: &[&str],
    ) -> ProcessServer {
        Self::spawn_logging(data_dir, config, extra, "info", None).await
    }

    /// Spawns `berth serve` with the config file `config`, allowed `open_files` file
    /// descriptors (soft and hard limit), for tests of how berth copes with few of them.
    pub async fn spawn_with_open_file_limit(
        data_dir: &Path,
        config: Option<PathBuf>,
        open_files: u64,
    ) -> ProcessServer {
        Self::spawn_logging(data_dir, config, &[], "info", Some(open_files)).await
    }

    /// Spawns `berth serve` that also logs each request it starts to handle (the line
    /// [`REQUEST_STARTED`]), for tests that must know a request reached a handler.
    pub async fn spawn_logging_requests(data_dir: &Path, extra: &[&str]) -> ProcessServer {
        let config = test_config_file_for(data_dir);
        Self::spawn_logging(data_dir, config, extra, "info,tower_http=debug", None).await
    }

    async fn spawn_logging(
        data_dir: &Path,
        config: Option<PathBuf>,
        extra: &[&str],
        log_filter: &str,
        open_files: Option<u64>,
    ) -> ProcessServer {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        if let Some(limit) = open_files {
            // SAFETY: between fork and exec the child only calls setrlimit, which is
            // async-signal-safe, and touches no memory shared with the parent.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        if let Some(uri) = test_database_for(data_dir).await {
            command.env(berth::config::DB_URI_ENV, uri);
        }
        if let Some(config) = config {
            command.env("BERTH_CONFIG", config);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("BERTH_LOG", log_filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn berth");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let log = std::sync::Arc::new(ProcessLog::default());
        let base = loop {
            let line = lines
                .next_line()
                .await
                .expect("read berth output")
                .expect("berth exited before it was ready");
            log.push(line.clone());
            if let Some(i) = line.find("berth ready on ") {
                let rest = &line[i + "berth ready on ".len()..];
                // The end of the URL: a space in text logs, a quote in JSON ones.
                let end = rest.find([' ', '"']).unwrap_or(rest.len());
                break rest[..end].to_string();
            }
        };
        // Keep draining output so the child never blocks on a full pipe.
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.push(line);
            }
        });
        let password = std::fs::read_to_string(data_dir.join(berth::INITIAL_ADMIN_PASSWORD_FILE))
            .expect("initial admin password file");
        let client = authed_client("admin", password.trim());
        ProcessServer {
            base,
            child,
            client,
            log,
        }
    }

    /// Sends SIGTERM, the signal service managers stop berth with, without waiting.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("berth is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// Kills the process with SIGKILL and reaps it.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Pushes a blob in one POST and asserts 201.
pub async fn push_blob(client: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let r = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("push blob");
    assert_eq!(
        r.status(),
        201,
        "push blob: {}",
        r.text().await.unwrap_or_default()
    );
    digest
}

/// An OCI image manifest over one config and the given layers (digest, size).
pub fn image_manifest(config: (&str, usize), layers: &[(&str, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, s)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers,
    }))
    .expect("json")
}

/// Pushes a small image (config + one layer with `content`) and tags it; returns the manifest
/// digest.
pub async fn push_image(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    content: &[u8],
) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(client, base, repo, config).await;
    let l = push_blob(client, base, repo, content).await;
    let manifest = image_manifest((&c, config.len()), &[(&l, content.len())]);
    let r = client
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .expect("put manifest");
    assert_eq!(
        r.status(),
        201,
        "put manifest: {}",
        r.text().await.unwrap_or_default()
    );
    sha256(&manifest)
}

/// The OCI error code of an error response body.
pub async fn error_code(r: reqwest::Response) -> String {
    let v: serde_json::Value = r.json().await.expect("error body is JSON");
    v["errors"][0]["code"]
        .as_str()
        .expect("errors[0].code")
        .to_string()
}

/// Resident memory of a process from `/proc/<pid>/status`: (`VmRSS`, `VmHWM`), in bytes.
pub fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| -> u64 {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from /proc/{pid}/status"));
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("a number of kB");
        kib * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}
