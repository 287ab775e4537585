//! A small OpenStack client for the workload: Keystone v3 password auth from a `clouds.yaml` entry
//! (or inline auth with the password from the environment), and the user commands a campaign can
//! issue, each tagged with its own global request id so that the tracer can stitch it.
//!
//! Secrets (the password and the token) live in [`Secret`], whose `Debug` never shows them, and
//! are never logged or written to results.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use scenarios::model::Cloud;
use userinput::echo::quoted;
use userinput::file::FileKind;

/// A string that must never be shown.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What went wrong talking to the cloud.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The cloud configuration is incomplete or unreadable.
    #[error("cloud configuration: {0}")]
    Config(String),
    /// Keystone refused or could not be reached.
    #[error(
        "authentication against {} failed: {message}",
        userinput::echo::redact_url(url)
    )]
    Auth {
        /// The Keystone URL.
        url: String,
        /// Why.
        message: String,
    },
    /// An API call failed.
    #[error("{0}")]
    Api(String),
}

/// Keystone v3 password credentials of one cloud.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Keystone URL ending in `/v3`.
    pub auth_url: String,
    /// User name.
    pub username: String,
    /// The password.
    pub password: Secret,
    /// Project name.
    pub project_name: String,
    /// User domain name.
    pub user_domain_name: String,
    /// Project domain name.
    pub project_domain_name: String,
    /// Region, when the catalog has several.
    pub region_name: Option<String>,
    /// The clouds.yaml entry name or `inline`, for reports.
    pub cloud_name: String,
}

/// Where `clouds.yaml` is looked for, in python-openstackclient's order.
fn clouds_yaml_candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_owned()];
    }
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("OS_CLIENT_CONFIG_FILE") {
        candidates.push(PathBuf::from(path));
    }
    candidates.push(PathBuf::from("clouds.yaml"));
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".config/openstack/clouds.yaml"));
    }
    candidates.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    candidates
}

impl Credentials {
    /// Resolves the campaign's cloud section into credentials.
    pub fn resolve(cloud: &Cloud) -> Result<Credentials, CloudError> {
        match cloud {
            Cloud::CloudsYaml { name, file } => {
                let candidates = clouds_yaml_candidates(file.as_deref());
                let Some(path) = candidates.iter().find(|p| p.is_file()) else {
                    return Err(CloudError::Config(format!(
                        "no clouds.yaml found (looked at {})",
                        candidates
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                let text = userinput::file::read_to_string(path, FileKind::CLOUDS_YAML)
                    .map_err(|e| CloudError::Config(e.to_string()))?;
                Self::from_clouds_yaml(&text, name, path)
            }
            Cloud::Inline {
                auth_url,
                username,
                password_env,
                project_name,
                user_domain_name,
                project_domain_name,
                region_name,
            } => {
                let password = std::env::var(password_env).map_err(|_| {
                    CloudError::Config(format!("the password variable {password_env} is not set"))
                })?;
                Ok(Credentials {
                    auth_url: auth_url.clone(),
                    username: username.clone(),
                    password: Secret(password),
                    project_name: project_name.clone(),
                    user_domain_name: user_domain_name.clone(),
                    project_domain_name: project_domain_name.clone(),
                    region_name: region_name.clone(),
                    cloud_name: "inline".into(),
                })
            }
        }
    }

    /// Reads one entry of a clouds.yaml document.
    pub fn from_clouds_yaml(
        text: &str,
        name: &str,
        path: &Path,
    ) -> Result<Credentials, CloudError> {
        // The parser's message may quote the file, and a clouds.yaml holds passwords: say where,
        // never what.
        let document: Value = serde_saphyr::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            CloudError::Config(format!("{}{at}: not valid YAML", path.display()))
        })?;
        let entry = document
            .get("clouds")
            .and_then(|c| c.get(name))
            .ok_or_else(|| {
                let known: Vec<String> = document
                    .get("clouds")
                    .and_then(Value::as_object)
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                CloudError::Config(format!(
                    "cloud {} is not in {} (it has: {})",
                    quoted(name),
                    path.display(),
                    known.join(", ")
                ))
            })?;
        let auth = entry
            .get("auth")
            .ok_or_else(|| CloudError::Config(format!("cloud \"{name}\" has no auth section")))?;
        let field = |key: &str| auth.get(key).and_then(Value::as_str).map(str::to_owned);
        let required = |key: &str| {
            field(key)
                .ok_or_else(|| CloudError::Config(format!("cloud \"{name}\" lacks auth.{key}")))
        };
        let mut auth_url = required("auth_url")?;
        if !auth_url.trim_end_matches('/').ends_with("/v3") {
            auth_url = format!("{}/v3", auth_url.trim_end_matches('/'));
        }
        Ok(Credentials {
            auth_url,
            username: required("username")?,
            password: Secret(required("password")?),
            project_name: required("project_name")?,
            user_domain_name: field("user_domain_name").unwrap_or_else(|| "Default".into()),
            project_domain_name: field("project_domain_name").unwrap_or_else(|| "Default".into()),
            region_name: entry
                .get("region_name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            cloud_name: name.to_owned(),
        })
    }
}

/// Endpoints of the services the workload uses.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Nova, e.g. `http://10.77.0.2:8774/v2.1`.
    pub compute: String,
    /// Glance, e.g. `http://10.77.0.2:9292`.
    pub image: Option<String>,
    /// Neutron, e.g. `http://10.77.0.2:9696`.
    pub network: Option<String>,
    /// Cinder v3 with the project id, e.g. `http://10.77.0.2:8776/v3/<project>`.
    pub volume: Option<String>,
}

/// How often the final clean-up sends a server's DELETE again while the server exists.
pub const PURGE_RESEND: Duration = Duration::from_secs(10);

/// Where a deletion stands after waiting.
enum Gone {
    /// The server is gone (404).
    Yes,
    /// The server went to ERROR.
    Error,
    /// The deadline passed first.
    NotYet,
    /// The deadline passed with the server still in task state `deleting`: Nova took a DELETE
    /// and ignores the ones after it.
    Ignored,
}

/// An authenticated session.
#[derive(Debug, Clone)]
pub struct Session {
    http: reqwest::Client,
    /// Shared by every clone: a token renewed by one serves all.
    token: Arc<RwLock<Secret>>,
    /// The service endpoints from the catalog.
    pub endpoints: Endpoints,
    /// The credentials (for re-authentication).
    pub credentials: Credentials,
}

/// The outcome of one API call.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed JSON body, `Null` when empty or not JSON.
    pub body: Value,
}

/// The workload's `User-Agent`. Naming the client lets the REST tracer, and the fingerprints'
/// normalization, tell the user's own requests (its status polls) from the requests services
/// make, which come with their own agents.
pub const USER_AGENT: &str = concat!("butterfly/", env!("CARGO_PKG_VERSION"), " (workload)");

/// A fresh global request id in the format Nova and oslo.middleware accept.
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

impl Session {
    /// Authenticates with Keystone v3 and reads the catalog.
    pub async fn connect(credentials: &Credentials) -> Result<Session, CloudError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CloudError::Config(format!("HTTP client: {e}")))?;
        let (token, document) = issue_token(&http, credentials).await?;
        let auth_error = |message: String| CloudError::Auth {
            url: credentials.auth_url.clone(),
            message,
        };
        let region = credentials.region_name.as_deref();
        let endpoint = |kind: &str| -> Option<String> {
            let catalog = document.pointer("/token/catalog")?.as_array()?;
            let service = catalog
                .iter()
                .find(|s| s.get("type").and_then(Value::as_str) == Some(kind))?;
            let endpoints = service.get("endpoints")?.as_array()?;
            endpoints
                .iter()
                .filter(|e| {
                    region.is_none_or(|r| {
                        e.get("region_id").and_then(Value::as_str) == Some(r)
                            || e.get("region").and_then(Value::as_str) == Some(r)
                    })
                })
                .find(|e| e.get("interface").and_then(Value::as_str) == Some("public"))
                .and_then(|e| {
                    e.get("url")?
                        .as_str()
                        .map(|u| u.trim_end_matches('/').to_owned())
                })
        };
        let compute = endpoint("compute")
            .ok_or_else(|| auth_error("the catalog has no public compute endpoint".into()))?;
        Ok(Session {
            http,
            token: Arc::new(RwLock::new(token)),
            endpoints: Endpoints {
                compute,
                image: endpoint("image"),
                network: endpoint("network"),
                // The official type first, then the aliases older deployments register.
                volume: ["block-storage", "volumev3", "volume"]
                    .into_iter()
                    .find_map(endpoint),
            },
            credentials: credentials.clone(),
        })
    }

    /// One API call with the session's token, a global request id and an optional JSON body.
    ///
    /// A `401` means the token expired (Keystone's last an hour by default, and a campaign can
    /// run longer: a run of `detector-accuracy.yaml` could not delete its last server after 61
    /// minutes): the session gets a new token and sends the call once more.
    pub async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        request_id: &str,
        body: Option<&Value>,
    ) -> Result<Response, CloudError> {
        let body = match body {
            Some(json) => Body::Json(json),
            None => Body::Empty,
        };
        self.call_with(method, url, request_id, body).await
    }

    /// As [`Session::call`], with any [`Body`] (an image upload sends raw bytes).
    pub async fn call_with(
        &self,
        method: reqwest::Method,
        url: &str,
        request_id: &str,
        body: Body<'_>,
    ) -> Result<Response, CloudError> {
        let token = self.current_token();
        let response = self
            .send(method.clone(), url, request_id, body, &token)
            .await?;
        if response.status != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.renew_token(&token).await?;
        let token = self.current_token();
        self.send(method, url, request_id, body, &token).await
    }

    /// `token issue`: a fresh password authentication under `request_id`. The token is dropped:
    /// the command measures Keystone, the session keeps its own.
    pub async fn issue_token(&self, request_id: &str) -> Result<(), String> {
        issue_token_with(&self.http, &self.credentials, Some(request_id))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn current_token(&self) -> Secret {
        self.token.read().expect("token lock").clone()
    }

    /// Replaces `expired` with a new token, unless another call has renewed it already.
    async fn renew_token(&self, expired: &Secret) -> Result<(), CloudError> {
        if self.current_token().expose() != expired.expose() {
            return Ok(());
        }
        let (token, _) = issue_token(&self.http, &self.credentials).await?;
        *self.token.write().expect("token lock") = token;
        Ok(())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        request_id: &str,
        body: Body<'_>,
        token: &Secret,
    ) -> Result<Response, CloudError> {
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("X-Auth-Token", token.expose())
            .header("X-OpenStack-Request-ID", request_id)
            .header("Accept", "application/json");
        if url.starts_with(&self.endpoints.compute) {
            // Microversion 2.37 allows servers without networks (`networks: none`). Only for
            // nova: Cinder answers 400 to an `OpenStack-API-Version` that names another service.
            request = request
                .header("OpenStack-API-Version", "compute 2.37")
                .header("X-OpenStack-Nova-API-Version", "2.37");
        }
        match body {
            Body::Empty => {}
            Body::Json(json) => request = request.json(json),
            Body::Bytes(bytes) => {
                request = request
                    .header("Content-Type", "application/octet-stream")
                    .body(bytes.clone());
            }
        }
        let response = request.send().await.map_err(|e| {
            CloudError::Api(format!("{method} {}: {}", redact_url(url), without_url(&e)))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Response { status, body })
    }
}

/// A request body.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// None.
    Empty,
    /// JSON.
    Json(&'a Value),
    /// Raw bytes (`application/octet-stream`), shared so that a resend copies nothing.
    Bytes(&'a bytes::Bytes),
}

/// Asks Keystone for a project-scoped token with the password: the token and the response's
/// document (which holds the catalog).
async fn issue_token(
    http: &reqwest::Client,
    credentials: &Credentials,
) -> Result<(Secret, Value), CloudError> {
    issue_token_with(http, credentials, None).await
}

async fn issue_token_with(
    http: &reqwest::Client,
    credentials: &Credentials,
    request_id: Option<&str>,
) -> Result<(Secret, Value), CloudError> {
    let body = json!({
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {
                    "name": credentials.username,
                    "domain": {"name": credentials.user_domain_name},
                    "password": credentials.password.expose(),
                }}
            },
            "scope": {"project": {
                "name": credentials.project_name,
                "domain": {"name": credentials.project_domain_name},
            }}
        }
    });
    let url = format!("{}/auth/tokens", credentials.auth_url.trim_end_matches('/'));
    let auth_error = |message: String| CloudError::Auth {
        url: credentials.auth_url.clone(),
        message,
    };
    let mut request = http.post(&url).json(&body);
    if let Some(request_id) = request_id {
        request = request.header("X-OpenStack-Request-ID", request_id);
    }
    let response = request
        .send()
        .await
        .map_err(|e| auth_error(e.to_string()))?;
    let status = response.status();
    let token = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(|t| Secret(t.to_owned()));
    let document: Value = response.json().await.unwrap_or(Value::Null);
    let Some(token) = token.filter(|_| status.is_success()) else {
        return Err(auth_error(format!("HTTP {status}")));
    };
    Ok((token, document))
}

/// A called URL for a message: without its query, and without a password should it hold one.
fn redact_url(url: &str) -> String {
    userinput::echo::redact_url(url.split('?').next().unwrap_or(url))
}

fn without_url(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    if let Some(url) = error.url() {
        message = message.replace(url.as_str(), "");
    }
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        message.trim().to_owned()
    }
}

/// The names the workload refers to, resolved to ids once at start.
#[derive(Debug, Clone)]
pub struct ServerTemplate {
    /// Flavor id.
    pub flavor_id: String,
    /// Image id.
    pub image_id: String,
    /// `none`, `auto`, or a network id.
    pub networks: Value,
    /// Server name prefix.
    pub name_prefix: String,
}

impl Session {
    /// Resolves flavor, image and network names for `server create`.
    pub async fn server_template(
        &self,
        params: &[(String, String)],
    ) -> Result<ServerTemplate, CloudError> {
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let flavor = param("flavor").unwrap_or("m1.tiny");
        let image = param("image").unwrap_or("fake-img");
        let network = param("network").unwrap_or("none");
        let rid = new_request_id();
        let flavors = self
            .call(
                reqwest::Method::GET,
                &format!("{}/flavors", self.endpoints.compute),
                &rid,
                None,
            )
            .await?;
        let flavor_id = flavors
            .body
            .get("flavors")
            .and_then(Value::as_array)
            .and_then(|list| {
                list.iter().find(|f| {
                    f.get("name").and_then(Value::as_str) == Some(flavor)
                        || f.get("id").and_then(Value::as_str) == Some(flavor)
                })
            })
            .and_then(|f| f.get("id")?.as_str().map(str::to_owned))
            .ok_or_else(|| CloudError::Api(format!("flavor \"{flavor}\" not found")))?;
        let image_endpoint = self
            .endpoints
            .image
            .as_deref()
            .ok_or_else(|| CloudError::Api("the catalog has no image endpoint".into()))?;
        let images = self
            .call(
                reqwest::Method::GET,
                &format!("{image_endpoint}/v2/images?name={image}"),
                &rid,
                None,
            )
            .await?;
        let image_id = images
            .body
            .get("images")
            .and_then(Value::as_array)
            .and_then(|list| list.first())
            .and_then(|i| i.get("id")?.as_str().map(str::to_owned))
            .or_else(|| uuid::Uuid::parse_str(image).ok().map(|_| image.to_owned()))
            .ok_or_else(|| CloudError::Api(format!("image \"{image}\" not found")))?;
        let networks = match network {
            "none" | "auto" => Value::String(network.to_owned()),
            name => {
                let endpoint =
                    self.endpoints.network.as_deref().ok_or_else(|| {
                        CloudError::Api("the catalog has no network endpoint".into())
                    })?;
                let found = self
                    .call(
                        reqwest::Method::GET,
                        &format!("{endpoint}/v2.0/networks?name={name}"),
                        &rid,
                        None,
                    )
                    .await?;
                let id = found
                    .body
                    .get("networks")
                    .and_then(Value::as_array)
                    .and_then(|l| l.first())
                    .and_then(|n| n.get("id")?.as_str().map(str::to_owned))
                    .ok_or_else(|| CloudError::Api(format!("network \"{name}\" not found")))?;
                json!([{"uuid": id}])
            }
        };
        Ok(ServerTemplate {
            flavor_id,
            image_id,
            networks,
            name_prefix: param("name_prefix").unwrap_or("bfly").to_owned(),
        })
    }

    /// Creates a server and waits until it is ACTIVE. Returns its id even when the build failed,
    /// so that the caller can clean it up.
    pub async fn create_server(
        &self,
        template: &ServerTemplate,
        request_id: &str,
        timeout: Duration,
    ) -> (Option<String>, Result<(), String>) {
        let name = format!(
            "{}-{}",
            template.name_prefix,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let body = json!({"server": {
            "name": name,
            "imageRef": template.image_id,
            "flavorRef": template.flavor_id,
            "networks": template.networks,
        }});
        let url = format!("{}/servers", self.endpoints.compute);
        let created = match self
            .call(reqwest::Method::POST, &url, request_id, Some(&body))
            .await
        {
            Ok(response) if response.status.is_success() => response,
            Ok(response) => return (None, Err(api_failure("POST /servers", &response))),
            Err(error) => return (None, Err(error.to_string())),
        };
        let Some(id) = created
            .body
            .pointer("/server/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return (None, Err("POST /servers returned no server id".into()));
        };
        let deadline = Instant::now() + timeout;
        let show = format!("{}/servers/{id}", self.endpoints.compute);
        loop {
            if Instant::now() >= deadline {
                return (
                    Some(id),
                    Err(format!("not ACTIVE within {}s", timeout.as_secs())),
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            match self
                .call(reqwest::Method::GET, &show, request_id, None)
                .await
            {
                Ok(response) if response.status.is_success() => {
                    match response
                        .body
                        .pointer("/server/status")
                        .and_then(Value::as_str)
                    {
                        Some("ACTIVE") => return (Some(id), Ok(())),
                        Some("ERROR") => {
                            let fault = response
                                .body
                                .pointer("/server/fault/message")
                                .and_then(Value::as_str)
                                .unwrap_or("no fault message");
                            return (Some(id), Err(format!("server went to ERROR: {fault}")));
                        }
                        _ => {}
                    }
                }
                // A poll that fails (API briefly down) is retried until the deadline: the user
                // command fails only if the server never becomes ACTIVE.
                Ok(_) | Err(_) => {}
            }
        }
    }

    /// Deletes a server and waits until it is gone.
    pub async fn delete_server(
        &self,
        id: &str,
        request_id: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        self.send_delete(id, request_id).await?;
        match self
            .wait_deleted(id, request_id, Instant::now() + timeout)
            .await?
        {
            Gone::Yes => Ok(()),
            Gone::Error => Err("server went to ERROR while deleting".into()),
            Gone::NotYet | Gone::Ignored => {
                Err(format!("not deleted within {}s", timeout.as_secs()))
            }
        }
    }

    /// Deletes a server the workload left behind, insisting: the DELETE is sent again every
    /// [`PURGE_RESEND`] while the server exists, also when it is in ERROR (Nova deletes ERROR
    /// servers) or when Nova answers 409 because a task is still running. A fault can swallow a
    /// delete that Nova accepted (a lost cast while the database was locked left a server
    /// behind in the detector-accuracy campaign), and one DELETE is then never enough.
    pub async fn purge_server(&self, id: &str, timeout: Duration) -> Result<(), String> {
        self.purge_server_every(id, timeout, PURGE_RESEND).await
    }

    async fn purge_server_every(
        &self,
        id: &str,
        timeout: Duration,
        resend: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        let mut resets = 0;
        while Instant::now() < deadline {
            let request_id = new_request_id();
            if let Err(error) = self.send_delete(id, &request_id).await {
                last_error = Some(error);
            }
            let round = (Instant::now() + resend).min(deadline);
            match self.wait_deleted(id, &request_id, round).await? {
                Gone::Yes => return Ok(()),
                Gone::Error | Gone::NotYet => {}
                Gone::Ignored if Instant::now() < deadline => {
                    // Nova answers every DELETE after the first with 204 and ignores it while
                    // the server's task state is `deleting` ("already in deleting state"). When
                    // the cast that first DELETE made was lost (measured: after the broker was
                    // stopped and started), nothing else ever clears that state; resetting it,
                    // as an operator would (`openstack server set --state error`), lets the next
                    // DELETE through.
                    match self.reset_state(id, &request_id).await {
                        Ok(()) => resets += 1,
                        Err(error) => last_error = Some(error),
                    }
                }
                Gone::Ignored => {}
            }
        }
        let why = match last_error {
            Some(error) => error,
            None if resets > 0 => format!(
                "every DELETE was accepted; the state was reset {resets} time(s) and the server stayed"
            ),
            None => "every DELETE was accepted and the server stayed".to_owned(),
        };
        Err(format!("not deleted within {}s ({why})", timeout.as_secs()))
    }

    /// Resets a server's state to ERROR (`os-resetState`, admin only), which clears its task
    /// state.
    async fn reset_state(&self, id: &str, request_id: &str) -> Result<(), String> {
        let url = format!("{}/servers/{id}/action", self.endpoints.compute);
        let body = serde_json::json!({"os-resetState": {"state": "error"}});
        match self
            .call(reqwest::Method::POST, &url, request_id, Some(&body))
            .await
        {
            Ok(response)
                if response.status.is_success() || response.status == StatusCode::NOT_FOUND =>
            {
                Ok(())
            }
            Ok(response) => Err(api_failure(
                "POST /servers/{id}/action os-resetState",
                &response,
            )),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Sends `DELETE /servers/{id}`: accepted, or already gone.
    async fn send_delete(&self, id: &str, request_id: &str) -> Result<(), String> {
        let url = format!("{}/servers/{id}", self.endpoints.compute);
        match self
            .call(reqwest::Method::DELETE, &url, request_id, None)
            .await
        {
            Ok(response)
                if response.status.is_success() || response.status == StatusCode::NOT_FOUND =>
            {
                Ok(())
            }
            Ok(response) => Err(api_failure("DELETE /servers/{id}", &response)),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Polls the server every 250 ms until it is gone, in ERROR, or `deadline` passes; in the
    /// last case, says whether it was still in task state `deleting` then.
    async fn wait_deleted(
        &self,
        id: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<Gone, String> {
        let url = format!("{}/servers/{id}", self.endpoints.compute);
        let mut deleting = false;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            match self
                .call(reqwest::Method::GET, &url, request_id, None)
                .await
            {
                Ok(response) if response.status == StatusCode::NOT_FOUND => return Ok(Gone::Yes),
                Ok(response)
                    if response
                        .body
                        .pointer("/server/status")
                        .and_then(Value::as_str)
                        == Some("ERROR") =>
                {
                    return Ok(Gone::Error);
                }
                Ok(response) => {
                    deleting = response
                        .body
                        .pointer("/server/OS-EXT-STS:task_state")
                        .and_then(Value::as_str)
                        == Some("deleting");
                }
                Err(_) => {}
            }
        }
        Ok(if deleting {
            Gone::Ignored
        } else {
            Gone::NotYet
        })
    }

    /// A list command (`server list`, `image list`, `flavor list`, `network list`).
    pub async fn list(&self, what: ListKind, request_id: &str) -> Result<(), String> {
        let url = match what {
            ListKind::Servers => format!("{}/servers", self.endpoints.compute),
            ListKind::Flavors => format!("{}/flavors", self.endpoints.compute),
            ListKind::Images => format!(
                "{}/v2/images",
                self.endpoints
                    .image
                    .as_deref()
                    .ok_or("the catalog has no image endpoint")?
            ),
            ListKind::Networks => format!(
                "{}/v2.0/networks",
                self.endpoints
                    .network
                    .as_deref()
                    .ok_or("the catalog has no network endpoint")?
            ),
        };
        match self
            .call(reqwest::Method::GET, &url, request_id, None)
            .await
        {
            Ok(response) if response.status.is_success() => Ok(()),
            Ok(response) => Err(api_failure(what.path(), &response)),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// The list commands.
#[derive(Debug, Clone, Copy)]
pub enum ListKind {
    /// `GET /servers`.
    Servers,
    /// `GET /flavors`.
    Flavors,
    /// `GET /v2/images`.
    Images,
    /// `GET /v2.0/networks`.
    Networks,
}

impl ListKind {
    fn path(self) -> &'static str {
        match self {
            ListKind::Servers => "GET /servers",
            ListKind::Flavors => "GET /flavors",
            ListKind::Images => "GET /v2/images",
            ListKind::Networks => "GET /v2.0/networks",
        }
    }
}

pub(crate) fn api_failure(call: &str, response: &Response) -> String {
    // OpenStack error bodies look like {"itemNotFound": {"message": …}} or {"error": {"message": …}}.
    let message = response
        .body
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{call}: HTTP {} {message}", response.status.as_u16())
        .trim()
        .to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An HTTP server on loopback answering each request with `respond(request)`: status line
    /// (`"200 OK"`) and JSON body. Returns its base URL.
    pub(crate) async fn fake_http(
        respond: impl Fn(&[u8]) -> (&'static str, String) + Send + Sync + 'static,
    ) -> String {
        fake_http_with_headers(move |request| {
            let (code, body) = respond(request);
            (code, Vec::new(), body)
        })
        .await
    }

    /// As [`fake_http`], with extra response headers.
    async fn fake_http_with_headers(
        respond: impl Fn(&[u8]) -> (&'static str, Vec<(&'static str, String)>, String)
        + Send
        + Sync
        + 'static,
    ) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let (code, headers, body) = respond(&request);
                let extra: String = headers
                    .iter()
                    .map(|(name, value)| format!("{name}: {value}\r\n"))
                    .collect();
                let response = format!(
                    "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        format!("http://{address}/v2.1")
    }

    /// Regression (issue 6, a run of `detector-accuracy.yaml` could not delete its last server
    /// after 61 minutes: `HTTP 401 The request you have made requires authentication`): a call
    /// answered 401 gets a new token from Keystone and is sent once more; the session's clones
    /// share the new token.
    #[tokio::test]
    async fn an_expired_token_is_renewed_and_the_call_sent_again() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let issued = Arc::new(AtomicUsize::new(0));
        let counted = issued.clone();
        let url = fake_http_with_headers(move |request| {
            let text = String::from_utf8_lossy(request).to_lowercase();
            if text.starts_with("post /v3/auth/tokens") {
                counted.fetch_add(1, Ordering::SeqCst);
                let catalog = r#"{"token":{"catalog":[]}}"#.to_owned();
                (
                    "201 Created",
                    vec![("X-Subject-Token", "fresh-token".to_owned())],
                    catalog,
                )
            } else if text.contains("x-auth-token: fresh-token") {
                ("200 OK", Vec::new(), r#"{"servers":[]}"#.to_owned())
            } else {
                (
                    "401 Unauthorized",
                    Vec::new(),
                    r#"{"error":{"code":401}}"#.to_owned(),
                )
            }
        })
        .await;
        let mut session = session_at(url.clone());
        session.credentials.auth_url = url.replace("/v2.1", "/v3");
        let clone = session.clone();
        let servers = format!("{url}/servers");
        let response = session
            .call(reqwest::Method::GET, &servers, "req-1", None)
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(issued.load(Ordering::SeqCst), 1);
        let response = clone
            .call(reqwest::Method::GET, &servers, "req-2", None)
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(
            issued.load(Ordering::SeqCst),
            1,
            "the clone uses the renewed token"
        );
    }

    /// A fake Nova on loopback for the clean-up: `DELETE` is accepted (204) but only the
    /// `deletes_needed`-th one takes effect; until then the server shows `status` (200).
    async fn fake_nova(
        deletes_needed: usize,
        status: &'static str,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let deletes = Arc::new(AtomicUsize::new(0));
        let counter = deletes.clone();
        let url = fake_http(move |request| {
            if request.starts_with(b"DELETE ") {
                counter.fetch_add(1, Ordering::SeqCst);
                ("204 No Content", String::new())
            } else if counter.load(Ordering::SeqCst) >= deletes_needed {
                ("404 Not Found", String::new())
            } else {
                ("200 OK", format!(r#"{{"server":{{"status":"{status}"}}}}"#))
            }
        })
        .await;
        (url, deletes)
    }

    /// A fake Nova whose server stays in task state `deleting` after the first DELETE, ignoring
    /// every later one until its state is reset (`os-resetState`); the DELETE after the reset
    /// takes effect. Counts the resets.
    async fn fake_nova_ignoring_deletes() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // 0: active; 1: deleting (DELETEs ignored); 2: reset to error; 3: gone.
        let state = Arc::new(AtomicUsize::new(0));
        let resets = Arc::new(AtomicUsize::new(0));
        let counted = resets.clone();
        let url = fake_http(move |request| {
            let text = String::from_utf8_lossy(request);
            if text.starts_with("DELETE ") {
                let next = match state.load(Ordering::SeqCst) {
                    0 => 1,
                    2 | 3 => 3,
                    ignored => ignored,
                };
                state.store(next, Ordering::SeqCst);
                ("204 No Content", String::new())
            } else if text.starts_with("POST ") && text.contains("/servers/s1/action") {
                counted.fetch_add(1, Ordering::SeqCst);
                if state.load(Ordering::SeqCst) == 1 {
                    state.store(2, Ordering::SeqCst);
                }
                ("202 Accepted", String::new())
            } else {
                match state.load(Ordering::SeqCst) {
                    3 => ("404 Not Found", String::new()),
                    1 => (
                        "200 OK",
                        r#"{"server":{"status":"ACTIVE","OS-EXT-STS:task_state":"deleting"}}"#
                            .to_owned(),
                    ),
                    _ => ("200 OK", r#"{"server":{"status":"ACTIVE"}}"#.to_owned()),
                }
            }
        })
        .await;
        (url, resets)
    }

    /// Regression (issue 6, every accuracy run ended with "1 server(s) created by the workload
    /// could not be deleted", exit 3): after the broker was stopped and started, a DELETE's cast
    /// was lost and the server stayed in task state `deleting`, where Nova ignores every later
    /// DELETE. The clean-up resets its state and deletes it.
    #[tokio::test]
    async fn the_clean_up_resets_a_server_whose_deletes_are_ignored() {
        use std::sync::atomic::Ordering;
        let (compute, resets) = fake_nova_ignoring_deletes().await;
        session_at(compute)
            .purge_server_every("s1", Duration::from_secs(20), Duration::from_millis(600))
            .await
            .expect("purged");
        assert_eq!(resets.load(Ordering::SeqCst), 1);
    }

    pub(crate) fn session_at(compute: String) -> Session {
        Session {
            http: reqwest::Client::new(),
            token: Arc::new(RwLock::new(Secret("test-token".into()))),
            endpoints: Endpoints {
                compute,
                image: None,
                network: None,
                volume: None,
            },
            credentials: Credentials {
                auth_url: "http://127.0.0.1:9/v3".into(),
                username: "admin".into(),
                password: Secret("unused".into()),
                project_name: "admin".into(),
                user_domain_name: "Default".into(),
                project_domain_name: "Default".into(),
                region_name: None,
                cloud_name: "test".into(),
            },
        }
    }

    /// Regression (detector-accuracy run of 2026-11-28): a server whose accepted DELETE was lost
    /// during a fault stayed behind, and the run ended with exit 3. The clean-up sends the DELETE
    /// again, also to a server in ERROR, until it is gone.
    #[tokio::test]
    async fn the_clean_up_deletes_again_until_the_server_is_gone() {
        use std::sync::atomic::Ordering;
        let (compute, deletes) = fake_nova(3, "ERROR").await;
        let session = session_at(compute);
        session
            .purge_server_every("s1", Duration::from_secs(20), Duration::from_millis(300))
            .await
            .expect("purged");
        assert_eq!(deletes.load(Ordering::SeqCst), 3);

        // The workload's own delete command sends one DELETE and reports ERROR as its outcome.
        let (compute, deletes) = fake_nova(2, "ERROR").await;
        let error = session_at(compute)
            .delete_server("s2", &new_request_id(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(error, "server went to ERROR while deleting");
        assert_eq!(deletes.load(Ordering::SeqCst), 1);

        // A server that never goes away is reported after the deadline.
        let (compute, _) = fake_nova(usize::MAX, "ACTIVE").await;
        let error = session_at(compute)
            .purge_server_every("s3", Duration::from_secs(1), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            "not deleted within 1s (every DELETE was accepted and the server stayed)"
        );
    }

    #[test]
    fn clouds_yaml_entries_resolve_and_hide_the_password() {
        let text = "clouds:\n  butterfly:\n    auth:\n      auth_url: http://10.77.0.2:5000\n      username: admin\n      password: s3cret\n      project_name: admin\n    region_name: RegionOne\n";
        let credentials =
            Credentials::from_clouds_yaml(text, "butterfly", Path::new("clouds.yaml")).unwrap();
        assert_eq!(credentials.auth_url, "http://10.77.0.2:5000/v3");
        assert_eq!(credentials.user_domain_name, "Default");
        assert_eq!(credentials.region_name.as_deref(), Some("RegionOne"));
        assert!(!format!("{credentials:?}").contains("s3cret"));
        let missing =
            Credentials::from_clouds_yaml(text, "other", Path::new("clouds.yaml")).unwrap_err();
        assert!(
            missing.to_string().contains("it has: butterfly"),
            "{missing}"
        );
    }

    #[test]
    fn request_ids_have_the_accepted_shape() {
        let id = new_request_id();
        assert!(id.starts_with("req-"));
        assert!(uuid::Uuid::parse_str(&id[4..]).is_ok());
    }
}
