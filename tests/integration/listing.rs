//! Tag lists, the catalog and the referrers API, with their pagination.

use crate::common;

use berth::config::Settings;
use common::*;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Artifact types the default policy accepts: a cosign signature (with its layer type), two
/// SBOM formats and a sigstore bundle.
const SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SIG_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SPDX: &str = "application/spdx+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_JSON: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// The target of a `Link: <target>; rel="next"` header, if any.
fn next_link(r: &reqwest::Response) -> Option<String> {
    let link = r.headers().get("link")?.to_str().expect("link text");
    let target = link
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("malformed Link header {link:?}"));
    Some(target.to_string())
}

/// GETs `path`, asserts 200 and JSON, and returns the body and the next link.
async fn page(s: &TestServer, path: &str) -> (Value, Option<String>) {
    let r = s.get(path).await;
    assert_eq!(r.status(), 200, "{path}");
    let link = next_link(&r);
    (r.json().await.expect("JSON body"), link)
}

/// The strings of a JSON array field.
fn strings(v: &Value, field: &str) -> Vec<String> {
    serde_json::from_value(v[field].clone()).unwrap_or_else(|_| panic!("{field} in {v}"))
}

/// Follows `Link` headers from `first`, returning every page's `field` entries in order.
async fn walk(s: &TestServer, first: &str, field: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(path) = next {
        let (body, link) = page(s, &path).await;
        pages.push(strings(&body, field));
        next = link;
        assert!(pages.len() < 100, "pagination does not end");
    }
    pages
}

/// Pushes one image to `repo` and tags it with every tag in `tags`.
async fn tag_all(s: &TestServer, repo: &str, tags: &[&str]) {
    let digest = push_image(&s.client, &s.base, repo, tags[0], b"layer").await;
    let query: Vec<String> = tags[1..].iter().map(|t| format!("tag={t}")).collect();
    let r = s.get(&format!("/v2/{repo}/manifests/{digest}")).await;
    let body = r.bytes().await.unwrap();
    let reference = format!("{digest}?{}", query.join("&"));
    let r = put_manifest(&s.client, &s.base, repo, &reference, OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), 201);
}

const TAGS: [&str; 7] = ["v2", "v10", "A", "_x", "a.b", "1.0", "latest"];

fn sorted_tags() -> Vec<String> {
    let mut all: Vec<String> = TAGS.iter().map(|t| t.to_string()).collect();
    all.sort();
    all
}

#[tokio::test]
async fn tags_are_listed_in_lexical_order() {
    let s = TestServer::start().await;
    tag_all(&s, "lib/app", &TAGS).await;
    let r = s.get("/v2/lib/app/tags/list").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/json");
    assert!(r.headers().get("link").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "lib/app");
    assert_eq!(strings(&body, "tags"), sorted_tags());
    assert_eq!(
        sorted_tags(),
        ["1.0", "A", "_x", "a.b", "latest", "v10", "v2"]
    );
}

#[tokio::test]
async fn tags_paginate_with_n_last_and_link() {
    let s = TestServer::start().await;
    tag_all(&s, "lib/app", &TAGS).await;
    let all = sorted_tags();
    let r = s.get("/v2/lib/app/tags/list?n=2").await;
    assert_eq!(
        header(&r, "link"),
        format!("</v2/lib/app/tags/list?n=2&last={}>; rel=\"next\"", all[1])
    );
    let pages = walk(&s, "/v2/lib/app/tags/list?n=2", "tags").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2, 1]);
    assert_eq!(pages.concat(), all);
    // A page that ends exactly at the last tag has no Link.
    let (body, link) = page(&s, &format!("/v2/lib/app/tags/list?n=2&last={}", all[4])).await;
    assert_eq!(strings(&body, "tags"), all[5..]);
    assert_eq!(link, None);
    // `last` alone, and `n` larger than the list.
    let (body, link) = page(&s, "/v2/lib/app/tags/list?last=a.b").await;
    assert_eq!(strings(&body, "tags"), ["latest", "v10", "v2"]);
    assert_eq!(link, None);
    let (body, link) = page(&s, "/v2/lib/app/tags/list?n=100").await;
    assert_eq!(strings(&body, "tags"), all);
    assert_eq!(link, None);
}

#[tokio::test]
async fn empty_tag_pages() {
    let s = TestServer::start().await;
    tag_all(&s, "lib/app", &TAGS).await;
    for query in ["n=0", "last=zzz", "n=3&last=zzz", "n=0&last=A"] {
        let (body, link) = page(&s, &format!("/v2/lib/app/tags/list?{query}")).await;
        assert_eq!(body["name"], "lib/app", "{query}");
        assert_eq!(body["tags"], json!([]), "{query}");
        assert_eq!(link, None, "{query}");
    }
}

const BAD_PAGE_SIZES: [&str; 5] = ["abc", "-1", "1.5", "", "99999999999999999999"];

#[tokio::test]
async fn invalid_page_sizes_are_400() {
    let s = TestServer::start().await;
    tag_all(&s, "lib/app", &["v1"]).await;
    for n in BAD_PAGE_SIZES {
        for path in ["/v2/lib/app/tags/list", "/v2/_catalog"] {
            let r = s.get(&format!("{path}?n={n}")).await;
            assert_eq!(r.status(), 400, "{path}?n={n}");
            // The code is checked in `invalid_page_sizes_use_a_spec_error_code`.
            let body: Value = r.json().await.unwrap();
            assert!(body["errors"][0]["code"].is_string(), "{body}");
        }
    }
}

#[tokio::test]
async fn invalid_page_sizes_use_a_spec_error_code() {
    let s = TestServer::start().await;
    tag_all(&s, "lib/app", &["v1"]).await;
    let huge = "9".repeat(60_000);
    for n in BAD_PAGE_SIZES.iter().chain([&huge.as_str()]) {
        for path in ["/v2/lib/app/tags/list", "/v2/_catalog"] {
            let r = s.get(&format!("{path}?n={n}")).await;
            assert_eq!(r.status(), 400);
            // check_error_body insists on a code from the spec's list.
            check_error_body(&r.bytes().await.unwrap());
        }
    }
}

#[tokio::test]
async fn tags_of_an_unknown_repository_are_name_unknown() {
    let s = TestServer::start().await;
    tag_all(&s, "lib/app", &["v1"]).await;
    for repo in ["lib/other", "lib", "lib/app/sub"] {
        let r = s.get(&format!("/v2/{repo}/tags/list")).await;
        let body = assert_error(r, 404, "NAME_UNKNOWN").await;
        assert_eq!(body["errors"][0]["detail"]["name"], repo);
    }
}

#[tokio::test]
async fn the_configured_page_size_caps_every_list() {
    let s = TestServer::start_with(Settings {
        list_max_page_size: 3,
        ..Default::default()
    })
    .await;
    tag_all(&s, "lib/app", &TAGS).await;
    let all = sorted_tags();
    for query in ["", "?n=100"] {
        let r = s.get(&format!("/v2/lib/app/tags/list{query}")).await;
        assert_eq!(
            header(&r, "link"),
            format!("</v2/lib/app/tags/list?n=3&last={}>; rel=\"next\"", all[2])
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(strings(&body, "tags"), all[..3]);
    }
    assert_eq!(
        walk(&s, "/v2/lib/app/tags/list", "tags").await.concat(),
        all
    );
}

/// Pushes one image into each repository of `names`.
async fn make_repos(s: &TestServer, names: &[&str]) {
    for name in names {
        push_image(&s.client, &s.base, name, "v1", name.as_bytes()).await;
    }
}

#[tokio::test]
async fn catalog_lists_repositories_in_order_with_pagination() {
    let s = TestServer::start().await;
    let names = ["b", "a/b", "a", "a-b", "z/y/x", "a0"];
    make_repos(&s, &names).await;
    let mut all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    all.sort();
    let r = s.get("/v2/_catalog").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/json");
    assert!(r.headers().get("link").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(strings(&body, "repositories"), all);

    let r = s.get("/v2/_catalog?n=2").await;
    assert_eq!(
        header(&r, "link"),
        format!("</v2/_catalog?n=2&last={}>; rel=\"next\"", all[1])
    );
    let pages = walk(&s, "/v2/_catalog?n=2", "repositories").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2]);
    assert_eq!(pages.concat(), all);
    // A name with a slash as `last`, sent encoded or not.
    for last in ["a/b", "a%2Fb"] {
        let (body, _) = page(&s, &format!("/v2/_catalog?last={last}")).await;
        let after: Vec<String> = all
            .iter()
            .filter(|n| *n > &"a/b".to_string())
            .cloned()
            .collect();
        assert_eq!(strings(&body, "repositories"), after, "last={last}");
    }
    for query in ["n=0", "last=zzz", "n=5&last=zzz"] {
        let (body, link) = page(&s, &format!("/v2/_catalog?{query}")).await;
        assert_eq!(body["repositories"], json!([]), "{query}");
        assert_eq!(link, None, "{query}");
    }
}

#[tokio::test]
async fn catalog_pages_link_through_names_with_slashes() {
    let s = TestServer::start().await;
    let names = ["org/a", "org/b", "org/c/d", "org/c/e", "other"];
    make_repos(&s, &names).await;
    let pages = walk(&s, "/v2/_catalog?n=1", "repositories").await;
    assert_eq!(pages.len(), 5);
    assert_eq!(pages.concat(), names);
}

#[tokio::test]
async fn empty_catalog() {
    let s = TestServer::start().await;
    let (body, link) = page(&s, "/v2/_catalog").await;
    assert_eq!(body, json!({"repositories": []}));
    assert_eq!(link, None);
}

/// `s` encoded for a query string (`/` and `+` escaped, as berth's links do).
fn enc(s: &str) -> String {
    s.replace('/', "%2F").replace('+', "%2B")
}

/// Pushes a manifest whose `subject` is `subject` (a descriptor), with `fields` replacing
/// those of an OCI 1.1 artifact (empty config, one layer); returns its bytes. The layer's
/// media type is the one the default artifact policy pairs with the artifact type.
async fn push_referrer(s: &TestServer, repo: &str, fields: Value, subject: &Value) -> Vec<u8> {
    let layer = s.push(repo, b"signature bytes").await;
    let mut m = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EMPTY_TYPE, "digest": EMPTY_JSON, "size": 2},
        "subject": subject,
    });
    for (k, v) in fields.as_object().unwrap() {
        m[k] = v.clone();
    }
    let key = match m["artifactType"].as_str() {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => m["config"]["mediaType"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let layer_type = if key == SIG { SIG_LAYER } else { key.as_str() };
    if m.get("layers").is_none() {
        m["layers"] = json!([{"mediaType": layer_type, "digest": layer, "size": 15}]);
    }
    let body = serde_json::to_vec(&m).unwrap();
    let ct = m["mediaType"].as_str().unwrap();
    let r = put_manifest(&s.client, &s.base, repo, &sha256(&body), ct, &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    body
}

/// Pushes an image to be the subject of referrers; returns its descriptor.
async fn push_subject(s: &TestServer, repo: &str) -> Value {
    let digest = push_image(&s.client, &s.base, repo, "v1", b"subject layer").await;
    let r = s.head(&format!("/v2/{repo}/manifests/v1")).await;
    let size: u64 = header(&r, "content-length").parse().unwrap();
    json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size})
}

/// The referrers of `subject` in `repo` with `query`; asserts 200 and the index shape.
async fn referrers(s: &TestServer, repo: &str, subject: &str, query: &str) -> reqwest::Response {
    let r = s
        .get(&format!("/v2/{repo}/referrers/{subject}{query}"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
    r
}

#[tokio::test]
async fn referrers_of_an_unknown_subject_is_an_empty_index() {
    let s = TestServer::start().await;
    push_subject(&s, "r").await;
    for repo in ["r", "never/pushed"] {
        let r = referrers(&s, repo, &sha256(b"no such manifest"), "").await;
        assert!(r.headers().get("link").is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        );
    }
}

#[tokio::test]
async fn referrers_describe_each_referring_manifest() {
    let s = TestServer::start().await;
    let subject = push_subject(&s, "r").await;
    let notes = json!({"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "k": "v"});
    let signed = push_referrer(
        &s,
        "r",
        json!({"artifactType": SIG, "annotations": notes}),
        &subject,
    )
    .await;
    // No artifactType: the config media type stands in for it.
    let cfg = s.push("r", b"{\"sbom\":true}").await;
    let sbom = push_referrer(
        &s,
        "r",
        json!({"config": {"mediaType": CYCLONEDX, "digest": cfg, "size": 13}}),
        &subject,
    )
    .await;
    let index = push_referrer(
        &s,
        "r",
        json!({"mediaType": OCI_INDEX, "artifactType": BUNDLE, "manifests": [],
               "config": null, "layers": null}),
        &subject,
    )
    .await;
    // Neither a manifest without a subject nor one about another subject is listed.
    push_image(&s.client, &s.base, "r", "unrelated", b"other").await;
    let other = json!({"mediaType": OCI_MANIFEST, "digest": sha256(b"other"), "size": 5});
    push_referrer(&s, "r", json!({"artifactType": SIG}), &other).await;

    let subject_digest = subject["digest"].as_str().unwrap();
    let r = referrers(&s, "r", subject_digest, "").await;
    assert!(r.headers().get("oci-filters-applied").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["schemaVersion"], 2);
    assert_eq!(body["mediaType"], OCI_INDEX);
    let mut expected = vec![
        json!({"mediaType": OCI_MANIFEST, "digest": sha256(&signed), "size": signed.len(),
               "artifactType": SIG, "annotations": notes}),
        json!({"mediaType": OCI_MANIFEST, "digest": sha256(&sbom), "size": sbom.len(),
               "artifactType": CYCLONEDX}),
        json!({"mediaType": OCI_INDEX, "digest": sha256(&index), "size": index.len(),
               "artifactType": BUNDLE}),
    ];
    let mut got = body["manifests"].as_array().unwrap().clone();
    let key = |v: &Value| v["digest"].as_str().unwrap().to_string();
    got.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(got, expected);
}

#[tokio::test]
async fn referrers_filter_by_artifact_type() {
    let s = TestServer::start().await;
    let subject = push_subject(&s, "r").await;
    let sig = push_referrer(&s, "r", json!({"artifactType": SIG}), &subject).await;
    push_referrer(&s, "r", json!({"artifactType": SPDX}), &subject).await;
    let digest = subject["digest"].as_str().unwrap();
    let r = referrers(&s, "r", digest, &format!("?artifactType={}", enc(SIG))).await;
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let body: Value = r.json().await.unwrap();
    let manifests = body["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["digest"], sha256(&sig).as_str());
    // A filter nothing matches still says it was applied.
    let r = referrers(&s, "r", digest, "?artifactType=application/x.none").await;
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["manifests"], json!([]));
}

#[tokio::test]
async fn filtered_referrers_paginate_with_the_filter_kept() {
    let s = TestServer::start().await;
    let subject = push_subject(&s, "r").await;
    let mut sigs = Vec::new();
    for i in 0..3 {
        let fields = json!({"artifactType": SIG, "annotations": {"i": i.to_string()}});
        sigs.push(sha256(&push_referrer(&s, "r", fields, &subject).await));
        push_referrer(
            &s,
            "r",
            json!({"artifactType": SPDX, "annotations": {"i": i.to_string()}}),
            &subject,
        )
        .await;
    }
    sigs.sort();
    let digest = subject["digest"].as_str().unwrap();
    let mut next = Some(format!(
        "/v2/r/referrers/{digest}?artifactType={}&n=2",
        enc(SIG)
    ));
    let mut seen = Vec::new();
    while let Some(path) = next {
        let r = s.get(&path).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "oci-filters-applied"), "artifactType", "{path}");
        next = next_link(&r);
        if let Some(link) = &next {
            assert!(
                link.contains(&format!("artifactType={}", enc(SIG))),
                "{link}"
            );
        }
        let body: Value = r.json().await.unwrap();
        for m in body["manifests"].as_array().unwrap() {
            assert_eq!(m["artifactType"], SIG);
            seen.push(m["digest"].as_str().unwrap().to_string());
        }
        assert!(seen.len() <= 3, "pagination does not end");
    }
    seen.sort();
    assert_eq!(seen, sigs);
}

#[tokio::test]
async fn referrers_with_a_bad_digest_are_400() {
    let s = TestServer::start().await;
    for (digest, code) in [
        ("sha256:abc", "DIGEST_INVALID"),
        ("latest", "DIGEST_INVALID"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "UNSUPPORTED"),
    ] {
        let r = s.get(&format!("/v2/r/referrers/{digest}")).await;
        assert_error(r, 400, code).await;
    }
}

#[tokio::test]
async fn referrers_paginate_with_link() {
    let s = TestServer::start().await;
    let subject = push_subject(&s, "r").await;
    let mut all = Vec::new();
    for i in 0..5 {
        let fields = json!({"artifactType": SIG, "annotations": {"i": i.to_string()}});
        all.push(sha256(&push_referrer(&s, "r", fields, &subject).await));
    }
    all.sort();
    let digest = subject["digest"].as_str().unwrap();
    let first = format!("/v2/r/referrers/{digest}?n=2");
    let r = referrers(&s, "r", digest, "?n=2").await;
    let link = next_link(&r).expect("a next page");
    assert!(
        link.starts_with(&format!("/v2/r/referrers/{digest}?")),
        "{link}"
    );
    assert!(link.contains("n=2"), "{link}");
    let mut pages = Vec::new();
    let mut next = Some(first);
    while let Some(path) = next {
        let r = s.get(&path).await;
        assert_eq!(r.status(), 200);
        next = next_link(&r);
        let body: Value = r.json().await.unwrap();
        let digests: Vec<String> = body["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect();
        pages.push(digests);
        assert!(pages.len() < 10, "pagination does not end");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let mut seen = pages.concat();
    seen.sort();
    assert_eq!(seen, all);
}

#[tokio::test]
async fn referrers_follow_deletes_and_stay_in_their_repository() {
    let s = TestServer::start().await;
    let subject = push_subject(&s, "r").await;
    push_subject(&s, "r2").await;
    let digest = subject["digest"].as_str().unwrap();
    let keep = push_referrer(&s, "r", json!({"artifactType": SIG}), &subject).await;
    let gone = push_referrer(&s, "r", json!({"artifactType": SPDX}), &subject).await;
    // The same subject digest named from another repository.
    push_referrer(&s, "r2", json!({"artifactType": CYCLONEDX}), &subject).await;
    let r = s
        .delete(&format!("/v2/r/manifests/{}", sha256(&gone)))
        .await;
    assert_eq!(r.status(), 202);
    let body: Value = referrers(&s, "r", digest, "").await.json().await.unwrap();
    let manifests = body["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["digest"], sha256(&keep).as_str());
}

#[tokio::test]
async fn an_empty_artifact_type_counts_as_missing() {
    let s = TestServer::start().await;
    let subject = push_subject(&s, "r").await;
    let digest = subject["digest"].as_str().unwrap();
    let descriptor_of = |body: Value, d: String| {
        let found = body["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == d.as_str())
            .cloned();
        found.unwrap_or_else(|| panic!("{d} missing from {body}"))
    };
    // "If the artifactType is empty or missing in the image manifest, the value of
    // artifactType MUST be set to the config descriptor mediaType value."
    let cfg = s.push("r", b"{\"cfg\":1}").await;
    let config = json!({"mediaType": CYCLONEDX, "digest": cfg, "size": 9});
    let fields = json!({"artifactType": "", "config": config});
    let image = push_referrer(&s, "r", fields, &subject).await;
    let body: Value = referrers(&s, "r", digest, "").await.json().await.unwrap();
    assert_eq!(
        descriptor_of(body, sha256(&image))["artifactType"],
        CYCLONEDX
    );
    let filter = format!("?artifactType={}", enc(CYCLONEDX));
    let body: Value = referrers(&s, "r", digest, &filter)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        descriptor_of(body, sha256(&image))["artifactType"],
        CYCLONEDX
    );
    // "If the artifactType is empty or missing in an index, the artifactType MUST be omitted."
    let fields = json!({"mediaType": OCI_INDEX, "artifactType": "", "manifests": [],
                        "config": null, "layers": null});
    let index = push_referrer(&s, "r", fields, &subject).await;
    let body: Value = referrers(&s, "r", digest, "").await.json().await.unwrap();
    assert!(descriptor_of(body, sha256(&index))
        .get("artifactType")
        .is_none());
}
