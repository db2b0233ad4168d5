//! The management API under /api/v1, as curl users drive it (organizations, robots,
//! repositories, grants, tags, visibility, permissions), its errors and who may call what,
//! API tokens made with the CLI, self-registration, and the admin CLI working on the database
//! of a running berth.

use crate::common;

use berth::config::Settings;
use common::*;
use serde_json::{json, Value};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;

/// The total size berth records for an image pushed by [`push_image`] with `content`.
fn image_size(content: &[u8]) -> u64 {
    let layers = [(sha256(content), content.len())];
    let layers: Vec<(&str, usize)> = layers.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    let manifest = image_manifest((&sha256(CONFIG), CONFIG.len()), &layers);
    (manifest.len() + CONFIG.len() + content.len()) as u64
}

/// Asserts a management API error: `status`, and the JSON problem Quay answers with.
fn assert_api_error(r: &ApiReply, status: u16, context: &str) {
    assert_eq!(r.status, status, "{context}: {}", r.body);
    let message = r.body["error_message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{context}: {}", r.body);
    assert_eq!(r.body["status"], status, "{context}");
    assert_eq!(r.body["detail"], message, "{context}");
    assert!(r.body["error_type"].is_string(), "{context}");
}

async fn anonymous_pull(s: &TestServer, repo: &str, tag: &str) -> u16 {
    status_of(reqwest::Client::new().get(s.url(&format!("/v2/{repo}/manifests/{tag}")))).await
}

/// A management API caller; paths are relative to /api/v1.
struct Api<'a> {
    s: &'a TestServer,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(s: &'a TestServer, client: &reqwest::Client) -> Api<'a> {
        Api {
            s,
            client: client.clone(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> ApiReply {
        let url = self.s.url(&format!("/api/v1{path}"));
        api_call(&self.client, method, &url, body).await
    }

    async fn get(&self, path: &str) -> ApiReply {
        self.call("GET", path, None).await
    }

    async fn delete(&self, path: &str) -> ApiReply {
        self.call("DELETE", path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> ApiReply {
        self.call("PUT", path, Some(body)).await
    }

    async fn post(&self, path: &str, body: Value) -> ApiReply {
        self.call("POST", path, Some(body)).await
    }
}

fn tag_names(r: &ApiReply) -> Vec<&str> {
    let tags = r.body["tags"].as_array().expect("tags");
    tags.iter().map(|t| t["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_curl_flow_org_robot_repository_grant_push_tags_and_visibility() {
    let s = TestServer::start().await;
    let admin = Api::new(&s, &s.client);

    let r = admin.post("/organization/", json!({"name": "acme"})).await;
    assert_eq!((r.status, &r.body), (201, &json!("Created")));
    let r = admin.get("/organization/acme").await;
    assert_eq!(
        (&r.body["name"], &r.body["is_admin"]),
        (&json!("acme"), &json!(true))
    );
    assert_eq!(r.body["teams"]["owners"]["role"], "admin");
    assert_eq!(r.body["teams"]["owners"]["member_count"], 1);

    // A robot: its token is in the creation reply and nowhere else.
    let robots = "/organization/acme/robots";
    let r = admin.call("PUT", &format!("{robots}/deployer"), None).await;
    assert_eq!((r.status, &r.body["name"]), (201, &json!("acme+deployer")));
    let token = r.body["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 40, "{token}");
    let r = admin.get(&format!("{robots}/deployer")).await;
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"name": "acme+deployer"}))
    );
    let r = admin.get(robots).await;
    assert_eq!(r.body, json!({"robots": [{"name": "acme+deployer"}]}));
    let r = admin.call("PUT", &format!("{robots}/deployer"), None).await;
    assert_api_error(&r, 409, "robot twice");

    // A private repository, and write for the robot.
    let body = json!({"namespace": "acme", "repository": "web", "visibility": "private",
                      "description": "the web app"});
    let r = admin.post("/repository", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"namespace": "acme", "name": "web", "kind": "image"})
    );
    let web = "/repository/acme/web";
    let r = admin.get(web).await;
    assert_eq!(
        (&r.body["namespace"], &r.body["name"]),
        (&json!("acme"), &json!("web"))
    );
    assert_eq!(
        (&r.body["is_public"], &r.body["can_admin"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(r.body["description"], "the web app");
    let grant = format!("{web}/permissions/user/acme+deployer");
    let r = admin.put(&grant, json!({"role": "write"})).await;
    let entry = json!({"role": "write", "name": "acme+deployer", "is_robot": true});
    assert_eq!((r.status, &r.body), (200, &entry));
    let r = admin.get(&format!("{web}/permissions/user/")).await;
    assert_eq!(r.body, json!({"permissions": {"acme+deployer": entry}}));
    assert_eq!(admin.get(&grant).await.body, entry);
    let r = admin.get(&format!("{web}/permissions/team/")).await;
    assert_eq!(r.body, json!({"permissions": {}}));

    // The robot pushes, with its token as the password of a Docker login.
    let robot = authed_client("acme+deployer", &token);
    let one = push_image(&robot, &s.base, "acme/web", "v1", b"release one").await;
    let two = push_image(&robot, &s.base, "acme/web", "v2", b"release two").await;
    push_image(&robot, &s.base, "acme/web", "latest", b"release two").await;

    // Tags, with Quay's fields, ordered by name.
    let r = admin.get(&format!("{web}/tag/")).await;
    assert_eq!((r.status, &r.body["page"]), (200, &json!(1)));
    assert_eq!(r.body["has_additional"], false);
    assert_eq!(tag_names(&r), ["latest", "v1", "v2"]);
    let (latest, v1) = (&r.body["tags"][0], &r.body["tags"][1]);
    assert_eq!(latest["manifest_digest"], two);
    assert_eq!(v1["manifest_digest"], one);
    assert_eq!(v1["size"], image_size(b"release one"));
    assert_eq!(v1["is_manifest_list"], false);
    assert_eq!(v1["media_type"], MANIFEST_TYPE);
    let modified = v1["last_modified"].as_str().unwrap();
    assert!(
        modified.ends_with(" -0000") && modified.len() == 31,
        "{modified}"
    );
    assert!(v1["start_ts"].as_i64().unwrap() > 1_600_000_000);
    // Pages of `limit` tags.
    let r = admin.get(&format!("{web}/tag/?limit=2")).await;
    assert_eq!(tag_names(&r), ["latest", "v1"]);
    assert_eq!(
        (&r.body["page"], &r.body["has_additional"]),
        (&json!(1), &json!(true))
    );
    let r = admin.get(&format!("{web}/tag/?limit=2&page=2")).await;
    assert_eq!(tag_names(&r), ["v2"]);
    assert_eq!(
        (&r.body["page"], &r.body["has_additional"]),
        (&json!(2), &json!(false))
    );
    let r = admin.get(&format!("{web}/tag/?specificTag=v1")).await;
    assert_eq!(tag_names(&r), ["v1"]);

    // Delete a tag: the tag goes, the manifest stays.
    let robot_api = Api::new(&s, &robot);
    let r = robot_api.delete(&format!("{web}/tag/v1")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(s.get("/v2/acme/web/manifests/v1").await.status(), 404);
    let by_digest = s.get(&format!("/v2/acme/web/manifests/{one}")).await;
    assert_eq!(by_digest.status(), 200);
    let r = admin.delete(&format!("{web}/tag/v1")).await;
    assert_api_error(&r, 404, "deleting a deleted tag");

    // Move a tag, and create one, with PUT {"manifest_digest"}.
    let r = robot_api
        .put(
            &format!("{web}/tag/latest"),
            json!({"manifest_digest": one}),
        )
        .await;
    assert_eq!((r.status, &r.body), (201, &json!("Updated")));
    let r = s.get("/v2/acme/web/manifests/latest").await;
    assert_eq!(header(&r, "docker-content-digest"), one);
    let r = admin
        .put(
            &format!("{web}/tag/stable"),
            json!({"manifest_digest": two}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = s.get("/v2/acme/web/manifests/stable").await;
    assert_eq!(header(&r, "docker-content-digest"), two);
    let missing = json!({"manifest_digest": sha256(b"no such manifest")});
    let r = admin.put(&format!("{web}/tag/x"), missing).await;
    assert_api_error(&r, 404, "moving to an unknown manifest");
    let r = admin.put(&format!("{web}/tag/x"), json!({})).await;
    assert_api_error(&r, 400, "moving without a digest");
    let r = admin
        .put(&format!("{web}/tag/-bad"), json!({"manifest_digest": one}))
        .await;
    assert_api_error(&r, 400, "an invalid tag name");

    // Visibility decides what anonymous callers may pull.
    let visibility = format!("{web}/changevisibility");
    assert_eq!(anonymous_pull(&s, "acme/web", "latest").await, 401);
    let r = admin
        .post(&visibility, json!({"visibility": "public"}))
        .await;
    assert_eq!((r.status, &r.body), (200, &json!({"success": true})));
    assert_eq!(anonymous_pull(&s, "acme/web", "latest").await, 200);
    let anonymous = Api::new(&s, &reqwest::Client::new());
    let r = anonymous.get(web).await;
    assert_eq!((r.status, &r.body["is_public"]), (200, &json!(true)));
    assert!(r.body.get("can_admin").is_none());
    let r = anonymous.get("/repository?namespace=acme").await;
    assert_eq!(r.body["repositories"][0]["name"], "web");
    let r = admin
        .post(&visibility, json!({"visibility": "private"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(anonymous_pull(&s, "acme/web", "latest").await, 401);
    let r = anonymous.get("/repository?namespace=acme").await;
    assert_eq!(r.body, json!({"repositories": []}));
    let r = admin
        .post(&visibility, json!({"visibility": "secret"}))
        .await;
    assert_api_error(&r, 400, "an unknown visibility");
}

#[tokio::test]
async fn errors_are_json_problems_with_an_error_message() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    s.create_repo("acme/web", false).await;
    s.create_user("dev").await;
    #[rustfmt::skip]
    let cases = [
        ("GET", "/repository/acme/missing", "", 404),
        ("GET", "/no/such/endpoint", "", 404),
        ("POST", "/repository", "{not json", 400),
        ("POST", "/repository", r#"{"namespace": "acme"}"#, 400),
        ("POST", "/repository", r#"{"namespace": "nosuch", "repository": "x"}"#, 404),
        ("POST", "/repository", r#"{"namespace": "acme", "repository": "Bad Name"}"#, 400),
        ("POST", "/repository", r#"{"namespace": "acme", "repository": "web"}"#, 409),
        ("POST", "/repository", r#"{"namespace": "acme", "repository": "x", "visibility": "open"}"#, 400),
        ("POST", "/organization/", r#"{"name": "acme"}"#, 409),
        ("POST", "/organization/", r#"{"name": "dev"}"#, 409),
        ("POST", "/organization/", r#"{"name": "Not_Valid!"}"#, 400),
        ("GET", "/organization/nosuch", "", 404),
        ("PUT", "/organization/acme/team/builders", r#"{"role": "king"}"#, 400),
        ("PUT", "/organization/acme/team/owners/members/ghost", "", 404),
        ("PUT", "/organization/acme/robots/Bad-Name", "", 400),
        ("GET", "/organization/acme/robots/ghost", "", 404),
        ("PUT", "/repository/acme/web/permissions/user/ghost", r#"{"role": "read"}"#, 404),
        ("PUT", "/repository/acme/web/permissions/user/dev", r#"{"role": "owner"}"#, 400),
        ("PUT", "/repository/acme/web/permissions/team/ghosts", r#"{"role": "read"}"#, 404),
        ("DELETE", "/repository/acme/web/permissions/user/dev", "", 404),
        ("POST", "/superuser/users/", r#"{"username": "tiny", "password": "short"}"#, 400),
        ("POST", "/superuser/users/", r#"{"username": "dev", "password": "long-enough"}"#, 409),
        ("PATCH", "/repository/acme/web", "", 400),
    ];
    for (method, path, body, status) in cases {
        let method_ = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let req = s.client.request(method_, s.url(&format!("/api/v1{path}")));
        let r = exec(req.header("content-type", "application/json").body(body)).await;
        let status_got = r.status().as_u16();
        let reply = ApiReply {
            status: status_got,
            body: r.json().await.unwrap_or(Value::Null),
        };
        assert_api_error(&reply, status, &format!("{method} {path} {body}"));
    }
}

#[tokio::test]
async fn non_admins_get_403_and_anonymous_callers_401() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    s.create_repo("acme/web", false).await;
    s.create_repo("acme/open", true).await;
    push_image(&s.client, &s.base, "acme/web", "v1", b"web").await;
    let reader = Api::new(&s, &s.create_user("reader").await);
    let writer = Api::new(&s, &s.create_user("writer").await);
    let outsider = Api::new(&s, &s.create_user("outsider").await);
    s.grant("acme/web", "reader", "read").await;
    s.grant("acme/web", "writer", "write").await;

    // Readers read; writers also change tags; neither administers.
    assert_eq!(reader.get("/repository/acme/web/tag/").await.status, 200);
    let r = reader.get("/repository/acme/web").await;
    let rights = (&r.body["can_write"], &r.body["can_admin"]);
    assert_eq!(rights, (&json!(false), &json!(false)));
    let r = reader.delete("/repository/acme/web/tag/v1").await;
    assert_api_error(&r, 403, "reader deletes a tag");
    assert_eq!(
        writer.delete("/repository/acme/web/tag/v1").await.status,
        204
    );
    let public = Some(json!({"visibility": "public"}));
    #[rustfmt::skip]
    let admin_only = [
        ("POST", "/repository/acme/web/changevisibility", public.clone()),
        ("GET", "/repository/acme/web/permissions/user/", None),
        ("PUT", "/repository/acme/web/permissions/user/outsider", Some(json!({"role": "read"}))),
        ("DELETE", "/repository/acme/web", None),
        ("PUT", "/organization/acme/robots/mine", None),
        ("PUT", "/organization/acme/team/mine", Some(json!({"role": "admin"}))),
        ("PUT", "/organization/acme/team/owners/members/outsider", None),
        ("GET", "/organization/acme/members", None),
        ("DELETE", "/organization/acme", None),
        ("POST", "/repository", Some(json!({"namespace": "acme", "repository": "new"}))),
        ("GET", "/superuser/users/", None),
        ("POST", "/superuser/users/", Some(json!({"username": "x", "password": "long-enough"}))),
    ];
    for caller in [&reader, &writer] {
        for (method, path, body) in admin_only.clone() {
            let r = caller.call(method, path, body).await;
            assert_api_error(&r, 403, &format!("{method} {path}"));
        }
    }
    // An outsider cannot tell the private repository from a missing one.
    for (method, path) in [
        ("GET", "/repository/acme/web"),
        ("GET", "/repository/acme/web/tag/"),
        ("POST", "/repository/acme/web/changevisibility"),
    ] {
        let r = outsider.call(method, path, public.clone()).await;
        let nope = path.replace("/web", "/nope");
        let missing = outsider.call(method, &nope, public.clone()).await;
        assert_api_error(&r, 404, path);
        let body = r.body.to_string().replace("acme/web", "acme/nope");
        assert_eq!(body, missing.body.to_string());
    }
    // Nothing above changed anything.
    let admin = Api::new(&s, &s.client);
    assert_eq!(
        admin.get("/repository/acme/web").await.body["is_public"],
        false
    );
    let r = admin.get("/repository/acme/web/permissions/user/").await;
    assert_eq!(r.body["permissions"].as_object().unwrap().len(), 2);

    // Anonymous callers: 401 wherever an account is needed.
    let anonymous = Api::new(&s, &reqwest::Client::new());
    #[rustfmt::skip]
    let signed_in_only = [
        ("GET", "/user/", None),
        ("POST", "/repository", Some(json!({"namespace": "acme", "repository": "new"}))),
        ("POST", "/organization/", Some(json!({"name": "anon"}))),
        ("GET", "/organization/acme", None),
        ("PUT", "/organization/acme/robots/anon", None),
        ("GET", "/superuser/users/", None),
        ("GET", "/user/robots", None),
        ("POST", "/repository/acme/open/changevisibility", Some(json!({"visibility": "private"}))),
        ("DELETE", "/repository/acme/open", None),
        ("GET", "/repository/acme/open/permissions/user/", None),
    ];
    for (method, path, body) in signed_in_only {
        let r = anonymous.call(method, path, body).await;
        assert_api_error(&r, 401, &format!("anonymous {method} {path}"));
    }
    assert_eq!(anonymous.get("/repository/acme/open").await.status, 200);
    // Wrong credentials are a 401 too, not an anonymous call.
    let wrong = Api::new(&s, &authed_client("reader", "not-the-password"));
    let r = wrong.get("/repository/acme/open").await;
    assert_api_error(&r, 401, "wrong password");
}

#[tokio::test]
async fn organizations_and_namespaces_answer_alike_whether_they_exist_or_not() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    s.create_team("acme", "builders", "creator").await;
    s.create_robot("acme", "bot").await;
    s.create_user("carol").await;
    let outsider = Api::new(&s, &s.create_user("outsider").await);
    let team = Some(json!({"role": "member"}));
    #[rustfmt::skip]
    let probes = [
        ("GET", "/organization/NS", None),
        ("DELETE", "/organization/NS", None),
        ("GET", "/organization/NS/members", None),
        ("PUT", "/organization/NS/team/builders", team),
        ("DELETE", "/organization/NS/team/builders", None),
        ("GET", "/organization/NS/team/builders/members", None),
        ("PUT", "/organization/NS/team/builders/members/outsider", None),
        ("DELETE", "/organization/NS/team/builders/members/outsider", None),
        ("GET", "/organization/NS/robots", None),
        ("PUT", "/organization/NS/robots/mine", None),
        ("GET", "/organization/NS/robots/bot", None),
        ("DELETE", "/organization/NS/robots/bot", None),
        ("POST", "/organization/NS/robots/bot/regenerate", None),
        ("POST", "/repository", Some(json!({"namespace": "NS", "repository": "app"}))),
    ];
    // An organization, a user's namespace and a name nobody has: the same 403 for each.
    for (method, path, body) in probes {
        let mut replies = Vec::new();
        for ns in ["acme", "carol", "nosuch"] {
            let body = body.as_ref().map(|b| b.to_string().replace("NS", ns));
            let body = body.map(|b| serde_json::from_str(&b).unwrap());
            replies.push(outsider.call(method, &path.replace("NS", ns), body).await);
        }
        let [real, user, missing] = <[ApiReply; 3]>::try_from(replies).unwrap();
        assert_api_error(&real, 403, &format!("{method} {path} on acme"));
        assert_eq!(
            (real.status, &real.body),
            (missing.status, &missing.body),
            "{method} {path}"
        );
        assert_eq!(
            (user.status, &user.body),
            (missing.status, &missing.body),
            "{method} {path}"
        );
    }
    // Those who could act (a superuser) learn that it is missing.
    let admin = Api::new(&s, &s.client);
    assert_api_error(
        &admin.get("/organization/nosuch/robots").await,
        404,
        "superuser",
    );
}

#[tokio::test]
async fn private_repositories_probed_anonymously_answer_like_missing_ones() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    s.create_repo("acme/secret", false).await;
    let anonymous = Api::new(&s, &reqwest::Client::new());
    for (method, path) in [
        ("GET", "/repository/acme/secret"),
        ("GET", "/repository/acme/secret/tag/"),
        ("DELETE", "/repository/acme/secret/tag/v1"),
        ("POST", "/repository/acme/secret/changevisibility"),
        ("GET", "/repository/acme/secret/permissions/user/"),
    ] {
        let body = Some(json!({"visibility": "public"}));
        let secret = anonymous.call(method, path, body.clone()).await;
        let missing_path = path.replace("secret", "missing");
        let missing = anonymous.call(method, &missing_path, body).await;
        assert_eq!(secret.status, missing.status, "{method} {path}");
        let secret_body = secret.body.to_string().replace("secret", "missing");
        assert_eq!(secret_body, missing.body.to_string(), "{method} {path}");
    }
}

#[tokio::test]
async fn api_tokens_made_by_the_cli_authenticate_as_bearer() {
    let s = TestServer::start().await;
    s.create_user("dev").await;
    let out = berth_cli(s.data_dir(), &["token", "create", "admin"], None).await;
    assert!(out.success, "{out:?}");
    let token = out.stdout.trim().to_string();
    assert!(token.starts_with("berth_") && token.len() > 40, "{token}");
    assert_eq!(out.stdout.lines().count(), 1, "only the token on stdout");
    let admin = bearer_client(&token);
    let api = Api::new(&s, &admin);
    let r = api.get("/user/").await;
    let who = (&r.body["username"], &r.body["super_user"]);
    assert_eq!((r.status, who), (200, (&json!("admin"), &json!(true))));
    let r = api
        .post("/organization/", json!({"name": "viatoken"}))
        .await;
    assert_eq!(r.status, 201);
    let body = json!({"namespace": "viatoken", "repository": "app"});
    assert_eq!(api.post("/repository", body).await.status, 201);
    // On /v2 an API token stands for its account as well.
    push_image(&admin, &s.base, "viatoken/app", "v1", b"via token").await;

    let args = ["token", "create", "dev", "--name", "laptop"];
    let out = berth_cli(s.data_dir(), &args, None).await;
    assert!(out.success, "{out:?}");
    let dev = Api::new(&s, &bearer_client(out.stdout.trim()));
    let r = dev.get("/user/").await;
    let who = (&r.body["username"], &r.body["super_user"]);
    assert_eq!(who, (&json!("dev"), &json!(false)));
    let r = dev.get("/superuser/users/").await;
    assert_api_error(&r, 403, "a user's token is not a superuser's");

    let forged = bearer_client("berth_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let r = Api::new(&s, &forged).get("/user/").await;
    assert_api_error(&r, 401, "an unknown API token");
    let out = berth_cli(s.data_dir(), &["token", "create", "ghost"], None).await;
    assert!(!out.success && out.stdout.trim().is_empty(), "{out:?}");
}

#[tokio::test]
async fn self_registration_follows_feature_user_creation() {
    let body = json!({"username": "newbie", "password": "newbie-password"});
    let off = TestServer::start().await;
    let r = Api::new(&off, &reqwest::Client::new())
        .post("/user/", body.clone())
        .await;
    assert_api_error(&r, 403, "registration while FEATURE_USER_CREATION is off");
    let r = token_request(&off.base, Some(("newbie", "newbie-password")), &[]).await;
    assert_eq!(r.status(), 401);

    let on = TestServer::start_with(Settings {
        user_creation: true,
        ..Settings::default()
    })
    .await;
    let anonymous = Api::new(&on, &reqwest::Client::new());
    let r = anonymous.post("/user/", body.clone()).await;
    assert_eq!((r.status, &r.body), (201, &json!("Created")));
    let r = token_request(&on.base, Some(("newbie", "newbie-password")), &[]).await;
    assert_eq!(r.status(), 200);
    let newbie = Api::new(&on, &authed_client("newbie", "newbie-password"));
    let r = newbie.get("/user/").await;
    let who = (&r.body["username"], &r.body["super_user"]);
    assert_eq!(who, (&json!("newbie"), &json!(false)));
    let r = anonymous.post("/user/", body).await;
    assert_api_error(&r, 409, "the same name twice");
    for bad in [
        json!({"username": "short", "password": "short"}),
        json!({"username": "Not Valid", "password": "long-enough-password"}),
        json!({"username": "nopassword"}),
        json!({"username": "admin+robot", "password": "long-enough-password"}),
    ] {
        let r = anonymous.post("/user/", bad.clone()).await;
        assert_api_error(&r, 400, &bad.to_string());
    }
}

#[tokio::test]
async fn a_deleted_namespace_hands_nothing_to_the_next_owner_of_its_name() {
    let s = TestServer::start().await;
    let admin = Api::new(&s, &s.client);
    let mallory = s.create_user("mallory").await;
    s.create_org("gone").await;
    s.create_repo("gone/secret", false).await;
    push_image(&s.client, &s.base, "gone/secret", "v1", b"gone secret").await;
    let leaver = s.create_user("leaver").await;
    push_image(&leaver, &s.base, "leaver/private", "v1", b"leaver secret").await;

    if admin.delete("/organization/gone").await.status == 204 {
        // Deleted, so its repositories went with it.
        let r = admin.get("/repository/gone/secret").await;
        assert_api_error(&r, 404, "a repository of a deleted organization");
    }
    let out = berth_cli(s.data_dir(), &["user", "delete", "leaver"], None).await;
    if out.success {
        let r = admin.get("/repository/leaver/private").await;
        assert_api_error(&r, 404, "a repository of a deleted user");
    }
    // Any signed-in user may create an organization under a free name.
    let mallory_api = Api::new(&s, &mallory);
    for name in ["gone", "leaver"] {
        let r = mallory_api
            .post("/organization/", json!({"name": name}))
            .await;
        assert!(r.status == 201 || r.status == 409, "{name}: {r:?}");
    }
    for repo in ["gone/secret", "leaver/private"] {
        let status = status_of(mallory.get(s.url(&format!("/v2/{repo}/manifests/v1")))).await;
        assert_ne!(
            status, 200,
            "{repo} was handed to the new owner of its namespace"
        );
    }
}

/// Runs `berth <command>` (split on spaces) on the server's data directory.
async fn cli(s: &TestServer, command: &str, stdin: Option<&str>) -> CliOutput {
    let args: Vec<&str> = command.split(' ').collect();
    berth_cli(s.data_dir(), &args, stdin).await
}

#[tokio::test]
async fn the_cli_administers_a_running_berth() {
    let s = TestServer::start().await;
    let out = cli(
        &s,
        "user create ops --password-stdin",
        Some("ops-password-1\n"),
    )
    .await;
    assert!(out.success, "{out:?}");
    let r = token_request(&s.base, Some(("ops", "ops-password-1")), &[]).await;
    assert_eq!(r.status(), 200, "the password is read without its newline");
    // Passwords never go on the command line, and short ones are refused.
    assert!(!cli(&s, "user create nopw", None).await.success);
    let out = cli(&s, "user create shorty --password-stdin", Some("short\n")).await;
    assert!(!out.success && out.stderr.contains("at least 8"), "{out:?}");

    let out = cli(&s, "org create tools --owner ops", None).await;
    assert!(out.success, "{out:?}");
    let ops = Api::new(&s, &authed_client("ops", "ops-password-1"));
    let r = ops.get("/organization/tools").await;
    assert_eq!(r.body["is_admin"], true, "{}", r.body);

    let out = cli(&s, "robot create tools+builder", None).await;
    assert!(out.success && out.stdout.lines().count() == 1, "{out:?}");
    let robot_token = out.stdout.trim().to_string();
    assert!(!cli(&s, "robot create tools+Bad", None).await.success);

    let out = cli(&s, "repo create tools/app", None).await;
    assert!(out.success, "{out:?}");
    let robot = Some(("tools+builder", robot_token.as_str()));
    let scope = ["repository:tools/app:pull,push"];
    // The robot logs in through the token endpoint; it may do nothing yet.
    let t = registry_token(&s.base, robot, &scope).await;
    assert_eq!(jwt_parts(&t).1["sub"], "tools+builder");
    assert_eq!(granted_actions(&t, "tools/app"), "");

    let out = cli(
        &s,
        "repo grant tools/app --user tools+builder --role write",
        None,
    )
    .await;
    assert!(out.success, "{out:?}");
    let t = registry_token(&s.base, robot, &scope).await;
    assert_eq!(granted_actions(&t, "tools/app"), "pull,push");
    push_image(&bearer_client(&t), &s.base, "tools/app", "v1", b"built").await;
    let out = cli(&s, "repo permissions tools/app", None).await;
    assert!(out.stdout.contains("robot:tools+builder\twrite"), "{out:?}");

    assert_eq!(anonymous_pull(&s, "tools/app", "v1").await, 401);
    assert!(
        cli(&s, "repo visibility tools/app public", None)
            .await
            .success
    );
    assert_eq!(anonymous_pull(&s, "tools/app", "v1").await, 200);
    assert!(
        cli(&s, "repo visibility tools/app private", None)
            .await
            .success
    );
    assert_eq!(anonymous_pull(&s, "tools/app", "v1").await, 401);
    assert!(
        !cli(&s, "repo visibility tools/missing public", None)
            .await
            .success
    );
    assert!(
        !cli(&s, "repo visibility tools/app open", None)
            .await
            .success
    );
}

#[tokio::test]
async fn the_cli_refuses_to_give_a_robot_another_namespace() {
    let s = TestServer::start().await;
    for org in ["alpha", "beta"] {
        s.create_org(org).await;
    }
    s.create_repo("beta/app", false).await;
    push_image(&s.client, &s.base, "beta/app", "v1", b"beta").await;
    s.create_team("beta", "ci", "member").await;
    let token = s.create_robot("alpha", "bot").await;
    let out = cli(&s, "repo grant beta/app --user alpha+bot --role read", None).await;
    assert!(!out.success, "granted: {out:?}");
    let out = cli(&s, "team add-member beta ci alpha+bot", None).await;
    assert!(!out.success, "joined: {out:?}");
    let bot = authed_client("alpha+bot", &token);
    assert_eq!(
        status_of(bot.get(s.url("/v2/beta/app/manifests/v1"))).await,
        403
    );
}
