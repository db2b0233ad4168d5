//! The permission matrix: every kind of caller × every repository operation × public and
//! private repositories, each cell asserted against a table, with Basic credentials on /v2 and
//! again through the Docker token flow. Then the rules around the matrix: private repositories
//! look missing to those who may not read them, push creates repositories only where the
//! caller may create, and config superusers may do everything.

use crate::common;

use std::collections::HashMap;

use berth::auth::AuthSettings;
use berth::config::Settings;
use common::*;
use serde_json::{json, Value};

const ORG: &str = "matrix";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Caller {
    Anonymous,
    /// Signed in, with no grant on the matrix repositories.
    NoGrant,
    Reader,
    Writer,
    /// A user with an admin grant on the repository.
    RepoAdmin,
    /// A member of the organization's team with role admin.
    OrgAdmin,
    RobotRead,
    RobotWrite,
    Superuser,
}
use Caller::*;

const CALLERS: [Caller; 9] = [
    Anonymous, NoGrant, Reader, Writer, RepoAdmin, OrgAdmin, RobotRead, RobotWrite, Superuser,
];

impl Caller {
    /// A name usable in tags and repository names.
    fn slug(self) -> &'static str {
        match self {
            Anonymous => "anonymous",
            NoGrant => "nogrant",
            Reader => "reader",
            Writer => "writer",
            RepoAdmin => "repoadmin",
            OrgAdmin => "orgadmin",
            RobotRead => "ro",
            RobotWrite => "rw",
            Superuser => "superuser",
        }
    }

    /// The grant this caller holds on both matrix repositories.
    fn grant(self) -> Option<&'static str> {
        match self {
            Reader | RobotRead => Some("read"),
            Writer | RobotWrite => Some("write"),
            RepoAdmin => Some("admin"),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Vis {
    Public,
    Private,
}
use Vis::*;

impl Vis {
    fn repo(self) -> &'static str {
        match self {
            Public => "matrix/pub",
            Private => "matrix/priv",
        }
    }
}

/// The operations of the matrix, in the column order of [`MATRIX`].
const OPS: [&str; 7] = [
    "pull",
    "push",
    "delete tag",
    "delete manifest by digest",
    "referrers",
    "tag list",
    "mount from this repo",
];

/// Expected statuses with Basic credentials (anonymous: none), and whether the catalog lists
/// the repository. A mount answers 201 only when the caller may read the source; otherwise it
/// opens an upload session (202) and the blob stays out of the target.
#[rustfmt::skip]
const MATRIX: [(Caller, Vis, [u16; 7], bool); 18] = [
    //                      pull push dtag ddig refs tags mount   listed
    (Anonymous,  Public,  [200, 401, 401, 401, 200, 200, 401], true),
    (Anonymous,  Private, [401, 401, 401, 401, 401, 401, 401], false),
    (NoGrant,    Public,  [200, 403, 403, 403, 200, 200, 201], true),
    (NoGrant,    Private, [403, 403, 403, 403, 403, 403, 202], false),
    (Reader,     Public,  [200, 403, 403, 403, 200, 200, 201], true),
    (Reader,     Private, [200, 403, 403, 403, 200, 200, 201], true),
    (Writer,     Public,  [200, 201, 202, 202, 200, 200, 201], true),
    (Writer,     Private, [200, 201, 202, 202, 200, 200, 201], true),
    (RepoAdmin,  Public,  [200, 201, 202, 202, 200, 200, 201], true),
    (RepoAdmin,  Private, [200, 201, 202, 202, 200, 200, 201], true),
    (OrgAdmin,   Public,  [200, 201, 202, 202, 200, 200, 201], true),
    (OrgAdmin,   Private, [200, 201, 202, 202, 200, 200, 201], true),
    (RobotRead,  Public,  [200, 403, 403, 403, 200, 200, 201], true),
    (RobotRead,  Private, [200, 403, 403, 403, 200, 200, 201], true),
    (RobotWrite, Public,  [200, 201, 202, 202, 200, 200, 201], true),
    (RobotWrite, Private, [200, 201, 202, 202, 200, 200, 201], true),
    (Superuser,  Public,  [200, 201, 202, 202, 200, 200, 201], true),
    (Superuser,  Private, [200, 201, 202, 202, 200, 200, 201], true),
];

/// Through the token flow (GET /v2/auth for `pull,push`, then Bearer): the actions the token
/// grants, and the statuses of pull and push with it. A token lacking scope the account could
/// get answers 401 (insufficient_scope), one the account could never use 403.
#[rustfmt::skip]
const TOKEN_MATRIX: [(Caller, Vis, &str, u16, u16); 18] = [
    (Anonymous,  Public,  "pull",      200, 401),
    (Anonymous,  Private, "",          401, 401),
    (NoGrant,    Public,  "pull",      200, 403),
    (NoGrant,    Private, "",          403, 403),
    (Reader,     Public,  "pull",      200, 403),
    (Reader,     Private, "pull",      200, 403),
    (Writer,     Public,  "pull,push", 200, 201),
    (Writer,     Private, "pull,push", 200, 201),
    (RepoAdmin,  Public,  "pull,push", 200, 201),
    (RepoAdmin,  Private, "pull,push", 200, 201),
    (OrgAdmin,   Public,  "pull,push", 200, 201),
    (OrgAdmin,   Private, "pull,push", 200, 201),
    (RobotRead,  Public,  "pull",      200, 403),
    (RobotRead,  Private, "pull",      200, 403),
    (RobotWrite, Public,  "pull,push", 200, 201),
    (RobotWrite, Private, "pull,push", 200, 201),
    (Superuser,  Public,  "pull,push", 200, 201),
    (Superuser,  Private, "pull,push", 200, 201),
];

/// What a matrix repository holds before the callers act.
struct Fixture {
    /// Digest of the manifest tagged `base`.
    base: String,
    /// Digest of its layer (the mount source).
    layer: String,
    /// Digest of an artifact whose subject is `base`.
    referrer: String,
}

/// A server with the matrix organization, its accounts and repositories.
struct World {
    s: TestServer,
    creds: HashMap<Caller, (String, String)>,
    clients: HashMap<Caller, reqwest::Client>,
    fixtures: HashMap<Vis, Fixture>,
}

async fn world() -> World {
    // Anonymous callers list the public repositories (`FEATURE_PUBLIC_CATALOG`); without it
    // they are challenged (tests/integration/catalog_challenge.rs).
    let mut settings = Settings::default();
    settings.auth.public_catalog = true;
    let s = TestServer::start_with(settings).await;
    s.create_org(ORG).await;
    let mut creds = HashMap::new();
    creds.insert(Superuser, (ADMIN_USER.into(), ADMIN_PASSWORD.into()));
    for caller in [NoGrant, Reader, Writer, RepoAdmin, OrgAdmin] {
        let name = caller.slug();
        s.create_user(name).await;
        creds.insert(caller, (name.to_string(), password_of(name)));
    }
    s.create_team(ORG, "admins", "admin").await;
    s.add_team_member(ORG, "admins", OrgAdmin.slug()).await;
    for caller in [RobotRead, RobotWrite] {
        let token = s.create_robot(ORG, caller.slug()).await;
        creds.insert(caller, (format!("{ORG}+{}", caller.slug()), token));
    }
    let mut fixtures = HashMap::new();
    for vis in [Public, Private] {
        let repo = vis.repo();
        s.create_repo(repo, vis == Public).await;
        for caller in CALLERS {
            if let Some(role) = caller.grant() {
                s.grant(repo, &creds[&caller].0, role).await;
            }
        }
        let content = format!("base layer of {repo}");
        let base = push_image(&s.client, &s.base, repo, "base", content.as_bytes()).await;
        let referrer = push_referrer(&s.client, &s.base, repo, &base).await;
        let layer = sha256(content.as_bytes());
        let fixture = Fixture {
            base,
            layer,
            referrer,
        };
        fixtures.insert(vis, fixture);
    }
    // Every caller gets a private repository it may push to, as the target of its mounts
    // (anonymous callers may push nowhere; theirs grants nothing).
    for caller in CALLERS {
        let target = format!("{ORG}/mount-{}", caller.slug());
        s.create_repo(&target, false).await;
        if !matches!(caller, Anonymous | OrgAdmin | Superuser) {
            s.grant(&target, &creds[&caller].0, "write").await;
        }
    }
    let client = |c| match creds.get(c) {
        Some((user, secret)) => authed_client(user, secret),
        None => reqwest::Client::new(),
    };
    let clients = CALLERS.iter().map(|c| (*c, client(c))).collect();
    World {
        s,
        creds,
        clients,
        fixtures,
    }
}

/// The status as the matrix compares it. A 401 or 403 must carry the model's error code, and
/// a 401 a Bearer challenge; otherwise what is wrong is part of the verdict.
fn verdict(r: &Reply) -> String {
    let code = serde_json::from_str::<Value>(&r.text).ok();
    let code = code.as_ref().and_then(|v| v["errors"][0]["code"].as_str());
    let challenge = r.header("www-authenticate");
    match r.status {
        401 if code != Some("UNAUTHORIZED") => format!("401 with body {}", r.text),
        401 if !challenge.starts_with("Bearer realm=\"") => "401 without a challenge".into(),
        403 if code != Some("DENIED") => format!("403 with body {}", r.text),
        s => s.to_string(),
    }
}

impl World {
    fn url(&self, path: &str) -> String {
        self.s.url(path)
    }

    /// Whether `reference` resolves in `repo`, asked as the superuser.
    async fn exists(&self, repo: &str, reference: &str) -> bool {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let status = self.s.head(&path).await.status();
        assert!(status == 200 || status == 404, "HEAD {reference}: {status}");
        status == 200
    }

    /// Pushes a fresh image as `client` under `tag`: two blob uploads and the manifest. All
    /// three must agree; the tag must exist exactly when the push succeeded.
    async fn push_as(&self, client: &reqwest::Client, repo: &str, tag: &str) -> String {
        let config = format!("{{\"repo\":\"{repo}\",\"tag\":\"{tag}\"}}");
        let layer = format!("layer of {repo}:{tag}");
        let mut replies = Vec::new();
        let (c, l) = (sha256(config.as_bytes()), sha256(layer.as_bytes()));
        for (digest, blob) in [(&c, &config), (&l, &layer)] {
            let url = self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"));
            replies.push(Reply::send(client.post(url).body(blob.clone())).await);
        }
        let manifest = image_manifest((&c, config.len()), &[(&l, layer.len())]);
        let url = self.url(&format!("/v2/{repo}/manifests/{tag}"));
        let put = client.put(url).header("content-type", MANIFEST_TYPE);
        replies.push(Reply::send(put.body(manifest)).await);
        let verdicts: Vec<String> = replies.iter().map(verdict).collect();
        let verdict = if verdicts.iter().all(|v| v == &verdicts[0]) {
            verdicts[0].clone()
        } else {
            format!("blob, blob, manifest answered {verdicts:?}")
        };
        match (verdict == "201", self.exists(repo, tag).await) {
            (true, false) => format!("{verdict} but the tag is missing"),
            (false, true) => format!("{verdict} but the tag was written"),
            _ => verdict,
        }
    }

    /// One cell: what `caller` observes doing operation `op` on the `vis` repository.
    async fn cell(&self, caller: Caller, vis: Vis, op: usize) -> String {
        let client = &self.clients[&caller];
        let repo = vis.repo();
        let fx = &self.fixtures[&vis];
        let slug = caller.slug();
        let at = |path: &str| self.url(&format!("/v2/{repo}/{path}"));
        match OPS[op] {
            "pull" => {
                let r = Reply::send(client.get(at("manifests/base"))).await;
                if r.status == 200 && r.header("docker-content-digest") != fx.base {
                    return "200 with the wrong manifest".into();
                }
                verdict(&r)
            }
            "push" => self.push_as(client, repo, &format!("push-{slug}")).await,
            "delete tag" => {
                let tag = format!("dt-{slug}");
                push_image(&self.s.client, &self.s.base, repo, &tag, tag.as_bytes()).await;
                let r = Reply::send(client.delete(at(&format!("manifests/{tag}")))).await;
                let v = verdict(&r);
                match (v == "202", self.exists(repo, &tag).await) {
                    (true, true) => format!("{v} but the tag is still there"),
                    (false, false) => format!("{v} but the tag is gone"),
                    _ => v,
                }
            }
            "delete manifest by digest" => {
                let tag = format!("dd-{slug}");
                let digest =
                    push_image(&self.s.client, &self.s.base, repo, &tag, tag.as_bytes()).await;
                let r = Reply::send(client.delete(at(&format!("manifests/{digest}")))).await;
                let v = verdict(&r);
                match (v == "202", self.exists(repo, &digest).await) {
                    (true, true) => format!("{v} but the manifest is still there"),
                    (false, false) => format!("{v} but the manifest is gone"),
                    _ => v,
                }
            }
            "referrers" => {
                let r = Reply::send(client.get(at(&format!("referrers/{}", fx.base)))).await;
                if r.status == 200 {
                    let v: Value = serde_json::from_str(&r.text).expect("referrers JSON");
                    if v["manifests"].as_array().map(Vec::len) != Some(1)
                        || v["manifests"][0]["digest"] != fx.referrer.as_str()
                    {
                        return format!("200 with {v}");
                    }
                }
                verdict(&r)
            }
            "tag list" => {
                let r = Reply::send(client.get(at("tags/list"))).await;
                if r.status == 200 {
                    let v: Value = serde_json::from_str(&r.text).expect("tags JSON");
                    if !v["tags"].as_array().expect("tags").contains(&json!("base")) {
                        return format!("200 with {v}");
                    }
                }
                verdict(&r)
            }
            "mount from this repo" => {
                let target = format!("{ORG}/mount-{slug}");
                let query = format!("mount={}&from={repo}", fx.layer);
                let url = self.url(&format!("/v2/{target}/blobs/uploads/?{query}"));
                let r = Reply::send(client.post(url)).await;
                let v = verdict(&r);
                let blob = format!("/v2/{target}/blobs/{}", fx.layer);
                match r.status {
                    201 if r.header("location") != blob => {
                        format!("201 at {}", r.header("location"))
                    }
                    201 => {
                        let status = status_of(client.head(self.url(&blob))).await;
                        if status == 200 {
                            v
                        } else {
                            format!("201 but the blob answers {status} in the target")
                        }
                    }
                    202 => {
                        let location = r.header("location");
                        let leaked = self.s.head(&blob).await.status() != 404;
                        if !location.starts_with(&format!("/v2/{target}/blobs/uploads/")) {
                            format!("202 at {location}")
                        } else if leaked {
                            "202 but the blob was mounted anyway".into()
                        } else {
                            v
                        }
                    }
                    _ => v,
                }
            }
            other => unreachable!("{other}"),
        }
    }

    async fn listed_in_catalog(&self, caller: Caller, repo: &str) -> bool {
        let names = catalog(&self.clients[&caller], &self.s.base).await;
        names.iter().any(|r| r == repo)
    }
}

#[tokio::test]
async fn permission_matrix_with_basic_credentials() {
    let w = world().await;
    let mut failures = Vec::new();
    for (caller, vis, statuses, listed) in MATRIX {
        for (op, expected) in statuses.iter().enumerate() {
            let got = w.cell(caller, vis, op).await;
            if got != expected.to_string() {
                failures.push(format!(
                    "{caller:?} / {} / {vis:?}: expected {expected}, got {got}",
                    OPS[op]
                ));
            }
        }
        let seen = w.listed_in_catalog(caller, vis.repo()).await;
        if seen != listed {
            failures.push(format!(
                "{caller:?} / catalog / {vis:?}: expected listed={listed}, got listed={seen}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} matrix cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn permission_matrix_through_the_token_flow() {
    let w = world().await;
    // Discover the realm the way a client does: from the challenge of GET /v2/.
    let r = reqwest::get(w.url("/v2/")).await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = header(&r, "www-authenticate").to_string();
    let param = |name: &str| {
        let value = challenge.split(&format!("{name}=\"")).nth(1).expect(name);
        value.split('"').next().unwrap().to_string()
    };
    let (realm, service) = (param("realm"), param("service"));
    assert_eq!(realm, w.url("/v2/auth"));
    let mut failures = Vec::new();
    for (caller, vis, granted, pull, push) in TOKEN_MATRIX {
        let repo = vis.repo();
        let scope = format!("repository:{repo}:pull,push");
        let query = [("service", service.as_str()), ("scope", &scope)];
        let mut req = reqwest::Client::new().get(&realm).query(&query);
        if let Some((user, secret)) = w.creds.get(&caller) {
            req = req.header("authorization", basic(user, secret));
        }
        let r = exec(req).await;
        assert_eq!(r.status(), 200, "token for {caller:?}");
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().expect("token");
        let cell = |what: &str| format!("{caller:?} / {what} / {vis:?}");
        let got = granted_actions(token, repo);
        if got != granted {
            failures.push(format!(
                "{}: expected {granted:?}, got {got:?}",
                cell("token")
            ));
        }
        let client = bearer_client(token);
        let r = Reply::send(client.get(w.url(&format!("/v2/{repo}/manifests/base")))).await;
        let mut got = verdict(&r);
        let challenge = r.header("www-authenticate");
        if r.status == 401 && !challenge.contains("error=\"insufficient_scope\"") {
            got = format!("401 without insufficient_scope: {challenge}");
        }
        if got != pull.to_string() {
            failures.push(format!("{}: expected {pull}, got {got}", cell("pull")));
        }
        let got = w
            .push_as(&client, repo, &format!("tok-{}", caller.slug()))
            .await;
        if got != push.to_string() {
            failures.push(format!("{}: expected {push}, got {got}", cell("push")));
        }
    }
    let count = failures.len();
    assert!(
        failures.is_empty(),
        "{count} token-flow cells differ:\n{}",
        failures.join("\n")
    );
}

/// Sends `method` on `path` of the private `hush/secret` and of the missing `hush/missing` as
/// `client`: status, error body and challenge must be identical once the names are swapped.
async fn assert_same_as_missing(
    client: &reqwest::Client,
    s: &TestServer,
    method: &str,
    path: &str,
) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let on = |repo: &str| client.request(method.clone(), s.url(&format!("/v2/{repo}/{path}")));
    let secret = Reply::send(on("hush/secret")).await;
    let missing = Reply::send(on("hush/missing")).await;
    let swap = |text: &str| text.replace("hush/secret", "hush/missing");
    assert!(
        matches!(secret.status, 401 | 403),
        "{method} {path}: {}",
        secret.status
    );
    assert_eq!(secret.status, missing.status, "{method} {path}");
    assert_eq!(swap(&secret.text), missing.text, "{method} {path}");
    let challenge = swap(secret.header("www-authenticate"));
    assert_eq!(
        challenge,
        missing.header("www-authenticate"),
        "{method} {path}"
    );
}

#[tokio::test]
async fn private_repositories_look_missing_to_those_who_may_not_read_them() {
    let s = TestServer::start().await;
    s.create_org("hush").await;
    s.create_repo("hush/secret", false).await;
    let digest = push_image(&s.client, &s.base, "hush/secret", "v1", b"secret layer").await;
    let layer = sha256(b"secret layer");
    let stranger = s.create_user("stranger").await;
    let anonymous = reqwest::Client::new();
    let (manifest, blob) = (format!("manifests/{digest}"), format!("blobs/{layer}"));
    let referrers = format!("referrers/{digest}");
    #[rustfmt::skip]
    let requests = [
        ("GET", "manifests/v1"), ("HEAD", "manifests/v1"), ("GET", &manifest),
        ("DELETE", &manifest), ("GET", "tags/list"), ("GET", &blob), ("DELETE", &blob),
        ("GET", &referrers), ("POST", "blobs/uploads/"),
    ];
    for client in [&anonymous, &stranger] {
        for (method, path) in requests {
            assert_same_as_missing(client, &s, method, path).await;
        }
    }
    // A mount never reads a blob the caller could not: with `from` naming the private
    // repository, a missing one, or no `from` at all, the stranger gets a fresh upload session
    // in its own namespace and the blob stays out of it.
    for from in ["&from=hush/secret", "&from=hush/missing", ""] {
        let url = s.url(&format!(
            "/v2/stranger/mine/blobs/uploads/?mount={layer}{from}"
        ));
        let r = exec(stranger.post(url)).await;
        assert_eq!(r.status(), 202, "{from}");
        assert!(header(&r, "location").starts_with("/v2/stranger/mine/blobs/uploads/"));
    }
    let url = s.url(&format!("/v2/stranger/mine/blobs/{layer}"));
    assert_eq!(status_of(stranger.head(url)).await, 404);
    // Nor is its content readable through a public repository of the same namespace.
    s.create_repo("hush/open", true).await;
    for path in [format!("blobs/{layer}"), format!("manifests/{digest}")] {
        let url = s.url(&format!("/v2/hush/open/{path}"));
        assert_eq!(status_of(anonymous.get(url)).await, 404, "{path}");
    }
    // The catalog does not name it either (anonymous callers are challenged instead).
    let r = anonymous.get(s.url("/v2/_catalog")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    for (client, listed) in [(&stranger, false), (&s.client, true)] {
        let names = catalog(client, &s.base).await;
        assert_eq!(names.contains(&"hush/secret".to_string()), listed);
    }
}

/// Pushes a small image as `client`, returning the manifest PUT's status (the blob upload
/// must answer the same).
async fn try_push(s: &TestServer, client: &reqwest::Client, repo: &str) -> u16 {
    let content = format!("content of {repo}");
    let digest = sha256(content.as_bytes());
    let url = s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"));
    let blob = status_of(client.post(url).body(content.clone())).await;
    let manifest = image_manifest((&digest, content.len()), &[(&digest, content.len())]);
    let r = put_manifest(client, &s.base, repo, "v1", MANIFEST_TYPE, &manifest).await;
    let status = r.status().as_u16();
    assert_eq!(blob, status, "blob upload into {repo}");
    status
}

async fn repo_exists(s: &TestServer, repo: &str) -> bool {
    let r = s
        .api("GET", &format!("/api/v1/repository/{repo}"), None)
        .await;
    assert!(r.status == 200 || r.status == 404, "{repo}: {r:?}");
    r.status == 200
}

#[tokio::test]
async fn push_creates_repositories_only_where_the_caller_may_create() {
    let s = TestServer::start().await;
    let alice = s.create_user("alice").await;
    let bob = s.create_user("bob").await;
    let carol = s.create_user("carol").await;
    let dave = s.create_user("dave").await;
    s.create_org("shop").await;
    s.create_team("shop", "creators", "creator").await;
    s.add_team_member("shop", "creators", "carol").await;
    s.create_team("shop", "readers", "member").await;
    s.add_team_member("shop", "readers", "dave").await;
    let robot = authed_client("shop+ci", &s.create_robot("shop", "ci").await);
    let anonymous = reqwest::Client::new();

    // A user's own namespace: created, private by default (CREATE_PRIVATE_REPO_ON_PUSH).
    assert_eq!(try_push(&s, &alice, "alice/app").await, 201);
    let url = s.url("/v2/alice/app/manifests/v1");
    assert_eq!(status_of(anonymous.get(url)).await, 401);
    let r = s.api("GET", "/api/v1/repository/alice/app", None).await;
    assert_eq!(r.body["is_public"], false);
    // Someone else's namespace: refused, and nothing is left behind.
    assert_eq!(try_push(&s, &bob, "alice/intruder").await, 403);
    assert!(!repo_exists(&s, "alice/intruder").await);
    assert_eq!(try_push(&s, &anonymous, "alice/anon").await, 401);
    assert!(!repo_exists(&s, "alice/anon").await);

    // An organization: a creator-team member creates and then administers the repository.
    assert_eq!(try_push(&s, &carol, "shop/carol-app").await, 201);
    let path = "/api/v1/repository/shop/carol-app/permissions/user/";
    let r = s.api("GET", path, None).await;
    assert_eq!(
        r.body["permissions"]["carol"]["role"], "admin",
        "{}",
        r.body
    );
    let url = s.url("/v2/shop/carol-app/manifests/v1");
    assert_eq!(status_of(carol.delete(url)).await, 202);
    // ... but gets nothing on repositories it did not create.
    s.create_repo("shop/existing", false).await;
    assert_eq!(try_push(&s, &carol, "shop/existing").await, 403);
    // Plain members, robots outside the creator teams and strangers may not create.
    for (client, repo) in [
        (&dave, "shop/dave-app"),
        (&robot, "shop/robot-app"),
        (&bob, "shop/bob-app"),
    ] {
        assert_eq!(try_push(&s, client, repo).await, 403, "{repo}");
        assert!(!repo_exists(&s, repo).await, "{repo}");
    }
    // A namespace nobody owns: only a superuser may push, which creates an organization.
    assert_eq!(try_push(&s, &bob, "nowhere/app").await, 403);
    assert_eq!(try_push(&s, &s.client, "fresh/app").await, 201);
    let r = s.api("GET", "/api/v1/organization/fresh", None).await;
    assert_eq!(
        (r.status, &r.body["is_admin"]),
        (200, &json!(true)),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn config_super_users_may_do_everything() {
    let auth = AuthSettings {
        super_users: vec!["boss".to_string()],
        ..AuthSettings::default()
    };
    let s = TestServer::start_with(Settings {
        auth,
        ..Settings::default()
    })
    .await;
    let boss = s.create_user("boss").await;
    let clerk = s.create_user("clerk").await;
    s.create_org("corp").await;
    s.create_repo("corp/vault", false).await;
    let digest = push_image(&s.client, &s.base, "corp/vault", "v1", b"vault").await;
    for (client, expected) in [(&boss, 200), (&clerk, 403)] {
        let url = s.url("/v2/corp/vault/manifests/v1");
        assert_eq!(status_of(client.get(url)).await, expected);
    }
    assert_eq!(try_push(&s, &boss, "corp/vault").await, 201);
    assert_eq!(try_push(&s, &boss, "newspace/app").await, 201);
    let url = s.url(&format!("/v2/corp/vault/manifests/{digest}"));
    assert_eq!(status_of(boss.delete(url)).await, 202);
    let r = api_call(&boss, "GET", &s.url("/api/v1/user/"), None).await;
    assert_eq!(r.body["super_user"], true);
    let url = s.url("/api/v1/repository/corp/vault/changevisibility");
    let r = api_call(&boss, "POST", &url, Some(json!({"visibility": "public"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let boss_password = password_of("boss");
    let scope = ["repository:corp/vault:pull,push,delete"];
    let token = registry_token(&s.base, Some(("boss", &boss_password)), &scope).await;
    assert_eq!(granted_actions(&token, "corp/vault"), "pull,push,delete");
}

#[tokio::test]
async fn a_stale_token_creates_no_repository_once_the_right_to_create_is_gone() {
    let s = TestServer::start().await;
    s.create_user("carol").await;
    s.create_org("shop").await;
    s.create_team("shop", "creators", "creator").await;
    s.add_team_member("shop", "creators", "carol").await;
    let password = password_of("carol");
    let scope = ["repository:shop/later:pull,push"];
    let token = registry_token(&s.base, Some(("carol", &password)), &scope).await;
    assert_eq!(granted_actions(&token, "shop/later"), "pull,push");
    let path = "/api/v1/organization/shop/team/creators/members/carol";
    assert_eq!(s.api("DELETE", path, None).await.status, 204);
    // Creating a repository (and the admin grant that comes with it) outlives the token, so
    // it needs the right to create now, not an hour ago.
    let status = try_push(&s, &bearer_client(&token), "shop/later").await;
    assert_eq!(status, 403);
    assert!(!repo_exists(&s, "shop/later").await);
}
