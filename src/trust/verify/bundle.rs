//! cosign 3's sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`), stored as a
//! referrer whose one layer is the bundle JSON.
//!
//! `cosign sign` 3.1 writes a DSSE envelope (`payloadType` `application/vnd.in-toto+json`)
//! whose in-toto statement names the image digest as its subject (predicate type
//! `https://sigstore.dev/cosign/sign/v1`); the signature is over the DSSE pre-authentication
//! encoding. The key is named only by a hint (`verificationMaterial.publicKey`), or for keyless
//! signing carried as a certificate.

use base64::Engine as _;
use oci::Digest;
use serde::Deserialize;

use super::{invalid, keyless, Trusted};
use crate::trust::CheckResult;

const IN_TOTO: &str = "application/vnd.in-toto+json";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    #[serde(default)]
    verification_material: Option<Material>,
    #[serde(default)]
    dsse_envelope: Option<Envelope>,
    #[serde(default)]
    message_signature: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    #[serde(default)]
    certificate: Option<RawCert>,
    #[serde(default)]
    x509_certificate_chain: Option<Chain>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct Chain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    subject: Vec<StatementSubject>,
    #[serde(default)]
    predicate_type: String,
}

/// The predicate type of the statement `cosign sign` 3 signs; other predicates are attestations
/// (`cosign attest`), which say something about the image but do not sign it.
pub(crate) const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The check of a bundle, or `None` when it holds an attestation rather than a signature.
pub(crate) fn check(
    subject: &Digest,
    blob: &[u8],
    trusted: &Trusted<'_>,
) -> Option<(Option<String>, CheckResult)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bundle: Bundle = match serde_json::from_slice(blob) {
        Ok(b) => b,
        Err(e) => return Some(invalid(format!("the sigstore bundle does not parse: {e}"))),
    };
    let statement = bundle
        .dsse_envelope
        .as_ref()
        .filter(|env| env.payload_type == IN_TOTO)
        .and_then(|env| b64.decode(env.payload.trim()).ok())
        .and_then(|p| serde_json::from_slice::<Statement>(&p).ok());
    if statement.is_some_and(|s| s.predicate_type != COSIGN_SIGN_PREDICATE) {
        return None;
    }
    Some(check_signature(subject, bundle, trusted))
}

fn check_signature(
    subject: &Digest,
    bundle: Bundle,
    trusted: &Trusted<'_>,
) -> (Option<String>, CheckResult) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(env) = bundle.dsse_envelope else {
        return invalid(if bundle.message_signature.is_some() {
            "a message-signature bundle cannot be checked without the signed bytes; berth checks DSSE bundles as cosign 3 writes them"
        } else {
            "the sigstore bundle has no dsseEnvelope"
        });
    };
    if env.payload_type != IN_TOTO {
        return invalid(format!(
            "the DSSE payload type is {:?}, not {IN_TOTO}",
            env.payload_type
        ));
    }
    let payload = match b64.decode(env.payload.trim()) {
        Ok(p) => p,
        Err(e) => return invalid(format!("the DSSE payload is not base64: {e}")),
    };
    let statement: Statement = match serde_json::from_slice(&payload) {
        Ok(s) => s,
        Err(e) => return invalid(format!("the in-toto statement does not parse: {e}")),
    };
    let algorithm = subject.algorithm().as_str();
    let named: Vec<String> = statement
        .subject
        .iter()
        .filter_map(|s| s.digest.get(algorithm).map(|h| format!("{algorithm}:{h}")))
        .collect();
    if !named.iter().any(|d| *d == subject.to_string()) {
        return invalid(match named.first() {
            Some(other) => format!("signs {other} instead"),
            None => "the in-toto statement names no digest".to_string(),
        });
    }
    let Some(first) = env.signatures.first() else {
        return invalid("the DSSE envelope has no signature");
    };
    if env.signatures.len() > 1 {
        return invalid("the DSSE envelope has several signatures; cosign writes one");
    }
    let sig = match b64.decode(first.sig.trim()) {
        Ok(s) => s,
        Err(e) => return invalid(format!("the DSSE signature is not base64: {e}")),
    };
    let message = pae(&env.payload_type, &payload);
    if let Some((name, fingerprint)) = trusted.cosign_signer(&message, &sig) {
        return (
            Some(fingerprint.to_string()),
            CheckResult::Verified {
                key: name.to_string(),
            },
        );
    }
    let material = bundle.verification_material;
    let cert = material.as_ref().and_then(|m| {
        m.certificate.as_ref().or_else(|| {
            m.x509_certificate_chain
                .as_ref()
                .and_then(|c| c.certificates.first())
        })
    });
    match cert {
        None => (None, CheckResult::Untrusted),
        Some(raw) => match b64.decode(raw.raw_bytes.trim()) {
            Ok(der) => keyless(&der, &message, &sig),
            Err(e) => invalid(format!("the bundle's certificate is not base64: {e}")),
        },
    }
}
