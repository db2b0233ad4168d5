//! The Docker token flow and attacks on it: challenges, the token endpoint (passwords, robot
//! tokens, anonymous), scope cutting, hostile scopes, forged, expired and mis-signed tokens,
//! tokens used beyond their scope, robots outside their namespace, password guessing and
//! hostile Authorization headers.

use crate::common;

use base64::Engine;
use berth::auth::AuthSettings;
use berth::config::Settings;
use common::*;
use serde_json::{json, Value};

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn host(s: &TestServer) -> String {
    s.base.strip_prefix("http://").unwrap().to_string()
}

fn now() -> u64 {
    berth::auth::token::now_secs()
}

/// Default settings with the auth settings changed by `f`.
fn auth_settings(f: impl FnOnce(&mut AuthSettings)) -> Settings {
    let mut settings = Settings::default();
    f(&mut settings.auth);
    settings
}

/// A form POST to the token endpoint.
fn form_post(s: &TestServer) -> reqwest::RequestBuilder {
    let client = reqwest::Client::new();
    let post = client.post(s.url("/v2/auth"));
    post.header("content-type", "application/x-www-form-urlencoded")
}

/// A server with organization `team`: private `team/app` (tag v1), public `team/open` (tag
/// v1), and user `dev` with write on `team/app`.
async fn team_server(settings: Settings) -> TestServer {
    let s = TestServer::start_with(settings).await;
    s.create_org("team").await;
    s.create_repo("team/app", false).await;
    s.create_repo("team/open", true).await;
    push_image(&s.client, &s.base, "team/app", "v1", b"app layer").await;
    push_image(&s.client, &s.base, "team/open", "v1", b"open layer").await;
    s.create_user("dev").await;
    s.grant("team/app", "dev", "write").await;
    s
}

#[tokio::test]
async fn challenges_name_the_realm_service_scope_and_error() {
    let s = team_server(Settings::default()).await;
    let h = host(&s);
    let realm = format!("Bearer realm=\"http://{h}/v2/auth\",service=\"{h}\"");
    let anonymous = reqwest::Client::new();

    let r = exec(anonymous.get(s.url("/v2/"))).await;
    assert_eq!(assert_401(r, "GET /v2/").await, realm);
    let r = s.get("/v2/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");

    #[rustfmt::skip]
    let requests = [
        ("GET", "manifests/v1", "pull"), ("HEAD", "manifests/v1", "pull"),
        ("GET", "tags/list", "pull"), ("POST", "blobs/uploads/", "pull,push"),
        ("PUT", "manifests/v2", "pull,push"), ("DELETE", "manifests/v1", "delete"),
    ];
    for (method, path, actions) in requests {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let url = s.url(&format!("/v2/team/app/{path}"));
        let r = exec(anonymous.request(method.clone(), url)).await;
        assert_eq!(r.status(), 401, "{method} {path}");
        let scope = format!("{realm},scope=\"repository:team/app:{actions}\"");
        assert_eq!(header(&r, "www-authenticate"), scope, "{method} {path}");
        if method != reqwest::Method::HEAD {
            let v: Value = r.json().await.unwrap();
            let detail = json!([{"Type": "repository", "Name": "team/app", "Action": actions}]);
            assert_eq!(v["errors"][0]["detail"], detail);
        }
    }

    // A cross-repository mount also asks for pull on its source, so the client's token can
    // carry both scopes and the mount succeeds; a `from` that is no name is left out.
    let digest = sha256(b"mounted");
    let url = s.url(&format!(
        "/v2/team/app/blobs/uploads/?mount={digest}&from=team/base"
    ));
    let r = exec(anonymous.post(url)).await;
    assert_eq!(
        assert_401(r, "mount").await,
        format!("{realm},scope=\"repository:team/app:pull,push repository:team/base:pull\"")
    );
    let url = s.url(&format!(
        "/v2/team/app/blobs/uploads/?mount={digest}&from=..%2Fetc"
    ));
    let r = exec(anonymous.post(url)).await;
    assert_eq!(
        assert_401(r, "mount from a bad name").await,
        format!("{realm},scope=\"repository:team/app:pull,push\"")
    );
    let dev = password_of("dev");
    let token = registry_token(
        &s.base,
        Some(("dev", &dev)),
        &["repository:team/app:pull,push", "repository:team/base:pull"],
    )
    .await;
    let base = exec(bearer_client(&token).get(s.url("/v2/"))).await;
    assert_eq!(base.status(), 200, "a token for both scopes");

    // A token with too little scope, for an account that could get more.
    let token = registry_token(&s.base, Some(("dev", &dev)), &["repository:team/app:pull"]).await;
    let r = exec(bearer_client(&token).post(s.url("/v2/team/app/blobs/uploads/"))).await;
    assert_eq!(
        assert_401(r, "push with a pull token").await,
        format!("{realm},scope=\"repository:team/app:pull,push\",error=\"insufficient_scope\"")
    );
    // A token that does not verify.
    let r = exec(bearer_client("not-a-token").get(s.url("/v2/"))).await;
    let challenge = assert_401(r, "bad token").await;
    assert_eq!(challenge, format!("{realm},error=\"invalid_token\""));
    // A wrong password on /v2 itself.
    let r = exec(authed_client("dev", "wrong-password").get(s.url("/v2/"))).await;
    assert_eq!(assert_401(r, "wrong password").await, realm);

    // A Host header that would break out of the quoting is not echoed.
    let request = b"GET /v2/ HTTP/1.1\r\nHost: evil\",error=\"x\r\nConnection: close\r\n\r\n";
    let reply = raw_send(&s.base, request).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate").unwrap(),
        "Bearer realm=\"http://localhost/v2/auth\",service=\"localhost\""
    );
    // SERVER_HOSTNAME and PREFERRED_URL_SCHEME, when set, make the realm.
    let configured = TestServer::start_with(Settings {
        server_hostname: Some("registry.example.com".into()),
        preferred_url_scheme: Some("https".into()),
        ..Settings::default()
    })
    .await;
    let r = reqwest::get(configured.url("/v2/")).await.unwrap();
    assert_eq!(
        assert_401(r, "GET /v2/ with SERVER_HOSTNAME").await,
        "Bearer realm=\"https://registry.example.com/v2/auth\",service=\"registry.example.com\""
    );
}

#[tokio::test]
async fn the_token_endpoint_issues_es256_tokens_for_passwords_and_robot_tokens() {
    let s = team_server(auth_settings(|a| a.token_lifetime_secs = 600)).await;
    let robot = s.create_robot("team", "ci").await;
    s.grant("team/app", "team+ci", "write").await;
    let h = host(&s);
    let scope = "repository:team/app:pull,push";
    let mut kids = Vec::new();
    for (user, secret) in [("dev", password_of("dev")), ("team+ci", robot.clone())] {
        let before = now();
        let r = token_request(&s.base, Some((user, &secret)), &[scope]).await;
        assert_eq!(r.status(), 200, "{user}");
        assert_eq!(header(&r, "content-type"), "application/json");
        assert_eq!(header(&r, "cache-control"), "no-store");
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().unwrap();
        assert_eq!(body["access_token"], token);
        assert_eq!(body["expires_in"], 600);
        let issued_at = body["issued_at"].as_str().unwrap();
        assert_eq!(issued_at.len(), 20, "{issued_at}");
        assert!(issued_at.ends_with('Z') && issued_at.as_bytes()[10] == b'T');
        let (head, claims) = jwt_parts(token);
        assert_eq!(head["alg"], "ES256");
        kids.push(head["kid"].as_str().expect("kid").to_string());
        assert_eq!(
            (&claims["iss"], &claims["sub"]),
            (&json!("berth"), &json!(user))
        );
        assert_eq!(claims["aud"], h);
        let iat = claims["iat"].as_u64().unwrap();
        assert!(iat >= before && iat <= now(), "iat {iat}");
        assert_eq!(claims["exp"].as_u64().unwrap(), iat + 600);
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        assert_eq!(
            claims["access"],
            json!([repo_access("team/app", &["pull", "push"])])
        );
        let client = bearer_client(token);
        assert_eq!(status_of(client.get(s.url("/v2/"))).await, 200);
        let pulled = status_of(client.get(s.url("/v2/team/app/manifests/v1"))).await;
        assert_eq!(pulled, 200, "{user} pulls with its token");
    }
    assert_eq!(kids[0], kids[1], "one signing key");
    // The OAuth2 password grant in a form body works like Basic.
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("grant_type", "password"), ("username", "dev")])
        .extend_pairs([("password", &password_of("dev")), ("service", &h)])
        .append_pair("scope", scope)
        .finish();
    let r = exec(form_post(&s).body(form)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(granted_actions(token, "team/app"), "pull,push");
    // Without `service` the token names this host.
    let r = exec(authed_client("dev", &password_of("dev")).get(s.url("/v2/auth"))).await;
    let body: Value = r.json().await.unwrap();
    let (_, claims) = jwt_parts(body["token"].as_str().unwrap());
    assert_eq!((&claims["aud"], &claims["access"]), (&json!(h), &json!([])));
    // Tokens are for this registry only: asked for another service, it still names itself,
    // so the token works here and nowhere else.
    let query = [("service", "registry.elsewhere.example"), ("scope", scope)];
    let dev = authed_client("dev", &password_of("dev"));
    let r = exec(dev.get(s.url("/v2/auth")).query(&query)).await;
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(jwt_parts(token).1["aud"], json!(h));
    let pulled = exec(bearer_client(token).get(s.url("/v2/team/app/manifests/v1"))).await;
    assert_eq!(pulled.status(), 200);
}

#[tokio::test]
async fn anonymous_tokens_carry_public_pulls_only() {
    let s = team_server(Settings::default()).await;
    let scopes = [
        "repository:team/open:pull,push,delete",
        "repository:team/app:pull",
        "registry:catalog:*",
    ];
    let token = registry_token(&s.base, None, &scopes).await;
    assert_eq!(jwt_parts(&token).1["sub"], "");
    assert_eq!(
        access_of(&token),
        json!([repo_access("team/open", &["pull"])])
    );
    let client = bearer_client(&token);
    assert_eq!(
        status_of(client.get(s.url("/v2/team/open/manifests/v1"))).await,
        200
    );
    for req in [
        client.get(s.url("/v2/team/app/manifests/v1")),
        client.post(s.url("/v2/team/open/blobs/uploads/")),
    ] {
        let challenge = assert_401(exec(req).await, "anonymous token").await;
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
    }
    // Without a scope: a token for nothing, not an error.
    let token = registry_token(&s.base, None, &[]).await;
    assert_eq!(access_of(&token), json!([]));
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_answer_alike() {
    let s = team_server(auth_settings(|a| a.login_failures_per_minute = 1000)).await;
    s.create_robot("team", "ci").await;
    let mut replies = Vec::new();
    #[rustfmt::skip]
    let attempts = [
        ("dev", "wrong-password"), ("ghost", "wrong-password"), ("team+ci", "wrong-token"),
        ("team+ghost", "wrong-token"), ("team", "an-organization"), ("", ""),
    ];
    for (user, password) in attempts {
        let scope = ["repository:team/open:pull"];
        let r = token_request(&s.base, Some((user, password)), &scope).await;
        let status = r.status().as_u16();
        let challenge = header(&r, "www-authenticate").to_string();
        replies.push((status, challenge, r.text().await.unwrap()));
        let r = exec(authed_client(user, password).get(s.url("/v2/team/open/manifests/v1"))).await;
        assert_401(r, &format!("/v2 as {user:?}")).await;
    }
    assert_eq!(replies[0].0, 401);
    assert_eq!(replies[0].1, "Basic realm=\"berth\"");
    check_error_body(replies[0].2.as_bytes());
    for r in &replies[1..] {
        assert_eq!(r, &replies[0]);
    }
}

#[tokio::test]
async fn scopes_the_caller_lacks_are_dropped_and_the_rest_granted() {
    let s = team_server(Settings::default()).await;
    s.create_repo("team/other", false).await;
    s.create_user("reader").await;
    s.grant("team/app", "reader", "read").await;
    let password = password_of("reader");
    let reader = Some(("reader", password.as_str()));
    let pull = |name: &str| repo_access(name, &["pull"]);
    let base = s.base.as_str();
    let all = ["repository:team/app:pull,push,delete"];
    assert_eq!(granted(base, reader, &all).await, json!([pull("team/app")]));
    let star = ["repository:team/app:*"];
    assert_eq!(
        granted(base, reader, &star).await,
        json!([pull("team/app")])
    );
    let other = ["repository:team/other:pull"];
    assert_eq!(granted(base, reader, &other).await, json!([]));
    // Several scopes: repeated parameters, and space-separated in one parameter.
    let several = [
        "repository:team/app:pull",
        "repository:team/other:pull repository:team/open:pull,push",
    ];
    let both = json!([pull("team/app"), pull("team/open")]);
    assert_eq!(granted(base, reader, &several).await, both);
    // Duplicates collapse; Docker's resource class is understood.
    let dupes = [
        "repository:team/app:pull",
        "repository(plugin):team/app:pull",
    ];
    assert_eq!(
        granted(base, reader, &dupes).await,
        json!([pull("team/app")])
    );
    // The catalog scope goes to signed-in callers only.
    let catalog = ["registry:catalog:*"];
    let entry = json!([{"type": "registry", "name": "catalog", "actions": ["*"]}]);
    assert_eq!(granted(base, reader, &catalog).await, entry);
    assert_eq!(granted(base, None, &catalog).await, json!([]));
    // The superuser gets every action, `*` included.
    let admin = Some((ADMIN_USER, ADMIN_PASSWORD));
    let every = json!([repo_access("team/other", &["pull", "push", "delete"])]);
    assert_eq!(
        granted(base, admin, &["repository:team/other:*"]).await,
        every
    );
}

/// The `access` claim of a token `who` gets for `scopes`.
async fn granted(base: &str, who: Option<(&str, &str)>, scopes: &[&str]) -> Value {
    access_of(&registry_token(base, who, scopes).await)
}

#[tokio::test]
async fn hostile_scopes_are_dropped_not_errors() {
    let s = team_server(Settings::default()).await;
    let admin = Some((ADMIN_USER, ADMIN_PASSWORD));
    let long_name = format!("repository:team/{}:pull", "a".repeat(600));
    let long_actions = format!("repository:team/open:{}", "pull,".repeat(2000));
    #[rustfmt::skip]
    let hostile = [
        "repository:../etc:pull", "repository:team/../../etc/passwd:pull",
        "repository:/etc/passwd:pull", "repository:team/open/..:pull",
        "repository:team/%2e%2e:pull", "repository:TEAM/OPEN:pull", "repository:team/ópen:pull",
        "repository:team/open\":pull", "repository:team/open:pull\",service=\"evil",
        "repository:team/open:pull\"", "repository:team/open:pull\nrepository:team/app:push",
        "repository:team/open:pull\r\nX-Injected: yes", "repository:team/open:pull\u{0}",
        "repository:team/open\u{0}:pull", "repository::pull", "repository:team/open",
        "repository", ":::", "registry:catalog2:*", "registry:../catalog:*",
        "repositoryx:team/open:pull", "repository:team/open:admin", &long_name, &long_actions,
    ];
    for scope in hostile {
        let r = token_request(&s.base, admin, &[scope]).await;
        assert_eq!(r.status(), 200, "{scope:?}");
        assert!(r.headers().get("x-injected").is_none());
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            access_of(v["token"].as_str().unwrap()),
            json!([]),
            "{scope:?}"
        );
    }
    // All of them at once, with one good scope among them: only the good one is granted.
    let mut all: Vec<&str> = hostile.to_vec();
    all.push("repository:team/open:pull");
    let t = registry_token(&s.base, admin, &all).await;
    assert_eq!(access_of(&t), json!([repo_access("team/open", &["pull"])]));
    // Many repetitions of one scope make one entry.
    let t = registry_token(&s.base, None, &["repository:team/open:pull"; 300]).await;
    assert_eq!(access_of(&t).as_array().unwrap().len(), 1);
    // A form body beyond the endpoint's limit is refused as a client error.
    let r = exec(form_post(&s).body(format!("scope={}", "a".repeat(64 * 1024)))).await;
    assert_error(r, 400, "SIZE_INVALID").await;
}

#[tokio::test]
async fn forged_expired_and_mis_signed_tokens_are_refused() {
    use jsonwebtoken::Algorithm::{ES256, HS256};
    let s = team_server(Settings::default()).await;
    // The server's own signing key, read from its database as another replica would.
    let store = s.metadata_store().await;
    let keys = store.signing_keys(("unused", "unused")).await.unwrap();
    let (kid, pem) = keys.last().cloned().unwrap();
    let (kid, pem) = (kid.as_str(), pem.as_bytes());
    let dev = password_of("dev");
    let real = registry_token(&s.base, Some(("dev", &dev)), &["repository:team/app:pull"]).await;
    assert_eq!(jwt_parts(&real).0["kid"], kid);
    let pull = json!([repo_access("team/app", &["pull"])]);
    let pull_app = |token: String| {
        let url = s.url("/v2/team/app/manifests/v1");
        async move { exec(bearer_client(&token).get(url)).await }
    };

    // Control: a token made with the real key and berth's claims is accepted, so every
    // refusal below is about the one thing changed.
    let service = host(&s);
    // dev's credential mark, as berth writes it into dev's tokens.
    let mark = jwt_parts(&real).1["cred"].clone();
    assert!(mark.as_str().is_some_and(|m| m.len() == 32), "{mark}");
    let claims = |sub: &str, iat: u64, lifetime: u64| {
        let mut c = token_claims(sub, iat, lifetime, &pull);
        c["aud"] = json!(service);
        c["cred"] = mark.clone();
        c
    };
    let fresh = claims("dev", now(), 300);
    assert_eq!(
        pull_app(sign_token(ES256, pem, Some(kid), &fresh))
            .await
            .status(),
        200
    );

    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = other.serialize_pem();
    let public_pem = rcgen::KeyPair::from_pem(std::str::from_utf8(pem).unwrap())
        .unwrap()
        .public_key_pem();
    let none_header = b64url(
        json!({"alg": "none", "typ": "JWT", "kid": kid})
            .to_string()
            .as_bytes(),
    );
    let body = b64url(fresh.to_string().as_bytes());
    let real_signature = real.rsplit('.').next().unwrap();
    let mut more = jwt_parts(&real).1;
    more["access"] = json!([repo_access("team/app", &["pull", "push"])]);
    let mut parts: Vec<String> = real.split('.').map(str::to_string).collect();
    parts[1] = b64url(more.to_string().as_bytes());
    let mut quay = fresh.clone();
    quay["iss"] = json!("quay");
    let changed = |claim: &str, value: Value| {
        let mut c = fresh.clone();
        match value {
            Value::Null => c.as_object_mut().unwrap().remove(claim),
            v => c.as_object_mut().unwrap().insert(claim.to_string(), v),
        };
        sign_token(ES256, pem, Some(kid), &c)
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, String)> = vec![
        ("expired", sign_token(ES256, pem, Some(kid), &claims("dev", now() - 3700, 3600))),
        ("for another service", changed("aud", json!("registry.elsewhere.example"))),
        ("without an audience", changed("aud", Value::Null)),
        ("not valid yet", changed("nbf", json!(now() + 300))),
        ("without a start of validity", changed("nbf", Value::Null)),
        ("without an expiry", changed("exp", Value::Null)),
        ("another key under berth's kid", sign_token(ES256, other.as_bytes(), Some(kid), &fresh)),
        ("another key and kid", sign_token(ES256, other.as_bytes(), Some("0123456789abcdef"), &fresh)),
        ("no kid", sign_token(ES256, pem, None, &fresh)),
        ("alg none", format!("{none_header}.{body}.")),
        ("alg none with a signature", format!("{none_header}.{body}.{real_signature}")),
        ("HS256 keyed with the public key", sign_token(HS256, public_pem.as_bytes(), Some(kid), &fresh)),
        ("HS256 keyed with the private key", sign_token(HS256, pem, Some(kid), &fresh)),
        ("wrong issuer", sign_token(ES256, pem, Some(kid), &quay)),
        ("an account that does not exist", sign_token(ES256, pem, Some(kid), &claims("ghost", now(), 300))),
        ("another credential mark", changed("cred", json!("0123456789abcdef0123456789abcdef"))),
        ("no credential mark", changed("cred", Value::Null)),
        ("a real token with more access written in", parts.join(".")),
        ("a real token cut short", real[..real.len() - 10].to_string()),
        ("two parts", real.rsplit_once('.').unwrap().0.to_string()),
        ("not base64", "!!!.???.###".to_string()),
    ];
    for (what, token) in cases {
        let challenge = assert_401(pull_app(token).await, what).await;
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
}

#[tokio::test]
async fn tokens_hold_exactly_their_repositories_and_actions() {
    let s = team_server(Settings::default()).await;
    for repo in ["team/b", "team/c"] {
        s.create_repo(repo, false).await;
        push_image(&s.client, &s.base, repo, "v1", repo.as_bytes()).await;
    }
    s.grant("team/b", "dev", "read").await;
    let password = password_of("dev");
    let dev = Some(("dev", password.as_str()));
    let h = host(&s);
    let realm = format!("Bearer realm=\"http://{h}/v2/auth\",service=\"{h}\"");
    let insufficient =
        |scope: &str| format!("{realm},scope=\"{scope}\",error=\"insufficient_scope\"");

    let a = bearer_client(&registry_token(&s.base, dev, &["repository:team/app:pull,push"]).await);
    // Repository B: the account may pull it, so a new token would help: 401.
    let r = exec(a.get(s.url("/v2/team/b/manifests/v1"))).await;
    let challenge = assert_401(r, "token for A on B").await;
    assert_eq!(challenge, insufficient("repository:team/b:pull"));
    // Repository C: the account may never pull it: 403.
    for path in ["/v2/team/c/manifests/v1", "/v2/team/c/tags/list"] {
        assert_error(exec(a.get(s.url(path))).await, 403, "DENIED").await;
    }

    // A pull token used to push: 401 where the account may push, 403 where it may not.
    let scopes = ["repository:team/app:pull", "repository:team/b:pull"];
    let p = bearer_client(&registry_token(&s.base, dev, &scopes).await);
    let r = exec(p.post(s.url("/v2/team/app/blobs/uploads/"))).await;
    let challenge = assert_401(r, "push with a pull token").await;
    assert_eq!(challenge, insufficient("repository:team/app:pull,push"));
    let r = exec(p.post(s.url("/v2/team/b/blobs/uploads/"))).await;
    assert_error(r, 403, "DENIED").await;
    let r = exec(p.delete(s.url("/v2/team/app/manifests/v1"))).await;
    let challenge = assert_401(r, "delete with a pull token").await;
    assert_eq!(challenge, insufficient("repository:team/app:delete"));
    // Nothing was written by the refused requests, and the push token does push.
    let tags: Value = s.get("/v2/team/b/tags/list").await.json().await.unwrap();
    assert_eq!(tags["tags"], json!(["v1"]));
    push_blob(&a, &s.base, "team/app", b"pushed with a token").await;
    // Write access covers deletes.
    assert_eq!(
        status_of(a.delete(s.url("/v2/team/app/manifests/v1"))).await,
        202
    );
    // A registry token is not a management API credential.
    let r = api_call(&a, "GET", &s.url("/api/v1/user/"), None).await;
    assert_eq!(r.status, 401);
    assert!(r.body["error_message"].is_string());
}

#[tokio::test]
async fn robots_stay_in_their_namespace() {
    let s = TestServer::start().await;
    for org in ["alpha", "beta"] {
        s.create_org(org).await;
        let repo = format!("{org}/app");
        s.create_repo(&repo, false).await;
        push_image(&s.client, &s.base, &repo, "v1", org.as_bytes()).await;
    }
    s.create_repo("beta/open", true).await;
    push_image(&s.client, &s.base, "beta/open", "v1", b"beta open").await;
    s.create_team("beta", "ci", "creator").await;
    let token = s.create_robot("alpha", "bot").await;
    s.grant("alpha/app", "alpha+bot", "write").await;
    let bot = authed_client("alpha+bot", &token);
    let pull = |repo: &str| status_of(bot.get(s.url(&format!("/v2/{repo}/manifests/v1"))));

    assert_eq!(pull("alpha/app").await, 200);
    assert_eq!(pull("beta/app").await, 403);
    assert_eq!(pull("beta/open").await, 200);
    for repo in ["beta/app", "beta/open", "beta/new"] {
        let r = exec(bot.post(s.url(&format!("/v2/{repo}/blobs/uploads/")))).await;
        assert_error(r, 403, "DENIED").await;
    }
    let scopes = [
        "repository:alpha/app:pull,push",
        "repository:beta/app:pull,push",
        "repository:beta/new:pull,push",
    ];
    let t = registry_token(&s.base, Some(("alpha+bot", &token)), &scopes).await;
    assert_eq!(
        access_of(&t),
        json!([repo_access("alpha/app", &["pull", "push"])])
    );

    // No grant or team membership in another namespace may be given to it, even by a
    // superuser; the same holds for a user's robot.
    let srv = &s;
    let grant = |repo: &str, robot: &str| {
        let path = format!("/api/v1/repository/{repo}/permissions/user/{robot}");
        async move { srv.api("PUT", &path, Some(json!({"role": "write"}))).await }
    };
    let r = grant("beta/app", "alpha+bot").await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let message = r.body["error_message"].as_str().unwrap();
    assert!(message.contains("another namespace"), "{message}");
    let join = "/api/v1/organization/beta/team/ci/members/alpha+bot";
    let r = s.api("PUT", join, None).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let carl = s.create_user("carl").await;
    let r = api_call(&carl, "PUT", &s.url("/api/v1/user/robots/bot"), None).await;
    assert_eq!(r.status, 201);
    assert_eq!(grant("beta/app", "carl+bot").await.status, 400);
    let perms = "/api/v1/repository/beta/app/permissions/user/";
    let perms = s.api("GET", perms, None).await;
    assert_eq!(perms.body["permissions"], json!({}));
    assert_eq!(pull("beta/app").await, 403);
    // The robot administers neither organization through the API.
    let visibility = Some(json!({"visibility": "public"}));
    for (method, path, status) in [
        ("PUT", "/api/v1/organization/beta/robots/evil", 403),
        ("PUT", "/api/v1/organization/alpha/robots/evil", 403),
        ("POST", "/api/v1/repository/beta/app/changevisibility", 404),
        ("POST", "/api/v1/repository/alpha/app/changevisibility", 403),
    ] {
        let r = api_call(&bot, method, &s.url(path), visibility.clone()).await;
        assert_eq!(r.status, status, "{method} {path}: {r:?}");
    }
    let body = Some(json!({"name": "botorg"}));
    let r = api_call(&bot, "POST", &s.url("/api/v1/organization/"), body).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn failed_logins_never_refuse_the_right_password() {
    // How guessing is slowed down is tested in login_throttle.rs; here, what it must not do.
    let s = TestServer::start_with(auth_settings(|a| a.login_failures_per_minute = 3)).await;
    s.create_org("team").await;
    s.create_repo("team/open", true).await;
    s.create_user("victim").await;
    s.create_user("bystander").await;
    let right = password_of("victim");
    let ok = token_request(&s.base, Some(("victim", &right)), &[]).await;
    assert_eq!(ok.status(), 200);
    for _ in 0..3 {
        let r = token_request(&s.base, Some(("victim", "guess")), &[]).await;
        assert_eq!(r.status(), 401);
        assert_eq!(error_code(r).await, "UNAUTHORIZED");
    }
    // The right password, verified moments ago, goes on working on every surface, even from
    // the address the guesses came from.
    let r = token_request(&s.base, Some(("victim", &right)), &[]).await;
    assert_eq!(r.status(), 200);
    let victim = authed_client("victim", &right);
    assert_eq!(exec(victim.get(s.url("/v2/"))).await.status(), 200);
    let r = api_call(&victim, "GET", &s.url("/api/v1/user/"), None).await;
    assert_eq!(r.status, 200);
    // Another account from the same address is not held back by victim's failures.
    let bystander = password_of("bystander");
    let r = token_request(&s.base, Some(("bystander", &bystander)), &[]).await;
    assert_eq!(r.status(), 200);
    // Anonymous access needs no login and goes on.
    let r = token_request(&s.base, None, &["repository:team/open:pull"]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn hostile_authorization_headers_get_client_errors() {
    let s = team_server(auth_settings(|a| a.login_failures_per_minute = 1000)).await;
    let long_password = b64(format!("admin:{}", "x".repeat(5000)).as_bytes());
    let long_user = b64(format!("{}:pw", "u".repeat(5000)).as_bytes());
    #[rustfmt::skip]
    let headers = [
        "Basic !!!not-base64!!!".to_string(), "Basic".to_string(), "Basic ".to_string(),
        format!("Basic {}", b64(b"no-colon")), format!("Basic {}", b64(b"\xff\xfe:\xfd")),
        format!("Basic {long_password}"), format!("Basic {long_user}"),
        format!("Basic {}", "A".repeat(20_000)), format!("Basic {}", "A".repeat(200_000)),
        "Bearer".to_string(), "Bearer ".to_string(), "Bearer a.b.c".to_string(),
        format!("Bearer {}", "a".repeat(20_000)), "Bearer berth_not-a-real-api-token".to_string(),
        "Digest username=\"admin\"".to_string(), "admin:berth-test-password".to_string(),
    ];
    let paths = [
        "/v2/",
        "/v2/team/open/manifests/v1",
        "/v2/auth",
        "/api/v1/user/",
    ];
    for value in &headers {
        let shown = &value[..value.len().min(40)];
        for path in paths {
            let req = reqwest::Client::new()
                .get(s.url(path))
                .header("authorization", value);
            let status = status_of(req).await;
            assert_eq!(status, 401, "{path} with {shown:?}");
        }
    }
    // Far beyond hyper's header limit: 431, or the connection closed while the client still
    // writes; never a server error.
    let huge = format!("Basic {}", "A".repeat(1024 * 1024));
    let req = reqwest::Client::new()
        .get(s.url("/v2/"))
        .header("authorization", &huge);
    match req.send().await {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
    // Bytes that are not text in the header itself.
    let request = b"GET /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: x\r\n\
        Authorization: Basic \xff\xfe\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_send(&s.base, request).await.status, 401);
    // The server is still there for well-formed callers.
    assert_eq!(s.get("/v2/team/app/manifests/v1").await.status(), 200);
}

/// Pulls `team/app` as robot `team+ci` with `secret`; returns the status.
async fn robot_pull(s: &TestServer, secret: &str) -> u16 {
    status_of(authed_client("team+ci", secret).get(s.url("/v2/team/app/manifests/v1"))).await
}

#[tokio::test]
async fn a_deleted_robot_loses_its_access_at_once() {
    let s = team_server(Settings::default()).await;
    let token = s.create_robot("team", "ci").await;
    s.grant("team/app", "team+ci", "read").await;
    assert_eq!(robot_pull(&s, &token).await, 200);
    let scope = ["repository:team/app:pull"];
    let bearer = registry_token(&s.base, Some(("team+ci", &token)), &scope).await;
    let path = "/api/v1/organization/team/robots/ci";
    let r = s.api("DELETE", path, None).await;
    assert_eq!(r.status, 204);
    // Refused at once: the credential no longer authenticates.
    assert_eq!(robot_pull(&s, &token).await, 401);
    // Its registry tokens die with it.
    let r = exec(bearer_client(&bearer).get(s.url("/v2/team/app/manifests/v1"))).await;
    assert_401(r, "token of a deleted robot").await;
}

#[tokio::test]
async fn a_regenerated_robot_token_stops_working_at_once() {
    let s = team_server(Settings::default()).await;
    let old = s.create_robot("team", "ci").await;
    s.grant("team/app", "team+ci", "read").await;
    assert_eq!(robot_pull(&s, &old).await, 200);
    let path = "/api/v1/organization/team/robots/ci";
    let r = s.api("POST", &format!("{path}/regenerate"), None).await;
    assert_eq!(r.status, 200);
    let new = r.body["token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(robot_pull(&s, &new).await, 200);
    let old_pull = robot_pull(&s, &old).await;
    assert_eq!(old_pull, 401, "the replaced token still pulls");
    let r = token_request(&s.base, Some(("team+ci", &old)), &[]).await;
    assert_eq!(r.status(), 401, "the replaced token still logs in");
    assert_eq!(s.api("DELETE", path, None).await.status, 204);
    let new_pull = robot_pull(&s, &new).await;
    assert_eq!(new_pull, 401, "the deleted robot still pulls");
}

#[tokio::test]
async fn the_token_endpoint_refuses_authorization_it_cannot_use() {
    let s = team_server(Settings::default()).await;
    #[rustfmt::skip]
    let values = [
        "Basic", "Basic ", "Bearer berth_not-a-real-api-token", "Bearer a.b.c",
        "Digest username=\"admin\"", "admin:berth-test-password",
    ];
    let url = s.url("/v2/auth?scope=repository:team/open:pull");
    for value in values {
        let req = reqwest::Client::new()
            .get(&url)
            .header("authorization", value);
        let status = status_of(req).await;
        assert_eq!(
            status, 401,
            "{value:?}: credentials were sent, yet a token came back"
        );
    }
}

/// A push that creates a repository grants its creator in the same step: a token asked for
/// while the first upload is creating the repository still grants push (crane asks for a new
/// token, with a mount source added, while its first blob upload creates the repository; a
/// token without push made its next PATCH fail).
#[tokio::test]
async fn tokens_asked_for_while_a_push_creates_the_repository_grant_push() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    s.create_team("acme", "builders", "creator").await;
    s.create_user("dev").await;
    s.add_team_member("acme", "builders", "dev").await;
    let password = password_of("dev");
    let dev = Some(("dev", password.as_str()));
    for i in 0..20 {
        let repo = format!("acme/race-{i}");
        let scope = format!("repository:{repo}:push,pull");
        let scopes = [scope.as_str()];
        let first = registry_token(&s.base, dev, &scopes).await;
        let creating = bearer_client(&first)
            .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send();
        let ask = || registry_token(&s.base, dev, &scopes);
        let asking = futures::future::join_all((0..8).map(|_| ask()));
        let (created, tokens) = tokio::join!(creating, asking);
        assert_eq!(created.expect("upload").status(), 202, "{repo}");
        for token in tokens {
            let granted = granted_actions(&token, &repo);
            assert!(granted.split(',').any(|a| a == "push"), "{repo}: {granted}");
        }
    }
}

/// A registry token is for the account and credential it was issued for: a robot deleted and
/// created again under the same name, a regenerated robot token and a new password each end
/// the tokens issued before, at the next request.
#[tokio::test]
async fn tokens_end_with_the_credential_they_were_issued_for() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    s.create_repo("acme/app", false).await;
    push_image(&s.client, &s.base, "acme/app", "v1", b"app layer").await;
    let scopes = ["repository:acme/app:pull"];
    let pull = |token: String| {
        let req = bearer_client(&token).get(s.url("/v2/acme/app/manifests/v1"));
        status_of(req)
    };

    // A robot deleted and created again: SQLite may even give it the same id.
    let secret = s.create_robot("acme", "ci").await;
    s.grant("acme/app", "acme+ci", "read").await;
    let old = registry_token(&s.base, Some(("acme+ci", &secret)), &scopes).await;
    assert_eq!(pull(old.clone()).await, 200);
    let r = s
        .api("DELETE", "/api/v1/organization/acme/robots/ci", None)
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let secret = s.create_robot("acme", "ci").await;
    s.grant("acme/app", "acme+ci", "read").await;
    assert_eq!(pull(old).await, 401, "a token of the robot deleted before");
    let current = registry_token(&s.base, Some(("acme+ci", &secret)), &scopes).await;
    assert_eq!(pull(current.clone()).await, 200);

    // A regenerated robot token.
    let r = s
        .api(
            "POST",
            "/api/v1/organization/acme/robots/ci/regenerate",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        pull(current).await,
        401,
        "a token from before the regeneration"
    );
    let secret = r.body["token"]
        .as_str()
        .expect("new robot token")
        .to_string();
    let current = registry_token(&s.base, Some(("acme+ci", &secret)), &scopes).await;
    assert_eq!(pull(current).await, 200);

    // A new password.
    s.create_user("dev").await;
    s.grant("acme/app", "dev", "read").await;
    let old_password = password_of("dev");
    let old = registry_token(&s.base, Some(("dev", &old_password)), &scopes).await;
    assert_eq!(pull(old.clone()).await, 200);
    let out = berth_cli(
        s.data_dir(),
        &["user", "set-password", "dev", "--password-stdin"],
        Some("a-new-password-for-dev"),
    )
    .await;
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        pull(old).await,
        401,
        "a token from before the password change"
    );
    let new = registry_token(&s.base, Some(("dev", "a-new-password-for-dev")), &scopes).await;
    assert_eq!(pull(new).await, 200);
}

/// A registry token grants what its scope names *and* the account may still do: a removed
/// grant, a repository made private, a team membership ended each count at the next request,
/// and a grant given back counts again.
#[tokio::test]
async fn tokens_are_cut_to_the_permissions_in_force_at_each_request() {
    let s = team_server(Settings::default()).await;
    let pull_push = ["repository:team/app:pull,push"];
    let dev = registry_token(&s.base, Some(("dev", &password_of("dev"))), &pull_push).await;
    let as_dev = bearer_client(&dev);
    let pull = |client: reqwest::Client, repo: &str| {
        status_of(client.get(s.url(&format!("/v2/{repo}/manifests/v1"))))
    };
    let push = |client: reqwest::Client| {
        let digest = sha256(b"pushed after");
        let url = s.url(&format!("/v2/team/app/blobs/uploads/?digest={digest}"));
        status_of(client.post(url).body(&b"pushed after"[..]))
    };
    assert_eq!(pull(as_dev.clone(), "team/app").await, 200);
    assert_eq!(push(as_dev.clone()).await, 201);

    let r = s
        .api(
            "DELETE",
            "/api/v1/repository/team/app/permissions/user/dev",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(pull(as_dev.clone(), "team/app").await, 403, "grant removed");
    assert_eq!(push(as_dev.clone()).await, 403, "grant removed");

    s.grant("team/app", "dev", "read").await;
    assert_eq!(
        pull(as_dev.clone(), "team/app").await,
        200,
        "read given back"
    );
    assert_eq!(push(as_dev.clone()).await, 403, "read only");

    // Through a team: membership ended, then the team removed.
    let r = s
        .api(
            "DELETE",
            "/api/v1/repository/team/app/permissions/user/dev",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let team = json!({"role": "member", "description": ""});
    let r = s
        .api("PUT", "/api/v1/organization/team/team/builders", Some(team))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s
        .api(
            "PUT",
            "/api/v1/organization/team/team/builders/members/dev",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s
        .api(
            "PUT",
            "/api/v1/repository/team/app/permissions/team/builders",
            Some(json!({"role": "write"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(push(as_dev.clone()).await, 201, "write through the team");
    let r = s
        .api(
            "DELETE",
            "/api/v1/organization/team/team/builders/members/dev",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(push(as_dev.clone()).await, 403, "left the team");
    assert_eq!(pull(as_dev.clone(), "team/app").await, 403, "left the team");

    // An anonymous token for a public repository made private.
    let anonymous = registry_token(&s.base, None, &["repository:team/open:pull"]).await;
    let anonymous = bearer_client(&anonymous);
    assert_eq!(pull(anonymous.clone(), "team/open").await, 200);
    let private = json!({"visibility": "private"});
    let r = s
        .api(
            "POST",
            "/api/v1/repository/team/open/changevisibility",
            Some(private),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        pull(anonymous.clone(), "team/open").await,
        401,
        "made private"
    );
    let public = json!({"visibility": "public"});
    let r = s
        .api(
            "POST",
            "/api/v1/repository/team/open/changevisibility",
            Some(public),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(pull(anonymous, "team/open").await, 200, "public again");
}

/// Basic credentials (podman and skopeo send them on every request) are checked with argon2
/// once and then remembered, but only while the account keeps the password they were checked
/// against: after a new password, the old one is refused at the next request.
#[tokio::test]
async fn remembered_basic_credentials_end_with_a_new_password() {
    let s = team_server(Settings::default()).await;
    let pull = |password: String| {
        let req = reqwest::Client::new()
            .get(s.url("/v2/team/app/manifests/v1"))
            .header("authorization", basic("dev", &password));
        status_of(req)
    };
    // The second and third are answered from memory.
    for _ in 0..3 {
        assert_eq!(pull(password_of("dev")).await, 200);
    }
    let out = berth_cli(
        s.data_dir(),
        &["user", "set-password", "dev", "--password-stdin"],
        Some("another-password-for-dev"),
    )
    .await;
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert_eq!(pull(password_of("dev")).await, 401, "the old password");
    assert_eq!(pull("another-password-for-dev".into()).await, 200);
}
