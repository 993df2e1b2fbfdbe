//! The pipeline from one Signal to its outcomes: admit (dedupe) → route → plan →
//! facts → guard → act → record. One path for alerts and detectors alike.
//!
//! Owns: the order of the steps and the `Outcome` each signal ends in. The IO
//! steps (facts, act) go through the `act` traits; this module does no IO itself.

use jiff::Timestamp;
use serde::Serialize;

use crate::act::{Executor, FactSource, Facts, LiveState};
use crate::alertmanager::AlertStatus;
use crate::guard::{Admission, Guard, Refusal, RefusalReason, Verdict};
use crate::plan::Plan;
use crate::policy::{Policy, PolicyError};
use crate::remediation::{Mode, Remediation, RemediationKind, TargetMismatch};
use crate::route;
use crate::signal::Signal;

/// A source of the current time; tests use a fake one.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// How a signal (or one of its plans) ended. `as_str` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The executor changed something.
    Acted,
    /// Allowed, but simulated: dry-run (global, route) or no live executor.
    DryRun,
    /// Refused, with a reason.
    Refused,
    /// The same occurrence was delivered before.
    Deduped,
    /// A resolved signal: recorded, never acted on.
    Resolved,
    /// The executor or the fact lookup failed.
    Failed,
    /// Allowed, but put off by the executor (a pull request cap, or a
    /// declined pull request); nothing was changed.
    Deferred,
}

impl OutcomeKind {
    /// Every result, in declaration order: the metrics start each label at 0.
    /// A new result goes here too.
    pub const ALL: [OutcomeKind; 7] = [
        OutcomeKind::Acted,
        OutcomeKind::DryRun,
        OutcomeKind::Refused,
        OutcomeKind::Deduped,
        OutcomeKind::Resolved,
        OutcomeKind::Failed,
        OutcomeKind::Deferred,
    ];

    /// snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Acted => "acted",
            OutcomeKind::DryRun => "dry_run",
            OutcomeKind::Refused => "refused",
            OutcomeKind::Deduped => "deduped",
            OutcomeKind::Resolved => "resolved",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Deferred => "deferred",
        }
    }
}

/// The record of what happened to one signal under one route (or before routing).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub at: Timestamp,
    pub source: String,
    pub name: String,
    pub fingerprint: String,
    pub status: AlertStatus,
    /// The target as text, e.g. `Pod shop/api-1 container api`.
    pub target: Option<String>,
    pub route: Option<String>,
    pub remediation: Option<RemediationKind>,
    pub mode: Option<Mode>,
    pub result: OutcomeKind,
    pub reason: Option<RefusalReason>,
    /// True when the guard escalated the workload with this refusal for the first time.
    pub escalated: bool,
    pub message: String,
    /// The pull request a declarative fix opened or updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<crate::act::PullRequestRef>,
    /// Why the executor put it off (see [`OutcomeKind::Deferred`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// The plan, when one was made (for `heal8s plan` and `/outcomes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// What this outcome changed in the guard's memory (an action counted, an
    /// escalation, a recovery): the durable record keeps exactly these, and a
    /// restarted replica replays them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<crate::guard::PastEvent>,
}

/// Route, plan and guard state for one heal8s process.
#[derive(Debug)]
pub struct Engine {
    policy: Policy,
    guard: Guard,
}

impl Engine {
    /// An engine for `policy`; `own_namespace` is always protected.
    pub fn new(policy: Policy, own_namespace: &str) -> Result<Engine, PolicyError> {
        let listed = policy
            .detectors
            .custom_resources
            .resources
            .iter()
            .filter_map(|r| crate::detect::ResourceSpec::parse(r).ok())
            .collect();
        let guard =
            Guard::new(&policy.guard, &policy.features, own_namespace)?.with_listed_types(listed);
        Ok(Engine { policy, guard })
    }

    /// The policy in effect.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Take back guard events and alert occurrences from the durable record
    /// (see `Guard::restore` and `Guard::restore_seen`).
    pub fn restore(
        &mut self,
        past: Vec<crate::guard::PastEvent>,
        seen: Vec<(String, Timestamp)>,
        now: Timestamp,
    ) {
        self.guard.restore(past);
        self.guard.restore_seen(seen, now);
    }

    /// A verified recovery of `plan`'s target: its count of repeats starts
    /// over (and its escalation ends, as the policy says). Returns the event
    /// for the durable record.
    pub fn recovered(&mut self, plan: &Plan, now: Timestamp) -> crate::guard::PastEvent {
        self.guard.record_recovery(
            &plan.workload_key(),
            crate::guard::RecoveryBy::Verified,
            now,
        )
    }

    /// A person cleared the escalation of `key`. Returns the event for the record.
    pub fn clear_escalation(&mut self, key: &str, now: Timestamp) -> crate::guard::PastEvent {
        self.guard
            .record_recovery(key, crate::guard::RecoveryBy::Human, now)
    }

    /// The guard (read-only), e.g. to list protected namespaces.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Carry one signal through the whole pipeline. Every signal yields at least one outcome.
    pub async fn process(
        &mut self,
        signal: &Signal,
        facts: &dyn FactSource,
        executor: &dyn Executor,
        clock: &dyn Clock,
    ) -> Vec<Outcome> {
        self.process_with(signal, facts, executor, &crate::act::NoJournal, clock)
            .await
    }

    /// `process`, telling `journal` before each real (not dry-run) action.
    pub async fn process_with(
        &mut self,
        signal: &Signal,
        facts: &dyn FactSource,
        executor: &dyn Executor,
        journal: &dyn crate::act::Journal,
        clock: &dyn Clock,
    ) -> Vec<Outcome> {
        let now = clock.now();
        let base = |result: OutcomeKind, message: String| Outcome {
            at: now,
            source: signal.source.kind().to_string(),
            name: signal.name().to_string(),
            fingerprint: signal.fingerprint.clone(),
            status: signal.status,
            target: signal.target.as_ref().map(ToString::to_string),
            route: None,
            remediation: None,
            mode: None,
            result,
            reason: None,
            escalated: false,
            message,
            pull_request: None,
            deferred: None,
            plan: None,
            ledger: Vec::new(),
        };
        match self.guard.admit(signal, now) {
            Admission::Duplicate => {
                return vec![base(
                    OutcomeKind::Deduped,
                    "this occurrence was delivered before".into(),
                )];
            }
            Admission::Resolved { recovered } => {
                let msg = match &recovered {
                    Some(e) => format!("resolved; {} counts as recovered", e.event.key()),
                    None => "resolved".into(),
                };
                let mut o = base(OutcomeKind::Resolved, msg);
                o.ledger.extend(recovered);
                return vec![o];
            }
            Admission::Refused(Refusal { reason, message }) => {
                let mut o = base(OutcomeKind::Refused, message);
                o.reason = Some(reason);
                return vec![o];
            }
            Admission::New => {}
        }
        let routes = route::route(&self.policy, signal);
        if routes.is_empty() {
            let mut o = base(OutcomeKind::Refused, "no route matched".into());
            o.reason = Some(RefusalReason::NoRoute);
            return vec![o];
        }
        let routes: Vec<_> = routes.into_iter().cloned().collect();
        let mut out = Vec::with_capacity(routes.len());
        for r in &routes {
            let mut o = base(OutcomeKind::Refused, String::new());
            o.route = Some(r.name.clone());
            o.remediation = Some(r.remediation.kind());
            o.mode = Some(r.mode);
            let mut plan = match Plan::build(signal, r) {
                Ok(p) => p,
                Err(e) => {
                    o.reason = Some(match e {
                        TargetMismatch::Missing(_) => RefusalReason::MissingTarget,
                        _ => RefusalReason::TargetMismatch,
                    });
                    o.message = e.to_string();
                    out.push(o);
                    continue;
                }
            };
            o.target = plan.target.as_ref().map(ToString::to_string);
            let live = match facts.facts(&plan).await {
                Ok(f) => f,
                Err(e) => {
                    o.reason = Some(RefusalReason::FactsUnavailable);
                    o.result = OutcomeKind::Failed;
                    o.message = format!("could not read the live object: {e}");
                    o.plan = Some(plan);
                    out.push(o);
                    continue;
                }
            };
            self.complete(&mut plan, &live);
            let cleared = match &live.state {
                LiveState::Gone(why) => Some((RefusalReason::TargetGone, why.clone())),
                LiveState::Cleared(why) => Some((RefusalReason::ConditionCleared, why.clone())),
                LiveState::Holds(_) | LiveState::Unknown => None,
            };
            if let Some((reason, why)) = cleared {
                o.reason = Some(reason);
                o.message = why;
                o.plan = Some(plan);
                out.push(o);
                continue;
            }
            let decision = self.guard.check(&plan, &live, clock.now());
            o.ledger.extend(decision.event);
            let dry_run = match decision.verdict {
                Verdict::Refuse(Refusal { reason, message }) => {
                    o.reason = Some(reason);
                    o.escalated = decision.newly_escalated;
                    o.message = message;
                    o.plan = Some(plan);
                    out.push(o);
                    continue;
                }
                Verdict::Allow { dry_run, .. } => dry_run,
            };
            // the action counts from the moment it starts: a crash in the
            // middle leaves it in the record, and a restart honours it
            let counted = self.guard.record(&plan, clock.now());
            if !dry_run && plan.kind().is_mutating() {
                journal.begin(&plan, counted.as_ref()).await;
            }
            let result = executor.execute(&plan, dry_run).await;
            o.ledger.extend(counted);
            match result {
                Ok(report) => {
                    o.result = if report.deferred.is_some() {
                        OutcomeKind::Deferred
                    } else if report.simulated {
                        OutcomeKind::DryRun
                    } else {
                        OutcomeKind::Acted
                    };
                    o.message = report.message;
                    o.pull_request = report.pull_request;
                    o.deferred = report.deferred;
                }
                Err(e) => {
                    o.result = OutcomeKind::Failed;
                    o.message = e.to_string();
                }
            }
            o.plan = Some(plan);
            out.push(o);
        }
        out
    }

    fn complete(&self, plan: &mut Plan, facts: &Facts) {
        if plan.workload.is_none() {
            plan.workload.clone_from(&facts.owner);
        }
        // a cluster-scoped object is in no namespace, whatever the signal
        // said: protection and budgets look at its live scope
        if facts.resource.as_ref().is_some_and(|r| !r.namespaced)
            && let Some(t) = &mut plan.target
        {
            t.namespace = None;
        }
        // finalizer removal needs both the route's parameter and the feature
        if let Remediation::CleanupResource(p) = &mut plan.remediation {
            p.remove_finalizers &= self.policy.features.remove_finalizers;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use async_trait::async_trait;

    use super::*;
    use crate::act::{ActError, ActionReport};
    use crate::testutil::signal;

    fn ready<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("not ready"),
        }
    }

    struct Fixed(LiveState);
    #[async_trait]
    impl FactSource for Fixed {
        async fn facts(&self, _: &Plan) -> Result<Facts, ActError> {
            Ok(Facts {
                state: self.0.clone(),
                ..Facts::default()
            })
        }
    }

    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);
    #[async_trait]
    impl Executor for Recording {
        async fn execute(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, ActError> {
            self.0.lock().unwrap().push(plan.describe());
            Ok(ActionReport {
                simulated: dry_run,
                message: "done".into(),
                ..Default::default()
            })
        }
    }

    fn engine() -> Engine {
        let p =
            Policy::from_yaml("routes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]")
                .unwrap();
        Engine::new(p, "heal8s").unwrap()
    }

    fn crash() -> Signal {
        signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")])
    }

    #[test]
    fn a_recovered_target_is_not_acted_on() {
        let exec = Recording::default();
        let out = ready(engine().process(
            &crash(),
            &Fixed(LiveState::Cleared("pod is Ready".into())),
            &exec,
            &SystemClock,
        ));
        assert_eq!(out[0].result, OutcomeKind::Refused);
        assert_eq!(out[0].reason, Some(RefusalReason::ConditionCleared));
        assert!(exec.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_gone_target_is_not_acted_on() {
        let exec = Recording::default();
        let out = ready(engine().process(
            &crash(),
            &Fixed(LiveState::Gone("uid differs".into())),
            &exec,
            &SystemClock,
        ));
        assert_eq!(out[0].reason, Some(RefusalReason::TargetGone));
        assert!(exec.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_target_still_broken_is_acted_on_once() {
        let exec = Recording::default();
        let mut e = engine();
        let facts = Fixed(LiveState::Holds("crash looping".into()));
        let out = ready(e.process(&crash(), &facts, &exec, &SystemClock));
        assert_eq!(out[0].result, OutcomeKind::Acted);
        let again = ready(e.process(&crash(), &facts, &exec, &SystemClock));
        assert_eq!(again[0].result, OutcomeKind::Deduped);
        assert_eq!(exec.0.lock().unwrap().as_slice(), ["delete Pod shop/p"]);
    }

    #[test]
    fn an_alert_about_another_cluster_is_not_routed_looked_up_or_acted_on() {
        struct Unreadable;
        #[async_trait]
        impl FactSource for Unreadable {
            async fn facts(&self, _: &Plan) -> Result<Facts, ActError> {
                panic!("the live cluster was read for another cluster's alert")
            }
        }
        let p = Policy::from_yaml(
            "guard: {clusterName: prod-eu-1}\nroutes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]",
        )
        .unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let exec = Recording::default();
        let theirs = signal(&[
            ("alertname", "A"),
            ("namespace", "shop"),
            ("pod", "p"),
            ("cluster", "prod-eu-2"),
        ]);
        let out = ready(e.process(&theirs, &Unreadable, &exec, &SystemClock));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].result, OutcomeKind::Refused);
        assert_eq!(out[0].reason, Some(RefusalReason::WrongCluster));
        assert_eq!(out[0].route, None);
        assert!(exec.0.lock().unwrap().is_empty());
        let ours = signal(&[
            ("alertname", "A"),
            ("namespace", "shop"),
            ("pod", "p"),
            ("cluster", "prod-eu-1"),
        ]);
        let out = ready(e.process(
            &ours,
            &Fixed(LiveState::Holds("crash looping".into())),
            &exec,
            &SystemClock,
        ));
        assert_eq!(out[0].result, OutcomeKind::Acted);
    }

    struct ClusterScoped;
    #[async_trait]
    impl FactSource for ClusterScoped {
        async fn facts(&self, _: &Plan) -> Result<Facts, ActError> {
            Ok(Facts {
                state: LiveState::Holds("stale".into()),
                resource: Some(crate::act::ServedType {
                    plural: "widgets".into(),
                    namespaced: false,
                }),
                ..Facts::default()
            })
        }
    }

    #[test]
    fn a_cluster_scoped_object_is_in_no_namespace_whatever_the_alert_says() {
        // protect "shop"; the alert puts a cluster-scoped Widget "in" an
        // unprotected namespace: the plan must carry no namespace at all
        let p = Policy::from_yaml(
            "profile: test-cluster\ndetectors: {customResources: {resources: [widgets.example.com/v1]}}\nroutes: [{remediation: cleanup-resource}]",
        )
        .unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let exec = Recording::default();
        let s = signal(&[
            ("alertname", "X"),
            ("customresource_group", "example.com"),
            ("customresource_version", "v1"),
            ("customresource_kind", "Widget"),
            ("namespace", "e2e-1"),
            ("name", "w"),
        ]);
        let out = ready(e.process(&s, &ClusterScoped, &exec, &SystemClock));
        assert_eq!(out[0].result, OutcomeKind::Acted, "{:?}", out[0]);
        let plan = out[0].plan.as_ref().unwrap();
        assert_eq!(plan.namespace(), None, "{plan:?}");
    }

    #[test]
    fn finalizer_removal_needs_the_feature() {
        let p = Policy::from_yaml(
            "routes: [{remediation: cleanup-resource, params: {apiVersion: kubevirt.io/v1, kind: VirtualMachine, removeFinalizers: true}}]",
        )
        .unwrap();
        assert!(!p.features.remove_finalizers);
        let mut e = Engine::new(p, "heal8s").unwrap();
        let exec = Recording::default();
        let s = signal(&[("alertname", "X"), ("namespace", "e2e-1"), ("name", "vm-a")]);
        let out = ready(e.process(
            &s,
            &Fixed(LiveState::Holds("stale".into())),
            &exec,
            &SystemClock,
        ));
        // production disables cleanup-resource entirely
        assert_eq!(out[0].reason, Some(RefusalReason::Disabled));
        match &out[0].plan.as_ref().unwrap().remediation {
            Remediation::CleanupResource(c) => assert!(!c.remove_finalizers),
            other => panic!("{other:?}"),
        }
    }
}
