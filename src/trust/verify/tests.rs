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
            // keep it verified: this only asks for an answer.
            assert!(
                !fx.with_layer0(garbled).check(&keys).is_empty(),
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
