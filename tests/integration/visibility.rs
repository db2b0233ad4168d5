//! Listings decided by the database: the catalog, the management API's and the dashboard's
//! repository lists and mounts without `from` ask the database only for repositories the caller
//! may read. The SQL that decides must say exactly what `Auth::live_actions` says.

use crate::common;

use common::*;

use std::collections::BTreeSet;

use berth::auth::{Auth, Identity};
use berth::config::Settings;
use berth::metadata::accounts::{Grantee, Role, TeamRole};
use oci::{Digest, RepoName};

fn name(s: &str) -> RepoName {
    s.parse().expect("repository name")
}

/// Every repository, by name.
async fn every_repository(s: &TestServer) -> Vec<RepoName> {
    s.metadata_store()
        .await
        .list_repositories(None, u32::MAX)
        .await
        .expect("list repositories")
}

/// The principals of the matrix: anonymous and every account, as the server sees them.
async fn principals(s: &TestServer, names: &[&str]) -> Vec<(String, Option<Identity>)> {
    let auth = &s.state().auth;
    let mut out = vec![("anonymous".to_string(), None)];
    for n in names {
        let account = auth
            .accounts()
            .account(n)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("account {n}"));
        out.push((n.to_string(), Some(auth.identity(&account))));
    }
    out
}

/// What `Auth::live_actions` lets `who` pull, one decision per repository.
async fn pullable(auth: &Auth, who: Option<&Identity>, all: &[RepoName]) -> Vec<RepoName> {
    let mut out = Vec::new();
    for repo in all {
        if auth.live_actions(who, repo).await.unwrap().pull {
            out.push(repo.clone());
        }
    }
    out
}

/// Sets up accounts, teams, grants and repositories covering every way a repository may be
/// readable or not, and returns the account names.
async fn populate(s: &TestServer) -> Vec<&'static str> {
    let store = s.metadata_store().await;
    let hash = berth::auth::secret::hash_password("unused-password");
    for user in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        store.create_user(user, &hash, None, false).await.unwrap();
    }
    store.create_user("root", &hash, None, true).await.unwrap();
    // `ops` is a superuser through SUPER_USERS only.
    store.create_user("ops", &hash, None, false).await.unwrap();
    // acme: alice owns it (its owners team); bob is in an admin team, carol may create, dave
    // is a plain member.
    store.create_organization("acme", "alice").await.unwrap();
    store
        .put_team("acme", "leads", TeamRole::Admin, "")
        .await
        .unwrap();
    store
        .put_team("acme", "builders", TeamRole::Creator, "")
        .await
        .unwrap();
    store
        .put_team("acme", "readers", TeamRole::Member, "")
        .await
        .unwrap();
    store.add_team_member("acme", "leads", "bob").await.unwrap();
    store
        .add_team_member("acme", "builders", "carol")
        .await
        .unwrap();
    store
        .add_team_member("acme", "readers", "dave")
        .await
        .unwrap();
    store.create_robot("acme", "ci", "hash-ci").await.unwrap();
    store
        .create_robot("acme", "lead", "hash-lead")
        .await
        .unwrap();
    store
        .add_team_member("acme", "readers", "acme+ci")
        .await
        .unwrap();
    store
        .add_team_member("acme", "leads", "acme+lead")
        .await
        .unwrap();
    // An organization whose name extends acme's: its repositories are not acme's.
    store.create_organization("acmex", "erin").await.unwrap();

    let repos: [(&str, bool); 14] = [
        ("alice/private", false),
        ("alice/public", true),
        ("acme/plain", false),
        ("acme/open", true),
        ("acme/for-carol", false),
        ("acme/for-readers", false),
        ("acme/for-ci", false),
        ("acme/deep/nested/name", false),
        ("acmex/private", false),
        ("bob/private", false),
        ("frank/shared", false),
        ("ghost/no-namespace", false),
        ("solo", false),
        ("solo-public", true),
    ];
    for (repo, public) in repos {
        store
            .create_repository(&name(repo), public, "", None)
            .await
            .unwrap();
    }
    let grant = |repo: &'static str, grantee: Grantee, role: Role| {
        let store = store.clone();
        async move {
            store
                .set_permission(&name(repo), &grantee, role)
                .await
                .unwrap()
        }
    };
    grant(
        "acme/for-carol",
        Grantee::Account("carol".into()),
        Role::Read,
    )
    .await;
    grant(
        "acme/for-readers",
        Grantee::Team("readers".into()),
        Role::Write,
    )
    .await;
    grant(
        "acme/for-ci",
        Grantee::Account("acme+ci".into()),
        Role::Read,
    )
    .await;
    grant("frank/shared", Grantee::Account("dave".into()), Role::Admin).await;
    grant("bob/private", Grantee::Account("erin".into()), Role::Write).await;
    vec![
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
        "frank",
        "root",
        "ops",
        "acme+ci",
        "acme+lead",
    ]
}

/// The SQL that lists repositories must grant pull exactly where `live_actions` does, for
/// every kind of principal, in every listing that uses it.
#[tokio::test]
async fn listings_agree_with_live_actions_for_every_principal() {
    let mut settings = berth::config::Settings::default();
    settings.auth.super_users = vec!["ops".into()];
    let s = TestServer::start_with(settings).await;
    let accounts = populate(&s).await;
    let store = s.metadata_store().await;
    let all = every_repository(&s).await;
    // A blob held by some repositories of each kind.
    let digest: Digest = sha256(b"shared layer").parse().unwrap();
    for repo in [
        "acme/plain",
        "acme/open",
        "frank/shared",
        "ghost/no-namespace",
        "solo",
    ] {
        store.link_blob(&name(repo), &digest, 12).await.unwrap();
    }
    let holding: BTreeSet<RepoName> = [
        "acme/plain",
        "acme/open",
        "frank/shared",
        "ghost/no-namespace",
        "solo",
    ]
    .iter()
    .map(|r| name(r))
    .collect();
    let auth = &s.state().auth;
    let mut seen_sizes = BTreeSet::new();
    for (who, identity) in principals(&s, &accounts).await {
        let identity = identity.as_ref();
        let expected = pullable(auth, identity, &all).await;
        seen_sizes.insert(expected.len());
        let listed: Vec<RepoName> = auth
            .readable_repositories(identity, None, None, u32::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(listed, expected, "{who}: catalog listing");

        // Page by page, with `after` as the catalog passes it.
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = auth
                .readable_repositories(identity, None, after.as_deref(), 2)
                .await
                .unwrap();
            assert!(page.len() <= 2);
            paged.extend(page.iter().map(|i| i.name.clone()));
            match page.last() {
                Some(last) if page.len() == 2 => after = Some(last.name.to_string()),
                _ => break,
            }
        }
        assert_eq!(paged, expected, "{who}: pages");

        for ns in ["acme", "alice", "acmex", "solo", "ghost", "nobody"] {
            let in_ns: Vec<RepoName> = expected
                .iter()
                .filter(|r| r.namespace() == ns)
                .cloned()
                .collect();
            let listed: Vec<RepoName> = auth
                .readable_repositories(identity, Some(ns), None, u32::MAX)
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.name)
                .collect();
            assert_eq!(listed, in_ns, "{who}: namespace {ns}");
        }

        let summaries: Vec<RepoName> = store
            .repository_summaries(Auth::reader(identity), None, None)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(summaries, expected, "{who}: dashboard summaries");

        let sources = auth
            .readable_repositories_with_blob(identity, &digest, 100)
            .await
            .unwrap();
        let expected_sources: Vec<RepoName> = expected
            .iter()
            .filter(|r| holding.contains(*r))
            .cloned()
            .collect();
        assert_eq!(sources, expected_sources, "{who}: mount sources");
    }
    // The matrix covers readers who see little, some and everything.
    assert!(seen_sizes.len() >= 5, "{seen_sizes:?}");
    assert!(seen_sizes.contains(&all.len()));
}

/// With 3,000 private repositories, an anonymous catalog took 0.3 s: each request decided
/// visibility once per repository. Now the database pages through what the caller may read.
#[tokio::test]
async fn the_catalog_reads_only_the_page_it_returns() {
    let mut settings = Settings::default();
    settings.auth.public_catalog = true;
    let s = TestServer::start_with(settings).await;
    let store = s.metadata_store().await;
    let hidden: Vec<RepoName> = (0..3000)
        .map(|i| name(&format!("hidden/r{i:04}")))
        .collect();
    for chunk in hidden.chunks(100) {
        let creations = chunk
            .iter()
            .map(|repo| store.create_repository(repo, false, "", None));
        for result in futures::future::join_all(creations).await {
            result.unwrap();
        }
    }
    for repo in ["open/a", "open/b", "open/c", "zzz/last"] {
        store
            .create_repository(&name(repo), true, "", None)
            .await
            .unwrap();
    }
    let auth = &s.state().auth;
    let anonymous = reqwest::Client::new();
    let decisions = auth.live_decisions();
    let pages = walk_catalog(&anonymous, &s.base, 2).await;
    assert_eq!(
        pages,
        [vec!["open/a", "open/b"], vec!["open/c", "zzz/last"]],
        "anonymous callers see the public repositories, two per page"
    );
    assert_eq!(
        auth.live_decisions() - decisions,
        0,
        "the catalog decided visibility repository by repository"
    );

    // A signed-in user sees the hidden repository granted to her among the public ones.
    let carol = s.create_user("carol").await;
    store
        .set_permission(
            &name("hidden/r1234"),
            &Grantee::Account("carol".into()),
            Role::Read,
        )
        .await
        .unwrap();
    let decisions = auth.live_decisions();
    let pages = walk_catalog(&carol, &s.base, 3).await;
    assert_eq!(
        pages,
        [
            vec!["hidden/r1234", "open/a", "open/b"],
            vec!["open/c", "zzz/last"]
        ]
    );
    assert_eq!(auth.live_decisions() - decisions, 0);

    // The management API and the dashboard list from the same query.
    let decisions = auth.live_decisions();
    let r = api_call(&carol, "GET", &s.url("/api/v1/repository"), None).await;
    assert_eq!(r.status, 200);
    let listed: Vec<String> = r.body["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["namespace"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        listed,
        ["hidden/r1234", "open/a", "open/b", "open/c", "zzz/last"]
    );
    let r = api_call(
        &carol,
        "GET",
        &s.url("/api/v1/repository?namespace=hidden"),
        None,
    )
    .await;
    assert_eq!(
        r.body["repositories"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    let page = anonymous
        .get(s.url("/repository/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("open/a") && !page.contains("hidden/r"),
        "{page}"
    );
    assert_eq!(auth.live_decisions() - decisions, 0);
}

/// The catalog from `/v2/_catalog?n=<n>`, page by page through the `Link` headers.
async fn walk_catalog(client: &reqwest::Client, base: &str, n: u32) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(format!("/v2/_catalog?n={n}"));
    while let Some(path) = next.take() {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        next = r.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_string()
        });
        let body: serde_json::Value = r.json().await.unwrap();
        pages.push(
            body["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect(),
        );
        assert!(pages.len() < 100, "the catalog does not end");
    }
    pages
}

/// A mount without `from` probed up to 100 repositories holding the digest, readable or not,
/// so its latency told whether someone's private repository held it. Now only repositories
/// the caller may read are considered: the work done, like the answer, is the same whether
/// the digest sits in other people's private repositories or nowhere.
#[tokio::test]
async fn a_mount_without_from_considers_only_readable_repositories() {
    let s = TestServer::start().await;
    let secret = b"someone else's private layer";
    let secret_digest = sha256(secret);
    for i in 0..20 {
        s.push(&format!("vault/r{i:02}"), secret).await;
    }
    let shared = b"a layer in a public repository";
    let shared_digest = s.push("library/base", shared).await;
    s.set_visibility("library/base", true).await;
    let granted = b"a layer in a repository granted to mallory";
    let granted_digest = s.push("team/tools", granted).await;
    let mallory = s.create_user("mallory").await;
    s.grant("team/tools", "mallory", "read").await;
    let auth = &s.state().auth;

    let mount = |digest: String| {
        let mallory = mallory.clone();
        let url = s.url(&format!("/v2/mallory/app/blobs/uploads/?mount={digest}"));
        async move { mallory.post(url).send().await.unwrap() }
    };
    // Warm up: the first request creates mallory/app.
    assert_eq!(mount(sha256(b"nowhere")).await.status(), 202);

    let before = auth.live_decisions();
    let r = mount(sha256(b"nowhere at all")).await;
    assert_eq!(r.status(), 202);
    let for_nowhere = auth.live_decisions() - before;

    let before = auth.live_decisions();
    let r = mount(secret_digest.clone()).await;
    assert_eq!(
        r.status(),
        202,
        "a private blob of someone else must not be mounted"
    );
    assert!(header(&r, "location").starts_with("/v2/mallory/app/blobs/uploads/"));
    let for_secret = auth.live_decisions() - before;
    assert_eq!(
        for_secret, for_nowhere,
        "the mount looked at repositories the caller cannot read"
    );
    let r = mallory
        .head(s.url(&format!("/v2/mallory/app/blobs/{secret_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Readable sources are still found: a public repository and a granted one.
    for (digest, content) in [(shared_digest, &shared[..]), (granted_digest, &granted[..])] {
        let r = mount(digest.clone()).await;
        assert_eq!(r.status(), 201, "mount {digest}");
        assert_eq!(
            header(&r, "location"),
            format!("/v2/mallory/app/blobs/{digest}")
        );
        assert_eq!(
            pull_blob(&mallory, &s.base, "mallory/app", &digest).await,
            content
        );
    }
}
