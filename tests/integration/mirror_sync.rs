//! The repository mirror sync worker (issue 20) against real upstreams started here: CNCF
//! distribution with htpasswd (Basic; referrers through the tag schema) and a second berth
//! (the Docker token flow; the referrers API). A mirror with rule `["1.*"]` copies exactly the
//! matching tags with every platform, their cosign tags and referrers, byte for byte; a second
//! sync transfers nothing; removed and moved upstream tags are reflected; a wrong password
//! fails the sync and spends a retry; a sync killed halfway finishes on the next run; two
//! replicas sync a mirror once.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const UPSTREAM_USER: &str = "puller";
const UPSTREAM_PASSWORD: &str = "upstream-pa55";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn settings() -> berth::config::Settings {
    berth::config::Settings {
        repo_mirror: true,
        repo_mirror_interval: Duration::from_secs(1),
        ..Default::default()
    }
}

/// What the upstream's `library/app` holds.
struct UpstreamApp {
    /// Tag `1.0`: an image.
    one: PushedImage,
    /// Tag `1.1`: a two-platform index, and its children.
    index: String,
    children: Vec<String>,
    /// The cosign tag-scheme signature of `1.0` (`sha256-<hex>.sig`).
    signature_tag: String,
    /// A referrer (an SBOM) of the `1.1` index.
    referrer: String,
}

/// Pushes a cosign-style signature of `subject` under its tag-scheme tag; returns the tag.
async fn push_cosign_signature(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    subject: &str,
) -> String {
    let config = upload_blob(client, base, repo, b"{\"cosign\":true}").await;
    let payload =
        format!("{{\"critical\":{{\"image\":{{\"docker-manifest-digest\":\"{subject}\"}}}}}}");
    let layer = upload_blob(client, base, repo, payload.as_bytes()).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 15},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": layer, "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDfake"}
        }],
    }))
    .expect("json");
    let tag = format!("{}.sig", subject.replacen(':', "-", 1));
    let r = put_manifest(client, base, repo, &tag, MANIFEST, &manifest).await;
    assert_eq!(r.status(), 201, "push signature");
    tag
}

/// Pushes a referrer (an SBOM) of `subject` and, for registries without the referrers API,
/// the tag-schema index naming it.
async fn push_sbom(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    subject: &str,
    subject_type: &str,
    subject_size: usize,
    tag_schema: bool,
) -> String {
    let empty = upload_blob(client, base, repo, b"{}").await;
    let sbom = format!("sbom of {subject}");
    let layer = upload_blob(client, base, repo, sbom.as_bytes()).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "text/spdx+json", "digest": layer, "size": sbom.len()}],
        "subject": {"mediaType": subject_type, "digest": subject, "size": subject_size},
    }))
    .expect("json");
    let digest = sha256(&manifest);
    let r = put_manifest(client, base, repo, &digest, MANIFEST, &manifest).await;
    assert_eq!(r.status(), 201, "push referrer");
    if tag_schema {
        let tag = subject.replacen(':', "-", 1);
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": INDEX,
            "manifests": [{"mediaType": MANIFEST, "digest": digest, "size": manifest.len(),
                           "artifactType": "application/spdx+json"}],
        }))
        .expect("json");
        let r = put_manifest(client, base, repo, &tag, INDEX, &index).await;
        assert_eq!(r.status(), 201, "push referrers tag");
    }
    digest
}

/// Fills `library/app` upstream: `1.0`, `1.1` (an index of two platforms), `2.0`, `latest`,
/// `1.0`'s cosign signature and a referrer of `1.1`.
async fn fill_upstream(client: &reqwest::Client, base: &str, tag_schema: bool) -> UpstreamApp {
    let repo = "library/app";
    let one = push_test_image(client, base, repo, "1.0", 1, 3000).await;
    let amd = push_test_image(client, base, repo, "build-amd64", 2, 2000).await;
    let arm = push_test_image(client, base, repo, "build-arm64", 3, 2500).await;
    let descriptors = vec![
        json!({"mediaType": MANIFEST, "digest": amd.digest, "size": amd.manifest.len(),
               "platform": {"architecture": "amd64", "os": "linux"}}),
        json!({"mediaType": MANIFEST, "digest": arm.digest, "size": arm.manifest.len(),
               "platform": {"architecture": "arm64", "os": "linux"}}),
    ];
    let index = push_index(client, base, repo, "1.1", descriptors).await;
    push_test_image(client, base, repo, "2.0", 4, 1000).await;
    push_test_image(client, base, repo, "latest", 5, 1000).await;
    let signature_tag = push_cosign_signature(client, base, repo, &one.digest).await;
    let index_size = manifest_bytes(client, base, repo, &index).await.len();
    let referrer = push_sbom(client, base, repo, &index, INDEX, index_size, tag_schema).await;
    UpstreamApp {
        one,
        index,
        children: vec![amd.digest, arm.digest],
        signature_tag,
        referrer,
    }
}

async fn manifest_bytes(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
) -> Vec<u8> {
    let r = client
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", format!("{MANIFEST}, {INDEX}"))
        .send()
        .await
        .expect("get manifest");
    assert_eq!(r.status(), 200, "GET {repo}:{reference}");
    r.bytes().await.expect("manifest bytes").to_vec()
}

async fn tags_of(client: &reqwest::Client, base: &str, repo: &str) -> BTreeSet<String> {
    let r = client
        .get(format!("{base}/v2/{repo}/tags/list"))
        .send()
        .await
        .expect("tags");
    let body: Value = r.json().await.expect("tags json");
    body["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Organization `acme` with robot `acme+sync` and repository `acme/app` in state `MIRROR`,
/// mirroring `reference` with rule `["1.*"]`.
async fn mirror_of(s: &impl Api, reference: &str, password: &str) {
    s.call(
        "POST",
        "/api/v1/organization/",
        json!({ "name": "acme" }),
        201,
    )
    .await;
    s.call(
        "PUT",
        "/api/v1/organization/acme/robots/sync",
        Value::Null,
        201,
    )
    .await;
    s.call(
        "POST",
        "/api/v1/repository",
        json!({"namespace": "acme", "repository": "app", "visibility": "private"}),
        201,
    )
    .await;
    s.call(
        "PUT",
        "/api/v1/repository/acme/app/changestate",
        json!({ "state": "MIRROR" }),
        200,
    )
    .await;
    s.call(
        "POST",
        "/api/v1/repository/acme/app/mirror",
        json!({
            "is_enabled": true,
            "external_reference": reference,
            "sync_interval": 3600,
            "sync_start_date": "2020-01-01T00:00:00Z",
            "root_rule": { "rule_kind": "tag_glob_csv", "rule_value": ["1.*"] },
            "robot_username": "acme+sync",
            "external_registry_username": UPSTREAM_USER,
            "external_registry_password": password,
            "external_registry_config": { "verify_tls": false, "unsigned_images": false },
        }),
        201,
    )
    .await;
}

/// The management API of a berth, in-process or a child process.
trait Api {
    fn client(&self) -> &reqwest::Client;
    fn base(&self) -> &str;

    async fn read(&self, path: &str) -> ApiReply {
        api_call(
            self.client(),
            "GET",
            &format!("{}{path}", self.base()),
            None,
        )
        .await
    }

    async fn call(&self, method: &str, path: &str, body: Value, status: u16) -> Value {
        let body = (!body.is_null()).then_some(body);
        let r = api_call(
            self.client(),
            method,
            &format!("{}{path}", self.base()),
            body,
        )
        .await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        r.body
    }
}

impl Api for TestServer {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn base(&self) -> &str {
        &self.base
    }
}

impl Api for ProcessServer {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn base(&self) -> &str {
        &self.base
    }
}

const MIRROR: &str = "/api/v1/repository/acme/app/mirror";

/// Waits (deadline 60 s) until the mirror's status is `status` with a sync log other than
/// `previous`; returns the configuration.
async fn wait_for(s: &impl Api, status: &str, previous: &Value) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = s.read(MIRROR).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["sync_status"] == status && &r.body["sync_log"] != previous {
            return r.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {status} within 60 s: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks for a sync now (again while a sync, such as a retry, runs: the API refuses it then)
/// and waits for it to end with `status`.
async fn sync_now(s: &impl Api, status: &str) -> Value {
    let previous = s.read(MIRROR).await.body["sync_log"].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("{}{MIRROR}/sync-now", s.base());
        let r = api_call(s.client(), "POST", &url, None).await;
        if r.status == 204 {
            break;
        }
        assert_eq!(r.status, 404, "{}", r.body);
        assert!(
            tokio::time::Instant::now() < deadline,
            "sync-now refused: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(s, status, &previous).await
}

fn log_tags(mirror: &Value, result: &str) -> BTreeSet<String> {
    mirror["sync_log"]["tags"]
        .as_array()
        .expect("sync log tags")
        .iter()
        .filter(|t| t["result"] == result)
        .map(|t| t["tag"].as_str().unwrap().to_string())
        .collect()
}

/// Usage logs of `acme/app` of `kind`, polled until at least `n` (deadline 10 s).
async fn usage_logs(s: &impl Api, kind: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let logs = s.read("/api/v1/repository/acme/app/logs").await;
        let found: Vec<Value> = logs.body["logs"]
            .as_array()
            .map(|l| l.iter().filter(|e| e["kind"] == kind).cloned().collect())
            .unwrap_or_default();
        if found.len() >= n || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_mirror_of_distribution_copies_matching_tags_signatures_and_referrers_exactly() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let up = dist.client();
    let app = fill_upstream(&up, &dist.base, true).await;
    let s = TestServer::start_with(settings()).await;
    mirror_of(
        &s,
        &format!("127.0.0.1:{}/library/app", dist.port),
        UPSTREAM_PASSWORD,
    )
    .await;

    let first = wait_for(&s, "SYNC_SUCCESS", &Value::Null).await;
    assert_eq!(first["sync_retries_remaining"], 3, "{first}");
    let expected: BTreeSet<String> = ["1.0", "1.1", app.signature_tag.as_str()]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(tags_of(&s.client, &s.base, "acme/app").await, expected);
    assert_eq!(
        log_tags(&first, "copied"),
        expected,
        "{}",
        first["sync_log"]
    );
    let blobs = first["sync_log"]["blobs_copied"].as_u64().unwrap();
    assert!(blobs >= 6, "{}", first["sync_log"]);
    // Byte-identical manifests: the tags, the index's children, the signature, the referrer.
    for reference in ["1.0", "1.1", app.signature_tag.as_str()]
        .into_iter()
        .map(String::from)
        .chain(app.children.iter().cloned())
        .chain([app.referrer.clone(), app.one.digest.clone()])
    {
        assert_eq!(
            manifest_bytes(&s.client, &s.base, "acme/app", &reference).await,
            manifest_bytes(&up, &dist.base, "library/app", &reference).await,
            "{reference}"
        );
    }
    let blob = s
        .client
        .get(s.url(&format!("/v2/acme/app/blobs/{}", app.one.layer)))
        .send()
        .await
        .expect("blob");
    assert_eq!(
        blob.bytes().await.unwrap().as_ref(),
        app.one.layer_bytes.as_slice()
    );
    // The referrer is served by berth's referrers API.
    let referrers: Value = s
        .client
        .get(s.url(&format!("/v2/acme/app/referrers/{}", app.index)))
        .send()
        .await
        .expect("referrers")
        .json()
        .await
        .expect("referrers json");
    assert_eq!(
        referrers["manifests"][0]["digest"],
        app.referrer.as_str(),
        "{referrers}"
    );
    assert!(metric(&s, "berth_mirror_blobs_copied_total").await >= blobs as f64);
    assert!(metric(&s, "berth_mirror_syncs_total{result=\"success\"}").await >= 1.0);

    // The robot is the performer of the sync and of the pushes it made.
    for kind in [
        "repo_mirror_sync_started",
        "repo_mirror_sync_success",
        "repo_mirror_sync_tag_success",
        "push_repo",
    ] {
        let logs = usage_logs(&s, kind, 1).await;
        assert!(!logs.is_empty(), "no {kind}");
        assert!(
            logs.iter().all(|l| l["performer"]["name"] == "acme+sync"),
            "{kind}: {logs:?}"
        );
    }

    // The dashboard's Settings tab shows the status and the last sync's log.
    let mut admin = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let page = admin.get("/repository/acme/app?tab=settings").await;
    assert!(
        page.has("SYNC_SUCCESS")
            && page.has("Last sync")
            && page.has(&app.signature_tag)
            && page.has("3 copied, 0 unchanged, 0 failed, 0 removed"),
        "{}",
        page.body
    );

    // A second sync transfers nothing.
    let second = sync_now(&s, "SYNC_SUCCESS").await;
    assert_eq!(
        second["sync_log"]["blobs_copied"], 0,
        "{}",
        second["sync_log"]
    );
    assert_eq!(
        second["sync_log"]["manifests_copied"], 0,
        "{}",
        second["sync_log"]
    );
    assert_eq!(
        log_tags(&second, "unchanged"),
        ["1.0", "1.1"].into_iter().map(String::from).collect()
    );
    assert_eq!(tags_of(&s.client, &s.base, "acme/app").await, expected);

    // A user push into the mirror is refused.
    let r = s
        .client
        .post(s.url("/v2/acme/app/blobs/uploads/"))
        .send()
        .await
        .expect("push");
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap_or_default());

    // Upstream: 1.0 deleted (with its signature tag), 1.1 moved to a new image, 1.2 added.
    for digest in [&app.one.digest] {
        let r = up
            .delete(format!("{}/v2/library/app/manifests/{digest}", dist.base))
            .send()
            .await
            .expect("delete upstream");
        assert_eq!(r.status(), 202);
    }
    let moved = push_test_image(&up, &dist.base, "library/app", "1.1", 6, 1500).await;
    push_test_image(&up, &dist.base, "library/app", "1.2", 7, 1500).await;
    let third = sync_now(&s, "SYNC_SUCCESS").await;
    assert_eq!(
        tags_of(&s.client, &s.base, "acme/app").await,
        ["1.1", "1.2"].into_iter().map(String::from).collect(),
        "{}",
        third["sync_log"]
    );
    assert_eq!(
        manifest_bytes(&s.client, &s.base, "acme/app", "1.1").await,
        moved.manifest
    );
    let removed = log_tags(&third, "removed");
    assert!(
        removed.contains("1.0") && removed.contains(&app.signature_tag),
        "{removed:?}"
    );
    // The removal is in the tag history, like a deletion.
    let history = s
        .read("/api/v1/repository/acme/app/tag/?specificTag=1.0&onlyActiveTags=false")
        .await;
    assert!(
        history.body.to_string().contains(&app.one.digest),
        "{}",
        history.body
    );
}

#[tokio::test]
async fn a_mirror_of_a_second_berth_with_a_wrong_password_fails_then_syncs() {
    let upstream = TestServer::start().await;
    upstream.create_org("library").await;
    upstream.create_repo("library/app", false).await;
    let app = fill_upstream(&upstream.client, &upstream.base, false).await;
    upstream.create_user(UPSTREAM_USER).await;
    upstream.grant("library/app", UPSTREAM_USER, "read").await;
    let host = upstream.base.strip_prefix("http://").expect("http");

    let s = TestServer::start_with(settings()).await;
    mirror_of(&s, &format!("{host}/library/app"), "wrong-password").await;
    let failed = wait_for(&s, "SYNC_FAILED", &Value::Null).await;
    assert!(
        failed["sync_retries_remaining"].as_i64().unwrap() < 3,
        "a failure spends a retry: {failed}"
    );
    assert!(
        failed["sync_log"]["error"]
            .as_str()
            .unwrap()
            .contains("credentials"),
        "{}",
        failed["sync_log"]
    );
    assert!(!usage_logs(&s, "repo_mirror_sync_failed", 1)
        .await
        .is_empty());
    assert!(tags_of(&s.client, &s.base, "acme/app").await.is_empty());

    let mut config = s.read(MIRROR).await.body;
    let fixed = json!({
        "external_registry_username": UPSTREAM_USER,
        "external_registry_password": password_of(UPSTREAM_USER),
        "root_rule": config["root_rule"].take(),
    });
    s.call("PUT", MIRROR, fixed, 201).await;
    let ok = sync_now(&s, "SYNC_SUCCESS").await;
    assert_eq!(ok["sync_retries_remaining"], 3, "reset on success: {ok}");
    assert_eq!(
        tags_of(&s.client, &s.base, "acme/app").await,
        ["1.0", "1.1", app.signature_tag.as_str()]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );
    for reference in ["1.0", "1.1", app.referrer.as_str()] {
        assert_eq!(
            manifest_bytes(&s.client, &s.base, "acme/app", reference).await,
            manifest_bytes(&upstream.client, &upstream.base, "library/app", reference).await,
            "{reference}"
        );
    }
}

/// A TCP relay in front of an upstream that, while `hold` is set, holds any request naming
/// `needle` (it is never forwarded) and reports it through `held`.
struct HoldingRelay {
    port: u16,
    hold: Arc<AtomicBool>,
    held: Arc<tokio::sync::Notify>,
}

impl HoldingRelay {
    async fn start(upstream_port: u16, needle: String) -> HoldingRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().unwrap().port();
        let hold = Arc::new(AtomicBool::new(true));
        let held = Arc::new(tokio::sync::Notify::new());
        let (h, n) = (hold.clone(), held.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (hold, held, needle) = (h.clone(), n.clone(), needle.clone());
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if hold.load(Ordering::SeqCst) && text.contains(needle.as_str()) {
                            held.notify_one();
                            // Hold the request: never forward it, keep the connection open.
                            std::future::pending::<()>().await;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    down.abort();
                });
            }
        });
        HoldingRelay { port, hold, held }
    }
}

#[tokio::test]
async fn a_sync_killed_halfway_finishes_on_the_next_run() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let up = dist.client();
    let one = push_test_image(&up, &dist.base, "library/app", "1.0", 11, 4000).await;
    let two = push_test_image(&up, &dist.base, "library/app", "1.1", 12, 4000).await;
    // Tags are synced in order: 1.0 is copied whole, then 1.1's layer is held.
    let relay = HoldingRelay::start(dist.port, format!("/blobs/{}", two.layer)).await;

    let dir = tempfile::tempdir().expect("data dir");
    let config = dir.path().join("berth.yaml");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let mut yaml = String::from("FEATURE_REPO_MIRROR: true\nREPO_MIRROR_INTERVAL: 1\n");
    if let Some(storage) = test_storage_for(&data) {
        yaml.push_str(&storage_config_yaml(&storage));
    }
    std::fs::write(&config, yaml).expect("config");
    let berth = ProcessServer::spawn_with_config(&data, Some(config.clone())).await;
    mirror_of(
        &berth,
        &format!("127.0.0.1:{}/library/app", relay.port),
        UPSTREAM_PASSWORD,
    )
    .await;
    tokio::time::timeout(Duration::from_secs(30), relay.held.notified())
        .await
        .expect("the sync reached 1.1's layer");
    let during = berth.read(MIRROR).await.body;
    assert_eq!(during["sync_status"], "SYNCING", "{during}");
    assert!(during["sync_expiration_date"].is_string(), "{during}");
    berth.kill9().await;

    // What the killed sync left is consistent: 1.0 whole, nothing of 1.1 visible.
    relay.hold.store(false, Ordering::SeqCst);
    let berth = ProcessServer::spawn_with_config(&data, Some(config)).await;
    assert_eq!(
        tags_of(&berth.client, &berth.base, "acme/app").await,
        ["1.0".to_string()].into()
    );
    assert_eq!(
        manifest_bytes(&berth.client, &berth.base, "acme/app", "1.0").await,
        one.manifest
    );
    // The claim runs out (5 s) and the next sync finishes: 1.0 moves nothing.
    let done = wait_for(&berth, "SYNC_SUCCESS", &Value::Null).await;
    assert_eq!(
        log_tags(&done, "unchanged"),
        ["1.0".to_string()].into(),
        "{}",
        done["sync_log"]
    );
    assert_eq!(
        log_tags(&done, "copied"),
        ["1.1".to_string()].into(),
        "{}",
        done["sync_log"]
    );
    assert!(
        done["sync_log"]["blobs_copied"].as_u64().unwrap() <= 2,
        "only 1.1's blobs: {}",
        done["sync_log"]
    );
    assert_eq!(
        manifest_bytes(&berth.client, &berth.base, "acme/app", "1.1").await,
        two.manifest
    );
    berth.kill9().await;
}

#[tokio::test]
async fn a_cancelled_sync_stops_and_the_next_one_finishes() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let up = dist.client();
    let one = push_test_image(&up, &dist.base, "library/app", "1.0", 31, 2000).await;
    let two = push_test_image(&up, &dist.base, "library/app", "1.1", 32, 2000).await;
    let relay = HoldingRelay::start(dist.port, format!("/blobs/{}", two.layer)).await;
    let s = TestServer::start_with(settings()).await;
    mirror_of(
        &s,
        &format!("127.0.0.1:{}/library/app", relay.port),
        UPSTREAM_PASSWORD,
    )
    .await;
    tokio::time::timeout(Duration::from_secs(30), relay.held.notified())
        .await
        .expect("the sync reached 1.1's layer");
    s.call("POST", &format!("{MIRROR}/sync-cancel"), Value::Null, 204)
        .await;
    // The sync stops although the upstream still holds its request.
    let cancelled = wait_for(&s, "CANCEL", &Value::Null).await;
    assert_eq!(cancelled["sync_log"]["result"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["sync_retries_remaining"], 0, "{cancelled}");
    assert_eq!(
        tags_of(&s.client, &s.base, "acme/app").await,
        ["1.0".to_string()].into()
    );
    assert!(metric(&s, "berth_mirror_syncs_total{result=\"cancelled\"}").await >= 1.0);
    relay.hold.store(false, Ordering::SeqCst);
    let done = sync_now(&s, "SYNC_SUCCESS").await;
    assert_eq!(log_tags(&done, "unchanged"), ["1.0".to_string()].into());
    assert_eq!(log_tags(&done, "copied"), ["1.1".to_string()].into());
    for (tag, image) in [("1.0", &one), ("1.1", &two)] {
        assert_eq!(
            manifest_bytes(&s.client, &s.base, "acme/app", tag).await,
            image.manifest
        );
    }
}

#[tokio::test]
async fn stored_blobs_are_linked_and_the_upstream_is_reached_through_the_proxy() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let up = dist.client();
    let image = push_test_image(&up, &dist.base, "library/app", "1.0", 41, 1000).await;
    let s = TestServer::start_with(settings()).await;
    // The same blobs are already in the store, in another organization: they are linked once
    // the upstream served them, not transferred again.
    s.create_org("shared").await;
    push_test_image(&s.client, &s.base, "shared/base", "1", 41, 1000).await;
    mirror_of(
        &s,
        &format!("127.0.0.1:{}/library/app", dist.port),
        UPSTREAM_PASSWORD,
    )
    .await;
    let first = wait_for(&s, "SYNC_SUCCESS", &Value::Null).await;
    assert_eq!(log_tags(&first, "copied"), ["1.0".to_string()].into());
    assert_eq!(
        first["sync_log"]["blobs_copied"], 0,
        "{}",
        first["sync_log"]
    );
    assert_eq!(
        first["sync_log"]["manifests_copied"], 1,
        "{}",
        first["sync_log"]
    );
    let blob = s
        .client
        .get(s.url(&format!("/v2/acme/app/blobs/{}", image.layer)))
        .send()
        .await
        .expect("blob");
    assert_eq!(
        blob.bytes().await.unwrap().as_ref(),
        image.layer_bytes.as_slice()
    );
    // A proxy that does not answer: every upstream request fails through it.
    let dead = free_port();
    let proxy = json!({"http_proxy": format!("http://127.0.0.1:{dead}"),
                       "https_proxy": format!("http://127.0.0.1:{dead}")});
    let config = json!({"external_registry_config": {"verify_tls": false, "proxy": proxy}});
    s.call("PUT", MIRROR, config, 201).await;
    let failed = sync_now(&s, "SYNC_FAILED").await;
    assert!(
        failed["sync_log"]["error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{}",
        failed["sync_log"]
    );
    // The upstream's host listed in no_proxy is reached directly again.
    let mut proxy = proxy;
    proxy["no_proxy"] = json!("127.0.0.1");
    let config = json!({"external_registry_config": {"verify_tls": false, "proxy": proxy}});
    s.call("PUT", MIRROR, config, 201).await;
    let ok = sync_now(&s, "SYNC_SUCCESS").await;
    assert_eq!(log_tags(&ok, "unchanged"), ["1.0".to_string()].into());
}

#[tokio::test]
async fn two_replicas_sync_a_mirror_once() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let up = dist.client();
    push_test_image(&up, &dist.base, "library/app", "1.0", 21, 2000).await;
    push_test_image(&up, &dist.base, "library/app", "1.1", 22, 2000).await;
    let s = TestServer::start_with(settings()).await;
    let replica = s.replica().await;
    mirror_of(
        &s,
        &format!("127.0.0.1:{}/library/app", dist.port),
        UPSTREAM_PASSWORD,
    )
    .await;
    let done = wait_for(&replica, "SYNC_SUCCESS", &Value::Null).await;
    assert_eq!(log_tags(&done, "copied").len(), 2, "{}", done["sync_log"]);
    // Both replicas look every second; the start date moved an interval ahead, so neither
    // syncs again. Exactly one sync started and one push per tag was made.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(usage_logs(&s, "repo_mirror_sync_started", 1).await.len(), 1);
    assert_eq!(usage_logs(&s, "repo_mirror_sync_success", 1).await.len(), 1);
    assert_eq!(usage_logs(&s, "push_repo", 2).await.len(), 2);
}
