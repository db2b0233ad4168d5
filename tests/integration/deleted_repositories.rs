//! A deleted repository leaves nothing a later one could inherit: its tag history goes with it,
//! and its id is never handed to another repository.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// The id the metadata database gives `repo`, read behind berth's back.
async fn repository_id(s: &TestServer, repo: &str) -> Option<i64> {
    query_i64(s, "SELECT id FROM repositories WHERE name = ?1", repo).await
}

/// How many history entries name the repository id `id`.
async fn history_rows(s: &TestServer, id: i64) -> i64 {
    let sql = "SELECT count(*) FROM tag_history WHERE repository_id = CAST(?1 AS BIGINT)";
    query_i64(s, sql, &id.to_string()).await.unwrap_or(0)
}

/// Runs a query with one text parameter that answers one integer, on either backend.
async fn query_i64(s: &TestServer, sql: &'static str, param: &str) -> Option<i64> {
    use sqlx::Row;
    match s.database_uri() {
        berth::config::DatabaseUri::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("open sqlite");
            let row = sqlx::query(sql).bind(param).fetch_optional(&pool).await;
            row.expect("sql").map(|r| r.get(0))
        }
        berth::config::DatabaseUri::Postgres(uri) => {
            let pool = sqlx::PgPool::connect(&uri).await.expect("open postgres");
            // The test's own statement with PostgreSQL's placeholders: no outside input.
            let sql = sqlx::AssertSqlSafe(sql.replace('?', "$"));
            let row = sqlx::query(sql).bind(param).fetch_optional(&pool).await;
            row.expect("sql").map(|r| r.get(0))
        }
    }
}

/// The entries of a repository's tag list with history (`end_ts` marks a past one).
async fn tags_with_history(client: &reqwest::Client, s: &TestServer, repo: &str) -> Vec<Value> {
    let url = s.url(&format!(
        "/api/v1/repository/{repo}/tag/?onlyActiveTags=false"
    ));
    let r = api_call(client, "GET", &url, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["tags"].as_array().expect("tags").clone()
}

#[tokio::test]
async fn a_new_repository_inherits_nothing_from_a_deleted_one() {
    let s = TestServer::start().await;
    let alice = s.create_user("alice").await;
    let bob = s.create_user("bob").await;

    // Alice's private repository, whose tags moved and were deleted: it has history.
    let first = push_image(&alice, &s.base, "alice/secret", "v1", b"secret one").await;
    push_image(&alice, &s.base, "alice/secret", "v1", b"secret two").await;
    let gone = push_image(&alice, &s.base, "alice/secret", "gone", b"secret gone").await;
    let r = exec(alice.delete(s.url("/v2/alice/secret/manifests/gone"))).await;
    assert_eq!(r.status(), 202);
    let ended = tags_with_history(&alice, &s, "alice/secret").await;
    let ended: Vec<&Value> = ended.iter().filter(|t| t.get("end_ts").is_some()).collect();
    assert_eq!(ended.len(), 2, "{ended:?}");
    let secret_id = repository_id(&s, "alice/secret").await.expect("an id");
    assert!(history_rows(&s, secret_id).await >= 2);

    let r = api_call(
        &alice,
        "DELETE",
        &s.url("/api/v1/repository/alice/secret"),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        history_rows(&s, secret_id).await,
        0,
        "the history went with its repository"
    );

    // Bob's new repository, which holds (by chance or on purpose) a manifest with the digest
    // of one of Alice's: the newest id is free again, and SQLite used to hand it out anew.
    push_image(&bob, &s.base, "bob/app", "mine", b"secret one").await;
    let app_id = repository_id(&s, "bob/app").await.expect("an id");
    assert!(app_id > secret_id, "id {app_id} after {secret_id}");
    let tags = tags_with_history(&bob, &s, "bob/app").await;
    let names: Vec<&str> = tags.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mine"], "{tags:?}");
    for (tag, digest) in [("v1", &first), ("gone", &gone)] {
        let url = s.url(&format!("/api/v1/repository/bob/app/tag/{tag}/restore"));
        let body = Some(json!({ "manifest_digest": digest }));
        let r = api_call(&bob, "POST", &url, body).await;
        assert_eq!(r.status, 404, "restore {tag}: {r:?}");
    }
    let r = exec(bob.get(s.url("/v2/bob/app/tags/list"))).await;
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["tags"], json!(["mine"]));

    // Nor is an id reused after a restart, when nothing in memory remembers it.
    let s = s.restart().await;
    let r = api_call(&bob, "DELETE", &s.url("/api/v1/repository/bob/app"), None).await;
    assert_eq!(r.status, 204, "{r:?}");
    let s = s.restart().await;
    push_image(&bob, &s.base, "bob/next", "v1", b"next").await;
    let next_id = repository_id(&s, "bob/next").await.expect("an id");
    assert!(next_id > app_id, "id {next_id} after {app_id}");
}
