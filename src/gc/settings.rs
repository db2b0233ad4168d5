//! Garbage collection settings, from Quay-style config keys.

use std::time::Duration;

/// When and how garbage collection runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSettings {
    /// `FEATURE_GARBAGE_COLLECTION`: whether the registry collects periodically (default true;
    /// `berth gc` works either way).
    pub enabled: bool,
    /// `GC_INTERVAL_SECONDS`: time between periodic runs (default one hour).
    pub interval: Duration,
    /// `GC_GRACE_SECONDS`: how long a blob or manifest that nothing references yet survives
    /// (default one hour): a client pushes an image's layers before its manifest, and an
    /// index's children before the index.
    pub grace: Duration,
    /// `GC_UPLOAD_MAX_AGE_SECONDS`: an upload session idle for longer is abandoned (default one
    /// day).
    pub upload_max_age: Duration,
    /// `DEFAULT_TAG_EXPIRATION` (Quay's key and format, e.g. `2w`): how long a deleted or moved
    /// tag can be restored and keeps its manifest alive (default two weeks).
    pub tag_expiration: Duration,
}

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            enabled: true,
            interval: Duration::from_secs(3600),
            grace: Duration::from_secs(3600),
            upload_max_age: Duration::from_secs(86_400),
            tag_expiration: Duration::from_secs(14 * 86_400),
        }
    }
}

/// Parses Quay's expiration format: a whole number followed by `s`, `m` (minutes), `h`, `d`
/// or `w`, such as `2w` or `90m`. `None` when malformed.
pub fn parse_expiration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    number.checked_mul(seconds).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quay_expiration_format() {
        assert_eq!(parse_expiration("2w"), Some(Duration::from_secs(1_209_600)));
        assert_eq!(parse_expiration("90m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_expiration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_expiration("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "w",
            "2",
            "2x",
            "-1d",
            "1.5h",
            "99999999999999999999w",
            "2 w",
        ] {
            assert_eq!(parse_expiration(bad), None, "{bad}");
        }
    }
}
