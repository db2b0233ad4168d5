//! Repository states and mirror configurations (issue 20), against a real server over HTTP:
//! Quay's `changestate` (also `changerepostate`) and its enforcement on /v2, the API and the dashboard (a change
//! counts at the next request on another replica too); the `/mirror` API's shapes, validation
//! and permissions, its password never answered and sealed at rest; sync-now and cancel; and the
//! sync claim, held by one claimant at a time over two handles on the database.

use crate::common;

use std::time::Duration;

use berth::metadata::mirror::{SyncOutcome, SyncStatus};
use common::*;
use oci::RepoName;
use serde_json::{json, Value};

const PASSWORD: &str = "upstream-pa55-word";

fn mirror_settings() -> berth::config::Settings {
    berth::config::Settings {
        repo_mirror: true,
        ..Default::default()
    }
}

/// Organization `acme` with `acme/app` (tag v1), robot `acme+sync`, user `carol` with write on
/// `acme/app` and user `dave` with admin on it.
async fn acme(settings: berth::config::Settings) -> (TestServer, reqwest::Client, reqwest::Client) {
    let s = TestServer::start_with(settings).await;
    s.create_org("acme").await;
    s.create_repo("acme/app", false).await;
    push_image(&s.client, &s.base, "acme/app", "v1", b"app layer").await;
    s.create_robot("acme", "sync").await;
    let carol = s.create_user("carol").await;
    s.grant("acme/app", "carol", "write").await;
    let dave = s.create_user("dave").await;
    s.grant("acme/app", "dave", "admin").await;
    (s, carol, dave)
}

async fn set_state(s: &TestServer, repo: &str, state: &str) -> ApiReply {
    s.api(
        "PUT",
        &format!("/api/v1/repository/{repo}/changestate"),
        Some(json!({ "state": state })),
    )
    .await
}

/// A manifest push of a fresh image to `repo` as `client`: its status and body.
async fn try_push(client: &reqwest::Client, base: &str, repo: &str, tag: &str) -> (u16, String) {
    let r = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("start upload");
    let status = r.status().as_u16();
    if status != 202 {
        return (status, r.text().await.unwrap_or_default());
    }
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let manifest = image_manifest((&sha256(config), config.len()), &[]);
    let r = client
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .expect("put manifest");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn read_only_and_mirror_states_refuse_every_content_change_and_allow_reads() {
    let (s, carol, _) = acme(mirror_settings()).await;
    let replica = s.replica().await;
    let r = s.api("GET", "/api/v1/repository/acme/app", None).await;
    assert_eq!((r.status, &r.body["state"]), (200, &json!("NORMAL")));
    // The replica decides (and remembers) that carol may push while the state is NORMAL.
    let (status, body) = try_push(&carol, &replica.base, "acme/app", "before").await;
    assert_eq!(status, 201, "{body}");
    let digest = push_image(&carol, &s.base, "acme/app", "v2", b"second").await;

    let r = set_state(&s, "acme/app", "READ_ONLY").await;
    assert_eq!((r.status, &r.body), (200, &json!({"success": true})));
    let r = s.api("GET", "/api/v1/repository/acme/app", None).await;
    assert_eq!(r.body["state"], "READ_ONLY");
    let listed = s
        .api("GET", "/api/v1/repository?namespace=acme", None)
        .await;
    assert_eq!(listed.body["repositories"][0]["state"], "READ_ONLY");

    for (who, client, base) in [
        ("carol on the replica", &carol, &replica.base),
        ("the superuser", &s.client, &s.base),
    ] {
        let (status, body) = try_push(client, base, "acme/app", "after").await;
        assert_eq!(status, 403, "{who}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "DENIED", "{who}: {body}");
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("read-only"),
            "{who}: {body}"
        );
        let r = client
            .delete(format!("{base}/v2/acme/app/manifests/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{who}: manifest delete");
        // Reads are unaffected.
        let r = client
            .get(format!("{base}/v2/acme/app/manifests/v1"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{who}: pull");
        let r = client
            .get(format!("{base}/v2/acme/app/tags/list"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{who}: tag list");
    }
    // The API's tag delete, move and restore are content changes too.
    let tag = "/api/v1/repository/acme/app/tag/v1";
    for (method, body) in [
        ("DELETE", None),
        ("PUT", Some(json!({ "manifest_digest": digest }))),
    ] {
        let r = api_call(&carol, method, &s.url(tag), body).await;
        assert_eq!(r.status, 403, "{method}: {}", r.body);
        assert!(
            r.body["detail"].as_str().unwrap().contains("read-only"),
            "{}",
            r.body
        );
    }
    let r = api_call(
        &carol,
        "POST",
        &s.url("/api/v1/repository/acme/app/tag/v1/restore"),
        Some(json!({ "manifest_digest": digest })),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let tags = s.api("GET", "/api/v1/repository/acme/app/tag/", None).await;
    let names: Vec<&str> = tags.body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"v1") && names.contains(&"v2"), "{names:?}");

    // A mirror names its source.
    let r = s
        .api(
            "POST",
            "/api/v1/repository/acme/app/mirror",
            Some(mirror_body()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(set_state(&s, "acme/app", "MIRROR").await.status, 200);
    let (status, body) = try_push(&carol, &replica.base, "acme/app", "after").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(
            "this repository is a mirror of registry.example.com/library/app; it is kept in sync by berth"
        ),
        "{body}"
    );
    let r = api_call(&carol, "DELETE", &s.url(tag), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("is a mirror of"));

    // Back to NORMAL: pushes work again at once, on both replicas.
    assert_eq!(set_state(&s, "acme/app", "NORMAL").await.status, 200);
    let (status, body) = try_push(&carol, &replica.base, "acme/app", "after").await;
    assert_eq!(status, 201, "{body}");
    let r = api_call(&carol, "DELETE", &s.url(tag), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
}

#[tokio::test]
async fn changing_the_state_takes_a_repository_admin_and_a_known_state() {
    let (s, carol, dave) = acme(berth::config::Settings::default()).await;
    let path = s.url("/api/v1/repository/acme/app/changerepostate");
    let body = json!({ "state": "READ_ONLY" });
    let r = api_call(&carol, "PUT", &path, Some(body.clone())).await;
    assert_eq!(r.status, 403, "a writer is no admin: {}", r.body);
    let anonymous = reqwest::Client::new();
    let r = api_call(&anonymous, "PUT", &path, Some(body.clone())).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = api_call(&dave, "PUT", &path, Some(body)).await;
    assert_eq!(r.status, 200, "a repository admin: {}", r.body);
    let r = api_call(
        &dave,
        "PUT",
        &s.url("/api/v1/repository/acme/missing/changerepostate"),
        Some(json!({ "state": "NORMAL" })),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Without FEATURE_REPO_MIRROR, MIRROR is refused as Quay does; and its API does not exist.
    let r = set_state(&s, "acme/app", "MIRROR").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["detail"], "Unknown Repository State: MIRROR");
    let r = set_state(&s, "acme/app", "BROKEN").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["detail"], "BROKEN is not a valid Repository state.");
    let r = s
        .api(
            "PUT",
            "/api/v1/repository/acme/app/changerepostate",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Malformed bodies are 400s, never a 500.
    for body in ["not json", "[1]", "{\"state\": 5}", "{\"state\": null}"] {
        let r = s
            .client
            .put(s.url("/api/v1/repository/acme/app/changestate"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
    let r = s
        .api("GET", "/api/v1/repository/acme/app/mirror", None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s
        .api(
            "POST",
            "/api/v1/repository/acme/app/mirror",
            Some(mirror_body()),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s.api("GET", "/api/v1/repository/acme/app", None).await;
    assert_eq!(r.body["state"], "READ_ONLY");

    s.state().usage.flush().await;
    let logs = s.api("GET", "/api/v1/repository/acme/app/logs", None).await;
    let changes: Vec<&Value> = logs.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "change_repo_state")
        .collect();
    assert_eq!(changes.len(), 1, "{}", logs.body);
    assert_eq!(changes[0]["metadata"]["state_changed"], "READ_ONLY");
    assert_eq!(changes[0]["performer"]["name"], "dave");
}

fn mirror_body() -> Value {
    json!({
        "is_enabled": true,
        "external_reference": "registry.example.com/library/app",
        "sync_interval": 3600,
        "sync_start_date": "2026-01-01T00:00:00Z",
        "root_rule": { "rule_kind": "tag_glob_csv", "rule_value": ["1.*", "latest"] },
        "robot_username": "acme+sync",
        "external_registry_username": "puller",
        "external_registry_password": PASSWORD,
        "external_registry_config": {
            "verify_tls": true,
            "unsigned_images": false,
            "proxy": { "https_proxy": "http://proxy.example.com:3128", "http_proxy": null, "no_proxy": "localhost" }
        }
    })
}

#[tokio::test]
async fn the_mirror_api_has_quays_shapes_validates_and_never_answers_the_password() {
    let (s, carol, dave) = acme(mirror_settings()).await;
    let path = "/api/v1/repository/acme/app/mirror";
    let r = s.api("GET", path, None).await;
    assert_eq!(r.status, 404, "no configuration yet: {}", r.body);

    // Validation, each refused with Quay's message and nothing stored.
    let with = |key: &str, value: Value| {
        let mut body = mirror_body();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = mirror_body();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    for (body, message) in [
        (
            with("external_reference", json!("")),
            "Empty string is an invalid repository location.",
        ),
        (
            with("external_reference", json!("no-registry")),
            "invalid external_reference",
        ),
        (
            with("external_reference", json!("quay.io/app:1.0")),
            "without a tag or digest",
        ),
        (
            with("robot_username", json!("acme+nobody")),
            "Could not find robot with username: acme+nobody",
        ),
        (
            with("robot_username", json!("carol")),
            "Could not find robot with username: carol",
        ),
        (
            with(
                "root_rule",
                json!({"rule_kind": "regex", "rule_value": ["x"]}),
            ),
            "validation failed: rule_kind must be \"tag_glob_csv\"",
        ),
        (
            with(
                "root_rule",
                json!({"rule_kind": "tag_glob_csv", "rule_value": []}),
            ),
            "rule_value for TAG_GLOB_CSV must be a list with at least one rule",
        ),
        (
            with(
                "root_rule",
                json!({"rule_kind": "tag_glob_csv", "rule_value": "1.*"}),
            ),
            "rule_value for TAG_GLOB_CSV must be a list with at least one rule",
        ),
        (
            with("sync_interval", json!(-1)),
            "sync_interval: -1 is less than the minimum of 0",
        ),
        (
            with("sync_interval", json!("hourly")),
            "is not of type 'integer'",
        ),
        (
            with("sync_start_date", json!("2026-01-01")),
            "Incorrect DateTime format for sync_start_date.",
        ),
        (
            with("external_registry_config", json!({"verify_tls": "yes"})),
            "verify_tls: expected a boolean",
        ),
        (
            without("external_registry_username"),
            "Unable to set a new password without also specifying a username.",
        ),
        (without("root_rule"), "'root_rule' is a required property"),
        (
            without("robot_username"),
            "'robot_username' is a required property",
        ),
        (json!([1, 2]), "must be a JSON object"),
    ] {
        let r = s.api("POST", path, Some(body)).await;
        assert_eq!(r.status, 400, "{message}: {}", r.body);
        assert!(
            r.body["detail"].as_str().unwrap().contains(message),
            "{message}: {}",
            r.body
        );
    }
    // A robot of another namespace is refused too.
    s.create_org("other").await;
    s.create_robot("other", "bot").await;
    let r = s
        .api(
            "POST",
            path,
            Some(with("robot_username", json!("other+bot"))),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["detail"]),
        (400, &json!("Invalid robot"))
    );
    assert_eq!(s.api("GET", path, None).await.status, 404);

    // Permissions: repository admins only.
    let r = api_call(&carol, "POST", &s.url(path), Some(mirror_body())).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api_call(&reqwest::Client::new(), "GET", &s.url(path), None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = api_call(&dave, "POST", &s.url(path), Some(mirror_body())).await;
    assert_eq!((r.status, &r.body), (201, &Value::Null));
    let r = s.api("POST", path, Some(mirror_body())).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = api_call(&carol, "GET", &s.url(path), None).await;
    assert_eq!(r.status, 403, "{}", r.body);

    let r = api_call(&dave, "GET", &s.url(path), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({
            "is_enabled": true,
            "mirror_type": "PULL",
            "external_reference": "registry.example.com/library/app",
            "external_registry_username": "puller",
            "external_registry_config": {
                "verify_tls": true,
                "unsigned_images": false,
                "proxy": { "https_proxy": "http://proxy.example.com:3128", "http_proxy": null, "no_proxy": "localhost" }
            },
            "sync_interval": 3600,
            "sync_start_date": "2026-01-01T00:00:00Z",
            "sync_expiration_date": null,
            "sync_retries_remaining": 3,
            "sync_status": "NEVER_RUN",
            "root_rule": { "rule_kind": "tag_glob_csv", "rule_value": ["1.*", "latest"] },
            "robot_username": "acme+sync",
            "last_sync": null,
            "sync_log": null,
        })
    );
    // The robot was given write on the repository, as Quay does.
    let r = s
        .api(
            "GET",
            "/api/v1/repository/acme/app/permissions/user/acme+sync",
            None,
        )
        .await;
    assert_eq!(r.body["role"], "write", "{}", r.body);

    // The password is sealed at rest, and opens only with the server's key.
    let store = s.metadata_store().await;
    let repo: RepoName = "acme/app".parse().unwrap();
    let record = store.mirror(&repo).await.unwrap().expect("stored");
    let sealed = record
        .settings
        .registry_password_sealed
        .clone()
        .expect("sealed password");
    assert!(
        sealed.starts_with("v1.") && !sealed.contains(PASSWORD),
        "{sealed}"
    );
    assert_eq!(
        s.state().mirrors.password(&record).unwrap().as_deref(),
        Some(PASSWORD)
    );

    // Partial updates, with Quay's rules for credentials.
    for body in [
        "not json",
        "{\"is_enabled\": \"yes\"}",
        "{\"external_registry_config\": []}",
        "{\"root_rule\": {\"rule_kind\": \"tag_glob_csv\"}}",
    ] {
        let r = s
            .client
            .put(s.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
    for (body, message) in [
        (
            json!({"external_registry_password": "x"}),
            "Unable to set a new password without also specifying a username.",
        ),
        (
            json!({"external_registry_username": null, "external_registry_password": "x"}),
            "Unable to delete username while setting a password.",
        ),
        (
            json!({"external_reference": ""}),
            "Empty string is an invalid repository location.",
        ),
        (
            json!({"root_rule": {"rule_kind": "tag_glob_csv", "rule_value": [1]}}),
            "rule_value for TAG_GLOB_CSV",
        ),
        (
            json!({"sync_interval": -5, "is_enabled": false}),
            "less than the minimum of 0",
        ),
    ] {
        let r = s.api("PUT", path, Some(body)).await;
        assert_eq!(r.status, 400, "{message}: {}", r.body);
        assert!(
            r.body["detail"].as_str().unwrap().contains(message),
            "{}",
            r.body
        );
    }
    let r = s
        .api(
            "PUT",
            path,
            Some(json!({
                "is_enabled": false,
                "sync_interval": 60,
                "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["2.*"]},
                "external_registry_config": {"verify_tls": false, "proxy": {"no_proxy": null}},
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let got = s.api("GET", path, None).await.body;
    assert_eq!(got["is_enabled"], false);
    assert_eq!(got["sync_interval"], 60);
    assert_eq!(got["root_rule"]["rule_value"], json!(["2.*"]));
    assert_eq!(
        got["external_registry_config"],
        json!({"verify_tls": false, "unsigned_images": false,
               "proxy": {"https_proxy": "http://proxy.example.com:3128", "http_proxy": null, "no_proxy": null}})
    );
    assert_eq!(got["external_registry_username"], "puller", "untouched");
    let r = s
        .api(
            "PUT",
            path,
            Some(json!({"external_registry_username": "other", "external_registry_password": "new-secret"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let record = store.mirror(&repo).await.unwrap().unwrap();
    assert_eq!(
        s.state().mirrors.password(&record).unwrap().as_deref(),
        Some("new-secret")
    );

    // sync-now and sync-cancel.
    let r = s.api("POST", &format!("{path}/sync-now"), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = s.api("GET", path, None).await.body;
    assert_eq!(got["sync_status"], "SYNC_NOW");
    let r = s.api("POST", &format!("{path}/sync-cancel"), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = s.api("GET", path, None).await.body;
    assert_eq!(
        (&got["sync_status"], &got["sync_retries_remaining"]),
        (&json!("CANCEL"), &json!(0))
    );
    let r = s.api("POST", &format!("{path}/sync-cancel"), None).await;
    assert_eq!(r.status, 404, "nothing to cancel: {}", r.body);
    let r = api_call(&carol, "POST", &s.url(&format!("{path}/sync-now")), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s
        .api("POST", "/api/v1/repository/acme/none/mirror/sync-now", None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // No answer and no usage log ever holds a password.
    s.state().usage.flush().await;
    let logs = s.api("GET", "/api/v1/repository/acme/app/logs", None).await;
    let text = logs.body.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("new-secret"),
        "{text}"
    );
    let kinds: Vec<&str> = logs.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "repo_mirror_config_changed",
        "repo_mirror_enabled",
        "repo_mirror_disabled",
        "repo_mirror_sync_now_requested",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(
        text.contains("\"********\""),
        "a password change is logged masked: {text}"
    );
}

#[tokio::test]
async fn a_sync_is_claimed_by_one_replica_at_a_time() {
    let (s, _, _) = acme(mirror_settings()).await;
    let path = "/api/v1/repository/acme/app/mirror";
    let mut body = mirror_body();
    body["sync_start_date"] = json!("2099-01-01T00:00:00Z");
    assert_eq!(s.api("POST", path, Some(body)).await.status, 201);
    let repo: RepoName = "acme/app".parse().unwrap();
    let (a, b) = (s.metadata_store().await, s.metadata_store().await);
    let ttl = Duration::from_secs(60);
    let now = berth_now();

    // Not due: its start is in the future, and the repository is not yet a mirror.
    assert!(a.due_mirrors(now, 10).await.unwrap().is_empty());
    assert!(a
        .claim_mirror_sync(&repo, "a", ttl, now)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.api("POST", &format!("{path}/sync-now"), None)
            .await
            .status,
        204
    );
    assert!(
        a.due_mirrors(now + 1, 10).await.unwrap().is_empty(),
        "state NORMAL"
    );
    assert_eq!(set_state(&s, "acme/app", "MIRROR").await.status, 200);
    let now = berth_now();
    assert_eq!(a.due_mirrors(now, 10).await.unwrap(), vec![repo.clone()]);

    // Two replicas claim at once: exactly one wins.
    let (ca, cb) = tokio::join!(
        a.claim_mirror_sync(&repo, "a", ttl, now),
        b.claim_mirror_sync(&repo, "b", ttl, now)
    );
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    assert!(ca.is_some() != cb.is_some(), "one claim: {ca:?} {cb:?}");
    let (winner, loser, store) = if ca.is_some() {
        ("a", "b", &a)
    } else {
        ("b", "a", &b)
    };
    let claimed = ca.or(cb).unwrap();
    assert_eq!(claimed.sync_status, SyncStatus::Syncing);
    assert_eq!(claimed.sync_expiration_date, Some(now + 60_000));
    let got = s.api("GET", path, None).await.body;
    assert_eq!(got["sync_status"], "SYNCING");
    // While it is held: no second claim, no renewal or finish by the other, no sync-now.
    assert!(a.due_mirrors(now + 1, 10).await.unwrap().is_empty());
    assert!(b
        .claim_mirror_sync(&repo, loser, ttl, now + 1)
        .await
        .unwrap()
        .is_none());
    assert!(!a
        .renew_mirror_claim(&repo, loser, ttl, now + 1)
        .await
        .unwrap());
    assert!(!a
        .finish_mirror_sync(&repo, loser, SyncOutcome::Success, now + 1)
        .await
        .unwrap());
    assert_eq!(
        s.api("POST", &format!("{path}/sync-now"), None)
            .await
            .status,
        404
    );
    assert!(store
        .renew_mirror_claim(&repo, winner, ttl, now + 2)
        .await
        .unwrap());

    // A failure with retries left keeps the start date: due again at once, one retry fewer.
    assert!(store
        .finish_mirror_sync(&repo, winner, SyncOutcome::Failure, now + 3)
        .await
        .unwrap());
    let m = a.mirror(&repo).await.unwrap().unwrap();
    assert_eq!(
        (m.sync_status, m.sync_retries_remaining),
        (SyncStatus::SyncFailed, 2)
    );
    assert_eq!(m.last_sync_at, Some(now + 3));
    // The lease went with the finish: the other replica claims the retry.
    let m = b
        .claim_mirror_sync(&repo, loser, ttl, now + 4)
        .await
        .unwrap()
        .expect("retry claimed");
    assert_eq!(m.sync_status, SyncStatus::Syncing);

    // A claimant that dies is replaced once its claim runs out, not before.
    let later = now + 4 + 60_000 + 1;
    assert!(a
        .claim_mirror_sync(&repo, winner, ttl, now + 5)
        .await
        .unwrap()
        .is_none());
    assert_eq!(a.due_mirrors(later, 10).await.unwrap(), vec![repo.clone()]);
    assert!(a
        .claim_mirror_sync(&repo, winner, ttl, later)
        .await
        .unwrap()
        .is_some());
    assert!(
        !b.renew_mirror_claim(&repo, loser, ttl, later)
            .await
            .unwrap(),
        "the dead one lost it"
    );

    // A success resets the retries and moves the start to the next interval.
    assert!(a
        .finish_mirror_sync(&repo, winner, SyncOutcome::Success, later + 1)
        .await
        .unwrap());
    let m = a.mirror(&repo).await.unwrap().unwrap();
    assert_eq!(
        (m.sync_status, m.sync_retries_remaining),
        (SyncStatus::SyncSuccess, 3)
    );
    assert!(
        m.settings.sync_start_date > later + 1,
        "next start after now"
    );
    assert!(m.settings.sync_start_date <= later + 1 + 3_600_000);
    assert!(a.due_mirrors(later + 2, 10).await.unwrap().is_empty());

    // A cancelled sync stops at its next renewal and stays cancelled.
    let now = berth_now().max(later + 3);
    assert!(a.request_mirror_sync(&repo, now).await.unwrap());
    assert!(b
        .claim_mirror_sync(&repo, "c", ttl, now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.api("POST", &format!("{path}/sync-cancel"), None)
            .await
            .status,
        204
    );
    assert!(!b
        .renew_mirror_claim(&repo, "c", ttl, now + 1)
        .await
        .unwrap());
    assert!(b
        .finish_mirror_sync(&repo, "c", SyncOutcome::Success, now + 2)
        .await
        .unwrap());
    let m = a.mirror(&repo).await.unwrap().unwrap();
    assert_eq!(
        (m.sync_status, m.sync_retries_remaining),
        (SyncStatus::Cancel, 0)
    );
    assert!(a.due_mirrors(now + 3, 10).await.unwrap().is_empty());
    // A disabled mirror is never due.
    assert!(a.request_mirror_sync(&repo, now + 4).await.unwrap());
    assert_eq!(
        s.api("PUT", path, Some(json!({"is_enabled": false})))
            .await
            .status,
        201
    );
    assert!(a.due_mirrors(now + 5, 10).await.unwrap().is_empty());
}

/// Milliseconds since the epoch, as the store's times.
fn berth_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn the_settings_tab_shows_and_changes_the_state_and_requests_a_sync() {
    let (s, _, _) = acme(mirror_settings()).await;
    s.create_user("erin").await;
    s.grant("acme/app", "erin", "write").await;
    let settings = "/repository/acme/app?tab=settings";
    let action = "/repository/acme/app";
    let mut admin = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let page = admin.get(settings).await;
    assert!(
        page.has("Repository state") && page.has("No mirror configuration"),
        "{}",
        page.body
    );

    assert_eq!(
        s.api(
            "POST",
            "/api/v1/repository/acme/app/mirror",
            Some(mirror_body())
        )
        .await
        .status,
        201
    );
    let changed = admin
        .submit(
            settings,
            action,
            &[("action", "set-state"), ("state", "MIRROR")],
        )
        .await;
    assert_eq!(changed.status, 303);
    let page = admin.get(settings).await;
    assert!(
        page.has("acme/app is now in state MIRROR."),
        "{}",
        page.body
    );
    assert!(page.has("value=\"MIRROR\" checked"), "{}", page.body);
    assert!(
        page.has("registry.example.com/library/app") && page.has("acme+sync") && page.has("puller")
    );
    assert!(page.has("NEVER_RUN"));
    assert!(!page.has(PASSWORD), "the password is never shown");
    let r = s.api("GET", "/api/v1/repository/acme/app", None).await;
    assert_eq!(r.body["state"], "MIRROR");

    // Sync now, then a tag delete from the Tags tab, which the mirror refuses.
    admin
        .submit(settings, action, &[("action", "mirror-sync-now")])
        .await;
    let page = admin.get(settings).await;
    // The worker, woken by the request, may already have tried the (unreachable) source.
    assert!(
        page.has("A sync was requested.")
            && ["SYNC_NOW", "SYNCING", "SYNC_FAILED"]
                .iter()
                .any(|status| page.has(status)),
        "{}",
        page.body
    );
    admin
        .submit(
            "/repository/acme/app?tab=tags",
            action,
            &[("action", "delete-tag"), ("tag", "v1")],
        )
        .await;
    let page = admin.get("/repository/acme/app?tab=tags").await;
    assert!(
        page.has("is a mirror of registry.example.com/library/app"),
        "{}",
        page.body
    );
    assert!(page.has("data-tag=\"v1\""), "the tag is still there");
    assert!(
        page.has("class=\"pill pill-state\"") && page.has(">mirror</span>"),
        "{}",
        page.body
    );

    // A writer sees no Settings tab and cannot post its forms; a form without the CSRF token
    // changes nothing.
    let mut erin = Browser::signed_in(&s.base, "erin", &password_of("erin")).await;
    assert_eq!(erin.get(settings).await.status, 403);
    let csrf = erin.get("/repository/acme/app").await.csrf();
    let r = erin
        .post(
            action,
            &[
                ("csrf", csrf.as_str()),
                ("action", "set-state"),
                ("state", "NORMAL"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = admin
        .post(action, &[("action", "set-state"), ("state", "NORMAL")])
        .await;
    assert_ne!(r.status, 303, "no CSRF token, no change");
    let r = s.api("GET", "/api/v1/repository/acme/app", None).await;
    assert_eq!(r.body["state"], "MIRROR");
}
