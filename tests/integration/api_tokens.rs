//! API tokens (Quay's application-specific tokens) as their users drive them: created, listed,
//! read and revoked through `/api/v1/user/apptoken`, `berth token` and the dashboard; refused
//! at the next request once revoked or expired (`APP_SPECIFIC_TOKEN_EXPIRATION`, read live,
//! or `--expires-in`); ended together with the dashboard sessions by a new password or the
//! account's deletion; and never shown again, in listings or in the log.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const APPTOKEN: &str = "/api/v1/user/apptoken";

/// `method path` on `s` as `client`.
async fn call(s: &TestServer, client: &reqwest::Client, method: &str, path: &str) -> ApiReply {
    api_call(client, method, &s.url(path), None).await
}

/// Creates a token titled `title` through the API as `client` (Basic credentials); returns
/// its view and its secret.
async fn create_token(s: &TestServer, client: &reqwest::Client, title: &str) -> (Value, String) {
    let r = api_call(
        client,
        "POST",
        &s.url(APPTOKEN),
        Some(json!({ "title": title })),
    )
    .await;
    assert_eq!(r.status, 200, "create {title}: {}", r.body);
    let token = r.body["token"].clone();
    let secret = token["token_code"]
        .as_str()
        .expect("token_code")
        .to_string();
    assert!(
        secret.starts_with("berth_") && secret.len() > 40,
        "{secret}"
    );
    (token, secret)
}

/// `GET /api/v1/user/` with `secret` as bearer: who it stands for, or the refusal.
async fn whoami(s: &TestServer, secret: &str) -> ApiReply {
    call(s, &bearer_client(secret), "GET", "/api/v1/user/").await
}

/// Asserts that `secret` works and stands for `user`.
async fn assert_works(s: &TestServer, secret: &str, user: &str) {
    let r = whoami(s, secret).await;
    assert_eq!(
        (r.status, &r.body["username"]),
        (200, &json!(user)),
        "{}",
        r.body
    );
}

/// Asserts that `secret` is refused with a 401 whose detail says `why`.
async fn assert_refused(s: &TestServer, secret: &str, why: &str) {
    let r = whoami(s, secret).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let detail = r.body["error_message"].as_str().unwrap_or_default();
    assert!(detail.contains(why), "{why:?} not in {detail:?}");
    // On /v2 too, where an API token also stands for its user.
    let status = status_of(bearer_client(secret).get(s.url("/v2/"))).await;
    assert_eq!(status, 401, "/v2 with a refused API token");
}

/// The uuids of the tokens a listing shows.
fn uuids(list: &ApiReply) -> Vec<&str> {
    let tokens = list.body["tokens"].as_array().expect("tokens");
    tokens.iter().map(|t| t["uuid"].as_str().unwrap()).collect()
}

/// Runs `berth token ...` on `s`'s data.
async fn token_cli(s: &TestServer, args: &[&str]) -> CliOutput {
    let args: Vec<&str> = ["token"].iter().chain(args).copied().collect();
    berth_cli(s.data_dir(), &args, None).await
}

/// The uuid `berth token create` reports on stderr.
fn created_uuid(out: &CliOutput) -> String {
    let rest = out
        .stderr
        .split("created API token ")
        .nth(1)
        .unwrap_or_else(|| panic!("no uuid in {out:?}"));
    rest.split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn quays_apptoken_api_creates_lists_reads_and_revokes_the_callers_own_tokens() {
    let s = TestServer::start().await;
    let dev = s.create_user("dev").await;
    let other = s.create_user("other").await;

    let (token, secret) = create_token(&s, &dev, "laptop").await;
    let uuid = token["uuid"].as_str().unwrap().to_string();
    assert_eq!(uuid.len(), 36, "{token}");
    assert_eq!(token["title"], "laptop");
    assert!(
        token["created"].as_str().unwrap().ends_with(" -0000"),
        "{token}"
    );
    assert_eq!(
        (&token["expiration"], &token["last_accessed"]),
        (&Value::Null, &Value::Null)
    );
    assert_works(&s, &secret, "dev").await;
    push_image(
        &bearer_client(&secret),
        &s.base,
        "dev/app",
        "v1",
        b"via an API token",
    )
    .await;

    let list = call(&s, &dev, "GET", APPTOKEN).await;
    assert_eq!((list.status, uuids(&list)), (200, vec![uuid.as_str()]));
    assert_eq!(list.body["only_expiring"], Value::Null);
    assert_eq!(list.body["tokens"][0]["title"], "laptop");
    assert!(
        !list.body.to_string().contains(&secret),
        "a listing never shows the secret"
    );
    assert!(list.body["tokens"][0].get("token_code").is_none());
    let one = call(&s, &dev, "GET", &format!("{APPTOKEN}/{uuid}")).await;
    assert_eq!(
        (one.status, &one.body["token"]["uuid"]),
        (200, &json!(uuid))
    );
    assert!(!one.body.to_string().contains(&secret));

    // Nobody else sees or revokes it: another user's tokens are theirs alone.
    assert!(uuids(&call(&s, &other, "GET", APPTOKEN).await).is_empty());
    let mine = format!("{APPTOKEN}/{uuid}");
    assert_eq!(call(&s, &other, "GET", &mine).await.status, 404);
    assert_eq!(call(&s, &other, "DELETE", &mine).await.status, 404);
    assert_eq!(
        call(&s, &s.client, "DELETE", &mine).await.status,
        404,
        "not even a superuser's"
    );
    assert_works(&s, &secret, "dev").await;

    // A token lists and reads tokens, but makes none: a leaked one must not leave a copy
    // behind that outlives its revocation.
    let by_token = bearer_client(&secret);
    assert_eq!(call(&s, &by_token, "GET", APPTOKEN).await.status, 200);
    let r = api_call(
        &by_token,
        "POST",
        &s.url(APPTOKEN),
        Some(json!({"title": "copy"})),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(uuids(&call(&s, &dev, "GET", APPTOKEN).await).len(), 1);

    // Revoked: refused at the very next request, and gone.
    assert_eq!(call(&s, &dev, "DELETE", &mine).await.status, 204);
    assert_refused(&s, &secret, "revoked").await;
    assert_eq!(call(&s, &dev, "GET", &mine).await.status, 404);
    assert_eq!(call(&s, &dev, "DELETE", &mine).await.status, 404);
    assert!(uuids(&call(&s, &dev, "GET", APPTOKEN).await).is_empty());

    // Robots have no API tokens; anonymous callers are asked to authenticate.
    s.create_org("acme").await;
    let robot = authed_client("acme+ci", &s.create_robot("acme", "ci").await);
    assert_eq!(call(&s, &robot, "GET", APPTOKEN).await.status, 403);
    let r = api_call(
        &robot,
        "POST",
        &s.url(APPTOKEN),
        Some(json!({"title": "r"})),
    )
    .await;
    assert_eq!(r.status, 403);
    let anonymous = reqwest::Client::new();
    assert_eq!(call(&s, &anonymous, "GET", APPTOKEN).await.status, 401);

    for bad in [
        json!({}),
        json!({"title": ""}),
        json!({"title": "two\nlines"}),
    ] {
        let r = api_call(&dev, "POST", &s.url(APPTOKEN), Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    assert_eq!(
        call(&s, &dev, "GET", &format!("{APPTOKEN}/not-a-uuid"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_tokens_and_never_prints_a_secret_twice() {
    let s = TestServer::start().await;
    let dev = s.create_user("dev").await;
    s.create_org("acme").await;
    s.create_robot("acme", "ci").await;

    let args = [
        "create",
        "--user",
        "dev",
        "--name",
        "ci",
        "--expires-in",
        "30d",
    ];
    let out = token_cli(&s, &args).await;
    assert!(out.success, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 1, "only the secret on stdout");
    let secret = out.stdout.trim().to_string();
    let uuid = created_uuid(&out);
    assert!(!out.stderr.contains(&secret));
    assert_works(&s, &secret, "dev").await;
    // The user sees it through the API, with its expiry.
    let list = call(&s, &dev, "GET", APPTOKEN).await;
    assert_eq!(uuids(&list), vec![uuid.as_str()]);
    assert!(
        list.body["tokens"][0]["expiration"].is_string(),
        "{}",
        list.body
    );
    // USER may also come first, as before.
    let out = token_cli(&s, &["create", "admin", "--name", "scripts"]).await;
    assert!(out.success, "{out:?}");
    let admin_secret = out.stdout.trim().to_string();

    let all = token_cli(&s, &["list"]).await;
    assert!(all.success, "{all:?}");
    let rows: Vec<Vec<&str>> = all
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{}", all.stdout);
    let dev_row = rows
        .iter()
        .find(|r| r[0] == uuid)
        .expect("dev's token listed");
    assert_eq!((dev_row[1], dev_row[2]), ("ci", "dev"));
    let (created, used, expires) = (dev_row[3], dev_row[4], dev_row[5]);
    assert!(used == "never" || used.ends_with('Z'), "{dev_row:?}");
    assert!(
        created.ends_with('Z') && expires.ends_with('Z') && expires > created,
        "{dev_row:?}"
    );
    let admin_row = rows
        .iter()
        .find(|r| r[2] == ADMIN_USER)
        .expect("admin's token listed");
    assert_eq!((admin_row[1], admin_row[5]), ("scripts", "never"));
    for secret in [&secret, &admin_secret] {
        assert!(!all.stdout.contains(secret.as_str()) && !all.stderr.contains(secret.as_str()));
    }
    let only_dev = token_cli(&s, &["list", "--user", "dev"]).await;
    assert!(
        only_dev.success && only_dev.stdout.lines().count() == 1,
        "{only_dev:?}"
    );
    assert!(only_dev.stdout.starts_with(&uuid));
    assert!(!token_cli(&s, &["list", "--user", "ghost"]).await.success);

    let out = token_cli(&s, &["revoke", &uuid]).await;
    assert!(out.success, "{out:?}");
    assert_refused(&s, &secret, "revoked").await;
    assert_works(&s, &admin_secret, ADMIN_USER).await;
    assert!(
        !token_cli(&s, &["revoke", &uuid]).await.success,
        "revoked once only"
    );
    assert!(!token_cli(&s, &["revoke", "nonsense"]).await.success);
    assert!(uuids(&call(&s, &dev, "GET", APPTOKEN).await).is_empty());

    // Only users have tokens; a lifetime must be one.
    for args in [
        &["create", "--user", "acme+ci"][..],
        &["create", "--user", "acme"],
        &["create", "--user", "ghost"],
        &["create", "--user", "dev", "--expires-in", "soon"],
        &["create", "--user", "dev", "--expires-in", "0s"],
    ] {
        let out = token_cli(&s, args).await;
        assert!(
            !out.success && out.stdout.trim().is_empty(),
            "{args:?}: {out:?}"
        );
    }
}

#[tokio::test]
async fn expired_tokens_are_refused_and_their_lifetime_follows_the_config_live() {
    let s = TestServer::start().await;
    let dev = s.create_user("dev").await;
    let (never, never_secret) = create_token(&s, &dev, "forever").await;
    assert_eq!(
        never["expiration"],
        Value::Null,
        "no APP_SPECIFIC_TOKEN_EXPIRATION: none"
    );

    let live = |lifetime: &str| {
        let text = format!("APP_SPECIFIC_TOKEN_EXPIRATION: {lifetime}\n");
        berth::config::parse(&text).expect("config").settings
    };
    s.state().apply_settings(live("1h"));
    let (hour, hour_secret) = create_token(&s, &dev, "an hour").await;
    assert!(hour["expiration"].is_string(), "{hour}");
    // The CLI's lifetime wins over the config's.
    let out = token_cli(
        &s,
        &[
            "create",
            "--user",
            "dev",
            "--name",
            "brief",
            "--expires-in",
            "3s",
        ],
    )
    .await;
    assert!(out.success, "{out:?}");
    let (brief, brief_secret) = (created_uuid(&out), out.stdout.trim().to_string());
    // Expiring soon, as Quay counts it: within a tenth of the configured lifetime.
    let soon = call(&s, &dev, "GET", &format!("{APPTOKEN}?expiring=true")).await;
    assert_eq!(
        (soon.status, uuids(&soon)),
        (200, vec![brief.as_str()]),
        "{}",
        soon.body
    );
    assert_eq!(soon.body["only_expiring"], true);

    s.state().apply_settings(live("3s"));
    let (short, short_secret) = create_token(&s, &dev, "three seconds").await;
    let created = std::time::Instant::now();
    for secret in [&brief_secret, &short_secret] {
        assert_works(&s, secret, "dev").await;
    }
    tokio::time::sleep(Duration::from_millis(3300).saturating_sub(created.elapsed())).await;
    for secret in [&brief_secret, &short_secret] {
        assert_refused(&s, secret, "expired").await;
    }
    assert_works(&s, &never_secret, "dev").await;
    assert_works(&s, &hour_secret, "dev").await;

    // Expired tokens stay listed, marked, until revoked.
    let list = call(&s, &dev, "GET", APPTOKEN).await;
    assert_eq!(uuids(&list).len(), 4, "{}", list.body);
    let soon = call(&s, &dev, "GET", &format!("{APPTOKEN}?expiring=true")).await;
    assert!(
        uuids(&soon).is_empty(),
        "expired is no longer expiring: {}",
        soon.body
    );
    let out = token_cli(&s, &["list", "--user", "dev"]).await;
    let expired: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.ends_with("(expired)"))
        .collect();
    assert_eq!(expired.len(), 2, "{}", out.stdout);
    assert!(expired.iter().any(|l| l.starts_with(&brief)));
    assert!(expired
        .iter()
        .any(|l| l.starts_with(short["uuid"].as_str().unwrap())));

    // EXPIRED_APP_SPECIFIC_TOKEN_GC: tokens expired longer than that go when one is created.
    let text = "APP_SPECIFIC_TOKEN_EXPIRATION: 1h\nEXPIRED_APP_SPECIFIC_TOKEN_GC: 0s\n";
    s.state()
        .apply_settings(berth::config::parse(text).expect("config").settings);
    let (fresh, _) = create_token(&s, &dev, "after the purge").await;
    let list = call(&s, &dev, "GET", APPTOKEN).await;
    let mut left = uuids(&list);
    left.sort_unstable();
    let mut expected = [&never, &hour, &fresh].map(|t| t["uuid"].as_str().unwrap());
    expected.sort_unstable();
    assert_eq!(left, expected, "{}", list.body);
}

#[tokio::test]
async fn a_tokens_last_use_is_recorded() {
    let s = TestServer::start().await;
    let dev = s.create_user("dev").await;
    let (token, secret) = create_token(&s, &dev, "ci").await;
    assert_eq!(token["last_accessed"], Value::Null, "{token}");
    let listed = |list: &ApiReply| list.body["tokens"][0]["last_accessed"].clone();
    let list = call(&s, &dev, "GET", APPTOKEN).await;
    assert_eq!(listed(&list), Value::Null, "not used yet: {}", list.body);
    assert_works(&s, &secret, "dev").await;
    let list = call(&s, &dev, "GET", APPTOKEN).await;
    let used = listed(&list);
    assert!(
        used.as_str().is_some_and(|d| d.contains(" 20")),
        "an HTTP date once used: {}",
        list.body
    );
    let out = token_cli(&s, &["list", "--user", "dev"]).await;
    let columns: Vec<&str> = out.stdout.trim().split('\t').collect();
    assert_eq!(columns.len(), 6, "{}", out.stdout);
    assert_ne!(columns[4], "never", "{}", out.stdout);
}

#[tokio::test]
async fn a_new_password_ends_the_users_sessions_and_api_tokens_at_the_next_request() {
    let s = TestServer::start().await;
    let dev = s.create_user("dev").await;
    let bystander = s.create_user("bystander").await;
    let (_, api_secret) = create_token(&s, &dev, "laptop").await;
    let out = token_cli(&s, &["create", "--user", "dev", "--name", "ci"]).await;
    let cli_secret = out.stdout.trim().to_string();
    let (_, bystander_secret) = create_token(&s, &bystander, "theirs").await;
    let mut browser = Browser::signed_in(&s.base, "dev", &password_of("dev")).await;
    let mut other = Browser::signed_in(&s.base, "bystander", &password_of("bystander")).await;
    assert_eq!(browser.get("/user/dev?tab=settings").await.status, 200);

    let out = berth_cli(
        s.data_dir(),
        &["user", "set-password", "dev", "--password-stdin"],
        Some("a-brand-new-password\n"),
    )
    .await;
    assert!(out.success, "{out:?}");

    let page = browser.get("/user/dev?tab=settings").await;
    assert_eq!(page.status, 303, "the session is over");
    assert!(page.location.unwrap().starts_with("/signin"));
    assert!(!browser.get("/repository/").await.has("class=\"whoami\""));
    assert_refused(&s, &api_secret, "revoked").await;
    assert_refused(&s, &cli_secret, "revoked").await;
    // Nobody else's.
    assert_works(&s, &bystander_secret, "bystander").await;
    assert_eq!(other.get("/user/bystander?tab=settings").await.status, 200);
    // The new password signs in, and the old tokens are gone from the list.
    let dev = authed_client("dev", "a-brand-new-password");
    assert!(uuids(&call(&s, &dev, "GET", APPTOKEN).await).is_empty());
    let mut again = Browser::signed_in(&s.base, "dev", "a-brand-new-password").await;
    assert_eq!(again.get("/user/dev?tab=settings").await.status, 200);
}

#[tokio::test]
async fn a_deleted_account_takes_its_tokens_and_sessions_along_even_if_its_name_returns() {
    let s = TestServer::start().await;
    let leaver = s.create_user("leaver").await;
    let (_, secret) = create_token(&s, &leaver, "laptop").await;
    let mut browser = Browser::signed_in(&s.base, "leaver", &password_of("leaver")).await;
    let out = berth_cli(s.data_dir(), &["user", "delete", "leaver"], None).await;
    assert!(out.success, "{out:?}");
    assert_refused(&s, &secret, "revoked").await;
    assert_eq!(browser.get("/user/leaver?tab=settings").await.status, 404);
    let listed = token_cli(&s, &["list"]).await;
    assert!(
        listed.success && listed.stdout.trim().is_empty(),
        "{listed:?}"
    );

    // A new account of that name (on SQLite it may even get the same id) inherits nothing.
    s.create_user("leaver").await;
    assert_refused(&s, &secret, "revoked").await;
    let page = browser.get("/user/leaver?tab=settings").await;
    assert_eq!(
        page.status, 303,
        "the old session does not sign the newcomer in"
    );
}

#[tokio::test]
async fn the_dashboard_lists_creates_and_revokes_the_signed_in_users_own_tokens() {
    let s = TestServer::start().await;
    s.create_user("dev").await;
    s.create_user("other").await;
    let mut b = Browser::signed_in(&s.base, "dev", &password_of("dev")).await;
    let home = b.get("/user/dev").await;
    assert!(
        home.has("href=\"/user/dev?tab=settings\""),
        "the user's own page links the tab"
    );
    let tab = b.get("/user/dev?tab=settings").await;
    assert_eq!(tab.status, 200);
    assert!(tab.has("No API tokens.") && tab.has("class=\"create-token form-row\""));

    let shown = b
        .submit(
            "/user/dev?tab=settings",
            "/user/dev",
            &[("action", "create-token"), ("title", "<b>laptop</b>")],
        )
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let at = shown
        .body
        .find("class=\"api-token-secret\">")
        .expect("the secret is shown");
    let rest = &shown.body[at + "class=\"api-token-secret\">".len()..];
    let secret = rest[..rest.find('<').unwrap()].to_string();
    assert!(secret.starts_with("berth_"), "{secret}");
    assert!(
        shown.has("&lt;b&gt;laptop&lt;/b&gt;") && !shown.has("<b>laptop"),
        "escaped"
    );
    assert_eq!(shown.headers.get("cache-control").unwrap(), "no-store");
    assert!(
        shown.set_cookies.iter().all(|c| !c.contains(&secret)),
        "in no cookie"
    );
    assert_works(&s, &secret, "dev").await;

    let tab = b.get("/user/dev?tab=settings").await;
    assert!(
        tab.has("&lt;b&gt;laptop&lt;/b&gt;") && !tab.has(&secret),
        "listed, never shown again"
    );
    let at = tab.body.find("data-token=\"").expect("a token row") + "data-token=\"".len();
    let uuid = tab.body[at..at + 36].to_string();

    // Forms need their CSRF token; nobody else sees or revokes dev's tokens, not even a superuser.
    let forged = b
        .post("/user/dev", &[("action", "revoke-token"), ("token", &uuid)])
        .await;
    assert_eq!(forged.status, 400);
    for (user, password) in [
        ("other", password_of("other")),
        (ADMIN_USER, ADMIN_PASSWORD.into()),
    ] {
        let mut intruder = Browser::signed_in(&s.base, user, &password).await;
        assert_eq!(
            intruder.get("/user/dev?tab=settings").await.status,
            404,
            "{user}"
        );
        let revoke = intruder
            .submit(
                "/repository/",
                "/user/dev",
                &[("action", "revoke-token"), ("token", &uuid)],
            )
            .await;
        assert_eq!(revoke.status, 404, "{user}");
        let create = intruder
            .submit(
                "/repository/",
                "/user/dev",
                &[("action", "create-token"), ("title", "x")],
            )
            .await;
        assert_eq!(create.status, 404, "{user}");
    }
    assert_works(&s, &secret, "dev").await;
    let anonymous = Browser::new(&s.base).get("/user/dev?tab=settings").await;
    assert_eq!(anonymous.status, 303);
    assert!(anonymous.location.unwrap().starts_with("/signin?next="));

    let revoked = b
        .submit(
            "/user/dev?tab=settings",
            "/user/dev",
            &[("action", "revoke-token"), ("token", &uuid)],
        )
        .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(revoked.location.as_deref(), Some("/user/dev?tab=settings"));
    assert_refused(&s, &secret, "revoked").await;
    let tab = b.get("/user/dev?tab=settings").await;
    assert!(tab.has("API token revoked") && tab.has("No API tokens."));
}

#[tokio::test]
async fn api_token_secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let berth = ProcessServer::spawn_logging_requests(dir.path(), &[]).await;
    let admin = &berth.client;
    let url = |path: &str| format!("{}{path}", berth.base);
    let r = api_call(
        admin,
        "POST",
        &url(APPTOKEN),
        Some(json!({"title": "logged?"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = r.body["token"]["token_code"].as_str().unwrap().to_string();
    let uuid = r.body["token"]["uuid"].as_str().unwrap().to_string();
    let bearer = bearer_client(&secret);
    assert_eq!(status_of(bearer.get(url("/api/v1/user/"))).await, 200);
    assert_eq!(status_of(bearer.get(url("/v2/"))).await, 200);
    assert_eq!(status_of(bearer.get(url(APPTOKEN))).await, 200);
    assert_eq!(
        status_of(admin.delete(url(&format!("{APPTOKEN}/{uuid}")))).await,
        204
    );
    assert_eq!(status_of(bearer.get(url("/api/v1/user/"))).await, 401);
    assert_eq!(status_of(bearer.get(url("/v2/"))).await, 401);
    let out = berth_cli(dir.path(), &["token", "create", "--user", "admin"], None).await;
    assert!(out.success, "{out:?}");
    let cli_secret = out.stdout.trim().to_string();
    assert_eq!(
        status_of(bearer_client(&cli_secret).get(url("/api/v1/user/"))).await,
        200
    );

    // The log saw all of it (so it is the log being read), and no secret.
    let within = Duration::from_secs(10);
    assert!(berth.log.wait_for("API token revoked", 1, within).await);
    assert!(berth.log.count(REQUEST_STARTED) >= 8);
    for secret in [&secret, &cli_secret] {
        assert_eq!(berth.log.count(secret), 0, "a secret in the log");
        assert_eq!(
            berth.log.count(&secret[6..20]),
            0,
            "part of a secret in the log"
        );
    }
    assert!(!out.stderr.contains(&cli_secret));
    // Nor the initial admin password: the log says only where it is.
    let initial = std::fs::read_to_string(dir.path().join(berth::INITIAL_ADMIN_PASSWORD_FILE))
        .expect("initial admin password file");
    assert_eq!(
        berth.log.count(initial.trim()),
        0,
        "the admin password in the log"
    );
    assert_eq!(berth.log.count(berth::INITIAL_ADMIN_PASSWORD_FILE), 1);
}
