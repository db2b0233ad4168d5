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
        ArtifactPolicy::new(PolicySettings {
            default_artifact_types: false,
            helm_oci_support: false,
            ..Default::default()
        }),
        snippet_without_defaults(),
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

/// The referrers and tag-scheme artifacts the real clients push (clientlab flows F, H, J, K).
fn client_artifacts() -> Vec<(&'static str, ParsedManifest)> {
    vec![
        (
            "cosign .sig",
            manifest(OCI_IMAGE_CONFIG, &[mt::COSIGN_SIMPLESIGNING], None),
        ),
        (
            "cosign .att",
            manifest(OCI_IMAGE_CONFIG, &[mt::DSSE_ENVELOPE], None),
        ),
        (
            "cosign OCI 1.1 signature",
            manifest(
                OCI_EMPTY,
                &[mt::COSIGN_SIMPLESIGNING],
                Some(mt::COSIGN_SIG_ARTIFACT),
            ),
        ),
        (
            "cosign 3 bundle",
            manifest(OCI_EMPTY, &[mt::SIGSTORE_BUNDLE], Some(mt::SIGSTORE_BUNDLE)),
        ),
        (
            "oras CycloneDX SBOM",
            manifest(
                OCI_EMPTY,
                &["application/vnd.cyclonedx+json"],
                Some("application/vnd.cyclonedx+json"),
            ),
        ),
        (
            "notation JWS",
            manifest(OCI_EMPTY, &[mt::JOSE_JSON], Some(mt::NOTARY_SIGNATURE)),
        ),
        (
            "notation COSE",
            manifest(OCI_EMPTY, &[mt::COSE], Some(mt::NOTARY_SIGNATURE)),
        ),
    ]
}

#[test]
fn notary_signatures_are_allowed_by_default() {
    let p = ArtifactPolicy::default();
    for (what, m) in client_artifacts() {
        assert!(p.check(&m).is_ok(), "{what}");
    }
    // The envelope types are allowed with the Notary artifact type only.
    let v = p
        .check(&manifest(OCI_IMAGE_CONFIG, &[mt::JOSE_JSON], None))
        .unwrap_err();
    assert_eq!(v.refused, mt::JOSE_JSON);
}

#[test]
fn seed_snippet_adds_to_the_defaults() {
    let p = with_snippet();
    assert!(p
        .check(&manifest(OCI_IMAGE_CONFIG, &[ENC, ENC], None))
        .is_ok());
    assert!(
        p.check(&manifest(OCI_IMAGE_CONFIG, &[GZ, ENC], None))
            .is_ok(),
        "partly encrypted image"
    );
    // berth's defaults stay: every client's signatures, attestations and SBOMs pass.
    for (what, m) in client_artifacts() {
        assert!(p.check(&m).is_ok(), "{what}");
    }
    assert!(p
        .check(&manifest(OCI_IMAGE_CONFIG, &["text/spdx"], None))
        .is_ok());
    // Helm keeps its built-in layer types beside the listed legacy one.
    assert!(p
        .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART], None))
        .is_ok());
    assert!(p
        .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART_LEGACY], None))
        .is_ok());
}

fn snippet_without_defaults() -> ArtifactPolicy {
    let loaded =
        crate::config::parse(&format!("DEFAULT_OCI_ARTIFACT_TYPES: false\n{SNIPPET}")).unwrap();
    ArtifactPolicy::new(loaded.settings.policy)
}

#[test]
fn defaults_off_leaves_the_configured_map() {
    let p = snippet_without_defaults();
    assert!(p
        .check(&manifest(OCI_IMAGE_CONFIG, &[GZ, ENC], None))
        .is_ok());
    assert!(p
        .check(&manifest(
            OCI_IMAGE_CONFIG,
            &[mt::COSIGN_SIMPLESIGNING],
            None
        ))
        .is_ok());
    assert!(p
        .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART_LEGACY], None))
        .is_ok());
    let v = p
        .check(&manifest(
            OCI_EMPTY,
            &[mt::JOSE_JSON],
            Some(mt::NOTARY_SIGNATURE),
        ))
        .unwrap_err();
    assert_eq!(v.refused, mt::NOTARY_SIGNATURE);
    assert!(!v.refused_is_layer && v.defaults_off);
    let text = v.to_string();
    assert!(
        text.starts_with(&format!(
            "artifact type {} is not allowed",
            mt::NOTARY_SIGNATURE
        )) && text.contains("DEFAULT_OCI_ARTIFACT_TYPES is false"),
        "{text}"
    );
    let v = p
        .check(&manifest(OCI_IMAGE_CONFIG, &["text/spdx"], None))
        .unwrap_err();
    assert_eq!(v.refused, "text/spdx");
    assert!(v.refused_is_layer);
    // Without any key for the image config, a non-image layer is still what is named.
    let bare = ArtifactPolicy::new(PolicySettings {
        default_artifact_types: false,
        ..Default::default()
    });
    let v = bare
        .check(&manifest(OCI_IMAGE_CONFIG, &[GZ, ENC], None))
        .unwrap_err();
    assert_eq!((v.refused.as_str(), v.refused_is_layer), (ENC, true));
    assert!(
        v.to_string().starts_with(&format!(
            "layer media type {ENC} is not allowed with config media type {OCI_IMAGE_CONFIG}"
        )),
        "{v}"
    );
    assert_eq!(
        v.yaml.as_deref(),
        Some(format!("ALLOWED_OCI_ARTIFACT_TYPES:\n  {OCI_IMAGE_CONFIG}:\n  - {ENC}\n").as_str())
    );
    // Helm follows its own flag, not DEFAULT_OCI_ARTIFACT_TYPES.
    assert!(bare
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
    for allowed_artifact_types in [None, Some(BTreeMap::new())] {
        let p = ArtifactPolicy::new(PolicySettings {
            helm_oci_support: false,
            allowed_artifact_types,
            ..Default::default()
        });
        let v = p
            .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART], None))
            .unwrap_err();
        assert_eq!(v.refused, HELM_CONFIG);
        assert!(!v.refused_is_layer);
    }
    // A configured Helm key allows what it lists, and only that.
    let mut map = BTreeMap::new();
    map.insert(
        HELM_CONFIG.to_string(),
        vec![mt::HELM_CHART_LEGACY.to_string()],
    );
    let p = ArtifactPolicy::new(PolicySettings {
        helm_oci_support: false,
        allowed_artifact_types: Some(map),
        ..Default::default()
    });
    assert!(p
        .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART_LEGACY], None))
        .is_ok());
    let v = p
        .check(&manifest(HELM_CONFIG, &[mt::HELM_CHART], None))
        .unwrap_err();
    assert_eq!(
        (v.refused.as_str(), v.refused_is_layer),
        (mt::HELM_CHART, true)
    );
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
    assert_eq!(v.refused, HELM_CONFIG);
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
fn general_oci_off_names_the_layer_that_is_not_an_image_layer() {
    let snippet_flags_off = {
        let text = format!("{SNIPPET}FEATURE_GENERAL_OCI_SUPPORT: false\n");
        ArtifactPolicy::new(crate::config::parse(&text).unwrap().settings.policy)
    };
    for p in [
        ArtifactPolicy::new(PolicySettings {
            general_oci_support: false,
            ..Default::default()
        }),
        snippet_flags_off,
    ] {
        let v = p
            .check(&manifest(OCI_IMAGE_CONFIG, &[GZ, ENC], None))
            .unwrap_err();
        assert_eq!((v.refused.as_str(), v.refused_is_layer), (ENC, true));
        let text = v.to_string();
        assert!(
            text.starts_with(&format!("layer media type {ENC} is not allowed"))
                && text.contains("FEATURE_GENERAL_OCI_SUPPORT is false"),
            "{text}"
        );
        let v = p
            .check(&manifest(
                OCI_EMPTY,
                &[mt::JOSE_JSON],
                Some(mt::NOTARY_SIGNATURE),
            ))
            .unwrap_err();
        assert_eq!(v.refused, mt::NOTARY_SIGNATURE);
    }
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
fn describe_lists_each_pair_and_where_it_comes_from() {
    let text = with_snippet().describe();
    let line = |key: &str, layer: &str| -> &str {
        let prefix = format!("{key} -> {layer}  # ");
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no pair {key} -> {layer} in:\n{text}"))
    };
    assert!(line(OCI_IMAGE_CONFIG, ENC).ends_with("# ALLOWED_OCI_ARTIFACT_TYPES"));
    assert!(line(OCI_IMAGE_CONFIG, mt::COSIGN_SIMPLESIGNING)
        .ends_with("# berth default, ALLOWED_OCI_ARTIFACT_TYPES"));
    assert!(line(OCI_IMAGE_CONFIG, "text/spdx").ends_with("# berth default"));
    assert!(line(mt::NOTARY_SIGNATURE, mt::COSE).ends_with("# berth default"));
    assert!(line(HELM_CONFIG, mt::HELM_CHART).ends_with("# FEATURE_HELM_OCI_SUPPORT"));
    assert!(line(HELM_CONFIG, mt::HELM_CHART_LEGACY)
        .ends_with("# ALLOWED_OCI_ARTIFACT_TYPES, FEATURE_HELM_OCI_SUPPORT"));
    assert!(line(OCI_IMAGE_CONFIG, GZ).contains("image layers"));
    assert!(text.contains("DEFAULT_OCI_ARTIFACT_TYPES: true\n"));

    let off = snippet_without_defaults().describe();
    assert!(off.contains("DEFAULT_OCI_ARTIFACT_TYPES: false\n"));
    assert!(!off.contains("text/spdx") && !off.contains(mt::NOTARY_SIGNATURE));
    assert!(off.contains(&format!(
        "{OCI_IMAGE_CONFIG} -> {ENC}  # ALLOWED_OCI_ARTIFACT_TYPES\n"
    )));

    let mut map = BTreeMap::new();
    map.insert("application/x".to_string(), Vec::new());
    let empty_key = ArtifactPolicy::new(PolicySettings {
        allowed_artifact_types: Some(map),
        ..Default::default()
    })
    .describe();
    assert!(
        empty_key.contains("application/x -> (no layers)  # ALLOWED_OCI_ARTIFACT_TYPES\n"),
        "{empty_key}"
    );
}
