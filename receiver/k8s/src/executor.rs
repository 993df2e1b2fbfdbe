//! The janitor executors: delete or evict a pod, cordon/drain/delete a node,
//! clean up a custom resource (removing stuck finalizers only as a recorded
//! last resort), delete a namespace. Each is idempotent (a target already gone
//! is success), honours dry-run with the API's server-side `dryRun=All`, and
//! leaves a Kubernetes Event on the target.
//!
//! Declarative remediations (pull requests) are not carried out here.

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use receiver_core::detect::custom;
use receiver_core::{ActError, ActionReport, Executor, Plan, Remediation, Target, TargetKind};
use serde_json::json;
use tokio::time::Instant;
use tracing::instrument;

use crate::drain::{self, DrainOptions, Evicted};
use crate::events::Events;
use crate::resources::Resources;
use crate::{Clients, K8sError, is_not_found};

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

fn done(message: String) -> Result<ActionReport, K8sError> {
    Ok(ActionReport {
        simulated: false,
        message,
        ..Default::default()
    })
}

/// Delete only the object the signal was about, not a namesake created since.
fn same_object(t: &Target) -> Option<Preconditions> {
    t.uid.clone().map(|uid| Preconditions {
        uid: Some(uid),
        resource_version: None,
    })
}

fn prefix(dry_run: bool) -> &'static str {
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

    async fn event(&self, t: &Target, dry_run: bool, warning: bool, reason: &str, note: String) {
        if !dry_run {
            self.events
                .publish(t, warning, reason, "Remediate", note)
                .await;
        }
    }

    async fn delete_pod(
        &self,
        t: &Target,
        grace: Option<u32>,
        dry_run: bool,
    ) -> Result<ActionReport, K8sError> {
        let ns = t.namespace.as_deref().unwrap_or("default");
        let api: Api<Pod> = Api::namespaced(self.clients.main.clone(), ns);
        let dp = DeleteParams {
            grace_period_seconds: grace,
            dry_run,
            preconditions: same_object(t),
            ..DeleteParams::default()
        };
        match api.delete(&t.name, &dp).await {
            Ok(_) => {
                self.event(
                    t,
                    dry_run,
                    false,
                    "PodDeleted",
                    format!("heal8s deleted pod {ns}/{}", t.name),
                )
                .await;
                done(format!("{}deleted pod {ns}/{}", prefix(dry_run), t.name))
            }
            Err(e) if is_not_found(&e) => done(format!("pod {ns}/{} was already gone", t.name)),
            Err(e) => Err(e.into()),
        }
    }

    async fn evict_pod(
        &self,
        t: &Target,
        grace: Option<u32>,
        fallback: bool,
        dry_run: bool,
    ) -> Result<ActionReport, K8sError> {
        let ns = t.namespace.as_deref().unwrap_or("default");
        let deadline = Instant::now() + self.settings.eviction_timeout;
        match drain::evict_until(
            &self.clients,
            ns,
            &t.name,
            grace,
            dry_run,
            deadline,
            self.settings.eviction_retry,
        )
        .await
        {
            Ok(Evicted::Evicted) => {
                self.event(
                    t,
                    dry_run,
                    false,
                    "PodEvicted",
                    format!("heal8s evicted pod {ns}/{}", t.name),
                )
                .await;
                done(format!("{}evicted pod {ns}/{}", prefix(dry_run), t.name))
            }
            Ok(Evicted::AlreadyGone) => done(format!("pod {ns}/{} was already gone", t.name)),
            Err(K8sError::Timeout(msg)) if fallback => {
                tracing::warn!(namespace = ns, pod = %t.name, "Eviction kept being refused; deleting the pod (fallbackToDelete).");
                let r = self.delete_pod(t, grace, dry_run).await?;
                done(format!("{msg}; fell back to deletion: {}", r.message))
            }
            Err(e) => {
                self.event(t, dry_run, true, "EvictionFailed", e.to_string())
                    .await;
                Err(e)
            }
        }
    }

    async fn drain_node(
        &self,
        t: &Target,
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

    async fn delete_node(&self, t: &Target, dry_run: bool) -> Result<(), K8sError> {
        let api: Api<Node> = Api::all(self.clients.main.clone());
        let dp = DeleteParams {
            dry_run,
            ..DeleteParams::default()
        };
        match api.delete(&t.name, &dp).await {
            Ok(_) => {
                self.event(
                    t,
                    dry_run,
                    false,
                    "NodeDeleted",
                    format!("heal8s deleted node {}", t.name),
                )
                .await;
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn cleanup(
        &self,
        t: &Target,
        remove_finalizers: bool,
        dry_run: bool,
    ) -> Result<ActionReport, K8sError> {
        let TargetKind::Custom(rt) = &t.kind else {
            return Err(K8sError::Refused(format!(
                "cleanup-resource cannot act on {t}"
            )));
        };
        if rt.kind == "Namespace" && rt.group.is_empty() {
            return Err(K8sError::Refused("namespaces are deleted with delete-namespace; their spec.finalizers are never stripped".into()));
        }
        let res = self
            .resources
            .by_kind(&rt.group, &rt.version, &rt.kind)
            .await?
            .ok_or_else(|| K8sError::UnknownResource(rt.api_version() + " " + &rt.kind))?;
        let api: Api<DynamicObject> = match (&t.namespace, res.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.clients.main.clone(), ns, &res.resource),
            _ => Api::all_with(self.clients.main.clone(), &res.resource),
        };
        let Some(obj) = api.get_opt(&t.name).await? else {
            return done(format!("{t} was already gone"));
        };
        let value = serde_json::to_value(&obj).unwrap_or_default();
        let meta = custom::meta(&value);
        let terminating = meta.as_ref().and_then(|m| m.deleting_since);
        let mut said = Vec::new();
        if terminating.is_none() {
            let dp = DeleteParams {
                dry_run,
                ..DeleteParams::background()
            };
            match api.delete(&t.name, &dp).await {
                Ok(_) => said.push(format!("{}deleted {t}", prefix(dry_run))),
                Err(e) if is_not_found(&e) => return done(format!("{t} was already gone")),
                Err(e) => return Err(e.into()),
            }
            self.event(
                t,
                dry_run,
                false,
                "ResourceDeleted",
                format!("heal8s deleted {t}"),
            )
            .await;
        }
        let finalizers = meta
            .as_ref()
            .map(|m| m.finalizers.clone())
            .unwrap_or_default();
        if let Some(since) = terminating
            && !finalizers.is_empty()
        {
            let stuck_for = receiver_core::detect::age(Timestamp::now(), since);
            if !remove_finalizers {
                said.push(format!(
                    "{t} has been terminating for {}s held by finalizers [{}]; finalizer removal is not enabled",
                    stuck_for.as_secs(),
                    finalizers.join(", ")
                ));
            } else if stuck_for < self.settings.finalizers_after {
                said.push(format!(
                    "{t} has been terminating for {}s; finalizers [{}] are removed only after {}s",
                    stuck_for.as_secs(),
                    finalizers.join(", "),
                    self.settings.finalizers_after.as_secs()
                ));
            } else {
                let pp = PatchParams {
                    dry_run,
                    ..PatchParams::default()
                };
                api.patch(
                    &t.name,
                    &pp,
                    &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
                )
                .await?;
                let note = format!(
                    "heal8s removed finalizers [{}] from {t}: terminating for {}s, longer than {}s (last resort)",
                    finalizers.join(", "),
                    stuck_for.as_secs(),
                    self.settings.finalizers_after.as_secs()
                );
                tracing::warn!(object = %t, finalizers = ?finalizers, dry_run, "Removed stuck finalizers as a last resort.");
                self.event(t, dry_run, true, "FinalizersRemoved", note.clone())
                    .await;
                said.push(format!("{}{note}", prefix(dry_run)));
            }
        }
        done(said.join("; "))
    }

    async fn delete_namespace(&self, t: &Target, dry_run: bool) -> Result<ActionReport, K8sError> {
        let api: Api<Namespace> = Api::all(self.clients.main.clone());
        let dp = DeleteParams {
            dry_run,
            preconditions: same_object(t),
            ..DeleteParams::background()
        };
        match api.delete(&t.name, &dp).await {
            Ok(_) => {
                self.event(
                    t,
                    dry_run,
                    false,
                    "NamespaceDeleted",
                    format!("heal8s deleted stale namespace {}", t.name),
                )
                .await;
                done(format!("{}deleted namespace {}", prefix(dry_run), t.name))
            }
            Err(e) if is_not_found(&e) => done(format!("namespace {} was already gone", t.name)),
            Err(e) => Err(e.into()),
        }
    }

    #[instrument(skip_all, fields(remediation = %plan.kind(), object = ?plan.target.as_ref().map(ToString::to_string), dry_run))]
    async fn run(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, K8sError> {
        let Some(t) = plan.target.as_ref() else {
            return Err(K8sError::Refused(format!("{} needs a target", plan.kind())));
        };
        match &plan.remediation {
            Remediation::DeletePod(p) => self.delete_pod(t, p.grace_period_seconds, dry_run).await,
            Remediation::EvictPod(p) => {
                self.evict_pod(t, p.grace_period_seconds, p.fallback_to_delete, dry_run)
                    .await
            }
            Remediation::DrainNode(p) => {
                let opts = DrainOptions {
                    grace_period_seconds: p.grace_period_seconds,
                    delete_emptydir_data: p.delete_emptydir_data,
                    timeout: p.timeout.get(),
                    retry_every: self.settings.eviction_retry,
                    dry_run,
                    protection: self.settings.protection.clone(),
                    protected_pods: self.settings.protected_pods,
                };
                let r = self.drain_node(t, opts, p.cordon_only).await?;
                if p.cordon_only {
                    done(format!("{}cordoned node {}", prefix(dry_run), t.name))
                } else {
                    let mut said = format!(
                        "{}cordoned and drained node {}: evicted [{}], skipped [{}]",
                        prefix(dry_run),
                        t.name,
                        r.evicted.join(", "),
                        r.skipped.join(", ")
                    );
                    if r.kubelet_gone {
                        said.push_str(&format!(
                            "; the node's kubelet is gone, so evicted pods stay Terminating until the node is fenced or deleted: [{}]",
                            r.terminating.join(", ")
                        ));
                        if p.out_of_service_taint {
                            drain::taint_out_of_service(&self.clients, &t.name, dry_run).await?;
                            said.push_str(&format!(
                                "; tainted {}=nodeshutdown:NoExecute (outOfServiceTaint: the node must be shut down)",
                                drain::OUT_OF_SERVICE_TAINT
                            ));
                        }
                    }
                    done(said)
                }
            }
            Remediation::DeleteNode(p) => {
                let mut said = String::new();
                if p.drain_first {
                    let opts = DrainOptions {
                        grace_period_seconds: None,
                        delete_emptydir_data: false,
                        timeout: p.drain_timeout.get(),
                        retry_every: self.settings.eviction_retry,
                        dry_run,
                        protection: self.settings.protection.clone(),
                        protected_pods: self.settings.protected_pods,
                    };
                    // the node is deleted only after a clean drain
                    let r = self.drain_node(t, opts, false).await.map_err(|e| {
                        K8sError::Refused(format!(
                            "node {} was not deleted because its drain failed: {e}",
                            t.name
                        ))
                    })?;
                    said = format!("drained (evicted {}), then ", r.evicted.len());
                }
                self.delete_node(t, dry_run).await?;
                done(format!("{}{said}deleted node {}", prefix(dry_run), t.name))
            }
            Remediation::CleanupResource(p) => self.cleanup(t, p.remove_finalizers, dry_run).await,
            Remediation::DeleteNamespace(_) => self.delete_namespace(t, dry_run).await,
            Remediation::BumpMemory(_)
            | Remediation::ScaleUp(_)
            | Remediation::RollbackImage(_) => Ok(ActionReport {
                simulated: true,
                message: format!(
                    "not proposed: no pull-request repository is configured (set pullRequests.repository in the policy); would {}",
                    plan.describe()
                ),
                deferred: Some(crate::record::NO_REPOSITORY.into()),
                ..Default::default()
            }),
            Remediation::NotifyOnly(_) => done(format!("recorded: {}", plan.describe())),
        }
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
