//! Checking one signature manifest against the trusted keys.
//!
//! Each format is its own module: `cosign` (simple-signing layers, tag scheme and OCI 1.1
//! referrers), `bundle` (cosign 3's sigstore bundle), `notation` (Notary Project JWS and COSE).
//! Everything here is pure and total: malformed evidence becomes `Invalid { reason }`, never a
//! panic.

mod bundle;
mod cosign;
mod notation;

/// RFC 3339 times, as the mirror configuration's `sync_start_date` takes them too.
pub(crate) use notation::rfc3339_seconds;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use oci::Digest;
use serde::Deserialize;
use x509_parser::prelude::{GeneralName, X509Certificate};

use super::keys::{parse_certificate, PublicKey};
use super::{CheckResult, KeyKind, SignatureCheck, SignatureFormat, TrustedKey};

/// The largest blob verification reads (signature payloads, bundles and envelopes are small).
pub const MAX_EVIDENCE_BLOB: u64 = 1 << 20;

pub(crate) const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub(crate) const COSIGN_ARTIFACT_SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub(crate) const BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
pub(crate) const NOTARY_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
pub(crate) const JOSE: &str = "application/jose+json";
pub(crate) const COSE: &str = "application/cose";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Which format a layer of this manifest is, if it is a signature layer.
fn layer_format(manifest: &Manifest, layer: &Descriptor) -> Option<SignatureFormat> {
    let artifact = manifest.artifact_type.as_deref().unwrap_or_else(|| {
        manifest
            .config
            .as_ref()
            .map(|c| c.media_type.as_str())
            .unwrap_or("")
    });
    match layer.media_type.as_str() {
        SIMPLE_SIGNING => Some(
            if artifact == COSIGN_ARTIFACT_SIG || manifest.subject.is_some() {
                SignatureFormat::CosignReferrer
            } else {
                SignatureFormat::CosignTag
            },
        ),
        t if t.starts_with(BUNDLE_PREFIX) => Some(SignatureFormat::SigstoreBundle),
        JOSE if artifact == NOTARY_SIGNATURE => Some(SignatureFormat::NotationJws),
        COSE if artifact == NOTARY_SIGNATURE => Some(SignatureFormat::NotationCose),
        _ => None,
    }
}

/// The blobs of a signature manifest that verification reads: its signature layers no larger
/// than [`MAX_EVIDENCE_BLOB`], as (digest, size).
pub fn blobs_needed(manifest: &[u8]) -> Vec<(Digest, u64)> {
    let Ok(m) = serde_json::from_slice::<Manifest>(manifest) else {
        return Vec::new();
    };
    let mut out: Vec<(Digest, u64)> = Vec::new();
    for layer in &m.layers {
        if layer_format(&m, layer).is_none() || layer.size > MAX_EVIDENCE_BLOB {
            continue;
        }
        if let Ok(d) = layer.digest.parse::<Digest>() {
            if !out.iter().any(|(o, _)| *o == d) {
                out.push((d, layer.size));
            }
        }
    }
    out
}

/// What the signature manifest `manifest` (digest `signature`) proves about `subject`, one
/// check per signature it carries (none for a sigstore bundle holding an attestation); `blobs` holds what [`blobs_needed`] named (a missing one
/// makes its signature invalid).
pub fn check(
    subject: &Digest,
    signature: &Digest,
    manifest: &[u8],
    blobs: &HashMap<Digest, Bytes>,
    keys: &[TrustedKey],
) -> Vec<SignatureCheck> {
    let invalid = |format, reason: String| SignatureCheck {
        signature: signature.clone(),
        format,
        signer: None,
        result: CheckResult::Invalid { reason },
    };
    let m = match serde_json::from_slice::<Manifest>(manifest) {
        Ok(m) => m,
        Err(e) => {
            return vec![invalid(
                SignatureFormat::CosignTag,
                format!("the signature manifest is not valid JSON: {e}"),
            )]
        }
    };
    let trusted = Trusted::parse(keys);
    let mut checks = Vec::new();
    let mut recognized = false;
    for layer in &m.layers {
        let Some(format) = layer_format(&m, layer) else {
            continue;
        };
        recognized = true;
        let outcome = match evidence(layer, blobs) {
            Err(reason) => Some((None, CheckResult::Invalid { reason })),
            Ok(blob) => match format {
                SignatureFormat::CosignTag | SignatureFormat::CosignReferrer => {
                    Some(cosign::check(subject, layer, blob, &trusted))
                }
                // An attestation in a bundle is no signature of the subject.
                SignatureFormat::SigstoreBundle => bundle::check(subject, blob, &trusted),
                SignatureFormat::NotationJws => Some(notation::check_jws(subject, blob, &trusted)),
                SignatureFormat::NotationCose => {
                    Some(notation::check_cose(subject, blob, &trusted))
                }
            },
        };
        if let Some((signer, result)) = outcome {
            checks.push(SignatureCheck {
                signature: signature.clone(),
                format,
                signer,
                result,
            });
        }
    }
    if !recognized {
        checks.push(invalid(
            SignatureFormat::CosignTag,
            "the signature manifest has no signature layer berth understands".into(),
        ));
    }
    checks
}

/// The bytes of a layer, checked against its descriptor.
fn evidence<'a>(layer: &Descriptor, blobs: &'a HashMap<Digest, Bytes>) -> Result<&'a [u8], String> {
    let digest: Digest = layer
        .digest
        .parse()
        .map_err(|_| format!("the layer digest {:?} is not a digest", layer.digest))?;
    if layer.size > MAX_EVIDENCE_BLOB {
        return Err(format!(
            "the signature layer {digest} is {} bytes, over the {MAX_EVIDENCE_BLOB} berth reads",
            layer.size
        ));
    }
    let blob = blobs
        .get(&digest)
        .ok_or_else(|| format!("the signature layer {digest} is missing"))?;
    if blob.len() as u64 != layer.size || digest.algorithm().digest_of(blob) != digest {
        return Err(format!(
            "the signature layer {digest} does not match its digest or size"
        ));
    }
    Ok(blob)
}

/// The trusted keys, parsed once per check.
pub(crate) struct Trusted<'k> {
    /// cosign keys: name, key, fingerprint.
    cosign: Vec<(&'k str, PublicKey, String)>,
    /// notation certificates: name and DER.
    notation: Vec<(&'k str, Vec<u8>)>,
}

impl<'k> Trusted<'k> {
    fn parse(keys: &'k [TrustedKey]) -> Trusted<'k> {
        let mut t = Trusted {
            cosign: Vec::new(),
            notation: Vec::new(),
        };
        for k in keys {
            // Stored keys were checked by parse_key; one that no longer parses trusts nothing.
            let Ok(block) = pem::parse(k.material.as_bytes()) else {
                continue;
            };
            match k.kind {
                KeyKind::Cosign => {
                    if let Ok(pk) = PublicKey::from_spki_der(block.contents()) {
                        let fp = super::keys::fingerprint(block.contents());
                        t.cosign.push((k.name.as_str(), pk, fp));
                    }
                }
                KeyKind::Notation => {
                    if parse_certificate(block.contents()).is_ok() {
                        t.notation
                            .push((k.name.as_str(), block.contents().to_vec()));
                    }
                }
            }
        }
        t
    }

    /// The first trusted cosign key whose cosign-style signature over `msg` verifies: its name
    /// and fingerprint.
    fn cosign_signer(&self, msg: &[u8], sig: &[u8]) -> Option<(&'k str, &str)> {
        self.cosign
            .iter()
            .find(|(_, key, _)| key.verify_cosign(msg, sig))
            .map(|(name, _, fp)| (*name, fp.as_str()))
    }
}

/// A keyless signature: verified against its own certificate it proves nothing berth trusts
/// (there is no Fulcio root here) but names who signed; not verifying is invalid.
fn keyless(cert_der: &[u8], msg: &[u8], sig: &[u8]) -> (Option<String>, CheckResult) {
    let (cert, key) = match parse_certificate(cert_der) {
        Ok(c) => c,
        Err(e) => {
            return (
                None,
                CheckResult::Invalid {
                    reason: format!("the signing certificate: {e}"),
                },
            )
        }
    };
    let signer = Some(identity(&cert));
    if key.verify_cosign(msg, sig) {
        (signer, CheckResult::Untrusted)
    } else {
        (
            signer,
            CheckResult::Invalid {
                reason: "the signature does not verify with its certificate".into(),
            },
        )
    }
}

/// Who a certificate names: its SAN e-mail or URI (Fulcio's identities), else its subject.
pub(crate) fn identity(cert: &X509Certificate<'_>) -> String {
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::RFC822Name(s) | GeneralName::URI(s) => return s.to_string(),
                _ => {}
            }
        }
    }
    cert.subject().to_string()
}

pub(crate) fn invalid(reason: impl Into<String>) -> (Option<String>, CheckResult) {
    (
        None,
        CheckResult::Invalid {
            reason: reason.into(),
        },
    )
}
