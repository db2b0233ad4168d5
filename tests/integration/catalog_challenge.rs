//! The catalog asks anonymous callers to authenticate (clients such as `oras repo ls` send
//! credentials only after a challenge), and a 403 on /v2 says what is missing to callers who
//! may know it, and nothing to the others.

use crate::common;

use berth::config::Settings;
use common::*;
use serde_json::Value;

const ORG: &str = "userorg";

async fn errors(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.expect("an OCI error body");
    (status, body["errors"][0].clone())
}

#[tokio::test]
async fn an_anonymous_catalog_is_challenged_and_the_token_flow_lists_what_the_user_reads() {
    let s = TestServer::start().await;
    s.create_org(ORG).await;
    s.create_user("carol").await;
    s.create_repo("userorg/private", false).await;
    s.create_repo("userorg/open", true).await;
    s.create_repo("userorg/hidden", false).await;
    s.grant("userorg/private", "carol", "read").await;

    let anonymous = reqwest::Client::new();
    let r = anonymous.get(s.url("/v2/_catalog")).send().await.unwrap();
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let (status, error) = errors(r).await;
    assert_eq!(status, 401);
    assert_eq!(error["code"], "UNAUTHORIZED");
    assert!(
        challenge.starts_with("Bearer realm=")
            && challenge.contains(r#"scope="registry:catalog:*""#),
        "{challenge}"
    );

    // What a client does with the challenge: a token for the scope it names, then the retry.
    let realm = challenge.split('"').nth(1).unwrap();
    let service = challenge
        .split("service=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let token: Value = anonymous
        .get(realm)
        .query(&[("service", service), ("scope", "registry:catalog:*")])
        .basic_auth("carol", Some(password_of("carol")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = anonymous
        .get(s.url("/v2/_catalog"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap();
    assert_eq!(
        listed["repositories"],
        serde_json::json!(["userorg/open", "userorg/private"]),
        "carol sees what she may pull, not userorg/hidden"
    );

    // An anonymous token is no way around the challenge.
    let token: Value = anonymous
        .get(realm)
        .query(&[("service", service), ("scope", "registry:catalog:*")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = anonymous
        .get(s.url("/v2/_catalog"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let carol = authed_client("carol", &password_of("carol"));
    assert_eq!(
        catalog(&carol, &s.base).await,
        ["userorg/open", "userorg/private"]
    );
}

#[tokio::test]
async fn feature_public_catalog_lists_public_repositories_to_anonymous_callers() {
    let mut settings = Settings::default();
    settings.auth.public_catalog = true;
    let s = TestServer::start_with(settings).await;
    s.create_org(ORG).await;
    s.create_repo("userorg/open", true).await;
    s.create_repo("userorg/hidden", false).await;
    assert_eq!(
        catalog(&reqwest::Client::new(), &s.base).await,
        ["userorg/open"]
    );
}

async fn start_push(client: &reqwest::Client, s: &TestServer, repo: &str) -> reqwest::Response {
    client
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refused_push_says_what_is_missing_to_those_who_may_know() {
    let s = TestServer::start().await;
    s.create_org(ORG).await;
    s.create_org("secretorg").await;
    s.create_repo("secretorg/app", false).await;
    s.create_repo("userorg/app", false).await;
    let robot_token = s.create_robot(ORG, "ci").await;
    s.create_user("member").await;
    s.create_user("reader").await;
    s.create_user("stranger").await;
    s.create_team(ORG, "readers", "member").await;
    s.add_team_member(ORG, "readers", "member").await;
    s.grant("userorg/app", "reader", "read").await;

    let robot = authed_client("userorg+ci", &robot_token);
    let (status, error) = errors(start_push(&robot, &s, "userorg/new").await).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("DENIED")));
    let expected = "robot userorg+ci may not create repositories in userorg: add it to a team with the creator role";
    assert!(
        error["message"].as_str().unwrap().ends_with(expected),
        "{error}"
    );
    assert_eq!(error["detail"], expected);

    let member = authed_client("member", &password_of("member"));
    let (status, error) = errors(start_push(&member, &s, "userorg/new").await).await;
    assert_eq!(status, 403);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("user member may not create repositories in userorg"),
        "{error}"
    );

    let reader = authed_client("reader", &password_of("reader"));
    let (status, error) = errors(start_push(&reader, &s, "userorg/app").await).await;
    assert_eq!(status, 403);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("user reader lacks write access to userorg/app"),
        "{error}"
    );

    // Nothing to a caller who may not learn what exists in another organization.
    let stranger = authed_client("stranger", &password_of("stranger"));
    for repo in ["secretorg/app", "secretorg/new", "nosuchorg/new"] {
        let (status, error) = errors(start_push(&stranger, &s, repo).await).await;
        assert_eq!(status, 403, "{repo}");
        assert_eq!(
            error["message"], "requested access to the resource is denied",
            "{repo}: {error}"
        );
        assert!(error["detail"].is_null(), "{repo}: {error}");
    }
}
