//! The artifact policy over HTTP: each rule, and config changes applied without a restart.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use berth::config::Settings;
use berth::policy::PolicySettings;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ENC: &str = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
const SNIPPET: &str = "ALLOWED_OCI_ARTIFACT_TYPES:
  application/vnd.oci.image.config.v1+json:
  - application/vnd.dev.cosign.simplesigning.v1+json
  - application/vnd.oci.image.layer.v1.tar+gzip+encrypted
  application/vnd.cncf.helm.config.v1+json:
  - application/tar+gzip
";

/// Pushes the blobs of a manifest with the given config and layer media types, then PUTs it
/// under `tag`. Returns the response and the manifest digest.
async fn push(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    config_type: &str,
    layer_types: &[&str],
    artifact_type: Option<&str>,
) -> (reqwest::Response, String) {
    let config = format!("{{\"kind\":\"{config_type}\",\"tag\":\"{tag}\"}}");
    let config_digest = push_blob(client, base, repo, config.as_bytes()).await;
    let mut layers = Vec::new();
    for (i, t) in layer_types.iter().enumerate() {
        let bytes = format!("layer {i} of {tag} {t}");
        let d = push_blob(client, base, repo, bytes.as_bytes()).await;
        layers.push(json!({"mediaType": t, "digest": d, "size": bytes.len()}));
    }
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
        "layers": layers,
    });
    if let Some(t) = artifact_type {
        manifest["artifactType"] = json!(t);
    }
    let body = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256(&body);
    let r = client
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r, digest)
}

async fn expect_refused(r: reqwest::Response, refused: &str) -> Value {
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let e = &v["errors"][0];
    assert_eq!(e["code"], "MANIFEST_INVALID");
    assert!(e["message"].as_str().unwrap().contains(refused), "{v}");
    assert_eq!(e["detail"]["mediaType"], refused);
    e.clone()
}

fn snippet_settings() -> Settings {
    berth::config::parse(SNIPPET).unwrap().settings
}

#[tokio::test]
async fn default_policy_refuses_encrypted_layers_and_stores_nothing() {
    let s = TestServer::start().await;
    let (r, digest) = push(
        &s.client,
        &s.base,
        "userorg/enc",
        "1",
        OCI_CONFIG,
        &[GZ, ENC],
        None,
    )
    .await;
    let e = expect_refused(r, ENC).await;
    assert_eq!(e["detail"]["configMediaType"], OCI_CONFIG);
    let allow = e["detail"]["allow"].as_str().unwrap();
    assert_eq!(
        allow,
        format!("ALLOWED_OCI_ARTIFACT_TYPES:\n  {OCI_CONFIG}:\n  - {ENC}\n")
    );
    let r = s
        .client
        .get(s.url(&format!("/v2/userorg/enc/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let tags: Value = s
        .client
        .get(s.url("/v2/userorg/enc/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!([]));
}

#[tokio::test]
async fn default_policy_accepts_images_helm_signatures_sboms_and_referrers() {
    let s = TestServer::start().await;
    let base = &s.base;
    let (r, image) = push(&s.client, base, "userorg/app", "1", OCI_CONFIG, &[GZ], None).await;
    assert_eq!(r.status(), 201);
    let docker = "application/vnd.docker.container.image.v1+json";
    let (r, _) = push(
        &s.client,
        base,
        "userorg/app",
        "d",
        docker,
        &["application/vnd.docker.image.rootfs.diff.tar.gzip"],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let sig_tag = format!("{}.sig", image.replace(':', "-"));
    let (r, _) = push(
        &s.client,
        base,
        "userorg/app",
        &sig_tag,
        OCI_CONFIG,
        &["application/vnd.dev.cosign.simplesigning.v1+json"],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let (r, _) = push(
        &s.client,
        base,
        "userorg/app",
        "sbom",
        OCI_CONFIG,
        &["text/spdx+json"],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let (r, _) = push(
        &s.client,
        base,
        "userorg/app",
        "att",
        OCI_CONFIG,
        &["application/vnd.dsse.envelope.v1+json"],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let (r, _) = push(
        &s.client,
        base,
        "userorg/helm/quarkus",
        "0.0.3",
        HELM_CONFIG,
        &["application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let (r, _) = push(
        &s.client,
        base,
        "userorg/app",
        "bundle",
        "application/vnd.oci.empty.v1+json",
        &["application/vnd.dev.sigstore.bundle.v0.3+json"],
        Some("application/vnd.dev.sigstore.bundle.v0.3+json"),
    )
    .await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn pairs_are_checked_not_the_union() {
    let s = TestServer::start_with(snippet_settings()).await;
    let (r, _) = push(
        &s.client,
        &s.base,
        "userorg/x",
        "enc",
        OCI_CONFIG,
        &[ENC],
        None,
    )
    .await;
    assert_eq!(
        r.status(),
        201,
        "encrypted layers are listed with the OCI config"
    );
    let (r, _) = push(
        &s.client,
        &s.base,
        "userorg/x",
        "partly",
        OCI_CONFIG,
        &[GZ, ENC],
        None,
    )
    .await;
    assert_eq!(
        r.status(),
        201,
        "image layer types stay allowed beside the listed ones"
    );
    let (r, _) = push(
        &s.client,
        &s.base,
        "userorg/x",
        "chart",
        HELM_CONFIG,
        &["application/tar+gzip"],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let (r, _) = push(
        &s.client,
        &s.base,
        "userorg/x",
        "bad",
        HELM_CONFIG,
        &[ENC],
        None,
    )
    .await;
    let e = expect_refused(r, ENC).await;
    assert_eq!(e["detail"]["configMediaType"], HELM_CONFIG);
    // The configured map adds to the defaults: SBOM layers stay allowed.
    let (r, _) = push(
        &s.client,
        &s.base,
        "userorg/x",
        "sbom",
        OCI_CONFIG,
        &["text/spdx+json"],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn general_oci_support_off_refuses_helm_but_accepts_images() {
    let settings = Settings {
        policy: PolicySettings {
            general_oci_support: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = TestServer::start_with(settings).await;
    let (r, _) = push(
        &s.client,
        &s.base,
        "userorg/helm",
        "1",
        HELM_CONFIG,
        &["application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
        None,
    )
    .await;
    let e = expect_refused(r, HELM_CONFIG).await;
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("FEATURE_GENERAL_OCI_SUPPORT"));
    let (r, _) = push(
        &s.client,
        &s.base,
        "userorg/app",
        "1",
        OCI_CONFIG,
        &[GZ],
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn made_up_artifact_types_need_a_key_unless_the_policy_is_off() {
    let made_up = "application/vnd.example.oci.conformance.v1";
    let s = TestServer::start().await;
    let (r, _) = push(
        &s.client,
        &s.base,
        "c/x",
        "1",
        "application/vnd.oci.empty.v1+json",
        &["application/vnd.example.data"],
        Some(made_up),
    )
    .await;
    expect_refused(r, made_up).await;

    let off = Settings {
        policy: PolicySettings {
            ignore_unknown_mediatypes: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = TestServer::start_with(off).await;
    let (r, _) = push(
        &s.client,
        &s.base,
        "c/x",
        "1",
        "application/vnd.oci.empty.v1+json",
        &["application/vnd.example.data"],
        Some(made_up),
    )
    .await;
    assert_eq!(r.status(), 201);

    let mut map = BTreeMap::new();
    map.insert(
        made_up.to_string(),
        vec!["application/vnd.example.data".to_string()],
    );
    let keyed = Settings {
        policy: PolicySettings {
            allowed_artifact_types: Some(map),
            ..Default::default()
        },
        ..Default::default()
    };
    let s = TestServer::start_with(keyed).await;
    let (r, _) = push(
        &s.client,
        &s.base,
        "c/x",
        "1",
        "application/vnd.oci.empty.v1+json",
        &["application/vnd.example.data"],
        Some(made_up),
    )
    .await;
    assert_eq!(r.status(), 201, "the artifactType stands as the key");
}

/// berth as a child process with a config file, its log lines readable in order.
struct ConfiguredBerth {
    base: String,
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl ConfiguredBerth {
    async fn spawn(data: &Path, config: &Path) -> ConfiguredBerth {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--config")
            .arg(config)
            .env("NO_COLOR", "1")
            .env("BERTH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = Self::wait_for_in(&mut lines, "berth ready on ").await;
        let base = line
            .split("berth ready on ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        ConfiguredBerth {
            base,
            lines,
            _child: child,
        }
    }

    async fn wait_for_in(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> String {
        loop {
            let line = lines.next_line().await.unwrap().expect("berth exited");
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Waits (at most `limit`) for a log line containing `needle`.
    async fn wait_for(&mut self, needle: &str, limit: std::time::Duration) -> String {
        tokio::time::timeout(limit, Self::wait_for_in(&mut self.lines, needle))
            .await
            .unwrap_or_else(|_| panic!("no log line with {needle:?} within {limit:?}"))
    }
}

#[tokio::test]
async fn config_changes_apply_without_restart_and_bad_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "BROWSER_API_CALLS_XHR_ONLY: false\n").unwrap();
    let data = dir.path().join("data");
    let mut berth = ConfiguredBerth::spawn(&data, &config).await;
    let password = std::fs::read_to_string(data.join(berth::INITIAL_ADMIN_PASSWORD_FILE)).unwrap();
    let client = authed_client("admin", password.trim());
    let base = berth.base.clone();

    let (r, _) = push(&client, &base, "userorg/enc", "1", OCI_CONFIG, &[ENC], None).await;
    expect_refused(r, ENC).await;

    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(SNIPPET);
    std::fs::write(&config, &text).unwrap();
    let started = std::time::Instant::now();
    berth
        .wait_for("config reloaded", std::time::Duration::from_secs(5))
        .await;
    let (r, enc_digest) = push(&client, &base, "userorg/enc", "1", OCI_CONFIG, &[ENC], None).await;
    assert_eq!(r.status(), 201);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // An invalid config is logged and the one in force stays.
    std::fs::write(
        &config,
        format!("{text}FEATURE_HELM_OCI_SUPPORT: perhaps\n"),
    )
    .unwrap();
    let line = berth
        .wait_for("config rejected", std::time::Duration::from_secs(5))
        .await;
    assert!(line.contains("FEATURE_HELM_OCI_SUPPORT"), "{line}");
    let (r, _) = push(&client, &base, "userorg/enc", "2", OCI_CONFIG, &[ENC], None).await;
    assert_eq!(
        r.status(),
        201,
        "the previous good config is still in force"
    );

    // Turning berth's defaults off applies at once too: a Notary signature is refused, the
    // snippet's encrypted layers stay allowed.
    let notary = "application/vnd.cncf.notary.signature";
    let notary_layers = ["application/jose+json"];
    let empty = "application/vnd.oci.empty.v1+json";
    let (r, _) = push(
        &client,
        &base,
        "userorg/enc",
        "n1",
        empty,
        &notary_layers,
        Some(notary),
    )
    .await;
    assert_eq!(r.status(), 201, "Notary signatures are a default");
    std::fs::write(
        &config,
        format!("{text}DEFAULT_OCI_ARTIFACT_TYPES: false\n"),
    )
    .unwrap();
    berth
        .wait_for("config reloaded", std::time::Duration::from_secs(5))
        .await;
    let (r, _) = push(
        &client,
        &base,
        "userorg/enc",
        "n2",
        empty,
        &notary_layers,
        Some(notary),
    )
    .await;
    expect_refused(r, notary).await;
    let (r, _) = push(&client, &base, "userorg/enc", "4", OCI_CONFIG, &[ENC], None).await;
    assert_eq!(r.status(), 201);

    // Back to defaults: new encrypted pushes are refused, earlier ones stay readable.
    std::fs::write(&config, "BROWSER_API_CALLS_XHR_ONLY: false\n").unwrap();
    berth
        .wait_for("config reloaded", std::time::Duration::from_secs(5))
        .await;
    let (r, _) = push(&client, &base, "userorg/enc", "3", OCI_CONFIG, &[ENC], None).await;
    expect_refused(r, ENC).await;
    let r = client
        .get(format!("{base}/v2/userorg/enc/manifests/{enc_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn config_check_prints_the_effective_policy() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        format!("BROWSER_API_CALLS_XHR_ONLY: false\n{SNIPPET}"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Each effective pair, with where it comes from.
    for line in [
        format!("{OCI_CONFIG} -> {ENC}  # ALLOWED_OCI_ARTIFACT_TYPES"),
        format!("{OCI_CONFIG} -> application/vnd.dev.cosign.simplesigning.v1+json  # berth default, ALLOWED_OCI_ARTIFACT_TYPES"),
        format!("{OCI_CONFIG} -> text/spdx+json  # berth default"),
        "application/vnd.cncf.notary.signature -> application/cose  # berth default".to_string(),
        format!("{HELM_CONFIG} -> application/vnd.cncf.helm.chart.content.v1.tar+gzip  # FEATURE_HELM_OCI_SUPPORT"),
        format!("{HELM_CONFIG} -> application/tar+gzip  # ALLOWED_OCI_ARTIFACT_TYPES, FEATURE_HELM_OCI_SUPPORT"),
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line} in:\n{stdout}");
    }
    assert!(
        stdout.contains("DEFAULT_OCI_ARTIFACT_TYPES: true\n"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("BROWSER_API_CALLS_XHR_ONLY"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "ALLOWED_OCI_ARTIFACT_TYPES: [1, 2]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ALLOWED_OCI_ARTIFACT_TYPES"));
}
