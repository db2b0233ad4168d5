//! The upstream registry client (`berth::upstream`) against real registries started here: CNCF
//! distribution with htpasswd (Basic) and a second berth (the Docker token flow).

use berth::upstream::{Credentials, Upstream, UpstreamConfig, UpstreamError};
use futures::StreamExt;
use oci::{Digest, Reference, RepoName};
use serde_json::json;

use crate::common::{
    push_index, push_referrer, push_test_image, Distribution, RecordingRelay, TestServer,
};

fn client(registry: &str, credentials: Option<(&str, &str)>) -> Upstream {
    Upstream::new(UpstreamConfig {
        registry: registry.parse().expect("upstream registry"),
        insecure: true,
        credentials: credentials.map(|(u, p)| Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }),
    })
    .expect("upstream client")
}

/// `berth_tokens_issued_total` of a berth.
async fn tokens_issued(server: &TestServer) -> u64 {
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("berth_tokens_issued_total "))
        .expect("berth_tokens_issued_total")
        .trim()
        .parse()
        .expect("count")
}

fn repo(name: &str) -> RepoName {
    name.parse().expect("repo name")
}

fn digest(d: &str) -> Digest {
    d.parse().expect("digest")
}

/// Reads a blob stream to its end; the error of its last item, if any.
async fn read_blob(
    upstream: &Upstream,
    repository: &RepoName,
    d: &Digest,
) -> Result<Vec<u8>, UpstreamError> {
    let mut stream = upstream.get_blob(repository, d).await?;
    let mut bytes = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
        chunks += 1;
    }
    assert!(chunks >= 1, "no chunk");
    Ok(bytes)
}

#[tokio::test]
async fn upstream_client_reads_distribution_with_basic_auth() {
    let mut dist = Distribution::start("puller", "s3cret-pass").await;
    let pusher = dist.client();
    let image = push_test_image(&pusher, &dist.base, "library/app", "1", 7, 3 << 20).await;
    for tag in ["2", "3", "4", "5"] {
        push_test_image(&pusher, &dist.base, "library/app", tag, 7, 3 << 20).await;
    }
    // A referrer in the OCI tag schema (distribution 2.8 has no referrers API).
    let hex = image.digest.strip_prefix("sha256:").expect("sha256");
    let referrer = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": image.digest, "size": image.manifest.len(), "artifactType": "application/spdx+json"});
    push_index(
        &pusher,
        &dist.base,
        "library/app",
        &format!("sha256-{hex}"),
        vec![referrer.clone()],
    )
    .await;

    // The namespace of `upstream_registry` is put in front of the repository path.
    let upstream = client(
        &format!("127.0.0.1:{}/library", dist.port),
        Some(("puller", "s3cret-pass")),
    );
    upstream.ping(None).await.expect("ping");
    let app = upstream.repository("app").expect("repository");
    assert_eq!(app.as_str(), "library/app");

    let tag = Reference::Tag("1".parse().expect("tag"));
    let head = upstream.head_manifest(&app, &tag).await.expect("head");
    assert_eq!(head.digest, Some(digest(&image.digest)));
    assert_eq!(head.size, Some(image.manifest.len() as u64));
    let by_tag = upstream.get_manifest(&app, &tag).await.expect("by tag");
    assert_eq!(by_tag.bytes.as_ref(), image.manifest.as_slice());
    assert_eq!(by_tag.digest, digest(&image.digest));
    assert_eq!(
        by_tag.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    let by_digest = upstream
        .get_manifest(&app, &Reference::Digest(digest(&image.digest)))
        .await
        .expect("by digest");
    assert_eq!(by_digest.bytes, by_tag.bytes);

    let layer = read_blob(&upstream, &app, &digest(&image.layer))
        .await
        .expect("layer");
    assert_eq!(layer, image.layer_bytes);

    // Two tags a page: the client follows Link through three pages.
    let mut tags: Vec<String> = upstream
        .list_tags_paged(&app, 2)
        .await
        .expect("tags")
        .iter()
        .map(|t| t.to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, ["1", "2", "3", "4", "5", &format!("sha256-{hex}")]);
    assert_eq!(upstream.list_tags(&app).await.expect("tags").len(), 6);

    let referrers = upstream
        .referrers(&app, &digest(&image.digest))
        .await
        .expect("referrers");
    assert!(referrers.from_tag_schema);
    assert_eq!(referrers.manifests, vec![referrer]);
    let layer_referrers = upstream
        .referrers(&app, &digest(&image.layer))
        .await
        .expect("none");
    assert!(layer_referrers.manifests.is_empty());

    // Not there: typed NotFound, for a tag, a digest and a blob.
    let missing = Reference::Tag("nope".parse().expect("tag"));
    assert!(matches!(
        upstream.get_manifest(&app, &missing).await,
        Err(UpstreamError::NotFound)
    ));
    assert!(matches!(
        upstream.head_manifest(&app, &missing).await,
        Err(UpstreamError::NotFound)
    ));
    let absent = digest(&crate::common::sha256(b"absent"));
    assert!(matches!(
        upstream.get_blob(&app, &absent).await,
        Err(UpstreamError::NotFound)
    ));
    assert!(matches!(
        upstream
            .get_manifest(&app, &Reference::Digest(absent))
            .await,
        Err(UpstreamError::NotFound)
    ));

    // Wrong password and no credentials: Unauthorized, never NotFound.
    let wrong = client(
        &format!("127.0.0.1:{}", dist.port),
        Some(("puller", "wrong")),
    );
    let full = repo("library/app");
    assert!(matches!(
        wrong.get_manifest(&full, &tag).await,
        Err(UpstreamError::Unauthorized(_))
    ));
    assert!(matches!(
        wrong.ping(None).await,
        Err(UpstreamError::Unauthorized(_))
    ));
    let anonymous = client(&format!("127.0.0.1:{}", dist.port), None);
    assert!(matches!(
        anonymous.get_manifest(&full, &tag).await,
        Err(UpstreamError::Unauthorized(_))
    ));

    // A corrupt blob (same length, other bytes) ends its stream with an error, not a clean end.
    let path = dist.blob_path(&image.layer);
    let mut bytes = std::fs::read(&path).expect("blob file");
    bytes[1000] ^= 0xff;
    std::fs::write(&path, &bytes).expect("corrupt blob");
    match read_blob(&upstream, &app, &digest(&image.layer)).await {
        Err(UpstreamError::Invalid(m)) => assert!(m.contains("hash"), "{m}"),
        other => panic!("corrupt blob read as {:?}", other.map(|b| b.len())),
    }
    // A truncated one too.
    std::fs::write(&path, &bytes[..1000]).expect("truncate blob");
    assert!(matches!(
        read_blob(&upstream, &app, &digest(&image.layer)).await,
        Err(UpstreamError::Invalid(_))
    ));

    // Upstream down: Unreachable, told apart from NotFound.
    dist.stop().await;
    assert!(matches!(
        upstream.get_manifest(&app, &tag).await,
        Err(UpstreamError::Unreachable(_))
    ));
    assert!(matches!(
        upstream.ping(None).await,
        Err(UpstreamError::Unreachable(_))
    ));
    dist.restart().await;
    upstream.get_manifest(&app, &tag).await.expect("back up");
}

/// `insecure` speaks TLS without verifying the certificate when the upstream has TLS; an
/// upstream that did not answer at first is not taken for plain HTTP for good.
#[tokio::test]
async fn upstream_client_insecure_speaks_unverified_tls() {
    let port = crate::common::free_port();
    let upstream = client(&format!("127.0.0.1:{port}"), Some(("puller", "tls-pass")));
    assert!(matches!(
        upstream.ping(None).await,
        Err(UpstreamError::Unreachable(_))
    ));
    let dist = Distribution::start_on(port, true, "puller", "tls-pass").await;
    upstream.ping(None).await.expect("ping over unverified TLS");
    // The same registry refuses a verifying client: its certificate is self-signed.
    let verifying = Upstream::new(UpstreamConfig {
        registry: format!("127.0.0.1:{port}").parse().expect("registry"),
        insecure: false,
        credentials: None,
    })
    .expect("client");
    assert!(matches!(
        verifying.ping(None).await,
        Err(UpstreamError::Unreachable(_))
    ));
    let app = repo("library/app");
    let missing = Reference::Tag("1".parse().expect("tag"));
    assert!(matches!(
        upstream.get_manifest(&app, &missing).await,
        Err(UpstreamError::NotFound)
    ));
    drop(dist);
}

#[tokio::test]
async fn upstream_client_uses_the_token_flow_of_a_second_berth() {
    let server = TestServer::start().await;
    server.create_org("library").await;
    let image = push_test_image(&server.client, &server.base, "library/app", "1", 9, 1 << 20).await;
    push_test_image(&server.client, &server.base, "library/app", "1.1", 10, 1000).await;
    let referrer = push_referrer(&server.client, &server.base, "library/app", &image.digest).await;
    server.create_user("mirror").await;
    server.grant("library/app", "mirror", "read").await;
    let password = crate::common::password_of("mirror");
    let host = server.base.strip_prefix("http://").expect("http base");

    let upstream = client(host, Some(("mirror", &password)));
    upstream.ping(None).await.expect("ping");
    let app = repo("library/app");
    let tag = Reference::Tag("1".parse().expect("tag"));
    let head = upstream.head_manifest(&app, &tag).await.expect("head");
    assert_eq!(head.digest, Some(digest(&image.digest)));
    // From here on every request uses the token cached for this repository's pull scope.
    let issued = tokens_issued(&server).await;
    assert!(
        issued >= 2,
        "a token for /v2/ and one for the repository: {issued}"
    );
    let m = upstream.get_manifest(&app, &tag).await.expect("manifest");
    assert_eq!(m.bytes.as_ref(), image.manifest.as_slice());
    let m = upstream
        .get_manifest(&app, &Reference::Digest(digest(&image.digest)))
        .await
        .expect("by digest");
    assert_eq!(m.digest, digest(&image.digest));
    let layer = read_blob(&upstream, &app, &digest(&image.layer))
        .await
        .expect("layer");
    assert_eq!(layer, image.layer_bytes);
    let mut tags: Vec<String> = upstream
        .list_tags_paged(&app, 1)
        .await
        .expect("tags")
        .iter()
        .map(|t| t.to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, ["1", "1.1"]);
    let referrers = upstream
        .referrers(&app, &digest(&image.digest))
        .await
        .expect("referrers");
    assert!(!referrers.from_tag_schema, "berth has the referrers API");
    assert_eq!(referrers.manifests.len(), 1);
    assert_eq!(referrers.manifests[0]["digest"], referrer.as_str());
    assert_eq!(tokens_issued(&server).await, issued, "the token was cached");

    // The token realm refuses a wrong password; a stranger is refused the repository.
    let wrong = client(host, Some(("mirror", "wrong-password")));
    assert!(matches!(
        wrong.get_manifest(&app, &tag).await,
        Err(UpstreamError::Unauthorized(_))
    ));
    assert!(matches!(
        wrong.ping(None).await,
        Err(UpstreamError::Unauthorized(_))
    ));
    let anonymous = client(host, None);
    assert!(matches!(
        anonymous.get_manifest(&app, &tag).await,
        Err(UpstreamError::Unauthorized(_))
    ));
    // A name the client cannot put in a URL never leaves it.
    assert!(upstream.repository("../x").is_err());

    let mut server = server;
    server.shutdown().await;
    assert!(matches!(
        upstream.get_manifest(&app, &tag).await,
        Err(UpstreamError::Unreachable(_))
    ));
}

/// The header blocks of the presigned GETs (`X-Amz-Signature` in the request line) in `raw`.
fn presigned_gets(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut found = Vec::new();
    let mut rest = &text[..];
    while let Some(i) = rest.find("GET /") {
        let request = &rest[i..];
        let end = request.find("\r\n\r\n").unwrap_or(request.len());
        let head = &request[..end];
        if head
            .lines()
            .next()
            .is_some_and(|l| l.contains("X-Amz-Signature="))
        {
            found.push(head.to_string());
        }
        rest = &request[5..];
    }
    found
}

/// A berth on S3 redirects blob downloads to presigned URLs on the object store (another
/// origin); the client follows them without the Authorization header, as seen by a relay in
/// front of the object store. Needs `BERTH_TEST_S3_ENDPOINT` (`scripts/garage.sh`).
#[tokio::test]
async fn upstream_client_follows_blob_redirects_without_credentials() {
    let prefix = format!("upstream-redirect/{}", uuid::Uuid::new_v4().simple());
    let Some(mut s3) = crate::common::s3_under_test(&prefix) else {
        println!("not run: BERTH_TEST_S3_ENDPOINT is not set (bash scripts/garage.sh start)");
        return;
    };
    let endpoint: reqwest::Url = s3
        .endpoint
        .as_deref()
        .expect("endpoint")
        .parse()
        .expect("url");
    let target = endpoint.socket_addrs(|| None).expect("address")[0];
    let relay = RecordingRelay::start(target).await;
    s3.endpoint = Some(format!("http://{}", relay.addr));
    let server = TestServer::start_with(berth::config::Settings {
        storage: berth::config::StorageSettings::S3(s3),
        proxy_storage: false,
        ..berth::config::Settings::default()
    })
    .await;
    server.create_org("library").await;
    let image = push_test_image(&server.client, &server.base, "library/app", "1", 4, 2 << 20).await;
    server.create_user("mirror").await;
    server.grant("library/app", "mirror", "read").await;
    // The redirect is real: berth answers the blob with a 307 to the object store.
    let direct = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let password = crate::common::password_of("mirror");
    let r = direct
        .get(server.url(&format!("/v2/library/app/blobs/{}", image.layer)))
        .basic_auth("mirror", Some(&password))
        .send()
        .await
        .expect("blob");
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with(&format!("http://{}/", relay.addr)),
        "{location}"
    );
    relay.clear();

    let host = server.base.strip_prefix("http://").expect("http base");
    let upstream = client(host, Some(("mirror", &password)));
    let app = repo("library/app");
    let layer = read_blob(&upstream, &app, &digest(&image.layer))
        .await
        .expect("layer");
    assert_eq!(layer, image.layer_bytes);
    let gets = presigned_gets(&relay.sent());
    assert_eq!(gets.len(), 1, "one presigned GET through the relay");
    assert!(
        !gets[0].to_ascii_lowercase().contains("\r\nauthorization:"),
        "credentials followed the redirect: {}",
        gets[0]
    );
}
