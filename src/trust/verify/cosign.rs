//! cosign simple-signing layers: the tag scheme (`sha256-<hex>.sig`) and OCI 1.1 referrers.
//!
//! The layer blob is the simple-signing payload, whose `critical.image.docker-manifest-digest`
//! names the signed manifest; the layer annotation `dev.cosignproject.cosign/signature` is the
//! base64 signature over the payload bytes; a keyless signature adds the PEM certificate in
//! `dev.sigstore.cosign/certificate` (and its chain in `dev.sigstore.cosign/chain`).

use base64::Engine as _;
use oci::Digest;
use serde::Deserialize;

use super::{invalid, keyless, Descriptor, Trusted};
use crate::trust::CheckResult;

pub(crate) const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub(crate) const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

pub(crate) fn check(
    subject: &Digest,
    layer: &Descriptor,
    payload: &[u8],
    trusted: &Trusted<'_>,
) -> (Option<String>, CheckResult) {
    let signed = match serde_json::from_slice::<Payload>(payload) {
        Ok(p) => p.critical.image.docker_manifest_digest,
        Err(e) => return invalid(format!("the simple-signing payload does not parse: {e}")),
    };
    if signed != subject.to_string() {
        return invalid(format!("signs {signed} instead"));
    }
    let Some(sig_b64) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
        return invalid(format!(
            "the layer has no {SIGNATURE_ANNOTATION} annotation"
        ));
    };
    let sig = match base64::engine::general_purpose::STANDARD.decode(sig_b64.trim()) {
        Ok(s) => s,
        Err(e) => return invalid(format!("the signature is not base64: {e}")),
    };
    if let Some((name, fingerprint)) = trusted.cosign_signer(payload, &sig) {
        return (
            Some(fingerprint.to_string()),
            CheckResult::Verified {
                key: name.to_string(),
            },
        );
    }
    match layer.annotations.get(CERTIFICATE_ANNOTATION) {
        // A key-based signature carries no key: one no trusted key verifies may be another
        // key's, so it is untrusted rather than invalid.
        None => (None, CheckResult::Untrusted),
        Some(cert_pem) => match pem::parse(cert_pem.as_bytes()) {
            Ok(block) if block.tag() == "CERTIFICATE" => keyless(block.contents(), payload, &sig),
            _ => invalid(format!(
                "the {CERTIFICATE_ANNOTATION} annotation is not a PEM certificate"
            )),
        },
    }
}
