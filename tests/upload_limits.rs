//! What upload sessions may cost: the in-memory lock of a session exists only while a request
//! uses it.

mod common;

use common::*;

/// A fresh, well-formed upload id that no session has.
fn unknown_upload(repo: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{}", uuid::Uuid::new_v4())
}

/// Each `DELETE` of an unknown upload (answered 404) left an entry in the upload-slot map, and
/// so did every session a client abandoned after a chunk: 120,000 such requests held 55 MiB.
#[tokio::test]
async fn upload_slots_live_only_while_a_request_uses_them() {
    let s = TestServer::start().await;
    let slots = || s.state().registry.upload_slots_in_use();
    s.push("ns/app", b"makes the repository").await;
    let digest = sha256(b"never sent");
    for _ in 0..50 {
        let location = unknown_upload("ns/app");
        assert_error(s.delete(&location).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
        assert_error(
            s.patch(&location, Some("0-3"), b"data").await,
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
        assert_error(
            s.put(&with_digest(&location, &digest), None, b"").await,
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
        assert_error(s.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }
    assert_eq!(slots(), 0, "unknown uploads left slots behind");

    // Sessions a client abandons after some chunks keep their rows and bytes (until garbage
    // collection expires them) but no memory.
    for seed in 0..5 {
        let location = s.upload("ns/app").await;
        let chunk = sample(seed, 100);
        assert_chunk_accepted(
            &s.patch(&location, Some("0-99"), &chunk).await,
            &location,
            100,
        );
    }
    assert_eq!(slots(), 0, "abandoned sessions left slots behind");

    // Finished, cancelled and monolithic uploads leave none either.
    let content = sample(9, 300);
    let location = s.upload("ns/app").await;
    s.patch(&location, Some("0-99"), &content[..100]).await;
    let r = s.close(&location, &sha256(&content), &content[100..]).await;
    assert_blob_created(&r, "ns/app", &sha256(&content));
    let location = s.upload("ns/app").await;
    assert_eq!(s.delete(&location).await.status(), 204);
    s.push("ns/app", b"monolithic").await;
    assert_eq!(slots(), 0);
}
