//! Upload sessions under stress: resumed across server restarts, and used by concurrent
//! clients (many pushes of one blob, many writers on one session).

use crate::common;

use common::*;

/// PATCHes a chunk with `Connection: close`. A refused chunk is answered before its body is
/// read, and the server then drops the connection without saying so (a known server bug); a
/// pooled connection would fail the next request sent on it.
async fn racing_patch(
    client: &reqwest::Client,
    base: &str,
    location: &str,
    range: &str,
    chunk: &[u8],
) -> reqwest::Response {
    client
        .patch(format!("{base}{location}"))
        .header("content-type", "application/octet-stream")
        .header("content-range", range)
        .header("connection", "close")
        .body(chunk.to_vec())
        .send()
        .await
        .expect("PATCH")
}

#[tokio::test]
async fn an_upload_resumes_across_a_restart() {
    let s = TestServer::start().await;
    let content = sample(11, 300_000);
    let digest = sha256(&content);
    let location = s.upload("ns/app").await;
    let r = s
        .patch(&location, Some("0-99999"), &content[..100_000])
        .await;
    assert_chunk_accepted(&r, &location, 100_000);

    let s = s.restart().await;
    let r = s.get(&location).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), "0-99999");
    let r = s
        .patch(&location, Some("100000-199999"), &content[100_000..200_000])
        .await;
    assert_chunk_accepted(&r, &location, 200_000);

    // Once more, then close with the last chunk.
    let s = s.restart().await;
    assert_eq!(header(&s.get(&location).await, "range"), "0-199999");
    let r = s.close(&location, &digest, &content[200_000..]).await;
    assert_blob_created(&r, "ns/app", &digest);
    assert_eq!(s.pull("ns/app", &digest).await, content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_of_one_blob_all_succeed() {
    let s = TestServer::start().await;
    let content = sample(12, 200_000);
    let digest = sha256(&content);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (client, base, content, digest) = (
            s.client.clone(),
            s.base.clone(),
            content.clone(),
            digest.clone(),
        );
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                // Monolithic.
                client
                    .post(format!("{base}/v2/ns/app/blobs/uploads/?digest={digest}"))
                    .body(content)
                    .send()
                    .await
                    .unwrap()
            } else {
                // Session, one chunk, close.
                let location = start_upload(&client, &base, "ns/app").await;
                let r = patch_upload(
                    &client,
                    &base,
                    &location,
                    Some("0-99999"),
                    &content[..100_000],
                )
                .await;
                assert_eq!(r.status(), 202);
                client
                    .put(format!("{base}{}", with_digest(&location, &digest)))
                    .body(content[100_000..].to_vec())
                    .send()
                    .await
                    .unwrap()
            }
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_blob_created(&r, "ns/app", &digest);
    }
    assert_eq!(s.pull("ns/app", &digest).await, content);
    assert_eq!(
        stored_in(s.data_dir(), "uploads").await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_chunks_at_one_offset_accept_exactly_one() {
    let s = TestServer::start().await;
    let location = s.upload("ns/app").await;
    let chunks: Vec<Vec<u8>> = (0..8).map(|i| sample(100 + i, 50_000)).collect();
    let mut tasks = Vec::new();
    for chunk in chunks.clone() {
        let (client, base, location) = (s.client.clone(), s.base.clone(), location.clone());
        tasks.push(tokio::spawn(async move {
            let r = racing_patch(&client, &base, &location, "0-49999", &chunk).await;
            (r.status().as_u16(), r.headers().get("range").cloned())
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let (code, range) = t.await.unwrap();
        assert!(code == 202 || code == 416, "chunk {i}: {code}");
        assert_eq!(range.unwrap(), "0-49999", "chunk {i}");
        if code == 202 {
            winners.push(i);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one chunk is accepted: {winners:?}"
    );
    let content = &chunks[winners[0]];
    let digest = sha256(content);
    assert_eq!(header(&s.get(&location).await, "range"), "0-49999");
    assert_blob_created(&s.close(&location, &digest, b"").await, "ns/app", &digest);
    assert_eq!(s.pull("ns/app", &digest).await, *content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sequential_chunks_keep_what_was_acknowledged() {
    let s = TestServer::start().await;
    let location = s.upload("ns/app").await;
    const LEN: usize = 20_000;
    let chunks: Vec<Vec<u8>> = (0..8).map(|i| sample(50 + i, LEN)).collect();
    let mut tasks = Vec::new();
    for (i, chunk) in chunks.clone().into_iter().enumerate() {
        let (client, base, location) = (s.client.clone(), s.base.clone(), location.clone());
        tasks.push(tokio::spawn(async move {
            let range = format!("{}-{}", i * LEN, (i + 1) * LEN - 1);
            let r = racing_patch(&client, &base, &location, &range, &chunk).await;
            r.status().as_u16()
        }));
    }
    let mut accepted = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let code = t.await.unwrap();
        assert!(code == 202 || code == 416, "chunk {i}: {code}");
        if code == 202 {
            accepted.push(i);
        }
    }
    // Only a chunk starting where the upload stood can land, so the accepted ones are a
    // prefix of the sequence, and the session holds exactly them.
    assert_eq!(accepted, (0..accepted.len()).collect::<Vec<_>>());
    assert!(!accepted.is_empty(), "the chunk at offset 0 always lands");
    let content: Vec<u8> = accepted.iter().flat_map(|&i| chunks[i].clone()).collect();
    let r = s.get(&location).await;
    assert_eq!(header(&r, "range"), format!("0-{}", content.len() - 1));
    let digest = sha256(&content);
    assert_blob_created(&s.close(&location, &digest, b"").await, "ns/app", &digest);
    assert_eq!(s.pull("ns/app", &digest).await, content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_streamed_patches_append_whole_chunks() {
    let s = TestServer::start().await;
    let location = s.upload("ns/app").await;
    const LEN: usize = 30_000;
    let chunks: Vec<Vec<u8>> = (0..8).map(|i| sample(200 + i, LEN)).collect();
    let mut tasks = Vec::new();
    for chunk in chunks.clone() {
        let (client, base, location) = (s.client.clone(), s.base.clone(), location.clone());
        tasks.push(tokio::spawn(async move {
            let r = patch_upload(&client, &base, &location, None, &chunk).await;
            assert_eq!(r.status(), 202);
            header(&r, "range").to_string()
        }));
    }
    // Each reply says where its chunk ended, which gives the order they were appended in.
    let mut order = vec![None; chunks.len()];
    for (i, t) in tasks.into_iter().enumerate() {
        let range = t.await.unwrap();
        let end: usize = range.strip_prefix("0-").unwrap().parse().unwrap();
        assert_eq!((end + 1) % LEN, 0, "chunk {i} ended mid-chunk: {range}");
        let slot = (end + 1) / LEN - 1;
        assert!(order[slot].replace(i).is_none(), "two chunks at {slot}");
    }
    let content: Vec<u8> = order
        .iter()
        .flat_map(|i| chunks[i.unwrap()].clone())
        .collect();
    let digest = sha256(&content);
    assert_blob_created(&s.close(&location, &digest, b"").await, "ns/app", &digest);
    assert_eq!(s.pull("ns/app", &digest).await, content);
}
