//! Approvals (routes in mode `approve`): what heal8s asks a person to
//! approve, and when an approval counts. An approval lets exactly the plan
//! it names go on to the rest of the guard (budgets, breakers and all), on
//! the object it was made for, within `guard.approval.ttl`, by someone the
//! policy accepts. Who the approver is comes from the API server (`heal8s
//! approve` asks it); never from a label or an alert.
//!
//! Owns: [`ask`] (the request a plan becomes) and [`refusal`] (why an
//! approval does not count). Pure; the guard calls both.

use jiff::Timestamp;
use serde_json::Value;

use super::{Refusal, RefusalReason, since};
use crate::plan::{Approval, Plan};
use crate::policy::ApprovalPolicy;
use crate::target::TargetKind;

/// The request for approval of `plan` at `now`, on the live object `live`
/// read for it (its UID and, for a pod, its node name what an approval is for).
pub fn ask(plan: &Plan, live: Option<&Value>, policy: &ApprovalPolicy, now: Timestamp) -> Approval {
    let ttl = jiff::SignedDuration::try_from(policy.ttl.get()).unwrap_or_default();
    Approval {
        requested_at: now,
        expires_at: now.checked_add(ttl).unwrap_or(now),
        uid: live.and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string)),
        node: node_of(plan, live),
        approved_by: None,
        approved_at: None,
    }
}

fn node_of(plan: &Plan, live: Option<&Value>) -> Option<String> {
    let pod = plan
        .target
        .as_ref()
        .is_some_and(|t| t.kind == TargetKind::Pod);
    pod.then(|| live.and_then(|o| o["spec"]["nodeName"].as_str().map(str::to_string)))
        .flatten()
}

/// Why the approval `plan` carries does not let it act at `now`, on the
/// live object `live`; `None`: it counts (the rest of the guard decides).
pub fn refusal(
    plan: &Plan,
    a: &Approval,
    live: Option<&Value>,
    policy: &ApprovalPolicy,
    now: Timestamp,
) -> Option<Refusal> {
    let Some(by) = a.approved_by.as_deref().filter(|b| !b.is_empty()) else {
        return Some(Refusal::new(
            RefusalReason::NotAnApprover,
            "the approval names no approver",
        ));
    };
    if !policy.approvers.is_empty() && !policy.approvers.iter().any(|x| x == by) {
        return Some(Refusal::new(
            RefusalReason::NotAnApprover,
            format!(
                "approved by {by}, who is not in guard.approval.approvers ({})",
                policy.approvers.join(", ")
            ),
        ));
    }
    let at = a.approved_at.unwrap_or(now);
    if at > a.expires_at {
        return Some(Refusal::new(
            RefusalReason::ApprovalExpired,
            format!(
                "approved by {by} at {at}, after the request expired at {}",
                a.expires_at
            ),
        ));
    }
    // heal8s acts at once on an approval; one it meets much later (it was
    // down, or the plan waited) is stale like the request would be
    if since(now, at) > policy.ttl.get() {
        return Some(Refusal::new(
            RefusalReason::ApprovalExpired,
            format!(
                "approved by {by} at {at}, longer ago than guard.approval.ttl {}",
                policy.ttl
            ),
        ));
    }
    let uid = live.and_then(|o| o["metadata"]["uid"].as_str());
    if let Some(want) = &a.uid
        && uid != Some(want.as_str())
    {
        return Some(Refusal::new(
            RefusalReason::TargetChanged,
            format!(
                "approved for the object with UID {want}; the live one has {}: ask again",
                uid.unwrap_or("none")
            ),
        ));
    }
    let node = node_of(plan, live);
    if a.node.is_some() && node != a.node {
        return Some(Refusal::new(
            RefusalReason::TargetChanged,
            format!(
                "approved for the pod on node {}; it is now on {}: ask again",
                a.node.as_deref().unwrap_or("-"),
                node.as_deref().unwrap_or("no node")
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use serde_json::json;

    use super::*;
    use crate::duration::PromDuration;
    use crate::target::Target;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pod_plan() -> Plan {
        let p =
            crate::policy::Policy::from_yaml("routes: [{remediation: delete-pod, mode: approve}]")
                .unwrap();
        let s = crate::testutil::signal(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", "api-1"),
        ]);
        Plan::build(&s, &p.routes[0]).unwrap()
    }

    fn live(uid: &str, node: &str) -> Value {
        json!({"metadata": {"uid": uid}, "spec": {"nodeName": node}})
    }

    fn policy() -> ApprovalPolicy {
        ApprovalPolicy {
            ttl: PromDuration::secs(3600),
            approvers: Vec::new(),
        }
    }

    fn approved(by: &str, at: &str) -> Approval {
        let mut a = ask(
            &pod_plan(),
            Some(&live("u1", "n1")),
            &policy(),
            t("2026-01-01T10:00:00Z"),
        );
        a.approved_by = Some(by.into());
        a.approved_at = Some(t(at));
        a
    }

    #[test]
    fn a_request_names_the_object_and_node_and_expires_after_the_ttl() {
        let a = ask(
            &pod_plan(),
            Some(&live("u1", "n1")),
            &policy(),
            t("2026-01-01T10:00:00Z"),
        );
        assert_eq!(a.uid.as_deref(), Some("u1"));
        assert_eq!(a.node.as_deref(), Some("n1"));
        assert_eq!(a.expires_at, t("2026-01-01T11:00:00Z"));
        assert_eq!(a.request(), "2026-01-01T10:00:00Z");
        // a node target has no node of its own to compare
        let mut node = pod_plan();
        node.target = Some(Target::new(TargetKind::Node, None, "n1"));
        let a = ask(
            &node,
            Some(&live("u9", "x")),
            &policy(),
            t("2026-01-01T10:00:00Z"),
        );
        assert_eq!((a.uid.as_deref(), a.node), (Some("u9"), None));
    }

    #[test]
    fn an_approval_in_time_on_the_same_object_counts() {
        let a = approved("alice", "2026-01-01T10:30:00Z");
        let now = t("2026-01-01T10:30:01Z");
        assert_eq!(
            refusal(&pod_plan(), &a, Some(&live("u1", "n1")), &policy(), now),
            None
        );
    }

    #[test]
    fn an_approval_after_the_request_expired_or_met_too_late_is_refused() {
        let late = approved("alice", "2026-01-01T11:00:01Z");
        let r = refusal(
            &pod_plan(),
            &late,
            Some(&live("u1", "n1")),
            &policy(),
            t("2026-01-01T11:00:02Z"),
        )
        .unwrap();
        assert_eq!(r.reason, RefusalReason::ApprovalExpired);
        assert!(
            r.message.contains("after the request expired"),
            "{}",
            r.message
        );
        // given in time, but heal8s meets it more than a ttl later
        let a = approved("alice", "2026-01-01T10:30:00Z");
        let r = refusal(
            &pod_plan(),
            &a,
            Some(&live("u1", "n1")),
            &policy(),
            t("2026-01-01T11:30:01Z"),
        )
        .unwrap();
        assert_eq!(r.reason, RefusalReason::ApprovalExpired);
        assert!(
            refusal(
                &pod_plan(),
                &a,
                Some(&live("u1", "n1")),
                &policy(),
                t("2026-01-01T11:29:59Z")
            )
            .is_none()
        );
    }

    #[test]
    fn a_replaced_or_moved_target_is_not_what_was_approved() {
        let a = approved("alice", "2026-01-01T10:30:00Z");
        let now = t("2026-01-01T10:31:00Z");
        let r = refusal(&pod_plan(), &a, Some(&live("u2", "n1")), &policy(), now).unwrap();
        assert_eq!(r.reason, RefusalReason::TargetChanged);
        assert!(r.message.contains("UID u1"), "{}", r.message);
        let r = refusal(&pod_plan(), &a, Some(&live("u1", "n2")), &policy(), now).unwrap();
        assert_eq!(r.reason, RefusalReason::TargetChanged);
        let r = refusal(&pod_plan(), &a, None, &policy(), now).unwrap();
        assert_eq!(r.reason, RefusalReason::TargetChanged);
    }

    #[test]
    fn the_approvers_list_narrows_who_counts() {
        let mut p = policy();
        p.approvers = vec!["alice".into(), "bob".into()];
        let now = t("2026-01-01T10:31:00Z");
        let ok = approved("bob", "2026-01-01T10:30:00Z");
        assert!(refusal(&pod_plan(), &ok, Some(&live("u1", "n1")), &p, now).is_none());
        let r = refusal(
            &pod_plan(),
            &approved("mallory", "2026-01-01T10:30:00Z"),
            Some(&live("u1", "n1")),
            &p,
            now,
        )
        .unwrap();
        assert_eq!(r.reason, RefusalReason::NotAnApprover);
        assert!(
            r.message.contains("mallory") && r.message.contains("alice, bob"),
            "{}",
            r.message
        );
        let mut nobody = ok.clone();
        nobody.approved_by = Some(String::new());
        let r = refusal(
            &pod_plan(),
            &nobody,
            Some(&live("u1", "n1")),
            &policy(),
            now,
        )
        .unwrap();
        assert_eq!(r.reason, RefusalReason::NotAnApprover);
    }
}
