//! One log line per request, at `info` under the target `berth::request`: method, route
//! template, repository, status, bytes in and out, time to the response head, the account (or
//! `anonymous`), the client's address, why it failed when it did, and a request id that the
//! response carries as `X-Request-Id`.
//!
//! Handlers add what only they know (the repository, the account, a finer route than the
//! router's) through [`Notes`], which this middleware puts into every request; an error
//! response carries its reason as a [`Failure`].

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, SizeHint};

use crate::app::AppState;
use crate::metrics::metrics;

/// The target of request lines, so they can be filtered (`BERTH_LOG=info,berth::request=off`).
pub const TARGET: &str = "berth::request";

/// The header that carries a request's id, both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What handlers note about a request for its log line and its metrics.
#[derive(Clone, Default)]
pub struct Notes(Arc<Mutex<Noted>>);

#[derive(Default)]
struct Noted {
    /// Whether the request's line is logged: without it only the route is kept (the
    /// metrics need it), so the notes cost no allocation beyond their own.
    detailed: bool,
    route: Option<&'static str>,
    repository: Option<String>,
    account: Option<String>,
}

impl Notes {
    fn new(detailed: bool) -> Notes {
        Notes(Arc::new(Mutex::new(Noted {
            detailed,
            ..Noted::default()
        })))
    }

    fn with(&self, f: impl FnOnce(&mut Noted)) {
        f(&mut self.0.lock().expect("request notes lock poisoned"));
    }

    /// The route template, when it is finer than the router's (`/v2/{*path}`).
    pub fn route(&self, route: &'static str) {
        self.with(|n| n.route = Some(route));
    }

    pub fn repository(&self, repository: &str) {
        self.with(|n| {
            if n.detailed {
                n.repository = Some(repository.to_string());
            }
        });
    }

    /// The account the request acts as, `None` for anonymous.
    pub fn account(&self, account: Option<&str>) {
        self.with(|n| {
            if n.detailed {
                n.account = Some(account.unwrap_or("anonymous").to_string());
            }
        });
    }
}

/// Why a request failed, as its error response says (never a secret).
#[derive(Clone)]
pub struct Failure(pub String);

/// An id for a request: the one a proxy in front already gave it, when it is a plain token,
/// or a new one, unique across replicas (a random prefix per process and a counter).
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let given = headers.get(&REQUEST_ID).filter(|v| {
        let bytes = v.as_bytes();
        (1..=64).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
    });
    if let Some(given) = given {
        return given.clone();
    }
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(rand::random);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{prefix:08x}{n:012x}")).expect("hex is a header value")
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Counts the bytes of a request body whose length is not declared (a chunked upload) as a
/// handler reads them.
struct CountedBody {
    inner: Body,
    seen: Arc<AtomicU64>,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.seen.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How many body bytes a request brings: its declared length, or what a counter sees.
enum BytesIn {
    Declared(u64),
    Counted(Arc<AtomicU64>),
}

impl BytesIn {
    fn of(request: &mut Request) -> BytesIn {
        if let Some(n) = axum::body::HttpBody::size_hint(request.body()).exact() {
            return BytesIn::Declared(n);
        }
        let seen = Arc::new(AtomicU64::new(0));
        let counted = seen.clone();
        let body = std::mem::take(request.body_mut());
        *request.body_mut() = Body::new(CountedBody {
            inner: body,
            seen: counted,
        });
        BytesIn::Counted(seen)
    }

    fn now(&self) -> u64 {
        match self {
            BytesIn::Declared(n) => *n,
            BytesIn::Counted(seen) => seen.load(Ordering::Relaxed),
        }
    }
}

/// The middleware: gives the request its id and notes, records its metrics, and logs its
/// line once the response head is ready. With request lines filtered out it logs nothing.
pub async fn log_requests(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request_id(request.headers());
    let logged = tracing::enabled!(target: TARGET, tracing::Level::INFO);
    let started = Instant::now();
    let notes = Notes::new(logged);
    request.extensions_mut().insert(notes.clone());
    let method = request.method().clone();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let client = logged
        .then(|| state.client(request.extensions(), request.headers()).addr)
        .flatten();
    let bytes_in = BytesIn::of(&mut request);
    let mut response = next.run(request).await;
    let took = started.elapsed();
    let noted = std::mem::take(&mut *notes.0.lock().expect("request notes lock poisoned"));
    // The route is a template: the endpoint's (/v2) or the router's, never the raw path.
    let route: Cow<'static, str> = match (noted.route, &matched) {
        (Some(route), _) => Cow::Borrowed(route),
        (None, Some(m)) => Cow::Owned(m.as_str().to_string()),
        (None, None) => Cow::Borrowed("(no route)"),
    };
    // A streamed body's length is its header's; a whole one's, the body's own.
    let bytes_out = content_length(response.headers())
        .or_else(|| axum::body::HttpBody::size_hint(response.body()).exact());
    // An upload's handler has read its body by the time the response head is ready.
    let bytes_in = bytes_in.now();
    let status = response.status().as_u16();
    if logged {
        let failure = response.extensions().get::<Failure>().map(|f| f.0.as_str());
        tracing::info!(
            target: TARGET,
            request_id = %id.to_str().unwrap_or_default(),
            method = %method,
            route = %route,
            repository = noted.repository.as_deref().map(tracing::field::display),
            status,
            bytes_in,
            bytes_out,
            duration_ms = %format_args!("{:.3}", took.as_secs_f64() * 1000.0),
            account = noted.account.as_deref().map(tracing::field::display),
            client = client.map(tracing::field::display),
            error = failure,
            "request"
        );
    }
    metrics().request(
        route,
        &method,
        status,
        bytes_in,
        bytes_out.unwrap_or(0),
        took,
    );
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}
