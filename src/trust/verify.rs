//! Checking one signature manifest against the trusted keys.

use std::collections::HashMap;

use bytes::Bytes;
use oci::Digest;

use super::{SignatureCheck, TrustedKey};

/// The largest blob verification reads (signature payloads, bundles and envelopes are small).
pub const MAX_EVIDENCE_BLOB: u64 = 1 << 20;

/// The blobs of a signature manifest that verification reads: its signature layers no larger
/// than [`MAX_EVIDENCE_BLOB`], as (digest, size).
pub fn blobs_needed(manifest: &[u8]) -> Vec<(Digest, u64)> {
    // PLACEHOLDER until the verification helper lands.
    let _ = manifest;
    Vec::new()
}

/// What the signature manifest `manifest` (digest `signature`) proves about `subject`, one
/// check per signature it carries; `blobs` holds what [`blobs_needed`] named (a missing one
/// makes its signature invalid).
pub fn check(
    subject: &Digest,
    signature: &Digest,
    manifest: &[u8],
    blobs: &HashMap<Digest, Bytes>,
    keys: &[TrustedKey],
) -> Vec<SignatureCheck> {
    // PLACEHOLDER until the verification helper lands: everything is untrusted.
    let _ = (subject, manifest, blobs, keys);
    vec![SignatureCheck {
        signature: signature.clone(),
        format: super::SignatureFormat::CosignTag,
        signer: None,
        result: super::CheckResult::Untrusted,
    }]
}
