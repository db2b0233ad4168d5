//! A corpus case (a request, what berth must answer, and the category it counts under) and
//! the checks every reply goes through.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::fixture::Fixture;
use super::wire::{Reply, Request};
use crate::common::SPEC_ERROR_CODES;

/// What a case must be answered with. Every case must also leave the store unchanged.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A /v2 error: this status and (for all but HEAD) an OCI error body with this code.
    Oci(u16, &'static str),
    /// A /v2 error with this status and an OCI error body with any spec code.
    OciStatus(u16),
    /// Hostile input a registry serves without harm (a junk `last`, an ignored `Range`): this
    /// status.
    Served(u16),
    /// A token (200) whose grants name only valid repositories, none of them asked for with a
    /// malformed scope.
    Token,
    /// A management API error: this status and Quay's JSON with `error_message`.
    Api(u16),
    /// A dashboard reply with this status: an HTML page, or for 303 a redirect to sign in.
    Page(u16),
    /// A redirect (303 or 308) to a location starting with this.
    Redirect(&'static str),
}

/// A step run before the case's request, whose result the request uses.
#[derive(Debug, Clone, Copy)]
pub enum Setup {
    /// Opens an upload session in `seed/repo` with three bytes in it and puts its path where
    /// the target says `{fresh}`: for requests that end the session they name.
    FreshUpload,
}

/// One corpus entry.
#[derive(Debug, Clone)]
pub struct Case {
    pub category: &'static str,
    pub req: Request,
    pub expect: Expect,
    /// Reply headers that must have exactly these values.
    pub headers: Vec<(&'static str, String)>,
    pub setup: Option<Setup>,
}

impl Case {
    pub fn new(category: &'static str, req: Request, expect: Expect) -> Case {
        Case {
            category,
            req,
            expect,
            headers: Vec::new(),
            setup: None,
        }
    }

    /// Requires a reply header value.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }

    /// Runs `setup` first.
    pub fn with_setup(mut self, setup: Setup) -> Case {
        self.setup = Some(setup);
        self
    }

    /// A short description for failure reports.
    pub fn describe(&self) -> String {
        let target: String = self.req.target.chars().take(140).collect();
        format!("[{}] {} {target}", self.category, self.req.method)
    }
}

/// Checks `reply` against the case; `Err` says what is wrong.
pub fn check(case: &Case, reply: &Reply) -> Result<(), String> {
    let body = || {
        String::from_utf8_lossy(&reply.body)
            .chars()
            .take(300)
            .collect::<String>()
    };
    if reply.status >= 500 {
        return Err(format!("server error {}: {}", reply.status, body()));
    }
    let head = case.req.method == "HEAD";
    let v2 = case.req.target.starts_with("/v2") && !case.req.target.starts_with("/v2/auth");
    let wanted = match &case.expect {
        Expect::Oci(s, _) | Expect::OciStatus(s) | Expect::Served(s) => *s,
        Expect::Api(s) | Expect::Page(s) => *s,
        Expect::Token => 200,
        Expect::Redirect(_) => reply.status,
    };
    if reply.status != wanted {
        return Err(format!(
            "status {} instead of {wanted}: {}",
            reply.status,
            body()
        ));
    }
    if v2 && reply.status == 401 && reply.header("www-authenticate").is_none() {
        return Err("401 without a WWW-Authenticate challenge".into());
    }
    if reply.status == 405 && reply.header("allow").is_none() {
        return Err("405 without Allow".into());
    }
    for (name, value) in &case.headers {
        if reply.header(name) != Some(value.as_str()) {
            return Err(format!(
                "header {name} is {:?}, not {value:?}",
                reply.header(name)
            ));
        }
    }
    match &case.expect {
        Expect::Oci(_, code) if !head => oci_body(reply, Some(code)),
        Expect::OciStatus(_) if !head => oci_body(reply, None),
        Expect::Oci(..) | Expect::OciStatus(_) => match reply.body.is_empty() {
            true => Ok(()),
            false => Err("a HEAD reply with a body".into()),
        },
        Expect::Served(_) => Ok(()),
        Expect::Token => token_body(reply),
        Expect::Api(_) => {
            let v: serde_json::Value = json_body(reply)?;
            match v["error_message"].is_string() {
                true => Ok(()),
                false => Err(format!("no error_message: {}", body())),
            }
        }
        Expect::Redirect(to) => match reply.header("location") {
            Some(l) if l.starts_with(to) && matches!(reply.status, 303 | 308) => Ok(()),
            other => Err(format!("{} to {other:?}, not to {to}", reply.status)),
        },
        Expect::Page(303) => match reply.header("location") {
            Some(l) if l.starts_with("/signin") => Ok(()),
            other => Err(format!("303 to {other:?}, not to /signin")),
        },
        Expect::Page(_) => match reply.header("content-type") {
            Some(t) if t.starts_with("text/html") => Ok(()),
            other => Err(format!("page with content type {other:?}")),
        },
    }
}

fn json_body(reply: &Reply) -> Result<serde_json::Value, String> {
    if reply.header("content-type") != Some("application/json") {
        return Err(format!(
            "content type {:?}, not application/json",
            reply.header("content-type")
        ));
    }
    serde_json::from_slice(&reply.body).map_err(|e| {
        format!(
            "body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&reply.body)
        )
    })
}

/// An OCI error body: `{"errors":[{"code","message",..}]}` with spec codes only.
fn oci_body(reply: &Reply, code: Option<&str>) -> Result<(), String> {
    let v = json_body(reply)?;
    let errors = v["errors"].as_array().ok_or("no errors array")?;
    if errors.is_empty() {
        return Err("empty errors array".into());
    }
    for e in errors {
        let c = e["code"].as_str().unwrap_or_default();
        if !SPEC_ERROR_CODES.contains(&c) {
            return Err(format!("code {c:?} is not a spec code"));
        }
        if !e["message"].is_string() {
            return Err("message is not a string".into());
        }
    }
    match code {
        Some(code) if errors[0]["code"] != code => {
            Err(format!("code {} instead of {code}: {v}", errors[0]["code"]))
        }
        _ => Ok(()),
    }
}

fn token_body(reply: &Reply) -> Result<(), String> {
    let v = json_body(reply)?;
    let token = v["token"].as_str().ok_or("no token")?;
    let claims = crate::common::jwt_parts(token).1;
    for entry in claims["access"].as_array().into_iter().flatten() {
        let name = entry["name"].as_str().unwrap_or_default();
        if entry["type"] == "repository" && name.parse::<oci::RepoName>().is_err() {
            return Err(format!("a grant on the invalid name {name:?}"));
        }
    }
    Ok(())
}

/// The corpus generator: a seeded random source and the fixture's names.
pub struct Gen<'a> {
    pub rng: StdRng,
    pub f: &'a Fixture,
    pub cases: Vec<Case>,
}

impl<'a> Gen<'a> {
    pub fn push(&mut self, case: Case) {
        self.cases.push(case);
    }

    /// A random element of `items`.
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        items.choose(&mut self.rng).expect("non-empty")
    }

    /// A random index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n)
    }

    /// 64 random lowercase hex digits.
    pub fn hex64(&mut self) -> String {
        (0..32)
            .map(|_| format!("{:02x}", self.rng.gen::<u8>()))
            .collect()
    }

    /// A random valid sha256 digest no blob or manifest has.
    pub fn unknown_digest(&mut self) -> String {
        format!("sha256:{}", self.hex64())
    }
}

/// Percent-encodes everything but unreserved characters, for query values.
pub fn q(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
