//! `policy`: the artifact policy built from fuzzed settings, checked on fuzzed manifests.
//!
//! Settings reach the policy through berth's config loader (YAML with Quay's keys), and the
//! result must equal the policy built from the same settings directly. Every decision must be
//! deterministic and agree with a model written from the effective allow-list
//! ([`ArtifactPolicy::effective`]), which in turn must agree with the documented rules.

use std::collections::{BTreeMap, BTreeSet};

use berth::policy::{default_allowed_types, ArtifactPolicy, PolicySettings};
use oci::media_type as mt;
use oci::ParsedManifest;

use super::input::{mode, Input};

/// Media types the structured mode draws from: the ones the policy names, and strangers.
const TYPES: &[&str] = &[
    mt::OCI_IMAGE_CONFIG,
    mt::DOCKER_IMAGE_CONFIG,
    mt::HELM_CONFIG,
    mt::HELM_CHART,
    mt::HELM_CHART_LEGACY,
    mt::HELM_PROVENANCE,
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    mt::COSIGN_SIMPLESIGNING,
    mt::COSIGN_SIG_ARTIFACT,
    mt::SIGSTORE_BUNDLE,
    mt::DSSE_ENVELOPE,
    mt::IN_TOTO,
    mt::NOTARY_SIGNATURE,
    mt::JOSE_JSON,
    mt::COSE,
    "text/spdx+json",
    mt::OCI_EMPTY,
    "application/x-unknown",
    "x",
];

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub fn check(data: &[u8]) {
    match mode(data) {
        (Some(_), rest) => structured(Input::new(rest)),
        (None, raw) => raw_config(&String::from_utf8_lossy(raw)),
    }
}

/// Settings and a manifest built from the input.
fn structured(mut input: Input) {
    let flags = input.byte();
    let mut settings = PolicySettings {
        general_oci_support: flags & 1 != 0,
        helm_oci_support: flags & 2 != 0,
        ignore_unknown_mediatypes: flags & 4 != 0,
        // Clear in the older seeds, which were written while the defaults were always on.
        default_artifact_types: flags & 16 == 0,
        allowed_artifact_types: None,
    };
    if flags & 8 != 0 {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for _ in 0..input.below(5) {
            let key = input.pick(TYPES).to_string();
            let layers = (0..input.below(4)).map(|_| input.pick(TYPES).to_string());
            map.entry(key).or_default().extend(layers);
        }
        settings.allowed_artifact_types = Some(map);
    }
    let policy = ArtifactPolicy::new(settings.clone());
    let via_config = berth::config::parse(&yaml(&settings))
        .expect("rendered settings load")
        .settings
        .policy;
    assert_eq!(via_config, settings);
    assert_eq!(ArtifactPolicy::new(via_config), policy);

    let manifest = manifest(&mut input);
    check_decision(&policy, &manifest);
    for sample in samples() {
        check_decision(&policy, &sample);
    }
}

/// Arbitrary config text: whatever the loader accepts gives a consistent policy.
fn raw_config(text: &str) {
    let Ok(loaded) = berth::config::parse(text) else {
        return;
    };
    let policy = ArtifactPolicy::new(loaded.settings.policy);
    let _ = policy.describe();
    for sample in samples() {
        check_decision(&policy, &sample);
    }
}

/// The settings as the config file would say them.
fn yaml(s: &PolicySettings) -> String {
    let quoted = |t: &str| serde_json::to_string(t).expect("a string serializes");
    let mut out = format!(
        "FEATURE_GENERAL_OCI_SUPPORT: {}\nFEATURE_HELM_OCI_SUPPORT: {}\nIGNORE_UNKNOWN_MEDIATYPES: {}\n\
         DEFAULT_OCI_ARTIFACT_TYPES: {}\n",
        s.general_oci_support,
        s.helm_oci_support,
        s.ignore_unknown_mediatypes,
        s.default_artifact_types
    );
    if let Some(map) = &s.allowed_artifact_types {
        out.push_str("ALLOWED_OCI_ARTIFACT_TYPES:");
        if map.is_empty() {
            out.push_str(" {}");
        }
        out.push('\n');
        for (key, layers) in map {
            out.push_str(&format!("  {}:", quoted(key)));
            if layers.is_empty() {
                out.push_str(" []");
            }
            out.push('\n');
            for l in layers {
                out.push_str(&format!("  - {}\n", quoted(l)));
            }
        }
    }
    out
}

/// Parses a manifest of the given shape; the shape is always valid, so parsing must succeed.
pub fn build_manifest(
    index: bool,
    docker: bool,
    config: &str,
    layers: &[&str],
    artifact_type: Option<&str>,
) -> ParsedManifest {
    let descriptor = |t: &str| serde_json::json!({"mediaType": t, "digest": D, "size": 2});
    let mut v = if index {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": if docker { mt::DOCKER_MANIFEST_LIST } else { mt::OCI_INDEX },
            "manifests": [descriptor(mt::OCI_MANIFEST)],
        })
    } else {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": if docker { mt::DOCKER_MANIFEST } else { mt::OCI_MANIFEST },
            "config": descriptor(config),
            "layers": layers.iter().map(|l| descriptor(l)).collect::<Vec<_>>(),
        })
    };
    if let Some(t) = artifact_type {
        v["artifactType"] = serde_json::json!(t);
    }
    let bytes = serde_json::to_vec(&v).expect("json serializes");
    oci::manifest::parse(&bytes, "").expect("a well-formed manifest parses")
}

fn manifest(input: &mut Input) -> ParsedManifest {
    let shape = input.byte();
    let config = input.pick(TYPES);
    let layers: Vec<&str> = (0..input.below(5)).map(|_| input.pick(TYPES)).collect();
    let artifact_type = (shape & 4 != 0).then(|| input.pick(TYPES));
    build_manifest(
        shape & 1 != 0,
        shape & 2 != 0,
        config,
        &layers,
        artifact_type,
    )
}

/// A few fixed manifests every policy is also asked about.
fn samples() -> Vec<ParsedManifest> {
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    vec![
        build_manifest(false, false, mt::OCI_IMAGE_CONFIG, &[gz], None),
        build_manifest(false, true, mt::DOCKER_IMAGE_CONFIG, &[], None),
        build_manifest(false, false, mt::HELM_CONFIG, &[mt::HELM_CHART], None),
        build_manifest(
            false,
            false,
            mt::OCI_EMPTY,
            &[mt::SIGSTORE_BUNDLE],
            Some(mt::SIGSTORE_BUNDLE),
        ),
        build_manifest(
            false,
            false,
            mt::OCI_EMPTY,
            &[mt::JOSE_JSON],
            Some(mt::NOTARY_SIGNATURE),
        ),
        build_manifest(false, false, mt::OCI_IMAGE_CONFIG, &["x"], None),
        build_manifest(true, false, "", &[], Some(mt::IN_TOTO)),
        build_manifest(true, true, "", &[], None),
    ]
}

/// The effective allow-list as the policy's rules define it: the defaults (unless turned off)
/// merged key by key with the configured map, image layer types added to the OCI image config's
/// key, and the Helm config key with the Helm layer types while Helm support is on.
fn expected_effective(s: &PolicySettings) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let defaults = s
        .default_artifact_types
        .then(default_allowed_types)
        .unwrap_or_default();
    for (k, v) in defaults
        .into_iter()
        .chain(s.allowed_artifact_types.clone().unwrap_or_default())
    {
        map.entry(k).or_default().extend(v);
    }
    if let Some(set) = map.get_mut(mt::OCI_IMAGE_CONFIG) {
        set.extend(mt::IMAGE_LAYER_TYPES.iter().map(|t| t.to_string()));
    }
    if s.helm_oci_support {
        map.entry(mt::HELM_CONFIG.to_string())
            .or_default()
            .extend(mt::HELM_LAYER_TYPES.iter().map(|t| t.to_string()));
    }
    map.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

/// Whether the policy must accept `m`, decided from the effective allow-list.
fn expected_accept(
    s: &PolicySettings,
    effective: &BTreeMap<String, Vec<String>>,
    m: &ParsedManifest,
) -> bool {
    if s.ignore_unknown_mediatypes {
        return true;
    }
    if m.is_index() {
        return match &m.artifact_type {
            None => true,
            Some(t) => s.general_oci_support && effective.contains_key(t),
        };
    }
    let config = m.config.as_ref().expect("an image manifest has a config");
    let image = m.artifact_type.is_none()
        && mt::IMAGE_CONFIG_TYPES.contains(&config.media_type.as_str())
        && m.layers
            .iter()
            .all(|l| mt::IMAGE_LAYER_TYPES.contains(&l.media_type.as_str()));
    if image {
        return true;
    }
    s.general_oci_support
        && std::iter::once(config.media_type.as_str())
            .chain(m.artifact_type.as_deref())
            .any(|key| {
                effective
                    .get(key)
                    .is_some_and(|allowed| m.layers.iter().all(|l| allowed.contains(&l.media_type)))
            })
}

/// The policy's decision on `m` is deterministic and the one the model predicts, and a
/// refusal explains itself consistently with the settings.
pub fn check_decision(policy: &ArtifactPolicy, m: &ParsedManifest) {
    let s = policy.settings();
    let effective = policy.effective();
    assert_eq!(effective, expected_effective(s));
    let decision = policy.check(m);
    assert_eq!(policy.check(m), decision, "the decision is deterministic");
    assert_eq!(
        decision.is_ok(),
        expected_accept(s, &effective, m),
        "settings {s:?}, manifest {m:?}, decision {decision:?}"
    );
    if let Err(v) = decision {
        assert_eq!(v.yaml.is_some(), s.general_oci_support);
        assert_eq!(v.defaults_off, !s.default_artifact_types);
        assert_eq!(v.artifact_type, m.artifact_type);
        if v.refused_is_layer {
            assert!(
                m.layers.iter().any(|l| l.media_type == v.refused),
                "a refused layer type {:?} is one of the manifest's layers",
                v.refused
            );
        }
        let named = m
            .layers
            .iter()
            .map(|l| &l.media_type)
            .chain(m.config.as_ref().map(|c| &c.media_type))
            .chain(m.artifact_type.as_ref())
            .any(|t| *t == v.refused);
        assert!(named, "the refused type {:?} is in the manifest", v.refused);
        let _ = v.to_string();
    }
}
