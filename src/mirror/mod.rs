//! Repository states and mirroring (issue 20): what refuses content changes in a `READ_ONLY` or
//! `MIRROR` repository, the mirror configuration's validation (Quay's `endpoints/api/mirror.py`
//! rules), the `tag_glob_csv` matcher, and [`Mirrors`], the handle the API, the dashboard and
//! the sync worker share. The worker that copies content is built on the store's claim steps
//! ([`crate::metadata::mirror::MirrorStore`]).

pub mod glob;
pub mod sync;

use std::sync::Arc;

use oci::RepoName;

use crate::app::AppState;
use crate::metadata::accounts::RepoState;
use crate::metadata::mirror::MirrorRecord;
use crate::metadata::{MetadataError, Store};
use crate::sealed::{SealError, SealerCell};

/// The mirror configurations' store and the key that seals their passwords.
pub struct Mirrors {
    store: Arc<dyn Store>,
    secrets: Arc<SealerCell>,
    /// Wakes this replica's sync worker (a "sync now").
    wake: tokio::sync::Notify,
}

impl Mirrors {
    pub fn new(store: Arc<dyn Store>, secrets: Arc<SealerCell>) -> Mirrors {
        Mirrors {
            store,
            secrets,
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Wakes this replica's sync worker so a mirror made due now is synced without waiting
    /// for the next `REPO_MIRROR_INTERVAL` (other replicas see it at theirs).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next [`Mirrors::wake`].
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    /// The store of mirror configurations and sync claims.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Seals an external registry password for `repo`'s configuration.
    pub fn seal_password(&self, repo: &RepoName, password: &str) -> Result<String, SealError> {
        self.secrets
            .get()
            .map_err(|e| SealError::Key(e.to_string()))?
            .seal(&password_context(repo), password)
    }

    /// The external registry password of `mirror`, for the sync worker only.
    pub fn password(&self, mirror: &MirrorRecord) -> Result<Option<String>, SealError> {
        let Some(sealed) = mirror.settings.registry_password_sealed.as_deref() else {
            return Ok(None);
        };
        self.secrets
            .get()
            .map_err(|e| SealError::Key(e.to_string()))?
            .open(&password_context(&mirror.repository), sealed)
            .map(Some)
    }
}

fn password_context(repo: &RepoName) -> String {
    format!("berth/repository-mirror/{repo}")
}

/// Why the content of `repo` may not change now (a push, a manifest or tag delete, a tag move
/// or restore), or `None` when it may. The state is read from the remembered repository facts
/// under the access generation `generation` (the request's, or read now when `None`), so the
/// push path pays no query; only a refusal of a mirror reads its configuration, to name it.
pub async fn content_refusal(
    state: &AppState,
    generation: Option<u64>,
    repo: &RepoName,
) -> Result<Option<String>, MetadataError> {
    Ok(match state.auth.repository_state(generation, repo).await? {
        RepoState::Normal => None,
        RepoState::ReadOnly => Some(format!(
            "repository {repo} is read-only; its content cannot change"
        )),
        RepoState::Mirror => {
            let source = state
                .mirrors
                .store()
                .mirror(repo)
                .await?
                .map(|m| m.settings.external_reference);
            Some(match source {
                Some(source) => {
                    format!("this repository is a mirror of {source}; it is kept in sync by berth")
                }
                None => format!("repository {repo} is a mirror; it is kept in sync by berth"),
            })
        }
    })
}

/// Checks an `external_reference` (`host[:port]/path`, as Quay's mirror takes it: the external
/// repository, without tag or digest); the message is the 400's.
pub fn check_external_reference(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("Empty string is an invalid repository location.".into());
    }
    let invalid = |why: &str| Err(format!("invalid external_reference {reference:?}: {why}"));
    let Some((host, path)) = reference.split_once('/') else {
        return invalid("expected host[:port]/repository");
    };
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return invalid("the registry host is not a host name");
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return invalid("the registry port is not a port number");
        }
    }
    if !(name.contains('.') || port.is_some() || name == "localhost") {
        return invalid("the first component must be a registry host (with a dot or a port)");
    }
    if path.contains('@')
        || path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
    {
        return invalid("name the repository without a tag or digest");
    }
    path.parse::<RepoName>()
        .map(drop)
        .or_else(|e| invalid(&format!("repository path: {e}")))
}

/// Quay's `sync_start_date` format, `%Y-%m-%dT%H:%M:%SZ`, as milliseconds since the epoch.
pub fn parse_start_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[19] != b'Z' || b[10] != b'T' {
        return None;
    }
    crate::trust::verify::rfc3339_seconds(text).map(|s| s.saturating_mul(1000))
}

/// `sync_start_date` as Quay answers it (`2026-12-08T01:00:00Z`).
pub fn format_date(millis: i64) -> String {
    crate::api::dates::rfc3339((millis.max(0) / 1000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_references() {
        for ok in [
            "registry.example.com/library/app",
            "localhost:5000/app",
            "127.0.0.1:5000/org/app",
            "quay.io/coreos/etcd",
        ] {
            assert_eq!(check_external_reference(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_external_reference(""),
            Err("Empty string is an invalid repository location.".into())
        );
        for bad in [
            "app",
            "library/app",
            "quay.io/",
            "quay.io/Upper/case",
            "quay.io/app:1.0",
            "quay.io/app@sha256:abcd",
            "quay.io:0/app",
            "quay.io:x/app",
            "bad_host.io/app",
            "https://quay.io/app",
        ] {
            assert!(check_external_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn start_dates_in_quays_format_only() {
        assert_eq!(parse_start_date("1970-01-01T00:01:00Z"), Some(60_000));
        assert_eq!(format_date(60_000), "1970-01-01T00:01:00Z");
        for bad in [
            "2026-12-08",
            "2026-12-08T01:00:00",
            "2026-12-08T01:00:00.5Z",
            "2026-12-08T01:00:00+01:00",
            "2026-13-08T01:00:00Z",
            "tomorrow",
        ] {
            assert_eq!(parse_start_date(bad), None, "{bad}");
        }
    }
}
