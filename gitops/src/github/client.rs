//! The GitHub REST client heal8s uses: octocrab for transport and GitHub App
//! authentication (JWT issued 60 s in the past, 9 minutes long; installation
//! tokens cached and refreshed 30 s before expiry), with heal8s's own retry
//! policy on top (octocrab's blind retry layer is not compiled in).
//!
//! Every call goes through [`Github::call`]: reads may be retried; writes are
//! serialized per installation, paced under GitHub's content-creation limits,
//! and retried only on a rate limit (the request was refused, so nothing
//! happened) or, for idempotent ones, a server error. Each call is counted.
//!
//! Every request carries heal8s's `User-Agent` (`heal8s/<version> (<instance>)`,
//! the one its Kubernetes requests carry), in place of octocrab's: the
//! transport below octocrab is built here for that.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde_json::Value;
use tokio::sync::Mutex;

use super::policy::{ContentBudget, Decision, Response, RetryPolicy};

/// How heal8s authenticates.
#[derive(Clone)]
pub enum Auth {
    /// A GitHub App: its id and private key (PEM). The installation is found
    /// per repository.
    App {
        app_id: u64,
        private_key_pem: String,
    },
    /// A personal access token (small setups).
    Token(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the key and the token never reach a log
        match self {
            Auth::App { app_id, .. } => {
                write!(f, "App {{ app_id: {app_id}, private_key_pem: <redacted> }}")
            }
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    pub auth: Auth,
    pub retry: RetryPolicy,
    /// Content-creating requests per minute and per hour, per installation.
    pub per_minute: usize,
    pub per_hour: usize,
    /// Connect and read timeouts.
    pub timeout: Duration,
    /// The `User-Agent` of every request; GitHub asks for one naming the
    /// application.
    pub user_agent: String,
}

impl GithubConfig {
    pub fn new(api_url: impl Into<String>, auth: Auth) -> GithubConfig {
        GithubConfig {
            api_url: api_url.into(),
            auth,
            retry: RetryPolicy::default(),
            per_minute: 80,
            per_hour: 500,
            timeout: Duration::from_secs(30),
            user_agent: format!("heal8s/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

impl Repo {
    /// Parse `owner/name`; both must be GitHub-safe names.
    pub fn parse(full: &str) -> Result<Repo, String> {
        let (owner, name) = full
            .split_once('/')
            .ok_or_else(|| format!("{full:?} is not owner/name"))?;
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if ok(owner) && ok(name) {
            Ok(Repo {
                owner: owner.to_string(),
                name: name.to_string(),
            })
        } else {
            Err(format!("{full:?} is not owner/name"))
        }
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub client setup: {0}")]
    Setup(String),
    #[error("GitHub request {method} {path} failed: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    #[error("GitHub answered {status} to {method} {path}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("GitHub rate limit on {method} {path}: gave up after {attempts} attempt(s)")]
    RateLimited {
        method: String,
        path: String,
        attempts: u32,
    },
}

/// What kind of call, for the retry policy and pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Read,
    /// A write that may be repeated safely (PATCH of a ref or body, labels).
    IdempotentWrite,
    /// A write that creates something (commit, pull request, comment): paced,
    /// and never repeated after a server error.
    Create,
}

/// A response: status, headers, JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// GitHub's `message` (and the first `errors[].message`).
    pub fn message(&self) -> String {
        let m = self.body["message"].as_str().unwrap_or("").to_string();
        match self.body["errors"][0]["message"].as_str() {
            Some(e) => format!("{m}: {e}"),
            None => m,
        }
    }
}

struct Installation {
    client: Octocrab,
    /// Writes go one at a time, paced.
    writes: Arc<Mutex<ContentBudget>>,
}

/// Call counts since the client was built.
#[derive(Debug, Default)]
pub struct Counters {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub retries: AtomicU64,
}

/// A GitHub client for one API endpoint and identity.
pub struct Github {
    config: GithubConfig,
    root: Octocrab,
    installations: Mutex<HashMap<String, Arc<Installation>>>,
    started: Instant,
    pub counters: Counters,
    /// Labels known to exist, per repository (`owner/name/label`).
    pub(crate) labels: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github")
            .field("api_url", &self.config.api_url)
            .field("auth", &self.config.auth)
            .finish()
    }
}

impl Github {
    pub fn new(config: GithubConfig) -> Result<Github, GithubError> {
        let root = octocrab_for(&config)?;
        Ok(Github {
            config,
            root,
            installations: Mutex::new(HashMap::new()),
            started: Instant::now(),
            counters: Counters::default(),
            labels: Mutex::new(std::collections::HashSet::new()),
        })
    }

    pub fn config(&self) -> &GithubConfig {
        &self.config
    }

    /// The client and write lane for a repository: its App installation (found
    /// once, then cached), or the token's.
    async fn installation(&self, repo: &Repo) -> Result<Arc<Installation>, GithubError> {
        let key = match self.config.auth {
            Auth::App { .. } => repo.owner.to_ascii_lowercase(),
            Auth::Token(_) => String::new(),
        };
        let mut map = self.installations.lock().await;
        if let Some(i) = map.get(&key) {
            return Ok(i.clone());
        }
        let budget = Arc::new(Mutex::new(ContentBudget::new(
            self.config.per_minute,
            self.config.per_hour,
        )));
        let client = match self.config.auth {
            Auth::Token(_) => self.root.clone(),
            Auth::App { .. } => {
                // the installation that covers this repository, with the App JWT
                let path = format!("/repos/{}/{}/installation", repo.owner, repo.name);
                let reply = self
                    .send(&self.root, http::Method::GET, &path, None, None)
                    .await?;
                if reply.status != 200 {
                    return Err(GithubError::Status {
                        method: "GET".into(),
                        path,
                        status: reply.status,
                        message: format!(
                            "the GitHub App is not installed on {repo}? {}",
                            reply.message()
                        ),
                    });
                }
                let id = reply.body["id"]
                    .as_u64()
                    .ok_or_else(|| GithubError::Status {
                        method: "GET".into(),
                        path: path.clone(),
                        status: reply.status,
                        message: "no installation id in the answer".into(),
                    })?;
                self.root
                    .installation(InstallationId(id))
                    .map_err(|e| GithubError::Setup(e.to_string()))?
            }
        };
        let inst = Arc::new(Installation {
            client,
            writes: budget,
        });
        map.insert(key, inst.clone());
        Ok(inst)
    }

    /// One request with the retry policy; the caller reads the status.
    pub async fn call(
        &self,
        repo: &Repo,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
        kind: CallKind,
    ) -> Result<Reply, GithubError> {
        self.call_with(repo, method, path, body, kind, None).await
    }

    /// A conditional GET: with the `etag` of an earlier answer, GitHub says
    /// 304 (and does not count it against the rate limit) when nothing changed.
    pub async fn get_if_changed(
        &self,
        repo: &Repo,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Reply, GithubError> {
        let headers = match etag.and_then(|e| http::HeaderValue::from_str(e).ok()) {
            Some(v) => {
                let mut h = http::HeaderMap::new();
                h.insert(http::header::IF_NONE_MATCH, v);
                Some(h)
            }
            None => None,
        };
        self.call_with(repo, http::Method::GET, path, None, CallKind::Read, headers)
            .await
    }

    async fn call_with(
        &self,
        repo: &Repo,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
        kind: CallKind,
        headers: Option<http::HeaderMap>,
    ) -> Result<Reply, GithubError> {
        let inst = self.installation(repo).await?;
        // writes hold the lane for the whole call, retries included
        let mut lane = match kind {
            CallKind::Read => None,
            _ => Some(inst.writes.lock().await),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let (Some(budget), CallKind::Create) = (lane.as_mut(), kind) {
                let wait = budget.wait(self.started.elapsed().as_secs_f64());
                if !wait.is_zero() {
                    tracing::info!(
                        wait_ms = wait.as_millis() as u64,
                        "pacing GitHub content creation"
                    );
                    tokio::time::sleep(wait).await;
                }
                budget.record(self.started.elapsed().as_secs_f64());
            }
            let reply = self
                .send(&inst.client, method.clone(), path, body, headers.clone())
                .await?;
            match kind {
                CallKind::Read => self.counters.reads.fetch_add(1, Ordering::Relaxed),
                _ => self.counters.writes.fetch_add(1, Ordering::Relaxed),
            };
            let now = jiff::Timestamp::now().as_second().max(0) as u64;
            let text = reply.body.to_string();
            let view = Response {
                status: reply.status,
                retry_after: reply.header("retry-after"),
                ratelimit_remaining: reply.header("x-ratelimit-remaining"),
                ratelimit_reset: reply.header("x-ratelimit-reset"),
                body: &text,
            };
            let idempotent = matches!(kind, CallKind::Read | CallKind::IdempotentWrite);
            match self.config.retry.decide(&view, attempt, idempotent, now) {
                Decision::Done => return Ok(reply),
                Decision::RetryAfter(wait) => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        status = reply.status,
                        %method,
                        path,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "GitHub asked heal8s to wait; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Decision::GiveUp if matches!(reply.status, 403 | 429) => {
                    return Err(GithubError::RateLimited {
                        method: method.to_string(),
                        path: path.to_string(),
                        attempts: attempt,
                    });
                }
                Decision::GiveUp => return Ok(reply),
            }
        }
    }

    async fn send(
        &self,
        client: &Octocrab,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
        headers: Option<http::HeaderMap>,
    ) -> Result<Reply, GithubError> {
        let transport = |e: octocrab::Error| GithubError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            message: e.to_string(),
        };
        let response = match method {
            http::Method::GET => client._get_with_headers(path, headers).await,
            http::Method::POST => client._post(path, body).await,
            http::Method::PUT => client._put(path, body).await,
            http::Method::PATCH => client._patch(path, body).await,
            http::Method::DELETE => client._delete(path, body).await,
            _ => {
                return Err(GithubError::Setup(format!("method {method} not used")));
            }
        }
        .map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| GithubError::Transport {
                method: method.to_string(),
                path: path.to_string(),
                message: e.to_string(),
            })?
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned())
            })
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// An octocrab client on a transport built here: octocrab's own builder
/// sends `User-Agent: octocrab` and appends extra headers to it, so a
/// second `User-Agent` would travel beside it. Same TLS (rustls, ring,
/// native roots) and timeouts as octocrab's default client.
fn octocrab_for(config: &GithubConfig) -> Result<Octocrab, GithubError> {
    use http::header::{ACCEPT, HeaderName, HeaderValue, USER_AGENT};
    use octocrab::service::middleware::{
        auth_header::AuthHeaderLayer, base_uri::BaseUriLayer, extra_headers::ExtraHeadersLayer,
    };
    let setup = |what: &str, e: &dyn std::fmt::Display| GithubError::Setup(format!("{what}: {e}"));
    let base: http::Uri = config
        .api_url
        .trim_end_matches('/')
        .parse()
        .map_err(|e| setup(&format!("API URL {:?}", config.api_url), &e))?;
    let upload: http::Uri = http::Uri::from_static("https://uploads.github.com");
    let header = |what: &str, v: &str| {
        HeaderValue::from_str(v).map_err(|e| setup(&format!("{what} header"), &e))
    };
    let headers = vec![
        (USER_AGENT, header("User-Agent", &config.user_agent)?),
        (
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        ),
        (
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static("2022-11-28"),
        ),
    ];
    let (auth_header, auth_state) = match &config.auth {
        Auth::App {
            app_id,
            private_key_pem,
        } => {
            let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
                .map_err(|e| setup("the App private key is not an RSA PEM key", &e))?;
            (
                None,
                octocrab::AuthState::App(octocrab::auth::AppAuth {
                    app_id: AppId(*app_id),
                    key,
                }),
            )
        }
        Auth::Token(token) => {
            let mut v = header("Authorization", &format!("Bearer {token}"))
                .map_err(|_| GithubError::Setup("the token is not a valid header value".into()))?;
            v.set_sensitive(true);
            (Some(v), octocrab::AuthState::None)
        }
    };
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| setup("TLS roots", &e))?
        .https_or_http()
        .enable_http1()
        .build();
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(Some(config.timeout));
    connector.set_read_timeout(Some(config.timeout));
    connector.set_write_timeout(Some(config.timeout));
    let transport =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    octocrab::OctocrabBuilder::new_empty()
        .with_service(transport)
        .with_layer(&ExtraHeadersLayer::new(Arc::new(headers)))
        .with_layer(&BaseUriLayer::new(base.clone()))
        .with_layer(&AuthHeaderLayer::new(auth_header, base, upload))
        .with_auth(auth_state)
        .build()
        .map_err(|e| setup("octocrab", &e))
}

/// Percent-encode a repository path or ref for a URL, keeping `/`.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encode a query value.
pub fn encode_query(value: &str) -> String {
    encode_path(value).replace('/', "%2F")
}
