//! The corpus's server: seeded with real content, and a snapshot of everything stored, taken
//! through the metadata store (every repository, link, tag, history entry, upload session,
//! account, team, grant and signing key), the registry API (catalog, tag lists, manifest and
//! blob bytes, upload offsets, referrers) and the blob store (every file with a hash of its
//! bytes on the filesystem, every object key on S3).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth::metadata::accounts::AccountKind;
use berth::metadata::Store;
use oci::{Digest, RepoName};
use serde_json::json;
use sha2::Digest as _;

use crate::common::*;

/// What the corpus was built around: names, digests and upload sessions that exist.
pub struct Fixture {
    pub s: TestServer,
    pub store: Arc<dyn Store>,
    /// `host:port` of the server.
    pub addr: String,
    /// The layer of `seed/repo:v1` (10 bytes, `seed layer`).
    pub blob: String,
    /// A layer readable in `acme/app` only.
    pub app_layer: String,
    /// `seed/repo:v1`.
    pub manifest: String,
    /// `acme/app:1.0`, the subject of a referrer.
    pub app_manifest: String,
    /// Path of an upload session in `seed/repo` holding 10 bytes.
    pub upload: String,
    /// Id of an empty upload session in `acme/app`.
    pub app_upload_id: String,
    /// The token of robot `acme+ci`, which may pull `acme/app`.
    pub robot_token: String,
    /// The token signing key (kid, PEM), for forging tokens.
    pub signing_key: (String, String),
    pub manifests: Vec<Digest>,
    pub blobs: Vec<Digest>,
    pub repos: Vec<RepoName>,
}

/// The repositories the fixture creates.
pub const REPOS: [&str; 3] = ["seed/repo", "acme/app", "acme/private"];

impl Fixture {
    /// Starts berth with `settings` and seeds it.
    pub async fn start(settings: berth::config::Settings) -> Fixture {
        let s = TestServer::start_with(settings).await;
        let (c, b) = (&s.client, s.base.as_str());
        s.create_user("alice").await;
        s.create_org("acme").await;
        s.create_team("acme", "pushers", "creator").await;
        s.add_team_member("acme", "pushers", "alice").await;
        let robot_token = s.create_robot("acme", "ci").await;
        let manifest = push_image(c, b, "seed/repo", "v1", b"seed layer").await;
        let r = put_manifest(
            c,
            b,
            "seed/repo",
            "latest",
            "application/vnd.oci.image.manifest.v1+json",
            &manifest_bytes(&s, "seed/repo", &manifest).await,
        )
        .await;
        assert_eq!(r.status(), 201, "tag latest");
        let app_manifest = push_image(c, b, "acme/app", "1.0", b"app layer one").await;
        let app_two = push_image(c, b, "acme/app", "2.0", b"app layer two").await;
        s.grant("acme/app", "acme+ci", "read").await;
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": app_manifest,
                 "size": manifest_bytes(&s, "acme/app", &app_manifest).await.len(),
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": app_two,
                 "size": manifest_bytes(&s, "acme/app", &app_two).await.len(),
                 "platform": {"architecture": "arm64", "os": "linux"}},
            ],
        }))
        .expect("index JSON");
        let r = put_manifest(
            c,
            b,
            "acme/app",
            "multi",
            "application/vnd.oci.image.index.v1+json",
            &index,
        )
        .await;
        assert_eq!(r.status(), 201, "push index");
        let referrer = push_referrer(c, b, "acme/app", &app_manifest).await;
        let private = push_image(c, b, "acme/private", "v1", b"private layer").await;
        let upload = s.upload("seed/repo").await;
        let r = s.patch(&upload, Some("0-9"), b"0123456789").await;
        assert_eq!(r.status(), 202, "seed the upload");
        let app_upload = s.upload("acme/app").await;
        let app_upload_id = app_upload.rsplit('/').next().expect("id").to_string();
        let store = s.metadata_store().await;
        let keys = store
            .signing_keys(("unused", "unused"))
            .await
            .expect("keys");
        let signing_key = keys.last().cloned().expect("a signing key");
        let config = sha256(br#"{"architecture":"amd64","os":"linux"}"#);
        let blobs = [
            config,
            sha256(b"seed layer"),
            sha256(b"app layer one"),
            sha256(b"app layer two"),
            sha256(b"private layer"),
            sha256(b"{}"),
            sha256(format!("sbom of {app_manifest}").as_bytes()),
        ];
        let addr = s.base.strip_prefix("http://").expect("http").to_string();
        Fixture {
            addr,
            store,
            blob: sha256(b"seed layer"),
            app_layer: sha256(b"app layer one"),
            manifest: manifest.clone(),
            app_manifest: app_manifest.clone(),
            upload,
            app_upload_id,
            signing_key,
            robot_token,
            manifests: [
                manifest,
                app_manifest,
                app_two,
                sha256(&index),
                referrer,
                private,
            ]
            .iter()
            .map(|d| d.parse().expect("digest"))
            .collect(),
            blobs: blobs.iter().map(|d| d.parse().expect("digest")).collect(),
            repos: REPOS.iter().map(|r| r.parse().expect("name")).collect(),
            s,
        }
    }

    /// The id of the `seed/repo` upload session.
    pub fn upload_id(&self) -> &str {
        self.upload.rsplit('/').next().expect("id")
    }

    /// Everything stored, as named facts.
    pub async fn snapshot(&self) -> BTreeMap<String, String> {
        let mut facts = BTreeMap::new();
        self.metadata_facts(&mut facts).await;
        self.api_facts(&mut facts).await;
        self.storage_facts(&mut facts).await;
        facts
    }

    async fn metadata_facts(&self, facts: &mut BTreeMap<String, String>) {
        let m = &self.store;
        let repos = m.list_repositories(None, 10_000).await.expect("repos");
        facts.insert("meta repositories".into(), format!("{repos:?}"));
        for repo in repos.iter().chain(&self.repos) {
            let tags = m.list_tags(repo, None, 10_000).await.expect("tags");
            facts.insert(format!("meta {repo} tags"), format!("{tags:?}"));
            let history = m.tag_history(repo, None, 0, 10_000).await.expect("history");
            facts.insert(format!("meta {repo} history"), format!("{history:?}"));
            let mut linked: Vec<_> = m
                .linked_blobs(repo, &self.blobs)
                .await
                .expect("links")
                .into_iter()
                .collect();
            linked.sort();
            facts.insert(format!("meta {repo} links"), format!("{linked:?}"));
            let mut present: Vec<_> = m
                .present_manifests(repo, &self.manifests)
                .await
                .expect("manifests")
                .into_iter()
                .collect();
            present.sort();
            facts.insert(format!("meta {repo} manifests"), format!("{present:?}"));
            let info = m.repository_info(repo).await.expect("info");
            facts.insert(format!("meta {repo} info"), format!("{info:?}"));
            let perms = m.list_permissions(repo).await.expect("permissions");
            facts.insert(format!("meta {repo} permissions"), format!("{perms:?}"));
        }
        // Manifests and blobs that nothing references, however recent: anything a refused
        // request left behind shows up here even under a digest the test never heard of.
        let (far, none) = (i64::MAX, i64::MAX);
        let mut lost = m
            .unreachable_manifests(far, none)
            .await
            .expect("unreachable");
        lost.sort();
        facts.insert("meta unreachable manifests".into(), format!("{lost:?}"));
        let mut loose = m
            .unreachable_blobs(far, far, none)
            .await
            .expect("unreachable blobs");
        loose.sort();
        facts.insert("meta unreachable blobs".into(), format!("{loose:?}"));
        let pending = m.pending_blob_deletions().await.expect("pending");
        facts.insert("meta pending deletions".into(), format!("{pending:?}"));
        let mut uploads: Vec<String> = m
            .list_uploads()
            .await
            .expect("uploads")
            .into_iter()
            .map(|u| {
                format!(
                    "{} {} {:?} len={} resumable={} state={} progress={:?} at={}",
                    u.id,
                    u.repository,
                    u.algorithm,
                    u.length,
                    u.resumable,
                    u.hash_state.as_deref().map(hex::encode).unwrap_or_default(),
                    u.progress,
                    u.updated_at
                )
            })
            .collect();
        uploads.sort();
        facts.insert("meta uploads".into(), uploads.join("\n"));
        for kind in [
            AccountKind::User,
            AccountKind::Organization,
            AccountKind::Robot,
        ] {
            let mut accounts: Vec<String> = m
                .list_accounts(kind)
                .await
                .expect("accounts")
                .iter()
                .map(|a| format!("{a:?}"))
                .collect();
            accounts.sort();
            facts.insert(format!("meta accounts {kind:?}"), accounts.join("\n"));
        }
        let teams = m.list_teams("acme").await.expect("teams");
        facts.insert("meta acme teams".into(), format!("{teams:?}"));
        for team in &teams {
            let members = m.team_members("acme", &team.name).await.expect("members");
            let names: Vec<&str> = members.iter().map(|a| a.name.as_str()).collect();
            facts.insert(format!("meta acme team {}", team.name), names.join(","));
        }
        let members = m.organization_members("acme").await.expect("members");
        let names: Vec<&str> = members.iter().map(|a| a.name.as_str()).collect();
        facts.insert("meta acme members".into(), names.join(","));
        let robots = m.list_robots("acme").await.expect("robots");
        facts.insert("meta acme robots".into(), format!("{robots:?}"));
        let keys = m.signing_keys(("unused", "unused")).await.expect("keys");
        let kids: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        facts.insert("meta signing keys".into(), kids.join(","));
    }

    async fn api_facts(&self, facts: &mut BTreeMap<String, String>) {
        let s = &self.s;
        facts.insert(
            "api catalog".into(),
            catalog(&s.client, &s.base).await.join(","),
        );
        for repo in REPOS {
            let r = s.get(&format!("/v2/{repo}/tags/list")).await;
            facts.insert(format!("api {repo} tags"), r.text().await.expect("tags"));
            for d in &self.manifests {
                let r = s.get(&format!("/v2/{repo}/manifests/{d}")).await;
                let status = r.status();
                let ct = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap_or("?").to_string());
                let body = r.bytes().await.expect("manifest");
                facts.insert(
                    format!("api {repo} manifest {d}"),
                    format!("{status} {ct:?} {}", sha256(&body)),
                );
            }
            for d in &self.blobs {
                let r = s.get(&format!("/v2/{repo}/blobs/{d}")).await;
                let status = r.status();
                let body = r.bytes().await.expect("blob");
                facts.insert(
                    format!("api {repo} blob {d}"),
                    format!("{status} {}", sha256(&body)),
                );
            }
        }
        let r = s.get(&self.upload).await;
        facts.insert(
            "api seed upload".into(),
            format!("{} {:?}", r.status(), r.headers().get("range")),
        );
        let app = format!("/v2/acme/app/blobs/uploads/{}", self.app_upload_id);
        let r = s.get(&app).await;
        facts.insert(
            "api app upload".into(),
            format!("{} {:?}", r.status(), r.headers().get("range")),
        );
        let r = s
            .get(&format!("/v2/acme/app/referrers/{}", self.app_manifest))
            .await;
        facts.insert("api referrers".into(), r.text().await.expect("referrers"));
    }

    async fn storage_facts(&self, facts: &mut BTreeMap<String, String>) {
        if on_s3() {
            for area in ["blobs", "uploads"] {
                let mut keys = stored_in(self.s.data_dir(), area).await;
                keys.sort();
                facts.insert(format!("s3 {area}"), keys.join("\n"));
            }
            return;
        }
        let root = self.s.data_dir();
        for (path, size) in data_files(root) {
            let value = if path.ends_with('/') {
                "dir".to_string()
            } else {
                let bytes = std::fs::read(root.join(&path)).unwrap_or_default();
                format!("{size} {}", hex::encode(sha2::Sha256::digest(&bytes)))
            };
            facts.insert(format!("file {path}"), value);
        }
    }
}

/// The bytes of a stored manifest.
pub async fn manifest_bytes(s: &TestServer, repo: &str, digest: &str) -> Vec<u8> {
    let r = s
        .client
        .get(s.url(&format!("/v2/{repo}/manifests/{digest}")))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        )
        .send()
        .await
        .expect("get manifest");
    assert_eq!(r.status(), 200, "manifest {digest} in {repo}");
    r.bytes().await.expect("manifest bytes").to_vec()
}

/// The differences between two snapshots, one line per fact.
pub fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| {
            let lines = |v: Option<&String>| -> Vec<String> {
                v.map(|v| v.lines().map(str::to_string).collect())
                    .unwrap_or_default()
            };
            let (old, new) = (lines(before.get(k)), lines(after.get(k)));
            let gone: Vec<&String> = old.iter().filter(|l| !new.contains(l)).collect();
            let came: Vec<&String> = new.iter().filter(|l| !old.contains(l)).collect();
            let cut = |v: Vec<&String>| {
                let text = format!("{v:?}");
                text.chars().take(600).collect::<String>()
            };
            format!("{k}: lost {} gained {}", cut(gone), cut(came))
        })
        .collect()
}
