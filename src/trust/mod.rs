//! Signature trust: which keys an organization or repository trusts, what berth concludes about
//! each signed manifest, and whether a policy lets it be served.
//!
//! Verification is pure (`keys`, `verify`): it reads a signature manifest, the small blobs it
//! names and the trusted keys, and says what each signature proves. Loading that evidence,
//! storing the verdicts and enforcing policies is `service`.

pub mod keys;
pub mod service;
pub mod verify;

use oci::Digest;
use serde::{Deserialize, Serialize};

pub use keys::{parse_key, KeyError, KeyInfo};
pub use verify::{blobs_needed, check, MAX_EVIDENCE_BLOB};

/// What a trusted key verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// A public key for cosign signatures (tag scheme, OCI 1.1 referrers, sigstore bundles).
    Cosign,
    /// A Notary Project trust-store certificate (a root or the signing certificate itself).
    Notation,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Cosign => "cosign",
            KeyKind::Notation => "notation",
        }
    }

    pub fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "cosign" => Some(KeyKind::Cosign),
            "notation" => Some(KeyKind::Notation),
            _ => None,
        }
    }
}

/// A key a repository trusts, as verification needs it.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The name its owner gave it ("release"); what a verdict reports.
    pub name: String,
    pub kind: KeyKind,
    /// The PEM as stored (a public key for cosign, a certificate for notation).
    pub material: String,
}

/// The signature formats berth understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureFormat {
    /// cosign's `sha256-<hex>.sig` tag with simple-signing layers.
    CosignTag,
    /// cosign's OCI 1.1 referrer (`application/vnd.dev.cosign.artifact.sig.v1+json`).
    CosignReferrer,
    /// cosign 3's sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`).
    SigstoreBundle,
    /// A Notary Project signature in a JWS envelope.
    NotationJws,
    /// A Notary Project signature in a COSE envelope.
    NotationCose,
}

impl SignatureFormat {
    /// How people name it.
    pub fn label(self) -> &'static str {
        match self {
            SignatureFormat::CosignTag => "cosign (tag)",
            SignatureFormat::CosignReferrer => "cosign (referrer)",
            SignatureFormat::SigstoreBundle => "sigstore bundle",
            SignatureFormat::NotationJws => "notation (JWS)",
            SignatureFormat::NotationCose => "notation (COSE)",
        }
    }
}

/// What one signature proves about its subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum CheckResult {
    /// Made by this trusted key (its name).
    Verified { key: String },
    /// Well formed and about this subject, but made by no trusted key.
    Untrusted,
    /// It claims this subject but does not verify, signs another digest, or cannot be read.
    Invalid { reason: String },
}

/// One signature found for a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureCheck {
    /// The signature manifest it was found in.
    pub signature: Digest,
    pub format: SignatureFormat,
    /// Who signed, as far as the signature says: a certificate's subject or identity (e-mail,
    /// URI), or a public key's fingerprint; `None` when it carries nothing.
    pub signer: Option<String>,
    #[serde(flatten)]
    pub result: CheckResult,
}

/// The one status a manifest has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Verified,
    Untrusted,
    Invalid,
    Unsigned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Untrusted => "untrusted",
            Status::Invalid => "invalid",
            Status::Unsigned => "unsigned",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "verified" => Some(Status::Verified),
            "untrusted" => Some(Status::Untrusted),
            "invalid" => Some(Status::Invalid),
            "unsigned" => Some(Status::Unsigned),
            _ => None,
        }
    }
}

/// What berth concludes about a manifest from all its signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub status: Status,
    /// The trusted keys that verified it, by name, sorted and distinct.
    pub keys: Vec<String>,
    pub checks: Vec<SignatureCheck>,
}

/// One verdict from every signature's check. A signature by a trusted key verifies the
/// manifest even when others beside it are invalid (as `cosign verify` accepts any valid one):
/// anyone who may push can add a bad signature, only a key holder a good one.
pub fn verdict(checks: Vec<SignatureCheck>) -> Verdict {
    let mut keys: Vec<String> = checks
        .iter()
        .filter_map(|c| match &c.result {
            CheckResult::Verified { key } => Some(key.clone()),
            _ => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    let status = if !keys.is_empty() {
        Status::Verified
    } else if checks
        .iter()
        .any(|c| matches!(c.result, CheckResult::Invalid { .. }))
    {
        Status::Invalid
    } else if checks.is_empty() {
        Status::Unsigned
    } else {
        Status::Untrusted
    };
    Verdict {
        status,
        keys,
        checks,
    }
}

/// A new key for `scope`, checked: its name (1 to 64 of `A-Z a-z 0-9 . _ -`) and its PEM, which
/// must parse as `kind` says. What the API and the dashboard both store.
pub fn new_key(
    scope: crate::metadata::trust::TrustScope,
    name: &str,
    kind: KeyKind,
    pem: &str,
) -> Result<crate::metadata::trust::StoredKey, KeyError> {
    let valid_name = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid_name {
        return Err(KeyError(
            "the name must be 1 to 64 letters, digits, '.', '_' or '-'".into(),
        ));
    }
    let info = parse_key(kind, pem)?;
    Ok(crate::metadata::trust::StoredKey {
        id: uuid::Uuid::new_v4().to_string(),
        scope,
        name: name.to_string(),
        kind,
        material: info.material,
        fingerprint: info.fingerprint,
        description: info.description,
        created_at: crate::metadata::now_millis(),
    })
}
