//! The emulation's state: repositories (refs, objects, pull requests,
//! labels), installation tokens and rate-limit windows, with the operations
//! the HTTP API and the store API share. Every rule GitHub enforces on a
//! write lives here, so both faces behave the same.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde_json::{Value, json};

use super::auth;
use super::error::ApiError;
use super::git::{self, Commit, Flat, Leaf, MODE_FILE, Odb, Signature};
use super::sha1;

/// Now, to the second (GitHub's timestamps have no fractions).
pub(crate) fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A stable numeric id for a login (GitHub user ids are just numbers to clients).
pub(crate) fn user_id(login: &str) -> u64 {
    let d = sha1::digest(login.to_ascii_lowercase().as_bytes());
    1000 + u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 90_000_000)
}

/// The noreply address GitHub gives a login.
pub(crate) fn noreply_email(login: &str) -> String {
    format!("{}+{login}@users.noreply.github.com", user_id(login))
}

/// A signature for `login` at `date`.
pub(crate) fn signature_of(login: &str, date: Timestamp) -> Signature {
    Signature {
        name: login.to_string(),
        email: noreply_email(login),
        date,
    }
}

/// A label defined in a repository.
#[derive(Debug, Clone)]
pub(crate) struct Label {
    pub id: u64,
    pub name: String,
    pub color: String,
    pub description: Option<String>,
}

/// An issue comment.
#[derive(Debug, Clone)]
pub(crate) struct Comment {
    pub id: u64,
    pub body: String,
    pub user: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A pull request.
#[derive(Debug, Clone)]
pub(crate) struct Pull {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub open: bool,
    pub draft: bool,
    pub merged: bool,
    pub merged_at: Option<Timestamp>,
    pub merged_by: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub closed_at: Option<Timestamp>,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    /// The base branch's commit when last seen (kept once closed).
    pub base_sha: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub requested_reviewers: Vec<String>,
    pub comments: Vec<Comment>,
    pub user: String,
    pub maintainer_can_modify: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One repository.
#[derive(Debug)]
pub(crate) struct Repo {
    pub owner: String,
    pub name: String,
    pub id: u64,
    pub installation_id: u64,
    pub default_branch: String,
    /// Full ref names (`refs/heads/main`) to commit ids.
    pub refs: BTreeMap<String, String>,
    pub odb: Odb,
    pub pulls: BTreeMap<u64, Pull>,
    pub labels: BTreeMap<String, Label>,
    pub next_number: u64,
    pub created_at: Timestamp,
    pub pushed_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Who a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    Anonymous,
    /// A valid App JWT.
    App,
    /// An installation token (restricted to some repositories, lowercase names, if `repos`).
    Installation {
        id: u64,
        repos: Option<BTreeSet<String>>,
    },
    /// A personal access token of `login`.
    Pat {
        login: String,
    },
}

/// An issued installation token.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub installation_id: u64,
    pub expires_at: Timestamp,
    pub repos: Option<BTreeSet<String>>,
}

/// A primary rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateWindow {
    pub limit: u64,
    pub used: u64,
    /// Epoch seconds when the window resets.
    pub reset: i64,
}

impl RateWindow {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// Parameters of a new pull request.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewPull {
    pub title: String,
    pub body: Option<String>,
    pub head: String,
    pub base: String,
    pub draft: bool,
    pub maintainer_can_modify: bool,
}

/// Changes to a pull request (PATCH).
#[derive(Debug, Clone, Default)]
pub(crate) struct PullUpdate {
    pub title: Option<String>,
    pub body: Option<Option<String>>,
    pub open: Option<bool>,
    pub base: Option<String>,
    pub maintainer_can_modify: Option<bool>,
}

/// How to merge a pull request (PUT merge).
#[derive(Debug, Clone, Default)]
pub(crate) struct MergeRequest {
    pub commit_title: Option<String>,
    pub commit_message: Option<String>,
    pub sha: Option<String>,
    /// `merge` (default), `squash` or `rebase`.
    pub method: Option<String>,
}

/// Everything the emulation stores.
#[derive(Debug, Default)]
pub(crate) struct State {
    repos: BTreeMap<String, Repo>,
    pub tokens: HashMap<String, Token>,
    pub tokens_issued: u64,
    next_id: u64,
    next_repo_id: u64,
    pub rate: HashMap<String, RateWindow>,
}

fn key(full_name: &str) -> String {
    full_name.to_ascii_lowercase()
}

/// `refs/heads/<branch>`.
pub(crate) fn branch_ref(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

/// Whether `name` is a usable ref name below `refs/` (git's main rules).
pub(crate) fn valid_ref(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("refs/") else {
        return false;
    };
    rest.contains('/')
        && rest.split('/').all(|c| {
            !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock") && !c.ends_with('.')
        })
        && !name.contains("..")
        && !name.contains("@{")
        && !name
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
}

const CREATE_PULL_DOC: &str = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";

/// 422 `Validation Failed`: a pull request's `field` (head or base) is not a branch.
fn invalid_pull_field(field: &str) -> ApiError {
    ApiError::validation(json!({"resource": "PullRequest", "field": field, "code": "invalid"}))
        .doc(CREATE_PULL_DOC)
}

/// 422 `Validation Failed` with GitHub's own `message` about a pull request.
fn pull_refused(message: impl Into<String>) -> ApiError {
    ApiError::validation(
        json!({"resource": "PullRequest", "code": "custom", "message": message.into()}),
    )
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The commit a branch points at.
    pub fn branch(&self, branch: &str) -> Option<&String> {
        self.refs.get(&branch_ref(branch))
    }

    /// Branch names, sorted.
    pub fn branches(&self) -> Vec<String> {
        self.refs
            .keys()
            .filter_map(|r| r.strip_prefix("refs/heads/"))
            .map(str::to_string)
            .collect()
    }

    /// A commit from a branch or tag name (with or without `refs/`/`heads/`)
    /// or a commit id.
    pub fn resolve_commit(&self, what: &str) -> Option<String> {
        let what = what.trim();
        if what.len() == 40 && self.odb.commit(what).is_some() {
            return Some(what.to_string());
        }
        let candidates = [
            what.to_string(),
            format!("refs/{what}"),
            format!("refs/heads/{what}"),
            format!("refs/tags/{what}"),
        ];
        candidates
            .iter()
            .find_map(|r| self.refs.get(r))
            .cloned()
            .filter(|sha| self.odb.commit(sha).is_some())
    }

    /// The commit a `ref` query parameter names (default branch when absent).
    pub fn commit_for(&self, reference: Option<&str>) -> Result<String, ApiError> {
        if self.refs.is_empty() {
            return Err(ApiError::new(409, "This repository is empty."));
        }
        let r = reference
            .filter(|r| !r.is_empty())
            .unwrap_or(&self.default_branch);
        self.resolve_commit(r)
            .ok_or_else(|| ApiError::new(404, format!("No commit found for the ref {r}")))
    }

    fn next_number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number += 1;
        n
    }

    /// Point a ref at `sha`; open pull requests follow their head and base branches.
    pub fn set_ref(&mut self, full_ref: &str, sha: &str) {
        let t = now();
        self.refs.insert(full_ref.to_string(), sha.to_string());
        self.pushed_at = t;
        if let Some(branch) = full_ref.strip_prefix("refs/heads/") {
            for p in self.pulls.values_mut().filter(|p| p.open) {
                if p.head_ref == branch && p.head_sha != sha {
                    p.head_sha = sha.to_string();
                    p.updated_at = t;
                }
                if p.base_ref == branch {
                    p.base_sha = sha.to_string();
                }
            }
        }
    }

    /// Delete a ref; open pull requests from or into a deleted branch close, as on GitHub.
    pub fn delete_ref(&mut self, full_ref: &str) -> Result<(), ApiError> {
        if self.refs.remove(full_ref).is_none() {
            return Err(ApiError::unprocessable("Reference does not exist")
                .doc("https://docs.github.com/rest/git/refs#delete-a-reference"));
        }
        if let Some(branch) = full_ref.strip_prefix("refs/heads/") {
            let t = now();
            for p in self.pulls.values_mut().filter(|p| p.open) {
                if p.head_ref == branch || p.base_ref == branch {
                    p.open = false;
                    p.closed_at = Some(t);
                    p.updated_at = t;
                }
            }
        }
        Ok(())
    }

    /// Commit `changes` (path -> new content, `None` deletes) on top of
    /// `branch` (or of the default branch, or as a root commit in an empty
    /// repository) and move `branch` to it. The new commit's id.
    pub fn commit_changes(
        &mut self,
        branch: &str,
        changes: &[(String, Option<Vec<u8>>)],
        message: &str,
        author: Signature,
    ) -> Result<String, ApiError> {
        let parent = self
            .branch(branch)
            .or_else(|| self.branch(&self.default_branch.clone()))
            .cloned();
        let mut flat = match &parent {
            Some(p) => {
                let tree = self.odb.commit_tree(p).unwrap_or_default();
                self.odb.flatten(&tree)
            }
            None => Flat::new(),
        };
        for (path, content) in changes {
            match content {
                Some(data) => {
                    let sha = self.odb.put_blob(data.clone());
                    let mode = flat
                        .get(path)
                        .map(|l| l.mode.clone())
                        .unwrap_or_else(|| MODE_FILE.to_string());
                    git::place(&mut flat, path, Leaf { mode, sha });
                }
                None => git::remove(&mut flat, path),
            }
        }
        let tree = self.odb.build(&flat);
        let sha = self.odb.put_commit(Commit {
            tree,
            parents: parent.into_iter().collect(),
            message: message.to_string(),
            committer: author.clone(),
            author,
        });
        self.set_ref(&branch_ref(branch), &sha);
        Ok(sha)
    }

    /// The file at `path` on commit `commit`.
    pub fn file_at(&self, commit: &str, path: &str) -> Option<(String, Vec<u8>)> {
        let tree = self.odb.commit_tree(commit)?;
        let entry = self.odb.lookup(&tree, path)?;
        let data = self.odb.blob(&entry.sha)?.to_vec();
        Some((entry.sha, data))
    }

    fn parse_head(&self, head: &str) -> Result<String, ApiError> {
        let invalid = || invalid_pull_field("head");
        let branch = match head.split_once(':') {
            Some((owner, branch)) if owner.eq_ignore_ascii_case(&self.owner) => branch,
            Some(_) => return Err(invalid()),
            None => head,
        };
        if self.branch(branch).is_none() {
            return Err(invalid());
        }
        Ok(branch.to_string())
    }

    fn check_base(&self, base: &str) -> Result<String, ApiError> {
        self.branch(base)
            .cloned()
            .ok_or_else(|| invalid_pull_field("base"))
    }

    fn duplicate_check(&self, head: &str, base: &str, except: u64) -> Result<(), ApiError> {
        if self
            .pulls
            .values()
            .any(|p| p.open && p.number != except && p.head_ref == head && p.base_ref == base)
        {
            return Err(pull_refused(format!(
                "A pull request already exists for {}:{head}.",
                self.owner
            ))
            .doc(CREATE_PULL_DOC));
        }
        Ok(())
    }

    /// Open a pull request as `user`; its number.
    pub fn create_pull(&mut self, user: &str, new: NewPull, id: u64) -> Result<u64, ApiError> {
        let base_sha = self.check_base(&new.base)?;
        let head = self.parse_head(&new.head)?;
        let head_sha = self.branch(&head).cloned().unwrap_or_default();
        self.duplicate_check(&head, &new.base, 0)?;
        if self.odb.is_ancestor(&head_sha, &base_sha) {
            return Err(
                pull_refused(format!("No commits between {} and {head}", new.base))
                    .doc(CREATE_PULL_DOC),
            );
        }
        if new.title.trim().is_empty() {
            return Err(ApiError::validation(
                json!({"resource": "PullRequest", "code": "missing_field", "field": "title"}),
            ));
        }
        let number = self.next_number();
        let t = now();
        self.pulls.insert(
            number,
            Pull {
                id,
                number,
                title: new.title,
                body: new.body,
                open: true,
                draft: new.draft,
                merged: false,
                merged_at: None,
                merged_by: None,
                merge_commit_sha: None,
                closed_at: None,
                head_ref: head,
                head_sha,
                base_ref: new.base,
                base_sha,
                labels: Vec::new(),
                assignees: Vec::new(),
                requested_reviewers: Vec::new(),
                comments: Vec::new(),
                user: user.to_string(),
                maintainer_can_modify: new.maintainer_can_modify,
                created_at: t,
                updated_at: t,
            },
        );
        self.updated_at = t;
        Ok(number)
    }

    pub fn pull(&self, number: u64) -> Result<&Pull, ApiError> {
        self.pulls.get(&number).ok_or_else(ApiError::not_found)
    }

    pub fn pull_mut(&mut self, number: u64) -> Result<&mut Pull, ApiError> {
        self.pulls.get_mut(&number).ok_or_else(ApiError::not_found)
    }

    /// Apply a PATCH.
    pub fn update_pull(&mut self, number: u64, u: PullUpdate) -> Result<(), ApiError> {
        let current = self.pull(number)?.clone();
        if let Some(base) = &u.base {
            self.check_base(base)?;
        }
        if let Some(open) = u.open
            && open != current.open
        {
            if current.merged {
                return Err(pull_refused(
                    "state cannot be changed. The pull request has already been merged.",
                ));
            }
            if open {
                self.check_reopen(&current)?;
            }
        }
        let branch_sha = |r: &Repo, b: &str| r.branch(b).cloned();
        let head_now = branch_sha(self, &current.head_ref);
        let base_now = u
            .base
            .as_deref()
            .and_then(|b| branch_sha(self, b))
            .or_else(|| branch_sha(self, &current.base_ref));
        let p = self.pull_mut(number)?;
        let t = now();
        if let Some(title) = u.title {
            p.title = title;
        }
        if let Some(body) = u.body {
            p.body = body;
        }
        if let Some(base) = u.base {
            p.base_ref = base;
        }
        if let Some(m) = u.maintainer_can_modify {
            p.maintainer_can_modify = m;
        }
        if let Some(open) = u.open
            && open != p.open
        {
            p.open = open;
            if open {
                p.closed_at = None;
                if let Some(h) = head_now {
                    p.head_sha = h;
                }
            } else {
                p.closed_at = Some(t);
            }
        }
        if p.open
            && let Some(b) = base_now
        {
            p.base_sha = b;
        }
        p.updated_at = t;
        Ok(())
    }

    fn check_reopen(&self, p: &Pull) -> Result<(), ApiError> {
        if self.branch(&p.head_ref).is_none() {
            return Err(pull_refused(format!(
                "state cannot be changed. The {} branch has been deleted.",
                p.head_ref
            )));
        }
        self.duplicate_check(&p.head_ref, &p.base_ref, p.number)
    }

    /// Merge an open pull request as `user`: the base branch moves to a new
    /// commit whose tree merges the head's changes; the PR closes as merged.
    /// The new commit's id.
    pub fn merge_pull(
        &mut self,
        number: u64,
        user: &str,
        req: MergeRequest,
    ) -> Result<String, ApiError> {
        let p = self.pull(number)?.clone();
        let not_mergeable = || {
            ApiError::new(405, "Pull Request is not mergeable")
                .doc("https://docs.github.com/rest/pulls/pulls#merge-a-pull-request")
        };
        if !p.open || p.merged {
            return Err(not_mergeable());
        }
        if p.draft {
            return Err(ApiError::new(405, "Pull Request is still a draft"));
        }
        let method = req.method.as_deref().unwrap_or("merge");
        if !matches!(method, "merge" | "squash" | "rebase") {
            return Err(ApiError::invalid(format!(
                "For 'properties/merge_method', \"{method}\" is not one of [\"merge\", \"squash\", \"rebase\"]."
            )));
        }
        if let Some(sha) = &req.sha
            && *sha != p.head_sha
        {
            return Err(ApiError::new(
                409,
                "Head branch was modified. Review and try the merge again.",
            ));
        }
        let base_sha = self
            .branch(&p.base_ref)
            .cloned()
            .ok_or_else(not_mergeable)?;
        let tree = self
            .odb
            .merge(&base_sha, &p.head_sha)
            .map_err(|_| not_mergeable())?;
        let t = now();
        let committer = Signature {
            name: "GitHub".into(),
            email: "noreply@github.com".into(),
            date: t,
        };
        let (parents, title) = match method {
            "merge" => (
                vec![base_sha.clone(), p.head_sha.clone()],
                format!(
                    "Merge pull request #{number} from {}/{}",
                    self.owner, p.head_ref
                ),
            ),
            _ => (vec![base_sha.clone()], format!("{} (#{number})", p.title)),
        };
        let title = req.commit_title.unwrap_or(title);
        let body = req.commit_message.unwrap_or_else(|| match method {
            "merge" => p.title.clone(),
            _ => self
                .odb
                .commits_between(&base_sha, &p.head_sha)
                .iter()
                .rev()
                .filter_map(|c| self.odb.commit(c))
                .map(|c| format!("* {}", c.message.lines().next().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("\n"),
        });
        let message = if body.is_empty() {
            title
        } else {
            format!("{title}\n\n{body}")
        };
        let sha = self.odb.put_commit(Commit {
            tree,
            parents,
            message,
            author: signature_of(user, t),
            committer,
        });
        self.set_ref(&branch_ref(&p.base_ref), &sha);
        let p = self.pull_mut(number)?;
        p.open = false;
        p.merged = true;
        p.merged_at = Some(t);
        p.closed_at = Some(t);
        p.merged_by = Some(user.to_string());
        p.merge_commit_sha = Some(sha.clone());
        p.base_sha = base_sha;
        p.updated_at = t;
        Ok(sha)
    }

    /// Whether an open pull request merges cleanly now.
    pub fn mergeable(&self, p: &Pull) -> bool {
        let Some(base) = self.branch(&p.base_ref) else {
            return false;
        };
        self.odb.merge_plan(base, &p.head_sha).is_ok()
    }

    /// Add labels to a pull request (creating unknown ones); all its labels.
    pub fn add_labels(
        &mut self,
        number: u64,
        names: &[String],
        next_id: &mut dyn FnMut() -> u64,
    ) -> Result<Vec<Label>, ApiError> {
        self.pull(number)?;
        for name in names {
            if !self.labels.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                self.labels.insert(
                    name.clone(),
                    Label {
                        id: next_id(),
                        name: name.clone(),
                        color: "ededed".into(),
                        description: None,
                    },
                );
            }
        }
        let canonical: Vec<String> = names
            .iter()
            .filter_map(|n| {
                self.labels
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(n))
                    .cloned()
            })
            .collect();
        let p = self.pull_mut(number)?;
        for name in canonical {
            if !p.labels.contains(&name) {
                p.labels.push(name);
            }
        }
        p.updated_at = now();
        let labels = p.labels.clone();
        Ok(self.labels_of(&labels))
    }

    /// Define a label; 422 when one with that name (any case) exists.
    pub fn create_label(
        &mut self,
        name: &str,
        color: Option<&str>,
        description: Option<&str>,
        id: u64,
    ) -> Result<Label, ApiError> {
        let invalid = |field: &str, code: &str| {
            ApiError::validation(json!({"resource": "Label", "code": code, "field": field}))
                .doc("https://docs.github.com/rest/issues/labels#create-a-label")
        };
        if name.trim().is_empty() {
            return Err(invalid("name", "missing_field"));
        }
        if self.labels.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(invalid("name", "already_exists"));
        }
        let color = color
            .unwrap_or("ededed")
            .trim_start_matches('#')
            .to_ascii_lowercase();
        if color.len() != 6 || !color.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid("color", "invalid"));
        }
        let label = Label {
            id,
            name: name.to_string(),
            color,
            description: description.map(str::to_string),
        };
        self.labels.insert(name.to_string(), label.clone());
        Ok(label)
    }

    /// A label by name (any case).
    pub fn label(&self, name: &str) -> Option<&Label> {
        self.labels
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, l)| l)
    }

    /// The label objects for names.
    pub fn labels_of(&self, names: &[String]) -> Vec<Label> {
        names
            .iter()
            .filter_map(|n| self.labels.get(n).cloned())
            .collect()
    }
}

impl State {
    /// Issue an installation token for `lifetime` (`seed` makes it unique);
    /// the token and when it expires.
    pub fn issue_token(
        &mut self,
        seed: &str,
        lifetime: std::time::Duration,
        installation_id: u64,
        repos: Option<BTreeSet<String>>,
    ) -> (String, Timestamp) {
        let t = now();
        let expires_at = t
            .checked_add(
                jiff::SignedDuration::try_from(lifetime)
                    .unwrap_or(jiff::SignedDuration::from_secs(3600)),
            )
            .unwrap_or(t);
        let token = auth::new_token(seed);
        self.tokens.insert(
            token.clone(),
            Token {
                installation_id,
                expires_at,
                repos,
            },
        );
        (token, expires_at)
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Create an empty repository (no branches until the first commit).
    pub fn create_repo(
        &mut self,
        owner: &str,
        name: &str,
        installation_id: u64,
    ) -> Result<(), ApiError> {
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !valid(owner) || !valid(name) {
            return Err(ApiError::unprocessable(format!(
                "invalid repository name {owner}/{name}"
            )));
        }
        let k = key(&format!("{owner}/{name}"));
        if self.repos.contains_key(&k) {
            return Err(ApiError::unprocessable(format!(
                "repository {owner}/{name} already exists"
            )));
        }
        self.next_repo_id += 1;
        let t = now();
        self.repos.insert(
            k,
            Repo {
                owner: owner.to_string(),
                name: name.to_string(),
                id: 100_000 + self.next_repo_id,
                installation_id,
                default_branch: "main".into(),
                refs: BTreeMap::new(),
                odb: Odb::default(),
                pulls: BTreeMap::new(),
                labels: BTreeMap::new(),
                next_number: 1,
                created_at: t,
                pushed_at: t,
                updated_at: t,
            },
        );
        Ok(())
    }

    pub fn repo(&self, full_name: &str) -> Result<&Repo, ApiError> {
        self.repos
            .get(&key(full_name))
            .ok_or_else(ApiError::not_found)
    }

    pub fn repo_mut(&mut self, full_name: &str) -> Result<&mut Repo, ApiError> {
        self.repos
            .get_mut(&key(full_name))
            .ok_or_else(ApiError::not_found)
    }

    pub fn repos(&self) -> impl Iterator<Item = &Repo> {
        self.repos.values()
    }

    /// Installation ids that exist: those of repositories, plus `default`.
    pub fn installations(&self, default: u64) -> BTreeSet<u64> {
        let mut s: BTreeSet<u64> = self.repos.values().map(|r| r.installation_id).collect();
        s.insert(default);
        s
    }

    /// Whether `identity` may use `repo` (installation tokens: only their
    /// installation's repositories, and only the selected ones).
    pub fn can_access(identity: &Identity, repo: &Repo) -> bool {
        match identity {
            Identity::Pat { .. } => true,
            Identity::Installation { id, repos } => {
                *id == repo.installation_id
                    && repos
                        .as_ref()
                        .is_none_or(|names| names.contains(&repo.name.to_ascii_lowercase()))
            }
            Identity::App | Identity::Anonymous => false,
        }
    }

    /// The rate-limit window of `subject`, rolled over when its hour is up.
    pub fn window(&mut self, subject: &str, limit: u64, now_secs: i64) -> &mut RateWindow {
        let w = self.rate.entry(subject.to_string()).or_insert(RateWindow {
            limit,
            used: 0,
            reset: now_secs + 3600,
        });
        if now_secs >= w.reset {
            w.used = 0;
            w.reset = now_secs + 3600;
        }
        w.limit = limit;
        w
    }
}

/// The permissions an installation token gets unless it asks for fewer.
pub(crate) fn default_permissions() -> Value {
    json!({
        "contents": "write",
        "issues": "write",
        "metadata": "read",
        "pull_requests": "write",
    })
}
