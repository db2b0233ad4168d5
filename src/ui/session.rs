//! Who is looking at a page: the session cookie, the CSRF token every form carries, and the
//! one-shot flash message left by the last form.
//!
//! Sessions live in the metadata database (only a hash of the cookie value), so any replica
//! can serve any request and signing out ends the session everywhere. Signed-in forms carry
//! the session's CSRF token; the sign-in form, which has no session yet, carries a token that
//! must equal the `berth_csrf` cookie (double submit). Both are checked in constant time.
//!
//! The flash message is signed (HMAC-SHA256 with a key derived from the token signing key, so
//! every replica accepts it); one that does not verify is ignored. It never holds a secret:
//! what is shown once, like a new robot's token, is on the page that answers the form.
//! Cookies are `Secure` when the visitor reached berth over HTTPS: berth serves TLS, the
//! config says `PREFERRED_URL_SCHEME: https`, or a trusted proxy forwarded an HTTPS request.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine;
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};

use super::PageError;
use crate::app::AppState;
use crate::auth::secret::{self, MacKey};
use crate::auth::{Credential, Identity};

pub const SESSION_COOKIE: &str = "berth_session";
const CSRF_COOKIE: &str = "berth_csrf";
const FLASH_COOKIE: &str = "berth_flash";
/// What the flash cookie's MAC covers besides the message, so no other signed value passes
/// for a flash.
const FLASH_PURPOSE: &[u8] = b"berth_flash v1";
/// How long a flash message waits for the page it is meant for.
const FLASH_LIFETIME_SECS: u64 = 120;
/// How long a dashboard session lasts.
pub const SESSION_LIFETIME_SECS: i64 = 12 * 3600;

/// A message shown once on the page a form redirects to. It travels in a cookie, so it must
/// never carry a secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    /// `success` or `error`.
    pub level: String,
    pub text: String,
}

impl Flash {
    pub fn success(text: impl Into<String>) -> Flash {
        Flash {
            level: "success".into(),
            text: text.into(),
        }
    }

    pub fn error(text: impl Into<String>) -> Flash {
        Flash {
            level: "error".into(),
            text: text.into(),
        }
    }

    /// The cookie value: the message (URL-safe base64), when it expires (Unix seconds) and
    /// the MAC of both (URL-safe base64), joined by dots.
    fn seal(&self, key: &MacKey, now_secs: u64) -> String {
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let json = serde_json::to_vec(self).unwrap_or_default();
        let expires = (now_secs + FLASH_LIFETIME_SECS).to_string();
        let tag = key.sign(&[FLASH_PURPOSE, expires.as_bytes(), &json]);
        format!("{}.{expires}.{}", b64.encode(&json), b64.encode(tag))
    }

    /// The message in a cookie value, if its MAC verifies and it has not expired.
    fn open(value: &str, key: &MacKey, now_secs: u64) -> Option<Flash> {
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = value.split('.');
        let (json, expires, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let (json, tag) = (b64.decode(json).ok()?, b64.decode(tag).ok()?);
        if !key.verify(&[FLASH_PURPOSE, expires.as_bytes(), &json], &tag)
            || expires.parse::<u64>().ok()? < now_secs
        {
            return None;
        }
        serde_json::from_slice(&json).ok()
    }
}

/// The visitor of a page, resolved from cookies.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub identity: Option<Identity>,
    /// The token this visitor's forms must carry.
    pub csrf: String,
    /// Hash of the session cookie, when signed in.
    pub session_hash: Option<String>,
    pub client: Option<IpAddr>,
    /// The flash message left for this page, if any.
    pub flash: Option<Flash>,
    /// `Set-Cookie` values the response must carry.
    pub set_cookies: Vec<String>,
    /// Host (and port) clients pull from: `SERVER_HOSTNAME`, else the one the visitor used.
    pub host: String,
    /// The `Host` header of this request (forms must come from it or from `host`).
    pub request_host: String,
    /// Whether cookies must be `Secure`.
    pub secure: bool,
    /// Signs the flash cookie.
    cookie_key: MacKey,
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'static>> + '_ {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()).filter_map(Result::ok))
}

fn looks_like_token(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Viewer {
    /// A usage-log event of `kind` performed by this visitor.
    pub fn event(&self, kind: &'static str) -> crate::usage_log::Event {
        crate::usage_log::Event::new(
            kind,
            crate::usage_log::Performer::of(self.identity.as_ref()),
            self.client,
        )
    }

    /// The credential this visitor acts with, for authorization.
    pub fn credential(&self) -> Credential {
        match &self.identity {
            Some(i) => Credential::Account(i.clone()),
            None => Credential::Anonymous,
        }
    }

    /// The signed-in account, or a redirect to the sign-in page.
    pub fn required(&self, back_to: &str) -> Result<&Identity, PageError> {
        self.identity
            .as_ref()
            .ok_or_else(|| PageError::SignIn(back_to.to_string()))
    }

    /// Checks a form's CSRF token and, when the browser names one, that the form came from
    /// this site.
    pub fn check_form(&self, headers: &HeaderMap, token: Option<&str>) -> Result<(), PageError> {
        let token = token.unwrap_or("");
        if self.csrf.is_empty() || !secret::secrets_equal(token.as_bytes(), self.csrf.as_bytes()) {
            return Err(PageError::BadRequest(
                "the form expired or came from another site; reload the page and try again".into(),
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let host = origin.split_once("://").map_or(origin, |(_, h)| h);
            if origin != "null"
                && !host.eq_ignore_ascii_case(&self.host)
                && !host.eq_ignore_ascii_case(&self.request_host)
            {
                return Err(PageError::BadRequest(
                    "the form was sent from another site".into(),
                ));
            }
        }
        Ok(())
    }

    fn cookie(&self, name: &'static str, value: String, max_age_secs: i64) -> String {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(max_age_secs))
            .build()
            .to_string()
    }

    /// Leaves a message for the next page this visitor sees.
    pub fn leave_flash(&mut self, flash: &Flash) {
        let value = flash.seal(&self.cookie_key, crate::auth::token::now_secs());
        let cookie = self.cookie(FLASH_COOKIE, value, FLASH_LIFETIME_SECS as i64);
        self.set_cookies.push(cookie);
    }

    /// Starts a session for `identity`: the cookie to set and its database record.
    pub async fn sign_in(
        &mut self,
        state: &AppState,
        identity: &Identity,
    ) -> Result<(), PageError> {
        let token = secret::random_token("");
        let csrf = secret::random_token("");
        let expires = now_millis() + SESSION_LIFETIME_SECS * 1000;
        state
            .auth
            .accounts()
            .create_session(&secret::token_hash(&token), &identity.name, &csrf, expires)
            .await?;
        let cookie = self.cookie(SESSION_COOKIE, token, SESSION_LIFETIME_SECS);
        self.set_cookies.push(cookie);
        Ok(())
    }

    /// Ends the session, here and in the database.
    pub async fn sign_out(&mut self, state: &AppState) -> Result<(), PageError> {
        if let Some(hash) = &self.session_hash {
            state.auth.accounts().delete_session(hash).await?;
        }
        let cookie = self.cookie(SESSION_COOKIE, String::new(), 0);
        self.set_cookies.push(cookie);
        self.identity = None;
        Ok(())
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let client = state.client(&parts.extensions, &parts.headers);
        let settings = state.settings();
        let secure = state.tls
            || settings.preferred_url_scheme.as_deref() == Some("https")
            || client.forwarded_https == Some(true);
        let request_host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.len() < 256
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .unwrap_or("localhost")
            .to_string();
        let host = settings
            .server_hostname
            .clone()
            .unwrap_or_else(|| request_host.clone());
        let mut viewer = Viewer {
            identity: None,
            csrf: String::new(),
            session_hash: None,
            client: client.addr,
            flash: None,
            set_cookies: Vec::new(),
            host,
            request_host,
            secure,
            cookie_key: state.auth.cookie_key().clone(),
        };
        let mut anonymous_csrf = None;
        for c in cookies(&parts.headers) {
            match c.name() {
                SESSION_COOKIE if looks_like_token(c.value()) => {
                    let hash = secret::token_hash(c.value());
                    if let Some(session) =
                        state.auth.accounts().session(&hash, now_millis()).await?
                    {
                        viewer.identity = Some(state.auth.identity(&session.account));
                        viewer.csrf = session.csrf;
                        viewer.session_hash = Some(hash);
                    }
                }
                CSRF_COOKIE if looks_like_token(c.value()) => {
                    anonymous_csrf = Some(c.value().to_string())
                }
                FLASH_COOKIE => {
                    let now = crate::auth::token::now_secs();
                    viewer.flash = Flash::open(c.value(), &viewer.cookie_key, now);
                    let clear = viewer.cookie(FLASH_COOKIE, String::new(), 0);
                    viewer.set_cookies.push(clear);
                }
                _ => {}
            }
        }
        if viewer.identity.is_none() {
            viewer.csrf = match anonymous_csrf {
                Some(token) => token,
                None => {
                    let token = secret::random_token("");
                    let cookie = viewer.cookie(CSRF_COOKIE, token.clone(), 24 * 3600);
                    viewer.set_cookies.push(cookie);
                    token
                }
            };
        }
        if let Some(notes) = parts.extensions.get::<crate::api::request_log::Notes>() {
            notes.account(viewer.identity.as_ref().map(|i| i.name.as_str()));
        }
        Ok(viewer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flashes_are_signed_and_expire() {
        let key = MacKey::derive(b"signing key", "dashboard cookies");
        let flash = Flash::success("Saved.");
        let sealed = flash.seal(&key, 1000);
        assert_eq!(Flash::open(&sealed, &key, 1000), Some(flash.clone()));
        assert_eq!(Flash::open(&sealed, &key, 1120), Some(flash.clone()));
        assert_eq!(Flash::open(&sealed, &key, 1121), None, "expired");
        let other = MacKey::derive(b"another key", "dashboard cookies");
        assert_eq!(Flash::open(&sealed, &other, 1000), None);
        let (message, rest) = sealed.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let later = format!("{message}.999999.{tag}");
        assert_eq!(Flash::open(&later, &key, 1000), None, "expiry is signed");
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let unsigned = b64.encode(serde_json::to_vec(&Flash::error("forged")).unwrap());
        for bad in [unsigned.as_str(), "", "..", "a.b.c", &format!("{sealed}.x")] {
            assert_eq!(Flash::open(bad, &key, 1000), None, "{bad}");
        }
    }
}
