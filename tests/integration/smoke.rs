use crate::common;

use common::*;

#[tokio::test]
async fn base_endpoint_answers_with_api_version() {
    let s = TestServer::start().await;
    let r = s.client.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
}

#[tokio::test]
async fn push_and_pull_an_image() {
    let s = TestServer::start().await;
    let digest = push_image(&s.client, &s.base, "a/b", "v1", b"layer bytes").await;
    let r = s
        .client
        .get(s.url("/v2/a/b/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
}
