//! Limits on what one client may make berth hold: open upload sessions, blob sizes and tags
//! per manifest push.

use serde_norway::{Mapping, Value};

use super::{integer, ConfigError};

/// The limits, with production defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_UPLOADS_PER_ACCOUNT`: upload sessions one account may have open at once (an
    /// anonymous client of an open registry counts per client address).
    pub uploads_per_account: u32,
    /// `MAX_UPLOADS_PER_REPOSITORY`: upload sessions open at once in one repository.
    pub uploads_per_repository: u32,
    /// `MAXIMUM_LAYER_SIZE` (Quay's key): the largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
    /// `MAX_TAGS_PER_REQUEST`: `?tag=` parameters one manifest push may carry.
    pub tags_per_request: u32,
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            uploads_per_account: 1000,
            uploads_per_repository: 1000,
            // Quay's default.
            max_blob_bytes: 20 * GIB,
            tags_per_request: 100,
        }
    }
}

/// Reads the limit keys of a config file.
pub(super) fn parse(map: &Mapping) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    if let Some(n) = integer(map, "MAX_UPLOADS_PER_ACCOUNT", 1, 1_000_000)? {
        limits.uploads_per_account = n as u32;
    }
    if let Some(n) = integer(map, "MAX_UPLOADS_PER_REPOSITORY", 1, 1_000_000)? {
        limits.uploads_per_repository = n as u32;
    }
    if let Some(n) = size(map, "MAXIMUM_LAYER_SIZE")? {
        limits.max_blob_bytes = n;
    }
    if let Some(n) = integer(map, "MAX_TAGS_PER_REQUEST", 1, 10_000)? {
        limits.tags_per_request = n as u32;
    }
    Ok(limits)
}

/// Reads a size as Quay writes it (`20G`, `500M`: GiB and MiB) or as a number of bytes; at
/// least 1 MiB.
fn size(map: &Mapping, key: &str) -> Result<Option<u64>, ConfigError> {
    let wrong = || ConfigError::WrongType {
        key: key.to_string(),
        expected: "a size of at least 1M, such as 20G or 500M, or a number of bytes",
    };
    let bytes = match map.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(wrong)?,
        Some(Value::String(s)) => {
            let s = s.trim();
            let (digits, unit) = match s.char_indices().last() {
                Some((i, 'G')) => (&s[..i], GIB),
                Some((i, 'M')) => (&s[..i], MIB),
                _ => (s, 1),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(wrong());
            }
            digits
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(unit))
                .ok_or_else(wrong)?
        }
        Some(_) => return Err(wrong()),
    };
    if bytes < MIB {
        return Err(wrong());
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_config;
    use super::*;

    #[test]
    fn defaults() {
        let limits = parse_config("").unwrap().settings.limits;
        assert_eq!(limits, Limits::default());
        assert_eq!(limits.uploads_per_account, 1000);
        assert_eq!(limits.uploads_per_repository, 1000);
        assert_eq!(limits.max_blob_bytes, 20 << 30);
        assert_eq!(limits.tags_per_request, 100);
    }

    #[test]
    fn keys() {
        let l = parse_config(
            "MAX_UPLOADS_PER_ACCOUNT: 5\nMAX_UPLOADS_PER_REPOSITORY: 7\nMAXIMUM_LAYER_SIZE: 100G\nMAX_TAGS_PER_REQUEST: 3\n",
        )
        .unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let limits = l.settings.limits;
        assert_eq!(limits.uploads_per_account, 5);
        assert_eq!(limits.uploads_per_repository, 7);
        assert_eq!(limits.max_blob_bytes, 100 << 30);
        assert_eq!(limits.tags_per_request, 3);
    }

    #[test]
    fn sizes() {
        let bytes = |text: &str| {
            parse_config(&format!("MAXIMUM_LAYER_SIZE: {text}"))
                .map(|l| l.settings.limits.max_blob_bytes)
        };
        assert_eq!(bytes("500M").unwrap(), 500 << 20);
        assert_eq!(bytes("\"20G\"").unwrap(), 20 << 30);
        assert_eq!(bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(bytes("\"2097152\"").unwrap(), 2 << 20);
        for bad in [
            "0",
            "1000",
            "0M",
            "G",
            "20 G",
            "20GB",
            "-1G",
            "1.5G",
            "99999999999999999999G",
            "[1]",
        ] {
            let e = bytes(bad).unwrap_err().to_string();
            assert!(e.contains("MAXIMUM_LAYER_SIZE"), "{bad}: {e}");
        }
    }

    #[test]
    fn out_of_range_counts_name_the_key() {
        for bad in [
            "MAX_UPLOADS_PER_ACCOUNT: 0",
            "MAX_UPLOADS_PER_REPOSITORY: many",
            "MAX_TAGS_PER_REQUEST: 0",
        ] {
            let e = parse_config(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split(':').next().unwrap()), "{bad}: {e}");
        }
    }
}
