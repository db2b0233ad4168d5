//! Pushing, pulling and deleting manifests: the accepted kinds, tags, subjects, validation and
//! size limits, and concurrent pushes to one tag.

use crate::common;

use berth::config::Settings;
use common::*;
use reqwest::Response;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

const OCI_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
];
const DOCKER_TYPES: [&str; 2] = [
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// Pushes a config and a layer blob to `repo` and returns their descriptors.
async fn push_parts(s: &TestServer, repo: &str, seed: u8, docker: bool) -> (Value, Value) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let layer = sample(seed, 300);
    let (c, l) = (
        s.push(repo, config.as_bytes()).await,
        s.push(repo, &layer).await,
    );
    let [ct, lt] = if docker { DOCKER_TYPES } else { OCI_TYPES };
    (
        json!({"mediaType": ct, "digest": c, "size": config.len()}),
        json!({"mediaType": lt, "digest": l, "size": layer.len()}),
    )
}

/// Pushes the blobs of an OCI image and returns its manifest bytes (not pushed).
async fn oci_image(s: &TestServer, repo: &str, seed: u8) -> Vec<u8> {
    let (config, layer) = push_parts(s, repo, seed, false).await;
    image_of(&config, json!([layer]))
}

/// Pushes the blobs of a Docker schema 2 image and returns its manifest bytes (not pushed).
async fn docker_image(s: &TestServer, repo: &str, seed: u8) -> Vec<u8> {
    let (config, layer) = push_parts(s, repo, seed, true).await;
    let m = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config});
    with(m, json!({"layers": [layer]}))
}

/// The JSON text of `base` with the fields of `extra` added.
fn with(mut base: Value, extra: Value) -> Vec<u8> {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    to_bytes(base)
}

/// A header value as text.
fn text(v: &reqwest::header::HeaderValue) -> &str {
    v.to_str().unwrap()
}

/// A descriptor of manifest bytes.
fn desc(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
}

/// The JSON text of `v`.
fn to_bytes(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

/// An OCI image manifest (with its `mediaType`) over `config` and `layers`.
fn image_of(config: &Value, layers: Value) -> Vec<u8> {
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config});
    with(m, json!({ "layers": layers }))
}

/// `PUT /v2/<repo>/manifests/<reference>` with `body` as `ct`.
async fn put(s: &TestServer, repo: &str, reference: &str, ct: &str, body: &[u8]) -> Response {
    put_manifest(&s.client, &s.base, repo, reference, ct, body).await
}

/// Pushes `body` and asserts 201 with the headers of a stored manifest; returns the digest.
async fn put_ok(s: &TestServer, repo: &str, reference: &str, ct: &str, body: &[u8]) -> String {
    let r = put(s, repo, reference, ct, body).await;
    let digest = sha256(body);
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let location = format!("/v2/{repo}/manifests/{digest}");
    assert_eq!(header(&r, "location"), location);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    digest
}

/// Asserts that GET and HEAD of `reference` answer exactly `body` as `ct`.
async fn assert_manifest(s: &TestServer, repo: &str, reference: &str, ct: &str, body: &[u8]) {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let (get, head) = (s.get(&path).await, s.head(&path).await);
    for r in [&get, &head] {
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(r, "content-type"), ct, "{path}");
        assert_eq!(header(r, "content-length"), body.len().to_string());
        assert_eq!(header(r, "docker-content-digest"), sha256(body));
    }
    assert!(head.bytes().await.unwrap().is_empty());
    assert_eq!(get.bytes().await.unwrap(), body, "{path}");
}

/// Asserts `reference` is unknown in `repo`.
async fn assert_unknown(s: &TestServer, repo: &str, reference: &str) {
    let path = format!("/v2/{repo}/manifests/{reference}");
    assert_error(s.get(&path).await, 404, "MANIFEST_UNKNOWN").await;
    let r = s.head(&path).await;
    assert_eq!(r.status(), 404, "HEAD {path}");
    assert!(r.bytes().await.unwrap().is_empty());
}

/// The tags of `repo`.
async fn tags(s: &TestServer, repo: &str) -> Vec<String> {
    let r = s.get(&format!("/v2/{repo}/tags/list")).await;
    serde_json::from_value(r.json::<Value>().await.unwrap()["tags"].clone()).unwrap()
}

#[tokio::test]
async fn push_by_tag_and_pull_by_tag_and_digest() {
    let s = TestServer::start().await;
    // Unusual formatting: the bytes must come back exactly, never re-serialized.
    let compact: Value = serde_json::from_slice(&oci_image(&s, "lib/app", 1).await).unwrap();
    let body = format!("{}\n\n", serde_json::to_string_pretty(&compact).unwrap()).into_bytes();
    let digest = put_ok(&s, "lib/app", "v1", OCI_MANIFEST, &body).await;
    assert_manifest(&s, "lib/app", "v1", OCI_MANIFEST, &body).await;
    assert_manifest(&s, "lib/app", &digest, OCI_MANIFEST, &body).await;
    assert_eq!(tags(&s, "lib/app").await, ["v1"]);
}

#[tokio::test]
async fn push_by_digest_stores_no_tag() {
    let s = TestServer::start().await;
    let body = oci_image(&s, "lib/app", 2).await;
    let digest = put_ok(&s, "lib/app", &sha256(&body), OCI_MANIFEST, &body).await;
    assert_manifest(&s, "lib/app", &digest, OCI_MANIFEST, &body).await;
    assert!(tags(&s, "lib/app").await.is_empty());
    // Manifests are per repository too.
    assert_unknown(&s, "lib/other", &digest).await;
}

#[tokio::test]
async fn media_type_comes_from_content_type_when_the_field_is_absent() {
    let s = TestServer::start().await;
    let (config, layer) = push_parts(&s, "r", 3, false).await;
    let image = to_bytes(json!({"schemaVersion": 2, "config": config, "layers": [layer]}));
    put_ok(&s, "r", "image", OCI_MANIFEST, &image).await;
    assert_manifest(&s, "r", "image", OCI_MANIFEST, &image).await;
    let index = to_bytes(json!({"schemaVersion": 2, "manifests": [desc(OCI_MANIFEST, &image)]}));
    put_ok(&s, "r", "index", OCI_INDEX, &index).await;
    assert_manifest(&s, "r", "index", OCI_INDEX, &index).await;
    // Parameters on the Content-Type are ignored.
    let ct = format!("{OCI_MANIFEST}; charset=utf-8");
    put_ok(&s, "r", "params", &ct, &image).await;
    assert_manifest(&s, "r", "params", OCI_MANIFEST, &image).await;
    // With a generic Content-Type the field decides.
    let typed = oci_image(&s, "r", 4).await;
    put_ok(&s, "r", "generic", "application/json", &typed).await;
    assert_manifest(&s, "r", "generic", OCI_MANIFEST, &typed).await;
    // With neither, or with the two disagreeing, the manifest is refused.
    for (ct, body) in [("application/json", &image), (DOCKER_MANIFEST, &typed)] {
        let r = put(&s, "r", "bad", ct, body).await;
        assert_error(r, 400, "MANIFEST_INVALID").await;
    }
    assert_unknown(&s, "r", "bad").await;
}

#[tokio::test]
async fn docker_schema2_manifest_and_manifest_list() {
    let s = TestServer::start().await;
    let amd = docker_image(&s, "d", 5).await;
    let arm = docker_image(&s, "d", 6).await;
    put_ok(&s, "d", &sha256(&amd), DOCKER_MANIFEST, &amd).await;
    put_ok(&s, "d", &sha256(&arm), DOCKER_MANIFEST, &arm).await;
    let mut children = Vec::new();
    for (bytes, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        let mut d = desc(DOCKER_MANIFEST, bytes);
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        children.push(d);
    }
    let list = to_bytes(json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": children,
    }));
    put_ok(&s, "d", "latest", DOCKER_LIST, &list).await;
    assert_manifest(&s, "d", "latest", DOCKER_LIST, &list).await;
    assert_manifest(&s, "d", &sha256(&amd), DOCKER_MANIFEST, &amd).await;
}

#[tokio::test]
async fn oci_index_with_children_of_every_kind() {
    let s = TestServer::start().await;
    let oci = oci_image(&s, "i", 7).await;
    let docker = docker_image(&s, "i", 8).await;
    put_ok(&s, "i", &sha256(&oci), OCI_MANIFEST, &oci).await;
    put_ok(&s, "i", &sha256(&docker), DOCKER_MANIFEST, &docker).await;
    let inner = to_bytes(json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(OCI_MANIFEST, &oci)],
    }));
    put_ok(&s, "i", &sha256(&inner), OCI_INDEX, &inner).await;
    let mut with_platform = desc(OCI_MANIFEST, &oci);
    with_platform["platform"] = json!({"architecture": "amd64", "os": "linux"});
    // The Docker child and the nested index carry no `platform`, which is optional.
    let outer = to_bytes(json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [with_platform, desc(DOCKER_MANIFEST, &docker), desc(OCI_INDEX, &inner)],
        "annotations": {"org.opencontainers.image.ref.name": "outer"},
    }));
    let digest = put_ok(&s, "i", "multi", OCI_INDEX, &outer).await;
    assert_manifest(&s, "i", "multi", OCI_INDEX, &outer).await;
    assert_manifest(&s, "i", &digest, OCI_INDEX, &outer).await;
}

#[tokio::test]
async fn push_by_digest_with_tag_parameters() {
    let s = TestServer::start().await;
    let body = oci_image(&s, "t", 9).await;
    let digest = sha256(&body);
    let reference = format!("{digest}?tag=a&tag=b");
    let r = put(&s, "t", &reference, OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    let mut oci_tags: Vec<&str> = r.headers().get_all("oci-tag").iter().map(text).collect();
    oci_tags.sort();
    assert_eq!(oci_tags, ["a", "b"]);
    for tag in ["a", "b"] {
        assert_manifest(&s, "t", tag, OCI_MANIFEST, &body).await;
    }
    assert_eq!(tags(&s, "t").await, ["a", "b"]);
    // An invalid tag parameter refuses the whole push.
    let other = oci_image(&s, "t", 10).await;
    let reference = format!("{}?tag=c&tag=.bad", sha256(&other));
    let r = put(&s, "t", &reference, OCI_MANIFEST, &other).await;
    assert_error(r, 400, "MANIFEST_INVALID").await;
    assert_unknown(&s, "t", &sha256(&other)).await;
    assert_unknown(&s, "t", "c").await;
}

#[tokio::test]
async fn subject_is_echoed_and_may_not_exist_yet() {
    let s = TestServer::start().await;
    let target = oci_image(&s, "sub", 11).await;
    let target_digest = put_ok(&s, "sub", "v1", OCI_MANIFEST, &target).await;
    let missing = oci_image(&s, "sub", 12).await; // Never pushed as a manifest.
    let (config, layer) = push_parts(&s, "sub", 13, false).await;
    for subject in [&target, &missing] {
        let referrer = to_bytes(json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.sig",
            "config": config, "layers": [layer], "subject": desc(OCI_MANIFEST, subject),
        }));
        let r = put(&s, "sub", &sha256(&referrer), OCI_MANIFEST, &referrer).await;
        assert_eq!(r.status(), 201);
        assert_eq!(header(&r, "oci-subject"), sha256(subject));
        assert_manifest(&s, "sub", &sha256(&referrer), OCI_MANIFEST, &referrer).await;
    }
    // A manifest without a subject gets no OCI-Subject header.
    let plain = oci_image(&s, "sub", 14).await;
    let r = put(&s, "sub", "plain", OCI_MANIFEST, &plain).await;
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("oci-subject").is_none());
    assert_manifest(&s, "sub", &target_digest, OCI_MANIFEST, &target).await;
}

#[tokio::test]
async fn references_must_be_known_in_the_repository() {
    let s = TestServer::start().await;
    let (config, layer) = push_parts(&s, "m", 15, false).await;
    let elsewhere = s.push("other", b"only in other").await;
    let unknown = sha256(b"never pushed");
    let tar = "application/vnd.oci.image.layer.v1.tar";
    let foreign = json!({"mediaType": tar, "digest": elsewhere, "size": 13});
    let missing = json!({"mediaType": tar, "digest": unknown, "size": 1});
    let missing_config = json!({"mediaType": config["mediaType"], "digest": unknown, "size": 1});
    for (cfg, layers, culprit) in [
        (&config, json!([layer, missing]), &unknown),
        (&missing_config, json!([layer]), &unknown),
        (&config, json!([foreign]), &elsewhere),
    ] {
        let body = image_of(cfg, layers);
        let r = put(&s, "m", "bad", OCI_MANIFEST, &body).await;
        let e = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
        assert_eq!(e["errors"][0]["detail"]["digest"], culprit.as_str());
        assert_unknown(&s, "m", &sha256(&body)).await;
    }
    // An index whose child manifest is not in the repository.
    let child = oci_image(&s, "m", 16).await;
    let index = to_bytes(json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(OCI_MANIFEST, &child)],
    }));
    let r = put(&s, "m", "bad", OCI_INDEX, &index).await;
    let e = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert_eq!(e["errors"][0]["detail"]["digest"], sha256(&child).as_str());
    assert_unknown(&s, "m", "bad").await;
}

#[tokio::test]
async fn the_empty_config_is_accepted_without_an_upload() {
    let s = TestServer::start().await;
    let layer = s.push("e", b"payload").await;
    let empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    let body = to_bytes(json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": layer, "size": 7}],
    }));
    put_ok(&s, "e", "v1", OCI_MANIFEST, &body).await;
    assert_eq!(s.pull("e", empty).await, b"{}");
}

#[tokio::test]
async fn digest_mismatch_on_push_by_digest_is_digest_invalid() {
    let s = TestServer::start().await;
    let body = oci_image(&s, "dm", 17).await;
    let wrong = sha256(b"something else");
    let r = put(&s, "dm", &wrong, OCI_MANIFEST, &body).await;
    assert_error(r, 400, "DIGEST_INVALID").await;
    assert_unknown(&s, "dm", &wrong).await;
    assert_unknown(&s, "dm", &sha256(&body)).await;
}

#[tokio::test]
async fn malformed_manifests_are_manifest_invalid() {
    let s = TestServer::start().await;
    let (config, layer) = push_parts(&s, "bad", 18, false).await;
    let d = sha256(b"x");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{\"schemaVersion\": 2,".to_vec()),
        ("empty", Vec::new()),
        ("array", b"[]".to_vec()),
        ("no config", br#"{"schemaVersion":2,"layers":[]}"#.to_vec()),
        (
            "schemaVersion 3",
            to_bytes(json!({"schemaVersion": 3, "config": config, "layers": []})),
        ),
        (
            "layers not a list",
            to_bytes(json!({"schemaVersion": 2, "config": config, "layers": layer})),
        ),
        (
            "negative size",
            image_of(
                &config,
                json!([{"mediaType": "a/b", "digest": d, "size": -1}]),
            ),
        ),
        (
            "bad digest",
            image_of(
                &config,
                json!([{"mediaType": "a/b", "digest": "sha256:xyz", "size": 1}]),
            ),
        ),
        (
            "config not an object",
            image_of(&json!("config"), json!([layer])),
        ),
        (
            "no layer media type",
            image_of(&config, json!([{"digest": d, "size": 1}])),
        ),
        (
            "manifests in an image",
            to_bytes(json!({"schemaVersion": 2, "config": config, "layers": [], "manifests": []})),
        ),
    ];
    for (what, body) in cases {
        let r = put(&s, "bad", "v1", OCI_MANIFEST, &body).await;
        assert_eq!(r.status(), 400, "{what}");
        assert_error(r, 400, "MANIFEST_INVALID").await;
    }
    assert_unknown(&s, "bad", "v1").await;
}

#[tokio::test]
async fn docker_schema1_and_unknown_media_types_are_refused() {
    let s = TestServer::start().await;
    let schema1 =
        br#"{"schemaVersion":1,"name":"s/one","tag":"v1","architecture":"amd64","fsLayers":[]}"#;
    let image = oci_image(&s, "s/one", 19).await;
    for (ct, body) in [
        (
            "application/vnd.docker.distribution.manifest.v1+json",
            &schema1[..],
        ),
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            &schema1[..],
        ),
        ("application/json", &schema1[..]),
        ("application/vnd.example.unknown+json", &image[..]),
        ("text/plain", &image[..]),
    ] {
        let r = put(&s, "s/one", "v1", ct, body).await;
        assert_error(r, 400, "MANIFEST_INVALID").await;
    }
    let unknown_field = to_bytes(json!({
        "schemaVersion": 2, "mediaType": "application/x.custom+json", "config": {}, "layers": [],
    }));
    let r = put(&s, "s/one", "v1", "application/json", &unknown_field).await;
    assert_error(r, 400, "MANIFEST_INVALID").await;
    assert_unknown(&s, "s/one", "v1").await;
}

/// An OCI image manifest of exactly `len` bytes, padded with an annotation.
async fn padded_manifest(s: &TestServer, repo: &str, len: usize) -> Vec<u8> {
    let (config, layer) = push_parts(s, repo, 20, false).await;
    let make = |pad: usize| {
        to_bytes(json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer],
            "annotations": {"pad": "x".repeat(pad)},
        }))
    };
    let body = make(len - make(0).len());
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn manifests_over_the_configured_limit_are_413() {
    let s = TestServer::start_with(Settings {
        manifest_max_bytes: 4096,
        ..Default::default()
    })
    .await;
    let fits = padded_manifest(&s, "big", 4096).await;
    put_ok(&s, "big", "fits", OCI_MANIFEST, &fits).await;
    let over = padded_manifest(&s, "big", 4097).await;
    let r = put(&s, "big", "over", OCI_MANIFEST, &over).await;
    assert_eq!(r.status(), 413);
    check_error_body(&r.bytes().await.unwrap());
    // Without a Content-Length, the limit applies while reading.
    let parts: Vec<Result<Vec<u8>, std::io::Error>> =
        over.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let r = s
        .client
        .put(s.url("/v2/big/manifests/over"))
        .header("content-type", OCI_MANIFEST)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(parts)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    check_error_body(&r.bytes().await.unwrap());
    assert_unknown(&s, "big", "over").await;
    assert_eq!(tags(&s, "big").await, ["fits"]);
}

#[tokio::test]
async fn the_default_limit_accepts_manifests_of_4_mib() {
    let s = TestServer::start().await;
    // "Client and registry implementations SHOULD expect to be able to support manifest
    // pushes of at least 4 megabytes."
    for (tag, len) in [("large", 3_900_000), ("limit", 4 * 1024 * 1024)] {
        let body = padded_manifest(&s, "big", len).await;
        put_ok(&s, "big", tag, OCI_MANIFEST, &body).await;
        assert_manifest(&s, "big", tag, OCI_MANIFEST, &body).await;
    }
    let over = padded_manifest(&s, "big", 4 * 1024 * 1024 + 1).await;
    let r = put(&s, "big", "over", OCI_MANIFEST, &over).await;
    assert_eq!(r.status(), 413);
    check_error_body(&r.bytes().await.unwrap());
}

#[tokio::test]
async fn delete_by_tag_keeps_the_manifest() {
    let s = TestServer::start().await;
    let body = oci_image(&s, "del", 21).await;
    let digest = put_ok(&s, "del", "a", OCI_MANIFEST, &body).await;
    put_ok(&s, "del", "b", OCI_MANIFEST, &body).await;
    let r = s.delete("/v2/del/manifests/a").await;
    assert_eq!(r.status(), 202);
    assert_unknown(&s, "del", "a").await;
    assert_manifest(&s, "del", &digest, OCI_MANIFEST, &body).await;
    assert_manifest(&s, "del", "b", OCI_MANIFEST, &body).await;
    assert_eq!(tags(&s, "del").await, ["b"]);
    let r = s.delete("/v2/del/manifests/a").await;
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn delete_by_digest_removes_its_tags() {
    let s = TestServer::start().await;
    let body = oci_image(&s, "del", 22).await;
    let other = oci_image(&s, "del", 23).await;
    let digest = put_ok(&s, "del", "a", OCI_MANIFEST, &body).await;
    put_ok(&s, "del", "b", OCI_MANIFEST, &body).await;
    put_ok(&s, "del", "keep", OCI_MANIFEST, &other).await;
    let r = s.delete(&format!("/v2/del/manifests/{digest}")).await;
    assert_eq!(r.status(), 202);
    for reference in ["a", "b", digest.as_str()] {
        assert_unknown(&s, "del", reference).await;
    }
    assert_eq!(tags(&s, "del").await, ["keep"]);
    let r = s.delete(&format!("/v2/del/manifests/{digest}")).await;
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    // Pushing it again brings it back.
    put_ok(&s, "del", "a", OCI_MANIFEST, &body).await;
    assert_manifest(&s, "del", &digest, OCI_MANIFEST, &body).await;
}

#[tokio::test]
async fn unknown_manifests_are_manifest_unknown() {
    let s = TestServer::start().await;
    put_ok(&s, "u", "v1", OCI_MANIFEST, &oci_image(&s, "u", 24).await).await;
    let missing = sha256(b"missing");
    for (repo, reference) in [("u", "v2"), ("u", missing.as_str()), ("nope", "v1")] {
        assert_unknown(&s, repo, reference).await;
        let r = s.delete(&format!("/v2/{repo}/manifests/{reference}")).await;
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    }
}

#[tokio::test]
async fn invalid_tags_are_unknown_to_reads_and_refused_on_push() {
    let s = TestServer::start().await;
    let body = oci_image(&s, "tags", 25).await;
    for bad in [".bad", "-bad", &"a".repeat(129)] {
        assert_unknown(&s, "tags", bad).await;
        let r = put(&s, "tags", bad, OCI_MANIFEST, &body).await;
        assert_error(r, 400, "MANIFEST_INVALID").await;
    }
    // The longest valid tag works.
    let longest = "a".repeat(128);
    put_ok(&s, "tags", &longest, OCI_MANIFEST, &body).await;
    assert_eq!(tags(&s, "tags").await, [longest]);
}

#[tokio::test]
async fn a_tag_moves_to_the_latest_push() {
    let s = TestServer::start().await;
    let first = oci_image(&s, "mv", 26).await;
    let second = oci_image(&s, "mv", 27).await;
    let first_digest = put_ok(&s, "mv", "latest", OCI_MANIFEST, &first).await;
    put_ok(&s, "mv", "latest", OCI_MANIFEST, &second).await;
    assert_manifest(&s, "mv", "latest", OCI_MANIFEST, &second).await;
    assert_manifest(&s, "mv", &first_digest, OCI_MANIFEST, &first).await;
    assert_eq!(tags(&s, "mv").await, ["latest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_to_one_tag_all_succeed() {
    let s = TestServer::start().await;
    let (config, layer) = push_parts(&s, "race", 28, false).await;
    let bodies: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            to_bytes(json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                "layers": [layer], "annotations": {"writer": i.to_string()},
            }))
        })
        .collect();
    let mut tasks = Vec::new();
    for body in bodies.clone() {
        let (client, base) = (s.client.clone(), s.base.clone());
        tasks.push(tokio::spawn(async move {
            let r = put_manifest(&client, &base, "race", "latest", OCI_MANIFEST, &body).await;
            (
                r.status().as_u16(),
                header(&r, "docker-content-digest").to_string(),
            )
        }));
    }
    for (t, body) in tasks.into_iter().zip(&bodies) {
        let (status, digest) = t.await.unwrap();
        assert_eq!(status, 201);
        assert_eq!(digest, sha256(body));
    }
    let r = s.get("/v2/race/manifests/latest").await;
    assert_eq!(r.status(), 200);
    let winner = r.bytes().await.unwrap();
    assert!(
        bodies.iter().any(|b| *b == winner),
        "the tag names one of the pushes"
    );
    for body in &bodies {
        assert_manifest(&s, "race", &sha256(body), OCI_MANIFEST, body).await;
    }
    assert_eq!(tags(&s, "race").await, ["latest"]);
}

#[tokio::test]
async fn push_by_sha512_digest_keeps_that_digest() {
    let s = TestServer::start().await;
    let body = oci_image(&s, "h", 29).await;
    let digest = sha512(&body);
    let r = put(&s, "h", &digest, OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(header(&r, "location"), format!("/v2/h/manifests/{digest}"));
    let r = s.get(&format!("/v2/h/manifests/{digest}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(r.bytes().await.unwrap(), body);
    let r = put(&s, "h", &sha512(b"x"), OCI_MANIFEST, &body).await;
    assert_error(r, 400, "DIGEST_INVALID").await;
}
