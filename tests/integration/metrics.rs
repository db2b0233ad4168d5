//! Prometheus metrics: `/metrics` counts a session of pushes, pulls, refusals and failed
//! logins with bounded labels, `promtool check metrics` accepts it, a real Prometheus scrapes
//! the dedicated metrics listener, and the main listener serves it to superusers only unless
//! `METRICS_ALLOW_ANONYMOUS` is set.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package. Without them the
//! tests that need them fail when `BERTH_REQUIRE_PROMETHEUS=1` (as in CI) and skip otherwise.

use crate::common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth::config::Settings;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WITHIN: Duration = Duration::from_secs(60);

/// The Prometheus tool `name` on the PATH; `None` (skip) when it is missing, unless
/// `BERTH_REQUIRE_PROMETHEUS=1`, where a missing tool fails the test.
fn prometheus_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("BERTH_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
            "{name} is not installed (Debian package `prometheus`) and BERTH_REQUIRE_PROMETHEUS=1"
        );
        eprintln!("skipped: {name} is not installed (Debian package `prometheus`)");
    }
    found
}

/// Runs `promtool check metrics` on `text` and asserts it has nothing to say.
async fn promtool_accepts(promtool: &std::path::Path, text: &str) {
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
}

/// The value of the sample written exactly `series` (name and labels), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("sample value"))
        .unwrap_or(0.0)
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    let r = client.get(url).send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    r.text().await.unwrap()
}

const MANIFESTS: &str = "/v2/{name}/manifests/{reference}";

#[tokio::test]
async fn a_session_grows_the_counters_with_bounded_labels_and_promtool_accepts_it() {
    let s = TestServer::start().await;
    let metrics_url = s.url("/metrics");
    let before = scrape(&s.client, &metrics_url).await;

    // A push and a pull.
    let repo = "metricsorg/secret-project-name";
    let digest = push_image(&s.client, &s.base, repo, "v1-secret-tag", b"layer bytes").await;
    let r = s
        .client
        .get(s.url(&format!("/v2/{repo}/manifests/v1-secret-tag")))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A chunked upload without Content-Length still counts its bytes.
    let start = s
        .client
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let chunk = vec![7u8; 3000];
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(chunk.clone())]);
    let r = s
        .client
        .patch(format!("{}{location}", s.base))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // A push the policy refuses (an encrypted layer), a denied push and a failed login.
    let enc = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(&s.client, &s.base, repo, config).await;
    let l = push_blob(&s.client, &s.base, repo, b"sealed").await;
    let mut refused: Value =
        serde_json::from_slice(&image_manifest((&c, config.len()), &[(&l, 6)])).unwrap();
    refused["layers"][0]["mediaType"] = enc.into();
    let r = s
        .client
        .put(s.url(&format!("/v2/{repo}/manifests/refused")))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&refused).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let anonymous = reqwest::Client::new();
    let r = anonymous
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = authed_client(ADMIN_USER, "not-the-password")
        .get(s.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let after = scrape(&s.client, &metrics_url).await;
    let grew = |series: &str, by: f64| {
        let (b, a) = (sample(&before, series), sample(&after, series));
        assert!(a >= b + by, "{series}: {b} -> {a}\n{after}");
    };
    grew(
        &format!(
            "berth_http_requests_total{{route=\"{MANIFESTS}\",method=\"PUT\",status=\"201\"}}"
        ),
        1.0,
    );
    grew(
        &format!(
            "berth_http_requests_total{{route=\"{MANIFESTS}\",method=\"GET\",status=\"200\"}}"
        ),
        1.0,
    );
    grew(
        &format!(
            "berth_http_requests_total{{route=\"{MANIFESTS}\",method=\"PUT\",status=\"400\"}}"
        ),
        1.0,
    );
    grew(
        &format!(
            "berth_http_request_duration_seconds_count{{route=\"{MANIFESTS}\",method=\"GET\"}}"
        ),
        1.0,
    );
    grew(
        &format!("berth_http_response_bytes_total{{route=\"{MANIFESTS}\",method=\"GET\"}}"),
        100.0,
    );
    grew(
        "berth_http_request_bytes_total{route=\"/v2/{name}/blobs/uploads/{uuid}\",method=\"PATCH\"}",
        3000.0,
    );
    grew(
        "berth_http_requests_total{route=\"/v2/{name}/blobs/uploads/\",method=\"POST\",status=\"401\"}",
        1.0,
    );
    grew("berth_manifests_pushed_total{kind=\"image\"}", 1.0);
    grew(
        &format!("berth_policy_refusals_total{{media_type=\"{enc}\"}}"),
        1.0,
    );
    grew("berth_auth_failures_total{reason=\"bad_credentials\"}", 1.0);
    // The registry's totals: the layer, the config (shared) and the sealed layer; one open
    // upload.
    assert!(sample(&after, "berth_stored_blobs") >= 3.0, "{after}");
    assert!(sample(&after, "berth_stored_blob_bytes") > 0.0, "{after}");
    assert_eq!(sample(&after, "berth_upload_sessions_open"), 1.0, "{after}");
    assert!(
        sample(&after, "process_resident_memory_bytes") > 0.0,
        "{after}"
    );
    assert!(sample(&after, "process_open_fds") > 0.0, "{after}");
    assert!(
        sample(&after, "process_start_time_seconds") > 1.6e9,
        "{after}"
    );

    // No repository, tag or digest is ever a label.
    for secret in [
        "secret-project-name",
        "metricsorg",
        "v1-secret-tag",
        "sha256:",
    ] {
        assert!(!after.contains(secret), "{secret:?} in\n{after}");
    }
    assert!(!after.contains(&digest[7..]), "{after}");

    if let Some(promtool) = prometheus_tool("promtool") {
        promtool_accepts(&promtool, &after).await;
    }
}

#[tokio::test]
async fn the_main_listener_serves_metrics_to_superusers_only_unless_opened() {
    let s = TestServer::start().await;
    let url = s.url("/metrics");
    let anonymous = reqwest::Client::new();
    assert_eq!(anonymous.get(&url).send().await.unwrap().status(), 401);
    let wrong = authed_client(ADMIN_USER, "wrong");
    assert_eq!(wrong.get(&url).send().await.unwrap().status(), 401);
    let user = s.create_user("plainuser").await;
    assert_eq!(user.get(&url).send().await.unwrap().status(), 403);
    let text = scrape(&s.client, &url).await;
    assert!(
        text.contains("# TYPE berth_http_requests_total counter"),
        "{text}"
    );
    // An API token of the superuser, as a bearer credential.
    let created = s
        .api(
            "POST",
            "/api/v1/user/apptoken",
            Some(serde_json::json!({"title": "prometheus"})),
        )
        .await;
    assert!(created.status < 300, "{}", created.body);
    let token = created.body["token"]["token_code"]
        .as_str()
        .expect("token_code")
        .to_string();
    let r = anonymous
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let open = TestServer::start_with(Settings {
        metrics_allow_anonymous: true,
        ..Settings::default()
    })
    .await;
    scrape(&anonymous, &open.url("/metrics")).await;
}

/// The address `berth serve --metrics-listen` logged.
fn metrics_address(berth: &ProcessServer) -> String {
    let lines = berth.log.lines();
    let line = lines
        .iter()
        .find(|l| l.contains("metrics on http://"))
        .unwrap_or_else(|| panic!("no metrics listener line in {lines:#?}"));
    let rest = &line[line.find("metrics on http://").unwrap() + "metrics on http://".len()..];
    rest[..rest.find('/').unwrap()].to_string()
}

/// A Prometheus server scraping `target` as job `berth` every second.
struct Prometheus {
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
    base: String,
}

impl Prometheus {
    async fn start(binary: &std::path::Path, target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: berth\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let mut child = tokio::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // Prometheus logs the address its listener got: `msg="Listening on" address=...`.
        let address = tokio::time::timeout(WITHIN, async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("prometheus exited before it listened");
                if line.contains("Listening on") {
                    let rest = &line[line.find("address=").expect("address") + 8..];
                    break rest.split_whitespace().next().unwrap().to_string();
                }
            }
        })
        .await
        .expect("prometheus listening");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Prometheus {
            _child: child,
            _dir: dir,
            base: format!("http://{address}"),
        }
    }

    /// The value of the instant query `q`, if it has exactly one result.
    async fn query(&self, q: &str) -> Option<f64> {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", q)])
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        let result = v["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Polls `q` until `done` holds for its value; panics at the deadline.
    async fn wait_for(&self, q: &str, done: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + WITHIN;
        loop {
            if let Some(v) = self.query(q).await.filter(|v| done(*v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "prometheus: {q} never held");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_metrics_listener() {
    let Some(binary) = prometheus_tool("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let berth = ProcessServer::spawn_with_args(
        dir.path(),
        test_config_file_for(dir.path()),
        &["--metrics-listen", "127.0.0.1:0"],
    )
    .await;
    let target = metrics_address(&berth);
    // The dedicated listener needs no credentials.
    let text = scrape(&reqwest::Client::new(), &format!("http://{target}/metrics")).await;
    assert!(text.contains("process_cpu_seconds_total"), "{text}");

    let prometheus = Prometheus::start(&binary, &target).await;
    prometheus.wait_for("up{job=\"berth\"}", |v| v == 1.0).await;
    let query = "sum(berth_http_requests_total{job=\"berth\",route=\"/v2/\"})";
    let seen = prometheus.query(query).await.unwrap_or(0.0);
    for _ in 0..3 {
        let r = berth
            .client
            .get(format!("{}/v2/", berth.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    prometheus.wait_for(query, |v| v >= seen + 3.0).await;
}
