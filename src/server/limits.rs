//! How many connections berth holds, in total and per client, and how long a client may take
//! to send a request head.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connection limits from the config file (`HEADER_READ_TIMEOUT_SECONDS`, `MAX_CONNECTIONS`,
/// `MAX_CONNECTIONS_PER_CLIENT`). They are read for every connection berth accepts, so a
/// config reload applies to the next connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// How long a client may take to send a request head (and, over HTTPS, to finish the TLS
    /// handshake), counted from when the connection opens or the previous response ends; a
    /// connection without a request for that long is closed.
    pub header_read_timeout: Duration,
    /// The most connections berth holds at once; `None` derives it from the open-file limit
    /// ([`Limits::resolve`]). More clients wait in the listen backlog until one closes.
    pub max_connections: Option<usize>,
    /// The most connections one client address (an IPv6 /64) may hold; `None` derives it from
    /// the total ([`Limits::resolve`]). More are closed as soon as they are accepted.
    pub max_connections_per_client: Option<usize>,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            header_read_timeout: Duration::from_secs(20),
            max_connections: None,
            max_connections_per_client: None,
        }
    }
}

/// The most connections berth holds by default, when the open-file limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// The most connections one client holds by default, when the total allows it.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 2048;

/// The limits in force for the next connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

impl Limits {
    /// Fills in the defaults the settings leave open. Each connection costs a file descriptor,
    /// and its request may open a blob file or a database connection too: by default
    /// connections get half of `open_file_limit` (at most [`DEFAULT_MAX_CONNECTIONS`]), and one
    /// client half of the total (at most [`DEFAULT_MAX_CONNECTIONS_PER_CLIENT`]), so a single
    /// address cannot take every slot while a busy one (a CI fleet behind NAT, a node pulling
    /// many layers) is not cut off.
    pub fn resolve(settings: &ConnectionSettings, open_file_limit: Option<u64>) -> Limits {
        let max_connections = settings.max_connections.unwrap_or_else(|| {
            open_file_limit.map_or(DEFAULT_MAX_CONNECTIONS, |files| {
                usize::try_from(files / 2)
                    .unwrap_or(usize::MAX)
                    .clamp(1, DEFAULT_MAX_CONNECTIONS)
            })
        });
        let max_connections_per_client = settings
            .max_connections_per_client
            .unwrap_or((max_connections / 2).clamp(1, DEFAULT_MAX_CONNECTIONS_PER_CLIENT));
        Limits {
            header_read_timeout: settings.header_read_timeout,
            max_connections,
            max_connections_per_client,
        }
    }
}

/// Whom the per-client cap counts: an IPv4 address, or the /64 network of an IPv6 address
/// (one host usually holds a whole /64, so counting single addresses would not limit it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    V4(Ipv4Addr),
    V6Network(u64),
}

impl Client {
    /// The client `ip` belongs to (an IPv4-mapped IPv6 address is its IPv4 address).
    pub fn of(ip: IpAddr) -> Client {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Client::V4(v4),
            IpAddr::V6(v6) => Client::V6Network((u128::from(v6) >> 64) as u64),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    per_client: HashMap<Client, usize>,
}

/// The connections berth holds, counted in total and per client.
#[derive(Debug, Default, Clone)]
pub struct Connections {
    counts: Arc<Mutex<Counts>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client holds `MAX_CONNECTIONS_PER_CLIENT` connections already.
    ClientFull,
}

impl Connections {
    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.lock().open
    }

    /// Counts a new connection from `ip`, unless its client holds `max_per_client` connections
    /// already and is not `exempt` (a trusted proxy carries many clients' connections). The
    /// total is the caller's to check before it accepts, so that waiting clients stay in the
    /// listen backlog. The connection is counted until the returned slot is dropped.
    pub fn admit(&self, ip: IpAddr, max_per_client: usize, exempt: bool) -> Result<Slot, Refusal> {
        let client = Client::of(ip);
        let mut counts = self.lock();
        let held = counts.per_client.entry(client).or_insert(0);
        if *held >= max_per_client && !exempt {
            return Err(Refusal::ClientFull);
        }
        *held += 1;
        counts.open += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            client,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().expect("connection counts lock poisoned")
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    client: Client,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("connection counts lock poisoned");
        counts.open -= 1;
        if let Some(held) = counts.per_client.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                counts.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn defaults_follow_the_open_file_limit() {
        let settings = ConnectionSettings::default();
        let at = |files| Limits::resolve(&settings, files);
        assert_eq!(at(None).max_connections, 4096);
        assert_eq!(at(None).max_connections_per_client, 2048);
        assert_eq!(at(Some(1 << 20)).max_connections, 4096);
        assert_eq!(at(Some(1024)).max_connections, 512);
        assert_eq!(at(Some(1024)).max_connections_per_client, 256);
        assert_eq!(at(Some(256)).max_connections, 128);
        assert_eq!(at(Some(256)).max_connections_per_client, 64);
        assert_eq!(at(Some(2)).max_connections, 1);
        assert_eq!(at(Some(2)).max_connections_per_client, 1);
        assert_eq!(at(None).header_read_timeout, Duration::from_secs(20));
    }

    #[test]
    fn configured_limits_win() {
        let settings = ConnectionSettings {
            header_read_timeout: Duration::from_secs(3),
            max_connections: Some(100),
            max_connections_per_client: None,
        };
        let limits = Limits::resolve(&settings, Some(256));
        assert_eq!(limits.max_connections, 100);
        assert_eq!(limits.max_connections_per_client, 50);
        let settings = ConnectionSettings {
            max_connections_per_client: Some(1000),
            ..settings
        };
        assert_eq!(
            Limits::resolve(&settings, None).max_connections_per_client,
            1000
        );
    }

    #[test]
    fn clients_are_addresses_or_ipv6_networks() {
        assert_eq!(
            Client::of(ip("10.0.0.1")),
            Client::of(ip("::ffff:10.0.0.1"))
        );
        assert_ne!(Client::of(ip("10.0.0.1")), Client::of(ip("10.0.0.2")));
        assert_eq!(
            Client::of(ip("2001:db8:1:2::1")),
            Client::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Client::of(ip("2001:db8:1:2::1")),
            Client::of(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn the_per_client_cap_refuses_only_that_client() {
        let connections = Connections::default();
        let a = ip("192.0.2.1");
        let b = ip("192.0.2.2");
        let first = connections.admit(a, 2, false).unwrap();
        let _second = connections.admit(a, 2, false).unwrap();
        assert_eq!(
            connections.admit(a, 2, false).unwrap_err(),
            Refusal::ClientFull
        );
        let _other = connections.admit(b, 2, false).unwrap();
        assert_eq!(connections.open(), 3);
        drop(first);
        assert_eq!(connections.open(), 2);
        let _again = connections.admit(a, 2, false).unwrap();
        assert_eq!(
            connections.admit(a, 2, false).unwrap_err(),
            Refusal::ClientFull
        );
    }

    #[test]
    fn an_exempt_client_is_counted_but_never_refused() {
        let connections = Connections::default();
        let proxy = ip("198.51.100.7");
        let slots: Vec<Slot> = (0..5)
            .map(|_| connections.admit(proxy, 1, true).unwrap())
            .collect();
        assert_eq!(connections.open(), 5);
        drop(slots);
        assert_eq!(connections.open(), 0);
        assert!(
            connections.lock().per_client.is_empty(),
            "no entry outlives its slots"
        );
    }
}
