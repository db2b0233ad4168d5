//! Checks on real signatures made by cosign 2.5, cosign 3.1 and notation 1.3
//! (`tests/fixtures/trust`, made by its `make.sh`).

use std::collections::HashMap;

use base64::Engine as _;
use bytes::Bytes;
use oci::{Algorithm, Digest};

use super::*;
use crate::trust::{verdict, Status};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trust/");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn digest_of(b: &[u8]) -> Digest {
    Algorithm::Sha256.digest_of(b)
}

/// One signature manifest with its subject and layer blobs.
#[derive(Clone)]
struct Fx {
    subject: Digest,
    manifest: Vec<u8>,
    blobs: HashMap<Digest, Bytes>,
}

impl Fx {
    fn load(name: &str, subject_file: &str) -> Fx {
        let subject = String::from_utf8(read(subject_file))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let manifest = read(&format!("{name}.manifest.json"));
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        let mut blobs = HashMap::new();
        for (i, layer) in m["layers"].as_array().unwrap().iter().enumerate() {
            let blob = read(&format!("{name}.layer{i}"));
            assert_eq!(
                layer["digest"].as_str().unwrap(),
                digest_of(&blob).to_string()
            );
            blobs.insert(digest_of(&blob), Bytes::from(blob));
        }
        Fx {
            subject,
            manifest,
            blobs,
        }
    }

    fn check(&self, keys: &[TrustedKey]) -> Vec<SignatureCheck> {
        self.check_as(&self.subject, keys)
    }

    fn check_as(&self, subject: &Digest, keys: &[TrustedKey]) -> Vec<SignatureCheck> {
        check(
            subject,
            &digest_of(&self.manifest),
            &self.manifest,
            &self.blobs,
            keys,
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.manifest).unwrap()
    }

    fn set_json(&mut self, v: &serde_json::Value) {
        self.manifest = serde_json::to_vec(v).unwrap();
    }

    fn layer0(&self) -> Vec<u8> {
        let d: Digest = self.json()["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        self.blobs[&d].to_vec()
    }

    /// Replaces the first layer's blob, keeping the manifest's descriptor right.
    fn with_layer0(&self, blob: Vec<u8>) -> Fx {
        let mut fx = self.clone();
        let mut m = fx.json();
        m["layers"][0]["digest"] = digest_of(&blob).to_string().into();
        m["layers"][0]["size"] = blob.len().into();
        fx.set_json(&m);
        fx.blobs = HashMap::from([(digest_of(&blob), Bytes::from(blob))]);
        fx
    }
}

fn key(name: &str, file: &str, kind: KeyKind) -> TrustedKey {
    TrustedKey {
        name: name.into(),
        kind,
        material: String::from_utf8(read(file)).unwrap(),
    }
}

fn cosign_keys() -> Vec<TrustedKey> {
    ["p256", "p384", "rsa", "ed25519", "other"]
        .iter()
        .map(|k| key(k, &format!("cosign-{k}.pub"), KeyKind::Cosign))
        .collect()
}

fn notation_keys() -> Vec<TrustedKey> {
    vec![
        key("ca", "notation-berth-test.crt", KeyKind::Notation),
        key("stranger", "notation-stranger.crt", KeyKind::Notation),
    ]
}

fn all_fixtures() -> Vec<(&'static str, Fx)> {
    let mut v: Vec<(&'static str, Fx)> = ["p256", "p384", "rsa", "ed25519"]
        .iter()
        .map(|k| {
            let name: &'static str = Box::leak(format!("cosign2-{k}").into_boxed_str());
            (name, Fx::load(name, &format!("{name}.subject.txt")))
        })
        .collect();
    v.push((
        "cosign2-referrer",
        Fx::load("cosign2-referrer", "cosign2-referrer.subject.txt"),
    ));
    v.push(("cosign3-bundle", Fx::load("cosign3-bundle", "subject.txt")));
    v.push((
        "cosign3-p384",
        Fx::load("cosign3-p384", "cosign2-p384.subject.txt"),
    ));
    v.push(("notation-jws", Fx::load("notation-jws", "subject.txt")));
    v.push((
        "notation-cose",
        Fx::load("notation-cose", "notation-cose.subject.txt"),
    ));
    v
}

fn one(checks: Vec<SignatureCheck>) -> SignatureCheck {
    assert_eq!(checks.len(), 1, "{checks:?}");
    checks.into_iter().next().unwrap()
}

fn verified(key: &str) -> CheckResult {
    CheckResult::Verified { key: key.into() }
}

fn assert_invalid(c: &SignatureCheck, needle: &str) {
    match &c.result {
        CheckResult::Invalid { reason } => {
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
        }
        other => panic!("expected invalid ({needle}), got {other:?}"),
    }
}

#[test]
fn cosign2_tag_signatures_of_every_algorithm_verify_with_their_key_only() {
    let all = cosign_keys();
    for alg in ["p256", "p384", "rsa", "ed25519"] {
        let fx = Fx::load(
            &format!("cosign2-{alg}"),
            &format!("cosign2-{alg}.subject.txt"),
        );
        let right: Vec<TrustedKey> = all.iter().filter(|k| k.name == alg).cloned().collect();
        let others: Vec<TrustedKey> = all.iter().filter(|k| k.name != alg).cloned().collect();
        let c = one(fx.check(&right));
        assert_eq!(c.format, SignatureFormat::CosignTag, "{alg}");
        assert_eq!(c.result, verified(alg), "{alg}");
        let fp = crate::trust::parse_key(KeyKind::Cosign, &right[0].material)
            .unwrap()
            .fingerprint;
        assert_eq!(c.signer.as_deref(), Some(fp.as_str()));
        assert_eq!(c.signature, digest_of(&fx.manifest));
        // Every other key: a signature by a key nobody trusts.
        let c = one(fx.check(&others));
        assert_eq!(
            (c.result, c.signer),
            (CheckResult::Untrusted, None),
            "{alg}"
        );
        // All keys at once: still the right one.
        assert_eq!(one(fx.check(&all)).result, verified(alg), "{alg}");
        // No keys at all, and notation certificates only: untrusted.
        assert_eq!(one(fx.check(&[])).result, CheckResult::Untrusted);
        assert_eq!(
            one(fx.check(&notation_keys())).result,
            CheckResult::Untrusted
        );
    }
}

#[test]
fn cosign2_referrer_and_cosign3_bundle_verify() {
    let p256 = vec![key("release", "cosign-p256.pub", KeyKind::Cosign)];
    let other = vec![key("other", "cosign-other.pub", KeyKind::Cosign)];
    for (name, subject, format) in [
        (
            "cosign2-referrer",
            "cosign2-referrer.subject.txt",
            SignatureFormat::CosignReferrer,
        ),
        (
            "cosign3-bundle",
            "subject.txt",
            SignatureFormat::SigstoreBundle,
        ),
    ] {
        let fx = Fx::load(name, subject);
        let c = one(fx.check(&p256));
        assert_eq!(
            (c.format, c.result),
            (format, verified("release")),
            "{name}"
        );
        assert_eq!(
            one(fx.check(&other)).result,
            CheckResult::Untrusted,
            "{name}"
        );
    }
}

/// cosign 3 hashes a P-384 signature with SHA-384 where cosign 2.5 used SHA-256: both verify.
#[test]
fn cosign3_bundle_with_a_p384_key_verifies() {
    let fx = Fx::load("cosign3-p384", "cosign2-p384.subject.txt");
    let keys = cosign_keys();
    let c = one(fx.check(&keys));
    assert_eq!(
        (c.format, c.result),
        (SignatureFormat::SigstoreBundle, verified("p384"))
    );
    let others: Vec<TrustedKey> = keys.into_iter().filter(|k| k.name != "p384").collect();
    assert_eq!(one(fx.check(&others)).result, CheckResult::Untrusted);
}

#[test]
fn a_cosign3_attestation_is_no_signature() {
    let fx = Fx::load("cosign3-attestation", "subject.txt");
    let mut keys = cosign_keys();
    keys.push(key("attest", "cosign-attest.pub", KeyKind::Cosign));
    assert_eq!(fx.check(&keys), vec![]);
    assert_eq!(fx.check(&[]), vec![]);
    assert_eq!(blobs_needed(&fx.manifest).len(), 1);
    // Its statement, made a signature's, would verify with its key: the predicate decides.
    let std = base64::engine::general_purpose::STANDARD;
    let b: serde_json::Value = serde_json::from_slice(&fx.layer0()).unwrap();
    let payload = std
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        statement["predicateType"],
        "https://slsa.dev/provenance/v0.2"
    );
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        fx.subject.hex()
    );
}

#[test]
fn notation_jws_and_cose_verify_against_the_trusted_certificate() {
    let ca = vec![key("ca", "notation-berth-test.crt", KeyKind::Notation)];
    let stranger = vec![key("stranger", "notation-stranger.crt", KeyKind::Notation)];
    for (name, subject, format) in [
        ("notation-jws", "subject.txt", SignatureFormat::NotationJws),
        (
            "notation-cose",
            "notation-cose.subject.txt",
            SignatureFormat::NotationCose,
        ),
    ] {
        let fx = Fx::load(name, subject);
        let c = one(fx.check(&ca));
        assert_eq!((c.format, c.result), (format, verified("ca")), "{name}");
        assert!(
            c.signer.as_deref().unwrap().contains("CN=berth-test"),
            "{:?}",
            c.signer
        );
        let c = one(fx.check(&stranger));
        assert_eq!(c.result, CheckResult::Untrusted, "{name}");
        assert!(c.signer.as_deref().unwrap().contains("CN=berth-test"));
        assert_eq!(one(fx.check(&notation_keys())).result, verified("ca"));
        // A cosign key does not make a notation signature trusted.
        assert_eq!(one(fx.check(&cosign_keys())).result, CheckResult::Untrusted);
    }
}

#[test]
fn a_signature_of_another_digest_is_invalid_in_every_format() {
    let mut keys = cosign_keys();
    keys.extend(notation_keys());
    let elsewhere = digest_of(b"another manifest");
    for (name, fx) in all_fixtures() {
        let c = one(fx.check_as(&elsewhere, &keys));
        assert_invalid(&c, &format!("signs {} instead", fx.subject));
        // The verdict of such a manifest is invalid.
        assert_eq!(verdict(vec![c]).status, Status::Invalid, "{name}");
    }
}

fn flip_base64(s: &str, engine: &impl base64::Engine) -> String {
    let mut raw = engine.decode(s).unwrap();
    let n = raw.len();
    raw[n / 2] ^= 0x01;
    engine.encode(raw)
}

#[test]
fn a_tampered_notation_envelope_is_invalid() {
    let ca = vec![key("ca", "notation-berth-test.crt", KeyKind::Notation)];
    let jws = Fx::load("notation-jws", "subject.txt");
    let mut env: serde_json::Value = serde_json::from_slice(&jws.layer0()).unwrap();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    env["signature"] = flip_base64(env["signature"].as_str().unwrap(), &url).into();
    let c = one(jws
        .with_layer0(serde_json::to_vec(&env).unwrap())
        .check(&ca));
    assert_invalid(&c, "does not verify");
    // A payload naming another digest, re-encoded under the old signature.
    let mut env: serde_json::Value = serde_json::from_slice(&jws.layer0()).unwrap();
    let payload = String::from_utf8(url.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    let forged = payload.replace(jws.subject.hex(), &"0".repeat(64));
    env["payload"] = url.encode(forged).into();
    assert_invalid(
        &one(jws
            .with_layer0(serde_json::to_vec(&env).unwrap())
            .check(&ca)),
        "does not verify",
    );

    let cose = Fx::load("notation-cose", "notation-cose.subject.txt");
    let mut blob = cose.layer0();
    let n = blob.len();
    blob[n - 1] ^= 0x01; // the last byte of the signature
    assert_invalid(&one(cose.with_layer0(blob).check(&ca)), "does not verify");
    // A byte of the protected header (its signing time digits).
    let blob = cose.layer0();
    let at = blob.windows(4).position(|w| w == b"io.c").unwrap();
    let mut tampered = blob.clone();
    tampered[at + 1] ^= 0x20;
    let c = one(cose.with_layer0(tampered).check(&ca));
    assert!(matches!(c.result, CheckResult::Invalid { .. }), "{c:?}");
}

#[test]
fn a_tampered_cosign_signature_is_untrusted() {
    let keys = cosign_keys();
    let std = base64::engine::general_purpose::STANDARD;
    for alg in ["p256", "p384", "rsa", "ed25519"] {
        let mut fx = Fx::load(
            &format!("cosign2-{alg}"),
            &format!("cosign2-{alg}.subject.txt"),
        );
        let mut m = fx.json();
        let sig = m["layers"][0]["annotations"][cosign::SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap()
            .to_string();
        m["layers"][0]["annotations"][cosign::SIGNATURE_ANNOTATION] =
            flip_base64(&sig, &std).into();
        fx.set_json(&m);
        assert_eq!(one(fx.check(&keys)).result, CheckResult::Untrusted, "{alg}");
    }
    // The payload changed under the signature (still naming the subject).
    let fx = Fx::load("cosign2-p256", "cosign2-p256.subject.txt");
    let payload = String::from_utf8(fx.layer0())
        .unwrap()
        .replace("trust/p256", "trust/p257");
    assert_eq!(
        one(fx.with_layer0(payload.into_bytes()).check(&keys)).result,
        CheckResult::Untrusted
    );
    // A tampered bundle signature.
    let fx = Fx::load("cosign3-bundle", "subject.txt");
    let mut b: serde_json::Value = serde_json::from_slice(&fx.layer0()).unwrap();
    let sig = b["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    b["dsseEnvelope"]["signatures"][0]["sig"] = flip_base64(&sig, &std).into();
    assert_eq!(
        one(fx.with_layer0(serde_json::to_vec(&b).unwrap()).check(&keys)).result,
        CheckResult::Untrusted
    );
}

/// A keyless-shaped cosign signature: the certificate (with an e-mail identity) in the layer
/// annotations, as Fulcio-issued signatures carry it.
#[test]
fn keyless_cosign_is_untrusted_with_its_identity_or_invalid_when_it_does_not_verify() {
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    let kp = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(
        "alice@example.com".try_into().unwrap(),
    )];
    let cert = params.self_signed(&kp).unwrap();
    let signer = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &kp.serialize_der(),
        &SystemRandom::new(),
    )
    .unwrap();

    let base = Fx::load("cosign2-p256", "cosign2-p256.subject.txt");
    let payload = base.layer0();
    let sig = signer.sign(&SystemRandom::new(), &payload).unwrap();
    let std = base64::engine::general_purpose::STANDARD;
    let mut fx = base.clone();
    let mut m = fx.json();
    m["layers"][0]["annotations"] = serde_json::json!({
        cosign::SIGNATURE_ANNOTATION: std.encode(sig.as_ref()),
        cosign::CERTIFICATE_ANNOTATION: cert.pem(),
        "dev.sigstore.cosign/chain": cert.pem(),
    });
    fx.set_json(&m);
    let c = one(fx.check(&cosign_keys()));
    assert_eq!(
        (c.result, c.signer.as_deref()),
        (CheckResult::Untrusted, Some("alice@example.com"))
    );
    // Its signature over other bytes: invalid.
    let mut m2 = m.clone();
    let wrong = signer
        .sign(&SystemRandom::new(), b"something else")
        .unwrap();
    m2["layers"][0]["annotations"][cosign::SIGNATURE_ANNOTATION] =
        std.encode(wrong.as_ref()).into();
    fx.set_json(&m2);
    assert_invalid(
        &one(fx.check(&cosign_keys())),
        "does not verify with its certificate",
    );
    // A certificate annotation that is not a certificate: invalid.
    m2["layers"][0]["annotations"][cosign::CERTIFICATE_ANNOTATION] = "junk".into();
    fx.set_json(&m2);
    assert_invalid(&one(fx.check(&[])), "not a PEM certificate");
}

/// A keyless-shaped cosign 3 bundle: the signing certificate in `verificationMaterial`.
#[test]
fn keyless_bundle_is_untrusted_with_its_identity_or_invalid_when_it_does_not_verify() {
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    let kp = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
            .try_into()
            .unwrap(),
    )];
    let cert = params.self_signed(&kp).unwrap();
    let signer = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &kp.serialize_der(),
        &SystemRandom::new(),
    )
    .unwrap();
    let std = base64::engine::general_purpose::STANDARD;
    let fx = Fx::load("cosign3-bundle", "subject.txt");
    let mut b: serde_json::Value = serde_json::from_slice(&fx.layer0()).unwrap();
    let env = &b["dsseEnvelope"];
    let payload = std.decode(env["payload"].as_str().unwrap()).unwrap();
    let pae = bundle::pae(env["payloadType"].as_str().unwrap(), &payload);
    let sig = signer.sign(&SystemRandom::new(), &pae).unwrap();
    b["verificationMaterial"] =
        serde_json::json!({"certificate": {"rawBytes": std.encode(cert.der())}});
    b["dsseEnvelope"]["signatures"][0]["sig"] = std.encode(sig.as_ref()).into();
    let c = one(fx
        .with_layer0(serde_json::to_vec(&b).unwrap())
        .check(&cosign_keys()));
    assert_eq!(c.result, CheckResult::Untrusted);
    assert_eq!(
        c.signer.as_deref(),
        Some("https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main")
    );
    b["dsseEnvelope"]["signatures"][0]["sig"] = flip_base64(&std.encode(sig.as_ref()), &std).into();
    let c = one(fx
        .with_layer0(serde_json::to_vec(&b).unwrap())
        .check(&cosign_keys()));
    assert_invalid(&c, "does not verify with its certificate");
    // A message-signature bundle (cosign sign-blob's shape) cannot be checked here.
    let blobsig = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "x"}},
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": "AAAA"}, "signature": "AAAA"},
    });
    let c = one(fx
        .with_layer0(serde_json::to_vec(&blobsig).unwrap())
        .check(&cosign_keys()));
    assert_invalid(&c, "message-signature bundle");
}

#[test]
fn malformed_evidence_is_invalid_and_named() {
    let keys = cosign_keys();
    let fx = Fx::load("cosign2-p256", "cosign2-p256.subject.txt");
    let sig = digest_of(&fx.manifest);
    assert_invalid(
        &one(check(&fx.subject, &sig, b"{not json", &fx.blobs, &keys)),
        "not valid JSON",
    );
    assert_invalid(
        &one(check(
            &fx.subject,
            &sig,
            &fx.manifest,
            &HashMap::new(),
            &keys,
        )),
        "is missing",
    );
    let image = br#"{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":3}]}"#;
    assert_invalid(
        &one(check(&fx.subject, &sig, image, &fx.blobs, &keys)),
        "no signature layer",
    );
    assert!(blobs_needed(image).is_empty());

    let mut m = fx.json();
    m["layers"][0]["annotations"] = serde_json::json!({});
    let mut no_sig = fx.clone();
    no_sig.set_json(&m);
    assert_invalid(
        &one(no_sig.check(&keys)),
        "no dev.cosignproject.cosign/signature",
    );
    m["layers"][0]["annotations"] = serde_json::json!({ cosign::SIGNATURE_ANNOTATION: "%%%" });
    no_sig.set_json(&m);
    assert_invalid(&one(no_sig.check(&keys)), "not base64");
    let mut big = fx.json();
    big["layers"][0]["size"] = (MAX_EVIDENCE_BLOB + 1).into();
    let mut big_fx = fx.clone();
    big_fx.set_json(&big);
    assert!(blobs_needed(&big_fx.manifest).is_empty());
    assert_invalid(&one(big_fx.check(&keys)), "over the");
    // A blob that does not match its descriptor.
    let d: Digest = fx.json()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let swapped = HashMap::from([(d, Bytes::from_static(b"{}"))]);
    assert_invalid(
        &one(check(&fx.subject, &sig, &fx.manifest, &swapped, &keys)),
        "does not match",
    );
    assert_invalid(
        &one(fx.with_layer0(b"{}".to_vec()).check(&keys)),
        "payload does not parse",
    );
}

#[test]
fn blobs_needed_names_each_signature_layer() {
    for (name, fx) in all_fixtures() {
        let m = fx.json();
        let want: Vec<(Digest, u64)> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["digest"].as_str().unwrap().parse().unwrap(),
                    l["size"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(blobs_needed(&fx.manifest), want, "{name}");
    }
}

/// Truncated or garbled manifests and blobs never panic, and never verify.
#[test]
fn check_never_panics_on_truncated_or_garbled_input() {
    let mut keys = cosign_keys();
    keys.extend(notation_keys());
    for (name, fx) in all_fixtures() {
        let sig = digest_of(&fx.manifest);
        for len in 0..fx.manifest.len() {
            let checks = check(&fx.subject, &sig, &fx.manifest[..len], &fx.blobs, &keys);
            assert!(!checks.is_empty(), "{name} manifest[..{len}]");
        }
        let blob = fx.layer0();
        let step = (blob.len() / 150).max(1);
        for len in (0..blob.len()).step_by(step) {
            let c = one(fx.with_layer0(blob[..len].to_vec()).check(&keys));
            assert!(
                !matches!(c.result, CheckResult::Verified { .. }),
                "{name} blob[..{len}] verified"
            );
        }
        for at in (0..blob.len()).step_by(step) {
            let mut garbled = blob.clone();
            garbled[at] = garbled[at].wrapping_add(0x41);
            // Changing an unsigned byte (an unprotected header, a certificate's padding) may
            // keep it verified: this only asks for an answer (none for a bundle whose garbled
            // statement no longer has the signing predicate: an attestation).
            let checks = fx.with_layer0(garbled).check(&keys);
            assert!(
                !checks.is_empty() || name.starts_with("cosign3-"),
                "{name} garbled at {at}"
            );
        }
    }
}

#[test]
fn rfc3339_times_parse() {
    use notation::rfc3339_seconds as t;
    assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(t("2026-12-07T23:10:28Z"), Some(1_796_685_028));
    assert_eq!(t("2026-12-08T00:10:28+01:00"), Some(1_796_685_028));
    assert_eq!(t("2026-12-07T23:10:28.123456789Z"), Some(1_796_685_028));
    assert_eq!(t("2000-02-29T12:00:00-00:30"), Some(951_825_600 + 1800));
    for bad in [
        "",
        "2026-12-07",
        "2026-13-07T23:10:28Z",
        "2026-12-07T23:10:28",
        "2026-12-07T23:10:28.Z",
        "2026-12-07T2a:10:28Z",
        "2026-12-07T23:10:28+0100",
    ] {
        assert_eq!(t(bad), None, "{bad}");
    }
}

/// Notary Project envelopes made here, over certificate chains rcgen makes: the chain and
/// header rules, and the ECDSA algorithms `notation cert generate-test` (RSA only) does not make.
mod synthetic {
    use super::*;
    use ciborium::Value;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, EcdsaSigningAlgorithm};

    const SIGNED_AT: &str = "2026-12-07T23:10:28Z";

    struct Pki {
        root_pem: String,
        inter_der: Vec<u8>,
        inter_pem: String,
        leaf_der: Vec<u8>,
        leaf: EcdsaKeyPair,
    }

    fn params(cn: &str, ca: bool) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        p
    }

    fn pki(
        rc: &'static rcgen::SignatureAlgorithm,
        ring_alg: &'static EcdsaSigningAlgorithm,
        leaf_params: CertificateParams,
    ) -> Pki {
        let root = CertifiedIssuer::self_signed(
            params("Test Root", true),
            KeyPair::generate_for(rc).unwrap(),
        )
        .unwrap();
        let inter = CertifiedIssuer::signed_by(
            params("Test Intermediate", true),
            KeyPair::generate_for(rc).unwrap(),
            &root,
        )
        .unwrap();
        let leaf_key = KeyPair::generate_for(rc).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &inter).unwrap();
        Pki {
            root_pem: root.pem(),
            inter_der: inter.der().to_vec(),
            inter_pem: inter.pem(),
            leaf_der: leaf.der().to_vec(),
            leaf: EcdsaKeyPair::from_pkcs8(
                ring_alg,
                &leaf_key.serialize_der(),
                &SystemRandom::new(),
            )
            .unwrap(),
        }
    }

    fn p256() -> Pki {
        pki(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            params("Test Leaf", false),
        )
    }

    fn notation_key(name: &str, pem: &str) -> TrustedKey {
        TrustedKey {
            name: name.into(),
            kind: KeyKind::Notation,
            material: pem.into(),
        }
    }

    fn header(alg: &str) -> serde_json::Value {
        serde_json::json!({
            "alg": alg,
            "crit": ["io.cncf.notary.signingScheme"],
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": SIGNED_AT,
        })
    }

    fn payload(subject: &Digest) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"targetArtifact": {
            "digest": subject.to_string(),
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 475,
        }}))
        .unwrap()
    }

    fn jws(pki: &Pki, header: &serde_json::Value, subject: &Digest, x5c: &[&[u8]]) -> Vec<u8> {
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let std = base64::engine::general_purpose::STANDARD;
        let protected = url.encode(serde_json::to_vec(header).unwrap());
        let body = url.encode(payload(subject));
        let sig = pki
            .leaf
            .sign(
                &SystemRandom::new(),
                format!("{protected}.{body}").as_bytes(),
            )
            .unwrap();
        serde_json::to_vec(&serde_json::json!({
            "payload": body,
            "protected": protected,
            "header": {"x5c": x5c.iter().map(|c| std.encode(c)).collect::<Vec<_>>(),
                       "io.cncf.notary.signingAgent": "berth tests"},
            "signature": url.encode(sig.as_ref()),
        }))
        .unwrap()
    }

    fn cose(pki: &Pki, alg: i64, subject: &Digest, x5c: &[&[u8]]) -> Vec<u8> {
        let int = |i: i64| Value::Integer(i.into());
        let text = |s: &str| Value::Text(s.into());
        let protected = Value::Map(vec![
            (int(1), int(alg)),
            (
                int(2),
                Value::Array(vec![text("io.cncf.notary.signingScheme")]),
            ),
            (int(3), text("application/vnd.cncf.notary.payload.v1+json")),
            (text("io.cncf.notary.signingScheme"), text("notary.x509")),
            (
                text("io.cncf.notary.signingTime"),
                Value::Tag(1, Box::new(int(1_796_685_028))),
            ),
        ]);
        let mut prot = Vec::new();
        ciborium::into_writer(&protected, &mut prot).unwrap();
        let body = payload(subject);
        let mut tbs = Vec::new();
        let sig_structure = Value::Array(vec![
            text("Signature1"),
            Value::Bytes(prot.clone()),
            Value::Bytes(Vec::new()),
            Value::Bytes(body.clone()),
        ]);
        ciborium::into_writer(&sig_structure, &mut tbs).unwrap();
        let sig = pki.leaf.sign(&SystemRandom::new(), &tbs).unwrap();
        let env = Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(prot),
                Value::Map(vec![(
                    int(33),
                    Value::Array(x5c.iter().map(|c| Value::Bytes(c.to_vec())).collect()),
                )]),
                Value::Bytes(body),
                Value::Bytes(sig.as_ref().to_vec()),
            ])),
        );
        let mut out = Vec::new();
        ciborium::into_writer(&env, &mut out).unwrap();
        out
    }

    fn base_jws() -> Fx {
        Fx::load("notation-jws", "subject.txt")
    }

    #[test]
    fn a_chain_verifies_by_its_root_or_a_certificate_in_it() {
        let pki = p256();
        let fx = base_jws();
        let chain: [&[u8]; 2] = [&pki.leaf_der, &pki.inter_der];
        let signed = fx.with_layer0(jws(&pki, &header("ES256"), &fx.subject, &chain));
        let root = notation_key("root", &pki.root_pem);
        let inter = notation_key("inter", &pki.inter_pem);
        let c = one(signed.check(std::slice::from_ref(&root)));
        assert_eq!(
            (c.format, c.result),
            (SignatureFormat::NotationJws, verified("root"))
        );
        assert_eq!(c.signer.as_deref(), Some("CN=Test Leaf"));
        assert_eq!(
            one(signed.check(std::slice::from_ref(&inter))).result,
            verified("inter")
        );
        let c = one(signed.check(&notation_keys()));
        assert_eq!(
            (c.result, c.signer.as_deref()),
            (CheckResult::Untrusted, Some("CN=Test Leaf"))
        );
        // Without its intermediate the chain does not reach the root.
        let short = fx.with_layer0(jws(&pki, &header("ES256"), &fx.subject, &[&pki.leaf_der]));
        assert_eq!(
            one(short.check(std::slice::from_ref(&root))).result,
            CheckResult::Untrusted
        );
        assert_eq!(one(short.check(&[inter])).result, verified("inter"));
        // An intermediate of the same name but another key breaks the chain.
        let forged = p256();
        let broken = fx.with_layer0(jws(
            &pki,
            &header("ES256"),
            &fx.subject,
            &[&pki.leaf_der, &forged.inter_der],
        ));
        assert_invalid(
            &one(broken.check(std::slice::from_ref(&root))),
            "not issued by the next",
        );
        // A leaf (not a CA) of the trusted root cannot issue a signing certificate.
        let mut fake_inter = CertificateParams::new(Vec::<String>::new()).unwrap();
        fake_inter
            .distinguished_name
            .push(DnType::CommonName, "Not A CA");
        let not_ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let not_ca = CertifiedIssuer::self_signed(fake_inter, not_ca_key).unwrap();
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = params("Test Leaf", false)
            .signed_by(&leaf_key, &not_ca)
            .unwrap();
        let signer = Pki {
            root_pem: not_ca.pem(),
            inter_der: not_ca.der().to_vec(),
            inter_pem: not_ca.pem(),
            leaf_der: leaf.der().to_vec(),
            leaf: EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &leaf_key.serialize_der(),
                &SystemRandom::new(),
            )
            .unwrap(),
        };
        let env = jws(
            &signer,
            &header("ES256"),
            &fx.subject,
            &[&signer.leaf_der, &signer.inter_der],
        );
        let trusted_not_ca = notation_key("not-ca", &signer.root_pem);
        assert_invalid(
            &one(fx
                .with_layer0(env)
                .check(std::slice::from_ref(&trusted_not_ca))),
            "is not a CA",
        );
        // ... nor, trusted itself, be the issuer of a chain's last certificate.
        let env = jws(&signer, &header("ES256"), &fx.subject, &[&signer.leaf_der]);
        assert_eq!(
            one(fx.with_layer0(env).check(&[trusted_not_ca])).result,
            CheckResult::Untrusted
        );
    }

    #[test]
    fn the_signing_certificate_must_allow_code_signing() {
        let mut server = params("Test Leaf", false);
        server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let pki = pki_with_leaf(server);
        let fx = base_jws();
        let env = jws(
            &pki,
            &header("ES256"),
            &fx.subject,
            &[&pki.leaf_der, &pki.inter_der],
        );
        let keys = [notation_key("root", &pki.root_pem)];
        assert_invalid(
            &one(fx.with_layer0(env).check(&keys)),
            "not for code signing",
        );
        let mut encipher = params("Test Leaf", false);
        encipher.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment];
        let pki = pki_with_leaf(encipher);
        let env = jws(
            &pki,
            &header("ES256"),
            &fx.subject,
            &[&pki.leaf_der, &pki.inter_der],
        );
        let keys = [notation_key("root", &pki.root_pem)];
        assert_invalid(
            &one(fx.with_layer0(env).check(&keys)),
            "does not allow digital signatures",
        );
        let mut code = params("Test Leaf", false);
        code.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        code.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
        let pki = pki_with_leaf(code);
        let env = jws(
            &pki,
            &header("ES256"),
            &fx.subject,
            &[&pki.leaf_der, &pki.inter_der],
        );
        let keys = [notation_key("root", &pki.root_pem)];
        assert_eq!(
            one(fx.with_layer0(env).check(&keys)).result,
            verified("root")
        );
    }

    #[test]
    fn ecdsa_envelopes_verify_in_jws_and_cose() {
        let p384 = pki(
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            params("Test Leaf", false),
        );
        let p256 = p256();
        let jws_fx = base_jws();
        let cose_fx = Fx::load("notation-cose", "notation-cose.subject.txt");
        for (pki, jose, cose_alg) in [(&p256, "ES256", -7), (&p384, "ES384", -35)] {
            let keys = [notation_key("root", &pki.root_pem)];
            let chain: [&[u8]; 2] = [&pki.leaf_der, &pki.inter_der];
            let j = jws_fx.with_layer0(jws(pki, &header(jose), &jws_fx.subject, &chain));
            assert_eq!(one(j.check(&keys)).result, verified("root"), "{jose}");
            let c = cose_fx.with_layer0(cose(pki, cose_alg, &cose_fx.subject, &chain));
            let c = one(c.check(&keys));
            assert_eq!(
                (c.format, c.result),
                (SignatureFormat::NotationCose, verified("root")),
                "{cose_alg}"
            );
            // The same envelope for another subject.
            let other = digest_of(b"other");
            let c = cose_fx.with_layer0(cose(pki, cose_alg, &other, &chain));
            assert_invalid(&one(c.check(&keys)), "instead");
        }
        // An algorithm that does not fit the key, and ES512 (P-521), which berth cannot check.
        let keys = [notation_key("root", &p256.root_pem)];
        let chain: [&[u8]; 2] = [&p256.leaf_der, &p256.inter_der];
        assert_invalid(
            &one(jws_fx
                .with_layer0(jws(&p256, &header("PS256"), &jws_fx.subject, &chain))
                .check(&keys)),
            "does not fit",
        );
        assert_invalid(
            &one(jws_fx
                .with_layer0(jws(&p256, &header("ES512"), &jws_fx.subject, &chain))
                .check(&keys)),
            "ES512",
        );
        assert_invalid(
            &one(cose_fx
                .with_layer0(cose(&p256, -8, &cose_fx.subject, &chain))
                .check(&keys)),
            "COSE algorithm -8",
        );
    }

    #[test]
    fn header_and_time_rules() {
        let pki = p256();
        let fx = base_jws();
        let keys = [notation_key("root", &pki.root_pem)];
        let chain: [&[u8]; 2] = [&pki.leaf_der, &pki.inter_der];
        let with = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut h = header("ES256");
            edit(&mut h);
            one(fx
                .with_layer0(jws(&pki, &h, &fx.subject, &chain))
                .check(&keys))
        };
        assert_eq!(with(&|_| {}).result, verified("root"));
        assert_invalid(
            &with(&|h| {
                h["crit"] = serde_json::json!([
                    "io.cncf.notary.signingScheme",
                    "io.cncf.notary.verificationPlugin"
                ]);
                h["io.cncf.notary.verificationPlugin"] = "com.example.plugin".into();
            }),
            "critical header io.cncf.notary.verificationPlugin is not understood",
        );
        assert_invalid(
            &with(&|h| h["crit"] = serde_json::json!([])),
            "signingScheme is not marked critical",
        );
        assert_invalid(
            &with(&|h| {
                h["crit"] =
                    serde_json::json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"])
            }),
            "critical header io.cncf.notary.expiry is missing",
        );
        assert_invalid(
            &with(&|h| h["cty"] = "application/json".into()),
            "content type",
        );
        assert_invalid(
            &with(&|h| h["io.cncf.notary.signingScheme"] = "other".into()),
            "signing scheme",
        );
        assert_invalid(
            &with(&|h| {
                h.as_object_mut()
                    .unwrap()
                    .remove("io.cncf.notary.signingTime");
            }),
            "no signing time",
        );
        assert_invalid(
            &with(&|h| h["io.cncf.notary.signingTime"] = "yesterday".into()),
            "not an RFC 3339 time",
        );
        assert_invalid(
            &with(&|h| {
                h["crit"] =
                    serde_json::json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]);
                h["io.cncf.notary.expiry"] = "2026-12-07T23:00:00Z".into();
            }),
            "expires before",
        );
        let later = with(&|h| {
            h["crit"] =
                serde_json::json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]);
            h["io.cncf.notary.expiry"] = "2027-12-07T23:00:00Z".into();
        });
        assert_eq!(later.result, verified("root"));
        // Signed before the leaf certificate was valid.
        assert_invalid(
            &with(&|h| h["io.cncf.notary.signingTime"] = "1970-01-02T00:00:00Z".into()),
            "outside the validity",
        );
        let mut expired = params("Test Leaf", false);
        expired.not_after = rcgen::date_time_ymd(2000, 1, 1);
        let old = pki_with_leaf(expired);
        let keys = [notation_key("root", &old.root_pem)];
        let e = fx.with_layer0(jws(
            &old,
            &header("ES256"),
            &fx.subject,
            &[&old.leaf_der, &old.inter_der],
        ));
        assert_invalid(
            &one(e.check(&keys)),
            "outside the validity of certificate CN=Test Leaf",
        );
        // No certificate at all.
        assert_invalid(
            &one(fx
                .with_layer0(jws(&pki, &header("ES256"), &fx.subject, &[]))
                .check(&keys)),
            "no certificate",
        );
    }

    fn pki_with_leaf(leaf: CertificateParams) -> Pki {
        pki(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            leaf,
        )
    }
}
