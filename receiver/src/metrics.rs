//! heal8s's Prometheus metrics: one struct, registered once, passed in.
//!
//! Every label value is bounded (status, remediation, mode, reason, result,
//! HTTP code): never a pod, namespace or alert name. The known values start at
//! 0 when heal8s starts, so `increase()` and `rate()` see the first event
//! (a series that appears at 1 has no increase).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use receiver_core::remediation::{Mode, RemediationKind};
use receiver_core::{AlertStatus, Outcome, OutcomeKind, RefusalReason, Signal};

/// Every status code the webhook answers with (`heal8s_webhook_requests_total`).
pub const WEBHOOK_CODES: [u16; 6] = [200, 400, 401, 403, 413, 503];

/// The results of `heal8s_actions_total`.
const ACTION_RESULTS: [OutcomeKind; 4] = [
    OutcomeKind::Acted,
    OutcomeKind::Observed,
    OutcomeKind::Proposed,
    OutcomeKind::Failed,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanLabels {
    pub remediation: &'static str,
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub remediation: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemediationLabel {
    pub remediation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabels {
    /// A receiver's name from the policy (bounded by it).
    pub receiver: String,
    pub result: &'static str,
}

/// The results of `heal8s_notifications_total`.
pub const NOTIFY_RESULTS: [&str; 4] = ["sent", "retried", "failed", "dropped"];

/// All of heal8s's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Registry,
    pub webhook_requests: Family<CodeLabel, Counter>,
    pub alerts_received: Family<StatusLabel, Counter>,
    pub alerts_truncated: Counter,
    pub signals: Family<SourceLabel, Counter>,
    pub plans: Family<PlanLabels, Counter>,
    pub guard_refusals: Family<ReasonLabel, Counter>,
    pub outcomes: Family<ResultLabel, Counter>,
    pub escalations: Family<RemediationLabel, Counter>,
    pub actions: Family<ActionLabels, Counter>,
    pub verifications: Family<ResultLabel, Counter>,
    pub signals_skipped_not_leader: Counter,
    /// Alerts waiting in the work queue's alert lane.
    pub queue_depth: Gauge,
    /// Detector signals waiting in the work queue's detector lane.
    pub detector_queue_depth: Gauge,
    pub queue_capacity: Gauge,
    /// Signals that replaced a waiting signal of their series in the work queue.
    pub signals_coalesced: Family<SourceLabel, Counter>,
    /// Alert deliveries of an occurrence taken in lately: answered, not queued again.
    pub alerts_repeated: Counter,
    /// Plans put off below their route's occurrence threshold (`minOccurrences`).
    pub below_occurrences: Family<RemediationLabel, Counter>,
    /// Plans waiting in the backlog (put off for want of budget, or about to run).
    pub backlog_depth: Gauge,
    pub backlog_capacity: Gauge,
    /// Plans running now (facts being read, or being carried out).
    pub running: Gauge,
    /// Recovery checks running now, and waiting for a turn.
    pub verifying: Gauge,
    pub dry_run: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// 1 while a person has paused heal8s.
    pub paused: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub unprocessed_at_shutdown: Counter<u64, AtomicU64>,
    /// 1 while a breaker episode holds the class (see `crate::breakers`).
    pub breaker_open: Family<ClassLabel, Gauge>,
    /// Notifications by receiver and result.
    pub notifications: Family<NotifyLabels, Counter>,
}

impl Metrics {
    /// A fresh registry with every metric registered under `heal8s_`.
    pub fn new() -> Metrics {
        let mut m = Metrics::default();
        let mut reg = Registry::with_prefix("heal8s");
        reg.register(
            "webhook_requests",
            "Webhook requests answered, by HTTP status code",
            m.webhook_requests.clone(),
        );
        reg.register(
            "alerts_received",
            "Alerts accepted into the work queue, by alert status",
            m.alerts_received.clone(),
        );
        reg.register(
            "alerts_truncated",
            "Alerts Alertmanager reported leaving out of deliveries (max_alerts)",
            m.alerts_truncated.clone(),
        );
        reg.register("signals", "Signals processed, by source", m.signals.clone());
        reg.register(
            "plans",
            "Plans made, by remediation and mode",
            m.plans.clone(),
        );
        reg.register(
            "guard_refusals",
            "Plans or signals refused, by reason",
            m.guard_refusals.clone(),
        );
        reg.register(
            "outcomes",
            "How each signal under each matching route ended, by result",
            m.outcomes.clone(),
        );
        reg.register(
            "escalations",
            "Workloads escalated after repeated remediation without recovery",
            m.escalations.clone(),
        );
        reg.register(
            "signals_skipped_not_leader",
            "Detector signals a follower left to the leader",
            m.signals_skipped_not_leader.clone(),
        );
        reg.register(
            "verifications",
            "Recovery checks after actions, by result (recovered, not_recovered)",
            m.verifications.clone(),
        );
        reg.register(
            "actions",
            "Executor runs, by remediation and result (acted, dry_run, failed)",
            m.actions.clone(),
        );
        reg.register(
            "queue_depth",
            "Alerts waiting in the work queue (its alert lane: webhooks get 503 when it is full)",
            m.queue_depth.clone(),
        );
        reg.register(
            "detector_queue_depth",
            "Detector signals waiting in the work queue (its detector lane)",
            m.detector_queue_depth.clone(),
        );
        reg.register(
            "queue_capacity",
            "Capacity of each lane of the work queue (alerts, detectors)",
            m.queue_capacity.clone(),
        );
        reg.register(
            "deferred_below_occurrences",
            "Plans put off because their route's occurrence threshold (minOccurrences within window) was not met yet, by remediation",
            m.below_occurrences.clone(),
        );
        reg.register(
            "alerts_repeated",
            "Alerts delivered again (same fingerprint, startsAt and status) while heal8s still remembers taking them in: acknowledged without queueing them again",
            m.alerts_repeated.clone(),
        );
        reg.register(
            "signals_coalesced",
            "Signals that replaced a waiting signal of the same series in the work queue, by source",
            m.signals_coalesced.clone(),
        );
        reg.register(
            "backlog_depth",
            "Plans waiting in the backlog for their budget or their turn",
            m.backlog_depth.clone(),
        );
        reg.register(
            "running",
            "Plans running now: their facts being read, or being carried out (at most --max-running)",
            m.running.clone(),
        );
        reg.register(
            "verifying",
            "Recovery checks after actions, running or waiting for a turn",
            m.verifying.clone(),
        );
        reg.register(
            "backlog_capacity",
            "Capacity of the backlog",
            m.backlog_capacity.clone(),
        );
        reg.register(
            "dry_run",
            "1 when heal8s runs in global dry-run mode",
            m.dry_run.clone(),
        );
        reg.register(
            "paused",
            "1 while heal8s is paused (heal8s pause, POST /pause, or the heal8s-pause ConfigMap): it decides and records, and changes nothing",
            m.paused.clone(),
        );
        reg.register(
            "unprocessed_at_shutdown",
            "Signals still queued when the shutdown deadline passed",
            m.unprocessed_at_shutdown.clone(),
        );
        reg.register(
            "breaker_open",
            "1 while a breaker stands a class of actions down (partition, class rate or in-flight cap, mass flip, global budget)",
            m.breaker_open.clone(),
        );
        reg.register(
            "notifications",
            "Notification deliveries by receiver and result (sent, retried: an attempt failed and another follows, failed: every attempt failed, dropped: a full queue)",
            m.notifications.clone(),
        );
        m.registry = reg;
        m.start_at_zero();
        m
    }

    /// Start the notification counters of `receivers` at 0.
    pub fn start_notifications<'a>(&self, receivers: impl IntoIterator<Item = &'a str>) {
        for receiver in receivers {
            for result in NOTIFY_RESULTS {
                at_zero(
                    &self.notifications,
                    NotifyLabels {
                        receiver: receiver.to_string(),
                        result,
                    },
                );
            }
        }
    }

    /// Create every known label value at 0.
    fn start_at_zero(&self) {
        for code in WEBHOOK_CODES {
            at_zero(&self.webhook_requests, CodeLabel { code });
        }
        for status in [AlertStatus::Firing, AlertStatus::Resolved] {
            let status = status.as_str();
            at_zero(&self.alerts_received, StatusLabel { status });
        }
        for class in receiver_core::guard::ActionClass::ALL {
            let _ = self.breaker_open.get_or_create(&ClassLabel {
                class: class.as_str(),
            });
        }
        for source in receiver_core::signal::SourceKind::ALL.map(|s| s.as_str()) {
            at_zero(&self.signals, SourceLabel { source });
            at_zero(&self.signals_coalesced, SourceLabel { source });
        }
        for reason in RefusalReason::ALL {
            let reason = reason.as_str();
            at_zero(&self.guard_refusals, ReasonLabel { reason });
        }
        for result in OutcomeKind::ALL {
            let result = result.as_str();
            at_zero(&self.outcomes, ResultLabel { result });
        }
        for kind in RemediationKind::ALL {
            let remediation = kind.as_str();
            at_zero(&self.escalations, RemediationLabel { remediation });
            at_zero(&self.below_occurrences, RemediationLabel { remediation });
            for result in ACTION_RESULTS {
                let result = result.as_str();
                at_zero(
                    &self.actions,
                    ActionLabels {
                        remediation,
                        result,
                    },
                );
            }
            for mode in Mode::ALL {
                if kind.allows(mode) {
                    let mode = mode.as_str();
                    at_zero(&self.plans, PlanLabels { remediation, mode });
                }
            }
        }
    }

    /// Count a processed signal and its outcomes.
    pub fn observe(&self, signal: &Signal, outcomes: &[Outcome]) {
        self.observe_signal(signal);
        self.observe_outcomes(outcomes);
    }

    /// Count a processed signal.
    pub fn observe_signal(&self, signal: &Signal) {
        self.signals
            .get_or_create(&SourceLabel {
                source: signal.source.kind().as_str(),
            })
            .inc();
    }

    /// Count outcomes.
    pub fn observe_outcomes(&self, outcomes: &[Outcome]) {
        for o in outcomes {
            self.outcomes
                .get_or_create(&ResultLabel {
                    result: o.result.as_str(),
                })
                .inc();
            if ACTION_RESULTS.contains(&o.result)
                && o.reason.is_none()
                && let Some(r) = o.remediation
            {
                self.actions
                    .get_or_create(&ActionLabels {
                        remediation: r.as_str(),
                        result: o.result.as_str(),
                    })
                    .inc();
            }
            if let Some(plan) = &o.plan {
                self.plans
                    .get_or_create(&PlanLabels {
                        remediation: plan.kind().as_str(),
                        mode: plan.mode.as_str(),
                    })
                    .inc();
            }
            if o.deferred
                .as_deref()
                .is_some_and(|d| d.starts_with("occurrences "))
                && let Some(r) = o.remediation
            {
                self.below_occurrences
                    .get_or_create(&RemediationLabel {
                        remediation: r.as_str(),
                    })
                    .inc();
            }
            if let Some(reason) = o.reason {
                self.guard_refusals
                    .get_or_create(&ReasonLabel {
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            if o.escalated
                && let Some(r) = o.remediation
            {
                self.escalations
                    .get_or_create(&RemediationLabel {
                        remediation: r.as_str(),
                    })
                    .inc();
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // encoding into a String cannot fail
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Create the series `labels` of `family` (at 0) if it is not there yet.
fn at_zero<S: Clone + std::hash::Hash + Eq>(family: &Family<S, Counter>, labels: S) {
    let _ = family.get_or_create(&labels);
}

impl receiver_notify::Report for Metrics {
    fn delivered(&self, receiver: &str, result: &'static str) {
        self.notifications
            .get_or_create(&NotifyLabels {
                receiver: receiver.to_string(),
                result,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    /// The lists the metrics start from are complete where the compiler can
    /// tell: in declaration order, with no gap or repeat.
    #[test]
    fn the_label_lists_follow_the_declaration_order() {
        for (i, r) in RefusalReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "RefusalReason::ALL[{i}]");
        }
        for (i, o) in OutcomeKind::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "OutcomeKind::ALL[{i}]");
        }
        for (i, k) in RemediationKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "RemediationKind::ALL[{i}]");
        }
    }

    #[test]
    fn a_fresh_registry_exposes_every_known_label_at_zero() {
        let text = Metrics::new().encode();
        let mut want = vec![
            r#"heal8s_guard_refusals_total{reason="global_budget"} 0"#.to_string(),
            r#"heal8s_escalations_total{remediation="delete-pod"} 0"#.to_string(),
            r#"heal8s_webhook_requests_total{code="401"} 0"#.to_string(),
            r#"heal8s_actions_total{remediation="delete-pod",result="failed"} 0"#.to_string(),
            r#"heal8s_plans_total{remediation="bump-memory",mode="propose"} 0"#.to_string(),
        ];
        want.extend(RefusalReason::ALL.map(|r| {
            format!(
                r#"heal8s_guard_refusals_total{{reason="{}"}} 0"#,
                r.as_str()
            )
        }));
        want.extend(
            receiver_core::guard::ActionClass::ALL
                .map(|c| format!(r#"heal8s_breaker_open{{class="{}"}} 0"#, c.as_str())),
        );
        want.extend(
            OutcomeKind::ALL
                .map(|o| format!(r#"heal8s_outcomes_total{{result="{}"}} 0"#, o.as_str())),
        );
        for line in want {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(
            !text.contains(r#"heal8s_plans_total{remediation="bump-memory",mode="direct"}"#),
            "only modes a route may use"
        );
    }
}

/// One source's part of a gauge that several sources share (each served
/// cluster's queue, worker, breakers, pause): setting it moves the gauge by
/// the change, so the gauge shows the sum. With one cluster it is the value.
#[derive(Debug, Default)]
pub struct Level {
    gauge: Gauge,
    last: std::sync::atomic::AtomicI64,
}

impl Level {
    /// This source's part of `gauge` (a clone of it: they share the value).
    pub fn of(gauge: &Gauge) -> Level {
        Level {
            gauge: gauge.clone(),
            last: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// This source's value is now `v`.
    pub fn set(&self, v: i64) {
        let old = self.last.swap(v, std::sync::atomic::Ordering::SeqCst);
        self.gauge.inc_by(v - old);
    }

    /// `set` from a count.
    pub fn set_count(&self, n: usize) {
        self.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod level_tests {
    use super::*;

    #[test]
    fn levels_of_one_gauge_add_up() {
        let g: Gauge = Gauge::default();
        let (a, b) = (Level::of(&g), Level::of(&g));
        a.set(3);
        b.set(4);
        assert_eq!(g.get(), 7);
        a.set(1);
        assert_eq!(g.get(), 5);
        b.set_count(0);
        a.set(0);
        assert_eq!(g.get(), 0);
    }
}
