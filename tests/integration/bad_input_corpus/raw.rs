//! Cases no HTTP client library sends, over raw sockets: broken framing and request lines,
//! huge heads, truncated bodies, stalled and trickled bodies, bodies over the limits.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::fixture::Fixture;
use super::gen_v2::good_manifest;
use super::wire::{connect, exchange, parse, read_to_close, Reply, Request, EXCHANGE_GUARD};

/// The outcome of one raw case.
pub struct Outcome {
    pub category: &'static str,
    pub what: String,
    pub result: Result<(), String>,
}

/// What a raw case must be answered with.
enum Want {
    /// Refused by the HTTP layer before berth saw it: this status, no body.
    Http(u16),
    /// An OCI error with this status and code.
    Oci(u16, &'static str),
    /// This status, whatever the body.
    Status(u16),
    /// A management API error with this status.
    Api(u16),
    /// A reply under 500, or the connection closed without one.
    NotServerError,
}

fn judge(reply: Result<Reply, String>, want: &Want) -> Result<(), String> {
    let reply = match (reply, want) {
        (Err(e), Want::NotServerError) if !e.contains("within") => return Ok(()),
        (Err(e), _) => return Err(e),
        (Ok(r), _) => r,
    };
    let text = || {
        String::from_utf8_lossy(&reply.body)
            .chars()
            .take(200)
            .collect::<String>()
    };
    if reply.status >= 500 {
        return Err(format!("server error {}: {}", reply.status, text()));
    }
    let status = match want {
        Want::Http(s) | Want::Oci(s, _) | Want::Status(s) | Want::Api(s) => *s,
        Want::NotServerError => return Ok(()),
    };
    if reply.status != status {
        return Err(format!(
            "status {} instead of {status}: {}",
            reply.status,
            text()
        ));
    }
    match want {
        Want::Http(_) if !reply.body.is_empty() => Err(format!("a body: {}", text())),
        Want::Oci(_, code) => {
            let v: serde_json::Value =
                serde_json::from_slice(&reply.body).map_err(|e| format!("{e}: {}", text()))?;
            match v["errors"][0]["code"].as_str() {
                Some(c) if c == *code => Ok(()),
                other => Err(format!("code {other:?} instead of {code}")),
            }
        }
        Want::Api(_) => {
            let v: serde_json::Value =
                serde_json::from_slice(&reply.body).map_err(|e| format!("{e}: {}", text()))?;
            match v["error_message"].is_string() {
                true => Ok(()),
                false => Err(format!("no error_message: {}", text())),
            }
        }
        _ => Ok(()),
    }
}

fn head(f: &Fixture, request_line: &str, headers: &str) -> Vec<u8> {
    let auth = crate::common::RAW_EXTRA_HEADERS[0].1;
    format!(
        "{request_line}\r\nHost: {}\r\nConnection: close\r\nAuthorization: {auth}\r\n{headers}\r\n",
        f.addr
    )
    .into_bytes()
}

/// Framing, request lines and heads that break HTTP/1.1, and very large heads.
pub async fn framing(f: &Fixture) -> Vec<Outcome> {
    let (upload, host) = (f.upload.clone(), f.addr.clone());
    let manifest = serde_json::to_vec(&good_manifest()).expect("json");
    let tags = "GET /v2/seed/repo/tags/list HTTP/1.1";
    let mut cases: Vec<(String, Vec<u8>, Want)> = vec![
        (
            "1 MiB header".into(),
            head(f, tags, &format!("X-Big: {}\r\n", "b".repeat(1 << 20))),
            Want::Http(431),
        ),
        (
            "100 KiB header".into(),
            head(f, tags, &format!("X-Big: {}\r\n", "b".repeat(100 << 10))),
            Want::Status(200),
        ),
        (
            "150 headers".into(),
            head(
                f,
                tags,
                &(0..150)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>(),
            ),
            Want::Http(431),
        ),
        (
            "5000 headers".into(),
            head(
                f,
                tags,
                &(0..5000)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>(),
            ),
            Want::Http(431),
        ),
        (
            "70 kB path".into(),
            head(
                f,
                &format!("GET /v2/{}/tags/list HTTP/1.1", "a".repeat(70_000)),
                "",
            ),
            Want::Http(414),
        ),
        ("no target".into(), b"GET\r\n\r\n".to_vec(), Want::Http(400)),
        (
            "HTTP/0.9".into(),
            b"GET /v2/\r\n\r\n".to_vec(),
            Want::NotServerError,
        ),
        (
            "garbage line".into(),
            b"GARBAGE\r\n\r\n".to_vec(),
            Want::Http(400),
        ),
        (
            "binary line".into(),
            b"\x00\x01\x02\xff\xfe\r\n\r\n".to_vec(),
            Want::Http(400),
        ),
        (
            "NUL in path".into(),
            head(f, "GET /v2/seed\0/tags/list HTTP/1.1", ""),
            Want::Http(400),
        ),
        (
            "space in path".into(),
            head(f, "GET /v2/se ed/tags/list HTTP/1.1", ""),
            Want::NotServerError,
        ),
        (
            "raw UTF-8 in path".into(),
            head(f, "GET /v2/s\u{e9}ed/tags/list HTTP/1.1", ""),
            Want::NotServerError,
        ),
        (
            "header without colon".into(),
            head(f, tags, "X-Bad\r\n"),
            Want::Http(400),
        ),
        (
            "obsolete line folding".into(),
            head(f, tags, "X-A: a\r\n b\r\n"),
            Want::Http(400),
        ),
        (
            "NUL in a header".into(),
            head(f, tags, "X-A: a\0b\r\n"),
            Want::Http(400),
        ),
        (
            "space before colon".into(),
            head(f, tags, "X-A : a\r\n"),
            Want::Http(400),
        ),
        (
            "bare LF".into(),
            format!("GET /v2/ HTTP/1.1\nHost: {host}\nConnection: close\n\n").into_bytes(),
            Want::NotServerError,
        ),
        (
            "absolute form".into(),
            head(
                f,
                "GET http://evil.example/v2/seed/repo/tags/list HTTP/1.1",
                "",
            ),
            Want::Status(200),
        ),
        (
            "asterisk form".into(),
            head(f, "OPTIONS * HTTP/1.1", ""),
            Want::NotServerError,
        ),
        (
            "HTTP/1.0 without Host".into(),
            b"GET /v2/seed/repo/tags/list HTTP/1.0\r\n\r\n".to_vec(),
            Want::Oci(401, "UNAUTHORIZED"),
        ),
        (
            "HTTP/2 preface on HTTP/1".into(),
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00garbage".to_vec(),
            Want::NotServerError,
        ),
        (
            "TLS hello on plain HTTP".into(),
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            Want::NotServerError,
        ),
    ];
    let huge_auth = format!("Authorization: Basic {}\r\n", "A".repeat(100 << 10));
    let mut auth_req = format!("GET /v2/seed/repo/tags/list HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{huge_auth}\r\n").into_bytes();
    cases.push((
        "100 KiB Authorization".into(),
        std::mem::take(&mut auth_req),
        Want::Oci(401, "UNAUTHORIZED"),
    ));
    let big_type = format!(
        "Content-Type: application/vnd.{}+json\r\nContent-Length: {}\r\n",
        "x".repeat(100 << 10),
        manifest.len()
    );
    let mut put = head(f, "PUT /v2/seed/repo/manifests/corpus HTTP/1.1", &big_type);
    put.extend_from_slice(&manifest);
    cases.push((
        "100 KiB Content-Type".into(),
        put,
        Want::Oci(400, "MANIFEST_INVALID"),
    ));
    // Bodies whose framing is invalid, on every endpoint that reads one.
    let targets = [
        format!("PATCH {upload} HTTP/1.1"),
        "PUT /v2/seed/repo/manifests/corpus HTTP/1.1".to_string(),
        "POST /v2/seed/repo/blobs/uploads/?digest=sha256:0000000000000000000000000000000000000000000000000000000000000000 HTTP/1.1".into(),
        "POST /v2/auth HTTP/1.1".into(),
        "POST /api/v1/organization/ HTTP/1.1".into(),
        "POST /signin HTTP/1.1".into(),
    ];
    for line in &targets {
        for (what, framing) in [
            ("Content-Length abc", "Content-Length: abc\r\n"),
            ("Content-Length -1", "Content-Length: -1\r\n"),
            ("Content-Length +10", "Content-Length: +10\r\n"),
            ("Content-Length list", "Content-Length: 10, 11\r\n"),
            (
                "Content-Length overflow",
                "Content-Length: 99999999999999999999999\r\n",
            ),
            (
                "two Content-Lengths",
                "Content-Length: 10\r\nContent-Length: 11\r\n",
            ),
            ("Transfer-Encoding gzip", "Transfer-Encoding: gzip\r\n"),
            (
                "Transfer-Encoding chunked, gzip",
                "Transfer-Encoding: chunked, gzip\r\n",
            ),
        ] {
            let mut bytes = head(f, line, framing);
            bytes.extend_from_slice(b"0123456789");
            cases.push((format!("{what}: {line}"), bytes, Want::Http(400)));
        }
        // Chunked twice is chunked; the body is then not valid chunked, which berth refuses.
        let mut bytes = head(
            f,
            line,
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        );
        bytes.extend_from_slice(b"0123456789");
        cases.push((
            format!("Transfer-Encoding twice: {line}"),
            bytes,
            Want::Status(400),
        ));
        // Both framings at once (request smuggling): refused, or read as chunked.
        let mut bytes = head(
            f,
            line,
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        );
        bytes.extend_from_slice(b"0\r\n\r\nGET /v2/ HTTP/1.1\r\n\r\n");
        cases.push((
            format!("Content-Length with chunked: {line}"),
            bytes,
            Want::NotServerError,
        ));
        for (what, body) in [
            ("bad chunk size", &b"zz\r\nabc\r\n0\r\n\r\n"[..]),
            (
                "chunk size overflow",
                b"FFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
            ),
            ("chunk longer than its size", b"3\r\nabcdef\r\n0\r\n\r\n"),
        ] {
            let mut bytes = head(f, line, "Transfer-Encoding: chunked\r\n");
            bytes.extend_from_slice(body);
            cases.push((format!("{what}: {line}"), bytes, Want::NotServerError));
        }
    }
    let mut out = Vec::new();
    for (what, bytes, want) in cases {
        let reply = exchange(&f.addr, bytes).await;
        out.push(Outcome {
            category: "http framing",
            what,
            result: judge(reply, &want),
        });
    }
    out
}

/// The `seed/repo` session's offset, read by a request that waits for the session's lock
/// (a PATCH far out of order, which changes nothing): it returns only after any request still
/// writing to the session is done.
pub async fn probe_offset(f: &Fixture) -> Result<String, String> {
    let req = Request::new("PATCH", f.upload.clone())
        .header("Content-Range", "999999-999999")
        .body(b"x".to_vec());
    let reply = exchange(&f.addr, req.to_bytes(&f.addr)).await?;
    match (reply.status, reply.header("range")) {
        (416, Some(r)) => Ok(r.to_string()),
        (s, r) => Err(format!("probe answered {s} with range {r:?}")),
    }
}

/// Sends `bytes` (a head announcing more body than follows), closes the write side, and reads
/// whatever the server answers.
async fn send_truncated(f: &Fixture, bytes: Vec<u8>) -> Result<Reply, String> {
    let stream = connect(&f.addr).await?;
    let (mut rd, mut wr) = stream.into_split();
    let _ = wr.write_all(&bytes).await;
    let _ = wr.shutdown().await;
    let buf = tokio::time::timeout(EXCHANGE_GUARD, read_to_close(&mut rd))
        .await
        .map_err(|_| "no reply or close within the guard".to_string())?;
    parse(&buf)
}

/// Bodies cut short: the connection closes before the announced length arrived.
pub async fn truncated(f: &Fixture) -> Vec<Outcome> {
    let upload = f.upload.clone();
    let zeros = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let hundred = crate::common::sha256(&[b'a'; 100]);
    let cases: Vec<(&str, String, &str, Vec<u8>)> = vec![
        (
            "PATCH, 10 of 100 bytes",
            format!("PATCH {upload} HTTP/1.1"),
            "Content-Length: 100\r\n",
            vec![b'a'; 10],
        ),
        (
            "PATCH with a range, 10 of 100 bytes",
            format!("PATCH {upload} HTTP/1.1"),
            "Content-Range: 10-109\r\nContent-Length: 100\r\n",
            vec![b'a'; 10],
        ),
        (
            "PATCH, chunked, cut inside a chunk",
            format!("PATCH {upload} HTTP/1.1"),
            "Transfer-Encoding: chunked\r\n",
            b"5\r\nabcde\r\n64\r\nabc".to_vec(),
        ),
        (
            "PUT closing the upload, 10 of 100 bytes",
            format!("PUT {upload}?digest={zeros} HTTP/1.1"),
            "Content-Length: 100\r\n",
            vec![b'a'; 10],
        ),
        (
            "monolithic POST, 50 of 100 bytes",
            format!("POST /v2/seed/repo/blobs/uploads/?digest={hundred} HTTP/1.1"),
            "Content-Length: 100\r\n",
            vec![b'a'; 50],
        ),
        (
            "manifest, 100 of 1000 bytes",
            "PUT /v2/seed/repo/manifests/corpus HTTP/1.1".into(),
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1000\r\n",
            b"{\"schemaVersion\":2,".to_vec(),
        ),
        (
            "management JSON, cut",
            "POST /api/v1/organization/ HTTP/1.1".into(),
            "Content-Type: application/json\r\nContent-Length: 100\r\n",
            b"{\"name\":\"trunc".to_vec(),
        ),
        (
            "token form, cut",
            "POST /v2/auth HTTP/1.1".into(),
            "Content-Length: 100\r\n",
            b"scope=repository:seed".to_vec(),
        ),
    ];
    let mut out = Vec::new();
    for (what, line, headers, body) in cases {
        let mut bytes = head(f, &line, headers);
        bytes.extend_from_slice(&body);
        let mut result = judge(send_truncated(f, bytes).await, &Want::NotServerError);
        if result.is_ok() {
            result = match probe_offset(f).await {
                Ok(r) if r == "0-9" => Ok(()),
                Ok(r) => Err(format!("the upload now stands at {r}, not 0-9")),
                Err(e) => Err(e),
            };
        }
        out.push(Outcome {
            category: "truncated bodies",
            what: what.into(),
            result,
        });
    }
    out
}

/// Bodies that stall or trickle. A stalled body must end in an error after the configured
/// idle timeout, must not block other clients meanwhile, and must leave the upload as it was.
pub async fn slow(f: &Fixture, idle: Duration) -> Vec<Outcome> {
    let mut out = Vec::new();
    let upload = f.upload.clone();
    let stalls: Vec<(&str, String, &str, Vec<u8>, &'static str)> = vec![
        (
            "stalled PATCH",
            format!("PATCH {upload} HTTP/1.1"),
            "Content-Length: 10\r\n",
            b"a".to_vec(),
            "BLOB_UPLOAD_INVALID",
        ),
        (
            "stalled manifest",
            "PUT /v2/seed/repo/manifests/corpus HTTP/1.1".into(),
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 500\r\n",
            b"{\"schemaVersion\":".to_vec(),
            "MANIFEST_INVALID",
        ),
        (
            "stalled monolithic POST",
            format!(
                "POST /v2/seed/repo/blobs/uploads/?digest={} HTTP/1.1",
                f.blob
            ),
            "Content-Length: 10\r\n",
            b"seed".to_vec(),
            "BLOB_UPLOAD_INVALID",
        ),
    ];
    for (what, line, headers, body, code) in stalls {
        let mut bytes = head(f, &line, headers);
        bytes.extend_from_slice(&body);
        let started = Instant::now();
        let stream = match connect(&f.addr).await {
            Ok(s) => s,
            Err(e) => {
                out.push(Outcome {
                    category: "slow bodies",
                    what: what.into(),
                    result: Err(e),
                });
                continue;
            }
        };
        let (mut rd, mut wr) = stream.into_split();
        let _ = wr.write_all(&bytes).await;
        // The write half stays open and silent: the body stalls.
        let stalled = tokio::spawn(async move {
            let buf = tokio::time::timeout(EXCHANGE_GUARD, read_to_close(&mut rd)).await;
            drop(wr);
            buf
        });
        let mut result = others_are_served(f).await;
        let reply = match stalled.await {
            Ok(Ok(buf)) => parse(&buf),
            Ok(Err(_)) => Err("the stalled request was never ended".into()),
            Err(e) => Err(format!("reader task: {e}")),
        };
        let elapsed = started.elapsed();
        if result.is_ok() {
            result = judge(reply, &Want::Oci(400, code));
        }
        if result.is_ok() && elapsed + Duration::from_millis(200) < idle {
            result = Err(format!(
                "ended after {elapsed:?}, before the idle timeout {idle:?}"
            ));
        }
        if result.is_ok() {
            result = match probe_offset(f).await {
                Ok(r) if r == "0-9" => Ok(()),
                Ok(r) => Err(format!("the upload now stands at {r}")),
                Err(e) => Err(e),
            };
        }
        out.push(Outcome {
            category: "slow bodies",
            what: format!("{what} ends after {elapsed:.1?}"),
            result,
        });
    }
    // A body trickled slower than any burst but faster than the idle timeout is read whole
    // (and this one is then refused for what it says, not for its pace).
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":7}"#;
    let mut bytes = head(
        f,
        "PUT /v2/seed/repo/manifests/corpus HTTP/1.1",
        &format!(
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n",
            body.len()
        ),
    );
    let result = async {
        let stream = connect(&f.addr).await?;
        let (mut rd, mut wr) = stream.into_split();
        wr.write_all(&bytes).await.map_err(|e| e.to_string())?;
        bytes.clear();
        let pace = idle / 4;
        for piece in body.chunks(body.len() / 5 + 1) {
            tokio::time::sleep(pace).await;
            wr.write_all(piece).await.map_err(|e| e.to_string())?;
        }
        let buf = tokio::time::timeout(EXCHANGE_GUARD, read_to_close(&mut rd))
            .await
            .map_err(|_| "no reply".to_string())?;
        let reply = parse(&buf)?;
        let text = String::from_utf8_lossy(&reply.body).to_string();
        if text.contains("reading the manifest body failed") {
            return Err(format!("a trickled body was cut off: {text}"));
        }
        judge(Ok(reply), &Want::Oci(400, "MANIFEST_INVALID"))
    }
    .await;
    out.push(Outcome {
        category: "slow bodies",
        what: "trickled manifest".into(),
        result,
    });
    // A head that never ends: other clients are still served (berth has no head timeout; the
    // client gives up here).
    let result = async {
        let mut stream = connect(&f.addr).await?;
        stream
            .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .map_err(|e| e.to_string())?;
        let served = others_are_served(f).await;
        drop(stream);
        served
    }
    .await;
    out.push(Outcome {
        category: "slow bodies",
        what: "stalled head".into(),
        result,
    });
    out
}

/// Other clients get their answers promptly while something stalls.
async fn others_are_served(f: &Fixture) -> Result<(), String> {
    let guard = Duration::from_secs(5);
    for req in [
        Request::new("GET", "/v2/"),
        Request::new("HEAD", format!("/v2/seed/repo/blobs/{}", f.blob)),
        Request::new("GET", f.upload.clone()),
    ] {
        let started = Instant::now();
        let reply = tokio::time::timeout(guard, exchange(&f.addr, req.to_bytes(&f.addr)))
            .await
            .map_err(|_| format!("{} {} waited over {guard:?}", req.method, req.target))??;
        if !(200..300).contains(&reply.status) {
            return Err(format!(
                "{} {} answered {} while another client stalled",
                req.method, req.target, reply.status
            ));
        }
        if started.elapsed() > guard {
            return Err("too slow while another client stalled".into());
        }
    }
    Ok(())
}

/// Bodies over berth's limits.
pub async fn huge(f: &Fixture, manifest_limit: usize) -> Vec<Outcome> {
    let over = vec![b' '; manifest_limit + 1024];
    let ct = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n";
    let put = "PUT /v2/seed/repo/manifests/corpus HTTP/1.1";
    let mut chunked = head(f, put, &format!("{ct}Transfer-Encoding: chunked\r\n"));
    for piece in over.chunks(16 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let with_length = |line: &str, headers: &str, body: &[u8], announced: usize| {
        let mut bytes = head(
            f,
            line,
            &format!("{headers}Content-Length: {announced}\r\n"),
        );
        bytes.extend_from_slice(body);
        bytes
    };
    let wrong_repo = format!(
        "PATCH /v2/acme/app/blobs/uploads/{} HTTP/1.1",
        f.upload_id()
    );
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        (
            "manifest over the limit",
            with_length(put, ct, &over, over.len()),
            Want::Oci(413, "SIZE_INVALID"),
        ),
        (
            "manifest over the limit, chunked",
            chunked,
            Want::Oci(413, "SIZE_INVALID"),
        ),
        (
            "manifest announcing 10 GiB",
            with_length(put, ct, &over[..64 * 1024], 10 << 30),
            Want::Oci(413, "SIZE_INVALID"),
        ),
        (
            "token form of 1 MiB",
            with_length("POST /v2/auth HTTP/1.1", "", &vec![b'a'; 1 << 20], 1 << 20),
            Want::Oci(400, "SIZE_INVALID"),
        ),
        (
            "management JSON of 1 MiB",
            with_length(
                "POST /api/v1/organization/ HTTP/1.1",
                "Content-Type: application/json\r\n",
                &vec![b' '; 1 << 20],
                1 << 20,
            ),
            Want::Api(400),
        ),
        (
            "sign-in form of 3 MiB",
            with_length(
                "POST /signin HTTP/1.1",
                "Content-Type: application/x-www-form-urlencoded\r\n",
                &vec![b'a'; 3 << 20],
                3 << 20,
            ),
            Want::Status(400),
        ),
        (
            "5 MiB chunk to another repository's session",
            with_length(&wrong_repo, "", &vec![b'a'; 5 << 20], 5 << 20),
            Want::Oci(404, "BLOB_UPLOAD_UNKNOWN"),
        ),
    ];
    let mut out = Vec::new();
    for (what, bytes, want) in cases {
        let reply = exchange(&f.addr, bytes).await;
        out.push(Outcome {
            category: "huge bodies",
            what: what.into(),
            result: judge(reply, &want),
        });
    }
    out
}
