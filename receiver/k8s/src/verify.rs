//! Recovery verification, read from the cluster: after an action, look at
//! the target (the owning workload's own status, the node's Ready condition,
//! or the object's disappearance) after 1 s, then at doubling intervals up to
//! [`POLL_MAX`], within a budget that scales with cluster size. The pods a
//! workload selects and the namespace count come from the watch caches when
//! they are synced. What counts as recovered (the stability window, how a
//! workload's status reads, "unverified") is decided in
//! `receiver_core::verify`.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use receiver_core::detect::node;
use receiver_core::verify::{Health, Stability, owner_api, workload_health};
use receiver_core::{Plan, Remediation, TargetKind, Verification, Verifier};

use crate::Clients;
use crate::resources::Resources;

/// The default budget for a cluster with `namespaces` namespaces (the Pod
/// Cleaner seed's: small ≤ 50 → 180 s, medium ≤ 200 → 150 s, large → 120 s).
pub fn budget_for(namespaces: usize) -> Duration {
    match namespaces {
        0..=50 => Duration::from_secs(180),
        51..=200 => Duration::from_secs(150),
        _ => Duration::from_secs(120),
    }
}

/// The longest wait between two looks at a target being verified.
pub const POLL_MAX: Duration = Duration::from_secs(10);

/// Verifies recovery through the Kubernetes API.
#[derive(Debug, Clone)]
pub struct KubeVerifier {
    clients: Clients,
    resources: Resources,
    timeout: Option<Duration>,
    stable_for: Duration,
    poll: Duration,
}

impl KubeVerifier {
    /// A verifier; `timeout` overrides the size-based budget, `stable_for`
    /// is how long a target must stay healthy to count as recovered.
    pub fn new(clients: Clients, timeout: Option<Duration>, stable_for: Duration) -> KubeVerifier {
        KubeVerifier {
            resources: Resources::new(clients.main.clone()),
            clients,
            timeout,
            stable_for,
            poll: Duration::from_secs(1),
        }
    }

    async fn budget(&self) -> Duration {
        if let Some(t) = self.timeout {
            return t;
        }
        if let Some(n) = self.clients.caches.namespace_count() {
            return budget_for(n);
        }
        let api: Api<Namespace> = Api::all(self.clients.main.clone());
        match api.list_metadata(&ListParams::default()).await {
            Ok(l) => budget_for(l.items.len()),
            Err(_) => budget_for(0),
        }
    }

    /// The owner's status, and the restart total of the pods it selects.
    async fn owner_health(&self, kind: &str, ns: &str, name: &str) -> Result<Health, kube::Error> {
        let Some((group, version)) = owner_api(kind) else {
            return Ok(workload_health(kind, ns, &serde_json::Value::Null, 0));
        };
        let Some(res) = self
            .resources
            .by_kind(group, version, kind)
            .await
            .ok()
            .flatten()
        else {
            return Ok(Health::Unknowable(format!(
                "{kind} ({group}/{version}) is not served by this cluster"
            )));
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.clients.main.clone(), ns, &res.resource);
        let Some(o) = api.get_opt(name).await? else {
            return Ok(Health::Unhealthy(format!("{kind} {ns}/{name} is gone")));
        };
        let value = serde_json::to_value(&o).unwrap_or_default();
        let selector: std::collections::BTreeMap<String, String> = value
            .pointer("/spec/selector/matchLabels")
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let restarts = if selector.is_empty() {
            0
        } else if let Some(n) = self.clients.caches.restarts_selected(ns, &selector) {
            // the pod watch already holds them: no request
            n
        } else {
            let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let pods: Api<Pod> = Api::namespaced(self.clients.main.clone(), ns);
            let list = pods
                .list(&ListParams::default().labels(&labels.join(",")))
                .await?;
            receiver_core::verify::restarts(&list.items)
        };
        Ok(workload_health(kind, ns, &value, restarts))
    }

    /// One look at `plan`'s target.
    async fn look(&self, plan: &Plan) -> Result<Health, kube::Error> {
        let Some(t) = &plan.target else {
            return Ok(Health::Unknowable("the plan had no target".into()));
        };
        let ns = t.namespace.as_deref().unwrap_or("default");
        match (&plan.remediation, &plan.workload) {
            (Remediation::DeletePod(_) | Remediation::EvictPod(_), Some(w)) => {
                self.owner_health(&w.kind, ns, &w.name).await
            }
            (Remediation::DeletePod(_) | Remediation::EvictPod(_), None) => {
                Ok(Health::Unknowable(format!(
                    "pod {ns}/{} has no owner, so nothing recreates it; whether the problem is gone cannot be verified",
                    t.name
                )))
            }
            (Remediation::DrainNode(_), _) => {
                let api: Api<Node> = Api::all(self.clients.main.clone());
                Ok(match api.get_opt(&t.name).await? {
                    Some(n) if !node::is_unhealthy(&n) => Health::Healthy {
                        evidence: format!("node {} is Ready", t.name),
                        restarts: 0,
                    },
                    Some(n) => Health::Unhealthy(format!(
                        "node {} is Ready={}",
                        t.name,
                        node::ready_status(&n).unwrap_or("absent")
                    )),
                    None => Health::Gone(format!("node {} is gone (replaced)", t.name)),
                })
            }
            _ => {
                // deletions: done once the object is gone
                let exists = match &t.kind {
                    TargetKind::Node => Api::<Node>::all(self.clients.main.clone())
                        .get_opt(&t.name)
                        .await?
                        .is_some(),
                    TargetKind::Namespace => {
                        match Api::<Namespace>::all(self.clients.main.clone())
                            .get_opt(&t.name)
                            .await?
                        {
                            // say what holds a namespace in Terminating
                            Some(n) if n.metadata.deletion_timestamp.is_some() => {
                                let why: Vec<String> = n
                                    .status
                                    .and_then(|s| s.conditions)
                                    .unwrap_or_default()
                                    .into_iter()
                                    .filter(|c| c.status == "True")
                                    .filter_map(|c| c.message)
                                    .collect();
                                return Ok(Health::Unhealthy(format!(
                                    "namespace {} is still Terminating{}",
                                    t.name,
                                    if why.is_empty() {
                                        String::new()
                                    } else {
                                        format!(": {}", why.join("; "))
                                    }
                                )));
                            }
                            Some(_) => true,
                            None => false,
                        }
                    }
                    TargetKind::Custom(rt) => match self
                        .resources
                        .by_kind(&rt.group, &rt.version, &rt.kind)
                        .await
                        .ok()
                        .flatten()
                    {
                        Some(res) if res.namespaced => Api::<DynamicObject>::namespaced_with(
                            self.clients.main.clone(),
                            ns,
                            &res.resource,
                        )
                        .get_opt(&t.name)
                        .await?
                        .is_some(),
                        Some(res) => {
                            Api::<DynamicObject>::all_with(self.clients.main.clone(), &res.resource)
                                .get_opt(&t.name)
                                .await?
                                .is_some()
                        }
                        None => false,
                    },
                    _ => false,
                };
                Ok(if exists {
                    Health::Unhealthy(format!("{t} still exists"))
                } else {
                    Health::Gone(format!("{t} is gone"))
                })
            }
        }
    }
}

impl KubeVerifier {
    /// Give back a node heal8s drained once it has been Ready for the settle
    /// period (see `receiver_core::drain::release`); what was done, as a sentence.
    async fn release_node(&self, name: &str) -> Result<String, kube::Error> {
        use kube::api::{Patch, PatchParams};
        use receiver_core::drain::{Release, release};
        let api: Api<Node> = Api::all(self.clients.main.clone());
        let Some(n) = api.get_opt(name).await? else {
            return Ok(format!("node {name} is gone"));
        };
        let annotations = n.metadata.annotations.clone().unwrap_or_default();
        let decision = release(
            name,
            annotations
                .get(crate::NODE_REMEDIATION_ANNOTATION)
                .map(String::as_str),
            annotations
                .get(crate::NODE_CORDONED_ANNOTATION)
                .is_some_and(|v| v == "true"),
            n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true),
        );
        let mut unmark = serde_json::json!({"metadata": {"annotations": {
            crate::NODE_REMEDIATION_ANNOTATION: null,
            crate::NODE_CORDONED_ANNOTATION: null,
        }}});
        let marks: std::collections::BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for k in receiver_core::ownership::marks_to_remove(&marks) {
            unmark["metadata"]["annotations"][k] = serde_json::Value::Null;
        }
        // the taint heal8s set (its mark names it) is lifted with the cordon
        let taints = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let lift =
            receiver_core::ownership::lift_taint(&marks, taints.iter().map(|t| t.key.as_str()));
        let mut lifted = String::new();
        if let Some(key) = &lift
            && !matches!(decision, Release::LeaveAlone(_))
        {
            let kept: Vec<_> = taints.iter().filter(|t| &t.key != key).collect();
            unmark["spec"]["taints"] = serde_json::to_value(kept).unwrap_or_default();
            lifted = format!("; lifted its taint {key}");
        }
        match decision {
            Release::Uncordon => {
                let mut patch = unmark;
                patch["spec"]["unschedulable"] = serde_json::Value::Null;
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                Ok(format!(
                    "heal8s uncordoned node {name} (its own cordon){lifted}"
                ))
            }
            Release::Unmark => {
                api.patch(name, &PatchParams::default(), &Patch::Merge(&unmark))
                    .await?;
                Ok(format!(
                    "node {name} stays cordoned: it was cordoned before heal8s came{lifted}"
                ))
            }
            Release::Forget(why) => {
                api.patch(name, &PatchParams::default(), &Patch::Merge(&unmark))
                    .await?;
                Ok(format!("{why}{lifted}"))
            }
            Release::LeaveAlone(why) => Ok(why),
        }
    }
}

#[async_trait]
impl Verifier for KubeVerifier {
    async fn verify(&self, plan: &Plan) -> Verification {
        use receiver_core::VerifyResult;
        let budget = self.budget().await;
        let deadline = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(budget).unwrap_or_default())
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let mut stability = Stability::new(self.stable_for);
        // look often at first (most targets recover within seconds), then
        // back off to a tenth of the budget's first minutes: a storm's
        // verifications cost few requests
        let mut poll = self.poll;
        let poll_max = (budget / 18).clamp(self.poll, POLL_MAX);
        let drained = matches!(plan.remediation, Remediation::DrainNode(_));
        loop {
            let now = jiff::Timestamp::now();
            let health = match self.look(plan).await {
                Ok(h) => h,
                Err(e) => Health::Unhealthy(format!("could not read the target: {e}")),
            };
            if let Some(mut v) = stability.observe(now, health) {
                if drained
                    && v.result == VerifyResult::Recovered
                    && let Some(t) = &plan.target
                {
                    // recovered only once heal8s has given back what it took
                    match self.release_node(&t.name).await {
                        Ok(done) => v.message = format!("{}; {done}", v.message),
                        Err(e) => {
                            v.result = VerifyResult::NotRecovered;
                            v.message =
                                format!("{}, but heal8s could not uncordon it: {e}", v.message);
                        }
                    }
                }
                return v;
            }
            if stability.expired(now, deadline) {
                let mut v = stability.give_up(budget);
                if drained {
                    // the drain did its job; the node did not come back
                    v.result = VerifyResult::StillDown;
                    v.message = format!("drained, but the node is still down: {}", v.message);
                }
                return v;
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(poll_max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::budget_for;
    use std::time::Duration;

    #[test]
    fn budget_scales_with_cluster_size() {
        assert_eq!(budget_for(10), Duration::from_secs(180));
        assert_eq!(budget_for(50), Duration::from_secs(180));
        assert_eq!(budget_for(51), Duration::from_secs(150));
        assert_eq!(budget_for(200), Duration::from_secs(150));
        assert_eq!(budget_for(201), Duration::from_secs(120));
    }
}
