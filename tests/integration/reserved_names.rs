//! Names listed in `SUPER_USERS` that no account has yet: whoever took such a name would be a
//! superuser, so nobody but a superuser may give it out, and berth warns about them at start
//! and on every config reload.

use crate::common;

use berth::config::Settings;
use common::*;
use serde_json::json;

fn register(s: &TestServer, name: &str) -> impl std::future::Future<Output = ApiReply> {
    let url = s.url("/api/v1/user/");
    let body = json!({"username": name, "password": "long-enough-password"});
    async move { api_call(&reqwest::Client::new(), "POST", &url, Some(body)).await }
}

#[tokio::test]
async fn names_in_super_users_are_given_out_only_by_a_superuser() {
    let mut settings = Settings {
        user_creation: true,
        ..Settings::default()
    };
    settings.auth.super_users = vec!["admin".into(), "ops".into(), "acme+root".into()];
    let s = TestServer::start_with(settings).await;
    s.create_user("dev").await;

    // Registering the free superuser name answers exactly like a taken name.
    let reserved = register(&s, "ops").await;
    let taken = register(&s, "dev").await;
    assert_eq!(reserved.status, 409, "{reserved:?}");
    let reserved_body = reserved.body.to_string().replace("ops", "dev");
    assert_eq!(reserved_body, taken.body.to_string());
    let r = token_request(&s.base, Some(("ops", "long-enough-password")), &[]).await;
    assert_eq!(r.status(), 401, "no account ops was made");
    assert_eq!(register(&s, "newcomer").await.status, 201);

    // Nor may a user create an organization, or an organization admin a robot, of that name.
    let carl = s.create_user("carl").await;
    let org = |name: &str| Some(json!({ "name": name }));
    let url = s.url("/api/v1/organization/");
    let r = api_call(&carl, "POST", &url, org("ops")).await;
    let r2 = api_call(&carl, "POST", &url, org("dev")).await;
    assert_eq!((r.status, r2.status), (409, 409), "{r:?}");
    assert_eq!(
        r.body.to_string().replace("ops", "dev"),
        r2.body.to_string()
    );
    assert_eq!(api_call(&carl, "POST", &url, org("acme")).await.status, 201);
    let robot = s.url("/api/v1/organization/acme/robots/root");
    let r = api_call(&carl, "PUT", &robot, None).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(
        s.api("PUT", "/api/v1/organization/acme/robots/root", None)
            .await
            .status,
        409
    );

    // A superuser's explicit act does give it out.
    let body = json!({"username": "ops", "password": "long-enough-password"});
    let r = s.api("POST", "/api/v1/superuser/users/", Some(body)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let ops = authed_client("ops", "long-enough-password");
    let r = api_call(&ops, "GET", &s.url("/api/v1/user/"), None).await;
    assert_eq!(r.body["super_user"], json!(true), "{r:?}");
}

/// Writes `yaml` (plus the suite's storage keys under S3) to the config file berth watches.
fn write_config(path: &std::path::Path, data_dir: &std::path::Path, yaml: &str) {
    let storage = test_config_file_for(data_dir)
        .map(|p| std::fs::read_to_string(p).expect("storage config"))
        .unwrap_or_default();
    let staged = path.with_extension("new");
    std::fs::write(&staged, format!("{storage}\n{yaml}")).expect("write config");
    std::fs::rename(&staged, path).expect("replace config");
}

#[tokio::test]
async fn super_users_without_an_account_are_warned_about() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let config = dir.path().join("config.yaml");
    write_config(&config, &data, "SUPER_USERS: [admin, ops]\n");
    let p = ProcessServer::spawn_with_config(&data, Some(config.clone())).await;
    let within = std::time::Duration::from_secs(20);
    assert!(
        p.log.wait_for("SUPER_USERS names \"ops\"", 1, within).await,
        "a warning at start"
    );
    // `admin`, created at the first start, exists.
    assert_eq!(p.log.count("SUPER_USERS names \"admin\""), 0);
    write_config(&config, &data, "SUPER_USERS: [admin, ops, infra]\n");
    assert!(
        p.log
            .wait_for("SUPER_USERS names \"infra\"", 1, within)
            .await,
        "a warning on reload"
    );
}
