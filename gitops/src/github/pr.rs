//! The pull request lifecycle, Renovate-style: one branch and one pull
//! request per (workload, remediation), found again by its head branch and
//! updated in place while the problem persists; a pull request closed without
//! merging means "not this one" for a while.
//!
//! Calls per operation (counted in tests and the benchmark):
//! - a new pull request changing one file: find (1) + base ref (1) + caps
//!   (1) + the file's blob on the base (1) + branch (1) + contents API commit
//!   (1) + open (1) + labels (1) = 8, plus the default branch (1) unless
//!   configured, and two calls per label the repository does not have yet
//!   (once per process);
//! - several files: the git data API instead of the contents API: the base
//!   commit's tree (1) + a tree with inline contents (1) + commit (1) + branch (1);
//! - an update with new content: find (1) + base ref (1) + branch content (1
//!   per file) + base tree (1) + tree (1) + commit (1) + force-move the
//!   branch (1) + body (1);
//! - an update with the same content: find (1) + base ref (1) + branch content
//!   (1 per file), and the body only when it changed.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::client::{CallKind, Github, GithubError, Reply, Repo, encode_path, encode_query};
use crate::locate::Files;

/// A file's new content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: String,
    pub text: String,
}

/// What the pull request should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrRequest {
    pub repo: Repo,
    /// The base branch; the repository's default branch when `None`.
    pub base: Option<String>,
    pub branch: String,
    pub files: Vec<NewFile>,
    pub title: String,
    pub body: String,
    pub commit_message: String,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    /// A pull request closed without merging suppresses new ones this long.
    pub ignore_closed_for: Duration,
    /// Caps on new pull requests: at most this many opened by heal8s in the
    /// last hour, and open at once (heal8s's branches, `heal8s/`). Updates of
    /// an open pull request are never capped.
    pub max_new_per_hour: Option<u32>,
    pub max_open: Option<u32>,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrAction {
    Created,
    /// New content or body on the open pull request.
    Updated,
    /// The open pull request already says all this.
    Unchanged,
    /// A pull request for this branch was closed without merging recently.
    Suppressed,
    /// A new pull request would exceed a cap: nothing was written; try later.
    Deferred,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrOutcome {
    pub action: PrAction,
    pub number: u64,
    pub url: String,
    pub branch: String,
    pub head_sha: String,
    /// GitHub calls this took.
    pub calls: u64,
}

/// The state of a pull request heal8s opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrState {
    pub number: u64,
    pub state: String,
    pub merged: bool,
    pub head_sha: String,
    pub merged_at: Option<String>,
    pub closed_at: Option<String>,
}

fn fail(method: &str, path: &str, r: &Reply) -> GithubError {
    GithubError::Status {
        method: method.to_string(),
        path: path.to_string(),
        status: r.status,
        message: r.message(),
    }
}

fn str_field(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

impl Github {
    fn calls(&self) -> u64 {
        use std::sync::atomic::Ordering;
        self.counters.reads.load(Ordering::Relaxed) + self.counters.writes.load(Ordering::Relaxed)
    }

    /// The repository's default branch.
    pub async fn default_branch(&self, repo: &Repo) -> Result<String, GithubError> {
        let path = format!("/repos/{}/{}", repo.owner, repo.name);
        let r = self
            .call(repo, http::Method::GET, &path, None, CallKind::Read)
            .await?;
        match (r.status, r.body["default_branch"].as_str()) {
            (200, Some(b)) => Ok(b.to_string()),
            _ => Err(fail("GET", &path, &r)),
        }
    }

    /// The commit a branch points at.
    pub async fn branch_sha(
        &self,
        repo: &Repo,
        branch: &str,
    ) -> Result<Option<String>, GithubError> {
        let path = format!(
            "/repos/{}/{}/git/ref/heads/{}",
            repo.owner,
            repo.name,
            encode_path(branch)
        );
        let r = self
            .call(repo, http::Method::GET, &path, None, CallKind::Read)
            .await?;
        match r.status {
            200 => Ok(Some(str_field(&r.body, "/object/sha"))),
            404 => Ok(None),
            _ => Err(fail("GET", &path, &r)),
        }
    }

    /// A file's text and blob sha at a ref, if it exists.
    pub async fn file(
        &self,
        repo: &Repo,
        path_in_repo: &str,
        reference: &str,
    ) -> Result<Option<(String, String)>, GithubError> {
        let path = format!(
            "/repos/{}/{}/contents/{}?ref={}",
            repo.owner,
            repo.name,
            encode_path(path_in_repo),
            encode_query(reference)
        );
        let r = self
            .call(repo, http::Method::GET, &path, None, CallKind::Read)
            .await?;
        match r.status {
            200 if r.body.is_object() => {
                let text = decode_base64(&str_field(&r.body, "/content"))
                    .ok_or_else(|| fail("GET", &path, &r))?;
                Ok(Some((text, str_field(&r.body, "/sha"))))
            }
            // a directory, or nothing there
            200 | 404 => Ok(None),
            _ => Err(fail("GET", &path, &r)),
        }
    }

    /// The YAML files of a ref (under `roots`, when given), read through the
    /// recursive tree and blobs, reusing `cache` (blob sha → text) so a second
    /// look reads only what changed.
    pub async fn yaml_files(
        &self,
        repo: &Repo,
        reference: &str,
        roots: &[String],
        cache: &mut BTreeMap<String, String>,
        max_files: usize,
    ) -> Result<Files, GithubError> {
        let path = format!(
            "/repos/{}/{}/git/trees/{}?recursive=1",
            repo.owner,
            repo.name,
            encode_path(reference)
        );
        let r = self
            .call(repo, http::Method::GET, &path, None, CallKind::Read)
            .await?;
        if r.status != 200 {
            return Err(fail("GET", &path, &r));
        }
        let mut files = Files::new();
        for entry in r.body["tree"].as_array().into_iter().flatten() {
            let (p, sha) = (str_field(entry, "/path"), str_field(entry, "/sha"));
            let yaml = p.ends_with(".yaml")
                || p.ends_with(".yml")
                || p.ends_with("/Kustomization")
                || p == "Kustomization";
            let under = roots.is_empty()
                || roots.iter().any(|root| {
                    let root = root.trim_matches('/');
                    root.is_empty() || p.starts_with(&format!("{root}/"))
                });
            if entry["type"].as_str() != Some("blob") || !yaml || !under {
                continue;
            }
            // larger than heal8s reads as YAML: skipped, never fetched
            // (the tree says each blob's size)
            if entry["size"]
                .as_u64()
                .is_some_and(|s| s > crate::yaml::MAX_FILE_BYTES as u64)
            {
                continue;
            }
            if files.len() >= max_files {
                return Err(GithubError::Status {
                    method: "GET".into(),
                    path,
                    status: 200,
                    message: format!(
                        "more than {max_files} YAML files: configure source rules or roots"
                    ),
                });
            }
            if let Some(text) = cache.get(&sha) {
                files.insert(p, text.clone());
                continue;
            }
            let blob = format!("/repos/{}/{}/git/blobs/{sha}", repo.owner, repo.name);
            let b = self
                .call(repo, http::Method::GET, &blob, None, CallKind::Read)
                .await?;
            if b.status != 200 {
                return Err(fail("GET", &blob, &b));
            }
            if let Some(text) = decode_base64(&str_field(&b.body, "/content"))
                .filter(|t| t.len() <= crate::yaml::MAX_FILE_BYTES)
            {
                cache.insert(sha, text.clone());
                files.insert(p, text);
            }
        }
        Ok(files)
    }

    /// Pull requests whose head is `branch` (newest first).
    async fn pulls_for(
        &self,
        repo: &Repo,
        branch: &str,
        state: &str,
    ) -> Result<Vec<Value>, GithubError> {
        let path = format!(
            "/repos/{}/{}/pulls?head={}&state={state}&per_page=10",
            repo.owner,
            repo.name,
            encode_query(&format!("{}:{branch}", repo.owner))
        );
        let r = self
            .call(repo, http::Method::GET, &path, None, CallKind::Read)
            .await?;
        if r.status != 200 {
            return Err(fail("GET", &path, &r));
        }
        let mut list: Vec<Value> = r.body.as_array().cloned().unwrap_or_default();
        list.sort_by_key(|p| std::cmp::Reverse(p["number"].as_u64().unwrap_or(0)));
        Ok(list)
    }

    /// A pull request's state (for noticing merges).
    pub async fn pull_state(&self, repo: &Repo, number: u64) -> Result<PrState, GithubError> {
        match self.pull_state_if_changed(repo, number, None).await? {
            Some((state, _)) => Ok(state),
            // no etag was sent, so GitHub cannot have said "not modified"
            None => Err(GithubError::Status {
                method: "GET".into(),
                path: format!("/repos/{repo}/pulls/{number}"),
                status: 304,
                message: "not modified without a condition".into(),
            }),
        }
    }

    /// A pull request's state if it changed since the answer that carried
    /// `etag` (`None`: unchanged, a 304 that costs no rate limit), with the
    /// new etag.
    pub async fn pull_state_if_changed(
        &self,
        repo: &Repo,
        number: u64,
        etag: Option<&str>,
    ) -> Result<Option<(PrState, Option<String>)>, GithubError> {
        let path = format!("/repos/{}/{}/pulls/{number}", repo.owner, repo.name);
        let r = self.get_if_changed(repo, &path, etag).await?;
        match r.status {
            304 => Ok(None),
            200 => Ok(Some((
                PrState {
                    number,
                    state: str_field(&r.body, "/state"),
                    merged: r.body["merged"].as_bool().unwrap_or(false)
                        || r.body["merged_at"].is_string(),
                    head_sha: str_field(&r.body, "/head/sha"),
                    merged_at: r.body["merged_at"].as_str().map(str::to_string),
                    closed_at: r.body["closed_at"].as_str().map(str::to_string),
                },
                r.header("etag").map(str::to_string),
            ))),
            _ => Err(fail("GET", &path, &r)),
        }
    }

    /// Open or update the pull request `req` describes.
    pub async fn ensure_pull_request(&self, req: &PrRequest) -> Result<PrOutcome, GithubError> {
        let start = self.calls();
        let repo = &req.repo;
        let base = match &req.base {
            Some(b) => b.clone(),
            None => self.default_branch(repo).await?,
        };
        let existing = self.pulls_for(repo, &req.branch, "all").await?;
        let open = existing
            .iter()
            .find(|p| p["state"].as_str() == Some("open"))
            .cloned();
        if open.is_none()
            && let Some(last) = existing.first()
            && last["merged_at"].is_null()
            && let Some(closed) = last["closed_at"].as_str()
            && recently(closed, req.ignore_closed_for)
        {
            return Ok(PrOutcome {
                action: PrAction::Suppressed,
                number: last["number"].as_u64().unwrap_or(0),
                url: str_field(last, "/html_url"),
                branch: req.branch.clone(),
                head_sha: str_field(last, "/head/sha"),
                calls: self.calls() - start,
            });
        }
        let base_sha = self
            .branch_sha(repo, &base)
            .await?
            .ok_or_else(|| GithubError::Status {
                method: "GET".into(),
                path: format!("heads/{base}"),
                status: 404,
                message: format!("the base branch {base} does not exist"),
            })?;
        if let Some(pr) = open {
            return self.update(req, &base_sha, &pr, start).await;
        }
        if let Some(why) = self.over_cap(req).await? {
            tracing::info!(branch = %req.branch, why, "new pull request deferred");
            return Ok(PrOutcome {
                action: PrAction::Deferred,
                number: 0,
                url: String::new(),
                branch: req.branch.clone(),
                head_sha: String::new(),
                calls: self.calls() - start,
            });
        }
        // a new pull request; the branch may be left over from an attempt
        // cut off before the pull request was opened
        // (creating the branch moves one left by a cut-off run back to the base)
        let head_sha = if req.files.len() == 1 {
            self.create_branch_with_file(req, &base, &base_sha).await?
        } else {
            let commit = self.commit_files(req, &base_sha).await?;
            self.create_ref(repo, &req.branch, &commit).await?;
            commit
        };
        let path = format!("/repos/{}/{}/pulls", repo.owner, repo.name);
        let body = json!({"title": req.title, "head": req.branch, "base": base, "body": req.body, "maintainer_can_modify": false});
        let r = self
            .call(
                repo,
                http::Method::POST,
                &path,
                Some(&body),
                CallKind::Create,
            )
            .await?;
        let pr = match r.status {
            201 => r.body,
            422 if r.message().contains("already exists") => {
                // another replica (or a lost answer) opened it: that is success
                self.pulls_for(repo, &req.branch, "open")
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| fail("POST", &path, &r))?
            }
            _ => return Err(fail("POST", &path, &r)),
        };
        let number = pr["number"].as_u64().unwrap_or(0);
        self.decorate(req, number).await?;
        Ok(PrOutcome {
            action: PrAction::Created,
            number,
            url: str_field(&pr, "/html_url"),
            branch: req.branch.clone(),
            head_sha,
            calls: self.calls() - start,
        })
    }

    async fn update(
        &self,
        req: &PrRequest,
        base_sha: &str,
        pr: &Value,
        start: u64,
    ) -> Result<PrOutcome, GithubError> {
        let repo = &req.repo;
        let number = pr["number"].as_u64().unwrap_or(0);
        let mut head_sha = str_field(pr, "/head/sha");
        let mut same = true;
        for f in &req.files {
            let now = self.file(repo, &f.path, &req.branch).await?;
            if now.map(|(text, _)| text) != Some(f.text.clone()) {
                same = false;
                break;
            }
        }
        let mut action = PrAction::Unchanged;
        if !same {
            // rebuild the branch on the current base, in one commit
            let commit = self.commit_files(req, base_sha).await?;
            self.move_branch(repo, &req.branch, &commit).await?;
            head_sha = commit;
            action = PrAction::Updated;
        }
        // a new signal's trace id alone does not rewrite the pull request
        if pr["body"]
            .as_str()
            .is_none_or(|b| !super::text::same_apart_from_trace(b, &req.body))
            || pr["title"].as_str() != Some(req.title.as_str())
        {
            let path = format!("/repos/{}/{}/pulls/{number}", repo.owner, repo.name);
            let r = self
                .call(
                    repo,
                    http::Method::PATCH,
                    &path,
                    Some(&json!({"title": req.title, "body": req.body})),
                    CallKind::IdempotentWrite,
                )
                .await?;
            if r.status != 200 {
                return Err(fail("PATCH", &path, &r));
            }
            action = PrAction::Updated;
        }
        Ok(PrOutcome {
            action,
            number,
            url: str_field(pr, "/html_url"),
            branch: req.branch.clone(),
            head_sha,
            calls: self.calls() - start,
        })
    }

    /// Whether one more heal8s pull request would exceed a cap (one list call,
    /// from GitHub itself, so the caps hold across restarts and replicas).
    async fn over_cap(&self, req: &PrRequest) -> Result<Option<String>, GithubError> {
        if req.max_new_per_hour.is_none() && req.max_open.is_none() {
            return Ok(None);
        }
        let repo = &req.repo;
        let path = format!(
            "/repos/{}/{}/pulls?state=all&sort=created&direction=desc&per_page=100",
            repo.owner, repo.name
        );
        let r = self
            .call(repo, http::Method::GET, &path, None, CallKind::Read)
            .await?;
        if r.status != 200 {
            return Err(fail("GET", &path, &r));
        }
        let ours: Vec<&Value> = r
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["head"]["ref"]
                    .as_str()
                    .is_some_and(|h| h.starts_with("heal8s/"))
            })
            .collect();
        let open = ours
            .iter()
            .filter(|p| p["state"].as_str() == Some("open"))
            .count();
        if let Some(max) = req.max_open
            && open >= max as usize
        {
            return Ok(Some(format!(
                "{open} heal8s pull requests are open (maxOpen {max})"
            )));
        }
        let hour = Duration::from_secs(3600);
        let recent = ours
            .iter()
            .filter(|p| p["created_at"].as_str().is_some_and(|t| recently(t, hour)))
            .count();
        if let Some(max) = req.max_new_per_hour
            && recent >= max as usize
        {
            return Ok(Some(format!(
                "{recent} heal8s pull requests were opened in the last hour (maxNewPerHour {max})"
            )));
        }
        Ok(None)
    }

    /// Create heal8s's labels (with a colour and a description) where they do
    /// not exist yet; once per label and process.
    async fn ensure_labels(&self, repo: &Repo, labels: &[String]) -> Result<(), GithubError> {
        for label in labels {
            let key = format!("{repo}/{label}");
            if self.labels.lock().await.contains(&key) {
                continue;
            }
            let path = format!(
                "/repos/{}/{}/labels/{}",
                repo.owner,
                repo.name,
                encode_path(label)
            );
            let r = self
                .call(repo, http::Method::GET, &path, None, CallKind::Read)
                .await?;
            if r.status == 404 {
                let create = format!("/repos/{}/{}/labels", repo.owner, repo.name);
                let description = match label.as_str() {
                    "heal8s" => "Opened by heal8s".to_string(),
                    l if l.starts_with("env:") => format!("heal8s: applies to {}", &l[4..]),
                    l => format!("heal8s remediation {l}"),
                };
                let body = json!({"name": label, "color": "0e8a16", "description": description});
                let r = self
                    .call(
                        repo,
                        http::Method::POST,
                        &create,
                        Some(&body),
                        CallKind::Create,
                    )
                    .await?;
                // 422: created meanwhile by someone else
                if r.status != 201 && r.status != 422 {
                    return Err(fail("POST", &create, &r));
                }
            } else if r.status != 200 {
                return Err(fail("GET", &path, &r));
            }
            self.labels.lock().await.insert(key);
        }
        Ok(())
    }

    /// Labels, reviewers, assignees of a new pull request.
    async fn decorate(&self, req: &PrRequest, number: u64) -> Result<(), GithubError> {
        let repo = &req.repo;
        if !req.labels.is_empty() {
            self.ensure_labels(repo, &req.labels).await?;
            let path = format!("/repos/{}/{}/issues/{number}/labels", repo.owner, repo.name);
            let r = self
                .call(
                    repo,
                    http::Method::POST,
                    &path,
                    Some(&json!({"labels": req.labels})),
                    CallKind::IdempotentWrite,
                )
                .await?;
            if r.status != 200 {
                return Err(fail("POST", &path, &r));
            }
        }
        // a reviewer or assignee GitHub refuses is not worth failing the fix
        let people = [
            ("pulls", "requested_reviewers", "reviewers", &req.reviewers),
            ("issues", "assignees", "assignees", &req.assignees),
        ];
        for (kind, endpoint, field, who) in people {
            if who.is_empty() {
                continue;
            }
            let path = format!(
                "/repos/{}/{}/{kind}/{number}/{endpoint}",
                repo.owner, repo.name
            );
            let r = self
                .call(
                    repo,
                    http::Method::POST,
                    &path,
                    Some(&json!({ field: who })),
                    CallKind::IdempotentWrite,
                )
                .await?;
            if r.status != 201 {
                tracing::warn!(status = r.status, message = %r.message(), "setting {field} failed");
            }
        }
        Ok(())
    }

    /// New branch at `base_sha`, then one contents-API commit on it: two calls
    /// for the common one-file fix.
    async fn create_branch_with_file(
        &self,
        req: &PrRequest,
        base: &str,
        base_sha: &str,
    ) -> Result<String, GithubError> {
        let repo = &req.repo;
        let Some(file) = req.files.first() else {
            return Err(GithubError::Setup("a pull request needs a file".into()));
        };
        // the blob the file has on the base, for the contents API's check
        let blob = self.file(repo, &file.path, base).await?.map(|(_, sha)| sha);
        self.create_ref(repo, &req.branch, base_sha).await?;
        let path = format!(
            "/repos/{}/{}/contents/{}",
            repo.owner,
            repo.name,
            encode_path(&file.path)
        );
        let mut body = json!({
            "message": req.commit_message,
            "content": base64::engine::general_purpose::STANDARD.encode(file.text.as_bytes()),
            "branch": req.branch,
        });
        if let Some(sha) = blob {
            body["sha"] = json!(sha);
        }
        let r = self
            .call(
                repo,
                http::Method::PUT,
                &path,
                Some(&body),
                CallKind::Create,
            )
            .await?;
        match r.status {
            200 | 201 => Ok(str_field(&r.body, "/commit/sha")),
            _ => Err(fail("PUT", &path, &r)),
        }
    }

    /// One commit on `parent` holding every file (git data API, contents
    /// inline in the tree): three calls (the parent's tree, the new tree, the
    /// commit) whatever the number of files.
    async fn commit_files(&self, req: &PrRequest, parent: &str) -> Result<String, GithubError> {
        let repo = &req.repo;
        // the parent's tree is the base of the new one
        let commit_path = format!("/repos/{}/{}/git/commits/{parent}", repo.owner, repo.name);
        let r = self
            .call(repo, http::Method::GET, &commit_path, None, CallKind::Read)
            .await?;
        if r.status != 200 {
            return Err(fail("GET", &commit_path, &r));
        }
        let base_tree = str_field(&r.body, "/tree/sha");
        let tree_path = format!("/repos/{}/{}/git/trees", repo.owner, repo.name);
        let entries: Vec<Value> = req
            .files
            .iter()
            .map(|f| json!({"path": f.path, "mode": "100644", "type": "blob", "content": f.text}))
            .collect();
        let r = self
            .call(
                repo,
                http::Method::POST,
                &tree_path,
                Some(&json!({"base_tree": base_tree, "tree": entries})),
                CallKind::Create,
            )
            .await?;
        if r.status != 201 {
            return Err(fail("POST", &tree_path, &r));
        }
        let tree = str_field(&r.body, "/sha");
        let path = format!("/repos/{}/{}/git/commits", repo.owner, repo.name);
        let r = self
            .call(
                repo,
                http::Method::POST,
                &path,
                Some(&json!({"message": req.commit_message, "tree": tree, "parents": [parent]})),
                CallKind::Create,
            )
            .await?;
        match r.status {
            201 => Ok(str_field(&r.body, "/sha")),
            _ => Err(fail("POST", &path, &r)),
        }
    }

    async fn create_ref(&self, repo: &Repo, branch: &str, sha: &str) -> Result<(), GithubError> {
        let path = format!("/repos/{}/{}/git/refs", repo.owner, repo.name);
        let r = self
            .call(
                repo,
                http::Method::POST,
                &path,
                Some(&json!({"ref": format!("refs/heads/{branch}"), "sha": sha})),
                CallKind::Create,
            )
            .await?;
        match r.status {
            201 => Ok(()),
            // made by an attempt whose answer was lost: point it where we want
            422 if r.message().contains("already exists") => {
                self.move_branch(repo, branch, sha).await
            }
            _ => Err(fail("POST", &path, &r)),
        }
    }

    async fn move_branch(&self, repo: &Repo, branch: &str, sha: &str) -> Result<(), GithubError> {
        let path = format!(
            "/repos/{}/{}/git/refs/heads/{}",
            repo.owner,
            repo.name,
            encode_path(branch)
        );
        let r = self
            .call(
                repo,
                http::Method::PATCH,
                &path,
                Some(&json!({"sha": sha, "force": true})),
                CallKind::IdempotentWrite,
            )
            .await?;
        match r.status {
            200 => Ok(()),
            _ => Err(fail("PATCH", &path, &r)),
        }
    }
}

/// Whether an RFC 3339 time lies within `window` of now.
fn recently(at: &str, window: Duration) -> bool {
    let Ok(t) = at.parse::<jiff::Timestamp>() else {
        return false;
    };
    let age = jiff::Timestamp::now().duration_since(t);
    age.as_secs_f64() < window.as_secs_f64()
}

fn decode_base64(content: &str) -> Option<String> {
    let clean: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(clean)
        .ok()?;
    String::from_utf8(bytes).ok()
}
