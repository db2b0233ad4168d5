//! berth driven by a real OCI client library, `oci-client`: images, OCI 1.1 artifacts, tags and
//! referrers go through the crate's own push and pull code paths.

use crate::common;

use common::*;

use berth::config::Settings;
use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{
    OciDescriptor, OciImageManifest, OciManifest, IMAGE_CONFIG_MEDIA_TYPE,
    IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

const THING_TYPE: &str = "application/vnd.example.thing.v1";
const THING_LAYER: &str = "application/vnd.example.thing.layer.v1+json";
const SIGNATURE_TYPE: &str = "application/vnd.example.signature.v1";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// An in-process berth and an `oci-client` speaking plain HTTP to it.
struct Setup {
    server: TestServer,
    client: Client,
    /// `127.0.0.1:PORT`, the registry part of every reference.
    registry: String,
}

/// The harness's superuser, as `oci-client` credentials.
fn auth() -> RegistryAuth {
    RegistryAuth::Basic(ADMIN_USER.to_string(), ADMIN_PASSWORD.to_string())
}

/// Settings that accept the example artifact types of these tests beside berth's defaults
/// (the default artifact-type policy refuses types it does not know; a configured map adds to
/// the defaults).
fn settings() -> Settings {
    let mut allowed = std::collections::BTreeMap::new();
    for artifact_type in [THING_TYPE, SIGNATURE_TYPE] {
        allowed.insert(artifact_type.to_string(), vec![THING_LAYER.to_string()]);
    }
    let mut settings = Settings::default();
    settings.policy.allowed_artifact_types = Some(allowed);
    settings
}

async fn setup() -> Setup {
    let server = TestServer::start_with(settings()).await;
    let registry = server
        .base
        .strip_prefix("http://")
        .expect("base is http://")
        .to_string();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    // Calls that take no credentials (push_blob, pull_referrers, ...) use the stored ones.
    client.store_auth_if_needed(&registry, &auth()).await;
    Setup {
        server,
        client,
        registry,
    }
}

impl Setup {
    fn tagged(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.registry.clone(), repo.to_string(), tag.to_string())
    }

    fn by_digest(&self, repo: &str, digest: &str) -> Reference {
        Reference::with_digest(self.registry.clone(), repo.to_string(), digest.to_string())
    }

    /// The raw manifest bytes the registry serves for `reference` in `repo`, with their
    /// content type and `Docker-Content-Digest`.
    async fn raw_manifest(&self, repo: &str, reference: &str) -> (Vec<u8>, String, String) {
        let r = self
            .server
            .client
            .get(
                self.server
                    .url(&format!("/v2/{repo}/manifests/{reference}")),
            )
            .header(
                "accept",
                format!("{OCI_IMAGE_MEDIA_TYPE}, {OCI_IMAGE_INDEX_MEDIA_TYPE}"),
            )
            .send()
            .await
            .expect("get manifest");
        assert_eq!(r.status(), 200, "GET manifest {repo}@{reference}");
        let content_type = header_of(&r, "content-type");
        let digest = header_of(&r, "docker-content-digest");
        (
            r.bytes().await.expect("body").to_vec(),
            content_type,
            digest,
        )
    }
}

fn header_of(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("response has no {name} header"))
        .to_str()
        .expect("header is text")
        .to_string()
}

/// A small image: an OCI config and two layers of different OCI layer media types.
fn sample_image() -> (Config, Vec<ImageLayer>) {
    let config = Config::oci_v1(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        None,
    );
    let layers = vec![
        // Bigger than the client's 4 MiB chunk, so it is pushed as several PATCHes.
        ImageLayer::oci_v1_gzip(pattern(1, 5 * 1024 * 1024 + 123), None),
        ImageLayer::oci_v1(pattern(2, 70_001), None),
    ];
    (config, layers)
}

/// Asserts that `got` holds exactly the layers of `want`, byte for byte. The client downloads
/// layers concurrently and returns them in completion order, so they are matched by digest.
fn assert_same_layers(got: &[ImageLayer], want: &[ImageLayer]) {
    assert_eq!(got.len(), want.len(), "layer count");
    for w in want {
        let g = got
            .iter()
            .find(|g| g.sha256_digest() == w.sha256_digest())
            .unwrap_or_else(|| panic!("layer {} missing from the pull", w.sha256_digest()));
        assert_eq!(g.media_type, w.media_type);
        assert_eq!(g.data.len(), w.data.len());
        assert!(g.data == w.data, "layer bytes differ");
    }
}

/// Pushes `sample_image` to `repo:tag`; returns the manifest the client built and its digest.
async fn push_sample_image(s: &Setup, repo: &str, tag: &str) -> (OciImageManifest, String) {
    let (config, layers) = sample_image();
    let manifest = OciImageManifest::build(&layers, &config, None);
    let reference = s.tagged(repo, tag);
    let pushed = s
        .client
        .push(&reference, &layers, config, &auth(), Some(manifest.clone()))
        .await
        .expect("push image");
    let digest = s
        .client
        .fetch_manifest_digest(&reference, &auth())
        .await
        .expect("manifest digest");
    assert!(
        pushed
            .manifest_url
            .ends_with(&format!("/manifests/{digest}")),
        "manifest URL {} should name the digest {digest}",
        pushed.manifest_url
    );
    (manifest, digest)
}

#[tokio::test]
async fn pushes_an_image_and_pulls_it_back_byte_identical() {
    let s = setup().await;
    let (config, layers) = sample_image();
    let (manifest, digest) = push_sample_image(&s, "library/app", "v1").await;

    // The manifest is served exactly as pushed: its digest is the hash of the served bytes and
    // it parses back to what the client built.
    let (raw, content_type, served_digest) = s.raw_manifest("library/app", "v1").await;
    assert_eq!(content_type, OCI_IMAGE_MEDIA_TYPE);
    assert_eq!(served_digest, digest);
    assert_eq!(sha256(&raw), digest);
    let parsed: serde_json::Value = serde_json::from_slice(&raw).expect("manifest JSON");
    assert_eq!(
        parsed,
        serde_json::to_value(&manifest).expect("manifest to JSON")
    );

    let accepted = vec![IMAGE_LAYER_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE];
    for reference in [
        s.tagged("library/app", "v1"),
        s.by_digest("library/app", &digest),
    ] {
        let image = s
            .client
            .pull(&reference, &auth(), accepted.clone())
            .await
            .unwrap_or_else(|e| panic!("pull {reference}: {e}"));
        assert_eq!(image.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(image.config.media_type, IMAGE_CONFIG_MEDIA_TYPE);
        assert_eq!(image.config.data, config.data, "config bytes");
        assert_same_layers(&image.layers, &layers);
        let pulled = image.manifest.expect("pulled manifest");
        assert_eq!(
            serde_json::to_value(&pulled).unwrap(),
            serde_json::to_value(&manifest).unwrap()
        );
    }

    // Streaming a layer through the client verifies its digest on the way.
    let layer = &manifest.layers[0];
    let mut stream = s
        .client
        .pull_blob_stream(&s.tagged("library/app", "v1"), layer)
        .await
        .expect("pull blob stream");
    assert_eq!(stream.content_length, Some(layer.size as u64));
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next().await {
        streamed.extend_from_slice(&chunk.expect("blob chunk"));
    }
    assert!(streamed == layers[0].data, "streamed layer bytes differ");

    // Every blob the manifest names is present, and nothing else is claimed to be.
    let reference = s.tagged("library/app", "v1");
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        assert!(s.client.blob_exists(&reference, &d.digest).await.unwrap());
    }
    let absent = sha256(b"never pushed");
    assert!(!s.client.blob_exists(&reference, &absent).await.unwrap());
}

#[tokio::test]
async fn pushes_a_stream_of_unknown_size_in_chunks() {
    let s = setup().await;
    let reference = s.tagged("streams/blob", "unused");
    let data = pattern(7, 9 * 1024 * 1024 + 5);
    let chunks: Vec<oci_client::errors::Result<bytes::Bytes>> = data
        .chunks(1024 * 1024 + 17)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let pushed = s
        .client
        .push_blob_stream_chunked(&reference, futures::stream::iter(chunks))
        .await
        .expect("chunked stream push");
    assert_eq!(pushed.blob_digest, sha256(&data));
    assert_eq!(pushed.size, data.len() as u64);

    let descriptor = OciDescriptor {
        media_type: IMAGE_LAYER_MEDIA_TYPE.to_string(),
        digest: pushed.blob_digest.clone(),
        size: data.len() as i64,
        ..Default::default()
    };
    let mut out = Vec::new();
    s.client
        .pull_blob(&reference, &descriptor, &mut out)
        .await
        .expect("pull blob");
    assert!(out == data, "pulled bytes differ from the pushed stream");
}

/// An OCI 1.1 artifact manifest: custom `artifactType`, the empty config, one layer.
fn artifact_manifest(
    artifact_type: &str,
    layer: &[u8],
    subject: Option<OciDescriptor>,
) -> OciImageManifest {
    OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        config: OciDescriptor {
            media_type: EMPTY_TYPE.to_string(),
            digest: EMPTY_DIGEST.to_string(),
            size: 2,
            ..Default::default()
        },
        layers: vec![OciDescriptor {
            media_type: THING_LAYER.to_string(),
            digest: sha256(layer),
            size: layer.len() as i64,
            ..Default::default()
        }],
        subject,
        artifact_type: Some(artifact_type.to_string()),
        annotations: Some(
            [(
                "org.opencontainers.image.title".to_string(),
                "thing.json".to_string(),
            )]
            .into(),
        ),
    }
}

#[tokio::test]
async fn pushes_an_artifact_with_the_empty_config_and_pulls_it_back() {
    let s = setup().await;
    assert_eq!(sha256(b"{}"), EMPTY_DIGEST);
    let layer = br#"{"thing":"value","n":42}"#.to_vec();
    let manifest = artifact_manifest(THING_TYPE, &layer, None);
    let reference = s.tagged("artifacts/thing", "1.0");
    s.client
        .push(
            &reference,
            &[ImageLayer::new(
                layer.clone(),
                THING_LAYER.to_string(),
                None,
            )],
            Config::new(b"{}".to_vec(), EMPTY_TYPE.to_string(), None),
            &auth(),
            Some(manifest.clone()),
        )
        .await
        .expect("push artifact");

    let (pulled, digest) = s
        .client
        .pull_manifest(&reference, &auth())
        .await
        .expect("pull manifest");
    let OciManifest::Image(pulled) = pulled else {
        panic!("an artifact manifest came back as an index");
    };
    assert_eq!(pulled.artifact_type.as_deref(), Some(THING_TYPE));
    assert_eq!(pulled.config.media_type, EMPTY_TYPE);
    assert_eq!(
        serde_json::to_value(&pulled).unwrap(),
        serde_json::to_value(&manifest).unwrap()
    );
    let (raw, content_type, served_digest) = s.raw_manifest("artifacts/thing", "1.0").await;
    assert_eq!(content_type, OCI_IMAGE_MEDIA_TYPE);
    assert_eq!(served_digest, digest);
    assert_eq!(sha256(&raw), digest);

    let artifact = s
        .client
        .pull(&reference, &auth(), vec![THING_LAYER])
        .await
        .expect("pull artifact");
    assert_eq!(artifact.config.media_type, EMPTY_TYPE);
    assert_eq!(artifact.config.data.as_ref(), b"{}");
    assert_eq!(artifact.layers.len(), 1);
    assert_eq!(artifact.layers[0].media_type, THING_LAYER);
    assert_eq!(artifact.layers[0].data.as_ref(), layer.as_slice());

    // A client that names only the layers it accepts gets a clear refusal, not other bytes.
    let refused = s
        .client
        .pull(&reference, &auth(), vec![IMAGE_LAYER_MEDIA_TYPE])
        .await;
    assert!(refused.is_err(), "pull with a non-matching layer type");
}

#[tokio::test]
async fn an_artifact_may_reference_the_empty_config_without_uploading_it() {
    let s = setup().await;
    let layer = b"payload without an uploaded config".to_vec();
    let reference = s.tagged("artifacts/bare", "latest");
    s.client
        .push_blob(&reference, layer.clone(), &sha256(&layer))
        .await
        .expect("push layer");
    let manifest = artifact_manifest(THING_TYPE, &layer, None);
    s.client
        .push_manifest(&reference, &manifest.clone().into())
        .await
        .expect("push manifest whose empty config was never uploaded");
    let artifact = s
        .client
        .pull(&reference, &auth(), vec![THING_LAYER])
        .await
        .expect("pull artifact");
    assert_eq!(artifact.config.data.as_ref(), b"{}");
    assert_eq!(artifact.layers[0].data.as_ref(), layer.as_slice());
}

#[tokio::test]
async fn lists_tags_in_order_and_by_page() {
    let s = setup().await;
    let (manifest, digest) = push_sample_image(&s, "team/service", "v1").await;
    let mut want = vec!["v1".to_string()];
    for tag in ["latest", "v2", "1.0.0", "release-2024", "v1.1"] {
        s.client
            .push_manifest(&s.tagged("team/service", tag), &manifest.clone().into())
            .await
            .unwrap_or_else(|e| panic!("tag {tag}: {e}"));
        want.push(tag.to_string());
    }
    want.sort();

    let all = s
        .client
        .list_tags(&s.tagged("team/service", "v1"), &auth(), None, None)
        .await
        .expect("list tags");
    assert_eq!(all.name, "team/service");
    assert_eq!(all.tags, want);

    // Pages of two, each continuing after the previous page's last tag.
    let mut paged = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = s
            .client
            .list_tags(
                &s.tagged("team/service", "v1"),
                &auth(),
                Some(2),
                last.as_deref(),
            )
            .await
            .expect("list a page of tags");
        assert!(page.tags.len() <= 2, "page too long: {:?}", page.tags);
        if page.tags.is_empty() {
            break;
        }
        last = page.tags.last().cloned();
        paged.extend(page.tags);
    }
    assert_eq!(paged, want);

    // Every tag resolves to the same manifest.
    for tag in &want {
        let d = s
            .client
            .fetch_manifest_digest(&s.tagged("team/service", tag), &auth())
            .await
            .expect("digest of tag");
        assert_eq!(&d, &digest, "tag {tag}");
    }

    // A repository that was never pushed has no tag list.
    let missing = s
        .client
        .list_tags(&s.tagged("team/nothing", "v1"), &auth(), None, None)
        .await;
    assert!(missing.is_err(), "tags of an unknown repository");
}

#[tokio::test]
async fn finds_artifacts_through_the_referrers_api() {
    let s = setup().await;
    let repo = "signed/app";
    let (_, image_digest) = push_sample_image(&s, repo, "v1").await;
    let (image_raw, _, _) = s.raw_manifest(repo, "v1").await;
    let subject = OciDescriptor {
        media_type: OCI_IMAGE_MEDIA_TYPE.to_string(),
        digest: image_digest.clone(),
        size: image_raw.len() as i64,
        ..Default::default()
    };

    // Two referrers of different types, pushed by digest (no tag), as signing tools do.
    let mut referrers = Vec::new();
    for (artifact_type, payload) in [
        (THING_TYPE, br#"{"sbom":true}"#.as_slice()),
        (SIGNATURE_TYPE, b"signature bytes".as_slice()),
    ] {
        let manifest = artifact_manifest(artifact_type, payload, Some(subject.clone()));
        let reference = s.tagged(repo, "unused");
        s.client
            .push_blob(&reference, payload.to_vec(), &sha256(payload))
            .await
            .expect("push referrer layer");
        let mut body = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut body);
        serde::Serialize::serialize(&manifest, &mut ser).expect("serialize");
        let digest = sha256(&body);
        let r = s
            .server
            .client
            .put(s.server.url(&format!("/v2/{repo}/manifests/{digest}")))
            .header("content-type", OCI_IMAGE_MEDIA_TYPE)
            .body(body.clone())
            .send()
            .await
            .expect("put referrer");
        assert_eq!(r.status(), 201);
        assert_eq!(header_of(&r, "oci-subject"), image_digest);
        assert_eq!(header_of(&r, "docker-content-digest"), digest);
        referrers.push((artifact_type, digest, body.len() as i64));
    }

    // Through the client.
    let index = s
        .client
        .pull_referrers(&s.by_digest(repo, &image_digest), None)
        .await
        .expect("pull referrers");
    assert_eq!(index.schema_version, 2);
    assert_eq!(
        index.media_type.as_deref(),
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE)
    );
    let mut got: Vec<(String, String, i64, String)> = index
        .manifests
        .iter()
        .map(|m| {
            (
                m.artifact_type.clone().expect("referrer has artifactType"),
                m.digest.clone(),
                m.size,
                m.media_type.clone(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, i64, String)> = referrers
        .iter()
        .map(|(t, d, n)| {
            (
                t.to_string(),
                d.clone(),
                *n,
                OCI_IMAGE_MEDIA_TYPE.to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    for m in &index.manifests {
        let title = m
            .annotations
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.title"));
        assert_eq!(title.map(String::as_str), Some("thing.json"));
    }

    // Filtered by artifact type.
    let only = s
        .client
        .pull_referrers(&s.by_digest(repo, &image_digest), Some(SIGNATURE_TYPE))
        .await
        .expect("pull filtered referrers");
    assert_eq!(only.manifests.len(), 1);
    assert_eq!(only.manifests[0].digest, referrers[1].1);

    // And on the wire: the filter is announced, and an unrelated digest has no referrers.
    let r = s
        .server
        .client
        .get(s.server.url(&format!(
            "/v2/{repo}/referrers/{image_digest}?artifactType={SIGNATURE_TYPE}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header_of(&r, "content-type"), OCI_IMAGE_INDEX_MEDIA_TYPE);
    assert_eq!(header_of(&r, "oci-filters-applied"), "artifactType");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["manifests"].as_array().map(Vec::len), Some(1));

    let nobody = sha256(b"no manifest has this digest");
    let none = s
        .client
        .pull_referrers(&s.by_digest(repo, &nobody), None)
        .await
        .expect("referrers of an unknown digest");
    assert!(none.manifests.is_empty());

    // The referrers are ordinary manifests too.
    for (_, digest, _) in &referrers {
        let (manifest, _) = s
            .client
            .pull_manifest(&s.by_digest(repo, digest), &auth())
            .await
            .expect("pull referrer");
        let OciManifest::Image(m) = manifest else {
            panic!("referrer is not an image manifest");
        };
        assert_eq!(m.subject.map(|d| d.digest), Some(image_digest.clone()));
    }
}

/// Blobs mounted from another repository serve an image pushed and pulled by the client. The
/// mount itself goes through the harness's client: `oci-client` asks for a token scoped to the
/// target repository only, so berth rightly answers its mount with an upload session (202),
/// which the crate's `mount_blob` reports as an error.
#[tokio::test]
async fn an_image_over_mounted_blobs_pulls_back_intact() {
    let s = setup().await;
    let (manifest, _) = push_sample_image(&s, "origin/app", "v1").await;
    let target = s.tagged("copy/app", "v1");
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        assert!(!s.client.blob_exists(&target, &d.digest).await.unwrap());
        let r = s
            .server
            .client
            .post(s.server.url(&format!(
                "/v2/copy/app/blobs/uploads/?mount={}&from=origin/app",
                d.digest
            )))
            .send()
            .await
            .expect("mount");
        assert_eq!(r.status(), 201, "mount {}", d.digest);
        assert_eq!(header_of(&r, "docker-content-digest"), d.digest);
        assert!(s.client.blob_exists(&target, &d.digest).await.unwrap());
    }
    s.client
        .push_manifest(&target, &manifest.clone().into())
        .await
        .expect("push manifest over mounted blobs");
    let (config, layers) = sample_image();
    let image = s
        .client
        .pull(
            &target,
            &auth(),
            vec![IMAGE_LAYER_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE],
        )
        .await
        .expect("pull copy");
    assert_eq!(image.config.data, config.data);
    assert_same_layers(&image.layers, &layers);
}
