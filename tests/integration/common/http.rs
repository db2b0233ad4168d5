//! HTTP-level helpers for the protocol tests: error-body checks, upload shortcuts, a raw
//! HTTP/1.1 client for requests reqwest would normalize, and a data-directory snapshot.

use std::path::Path;

use sha2::Digest as _;

/// `sha512:<hex>` of `bytes`.
pub fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}

/// Asserts an error response: `status`, a JSON body `{"errors":[{"code","message",..}]}` whose
/// first code is `code`. Returns the body.
pub async fn assert_error(r: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    let url = r.url().to_string();
    assert_eq!(r.status(), status, "status of {url}");
    let text = r.text().await.expect("error body");
    let v = check_error_body(text.as_bytes());
    assert_eq!(v["errors"][0]["code"], code, "error code of {url}: {text}");
    v
}

/// The error codes the distribution spec allows in an error body ("The `code` field MUST be one
/// of the following").
pub const SPEC_ERROR_CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// Checks that `body` is an OCI error body (`{"errors":[{"code":..,"message":..}]}`, every code
/// one of [`SPEC_ERROR_CODES`], every message a string) and returns it parsed.
pub fn check_error_body(body: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(body);
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text:?}"));
    let errors = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {text}"));
    assert!(!errors.is_empty(), "empty errors array: {text}");
    for e in errors {
        let code = e["code"].as_str().unwrap_or_default();
        assert!(
            SPEC_ERROR_CODES.contains(&code),
            "errors[].code must be one of the distribution spec's codes: {text}"
        );
        assert!(
            e["message"].is_string(),
            "errors[].message must be a string: {text}"
        );
    }
    v
}

/// The text of a response header, panicking when it is absent.
pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name} in {} reply", r.url()))
        .to_str()
        .expect("header text")
}

/// Opens an upload session in `repo`, asserts 202 and returns its `Location` (a path).
pub async fn start_upload(client: &reqwest::Client, base: &str, repo: &str) -> String {
    let r = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("start upload");
    assert_eq!(r.status(), 202, "start upload in {repo}");
    header(&r, "location").to_string()
}

/// `location` with `?digest=` (or `&digest=`) appended.
pub fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// Reads a blob from `repo`, asserting 200.
pub async fn pull_blob(client: &reqwest::Client, base: &str, repo: &str, digest: &str) -> Vec<u8> {
    let r = client
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .expect("pull blob");
    assert_eq!(r.status(), 200, "pull {digest} from {repo}");
    r.bytes().await.expect("blob body").to_vec()
}

/// Every repository in the catalog.
pub async fn catalog(client: &reqwest::Client, base: &str) -> Vec<String> {
    let r = client
        .get(format!("{base}/v2/_catalog"))
        .send()
        .await
        .expect("catalog");
    assert_eq!(r.status(), 200, "catalog");
    let v: serde_json::Value = r.json().await.expect("catalog JSON");
    v["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .map(|n| n.as_str().expect("name").to_string())
        .collect()
}

/// Every file and directory under `dir` (relative path, and size for files; directories
/// end with `/` and have size 0), except the SQLite files `metadata.db*`.
pub fn data_files(dir: &Path) -> std::collections::BTreeMap<String, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, u64>) {
        for entry in std::fs::read_dir(dir).expect("read data dir") {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("metadata.db")
            {
                continue;
            }
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                out.insert(format!("{rel}/"), 0);
                walk(root, &path, out);
            } else {
                out.insert(rel, meta.len());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A response read off a raw TCP connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` (a complete HTTP/1.1 request, which should say `Connection: close`) over a
/// fresh connection and reads the response until the server closes it. Used where reqwest
/// would normalize the request (dot segments, `%2e`, invalid headers).
pub async fn raw_send(base: &str, request: &[u8]) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.strip_prefix("http://").expect("http base");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading a body it refuses; that is fine.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "server did not close the connection");
    parse_raw_response(&buf)
}

fn parse_raw_response(buf: &[u8]) -> RawResponse {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head = std::str::from_utf8(&buf[..end]).expect("response head is text");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        let mut rest = rest;
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size_text = std::str::from_utf8(&rest[..line_end]).expect("chunk size");
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("chunk size hex");
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Headers every [`raw`] request carries besides `Host`, `Connection` and `Content-Length`:
/// the test servers' superuser credentials (admin:berth-test-password).
pub const RAW_EXTRA_HEADERS: &[(&str, &str)] = &[(
    "Authorization",
    "Basic YWRtaW46YmVydGgtdGVzdC1wYXNzd29yZA==",
)];

/// Sends `method target` with `headers` and `body` over a raw connection. `Host`,
/// `Connection: close` and (when `body` is not empty) `Content-Length` are added.
pub async fn raw(
    base: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let host = base.strip_prefix("http://").expect("http base");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in RAW_EXTRA_HEADERS.iter().chain(headers) {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw_send(base, &bytes).await
}

/// `len` deterministic bytes that differ with `seed`, so every test blob is distinct.
pub fn sample(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(u64::from(seed) * 97) as u8
                ^ seed
        })
        .collect()
}

/// Sends a manifest with `PUT /v2/<repo>/manifests/<reference>`.
pub async fn put_manifest(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    content_type: &str,
    body: &[u8],
) -> reqwest::Response {
    client
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .expect("put manifest")
}

/// Shorthands for one-line requests against a test server, `path` starting at `/v2`.
impl super::TestServer {
    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// `HEAD path`.
    pub async fn head(&self, path: &str) -> reqwest::Response {
        self.client.head(self.url(path)).send().await.expect("HEAD")
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: &[u8]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/octet-stream")
            .body(body.to_vec())
            .send()
            .await
            .expect("POST")
    }

    /// `PATCH path` with `body` and, when given, a `Content-Range`.
    pub async fn patch(&self, path: &str, range: Option<&str>, body: &[u8]) -> reqwest::Response {
        patch_upload(&self.client, &self.base, path, range, body).await
    }

    /// `PUT path` with `body` and, when given, a `Content-Range` (an upload's last chunk).
    pub async fn put(&self, path: &str, range: Option<&str>, body: &[u8]) -> reqwest::Response {
        let mut req = self
            .client
            .put(self.url(path))
            .header("content-type", "application/octet-stream")
            .body(body.to_vec());
        if let Some(range) = range {
            req = req.header("content-range", range);
        }
        req.send().await.expect("PUT")
    }

    /// Opens an upload session in `repo` (asserting 202) and returns its `Location`.
    pub async fn upload(&self, repo: &str) -> String {
        start_upload(&self.client, &self.base, repo).await
    }

    /// Pushes a blob in one POST (asserting 201) and returns its digest.
    pub async fn push(&self, repo: &str, bytes: &[u8]) -> String {
        super::push_blob(&self.client, &self.base, repo, bytes).await
    }

    /// Reads a blob from `repo`, asserting 200.
    pub async fn pull(&self, repo: &str, digest: &str) -> Vec<u8> {
        pull_blob(&self.client, &self.base, repo, digest).await
    }
}

/// `PATCH base+path` with `body` and, when given, a `Content-Range`.
pub async fn patch_upload(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    range: Option<&str>,
    body: &[u8],
) -> reqwest::Response {
    let mut req = client
        .patch(format!("{base}{path}"))
        .header("content-type", "application/octet-stream")
        .body(body.to_vec());
    if let Some(range) = range {
        req = req.header("content-range", range);
    }
    req.send().await.expect("PATCH")
}

impl super::TestServer {
    /// Closes an upload with `PUT <location>?digest=` and an optional last chunk (no range).
    pub async fn close(&self, location: &str, digest: &str, body: &[u8]) -> reqwest::Response {
        self.put(&with_digest(location, digest), None, body).await
    }
}

/// Asserts a 202 reply to a chunk for the session at `location`, now holding `len` bytes.
pub fn assert_chunk_accepted(r: &reqwest::Response, location: &str, len: usize) {
    assert_eq!(r.status(), 202, "PATCH {location}");
    assert_eq!(header(r, "location"), location);
    assert_eq!(header(r, "range"), format!("0-{}", len.max(1) - 1));
    let id = location.rsplit('/').next().expect("upload id");
    assert_eq!(header(r, "docker-upload-uuid"), id);
}

/// Asserts a 201 blob-created reply in `repo`.
pub fn assert_blob_created(r: &reqwest::Response, repo: &str, digest: &str) {
    assert_eq!(r.status(), 201, "create {digest} in {repo}");
    assert_eq!(header(r, "location"), format!("/v2/{repo}/blobs/{digest}"));
    assert_eq!(header(r, "docker-content-digest"), digest);
}
