//! What berth records about each manifest at push time: its kind, size, what it signs, and
//! kind-specific details, so listings and the dashboard never re-parse manifests.

use oci::media_type::{self as mt};
use oci::{Digest, ParsedManifest, Tag};
use serde_json::{json, Map, Value};

/// The kind of content a manifest is, as people name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
    HelmChart,
    Signature,
    Attestation,
    Sbom,
    EncryptedImage,
    Artifact,
}

impl ManifestKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestKind::Image => "image",
            ManifestKind::Index => "index",
            ManifestKind::HelmChart => "helm-chart",
            ManifestKind::Signature => "signature",
            ManifestKind::Attestation => "attestation",
            ManifestKind::Sbom => "sbom",
            ManifestKind::EncryptedImage => "encrypted-image",
            ManifestKind::Artifact => "artifact",
        }
    }
}

/// Facts about one manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestFacts {
    pub kind: ManifestKind,
    /// Manifest bytes plus every descriptor it lists.
    pub total_size: u64,
    /// The manifest this one signs or describes.
    pub signed: Option<Digest>,
    /// Kind-specific details (JSON object).
    pub details: Map<String, Value>,
}

fn any_layer(m: &ParsedManifest, pred: impl Fn(&str) -> bool) -> bool {
    m.layers.iter().any(|l| pred(&l.media_type))
}

/// Classifies a manifest.
pub fn classify(m: &ParsedManifest) -> ManifestKind {
    let artifact = m.artifact_type.as_deref().unwrap_or("");
    let config = m.config.as_ref().map_or("", |c| c.media_type.as_str());
    // Without `artifactType`, an artifact's type is its config's media type (OCI image spec
    // 1.1): notation 1.3 and cosign's referrer signatures write theirs there.
    let is = |types: &[&str]| {
        types.contains(&artifact) || types.contains(&config) || any_layer(m, |l| types.contains(&l))
    };
    if m.is_index() {
        ManifestKind::Index
    } else if config == mt::HELM_CONFIG {
        ManifestKind::HelmChart
    } else if is(&[
        mt::COSIGN_SIMPLESIGNING,
        mt::COSIGN_SIG_ARTIFACT,
        mt::SIGSTORE_BUNDLE,
        mt::NOTARY_SIGNATURE,
    ]) {
        ManifestKind::Signature
    } else if is(&[mt::DSSE_ENVELOPE, mt::IN_TOTO]) || artifact.contains("in-toto") {
        ManifestKind::Attestation
    } else if is(mt::SBOM_TYPES) {
        ManifestKind::Sbom
    } else if any_layer(m, mt::is_encrypted_layer) {
        ManifestKind::EncryptedImage
    } else if m.artifact_type.is_none() && mt::IMAGE_CONFIG_TYPES.contains(&config) {
        ManifestKind::Image
    } else {
        ManifestKind::Artifact
    }
}

/// The digest a cosign-scheme tag (`sha256-<hex>.sig`, `.att`, `.sbom`) points at.
pub fn cosign_tag_target(tag: &Tag) -> Option<Digest> {
    let (stem, suffix) = tag.as_str().rsplit_once('.')?;
    if !matches!(suffix, "sig" | "att" | "sbom") {
        return None;
    }
    let (alg, hex) = stem.split_once('-')?;
    format!("{alg}:{hex}").parse().ok()
}

/// Facts derivable from the manifest itself; `chart` is the Helm config's JSON when the
/// manifest is a chart and the config could be read.
pub fn facts(
    m: &ParsedManifest,
    manifest_len: usize,
    tags: &[Tag],
    chart: Option<&Value>,
) -> ManifestFacts {
    let kind = classify(m);
    let total_size = manifest_len as u64
        + m.config
            .iter()
            .chain(&m.layers)
            .chain(&m.manifests)
            .map(|d| d.size)
            .sum::<u64>();
    let signed = m
        .subject
        .as_ref()
        .map(|s| s.digest.clone())
        .or_else(|| tags.iter().find_map(cosign_tag_target));
    let mut details = Map::new();
    let platforms: Vec<String> = m
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter_map(|p| {
            let os = p.get("os")?.as_str()?;
            let arch = p.get("architecture")?.as_str()?;
            Some(match p.get("variant").and_then(Value::as_str) {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            })
        })
        .collect();
    if !platforms.is_empty() {
        details.insert("platforms".into(), json!(platforms));
    }
    let mut schemes: Vec<String> = m
        .layers
        .iter()
        .filter(|l| mt::is_encrypted_layer(&l.media_type))
        .flat_map(|l| l.annotations.iter().flatten())
        .filter_map(|(k, _)| k.strip_prefix("org.opencontainers.image.enc.keys."))
        .map(str::to_string)
        .collect();
    schemes.sort();
    schemes.dedup();
    if !schemes.is_empty() {
        details.insert("encryption".into(), json!(schemes));
    }
    let mut compression: Vec<&str> = m
        .layers
        .iter()
        .filter_map(|l| {
            let t = l.media_type.trim_end_matches("+encrypted");
            if t.ends_with("+zstd") || t.ends_with(".zstd") {
                Some("zstd")
            } else if t.ends_with("+gzip") || t.ends_with(".gzip") {
                Some("gzip")
            } else {
                None
            }
        })
        .collect();
    compression.sort_unstable();
    compression.dedup();
    if !compression.is_empty() {
        details.insert("compression".into(), json!(compression));
    }
    if let Some(chart) = chart.and_then(Value::as_object) {
        let mut fields = Map::new();
        for key in ["name", "version", "appVersion", "description"] {
            if let Some(v) = chart.get(key).and_then(Value::as_str) {
                fields.insert(key.into(), json!(v));
            }
        }
        details.insert("chart".into(), Value::Object(fields));
    }
    ManifestFacts {
        kind,
        total_size,
        signed,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest(config: &str, layers: &[(&str, Option<&str>)]) -> ParsedManifest {
        let layers: Vec<Value> = layers
            .iter()
            .map(|(t, ann)| {
                let mut l = json!({"mediaType": t, "digest": D, "size": 10});
                if let Some(a) = ann {
                    l["annotations"] = json!({ *a: "x" });
                }
                l
            })
            .collect();
        let v = json!({"schemaVersion": 2, "config": {"mediaType": config, "digest": D, "size": 5}, "layers": layers});
        oci::manifest::parse(&serde_json::to_vec(&v).unwrap(), mt::OCI_MANIFEST).unwrap()
    }

    #[test]
    fn kinds() {
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(
            classify(&manifest(mt::OCI_IMAGE_CONFIG, &[(gz, None)])),
            ManifestKind::Image
        );
        assert_eq!(
            classify(&manifest(mt::HELM_CONFIG, &[(mt::HELM_CHART, None)])),
            ManifestKind::HelmChart
        );
        assert_eq!(
            classify(&manifest(
                mt::OCI_IMAGE_CONFIG,
                &[(mt::COSIGN_SIMPLESIGNING, None)]
            )),
            ManifestKind::Signature
        );
        assert_eq!(
            classify(&manifest(
                mt::OCI_IMAGE_CONFIG,
                &[(mt::DSSE_ENVELOPE, None)]
            )),
            ManifestKind::Attestation
        );
        assert_eq!(
            classify(&manifest(mt::OCI_IMAGE_CONFIG, &[("text/spdx", None)])),
            ManifestKind::Sbom
        );
        assert_eq!(
            classify(&manifest("application/x", &[("application/y", None)])),
            ManifestKind::Artifact
        );
        for (artifact_type, layer) in [
            (mt::NOTARY_SIGNATURE, mt::JOSE_JSON),
            (mt::NOTARY_SIGNATURE, mt::COSE),
            (mt::SIGSTORE_BUNDLE, mt::SIGSTORE_BUNDLE),
            (mt::COSIGN_SIG_ARTIFACT, mt::COSIGN_SIMPLESIGNING),
        ] {
            let v = json!({"schemaVersion": 2, "artifactType": artifact_type,
                "config": {"mediaType": mt::OCI_EMPTY, "digest": D, "size": 2},
                "layers": [{"mediaType": layer, "digest": D, "size": 10}],
                "subject": {"mediaType": mt::OCI_MANIFEST, "digest": D, "size": 10}});
            let m =
                oci::manifest::parse(&serde_json::to_vec(&v).unwrap(), mt::OCI_MANIFEST).unwrap();
            let f = facts(&m, 100, &[], None);
            assert_eq!(f.kind, ManifestKind::Signature, "{artifact_type}");
            assert_eq!(f.signed.unwrap().to_string(), D, "{artifact_type}");
            // notation 1.3 and cosign's referrers name the type only in the config.
            let v = json!({"schemaVersion": 2,
                "config": {"mediaType": artifact_type, "digest": D, "size": 2},
                "layers": [{"mediaType": layer, "digest": D, "size": 10}],
                "subject": {"mediaType": mt::OCI_MANIFEST, "digest": D, "size": 10}});
            let m =
                oci::manifest::parse(&serde_json::to_vec(&v).unwrap(), mt::OCI_MANIFEST).unwrap();
            assert_eq!(
                classify(&m),
                ManifestKind::Signature,
                "config {artifact_type}"
            );
        }
        let enc = manifest(
            mt::OCI_IMAGE_CONFIG,
            &[
                (
                    "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
                    Some("org.opencontainers.image.enc.keys.jwe"),
                ),
                (
                    "application/vnd.oci.image.layer.v1.tar+zstd+encrypted",
                    Some("org.opencontainers.image.enc.keys.pgp"),
                ),
            ],
        );
        let f = facts(&enc, 100, &[], None);
        assert_eq!(f.kind, ManifestKind::EncryptedImage);
        assert_eq!(f.details["encryption"], json!(["jwe", "pgp"]));
        assert_eq!(f.details["compression"], json!(["gzip", "zstd"]));
        assert_eq!(f.total_size, 100 + 5 + 20);
    }

    #[test]
    fn cosign_tags_name_their_target() {
        let t: Tag = "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.sig"
            .parse()
            .unwrap();
        assert_eq!(cosign_tag_target(&t).unwrap().to_string(), D);
        for other in [
            "latest",
            "sha256-abc.sig",
            "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.txt",
        ] {
            assert_eq!(cosign_tag_target(&other.parse().unwrap()), None, "{other}");
        }
    }

    #[test]
    fn helm_chart_fields() {
        let m = manifest(mt::HELM_CONFIG, &[(mt::HELM_CHART, None)]);
        let chart = json!({"name": "quarkus", "version": "0.0.3", "appVersion": "1.0", "description": "<script>", "apiVersion": "v2"});
        let f = facts(&m, 10, &[], Some(&chart));
        assert_eq!(
            f.details["chart"],
            json!({"name": "quarkus", "version": "0.0.3", "appVersion": "1.0", "description": "<script>"})
        );
    }
}
