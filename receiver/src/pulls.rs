//! Pull requests in the service: the Kubernetes side of the pull-request
//! executor's [`WorkloadInfo`] seam ([`KubeWorkloads`]), the routing of plans
//! between the Kubernetes executor and the pull-request one ([`Dispatch`]),
//! and the leader-gated loop that settles records when their pull requests
//! are merged or closed ([`poll_pull_requests`]). The executor itself, with
//! proposal building and error mapping, is `gitops::executor`; this module
//! only joins it to the cluster (gitops does not depend on Kubernetes).

use std::sync::Arc;

use async_trait::async_trait;
use gitops::executor::{PullRequestExecutor, WorkloadInfo};
use gitops::github::Repo;
use receiver_core::{ActError, ActionReport, Executor, Plan, WorkloadRef};

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
