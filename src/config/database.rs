//! `DB_URI`: which metadata database berth uses.
//!
//! `postgresql://user[:password]@host[:port]/db` (or `postgres://`) selects PostgreSQL,
//! `sqlite:///abs/path.db` selects SQLite at that path; without the key berth uses SQLite at
//! `DATA_DIR/metadata.db`. The password never appears in `Debug`, `Display` or errors.

use std::fmt;
use std::path::PathBuf;

/// The environment variable that overrides `DB_URI` (tests and container deployments use it).
pub const DB_URI_ENV: &str = "BERTH_DB_URI";

/// A parsed `DB_URI`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUri {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URI, kept verbatim (with its password) for the driver.
    Postgres(String),
}

impl DatabaseUri {
    /// Parses a `DB_URI` value. The error message never contains the value itself, since it
    /// may hold a password.
    pub fn parse(s: &str) -> Result<DatabaseUri, &'static str> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or("");
            if !path.starts_with('/') || path.len() < 2 {
                return Err(
                    "sqlite:// needs an absolute path, as in sqlite:///var/lib/berth/metadata.db",
                );
            }
            return Ok(DatabaseUri::Sqlite(PathBuf::from(path)));
        }
        let rest = s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
            .ok_or("a postgresql://, postgres:// or sqlite:/// URI")?;
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        let has_db = rest[authority.len()..]
            .strip_prefix('/')
            .is_some_and(|db| !db.is_empty() && !db.starts_with('?'));
        if host.is_empty() || !has_db {
            return Err("a postgresql://user:password@host:port/database URI");
        }
        Ok(DatabaseUri::Postgres(s.to_string()))
    }

    /// The URI with its password replaced by `***`, for logs and errors.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUri::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUri::Postgres(uri) => redact(uri),
        }
    }
}

/// Replaces the password of a `scheme://user:password@host/...` URI (and a `password=` query
/// parameter) with `***`.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl fmt::Display for DatabaseUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUri({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(
            DatabaseUri::parse("sqlite:///var/lib/berth/m.db").unwrap(),
            DatabaseUri::Sqlite("/var/lib/berth/m.db".into())
        );
        for uri in [
            "postgresql://berth:pw@127.0.0.1:5432/berth",
            "postgres://berth@db/berth",
            "postgresql://u:p@h/db?sslmode=disable",
        ] {
            assert_eq!(
                DatabaseUri::parse(uri).unwrap(),
                DatabaseUri::Postgres(uri.into())
            );
        }
        for bad in [
            "mysql://u:p@h/db",
            "sqlite://relative.db",
            "sqlite://",
            "postgresql://u:p@h",
            "postgresql://u:p@h/",
            "postgresql:///db",
            "",
        ] {
            assert!(DatabaseUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_is_redacted() {
        let uri = DatabaseUri::parse("postgresql://berth:s3cr%40t@db.example:5432/berth").unwrap();
        for shown in [uri.to_string(), format!("{uri:?}"), uri.redacted()] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("berth:***@db.example:5432/berth"), "{shown}");
        }
        assert_eq!(
            redact("postgres://u@h/db?password=hunter2&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        // A password containing '@' or ':' is hidden whole.
        assert_eq!(redact("postgres://u:a:b@c@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn errors_do_not_echo_the_value() {
        let e = DatabaseUri::parse("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!e.contains("hunter2"));
    }
}
