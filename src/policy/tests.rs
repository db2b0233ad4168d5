use super::*;
use oci::media_type::OCI_EMPTY;

const SNIPPET: &str = "
ALLOWED_OCI_ARTIFACT_TYPES:
  application/vnd.oci.image.config.v1+json:
  - application/vnd.dev.cosign.simplesigning.v1+json
  - application/vnd.oci.image.layer.v1.tar+gzip+encrypted
  application/vnd.cncf.helm.config.v1+json:
  - application/tar+gzip
";

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ENC: &str = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";

fn manifest(config: &str, layers: &[&str], artifact_type: Option<&str>) -> ParsedManifest {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": l, "digest": D, "size": 0}))
        .collect();
    let mut v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config, "digest": D, "size": 0},
        "layers": layers,
    });
    if let Some(t) = artifact_type {
        v["artifactType"] = serde_json::json!(t);
    }
    oci::manifest::parse(&serde_json::to_vec(&v).unwrap(), "").unwrap()
}

fn with_snippet() -> ArtifactPolicy {
    let loaded = crate::config::parse(SNIPPET).unwrap();
    ArtifactPolicy::new(loaded.settings.policy)
}

#[test]
fn images_always_pass() {
    for policy in [
        ArtifactPolicy::default(),
        with_snippet(),
        ArtifactPolicy::new(PolicySettings {
            general_oci_support: false,
            ..Default::default()
        }),
        ArtifactPolicy::new(PolicySettings {
            allowed_artifact_types: Some(BTreeMap::new()),
            ..Default::default()
        }),
    ] {
        assert!(policy
            .check(&manifest(
                OCI_IMAGE_CONFIG,
                &[GZ, "application/vnd.oci.image.layer.v1.tar+zstd"],
                None
            ))
            .is_ok());
        assert!(policy
            .check(&manifest(
                mt::DOCKER_IMAGE_CONFIG,
                &["application/vnd.docker.image.rootfs.diff.tar.gzip"],
                None
            ))
            .is_ok());
    }
}

#[test]
fn defaults_allow_signatures_sboms_helm_but_not_encryption() {
    let p = ArtifactPolicy::default();
    assert!(p
        .check(&manifest(
            OCI_IMAGE_CONFIG,
            &[mt::COSIGN_SIMPLESIGNING],
            None
        ))
        .is_ok());
    assert!(p
        .check(&manifest(OCI_IMAGE_CONFIG, &[mt::DSSE_ENVELOPE], None))
        .is_ok());
    assert!(p
        .check(&manifest(OCI_IMAGE_CONFIG, &["text/spdx"], None))
        .is_ok());
    assert!(p
        .check(&manifest(
            OCI_EMPTY,
            &[mt::COSIGN_SIMPLESIGNING],
            Some(mt::COSIGN_SIG_ARTIFACT)
        ))
        .is_ok());
    assert!(p
        .check(&manifest(
            OCI_EMPTY,
            &[mt::SIGSTORE_BUNDLE],
            Some(mt::SIGSTORE_BUNDLE)
        ))
        .is_ok());
    assert!(p
        .check(&manifest(
            OCI_EMPTY,
            &["application/spdx+json"],
            Some("application/spdx+json")
        ))
        .is_ok());
    assert!(p
        .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART], None))
        .is_ok());
    assert!(p
        .check(&manifest(
            HELM_CONFIG,
            &[mt::HELM_CHART_LEGACY, mt::HELM_PROVENANCE],
            None
        ))
        .is_ok());
    let v = p
        .check(&manifest(OCI_IMAGE_CONFIG, &[GZ, ENC], None))
        .unwrap_err();
    assert_eq!(v.refused, ENC);
    let text = v.to_string();
    assert!(
        text.contains(ENC) && text.contains(OCI_IMAGE_CONFIG),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ALLOWED_OCI_ARTIFACT_TYPES:\n  {OCI_IMAGE_CONFIG}:\n  - {ENC}\n"
        )),
        "{text}"
    );
}

#[test]
fn seed_snippet_allows_encrypted_images_and_replaces_defaults() {
    let p = with_snippet();
    assert!(p
        .check(&manifest(OCI_IMAGE_CONFIG, &[ENC, ENC], None))
        .is_ok());
    assert!(
        p.check(&manifest(OCI_IMAGE_CONFIG, &[GZ, ENC], None))
            .is_ok(),
        "partly encrypted image"
    );
    assert!(p
        .check(&manifest(
            OCI_IMAGE_CONFIG,
            &[mt::COSIGN_SIMPLESIGNING],
            None
        ))
        .is_ok());
    // Replaced defaults: SBOM layers are no longer listed.
    assert!(p
        .check(&manifest(OCI_IMAGE_CONFIG, &["text/spdx"], None))
        .is_err());
    // Helm stays allowed through FEATURE_HELM_OCI_SUPPORT, with its built-in layer types.
    assert!(p
        .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART], None))
        .is_ok());
}

#[test]
fn pairs_not_union() {
    let p = with_snippet();
    // Both types are listed, but not together.
    let v = p.check(&manifest(HELM_CONFIG, &[ENC], None)).unwrap_err();
    assert_eq!(v.refused, ENC);
    assert_eq!(v.config_media_type, HELM_CONFIG);
    assert!(p
        .check(&manifest(HELM_CONFIG, &[mt::COSIGN_SIMPLESIGNING], None))
        .is_err());
}

#[test]
fn helm_feature_off_follows_the_map() {
    let p = ArtifactPolicy::new(PolicySettings {
        helm_oci_support: false,
        allowed_artifact_types: Some(BTreeMap::new()),
        ..Default::default()
    });
    let v = p
        .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART], None))
        .unwrap_err();
    assert_eq!(v.refused, HELM_CONFIG);
}

#[test]
fn general_oci_off_refuses_helm_but_not_images() {
    let p = ArtifactPolicy::new(PolicySettings {
        general_oci_support: false,
        ..Default::default()
    });
    let v = p
        .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART], None))
        .unwrap_err();
    assert!(v.yaml.is_none());
    assert!(v.to_string().contains("FEATURE_GENERAL_OCI_SUPPORT"));
    assert!(p
        .check(&manifest(
            OCI_IMAGE_CONFIG,
            &[mt::COSIGN_SIMPLESIGNING],
            None
        ))
        .is_err());
    assert!(p.check(&manifest(OCI_IMAGE_CONFIG, &[GZ], None)).is_ok());
}

#[test]
fn unknown_artifacts_need_a_key_unless_policy_off() {
    let m = manifest(
        OCI_EMPTY,
        &["application/vnd.example.data"],
        Some("application/vnd.example.conformance.v1"),
    );
    let v = ArtifactPolicy::default().check(&m).unwrap_err();
    assert_eq!(v.refused, "application/vnd.example.conformance.v1");
    assert!(v
        .yaml
        .unwrap()
        .contains("application/vnd.example.conformance.v1:\n  - application/vnd.example.data"));
    let off = ArtifactPolicy::new(PolicySettings {
        ignore_unknown_mediatypes: true,
        ..Default::default()
    });
    assert!(off.check(&m).is_ok());
    // The artifactType may stand as the key.
    let mut map = BTreeMap::new();
    map.insert(
        "application/vnd.example.conformance.v1".to_string(),
        vec!["application/vnd.example.data".to_string()],
    );
    let keyed = ArtifactPolicy::new(PolicySettings {
        allowed_artifact_types: Some(map),
        ..Default::default()
    });
    assert!(keyed.check(&m).is_ok());
}

#[test]
fn artifact_without_layers_needs_only_its_key() {
    let m = manifest(OCI_EMPTY, &[], Some(mt::COSIGN_SIG_ARTIFACT));
    assert!(ArtifactPolicy::default().check(&m).is_ok());
    let m = manifest(OCI_EMPTY, &[], Some("application/vnd.unknown"));
    assert!(ArtifactPolicy::default().check(&m).is_err());
}

#[test]
fn indexes() {
    let index = |artifact_type: Option<&str>| {
        let mut v = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D, "size": 1}],
        });
        if let Some(t) = artifact_type {
            v["artifactType"] = serde_json::json!(t);
        }
        oci::manifest::parse(&serde_json::to_vec(&v).unwrap(), "").unwrap()
    };
    let p = ArtifactPolicy::default();
    assert!(p.check(&index(None)).is_ok());
    assert!(p.check(&index(Some("application/vnd.unknown"))).is_err());
    assert!(p.check(&index(Some(mt::SIGSTORE_BUNDLE))).is_ok());
}

#[test]
fn describe_lists_the_effective_map() {
    let text = with_snippet().describe();
    assert!(text.contains(ENC));
    assert!(
        text.contains(mt::HELM_CHART),
        "helm types added by FEATURE_HELM_OCI_SUPPORT: {text}"
    );
    assert!(!text.contains("text/spdx"));
}
