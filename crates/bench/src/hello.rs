//! The ceiling: a bare axum server answering every /v2 GET with a manifest and a registry's
//! headers, doing no other work. Half its rate is the target for berth's manifest reads.

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::content::MANIFEST_TYPE;
use crate::scenarios::hello_manifest;

pub async fn serve(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let (manifest, digest) = hello_manifest();
    let digest = HeaderValue::from_str(&digest)?;
    let answer = move || {
        let (manifest, digest) = (manifest.clone(), digest.clone());
        async move {
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(MANIFEST_TYPE),
                    ),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        digest,
                    ),
                ],
                manifest,
            )
                .into_response()
        }
    };
    let app = Router::new()
        .route("/v2/", get(|| async { "{}" }))
        .route("/v2/{*path}", get(answer));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
