//! Parsing and structural validation of the manifest kinds berth accepts.
//!
//! The bytes a client sent are never rewritten: this module only reads them to learn which
//! blobs and manifests they reference and what metadata they carry.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::media_type::{self, essence};

/// A content descriptor as it appears inside a manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// Whether the layer is non-distributable: it has `urls`, or a media type that says so.
    pub fn is_non_distributable(&self) -> bool {
        !self.urls.is_empty()
            || self.media_type.contains(".nondistributable.")
            || self.media_type.contains(".foreign.")
    }
}

/// Why manifest bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(String),
    #[error("docker schema 1 manifests are not supported; push with schema 2 or OCI (e.g. skopeo copy --format v2s2)")]
    Schema1,
    #[error("unsupported manifest media type {0:?}; berth accepts {types}", types = media_type::MANIFEST_TYPES.join(", "))]
    UnsupportedMediaType(String),
}

/// What berth learns from a manifest's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The effective media type: from `Content-Type`, else the `mediaType` field.
    pub media_type: String,
    /// The `config` descriptor of an image manifest.
    pub config: Option<Descriptor>,
    /// The `layers` of an image manifest.
    pub layers: Vec<Descriptor>,
    /// The `manifests` of an index.
    pub manifests: Vec<Descriptor>,
    /// The `subject` this manifest refers to (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
    /// The top-level `artifactType`.
    pub artifact_type: Option<String>,
    /// The top-level annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ParsedManifest {
    /// Whether this manifest lists other manifests.
    pub fn is_index(&self) -> bool {
        media_type::is_index(&self.media_type)
    }

    /// The artifact type the referrers API reports: `artifactType`, else the config media type.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or(self.config.as_ref().map(|c| c.media_type.as_str()))
    }

    /// Blobs this manifest needs in the same repository: the config and every layer except
    /// non-distributable (foreign) ones, which clients fetch from elsewhere and never upload.
    pub fn blob_references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|d| !d.is_non_distributable()))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<Value>,
    media_type: Option<Value>,
    config: Option<Value>,
    layers: Option<Value>,
    manifests: Option<Value>,
    subject: Option<Value>,
    artifact_type: Option<Value>,
    annotations: Option<Value>,
    fs_layers: Option<Value>,
}

fn invalid(msg: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(msg.into())
}

fn string_map(v: &Value, what: &str) -> Result<BTreeMap<String, String>, ManifestError> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(format!("{what} must be an object of strings")))?;
    obj.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| invalid(format!("{what}[{k:?}] must be a string")))
        })
        .collect()
}

/// Parses and checks one descriptor; `what` names it in error messages.
pub fn parse_descriptor(v: &Value, what: &str) -> Result<Descriptor, ManifestError> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(format!("{what} must be a descriptor object")))?;
    let media_type = obj
        .get("mediaType")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(format!("{what}.mediaType is required")))?
        .to_string();
    let digest = obj
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what}.digest is required")))?
        .parse::<Digest>()
        .map_err(|e| invalid(format!("{what}.digest: {e}")))?;
    let size = obj
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid(format!("{what}.size must be a non-negative integer")))?;
    let artifact_type = match obj.get("artifactType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid(format!("{what}.artifactType must be a string"))),
    };
    let annotations = match obj.get("annotations") {
        None | Some(Value::Null) => None,
        Some(a) => Some(string_map(a, &format!("{what}.annotations"))?),
    };
    let urls = match obj.get("urls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|u| u.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid(format!("{what}.urls must be strings")))?,
        Some(_) => return Err(invalid(format!("{what}.urls must be an array"))),
    };
    let platform = obj.get("platform").filter(|p| !p.is_null()).cloned();
    if let Some(p) = &platform {
        if !p.is_object() {
            return Err(invalid(format!("{what}.platform must be an object")));
        }
    }
    Ok(Descriptor {
        media_type,
        digest,
        size,
        artifact_type,
        annotations,
        platform,
        urls,
    })
}

fn descriptor_list(v: Option<&Value>, what: &str) -> Result<Vec<Descriptor>, ManifestError> {
    match v {
        None => Err(invalid(format!("{what} is required"))),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, d)| parse_descriptor(d, &format!("{what}[{i}]")))
            .collect(),
        Some(_) => Err(invalid(format!("{what} must be an array"))),
    }
}

/// Parses manifest bytes sent with `content_type` (may be empty when the client sent none).
///
/// The media type is taken from `Content-Type` when it names a manifest type, else from the
/// `mediaType` field. When both are present they must agree.
pub fn parse(bytes: &[u8], content_type: &str) -> Result<ParsedManifest, ManifestError> {
    // serde skips the values of unknown fields without checking them, so a body with invalid
    // UTF-8 there would be accepted and stored although it is not JSON.
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ManifestError::Json(format!(
            "the manifest is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    if raw.fs_layers.is_some() {
        return Err(ManifestError::Schema1);
    }
    let header_type = essence(content_type);
    if header_type == media_type::DOCKER_SCHEMA1 || header_type == media_type::DOCKER_SCHEMA1_SIGNED
    {
        return Err(ManifestError::Schema1);
    }
    let field_type = match &raw.media_type {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid("mediaType must be a string")),
    };
    let generic_header = header_type.is_empty()
        || header_type == "application/json"
        || header_type == "application/octet-stream";
    let media_type = match (generic_header, field_type) {
        (true, Some(f)) => f.to_string(),
        (true, None) => return Err(invalid(
            "the manifest media type is unknown: send a Content-Type header or a mediaType field",
        )),
        (false, Some(f)) if f != header_type => {
            return Err(invalid(format!(
                "mediaType field {f:?} does not match Content-Type {header_type:?}"
            )))
        }
        (false, _) => header_type.to_string(),
    };
    if media_type == media_type::DOCKER_SCHEMA1 || media_type == media_type::DOCKER_SCHEMA1_SIGNED {
        return Err(ManifestError::Schema1);
    }
    if !media_type::MANIFEST_TYPES.contains(&media_type.as_str()) {
        return Err(ManifestError::UnsupportedMediaType(media_type));
    }
    match raw.schema_version.as_ref().and_then(Value::as_u64) {
        Some(2) => {}
        Some(1) => return Err(ManifestError::Schema1),
        _ => return Err(invalid("schemaVersion must be 2")),
    }
    let artifact_type = match raw.artifact_type {
        None | Some(Value::Null) => None,
        // The image spec treats an empty artifactType as absent.
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(invalid("artifactType must be a string")),
    };
    let annotations = match &raw.annotations {
        None | Some(Value::Null) => None,
        Some(a) => Some(string_map(a, "annotations")?),
    };
    let subject = match &raw.subject {
        None | Some(Value::Null) => None,
        Some(s) => Some(parse_descriptor(s, "subject")?),
    };
    let mut parsed = ParsedManifest {
        media_type,
        config: None,
        layers: Vec::new(),
        manifests: Vec::new(),
        subject,
        artifact_type,
        annotations,
    };
    if parsed.is_index() {
        if raw.config.is_some() || raw.layers.is_some() {
            return Err(invalid("an index has manifests, not config or layers"));
        }
        parsed.manifests = descriptor_list(raw.manifests.as_ref(), "manifests")?;
    } else {
        if raw.manifests.is_some() {
            return Err(invalid(
                "an image manifest has config and layers, not manifests",
            ));
        }
        let config = raw
            .config
            .as_ref()
            .ok_or_else(|| invalid("config is required"))?;
        parsed.config = Some(parse_descriptor(config, "config")?);
        parsed.layers = descriptor_list(raw.layers.as_ref(), "layers")?;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn refuses_invalid_utf8_anywhere_even_in_unknown_fields() {
        let mut body = br#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "x-unknown": "ab"#.to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(br#"", "manifests": []}"#);
        match parse(&body, "") {
            Err(ManifestError::Json(m)) => assert!(m.contains("UTF-8"), "{m}"),
            other => panic!("accepted or wrong error: {other:?}"),
        }
    }

    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2{extra},"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":0}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D}","size":0}}]}}"#
        )
    }

    #[test]
    fn image_without_media_type_field_uses_header() {
        let m = parse(image("").as_bytes(), media_type::OCI_MANIFEST).unwrap();
        assert_eq!(m.media_type, media_type::OCI_MANIFEST);
        assert_eq!(m.blob_references().count(), 2);
        assert_eq!(
            m.effective_artifact_type(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn field_used_when_header_generic() {
        let body = image(r#","mediaType":"application/vnd.oci.image.manifest.v1+json""#);
        assert!(parse(body.as_bytes(), "application/json").is_ok());
        assert!(parse(body.as_bytes(), "").is_ok());
        assert!(parse(body.as_bytes(), media_type::DOCKER_MANIFEST).is_err());
    }

    #[test]
    fn refuses_schema1_and_unknown_types() {
        assert_eq!(
            parse(
                br#"{"schemaVersion":1,"fsLayers":[]}"#,
                media_type::DOCKER_SCHEMA1
            ),
            Err(ManifestError::Schema1)
        );
        assert!(matches!(
            parse(image("").as_bytes(), "application/vnd.example+json"),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            parse(b"{", media_type::OCI_MANIFEST),
            Err(ManifestError::Json(_))
        ));
        assert!(parse(b"[]", media_type::OCI_MANIFEST).is_err());
        assert!(parse(br#"{"schemaVersion":2}"#, media_type::OCI_MANIFEST).is_err());
    }

    #[test]
    fn index_with_subject_and_artifact_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","artifactType":"x/y","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","size":1}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","size":3}}}}"#
        );
        let m = parse(body.as_bytes(), "").unwrap();
        assert!(m.is_index());
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.subject.unwrap().size, 3);
        assert_eq!(m.artifact_type.as_deref(), Some("x/y"));
    }

    #[test]
    fn bad_descriptors() {
        for bad in [
            r#"{"schemaVersion":2,"config":{"digest":"sha256:x","size":1,"mediaType":"a"},"layers":[]}"#,
            r#"{"schemaVersion":2,"config":{"digest":"","size":-1,"mediaType":"a"},"layers":[]}"#,
            r#"{"schemaVersion":2,"config":"x","layers":[]}"#,
            r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":{}}"#,
        ] {
            assert!(
                parse(bad.as_bytes(), media_type::OCI_MANIFEST).is_err(),
                "{bad}"
            );
        }
    }
}
