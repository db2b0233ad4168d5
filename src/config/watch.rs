//! Applying config file changes without a restart.
//!
//! The file is polled once a second (robust against editors that replace the file and against
//! filesystems without change notifications) and re-read at once on SIGHUP. A valid new config
//! is handed to `apply`; an invalid one is logged with its problem and the old one stays.

use std::path::PathBuf;
use std::time::Duration;

use super::{parse, Loaded};

/// How often the config file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Watches `path` until the process ends, calling `apply` with each new valid config.
/// `current` is the text in force now, so an unchanged file is not re-applied.
pub fn watch(path: PathBuf, current: Option<String>, apply: impl Fn(Loaded) + Send + 'static) {
    tokio::spawn(async move {
        let mut last_seen = current;
        let mut hangup = hangup_signal();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                _ = recv(&mut hangup) => true,
            };
            let text = match tokio::fs::read_to_string(&path).await {
                Ok(t) => t,
                Err(e) => {
                    if forced || last_seen.is_some() {
                        tracing::error!(path = %path.display(), error = %e, "cannot read config file; keeping the config in force");
                        last_seen = None;
                    }
                    continue;
                }
            };
            if !forced && last_seen.as_deref() == Some(text.as_str()) {
                continue;
            }
            let parsed = parse(&text);
            last_seen = Some(text);
            match parsed {
                Ok(loaded) => {
                    for warning in &loaded.warnings {
                        tracing::warn!("{warning}");
                    }
                    tracing::info!(path = %path.display(), "config reloaded");
                    crate::metrics::metrics().config_reload(true);
                    apply(loaded);
                }
                Err(e) => {
                    crate::metrics::metrics().config_reload(false);
                    tracing::error!(path = %path.display(), error = %e, "config rejected; keeping the config in force");
                }
            }
        }
    });
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv(h: &mut Hangup) {
    match h {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn recv(_: &mut Hangup) {
    std::future::pending::<()>().await
}
