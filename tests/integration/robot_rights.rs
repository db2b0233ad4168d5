//! Robots get content rights only: whatever team they are in and whatever role they are granted,
//! they pull, push and delete content, and administer nothing (robots, teams, members,
//! permissions, repository settings, users), so a leaked CI token is not an organization
//! takeover.

use crate::common;

use berth::config::Settings;
use common::*;
use serde_json::{json, Value};

/// Organization `acme` with private `acme/app` (tag v1), team `admins` (role admin) holding
/// robot `acme+ci`, which also has an admin grant on `acme/app`, a second robot `acme+other`,
/// and user `carol`. Returns the server, `acme+ci`'s token and `acme+other`'s.
async fn acme() -> (TestServer, String, String) {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    s.create_repo("acme/app", false).await;
    push_image(&s.client, &s.base, "acme/app", "v1", b"app layer").await;
    s.create_team("acme", "admins", "admin").await;
    let ci = s.create_robot("acme", "ci").await;
    let other = s.create_robot("acme", "other").await;
    s.add_team_member("acme", "admins", "acme+ci").await;
    s.grant("acme/app", "acme+ci", "admin").await;
    s.create_user("carol").await;
    (s, ci, other)
}

#[tokio::test]
async fn a_robot_in_an_admin_team_handles_content() {
    let (s, ci, _) = acme().await;
    let bot = authed_client("acme+ci", &ci);
    let manifest = |r: &str| s.url(&format!("/v2/acme/app/manifests/{r}"));
    // Push, pull and delete, with Basic credentials and through the token flow.
    let v2 = push_image(&bot, &s.base, "acme/app", "v2", b"bot layer").await;
    assert_eq!(status_of(bot.get(manifest("v1"))).await, 200);
    assert_eq!(status_of(bot.delete(manifest(&v2))).await, 202);
    let scope = "repository:acme/app:pull,push,delete";
    let token = registry_token(&s.base, Some(("acme+ci", &ci)), &[scope]).await;
    assert_eq!(granted_actions(&token, "acme/app"), "pull,push,delete");
    // A push creates a repository where the admin team may create.
    push_image(&bot, &s.base, "acme/fresh", "v1", b"fresh").await;
    // Tags through the API are content too.
    let r = api_call(&bot, "GET", &s.url("/api/v1/repository/acme/app"), None).await;
    assert_eq!((r.status, &r.body["can_write"]), (200, &json!(true)));
    assert_eq!(r.body["can_admin"], json!(false), "{r:?}");
    let tag = s.url("/api/v1/repository/acme/app/tag/v1");
    assert_eq!(api_call(&bot, "DELETE", &tag, None).await.status, 204);
}

#[tokio::test]
async fn a_robot_in_an_admin_team_administers_nothing() {
    let (s, ci, other) = acme().await;
    let bot = authed_client("acme+ci", &ci);
    let public = json!({"visibility": "public"});
    #[rustfmt::skip]
    let attempts: Vec<(&str, &str, Option<Value>)> = vec![
        ("PUT", "/organization/acme/robots/evil", None),
        ("GET", "/organization/acme/robots", None),
        ("GET", "/organization/acme/robots/other", None),
        ("POST", "/organization/acme/robots/other/regenerate", None),
        ("DELETE", "/organization/acme/robots/other", None),
        ("PUT", "/organization/acme/team/admins/members/carol", None),
        ("DELETE", "/organization/acme/team/admins/members/acme+ci", None),
        ("GET", "/organization/acme/team/admins/members", None),
        ("PUT", "/organization/acme/team/admins", Some(json!({"role": "member"}))),
        ("PUT", "/organization/acme/team/backdoor", Some(json!({"role": "admin"}))),
        ("DELETE", "/organization/acme/team/admins", None),
        ("GET", "/organization/acme/members", None),
        ("DELETE", "/organization/acme", None),
        ("POST", "/repository/acme/app/changevisibility", Some(public.clone())),
        ("PUT", "/repository/acme/app", Some(json!({"description": "owned"}))),
        ("GET", "/repository/acme/app/permissions/user/", None),
        ("PUT", "/repository/acme/app/permissions/user/carol", Some(json!({"role": "admin"}))),
        ("DELETE", "/repository/acme/app/permissions/user/acme+ci", None),
        ("DELETE", "/repository/acme/app", None),
        ("POST", "/repository", Some(json!({"namespace": "acme", "repository": "api", "visibility": "public"}))),
        ("GET", "/superuser/users/", None),
        ("POST", "/superuser/users/", Some(json!({"username": "mallory", "password": "long-enough"}))),
    ];
    for (method, path, body) in attempts {
        let r = api_call(&bot, method, &s.url(&format!("/api/v1{path}")), body).await;
        assert_eq!(r.status, 403, "{method} {path}: {r:?}");
    }
    // Nothing changed: the robots, their tokens, the team, the repository and its grants.
    let r = s.api("GET", "/api/v1/organization/acme/robots", None).await;
    let names: Vec<&str> = r.body["robots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme+ci", "acme+other"]);
    let other = authed_client("acme+other", &other);
    assert_eq!(status_of(other.get(s.url("/v2/"))).await, 200);
    let r = s
        .api("GET", "/api/v1/organization/acme/team/admins/members", None)
        .await;
    assert_eq!(r.body["members"].as_array().unwrap().len(), 1, "{r:?}");
    let r = s.api("GET", "/api/v1/repository/acme/app", None).await;
    assert_eq!(r.body["is_public"], json!(false));
    let r = s
        .api("GET", "/api/v1/repository/acme/app/permissions/user/", None)
        .await;
    assert_eq!(r.body["permissions"].as_object().unwrap().len(), 1, "{r:?}");
    assert_eq!(
        s.api("GET", "/api/v1/repository", None).await.body["repositories"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_robot_named_a_superuser_still_only_handles_content() {
    let mut settings = Settings::default();
    settings.auth.super_users = vec!["admin".into(), "acme+root".into()];
    let s = TestServer::start_with(settings).await;
    s.create_org("acme").await;
    s.create_org("other").await;
    s.create_repo("other/app", false).await;
    // Only the CLI (an administrator's explicit act) makes a robot of a SUPER_USERS name.
    let out = berth_cli(s.data_dir(), &["robot", "create", "acme+root"], None).await;
    assert!(out.success, "{out:?}");
    let root = authed_client("acme+root", out.stdout.trim());
    push_image(&root, &s.base, "other/app", "v1", b"root layer").await;
    let r = api_call(&root, "GET", &s.url("/api/v1/user/"), None).await;
    assert_eq!(r.body["super_user"], json!(false), "{r:?}");
    for (method, path) in [
        ("GET", "/api/v1/superuser/users/"),
        ("PUT", "/api/v1/organization/other/robots/evil"),
        ("DELETE", "/api/v1/repository/other/app"),
    ] {
        let r = api_call(&root, method, &s.url(path), None).await;
        assert_eq!(r.status, 403, "{method} {path}: {r:?}");
    }
}
