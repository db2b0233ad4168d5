//! Signature trust (issue 19), driving the real server over HTTP on whichever database the
//! suite runs against (`BERTH_TEST_DB_URI` for PostgreSQL): the store's keys, policies and
//! verdict marks (moved by triggers when signatures are pushed or deleted and when keys
//! change); the keys and policy API with its permissions and usage logs; the verdicts the
//! worker computes for signatures made in the test with P-256 keys generated here; enforcement
//! of `require: verified` on manifests, blobs and index children; and a policy change on one
//! replica enforced by another at its next request. Every wait polls with a deadline.

use crate::common;

use std::time::{Duration, Instant};

use base64::Engine;
use berth::metadata::trust::{PendingVerdict, Requirement, StoredKey, TrustScope, TrustStore};
use berth::trust::{KeyKind, Status, Verdict};
use common::*;
use oci::{Digest, RepoName};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};

/// Guard against a hang, never a way to wait: every wait below ends on an event.
const DEADLINE: Duration = Duration::from_secs(60);

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A cosign key pair made for the test: ECDSA P-256, the public half as cosign writes it.
struct Signer {
    pair: EcdsaKeyPair,
    public_pem: String,
}

impl Signer {
    fn new() -> Signer {
        let kp = rcgen::KeyPair::generate().expect("key pair");
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &kp.serialize_der(),
            &SystemRandom::new(),
        )
        .expect("ring key");
        Signer {
            pair,
            public_pem: kp.public_key_pem(),
        }
    }

    /// cosign's signature annotation of `payload`.
    fn sign(&self, payload: &[u8]) -> String {
        let sig = self.pair.sign(&SystemRandom::new(), payload).expect("sign");
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }
}

/// The simple-signing payload cosign signs for `subject`.
fn payload_of(repo: &str, subject: &str) -> String {
    json!({
        "critical": {
            "identity": {"docker-reference": format!("localhost/{repo}")},
            "image": {"docker-manifest-digest": subject},
            "type": "cosign container image signature",
        },
        "optional": null,
    })
    .to_string()
}

/// Pushes a cosign-tag-shaped signature of `subject` (`sha256-<hex>.sig`, one simple-signing
/// layer whose payload names the subject), signed by `signer` (or carrying bytes that are no
/// signature); returns its digest and its layer's digest.
async fn push_cosign_tag_signature(
    server: &TestServer,
    repo: &str,
    subject: &str,
    signer: Option<&Signer>,
) -> (String, String) {
    push_signature_naming(server, repo, subject, subject, signer).await
}

/// [`push_cosign_tag_signature`] of `subject` whose payload names `named` (another digest,
/// for a signature that is invalid for its subject).
async fn push_signature_naming(
    server: &TestServer,
    repo: &str,
    subject: &str,
    named: &str,
    signer: Option<&Signer>,
) -> (String, String) {
    let payload = payload_of(repo, named);
    let signature = signer.map_or_else(
        || "bm90IGEgc2lnbmF0dXJl".to_string(),
        |s| s.sign(payload.as_bytes()),
    );
    let (client, base) = (&server.client, &server.base);
    let config = br#"{"architecture":"","os":""}"#;
    let c = push_blob(client, base, repo, config).await;
    let l = push_blob(client, base, repo, payload.as_bytes()).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": IMAGE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len()},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": l,
            "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": signature},
        }],
    }))
    .expect("json");
    let tag = format!("{}.sig", subject.replace(':', "-"));
    let r = put_manifest(client, base, repo, &tag, IMAGE, &manifest).await;
    assert_eq!(r.status(), 201, "push signature");
    (sha256(&manifest), l)
}

/// Pushes an OCI 1.1 referrer-shaped cosign signature of `subject`; returns its digest.
async fn push_referrer_signature(server: &TestServer, repo: &str, subject: &str) -> String {
    let (client, base) = (&server.client, &server.base);
    let head = exec(client.head(format!("{base}/v2/{repo}/manifests/{subject}"))).await;
    let size: u64 = header(&head, "content-length").parse().expect("size");
    let empty = push_blob(client, base, repo, b"{}").await;
    let payload = payload_of(repo, subject);
    let l = push_blob(client, base, repo, payload.as_bytes()).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": IMAGE,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": l,
            "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": "bm90IGEgc2lnbmF0dXJl"},
        }],
        "subject": {"mediaType": IMAGE, "digest": subject, "size": size},
    }))
    .expect("json");
    let digest = sha256(&manifest);
    let r = put_manifest(client, base, repo, &digest, IMAGE, &manifest).await;
    assert_eq!(r.status(), 201, "push referrer signature");
    digest
}

/// Pushes an image whose layer is `content`; returns (manifest digest, layer digest).
async fn image(server: &TestServer, repo: &str, tag: &str, content: &[u8]) -> (String, String) {
    let digest = push_image(&server.client, &server.base, repo, tag, content).await;
    (digest, sha256(content))
}

fn key(id: &str, scope: TrustScope, name: &str) -> StoredKey {
    StoredKey {
        id: id.into(),
        scope,
        name: name.into(),
        kind: KeyKind::Cosign,
        material: "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----".into(),
        fingerprint: format!("sha256:{id}"),
        description: "ECDSA P-256".into(),
        created_at: 1,
    }
}

fn with_status(status: Status) -> Verdict {
    let mut v = berth::trust::verdict(Vec::new());
    v.status = status;
    v
}

/// The verdict the API shows for `digest`, once it is current and `wanted` holds.
async fn wait_for_verdict(
    server: &TestServer,
    repo: &str,
    digest: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let r = server
            .api(
                "GET",
                &format!("/api/v1/repository/{repo}/manifest/{digest}/signatures"),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["current"] == true && wanted(&r.body) {
            return r.body;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the verdict of {digest} never became what was wanted: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The store's keys, policies, verdict marks and the triggers that move them.
#[tokio::test]
async fn store_keeps_keys_policies_and_verdict_marks() {
    let mut server = TestServer::start().await;
    let store = server.metadata_store().await;
    let store: &dyn TrustStore = &*store;
    let repo: RepoName = "acme/app".parse().unwrap();
    let other: RepoName = "acme/other".parse().unwrap();

    // Keys: per scope, name unique per scope, keys_for = repository's + namespace's.
    let ns = TrustScope::Namespace("acme".into());
    let rs = TrustScope::Repository(repo.clone());
    store
        .add_trust_key(&key("k1", ns.clone(), "release"))
        .await
        .unwrap();
    store
        .add_trust_key(&key("k2", rs.clone(), "release"))
        .await
        .unwrap();
    let taken = store.add_trust_key(&key("k3", ns.clone(), "release")).await;
    assert!(
        matches!(taken, Err(berth::metadata::MetadataError::Conflict)),
        "{taken:?}"
    );
    assert_eq!(store.trust_keys(&ns).await.unwrap().len(), 1);
    assert_eq!(store.trust_keys(&rs).await.unwrap()[0].scope, rs);
    assert_eq!(store.keys_for(&repo).await.unwrap().len(), 2);
    assert_eq!(store.keys_for(&other).await.unwrap().len(), 1);
    assert!(
        !store.delete_trust_key(&ns, "k2").await.unwrap(),
        "k2 is not the namespace's"
    );
    assert!(store.delete_trust_key(&rs, "k2").await.unwrap());
    assert_eq!(store.keys_for(&repo).await.unwrap().len(), 1);

    // Policies: the stricter wins and the namespace's is named first.
    assert_eq!(store.trust_policy(&ns).await.unwrap(), Requirement::None);
    assert_eq!(store.policy_in_force(&repo).await.unwrap(), None);
    store
        .set_trust_policy(&rs, Requirement::Verified)
        .await
        .unwrap();
    assert_eq!(
        store.policy_in_force(&repo).await.unwrap(),
        Some(rs.clone())
    );
    assert_eq!(store.policy_in_force(&other).await.unwrap(), None);
    store
        .set_trust_policy(&ns, Requirement::Verified)
        .await
        .unwrap();
    store
        .set_trust_policy(&ns, Requirement::Verified)
        .await
        .unwrap();
    assert_eq!(
        store.policy_in_force(&repo).await.unwrap(),
        Some(ns.clone())
    );
    assert_eq!(
        store.policy_in_force(&other).await.unwrap(),
        Some(ns.clone())
    );
    store
        .set_trust_policy(&ns, Requirement::None)
        .await
        .unwrap();
    store
        .set_trust_policy(&rs, Requirement::None)
        .await
        .unwrap();
    assert_eq!(store.policy_in_force(&repo).await.unwrap(), None);

    // A signature pushed by its cosign tag creates the subject's row; a referrer adds to it.
    let (subject, _) = image(&server, "acme/app", "v1", b"one").await;
    let subject_digest: Digest = subject.parse().unwrap();
    let (unsigned, _) = image(&server, "acme/app", "v2", b"two").await;
    let unsigned: Digest = unsigned.parse().unwrap();
    let (sig, _) = push_cosign_tag_signature(&server, "acme/app", &subject, None).await;
    let one = std::slice::from_ref(&subject_digest);
    let found = store
        .verdicts(&repo, &[subject_digest.clone(), unsigned.clone()])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].digest, subject_digest);
    let after_one = store.pending_marks(&repo, &subject_digest).await.unwrap();
    push_referrer_signature(&server, "acme/app", &subject).await;
    let marks = store.pending_marks(&repo, &subject_digest).await.unwrap();
    assert!(marks.version > after_one.version, "{after_one:?} {marks:?}");
    let signatures = store
        .signature_manifests(&repo, &subject_digest)
        .await
        .unwrap();
    assert_eq!(signatures.len(), 2);
    assert!(signatures.iter().any(|s| s.digest.to_string() == sig));
    assert!(store
        .signature_manifests(&repo, &unsigned)
        .await
        .unwrap()
        .is_empty());

    // Without the worker (the server stopped): the marks decide alone. A key added anywhere
    // moves the generation, so whatever the worker computed before is stale now.
    server.shutdown().await;
    store
        .add_trust_key(&key("k4", TrustScope::Namespace("elsewhere".into()), "x"))
        .await
        .unwrap();
    assert!(!store.verdicts(&repo, one).await.unwrap()[0].current);
    let marks = store.pending_marks(&repo, &subject_digest).await.unwrap();
    assert!(store
        .stale_verdicts(1000)
        .await
        .unwrap()
        .iter()
        .any(|p| p.digest == subject_digest && p.repository == repo));
    let verified = with_status(Status::Verified);
    let stale = with_status(Status::Invalid);
    store
        .store_verdict(
            &PendingVerdict {
                generation: marks.generation,
                ..after_one.clone()
            },
            &stale,
        )
        .await
        .unwrap();
    let now = store.verdicts(&repo, one).await.unwrap();
    assert!(
        now[0].verdict != stale && !now[0].current,
        "a verdict computed under an older version was stored: {now:?}"
    );
    store.store_verdict(&marks, &verified).await.unwrap();
    let now = store.verdicts(&repo, one).await.unwrap();
    assert!(now[0].current, "{now:?}");
    assert_eq!(now[0].verdict, verified);
    assert!(!store
        .stale_verdicts(1000)
        .await
        .unwrap()
        .iter()
        .any(|p| p.digest == subject_digest));
    let older = PendingVerdict {
        generation: marks.generation - 1,
        ..marks.clone()
    };
    store.store_verdict(&older, &stale).await.unwrap();
    assert_eq!(
        store.verdicts(&repo, one).await.unwrap()[0].verdict,
        verified,
        "an older computation overwrote a newer verdict"
    );
    store
        .add_trust_key(&key("k6", TrustScope::Namespace("elsewhere".into()), "y"))
        .await
        .unwrap();
    assert!(!store.verdicts(&repo, one).await.unwrap()[0].current);
    let server = server.restart().await;

    // Deleting the signature by its digest moves the version too.
    let before = store.pending_marks(&repo, &subject_digest).await.unwrap();
    let r = exec(
        server
            .client
            .delete(server.url(&format!("/v2/acme/app/manifests/{sig}"))),
    )
    .await;
    assert_eq!(r.status(), 202, "delete signature");
    assert!(
        store
            .pending_marks(&repo, &subject_digest)
            .await
            .unwrap()
            .version
            > before.version
    );

    // Deleting the repository removes its keys and policies, not its namespace's.
    store
        .add_trust_key(&key("k5", rs.clone(), "repo-key"))
        .await
        .unwrap();
    store
        .set_trust_policy(&rs, Requirement::Verified)
        .await
        .unwrap();
    let r = exec(
        server
            .client
            .delete(server.url("/api/v1/repository/acme/app")),
    )
    .await;
    assert!(r.status().is_success(), "delete repository: {}", r.status());
    assert!(store.trust_keys(&rs).await.unwrap().is_empty());
    assert_eq!(store.trust_policy(&rs).await.unwrap(), Requirement::None);
    assert_eq!(store.trust_keys(&ns).await.unwrap().len(), 1);

    // Deleting an organization removes its keys and policies.
    server.create_org("gone").await;
    let gone = TrustScope::Namespace("gone".into());
    store
        .add_trust_key(&key("k7", gone.clone(), "old"))
        .await
        .unwrap();
    store
        .set_trust_policy(&gone, Requirement::Verified)
        .await
        .unwrap();
    let r = server
        .api("DELETE", "/api/v1/organization/gone", None)
        .await;
    assert!(
        (200..300).contains(&r.status),
        "delete organization: {}",
        r.body
    );
    assert!(store.trust_keys(&gone).await.unwrap().is_empty());
    assert_eq!(store.trust_policy(&gone).await.unwrap(), Requirement::None);
}

/// The keys and policy API: shapes, 400s naming the problem, 409, permissions, usage logs.
#[tokio::test]
async fn keys_and_policy_api_check_input_and_permissions() {
    let server = TestServer::start().await;
    server.create_org("acme").await;
    let boss = server.create_user("boss").await;
    let dev = server.create_user("dev").await;
    let reader = server.create_user("reader").await;
    let anonymous = reqwest::Client::new();
    server.create_team("acme", "owners", "admin").await;
    server.add_team_member("acme", "owners", "boss").await;
    server.create_team("acme", "devs", "member").await;
    server.add_team_member("acme", "devs", "dev").await;
    server.create_repo("acme/app", false).await;
    server.grant("acme/app", "reader", "read").await;
    let keys_url = server.url("/api/v1/organization/acme/trust/keys");
    let signer = Signer::new();
    let cosign =
        |name: &str| json!({"name": name, "kind": "cosign", "public_key": signer.public_pem});

    // The superuser adds a key; 201 with its facts, never its material.
    let r = api_call(&server.client, "POST", &keys_url, Some(cosign("release"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["name"], "release");
    assert_eq!(r.body["kind"], "cosign");
    assert!(
        r.body["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{}",
        r.body
    );
    assert!(
        r.body["id"].is_string() && r.body["created"].is_string(),
        "{}",
        r.body
    );
    assert!(r.body.get("public_key").is_none() && r.body.get("material").is_none());
    let release_id = r.body["id"].as_str().unwrap().to_string();
    // The same name again: 409.
    let r = api_call(&server.client, "POST", &keys_url, Some(cosign("release"))).await;
    assert_eq!(r.status, 409, "{}", r.body);
    // Malformed input: 400 naming what is wrong.
    for (body, says) in [
        (
            json!({"name": "x", "kind": "cosign", "public_key": "not a key"}),
            "",
        ),
        (
            json!({"name": "x", "kind": "gpg", "public_key": signer.public_pem}),
            "unknown kind",
        ),
        (
            json!({"name": "x", "kind": "cosign"}),
            "public_key is required",
        ),
        (
            json!({"name": "x", "kind": "notation", "public_key": signer.public_pem}),
            "certificate is required",
        ),
        (
            json!({"name": "bad name!", "kind": "cosign", "public_key": signer.public_pem}),
            "name",
        ),
        (
            json!({"kind": "cosign", "public_key": signer.public_pem}),
            "name is required",
        ),
        (
            json!({"name": "x", "kind": "notation", "certificate": signer.public_pem}),
            "",
        ),
    ] {
        let r = api_call(&server.client, "POST", &keys_url, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let message = r.body["error_message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty() && message.contains(says),
            "{body}: {message}"
        );
    }
    let r = exec(
        server
            .client
            .post(&keys_url)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(r.status(), 400);

    // Reads: members and admins yes; a stranger no (403), anonymous no (401).
    for (who, client, status) in [
        ("boss", &boss, 200),
        ("dev", &dev, 200),
        ("reader", &reader, 403),
    ] {
        let r = api_call(client, "GET", &keys_url, None).await;
        assert_eq!(r.status, status, "{who}: {}", r.body);
    }
    let r = api_call(&anonymous, "GET", &keys_url, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = api_call(&dev, "GET", &keys_url, None).await;
    assert_eq!(r.body["keys"].as_array().unwrap().len(), 1, "{}", r.body);

    // Writes: admins yes, members and others no.
    let other = Signer::new();
    let other_body = json!({"name": "ci", "kind": "cosign", "public_key": other.public_pem});
    for client in [&dev, &reader] {
        let r = api_call(client, "POST", &keys_url, Some(other_body.clone())).await;
        assert_eq!(r.status, 403, "{}", r.body);
        let r = api_call(client, "DELETE", &format!("{keys_url}/{release_id}"), None).await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let r = api_call(&anonymous, "POST", &keys_url, Some(other_body.clone())).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = api_call(&boss, "POST", &keys_url, Some(other_body.clone())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ci_id = r.body["id"].as_str().unwrap().to_string();
    let r = api_call(&boss, "DELETE", &format!("{keys_url}/{ci_id}"), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = api_call(&boss, "DELETE", &format!("{keys_url}/{ci_id}"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Repository keys: read access reads them, admins write.
    let repo_keys = server.url("/api/v1/repository/acme/app/trust/keys");
    let r = api_call(&reader, "POST", &repo_keys, Some(other_body.clone())).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api_call(&boss, "POST", &repo_keys, Some(other_body.clone())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let repo_key = r.body["id"].as_str().unwrap().to_string();
    let r = api_call(&reader, "GET", &repo_keys, None).await;
    assert_eq!(
        (r.status, r.body["keys"][0]["name"].clone()),
        (200, json!("ci"))
    );
    let r = api_call(&anonymous, "GET", &repo_keys, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // An organization's key is not the repository's to delete.
    let r = api_call(&boss, "DELETE", &format!("{repo_keys}/{release_id}"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api_call(&boss, "DELETE", &format!("{repo_keys}/{repo_key}"), None).await;
    assert_eq!(r.status, 204, "{}", r.body);

    // Policies.
    let policy = server.url("/api/v1/organization/acme/trust/policy");
    let r = api_call(&dev, "GET", &policy, None).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (200, json!({"require": "none"}))
    );
    let verified = json!({"require": "verified"});
    let r = api_call(&dev, "PUT", &policy, Some(verified.clone())).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api_call(&boss, "PUT", &policy, Some(json!({"require": "maybe"}))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api_call(&boss, "PUT", &policy, Some(verified.clone())).await;
    assert_eq!((r.status, r.body.clone()), (200, verified.clone()));
    let r = api_call(&dev, "GET", &policy, None).await;
    assert_eq!(r.body, verified);
    let repo_policy = server.url("/api/v1/repository/acme/app/trust/policy");
    let r = api_call(&reader, "PUT", &repo_policy, Some(verified.clone())).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api_call(&boss, "PUT", &repo_policy, Some(verified.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api_call(&reader, "GET", &repo_policy, None).await;
    assert_eq!((r.status, r.body.clone()), (200, verified.clone()));
    let r = api_call(&boss, "PUT", &policy, Some(json!({"require": "none"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A user administers their own namespace; a stranger's is out of reach.
    let own = server.url("/api/v1/organization/dev/trust/policy");
    let r = api_call(&dev, "PUT", &own, Some(verified.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api_call(&reader, "GET", &own, None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api_call(
        &server.client,
        "GET",
        &server.url("/api/v1/organization/nobody/trust/keys"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // The usage logs hold every change.
    let start = Instant::now();
    loop {
        let r = server
            .api("GET", "/api/v1/organization/acme/logs", None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let kinds: Vec<String> = r.body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["kind"].as_str().map(String::from))
            .collect();
        if ["add_trust_key", "delete_trust_key", "change_trust_policy"]
            .iter()
            .all(|k| kinds.iter().any(|have| have == k))
        {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "usage logs: {kinds:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The worker's verdicts, the tag API's `signature` objects and `require: verified` on
/// manifests (by tag and digest, GET and HEAD), blobs and index children.
#[tokio::test]
async fn verified_policy_serves_only_verified_content() {
    let server = TestServer::start().await;
    server.create_org("acme").await;
    server.create_repo("acme/app", true).await;
    let anonymous = reqwest::Client::new();
    let (release, stranger) = (Signer::new(), Signer::new());
    let r = server
        .api(
            "POST",
            "/api/v1/organization/acme/trust/keys",
            Some(json!({"name": "release", "kind": "cosign", "public_key": release.public_pem})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let repo = "acme/app";
    let (good, good_layer) = image(&server, repo, "good", b"good image").await;
    let (bad, bad_layer) = image(&server, repo, "bad", b"bad image").await;
    let (unsigned, unsigned_layer) = image(&server, repo, "unsigned", b"unsigned image").await;
    let (forged, _) = image(&server, repo, "forged", b"forged image").await;
    push_cosign_tag_signature(&server, repo, &good, Some(&release)).await;
    let (bad_sig, bad_sig_layer) =
        push_cosign_tag_signature(&server, repo, &bad, Some(&stranger)).await;
    push_signature_naming(&server, repo, &forged, &good, Some(&release)).await;

    // The worker computes each verdict soon after the push.
    let v = wait_for_verdict(&server, repo, &good, |v| v["status"] == "verified").await;
    assert_eq!(v["keys"], json!(["release"]));
    assert_eq!(v["checks"][0]["result"], "verified", "{v}");
    wait_for_verdict(&server, repo, &bad, |v| v["status"] == "untrusted").await;
    wait_for_verdict(&server, repo, &forged, |v| v["status"] == "invalid").await;
    let v = wait_for_verdict(&server, repo, &unsigned, |_| true).await;
    assert_eq!(v["status"], "unsigned");

    // The tag API shows them (one batch per page).
    let r = server
        .api("GET", "/api/v1/repository/acme/app/tag/", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let signature_of = |tag: &str| {
        r.body["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == tag)
            .unwrap_or_else(|| panic!("tag {tag} in {}", r.body))["signature"]
            .clone()
    };
    assert_eq!(
        signature_of("good"),
        json!({"status": "verified", "keys": ["release"]})
    );
    assert_eq!(
        signature_of("bad"),
        json!({"status": "untrusted", "keys": []})
    );
    assert_eq!(
        signature_of("forged"),
        json!({"status": "invalid", "keys": []})
    );
    assert_eq!(
        signature_of("unsigned"),
        json!({"status": "unsigned", "keys": []})
    );

    // Without a policy, everything is served.
    let get = |path: String| anonymous.get(server.url(&path));
    let head = |path: String| anonymous.head(server.url(&path));
    let r = exec(head(format!("/v2/{repo}/manifests/{unsigned}"))).await;
    let unsigned_size: u64 = header(&r, "content-length").parse().unwrap();
    for reference in ["bad", "unsigned", &bad] {
        let r = exec(get(format!("/v2/{repo}/manifests/{reference}"))).await;
        assert_eq!(r.status(), 200, "{reference}");
    }

    // Under `require: verified` on the organization.
    let r = server
        .api(
            "PUT",
            "/api/v1/organization/acme/trust/policy",
            Some(json!({"require": "verified"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (reference, status) in [
        ("bad".to_string(), "untrusted"),
        (bad.clone(), "untrusted"),
        ("unsigned".to_string(), "unsigned"),
        ("forged".to_string(), "invalid"),
    ] {
        let r = exec(get(format!("/v2/{repo}/manifests/{reference}"))).await;
        let body = assert_error(r, 403, "DENIED").await;
        let message = body["errors"][0]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("trust policy of organization \"acme\" requires verified signatures")
                && message.contains(status),
            "{reference}: {message}"
        );
        // A HEAD by digest of a manifest that carries signatures serves only its descriptor,
        // which `notation verify` resolves before reading the signatures; by tag, or of an
        // unsigned manifest, it is refused like a GET.
        let r = exec(head(format!("/v2/{repo}/manifests/{reference}"))).await;
        let descriptor_only = reference.starts_with("sha256:") && status != "unsigned";
        assert_eq!(
            r.status(),
            if descriptor_only { 200 } else { 403 },
            "HEAD {reference}"
        );
        if descriptor_only {
            assert_eq!(header(&r, "docker-content-digest"), reference);
            let body = r.bytes().await.unwrap();
            assert!(body.is_empty());
        }
    }
    let r = exec(head(format!("/v2/{repo}/manifests/{unsigned}"))).await;
    assert_eq!(r.status(), 403, "HEAD of an unsigned manifest by digest");
    for reference in ["good", &good] {
        let r = exec(get(format!("/v2/{repo}/manifests/{reference}"))).await;
        assert_eq!(r.status(), 200, "{reference}");
        let r = exec(head(format!("/v2/{repo}/manifests/{reference}"))).await;
        assert_eq!(r.status(), 200, "HEAD {reference}");
    }
    // Blobs: only those of servable manifests; the config all images share is one of them.
    for layer in [&bad_layer, &unsigned_layer] {
        let r = exec(get(format!("/v2/{repo}/blobs/{layer}"))).await;
        let body = assert_error(r, 403, "DENIED").await;
        assert!(body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no verified manifest"));
        let r = exec(head(format!("/v2/{repo}/blobs/{layer}"))).await;
        assert_eq!(r.status(), 403);
    }
    let config = sha256(br#"{"architecture":"amd64","os":"linux"}"#);
    for blob in [&good_layer, &config] {
        let r = exec(get(format!("/v2/{repo}/blobs/{blob}"))).await;
        assert_eq!(r.status(), 200, "{blob}");
    }
    // An unknown blob stays 404.
    let r = exec(get(format!("/v2/{repo}/blobs/{}", sha256(b"nothing")))).await;
    assert_eq!(r.status(), 404);
    // Signatures stay readable, by tag and digest, with their blobs; so do tag lists and referrers.
    let sig_tag = format!("{}.sig", bad.replace(':', "-"));
    for reference in [&sig_tag, &bad_sig] {
        let r = exec(get(format!("/v2/{repo}/manifests/{reference}"))).await;
        assert_eq!(r.status(), 200, "{reference}");
    }
    let r = exec(get(format!("/v2/{repo}/blobs/{bad_sig_layer}"))).await;
    assert_eq!(r.status(), 200);
    let r = exec(get(format!("/v2/{repo}/tags/list"))).await;
    assert_eq!(r.status(), 200);
    let r = exec(get(format!("/v2/{repo}/referrers/{bad}"))).await;
    assert_eq!(r.status(), 200);
    // Pushes are never refused.
    let (later, _) = image(&server, repo, "later", b"pushed under the policy").await;
    let r = exec(get(format!("/v2/{repo}/manifests/{later}"))).await;
    assert_eq!(r.status(), 403);

    // A multi-arch index verified: its children are served, unsigned as they are.
    let child = exec(
        server
            .client
            .get(server.url(&format!("/v2/{repo}/manifests/{unsigned}"))),
    )
    .await;
    assert_eq!(child.status(), 403, "the superuser is under the policy too");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": IMAGE,
            "digest": unsigned,
            "size": unsigned_size,
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }))
    .unwrap();
    let index_digest = sha256(&index);
    let r = put_manifest(
        &server.client,
        &server.base,
        repo,
        "multi",
        "application/vnd.oci.image.index.v1+json",
        &index,
    )
    .await;
    assert_eq!(r.status(), 201, "push index");
    let r = exec(get(format!("/v2/{repo}/manifests/multi"))).await;
    assert_eq!(r.status(), 403, "an unsigned index");
    push_cosign_tag_signature(&server, repo, &index_digest, Some(&release)).await;
    // The gate recomputes a stale verdict itself: no wait for the worker.
    let r = exec(get(format!("/v2/{repo}/manifests/multi"))).await;
    assert_eq!(r.status(), 200, "a verified index");
    let r = exec(get(format!("/v2/{repo}/manifests/{unsigned}"))).await;
    assert_eq!(r.status(), 200, "a child of a verified index");
    let r = exec(get(format!("/v2/{repo}/blobs/{unsigned_layer}"))).await;
    assert_eq!(r.status(), 200, "a blob of a child of a verified index");

    // Trusting the stranger's key serves its image at the next request.
    let r = server
        .api(
            "POST",
            "/api/v1/repository/acme/app/trust/keys",
            Some(json!({"name": "stranger", "kind": "cosign", "public_key": stranger.public_pem})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = exec(get(format!("/v2/{repo}/manifests/bad"))).await;
    assert_eq!(r.status(), 200, "trusted at the next request");
    let r = exec(get(format!("/v2/{repo}/blobs/{bad_layer}"))).await;
    assert_eq!(r.status(), 200);
    // Removing the policy serves everything at the next request.
    let r = server
        .api(
            "PUT",
            "/api/v1/organization/acme/trust/policy",
            Some(json!({"require": "none"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = exec(get(format!("/v2/{repo}/manifests/forged"))).await;
    assert_eq!(r.status(), 200);
    // A repository policy holds alone too.
    let r = server
        .api(
            "PUT",
            "/api/v1/repository/acme/app/trust/policy",
            Some(json!({"require": "verified"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = exec(get(format!("/v2/{repo}/manifests/forged"))).await;
    let body = assert_error(r, 403, "DENIED").await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("trust policy of repository \"acme/app\""));

    // The metrics counted verdicts and refusals.
    let text = exec(server.client.get(server.url("/metrics")))
        .await
        .text()
        .await
        .unwrap();
    for line in [
        "berth_trust_verifications_total{status=\"verified\"}",
        "berth_trust_refusals_total{target=\"manifest\"}",
        "berth_trust_refusals_total{target=\"blob\"}",
    ] {
        assert!(text.contains(line), "{line} in the metrics");
    }
}

/// A policy set through one replica is enforced by another at its next request.
#[tokio::test]
async fn a_policy_change_counts_on_every_replica() {
    let a = TestServer::start().await;
    let b = a.replica().await;
    a.create_org("acme").await;
    a.create_repo("acme/app", true).await;
    let anonymous = reqwest::Client::new();
    let (digest, _) = image(&a, "acme/app", "v1", b"replicated").await;
    let url = b.url(&format!("/v2/acme/app/manifests/{digest}"));
    // B remembers "no policy" under the current generation.
    assert_eq!(exec(anonymous.get(&url)).await.status(), 200);
    assert_eq!(exec(anonymous.get(&url)).await.status(), 200);
    let r = a
        .api(
            "PUT",
            "/api/v1/organization/acme/trust/policy",
            Some(json!({"require": "verified"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = exec(anonymous.get(&url)).await;
    assert_error(r, 403, "DENIED").await;
    let r = a
        .api(
            "PUT",
            "/api/v1/organization/acme/trust/policy",
            Some(json!({"require": "none"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(exec(anonymous.get(&url)).await.status(), 200);
}
