//! Content digests (`algorithm:encoded`), as defined by the OCI image spec.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A digest algorithm berth can compute and verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The registered algorithm identifier, as it appears before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the lowercase hex encoding of this algorithm's output.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// A fresh incremental hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Digest of a complete in-memory value (manifests; blobs are hashed incrementally).
    pub fn digest_of(self, bytes: &[u8]) -> Digest {
        let mut h = self.hasher();
        h.update(bytes);
        h.finish()
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other if is_valid_algorithm_component(other) => {
                Err(DigestError::Unsupported(other.to_string()))
            }
            _ => Err(DigestError::Malformed),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a usable digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string does not have the `algorithm:encoded` grammar or the encoding is wrong for
    /// the algorithm.
    #[error("invalid digest")]
    Malformed,
    /// The grammar is fine but berth does not implement the algorithm.
    #[error("unsupported digest algorithm {0}")]
    Unsupported(String),
}

/// A validated digest: a supported algorithm and its lowercase hex encoding.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The algorithm that produced this digest.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex encoding (what follows the colon).
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

fn is_valid_algorithm_component(s: &str) -> bool {
    // algorithm-component ::= [a-z0-9]+ joined by one of [+._-]
    !s.is_empty()
        && s.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        let (alg, encoded) = s.split_once(':').ok_or(DigestError::Malformed)?;
        if encoded.is_empty()
            || !encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
        {
            return Err(DigestError::Malformed);
        }
        let algorithm: Algorithm = alg.parse()?;
        if encoded.len() != algorithm.hex_len()
            || !encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Malformed);
        }
        Ok(Digest {
            algorithm,
            hex: encoded.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher producing a [`Digest`].
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The hasher's internal state as bytes, so an upload can be continued by another process
    /// (a replica, or this one after a restart) without re-reading the bytes hashed so far.
    /// The encoding starts with the algorithm's name, so [`Hasher::restore`] rejects a state
    /// saved for another algorithm.
    pub fn save_state(&self) -> Vec<u8> {
        use sha2::digest::common::hazmat::SerializableState;
        let (name, state) = match self {
            Hasher::Sha256(h) => ("sha256", h.serialize().to_vec()),
            Hasher::Sha512(h) => ("sha512", h.serialize().to_vec()),
        };
        let mut out = Vec::with_capacity(name.len() + 1 + state.len());
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&state);
        out
    }

    /// Rebuilds a hasher from [`Hasher::save_state`]'s bytes; `None` when they are not a
    /// state of `algorithm` (corrupt, truncated, or saved for another algorithm).
    pub fn restore(algorithm: Algorithm, saved: &[u8]) -> Option<Hasher> {
        use sha2::digest::common::hazmat::SerializableState;
        let prefix = algorithm.as_str().as_bytes();
        let state = saved.strip_prefix(prefix)?.strip_prefix(b":")?;
        match algorithm {
            Algorithm::Sha256 => sha2::Sha256::deserialize(state.try_into().ok()?)
                .ok()
                .map(Hasher::Sha256),
            Algorithm::Sha512 => sha2::Sha512::deserialize(state.try_into().ok()?)
                .ok()
                .map(Hasher::Sha512),
        }
    }

    /// Consumes the hasher and returns the digest of everything fed to it.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hash_state_survives_save_and_restore() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
            // Split at a point that leaves a partial block buffered.
            let mut first = algorithm.hasher();
            first.update(&data[..333]);
            let saved = first.save_state();
            let mut resumed = Hasher::restore(algorithm, &saved).expect("restores");
            resumed.update(&data[333..]);
            assert_eq!(resumed.finish(), algorithm.digest_of(&data));
        }
        let saved = Algorithm::Sha256.hasher().save_state();
        assert!(Hasher::restore(Algorithm::Sha512, &saved).is_none());
        assert!(Hasher::restore(Algorithm::Sha256, &saved[..saved.len() - 1]).is_none());
        assert!(Hasher::restore(Algorithm::Sha256, b"").is_none());
    }

    #[test]
    fn parses_and_prints_sha256() {
        let d: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(Algorithm::Sha256.digest_of(b""), d);
    }

    #[test]
    fn sha512_round_trip() {
        let d = Algorithm::Sha512.digest_of(b"abc");
        assert_eq!(d.hex().len(), 128);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:abc",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
            "sha256:../../etc/passwd",
        ] {
            assert_eq!(bad.parse::<Digest>(), Err(DigestError::Malformed), "{bad}");
        }
    }

    #[test]
    fn unknown_algorithm_is_unsupported() {
        assert_eq!(
            "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>(),
            Err(DigestError::Unsupported("md5".into()))
        );
        assert_eq!(
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8".parse::<Digest>(),
            Err(DigestError::Unsupported("multihash+base58".into()))
        );
    }
}
