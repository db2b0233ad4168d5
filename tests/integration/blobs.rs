//! Reading, ranging and deleting blobs, their isolation between repositories, and sha512 blobs.

use crate::common;

use common::*;

/// GETs a blob with a `Range` header.
async fn get_range(s: &TestServer, repo: &str, digest: &str, range: &str) -> reqwest::Response {
    s.client
        .get(s.url(&format!("/v2/{repo}/blobs/{digest}")))
        .header("range", range)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn get_returns_bytes_with_length_digest_and_type() {
    let s = TestServer::start().await;
    let content = sample(1, 1000);
    let digest = s.push("lib/app", &content).await;
    let r = s.get(&format!("/v2/lib/app/blobs/{digest}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "1000");
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(header(&r, "content-type"), "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap(), content);
}

#[tokio::test]
async fn head_returns_the_headers_without_a_body() {
    let s = TestServer::start().await;
    let content = sample(2, 777);
    let digest = s.push("lib/app", &content).await;
    let r = s.head(&format!("/v2/lib/app/blobs/{digest}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "777");
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(header(&r, "content-type"), "application/octet-stream");
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn empty_blob_round_trips() {
    let s = TestServer::start().await;
    let digest = s.push("lib/app", b"").await;
    assert_eq!(
        digest,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let r = s.get(&format!("/v2/lib/app/blobs/{digest}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "0");
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_blob_is_blob_unknown() {
    let s = TestServer::start().await;
    s.push("lib/app", b"something else").await;
    let missing = sha256(b"never pushed");
    for repo in ["lib/app", "no/such/repo"] {
        let url = format!("/v2/{repo}/blobs/{missing}");
        let r = s.get(&url).await;
        let body = assert_error(r, 404, "BLOB_UNKNOWN").await;
        assert_eq!(body["errors"][0]["detail"]["digest"], missing.as_str());
        let r = s.head(&url).await;
        assert_eq!(r.status(), 404);
        assert!(r.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn closed_ranges_return_partial_content() {
    let s = TestServer::start().await;
    let content = sample(3, 1000);
    let digest = s.push("r", &content).await;
    // (Range, first byte, last byte): closed, single byte, and an end past the blob, which
    // is cut to the last byte.
    for (range, first, last) in [
        ("bytes=10-19", 10, 19),
        ("bytes=0-0", 0, 0),
        ("bytes=999-999", 999, 999),
        ("bytes=900-5000", 900, 999),
    ] {
        let r = get_range(&s, "r", &digest, range).await;
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            header(&r, "content-range"),
            format!("bytes {first}-{last}/1000"),
            "{range}"
        );
        assert_eq!(
            header(&r, "content-length"),
            (last - first + 1).to_string(),
            "{range}"
        );
        assert_eq!(header(&r, "docker-content-digest"), digest);
        assert_eq!(r.bytes().await.unwrap(), content[first..=last], "{range}");
    }
}

#[tokio::test]
async fn open_ended_and_suffix_ranges_return_partial_content() {
    let s = TestServer::start().await;
    let content = sample(4, 1000);
    let digest = s.push("r", &content).await;
    for (range, first) in [
        ("bytes=990-", 990),
        ("bytes=0-", 0),
        ("bytes=-25", 975),
        ("bytes=-1", 999),
        // A suffix longer than the blob selects all of it (RFC 9110 section 14.1.2).
        ("bytes=-5000", 0),
    ] {
        let r = get_range(&s, "r", &digest, range).await;
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            header(&r, "content-range"),
            format!("bytes {first}-999/1000"),
            "{range}"
        );
        assert_eq!(
            header(&r, "content-length"),
            (1000 - first).to_string(),
            "{range}"
        );
        assert_eq!(r.bytes().await.unwrap(), content[first..], "{range}");
    }
}

#[tokio::test]
async fn ranges_cross_read_buffer_boundaries_of_a_large_blob() {
    let s = TestServer::start().await;
    let content = sample(5, 3 * 1024 * 1024 + 17);
    let digest = s.push("big", &content).await;
    let (first, last) = (512 * 1024 - 3, 2 * 1024 * 1024 + 5);
    let r = get_range(&s, "big", &digest, &format!("bytes={first}-{last}")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {first}-{last}/{}", content.len())
    );
    assert_eq!(r.bytes().await.unwrap(), content[first..=last]);
    assert_eq!(s.pull("big", &digest).await, content);
}

#[tokio::test]
async fn unsatisfiable_ranges_are_416_with_the_size() {
    let s = TestServer::start().await;
    let content = sample(6, 1000);
    let digest = s.push("r", &content).await;
    for range in [
        "bytes=1000-",
        "bytes=1000-1001",
        "bytes=5000-6000",
        "bytes=-0",
    ] {
        let r = get_range(&s, "r", &digest, range).await;
        assert_eq!(r.status(), 416, "{range}");
        assert_eq!(header(&r, "content-range"), "bytes */1000", "{range}");
        check_error_body(&r.bytes().await.unwrap());
    }
    let empty = s.push("r", b"").await;
    for range in ["bytes=0-", "bytes=0-0", "bytes=-1"] {
        let r = get_range(&s, "r", &empty, range).await;
        assert_eq!(r.status(), 416, "empty blob, {range}");
        assert_eq!(header(&r, "content-range"), "bytes */0", "{range}");
    }
}

#[tokio::test]
async fn ranges_berth_does_not_serve_return_the_whole_blob() {
    let s = TestServer::start().await;
    let content = sample(7, 100);
    let digest = s.push("r", &content).await;
    // Several ranges and other units may be ignored (RFC 9110 section 14.2).
    for range in ["bytes=0-1,3-4", "items=0-1"] {
        let r = get_range(&s, "r", &digest, range).await;
        assert_eq!(r.status(), 200, "{range}");
        assert!(r.headers().get("content-range").is_none(), "{range}");
        assert_eq!(r.bytes().await.unwrap(), content, "{range}");
    }
}

#[tokio::test]
async fn delete_makes_the_blob_unknown_in_that_repository_only() {
    let s = TestServer::start().await;
    let content = sample(8, 300);
    let digest = s.push("team/a", &content).await;
    s.push("team/b", &content).await;
    let url = format!("/v2/team/a/blobs/{digest}");
    let r = s.delete(&url).await;
    assert_eq!(r.status(), 202);
    assert!(r.bytes().await.unwrap().is_empty());

    let r = s.get(&url).await;
    assert_error(r, 404, "BLOB_UNKNOWN").await;
    let r = s.head(&url).await;
    assert_eq!(r.status(), 404);
    let r = s.delete(&url).await;
    assert_error(r, 404, "BLOB_UNKNOWN").await;

    // The same content in another repository is untouched.
    assert_eq!(s.pull("team/b", &digest).await, content);
    // Pushing it again makes it readable again.
    s.push("team/a", &content).await;
    assert_eq!(s.pull("team/a", &digest).await, content);
}

#[tokio::test]
async fn delete_of_an_unknown_blob_is_blob_unknown() {
    let s = TestServer::start().await;
    let r = s.delete(&format!("/v2/x/blobs/{}", sha256(b"nope"))).await;
    assert_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn a_blob_is_readable_only_in_the_repository_it_was_pushed_to() {
    let s = TestServer::start().await;
    let content = sample(9, 64);
    let digest = s.push("org/one", &content).await;
    s.push("org/two", b"other").await;
    // A sibling, the parent and a child of the name are all other repositories.
    for repo in ["org/two", "org", "org/one/sub", "other"] {
        let url = format!("/v2/{repo}/blobs/{digest}");
        let r = s.get(&url).await;
        assert_error(r, 404, "BLOB_UNKNOWN").await;
        let r = s.head(&url).await;
        assert_eq!(r.status(), 404, "HEAD in {repo}");
        let r = s.delete(&url).await;
        assert_error(r, 404, "BLOB_UNKNOWN").await;
    }
    assert_eq!(s.pull("org/one", &digest).await, content);
}

#[tokio::test]
async fn sha512_upload_session_round_trips() {
    let s = TestServer::start().await;
    let content = sample(10, 5000);
    let digest = sha512(&content);
    let r = s
        .post("/v2/h/s512/blobs/uploads/?digest-algorithm=sha512", b"")
        .await;
    assert_eq!(r.status(), 202);
    let location = header(&r, "location").to_string();
    // Two chunks, then the close.
    let r = s
        .client
        .patch(s.url(&location))
        .header("content-range", "0-2999")
        .body(content[..3000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-2999");
    let r = s
        .client
        .put(s.url(&with_digest(&location, &digest)))
        .body(content[3000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(header(&r, "location"), format!("/v2/h/s512/blobs/{digest}"));

    let r = s.get(&format!("/v2/h/s512/blobs/{digest}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(header(&r, "content-length"), "5000");
    assert_eq!(r.bytes().await.unwrap(), content);
    let r = get_range(&s, "h/s512", &digest, "bytes=-10").await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), content[4990..]);
}

#[tokio::test]
async fn sha512_monolithic_push_round_trips() {
    let s = TestServer::start().await;
    let content = sample(11, 4096);
    let digest = sha512(&content);
    let r = s
        .post(
            &format!("/v2/h/s512/blobs/uploads/?digest={digest}"),
            &content,
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(header(&r, "location"), format!("/v2/h/s512/blobs/{digest}"));
    assert_eq!(s.pull("h/s512", &digest).await, content);
    // The bytes are known by the digest they were pushed under, not by their sha256.
    let r = s
        .get(&format!("/v2/h/s512/blobs/{}", sha256(&content)))
        .await;
    assert_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn sha512_mismatch_is_digest_invalid() {
    let s = TestServer::start().await;
    let wrong = sha512(b"not this");
    let r = s
        .post(
            &format!("/v2/h/s512/blobs/uploads/?digest={wrong}"),
            b"these bytes",
        )
        .await;
    assert_error(r, 400, "DIGEST_INVALID").await;
    for d in [wrong, sha512(b"these bytes")] {
        let r = s.get(&format!("/v2/h/s512/blobs/{d}")).await;
        assert_error(r, 404, "BLOB_UNKNOWN").await;
    }
}

#[tokio::test]
async fn blob_digests_in_the_path_are_validated() {
    let s = TestServer::start().await;
    for (digest, status, code) in [
        ("sha256:abc", 400, "DIGEST_INVALID"),
        (
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            400,
            "DIGEST_INVALID",
        ),
        ("nocolon", 400, "DIGEST_INVALID"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", 400, "UNSUPPORTED"),
    ] {
        let url = format!("/v2/x/blobs/{digest}");
        let r = s.get(&url).await;
        assert_error(r, status, code).await;
        let r = s.delete(&url).await;
        assert_error(r, status, code).await;
    }
}
