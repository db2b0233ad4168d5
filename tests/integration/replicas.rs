//! Two berth processes sharing one database and one blob store, as replicas behind a load
//! balancer: a push through one pulls through the other, a chunked upload started on one is
//! finished on the other, a token one issues the other accepts, and a policy change to the
//! config file is applied by both. In the suite's second pass they share PostgreSQL + Garage.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Both replicas advertise the load balancer's name, so tokens name the same service.
const HOSTNAME: &str = "registry.test";

/// Two replicas on one database and blob store (the test backend's, or a shared data
/// directory), their directory, and the initial admin password.
async fn two_replicas() -> (tempfile::TempDir, ProcessServer, ProcessServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let storage = test_storage_for(dir.path())
        .map(|s| storage_config_yaml(&s))
        .unwrap_or_default();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("{storage}SERVER_HOSTNAME: {HOSTNAME}\n")).unwrap();
    let a = ProcessServer::spawn_with_config(dir.path(), Some(config.clone())).await;
    let b = ProcessServer::spawn_with_config(dir.path(), Some(config)).await;
    let password = std::fs::read_to_string(dir.path().join(berth::INITIAL_ADMIN_PASSWORD_FILE))
        .unwrap()
        .trim()
        .to_string();
    (dir, a, b, password)
}

#[tokio::test]
async fn two_replicas_serve_as_one_registry() {
    let (dir, a, b, password) = two_replicas().await;
    let config = dir.path().join("config.yaml");
    let repo = "replicas/app";

    // A token issued by A works on B.
    let scope = format!("repository:{repo}:pull,push");
    let token = token_for(&a.base, Some(("admin", &password)), &scope).await;
    let on_b = bearer_client(&token);
    let r = on_b.get(format!("{}/v2/", b.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "B accepts A's token");
    let on_a = bearer_client(&token);

    // Push through A (one blob in one request, one chunked with its upload finished on B),
    // then pull everything through B.
    let config_blob = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let c = push_blob(&on_a, &a.base, repo, &config_blob).await;
    let layer = sample(21, 3 * 1024 * 1024 + 17);
    let digest = sha256(&layer);
    let r = on_a
        .post(format!("{}/v2/{repo}/blobs/uploads/", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = header(&r, "location").to_string();
    let split = layer.len() / 3;
    let r = patch_upload(
        &on_a,
        &a.base,
        &location,
        Some(&format!("0-{}", split - 1)),
        &layer[..split],
    )
    .await;
    assert_eq!(r.status(), 202, "first chunk on A");
    let location = header(&r, "location").to_string();
    let r = on_b
        .get(format!("{}{location}", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "B sees the upload A began");
    assert_eq!(header(&r, "range"), format!("0-{}", split - 1));
    let r = on_b
        .put(format!("{}{}", b.base, with_digest(&location, &digest)))
        .header("content-type", "application/octet-stream")
        .body(layer[split..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "B finishes A's upload: {}",
        r.text().await.unwrap_or_default()
    );
    let manifest = image_manifest((&c, config_blob.len()), &[(&digest, layer.len())]);
    let r = put_manifest(&on_a, &a.base, repo, "v1", MANIFEST, &manifest).await;
    assert_eq!(r.status(), 201);
    let r = on_b
        .get(format!("{}/v2/{repo}/manifests/v1", b.base))
        .header("accept", MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), manifest);
    assert_eq!(pull_blob(&on_b, &b.base, repo, &digest).await, layer);
    assert_eq!(pull_blob(&on_b, &b.base, repo, &c).await, config_blob);

    // A policy change in the shared config file reaches both replicas without a restart.
    let artifact_type = "application/vnd.example.replicated.v1";
    let artifact = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                   "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    "size": 2}],
    }))
    .unwrap();
    for (server, client) in [(&a, &on_a), (&b, &on_b)] {
        let r = put_manifest(client, &server.base, repo, "artifact", MANIFEST, &artifact).await;
        assert_error(r, 400, "MANIFEST_INVALID").await;
    }
    let applied = |s: &ProcessServer| s.log.count("settings applied");
    let before = (applied(&a), applied(&b));
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "ALLOWED_OCI_ARTIFACT_TYPES:\n  {artifact_type}:\n  - application/vnd.oci.empty.v1+json\n"
    ));
    std::fs::write(&config, text).unwrap();
    for (server, seen) in [(&a, before.0), (&b, before.1)] {
        assert!(
            server
                .log
                .wait_for("settings applied", seen + 1, Duration::from_secs(15))
                .await,
            "{} applied the new config",
            server.base
        );
    }
    for (server, client) in [(&a, &on_a), (&b, &on_b)] {
        let r = put_manifest(client, &server.base, repo, "artifact", MANIFEST, &artifact).await;
        assert_eq!(
            r.status(),
            201,
            "{}: {}",
            server.base,
            r.text().await.unwrap_or_default()
        );
    }
}

/// A token from `base` for `who` (anonymous for `None`) with `scope`.
async fn token_for(base: &str, who: Option<(&str, &str)>, scope: &str) -> String {
    let mut request = reqwest::Client::new()
        .get(format!("{base}/v2/auth"))
        .query(&[("service", HOSTNAME), ("scope", scope)]);
    if let Some((user, password)) = who {
        request = request.header("authorization", basic(user, password));
    }
    let r = request.send().await.expect("token request");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("token JSON");
    body["token"].as_str().expect("token").to_string()
}

/// Each replica remembers permission decisions, yet a change made through one holds for the
/// very next request on the other: a removed grant, a grant given back, a repository made
/// private.
#[tokio::test]
async fn access_changed_through_one_replica_holds_at_once_on_the_other() {
    let (_dir, a, b, password) = two_replicas().await;
    let client = &a.client;
    let on_a = |method: &'static str, path: String, body: Option<Value>| {
        let url = format!("{}{path}", a.base);
        async move { api_call(client, method, &url, body).await.status }
    };
    let org = serde_json::json!({"name": "rev"});
    assert_eq!(
        on_a("POST", "/api/v1/organization/".into(), Some(org)).await,
        201
    );
    let user = serde_json::json!({"username": "dev", "password": password_of("dev")});
    assert_eq!(
        on_a("POST", "/api/v1/superuser/users/".into(), Some(user)).await,
        201
    );
    let admin = token_for(
        &a.base,
        Some(("admin", &password)),
        "repository:rev/app:pull,push",
    )
    .await;
    push_image(
        &bearer_client(&admin),
        &a.base,
        "rev/app",
        "v1",
        b"rev layer",
    )
    .await;
    let grant = "/api/v1/repository/rev/app/permissions/user/dev".to_string();
    let read = || Some(serde_json::json!({"role": "read"}));
    assert_eq!(on_a("PUT", grant.clone(), read()).await, 200);

    let dev = token_for(
        &a.base,
        Some(("dev", &password_of("dev"))),
        "repository:rev/app:pull",
    )
    .await;
    let pull_on_b = |token: &str| {
        let url = format!("{}/v2/rev/app/manifests/v1", b.base);
        status_of(bearer_client(token).get(url))
    };
    // Twice, so that B answers the second from what it remembers.
    assert_eq!(pull_on_b(&dev).await, 200);
    assert_eq!(pull_on_b(&dev).await, 200);
    assert_eq!(on_a("DELETE", grant.clone(), None).await, 204);
    assert_eq!(pull_on_b(&dev).await, 403, "grant removed through A");
    assert_eq!(on_a("PUT", grant.clone(), read()).await, 200);
    assert_eq!(pull_on_b(&dev).await, 200, "grant given back through A");

    let visibility = "/api/v1/repository/rev/app/changevisibility".to_string();
    let public = Some(serde_json::json!({"visibility": "public"}));
    assert_eq!(on_a("POST", visibility.clone(), public).await, 200);
    let anonymous = token_for(&a.base, None, "repository:rev/app:pull").await;
    assert_eq!(pull_on_b(&anonymous).await, 200);
    assert_eq!(pull_on_b(&anonymous).await, 200);
    let private = Some(serde_json::json!({"visibility": "private"}));
    assert_eq!(on_a("POST", visibility, private).await, 200);
    assert_eq!(pull_on_b(&anonymous).await, 401, "made private through A");
}
