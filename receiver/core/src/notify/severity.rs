//! Severity from history: a base per action class (node > workload > pod),
//! raised by repeated failures of the same owning workload or node within a
//! window, and by the policy's escalation table.
//!
//! Owns: the count of failures per key and the severity it gives. It learns
//! from the guard's own events ([`PastEvent`]: every action, every recovery),
//! which the durable record keeps, so a restarted replica that replays the
//! records knows the same history. Pure; the clock is passed in.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;

use crate::ledger::{GuardEvent, PastEvent};
use crate::remediation::{ActionClass, RemediationKind};

use super::Severity;
use crate::policy::notifications::SeverityPolicy;

/// Keys remembered at most; the one seen longest ago goes first.
pub const MAX_KEYS: usize = 10_000;
/// Failures remembered per key at most (beyond any threshold worth having).
const MAX_PER_KEY: usize = 64;

/// Failures per workload or node.
#[derive(Debug, Clone)]
pub struct SeverityBook {
    policy: SeverityPolicy,
    failures: HashMap<String, VecDeque<Timestamp>>,
}

fn base(policy: &SeverityPolicy, class: ActionClass) -> Severity {
    let b = &policy.base;
    match class {
        ActionClass::Pods => b.pods,
        ActionClass::Nodes => b.nodes,
        ActionClass::Namespaces => b.namespaces,
        ActionClass::Resources => b.resources,
        ActionClass::Finalizers => b.finalizers,
        ActionClass::PullRequests => b.pull_requests,
        ActionClass::Notify => b.notify,
    }
}

impl SeverityBook {
    pub fn new(policy: SeverityPolicy) -> SeverityBook {
        SeverityBook {
            policy,
            failures: HashMap::new(),
        }
    }

    fn within(&self) -> Duration {
        self.policy.within.get()
    }

    /// Learn from one guard event: an action on a key counts as a failure of
    /// what it acts for (it needed healing); a recovery starts the count over.
    pub fn observe(&mut self, e: &PastEvent) {
        match &e.event {
            GuardEvent::Action { key, .. } => self.failed(key, e.at),
            GuardEvent::Recovered { key, .. } => {
                self.failures.remove(key);
            }
            GuardEvent::Escalated { .. }
            | GuardEvent::Observed { .. }
            | GuardEvent::Ended { .. }
            | GuardEvent::Settled { .. } => {}
        }
    }

    /// A failure of `key` outside the guard's events (an action that failed,
    /// a recovery check that did not see it recover).
    pub fn failed(&mut self, key: &str, at: Timestamp) {
        if !self.failures.contains_key(key) && self.failures.len() >= MAX_KEYS {
            let oldest = self
                .failures
                .iter()
                .min_by_key(|(_, v)| v.back().copied())
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.failures.remove(&k);
            }
        }
        let v = self.failures.entry(key.to_string()).or_default();
        v.push_back(at);
        if v.len() > MAX_PER_KEY {
            v.pop_front();
        }
    }

    /// Failures of `key` within the window before `now`.
    pub fn count(&self, key: &str, now: Timestamp) -> u32 {
        let within = self.within();
        self.failures.get(key).map_or(0, |v| {
            v.iter()
                .filter(|t| now.duration_since(**t).unsigned_abs() <= within)
                .count() as u32
        })
    }

    /// How loud a notice about `remediation` (of `class`) on `key` is at `now`.
    pub fn severity(
        &self,
        class: ActionClass,
        remediation: Option<RemediationKind>,
        key: &str,
        now: Timestamp,
    ) -> Severity {
        let n = self.count(key, now);
        let mut s = base(&self.policy, class);
        for r in &self.policy.raise {
            if n > r.over {
                s = s.max(r.to);
            }
        }
        for e in &self.policy.escalations {
            if Some(e.remediation) == remediation && n >= e.after {
                s = s.max(e.severity);
            }
        }
        s
    }

    /// Forget what is older than the window (call now and then).
    pub fn prune(&mut self, now: Timestamp) {
        let within = self.within();
        self.failures.retain(|_, v| {
            while v
                .front()
                .is_some_and(|t| now.duration_since(*t).unsigned_abs() > within)
            {
                v.pop_front();
            }
            !v.is_empty()
        });
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::notifications::EscalationStep;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn action(key: &str, at: Timestamp) -> PastEvent {
        PastEvent {
            at,
            event: GuardEvent::Action {
                key: key.into(),
                namespace: Some("shop".into()),
                remediation: RemediationKind::DeletePod,
                class: Some(ActionClass::Pods),
            },
        }
    }

    #[test]
    fn repeated_failures_of_one_workload_raise_it_and_others_stay_at_their_base() {
        let mut b = SeverityBook::new(SeverityPolicy::default());
        let pod =
            |b: &SeverityBook, now| b.severity(ActionClass::Pods, None, "Deployment/shop/api", now);
        b.observe(&action("Deployment/shop/api", t(0)));
        assert_eq!(pod(&b, t(1)), Severity::Info);
        b.observe(&action("Deployment/shop/api", t(60)));
        assert_eq!(pod(&b, t(61)), Severity::High, "more than 1 failure");
        b.observe(&action("Deployment/shop/api", t(120)));
        b.observe(&action("Deployment/shop/api", t(180)));
        assert_eq!(pod(&b, t(181)), Severity::Critical, "more than 3");
        // another workload, and a node's base
        assert_eq!(
            b.severity(ActionClass::Pods, None, "Deployment/shop/web", t(181)),
            Severity::Info
        );
        assert_eq!(
            b.severity(ActionClass::Nodes, None, "Node/n1", t(181)),
            Severity::High
        );
        assert_eq!(
            b.severity(
                ActionClass::PullRequests,
                None,
                "Deployment/shop/web",
                t(181)
            ),
            Severity::Warning
        );
    }

    #[test]
    fn failures_age_out_of_the_window_and_a_recovery_starts_over() {
        let mut b = SeverityBook::new(SeverityPolicy::default());
        for i in 0..3 {
            b.observe(&action("k", t(i * 10)));
        }
        assert_eq!(b.count("k", t(30)), 3);
        // an hour after the second, only the third still counts
        assert_eq!(b.count("k", t(3600 + 15)), 1);
        assert_eq!(
            b.severity(ActionClass::Pods, None, "k", t(3615)),
            Severity::Info
        );
        b.prune(t(3615));
        assert_eq!(b.len(), 1);
        b.observe(&PastEvent {
            at: t(3620),
            event: GuardEvent::Recovered {
                key: "k".into(),
                by: crate::ledger::RecoveryBy::Verified,
            },
        });
        assert_eq!(b.count("k", t(3621)), 0);
        assert!(b.is_empty());
    }

    #[test]
    fn the_escalation_table_raises_one_remediation_only() {
        let mut p = SeverityPolicy::default();
        p.raise.clear();
        p.escalations.push(EscalationStep {
            remediation: RemediationKind::DeletePod,
            after: 2,
            severity: Severity::Critical,
        });
        let mut b = SeverityBook::new(p);
        b.failed("k", t(0));
        let del = Some(RemediationKind::DeletePod);
        assert_eq!(
            b.severity(ActionClass::Pods, del, "k", t(1)),
            Severity::Info
        );
        b.failed("k", t(2));
        assert_eq!(
            b.severity(ActionClass::Pods, del, "k", t(3)),
            Severity::Critical
        );
        assert_eq!(
            b.severity(
                ActionClass::Pods,
                Some(RemediationKind::EvictPod),
                "k",
                t(3)
            ),
            Severity::Info
        );
    }

    #[test]
    fn a_restarted_book_replaying_the_same_events_gives_the_same_severity() {
        let events: Vec<PastEvent> = (0..3).map(|i| action("k", t(i))).collect();
        let mut live = SeverityBook::new(SeverityPolicy::default());
        for e in &events {
            live.observe(e);
        }
        let mut restored = SeverityBook::new(SeverityPolicy::default());
        for e in &events {
            restored.observe(e);
        }
        assert_eq!(
            live.severity(ActionClass::Pods, None, "k", t(10)),
            restored.severity(ActionClass::Pods, None, "k", t(10))
        );
        assert_eq!(
            live.severity(ActionClass::Pods, None, "k", t(10)),
            Severity::High
        );
    }

    #[test]
    fn memory_is_bounded_in_keys() {
        let mut b = SeverityBook::new(SeverityPolicy::default());
        for i in 0..(MAX_KEYS + 10) {
            b.failed(&format!("k{i}"), t(i as i64));
        }
        assert_eq!(b.len(), MAX_KEYS);
        assert!(!b.failures.contains_key("k0"), "the oldest went first");
        let now = t(MAX_KEYS as i64 + 10);
        assert_eq!(b.count(&format!("k{}", MAX_KEYS + 9), now), 1);
    }
}
