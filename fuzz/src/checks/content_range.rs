//! `content_range`: the upload `Content-Range` parser ([`ChunkRange::parse`]) and the blob
//! `GET` `Range` parser ([`RangeRequest::parse`]).
//!
//! Raw text must never panic, and what is accepted must make sense: a chunk range has
//! `start <= end` and a length that fits in a `u64`; a blob range lies inside the blob. Numbers
//! built from the input check both parsers against a model of the accepted forms.

use berth::api::v2::range::RangeRequest;
use berth::registry::ChunkRange;
use berth::storage::ByteRange;

use super::input::{mode, Input};

pub fn check(data: &[u8]) {
    match mode(data) {
        (None, raw) => raw_text(&String::from_utf8_lossy(raw), raw),
        (Some(_), rest) => numbers(Input::new(rest)),
    }
}

/// Blob sizes every raw input is tried against, plus one read from the input.
const SIZES: [u64; 6] = [0, 1, 2, 100, u64::MAX - 1, u64::MAX];

fn raw_text(s: &str, raw: &[u8]) {
    if let Some(r) = ChunkRange::parse(s) {
        chunk_invariants(r);
        assert!(s.contains(&r.start.to_string()) && s.contains(&r.end.to_string()));
    }
    let extra = u64::from_le_bytes(std::array::from_fn(|i| raw.get(i).copied().unwrap_or(0)));
    for size in SIZES.into_iter().chain([extra]) {
        let parsed = RangeRequest::parse(Some(s), size);
        blob_invariants(parsed, size);
        if parsed != RangeRequest::Whole {
            assert!(s.trim_start().starts_with("bytes="), "{s:?}");
        }
    }
    assert_eq!(RangeRequest::parse(None, 7), RangeRequest::Whole);
}

fn chunk_invariants(r: ChunkRange) {
    assert!(r.start <= r.end, "{r:?}");
    assert_eq!(
        u128::from(r.length()),
        u128::from(r.end) - u128::from(r.start) + 1
    );
    assert_eq!(
        ChunkRange::parse(&format!("{}-{}", r.start, r.end)),
        Some(r)
    );
}

fn blob_invariants(parsed: RangeRequest, size: u64) {
    if let RangeRequest::Part(ByteRange { start, end }) = parsed {
        assert!(start <= end && end < size, "{start}-{end} of {size}");
        // The handler's Content-Length: never more than the blob.
        assert!(end - start < size);
    }
}

/// Ranges written from numbers, against what each form must give.
fn numbers(mut input: Input) {
    let size = input.edgy_u64(100);
    let a = input.edgy_u64(size);
    let b = input.edgy_u64(size);
    let total = input.edgy_u64(size);

    // Upload chunks: accepted exactly when a <= b and the length fits.
    let chunk = (a <= b && !(a == 0 && b == u64::MAX)).then_some(ChunkRange { start: a, end: b });
    for form in [
        format!("{a}-{b}"),
        format!("bytes={a}-{b}"),
        format!("bytes {a}-{b}/{total}"),
        format!("bytes {a}-{b}/*"),
        format!(" {a}-{b} "),
    ] {
        assert_eq!(ChunkRange::parse(&form), chunk, "{form:?}");
    }
    for bad in [format!("{a}-"), format!("-{b}"), format!("{a}-{b}-{total}")] {
        assert_eq!(ChunkRange::parse(&bad), None, "{bad:?}");
    }

    // Blob ranges: first-last, first- and the suffix form -n.
    let part = |start: u64, end: u64| RangeRequest::Part(ByteRange { start, end });
    let last = size.checked_sub(1);
    let first_last = match last {
        Some(last) if a <= last && a <= b => part(a, b.min(last)),
        _ => RangeRequest::Unsatisfiable,
    };
    let first_open = match last {
        Some(last) if a <= last => part(a, last),
        _ => RangeRequest::Unsatisfiable,
    };
    let suffix = match last {
        Some(last) if b > 0 => part(size - b.min(size), last),
        _ => RangeRequest::Unsatisfiable,
    };
    for (header, expected) in [
        (format!("bytes={a}-{b}"), first_last),
        (format!(" bytes= {a}-{b} "), first_last),
        (format!("bytes={a}-"), first_open),
        (format!("bytes=-{b}"), suffix),
        (format!("bytes={a}-{b},{a}-{b}"), RangeRequest::Whole),
        (format!("items={a}-{b}"), RangeRequest::Whole),
        (format!("bytes={a}"), RangeRequest::Whole),
        (format!("bytes=+{a}-{b}"), RangeRequest::Whole),
    ] {
        let parsed = RangeRequest::parse(Some(&header), size);
        assert_eq!(parsed, expected, "{header:?} of {size}");
        blob_invariants(parsed, size);
    }
}
