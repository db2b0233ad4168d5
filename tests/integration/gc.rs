//! Garbage collection over HTTP-pushed content: what is collected, what survives (tags, tag
//! history, grace period, indexes, referrers), dry runs, the lease, stale uploads, and `berth gc`.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use berth::config::Settings;
use berth::gc::{Collected, GcSettings, Report};
use common::*;
use serde_json::json;

const REPO: &str = "userorg/app";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Collects everything unreachable at once: no grace period, no tag history.
fn eager() -> GcSettings {
    GcSettings {
        grace: Duration::ZERO,
        tag_expiration: Duration::ZERO,
        ..GcSettings::default()
    }
}

fn settings_with(gc: GcSettings) -> Settings {
    Settings {
        gc,
        ..Settings::default()
    }
}

async fn run(s: &TestServer, gc: &GcSettings, dry_run: bool) -> Report {
    s.collector()
        .await
        .run(gc, dry_run, &|_| {})
        .await
        .expect("gc run")
}

fn listed(report: &Report) -> BTreeSet<String> {
    report.collected.iter().map(ToString::to_string).collect()
}

/// Pushes config + layer and a manifest under `tag`; returns (manifest, config, layer) digests.
async fn image(s: &TestServer, repo: &str, tag: &str, layer: &[u8]) -> (String, String, String) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = s.push(repo, config).await;
    let l = s.push(repo, layer).await;
    let manifest = image_manifest((&c, config.len()), &[(&l, layer.len())]);
    let r = put_manifest(&s.client, &s.base, repo, tag, MANIFEST, &manifest).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    (sha256(&manifest), c, l)
}

async fn blob_status(s: &TestServer, repo: &str, digest: &str) -> u16 {
    s.head(&format!("/v2/{repo}/blobs/{digest}"))
        .await
        .status()
        .as_u16()
}

async fn manifest_status(s: &TestServer, repo: &str, reference: &str) -> u16 {
    s.client
        .get(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", MANIFEST)
        .send()
        .await
        .expect("GET manifest")
        .status()
        .as_u16()
}

async fn stored_bytes(s: &TestServer, digest: &str) -> bool {
    let blobs = berth::open_blob_store(s.data_dir(), s.settings())
        .await
        .expect("blob store");
    blobs
        .stat(&digest.parse().expect("digest"))
        .await
        .expect("stat")
        .is_some()
}

#[tokio::test]
async fn unreachable_manifests_and_blobs_go_and_tagged_images_stay() {
    let gc = eager();
    let s = TestServer::start_with(settings_with(gc.clone())).await;
    let (m1, config, l1) = image(&s, REPO, "v1", &sample(1, 5000)).await;
    let (m2, _, l2) = image(&s, REPO, "v2", &sample(2, 7000)).await;
    let orphan = s.push(REPO, &sample(3, 3000)).await;
    assert_eq!(
        s.delete(&format!("/v2/{REPO}/manifests/v2")).await.status(),
        202
    );

    let dry = run(&s, &gc, true).await;
    let expected: BTreeSet<String> = [
        format!("manifest {REPO}@{m2}"),
        format!("blob {l2} 7000"),
        format!("blob {orphan} 3000"),
    ]
    .into_iter()
    .collect();
    assert_eq!(listed(&dry), expected, "{}", dry.summary());
    assert!(dry.dry_run);
    // A dry run changes nothing.
    assert_eq!(manifest_status(&s, REPO, &m2).await, 200);
    assert!(stored_bytes(&s, &l2).await);

    let real = run(&s, &gc, false).await;
    assert_eq!(
        listed(&real),
        expected,
        "a run deletes exactly what the dry run listed"
    );
    assert_eq!(real.bytes_freed(), 10_000);
    assert_eq!(manifest_status(&s, REPO, &m2).await, 404);
    for gone in [&l2, &orphan] {
        assert_eq!(blob_status(&s, REPO, gone).await, 404);
        assert!(!stored_bytes(&s, gone).await, "bytes of {gone} deleted");
    }
    // The tagged image is whole; its config was shared with the collected one.
    assert_eq!(manifest_status(&s, REPO, "v1").await, 200);
    assert_eq!(manifest_status(&s, REPO, &m1).await, 200);
    assert_eq!(s.pull(REPO, &l1).await, sample(1, 5000));
    assert_eq!(blob_status(&s, REPO, &config).await, 200);

    // Nothing left: a second run deletes nothing.
    let again = run(&s, &gc, false).await;
    assert!(again.collected.is_empty(), "{}", again.summary());
}

#[tokio::test]
async fn the_grace_period_protects_what_was_just_pushed() {
    let s = TestServer::start().await;
    let layer = s.push(REPO, &sample(4, 1000)).await;
    let untagged = image_manifest((&layer, 1000), &[]);
    let digest = sha256(&untagged);
    let r = put_manifest(&s.client, &s.base, REPO, &digest, MANIFEST, &untagged).await;
    assert_eq!(r.status(), 201);
    let report = run(&s, &GcSettings::default(), false).await;
    assert!(report.collected.is_empty(), "{}", report.summary());
    assert_eq!(blob_status(&s, REPO, &layer).await, 200);
    assert_eq!(manifest_status(&s, REPO, &digest).await, 200);
}

async fn restore(s: &TestServer, tag: &str, digest: &str) -> ApiReply {
    s.api(
        "POST",
        &format!("/api/v1/repository/{REPO}/tag/{tag}/restore"),
        Some(json!({ "manifest_digest": digest })),
    )
    .await
}

#[tokio::test]
async fn deleted_and_moved_tags_are_restorable_and_keep_their_manifest() {
    let gc = GcSettings {
        grace: Duration::ZERO,
        ..GcSettings::default()
    };
    let s = TestServer::start_with(settings_with(gc.clone())).await;
    let (old, _, old_layer) = image(&s, REPO, "latest", &sample(5, 2000)).await;
    // Moving `latest` to a new image and deleting `gone` both leave history.
    let (new, _, _) = image(&s, REPO, "latest", &sample(6, 2000)).await;
    let (deleted, _, _) = image(&s, REPO, "gone", &sample(7, 2000)).await;
    assert_eq!(
        s.delete(&format!("/v2/{REPO}/manifests/gone"))
            .await
            .status(),
        202
    );

    let report = run(&s, &gc, false).await;
    assert!(
        report.collected.is_empty(),
        "history keeps manifests: {}",
        report.summary()
    );
    assert_eq!(s.pull(REPO, &old_layer).await, sample(5, 2000));

    let history = s
        .api(
            "GET",
            &format!("/api/v1/repository/{REPO}/tag/?onlyActiveTags=false"),
            None,
        )
        .await;
    assert_eq!(history.status, 200);
    let entries = history.body["tags"].as_array().expect("tags").clone();
    let ended: Vec<(String, String)> = entries
        .iter()
        .filter(|t| t.get("end_ts").is_some())
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["manifest_digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        ended.contains(&("latest".into(), old.clone())),
        "{entries:?}"
    );
    assert!(
        ended.contains(&("gone".into(), deleted.clone())),
        "{entries:?}"
    );

    assert_eq!(restore(&s, "gone", &deleted).await.status, 200);
    assert_eq!(manifest_status(&s, REPO, "gone").await, 200);
    assert_eq!(restore(&s, "latest", &old).await.status, 200);
    let r = s
        .client
        .get(s.url(&format!("/v2/{REPO}/manifests/latest")))
        .header("accept", MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "docker-content-digest"), old);
    // A tag never pointed at a manifest: nothing to restore.
    assert_eq!(restore(&s, "gone", &new).await.status, 404);
    assert_eq!(restore(&s, "gone", "sha256:not-a-digest").await.status, 400);
    assert_eq!(
        s.api(
            "POST",
            &format!("/api/v1/repository/{REPO}/tag/gone/restore"),
            Some(json!({}))
        )
        .await
        .status,
        400
    );
}

#[tokio::test]
async fn expired_history_no_longer_keeps_a_manifest() {
    let gc = eager();
    let s = TestServer::start_with(settings_with(gc.clone())).await;
    let (m, _, layer) = image(&s, REPO, "short-lived", &sample(8, 1500)).await;
    assert_eq!(
        s.delete(&format!("/v2/{REPO}/manifests/short-lived"))
            .await
            .status(),
        202
    );
    let report = run(&s, &gc, false).await;
    assert!(
        listed(&report).contains(&format!("manifest {REPO}@{m}")),
        "{}",
        report.summary()
    );
    assert!(listed(&report).contains(&format!("blob {layer} 1500")));
    let restore = s
        .api(
            "POST",
            &format!("/api/v1/repository/{REPO}/tag/short-lived/restore"),
            Some(json!({ "manifest_digest": m })),
        )
        .await;
    assert_eq!(restore.status, 404);
}

#[tokio::test]
async fn indexes_keep_their_children_and_subjects_their_referrers() {
    let gc = eager();
    let s = TestServer::start_with(settings_with(gc.clone())).await;
    let (child, _, child_layer) = image(&s, REPO, "child-tmp", &sample(9, 1200)).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": MANIFEST, "digest": child, "size": 0,
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    // The descriptor's size must be the child's real size.
    let child_size = s
        .client
        .get(s.url(&format!("/v2/{REPO}/manifests/{child}")))
        .header("accept", MANIFEST)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    let index = String::from_utf8(index)
        .unwrap()
        .replace("\"size\":0", &format!("\"size\":{child_size}"))
        .into_bytes();
    let r = put_manifest(
        &s.client,
        &s.base,
        REPO,
        "multi",
        "application/vnd.oci.image.index.v1+json",
        &index,
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    // The child keeps no tag of its own.
    assert_eq!(
        s.delete(&format!("/v2/{REPO}/manifests/child-tmp"))
            .await
            .status(),
        202
    );
    let (subject, _, _) = image(&s, REPO, "signed", &sample(10, 900)).await;
    let referrer = push_referrer(&s.client, &s.base, REPO, &subject).await;

    let report = run(&s, &gc, false).await;
    assert!(report.collected.is_empty(), "{}", report.summary());
    assert_eq!(manifest_status(&s, REPO, &child).await, 200);
    assert_eq!(s.pull(REPO, &child_layer).await, sample(9, 1200));
    assert_eq!(manifest_status(&s, REPO, &referrer).await, 200);

    // Untagging the subject and the index takes their referrer and children along.
    for tag in ["signed", "multi"] {
        assert_eq!(
            s.delete(&format!("/v2/{REPO}/manifests/{tag}"))
                .await
                .status(),
            202
        );
    }
    let report = run(&s, &gc, false).await;
    let got = listed(&report);
    for m in [&child, &subject, &referrer] {
        assert!(
            got.contains(&format!("manifest {REPO}@{m}")),
            "{m} in {got:?}"
        );
    }
    assert_eq!(manifest_status(&s, REPO, &referrer).await, 404);
    assert_eq!(blob_status(&s, REPO, &child_layer).await, 404);
}

#[tokio::test]
async fn one_collector_at_a_time() {
    let s = TestServer::start().await;
    let meta = s.metadata_store().await;
    assert!(meta
        .try_lease("gc", "someone-else", Duration::from_secs(60))
        .await
        .unwrap());
    let report = run(&s, &eager(), false).await;
    assert!(report.busy, "{}", report.summary());
    meta.release_lease("gc", "someone-else").await.unwrap();
    let report = run(&s, &eager(), false).await;
    assert!(!report.busy);
    // An expired lease is free.
    assert!(meta
        .try_lease("gc", "crashed", Duration::ZERO)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(!run(&s, &eager(), false).await.busy);
}

#[tokio::test]
async fn abandoned_uploads_expire() {
    let s = TestServer::start().await;
    let location = s.upload(REPO).await;
    let r = s.patch(&location, Some("0-99"), &sample(11, 100)).await;
    assert_eq!(r.status(), 202);
    let keep = GcSettings::default();
    assert!(run(&s, &keep, false).await.collected.is_empty());
    let expire = GcSettings {
        upload_max_age: Duration::ZERO,
        ..GcSettings::default()
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = run(&s, &expire, false).await;
    assert_eq!(report.collected.len(), 1, "{}", report.summary());
    assert!(
        matches!(&report.collected[0], Collected::Upload { repository, .. } if repository.as_str() == REPO)
    );
    assert_error(s.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn the_gc_command_lists_then_deletes_the_same_items() {
    let s = TestServer::start().await;
    let (_, _, _) = image(&s, REPO, "keep", &sample(12, 800)).await;
    let (_, _, dropped) = image(&s, REPO, "drop", &sample(13, 800)).await;
    assert_eq!(
        s.delete(&format!("/v2/{REPO}/manifests/drop"))
            .await
            .status(),
        202
    );
    let config = s.data_dir().join("gc.yaml");
    // The harness's storage keys (its S3 prefix under S3), then the collection's.
    let storage = test_storage_for(s.data_dir())
        .map(|st| storage_config_yaml(&st))
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!("{storage}GC_GRACE_SECONDS: 0\nDEFAULT_TAG_EXPIRATION: 0s\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let dry = berth_cli(s.data_dir(), &["gc", "--dry-run", "--config", config], None).await;
    assert!(dry.success, "{}", dry.stderr);
    let real = berth_cli(s.data_dir(), &["gc", "--config", config], None).await;
    assert!(real.success, "{}", real.stderr);
    let lines = |out: &str| out.lines().map(str::to_string).collect::<BTreeSet<_>>();
    assert_eq!(lines(&dry.stdout), lines(&real.stdout));
    assert_eq!(
        dry.stdout.lines().count(),
        2,
        "one manifest and one layer: {}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains(&format!("blob {dropped} 800")),
        "{}",
        dry.stdout
    );
    assert!(
        real.stderr.contains("deleted 1 manifests, 1 blobs"),
        "{}",
        real.stderr
    );
    assert!(dry.stderr.contains("would delete"), "{}", dry.stderr);
    assert_eq!(blob_status(&s, REPO, &dropped).await, 404);
    assert!(
        !stored_bytes(&s, &dropped).await,
        "the CLI deleted the bytes where the server keeps them"
    );
    let bad = berth_cli(s.data_dir(), &["gc", "--bogus"], None).await;
    assert!(!bad.success);
}

#[tokio::test]
async fn the_server_collects_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let storage = test_storage_for(dir.path())
        .map(|st| storage_config_yaml(&st))
        .unwrap_or_default();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "{storage}GC_INTERVAL_SECONDS: 1\nGC_GRACE_SECONDS: 0\nDEFAULT_TAG_EXPIRATION: 0s\n"
        ),
    )
    .unwrap();
    let server = ProcessServer::spawn_with_config(dir.path(), Some(config)).await;
    let orphan = push_blob(&server.client, &server.base, REPO, &sample(14, 600)).await;
    assert!(
        server
            .log
            .wait_for(
                "garbage collection: deleted 0 manifests, 1 blobs",
                1,
                Duration::from_secs(20)
            )
            .await,
        "a periodic run collected the orphan"
    );
    let r = exec(
        server
            .client
            .head(format!("{}/v2/{REPO}/blobs/{orphan}", server.base)),
    )
    .await;
    assert_eq!(r.status(), 404);
}
