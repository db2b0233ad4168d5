//! A small OCI distribution client: exactly the requests the harness makes, each telling a
//! server that is gone (a transport error) from a wrong answer.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::sync::RwLock;

/// Why a request did not give the expected answer.
#[derive(Debug)]
pub enum Failure {
    /// No HTTP answer: the server is gone or the connection broke.
    Gone(String),
    /// An HTTP answer other than the one expected.
    Wrong {
        what: String,
        status: u16,
        body: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Gone(e) => write!(f, "no answer: {e}"),
            Failure::Wrong { what, status, body } => {
                let body: String = body.chars().take(300).collect();
                write!(f, "{what}: unexpected {status}: {body}")
            }
        }
    }
}

pub type Answer<T> = Result<T, Failure>;

fn gone(e: reqwest::Error) -> Failure {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    Failure::Gone(text)
}

async fn wrong(what: &str, r: reqwest::Response) -> Failure {
    let status = r.status().as_u16();
    Failure::Wrong {
        what: what.to_string(),
        status,
        body: r.text().await.unwrap_or_default(),
    }
}

/// How requests are authenticated.
enum Credentials {
    /// HTTP Basic on every request.
    Basic(String),
    /// The Docker token flow: a bearer token from the realm, fetched again when it expires.
    Token {
        user: String,
        password: String,
        scopes: Vec<String>,
        current: RwLock<Option<String>>,
    },
}

/// One client of one registry, with its own connection pool.
pub struct Registry {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
}

/// A blob as served: the digest of the bytes received and their count.
pub struct Served {
    pub digest: String,
    pub len: u64,
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Registry {
    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Bounds a request to a live server; a dead one fails at once.
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(4)
            .build()
            .expect("an HTTP client")
    }

    /// A client sending Basic credentials.
    pub fn basic(base: &str, user: &str, password: &str) -> Registry {
        Registry {
            http: Self::http(),
            base: base.trim_end_matches('/').to_string(),
            credentials: Credentials::Basic(basic(user, password)),
        }
    }

    /// A client that logs in through the token flow with `scopes`
    /// (`repository:NAME:pull,push` each).
    pub fn token(base: &str, user: &str, password: &str, scopes: Vec<String>) -> Registry {
        Registry {
            http: Self::http(),
            base: base.trim_end_matches('/').to_string(),
            credentials: Credentials::Token {
                user: user.to_string(),
                password: password.to_string(),
                scopes,
                current: RwLock::new(None),
            },
        }
    }

    /// The URL of `path_or_url` (berth answers with paths in `Location`).
    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
        } else {
            path_or_url.to_string()
        }
    }

    async fn authorization(&self, renew: bool) -> Answer<String> {
        match &self.credentials {
            Credentials::Basic(header) => Ok(header.clone()),
            Credentials::Token {
                user,
                password,
                scopes,
                current,
            } => {
                if !renew {
                    if let Some(token) = current.read().await.as_ref() {
                        return Ok(format!("Bearer {token}"));
                    }
                }
                let mut url = format!("{}/v2/auth?service=berth", self.base);
                for scope in scopes {
                    url.push_str("&scope=");
                    url.push_str(scope);
                }
                let r = self
                    .http
                    .get(url)
                    .header("authorization", basic(user, password))
                    .send()
                    .await
                    .map_err(gone)?;
                if r.status() != 200 {
                    return Err(wrong("token", r).await);
                }
                let body: serde_json::Value = r.json().await.map_err(gone)?;
                let token = body["token"]
                    .as_str()
                    .or(body["access_token"].as_str())
                    .ok_or_else(|| Failure::Wrong {
                        what: "token".into(),
                        status: 200,
                        body: body.to_string(),
                    })?
                    .to_string();
                *current.write().await = Some(token.clone());
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// Sends the request built by `build`, logging in again once if a token expired. `build`
    /// is called again for the retry, so bodies must be rebuildable.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Answer<reqwest::Response> {
        let auth = self.authorization(false).await?;
        let r = build(&self.http)
            .header("authorization", auth)
            .send()
            .await
            .map_err(gone)?;
        if r.status() == 401 && matches!(self.credentials, Credentials::Token { .. }) {
            let auth = self.authorization(true).await?;
            return build(&self.http)
                .header("authorization", auth)
                .send()
                .await
                .map_err(gone);
        }
        Ok(r)
    }

    /// `GET /v2/`.
    pub async fn ping(&self) -> Answer<()> {
        let url = format!("{}/v2/", self.base);
        let r = self.send(|h| h.get(&url)).await?;
        if r.status() != 200 {
            return Err(wrong("ping", r).await);
        }
        Ok(())
    }

    /// Pushes a blob in one POST, its body sent in `piece`-sized parts.
    pub async fn push_blob(&self, repo: &str, data: &Bytes, piece: usize) -> Answer<()> {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?digest={}",
            self.base,
            crate::content::sha256(data)
        );
        let r = self
            .send(|h| {
                h.post(&url)
                    .header("content-type", "application/octet-stream")
                    .header("content-length", data.len())
                    .body(pieces(data.clone(), piece))
            })
            .await?;
        if r.status() != 201 {
            return Err(wrong("monolithic blob push", r).await);
        }
        Ok(())
    }

    /// Starts an upload session; returns its location.
    pub async fn start_upload(&self, repo: &str) -> Answer<String> {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let r = self.send(|h| h.post(&url)).await?;
        if r.status() != 202 {
            return Err(wrong("start upload", r).await);
        }
        location(r, "start upload").await
    }

    /// Appends `data` at `from`; returns the session's next location.
    pub async fn patch(&self, session: &str, from: u64, data: &Bytes) -> Answer<String> {
        let url = self.url(session);
        let range = format!("{from}-{}", from + data.len() as u64 - 1);
        let r = self
            .send(|h| {
                h.patch(&url)
                    .header("content-type", "application/octet-stream")
                    .header("content-range", &range)
                    .header("content-length", data.len())
                    .body(pieces(data.clone(), 64 * 1024))
            })
            .await?;
        if r.status() != 202 {
            return Err(wrong("chunk", r).await);
        }
        location(r, "chunk").await
    }

    /// Completes a session with the blob's digest.
    pub async fn finish(&self, session: &str, digest: &str) -> Answer<()> {
        let url = self.url(session);
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}digest={digest}");
        let r = self.send(|h| h.put(&url)).await?;
        if r.status() != 201 {
            return Err(wrong("finish upload", r).await);
        }
        Ok(())
    }

    /// How many bytes a session holds, or `None` when the registry does not know it.
    pub async fn upload_offset(&self, session: &str) -> Answer<Option<u64>> {
        let url = self.url(session);
        let r = self.send(|h| h.get(&url)).await?;
        match r.status().as_u16() {
            204 => {
                let range = r
                    .headers()
                    .get("range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let end = range
                    .strip_prefix("0-")
                    .and_then(|e| e.parse::<u64>().ok())
                    .ok_or_else(|| Failure::Wrong {
                        what: "upload status".into(),
                        status: 204,
                        body: format!("bad Range {range:?}"),
                    })?;
                // An empty session reports 0-0, as distribution does.
                let len = if end == 0 { 0 } else { end + 1 };
                Ok(Some(len))
            }
            404 => Ok(None),
            _ => Err(wrong("upload status", r).await),
        }
    }

    /// Mounts `digest` from `from`; true when mounted (201), false when the registry opened an
    /// upload instead (202), which is then cancelled.
    pub async fn mount(&self, repo: &str, from: &str, digest: &str) -> Answer<bool> {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
            self.base
        );
        let r = self.send(|h| h.post(&url)).await?;
        match r.status().as_u16() {
            201 => Ok(true),
            202 => {
                let session = location(r, "mount").await?;
                let url = self.url(&session);
                let _ = self.send(|h| h.delete(&url)).await?;
                Ok(false)
            }
            _ => Err(wrong("mount", r).await),
        }
    }

    /// Pushes a manifest under `reference`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Answer<()> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let r = self
            .send(|h| {
                h.put(&url)
                    .header("content-type", media_type)
                    .body(bytes.clone())
            })
            .await?;
        if r.status() != 201 {
            return Err(wrong("manifest push", r).await);
        }
        Ok(())
    }

    /// A manifest's exact bytes, or `None` when it is not known.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Answer<Option<Bytes>> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let accept = format!(
            "{}, {}",
            crate::content::OCI_MANIFEST,
            crate::content::OCI_INDEX
        );
        let r = self.send(|h| h.get(&url).header("accept", &accept)).await?;
        match r.status().as_u16() {
            200 => Ok(Some(r.bytes().await.map_err(gone)?)),
            404 => Ok(None),
            _ => Err(wrong("manifest pull", r).await),
        }
    }

    /// Whether a manifest exists, by HEAD.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Answer<bool> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let accept = format!(
            "{}, {}",
            crate::content::OCI_MANIFEST,
            crate::content::OCI_INDEX
        );
        let r = self
            .send(|h| h.head(&url).header("accept", &accept))
            .await?;
        match r.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(wrong("manifest head", r).await),
        }
    }

    /// Streams a blob and hashes it; `None` when it is not known.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Answer<Option<Served>> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let r = self.send(|h| h.get(&url)).await?;
        match r.status().as_u16() {
            200 => {
                let mut hasher = Sha256::new();
                let mut len = 0u64;
                let mut body = r.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(gone)?;
                    len += chunk.len() as u64;
                    hasher.update(&chunk);
                }
                Ok(Some(Served {
                    digest: format!("sha256:{}", hex::encode(hasher.finalize())),
                    len,
                }))
            }
            404 => Ok(None),
            _ => Err(wrong("blob pull", r).await),
        }
    }
}

async fn location(r: reqwest::Response, what: &str) -> Answer<String> {
    match r.headers().get("location").and_then(|v| v.to_str().ok()) {
        Some(l) => Ok(l.to_string()),
        None => Err(wrong(&format!("{what} (no Location)"), r).await),
    }
}

/// A body that sends `data` in `piece`-sized parts, so a kill can land mid-body.
fn pieces(data: Bytes, piece: usize) -> reqwest::Body {
    let parts: Vec<Result<Bytes, std::io::Error>> = (0..data.len())
        .step_by(piece.max(1))
        .map(|i| Ok(data.slice(i..(i + piece).min(data.len()))))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(parts))
}
