//! Signature trust (issue 19): trusted keys and policies, the stored verdicts and their marks
//! (moved by triggers when signatures are pushed or deleted and when keys change), on whichever
//! database the suite runs against (`BERTH_TEST_DB_URI` for PostgreSQL).

use crate::common;

use berth::metadata::trust::{PendingVerdict, Requirement, StoredKey, TrustScope, TrustStore};
use berth::trust::{KeyKind, Status, Verdict};
use common::*;
use oci::{Digest, RepoName};
use serde_json::json;

/// Pushes a cosign-tag-shaped signature of `subject` (`sha256-<hex>.sig`, one simple-signing
/// layer whose payload names the subject); returns its digest.
async fn push_cosign_tag_signature(server: &TestServer, repo: &str, subject: &str) -> String {
    let payload = json!({
        "critical": {
            "identity": {"docker-reference": format!("localhost/{repo}")},
            "image": {"docker-manifest-digest": subject},
            "type": "cosign container image signature",
        },
        "optional": null,
    })
    .to_string();
    let (client, base) = (&server.client, &server.base);
    let config = br#"{"architecture":"","os":""}"#;
    let c = push_blob(client, base, repo, config).await;
    let l = push_blob(client, base, repo, payload.as_bytes()).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len()},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": l,
            "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDnot-a-real-signature"},
        }],
    }))
    .expect("json");
    let tag = format!("{}.sig", subject.replace(':', "-"));
    let r = put_manifest(
        client,
        base,
        repo,
        &tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await;
    assert_eq!(r.status(), 201, "push signature");
    sha256(&manifest)
}

/// Pushes an OCI 1.1 referrer-shaped cosign signature of `subject`; returns its digest.
async fn push_referrer_signature(server: &TestServer, repo: &str, subject: &str) -> String {
    let (client, base) = (&server.client, &server.base);
    let head = exec(client.head(format!("{base}/v2/{repo}/manifests/{subject}"))).await;
    let size: u64 = header(&head, "content-length").parse().expect("size");
    let empty = push_blob(client, base, repo, b"{}").await;
    let payload =
        format!("{{\"critical\":{{\"image\":{{\"docker-manifest-digest\":\"{subject}\"}}}}}}");
    let l = push_blob(client, base, repo, payload.as_bytes()).await;
    let image = "application/vnd.oci.image.manifest.v1+json";
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": image,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": l,
            "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": "bm90IGEgc2lnbmF0dXJl"},
        }],
        "subject": {"mediaType": image, "digest": subject, "size": size},
    }))
    .expect("json");
    let digest = sha256(&manifest);
    let r = put_manifest(client, base, repo, &digest, image, &manifest).await;
    assert_eq!(r.status(), 201, "push referrer signature");
    digest
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

fn untrusted() -> Verdict {
    berth::trust::verdict(Vec::new())
}

/// The store's keys, policies, verdict marks and the triggers that move them.
#[tokio::test]
async fn store_keeps_keys_policies_and_verdict_marks() {
    let server = TestServer::start().await;
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

    // A signature pushed by its cosign tag creates the subject's row, stale.
    let subject = push_image(&server.client, &server.base, "acme/app", "v1", b"one").await;
    let subject_digest: Digest = subject.parse().unwrap();
    let unsigned = push_image(&server.client, &server.base, "acme/app", "v2", b"two").await;
    let unsigned: Digest = unsigned.parse().unwrap();
    let sig = push_cosign_tag_signature(&server, "acme/app", &subject).await;
    let found = store
        .verdicts(&repo, &[subject_digest.clone(), unsigned.clone()])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].digest, subject_digest);
    let signatures = store
        .signature_manifests(&repo, &subject_digest)
        .await
        .unwrap();
    assert_eq!(signatures.len(), 1);
    assert_eq!(signatures[0].digest.to_string(), sig);
    assert!(store
        .signature_manifests(&repo, &unsigned)
        .await
        .unwrap()
        .is_empty());

    // Computed under the marks read now, it is current; an older computation never overwrites.
    let marks = store.pending_marks(&repo, &subject_digest).await.unwrap();
    assert!(marks.version >= 1, "{marks:?}");
    let mut verified = untrusted();
    verified.status = Status::Verified;
    verified.keys = vec!["release".into()];
    store.store_verdict(&marks, &verified).await.unwrap();
    let now = store
        .verdicts(&repo, std::slice::from_ref(&subject_digest))
        .await
        .unwrap();
    assert!(now[0].current, "{now:?}");
    assert_eq!(now[0].verdict, verified);
    let older = PendingVerdict {
        generation: marks.generation - 1,
        ..marks.clone()
    };
    let mut stale = untrusted();
    stale.status = Status::Invalid;
    store.store_verdict(&older, &stale).await.unwrap();
    assert_eq!(
        store
            .verdicts(&repo, std::slice::from_ref(&subject_digest))
            .await
            .unwrap()[0]
            .verdict,
        verified,
        "an older computation overwrote a newer verdict"
    );

    // A second signature (a referrer) moves the version: stale, and the old marks no longer store.
    push_referrer_signature(&server, "acme/app", &subject).await;
    let now = store
        .verdicts(&repo, std::slice::from_ref(&subject_digest))
        .await
        .unwrap();
    assert!(!now[0].current, "{now:?}");
    assert_eq!(
        store
            .signature_manifests(&repo, &subject_digest)
            .await
            .unwrap()
            .len(),
        2
    );
    store.store_verdict(&marks, &stale).await.unwrap();
    assert_eq!(
        store
            .verdicts(&repo, std::slice::from_ref(&subject_digest))
            .await
            .unwrap()[0]
            .verdict,
        verified
    );
    let newer = store.pending_marks(&repo, &subject_digest).await.unwrap();
    assert!(newer.version > marks.version);
    assert!(store
        .stale_verdicts(1000)
        .await
        .unwrap()
        .iter()
        .any(|p| p.digest == subject_digest && p.repository == repo));
    store.store_verdict(&newer, &verified).await.unwrap();
    assert!(
        store
            .verdicts(&repo, std::slice::from_ref(&subject_digest))
            .await
            .unwrap()[0]
            .current
    );

    // A key added anywhere moves the generation: stale again.
    store
        .add_trust_key(&key("k4", TrustScope::Namespace("elsewhere".into()), "x"))
        .await
        .unwrap();
    assert!(
        !store
            .verdicts(&repo, std::slice::from_ref(&subject_digest))
            .await
            .unwrap()[0]
            .current
    );

    // Deleting the signature by its digest moves the version too.
    let marks = store.pending_marks(&repo, &subject_digest).await.unwrap();
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
            > marks.version
    );

    // Deleting the repository removes its keys and policies.
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
}
