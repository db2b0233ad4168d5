//! Parsing and fingerprinting the keys and certificates an organization trusts.
//!
//! A cosign key is a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo), as `cosign generate-key-pair`
//! and `cosign import-key-pair` write `cosign.pub`. A certificate is refused for cosign rather
//! than reduced to its key: `cosign verify --key` takes a public key, and storing something other
//! than what was given would make the fingerprint name a different thing than the upload. A
//! notation key is a PEM `CERTIFICATE` (a trust-store root or the signing certificate itself).

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::KeyKind;

/// The largest PEM text accepted.
pub const MAX_KEY_PEM: usize = 64 * 1024;

/// A key or certificate that parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kind: KeyKind,
    /// `sha256:<hex>` of the DER: the SubjectPublicKeyInfo of a cosign key, the whole
    /// certificate of a notation one.
    pub fingerprint: String,
    /// The PEM to store: one block, as given (surrounding text trimmed).
    pub material: String,
    /// A short human description: the algorithm ("ECDSA P-256") and, for a certificate, its subject.
    pub description: String,
}

/// Why a key or certificate was refused; the message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn err(msg: impl Into<String>) -> KeyError {
    KeyError(msg.into())
}

/// Parses a trusted key of `kind` from PEM: for cosign a public key (ECDSA P-256/P-384, RSA,
/// Ed25519), for notation an X.509 certificate.
pub fn parse_key(kind: KeyKind, pem: &str) -> Result<KeyInfo, KeyError> {
    if pem.len() > MAX_KEY_PEM {
        return Err(err(format!(
            "the PEM is {} bytes; at most {MAX_KEY_PEM} are accepted",
            pem.len()
        )));
    }
    let blocks = pem::parse_many(pem).map_err(|e| err(format!("not valid PEM: {e}")))?;
    let block = match blocks.as_slice() {
        [] => return Err(err("not PEM: no -----BEGIN ...----- block found")),
        [one] => one,
        more => {
            return Err(err(format!(
                "{} PEM blocks given; upload exactly one {}",
                more.len(),
                match kind {
                    KeyKind::Cosign => "PUBLIC KEY",
                    KeyKind::Notation => "CERTIFICATE",
                }
            )))
        }
    };
    let tag = block.tag();
    if tag.contains("PRIVATE KEY") {
        return Err(err(format!(
            "this is a private key ({tag}); upload the public key"
        )));
    }
    let material = pem.trim().to_string();
    match (kind, tag) {
        (KeyKind::Cosign, "PUBLIC KEY") => {
            let key = PublicKey::from_spki_der(block.contents())?;
            Ok(KeyInfo {
                kind,
                fingerprint: fingerprint(block.contents()),
                material,
                description: key.describe(),
            })
        }
        (KeyKind::Cosign, "CERTIFICATE") => Err(err(
            "this is a certificate; a cosign key is a PUBLIC KEY block (cosign.pub), or use kind \"notation\" for a Notary Project certificate",
        )),
        (KeyKind::Notation, "CERTIFICATE") => {
            let (cert, key) = parse_certificate(block.contents())?;
            let until = cert
                .validity()
                .not_after
                .to_datetime()
                .date()
                .to_string();
            Ok(KeyInfo {
                kind,
                fingerprint: fingerprint(block.contents()),
                material,
                description: format!("{}, {}, valid until {until}", key.describe(), cert.subject()),
            })
        }
        (KeyKind::Notation, "PUBLIC KEY") => Err(err(
            "this is a public key; notation trusts an X.509 CERTIFICATE (its trust store's root or signing certificate)",
        )),
        (_, other) => Err(err(format!(
            "a PEM {other} block is not what berth takes; upload {}",
            match kind {
                KeyKind::Cosign => "a PUBLIC KEY block (SubjectPublicKeyInfo, as in cosign.pub)",
                KeyKind::Notation => "a CERTIFICATE block",
            }
        ))),
    }
}

/// `sha256:<hex>` of DER bytes.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// A parsed certificate (borrowing `der`) and its public key; refuses what verification could
/// not use.
pub(crate) fn parse_certificate(der: &[u8]) -> Result<(X509Certificate<'_>, PublicKey), KeyError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| err(format!("the certificate's DER does not parse: {e}")))?;
    if !rest.is_empty() {
        return Err(err("the certificate has trailing bytes after its DER"));
    }
    let key = PublicKey::from_spki(cert.public_key())
        .map_err(|e| err(format!("the certificate's key: {}", e.0)))?;
    Ok((cert, key))
}

/// The algorithms of the keys berth verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    EcdsaP256,
    EcdsaP384,
    Rsa { bits: usize },
    Ed25519,
}

/// A public key ready to verify signatures with ring.
#[derive(Debug, Clone)]
pub(crate) struct PublicKey {
    pub algorithm: Algorithm,
    /// The subjectPublicKey bits: an uncompressed EC point, a PKCS#1 RSAPublicKey, or the raw
    /// Ed25519 key; what ring's `UnparsedPublicKey` takes.
    bytes: Vec<u8>,
}

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_ED25519: &str = "1.3.101.112";

impl PublicKey {
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| err(format!("the public key's DER does not parse: {e}")))?;
        if !rest.is_empty() {
            return Err(err("the public key has trailing bytes after its DER"));
        }
        PublicKey::from_spki(&spki)
    }

    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<PublicKey, KeyError> {
        let oid = spki.algorithm.algorithm.to_id_string();
        let bytes = spki.subject_public_key.data.to_vec();
        let algorithm =
            if oid == OID_ED25519 {
                if bytes.len() != 32 {
                    return Err(err("an Ed25519 key must be 32 bytes"));
                }
                Algorithm::Ed25519
            } else {
                match spki.parsed() {
                    Ok(ParsedKey::EC(_)) => {
                        let curve = spki
                            .algorithm
                            .parameters
                            .as_ref()
                            .and_then(|p| p.as_oid().ok())
                            .map(|o| o.to_id_string())
                            .ok_or_else(|| err("an EC key without a named curve"))?;
                        match curve.as_str() {
                            OID_P256 => Algorithm::EcdsaP256,
                            OID_P384 => Algorithm::EcdsaP384,
                            OID_P521 => return Err(err(
                                "ECDSA P-521 is not supported; use P-256, P-384, RSA or Ed25519",
                            )),
                            other => {
                                return Err(err(format!(
                                    "unsupported elliptic curve {other}; use P-256 or P-384"
                                )))
                            }
                        }
                    }
                    Ok(ParsedKey::RSA(rsa)) => {
                        let bits = rsa.key_size();
                        if bits < 2048 {
                            return Err(err(format!(
                                "an RSA key of {bits} bits is too weak; at least 2048 are required"
                            )));
                        }
                        if bits > 8192 {
                            return Err(err(format!(
                            "an RSA key of {bits} bits is too large; at most 8192 are supported"
                        )));
                        }
                        Algorithm::Rsa { bits }
                    }
                    Ok(_) => {
                        return Err(err(format!(
                        "unsupported key algorithm {oid}; use ECDSA P-256/P-384, RSA or Ed25519"
                    )))
                    }
                    Err(e) => return Err(err(format!("the public key does not parse: {e}"))),
                }
            };
        Ok(PublicKey { algorithm, bytes })
    }

    pub fn describe(&self) -> String {
        match self.algorithm {
            Algorithm::EcdsaP256 => "ECDSA P-256".into(),
            Algorithm::EcdsaP384 => "ECDSA P-384".into(),
            Algorithm::Rsa { bits } => format!("RSA {bits}"),
            Algorithm::Ed25519 => "Ed25519".into(),
        }
    }

    fn verify_with(&self, alg: &'static dyn VerificationAlgorithm, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(alg, &self.bytes)
            .verify(msg, sig)
            .is_ok()
    }

    /// Verifies a signature as cosign makes it with this key: ECDSA as ASN.1 DER over SHA-256
    /// (P-256) or, for P-384, SHA-384 (cosign 3) or SHA-256 (cosign 2.5, as its signatures
    /// show), RSA PKCS#1 v1.5 with SHA-256, Ed25519 over the message.
    pub fn verify_cosign(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self.algorithm {
            Algorithm::EcdsaP256 => self.verify_with(&signature::ECDSA_P256_SHA256_ASN1, msg, sig),
            Algorithm::EcdsaP384 => {
                self.verify_with(&signature::ECDSA_P384_SHA384_ASN1, msg, sig)
                    || self.verify_with(&signature::ECDSA_P384_SHA256_ASN1, msg, sig)
            }
            Algorithm::Rsa { .. } => {
                self.verify_with(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
            }
            Algorithm::Ed25519 => self.verify_with(&signature::ED25519, msg, sig),
        }
    }

    /// Verifies a JOSE/COSE signature of algorithm `alg` (JWS name); `Err` names an algorithm
    /// this key cannot make or berth does not support.
    pub fn verify_jose(&self, alg: &str, msg: &[u8], sig: &[u8]) -> Result<bool, String> {
        let scheme: &'static dyn VerificationAlgorithm = match (alg, self.algorithm) {
            ("PS256", Algorithm::Rsa { .. }) => &signature::RSA_PSS_2048_8192_SHA256,
            ("PS384", Algorithm::Rsa { .. }) => &signature::RSA_PSS_2048_8192_SHA384,
            ("PS512", Algorithm::Rsa { .. }) => &signature::RSA_PSS_2048_8192_SHA512,
            ("ES256", Algorithm::EcdsaP256) => &signature::ECDSA_P256_SHA256_FIXED,
            ("ES384", Algorithm::EcdsaP384) => &signature::ECDSA_P384_SHA384_FIXED,
            ("ES512", _) => return Err("ES512 (ECDSA P-521) is not supported".into()),
            (other, _) => {
                return Err(format!(
                    "algorithm {other} does not fit the certificate's {} key",
                    self.describe()
                ))
            }
        };
        Ok(self.verify_with(scheme, msg, sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trust/");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIX}{name}")).unwrap()
    }

    #[test]
    fn cosign_keys_of_every_algorithm_parse() {
        for (file, desc) in [
            ("cosign-p256.pub", "ECDSA P-256"),
            ("cosign-p384.pub", "ECDSA P-384"),
            ("cosign-rsa.pub", "RSA 3072"),
            ("cosign-ed25519.pub", "Ed25519"),
        ] {
            let pem = fixture(file);
            let info = parse_key(KeyKind::Cosign, &pem).unwrap();
            assert_eq!(info.description, desc, "{file}");
            let der = pem::parse(&pem).unwrap();
            assert_eq!(info.fingerprint, fingerprint(der.contents()));
            assert!(info.fingerprint.starts_with("sha256:") && info.fingerprint.len() == 71);
            assert_eq!(info.material, pem.trim());
        }
    }

    #[test]
    fn notation_certificate_parses() {
        let pem = fixture("notation-berth-test.crt");
        let info = parse_key(KeyKind::Notation, &pem).unwrap();
        assert!(
            info.description.starts_with("RSA 2048, "),
            "{}",
            info.description
        );
        assert!(
            info.description.contains("CN=berth-test"),
            "{}",
            info.description
        );
        assert!(
            info.description.contains("valid until 2"),
            "{}",
            info.description
        );
        // notation's own fingerprint of the certificate, as the signature manifest names it.
        let manifest = fixture("notation-jws.manifest.json");
        let hex = info.fingerprint.strip_prefix("sha256:").unwrap();
        assert!(
            manifest.contains(hex),
            "{hex} not in the manifest's x509chain thumbprint"
        );
    }

    fn refused(kind: KeyKind, pem: &str, needle: &str) {
        let e = parse_key(kind, pem).unwrap_err();
        assert!(e.0.contains(needle), "{:?}: {e}", needle);
    }

    #[test]
    fn malformed_keys_are_refused_with_a_reason() {
        let pubkey = fixture("cosign-p256.pub");
        let cert = fixture("notation-berth-test.crt");
        refused(KeyKind::Cosign, "hello", "not PEM");
        refused(KeyKind::Cosign, "", "not PEM");
        refused(
            KeyKind::Cosign,
            "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
            "not valid PEM",
        );
        refused(
            KeyKind::Cosign,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
            "this is a private key",
        );
        refused(
            KeyKind::Cosign,
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "upload the public key",
        );
        refused(KeyKind::Cosign, &cert, "this is a certificate");
        refused(KeyKind::Notation, &pubkey, "this is a public key");
        refused(
            KeyKind::Cosign,
            &format!("{pubkey}{pubkey}"),
            "2 PEM blocks",
        );
        refused(
            KeyKind::Cosign,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "DER does not parse",
        );
        refused(
            KeyKind::Notation,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "DER does not parse",
        );
        refused(
            KeyKind::Cosign,
            "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
            "not what berth takes",
        );
        refused(
            KeyKind::Cosign,
            "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
            "upload a PUBLIC KEY block",
        );
        refused(KeyKind::Cosign, &"A".repeat(MAX_KEY_PEM + 1), "at most");
    }

    /// Truncated or garbled keys and certificates are refused, never a panic.
    #[test]
    fn parse_key_never_panics() {
        for (kind, file) in [
            (KeyKind::Cosign, "cosign-p256.pub"),
            (KeyKind::Cosign, "cosign-rsa.pub"),
            (KeyKind::Cosign, "cosign-ed25519.pub"),
            (KeyKind::Notation, "notation-berth-test.crt"),
        ] {
            let text = fixture(file);
            let block = pem::parse(&text).unwrap();
            let der = block.contents();
            for len in 0..der.len() {
                let cut = pem::encode(&pem::Pem::new(block.tag(), der[..len].to_vec()));
                assert!(parse_key(kind, &cut).is_err(), "{file} DER[..{len}]");
            }
            for at in 0..der.len() {
                let mut garbled = der.to_vec();
                garbled[at] ^= 0x80;
                let _ = parse_key(kind, &pem::encode(&pem::Pem::new(block.tag(), garbled)));
            }
            for len in 0..text.len() {
                let _ = parse_key(kind, &text[..len]);
            }
        }
    }

    fn pem_of(der: &[u8]) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.to_vec()))
    }

    #[test]
    fn weak_or_unsupported_algorithms_are_refused() {
        // Made by `openssl genpkey ... | openssl pkey -pubout` (see the fixtures' README).
        refused(KeyKind::Cosign, &fixture("weak-rsa1024.pub"), "too weak");
        refused(
            KeyKind::Cosign,
            &fixture("weak-p521.pub"),
            "P-521 is not supported",
        );
        refused(
            KeyKind::Cosign,
            &fixture("weak-secp256k1.pub"),
            "unsupported elliptic curve",
        );
        refused(
            KeyKind::Cosign,
            &fixture("weak-x25519.pub"),
            "unsupported key algorithm 1.3.101.110",
        );
        // An Ed25519 key of the wrong length.
        let mut ed = vec![
            0x30, 0x29, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x20, 0x00,
        ];
        ed.extend([7u8; 31]);
        refused(KeyKind::Cosign, &pem_of(&ed), "32 bytes");
    }
}
