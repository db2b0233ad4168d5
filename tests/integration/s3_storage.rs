//! berth on an S3 bucket: blob downloads redirected to presigned URLs (Quay's default,
//! `FEATURE_PROXY_STORAGE: false`) or streamed through berth, two replicas sharing one bucket
//! and database, and start-up refusing an unreachable bucket. The S3 tests need
//! `BERTH_TEST_S3_ENDPOINT` (see `scripts/garage.sh`); the start-up test runs everywhere.

use crate::common;

use berth::config::{S3Credentials, S3Settings, Settings, StorageSettings};
use common::*;

/// Settings on a fresh prefix of the test bucket, or None (with a note) without one.
fn s3_settings(proxy_storage: bool) -> Option<Settings> {
    let prefix = format!("s3-storage/{}", uuid::Uuid::new_v4().simple());
    let Some(s3) = s3_under_test(&prefix) else {
        println!("not run: {TEST_S3_ENDPOINT_ENV} is not set (bash scripts/garage.sh start)");
        return None;
    };
    Some(Settings {
        storage: StorageSettings::S3(s3),
        proxy_storage,
        ..Settings::default()
    })
}

/// The test client without redirect following, so the 307 itself can be looked at.
fn no_redirects() -> reqwest::Client {
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_USER}:{ADMIN_PASSWORD}"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {basic}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn blob_downloads_redirect_to_a_presigned_url() {
    let Some(settings) = s3_settings(false) else {
        return;
    };
    let s = TestServer::start_with(settings).await;
    let content = sample(1, 300_000);
    let digest = s.push("lib/app", &content).await;
    let url = s.url(&format!("/v2/lib/app/blobs/{digest}"));
    let r = no_redirects().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    let location = header(&r, "location").to_string();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(
        !location.contains(&s.base),
        "the URL points at the store: {location}"
    );
    // The URL needs no credentials of berth's.
    let fetched = reqwest::get(&location).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap(), content);
    // A client that follows redirects gets the bytes, ranges included.
    assert_eq!(s.pull("lib/app", &digest).await, content);
    let r = s
        .client
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), content[100..200]);
    // HEAD is answered by berth from metadata.
    let r = no_redirects().head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "300000");
    assert_eq!(header(&r, "docker-content-digest"), digest);
    // No redirect for a blob the repository cannot read.
    let r = no_redirects()
        .get(s.url(&format!("/v2/lib/other/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn proxy_storage_streams_the_bytes_through_berth() {
    let Some(settings) = s3_settings(true) else {
        return;
    };
    let s = TestServer::start_with(settings).await;
    let content = sample(2, 100_000);
    let digest = s.push("lib/app", &content).await;
    let r = no_redirects()
        .get(s.url(&format!("/v2/lib/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(header(&r, "content-length"), "100000");
    assert_eq!(r.bytes().await.unwrap(), content);
}

/// A blob long enough to be fetched in parallel ranges (past 16 MiB) comes through berth
/// whole and by `Range`, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_storage_streams_a_large_blob_whole_and_by_range() {
    let Some(settings) = s3_settings(true) else {
        return;
    };
    let s = TestServer::start_with(settings).await;
    let content = sample(3, 40 * 1024 * 1024 + 77);
    let digest = s.push("lib/big", &content).await;
    let url = s.url(&format!("/v2/lib/big/blobs/{digest}"));
    let r = no_redirects().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got = r.bytes().await.unwrap();
    assert!(got.len() == content.len() && common::sha256(&got) == digest);
    let (start, end) = (3 * 1024 * 1024 + 5, 37 * 1024 * 1024 + 11);
    let r = no_redirects()
        .get(&url)
        .header("range", format!("bytes={start}-{end}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(r.bytes().await.unwrap() == content[start..=end]);
}

#[tokio::test]
async fn two_replicas_share_one_bucket() {
    let Some(settings) = s3_settings(true) else {
        return;
    };
    let a = TestServer::start_with(settings.clone()).await;
    // The second replica: its own data directory, the same database and bucket prefix.
    let b = TestServer::start_with(Settings {
        database: Some(a.database_uri()),
        ..settings
    })
    .await;
    // A chunked upload begun on one replica and finished on the other.
    let content = sample(3, 12 * 1024 * 1024 + 5);
    let digest = sha256(&content);
    let location = a.upload("lib/app").await;
    let cut = 9 * 1024 * 1024;
    let r = a
        .patch(&location, Some(&format!("0-{}", cut - 1)), &content[..cut])
        .await;
    assert_eq!(r.status(), 202);
    let r = b.close(&location, &digest, &content[cut..]).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    assert_eq!(a.pull("lib/app", &digest).await, content);
    assert_eq!(b.pull("lib/app", &digest).await, content);
}

#[tokio::test]
async fn start_up_fails_readably_when_the_bucket_is_unreachable() {
    // A port nothing listens on: taken and released, so connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = StorageSettings::S3(S3Settings {
        bucket: "berth".into(),
        prefix: "registry".into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "garage".into(),
        credentials: Some(S3Credentials {
            access_key: "GK0000".into(),
            secret_key: "hunter2".into(),
        }),
    });
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        storage,
        ..Settings::default()
    };
    let error = match berth::open_blob_store(dir.path(), &settings).await {
        Ok(_) => panic!("a bucket nobody serves was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("cannot open the blob store s3://berth/registry"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    // A bucket that does not exist on a live server.
    if let Some(mut s3) = s3_under_test("x") {
        s3.bucket = format!("no-such-bucket-{}", uuid::Uuid::new_v4().simple());
        let settings = Settings {
            storage: StorageSettings::S3(s3),
            ..Settings::default()
        };
        let error = match berth::open_blob_store(dir.path(), &settings).await {
            Ok(_) => panic!("a missing bucket was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains("no-such-bucket"), "{error}");
    }
}
