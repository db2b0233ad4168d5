//! `/health/instance` and `/health/endtoend` in Quay's shape: 200 while every service
//! answers, 503 naming the one that does not, and back to 200 when it returns. On the
//! scale-out pass, PostgreSQL and the S3 service are reached through links the test cuts, as
//! if the servers stopped under the running registry.

use crate::common;

use std::net::SocketAddr;

use common::*;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

async fn health(s: &TestServer, check: &str) -> (u16, Value) {
    let r = s
        .client
        .get(s.url(&format!("/health/{check}")))
        .send()
        .await
        .expect("health request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("health JSON"))
}

fn services(body: &Value) -> Vec<(String, bool)> {
    let map = body["data"]["services"].as_object().expect("services");
    map.iter()
        .map(|(k, v)| (k.clone(), v.as_bool().expect("a boolean per service")))
        .collect()
}

#[tokio::test]
async fn every_service_answers_on_a_healthy_registry() {
    let s = TestServer::start().await;
    let (status, body) = health(&s, "instance").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status_code"], 200);
    assert_eq!(
        services(&body),
        [
            ("database".to_string(), true),
            ("registry".to_string(), true)
        ]
    );
    let r = s.client.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200, "/health is the instance check, as in Quay");

    let (status, body) = health(&s, "endtoend").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        services(&body),
        [
            ("database".to_string(), true),
            ("storage".to_string(), true)
        ]
    );
    // The probes leave nothing behind.
    if !on_s3() {
        let probes = s.data_dir().join("health");
        assert_eq!(std::fs::read_dir(probes).unwrap().count(), 0);
    }
}

#[tokio::test]
async fn a_blob_store_that_refuses_writes_is_named() {
    if skip_on_s3("the filesystem store is broken by hand") {
        return;
    }
    let s = TestServer::start().await;
    // Where the probe writes is a file, not a directory: every write there fails.
    std::fs::write(s.data_dir().join("health"), b"in the way").unwrap();
    let (status, body) = health(&s, "endtoend").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status_code"], 503);
    assert_eq!(
        services(&body),
        [
            ("database".to_string(), true),
            ("storage".to_string(), false)
        ]
    );
    let (status, _) = health(&s, "instance").await;
    assert_eq!(status, 200, "the process still serves");
    std::fs::remove_file(s.data_dir().join("health")).unwrap();
    assert_eq!(health(&s, "endtoend").await.0, 200);
}

/// A TCP link to `target` that can be cut (open connections closed, new ones dropped at
/// once) and restored.
struct Link {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Link {
    async fn to(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let state = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut watching = state.subscribe();
                if !*watching.borrow() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Link { addr, up }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// `url`'s host and port, resolved.
fn socket_of(url: &str) -> SocketAddr {
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .unwrap()
        .next()
        .unwrap()
}

/// `url` with its host and port replaced by `addr`.
fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let userinfo = authority
        .rsplit_once('@')
        .map_or(String::new(), |(u, _)| format!("{u}@"));
    let path = if path.is_empty() {
        String::new()
    } else {
        format!("/{path}")
    };
    format!("{scheme}://{userinfo}{addr}{path}")
}

#[tokio::test]
async fn postgresql_or_s3_going_away_is_named_and_coming_back_heals() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(database), Some(storage)) = (
        test_database_for(dir.path()).await,
        test_storage_for(dir.path()),
    ) else {
        println!("skipped: runs on the PostgreSQL + S3 pass");
        return;
    };
    let berth::config::StorageSettings::S3(mut s3) = storage else {
        unreachable!("test storage is S3")
    };
    let db_link = Link::to(socket_of(&database)).await;
    let endpoint = s3.endpoint.clone().expect("test endpoint");
    let s3_link = Link::to(socket_of(&endpoint)).await;
    s3.endpoint = Some(through(&endpoint, s3_link.addr));
    let settings = berth::config::Settings {
        database: Some(berth::config::DatabaseUri::Postgres(through(
            &database,
            db_link.addr,
        ))),
        storage: berth::config::StorageSettings::S3(s3),
        proxy_storage: true,
        ..Default::default()
    };
    let s = TestServer::start_with(settings).await;
    assert_eq!(health(&s, "endtoend").await.0, 200);

    db_link.cut();
    let (status, body) = health(&s, "endtoend").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        services(&body),
        [
            ("database".to_string(), false),
            ("storage".to_string(), true)
        ]
    );
    let (status, body) = health(&s, "instance").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["data"]["services"]["database"], false);
    db_link.restore();
    assert_eq!(
        health(&s, "endtoend").await.0,
        200,
        "back with the database"
    );

    s3_link.cut();
    let (status, body) = health(&s, "endtoend").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        services(&body),
        [
            ("database".to_string(), true),
            ("storage".to_string(), false)
        ]
    );
    assert_eq!(
        health(&s, "instance").await.0,
        200,
        "the instance needs no S3"
    );
    s3_link.restore();
    assert_eq!(health(&s, "endtoend").await.0, 200, "back with the store");
}
