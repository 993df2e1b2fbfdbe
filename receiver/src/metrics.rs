//! heal8s's Prometheus metrics: one struct, registered once, passed in.
//!
//! Every label value is bounded (status, remediation, mode, reason, result,
//! HTTP code): never a pod, namespace or alert name.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use receiver_core::{Outcome, OutcomeKind, Signal};

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
    pub queue_depth: Gauge,
    pub queue_capacity: Gauge,
    pub dry_run: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub unprocessed_at_shutdown: Counter<u64, AtomicU64>,
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
            "Signals waiting in the work queue",
            m.queue_depth.clone(),
        );
        reg.register(
            "queue_capacity",
            "Capacity of the work queue",
            m.queue_capacity.clone(),
        );
        reg.register(
            "dry_run",
            "1 when heal8s runs in global dry-run mode",
            m.dry_run.clone(),
        );
        reg.register(
            "unprocessed_at_shutdown",
            "Signals still queued when the shutdown deadline passed",
            m.unprocessed_at_shutdown.clone(),
        );
        m.registry = reg;
        m
    }

    /// Count a processed signal and its outcomes.
    pub fn observe(&self, signal: &Signal, outcomes: &[Outcome]) {
        self.signals
            .get_or_create(&SourceLabel {
                source: signal.source.kind(),
            })
            .inc();
        for o in outcomes {
            self.outcomes
                .get_or_create(&ResultLabel {
                    result: o.result.as_str(),
                })
                .inc();
            if matches!(
                o.result,
                OutcomeKind::Acted | OutcomeKind::DryRun | OutcomeKind::Failed
            ) && o.reason.is_none()
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
