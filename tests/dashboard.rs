//! The web dashboard over HTTP, as a browser without JavaScript uses it: signing in and out,
//! CSRF and rate limits, who sees which repository, what the Tags and manifest pages show for
//! each kind of content, escaping of hostile names and annotations, tag and repository
//! actions, robot tokens shown once, and paging through 10,000 tags.
//! (Chromium drives the same pages in e2e/, from the README's test command.)

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::json;

const HTML: &str = "text/html; charset=utf-8";

trait FormBody {
    fn form_body(self, form: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    /// An `application/x-www-form-urlencoded` body, as a browser sends a form.
    fn form_body(self, form: &[(&str, &str)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// A cookie-keeping client that does not follow redirects, like a browser tab whose every
/// step we look at.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    /// The value of the first `name="csrf"` hidden field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').expect("value end")].to_string()
    }

    fn has(&self, needle: &str) -> bool {
        self.body.contains(needle)
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: HashMap::new(),
        }
    }

    /// A browser on another machine: its connections come from loopback address `from`.
    fn from_address(base: &str, from: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(from.parse::<std::net::IpAddr>().expect("address"))
                .build()
                .expect("client"),
            ..Browser::new(base)
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let r = req
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .expect("request");
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii cookie").to_string())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap_or("");
            let (k, v) = pair.split_once('=').expect("cookie pair");
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string()),
            set_cookies,
            headers: r.headers().clone(),
            body: r.text().await.expect("body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{}", self.base, path));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self
            .http
            .post(format!("{}{}", self.base, path))
            .form_body(form);
        self.send(req).await
    }

    /// Posts a form of the page at `page_path`, with that page's CSRF token.
    async fn submit(&mut self, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.get(page_path).await.csrf();
        let mut form = vec![("csrf", token.as_str())];
        form.extend_from_slice(fields);
        self.post(action, &form).await
    }

    async fn sign_in(&mut self, user: &str, password: &str) -> Page {
        self.submit(
            "/signin",
            "/signin",
            &[
                ("username", user),
                ("password", password),
                ("next", "/repository/"),
            ],
        )
        .await
    }

    async fn signed_in(base: &str, user: &str, password: &str) -> Browser {
        let mut b = Browser::new(base);
        let p = b.sign_in(user, password).await;
        assert_eq!(p.status, 303, "sign in as {user}: {}", p.body);
        b
    }
}

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
    assert!(signed.contains("class=\"badge-signed\""), "{signed}");
    assert!(signed.contains(&format!("podman pull {host}/userorg/showcase:1-30")));
    assert!(signed.contains(&format!("data-copy=\"{image}\"")));
    let enc = row(&p, "encrypted");
    assert!(
        enc.contains("data-kind=\"encrypted-image\"")
            && enc.contains("icon-lock")
            && enc.contains("JWE"),
        "{enc}"
    );
    assert!(!enc.contains("badge-signed"));
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
    assert!(m.has("class=\"raw-manifest\"") && m.has("&quot;schemaVersion&quot;: 2"));
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
