//! The `Range` header of a blob `GET`: pure parsing, so its rules are unit-tested and fuzzed.

use crate::storage::ByteRange;

/// A `Range` request against a blob of known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable `Range` header: send the whole blob with 200.
    Whole,
    /// One satisfiable range, inclusive and within the blob: send it with 206.
    Part(ByteRange),
    /// A `bytes=` range that selects nothing of the blob: answer 416.
    Unsatisfiable,
}

impl RangeRequest {
    /// Reads a single `bytes=` range of a blob of `size` bytes. Syntax berth does not serve
    /// (several ranges, other units) is ignored and the whole blob is sent, as RFC 9110 allows.
    /// A [`RangeRequest::Part`] always has `start <= end < size`.
    pub fn parse(value: Option<&str>, size: u64) -> RangeRequest {
        let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
            return RangeRequest::Whole;
        };
        if spec.contains(',') {
            return RangeRequest::Whole;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return RangeRequest::Whole;
        };
        let num = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        match (first, last) {
            ("", suffix) => match num(suffix) {
                Some(0) => RangeRequest::Unsatisfiable,
                Some(n) if size > 0 => RangeRequest::Part(ByteRange {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }),
                Some(_) => RangeRequest::Unsatisfiable,
                None => RangeRequest::Whole,
            },
            (start, end) => match (
                num(start),
                if end.is_empty() {
                    Some(None)
                } else {
                    num(end).map(Some)
                },
            ) {
                (Some(s), Some(e)) => {
                    let e = e.unwrap_or(u64::MAX).min(size.saturating_sub(1));
                    if s >= size || e < s {
                        RangeRequest::Unsatisfiable
                    } else {
                        RangeRequest::Part(ByteRange { start: s, end: e })
                    }
                }
                _ => RangeRequest::Whole,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(v: &str, size: u64) -> Option<(u64, u64)> {
        match RangeRequest::parse(Some(v), size) {
            RangeRequest::Part(r) => Some((r.start, r.end)),
            _ => None,
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(part("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(part("bytes=90-", 100), Some((90, 99)));
        assert_eq!(part("bytes=-10", 100), Some((90, 99)));
        assert_eq!(part("bytes=50-1000", 100), Some((50, 99)));
        assert!(matches!(
            RangeRequest::parse(Some("bytes=100-"), 100),
            RangeRequest::Unsatisfiable
        ));
        assert!(matches!(
            RangeRequest::parse(Some("bytes=5-2"), 100),
            RangeRequest::Unsatisfiable
        ));
        assert!(matches!(
            RangeRequest::parse(Some("bytes=0-1,3-4"), 100),
            RangeRequest::Whole
        ));
        assert!(matches!(
            RangeRequest::parse(Some("items=0-1"), 100),
            RangeRequest::Whole
        ));
        assert!(matches!(
            RangeRequest::parse(Some("bytes=x-1"), 100),
            RangeRequest::Whole
        ));
        assert!(matches!(
            RangeRequest::parse(None, 100),
            RangeRequest::Whole
        ));
    }
}
