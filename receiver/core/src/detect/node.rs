//! Node detector: Ready False/Unknown past their thresholds, resource pressure,
//! and the cluster-wide shares the guard needs (strain, unhealthy nodes).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use serde::{Deserialize, Serialize};

use super::config::{Overrides, Profile};
use super::{Detector, DetectorSpec, Finding, Object, Watched, age, at_least};
use crate::duration::PromDuration;
use crate::signal::Evidence;
use crate::target::{Target, TargetKind};

/// Node detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeDetector {
    pub enabled: bool,
    /// Ready=False for this long is signalled (Heal8sNodeNotReady).
    pub not_ready_after: PromDuration,
    /// Ready=Unknown for this long is signalled (Heal8sNodeUnreachable).
    pub unknown_after: PromDuration,
    /// Share of nodes under Memory/Disk/PID pressure (percent) from which the cluster is "strained".
    pub strain_threshold_percent: u32,
}

impl DetectorSpec for NodeDetector {
    const KEY: &'static str = "nodes";

    fn defaults(_profile: Profile) -> NodeDetector {
        NodeDetector {
            enabled: true,
            not_ready_after: PromDuration::secs(5 * 60),
            unknown_after: PromDuration::secs(2 * 60),
            strain_threshold_percent: 30,
        }
    }

    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        at_least(&mut out, "notReadyAfter", self.not_ready_after, 1);
        at_least(&mut out, "unknownAfter", self.unknown_after, 1);
        if !(1..=100).contains(&self.strain_threshold_percent) {
            out.push((
                "strainThresholdPercent".into(),
                "must be between 1 and 100".into(),
            ));
        }
        out
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(t) = o.strain_threshold_percent {
            self.strain_threshold_percent = t;
        }
    }
}

impl Detector for NodeDetector {
    fn name(&self) -> &'static str {
        "nodes"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn watches(&self) -> Vec<Watched> {
        vec![Watched::Nodes]
    }

    fn detect(&self, o: Object<'_>, now: Timestamp) -> Vec<Finding> {
        match o {
            Object::Node(n) => detect(n, self, now),
            _ => Vec::new(),
        }
    }
}


/// Pressure conditions that mean a node is strained.
pub const PRESSURE: &[&str] = &["MemoryPressure", "DiskPressure", "PIDPressure"];

fn condition<'a>(
    node: &'a Node,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The Ready condition's status (`True`, `False`, `Unknown`), `None` when absent.
pub fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

/// A node counts as unhealthy when its Ready condition is not True.
pub fn is_unhealthy(node: &Node) -> bool {
    ready_status(node) != Some("True")
}

/// The pressure conditions that are True on `node`.
pub fn pressures(node: &Node) -> Vec<&'static str> {
    PRESSURE
        .iter()
        .copied()
        .filter(|p| condition(node, p).is_some_and(|c| c.status == "True"))
        .collect()
}

/// Everything the detector finds wrong with `node` at `now`.
pub fn detect(node: &Node, cfg: &NodeDetector, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(name) = node.metadata.name.as_deref() else {
        return out;
    };
    let mut target = Target::new(TargetKind::Node, None, name);
    target.node = Some(name.to_string());
    target.uid = node.metadata.uid.clone();
    if let Some(c) = condition(node, "Ready") {
        let since = c
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let (signal, after) = match c.status.as_str() {
            "False" => ("Heal8sNodeNotReady", cfg.not_ready_after.get()),
            "Unknown" => ("Heal8sNodeUnreachable", cfg.unknown_after.get()),
            _ => ("", std::time::Duration::MAX),
        };
        if !signal.is_empty() && age(now, since) >= after {
            let reason = c
                .reason
                .clone()
                .unwrap_or_else(|| format!("Ready{}", c.status));
            out.push(Finding {
                name: signal,
                detector: "nodes",
                target: target.clone(),
                reason: reason.clone(),
                since,
                evidence: Evidence {
                    reason: Some(reason),
                    details: c
                        .message
                        .iter()
                        .map(|m| ("message".to_string(), m.clone()))
                        .collect(),
                    ..Evidence::default()
                },
                summary: format!("node {name} has been Ready={} since {since}", c.status),
            });
        }
    }
    for p in pressures(node) {
        let since = condition(node, p)
            .and_then(|c| c.last_transition_time.as_ref())
            .map_or(now, |t| t.0);
        out.push(Finding {
            name: "Heal8sNodePressure",
            detector: "nodes",
            target: target.clone(),
            reason: p.to_string(),
            since,
            evidence: Evidence {
                reason: Some(p.to_string()),
                ..Evidence::default()
            },
            summary: format!("node {name} reports {p}"),
        });
    }
    out
}

/// Annotation heal8s puts on a node it is remediating: `draining`,
/// `drained`, `cordoned`, `failed` or `interrupted`.
pub const REMEDIATION_ANNOTATION: &str = "heal8s.io/remediation";

/// Annotation heal8s puts on a node it cordoned itself (it was schedulable
/// before): heal8s's ownership mark; it only ever uncordons such a node.
pub const CORDONED_ANNOTATION: &str = "heal8s.io/cordoned";

/// Whether heal8s holds `n`: its remediation mark is on and the node is still
/// unschedulable. A held node counts as unhealthy and as in flight until it is
/// Ready again and uncordoned (or deleted); a person who uncordons it releases it.
pub fn held(n: &Node) -> bool {
    let marked = n
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(REMEDIATION_ANNOTATION));
    let cordoned = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    marked && cordoned
}

/// The node counts the partition breaker needs: the total, the nodes
/// unhealthy or held by heal8s (each once), and the names of the held ones.
pub fn breaker_census<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> (u32, u32, Vec<String>) {
    let (mut total, mut down) = (0u32, 0u32);
    let mut held_names = Vec::new();
    for n in nodes {
        total += 1;
        let h = held(n);
        down += u32::from(h || is_unhealthy(n));
        if h {
            held_names.extend(n.metadata.name.clone());
        }
    }
    (total, down, held_names)
}

/// Cluster-wide node health, for strain and partition checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCensus {
    pub total: u32,
    pub unhealthy: u32,
    pub under_pressure: u32,
}

impl NodeCensus {
    /// Count over `nodes`.
    pub fn of<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> NodeCensus {
        let mut c = NodeCensus::default();
        for n in nodes {
            c.total += 1;
            c.unhealthy += u32::from(is_unhealthy(n));
            c.under_pressure += u32::from(!pressures(n).is_empty());
        }
        c
    }

    /// Percent of nodes under pressure.
    pub fn strain_percent(&self) -> u32 {
        percent(self.under_pressure, self.total)
    }

    /// Percent of nodes not Ready.
    pub fn unhealthy_percent(&self) -> u32 {
        percent(self.unhealthy, self.total)
    }

    /// Whether the share under pressure reaches `threshold_percent`.
    pub fn strained(&self, threshold_percent: u32) -> bool {
        self.total > 0 && self.strain_percent() >= threshold_percent
    }
}

fn percent(n: u32, total: u32) -> u32 {
    if total == 0 {
        0
    } else {
        u32::try_from(u64::from(n) * 100 / u64::from(total)).unwrap_or(100)
    }
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

    fn mk_node(name: &str, ready: &str, since: i64, pressure: &[&str]) -> Node {
        let mut conds = vec![
            json!({"type": "Ready", "status": ready, "reason": "KubeletNotReady",
                                    "lastTransitionTime": t(since).to_string()}),
        ];
        for p in pressure {
            conds.push(
                json!({"type": p, "status": "True", "lastTransitionTime": t(since).to_string()}),
            );
        }
        serde_json::from_value(json!({"metadata": {"name": name, "uid": "n-1"},
                                      "status": {"conditions": conds}}))
        .unwrap()
    }

    fn cfg() -> NodeDetector {
        Detectors::for_profile(Profile::Production).nodes
    }

    #[test]
    fn not_ready_after_five_minutes_and_unknown_after_two() {
        let n = mk_node("w1", "False", 0, &[]);
        assert!(detect(&n, &cfg(), t(299)).is_empty());
        let f = detect(&n, &cfg(), t(300));
        assert_eq!(f[0].name, "Heal8sNodeNotReady");
        assert_eq!(f[0].target.kind, TargetKind::Node);
        let u = mk_node("w2", "Unknown", 0, &[]);
        assert!(detect(&u, &cfg(), t(119)).is_empty());
        assert_eq!(detect(&u, &cfg(), t(120))[0].name, "Heal8sNodeUnreachable");
        assert!(detect(&mk_node("w3", "True", 0, &[]), &cfg(), t(9999)).is_empty());
    }

    #[test]
    fn pressure_is_signalled_and_counted() {
        let n = mk_node("w1", "True", 0, &["MemoryPressure", "PIDPressure"]);
        let f = detect(&n, &cfg(), t(1));
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.name == "Heal8sNodePressure"));
        let nodes = [
            n,
            mk_node("w2", "True", 0, &[]),
            mk_node("w3", "False", 0, &[]),
        ];
        let c = NodeCensus::of(&nodes);
        assert_eq!(
            c,
            NodeCensus {
                total: 3,
                unhealthy: 1,
                under_pressure: 1
            }
        );
        assert_eq!(c.strain_percent(), 33);
        assert!(c.strained(30));
        assert!(!c.strained(40));
        assert_eq!(NodeCensus::default().strain_percent(), 0);
    }
}
