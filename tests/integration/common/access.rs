//! Access-control test helpers: setting up users, organizations, teams, robots, repositories
//! and grants through /api/v1 as the superuser, fetching registry tokens and reading or forging
//! them, reading replies whole, and running the admin CLI.

use base64::Engine;
use serde_json::{json, Value};

/// A `/api/v1` reply: the status and the JSON body (`Null` when the body is empty).
#[derive(Debug)]
pub struct ApiReply {
    pub status: u16,
    pub body: Value,
}

/// Sends `method url` with an optional JSON body and reads the reply as JSON.
pub async fn api_call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> ApiReply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("API request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("API body");
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("API body is not JSON ({e}): {text}"))
    };
    ApiReply { status, body }
}

/// The password the helpers give user `name`.
pub fn password_of(name: &str) -> String {
    format!("{name}-secret-pw")
}

/// The `Authorization` value for HTTP Basic.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A client sending `Authorization: Bearer <token>` with every request.
pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// `GET /v2/auth?service=..&scope=..` with Basic credentials or none.
pub async fn token_request(
    base: &str,
    credentials: Option<(&str, &str)>,
    scopes: &[&str],
) -> reqwest::Response {
    let host = base.strip_prefix("http://").expect("http base");
    let mut query: Vec<(&str, &str)> = vec![("service", host)];
    query.extend(scopes.iter().map(|s| ("scope", *s)));
    let mut req = reqwest::Client::new()
        .get(format!("{base}/v2/auth"))
        .query(&query);
    if let Some((u, p)) = credentials {
        req = req.header("authorization", basic(u, p));
    }
    req.send().await.expect("token request")
}

/// Fetches a registry token, asserting 200, and returns it.
pub async fn registry_token(
    base: &str,
    credentials: Option<(&str, &str)>,
    scopes: &[&str],
) -> String {
    let r = token_request(base, credentials, scopes).await;
    assert_eq!(r.status(), 200, "token for {credentials:?} {scopes:?}");
    let v: Value = r.json().await.expect("token JSON");
    v["token"].as_str().expect("token").to_string()
}

/// The header and claims of a JWT, unverified.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = |what: &str| -> Value {
        let part = parts
            .next()
            .unwrap_or_else(|| panic!("no {what} in {token}"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap_or_else(|e| panic!("{what} of {token} is not base64url: {e}"));
        serde_json::from_slice(&bytes).expect("JWT part is JSON")
    };
    let header = decode("header");
    let claims = decode("claims");
    (header, claims)
}

/// The actions a token grants on repository `repo`, joined with commas ("" when none).
pub fn granted_actions(token: &str, repo: &str) -> String {
    let (_, claims) = jwt_parts(token);
    claims["access"]
        .as_array()
        .expect("access claim")
        .iter()
        .filter(|e| e["type"] == "repository" && e["name"] == repo)
        .flat_map(|e| e["actions"].as_array().expect("actions").clone())
        .map(|a| a.as_str().expect("action").to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Account set-up through /api/v1, as the superuser of the test server.
impl super::TestServer {
    /// `method /api/v1...` as the superuser.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> ApiReply {
        api_call(&self.client, method, &self.url(path), body).await
    }

    async fn api_ok(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let r = self.api(method, path, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        r.body
    }

    /// Creates user `name` with password [`password_of`] and returns a Basic client for it.
    pub async fn create_user(&self, name: &str) -> reqwest::Client {
        let password = password_of(name);
        self.api_ok(
            "POST",
            "/api/v1/superuser/users/",
            Some(json!({"username": name, "password": password})),
            201,
        )
        .await;
        super::authed_client(name, &password)
    }

    /// Creates organization `name`, owned by the superuser.
    pub async fn create_org(&self, name: &str) {
        self.api_ok(
            "POST",
            "/api/v1/organization/",
            Some(json!({ "name": name })),
            201,
        )
        .await;
    }

    /// Creates (or updates) a team with a role: member, creator or admin.
    pub async fn create_team(&self, org: &str, team: &str, role: &str) {
        self.api_ok(
            "PUT",
            &format!("/api/v1/organization/{org}/team/{team}"),
            Some(json!({ "role": role })),
            200,
        )
        .await;
    }

    /// Adds a user or robot to a team.
    pub async fn add_team_member(&self, org: &str, team: &str, member: &str) {
        self.api_ok(
            "PUT",
            &format!("/api/v1/organization/{org}/team/{team}/members/{member}"),
            None,
            200,
        )
        .await;
    }

    /// Creates robot `org+short` and returns its token.
    pub async fn create_robot(&self, org: &str, short: &str) -> String {
        let v = self
            .api_ok(
                "PUT",
                &format!("/api/v1/organization/{org}/robots/{short}"),
                None,
                201,
            )
            .await;
        assert_eq!(v["name"], format!("{org}+{short}"));
        v["token"].as_str().expect("robot token").to_string()
    }

    /// Creates repository `ns/name`, public or private.
    pub async fn create_repo(&self, repo: &str, public: bool) {
        let (ns, name) = repo.split_once('/').expect("ns/name");
        let visibility = if public { "public" } else { "private" };
        self.api_ok(
            "POST",
            "/api/v1/repository",
            Some(json!({"namespace": ns, "repository": name, "visibility": visibility})),
            201,
        )
        .await;
    }

    /// Grants `role` (read, write, admin) on `repo` to a user or robot.
    pub async fn grant(&self, repo: &str, account: &str, role: &str) {
        self.api_ok(
            "PUT",
            &format!("/api/v1/repository/{repo}/permissions/user/{account}"),
            Some(json!({ "role": role })),
            200,
        )
        .await;
    }

    /// Makes `repo` public or private.
    pub async fn set_visibility(&self, repo: &str, public: bool) {
        let visibility = if public { "public" } else { "private" };
        self.api_ok(
            "POST",
            &format!("/api/v1/repository/{repo}/changevisibility"),
            Some(json!({ "visibility": visibility })),
            200,
        )
        .await;
    }
}

/// Output of one admin CLI run.
#[derive(Debug)]
pub struct CliOutput {
    pub success: bool,
    /// The exit status (`None` when a signal ended the process).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `berth <args> --data-dir <data_dir>`, feeding `stdin` when given.
pub async fn berth_cli(
    data_dir: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> CliOutput {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    if let Some(uri) = super::test_database_for(data_dir).await {
        command.env(berth::config::DB_URI_ENV, uri);
    }
    if let Some(config) = super::test_config_file_for(data_dir) {
        command.env("BERTH_CONFIG", config);
    }
    let mut child = command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn berth CLI");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let out = child.wait_with_output().await.expect("berth CLI output");
    CliOutput {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sends a request, panicking on transport errors.
pub async fn exec(req: reqwest::RequestBuilder) -> reqwest::Response {
    req.send().await.expect("request")
}

/// Sends a request and returns its status.
pub async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    exec(req).await.status().as_u16()
}

/// Asserts a 401 /v2 reply with an OCI error body coded UNAUTHORIZED; returns its challenge.
pub async fn assert_401(r: reqwest::Response, context: &str) -> String {
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("challenge text").to_string())
        .unwrap_or_default();
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, 401, "{context}: {text}");
    let v = super::check_error_body(text.as_bytes());
    assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED", "{context}");
    challenge
}

/// The `access` claim of a token.
pub fn access_of(token: &str) -> Value {
    jwt_parts(token).1["access"].clone()
}

/// One `access` entry for a repository.
pub fn repo_access(name: &str, actions: &[&str]) -> Value {
    json!({"type": "repository", "name": name, "actions": actions})
}

/// Claims as berth writes them, for `sub`, issued at `iat` and valid for `lifetime` seconds.
pub fn token_claims(sub: &str, iat: u64, lifetime: u64, access: &Value) -> Value {
    json!({
        "iss": "berth", "sub": sub, "aud": "berth-test", "exp": iat + lifetime,
        "nbf": iat.saturating_sub(5), "iat": iat, "jti": "forged", "access": access,
    })
}

/// Signs `claims` as a JWT with `alg`: ES256 takes a PEM private key, HMAC algorithms a secret.
pub fn sign_token(
    alg: jsonwebtoken::Algorithm,
    key: &[u8],
    kid: Option<&str>,
    claims: &Value,
) -> String {
    let mut head = jsonwebtoken::Header::new(alg);
    head.kid = kid.map(str::to_string);
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => {
            jsonwebtoken::EncodingKey::from_ec_pem(key).expect("EC private key")
        }
        _ => jsonwebtoken::EncodingKey::from_secret(key),
    };
    jsonwebtoken::encode(&head, claims, &key).expect("signing")
}

/// A reply, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// Sends `req` and reads the reply.
    pub async fn send(req: reqwest::RequestBuilder) -> Reply {
        Reply::of(exec(req).await).await
    }

    /// Reads `r` whole.
    pub async fn of(r: reqwest::Response) -> Reply {
        Reply {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text().await.expect("body"),
        }
    }

    /// A header's text, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        let value = self.headers.get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or("")
    }
}

/// Pushes an SBOM-like artifact whose subject is the image manifest `subject` of `repo` (by
/// digest); returns the artifact's digest.
pub async fn push_referrer(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    subject: &str,
) -> String {
    let url = format!("{base}/v2/{repo}/manifests/{subject}");
    let head = exec(client.head(url)).await;
    let size: u64 = super::header(&head, "content-length")
        .parse()
        .expect("size");
    let empty = super::push_blob(client, base, repo, b"{}").await;
    let sbom = format!("sbom of {subject}");
    let layer = super::push_blob(client, base, repo, sbom.as_bytes()).await;
    let image = "application/vnd.oci.image.manifest.v1+json";
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": image,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "text/spdx+json", "digest": layer, "size": sbom.len()}],
        "subject": {"mediaType": image, "digest": subject, "size": size},
    }))
    .expect("json");
    let digest = super::sha256(&manifest);
    let r = super::put_manifest(client, base, repo, &digest, image, &manifest).await;
    assert_eq!(r.status(), 201, "push referrer");
    digest
}
