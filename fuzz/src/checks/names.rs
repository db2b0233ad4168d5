//! `names`: repository names, tags, references and digests, and the /v2 path router.
//!
//! Accepted values must round-trip (the text is kept exactly and parses again to an equal
//! value), and acceptance must agree with an independent reading of the distribution-spec
//! grammar written here as a small state machine, not as berth's run-by-run scan.

use berth::api::v2::route::{self, Endpoint};
use oci::digest::DigestError;
use oci::name::MAX_NAME_LEN;
use oci::{Digest, NameError, Reference, RepoName, Tag};

use super::input::{mode, Input};

pub fn check(data: &[u8]) {
    let text = match mode(data) {
        (None, raw) => String::from_utf8_lossy(raw).into_owned(),
        (Some(m), rest) => structured(m, Input::new(rest)),
    };
    check_text(&text);
}

/// Builds grammar-shaped text so the accepting paths are reached often.
fn structured(mode: u8, mut input: Input) -> String {
    const HEX: &str = "0123456789abcdef";
    match mode % 4 {
        // Names, tags and digests over the characters their grammars care about.
        0 => input.text(b"ab09._-/:+=AZ", 300),
        // A digest of a registered algorithm, sometimes with a wrong length or character.
        1 => {
            let alg = input.pick(&["sha256", "sha512", "sha384", "SHA256", "a+b.c", ""]);
            let len = match input.byte() % 4 {
                0 => 64,
                1 => 128,
                _ => input.below(130),
            };
            let mut alphabet = HEX.as_bytes().to_vec();
            if input.bool() {
                alphabet.extend_from_slice(b"AFg=_-:");
            }
            let hex: String = (0..len)
                .map(|_| char::from(alphabet[input.below(alphabet.len())]))
                .collect();
            format!("{alg}:{hex}")
        }
        // A /v2 path from path words, names, references and ids.
        _ => {
            let digest = format!("sha256:{}", "e3".repeat(32));
            let segments = input.below(8);
            let mut parts = Vec::new();
            for _ in 0..segments {
                let word = match input.byte() % 16 {
                    0 => "blobs".to_string(),
                    1 => "uploads".to_string(),
                    2 => "manifests".to_string(),
                    3 => "tags".to_string(),
                    4 => "list".to_string(),
                    5 => "referrers".to_string(),
                    6 => "_catalog".to_string(),
                    7 => String::new(),
                    8 => digest.clone(),
                    9 => "0b5e9d4c-7d6e-4a47-9a2e-3f6a1c2b4d5e".to_string(),
                    10 => "latest".to_string(),
                    11 => "%2e%2e".to_string(),
                    _ => input.text(b"ab0._-A:", 6),
                };
                parts.push(word);
            }
            parts.join("/")
        }
    }
}

fn check_text(s: &str) {
    repo_name(s);
    tag(s);
    digest(s);
    reference(s);
    path(s);
}

/// States of the name grammar `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/<same>)*`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NameState {
    /// At the start, or after `.`, `__` or `/`: a letter or digit must follow.
    NeedAlnum,
    /// After a letter or digit: the name may end here.
    Alnum,
    /// After one `_`: a second `_` or a letter or digit.
    Underscore,
    /// Inside a run of `-`: more `-` or a letter or digit.
    Dashes,
}

/// Whether `s` matches the repository name grammar (the length limit aside).
pub fn name_grammar(s: &str) -> bool {
    use NameState::*;
    let mut state = NeedAlnum;
    for b in s.bytes() {
        state = match (state, b) {
            (_, b'a'..=b'z' | b'0'..=b'9') => Alnum,
            (Alnum, b'.' | b'/') => NeedAlnum,
            (Alnum, b'_') => Underscore,
            (Underscore, b'_') => NeedAlnum,
            (Alnum | Dashes, b'-') => Dashes,
            _ => return false,
        };
    }
    state == Alnum
}

/// Whether `s` matches `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn tag_grammar(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = s.chars();
    chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-')
        && s.len() <= 128
}

/// What parsing `s` as a digest must give, from the image spec's grammar:
/// `algorithm ":" encoded`, `algorithm ::= component ([+._-] component)*`,
/// `component ::= [a-z0-9]+`, `encoded ::= [a-zA-Z0-9=_-]+`; sha256 and sha512 also fix the
/// encoding to 64 or 128 lowercase hex digits.
fn expected_digest(s: &str) -> Result<(), DigestError> {
    let mut parts = s.splitn(3, ':');
    let (Some(alg), Some(encoded), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(DigestError::Malformed);
    };
    let mut need_alnum = true;
    for b in alg.bytes() {
        need_alnum = match b {
            b'a'..=b'z' | b'0'..=b'9' => false,
            b'+' | b'.' | b'_' | b'-' if !need_alnum => true,
            _ => return Err(DigestError::Malformed),
        };
    }
    let encoded_ok = !encoded.is_empty()
        && encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-'));
    if need_alnum || !encoded_ok {
        return Err(DigestError::Malformed);
    }
    let lower_hex = |n: usize| {
        encoded.len() == n && encoded.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    };
    match alg {
        "sha256" if lower_hex(64) => Ok(()),
        "sha512" if lower_hex(128) => Ok(()),
        "sha256" | "sha512" => Err(DigestError::Malformed),
        other => Err(DigestError::Unsupported(other.to_string())),
    }
}

fn repo_name(s: &str) {
    let parsed = s.parse::<RepoName>();
    let expected = if s.is_empty() {
        Err(NameError::Empty)
    } else if s.len() > MAX_NAME_LEN {
        Err(NameError::TooLong)
    } else if !name_grammar(s) {
        Err(NameError::Grammar)
    } else {
        Ok(())
    };
    assert_eq!(
        parsed.as_ref().map(|_| ()),
        expected.as_ref().copied(),
        "name {s:?}"
    );
    if let Ok(name) = parsed {
        assert_eq!(name.as_str(), s);
        assert_eq!(name.to_string(), s);
        assert_eq!(name.as_str().parse::<RepoName>().as_ref(), Ok(&name));
        assert_eq!(Some(name.namespace()), s.split('/').next());
    }
}

fn tag(s: &str) {
    let parsed = s.parse::<Tag>();
    assert_eq!(parsed.is_ok(), tag_grammar(s), "tag {s:?}");
    if let Ok(tag) = parsed {
        assert_eq!(tag.as_str(), s);
        assert_eq!(tag.to_string().parse::<Tag>().as_ref(), Ok(&tag));
    }
}

fn digest(s: &str) {
    let parsed = s.parse::<Digest>();
    assert_eq!(
        parsed.as_ref().map(|_| ()),
        expected_digest(s).as_ref().copied(),
        "digest {s:?}"
    );
    if let Ok(d) = parsed {
        assert_eq!(d.to_string(), s);
        assert_eq!(format!("{}:{}", d.algorithm(), d.hex()), s);
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        assert_eq!(d.to_string().parse::<Digest>().as_ref(), Ok(&d));
        let json = serde_json::to_string(&d).expect("a digest serializes");
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(
            serde_json::from_str::<Digest>(&json).ok().as_ref(),
            Some(&d)
        );
    }
}

fn reference(s: &str) {
    match s.parse::<Reference>() {
        Ok(Reference::Tag(t)) => {
            assert!(!s.contains(':') && tag_grammar(s), "{s:?}");
            assert_eq!(t.as_str(), s);
        }
        Ok(Reference::Digest(d)) => {
            assert!(s.contains(':') && expected_digest(s).is_ok(), "{s:?}");
            assert_eq!(d.to_string(), s);
        }
        Err(_) => assert!(if s.contains(':') {
            expected_digest(s).is_err()
        } else {
            !tag_grammar(s)
        }),
    }
    if let Ok(r) = s.parse::<Reference>() {
        assert_eq!(r.to_string(), s);
    }
}

/// The router never panics, and an endpoint it yields is exactly what the path spells.
fn path(s: &str) {
    let Ok(endpoint) = route::parse(s) else {
        return;
    };
    let valid = |n: &RepoName| {
        assert!(name_grammar(n.as_str()) && n.as_str().len() <= MAX_NAME_LEN);
    };
    let spelled: Vec<String> = match &endpoint {
        Endpoint::Base => vec![String::new()],
        Endpoint::Catalog => vec!["_catalog".into()],
        Endpoint::Tags(n) => {
            valid(n);
            vec![format!("{n}/tags/list")]
        }
        Endpoint::Manifest(n, r) => {
            valid(n);
            vec![format!("{n}/manifests/{r}")]
        }
        Endpoint::ManifestBadTag(n) => {
            valid(n);
            let rest = s
                .strip_prefix(&format!("{n}/manifests/"))
                .expect("a bad tag follows the name");
            assert!(!rest.contains(':') && !tag_grammar(rest), "{s:?}");
            vec![s.to_string()]
        }
        Endpoint::Blob(n, d) => {
            valid(n);
            vec![format!("{n}/blobs/{d}")]
        }
        Endpoint::UploadStart(n) => {
            valid(n);
            vec![format!("{n}/blobs/uploads/"), format!("{n}/blobs/uploads")]
        }
        Endpoint::Upload(n, id) => {
            valid(n);
            assert_eq!(
                berth::storage::UploadId::parse(id.as_str()).as_ref(),
                Some(id)
            );
            vec![format!("{n}/blobs/uploads/{id}")]
        }
        Endpoint::Referrers(n, d) => {
            valid(n);
            vec![format!("{n}/referrers/{d}")]
        }
    };
    assert!(spelled.iter().any(|p| p == s), "{s:?} gave {endpoint:?}");
    assert_eq!(route::parse(s).ok().as_ref(), Some(&endpoint));
}
