//! Logs an operator can use: one line per request with its id (also sent back as
//! `X-Request-Id`), route, repository, status, account, client and, for a failure, why; no
//! escape sequences when the output is not a terminal; one JSON object per line with
//! `LOG_FORMAT: json`.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(10);

/// Sends `request`; its status and request id.
async fn send(request: reqwest::RequestBuilder) -> (u16, String) {
    let r = request.send().await.expect("request");
    let id = r
        .headers()
        .get("x-request-id")
        .expect("every response carries its request id")
        .to_str()
        .unwrap()
        .to_string();
    (r.status().as_u16(), id)
}

/// The one log line of request `id`.
async fn line_of(berth: &ProcessServer, id: &str) -> String {
    assert!(berth.log.wait_for(id, 1, WITHIN).await, "no line for {id}");
    let lines: Vec<String> = berth
        .log
        .lines()
        .into_iter()
        .filter(|l| l.contains(id))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    lines.into_iter().next().unwrap()
}

#[tokio::test]
async fn every_request_has_one_line_with_its_id_and_no_escape_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let berth = ProcessServer::spawn(dir.path()).await;
    let url = |path: &str| format!("{}{path}", berth.base);
    let anonymous = reqwest::Client::new();

    let (status, id) = send(anonymous.get(url("/v2/"))).await;
    assert_eq!(status, 401);
    let line = line_of(&berth, &id).await;
    for part in [
        "method=GET",
        "route=/v2/ ",
        "status=401",
        "account=anonymous",
        "client=127.0.0.1",
        "error=\"UNAUTHORIZED",
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }

    let (status, id) = send(berth.client.get(url("/v2/logs/app/manifests/latest"))).await;
    assert_eq!(status, 404);
    let line = line_of(&berth, &id).await;
    for part in [
        "route=/v2/{name}/manifests/{reference}",
        "repository=logs/app",
        "status=404",
        "account=admin",
        "error=\"MANIFEST_UNKNOWN",
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }

    let (status, id) = send(berth.client.get(url("/api/v1/user/"))).await;
    assert_eq!(status, 200);
    let line = line_of(&berth, &id).await;
    assert!(
        line.contains("account=admin") && line.contains("status=200"),
        "{line}"
    );
    assert!(!line.contains("error="), "{line}");

    // The dashboard names its signed-out viewer too.
    let (status, id) = send(anonymous.get(url("/repository/"))).await;
    assert_eq!(status, 200);
    let line = line_of(&berth, &id).await;
    assert!(
        line.contains("route=/repository/ ") && line.contains("account=anonymous"),
        "{line}"
    );

    // A proxy's id is kept when it is a plain token, replaced when it is not.
    let (_, id) = send(
        anonymous
            .get(url("/health"))
            .header("x-request-id", "lb-42.a_b"),
    )
    .await;
    assert_eq!(id, "lb-42.a_b");
    line_of(&berth, "request_id=lb-42.a_b ").await;
    let (_, id) = send(
        anonymous
            .get(url("/health"))
            .header("x-request-id", "forged line\tstatus=200"),
    )
    .await;
    assert!(!id.contains(' ') && !id.contains('\t'), "{id}");

    for line in berth.log.lines() {
        assert!(!line.contains('\u{1b}'), "an escape sequence in {line:?}");
    }
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let storage = test_storage_for(dir.path())
        .map(|s| storage_config_yaml(&s))
        .unwrap_or_default();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("{storage}LOG_FORMAT: json\n")).unwrap();
    let berth = ProcessServer::spawn_with_config(dir.path(), Some(config)).await;
    let (status, id) = send(berth.client.get(format!("{}/v2/_catalog", berth.base))).await;
    assert_eq!(status, 200);
    line_of(&berth, &id).await;
    let lines = berth.log.lines();
    assert!(lines.len() >= 3, "{lines:#?}");
    let mut requests = Vec::new();
    for line in &lines {
        let object: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            object["timestamp"].is_string() && object["level"].is_string(),
            "{line}"
        );
        if object["request_id"] == id.as_str() {
            requests.push(object);
        }
    }
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request["target"], "berth::request");
    assert_eq!(request["route"], "/v2/_catalog");
    assert_eq!(request["status"], 200);
    assert_eq!(request["account"], "admin");
}
