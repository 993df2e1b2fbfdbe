//! heal8s's ownership marks: every change heal8s makes to an object it does
//! not delete (a cordon, a taint, finalizers removed) carries annotations
//! naming heal8s, the Remediation record, the reason and the time, and heal8s
//! undoes only what carries its own mark. A person's change wins: what they
//! changed after heal8s (a node uncordoned) is left as they made it.
//!
//! Owns: the annotation keys, [`Mark`] (what they say) and the pure
//! decisions on them: [`lift_taint`] and [`marks_to_remove`]. The guard's
//! rule that a person's uncordon holds for the episode is in
//! `guard::ownership`. Must not do IO.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::plan::Plan;

/// Who changed the object: always `heal8s`.
pub const CHANGED_BY: &str = "heal8s.io/changed-by";
/// The Remediation record that made the change (its name; in the target's
/// namespace, or heal8s's own for nodes and namespaces).
pub const RECORD: &str = "heal8s.io/record";
/// Why: the alert or detector signal that led to it.
pub const REASON: &str = "heal8s.io/reason";
/// When (RFC 3339).
pub const CHANGED_AT: &str = "heal8s.io/changed-at";
/// The key of the taint heal8s added to a node (it lifts only that one).
pub const TAINTED: &str = "heal8s.io/tainted";

/// The keys of the marks themselves (what heal8s removes when it gives a
/// change back); `heal8s.io/cordoned` and `heal8s.io/remediation` are the
/// node's own ([`crate::detect::node`]).
pub const KEYS: [&str; 5] = [CHANGED_BY, RECORD, REASON, CHANGED_AT, TAINTED];

/// The most characters of the reason a mark keeps (it is the signal's name,
/// text from outside).
const REASON_CHARS: usize = 100;

/// What heal8s writes on an object it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The Remediation record's name.
    pub record: String,
    /// The signal's name, on one line, bounded.
    pub reason: String,
    pub at: Timestamp,
}

impl Mark {
    /// The mark of `plan` carried out at `at`; `None` without a target.
    pub fn of(plan: &Plan, at: Timestamp) -> Option<Mark> {
        let t = plan.target.as_ref()?;
        Some(Mark {
            record: crate::names::record_name(t, plan.kind()),
            reason: crate::text::one_line(&plan.trigger.name, REASON_CHARS),
            at,
        })
    }

    /// The annotations it sets.
    pub fn annotations(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            (CHANGED_BY, "heal8s".to_string()),
            (RECORD, self.record.clone()),
            (REASON, self.reason.clone()),
            (CHANGED_AT, self.at.to_string()),
        ])
    }
}

/// Whether heal8s made the change these annotations describe.
pub fn is_ours(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(CHANGED_BY).is_some_and(|v| v == "heal8s")
}

/// The taint heal8s may lift from a node given back after recovery: the one
/// its own mark names, if the node still has it. Nothing when no mark
/// names one, or a person took the mark off (they own the taint now).
pub fn lift_taint<'a>(
    annotations: &BTreeMap<String, String>,
    taint_keys: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    if !is_ours(annotations) {
        return None;
    }
    let key = annotations.get(TAINTED)?;
    taint_keys
        .into_iter()
        .any(|k| k == key)
        .then(|| key.clone())
}

/// The mark keys present in `annotations` (to null in the patch that gives
/// the change back).
pub fn marks_to_remove(annotations: &BTreeMap<String, String>) -> Vec<&'static str> {
    KEYS.into_iter()
        .filter(|k| annotations.contains_key(*k))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use super::*;

    fn plan(alertname: &str) -> Plan {
        let p = crate::policy::Policy::from_yaml("routes: [{remediation: drain-node}]").unwrap();
        let s = crate::testutil::signal(&[("alertname", alertname), ("node", "w1")]);
        Plan::build(&s, &p.routes[0]).unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_mark_names_heal8s_the_record_the_reason_and_the_time() {
        let at: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let m = Mark::of(&plan("KubeNodeNotReady"), at).unwrap();
        let a = m.annotations();
        assert_eq!(a[CHANGED_BY], "heal8s");
        assert!(
            a[RECORD].starts_with("drain-node-node-w1-"),
            "{}",
            a[RECORD]
        );
        assert_eq!(a[REASON], "KubeNodeNotReady");
        assert_eq!(a[CHANGED_AT], "2026-01-01T10:00:00Z");
        // the reason is text from outside: one line, bounded
        let m = Mark::of(&plan(&format!("Evil\nName{}", "x".repeat(500))), at).unwrap();
        assert!(!m.reason.contains('\n') && m.reason.chars().count() <= REASON_CHARS + 1);
    }

    #[test]
    fn only_a_taint_heal8s_marked_as_its_own_is_lifted() {
        let oos = "node.kubernetes.io/out-of-service";
        let ours = map(&[(CHANGED_BY, "heal8s"), (TAINTED, oos)]);
        assert_eq!(lift_taint(&ours, [oos, "other"]), Some(oos.to_string()));
        // gone already (a person lifted it): nothing to do
        assert_eq!(lift_taint(&ours, ["other"]), None);
        // no mark naming it, or the mark taken off by a person: not ours
        assert_eq!(lift_taint(&map(&[(CHANGED_BY, "heal8s")]), [oos]), None);
        assert_eq!(lift_taint(&map(&[(TAINTED, oos)]), [oos]), None);
        assert_eq!(
            lift_taint(&map(&[(CHANGED_BY, "alice"), (TAINTED, oos)]), [oos]),
            None
        );
    }

    #[test]
    fn giving_back_removes_the_marks_that_are_there() {
        let a = map(&[(CHANGED_BY, "heal8s"), (RECORD, "r"), ("team", "x")]);
        assert_eq!(marks_to_remove(&a), [CHANGED_BY, RECORD]);
        assert!(marks_to_remove(&BTreeMap::new()).is_empty());
    }
}
