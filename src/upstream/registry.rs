//! The `upstream_registry` value of a proxy cache or mirror: `host[:port][/namespace]`, as
//! Quay takes it (no scheme; `insecure` picks the scheme).

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use oci::RepoName;

/// The longest `upstream_registry` value accepted.
const MAX_LEN: usize = 512;

/// Hosts whose registry API lives under another name (Quay's `REGISTRY_URLS`).
const API_HOSTS: &[(&str, &str)] = &[("docker.io", "registry-1.docker.io")];

/// A validated upstream registry: a host, an optional port and an optional namespace that
/// every repository path is put under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRegistry {
    host: String,
    port: Option<u16>,
    namespace: Option<String>,
}

/// Why an `upstream_registry` value was refused; the text is shown to the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid upstream registry: {0}")]
pub struct RegistryError(&'static str);

impl UpstreamRegistry {
    /// The host as configured (`docker.io`, `10.0.0.5`, `[::1]`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, when one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The namespace repository paths are put under, when one was given.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// `host[:port]` of the registry API: `docker.io` is served by `registry-1.docker.io`.
    pub fn authority(&self) -> String {
        let host = API_HOSTS
            .iter()
            .find(|(name, _)| *name == self.host)
            .map_or(self.host.as_str(), |(_, api)| api);
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// The upstream repository for `path` (a repository path inside the proxy organization):
    /// `namespace/path`, validated against the repository name grammar, so it is safe in a URL.
    pub fn repository(&self, path: &str) -> Result<RepoName, RegistryError> {
        let full = match &self.namespace {
            Some(ns) => format!("{ns}/{path}"),
            None => path.to_string(),
        };
        full.parse()
            .map_err(|_| RegistryError("repository path is not a valid repository name"))
    }
}

impl FromStr for UpstreamRegistry {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, RegistryError> {
        if s.is_empty() {
            return Err(RegistryError("empty"));
        }
        if s.len() > MAX_LEN {
            return Err(RegistryError("too long"));
        }
        if s.contains("://") {
            return Err(RegistryError(
                "give host[:port][/namespace] without a scheme (insecure selects http)",
            ));
        }
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "@?#%\\".contains(c))
        {
            return Err(RegistryError(
                "only host[:port][/namespace] is allowed (no credentials, query or fragment)",
            ));
        }
        let (authority, namespace) = match s.split_once('/') {
            Some((a, ns)) => (a, Some(ns)),
            None => (s, None),
        };
        let (host, port) = split_host_port(authority)?;
        let namespace = match namespace {
            None => None,
            Some(ns) => {
                let ns = ns.strip_suffix('/').unwrap_or(ns);
                if ns.is_empty() {
                    None
                } else {
                    ns.parse::<RepoName>()
                        .map_err(|_| RegistryError("namespace is not a valid repository path"))?;
                    Some(ns.to_string())
                }
            }
        };
        Ok(UpstreamRegistry {
            host,
            port,
            namespace,
        })
    }
}

/// Splits and checks `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6 address.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), RegistryError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or(RegistryError("unclosed IPv6 bracket"))?;
        inside
            .parse::<Ipv6Addr>()
            .map_err(|_| RegistryError("invalid IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or(RegistryError("unexpected text after the IPv6 address"))?,
            ),
        };
        (format!("[{}]", inside.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if !valid_dns_name(host) {
            return Err(RegistryError("invalid host name"));
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RegistryError("invalid port"));
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(RegistryError("invalid port")),
                Ok(n) => Some(n),
            }
        }
    };
    Ok((host, port))
}

/// A host name of dot-separated labels (letters, digits, inner hyphens), 1-63 characters each,
/// 253 in all; an IPv4 address passes as four numeric labels.
fn valid_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl fmt::Display for UpstreamRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(ns) = &self.namespace {
            write!(f, "/{ns}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<UpstreamRegistry, RegistryError> {
        s.parse()
    }

    #[test]
    fn accepts_hosts_ports_and_namespaces() {
        let r = parse("quay.io").unwrap();
        assert_eq!((r.host(), r.port(), r.namespace()), ("quay.io", None, None));
        assert_eq!(r.authority(), "quay.io");
        let r = parse("Registry.Example.com:5000/team/sub").unwrap();
        assert_eq!(r.host(), "registry.example.com");
        assert_eq!(r.port(), Some(5000));
        assert_eq!(r.namespace(), Some("team/sub"));
        assert_eq!(r.to_string(), "registry.example.com:5000/team/sub");
        assert_eq!(
            r.repository("library/app").unwrap().as_str(),
            "team/sub/library/app"
        );
        let r = parse("127.0.0.1:5000").unwrap();
        assert_eq!(r.authority(), "127.0.0.1:5000");
        let r = parse("[::1]:5443/ns").unwrap();
        assert_eq!(r.authority(), "[::1]:5443");
        assert_eq!(r.namespace(), Some("ns"));
        assert_eq!(parse("quay.io/").unwrap().namespace(), None);
    }

    #[test]
    fn docker_hub_is_served_by_its_api_host() {
        let r = parse("docker.io/library").unwrap();
        assert_eq!(r.authority(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "docker.io/library");
        assert_eq!(r.repository("nginx").unwrap().as_str(), "library/nginx");
    }

    #[test]
    fn refuses_what_is_not_host_port_namespace() {
        for bad in [
            "",
            "https://quay.io",
            "http://quay.io",
            "user:pass@quay.io",
            "quay.io?x=1",
            "quay.io#frag",
            "quay.io:",
            "quay.io:0",
            "quay.io:65536",
            "quay.io:+80",
            "quay.io:80:81",
            "-bad.example",
            "bad-.example",
            "a..b",
            "quay io",
            "quay.io/../etc",
            "quay.io//x",
            "quay.io/UPPER",
            "quay.io/%2e%2e",
            "[::1",
            "[nope]:5000",
            "[::1]5000",
            "quay.io\\x",
            "quay.io/a\nb",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse(&"a".repeat(600)).is_err());
        assert!(parse(&format!("{}.io", "a".repeat(64))).is_err());
    }

    #[test]
    fn repository_paths_are_validated() {
        let r = parse("quay.io/ns").unwrap();
        for bad in ["", "../x", "a//b", "A", "a/%2f", "a?b"] {
            assert!(r.repository(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
