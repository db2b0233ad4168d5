//! The repository-notification keys: which targets are allowed, and how deliveries are
//! polled, timed out and retried.

use std::time::Duration;

use serde_norway::Mapping;

use super::{boolean, integer, ConfigError};
use crate::notify::NotificationSettings;

/// The keys this module reads.
pub(super) const KEYS: &[&str] = &[
    "WEBHOOK_ALLOW_PRIVATE_TARGETS",
    "NOTIFICATION_POLL_INTERVAL_MS",
    "NOTIFICATION_RETRY_BASE_DELAY_MS",
    "NOTIFICATION_RETRY_MAX_DELAY_MS",
    "NOTIFICATION_MAX_ATTEMPTS",
    "NOTIFICATION_TIMEOUT_SECONDS",
];

/// Reads the notification keys of a config file.
pub(super) fn parse(map: &Mapping) -> Result<NotificationSettings, ConfigError> {
    let mut s = NotificationSettings::default();
    let millis = |key, min| integer(map, key, min, 86_400_000);
    if let Some(b) = boolean(map, "WEBHOOK_ALLOW_PRIVATE_TARGETS")? {
        s.allow_private_targets = b;
    }
    if let Some(n) = millis("NOTIFICATION_POLL_INTERVAL_MS", 10)? {
        s.poll_interval = Duration::from_millis(n);
    }
    if let Some(n) = millis("NOTIFICATION_RETRY_BASE_DELAY_MS", 1)? {
        s.retry_base_delay = Duration::from_millis(n);
    }
    if let Some(n) = millis("NOTIFICATION_RETRY_MAX_DELAY_MS", 1)? {
        s.retry_max_delay = Duration::from_millis(n);
    }
    if let Some(n) = integer(map, "NOTIFICATION_MAX_ATTEMPTS", 1, 1000)? {
        s.max_attempts = n as u32;
    }
    if let Some(n) = integer(map, "NOTIFICATION_TIMEOUT_SECONDS", 1, 300)? {
        s.timeout = Duration::from_secs(n);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_config;
    use super::*;

    #[test]
    fn defaults_and_keys() {
        let loaded = parse_config("").unwrap();
        assert_eq!(
            loaded.settings.notifications,
            NotificationSettings::default()
        );
        assert!(!loaded.settings.notifications.allow_private_targets);
        let loaded = parse_config(
            "WEBHOOK_ALLOW_PRIVATE_TARGETS: true\nNOTIFICATION_POLL_INTERVAL_MS: 50\n\
             NOTIFICATION_RETRY_BASE_DELAY_MS: 100\nNOTIFICATION_RETRY_MAX_DELAY_MS: 400\n\
             NOTIFICATION_MAX_ATTEMPTS: 4\nNOTIFICATION_TIMEOUT_SECONDS: 2\n",
        )
        .unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let s = loaded.settings.notifications;
        assert!(s.allow_private_targets);
        assert_eq!(s.poll_interval, Duration::from_millis(50));
        assert_eq!(s.timeout, Duration::from_secs(2));
        let waits: Vec<_> = (0..4).map(|a| s.retry_after(a)).collect();
        assert_eq!(
            waits,
            [
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(400)),
                None
            ]
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for bad in [
            "WEBHOOK_ALLOW_PRIVATE_TARGETS: maybe",
            "NOTIFICATION_POLL_INTERVAL_MS: 0",
            "NOTIFICATION_MAX_ATTEMPTS: 0",
            "NOTIFICATION_TIMEOUT_SECONDS: 9999",
        ] {
            let e = parse_config(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split(':').next().unwrap()), "{bad}: {e}");
        }
    }
}
