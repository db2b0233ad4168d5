//! The artifact policy against what real clients push (the clientlab flows): Quay's snippet adds
//! to berth's defaults, `DEFAULT_OCI_ARTIFACT_TYPES: false` takes them away, Notary Project
//! signatures pass by default, and every refusal names the media type that caused it.

use crate::common;

use common::*;
use serde_json::{json, Value};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ENC: &str = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const NOTARY: &str = "application/vnd.cncf.notary.signature";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const COSIGN_SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

/// The seed's snippet: Quay's documented YAML, verbatim.
const SNIPPET: &str = "FEATURE_GENERAL_OCI_SUPPORT: true
ALLOWED_OCI_ARTIFACT_TYPES:
  application/vnd.oci.image.config.v1+json:
  - application/vnd.dev.cosign.simplesigning.v1+json
  - application/vnd.oci.image.layer.v1.tar+gzip+encrypted
  application/vnd.cncf.helm.config.v1+json:
  - application/tar+gzip
";

fn settings(text: &str) -> berth::config::Settings {
    berth::config::parse(text).expect("config").settings
}

/// One manifest as a client pushes it: config type (an empty config is `{}`), layer types,
/// `artifactType` and `subject`.
struct Shape<'a> {
    what: &'a str,
    config: &'a str,
    layers: &'a [&'a str],
    artifact_type: Option<&'a str>,
    subject: Option<&'a str>,
}

/// Pushes the blobs and PUTs the manifest of `shape` under `reference`.
async fn push(s: &TestServer, repo: &str, reference: &str, shape: &Shape<'_>) -> reqwest::Response {
    let config: Vec<u8> = if shape.config == EMPTY {
        b"{}".to_vec()
    } else {
        format!("{{\"for\":\"{}\"}}", shape.what).into_bytes()
    };
    let config_digest = push_blob(&s.client, &s.base, repo, &config).await;
    let mut layers = Vec::new();
    for (i, t) in shape.layers.iter().enumerate() {
        let bytes = format!("{} layer {i} {t}", shape.what);
        let d = push_blob(&s.client, &s.base, repo, bytes.as_bytes()).await;
        layers.push(json!({"mediaType": t, "digest": d, "size": bytes.len()}));
    }
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": shape.config, "digest": config_digest, "size": config.len()},
        "layers": layers,
    });
    if let Some(t) = shape.artifact_type {
        manifest["artifactType"] = json!(t);
    }
    if let Some(subject) = shape.subject {
        let size = s
            .get(&format!("/v2/{repo}/manifests/{subject}"))
            .await
            .bytes()
            .await
            .unwrap()
            .len();
        manifest["subject"] = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": subject,
            "size": size,
        });
    }
    let body = serde_json::to_vec(&manifest).unwrap();
    let reference = match reference {
        "" => sha256(&body),
        tag => tag.to_string(),
    };
    s.client
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The referrers of cosign 2 and 3, oras and notation (flows H, J, K), on `image`.
fn referrers(image: &str) -> Vec<Shape<'_>> {
    let referrer = |what, layers, artifact_type| Shape {
        what,
        config: EMPTY,
        layers,
        artifact_type: Some(artifact_type),
        subject: Some(image),
    };
    vec![
        referrer("cosign 1.1 signature", &[SIMPLESIGNING], COSIGN_SIG),
        referrer("cosign 3 bundle", &[BUNDLE], BUNDLE),
        referrer("oras sbom", &[CYCLONEDX], CYCLONEDX),
        referrer("notation jws", &["application/jose+json"], NOTARY),
        referrer("notation cose", &["application/cose"], NOTARY),
    ]
}

/// Asserts a 400 `MANIFEST_INVALID` whose message starts with `starts` and whose detail names
/// `media_type`; returns the error.
async fn expect_refused(r: reqwest::Response, starts: &str, media_type: &str) -> Value {
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let e = v["errors"][0].clone();
    assert_eq!(e["code"], "MANIFEST_INVALID", "{v}");
    let message = e["message"].as_str().unwrap();
    assert!(message.starts_with(starts), "{message}");
    assert_eq!(e["detail"]["mediaType"], media_type, "{v}");
    e
}

#[tokio::test]
async fn the_snippet_adds_to_the_defaults_and_every_client_artifact_passes() {
    for (mode, config) in [
        ("defaults", String::new()),
        ("snippet", SNIPPET.to_string()),
    ] {
        let s = TestServer::start_with(settings(&config)).await;
        let repo = "userorg/signed";
        let image = push_image(&s.client, &s.base, repo, "1", mode.as_bytes()).await;
        let tag_scheme = |suffix: &str| format!("{}.{suffix}", image.replace(':', "-"));
        // cosign 2 (flow H) by tag: the signature and the attestation.
        for (what, suffix, layer) in [("sig", "sig", SIMPLESIGNING), ("att", "att", DSSE)] {
            let shape = Shape {
                what,
                config: OCI_CONFIG,
                layers: &[layer],
                artifact_type: None,
                subject: None,
            };
            let r = push(&s, repo, &tag_scheme(suffix), &shape).await;
            assert_eq!(r.status(), 201, "{mode}: cosign .{suffix}");
        }
        for shape in referrers(&image) {
            let r = push(&s, repo, "", &shape).await;
            let status = r.status();
            assert_eq!(
                status,
                201,
                "{mode}: {}: {}",
                shape.what,
                r.text().await.unwrap()
            );
        }
        let listed: Value = s
            .get(&format!("/v2/{repo}/referrers/{image}"))
            .await
            .json()
            .await
            .unwrap();
        let mut types: Vec<&str> = listed["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["artifactType"].as_str().unwrap())
            .collect();
        types.sort_unstable();
        assert_eq!(
            types,
            [NOTARY, NOTARY, CYCLONEDX, COSIGN_SIG, BUNDLE],
            "{mode}"
        );

        // Encrypted images: only with the snippet (they are not a berth default, as in Quay).
        let encrypted = Shape {
            what: "encrypted",
            config: OCI_CONFIG,
            layers: &[GZ, ENC],
            artifact_type: None,
            subject: None,
        };
        let r = push(&s, "userorg/enc", "1", &encrypted).await;
        if mode == "snippet" {
            assert_eq!(r.status(), 201);
        } else {
            expect_refused(
                r,
                &format!(
                    "layer media type {ENC} is not allowed with config media type {OCI_CONFIG}"
                ),
                ENC,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn without_the_defaults_the_snippet_refuses_a_notary_signature() {
    let s = TestServer::start_with(settings(&format!(
        "DEFAULT_OCI_ARTIFACT_TYPES: false\n{SNIPPET}"
    )))
    .await;
    let repo = "userorg/only-mine";
    let image = push_image(&s.client, &s.base, repo, "1", b"only mine").await;
    for shape in referrers(&image) {
        let r = push(&s, repo, "", &shape).await;
        let refused = shape.artifact_type.unwrap();
        let e = expect_refused(
            r,
            &format!("artifact type {refused} is not allowed"),
            refused,
        )
        .await;
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("DEFAULT_OCI_ARTIFACT_TYPES is false"),
            "{e}"
        );
    }
    // What the snippet lists still passes.
    for (what, layers) in [("sig", &[SIMPLESIGNING][..]), ("enc", &[GZ, ENC][..])] {
        let shape = Shape {
            what,
            config: OCI_CONFIG,
            layers,
            artifact_type: None,
            subject: None,
        };
        assert_eq!(push(&s, repo, what, &shape).await.status(), 201, "{what}");
    }
}

#[tokio::test]
async fn with_general_oci_support_off_the_refusal_names_the_encrypted_layer() {
    let flags_off = "FEATURE_GENERAL_OCI_SUPPORT: false\n";
    let snippet_flags_off = SNIPPET.replace("FEATURE_GENERAL_OCI_SUPPORT: true", flags_off.trim());
    for config in [flags_off.to_string(), snippet_flags_off] {
        let s = TestServer::start_with(settings(&config)).await;
        let encrypted = Shape {
            what: "encrypted",
            config: OCI_CONFIG,
            layers: &[GZ, ENC],
            artifact_type: None,
            subject: None,
        };
        let r = push(&s, "userorg/enc", "1", &encrypted).await;
        let e = expect_refused(r, &format!("layer media type {ENC} is not allowed"), ENC).await;
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("FEATURE_GENERAL_OCI_SUPPORT is false"),
            "{config}: {message}"
        );
        assert_eq!(e["detail"]["configMediaType"], OCI_CONFIG);
        assert_eq!(e["detail"]["allow"], Value::Null, "no config can allow it");
        // A referrer is named by its artifact type, a plain image still passes.
        let image = push_image(&s.client, &s.base, "userorg/app", "1", b"app").await;
        let notary = &referrers(&image)[3];
        let r = push(&s, "userorg/app", "", notary).await;
        expect_refused(r, &format!("artifact type {NOTARY} is not allowed"), NOTARY).await;
    }
}
