//! Configuration: command-line options plus an optional YAML file in Quay's key style.
//!
//! Unknown keys are accepted with a warning (a Quay `config.yaml` carries many keys berth does
//! not use); a known key with a value of the wrong type is an error naming the key.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

/// Settings read from the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `MANIFEST_MAX_BYTES`: largest manifest accepted (default 4 MiB, at least 1 KiB).
    pub manifest_max_bytes: usize,
    /// `LIST_MAX_PAGE_SIZE`: largest page of tags, repositories or referrers (default 10,000).
    pub list_max_page_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            manifest_max_bytes: 4 * 1024 * 1024,
            list_max_page_size: 10_000,
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
    Yaml(#[from] serde_yaml::Error),
    #[error("config file must be a YAML mapping of keys to values")]
    NotAMapping,
    #[error("config key {key}: expected {expected}")]
    WrongType { key: String, expected: &'static str },
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

const KNOWN_KEYS: &[&str] = &["MANIFEST_MAX_BYTES", "LIST_MAX_PAGE_SIZE"];

/// Parses config text.
pub fn parse(text: &str) -> Result<Loaded, ConfigError> {
    let value: Value = serde_yaml::from_str(text)?;
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
    let warnings = map
        .keys()
        .map(|k| match k {
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
        .map(|k| format!("config key {k} is not used by berth; ignoring it"))
        .collect();
    Ok(Loaded { settings, warnings })
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
            parse("SERVER_HOSTNAME: quay.example\nFEATURE_X: true\nMANIFEST_MAX_BYTES: 8388608\n")
                .unwrap();
        assert_eq!(l.settings.manifest_max_bytes, 8 << 20);
        assert_eq!(l.warnings.len(), 2);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = parse("MANIFEST_MAX_BYTES: lots").unwrap_err().to_string();
        assert!(e.contains("MANIFEST_MAX_BYTES"), "{e}");
        assert!(parse("- a\n- b").is_err());
        assert!(parse("MANIFEST_MAX_BYTES: 10").is_err());
    }
}
