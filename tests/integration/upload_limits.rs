//! What upload sessions may cost: the in-memory lock of a session exists only while a request
//! uses it, and the configured limits (open sessions per account and per repository, the
//! largest blob, tags per manifest push) are enforced with the OCI error that fits.

use crate::common;

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

/// Settings with these limits and the defaults otherwise.
fn with_limits(edit: impl FnOnce(&mut berth::config::Limits)) -> berth::config::Settings {
    let mut settings = berth::config::Settings::default();
    edit(&mut settings.limits);
    settings
}

/// `POST` an upload session in `repo` as `client`; the reply.
async fn open_session(client: &reqwest::Client, base: &str, repo: &str) -> reqwest::Response {
    client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("POST upload")
}

/// Asserts a 429 `TOOMANYREQUESTS` naming the limit.
async fn assert_too_many(r: reqwest::Response, limit: u32, per: &str) {
    let body = assert_error(r, 429, "TOOMANYREQUESTS").await;
    assert_eq!(body["errors"][0]["detail"]["limit"], limit, "{body}");
    assert_eq!(body["errors"][0]["detail"]["per"], per, "{body}");
}

/// One user opened 5,000 upload sessions in 15 s, each a file and a row kept for a day.
#[tokio::test]
async fn upload_sessions_are_limited_per_account_and_freed_when_they_end() {
    let s = TestServer::start_with(with_limits(|l| l.uploads_per_account = 3)).await;
    let alice = s.create_user("alice").await;
    let bob = s.create_user("bob").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let r = open_session(&alice, &s.base, "alice/app").await;
        assert_eq!(r.status(), 202);
        open.push(header(&r, "location").to_string());
    }
    // Every way of opening one more is refused, in any repository of hers.
    assert_too_many(
        open_session(&alice, &s.base, "alice/app").await,
        3,
        "account",
    )
    .await;
    assert_too_many(
        open_session(&alice, &s.base, "alice/other").await,
        3,
        "account",
    )
    .await;
    let digest = sha256(b"one more");
    let r = alice
        .post(format!(
            "{}/v2/alice/app/blobs/uploads/?digest={digest}",
            s.base
        ))
        .body(&b"one more"[..])
        .send()
        .await
        .unwrap();
    assert_too_many(r, 3, "account").await;
    // A refused first push leaves no repository behind.
    let r = alice
        .get(format!("{}/v2/alice/other/tags/list", s.base))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "NAME_UNKNOWN").await;
    // Another account is not affected.
    assert_eq!(open_session(&bob, &s.base, "bob/app").await.status(), 202);

    // A cancelled session frees its place.
    let cancelled = open.pop().unwrap();
    let r = alice
        .delete(format!("{}{cancelled}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = open_session(&alice, &s.base, "alice/app").await;
    assert_eq!(r.status(), 202);
    open.push(header(&r, "location").to_string());
    assert_too_many(
        open_session(&alice, &s.base, "alice/app").await,
        3,
        "account",
    )
    .await;

    // So does a finished one.
    let finished = open.pop().unwrap();
    let content = b"finished";
    let r = alice
        .put(format!(
            "{}{}",
            s.base,
            with_digest(&finished, &sha256(content))
        ))
        .body(&content[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        open_session(&alice, &s.base, "alice/app").await.status(),
        202
    );

    // And one garbage collection expires.
    let expire = berth::gc::GcSettings {
        upload_max_age: std::time::Duration::ZERO,
        ..berth::gc::GcSettings::default()
    };
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.collector()
        .await
        .run(&expire, false, &|_| {})
        .await
        .expect("gc");
    for _ in 0..3 {
        assert_eq!(
            open_session(&alice, &s.base, "alice/app").await.status(),
            202
        );
    }
    assert_too_many(
        open_session(&alice, &s.base, "alice/app").await,
        3,
        "account",
    )
    .await;
}

#[tokio::test]
async fn upload_sessions_are_limited_per_repository() {
    let s = TestServer::start_with(with_limits(|l| l.uploads_per_repository = 2)).await;
    s.create_org("team").await;
    s.create_repo("team/app", false).await;
    let alice = s.create_user("alice").await;
    let bob = s.create_user("bob").await;
    s.grant("team/app", "alice", "write").await;
    s.grant("team/app", "bob", "write").await;
    assert_eq!(
        open_session(&alice, &s.base, "team/app").await.status(),
        202
    );
    assert_eq!(open_session(&bob, &s.base, "team/app").await.status(), 202);
    assert_too_many(
        open_session(&alice, &s.base, "team/app").await,
        2,
        "repository",
    )
    .await;
    assert_too_many(
        open_session(&bob, &s.base, "team/app").await,
        2,
        "repository",
    )
    .await;
    // Other repositories are not affected.
    assert_eq!(
        open_session(&alice, &s.base, "alice/app").await.status(),
        202
    );
}

/// Replicas share one count: sessions opened at once through two of them stop at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_limit_holds_across_replicas() {
    let s = TestServer::start_with(with_limits(|l| l.uploads_per_account = 5)).await;
    let other = s.replica().await;
    let alice = s.create_user("alice").await;
    // The repository exists before the race, as after any first push.
    assert_eq!(
        open_session(&alice, &s.base, "alice/app").await.status(),
        202
    );
    let bases = [s.base.clone(), other.base.clone()];
    let attempts = (0..24).map(|i| {
        let (client, base) = (alice.clone(), bases[i % 2].clone());
        async move {
            open_session(&client, &base, "alice/app")
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let opened = statuses.iter().filter(|&&s| s == 202).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((opened, refused), (4, 20), "{statuses:?}");
}

/// The count behind the limits, raced directly: many sessions opening at once through two
/// connections to the database (as two replicas have) stop exactly at each cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_opening_at_once_stop_exactly_at_the_caps() {
    use berth::metadata::{QuotaExceeded, UploadQuota, UploadRecord};
    let s = TestServer::start().await;
    let stores = [s.metadata_store().await, s.metadata_store().await];
    let repo: oci::RepoName = "race/app".parse().unwrap();
    let round = |quota: UploadQuota, same_owner: bool| {
        let attempts = (0..64).map(|i| {
            let store = stores[i % 2].clone();
            let record = UploadRecord {
                id: berth::storage::UploadId::generate(),
                repository: repo.clone(),
                algorithm: oci::Algorithm::Sha256,
                length: 0,
                resumable: true,
                hash_state: None,
                progress: None,
                updated_at: 0,
            };
            let owner = if same_owner {
                "account:7".to_string()
            } else {
                format!("account:{}", 100 + i)
            };
            tokio::spawn(async move { store.create_upload(&record, &owner, quota).await })
        });
        futures::future::join_all(attempts)
    };
    let outcomes = round(
        UploadQuota {
            per_owner: 5,
            per_repository: 1000,
        },
        true,
    )
    .await;
    let admitted = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Ok(Ok(())))))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Ok(Err(QuotaExceeded::Owner)))))
        .count();
    assert_eq!((admitted, refused), (5, 59), "per owner");
    let outcomes = round(
        UploadQuota {
            per_owner: 1000,
            per_repository: 9,
        },
        false,
    )
    .await;
    let admitted = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Ok(Ok(())))))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Ok(Err(QuotaExceeded::Repository)))))
        .count();
    assert_eq!(
        (admitted, refused),
        (4, 60),
        "per repository, with 5 already open"
    );
}

const MIB: usize = 1 << 20;

/// A chunked transfer of `parts` (no `Content-Length`).
fn streamed(parts: Vec<Vec<u8>>) -> reqwest::Body {
    let parts: Vec<Result<Vec<u8>, std::io::Error>> = parts.into_iter().map(Ok).collect();
    reqwest::Body::wrap_stream(futures::stream::iter(parts))
}

/// There was no limit on a blob's size on local storage.
#[tokio::test]
async fn blobs_over_the_size_limit_are_refused_on_every_path() {
    let s = TestServer::start_with(with_limits(|l| l.max_blob_bytes = MIB as u64)).await;
    let too_big = sample(1, MIB + 1);
    let digest = sha256(&too_big);
    let monolithic = format!("/v2/ns/app/blobs/uploads/?digest={digest}");

    // Monolithic, announced with Content-Length: refused before the body is read.
    let r = s.post(&monolithic, &too_big).await;
    let body = assert_error(r, 413, "SIZE_INVALID").await;
    assert_eq!(body["errors"][0]["detail"]["limit"], MIB, "{body}");
    // Monolithic, streamed without a length: refused once the bytes pass the limit.
    let r = s
        .client
        .post(s.url(&monolithic))
        .body(streamed(vec![
            too_big[..MIB].to_vec(),
            too_big[MIB..].to_vec(),
        ]))
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "SIZE_INVALID").await;
    assert_eq!(
        s.head(&format!("/v2/ns/app/blobs/{digest}")).await.status(),
        404
    );

    // Chunked: a chunk announced past the limit, then one streamed past it; the session
    // stays where it was each time.
    let location = s.upload("ns/app").await;
    let first = 600_000;
    assert_chunk_accepted(
        &s.patch(
            &location,
            Some(&format!("0-{}", first - 1)),
            &too_big[..first],
        )
        .await,
        &location,
        first,
    );
    let r = s
        .patch(
            &location,
            Some(&format!("{first}-{MIB}")),
            &too_big[first..],
        )
        .await;
    assert_error(r, 413, "SIZE_INVALID").await;
    assert_eq!(
        header(&s.get(&location).await, "range"),
        format!("0-{}", first - 1)
    );
    let r = s
        .client
        .patch(s.url(&location))
        .body(streamed(vec![
            too_big[first..MIB].to_vec(),
            too_big[MIB..].to_vec(),
        ]))
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "SIZE_INVALID").await;
    assert_eq!(
        header(&s.get(&location).await, "range"),
        format!("0-{}", first - 1)
    );
    // The last chunk on PUT counts too.
    let r = s
        .put(&with_digest(&location, &digest), None, &too_big[first..])
        .await;
    assert_error(r, 413, "SIZE_INVALID").await;

    // Exactly at the limit is fine, on both paths.
    let fits = &too_big[..MIB];
    let r = s
        .put(&with_digest(&location, &sha256(fits)), None, &fits[first..])
        .await;
    assert_blob_created(&r, "ns/app", &sha256(fits));
    let fits = sample(2, MIB);
    s.push("ns/other", &fits).await;
}

/// There was no limit on `?tag=` parameters per manifest push.
#[tokio::test]
async fn tags_per_push_are_limited() {
    let s = TestServer::start_with(with_limits(|l| l.tags_per_request = 3)).await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = s.push("ns/app", config).await;
    let l = s.push("ns/app", b"layer").await;
    let manifest = image_manifest((&c, config.len()), &[(&l, 5)]);
    let digest = sha256(&manifest);
    let put = |tags: &[&str]| {
        let query: Vec<(&str, &str)> = tags.iter().map(|t| ("tag", *t)).collect();
        s.client
            .put(s.url(&format!("/v2/ns/app/manifests/{digest}")))
            .query(&query)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
    };
    let r = put(&["a", "b", "c", "d"]).await.unwrap();
    let body = assert_error(r, 400, "MANIFEST_INVALID").await;
    assert_eq!(body["errors"][0]["detail"]["limit"], 3, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("limit 3"),
        "{body}"
    );
    assert_error(
        s.get(&format!("/v2/ns/app/manifests/{digest}")).await,
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let r = put(&["a", "b", "c"]).await.unwrap();
    assert_eq!(r.status(), 201);
    let tags: serde_json::Value = s.get("/v2/ns/app/tags/list").await.json().await.unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["a", "b", "c"]));
}
