//! A browser without JavaScript for dashboard tests: it keeps cookies, does not follow
//! redirects, and posts forms with the CSRF token of the page they belong to.

use std::collections::HashMap;

/// Form bodies on requests.
pub trait FormBody {
    fn form_body(self, form: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    /// An `application/x-www-form-urlencoded` body, as a browser sends a form.
    fn form_body(self, form: &[(&str, &str)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// A cookie-keeping client that does not follow redirects, like a browser tab whose every
/// step we look at.
pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

/// One answer, read whole.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the first `name="csrf"` hidden field.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').expect("value end")].to_string()
    }

    pub fn has(&self, needle: &str) -> bool {
        self.body.contains(needle)
    }
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: HashMap::new(),
        }
    }

    /// A browser on another machine: its connections come from loopback address `from`.
    pub fn from_address(base: &str, from: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(from.parse::<std::net::IpAddr>().expect("address"))
                .build()
                .expect("client"),
            ..Browser::new(base)
        }
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let r = req
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .expect("request");
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii cookie").to_string())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap_or("");
            let (k, v) = pair.split_once('=').expect("cookie pair");
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string()),
            set_cookies,
            headers: r.headers().clone(),
            body: r.text().await.expect("body"),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{}", self.base, path));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self
            .http
            .post(format!("{}{}", self.base, path))
            .form_body(form);
        self.send(req).await
    }

    /// Posts a form of the page at `page_path`, with that page's CSRF token.
    pub async fn submit(&mut self, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.get(page_path).await.csrf();
        let mut form = vec![("csrf", token.as_str())];
        form.extend_from_slice(fields);
        self.post(action, &form).await
    }

    pub async fn sign_in(&mut self, user: &str, password: &str) -> Page {
        self.submit(
            "/signin",
            "/signin",
            &[
                ("username", user),
                ("password", password),
                ("next", "/repository/"),
            ],
        )
        .await
    }

    pub async fn signed_in(base: &str, user: &str, password: &str) -> Browser {
        let mut b = Browser::new(base);
        let p = b.sign_in(user, password).await;
        assert_eq!(p.status, 303, "sign in as {user}: {}", p.body);
        b
    }
}
