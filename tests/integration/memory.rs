//! Streaming memory check: a blob far larger than the allowed memory growth goes through the
//! real binary, up and down, while its peak resident memory is watched.
//!
//! The size is `BERTH_MEMORY_TEST_BYTES` (default 256 MiB). The bytes are generated and hashed
//! on the fly on both sides, so the test itself never holds the blob either.
//! `cargo test --release --test memory -- --nocapture` prints the figures.

use crate::common;

use common::*;

use std::time::Instant;

use futures::StreamExt;
use sha2::{Digest as _, Sha256};

const DEFAULT_BYTES: u64 = 256 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;
/// How far the server's peak resident memory may rise above its resident size before the push.
const ALLOWED_GROWTH: u64 = 64 * MIB;
/// Size of the pieces the client generates and sends.
const PIECE: usize = 256 * 1024;

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / MIB as f64)
}

fn blob_size() -> u64 {
    match std::env::var("BERTH_MEMORY_TEST_BYTES") {
        Ok(v) => v
            .trim()
            .parse()
            .expect("BERTH_MEMORY_TEST_BYTES is a number of bytes"),
        Err(_) => DEFAULT_BYTES,
    }
}

/// An upload `Location` (berth sends a path) as a full URL.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_string()
    }
}

/// A body of `size` pattern bytes made on demand; the SHA-256 of everything it produced is sent
/// on `done` once the last piece has been handed out.
fn generated_body(
    size: u64,
    seed: u64,
    done: tokio::sync::oneshot::Sender<String>,
) -> reqwest::Body {
    struct Gen {
        pattern: Pattern,
        hasher: Sha256,
        left: u64,
        done: Option<tokio::sync::oneshot::Sender<String>>,
    }
    let state = Gen {
        pattern: Pattern::new(seed),
        hasher: Sha256::new(),
        left: size,
        done: Some(done),
    };
    let stream = futures::stream::unfold(state, |mut g| async move {
        if g.left == 0 {
            if let Some(done) = g.done.take() {
                let digest = format!("sha256:{}", hex::encode(g.hasher.clone().finalize()));
                let _ = done.send(digest);
            }
            return None;
        }
        let n = (g.left as usize).min(PIECE);
        let mut piece = vec![0u8; n];
        g.pattern.fill(&mut piece);
        g.hasher.update(&piece);
        g.left -= n as u64;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(piece)), g))
    });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_blob_streams_through_in_bounded_memory() {
    let size = blob_size();
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ProcessServer::spawn(dir.path()).await;
    let pid = server.child.id().expect("berth pid");
    let client = server.client.clone();
    let base = server.base.clone();
    let repo = "memory/big";

    let (rss_before, hwm_before) = memory_of(pid);

    // Push: open a session, send the whole blob as one PATCH with no Content-Length (chunked
    // transfer encoding), then close it with the digest computed while generating.
    let started = Instant::now();
    let r = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("start upload");
    assert_eq!(r.status(), 202);
    let location = absolute(&base, r.headers()["location"].to_str().unwrap());
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let r = client
        .patch(&location)
        .header("content-type", "application/octet-stream")
        .body(generated_body(size, 0xB10B, done_tx))
        .send()
        .await
        .expect("streamed PATCH");
    assert_eq!(
        r.status(),
        202,
        "PATCH: {}",
        r.text().await.unwrap_or_default()
    );
    assert!(
        r.headers().get("content-length").is_none_or(|v| v == "0"),
        "PATCH reply has no body"
    );
    assert_eq!(
        r.headers()["range"].to_str().unwrap(),
        format!("0-{}", size - 1)
    );
    let location = absolute(&base, r.headers()["location"].to_str().unwrap());
    let digest = done_rx.await.expect("generator finished");
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = client
        .put(format!("{location}{sep}digest={digest}"))
        .send()
        .await
        .expect("closing PUT");
    assert_eq!(
        r.status(),
        201,
        "PUT: {}",
        r.text().await.unwrap_or_default()
    );
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let push_time = started.elapsed();
    let (rss_after_push, hwm_after_push) = memory_of(pid);

    // The registry knows the blob at its full size.
    let r = client
        .head(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .expect("HEAD blob");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], size.to_string().as_str());

    // Pull it back as a stream, hashing as it arrives.
    let started = Instant::now();
    let r = client
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .expect("GET blob");
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(size));
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("blob body");
        received += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let pulled = format!("sha256:{}", hex::encode(hasher.finalize()));
    let pull_time = started.elapsed();
    let (rss_after_pull, hwm_after_pull) = memory_of(pid);

    let rate = |t: std::time::Duration| size as f64 / MIB as f64 / t.as_secs_f64().max(1e-9);
    // The baseline is the resident size before the push, not the peak so far: start-up work
    // (hashing the initial admin password) leaves a peak that would hide growth below it.
    println!(
        "memory test: blob {} ({size} bytes)\n  \
         before:          VmRSS {}, VmHWM {}\n  \
         after push:      VmRSS {}, VmHWM {} (peak {} over VmRSS before) in {:.1?}, {:.0} MiB/s\n  \
         after pull:      VmRSS {}, VmHWM {} (peak {} over VmRSS before) in {:.1?}, {:.0} MiB/s\n  \
         allowed growth:  {}",
        mib(size),
        mib(rss_before),
        mib(hwm_before),
        mib(rss_after_push),
        mib(hwm_after_push),
        mib(hwm_after_push.saturating_sub(rss_before)),
        push_time,
        rate(push_time),
        mib(rss_after_pull),
        mib(hwm_after_pull),
        mib(hwm_after_pull.saturating_sub(rss_before)),
        pull_time,
        rate(pull_time),
        mib(ALLOWED_GROWTH),
    );

    assert_eq!(received, size, "pulled length");
    assert_eq!(pulled, digest, "pulled digest");
    assert!(
        hwm_after_push < rss_before + ALLOWED_GROWTH,
        "peak memory reached {} over the resident size before a {} push (allowed {})",
        mib(hwm_after_push - rss_before),
        mib(size),
        mib(ALLOWED_GROWTH)
    );
    assert!(
        hwm_after_pull < rss_before + ALLOWED_GROWTH,
        "peak memory reached {} over the resident size before, after pulling a {} blob \
         (allowed {})",
        mib(hwm_after_pull - rss_before),
        mib(size),
        mib(ALLOWED_GROWTH)
    );

    server.kill9().await;
    dir.close().expect("remove temp dir");
}
