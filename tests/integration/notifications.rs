//! Repository notifications (Quay's API): created, listed, read and deleted through
//! `/api/v1/repository/<repo>/notification/`, and delivered by berth's worker to a real HTTP
//! receiver the test starts on 127.0.0.1 (allowed by `WEBHOOK_ALLOW_PRIVATE_TARGETS`): after a
//! push and a tag deletion, on a test request, in Slack's shape, after retries, after a
//! `kill -9` between the push and the delivery, and once only with two replicas. Every wait
//! polls a condition with a deadline.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Guard against a hang, never a way to wait: every wait below ends on an event.
const DEADLINE: Duration = Duration::from_secs(60);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: axum::http::HeaderMap,
    body: Value,
}

/// A webhook receiver on 127.0.0.1 recording every request; it answers the statuses of
/// `answers` in turn, then 200.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<Vec<u16>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Receiver {
    /// Starts serving on an already bound socket.
    fn serve(&self, listener: tokio::net::TcpListener) {
        let me = self.clone();
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    me.got.lock().unwrap().push(Received { headers, body });
                    me.changed.notify_waiters();
                    let mut answers = me.answers.lock().unwrap();
                    let status = if answers.is_empty() {
                        200
                    } else {
                        answers.remove(0)
                    };
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            },
        );
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
    }

    async fn start() -> (Receiver, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Receiver::default();
        receiver.serve(listener);
        (receiver, url)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (or the deadline passed); what arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let changed = self.changed.notified();
            if self.received().len() >= n {
                return self.received();
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let got = self.received();
                assert!(got.len() >= n, "expected {n} deliveries, got {got:?}");
                return got;
            }
        }
    }
}

/// Settings for in-process servers: private targets allowed, quick polls and retries.
fn quick_settings() -> berth::config::Settings {
    let mut settings = berth::config::Settings::default();
    let n = &mut settings.notifications;
    n.allow_private_targets = true;
    n.poll_interval = Duration::from_millis(50);
    n.retry_base_delay = Duration::from_millis(100);
    n.retry_max_delay = Duration::from_millis(300);
    n.max_attempts = 4;
    n.timeout = Duration::from_secs(2);
    settings
}

/// The same as config-file text, for child processes.
const QUICK_CONFIG: &str =
    "WEBHOOK_ALLOW_PRIVATE_TARGETS: true\nNOTIFICATION_POLL_INTERVAL_MS: 50\n\
    NOTIFICATION_RETRY_BASE_DELAY_MS: 100\nNOTIFICATION_RETRY_MAX_DELAY_MS: 300\n\
    NOTIFICATION_MAX_ATTEMPTS: 1000\nNOTIFICATION_TIMEOUT_SECONDS: 2\n";

fn notifications_path(repo: &str) -> String {
    format!("/api/v1/repository/{repo}/notification/")
}

/// Creates a notification and returns its uuid.
async fn create(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    event: &str,
    method: &str,
    config: Value,
) -> String {
    let r = api_call(
        client,
        "POST",
        &format!("{base}{}", notifications_path(repo)),
        Some(json!({"event": event, "method": method, "config": config, "eventConfig": {}, "title": format!("{event} hook")})),
    )
    .await;
    assert_eq!(r.status, 201, "create: {}", r.body);
    r.body["uuid"].as_str().expect("uuid").to_string()
}

/// Polls a notification until `done` holds for it; returns it.
async fn wait_for_notification(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    uuid: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let url = format!("{base}{}{uuid}", notifications_path(repo));
    loop {
        let r = api_call(client, "GET", &url, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if done(&r.body) {
            return r.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "notification never reached the expected state: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_api_has_quays_shapes_and_refuses_bad_input() {
    let server = TestServer::start_with(quick_settings()).await;
    let repo = "notes/app";
    push_image(&server.client, &server.base, repo, "v0", b"layer").await;
    let path = notifications_path(repo);

    let r = server
        .api(
            "POST",
            &path,
            Some(json!({
                "event": "repo_push", "method": "webhook", "title": "CI",
                "config": {"url": "http://127.0.0.1:9/hook", "headers": {"X-Token": "s3cret"}},
                "eventConfig": {},
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let uuid = r.body["uuid"].as_str().unwrap().to_string();
    assert_eq!(r.body["event"], "repo_push");
    assert_eq!(r.body["method"], "webhook");
    assert_eq!(r.body["title"], "CI");
    assert_eq!(r.body["config"]["url"], "http://127.0.0.1:9/hook");
    assert_eq!(r.body["event_config"], json!({}));
    assert_eq!(r.body["number_of_failures"], 0);
    assert!(r.body["last_delivery"].is_null());

    let list = server.api("GET", &path, None).await;
    assert_eq!(list.status, 200);
    let items = list.body["notifications"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["uuid"], uuid);
    let one = server.api("GET", &format!("{path}{uuid}"), None).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["uuid"], uuid);

    for (body, why) in [
        (
            json!({"event": "repo_pull", "method": "webhook", "config": {"url": "http://127.0.0.1:9/"}, "eventConfig": {}}),
            "unknown event",
        ),
        (
            json!({"event": "repo_push", "method": "email", "config": {"url": "http://127.0.0.1:9/"}, "eventConfig": {}}),
            "unknown method",
        ),
        (
            json!({"event": "repo_push", "method": "webhook", "config": {"url": "ftp://127.0.0.1/"}, "eventConfig": {}}),
            "scheme",
        ),
        (
            json!({"event": "repo_push", "method": "webhook", "config": {"url": "not a url"}, "eventConfig": {}}),
            "bad URL",
        ),
        (
            json!({"event": "repo_push", "method": "webhook", "config": {}, "eventConfig": {}}),
            "no URL",
        ),
        (
            json!({"event": "repo_push", "method": "webhook", "config": {"url": "http://127.0.0.1:9/"}}),
            "no eventConfig",
        ),
        (
            json!({"event": "repo_push", "method": "webhook", "config": "http://x/", "eventConfig": {}}),
            "config not an object",
        ),
        (
            json!({"event": "repo_push", "method": "webhook", "config": {"url": "http://127.0.0.1:9/", "headers": {"Host": "x"}}, "eventConfig": {}}),
            "reserved header",
        ),
        (
            json!({"event": "repo_push", "method": "webhook", "config": {"url": "http://127.0.0.1:9/", "headers": {"X-A": 1}}, "eventConfig": {}}),
            "header value",
        ),
        (
            json!({"event": "repo_push", "method": "slack", "config": {"url": "http://127.0.0.1:9/", "headers": {}}, "eventConfig": {}}),
            "headers on slack",
        ),
        (json!([1, 2]), "not an object"),
    ] {
        let r = server.api("POST", &path, Some(body)).await;
        assert_eq!(r.status, 400, "{why}: {}", r.body);
        assert_eq!(r.body["error_type"], "invalid_request", "{why}");
    }
    let r = server
        .api("POST", &notifications_path("notes/missing"), Some(json!({"event": "repo_push", "method": "webhook", "config": {"url": "http://127.0.0.1:9/"}, "eventConfig": {}})))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    let r = server.api("DELETE", &format!("{path}{uuid}"), None).await;
    assert_eq!(r.status, 204);
    let r = server.api("DELETE", &format!("{path}{uuid}"), None).await;
    assert_eq!(r.status, 400, "a second delete is Quay's 400");
    let r = server.api("GET", &format!("{path}{uuid}"), None).await;
    assert_eq!(r.status, 404);
    let r = server
        .api("POST", &format!("{path}{uuid}/test"), None)
        .await;
    assert_eq!(r.status, 400);
    let r = server.api("GET", &path, None).await;
    assert_eq!(r.body["notifications"], json!([]));
}

#[tokio::test]
async fn pushes_and_tag_deletions_are_delivered() {
    let server = TestServer::start_with(quick_settings()).await;
    let (receiver, url) = Receiver::start().await;
    let repo = "notes/app";
    push_image(&server.client, &server.base, repo, "v0", b"first").await;
    let push = create(
        &server.client,
        &server.base,
        repo,
        "repo_push",
        "webhook",
        json!({"url": url, "headers": {"X-Hook-Token": "hook-secret"}}),
    )
    .await;
    let deleted = create(
        &server.client,
        &server.base,
        repo,
        "tag_deleted",
        "webhook",
        json!({"url": url}),
    )
    .await;

    let started = std::time::Instant::now();
    push_image(&server.client, &server.base, repo, "v1", b"second").await;
    let got = receiver.wait_for(1).await;
    eprintln!("repo_push delivered {:?} after the push", started.elapsed());
    let body = &got[0].body;
    assert_eq!(body["repository"], repo);
    assert_eq!(body["namespace"], "notes");
    assert_eq!(body["name"], "app");
    assert_eq!(body["updated_tags"], json!(["v1"]));
    assert_eq!(body["docker_url"], "localhost/notes/app");
    assert_eq!(body["homepage"], "http://localhost/repository/notes/app");
    assert_eq!(got[0].headers["x-hook-token"], "hook-secret");
    assert_eq!(got[0].headers["content-type"], "application/json");

    let note = wait_for_notification(&server.client, &server.base, repo, &push, |n| {
        n["last_delivery"]["delivered"] == true
    })
    .await;
    assert_eq!(note["last_delivery"]["status_code"], 200);
    assert!(note["last_delivered_at"].as_f64().unwrap() > 0.0);

    let r = server
        .api("DELETE", &format!("/api/v1/repository/{repo}/tag/v1"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = receiver.wait_for(2).await;
    assert_eq!(
        got[1].body["deleted_tags"],
        json!(["v1"]),
        "{:?}",
        got[1].body
    );
    assert!(got[1].headers.get("x-hook-token").is_none());
    wait_for_notification(&server.client, &server.base, repo, &deleted, |n| {
        n["last_delivery"]["delivered"] == true
    })
    .await;
    // Each event went to its own notification only.
    assert_eq!(receiver.received().len(), 2);

    // Creating them is in the repository's usage logs, by the admin who did it.
    server.state().usage.flush().await;
    let r = server
        .api(
            "GET",
            &format!("/api/v1/repository/{repo}/logs?kind=add_repo_notification"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let logs = r.body["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2, "{}", r.body);
    assert!(logs.iter().all(|l| l["performer"]["name"] == "admin"
        && (l["metadata"]["notification_id"] == push.as_str()
            || l["metadata"]["notification_id"] == deleted.as_str())));
}

#[tokio::test]
async fn test_requests_deliver_and_slack_gets_a_slack_message() {
    let server = TestServer::start_with(quick_settings()).await;
    let (receiver, url) = Receiver::start().await;
    let repo = "notes/chat";
    push_image(&server.client, &server.base, repo, "v0", b"chat").await;
    let slack = create(
        &server.client,
        &server.base,
        repo,
        "repo_push",
        "slack",
        json!({"url": url}),
    )
    .await;
    let r = server
        .api(
            "POST",
            &format!("{}{slack}/test", notifications_path(repo)),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({}));
    let got = receiver.wait_for(1).await;
    let body = &got[0].body;
    let text = body["text"].as_str().expect("slack text");
    assert!(text.contains("Test notification"), "{text}");
    assert!(
        text.contains("<http://localhost/repository/notes/chat|notes/chat>"),
        "{text}"
    );
    let attachment = &body["attachments"][0];
    assert_eq!(attachment["title"], "repo_push hook");
    assert_eq!(
        attachment["title_link"],
        "http://localhost/repository/notes/chat"
    );
    assert_eq!(attachment["mrkdwn_in"], json!(["text"]));

    push_image(&server.client, &server.base, repo, "v2", b"chat 2").await;
    let got = receiver.wait_for(2).await;
    let text = got[1].body["text"].as_str().unwrap();
    assert!(text.contains("updated with tags: v2"), "{text}");
}

#[tokio::test]
async fn failed_deliveries_are_retried_then_given_up() {
    let server = TestServer::start_with(quick_settings()).await;
    let (receiver, url) = Receiver::start().await;
    let repo = "notes/retry";
    push_image(&server.client, &server.base, repo, "v0", b"retry").await;
    let uuid = create(
        &server.client,
        &server.base,
        repo,
        "repo_push",
        "webhook",
        json!({"url": url}),
    )
    .await;

    // Down twice, then up: delivered on the third attempt.
    receiver.answers.lock().unwrap().extend([503, 500]);
    push_image(&server.client, &server.base, repo, "r1", b"retry 1").await;
    let got = receiver.wait_for(3).await;
    assert!(got.iter().all(|g| g.body["updated_tags"] == json!(["r1"])));
    let note = wait_for_notification(&server.client, &server.base, repo, &uuid, |n| {
        n["last_delivery"]["delivered"] == true
    })
    .await;
    assert_eq!(note["number_of_failures"], 0);

    // Down for all four attempts: given up, counted in number_of_failures.
    receiver
        .answers
        .lock()
        .unwrap()
        .extend([500, 500, 500, 500]);
    push_image(&server.client, &server.base, repo, "r2", b"retry 2").await;
    let note = wait_for_notification(&server.client, &server.base, repo, &uuid, |n| {
        n["number_of_failures"] == 1
    })
    .await;
    assert_eq!(note["last_delivery"]["delivered"], false);
    assert_eq!(note["last_delivery"]["status_code"], 500);
    assert_eq!(receiver.received().len(), 3 + 4);

    // Every attempt is counted by its outcome (the server's admin may read /metrics).
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    for (outcome, count) in [("success", 1), ("retry", 5), ("failure", 1)] {
        let series = format!("berth_webhook_deliveries_total{{outcome=\"{outcome}\"}} {count}");
        assert!(
            metrics.lines().any(|l| l == series),
            "no `{series}` in\n{metrics}"
        );
    }

    // Quay's reset.
    let r = server
        .api("POST", &format!("{}{uuid}", notifications_path(repo)), None)
        .await;
    assert_eq!(r.status, 204);
    let r = server
        .api("GET", &format!("{}{uuid}", notifications_path(repo)), None)
        .await;
    assert_eq!(r.body["number_of_failures"], 0);
}

#[tokio::test]
async fn internal_targets_are_refused_unless_allowed() {
    let mut settings = quick_settings();
    settings.notifications.allow_private_targets = false;
    let server = TestServer::start_with(settings.clone()).await;
    let (receiver, url) = Receiver::start().await;
    let repo = "notes/ssrf";
    push_image(&server.client, &server.base, repo, "v0", b"ssrf").await;
    for target in [
        url.as_str(),
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://10.0.0.1/",
        "http://0.0.0.0:9/",
    ] {
        let r = server
            .api("POST", &notifications_path(repo), Some(json!({"event": "repo_push", "method": "webhook", "config": {"url": target}, "eventConfig": {}})))
            .await;
        assert_eq!(r.status, 400, "{target}: {}", r.body);
        assert!(
            r.body["error_message"]
                .as_str()
                .unwrap()
                .contains("WEBHOOK_ALLOW_PRIVATE_TARGETS"),
            "{}",
            r.body
        );
    }

    // Created while allowed, then the key is turned off: the delivery is refused when sent.
    let mut allowed = settings.clone();
    allowed.notifications.allow_private_targets = true;
    server.state().apply_settings(allowed);
    let uuid = create(
        &server.client,
        &server.base,
        repo,
        "repo_push",
        "webhook",
        json!({"url": url}),
    )
    .await;
    server.state().apply_settings(settings);
    push_image(&server.client, &server.base, repo, "v1", b"ssrf 1").await;
    let note = wait_for_notification(&server.client, &server.base, repo, &uuid, |n| {
        !n["last_delivery"].is_null()
    })
    .await;
    assert_eq!(note["last_delivery"]["delivered"], false);
    assert!(
        note["last_delivery"]["error"]
            .as_str()
            .unwrap()
            .contains("internal"),
        "{note}"
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn only_repository_admins_manage_notifications() {
    let server = TestServer::start_with(quick_settings()).await;
    let repo = "admin/perm";
    push_image(&server.client, &server.base, repo, "v0", b"perm").await;
    server.set_visibility(repo, true).await;
    let writer = server.create_user("writer").await;
    server.grant(repo, "writer", "write").await;
    let uuid = create(
        &server.client,
        &server.base,
        repo,
        "repo_push",
        "webhook",
        json!({"url": "http://127.0.0.1:9/"}),
    )
    .await;
    let path = notifications_path(repo);
    let anonymous = reqwest::Client::new();
    let body = json!({"event": "repo_push", "method": "webhook", "config": {"url": "http://127.0.0.1:9/"}, "eventConfig": {}});
    for (method, p, body) in [
        ("GET", path.clone(), None),
        ("POST", path.clone(), Some(body.clone())),
        ("GET", format!("{path}{uuid}"), None),
        ("DELETE", format!("{path}{uuid}"), None),
        ("POST", format!("{path}{uuid}/test"), None),
        ("POST", format!("{path}{uuid}"), None),
    ] {
        let r = api_call(&writer, method, &server.url(&p), body.clone()).await;
        assert_eq!(r.status, 403, "writer {method} {p}: {}", r.body);
        let r = api_call(&anonymous, method, &server.url(&p), body).await;
        assert_eq!(r.status, 401, "anonymous {method} {p}: {}", r.body);
    }
    let r = server.api("GET", &format!("{path}{uuid}"), None).await;
    assert_eq!(r.status, 200, "the notification is still there");
}

/// A socket bound to a free port of 127.0.0.1 that does not listen yet: connections to it are
/// refused until [`tokio::net::TcpSocket::listen`].
fn reserved_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A config file for child processes: the test storage backend plus [`QUICK_CONFIG`].
fn process_config(dir: &std::path::Path) -> std::path::PathBuf {
    let storage = test_storage_for(dir)
        .map(|s| storage_config_yaml(&s))
        .unwrap_or_default();
    let config = dir.join("config.yaml");
    std::fs::write(&config, format!("{storage}{QUICK_CONFIG}")).unwrap();
    config
}

/// The metadata store the child processes on `dir` use.
async fn store_of(dir: &std::path::Path) -> std::sync::Arc<dyn berth::metadata::Store> {
    let uri = match test_database_for(dir).await {
        Some(uri) => berth::config::DatabaseUri::Postgres(uri),
        None => berth::config::DatabaseUri::Sqlite(dir.join("metadata.db")),
    };
    berth::open_metadata(&uri).await.unwrap()
}

/// Waits until the outbox is empty: nothing left to deliver, claimed or not.
async fn wait_for_empty_outbox(store: &dyn berth::metadata::Store) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.deliveries_due(i64::MAX).await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "deliveries left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_delivery_survives_kill_9_and_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = process_config(dir.path());
    let berth = ProcessServer::spawn_with_config(dir.path(), Some(config.clone())).await;
    let repo = "crash/app";
    push_image(&berth.client, &berth.base, repo, "v0", b"crash").await;
    let (socket, addr) = reserved_port();
    let url = format!("http://{addr}/hook");
    let uuid = create(
        &berth.client,
        &berth.base,
        repo,
        "repo_push",
        "webhook",
        json!({"url": url}),
    )
    .await;

    // Pushed and acknowledged; the receiver is not up, so attempts fail and are retried.
    push_image(&berth.client, &berth.base, repo, "k1", b"crash 1").await;
    let note = wait_for_notification(&berth.client, &berth.base, repo, &uuid, |n| {
        n["last_delivery"]["delivered"] == false
    })
    .await;
    assert!(note["last_delivered_at"].is_null());
    berth.kill9().await;

    // The receiver comes up, berth restarts on the same data and delivers.
    let receiver = Receiver::default();
    receiver.serve(socket.listen(64).unwrap());
    let berth = ProcessServer::spawn_with_config(dir.path(), Some(config)).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].body["updated_tags"], json!(["k1"]));
    wait_for_notification(&berth.client, &berth.base, repo, &uuid, |n| {
        n["last_delivery"]["delivered"] == true
    })
    .await;
    // Delivered is recorded with the row's removal, so nothing can be sent again.
    let store = store_of(dir.path()).await;
    wait_for_empty_outbox(&*store).await;
    assert_eq!(receiver.received().len(), 1, "{:?}", receiver.received());
    drop(berth);
    drop_test_database_for(dir.path());
}

#[tokio::test]
async fn two_replicas_deliver_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = process_config(dir.path());
    let a = ProcessServer::spawn_with_config(dir.path(), Some(config.clone())).await;
    let b = ProcessServer::spawn_with_config(dir.path(), Some(config)).await;
    let (receiver, url) = Receiver::start().await;
    let repo = "replicas/notes";
    push_image(&a.client, &a.base, repo, "v0", b"replica").await;
    create(
        &a.client,
        &a.base,
        repo,
        "repo_push",
        "webhook",
        json!({"url": url}),
    )
    .await;
    create(
        &b.client,
        &b.base,
        repo,
        "repo_push",
        "slack",
        json!({"url": url}),
    )
    .await;
    let pushes = 10;
    for i in 0..pushes {
        let (client, base) = if i % 2 == 0 {
            (&a.client, &a.base)
        } else {
            (&b.client, &b.base)
        };
        push_image(
            client,
            base,
            repo,
            &format!("t{i}"),
            format!("replica {i}").as_bytes(),
        )
        .await;
    }
    receiver.wait_for(2 * pushes).await;
    let store = store_of(dir.path()).await;
    wait_for_empty_outbox(&*store).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2 * pushes, "{got:?}");
    let mut webhook: Vec<String> = got
        .iter()
        .filter_map(|g| g.body["updated_tags"][0].as_str().map(String::from))
        .collect();
    webhook.sort();
    let mut expected: Vec<String> = (0..pushes).map(|i| format!("t{i}")).collect();
    expected.sort();
    assert_eq!(webhook, expected, "each push once through the webhook");
    let slack = got.iter().filter(|g| g.body.get("text").is_some()).count();
    assert_eq!(slack, pushes, "each push once through slack");
    drop((a, b));
    drop_test_database_for(dir.path());
}

#[tokio::test]
async fn the_dashboard_adds_tests_and_deletes_notifications() {
    let server = TestServer::start_with(quick_settings()).await;
    let (receiver, url) = Receiver::start().await;
    let repo = "dash/app";
    push_image(&server.client, &server.base, repo, "v0", b"dash").await;
    let settings = format!("/repository/{repo}?tab=settings");
    let action = format!("/repository/{repo}");
    let mut browser = Browser::signed_in(&server.base, ADMIN_USER, ADMIN_PASSWORD).await;
    let page = browser.get(&settings).await;
    assert!(page.has("No notifications."), "{}", page.body);

    let page = browser
        .submit(
            &settings,
            &action,
            &[
                ("action", "add-notification"),
                ("event", "repo_push"),
                ("method", "webhook"),
                ("url", &url),
                ("title", "Deploy"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let list = server.api("GET", &notifications_path(repo), None).await;
    let uuid = list.body["notifications"][0]["uuid"]
        .as_str()
        .expect("created")
        .to_string();
    let page = browser.get(&settings).await;
    assert!(
        page.has("Added the repo_push notification."),
        "{}",
        page.body
    );
    assert!(page.has(&format!("data-uuid=\"{uuid}\"")));
    assert!(page.has("never attempted"));
    // The target shows as its host only.
    let host = url.trim_start_matches("http://").trim_end_matches("/hook");
    assert!(page.has(host) && !page.has(&url), "{}", page.body);

    // A form without the CSRF token changes nothing.
    let r = browser
        .post(&action, &[("action", "test-notification"), ("uuid", &uuid)])
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.has("the form expired"), "{}", r.body);

    let page = browser
        .submit(
            &settings,
            &action,
            &[("action", "test-notification"), ("uuid", &uuid)],
        )
        .await;
    assert_eq!(page.status, 303);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].body["test"], true);
    assert_eq!(got.len(), 1, "the refused form queued nothing");
    wait_for_notification(&server.client, &server.base, repo, &uuid, |n| {
        n["last_delivery"]["delivered"] == true
    })
    .await;
    let page = browser.get(&settings).await;
    assert!(page.has("delivered"), "{}", page.body);

    // Refused input is a message, not an error page.
    let page = browser
        .submit(
            &settings,
            &action,
            &[
                ("action", "add-notification"),
                ("event", "repo_push"),
                ("method", "webhook"),
                ("url", "ftp://x/"),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    assert!(browser.get(&settings).await.has("http or https"));

    let page = browser
        .submit(
            &settings,
            &action,
            &[("action", "delete-notification"), ("uuid", &uuid)],
        )
        .await;
    assert_eq!(page.status, 303);
    let page = browser.get(&settings).await;
    assert!(page.has("Deleted the notification.") && page.has("No notifications."));
}
