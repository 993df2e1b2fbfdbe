//! Recovery verification: after an action, watch the target until it is
//! healthy again (the workload's ready replicas, the node's Ready condition, or
//! the object's disappearance) within a budget that scales with cluster size.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use receiver_core::detect::node;
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
    poll: Duration,
}

impl KubeVerifier {
    /// A verifier; `timeout` overrides the size-based budget.
    pub fn new(clients: Clients, timeout: Option<Duration>) -> KubeVerifier {
        KubeVerifier {
            resources: Resources::new(clients.main.clone()),
            clients,
            timeout,
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

    /// `Ok(Some(evidence))` once recovered, `Ok(None)` while not yet.
    async fn check(&self, plan: &Plan) -> Result<Option<String>, kube::Error> {
        let Some(t) = &plan.target else {
            return Ok(Some("nothing to verify".into()));
        };
        let ns = t.namespace.as_deref().unwrap_or("default");
        match (&plan.remediation, &plan.workload) {
            (Remediation::DeletePod(_) | Remediation::EvictPod(_), Some(w))
                if matches!(
                    w.kind.as_str(),
                    "Deployment" | "StatefulSet" | "ReplicaSet" | "DaemonSet"
                ) =>
            {
                let Some(res) = self
                    .resources
                    .by_kind("apps", "v1", &w.kind)
                    .await
                    .ok()
                    .flatten()
                else {
                    return Ok(None);
                };
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.clients.main.clone(), ns, &res.resource);
                let Some(o) = api.get_opt(&w.name).await? else {
                    return Ok(Some(format!("{} {ns}/{} is gone", w.kind, w.name)));
                };
                let num = |p: &str| o.data.pointer(p).and_then(serde_json::Value::as_i64);
                let (ready, want) = if w.kind == "DaemonSet" {
                    (
                        num("/status/numberReady").unwrap_or(0),
                        num("/status/desiredNumberScheduled").unwrap_or(1),
                    )
                } else {
                    (
                        num("/status/readyReplicas").unwrap_or(0),
                        num("/spec/replicas").unwrap_or(1),
                    )
                };
                Ok((ready >= want).then(|| {
                    format!(
                        "{} {ns}/{} has {ready}/{want} ready replicas",
                        w.kind, w.name
                    )
                }))
            }
            (Remediation::DeletePod(_) | Remediation::EvictPod(_), _) => {
                let api: Api<Pod> = Api::namespaced(self.clients.main.clone(), ns);
                Ok(match api.get_opt(&t.name).await? {
                    Some(p) if p.metadata.uid == t.uid || t.uid.is_none() => None,
                    _ => Some(format!("pod {ns}/{} is gone", t.name)),
                })
            }
            (Remediation::DrainNode(_), _) => {
                let api: Api<Node> = Api::all(self.clients.main.clone());
                Ok(match api.get_opt(&t.name).await? {
                    Some(n) if !node::is_unhealthy(&n) => Some(format!("node {} is Ready", t.name)),
                    Some(_) => None,
                    None => Some(format!("node {} is gone (replaced)", t.name)),
                })
            }
            _ => {
                // deletions: recovered once the object is gone
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
                Ok((!exists).then(|| format!("{t} is gone")))
            }
        }
    }
}

#[async_trait]
impl Verifier for KubeVerifier {
    async fn verify(&self, plan: &Plan) -> Verification {
        let budget = self.budget().await;
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            let last = match self.check(plan).await {
                Ok(Some(evidence)) => {
                    return Verification {
                        recovered: true,
                        message: evidence,
                    };
                }
                Ok(None) => "still not recovered".to_string(),
                Err(e) => format!("could not read the target: {e}"),
            };
            if tokio::time::Instant::now() + self.poll > deadline {
                return Verification {
                    recovered: false,
                    message: format!("not recovered within {}s ({last})", budget.as_secs()),
                };
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
