//! Where a notification may be sent: `http` or `https` URLs whose host is not an internal
//! address (loopback, link-local, private, unique-local, unspecified, multicast, reserved),
//! unless `WEBHOOK_ALLOW_PRIVATE_TARGETS` is on.
//!
//! The address is checked twice: when a notification is created (every address its host
//! resolves to), and at delivery, by the HTTP client's resolver ([`GuardedResolver`]), which
//! hands the client only the addresses that pass, so the address connected to is one that was
//! checked and a name re-pointed since creation (DNS rebinding) cannot reach inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reqwest::Url;

/// The longest target URL accepted.
const MAX_URL_LEN: usize = 2048;

/// Whether `ip` is an address a repository admin may not make berth reach (unless private
/// targets are allowed).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = [s[6].to_be_bytes(), s[7].to_be_bytes()];
                return is_internal_v4(Ipv4Addr::new(a[0], a[1], b[0], b[1]));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site local fec0::/10 (deprecated)
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
                || (s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::a.b.c.d
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local() // 169.254/16, the cloud metadata address among them
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64/10
        || a >= 240 // reserved
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
}

/// Parses a notification's target URL: absolute, `http` or `https`, with a host.
pub fn parse_url(text: &str) -> Result<Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("url is longer than {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(text).map_err(|e| format!("url is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("url must be an http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("url has no host".into());
    }
    Ok(url)
}

/// The host of a target URL, for display (never its path or query, which may hold a secret,
/// as Slack's webhook URLs do).
pub fn display_host(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "(invalid URL)".into())
}

/// Checks that every address `url`'s host resolves to may be reached (all of them, as the
/// client may pick any). Refusals name the host only.
pub async fn check_reachable(url: &Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, 0))
            .await
            .map_err(|_| format!("the host {host} of url does not resolve"))?
            .map(|a| a.ip())
            .collect(),
    };
    if addresses.is_empty() {
        return Err(format!("the host {host} of url does not resolve"));
    }
    if addresses.iter().any(|ip| is_internal(*ip)) {
        return Err(format!(
            "the host {host} of url is an internal address (loopback, link-local or private); \
             WEBHOOK_ALLOW_PRIVATE_TARGETS allows such targets"
        ));
    }
    Ok(())
}

/// The delivery client's resolver: resolves names with the system resolver and passes on only
/// the addresses [`is_internal`] allows, unless private targets are allowed (read at each
/// resolution, so a config reload applies to the next delivery).
pub struct GuardedResolver {
    pub allow_private: Arc<AtomicBool>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private.load(Ordering::Relaxed);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow || !is_internal(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(
                    format!("{host} resolves to no address a notification may reach").into(),
                );
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognized() {
        for internal in [
            "127.0.0.1",
            "127.8.9.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::127.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(parse_url("https://hooks.example.com/x?y=1").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/").is_ok());
        for bad in [
            "ftp://x/",
            "file:///etc/passwd",
            "not a url",
            "http://",
            "/relative",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://a.example/{}", "x".repeat(3000))).is_err());
    }

    #[test]
    fn displayed_targets_are_hosts_only() {
        assert_eq!(
            display_host("https://hooks.slack.com/services/T0/B0/secret"),
            "hooks.slack.com"
        );
        assert_eq!(display_host("http://127.0.0.1:9000/x"), "127.0.0.1:9000");
    }

    #[tokio::test]
    async fn literal_internal_targets_are_refused_unless_allowed() {
        let url = parse_url("http://169.254.169.254/latest/meta-data").unwrap();
        assert!(check_reachable(&url, false).await.is_err());
        assert!(check_reachable(&url, true).await.is_ok());
        let url = parse_url("http://[::1]:80/").unwrap();
        assert!(check_reachable(&url, false).await.is_err());
        let url = parse_url("http://localhost:80/").unwrap();
        assert!(check_reachable(&url, false).await.is_err());
    }
}
