//! The upstream registry client (`berth::upstream`) against real registries started here: CNCF
//! distribution with htpasswd (Basic) and a second berth (the Docker token flow).

use berth::upstream::{Credentials, Upstream, UpstreamConfig, UpstreamError};
use futures::StreamExt;
use oci::{Digest, Reference, RepoName};
use serde_json::json;

use crate::common::{push_index, push_referrer, push_test_image, Distribution, TestServer};

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
