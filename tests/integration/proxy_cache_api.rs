//! Quay's proxy cache configuration API (`/api/v1/organization/{org}/proxycache` and
//! `validateproxycache`) against a real berth process and a real upstream (CNCF distribution
//! with htpasswd): permissions, Quay's answers, the password sealed at rest and never answered
//! or logged, and the stored configuration opening into a working upstream client.

use std::path::Path;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::common::*;

const UPSTREAM_USER: &str = "cacheuser";
const UPSTREAM_PASSWORD: &str = "Upstream-Pw-7f3k9q";

/// A config file turning the feature on (plus the harness's storage keys on S3 runs).
fn config_file(dir: &Path, extra: &str) -> std::path::PathBuf {
    let mut text = format!("FEATURE_PROXY_CACHE: true\n{extra}");
    if let Some(storage) = test_storage_for(dir) {
        text.push_str(&storage_config_yaml(&storage));
    }
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).expect("config");
    path
}

/// Reads the stored row of `org` behind berth's back: (upstream_registry, sealed_username,
/// sealed_password).
async fn stored_row(dir: &Path, org: &str) -> Option<(String, Option<String>, Option<String>)> {
    use sqlx::Row;
    let sql = "SELECT p.upstream_registry, p.sealed_username, p.sealed_password
               FROM proxy_cache_configs p JOIN accounts a ON a.id = p.namespace_id
               WHERE a.name = ?1";
    let row = match test_database_for(dir).await {
        None => {
            let path = dir.join("metadata.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("open sqlite");
            sqlx::query(sql)
                .bind(org)
                .fetch_optional(&pool)
                .await
                .expect("sql")
                .map(|r| (r.get(0), r.get(1), r.get(2)))
        }
        Some(uri) => {
            let pool = sqlx::PgPool::connect(&uri).await.expect("open postgres");
            // The test's own statement with PostgreSQL's placeholders: no outside input.
            let sql = sqlx::AssertSqlSafe(sql.replace('?', "$"));
            sqlx::query(sql)
                .bind(org)
                .fetch_optional(&pool)
                .await
                .expect("sql")
                .map(|r| (r.get(0), r.get(1), r.get(2)))
        }
    };
    row
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> ApiReply {
    api_call(client, method, &format!("{base}{path}"), body).await
}

#[tokio::test]
async fn proxy_cache_api_is_absent_while_the_feature_is_off() {
    let s = TestServer::start().await;
    s.create_org("cache").await;
    let body = json!({"upstream_registry": "quay.io"});
    for (method, path, body) in [
        ("GET", "/api/v1/organization/cache/proxycache", None),
        (
            "POST",
            "/api/v1/organization/cache/proxycache",
            Some(body.clone()),
        ),
        ("DELETE", "/api/v1/organization/cache/proxycache", None),
        (
            "POST",
            "/api/v1/organization/cache/validateproxycache",
            Some(body),
        ),
    ] {
        let r = s.api(method, path, body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
    }
}

#[tokio::test]
async fn proxy_cache_api_configures_validates_and_seals_credentials() {
    let mut dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let image = push_test_image(&dist.client(), &dist.base, "library/app", "1", 3, 4096).await;
    let dir = tempfile::tempdir().expect("data dir");
    let config = config_file(dir.path(), "");
    let server = ProcessServer::spawn_with_config(dir.path(), Some(config)).await;
    let base = server.base.clone();
    let admin = &server.client;

    // An organization with an admin team and a member team.
    let org_path = "/api/v1/organization/cache";
    for (method, path, body, status) in [
        (
            "POST",
            "/api/v1/organization/".to_string(),
            Some(json!({"name": "cache"})),
            201,
        ),
        (
            "POST",
            "/api/v1/superuser/users/".into(),
            Some(json!({"username": "boss", "password": password_of("boss")})),
            201,
        ),
        (
            "POST",
            "/api/v1/superuser/users/".into(),
            Some(json!({"username": "dev", "password": password_of("dev")})),
            201,
        ),
        (
            "POST",
            "/api/v1/superuser/users/".into(),
            Some(json!({"username": "stranger", "password": password_of("stranger")})),
            201,
        ),
        (
            "PUT",
            format!("{org_path}/team/owners"),
            Some(json!({"role": "admin"})),
            200,
        ),
        (
            "PUT",
            format!("{org_path}/team/devs"),
            Some(json!({"role": "member"})),
            200,
        ),
        (
            "PUT",
            format!("{org_path}/team/owners/members/boss"),
            None,
            200,
        ),
        (
            "PUT",
            format!("{org_path}/team/devs/members/dev"),
            None,
            200,
        ),
    ] {
        let r = call(admin, &base, method, &path, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
    }
    let boss = authed_client("boss", &password_of("boss"));
    let dev = authed_client("dev", &password_of("dev"));
    let stranger = authed_client("stranger", &password_of("stranger"));
    let anonymous = reqwest::Client::new();

    let registry = format!("127.0.0.1:{}/library", dist.port);
    let good = json!({
        "org_name": "cache", "upstream_registry": registry, "insecure": true,
        "upstream_registry_username": UPSTREAM_USER, "upstream_registry_password": UPSTREAM_PASSWORD,
    });
    let validate = format!("{org_path}/validateproxycache");
    let proxycache = format!("{org_path}/proxycache");

    // Validation really contacts the upstream.
    let r = call(&boss, &base, "POST", &validate, Some(good.clone())).await;
    assert_eq!((r.status, r.body.clone()), (202, json!("Valid")));
    let mut wrong = good.clone();
    wrong["upstream_registry_password"] = json!("not-the-password");
    let r = call(&boss, &base, "POST", &validate, Some(wrong)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error_message"]
        .as_str()
        .unwrap()
        .starts_with("Failed login to remote registry"));
    let r = call(
        &boss,
        &base,
        "POST",
        &validate,
        Some(json!({"upstream_registry": registry, "insecure": true})),
    )
    .await;
    assert_eq!((r.status, r.body.clone()), (202, json!("Anonymous")));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = call(
        &boss,
        &base,
        "POST",
        &validate,
        Some(json!({"upstream_registry": format!("127.0.0.1:{closed}"), "insecure": true})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    for bad in [
        json!({}),
        json!({"upstream_registry": "https://quay.io"}),
        json!({"upstream_registry": "quay.io", "expiration_s": -1}),
        json!({"upstream_registry": "quay.io", "upstream_registry_password": 12345}),
    ] {
        let r = call(&boss, &base, "POST", &validate, Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }

    // Members, strangers and anonymous callers may not validate, create or delete.
    for (client, status) in [(&dev, 403), (&stranger, 403), (&anonymous, 401)] {
        for (method, path) in [
            ("POST", &validate),
            ("POST", &proxycache),
            ("DELETE", &proxycache),
        ] {
            let r = call(client, &base, method, path, Some(good.clone())).await;
            assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        }
    }
    assert!(stored_row(dir.path(), "cache").await.is_none());

    // Quay's empty view before there is one.
    let r = call(&dev, &base, "GET", &proxycache, None).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            200,
            json!({"upstream_registry": "", "expiration_s": "", "insecure": ""})
        )
    );

    let r = call(&boss, &base, "POST", &proxycache, Some(good.clone())).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (201, json!("Created")),
        "{}",
        r.body
    );
    let r = call(&boss, &base, "POST", &proxycache, Some(good.clone())).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error_message"],
        "Proxy Cache Configuration already exists"
    );

    // Members read it (Quay's rule), without credentials; strangers and anonymous do not.
    for client in [&dev, &boss, admin] {
        let r = call(client, &base, "GET", &proxycache, None).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            json!({"upstream_registry": registry, "expiration_s": 86400, "insecure": true})
        );
    }
    assert_eq!(
        call(&stranger, &base, "GET", &proxycache, None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(&anonymous, &base, "GET", &proxycache, None)
            .await
            .status,
        401
    );

    // Stored sealed: neither the password nor the username is in the row.
    let (stored_registry, user, password) = stored_row(dir.path(), "cache").await.expect("row");
    assert_eq!(stored_registry, registry);
    let (user, password) = (
        user.expect("sealed username"),
        password.expect("sealed password"),
    );
    assert!(user.starts_with("v1.") && password.starts_with("v1."));
    assert!(!password.contains(UPSTREAM_PASSWORD) && !user.contains(UPSTREAM_USER));

    // The usage logs record both changes, without the credentials.
    let r = call(&boss, &base, "DELETE", &proxycache, None).await;
    assert_eq!((r.status, r.body.clone()), (201, json!("Deleted")));
    assert_eq!(
        call(&boss, &base, "DELETE", &proxycache, None).await.status,
        404
    );
    assert!(stored_row(dir.path(), "cache").await.is_none());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let logs = loop {
        let r = call(&boss, &base, "GET", &format!("{org_path}/logs"), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let kinds: Vec<String> = r.body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["kind"].as_str().unwrap().to_string())
            .collect();
        if kinds.contains(&"create_proxy_cache_config".to_string())
            && kinds.contains(&"delete_proxy_cache_config".to_string())
        {
            break r.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "usage logs: {kinds:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let create = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "create_proxy_cache_config")
        .unwrap();
    assert_eq!(create["metadata"]["upstream_registry"], registry);
    assert_eq!(create["performer"]["name"], "boss");
    assert!(!logs.to_string().contains(UPSTREAM_PASSWORD));

    // Without DATABASE_SECRET_KEY berth made a private key file and said replicas need the key.
    let key = dir.path().join(berth::sealed::KEY_FILE);
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key)
                .expect("key file")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    assert!(server
        .log
        .lines()
        .iter()
        .any(|l| l.contains("DATABASE_SECRET_KEY is not set")));
    // The password never reached a log line, in clear or as a Basic header.
    let basic_form = basic(UPSTREAM_USER, UPSTREAM_PASSWORD);
    let encoded = basic_form.strip_prefix("Basic ").unwrap();
    for line in server.log.lines() {
        assert!(
            !line.contains(UPSTREAM_PASSWORD) && !line.contains(encoded),
            "{line}"
        );
    }
    server.kill9().await;
    let _ = image;
    dist.stop().await;
}

#[tokio::test]
async fn proxy_cache_config_opens_into_a_working_upstream_client() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let image = push_test_image(&dist.client(), &dist.base, "library/app", "1", 5, 70_000).await;
    let mut settings = berth::config::Settings::default();
    settings.proxy_cache = true;
    settings.database_secret_key = Some(
        berth::config::parse("DATABASE_SECRET_KEY: shared-by-all-replicas\n")
            .expect("config")
            .settings
            .database_secret_key
            .expect("key"),
    );
    let s = TestServer::start_with(settings).await;
    s.create_org("cache").await;
    let registry = format!("127.0.0.1:{}/library", dist.port);
    let r = s.api("POST", "/api/v1/organization/cache/proxycache", Some(json!({
        "upstream_registry": registry, "insecure": true, "expiration_s": 600,
        "upstream_registry_username": UPSTREAM_USER, "upstream_registry_password": UPSTREAM_PASSWORD,
    }))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // DATABASE_SECRET_KEY is used: no key file.
    assert!(!s.data_dir().join(berth::sealed::KEY_FILE).exists());
    let (record, upstream) = s
        .state()
        .proxy_caches
        .upstream("cache")
        .await
        .expect("open config")
        .expect("configured");
    assert_eq!(record.expiration_s, 600);
    let app = upstream.repository("app").expect("path");
    let tag = oci::Reference::Tag("1".parse().unwrap());
    let m = upstream
        .get_manifest(&app, &tag)
        .await
        .expect("manifest through stored credentials");
    assert_eq!(m.bytes.as_ref(), image.manifest.as_slice());
    let mut blob = upstream
        .get_blob(&app, &image.layer.parse().unwrap())
        .await
        .expect("blob");
    let mut bytes = Vec::new();
    while let Some(chunk) = blob.next().await {
        bytes.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(bytes, image.layer_bytes);
    assert!(s
        .state()
        .proxy_caches
        .upstream("other")
        .await
        .expect("lookup")
        .is_none());
}
