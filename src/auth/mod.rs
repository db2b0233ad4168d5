//! Authentication and authorization.
//!
//! Every /v2 request is authorized through [`Auth::authorize`], from one of three credentials:
//! none (anonymous), HTTP Basic (a user's password or a robot's token), or a bearer token
//! issued by the token endpoint. The decision itself ([`Auth::live_actions`]) follows Quay's
//! model: superusers and namespace admins may do everything, others what their direct and team
//! grants allow, anyone may pull a public repository, and push may create a repository where
//! the caller may create. Management actions (accounts, teams, robots, permissions, repository
//! settings) are decided by [`Auth::is_namespace_admin`], [`Auth::is_repo_admin`] and
//! [`Auth::is_superuser`], which robots never pass: robots get content rights only.

pub mod api_token;
mod decisions;
pub mod limiter;
pub mod scope;
pub mod secret;
pub mod token;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use oci::{Digest, RepoName};

use crate::metadata::accounts::{
    Account, AccountKind, AccountStore, Reader, RepoState, RepositoryInfo, RepositoryQuery, Role,
};
use crate::metadata::proxy_cache::ProxyCacheRecord;
use crate::metadata::trust::{TrustScope, TrustStore};
use crate::metadata::MetadataError;
use crate::metrics::{metrics, AuthFailure};
use decisions::RepoFacts;
use limiter::LoginLimiter;
use scope::{AccessEntry, Actions, Scope};
use secret::secrets_equal;
use token::{Claims, TokenKeys};

/// Auth settings from the config file (Quay's keys where Quay has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// `SUPER_USERS`: account names with superuser rights.
    pub super_users: Vec<String>,
    /// `TOKEN_LIFETIME_SECONDS`: lifetime of registry tokens (default one hour).
    pub token_lifetime_secs: u64,
    /// `LOGIN_FAILURES_PER_MINUTE`: failed logins for one account from one client address
    /// (five times as many for an address over all accounts) that go through at once, and the
    /// rate per minute they are slowed to beyond that (see [`limiter`]). Failures never make
    /// berth refuse a right password from another address.
    pub login_failures_per_minute: u32,
    /// `CREATE_PRIVATE_REPO_ON_PUSH`: repositories created by a push are private.
    pub create_private_repo_on_push: bool,
    /// `AUTHENTICATION_TYPE: None`: no authentication on /v2, every client may push, pull and
    /// delete everywhere (like distribution without auth). For trusted networks and benchmarks;
    /// the dashboard and management API still need an account.
    pub open_registry: bool,
    /// `FEATURE_PUBLIC_CATALOG`: anonymous callers may list the public repositories in
    /// `/v2/_catalog`; otherwise they are asked to authenticate, as Quay does.
    pub public_catalog: bool,
    /// `APP_SPECIFIC_TOKEN_EXPIRATION`: how long a new API token lasts (`None`, the default as
    /// in Quay: until revoked); `berth token create --expires-in` may say otherwise.
    pub api_token_expiration: Option<Duration>,
    /// `EXPIRED_APP_SPECIFIC_TOKEN_GC`: how long an expired API token is still listed (as
    /// expired) before it is deleted; Quay's default is a day.
    pub expired_api_token_gc: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            super_users: Vec::new(),
            token_lifetime_secs: 3600,
            login_failures_per_minute: 10,
            create_private_repo_on_push: true,
            open_registry: false,
            public_catalog: false,
            api_token_expiration: None,
            expired_api_token_gc: Duration::from_secs(86_400),
        }
    }
}

/// An authenticated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: i64,
    pub name: String,
    pub kind: AccountKind,
    pub superuser: bool,
    /// A MAC of the account's id and credential (a user's password hash, a robot's token
    /// hash), written into its registry tokens: a new password, a regenerated robot token, or
    /// another account under the same name no longer matches, and the tokens stop working.
    pub credential_mark: String,
}

/// How a request authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    /// No credentials.
    Anonymous,
    /// HTTP Basic or an API token: rights are decided live.
    Account(Identity),
    /// A registry token: rights are those in its claims that the account still has.
    Token {
        claims: Claims,
        identity: Option<Identity>,
        /// The access generation the account was read under, which the request's decisions
        /// use too.
        generation: u64,
    },
}

impl Credential {
    /// The account behind the credential, if any.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Credential::Anonymous => None,
            Credential::Account(i) => Some(i),
            Credential::Token { identity, .. } => identity.as_ref(),
        }
    }
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid username or password")]
    BadCredentials,
    #[error("too many failed logins; try again later")]
    TooManyAttempts,
    #[error("invalid token: {0}")]
    BadToken(String),
    #[error("malformed Authorization header")]
    Malformed,
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// Counts a refused login or credential in the metrics, by reason.
fn count_failure(e: &AuthError) {
    let reason = match e {
        AuthError::BadCredentials => AuthFailure::BadCredentials,
        AuthError::TooManyAttempts => AuthFailure::TooManyAttempts,
        AuthError::BadToken(_) => AuthFailure::BadToken,
        AuthError::Malformed => AuthFailure::Malformed,
        // The database failed, not the caller.
        AuthError::Metadata(_) => return,
    };
    metrics().auth_failure(reason);
}

/// Why an authenticated or anonymous caller may not do what it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// 401: authenticate (or fetch a token with more scope) and try again.
    Unauthorized { insufficient_scope: bool },
    /// 403: the caller is known and not allowed.
    Forbidden,
}

/// How long a verified Basic credential is remembered after its last use, so clients that
/// send Basic on every request (or fetch a token per repository) do not pay an argon2
/// verification, and its 19 MiB, again and again. Each use extends it. A new password or a
/// deleted account ends it at once whatever is left of it (the remembered hash must still be
/// the account's), so its length bounds only how long memory holds it.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);

/// The auth service.
pub struct Auth {
    accounts: Arc<dyn AccountStore>,
    keys: TokenKeys,
    settings: RwLock<Arc<AuthSettings>>,
    limiter: LoginLimiter,
    /// Remembered password checks, by a MAC of (name, password) under `basic_cache_key`.
    basic_cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    /// A key of this process only: what is kept in memory cannot be tested against guesses
    /// without it.
    basic_cache_key: secret::MacKey,
    /// Checks of the same credentials in progress (see [`Auth::login`]), by the same key.
    credential_turns: Mutex<HashMap<[u8; 32], std::sync::Weak<tokio::sync::Mutex<()>>>>,
    /// argon2 checks run since start.
    password_checks_run: AtomicU64,
    /// Password checks running at once. Each argon2 check holds about 19 MiB for its
    /// duration: unbounded, 128 clients logging in together took 2.5 GiB. One per core keeps
    /// memory flat and costs no throughput, since the checks are CPU-bound.
    password_checks: tokio::sync::Semaphore,
    /// How many times [`Auth::live_actions`] decided, a cost measure: a listing must not
    /// decide once per repository it skips.
    live_decisions: AtomicU64,
    /// Signs the dashboard's flash cookie.
    cookie_key: secret::MacKey,
    /// Keys [`Identity::credential_mark`]: the same on every replica, opaque to token holders.
    token_mark_key: secret::MacKey,
    /// Accounts and decisions read from the database, for as long as they are exact.
    decisions: decisions::Decisions,
}

fn role_actions(role: Option<Role>) -> Actions {
    match role {
        None => Actions::NONE,
        Some(Role::Read) => Actions::PULL,
        Some(Role::Write) | Some(Role::Admin) => Actions::ALL,
    }
}

impl Auth {
    /// Builds the service, loading (or creating) the token signing key.
    pub async fn new(
        accounts: Arc<dyn AccountStore>,
        settings: AuthSettings,
    ) -> anyhow::Result<Auth> {
        let keys = TokenKeys::load(accounts.as_ref()).await?;
        let cookie_key = keys.mac_key("dashboard cookies");
        let token_mark_key = keys.mac_key("registry token credential marks");
        Ok(Auth {
            cookie_key,
            token_mark_key,
            accounts,
            keys,
            settings: RwLock::new(Arc::new(settings)),
            limiter: LoginLimiter::default(),
            basic_cache: Mutex::new(HashMap::new()),
            basic_cache_key: secret::MacKey::random(),
            credential_turns: Mutex::new(HashMap::new()),
            password_checks_run: AtomicU64::new(0),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            live_decisions: AtomicU64::new(0),
            decisions: decisions::Decisions::default(),
        })
    }

    /// The key that signs the dashboard's cookies (the flash message).
    pub fn cookie_key(&self) -> &secret::MacKey {
        &self.cookie_key
    }

    /// The account store.
    pub fn accounts(&self) -> &Arc<dyn AccountStore> {
        &self.accounts
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<AuthSettings> {
        self.settings
            .read()
            .expect("auth settings lock poisoned")
            .clone()
    }

    /// Replaces the settings (config reload).
    pub fn apply_settings(&self, settings: AuthSettings) {
        *self.settings.write().expect("auth settings lock poisoned") = Arc::new(settings);
        self.basic_cache
            .lock()
            .expect("cache lock poisoned")
            .clear();
        // Superusers from `SUPER_USERS` decide without the database.
        self.decisions.forget();
    }

    /// The account named `name`, as of the access generation `generation`.
    async fn account_at(
        &self,
        generation: u64,
        name: &str,
    ) -> Result<Option<Arc<Account>>, MetadataError> {
        if let Some(known) = self.decisions.account(generation, name) {
            return Ok(known);
        }
        let account = self.accounts.account(name).await?.map(Arc::new);
        self.decisions
            .remember_account(generation, name, account.clone());
        Ok(account)
    }

    /// The identity of an account, with superuser rights from the database or `SUPER_USERS`.
    pub fn identity(&self, account: &Account) -> Identity {
        let superuser = account.superuser
            || self
                .settings()
                .super_users
                .iter()
                .any(|s| s == &account.name);
        let credential = account.password_hash.as_deref();
        let credential = credential.or(account.token_hash.as_deref()).unwrap_or("");
        let id = account.id.to_be_bytes();
        let mark = self.token_mark_key.sign(&[&id, credential.as_bytes()]);
        Identity {
            id: account.id,
            name: account.name.clone(),
            kind: account.kind,
            superuser,
            credential_mark: hex::encode(&mark[..16]),
        }
    }

    /// Checks a username and password (or a robot's token).
    ///
    /// A robot's right token, and a user password verified in the last
    /// [`BASIC_CACHE_TTL`], pass at once: tokens are 256 random bits and cannot be guessed,
    /// and a remembered password was right moments ago. Every other login goes through the
    /// [`limiter`] (which slows guessing down; see its rule) and costs one argon2 check,
    /// whether the name is a user, a robot, an organization or nobody, so a failure takes as
    /// long as any other and does not tell which names exist.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Identity, AuthError> {
        let result = self.check_login(username, password, client).await;
        if let Err(e) = &result {
            count_failure(e);
        }
        result
    }

    async fn check_login(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Identity, AuthError> {
        let plausible = username.len() <= 256 && password.len() <= 1024;
        let account = if plausible {
            let generation = self.accounts.access_generation().await?;
            self.account_at(generation, username).await?
        } else {
            None
        };
        let cache_key = self
            .basic_cache_key
            .sign(&[username.as_bytes(), password.as_bytes()]);
        // Trusted only while the account still has the password hash it was checked against;
        // each use extends it.
        let remembered = |a: &Account| {
            a.kind == AccountKind::User
                && self
                    .basic_cache
                    .lock()
                    .expect("cache lock poisoned")
                    .get_mut(&cache_key)
                    .is_some_and(|(phc, at)| {
                        let fresh = at.elapsed() < BASIC_CACHE_TTL
                            && a.password_hash.as_deref() == Some(phc.as_str());
                        if fresh {
                            *at = Instant::now();
                        }
                        fresh
                    })
        };
        match &account {
            Some(a) if remembered(a) => {
                self.limiter.forgive(username, client);
                return Ok(self.identity(a));
            }
            Some(a) if a.kind == AccountKind::Robot => {
                // The account as of this request's access generation: a regenerated token
                // counts at once.
                let presented = secret::token_hash(password);
                let stored = a.token_hash.as_deref().unwrap_or_default();
                if !stored.is_empty() && secrets_equal(stored.as_bytes(), presented.as_bytes()) {
                    self.limiter.forgive(username, client);
                    return Ok(self.identity(a));
                }
            }
            _ => {}
        }
        let limit = self.settings().login_failures_per_minute;
        let attempt = self
            .limiter
            .admit(username, client, limit)
            .await
            .map_err(|_| AuthError::TooManyAttempts)?;
        // Clients that open many connections at once (a CI job's parallel pushes, podman's
        // layers, 32 bench clients) send the same credentials together: checks of the same
        // credentials take turns, and all but the first find a success remembered instead of
        // each paying an argon2 check and its 19 MiB. Every plausible attempt takes its turn,
        // whatever the name is, so that waiting does not tell which names exist.
        let turn = plausible.then(|| self.credential_turn(cache_key));
        let _same_credentials = match &turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        let verified = match account {
            Some(a) if remembered(&a) => Some(a),
            Some(a) if a.kind == AccountKind::User => {
                let phc = a.password_hash.clone();
                self.check_password(password, phc).await.then_some(a)
            }
            // Unknown names, robots with a wrong token, organizations: the same work as a
            // wrong password, for the same time.
            _ if plausible => {
                self.check_password(password, None).await;
                None
            }
            _ => None,
        };
        match verified {
            Some(account) => {
                attempt.succeeded();
                if let Some(phc) = &account.password_hash {
                    let mut cache = self.basic_cache.lock().expect("cache lock poisoned");
                    if cache.len() > 10_000 {
                        cache.clear();
                    }
                    cache.insert(cache_key, (phc.clone(), Instant::now()));
                }
                Ok(self.identity(&account))
            }
            None => {
                attempt.failed();
                Err(AuthError::BadCredentials)
            }
        }
    }

    /// How many argon2 password checks this process has run, successful or not.
    pub fn password_checks_run(&self) -> u64 {
        self.password_checks_run.load(Ordering::Relaxed)
    }

    /// The lock that checks of the credentials with this cache key take turns on.
    fn credential_turn(&self, key: [u8; 32]) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.credential_turns.lock().expect("turns lock poisoned");
        if let Some(turn) = turns.get(&key).and_then(std::sync::Weak::upgrade) {
            return turn;
        }
        // Bounded: entries whose checks all ended are dropped once the table grows.
        if turns.len() >= 1_000 {
            turns.retain(|_, turn| turn.strong_count() > 0);
        }
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        turns.insert(key, Arc::downgrade(&turn));
        turn
    }

    /// One argon2 check of `password` against `phc`, or against nothing (a user without a
    /// password, or no user: for the time it takes), at most one per core at a time.
    async fn check_password(&self, password: &str, phc: Option<String>) -> bool {
        let password = password.to_string();
        let _turn = self.password_checks.acquire().await;
        self.password_checks_run.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => secret::verify_password(&password, &phc),
            None => {
                secret::verify_against_nothing(&password);
                false
            }
        })
        .await
        .unwrap_or(false)
    }

    /// Resolves an `Authorization` header value; a registry token must be for `service`, the
    /// service this registry names in its `WWW-Authenticate` challenges.
    pub async fn credential(
        &self,
        authorization: Option<&str>,
        client: Option<IpAddr>,
        service: &str,
    ) -> Result<Credential, AuthError> {
        let Some(value) = authorization else {
            return Ok(Credential::Anonymous);
        };
        let result = self.resolve(value, client, service).await;
        // A Basic login counted its own failure.
        if let Err(e @ (AuthError::BadToken(_) | AuthError::Malformed)) = &result {
            count_failure(e);
        }
        result
    }

    async fn resolve(
        &self,
        value: &str,
        client: Option<IpAddr>,
        service: &str,
    ) -> Result<Credential, AuthError> {
        match parse_authorization(value).ok_or(AuthError::Malformed)? {
            Authorization::Basic { user, password } => Ok(Credential::Account(
                self.login(&user, &password, client).await?,
            )),
            Authorization::ApiToken(token) => {
                let (account, record) = self
                    .accounts
                    .api_token_account(&secret::token_hash(token))
                    .await?
                    .ok_or_else(|| AuthError::BadToken("unknown or revoked API token".into()))?;
                let now = api_token::now_millis();
                if api_token::expired(record.expires_at, now) {
                    return Err(AuthError::BadToken("the API token has expired".into()));
                }
                api_token::record_use(self.accounts.as_ref(), &record, now).await;
                // Older berths let the CLI make tokens for robots and organizations.
                if account.kind != AccountKind::User {
                    return Err(AuthError::BadToken("API tokens belong to users".into()));
                }
                Ok(Credential::Account(self.identity(&account)))
            }
            Authorization::RegistryToken(token) => {
                let claims = self
                    .keys
                    .verify(token, service)
                    .map_err(|e| AuthError::BadToken(e.to_string()))?;
                let generation = self.accounts.access_generation().await?;
                let identity = if claims.sub.is_empty() {
                    None
                } else {
                    let identity = match self.account_at(generation, &claims.sub).await? {
                        Some(account) => self.identity(&account),
                        None => {
                            return Err(AuthError::BadToken(
                                "the token's account no longer exists".into(),
                            ))
                        }
                    };
                    let mark = identity.credential_mark.as_bytes();
                    if !secrets_equal(mark, claims.cred.as_bytes()) {
                        return Err(AuthError::BadToken(
                            "the token's account changed its credentials since".into(),
                        ));
                    }
                    Some(identity)
                };
                Ok(Credential::Token {
                    claims,
                    identity,
                    generation,
                })
            }
        }
    }

    /// Whether `repo` exists, and if so its facts, as of `generation`.
    async fn repository_at(
        &self,
        generation: u64,
        repo: &RepoName,
    ) -> Result<Option<RepoFacts>, MetadataError> {
        if let Some(known) = self.decisions.repository(generation, repo.as_str()) {
            return Ok(known);
        }
        let facts = self
            .accounts
            .repository_info(repo)
            .await?
            .map(|i| RepoFacts {
                public: i.public,
                state: i.state,
            });
        self.decisions
            .remember_repository(generation, repo.as_str(), facts);
        Ok(facts)
    }

    /// The state of `repo` ([`RepoState::Normal`] when it does not exist), which decides
    /// whether its content may change: remembered under the access generation `generation`
    /// (read now when `None`), so the push path pays no query for it and a change counts at
    /// the next request on every replica. `crate::mirror::content_refusal` turns it into the
    /// refusal callers answer with.
    pub async fn repository_state(
        &self,
        generation: Option<u64>,
        repo: &RepoName,
    ) -> Result<RepoState, MetadataError> {
        let generation = match generation {
            Some(g) => g,
            None => self.accounts.access_generation().await?,
        };
        Ok(self
            .repository_at(generation, repo)
            .await?
            .map_or(RepoState::Normal, |f| f.state))
    }

    /// Whether `repo` exists now (asked by every push request).
    async fn repository_exists(&self, repo: &RepoName) -> Result<bool, MetadataError> {
        let generation = self.accounts.access_generation().await?;
        Ok(self.repository_at(generation, repo).await?.is_some())
    }

    /// What `who` may do on `repo` right now.
    pub async fn live_actions(
        &self,
        who: Option<&Identity>,
        repo: &RepoName,
    ) -> Result<Actions, MetadataError> {
        let generation = self.accounts.access_generation().await?;
        self.live_actions_at(generation, who, repo).await
    }

    /// What `who` may do on `repo` as of the access generation `generation`: remembered, or
    /// decided from the database.
    async fn live_actions_at(
        &self,
        generation: u64,
        who: Option<&Identity>,
        repo: &RepoName,
    ) -> Result<Actions, MetadataError> {
        self.live_decisions.fetch_add(1, Ordering::Relaxed);
        if who.is_some_and(|w| w.superuser) {
            return Ok(Actions::ALL);
        }
        let id = who.map(|w| w.id);
        if let Some(actions) = self.decisions.actions(generation, id, repo.as_str()) {
            return Ok(actions);
        }
        let actions = self.decide(generation, who, repo).await?;
        self.decisions
            .remember_actions(generation, id, repo.as_str(), actions);
        Ok(actions)
    }

    /// Quay's rules, read from the database.
    async fn decide(
        &self,
        generation: u64,
        who: Option<&Identity>,
        repo: &RepoName,
    ) -> Result<Actions, MetadataError> {
        let info = self.repository_at(generation, repo).await?;
        let public = info.is_some_and(|f| f.public);
        let Some(who) = who else {
            return Ok(if public { Actions::PULL } else { Actions::NONE });
        };
        let rights = self
            .accounts
            .namespace_rights(who.id, repo.namespace())
            .await?;
        if rights.admin {
            return Ok(Actions::ALL);
        }
        let mut actions = if public { Actions::PULL } else { Actions::NONE };
        // Any member of a proxy cache organization pulls through it (Quay's rule): its
        // repositories are created by the first pull, so no grant can name them beforehand.
        if rights.member
            && self
                .proxy_cache_at(Some(generation), repo.namespace())
                .await?
                .is_some()
        {
            actions = actions.union(Actions::PULL);
        }
        match info {
            Some(_) => {
                actions = actions.union(role_actions(
                    self.accounts.granted_role(who.id, repo).await?,
                ))
            }
            // Pushing creates the repository where the caller may create.
            None if rights.create => {
                actions = actions.union(Actions {
                    pull: true,
                    push: true,
                    delete: false,
                })
            }
            None => {}
        }
        Ok(actions)
    }

    /// Authorizes `wanted` on `repo` for a request's credential.
    pub async fn authorize(
        &self,
        credential: &Credential,
        repo: &RepoName,
        wanted: Actions,
    ) -> Result<Result<(), Denial>, MetadataError> {
        Ok(self.authorize_at(credential, repo, wanted).await?.0)
    }

    /// [`Auth::authorize`], with the access generation the decision was taken under (`None`
    /// when none was read: an open registry), for the request's later decisions that are
    /// remembered under it too ([`Auth::trust_policy_at`]).
    pub async fn authorize_at(
        &self,
        credential: &Credential,
        repo: &RepoName,
        wanted: Actions,
    ) -> Result<(Result<(), Denial>, Option<u64>), MetadataError> {
        if self.settings().open_registry {
            return Ok((Ok(()), None));
        }
        match credential {
            Credential::Anonymous => {
                let generation = self.accounts.access_generation().await?;
                let live = self.live_actions_at(generation, None, repo).await?;
                Ok((
                    if live.covers(wanted) {
                        Ok(())
                    } else {
                        Err(Denial::Unauthorized {
                            insufficient_scope: false,
                        })
                    },
                    Some(generation),
                ))
            }
            Credential::Account(identity) => {
                let generation = self.accounts.access_generation().await?;
                let live = self
                    .live_actions_at(generation, Some(identity), repo)
                    .await?;
                Ok((
                    if live.covers(wanted) {
                        Ok(())
                    } else {
                        Err(Denial::Forbidden)
                    },
                    Some(generation),
                ))
            }
            Credential::Token {
                claims,
                identity,
                generation,
            } => {
                let granted = claims
                    .access
                    .iter()
                    .filter(|e| e.kind == "repository" && e.name == repo.as_str())
                    .fold(Actions::NONE, |acc, e| acc.union(e.action_set()));
                // Write access covers deletes: tokens asked for with "push" may delete.
                let granted = if granted.push {
                    granted.union(Actions {
                        delete: true,
                        ..Actions::NONE
                    })
                } else {
                    granted
                };
                // What the token grants and the account (or anyone, for an anonymous token)
                // may still do: a removed grant or a repository made private counts at once.
                let live = self
                    .live_actions_at(*generation, identity.as_ref(), repo)
                    .await?;
                if granted.intersect(live).covers(wanted) {
                    return Ok((Ok(()), Some(*generation)));
                }
                // Too little: worth a new token only if the account could get the access;
                // otherwise the answer is final.
                Ok((
                    Err(match identity {
                        Some(_) if !live.covers(wanted) => Denial::Forbidden,
                        _ => Denial::Unauthorized {
                            insufficient_scope: true,
                        },
                    }),
                    Some(*generation),
                ))
            }
        }
    }

    /// The scope of the trust policy in force on `repo` (`None`: no policy), remembered
    /// under the access generation `generation` (read before any row, as for every decision
    /// here; `None` reads it now). Trust keys and policies move the generation, so a policy
    /// change counts at the next request on every replica.
    pub async fn trust_policy_at(
        &self,
        generation: Option<u64>,
        repo: &RepoName,
        store: &dyn TrustStore,
    ) -> Result<Option<Arc<TrustScope>>, MetadataError> {
        let generation = match generation {
            Some(g) => g,
            None => self.accounts.access_generation().await?,
        };
        if let Some(known) = self.decisions.trust_policy(generation, repo.as_str()) {
            return Ok(known);
        }
        let scope = store.policy_in_force(repo).await?.map(Arc::new);
        self.decisions
            .remember_trust_policy(generation, repo.as_str(), scope.clone());
        Ok(scope)
    }

    /// The proxy cache configuration of `namespace` (`None`: not a proxy cache), remembered
    /// under the access generation `generation` (`None` reads it now) like every decision
    /// here: an ordinary repository's request finds the answer in memory, and creating or
    /// deleting a configuration moves the generation (migration 0021).
    pub async fn proxy_cache_at(
        &self,
        generation: Option<u64>,
        namespace: &str,
    ) -> Result<Option<Arc<ProxyCacheRecord>>, MetadataError> {
        let generation = match generation {
            Some(g) => g,
            None => self.accounts.access_generation().await?,
        };
        if let Some(known) = self.decisions.proxy(generation, namespace) {
            return Ok(known);
        }
        let config = self.accounts.proxy_cache(namespace).await?.map(Arc::new);
        self.decisions
            .remember_proxy(generation, namespace, config.clone());
        Ok(config)
    }

    /// How many decisions [`Auth::live_actions`] has taken since start (for tests and
    /// diagnostics: listings are decided by the database and take none).
    pub fn live_decisions(&self) -> u64 {
        self.live_decisions.load(Ordering::Relaxed)
    }

    /// The reader whose listings show what `who` may pull: the pull rule of
    /// [`Auth::live_actions`] (anonymous callers pull public repositories, superusers every
    /// one, accounts also those of namespaces they administer and those granted to them),
    /// which the metadata store applies in SQL. `tests/integration/visibility.rs` checks that the two
    /// agree for every kind of principal.
    pub fn reader(who: Option<&Identity>) -> Reader {
        match who {
            None => Reader::Anonymous,
            Some(i) if i.superuser => Reader::Superuser,
            Some(i) => Reader::Account(i.id),
        }
    }

    /// Repositories `who` may pull, in byte order of their names, after `after` and at most
    /// `limit`, optionally of one namespace: one query, whatever the number of repositories
    /// the caller may not see.
    pub async fn readable_repositories(
        &self,
        who: Option<&Identity>,
        namespace: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryInfo>, MetadataError> {
        let query = RepositoryQuery {
            reader: Self::reader(who),
            namespace,
            after,
            limit,
        };
        self.accounts.readable_repositories(&query).await
    }

    /// Up to `limit` repositories holding `digest` that `who` may pull: where a mount that
    /// names no source may look, so its answer and its timing tell nothing about
    /// repositories the caller cannot read.
    pub async fn readable_repositories_with_blob(
        &self,
        who: Option<&Identity>,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepoName>, MetadataError> {
        self.accounts
            .readable_repositories_with_blob(Self::reader(who), digest, limit)
            .await
    }

    /// Whether the credential may list the catalog entry `repo`.
    pub async fn may_see(
        &self,
        credential: &Credential,
        repo: &RepoName,
    ) -> Result<bool, MetadataError> {
        Ok(self.live_actions(credential.identity(), repo).await?.pull)
    }

    /// Issues a registry token for `identity` (or anonymous) with the requested scopes cut
    /// down to what it may do; scopes it may not have are dropped, not refused.
    pub async fn issue_token(
        &self,
        identity: Option<&Identity>,
        service: &str,
        scopes: &[Scope],
    ) -> Result<IssuedToken, MetadataError> {
        let mut access: Vec<AccessEntry> = Vec::new();
        let mut seen = HashSet::new();
        for scope in scopes {
            match scope {
                Scope::Repository { name, actions } => {
                    let granted = actions.intersect(self.live_actions(identity, name).await?);
                    if !granted.is_empty() && seen.insert((name.clone(), granted.names())) {
                        access.push(AccessEntry {
                            kind: "repository".into(),
                            name: name.to_string(),
                            actions: granted.names().into_iter().map(str::to_string).collect(),
                        });
                    }
                }
                Scope::Catalog if identity.is_some() => access.push(AccessEntry {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                }),
                Scope::Catalog => {}
            }
        }
        let lifetime = self.settings().token_lifetime_secs;
        let subject = identity.map(|i| (i.name.as_str(), i.credential_mark.as_str()));
        let (token, issued_at) = self.keys.issue(subject, service, access, lifetime);
        metrics().token_issued();
        Ok(IssuedToken {
            token,
            expires_in: lifetime,
            issued_at,
        })
    }

    /// Whether `who` administers `repo` (its visibility, permissions and deletion): a superuser,
    /// a namespace admin, or a user with an admin grant. Never a robot.
    pub async fn is_repo_admin(
        &self,
        who: &Identity,
        repo: &RepoName,
    ) -> Result<bool, MetadataError> {
        if !may_administer(who) {
            return Ok(false);
        }
        if who.superuser
            || self
                .accounts
                .namespace_rights(who.id, repo.namespace())
                .await?
                .admin
        {
            return Ok(true);
        }
        Ok(self.accounts.granted_role(who.id, repo).await? == Some(Role::Admin))
    }

    /// Whether `who` administers the namespace (its user, an organization admin, a superuser):
    /// its teams, members, robots and repositories. Never a robot.
    pub async fn is_namespace_admin(
        &self,
        who: &Identity,
        namespace: &str,
    ) -> Result<bool, MetadataError> {
        if !may_administer(who) {
            return Ok(false);
        }
        Ok(who.superuser
            || self
                .accounts
                .namespace_rights(who.id, namespace)
                .await?
                .admin)
    }

    /// Whether `name` is listed in `SUPER_USERS`, so an account of that name would be a
    /// superuser: such a name is taken only by a superuser's explicit act (the CLI, the
    /// superuser API, a superuser creating an organization), never by registration, a robot
    /// or an organization someone else creates.
    pub fn is_reserved_for_superuser(&self, name: &str) -> bool {
        self.settings().super_users.iter().any(|s| s == name)
    }

    /// The `SUPER_USERS` names no account has. Whoever is first given such a name becomes a
    /// superuser, so they are worth a warning at start and on every config reload.
    pub async fn missing_super_users(&self) -> Result<Vec<String>, MetadataError> {
        let mut missing = Vec::new();
        for name in &self.settings().super_users {
            if self.accounts.account(name).await?.is_none() {
                missing.push(name.clone());
            }
        }
        Ok(missing)
    }

    /// Logs one warning per [`Auth::missing_super_users`] name.
    pub async fn warn_about_missing_super_users(&self) {
        match self.missing_super_users().await {
            Ok(missing) => {
                for name in missing {
                    tracing::warn!(
                        "SUPER_USERS names {name:?}, which no account has: berth refuses to let anyone register it; create it with `berth user create` or remove it from SUPER_USERS"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check the SUPER_USERS accounts"),
        }
    }

    /// Whether `who` acts as a superuser in the management API and the dashboard: managing
    /// users and every namespace. A robot named in `SUPER_USERS` keeps a superuser's content
    /// rights on /v2 and nothing more.
    pub fn is_superuser(&self, who: &Identity) -> bool {
        who.superuser && may_administer(who)
    }

    /// Whether `who` may create a repository in `namespace` through the management API, which
    /// also sets its visibility: as [`Auth::may_create_in`], but never a robot (robots create
    /// repositories by pushing, with the configured visibility).
    pub async fn may_create_configured_in(
        &self,
        who: &Identity,
        namespace: &str,
    ) -> Result<bool, MetadataError> {
        Ok(may_administer(who) && self.may_create_in(who, namespace).await?)
    }

    /// Whether `who` may create repositories in `namespace` (a push creates them).
    pub async fn may_create_in(
        &self,
        who: &Identity,
        namespace: &str,
    ) -> Result<bool, MetadataError> {
        Ok(who.superuser
            || self
                .accounts
                .namespace_rights(who.id, namespace)
                .await?
                .create)
    }

    /// Why `who` may not do `wanted` on `repo`, told only where the caller may already know
    /// what the answer reveals: whether a namespace exists to superusers, what a member lacks
    /// to that namespace's members, what a reader lacks to those who can read the repository.
    /// `None` for everyone else, so a refusal never shows that a private namespace exists.
    pub async fn why_denied(
        &self,
        who: &Identity,
        repo: &RepoName,
        wanted: Actions,
    ) -> Result<Option<String>, MetadataError> {
        let namespace = repo.namespace();
        let kind = match who.kind {
            AccountKind::Robot => "robot",
            _ => "user",
        };
        let name = &who.name;
        if self.accounts.account(namespace).await?.is_none() {
            return Ok(who
                .superuser
                .then(|| format!("namespace {namespace} does not exist")));
        }
        let own_robot = who
            .name
            .split_once('+')
            .is_some_and(|(ns, _)| ns == namespace);
        let member = own_robot
            || self
                .accounts
                .organization_members(namespace)
                .await?
                .iter()
                .any(|m| m.id == who.id);
        let live = self.live_actions(Some(who), repo).await?;
        let exists = self.repository_exists(repo).await?;
        Ok(if !exists && wanted.push && member {
            Some(match who.kind {
                AccountKind::Robot => format!(
                    "robot {name} may not create repositories in {namespace}: add it to a team with the creator role"
                ),
                _ => format!(
                    "user {name} may not create repositories in {namespace}: an administrator of {namespace} can add them to a team with the creator role"
                ),
            })
        } else if exists && (live.pull || member) {
            let needed = if wanted.push || wanted.delete {
                "write"
            } else {
                "read"
            };
            Some(format!(
                "{kind} {name} lacks {needed} access to {repo}: an administrator of {namespace} can grant it to the {kind} or to one of its teams"
            ))
        } else {
            None
        })
    }

    /// Prepares a repository a push is about to create: makes sure its namespace exists
    /// (a superuser pushing to a new namespace creates an organization it owns), creates the
    /// repository with the configured visibility, and gives its creator admin on it unless
    /// the creator already administers the namespace.
    pub async fn create_on_push(
        &self,
        who: &Identity,
        repo: &RepoName,
    ) -> Result<PushTarget, MetadataError> {
        if self.repository_exists(repo).await? {
            return Ok(PushTarget::Existing);
        }
        // Decided now, not when a token was issued: rights may have been taken away since.
        let namespace = repo.namespace();
        let rights = self.accounts.namespace_rights(who.id, namespace).await?;
        if !who.superuser && !rights.create {
            return Ok(PushTarget::Denied);
        }
        if who.superuser
            && who.kind == AccountKind::User
            && self.accounts.account(namespace).await?.is_none()
        {
            match self
                .accounts
                .create_organization(namespace, &who.name)
                .await
            {
                Ok(_) | Err(MetadataError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        let public = !self.settings().create_private_repo_on_push;
        // A robot gets what it can use: content rights, which an admin grant would not add to.
        let creator = (!rights.admin && !who.superuser).then(|| {
            let role = if may_administer(who) {
                Role::Admin
            } else {
                Role::Write
            };
            (who.id, role)
        });
        match self
            .accounts
            .create_repository(repo, public, "", creator)
            .await
        {
            Ok(()) => Ok(PushTarget::Created),
            // A concurrent push created it first.
            Err(MetadataError::Conflict) => Ok(PushTarget::Existing),
            Err(e) => Err(e),
        }
    }
}

impl Auth {
    /// On an open registry (`AUTHENTICATION_TYPE: None`), creates the repository a push names,
    /// public, since every client may read it anyway.
    pub async fn create_on_open_push(&self, repo: &RepoName) -> Result<PushTarget, MetadataError> {
        if self.repository_exists(repo).await? {
            return Ok(PushTarget::Existing);
        }
        match self.accounts.create_repository(repo, true, "", None).await {
            Ok(()) => Ok(PushTarget::Created),
            Err(MetadataError::Conflict) => Ok(PushTarget::Existing),
            Err(e) => Err(e),
        }
    }
}

impl Auth {
    /// Creates robot `namespace+short` with a fresh token and returns its name and the token,
    /// which is stored hashed and so can be shown only this once.
    pub async fn create_robot(
        &self,
        namespace: &str,
        short: &str,
    ) -> Result<(String, String), RobotError> {
        if !valid_robot_short(short) {
            return Err(RobotError::BadName(short.to_string()));
        }
        let token = secret::random_token("");
        let name = format!("{namespace}+{short}");
        // A robot named in SUPER_USERS would have a superuser's content rights everywhere.
        if self.is_reserved_for_superuser(&name) {
            return Err(RobotError::Exists(name));
        }
        match self
            .accounts
            .create_robot(namespace, short, &secret::token_hash(&token))
            .await
        {
            Ok(_) => Ok((name, token)),
            Err(MetadataError::Conflict) => Err(RobotError::Exists(name)),
            Err(e) => Err(RobotError::Metadata(e)),
        }
    }
}

/// Whether `who` may administer anything: accounts, teams, robots, permissions, repository
/// settings. Robots get content rights only (pull, push, delete), whatever team they are in or
/// role they are granted, so a leaked CI token never takes over an organization.
fn may_administer(who: &Identity) -> bool {
    who.kind != AccountKind::Robot
}

/// Whether `short` may name a robot: 1 to 64 lowercase letters, digits and `_`.
pub fn valid_robot_short(short: &str) -> bool {
    !short.is_empty()
        && short.len() <= 64
        && short
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Why a robot could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RobotError {
    #[error("robot name {0:?} may hold only lowercase letters, digits and _")]
    BadName(String),
    #[error("robot {0} exists")]
    Exists(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// What a push finds or makes of its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushTarget {
    /// The repository existed.
    Existing,
    /// This push created it.
    Created,
    /// It does not exist and the caller may not create it (any more).
    Denied,
}

/// Prefix of management API tokens, so they are told apart from registry JWTs.
pub const API_TOKEN_PREFIX: &str = "berth_";

/// A signed token and its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    pub issued_at: u64,
}

/// Longest `Authorization` header value berth reads; longer ones are malformed.
pub const MAX_AUTHORIZATION_LEN: usize = 16 * 1024;

/// What an `Authorization` header carries, before any secret is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization<'a> {
    /// `Basic` with the decoded user name and password.
    Basic { user: String, password: String },
    /// `Bearer` with a management API token (it starts with [`API_TOKEN_PREFIX`]).
    ApiToken(&'a str),
    /// `Bearer` with anything else: a registry token, still to be verified.
    RegistryToken(&'a str),
}

/// Reads an `Authorization` header value: the scheme (`Basic` or `Bearer`, in any case), one
/// space and the credentials, surrounding space ignored. `None` when it is neither, when the
/// Basic payload does not decode, or when the value is longer than [`MAX_AUTHORIZATION_LEN`].
pub fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return None;
    }
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) = decode_basic(rest)?;
        return Some(Authorization::Basic { user, password });
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(if rest.starts_with(API_TOKEN_PREFIX) {
            Authorization::ApiToken(rest)
        } else {
            Authorization::RegistryToken(rest)
        });
    }
    None
}

/// Decodes the payload of `Authorization: Basic`.
pub fn decode_basic(payload: &str) -> Option<(String, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}
