//! `manifest`: [`oci::manifest::parse`] over arbitrary bytes, for every manifest media type
//! and the generic and empty `Content-Type`s.
//!
//! Parsing is deterministic and ignores `Content-Type` parameters. A parsed manifest agrees
//! with the JSON it came from (media types, digests, sizes, counts), every descriptor
//! round-trips through its serialized form and every digest through `Digest` parsing, and the
//! artifact policy decides on it consistently.

use berth::policy::{ArtifactPolicy, PolicySettings};
use oci::manifest::{parse, parse_descriptor};
use oci::media_type::{self as mt, essence};
use oci::{Descriptor, Digest, ParsedManifest};
use serde_json::Value;

use super::input::mode;
use super::policy::check_decision;

const CONTENT_TYPES: [&str; 8] = [
    mt::OCI_MANIFEST,
    mt::OCI_INDEX,
    mt::DOCKER_MANIFEST,
    mt::DOCKER_MANIFEST_LIST,
    mt::DOCKER_SCHEMA1,
    "application/json",
    "",
    "application/vnd.example+json",
];

pub fn check(data: &[u8]) {
    match mode(data) {
        // A mode byte picks one Content-Type, so the fuzzer can focus on it.
        (Some(m), bytes) => check_one(bytes, CONTENT_TYPES[usize::from(m) % CONTENT_TYPES.len()]),
        (None, bytes) => {
            for content_type in CONTENT_TYPES {
                check_one(bytes, content_type);
            }
        }
    }
}

fn policies() -> &'static [ArtifactPolicy] {
    static POLICIES: std::sync::OnceLock<Vec<ArtifactPolicy>> = std::sync::OnceLock::new();
    POLICIES.get_or_init(|| {
        vec![
            ArtifactPolicy::default(),
            ArtifactPolicy::new(PolicySettings {
                general_oci_support: false,
                ..Default::default()
            }),
            ArtifactPolicy::new(PolicySettings {
                allowed_artifact_types: Some(Default::default()),
                helm_oci_support: false,
                ..Default::default()
            }),
        ]
    })
}

fn check_one(bytes: &[u8], content_type: &str) {
    let parsed = parse(bytes, content_type);
    assert_eq!(
        parse(bytes, content_type),
        parsed,
        "parsing is deterministic"
    );
    let with_params = format!("{content_type}; charset=utf-8");
    assert_eq!(parse(bytes, &with_params), parsed, "parameters are ignored");
    let manifest = match parsed {
        Ok(m) => m,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let value: Value = serde_json::from_slice(bytes).expect("a parsed manifest is JSON");
    invariants(&manifest, &value, content_type);
    if value.get("mediaType").and_then(Value::as_str) == Some(manifest.media_type.as_str()) {
        // The field alone says the same.
        assert_eq!(parse(bytes, "").as_ref(), Ok(&manifest));
    }
    for policy in policies() {
        check_decision(policy, &manifest);
    }
}

fn invariants(m: &ParsedManifest, v: &Value, content_type: &str) {
    assert!(mt::MANIFEST_TYPES.contains(&m.media_type.as_str()));
    let header = essence(content_type);
    let field = v.get("mediaType").and_then(Value::as_str);
    if !matches!(header, "" | "application/json" | "application/octet-stream") {
        assert_eq!(m.media_type, header);
    } else {
        assert_eq!(field, Some(m.media_type.as_str()));
    }
    assert_eq!(v.get("schemaVersion").and_then(Value::as_u64), Some(2));

    if m.is_index() {
        assert!(m.config.is_none() && m.layers.is_empty());
        descriptors(&m.manifests, &v["manifests"]);
    } else {
        assert!(m.manifests.is_empty());
        descriptor(
            m.config.as_ref().expect("an image has a config"),
            &v["config"],
        );
        descriptors(&m.layers, &v["layers"]);
        let distributable = m
            .layers
            .iter()
            .filter(|l| !l.is_non_distributable())
            .count();
        assert_eq!(m.blob_references().count(), 1 + distributable);
    }
    match &m.subject {
        Some(s) => descriptor(s, &v["subject"]),
        None => assert!(v.get("subject").is_none_or(Value::is_null)),
    }
    let artifact_type = v
        .get("artifactType")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    assert_eq!(m.artifact_type.as_deref(), artifact_type);
    assert_eq!(
        m.effective_artifact_type(),
        artifact_type.or(m.config.as_ref().map(|c| c.media_type.as_str()))
    );
}

fn descriptors(parsed: &[Descriptor], v: &Value) {
    let items = v.as_array().expect("descriptor lists are arrays");
    assert_eq!(parsed.len(), items.len());
    for (d, item) in parsed.iter().zip(items) {
        descriptor(d, item);
    }
}

fn descriptor(d: &Descriptor, v: &Value) {
    assert_eq!(v["mediaType"].as_str(), Some(d.media_type.as_str()));
    assert_eq!(v["digest"].as_str(), Some(d.digest.to_string().as_str()));
    assert_eq!(v["size"].as_u64(), Some(d.size));
    assert_eq!(
        d.digest.to_string().parse::<Digest>().as_ref(),
        Ok(&d.digest)
    );
    let written = serde_json::to_value(d).expect("a descriptor serializes");
    assert_eq!(parse_descriptor(&written, "d").as_ref(), Ok(d), "{written}");
}
