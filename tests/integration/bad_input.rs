//! Malformed requests: invalid names, wrong methods, unknown paths, bad ranges and lengths, huge
//! headers. Each must be refused with a 4xx (never a 5xx), with an OCI error body when berth
//! itself answers, and must leave the data directory and the catalog exactly as they were.
//!
//! Requests go over a raw connection, because reqwest would normalize `..`, `%2e` and `//`
//! away and refuses to send invalid headers.

use crate::common;

use std::collections::BTreeMap;

use common::*;

/// A server holding one image and one upload session with ten bytes in it.
struct Fixture {
    s: TestServer,
    /// Path of the open upload session in `seed/repo`.
    upload: String,
    /// A blob readable in `seed/repo`.
    blob: String,
    before: (BTreeMap<String, u64>, Vec<String>),
}

async fn fixture() -> Fixture {
    let s = TestServer::start().await;
    push_image(&s.client, &s.base, "seed/repo", "v1", b"seed layer").await;
    let blob = sha256(b"seed layer");
    let upload = s.upload("seed/repo").await;
    let r = s.patch(&upload, Some("0-9"), b"0123456789").await;
    assert_eq!(r.status(), 202);
    let before = state(&s).await;
    Fixture {
        s,
        upload,
        blob,
        before,
    }
}

/// What a refused request must not change: every file under the data directory (except the
/// database) with its size, and the catalog.
async fn state(s: &TestServer) -> (BTreeMap<String, u64>, Vec<String>) {
    (data_files(s.data_dir()), catalog(&s.client, &s.base).await)
}

impl Fixture {
    /// Sends a request and checks the reply: `status`, an OCI error body (with `code`, when
    /// given) unless the method is HEAD, and no change to the stored state.
    async fn expect(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        status: u16,
        code: Option<&str>,
    ) -> RawResponse {
        let what = format!("{method} {}", &target[..target.len().min(120)]);
        let r = raw(&self.s.base, method, target, headers, body).await;
        assert!(r.status < 500, "{what}: server error {}", r.status);
        assert_eq!(
            r.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        if method != "HEAD" {
            assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
            let v = check_error_body(&r.body);
            if let Some(code) = code {
                assert_eq!(v["errors"][0]["code"], code, "{what}");
            }
        }
        self.assert_unchanged(&what).await;
        r
    }

    /// Like [`Fixture::expect`] for requests the HTTP layer refuses before berth sees them:
    /// those replies have an empty body, which the distribution spec allows for a 4xx.
    async fn expect_refused_by_http(&self, request: &[u8], status: u16, what: &str) {
        let r = raw_send(&self.s.base, request).await;
        assert_eq!(r.status, status, "{what}");
        assert!(r.body.is_empty(), "{what}: {:?}", r.body);
        self.assert_unchanged(what).await;
    }

    async fn assert_unchanged(&self, what: &str) {
        assert_eq!(
            state(&self.s).await,
            self.before,
            "{what} changed stored state"
        );
    }
}

/// The endpoints that carry a repository name: (method, path after the name, body).
fn named_endpoints(digest: &str, upload_id: &str) -> Vec<(&'static str, String, Vec<u8>)> {
    let manifest = image_manifest((digest, 10), &[]);
    vec![
        ("GET", "/tags/list".into(), vec![]),
        ("GET", "/manifests/v1".into(), vec![]),
        ("HEAD", "/manifests/v1".into(), vec![]),
        ("PUT", "/manifests/v1".into(), manifest),
        ("DELETE", "/manifests/v1".into(), vec![]),
        ("GET", format!("/blobs/{digest}"), vec![]),
        ("HEAD", format!("/blobs/{digest}"), vec![]),
        ("DELETE", format!("/blobs/{digest}"), vec![]),
        ("POST", "/blobs/uploads/".into(), vec![]),
        (
            "POST",
            format!("/blobs/uploads/?digest={digest}"),
            b"seed layer".to_vec(),
        ),
        (
            "POST",
            format!("/blobs/uploads/?mount={digest}&from=seed/repo"),
            vec![],
        ),
        ("GET", format!("/blobs/uploads/{upload_id}"), vec![]),
        (
            "PATCH",
            format!("/blobs/uploads/{upload_id}"),
            b"abc".to_vec(),
        ),
        (
            "PUT",
            format!("/blobs/uploads/{upload_id}?digest={digest}"),
            vec![],
        ),
        ("DELETE", format!("/blobs/uploads/{upload_id}"), vec![]),
        ("GET", format!("/referrers/{digest}"), vec![]),
    ]
}

#[tokio::test]
async fn invalid_repository_names_are_name_invalid_on_every_endpoint() {
    let f = fixture().await;
    let id = f.upload.rsplit('/').next().unwrap().to_string();
    let long_components = "abcdefg/".repeat(32) + "abcdefg"; // 263 characters.
    let names = [
        "Seed/repo",
        "seed/Repo",
        "..",
        "seed/../repo",
        "seed/..",
        "%2e%2e",
        "seed/%2e%2e/repo",
        "seed%2frepo",
        "/seed/repo",
        "seed//repo",
        "seed/repo/",
        "./seed",
        "-seed",
        "seed_-repo",
        "seed%20repo",
        "seed:repo",
        &"a".repeat(256),
        &long_components,
    ];
    for name in names {
        for (method, rest, body) in named_endpoints(&f.blob, &id) {
            let target = format!("/v2/{name}{rest}");
            f.expect(method, &target, &[], &body, 400, Some("NAME_INVALID"))
                .await;
        }
    }
    // The longest valid name is merely unknown.
    let longest = "a".repeat(255);
    let target = format!("/v2/{longest}/tags/list");
    f.expect("GET", &target, &[], b"", 404, Some("NAME_UNKNOWN"))
        .await;
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let f = fixture().await;
    let (blob, upload) = (&f.blob, &f.upload);
    let cases = [
        ("POST", "/v2/".to_string()),
        ("DELETE", "/v2/".to_string()),
        ("POST", "/v2/_catalog".to_string()),
        ("DELETE", "/v2/_catalog".to_string()),
        ("PUT", "/v2/seed/repo/tags/list".to_string()),
        ("DELETE", "/v2/seed/repo/tags/list".to_string()),
        ("POST", "/v2/seed/repo/manifests/v1".to_string()),
        ("PATCH", "/v2/seed/repo/manifests/v1".to_string()),
        ("POST", format!("/v2/seed/repo/blobs/{blob}")),
        ("PUT", format!("/v2/seed/repo/blobs/{blob}")),
        ("PATCH", format!("/v2/seed/repo/blobs/{blob}")),
        ("GET", "/v2/seed/repo/blobs/uploads/".to_string()),
        ("PUT", "/v2/seed/repo/blobs/uploads/".to_string()),
        ("DELETE", "/v2/seed/repo/blobs/uploads/".to_string()),
        ("POST", upload.clone()),
        ("HEAD", upload.clone()),
        ("DELETE", format!("/v2/seed/repo/referrers/{blob}")),
        ("OPTIONS", "/v2/seed/repo/tags/list".to_string()),
        ("PROPFIND", "/v2/seed/repo/tags/list".to_string()),
    ];
    for (method, target) in cases {
        f.expect(method, &target, &[], b"", 405, Some("UNSUPPORTED"))
            .await;
    }
}

#[tokio::test]
async fn method_not_allowed_lists_the_allowed_methods() {
    let f = fixture().await;
    let r = f
        .expect("POST", "/v2/seed/repo/tags/list", &[], b"", 405, None)
        .await;
    let allow = r.header("allow").expect("an Allow header");
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn unknown_paths_are_404_with_an_error_body() {
    let f = fixture().await;
    let id = f.upload.rsplit('/').next().unwrap();
    for (method, target) in [
        ("GET", "/v2/seed".to_string()),
        ("GET", "/v2/seed/repo".to_string()),
        ("GET", "/v2/seed/repo/nothing".to_string()),
        ("PUT", "/v2/seed/repo/nothing".to_string()),
        ("GET", "/v2/tags/list".to_string()),
        ("GET", "/v2/_catalog/extra".to_string()),
        ("GET", "/v2/seed/repo/blobs".to_string()),
        ("GET", "/v2/seed/repo/manifests".to_string()),
        ("GET", "/v2/seed/repo/tags/list/extra".to_string()),
        ("GET", "/v2/seed/repo/referrers".to_string()),
        ("PATCH", format!("/v2/seed/repo/blobs/uploads/{id}/extra")),
    ] {
        f.expect(method, &target, &[], b"", 404, None).await;
    }
    // An empty reference names no manifest.
    let target = "/v2/seed/repo/manifests/";
    f.expect("GET", target, &[], b"", 404, Some("MANIFEST_UNKNOWN"))
        .await;
}

#[tokio::test]
async fn malformed_content_ranges_are_416_and_change_nothing() {
    let f = fixture().await;
    let upload = f.upload.clone();
    let close = format!("{upload}?digest={}", sha256(b"0123456789abcdefghij"));
    for range in [
        "abc",
        "bytes=",
        "10-",
        "-19",
        "19-10",
        "10-19-20",
        "0x0a-19",
        "10-99999999999999999999999",
        "10 - 19",
        // Well-formed but not where the upload stands.
        "0-9",
        "11-20",
    ] {
        for (method, target) in [("PATCH", &upload), ("PUT", &close)] {
            let r = f
                .expect(
                    method,
                    target,
                    &[("Content-Range", range)],
                    b"abcdefghij",
                    416,
                    None,
                )
                .await;
            assert_eq!(r.header("range"), Some("0-9"), "{method} {range}");
        }
    }
    // A range whose length disagrees with the body.
    let headers = [("Content-Range", "10-19")];
    f.expect(
        "PATCH",
        &upload,
        &headers,
        b"abcde",
        400,
        Some("BLOB_UPLOAD_INVALID"),
    )
    .await;
}

#[tokio::test]
async fn a_malformed_chunked_body_is_refused_and_the_upload_is_unchanged() {
    let f = fixture().await;
    let headers = [("Transfer-Encoding", "chunked")];
    // One good chunk, then garbage where the next chunk size belongs.
    let body = b"5\r\nabcde\r\nzz\r\n";
    f.expect(
        "PATCH",
        &f.upload,
        &headers,
        body,
        400,
        Some("BLOB_UPLOAD_INVALID"),
    )
    .await;
    let r = f.s.get(&f.upload).await;
    assert_eq!(header(&r, "range"), "0-9");
}

#[tokio::test]
async fn invalid_content_lengths_are_refused_by_the_http_layer() {
    let f = fixture().await;
    let host = f.s.base.strip_prefix("http://").unwrap().to_string();
    for (what, lengths) in [
        ("not a number", vec!["abc"]),
        ("negative", vec!["-1"]),
        ("signed", vec!["+10"]),
        ("a list", vec!["10, 11"]),
        ("overflowing", vec!["99999999999999999999999"]),
        ("two that disagree", vec!["10", "11"]),
    ] {
        for target in [f.upload.as_str(), "/v2/seed/repo/blobs/uploads/"] {
            let mut req =
                format!("PATCH {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
            if target.ends_with('/') {
                req = req.replacen("PATCH", "POST", 1);
            }
            for l in &lengths {
                req.push_str(&format!("Content-Length: {l}\r\n"));
            }
            req.push_str("\r\n0123456789");
            f.expect_refused_by_http(req.as_bytes(), 400, what).await;
        }
    }
}

#[tokio::test]
async fn huge_header_values_are_refused_cleanly() {
    let f = fixture().await;
    let huge = "9".repeat(60_000);
    let range = format!("10-{huge}");
    f.expect(
        "PATCH",
        &f.upload,
        &[("Content-Range", &range)],
        b"x",
        416,
        None,
    )
    .await;
    let content_type = format!("application/vnd.{}+json", "x".repeat(60_000));
    let manifest = image_manifest((&f.blob, 10), &[]);
    let target = "/v2/seed/repo/manifests/v2";
    let headers = [("Content-Type", content_type.as_str())];
    f.expect(
        "PUT",
        target,
        &headers,
        &manifest,
        400,
        Some("MANIFEST_INVALID"),
    )
    .await;
    let filler = "f".repeat(60_000);
    let headers = [("X-Filler", filler.as_str())];
    f.expect(
        "GET",
        "/v2/Bad/tags/list",
        &headers,
        b"",
        400,
        Some("NAME_INVALID"),
    )
    .await;
    let target = format!("/v2/seed/repo/blobs/uploads/?digest=sha256:{huge}");
    f.expect("POST", &target, &[], b"x", 400, Some("DIGEST_INVALID"))
        .await;
    let target = format!("/v2/{}/tags/list", "a".repeat(60_000));
    let r = f
        .expect("GET", &target, &[], b"", 400, Some("NAME_INVALID"))
        .await;
    assert!(r.body.len() < 2_000, "the echoed name is cut short");

    // Past the HTTP layer's limits: a 1 MB header, 150 headers, a 70 kB path.
    let host = f.s.base.strip_prefix("http://").unwrap().to_string();
    let start =
        format!("GET /v2/seed/repo/tags/list HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    let big = format!("{start}X-Big: {}\r\n\r\n", "b".repeat(1_000_000));
    f.expect_refused_by_http(big.as_bytes(), 431, "1 MB header")
        .await;
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("{start}{many}\r\n");
    f.expect_refused_by_http(many.as_bytes(), 431, "150 headers")
        .await;
    let long = format!(
        "GET /v2/{}/tags/list HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        "a".repeat(70_000)
    );
    f.expect_refused_by_http(long.as_bytes(), 414, "70 kB path")
        .await;
}

#[tokio::test]
async fn refused_requests_to_a_new_repository_do_not_create_it() {
    let f = fixture().await;
    let unknown = sha256(b"unknown");
    let id = "3f1c6d2e-0b7a-4c39-9f55-2a1e4b6c8d90";
    let md5 = "md5:d41d8cd98f00b204e9800998ecf8427e";
    // "METHOD path-after-the-name STATUS CODE", each sent with a one-byte body.
    let cases = [
        "DELETE manifests/v1 404 MANIFEST_UNKNOWN".to_string(),
        format!("DELETE blobs/{unknown} 404 BLOB_UNKNOWN"),
        format!("POST blobs/uploads/?digest={md5} 400 UNSUPPORTED"),
        "POST blobs/uploads/?digest=sha256:abc 400 DIGEST_INVALID".into(),
        "POST blobs/uploads/?digest-algorithm=md5 400 UNSUPPORTED".into(),
        format!("POST blobs/uploads/?mount={unknown}&from=No 400 NAME_INVALID"),
        "POST blobs/uploads/?mount=sha256:abc 400 DIGEST_INVALID".into(),
        format!("PATCH blobs/uploads/{id} 404 BLOB_UPLOAD_UNKNOWN"),
        format!("PUT blobs/uploads/{id}?digest={unknown} 404 BLOB_UPLOAD_UNKNOWN"),
    ];
    for case in &cases {
        let [method, rest, status, code] = case.split(' ').collect::<Vec<_>>()[..] else {
            panic!("bad case {case}");
        };
        let target = format!("/v2/fresh/repo/{rest}");
        let status = status.parse().unwrap();
        f.expect(method, &target, &[], b"x", status, Some(code))
            .await;
    }
    let ct = [("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
    let unknown_blobs = image_manifest((&unknown, 10), &[]);
    for (tag, body, code) in [
        ("v1", &b"{not json"[..], "MANIFEST_INVALID"),
        ("v1", &unknown_blobs, "MANIFEST_BLOB_UNKNOWN"),
        (".bad", b"{}", "MANIFEST_INVALID"),
    ] {
        let target = format!("/v2/fresh/repo/manifests/{tag}");
        f.expect("PUT", &target, &ct, body, 400, Some(code)).await;
    }
}
