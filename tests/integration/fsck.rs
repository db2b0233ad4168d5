//! `berth fsck` against content pushed over HTTP and then damaged behind berth's back (files
//! on the filesystem, objects through the S3 API, rows through SQL): what it reports, its exit
//! status, and what `--repair` does.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::json;

const REPO: &str = "userorg/app";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;

/// An image pushed for a test.
struct Image {
    manifest: String,
    manifest_len: usize,
    layer: String,
    layer_bytes: Vec<u8>,
}

async fn image(s: &TestServer, repo: &str, tag: &str, seed: u8, len: usize) -> Image {
    let layer_bytes = sample(seed, len);
    let manifest = push_image(&s.client, &s.base, repo, tag, &layer_bytes).await;
    // The manifest push_image sends.
    let sent = image_manifest(
        (&sha256(CONFIG), CONFIG.len()),
        &[(&sha256(&layer_bytes), layer_bytes.len())],
    );
    assert_eq!(sha256(&sent), manifest);
    Image {
        manifest,
        manifest_len: sent.len(),
        layer: sha256(&layer_bytes),
        layer_bytes,
    }
}

async fn fsck(s: &TestServer, args: &[&str]) -> CliOutput {
    let mut all = vec!["fsck"];
    all.extend_from_slice(args);
    berth_cli(s.data_dir(), &all, None).await
}

fn lines(out: &CliOutput) -> Vec<&str> {
    out.stdout.lines().collect()
}

/// The same bytes with every byte changed (the length stays).
fn altered(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| b ^ 0x5a).collect()
}

async fn blob_status(s: &TestServer, digest: &str) -> u16 {
    s.get(&format!("/v2/{REPO}/blobs/{digest}"))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_clean_store_passes() {
    let s = TestServer::start().await;
    let a = image(&s, REPO, "a", 1, 3000).await;
    let b = image(&s, REPO, "b", 2, 5000).await;
    // An index over both, and a manifest whose subject was never pushed (allowed at push).
    let children: Vec<serde_json::Value> = [&a, &b]
        .iter()
        .map(|i| json!({"mediaType": MANIFEST, "digest": i.manifest, "size": i.manifest_len}))
        .collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": children,
    }))
    .unwrap();
    let r = put_manifest(&s.client, &s.base, REPO, "multi", INDEX, &index).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let config = s.push(REPO, CONFIG).await;
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": CONFIG.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": a.layer, "size": 3000}],
        "subject": {"mediaType": MANIFEST, "digest": sha256(b"never pushed"), "size": 12},
    }))
    .unwrap();
    let r = put_manifest(
        &s.client,
        &s.base,
        REPO,
        &sha256(&referrer),
        MANIFEST,
        &referrer,
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());

    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(lines(&out), Vec::<&str>::new());
    let summary = format!(
        "checked 3 blobs ({} bytes), 4 manifests, 3 tags, 0 uploads: 0 problems, 0 warnings",
        3000 + 5000 + CONFIG.len()
    );
    assert!(out.stderr.contains(&summary), "{}", out.stderr);
}

#[tokio::test]
async fn an_altered_blob_is_named_with_its_manifest() {
    let s = TestServer::start().await;
    let img = image(&s, REPO, "v1", 3, 4000).await;
    let _other = image(&s, REPO, "v2", 4, 4000).await;
    let raw = RawStorage::of(s.data_dir());
    let bad = altered(&img.layer_bytes);
    raw.write(&blob_name(&img.layer), &bad).await;

    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        lines(&out),
        [
            format!(
                "corrupt blob {} expected size 4000, got digest {} size 4000",
                img.layer,
                sha256(&bad)
            ),
            format!(
                "broken manifest {REPO}@{}: layer {} corrupt",
                img.manifest, img.layer
            ),
        ]
    );
    assert!(out.stderr.contains("2 problems"), "{}", out.stderr);
    // Without --repair nothing changed.
    assert_eq!(raw.read(&blob_name(&img.layer)).await, Some(bad));
}

#[tokio::test]
async fn a_layer_deleted_behind_berths_back_names_the_manifest() {
    let s = TestServer::start().await;
    let img = image(&s, REPO, "v1", 5, 2500).await;
    let raw = RawStorage::of(s.data_dir());
    raw.delete(&blob_name(&img.layer)).await;

    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let broken = format!(
        "broken manifest {REPO}@{}: layer {} missing",
        img.manifest, img.layer
    );
    assert_eq!(
        lines(&out),
        [
            format!("missing blob {} size 2500", img.layer),
            broken.clone()
        ]
    );

    // Repair forgets the blob, so the client's push uploads it again instead of skipping it.
    let out = fsck(&s, &["--repair"]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        lines(&out),
        [
            format!("missing blob {} size 2500", img.layer),
            format!("forgot missing blob {} (linked in {REPO})", img.layer),
            broken.clone(),
        ]
    );
    let head = s.head(&format!("/v2/{REPO}/blobs/{}", img.layer)).await;
    assert_eq!(head.status(), 404);
    let out = fsck(&s, &[]).await;
    assert_eq!(lines(&out), [broken]);

    s.push(REPO, &img.layer_bytes).await;
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(lines(&out), Vec::<&str>::new());
}

#[tokio::test]
async fn repair_quarantines_an_altered_blob_and_a_push_restores_it() {
    let s = TestServer::start().await;
    let img = image(&s, REPO, "v1", 6, 6000).await;
    let raw = RawStorage::of(s.data_dir());
    let bad = altered(&img.layer_bytes);
    raw.write(&blob_name(&img.layer), &bad).await;

    let out = fsck(&s, &["--repair"]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let found = lines(&out);
    assert_eq!(found.len(), 3, "{}", out.stdout);
    assert_eq!(
        found[0],
        format!(
            "corrupt blob {} expected size 6000, got digest {} size 6000",
            img.layer,
            sha256(&bad)
        )
    );
    let quarantined = format!("quarantined blob {} to ", img.layer);
    assert!(found[1].starts_with(&quarantined), "{}", found[1]);
    assert!(
        found[1].ends_with(&format!(" (linked in {REPO})")),
        "{}",
        found[1]
    );
    // After the repair the layer is unknown, so the manifest lacks it.
    let broken = format!(
        "broken manifest {REPO}@{}: layer {} missing",
        img.manifest, img.layer
    );
    assert_eq!(found[2], broken);
    assert!(
        out.stderr.contains("repair quarantined 1 blobs"),
        "{}",
        out.stderr
    );

    // The bytes moved, unchanged, to the quarantine area the line names.
    let kept = raw.list("quarantine").await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let hex = img.layer.strip_prefix("sha256:").unwrap();
    assert!(
        kept[0].starts_with(&format!("quarantine/sha256/{hex}.")),
        "{kept:?}"
    );
    assert!(
        found[1].contains(&kept[0]),
        "{} names {}",
        found[1],
        kept[0]
    );
    assert_eq!(raw.read(&kept[0]).await, Some(bad.clone()));
    assert_eq!(raw.read(&blob_name(&img.layer)).await, None);

    // berth no longer serves the wrong bytes; the manifest stays.
    assert_eq!(blob_status(&s, &img.layer).await, 404);
    let r = s
        .client
        .get(s.url(&format!("/v2/{REPO}/manifests/v1")))
        .header("accept", MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A second check reports only what repair could not fix.
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(lines(&out), [broken]);

    // The client pushes the right bytes again (its HEAD says the blob is unknown).
    s.push(REPO, &img.layer_bytes).await;
    assert_eq!(s.pull(REPO, &img.layer).await, img.layer_bytes);
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(lines(&out), Vec::<&str>::new());
    assert_eq!(raw.read(&kept[0]).await, Some(bad), "quarantine is kept");
}

#[tokio::test]
async fn orphaned_bytes_are_a_warning() {
    let s = TestServer::start().await;
    image(&s, REPO, "v1", 7, 1000).await;
    let orphan = sample(8, 1234);
    let raw = RawStorage::of(s.data_dir());
    raw.write(&blob_name(&sha256(&orphan)), &orphan).await;
    // The check counts bytes older than its start as orphans.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        lines(&out),
        [format!(
            "warning: orphan blob {} size 1234",
            sha256(&orphan)
        )]
    );
    assert!(
        out.stderr.contains("0 problems, 1 warnings"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn an_upload_whose_data_is_gone_is_broken() {
    let s = TestServer::start().await;
    let location = s.upload(REPO).await;
    let chunk = sample(9, 700);
    let r = s.patch(&location, Some("0-699"), &chunk).await;
    assert_chunk_accepted(&r, &location, 700);
    let id = location
        .split('/')
        .next_back()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);

    let raw = RawStorage::of(s.data_dir());
    let stored = raw.list(&format!("uploads/{id}")).await;
    let stored = if stored.is_empty() {
        vec![format!("uploads/{id}")]
    } else {
        stored
    };
    for name in stored {
        raw.delete(&name).await;
    }
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        lines(&out),
        [format!(
            "broken upload {REPO} {id}: data missing (recorded 700 bytes)"
        )]
    );
}

#[tokio::test]
async fn altered_manifest_bytes_are_corrupt() {
    let s = TestServer::start().await;
    let img = image(&s, REPO, "v1", 10, 900).await;
    let forged = br#"{"schemaVersion":2}"#;
    execute_sql(
        &s,
        "UPDATE manifest_contents SET content = ?1 WHERE digest = ?2",
        forged,
        &img.manifest,
    )
    .await;
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        lines(&out),
        [format!(
            "corrupt manifest {REPO}@{}: content hashes to {}",
            img.manifest,
            sha256(forged)
        )]
    );
}

#[tokio::test]
async fn references_lost_from_metadata_are_inconsistent() {
    let s = TestServer::start().await;
    let img = image(&s, REPO, "v1", 12, 900).await;
    // What keeps the manifest's blobs from garbage collection, gone behind berth's back.
    execute_sql(
        &s,
        "DELETE FROM manifest_references WHERE manifest_digest = ?2 AND length(?1) > 0",
        b"x",
        &img.manifest,
    )
    .await;
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        lines(&out),
        [format!(
            "inconsistent manifest {REPO}@{}: recorded references differ from its content",
            img.manifest
        )]
    );
}

/// Runs one statement with a bytes and a text parameter against the server's database.
async fn execute_sql(s: &TestServer, sql: &'static str, bytes: &[u8], text: &str) {
    match s.database_uri() {
        berth::config::DatabaseUri::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("open sqlite");
            sqlx::query(sql)
                .bind(bytes)
                .bind(text)
                .execute(&pool)
                .await
                .expect("sql");
        }
        berth::config::DatabaseUri::Postgres(uri) => {
            let pool = sqlx::PgPool::connect(&uri).await.expect("open postgres");
            // The test's own statement with PostgreSQL's placeholders: no outside input.
            sqlx::query(sqlx::AssertSqlSafe(sql.replace('?', "$")))
                .bind(bytes)
                .bind(text)
                .execute(&pool)
                .await
                .expect("sql");
        }
    }
}

#[tokio::test]
async fn repair_waits_for_no_collector() {
    let s = TestServer::start().await;
    image(&s, REPO, "v1", 11, 800).await;
    let meta = s.metadata_store().await;
    assert!(meta
        .try_lease("gc", "another-collector", Duration::from_secs(300))
        .await
        .unwrap());
    let out = fsck(&s, &["--repair"]).await;
    assert_eq!(out.code, Some(2), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("gc lease"), "{}", out.stderr);
    // A check without repair needs no lease.
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    meta.release_lease("gc", "another-collector").await.unwrap();
    let bad = fsck(&s, &["--bogus"]).await;
    assert_eq!(bad.code, Some(2), "usage errors exit 2: {}", bad.stderr);
}
