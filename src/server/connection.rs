//! One client connection: the TLS handshake (under a deadline), HTTP/1.1 with keep-alive or
//! HTTP/2, and closing it when it has gone without a request for too long or berth stops.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::limits::Slot;

/// After berth asks a connection without a request in flight to close (HTTP/2 says so in a
/// GOAWAY frame), how long the client may take before the connection is dropped.
const CLOSING_GRACE: Duration = Duration::from_secs(1);

/// What a connection task needs besides its stream.
pub struct Conn {
    pub peer: SocketAddr,
    pub router: Router,
    /// `HEADER_READ_TIMEOUT_SECONDS` when the connection was accepted.
    pub header_read_timeout: Duration,
    /// Cancelled when berth stops.
    pub stop: CancellationToken,
    /// Holds the connection's place in the limits until the task ends.
    pub slot: Slot,
}

/// Serves HTTPS on `stream`: the TLS handshake must finish within the header-read timeout.
pub async fn serve_tls(stream: TcpStream, tls: TlsAcceptor, conn: Conn) {
    let handshake = tokio::time::timeout(conn.header_read_timeout, tls.accept(stream));
    let stream = tokio::select! {
        handshake = handshake => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %conn.peer, "TLS handshake timed out");
                return;
            }
        },
        () = conn.stop.cancelled() => return,
    };
    serve(stream, conn).await;
}

/// Serves HTTP on `io` until the client closes, the connection goes without a request for the
/// header-read timeout, or berth stops (then the request in flight may finish).
///
/// The head deadline is kept twice: hyper's HTTP/1 `header_read_timeout` (which starts when
/// hyper waits for a head, so it covers idle keep-alive time too), and this task's own clock,
/// which also covers what hyper's does not: the bytes read to tell HTTP/1 from HTTP/2, and
/// HTTP/2 connections that carry no request.
pub async fn serve<I>(io: I, conn: Conn)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Conn {
        peer,
        router,
        header_read_timeout,
        stop,
        slot: _slot,
    } = conn;
    let (activity, mut idle) = activity();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let busy = activity.begin();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await?;
            Ok::<_, Infallible>(response.map(|body| BusyBody { body, _busy: busy }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    // When berth asked the connection to close, for berth's stop or for idleness.
    let mut closing: Option<Instant> = None;
    loop {
        let patience = if closing.is_some() {
            CLOSING_GRACE
        } else {
            header_read_timeout
        };
        // The connection goes first: a request whose bytes arrived by the deadline is read and
        // counted in flight before the idle clock is looked at.
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = stop.cancelled(), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            () = idle.for_at_least(patience, closing) => {
                if closing.is_some() {
                    tracing::debug!(%peer, "dropping a connection that did not close");
                    return;
                }
                tracing::debug!(%peer, "closing a connection without a request for {header_read_timeout:?}");
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
        }
    }
}

/// How many requests of a connection are in flight, and since when none is.
#[derive(Debug, Clone, Copy)]
struct Load {
    in_flight: usize,
    idle_since: Instant,
}

/// The request side of a connection's [`Load`]: each request counts from when hyper hands it
/// over until its response body is dropped (written out, or abandoned).
#[derive(Clone)]
struct Activity(Arc<watch::Sender<Load>>);

/// The connection task's view of the [`Load`].
struct Idle(watch::Receiver<Load>);

fn activity() -> (Activity, Idle) {
    let (tx, rx) = watch::channel(Load {
        in_flight: 0,
        idle_since: Instant::now(),
    });
    (Activity(Arc::new(tx)), Idle(rx))
}

impl Activity {
    fn begin(&self) -> Busy {
        self.0.send_modify(|load| load.in_flight += 1);
        Busy(self.0.clone())
    }
}

/// One request in flight.
struct Busy(Arc<watch::Sender<Load>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|load| {
            load.in_flight -= 1;
            if load.in_flight == 0 {
                load.idle_since = Instant::now();
            }
        });
    }
}

impl Idle {
    /// Resolves once no request has been in flight for `patience`, counted from when the last
    /// one ended or from `not_before`, whichever is later.
    async fn for_at_least(&mut self, patience: Duration, not_before: Option<Instant>) {
        loop {
            let load = *self.0.borrow_and_update();
            if load.in_flight == 0 {
                let since = not_before.map_or(load.idle_since, |t| t.max(load.idle_since));
                tokio::select! {
                    () = tokio::time::sleep_until(since + patience) => return,
                    changed = self.0.changed() => {
                        if changed.is_err() {
                            // The service is gone, so no request can start any more.
                            return;
                        }
                    }
                }
            } else if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl HttpBody for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
