//! Blob upload sessions: monolithic, single-PUT, chunked and streamed pushes, their errors, and
//! mounting. Resuming across a restart and concurrent use are in `upload_races.rs`.

use crate::common;

use common::*;

#[tokio::test]
async fn post_opens_a_session() {
    let s = TestServer::start().await;
    let r = s.post("/v2/ns/app/blobs/uploads/", b"").await;
    assert_eq!(r.status(), 202);
    let location = header(&r, "location").to_string();
    let id = location
        .strip_prefix("/v2/ns/app/blobs/uploads/")
        .unwrap_or_else(|| panic!("location {location}"));
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(header(&r, "docker-upload-uuid"), id);
    assert_eq!(header(&r, "range"), "0-0");
    assert_eq!(header(&r, "content-length"), "0");

    let r = s.get(&location).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), "0-0");
    assert_eq!(header(&r, "location"), location);
    assert_eq!(header(&r, "docker-upload-uuid"), id);
}

#[tokio::test]
async fn monolithic_post_creates_the_blob() {
    let s = TestServer::start().await;
    let content = sample(1, 2000);
    let digest = sha256(&content);
    let r = s
        .post(
            &format!("/v2/ns/app/blobs/uploads/?digest={digest}"),
            &content,
        )
        .await;
    assert_blob_created(&r, "ns/app", &digest);
    assert_eq!(s.pull("ns/app", &digest).await, content);
}

#[tokio::test]
async fn post_then_one_put_with_the_body() {
    let s = TestServer::start().await;
    let content = sample(2, 1500);
    let digest = sha256(&content);
    let location = s.upload("ns/app").await;
    let r = s.close(&location, &digest, &content).await;
    assert_blob_created(&r, "ns/app", &digest);
    assert_eq!(s.pull("ns/app", &digest).await, content);
    assert_error(s.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn chunked_patches_advance_the_range() {
    let s = TestServer::start().await;
    let content = sample(3, 3000);
    let digest = sha256(&content);
    let location = s.upload("ns/app").await;
    for (first, last) in [(0, 999), (1000, 1999), (2000, 2999)] {
        let r = s
            .patch(
                &location,
                Some(&format!("{first}-{last}")),
                &content[first..=last],
            )
            .await;
        assert_chunk_accepted(&r, &location, last + 1);
        let r = s.get(&location).await;
        assert_eq!(r.status(), 204);
        assert_eq!(header(&r, "range"), format!("0-{last}"));
    }
    let r = s.close(&location, &digest, b"").await;
    assert_blob_created(&r, "ns/app", &digest);
    assert_eq!(s.pull("ns/app", &digest).await, content);
}

#[tokio::test]
async fn out_of_order_and_overlapping_chunks_are_416() {
    let s = TestServer::start().await;
    let content = sample(4, 300);
    let location = s.upload("ns/app").await;
    let r = s.patch(&location, Some("0-99"), &content[..100]).await;
    assert_chunk_accepted(&r, &location, 100);
    // A gap, an overlap, and a repeat of the first chunk.
    for (range, first, last) in [("150-199", 150, 199), ("50-149", 50, 149), ("0-99", 0, 99)] {
        let r = s
            .patch(&location, Some(range), &content[first..=last])
            .await;
        assert_eq!(r.status(), 416, "{range}");
        assert_eq!(header(&r, "range"), "0-99", "{range}");
        check_error_body(&r.bytes().await.unwrap());
    }
    // The session is intact and continues where it was.
    let r = s.get(&location).await;
    assert_eq!(header(&r, "range"), "0-99");
    let r = s.patch(&location, Some("100-299"), &content[100..]).await;
    assert_chunk_accepted(&r, &location, 300);
    let digest = sha256(&content);
    assert_blob_created(&s.close(&location, &digest, b"").await, "ns/app", &digest);
    assert_eq!(s.pull("ns/app", &digest).await, content);
}

#[tokio::test]
async fn chunk_whose_length_disagrees_with_its_range_is_refused() {
    let s = TestServer::start().await;
    let location = s.upload("ns/app").await;
    let r = s.patch(&location, Some("0-9"), b"12345").await;
    assert_error(r, 400, "BLOB_UPLOAD_INVALID").await;
    assert_eq!(header(&s.get(&location).await, "range"), "0-0");
    let content = b"0123456789";
    let r = s.patch(&location, Some("0-9"), content).await;
    assert_chunk_accepted(&r, &location, 10);
}

#[tokio::test]
async fn streamed_patches_without_content_range() {
    let s = TestServer::start().await;
    let content = sample(5, 4000);
    let digest = sha256(&content);
    let location = s.upload("ns/app").await;
    let r = s.patch(&location, None, &content[..1000]).await;
    assert_chunk_accepted(&r, &location, 1000);
    // A body in chunked transfer encoding, with no Content-Length at all.
    let parts: Vec<Result<Vec<u8>, std::io::Error>> = content[1000..]
        .chunks(700)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let r = s
        .client
        .patch(s.url(&location))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(parts)))
        .send()
        .await
        .unwrap();
    assert_chunk_accepted(&r, &location, 4000);
    assert_blob_created(&s.close(&location, &digest, b"").await, "ns/app", &digest);
    assert_eq!(s.pull("ns/app", &digest).await, content);
}

#[tokio::test]
async fn put_carries_the_last_chunk() {
    let s = TestServer::start().await;
    let content = sample(6, 2500);
    let digest = sha256(&content);
    // With a Content-Range on the last chunk.
    let location = s.upload("ns/a").await;
    let r = s.patch(&location, Some("0-1999"), &content[..2000]).await;
    assert_chunk_accepted(&r, &location, 2000);
    let r = s
        .put(
            &with_digest(&location, &digest),
            Some("2000-2499"),
            &content[2000..],
        )
        .await;
    assert_blob_created(&r, "ns/a", &digest);
    assert_eq!(s.pull("ns/a", &digest).await, content);
    // And without one.
    let location = s.upload("ns/b").await;
    let r = s.patch(&location, None, &content[..10]).await;
    assert_chunk_accepted(&r, &location, 10);
    assert_blob_created(
        &s.close(&location, &digest, &content[10..]).await,
        "ns/b",
        &digest,
    );
    assert_eq!(s.pull("ns/b", &digest).await, content);
}

#[tokio::test]
async fn last_chunk_out_of_order_on_put_is_416_and_keeps_the_session() {
    let s = TestServer::start().await;
    let content = sample(7, 200);
    let digest = sha256(&content);
    let location = s.upload("ns/app").await;
    s.patch(&location, Some("0-99"), &content[..100]).await;
    let r = s
        .put(
            &with_digest(&location, &digest),
            Some("150-199"),
            &content[150..],
        )
        .await;
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "range"), "0-99");
    let r = s
        .put(
            &with_digest(&location, &digest),
            Some("100-199"),
            &content[100..],
        )
        .await;
    assert_blob_created(&r, "ns/app", &digest);
}

#[tokio::test]
async fn delete_cancels_the_session() {
    let s = TestServer::start().await;
    let location = s.upload("ns/app").await;
    s.patch(&location, Some("0-2"), b"abc").await;
    let r = s.delete(&location).await;
    assert_eq!(r.status(), 204);
    assert_error(s.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.patch(&location, Some("3-5"), b"def").await;
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.close(&location, &sha256(b"abc"), b"").await;
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.delete(&location).await;
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    // Nothing of the session is left in storage.
    assert_eq!(
        stored_in(s.data_dir(), "uploads").await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn unknown_and_garbage_upload_ids_are_blob_upload_unknown() {
    let s = TestServer::start().await;
    let real = s.upload("ns/app").await;
    let id = real.rsplit('/').next().unwrap().to_string();
    let digest = sha256(b"x");
    for bad in [
        "3f1c6d2e-0b7a-4c39-9f55-2a1e4b6c8d90".to_string(),
        "not-a-uuid".to_string(),
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{id}0"),
        "x".repeat(2000),
    ] {
        let location = format!("/v2/ns/app/blobs/uploads/{bad}");
        assert_error(s.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = s.patch(&location, Some("0-0"), b"x").await;
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = s.close(&location, &digest, b"x").await;
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = s.delete(&location).await;
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }
    assert_eq!(s.get(&real).await.status(), 204);
}

#[tokio::test]
async fn a_finished_session_is_gone() {
    let s = TestServer::start().await;
    let digest = sha256(b"done");
    let location = s.upload("ns/app").await;
    assert_blob_created(
        &s.close(&location, &digest, b"done").await,
        "ns/app",
        &digest,
    );
    let r = s.patch(&location, Some("4-7"), b"more").await;
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.patch(&location, None, b"more").await;
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    assert_error(s.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.close(&location, &digest, b"").await;
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn a_session_is_unknown_under_another_repository() {
    let s = TestServer::start().await;
    let content = b"owned by ns/a".to_vec();
    let digest = sha256(&content);
    let location = s.upload("ns/a").await;
    s.patch(&location, Some("0-4"), &content[..5]).await;
    let foreign = location.replacen("/v2/ns/a/", "/v2/ns/b/", 1);
    assert_error(s.get(&foreign).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.patch(&foreign, Some("5-12"), &content[5..]).await;
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.close(&foreign, &digest, &content[5..]).await;
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.delete(&foreign).await;
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;

    // The session in its own repository is untouched.
    assert_eq!(header(&s.get(&location).await, "range"), "0-4");
    assert_blob_created(
        &s.close(&location, &digest, &content[5..]).await,
        "ns/a",
        &digest,
    );
    let r = s.get(&format!("/v2/ns/b/blobs/{digest}")).await;
    assert_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn digest_mismatch_leaves_nothing_readable() {
    let s = TestServer::start().await;
    let content = b"actual bytes".to_vec();
    let claimed = sha256(b"claimed bytes");
    let location = s.upload("ns/app").await;
    s.patch(&location, None, &content).await;
    let r = s.close(&location, &claimed, b"").await;
    let body = assert_error(r, 400, "DIGEST_INVALID").await;
    assert_eq!(body["errors"][0]["detail"]["expected"], claimed.as_str());
    assert_eq!(
        body["errors"][0]["detail"]["actual"],
        sha256(&content).as_str()
    );
    // Monolithic as well.
    let r = s
        .post(
            &format!("/v2/ns/app/blobs/uploads/?digest={claimed}"),
            &content,
        )
        .await;
    assert_error(r, 400, "DIGEST_INVALID").await;
    for d in [&claimed, &sha256(&content)] {
        let r = s.head(&format!("/v2/ns/app/blobs/{d}")).await;
        assert_eq!(r.status(), 404, "{d}");
    }
    assert_eq!(stored_in(s.data_dir(), "blobs").await, Vec::<String>::new());
}

#[tokio::test]
async fn put_without_a_digest_is_digest_invalid() {
    let s = TestServer::start().await;
    let location = s.upload("ns/app").await;
    s.patch(&location, None, b"abc").await;
    let r = s.put(&location, None, b"def").await;
    assert_error(r, 400, "DIGEST_INVALID").await;
    // The session survives and can still be closed properly.
    assert_eq!(header(&s.get(&location).await, "range"), "0-2");
    let digest = sha256(b"abcdef");
    assert_blob_created(
        &s.close(&location, &digest, b"def").await,
        "ns/app",
        &digest,
    );
}

#[tokio::test]
async fn unsupported_and_malformed_digests_are_refused() {
    let s = TestServer::start().await;
    let cases = [
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "UNSUPPORTED"),
        ("sha256:abc", "DIGEST_INVALID"),
        (
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "DIGEST_INVALID",
        ),
        ("sha256", "DIGEST_INVALID"),
        (
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "DIGEST_INVALID",
        ),
    ];
    let location = s.upload("ns/app").await;
    for (digest, code) in cases {
        let r = s.close(&location, digest, b"x").await;
        assert_error(r, 400, code).await;
        let r = s
            .post(&format!("/v2/ns/app/blobs/uploads/?digest={digest}"), b"x")
            .await;
        assert_error(r, 400, code).await;
    }
    let r = s
        .post("/v2/ns/app/blobs/uploads/?digest-algorithm=md5", b"")
        .await;
    assert_error(r, 400, "UNSUPPORTED").await;
    // None of that touched the session.
    assert_eq!(header(&s.get(&location).await, "range"), "0-0");
}

#[tokio::test]
async fn mount_from_a_repository_holding_the_blob() {
    let s = TestServer::start().await;
    let content = sample(8, 900);
    let digest = s.push("src/repo", &content).await;
    let r = s
        .post(
            &format!("/v2/dst/repo/blobs/uploads/?mount={digest}&from=src/repo"),
            b"",
        )
        .await;
    assert_blob_created(&r, "dst/repo", &digest);
    assert_eq!(s.pull("dst/repo", &digest).await, content);
    // The mount is a link of its own: deleting the source's keeps it.
    let r = s.delete(&format!("/v2/src/repo/blobs/{digest}")).await;
    assert_eq!(r.status(), 202);
    assert_eq!(s.pull("dst/repo", &digest).await, content);
}

#[tokio::test]
async fn mount_from_a_repository_without_the_blob_opens_a_session() {
    let s = TestServer::start().await;
    let content = sample(9, 100);
    let digest = s.push("holder", &content).await;
    s.push("empty/one", b"unrelated").await;
    for (target, from) in [("dst/one", "empty/one"), ("dst/two", "does/not/exist")] {
        let r = s
            .post(
                &format!("/v2/{target}/blobs/uploads/?mount={digest}&from={from}"),
                b"",
            )
            .await;
        assert_eq!(r.status(), 202, "from {from}");
        let location = header(&r, "location").to_string();
        assert!(
            location.starts_with(&format!("/v2/{target}/blobs/uploads/")),
            "{location}"
        );
        assert_eq!(header(&r, "range"), "0-0");
        let r = s.head(&format!("/v2/{target}/blobs/{digest}")).await;
        assert_eq!(r.status(), 404, "nothing was mounted into {target}");
        // The session is an ordinary one.
        assert_blob_created(
            &s.close(&location, &digest, &content).await,
            target,
            &digest,
        );
    }
}

#[tokio::test]
async fn mount_without_from_finds_the_blob() {
    let s = TestServer::start().await;
    let content = sample(10, 100);
    let digest = s.push("somewhere/else", &content).await;
    let r = s
        .post(&format!("/v2/dst/blobs/uploads/?mount={digest}"), b"")
        .await;
    assert_blob_created(&r, "dst", &digest);
    assert_eq!(s.pull("dst", &digest).await, content);
    // A digest no repository holds opens a session instead.
    let r = s
        .post(
            &format!("/v2/dst/blobs/uploads/?mount={}", sha256(b"none")),
            b"",
        )
        .await;
    assert_eq!(r.status(), 202);
    assert!(header(&r, "location").starts_with("/v2/dst/blobs/uploads/"));
}

#[tokio::test]
async fn mount_parameters_are_validated() {
    let s = TestServer::start().await;
    let digest = s.push("src", b"abc").await;
    let r = s
        .post(
            &format!("/v2/dst/blobs/uploads/?mount={digest}&from=Bad/Name"),
            b"",
        )
        .await;
    assert_error(r, 400, "NAME_INVALID").await;
    let r = s
        .post("/v2/dst/blobs/uploads/?mount=sha256:abc&from=src", b"")
        .await;
    assert_error(r, 400, "DIGEST_INVALID").await;
}
