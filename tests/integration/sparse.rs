//! Sparse manifests (`FEATURE_SPARSE_INDEX` with `SPARSE_INDEX_REQUIRED_ARCHS`,
//! `FEATURE_SPARSE_MANIFESTS`): what a push may leave absent, what pulls answer, switching the
//! flags by reloading the settings, and what `berth fsck` and garbage collection make of them.

use crate::common;

use std::time::Duration;

use berth::config::Settings;
use berth::gc::GcSettings;
use berth::registry::SparseSettings;
use common::*;
use serde_json::{json, Value};

const REPO: &str = "userorg/mirror";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;

fn settings(index: bool, required: &[&str], manifests: bool) -> Settings {
    Settings {
        sparse: SparseSettings {
            index,
            required_archs: required.iter().map(|a| a.to_string()).collect(),
            manifests,
        },
        // Collections in these tests keep nothing for its age alone.
        gc: GcSettings {
            grace: Duration::ZERO,
            tag_expiration: Duration::ZERO,
            ..GcSettings::default()
        },
        ..Settings::default()
    }
}

/// Applies `settings` as a reload of the config file does.
fn reload(s: &TestServer, settings: Settings) {
    s.state().apply_settings(settings);
}

/// An image whose blobs are not pushed: its manifest bytes and its layer.
fn image_bytes(seed: u8) -> (Vec<u8>, Vec<u8>) {
    let layer = sample(seed, 700);
    let manifest = image_manifest(
        (&sha256(CONFIG), CONFIG.len()),
        &[(&sha256(&layer), layer.len())],
    );
    (manifest, layer)
}

/// Pushes an image's blobs and its manifest by digest; returns the manifest bytes.
async fn push_whole_image(s: &TestServer, seed: u8) -> Vec<u8> {
    let (manifest, layer) = image_bytes(seed);
    s.push(REPO, CONFIG).await;
    s.push(REPO, &layer).await;
    put_ok(s, &sha256(&manifest), MANIFEST, &manifest).await;
    manifest
}

/// An index over `children` (manifest bytes, architecture or none).
fn index_of(children: &[(&[u8], Option<&str>)]) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(bytes, arch)| {
            let mut d =
                json!({"mediaType": MANIFEST, "digest": sha256(bytes), "size": bytes.len()});
            if let Some(a) = arch {
                d["platform"] = json!({"os": "linux", "architecture": a});
            }
            d
        })
        .collect();
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}))
        .unwrap()
}

async fn put(s: &TestServer, reference: &str, ct: &str, body: &[u8]) -> reqwest::Response {
    put_manifest(&s.client, &s.base, REPO, reference, ct, body).await
}

async fn put_ok(s: &TestServer, reference: &str, ct: &str, body: &[u8]) {
    let r = put(s, reference, ct, body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

async fn get_manifest(s: &TestServer, reference: &str) -> reqwest::Response {
    s.client
        .get(s.url(&format!("/v2/{REPO}/manifests/{reference}")))
        .header("accept", format!("{MANIFEST}, {INDEX}"))
        .send()
        .await
        .expect("GET manifest")
}

async fn assert_pulls(s: &TestServer, reference: &str, body: &[u8]) {
    let r = get_manifest(s, reference).await;
    assert_eq!(r.status(), 200, "GET {reference}");
    assert_eq!(r.bytes().await.unwrap(), body, "{reference}");
}

async fn assert_manifest_unknown(s: &TestServer, reference: &str) {
    assert_error(get_manifest(s, reference).await, 404, "MANIFEST_UNKNOWN").await;
    let head = s.head(&format!("/v2/{REPO}/manifests/{reference}")).await;
    assert_eq!(head.status(), 404);
}

async fn assert_blob_unknown(s: &TestServer, digest: &str) {
    let path = format!("/v2/{REPO}/blobs/{digest}");
    assert_error(s.get(&path).await, 404, "BLOB_UNKNOWN").await;
    assert_eq!(s.head(&path).await.status(), 404);
}

#[tokio::test]
async fn a_sparse_index_needs_the_flag_and_links_a_child_pushed_later() {
    let s = TestServer::start().await;
    let amd64 = push_whole_image(&s, 1).await;
    let (arm64, arm64_layer) = image_bytes(2);
    let index = index_of(&[(&amd64, Some("amd64")), (&arm64, Some("arm64"))]);

    // Off by default: the absent child is named.
    let r = put(&s, "multi", INDEX, &index).await;
    let body = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(body.to_string().contains(&sha256(&arm64)), "{body}");
    assert_manifest_unknown(&s, "multi").await;

    // Turned on by a reload.
    reload(&s, settings(true, &[], false));
    put_ok(&s, "multi", INDEX, &index).await;
    assert_pulls(&s, "multi", &index).await;
    assert_pulls(&s, &sha256(&index), &index).await;
    assert_pulls(&s, &sha256(&amd64), &amd64).await;
    assert_manifest_unknown(&s, &sha256(&arm64)).await;

    // The absent child arrives later and pulls like any other.
    s.push(REPO, &arm64_layer).await;
    put_ok(&s, &sha256(&arm64), MANIFEST, &arm64).await;
    assert_pulls(&s, &sha256(&arm64), &arm64).await;
    assert_eq!(s.pull(REPO, &sha256(&arm64_layer)).await, arm64_layer);

    // Turned off again: what was accepted stays, a new sparse index is refused.
    reload(&s, settings(false, &[], false));
    assert_pulls(&s, "multi", &index).await;
    let (ppc, _) = image_bytes(3);
    let other = index_of(&[(&amd64, Some("amd64")), (&ppc, Some("ppc64le"))]);
    assert_error(
        put(&s, "other", INDEX, &other).await,
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn required_architectures_must_be_stored() {
    let s = TestServer::start_with(settings(true, &["amd64"], false)).await;
    let amd64 = push_whole_image(&s, 1).await;
    let (absent_amd64, _) = image_bytes(2);
    let (arm64, _) = image_bytes(3);
    let (attestation, _) = image_bytes(4);

    let missing_required = index_of(&[(&absent_amd64, Some("amd64")), (&arm64, Some("arm64"))]);
    let r = put(&s, "bad", INDEX, &missing_required).await;
    let body = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(body.to_string().contains(&sha256(&absent_amd64)), "{body}");

    // Other architectures, and children without a platform, may be absent.
    let index = index_of(&[
        (&amd64, Some("amd64")),
        (&arm64, Some("arm64")),
        (&attestation, None),
    ]);
    put_ok(&s, "good", INDEX, &index).await;
    assert_pulls(&s, "good", &index).await;
    assert_manifest_unknown(&s, &sha256(&arm64)).await;
    assert_manifest_unknown(&s, &sha256(&attestation)).await;
}

#[tokio::test]
async fn a_sparse_image_may_omit_layers_but_not_its_config() {
    let s = TestServer::start_with(settings(true, &[], false)).await;
    let (manifest, layer) = image_bytes(5);
    s.push(REPO, CONFIG).await;

    // The index switch says nothing about layers.
    let r = put(&s, "partial", MANIFEST, &manifest).await;
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;

    reload(&s, settings(false, &[], true));
    put_ok(&s, "partial", MANIFEST, &manifest).await;
    assert_pulls(&s, "partial", &manifest).await;
    assert_blob_unknown(&s, &sha256(&layer)).await;
    assert_eq!(s.pull(REPO, &sha256(CONFIG)).await, CONFIG);

    // A config is never optional.
    let other_config = br#"{"architecture":"arm64","os":"linux"}"#;
    let no_config = image_manifest(
        (&sha256(other_config), other_config.len()),
        &[(&sha256(&layer), layer.len())],
    );
    let r = put(&s, "no-config", MANIFEST, &no_config).await;
    let body = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(body.to_string().contains(&sha256(other_config)), "{body}");

    // The layer arrives later.
    s.push(REPO, &layer).await;
    assert_eq!(s.pull(REPO, &sha256(&layer)).await, layer);
}

async fn fsck(s: &TestServer, args: &[&str]) -> CliOutput {
    let mut all = vec!["fsck"];
    all.extend_from_slice(args);
    berth_cli(s.data_dir(), &all, None).await
}

/// A repository with a sparse index (one child absent) and a sparse image (one layer absent),
/// pushed with both flags on; returns (index, absent child, image, absent layer).
async fn sparse_repository(s: &TestServer) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let amd64 = push_whole_image(s, 1).await;
    let (arm64, _) = image_bytes(2);
    let index = index_of(&[(&amd64, Some("amd64")), (&arm64, Some("arm64"))]);
    put_ok(s, "multi", INDEX, &index).await;
    let (image, layer) = image_bytes(3);
    put_ok(s, "partial", MANIFEST, &image).await;
    (index, arm64, image, layer)
}

#[tokio::test]
async fn fsck_accepts_what_was_accepted_sparse() {
    let s = TestServer::start_with(settings(true, &[], true)).await;
    let (index, _, image, _) = sparse_repository(&s).await;
    // Whatever the flags say now.
    reload(&s, Settings::default());

    for args in [&[][..], &["--repair"][..]] {
        let out = fsck(&s, args).await;
        assert_eq!(out.code, Some(0), "{args:?}: {}{}", out.stdout, out.stderr);
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(out.stderr.contains("0 problems"), "{}", out.stderr);
    }
    assert_pulls(&s, "multi", &index).await;
    assert_pulls(&s, "partial", &image).await;

    // An ordinary manifest whose layer link is removed is still reported.
    let whole = push_whole_image(&s, 9).await;
    put_ok(&s, "whole", MANIFEST, &whole).await;
    let (_, layer) = image_bytes(9);
    let r = s
        .delete(&format!("/v2/{REPO}/blobs/{}", sha256(&layer)))
        .await;
    assert_eq!(r.status(), 202);
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&sha256(&whole)), "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
}

#[tokio::test]
async fn gc_keeps_sparse_manifests_and_what_arrives_later() {
    let s = TestServer::start_with(settings(true, &[], true)).await;
    let (index, arm64, image, layer) = sparse_repository(&s).await;
    let amd64 = image_bytes(1).0;
    let gc = s.settings().gc.clone();
    let collector = s.collector().await;

    let report = collector.run(&gc, false, &|_| {}).await.expect("gc run");
    assert!(report.collected.is_empty(), "{}", report.summary());

    // The absent parts arrive, untagged: the tagged index and image keep them.
    let (_, arm64_layer) = image_bytes(2);
    s.push(REPO, &arm64_layer).await;
    put_ok(&s, &sha256(&arm64), MANIFEST, &arm64).await;
    s.push(REPO, &layer).await;
    let report = collector.run(&gc, false, &|_| {}).await.expect("gc run");
    assert!(report.collected.is_empty(), "{}", report.summary());
    for (reference, body) in [
        ("multi", &index),
        ("partial", &image),
        (&sha256(&amd64)[..], &amd64),
        (&sha256(&arm64)[..], &arm64),
    ] {
        assert_pulls(&s, reference, body).await;
    }
    assert_eq!(s.pull(REPO, &sha256(&layer)).await, layer);
    assert_eq!(s.pull(REPO, &sha256(&arm64_layer)).await, arm64_layer);

    // Untagged, the index goes with both children, and the image with its blobs.
    for tag in ["multi", "partial"] {
        let r = s.delete(&format!("/v2/{REPO}/manifests/{tag}")).await;
        assert_eq!(r.status(), 202);
    }
    // Tag history ended in the collection's own millisecond is still within a zero expiration
    // (it keeps what ended at or after now): let the millisecond clock move past the deletes.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let report = collector.run(&gc, false, &|_| {}).await.expect("gc run");
    let manifests = report
        .collected
        .iter()
        .filter(|c| c.to_string().starts_with("manifest "))
        .count();
    assert_eq!(manifests, 4, "{}", report.summary());
    for reference in [&index, &image, &amd64, &arm64] {
        assert_manifest_unknown(&s, &sha256(reference)).await;
    }
    assert_blob_unknown(&s, &sha256(&layer)).await;
    let out = fsck(&s, &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}
