//! Serving connections: the accept loop, the connection limits, the request-head deadline, and
//! graceful shutdown, for plain HTTP and HTTPS alike.
//!
//! A client that opens connections and sends nothing, or a header byte now and then, would
//! otherwise hold a file descriptor each for as long as it likes. So: a connection without a
//! request in flight is closed after `HEADER_READ_TIMEOUT_SECONDS` (that bounds a request head,
//! an idle keep-alive connection and the TLS handshake); at most `MAX_CONNECTIONS` are open
//! (more wait in the listen backlog) and at most `MAX_CONNECTIONS_PER_CLIENT` per client
//! address (more are closed at once); and when `accept` fails, for lack of file descriptors
//! say, the loop pauses instead of spinning.

mod accept;
mod connection;
mod limits;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use limits::{
    ConnectionSettings, Limits, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
};

use crate::app::AppState;
use crate::config::Settings;
use accept::{Backoff, Throttle, WARNING_INTERVAL};
use connection::Conn;
use limits::{Connections, Refusal};

/// Whether connections from `ip` skip `MAX_CONNECTIONS_PER_CLIENT`: a trusted reverse proxy or
/// load balancer carries many clients' connections from one address (they still count toward
/// `MAX_CONNECTIONS`).
fn exempt_from_client_cap(settings: &Settings, ip: IpAddr) -> bool {
    // A trusted reverse proxy carries many clients on its connections; they are counted in
    // MAX_CONNECTIONS only.
    settings.trusted_proxies.contains(ip)
}

/// Serves `state` on `listener` (over TLS when `tls` is given) until `shutdown` resolves. Then
/// it closes the listener at once, lets in-flight requests finish for up to the state's
/// `shutdown_grace`, and returns (cutting off what still runs).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.shutdown_grace;
    let router = crate::app::router(state.clone());
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let open_file_limit = open_file_limit();
    let connections = Connections::default();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut backoff = Backoff::default();
    let mut paused_until: Option<Instant> = None;
    let mut accept_warnings = Throttle::new(WARNING_INTERVAL);
    let mut full_warnings = Throttle::new(WARNING_INTERVAL);
    let mut refusal_warnings = Throttle::new(WARNING_INTERVAL);
    let at_start = Limits::resolve(&state.settings().connections, open_file_limit);
    tracing::info!(
        "accepting up to {} connections, {} per client address; request heads within {:?}",
        at_start.max_connections,
        at_start.max_connections_per_client,
        at_start.header_read_timeout
    );
    tokio::pin!(shutdown);
    loop {
        let settings = state.settings();
        let limits = Limits::resolve(&settings.connections, open_file_limit);
        let room = connections.open() < limits.max_connections;
        if !room {
            if let Some(held_back) = full_warnings.allow(Instant::now()) {
                tracing::warn!(
                    "MAX_CONNECTIONS ({}) are open; new connections wait until one closes ({held_back} more times since the last warning)",
                    limits.max_connections
                );
            }
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => report_panic(ended),
            () = tokio::time::sleep_until(paused_until.unwrap_or_else(Instant::now)), if paused_until.is_some() => {
                paused_until = None;
            }
            accepted = listener.accept(), if room && paused_until.is_none() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        if let Some(pause) = backoff.failed(&e) {
                            paused_until = Some(Instant::now() + pause);
                            if let Some(held_back) = accept_warnings.allow(Instant::now()) {
                                tracing::warn!(
                                    "accept error: {e}; pausing new connections for {pause:?} ({held_back} more errors since the last warning)"
                                );
                            }
                        }
                        continue;
                    }
                };
                backoff.succeeded();
                let exempt = exempt_from_client_cap(&settings, peer.ip());
                let slot = match connections.admit(peer.ip(), limits.max_connections_per_client, exempt) {
                    Ok(slot) => slot,
                    Err(Refusal::ClientFull) => {
                        if let Some(held_back) = refusal_warnings.allow(Instant::now()) {
                            tracing::warn!(
                                "refused a connection from {}: it holds MAX_CONNECTIONS_PER_CLIENT ({}) already ({held_back} more refused since the last warning)",
                                peer.ip(),
                                limits.max_connections_per_client
                            );
                        }
                        // Dropping the stream closes it before a byte is read.
                        continue;
                    }
                };
                let conn = Conn {
                    peer,
                    router: router.clone(),
                    header_read_timeout: limits.header_read_timeout,
                    stop: stop.clone(),
                    slot,
                };
                match &tls {
                    Some(tls) => tasks.spawn(connection::serve_tls(stream, tls.clone(), conn)),
                    None => tasks.spawn(connection::serve(stream, conn)),
                };
            }
        }
    }
    // New connections are refused from here on.
    drop(listener);
    stop.cancel();
    let drained = tokio::time::timeout(grace, async {
        while let Some(ended) = tasks.join_next().await {
            report_panic(ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("requests still running after the shutdown grace period; exiting");
        tasks.shutdown().await;
    }
    // Usage logs still queued are stored before the process goes.
    state.usage.flush().await;
    Ok(())
}

fn report_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        if e.is_panic() {
            tracing::error!("a connection task panicked: {e}");
        }
    }
}

/// The process's soft limit on open files, `None` when unlimited or unknown.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given and nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
            || limit.rlim_cur == libc::RLIM_INFINITY
        {
            return None;
        }
        // rlim_t is u64 on Linux but not on every Unix.
        #[allow(clippy::unnecessary_cast)]
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// Raises the soft limit on open files to the hard limit (service managers often start
/// processes with a soft limit of 1024 and a far higher hard one, which is there to be taken)
/// and returns the limit in force. The default `MAX_CONNECTIONS` follows it.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read or write only the struct they are given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
                && limit.rlim_cur < limit.rlim_max
            {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                    tracing::debug!(
                        "cannot raise the open-file limit: {}",
                        std::io::Error::last_os_error()
                    );
                }
            }
        }
    }
    open_file_limit()
}
