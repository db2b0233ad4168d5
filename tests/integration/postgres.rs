//! The PostgreSQL backend as replicas use it: two stores on one database, migrations started
//! by several replicas at once, and the races SQLite's single writer used to rule out. Runs
//! when `BERTH_TEST_DB_URI` names a PostgreSQL server (`scripts/postgres.sh start` makes one);
//! otherwise each test prints that it was skipped.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use berth::metadata::accounts::AccountStore;
use berth::metadata::postgres;
use berth::metadata::sql::SqlStore;
use berth::metadata::{MetadataError, MetadataStore};
use common::*;
use oci::{Digest, RepoName};

/// A fresh database on the server under test, dropped when the guard goes.
struct Fresh {
    server: String,
    uri: String,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        drop_test_database(&self.server, &self.uri);
    }
}

async fn fresh() -> Option<Fresh> {
    let Some(server) = postgres_under_test() else {
        eprintln!("skipped: {TEST_DB_URI_ENV} is not set (see scripts/postgres.sh)");
        return None;
    };
    let uri = create_test_database(&server).await;
    Some(Fresh { server, uri })
}

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn digest(n: u32) -> Digest {
    sha256(format!("blob {n}").as_bytes()).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_database_see_each_others_writes() {
    let Some(db) = fresh().await else { return };
    let a = postgres::open(&db.uri).await.unwrap();
    let b = postgres::open(&db.uri).await.unwrap();
    let r = repo("shared/app");
    a.link_blob(&r, &digest(1), 10).await.unwrap();
    assert!(b.repository_exists(&r).await.unwrap());
    assert_eq!(b.linked_blob(&r, &digest(1)).await.unwrap(), Some(10));
    b.create_user("alice", "hash", None, false).await.unwrap();
    assert_eq!(a.account("alice").await.unwrap().unwrap().name, "alice");
    // A unique violation from the other replica is a Conflict, as on SQLite.
    assert!(matches!(
        a.create_user("alice", "hash", None, false).await,
        Err(MetadataError::Conflict)
    ));
    assert!(b.unlink_blob(&r, &digest(1)).await.unwrap());
    assert_eq!(a.linked_blob(&r, &digest(1)).await.unwrap(), None);
    // Both replicas sign with the same key.
    let ka = a.signing_keys(("kid-a", "pem-a")).await.unwrap();
    let kb = b.signing_keys(("kid-b", "pem-b")).await.unwrap();
    assert_eq!(ka, vec![("kid-a".to_string(), "pem-a".to_string())]);
    assert_eq!(ka, kb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_at_once_migrate_once() {
    let Some(db) = fresh().await else { return };
    let opens = (0..6).map(|_| {
        let uri = db.uri.clone();
        tokio::spawn(async move { postgres::open(&uri).await })
    });
    let stores: Vec<SqlStore> = futures::future::join_all(opens)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("every replica opens"))
        .collect();
    stores[0].ensure_repository(&repo("m/one")).await.unwrap();
    assert!(stores[5].repository_exists(&repo("m/one")).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_and_links_do_not_fail() {
    let Some(db) = fresh().await else { return };
    let stores: Vec<Arc<SqlStore>> = vec![
        Arc::new(postgres::open(&db.uri).await.unwrap()),
        Arc::new(postgres::open(&db.uri).await.unwrap()),
    ];
    for round in 0..5u32 {
        let r = repo(&format!("race/r{round}"));
        let tasks = (0..16u32).map(|i| {
            let store = stores[i as usize % 2].clone();
            let r = r.clone();
            tokio::spawn(async move {
                match i % 4 {
                    0 => store.ensure_repository(&r).await,
                    1 => store.link_blob(&r, &digest(round), 7).await,
                    2 => store.link_blob(&r, &digest(round + 100 + i), 7).await,
                    _ => store
                        .create_upload(
                            &berth::metadata::UploadRecord {
                                id: berth::storage::UploadId::generate(),
                                repository: r.clone(),
                                algorithm: oci::Algorithm::Sha256,
                                length: 0,
                                resumable: true,
                                hash_state: None,
                                progress: None,
                                updated_at: 0,
                            },
                            "account:1",
                            berth::metadata::UploadQuota {
                                per_owner: 1000,
                                per_repository: 1000,
                            },
                        )
                        .await
                        .map(|admitted| admitted.expect("under the quota")),
                }
            })
        });
        for result in futures::future::join_all(tasks).await {
            result.unwrap().expect("racing writes succeed");
        }
        assert_eq!(
            stores[1].linked_blob(&r, &digest(round)).await.unwrap(),
            Some(7)
        );
        let names = stores[0].list_repositories(None, 100).await.unwrap();
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_for_the_first_signing_key_agree() {
    let Some(db) = fresh().await else { return };
    let a = Arc::new(postgres::open(&db.uri).await.unwrap());
    let b = Arc::new(postgres::open(&db.uri).await.unwrap());
    let tasks = (0..8).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            let kid = format!("kid-{i}");
            store.signing_keys((&kid, "pem")).await.unwrap()
        })
    });
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results[0].len(), 1, "one key was stored");
    assert!(results.iter().all(|r| r == &results[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_manifest_pushes_moving_the_same_tags_all_succeed() {
    use berth::registry::facts::{ManifestFacts, ManifestKind};
    let Some(db) = fresh().await else { return };
    let stores = [
        Arc::new(postgres::open(&db.uri).await.unwrap()),
        Arc::new(postgres::open(&db.uri).await.unwrap()),
    ];
    let r = repo("race/tags");
    // A manifest's blobs are linked before it is stored (the registry checks, and the store
    // verifies again in its transaction).
    for d in [digest(1), digest(2)] {
        stores[0].link_blob(&r, &d, 5).await.unwrap();
    }
    let names = ["a", "b", "c", "d"];
    let tasks = (0..12u32).map(|i| {
        let store = stores[i as usize % 2].clone();
        let r = r.clone();
        // Every push moves all four tags, each listing them in its own order; half of the
        // pushes store the same manifest.
        let mut tags: Vec<oci::Tag> = names.iter().map(|t| t.parse().unwrap()).collect();
        tags.rotate_left(i as usize % 4);
        if i % 2 == 1 {
            tags.reverse();
        }
        let content = format!("{{\"n\":{}}}", i % 6).into_bytes();
        tokio::spawn(async move {
            let manifest = berth::metadata::NewManifest {
                digest: sha256(&content).parse().unwrap(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                content,
                artifact_type: None,
                config_media_type: None,
                subject: None,
                annotations: None,
                blobs: vec![digest(1), digest(2)],
                children: vec![],
                optional: vec![],
                facts: ManifestFacts {
                    kind: ManifestKind::Image,
                    total_size: 10,
                    signed: None,
                    details: Default::default(),
                },
            };
            store.put_manifest(&r, &manifest, &tags).await
        })
    });
    for result in futures::future::join_all(tasks).await {
        result.unwrap().expect("racing pushes succeed");
    }
    let tags = stores[0].list_tags(&r, None, 10).await.unwrap();
    assert_eq!(tags.len(), 4);
}
