//! Configuration: command-line options plus an optional YAML file in Quay's key style.
//!
//! Unknown keys are accepted with a warning (a Quay `config.yaml` carries many keys berth does
//! not use); a known key with a value of the wrong type is an error naming the key.

mod database;
mod limits;
mod notifications;
mod storage;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use std::time::Duration;

use crate::auth::AuthSettings;
use crate::client::TrustedProxies;
use crate::gc::{parse_expiration, GcSettings};
use crate::policy::PolicySettings;
use crate::registry::SparseSettings;
use crate::server::ConnectionSettings;
pub use database::{DatabaseUri, DB_URI_ENV};
pub use limits::Limits;
pub use storage::{keep_storage, S3Credentials, S3Settings, StorageSettings};
pub use watch::watch;

/// Settings read from the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `MANIFEST_MAX_BYTES`: largest manifest accepted (default 4 MiB, at least 1 KiB).
    pub manifest_max_bytes: usize,
    /// `LIST_MAX_PAGE_SIZE`: largest page of tags, repositories or referrers (default 10,000).
    pub list_max_page_size: u32,
    /// The artifact-type policy keys (`FEATURE_GENERAL_OCI_SUPPORT`, `FEATURE_HELM_OCI_SUPPORT`,
    /// `ALLOWED_OCI_ARTIFACT_TYPES`, `DEFAULT_OCI_ARTIFACT_TYPES`, `IGNORE_UNKNOWN_MEDIATYPES`).
    pub policy: PolicySettings,
    /// Accounts and tokens (`SUPER_USERS`, `TOKEN_LIFETIME_SECONDS`, `LOGIN_FAILURES_PER_MINUTE`,
    /// `CREATE_PRIVATE_REPO_ON_PUSH`).
    pub auth: AuthSettings,
    /// `SERVER_HOSTNAME`: the host (and port) clients reach berth at; token realms use it.
    /// Without it, the request's `Host` header is used.
    pub server_hostname: Option<String>,
    /// `PREFERRED_URL_SCHEME`: `http` or `https` for URLs berth hands out.
    pub preferred_url_scheme: Option<String>,
    /// `FEATURE_USER_CREATION`: anyone may register an account through the API.
    pub user_creation: bool,
    /// `LOG_FORMAT: json`: one JSON object per log line (`text`, the default, is one line of
    /// text). Read at start only, like `BERTH_LOG_FORMAT`, which wins over it.
    pub log_json: bool,
    /// `DB_URI`: the metadata database (PostgreSQL or an SQLite file); `None` is SQLite at
    /// `DATA_DIR/metadata.db`. Read at start only: changing it needs a restart.
    pub database: Option<DatabaseUri>,
    /// Garbage collection (`FEATURE_GARBAGE_COLLECTION`, `GC_*`, `DEFAULT_TAG_EXPIRATION`).
    pub gc: GcSettings,
    /// `DISTRIBUTED_STORAGE_CONFIG` with `DISTRIBUTED_STORAGE_PREFERENCE`: where blobs live
    /// (default: the data directory). Read at start only: changing it needs a restart.
    pub storage: StorageSettings,
    /// `FEATURE_PROXY_STORAGE`: berth streams blob bytes itself even when the store could hand
    /// clients a presigned URL. Off by default (as in Quay): blob downloads from an object
    /// store are redirected to it.
    pub proxy_storage: bool,
    /// `BODY_IDLE_TIMEOUT_SECONDS`: how long berth waits for the next bytes of a request body
    /// it is reading (an upload chunk, a manifest, a form) before it gives up on the request,
    /// so a stalled client cannot hold an upload session or a connection forever.
    pub body_idle_timeout: Duration,
    /// `DASHBOARD_MAX_CONCURRENT_RENDERS`: how many heavy dashboard pages (manifest pages)
    /// berth builds at once; more visitors wait up to 3 s for a turn, then get a 503 with
    /// `Retry-After`. Bounds the memory anonymous visitors can make berth use.
    pub dashboard_max_concurrent_renders: usize,
    /// What one client may make berth hold: open upload sessions per account and per
    /// repository, the largest blob, tags per manifest push (`MAX_UPLOADS_PER_ACCOUNT`,
    /// `MAX_UPLOADS_PER_REPOSITORY`, `MAXIMUM_LAYER_SIZE`, `MAX_TAGS_PER_REQUEST`).
    pub limits: Limits,
    /// How berth holds connections (`HEADER_READ_TIMEOUT_SECONDS`, `MAX_CONNECTIONS`,
    /// `MAX_CONNECTIONS_PER_CLIENT`), so slow or greedy clients cannot exhaust it.
    pub connections: ConnectionSettings,
    /// `TRUSTED_PROXIES`: addresses and networks of reverse proxies whose `X-Forwarded-For`,
    /// `Forwarded` and `X-Forwarded-Proto` headers name the client (see [`crate::client`]).
    /// Empty by default: the client is the socket peer and those headers are ignored.
    pub trusted_proxies: TrustedProxies,
    /// Sparse manifests (`FEATURE_SPARSE_INDEX`, `SPARSE_INDEX_REQUIRED_ARCHS`,
    /// `FEATURE_SPARSE_MANIFESTS`): which references a manifest push may leave absent.
    pub sparse: SparseSettings,
    /// Repository notifications (`WEBHOOK_ALLOW_PRIVATE_TARGETS`, `NOTIFICATION_*`).
    pub notifications: crate::notify::NotificationSettings,
    /// `PROMETHEUS_LISTEN`: an address (`127.0.0.1:9091`) where berth also serves `/metrics`,
    /// without authentication (`--metrics-listen` wins over it). Read at start only.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `METRICS_ALLOW_ANONYMOUS`: `/metrics` on the main listener answers anyone, not only
    /// superusers. Off by default.
    pub metrics_allow_anonymous: bool,
    /// Usage logs (`ACTION_LOG_AUDIT_PULLS`, `ACTION_LOG_AUDIT_LOGIN_FAILURES`,
    /// `ACTION_LOG_ROTATION_THRESHOLD`).
    pub usage_logs: crate::usage_log::UsageLogSettings,
    /// `FEATURE_PROXY_CACHE`: organizations may be configured as pull-through caches of another
    /// registry (`/api/v1/organization/{org}/proxycache`). Off by default, as in Quay.
    pub proxy_cache: bool,
    /// `FEATURE_REPO_MIRROR`: repositories may be put in state `MIRROR` and given a mirror
    /// configuration (`/api/v1/repository/{repo}/mirror`). Off by default, as in Quay.
    pub repo_mirror: bool,
    /// `REPO_MIRROR_INTERVAL`: seconds between the sync worker's looks for due mirrors (Quay's
    /// key, default 30). A sync's claim lasts three intervals (at least 5 s) and is renewed
    /// while it runs, so another replica takes over a crashed one's sync that much later.
    pub repo_mirror_interval: Duration,
    /// `DATABASE_SECRET_KEY`: the secret upstream credentials (proxy caches' and mirrors') are
    /// encrypted with. Without it,
    /// berth makes a random one in the data directory (which replicas do not share). Read at
    /// start only.
    pub database_secret_key: Option<SecretText>,
}

/// A secret config value: compared and cloned like text, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            manifest_max_bytes: 4 * 1024 * 1024,
            list_max_page_size: 10_000,
            policy: PolicySettings::default(),
            auth: AuthSettings::default(),
            server_hostname: None,
            preferred_url_scheme: None,
            user_creation: false,
            log_json: false,
            database: None,
            gc: GcSettings::default(),
            storage: StorageSettings::default(),
            proxy_storage: false,
            body_idle_timeout: Duration::from_secs(60),
            dashboard_max_concurrent_renders: 8,
            limits: Limits::default(),
            connections: ConnectionSettings::default(),
            trusted_proxies: TrustedProxies::default(),
            sparse: SparseSettings::default(),
            notifications: Default::default(),
            metrics_listen: None,
            metrics_allow_anonymous: false,
            usage_logs: crate::usage_log::UsageLogSettings::default(),
            proxy_cache: false,
            repo_mirror: false,
            repo_mirror_interval: Duration::from_secs(30),
            database_secret_key: None,
        }
    }
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("config file must be a YAML mapping of keys to values")]
    NotAMapping,
    #[error("config key {key}: expected {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

/// A parsed config file: the settings and one warning per key berth does not know.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

fn integer(map: &Mapping, key: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or(ConfigError::WrongType {
                key: key.to_string(),
                expected: if min == 0 {
                    "a non-negative integer"
                } else {
                    "an integer in the allowed range"
                },
            }),
    }
}

fn boolean(map: &Mapping, key: &str) -> Result<Option<bool>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ConfigError::WrongType {
            key: key.to_string(),
            expected: "a boolean (true or false)",
        }),
    }
}

/// Reads `ALLOWED_OCI_ARTIFACT_TYPES`: media type -> list of media types (an empty or null list
/// allows the key with no layers). The map adds to berth's defaults; see [`PolicySettings`].
fn type_map(
    map: &Mapping,
    key: &str,
) -> Result<Option<BTreeMap<String, Vec<String>>>, ConfigError> {
    let wrong = || ConfigError::WrongType {
        key: key.to_string(),
        expected: "a mapping from a config media type to a list of layer media types",
    };
    let entries = match map.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err(wrong()),
    };
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        let k = k.as_str().ok_or_else(wrong)?.trim().to_string();
        let layers = match v {
            Value::Null => Vec::new(),
            Value::Sequence(items) => items
                .iter()
                .map(|i| i.as_str().map(|s| s.trim().to_string()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(wrong)?,
            _ => return Err(wrong()),
        };
        out.insert(k, layers);
    }
    Ok(Some(out))
}

fn string(map: &Mapping, key: &str) -> Result<Option<String>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConfigError::WrongType {
            key: key.to_string(),
            expected: "a string",
        }),
    }
}

fn string_list(map: &Mapping, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
    let wrong = || ConfigError::WrongType {
        key: key.to_string(),
        expected: "a list of strings",
    };
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(wrong),
        Some(_) => Err(wrong()),
    }
}

const KNOWN_KEYS: &[&str] = &[
    "SUPER_USERS",
    "TOKEN_LIFETIME_SECONDS",
    "LOGIN_FAILURES_PER_MINUTE",
    "CREATE_PRIVATE_REPO_ON_PUSH",
    "AUTHENTICATION_TYPE",
    "FEATURE_PUBLIC_CATALOG",
    "SERVER_HOSTNAME",
    "PREFERRED_URL_SCHEME",
    "FEATURE_USER_CREATION",
    "MANIFEST_MAX_BYTES",
    "LIST_MAX_PAGE_SIZE",
    "FEATURE_GENERAL_OCI_SUPPORT",
    "FEATURE_HELM_OCI_SUPPORT",
    "ALLOWED_OCI_ARTIFACT_TYPES",
    "IGNORE_UNKNOWN_MEDIATYPES",
    "DEFAULT_OCI_ARTIFACT_TYPES",
    "DB_URI",
    "FEATURE_GARBAGE_COLLECTION",
    "GC_INTERVAL_SECONDS",
    "GC_GRACE_SECONDS",
    "GC_UPLOAD_MAX_AGE_SECONDS",
    "DEFAULT_TAG_EXPIRATION",
    "DISTRIBUTED_STORAGE_CONFIG",
    "DISTRIBUTED_STORAGE_PREFERENCE",
    "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS",
    "FEATURE_PROXY_STORAGE",
    "BODY_IDLE_TIMEOUT_SECONDS",
    "DASHBOARD_MAX_CONCURRENT_RENDERS",
    "MAX_UPLOADS_PER_ACCOUNT",
    "MAX_UPLOADS_PER_REPOSITORY",
    "MAXIMUM_LAYER_SIZE",
    "MAX_TAGS_PER_REQUEST",
    "HEADER_READ_TIMEOUT_SECONDS",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_CLIENT",
    "TRUSTED_PROXIES",
    "FEATURE_SPARSE_INDEX",
    "SPARSE_INDEX_REQUIRED_ARCHS",
    "FEATURE_SPARSE_MANIFESTS",
    "APP_SPECIFIC_TOKEN_EXPIRATION",
    "EXPIRED_APP_SPECIFIC_TOKEN_GC",
    "LOG_FORMAT",
    "PROMETHEUS_LISTEN",
    "METRICS_ALLOW_ANONYMOUS",
    "ACTION_LOG_AUDIT_PULLS",
    "ACTION_LOG_AUDIT_LOGIN_FAILURES",
    "ACTION_LOG_ROTATION_THRESHOLD",
    "FEATURE_PROXY_CACHE",
    "FEATURE_REPO_MIRROR",
    "REPO_MIRROR_INTERVAL",
    "DATABASE_SECRET_KEY",
];

/// Parses config text.
pub fn parse(text: &str) -> Result<Loaded, ConfigError> {
    let value: Value = serde_norway::from_str(text)?;
    let map = match value {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        _ => return Err(ConfigError::NotAMapping),
    };
    let mut settings = Settings::default();
    if let Some(n) = integer(&map, "MANIFEST_MAX_BYTES", 1024, 1 << 30)? {
        settings.manifest_max_bytes = n as usize;
    }
    if let Some(n) = integer(&map, "LIST_MAX_PAGE_SIZE", 1, 1_000_000)? {
        settings.list_max_page_size = n as u32;
    }
    if let Some(b) = boolean(&map, "FEATURE_GENERAL_OCI_SUPPORT")? {
        settings.policy.general_oci_support = b;
    }
    if let Some(b) = boolean(&map, "FEATURE_HELM_OCI_SUPPORT")? {
        settings.policy.helm_oci_support = b;
    }
    if let Some(b) = boolean(&map, "IGNORE_UNKNOWN_MEDIATYPES")? {
        settings.policy.ignore_unknown_mediatypes = b;
    }
    if let Some(b) = boolean(&map, "DEFAULT_OCI_ARTIFACT_TYPES")? {
        settings.policy.default_artifact_types = b;
    }
    settings.policy.allowed_artifact_types = type_map(&map, "ALLOWED_OCI_ARTIFACT_TYPES")?;
    if let Some(users) = string_list(&map, "SUPER_USERS")? {
        settings.auth.super_users = users;
    }
    if let Some(n) = integer(&map, "TOKEN_LIFETIME_SECONDS", 60, 7 * 24 * 3600)? {
        settings.auth.token_lifetime_secs = n;
    }
    if let Some(n) = integer(&map, "LOGIN_FAILURES_PER_MINUTE", 1, 1_000_000)? {
        settings.auth.login_failures_per_minute = n as u32;
    }
    if let Some(b) = boolean(&map, "CREATE_PRIVATE_REPO_ON_PUSH")? {
        settings.auth.create_private_repo_on_push = b;
    }
    settings.auth.open_registry = match string(&map, "AUTHENTICATION_TYPE")?.as_deref() {
        None | Some("Database") => false,
        Some("None") => true,
        Some(_) => {
            return Err(ConfigError::WrongType {
                key: "AUTHENTICATION_TYPE".into(),
                expected: "Database or None",
            })
        }
    };
    if let Some(b) = boolean(&map, "FEATURE_PUBLIC_CATALOG")? {
        settings.auth.public_catalog = b;
    }
    if let Some(b) = boolean(&map, "FEATURE_REPO_MIRROR")? {
        settings.repo_mirror = b;
    }
    if let Some(n) = integer(&map, "REPO_MIRROR_INTERVAL", 1, 86_400)? {
        settings.repo_mirror_interval = Duration::from_secs(n);
    }
    if let Some(text) = string(&map, "APP_SPECIFIC_TOKEN_EXPIRATION")? {
        let lifetime = parse_expiration(&text).filter(|d| !d.is_zero());
        settings.auth.api_token_expiration = Some(lifetime.ok_or(ConfigError::WrongType {
            key: "APP_SPECIFIC_TOKEN_EXPIRATION".into(),
            expected: "a duration such as 30d, 12h or 90m, at least 1s",
        })?);
    }
    if let Some(text) = string(&map, "EXPIRED_APP_SPECIFIC_TOKEN_GC")? {
        settings.auth.expired_api_token_gc =
            parse_expiration(&text).ok_or(ConfigError::WrongType {
                key: "EXPIRED_APP_SPECIFIC_TOKEN_GC".into(),
                expected: "a duration such as 1d, 12h or 0s",
            })?;
    }
    settings.log_json = match string(&map, "LOG_FORMAT")?.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(_) => {
            return Err(ConfigError::WrongType {
                key: "LOG_FORMAT".into(),
                expected: "text or json",
            })
        }
    };
    if let Some(b) = boolean(&map, "FEATURE_USER_CREATION")? {
        settings.user_creation = b;
    }
    settings.server_hostname = string(&map, "SERVER_HOSTNAME")?;
    settings.preferred_url_scheme = match string(&map, "PREFERRED_URL_SCHEME")? {
        None => None,
        Some(s) if s == "http" || s == "https" => Some(s),
        Some(_) => {
            return Err(ConfigError::WrongType {
                key: "PREFERRED_URL_SCHEME".into(),
                expected: "http or https",
            })
        }
    };
    if let Some(uri) = string(&map, "DB_URI")? {
        settings.database =
            Some(
                DatabaseUri::parse(&uri).map_err(|expected| ConfigError::WrongType {
                    key: "DB_URI".into(),
                    expected,
                })?,
            );
    }
    settings.gc = gc_settings(&map)?;
    let storage = storage::parse(&map)?;
    settings.storage = storage.settings;
    if let Some(b) = boolean(&map, "FEATURE_PROXY_STORAGE")? {
        settings.proxy_storage = b;
    }
    if let Some(b) = boolean(&map, "FEATURE_PROXY_CACHE")? {
        settings.proxy_cache = b;
    }
    if let Some(key) = string(&map, "DATABASE_SECRET_KEY")? {
        if key.is_empty() {
            return Err(ConfigError::Invalid {
                key: "DATABASE_SECRET_KEY".into(),
                message: "must not be empty".into(),
            });
        }
        settings.database_secret_key = Some(SecretText(key));
    }
    if let Some(n) = integer(&map, "BODY_IDLE_TIMEOUT_SECONDS", 1, 86_400)? {
        settings.body_idle_timeout = Duration::from_secs(n);
    }
    if let Some(n) = integer(&map, "DASHBOARD_MAX_CONCURRENT_RENDERS", 1, 1024)? {
        settings.dashboard_max_concurrent_renders = n as usize;
    }
    settings.limits = limits::parse(&map)?;
    settings.connections = connection_settings(&map)?;
    if let Some(list) = string_list(&map, "TRUSTED_PROXIES")? {
        settings.trusted_proxies =
            TrustedProxies::parse(&list).map_err(|message| ConfigError::Invalid {
                key: "TRUSTED_PROXIES".into(),
                message,
            })?;
    }
    settings.sparse = sparse_settings(&map)?;
    settings.notifications = notifications::parse(&map)?;
    if let Some(text) = string(&map, "PROMETHEUS_LISTEN")? {
        settings.metrics_listen = Some(text.parse().map_err(|_| ConfigError::WrongType {
            key: "PROMETHEUS_LISTEN".into(),
            expected: "an address and port such as 127.0.0.1:9091",
        })?);
    }
    if let Some(b) = boolean(&map, "METRICS_ALLOW_ANONYMOUS")? {
        settings.metrics_allow_anonymous = b;
    }
    settings.usage_logs = usage_log_settings(&map)?;
    let mut warnings: Vec<String> = map
        .keys()
        .map(|k| match k {
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .filter(|k| !KNOWN_KEYS.contains(&k.as_str()) && !notifications::KEYS.contains(&k.as_str()))
        .map(|k| format!("config key {k} is not used by berth; ignoring it"))
        .collect();
    warnings.extend(storage.warnings);
    Ok(Loaded { settings, warnings })
}

fn gc_settings(map: &Mapping) -> Result<GcSettings, ConfigError> {
    let mut gc = GcSettings::default();
    let seconds = |key, min| integer(map, key, min, 10 * 365 * 86_400);
    if let Some(b) = boolean(map, "FEATURE_GARBAGE_COLLECTION")? {
        gc.enabled = b;
    }
    if let Some(n) = seconds("GC_INTERVAL_SECONDS", 1)? {
        gc.interval = Duration::from_secs(n);
    }
    if let Some(n) = seconds("GC_GRACE_SECONDS", 0)? {
        gc.grace = Duration::from_secs(n);
    }
    if let Some(n) = seconds("GC_UPLOAD_MAX_AGE_SECONDS", 60)? {
        gc.upload_max_age = Duration::from_secs(n);
    }
    if let Some(text) = string(map, "DEFAULT_TAG_EXPIRATION")? {
        gc.tag_expiration = parse_expiration(&text).ok_or(ConfigError::WrongType {
            key: "DEFAULT_TAG_EXPIRATION".into(),
            expected: "a duration such as 2w, 3d, 12h, 30m or 0s",
        })?;
    }
    Ok(gc)
}

fn usage_log_settings(map: &Mapping) -> Result<crate::usage_log::UsageLogSettings, ConfigError> {
    let mut usage = crate::usage_log::UsageLogSettings::default();
    if let Some(b) = boolean(map, "ACTION_LOG_AUDIT_PULLS")? {
        usage.pulls = b;
    }
    if let Some(b) = boolean(map, "ACTION_LOG_AUDIT_LOGIN_FAILURES")? {
        usage.login_failures = b;
    }
    if let Some(text) = string(map, "ACTION_LOG_ROTATION_THRESHOLD")? {
        usage.retention =
            parse_expiration(&text)
                .filter(|d| !d.is_zero())
                .ok_or(ConfigError::WrongType {
                    key: "ACTION_LOG_ROTATION_THRESHOLD".into(),
                    expected: "a duration such as 90d, 2w or 12h",
                })?;
    }
    Ok(usage)
}

fn sparse_settings(map: &Mapping) -> Result<SparseSettings, ConfigError> {
    Ok(SparseSettings {
        index: boolean(map, "FEATURE_SPARSE_INDEX")?.unwrap_or(false),
        required_archs: string_list(map, "SPARSE_INDEX_REQUIRED_ARCHS")?.unwrap_or_default(),
        manifests: boolean(map, "FEATURE_SPARSE_MANIFESTS")?.unwrap_or(false),
    })
}

fn connection_settings(map: &Mapping) -> Result<ConnectionSettings, ConfigError> {
    let mut connections = ConnectionSettings::default();
    if let Some(n) = integer(map, "HEADER_READ_TIMEOUT_SECONDS", 1, 3600)? {
        connections.header_read_timeout = Duration::from_secs(n);
    }
    if let Some(n) = integer(map, "MAX_CONNECTIONS", 1, 1_000_000)? {
        connections.max_connections = Some(n as usize);
    }
    if let Some(n) = integer(map, "MAX_CONNECTIONS_PER_CLIENT", 1, 1_000_000)? {
        connections.max_connections_per_client = Some(n as usize);
    }
    Ok(connections)
}

/// Keeps the database berth started with in `reloaded` settings: `DB_URI` applies at start
/// only. Returns the `DB_URI` the reloaded file asked for when it differs (for a warning).
pub fn keep_database(
    reloaded: &mut Settings,
    running: &Option<DatabaseUri>,
) -> Option<Option<DatabaseUri>> {
    if reloaded.database == *running {
        return None;
    }
    Some(std::mem::replace(&mut reloaded.database, running.clone()))
}

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_defaults() {
        assert_eq!(parse("").unwrap().settings, Settings::default());
        assert_eq!(parse("{}").unwrap().settings, Settings::default());
    }

    #[test]
    fn unknown_keys_warn() {
        let l =
            parse("DB_CONNECTION_POOLING: true\nFEATURE_X: true\nMANIFEST_MAX_BYTES: 8388608\n")
                .unwrap();
        assert_eq!(l.settings.manifest_max_bytes, 8 << 20);
        assert_eq!(l.warnings.len(), 2);
    }

    #[test]
    fn policy_keys() {
        let l = parse(
            "FEATURE_GENERAL_OCI_SUPPORT: false\nFEATURE_HELM_OCI_SUPPORT: false\nIGNORE_UNKNOWN_MEDIATYPES: true\n\
             DEFAULT_OCI_ARTIFACT_TYPES: false\nALLOWED_OCI_ARTIFACT_TYPES:\n  application/x:\n  - application/y\n  application/z:\n",
        )
        .unwrap();
        let p = l.settings.policy;
        assert!(!p.general_oci_support && !p.helm_oci_support && p.ignore_unknown_mediatypes);
        assert!(!p.default_artifact_types);
        assert!(parse("").unwrap().settings.policy.default_artifact_types);
        let map = p.allowed_artifact_types.unwrap();
        assert_eq!(map["application/x"], vec!["application/y".to_string()]);
        assert!(map["application/z"].is_empty());
        assert!(l.warnings.is_empty());
        for bad in [
            "FEATURE_GENERAL_OCI_SUPPORT: maybe",
            "DEFAULT_OCI_ARTIFACT_TYPES: no thanks",
            "ALLOWED_OCI_ARTIFACT_TYPES: [a, b]",
            "ALLOWED_OCI_ARTIFACT_TYPES:\n  a: b",
            "ALLOWED_OCI_ARTIFACT_TYPES:\n  a: [1, {x: y}]",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split(':').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn sparse_keys() {
        let l = parse(
            "FEATURE_SPARSE_INDEX: true\nSPARSE_INDEX_REQUIRED_ARCHS: [amd64, arm64]\nFEATURE_SPARSE_MANIFESTS: true\n",
        )
        .unwrap();
        let want = SparseSettings {
            index: true,
            required_archs: vec!["amd64".into(), "arm64".into()],
            manifests: true,
        };
        assert_eq!(l.settings.sparse, want);
        assert!(l.warnings.is_empty());
        for bad in [
            "FEATURE_SPARSE_INDEX: yes",
            "SPARSE_INDEX_REQUIRED_ARCHS: amd64",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split(':').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn usage_log_keys() {
        let s = parse("").unwrap().settings.usage_logs;
        assert!(s.pulls && s.login_failures);
        assert_eq!(s.retention, Duration::from_secs(90 * 86_400));
        let l = parse(
            "ACTION_LOG_AUDIT_PULLS: false\nACTION_LOG_AUDIT_LOGIN_FAILURES: false\nACTION_LOG_ROTATION_THRESHOLD: 2w\n",
        )
        .unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let s = l.settings.usage_logs;
        assert!(!s.pulls && !s.login_failures);
        assert_eq!(s.retention, Duration::from_secs(14 * 86_400));
        for bad in [
            "ACTION_LOG_ROTATION_THRESHOLD: soon",
            "ACTION_LOG_ROTATION_THRESHOLD: 0s",
            "ACTION_LOG_AUDIT_PULLS: maybe",
        ] {
            let Err(e) = parse(bad) else {
                panic!("{bad} was accepted")
            };
            let e = e.to_string();
            assert!(e.contains(bad.split(':').next().unwrap()), "{e}");
        }
    }

    #[test]
    fn gc_keys() {
        let l = parse(
            "FEATURE_GARBAGE_COLLECTION: false\nGC_INTERVAL_SECONDS: 60\nGC_GRACE_SECONDS: 0\nGC_UPLOAD_MAX_AGE_SECONDS: 600\nDEFAULT_TAG_EXPIRATION: 3d\n",
        )
        .unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let gc = l.settings.gc;
        assert!(!gc.enabled);
        assert_eq!(gc.interval, Duration::from_secs(60));
        assert_eq!(gc.grace, Duration::ZERO);
        assert_eq!(gc.upload_max_age, Duration::from_secs(600));
        assert_eq!(gc.tag_expiration, Duration::from_secs(3 * 86_400));
        let e = parse("DEFAULT_TAG_EXPIRATION: soon")
            .unwrap_err()
            .to_string();
        assert!(e.contains("DEFAULT_TAG_EXPIRATION"), "{e}");
        assert!(parse("GC_INTERVAL_SECONDS: 0").is_err());
    }

    #[test]
    fn api_token_expiration() {
        let auth = |text: &str| parse(text).map(|l| l.settings.auth.api_token_expiration);
        assert_eq!(auth("").unwrap(), None);
        let month = Duration::from_secs(30 * 86_400);
        assert_eq!(
            auth("APP_SPECIFIC_TOKEN_EXPIRATION: 30d").unwrap(),
            Some(month)
        );
        assert_eq!(
            auth("APP_SPECIFIC_TOKEN_EXPIRATION: 90m").unwrap(),
            Some(Duration::from_secs(5400))
        );
        for bad in ["soon", "0s", "30", "-1d"] {
            let e = auth(&format!("APP_SPECIFIC_TOKEN_EXPIRATION: {bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("APP_SPECIFIC_TOKEN_EXPIRATION"), "{bad}: {e}");
        }
    }

    #[test]
    fn db_uri() {
        let l = parse("DB_URI: postgresql://berth:hunter2@127.0.0.1:5432/berth\n").unwrap();
        assert_eq!(
            l.settings.database,
            Some(DatabaseUri::Postgres(
                "postgresql://berth:hunter2@127.0.0.1:5432/berth".into()
            ))
        );
        assert!(l.warnings.is_empty());
        assert!(!format!("{:?}", l.settings).contains("hunter2"));
        let l = parse("DB_URI: sqlite:///srv/berth/meta.db").unwrap();
        assert_eq!(
            l.settings.database,
            Some(DatabaseUri::Sqlite("/srv/berth/meta.db".into()))
        );
        let e = parse("DB_URI: mysql://u:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("DB_URI") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn a_reload_keeps_the_database() {
        let running = parse("DB_URI: postgresql://u:p@a/db")
            .unwrap()
            .settings
            .database;
        let mut same = parse("DB_URI: postgresql://u:p@a/db\nMANIFEST_MAX_BYTES: 2048")
            .unwrap()
            .settings;
        assert_eq!(keep_database(&mut same, &running), None);
        let mut moved = parse("DB_URI: postgresql://u:p@b/db\nMANIFEST_MAX_BYTES: 2048")
            .unwrap()
            .settings;
        let asked = keep_database(&mut moved, &running).expect("a change");
        assert_eq!(
            asked,
            Some(DatabaseUri::Postgres("postgresql://u:p@b/db".into()))
        );
        assert_eq!(moved.database, running);
        assert_eq!(moved.manifest_max_bytes, 2048, "the other keys still apply");
        let mut dropped = parse("").unwrap().settings;
        assert_eq!(keep_database(&mut dropped, &running), Some(None));
        assert_eq!(dropped.database, running);
    }

    /// A Quay `config.yaml` as Quay's documentation writes one, with the YAML forms such files
    /// use (block and flow lists, nested mappings, anchors and merge keys, `True`), reads as it
    /// did with the original `serde_yaml`.
    #[test]
    fn a_quay_config_file_reads_as_before() {
        let text = "\
AUTHENTICATION_TYPE: Database
BUILDLOGS_REDIS: &redis
    host: quay-server.example.com
    password: strongpassword
    port: 6379
USER_EVENTS_REDIS:
    <<: *redis
    port: 6380
DISTRIBUTED_STORAGE_CONFIG:
    default:
        - LocalStorage
        - storage_path: /datastorage/registry
DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS: []
DISTRIBUTED_STORAGE_PREFERENCE:
    - default
FEATURE_USER_CREATION: True
FEATURE_HELM_OCI_SUPPORT: false
ALLOWED_OCI_ARTIFACT_TYPES:
  application/vnd.oci.image.config.v1+json: [application/vnd.dev.cosign.simplesigning.v1+json]
  application/vnd.cncf.helm.config.v1+json:
  - application/tar+gzip
SERVER_HOSTNAME: 'quay-server.example.com:8443'
PREFERRED_URL_SCHEME: \"https\"
SUPER_USERS:
    - quayadmin
TAG_EXPIRATION_OPTIONS: [0s, 1d, 1w, 2w, 4w]
DEFAULT_TAG_EXPIRATION: 2w
TOKEN_LIFETIME_SECONDS: 7200
MANIFEST_MAX_BYTES: 0x800000
";
        let l = parse(text).unwrap();
        let s = &l.settings;
        assert!(s.user_creation && !s.policy.helm_oci_support);
        assert_eq!(s.auth.super_users, vec!["quayadmin".to_string()]);
        assert_eq!(s.auth.token_lifetime_secs, 7200);
        assert_eq!(s.manifest_max_bytes, 8 << 20, "hexadecimal integers");
        assert_eq!(
            s.server_hostname.as_deref(),
            Some("quay-server.example.com:8443")
        );
        assert_eq!(s.preferred_url_scheme.as_deref(), Some("https"));
        assert_eq!(s.gc.tag_expiration, Duration::from_secs(14 * 86_400));
        assert_eq!(
            s.storage,
            StorageSettings::Local(Some("/datastorage/registry".into()))
        );
        let types = s.policy.allowed_artifact_types.as_ref().unwrap();
        assert_eq!(
            types["application/vnd.cncf.helm.config.v1+json"],
            vec!["application/tar+gzip".to_string()]
        );
        let mut unused: Vec<&str> = l
            .warnings
            .iter()
            .filter_map(|w| w.strip_prefix("config key "))
            .filter_map(|w| w.split(' ').next())
            .collect();
        unused.sort_unstable();
        assert_eq!(
            unused,
            [
                "BUILDLOGS_REDIS",
                "TAG_EXPIRATION_OPTIONS",
                "USER_EVENTS_REDIS"
            ]
        );
        // YAML 1.1 spellings that YAML 1.2 reads as strings stay type errors naming the key.
        let e = parse("FEATURE_USER_CREATION: yes").unwrap_err().to_string();
        assert!(e.contains("FEATURE_USER_CREATION"), "{e}");
    }

    #[test]
    fn proxy_cache_keys() {
        let s = parse("").unwrap().settings;
        assert!(!s.proxy_cache);
        assert_eq!(s.database_secret_key, None);
        let s = parse("FEATURE_PROXY_CACHE: true\nDATABASE_SECRET_KEY: 'k3y-material'\n")
            .unwrap()
            .settings;
        assert!(s.proxy_cache);
        assert_eq!(
            s.database_secret_key.as_ref().unwrap().expose(),
            "k3y-material"
        );
        assert!(!format!("{s:?}").contains("k3y-material"));
        for bad in [
            "FEATURE_PROXY_CACHE: sometimes",
            "DATABASE_SECRET_KEY: ''",
            "DATABASE_SECRET_KEY: [a]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metrics_keys() {
        let d = Settings::default();
        assert_eq!((d.metrics_listen, d.metrics_allow_anonymous), (None, false));
        let l =
            parse("PROMETHEUS_LISTEN: 127.0.0.1:9091\nMETRICS_ALLOW_ANONYMOUS: true\n").unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(
            l.settings.metrics_listen,
            Some("127.0.0.1:9091".parse().unwrap())
        );
        assert!(l.settings.metrics_allow_anonymous);
        for bad in ["PROMETHEUS_LISTEN: 9091", "PROMETHEUS_LISTEN: somewhere:x"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("PROMETHEUS_LISTEN"), "{e}");
        }
    }

    #[test]
    fn dashboard_render_limit() {
        assert_eq!(Settings::default().dashboard_max_concurrent_renders, 8);
        let l = parse("DASHBOARD_MAX_CONCURRENT_RENDERS: 2\n").unwrap();
        assert_eq!(l.settings.dashboard_max_concurrent_renders, 2);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        for bad in ["0", "-1", "many", "100000"] {
            let e = parse(&format!("DASHBOARD_MAX_CONCURRENT_RENDERS: {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("DASHBOARD_MAX_CONCURRENT_RENDERS"), "{e}");
        }
    }

    #[test]
    fn repo_mirror_and_the_secret_key() {
        let loaded = parse("FEATURE_REPO_MIRROR: true\nDATABASE_SECRET_KEY: s3cret-key\n").unwrap();
        assert!(loaded.settings.repo_mirror);
        assert_eq!(
            parse("REPO_MIRROR_INTERVAL: 5\n")
                .unwrap()
                .settings
                .repo_mirror_interval,
            Duration::from_secs(5)
        );
        assert!(parse("REPO_MIRROR_INTERVAL: 0").is_err());
        assert_eq!(
            loaded.settings.database_secret_key,
            Some(SecretText("s3cret-key".into()))
        );
        let printed = format!("{:?}", loaded.settings);
        assert!(!printed.contains("s3cret-key"), "{printed}");
        let defaults = parse("{}").unwrap().settings;
        assert!(!defaults.repo_mirror && defaults.database_secret_key.is_none());
        assert!(parse("DATABASE_SECRET_KEY: ''").is_err());
        assert!(parse("FEATURE_REPO_MIRROR: maybe").is_err());
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = parse("MANIFEST_MAX_BYTES: lots").unwrap_err().to_string();
        assert!(e.contains("MANIFEST_MAX_BYTES"), "{e}");
        assert!(parse("- a\n- b").is_err());
        assert!(parse("MANIFEST_MAX_BYTES: 10").is_err());
    }

    #[test]
    fn body_idle_timeout() {
        assert_eq!(
            Settings::default().body_idle_timeout,
            Duration::from_secs(60)
        );
        let l = parse("BODY_IDLE_TIMEOUT_SECONDS: 5").unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.settings.body_idle_timeout, Duration::from_secs(5));
        for bad in [
            "BODY_IDLE_TIMEOUT_SECONDS: 0",
            "BODY_IDLE_TIMEOUT_SECONDS: soon",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("BODY_IDLE_TIMEOUT_SECONDS"), "{e}");
        }
    }

    #[test]
    fn connection_keys() {
        let defaults = Settings::default().connections;
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(20));
        assert_eq!(
            defaults.max_connections, None,
            "derived from the open-file limit"
        );
        assert_eq!(defaults.max_connections_per_client, None);
        let l = parse(
            "HEADER_READ_TIMEOUT_SECONDS: 5\nMAX_CONNECTIONS: 1000\nMAX_CONNECTIONS_PER_CLIENT: 10\n",
        )
        .unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let c = l.settings.connections;
        assert_eq!(c.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.max_connections, Some(1000));
        assert_eq!(c.max_connections_per_client, Some(10));
        for bad in [
            "HEADER_READ_TIMEOUT_SECONDS: 0",
            "HEADER_READ_TIMEOUT_SECONDS: 3601",
            "HEADER_READ_TIMEOUT_SECONDS: soon",
            "MAX_CONNECTIONS: 0",
            "MAX_CONNECTIONS: -1",
            "MAX_CONNECTIONS: many",
            "MAX_CONNECTIONS_PER_CLIENT: 0",
            "MAX_CONNECTIONS_PER_CLIENT: 1.5",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split(':').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn trusted_proxies() {
        assert!(Settings::default().trusted_proxies.is_empty());
        let l = parse("TRUSTED_PROXIES: [10.0.0.0/8, 192.0.2.7, \"fd00::/8\"]").unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let p = &l.settings.trusted_proxies;
        for ip in ["10.9.8.7", "192.0.2.7", "fd00::1"] {
            assert!(p.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(!p.contains("192.0.2.8".parse().unwrap()));
        assert!(parse("TRUSTED_PROXIES: []")
            .unwrap()
            .settings
            .trusted_proxies
            .is_empty());
        for bad in [
            "TRUSTED_PROXIES: 10.0.0.1",
            "TRUSTED_PROXIES: [10.0.0.0/40]",
            "TRUSTED_PROXIES: [lb.example]",
            "TRUSTED_PROXIES: [1]",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("TRUSTED_PROXIES"), "{bad}: {e}");
        }
        let e = parse("TRUSTED_PROXIES: [lb.example]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lb.example"), "{e}");
    }
}
