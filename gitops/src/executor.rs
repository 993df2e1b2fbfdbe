//! The pull-request executor: receiver-core's `Executor` for declarative
//! plans (bump-memory, scale-up, rollback-image). A plan becomes one pull
//! request on the manifest repository, updated in place while the problem
//! persists ([`crate::github`] does the GitHub side). Live workload facts
//! come through the [`WorkloadInfo`] seam; this module must not read the
//! cluster itself (its Kubernetes implementation lives with the Kubernetes
//! client, in the receiver), nor route janitor plans.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use receiver_core::act::PullRequestRef;
use receiver_core::policy::pull_requests::PullRequests;
use receiver_core::{ActError, ActionReport, Executor, Plan, Remediation, TargetKind, WorkloadRef};
use tokio::sync::Mutex;

use crate::arith::BumpRule;
use crate::github::text::Evidence;
use crate::github::{
    Github, GithubError, PrAction, Proposal, ProposeError, PullRequestSettings, Repo,
    prepare_from_base, propose,
};
use crate::locate::{SourceRule, Workload};
use crate::patch::{Edit, PatchError};

/// What the executor needs to know about live workloads.
#[async_trait]
pub trait WorkloadInfo: Send + Sync {
    /// The workload's `heal8s.io/source` annotation.
    async fn source_annotation(&self, w: &WorkloadRef) -> Option<String>;
    /// Live facts for the pull request body (restarts, the last OOM kill and
    /// its time, an HPA held at its maximum since when).
    async fn evidence(&self, target: &receiver_core::Target) -> Vec<String>;
    /// The image the container ran before the current one.
    async fn previous_image(
        &self,
        w: &WorkloadRef,
        container: Option<&str>,
    ) -> Result<Option<String>, String>;
}

/// Opens and updates pull requests for declarative plans.
pub struct PullRequestExecutor {
    github: Arc<Github>,
    settings: PullRequestSettings,
    workloads: Arc<dyn WorkloadInfo>,
    /// Blob texts by sha, so a second look at the repository reads only what changed.
    cache: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for PullRequestExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullRequestExecutor")
            .field("repo", &self.settings.repo)
            .finish()
    }
}

/// The gitops settings from the policy's `pullRequests` section; `None`
/// without a repository.
pub fn settings_from(p: &PullRequests) -> Result<Option<PullRequestSettings>, String> {
    let Some(repo) = &p.repository else {
        return Ok(None);
    };
    Ok(Some(PullRequestSettings {
        repo: Repo::parse(repo)?,
        base: p.base_branch.clone(),
        roots: p.roots.clone(),
        sources: p
            .sources
            .iter()
            .map(|s| SourceRule {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                kind: s.kind.clone(),
                path: s.path.clone(),
                values_path: s.values_path.clone(),
            })
            .collect(),
        environment: p.environment.clone(),
        reviewers: p.reviewers.clone(),
        assignees: p.assignees.clone(),
        ignore_closed_for: p.ignore_closed_for.get(),
        max_files: p.max_files as usize,
        max_new_per_hour: Some(p.max_new_per_hour),
        max_open: Some(p.max_open),
    }))
}

impl PullRequestExecutor {
    /// An executor that proposes on `settings.repo` through `github`.
    pub fn new(
        github: Arc<Github>,
        settings: PullRequestSettings,
        workloads: Arc<dyn WorkloadInfo>,
    ) -> PullRequestExecutor {
        PullRequestExecutor {
            github,
            settings,
            workloads,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// The GitHub client (the receiver polls pull request states through it).
    pub fn github(&self) -> &Arc<Github> {
        &self.github
    }

    /// The workload to change: the owner the live cluster named, else the
    /// target itself when it is a workload.
    fn workload(plan: &Plan) -> Option<WorkloadRef> {
        if let Some(w) = &plan.workload {
            return Some(w.clone());
        }
        let t = plan.target.as_ref()?;
        if !matches!(
            t.kind,
            TargetKind::Deployment
                | TargetKind::StatefulSet
                | TargetKind::DaemonSet
                | TargetKind::HorizontalPodAutoscaler
        ) {
            return None;
        }
        Some(WorkloadRef {
            kind: t.kind.kind_name().to_string(),
            namespace: t.namespace.clone(),
            name: t.name.clone(),
        })
    }

    async fn proposal(&self, plan: &Plan) -> Result<Proposal, ActError> {
        let refuse = |m: String| ActError {
            category: "unsupported",
            message: m,
        };
        let w = Self::workload(plan).ok_or_else(|| {
            refuse("the plan names no workload to change (the live owner was not found)".into())
        })?;
        let container = plan.target.as_ref().and_then(|t| t.container.clone());
        let edit = match &plan.remediation {
            Remediation::BumpMemory(p) => {
                Edit::BumpMemory(BumpRule::from_params(p).map_err(refuse)?)
            }
            Remediation::ScaleUp(p) => Edit::ScaleUp {
                percent: p.percent,
                cap: p.max_replicas,
            },
            Remediation::RollbackImage(_) => {
                let image = self
                    .workloads
                    .previous_image(&w, container.as_deref())
                    .await
                    .map_err(|e| ActError {
                        category: "kube_api",
                        message: format!("cannot read the rollout history: {e}"),
                    })?
                    .ok_or_else(|| {
                        refuse(format!(
                            "{} {} has no earlier revision with another image",
                            w.kind, w.name
                        ))
                    })?;
                Edit::Image(image)
            }
            other => {
                return Err(refuse(format!(
                    "{} is not a declarative fix",
                    other.kind().as_str()
                )));
            }
        };
        let e = &plan.evidence;
        let mut facts = match &plan.target {
            Some(t) => self.workloads.evidence(t).await,
            None => Vec::new(),
        };
        if let Some(r) = &e.reason {
            facts.push(format!("reason: {r}"));
        }
        if let Some(n) = e.restart_count
            && !facts.iter().any(|f| f.starts_with("restarts:"))
        {
            facts.push(format!("restarts: {n}"));
        }
        if let Some(p) = e.memory_peak_bytes {
            facts.push(format!("observed memory peak: {p} bytes"));
        }
        for (k, v) in e.details.iter().take(10) {
            facts.push(format!("{k}: {v}"));
        }
        let record = plan
            .target
            .as_ref()
            .map(|t| receiver_core::names::record_name(t, plan.kind()));
        let record_namespace = plan
            .target
            .as_ref()
            .and_then(receiver_core::names::record_namespace)
            .map(str::to_string);
        Ok(Proposal {
            remediation: plan.kind().as_str().to_string(),
            workload: Workload {
                kind: w.kind.clone(),
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                source_annotation: self.workloads.source_annotation(&w).await,
            },
            container: container.clone(),
            edit,
            evidence: Evidence {
                trigger: format!("{} {}", plan.trigger.source, plan.trigger.name),
                workload: match &w.namespace {
                    Some(ns) => format!("{} {ns}/{}", w.kind, w.name),
                    None => format!("{} {}", w.kind, w.name),
                },
                container,
                first_seen: Some(plan.trigger.first_seen.to_string()),
                facts,
                generator_url: plan.trigger.generator_url.clone(),
                runbook_url: plan.trigger.runbook_url.clone(),
                trace_id: plan.trigger.trace.map(|t| t.trace_id_hex()),
                record,
                record_namespace,
            },
        })
    }
}

#[async_trait]
impl Executor for PullRequestExecutor {
    async fn execute(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, ActError> {
        let proposal = self.proposal(plan).await?;
        let repo = self.settings.repo.to_string();
        if dry_run {
            // read the repository and prepare the change, write nothing
            let result = {
                let mut cache = self.cache.lock().await;
                prepare_from_base(&self.github, &self.settings, &proposal, &mut cache).await
            };
            let prepared = match result {
                Ok(p) => p,
                Err(e) => return settle(&e),
            };
            let changes: Vec<String> = prepared
                .changes
                .iter()
                .flat_map(|f| {
                    f.fields.iter().map(move |c| {
                        format!(
                            "{} {} {} -> {}",
                            f.path,
                            c.path,
                            c.before.as_deref().unwrap_or("(unset)"),
                            c.after
                        )
                    })
                })
                .collect();
            return Ok(ActionReport {
                simulated: true,
                message: format!(
                    "dry-run: would open or update a pull request on {repo} ({}): {}",
                    prepared.request.branch,
                    changes.join("; ")
                ),
                ..ActionReport::default()
            });
        }
        let result = {
            let mut cache = self.cache.lock().await;
            propose(&self.github, &self.settings, &proposal, &mut cache).await
        };
        let (prepared, outcome) = match result {
            Ok(r) => r,
            Err(e) => return settle(&e),
        };
        let what = prepared
            .changes
            .iter()
            .flat_map(|f| {
                f.fields.iter().map(move |c| {
                    format!(
                        "{} {} -> {}",
                        f.path,
                        c.before.as_deref().unwrap_or("(unset)"),
                        c.after
                    )
                })
            })
            .collect::<Vec<_>>()
            .join("; ");
        let pr = PullRequestRef {
            repository: repo.clone(),
            number: outcome.number,
            url: outcome.url.clone(),
            branch: outcome.branch.clone(),
            head_sha: outcome.head_sha.clone(),
            action: match outcome.action {
                PrAction::Created => "created",
                PrAction::Updated => "updated",
                _ => "unchanged",
            }
            .to_string(),
        };
        Ok(match outcome.action {
            PrAction::Created | PrAction::Updated | PrAction::Unchanged => ActionReport {
                simulated: false,
                message: format!(
                    "pull request {} #{} {} ({what}); {} GitHub calls",
                    repo, outcome.number, pr.action, outcome.calls
                ),
                pull_request: Some(pr),
                deferred: None,
                deleted: None,
            },
            PrAction::Suppressed => ActionReport {
                simulated: true,
                message: format!(
                    "pull request {repo} #{} was closed without merging: not proposing {} again for now",
                    outcome.number,
                    plan.kind().as_str()
                ),
                pull_request: None,
                deferred: Some("Declined".into()),
                deleted: None,
            },
            PrAction::Deferred => ActionReport {
                simulated: true,
                message: format!(
                    "a new pull request on {repo} would exceed a cap (maxNewPerHour/maxOpen); it waits"
                ),
                pull_request: None,
                deferred: Some("RateLimited".into()),
                deleted: None,
            },
        })
    }
}

fn github_error(e: GithubError) -> ActError {
    ActError {
        category: "github",
        message: e.to_string(),
    }
}

/// Nothing to change puts the plan off (the repository already says it); a
/// value at its cap fails so the guard escalates; the rest is a failure
/// with its category.
fn settle(e: &ProposeError) -> Result<ActionReport, ActError> {
    match (e.patch_error(), e) {
        (Some(PatchError::NoChange(m)), _) => Ok(ActionReport {
            simulated: true,
            message: format!("nothing to change: {m}"),
            pull_request: None,
            deferred: Some("NothingToChange".into()),
            deleted: None,
        }),
        (Some(PatchError::AtCap { .. }), _) => Err(ActError {
            category: "at_cap",
            message: e.to_string(),
        }),
        (_, ProposeError::Github(g)) => Err(github_error(g.clone())),
        _ => Err(ActError {
            category: "manifest",
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_repository_means_no_pull_requests() {
        assert_eq!(settings_from(&PullRequests::default()), Ok(None));
    }

    #[test]
    fn the_policy_section_becomes_the_settings() {
        let p = PullRequests {
            repository: Some("acme/manifests".into()),
            base_branch: Some("main".into()),
            roots: vec!["apps".into()],
            environment: Some("prod".into()),
            reviewers: vec!["alice".into()],
            ..PullRequests::default()
        };
        let Ok(Some(s)) = settings_from(&p) else {
            panic!("settings expected");
        };
        assert_eq!(s.repo.to_string(), "acme/manifests");
        assert_eq!(s.base.as_deref(), Some("main"));
        assert_eq!(s.roots, vec!["apps".to_string()]);
        assert_eq!(s.environment.as_deref(), Some("prod"));
        assert_eq!(s.reviewers, vec!["alice".to_string()]);
        assert_eq!(s.max_files, p.max_files as usize);
        assert_eq!(s.max_new_per_hour, Some(p.max_new_per_hour));
        assert_eq!(s.max_open, Some(p.max_open));
        assert_eq!(s.ignore_closed_for, p.ignore_closed_for.get());
    }

    #[test]
    fn a_repository_that_is_not_owner_slash_name_is_an_error() {
        let p = PullRequests {
            repository: Some("manifests".into()),
            ..PullRequests::default()
        };
        assert!(settings_from(&p).is_err());
    }
}
