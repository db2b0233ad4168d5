//! Content the harness pushes: bytes derived from a seed, so a run can be repeated and no two
//! blobs share a digest by accident, and the digests of what it pushes.

use bytes::Bytes;
use rand::{Rng, RngCore, SeedableRng};
use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `len` pseudo-random bytes determined by `seed`.
pub fn bytes(seed: u64, len: usize) -> Bytes {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    Bytes::from(out)
}

/// A layer size: mostly small, some medium, a few of several MiB, as in real images.
pub fn layer_size(rng: &mut impl Rng, large: bool) -> usize {
    let roll = rng.gen_range(0..100);
    match roll {
        0..=69 => rng.gen_range(512..64 * 1024),
        70..=94 => rng.gen_range(64 * 1024..512 * 1024),
        _ if large => rng.gen_range(1024 * 1024..4 * 1024 * 1024),
        _ => rng.gen_range(512 * 1024..1024 * 1024),
    }
}

/// An image config that differs by `seed`.
pub fn config(seed: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"seed":"{seed}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    ))
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An OCI image manifest over `config` and `layers` (digest, size).
pub fn image_manifest(config: (&str, usize), layers: &[(String, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, s)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d,
                "size": s,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0,
            "size": config.1,
        },
        "layers": layers,
    }))
    .expect("a manifest serializes")
}

/// An OCI image index over `manifests` (digest, size), one platform each.
pub fn image_index(manifests: &[(String, usize)]) -> Vec<u8> {
    let arches = ["amd64", "arm64", "riscv64", "s390x"];
    let entries: Vec<serde_json::Value> = manifests
        .iter()
        .enumerate()
        .map(|(i, (d, s))| {
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": d,
                "size": s,
                "platform": {"architecture": arches[i % arches.len()], "os": "linux"},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    }))
    .expect("an index serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_determined_by_their_seed() {
        assert_eq!(bytes(7, 1000), bytes(7, 1000));
        assert_ne!(bytes(7, 1000), bytes(8, 1000));
        assert_eq!(bytes(7, 10), bytes(7, 1000).slice(..10));
    }

    #[test]
    fn manifests_reference_what_they_are_given() {
        let m = image_manifest(("sha256:c", 3), &[("sha256:l".into(), 5)]);
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["layers"][0]["digest"], "sha256:l");
        assert_eq!(v["config"]["size"], 3);
        let i = image_index(&[("sha256:a".into(), 1), ("sha256:b".into(), 2)]);
        let v: serde_json::Value = serde_json::from_slice(&i).unwrap();
        assert_eq!(v["manifests"][1]["platform"]["architecture"], "arm64");
    }
}
