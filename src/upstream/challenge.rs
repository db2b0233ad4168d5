//! `WWW-Authenticate` challenges (RFC 7235) as registries send them: `Basic realm="..."` or
//! `Bearer realm="...",service="...",scope="..."`, possibly several in one header value.

/// One challenge: its scheme, lowercased, and its parameters (names lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The longest header value parsed; longer values yield no challenges.
const MAX_HEADER_LEN: usize = 8192;

/// Parses every challenge in `value`. Malformed parts end the parse: what was read before them
/// is returned, so a garbled header yields no challenge rather than a wrong one.
pub fn parse(value: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    if value.len() > MAX_HEADER_LEN {
        return out;
    }
    let b = value.as_bytes();
    let mut i = 0;
    loop {
        skip(b, &mut i, |c| c == b' ' || c == b'\t' || c == b',');
        if i >= b.len() {
            return out;
        }
        let scheme = token(b, &mut i);
        if scheme.is_empty() {
            return out;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        // Parameters: `name = value` pairs separated by commas, until a token that is not
        // followed by `=` (the next challenge's scheme) or the end.
        loop {
            skip(b, &mut i, |c| c == b' ' || c == b'\t' || c == b',');
            let start = i;
            let name = token(b, &mut i);
            if name.is_empty() {
                if i < b.len() {
                    // Not a token (token68 values and stray bytes are not supported).
                    out.push(challenge);
                    return out;
                }
                break;
            }
            skip(b, &mut i, |c| c == b' ' || c == b'\t');
            if b.get(i) != Some(&b'=') {
                i = start;
                break;
            }
            i += 1;
            skip(b, &mut i, |c| c == b' ' || c == b'\t');
            let value = if b.get(i) == Some(&b'"') {
                i += 1;
                let mut v = Vec::new();
                loop {
                    match b.get(i) {
                        None => {
                            out.push(challenge);
                            return out;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if i + 1 < b.len() => {
                            v.push(b[i + 1]);
                            i += 2;
                        }
                        Some(&c) => {
                            v.push(c);
                            i += 1;
                        }
                    }
                }
                String::from_utf8_lossy(&v).into_owned()
            } else {
                token(b, &mut i).to_string()
            };
            challenge.params.push((name.to_ascii_lowercase(), value));
        }
        out.push(challenge);
    }
}

/// Advances over bytes matching `pred`.
fn skip(b: &[u8], i: &mut usize, pred: impl Fn(u8) -> bool) {
    while *i < b.len() && pred(b[*i]) {
        *i += 1;
    }
}

/// Reads an RFC 7230 token (possibly empty).
fn token<'a>(b: &'a [u8], i: &mut usize) -> &'a str {
    let start = *i;
    while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b[*i])) {
        *i += 1;
    }
    // Only ASCII bytes were taken, so this is always valid UTF-8.
    std::str::from_utf8(&b[start..*i]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_scope() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("SERVICE"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:library/nginx:pull,push")
        );
    }

    #[test]
    fn basic_unquoted_escaped_and_several() {
        let c = parse(r#"Basic realm=clientlab"#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("clientlab"));
        let c = parse(
            r#"Basic realm="a \"quoted\" realm", Bearer realm="https://h/t" , service = "s""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some(r#"a "quoted" realm"#));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://h/t"));
        assert_eq!(c[1].param("service"), Some("s"));
        let c = parse("Negotiate");
        assert_eq!(c.len(), 1);
        assert!(c[0].params.is_empty());
    }

    #[test]
    fn malformed_values_do_not_invent_parameters() {
        assert!(parse("").is_empty());
        assert!(parse("   ,, ").is_empty());
        let c = parse(r#"Bearer realm="unterminated"#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("realm"), None);
        let c = parse("Bearer \u{e9}t\u{e9}=1");
        assert_eq!(c[0].param("realm"), None);
        assert!(parse(&"a".repeat(MAX_HEADER_LEN + 1)).is_empty());
    }
}
