//! The error codes of the OCI distribution spec, each with the HTTP status it is sent with.

/// An error code from the distribution spec. The HTTP status belongs to the code, so no call
/// site picks a status of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// `n` is not a valid page size (400, sent as the spec's `UNSUPPORTED`).
    PaginationNumberInvalid,
    /// No endpoint has this path (404).
    EndpointUnknown,
    /// Not a spec code: the blob store has no room left (507).
    StorageFull,
    /// The method is not allowed on this endpoint (405).
    MethodNotAllowed,
    /// Not a spec code: the manifest is over the configured size limit (413).
    ManifestTooLarge,
    /// Not a spec code: the blob is over the configured size limit (413, sent as the spec's
    /// `SIZE_INVALID`, as for a manifest).
    BlobTooLarge,
    /// Not a spec code: a `Range`/`Content-Range` that cannot be satisfied (416).
    RangeInvalid,
    /// Not a spec code: an unexpected server-side failure (500).
    Internal,
    /// Not a spec code: the server is shutting down or overloaded (503).
    Unavailable,
}

impl ErrorCode {
    /// The wire identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::PaginationNumberInvalid => "UNSUPPORTED",
            ErrorCode::EndpointUnknown => "UNSUPPORTED",
            ErrorCode::StorageFull => "UNKNOWN",
            ErrorCode::MethodNotAllowed => "UNSUPPORTED",
            ErrorCode::ManifestTooLarge => "SIZE_INVALID",
            ErrorCode::BlobTooLarge => "SIZE_INVALID",
            ErrorCode::RangeInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::Internal => "UNKNOWN",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }

    /// The HTTP status code sent with this error.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown
            | ErrorCode::EndpointUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::PaginationNumberInvalid
            | ErrorCode::Unsupported => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::ManifestTooLarge | ErrorCode::BlobTooLarge => 413,
            ErrorCode::RangeInvalid => 416,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            ErrorCode::StorageFull => 507,
        }
    }
}
