//! Sparse manifests: which references a manifest push may leave absent from the repository.
//!
//! A mirror that copies part of a multi-platform image keeps the index's digest only if it
//! stores the index unchanged, naming platforms it did not copy (`FEATURE_SPARSE_INDEX`, Quay's
//! key, with `SPARSE_INDEX_REQUIRED_ARCHS`); a mirror of part of an image may skip layers
//! (`FEATURE_SPARSE_MANIFESTS`, berth's). The config of an image is never optional: a client
//! needs it before anything else, and it is small. What is absent answers 404 when pulled, and
//! once pushed later it is linked as any other reference.

use oci::{Descriptor, Digest, ParsedManifest};

/// The sparse-manifest switches (both off by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseSettings {
    /// `FEATURE_SPARSE_INDEX`: an index may name child manifests the repository does not store.
    pub index: bool,
    /// `SPARSE_INDEX_REQUIRED_ARCHS`: architectures (`platform.architecture`) whose children
    /// must be stored even in a sparse index. Empty: every child may be absent.
    pub required_archs: Vec<String>,
    /// `FEATURE_SPARSE_MANIFESTS`: an image manifest may name layers the repository does not
    /// store (its config must be there).
    pub manifests: bool,
}

impl SparseSettings {
    /// Whether an index may be stored without the child `child` describes.
    pub fn may_omit_child(&self, child: &Descriptor) -> bool {
        if !self.index {
            return false;
        }
        let arch = child
            .platform
            .as_ref()
            .and_then(|p| p.get("architecture"))
            .and_then(|a| a.as_str());
        !arch.is_some_and(|a| self.required_archs.iter().any(|r| r == a))
    }

    /// The blobs and child manifests of `parsed` that may be absent under these settings,
    /// sorted and without duplicates. A digest that is also referenced where it is required
    /// (a layer that is also the config) is not among them.
    pub fn optional_references(&self, parsed: &ParsedManifest) -> Vec<Digest> {
        let config = parsed.config.as_ref().map(|c| &c.digest);
        let mut optional: Vec<Digest> = Vec::new();
        if self.manifests {
            optional.extend(
                parsed
                    .blob_references()
                    .map(|d| &d.digest)
                    .filter(|d| Some(*d) != config)
                    .cloned(),
            );
        }
        let required_children: Vec<&Digest> = parsed
            .manifests
            .iter()
            .filter(|c| !self.may_omit_child(c))
            .map(|c| &c.digest)
            .collect();
        optional.extend(
            parsed
                .manifests
                .iter()
                .filter(|c| !required_children.contains(&&c.digest))
                .map(|c| c.digest.clone()),
        );
        optional.sort();
        optional.dedup();
        optional
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> ParsedManifest {
        let bytes = serde_json::to_vec(&v).unwrap();
        let ct = v["mediaType"].as_str().unwrap().to_string();
        oci::manifest::parse(&bytes, &ct).unwrap()
    }

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn index() -> ParsedManifest {
        let child = |n: u8, arch: Option<&str>| {
            let mut d = serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest(n), "size": 10,
            });
            if let Some(a) = arch {
                d["platform"] = serde_json::json!({"os": "linux", "architecture": a});
            }
            d
        };
        parse(serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [child(1, Some("amd64")), child(2, Some("arm64")), child(3, None)],
        }))
    }

    fn image() -> ParsedManifest {
        let d =
            |n: u8, mt: &str| serde_json::json!({"mediaType": mt, "digest": digest(n), "size": 10});
        let layer = "application/vnd.oci.image.layer.v1.tar+gzip";
        parse(serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": d(1, "application/vnd.oci.image.config.v1+json"),
            "layers": [d(2, layer), d(3, layer), d(1, layer)],
        }))
    }

    fn digests(list: &[u8]) -> Vec<Digest> {
        list.iter().map(|n| digest(*n).parse().unwrap()).collect()
    }

    #[test]
    fn off_by_default_nothing_is_optional() {
        let s = SparseSettings::default();
        assert!(s.optional_references(&index()).is_empty());
        assert!(s.optional_references(&image()).is_empty());
    }

    #[test]
    fn a_sparse_index_keeps_its_required_architectures() {
        let all = SparseSettings {
            index: true,
            ..SparseSettings::default()
        };
        assert_eq!(all.optional_references(&index()), digests(&[1, 2, 3]));
        let amd64 = SparseSettings {
            required_archs: vec!["amd64".into()],
            ..all
        };
        // A child without a platform has no required architecture.
        assert_eq!(amd64.optional_references(&index()), digests(&[2, 3]));
        // The index switch says nothing about layers.
        assert!(amd64.optional_references(&image()).is_empty());
    }

    #[test]
    fn sparse_manifests_may_omit_layers_but_not_the_config() {
        let s = SparseSettings {
            manifests: true,
            ..SparseSettings::default()
        };
        assert_eq!(s.optional_references(&image()), digests(&[2, 3]));
        assert!(s.optional_references(&index()).is_empty());
    }
}
