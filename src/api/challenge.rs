//! Where clients are sent to authenticate: the token realm and service of this registry.

use axum::http::{header, HeaderMap};

use crate::app::AppState;

/// The public origin of this registry, as clients reach it.
pub struct Origin {
    pub scheme: String,
    /// `host[:port]`
    pub host: String,
}

/// Keeps only characters a host header may hold, so a forged `Host` cannot break the quoting
/// of the `WWW-Authenticate` header berth builds from it.
fn sane_host(h: &str) -> Option<&str> {
    let ok = !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then_some(h)
}

impl Origin {
    /// From `SERVER_HOSTNAME`/`PREFERRED_URL_SCHEME`, else from the request.
    pub fn of(state: &AppState, headers: &HeaderMap) -> Origin {
        let settings = state.settings();
        let host = settings
            .server_hostname
            .clone()
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .and_then(sane_host)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "localhost".to_string());
        let scheme = settings.preferred_url_scheme.clone().unwrap_or_else(|| {
            if state.tls {
                "https".into()
            } else {
                "http".into()
            }
        });
        Origin { scheme, host }
    }

    /// The `WWW-Authenticate` value for a Bearer challenge.
    pub fn bearer_challenge(&self, scope: Option<&str>, error: Option<&str>) -> String {
        let mut v = format!(
            "Bearer realm=\"{}://{}/v2/auth\",service=\"{}\"",
            self.scheme, self.host, self.host
        );
        if let Some(s) = scope {
            v.push_str(&format!(",scope=\"{s}\""));
        }
        if let Some(e) = error {
            v.push_str(&format!(",error=\"{e}\""));
        }
        v
    }
}
