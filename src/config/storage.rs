//! Where blobs live: Quay's `DISTRIBUTED_STORAGE_CONFIG` and `DISTRIBUTED_STORAGE_PREFERENCE`.
//!
//! ```yaml
//! DISTRIBUTED_STORAGE_CONFIG:
//!   default:
//!   - S3Storage
//!   - {host: 127.0.0.1, port: 3900, s3_bucket: berth, s3_access_key: KEY,
//!      s3_secret_key: SECRET, s3_region: garage, storage_path: /registry}
//! DISTRIBUTED_STORAGE_PREFERENCE: [default]
//! ```
//!
//! Each location is a driver name and its parameters. berth understands `LocalStorage`
//! (`storage_path`, default the data directory), `S3Storage` (`s3_bucket`, `storage_path`,
//! `s3_access_key`, `s3_secret_key`, `host`, `port`, `s3_region`, `is_secure`, `endpoint_url`;
//! without `host` or `endpoint_url` it is AWS at the region's endpoint) and `RadosGWStorage`
//! (`hostname`, `port`, `is_secure`, `access_key`, `secret_key`, `bucket_name`, `storage_path`).
//! berth uses one location: the first of `DISTRIBUTED_STORAGE_PREFERENCE` (or the only one
//! configured). Secret keys never appear in `Debug`, `Display` or errors.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde_norway::{Mapping, Value};

use super::ConfigError;

/// The config key holding the storage locations.
pub const STORAGE_CONFIG_KEY: &str = "DISTRIBUTED_STORAGE_CONFIG";
/// The config key ordering them.
pub const STORAGE_PREFERENCE_KEY: &str = "DISTRIBUTED_STORAGE_PREFERENCE";

/// The blob store berth uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSettings {
    /// `LocalStorage`: a directory on this machine (`storage_path`); `None` is the data
    /// directory.
    Local(Option<PathBuf>),
    /// `S3Storage` or `RadosGWStorage`: a bucket of an S3-compatible object store.
    S3(S3Settings),
}

/// An S3 bucket and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket (`storage_path` without its outer slashes; may be empty).
    pub prefix: String,
    /// The service's base URL (`http://127.0.0.1:3900`); `None` is AWS at the region's
    /// endpoint.
    pub endpoint: Option<String>,
    /// The signing region (`us-east-1` unless configured).
    pub region: String,
    /// Static credentials; `None` uses the environment's (instance or task role on AWS).
    pub credentials: Option<S3Credentials>,
}

/// An access key and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings::Local(None)
    }
}

impl S3Settings {
    /// Whether requests use path-style addressing (`endpoint/bucket/key`): every
    /// S3-compatible service but AWS.
    pub fn path_style(&self) -> bool {
        self.endpoint.is_some()
    }
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .finish()
    }
}

impl fmt::Display for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = self.endpoint.as_deref().unwrap_or("AWS");
        write!(f, "s3://{}/{} at {endpoint}", self.bucket, self.prefix)
    }
}

impl fmt::Display for StorageSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageSettings::Local(None) => f.write_str("the data directory"),
            StorageSettings::Local(Some(path)) => write!(f, "{}", path.display()),
            StorageSettings::S3(s3) => write!(f, "{s3}"),
        }
    }
}

/// What the storage keys of a config file say, plus warnings for parameters berth ignores.
pub(super) struct ParsedStorage {
    pub settings: StorageSettings,
    pub warnings: Vec<String>,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Reads `DISTRIBUTED_STORAGE_CONFIG` and `DISTRIBUTED_STORAGE_PREFERENCE` (and accepts
/// `DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS`, which only matters to geo-replicated Quay).
pub(super) fn parse(map: &Mapping) -> Result<ParsedStorage, ConfigError> {
    let preference = super::string_list(map, STORAGE_PREFERENCE_KEY)?;
    super::string_list(map, "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS")?;
    let locations = match map.get(STORAGE_CONFIG_KEY) {
        None | Some(Value::Null) => {
            return Ok(ParsedStorage {
                settings: StorageSettings::default(),
                warnings: Vec::new(),
            })
        }
        Some(Value::Mapping(m)) => m,
        Some(_) => {
            return Err(invalid(
                STORAGE_CONFIG_KEY,
                "expected a mapping from location names to [driver, {parameters}]",
            ))
        }
    };
    let mut names = Vec::new();
    for name in locations.keys() {
        let name = name
            .as_str()
            .ok_or_else(|| invalid(STORAGE_CONFIG_KEY, "location names must be strings"))?;
        names.push(name.to_string());
    }
    let chosen = match preference.as_deref() {
        Some([first, ..]) => {
            if !names.contains(first) {
                return Err(invalid(
                    STORAGE_PREFERENCE_KEY,
                    format!("names location {first}, which {STORAGE_CONFIG_KEY} does not define"),
                ));
            }
            first.clone()
        }
        _ => match names.as_slice() {
            [only] => only.clone(),
            [] => {
                return Err(invalid(STORAGE_CONFIG_KEY, "defines no storage location"));
            }
            _ => {
                return Err(invalid(
                    STORAGE_PREFERENCE_KEY,
                    format!("needed to choose among the locations {}", names.join(", ")),
                ));
            }
        },
    };
    let mut warnings = Vec::new();
    let mut settings = None;
    // Every location is validated, so a typo in one that is not in use yet is found now.
    for (name, value) in locations {
        let name = name.as_str().expect("names were checked above");
        let key = format!("{STORAGE_CONFIG_KEY}.{name}");
        let location = parse_location(&key, value, &mut warnings)?;
        if name == chosen {
            settings = Some(location);
        }
    }
    if names.len() > 1 {
        warnings.push(format!(
            "{STORAGE_CONFIG_KEY}: berth stores blobs in location {chosen} only; it does not replicate to the others"
        ));
    }
    Ok(ParsedStorage {
        settings: settings.expect("the chosen location exists"),
        warnings,
    })
}

/// One location: `[Driver, {parameters}]`.
fn parse_location(
    key: &str,
    value: &Value,
    warnings: &mut Vec<String>,
) -> Result<StorageSettings, ConfigError> {
    let shape = || invalid(key, "expected [driver name, {parameters}]");
    let Value::Sequence(items) = value else {
        return Err(shape());
    };
    let (driver, params) = match items.as_slice() {
        [driver] => (driver, None),
        [driver, params] => (driver, Some(params)),
        _ => return Err(shape()),
    };
    let driver = driver.as_str().ok_or_else(shape)?;
    let empty = Mapping::new();
    let params = match params {
        None | Some(Value::Null) => &empty,
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err(invalid(key, "the parameters must be a mapping")),
    };
    let params = Params {
        key,
        driver,
        map: params,
    };
    let (settings, known): (StorageSettings, &[&str]) = match driver {
        "LocalStorage" => (local(&params)?, &["storage_path"]),
        "S3Storage" => (
            s3(&params)?,
            &[
                "s3_bucket",
                "storage_path",
                "s3_access_key",
                "s3_secret_key",
                "host",
                "port",
                "s3_region",
                "is_secure",
                "endpoint_url",
            ],
        ),
        "RadosGWStorage" => (
            radosgw(&params)?,
            &[
                "hostname",
                "port",
                "is_secure",
                "access_key",
                "secret_key",
                "bucket_name",
                "storage_path",
            ],
        ),
        other => {
            return Err(invalid(
                key,
                format!(
                    "storage driver {other} is not supported (berth supports LocalStorage, S3Storage and RadosGWStorage)"
                ),
            ))
        }
    };
    for name in params.map.keys() {
        let name = name.as_str().unwrap_or("?");
        if !known.contains(&name) {
            warnings.push(format!(
                "{key}: {driver} parameter {name} is not used by berth; ignoring it"
            ));
        }
    }
    Ok(settings)
}

/// A driver's parameters, for errors that name the location, driver and parameter.
struct Params<'a> {
    key: &'a str,
    driver: &'a str,
    map: &'a Mapping,
}

impl Params<'_> {
    fn error(&self, param: &str, problem: &str) -> ConfigError {
        invalid(
            self.key,
            format!("{} parameter {param}: {problem}", self.driver),
        )
    }

    fn string(&self, param: &str) -> Result<Option<String>, ConfigError> {
        match self.map.get(param) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            // Access keys and bucket names can look like numbers to YAML.
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.error(param, "expected a string")),
        }
    }

    fn required(&self, param: &str) -> Result<String, ConfigError> {
        self.string(param)?
            .ok_or_else(|| self.error(param, "required"))
    }

    fn port(&self, param: &str) -> Result<Option<u16>, ConfigError> {
        let bad = || self.error(param, "expected a port number (1-65535)");
        match self.map.get(param) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(bad),
            Some(Value::String(s)) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    fn boolean(&self, param: &str) -> Result<Option<bool>, ConfigError> {
        match self.map.get(param) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.error(param, "expected true or false")),
        }
    }

    /// `storage_path` as a key prefix: outer slashes dropped, no empty, `.` or `..` segments.
    fn prefix(&self) -> Result<String, ConfigError> {
        let Some(path) = self.string("storage_path")? else {
            return Ok(String::new());
        };
        let trimmed = path.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(String::new());
        }
        let valid = trimmed.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && !segment.chars().any(char::is_control)
        });
        if !valid {
            return Err(self.error(
                "storage_path",
                "expected a path like /registry (no empty, . or .. segments)",
            ));
        }
        Ok(trimmed.to_string())
    }

    /// Both keys or neither: a lone access key or secret is a mistake.
    fn credentials(
        &self,
        access: &str,
        secret: &str,
    ) -> Result<Option<S3Credentials>, ConfigError> {
        match (self.string(access)?, self.string(secret)?) {
            (Some(access_key), Some(secret_key)) => Ok(Some(S3Credentials {
                access_key,
                secret_key,
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.error(secret, &format!("required when {access} is set"))),
            (None, Some(_)) => Err(self.error(access, &format!("required when {secret} is set"))),
        }
    }
}

fn local(params: &Params<'_>) -> Result<StorageSettings, ConfigError> {
    match params.string("storage_path")? {
        None => Ok(StorageSettings::Local(None)),
        Some(path) if path.starts_with('/') => {
            Ok(StorageSettings::Local(Some(PathBuf::from(path))))
        }
        Some(_) => Err(params.error("storage_path", "expected an absolute path")),
    }
}

/// Whether `host` (a name or address, without scheme or port) is this machine.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Builds a base URL from `host` (which may carry a scheme and a port), `port` and
/// `is_secure`. Without a scheme or `is_secure`, loopback hosts get plain HTTP and others
/// HTTPS.
fn endpoint_url(
    params: &Params<'_>,
    host_param: &str,
    host: &str,
    port: Option<u16>,
    secure: Option<bool>,
) -> Result<String, ConfigError> {
    let (scheme, rest) = match host.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, host),
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(params.error(
            host_param,
            "expected a host name or address, with an optional port",
        ));
    }
    // An authority that already names a port keeps it (`host: s3.example:9000`).
    let (name, has_port) = match authority.rsplit_once(':') {
        Some((name, p))
            if !name.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() =>
        {
            (name, true)
        }
        _ => (authority, false),
    };
    let scheme = match (scheme, secure) {
        (Some(s), _) if s == "http" || s == "https" => s,
        (Some(_), _) => return Err(params.error(host_param, "the scheme must be http or https")),
        (None, Some(true)) => "https".into(),
        (None, Some(false)) => "http".into(),
        (None, None) if is_loopback(name) => "http".into(),
        (None, None) => "https".into(),
    };
    Ok(match (port, has_port) {
        (Some(port), false) => format!("{scheme}://{authority}:{port}"),
        _ => format!("{scheme}://{authority}"),
    })
}

fn s3(params: &Params<'_>) -> Result<StorageSettings, ConfigError> {
    let bucket = params.required("s3_bucket")?;
    let port = params.port("port")?;
    let secure = params.boolean("is_secure")?;
    let endpoint = match (params.string("endpoint_url")?, params.string("host")?) {
        (Some(url), _) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(params.error("endpoint_url", "expected an http:// or https:// URL"));
            }
            Some(url.trim_end_matches('/').to_string())
        }
        (None, Some(host)) => Some(endpoint_url(params, "host", &host, port, secure)?),
        (None, None) => None,
    };
    Ok(StorageSettings::S3(S3Settings {
        bucket,
        prefix: params.prefix()?,
        endpoint,
        region: params
            .string("s3_region")?
            .unwrap_or_else(|| "us-east-1".to_string()),
        credentials: params.credentials("s3_access_key", "s3_secret_key")?,
    }))
}

fn radosgw(params: &Params<'_>) -> Result<StorageSettings, ConfigError> {
    let host = params.required("hostname")?;
    let port = params.port("port")?;
    let secure = params.boolean("is_secure")?;
    let endpoint = endpoint_url(params, "hostname", &host, port, secure)?;
    let credentials = params.credentials("access_key", "secret_key")?;
    if credentials.is_none() {
        return Err(params.error("access_key", "required"));
    }
    Ok(StorageSettings::S3(S3Settings {
        bucket: params.required("bucket_name")?,
        prefix: params.prefix()?,
        endpoint: Some(endpoint),
        // RADOS Gateway ignores the region, but SigV4 signatures need one.
        region: "us-east-1".to_string(),
        credentials,
    }))
}

/// Keeps the blob store berth started with in `reloaded` settings: storage applies at start
/// only. Returns the storage the reloaded file asked for when it differs (for a warning).
pub fn keep_storage(
    reloaded: &mut super::Settings,
    running: &StorageSettings,
) -> Option<StorageSettings> {
    if reloaded.storage == *running {
        return None;
    }
    Some(std::mem::replace(&mut reloaded.storage, running.clone()))
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ConfigError, Settings};
    use super::*;

    const QUAY: &str = "\
DISTRIBUTED_STORAGE_CONFIG:
  default:
  - S3Storage
  - {host: 127.0.0.1, port: 3900, s3_bucket: berth, s3_access_key: KEY, s3_secret_key: SECRET,
     s3_region: garage, storage_path: /registry}
DISTRIBUTED_STORAGE_PREFERENCE: [default]
FEATURE_PROXY_STORAGE: false
";

    fn storage(yaml: &str) -> StorageSettings {
        parse(yaml).unwrap().settings.storage
    }

    fn s3(yaml: &str) -> S3Settings {
        match storage(yaml) {
            StorageSettings::S3(s3) => s3,
            other => panic!("not S3: {other:?}"),
        }
    }

    fn error(yaml: &str) -> String {
        match parse(yaml) {
            Err(e @ (ConfigError::Invalid { .. } | ConfigError::WrongType { .. })) => e.to_string(),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn quay_s3_storage_verbatim() {
        let loaded = parse(QUAY).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert!(!loaded.settings.proxy_storage);
        let StorageSettings::S3(s3) = &loaded.settings.storage else {
            panic!("not S3");
        };
        assert_eq!(s3.bucket, "berth");
        assert_eq!(s3.prefix, "registry");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(s3.region, "garage");
        assert!(s3.path_style());
        let creds = s3.credentials.as_ref().unwrap();
        assert_eq!(
            (creds.access_key.as_str(), creds.secret_key.as_str()),
            ("KEY", "SECRET")
        );
        for shown in [
            format!("{:?}", loaded.settings),
            loaded.settings.storage.to_string(),
        ] {
            assert!(!shown.contains("SECRET"), "{shown}");
        }
        assert!(
            parse(&QUAY.replace("false", "true"))
                .unwrap()
                .settings
                .proxy_storage
        );
    }

    #[test]
    fn aws_and_endpoints() {
        let aws = s3("DISTRIBUTED_STORAGE_CONFIG:\n  us: [S3Storage, {s3_bucket: b, s3_region: eu-west-1}]\n");
        assert_eq!(aws.endpoint, None);
        assert!(!aws.path_style());
        assert_eq!(aws.region, "eu-west-1");
        assert_eq!(aws.credentials, None);
        assert_eq!(aws.prefix, "");
        let remote = s3("DISTRIBUTED_STORAGE_CONFIG:\n  x: [S3Storage, {s3_bucket: b, host: minio.example, port: 9000}]\n");
        assert_eq!(
            remote.endpoint.as_deref(),
            Some("https://minio.example:9000")
        );
        assert_eq!(remote.region, "us-east-1");
        let plain = s3("DISTRIBUTED_STORAGE_CONFIG:\n  x: [S3Storage, {s3_bucket: b, host: minio.example, is_secure: false}]\n");
        assert_eq!(plain.endpoint.as_deref(), Some("http://minio.example"));
        let with_scheme = s3("DISTRIBUTED_STORAGE_CONFIG:\n  x: [S3Storage, {s3_bucket: b, host: 'http://10.0.0.5:9000', port: 9001}]\n");
        assert_eq!(
            with_scheme.endpoint.as_deref(),
            Some("http://10.0.0.5:9000")
        );
        let url = s3("DISTRIBUTED_STORAGE_CONFIG:\n  x: [S3Storage, {s3_bucket: b, endpoint_url: 'https://s3.example/', storage_path: a/b/}]\n");
        assert_eq!(url.endpoint.as_deref(), Some("https://s3.example"));
        assert_eq!(url.prefix, "a/b");
        let localhost = s3("DISTRIBUTED_STORAGE_CONFIG:\n  x: [S3Storage, {s3_bucket: b, host: localhost, port: '3900'}]\n");
        assert_eq!(localhost.endpoint.as_deref(), Some("http://localhost:3900"));
    }

    #[test]
    fn radosgw() {
        let rgw = s3("\
DISTRIBUTED_STORAGE_CONFIG:
  ceph:
  - RadosGWStorage
  - hostname: rgw.example
    port: 7480
    is_secure: false
    access_key: AK
    secret_key: hunter2
    bucket_name: quay
    storage_path: /datastorage/registry
");
        assert_eq!(rgw.endpoint.as_deref(), Some("http://rgw.example:7480"));
        assert_eq!(rgw.bucket, "quay");
        assert_eq!(rgw.prefix, "datastorage/registry");
        assert!(rgw.path_style());
        assert!(!format!("{rgw:?}").contains("hunter2"));
        let secure = s3("DISTRIBUTED_STORAGE_CONFIG:\n  c: [RadosGWStorage, {hostname: rgw, access_key: a, secret_key: s, bucket_name: q}]\n");
        assert_eq!(secure.endpoint.as_deref(), Some("https://rgw"));
        let e = error(
            "DISTRIBUTED_STORAGE_CONFIG:\n  c: [RadosGWStorage, {hostname: rgw, bucket_name: q}]\n",
        );
        assert!(
            e.contains("DISTRIBUTED_STORAGE_CONFIG.c") && e.contains("access_key"),
            "{e}"
        );
    }

    #[test]
    fn local_storage() {
        assert_eq!(storage(""), StorageSettings::Local(None));
        assert_eq!(
            storage("DISTRIBUTED_STORAGE_CONFIG:\n  default: [LocalStorage, {storage_path: /datastorage/registry}]\nDISTRIBUTED_STORAGE_PREFERENCE: [default]\n"),
            StorageSettings::Local(Some("/datastorage/registry".into()))
        );
        assert_eq!(
            storage("DISTRIBUTED_STORAGE_CONFIG:\n  default: [LocalStorage]\n"),
            StorageSettings::Local(None)
        );
        let e =
            error("DISTRIBUTED_STORAGE_CONFIG:\n  default: [LocalStorage, {storage_path: data}]\n");
        assert!(e.contains("storage_path") && e.contains("absolute"), "{e}");
    }

    #[test]
    fn preference_picks_the_location() {
        let two = "\
DISTRIBUTED_STORAGE_CONFIG:
  local: [LocalStorage, {storage_path: /srv/blobs}]
  s3: [S3Storage, {s3_bucket: b, host: 127.0.0.1}]
";
        let loaded = parse(&format!("{two}DISTRIBUTED_STORAGE_PREFERENCE: [s3, local]\nDISTRIBUTED_STORAGE_DEFAULT_LOCATIONS: [local]\n")).unwrap();
        assert!(matches!(loaded.settings.storage, StorageSettings::S3(_)));
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("location s3 only"));
        let e = error(two);
        assert!(
            e.contains(STORAGE_PREFERENCE_KEY) && e.contains("local, s3"),
            "{e}"
        );
        let e = error(&format!("{two}DISTRIBUTED_STORAGE_PREFERENCE: [gcs]\n"));
        assert!(
            e.contains(STORAGE_PREFERENCE_KEY) && e.contains("gcs"),
            "{e}"
        );
        let e = error("DISTRIBUTED_STORAGE_CONFIG: {}\n");
        assert!(e.contains(STORAGE_CONFIG_KEY), "{e}");
    }

    #[test]
    fn bad_inputs_name_the_key_and_parameter() {
        let cases = [
            ("DISTRIBUTED_STORAGE_CONFIG: [S3Storage]", "DISTRIBUTED_STORAGE_CONFIG"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: S3Storage", "DISTRIBUTED_STORAGE_CONFIG.d"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [AzureStorage, {azure_container: c}]", "AzureStorage"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, {host: h}]", "s3_bucket"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, [a, b]]", "parameters"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, {s3_bucket: b, port: 70000, host: h}]", "port"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, {s3_bucket: b, is_secure: maybe, host: h}]", "is_secure"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, {s3_bucket: b, storage_path: /a/../b}]", "storage_path"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, {s3_bucket: b, host: 'ftp://h'}]", "host"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, {s3_bucket: b, endpoint_url: h}]", "endpoint_url"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, {s3_bucket: b, s3_secret_key: hunter2}]", "s3_access_key"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, {s3_bucket: b, s3_access_key: k}]", "s3_secret_key"),
            ("DISTRIBUTED_STORAGE_CONFIG:\n  d: [RadosGWStorage, {access_key: a, secret_key: hunter2, bucket_name: b}]", "hostname"),
            ("DISTRIBUTED_STORAGE_PREFERENCE: default", STORAGE_PREFERENCE_KEY),
            ("FEATURE_PROXY_STORAGE: sometimes", "FEATURE_PROXY_STORAGE"),
        ];
        for (yaml, needle) in cases {
            let e = error(yaml);
            assert!(e.contains(needle), "{yaml}: {e}");
            assert!(!e.contains("hunter2"), "{yaml}: {e}");
        }
    }

    #[test]
    fn unknown_parameters_warn() {
        let loaded = parse("DISTRIBUTED_STORAGE_CONFIG:\n  d: [S3Storage, {s3_bucket: b, maximum_chunk_size_gb: 1}]\n").unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0].contains("maximum_chunk_size_gb"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn a_reload_keeps_the_storage() {
        let running = parse(QUAY).unwrap().settings.storage;
        let mut same = parse(QUAY).unwrap().settings;
        assert_eq!(keep_storage(&mut same, &running), None);
        let mut moved = parse(&QUAY.replace("berth,", "other,")).unwrap().settings;
        let asked = keep_storage(&mut moved, &running).expect("a change");
        assert!(matches!(asked, StorageSettings::S3(ref s) if s.bucket == "other"));
        assert_eq!(moved.storage, running);
        let mut dropped = Settings::default();
        assert_eq!(
            keep_storage(&mut dropped, &running),
            Some(StorageSettings::Local(None))
        );
        assert_eq!(dropped.storage, running);
    }
}
