//! Recovery verification, read from the cluster: after an action, look at
//! the target (the owning workload's own status, the node's Ready condition,
//! or the object's disappearance) every second within a budget that scales
//! with cluster size. What counts as recovered (the stability window, how a
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
        let selector: Vec<String> = value
            .pointer("/spec/selector/matchLabels")
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                    .collect()
            })
            .unwrap_or_default();
        let restarts = if selector.is_empty() {
            0
        } else {
            let pods: Api<Pod> = Api::namespaced(self.clients.main.clone(), ns);
            let list = pods
                .list(&ListParams::default().labels(&selector.join(",")))
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
                    TargetKind::Namespace => Api::<Namespace>::all(self.clients.main.clone())
                        .get_opt(&t.name)
                        .await?
                        .is_some(),
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

#[async_trait]
impl Verifier for KubeVerifier {
    async fn verify(&self, plan: &Plan) -> Verification {
        let budget = self.budget().await;
        let deadline = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(budget).unwrap_or_default())
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let mut stability = Stability::new(self.stable_for);
        loop {
            let now = jiff::Timestamp::now();
            let health = match self.look(plan).await {
                Ok(h) => h,
                Err(e) => Health::Unhealthy(format!("could not read the target: {e}")),
            };
            if let Some(v) = stability.observe(now, health) {
                return v;
            }
            if stability.expired(now, deadline) {
                return stability.give_up(budget);
            }
            tokio::time::sleep(self.poll).await;
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
