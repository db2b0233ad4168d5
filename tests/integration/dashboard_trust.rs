//! Signature trust in the dashboard (issue 19), as a browser without JavaScript uses it: the
//! Trusted keys and Trust policy forms of an organization's and a repository's settings work
//! for their admins and are refused to everyone else, every change is in the usage logs, and
//! the Tags and manifest pages show the status of images signed in the test (cosign-shaped
//! signature manifests, signed with keys generated here).

use std::time::{Duration, Instant};

use base64::Engine;
use rcgen::SigningKey;
use serde_json::json;

use crate::common;
use common::*;

/// The `<tr>` of one tag in a Tags page.
fn row<'a>(page: &'a Page, tag: &str) -> &'a str {
    let start = page
        .body
        .find(&format!("data-tag=\"{tag}\""))
        .unwrap_or_else(|| panic!("no row for tag {tag}"));
    let end = page.body[start..].find("</tr>").expect("row end") + start;
    &page.body[start..end]
}

/// The `<tr>` holding `needle`.
fn row_of<'a>(page: &'a Page, needle: &str) -> &'a str {
    let at = page
        .body
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle} in {}", page.body));
    let start = page.body[..at].rfind("<tr").expect("row start");
    let end = page.body[at..].find("</tr>").expect("row end") + at;
    &page.body[start..end]
}

/// The `<section>` of a page with this id.
fn section<'a>(page: &'a Page, id: &str) -> &'a str {
    let start = page
        .body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = page.body[start..].find("</section>").expect("section end") + start;
    &page.body[start..end]
}

async fn put_manifest(s: &TestServer, repo: &str, reference: &str, manifest: &serde_json::Value) {
    let r = s
        .client
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(manifest).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// Signs `subject` the way cosign 2 does with a key: a simple-signing payload naming
/// `claimed` (normally the subject itself) in a layer of a manifest tagged
/// `sha256-<hex>.sig`, the ECDSA signature of the payload in the layer's annotation.
async fn cosign_sign(
    s: &TestServer,
    repo: &str,
    subject: &str,
    claimed: &str,
    key: &rcgen::KeyPair,
) {
    let payload = serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": format!("{}/{repo}", s.base.trim_start_matches("http://"))},
            "image": {"docker-manifest-digest": claimed},
            "type": "cosign container image signature"
        },
        "optional": null
    }))
    .unwrap();
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload).unwrap());
    let layer = push_blob(&s.client, &s.base, repo, &payload).await;
    let config_bytes = br#"{"architecture":"","config":{},"created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config = push_blob(&s.client, &s.base, repo, config_bytes).await;
    let tag = format!("sha256-{}.sig", subject.trim_start_matches("sha256:"));
    put_manifest(
        s,
        repo,
        &tag,
        &json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_bytes.len()},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer, "size": payload.len(),
                        "annotations": {"dev.cosignproject.cosign/signature": signature}}]
        }),
    )
    .await;
}

/// Reloads `path` until `ok` holds for the page (verification runs in the background),
/// failing after a deadline.
async fn poll_page(b: &mut Browser, path: &str, what: &str, ok: impl Fn(&Page) -> bool) -> Page {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = b.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        if ok(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never showed {what}:\n{}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn logs(s: &TestServer, path: &str) -> Vec<serde_json::Value> {
    s.state().usage.flush().await;
    let r = s.api("GET", path, None).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body["logs"].as_array().expect("logs").clone()
}

#[tokio::test]
async fn trust_forms_work_for_admins_and_are_refused_to_others() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    push_image(&s.client, &s.base, "acme/app", "1", b"app").await;
    s.create_user("member").await;
    s.create_user("repoadmin").await;
    s.create_user("stranger").await;
    s.create_team("acme", "devs", "member").await;
    s.add_team_member("acme", "devs", "member").await;
    s.grant("acme/app", "member", "write").await;
    s.grant("acme/app", "repoadmin", "admin").await;

    let org = "/organization/acme?tab=settings";
    let org_action = "/organization/acme";
    let repo = "/repository/acme/app?tab=settings";
    let repo_action = "/repository/acme/app";

    // The superuser administers the organization: both panels and their forms.
    let mut admin = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let page = admin.get(org).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.has("class=\"add-trust-key stack\"") && page.has("class=\"trust-policy-form\""));
    assert!(page.has("No trusted keys."));
    assert!(
        page.has("<label for=\"trust-key-pem\">"),
        "the PEM textarea has a visible label"
    );
    assert!(admin.get("/organization/acme").await.has("?tab=settings"));

    // A malformed key is refused with the parser's reason; nothing is stored.
    let bad = admin
        .submit(
            org,
            org_action,
            &[
                ("action", "add-trust-key"),
                ("name", "release"),
                ("kind", "cosign"),
                (
                    "pem",
                    "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
                ),
            ],
        )
        .await;
    assert_eq!(bad.status, 303);
    assert_eq!(bad.location.as_deref(), Some(org));
    let after = admin.get(org).await;
    assert!(after.has("Cannot add the key: "), "{}", after.body);
    assert!(after.has("No trusted keys."));
    // A name with markup is refused, and shown nowhere as markup.
    let hostile = "<img src=x onerror=alert(1)>";
    admin
        .submit(
            org,
            org_action,
            &[
                ("action", "add-trust-key"),
                ("name", hostile),
                ("kind", "cosign"),
                ("pem", "x"),
            ],
        )
        .await;
    let after = admin.get(org).await;
    assert!(
        after.has("Cannot add the key: the name must be"),
        "{}",
        after.body
    );
    assert!(!after.has("<img src=x"));
    // An unknown kind is a bad request, not a stored key.
    let odd = admin
        .submit(
            org,
            org_action,
            &[
                ("action", "add-trust-key"),
                ("name", "x"),
                ("kind", "gpg"),
                ("pem", "x"),
            ],
        )
        .await;
    assert_eq!(odd.status, 400);

    // A real key is added, listed with its fingerprint, and its name is taken afterwards.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let added = admin
        .submit(
            org,
            org_action,
            &[
                ("action", "add-trust-key"),
                ("name", "release"),
                ("kind", "cosign"),
                ("pem", &key.public_key_pem()),
            ],
        )
        .await;
    assert_eq!(added.location.as_deref(), Some(org));
    let after = admin.get(org).await;
    assert!(
        after.has("Added the trusted key release."),
        "{}",
        after.body
    );
    let listed = row_of(&after, "data-key=\"release\"");
    assert!(
        listed.contains("cosign") && listed.contains("ECDSA P-256"),
        "{listed}"
    );
    let again = admin
        .submit(
            org,
            org_action,
            &[
                ("action", "add-trust-key"),
                ("name", "release"),
                ("kind", "cosign"),
                ("pem", &key.public_key_pem()),
            ],
        )
        .await;
    assert_eq!(again.status, 303);
    assert!(admin
        .get(org)
        .await
        .has("There already is a key named release here."));
    // A certificate whose subject holds markup is shown as text.
    let cert_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "<script>alert(1)</script>");
    let cert = params.self_signed(&cert_key).unwrap();
    admin
        .submit(
            org,
            org_action,
            &[
                ("action", "add-trust-key"),
                ("name", "ca"),
                ("kind", "notation"),
                ("pem", &cert.pem()),
            ],
        )
        .await;
    let after = admin.get(org).await;
    let listed = row_of(&after, "data-key=\"ca\"");
    assert!(
        listed.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{listed}"
    );
    assert!(!after.has("<script>alert(1)"));
    // Deleting one takes it off the list.
    let id = {
        let field = "name=\"id\" value=\"";
        let at = listed.find(field).expect("the key's id") + field.len();
        listed[at..at + listed[at..].find('"').unwrap()].to_string()
    };
    let deleted = admin
        .submit(
            org,
            org_action,
            &[("action", "delete-trust-key"), ("id", &id)],
        )
        .await;
    assert_eq!(deleted.status, 303);
    let after = admin.get(org).await;
    assert!(after.has("Deleted the trusted key ca.") && !after.has("data-key=\"ca\""));
    let gone = admin
        .submit(
            org,
            org_action,
            &[("action", "delete-trust-key"), ("id", &id)],
        )
        .await;
    assert_eq!(gone.status, 303);
    assert!(admin.get(org).await.has("There is no such key."));

    // The organization's policy, shown on the repository's Settings tab.
    let set = admin
        .submit(
            org,
            org_action,
            &[("action", "trust-policy"), ("require", "verified")],
        )
        .await;
    assert_eq!(set.status, 303);
    let after = admin.get(org).await;
    assert!(after.has("This organization now requires verified signatures."));
    assert!(section(&after, "trust-policy").contains("name=\"require\" value=\"verified\" checked"));
    let page = admin.get(repo).await;
    assert!(
        section(&page, "trust-policy").contains("required by the organization"),
        "{}",
        page.body
    );

    // A member who may push, not administer: no panel, no tab, and every POST refused.
    let mut member = Browser::signed_in(&s.base, "member", &password_of("member")).await;
    assert_eq!(member.get(org).await.status, 403);
    assert_eq!(member.get(repo).await.status, 403);
    assert!(!member.get("/organization/acme").await.has("?tab=settings"));
    let csrf = member.get("/repository/acme/app").await.csrf();
    for (action, fields) in [
        (
            org_action,
            vec![("action", "trust-policy"), ("require", "none")],
        ),
        (
            repo_action,
            vec![("action", "trust-policy"), ("require", "verified")],
        ),
        (
            repo_action,
            vec![
                ("action", "add-trust-key"),
                ("name", "k"),
                ("kind", "cosign"),
                ("pem", "x"),
            ],
        ),
        (
            org_action,
            vec![("action", "delete-trust-key"), ("id", "x")],
        ),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let r = member.post(action, &form).await;
        assert_eq!(r.status, 403, "{action} {form:?}");
    }
    // Someone who cannot see the repository finds nothing there.
    let mut stranger = Browser::signed_in(&s.base, "stranger", &password_of("stranger")).await;
    let csrf = stranger.get("/repository/").await.csrf();
    let r = stranger
        .post(
            repo_action,
            &[
                ("csrf", &csrf),
                ("action", "trust-policy"),
                ("require", "none"),
            ],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = stranger
        .post(
            org_action,
            &[
                ("csrf", &csrf),
                ("action", "trust-policy"),
                ("require", "none"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    // Without a session: sign in first; without the token: refused.
    assert_eq!(Browser::new(&s.base).get(org).await.status, 303);
    let r = admin
        .post(
            org_action,
            &[("action", "trust-policy"), ("require", "none")],
        )
        .await;
    assert_eq!(r.status, 400, "a form without its CSRF token is refused");
    assert!(admin
        .get(org)
        .await
        .has("name=\"require\" value=\"verified\" checked"));

    // A repository admin manages the repository's panel, not the organization's.
    let mut repoadmin = Browser::signed_in(&s.base, "repoadmin", &password_of("repoadmin")).await;
    assert_eq!(repoadmin.get(org).await.status, 403);
    let page = repoadmin.get(repo).await;
    assert!(page.has("class=\"add-trust-key stack\""));
    let set = repoadmin
        .submit(
            repo,
            repo_action,
            &[("action", "trust-policy"), ("require", "verified")],
        )
        .await;
    assert_eq!(set.location.as_deref(), Some(repo));
    assert!(repoadmin
        .get(repo)
        .await
        .has("This repository now requires verified signatures."));
    repoadmin
        .submit(
            repo,
            repo_action,
            &[("action", "trust-policy"), ("require", "none")],
        )
        .await;
    let page = repoadmin.get(repo).await;
    assert!(page.has("This repository no longer requires verified signatures."));
    assert!(
        section(&page, "trust-policy").contains("required by the organization"),
        "a repository cannot opt out of its organization's policy"
    );

    // ... and its keys: a repository key is listed on its tab, not the organization's.
    let repo_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let added = repoadmin
        .submit(
            repo,
            repo_action,
            &[
                ("action", "add-trust-key"),
                ("name", "app-ci"),
                ("kind", "cosign"),
                ("pem", &repo_key.public_key_pem()),
            ],
        )
        .await;
    assert_eq!(added.location.as_deref(), Some(repo));
    let page = repoadmin.get(repo).await;
    assert!(page.has("Added the trusted key app-ci."), "{}", page.body);
    assert!(row_of(&page, "data-key=\"app-ci\"").contains("Ed25519"));
    assert!(!admin.get(org).await.has("data-key=\"app-ci\""));
    let app_keys = logs(&s, "/api/v1/repository/acme/app/logs?kind=add_trust_key").await;
    assert_eq!(app_keys.len(), 1, "{app_keys:?}");
    assert_eq!(app_keys[0]["performer"]["name"], "repoadmin");
    assert_eq!(app_keys[0]["metadata"]["scope"], "acme/app");

    // Every change is in the usage logs, by who made it.
    let org_logs = logs(
        &s,
        "/api/v1/organization/acme/logs?kind=change_trust_policy",
    )
    .await;
    assert!(
        org_logs.iter().any(|l| l["performer"]["name"] == ADMIN_USER
            && l["metadata"]["require"] == "verified"
            && l["metadata"]["repo"].is_null()),
        "{org_logs:?}"
    );
    let repo_logs = logs(
        &s,
        "/api/v1/repository/acme/app/logs?kind=change_trust_policy",
    )
    .await;
    let by_repoadmin: Vec<_> = repo_logs
        .iter()
        .filter(|l| l["performer"]["name"] == "repoadmin")
        .map(|l| l["metadata"]["require"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(by_repoadmin.len(), 2, "{repo_logs:?}");
    assert!(
        by_repoadmin.contains(&"verified".to_string())
            && by_repoadmin.contains(&"none".to_string())
    );
}

#[tokio::test]
async fn tags_and_manifest_pages_show_each_signature_status() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    let repo = "acme/app";
    let signed = push_image(&s.client, &s.base, repo, "signed", b"signed image").await;
    let plain = push_image(&s.client, &s.base, repo, "plain", b"plain image").await;
    // Signed with a key nobody trusts.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    cosign_sign(&s, repo, &signed, &signed, &key).await;

    let mut admin = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let tags = "/repository/acme/app?tab=tags";
    let page = poll_page(&mut admin, tags, "the untrusted signature", |p| {
        row(p, "signed").contains("signed, untrusted key")
    })
    .await;
    let signed_row = row(&page, "signed");
    assert!(signed_row.contains("class=\"trust-badge\" data-status=\"untrusted\""));
    assert!(
        !signed_row.contains("badge-signed"),
        "the status replaces the plain signed badge"
    );
    assert!(
        !row(&page, "plain").contains("trust-badge") && !row(&page, "plain").contains("signed"),
        "an unsigned image shows nothing"
    );

    let manifest = admin
        .get(&format!("/repository/acme/app/manifest/{signed}"))
        .await;
    let sigs = section(&manifest, "signatures");
    assert!(sigs.contains("signed, untrusted key"), "{sigs}");
    assert!(sigs.contains("cosign (tag)") && sigs.contains("data-status=\"untrusted\""));
    assert!(!sigs.contains("being verified"));
    let unsigned = admin
        .get(&format!("/repository/acme/app/manifest/{plain}"))
        .await;
    assert!(section(&unsigned, "signatures").contains("Not signed"));

    // The organization trusts the key (through its Settings tab): the same signature verifies.
    let org = "/organization/acme?tab=settings";
    let added = admin
        .submit(
            org,
            "/organization/acme",
            &[
                ("action", "add-trust-key"),
                ("name", "release"),
                ("kind", "cosign"),
                ("pem", &key.public_key_pem()),
            ],
        )
        .await;
    assert_eq!(added.status, 303);
    // A second image whose signature, made with that key, names another digest.
    let forged = push_image(&s.client, &s.base, repo, "forged", b"forged image").await;
    cosign_sign(&s, repo, &forged, &plain, &key).await;
    let page = poll_page(
        &mut admin,
        tags,
        "the verified and the invalid signature",
        |p| {
            row(p, "signed").contains("verified by release")
                && row(p, "forged").contains("invalid signature")
        },
    )
    .await;
    assert!(row(&page, "signed").contains("data-status=\"verified\""));
    assert!(row(&page, "forged").contains("data-status=\"invalid\""));
    assert!(!row(&page, "plain").contains("trust-badge"));
    let manifest = poll_page(
        &mut admin,
        &format!("/repository/acme/app/manifest/{signed}"),
        "the current verdict",
        |p| !section(p, "signatures").contains("being verified"),
    )
    .await;
    let sigs = section(&manifest, "signatures");
    assert!(
        sigs.contains("verified by release") && sigs.contains("by key <strong>release</strong>"),
        "{sigs}"
    );
    let manifest = admin
        .get(&format!("/repository/acme/app/manifest/{forged}"))
        .await;
    let sigs = section(&manifest, "signatures");
    assert!(
        sigs.contains("invalid signature") && sigs.contains("data-status=\"invalid\""),
        "{sigs}"
    );
    assert!(
        sigs.contains(plain.trim_start_matches("sha256:")) || sigs.contains("another"),
        "the reason says what is wrong: {sigs}"
    );
}
