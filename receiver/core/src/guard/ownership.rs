//! A person's change wins over heal8s's: a node heal8s cordoned that someone
//! uncordoned while heal8s still held it is not cordoned (or drained, or
//! deleted) again in the same episode. The node's own marks are the memory:
//! heal8s's remediation mark and its ownership of the cordon stay on the
//! node until heal8s gives the node back after it recovers (which ends the
//! episode), so the rule holds across restarts and failovers.
//!
//! Owns: [`human_override`]. Pure; the guard calls it on the live node.

use serde_json::Value;

use super::{Refusal, RefusalReason};
use crate::detect::node::{CORDONED_ANNOTATION, REMEDIATION_ANNOTATION};
use crate::plan::Plan;
use crate::remediation::Remediation;

/// Why `plan` must not act on the live node `live`: heal8s cordoned it in
/// this episode (its marks are on), and a person made it schedulable again.
pub fn human_override(plan: &Plan, live: Option<&Value>) -> Option<Refusal> {
    if !matches!(
        plan.remediation,
        Remediation::DrainNode(_) | Remediation::DeleteNode(_)
    ) {
        return None;
    }
    let node = live?;
    let a = &node["metadata"]["annotations"];
    let held = a[REMEDIATION_ANNOTATION]
        .as_str()
        .is_some_and(|m| matches!(m, "draining" | "drained" | "cordoned" | "failed"));
    let cordoned_by_heal8s = a[CORDONED_ANNOTATION].as_str() == Some("true");
    let unschedulable = node["spec"]["unschedulable"].as_bool() == Some(true);
    if !(held && cordoned_by_heal8s) || unschedulable {
        return None;
    }
    let name = node["metadata"]["name"].as_str().unwrap_or("?");
    let record = a[crate::ownership::RECORD]
        .as_str()
        .map(|r| format!(" (record {r})"))
        .unwrap_or_default();
    Some(Refusal::new(
        RefusalReason::HumanOverride,
        format!(
            "heal8s cordoned node {name}{record} and someone uncordoned it since: a person's change wins; heal8s leaves the node alone until it recovers"
        ),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use serde_json::json;

    use super::*;

    fn plan(remediation: &str) -> Plan {
        let p =
            crate::policy::Policy::from_yaml(&format!("routes: [{{remediation: {remediation}}}]"))
                .unwrap();
        let s = crate::testutil::signal(&[("alertname", "KubeNodeNotReady"), ("node", "w1")]);
        Plan::build(&s, &p.routes[0]).unwrap()
    }

    fn node(mark: Option<&str>, ours: bool, unschedulable: bool) -> Value {
        let mut a = serde_json::Map::new();
        if let Some(m) = mark {
            a.insert(REMEDIATION_ANNOTATION.into(), m.into());
        }
        if ours {
            a.insert(CORDONED_ANNOTATION.into(), "true".into());
        }
        a.insert(
            crate::ownership::RECORD.into(),
            "drain-node-node-w1-abc".into(),
        );
        json!({"metadata": {"name": "w1", "annotations": a}, "spec": {"unschedulable": unschedulable}})
    }

    #[test]
    fn a_node_a_person_uncordoned_after_heal8s_is_left_alone_for_the_episode() {
        for r in ["drain-node", "delete-node"] {
            let refused =
                human_override(&plan(r), Some(&node(Some("drained"), true, false))).unwrap();
            assert_eq!(refused.reason, RefusalReason::HumanOverride);
            assert!(
                refused.message.contains("drain-node-node-w1-abc"),
                "{}",
                refused.message
            );
        }
    }

    #[test]
    fn heal8s_acts_when_the_cordon_holds_was_not_its_own_or_the_episode_ended() {
        let p = plan("drain-node");
        // still cordoned: heal8s's own episode goes on
        assert!(human_override(&p, Some(&node(Some("draining"), true, true))).is_none());
        // cordoned by someone else before heal8s came: their cordon, not an override
        assert!(human_override(&p, Some(&node(Some("drained"), false, false))).is_none());
        // given back after recovery (marks removed): a new episode
        assert!(human_override(&p, Some(&node(None, false, false))).is_none());
        // a mark someone changed is not heal8s's state
        assert!(human_override(&p, Some(&node(Some("mine"), true, false))).is_none());
        // other remediations, or no live node: not this rule
        assert!(
            human_override(
                &plan("notify-only"),
                Some(&node(Some("drained"), true, false))
            )
            .is_none()
        );
        assert!(human_override(&p, None).is_none());
    }
}
