//! Where a page may send the visitor next: only a path on this site.
//!
//! A redirect target that comes from the client (`next` after signing in, a form's `back`)
//! is an open redirect waiting to happen: browsers drop tabs and newlines from URLs and treat
//! `\` like `/`, so `/\tevil.example` or `/\evil.example` become `//evil.example`, another
//! origin. A target is accepted only when it is, as written and after percent-decoding, an
//! absolute path that starts with a single `/`, with no control character, no whitespace (of
//! any script) and no backslash anywhere. Everything else is refused, never repaired.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Where a refused target sends the visitor instead.
pub const HOME: &str = "/";

/// Longest target kept; longer ones are refused.
const MAX_LEN: usize = 2048;

/// How many rounds of percent-decoding are checked (`%2525...` hides a character one round
/// deeper each time).
const DECODE_ROUNDS: usize = 3;

/// Non-ASCII characters are sent percent-encoded, so the `Location` header is plain ASCII.
const NON_ASCII: &AsciiSet = &CONTROLS.add(b' ');

/// `target` as a same-origin path fit for a `Location` header, or `None`.
pub fn local_path(target: &str) -> Option<Cow<'_, str>> {
    if target.len() > MAX_LEN || !acceptable(target) {
        return None;
    }
    let mut layer = Cow::Borrowed(target);
    for _ in 0..DECODE_ROUNDS {
        let decoded = match percent_decode_str(&layer).decode_utf8() {
            Ok(d) => d.into_owned(),
            // Bytes that are not UTF-8 once decoded are nothing a link of ours produces.
            Err(_) => return None,
        };
        if decoded == layer {
            break;
        }
        if !acceptable(&decoded) {
            return None;
        }
        layer = Cow::Owned(decoded);
    }
    if target.is_ascii() {
        Some(Cow::Borrowed(target))
    } else {
        Some(Cow::Owned(
            utf8_percent_encode(target, NON_ASCII).to_string(),
        ))
    }
}

/// [`local_path`], or [`HOME`] when `target` is absent or refused.
pub fn local_path_or_home(target: Option<&str>) -> Cow<'_, str> {
    target.and_then(local_path).unwrap_or(Cow::Borrowed(HOME))
}

fn acceptable(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && path.chars().all(|c| {
            if c.is_ascii() {
                c.is_ascii_graphic() && c != '\\'
            } else {
                // Letters and digits of any script; no invisible formatting, no spaces.
                c.is_alphanumeric()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_this_site_pass_unchanged() {
        for good in [
            "/",
            "/repository/",
            "/repository/a/b?tab=tags&filter=v1%2B2",
            "/repository/a/b/manifest/sha256:abc?layers_page=2#layers",
            "/user/alice",
        ] {
            assert_eq!(local_path(good).as_deref(), Some(good), "{good}");
        }
        assert_eq!(
            local_path("/repository/a/b?filter=é").as_deref(),
            Some("/repository/a/b?filter=%C3%A9")
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example",
            "/\u{1}",
            "/\u{7f}",
            "/a\\b",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%01",
            "/%5Cevil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "/%252F%252Fevil.example",
            "/%25252F%25252Fevil.example",
            "/\u{a0}/evil.example",
            "/\u{2028}/evil.example",
            "/\u{3000}/evil.example",
            "/\u{200b}/evil.example",
            "/\u{feff}/evil.example",
            "/\u{202e}/evil.example",
            "/%E2%80%A8/evil.example",
            "/%C2%A0/evil.example",
            "/%ff",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
        assert_eq!(local_path(&format!("/{}", "a".repeat(MAX_LEN))), None);
        assert_eq!(local_path_or_home(None), HOME);
        assert_eq!(local_path_or_home(Some("//evil")), HOME);
    }
}
