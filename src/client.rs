//! Who is on the other end of a request: the client's address and the scheme it used, as seen
//! through the reverse proxies listed in `TRUSTED_PROXIES`.
//!
//! Without trusted proxies the client is the socket peer, and forwarding headers are ignored:
//! anyone can send them. When the peer is a trusted proxy, berth reads `X-Forwarded-For` (or,
//! when a request has none, RFC 7239 `Forwarded: for=`) from the right, skips the hops that are
//! trusted proxies themselves, and takes the first one that is not: that address was written
//! by a proxy berth trusts, while everything to its left came from the client and is never
//! read. A header that cannot be parsed up to that point counts for nothing, and the client is
//! the peer. The scheme (`X-Forwarded-Proto`, else `Forwarded: proto=`) is read under the same
//! rule: only from a trusted peer.
//!
//! A proxy in `TRUSTED_PROXIES` must therefore set or append `X-Forwarded-For` (nginx's
//! `$proxy_add_x_forwarded_for`, HAProxy's `option forwardfor`, and cloud load balancers do);
//! one that forwards a client's `X-Forwarded-For` untouched would let clients choose their
//! address.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;

/// The reverse proxies whose forwarding headers berth believes (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Reads a list of addresses (`10.0.0.7`, `::1`) and networks (`10.0.0.0/8`, `fd00::/8`).
    /// The error names the entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!("{entry:?} is neither an IP address nor a network in CIDR notation")
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies. The connection limiter exempts these from
    /// its per-address cap, since every client behind a proxy shares its address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An IPv4 address arriving on an IPv6 socket (`::ffff:192.0.2.1`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// Its address, if the request came over a socket.
    pub addr: Option<IpAddr>,
    /// Whether a trusted proxy says the client reached it over HTTPS (`None` when no trusted
    /// proxy said anything).
    pub forwarded_https: Option<bool>,
}

impl Client {
    /// The client of a request with these extensions (where axum keeps the socket peer) and
    /// headers.
    pub fn of(extensions: &Extensions, headers: &HeaderMap, proxies: &TrustedProxies) -> Client {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        resolve(peer, headers, proxies)
    }
}

/// The client behind socket peer `peer`: see the module documentation for the rule.
pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, proxies: &TrustedProxies) -> Client {
    let peer = peer.map(canonical);
    let Some(proxy) = peer.filter(|p| proxies.contains(*p)) else {
        return Client {
            addr: peer,
            forwarded_https: None,
        };
    };
    let forwarded = joined(headers, "forwarded");
    let addr = match joined(headers, "x-forwarded-for") {
        Some(list) => client_in(list.split(',').map(parse_node), proxies),
        None => forwarded.as_deref().and_then(|list| {
            client_in(
                elements(list).map(|e| param(e, "for").map_or(Hop::Malformed, |v| parse_node(&v))),
                proxies,
            )
        }),
    };
    let forwarded_https = match joined(headers, "x-forwarded-proto") {
        // The left-most value is what the proxy nearest the client saw (a client that forges
        // one only changes the scheme of its own cookies and links).
        Some(list) => list.split(',').next().and_then(https),
        None => forwarded.as_deref().and_then(|list| {
            elements(list)
                .find_map(|e| param(e, "proto"))
                .and_then(|p| https(&p))
        }),
    };
    Client {
        addr: Some(addr.unwrap_or(proxy)),
        forwarded_https,
    }
}

/// One hop of a forwarding list.
enum Hop {
    Addr(IpAddr),
    /// `unknown`, an obfuscated identifier or garbage: nothing to take as the client.
    Malformed,
}

/// The right-most hop that is not a trusted proxy, if every hop up to it is an address.
fn client_in(
    hops: impl DoubleEndedIterator<Item = Hop>,
    proxies: &TrustedProxies,
) -> Option<IpAddr> {
    for hop in hops.rev() {
        match hop {
            Hop::Addr(ip) if proxies.contains(ip) => continue,
            Hop::Addr(ip) => return Some(ip),
            Hop::Malformed => return None,
        }
    }
    None
}

/// Every value of a header joined with commas, as HTTP lists are; `None` when absent or not
/// text.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let parts: Option<Vec<&str>> = values.map(|v| v.to_str().ok()).collect();
    Some(parts?.join(","))
}

/// The elements of a `Forwarded` list.
fn elements(list: &str) -> impl DoubleEndedIterator<Item = &str> {
    list.split(',')
}

/// The value of parameter `name` in one `Forwarded` element, unquoted.
fn param(element: &str, name: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"')?,
            None => value,
        };
        Some(value.to_string())
    })
}

/// One node of `X-Forwarded-For` or `Forwarded: for=`: `192.0.2.1`, `192.0.2.1:8080`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:8080`.
fn parse_node(node: &str) -> Hop {
    let node = node.trim();
    if let Ok(ip) = IpAddr::from_str(node) {
        return Hop::Addr(canonical(ip));
    }
    if let Ok(sa) = SocketAddr::from_str(node) {
        return Hop::Addr(canonical(sa.ip()));
    }
    match node
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .and_then(|n| IpAddr::from_str(n).ok())
    {
        Some(ip) => Hop::Addr(canonical(ip)),
        None => Hop::Malformed,
    }
}

fn https(scheme: &str) -> Option<bool> {
    let scheme = scheme.trim();
    if scheme.eq_ignore_ascii_case("https") {
        Some(true)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(peer: &str, trusted: &[&str], pairs: &[(&str, &str)]) -> Client {
        resolve(Some(ip(peer)), &headers(pairs), &proxies(trusted))
    }

    #[test]
    fn parsing() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.7", "fd00::/8", " ::1 "]);
        assert!(p.contains(ip("10.1.2.3")));
        assert!(p.contains(ip("192.0.2.7")));
        assert!(!p.contains(ip("192.0.2.8")));
        assert!(p.contains(ip("fd12::1")));
        assert!(p.contains(ip("::1")));
        assert!(p.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped IPv6");
        assert!(!p.contains(ip("11.0.0.1")));
        // Host bits in a network are ignored, as by every router.
        assert!(proxies(&["10.0.0.1/8"]).contains(ip("10.200.0.1")));
        for bad in ["10.0.0.0/33", "proxy.example", "", "10.0.0.0/8/8"] {
            let e = TrustedProxies::parse(&[bad]).unwrap_err();
            assert!(e.contains(&format!("{:?}", bad.trim())), "{e}");
        }
        assert!(TrustedProxies::default().is_empty());
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_say() {
        let forged = [
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9;proto=https"),
            ("x-forwarded-proto", "https"),
        ];
        for trusted in [&[][..], &["10.0.0.1"][..]] {
            let c = client("198.51.100.1", trusted, &forged);
            assert_eq!(c.addr, Some(ip("198.51.100.1")));
            assert_eq!(c.forwarded_https, None);
        }
    }

    #[test]
    fn trusted_proxies_name_the_client() {
        let t = ["10.0.0.0/8"];
        let c = client("10.0.0.1", &t, &[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
        // A client's forged entries are left of the one the proxy appended.
        let c = client(
            "10.0.0.1",
            &t,
            &[("x-forwarded-for", "1.2.3.4, garbage, 203.0.113.9, 10.0.0.2")],
        );
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
        // Several header lines form one list.
        let c = client(
            "10.0.0.1",
            &t,
            &[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-for", "203.0.113.9:5555"),
            ],
        );
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
        let c = client("10.0.0.1", &t, &[("x-forwarded-for", "[2001:db8::5]:80")]);
        assert_eq!(c.addr, Some(ip("2001:db8::5")));
        // Only trusted hops: the left-most proxy is as far as berth can see.
        let c = client("10.0.0.1", &t, &[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(c.addr, Some(ip("10.0.0.1")));
    }

    #[test]
    fn malformed_lists_fall_back_to_the_peer() {
        let t = ["10.0.0.0/8"];
        for value in [
            "",
            "unknown",
            "203.0.113.9, nonsense",
            "300.1.1.1",
            "203.0.113.9 x",
        ] {
            let c = client("10.0.0.1", &t, &[("x-forwarded-for", value)]);
            assert_eq!(c.addr, Some(ip("10.0.0.1")), "{value:?}");
        }
        for value in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=\"[2001:db8::1\"",
        ] {
            let c = client("10.0.0.1", &t, &[("forwarded", value)]);
            assert_eq!(c.addr, Some(ip("10.0.0.1")), "{value:?}");
        }
    }

    #[test]
    fn forwarded_header() {
        let t = ["10.0.0.0/8"];
        let c = client(
            "10.0.0.1",
            &t,
            &[(
                "forwarded",
                "for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https;by=10.0.0.1, For=10.0.0.2",
            )],
        );
        assert_eq!(c.addr, Some(ip("2001:db8:cafe::17")));
        assert_eq!(c.forwarded_https, Some(true));
        // X-Forwarded-For wins when both are present.
        let c = client(
            "10.0.0.1",
            &t,
            &[
                ("forwarded", "for=1.2.3.4"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        );
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
    }

    #[test]
    fn scheme() {
        let t = ["10.0.0.0/8"];
        let proto = |v: &str| client("10.0.0.1", &t, &[("x-forwarded-proto", v)]).forwarded_https;
        assert_eq!(proto("https"), Some(true));
        assert_eq!(proto("HTTPS"), Some(true));
        assert_eq!(proto("http"), Some(false));
        assert_eq!(proto("https, http"), Some(true));
        assert_eq!(proto("gopher"), None);
        let c = client("10.0.0.1", &t, &[("forwarded", "for=1.2.3.4;proto=https")]);
        assert_eq!(c.forwarded_https, Some(true));
        assert_eq!(client("10.0.0.1", &t, &[]).forwarded_https, None);
    }
}
