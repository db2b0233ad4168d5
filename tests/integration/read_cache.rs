//! Every change is visible to the very next read, through the in-memory cache of the embedded
//! backend: tag moves and deletes, manifest deletes, repository deletes, garbage collection
//! in another process, and a second server on the same database. Also `AUTHENTICATION_TYPE:
//! None`, the open registry the benchmarks compare with distribution.

use crate::common;

use std::time::Duration;

use berth::config::Settings;
use berth::gc::GcSettings;
use common::*;

const REPO: &str = "admin/cached";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

async fn image(s: &TestServer, repo: &str, tag: &str, layer: &[u8]) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = s.push(repo, config).await;
    let l = s.push(repo, layer).await;
    let manifest = image_manifest((&c, config.len()), &[(&l, layer.len())]);
    let r = put_manifest(&s.client, &s.base, repo, tag, MANIFEST, &manifest).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    sha256(&manifest)
}

/// The digest a GET of `reference` answers, or the status when it fails.
async fn resolve(s: &TestServer, repo: &str, reference: &str) -> Result<String, u16> {
    let r = s
        .client
        .get(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", MANIFEST)
        .send()
        .await
        .expect("GET manifest");
    if r.status() != 200 {
        return Err(r.status().as_u16());
    }
    Ok(r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string())
}

async fn tags(s: &TestServer, repo: &str) -> Result<Vec<String>, u16> {
    let r = s.get(&format!("/v2/{repo}/tags/list")).await;
    if r.status() != 200 {
        return Err(r.status().as_u16());
    }
    let v: serde_json::Value = r.json().await.unwrap();
    Ok(v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect())
}

#[tokio::test]
async fn every_write_is_seen_by_the_next_read() {
    let s = TestServer::start().await;
    let a = image(&s, REPO, "v1", b"layer a").await;
    // Read twice, so the second answer can come from memory.
    assert_eq!(resolve(&s, REPO, "v1").await, Ok(a.clone()));
    assert_eq!(resolve(&s, REPO, "v1").await, Ok(a.clone()));
    assert_eq!(tags(&s, REPO).await, Ok(vec!["v1".to_string()]));

    // A tag moved by a push.
    let b = image(&s, REPO, "v1", b"layer b").await;
    assert_eq!(resolve(&s, REPO, "v1").await, Ok(b.clone()));
    assert_eq!(
        s.head(&format!("/v2/{REPO}/manifests/v1")).await.headers()["docker-content-digest"],
        b.as_str()
    );

    // A new tag, in the list at once.
    let r = put_manifest(
        &s.client,
        &s.base,
        REPO,
        "v2",
        MANIFEST,
        &s.client
            .get(s.url(&format!("/v2/{REPO}/manifests/{a}")))
            .header("accept", MANIFEST)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(tags(&s, REPO).await, Ok(vec!["v1".into(), "v2".into()]));

    // A deleted tag.
    assert_eq!(resolve(&s, REPO, "v2").await, Ok(a.clone()));
    assert_eq!(
        s.delete(&format!("/v2/{REPO}/manifests/v2")).await.status(),
        202
    );
    assert_eq!(resolve(&s, REPO, "v2").await, Err(404));
    assert_eq!(tags(&s, REPO).await, Ok(vec!["v1".to_string()]));

    // A deleted manifest, read by digest just before.
    assert_eq!(resolve(&s, REPO, &b).await, Ok(b.clone()));
    assert_eq!(
        s.delete(&format!("/v2/{REPO}/manifests/{b}"))
            .await
            .status(),
        202
    );
    assert_eq!(resolve(&s, REPO, &b).await, Err(404));
    assert_eq!(resolve(&s, REPO, "v1").await, Err(404));

    // A deleted repository.
    image(&s, REPO, "v3", b"layer c").await;
    assert!(resolve(&s, REPO, "v3").await.is_ok());
    assert!(tags(&s, REPO).await.is_ok());
    let r = s
        .client
        .delete(s.url(&format!("/api/v1/repository/{REPO}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    assert_eq!(resolve(&s, REPO, "v3").await, Err(404));
    assert_eq!(tags(&s, REPO).await, Err(404));
}

#[tokio::test]
async fn a_collection_by_another_process_is_seen_at_once() {
    let s = TestServer::start().await;
    let old = image(&s, REPO, "latest", b"old layer").await;
    image(&s, REPO, "latest", b"new layer").await;
    assert_eq!(resolve(&s, REPO, &old).await, Ok(old.clone()));
    assert_eq!(resolve(&s, REPO, &old).await, Ok(old.clone()));
    // `collector()` opens the database separately, as `berth gc` does.
    let gc = GcSettings {
        grace: Duration::ZERO,
        tag_expiration: Duration::ZERO,
        ..GcSettings::default()
    };
    s.collector()
        .await
        .run(&gc, false, &|_| {})
        .await
        .expect("gc");
    assert_eq!(resolve(&s, REPO, &old).await, Err(404));
}

#[tokio::test]
async fn two_servers_on_one_database_see_each_others_writes() {
    let s = TestServer::start().await;
    let other = s.replica().await;
    let a = image(&s, REPO, "shared", b"first").await;
    assert_eq!(resolve(&other, REPO, "shared").await, Ok(a.clone()));
    assert_eq!(resolve(&other, REPO, "shared").await, Ok(a));
    let b = image(&s, REPO, "shared", b"second").await;
    assert_eq!(resolve(&other, REPO, "shared").await, Ok(b));
    assert_eq!(
        s.delete(&format!("/v2/{REPO}/manifests/shared"))
            .await
            .status(),
        202
    );
    assert_eq!(resolve(&other, REPO, "shared").await, Err(404));
}

/// The status an anonymous GET of `repo:tag` answers.
async fn anonymous_pull(s: &TestServer, repo: &str, tag: &str) -> u16 {
    reqwest::Client::new()
        .get(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("accept", MANIFEST)
        .send()
        .await
        .expect("GET manifest")
        .status()
        .as_u16()
}

async fn set_visibility(s: &TestServer, repo: &str, visibility: &str) {
    let r = s
        .client
        .post(s.url(&format!("/api/v1/repository/{repo}/changevisibility")))
        .json(&serde_json::json!({ "visibility": visibility }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// Anonymous pulls read the repository's visibility from the cache: making it private must
/// hold for the very next pull, on this server and on another one sharing the database.
#[tokio::test]
async fn visibility_changes_hold_for_the_next_anonymous_pull() {
    let s = TestServer::start().await;
    let other = s.replica().await;
    image(&s, REPO, "v1", b"layer").await;
    set_visibility(&s, REPO, "public").await;
    for _ in 0..3 {
        assert_eq!(anonymous_pull(&s, REPO, "v1").await, 200);
        assert_eq!(anonymous_pull(&other, REPO, "v1").await, 200);
    }
    set_visibility(&s, REPO, "private").await;
    assert_eq!(anonymous_pull(&s, REPO, "v1").await, 401);
    assert_eq!(anonymous_pull(&other, REPO, "v1").await, 401);
    set_visibility(&other, REPO, "public").await;
    assert_eq!(anonymous_pull(&s, REPO, "v1").await, 200);
    assert_eq!(anonymous_pull(&other, REPO, "v1").await, 200);
}

#[tokio::test]
async fn an_open_registry_needs_no_login() {
    let mut settings = Settings::default();
    settings.auth.open_registry = true;
    let s = TestServer::start_with(settings).await;
    let anonymous = reqwest::Client::new();
    let r = anonymous.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(&anonymous, &s.base, "anyone/app", config).await;
    let manifest = image_manifest((&c, config.len()), &[]);
    let r = put_manifest(&anonymous, &s.base, "anyone/app", "v1", MANIFEST, &manifest).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let r = anonymous
        .get(s.url("/v2/anyone/app/manifests/v1"))
        .header("accept", MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), manifest);
    let r = anonymous
        .delete(s.url("/v2/anyone/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // The dashboard's API still needs an account.
    let r = anonymous
        .delete(s.url("/api/v1/repository/anyone/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn authentication_type_is_database_or_none() {
    let open = berth::config::parse("AUTHENTICATION_TYPE: None\n").unwrap();
    assert!(open.settings.auth.open_registry);
    let default = berth::config::parse("AUTHENTICATION_TYPE: Database\n").unwrap();
    assert!(!default.settings.auth.open_registry);
    assert!(
        !berth::config::parse("")
            .unwrap()
            .settings
            .auth
            .open_registry
    );
    let Err(err) = berth::config::parse("AUTHENTICATION_TYPE: LDAP\n") else {
        panic!("LDAP is not supported");
    };
    let err = err.to_string();
    assert!(err.contains("AUTHENTICATION_TYPE"), "{err}");
}
