//! Slow and greedy clients: berth cuts off a request head that takes too long (and an idle
//! connection, and a TLS handshake that does not come), caps connections in total and per
//! client address, and keeps answering other clients while 300 slow connections are open,
//! even with only 256 file descriptors.

use crate::common;

use common::*;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth::config::Settings;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Guard against a hang, never a way to wait: every wait below ends on an event.
const GUARD: Duration = Duration::from_secs(60);
/// The request-head deadline the tests configure (`HEADER_READ_TIMEOUT_SECONDS`), short so
/// they run fast.
const DEADLINE: Duration = Duration::from_secs(2);
/// How much later than [`DEADLINE`] berth may cut a connection off (a loaded machine).
const LATE: Duration = Duration::from_secs(3);
/// How soon a normal request must be answered while slow clients are connected.
const PROMPTLY: Duration = Duration::from_secs(2);
/// The slow clients' address.
const HOME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Another client's address: Linux routes all of 127.0.0.0/8 to the loopback interface.
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const GET_V2: &[u8] = b"GET /v2/ HTTP/1.1\r\nHost: berth\r\n\r\n";

fn socket_address(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .trim_start_matches("https://")
        .parse()
        .expect("socket address")
}

/// A connection to `to` from the local address `source`.
async fn connect_from(source: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

/// Reads one response (head and `Content-Length` body) and returns its status; `None` when
/// the connection ends first.
async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, status, length) = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            break (end + 4, status, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(status)
}

/// Sends `GET /v2/` and reads the answer; `None` when berth closes the connection instead.
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Option<u16> {
    stream.write_all(GET_V2).await.ok()?;
    read_response(stream).await
}

/// A connection from `source` that has had one request answered, so berth holds it.
async fn held_connection(source: IpAddr, to: SocketAddr) -> TcpStream {
    let mut stream = connect_from(source, to).await.expect("connect");
    let status = tokio::time::timeout(GUARD, ask(&mut stream))
        .await
        .expect("answered");
    assert_eq!(status, Some(401), "GET /v2/ from {source}");
    stream
}

/// Waits until the peer closes `stream` (end of file or reset), reading what it sends.
async fn closed_by_peer<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut sink = [0u8; 4096];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

/// Sends a request head one byte per `pause` and never finishes it. Returns how long the
/// connection lasted and how many bytes went out before berth closed it.
async fn trickle_head<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    pause: Duration,
) -> (Duration, usize) {
    let started = Instant::now();
    let sent = AtomicUsize::new(0);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let send = async {
        let head = b"GET /v2/ HTTP/1.1\r\nHost: berth\r\nX-Slow: ";
        for byte in head.iter().copied().chain(std::iter::repeat(b'a')) {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            sent.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
        }
    };
    tokio::select! {
        () = closed_by_peer(&mut reader) => {}
        () = send => {}
    }
    (started.elapsed(), sent.load(Ordering::Relaxed))
}

/// A config file with the harness's storage keys and `yaml`.
fn config_file(dir: &Path, yaml: &str) -> std::path::PathBuf {
    let storage = test_storage_for(dir)
        .map(|s| storage_config_yaml(&s))
        .unwrap_or_default();
    let path = dir.join("config.yaml");
    std::fs::write(&path, format!("{storage}{yaml}")).expect("write config");
    path
}

/// Settings from config text, as berth reads its file.
fn settings(yaml: &str) -> Settings {
    berth::config::parse(yaml).expect("valid config").settings
}

fn short_deadline() -> Settings {
    settings("HEADER_READ_TIMEOUT_SECONDS: 2\n")
}

/// What the slow clients of the main test saw.
#[derive(Default)]
struct SlowClients {
    connected: AtomicUsize,
    /// Connections berth kept for the head deadline and then closed.
    cut_off_at_the_deadline: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_answers_others_while_300_slow_clients_are_connected_with_256_descriptors() {
    let dir = tempfile::tempdir().expect("data dir");
    let config = config_file(dir.path(), "HEADER_READ_TIMEOUT_SECONDS: 2\n");
    let mut server = ProcessServer::spawn_with_open_file_limit(dir.path(), Some(config), 256).await;
    let addr = socket_address(&server.base);

    // 300 clients from one address, each sending a header byte every half second; one that
    // berth drops connects again, as an attacker would.
    let pause = Duration::from_millis(500);
    let seen = Arc::new(SlowClients::default());
    let stop = CancellationToken::new();
    let mut slow = Vec::new();
    for _ in 0..300 {
        let (seen, stop) = (seen.clone(), stop.clone());
        slow.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Ok(stream) = connect_from(HOME, addr).await {
                    seen.connected.fetch_add(1, Ordering::Relaxed);
                    let (lasted, _) = tokio::select! {
                        lasted = trickle_head(stream, pause) => lasted,
                        () = stop.cancelled() => return,
                    };
                    if lasted >= DEADLINE - Duration::from_millis(100) {
                        seen.cut_off_at_the_deadline.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + GUARD;
    while seen.connected.load(Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "300 slow clients connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Meanwhile another client's requests, each on a new connection, are answered at once,
    // through three rounds of head deadlines.
    let client = reqwest::Client::builder()
        .local_address(OTHER)
        .pool_max_idle_per_host(0)
        .timeout(PROMPTLY)
        .build()
        .expect("client");
    let until = Instant::now() + 3 * DEADLINE;
    let mut answered = 0;
    while Instant::now() < until {
        let started = Instant::now();
        let r = client
            .get(format!("{}/v2/", server.base))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("GET /v2/ from {OTHER} got no answer within {PROMPTLY:?} while 300 slow clients were connected: {e}")
            });
        assert_eq!(r.status(), 401, "GET /v2/ from {OTHER}");
        answered += 1;
        pace(started).await;
    }
    assert!(
        answered >= 10,
        "only {answered} requests in the slow-client phase"
    );
    assert!(
        server.child.try_wait().expect("poll berth").is_none(),
        "berth is still running"
    );
    assert!(
        seen.cut_off_at_the_deadline.load(Ordering::Relaxed) > 0,
        "berth cut slow clients off at the head deadline"
    );
    assert_eq!(
        server.log.count("Too many open files"),
        0,
        "berth never ran out of file descriptors"
    );

    stop.cancel();
    for task in slow {
        task.await.expect("slow client");
    }
    // With the slow clients gone, their address is served again.
    let home = reqwest::Client::builder()
        .local_address(HOME)
        .timeout(PROMPTLY)
        .build()
        .expect("client");
    let deadline = Instant::now() + GUARD;
    loop {
        match home.get(format!("{}/v2/", server.base)).send().await {
            Ok(r) if r.status() == 401 => break,
            other => assert!(
                Instant::now() < deadline,
                "127.0.0.1 is served again once its slow connections are gone: {other:?}"
            ),
        }
    }
    server.kill9().await;
}

/// Paces the normal client at about five requests a second.
async fn pace(started: Instant) {
    tokio::time::sleep_until(started + Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_trickled_request_head_is_cut_off_at_the_deadline() {
    let server = TestServer::start_with(short_deadline()).await;
    let stream = connect_from(HOME, socket_address(&server.base))
        .await
        .expect("connect");
    let (lasted, sent) = tokio::time::timeout(
        DEADLINE + LATE,
        trickle_head(stream, Duration::from_millis(100)),
    )
    .await
    .expect("berth cuts off a head that takes longer than HEADER_READ_TIMEOUT_SECONDS");
    assert!(
        lasted >= DEADLINE - Duration::from_millis(100),
        "cut off after {lasted:?}, before the deadline"
    );
    assert!(
        sent >= 10,
        "the client kept sending ({sent} bytes) and was cut off all the same"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_slow_bodies_and_downloads_are_not() {
    let server = TestServer::start_with(short_deadline()).await;
    let addr = socket_address(&server.base);

    // A kept-alive connection without a next request is closed after the deadline.
    let mut idle = held_connection(HOME, addr).await;
    let answered_at = Instant::now();
    tokio::time::timeout(DEADLINE + LATE, closed_by_peer(&mut idle))
        .await
        .expect("berth closes an idle keep-alive connection");
    assert!(answered_at.elapsed() >= DEADLINE - Duration::from_millis(100));

    // A request body that takes twice the head deadline is read to its end.
    let blob = sample(7, 64 * 1024);
    let digest = sha256(&blob);
    let pieces: Vec<Bytes> = blob.chunks(4096).map(Bytes::copy_from_slice).collect();
    let pause = 2 * DEADLINE / pieces.len() as u32;
    let body = futures::stream::iter(pieces).then(move |piece| async move {
        tokio::time::sleep(pause).await;
        Ok::<_, io::Error>(piece)
    });
    let r = server
        .client
        .post(server.url(&format!("/v2/slow/body/blobs/uploads/?digest={digest}")))
        .header("content-type", "application/octet-stream")
        .header("content-length", blob.len())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("slow upload");
    assert_eq!(r.status(), 201, "an upload slower than the head deadline");

    // A download whose client stops reading for longer than the deadline still completes
    // (32 MiB is more than the socket buffers hold, so berth is still writing meanwhile).
    let big = sample(8, 32 << 20);
    let digest = push_blob(&server.client, &server.base, "slow/download", &big).await;
    let mut r = server
        .client
        .get(server.url(&format!("/v2/slow/download/blobs/{digest}")))
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), 200);
    let mut got = r
        .chunk()
        .await
        .expect("first bytes")
        .expect("a chunk")
        .to_vec();
    tokio::time::sleep(DEADLINE + Duration::from_secs(1)).await;
    while let Some(chunk) = r.chunk().await.expect("the rest of the download") {
        got.extend_from_slice(&chunk);
    }
    assert!(
        got == big,
        "the download arrived whole ({} bytes)",
        got.len()
    );
}

#[tokio::test]
async fn connections_beyond_the_per_client_cap_are_refused_and_other_clients_served() {
    let server = TestServer::start_with(settings("MAX_CONNECTIONS_PER_CLIENT: 3\n")).await;
    let addr = socket_address(&server.base);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(held_connection(HOME, addr).await);
    }

    let mut fourth = connect_from(HOME, addr).await.expect("connect");
    let answer = tokio::time::timeout(GUARD, ask(&mut fourth))
        .await
        .expect("berth closes the connection");
    assert_eq!(
        answer, None,
        "a fourth connection from {HOME} is closed unanswered"
    );
    let mut other = connect_from(OTHER, addr).await.expect("connect");
    assert_eq!(ask(&mut other).await, Some(401), "{OTHER} is still served");

    // A connection the client closes frees its place.
    drop(held.pop());
    let deadline = Instant::now() + GUARD;
    loop {
        let mut again = connect_from(HOME, addr).await.expect("connect");
        if ask(&mut again).await == Some(401) {
            break;
        }
        assert!(Instant::now() < deadline, "{HOME} gets its place back");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn beyond_max_connections_new_connections_wait_for_a_free_place() {
    let server = TestServer::start_with(settings(
        "MAX_CONNECTIONS: 3\nMAX_CONNECTIONS_PER_CLIENT: 10\n",
    ))
    .await;
    let addr = socket_address(&server.base);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(held_connection(HOME, addr).await);
    }

    let mut waiting = connect_from(OTHER, addr).await.expect("connect");
    waiting.write_all(GET_V2).await.expect("send request");
    let early = tokio::time::timeout(Duration::from_millis(500), read_response(&mut waiting)).await;
    assert!(
        early.is_err(),
        "a fourth connection is not served while three are open: {early:?}"
    );
    drop(held.pop());
    let answer = tokio::time::timeout(GUARD, read_response(&mut waiting))
        .await
        .expect("served once a place is free");
    assert_eq!(answer, Some(401));
}

/// A TLS client that trusts only `ca` (a PEM file).
fn tls_connector(ca: &Path) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(cert.expect("certificate")).expect("trust CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn over_https_the_handshake_and_the_head_have_the_deadline_too() {
    let dir = tempfile::tempdir().expect("data dir");
    let config = config_file(dir.path(), "HEADER_READ_TIMEOUT_SECONDS: 2\n");
    let server =
        ProcessServer::spawn_with_args(dir.path(), Some(config), &["--tls-self-signed"]).await;
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let addr = socket_address(&server.base);
    let connector = tls_connector(&dir.path().join("tls").join("cert.pem"));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");

    // A normal request is answered.
    let stream = connect_from(HOME, addr).await.expect("connect");
    let mut tls = connector
        .connect(name.clone(), stream)
        .await
        .expect("TLS handshake with the self-signed certificate");
    assert_eq!(ask(&mut tls).await, Some(401), "GET /v2/ over HTTPS");

    // A client that never starts the handshake is cut off at the deadline.
    let mut silent = connect_from(HOME, addr).await.expect("connect");
    let connected = Instant::now();
    tokio::time::timeout(DEADLINE + LATE, closed_by_peer(&mut silent))
        .await
        .expect("berth gives up on a TLS handshake that does not come");
    assert!(connected.elapsed() >= DEADLINE - Duration::from_millis(100));

    // So is one that trickles its request head after the handshake.
    let stream = connect_from(HOME, addr).await.expect("connect");
    let tls = connector
        .connect(name, stream)
        .await
        .expect("TLS handshake");
    let (lasted, sent) = tokio::time::timeout(
        DEADLINE + LATE,
        trickle_head(tls, Duration::from_millis(100)),
    )
    .await
    .expect("berth cuts off a slow head over HTTPS");
    assert!(lasted >= DEADLINE - Duration::from_millis(100) && sent >= 10);
    server.kill9().await;
}
