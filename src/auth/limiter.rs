//! Slowing down password guessing without letting anyone lock an account out.
//!
//! # The rule
//!
//! Failed logins are counted under two keys: the account name together with the client
//! address, and the client address alone (an IPv6 address by its /64, which one subscriber
//! usually holds whole). Each key has an allowance, `LOGIN_FAILURES_PER_MINUTE` failures for an
//! account from one address and [`ADDRESS_FACTOR`] times that for an address over all accounts,
//! and the allowance refills at that many failures a minute.
//!
//! - While both keys of a login are within their allowance, the password is checked at once.
//! - When a key has used its allowance, logins under it are slowed to the rate it refills at:
//!   each waits one refill interval (60 s divided by the allowance: 6 s for an account from
//!   one address by default) before its password is checked, one login at a time. A login that
//!   arrives while another one under the same exhausted key is waiting or being checked is
//!   answered 429 at once, unchecked.
//! - A success forgets the failures of its account-and-address key, never those of its
//!   address (an attacker with one valid account could otherwise wipe the address's record
//!   between guesses).
//!
//! So a correct password is never refused because of failures made elsewhere: other addresses'
//! failures are under other keys, and from an address that failed, once the failing stops, a
//! correct password is at worst made to wait one interval. Robot tokens and recently verified
//! passwords pass before the limiter is asked (see [`super::Auth::login`]).
//!
//! # What an attacker can and cannot do
//!
//! - From one address, against one account: the allowance at once (a little more if sent in
//!   parallel before the first failures are counted), then one guess per interval, each still
//!   an argon2 check. Against many accounts from one address: the address's allowance in all.
//! - Lock an account out: no. Its owner on another address is not slowed at all; one on the
//!   attacker's own address (a shared NAT, or a reverse proxy not listed in `TRUSTED_PROXIES`)
//!   is slowed, and refused only while the attacker keeps a guess in flight.
//! - Guess from many addresses (a botnet, or many IPv6 /64s): each address gets its own
//!   allowance. There is deliberately no per-account limit across addresses, since that is what
//!   let anyone lock any account out. What bounds such an attack is argon2 (tens of
//!   milliseconds of a core per guess, one check per core at a time), the connection limits,
//!   and the strength of passwords; robot and API tokens are 256-bit and cannot be guessed.
//! - Grow memory: keys are fixed-size keyed hashes (an attacker cannot aim at one without the
//!   per-process key), a key is forgotten once its failures have drained, and there are at most
//!   [`MAX_KEYS`]. When the table is full, the half with the fewest recent failures is
//!   forgotten, so the keys of an attack in progress survive a flood of new addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::secret::MacKey;

/// How many keys are tracked at most (a few MiB).
pub const MAX_KEYS: usize = 65_536;
/// An address over all accounts may fail this many times as often as one account from it.
pub const ADDRESS_FACTOR: u32 = 5;

type Key = [u8; 16];

/// The failures recorded under one key.
struct Entry {
    /// Used fraction of the key's allowance as of `at`; drains at 1 a minute.
    used: f32,
    at: Instant,
    /// A login under this exhausted key is waiting or being checked.
    busy: bool,
}

impl Entry {
    fn used_at(&self, now: Instant) -> f32 {
        let minutes = now.saturating_duration_since(self.at).as_secs_f32() / 60.0;
        (self.used - minutes).max(0.0)
    }

    /// Whether less than half a failure of the allowance is left: `allowance` failures in
    /// a row exhaust a key unless they take more than half an interval.
    fn exhausted(&self, now: Instant, allowance: u32) -> bool {
        (1.0 - self.used_at(now)) * (allowance as f32) < 0.5
    }
}

/// One key of a login and its allowance.
#[derive(Clone, Copy)]
struct Counted {
    key: Key,
    allowance: u32,
}

/// A login was refused: another one under the same exhausted key is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled;

/// The failed-login record of this process.
pub struct LoginLimiter {
    hash_key: MacKey,
    entries: Mutex<HashMap<Key, Entry>>,
    capacity: usize,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::with_capacity(MAX_KEYS)
    }
}

/// The part of an address one client is taken to hold: an IPv4 address, an IPv6 /64.
fn address_bytes(ip: IpAddr) -> Vec<u8> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => [&[4u8][..], &v4.octets()].concat(),
        IpAddr::V6(v6) => [&[6u8][..], &v6.octets()[..8]].concat(),
    }
}

impl LoginLimiter {
    /// A limiter tracking at most `capacity` keys.
    pub fn with_capacity(capacity: usize) -> LoginLimiter {
        LoginLimiter {
            hash_key: MacKey::random(),
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(2),
        }
    }

    /// How many keys are tracked now.
    pub fn tracked_keys(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().expect("limiter lock poisoned")
    }

    fn hash(&self, parts: &[&[u8]]) -> Key {
        let mac = self.hash_key.sign(parts);
        let mut key = [0u8; 16];
        key.copy_from_slice(&mac[..16]);
        key
    }

    /// The keys of a login: the account from the address, then the address alone.
    fn keys(&self, account: &str, client: Option<IpAddr>, per_minute: u32) -> Vec<Counted> {
        let address = client.map(address_bytes);
        let mut keys = vec![Counted {
            key: self.hash(&[
                b"account from address",
                account.as_bytes(),
                address.as_deref().unwrap_or_default(),
            ]),
            allowance: per_minute.max(1),
        }];
        if let Some(address) = &address {
            keys.push(Counted {
                key: self.hash(&[b"address", address]),
                allowance: per_minute.max(1).saturating_mul(ADDRESS_FACTOR),
            });
        }
        keys
    }

    /// Lets a login for `account` from `client` go on: at once while its keys are within their
    /// allowance of `per_minute` failures, after one refill interval when one is exhausted, and
    /// not at all while another login under an exhausted key of it is under way. The returned
    /// attempt must be told how the check went.
    pub async fn admit(
        &self,
        account: &str,
        client: Option<IpAddr>,
        per_minute: u32,
    ) -> Result<Attempt<'_>, Throttled> {
        let keys = self.keys(account, client, per_minute);
        let (gates, wait) = {
            let mut map = self.lock();
            let now = Instant::now();
            let mut exhausted = Vec::new();
            let mut wait = Duration::ZERO;
            for counted in &keys {
                if let Some(entry) = map.get(&counted.key) {
                    if entry.exhausted(now, counted.allowance) {
                        if entry.busy {
                            return Err(Throttled);
                        }
                        exhausted.push(counted.key);
                        wait = wait.max(Duration::from_secs_f64(60.0 / counted.allowance as f64));
                    }
                }
            }
            for key in &exhausted {
                if let Some(entry) = map.get_mut(key) {
                    entry.busy = true;
                }
            }
            (
                Gates {
                    limiter: self,
                    keys: exhausted,
                },
                wait,
            )
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(Attempt {
            limiter: self,
            keys,
            _gates: gates,
        })
    }

    /// Forgets the failures of `account` from `client`: a right password (or token) came
    /// from there without asking the limiter (see [`super::Auth::login`]).
    pub fn forgive(&self, account: &str, client: Option<IpAddr>) {
        let pair = self.keys(account, client, 1)[0].key;
        let mut map = self.lock();
        if map.get(&pair).is_some_and(|e| !e.busy) {
            map.remove(&pair);
        }
    }

    fn record_failure(&self, keys: &[Counted]) {
        let mut map = self.lock();
        let now = Instant::now();
        for counted in keys {
            if !map.contains_key(&counted.key) {
                self.make_room(&mut map, now);
            }
            let entry = map.entry(counted.key).or_insert(Entry {
                used: 0.0,
                at: now,
                busy: false,
            });
            entry.used = entry.used_at(now) + 1.0 / counted.allowance as f32;
            entry.at = now;
        }
    }

    /// Makes room for one more key when the table is full: forgets the drained keys, then, if
    /// more than half the table is left, those with the fewest recent failures down to half.
    /// Each sweep is paid for by the half table of insertions before the next one.
    fn make_room(&self, map: &mut HashMap<Key, Entry>, now: Instant) {
        if map.len() < self.capacity {
            return;
        }
        map.retain(|_, e| e.busy || e.used_at(now) > 0.0);
        let target = self.capacity / 2;
        if map.len() <= target {
            return;
        }
        let mut used: Vec<f32> = map
            .values()
            .filter(|e| !e.busy)
            .map(|e| e.used_at(now))
            .collect();
        let mut excess = (map.len() - target).min(used.len());
        if excess == 0 {
            return;
        }
        let (_, threshold, _) = used.select_nth_unstable_by(excess - 1, f32::total_cmp);
        let threshold = *threshold;
        map.retain(|_, e| {
            if excess > 0 && !e.busy && e.used_at(now) <= threshold {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// Marks exhausted keys busy for as long as one login under them is under way.
struct Gates<'a> {
    limiter: &'a LoginLimiter,
    keys: Vec<Key>,
}

impl Drop for Gates<'_> {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut map = self.limiter.lock();
        for key in &self.keys {
            if let Some(entry) = map.get_mut(key) {
                entry.busy = false;
            }
        }
    }
}

/// A login the limiter let through. Dropped without a verdict (the client went away), it
/// counts for nothing: nobody learnt whether the password was right.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: Vec<Counted>,
    _gates: Gates<'a>,
}

impl Attempt<'_> {
    /// The password was wrong: one failure under each key.
    pub fn failed(self) {
        self.limiter.record_failure(&self.keys);
    }

    /// The password was right: the account's failures from this address are forgiven.
    pub fn succeeded(self) {
        if let Some(pair) = self.keys.first() {
            self.limiter.lock().remove(&pair.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    async fn fail(l: &LoginLimiter, account: &str, client: Option<IpAddr>, n: u32, per: u32) {
        for _ in 0..n {
            l.admit(account, client, per).await.unwrap().failed();
        }
    }

    /// How long `admit` takes (paused clock), or `None` when it refuses.
    async fn admit_time(
        l: &LoginLimiter,
        account: &str,
        client: Option<IpAddr>,
        per: u32,
    ) -> Option<Duration> {
        let start = Instant::now();
        let attempt = l.admit(account, client, per).await.ok()?;
        attempt.succeeded();
        Some(start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_keys_are_slowed_not_refused() {
        let l = LoginLimiter::default();
        fail(&l, "alice", ip("192.0.2.1"), 3, 3).await;
        // Another address is not touched, the failing one waits one interval (60 s / 3).
        assert_eq!(
            admit_time(&l, "alice", ip("192.0.2.2"), 3).await,
            Some(Duration::ZERO)
        );
        assert_eq!(
            admit_time(&l, "alice", ip("192.0.2.1"), 3).await,
            Some(Duration::from_secs(20))
        );
        // The success forgave the account's failures from that address.
        assert_eq!(
            admit_time(&l, "alice", ip("192.0.2.1"), 3).await,
            Some(Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_login_at_a_time_under_an_exhausted_key() {
        let l = LoginLimiter::default();
        fail(&l, "alice", ip("192.0.2.1"), 2, 2).await;
        let first = l.admit("alice", ip("192.0.2.1"), 2);
        tokio::pin!(first);
        // Poll it once so it takes the gate and starts waiting.
        assert!(futures::poll!(first.as_mut()).is_pending());
        assert_eq!(
            l.admit("alice", ip("192.0.2.1"), 2).await.err(),
            Some(Throttled)
        );
        // Same address, other account: within both allowances.
        assert!(l.admit("bob", ip("192.0.2.1"), 2).await.is_ok());
        first.await.unwrap().failed();
        // The gate is free again once the first is done.
        assert!(l.admit("alice", ip("192.0.2.1"), 2).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn addresses_are_held_over_all_accounts() {
        let l = LoginLimiter::default();
        for i in 0..2 * ADDRESS_FACTOR {
            fail(&l, &format!("user{i}"), ip("2001:db8::1"), 1, 2).await;
        }
        // The address's allowance (2 * 5) is used, from anywhere in its /64.
        assert_eq!(
            admit_time(&l, "fresh", ip("2001:db8::ffff"), 2).await,
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            admit_time(&l, "fresh", ip("2001:db8:0:1::1"), 2).await,
            Some(Duration::ZERO)
        );
        // A success does not forgive the address: the success above drained a tenth of the
        // allowance while it waited, and one more failure uses it up again.
        fail(&l, "other", ip("2001:db8::3"), 1, 2).await;
        assert_eq!(
            admit_time(&l, "fresh", ip("2001:db8::2"), 2).await,
            Some(Duration::from_secs(6))
        );
        // Failures drain: a minute later the allowance is back.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            admit_time(&l, "fresh", ip("2001:db8::2"), 2).await,
            Some(Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_and_attacks_are_remembered() {
        let l = LoginLimiter::with_capacity(10_000);
        fail(&l, "admin", ip("198.51.100.7"), 20, 10).await;
        for i in 0..100_000u32 {
            let client = Some(IpAddr::from(i.to_be_bytes()));
            fail(&l, "admin", client, 1, 10).await;
            assert!(l.tracked_keys() <= 10_000);
        }
        assert_eq!(
            admit_time(&l, "admin", ip("198.51.100.7"), 10).await,
            Some(Duration::from_secs(6)),
            "the attacking key survived the flood"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_attempt_releases_its_gate() {
        let l = LoginLimiter::default();
        fail(&l, "alice", None, 1, 1).await;
        {
            let waiting = l.admit("alice", None, 1);
            tokio::pin!(waiting);
            assert!(futures::poll!(waiting.as_mut()).is_pending());
        }
        assert!(l.admit("alice", None, 1).await.is_ok());
    }
}
