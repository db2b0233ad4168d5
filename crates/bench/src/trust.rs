//! `berth-bench trust`: what verifying signatures costs concurrent pushes. berth (with auth,
//! embedded) trusts one cosign key of an organization; pushers push small images into it for
//! a fixed window while nothing else happens, then for the same window while a signer pushes
//! images with cosign-format signatures (`sha256-<hex>.sig`, ECDSA P-256, made here), which
//! berth verifies in the background; then alone again. The report gives both push rates, their
//! ratio, and how long the signatures took to show as verified in the tag API.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use bytes::Bytes;
use http::Method;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use sha2::{Digest, Sha256};

use crate::client::{Call, Conn, Payload, Target};
use crate::content::{Image, CONFIG_TYPE, MANIFEST_TYPE};
use crate::ops;

const ORG: &str = "bench";
const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The DER of an ECDSA P-256 SubjectPublicKeyInfo up to its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(clap::Args)]
pub struct TrustArgs {
    /// The berth binary (default: `berth` beside this program).
    #[arg(long)]
    berth: Option<PathBuf>,
    /// Signed images the signer pushes in each measured window.
    #[arg(long, default_value_t = 1000)]
    images: u64,
    /// Concurrent pushers whose rate is measured.
    #[arg(long, default_value_t = 4)]
    pushers: usize,
    /// How often the three windows (alone, with signing, alone) are measured.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Data directories and logs (emptied first). Default: `target/berth-bench-trust`.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// 50 images and short windows (a check that it runs, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Where the report goes (also printed).
    #[arg(long, default_value = "benchmarks/trust.md")]
    out: PathBuf,
}

/// A cosign key pair made here.
struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> anyhow::Result<Signer> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("generate a P-256 key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow::anyhow!("load the P-256 key"))?;
        Ok(Signer { key, rng })
    }

    /// The public key as `cosign.pub` holds it.
    fn public_pem(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The config, payload and manifest of a cosign signature of `digest` in `repo`.
    fn signature(&self, repo: &str, digest: &str) -> anyhow::Result<SignatureParts> {
        let payload = Bytes::from(format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        ));
        let payload_digest = sha256(&payload);
        let signature = self
            .key
            .sign(&self.rng, &payload)
            .map_err(|_| anyhow::anyhow!("sign"))?;
        let signature = base64::engine::general_purpose::STANDARD.encode(signature.as_ref());
        let config = Bytes::from(format!(
            r#"{{"architecture":"","os":"","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{payload_digest}"]}}}}"#
        ));
        let config_digest = sha256(&config);
        let manifest = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"{CONFIG_TYPE}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{SIMPLESIGNING}","digest":"{payload_digest}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"{signature}"}}}}]}}"#,
            config.len(),
            payload.len()
        ));
        Ok(SignatureParts {
            tag: format!("{}.sig", digest.replace(':', "-")),
            config,
            config_digest,
            payload,
            payload_digest,
            manifest,
        })
    }
}

struct SignatureParts {
    tag: String,
    config: Bytes,
    config_digest: String,
    payload: Bytes,
    payload_digest: String,
    manifest: Bytes,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An `/api/v1` call as the superuser; the body on success.
async fn api(
    conn: &mut Conn,
    basic: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<Bytes> {
    let mut call = Call::new(method, path.to_string()).header("authorization", basic);
    if let Some(body) = body {
        call = call
            .header("content-type", "application/json")
            .payload(Payload::Bytes(Bytes::from(body)));
    }
    let reply = conn.send(call, true).await?;
    if !reply.status.is_success() {
        bail!(
            "{path}: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    Ok(reply.body)
}

/// Pushes `count` images into `repo`, each with a cosign signature (`signed`) or, as the
/// control, with an artifact of the same shape that is no signature (a plain layer type under
/// an ordinary tag), so the two windows differ only in what berth verifies.
async fn push_companions(
    target: Arc<Target>,
    signer: Arc<Signer>,
    repo: String,
    first: u64,
    count: u64,
    signed: bool,
) -> anyhow::Result<()> {
    let mut conn = Conn::new(target);
    for n in first..first + count {
        let image = Image::new(n, 512);
        ops::push_image(&mut conn, &repo, &format!("s{n}"), &image).await?;
        let sig = signer.signature(&repo, &image.manifest_digest)?;
        let (tag, manifest) = if signed {
            (sig.tag.clone(), sig.manifest.clone())
        } else {
            let plain = String::from_utf8_lossy(&sig.manifest)
                .replace(SIMPLESIGNING, "application/vnd.oci.image.layer.v1.tar");
            (format!("c{n}"), Bytes::from(plain))
        };
        ops::push_bytes(&mut conn, &repo, &sig.config, &sig.config_digest).await?;
        ops::push_bytes(&mut conn, &repo, &sig.payload, &sig.payload_digest).await?;
        ops::put_manifest(&mut conn, &repo, &tag, &manifest).await?;
    }
    Ok(())
}

/// How many tags of `repo` the tag API reports as verified.
async fn verified_tags(conn: &mut Conn, basic: &str, repo: &str) -> anyhow::Result<u64> {
    let mut verified = 0;
    for page in 1.. {
        let body = api(
            conn,
            basic,
            Method::GET,
            &format!("/api/v1/repository/{repo}/tag/?limit=100&page={page}&onlyActiveTags=true"),
            None,
        )
        .await?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let tags = v["tags"].as_array().cloned().unwrap_or_default();
        verified += tags
            .iter()
            .filter(|t| t["signature"]["status"] == "verified")
            .count() as u64;
        if v["has_additional"] != true || tags.is_empty() {
            break;
        }
    }
    Ok(verified)
}

/// One window: pushers push into `load` while the companion pusher pushes `count` images into
/// `repo`; the pushers' images per second and the window's length.
#[allow(clippy::too_many_arguments)]
async fn window(
    target: &Arc<Target>,
    signer: &Arc<Signer>,
    load: &str,
    repo: &str,
    pushers: usize,
    first: u64,
    count: u64,
    signed: bool,
) -> anyhow::Result<(f64, Duration)> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let load_task = tokio::spawn(push_until(
        target.clone(),
        load.to_string(),
        pushers,
        first + 10_000_000,
        stop.clone(),
    ));
    let companions = push_companions(
        target.clone(),
        signer.clone(),
        repo.to_string(),
        first,
        count,
        signed,
    )
    .await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let pushed = load_task.await.context("the pushers panicked")??;
    companions?;
    Ok((pushed as f64 / elapsed.as_secs_f64(), elapsed))
}

/// Pushes images from `pushers` connections into `repo` until `stop`; returns images pushed.
async fn push_until(
    target: Arc<Target>,
    repo: String,
    pushers: usize,
    first: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicU64::new(first));
    let mut tasks = Vec::new();
    for _ in 0..pushers {
        let (target, repo, next, stop) = (target.clone(), repo.clone(), next.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target);
            let mut pushed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let image = Image::new(n, 512);
                ops::push_image(&mut conn, &repo, &format!("t{n}"), &image).await?;
                pushed += 1;
            }
            anyhow::Ok(pushed)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.context("a pusher panicked")??;
    }
    Ok(total)
}

struct Round {
    control: f64,
    signed: f64,
    signing: Duration,
    verified_after_last: Duration,
}

pub async fn run(args: &TrustArgs) -> anyhow::Result<()> {
    let (berth, work) = crate::berth_and_work(
        args.berth.as_deref(),
        args.work_dir.as_deref(),
        "target/berth-bench-trust",
    )?;
    let images = if args.quick {
        args.images.min(50)
    } else {
        args.images
    };
    let server = crate::servers::berth(&berth, &work, true).await?;
    let (user, password) = server
        .credentials
        .clone()
        .context("berth with auth has an admin")?;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let target = Target::connect(&server.bases, Some((&user, &password))).await?;
    let mut conn = Conn::new(target.clone());
    let org = serde_json::json!({ "name": ORG }).to_string();
    api(
        &mut conn,
        &basic,
        Method::POST,
        "/api/v1/organization/",
        Some(org),
    )
    .await?;
    let signer = Arc::new(Signer::new()?);
    let key =
        serde_json::json!({"name": "bench", "kind": "cosign", "public_key": signer.public_pem()});
    api(
        &mut conn,
        &basic,
        Method::POST,
        &format!("/api/v1/organization/{ORG}/trust/keys"),
        Some(key.to_string()),
    )
    .await?;

    let load = format!("{ORG}/load");
    let repeats = args.repeats.max(1);
    let mut rounds = Vec::new();
    for repeat in 0..repeats {
        let first = repeat as u64 * 2 * images;
        // Alternate which window goes first, so drift on the machine favours neither.
        let order = if repeat % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut control = 0.0;
        let mut signed = (0.0, Duration::ZERO, Duration::ZERO);
        for (i, with_signatures) in order.into_iter().enumerate() {
            let repo = format!(
                "{ORG}/{}-{repeat}",
                if with_signatures { "signed" } else { "control" }
            );
            let start = first + i as u64 * images;
            let (rate, elapsed) = window(
                &target,
                &signer,
                &load,
                &repo,
                args.pushers,
                start,
                images,
                with_signatures,
            )
            .await?;
            if with_signatures {
                let last = Instant::now();
                let deadline = last + Duration::from_secs(600);
                loop {
                    let verified = verified_tags(&mut conn, &basic, &repo).await?;
                    if verified >= images {
                        break;
                    }
                    if Instant::now() > deadline {
                        bail!("{verified} of {images} signed images verified after 10 minutes");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                signed = (rate, elapsed, last.elapsed());
            } else {
                control = rate;
            }
            eprintln!(
                "round {}/{repeats}: {} window {:.1} s, pushers {rate:.1} images/s",
                repeat + 1,
                if with_signatures { "signed" } else { "control" },
                elapsed.as_secs_f64()
            );
        }
        rounds.push(Round {
            control,
            signed: signed.0,
            signing: signed.1,
            verified_after_last: signed.2,
        });
    }
    server.stop().await;

    let mut table = String::from(
        "| round | pushes/s, control | pushes/s, while signatures are verified | ratio | signed images | signing window (s) | all verified after the last push (s) |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (i, r) in rounds.iter().enumerate() {
        table.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.3} | {images} | {:.1} | {:.2} |\n",
            i + 1,
            r.control,
            r.signed,
            r.signed / r.control,
            r.signing.as_secs_f64(),
            r.verified_after_last.as_secs_f64()
        ));
    }
    let mut ratios: Vec<f64> = rounds.iter().map(|r| r.signed / r.control).collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    let median = ratios[ratios.len() / 2];
    let report = format!(
        "# Signature verification beside concurrent pushes\n\n\
         Written by `berth-bench trust --images {images} --pushers {} --repeats {repeats}{}` on {}. \
         berth runs on the embedded default (SQLite + files) with auth; organization `{ORG}` trusts one cosign key (ECDSA P-256). \
         In each round, {} pushers push small images (a config and three 512-byte layers) into `{ORG}/load` during two windows, in alternating order: \
         in one, a companion client pushes {images} images each followed by a cosign signature (`sha256-<hex>.sig`, simple-signing payload, signed with the trusted key), which berth verifies in the background; \
         in the control window it pushes the same images and manifests of the same shape that are no signatures. \
         The last column is how long after the last signature was stored the tag API reported every image as verified.\n\n\
         {table}\nMedian ratio: **{median:.3}** (1.0 = verification costs the pushers nothing).\n",
        args.pushers,
        if args.quick { " --quick" } else { "" },
        crate::today().await,
        args.pushers,
    );
    print!("{report}");
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, report).with_context(|| format!("write {}", args.out.display()))?;
    if !args.quick && median < 0.9 {
        eprintln!(
            "warning: verification slowed the pushers by more than 10% (median ratio {median:.3})"
        );
    }
    Ok(())
}
