//! Real upstream registries for the proxy cache and mirroring tests: CNCF distribution
//! (`docker-registry`, Debian's package) with an htpasswd file, started on a free loopback
//! port, and a generic image push that works against any registry.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

/// A running CNCF distribution with htpasswd authentication; killed when dropped.
pub struct Distribution {
    pub base: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// Serves HTTPS with a self-signed certificate.
    pub tls: bool,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl Distribution {
    /// Starts `docker-registry` with one htpasswd user (`bcrypt`, made by `htpasswd -B`, the
    /// only kind distribution accepts) and waits until `/v2/` answers (deadline 30 s).
    pub async fn start(user: &str, password: &str) -> Distribution {
        Self::start_on(free_port(), false, user, password).await
    }

    /// As [`Distribution::start`], on `port`, serving HTTPS with a fresh self-signed
    /// certificate when `tls`.
    pub async fn start_on(port: u16, tls: bool, user: &str, password: &str) -> Distribution {
        let dir = tempfile::tempdir().expect("temp dir");
        let htpasswd = std::process::Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("htpasswd (apache2-utils) must be installed");
        assert!(htpasswd.status.success(), "htpasswd failed");
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).expect("write htpasswd");
        let mut tls_config = String::new();
        if tls {
            let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
                .expect("self-signed certificate");
            std::fs::write(dir.path().join("cert.pem"), pair.cert.pem()).expect("cert");
            std::fs::write(dir.path().join("key.pem"), pair.signing_key.serialize_pem())
                .expect("key");
            tls_config = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  \
delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_config}auth:\n  htpasswd:\n    realm: upstream-test\n    path: {htpasswd}\n",
            root = dir.path().join("storage").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("write config");
        let scheme = if tls { "https" } else { "http" };
        let mut d = Distribution {
            base: format!("{scheme}://127.0.0.1:{port}"),
            port,
            user: user.to_string(),
            password: password.to_string(),
            tls,
            dir,
            child: None,
        };
        d.launch().await;
        d
    }

    async fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("registry.log")).expect("log file");
        let child = tokio::process::Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry (Debian package docker-registry) must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if self.tls {
                // Listening is ready enough: the test's client speaks TLS, this one does not.
                if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
                {
                    return;
                }
            } else if let Ok(r) = client.get(format!("{}/v2/", self.base)).send().await {
                if r.status() == 401 {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("docker-registry exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The registry's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where distribution keeps a blob's bytes (to corrupt them in a test).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A client sending this registry's credentials.
    pub fn client(&self) -> reqwest::Client {
        super::authed_client(&self.user, &self.password)
    }

    /// Stops the registry and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port and storage.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }
}

/// A port free at the time of asking (the registry binds it a moment later).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Pushes a blob with a POST and a PUT (the two-step upload every registry supports).
pub async fn upload_blob(client: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = super::sha256(bytes);
    let r = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("start upload");
    assert_eq!(
        r.status(),
        202,
        "start upload: {}",
        r.text().await.unwrap_or_default()
    );
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let mut url = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&format!("digest={digest}"));
    let r = client
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("finish upload");
    assert_eq!(
        r.status(),
        201,
        "finish upload: {}",
        r.text().await.unwrap_or_default()
    );
    digest
}

/// An image pushed by [`push_test_image`].
pub struct PushedImage {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub config: String,
    pub layer: String,
    pub layer_bytes: Vec<u8>,
}

/// Pushes an OCI image (a config and one layer of `layer_len` bytes from `seed`) as `tag`.
pub async fn push_test_image(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    seed: u8,
    layer_len: usize,
) -> PushedImage {
    let config_bytes = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []}, "seed": seed,
    }))
    .expect("json");
    let layer_bytes = super::sample(seed, layer_len);
    let config = upload_blob(client, base, repo, &config_bytes).await;
    let layer = upload_blob(client, base, repo, &layer_bytes).await;
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_len}],
    }))
    .expect("json");
    let r = super::put_manifest(client, base, repo, tag, media_type, &manifest).await;
    assert_eq!(
        r.status(),
        201,
        "push manifest: {}",
        r.text().await.unwrap_or_default()
    );
    PushedImage {
        digest: super::sha256(&manifest),
        manifest,
        config,
        layer,
        layer_bytes,
    }
}

/// Pushes an OCI index naming `manifests` (descriptors) under `tag`; returns its digest.
pub async fn push_index(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    manifests: Vec<serde_json::Value>,
) -> String {
    let media_type = "application/vnd.oci.image.index.v1+json";
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type, "manifests": manifests,
    }))
    .expect("json");
    let r = super::put_manifest(client, base, repo, tag, media_type, &index).await;
    assert_eq!(
        r.status(),
        201,
        "push index: {}",
        r.text().await.unwrap_or_default()
    );
    super::sha256(&index)
}

/// A TCP relay in front of `target` that records every byte clients send through it, so a
/// test can count the requests that reached the real server behind it.
pub struct RecordingRelay {
    pub addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl RecordingRelay {
    pub async fn start(target: std::net::SocketAddr) -> RecordingRelay {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let record = record.clone();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
            }
        });
        RecordingRelay { addr, seen }
    }

    /// How many request heads containing `needle` (a request line, say) carried an
    /// `Authorization` header: the requests the upstream answered with content, not with
    /// the challenge a client without credentials gets first.
    pub fn count_authorized(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.seen.lock().unwrap())
            .split("\r\n\r\n")
            .filter(|head| head.contains(needle))
            .filter(|head| head.to_ascii_lowercase().contains("\r\nauthorization:"))
            .count()
    }

    /// The request heads containing `needle`, for failure messages.
    pub fn heads(&self, needle: &str) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap())
            .split("\r\n\r\n")
            .filter(|head| head.contains(needle))
            .map(|head| head.lines().next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Everything clients have sent through the relay so far.
    pub fn sent(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }

    /// Forgets what was sent so far.
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// How many times `needle` occurs in what clients sent (a request line, say).
    pub fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.seen.lock().unwrap())
            .matches(needle)
            .count()
    }
}
