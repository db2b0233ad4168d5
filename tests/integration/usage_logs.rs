//! Usage logs (Quay's audit trail) through Quay's API: a scripted session's pushes, pulls, tag
//! changes, deletions, grants, robots and failed logins come back with the right kinds and
//! performers on every path; paging returns every record once, in order; time filters,
//! permissions, retention, restarts and `ACTION_LOG_AUDIT_PULLS: false` behave.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use berth::config::Settings;
use berth::usage_log::{Event, Performer};
use common::*;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `MM/DD/YYYY` of a time in milliseconds, as Quay's `starttime`/`endtime` take it.
fn quay_day(ms: i64) -> String {
    // Civil-from-days (Howard Hinnant).
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{m:02}/{d:02}/{y:04}")
}

/// Every record of a listing, following `next_page` to the end.
async fn all_logs(client: &reqwest::Client, s: &TestServer, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &next {
            Some(token) => s.url(&format!("{path}{sep}next_page={token}")),
            None => s.url(path),
        };
        let r = api_call(client, "GET", &url, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let page = r.body["logs"].as_array().expect("logs").clone();
        assert!(page.len() <= 20, "a page holds at most 20 records");
        out.extend(page);
        match r.body["next_page"].as_str() {
            Some(token) => next = Some(token.to_string()),
            None => return out,
        }
    }
}

/// `(kind, performer name or "", is_robot)` of each record.
fn kinds_and_performers(logs: &[Value]) -> Vec<(String, String, bool)> {
    logs.iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["performer"]["name"].as_str().unwrap_or("").to_string(),
                l["performer"]["is_robot"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn has(logs: &[Value], kind: &str, performer: &str) -> bool {
    kinds_and_performers(logs)
        .iter()
        .any(|(k, p, _)| k == kind && p == performer)
}

/// Polls `path` until a record of `kind` appears (the writer stores batches about once a
/// second), failing after a deadline.
async fn wait_for_kind(
    client: &reqwest::Client,
    s: &TestServer,
    path: &str,
    kind: &str,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let logs = all_logs(client, s, path).await;
        if logs.iter().any(|l| l["kind"] == kind) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} record in {path} within 15s: {logs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_bad_request(r: &ApiReply, context: &str) {
    assert_eq!(r.status, 400, "{context}: {}", r.body);
    assert_eq!(r.body["status"], 400, "{context}");
    assert!(
        r.body["error_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{context}"
    );
}

#[tokio::test]
async fn a_scripted_session_is_recorded_with_kinds_and_performers() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    let dev = s.create_user("dev").await;
    let robot_token = s.create_robot("acme", "ci").await;
    s.create_repo("acme/app", true).await;
    s.grant("acme/app", "dev", "write").await;
    s.grant("acme/app", "acme+ci", "write").await;
    let robot = authed_client("acme+ci", &robot_token);

    let v1 = push_image(&s.client, &s.base, "acme/app", "v1", b"layer one").await;
    let v2 = push_image(&robot, &s.base, "acme/app", "v2", b"layer two").await;
    // An anonymous pull of the public repository.
    let r = reqwest::Client::new()
        .get(s.url("/v2/acme/app/manifests/v1"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A tag move through the API, a tag deletion through /v2, a permission removed.
    let r = s
        .api(
            "PUT",
            "/api/v1/repository/acme/app/tag/v1",
            Some(json!({ "manifest_digest": v2 })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .client
        .delete(s.url("/v2/acme/app/manifests/v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = s
        .api(
            "DELETE",
            "/api/v1/repository/acme/app/permissions/user/dev",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    // A failed login on /v2 and one on the API.
    let wrong = authed_client("dev", "not-the-password");
    assert_eq!(status_of(wrong.get(s.url("/v2/"))).await, 401);
    assert_eq!(status_of(wrong.get(s.url("/api/v1/user/"))).await, 401);

    // The batch writer stores the records in order, without a flush asked here: once the
    // last one on the repository (the permission removed) is there, the pull is too.
    let repo_logs = wait_for_kind(
        &s.client,
        &s,
        "/api/v1/repository/acme/app/logs",
        "delete_repo_permission",
    )
    .await;
    let seen = kinds_and_performers(&repo_logs);
    assert!(
        seen.contains(&("push_repo".into(), "admin".into(), false)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("push_repo".into(), "acme+ci".into(), true)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("pull_repo".into(), "".into(), false)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("move_tag".into(), "admin".into(), false)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("delete_tag".into(), "admin".into(), false)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("change_repo_permission".into(), "admin".into(), false)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("delete_repo_permission".into(), "admin".into(), false)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("create_repo".into(), "admin".into(), false)),
        "{seen:?}"
    );
    // Quay's shape and details.
    let pull = repo_logs.iter().find(|l| l["kind"] == "pull_repo").unwrap();
    assert!(
        pull.get("performer").is_none(),
        "anonymous has no performer: {pull}"
    );
    assert_eq!(pull["metadata"]["tag"], "v1");
    assert_eq!(pull["metadata"]["repo"], "app");
    assert_eq!(pull["metadata"]["namespace"], "acme");
    assert_eq!(pull["metadata"]["manifest_digest"], v1.as_str());
    assert_eq!(pull["ip"], "127.0.0.1");
    assert_eq!(pull["namespace"]["name"], "acme");
    assert!(
        pull["datetime"].as_str().unwrap().ends_with(" -0000"),
        "{pull}"
    );
    let robot_push = repo_logs
        .iter()
        .find(|l| l["kind"] == "push_repo" && l["performer"]["name"] == "acme+ci")
        .unwrap();
    assert_eq!(robot_push["metadata"]["tag"], "v2");
    assert_eq!(robot_push["metadata"]["manifest_digest"], v2.as_str());
    assert_eq!(robot_push["performer"]["kind"], "user");
    assert!(robot_push["performer"]["avatar"]["hash"].is_string());
    let moved = repo_logs.iter().find(|l| l["kind"] == "move_tag").unwrap();
    assert_eq!(moved["metadata"]["original_manifest_digest"], v1.as_str());
    assert_eq!(moved["metadata"]["manifest_digest"], v2.as_str());
    let grant = repo_logs
        .iter()
        .find(|l| l["kind"] == "change_repo_permission" && l["metadata"]["username"] == "acme+ci")
        .unwrap();
    assert_eq!(grant["metadata"]["role"], "write");
    // Newest first.
    let times: Vec<&str> = repo_logs
        .iter()
        .map(|l| l["datetime"].as_str().unwrap())
        .collect();
    assert_eq!(
        repo_logs.last().unwrap()["kind"],
        "create_repo",
        "{times:?}"
    );

    // The organization's logs hold its robot and the repository's records.
    let org_logs = all_logs(&s.client, &s, "/api/v1/organization/acme/logs").await;
    assert!(
        has(&org_logs, "create_robot", "admin"),
        "{:?}",
        kinds_and_performers(&org_logs)
    );
    assert!(has(&org_logs, "org_create", "admin"));
    assert!(has(&org_logs, "push_repo", "acme+ci"));
    // The user's logs: what happened in their namespace (the failed logins against them).
    s.state().usage.flush().await;
    let dev_logs = all_logs(&dev, &s, "/api/v1/user/logs").await;
    let failures: Vec<&Value> = dev_logs
        .iter()
        .filter(|l| l["kind"] == "login_failure")
        .collect();
    assert_eq!(failures.len(), 2, "{dev_logs:?}");
    assert!(failures.iter().all(|f| f["metadata"]["username"] == "dev"));
    let types: HashSet<&str> = failures
        .iter()
        .map(|f| f["metadata"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, HashSet::from(["v2auth", "quayauth"]));
    assert!(
        !dev_logs.iter().any(|l| l["kind"] == "push_repo"),
        "only dev's own records"
    );
    // The admin's own logs hold what they did.
    let admin_logs = all_logs(&s.client, &s, "/api/v1/user/logs").await;
    assert!(has(&admin_logs, "push_repo", "admin"));
    assert!(!has(&admin_logs, "push_repo", "acme+ci"));
    // The superuser sees everything.
    let everything = all_logs(&s.client, &s, "/api/v1/superuser/logs").await;
    for kind in [
        "push_repo",
        "pull_repo",
        "move_tag",
        "delete_tag",
        "create_robot",
        "login_failure",
        "delete_repo_permission",
    ] {
        assert!(everything.iter().any(|l| l["kind"] == kind), "{kind}");
    }

    // Counts per kind and day.
    let r = s
        .api("GET", "/api/v1/repository/acme/app/aggregatelogs", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pushes = r.body["aggregated"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "push_repo")
        .unwrap()
        .clone();
    assert_eq!(pushes["count"], 2);
    assert!(pushes["datetime"]
        .as_str()
        .unwrap()
        .ends_with("00:00:00 -0000"));
    for path in [
        "/api/v1/organization/acme/aggregatelogs",
        "/api/v1/superuser/aggregatelogs",
    ] {
        let r = s.api("GET", path, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body["aggregated"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "push_repo"));
    }
    let r = api_call(&dev, "GET", &s.url("/api/v1/user/aggregatelogs"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["aggregated"][0]["kind"], "login_failure");
    assert_eq!(r.body["aggregated"][0]["count"], 2);

    // Who may read which: dev may write but not administer the repository.
    s.grant("acme/app", "dev", "write").await;
    for path in [
        "/api/v1/repository/acme/app/logs",
        "/api/v1/repository/acme/app/aggregatelogs",
        "/api/v1/organization/acme/logs",
        "/api/v1/organization/acme/aggregatelogs",
        "/api/v1/superuser/logs",
        "/api/v1/superuser/aggregatelogs",
    ] {
        let r = api_call(&dev, "GET", &s.url(path), None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        let r = api_call(&robot, "GET", &s.url(path), None).await;
        assert_eq!(r.status, 403, "robot on {path}: {}", r.body);
        let r = api_call(&reqwest::Client::new(), "GET", &s.url(path), None).await;
        assert_eq!(r.status, 401, "anonymous on {path}: {}", r.body);
    }
    let r = api_call(
        &reqwest::Client::new(),
        "GET",
        &s.url("/api/v1/user/logs"),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn time_filters_and_bad_parameters() {
    let s = TestServer::start().await;
    let now = now_ms();
    let state = s.state();
    for (days_ago, kind) in [
        (0, "push_repo"),
        (3, "delete_tag"),
        (10, "create_tag"),
        (40, "delete_repo"),
    ] {
        state.usage.record(
            Event::new(kind, Performer::Account("admin".into()), None)
                .namespace("admin")
                .at(now - days_ago * DAY_MS),
        );
    }
    state.usage.flush().await;
    let kinds = |logs: Vec<Value>| -> Vec<String> {
        logs.iter()
            .map(|l| l["kind"].as_str().unwrap().to_string())
            .collect()
    };
    // By default, the week up to now.
    let logs = all_logs(&s.client, &s, "/api/v1/superuser/logs").await;
    assert_eq!(kinds(logs), ["push_repo", "delete_tag"]);
    let since = |d: i64| quay_day(now - d * DAY_MS);
    let logs = all_logs(
        &s.client,
        &s,
        &format!("/api/v1/superuser/logs?starttime={}", since(60)),
    )
    .await;
    assert_eq!(
        kinds(logs),
        ["push_repo", "delete_tag", "create_tag", "delete_repo"]
    );
    // The end day is included; the start day from its first moment.
    let path = format!(
        "/api/v1/user/logs?starttime={}&endtime={}",
        since(10),
        since(3)
    );
    let r = s.api("GET", &path, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        kinds(r.body["logs"].as_array().unwrap().clone()),
        ["delete_tag", "create_tag"]
    );
    assert!(r.body["start_time"]
        .as_str()
        .unwrap()
        .ends_with("00:00:00 -0000"));
    assert!(r.body["end_time"].is_string());
    let path = format!(
        "/api/v1/superuser/aggregatelogs?starttime={}&endtime={}",
        since(45),
        since(5)
    );
    let r = s.api("GET", &path, None).await;
    let aggregated: Vec<String> = r.body["aggregated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        aggregated,
        ["delete_repo", "create_tag"],
        "oldest day first"
    );
    // Berth's kind filter.
    let logs = all_logs(
        &s.client,
        &s,
        &format!(
            "/api/v1/superuser/logs?kind=create_tag&starttime={}",
            since(60)
        ),
    )
    .await;
    assert_eq!(kinds(logs), ["create_tag"]);

    for bad in [
        "starttime=2026-01-01",
        "endtime=13/01/2026",
        "starttime=02/30/2026",
        "starttime=01/02/2026&endtime=01/01/2026",
        "next_page=not-a-token",
        "next_page=%00",
        "kind=%00",
    ] {
        for path in ["/api/v1/superuser/logs", "/api/v1/user/aggregatelogs"] {
            if path.ends_with("aggregatelogs") && bad.starts_with("next_page") {
                continue;
            }
            let r = s.api("GET", &format!("{path}?{bad}"), None).await;
            assert_bad_request(&r, &format!("{path}?{bad}"));
        }
    }
}

#[tokio::test]
async fn paging_returns_every_record_once_in_order() {
    let s = TestServer::start().await;
    s.create_org("big").await;
    s.create_repo("big/app", false).await;
    let repo: oci::RepoName = "big/app".parse().unwrap();
    let state = s.state();
    let now = now_ms();
    const N: i64 = 2_500;
    for i in 0..N {
        // Groups of seven share a millisecond, so the id breaks ties.
        state.usage.record(
            Event::new("pull_repo", Performer::Anonymous, None)
                .repository(&repo)
                .detail("n", i)
                .detail("at", now - 1000 - (i / 7) * 10)
                .at(now - 1000 - (i / 7) * 10),
        );
    }
    state.usage.flush().await;
    assert_eq!(state.usage.dropped(), 0);

    let mut seen = HashSet::new();
    let mut last_at = i64::MAX;
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &next {
            Some(t) => format!("/api/v1/repository/big/app/logs?kind=pull_repo&next_page={t}"),
            None => "/api/v1/repository/big/app/logs?kind=pull_repo".to_string(),
        };
        let r = s.api("GET", &path, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        if pages == 3 {
            // Records arriving while a client pages are newer than its position: they never
            // show up in the pages still to come, nor shift them.
            for k in 0..30 {
                state.usage.record(
                    Event::new("pull_repo", Performer::Anonymous, None)
                        .repository(&repo)
                        .detail("n", -1 - k),
                );
            }
            state.usage.flush().await;
        }
        for l in r.body["logs"].as_array().unwrap() {
            let n = l["metadata"]["n"].as_i64().unwrap();
            let at = l["metadata"]["at"].as_i64().unwrap();
            assert!(n >= 0, "a record newer than the first page appeared later");
            assert!(seen.insert(n), "record {n} returned twice");
            assert!(at <= last_at, "not newest first at record {n}");
            last_at = at;
        }
        match r.body["next_page"].as_str() {
            Some(t) => next = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, N);
    assert_eq!(pages, N / 20, "20 records a page, no empty last page");
    // The superuser's view pages the same records.
    let everything = all_logs(&s.client, &s, "/api/v1/superuser/logs?kind=pull_repo").await;
    assert_eq!(everything.len() as i64, N + 30);
}

#[tokio::test]
async fn retention_deletes_old_records() {
    let s = TestServer::start().await;
    let state = s.state();
    let now = now_ms();
    for (days_ago, n) in [(1, 1), (89, 2), (91, 3), (400, 4)] {
        state.usage.record(
            Event::new("push_repo", Performer::Account("admin".into()), None)
                .namespace("admin")
                .detail("n", n)
                .at(now - days_ago * DAY_MS),
        );
    }
    state.usage.flush().await;
    let retention = s.settings().usage_logs.retention;
    assert_eq!(retention, Duration::from_secs(90 * 86_400), "the default");
    assert_eq!(state.usage.expire(retention).await.unwrap(), 2);
    assert_eq!(
        state.usage.expire(retention).await.unwrap(),
        0,
        "idempotent"
    );
    let path = format!(
        "/api/v1/superuser/logs?starttime={}",
        quay_day(now - 500 * DAY_MS)
    );
    let left: Vec<i64> = all_logs(&s.client, &s, &path)
        .await
        .iter()
        .map(|l| l["metadata"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(left, [1, 2]);
}

#[tokio::test]
async fn records_survive_a_restart() {
    let s = TestServer::start().await;
    push_image(&s.client, &s.base, "admin/kept", "v1", b"kept").await;
    // The push is still queued: a graceful shutdown stores it.
    let s = s.restart().await;
    let logs = all_logs(&s.client, &s, "/api/v1/repository/admin/kept/logs").await;
    assert!(has(&logs, "push_repo", "admin"), "{logs:?}");
}

#[tokio::test]
async fn pull_logging_off_records_no_pulls() {
    let mut settings = Settings::default();
    settings.usage_logs.pulls = false;
    let s = TestServer::start_with(settings).await;
    push_image(&s.client, &s.base, "admin/quiet", "v1", b"quiet").await;
    for _ in 0..3 {
        let r = s
            .client
            .get(s.url("/v2/admin/quiet/manifests/v1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    s.state().usage.flush().await;
    let logs = all_logs(&s.client, &s, "/api/v1/repository/admin/quiet/logs").await;
    assert!(has(&logs, "push_repo", "admin"), "{logs:?}");
    assert!(!logs.iter().any(|l| l["kind"] == "pull_repo"), "{logs:?}");
}

#[tokio::test]
async fn repeated_pulls_are_counted_exactly() {
    let s = TestServer::start().await;
    let digest = push_image(&s.client, &s.base, "admin/busy", "v1", b"busy").await;
    let pull = |reference: String| {
        let client = s.client.clone();
        let url = s.url(&format!("/v2/admin/busy/manifests/{reference}"));
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    let by_tag = (0..200).map(|_| pull("v1".to_string()));
    let by_digest = (0..5).map(|_| pull(digest.to_string()));
    futures::future::join_all(by_tag.chain(by_digest)).await;
    s.state().usage.flush().await;

    let logs = all_logs(&s.client, &s, "/api/v1/repository/admin/busy/logs").await;
    let pulls: Vec<&Value> = logs.iter().filter(|l| l["kind"] == "pull_repo").collect();
    let counted = |tagged: bool| -> u64 {
        pulls
            .iter()
            .filter(|l| l["metadata"]["tag"].is_string() == tagged)
            .map(|l| l["metadata"]["count"].as_u64().unwrap_or(1))
            .sum()
    };
    assert_eq!(counted(true), 200, "{pulls:?}");
    assert_eq!(counted(false), 5, "{pulls:?}");
    assert!(
        pulls.len() < 205,
        "identical pulls in one batch are one record: {}",
        pulls.len()
    );
    let r = s
        .api("GET", "/api/v1/repository/admin/busy/aggregatelogs", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let aggregated: u64 = r.body["aggregated"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "pull_repo")
        .map(|a| a["count"].as_u64().unwrap())
        .sum();
    assert_eq!(aggregated, 205, "{}", r.body);

    // What was stored shows in the metrics; nothing was dropped.
    let metrics = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    let sample = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert!(sample("berth_usage_log_records_stored_total") >= pulls.len() as u64);
    assert_eq!(sample("berth_usage_log_records_dropped_total"), 0);
}

/// The `data-kind`s of the record rows of a Usage Logs tab.
fn page_kinds(body: &str) -> Vec<String> {
    body.split("<tr class=\"usage-record\" data-kind=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

#[tokio::test]
async fn the_dashboard_shows_usage_logs_to_those_the_api_shows_them_to() {
    let s = TestServer::start().await;
    s.create_org("acme").await;
    let _dev = s.create_user("dev").await;
    s.create_repo("acme/app", false).await;
    s.grant("acme/app", "dev", "write").await;
    push_image(&s.client, &s.base, "acme/app", "v1", b"one").await;
    push_image(&s.client, &s.base, "acme/app", "v2", b"two").await;
    let mut admin = Browser::signed_in(&s.base, ADMIN_USER, ADMIN_PASSWORD).await;
    // A dashboard action is recorded too.
    let p = admin
        .submit(
            "/repository/acme/app?tab=tags",
            "/repository/acme/app",
            &[("action", "delete-tag"), ("tag", "v2")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    // A failed sign-in as dev, in dev's own logs.
    let mut stranger = Browser::new(&s.base);
    let p = stranger.sign_in("dev", "wrong").await;
    assert_eq!(p.status, 401);
    s.state().usage.flush().await;

    let p = admin.get("/repository/acme/app?tab=logs").await;
    assert_eq!(p.status, 200, "{}", p.body);
    let kinds = page_kinds(&p.body);
    assert_eq!(kinds[0], "delete_tag", "newest first: {kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "push_repo").count(),
        2,
        "{kinds:?}"
    );
    assert!(
        p.has("<svg") && p.has("class=\"usage-bar\""),
        "a per-day chart"
    );
    assert!(p.has("<th scope=\"col\">Kind</th>") && p.has("<label for=\"usage-kind\">"));
    assert!(
        !p.has("style=") && !p.has("<script>"),
        "strict CSP: no inline style or script"
    );
    assert!(p.has(">Usage Logs</a>"));
    let p = admin
        .get("/repository/acme/app?tab=logs&kind=push_repo")
        .await;
    assert_eq!(page_kinds(&p.body), ["push_repo", "push_repo"]);
    let p = admin
        .get("/repository/acme/app?tab=logs&next_page=garbage")
        .await;
    assert_eq!(p.status, 400);
    let p = admin.get("/organization/acme?tab=logs").await;
    assert_eq!(p.status, 200);
    assert!(page_kinds(&p.body).contains(&"create_repo".to_string()));

    // Paging: an "Older records" link while more remain, each record once.
    let repo: oci::RepoName = "acme/app".parse().unwrap();
    for i in 0..70 {
        s.state().usage.record(
            Event::new("pull_repo", Performer::Anonymous, None)
                .repository(&repo)
                .detail("n", i),
        );
    }
    s.state().usage.flush().await;
    let first = admin
        .get("/repository/acme/app?tab=logs&kind=pull_repo")
        .await;
    assert_eq!(page_kinds(&first.body).len(), 50);
    let at = first
        .body
        .find("class=\"older\" href=\"")
        .expect("an older-records link")
        + 20;
    let link = first.body[at..at + first.body[at..].find('"').unwrap()].replace("&amp;", "&");
    let second = admin.get(&link).await;
    assert_eq!(second.status, 200, "{link}");
    assert_eq!(page_kinds(&second.body).len(), 20);
    assert!(!second.has("class=\"older\""));

    // Who may see which tab.
    let mut dev = Browser::signed_in(&s.base, "dev", &password_of("dev")).await;
    assert_eq!(dev.get("/repository/acme/app?tab=logs").await.status, 403);
    assert_eq!(dev.get("/organization/acme?tab=logs").await.status, 403);
    assert_eq!(dev.get("/user/admin?tab=logs").await.status, 403);
    let own = dev.get("/user/dev?tab=logs").await;
    assert_eq!(own.status, 200);
    assert_eq!(page_kinds(&own.body), ["login_failure"]);
    let anonymous = Browser::new(&s.base)
        .get("/organization/acme?tab=logs")
        .await;
    assert_eq!(anonymous.status, 303, "sign in first");
}
