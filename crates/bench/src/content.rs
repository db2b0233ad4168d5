//! Generated content: blobs of any size that are never held in memory whole, each distinct
//! by its seed, and small OCI images built from them.

use std::sync::LazyLock;

use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// The repeating body of every blob: random, so no layer of the stack can compress it.
const PATTERN_LEN: usize = 1 << 20;
const SEED_LEN: u64 = 8;

static PATTERN: LazyLock<Bytes> = LazyLock::new(|| {
    let mut bytes = vec![0u8; PATTERN_LEN];
    rand::rngs::StdRng::seed_from_u64(0x0062_6572_7468).fill_bytes(&mut bytes);
    Bytes::from(bytes)
});

/// A blob: its seed (the first 8 bytes) followed by the pattern, repeated, up to `size`.
#[derive(Clone, Copy, Debug)]
pub struct Blob {
    pub seed: u64,
    pub size: u64,
}

impl Blob {
    pub fn new(seed: u64, size: u64) -> Blob {
        Blob { seed, size }
    }

    /// The bytes starting at `at`, up to `end` and at most one pattern's length.
    pub fn chunk_at(&self, at: u64, end: u64) -> Bytes {
        let end = end.min(self.size);
        if at < SEED_LEN {
            let seed = Bytes::copy_from_slice(&self.seed.to_le_bytes());
            return seed.slice(at as usize..end.min(SEED_LEN) as usize);
        }
        let offset = ((at - SEED_LEN) % PATTERN_LEN as u64) as usize;
        let len = (PATTERN_LEN - offset).min((end - at) as usize);
        PATTERN.slice(offset..offset + len)
    }

    /// `sha256:<hex>` of the whole blob.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        let mut at = 0;
        while at < self.size {
            let chunk = self.chunk_at(at, self.size);
            hasher.update(&chunk);
            at += chunk.len() as u64;
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

/// A blob with its digest, computed once before any timing starts.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub blob: Blob,
    pub digest: String,
}

impl Prepared {
    pub fn new(blob: Blob) -> Prepared {
        Prepared {
            digest: blob.digest(),
            blob,
        }
    }
}

/// Digests `blobs` on every core, so preparing a run of large pushes stays short.
pub async fn prepare(blobs: Vec<Blob>) -> Vec<Prepared> {
    let tasks: Vec<_> = blobs
        .into_iter()
        .map(|b| tokio::task::spawn_blocking(move || Prepared::new(b)))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("hashing does not panic"));
    }
    out
}

/// A small image: a config, three layers and the manifest that names them.
pub struct Image {
    pub config: Bytes,
    pub config_digest: String,
    pub layers: Vec<Prepared>,
    pub manifest: Bytes,
    pub manifest_digest: String,
}

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Image {
    /// Image number `n`, with layers of `layer_size` bytes (distinct for every `n`).
    pub fn new(n: u64, layer_size: u64) -> Image {
        Image::with_layers(n, 3, layer_size)
    }

    /// Image number `n` with `count` layers of `layer_size` bytes each (distinct for every
    /// `n` while `count` stays at most 4).
    pub fn with_layers(n: u64, count: u64, layer_size: u64) -> Image {
        let config = Bytes::from(format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["IMAGE={n}"]}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        ));
        let config_digest = sha256(&config);
        let layers: Vec<Prepared> = (0..count.min(4))
            .map(|i| Prepared::new(Blob::new(n * 4 + i + (1 << 40), layer_size)))
            .collect();
        let layer_entries: Vec<String> = layers
            .iter()
            .map(|l| {
                format!(
                    r#"{{"mediaType":"{LAYER_TYPE}","digest":"{}","size":{}}}"#,
                    l.digest, l.blob.size
                )
            })
            .collect();
        let manifest = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"{CONFIG_TYPE}","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
            config.len(),
            layer_entries.join(",")
        ));
        let manifest_digest = sha256(&manifest);
        Image {
            config,
            config_digest,
            layers,
            manifest,
            manifest_digest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_blob_exactly_and_seeds_differ() {
        let blob = Blob::new(7, 3 * PATTERN_LEN as u64 + 5);
        let mut at = 0;
        let mut whole = Vec::new();
        while at < blob.size {
            let c = blob.chunk_at(at, blob.size);
            assert!(!c.is_empty());
            whole.extend_from_slice(&c);
            at += c.len() as u64;
        }
        assert_eq!(whole.len() as u64, blob.size);
        assert_eq!(&whole[..8], &7u64.to_le_bytes());
        assert_eq!(blob.digest(), sha256(&whole));
        assert_ne!(blob.digest(), Blob::new(8, blob.size).digest());
    }

    #[test]
    fn a_range_starts_where_asked() {
        let blob = Blob::new(1, 10 * PATTERN_LEN as u64);
        let c = blob.chunk_at(5 * PATTERN_LEN as u64 + 3, blob.size);
        assert_eq!(c[0], PATTERN[(5 * PATTERN_LEN + 3 - 8) % PATTERN_LEN]);
    }
}
