//! A raw HTTP/1.1 client for the corpus: it sends exactly the bytes a case holds (reqwest would
//! normalize `..`, `%2e` and `//`, and refuses invalid headers) and reports a missing reply as a
//! failure instead of panicking, so one bad case does not hide the others.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one exchange may take before it counts as a hang.
pub const EXCHANGE_GUARD: Duration = Duration::from_secs(20);

/// A reply read off the wire (the harness's raw-connection response).
pub use crate::common::RawResponse as Reply;

/// Who a request claims to be.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The test server's superuser, by Basic.
    Admin,
    /// No `Authorization` header.
    Anonymous,
    /// These exact bytes as the `Authorization` value (possibly not text).
    Raw(Vec<u8>),
}

/// An HTTP request, as bytes to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target, sent as is.
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub auth: Auth,
}

impl Request {
    /// `method target` as the superuser, with no body.
    pub fn new(method: &str, target: impl Into<String>) -> Request {
        Request {
            method: method.to_string(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
            auth: Auth::Admin,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    /// Sets the body (sent with a `Content-Length` unless the case sets its own framing).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets who the request claims to be.
    pub fn auth(mut self, auth: Auth) -> Request {
        self.auth = auth;
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The request's bytes for `host`, always with `Connection: close`.
    pub fn to_bytes(&self, host: &str) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
            self.method, self.target
        )
        .into_bytes();
        let auth = match &self.auth {
            Auth::Admin => Some(crate::common::RAW_EXTRA_HEADERS[0].1.as_bytes().to_vec()),
            Auth::Anonymous => None,
            Auth::Raw(v) => Some(v.clone()),
        };
        if let Some(v) = auth {
            out.extend_from_slice(b"Authorization: ");
            out.extend_from_slice(&v);
            out.extend_from_slice(b"\r\n");
        }
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        let framed = self.has_header("content-length") || self.has_header("transfer-encoding");
        if !framed && (!self.body.is_empty() || matches!(&*self.method, "PUT" | "POST" | "PATCH")) {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Connects to `addr` (`host:port`).
pub async fn connect(addr: &str) -> Result<TcpStream, String> {
    TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// Sends `request` on a fresh connection and reads the reply until the server closes it. The
/// write runs beside the read, so a server that answers before reading a large body (and then
/// closes) is still heard.
pub async fn exchange(addr: &str, request: Vec<u8>) -> Result<Reply, String> {
    let stream = connect(addr).await?;
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        // The server may refuse and close before reading everything; that is not a failure.
        let _ = wr.write_all(&request).await;
        wr
    });
    let read = tokio::time::timeout(EXCHANGE_GUARD, read_to_close(&mut rd)).await;
    // Keep the write half alive until the read is over: dropping it would half-close early.
    let _wr = writer.await;
    match read {
        Err(_) => Err(format!(
            "no complete reply within {} s",
            EXCHANGE_GUARD.as_secs()
        )),
        Ok(buf) => parse(&buf),
    }
}

/// Reads until the peer closes (or resets) the connection.
pub async fn read_to_close(rd: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Parses a complete reply; an empty buffer is a dropped connection.
pub fn parse(buf: &[u8]) -> Result<Reply, String> {
    if buf.is_empty() {
        return Err("connection closed without a reply".into());
    }
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("incomplete reply head: {:?}", String::from_utf8_lossy(buf)))?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "reply head is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest).ok_or("malformed chunked reply body")?
    } else {
        rest.to_vec()
    };
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        // HEAD replies announce the length of a body they do not carry.
        if !body.is_empty() && body.len() != len {
            return Err(format!(
                "reply body has {} bytes, Content-Length says {len}",
                body.len()
            ));
        }
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
