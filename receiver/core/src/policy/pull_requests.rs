//! The `pullRequests` section: where declarative fixes go as pull requests,
//! and how many heal8s may open. Credentials are not here (they come from
//! files or a Secret mount, see `heal8s serve --github-*`).

use serde::{Deserialize, Serialize};

use crate::duration::PromDuration;

/// A rule mapping workloads to the file that declares them (first match
/// wins; absent fields match everything; `*` globs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceRuleConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A file or kustomization directory; `{namespace}`, `{name}`, `{kind}` are substituted.
    pub path: String,
    /// A Helm values file's component path (with `path` naming the values file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_path: Option<String>,
}

/// `pullRequests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PullRequests {
    /// `owner/name` of the manifest repository; without it, declarative fixes
    /// are recorded but not proposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The base branch (default: the repository's default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    /// Directories heal8s may read and change (empty: the whole repository).
    #[serde(default)]
    pub roots: Vec<String>,
    #[serde(default)]
    pub sources: Vec<SourceRuleConfig>,
    /// Adds the label `env:<environment>` (the apply workflow picks the cluster by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default)]
    pub reviewers: Vec<String>,
    #[serde(default)]
    pub assignees: Vec<String>,
    /// A pull request closed without merging suppresses new ones for its
    /// workload and remediation this long.
    pub ignore_closed_for: PromDuration,
    /// At most this many new pull requests an hour (updates do not count).
    pub max_new_per_hour: u32,
    /// At most this many open heal8s pull requests in the repository.
    pub max_open: u32,
    /// How often open pull requests are checked for merge or close.
    pub poll_interval: PromDuration,
    /// Most YAML files read from the repository per look.
    pub max_files: u32,
}

impl Default for PullRequests {
    fn default() -> Self {
        PullRequests {
            repository: None,
            base_branch: None,
            roots: Vec::new(),
            sources: Vec::new(),
            environment: None,
            reviewers: Vec::new(),
            assignees: Vec::new(),
            ignore_closed_for: PromDuration::secs(7 * 24 * 3600),
            max_new_per_hour: 2,
            max_open: 10,
            poll_interval: PromDuration::secs(300),
            max_files: 5000,
        }
    }
}

/// A relative path that stays inside the repository and out of hidden
/// directories (`.github/` among them).
fn plain_relative(p: &str) -> bool {
    let p = p.trim_end_matches('/');
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.starts_with('.'))
}

impl PullRequests {
    /// Every problem, as (path below `pullRequests`, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let name_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if let Some(repo) = &self.repository {
            let ok = repo
                .split_once('/')
                .is_some_and(|(o, n)| name_ok(o) && name_ok(n));
            if !ok {
                out.push(("repository".into(), format!("{repo:?} is not owner/name")));
            }
        }
        if let Some(b) = &self.base_branch
            && (b.is_empty()
                || b.contains("..")
                || b.starts_with('-')
                || b.contains(char::is_whitespace))
        {
            out.push(("baseBranch".into(), format!("{b:?} is not a branch name")));
        }
        for (i, r) in self.roots.iter().enumerate() {
            if !plain_relative(r) {
                out.push((
                    format!("roots[{i}]"),
                    format!("{r:?} is not a relative path inside the repository"),
                ));
            }
        }
        for (i, s) in self.sources.iter().enumerate() {
            if !plain_relative(&s.path) {
                out.push((
                    format!("sources[{i}].path"),
                    format!("{:?} is not a relative path inside the repository", s.path),
                ));
            }
        }
        if self.max_new_per_hour == 0 {
            out.push(("maxNewPerHour".into(), "must be at least 1".into()));
        }
        if self.max_open == 0 {
            out.push(("maxOpen".into(), "must be at least 1".into()));
        }
        if self.poll_interval.get().as_secs() < 1 {
            out.push(("pollInterval".into(), "must be at least 1s".into()));
        }
        if self.max_files == 0 {
            out.push(("maxFiles".into(), "must be at least 1".into()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use crate::policy::Policy;

    #[test]
    fn defaults_and_a_full_section() {
        let p =
            Policy::from_yaml("routes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]")
                .unwrap();
        assert_eq!(p.pull_requests.repository, None);
        assert_eq!(p.pull_requests.max_new_per_hour, 2);
        assert_eq!(p.pull_requests.max_open, 10);
        let p = Policy::from_yaml(
            "pullRequests:\n  repository: acme/manifests\n  roots: [apps, clusters/prod/]\n  sources:\n    - {namespace: shop, path: 'apps/{name}.yaml'}\n  environment: prod\n  ignoreClosedFor: 24h\n  maxOpen: 3\nroutes: [{matchers: ['alertname=\"A\"'], remediation: bump-memory, mode: pull-request}]",
        )
        .unwrap();
        assert_eq!(
            p.pull_requests.repository.as_deref(),
            Some("acme/manifests")
        );
        assert_eq!(p.pull_requests.max_open, 3);
        assert_eq!(
            p.pull_requests.max_new_per_hour, 2,
            "unset keys keep their defaults"
        );
        assert_eq!(p.pull_requests.ignore_closed_for.get().as_secs(), 86_400);
        assert_eq!(p.pull_requests.sources[0].path, "apps/{name}.yaml");
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let e = Policy::from_yaml(
            "pullRequests:\n  repository: not-a-repo\n  roots: [../up, .github]\n  sources: [{path: /etc/x}, {pth: y}]\n  maxOpen: 0\n  pollInterval: 0s\nroutes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("pullRequests.sources[1]") || e.contains("pullRequests.sources"),
            "{e}"
        );
        let e = Policy::from_yaml(
            "pullRequests:\n  repository: not-a-repo\n  roots: [../up, .github]\n  sources: [{path: /etc/x}]\n  maxOpen: 0\n  pollInterval: 0s\nroutes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]",
        )
        .unwrap_err()
        .to_string();
        for path in [
            "pullRequests.repository",
            "pullRequests.roots[0]",
            "pullRequests.roots[1]",
            "pullRequests.sources[0].path",
            "pullRequests.maxOpen",
            "pullRequests.pollInterval",
        ] {
            assert!(e.contains(path), "{path} missing from {e}");
        }
    }
}
