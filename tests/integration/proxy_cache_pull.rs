//! Pulling through a proxy cache organization (`src/proxy/`): real upstreams started here (CNCF
//! distribution with htpasswd, and a second berth with its token flow), content compared byte
//! for byte with the upstream's, revalidation and staleness with a small `expiration_s`, the
//! single flight of concurrent blob pulls counted at the upstream (through a recording relay),
//! a corrupt upstream blob never cached, and who may pull and push.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

const UPSTREAM_USER: &str = "cacheuser";
const UPSTREAM_PASSWORD: &str = "Upstream-Pw-7f3k9q";

/// A berth with the proxy cache feature on and organization `cache` caching `upstream`.
async fn proxy_server(
    upstream: &str,
    credentials: Option<(&str, &str)>,
    expiration_s: i64,
) -> TestServer {
    let server = TestServer::start_with(berth::config::Settings {
        proxy_cache: true,
        ..Default::default()
    })
    .await;
    server.create_org("cache").await;
    let mut body = json!({
        "upstream_registry": upstream, "insecure": true, "expiration_s": expiration_s,
    });
    if let Some((user, password)) = credentials {
        body["upstream_registry_username"] = json!(user);
        body["upstream_registry_password"] = json!(password);
    }
    let r = server
        .api("POST", "/api/v1/organization/cache/proxycache", Some(body))
        .await;
    assert_eq!(r.status, 201, "configure the proxy cache: {}", r.body);
    server
}

fn host_of(base: &str) -> &str {
    base.strip_prefix("http://").expect("http base")
}

async fn get_bytes(
    client: &reqwest::Client,
    url: String,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = client.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.expect("body").to_vec())
}

fn accept(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.header(
        "accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
    )
}

#[tokio::test]
async fn proxy_pull_serves_upstream_content_to_members_and_refuses_pushes() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let image = push_test_image(&dist.client(), &dist.base, "library/app", "1", 3, 64 * 1024).await;
    let s = proxy_server(
        host_of(&dist.base),
        Some((UPSTREAM_USER, UPSTREAM_PASSWORD)),
        3600,
    )
    .await;
    let admin = &s.client;

    // By tag and by digest: the upstream's exact bytes and digest.
    let r = Reply::send(accept(
        admin.get(s.url("/v2/cache/library/app/manifests/1")),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.text.as_bytes(), image.manifest.as_slice());
    assert_eq!(r.header("docker-content-digest"), image.digest);
    assert_eq!(
        r.header("content-type"),
        "application/vnd.oci.image.manifest.v1+json"
    );
    let r = Reply::send(accept(
        admin.get(s.url(&format!("/v2/cache/library/app/manifests/{}", image.digest))),
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text.as_bytes(), image.manifest.as_slice());
    // The config was fetched with the manifest; the layer is fetched when pulled.
    let store = s.state().registry.clone();
    let repo: oci::RepoName = "cache/library/app".parse().unwrap();
    assert!(store
        .stat_blob(&repo, &image.config.parse().unwrap())
        .await
        .is_ok());
    assert!(store
        .stat_blob(&repo, &image.layer.parse().unwrap())
        .await
        .is_err());
    let head =
        exec(admin.head(s.url(&format!("/v2/cache/library/app/blobs/{}", image.layer)))).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), (64 * 1024).to_string());
    let (status, headers, body) = get_bytes(
        admin,
        s.url(&format!("/v2/cache/library/app/blobs/{}", image.layer)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, image.layer_bytes);
    assert_eq!(headers["docker-content-digest"], image.layer.as_str());
    // The client has its last bytes once they are verified; the store commits meanwhile.
    let deadline = Instant::now() + Duration::from_secs(20);
    let stored = loop {
        match store.stat_blob(&repo, &image.layer.parse().unwrap()).await {
            Ok(size) => break size,
            Err(_) => {
                assert!(Instant::now() < deadline, "the blob was never stored");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(stored, 64 * 1024);
    // Cached content is ordinary content: listed, and served again without the upstream.
    let r = Reply::send(admin.get(s.url("/v2/cache/library/app/tags/list"))).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("\"1\""), "{}", r.text);
    let info = s
        .api("GET", "/api/v1/repository/cache/library/app", None)
        .await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(
        info.body["is_public"], false,
        "created private, as Quay does"
    );

    // Unknown upstream: 404.
    let r = exec(accept(
        admin.get(s.url("/v2/cache/library/app/manifests/nope")),
    ))
    .await;
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    let r = exec(accept(
        admin.get(s.url("/v2/cache/library/other/manifests/1")),
    ))
    .await;
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;

    // Members of any team pull (robots in teams too); others may not; nothing is fetched for
    // them.
    let member = s.create_user("member").await;
    s.create_team("cache", "readers", "member").await;
    s.add_team_member("cache", "readers", "member").await;
    let robot_token = s.create_robot("cache", "puller").await;
    s.add_team_member("cache", "readers", "cache+puller").await;
    let robot = authed_client("cache+puller", &robot_token);
    let stranger = s.create_user("stranger").await;
    let anonymous = reqwest::Client::new();
    let first_pull = "/v2/cache/library/app/manifests/1";
    for client in [&member, &robot] {
        let r = Reply::send(accept(client.get(s.url(first_pull)))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.text.as_bytes(), image.manifest.as_slice());
    }
    // A repository the member pulls first is created by that pull.
    push_test_image(&dist.client(), &dist.base, "library/tool", "2", 4, 100).await;
    let r = Reply::send(accept(
        member.get(s.url("/v2/cache/library/tool/manifests/2")),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = exec(accept(stranger.get(s.url(first_pull)))).await;
    assert_error(r, 403, "DENIED").await;
    let r = exec(accept(
        stranger.get(s.url("/v2/cache/library/fresh/manifests/1")),
    ))
    .await;
    assert_error(r, 403, "DENIED").await;
    let r = exec(accept(anonymous.get(s.url(first_pull)))).await;
    assert_error(r, 401, "UNAUTHORIZED").await;
    let info = s
        .api("GET", "/api/v1/repository/cache/library/fresh", None)
        .await;
    assert_eq!(info.status, 404, "nothing was created for a refused pull");

    // Pushes are refused for everyone, naming the upstream.
    let r = put_manifest(
        admin,
        &s.base,
        "cache/library/app",
        "2",
        "application/vnd.oci.image.manifest.v1+json",
        &image.manifest,
    )
    .await;
    let v = assert_error(r, 403, "DENIED").await;
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("proxy cache") && message.contains(host_of(&dist.base)),
        "{message}"
    );
    let r = exec(admin.post(s.url("/v2/cache/library/app/blobs/uploads/"))).await;
    assert_error(r, 403, "DENIED").await;
    let r = exec(admin.post(s.url(&format!(
        "/v2/cache/library/app/blobs/uploads/?mount={}&from=cache/library/tool",
        image.layer
    ))))
    .await;
    assert_error(r, 403, "DENIED").await;
    let r = s
        .api(
            "PUT",
            "/api/v1/repository/cache/library/app/tag/moved",
            Some(json!({"manifest_digest": image.digest})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Admins evict.
    let r = exec(admin.delete(s.url("/v2/cache/library/app/manifests/1"))).await;
    assert_eq!(r.status(), 202);

    // The pulls were counted.
    let metrics = Reply::send(admin.get(s.url("/metrics"))).await.text;
    for needle in [
        r#"berth_proxy_cache_requests_total{kind="manifest",result="miss"}"#,
        r#"berth_proxy_cache_requests_total{kind="manifest",result="hit"}"#,
        r#"berth_proxy_cache_requests_total{kind="blob",result="miss"}"#,
    ] {
        assert!(metrics.contains(needle), "{needle} in metrics");
    }

    // The organization page says what it caches, to members.
    let mut browser = Browser::signed_in(&s.base, "member", &password_of("member")).await;
    let page = browser.get("/organization/cache").await;
    assert!(page.has("proxy cache of"), "{}", page.body);
    assert!(page.has(host_of(&dist.base)));
    // Cached repositories list as usual: a member sees what it may pull.
    assert!(page.has("cache/library/tool"), "{}", page.body);
    let r = Reply::send(member.get(s.url("/v2/_catalog"))).await;
    assert!(r.text.contains("cache/library/tool"), "{}", r.text);
}

#[tokio::test]
async fn proxy_pull_revalidates_moved_tags_and_goes_stale_without_the_upstream() {
    let mut dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let first = push_test_image(&dist.client(), &dist.base, "library/app", "1", 3, 1000).await;
    let expiration = 2;
    let s = proxy_server(
        host_of(&dist.base),
        Some((UPSTREAM_USER, UPSTREAM_PASSWORD)),
        expiration,
    )
    .await;
    let pull = || async {
        Reply::send(accept(
            s.client.get(s.url("/v2/cache/library/app/manifests/1")),
        ))
        .await
    };
    let r = pull().await;
    assert_eq!(r.header("docker-content-digest"), first.digest);

    // The tag moves upstream: seen once the cached one is older than expiration_s.
    let second = push_test_image(&dist.client(), &dist.base, "library/app", "1", 4, 1000).await;
    let started = Instant::now();
    let r = pull().await;
    if started.elapsed() < Duration::from_secs(1) {
        assert_eq!(
            r.header("docker-content-digest"),
            first.digest,
            "fresh: not asked"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = pull().await;
        assert_eq!(r.status, 200, "{}", r.text);
        if r.header("docker-content-digest") == second.digest {
            assert_eq!(r.text.as_bytes(), second.manifest.as_slice());
            break;
        }
        assert!(Instant::now() < deadline, "the moved tag was never seen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The upstream stops: the cached tag pulls within expiration_s of its last validation...
    dist.stop().await;
    let validated = Instant::now();
    let r = pull().await;
    if validated.elapsed() < Duration::from_secs(1) {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("docker-content-digest"), second.digest);
    }
    // ...and fails clearly after.
    let deadline = Instant::now() + Duration::from_secs(15);
    let failure = loop {
        let r = pull().await;
        if r.status != 200 {
            break r;
        }
        assert!(Instant::now() < deadline, "a stale tag was still served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failure.status, 404, "{}", failure.text);
    let body = check_error_body(failure.text.as_bytes());
    assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("unreachable") && message.contains("stale"),
        "{message}"
    );
    // A blob not cached fails clearly too.
    let r = exec(
        s.client
            .get(s.url(&format!("/v2/cache/library/app/blobs/{}", second.layer))),
    )
    .await;
    let v = assert_error(r, 404, "BLOB_UNKNOWN").await;
    assert!(v["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("unreachable"));

    // The sweep removes the stale tag (to the tag history); its content is then ordinary
    // garbage.
    let removed = berth::proxy::sweep(s.state()).await.expect("sweep");
    assert_eq!(removed, 1);
    let r = Reply::send(s.client.get(s.url("/v2/cache/library/app/tags/list"))).await;
    assert!(!r.text.contains("\"1\""), "{}", r.text);
    assert_eq!(berth::proxy::sweep(s.state()).await.expect("sweep"), 0);

    // Back up: pulled again.
    dist.restart().await;
    let r = pull().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("docker-content-digest"), second.digest);

    // Another replica agrees on the tag's freshness: it serves it without the upstream.
    let replica = s.replica().await;
    dist.stop().await;
    let r = Reply::send(accept(
        replica
            .client
            .get(replica.url("/v2/cache/library/app/manifests/1")),
    ))
    .await;
    if validated_recently(&s).await {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("docker-content-digest"), second.digest);
    }
    dist.restart().await;

    // Gone upstream: once revalidated, 404 and the cached tag goes.
    let r = dist
        .client()
        .delete(format!(
            "{}/v2/library/app/manifests/{}",
            dist.base, second.digest
        ))
        .send()
        .await
        .expect("delete upstream");
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = pull().await;
        if r.status == 404 {
            let body = check_error_body(r.text.as_bytes());
            assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a tag deleted upstream was still served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = Reply::send(s.client.get(s.url("/v2/cache/library/app/tags/list"))).await;
    assert!(!r.text.contains("\"1\""), "{}", r.text);
}

/// Whether the cached tag `1` of `cache/library/app` was confirmed less than a second ago
/// (the tests' expiration_s is 2 s, so the next pull is still fresh).
async fn validated_recently(s: &TestServer) -> bool {
    let repo: oci::RepoName = "cache/library/app".parse().unwrap();
    let tag: oci::Tag = "1".parse().unwrap();
    let cached = s
        .state()
        .proxy_caches
        .store()
        .cached_tag(&repo, &tag)
        .await
        .expect("cached tag")
        .expect("tag cached");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    cached.validated_at.is_some_and(|v| now - v < 1000)
}

#[tokio::test]
async fn proxy_pull_configuration_changes_count_at_the_next_request() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let image = push_test_image(&dist.client(), &dist.base, "library/app", "1", 3, 100).await;
    let s = TestServer::start_with(berth::config::Settings {
        proxy_cache: true,
        ..Default::default()
    })
    .await;
    s.create_org("cache").await;
    let member = s.create_user("member").await;
    s.create_team("cache", "readers", "member").await;
    s.add_team_member("cache", "readers", "member").await;
    let url = s.url("/v2/cache/library/app/manifests/1");
    // An ordinary organization: a member without a grant may not pull a repository that
    // does not exist (the decision is remembered under the access generation).
    let r = exec(accept(member.get(&url))).await;
    assert_error(r, 403, "DENIED").await;
    let config = json!({"upstream_registry": host_of(&dist.base), "insecure": true,
        "upstream_registry_username": UPSTREAM_USER, "upstream_registry_password": UPSTREAM_PASSWORD});
    let r = s
        .api(
            "POST",
            "/api/v1/organization/cache/proxycache",
            Some(config),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A proxy cache from the next request on.
    let r = Reply::send(accept(member.get(&url))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("docker-content-digest"), image.digest);
    let r = put_manifest(
        &s.client,
        &s.base,
        "cache/library/other",
        "1",
        "application/vnd.oci.image.manifest.v1+json",
        &image.manifest,
    )
    .await;
    assert_error(r, 403, "DENIED").await;
    // Deleted: an ordinary organization again; the member's pull rests on grants only.
    let r = s
        .api("DELETE", "/api/v1/organization/cache/proxycache", None)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = exec(accept(member.get(&url))).await;
    assert_error(r, 403, "DENIED").await;
    let r = exec(accept(
        s.client.get(s.url("/v2/cache/library/unknown/manifests/1")),
    ))
    .await;
    let v = assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    assert!(
        !v.to_string().contains("upstream"),
        "no longer fetched upstream: {v}"
    );
}

#[tokio::test]
async fn proxy_pull_through_a_berth_with_tokens_caches_indexes_referrers_and_cosign_tags() {
    let upstream = TestServer::start().await;
    upstream.create_org("library").await;
    let c = &upstream.client;
    let amd = push_test_image(c, &upstream.base, "library/multi", "amd", 1, 3000).await;
    let arm = push_test_image(c, &upstream.base, "library/multi", "arm", 2, 4000).await;
    let descriptor = |d: &str, len: usize, arch: &str| {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
               "size": len, "platform": {"os": "linux", "architecture": arch}})
    };
    let index = push_index(
        c,
        &upstream.base,
        "library/multi",
        "latest",
        vec![
            descriptor(&amd.digest, amd.manifest.len(), "amd64"),
            descriptor(&arm.digest, arm.manifest.len(), "arm64"),
        ],
    )
    .await;
    let referrer = push_referrer(c, &upstream.base, "library/multi", &amd.digest).await;
    let hex = amd.digest.strip_prefix("sha256:").unwrap();
    let cosign_tag = format!("sha256-{hex}.sig");
    let signature = push_test_image(c, &upstream.base, "library/multi", &cosign_tag, 7, 50).await;
    upstream.create_user("mirror").await;
    upstream.grant("library/multi", "mirror", "read").await;
    let password = password_of("mirror");
    let s = proxy_server(
        &format!("{}/library", host_of(&upstream.base)),
        Some(("mirror", &password)),
        3600,
    )
    .await;

    // The upstream namespace prefix is applied: cache/multi is library/multi upstream.
    let r = Reply::send(accept(
        s.client.get(s.url("/v2/cache/multi/manifests/latest")),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("docker-content-digest"), index);
    // Children are fetched when pulled.
    let repo: oci::RepoName = "cache/multi".parse().unwrap();
    let by_digest = |d: &str| oci::Reference::Digest(d.parse().unwrap());
    assert!(s
        .state()
        .registry
        .get_manifest(&repo, &by_digest(&arm.digest))
        .await
        .is_err());
    for child in [&amd, &arm] {
        let r = Reply::send(accept(
            s.client
                .get(s.url(&format!("/v2/cache/multi/manifests/{}", child.digest))),
        ))
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.text.as_bytes(), child.manifest.as_slice());
        let (status, _, body) = get_bytes(
            &s.client,
            s.url(&format!("/v2/cache/multi/blobs/{}", child.layer)),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body, child.layer_bytes);
    }
    // Referrers: the upstream's list, its manifests cached.
    let r = Reply::send(
        s.client
            .get(s.url(&format!("/v2/cache/multi/referrers/{}", amd.digest))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listed: serde_json::Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(
        listed["manifests"][0]["digest"],
        referrer.as_str(),
        "{}",
        r.text
    );
    assert!(s
        .state()
        .registry
        .get_manifest(&repo, &by_digest(&referrer))
        .await
        .is_ok());
    // A cosign-style tag is a tag like any other.
    let r = Reply::send(accept(
        s.client
            .get(s.url(&format!("/v2/cache/multi/manifests/{cosign_tag}"))),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("docker-content-digest"), signature.digest);
}

#[tokio::test]
async fn proxy_pull_fetches_a_blob_once_for_concurrent_pulls() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let size = 8 << 20;
    let image = push_test_image(&dist.client(), &dist.base, "library/big", "1", 9, size).await;
    let relay = RecordingRelay::start(format!("127.0.0.1:{}", dist.port).parse().unwrap()).await;
    let s = proxy_server(
        &relay.addr.to_string(),
        Some((UPSTREAM_USER, UPSTREAM_PASSWORD)),
        3600,
    )
    .await;
    // The manifest first, as a client pulls: the upstream's challenge is learned by then,
    // so each request below reaches the upstream once.
    let r = Reply::send(accept(
        s.client.get(s.url("/v2/cache/library/big/manifests/1")),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let url = s.url(&format!("/v2/cache/library/big/blobs/{}", image.layer));
    let pulls = (0..32).map(|_| {
        let client = s.client.clone();
        let url = url.clone();
        async move {
            let r = client.get(url).send().await.expect("GET");
            assert_eq!(r.status(), 200);
            sha256(&r.bytes().await.expect("body"))
        }
    });
    let digests = futures::future::join_all(pulls).await;
    assert!(
        digests.iter().all(|d| *d == image.layer),
        "every pull got the blob"
    );
    let fetched = relay.count(&format!("GET /v2/library/big/blobs/{}", image.layer));
    assert_eq!(fetched, 1, "one fetch from the upstream for 32 pulls");
    // The fetch ends once the store has committed, just after the clients have their bytes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.state().proxy_caches.pulls.running() != 0 {
        assert!(Instant::now() < deadline, "the fetch never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Two replicas sharing the database and the store, each pulling another blob: at most one
    // fetch per replica, and every pull gets the right bytes.
    let other = push_test_image(&dist.client(), &dist.base, "library/big", "2", 10, 1 << 20).await;
    let replica = s.replica().await;
    let r = Reply::send(accept(
        s.client.get(s.url("/v2/cache/library/big/manifests/2")),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let pulls = (0..16).map(|i| {
        let server = if i % 2 == 0 { &s } else { &replica };
        let client = server.client.clone();
        let url = server.url(&format!("/v2/cache/library/big/blobs/{}", other.layer));
        async move {
            let r = client.get(url).send().await.expect("GET");
            assert_eq!(r.status(), 200);
            sha256(&r.bytes().await.expect("body"))
        }
    });
    let digests = futures::future::join_all(pulls).await;
    assert!(
        digests.iter().all(|d| *d == other.layer),
        "every pull got the blob"
    );
    // (The replica's client meets the upstream's challenge on its first request.)
    let fetched = relay.count_authorized(&format!("GET /v2/library/big/blobs/{}", other.layer));
    assert!(
        (1..=2).contains(&fetched),
        "{fetched} fetches for two replicas: {}",
        relay.heads(&other.layer)
    );
}

#[tokio::test]
async fn proxy_pull_never_caches_a_corrupt_upstream_blob() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let image = push_test_image(
        &dist.client(),
        &dist.base,
        "library/app",
        "1",
        5,
        256 * 1024,
    )
    .await;
    let s = proxy_server(
        host_of(&dist.base),
        Some((UPSTREAM_USER, UPSTREAM_PASSWORD)),
        3600,
    )
    .await;
    // A byte flipped in the upstream's copy: same length, another digest.
    let path = dist.blob_path(&image.layer);
    let mut corrupt = image.layer_bytes.clone();
    corrupt[1000] ^= 0xff;
    std::fs::write(&path, &corrupt).expect("corrupt the upstream's blob");
    let url = s.url(&format!("/v2/cache/library/app/blobs/{}", image.layer));
    for _ in 0..2 {
        let r = s.client.get(&url).send().await.expect("GET");
        // The reply started, so its status is 200; the body must not end cleanly.
        assert_eq!(r.status(), 200);
        assert!(
            r.bytes().await.is_err(),
            "a corrupt blob ends the body with an error"
        );
    }
    let digest: oci::Digest = image.layer.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.state().proxy_caches.pulls.running() > 0 {
        assert!(Instant::now() < deadline, "the failed fetch never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        s.state().registry.stored_blob_size(&digest).await.unwrap(),
        None,
        "nothing cached"
    );
    // Repaired upstream: cached.
    std::fs::write(&path, &image.layer_bytes).expect("repair");
    let (status, _, body) = get_bytes(&s.client, url).await;
    assert_eq!(status, 200);
    assert_eq!(body, image.layer_bytes);
}

/// `BERTH_PROXY_MEMORY_BYTES` (the acceptance size is 268435456, 256 MiB); by default a blob
/// small enough for the default suite, still eight times the channel buffers of every pull.
fn memory_blob_size() -> usize {
    match std::env::var("BERTH_PROXY_MEMORY_BYTES") {
        Ok(v) => v
            .trim()
            .parse()
            .expect("BERTH_PROXY_MEMORY_BYTES is a number of bytes"),
        Err(_) => 8 << 20,
    }
}

/// 32 concurrent first pulls of a large blob through the real binary: one fetch upstream, every
/// pull the right bytes, and berth's peak resident memory within 64 MiB of where it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_pull_memory_stays_flat_for_32_concurrent_first_pulls() {
    use futures::StreamExt;
    use sha2::{Digest as _, Sha256};
    const MIB: u64 = 1 << 20;
    let size = memory_blob_size();
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let image = push_test_image(&dist.client(), &dist.base, "library/app", "1", 11, size).await;
    let relay = RecordingRelay::start(format!("127.0.0.1:{}", dist.port).parse().unwrap()).await;
    let dir = tempfile::tempdir().expect("data dir");
    let mut config = "FEATURE_PROXY_CACHE: true\n".to_string();
    if let Some(storage) = test_storage_for(dir.path()) {
        config.push_str(&storage_config_yaml(&storage));
    }
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config).expect("config");
    let server = ProcessServer::spawn_with_config(dir.path(), Some(config_path)).await;
    let pid = server.child.id().expect("berth pid");
    let base = server.base.clone();
    let admin = server.client.clone();
    let r = api_call(
        &admin,
        "POST",
        &format!("{base}/api/v1/organization/"),
        Some(json!({"name": "cache"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api_call(
        &admin,
        "POST",
        &format!("{base}/api/v1/organization/cache/proxycache"),
        Some(
            json!({"upstream_registry": relay.addr.to_string(), "insecure": true,
            "upstream_registry_username": UPSTREAM_USER,
            "upstream_registry_password": UPSTREAM_PASSWORD}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = Reply::send(accept(
        admin.get(format!("{base}/v2/cache/library/app/manifests/1")),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let (rss_before, hwm_before) = memory_of(pid);
    let started = Instant::now();
    let url = format!("{base}/v2/cache/library/app/blobs/{}", image.layer);
    let pulls = (0..32).map(|_| {
        let client = admin.clone();
        let url = url.clone();
        async move {
            let r = client.get(url).send().await.expect("GET");
            assert_eq!(r.status(), 200);
            let mut hasher = Sha256::new();
            let mut body = r.bytes_stream();
            while let Some(chunk) = body.next().await {
                hasher.update(chunk.expect("blob body"));
            }
            format!("sha256:{}", hex::encode(hasher.finalize()))
        }
    });
    let digests = futures::future::join_all(pulls).await;
    let elapsed = started.elapsed();
    let (_, hwm_after) = memory_of(pid);
    println!(
        "proxy memory: 32 first pulls of {} MiB in {elapsed:.1?}; VmRSS before {} MiB (peak so far {} MiB), peak after {} MiB",
        size as u64 / MIB,
        rss_before / MIB,
        hwm_before / MIB,
        hwm_after / MIB
    );
    assert!(
        digests.iter().all(|d| *d == image.layer),
        "every pull got the blob"
    );
    let fetched = relay.count(&format!("GET /v2/library/app/blobs/{}", image.layer));
    assert_eq!(fetched, 1, "one fetch from the upstream for 32 pulls");
    assert!(
        hwm_after < rss_before + 64 * MIB,
        "peak memory rose {} MiB over the resident size before (allowed 64 MiB)",
        hwm_after.saturating_sub(rss_before) / MIB
    );
    server.kill9().await;
}

/// skopeo, a real client, copies an image out of the cache: the same digest and bytes as
/// from the upstream.
#[tokio::test]
async fn proxy_pull_with_skopeo_copies_the_upstream_image() {
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let image = push_test_image(&dist.client(), &dist.base, "library/app", "1", 21, 100_000).await;
    let s = proxy_server(
        host_of(&dist.base),
        Some((UPSTREAM_USER, UPSTREAM_PASSWORD)),
        3600,
    )
    .await;
    s.create_user("alice").await;
    s.create_team("cache", "readers", "member").await;
    s.add_team_member("cache", "readers", "alice").await;
    let out = tempfile::tempdir().expect("out dir");
    let layout = out.path().join("app");
    let creds = format!("alice:{}", password_of("alice"));
    let output = tokio::process::Command::new("skopeo")
        .args([
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
        ])
        .arg(format!("docker://{}/cache/library/app:1", host_of(&s.base)))
        .arg(format!("oci:{}:1", layout.display()))
        .output()
        .await
        .expect("skopeo must be installed");
    assert!(
        output.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What skopeo reads is the upstream's manifest, byte for byte.
    let raw = tokio::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--creds", &creds])
        .arg(format!("docker://{}/cache/library/app:1", host_of(&s.base)))
        .output()
        .await
        .expect("skopeo inspect");
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(raw.stdout, image.manifest);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    assert_eq!(index["manifests"][0]["digest"], image.digest.as_str());
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    assert_eq!(std::fs::read(blob(&image.digest)).unwrap(), image.manifest);
    assert_eq!(
        std::fs::read(blob(&image.layer)).unwrap(),
        image.layer_bytes
    );
    // The pull was logged as Quay does, with alice as the performer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = s
            .api("GET", "/api/v1/repository/cache/library/app/logs", None)
            .await;
        let text = logs.body.to_string();
        if text.contains("pull_repo") && text.contains("alice") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no pull_repo log by alice: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client that goes away mid-blob does not stop the blob being stored.
#[tokio::test]
async fn proxy_pull_stores_a_blob_whose_client_went_away() {
    use futures::StreamExt;
    let dist = Distribution::start(UPSTREAM_USER, UPSTREAM_PASSWORD).await;
    let image = push_test_image(&dist.client(), &dist.base, "library/app", "1", 6, 24 << 20).await;
    let s = proxy_server(
        host_of(&dist.base),
        Some((UPSTREAM_USER, UPSTREAM_PASSWORD)),
        3600,
    )
    .await;
    let url = s.url(&format!("/v2/cache/library/app/blobs/{}", image.layer));
    let r = s.client.get(&url).send().await.expect("GET");
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("chunk");
    assert!(!first.is_empty());
    drop(body);
    let repo: oci::RepoName = "cache/library/app".parse().unwrap();
    let digest: oci::Digest = image.layer.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.state().registry.stat_blob(&repo, &digest).await.is_err() {
        assert!(Instant::now() < deadline, "the blob was never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, bytes) = get_bytes(&s.client, url).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, image.layer_bytes);
}

/// An upstream berth on S3 redirects blob downloads to its object store: the cache follows the
/// redirect, and a HEAD of a blob not cached answers the upstream's size. Needs
/// `BERTH_TEST_S3_ENDPOINT` (`scripts/garage.sh`).
#[tokio::test]
async fn proxy_pull_follows_the_upstreams_blob_redirects() {
    let prefix = format!("proxy-redirect/{}", uuid::Uuid::new_v4().simple());
    let Some(s3) = s3_under_test(&prefix) else {
        println!("not run: BERTH_TEST_S3_ENDPOINT is not set (bash scripts/garage.sh start)");
        return;
    };
    let upstream = TestServer::start_with(berth::config::Settings {
        storage: berth::config::StorageSettings::S3(s3),
        proxy_storage: false,
        ..berth::config::Settings::default()
    })
    .await;
    upstream.create_org("library").await;
    let c = &upstream.client;
    let image = push_test_image(c, &upstream.base, "library/app", "1", 8, 3 << 20).await;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(upstream.url(&format!("/v2/library/app/blobs/{}", image.layer)))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("blob");
    assert_eq!(r.status(), 307, "the upstream redirects");
    let s = proxy_server(
        &format!("{}/library", host_of(&upstream.base)),
        Some((ADMIN_USER, ADMIN_PASSWORD)),
        3600,
    )
    .await;
    let url = s.url(&format!("/v2/cache/app/blobs/{}", image.layer));
    let head = exec(s.client.head(&url)).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), (3 << 20).to_string());
    let (status, _, body) = get_bytes(&s.client, url).await;
    assert_eq!(status, 200);
    assert_eq!(body, image.layer_bytes);
}
