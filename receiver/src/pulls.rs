//! The pull-request executor: a declarative Plan (bump-memory, scale-up,
//! rollback-image) becomes one pull request on the manifest repository,
//! updated in place while the problem persists (gitops::github does the
//! GitHub side). Janitor plans go to the Kubernetes executor.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use gitops::arith::BumpRule;
use gitops::github::text::Evidence;
use gitops::github::{
    Github, PrAction, Proposal, PullRequestSettings, Repo, prepare_from_base, propose,
};
use gitops::locate::{SourceRule, Workload};
use gitops::patch::{Edit, PatchError};
use receiver_core::act::PullRequestRef;
use receiver_core::policy::pull_requests::PullRequests;
use receiver_core::{ActError, ActionReport, Executor, Plan, Remediation, TargetKind, WorkloadRef};
use tokio::sync::Mutex;

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

/// Live workloads through the Kubernetes API.
#[derive(Debug, Clone)]
pub struct KubeWorkloads(pub receiver_k8s::KubeFacts);

#[async_trait]
impl WorkloadInfo for KubeWorkloads {
    async fn source_annotation(&self, w: &WorkloadRef) -> Option<String> {
        self.0
            .workload_annotation(w, "heal8s.io/source")
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the workload's heal8s.io/source annotation");
                None
            })
    }

    async fn previous_image(
        &self,
        w: &WorkloadRef,
        container: Option<&str>,
    ) -> Result<Option<String>, String> {
        self.0
            .previous_image(w, container)
            .await
            .map_err(|e| e.to_string())
    }

    async fn evidence(&self, target: &receiver_core::Target) -> Vec<String> {
        self.0.evidence(target).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read live evidence for the pull request");
            Vec::new()
        })
    }
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
            },
            PrAction::Deferred => ActionReport {
                simulated: true,
                message: format!(
                    "a new pull request on {repo} would exceed a cap (maxNewPerHour/maxOpen); it waits"
                ),
                pull_request: None,
                deferred: Some("RateLimited".into()),
            },
        })
    }
}

fn github_error(e: gitops::github::GithubError) -> ActError {
    ActError {
        category: "github",
        message: e.to_string(),
    }
}

/// Nothing to change puts the plan off (the repository already says it); a
/// value at its cap fails so the guard escalates; the rest is a failure
/// with its category.
fn settle(e: &gitops::github::ProposeError) -> Result<ActionReport, ActError> {
    use gitops::github::ProposeError;
    match (e.patch_error(), e) {
        (Some(PatchError::NoChange(m)), _) => Ok(ActionReport {
            simulated: true,
            message: format!("nothing to change: {m}"),
            pull_request: None,
            deferred: Some("NothingToChange".into()),
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

/// Declarative plans to the pull-request executor, the rest to `janitor`.
pub struct Dispatch {
    pub janitor: Arc<dyn Executor>,
    pub pulls: Option<Arc<PullRequestExecutor>>,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("pulls", &self.pulls)
            .finish()
    }
}

#[async_trait]
impl Executor for Dispatch {
    async fn execute(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, ActError> {
        match &self.pulls {
            Some(p) if plan.kind().is_declarative() => p.execute(plan, dry_run).await,
            _ => self.janitor.execute(plan, dry_run).await,
        }
    }
}

/// Notice merged and declined pull requests: every `every`, while leader, look
/// at each record whose pull request is open (one conditional GitHub read
/// each: a 304 when nothing changed, which GitHub does not count against the
/// rate limit) and settle it as `Merged`, or `Refused`/`Declined` when closed
/// unmerged. Polling rather than a webhook: heal8s needs no inbound route
/// from GitHub.
pub async fn poll_pull_requests(
    exec: Arc<PullRequestExecutor>,
    client: kube::Client,
    leadership: receiver_k8s::leader::Leadership,
    every: std::time::Duration,
    identity: String,
) {
    use receiver_k8s::record::{Phase, open_pull_requests, settle_pull_request};
    // the last answer per pull request, for conditional requests
    let mut seen: std::collections::HashMap<(String, u64), String> =
        std::collections::HashMap::new();
    loop {
        tokio::time::sleep(every).await;
        if !leadership.is_leader() {
            continue;
        }
        let open = match open_pull_requests(client.clone()).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list Remediation records with open pull requests");
                continue;
            }
        };
        for (ns, name, pr) in open {
            let Ok(repo) = Repo::parse(&pr.repository) else {
                continue;
            };
            let key = (pr.repository.clone(), pr.number);
            let state = match exec
                .github()
                .pull_state_if_changed(&repo, pr.number, seen.get(&key).map(String::as_str))
                .await
            {
                // unchanged since the last look: still open
                Ok(None) => continue,
                Ok(Some((state, etag))) => {
                    if let Some(etag) = etag {
                        seen.insert(key, etag);
                    }
                    state
                }
                Err(e) => {
                    tracing::warn!(error = %e, record = %name, "cannot read the pull request's state");
                    continue;
                }
            };
            let settled = if state.merged {
                Some((
                    Phase::Merged,
                    "Merged",
                    format!("pull request {} #{} was merged", pr.repository, pr.number),
                ))
            } else if state.state == "closed" {
                Some((
                    Phase::Refused,
                    "Declined",
                    format!(
                        "pull request {} #{} was closed without merging",
                        pr.repository, pr.number
                    ),
                ))
            } else {
                None
            };
            if let Some((phase, reason, message)) = settled {
                tracing::info!(record = %name, %reason, "{message}");
                if let Err(e) = settle_pull_request(
                    client.clone(),
                    &ns,
                    &name,
                    phase,
                    reason,
                    &message,
                    &identity,
                )
                .await
                {
                    tracing::warn!(error = %e, record = %name, "cannot update the Remediation record");
                }
            }
        }
    }
}
