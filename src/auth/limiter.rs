//! Counting failed logins per user and per client address, to slow down password guessing.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// Beyond this many tracked keys the oldest are forgotten, so an attacker rotating names
/// cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

/// Failed-login counter with a sliding one-minute window.
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl LoginLimiter {
    /// Whether any of `keys` reached `limit` failures in the last minute.
    pub fn blocked(&self, keys: &[&str], limit: u32) -> bool {
        let mut map = self.failures.lock().expect("limiter lock poisoned");
        let now = Instant::now();
        keys.iter().any(|k| match map.get_mut(*k) {
            Some(q) => {
                while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
                    q.pop_front();
                }
                q.len() >= limit as usize
            }
            None => false,
        })
    }

    /// Records one failure against each of `keys`.
    pub fn record_failure(&self, keys: &[&str]) {
        let mut map = self.failures.lock().expect("limiter lock poisoned");
        let now = Instant::now();
        if map.len() >= MAX_KEYS {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= WINDOW));
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        for k in keys {
            let q = map.entry((*k).to_string()).or_default();
            q.push_back(now);
            if q.len() > 1000 {
                q.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_limit() {
        let l = LoginLimiter::default();
        for _ in 0..3 {
            assert!(!l.blocked(&["u:alice", "ip:1"], 3));
            l.record_failure(&["u:alice", "ip:1"]);
        }
        assert!(l.blocked(&["u:alice"], 3));
        assert!(l.blocked(&["ip:1"], 3));
        assert!(!l.blocked(&["u:bob", "ip:2"], 3));
    }
}
