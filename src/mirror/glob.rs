//! Quay's `tag_glob_csv` rule: a tag is mirrored when it matches any of the rule's globs, with
//! Python's `fnmatch` semantics (case-sensitive, as on POSIX): `*` any run of characters, `?`
//! one character, `[abc]` and `[a-z]` one of a set, `[!abc]` one not in it; a `[` without a
//! closing `]` is itself.

/// Whether `tag` matches any of `globs`.
pub fn matches_any(globs: &[String], tag: &str) -> bool {
    globs.iter().any(|g| matches(g, tag))
}

/// Whether `tag` matches the glob `pattern`.
pub fn matches(pattern: &str, tag: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = tag.chars().collect();
    // Iterative matching with one backtrack point for the last `*`: linear in practice, and
    // never exponential whatever the pattern.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class(&p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The set `[...]` starting at `p[start]`: whether `c` is in it and the index after it, or
/// `None` when it has no closing `]` (then `[` is literal).
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = i < p.len() && p[i] == '!';
    if negate {
        i += 1;
    }
    let first = i;
    let mut found = false;
    // A `]` right after `[` or `[!` is a member, as in fnmatch.
    while i < p.len() && (p[i] != ']' || i == first) {
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                found = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                found = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some((found != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_semantics() {
        assert!(matches("1.*", "1.0"));
        assert!(matches("1.*", "1."));
        assert!(!matches("1.*", "10.0"));
        assert!(!matches("1.*", "v1.0"));
        assert!(matches("latest", "latest"));
        assert!(!matches("latest", "Latest"), "case-sensitive as on POSIX");
        assert!(!matches("latest", "latest2"));
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("v?.?", "v1.2"));
        assert!(!matches("v?.?", "v1.23"));
        assert!(matches("*-alpine", "3.19-alpine"));
        assert!(matches("*a*b*c", "xxaxxbxxc"));
        assert!(!matches("*a*b*c", "xxaxxbxx"));
        assert!(matches("[0-9].x", "7.x"));
        assert!(!matches("[0-9].x", "a.x"));
        assert!(matches("[!0-9]*", "latest"));
        assert!(!matches("[!0-9]*", "1.0"));
        assert!(matches("[]]", "]"));
        assert!(matches("a[", "a["), "an unclosed [ is literal");
        assert!(!matches("a[", "ab"));
        assert!(matches("v[12]", "v2"));
        assert!(!matches("v[12]", "v3"));
        assert!(!matches("", "a"));
        assert!(matches("", ""));
        // No exponential blow-up.
        let tag = "a".repeat(128);
        assert!(!matches("*a*a*a*a*a*a*a*a*a*b", &tag));
    }

    #[test]
    fn any_of_the_rule() {
        let rule = vec!["1.*".to_string(), "latest".to_string()];
        assert!(matches_any(&rule, "1.2"));
        assert!(matches_any(&rule, "latest"));
        assert!(!matches_any(&rule, "2.0"));
        assert!(!matches_any(&[], "latest"));
    }
}
