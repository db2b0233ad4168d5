//! The dashboard's cookies: `Secure` whenever the visitor came over HTTPS (berth's own TLS,
//! `PREFERRED_URL_SCHEME: https`, or a trusted proxy's `X-Forwarded-Proto`), a flash message
//! that berth signed and ignores when forged or altered, and no secret in any cookie.

use crate::common;

use std::net::IpAddr;

use base64::Engine;
use berth::config::Settings;
use common::*;

fn settings(yaml: &str) -> Settings {
    berth::config::parse(yaml).expect("config").settings
}

/// A client that does not follow redirects, from loopback address `from`.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().expect("address"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii cookie").to_string())
        .collect()
}

/// The `Set-Cookie` of `name` on `GET /signin`.
async fn signin_cookie(
    client: &reqwest::Client,
    s: &TestServer,
    headers: &[(&str, &str)],
    name: &str,
) -> String {
    let mut req = client.get(s.url("/signin"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("GET /signin");
    assert_eq!(r.status(), 200);
    set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

fn is_secure(cookie: &str) -> bool {
    cookie
        .split(';')
        .any(|attr| attr.trim().eq_ignore_ascii_case("secure"))
}

#[tokio::test]
async fn cookies_are_secure_behind_a_trusted_tls_proxy() {
    let s = TestServer::start_with(settings("TRUSTED_PROXIES: [127.0.0.2]\n")).await;
    let proxy = client_from("127.0.0.2");
    let https = [("x-forwarded-proto", "https")];
    let cookie = signin_cookie(&proxy, &s, &https, "berth_csrf").await;
    assert!(is_secure(&cookie), "{cookie}");
    let forwarded = [("forwarded", "for=198.51.100.1;proto=https")];
    assert!(is_secure(
        &signin_cookie(&proxy, &s, &forwarded, "berth_csrf").await
    ));
    // The proxy forwarding plain HTTP, or saying nothing: not Secure (the browser would not
    // send it back over HTTP).
    let http = [("x-forwarded-proto", "http")];
    assert!(!is_secure(
        &signin_cookie(&proxy, &s, &http, "berth_csrf").await
    ));
    assert!(!is_secure(
        &signin_cookie(&proxy, &s, &[], "berth_csrf").await
    ));
    // Anyone else's X-Forwarded-Proto is ignored.
    let direct = client_from("127.0.0.3");
    assert!(!is_secure(
        &signin_cookie(&direct, &s, &https, "berth_csrf").await
    ));
    // The session cookie of a sign-in through the proxy is Secure too.
    let csrf_cookie = signin_cookie(&proxy, &s, &https, "berth_csrf").await;
    let pair = csrf_cookie.split(';').next().unwrap().to_string();
    let csrf = pair.trim_start_matches("berth_csrf=");
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", csrf),
            ("username", ADMIN_USER),
            ("password", ADMIN_PASSWORD),
            ("next", "/repository/"),
        ])
        .finish();
    let r = proxy
        .post(s.url("/signin"))
        .header("x-forwarded-proto", "https")
        .header("cookie", pair)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("berth_session="))
        .expect("a session cookie");
    assert!(is_secure(&session), "{session}");
}

#[tokio::test]
async fn preferred_url_scheme_https_makes_cookies_secure() {
    let s = TestServer::start_with(settings("PREFERRED_URL_SCHEME: https\n")).await;
    let client = client_from("127.0.0.1");
    assert!(is_secure(
        &signin_cookie(&client, &s, &[], "berth_csrf").await
    ));
    let plain = TestServer::start_with(settings("PREFERRED_URL_SCHEME: http\n")).await;
    assert!(!is_secure(
        &signin_cookie(&client, &plain, &[], "berth_csrf").await
    ));
}

/// A signed-in dashboard visitor: its cookie header.
async fn signed_in(s: &TestServer, client: &reqwest::Client) -> String {
    let csrf_cookie = signin_cookie(client, s, &[], "berth_csrf").await;
    let pair = csrf_cookie.split(';').next().unwrap().to_string();
    let csrf = pair.trim_start_matches("berth_csrf=").to_string();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", csrf.as_str()),
            ("username", ADMIN_USER),
            ("password", ADMIN_PASSWORD),
        ])
        .finish();
    let r = client
        .post(s.url("/signin"))
        .header("cookie", &pair)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("berth_session="))
        .expect("a session cookie");
    session.split(';').next().unwrap().to_string()
}

/// The body of the repositories page with `cookie`.
async fn page_with(s: &TestServer, client: &reqwest::Client, cookie: &str) -> String {
    let r = client
        .get(s.url("/repository/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_forged_or_altered_flash_is_ignored() {
    let s = TestServer::start().await;
    let client = client_from("127.0.0.1");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // A flash as berth once wrote it, unsigned, made up by someone else.
    let forged = b64.encode(br#"{"level":"success","text":"FORGED-NOTICE"}"#);
    let body = page_with(&s, &client, &format!("berth_flash={forged}")).await;
    assert!(!body.contains("FORGED-NOTICE"), "a forged flash was shown");
    // A genuine flash: the one signing out leaves.
    let session = signed_in(&s, &client).await;
    let page = client
        .get(s.url("/repository/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").expect("a form");
    let csrf = &page[at + 19..];
    let csrf = &csrf[..csrf.find('"').unwrap()];
    let r = client
        .post(s.url("/signout"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let flash = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("berth_flash="))
        .expect("a flash cookie");
    let flash = flash
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("berth_flash=")
        .to_string();
    let shown = page_with(&s, &client, &format!("berth_flash={flash}")).await;
    assert!(
        shown.contains("You are signed out."),
        "the genuine flash is shown"
    );
    // The same flash with its text altered and its MAC kept.
    let (text, mac) = flash.split_once('.').expect("message.mac");
    let json = String::from_utf8(b64.decode(text).unwrap()).unwrap();
    assert!(json.contains("You are signed out."));
    let altered = b64.encode(json.replace("You are signed out.", "ALTERED-NOTICE"));
    let body = page_with(&s, &client, &format!("berth_flash={altered}.{mac}")).await;
    assert!(!body.contains("ALTERED-NOTICE") && !body.contains("signed out"));
    // A MAC cut short, or another message's MAC.
    let body = page_with(&s, &client, &format!("berth_flash={text}.{}", &mac[..20])).await;
    assert!(!body.contains("signed out"));
    let body = page_with(&s, &client, &format!("berth_flash={forged}.{mac}")).await;
    assert!(!body.contains("FORGED-NOTICE"));
}

/// Every way `secret` could sit in a cookie value: as is, or base64-encoded in any part.
fn cookie_holds(cookie: &str, secret: &str) -> bool {
    let value = cookie.split(';').next().unwrap_or("");
    let value = value.split_once('=').map_or(value, |(_, v)| v);
    if value.contains(secret) {
        return true;
    }
    value.split(['.', '|', ':']).any(|part| {
        [
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part),
            base64::engine::general_purpose::STANDARD.decode(part),
        ]
        .into_iter()
        .flatten()
        .any(|bytes| String::from_utf8_lossy(&bytes).contains(secret))
    })
}

#[tokio::test]
async fn a_new_robots_token_is_in_no_cookie() {
    let s = TestServer::start().await;
    s.create_org("userorg").await;
    let client = client_from("127.0.0.1");
    let session = signed_in(&s, &client).await;
    let page = client
        .get(s.url("/organization/userorg"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").expect("a form");
    let csrf = &page[at + 19..];
    let csrf = &csrf[..csrf.find('"').unwrap()];
    let r = client
        .post(s.url("/organization/userorg"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&action=create-robot&name=builder"))
        .send()
        .await
        .unwrap();
    let mut cookies = set_cookies(&r);
    let status = r.status().as_u16();
    let mut body = r.text().await.unwrap();
    // Follow a redirect, as a browser would, collecting its cookies too.
    if status == 303 {
        let mut cookie_header = session.clone();
        for c in &cookies {
            cookie_header.push_str("; ");
            cookie_header.push_str(c.split(';').next().unwrap());
        }
        let r = client
            .get(s.url("/organization/userorg"))
            .header("cookie", cookie_header)
            .send()
            .await
            .unwrap();
        cookies.extend(set_cookies(&r));
        body = r.text().await.unwrap();
    }
    let at = body
        .find("class=\"robot-token\">")
        .expect("the token is shown");
    let rest = &body[at + 20..];
    let token = &rest[..rest.find('<').unwrap()];
    assert_eq!(token.len(), 43);
    for cookie in &cookies {
        assert!(
            !cookie_holds(cookie, token),
            "the robot token is in a cookie: {cookie}"
        );
    }
    // And it is a working token.
    let r = authed_client("userorg+builder", token)
        .get(s.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
