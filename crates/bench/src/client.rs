//! A lean HTTP/1.1 client: one hyper connection per simulated client, so the load generator
//! costs as little CPU as possible on the machine it shares with the server under test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::content::Blob;

/// Tokens are fetched again after this long, well inside any registry's token lifetime.
const TOKEN_REFRESH: Duration = Duration::from_secs(60);

/// A registry to drive: where it listens (one address, or several replicas of one registry,
/// which new connections take in turn) and how to authenticate.
pub struct Target {
    addrs: Vec<SocketAddr>,
    next: AtomicUsize,
    login: Option<Login>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

struct Login {
    basic: String,
    realm_path: String,
    service: String,
}

async fn resolve(authority: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("resolve {authority}"))?
        .next()
        .ok_or_else(|| anyhow!("{authority} has no address"))
}

impl Target {
    /// A registry at `bases` (`http://HOST:PORT` each: one server, or replicas sharing one
    /// store, over which connections are spread round-robin). With `credentials`, every request
    /// carries a bearer token from the registry's token endpoint (the Docker token flow), one
    /// per scope.
    pub async fn connect(
        bases: &[String],
        credentials: Option<(&str, &str)>,
    ) -> anyhow::Result<Arc<Target>> {
        let mut addrs = Vec::new();
        for base in bases {
            let authority = base
                .strip_prefix("http://")
                .ok_or_else(|| anyhow!("only http:// registries can be benchmarked, not {base}"))?
                .trim_end_matches('/');
            addrs.push(resolve(authority).await?);
        }
        if addrs.is_empty() {
            bail!("no registry address to benchmark");
        }
        let mut target = Target {
            addrs,
            next: AtomicUsize::new(0),
            login: None,
            tokens: Mutex::new(HashMap::new()),
        };
        if let Some((user, password)) = credentials {
            let mut conn = Conn::new(Target::bare(target.addrs[0]));
            let reply = conn
                .send(Call::new(Method::GET, "/v2/".into()), false)
                .await
                .context("GET /v2/ for the token challenge")?;
            let challenge = reply
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    anyhow!(
                        "the registry did not ask for a token (status {})",
                        reply.status
                    )
                })?;
            let realm = challenge_param(challenge, "realm")
                .ok_or_else(|| anyhow!("no realm in challenge {challenge}"))?;
            let realm_path = match realm
                .strip_prefix("http://")
                .or(realm.strip_prefix("https://"))
            {
                Some(rest) => rest
                    .find('/')
                    .map(|i| rest[i..].to_string())
                    .unwrap_or("/".into()),
                None => realm,
            };
            let service = challenge_param(challenge, "service").unwrap_or_default();
            target.login = Some(Login {
                basic: format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                ),
                realm_path,
                service,
            });
        }
        Ok(Arc::new(target))
    }

    /// A target at `addr` without credentials.
    fn bare(addr: SocketAddr) -> Arc<Target> {
        Arc::new(Target {
            addrs: vec![addr],
            next: AtomicUsize::new(0),
            login: None,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The address of the next connection: the replicas in turn.
    fn pick(&self) -> SocketAddr {
        self.addrs[self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len()]
    }

    /// The `Authorization` value for `scope`, fetching a token (from the replica at `addr`)
    /// when none is fresh.
    async fn authorization(
        self: &Arc<Self>,
        scope: &str,
        addr: SocketAddr,
    ) -> anyhow::Result<Option<HeaderValue>> {
        let Some(login) = &self.login else {
            return Ok(None);
        };
        if let Some((token, at)) = self.tokens.lock().unwrap().get(scope) {
            if at.elapsed() < TOKEN_REFRESH {
                return Ok(Some(HeaderValue::from_str(&format!("Bearer {token}"))?));
            }
        }
        let mut conn = Conn::new(Target::bare(addr));
        let path = format!(
            "{}?service={}&scope={}",
            login.realm_path,
            encode(&login.service),
            encode(scope)
        );
        let mut call = Call::new(Method::GET, path);
        call.headers
            .insert("authorization", HeaderValue::from_str(&login.basic)?);
        // Boxed: sending asks for authorization, which sends.
        let reply = Box::pin(conn.send(call, true)).await?;
        if reply.status != StatusCode::OK {
            bail!("token endpoint answered {}", reply.status);
        }
        let body: serde_json::Value = serde_json::from_slice(&reply.body)?;
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .ok_or_else(|| anyhow!("no token in the token endpoint's answer"))?
            .to_string();
        let value = HeaderValue::from_str(&format!("Bearer {token}"))?;
        self.tokens
            .lock()
            .unwrap()
            .insert(scope.to_string(), (token, Instant::now()));
        Ok(Some(value))
    }
}

impl Target {
    /// Fetches the token for `scope` now (when the target wants tokens), so the first timed
    /// request of a new repository does not include the token exchange.
    pub async fn prefetch_token(self: &Arc<Self>, scope: &str) -> anyhow::Result<()> {
        let addr = self.addrs[0];
        self.authorization(scope, addr).await.map(|_| ())
    }
}

fn challenge_param(challenge: &str, key: &str) -> Option<String> {
    let start = challenge.find(&format!("{key}=\""))? + key.len() + 2;
    let end = challenge[start..].find('"')? + start;
    Some(challenge[start..end].to_string())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a request sends, rebuildable so a request that met a closed keep-alive connection can
/// be sent again on a new one.
#[derive(Clone)]
pub enum Payload {
    Empty,
    Bytes(Bytes),
    /// A range of a generated blob, streamed without holding it in memory.
    Blob {
        blob: Blob,
        start: u64,
        end: u64,
    },
}

/// One HTTP request.
#[derive(Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub payload: Payload,
    /// The scope the request needs when the target wants tokens.
    pub scope: Option<String>,
}

impl Call {
    pub fn new(method: Method, path: String) -> Call {
        Call {
            method,
            path,
            headers: HeaderMap::new(),
            payload: Payload::Empty,
            scope: None,
        }
    }

    pub fn scope(mut self, scope: String) -> Call {
        self.scope = Some(scope);
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Call {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub fn payload(mut self, payload: Payload) -> Call {
        self.payload = payload;
        self
    }
}

/// A response: status, headers, and the body when it was kept (otherwise only its length).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub body_len: u64,
    /// Redirects followed to get it.
    pub redirects: u32,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request body over [`Payload`].
pub struct PayloadBody {
    chunks: Option<Bytes>,
    blob: Option<(Blob, u64, u64)>,
}

impl PayloadBody {
    fn new(payload: Payload) -> PayloadBody {
        match payload {
            Payload::Empty => PayloadBody {
                chunks: None,
                blob: None,
            },
            Payload::Bytes(b) => PayloadBody {
                chunks: Some(b),
                blob: None,
            },
            Payload::Blob { blob, start, end } => PayloadBody {
                chunks: None,
                blob: Some((blob, start, end)),
            },
        }
    }

    fn remaining(&self) -> u64 {
        self.chunks.as_ref().map_or(0, |b| b.len() as u64)
            + self.blob.as_ref().map_or(0, |(_, s, e)| e - s)
    }
}

impl Body for PayloadBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(b) = self.chunks.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if let Some((blob, start, end)) = self.blob.take() {
            if start < end {
                let chunk = blob.chunk_at(start, end);
                let next = start + chunk.len() as u64;
                if next < end {
                    self.blob = Some((blob, next, end));
                }
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

/// One HTTP/1.1 connection to one address, opened again when the server closes it.
struct Link {
    addr: SocketAddr,
    /// The `Host` header sent on it.
    host: String,
    sender: Option<SendRequest<PayloadBody>>,
}

impl Link {
    fn new(addr: SocketAddr, host: String) -> Link {
        Link {
            addr,
            host,
            sender: None,
        }
    }

    async fn open(&mut self) -> anyhow::Result<()> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connect to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends `call` (with `authorization`, if any) and reads the whole response, keeping the
    /// body only when `keep_body`.
    async fn exchange(
        &mut self,
        call: &Call,
        authorization: Option<&HeaderValue>,
        keep_body: bool,
    ) -> anyhow::Result<Reply> {
        let mut reused = self.sender.is_some();
        loop {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.open().await?;
                reused = false;
            }
            let sender = self.sender.as_mut().expect("opened above");
            if sender.ready().await.is_err() {
                self.sender = None;
                if reused {
                    continue;
                }
                bail!("connection closed before the request was sent");
            }
            let mut request = Request::builder()
                .method(call.method.clone())
                .uri(call.path.as_str())
                .header("host", self.host.as_str())
                .body(PayloadBody::new(call.payload.clone()))?;
            request.headers_mut().extend(call.headers.clone());
            if let Some(a) = authorization {
                request.headers_mut().insert("authorization", a.clone());
            }
            let response = match sender.send_request(request).await {
                Ok(r) => r,
                // A keep-alive connection the server had just closed: send once more on a new one.
                Err(e)
                    if reused
                        && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) =>
                {
                    self.sender = None;
                    reused = false;
                    continue;
                }
                Err(e) => {
                    self.sender = None;
                    return Err(e.into());
                }
            };
            let (parts, mut body) = response.into_parts();
            let mut kept = Vec::new();
            let mut body_len = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => {
                        self.sender = None;
                        return Err(anyhow!("reading the response body: {e}"));
                    }
                };
                if let Ok(data) = frame.into_data() {
                    body_len += data.len() as u64;
                    if keep_body {
                        kept.extend_from_slice(&data);
                    }
                }
            }
            if parts
                .headers
                .get("connection")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
            {
                self.sender = None;
            }
            return Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body: Bytes::from(kept),
                body_len,
                redirects: 0,
            });
        }
    }
}

/// How many redirects one GET may follow.
const MAX_REDIRECTS: u32 = 5;

/// One simulated client: a connection to one of the target's addresses (reconnected when the
/// server closes it), and one to wherever the registry last redirected a download (an object
/// store's presigned URL), kept alive like a client's connection pool would.
pub struct Conn {
    pub target: Arc<Target>,
    main: Link,
    redirected: Option<Link>,
}

impl Conn {
    pub fn new(target: Arc<Target>) -> Conn {
        let addr = target.pick();
        Conn {
            target,
            main: Link::new(addr, "127.0.0.1".into()),
            redirected: None,
        }
    }

    /// Sends `call` and reads the whole response, keeping the body only when `keep_body`. A
    /// GET or HEAD answered with a redirect follows it as registry clients do: without the
    /// registry's credentials, to an absolute URL on another server or a path on this one.
    pub async fn send(&mut self, call: Call, keep_body: bool) -> anyhow::Result<Reply> {
        let authorization = match &call.scope {
            Some(scope) => self.target.authorization(scope, self.main.addr).await?,
            None => None,
        };
        let mut reply = self
            .main
            .exchange(&call, authorization.as_ref(), keep_body)
            .await?;
        let follows = call.method == Method::GET || call.method == Method::HEAD;
        let mut redirects = 0;
        while follows && reply.status.is_redirection() && reply.status != StatusCode::NOT_MODIFIED {
            if redirects == MAX_REDIRECTS {
                bail!("more than {MAX_REDIRECTS} redirects from {}", call.path);
            }
            redirects += 1;
            let location = reply
                .header("location")
                .ok_or_else(|| anyhow!("{} redirect without Location", reply.status))?
                .to_string();
            let mut next = Call::new(call.method.clone(), String::new());
            next.headers = call.headers.clone();
            reply = match location.strip_prefix("http://") {
                Some(rest) => {
                    let (authority, path) = match rest.find('/') {
                        Some(i) => (&rest[..i], &rest[i..]),
                        None => (rest, "/"),
                    };
                    next.path = path.to_string();
                    if self.redirected.as_ref().is_none_or(|l| l.host != authority) {
                        let addr = resolve(authority).await?;
                        self.redirected = Some(Link::new(addr, authority.to_string()));
                    }
                    let link = self.redirected.as_mut().expect("set above");
                    link.exchange(&next, None, keep_body).await?
                }
                None if location.starts_with('/') => {
                    next.path = location;
                    self.main
                        .exchange(&next, authorization.as_ref(), keep_body)
                        .await?
                }
                None => bail!("cannot follow a redirect to {location}"),
            };
        }
        reply.redirects = redirects;
        Ok(reply)
    }
}
