//! Corpus cases for the distribution API: names, digests, references, listings, manifests,
//! blobs and ranges, uploads, referrers, methods and paths.

use rand::Rng;
use serde_json::{json, Value};

use super::cases::{q, Case, Expect, Gen, Setup};
use super::wire::Request;
use crate::common::sha256;

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;

/// A manifest `seed/repo` could store (its own config and layer): only the request's other
/// faults make it refused.
pub fn good_manifest() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": IMAGE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(CONFIG), "size": CONFIG.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(b"seed layer"), "size": 10}],
    })
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

/// Names that break the distribution spec's grammar in every way we know of.
const BAD_NAMES: &[&str] = &[
    "Seed/repo",
    "seed/Repo",
    "SEED",
    "..",
    ".",
    "seed/../repo",
    "seed/./repo",
    "../seed/repo",
    "seed/..",
    "%2e%2e",
    "%2E%2e/seed",
    "seed/%2e%2e/repo",
    "seed%2frepo",
    "seed%2Frepo",
    "seed%5crepo",
    "seed%00repo",
    "seed/repo%00",
    "%00",
    "seed%C3%A9",
    "%E2%80%AEseed",
    "%EF%BC%8E%EF%BC%8E",
    "seed%20repo",
    "seed%09repo",
    "seed%0d%0arepo",
    "/seed/repo",
    "seed//repo",
    "seed/repo/",
    "-seed",
    "seed-",
    "_seed",
    "seed_-repo",
    "seed___repo",
    "seed..repo",
    "seed:repo",
    "seed@repo",
    "seed+repo",
    "seed;repo",
    "seed~repo",
    "seed!repo",
    "seed%25repo",
];

/// A random name that is invalid by construction: a valid base with a mutation no valid name
/// can carry (an uppercase letter, a `%`, a punctuation mark, a broken separator, or over 255
/// characters).
fn random_bad_name(g: &mut Gen) -> String {
    let base = g
        .pick(&["seed/repo", "acme/app", "a", "x/y/z", "library/ubuntu"])
        .to_string();
    let mut name = base.clone();
    let at = g.below(name.len() + 1);
    match g.below(5) {
        0 => {
            let letters: Vec<usize> = name
                .char_indices()
                .filter(|(_, c)| c.is_ascii_lowercase())
                .map(|(i, _)| i)
                .collect();
            let i = *g.pick(&letters);
            let upper = name[i..i + 1].to_ascii_uppercase();
            name.replace_range(i..i + 1, &upper);
        }
        1 => {
            let byte: u8 = g.rng.gen_range(0..=255);
            name.insert_str(at, &format!("%{byte:02X}"));
        }
        2 => {
            let mark = g.pick(&[
                "!", "$", "&", "'", "(", ")", "*", "+", ",", ";", "=", "@", "~", ":",
            ]);
            name.insert_str(at, mark);
        }
        3 => {
            let sep = g.pick(&["..", "___", "//", "/.", "-/", "/-", "._", ".-", "_/", "/_"]);
            name.insert_str(at, sep);
        }
        _ => {
            let extra = 256 - name.len() + g.below(200);
            let filler: String = (0..extra)
                .map(|i| if i % 7 == 6 { '/' } else { 'a' })
                .collect();
            name = format!("{base}/{}", filler.trim_end_matches('/'));
            if name.len() <= 255 {
                name.push_str(&"b".repeat(256 - name.len()));
            }
        }
    }
    name
}

/// Every endpoint that carries a repository name: (method, path after the name, body).
fn named_endpoints(g: &Gen) -> Vec<(&'static str, String, Vec<u8>)> {
    let (d, id) = (&g.f.blob, g.f.upload_id());
    vec![
        ("GET", "/tags/list".into(), vec![]),
        ("GET", "/manifests/v1".into(), vec![]),
        ("HEAD", "/manifests/v1".into(), vec![]),
        ("PUT", "/manifests/v1".into(), bytes(&good_manifest())),
        ("DELETE", "/manifests/v1".into(), vec![]),
        ("GET", format!("/blobs/{d}"), vec![]),
        ("HEAD", format!("/blobs/{d}"), vec![]),
        ("DELETE", format!("/blobs/{d}"), vec![]),
        ("POST", "/blobs/uploads/".into(), vec![]),
        (
            "POST",
            format!("/blobs/uploads/?digest={d}"),
            b"seed layer".to_vec(),
        ),
        (
            "POST",
            format!("/blobs/uploads/?mount={d}&from=seed/repo"),
            vec![],
        ),
        ("GET", format!("/blobs/uploads/{id}"), vec![]),
        ("PATCH", format!("/blobs/uploads/{id}"), b"abc".to_vec()),
        ("PUT", format!("/blobs/uploads/{id}?digest={d}"), vec![]),
        ("DELETE", format!("/blobs/uploads/{id}"), vec![]),
        ("GET", format!("/referrers/{}", g.f.manifest), vec![]),
    ]
}

/// Invalid repository names on every named endpoint: 400 `NAME_INVALID`.
pub fn names(g: &mut Gen) {
    let mut names: Vec<String> = BAD_NAMES.iter().map(|s| s.to_string()).collect();
    names.push("a".repeat(256));
    names.push("abcdefg/".repeat(32) + "abcdefg");
    for _ in 0..12 {
        names.push(random_bad_name(g));
    }
    for name in names {
        for (method, rest, body) in named_endpoints(g) {
            let ct = if rest.starts_with("/manifests") {
                IMAGE
            } else {
                "application/octet-stream"
            };
            let req = Request::new(method, format!("/v2/{name}{rest}"))
                .header("Content-Type", ct)
                .body(body);
            g.push(Case::new("names", req, Expect::Oci(400, "NAME_INVALID")));
        }
    }
}

/// Malformed digests (code `DIGEST_INVALID`) and unsupported algorithms (`UNSUPPORTED`).
fn bad_digests(g: &mut Gen) -> Vec<(String, &'static str)> {
    let hex = g.hex64();
    let mut out: Vec<(String, &'static str)> = vec![
        (format!("sha256:{}", &hex[..63]), "DIGEST_INVALID"),
        (format!("sha256:{hex}0"), "DIGEST_INVALID"),
        (
            format!("sha256:{}", hex.to_ascii_uppercase()),
            "DIGEST_INVALID",
        ),
        (format!("sha256:{}", "g".repeat(64)), "DIGEST_INVALID"),
        ("sha256:".into(), "DIGEST_INVALID"),
        (format!(":{hex}"), "DIGEST_INVALID"),
        (format!("sha256::{hex}"), "DIGEST_INVALID"),
        (format!("SHA256:{hex}"), "DIGEST_INVALID"),
        (format!("sha512:{hex}"), "DIGEST_INVALID"),
        (format!("sha256:{hex}%00"), "DIGEST_INVALID"),
        (format!("sha256:{}%2F..%2F..", &hex[..60]), "DIGEST_INVALID"),
        (format!("sha256:{}", "0".repeat(5000)), "DIGEST_INVALID"),
        (format!("-sha256:{hex}"), "DIGEST_INVALID"),
        (format!("sha256 :{hex}"), "DIGEST_INVALID"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e".into(), "UNSUPPORTED"),
        (format!("sha384:{hex}{}", &hex[..32]), "UNSUPPORTED"),
        (format!("blake3:{hex}"), "UNSUPPORTED"),
        (
            "sha256+b64:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564".into(),
            "UNSUPPORTED",
        ),
    ];
    for _ in 0..10 {
        let mut h = g.hex64();
        match g.below(4) {
            0 => h.truncate(g.below(64)),
            1 => {
                let extra = 1 + g.below(70);
                h.push_str(&"a".repeat(extra));
            }
            2 => {
                let i = g.below(64);
                let c = *g.pick(&["G", "z", "X", "-", "_", "="]);
                h.replace_range(i..i + 1, c);
            }
            _ => {
                let i = g.below(65);
                let s = *g.pick(&["%2e", "%00", "%", "+", "~", "."]);
                h.insert_str(i, s);
            }
        }
        out.push((format!("sha256:{h}"), "DIGEST_INVALID"));
    }
    // A space in a request target is not HTTP; keep it encoded.
    out.into_iter()
        .map(|(d, c)| (d.replace(' ', "%20"), c))
        .collect()
}

/// Bad digests in paths and query parameters.
pub fn digests(g: &mut Gen) {
    let (upload, manifest) = (g.f.upload.clone(), bytes(&good_manifest()));
    for (d, code) in bad_digests(g) {
        let e = || Expect::Oci(400, code);
        for m in ["GET", "HEAD", "DELETE"] {
            g.push(Case::new(
                "digests",
                Request::new(m, format!("/v2/seed/repo/blobs/{d}")),
                e(),
            ));
        }
        g.push(Case::new(
            "digests",
            Request::new("GET", format!("/v2/seed/repo/referrers/{d}")),
            e(),
        ));
        // In a query the value is decoded first: send it encoded so it arrives as written.
        let dq = q(&d.replace("%20", " "));
        for (method, target, body) in [
            (
                "POST",
                format!("/v2/seed/repo/blobs/uploads/?digest={dq}"),
                b"x".to_vec(),
            ),
            (
                "POST",
                format!("/v2/seed/repo/blobs/uploads/?mount={dq}&from=acme/app"),
                vec![],
            ),
            ("PUT", format!("{upload}?digest={dq}"), vec![]),
        ] {
            g.push(Case::new(
                "digests",
                Request::new(method, target).body(body),
                e(),
            ));
        }
        if d.contains(':') {
            for m in ["GET", "HEAD", "DELETE"] {
                let req = Request::new(m, format!("/v2/seed/repo/manifests/{d}"));
                g.push(Case::new("digests", req, e()));
            }
            let req = Request::new("PUT", format!("/v2/seed/repo/manifests/{d}"))
                .header("Content-Type", IMAGE)
                .body(manifest.clone());
            g.push(Case::new("digests", req, e()));
        }
    }
    // A missing or empty digest when closing an upload.
    for target in [
        upload.clone(),
        format!("{upload}?digest="),
        format!("{upload}?digest"),
    ] {
        let req = Request::new("PUT", target);
        g.push(Case::new(
            "digests",
            req,
            Expect::Oci(400, "DIGEST_INVALID"),
        ));
    }
}

/// Invalid tags: reads and deletes find nothing (404 `MANIFEST_UNKNOWN`), pushes are invalid.
pub fn references(g: &mut Gen) {
    let mut tags: Vec<String> = [
        "-bad",
        ".bad",
        "%20",
        "v1%00",
        "v1%2F..%2F..",
        "%E2%98%83",
        "v1!",
        "v1%0d%0aX-Evil%3A%201",
        "..",
        ".",
        "v1+build",
        "v1@x",
        "v1%25",
        "*",
        "v1,v2",
        "%2e%2e%2fetc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    tags.push("a".repeat(129));
    tags.push("v".repeat(5000));
    for _ in 0..10 {
        let mut t = g.pick(&["v1", "latest", "1.0.0", "build_7"]).to_string();
        match g.below(3) {
            0 => {
                let at = 1 + g.below(t.len());
                let s = *g.pick(&["!", "%41", "+", "@", "=", "$", "&", "'", "(", "~"]);
                t.insert_str(at, s);
            }
            1 => t.insert(0, *g.pick(&['.', '-'])),
            _ => t.push_str(&"x".repeat(129 - t.len() + g.below(50))),
        }
        tags.push(t);
    }
    let body = bytes(&good_manifest());
    for t in &tags {
        let target = format!("/v2/seed/repo/manifests/{t}");
        for m in ["GET", "HEAD", "DELETE"] {
            let req = Request::new(m, target.clone());
            g.push(Case::new(
                "references",
                req,
                Expect::Oci(404, "MANIFEST_UNKNOWN"),
            ));
        }
        let req = Request::new("PUT", target)
            .header("Content-Type", IMAGE)
            .body(body.clone());
        g.push(Case::new(
            "references",
            req,
            Expect::Oci(400, "MANIFEST_INVALID"),
        ));
        // The same tag as an extra `?tag=` of a push under a valid one.
        let target = format!("/v2/seed/repo/manifests/corpus?tag=ok&tag={}", q(t));
        let req = Request::new("PUT", target)
            .header("Content-Type", IMAGE)
            .body(body.clone());
        g.push(Case::new(
            "references",
            req,
            Expect::Oci(400, "MANIFEST_INVALID"),
        ));
    }
    // Valid references that name nothing.
    for r in ["v9", "a".repeat(128).as_str(), "_", &g.unknown_digest()] {
        for m in ["GET", "HEAD", "DELETE"] {
            let req = Request::new(m, format!("/v2/seed/repo/manifests/{r}"));
            g.push(Case::new(
                "references",
                req,
                Expect::Oci(404, "MANIFEST_UNKNOWN"),
            ));
        }
    }
    // A manifest of another repository is not readable here.
    let other = g.f.app_manifest.clone();
    for m in ["GET", "HEAD", "DELETE"] {
        let req = Request::new(m, format!("/v2/seed/repo/manifests/{other}"));
        g.push(Case::new(
            "references",
            req,
            Expect::Oci(404, "MANIFEST_UNKNOWN"),
        ));
    }
}

/// Tag lists and the catalog with bad `n` and hostile `last`.
pub fn listings(g: &mut Gen) {
    let bad_n = [
        "-1",
        "abc",
        "1e3",
        "99999999999",
        "",
        "0x10",
        "+1",
        "1.5",
        "%00",
        "4294967296",
        "%201",
        "1%00",
        "%D9%A1",
    ];
    let junk_last = [
        "%00",
        "..%2F..%2Fetc",
        "%FF%FE",
        "%E2%98%83",
        "%0d%0a",
        "zzzz",
    ];
    for base in ["/v2/seed/repo/tags/list", "/v2/_catalog"] {
        for n in bad_n {
            let req = Request::new("GET", format!("{base}?n={n}"));
            g.push(Case::new("listings", req, Expect::Oci(400, "UNSUPPORTED")));
        }
        for last in junk_last {
            let req = Request::new("GET", format!("{base}?last={last}"));
            g.push(Case::new("listings", req, Expect::Served(200)));
        }
        let long = "a".repeat(8000);
        let req = Request::new("GET", format!("{base}?n=2&last={long}&n=abc"));
        g.push(Case::new("listings", req, Expect::Served(200)));
        // `+1` is a valid number when it arrives as `+` (Rust's integer parser takes a sign).
        let req = Request::new("GET", format!("{base}?n=%2B1"));
        g.push(Case::new("listings", req, Expect::Served(200)));
    }
    for repo in ["nosuch/repo", "seed/repo2", "acme"] {
        let req = Request::new("GET", format!("/v2/{repo}/tags/list"));
        g.push(Case::new("listings", req, Expect::Oci(404, "NAME_UNKNOWN")));
    }
}

/// One mutation of a valid manifest that makes it invalid, and the code berth must answer.
fn mutate_manifest(g: &mut Gen) -> (Vec<u8>, &'static str) {
    let mut v = good_manifest();
    let wrong_types = [
        json!("2"),
        json!(-1),
        json!(2.5),
        json!(true),
        json!([]),
        json!({}),
    ];
    let code = match g.below(9) {
        0 => {
            let field = *g.pick(&["schemaVersion", "config", "layers"]);
            v.as_object_mut().expect("object").remove(field);
            "MANIFEST_INVALID"
        }
        1 => {
            let (obj, field) = descriptor_field(g, &mut v);
            obj.remove(field);
            "MANIFEST_INVALID"
        }
        2 => {
            let (obj, field) = descriptor_field(g, &mut v);
            let wrong = match field {
                "size" => g
                    .pick(&[
                        json!("10"),
                        json!(-10),
                        json!(1.5),
                        json!(null),
                        json!(1e30),
                    ])
                    .clone(),
                _ => g
                    .pick(&[
                        json!(7),
                        json!(null),
                        json!([]),
                        json!({}),
                        json!(false),
                        json!(""),
                    ])
                    .clone(),
            };
            obj.insert(field.into(), wrong);
            "MANIFEST_INVALID"
        }
        3 => {
            let field = *g.pick(&[
                "schemaVersion",
                "config",
                "layers",
                "mediaType",
                "annotations",
                "subject",
                "artifactType",
            ]);
            let mut wrong = g.pick(&wrong_types).clone();
            if field == "schemaVersion" && wrong == json!(2.5) {
                wrong = json!(3);
            }
            if field == "layers" && wrong == json!([]) {
                wrong = json!("layers");
            }
            if field == "annotations" && wrong == json!({}) {
                wrong = json!({"a": 1});
            }
            if field == "artifactType" && wrong.is_string() {
                wrong = json!(5);
            }
            v[field] = wrong;
            "MANIFEST_INVALID"
        }
        4 => {
            let (obj, _) = descriptor_field(g, &mut v);
            let bad = format!("sha256:{}", "Z".repeat(64));
            obj.insert("digest".into(), json!(bad));
            "MANIFEST_INVALID"
        }
        5 => {
            let unknown = g.unknown_digest();
            let (obj, _) = descriptor_field(g, &mut v);
            obj.insert("digest".into(), json!(unknown));
            "MANIFEST_BLOB_UNKNOWN"
        }
        6 => {
            let (obj, _) = descriptor_field(g, &mut v);
            let size = obj["size"].as_u64().expect("size") + 1 + g.below(1000) as u64;
            obj.insert("size".into(), json!(size));
            "MANIFEST_INVALID"
        }
        7 => {
            let extra = *g.pick(&["manifests", "fsLayers"]);
            v[extra] = json!([]);
            "MANIFEST_INVALID"
        }
        _ => {
            // Cut the text anywhere before its end: never JSON any more.
            let text = bytes(&v);
            let cut = 1 + g.below(text.len() - 1);
            return (text[..cut].to_vec(), "MANIFEST_INVALID");
        }
    };
    (bytes(&v), code)
}

fn descriptor_field<'v>(
    g: &mut Gen,
    v: &'v mut Value,
) -> (&'v mut serde_json::Map<String, Value>, &'static str) {
    let field = *g.pick(&["mediaType", "digest", "size"]);
    let d = if g.below(2) == 0 {
        &mut v["config"]
    } else {
        &mut v["layers"][0]
    };
    (d.as_object_mut().expect("descriptor"), field)
}

/// Manifest pushes with bad JSON, wrong content types, missing blobs and wrong digests.
pub fn manifests(g: &mut Gen) {
    let target = "/v2/seed/repo/manifests/corpus";
    let put = |body: Vec<u8>, ct: &str| {
        Request::new("PUT", target)
            .header("Content-Type", ct)
            .body(body)
    };
    let good = bytes(&good_manifest());
    let fixed: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\"manifest\"".to_vec(),
        b"{}".to_vec(),
        b"123".to_vec(),
        br#"{"schemaVersion":2}"#.to_vec(),
        br#"{"schemaVersion":1,"fsLayers":[]}"#.to_vec(),
        br#"{"schemaVersion":2,"schemaVersion":2,"config":{},"layers":[]}"#.to_vec(),
        b"{\"schemaVersion\":2,\"mediaType\":\"\xff\xfe\"}".to_vec(),
        [b"\xef\xbb\xbf".as_slice(), &good].concat(),
        [good.as_slice(), b"x"].concat(),
        [good.as_slice(), b"\0"].concat(),
        "[".repeat(100_000).into_bytes(),
        format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200)).into_bytes(),
        b"\0\0\0\0".to_vec(),
        vec![0xff; 64],
    ];
    for body in fixed {
        g.push(Case::new(
            "manifest bodies",
            put(body, IMAGE),
            Expect::Oci(400, "MANIFEST_INVALID"),
        ));
    }
    for _ in 0..90 {
        let (body, code) = mutate_manifest(g);
        g.push(Case::new(
            "manifest bodies",
            put(body, IMAGE),
            Expect::Oci(400, code),
        ));
    }
    // Content types that do not fit the body.
    for ct in [
        "text/plain",
        INDEX,
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/vnd.oci.image.manifest.v2+json",
        "image/png",
        "application/vnd.oci.image.config.v1+json",
    ] {
        g.push(Case::new(
            "content types",
            put(good.clone(), ct),
            Expect::Oci(400, "MANIFEST_INVALID"),
        ));
    }
    // No type anywhere: neither a Content-Type nor a mediaType field.
    let mut untyped = good_manifest();
    untyped.as_object_mut().expect("object").remove("mediaType");
    for ct in [
        None,
        Some("application/json"),
        Some("application/octet-stream"),
    ] {
        let mut req = Request::new("PUT", target).body(bytes(&untyped));
        if let Some(ct) = ct {
            req = req.header("Content-Type", ct);
        }
        g.push(Case::new(
            "content types",
            req,
            Expect::Oci(400, "MANIFEST_INVALID"),
        ));
    }
    // References that are not readable in this repository.
    let app_layer = g.f.app_layer.clone();
    let mut cross = good_manifest();
    cross["layers"][0]["digest"] = json!(app_layer);
    cross["layers"][0]["size"] = json!(13);
    g.push(Case::new(
        "manifest refs",
        put(bytes(&cross), IMAGE),
        Expect::Oci(400, "MANIFEST_BLOB_UNKNOWN"),
    ));
    // An artifact with the empty-descriptor config beside a missing layer: refused, and berth
    // must not have supplied the empty blob on the way.
    let empty_config = json!({"schemaVersion": 2, "mediaType": IMAGE, "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "text/spdx+json", "digest": g.unknown_digest(), "size": 10}]});
    for repo in ["seed/repo", "acme/fresh"] {
        let req = Request::new("PUT", format!("/v2/{repo}/manifests/corpus"))
            .header("Content-Type", IMAGE)
            .body(bytes(&empty_config));
        g.push(Case::new(
            "manifest refs",
            req,
            Expect::Oci(400, "MANIFEST_BLOB_UNKNOWN"),
        ));
    }
    for _ in 0..4 {
        let children: Vec<Value> = (0..1 + g.below(3))
            .map(|_| json!({"mediaType": IMAGE, "digest": g.unknown_digest(), "size": 100}))
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": children});
        g.push(Case::new(
            "manifest refs",
            put(bytes(&index), INDEX),
            Expect::Oci(400, "MANIFEST_BLOB_UNKNOWN"),
        ));
    }
    let app_child = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": IMAGE, "digest": g.f.app_manifest, "size": 100}]});
    g.push(Case::new(
        "manifest refs",
        put(bytes(&app_child), INDEX),
        Expect::Oci(400, "MANIFEST_BLOB_UNKNOWN"),
    ));
    let with_config = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [],
        "config": good_manifest()["config"]});
    g.push(Case::new(
        "manifest refs",
        put(bytes(&with_config), INDEX),
        Expect::Oci(400, "MANIFEST_INVALID"),
    ));
    // A digest reference the body does not hash to.
    for d in [
        g.unknown_digest(),
        g.f.app_manifest.clone(),
        format!("sha512:{}{}", g.hex64(), g.hex64()),
    ] {
        let req = Request::new("PUT", format!("/v2/seed/repo/manifests/{d}"))
            .header("Content-Type", IMAGE)
            .body(good.clone());
        g.push(Case::new(
            "manifest refs",
            req,
            Expect::Oci(400, "DIGEST_INVALID"),
        ));
    }
}

/// Blob reads of what is not there, and `Range` headers berth cannot or will not serve.
pub fn blobs(g: &mut Gen) {
    let blob = g.f.blob.clone();
    let unknown = g.unknown_digest();
    let app_layer = g.f.app_layer.clone();
    for (repo, d) in [
        ("seed/repo", &unknown),
        ("seed/repo", &app_layer),
        ("acme/app", &blob),
    ] {
        for m in ["GET", "HEAD", "DELETE"] {
            let req = Request::new(m, format!("/v2/{repo}/blobs/{d}"));
            g.push(Case::new("blobs", req, Expect::Oci(404, "BLOB_UNKNOWN")));
        }
    }
    let target = format!("/v2/seed/repo/blobs/{blob}");
    let unsatisfiable = [
        "bytes=10-",
        "bytes=100-200",
        "bytes=5-2",
        "bytes=-0",
        "bytes=10-10",
        "bytes=18446744073709551615-",
    ];
    for range in unsatisfiable {
        for m in ["GET", "HEAD"] {
            let req = Request::new(m, target.clone()).header("Range", range);
            let case = Case::new("ranges", req, Expect::OciStatus(416))
                .with_header("content-range", "bytes */10");
            g.push(case);
        }
    }
    // Syntax berth does not serve is ignored, as RFC 9110 allows: the whole blob.
    let ignored = [
        "bytes=",
        "bytes=abc",
        "bytes=0-1,3-4",
        "items=0-1",
        "bytes=99999999999999999999-",
        "bytes=--1",
        "BYTES=0-1",
        "bytes=0x0-1",
        "bytes=1-2-3",
        "bytes=-",
        "bytes=\t1-2x",
    ];
    for range in ignored {
        let req = Request::new("GET", target.clone()).header("Range", range);
        g.push(Case::new("ranges", req, Expect::Served(200)).with_header("content-length", "10"));
    }
    for _ in 0..20 {
        let (a, b) = (g.below(14) as u64, g.below(14) as u64);
        let req = Request::new("GET", target.clone()).header("Range", format!("bytes={a}-{b}"));
        let case = if a >= 10 || b < a {
            Case::new("ranges", req, Expect::OciStatus(416))
                .with_header("content-range", "bytes */10")
        } else {
            let end = b.min(9);
            Case::new("ranges", req, Expect::Served(206))
                .with_header("content-range", format!("bytes {a}-{end}/10"))
        };
        g.push(case);
    }
}

/// Uploads: unknown ids, bad ranges and lengths, mismatched digests, bad mounts.
pub fn uploads(g: &mut Gen) {
    let (upload, id) = (g.f.upload.clone(), g.f.upload_id().to_string());
    let d = g.unknown_digest();
    let mut ids: Vec<String> = vec![
        "not-a-uuid".into(),
        id.to_ascii_uppercase(),
        id.replace('-', ""),
        format!("{id}x"),
        format!("%7B{id}%7D"),
        "%2e%2e".into(),
        "..%2f..%2fetc%2fpasswd".into(),
        format!("{id}%00"),
        "00000000-0000-0000-0000-000000000000".into(),
        g.f.app_upload_id.clone(),
        "x".repeat(5000),
    ];
    let h = g.hex64();
    ids.push(format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    ));
    for bad in &ids {
        let path = format!("/v2/seed/repo/blobs/uploads/{bad}");
        for (m, target, body) in [
            ("GET", path.clone(), vec![]),
            ("PATCH", path.clone(), b"abc".to_vec()),
            ("PUT", format!("{path}?digest={d}"), vec![]),
            ("DELETE", path.clone(), vec![]),
        ] {
            let req = Request::new(m, target).body(body);
            g.push(Case::new(
                "upload ids",
                req,
                Expect::Oci(404, "BLOB_UPLOAD_UNKNOWN"),
            ));
        }
    }
    // The session belongs to seed/repo: another repository's path does not reach it.
    for m in ["GET", "PATCH", "DELETE"] {
        let req = Request::new(m, format!("/v2/acme/app/blobs/uploads/{id}"))
            .body(if m == "PATCH" { b"x".to_vec() } else { vec![] });
        g.push(Case::new(
            "upload ids",
            req,
            Expect::Oci(404, "BLOB_UPLOAD_UNKNOWN"),
        ));
    }
    // Content-Range that is malformed or not where the upload stands: 416 with its Range.
    let mut ranges: Vec<String> = [
        "abc",
        "bytes=",
        "10-",
        "-19",
        "19-10",
        "10-19-20",
        "0x0a-19",
        "10-99999999999999999999999",
        "10 - 19",
        "0-9",
        "11-20",
        "bytes 11-20/*",
        "%31%30-19",
        "10-19,20-29",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for _ in 0..16 {
        let a = loop {
            let a = g.below(40);
            if a != 10 {
                break a;
            }
        };
        let b = a + g.below(20);
        ranges.push(format!("{a}-{b}"));
    }
    for range in &ranges {
        let len = 10;
        for (m, target) in [
            ("PATCH", upload.clone()),
            ("PUT", format!("{upload}?digest={d}")),
        ] {
            let req = Request::new(m, target)
                .header("Content-Range", range)
                .body(vec![b'z'; len]);
            g.push(
                Case::new("upload ranges", req, Expect::OciStatus(416)).with_header("range", "0-9"),
            );
        }
    }
    // Ranges in the right place whose length the body or Content-Length contradicts.
    for (range, body) in [("10-19", &b"abcde"[..]), ("10-10", b"ab"), ("10-11", b"")] {
        let req = Request::new("PATCH", upload.clone())
            .header("Content-Range", range)
            .body(body.to_vec());
        g.push(Case::new(
            "upload ranges",
            req,
            Expect::Oci(400, "BLOB_UPLOAD_INVALID"),
        ));
    }
    // Digest algorithms and mounts.
    for (query, code) in [
        ("digest-algorithm=md5", "UNSUPPORTED"),
        ("digest-algorithm=sha384", "UNSUPPORTED"),
        ("digest-algorithm=SHA256", "DIGEST_INVALID"),
        ("digest-algorithm=", "DIGEST_INVALID"),
        ("digest-algorithm=sha256%00", "DIGEST_INVALID"),
    ] {
        let req = Request::new("POST", format!("/v2/seed/repo/blobs/uploads/?{query}"));
        g.push(Case::new("uploads", req, Expect::Oci(400, code)));
    }
    for from in [
        "Acme/app",
        "..%2Facme",
        "acme%2F..%2Fapp",
        "acme//app",
        "",
        "%00",
        "acme/app/",
    ] {
        let req = Request::new(
            "POST",
            format!(
                "/v2/seed/repo/blobs/uploads/?mount={}&from={from}",
                g.f.app_layer
            ),
        );
        g.push(Case::new("uploads", req, Expect::Oci(400, "NAME_INVALID")));
    }
    // Whole-blob pushes whose bytes do not hash to the digest: nothing is stored.
    for body in [&b"hello"[..], b"seed layer!", b""] {
        let wrong = if body.is_empty() {
            g.f.blob.clone()
        } else {
            g.unknown_digest()
        };
        let req = Request::new(
            "POST",
            format!("/v2/seed/repo/blobs/uploads/?digest={wrong}"),
        )
        .body(body.to_vec());
        g.push(Case::new(
            "uploads",
            req,
            Expect::Oci(400, "DIGEST_INVALID"),
        ));
    }
    // Closing a session with the wrong digest ends it (as distribution does); the session is
    // one the case opened itself.
    for last in [&b""[..], b"more"] {
        for wrong in [
            g.unknown_digest(),
            g.f.blob.clone(),
            format!("sha512:{}{}", g.hex64(), g.hex64()),
        ] {
            let req = Request::new("PUT", format!("{{fresh}}?digest={wrong}")).body(last.to_vec());
            g.push(
                Case::new("uploads", req, Expect::Oci(400, "DIGEST_INVALID"))
                    .with_setup(Setup::FreshUpload),
            );
        }
    }
}

/// Referrers with hostile filters and bad digests.
pub fn referrers(g: &mut Gen) {
    let subject = g.f.app_manifest.clone();
    let base = format!("/v2/acme/app/referrers/{subject}");
    for t in [
        "%00",
        &"a".repeat(6000),
        "..%2F..%2Fetc",
        "%E2%98%83",
        "application%2Fspdx%2Bjson%0d%0aX-Evil:%201",
        "*",
        "%25",
    ] {
        let req = Request::new("GET", format!("{base}?artifactType={t}"));
        g.push(
            Case::new("referrers", req, Expect::Served(200))
                .with_header("oci-filters-applied", "artifactType"),
        );
    }
    for n in ["-1", "x", "99999999999"] {
        let req = Request::new("GET", format!("{base}?n={n}"));
        g.push(Case::new("referrers", req, Expect::Oci(400, "UNSUPPORTED")));
    }
    for last in ["x", "sha256:abc", "%00"] {
        let req = Request::new("GET", format!("{base}?last={last}"));
        g.push(Case::new(
            "referrers",
            req,
            Expect::Oci(400, "DIGEST_INVALID"),
        ));
    }
    // The spec forbids a 404 from the referrers API: an unknown repository lists nothing.
    let req = Request::new("GET", format!("/v2/nosuch/repo/referrers/{subject}"));
    g.push(Case::new("referrers", req, Expect::Served(200)));
}

/// Methods no endpoint serves and paths that are no endpoint.
pub fn methods(g: &mut Gen) {
    let (blob, upload) = (g.f.blob.clone(), g.f.upload.clone());
    let targets = [
        "/v2/".to_string(),
        "/v2/_catalog".into(),
        "/v2/seed/repo/tags/list".into(),
        "/v2/seed/repo/manifests/v1".into(),
        format!("/v2/seed/repo/blobs/{blob}"),
        "/v2/seed/repo/blobs/uploads/".into(),
        upload.clone(),
        format!("/v2/seed/repo/referrers/{blob}"),
    ];
    for target in &targets {
        for m in ["PROPFIND", "TRACE", "MKCOL", "FOO", "LOCK", "PURGE"] {
            let req = Request::new(m, target.clone());
            g.push(Case::new("methods", req, Expect::Oci(405, "UNSUPPORTED")));
        }
    }
    for target in [
        "/v2/seed",
        "/v2/seed/repo",
        "/v2/seed/repo/nothing",
        "/v2/_catalog/x",
        "/v2/seed/repo/blobs",
        "/v2/seed/repo/manifests",
        "/v2/seed/repo/tags/list/x",
        "/v2/seed/repo/referrers",
        "/v2/seed/repo/blobs/uploads/../../../etc/passwd",
        "/v2/..",
        "/v2/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let req = Request::new("GET", target);
        g.push(Case::new("paths", req, Expect::OciStatus(404)));
    }
}
