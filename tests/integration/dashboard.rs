//! The web dashboard over HTTP, as a browser without JavaScript uses it: signing in and out,
//! CSRF and rate limits, who sees which repository, what the Tags and manifest pages show for
//! each kind of content, escaping of hostile names and annotations, tag and repository
//! actions, robot tokens shown once, and paging through 10,000 tags.
//! (Chromium drives the same pages in e2e/, from the README's test command.)

use crate::common;

use common::*;
use serde_json::json;

const HTML: &str = "text/html; charset=utf-8";

fn settings(extra: &str) -> berth::config::Settings {
    let text = format!(
        "ALLOWED_OCI_ARTIFACT_TYPES:\n  application/vnd.oci.image.config.v1+json:\n  - application/vnd.dev.cosign.simplesigning.v1+json\n  - application/vnd.oci.image.layer.v1.tar+gzip+encrypted\n  application/vnd.cncf.helm.config.v1+json:\n  - application/tar+gzip\n{extra}"
    );
    berth::config::parse(&text).expect("config").settings
}

async fn put_json_manifest(
    s: &TestServer,
    repo: &str,
    reference: &str,
    manifest: &serde_json::Value,
) -> String {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let media_type = manifest["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json");
    let r = s
        .client
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", media_type)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    sha256(&bytes)
}

/// Pushes one artifact of each kind to `userorg/showcase` and a chart to `userorg/helm/quarkus`;
/// returns the image digest.
async fn push_showcase(s: &TestServer) -> String {
    let repo = "userorg/showcase";
    let image = push_image(&s.client, &s.base, repo, "1-30", b"httpd layer").await;
    let config = push_blob(
        &s.client,
        &s.base,
        repo,
        br#"{"architecture":"amd64","os":"linux"}"#,
    )
    .await;
    let sig_layer = push_blob(&s.client, &s.base, repo, b"{\"critical\":{}}").await;
    let sig_tag = format!("sha256-{}.sig", image.trim_start_matches("sha256:"));
    put_json_manifest(s, repo, &sig_tag, &json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 37},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": sig_layer, "size": 15,
                    "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ"}}]
    })).await;
    let enc_layer = push_blob(&s.client, &s.base, repo, b"ciphertext").await;
    put_json_manifest(s, repo, "encrypted", &json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 37},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "digest": enc_layer, "size": 10,
                    "annotations": {"org.opencontainers.image.enc.keys.jwe": "ZXlK", "org.opencontainers.image.enc.pubopts": "e30="}}]
    })).await;
    let zstd_layer = push_blob(&s.client, &s.base, repo, b"zstd frames").await;
    put_json_manifest(s, repo, "zstd", &json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 37},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": zstd_layer, "size": 11}]
    })).await;
    let image_size = image_manifest((&config, 37), &[(&sha256(b"httpd layer"), 11)]).len();
    put_json_manifest(s, repo, "multi", &json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image, "size": image_size,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image, "size": image_size,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
        ]
    })).await;
    // An image signed with notation (a Notary Project signature) and one with cosign 3 (a
    // sigstore bundle), both as OCI 1.1 referrers.
    let empty = push_blob(&s.client, &s.base, repo, b"{}").await;
    for (tag, artifact_type, layer_type) in [
        (
            "notary-signed",
            "application/vnd.cncf.notary.signature",
            "application/jose+json",
        ),
        (
            "bundle-signed",
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            "application/vnd.dev.sigstore.bundle.v0.3+json",
        ),
    ] {
        let signed = push_image(&s.client, &s.base, repo, tag, tag.as_bytes()).await;
        let size = s
            .get(&format!("/v2/{repo}/manifests/{signed}"))
            .await
            .bytes()
            .await
            .unwrap()
            .len();
        let envelope = push_blob(
            &s.client,
            &s.base,
            repo,
            format!("{tag} envelope").as_bytes(),
        )
        .await;
        let referrer = json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": layer_type, "digest": envelope, "size": tag.len() + 9}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": signed, "size": size}
        });
        let digest = sha256(&serde_json::to_vec(&referrer).unwrap());
        put_json_manifest(s, repo, &digest, &referrer).await;
    }
    let chart_repo = "userorg/helm/quarkus";
    let chart = br#"{"name":"quarkus","version":"0.0.3","appVersion":"1.0.0","description":"Quarkus demo chart","apiVersion":"v2"}"#;
    let chart_config = push_blob(&s.client, &s.base, chart_repo, chart).await;
    let tgz = push_blob(&s.client, &s.base, chart_repo, b"chart tgz").await;
    put_json_manifest(s, chart_repo, "0.0.3", &json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": chart_config, "size": chart.len()},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": tgz, "size": 9}]
    })).await;
    image
}

/// The `<tr>` of one tag in a Tags page.
fn row<'a>(page: &'a Page, tag: &str) -> &'a str {
    let start = page
        .body
        .find(&format!("data-tag=\"{tag}\""))
        .unwrap_or_else(|| panic!("no row for tag {tag}"));
    let end = page.body[start..].find("</tr>").expect("row end") + start;
    &page.body[start..end]
}

#[tokio::test]
async fn signing_in_sets_a_hardened_session_and_signing_out_ends_it() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s.base);
    let form = b.get("/signin").await;
    assert_eq!(form.status, 200);
    assert!(form.has(r#"form class="stack" action="/signin" method="post""#));
    let wrong = b.sign_in(ADMIN_USER, "not the password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.has("class=\"flash error\"") && wrong.has("Invalid username or password"));
    assert!(!b.cookies.contains_key("berth_session"));

    let ok = b.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(
        (ok.status, ok.location.as_deref()),
        (303, Some("/repository/"))
    );
    let session = ok
        .set_cookies
        .iter()
        .find(|c| c.starts_with("berth_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && session.contains("Path=/"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "plain HTTP cannot carry Secure cookies: {session}"
    );
    let stolen = b.cookies["berth_session"].clone();
    let home = b.get("/repository/").await;
    assert!(home.has("class=\"whoami\"") && home.has("<span>admin</span>"));
    assert_eq!(home.headers["cache-control"], "no-store");
    assert!(home.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(home.headers["content-type"], HTML);

    let out = b.submit("/repository/", "/signout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(!b.get("/repository/").await.has("class=\"whoami\""));
    // The old cookie is dead on the server too, not only forgotten by this browser.
    let mut replay = Browser::new(&s.base);
    replay.cookies.insert("berth_session".into(), stolen);
    assert!(!replay.get("/repository/").await.has("class=\"whoami\""));
}

#[tokio::test]
async fn forms_need_their_csrf_token_and_this_origin() {
    let s = TestServer::start().await;
    push_image(&s.client, &s.base, "admin/app", "keep", b"x").await;
    let mut b = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let action = [("action", "delete-tag"), ("tag", "keep")];
    let forged = b.post("/repository/admin/app", &action).await;
    assert_eq!(forged.status, 400, "{}", forged.body);
    let token = b.get("/repository/admin/app?tab=tags").await.csrf();
    let cross = b
        .send(
            b.http
                .post(s.url("/repository/admin/app"))
                .header("origin", "http://evil.example")
                .form_body(&[
                    ("csrf", token.as_str()),
                    ("action", "delete-tag"),
                    ("tag", "keep"),
                ]),
        )
        .await;
    assert_eq!(cross.status, 400);
    // Sign-in without the cookie's token is refused before the password is checked.
    let mut fresh = Browser::new(&s.base);
    let blind = fresh
        .post(
            "/signin",
            &[
                ("csrf", "x"),
                ("username", ADMIN_USER),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(blind.status, 400);
    let tags = b.get("/repository/admin/app?tab=tags").await;
    assert!(
        tags.has("data-tag=\"keep\""),
        "the tag survived every forged request"
    );
}

#[tokio::test]
async fn failed_sign_ins_do_not_lock_the_account_out() {
    // The limits themselves are tested in login_throttle.rs: the dashboard shares them.
    let s = TestServer::start_with(settings("LOGIN_FAILURES_PER_MINUTE: 3\n")).await;
    let mut attacker = Browser::new(&s.base);
    for _ in 0..3 {
        let failed = attacker.sign_in(ADMIN_USER, "wrong").await;
        assert_eq!(failed.status, 401);
        assert!(failed.has("Invalid username or password."));
    }
    let mut owner = Browser::from_address(&s.base, "127.0.0.9");
    let signed_in = owner.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
}

#[tokio::test]
async fn private_repositories_are_invisible_without_access() {
    let s = TestServer::start_with(settings("")).await;
    s.create_org("userorg").await;
    let image = push_showcase(&s).await;
    s.create_repo("userorg/open", true).await;
    push_image(&s.client, &s.base, "userorg/open", "v1", b"open").await;
    s.create_user("viewer").await;
    let mut viewer = Browser::signed_in(&s.base, "viewer", &password_of("viewer")).await;
    let mut anonymous = Browser::new(&s.base);
    for (who, b) in [("viewer", &mut viewer), ("anonymous", &mut anonymous)] {
        for path in [
            "/repository/",
            "/repository/?filter=showcase",
            "/repository/?filter=quarkus",
            "/organization/userorg",
        ] {
            let p = b.get(path).await;
            assert!(
                !p.has("userorg/showcase") && !p.has("userorg/helm/quarkus"),
                "{who} sees a private repository at {path}"
            );
        }
        assert!(
            b.get("/repository/")
                .await
                .has("data-repo=\"userorg/open\""),
            "{who} sees the public one"
        );
        for path in [
            "/repository/userorg/showcase?tab=tags".to_string(),
            "/repository/userorg/showcase?tab=tags&signatures=1".to_string(),
            format!("/repository/userorg/showcase/manifest/{image}"),
            "/repository/userorg/helm/quarkus".to_string(),
            "/repository/userorg/does-not-exist".to_string(),
        ] {
            let p = b.get(&path).await;
            assert_eq!(p.status, 404, "{who} {path}");
            assert!(
                !p.has("1-30") && !p.has("0.0.3") && !p.has(&image),
                "{who} {path} leaks content"
            );
        }
    }
    // A read grant makes it visible, without tag deletion or settings.
    s.grant("userorg/showcase", "viewer", "read").await;
    let tags = viewer.get("/repository/userorg/showcase?tab=tags").await;
    assert_eq!(tags.status, 200);
    assert!(tags.has("data-tag=\"1-30\"") && !tags.has("delete-tag") && !tags.has("?tab=settings"));
    assert_eq!(
        viewer
            .get("/repository/userorg/showcase?tab=settings")
            .await
            .status,
        403
    );
    let delete = viewer
        .submit(
            "/repository/userorg/showcase?tab=tags",
            "/repository/userorg/showcase",
            &[("action", "delete-tag"), ("tag", "1-30")],
        )
        .await;
    assert_eq!(delete.status, 403);
    assert!(viewer
        .get("/repository/")
        .await
        .has("data-repo=\"userorg/showcase\""));
}

/// Whether a tag's row says it is signed: the plain badge until its signatures are verified,
/// then their status ("signed, untrusted key", "invalid signature" for the showcase's made-up
/// signature bytes; see `dashboard_trust.rs`).
fn shows_signed(row: &str) -> bool {
    row.contains("class=\"badge-signed\"") || row.contains("class=\"trust-badge\"")
}

#[tokio::test]
async fn tags_page_tells_each_kind_apart() {
    let s = TestServer::start_with(settings("")).await;
    s.create_org("userorg").await;
    let image = push_showcase(&s).await;
    let mut b = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let p = b.get("/repository/userorg/showcase?tab=tags").await;
    assert_eq!(p.status, 200);
    let host = s.base.trim_start_matches("http://");

    let signed = row(&p, "1-30");
    assert!(signed.contains("data-kind=\"image\"") && signed.contains("Container image"));
    assert!(shows_signed(signed), "{signed}");
    assert!(signed.contains(&format!("podman pull {host}/userorg/showcase:1-30")));
    assert!(signed.contains(&format!("data-copy=\"{image}\"")));
    let enc = row(&p, "encrypted");
    assert!(
        enc.contains("data-kind=\"encrypted-image\"")
            && enc.contains("icon-lock")
            && enc.contains("JWE"),
        "{enc}"
    );
    assert!(!shows_signed(enc));
    // Notary Project signatures and sigstore bundles sign too.
    for (tag, label) in [
        ("notary-signed", "Notary signature"),
        ("bundle-signed", "Sigstore bundle"),
    ] {
        let r = row(&p, tag);
        assert!(shows_signed(r), "{tag}: {r}");
        let digest = r
            .split("data-copy=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let m = b
            .get(&format!("/repository/userorg/showcase/manifest/{digest}"))
            .await;
        let referrers = section(&m, "referrers");
        assert!(
            referrers.contains("class=\"referrer\" data-kind=\"signature\"")
                && referrers.contains(label)
                && !referrers.contains("Cosign signature"),
            "{tag}: {referrers}"
        );
    }
    assert!(row(&p, "zstd").contains("data-kind=\"zstd-image\""));
    let multi = row(&p, "multi");
    assert!(
        multi.contains("Multi-arch index") && multi.contains("linux/amd64, linux/arm64/v8"),
        "{multi}"
    );
    // cosign's tags are hidden until asked for.
    let sig_tag = format!("sha256-{}.sig", image.trim_start_matches("sha256:"));
    assert!(!p.has(&format!("data-tag=\"{sig_tag}\"")));
    assert!(p.has("class=\"toggle-signatures\""));
    let shown = b
        .get("/repository/userorg/showcase?tab=tags&signatures=1")
        .await;
    let sig = row(&shown, &sig_tag);
    assert!(
        sig.contains("data-kind=\"signature\"")
            && sig.contains("Cosign signature")
            && sig.contains("oras pull"),
        "{sig}"
    );

    let chart = b.get("/repository/userorg/helm/quarkus?tab=tags").await;
    let c = row(&chart, "0.0.3");
    assert!(
        c.contains("data-kind=\"helm-chart\"") && c.contains("quarkus 0.0.3"),
        "{c}"
    );
    assert!(
        c.contains(&format!(
            "helm install quarkus oci://{host}/userorg/helm/quarkus --version 0.0.3"
        )),
        "{c}"
    );

    // Filter and the manifest page.
    let filtered = b
        .get("/repository/userorg/showcase?tab=tags&filter=enc")
        .await;
    assert!(filtered.has("data-tag=\"encrypted\"") && !filtered.has("data-tag=\"1-30\""));
    let m = b
        .get(&format!("/repository/userorg/showcase/manifest/{image}"))
        .await;
    assert_eq!(m.status, 200);
    assert!(
        m.has("class=\"facts manifest-facts\"")
            && m.has("application/vnd.oci.image.manifest.v1+json")
    );
    assert!(
        m.has("class=\"layer\"") && m.has("class=\"referrer\" data-kind=\"signature\""),
        "signature listed as a referrer"
    );
    // The raw view is the stored bytes, not a re-serialisation.
    let stored = s
        .get(&format!("/v2/userorg/showcase/manifests/{image}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(raw_view(&m), stored);
    let chart_digest = c
        .split("data-copy=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let cm = b
        .get(&format!(
            "/repository/userorg/helm/quarkus/manifest/{chart_digest}"
        ))
        .await;
    assert!(
        cm.has("data-field=\"version\">0.0.3<")
            && cm.has("data-field=\"appVersion\">1.0.0<")
            && cm.has("Quarkus demo chart")
    );
}

#[tokio::test]
async fn hostile_names_and_annotations_are_shown_as_text() {
    let s = TestServer::start_with(settings("")).await;
    let repo = "admin/hostile";
    let evil = "<script>window.__pwned=1</script><img src=x onerror=alert(1)>";
    let config = push_blob(
        &s.client,
        &s.base,
        repo,
        format!(
            r#"{{"name":"evil","version":"1.0.0","description":"{}"}}"#,
            evil.replace('"', "\\\"")
        )
        .as_bytes(),
    )
    .await;
    let config_len = format!(
        r#"{{"name":"evil","version":"1.0.0","description":"{}"}}"#,
        evil.replace('"', "\\\"")
    )
    .len();
    let layer = push_blob(&s.client, &s.base, repo, b"tgz").await;
    let digest = put_json_manifest(&s, repo, "1.0.0", &json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": config, "size": config_len},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": layer, "size": 3,
                    "annotations": {"org.opencontainers.image.title": evil}}],
        "annotations": {"\"><script>alert(2)</script>": evil}
    })).await;
    let mut b = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    for path in [
        "/repository/admin/hostile?tab=tags".to_string(),
        format!("/repository/admin/hostile/manifest/{digest}"),
        "/repository/?filter=%3Cscript%3E".to_string(),
        "/repository/admin/hostile?tab=tags&filter=%22%3E%3Cscript%3Ealert(3)%3C/script%3E"
            .to_string(),
        "/signin?next=%22%3E%3Cscript%3Ealert(4)%3C/script%3E".to_string(),
    ] {
        let p = b.get(&path).await;
        assert!(
            !p.body.contains("<script>") && !p.body.contains("<img src=x"),
            "{path} carries live markup"
        );
    }
    let m = b
        .get(&format!("/repository/admin/hostile/manifest/{digest}"))
        .await;
    assert!(
        m.has("&lt;script&gt;window.__pwned=1&lt;/script&gt;"),
        "the description is shown as text"
    );
    // The chart's name is safe for the pull command; a hostile one would not be used.
    let tags = b.get("/repository/admin/hostile?tab=tags").await;
    assert!(tags.has("helm install evil oci://"));
}

#[tokio::test]
async fn deleting_a_tag_asks_first() {
    let s = TestServer::start().await;
    push_image(&s.client, &s.base, "admin/app", "keep", b"1").await;
    push_image(&s.client, &s.base, "admin/app", "to-delete", b"2").await;
    let mut b = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let tags = b.get("/repository/admin/app?tab=tags").await;
    assert!(row(&tags, "to-delete").contains(
        "class=\"delete-tag\" href=\"/repository/admin/app?tab=tags&amp;delete=to-delete\""
    ));
    let confirm = b
        .get("/repository/admin/app?tab=tags&delete=to-delete")
        .await;
    assert!(confirm.has("class=\"confirm-delete\""));
    assert!(
        confirm.has("data-tag=\"to-delete\""),
        "nothing is deleted by looking"
    );
    let done = b
        .submit(
            "/repository/admin/app?tab=tags",
            "/repository/admin/app",
            &[
                ("action", "delete-tag"),
                ("tag", "to-delete"),
                ("back", "/repository/admin/app?tab=tags"),
            ],
        )
        .await;
    assert_eq!(
        (done.status, done.location.as_deref()),
        (303, Some("/repository/admin/app?tab=tags"))
    );
    let after = b.get("/repository/admin/app?tab=tags").await;
    assert!(after.has("class=\"flash success\"") && after.has("Deleted tag to-delete."));
    assert!(!after.has("data-tag=\"to-delete\"") && after.has("data-tag=\"keep\""));
    let r = s
        .client
        .get(s.url("/v2/admin/app/manifests/to-delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The flash is shown once.
    assert!(!b
        .get("/repository/admin/app?tab=tags")
        .await
        .has("flash success"));
}

#[tokio::test]
async fn settings_change_visibility_and_grants_and_delete_the_repository() {
    let s = TestServer::start().await;
    s.create_org("userorg").await;
    push_image(&s.client, &s.base, "userorg/app", "1", b"1").await;
    s.create_user("reader").await;
    let mut admin = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let settings_path = "/repository/userorg/app?tab=settings";
    let page = admin.get(settings_path).await;
    assert!(
        page.has("class=\"visibility\"")
            && page.has("class=\"permissions\"")
            && page.has("class=\"delete-repository form-row\"")
    );

    let mut anonymous = Browser::new(&s.base);
    assert_eq!(anonymous.get("/repository/userorg/app").await.status, 404);
    admin
        .submit(
            settings_path,
            "/repository/userorg/app",
            &[("action", "visibility"), ("visibility", "public")],
        )
        .await;
    assert_eq!(anonymous.get("/repository/userorg/app").await.status, 200);
    assert_eq!(
        anonymous.get(settings_path).await.status,
        303,
        "settings ask anonymous visitors to sign in"
    );

    let granted = admin
        .submit(
            settings_path,
            "/repository/userorg/app",
            &[
                ("action", "set-permission"),
                ("kind", "user"),
                ("name", "reader"),
                ("role", "write"),
            ],
        )
        .await;
    assert_eq!(granted.status, 303);
    let after = admin.get(settings_path).await;
    assert!(after.has("reader now has write access.") && after.has("data-grantee=\"reader\""));
    let r = authed_client("reader", &password_of("reader"))
        .delete(s.url("/v2/userorg/app/manifests/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "the grant is the registry's grant");
    let nobody = admin
        .submit(
            settings_path,
            "/repository/userorg/app",
            &[
                ("action", "set-permission"),
                ("kind", "user"),
                ("name", "ghost"),
                ("role", "read"),
            ],
        )
        .await;
    assert_eq!(nobody.status, 400);
    admin
        .submit(
            settings_path,
            "/repository/userorg/app",
            &[
                ("action", "remove-permission"),
                ("kind", "user"),
                ("name", "reader"),
            ],
        )
        .await;
    assert!(!admin
        .get(settings_path)
        .await
        .has("data-grantee=\"reader\""));

    let wrong = admin
        .submit(
            settings_path,
            "/repository/userorg/app",
            &[
                ("action", "delete-repository"),
                ("confirm", "userorg/other"),
            ],
        )
        .await;
    assert_eq!(wrong.location.as_deref(), Some(settings_path));
    assert_eq!(
        admin.get("/repository/userorg/app").await.status,
        200,
        "a wrong confirmation deletes nothing"
    );
    let gone = admin
        .submit(
            settings_path,
            "/repository/userorg/app",
            &[("action", "delete-repository"), ("confirm", "userorg/app")],
        )
        .await;
    assert_eq!(gone.location.as_deref(), Some("/repository/"));
    assert_eq!(admin.get("/repository/userorg/app").await.status, 404);
}

#[tokio::test]
async fn robot_tokens_are_shown_once_and_work() {
    let s = TestServer::start().await;
    s.create_org("userorg").await;
    let mut b = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let org = b.get("/organization/userorg").await;
    assert!(
        org.has("class=\"panel members\"")
            && org.has("class=\"panel teams\"")
            && org.has("class=\"panel robots\"")
    );
    // The page answering the form shows the token (no redirect: a cookie would have to
    // carry it to the next page).
    let shown = b
        .submit(
            "/organization/userorg",
            "/organization/userorg",
            &[("action", "create-robot"), ("name", "builder")],
        )
        .await;
    assert_eq!(shown.status, 200);
    let at = shown
        .body
        .find("class=\"robot-token\">")
        .expect("the token is shown");
    let rest = &shown.body[at + 20..];
    let token = &rest[..rest.find('<').unwrap()];
    assert_eq!(token.len(), 43);
    assert_eq!(
        shown.headers.get("cache-control").unwrap(),
        "no-store",
        "nor is it kept in a cache"
    );
    assert!(shown.set_cookies.iter().all(|c| !c.contains(token)));
    let org = b.get("/organization/userorg").await;
    assert!(org.has("data-robot=\"userorg+builder\""));
    assert!(!org.has("robot-token"), "shown only once");
    let r = authed_client("userorg+builder", token)
        .get(s.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the robot logs in with the token it was shown"
    );
    let bad = b
        .submit(
            "/organization/userorg",
            "/organization/userorg",
            &[("action", "create-robot"), ("name", "Bad Name")],
        )
        .await;
    assert_eq!(bad.status, 303);
    assert!(b
        .get("/organization/userorg")
        .await
        .has("class=\"flash error\""));
    // Members of nothing cannot create robots.
    s.create_user("outsider").await;
    let mut outsider = Browser::signed_in(&s.base, "outsider", &password_of("outsider")).await;
    assert_eq!(outsider.get("/organization/userorg").await.status, 404);
    let refused = outsider
        .submit(
            "/repository/",
            "/organization/userorg",
            &[("action", "create-robot"), ("name", "sneaky")],
        )
        .await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn ten_thousand_tags_are_paged() {
    let s = TestServer::start().await;
    let digest = push_image(&s.client, &s.base, "admin/many", "t00000", b"many").await;
    // 50 tags a request: each comes back as an OCI-Tag header.
    for batch in 0..200 {
        let query: Vec<String> = (0..50)
            .map(|i| format!("tag=t{:05}", batch * 50 + i))
            .collect();
        let r = s
            .client
            .put(s.url(&format!(
                "/v2/admin/many/manifests/{digest}?{}",
                query.join("&")
            )))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(image_manifest(
                (&sha256(br#"{"architecture":"amd64","os":"linux"}"#), 37),
                &[(&sha256(b"many"), 4)],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let mut b = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let started = std::time::Instant::now();
    let first = b.get("/repository/admin/many?tab=tags").await;
    let elapsed = started.elapsed();
    println!("tags page of 10,000 tags served in {elapsed:?} (debug build)");
    assert_eq!(first.body.matches("class=\"tag-row").count(), 50);
    assert!(
        first.has("rel=\"next\" href=\"/repository/admin/many?tab=tags&amp;page=2\"")
            && !first.has("rel=\"prev\"")
    );
    let last = b.get("/repository/admin/many?tab=tags&page=200").await;
    assert_eq!(last.body.matches("class=\"tag-row").count(), 50);
    assert!(
        last.has("data-tag=\"t09999\"") && last.has("rel=\"prev\"") && !last.has("rel=\"next\"")
    );
    let filtered = b.get("/repository/admin/many?tab=tags&filter=t0999").await;
    assert_eq!(filtered.body.matches("class=\"tag-row").count(), 10);
    let list = b.get("/repository/").await;
    assert!(list.body.contains("<td class=\"num tag-count\">10000</td>"));
}

#[tokio::test]
async fn assets_are_served_by_berth_and_cached() {
    let s = TestServer::start().await;
    let mut b = Browser::new(&s.base);
    let page = b.get("/signin").await;
    for asset in ["berth.css", "berth.js", "favicon.svg"] {
        let at = page
            .body
            .find(&format!("/static/{asset}?v="))
            .expect("asset link");
        let url = &page.body[at..at + page.body[at..].find('"').unwrap()];
        let r = reqwest::get(s.url(url)).await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert!(r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let etag = r.headers()["etag"].clone();
        let again = reqwest::Client::new()
            .get(s.url(url))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
    }
    assert_eq!(
        reqwest::get(s.url("/static/../Cargo.toml"))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reqwest::get(s.url("/")).await.unwrap().url().path(),
        "/repository/"
    );
}

/// Layers in the manifest of the memory-amplification report.
const HUGE_LAYERS: usize = 25_000;
/// Top-level annotations of that manifest (more than one page of them).
const HUGE_ANNOTATIONS: usize = 150;
/// A value no page may show unescaped.
const MARKUP: &str = "</pre><script>alert(1)</script>";

/// Pushes a public-sized (3.9 MB) manifest of [`HUGE_LAYERS`] layers, all the same small blob,
/// written as no serializer would (CRLF line ends, spaces around colons, `annotations` and
/// `layers` before `config`, an annotation with markup) so that a page which re-serialises it,
/// or forgets to escape it, shows. Returns its digest and its exact text.
async fn push_huge_manifest(client: &reqwest::Client, base: &str, repo: &str) -> (String, String) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = push_blob(client, base, repo, config).await;
    let layer_digest = push_blob(client, base, repo, b"layer").await;
    let mut text = String::from("{ \"schemaVersion\" : 2,\r\n\"annotations\" : {");
    text.push_str(&format!("\"markup\" : \"{}\"", MARKUP.replace('"', "\\\"")));
    for i in 1..HUGE_ANNOTATIONS {
        text.push_str(&format!(
            ",\r\n   \"org.example.note.{i:03}\" : \"note {i}\""
        ));
    }
    text.push_str(" },\r\n\"layers\" : [");
    for i in 0..HUGE_LAYERS {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            "\r\n {{ \"size\" : 5, \"digest\" : \"{layer_digest}\", \"mediaType\" : \"application/vnd.oci.image.layer.v1.tar+gzip\" }}"
        ));
    }
    text.push_str(&format!(
        " ],\r\n\"config\" : {{ \"size\" : {}, \"digest\" : \"{config_digest}\", \"mediaType\" : \"application/vnd.oci.image.config.v1+json\" }},\r\n\"mediaType\" : \"application/vnd.oci.image.manifest.v1+json\" }}\r\n",
        config.len()
    ));
    assert!(
        text.len() > 3_800_000 && text.len() < 4 << 20,
        "{} bytes",
        text.len()
    );
    let r = put_manifest(
        client,
        base,
        repo,
        "huge",
        "application/vnd.oci.image.manifest.v1+json",
        text.as_bytes(),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    (sha256(text.as_bytes()), text)
}

/// The `<section>` of a page with this id.
fn section<'a>(page: &'a Page, id: &str) -> &'a str {
    let start = page
        .body
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = page.body[start..].find("</section>").expect("section end") + start;
    &page.body[start..end]
}

/// The text of the page's raw view, as a browser reads it out of the HTML.
fn raw_view(page: &Page) -> String {
    let start = page
        .body
        .find("<pre class=\"raw-manifest")
        .expect("a raw view");
    let open = page.body[start..].find('>').expect("pre tag end") + start + 1;
    let close = page.body[open..].find("</pre>").expect("pre end") + open;
    let html = &page.body[open..close];
    // HTML ignores a newline right after <pre>.
    let html = html.strip_prefix('\n').unwrap_or(html);
    html.replace("&#13;", "\r")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn a_manifest_of_25000_layers_is_paged_and_shown_as_stored() {
    let s = TestServer::start().await;
    let repo = "admin/huge";
    let (digest, stored) = push_huge_manifest(&s.client, &s.base, repo).await;
    let url = format!("/repository/{repo}/manifest/{digest}");
    let mut anonymous = Browser::new(&s.base);
    assert_eq!(
        anonymous.get(&url).await.status,
        404,
        "private until made public"
    );
    assert_eq!(anonymous.get(&format!("{url}/raw")).await.status, 404);
    s.set_visibility(repo, true).await;

    let first = anonymous.get(&url).await;
    assert_eq!(first.status, 200);
    println!(
        "the page of a {} byte manifest is {} bytes",
        stored.len(),
        first.body.len()
    );
    assert!(
        first.body.len() < 1 << 20,
        "the page is {} bytes",
        first.body.len()
    );
    assert!(
        !first.has("<script>"),
        "markup from the manifest is escaped"
    );
    assert!(first.has("Layers <span class=\"count\">(25000)</span>"));
    assert_eq!(first.body.matches("<tr class=\"layer\">").count(), 100);
    assert!(first.has("Showing 1–100 of 25000"));
    assert!(first.has(&format!("rel=\"next\" href=\"{url}?layers_page=2#layers\"")));
    assert!(first.has("Annotations <span class=\"count\">(150)</span>"));

    // The raw view is the stored text, as stored, cut at 64 KiB; the whole is a download away.
    let raw = raw_view(&first);
    assert_eq!(raw.len(), 64 * 1024);
    assert!(stored.starts_with(&raw), "the raw view is the stored bytes");
    assert!(first.has("<pre class=\"raw-manifest truncated\">"));
    assert!(first.has(&format!("href=\"{url}/raw\"")));
    let download = reqwest::get(s.url(&format!("{url}/raw"))).await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(download.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(download.headers()["x-content-type-options"], "nosniff");
    assert!(download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert!(
        download.text().await.unwrap() == stored,
        "the download is the stored bytes"
    );

    // Paging: the second and the last page of layers, numbered on, and past the end.
    let second = anonymous.get(&format!("{url}?layers_page=2")).await;
    assert_eq!(second.body.matches("<tr class=\"layer\">").count(), 100);
    assert!(second.has("<td>101</td>") && !second.has("<td>100</td>"));
    assert!(second.has(&format!("rel=\"prev\" href=\"{url}#layers\"")));
    // Other lists' links keep this list's page.
    assert!(second.has(&format!(
        "href=\"{url}?layers_page=2&amp;annotations_page=2#annotations\""
    )));
    let last = anonymous.get(&format!("{url}?layers_page=250")).await;
    assert_eq!(last.body.matches("<tr class=\"layer\">").count(), 100);
    assert!(last.has("<td>25000</td>") && !last.has("layers_page=251"));
    assert!(last.has("Showing 24901–25000 of 25000"));
    let past = anonymous.get(&format!("{url}?layers_page=9999")).await;
    assert_eq!(past.status, 200);
    assert_eq!(past.body.matches("<tr class=\"layer\">").count(), 0);
    assert!(past.has("Nothing on this page"));
    let notes = anonymous.get(&format!("{url}?annotations_page=2")).await;
    let notes = section(&notes, "annotations");
    assert!(notes.contains("org.example.note.149") && !notes.contains("org.example.note.099"));
    assert!(notes.contains("Showing 101–150 of 150"));
}

#[tokio::test]
async fn small_manifests_show_whole_and_exact() {
    let s = TestServer::start().await;
    let repo = "admin/small";
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(&s.client, &s.base, repo, config).await;
    let l = push_blob(&s.client, &s.base, repo, b"small").await;
    // Key order, spacing and escapes that a re-serialisation would change.
    let text = format!(
        "{{\r\n\t\"layers\":[{{\"digest\":\"{l}\",\"size\":5,\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"annotations\":{{\"t\":\"\\u00e9 &amp; <b>\"}}}}],\r\n\t\"schemaVersion\":2,   \"config\":{{\"digest\":\"{c}\",\"size\":{},\"mediaType\":\"application/vnd.oci.image.config.v1+json\"}},\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"}}",
        config.len()
    );
    let r = put_manifest(
        &s.client,
        &s.base,
        repo,
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        text.as_bytes(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let mut b = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let page = b
        .get(&format!(
            "/repository/{repo}/manifest/{}",
            sha256(text.as_bytes())
        ))
        .await;
    assert_eq!(raw_view(&page), text);
    assert!(page.has("<pre class=\"raw-manifest\">"), "not truncated");
    assert!(!page.has("class=\"pager"), "one page needs no pager");
    assert!(
        page.has("<dd>é &amp;amp; &lt;b&gt;</dd>"),
        "the annotation, decoded"
    );
}

#[tokio::test]
async fn index_children_and_referrers_are_paged() {
    let s = TestServer::start().await;
    let repo = "admin/refs";
    let image = push_image(&s.client, &s.base, repo, "v1", b"target").await;
    let image_size = s
        .get(&format!("/v2/{repo}/manifests/{image}"))
        .await
        .bytes()
        .await
        .unwrap()
        .len();
    let child = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image,
                       "size": image_size, "platform": {"os": "linux", "architecture": "amd64"}});
    let index = put_json_manifest(
        &s,
        repo,
        "index",
        &json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": vec![child; 150],
        }),
    )
    .await;
    let empty = push_blob(&s.client, &s.base, repo, b"{}").await;
    let layer = push_blob(&s.client, &s.base, repo, b"sbom").await;
    for i in 0..105 {
        put_json_manifest(&s, repo, &format!("sbom-{i:03}"), &json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/spdx+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "text/spdx+json", "digest": layer, "size": 4}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image, "size": image_size},
            "annotations": {"n": i.to_string()},
        }))
        .await;
    }
    let mut b = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let url = format!("/repository/{repo}/manifest/{index}");
    let children = b.get(&url).await;
    assert!(children.has("Manifests in this index <span class=\"count\">(150)</span>"));
    assert_eq!(children.body.matches("<tr class=\"child\">").count(), 100);
    let rest = b.get(&format!("{url}?manifests_page=2")).await;
    assert_eq!(rest.body.matches("<tr class=\"child\">").count(), 50);
    assert!(rest.has("Showing 101–150 of 150"));

    let url = format!("/repository/{repo}/manifest/{image}");
    let referrers = b.get(&url).await;
    assert!(referrers.has("other referrers <span class=\"count\">(105)</span>"));
    assert_eq!(
        referrers.body.matches("<tr class=\"referrer\"").count(),
        100
    );
    assert!(referrers.has(&format!(
        "rel=\"next\" href=\"{url}?referrers_page=2#referrers\""
    )));
    let rest = b.get(&format!("{url}?referrers_page=2")).await;
    assert_eq!(rest.body.matches("<tr class=\"referrer\"").count(), 5);
    assert!(rest.has("Showing 101–105 of 105"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_views_of_a_huge_manifest_keep_memory_bounded() {
    const MIB: u64 = 1024 * 1024;
    const VIEWS: usize = 64;
    const PEAK_LIMIT: u64 = 300 * MIB;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ProcessServer::spawn(dir.path()).await;
    let pid = server.child.id().expect("berth pid");
    let repo = "admin/huge";
    let (digest, _) = push_huge_manifest(&server.client, &server.base, repo).await;
    let public = api_call(
        &server.client,
        "POST",
        &format!("{}/api/v1/repository/{repo}/changevisibility", server.base),
        Some(json!({"visibility": "public"})),
    )
    .await;
    assert_eq!(public.status, 200, "{}", public.body);
    let (rss_before, _) = memory_of(pid);

    let anonymous = reqwest::Client::new();
    let url = format!("{}/repository/{repo}/manifest/{digest}", server.base);
    let views = (0..VIEWS).map(|_| {
        let (client, url) = (anonymous.clone(), url.clone());
        async move {
            let r = client.get(url).send().await.expect("view");
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let len = r.bytes().await.expect("page").len();
            (status, retry, len)
        }
    });
    let started = std::time::Instant::now();
    let answers = futures::future::join_all(views).await;
    let elapsed = started.elapsed();
    let (rss_after, peak) = memory_of(pid);
    let served = answers.iter().filter(|(status, ..)| *status == 200).count();
    println!(
        "{VIEWS} views in {elapsed:?}: {served} pages, {} busy; RSS {} MiB before, {} MiB after, peak {} MiB",
        VIEWS - served,
        rss_before / MIB,
        rss_after / MIB,
        peak / MIB
    );
    assert!(
        peak < PEAK_LIMIT,
        "{VIEWS} concurrent views took berth to {} MiB (limit {} MiB)",
        peak / MIB,
        PEAK_LIMIT / MIB
    );
    for (status, retry, len) in &answers {
        match status {
            200 => assert!(*len < 1 << 20, "a page of {len} bytes"),
            503 => assert_eq!(
                retry.as_deref(),
                Some("5"),
                "a busy answer says when to retry"
            ),
            other => panic!("a view answered {other}"),
        }
    }
    assert!(served > 0, "some views were served");
}

/// `next` values as an attacker writes them in a link (percent-encoded as in the query).
const HOSTILE_NEXT_QUERIES: &[&str] = &[
    "/%09/evil.example",
    "/%0A/evil.example",
    "/%0D/evil.example",
    "/%0D%0ASet-Cookie:%20x=1",
    "/%01",
    "/%00",
    "/%7F",
    "//evil.example",
    "/%2F/evil.example",
    "/%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%5C%5Cevil.example",
    "%5C%5Cevil.example",
    "/%255Cevil.example",
    "/%252F%252Fevil.example",
    "https://evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "evil.example",
    "%20/evil.example",
    "/%20/evil.example",
    "/%C2%A0/evil.example",
    "/%E2%80%A8/evil.example",
    "/%E3%80%80/evil.example",
    "/%E2%80%8B/evil.example",
    "/%EF%BB%BF/evil.example",
    "/%FF",
    "/repository/a/b%09",
];

/// The same values as a form carries them (decoded).
fn hostile_next_values() -> Vec<String> {
    HOSTILE_NEXT_QUERIES
        .iter()
        .map(|q| {
            form_urlencoded::parse(format!("next={q}").as_bytes())
                .next()
                .expect("pair")
                .1
                .into_owned()
        })
        .chain(["/\\evil.example".into(), "/a\\b".into(), "\\\\evil".into()])
        .collect()
}

/// A `Location` that stays on this site: a path, not `//host` or `/\host`, and nothing a
/// browser would strip or reinterpret.
fn assert_same_site(location: Option<&str>, context: &str) {
    let location = location.unwrap_or_else(|| panic!("{context}: no Location"));
    assert!(
        location.starts_with('/')
            && !location.starts_with("//")
            && !location.starts_with("/\\")
            && location.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'),
        "{context}: Location {location:?}"
    );
    assert_eq!(location, "/", "{context}: a refused target goes home");
}

#[tokio::test]
async fn sign_in_never_redirects_off_site() {
    let s = TestServer::start().await;
    let mut signed_in = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    for q in HOSTILE_NEXT_QUERIES {
        let p = signed_in.get(&format!("/signin?next={q}")).await;
        assert_eq!(p.status, 303, "GET /signin?next={q}: {}", p.body);
        assert_same_site(p.location.as_deref(), &format!("GET /signin?next={q}"));
    }
    let mut anonymous = Browser::new(&s.base);
    for q in HOSTILE_NEXT_QUERIES {
        let p = anonymous.get(&format!("/signin?next={q}")).await;
        assert_eq!(p.status, 200, "anonymous GET /signin?next={q}");
        assert!(
            p.has("name=\"next\" value=\"/\""),
            "the form carries / for {q}"
        );
    }
    for next in hostile_next_values() {
        // Signed in already, the form only redirects.
        let p = signed_in.post("/signin", &[("next", &next)]).await;
        assert_eq!(p.status, 303, "POST /signin next={next:?}: {}", p.body);
        assert_same_site(p.location.as_deref(), &format!("POST next={next:?}"));
    }
    // Signing in for real goes through the same check.
    for next in [
        "/\t/evil.example",
        "/\u{1}",
        "/%5Cevil.example",
        "/\u{3000}/x",
    ] {
        let mut b = Browser::new(&s.base);
        let p = b
            .submit(
                "/signin",
                "/signin",
                &[
                    ("username", ADMIN_USER),
                    ("password", ADMIN_PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(p.status, 303, "sign in with next={next:?}: {}", p.body);
        assert_same_site(p.location.as_deref(), &format!("sign in, next={next:?}"));
    }
    // A same-site path survives, query and all.
    let p = signed_in
        .get("/signin?next=%2Frepository%2Fadmin%2Fx%3Ftab%3Dtags%26filter%3Dv1")
        .await;
    assert_eq!(
        p.location.as_deref(),
        Some("/repository/admin/x?tab=tags&filter=v1")
    );
    // Other redirect targets from the client get the same treatment: a delete form's `back`.
    push_image(&s.client, &s.base, "admin/x", "v1", b"x").await;
    for back in [
        "/repository/admin/x?\u{1}",
        "/repository/admin/x?tab=tags\r\nX: y",
    ] {
        let p = signed_in
            .submit(
                "/repository/admin/x?tab=tags",
                "/repository/admin/x",
                &[("action", "delete-tag"), ("tag", "nope"), ("back", back)],
            )
            .await;
        assert_eq!(p.status, 303, "back={back:?}: {}", p.body);
        assert_same_site(p.location.as_deref(), &format!("back={back:?}"));
    }
}
