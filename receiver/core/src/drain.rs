//! Which pods a drain evicts, decided: like `kubectl drain
//! --ignore-daemonsets`, plus the guard's protection (protected and excluded
//! namespaces, `heal8s.io/ignore` on the pod, its owners or its namespace).
//!
//! Owns: the drain plan. Pure: the executor in receiver-k8s lists the node's
//! pods (and reads their owners and namespaces), asks for the plan, then
//! evicts exactly what it says.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::facts::ObjectMeta;
use crate::guard::Protection;
use crate::policy::ProtectedPods;

/// One pod on the node, with what the cluster said about it.
#[derive(Debug, Clone)]
pub struct DrainPod<'a> {
    pub pod: &'a Pod,
    /// Its chain of controllers, nearest first (see `Facts::owners`).
    pub owners: Vec<(String, ObjectMeta)>,
}

/// What a drain will do with the node's pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainPlan {
    /// `namespace/name` of the pods to evict.
    pub evict: Vec<String>,
    /// `namespace/name (why)` of the pods left alone: DaemonSet-managed,
    /// mirror and already terminating pods, and (with `protectedPods: skip`)
    /// pods heal8s must not touch.
    pub skipped: Vec<String>,
    /// Why the drain must not go ahead at all (empty when it may).
    pub refused: Vec<String>,
}

fn key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or("-"),
        p.metadata.name.as_deref().unwrap_or("-")
    )
}

fn controller_kind(p: &Pod) -> Option<&str> {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.kind.as_str())
}

fn is_mirror(p: &Pod) -> bool {
    p.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
}

fn uses_emptydir(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(|v| v.empty_dir.is_some()))
}

fn meta(p: &Pod) -> ObjectMeta {
    ObjectMeta {
        labels: p.metadata.labels.clone().unwrap_or_default(),
        annotations: p.metadata.annotations.clone().unwrap_or_default(),
    }
}

/// The plan for draining a node whose pods are `pods`. `namespaces` holds
/// the metadata of the pods' namespaces (for their opt-out).
pub fn plan(
    pods: &[DrainPod<'_>],
    namespaces: &BTreeMap<String, ObjectMeta>,
    protection: &Protection,
    protected_pods: ProtectedPods,
    delete_emptydir_data: bool,
) -> DrainPlan {
    let mut out = DrainPlan::default();
    for DrainPod { pod: p, owners } in pods {
        if p.metadata.deletion_timestamp.is_some() {
            out.skipped
                .push(format!("{} (already terminating)", key(p)));
            continue;
        }
        if controller_kind(p) == Some("DaemonSet") {
            out.skipped.push(format!("{} (DaemonSet)", key(p)));
            continue;
        }
        if is_mirror(p) {
            out.skipped.push(format!("{} (mirror pod)", key(p)));
            continue;
        }
        let ns = p.metadata.namespace.as_deref();
        if let Some(r) = protection.refusal(
            ns,
            Some(&meta(p)),
            owners,
            ns.and_then(|n| namespaces.get(n)),
        ) {
            match protected_pods {
                ProtectedPods::Skip => out.skipped.push(format!(
                    "{} ({}: {}; left on the cordoned node)",
                    key(p),
                    r.reason,
                    r.message
                )),
                ProtectedPods::Refuse => out.refused.push(format!(
                    "{} must not be touched ({}: {}; guard.nodes.protectedPods is refuse)",
                    key(p),
                    r.reason,
                    r.message
                )),
            }
            continue;
        }
        if controller_kind(p).is_none() {
            out.refused.push(format!(
                "{} has no controller and would not come back",
                key(p)
            ));
        } else if uses_emptydir(p) && !delete_emptydir_data {
            out.refused.push(format!(
                "{} uses emptyDir (its data would be lost; set deleteEmptydirData)",
                key(p)
            ));
        } else {
            out.evict.push(key(p));
        }
    }
    out
}

/// Whether `selector` selects an object with `labels` (matchLabels and
/// matchExpressions, as the API server evaluates them; an empty selector
/// selects everything, as a PodDisruptionBudget's does in policy/v1).
pub fn selects(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expr = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    by_label && by_expr
}

/// The PodDisruptionBudgets that cover `pod` (same namespace, selector
/// matches), each as a sentence: `PodDisruptionBudget shop/api (minAvailable
/// 1, 0 disruptions allowed)`.
pub fn blocking_budgets(
    pod: &Pod,
    pdbs: &[k8s_openapi::api::policy::v1::PodDisruptionBudget],
) -> Vec<String> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref();
    pdbs.iter()
        .filter(|b| b.metadata.namespace.as_deref() == ns)
        .filter(|b| {
            b.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| selects(sel, &labels))
        })
        .map(|b| {
            let spec = b.spec.as_ref();
            let limit = match (
                spec.and_then(|s| s.min_available.as_ref()),
                spec.and_then(|s| s.max_unavailable.as_ref()),
            ) {
                (Some(m), _) => format!("minAvailable {}", int_or_string(m)),
                (None, Some(m)) => format!("maxUnavailable {}", int_or_string(m)),
                (None, None) => "no limit".to_string(),
            };
            let allowed = b.status.as_ref().map_or(0, |s| s.disruptions_allowed);
            format!(
                "PodDisruptionBudget {}/{} ({limit}, {allowed} disruptions allowed)",
                ns.unwrap_or("-"),
                b.metadata.name.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

fn int_or_string(v: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match v {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

/// What heal8s does with a node it drained once the node has been Ready for
/// the settle period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Uncordon it and remove heal8s's marks: the cordon was heal8s's own and
    /// nobody changed it since.
    Uncordon,
    /// Remove heal8s's marks, keep the cordon: someone else cordoned it first.
    Unmark,
    /// Leave it as it is: a person changed heal8s's mark (a human change wins).
    LeaveAlone(String),
    /// Take only heal8s's own marks off: a person uncordoned the node while
    /// heal8s held it (their change wins, and stood for the episode; the
    /// episode ends with the recovery).
    Forget(String),
}

/// The release of `node` (see [`Release`]): `mark` is heal8s's remediation
/// annotation as it is now, `cordoned_by_heal8s` its ownership mark,
/// `unschedulable` the node's current cordon.
pub fn release(
    node: &str,
    mark: Option<&str>,
    cordoned_by_heal8s: bool,
    unschedulable: bool,
) -> Release {
    match mark {
        None => Release::LeaveAlone(format!(
            "heal8s's mark was removed from node {node} by someone else; left as it is"
        )),
        Some(m)
            if !matches!(
                m,
                "draining" | "drained" | "cordoned" | "failed" | "interrupted"
            ) =>
        {
            Release::LeaveAlone(format!(
                "heal8s's mark on node {node} was changed to {m:?} by someone else; left as it is"
            ))
        }
        Some(_) if !unschedulable => Release::Forget(format!(
            "node {node} was uncordoned by someone else; left as they made it (heal8s's marks taken off)"
        )),
        Some(_) if cordoned_by_heal8s => Release::Uncordon,
        Some(_) => Release::Unmark,
    }
}

/// What to do with a node a drain was cut off on (a restart, a crash, a
/// lost lease left it marked `draining`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconcile {
    /// Make it schedulable again (only a cordon heal8s made, on a Ready node).
    pub uncordon: bool,
    /// The node's remediation mark from now on; `None` removes heal8s's marks.
    pub mark: Option<&'static str>,
    /// What happened, for the record's history.
    pub message: String,
}

/// The reconciliation of an interrupted drain on `node`: a node that is
/// Ready again gets back what heal8s took (its own cordon; a cordon someone
/// else made stays), and a node still unhealthy keeps its cordon but no
/// longer blocks other node remediations (it is drained again when it is
/// signalled again, cooldown permitting).
pub fn reconcile_interrupted(node: &str, ready: bool, cordoned_by_heal8s: bool) -> Reconcile {
    match (ready, cordoned_by_heal8s) {
        (true, true) => Reconcile {
            uncordon: true,
            mark: None,
            message: format!(
                "interrupted drain reconciled: node {node} is Ready again, so heal8s undid its own cordon"
            ),
        },
        (true, false) => Reconcile {
            uncordon: false,
            mark: None,
            message: format!(
                "interrupted drain reconciled: node {node} is Ready again; it was cordoned before heal8s came, so it stays cordoned"
            ),
        },
        (false, _) => Reconcile {
            uncordon: false,
            mark: Some("interrupted"),
            message: format!(
                "interrupted drain reconciled: node {node} is still not Ready; it stays cordoned and is drained again when it is signalled again"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::GuardConfig;
    use serde_json::json;

    fn pod(ns: &str, name: &str, owner: Option<&str>, labels: serde_json::Value) -> Pod {
        let refs = match owner {
            Some(kind) => {
                json!([{"apiVersion": "apps/v1", "kind": kind, "name": "o", "uid": "u", "controller": true}])
            }
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": refs},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap()
    }

    fn protection() -> Protection {
        Protection::new(&GuardConfig::default(), "heal8s").unwrap()
    }

    fn run(pods: &[Pod], owners: &[Vec<(String, ObjectMeta)>], mode: ProtectedPods) -> DrainPlan {
        let ds: Vec<DrainPod<'_>> = pods
            .iter()
            .zip(owners.iter().cloned().chain(std::iter::repeat(Vec::new())))
            .map(|(pod, owners)| DrainPod { pod, owners })
            .collect();
        let mut namespaces = BTreeMap::new();
        namespaces.insert(
            "quiet".to_string(),
            ObjectMeta {
                labels: [("heal8s.io/ignore".to_string(), "true".to_string())].into(),
                ..ObjectMeta::default()
            },
        );
        plan(&ds, &namespaces, &protection(), mode, false)
    }

    #[test]
    fn protected_and_opted_out_pods_are_skipped_not_evicted() {
        let pods = [
            pod("shop", "web-1", Some("ReplicaSet"), json!({})),
            pod("kube-system", "coredns-1", Some("ReplicaSet"), json!({})),
            pod(
                "shop",
                "db-1",
                Some("StatefulSet"),
                json!({"heal8s.io/ignore": "true"}),
            ),
            pod("quiet", "q-1", Some("ReplicaSet"), json!({})),
            pod("heal8s", "heal8s-1", Some("ReplicaSet"), json!({})),
            pod("shop", "agent-1", Some("DaemonSet"), json!({})),
        ];
        let p = run(&pods, &[], ProtectedPods::Skip);
        assert_eq!(p.evict, ["shop/web-1"]);
        assert!(p.refused.is_empty(), "{p:?}");
        let skipped = p.skipped.join("\n");
        for (pod, why) in [
            ("kube-system/coredns-1", "protected_namespace"),
            ("shop/db-1", "opted_out"),
            ("quiet/q-1", "namespace_opted_out"),
            ("heal8s/heal8s-1", "protected_namespace"),
            ("shop/agent-1", "DaemonSet"),
        ] {
            assert!(
                p.skipped
                    .iter()
                    .any(|s| s.starts_with(pod) && s.contains(why)),
                "{pod} {why}\n{skipped}"
            );
        }
    }

    #[test]
    fn an_opted_out_owner_protects_its_pods() {
        let pods = [pod("shop", "api-1", Some("ReplicaSet"), json!({}))];
        let owners = [vec![
            (
                "ReplicaSet shop/api-7d9c".to_string(),
                ObjectMeta::default(),
            ),
            (
                "Deployment shop/api".to_string(),
                ObjectMeta {
                    annotations: [("heal8s.io/ignore".to_string(), "true".to_string())].into(),
                    ..ObjectMeta::default()
                },
            ),
        ]];
        let p = run(&pods, &owners, ProtectedPods::Skip);
        assert!(p.evict.is_empty());
        assert!(p.skipped[0].contains("Deployment shop/api"), "{p:?}");
    }

    #[test]
    fn an_interrupted_drain_gives_back_only_what_heal8s_took() {
        let r = reconcile_interrupted("w1", true, true);
        assert!(r.uncordon);
        assert_eq!(r.mark, None);
        // a person cordoned it first: a human change wins
        let r = reconcile_interrupted("w1", true, false);
        assert!(!r.uncordon);
        assert_eq!(r.mark, None);
        // still broken: keep the cordon, release the mark that blocks other nodes
        let r = reconcile_interrupted("w1", false, true);
        assert!(!r.uncordon);
        assert_eq!(r.mark, Some("interrupted"));
    }

    #[test]
    fn a_recovered_node_is_uncordoned_only_if_heal8s_cordoned_it_and_nobody_changed_it() {
        assert_eq!(
            release("w1", Some("drained"), true, true),
            Release::Uncordon
        );
        assert_eq!(
            release("w1", Some("cordoned"), true, true),
            Release::Uncordon
        );
        assert_eq!(release("w1", Some("drained"), false, true), Release::Unmark);
        // a person uncordoned it: their change stands; heal8s only takes its marks off
        assert!(matches!(
            release("w1", Some("drained"), true, false),
            Release::Forget(_)
        ));
        for (mark, ours, cordoned) in [(None, true, true), (Some("keep-for-debugging"), true, true)]
        {
            assert!(
                matches!(release("w1", mark, ours, cordoned), Release::LeaveAlone(_)),
                "{mark:?} {ours} {cordoned}"
            );
        }
    }

    #[test]
    fn the_budgets_covering_a_pod_are_named_with_their_limits() {
        let p = pod(
            "shop",
            "api-1",
            Some("ReplicaSet"),
            json!({"app": "api", "tier": "web"}),
        );
        let pdbs: Vec<k8s_openapi::api::policy::v1::PodDisruptionBudget> = serde_json::from_value(json!([
            {"metadata": {"name": "api", "namespace": "shop"},
             "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}},
             "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 1, "expectedPods": 1}},
            {"metadata": {"name": "web", "namespace": "shop"},
             "spec": {"maxUnavailable": "10%", "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}}},
            {"metadata": {"name": "other", "namespace": "shop"},
             "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}},
            {"metadata": {"name": "api", "namespace": "elsewhere"},
             "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}}
        ]))
        .unwrap();
        let b = blocking_budgets(&p, &pdbs);
        assert_eq!(
            b,
            [
                "PodDisruptionBudget shop/api (minAvailable 1, 0 disruptions allowed)",
                "PodDisruptionBudget shop/web (maxUnavailable 10%, 0 disruptions allowed)"
            ]
        );
    }

    #[test]
    fn refuse_mode_refuses_the_whole_drain() {
        let pods = [
            pod("shop", "web-1", Some("ReplicaSet"), json!({})),
            pod("kube-system", "coredns-1", Some("ReplicaSet"), json!({})),
        ];
        let p = run(&pods, &[], ProtectedPods::Refuse);
        assert_eq!(p.refused.len(), 1, "{p:?}");
        assert!(p.refused[0].contains("kube-system/coredns-1"));
    }

    #[test]
    fn bare_pods_and_emptydir_refuse_like_kubectl() {
        let bare = pod("shop", "bare", None, json!({}));
        let p = run(&[bare], &[], ProtectedPods::Skip);
        assert!(p.refused[0].contains("no controller"), "{p:?}");
        let mut e = pod("shop", "cache", Some("ReplicaSet"), json!({}));
        e.spec.as_mut().unwrap().volumes = Some(vec![
            serde_json::from_value(json!({"name": "tmp", "emptyDir": {}})).unwrap(),
        ]);
        let p = run(&[e], &[], ProtectedPods::Skip);
        assert!(p.refused[0].contains("emptyDir"), "{p:?}");
    }
}
