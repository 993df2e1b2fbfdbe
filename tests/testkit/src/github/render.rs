//! JSON objects as GitHub answers them. Each starts from the spec's own
//! example (`templates/*.json`, see `templates/extract.py`) so every property
//! the schema requires is there; identity, URLs, timestamps and state are
//! then filled in from the store.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::git::{Commit, TreeEntry};
use super::store::{Comment, Label, Pull, RateWindow, Repo, default_permissions, user_id};

const TEMPLATES: &[(&str, &str)] = &[
    ("user", include_str!("templates/user.json")),
    ("repository", include_str!("templates/repository.json")),
    (
        "full-repository",
        include_str!("templates/full-repository.json"),
    ),
    ("installation", include_str!("templates/installation.json")),
    (
        "installation-token",
        include_str!("templates/installation-token.json"),
    ),
    ("pull-request", include_str!("templates/pull-request.json")),
    (
        "pull-request-simple",
        include_str!("templates/pull-request-simple.json"),
    ),
    ("issue", include_str!("templates/issue.json")),
    (
        "issue-comment",
        include_str!("templates/issue-comment.json"),
    ),
    ("label", include_str!("templates/label.json")),
    ("content-file", include_str!("templates/content-file.json")),
    ("file-commit", include_str!("templates/file-commit.json")),
    ("git-commit", include_str!("templates/git-commit.json")),
    (
        "rate-limit-overview",
        include_str!("templates/rate-limit-overview.json"),
    ),
];

/// A parsed template (`Null` for an unknown name; a unit test parses them all).
fn tpl(name: &str) -> Value {
    static PARSED: OnceLock<HashMap<&'static str, Value>> = OnceLock::new();
    PARSED
        .get_or_init(|| {
            TEMPLATES
                .iter()
                .map(|(n, text)| (*n, serde_json::from_str(text).unwrap_or(Value::Null)))
                .collect()
        })
        .get(name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Replace substrings in every string of `v`.
fn rewrite(v: &mut Value, pairs: &[(&str, &str)]) {
    match v {
        Value::String(s) => {
            for (from, to) in pairs {
                if s.contains(from) {
                    *s = s.replace(from, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| rewrite(x, pairs)),
        Value::Object(map) => map.values_mut().for_each(|x| rewrite(x, pairs)),
        _ => {}
    }
}

/// Set top-level fields of an object.
fn set(v: &mut Value, fields: Value) {
    if let (Value::Object(target), Value::Object(src)) = (v, fields) {
        for (k, x) in src {
            target.insert(k, x);
        }
    }
}

/// RFC 3339 with seconds, as GitHub writes timestamps.
pub(crate) fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn ts_opt(t: Option<Timestamp>) -> Value {
    t.map(|t| Value::String(ts(t))).unwrap_or(Value::Null)
}

/// GitHub's classic global node id: base64 of `0<len(kind)>:<kind><id>`.
pub(crate) fn node_id(kind: &str, id: impl std::fmt::Display) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("0{}:{kind}{id}", kind.len()))
}

/// Base64 in lines of 60 characters, each ending in `\n`, as GitHub sends file contents.
pub(crate) fn base64_lines(data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(b64.len() + b64.len() / 60 + 1);
    for chunk in b64.as_bytes().chunks(60) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out
}

/// Decode base64, ignoring whitespace (GitHub accepts wrapped content).
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
}

/// Percent-encode for a URL path (slashes kept) or query value.
pub(crate) fn escape(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where the emulation says things live.
#[derive(Debug, Clone)]
pub(crate) struct Urls {
    /// API base (`http://127.0.0.1:PORT`).
    pub api: String,
    /// Web base (`https://github.com`).
    pub html: String,
}

impl Urls {
    fn repo_api(&self, r: &Repo) -> String {
        format!("{}/repos/{}", self.api, r.full_name())
    }

    fn repo_html(&self, r: &Repo) -> String {
        format!("{}/{}", self.html, r.full_name())
    }

    fn host(&self) -> &str {
        let h = self.html.split("://").nth(1).unwrap_or(&self.html);
        h.trim_end_matches('/')
    }
}

/// A user (`simple-user`); logins ending in `[bot]` are `Bot`s.
pub(crate) fn user(u: &Urls, login: &str) -> Value {
    let id = user_id(login);
    let bot = login.strip_suffix("[bot]");
    let enc = escape(login, false);
    let mut v = tpl("user");
    let api_user = format!("{}/users/{enc}", u.api);
    let html_user = match bot {
        Some(slug) => format!("{}/apps/{slug}", u.html),
        None => format!("{}/{login}", u.html),
    };
    rewrite(
        &mut v,
        &[
            ("https://api.github.com/users/octocat", &api_user),
            ("https://github.com/octocat", &html_user),
        ],
    );
    let kind = if bot.is_some() { "Bot" } else { "User" };
    set(
        &mut v,
        json!({
            "login": login,
            "id": id,
            "node_id": node_id(kind, id),
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
            "gravatar_id": "",
            "url": api_user,
            "html_url": html_user,
            "type": kind,
            "site_admin": false,
        }),
    );
    v
}

fn repo_rewrites(u: &Urls, r: &Repo, v: &mut Value) {
    let (api, html) = (u.repo_api(r), u.repo_html(r));
    let full = r.full_name();
    let git_url = format!("git://{}/{full}.git", u.host());
    let ssh_url = format!("git@{}:{full}.git", u.host());
    rewrite(
        v,
        &[
            ("https://api.github.com/repos/octocat/Hello-World", &api),
            ("https://github.com/octocat/Hello-World", &html),
            ("git:github.com/octocat/Hello-World.git", &git_url),
            ("git@github.com:octocat/Hello-World.git", &ssh_url),
            ("https://svn.github.com/octocat/Hello-World", &html),
        ],
    );
}

fn repo_fields(u: &Urls, r: &Repo) -> Value {
    let open = r.pulls.values().filter(|p| p.open).count();
    let mut v = json!({
        "id": r.id,
        "node_id": node_id("Repository", r.id),
        "name": r.name,
        "full_name": r.full_name(),
        "owner": user(u, &r.owner),
        "private": false,
        "html_url": u.repo_html(r),
        "description": null,
        "fork": false,
        "url": u.repo_api(r),
        "mirror_url": null,
        "homepage": null,
        "language": null,
        "forks_count": 0,
        "forks": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "watchers": 0,
        "size": 0,
        "default_branch": r.default_branch,
        "open_issues_count": open,
        "open_issues": open,
    });
    set(
        &mut v,
        json!({
            "is_template": false,
            "topics": [],
            "has_issues": true,
            "has_projects": false,
            "has_wiki": false,
            "has_pages": false,
            "has_downloads": true,
            "has_discussions": false,
            "archived": false,
            "disabled": false,
            "visibility": "public",
            "pushed_at": ts(r.pushed_at),
            "created_at": ts(r.created_at),
            "updated_at": ts(r.updated_at),
            "permissions": {"admin": false, "maintain": false, "push": true, "triage": true, "pull": true},
            "allow_rebase_merge": true,
            "allow_squash_merge": true,
            "allow_merge_commit": true,
            "allow_auto_merge": false,
            "delete_branch_on_merge": false,
            "allow_forking": true,
            "license": null,
        }),
    );
    v
}

/// A repository as nested in pull requests (`repository`).
pub(crate) fn repository(u: &Urls, r: &Repo) -> Value {
    let mut v = tpl("repository");
    repo_rewrites(u, r, &mut v);
    set(&mut v, repo_fields(u, r));
    if let Value::Object(m) = &mut v {
        m.remove("temp_clone_token");
    }
    v
}

/// `GET /repos/{owner}/{repo}` (`full-repository`).
pub(crate) fn full_repository(u: &Urls, r: &Repo) -> Value {
    let mut v = tpl("full-repository");
    repo_rewrites(u, r, &mut v);
    set(&mut v, repo_fields(u, r));
    set(
        &mut v,
        json!({"subscribers_count": 0, "network_count": 0, "temp_clone_token": null}),
    );
    v
}

/// An installation of the App on `account`.
pub(crate) fn installation(
    u: &Urls,
    id: u64,
    app_id: u64,
    slug: &str,
    account: &str,
    created: Timestamp,
) -> Value {
    let mut v = tpl("installation");
    set(
        &mut v,
        json!({
            "id": id,
            "account": user(u, account),
            "repository_selection": "all",
            "access_tokens_url": format!("{}/app/installations/{id}/access_tokens", u.api),
            "repositories_url": format!("{}/installation/repositories", u.api),
            "html_url": format!("{}/settings/installations/{id}", u.html),
            "app_id": app_id,
            "target_id": user_id(account),
            "target_type": "User",
            "permissions": default_permissions(),
            "events": ["pull_request", "push"],
            "created_at": ts(created),
            "updated_at": ts(created),
            "single_file_name": null,
            "has_multiple_single_files": false,
            "single_file_paths": [],
            "app_slug": slug,
            "suspended_at": null,
            "suspended_by": null,
        }),
    );
    v
}

/// `POST /app/installations/{id}/access_tokens` (`installation-token`).
pub(crate) fn installation_token(
    token: &str,
    expires_at: Timestamp,
    permissions: &Value,
    repositories: Option<Vec<Value>>,
) -> Value {
    let mut v = tpl("installation-token");
    set(
        &mut v,
        json!({
            "token": token,
            "expires_at": ts(expires_at),
            "permissions": permissions,
            "repository_selection": if repositories.is_some() { "selected" } else { "all" },
        }),
    );
    if let Some(repos) = repositories {
        set(&mut v, json!({ "repositories": repos }));
    }
    v
}

/// A git reference (`git-ref`).
pub(crate) fn git_ref(u: &Urls, r: &Repo, full_ref: &str, sha: &str) -> Value {
    let api = u.repo_api(r);
    json!({
        "ref": full_ref,
        "node_id": node_id("Ref", format!("{}:{full_ref}", r.id)),
        "url": format!("{api}/git/{}", escape(full_ref, true)),
        "object": {
            "type": "commit",
            "sha": sha,
            "url": format!("{api}/git/commits/{sha}"),
        },
    })
}

fn person(sig: &super::git::Signature) -> Value {
    json!({"date": ts(sig.date), "name": sig.name, "email": sig.email})
}

/// A git commit (`git-commit`).
pub(crate) fn git_commit(u: &Urls, r: &Repo, sha: &str, c: &Commit) -> Value {
    let (api, html) = (u.repo_api(r), u.repo_html(r));
    let mut v = tpl("git-commit");
    set(
        &mut v,
        json!({
            "sha": sha,
            "node_id": node_id("Commit", format!("{}:{sha}", r.id)),
            "url": format!("{api}/git/commits/{sha}"),
            "html_url": format!("{html}/commit/{sha}"),
            "author": person(&c.author),
            "committer": person(&c.committer),
            "message": c.message,
            "tree": {"sha": c.tree, "url": format!("{api}/git/trees/{}", c.tree)},
            "parents": c.parents.iter().map(|p| json!({
                "sha": p,
                "url": format!("{api}/git/commits/{p}"),
                "html_url": format!("{html}/commit/{p}"),
            })).collect::<Vec<_>>(),
            "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
        }),
    );
    v
}

/// A tree listing (`git-tree`); `entries` carry their full paths.
pub(crate) fn tree(u: &Urls, r: &Repo, sha: &str, entries: &[(String, TreeEntry)]) -> Value {
    let api = u.repo_api(r);
    let items: Vec<Value> = entries
        .iter()
        .map(|(path, e)| {
            let mut item = json!({"path": path, "mode": e.mode, "type": e.kind(), "sha": e.sha});
            match e.kind() {
                "blob" => set(
                    &mut item,
                    json!({
                        "size": r.odb.blob(&e.sha).map(<[u8]>::len).unwrap_or(0),
                        "url": format!("{api}/git/blobs/{}", e.sha),
                    }),
                ),
                "tree" => set(
                    &mut item,
                    json!({"url": format!("{api}/git/trees/{}", e.sha)}),
                ),
                _ => {}
            }
            item
        })
        .collect();
    json!({"sha": sha, "url": format!("{api}/git/trees/{sha}"), "tree": items, "truncated": false})
}

/// A blob with base64 content (`blob`).
pub(crate) fn blob(u: &Urls, r: &Repo, sha: &str, data: &[u8]) -> Value {
    json!({
        "sha": sha,
        "node_id": node_id("Blob", format!("{}:{sha}", r.id)),
        "size": data.len(),
        "url": format!("{}/git/blobs/{sha}", u.repo_api(r)),
        "content": base64_lines(data),
        "encoding": "base64",
    })
}

/// `POST .../git/blobs` (`short-blob`).
pub(crate) fn short_blob(u: &Urls, r: &Repo, sha: &str) -> Value {
    json!({"url": format!("{}/git/blobs/{sha}", u.repo_api(r)), "sha": sha})
}

/// A contents entry without content (directory listings, `file-commit.content`).
/// `commit` is the commit the listing was read from (for the raw download URL).
pub(crate) fn content_entry(
    u: &Urls,
    r: &Repo,
    path: &str,
    reference: &str,
    commit: &str,
    e: &TreeEntry,
) -> Value {
    let (api, html) = (u.repo_api(r), u.repo_html(r));
    let epath = escape(path, true);
    let eref = escape(reference, true);
    let kind = match e.mode.as_str() {
        "040000" => "dir",
        "120000" => "symlink",
        "160000" => "submodule",
        _ => "file",
    };
    let size = r.odb.blob(&e.sha).map(<[u8]>::len).unwrap_or(0);
    let self_url = format!("{api}/contents/{epath}?ref={}", escape(reference, false));
    let (git_url, html_url, download) = if kind == "dir" {
        (
            format!("{api}/git/trees/{}", e.sha),
            format!("{html}/tree/{eref}/{epath}"),
            Value::Null,
        )
    } else {
        (
            format!("{api}/git/blobs/{}", e.sha),
            format!("{html}/blob/{eref}/{epath}"),
            Value::String(format!("{}/_raw/{}/{commit}/{epath}", u.api, r.full_name())),
        )
    };
    json!({
        "type": kind,
        "size": size,
        "name": path.rsplit('/').next().unwrap_or(path),
        "path": path,
        "sha": e.sha,
        "url": self_url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": download,
        "_links": {"self": self_url, "git": git_url, "html": html_url},
    })
}

/// `GET .../contents/{path}` for a file (`content-file`).
pub(crate) fn content_file(
    u: &Urls,
    r: &Repo,
    path: &str,
    reference: &str,
    commit: &str,
    e: &TreeEntry,
    data: &[u8],
) -> Value {
    let mut v = tpl("content-file");
    set(&mut v, content_entry(u, r, path, reference, commit, e));
    set(
        &mut v,
        json!({"type": "file", "encoding": "base64", "content": base64_lines(data)}),
    );
    v
}

/// `PUT`/`DELETE .../contents/{path}` (`file-commit`).
pub(crate) fn file_commit(
    u: &Urls,
    r: &Repo,
    content: Option<Value>,
    sha: &str,
    c: &Commit,
) -> Value {
    let mut v = tpl("file-commit");
    let mut commit = git_commit(u, r, sha, c);
    if let Value::Object(m) = &mut commit {
        m.insert(
            "html_url".into(),
            json!(format!("{}/commit/{sha}", u.repo_html(r))),
        );
    }
    set(
        &mut v,
        json!({"content": content.unwrap_or(Value::Null), "commit": commit}),
    );
    v
}

/// A label.
pub(crate) fn label(u: &Urls, r: &Repo, l: &Label) -> Value {
    let mut v = tpl("label");
    set(
        &mut v,
        json!({
            "id": l.id,
            "node_id": node_id("Label", l.id),
            "url": format!("{}/labels/{}", u.repo_api(r), escape(&l.name, false)),
            "name": l.name,
            "description": l.description,
            "color": l.color,
            "default": false,
        }),
    );
    v
}

fn association(r: &Repo, login: &str) -> &'static str {
    if login.eq_ignore_ascii_case(&r.owner) {
        "OWNER"
    } else {
        "NONE"
    }
}

/// An issue comment.
pub(crate) fn comment(u: &Urls, r: &Repo, number: u64, c: &Comment) -> Value {
    let api = u.repo_api(r);
    let mut v = tpl("issue-comment");
    set(
        &mut v,
        json!({
            "id": c.id,
            "node_id": node_id("IssueComment", c.id),
            "url": format!("{api}/issues/comments/{}", c.id),
            "html_url": format!("{}/pull/{number}#issuecomment-{}", u.repo_html(r), c.id),
            "body": c.body,
            "user": user(u, &c.user),
            "created_at": ts(c.created_at),
            "updated_at": ts(c.updated_at),
            "issue_url": format!("{api}/issues/{number}"),
            "author_association": association(r, &c.user),
            "pin": null,
            "minimized": null,
        }),
    );
    v
}

fn labels_json(u: &Urls, r: &Repo, p: &Pull) -> Vec<Value> {
    r.labels_of(&p.labels)
        .iter()
        .map(|l| label(u, r, l))
        .collect()
}

fn users_json(u: &Urls, logins: &[String]) -> Vec<Value> {
    logins.iter().map(|l| user(u, l)).collect()
}

fn state(p: &Pull) -> &'static str {
    if p.open { "open" } else { "closed" }
}

/// A pull request: `pull-request` when `full`, else `pull-request-simple` (lists).
pub(crate) fn pull(u: &Urls, r: &Repo, p: &Pull, full: bool) -> Value {
    let (api, html) = (u.repo_api(r), u.repo_html(r));
    let n = p.number;
    let url = format!("{api}/pulls/{n}");
    let issue_url = format!("{api}/issues/{n}");
    let html_url = format!("{html}/pull/{n}");
    let statuses = format!("{api}/statuses/{}", p.head_sha);
    let base_sha = if p.open {
        r.branch(&p.base_ref)
            .cloned()
            .unwrap_or_else(|| p.base_sha.clone())
    } else {
        p.base_sha.clone()
    };
    let side = |branch: &str, sha: &str| {
        json!({
            "label": format!("{}:{branch}", r.owner),
            "ref": branch,
            "sha": sha,
            "user": user(u, &r.owner),
            "repo": repository(u, r),
        })
    };
    let links = json!({
        "self": {"href": url},
        "html": {"href": html_url},
        "issue": {"href": issue_url},
        "comments": {"href": format!("{issue_url}/comments")},
        "review_comments": {"href": format!("{url}/comments")},
        "review_comment": {"href": format!("{api}/pulls/comments{{/number}}")},
        "commits": {"href": format!("{url}/commits")},
        "statuses": {"href": statuses},
    });
    let mut v = tpl(if full {
        "pull-request"
    } else {
        "pull-request-simple"
    });
    set(
        &mut v,
        json!({
            "url": url,
            "id": p.id,
            "node_id": node_id("PullRequest", p.id),
            "html_url": html_url,
            "diff_url": format!("{html_url}.diff"),
            "patch_url": format!("{html_url}.patch"),
            "issue_url": issue_url,
            "commits_url": format!("{url}/commits"),
            "review_comments_url": format!("{url}/comments"),
            "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
            "comments_url": format!("{issue_url}/comments"),
            "statuses_url": statuses,
            "number": n,
            "state": state(p),
            "locked": false,
            "title": p.title,
            "user": user(u, &p.user),
            "body": p.body,
            "labels": labels_json(u, r, p),
            "milestone": null,
            "active_lock_reason": null,
            "created_at": ts(p.created_at),
            "updated_at": ts(p.updated_at),
            "closed_at": ts_opt(p.closed_at),
            "merged_at": ts_opt(p.merged_at),
            "merge_commit_sha": p.merge_commit_sha,
            "assignee": p.assignees.first().map(|a| user(u, a)),
            "assignees": users_json(u, &p.assignees),
            "requested_reviewers": users_json(u, &p.requested_reviewers),
            "requested_teams": [],
            "head": side(&p.head_ref, &p.head_sha),
            "base": side(&p.base_ref, &base_sha),
            "_links": links,
            "author_association": association(r, &p.user),
            "auto_merge": null,
            "draft": p.draft,
        }),
    );
    if full {
        let mergeable = p.open.then(|| r.mergeable(p));
        let mergeable_state = match mergeable {
            None => "unknown",
            Some(_) if p.draft => "draft",
            Some(true) => "clean",
            Some(false) => "dirty",
        };
        let merge_base = r
            .odb
            .merge_base(&base_sha, &p.head_sha)
            .unwrap_or_else(|| base_sha.clone());
        let commits = r.odb.commits_between(&merge_base, &p.head_sha).len();
        let (files, adds, dels) = r.odb.diff_stats(
            &r.odb.commit_tree(&merge_base).unwrap_or_default(),
            &r.odb.commit_tree(&p.head_sha).unwrap_or_default(),
        );
        set(
            &mut v,
            json!({
                "merged": p.merged,
                "mergeable": mergeable,
                "rebaseable": mergeable,
                "mergeable_state": mergeable_state,
                "merged_by": p.merged_by.as_deref().map(|m| user(u, m)),
                "comments": p.comments.len(),
                "review_comments": 0,
                "maintainer_can_modify": p.maintainer_can_modify,
                "commits": commits,
                "additions": adds,
                "deletions": dels,
                "changed_files": files,
            }),
        );
    }
    v
}

/// A pull request seen as an issue (`issue`).
pub(crate) fn issue(u: &Urls, r: &Repo, p: &Pull) -> Value {
    let (api, html) = (u.repo_api(r), u.repo_html(r));
    let n = p.number;
    let url = format!("{api}/issues/{n}");
    let html_url = format!("{html}/pull/{n}");
    let mut v = tpl("issue");
    set(
        &mut v,
        json!({
            "id": p.id,
            "node_id": node_id("Issue", p.id),
            "url": url,
            "repository_url": api,
            "labels_url": format!("{url}/labels{{/name}}"),
            "comments_url": format!("{url}/comments"),
            "events_url": format!("{url}/events"),
            "html_url": html_url,
            "number": n,
            "state": state(p),
            "state_reason": null,
            "title": p.title,
            "body": p.body,
            "user": user(u, &p.user),
            "labels": labels_json(u, r, p),
            "assignee": p.assignees.first().map(|a| user(u, a)),
            "assignees": users_json(u, &p.assignees),
            "milestone": null,
            "locked": false,
            "active_lock_reason": null,
            "comments": p.comments.len(),
            "pull_request": {
                "url": format!("{api}/pulls/{n}"),
                "html_url": html_url,
                "diff_url": format!("{html_url}.diff"),
                "patch_url": format!("{html_url}.patch"),
                "merged_at": ts_opt(p.merged_at),
            },
            "closed_at": ts_opt(p.closed_at),
            "created_at": ts(p.created_at),
            "updated_at": ts(p.updated_at),
            "closed_by": null,
            "author_association": association(r, &p.user),
            "pinned_comment": null,
        }),
    );
    v
}

/// `GET /rate_limit` (`rate-limit-overview`) for the caller's window.
pub(crate) fn rate_limit(w: &RateWindow) -> Value {
    let core =
        json!({"limit": w.limit, "used": w.used, "remaining": w.remaining(), "reset": w.reset});
    let mut v = tpl("rate-limit-overview");
    if let Some(Value::Object(resources)) = v.get_mut("resources") {
        for (name, res) in resources.iter_mut() {
            if name == "core" {
                *res = core.clone();
            } else if let Some(limit) = res.get("limit").cloned() {
                *res = json!({"limit": limit, "used": 0, "remaining": limit, "reset": w.reset});
            }
        }
    }
    set(&mut v, json!({ "rate": core }));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_helpers_work() {
        for (name, _) in TEMPLATES {
            assert!(tpl(name).is_object(), "template {name} does not parse");
        }
        assert_eq!(node_id("User", 1), "MDQ6VXNlcjE=");
        assert_eq!(node_id("PullRequest", 1), "MDExOlB1bGxSZXF1ZXN0MQ==");
        let long = vec![b'a'; 100];
        let wrapped = base64_lines(&long);
        assert!(wrapped.lines().all(|l| l.len() <= 60));
        assert!(wrapped.ends_with('\n'));
        assert_eq!(decode_base64(&wrapped).unwrap(), long);
        assert_eq!(escape("heal8s[bot]", false), "heal8s%5Bbot%5D");
        assert_eq!(escape("a b/c", true), "a%20b/c");
        let u = Urls {
            api: "http://127.0.0.1:1".into(),
            html: "https://github.com".into(),
        };
        let bot = user(&u, "heal8s[bot]");
        assert_eq!(bot["type"], "Bot");
        assert_eq!(bot["url"], "http://127.0.0.1:1/users/heal8s%5Bbot%5D");
        assert_eq!(bot["html_url"], "https://github.com/apps/heal8s");
        assert!(!bot.to_string().contains("octocat"));
        assert_eq!(
            ts(Timestamp::from_second(0).unwrap()),
            "1970-01-01T00:00:00Z"
        );
    }
}
