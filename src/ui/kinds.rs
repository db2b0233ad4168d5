//! How each kind of content is shown: label, icon, one line of detail, and the command that
//! pulls it.

use maud::{html, Markup};
use oci::media_type as mt;
use serde_json::Value;

use super::layout::icon;

/// A manifest as the dashboard presents it.
pub struct KindView {
    /// Stable key: the recorded kind, or `zstd-image` for images compressed with zstd only.
    pub key: &'static str,
    pub label: &'static str,
    /// Chart name and version, platforms, key schemes or artifact type.
    pub detail: Option<String>,
    pub details: Value,
}

impl KindView {
    /// Builds the view of a manifest from what was recorded at push.
    pub fn new(kind: &str, artifact_type: Option<&str>, details: Option<&str>) -> KindView {
        let details: Value = details
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let list = |key: &str| -> Vec<String> {
            details[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (key, label, detail) = match kind {
            "image" if list("compression") == ["zstd"] => (
                "zstd-image",
                "zstd image",
                Some("zstd-compressed layers".into()),
            ),
            "image" => ("image", "Container image", None),
            "index" => {
                let platforms = list("platforms");
                ("index", "Multi-arch index", summary(&platforms))
            }
            "helm-chart" => {
                let chart = &details["chart"];
                let detail = match (chart["name"].as_str(), chart["version"].as_str()) {
                    (Some(n), Some(v)) => Some(format!("{n} {v}")),
                    (Some(n), None) => Some(n.to_string()),
                    _ => None,
                };
                ("helm-chart", "Helm chart", detail)
            }
            "signature" => ("signature", signature_label(artifact_type), None),
            "attestation" => (
                "attestation",
                "Attestation",
                artifact_type.map(str::to_string),
            ),
            "sbom" => ("sbom", "SBOM", artifact_type.map(str::to_string)),
            "encrypted-image" => {
                let schemes: Vec<String> = list("encryption")
                    .iter()
                    .map(|s| s.to_ascii_uppercase())
                    .collect();
                ("encrypted-image", "Encrypted image", summary(&schemes))
            }
            _ => (
                "artifact",
                "OCI artifact",
                artifact_type.map(str::to_string),
            ),
        };
        KindView {
            key,
            label,
            detail,
            details,
        }
    }

    /// The chart's recorded Chart.yaml field, for Helm charts.
    pub fn chart_field(&self, field: &str) -> Option<&str> {
        self.details["chart"][field].as_str()
    }

    /// The kind cell: icon, label, detail.
    pub fn cell(&self) -> Markup {
        html! {
            div.kind data-kind=(self.key) {
                span.kind-icon { (icon(self.key)) }
                span.kind-text {
                    span.kind-label { (self.label) }
                    @if let Some(detail) = &self.detail {
                        span.kind-detail.lock-scheme[self.key == "encrypted-image"] { (detail) }
                    }
                }
            }
        }
    }

    /// The command that pulls `reference` (`host/repo:tag`) with the right client.
    pub fn pull_command(&self, host: &str, repo: &str, tag: &str) -> String {
        match self.key {
            "image" | "index" | "zstd-image" => format!("podman pull {host}/{repo}:{tag}"),
            "encrypted-image" => {
                format!("podman pull --decryption-key private-key.pem {host}/{repo}:{tag}")
            }
            "helm-chart" => {
                let name = self
                    .chart_field("name")
                    .filter(|n| is_plain(n))
                    .map(str::to_string)
                    .unwrap_or_else(|| repo.rsplit('/').next().unwrap_or(repo).to_string());
                let version = self
                    .chart_field("version")
                    .filter(|v| is_plain(v))
                    .unwrap_or(tag);
                format!("helm install {name} oci://{host}/{repo} --version {version}")
            }
            _ => format!("oras pull {host}/{repo}:{tag}"),
        }
    }
}

/// What signs: the recorded `artifactType` tells Notary Project signatures and sigstore bundles
/// from cosign's own signatures (tag-scheme `.sig` manifests carry no artifact type).
fn signature_label(artifact_type: Option<&str>) -> &'static str {
    match artifact_type {
        Some(mt::NOTARY_SIGNATURE) => "Notary signature",
        Some(mt::SIGSTORE_BUNDLE) => "Sigstore bundle",
        _ => "Cosign signature",
    }
}

/// Items named in a detail line; an index of thousands of platforms is not one line.
const DETAIL_ITEMS: usize = 8;
/// Longest item named in a detail line (in characters).
const DETAIL_ITEM_CHARS: usize = 64;

/// The first few of `items`, with a count of the others.
fn summary(items: &[String]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let mut shown: Vec<String> = items
        .iter()
        .take(DETAIL_ITEMS)
        .map(|i| match i.char_indices().nth(DETAIL_ITEM_CHARS) {
            Some((at, _)) => format!("{}…", &i[..at]),
            None => i.clone(),
        })
        .collect();
    if items.len() > DETAIL_ITEMS {
        shown.push(format!("and {} more", items.len() - DETAIL_ITEMS));
    }
    Some(shown.join(", "))
}

/// Whether a value from a chart can go into a shell command as it is (no quoting needed).
fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_pull_command_uses_chart_name_and_version() {
        let v = KindView::new(
            "helm-chart",
            None,
            Some(r#"{"chart":{"name":"quarkus","version":"0.0.3"}}"#),
        );
        assert_eq!(v.detail.as_deref(), Some("quarkus 0.0.3"));
        assert_eq!(
            v.pull_command("h:1", "userorg/helm/quarkus", "0.0.3"),
            "helm install quarkus oci://h:1/userorg/helm/quarkus --version 0.0.3"
        );
        let hostile = KindView::new(
            "helm-chart",
            None,
            Some(r#"{"chart":{"name":"x; rm -rf /","version":"$(id)"}}"#),
        );
        assert_eq!(
            hostile.pull_command("h", "ns/c", "1.0"),
            "helm install c oci://h/ns/c --version 1.0"
        );
    }

    #[test]
    fn kinds_have_labels_and_details() {
        let enc = KindView::new(
            "encrypted-image",
            None,
            Some(r#"{"encryption":["jwe","pgp"]}"#),
        );
        assert_eq!(
            (enc.key, enc.detail.as_deref()),
            ("encrypted-image", Some("JWE, PGP"))
        );
        let zstd = KindView::new("image", None, Some(r#"{"compression":["zstd"]}"#));
        assert_eq!(zstd.key, "zstd-image");
        let mixed = KindView::new("image", None, Some(r#"{"compression":["gzip","zstd"]}"#));
        assert_eq!(mixed.key, "image");
        let idx = KindView::new(
            "index",
            None,
            Some(r#"{"platforms":["linux/amd64","linux/arm64"]}"#),
        );
        assert_eq!(idx.detail.as_deref(), Some("linux/amd64, linux/arm64"));
        let platforms: Vec<String> = (0..25_000).map(|i| format!("linux/arch{i}")).collect();
        let details = serde_json::json!({ "platforms": platforms }).to_string();
        let huge = KindView::new("index", None, Some(&details));
        assert_eq!(
            huge.detail.as_deref(),
            Some("linux/arch0, linux/arch1, linux/arch2, linux/arch3, linux/arch4, linux/arch5, linux/arch6, linux/arch7, and 24992 more")
        );
        for (artifact_type, label) in [
            (None, "Cosign signature"),
            (Some(mt::COSIGN_SIG_ARTIFACT), "Cosign signature"),
            (Some(mt::NOTARY_SIGNATURE), "Notary signature"),
            (Some(mt::SIGSTORE_BUNDLE), "Sigstore bundle"),
        ] {
            let v = KindView::new("signature", artifact_type, None);
            assert_eq!((v.key, v.label), ("signature", label), "{artifact_type:?}");
        }
        let other = KindView::new("artifact", Some("application/x.thing"), None);
        assert_eq!(
            (other.label, other.detail.as_deref()),
            ("OCI artifact", Some("application/x.thing"))
        );
    }
}
