//! Registry operations, each a sequence of distribution-spec requests on one connection. Every
//! status is checked, so a registry that answers wrongly counts errors, not speed.

use anyhow::{anyhow, bail};
use bytes::Bytes;
use http::{Method, StatusCode};

use crate::client::{Call, Conn, Payload, Reply};
use crate::content::{Image, Prepared, CONFIG_TYPE, MANIFEST_TYPE};

/// What an operation moved: HTTP requests made and body bytes sent or received.
#[derive(Clone, Copy, Default)]
pub struct Moved {
    pub requests: u64,
    pub bytes: u64,
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn expect(reply: &Reply, want: StatusCode, what: &str) -> anyhow::Result<()> {
    if reply.status != want {
        bail!("{what}: expected {want}, got {}", reply.status);
    }
    Ok(())
}

/// The path of an upload `Location`, absolute or relative.
fn location(reply: &Reply) -> anyhow::Result<String> {
    let l = reply
        .header("location")
        .ok_or_else(|| anyhow!("upload answer without Location"))?;
    Ok(
        match l.strip_prefix("http://").or(l.strip_prefix("https://")) {
            Some(rest) => rest
                .find('/')
                .map(|i| rest[i..].to_string())
                .unwrap_or_default(),
            None => l.to_string(),
        },
    )
}

fn with_query(path: &str, key: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{key}={value}")
}

async fn start_upload(conn: &mut Conn, repo: &str) -> anyhow::Result<String> {
    let reply = conn
        .send(
            Call::new(Method::POST, format!("/v2/{repo}/blobs/uploads/")).scope(push_scope(repo)),
            false,
        )
        .await?;
    expect(&reply, StatusCode::ACCEPTED, "start upload")?;
    location(&reply)
}

/// POST, then one PUT carrying the whole blob (the monolithic upload).
pub async fn push_blob(conn: &mut Conn, repo: &str, blob: &Prepared) -> anyhow::Result<Moved> {
    let upload = start_upload(conn, repo).await?;
    let reply = conn
        .send(
            Call::new(Method::PUT, with_query(&upload, "digest", &blob.digest))
                .scope(push_scope(repo))
                .header("content-type", "application/octet-stream")
                .payload(Payload::Blob {
                    blob: blob.blob,
                    start: 0,
                    end: blob.blob.size,
                }),
            false,
        )
        .await?;
    expect(&reply, StatusCode::CREATED, "finish upload")?;
    Ok(Moved {
        requests: 2,
        bytes: blob.blob.size,
    })
}

/// POST, a PATCH per `chunk` bytes, then a PUT without a body.
pub async fn push_blob_chunked(
    conn: &mut Conn,
    repo: &str,
    blob: &Prepared,
    chunk: u64,
) -> anyhow::Result<Moved> {
    let mut upload = start_upload(conn, repo).await?;
    let mut at = 0;
    let mut requests = 1;
    while at < blob.blob.size {
        let end = (at + chunk).min(blob.blob.size);
        let reply = conn
            .send(
                Call::new(Method::PATCH, upload.clone())
                    .scope(push_scope(repo))
                    .header("content-type", "application/octet-stream")
                    .header("content-range", &format!("{at}-{}", end - 1))
                    .payload(Payload::Blob {
                        blob: blob.blob,
                        start: at,
                        end,
                    }),
                false,
            )
            .await?;
        expect(&reply, StatusCode::ACCEPTED, "upload chunk")?;
        upload = location(&reply)?;
        requests += 1;
        at = end;
    }
    let reply = conn
        .send(
            Call::new(Method::PUT, with_query(&upload, "digest", &blob.digest))
                .scope(push_scope(repo)),
            false,
        )
        .await?;
    expect(&reply, StatusCode::CREATED, "finish chunked upload")?;
    Ok(Moved {
        requests: requests + 1,
        bytes: blob.blob.size,
    })
}

/// Pushes small bytes (a config) as a blob.
pub async fn push_bytes(
    conn: &mut Conn,
    repo: &str,
    bytes: &Bytes,
    digest: &str,
) -> anyhow::Result<Moved> {
    let upload = start_upload(conn, repo).await?;
    let reply = conn
        .send(
            Call::new(Method::PUT, with_query(&upload, "digest", digest))
                .scope(push_scope(repo))
                .header("content-type", "application/octet-stream")
                .payload(Payload::Bytes(bytes.clone())),
            false,
        )
        .await?;
    expect(&reply, StatusCode::CREATED, "finish upload")?;
    Ok(Moved {
        requests: 2,
        bytes: bytes.len() as u64,
    })
}

/// GETs a blob (following a redirect to storage) and checks its length.
pub async fn pull_blob(conn: &mut Conn, repo: &str, blob: &Prepared) -> anyhow::Result<Moved> {
    let reply = conn
        .send(
            Call::new(Method::GET, format!("/v2/{repo}/blobs/{}", blob.digest))
                .scope(pull_scope(repo)),
            false,
        )
        .await?;
    expect(&reply, StatusCode::OK, "pull blob")?;
    if reply.body_len != blob.blob.size {
        bail!(
            "pulled {} bytes of a {}-byte blob",
            reply.body_len,
            blob.blob.size
        );
    }
    Ok(Moved {
        requests: 1 + u64::from(reply.redirects),
        bytes: reply.body_len,
    })
}

pub async fn put_manifest(
    conn: &mut Conn,
    repo: &str,
    reference: &str,
    manifest: &Bytes,
) -> anyhow::Result<Moved> {
    let reply = conn
        .send(
            Call::new(Method::PUT, format!("/v2/{repo}/manifests/{reference}"))
                .scope(push_scope(repo))
                .header("content-type", MANIFEST_TYPE)
                .payload(Payload::Bytes(manifest.clone())),
            false,
        )
        .await?;
    expect(&reply, StatusCode::CREATED, "put manifest")?;
    Ok(Moved {
        requests: 1,
        bytes: manifest.len() as u64,
    })
}

/// GET (or HEAD) a manifest by tag, checking the digest header.
pub async fn get_manifest(
    conn: &mut Conn,
    repo: &str,
    tag: &str,
    head: bool,
    digest: &str,
) -> anyhow::Result<Moved> {
    let method = if head { Method::HEAD } else { Method::GET };
    let reply = conn
        .send(
            Call::new(method, format!("/v2/{repo}/manifests/{tag}"))
                .scope(pull_scope(repo))
                .header("accept", MANIFEST_TYPE),
            false,
        )
        .await?;
    expect(&reply, StatusCode::OK, "get manifest")?;
    if reply.header("docker-content-digest") != Some(digest) {
        bail!(
            "manifest answered with digest {:?}, not {digest}",
            reply.header("docker-content-digest")
        );
    }
    Ok(Moved {
        requests: 1,
        bytes: reply.body_len,
    })
}

/// The `Link: <…>; rel="next"` target of a paginated list, if any.
fn next_page(reply: &Reply) -> Option<String> {
    let link = reply.header("link")?;
    let start = link.find('<')? + 1;
    let end = link[start..].find('>')? + start;
    Some(link[start..end].to_string())
}

/// GET the whole tag list, following `Link` pages as clients do; the bodies must add up to at
/// least `min_len` bytes.
pub async fn list_tags(conn: &mut Conn, repo: &str, min_len: u64) -> anyhow::Result<Moved> {
    let mut path = format!("/v2/{repo}/tags/list");
    let mut moved = Moved::default();
    loop {
        let reply = conn
            .send(Call::new(Method::GET, path).scope(pull_scope(repo)), false)
            .await?;
        expect(&reply, StatusCode::OK, "list tags")?;
        moved.requests += 1;
        moved.bytes += reply.body_len;
        match next_page(&reply) {
            Some(next) => path = next,
            None => break,
        }
    }
    if moved.bytes < min_len {
        bail!(
            "tag list of {} bytes, expected at least {min_len}",
            moved.bytes
        );
    }
    Ok(moved)
}

/// The number of tags the registry lists for `repo` and the bytes of the list (read once, to
/// check the setup).
pub async fn count_tags(conn: &mut Conn, repo: &str) -> anyhow::Result<(usize, u64)> {
    let mut path = format!("/v2/{repo}/tags/list");
    let (mut count, mut bytes) = (0, 0);
    loop {
        let reply = conn
            .send(Call::new(Method::GET, path).scope(pull_scope(repo)), true)
            .await?;
        expect(&reply, StatusCode::OK, "list tags")?;
        let list: serde_json::Value = serde_json::from_slice(&reply.body)?;
        count += list["tags"].as_array().map_or(0, |t| t.len());
        bytes += reply.body_len;
        match next_page(&reply) {
            Some(next) => path = next,
            None => return Ok((count, bytes)),
        }
    }
}

pub async fn catalog(conn: &mut Conn, n: usize) -> anyhow::Result<Moved> {
    let reply = conn
        .send(
            Call::new(Method::GET, format!("/v2/_catalog?n={n}"))
                .scope("registry:catalog:*".into()),
            false,
        )
        .await?;
    expect(&reply, StatusCode::OK, "catalog")?;
    Ok(Moved {
        requests: 1,
        bytes: reply.body_len,
    })
}

/// Pushes a whole small image: config, layers, then the manifest under `tag`.
pub async fn push_image(
    conn: &mut Conn,
    repo: &str,
    tag: &str,
    image: &Image,
) -> anyhow::Result<Moved> {
    let mut moved = push_bytes(conn, repo, &image.config, &image.config_digest).await?;
    for layer in &image.layers {
        let m = push_blob(conn, repo, layer).await?;
        moved.requests += m.requests;
        moved.bytes += m.bytes;
    }
    let m = put_manifest(conn, repo, tag, &image.manifest).await?;
    moved.requests += m.requests;
    moved.bytes += m.bytes;
    Ok(moved)
}

/// Pulls a whole small image by tag: manifest, config, layers.
pub async fn pull_image(
    conn: &mut Conn,
    repo: &str,
    tag: &str,
    image: &Image,
) -> anyhow::Result<Moved> {
    let mut moved = get_manifest(conn, repo, tag, false, &image.manifest_digest).await?;
    let reply = conn
        .send(
            Call::new(
                Method::GET,
                format!("/v2/{repo}/blobs/{}", image.config_digest),
            )
            .scope(pull_scope(repo))
            .header("accept", CONFIG_TYPE),
            false,
        )
        .await?;
    expect(&reply, StatusCode::OK, "pull config")?;
    moved.requests += 1 + u64::from(reply.redirects);
    moved.bytes += reply.body_len;
    for layer in &image.layers {
        let m = pull_blob(conn, repo, layer).await?;
        moved.requests += m.requests;
        moved.bytes += m.bytes;
    }
    Ok(moved)
}
