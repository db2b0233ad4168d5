//! Crash safety of the real binary: `kill -9` at chosen moments, restart on the same data
//! directory, and check that everything the server acknowledged is intact, that interrupted
//! uploads are either absent or complete, that upload data is reconciled with the sessions at
//! start-up, and that chunked uploads resume.
//!
//! Every kill is placed by synchronizing on the client side: after a given acknowledgement has
//! been received, and while a request body is deliberately held open half-sent.

use crate::common;

use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// Guard against a hang, never a way to wait: every wait below ends on an event.
const GUARD: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Request bodies

/// A body that sends `data` in `piece`-sized parts.
fn streamed(data: Bytes, piece: usize) -> reqwest::Body {
    let parts: Vec<Result<Bytes, std::io::Error>> = (0..data.len())
        .step_by(piece.max(1))
        .map(|i| Ok(data.slice(i..(i + piece).min(data.len()))))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(parts))
}

/// A body that sends the first `stall_at` bytes of `data` in 64 KiB parts and then neither sends
/// more nor ends. `reached` fires when the connection has taken all `stall_at` bytes (the client
/// asked for the next part), so the request is provably mid-body on the wire.
fn stalling(data: Bytes, stall_at: usize, reached: oneshot::Sender<()>) -> reqwest::Body {
    assert!(stall_at < data.len(), "a stalling body must stop short");
    let state = (data, 0usize, Some(reached));
    let stream = futures::stream::unfold(state, move |(data, sent, mut reached)| async move {
        if sent >= stall_at {
            if let Some(r) = reached.take() {
                let _ = r.send(());
            }
            futures::future::pending::<()>().await;
            unreachable!("pending never completes");
        }
        let end = (sent + 64 * KIB).min(stall_at);
        let part = data.slice(sent..end);
        Some((Ok::<_, std::io::Error>(part), (data, end, reached)))
    });
    reqwest::Body::wrap_stream(stream)
}

// ---------------------------------------------------------------------------------------------
// Pushing, fallibly: a transport error means the server is gone (the caller stops); any HTTP
// answer other than the expected one is a bug and panics.

type Sent<T> = Result<T, reqwest::Error>;

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_string()
    }
}

fn digest_url(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn text_header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} reply has no {name} header", r.url()))
        .to_str()
        .expect("header text")
        .to_string()
}

async fn expect_status(r: reqwest::Response, status: u16, what: &str) -> reqwest::Response {
    if r.status() != status {
        let got = r.status();
        let body = r.text().await.unwrap_or_default();
        panic!("{what}: expected {status}, got {got}: {body}");
    }
    r
}

/// How a blob travels.
#[derive(Debug, Clone, Copy)]
enum Method {
    /// `POST ?digest=` with the whole body and a `Content-Length`.
    Monolithic,
    /// `POST`, one `PATCH` streamed without `Content-Length`, `PUT ?digest=`.
    Streamed,
    /// `POST`, `PATCH`es with `Content-Range`, `PUT ?digest=` carrying the last chunk.
    Chunked,
}

const METHODS: [Method; 3] = [Method::Monolithic, Method::Streamed, Method::Chunked];

/// Opens an upload session; returns its `Location` path.
async fn open_session(client: &reqwest::Client, base: &str, repo: &str) -> Sent<String> {
    let r = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await?;
    let r = expect_status(r, 202, "open upload").await;
    Ok(text_header(&r, "location"))
}

/// Sends one chunk at `offset` with `Content-Range`; returns the new `Location`.
async fn patch_chunk(
    client: &reqwest::Client,
    base: &str,
    location: &str,
    offset: usize,
    chunk: Bytes,
) -> Sent<String> {
    let end = offset + chunk.len() - 1;
    let r = client
        .patch(absolute(base, location))
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{offset}-{end}"))
        .header("content-length", chunk.len())
        .body(chunk)
        .send()
        .await?;
    let r = expect_status(r, 202, "PATCH chunk").await;
    assert_eq!(text_header(&r, "range"), format!("0-{end}"));
    Ok(text_header(&r, "location"))
}

/// Pushes a blob by `method`; returns once the server answered 201.
async fn try_push_blob(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    data: &Bytes,
    method: Method,
) -> Sent<()> {
    let digest = sha256(data);
    let created = match method {
        Method::Monolithic => {
            client
                .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
                .header("content-type", "application/octet-stream")
                .body(data.clone())
                .send()
                .await?
        }
        Method::Streamed => {
            let location = open_session(client, base, repo).await?;
            let r = client
                .patch(absolute(base, &location))
                .header("content-type", "application/octet-stream")
                .body(streamed(data.clone(), 64 * KIB))
                .send()
                .await?;
            let r = expect_status(r, 202, "streamed PATCH").await;
            let location = text_header(&r, "location");
            client
                .put(digest_url(&absolute(base, &location), &digest))
                .send()
                .await?
        }
        Method::Chunked => {
            let mut location = open_session(client, base, repo).await?;
            let chunk = 256 * KIB;
            let mut offset = 0;
            // All but the last chunk by PATCH; the last one rides on the PUT.
            while data.len() - offset > chunk {
                location = patch_chunk(
                    client,
                    base,
                    &location,
                    offset,
                    data.slice(offset..offset + chunk),
                )
                .await?;
                offset += chunk;
            }
            let last = data.slice(offset..);
            let mut put = client
                .put(digest_url(&absolute(base, &location), &digest))
                .header("content-type", "application/octet-stream")
                .header("content-length", last.len());
            if !last.is_empty() {
                put = put.header(
                    "content-range",
                    format!("{offset}-{}", offset + last.len() - 1),
                );
            }
            put.body(last).send().await?
        }
    };
    let r = expect_status(created, 201, &format!("push blob by {method:?}")).await;
    assert_eq!(text_header(&r, "docker-content-digest"), digest);
    Ok(())
}

async fn try_put_manifest(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Sent<()> {
    let r = client
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .send()
        .await?;
    let r = expect_status(r, 201, "PUT manifest").await;
    assert_eq!(text_header(&r, "docker-content-digest"), sha256(bytes));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What was pushed, and checking it after a restart

#[derive(Debug, Clone)]
struct Blob {
    repo: String,
    digest: String,
    bytes: Bytes,
}

impl Blob {
    fn new(repo: &str, bytes: Bytes) -> Blob {
        Blob {
            repo: repo.to_string(),
            digest: sha256(&bytes),
            bytes,
        }
    }
}

#[derive(Debug, Clone)]
struct Image {
    repo: String,
    tag: String,
    media_type: &'static str,
    digest: String,
    manifest: Vec<u8>,
    blobs: Vec<Blob>,
}

/// A distinct image: a config and layers of the given sizes, all derived from `seed`.
fn make_image(repo: &str, tag: &str, seed: u64, layer_sizes: &[usize]) -> Image {
    let config = Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"seed": seed.to_string(), "tag": tag}},
        }))
        .unwrap(),
    );
    let layers: Vec<Bytes> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| Bytes::from(pattern(seed * 16 + i as u64, n)))
        .collect();
    let config_blob = Blob::new(repo, config);
    let layer_blobs: Vec<Blob> = layers.into_iter().map(|l| Blob::new(repo, l)).collect();
    let refs: Vec<(&str, usize)> = layer_blobs
        .iter()
        .map(|b| (b.digest.as_str(), b.bytes.len()))
        .collect();
    let manifest = image_manifest(
        (&config_blob.digest, config_blob.bytes.len()),
        refs.as_slice(),
    );
    let mut blobs = vec![config_blob];
    blobs.extend(layer_blobs);
    Image {
        repo: repo.to_string(),
        tag: tag.to_string(),
        media_type: OCI_MANIFEST,
        digest: sha256(&manifest),
        manifest,
        blobs,
    }
}

/// An OCI index over `children` (all in `repo`), tagged `tag`.
fn make_index(repo: &str, tag: &str, children: &[&Image]) -> Image {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let arch = ["amd64", "arm64"][i % 2];
            serde_json::json!({
                "mediaType": c.media_type,
                "digest": c.digest,
                "size": c.manifest.len(),
                "platform": {"architecture": arch, "os": "linux"},
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap();
    Image {
        repo: repo.to_string(),
        tag: tag.to_string(),
        media_type: OCI_INDEX,
        digest: sha256(&manifest),
        manifest,
        blobs: Vec::new(),
    }
}

/// Pushes every blob of `image` (methods chosen round-robin from `first_method`), then its
/// manifest under its tag.
async fn push_whole_image(
    client: &reqwest::Client,
    base: &str,
    image: &Image,
    first_method: usize,
) -> Sent<()> {
    for (i, blob) in image.blobs.iter().enumerate() {
        let method = METHODS[(first_method + i) % METHODS.len()];
        try_push_blob(client, base, &blob.repo, &blob.bytes, method).await?;
    }
    try_put_manifest(
        client,
        base,
        &image.repo,
        &image.tag,
        image.media_type,
        &image.manifest,
    )
    .await
}

/// `GET` a blob: `None` on 404, the bytes on 200; anything else fails the test.
async fn fetch_blob(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    digest: &str,
) -> Option<Bytes> {
    let r = client
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .expect("GET blob");
    match r.status().as_u16() {
        404 => None,
        200 => {
            assert_eq!(text_header(&r, "docker-content-digest"), digest);
            Some(r.bytes().await.expect("blob body"))
        }
        s => panic!("GET blob {repo}@{digest}: unexpected {s}"),
    }
}

/// `GET` a manifest: `None` on 404, (bytes, content type) on 200; anything else fails.
async fn fetch_manifest(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
) -> Option<(Vec<u8>, String, String)> {
    let r = client
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .expect("GET manifest");
    match r.status().as_u16() {
        404 => None,
        200 => {
            let content_type = text_header(&r, "content-type");
            let digest = text_header(&r, "docker-content-digest");
            Some((r.bytes().await.unwrap().to_vec(), content_type, digest))
        }
        s => panic!("GET manifest {repo}:{reference}: unexpected {s}"),
    }
}

async fn assert_blob_intact(client: &reqwest::Client, base: &str, blob: &Blob) {
    let got = fetch_blob(client, base, &blob.repo, &blob.digest)
        .await
        .unwrap_or_else(|| panic!("acknowledged blob {} lost in {}", blob.digest, blob.repo));
    assert_eq!(got.len(), blob.bytes.len(), "length of {}", blob.digest);
    assert!(got == blob.bytes, "bytes of {} changed", blob.digest);
}

/// A blob whose push was cut off: absent, or present complete and correct.
async fn assert_blob_absent_or_intact(client: &reqwest::Client, base: &str, blob: &Blob) {
    if let Some(got) = fetch_blob(client, base, &blob.repo, &blob.digest).await {
        assert!(
            got == blob.bytes,
            "interrupted blob {} is present but not byte-identical ({} of {} bytes)",
            blob.digest,
            got.len(),
            blob.bytes.len()
        );
    }
}

async fn assert_image_intact(client: &reqwest::Client, base: &str, image: &Image) {
    for reference in [image.tag.as_str(), image.digest.as_str()] {
        let (bytes, content_type, digest) = fetch_manifest(client, base, &image.repo, reference)
            .await
            .unwrap_or_else(|| panic!("acknowledged manifest {}:{reference} lost", image.repo));
        assert_eq!(content_type, image.media_type, "{}:{reference}", image.repo);
        assert_eq!(digest, image.digest, "{}:{reference}", image.repo);
        assert!(bytes == image.manifest, "{}:{reference} bytes", image.repo);
    }
    for blob in &image.blobs {
        assert_blob_intact(client, base, blob).await;
    }
}

/// An image whose push was cut off: its tag is absent or names exactly this manifest, and if
/// the manifest is there, so is every blob it references.
async fn assert_image_absent_or_intact(client: &reqwest::Client, base: &str, image: &Image) {
    let by_tag = fetch_manifest(client, base, &image.repo, &image.tag).await;
    let by_digest = fetch_manifest(client, base, &image.repo, &image.digest).await;
    for (found, how) in [(&by_tag, "tag"), (&by_digest, "digest")] {
        if let Some((bytes, _, digest)) = found {
            assert_eq!(
                digest, &image.digest,
                "{}:{} by {how}",
                image.repo, image.tag
            );
            assert!(
                bytes == &image.manifest,
                "{}:{} by {how}",
                image.repo,
                image.tag
            );
        }
    }
    if by_tag.is_some() || by_digest.is_some() {
        // A stored manifest guarantees its blobs.
        for blob in &image.blobs {
            assert_blob_intact(client, base, blob).await;
        }
    } else {
        for blob in &image.blobs {
            assert_blob_absent_or_intact(client, base, blob).await;
        }
    }
}

async fn tags_of(client: &reqwest::Client, base: &str, repo: &str) -> BTreeSet<String> {
    let r = client
        .get(format!("{base}/v2/{repo}/tags/list"))
        .send()
        .await
        .expect("tags list");
    let r = expect_status(r, 200, "tags list").await;
    let v: serde_json::Value = r.json().await.unwrap();
    v["tags"]
        .as_array()
        .expect("tags array")
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// Whether upload data is a file per session in `<data>/uploads`, which these tests inspect:
/// true on the filesystem store. On S3 it is multipart parts and tail objects, and a shared
/// store's start-up recovery leaves it alone (garbage collection reclaims abandoned uploads),
/// so those checks are skipped, with a note.
fn upload_files_checked() -> bool {
    !skip_on_s3("checks of upload files in the data directory")
}

/// Every file in `<data>/uploads` is named by an upload id and belongs to a live session (in
/// one of `repos`) whose recorded length is the file's length. Returns the sessions found
/// (none on S3, where there are no upload files to check).
async fn assert_uploads_reconciled(
    client: &reqwest::Client,
    base: &str,
    data: &Path,
    repos: &BTreeSet<String>,
) -> BTreeMap<String, u64> {
    let mut sessions = BTreeMap::new();
    if !upload_files_checked() {
        return sessions;
    }
    for entry in std::fs::read_dir(data.join("uploads")).expect("uploads dir") {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let len = entry.metadata().unwrap().len();
        let mut owner = None;
        for repo in repos {
            let r = client
                .get(format!("{base}/v2/{repo}/blobs/uploads/{name}"))
                .send()
                .await
                .expect("upload status");
            match r.status().as_u16() {
                204 => {
                    assert!(owner.is_none(), "upload {name} answers in two repositories");
                    assert_eq!(
                        text_header(&r, "range"),
                        format!("0-{}", len.saturating_sub(1)),
                        "upload {name}: recorded length and data length ({len}) disagree"
                    );
                    owner = Some(repo.clone());
                }
                404 => {}
                s => panic!("upload status of {name} in {repo}: unexpected {s}"),
            }
        }
        assert!(
            owner.is_some(),
            "uploads/{name} ({len} bytes) belongs to no upload session"
        );
        sessions.insert(name, len);
    }
    sessions
}

/// `GET` on an upload: asserts 204 and the session id; returns `Range` and `Location`.
async fn upload_status(client: &reqwest::Client, base: &str, location: &str) -> (String, String) {
    let r = client.get(absolute(base, location)).send().await.unwrap();
    let r = expect_status(r, 204, "upload status").await;
    let id = location.rsplit('/').next().unwrap();
    assert_eq!(text_header(&r, "docker-upload-uuid"), id);
    (text_header(&r, "range"), text_header(&r, "location"))
}

fn upload_file_len(data: &Path, location: &str) -> Option<u64> {
    let id = location
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    std::fs::metadata(data.join("uploads").join(id))
        .ok()
        .map(|m| m.len())
}

/// Awaits a request that was cut off by the kill: it must fail, not produce an answer.
async fn assert_cut_off(
    request: tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>>,
    what: &str,
) {
    let outcome = tokio::time::timeout(GUARD, request)
        .await
        .unwrap_or_else(|_| panic!("{what}: the request did not end after the kill"))
        .expect("request task");
    if let Ok(r) = outcome {
        panic!(
            "{what}: got {} although the body was never finished",
            r.status()
        );
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_survive_kill9_during_large_streamed_uploads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();

    // The 64 MiB blob that will be cut off, and its digest, computed off the async threads.
    let big = Bytes::from(pattern(0xB16, 64 * MIB));
    let big_digest = {
        let big = big.clone();
        tokio::task::spawn_blocking(move || sha256(&big))
    };

    let server = ProcessServer::spawn(data).await;
    let base = server.base.clone();
    let client = server.client.clone();

    // Completed work: images (one with two tags, one as an index over two others), bare blobs
    // (one of them empty), pushed through every upload method.
    let mut images = Vec::new();
    for (i, sizes) in [
        vec![3 * KIB, 900 * KIB],
        vec![MIB + 17, 1],
        vec![2 * MIB + 5, 40 * KIB],
        vec![300 * KIB + 1, 600 * KIB - 1],
    ]
    .iter()
    .enumerate()
    {
        let image = make_image(
            &format!("crash/app{}", i % 2),
            &format!("v{i}"),
            100 + i as u64,
            sizes,
        );
        push_whole_image(&client, &base, &image, i)
            .await
            .expect("push image");
        images.push(image);
    }
    let mut retag = images[0].clone();
    retag.tag = "stable".into();
    try_put_manifest(
        &client,
        &base,
        &retag.repo,
        "stable",
        OCI_MANIFEST,
        &retag.manifest,
    )
    .await
    .unwrap();
    images.push(retag);
    let index = make_index("crash/app0", "multi", &[&images[0], &images[2]]);
    try_put_manifest(
        &client,
        &base,
        &index.repo,
        &index.tag,
        OCI_INDEX,
        &index.manifest,
    )
    .await
    .unwrap();
    images.push(index);
    let mut blobs = Vec::new();
    for (i, n) in [0, 1, 777 * KIB, 3 * MIB + 3].into_iter().enumerate() {
        let blob = Blob::new("crash/blobs", Bytes::from(pattern(200 + i as u64, n)));
        try_push_blob(&client, &base, &blob.repo, &blob.bytes, METHODS[i % 3])
            .await
            .unwrap();
        blobs.push(blob);
    }

    // Two large uploads left hanging mid-body: one streamed PATCH in a session the client knows,
    // one monolithic POST whose session only the server knows.
    let session = open_session(&client, &base, "crash/big").await.unwrap();
    let (patch_reached, patch_at) = oneshot::channel();
    let patch = tokio::spawn({
        let req = client
            .patch(absolute(&base, &session))
            .header("content-type", "application/octet-stream")
            .body(stalling(big.clone(), 40 * MIB, patch_reached));
        req.send()
    });
    let big_digest = big_digest.await.unwrap();
    let (post_reached, post_at) = oneshot::channel();
    let post = tokio::spawn({
        let req = client
            .post(format!(
                "{base}/v2/crash/big/blobs/uploads/?digest={big_digest}"
            ))
            .header("content-type", "application/octet-stream")
            .body(stalling(big.clone(), 24 * MIB, post_reached));
        req.send()
    });
    tokio::time::timeout(GUARD, patch_at)
        .await
        .expect("PATCH body reached its stall point")
        .unwrap();
    tokio::time::timeout(GUARD, post_at)
        .await
        .expect("POST body reached its stall point")
        .unwrap();

    server.kill9().await;
    assert_cut_off(patch, "streamed PATCH").await;
    assert_cut_off(post, "monolithic POST").await;
    let partial = upload_file_len(data, &session);
    println!("upload data of the cut-off PATCH at the kill: {partial:?} bytes");

    // Debris recovery must clear: a stray temp file and upload data with no session.
    let uploads = data.join("uploads");
    let orphan = "0b9c2b3e-6f1a-4d8e-9a51-3c5f7d2e8a10";
    if upload_files_checked() {
        std::fs::write(uploads.join("leftover.tmp"), b"not an upload").unwrap();
        std::fs::write(uploads.join(orphan), pattern(9, 5000)).unwrap();
    }

    let server = ProcessServer::spawn(data).await;
    let base = server.base.clone();
    let client = server.client.clone();

    for image in &images {
        assert_image_intact(&client, &base, image).await;
    }
    for blob in &blobs {
        assert_blob_intact(&client, &base, blob).await;
    }
    assert_eq!(
        tags_of(&client, &base, "crash/app0").await,
        ["multi", "stable", "v0", "v2"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(
        tags_of(&client, &base, "crash/app1").await,
        ["v1", "v3"].into_iter().map(String::from).collect()
    );

    // The cut-off blob is absent (or, were it there, whole).
    let big_blob = Blob {
        repo: "crash/big".into(),
        digest: big_digest.clone(),
        bytes: big.clone(),
    };
    assert_blob_absent_or_intact(&client, &base, &big_blob).await;

    // Upload data matches the sessions: debris gone, the PATCH's partial bytes cut back to the
    // length recorded before it (zero), the session itself still there to resume or cancel.
    let repos: BTreeSet<String> = ["crash/app0", "crash/app1", "crash/blobs", "crash/big"]
        .into_iter()
        .map(String::from)
        .collect();
    let r = client.get(absolute(&base, &session)).send().await.unwrap();
    let r = expect_status(r, 204, "status of the cut-off session").await;
    assert_eq!(text_header(&r, "range"), "0-0");
    if upload_files_checked() {
        let sessions = assert_uploads_reconciled(&client, &base, data, &repos).await;
        assert!(!uploads.join("leftover.tmp").exists(), "stray file kept");
        assert!(
            !uploads.join(orphan).exists(),
            "upload data without a session kept"
        );
        assert_eq!(upload_file_len(data, &session), Some(0));
        assert!(sessions.values().all(|&n| n == 0), "{sessions:?}");
        // The single-request POST left a session no client knows: recovery discarded it, so
        // only the PATCH's session remains.
        assert_eq!(sessions.len(), 1, "{sessions:?}");
    }

    // The cut-off session can be cancelled, and the blob pushed again in full.
    let r = client
        .delete(absolute(&base, &session))
        .send()
        .await
        .unwrap();
    expect_status(r, 204, "cancel the cut-off session").await;
    if upload_files_checked() {
        assert_eq!(upload_file_len(data, &session), None);
    }
    try_push_blob(&client, &base, "crash/big", &big, Method::Streamed)
        .await
        .unwrap();
    assert_blob_intact(&client, &base, &big_blob).await;

    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_resumes_after_kill9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let repo = "resume/me";
    let blob = Blob::new(repo, Bytes::from(pattern(0x5E5, 5 * MIB + 333)));
    let (c1, c2, c3) = (MIB + 3, 700 * KIB, 2 * MIB);

    // Two chunks acknowledged, then kill -9 between chunks.
    let server = ProcessServer::spawn(data).await;
    let (base, client) = (server.base.clone(), server.client.clone());
    let location = open_session(&client, &base, repo).await.unwrap();
    let location = patch_chunk(&client, &base, &location, 0, blob.bytes.slice(..c1))
        .await
        .unwrap();
    let location = patch_chunk(&client, &base, &location, c1, blob.bytes.slice(c1..c1 + c2))
        .await
        .unwrap();
    server.kill9().await;

    // After the restart the session stands where the acknowledgements left it.
    let server = ProcessServer::spawn(data).await;
    let (base, client) = (server.base.clone(), server.client.clone());
    let acked = c1 + c2;
    let (range, location) = upload_status(&client, &base, &location).await;
    assert_eq!(range, format!("0-{}", acked - 1));
    if upload_files_checked() {
        assert_eq!(upload_file_len(data, &location), Some(acked as u64));
    }

    // A third chunk is cut off mid-body by another kill -9.
    let (reached, at) = oneshot::channel();
    let third = tokio::spawn(
        client
            .patch(absolute(&base, &location))
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{acked}-{}", acked + c3 - 1))
            .header("content-length", c3)
            .body(stalling(blob.bytes.slice(acked..acked + c3), MIB, reached))
            .send(),
    );
    tokio::time::timeout(GUARD, at)
        .await
        .expect("third chunk reached its stall point")
        .unwrap();
    server.kill9().await;
    assert_cut_off(third, "third chunk").await;
    println!(
        "upload data at the second kill: {:?} bytes (acknowledged: {acked})",
        upload_file_len(data, &location)
    );

    // Its partial bytes are dropped; the first two chunks remain, and the upload resumes.
    let server = ProcessServer::spawn(data).await;
    let (base, client) = (server.base.clone(), server.client.clone());
    let (range, location) = upload_status(&client, &base, &location).await;
    assert_eq!(range, format!("0-{}", acked - 1));
    if upload_files_checked() {
        assert_eq!(upload_file_len(data, &location), Some(acked as u64));
    }

    // A chunk that does not continue at the recorded end is refused, and changes nothing. The
    // pooled client goes on using the connection pool afterwards: berth answers before reading
    // the body, so it must say `Connection: close` (see
    // `an_early_error_reply_says_whether_the_connection_stays_open`).
    let r = client
        .patch(absolute(&base, &location))
        .header("content-range", format!("0-{}", c1 - 1))
        .header("content-length", c1)
        .body(blob.bytes.slice(..c1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(text_header(&r, "range"), format!("0-{}", acked - 1));

    let location = patch_chunk(
        &client,
        &base,
        &location,
        acked,
        blob.bytes.slice(acked..acked + c3),
    )
    .await
    .unwrap();
    let done = acked + c3;
    let rest = blob.bytes.slice(done..);
    let r = client
        .put(digest_url(&absolute(&base, &location), &blob.digest))
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{done}-{}", blob.bytes.len() - 1))
        .header("content-length", rest.len())
        .body(rest)
        .send()
        .await
        .unwrap();
    let r = expect_status(r, 201, "closing PUT after resume").await;
    assert_eq!(text_header(&r, "docker-content-digest"), blob.digest);
    assert_blob_intact(&client, &base, &blob).await;

    // The session is over and its data gone.
    let r = client.get(absolute(&base, &location)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    if upload_files_checked() {
        assert_eq!(upload_file_len(data, &location), None);
    }

    // And the blob survives one more crash.
    server.kill9().await;
    let server = ProcessServer::spawn(data).await;
    let client = server.client.clone();
    assert_blob_intact(&client, &server.base, &blob).await;
    let repos = BTreeSet::from([repo.to_string()]);
    let sessions = assert_uploads_reconciled(&client, &server.base, data, &repos).await;
    assert!(sessions.is_empty(), "{sessions:?}");
    server.kill9().await;
}

/// What a pushing task reports.
enum Event {
    /// About to push this image (it may or may not land).
    Attempt(Image),
    /// The server acknowledged every blob and the manifest of this image.
    Acked(Image),
}

/// Pushes images into `repo` until the server goes away; reports each attempt and each
/// acknowledgement.
async fn pusher(
    client: reqwest::Client,
    base: String,
    repo: String,
    cycle: usize,
    task: usize,
    events: mpsc::UnboundedSender<Event>,
) {
    const SIZES: [&[usize]; 4] = [
        &[40 * KIB, 1_500 * KIB],
        &[1_100 * KIB + 1],
        &[200 * KIB, 3 * KIB, 700 * KIB],
        &[2 * MIB + 9],
    ];
    for i in 0.. {
        let seed = 10_000 + (cycle as u64) * 1_000 + (task as u64) * 100 + i as u64;
        let image = make_image(
            &repo,
            &format!("c{cycle}-t{task}-{i}"),
            seed,
            SIZES[(task + i) % SIZES.len()],
        );
        let _ = events.send(Event::Attempt(image.clone()));
        match push_whole_image(&client, &base, &image, cycle + task + i).await {
            Ok(()) => {
                let _ = events.send(Event::Acked(image));
            }
            Err(_) => return, // The server was killed.
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_survive_repeated_kill9() {
    const CYCLES: usize = 5;
    const TASKS: usize = 4;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let repos: Vec<String> = (0..TASKS).map(|t| format!("cycle/task{t}")).collect();
    let repo_set: BTreeSet<String> = repos.iter().cloned().collect();
    let mut acked: Vec<Image> = Vec::new();
    let mut unacked: Vec<Image> = Vec::new();

    for cycle in 0..CYCLES {
        let server = ProcessServer::spawn(data).await;
        let (base, client) = (server.base.clone(), server.client.clone());

        // Everything acknowledged in earlier cycles is intact; cut-off pushes are all-or-nothing.
        for image in &acked {
            assert_image_intact(&client, &base, image).await;
        }
        for image in &unacked {
            assert_image_absent_or_intact(&client, &base, image).await;
        }
        for repo in &repos {
            let want: BTreeSet<String> = acked
                .iter()
                .filter(|i| &i.repo == repo)
                .map(|i| i.tag.clone())
                .collect();
            if !want.is_empty() {
                let have = tags_of(&client, &base, repo).await;
                assert!(
                    have.is_superset(&want),
                    "tags of {repo} lost: {:?}",
                    want.difference(&have)
                );
            }
        }
        assert_uploads_reconciled(&client, &base, data, &repo_set).await;

        // Deterministic schedule: kill after the k-th acknowledged image of this cycle, with an
        // upload held open mid-body and the other pushers in flight.
        let kill_after = 2 + 2 * cycle;
        let stalled_data = Bytes::from(pattern(50_000 + cycle as u64, 8 * MIB));
        let session = open_session(&client, &base, &repos[0]).await.unwrap();
        let (reached, at) = oneshot::channel();
        let stalled = tokio::spawn(
            client
                .patch(absolute(&base, &session))
                .header("content-type", "application/octet-stream")
                .body(stalling(stalled_data, 3 * MIB, reached))
                .send(),
        );
        tokio::time::timeout(GUARD, at)
            .await
            .expect("stalled upload reached its stall point")
            .unwrap();

        let (tx, mut rx) = mpsc::unbounded_channel();
        let tasks: Vec<_> = repos
            .iter()
            .enumerate()
            .map(|(t, repo)| {
                tokio::spawn(pusher(
                    client.clone(),
                    base.clone(),
                    repo.clone(),
                    cycle,
                    t,
                    tx.clone(),
                ))
            })
            .collect();
        drop(tx);
        let mut attempts: BTreeMap<String, Image> = BTreeMap::new();
        let mut acks = 0;
        while acks < kill_after {
            match tokio::time::timeout(GUARD, rx.recv())
                .await
                .expect("pushers progress")
            {
                Some(Event::Attempt(image)) => {
                    attempts.insert(image.digest.clone(), image);
                }
                Some(Event::Acked(image)) => {
                    attempts.remove(&image.digest);
                    acked.push(image);
                    acks += 1;
                }
                None => panic!("pushers stopped before {kill_after} acknowledgements"),
            }
        }
        server.kill9().await;

        // Pushers see the server gone and stop; acknowledgements that raced the kill count too.
        for task in tasks {
            tokio::time::timeout(GUARD, task)
                .await
                .expect("pusher stops after the kill")
                .expect("pusher did not panic");
        }
        while let Some(event) = rx.recv().await {
            match event {
                Event::Attempt(image) => {
                    attempts.insert(image.digest.clone(), image);
                }
                Event::Acked(image) => {
                    attempts.remove(&image.digest);
                    acks += 1;
                    acked.push(image);
                }
            }
        }
        assert_cut_off(stalled, "held-open upload").await;
        println!(
            "cycle {cycle}: killed after {kill_after} acknowledgements; {acks} acknowledged, {} cut off",
            attempts.len()
        );
        unacked.extend(attempts.into_values());
    }

    // A last restart checks the final cycle's work.
    let server = ProcessServer::spawn(data).await;
    let (base, client) = (server.base.clone(), server.client.clone());
    for image in &acked {
        assert_image_intact(&client, &base, image).await;
    }
    for image in &unacked {
        assert_image_absent_or_intact(&client, &base, image).await;
    }
    assert_uploads_reconciled(&client, &base, data, &repo_set).await;
    assert!(acked.len() >= (0..CYCLES).map(|c| 2 + 2 * c).sum::<usize>());
    server.kill9().await;
}

/// Found by `a_chunked_upload_resumes_after_kill9`: a reply sent before the request body was
/// read must say whether the connection stays open (RFC 9110 §10.1.1); a keep-alive client that
/// reuses a connection the server silently closes fails its next request.
#[tokio::test]
async fn an_early_error_reply_says_whether_the_connection_stays_open() {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_USER}:{ADMIN_PASSWORD}"));
    let location = open_session(&server.client, &server.base, "early/reply")
        .await
        .unwrap();
    let host = server.base.strip_prefix("http://").unwrap();
    let body = pattern(77, MIB);
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    // A chunk that does not start at the upload's end (0): refused with 416 from the headers.
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Range: 5-{}\r\nContent-Length: {}\r\n\r\n",
        body.len() + 4,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body[..1000]).await.unwrap();

    // Read the whole 416 reply.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, reply_len) = loop {
        let n = tokio::time::timeout(GUARD, socket.read(&mut chunk))
            .await
            .expect("reply")
            .unwrap();
        assert!(n > 0, "connection closed before the reply");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                break (end, end + 4 + len);
            }
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 416"), "{head}");
    assert_eq!(buf.len(), reply_len, "nothing follows the reply yet");
    if head.lines().any(|l| l == "connection: close") {
        return; // Announced: the client knows not to reuse the connection.
    }

    // Not announced, so the connection must still work: finish the refused body, then ask again.
    let rest = socket.write_all(&body[1000..]).await;
    let next = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {credentials}\r\n\
         Connection: close\r\n\r\n"
    );
    let sent = match rest {
        Ok(()) => socket.write_all(next.as_bytes()).await,
        Err(e) => Err(e),
    };
    let mut answer = Vec::new();
    let read = tokio::time::timeout(GUARD, socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        sent.is_ok() && matches!(read, Ok(Ok(_))) && answer.starts_with("HTTP/1.1 200"),
        "after a 416 without `Connection: close` the connection was dropped: \
         write {sent:?}, read {read:?}, answer {answer:?}"
    );
}

#[tokio::test]
async fn names_staged_by_a_cut_off_commit_are_removed_at_start() {
    if skip_on_s3("staged names are a filesystem commit's") {
        return;
    }
    let dir = tempfile::tempdir().expect("data dir");
    let s = TestServer::start_on(dir.path()).await;
    let blob = b"a blob whose commit was cut off after its link".to_vec();
    let digest = push_blob(&s.client, &s.base, "crash/staged", &blob).await;
    let hex = digest.trim_start_matches("sha256:");
    // What a crash between a commit's hard link and its rename leaves next to the blob.
    let shard = dir.path().join("blobs/sha256").join(&hex[..2]);
    let staged = shard.join(format!(
        ".{hex}.0b0f4a9e-3c1d-4f43-9a52-1d2c3b4a5f60.staged"
    ));
    std::fs::write(&staged, &blob).expect("write a staged name");
    let s = s.restart().await;
    assert!(!staged.exists(), "the staged name survived a start");
    let r = s
        .client
        .get(s.url(&format!("/v2/crash/staged/blobs/{digest}")))
        .send()
        .await
        .expect("pull");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("body").to_vec(), blob);
}
