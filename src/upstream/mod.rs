//! A client for another OCI registry (an *upstream*), used by the proxy cache and by
//! repository mirroring.
//!
//! [`Upstream`] speaks the distribution API to one configured registry: manifests (HEAD and
//! GET, every manifest media type berth knows, digest checked against the bytes), blobs as a
//! stream whose digest and length are checked as it ends, tag lists (following `Link`), and
//! referrers (the API, or the `sha256-<hex>` tag schema when the upstream lacks it).
//!
//! Authentication follows what the upstream asks for on a 401: `Basic` (the configured
//! credentials), or the Docker token flow (`Bearer realm=..,service=..,scope=..`: a token is
//! fetched from the realm the upstream names, with the credentials as Basic when configured,
//! and cached per scope until shortly before it expires).
//!
//! Not SSRF-guarded: an upstream is configured by an organization admin or a superuser, the same
//! people who configure the registry itself, and an internal registry (a lab's, an air gap's)
//! is a legitimate upstream. So the rules of [`crate::notify::target`] (which keep repository
//! admins from making berth reach internal addresses) are deliberately not applied here.
//! What is guarded: names and references are validated before they go into a URL; credentials
//! never follow a redirect or a `Link` to another origin; a realm over plain HTTP gets the
//! credentials only when the upstream itself is `insecure`.

pub mod challenge;
pub mod proxy_cache;
pub mod registry;

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use oci::{Digest, Reference, RepoName, Tag};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

pub use registry::{RegistryError, UpstreamRegistry};

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request other than a blob download may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a blob download may wait for its next bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest manifest (or referrers index) read from an upstream.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The largest token response read.
const MAX_TOKEN_BYTES: usize = 64 << 10;
/// The largest tag list page read.
const MAX_TAG_PAGE_BYTES: usize = 8 << 20;
/// Most tags listed, over all pages.
const MAX_TAGS: usize = 100_000;
/// Tags asked for per page (the most distribution 3 and ECR allow).
pub const TAG_PAGE: usize = 1000;
/// Most redirects followed for one blob.
const MAX_REDIRECTS: usize = 5;
/// A cached token is renewed this long before it expires.
const TOKEN_RENEWAL: Duration = Duration::from_secs(10);
/// A token's life when the realm does not say (the token spec's default).
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);

/// Every manifest media type berth knows, sent as `Accept`.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// What went wrong talking to an upstream. The proxy tells "upstream down"
/// ([`UpstreamError::Unreachable`]) from "not there" ([`UpstreamError::NotFound`]).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No answer: DNS, connection, TLS or timeout.
    #[error("upstream registry unreachable: {0}")]
    Unreachable(String),
    /// The upstream (or its token realm) refused the credentials, or they lack the right.
    #[error("upstream registry refused the credentials ({0})")]
    Unauthorized(String),
    /// The manifest, blob or repository does not exist upstream.
    #[error("not found in the upstream registry")]
    NotFound,
    /// Any other unexpected status.
    #[error("upstream registry answered {status}")]
    Status { status: u16 },
    /// The upstream answered, but with something wrong: a digest that does not match, a body
    /// too large, malformed JSON, a truncated blob.
    #[error("invalid answer from the upstream registry: {0}")]
    Invalid(String),
    /// A repository path or configuration value that may not go into a URL.
    #[error(transparent)]
    Config(#[from] RegistryError),
}

impl UpstreamError {
    fn transport(e: reqwest::Error) -> UpstreamError {
        UpstreamError::Unreachable(describe(&e))
    }
}

/// Credentials for the upstream; `Debug` does not show the password.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// How an upstream is reached.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub registry: UpstreamRegistry,
    /// Plain HTTP (Quay's meaning), or HTTPS without certificate verification when the
    /// upstream speaks TLS; see [`Upstream::new`].
    pub insecure: bool,
    pub credentials: Option<Credentials>,
}

/// HTTP proxies to reach an upstream through (Quay's `proxy` object of a mirror's
/// `external_registry_config`): one for `http://` and one for `https://` URLs, and the hosts
/// (comma-separated, as `NO_PROXY`) reached directly.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

/// A manifest read from the upstream, its digest checked.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// What a HEAD of a manifest says.
#[derive(Debug, Clone)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`, when the upstream sent one (a HEAD by tag may omit it).
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

/// The referrers of a manifest as an OCI image index.
#[derive(Debug, Clone)]
pub struct Referrers {
    /// The index's `manifests` descriptors, as the upstream sent them.
    pub manifests: Vec<serde_json::Value>,
    /// True when they came from the `sha256-<hex>` tag because the upstream has no referrers API.
    pub from_tag_schema: bool,
}

/// A cached bearer token.
struct Token {
    value: String,
    renew_at: Instant,
}

/// How a request is authorized, learned from the upstream's challenges.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scheme {
    /// No challenge seen yet, or none needed.
    Anonymous,
    Basic,
    /// The token flow, at this realm and service.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A client for one upstream registry. Cheap to share (`Arc` inside); tokens are cached per
/// scope for the client's lifetime.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    config: UpstreamConfig,
    client: reqwest::Client,
    /// `https://authority` or `http://authority`, decided on first use when `insecure`.
    base: tokio::sync::OnceCell<Url>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<String, Token>>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("registry", &self.inner.config.registry)
            .field("insecure", &self.inner.config.insecure)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A client for `config`. Follows no redirect by itself (blob downloads follow them by
    /// hand, without the Authorization header across origins) and uses no proxy. TLS is
    /// verified against the system's roots; when `insecure`, the first request tries HTTPS
    /// without verification and falls back to plain HTTP if the upstream does not speak TLS,
    /// and the choice holds for the client's life.
    pub fn new(config: UpstreamConfig) -> anyhow::Result<Upstream> {
        Upstream::with_proxy(config, None)
    }

    /// As [`Upstream::new`], through the HTTP proxies of `proxy` (Quay's mirror
    /// `external_registry_config.proxy`) when given.
    pub fn with_proxy(
        config: UpstreamConfig,
        proxy: Option<&ProxyConfig>,
    ) -> anyhow::Result<Upstream> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let tls = if config.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(proxy) = proxy {
            let exceptions = proxy
                .no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string);
            for (url, https) in [(&proxy.http_proxy, false), (&proxy.https_proxy, true)] {
                let Some(url) = url.as_deref().filter(|u| !u.is_empty()) else {
                    continue;
                };
                let p = if https {
                    reqwest::Proxy::https(url)?
                } else {
                    reqwest::Proxy::http(url)?
                };
                builder = builder.proxy(p.no_proxy(exceptions.clone()));
            }
        }
        let client = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                config,
                client,
                base: tokio::sync::OnceCell::new(),
                scheme: Mutex::new(Scheme::Anonymous),
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The registry this client talks to.
    pub fn registry(&self) -> &UpstreamRegistry {
        &self.inner.config.registry
    }

    /// The upstream repository for a path inside the proxy organization (`namespace/path`).
    pub fn repository(&self, path: &str) -> Result<RepoName, UpstreamError> {
        Ok(self.inner.config.registry.repository(path)?)
    }

    /// Checks that the upstream answers and accepts the credentials: `GET /v2/`, through the
    /// challenge it answers with (a token fetch for the token flow). With `repository`, the
    /// token is asked for that repository's pull scope. Anonymous access that the upstream
    /// challenges but grants (a token without credentials) passes.
    pub async fn ping(&self, repository: Option<&RepoName>) -> Result<(), UpstreamError> {
        let scope = repository.map(pull_scope);
        let response = self
            .send(Method::GET, "/v2/", scope.as_deref(), None, true)
            .await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(UpstreamError::Unauthorized(
                format!("/v2/ answered {}", response.status().as_u16()),
            )),
            s => Err(UpstreamError::Status { status: s.as_u16() }),
        }
    }

    /// HEAD of a manifest: whether it exists, and its digest when the upstream says.
    pub async fn head_manifest(
        &self,
        repository: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestHead, UpstreamError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self
            .send_ok(Method::HEAD, &path, repository, Some(MANIFEST_ACCEPT))
            .await?;
        let headers = response.headers();
        let digest = match header(headers, "docker-content-digest") {
            None => None,
            Some(text) => Some(text.parse::<Digest>().map_err(|_| {
                UpstreamError::Invalid("Docker-Content-Digest is not a digest".into())
            })?),
        };
        if let (Reference::Digest(asked), Some(said)) = (reference, &digest) {
            if asked != said {
                return Err(UpstreamError::Invalid(format!(
                    "asked for {asked}, the upstream says {said}"
                )));
            }
        }
        Ok(ManifestHead {
            digest,
            media_type: header(headers, "content-type")
                .map(|t| oci::media_type::essence(t).to_string()),
            // reqwest's content_length() is the body's (none for a HEAD), so read the header.
            size: header(headers, "content-length").and_then(|l| l.parse().ok()),
        })
    }

    /// GET of a manifest, at most [`MAX_MANIFEST_BYTES`]. Its digest is computed from the
    /// bytes (with the algorithm asked for, or the one of `Docker-Content-Digest`, else sha256)
    /// and must equal the one asked for, and the upstream's `Docker-Content-Digest` when sent.
    pub async fn get_manifest(
        &self,
        repository: &RepoName,
        reference: &Reference,
    ) -> Result<Manifest, UpstreamError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self
            .send_ok(Method::GET, &path, repository, Some(MANIFEST_ACCEPT))
            .await?;
        let said = match header(response.headers(), "docker-content-digest") {
            None => None,
            Some(text) => Some(text.parse::<Digest>().map_err(|_| {
                UpstreamError::Invalid("Docker-Content-Digest is not a digest".into())
            })?),
        };
        let media_type = header(response.headers(), "content-type")
            .map(|t| oci::media_type::essence(t).to_string());
        let bytes = read_limited(response, MAX_MANIFEST_BYTES).await?;
        let algorithm = match (reference, &said) {
            (Reference::Digest(d), _) => d.algorithm(),
            (Reference::Tag(_), Some(d)) => d.algorithm(),
            (Reference::Tag(_), None) => oci::digest::Algorithm::Sha256,
        };
        let digest = algorithm.digest_of(&bytes);
        if let Reference::Digest(asked) = reference {
            if *asked != digest {
                return Err(UpstreamError::Invalid(format!(
                    "manifest bytes hash to {digest}, not the {asked} asked for"
                )));
            }
        }
        if let Some(said) = said {
            if said != digest {
                return Err(UpstreamError::Invalid(format!(
                    "manifest bytes hash to {digest}, the upstream says {said}"
                )));
            }
        }
        // The media type the manifest declares wins over a generic Content-Type.
        let declared = serde_json::from_slice::<MediaTypeField>(&bytes)
            .ok()
            .and_then(|m| m.media_type);
        let media_type = declared
            .or(media_type)
            .ok_or_else(|| UpstreamError::Invalid("manifest without a media type".into()))?;
        Ok(Manifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// GET of a blob as a stream: nothing is buffered beyond one chunk. Redirects (to a CDN or
    /// object store) are followed, without the Authorization header when they leave the
    /// upstream's origin. The stream checks length and digest as it ends: a truncated or
    /// corrupt body ends with an [`UpstreamError::Invalid`] item instead of a clean end.
    pub async fn get_blob(
        &self,
        repository: &RepoName,
        digest: &Digest,
    ) -> Result<BlobStream, UpstreamError> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let scope = pull_scope(repository);
        let mut response = self
            .send(Method::GET, &path, Some(&scope), None, false)
            .await?;
        let mut url = response.url().clone();
        let origin = url.origin();
        let mut redirects = 0;
        while response.status().is_redirection() {
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(UpstreamError::Invalid("too many redirects".into()));
            }
            let location = header(response.headers(), LOCATION.as_str())
                .ok_or_else(|| UpstreamError::Invalid("redirect without Location".into()))?;
            let next = url
                .join(location)
                .map_err(|_| UpstreamError::Invalid("redirect to an invalid URL".into()))?;
            match next.scheme() {
                "https" => {}
                "http" if self.inner.config.insecure || url.scheme() == "http" => {}
                _ => {
                    return Err(UpstreamError::Invalid(
                        "redirect to an unsupported scheme".into(),
                    ))
                }
            }
            let mut request = self.inner.client.get(next.clone());
            if next.origin() == origin {
                if let Some(auth) = self.authorization(Some(&scope)) {
                    request = request.header(AUTHORIZATION, auth);
                }
            }
            response = request.send().await.map_err(UpstreamError::transport)?;
            url = next;
        }
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status, &path));
        }
        let size = response.content_length();
        Ok(BlobStream::new(response, digest.clone(), size))
    }

    /// HEAD of a blob: its size when the upstream says. A redirect (to a CDN or object store)
    /// means the upstream has it.
    pub async fn head_blob(
        &self,
        repository: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, UpstreamError> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let scope = pull_scope(repository);
        let response = self
            .send(Method::HEAD, &path, Some(&scope), None, true)
            .await?;
        let status = response.status();
        if status.is_redirection() {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(status_error(status, &path));
        }
        Ok(header(response.headers(), "content-length").and_then(|l| l.parse().ok()))
    }

    /// Every tag of `repository`, in pages of [`TAG_PAGE`]; see [`Upstream::list_tags_paged`].
    pub async fn list_tags(&self, repository: &RepoName) -> Result<Vec<Tag>, UpstreamError> {
        self.list_tags_paged(repository, TAG_PAGE).await
    }

    /// Every tag of `repository`, asking for `page` tags at a time (`n`) and following
    /// `Link: <...>; rel="next"` pages on the upstream's origin, at most [`MAX_TAGS`] in all.
    /// Tags that are not valid tags are skipped.
    pub async fn list_tags_paged(
        &self,
        repository: &RepoName,
        page: usize,
    ) -> Result<Vec<Tag>, UpstreamError> {
        let mut path = format!("/v2/{repository}/tags/list?n={}", page.max(1));
        let mut tags = Vec::new();
        let mut seen = 0;
        loop {
            let response = self.send_ok(Method::GET, &path, repository, None).await?;
            let next = header(response.headers(), "link").and_then(next_link);
            let body = read_limited(response, MAX_TAG_PAGE_BYTES).await?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| UpstreamError::Invalid(format!("tag list: {e}")))?;
            let listed = page.tags.unwrap_or_default();
            if listed.is_empty() && next.is_some() {
                // Every page must make progress, so the walk ends within MAX_TAGS pages.
                return Err(UpstreamError::Invalid(
                    "empty tag page with a next link".into(),
                ));
            }
            seen += listed.len();
            tags.extend(listed.iter().filter_map(|t| t.parse::<Tag>().ok()));
            if seen > MAX_TAGS {
                return Err(UpstreamError::Invalid(format!("more than {MAX_TAGS} tags")));
            }
            match next {
                None => return Ok(tags),
                Some(link) => {
                    let base = self.base().await?;
                    let url = base
                        .join(&link)
                        .map_err(|_| UpstreamError::Invalid("invalid Link".into()))?;
                    if url.origin() != base.origin()
                        || !url
                            .path()
                            .starts_with(&format!("/v2/{repository}/tags/list"))
                    {
                        return Err(UpstreamError::Invalid(
                            "Link points outside the tag list".into(),
                        ));
                    }
                    path = match url.query() {
                        Some(q) => format!("{}?{q}", url.path()),
                        None => url.path().to_string(),
                    };
                }
            }
        }
    }

    /// The referrers of `digest`: the referrers API, or, when the upstream answers it with 404
    /// (distribution 2.x has none), the OCI tag schema `sha256-<hex>`. No referrers at all is an
    /// empty list.
    pub async fn referrers(
        &self,
        repository: &RepoName,
        digest: &Digest,
    ) -> Result<Referrers, UpstreamError> {
        let path = format!("/v2/{repository}/referrers/{digest}");
        let scope = pull_scope(repository);
        let response = self
            .send(
                Method::GET,
                &path,
                Some(&scope),
                Some("application/vnd.oci.image.index.v1+json"),
                true,
            )
            .await?;
        let status = response.status();
        if status.is_success() {
            let body = read_limited(response, MAX_MANIFEST_BYTES).await?;
            return Ok(Referrers {
                manifests: index_manifests(&body)?,
                from_tag_schema: false,
            });
        }
        if status != StatusCode::NOT_FOUND {
            return Err(status_error(status, &path));
        }
        let tag: Tag = format!("{}-{}", digest.algorithm(), digest.hex())
            .parse()
            .map_err(|_| UpstreamError::Invalid("digest makes no tag".into()))?;
        match self.get_manifest(repository, &Reference::Tag(tag)).await {
            Ok(m) => Ok(Referrers {
                manifests: index_manifests(&m.bytes)?,
                from_tag_schema: true,
            }),
            Err(UpstreamError::NotFound) => Ok(Referrers {
                manifests: Vec::new(),
                from_tag_schema: true,
            }),
            Err(e) => Err(e),
        }
    }

    /// Sends a request that must succeed (2xx), with `repository`'s pull scope.
    async fn send_ok(
        &self,
        method: Method,
        path: &str,
        repository: &RepoName,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let scope = pull_scope(repository);
        let response = self.send(method, path, Some(&scope), accept, true).await?;
        let status = response.status();
        if status.is_success() {
            Ok(response)
        } else {
            Err(status_error(status, path))
        }
    }

    /// Sends `method path` with what authorization is known for `scope`; on a 401, learns the
    /// challenge, authorizes (fetching a token for the token flow) and sends once more.
    /// `bounded` puts [`REQUEST_TIMEOUT`] on the whole exchange (not for blob bodies).
    async fn send(
        &self,
        method: Method,
        path: &str,
        scope: Option<&str>,
        accept: Option<&str>,
        bounded: bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = self
            .base()
            .await?
            .join(path)
            .map_err(|_| UpstreamError::Invalid("invalid request path".into()))?;
        let mut retried = false;
        loop {
            let mut request = self.inner.client.request(method.clone(), url.clone());
            if bounded {
                request = request.timeout(REQUEST_TIMEOUT);
            }
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(auth) = self.authorization(scope) {
                request = request.header(AUTHORIZATION, auth);
            }
            let response = request.send().await.map_err(UpstreamError::transport)?;
            if response.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(response);
            }
            retried = true;
            let challenges = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(challenge::parse)
                .collect::<Vec<_>>();
            if !self.authorize(&challenges, scope).await? {
                return Ok(response);
            }
        }
    }

    /// Learns from `challenges` how to authorize and prepares it (a token for `scope`);
    /// false when nothing can be done (no supported challenge, or Basic without credentials).
    async fn authorize(
        &self,
        challenges: &[challenge::Challenge],
        scope: Option<&str>,
    ) -> Result<bool, UpstreamError> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer
                .param("realm")
                .ok_or_else(|| UpstreamError::Invalid("Bearer challenge without realm".into()))?
                .to_string();
            let service = bearer.param("service").map(str::to_string);
            // The scope asked for wins; else the one the challenge names (for `/v2/`, none).
            let scope = scope.or(bearer.param("scope"));
            *self.inner.scheme.lock().expect("scheme lock") = Scheme::Bearer {
                realm: realm.clone(),
                service: service.clone(),
            };
            self.fetch_token(&realm, service.as_deref(), scope).await?;
            return Ok(true);
        }
        if challenges.iter().any(|c| c.scheme == "basic") && self.inner.config.credentials.is_some()
        {
            let mut scheme = self.inner.scheme.lock().expect("scheme lock");
            if *scheme == Scheme::Basic {
                // The credentials were sent and refused.
                return Ok(false);
            }
            *scheme = Scheme::Basic;
            return Ok(true);
        }
        Ok(false)
    }

    /// The Authorization header for `scope`, from what the upstream asked for so far.
    fn authorization(&self, scope: Option<&str>) -> Option<String> {
        let scheme = self.inner.scheme.lock().expect("scheme lock").clone();
        match scheme {
            Scheme::Anonymous => None,
            Scheme::Basic => self
                .inner
                .config
                .credentials
                .as_ref()
                .map(Credentials::basic),
            Scheme::Bearer { .. } => {
                let tokens = self.inner.tokens.lock().expect("token lock");
                let token = tokens.get(scope.unwrap_or(""))?;
                (token.renew_at > Instant::now()).then(|| format!("Bearer {}", token.value))
            }
        }
    }

    /// Fetches a token for `scope` from `realm` (with the credentials as Basic when configured)
    /// and caches it until [`TOKEN_RENEWAL`] before it expires.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let mut url = Url::parse(realm)
            .map_err(|_| UpstreamError::Invalid("the token realm is not a URL".into()))?;
        let insecure = self.inner.config.insecure;
        match url.scheme() {
            "https" => {}
            "http" if insecure => {}
            _ => {
                return Err(UpstreamError::Invalid(
                    "the token realm must be https (or http for an insecure upstream)".into(),
                ))
            }
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            if let Some(scope) = scope {
                query.append_pair("scope", scope);
            }
        }
        let mut request = self.inner.client.get(url).timeout(REQUEST_TIMEOUT);
        if let Some(credentials) = &self.inner.config.credentials {
            request = request.header(AUTHORIZATION, credentials.basic());
        }
        let response = request.send().await.map_err(UpstreamError::transport)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(UpstreamError::Unauthorized(format!(
                "the token realm answered {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(UpstreamError::Status {
                status: status.as_u16(),
            });
        }
        let body = read_limited(response, MAX_TOKEN_BYTES).await?;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| UpstreamError::Invalid("the token realm's answer is not JSON".into()))?;
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty() && HeaderValue::from_str(&format!("Bearer {t}")).is_ok())
            .ok_or_else(|| UpstreamError::Invalid("the token realm sent no usable token".into()))?;
        let life = answer
            .expires_in
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TOKEN_LIFE, |s| Duration::from_secs(s.min(86_400)));
        let renew_at = Instant::now() + life.saturating_sub(TOKEN_RENEWAL);
        let mut tokens = self.inner.tokens.lock().expect("token lock");
        tokens.retain(|_, t| t.renew_at > Instant::now());
        tokens.insert(scope.unwrap_or("").to_string(), Token { value, renew_at });
        Ok(())
    }

    /// The base URL, deciding the scheme on first use when `insecure`.
    async fn base(&self) -> Result<&Url, UpstreamError> {
        self.inner
            .base
            .get_or_try_init(|| async {
                let authority = self.inner.config.registry.authority();
                let https = Url::parse(&format!("https://{authority}/"))
                    .map_err(|_| UpstreamError::Invalid("invalid upstream address".into()))?;
                if !self.inner.config.insecure {
                    return Ok(https);
                }
                let http = Url::parse(&format!("http://{authority}/"))
                    .map_err(|_| UpstreamError::Invalid("invalid upstream address".into()))?;
                let probe = |url: &Url| {
                    self.inner
                        .client
                        .get(url.join("v2/").expect("static path"))
                        .timeout(REQUEST_TIMEOUT)
                        .send()
                };
                match probe(&https).await {
                    Ok(_) => Ok(https),
                    Err(e) if e.is_timeout() => Err(UpstreamError::transport(e)),
                    // No TLS there: plain HTTP, if something answers it. An upstream that
                    // answers neither is down, and the choice is made again next time.
                    Err(_) => match probe(&http).await {
                        Ok(_) => Ok(http),
                        Err(e) => Err(UpstreamError::transport(e)),
                    },
                }
            })
            .await
    }
}

/// A blob body from the upstream, checked as it ends.
pub struct BlobStream {
    /// `Content-Length`, when the upstream sent it.
    pub size: Option<u64>,
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>,
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    fn new(response: reqwest::Response, expected: Digest, size: Option<u64>) -> BlobStream {
        struct State {
            response: reqwest::Response,
            hasher: Option<oci::digest::Hasher>,
            expected: Digest,
            size: Option<u64>,
            read: u64,
        }
        let state = State {
            response,
            hasher: Some(expected.algorithm().hasher()),
            expected,
            size,
            read: 0,
        };
        let inner = futures::stream::unfold(state, |mut s| async move {
            let hasher = s.hasher.as_mut()?;
            match s.response.chunk().await {
                Ok(Some(chunk)) => {
                    hasher.update(&chunk);
                    s.read += chunk.len() as u64;
                    if s.size.is_some_and(|size| s.read > size) {
                        s.hasher = None;
                        let e = UpstreamError::Invalid("blob longer than announced".into());
                        return Some((Err(e), s));
                    }
                    Some((Ok(chunk), s))
                }
                Ok(None) => {
                    let hasher = s.hasher.take()?;
                    if let Some(size) = s.size.filter(|size| *size != s.read) {
                        let e = UpstreamError::Invalid(format!(
                            "blob truncated: {} of {size} bytes",
                            s.read
                        ));
                        return Some((Err(e), s));
                    }
                    let got = hasher.finish();
                    if got != s.expected {
                        let e = UpstreamError::Invalid(format!(
                            "blob bytes hash to {got}, not {}",
                            s.expected
                        ));
                        return Some((Err(e), s));
                    }
                    None
                }
                Err(e) => {
                    s.hasher = None;
                    Some((Err(UpstreamError::transport(e)), s))
                }
            }
        });
        BlobStream {
            size,
            inner: Box::pin(inner),
        }
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct MediaTypeField {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
}

#[derive(Deserialize)]
struct Index {
    manifests: Option<Vec<serde_json::Value>>,
}

fn index_manifests(body: &[u8]) -> Result<Vec<serde_json::Value>, UpstreamError> {
    let index: Index = serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Invalid(format!("referrers index: {e}")))?;
    Ok(index.manifests.unwrap_or_default())
}

/// `repository:<name>:pull`.
fn pull_scope(repository: &RepoName) -> String {
    format!("repository:{repository}:pull")
}

/// The error for a non-success status.
fn status_error(status: StatusCode, path: &str) -> UpstreamError {
    match status {
        StatusCode::NOT_FOUND => UpstreamError::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            UpstreamError::Unauthorized(format!("{path} answered {}", status.as_u16()))
        }
        s => UpstreamError::Status { status: s.as_u16() },
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The target of `rel="next"` in a `Link` header value.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, UpstreamError> {
    if response.content_length().is_some_and(|l| l > limit as u64) {
        return Err(UpstreamError::Invalid(format!(
            "answer larger than {limit} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(UpstreamError::transport)? {
        if body.len() + chunk.len() > limit {
            return Err(UpstreamError::Invalid(format!(
                "answer larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// What a one-line error says, through its sources.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The certificate verifier of an `insecure` upstream: any certificate is accepted, but the
/// handshake signatures are still checked (so the peer holds the key of what it presented).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", </v2/a/tags/list?last=c>; rel=next"#)
                .as_deref(),
            Some("/v2/a/tags/list?last=c")
        );
        assert_eq!(next_link(r#"</v2/a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn credentials_do_not_show_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2-secret".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic(), "Basic dTpodW50ZXIyLXNlY3JldA==");
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(matches!(
            status_error(StatusCode::NOT_FOUND, "/"),
            UpstreamError::NotFound
        ));
        assert!(matches!(
            status_error(StatusCode::FORBIDDEN, "/"),
            UpstreamError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error(StatusCode::BAD_GATEWAY, "/"),
            UpstreamError::Status { status: 502 }
        ));
    }
}
