//! `ApiError`: the only producer of /v2 error bodies.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use oci::ErrorCode;
use serde_json::{json, Value};

use crate::registry::RegistryError;

/// An error answered on /v2 as `{"errors":[{"code","message","detail"}]}` with the status that
/// belongs to its code.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    code: ErrorCode,
    message: String,
    detail: Option<Value>,
    headers: HeaderMap,
    /// The cause of a server-side failure, logged once and never sent to the client.
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    /// An error with a code and a message for the client.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(Box::new(Inner {
            code,
            message: message.into(),
            detail: None,
            headers: HeaderMap::new(),
            source: None,
        }))
    }

    /// Adds a machine-readable detail object.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.0.detail = Some(detail);
        self
    }

    /// Adds a response header (e.g. `Range` on a 416 for an upload).
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value) {
            self.0.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }

    /// A server-side failure; the client sees a generic message.
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError(Box::new(Inner {
            code: ErrorCode::Internal,
            message: "internal server error".into(),
            detail: None,
            headers: HeaderMap::new(),
            source: Some(Box::new(source)),
        }))
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The message for the client.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let inner = *self.0;
        let status =
            StatusCode::from_u16(inner.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(source) = &inner.source {
            tracing::error!(error = %chain(source.as_ref()), "request failed");
        }
        let failure = format!("{}: {}", inner.code.as_str(), inner.message);
        let mut entry = json!({ "code": inner.code.as_str(), "message": inner.message });
        if let Some(detail) = inner.detail {
            entry["detail"] = detail;
        }
        let body = json!({ "errors": [entry] }).to_string();
        let mut response = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        response.headers_mut().extend(inner.headers);
        response
            .extensions_mut()
            .insert(crate::api::request_log::Failure(failure));
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::NameUnknown(name) => ApiError::new(ErrorCode::NameUnknown, message)
                .with_detail(json!({ "name": name.as_str() })),
            RegistryError::BlobUnknown(d) => {
                ApiError::new(ErrorCode::BlobUnknown, message).with_detail(json!({ "digest": d }))
            }
            RegistryError::UploadUnknown => ApiError::new(ErrorCode::BlobUploadUnknown, message),
            RegistryError::UploadOutOfOrder { expected } => {
                ApiError::new(ErrorCode::RangeInvalid, message)
                    .with_header("range", upload_range(expected))
                    .with_detail(json!({ "expectedOffset": expected }))
            }
            RegistryError::UploadInvalid(_) => ApiError::new(ErrorCode::BlobUploadInvalid, message),
            RegistryError::DigestMismatch {
                ref expected,
                ref actual,
            } => {
                let detail = json!({ "expected": expected, "actual": actual });
                ApiError::new(ErrorCode::DigestInvalid, message).with_detail(detail)
            }
            RegistryError::DigestInvalid(_) => ApiError::new(ErrorCode::DigestInvalid, message),
            RegistryError::Unsupported(_) => ApiError::new(ErrorCode::Unsupported, message),
            RegistryError::ManifestUnknown => ApiError::new(ErrorCode::ManifestUnknown, message),
            RegistryError::ManifestInvalid(_) => ApiError::new(ErrorCode::ManifestInvalid, message),
            RegistryError::PolicyDenied(v) => {
                let detail = json!({
                    "mediaType": v.refused,
                    "configMediaType": v.config_media_type,
                    "artifactType": v.artifact_type,
                    "allow": v.yaml,
                });
                ApiError::new(ErrorCode::ManifestInvalid, message).with_detail(detail)
            }
            RegistryError::ManifestBlobUnknown(d) => {
                ApiError::new(ErrorCode::ManifestBlobUnknown, message)
                    .with_detail(json!({ "digest": d }))
            }
            RegistryError::ManifestTooLarge { limit } => {
                ApiError::new(ErrorCode::ManifestTooLarge, message)
                    .with_detail(json!({ "limit": limit }))
            }
            RegistryError::SizeInvalid(_) => ApiError::new(ErrorCode::SizeInvalid, message),
            RegistryError::BlobTooLarge { limit } => {
                ApiError::new(ErrorCode::BlobTooLarge, message)
                    .with_detail(json!({ "limit": limit }))
            }
            RegistryError::TooManyUploads { limit, per } => {
                ApiError::new(ErrorCode::TooManyRequests, message)
                    .with_detail(json!({ "limit": limit, "per": per }))
            }
            RegistryError::TooManyTags { limit } => {
                ApiError::new(ErrorCode::ManifestInvalid, message)
                    .with_detail(json!({ "limit": limit }))
            }
            RegistryError::StorageFull => ApiError::new(ErrorCode::StorageFull, message),
            RegistryError::Body(_) => ApiError::new(ErrorCode::BlobUploadInvalid, message),
            RegistryError::Storage(e) => ApiError::internal(e),
            RegistryError::Metadata(e) => ApiError::internal(e),
        }
    }
}

/// The `Range` header value for an upload holding `len` bytes. An empty upload reports
/// `0-0`, as distribution does, since `0--1` confuses clients.
pub fn upload_range(len: u64) -> String {
    format!("0-{}", len.saturating_sub(1))
}
