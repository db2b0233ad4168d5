//! Accounts, teams, repository permissions, API tokens and signing keys: the access-control
//! facts, as a role trait beside [`super::MetadataStore`].

use async_trait::async_trait;
use oci::{Digest, RepoName};

use super::Result;

/// A fieldless enum with the name each variant is stored and sent as: `as_str`, `parse` (for
/// wire input) and `FromStr` (for reading the database back).
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = &'static str;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s).ok_or(concat!("not a ", stringify!($name)))
            }
        }
    };
}

named_enum! {
    /// What kind of account a name belongs to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    AccountKind {
        User = "user",
        Organization = "organization",
        Robot = "robot",
    }
}

/// A user, organization or robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub kind: AccountKind,
    /// argon2 PHC string (users only).
    pub password_hash: Option<String>,
    pub email: Option<String>,
    /// Marked superuser in the database (config `SUPER_USERS` adds more).
    pub superuser: bool,
    /// The namespace a robot belongs to.
    pub namespace: Option<String>,
    /// SHA-256 of a robot's token (robots only).
    pub token_hash: Option<String>,
}

named_enum! {
    /// A repository role, ordered by what it allows.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    Role {
        Read = "read",
        Write = "write",
        Admin = "admin",
    }
}

named_enum! {
    /// A team's role in its organization.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    TeamRole {
        Member = "member",
        Creator = "creator",
        Admin = "admin",
    }
}

/// A team of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: i64,
    pub org: String,
    pub name: String,
    pub role: TeamRole,
    pub description: String,
}

/// Who a repository permission is granted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// A user or robot, by account name.
    Account(String),
    /// A team of the repository's organization, by team name.
    Team(String),
}

/// One permission on a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub grantee: Grantee,
    /// For account grantees: user or robot.
    pub kind: Option<AccountKind>,
    pub role: Role,
}

/// A repository's access-control facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInfo {
    pub name: RepoName,
    pub public: bool,
    pub description: String,
    /// Whether its content may change (Quay's repository state).
    pub state: RepoState,
}

/// Quay's repository states: whether a repository's content may change, and who changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RepoState {
    /// Pushes, tag moves and deletes as permissions allow.
    #[default]
    Normal,
    /// Nothing may change its content; reads as usual.
    ReadOnly,
    /// Kept in sync with an external repository by berth's mirror worker; users' changes to
    /// its content are refused.
    Mirror,
}

impl RepoState {
    /// Quay's name of the state (`NORMAL`, `READ_ONLY`, `MIRROR`), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoState::Normal => "NORMAL",
            RepoState::ReadOnly => "READ_ONLY",
            RepoState::Mirror => "MIRROR",
        }
    }

    /// The state named `name` (Quay's names, exactly).
    pub fn parse(name: &str) -> Option<RepoState> {
        match name {
            "NORMAL" => Some(RepoState::Normal),
            "READ_ONLY" => Some(RepoState::ReadOnly),
            "MIRROR" => Some(RepoState::Mirror),
            _ => None,
        }
    }
}

/// Whose rights a repository listing follows. Listings return exactly the repositories
/// [`crate::auth::Auth::live_actions`] lets the reader pull, decided by the database in the
/// same query that lists them, so a listing reads only what it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// No account: public repositories.
    Anonymous,
    /// An account: public repositories, every repository of a namespace it administers (its
    /// own user namespace, an organization through an admin team) or of a proxy cache
    /// organization it is a member of, and those granted to it with any role, directly or
    /// through a team.
    Account(i64),
    /// A superuser: every repository.
    Superuser,
}

impl Reader {
    /// The two values the backends' readability condition binds: whether every repository
    /// is readable (0 or 1), and the account whose grants count (none for anonymous).
    pub(crate) fn bindings(self) -> (i64, Option<i64>) {
        match self {
            Reader::Anonymous => (0, None),
            Reader::Account(id) => (0, Some(id)),
            Reader::Superuser => (1, None),
        }
    }
}

/// Which repositories [`AccountStore::readable_repositories`] lists.
#[derive(Debug, Clone, Copy)]
pub struct RepositoryQuery<'a> {
    pub reader: Reader,
    /// Only repositories of this namespace (`ns` itself and names under `ns/`).
    pub namespace: Option<&'a str>,
    /// Only names after this one (keyset pagination).
    pub after: Option<&'a str>,
    pub limit: u32,
}

/// A repository as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySummary {
    pub name: RepoName,
    pub public: bool,
    pub description: String,
    pub tag_count: u64,
    /// When a tag last moved (milliseconds since the Unix epoch); none without tags.
    pub last_modified: Option<i64>,
}

/// A dashboard session: who signed in and the token its forms must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: Account,
    pub csrf: String,
    pub expires_at: i64,
}

/// What an account may do in a namespace, from ownership and team roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceRights {
    /// Owns the namespace (its user) or is an organization admin: admin on every repository.
    pub admin: bool,
    /// May create repositories in it.
    pub create: bool,
    /// Belongs to one of its teams (an organization), whatever the team's role.
    pub member: bool,
}

/// An API token's record (the secret itself is never stored). Times are milliseconds since
/// the Unix epoch; a token without `expires_at` never expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub uuid: uuid::Uuid,
    pub name: String,
    pub account: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// When it was last used, to the minute ([`API_TOKEN_ACCESS_RESOLUTION`]); `None`: never.
    pub last_accessed: Option<i64>,
}

/// How stale an API token's `last_accessed` may be: it is written at most this often, so
/// using a token stays a read.
pub const API_TOKEN_ACCESS_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(60);

/// Access-control storage.
#[async_trait]
/// A proxy cache configuration is an account store's too: whether a namespace is a proxy
/// cache is part of authorization (`crate::auth::Auth::proxy_cache_at`).
pub trait AccountStore:
    crate::metadata::proxy_cache::ProxyCacheStore + Send + Sync + 'static
{
    /// Moved by every commit that changes who may do what (see `crate::auth::decisions`).
    async fn access_generation(&self) -> Result<u64>;

    /// The account with this name.
    async fn account(&self, name: &str) -> Result<Option<Account>>;

    /// Accounts of one kind, by name.
    async fn list_accounts(&self, kind: AccountKind) -> Result<Vec<Account>>;

    /// How many users exist (for the first-start admin).
    async fn count_users(&self) -> Result<u64>;

    /// Creates a user. `Conflict` if the name is taken.
    async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        email: Option<&str>,
        superuser: bool,
    ) -> Result<Account>;

    /// Replaces a user's password hash, deleting the user's dashboard sessions and API tokens
    /// in the same statement (a trigger does, for every statement that changes the hash).
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<()>;

    /// Creates an organization with an `owners` admin team holding `owner`. `Conflict` if the
    /// name is taken.
    async fn create_organization(&self, name: &str, owner: &str) -> Result<Account>;

    /// Creates a robot `<namespace>+<short>` with the given token hash.
    async fn create_robot(&self, namespace: &str, short: &str, token_hash: &str)
        -> Result<Account>;

    /// Replaces a robot's token hash.
    async fn set_robot_token(&self, name: &str, token_hash: &str) -> Result<()>;

    /// Robots of a namespace.
    async fn list_robots(&self, namespace: &str) -> Result<Vec<Account>>;

    /// Deletes an account (user, organization or robot) and what hangs off it.
    async fn delete_account(&self, name: &str) -> Result<bool>;

    /// Creates or updates a team.
    async fn put_team(
        &self,
        org: &str,
        name: &str,
        role: TeamRole,
        description: &str,
    ) -> Result<Team>;

    /// Teams of an organization.
    async fn list_teams(&self, org: &str) -> Result<Vec<Team>>;

    /// Deletes a team.
    async fn delete_team(&self, org: &str, name: &str) -> Result<bool>;

    /// Adds a user or robot to a team.
    async fn add_team_member(&self, org: &str, team: &str, member: &str) -> Result<()>;

    /// Removes a member from a team.
    async fn remove_team_member(&self, org: &str, team: &str, member: &str) -> Result<bool>;

    /// Members of a team.
    async fn team_members(&self, org: &str, team: &str) -> Result<Vec<Account>>;

    /// Members of any team of an organization.
    async fn organization_members(&self, org: &str) -> Result<Vec<Account>>;

    /// What `account` may do in `namespace`.
    async fn namespace_rights(&self, account_id: i64, namespace: &str) -> Result<NamespaceRights>;

    /// The best role `account` holds on `repo` through direct and team grants.
    async fn granted_role(&self, account_id: i64, repo: &RepoName) -> Result<Option<Role>>;

    /// A repository's access facts, if it exists.
    async fn repository_info(&self, repo: &RepoName) -> Result<Option<RepositoryInfo>>;

    /// Repositories `reader` may pull (see [`Reader`]), by name, optionally of one namespace
    /// and only names containing `filter`.
    async fn repository_summaries(
        &self,
        reader: Reader,
        namespace: Option<&str>,
        filter: Option<&str>,
    ) -> Result<Vec<RepositorySummary>>;

    /// Repositories the query's reader may pull (see [`Reader`]), in byte order of their
    /// names, at most `limit`: one query that reads only what it returns.
    async fn readable_repositories(
        &self,
        query: &RepositoryQuery<'_>,
    ) -> Result<Vec<RepositoryInfo>>;

    /// Up to `limit` repositories holding `digest` that `reader` may pull (see [`Reader`]),
    /// by name: the candidate sources of a mount that names none.
    async fn readable_repositories_with_blob(
        &self,
        reader: Reader,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepoName>>;

    /// Creates a repository (private unless `public`), with `creator` (an account id) granted
    /// its role in the same transaction, so no request ever sees the repository without the
    /// grant its creator's next request relies on. `Conflict` if it exists.
    async fn create_repository(
        &self,
        repo: &RepoName,
        public: bool,
        description: &str,
        creator: Option<(i64, Role)>,
    ) -> Result<()>;

    /// Sets a repository's description.
    async fn set_description(&self, repo: &RepoName, description: &str) -> Result<bool>;

    /// Sets a repository's visibility.
    async fn set_visibility(&self, repo: &RepoName, public: bool) -> Result<bool>;

    /// Sets a repository's state; false if it does not exist. Moves the access generation, so
    /// every replica sees the new state at its next request.
    async fn set_repository_state(&self, repo: &RepoName, state: RepoState) -> Result<bool>;

    /// Deletes a repository with its tags, manifests and links (bytes stay for GC).
    async fn delete_repository(&self, repo: &RepoName) -> Result<bool>;

    /// Deletes a repository only if it holds nothing: no manifest, blob link or upload.
    async fn delete_repository_if_empty(&self, repo: &RepoName) -> Result<bool>;

    /// Grants (or changes) a permission.
    async fn set_permission(&self, repo: &RepoName, grantee: &Grantee, role: Role) -> Result<()>;

    /// Revokes a permission.
    async fn remove_permission(&self, repo: &RepoName, grantee: &Grantee) -> Result<bool>;

    /// Permissions on a repository.
    async fn list_permissions(&self, repo: &RepoName) -> Result<Vec<Permission>>;

    /// Stores `token`, whose secret hashes to `token_hash`; `NotFound` unless its owner is a user.
    async fn create_api_token(&self, token: &ApiToken, token_hash: &str) -> Result<()>;

    /// The API token that hashes to `token_hash`, and the account owning it.
    async fn api_token_account(&self, token_hash: &str) -> Result<Option<(Account, ApiToken)>>;

    /// Records that API token `uuid` was used at `at`.
    async fn touch_api_token(&self, uuid: uuid::Uuid, at: i64) -> Result<()>;

    /// Deletes the API tokens that expired before `before`; how many.
    async fn purge_expired_api_tokens(&self, before: i64) -> Result<u64>;

    /// API tokens, expired ones too, of account `owner` (everyone's for `None`), by owner and age.
    async fn api_tokens(&self, owner: Option<i64>) -> Result<Vec<ApiToken>>;

    /// Deletes an API token of `owner` (of anyone for `None`); whether there was one.
    async fn revoke_api_token(&self, uuid: uuid::Uuid, owner: Option<i64>) -> Result<bool>;

    /// The token-signing keys (kid, private PEM), oldest first; stores `candidate` first when
    /// there is none, so every replica ends up with the same key.
    async fn signing_keys(&self, candidate: (&str, &str)) -> Result<Vec<(String, String)>>;

    /// Records a dashboard session for `account` (by hash of its cookie value); forgets
    /// expired sessions on the way.
    async fn create_session(
        &self,
        token_hash: &str,
        account: &str,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()>;

    /// The unexpired session whose cookie value hashes to `token_hash`.
    async fn session(&self, token_hash: &str, now: i64) -> Result<Option<Session>>;

    /// Ends a session. Absent sessions are not an error.
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
}
