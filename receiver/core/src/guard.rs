//! The guard: every safety rule for every mutating action, in one place.
//!
//! Owns: dedupe of repeated deliveries, protected and excluded namespaces, the
//! `heal8s.io/ignore` opt-out, dry-run, cooldowns keyed by the owning workload,
//! budgets (global, per namespace, per workload) and escalation. Pure: time is
//! passed in (`now`), state is plain data, nothing here does IO. The state is an
//! in-memory cache; the durable record (issue 4) will rebuild it after a restart.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use regex::Regex;
use serde::Serialize;

use crate::act::{Facts, ObjectMeta};
use crate::alertmanager::AlertStatus;
use crate::detect::Features;
use crate::duration::PromDuration;
use crate::plan::Plan;
use crate::policy::{GuardConfig, PolicyError, PolicyIssue};
use crate::remediation::{Mode, RemediationKind};
use crate::signal::Signal;
use crate::target::TargetKind;

/// The label or annotation that opts an object or namespace out of heal8s.
pub const OPT_OUT_KEY: &str = "heal8s.io/ignore";

/// At most this many delivered occurrences are remembered for dedupe; the oldest go first.
pub const MAX_REMEMBERED_OCCURRENCES: usize = 100_000;

/// Why the guard (or the planner before it) refused. `as_str` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// No route matched the signal.
    NoRoute,
    /// The signal names no (valid) target for the remediation.
    MissingTarget,
    /// The target does not suit the remediation (wrong kind, outside its pattern).
    TargetMismatch,
    ProtectedNamespace,
    ExcludedNamespace,
    /// The object carries `heal8s.io/ignore=true`.
    OptedOut,
    /// The object's namespace carries `heal8s.io/ignore=true`.
    NamespaceOptedOut,
    Cooldown,
    GlobalBudget,
    NamespaceBudget,
    WorkloadBudget,
    /// Remediated too often without recovering: escalated instead.
    Escalated,
    /// The live cluster could not be read to check the plan.
    FactsUnavailable,
    /// The remediation is switched off (`features` / the profile).
    Disabled,
    /// Too many nodes are unhealthy: a partition, not a node failure.
    Partition,
    /// Another node is already being remediated.
    NodeInRemediation,
    /// The target no longer exists (or was replaced).
    TargetGone,
    /// The live object is healthy again.
    ConditionCleared,
}

impl RefusalReason {
    /// snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NoRoute => "no_route",
            RefusalReason::MissingTarget => "missing_target",
            RefusalReason::TargetMismatch => "target_mismatch",
            RefusalReason::ProtectedNamespace => "protected_namespace",
            RefusalReason::ExcludedNamespace => "excluded_namespace",
            RefusalReason::OptedOut => "opted_out",
            RefusalReason::NamespaceOptedOut => "namespace_opted_out",
            RefusalReason::Cooldown => "cooldown",
            RefusalReason::GlobalBudget => "global_budget",
            RefusalReason::NamespaceBudget => "namespace_budget",
            RefusalReason::WorkloadBudget => "workload_budget",
            RefusalReason::Escalated => "escalated",
            RefusalReason::FactsUnavailable => "facts_unavailable",
            RefusalReason::Disabled => "disabled",
            RefusalReason::Partition => "partition",
            RefusalReason::NodeInRemediation => "node_in_remediation",
            RefusalReason::TargetGone => "target_gone",
            RefusalReason::ConditionCleared => "condition_cleared",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: a typed reason and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub message: String,
}

impl Refusal {
    /// A refusal with `reason` and `message`.
    pub fn new(reason: RefusalReason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }
}

/// What the guard says about a delivered signal before any routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A new firing occurrence: route it.
    New,
    /// The same occurrence was delivered before (Alertmanager repeats, HA pairs).
    Duplicate,
    /// A resolved occurrence: never acted on. `recovered` names the target key
    /// whose escalation count was reset (targets that keep their identity only).
    Resolved { recovered: Option<String> },
}

/// The guard's verdict on a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead; with `dry_run` change nothing (`dry_run_source` says who asked for it).
    Allow {
        dry_run: bool,
        dry_run_source: Option<&'static str>,
    },
    Refuse(Refusal),
}

/// A verdict plus whether this check escalated the workload for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// True the first time a workload crosses the escalation threshold.
    pub newly_escalated: bool,
}

impl Decision {
    fn allow(dry_run_source: Option<&'static str>) -> Decision {
        Decision {
            verdict: Verdict::Allow {
                dry_run: dry_run_source.is_some(),
                dry_run_source,
            },
            newly_escalated: false,
        }
    }

    fn refuse(reason: RefusalReason, message: impl Into<String>) -> Decision {
        Decision {
            verdict: Verdict::Refuse(Refusal::new(reason, message)),
            newly_escalated: false,
        }
    }
}

/// An action taken before this process started, read back from the durable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastAction {
    /// The workload key (or target key) the action counted against.
    pub key: String,
    pub namespace: Option<String>,
    pub kind: RemediationKind,
    pub at: Timestamp,
}

#[derive(Debug, Clone)]
struct ActionRecord {
    at: Timestamp,
    key: String,
    namespace: Option<String>,
    kind: RemediationKind,
}

type Occurrence = (String, Timestamp, AlertStatus);

/// The guard and its state.
#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    features: Features,
    protected: BTreeSet<String>,
    excluded: Vec<Regex>,
    seen: HashSet<Occurrence>,
    seen_order: VecDeque<(Timestamp, Occurrence)>,
    actions: VecDeque<ActionRecord>,
    recoveries: HashMap<String, Timestamp>,
    escalated: HashSet<(String, RemediationKind)>,
}

fn since(now: Timestamp, then: Timestamp) -> Duration {
    now.duration_since(then).unsigned_abs()
}

fn opted_out(meta: Option<&ObjectMeta>) -> bool {
    meta.is_some_and(|m| {
        m.labels.get(OPT_OUT_KEY).map(String::as_str) == Some("true")
            || m.annotations.get(OPT_OUT_KEY).map(String::as_str) == Some("true")
    })
}

impl Guard {
    /// A guard for `cfg`; `own_namespace` (heal8s's own) is always protected.
    pub fn new(
        cfg: &GuardConfig,
        features: &Features,
        own_namespace: &str,
    ) -> Result<Guard, PolicyError> {
        let excluded = cfg
            .excluded_regexes()
            .map_err(|issues| PolicyError { issues })?;
        let mut protected: BTreeSet<String> = cfg.protected_namespaces.iter().cloned().collect();
        if !own_namespace.is_empty() {
            if !crate::target::is_dns1123_label(own_namespace) {
                return Err(PolicyError {
                    issues: vec![PolicyIssue {
                        path: "namespace".into(),
                        message: format!("{own_namespace:?} is not a valid namespace name"),
                    }],
                });
            }
            protected.insert(own_namespace.to_string());
        }
        Ok(Guard {
            cfg: cfg.clone(),
            features: features.clone(),
            protected,
            excluded,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            actions: VecDeque::new(),
            recoveries: HashMap::new(),
            escalated: HashSet::new(),
        })
    }

    /// The protected namespaces in effect (policy plus heal8s's own).
    pub fn protected_namespaces(&self) -> impl Iterator<Item = &str> {
        self.protected.iter().map(String::as_str)
    }

    /// Dedupe a delivered signal and handle resolutions. Call once per delivered signal.
    pub fn admit(&mut self, signal: &Signal, now: Timestamp) -> Admission {
        let window = self.cfg.dedupe_window.get();
        while let Some((at, _)) = self.seen_order.front() {
            if since(now, *at) < window && self.seen_order.len() < MAX_REMEMBERED_OCCURRENCES {
                break;
            }
            if let Some((_, occ)) = self.seen_order.pop_front() {
                self.seen.remove(&occ);
            }
        }
        // Alertmanager re-delivers; detectors do not (their emitter re-signals a
        // persisting problem on purpose, so cooldowns and budgets can be retried).
        if signal.source.kind() == "alert" {
            let occ = (signal.fingerprint.clone(), signal.first_seen, signal.status);
            if !self.seen.insert(occ.clone()) {
                return Admission::Duplicate;
            }
            self.seen_order.push_back((now, occ));
        }
        match signal.status {
            AlertStatus::Firing => Admission::New,
            AlertStatus::Resolved => {
                // A pod's alert resolves when the pod is deleted, which is not
                // evidence that its workload recovered; other targets keep their identity.
                let recovered = signal
                    .target
                    .as_ref()
                    .filter(|t| t.kind != TargetKind::Pod)
                    .map(|t| t.key());
                if let Some(key) = &recovered {
                    self.record_recovery(key, now);
                }
                Admission::Resolved { recovered }
            }
        }
    }

    /// Note that the workload or target `key` recovered: its escalation count starts over.
    pub fn record_recovery(&mut self, key: &str, now: Timestamp) {
        self.recoveries.insert(key.to_string(), now);
        self.escalated.retain(|(k, _)| k != key);
    }

    /// Check a plan against every rule. `facts` is what the live cluster said
    /// (empty offline); `plan.workload` should already carry the owner if known.
    pub fn check(&mut self, plan: &Plan, facts: &Facts, now: Timestamp) -> Decision {
        let dry_run_source = if self.cfg.dry_run {
            Some("global")
        } else if plan.mode == Mode::DryRun {
            Some("route")
        } else {
            None
        };
        if !plan.kind().is_mutating() {
            return Decision::allow(dry_run_source);
        }
        if !self.enabled(plan.kind()) {
            return Decision::refuse(
                RefusalReason::Disabled,
                format!(
                    "{} is switched off (features; enable it in the policy or with an --enable flag)",
                    plan.kind()
                ),
            );
        }
        if let Some(ns) = plan.namespace() {
            if self.protected.contains(ns) {
                return Decision::refuse(
                    RefusalReason::ProtectedNamespace,
                    format!("namespace {ns} is protected"),
                );
            }
            if let Some(re) = self.excluded.iter().find(|re| re.is_match(ns)) {
                return Decision::refuse(
                    RefusalReason::ExcludedNamespace,
                    format!("namespace {ns} matches excluded pattern {}", re.as_str()),
                );
            }
        }
        if opted_out(facts.object.as_ref()) {
            return Decision::refuse(
                RefusalReason::OptedOut,
                format!("the object carries {OPT_OUT_KEY}=true"),
            );
        }
        if opted_out(facts.namespace.as_ref()) {
            return Decision::refuse(
                RefusalReason::NamespaceOptedOut,
                format!("its namespace carries {OPT_OUT_KEY}=true"),
            );
        }

        if matches!(
            plan.kind(),
            RemediationKind::DrainNode | RemediationKind::DeleteNode
        ) && let Some(c) = &facts.cluster
        {
            let limit = self.cfg.nodes.max_unhealthy_percent;
            let pct = if c.nodes_total == 0 {
                0
            } else {
                u64::from(c.nodes_unhealthy) * 100 / u64::from(c.nodes_total)
            };
            if pct > u64::from(limit) {
                return Decision::refuse(
                    RefusalReason::Partition,
                    format!(
                        "{} of {} nodes are unhealthy ({pct}% > {limit}%): that is a partition, not a node failure",
                        c.nodes_unhealthy, c.nodes_total
                    ),
                );
            }
            let target = plan.target.as_ref().map(|t| t.name.as_str());
            let others: Vec<&str> = c
                .nodes_in_remediation
                .iter()
                .map(String::as_str)
                .filter(|n| Some(*n) != target)
                .collect();
            if others.len() >= self.cfg.nodes.max_concurrent as usize {
                return Decision::refuse(
                    RefusalReason::NodeInRemediation,
                    format!("node(s) {} already in remediation", others.join(", ")),
                );
            }
        }

        let key = plan.workload_key();
        let kind = plan.kind();
        self.prune(now);

        // escalation: remediated `after` times within `within`, with no recovery since
        let esc = self.cfg.escalation;
        let recovered_at = self.recoveries.get(&key).copied();
        let repeats = self
            .actions
            .iter()
            .filter(|a| a.key == key && a.kind == kind)
            .filter(|a| since(now, a.at) < esc.within.get())
            .filter(|a| recovered_at.is_none_or(|r| a.at > r))
            .count();
        if repeats >= esc.after as usize {
            let newly = self.escalated.insert((key.clone(), kind));
            return Decision {
                verdict: Verdict::Refuse(Refusal::new(
                    RefusalReason::Escalated,
                    format!(
                        "{kind} ran {repeats} times on {key} within {} without recovery; escalated instead",
                        esc.within
                    ),
                )),
                newly_escalated: newly,
            };
        }

        let cooldown = self.cfg.cooldown.get();
        if let Some(last) = self
            .actions
            .iter()
            .rev()
            .find(|a| a.key == key && a.kind == kind)
            && since(now, last.at) < cooldown
        {
            let left = cooldown.saturating_sub(since(now, last.at));
            return Decision::refuse(
                RefusalReason::Cooldown,
                format!(
                    "{kind} ran on {key} {} ago; cooldown has {} left",
                    PromDuration(Duration::from_secs(since(now, last.at).as_secs())),
                    PromDuration(Duration::from_secs(left.as_secs().max(1)))
                ),
            );
        }

        // Budgets limit janitor actions on the cluster; pull requests have caps
        // of their own (per repository and hour), so they neither use nor meet budgets.
        if kind.is_declarative() {
            self.escalated.remove(&(key, kind));
            return Decision::allow(dry_run_source);
        }
        let b = &self.cfg.budgets;
        let count = |pred: &dyn Fn(&ActionRecord) -> bool, per: PromDuration| {
            self.actions
                .iter()
                .filter(|a| !a.kind.is_declarative() && since(now, a.at) < per.get() && pred(a))
                .count()
        };
        let n = count(&|a| a.key == key, b.per_workload.per);
        if n >= b.per_workload.max as usize {
            return Decision::refuse(
                RefusalReason::WorkloadBudget,
                format!("{n} actions on {key} in the last {}", b.per_workload.per),
            );
        }
        if let Some(ns) = plan.namespace() {
            let n = count(&|a| a.namespace.as_deref() == Some(ns), b.per_namespace.per);
            if n >= b.per_namespace.max as usize {
                return Decision::refuse(
                    RefusalReason::NamespaceBudget,
                    format!(
                        "{n} actions in namespace {ns} in the last {}",
                        b.per_namespace.per
                    ),
                );
            }
        }
        let n = count(&|_| true, b.global.per);
        if n >= b.global.max as usize {
            return Decision::refuse(
                RefusalReason::GlobalBudget,
                format!("{n} actions in the last {}", b.global.per),
            );
        }
        self.escalated.remove(&(key, kind));
        Decision::allow(dry_run_source)
    }

    fn enabled(&self, kind: RemediationKind) -> bool {
        let f = &self.features;
        match kind {
            RemediationKind::DeletePod | RemediationKind::EvictPod => f.heal_pods,
            RemediationKind::DrainNode => f.drain_nodes,
            RemediationKind::DeleteNode => f.delete_nodes,
            RemediationKind::CleanupResource => f.cleanup_resources,
            RemediationKind::DeleteNamespace => f.delete_namespaces,
            RemediationKind::BumpMemory
            | RemediationKind::ScaleUp
            | RemediationKind::RollbackImage
            | RemediationKind::NotifyOnly => true,
        }
    }

    /// Take back alert occurrences delivered before this process started
    /// (fingerprint and startsAt), so a restarted replica dedupes them too.
    pub fn restore_seen(
        &mut self,
        occurrences: impl IntoIterator<Item = (String, Timestamp)>,
        now: Timestamp,
    ) {
        for (fingerprint, starts_at) in occurrences {
            let occ = (fingerprint, starts_at, AlertStatus::Firing);
            if self.seen.insert(occ.clone()) {
                self.seen_order.push_back((now, occ));
            }
        }
    }

    /// Take back actions recorded before this process started, so cooldowns,
    /// budgets and escalation hold across restarts and replicas. Call before
    /// any new action is recorded.
    pub fn restore(&mut self, past: impl IntoIterator<Item = PastAction>) {
        let mut all: Vec<ActionRecord> = self.actions.drain(..).collect();
        all.extend(past.into_iter().map(|p| ActionRecord {
            at: p.at,
            key: p.key,
            namespace: p.namespace,
            kind: p.kind,
        }));
        all.sort_by_key(|a| a.at);
        self.actions = all.into();
    }

    /// Record that `plan` was carried out (or simulated, in dry-run) at `now`.
    /// Dry-run actions count too, so a dry run shows what budgets would allow.
    pub fn record(&mut self, plan: &Plan, now: Timestamp) {
        if !plan.kind().is_mutating() {
            return;
        }
        self.actions.push_back(ActionRecord {
            at: now,
            key: plan.workload_key(),
            namespace: plan.namespace().map(str::to_string),
            kind: plan.kind(),
        });
    }

    fn prune(&mut self, now: Timestamp) {
        let b = &self.cfg.budgets;
        let horizon = [
            self.cfg.cooldown,
            self.cfg.escalation.within,
            b.global.per,
            b.per_namespace.per,
            b.per_workload.per,
        ]
        .into_iter()
        .max()
        .map_or(Duration::ZERO, PromDuration::get);
        while self
            .actions
            .front()
            .is_some_and(|a| since(now, a.at) >= horizon)
        {
            self.actions.pop_front();
        }
        self.recoveries
            .retain(|_, at| since(now, *at) < self.cfg.escalation.within.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::WorkloadRef;
    use crate::policy::{Budget, Policy};
    use crate::testutil::signal;

    /// A fake clock: seconds since an arbitrary epoch.
    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn cfg() -> GuardConfig {
        GuardConfig::default()
    }

    fn guard(cfg: &GuardConfig) -> Guard {
        Guard::new(
            cfg,
            &Features::for_profile(crate::detect::Profile::TestCluster),
            "heal8s",
        )
        .unwrap()
    }

    fn plan_for(labels: &[(&str, &str)], yaml_route: &str) -> Plan {
        let p = Policy::from_yaml(&format!("routes: [{yaml_route}]")).unwrap();
        Plan::build(&signal(labels), &p.routes[0]).unwrap()
    }

    fn pod_plan(ns: &str, pod: &str) -> Plan {
        plan_for(
            &[
                ("alertname", "KubePodCrashLooping"),
                ("namespace", ns),
                ("pod", pod),
            ],
            "{remediation: delete-pod}",
        )
    }

    fn owned(mut p: Plan, deploy: &str) -> Plan {
        p.workload = Some(WorkloadRef {
            kind: "Deployment".into(),
            namespace: p.namespace().map(str::to_string),
            name: deploy.into(),
        });
        p
    }

    fn reason(d: &Decision) -> Option<RefusalReason> {
        match &d.verdict {
            Verdict::Refuse(r) => Some(r.reason),
            Verdict::Allow { .. } => None,
        }
    }

    fn act(g: &mut Guard, p: &Plan, now: Timestamp) -> Option<RefusalReason> {
        let d = g.check(p, &Facts::unknown(), now);
        let r = reason(&d);
        if r.is_none() {
            g.record(p, now);
        }
        r
    }

    #[test]
    fn repeated_delivery_of_the_same_occurrence_is_a_duplicate() {
        let mut g = guard(&cfg());
        let s = signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")]);
        assert_eq!(g.admit(&s, t(0)), Admission::New);
        assert_eq!(g.admit(&s, t(2)), Admission::Duplicate);
        // a new occurrence (new startsAt) of the same series is new
        let mut again = s.clone();
        again.first_seen = t(100);
        assert_eq!(g.admit(&again, t(101)), Admission::New);
    }

    #[test]
    fn dedupe_memory_expires_after_the_window() {
        let mut c = cfg();
        c.dedupe_window = PromDuration::secs(60);
        let mut g = guard(&c);
        let s = signal(&[("alertname", "A")]);
        assert_eq!(g.admit(&s, t(0)), Admission::New);
        assert_eq!(g.admit(&s, t(59)), Admission::Duplicate);
        assert_eq!(g.admit(&s, t(61)), Admission::New);
    }

    #[test]
    fn resolved_signals_are_never_new_and_are_deduped_too() {
        let mut g = guard(&cfg());
        let mut s = signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")]);
        assert_eq!(g.admit(&s, t(0)), Admission::New);
        s.status = AlertStatus::Resolved;
        assert_eq!(g.admit(&s, t(5)), Admission::Resolved { recovered: None });
        assert_eq!(g.admit(&s, t(6)), Admission::Duplicate);
    }

    #[test]
    fn protected_namespaces_include_heal8s_own() {
        let mut g = guard(&cfg());
        for ns in ["kube-system", "kube-public", "kube-node-lease", "heal8s"] {
            assert_eq!(
                act(&mut g, &pod_plan(ns, "p"), t(0)),
                Some(RefusalReason::ProtectedNamespace),
                "{ns}"
            );
        }
        assert_eq!(act(&mut g, &pod_plan("shop", "p"), t(0)), None);
    }

    #[test]
    fn protected_namespace_itself_cannot_be_deleted() {
        let mut g = guard(&cfg());
        let p = plan_for(
            &[("alertname", "Stale"), ("namespace", "kube-system")],
            "{remediation: delete-namespace, params: {namePattern: 'kube-.*'}}",
        );
        assert_eq!(
            act(&mut g, &p, t(0)),
            Some(RefusalReason::ProtectedNamespace)
        );
    }

    #[test]
    fn excluded_namespace_patterns_are_anchored() {
        let mut c = cfg();
        c.excluded_namespaces = vec!["openshift-.*".into()];
        let mut g = guard(&c);
        assert_eq!(
            act(&mut g, &pod_plan("openshift-monitoring", "p"), t(0)),
            Some(RefusalReason::ExcludedNamespace)
        );
        assert_eq!(act(&mut g, &pod_plan("my-openshift-app", "p"), t(0)), None);
    }

    #[test]
    fn opt_out_label_or_annotation_on_object_or_namespace() {
        let mut g = guard(&cfg());
        let p = pod_plan("shop", "p");
        let yes: ObjectMeta = ObjectMeta {
            labels: [(OPT_OUT_KEY.to_string(), "true".to_string())].into(),
            ..ObjectMeta::default()
        };
        let ann = ObjectMeta {
            annotations: [(OPT_OUT_KEY.to_string(), "true".to_string())].into(),
            ..ObjectMeta::default()
        };
        let no = ObjectMeta {
            labels: [(OPT_OUT_KEY.to_string(), "false".to_string())].into(),
            ..ObjectMeta::default()
        };
        let facts = |o: Option<&ObjectMeta>, n: Option<&ObjectMeta>| Facts {
            object: o.cloned(),
            namespace: n.cloned(),
            ..Facts::default()
        };
        assert_eq!(
            reason(&g.check(&p, &facts(Some(&yes), None), t(0))),
            Some(RefusalReason::OptedOut)
        );
        assert_eq!(
            reason(&g.check(&p, &facts(Some(&ann), None), t(0))),
            Some(RefusalReason::OptedOut)
        );
        assert_eq!(
            reason(&g.check(&p, &facts(Some(&no), Some(&ann)), t(0))),
            Some(RefusalReason::NamespaceOptedOut)
        );
        assert_eq!(
            reason(&g.check(&p, &facts(Some(&no), Some(&no)), t(0))),
            None
        );
    }

    #[test]
    fn global_dry_run_allows_but_marks_dry_run() {
        let mut c = cfg();
        c.dry_run = true;
        let mut g = guard(&c);
        let d = g.check(&pod_plan("shop", "p"), &Facts::unknown(), t(0));
        assert_eq!(
            d.verdict,
            Verdict::Allow {
                dry_run: true,
                dry_run_source: Some("global")
            }
        );
        // the safety rules still apply in dry-run
        assert_eq!(
            reason(&g.check(&pod_plan("kube-system", "p"), &Facts::unknown(), t(0))),
            Some(RefusalReason::ProtectedNamespace)
        );
    }

    #[test]
    fn route_dry_run_mode_is_a_dry_run() {
        let mut g = guard(&cfg());
        let p = plan_for(
            &[("alertname", "A"), ("namespace", "shop"), ("pod", "p")],
            "{remediation: delete-pod, mode: dry-run}",
        );
        assert_eq!(
            g.check(&p, &Facts::unknown(), t(0)).verdict,
            Verdict::Allow {
                dry_run: true,
                dry_run_source: Some("route")
            }
        );
    }

    #[test]
    fn cooldown_is_keyed_by_owning_workload_not_pod_name() {
        let mut g = guard(&cfg());
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "api-1"), "api"), t(0)),
            None
        );
        // the recreated pod has a new name but the same owner
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "api-2"), "api"), t(60)),
            Some(RefusalReason::Cooldown)
        );
        // another workload in the namespace is not cooling down
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "web-1"), "web"), t(60)),
            None
        );
        // after the cooldown (10m) the workload may be remediated again
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "api-3"), "api"), t(601)),
            None
        );
    }

    #[test]
    fn cooldown_without_a_known_owner_is_keyed_by_target() {
        let mut g = guard(&cfg());
        assert_eq!(act(&mut g, &pod_plan("shop", "p"), t(0)), None);
        assert_eq!(
            act(&mut g, &pod_plan("shop", "p"), t(10)),
            Some(RefusalReason::Cooldown)
        );
        assert_eq!(act(&mut g, &pod_plan("shop", "q"), t(10)), None);
    }

    #[test]
    fn cooldown_is_per_remediation() {
        let mut g = guard(&cfg());
        let labels = [("alertname", "A"), ("namespace", "shop"), ("pod", "p")];
        assert_eq!(
            act(
                &mut g,
                &plan_for(&labels, "{remediation: delete-pod}"),
                t(0)
            ),
            None
        );
        assert_eq!(
            act(
                &mut g,
                &plan_for(&labels, "{remediation: bump-memory}"),
                t(1)
            ),
            None
        );
    }

    #[test]
    fn namespace_budget_limits_a_storm_in_one_namespace() {
        let mut g = guard(&cfg()); // 3 per minute per namespace
        for i in 0..3 {
            assert_eq!(act(&mut g, &pod_plan("shop", &format!("p{i}")), t(i)), None);
        }
        assert_eq!(
            act(&mut g, &pod_plan("shop", "p3"), t(5)),
            Some(RefusalReason::NamespaceBudget)
        );
        assert_eq!(act(&mut g, &pod_plan("web", "p3"), t(5)), None);
        // the window slides
        assert_eq!(act(&mut g, &pod_plan("shop", "p4"), t(61)), None);
    }

    #[test]
    fn global_budget_limits_all_actions() {
        let mut c = cfg();
        c.budgets.global = Budget {
            max: 2,
            per: PromDuration::secs(60),
        };
        let mut g = guard(&c);
        assert_eq!(act(&mut g, &pod_plan("a", "p"), t(0)), None);
        assert_eq!(act(&mut g, &pod_plan("b", "p"), t(1)), None);
        assert_eq!(
            act(&mut g, &pod_plan("c", "p"), t(2)),
            Some(RefusalReason::GlobalBudget)
        );
        assert_eq!(act(&mut g, &pod_plan("c", "p"), t(60)), None);
    }

    #[test]
    fn pull_request_plans_neither_use_nor_meet_the_janitor_budgets() {
        let mut c = cfg();
        c.budgets.global = Budget {
            max: 1,
            per: PromDuration::secs(60),
        };
        let mut g = guard(&c);
        let labels = |p: &'static str| [("alertname", "A"), ("namespace", "shop"), ("pod", p)];
        assert_eq!(
            act(
                &mut g,
                &plan_for(&labels("a"), "{remediation: bump-memory}"),
                t(0)
            ),
            None
        );
        assert_eq!(
            act(
                &mut g,
                &plan_for(&labels("b"), "{remediation: bump-memory}"),
                t(1)
            ),
            None
        );
        assert_eq!(act(&mut g, &pod_plan("shop", "c"), t(2)), None);
        assert_eq!(
            act(&mut g, &pod_plan("shop", "d"), t(3)),
            Some(RefusalReason::GlobalBudget)
        );
        // cooldowns still apply to pull requests
        assert_eq!(
            act(
                &mut g,
                &plan_for(&labels("a"), "{remediation: bump-memory}"),
                t(4)
            ),
            Some(RefusalReason::Cooldown)
        );
    }

    #[test]
    fn workload_budget_counts_every_remediation_of_a_workload() {
        let mut c = cfg();
        c.budgets.per_workload = Budget {
            max: 2,
            per: PromDuration::secs(3600),
        };
        c.cooldown = PromDuration::secs(1);
        let mut g = guard(&c);
        let labels = [("alertname", "A"), ("namespace", "shop"), ("pod", "p")];
        let del = owned(plan_for(&labels, "{remediation: delete-pod}"), "api");
        let evict = owned(plan_for(&labels, "{remediation: evict-pod}"), "api");
        assert_eq!(act(&mut g, &del, t(0)), None);
        assert_eq!(act(&mut g, &evict, t(100)), None);
        assert_eq!(
            act(&mut g, &del, t(200)),
            Some(RefusalReason::WorkloadBudget)
        );
    }

    #[test]
    fn repeated_remediation_without_recovery_escalates_once() {
        let mut c = cfg();
        c.cooldown = PromDuration::secs(60);
        c.budgets.per_workload.max = 100;
        let mut g = guard(&c); // escalate after 3 within 1h
        let p = |n: &str| owned(pod_plan("shop", n), "api");
        assert_eq!(act(&mut g, &p("a"), t(0)), None);
        assert_eq!(act(&mut g, &p("b"), t(120)), None);
        assert_eq!(act(&mut g, &p("c"), t(240)), None);
        let d = g.check(&p("d"), &Facts::unknown(), t(360));
        assert_eq!(reason(&d), Some(RefusalReason::Escalated));
        assert!(d.newly_escalated);
        let d = g.check(&p("e"), &Facts::unknown(), t(480));
        assert_eq!(reason(&d), Some(RefusalReason::Escalated));
        assert!(!d.newly_escalated, "escalation is recorded once");
        // once the old actions leave the window, it may be tried again
        assert_eq!(act(&mut g, &p("f"), t(3601)), None);
    }

    #[test]
    fn recovery_resets_escalation_for_targets_that_keep_their_identity() {
        let mut c = cfg();
        c.cooldown = PromDuration::secs(1);
        c.budgets.per_workload.max = 100;
        c.escalation.after = 1;
        let mut g = guard(&c);
        let labels = [
            ("alertname", "KubeHpaMaxedOut"),
            ("namespace", "shop"),
            ("horizontalpodautoscaler", "api"),
        ];
        let p = plan_for(&labels, "{remediation: scale-up}");
        assert_eq!(act(&mut g, &p, t(0)), None);
        assert_eq!(act(&mut g, &p, t(10)), Some(RefusalReason::Escalated));
        let mut s = signal(&labels);
        s.status = AlertStatus::Resolved;
        assert_eq!(
            g.admit(&s, t(20)),
            Admission::Resolved {
                recovered: Some("HorizontalPodAutoscaler/shop/api".into())
            }
        );
        assert_eq!(act(&mut g, &p, t(30)), None);
    }

    #[test]
    fn notify_only_is_never_refused_by_budgets() {
        let mut c = cfg();
        c.budgets.global.max = 1;
        let mut g = guard(&c);
        let n = plan_for(
            &[
                ("alertname", "A"),
                ("namespace", "kube-system"),
                ("pod", "p"),
            ],
            "{remediation: notify-only}",
        );
        for i in 0..5 {
            assert_eq!(act(&mut g, &n, t(i)), None);
        }
    }

    #[test]
    fn node_plans_have_no_namespace_and_use_global_budget() {
        let mut c = cfg();
        c.budgets.global.max = 1;
        let mut g = guard(&c);
        let p = |n: &str| {
            plan_for(
                &[("alertname", "KubeNodeNotReady"), ("node", n)],
                "{remediation: drain-node}",
            )
        };
        assert_eq!(act(&mut g, &p("w1"), t(0)), None);
        assert_eq!(
            act(&mut g, &p("w2"), t(1)),
            Some(RefusalReason::GlobalBudget)
        );
    }

    #[test]
    fn disabled_remediations_are_refused_whatever_the_route_says() {
        let prod = Features::for_profile(crate::detect::Profile::Production);
        let mut g = Guard::new(&cfg(), &prod, "heal8s").unwrap();
        let del_node = plan_for(
            &[("alertname", "A"), ("node", "w1")],
            "{remediation: delete-node}",
        );
        assert_eq!(act(&mut g, &del_node, t(0)), Some(RefusalReason::Disabled));
        let ns = plan_for(
            &[("alertname", "A"), ("namespace", "test-1")],
            "{remediation: delete-namespace, params: {namePattern: 'test-.*'}}",
        );
        assert_eq!(act(&mut g, &ns, t(0)), Some(RefusalReason::Disabled));
        // production still heals pods and drains nodes
        assert_eq!(act(&mut g, &pod_plan("shop", "p"), t(0)), None);
        let drain = plan_for(
            &[("alertname", "A"), ("node", "w1")],
            "{remediation: drain-node}",
        );
        assert_eq!(act(&mut g, &drain, t(0)), None);
    }

    fn cluster(total: u32, unhealthy: u32, busy: &[&str]) -> Facts {
        Facts {
            cluster: Some(crate::act::ClusterFacts {
                nodes_total: total,
                nodes_unhealthy: unhealthy,
                nodes_in_remediation: busy.iter().map(|s| s.to_string()).collect(),
            }),
            ..Facts::default()
        }
    }

    #[test]
    fn node_remediation_stops_during_a_partition() {
        let mut g = guard(&cfg());
        let drain = plan_for(
            &[("alertname", "A"), ("node", "w1")],
            "{remediation: drain-node}",
        );
        // 2 of 4 unhealthy = 50% > 40%
        assert_eq!(
            reason(&g.check(&drain, &cluster(4, 2, &[]), t(0))),
            Some(RefusalReason::Partition)
        );
        // 1 of 4 = 25%
        assert_eq!(reason(&g.check(&drain, &cluster(4, 1, &[]), t(0))), None);
    }

    #[test]
    fn only_one_node_in_remediation_at_a_time() {
        let mut g = guard(&cfg());
        let drain = plan_for(
            &[("alertname", "A"), ("node", "w1")],
            "{remediation: drain-node}",
        );
        assert_eq!(
            reason(&g.check(&drain, &cluster(10, 2, &["w2"]), t(0))),
            Some(RefusalReason::NodeInRemediation)
        );
        // the target itself being in remediation (a retry) is not another node
        assert_eq!(
            reason(&g.check(&drain, &cluster(10, 1, &["w1"]), t(0))),
            None
        );
    }

    #[test]
    fn detector_signals_are_not_deduped_by_occurrence() {
        let mut g = guard(&cfg());
        let mut s = signal(&[
            ("alertname", "Heal8sPodCrashLooping"),
            ("namespace", "shop"),
            ("pod", "p"),
        ]);
        s.source = crate::signal::Source::Detector {
            name: "pods".into(),
        };
        assert_eq!(g.admit(&s, t(0)), Admission::New);
        assert_eq!(g.admit(&s, t(600)), Admission::New);
    }

    #[test]
    fn restored_actions_keep_cooldowns_and_escalation_across_restarts() {
        let mut c = cfg();
        c.budgets.per_workload.max = 100;
        let mut g = guard(&c);
        let past = |at: i64| PastAction {
            key: "Deployment/shop/api".into(),
            namespace: Some("shop".into()),
            kind: RemediationKind::DeletePod,
            at: t(at),
        };
        g.restore([past(-100)]);
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "new-pod"), "api"), t(0)),
            Some(RefusalReason::Cooldown)
        );
        let mut g = guard(&c);
        g.restore([past(-3000), past(-2000), past(-1000)]);
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "new-pod"), "api"), t(0)),
            Some(RefusalReason::Escalated)
        );
    }

    #[test]
    fn restored_occurrences_are_deduped() {
        let mut g = guard(&cfg());
        let s = signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")]);
        g.restore_seen([(s.fingerprint.clone(), s.first_seen)], t(0));
        assert_eq!(g.admit(&s, t(1)), Admission::Duplicate);
    }

    #[test]
    fn invalid_own_namespace_is_an_error() {
        assert!(
            Guard::new(
                &cfg(),
                &Features::for_profile(crate::detect::Profile::Production),
                "Not Valid"
            )
            .is_err()
        );
    }
}
