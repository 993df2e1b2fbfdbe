//! Strain relief (opt-in, `features.strainEviction`): while the cluster is
//! strained, pick non-test pods that are broken anyway (OOM-killed, crash
//! looping, stuck Pending) to evict so test namespaces get room.
//!
//! Pure: pods in, candidates out, in eviction order. Never a pod of a test
//! namespace, never a system-critical one.

use jiff::Timestamp;

use super::pod::PodDetector;
use super::pod_view::PodView;
use super::{Finding, namespace, pod};
use crate::signal::Evidence;

/// Priority at and above which a pod is system-critical (Kubernetes' own classes sit at 2e9).
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

fn is_system_critical(p: &PodView) -> bool {
    p.priority.is_some_and(|v| v >= SYSTEM_CRITICAL_PRIORITY)
        || p.priority_class
            .as_deref()
            .is_some_and(|c| c == "system-cluster-critical" || c == "system-node-critical")
}

/// Pods to evict for relief, best first: OOM-killed, then crash looping, then
/// stuck Pending; lower pod priority first within each.
pub fn candidates(
    pods: &[&PodView],
    test_namespaces: &[String],
    cfg: &PodDetector,
    now: Timestamp,
) -> Vec<Finding> {
    let mut out: Vec<(u8, i32, Finding)> = Vec::new();
    for p in pods {
        let Some(ns) = p.namespace.as_deref() else {
            continue;
        };
        if namespace::matches_any(test_namespaces, ns) || is_system_critical(p) {
            continue;
        }
        let mut all = PodDetector {
            namespaces: Vec::new(),
            ..cfg.clone()
        };
        all.enabled = true;
        let findings = pod::detect_view(p, &all, now);
        let rank = |name: &str| match name {
            "Heal8sContainerOOMKilled" => Some(0),
            "Heal8sPodCrashLooping" => Some(1),
            "Heal8sPodPending" | "Heal8sPodUnschedulable" => Some(2),
            _ => None,
        };
        let Some((r, f)) = findings
            .into_iter()
            .filter_map(|f| rank(f.name).map(|r| (r, f)))
            .min_by_key(|(r, _)| *r)
        else {
            continue;
        };
        let priority = p.priority.unwrap_or(0);
        let mut target = f.target.clone();
        target.container = None;
        out.push((
            r,
            priority,
            Finding {
                name: "Heal8sStrainRelief",
                detector: "strain",
                summary: format!(
                    "the cluster is strained and pod {ns}/{} is {} anyway: evicting it frees room",
                    target.name, f.reason
                ),
                target,
                reason: f.reason.clone(),
                since: now,
                evidence: Evidence {
                    reason: Some(f.reason),
                    ..f.evidence
                },
            },
        ));
    }
    out.sort_by_key(|(r, prio, f)| (*r, *prio, f.target.key()));
    out.into_iter().map(|(_, _, f)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detectors;
    use crate::detect::config::Profile;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn mk(ns: &str, name: &str, kind: &str, priority: i32, class: Option<&str>) -> PodView {
        let (phase, statuses) = match kind {
            "oom" => (
                "Running",
                json!([{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 1,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": t(90).to_string()}}}]),
            ),
            "crash" => (
                "Running",
                json!([{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 9,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
            ),
            "pending" => ("Pending", json!([])),
            _ => (
                "Running",
                json!([{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {}}}]),
            ),
        };
        PodView::of(
            &serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": t(0).to_string()},
                "spec": {"containers": [{"name": "c"}], "priority": priority, "priorityClassName": class},
                "status": {"phase": phase, "containerStatuses": statuses}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn broken_non_test_pods_in_priority_order_never_test_or_critical_ones() {
        let cfg = Detectors::for_profile(Profile::TestCluster).pods;
        let pods = [
            mk("web", "pending-low", "pending", 0, None),
            mk("web", "crash-high", "crash", 1000, None),
            mk("web", "crash-low", "crash", 0, None),
            mk("web", "oom", "oom", 5000, None),
            mk("web", "healthy", "ok", 0, None),
            mk("test-7", "test-crash", "crash", 0, None),
            mk("kube-system", "dns", "crash", 2_000_000_000, None),
            mk("web", "critical", "crash", 0, Some("system-node-critical")),
        ];
        let refs: Vec<&PodView> = pods.iter().collect();
        let names: Vec<String> = candidates(&refs, &["test-*".into()], &cfg, t(1000))
            .into_iter()
            .map(|f| f.target.name)
            .collect();
        assert_eq!(names, ["oom", "crash-low", "crash-high", "pending-low"]);
    }
}
