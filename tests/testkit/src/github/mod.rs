//! GitHub REST API emulation for tests: a stateful, plain-HTTP server on
//! loopback, in-process ([`GithubEmulator::start`]) or standalone
//! (`testkit github`), that GitHub clients talk to with the emulator's URL as
//! their API base (`{url}/repos/...`). It keeps real git data (blobs, trees
//! and commits with real git object ids, branches), pull requests with their
//! labels, comments, assignees and reviewers, and enforces GitHub App
//! authentication (RS256 App JWT -> installation token) or personal access
//! tokens. Tests set up and inspect repositories through the store API
//! (`create_repo`, `put_files`, `file`, `pulls`, `merge_pull`...), inject
//! faults ([`GithubEmulator::faults`]: rate limits, 5xx) and read the request
//! log.
//!
//! Response objects start from the examples of GitHub's official OpenAPI
//! description (`@octokit/openapi`, api.github.com.json, MIT licence, copyright
//! GitHub), extracted by `templates/extract.py`; `tests/e2e/tests/github_contract.rs`
//! checks requests and answers against that description through Prism.
//!
//! Deliberate differences from GitHub:
//! - one owner per repository, no forks: a PR's head is a branch of the same repository;
//! - merges are file-level three-way merges (a file changed on both sides is a
//!   conflict); `rebase` merges like `squash`; no checks, reviews or branch protection;
//! - pull-request issue numbers exist only for pull requests (no plain issues);
//!   labels are created on first use with colour `ededed`;
//! - one primary rate-limit window per credential (installation, PAT user,
//!   anonymous), counting every request but `304`s and `/rate_limit`;
//! - `download_url` of files points at the emulator (`/_raw/{owner}/{repo}/{commit}/{path}`).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod error;
mod faults;
mod git;
mod http;
mod prism;
mod render;
mod sha1;
mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use jsonwebtoken::DecodingKey;

pub use auth::{app_jwt, app_jwt_with};
pub use error::ApiError;
pub use faults::{Fault, FaultId, Faults, RequestMatch, RequestRecord};
pub use prism::PrismProxy;

use faults::FaultState;
use render::Urls;
use store::{MergeRequest, PullUpdate, State, now, signature_of};

/// The App id the emulator expects by default (the committed test key's App).
pub const TEST_APP_ID: u64 = 12345;
/// Test-only App private key (`tests/testkit/fixtures/test-app-key.pem`, PKCS#8).
pub const TEST_APP_KEY_PEM: &str = include_str!("../../fixtures/test-app-key.pem");
/// Its public key, which the emulator trusts by default.
pub const TEST_APP_PUBLIC_KEY_PEM: &str = include_str!("../../fixtures/test-app-key.pub.pem");
/// Another RSA key: JWTs signed with it must be refused.
pub const WRONG_APP_KEY_PEM: &str = include_str!("../../fixtures/wrong-app-key.pem");

/// Tunables of a GitHub emulator.
#[derive(Debug, Clone)]
pub struct GithubOptions {
    /// The GitHub App's id: App JWTs must carry it as `iss`.
    pub app_id: u64,
    /// The App's RSA public key (PEM); `None` refuses every App JWT.
    pub app_public_key_pem: Option<String>,
    /// The App's slug; installation tokens act as `<slug>[bot]`.
    pub app_slug: String,
    /// Installation of repositories created without one (standalone) and
    /// always present even without repositories.
    pub default_installation_id: u64,
    /// Lifetime of installation tokens (GitHub: one hour).
    pub token_lifetime: Duration,
    /// Personal access tokens accepted for every repository.
    pub pats: Vec<String>,
    /// The user PATs act as.
    pub pat_login: String,
    /// Primary rate limit per credential and hour (GitHub: 5000).
    pub rate_limit: u64,
    /// Web base for `html_url`s (API URLs always use the emulator's own URL).
    pub html_url: String,
    /// Requests kept in the request log (the count keeps going past it).
    pub request_log_capacity: usize,
    /// Print every request (`METHOD path?query -> status [who]`) on stderr.
    pub log_requests: bool,
}

impl Default for GithubOptions {
    fn default() -> Self {
        GithubOptions {
            app_id: TEST_APP_ID,
            app_public_key_pem: Some(TEST_APP_PUBLIC_KEY_PEM.to_string()),
            app_slug: "heal8s".into(),
            default_installation_id: 1,
            token_lifetime: Duration::from_secs(3600),
            pats: Vec::new(),
            pat_login: "heal8s-dev".into(),
            rate_limit: 5000,
            html_url: "https://github.com".into(),
            request_log_capacity: 100_000,
            log_requests: false,
        }
    }
}

/// State shared by the HTTP handlers and the emulator handle.
pub(crate) struct Shared {
    state: Mutex<State>,
    faults: Arc<FaultState>,
    options: GithubOptions,
    app_key: Option<DecodingKey>,
    urls: Urls,
    request_seq: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("options", &self.options)
            .field("api", &self.urls.api)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pull request as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSnapshot {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    /// `open` or `closed`.
    pub state: String,
    pub merged: bool,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub requested_reviewers: Vec<String>,
    /// Comment bodies, oldest first.
    pub comments: Vec<String>,
    /// Who opened it (`heal8s[bot]` for installation tokens).
    pub user: String,
}

/// A commit as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    pub message: String,
    pub author: String,
    pub parents: Vec<String>,
}

/// A running GitHub REST API emulation on `127.0.0.1`.
#[derive(Debug)]
pub struct GithubEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

fn pull_snapshot(p: &store::Pull) -> PullSnapshot {
    PullSnapshot {
        number: p.number,
        title: p.title.clone(),
        body: p.body.clone(),
        state: if p.open { "open" } else { "closed" }.into(),
        merged: p.merged,
        head_ref: p.head_ref.clone(),
        head_sha: p.head_sha.clone(),
        base_ref: p.base_ref.clone(),
        labels: p.labels.clone(),
        assignees: p.assignees.clone(),
        requested_reviewers: p.requested_reviewers.clone(),
        comments: p.comments.iter().map(|c| c.body.clone()).collect(),
        user: p.user.clone(),
    }
}

impl GithubEmulator {
    /// Start on a free loopback port with default options (in a spawned tokio task).
    pub async fn start() -> anyhow::Result<GithubEmulator> {
        GithubEmulator::start_with(GithubOptions::default()).await
    }

    /// Start on a free loopback port.
    pub async fn start_with(options: GithubOptions) -> anyhow::Result<GithubEmulator> {
        GithubEmulator::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// Start on `addr` (port 0 picks a free port).
    pub async fn start_on(
        addr: SocketAddr,
        options: GithubOptions,
    ) -> anyhow::Result<GithubEmulator> {
        let app_key = match &options.app_public_key_pem {
            None => None,
            Some(pem) => Some(
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| anyhow!("the App public key is not an RSA PEM key: {e}"))?,
            ),
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind {addr}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            faults: Arc::new(FaultState::new(options.request_log_capacity)),
            urls: Urls {
                api: format!("http://{addr}"),
                html: options.html_url.trim_end_matches('/').to_string(),
            },
            options,
            app_key,
            request_seq: AtomicU64::new(1),
        });
        let tx =
            crate::serve_in_background(listener, http::router(shared.clone()), "GitHub emulator");
        tracing::debug!(%addr, "The GitHub emulator is listening.");
        Ok(GithubEmulator {
            shared,
            addr,
            shutdown: Some(tx),
        })
    }

    /// `http://127.0.0.1:PORT`: the API base URL for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fault injection for the HTTP API.
    pub fn faults(&self) -> Faults {
        Faults {
            state: self.shared.faults.clone(),
        }
    }

    /// Every request served so far (the most recent [`GithubOptions::request_log_capacity`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.faults.log.requests()
    }

    /// Number of requests served since start (not capped).
    pub fn request_count(&self) -> u64 {
        self.shared.faults.log.count()
    }

    /// Empty the request log (the count is kept).
    pub fn clear_requests(&self) {
        self.shared.faults.log.clear()
    }

    /// Installation tokens issued through the API so far.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.lock().tokens_issued
    }

    /// Make every installation token issued so far expire now (the next
    /// request with one gets 401 `Bad credentials`).
    pub fn expire_tokens(&self) {
        let t = now();
        for tok in self.shared.lock().tokens.values_mut() {
            tok.expires_at = t;
        }
    }

    /// Issue an installation token without the App JWT dance (not counted in
    /// [`GithubEmulator::tokens_issued`]).
    pub fn installation_token(&self, installation_id: u64) -> String {
        let mut st = self.shared.lock();
        let seed = format!(
            "store:{installation_id}:{}:{}",
            st.tokens.len(),
            jiff::Timestamp::now().as_nanosecond()
        );
        let lifetime = self.shared.options.token_lifetime;
        st.issue_token(&seed, lifetime, installation_id, None).0
    }

    /// Create an empty repository `owner/name` (default branch `main`, no
    /// commits yet) in `installation_id`.
    pub fn create_repo(&self, owner: &str, name: &str, installation_id: u64) -> anyhow::Result<()> {
        Ok(self
            .shared
            .lock()
            .create_repo(owner, name, installation_id)?)
    }

    /// Commit `files` (path, text) to `branch` of `repo` (`owner/name`) as
    /// the repository owner; the branch starts from the default branch (or
    /// as the first commit) when missing. The new commit's id.
    pub fn put_files(
        &self,
        repo: &str,
        branch: &str,
        files: &[(&str, &str)],
        message: &str,
    ) -> anyhow::Result<String> {
        let mut st = self.shared.lock();
        let rp = st.repo_mut(repo).map_err(|e| anyhow!("{repo}: {e}"))?;
        let changes: Vec<(String, Option<Vec<u8>>)> = files
            .iter()
            .map(|(p, c)| {
                let p = p.trim_matches('/');
                if git::valid_path(p) {
                    Ok((p.to_string(), Some(c.as_bytes().to_vec())))
                } else {
                    Err(anyhow!("invalid path {p:?}"))
                }
            })
            .collect::<anyhow::Result<_>>()?;
        let author = signature_of(&rp.owner.clone(), now());
        Ok(rp.commit_changes(branch, &changes, message, author)?)
    }

    /// The text of `path` on `branch` (or a commit id), if the file exists.
    pub fn file(&self, repo: &str, branch: &str, path: &str) -> Option<String> {
        let st = self.shared.lock();
        let rp = st.repo(repo).ok()?;
        let commit = rp.resolve_commit(branch)?;
        let (_, data) = rp.file_at(&commit, path.trim_matches('/'))?;
        String::from_utf8(data).ok()
    }

    /// Every file path on `branch`, sorted.
    pub fn files(&self, repo: &str, branch: &str) -> Vec<String> {
        let st = self.shared.lock();
        let Ok(rp) = st.repo(repo) else {
            return Vec::new();
        };
        let Some(tree) = rp
            .resolve_commit(branch)
            .and_then(|c| rp.odb.commit_tree(&c))
        else {
            return Vec::new();
        };
        rp.odb.flatten(&tree).into_keys().collect()
    }

    /// Branch names of `repo`, sorted.
    pub fn branches(&self, repo: &str) -> Vec<String> {
        let st = self.shared.lock();
        st.repo(repo).map(|rp| rp.branches()).unwrap_or_default()
    }

    /// The commit `branch` points at.
    pub fn branch_sha(&self, repo: &str, branch: &str) -> Option<String> {
        let st = self.shared.lock();
        st.repo(repo).ok()?.branch(branch).cloned()
    }

    /// Commits reachable from `branch`, newest first (empty when it does not exist).
    pub fn commits_on(&self, repo: &str, branch: &str) -> Vec<CommitInfo> {
        let st = self.shared.lock();
        let Ok(rp) = st.repo(repo) else {
            return Vec::new();
        };
        let Some(head) = rp.branch(branch) else {
            return Vec::new();
        };
        let mut out: Vec<(jiff::Timestamp, CommitInfo)> = rp
            .odb
            .ancestors(head)
            .into_iter()
            .filter_map(|sha| {
                rp.odb.commit(&sha).map(|c| {
                    (
                        c.committer.date,
                        CommitInfo {
                            sha: sha.clone(),
                            message: c.message.clone(),
                            author: c.author.name.clone(),
                            parents: c.parents.clone(),
                        },
                    )
                })
            })
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.sha.cmp(&b.1.sha)));
        // Same-second commits: children before parents.
        let mut ordered: Vec<CommitInfo> = Vec::with_capacity(out.len());
        let mut pending: Vec<CommitInfo> = out.into_iter().map(|(_, c)| c).collect();
        while !pending.is_empty() {
            let pos = pending
                .iter()
                .position(|c| !pending.iter().any(|other| other.parents.contains(&c.sha)))
                .unwrap_or(0);
            ordered.push(pending.remove(pos));
        }
        ordered
    }

    /// Every pull request of `repo`, by number.
    pub fn pulls(&self, repo: &str) -> Vec<PullSnapshot> {
        let st = self.shared.lock();
        st.repo(repo)
            .map(|rp| rp.pulls.values().map(pull_snapshot).collect())
            .unwrap_or_default()
    }

    /// One pull request.
    pub fn pull(&self, repo: &str, number: u64) -> Option<PullSnapshot> {
        let st = self.shared.lock();
        st.repo(repo).ok()?.pulls.get(&number).map(pull_snapshot)
    }

    /// Merge a pull request as the repository owner (a merge commit on the
    /// base branch); the merge commit's id.
    pub fn merge_pull(&self, repo: &str, number: u64) -> anyhow::Result<String> {
        let mut st = self.shared.lock();
        let rp = st.repo_mut(repo)?;
        let owner = rp.owner.clone();
        Ok(rp.merge_pull(number, &owner, MergeRequest::default())?)
    }

    /// Close a pull request without merging.
    pub fn close_pull(&self, repo: &str, number: u64) -> anyhow::Result<()> {
        self.set_pull_open(repo, number, false)
    }

    /// Reopen a closed, unmerged pull request.
    pub fn reopen_pull(&self, repo: &str, number: u64) -> anyhow::Result<()> {
        self.set_pull_open(repo, number, true)
    }

    fn set_pull_open(&self, repo: &str, number: u64, open: bool) -> anyhow::Result<()> {
        let mut st = self.shared.lock();
        Ok(st.repo_mut(repo)?.update_pull(
            number,
            PullUpdate {
                open: Some(open),
                ..PullUpdate::default()
            },
        )?)
    }

    /// Stop serving.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for GithubEmulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What `testkit github` serves.
#[derive(Debug, Clone, Default)]
pub struct StandaloneOptions {
    /// Port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// The App id (default [`TEST_APP_ID`]).
    pub app_id: Option<u64>,
    /// The App's public key file (default: the committed test key).
    pub app_public_key: Option<PathBuf>,
    /// Accepted personal access tokens.
    pub pats: Vec<String>,
    /// `owner/name` or `owner/name=DIR` (main seeded with DIR's YAML files).
    pub repos: Vec<String>,
    /// Installation the repositories belong to.
    pub installation_id: u64,
    /// Print every request on stderr.
    pub log_requests: bool,
}

/// The YAML files under `dir` (relative paths, hidden directories skipped).
fn yaml_files(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?;
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                let rel = path
                    .strip_prefix(dir)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                out.push((rel, text));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Run a standalone emulator until SIGTERM or SIGINT; prints its URL on stdout.
pub async fn serve_standalone(opts: StandaloneOptions) -> anyhow::Result<()> {
    let mut options = GithubOptions {
        app_id: opts.app_id.unwrap_or(TEST_APP_ID),
        pats: opts.pats.clone(),
        log_requests: opts.log_requests,
        default_installation_id: opts.installation_id,
        ..GithubOptions::default()
    };
    if let Some(path) = &opts.app_public_key {
        options.app_public_key_pem = Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
    }
    let mut emu =
        GithubEmulator::start_on(SocketAddr::from(([127, 0, 0, 1], opts.port)), options).await?;
    for spec in &opts.repos {
        let (full, dir) = match spec.split_once('=') {
            Some((f, d)) => (f, Some(PathBuf::from(d))),
            None => (spec.as_str(), None),
        };
        let (owner, name) = full
            .split_once('/')
            .ok_or_else(|| anyhow!("--repo wants owner/name[=dir], got {spec:?}"))?;
        emu.create_repo(owner, name, opts.installation_id)?;
        if let Some(dir) = dir {
            let files = yaml_files(&dir)?;
            if files.is_empty() {
                bail!("no YAML files under {}", dir.display());
            }
            let refs: Vec<(&str, &str)> = files
                .iter()
                .map(|(p, t)| (p.as_str(), t.as_str()))
                .collect();
            emu.put_files(full, "main", &refs, "Initial commit")?;
        }
    }
    crate::kube::print_url_and_wait(&emu.url()).await?;
    emu.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests;
