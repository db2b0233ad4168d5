//! Graceful shutdown of the real binary: SIGTERM while pushes are mid-body lets every in-flight
//! request finish and answer, refuses new connections, exits cleanly, and loses nothing; a
//! request that never ends is cut off once the shutdown timeout passes, without harm.

use crate::common;

use common::*;

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

const MIB: usize = 1024 * 1024;
/// Guard against a hang, never a way to wait: every wait below ends on an event.
const GUARD: Duration = Duration::from_secs(60);
const SIGNALLED: &str = "shutdown signal received";

/// Bytes that differ for every `seed`.
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 8) as u8 ^ seed)
        .collect()
}

/// A body that sends `data` in `pieces` parts, one every `pause`, and fires `started` once the
/// first part has been taken by the connection, so the request is provably under way.
fn trickled(
    data: Vec<u8>,
    pieces: usize,
    pause: Duration,
    started: oneshot::Sender<()>,
) -> reqwest::Body {
    let data = Bytes::from(data);
    let piece = data.len().div_ceil(pieces);
    let state = (data, 0usize, Some(started));
    let stream = futures::stream::unfold(state, move |(data, sent, mut started)| async move {
        if sent >= data.len() {
            return None;
        }
        if sent > 0 {
            if let Some(s) = started.take() {
                let _ = s.send(());
            }
            tokio::time::sleep(pause).await;
        }
        let end = (sent + piece).min(data.len());
        let part = data.slice(sent..end);
        Some((Ok::<_, std::io::Error>(part), (data, end, started)))
    });
    reqwest::Body::wrap_stream(stream)
}

/// A body that sends `first` and then never ends.
fn stalled(first: Vec<u8>, started: oneshot::Sender<()>) -> reqwest::Body {
    let state = (Some(Bytes::from(first)), Some(started));
    let stream = futures::stream::unfold(state, |(first, mut started)| async move {
        match first {
            Some(part) => Some((Ok::<_, std::io::Error>(part), (None, started))),
            None => {
                if let Some(s) = started.take() {
                    let _ = s.send(());
                }
                futures::future::pending::<()>().await;
                unreachable!("pending never completes")
            }
        }
    });
    reqwest::Body::wrap_stream(stream)
}

fn location_url(base: &str, r: &reqwest::Response) -> String {
    let location = r.headers()["location"].to_str().expect("location");
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_string()
    }
}

fn with_digest(url: &str, digest: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={digest}")
}

async fn get_bytes(client: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let r = client
        .get(url)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

/// Waits for the process to exit on its own; returns its status and when it exited.
async fn exited(server: &mut ProcessServer) -> (std::process::ExitStatus, Instant) {
    let status = tokio::time::timeout(GUARD, server.child.wait())
        .await
        .expect("berth exits after SIGTERM")
        .expect("wait for berth");
    (status, Instant::now())
}

/// Whether a new connection to `base` is refused.
async fn refuses_connections(base: &str) -> bool {
    let addr = base.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn sigterm_lets_in_flight_pushes_finish_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("data dir");
    let mut server = ProcessServer::spawn_logging_requests(dir.path(), &[]).await;
    let base = server.base.clone();
    let client = server.client.clone();

    // What the in-flight manifests reference is pushed first.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest = push_blob(&client, &base, "stop/app", &config).await;
    let layer = data(1, MIB);
    let layer_digest = push_blob(&client, &base, "stop/app", &layer).await;
    let manifest = image_manifest(
        (&config_digest, config.len()),
        &[(&layer_digest, layer.len())],
    );

    // Two upload sessions that will take a chunk each while the signal arrives.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let r = client
            .post(format!("{base}/v2/stop/chunked/blobs/uploads/"))
            .send()
            .await
            .expect("start upload");
        assert_eq!(r.status(), 202);
        sessions.push(location_url(&base, &r));
    }

    let handled_before = server.log.count(REQUEST_STARTED);
    let pause = Duration::from_millis(40);
    let mut started = Vec::new();
    let mut pushes = Vec::new();
    let mut blobs = Vec::new();
    for i in 0..6u8 {
        let bytes = data(10 + i, 3 * MIB);
        let digest = sha256(&bytes);
        blobs.push(("stop/app", digest.clone(), bytes.clone()));
        let (tx, rx) = oneshot::channel();
        started.push(rx);
        let request = client
            .post(format!("{base}/v2/stop/app/blobs/uploads/?digest={digest}"))
            .header("content-type", "application/octet-stream")
            .header("content-length", bytes.len())
            .body(trickled(bytes, 48, pause, tx));
        pushes.push(("monolithic blob", 201u16, tokio::spawn(request.send())));
    }
    let mut chunks = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let bytes = data(30 + i as u8, 2 * MIB);
        chunks.push(bytes.clone());
        let (tx, rx) = oneshot::channel();
        started.push(rx);
        let request = client
            .patch(session)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("0-{}", bytes.len() - 1))
            .header("content-length", bytes.len())
            .body(trickled(bytes, 40, pause, tx));
        pushes.push(("chunk", 202, tokio::spawn(request.send())));
    }
    for tag in ["during-1", "during-2"] {
        let (tx, rx) = oneshot::channel();
        started.push(rx);
        let request = client
            .put(format!("{base}/v2/stop/app/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .header("content-length", manifest.len())
            .body(trickled(manifest.clone(), 20, pause, tx));
        pushes.push(("manifest", 201, tokio::spawn(request.send())));
    }
    let in_flight = pushes.len();
    for s in started {
        tokio::time::timeout(GUARD, s)
            .await
            .expect("every push is under way")
            .expect("body started");
    }
    // A request still in the socket's buffer is not yet berth's; wait until each reached a
    // handler.
    assert!(
        server
            .log
            .wait_for(REQUEST_STARTED, handled_before + in_flight, GUARD)
            .await,
        "every push reached a handler"
    );

    // Taken before the signal: `terminate` returns only once `kill` has exited, which under
    // load comes milliseconds after berth received the signal and started its clock.
    let signalled_at = Instant::now();
    server.terminate();
    assert!(
        server.log.wait_for(SIGNALLED, 1, GUARD).await,
        "berth saw SIGTERM"
    );
    // New connections are refused while the in-flight requests still run.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !refuses_connections(&base).await {
        assert!(
            Instant::now() < deadline,
            "berth still accepts connections after SIGTERM"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        server.child.try_wait().expect("poll berth").is_none(),
        "berth exited before its in-flight requests finished"
    );

    for (what, expected, push) in pushes {
        let r = tokio::time::timeout(GUARD, push)
            .await
            .expect("push answered")
            .expect("push task")
            .unwrap_or_else(|e| panic!("{what} in flight at SIGTERM got no answer: {e}"));
        assert_eq!(r.status().as_u16(), expected, "{what} in flight at SIGTERM");
    }
    let (status, exited_at) = exited(&mut server).await;
    assert!(
        status.success(),
        "berth exits with success after SIGTERM: {status}"
    );
    assert!(
        exited_at - signalled_at < berth::SHUTDOWN_GRACE,
        "berth waited for the grace period although every request had finished"
    );
    // The log is read from the child's output by another task: wait until it has seen the
    // last line before counting the others.
    assert!(server.log.wait_for("berth stopped", 1, GUARD).await);
    assert_eq!(
        server.log.count("still running after the shutdown grace"),
        0
    );

    // Nothing acknowledged is lost.
    let server = ProcessServer::spawn(dir.path()).await;
    let (base, client) = (server.base.clone(), server.client.clone());
    for (repo, digest, bytes) in &blobs {
        let (status, served) =
            get_bytes(&client, &format!("{base}/v2/{repo}/blobs/{digest}")).await;
        assert_eq!(status, 200, "blob {digest} after restart");
        assert!(served == *bytes, "blob {digest} altered");
    }
    for tag in ["during-1", "during-2"] {
        let (status, served) =
            get_bytes(&client, &format!("{base}/v2/stop/app/manifests/{tag}")).await;
        assert_eq!(status, 200, "manifest {tag} after restart");
        assert_eq!(served, manifest, "manifest {tag} altered");
    }
    // The chunks taken during shutdown are in their sessions, which finish after the restart.
    for (session, chunk) in sessions.iter().zip(&chunks) {
        let session = session.replacen(&server_base_of(session), &base, 1);
        let r = client
            .put(with_digest(&session, &sha256(chunk)))
            .send()
            .await
            .expect("finish upload");
        assert_eq!(r.status(), 201, "upload continued after the restart");
        let (status, served) = get_bytes(
            &client,
            &format!("{base}/v2/stop/chunked/blobs/{}", sha256(chunk)),
        )
        .await;
        assert_eq!(status, 200);
        assert!(served == *chunk, "chunked blob altered");
    }
    server.kill9().await;
}

/// `http://host:port` of an absolute URL.
fn server_base_of(url: &str) -> String {
    let rest = url.trim_start_matches("http://");
    format!("http://{}", rest.split('/').next().expect("authority"))
}

#[tokio::test]
async fn a_request_that_never_ends_is_cut_off_after_the_shutdown_timeout() {
    let dir = tempfile::tempdir().expect("data dir");
    let mut server =
        ProcessServer::spawn_logging_requests(dir.path(), &["--shutdown-timeout", "2"]).await;
    let (base, client) = (server.base.clone(), server.client.clone());
    let kept = push_image(&client, &base, "stop/app", "kept", &data(5, 64 * 1024)).await;
    let handled_before = server.log.count(REQUEST_STARTED);

    let never = data(6, 4 * MIB);
    let digest = sha256(&never);
    let (tx, rx) = oneshot::channel();
    let request = client
        .post(format!("{base}/v2/stop/app/blobs/uploads/?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .header("content-length", never.len())
        .body(stalled(never[..MIB].to_vec(), tx));
    let push = tokio::spawn(request.send());
    tokio::time::timeout(GUARD, rx)
        .await
        .expect("the push is under way")
        .expect("body started");
    assert!(
        server
            .log
            .wait_for(REQUEST_STARTED, handled_before + 1, GUARD)
            .await,
        "the push reached a handler"
    );

    // Taken before the signal: `terminate` returns only once `kill` has exited, which under
    // load comes milliseconds after berth received the signal and started its clock.
    let signalled_at = Instant::now();
    server.terminate();
    let (status, exited_at) = exited(&mut server).await;
    assert!(status.success(), "berth exits with success: {status}");
    let waited = exited_at - signalled_at;
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(20),
        "berth waits the shutdown timeout, then exits (waited {waited:?})"
    );
    assert!(
        server
            .log
            .wait_for("still running after the shutdown grace", 1, GUARD)
            .await,
        "berth says what it cut off"
    );
    assert!(
        tokio::time::timeout(GUARD, push)
            .await
            .expect("push ends")
            .expect("task")
            .is_err(),
        "the cut-off push got no success answer"
    );

    let server = ProcessServer::spawn(dir.path()).await;
    let (base, client) = (server.base.clone(), server.client.clone());
    let (status, _) = get_bytes(&client, &format!("{base}/v2/stop/app/blobs/{digest}")).await;
    assert_eq!(status, 404, "the cut-off blob was never stored");
    let (status, served) = get_bytes(&client, &format!("{base}/v2/stop/app/manifests/kept")).await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&served), kept);
    server.kill9().await;
}
