//! The janitor executors: delete or evict a pod, cordon/drain/delete a node,
//! clean up a custom resource (removing stuck finalizers only as a recorded
//! last resort), delete a namespace; one file each, registered in
//! [`janitor`]. Each is idempotent (a target already gone is success),
//! honours dry-run with the API's server-side `dryRun=All`, and leaves a
//! Kubernetes Event on the target. What the record keeps of an object they
//! delete comes from the live read the plan was checked on (the engine keeps
//! it: `receiver_core::deleted`), so a delete costs no second read; only
//! cleanup-resource, which reads the object to see its finalizers, reports
//! what it kept itself. What to do is decided in the core; these only carry
//! it out.
//!
//! Declarative remediations (pull requests) are not carried out here.

use std::time::Duration;

use async_trait::async_trait;
use kube::api::Preconditions;
use receiver_core::deleted::Deleted;
use receiver_core::ownership::Mark;
use receiver_core::{ActError, ActionReport, Executor, Plan, Remediation, Target};
use tracing::instrument;

use crate::drain::{self, DrainOptions};
use crate::events::Events;
use crate::resources::Resources;
use crate::{Clients, K8sError};

mod cleanup_resource;
mod delete_namespace;
mod delete_node;
mod delete_pod;
mod drain_node;
mod evict_pod;

/// Executor settings that are not per-route parameters.
#[derive(Debug, Clone)]
pub struct KubeExecutorSettings {
    /// How often a 429'd eviction is retried.
    pub eviction_retry: Duration,
    /// How long evict-pod keeps retrying a 429'd eviction.
    pub eviction_timeout: Duration,
    /// How long an object must have been terminating before its finalizers may be removed.
    pub finalizers_after: Duration,
    /// This replica's name, for Events.
    pub instance: Option<String>,
    /// The guard's protection rules: a drain applies them to every pod it would evict.
    pub protection: receiver_core::Protection,
    /// What a drain does with a pod the rules protect (`guard.nodes.protectedPods`).
    pub protected_pods: receiver_core::policy::ProtectedPods,
}

impl Default for KubeExecutorSettings {
    fn default() -> Self {
        KubeExecutorSettings {
            eviction_retry: Duration::from_secs(5),
            eviction_timeout: Duration::from_secs(120),
            finalizers_after: Duration::from_secs(300),
            instance: None,
            protection: receiver_core::Protection::default(),
            protected_pods: receiver_core::policy::ProtectedPods::Skip,
        }
    }
}

/// Carries janitor plans out through the Kubernetes API.
#[derive(Debug, Clone)]
pub struct KubeExecutor {
    clients: Clients,
    resources: Resources,
    events: Events,
    settings: KubeExecutorSettings,
}

pub(super) fn done(message: String) -> Result<ActionReport, K8sError> {
    Ok(ActionReport {
        simulated: false,
        message,
        ..Default::default()
    })
}

/// What an action did, with what the record keeps of the object it deleted.
pub(super) fn done_deleting(
    message: String,
    deleted: Option<Deleted>,
) -> Result<ActionReport, K8sError> {
    Ok(ActionReport {
        simulated: false,
        message,
        deleted,
        ..Default::default()
    })
}

/// Delete only the object the signal was about, not a namesake created since.
pub(super) fn same_object(t: &Target) -> Option<Preconditions> {
    t.uid.clone().map(|uid| Preconditions {
        uid: Some(uid),
        resource_version: None,
    })
}

pub(super) fn prefix(dry_run: bool) -> &'static str {
    if dry_run {
        "dry run, validated by the API server and nothing changed: "
    } else {
        ""
    }
}

impl KubeExecutor {
    /// An executor over `clients`.
    pub fn new(clients: Clients, settings: KubeExecutorSettings) -> KubeExecutor {
        KubeExecutor {
            resources: Resources::new(clients.main.clone()),
            events: Events::new(clients.main.clone(), settings.instance.clone()),
            clients,
            settings,
        }
    }

    pub(super) async fn event(
        &self,
        t: &Target,
        dry_run: bool,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        if !dry_run {
            self.events
                .publish(t, warning, reason, "Remediate", note)
                .await;
        }
    }

    /// Cordon `t`, and (unless `cordon_only`) drain it; drain-node and
    /// delete-node both use it.
    pub(super) async fn drain_node(
        &self,
        t: &Target,
        mark: &Mark,
        opts: DrainOptions,
        cordon_only: bool,
    ) -> Result<drain::DrainReport, K8sError> {
        if !cordon_only {
            // a drain the plan refuses (a bare pod, a protected pod with
            // protectedPods: refuse) changes nothing, not even the cordon
            drain::plan(&self.clients, &t.name, &opts).await?;
        }
        drain::cordon(
            &self.clients,
            &t.name,
            if cordon_only { "cordoned" } else { "draining" },
            mark,
            opts.dry_run,
        )
        .await?;
        self.event(
            t,
            opts.dry_run,
            false,
            "NodeCordoned",
            format!("heal8s cordoned node {}", t.name),
        )
        .await;
        if cordon_only {
            return Ok(drain::DrainReport::default());
        }
        let result = drain::drain(&self.clients, &t.name, &opts).await;
        if !opts.dry_run {
            let state = if result.is_ok() { "drained" } else { "failed" };
            if let Err(e) = drain::mark(&self.clients, &t.name, state).await {
                tracing::warn!(node = %t.name, error = %e, "Could not record the drain state on the node.");
            }
        }
        match &result {
            Ok(r) => {
                self.event(
                    t,
                    opts.dry_run,
                    false,
                    "NodeDrained",
                    format!(
                        "heal8s drained node {}: evicted {}",
                        t.name,
                        r.evicted.len()
                    ),
                )
                .await;
            }
            Err(e) => {
                self.event(t, opts.dry_run, true, "NodeDrainFailed", e.to_string())
                    .await
            }
        }
        result
    }

    #[instrument(skip_all, fields(remediation = %plan.kind(), object = ?plan.target.as_ref().map(ToString::to_string), dry_run))]
    async fn run(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, K8sError> {
        let Some(t) = plan.target.as_ref() else {
            return Err(K8sError::Refused(format!("{} needs a target", plan.kind())));
        };
        // what heal8s writes on an object it changes and does not delete
        let Some(mark) = Mark::of(plan, jiff::Timestamp::now()) else {
            return Err(K8sError::Refused(format!("{} needs a target", plan.kind())));
        };
        match janitor(&plan.remediation) {
            Some(j) => j.carry_out(self, t, &mark, dry_run).await,
            None if plan.kind().is_declarative() => Ok(ActionReport {
                simulated: true,
                message: format!(
                    "not proposed: no pull-request repository is configured (set pullRequests.repository in the policy); would {}",
                    plan.describe()
                ),
                deferred: Some(receiver_core::status::NO_REPOSITORY.into()),
                ..Default::default()
            }),
            None => done(format!("recorded: {}", plan.describe())),
        }
    }
}

/// A janitor action carried out through the Kubernetes API: one file per
/// remediation in this directory, each implementing it for the remediation's
/// parameters (decided in `receiver_core::remediation`).
#[async_trait]
trait Janitor: Sync {
    /// Act on `t` as the plan says; with `dry_run`, through the API's
    /// server-side dry run.
    async fn carry_out(
        &self,
        x: &KubeExecutor,
        t: &Target,
        mark: &Mark,
        dry_run: bool,
    ) -> Result<ActionReport, K8sError>;
}

/// The registry of janitor actions: one line per remediation carried out
/// here. Declarative fixes go to pull requests; notify-only does nothing.
fn janitor(r: &Remediation) -> Option<&dyn Janitor> {
    match r {
        Remediation::DeletePod(p) => Some(p),
        Remediation::EvictPod(p) => Some(p),
        Remediation::DrainNode(p) => Some(p),
        Remediation::DeleteNode(p) => Some(p),
        Remediation::CleanupResource(p) => Some(p),
        Remediation::DeleteNamespace(p) => Some(p),
        Remediation::BumpMemory(_)
        | Remediation::ScaleUp(_)
        | Remediation::RollbackImage(_)
        | Remediation::NotifyOnly(_) => None,
    }
}

#[async_trait]
impl Executor for KubeExecutor {
    async fn execute(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, ActError> {
        let mut r = self.run(plan, dry_run).await.map_err(ActError::from)?;
        r.simulated |= dry_run;
        Ok(r)
    }
}
