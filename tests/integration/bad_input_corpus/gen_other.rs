//! Corpus cases for authentication, the token endpoint, the management API and the dashboard.

use base64::Engine;
use jsonwebtoken::Algorithm::{ES256, HS256};
use serde_json::json;

use super::cases::{q, Case, Expect, Gen};
use super::gen_v2::good_manifest;
use super::wire::{Auth, Request};
use crate::common::{basic, password_of, repo_access, sign_token, token_claims};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `Authorization` values that must not authenticate anyone: (label, value, costs a password
/// check).
fn junk_authorizations(g: &mut Gen) -> Vec<(&'static str, Vec<u8>, bool)> {
    let (kid, pem) = g.f.signing_key.clone();
    let now = berth::auth::token::now_secs();
    let all = json!([repo_access("seed/repo", &["pull", "push", "delete"])]);
    // Each forgery differs from a token berth would accept in the one way its label says.
    let service = g.f.addr.clone();
    let claims = |sub: &str, iat: u64, lifetime: u64| {
        let mut c = token_claims(sub, iat, lifetime, &all);
        c["aud"] = json!(service);
        c
    };
    let fresh = claims("admin", now, 300);
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .expect("key")
        .serialize_pem();
    let public = rcgen::KeyPair::from_pem(&pem)
        .expect("pem")
        .public_key_pem();
    let none_header = b64url(
        json!({"alg": "none", "typ": "JWT", "kid": kid})
            .to_string()
            .as_bytes(),
    );
    let none_token = format!("{none_header}.{}.", b64url(fresh.to_string().as_bytes()));
    let mut quay = fresh.clone();
    quay["iss"] = json!("quay");
    let bearer = |t: String| format!("Bearer {t}").into_bytes();
    let secret: Vec<u8> = (0..32).map(|_| g.below(256) as u8).collect();
    let admin_ok = b64(b"admin:berth-test-password");
    vec![
        ("bare Basic", b"Basic".to_vec(), false),
        ("empty Basic", b"Basic ".to_vec(), false),
        ("not base64", b"Basic !!!not base64!!!".to_vec(), false),
        (
            "no colon",
            format!("Basic {}", b64(b"admin")).into_bytes(),
            false,
        ),
        (
            "wrong password",
            basic("admin", "wrong-password").into_bytes(),
            true,
        ),
        (
            "empty pair",
            format!("Basic {}", b64(b":")).into_bytes(),
            true,
        ),
        (
            "not UTF-8 inside",
            format!("Basic {}", b64(b"\xff\xfe:x")).into_bytes(),
            false,
        ),
        (
            "huge Basic",
            basic("admin", &"x".repeat(20_000)).into_bytes(),
            false,
        ),
        (
            "tab for space",
            format!("Basic\t{admin_ok}").into_bytes(),
            false,
        ),
        (
            "trailing junk",
            format!("Basic {admin_ok} extra").into_bytes(),
            false,
        ),
        ("raw bytes", b"Basic \xff\xfe\x80".to_vec(), false),
        ("bare Bearer", b"Bearer".to_vec(), false),
        ("empty Bearer", b"Bearer ".to_vec(), false),
        ("three dots", b"Bearer x.y.z".to_vec(), false),
        ("alg none", bearer(none_token), false),
        (
            "HS256 random key",
            bearer(sign_token(HS256, &secret, Some(&kid), &fresh)),
            false,
        ),
        (
            "HS256 with the public key",
            bearer(sign_token(HS256, public.as_bytes(), Some(&kid), &fresh)),
            false,
        ),
        (
            "another ES256 key",
            bearer(sign_token(ES256, other.as_bytes(), Some(&kid), &fresh)),
            false,
        ),
        (
            "expired",
            bearer(sign_token(
                ES256,
                pem.as_bytes(),
                Some(&kid),
                &claims("admin", now - 7200, 3600),
            )),
            false,
        ),
        (
            "wrong issuer",
            bearer(sign_token(ES256, pem.as_bytes(), Some(&kid), &quay)),
            false,
        ),
        (
            "ghost subject",
            bearer(sign_token(
                ES256,
                pem.as_bytes(),
                Some(&kid),
                &claims("ghost", now, 300),
            )),
            false,
        ),
        (
            "unknown API token",
            b"Bearer berth_0123456789abcdef0123456789abcdef".to_vec(),
            false,
        ),
        ("huge Bearer", bearer("a".repeat(17_000)), false),
        (
            "Digest",
            b"Digest username=\"admin\", realm=\"berth\", nonce=\"x\"".to_vec(),
            false,
        ),
        (
            "Negotiate",
            b"Negotiate YIIBhwYGKwYBBQUCoIIBezCCAXeg".to_vec(),
            false,
        ),
        (
            "NTLM",
            b"NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA=".to_vec(),
            false,
        ),
        (
            "unknown scheme",
            format!("Token {admin_ok}").into_bytes(),
            false,
        ),
    ]
}

/// Junk `Authorization` on /v2: 401 `UNAUTHORIZED` with a challenge, whatever the endpoint.
pub fn auth(g: &mut Gen) {
    let (blob, upload) = (g.f.blob.clone(), g.f.upload.clone());
    let manifest = serde_json::to_vec(&good_manifest()).expect("json");
    let endpoints: Vec<Request> = vec![
        Request::new("GET", "/v2/"),
        Request::new("GET", "/v2/_catalog"),
        Request::new("GET", "/v2/seed/repo/tags/list"),
        Request::new("GET", "/v2/seed/repo/manifests/v1"),
        Request::new("HEAD", format!("/v2/seed/repo/blobs/{blob}")),
        Request::new("POST", "/v2/seed/repo/blobs/uploads/"),
        Request::new("PATCH", upload.clone()).body(b"0123".to_vec()),
        Request::new("DELETE", "/v2/seed/repo/manifests/latest"),
        Request::new("PUT", "/v2/seed/repo/manifests/v1")
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone()),
    ];
    for (i, (_, value, costly)) in junk_authorizations(g).into_iter().enumerate() {
        for (j, req) in endpoints.iter().enumerate() {
            // A password check costs an argon2 verification: a few endpoints suffice.
            if costly && (i + j) % 3 != 0 {
                continue;
            }
            let req = req.clone().auth(Auth::Raw(value.clone()));
            g.push(Case::new("auth", req, Expect::Oci(401, "UNAUTHORIZED")));
        }
    }
    // A second Authorization header does not rescue a junk first one.
    let req = Request::new("DELETE", "/v2/seed/repo/manifests/latest")
        .auth(Auth::Raw(b"Basic junk".to_vec()))
        .header("Authorization", crate::common::RAW_EXTRA_HEADERS[0].1);
    g.push(Case::new("auth", req, Expect::Oci(401, "UNAUTHORIZED")));
    // No credentials on a private repository: a challenge.
    for req in &endpoints[2..] {
        let req = req.clone().auth(Auth::Anonymous);
        g.push(Case::new("auth", req, Expect::Oci(401, "UNAUTHORIZED")));
    }
    let req = Request::new("GET", "/v2/").auth(Auth::Anonymous);
    g.push(Case::new("auth", req, Expect::Oci(401, "UNAUTHORIZED")));
    // Known callers without the access they ask for: 403 `DENIED`.
    let alice = Auth::Raw(basic("alice", &password_of("alice")).into_bytes());
    let robot = Auth::Raw(basic("acme+ci", &g.f.robot_token).into_bytes());
    for req in &endpoints[2..] {
        g.push(Case::new(
            "auth",
            req.clone().auth(alice.clone()),
            Expect::Oci(403, "DENIED"),
        ));
        g.push(Case::new(
            "auth",
            req.clone().auth(robot.clone()),
            Expect::Oci(403, "DENIED"),
        ));
    }
    for req in [
        Request::new("POST", "/v2/acme/app/blobs/uploads/"),
        Request::new("DELETE", "/v2/acme/app/manifests/1.0"),
        Request::new("PUT", "/v2/acme/app/manifests/corpus")
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone()),
        Request::new("DELETE", format!("/v2/acme/app/blobs/{}", g.f.app_layer)),
        Request::new("POST", "/v2/acme/new/blobs/uploads/"),
    ] {
        g.push(Case::new(
            "auth",
            req.auth(robot.clone()),
            Expect::Oci(403, "DENIED"),
        ));
    }
    // Anonymous callers are asked to authenticate for the catalog.
    let req = Request::new("GET", "/v2/_catalog").auth(Auth::Anonymous);
    g.push(Case::new("auth", req, Expect::Oci(401, "UNAUTHORIZED")));
}

/// The token endpoint: junk credentials are refused, junk scopes are dropped.
pub fn token(g: &mut Gen) {
    for (_, value, costly) in junk_authorizations(g) {
        if costly {
            continue;
        }
        let req = Request::new("GET", "/v2/auth?service=x&scope=repository:seed/repo:pull")
            .auth(Auth::Raw(value));
        g.push(Case::new("token", req, Expect::Oci(401, "UNAUTHORIZED")));
    }
    let req = Request::new("GET", "/v2/auth?scope=repository:seed/repo:pull")
        .auth(Auth::Raw(basic("admin", "nope").into_bytes()));
    g.push(Case::new("token", req, Expect::Oci(401, "UNAUTHORIZED")));
    let scopes = [
        "repository:Bad:pull",
        "repository::pull",
        "repository:seed/repo",
        "repository:seed/repo:",
        "repository:../etc:pull",
        "repository:seed/%2e%2e/repo:pull",
        "repository:seed/repo:pull,push,delete,*,evil",
        "repository:seed//repo:pull",
        "registry:catalog:*",
        "::::",
        "x",
        "repository:seed/repo:pull repository:Bad:push",
        "repository:seed/repo%00:pull",
    ];
    for scope in scopes {
        for auth in [Auth::Admin, Auth::Anonymous] {
            let req =
                Request::new("GET", format!("/v2/auth?service=x&scope={}", q(scope))).auth(auth);
            g.push(Case::new("token", req, Expect::Token));
        }
    }
    let huge = format!("/v2/auth?scope={}", q(&"repository:a:pull ".repeat(400)));
    g.push(Case::new("token", Request::new("GET", huge), Expect::Token));
    let many: String = (0..300)
        .map(|i| format!("&scope=repository:r{i}/x:pull"))
        .collect();
    g.push(Case::new(
        "token",
        Request::new("GET", format!("/v2/auth?service=x{many}")),
        Expect::Token,
    ));
    let req = Request::new("GET", format!("/v2/auth?service={}", "%00".repeat(500)));
    g.push(Case::new("token", req, Expect::Token));
    // Forms.
    let form = |body: &[u8]| {
        Request::new("POST", "/v2/auth")
            .auth(Auth::Anonymous)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_vec())
    };
    for body in [
        &b"&&&==="[..],
        b"\xff\xfe\x00",
        b"scope=repository:Bad:pull",
        b"grant_type=refresh_token&refresh_token=x",
        b"",
    ] {
        g.push(Case::new("token", form(body), Expect::Token));
    }
    let wrong =
        b"grant_type=password&username=admin&password=wrong&scope=repository:seed/repo:pull";
    g.push(Case::new(
        "token",
        form(wrong),
        Expect::Oci(401, "UNAUTHORIZED"),
    ));
    let big = format!("scope={}", "a".repeat(17 * 1024));
    g.push(Case::new(
        "token",
        form(big.as_bytes()),
        Expect::Oci(400, "SIZE_INVALID"),
    ));
    for m in ["PUT", "DELETE", "PATCH"] {
        g.push(Case::new(
            "token",
            Request::new(m, "/v2/auth"),
            Expect::Oci(405, "UNSUPPORTED"),
        ));
    }
}

/// The management API: junk JSON, bad names, unknown things, no credentials.
pub fn manage(g: &mut Gen) {
    let json = |m: &str, path: &str, body: &[u8]| {
        Request::new(m, path.to_string())
            .header("Content-Type", "application/json")
            .body(body.to_vec())
    };
    let long = "a".repeat(300);
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        ("POST", "/api/v1/organization/".into(), b"{".to_vec(), 400),
        ("POST", "/api/v1/organization/".into(), b"[]".to_vec(), 400),
        (
            "POST",
            "/api/v1/organization/".into(),
            b"null".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            b"{\"name\":1}".to_vec(),
            400,
        ),
        ("POST", "/api/v1/organization/".into(), b"{}".to_vec(), 400),
        (
            "POST",
            "/api/v1/organization/".into(),
            b"\xff\xfe".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            br#"{"name":"Bad"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            br#"{"name":"../x"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            br#"{"name":"a/b"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            br#"{"name":""}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            br#"{"name":"a\u0000b"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            br#"{"name":"\u00e9t\u00e9"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            format!(r#"{{"name":"{long}"}}"#).into_bytes(),
            400,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            br#"{"name":"acme"}"#.to_vec(),
            409,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            br#"{"name":"admin"}"#.to_vec(),
            409,
        ),
        (
            "POST",
            "/api/v1/organization/".into(),
            vec![b' '; 70 * 1024],
            400,
        ),
        (
            "POST",
            "/api/v1/repository".into(),
            br#"{"namespace":"acme","repository":"Bad"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/repository".into(),
            br#"{"namespace":"acme"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/repository".into(),
            br#"{"namespace":"acme","repository":"../x"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/repository".into(),
            br#"{"namespace":"acme","repository":"x","visibility":"weird"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/repository".into(),
            br#"{"namespace":"nosuch","repository":"x"}"#.to_vec(),
            404,
        ),
        (
            "POST",
            "/api/v1/repository".into(),
            br#"{"namespace":"acme","repository":"app"}"#.to_vec(),
            409,
        ),
        (
            "POST",
            "/api/v1/repository".into(),
            br#"{"namespace":1,"repository":[]}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/v1/organization/acme/team/pushers".into(),
            br#"{"role":"god"}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/v1/organization/acme/team/pushers".into(),
            b"{".to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/v1/organization/nosuch/team/x".into(),
            br#"{"role":"member"}"#.to_vec(),
            404,
        ),
        (
            "PUT",
            "/api/v1/organization/acme/team/pushers/members/nobody".into(),
            vec![],
            404,
        ),
        (
            "DELETE",
            "/api/v1/organization/acme/team/pushers/members/nobody".into(),
            vec![],
            404,
        ),
        ("DELETE", "/api/v1/organization/nosuch".into(), vec![], 404),
        (
            "GET",
            "/api/v1/organization/..%2f..%2fetc".into(),
            vec![],
            404,
        ),
        (
            "PUT",
            "/api/v1/organization/acme/robots/Bad".into(),
            vec![],
            400,
        ),
        (
            "PUT",
            "/api/v1/organization/acme/robots/a+b".into(),
            vec![],
            400,
        ),
        (
            "PUT",
            format!("/api/v1/organization/acme/robots/{long}"),
            vec![],
            400,
        ),
        (
            "PUT",
            "/api/v1/repository/acme/app/permissions/user/nobody".into(),
            br#"{"role":"write"}"#.to_vec(),
            404,
        ),
        (
            "PUT",
            "/api/v1/repository/acme/app/permissions/user/alice".into(),
            br#"{"role":"god"}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/v1/repository/acme/app/permissions/user/alice".into(),
            b"[1,2".to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/v1/repository/acme/app/tag/stable".into(),
            br#"{"manifest_digest":"sha256:bad"}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/v1/repository/acme/app/tag/stable".into(),
            b"{}".to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/v1/repository/acme/app/tag/.bad".into(),
            br#"{"manifest_digest":"sha256:bad"}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/v1/repository/acme/app/tag/stable".into(),
            format!(r#"{{"manifest_digest":"{}"}}"#, g.unknown_digest()).into_bytes(),
            404,
        ),
        (
            "POST",
            "/api/v1/repository/acme/app/changevisibility".into(),
            br#"{"visibility":"sideways"}"#.to_vec(),
            400,
        ),
        (
            "DELETE",
            "/api/v1/repository/acme/app/tag/nosuch".into(),
            vec![],
            404,
        ),
        ("GET", "/api/v1/repository/Acme/App".into(), vec![], 400),
        (
            "GET",
            "/api/v1/repository/..%2f..%2fetc/passwd".into(),
            vec![],
            400,
        ),
        (
            "DELETE",
            "/api/v1/repository/nosuch/repo".into(),
            vec![],
            404,
        ),
        ("PATCH", "/api/v1/repository/acme/app".into(), vec![], 400),
        (
            "POST",
            "/api/v1/superuser/users/".into(),
            br#"{"username":"Bad!","password":"long enough pw"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/superuser/users/".into(),
            br#"{"username":"admin","password":"long enough pw"}"#.to_vec(),
            409,
        ),
        (
            "POST",
            "/api/v1/user/".into(),
            br#"{"username":"eve","password":"long enough pw"}"#.to_vec(),
            403,
        ),
        ("GET", "/api/v1/nothing".into(), vec![], 404),
        ("GET", "/api/v1/".into(), vec![], 404),
        ("GET", "/api/v1/organization/%FF".into(), vec![], 400),
        (
            "PUT",
            "/api/v1/organization/acme/team/%FF%FE".into(),
            br#"{"role":"member"}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            "/api/v1/repository/acme/app/tag/stable".into(),
            vec![b' '; 3 * 1024 * 1024],
            400,
        ),
    ];
    for (m, path, body, status) in cases {
        g.push(Case::new(
            "manage",
            json(m, &path, &body),
            Expect::Api(status),
        ));
    }
    // No credentials, or junk ones, for writes.
    for (m, path, body) in [
        (
            "POST",
            "/api/v1/organization/",
            &br#"{"name":"neworg"}"#[..],
        ),
        (
            "POST",
            "/api/v1/repository",
            br#"{"namespace":"acme","repository":"x"}"#,
        ),
        ("DELETE", "/api/v1/repository/acme/app", b""),
        ("PUT", "/api/v1/organization/acme/robots/evil", b""),
        (
            "POST",
            "/api/v1/superuser/users/",
            br#"{"username":"eve","password":"long enough pw"}"#,
        ),
    ] {
        for auth in [
            Auth::Anonymous,
            Auth::Raw(b"Bearer berth_nope".to_vec()),
            Auth::Raw(b"Basic %%%".to_vec()),
        ] {
            g.push(Case::new(
                "manage",
                json(m, path, body).auth(auth),
                Expect::Api(401),
            ));
        }
        let alice = Auth::Raw(basic("alice", &password_of("alice")).into_bytes());
        // alice may create repositories in acme (her team's role), so only the robot and
        // superuser paths are beyond her.
        if path.contains("/robots/") || path.contains("/superuser/") {
            g.push(Case::new(
                "manage",
                json(m, path, body).auth(alice),
                Expect::Api(403),
            ));
        }
    }
}

/// The dashboard: sign-in form junk, traversal in page paths, junk cookies.
pub fn ui(g: &mut Gen) {
    let form = |path: &str, body: &[u8]| {
        Request::new("POST", path.to_string())
            .auth(Auth::Anonymous)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_vec())
    };
    for body in [
        &b"username=admin&password=berth-test-password"[..],
        b"csrf=forged&username=admin&password=berth-test-password",
        b"",
        b"%%%",
        b"\xff\xfe\x00",
        b"{\"username\":\"admin\"}",
        b"username=admin&username=root&password=&password=x&csrf=",
    ] {
        g.push(Case::new("ui", form("/signin", body), Expect::Page(400)));
    }
    let req = form("/signin", b"username=admin").header("Content-Type", "text/plain");
    g.push(Case::new("ui", req, Expect::Page(400)));
    for path in ["/repository/seed/repo", "/organization/acme", "/user/admin"] {
        g.push(Case::new(
            "ui",
            form(path, b"action=delete&csrf=x"),
            Expect::Page(303),
        ));
    }
    let req = form("/signout", b"csrf=x");
    g.push(Case::new("ui", req, Expect::Redirect("/repository/")));
    for path in [
        "/repository/../../etc/passwd",
        "/repository/..%2f..%2fetc%2fpasswd",
        "/repository/seed/repo/manifest/sha256:bad",
        "/repository/seed/repo/manifest/..%2f..%2f",
        "/repository/Seed/Repo",
        "/repository/seed/repo%00",
        "/static/..%2f..%2fCargo.toml",
        "/static/%00",
        "/organization/%00",
        "/organization/Bad",
        "/organization/..",
        "/user/%2e%2e",
    ] {
        let req = Request::new("GET", path).auth(Auth::Anonymous);
        g.push(Case::new("ui", req, Expect::Page(404)));
    }
    // Paths no route matches get the application's fallback, the management API's JSON 404.
    for path in ["/static/../../Cargo.toml", "/repository", "/nothing/here"] {
        let req = Request::new("GET", path).auth(Auth::Anonymous);
        let expect = if path == "/repository" {
            Expect::Redirect("/repository/")
        } else {
            Expect::Api(404)
        };
        g.push(Case::new("ui", req, expect));
    }
    let long = format!("/user/{}", "a".repeat(3000));
    g.push(Case::new(
        "ui",
        Request::new("GET", long).auth(Auth::Anonymous),
        Expect::Page(404),
    ));
    for cookie in [
        "berth_session=junk",
        "berth_session=; berth_flash=%%%",
        &format!("berth_session={}", "z".repeat(6000)),
        "berth_flash=eyJub3QiOiJhIGZsYXNoIn0",
    ] {
        let req = Request::new("GET", "/repository/")
            .auth(Auth::Anonymous)
            .header("Cookie", cookie);
        g.push(Case::new("ui", req, Expect::Page(200)));
    }
}
