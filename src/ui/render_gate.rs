//! A bound on how many heavy dashboard pages are built at once.
//!
//! A manifest page reads the whole stored manifest (up to `MANIFEST_MAX_BYTES`) and parses it;
//! anyone may open a public one, as often as they like. Each page holds a permit while it is
//! built, so memory stays bounded by `DASHBOARD_MAX_CONCURRENT_RENDERS` pages whatever the
//! number of visitors: the others wait a moment for a permit, then are told to come back.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a visitor waits for a permit before the page answers 503.
pub const WAIT: Duration = Duration::from_secs(3);
/// What a 503 tells the visitor to wait (`Retry-After`, seconds).
pub const RETRY_AFTER_SECS: u64 = 5;

/// Permits for building heavy pages; the number follows the settings in force.
#[derive(Debug)]
pub struct RenderGate {
    current: RwLock<(usize, Arc<Semaphore>)>,
}

impl RenderGate {
    pub fn new(limit: usize) -> RenderGate {
        RenderGate {
            current: RwLock::new((limit, Arc::new(Semaphore::new(limit)))),
        }
    }

    /// Applies a new limit. Pages being built keep their permits from the old semaphore, so
    /// for a moment both limits may be in use; new pages count against the new one.
    pub fn set_limit(&self, limit: usize) {
        let mut current = self.current.write().expect("render gate lock poisoned");
        if current.0 != limit {
            *current = (limit, Arc::new(Semaphore::new(limit)));
        }
    }

    /// A permit to build a heavy page, or `None` when none came free within `wait`.
    pub async fn enter(&self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let semaphore = self
            .current
            .read()
            .expect("render gate lock poisoned")
            .1
            .clone();
        tokio::time::timeout(wait, semaphore.acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_are_bounded_and_follow_the_limit() {
        let gate = RenderGate::new(2);
        let a = gate.enter(WAIT).await.expect("first");
        let _b = gate.enter(WAIT).await.expect("second");
        assert!(gate.enter(Duration::from_millis(20)).await.is_none());
        drop(a);
        assert!(gate.enter(Duration::from_millis(20)).await.is_some());
        gate.set_limit(3);
        let held: Vec<_> = futures::future::join_all((0..3).map(|_| gate.enter(WAIT))).await;
        assert!(held.iter().all(Option::is_some));
        assert!(gate.enter(Duration::from_millis(20)).await.is_none());
    }
}
