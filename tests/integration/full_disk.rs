//! A full disk: berth runs on a small tmpfs that the test mounts and fills with a file of its
//! own. Pushes that need more room than is left fail with 507 and a message that says so; berth
//! stays up; everything stored before is intact; a chunked upload that hit the limit keeps the
//! bytes it had and continues once room is made; and pushes succeed again after the filler file
//! is removed.
//!
//! Mounting needs root (CI runs as root). Elsewhere the test says it cannot run and passes; on
//! S3 storage the disk under test holds no blobs, so the test does not apply there.

use crate::common;

use common::*;

use std::io::Write;
use std::path::{Path, PathBuf};

const MIB: usize = 1024 * 1024;
/// The size of the filesystem: room for the metadata database and a few test images.
const FS_SIZE_MIB: usize = 48;

/// A tmpfs mounted on a fresh directory for the test's lifetime.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts the filesystem, or `None` when this process may not mount (not root).
    fn mount() -> Option<SmallDisk> {
        if !running_as_root() {
            eprintln!("full_disk: not running as root, so no filesystem can be mounted; skipped");
            return None;
        }
        let dir = tempfile::tempdir().expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={FS_SIZE_MIB}m,mode=0700"))
            .arg("berth-full-disk")
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs as root failed");
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Grows the filler file until the filesystem is full, then shrinks it so that `room`
    /// bytes are free.
    fn leave_room(&self, room: usize) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler())
            .expect("open filler");
        let block = vec![0xA5u8; 256 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let len = f.metadata().expect("filler size").len();
        f.set_len(len.saturating_sub(room as u64))
            .expect("shrink filler");
        f.sync_all().expect("sync filler");
    }

    fn free_space(&self) {
        std::fs::remove_file(self.filler()).expect("remove filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Bytes that differ for every `seed`, so no two blobs of the test share a digest.
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32 % 31) as u8
                ^ seed
        })
        .collect()
}

/// Asserts a 507 answer with the error body a full store gives.
async fn assert_full(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 507, "{what}: status");
    let body: serde_json::Value = r.json().await.expect("{what}: error body");
    let error = &body["errors"][0];
    assert_eq!(error["code"], "UNKNOWN", "{what}: {body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("full"),
        "{what}: the message must say the storage is full: {body}"
    );
}

async fn pull(s: &TestServer, repo: &str, what: &str) -> Option<Vec<u8>> {
    let r = s
        .client
        .get(s.url(&format!("/v2/{repo}/{what}")))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        )
        .send()
        .await
        .expect("pull");
    match r.status().as_u16() {
        200 => Some(r.bytes().await.expect("pull body").to_vec()),
        404 => None,
        other => panic!("pull {repo}/{what}: unexpected {other}"),
    }
}

/// A pushed image: its tag, its manifest's bytes and the bytes of its blobs.
type Pushed = (String, Vec<u8>, Vec<Vec<u8>>);

/// Every image the test pushed is served with its exact bytes.
async fn assert_intact(s: &TestServer, images: &[Pushed]) {
    for (tag, manifest, blobs) in images {
        let served = pull(s, "disk/app", &format!("manifests/{tag}"))
            .await
            .unwrap_or_else(|| panic!("manifest {tag} lost"));
        assert_eq!(&served, manifest, "manifest {tag} altered");
        for blob in blobs {
            let digest = sha256(blob);
            let served = pull(s, "disk/app", &format!("blobs/{digest}"))
                .await
                .unwrap_or_else(|| panic!("blob {digest} lost"));
            assert!(served == *blob, "blob {digest} altered");
        }
    }
}

/// Pushes an image with one layer of `layer` bytes; returns (tag, manifest, [config, layer]).
async fn push(
    s: &TestServer,
    tag: &str,
    seed: u8,
    layer: usize,
) -> (String, Vec<u8>, Vec<Vec<u8>>) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layer = data(seed, layer);
    let c = push_blob(&s.client, &s.base, "disk/app", &config).await;
    let l = push_blob(&s.client, &s.base, "disk/app", &layer).await;
    let manifest = image_manifest((&c, config.len()), &[(&l, layer.len())]);
    let r = put_manifest(s, tag, &manifest).await;
    assert_eq!(r.status(), 201, "push {tag}");
    (tag.to_string(), manifest, vec![config, layer])
}

async fn put_manifest(s: &TestServer, tag: &str, manifest: &[u8]) -> reqwest::Response {
    s.client
        .put(s.url(&format!("/v2/disk/app/manifests/{tag}")))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_vec())
        .send()
        .await
        .expect("put manifest")
}

async fn post_blob(s: &TestServer, bytes: &[u8]) -> reqwest::Response {
    s.client
        .post(s.url(&format!(
            "/v2/disk/app/blobs/uploads/?digest={}",
            sha256(bytes)
        )))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("post blob")
}

async fn upload_offset(s: &TestServer, location: &str) -> u64 {
    let r = s
        .client
        .get(s.url(location))
        .send()
        .await
        .expect("upload status");
    assert_eq!(r.status(), 204, "upload status");
    let range = r.headers()["range"].to_str().expect("range").to_string();
    let end: u64 = range
        .strip_prefix("0-")
        .and_then(|e| e.parse().ok())
        .expect("range form");
    end + 1
}

async fn patch(s: &TestServer, location: &str, from: usize, bytes: &[u8]) -> reqwest::Response {
    s.client
        .patch(s.url(location))
        .header("content-type", "application/octet-stream")
        .header(
            "content-range",
            format!("{from}-{}", from + bytes.len() - 1),
        )
        .body(bytes.to_vec())
        .send()
        .await
        .expect("patch")
}

/// Files of the data directory whose names say they are temporary.
fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_type().expect("type").is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".staged") || n.ends_with(".tmp"))
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn a_full_disk_refuses_pushes_clearly_keeps_what_was_stored_and_recovers() {
    if skip_on_s3("full_disk: the blobs are in the bucket, not on the disk under test") {
        return;
    }
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let data_dir = disk.path().join("data");
    std::fs::create_dir(&data_dir).expect("data dir");
    let s = TestServer::start_on(&data_dir).await;

    // Content stored while there is room.
    let mut images = Vec::new();
    for (i, size) in [MIB, 3 * MIB, 64 * 1024].into_iter().enumerate() {
        images.push(push(&s, &format!("before-{i}"), i as u8 + 1, size).await);
    }
    assert_intact(&s, &images).await;

    // A chunked upload holding one chunk when the disk fills up.
    let r = s
        .client
        .post(s.url("/v2/disk/app/blobs/uploads/"))
        .send()
        .await
        .expect("start upload");
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let chunked = data(40, 6 * MIB);
    let first = MIB / 2;
    assert_eq!(
        patch(&s, &location, 0, &chunked[..first]).await.status(),
        202
    );

    // Two MiB left: a six-MiB blob does not fit, in one POST or as a chunk.
    disk.leave_room(2 * MIB);
    let big = data(50, 6 * MIB);
    assert_full(post_blob(&s, &big).await, "monolithic push past the limit").await;
    assert_full(
        patch(&s, &location, first, &chunked[first..]).await,
        "chunk past the limit",
    )
    .await;
    assert_eq!(
        upload_offset(&s, &location).await,
        first as u64,
        "a refused chunk leaves the upload as it was"
    );
    // What fits still goes in.
    let small = data(60, 256 * 1024);
    assert_eq!(
        post_blob(&s, &small).await.status(),
        201,
        "a blob that fits"
    );

    // No room at all: whatever a push needs to write is refused as full, never a 500.
    disk.leave_room(0);
    let r = post_blob(&s, &data(70, 512 * 1024)).await;
    assert_full(r, "blob push on a full disk").await;
    let config = images[0].2[0].clone();
    let manifest = image_manifest(
        (&sha256(&config), config.len()),
        &[(&sha256(&small), small.len())],
    );
    let mut refused_manifest = 0;
    for i in 0..20 {
        let r = put_manifest(&s, &format!("full-{i}"), &manifest).await;
        match r.status().as_u16() {
            // SQLite may still have room in pages it already owns.
            201 => {}
            _ => {
                assert_full(r, "manifest push on a full disk").await;
                refused_manifest += 1;
            }
        }
    }
    eprintln!("full_disk: {refused_manifest} of 20 manifest pushes refused on a full disk");
    // On PostgreSQL the metadata lives on the database server's disk, not the one filled here.
    assert!(
        refused_manifest > 0 || postgres_under_test().is_some(),
        "the metadata database must run out of room too, or this test proves nothing about it"
    );

    // berth is up and everything stored before is intact.
    let r = s.client.get(s.url("/v2/")).send().await.expect("ping");
    assert_eq!(r.status(), 200);
    assert_intact(&s, &images).await;
    let r = s
        .client
        .get(s.url("/v2/disk/app/tags/list"))
        .send()
        .await
        .expect("tags");
    assert_eq!(r.status(), 200);

    // Room again: the interrupted upload continues where it stopped, and new pushes work.
    disk.free_space();
    assert_eq!(upload_offset(&s, &location).await, first as u64);
    assert_eq!(
        patch(&s, &location, first, &chunked[first..])
            .await
            .status(),
        202
    );
    let r = s
        .client
        .put(s.url(&format!(
            "{location}{}digest={}",
            if location.contains('?') { '&' } else { '?' },
            sha256(&chunked)
        )))
        .send()
        .await
        .expect("finish upload");
    assert_eq!(r.status(), 201, "finish the upload after space is freed");
    assert_eq!(post_blob(&s, &big).await.status(), 201);
    let manifest = image_manifest(
        (&sha256(&config), config.len()),
        &[
            (&sha256(&big), big.len()),
            (&sha256(&chunked), chunked.len()),
        ],
    );
    assert_eq!(put_manifest(&s, "after", &manifest).await.status(), 201);
    images.push((
        "after".to_string(),
        manifest,
        vec![config.clone(), big, chunked],
    ));
    images.push(push(&s, "after-2", 80, MIB).await);
    assert_intact(&s, &images).await;

    // Refused writes left nothing temporary behind.
    assert_eq!(temporary_files(&data_dir), Vec::<PathBuf>::new());

    // And a restart on the same disk serves all of it.
    let s = s.restart().await;
    assert_intact(&s, &images).await;
}
