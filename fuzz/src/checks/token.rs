//! `token`: registry token verification against a real issuer key, `Authorization` header
//! and Basic credential parsing, and token endpoint `scope` parsing.
//!
//! No input other than a genuinely issued token verifies: not arbitrary text, not a genuine
//! token with any byte changed, not segments spliced from tokens of other keys (one of them
//! claiming the genuine key's id).

use std::sync::OnceLock;

use base64::Engine;
use berth::auth::scope::{AccessEntry, Actions, Scope};
use berth::auth::token::{generate_signing_key, TokenKeys};
use berth::auth::{decode_basic, parse_authorization, Authorization, MAX_AUTHORIZATION_LEN};
use oci::RepoName;

use super::input::{mode, Input};

/// The service the fixture's tokens are issued for and verified against.
const SERVICE: &str = "berth";

struct Fixture {
    keys: TokenKeys,
    /// Tokens of the genuine key; every one verifies.
    genuine: Vec<String>,
    /// Tokens no verifier of `keys` may accept: from an unknown key, from another key that
    /// claims the genuine key's id, and from the genuine key for another service.
    foreign: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let genuine_key = generate_signing_key().expect("key generation");
        let (other_kid, other_pem) = generate_signing_key().expect("key generation");
        let keys =
            TokenKeys::from_stored(std::slice::from_ref(&genuine_key)).expect("genuine keys");
        let unknown = TokenKeys::from_stored(&[(other_kid, other_pem.clone())]).expect("keys");
        let impostor = TokenKeys::from_stored(&[(genuine_key.0, other_pem)]).expect("keys");
        let access = vec![AccessEntry {
            kind: "repository".into(),
            name: "library/ubuntu".into(),
            actions: vec!["pull".into(), "push".into()],
        }];
        // Long-lived, so the committed seeds keep verifying whenever the tests run.
        let lifetime = 20 * 365 * 24 * 3600;
        let issue = |k: &TokenKeys, sub: &str| {
            let subject = (!sub.is_empty()).then_some((sub, "mark"));
            k.issue(subject, SERVICE, access.clone(), lifetime).0
        };
        let elsewhere = keys
            .issue(
                Some(("alice", "mark")),
                "elsewhere",
                access.clone(),
                lifetime,
            )
            .0;
        let f = Fixture {
            genuine: vec![issue(&keys, "alice"), issue(&keys, "")],
            foreign: vec![
                issue(&unknown, "alice"),
                issue(&impostor, "alice"),
                elsewhere,
            ],
            keys,
        };
        for (token, sub) in f.genuine.iter().zip(["alice", ""]) {
            let claims = f
                .keys
                .verify(token, SERVICE)
                .expect("a genuine token verifies");
            assert_eq!(claims.iss, berth::auth::token::ISSUER);
            assert_eq!(claims.sub, sub);
            assert_eq!(claims.access, access);
        }
        for token in &f.foreign {
            assert!(
                f.keys.verify(token, SERVICE).is_err(),
                "a foreign token is refused"
            );
        }
        f
    })
}

pub fn check(data: &[u8]) {
    let f = fixture();
    match mode(data) {
        (None, raw) => text(&String::from_utf8_lossy(raw)),
        (Some(m), rest) => {
            let mut input = Input::new(rest);
            match m % 4 {
                0 => mutated(f, &mut input),
                1 => spliced(f, &mut input),
                2 => basic(&mut input),
                _ => scope(&mut input),
            }
        }
    }
}

/// A token must be refused unless it is exactly a genuine one.
fn verify_only_genuine(f: &Fixture, token: &str) {
    let genuine = f.genuine.iter().any(|g| g == token);
    assert_eq!(f.keys.verify(token, SERVICE).is_ok(), genuine, "{token:?}");
    if genuine {
        return;
    }
    // Nor may it pass as a bearer credential in any spelling of the header.
    for header in [format!("Bearer {token}"), format!("bearer  {token} ")] {
        if let Some(Authorization::RegistryToken(t)) = parse_authorization(&header) {
            assert!(f.keys.verify(t, SERVICE).is_err() || f.genuine.iter().any(|g| g == t));
        }
    }
}

/// Arbitrary text as a token, a header, a Basic payload and scopes.
fn text(s: &str) {
    let f = fixture();
    verify_only_genuine(f, s);
    header(s);
    if let Some((user, password)) = decode_basic(s) {
        assert!(!user.contains(':'));
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        assert_eq!(decode_basic(&encoded), Some((user, password)));
    }
    scopes(s);
}

/// A genuine token with bytes flipped, cut or added.
fn mutated(f: &Fixture, input: &mut Input) {
    let original = &f.genuine[input.below(f.genuine.len())];
    let mut bytes = original.as_bytes().to_vec();
    for _ in 0..1 + input.below(4) {
        let at = usize::from(input.byte()) << 8 | usize::from(input.byte());
        match input.byte() % 4 {
            0 => {
                let i = at % bytes.len().max(1);
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= input.byte().max(1);
                }
            }
            1 => bytes.truncate(at % (bytes.len() + 1)),
            2 => {
                let i = at % (bytes.len() + 1);
                let b = input.byte();
                bytes.insert(i, b);
            }
            _ => {
                let i = at % (bytes.len() + 1);
                bytes.splice(i..i, input.bytes(8).iter().copied());
            }
        }
    }
    if let Ok(s) = String::from_utf8(bytes) {
        verify_only_genuine(f, &s);
    }
}

/// Header, claims and signature segments taken from different tokens.
fn spliced(f: &Fixture, input: &mut Input) {
    let all: Vec<&String> = f.genuine.iter().chain(&f.foreign).collect();
    let parts: Vec<String> = (0..3)
        .map(|i| {
            let from = all[input.below(all.len())];
            from.split('.').nth(i).unwrap_or_default().to_string()
        })
        .collect();
    verify_only_genuine(f, &parts.join("."));
}

/// Properties of `parse_authorization` on any value.
fn header(value: &str) {
    let Some(parsed) = parse_authorization(value) else {
        return;
    };
    assert!(value.len() <= MAX_AUTHORIZATION_LEN);
    let (scheme, rest) = value.split_once(' ').expect("a scheme and credentials");
    match parsed {
        Authorization::Basic { user, password } => {
            assert!(scheme.eq_ignore_ascii_case("basic"));
            assert_eq!(decode_basic(rest), Some((user, password)));
        }
        Authorization::ApiToken(t) => {
            assert!(scheme.eq_ignore_ascii_case("bearer"));
            assert!(t.starts_with(berth::auth::API_TOKEN_PREFIX) && t == rest.trim());
        }
        Authorization::RegistryToken(t) => {
            assert!(scheme.eq_ignore_ascii_case("bearer"));
            assert!(!t.starts_with(berth::auth::API_TOKEN_PREFIX) && t == rest.trim());
        }
    }
}

/// Basic credentials written from a user and password give them back exactly.
fn basic(input: &mut Input) {
    let user = input.text(b"ab:\xc3 _-@", 12);
    let password = String::from_utf8_lossy(input.bytes(40)).into_owned();
    let scheme = input.pick(&["Basic", "basic", "BASIC", "bAsIc"]);
    let pad = input.pick(&["", " ", "  "]);
    let payload = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let value = format!("{scheme} {pad}{payload}{pad}");
    // RFC 7617: the user id ends at the first colon; the password may contain more.
    let expected = match user.split_once(':') {
        Some((user, tail)) => (user.to_string(), format!("{tail}:{password}")),
        None => (user, password),
    };
    assert_eq!(
        parse_authorization(&value),
        Some(Authorization::Basic {
            user: expected.0,
            password: expected.1
        }),
        "{value:?}"
    );
    header(&value);
}

/// A scope written from parts parses to what the parts say.
fn scope(input: &mut Input) {
    let kind = input.pick(&[
        "repository",
        "repository(plugin)",
        "registry",
        "regist",
        "x",
    ]);
    let name = match input.byte() % 4 {
        0 => input
            .pick(&["catalog", "library/ubuntu", "a", "A", "../x", "a:b"])
            .to_string(),
        _ => input.text(b"ab0./_-:A", 20),
    };
    let words = ["pull", "push", "delete", "*", "bogus", "", " pull"];
    let list: Vec<&str> = (0..input.below(4)).map(|_| input.pick(&words)).collect();
    let actions = list.join(",");
    let s = format!("{kind}:{name}:{actions}");
    let expected = match kind {
        "repository" | "repository(plugin)" => name.parse::<RepoName>().ok().map(|name| {
            let mut a = Actions::NONE;
            for w in &list {
                match w.trim() {
                    "pull" => a.pull = true,
                    "push" => a.push = true,
                    "delete" => a.delete = true,
                    "*" => a = Actions::ALL,
                    _ => {}
                }
            }
            Scope::Repository { name, actions: a }
        }),
        "registry" if name == "catalog" => Some(Scope::Catalog),
        _ => None,
    };
    assert_eq!(Scope::parse(&s), expected, "{s:?}");
    scopes(&s);
}

/// Properties of scope parsing on any text.
fn scopes(s: &str) {
    match Scope::parse(s) {
        Some(Scope::Repository { name, actions }) => {
            assert!(s.len() <= 512);
            let (_, tail) = s.rsplit_once(':').expect("a scope has actions");
            assert_eq!(Actions::parse(tail), actions);
            assert!(s.contains(&format!(":{name}:")));
            let canonical = format!("repository:{name}:{}", actions.names().join(","));
            assert_eq!(
                Scope::parse(&canonical),
                Some(Scope::Repository { name, actions })
            );
        }
        Some(Scope::Catalog) => assert!(s.contains(":catalog:")),
        None => {}
    }
    let all = Scope::parse_all(std::iter::once(s));
    let pieces: Vec<&str> = s.split(' ').filter(|p| !p.is_empty()).collect();
    let expected: Vec<Scope> = pieces.iter().filter_map(|p| Scope::parse(p)).collect();
    assert_eq!(all, expected);
}
