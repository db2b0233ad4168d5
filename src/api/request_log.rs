//! One log line per request, at `info` under the target `berth::request`: method, route
//! template, repository, status, bytes in and out, time to the response head, the account (or
//! `anonymous`), the client's address, why it failed when it did, and a request id that the
//! response carries as `X-Request-Id`.
//!
//! Handlers add what only they know (the repository, the account, a finer route than the
//! router's) through [`Notes`], which this middleware puts into every request; an error
//! response carries its reason as a [`Failure`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

/// The target of request lines, so they can be filtered (`BERTH_LOG=info,berth::request=off`).
pub const TARGET: &str = "berth::request";

/// The header that carries a request's id, both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What handlers note about a request for its log line.
#[derive(Clone, Default)]
pub struct Notes(Arc<Mutex<Noted>>);

#[derive(Default)]
struct Noted {
    route: Option<&'static str>,
    repository: Option<String>,
    account: Option<String>,
}

impl Notes {
    fn with(&self, f: impl FnOnce(&mut Noted)) {
        f(&mut self.0.lock().expect("request notes lock poisoned"));
    }

    /// The route template, when it is finer than the router's (`/v2/{*path}`).
    pub fn route(&self, route: &'static str) {
        self.with(|n| n.route = Some(route));
    }

    pub fn repository(&self, repository: &str) {
        self.with(|n| n.repository = Some(repository.to_string()));
    }

    /// The account the request acts as, `None` for anonymous.
    pub fn account(&self, account: Option<&str>) {
        self.with(|n| n.account = Some(account.unwrap_or("anonymous").to_string()));
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

/// The middleware: gives the request its id and notes, and logs its line once the response
/// head is ready. With request lines filtered out it only sets the id.
pub async fn log_requests(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request_id(request.headers());
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        let mut response = next.run(request).await;
        response.headers_mut().insert(REQUEST_ID.clone(), id);
        return response;
    }
    let started = Instant::now();
    let notes = Notes::default();
    request.extensions_mut().insert(notes.clone());
    let method = request.method().clone();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let client = state.client(request.extensions(), request.headers()).addr;
    let bytes_in = content_length(request.headers());
    let mut response = next.run(request).await;
    let took = started.elapsed();
    let noted = std::mem::take(&mut *notes.0.lock().expect("request notes lock poisoned"));
    let route = noted
        .route
        .or_else(|| matched.as_ref().map(|m| m.as_str()))
        .unwrap_or("(no route)");
    let failure = response.extensions().get::<Failure>().map(|f| f.0.as_str());
    // A streamed body's length is its header's; a whole one's, the body's own.
    let bytes_out = content_length(response.headers())
        .or_else(|| axum::body::HttpBody::size_hint(response.body()).exact());
    tracing::info!(
        target: TARGET,
        request_id = %id.to_str().unwrap_or_default(),
        method = %method,
        route = %route,
        repository = noted.repository.as_deref().map(tracing::field::display),
        status = response.status().as_u16(),
        bytes_in,
        bytes_out,
        duration_ms = %format_args!("{:.3}", took.as_secs_f64() * 1000.0),
        account = noted.account.as_deref().map(tracing::field::display),
        client = client.map(tracing::field::display),
        error = failure,
        "request"
    );
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}
