//! Notary Project signatures: a JWS (`application/jose+json`) or COSE_Sign1
//! (`application/cose`) envelope, signed by the leaf of its `x5c` / `x5chain` certificates,
//! whose payload's `targetArtifact.digest` names the signed manifest.
//!
//! A key-based check (no timestamping authority, no revocation): the envelope signature, the
//! chain (each certificate signed by the next, no SHA-1), the critical headers, the content
//! type, the signing time inside every certificate's validity and before the signature's
//! expiry, and whether the chain ends at, or is issued by, a trusted certificate. The checks
//! do not depend on the clock, so a stored verdict stays right until the evidence or the keys
//! change.

use base64::Engine as _;
use ciborium::Value;
use oci::Digest;
use serde::Deserialize;
use x509_parser::prelude::X509Certificate;

use super::{invalid, Trusted};
use crate::trust::keys::{parse_certificate, PublicKey};
use crate::trust::CheckResult;

const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
/// The critical headers berth understands (a verification plugin's it cannot honour).
const KNOWN_CRITICAL: [&str; 3] = [SIGNING_SCHEME, EXPIRY, AUTHENTIC_SIGNING_TIME];
/// SHA-1 signature algorithms (sha1WithRSAEncryption, its OIW alias, ecdsa-with-SHA1).
const SHA1_SIGNATURES: [&str; 3] = ["1.2.840.113549.1.1.5", "1.3.14.3.2.29", "1.2.840.10045.4.1"];

/// What either envelope yields, checked the same way.
struct Envelope {
    /// JWS algorithm name (COSE algorithms mapped to theirs).
    alg: String,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    payload: Vec<u8>,
    certificates: Vec<Vec<u8>>,
    content_type: Option<String>,
    scheme: Option<String>,
    critical: Vec<String>,
    /// Header names present in the protected header.
    protected_names: Vec<String>,
    signing_time: Option<i64>,
    expiry: Option<i64>,
}

#[derive(Deserialize)]
struct Jws {
    payload: String,
    protected: String,
    #[serde(default)]
    header: JwsHeader,
    signature: String,
}

#[derive(Deserialize, Default)]
struct JwsHeader {
    #[serde(default)]
    x5c: Vec<String>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "targetArtifact")]
    target_artifact: Target,
}

#[derive(Deserialize)]
struct Target {
    digest: String,
}

pub(crate) fn check_jws(
    subject: &Digest,
    blob: &[u8],
    trusted: &Trusted<'_>,
) -> (Option<String>, CheckResult) {
    match parse_jws(blob) {
        Ok(env) => finish(subject, env, trusted),
        Err(reason) => invalid(reason),
    }
}

pub(crate) fn check_cose(
    subject: &Digest,
    blob: &[u8],
    trusted: &Trusted<'_>,
) -> (Option<String>, CheckResult) {
    match parse_cose(blob) {
        Ok(env) => finish(subject, env, trusted),
        Err(reason) => invalid(reason),
    }
}

fn parse_jws(blob: &[u8]) -> Result<Envelope, String> {
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let std = base64::engine::general_purpose::STANDARD;
    let jws: Jws = serde_json::from_slice(blob)
        .map_err(|e| format!("the JWS envelope does not parse: {e}"))?;
    let protected = url
        .decode(jws.protected.trim_end_matches('='))
        .map_err(|e| format!("the JWS protected header is not base64url: {e}"))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&protected)
        .map_err(|e| format!("the JWS protected header does not parse: {e}"))?;
    let text = |k: &str| header.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let alg = text("alg").ok_or("the JWS protected header has no alg")?;
    let critical = match header.get("crit") {
        None => Vec::new(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or("crit holds a non-string")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("the JWS crit header is not an array".into()),
    };
    let time = |k: &str| -> Result<Option<i64>, String> {
        match header.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(rfc3339_seconds)
                .map(Some)
                .ok_or_else(|| format!("the {k} header is not an RFC 3339 time")),
        }
    };
    let signing_time = match time(AUTHENTIC_SIGNING_TIME)? {
        Some(t) => Some(t),
        None => time(SIGNING_TIME)?,
    };
    let expiry = time(EXPIRY)?;
    let certificates = jws
        .header
        .x5c
        .iter()
        .map(|c| std.decode(c.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("an x5c certificate is not base64: {e}"))?;
    Ok(Envelope {
        alg,
        signing_input: format!("{}.{}", jws.protected, jws.payload).into_bytes(),
        signature: url
            .decode(jws.signature.trim_end_matches('='))
            .map_err(|e| format!("the JWS signature is not base64url: {e}"))?,
        payload: url
            .decode(jws.payload.trim_end_matches('='))
            .map_err(|e| format!("the JWS payload is not base64url: {e}"))?,
        certificates,
        content_type: text("cty"),
        scheme: text(SIGNING_SCHEME),
        critical,
        protected_names: header.keys().cloned().collect(),
        signing_time,
        expiry,
    })
}

fn map_get<'v>(map: &'v [(Value, Value)], key: &Value) -> Option<&'v Value> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn cose_name(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        Value::Integer(i) => Some(i128::from(*i).to_string()),
        _ => None,
    }
}

fn cose_time(v: Option<&Value>, name: &str) -> Result<Option<i64>, String> {
    match v {
        None => Ok(None),
        Some(Value::Tag(1, inner)) => match inner.as_ref() {
            Value::Integer(i) => i64::try_from(i128::from(*i))
                .map(Some)
                .map_err(|_| format!("the {name} header is out of range")),
            Value::Float(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(*f as i64)),
            _ => Err(format!("the {name} header is not an epoch time")),
        },
        Some(_) => Err(format!("the {name} header is not a tagged epoch time")),
    }
}

fn parse_cose(blob: &[u8]) -> Result<Envelope, String> {
    let value: Value =
        ciborium::from_reader(blob).map_err(|e| format!("the COSE envelope is not CBOR: {e}"))?;
    let value = match value {
        Value::Tag(18, inner) => *inner,
        Value::Tag(t, _) => {
            return Err(format!(
                "the COSE envelope has tag {t}, not COSE_Sign1 (18)"
            ))
        }
        v => v,
    };
    let Value::Array(parts) = value else {
        return Err("the COSE envelope is not a COSE_Sign1 array".into());
    };
    let [Value::Bytes(protected_raw), Value::Map(unprotected), Value::Bytes(payload), Value::Bytes(signature)] =
        parts.as_slice()
    else {
        return Err("the COSE_Sign1 is not [protected, unprotected, payload, signature] with an embedded payload".into());
    };
    let protected: Value = ciborium::from_reader(protected_raw.as_slice())
        .map_err(|e| format!("the COSE protected header is not CBOR: {e}"))?;
    let Value::Map(protected) = protected else {
        return Err("the COSE protected header is not a map".into());
    };
    let int = |i: i64| Value::Integer(i.into());
    let text = |s: &str| Value::Text(s.to_string());
    let alg = match map_get(&protected, &int(1)) {
        Some(Value::Integer(i)) => match i128::from(*i) {
            -37 => "PS256",
            -38 => "PS384",
            -39 => "PS512",
            -7 => "ES256",
            -35 => "ES384",
            -36 => "ES512",
            other => return Err(format!("COSE algorithm {other} is not one notation uses")),
        }
        .to_string(),
        _ => return Err("the COSE protected header has no algorithm".into()),
    };
    let critical = match map_get(&protected, &int(2)) {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| cose_name(v).ok_or("crit holds neither a label nor a name"))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("the COSE crit header is not an array".into()),
    };
    let content_type = match map_get(&protected, &int(3)) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let scheme = match map_get(&protected, &text(SIGNING_SCHEME)) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let signing_time = match cose_time(
        map_get(&protected, &text(AUTHENTIC_SIGNING_TIME)),
        AUTHENTIC_SIGNING_TIME,
    )? {
        Some(t) => Some(t),
        None => cose_time(map_get(&protected, &text(SIGNING_TIME)), SIGNING_TIME)?,
    };
    let expiry = cose_time(map_get(&protected, &text(EXPIRY)), EXPIRY)?;
    let certificates = match map_get(unprotected, &int(33)) {
        Some(Value::Bytes(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|c| match c {
                Value::Bytes(b) => Ok(b.clone()),
                _ => Err("an x5chain entry is not a byte string".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let sig_structure = Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected_raw.clone()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.clone()),
    ]);
    let mut signing_input = Vec::new();
    ciborium::into_writer(&sig_structure, &mut signing_input)
        .map_err(|e| format!("cannot encode the COSE Sig_structure: {e}"))?;
    Ok(Envelope {
        alg,
        signing_input,
        signature: signature.clone(),
        payload: payload.clone(),
        certificates,
        content_type,
        scheme,
        critical,
        protected_names: protected.iter().filter_map(|(k, _)| cose_name(k)).collect(),
        signing_time,
        expiry,
    })
}

fn finish(subject: &Digest, env: Envelope, trusted: &Trusted<'_>) -> (Option<String>, CheckResult) {
    if env.certificates.is_empty() {
        return invalid("the envelope carries no certificate");
    }
    let mut chain: Vec<(X509Certificate<'_>, PublicKey)> = Vec::new();
    for (i, der) in env.certificates.iter().enumerate() {
        match parse_certificate(der) {
            Ok(c) => chain.push(c),
            Err(e) => return invalid(format!("certificate {i} of the chain: {e}")),
        }
    }
    let leaf = &chain[0].0;
    let signer = Some(leaf.subject().to_string());
    let bad = |reason: String| (signer.clone(), CheckResult::Invalid { reason });
    match chain[0]
        .1
        .verify_jose(&env.alg, &env.signing_input, &env.signature)
    {
        Err(reason) => return bad(reason),
        Ok(false) => {
            return bad(
                "the envelope signature does not verify with its signing certificate".into(),
            )
        }
        Ok(true) => {}
    }
    let target = match serde_json::from_slice::<Payload>(&env.payload) {
        Ok(p) => p.target_artifact.digest,
        Err(e) => return bad(format!("the signed payload does not parse: {e}")),
    };
    if target != subject.to_string() {
        return bad(format!("signs {target} instead"));
    }
    if env.content_type.as_deref() != Some(PAYLOAD_TYPE) {
        return bad(format!(
            "the content type is {:?}, not {PAYLOAD_TYPE}",
            env.content_type
        ));
    }
    match env.scheme.as_deref() {
        Some("notary.x509") | Some("notary.x509.signingAuthority") => {}
        other => return bad(format!("signing scheme {other:?} is not notary.x509")),
    }
    for c in &env.critical {
        if !KNOWN_CRITICAL.contains(&c.as_str()) {
            return bad(format!("critical header {c} is not understood"));
        }
        if !env.protected_names.contains(c) {
            return bad(format!("critical header {c} is missing"));
        }
    }
    for required in [Some(SIGNING_SCHEME), env.expiry.map(|_| EXPIRY)]
        .into_iter()
        .flatten()
    {
        if !env.critical.iter().any(|c| c == required) {
            return bad(format!("header {required} is not marked critical"));
        }
    }
    let Some(signed_at) = env.signing_time else {
        return bad("the envelope has no signing time".into());
    };
    if env.expiry.is_some_and(|e| e <= signed_at) {
        return bad("the signature expires before it was made".into());
    }
    if let Err(reason) = may_sign(&chain[0].0) {
        return bad(reason);
    }
    for (i, (cert, _)) in chain.iter().enumerate() {
        if i > 0 && !may_issue(cert) {
            return bad(format!(
                "certificate {} issues another but is not a CA",
                cert.subject()
            ));
        }
        let oid = cert.signature_algorithm.algorithm.to_id_string();
        if SHA1_SIGNATURES.contains(&oid.as_str()) {
            return bad(format!(
                "certificate {} is signed with SHA-1",
                cert.subject()
            ));
        }
        let v = cert.validity();
        if signed_at < v.not_before.timestamp() || signed_at > v.not_after.timestamp() {
            return bad(format!(
                "signed outside the validity of certificate {}",
                cert.subject()
            ));
        }
        if let Some((next, _)) = chain.get(i + 1) {
            if cert.issuer() != next.subject()
                || cert.verify_signature(Some(next.public_key())).is_err()
            {
                return bad(format!(
                    "certificate {} is not issued by the next in the chain, {}",
                    cert.subject(),
                    next.subject()
                ));
            }
        }
    }
    let last = &chain[chain.len() - 1].0;
    for (name, der) in &trusted.notation {
        if env.certificates.iter().any(|c| c == der) {
            return (
                signer,
                CheckResult::Verified {
                    key: name.to_string(),
                },
            );
        }
        if let Ok((root, _)) = parse_certificate(der) {
            if last.issuer() == root.subject()
                && may_issue(&root)
                && last.verify_signature(Some(root.public_key())).is_ok()
            {
                return (
                    signer,
                    CheckResult::Verified {
                        key: name.to_string(),
                    },
                );
            }
        }
    }
    (signer, CheckResult::Untrusted)
}

/// Whether a certificate may issue others: a CA (basic constraints) whose key usage, if
/// stated, includes certificate signing.
fn may_issue(cert: &X509Certificate<'_>) -> bool {
    let ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let usage = match cert.key_usage() {
        Ok(None) => true,
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Err(_) => false,
    };
    ca && usage
}

/// Whether the leaf may sign artifacts: key usage, if stated, includes digital signature;
/// extended key usage, if stated, includes code signing (the Notary Project's rule).
fn may_sign(leaf: &X509Certificate<'_>) -> Result<(), String> {
    match leaf.key_usage() {
        Ok(Some(ku)) if !ku.value.digital_signature() => {
            return Err(format!(
                "the signing certificate {} does not allow digital signatures",
                leaf.subject()
            ))
        }
        Err(e) => return Err(format!("the signing certificate's key usage: {e}")),
        _ => {}
    }
    match leaf.extended_key_usage() {
        Ok(Some(eku)) if !(eku.value.code_signing || eku.value.any) => Err(format!(
            "the signing certificate {} is not for code signing",
            leaf.subject()
        )),
        Err(e) => Err(format!("the signing certificate's extended key usage: {e}")),
        _ => Ok(()),
    }
}

/// Seconds since the epoch of an RFC 3339 time (`2026-12-07T23:10:28Z`, fractions and offsets
/// allowed).
pub(crate) fn rfc3339_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let o = oh * 3600 + om * 60;
            if &rest[..1] == "+" {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}
