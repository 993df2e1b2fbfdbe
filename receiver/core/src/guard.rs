//! The guard: every safety rule for every mutating action, in one place.
//!
//! Owns: dedupe of repeated deliveries, protected and excluded namespaces, the
//! `heal8s.io/ignore` opt-out, dry-run, cooldowns keyed by the owning workload,
//! budgets (global, per namespace, per workload) and escalation. Pure: time is
//! passed in (`now`), state is plain data, nothing here does IO. The state is an
//! in-memory cache, restored from the records' ledgers after a restart.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::alertmanager::AlertStatus;
use crate::detect::Features;
use crate::duration::PromDuration;
use crate::facts::{Facts, ObjectMeta};
use crate::plan::Plan;
use crate::policy::{GuardConfig, PolicyError, PolicyIssue};
use crate::remediation::{Mode, RemediationKind};
use crate::signal::Signal;

pub mod approval;
pub mod gitops;
pub mod holds;
pub mod members;
pub mod occurrences;
pub mod ownership;
mod precheck;

/// The label or annotation that opts an object or namespace out of heal8s.
pub const OPT_OUT_KEY: &str = "heal8s.io/ignore";

/// At most this many delivered occurrences are remembered for dedupe; the oldest go first.
pub const MAX_REMEMBERED_OCCURRENCES: usize = 100_000;

/// Why the guard (or the planner before it) refused. `as_str` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// The alert is about another cluster (its cluster label differs from
    /// heal8s's cluster name, or heal8s has no cluster name).
    WrongCluster,
    /// cleanup-resource on a type the policy does not list (or cannot be
    /// resolved through discovery).
    TypeNotAllowed,
    /// The class has as many actions in flight as it may.
    ClassInFlight,
    /// The class's rate (`guard.nodes.rate`, `guard.classes.*.rate`) is spent.
    ClassRate,
    /// Too many targets of the class turned unhealthy at once: a detector
    /// fault or a rolling partition, not a wave of real failures.
    MassFlip,
    /// The plan would have waited for its budget, but the backlog of waiting
    /// plans is full (see `backlog`): it is not kept, and runs only when
    /// signalled again.
    BacklogFull,
    /// The live object is managed by a GitOps controller (Argo CD, Flux)
    /// that would revert or re-create a direct change (`guard.gitops`).
    GitopsOwned,
    /// A maintenance window is open: heal8s only records.
    MaintenanceWindow,
    /// An alert the policy holds this remediation for fires.
    HeldByAlert,
    /// A person paused heal8s (`heal8s pause`, or the pause ConfigMap).
    Paused,
    /// heal8s serves several clusters (`clusters`) and the alert names none
    /// of them, or no cluster at all: it is never applied to some default.
    UnknownCluster,
    /// The signal waited longer than `guard.maxSignalAge` (in the queue, or
    /// behind a budget or breaker): it is not acted on as it was.
    StaleSignal,
    /// An approval came after its request expired, or too long ago to be
    /// acted on (`guard.approval.ttl`).
    ApprovalExpired,
    /// The approval names someone the policy's `guard.approval.approvers`
    /// does not list.
    NotAnApprover,
    /// The approved target is not the one the plan was made for (a pod with
    /// another UID, or on another node): the approval is not carried over.
    TargetChanged,
    /// heal8s cordoned the node and a person uncordoned it since: their
    /// change wins until the node recovers.
    HumanOverride,
    /// The namespace's own `RemediationPolicy` opts it out or switches the
    /// remediation off there.
    NamespacePolicy,
}

impl RefusalReason {
    /// Every reason, in declaration order: the metrics start each label at 0
    /// (a counter that appears at 1 hides its first increase). A new reason
    /// goes here too.
    pub const ALL: [RefusalReason; 35] = [
        RefusalReason::NoRoute,
        RefusalReason::MissingTarget,
        RefusalReason::TargetMismatch,
        RefusalReason::ProtectedNamespace,
        RefusalReason::ExcludedNamespace,
        RefusalReason::OptedOut,
        RefusalReason::NamespaceOptedOut,
        RefusalReason::Cooldown,
        RefusalReason::GlobalBudget,
        RefusalReason::NamespaceBudget,
        RefusalReason::WorkloadBudget,
        RefusalReason::Escalated,
        RefusalReason::FactsUnavailable,
        RefusalReason::Disabled,
        RefusalReason::Partition,
        RefusalReason::NodeInRemediation,
        RefusalReason::TargetGone,
        RefusalReason::ConditionCleared,
        RefusalReason::WrongCluster,
        RefusalReason::TypeNotAllowed,
        RefusalReason::ClassInFlight,
        RefusalReason::ClassRate,
        RefusalReason::MassFlip,
        RefusalReason::BacklogFull,
        RefusalReason::GitopsOwned,
        RefusalReason::MaintenanceWindow,
        RefusalReason::HeldByAlert,
        RefusalReason::Paused,
        RefusalReason::UnknownCluster,
        RefusalReason::StaleSignal,
        RefusalReason::ApprovalExpired,
        RefusalReason::NotAnApprover,
        RefusalReason::TargetChanged,
        RefusalReason::HumanOverride,
        RefusalReason::NamespacePolicy,
    ];

    /// Whether this refusal is a breaker standing a whole class down (not a
    /// verdict on one target).
    pub fn is_breaker(self) -> bool {
        matches!(
            self,
            RefusalReason::Partition
                | RefusalReason::NodeInRemediation
                | RefusalReason::ClassInFlight
                | RefusalReason::ClassRate
                | RefusalReason::MassFlip
                | RefusalReason::GlobalBudget
        )
    }

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
            RefusalReason::WrongCluster => "wrong_cluster",
            RefusalReason::TypeNotAllowed => "type_not_allowed",
            RefusalReason::ClassInFlight => "class_in_flight",
            RefusalReason::ClassRate => "class_rate",
            RefusalReason::MassFlip => "mass_flip",
            RefusalReason::BacklogFull => "backlog_full",
            RefusalReason::GitopsOwned => "gitops_owned",
            RefusalReason::MaintenanceWindow => "maintenance_window",
            RefusalReason::HeldByAlert => "held_by_alert",
            RefusalReason::Paused => "paused",
            RefusalReason::UnknownCluster => "unknown_cluster",
            RefusalReason::StaleSignal => "stale_signal",
            RefusalReason::ApprovalExpired => "approval_expired",
            RefusalReason::NotAnApprover => "not_an_approver",
            RefusalReason::TargetChanged => "target_changed",
            RefusalReason::HumanOverride => "human_override",
            RefusalReason::NamespacePolicy => "namespace_policy",
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
    /// A resolved occurrence: never acted on. `recovered` is the recovery of
    /// the target it was about (targets that keep their identity only).
    Resolved { recovered: Option<PastEvent> },
    /// Not this heal8s's business (an alert about another cluster): never
    /// routed, never acted on, and its resolution counts for nothing here.
    Refused(Refusal),
}

/// What an allowed plan does: the rung of the mode ladder it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Carry it out (mode `direct`, an approved plan, or a pull request).
    Act,
    /// Say what would be done and change nothing (`observe`); the source
    /// says who asked: `global` (`guard.dryRun`, `--dry-run`) or `route`.
    Observe(&'static str),
    /// A janitor action in mode `propose`: simulated, and proposed to people.
    Propose,
    /// Mode `approve`, not approved yet: ask a person.
    AwaitApproval,
}

impl Effect {
    /// Whether it changes anything in the cluster.
    pub fn acts(self) -> bool {
        self == Effect::Act
    }
}

/// The guard's verdict on a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead, as `effect` says.
    Allow {
        effect: Effect,
    },
    Refuse(Refusal),
}

/// A verdict plus whether this check escalated the workload for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// True the first time a workload crosses the escalation threshold.
    pub newly_escalated: bool,
    /// What the check changed in the guard's memory (an escalation), for the record.
    pub event: Option<PastEvent>,
}

impl Decision {
    fn allow(effect: Effect) -> Decision {
        Decision {
            verdict: Verdict::Allow { effect },
            newly_escalated: false,
            event: None,
        }
    }

    fn refused(r: Refusal) -> Decision {
        Decision {
            verdict: Verdict::Refuse(r),
            newly_escalated: false,
            event: None,
        }
    }

    fn refuse(reason: RefusalReason, message: impl Into<String>) -> Decision {
        Decision::refused(Refusal::new(reason, message))
    }
}

pub use crate::ledger::{GuardEvent, PastEvent, RecoveryBy};
pub use crate::remediation::ActionClass;

impl ActionClass {
    /// The class of `plan`.
    pub fn of(plan: &Plan) -> ActionClass {
        plan.remediation.class()
    }
}

/// One budget's use: `used` of `max` actions in its window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetLine {
    /// `global`, a namespace, or a workload key.
    pub name: String,
    pub used: u32,
    pub max: u32,
}

/// How much of the budgets is used now (see [`Guard::budget_use`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetUse {
    pub global: BudgetLine,
    pub global_per: PromDuration,
    pub namespaces: Vec<BudgetLine>,
    pub namespace_per: PromDuration,
    pub workloads: Vec<BudgetLine>,
    pub workload_per: PromDuration,
}

/// A breaker that holds a class of actions, as the guard last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breaker {
    pub class: ActionClass,
    /// `partition`, `class_in_flight`, `class_rate` or `mass_flip`.
    pub reason: RefusalReason,
    /// Since when it has held (the first refusal of this episode).
    pub since: Timestamp,
    /// The last refusal's sentence.
    pub message: String,
    /// The targets it refused in this episode (at most 100, oldest first).
    pub blocked: Vec<String>,
}

/// How long an action that is never settled (a crash during its
/// verification) counts as in flight.
pub const IN_FLIGHT_AT_MOST: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
struct ActionRecord {
    at: Timestamp,
    key: String,
    namespace: Option<String>,
    kind: RemediationKind,
    class: ActionClass,
    /// When it ended; `None` while in flight or when its end is unknown.
    ended: Option<Timestamp>,
    /// When what it did became known (see [`GuardEvent::Settled`]).
    settled: Option<Timestamp>,
    /// Restored from the record without an end: the process carrying it out
    /// died in the middle. Nothing is carrying it out any more.
    cut_off: bool,
}

impl ActionRecord {
    /// Whether it is in flight at `now`: started, and what it did not yet
    /// known (an action cut off by a crash is not: no one carries it on).
    fn in_flight(&self, now: Timestamp) -> bool {
        self.settled.is_none() && !self.cut_off && since(now, self.at) < IN_FLIGHT_AT_MOST
    }
}

type Occurrence = (String, Timestamp, AlertStatus);

/// The objects heal8s must never touch: those in protected or excluded
/// namespaces, and those that opted out (`heal8s.io/ignore=true` on the
/// object, any owner up its chain of controllers, or its namespace). The
/// guard checks every plan's target with it, and a drain checks every pod it
/// would evict with the same rules.
#[derive(Debug, Clone)]
pub struct Protection {
    protected: BTreeSet<String>,
    excluded: Vec<Regex>,
}

impl Default for Protection {
    /// The default protected namespaces, nothing excluded.
    fn default() -> Self {
        Protection {
            protected: crate::policy::DEFAULT_PROTECTED_NAMESPACES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            excluded: Vec::new(),
        }
    }
}

impl Protection {
    /// The rules of `cfg`; `own_namespace` (heal8s's own) is always protected.
    pub fn new(cfg: &GuardConfig, own_namespace: &str) -> Result<Protection, PolicyError> {
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
        Ok(Protection {
            protected,
            excluded,
        })
    }

    /// The protected namespaces (policy plus heal8s's own).
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.protected.iter().map(String::as_str)
    }

    /// Why an object in namespace `ns` must not be touched, if it must not:
    /// `object`, its `owners` (nearest first, named) and its `namespace` are
    /// what the live cluster said (`None` when not read).
    pub fn refusal(
        &self,
        ns: Option<&str>,
        object: Option<&ObjectMeta>,
        owners: &[(String, ObjectMeta)],
        namespace: Option<&ObjectMeta>,
    ) -> Option<Refusal> {
        if let Some(ns) = ns {
            if self.protected.contains(ns) {
                return Some(Refusal::new(
                    RefusalReason::ProtectedNamespace,
                    format!("namespace {ns} is protected"),
                ));
            }
            if let Some(re) = self.excluded.iter().find(|re| re.is_match(ns)) {
                return Some(Refusal::new(
                    RefusalReason::ExcludedNamespace,
                    format!("namespace {ns} matches excluded pattern {}", re.as_str()),
                ));
            }
        }
        if opted_out(object) {
            return Some(Refusal::new(
                RefusalReason::OptedOut,
                format!("the object carries {OPT_OUT_KEY}=true"),
            ));
        }
        if let Some((owner, _)) = owners.iter().find(|(_, m)| opted_out(Some(m))) {
            return Some(Refusal::new(
                RefusalReason::OptedOut,
                format!("its owner {owner} carries {OPT_OUT_KEY}=true"),
            ));
        }
        if opted_out(namespace) {
            return Some(Refusal::new(
                RefusalReason::NamespaceOptedOut,
                format!("its namespace carries {OPT_OUT_KEY}=true"),
            ));
        }
        None
    }
}

/// The guard and its state.
#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    features: Features,
    protection: Protection,
    /// The custom resource types the policy lists (`detectors.customResources.resources`):
    /// the only ones a cleanup-resource route without its own type may delete.
    listed_types: Vec<crate::detect::ResourceSpec>,
    seen: HashSet<Occurrence>,
    seen_order: VecDeque<(Timestamp, Occurrence)>,
    actions: VecDeque<ActionRecord>,
    /// Plans observed, proposed or put up for approval (time, key,
    /// remediation): they count for the cooldown only.
    observed: VecDeque<(Timestamp, String, RemediationKind)>,
    /// When each key last recovered: repeats before that do not count.
    recoveries: HashMap<String, Timestamp>,
    /// The escalation latch: refused until cleared (`clearedBy`).
    escalated: HashMap<(String, RemediationKind), Timestamp>,
    /// Distinct targets per class first checked within the mass-flip window
    /// (transient: not restored after a restart).
    flips: HashMap<ActionClass, VecDeque<(Timestamp, String)>>,
    /// The breakers holding a class now, by class.
    breakers: std::collections::BTreeMap<ActionClass, Breaker>,
    /// Maintenance windows, and the alerts firing that hold remediations.
    holds: holds::Holds,
    /// Occurrences counted against routes' thresholds (`minOccurrences`).
    occurrences: occurrences::Occurrences,
    /// Set while a person has paused heal8s: nothing is changed.
    paused: Option<Pause>,
    /// What the namespaces' own RemediationPolicies add up to, by namespace.
    namespaced: std::collections::BTreeMap<String, crate::policy::namespaced::Effective>,
}

/// A pause a person set: while it holds, heal8s only records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    /// Where it was set: `api` (`heal8s pause`) or `configmap`.
    pub source: String,
    /// Who set it, as they said (or the ConfigMap's `by` key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub since: Timestamp,
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

/// Whether a signal from `source` (`alert` or `detector`) with `labels` is
/// about another cluster than the one `cfg` names. Detectors watch heal8s's
/// own cluster; an alert without the label (or with it empty, which Prometheus
/// treats as absent) comes from a single-cluster Prometheus and is accepted.
/// An alert with the label is accepted only when it equals the configured name
/// exactly; with no name configured it is refused, never guessed.
fn wrong_cluster(
    cfg: &GuardConfig,
    source: crate::signal::SourceKind,
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<Refusal> {
    if source == crate::signal::SourceKind::Detector {
        return None;
    }
    let label = cfg.cluster_label.as_str();
    let named = labels.get(label).filter(|v| !v.is_empty())?;
    match cfg.cluster_name.as_deref() {
        Some(me) if me == named => None,
        Some(me) => Some(Refusal::new(
            RefusalReason::WrongCluster,
            format!("the alert is about cluster {named:?} (label {label}); this is cluster {me:?}"),
        )),
        None => Some(Refusal::new(
            RefusalReason::WrongCluster,
            format!(
                "the alert is about cluster {named:?} (label {label}) but this heal8s has no cluster name; \
                 set --cluster-name (or guard.clusterName) to this cluster's name to accept its alerts"
            ),
        )),
    }
}

impl Guard {
    /// A guard for `cfg`; `own_namespace` (heal8s's own) is always protected.
    pub fn new(
        cfg: &GuardConfig,
        features: &Features,
        own_namespace: &str,
    ) -> Result<Guard, PolicyError> {
        Ok(Guard {
            cfg: cfg.clone(),
            features: features.clone(),
            protection: Protection::new(cfg, own_namespace)?,
            listed_types: Vec::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            actions: VecDeque::new(),
            observed: VecDeque::new(),
            namespaced: Default::default(),
            recoveries: HashMap::new(),
            escalated: HashMap::new(),
            flips: HashMap::new(),
            breakers: std::collections::BTreeMap::new(),
            paused: None,
            holds: holds::Holds::new(&cfg.maintenance_windows, &cfg.hold_while_firing).map_err(
                |problems| PolicyError {
                    issues: problems
                        .into_iter()
                        .map(|(p, m)| PolicyIssue {
                            path: format!("guard.{p}"),
                            message: m,
                        })
                        .collect(),
                },
            )?,
            occurrences: occurrences::Occurrences::default(),
        })
    }

    /// Pause heal8s (`Some`) or let it act again (`None`): while paused,
    /// every remediation that changes something is refused `paused`.
    pub fn set_pause(&mut self, pause: Option<Pause>) {
        self.paused = pause;
    }

    /// The pause in force, if any.
    pub fn pause(&self) -> Option<&Pause> {
        self.paused.as_ref()
    }

    /// The refusal while paused.
    fn paused_refusal(&self) -> Option<Refusal> {
        self.paused.as_ref().map(|p| {
            let mut m = format!("heal8s is paused (since {}, {}", p.since, p.source);
            if !p.by.is_empty() {
                m.push_str(&format!(", by {}", p.by));
            }
            m.push(')');
            if !p.reason.is_empty() {
                m.push_str(&format!(": {}", p.reason));
            }
            m.push_str("; it only records until resumed");
            Refusal::new(RefusalReason::Paused, m)
        })
    }

    /// Count `plan`'s occurrence against its route's threshold `t`: the
    /// problem is `line` (the owning workload, or the target) and the
    /// reason (the detector's or the alert's `reason`, else the remediation).
    pub fn count_occurrence(
        &mut self,
        plan: &Plan,
        line: &str,
        t: crate::policy::Occurrences,
        now: Timestamp,
    ) -> occurrences::Count {
        let reason = plan
            .evidence
            .reason
            .as_deref()
            .or_else(|| plan.trigger.labels.get("reason").map(String::as_str))
            .filter(|r| !r.is_empty())
            .unwrap_or(plan.kind().as_str());
        let problem = format!("{line}|{reason}");
        let id = format!("{}@{}", plan.trigger.fingerprint, plan.trigger.first_seen);
        self.occurrences
            .count(&problem, &id, t.min, t.window.get(), now)
    }

    /// Forget that the alert occurrence `fingerprint` started at `start` was
    /// delivered: its next delivery is taken in as new (its plan was dropped
    /// as stale; only a fresh delivery may bring it back).
    pub fn forget_occurrence(&mut self, fingerprint: &str, start: Timestamp) {
        self.seen
            .remove(&(fingerprint.to_string(), start, AlertStatus::Firing));
    }

    /// The alerts holding remediations now (`guard.holdWhileFiring`), by name.
    pub fn holding_alerts(&self, now: Timestamp) -> Vec<String> {
        self.holds.firing(now)
    }

    /// The holds' alerts as kept durably (see [`holds::Holds::kept`]).
    pub fn kept_holds(&self, now: Timestamp) -> Vec<holds::HeldAlert> {
        self.holds.kept(now)
    }

    /// How often an alert started or stopped holding something.
    pub fn hold_changes(&self) -> u64 {
        self.holds.changes()
    }

    /// Hold again for the alerts kept durably (a new leader, a restart).
    pub fn restore_holds(&mut self, kept: &[holds::HeldAlert], now: Timestamp) {
        self.holds.restore(kept, now);
    }

    /// The custom resource types a cleanup-resource route without its own
    /// `apiVersion`/`kind` may delete (the policy's `customResources.resources`).
    pub fn with_listed_types(mut self, types: Vec<crate::detect::ResourceSpec>) -> Guard {
        self.listed_types = types;
        self
    }

    /// Whether cleanup-resource may delete the target of `plan`: its type is
    /// never a forbidden one, and is the route's own type or one the policy
    /// lists, as discovery resolved it (`facts.resource`).
    fn cleanup_type(&self, plan: &Plan, facts: &Facts) -> Option<Refusal> {
        let crate::remediation::Remediation::CleanupResource(p) = &plan.remediation else {
            return None;
        };
        let Some(crate::target::TargetKind::Custom(rt)) = plan.target.as_ref().map(|t| &t.kind)
        else {
            return Some(Refusal::new(
                RefusalReason::TypeNotAllowed,
                "cleanup-resource needs a custom resource target",
            ));
        };
        if let Some(why) = crate::remediation::cleanup_resource::forbidden(rt) {
            return Some(Refusal::new(RefusalReason::TypeNotAllowed, why));
        }
        if !p.kind.is_empty() {
            // the route names its type; the plan's target is of that type
            return None;
        }
        let Some(served) = &facts.resource else {
            return Some(Refusal::new(
                RefusalReason::TypeNotAllowed,
                format!(
                    "{} ({}) could not be resolved through discovery, so it cannot be checked against the policy's customResources.resources",
                    rt.kind,
                    rt.api_version()
                ),
            ));
        };
        let listed = self
            .listed_types
            .iter()
            .any(|s| s.group == rt.group && s.version == rt.version && s.plural == served.plural);
        if listed {
            None
        } else {
            Some(Refusal::new(
                RefusalReason::TypeNotAllowed,
                format!(
                    "{} ({}.{}/{}) is not in the policy's detectors.customResources.resources; a route without apiVersion/kind cleans up only those types",
                    rt.kind, served.plural, rt.group, rt.version
                ),
            ))
        }
    }

    /// The protected namespaces in effect (policy plus heal8s's own).
    pub fn protected_namespaces(&self) -> impl Iterator<Item = &str> {
        self.protection.namespaces()
    }

    /// The protection rules, for a drain to check the pods it would evict.
    pub fn protection(&self) -> &Protection {
        &self.protection
    }

    /// Dedupe a delivered signal, refuse one about another cluster, and handle
    /// resolutions. Call once per delivered signal.
    pub fn admit(&mut self, signal: &Signal, now: Timestamp) -> Admission {
        // a hold's alert holds from its first delivery (and each repeat keeps it fresh)
        if wrong_cluster(&self.cfg, signal.source.kind(), &signal.labels).is_none() {
            self.holds.observe(signal, now);
        }
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
        if signal.source.kind() == crate::signal::SourceKind::Alert {
            let occ = (signal.fingerprint.clone(), signal.first_seen, signal.status);
            if !self.seen.insert(occ.clone()) {
                return Admission::Duplicate;
            }
            self.seen_order.push_back((now, occ));
        }
        if let Some(refusal) = wrong_cluster(&self.cfg, signal.source.kind(), &signal.labels) {
            return Admission::Refused(refusal);
        }
        match signal.status {
            AlertStatus::Firing => Admission::New,
            AlertStatus::Resolved => {
                // A pod's alert resolves when the pod is deleted, which is not
                // evidence that its workload recovered; other targets keep their identity.
                let recovered = signal
                    .target
                    .as_ref()
                    .filter(|t| t.kind.keeps_identity())
                    .map(|t| self.record_recovery(&t.key(), RecoveryBy::AlertResolved, now));
                Admission::Resolved { recovered }
            }
        }
    }

    /// Note that the workload or target `key` recovered: its count of repeats
    /// starts over, and its escalation ends if the policy lets `by` end it.
    pub fn record_recovery(&mut self, key: &str, by: RecoveryBy, now: Timestamp) -> PastEvent {
        let e = PastEvent {
            at: now,
            event: GuardEvent::Recovered {
                key: key.to_string(),
                by,
            },
        };
        self.apply(&e);
        e
    }

    /// Whether any remediation on `key` is escalated.
    pub fn has_escalation(&self, key: &str) -> bool {
        self.escalated.keys().any(|(k, _)| k == key)
    }

    /// Whether `remediation` on `key` is escalated (refused until cleared).
    pub fn is_escalated(&self, key: &str, remediation: RemediationKind) -> bool {
        self.escalated.contains_key(&(key.to_string(), remediation))
    }

    /// Change the guard's memory by one event: the one way both live
    /// decisions and restored records reach it.
    fn apply(&mut self, e: &PastEvent) {
        match &e.event {
            GuardEvent::Action {
                key,
                namespace,
                remediation,
                class,
            } => {
                let rec = ActionRecord {
                    at: e.at,
                    key: key.clone(),
                    namespace: namespace.clone(),
                    kind: *remediation,
                    class: class.unwrap_or_else(|| remediation.class()),
                    ended: None,
                    settled: None,
                    cut_off: false,
                };
                // keep time order (events replayed from several records interleave)
                let pos = self.actions.partition_point(|a| a.at <= e.at);
                self.actions.insert(pos, rec);
            }
            GuardEvent::Observed { key, remediation } => {
                let pos = self.observed.partition_point(|o| o.0 <= e.at);
                self.observed.insert(pos, (e.at, key.clone(), *remediation));
            }
            GuardEvent::Recovered { key, by } => {
                let at = self.recoveries.entry(key.clone()).or_insert(e.at);
                *at = (*at).max(e.at);
                if self.cfg.escalation.cleared_by.contains(by) {
                    self.escalated
                        .retain(|(k, _), since| k != key || *since > e.at);
                }
            }
            GuardEvent::Escalated { key, remediation } => {
                self.escalated
                    .entry((key.clone(), *remediation))
                    .or_insert(e.at);
            }
            GuardEvent::Ended {
                key,
                remediation,
                started,
            } => {
                if let Some(a) = self
                    .actions
                    .iter_mut()
                    .find(|a| a.at == *started && a.key == *key && a.kind == *remediation)
                {
                    a.ended = Some(a.ended.map_or(e.at, |x| x.max(e.at)));
                }
            }
            GuardEvent::Settled {
                key,
                remediation,
                started,
            } => {
                if let Some(a) = self
                    .actions
                    .iter_mut()
                    .find(|a| a.at == *started && a.key == *key && a.kind == *remediation)
                {
                    a.settled = Some(a.settled.map_or(e.at, |x| x.max(e.at)));
                }
            }
        }
    }

    /// Check a plan against every rule. `facts` is what the live cluster said
    /// (empty offline); `plan.workload` should already carry the owner if known.
    pub fn check(&mut self, plan: &Plan, facts: &Facts, now: Timestamp) -> Decision {
        let mut d = self.check_rules(plan, facts, now);
        // a refusal in a namespace with its own policy names both policies
        if let Verdict::Refuse(r) = &mut d.verdict
            && let Some(e) = self.ns_policy(plan)
        {
            r.message = format!("{} (policy: the cluster's and {})", r.message, e.named());
        }
        d
    }

    /// Replace the namespaces' own policies (the accepted RemediationPolicies).
    pub fn set_namespace_policies(
        &mut self,
        policies: &[crate::policy::namespaced::NamespacePolicy],
    ) {
        self.namespaced = crate::policy::namespaced::Effective::by_namespace(policies);
    }

    /// What the RemediationPolicies of `namespace` add up to, if it has any.
    pub fn namespace_policy(
        &self,
        namespace: &str,
    ) -> Option<&crate::policy::namespaced::Effective> {
        self.namespaced.get(namespace)
    }

    /// What the RemediationPolicies of `plan`'s namespace add up to, if any.
    fn ns_policy(&self, plan: &Plan) -> Option<&crate::policy::namespaced::Effective> {
        plan.namespace().and_then(|ns| self.namespaced.get(ns))
    }

    /// The approval rules for `plan`: the cluster's, narrowed by its namespace's.
    fn approval_policy(&self, plan: &Plan) -> crate::policy::ApprovalPolicy {
        let mut a = self.cfg.approval.clone();
        if let Some(e) = self.ns_policy(plan)
            && !e.approvers.is_empty()
        {
            a.approvers = e.approvers.clone();
        }
        a
    }

    fn check_rules(&mut self, plan: &Plan, facts: &Facts, now: Timestamp) -> Decision {
        // before everything, notify-only included: another cluster's alert is not ours
        if let Some(refusal) = wrong_cluster(&self.cfg, plan.trigger.source, &plan.trigger.labels) {
            return Decision::refuse(refusal.reason, refusal.message);
        }
        let effect = self.effect(plan);
        if !plan.kind().is_mutating() {
            return Decision::allow(effect);
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
        if let Some(r) = self.cleanup_type(plan, facts) {
            return Decision::refused(r);
        }
        if let Some(r) = self.protection.refusal(
            plan.namespace(),
            facts.object.as_ref(),
            &facts.owners,
            facts.namespace.as_ref(),
        ) {
            return Decision::refused(r);
        }
        if let Some(e) = self.ns_policy(plan) {
            if let Some(by) = &e.opt_out {
                return Decision::refuse(
                    RefusalReason::NamespacePolicy,
                    format!(
                        "RemediationPolicy {by} opts namespace {} out of changes",
                        e.namespace()
                    ),
                );
            }
            if let Some(by) = e.disabled.get(&plan.kind()) {
                return Decision::refuse(
                    RefusalReason::NamespacePolicy,
                    format!(
                        "RemediationPolicy {by} switches {} off in its namespace",
                        plan.kind()
                    ),
                );
            }
        }
        if let Some(r) = self
            .paused_refusal()
            .or_else(|| self.holds.refusal(plan, now))
        {
            return Decision::refused(r);
        }
        if let Some(r) = gitops::refusal(&self.cfg.gitops, plan, facts) {
            return Decision::refused(r);
        }

        if let Some(r) = ownership::human_override(plan, facts.live.as_ref()) {
            return Decision::refused(r);
        }
        if let Some(a) = plan.approval.as_ref().filter(|a| a.approved_by.is_some())
            && let Some(r) = approval::refusal(
                plan,
                a,
                facts.live.as_ref(),
                &self.approval_policy(plan),
                now,
            )
        {
            return Decision::refused(r);
        }

        self.prune(now);
        let class = ActionClass::of(plan);
        if let Some(r) = self.class_breakers(plan, class, facts, now) {
            return self.stand_down(class, plan, r, now);
        }

        let key = plan.workload_key();
        let kind = plan.kind();

        // escalation is a latch: once escalated, refused until cleared
        if let Some(at) = self.escalated.get(&(key.clone(), kind)) {
            let cleared_by: Vec<&str> = self
                .cfg
                .escalation
                .cleared_by
                .iter()
                .map(|b| b.as_str())
                .collect();
            return Decision::refuse(
                RefusalReason::Escalated,
                format!(
                    "{kind} on {key} was escalated at {at} and stays escalated until cleared ({})",
                    cleared_by.join(", ")
                ),
            );
        }
        // escalation: remediated `after` times within `within`, with no recovery since
        let esc = &self.cfg.escalation;
        let recovered_at = self.recoveries.get(&key).copied();
        let repeats = self
            .actions
            .iter()
            .filter(|a| a.key == key && a.kind == kind)
            .filter(|a| since(now, a.at) < esc.within.get())
            // a node is the same machine after it recovers: a flapping node
            // keeps its count within the window and escalates
            .filter(|a| a.class == ActionClass::Nodes || recovered_at.is_none_or(|r| a.at > r))
            .count();
        if repeats >= esc.after as usize {
            let message = format!(
                "{kind} ran {repeats} times on {key} within {} without recovery; escalated instead",
                esc.within
            );
            let event = PastEvent {
                at: now,
                event: GuardEvent::Escalated {
                    key: key.clone(),
                    remediation: kind,
                },
            };
            self.apply(&event);
            return Decision {
                verdict: Verdict::Refuse(Refusal::new(RefusalReason::Escalated, message)),
                newly_escalated: true,
                event: Some(event),
            };
        }

        if let Some(r) = self.cooldown_refusal(plan, &key, now) {
            return Decision::refused(r);
        }

        // Budgets limit janitor actions on the cluster; pull requests have caps
        // of their own (per repository and hour), so they neither use nor meet budgets.
        if kind.is_declarative() {
            self.breakers.remove(&class);
            return Decision::allow(effect);
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
            let r = Refusal::new(
                RefusalReason::GlobalBudget,
                format!("{n} actions in the last {}", b.global.per),
            );
            return self.stand_down(class, plan, r, now);
        }
        // the namespace's own, lower budgets and in-flight caps
        if let Some(ns) = plan.namespace()
            && let Some(e) = self.namespaced.get(ns)
        {
            if let Some((cap, by)) = e.max_in_flight.get(&class) {
                let n = self
                    .actions
                    .iter()
                    .filter(|a| a.class == class && a.namespace.as_deref() == Some(ns))
                    .filter(|a| a.in_flight(now))
                    .count();
                if n >= *cap as usize {
                    return Decision::refuse(
                        RefusalReason::ClassInFlight,
                        format!(
                            "{n} {class} action(s) in flight in namespace {ns} (RemediationPolicy {by}: maxInFlight.{class} {cap}); waits for one to finish"
                        ),
                    );
                }
            }
            if let Some((r, by)) = e.rates.get(&class) {
                let n = count(
                    &|a| a.class == class && a.namespace.as_deref() == Some(ns),
                    r.per,
                );
                if n >= r.max as usize {
                    return Decision::refuse(
                        RefusalReason::ClassRate,
                        format!(
                            "{n} {class} action(s) in namespace {ns} in the last {} (RemediationPolicy {by}: rate.{class} at most {})",
                            r.per, r.max
                        ),
                    );
                }
            }
            if let Some((b, by)) = &e.per_namespace {
                let n = count(&|a| a.namespace.as_deref() == Some(ns), b.per);
                if n >= b.max as usize {
                    return Decision::refuse(
                        RefusalReason::NamespaceBudget,
                        format!(
                            "{n} actions in namespace {ns} in the last {} (RemediationPolicy {by}: at most {})",
                            b.per, b.max
                        ),
                    );
                }
            }
            if let Some((b, by)) = &e.per_workload {
                let n = count(&|a| a.key == key, b.per);
                if n >= b.max as usize {
                    return Decision::refuse(
                        RefusalReason::WorkloadBudget,
                        format!(
                            "{n} actions on {key} in the last {} (RemediationPolicy {by}: at most {})",
                            b.per, b.max
                        ),
                    );
                }
            }
        }
        self.breakers.remove(&class);
        Decision::allow(effect)
    }

    /// The request for approval of `plan` at `now` (mode `approve`), on the
    /// live object `live` read for it.
    pub fn ask_approval(
        &self,
        plan: &Plan,
        live: Option<&serde_json::Value>,
        now: Timestamp,
    ) -> crate::plan::Approval {
        approval::ask(plan, live, &self.cfg.approval, now)
    }

    /// The rung of the mode ladder `plan` is on (see [`Effect`]).
    pub fn effect(&self, plan: &Plan) -> Effect {
        if self.cfg.dry_run {
            return Effect::Observe("global");
        }
        let janitor = plan.kind().is_mutating() && !plan.kind().is_declarative();
        // the namespace's policy may force a lower rung
        let mode = match self.ns_policy(plan).and_then(|e| e.mode.as_ref()) {
            Some((cap, _)) => crate::policy::namespaced::lower(plan.mode, *cap),
            None => plan.mode,
        };
        match mode {
            Mode::Observe if mode != plan.mode => Effect::Observe("namespace"),
            Mode::Observe => Effect::Observe("route"),
            Mode::Propose if janitor => Effect::Propose,
            Mode::Approve if janitor && plan.approved_by().is_none() => Effect::AwaitApproval,
            _ => Effect::Act,
        }
    }

    /// The cooldown refusal of `plan` (counted against `key`) at `now`:
    /// from the end of the last run of the same remediation on the same key
    /// (from its start when its end is unknown: cut off by a crash), or from
    /// the last time it was observed, proposed or put up for approval. An
    /// approved plan is not held back by its own request.
    fn cooldown_refusal(&self, plan: &Plan, key: &str, now: Timestamp) -> Option<Refusal> {
        let kind = plan.kind();
        let cooldown = self.cfg.cooldown.get();
        let acted = self
            .actions
            .iter()
            .filter(|a| a.key == key && a.kind == kind)
            .map(|a| a.ended.unwrap_or(a.at))
            .max();
        let approved = plan.approved_by().is_some();
        let observed = self
            .observed
            .iter()
            .filter(|o| !approved && o.1 == key && o.2 == kind)
            .map(|o| o.0)
            .max();
        let (last, what) = match (acted, observed) {
            (Some(a), Some(o)) if o > a => (o, "was last observed"),
            (Some(a), _) => (a, "last ended"),
            (None, Some(o)) => (o, "was last observed"),
            (None, None) => return None,
        };
        if since(now, last) >= cooldown {
            return None;
        }
        let left = cooldown.saturating_sub(since(now, last));
        Some(Refusal::new(
            RefusalReason::Cooldown,
            format!(
                "{kind} on {key} {what} {} ago; cooldown has {} left",
                PromDuration(Duration::from_secs(since(now, last).as_secs())),
                PromDuration(Duration::from_secs(left.as_secs().max(1)))
            ),
        ))
    }

    fn enabled(&self, kind: RemediationKind) -> bool {
        kind.feature().is_none_or(|f| self.features.enabled(f))
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

    /// Replace what the guard remembers with the events read back from the
    /// durable record (the truth, written by every replica), so cooldowns,
    /// budgets, recoveries and escalations hold across restarts and replicas.
    /// Alert dedupe is kept (see `restore_seen`).
    pub fn restore(&mut self, past: impl IntoIterator<Item = PastEvent>) {
        let mut events: Vec<PastEvent> = past.into_iter().collect();
        // in time order; at one instant an action comes before its end
        events.sort_by_key(|e| (e.at, !matches!(e.event, GuardEvent::Action { .. })));
        self.actions.clear();
        self.observed.clear();
        self.recoveries.clear();
        self.escalated.clear();
        for e in &events {
            self.apply(e);
        }
        // an action the record shows started but never ended was cut off
        for a in &mut self.actions {
            a.cut_off = a.ended.is_none();
        }
    }

    /// The end of the action `started` (an event `record` returned) at `now`:
    /// its cooldown counts from here. The event for the durable record.
    pub fn ended(&mut self, started: &PastEvent, now: Timestamp) -> Option<PastEvent> {
        let GuardEvent::Action {
            key, remediation, ..
        } = &started.event
        else {
            return None;
        };
        let e = PastEvent {
            at: now,
            event: GuardEvent::Ended {
                key: key.clone(),
                remediation: *remediation,
                started: started.at,
            },
        };
        self.apply(&e);
        Some(e)
    }

    /// What the latest action of `kind` on the workload or target `key` did
    /// is known at `now` (verified, or nothing to verify): it leaves flight.
    /// The event for the durable record; `None` when nothing is in flight.
    pub fn settle(
        &mut self,
        key: &str,
        kind: RemediationKind,
        now: Timestamp,
    ) -> Option<PastEvent> {
        let started = self
            .actions
            .iter()
            .rev()
            .find(|a| a.key == key && a.kind == kind && a.settled.is_none())?
            .at;
        let e = PastEvent {
            at: now,
            event: GuardEvent::Settled {
                key: key.to_string(),
                remediation: kind,
                started,
            },
        };
        self.apply(&e);
        Some(e)
    }

    /// Record that `plan` was carried out at `now`, or, below mode `direct`
    /// (observed, proposed, put up for approval), that it would have been
    /// (it counts for the cooldown only), and return the event for the
    /// durable record. Notify-only is no action.
    pub fn record(&mut self, plan: &Plan, now: Timestamp) -> Option<PastEvent> {
        if !plan.kind().is_mutating() {
            return None;
        }
        if !self.effect(plan).acts() {
            let e = PastEvent {
                at: now,
                event: GuardEvent::Observed {
                    key: plan.workload_key(),
                    remediation: plan.kind(),
                },
            };
            self.apply(&e);
            return Some(e);
        }
        let e = PastEvent {
            at: now,
            event: GuardEvent::Action {
                key: plan.workload_key(),
                namespace: plan.namespace().map(str::to_string),
                remediation: plan.kind(),
                class: Some(ActionClass::of(plan)),
            },
        };
        self.apply(&e);
        Some(e)
    }

    /// How much of each budget the janitor actions of the windows before `now`
    /// used (what the dashboard shows): the global budget, and each namespace
    /// and workload that used any, fullest first, at most `top` of each.
    pub fn budget_use(&self, now: Timestamp, top: usize) -> BudgetUse {
        let b = &self.cfg.budgets;
        let live = |a: &&ActionRecord, per: PromDuration| {
            !a.kind.is_declarative() && since(now, a.at) < per.get()
        };
        let global = self
            .actions
            .iter()
            .filter(|a| live(a, b.global.per))
            .count();
        let mut namespaces: HashMap<&str, u32> = HashMap::new();
        let mut workloads: HashMap<&str, u32> = HashMap::new();
        for a in &self.actions {
            if live(&a, b.per_namespace.per)
                && let Some(ns) = &a.namespace
            {
                *namespaces.entry(ns).or_default() += 1;
            }
            if live(&a, b.per_workload.per) {
                *workloads.entry(&a.key).or_default() += 1;
            }
        }
        let fullest = |m: HashMap<&str, u32>, max: u32| {
            let mut v: Vec<BudgetLine> = m
                .into_iter()
                .map(|(k, used)| BudgetLine {
                    name: k.to_string(),
                    used,
                    max,
                })
                .collect();
            v.sort_by(|a, b| b.used.cmp(&a.used).then_with(|| a.name.cmp(&b.name)));
            v.truncate(top);
            v
        };
        BudgetUse {
            global: BudgetLine {
                name: "global".into(),
                used: u32::try_from(global).unwrap_or(u32::MAX),
                max: b.global.max,
            },
            global_per: b.global.per,
            namespaces: fullest(namespaces, b.per_namespace.max),
            namespace_per: b.per_namespace.per,
            workloads: fullest(workloads, b.per_workload.max),
            workload_per: b.per_workload.per,
        }
    }

    /// The breakers that hold a class now (what `/outcomes`, the metric
    /// `heal8s_breaker_open` and the breaker record show).
    pub fn breakers(&self) -> Vec<Breaker> {
        self.breakers.values().cloned().collect()
    }

    /// Close the breakers that no longer hold at `now`, without a plan to
    /// check: a budget or rate whose window slid, a mass flip aged out, and,
    /// given fresh `cluster` facts, a partition or in-flight cap that healed
    /// (without them node breakers stay as they are). Returns the classes
    /// closed. Nodes coming back Ready raise no plan, so without this a
    /// healed partition would look open until the next node action.
    pub fn release_breakers(
        &mut self,
        now: Timestamp,
        cluster: Option<&crate::facts::ClusterFacts>,
    ) -> Vec<ActionClass> {
        self.prune(now);
        let mut closed = Vec::new();
        let open: Vec<(ActionClass, RefusalReason)> = self
            .breakers
            .values()
            .map(|b| (b.class, b.reason))
            .collect();
        for (class, reason) in open {
            let holds = match reason {
                RefusalReason::GlobalBudget => {
                    let b = self.cfg.budgets.global;
                    self.actions
                        .iter()
                        .filter(|a| !a.kind.is_declarative() && since(now, a.at) < b.per.get())
                        .count()
                        >= b.max as usize
                }
                RefusalReason::ClassRate => self.rate_refusal(class, now).is_some(),
                RefusalReason::ClassInFlight => self.in_flight_refusal(class, "", now).is_some(),
                RefusalReason::MassFlip => match self.limits_of(class).0 {
                    Some(m) => {
                        let n = self.flips_within(class, m, now).len();
                        Self::mass_flip_refusal(class, n, m).is_some()
                    }
                    None => false,
                },
                RefusalReason::Partition | RefusalReason::NodeInRemediation => {
                    cluster.is_none_or(|c| self.node_refusal(c, None, now).is_some())
                }
                _ => true,
            };
            if !holds {
                self.breakers.remove(&class);
                closed.push(class);
            }
        }
        closed
    }

    /// Whether a breaker holds node remediation (its release needs cluster facts).
    pub fn nodes_held(&self) -> bool {
        self.breakers.contains_key(&ActionClass::Nodes)
    }

    /// The limits of `class` other than nodes'.
    fn class_limits(&self, class: ActionClass) -> Option<&crate::policy::ClassLimits> {
        self.cfg.classes.of(class)
    }

    /// The mass-flip and rate limits of `class`.
    fn limits_of(
        &self,
        class: ActionClass,
    ) -> (
        Option<crate::policy::MassFlip>,
        Option<crate::policy::Budget>,
    ) {
        match class {
            ActionClass::Nodes => (Some(self.cfg.nodes.mass_flip), Some(self.cfg.nodes.rate)),
            other => self
                .class_limits(other)
                .map_or((None, None), |l| (l.mass_flip, l.rate)),
        }
    }

    /// The mass-flip refusal of `class` when `n` distinct targets turned
    /// unhealthy within the window `m`.
    fn mass_flip_refusal(
        class: ActionClass,
        n: usize,
        m: crate::policy::MassFlip,
    ) -> Option<Refusal> {
        (n > m.targets as usize).then(|| {
            Refusal::new(
                RefusalReason::MassFlip,
                format!(
                    "{n} {class} targets turned unhealthy within {} (more than {}): a detector fault or a failure arriving piece by piece, not separate failures; {class} remediation stands down until they age out",
                    m.within, m.targets
                ),
            )
        })
    }

    /// The class rate's refusal at `now`, if it is spent.
    fn rate_refusal(&self, class: ActionClass, now: Timestamp) -> Option<Refusal> {
        let r = self.limits_of(class).1?;
        let n = self
            .actions
            .iter()
            .filter(|a| a.class == class && since(now, a.at) < r.per.get())
            .count();
        (n >= r.max as usize).then(|| {
            Refusal::new(
                RefusalReason::ClassRate,
                format!(
                    "class {class}: {n} action(s) in the last {} (at most {})",
                    r.per, r.max
                ),
            )
        })
    }

    /// The class in-flight cap's refusal at `now`: as many actions of
    /// `class` on targets other than `target` in flight as `maxInFlight`
    /// allows (nodes count held nodes instead, see `node_refusal`).
    fn in_flight_refusal(
        &self,
        class: ActionClass,
        target: &str,
        now: Timestamp,
    ) -> Option<Refusal> {
        let max = self.class_limits(class)?.max_in_flight?;
        let mut keys: Vec<&str> = self
            .actions
            .iter()
            .filter(|a| a.class == class && a.key != target && a.in_flight(now))
            .map(|a| a.key.as_str())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        (keys.len() >= max as usize).then(|| {
            let shown: Vec<&str> = keys.iter().take(5).copied().collect();
            Refusal::new(
                RefusalReason::ClassInFlight,
                format!(
                    "class {class}: {} action(s) in flight ({}{}), at most {max} (maxInFlight): in flight until verified",
                    keys.len(),
                    shown.join(", "),
                    if keys.len() > shown.len() { ", ..." } else { "" },
                ),
            )
        })
    }

    /// The node breakers on cluster counts `c`: the partition (count or
    /// share, `>=`, unhealthy including the nodes heal8s holds), the healthy
    /// floor, the in-flight cap (held nodes, and node actions not yet
    /// settled, other than `target`).
    fn node_refusal(
        &self,
        c: &crate::facts::ClusterFacts,
        target: Option<&str>,
        now: Timestamp,
    ) -> Option<Refusal> {
        let nodes = &self.cfg.nodes;
        let limit = nodes.max_unhealthy.limit(c.nodes_total);
        if c.nodes_unhealthy >= limit {
            return Some(Refusal::new(
                RefusalReason::Partition,
                format!(
                    "{} of {} nodes are unhealthy or held by heal8s (at least {limit}, maxUnhealthy {}): that is a partition, not a node failure",
                    c.nodes_unhealthy, c.nodes_total, nodes.max_unhealthy
                ),
            ));
        }
        let healthy = c.nodes_total.saturating_sub(c.nodes_unhealthy);
        if healthy < nodes.min_healthy {
            return Some(Refusal::new(
                RefusalReason::Partition,
                format!(
                    "only {healthy} of {} nodes are healthy, fewer than minHealthy {}",
                    c.nodes_total, nodes.min_healthy
                ),
            ));
        }
        // held nodes the cluster shows, and node actions this guard let
        // through that have not settled (a drain whose cordon the cluster
        // does not show yet): both are in flight
        let mut others: Vec<&str> = c
            .nodes_in_remediation
            .iter()
            .map(String::as_str)
            .chain(
                self.actions
                    .iter()
                    .filter(|a| a.class == ActionClass::Nodes && a.in_flight(now))
                    .filter_map(|a| a.key.rsplit('/').next()),
            )
            .filter(|n| Some(*n) != target)
            .collect();
        others.sort_unstable();
        others.dedup();
        (others.len() >= nodes.max_in_flight as usize).then(|| {
            Refusal::new(
                RefusalReason::NodeInRemediation,
                format!(
                    "node(s) {} already held by heal8s (maxInFlight {}): in flight until Ready again and uncordoned, or deleted",
                    others.join(", "),
                    nodes.max_in_flight
                ),
            )
        })
    }

    /// The distinct targets of `class` sighted within `m`'s window at `now`
    /// (older sightings dropped).
    fn flips_within(
        &mut self,
        class: ActionClass,
        m: crate::policy::MassFlip,
        now: Timestamp,
    ) -> &mut VecDeque<(Timestamp, String)> {
        let q = self.flips.entry(class).or_default();
        while q
            .front()
            .is_some_and(|(at, _)| since(now, *at) >= m.within.get())
        {
            q.pop_front();
        }
        q
    }

    /// The breakers of `class`, checked for `plan` at `now`: the mass flip,
    /// for nodes the node breakers (see `node_refusal`), then the class rate.
    fn class_breakers(
        &mut self,
        plan: &Plan,
        class: ActionClass,
        facts: &Facts,
        now: Timestamp,
    ) -> Option<Refusal> {
        let target = plan
            .target
            .as_ref()
            .map_or_else(|| plan.workload_key(), |t| t.key());
        if let (Some(m), _) = self.limits_of(class) {
            let q = self.flips_within(class, m, now);
            if !q.iter().any(|(_, k)| *k == target) {
                q.push_back((now, target.clone()));
            }
            let n = q.len();
            if let Some(r) = Self::mass_flip_refusal(class, n, m) {
                return Some(r);
            }
        }
        if class == ActionClass::Nodes
            && let Some(c) = &facts.cluster
            && let Some(r) =
                self.node_refusal(c, plan.target.as_ref().map(|t| t.name.as_str()), now)
        {
            return Some(r);
        }
        if let Some(r) = self.in_flight_refusal(class, &plan.workload_key(), now) {
            return Some(r);
        }
        self.rate_refusal(class, now)
    }

    /// Refuse `plan` with a breaker's refusal `r`, keeping the episode (its
    /// start and the targets it blocked) for people to see.
    fn stand_down(
        &mut self,
        class: ActionClass,
        plan: &Plan,
        r: Refusal,
        now: Timestamp,
    ) -> Decision {
        let target = plan
            .target
            .as_ref()
            .map_or_else(|| plan.workload_key(), |t| t.key());
        let b = self.breakers.entry(class).or_insert_with(|| Breaker {
            class,
            reason: r.reason,
            since: now,
            message: String::new(),
            blocked: Vec::new(),
        });
        b.reason = r.reason;
        b.message.clone_from(&r.message);
        if !b.blocked.contains(&target) {
            if b.blocked.len() == 100 {
                b.blocked.remove(0);
            }
            b.blocked.push(target);
        }
        Decision::refused(r)
    }

    fn prune(&mut self, now: Timestamp) {
        let b = &self.cfg.budgets;
        let c = &self.cfg.classes;
        let class_rates = c
            .named()
            .into_iter()
            .filter_map(|(_, l)| l.rate.map(|r| r.per));
        let horizon = [
            self.cfg.cooldown,
            self.cfg.escalation.within,
            b.global.per,
            b.per_namespace.per,
            b.per_workload.per,
            self.cfg.nodes.rate.per,
        ]
        .into_iter()
        .chain(class_rates)
        .max()
        .map_or(Duration::ZERO, PromDuration::get);
        while self.actions.front().is_some_and(|a| {
            since(now, a.ended.unwrap_or(a.at).max(a.at)) >= horizon && !a.in_flight(now)
        }) {
            self.actions.pop_front();
        }
        let cooldown = self.cfg.cooldown.get();
        while self
            .observed
            .front()
            .is_some_and(|o| since(now, o.0) >= cooldown)
        {
            self.observed.pop_front();
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
    fn budget_use_counts_the_windows_and_lists_the_fullest_first() {
        let mut g = guard(&cfg());
        let (a, b) = (
            owned(pod_plan("shop", "a-1"), "a"),
            owned(pod_plan("web", "w-1"), "w"),
        );
        assert_eq!(act(&mut g, &a, t(0)), None);
        assert_eq!(act(&mut g, &a, t(700)), None);
        assert_eq!(act(&mut g, &b, t(710)), None);
        let u = g.budget_use(t(720), 10);
        // global: 10 per 1m, so only the last two count
        assert_eq!((u.global.used, u.global.max), (2, 10));
        assert_eq!(u.global_per, PromDuration::secs(60));
        let ns: Vec<(&str, u32)> = u
            .namespaces
            .iter()
            .map(|l| (l.name.as_str(), l.used))
            .collect();
        assert_eq!(ns, [("shop", 1), ("web", 1)]);
        // per workload: 3 per 1h, so both of a's count, and a is fullest
        let w: Vec<(&str, u32, u32)> = u
            .workloads
            .iter()
            .map(|l| (l.name.as_str(), l.used, l.max))
            .collect();
        assert_eq!(w, [("Deployment/shop/a", 2, 3), ("Deployment/web/w", 1, 3)]);
        assert_eq!(g.budget_use(t(720), 1).workloads.len(), 1, "at most top");
        // an hour later nothing counts
        let later = g.budget_use(t(720 + 3600), 10);
        assert_eq!(later.global.used, 0);
        assert!(later.namespaces.is_empty() && later.workloads.is_empty());
    }

    #[test]
    fn a_pause_refuses_every_change_until_resumed_and_notify_only_still_runs() {
        let mut g = guard(&cfg());
        let p = owned(pod_plan("shop", "a-1"), "a");
        g.set_pause(Some(Pause {
            source: "api".into(),
            by: "alice".into(),
            reason: "incident 42".into(),
            since: t(0),
        }));
        let d = g.check(&p, &Facts::unknown(), t(1));
        assert_eq!(reason(&d), Some(RefusalReason::Paused));
        let Verdict::Refuse(r) = &d.verdict else {
            panic!("allowed")
        };
        assert!(
            r.message.contains("by alice") && r.message.contains("incident 42"),
            "{}",
            r.message
        );
        assert_eq!(
            g.precheck(&p, t(1)).map(|r| r.reason),
            Some(RefusalReason::Paused)
        );
        // refused while paused counts nothing
        assert_eq!(g.budget_use(t(1), 10).global.used, 0);
        let notify = plan_for(&[("alertname", "X")], "{remediation: notify-only}");
        assert_eq!(reason(&g.check(&notify, &Facts::unknown(), t(1))), None);
        g.set_pause(None);
        assert_eq!(act(&mut g, &p, t(2)), None, "resumed");
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
    fn opt_out_on_any_owner_up_the_chain_holds() {
        let mut g = guard(&cfg());
        let yes = ObjectMeta {
            annotations: [(OPT_OUT_KEY.to_string(), "true".to_string())].into(),
            ..ObjectMeta::default()
        };
        let facts = |owners: Vec<(String, ObjectMeta)>| Facts {
            object: Some(ObjectMeta::default()),
            owners,
            ..Facts::default()
        };
        let chain = facts(vec![
            ("ReplicaSet shop/api-7d9c".into(), ObjectMeta::default()),
            ("Deployment shop/api".into(), yes.clone()),
        ]);
        for p in [
            owned(pod_plan("shop", "api-7d9c-x"), "api"),
            plan_for(
                &[
                    ("alertname", "A"),
                    ("namespace", "shop"),
                    ("pod", "api-7d9c-x"),
                    ("container", "api"),
                ],
                "{remediation: bump-memory}",
            ),
            plan_for(
                &[
                    ("alertname", "A"),
                    ("namespace", "shop"),
                    ("pod", "api-7d9c-x"),
                    ("container", "api"),
                ],
                "{remediation: rollback-image}",
            ),
        ] {
            let d = g.check(&p, &chain, t(0));
            assert_eq!(reason(&d), Some(RefusalReason::OptedOut), "{}", p.kind());
            match d.verdict {
                Verdict::Refuse(r) => {
                    assert!(r.message.contains("Deployment shop/api"), "{}", r.message)
                }
                Verdict::Allow { .. } => unreachable!(),
            }
        }
        let clean = facts(vec![(
            "ReplicaSet shop/api-7d9c".into(),
            ObjectMeta::default(),
        )]);
        assert_eq!(
            reason(&g.check(&owned(pod_plan("shop", "p"), "api"), &clean, t(0))),
            None
        );
    }

    fn custom_plan(group: &str, version: &str, kind: &str, route: &str) -> Result<Plan, String> {
        let p = Policy::from_yaml(&format!("routes: [{route}]")).map_err(|e| e.to_string())?;
        Plan::build(
            &signal(&[
                ("alertname", "Heal8sStaleResource"),
                ("customresource_group", group),
                ("customresource_version", version),
                ("customresource_kind", kind),
                ("namespace", "e2e-1"),
                ("name", "x"),
            ]),
            &p.routes[0],
        )
        .map_err(|e| e.to_string())
    }

    fn served(plural: &str, namespaced: bool) -> Facts {
        Facts {
            resource: Some(crate::facts::ServedType {
                plural: plural.into(),
                namespaced,
            }),
            ..Facts::default()
        }
    }

    #[test]
    fn cleanup_without_its_own_type_deletes_only_types_the_policy_lists() {
        let listed = vec![
            crate::detect::ResourceSpec::parse("datavolumes.cdi.kubevirt.io/v1beta1").unwrap(),
        ];
        let mut g = guard(&cfg()).with_listed_types(listed);
        let route = "{remediation: cleanup-resource}";
        let dv = custom_plan("cdi.kubevirt.io", "v1beta1", "DataVolume", route).unwrap();
        assert_eq!(
            reason(&g.check(&dv, &served("datavolumes", true), t(0))),
            None
        );
        // a type the alert names but the policy does not list
        let other = custom_plan("example.com", "v1", "Widget", route).unwrap();
        assert_eq!(
            reason(&g.check(&other, &served("widgets", true), t(0))),
            Some(RefusalReason::TypeNotAllowed)
        );
        // a type discovery could not resolve is not checked against the list: refused
        assert_eq!(
            reason(&g.check(&dv, &Facts::unknown(), t(0))),
            Some(RefusalReason::TypeNotAllowed)
        );
        // a route that names its own type bounds it itself
        let vm = custom_plan(
            "kubevirt.io",
            "v1",
            "VirtualMachine",
            "{remediation: cleanup-resource, params: {apiVersion: kubevirt.io/v1, kind: VirtualMachine}}",
        )
        .unwrap();
        assert_eq!(
            reason(&g.check(&vm, &served("virtualmachines", true), t(0))),
            None
        );
    }

    #[test]
    fn cleanup_never_reaches_core_workload_or_api_machinery_types() {
        let everything: Vec<crate::detect::ResourceSpec> = [
            "secrets/v1",
            "deployments.apps/v1",
            "customresourcedefinitions.apiextensions.k8s.io/v1",
            "clusterroles.rbac.authorization.k8s.io/v1",
            "remediations.heal8s.io/v1alpha1",
            "cronjobs.batch/v1",
        ]
        .iter()
        .map(|s| crate::detect::ResourceSpec::parse(s).unwrap())
        .collect();
        let mut g = guard(&cfg()).with_listed_types(everything);
        for (group, version, kind) in [
            ("", "v1", "Secret"),
            ("", "v1", "ConfigMap"),
            ("", "v1", "Node"),
            ("apps", "v1", "Deployment"),
            ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            ("heal8s.io", "v1alpha1", "Remediation"),
            ("batch", "v1", "CronJob"),
        ] {
            // refused when the plan is built from the alert ...
            let built = custom_plan(group, version, kind, "{remediation: cleanup-resource}");
            assert!(built.is_err(), "{kind}: {built:?}");
        }
        // ... and by the guard, should a plan of such a type ever reach it
        let mut p = custom_plan(
            "cdi.kubevirt.io",
            "v1beta1",
            "DataVolume",
            "{remediation: cleanup-resource}",
        )
        .unwrap();
        if let Some(t) = &mut p.target {
            t.kind = crate::target::TargetKind::Custom(
                crate::target::ResourceType::from_api_version("v1", "Secret"),
            );
        }
        assert_eq!(
            reason(&g.check(&p, &served("secrets", true), t(0))),
            Some(RefusalReason::TypeNotAllowed)
        );
        // and a route may not name one either
        let e = Policy::from_yaml(
            "routes: [{remediation: cleanup-resource, params: {apiVersion: apps/v1, kind: Deployment}}]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("never deletes a Deployment"), "{e}");
    }

    #[test]
    fn global_dry_run_allows_but_only_observes() {
        let mut c = cfg();
        c.dry_run = true;
        let mut g = guard(&c);
        let d = g.check(&pod_plan("shop", "p"), &Facts::unknown(), t(0));
        assert_eq!(
            d.verdict,
            Verdict::Allow {
                effect: Effect::Observe("global")
            }
        );
        // the safety rules still apply in dry-run
        assert_eq!(
            reason(&g.check(&pod_plan("kube-system", "p"), &Facts::unknown(), t(0))),
            Some(RefusalReason::ProtectedNamespace)
        );
    }

    fn routed(mode: &str, remediation: &str) -> Plan {
        plan_for(
            &[("alertname", "A"), ("namespace", "shop"), ("pod", "p")],
            &format!("{{remediation: {remediation}, mode: {mode}}}"),
        )
    }

    fn effect_of(g: &mut Guard, p: &Plan, now: Timestamp) -> Effect {
        match g.check(p, &Facts::unknown(), now).verdict {
            Verdict::Allow { effect } => effect,
            Verdict::Refuse(r) => panic!("refused: {r:?}"),
        }
    }

    #[test]
    fn each_rung_of_the_ladder_has_its_effect_and_dry_run_is_observe() {
        let mut g = guard(&cfg());
        for (mode, want) in [
            ("observe", Effect::Observe("route")),
            ("dry-run", Effect::Observe("route")),
            ("propose", Effect::Propose),
            ("approve", Effect::AwaitApproval),
            ("direct", Effect::Act),
        ] {
            assert_eq!(
                effect_of(&mut g, &routed(mode, "delete-pod"), t(0)),
                want,
                "{mode}"
            );
        }
        // a pull request is proposed by opening it: the executor acts
        let p = plan_for(
            &[
                ("alertname", "A"),
                ("namespace", "shop"),
                ("pod", "p"),
                ("container", "c"),
            ],
            "{remediation: bump-memory, mode: propose}",
        );
        assert_eq!(effect_of(&mut g, &p, t(0)), Effect::Act);
        // an approved plan acts
        let mut approved = routed("approve", "delete-pod");
        approved.approval = Some(crate::plan::Approval {
            requested_at: t(0),
            expires_at: t(3600),
            uid: None,
            node: None,
            approved_by: Some("alice".into()),
            approved_at: Some(t(10)),
        });
        assert_eq!(effect_of(&mut g, &approved, t(20)), Effect::Act);
    }

    #[test]
    fn below_direct_a_plan_counts_for_the_cooldown_but_never_for_budgets() {
        let mut c = cfg();
        c.cooldown = PromDuration::secs(300);
        c.budgets.global = Budget {
            max: 1,
            per: PromDuration::secs(3600),
        };
        let mut g = guard(&c);
        // observed and proposed plans on many pods: no budget is used
        for (i, mode) in ["observe", "propose", "approve", "observe"]
            .iter()
            .enumerate()
        {
            let p = plan_for(
                &[
                    ("alertname", "A"),
                    ("namespace", "shop"),
                    ("pod", &format!("p{i}")),
                ],
                &format!("{{remediation: delete-pod, mode: {mode}}}"),
            );
            assert_eq!(act(&mut g, &p, t(i as i64)), None, "{mode}");
        }
        assert_eq!(g.budget_use(t(10), 5).global.used, 0);
        // the same problem again within the cooldown: refused, one record
        let again = routed("observe", "delete-pod");
        assert_eq!(act(&mut g, &again, t(20)), None);
        let d = g.check(&again, &Facts::unknown(), t(30));
        assert_eq!(reason(&d), Some(RefusalReason::Cooldown));
        match d.verdict {
            Verdict::Refuse(r) => assert!(r.message.contains("was last observed"), "{}", r.message),
            Verdict::Allow { .. } => unreachable!(),
        }
        // observing escalates nothing: far more than escalation.after observations
        for i in 0..10 {
            assert_eq!(act(&mut g, &again, t(400 * (i + 1))), None);
        }
        // and a real action still has its whole budget
        assert_eq!(act(&mut g, &pod_plan("web", "w"), t(5000)), None);
        assert_eq!(g.budget_use(t(5000), 5).global.used, 1);
    }

    #[test]
    fn an_approved_plan_is_not_held_back_by_its_own_request_but_meets_the_rest() {
        let mut c = cfg();
        c.cooldown = PromDuration::secs(600);
        let mut g = guard(&c);
        let asked = routed("approve", "delete-pod");
        assert_eq!(act(&mut g, &asked, t(0)), None);
        // the request counts for the cooldown: a repeat is not a second request
        assert_eq!(
            reason(&g.check(&asked, &Facts::unknown(), t(5))),
            Some(RefusalReason::Cooldown)
        );
        let mut approved = asked.clone();
        approved.approval = Some(g.ask_approval(&asked, None, t(0)));
        let a = approved.approval.as_mut().unwrap();
        a.approved_by = Some("alice".into());
        a.approved_at = Some(t(60));
        assert_eq!(act(&mut g, &approved, t(61)), None);
        // it acted: the approval is spent, the cooldown of the action holds
        assert_eq!(
            reason(&g.check(&approved, &Facts::unknown(), t(62))),
            Some(RefusalReason::Cooldown)
        );
        // an approval heal8s meets after the ttl is refused by the guard
        let mut g = guard(&c);
        let mut late = approved.clone();
        late.approval.as_mut().unwrap().approved_at = Some(t(3599));
        assert_eq!(
            reason(&g.check(&late, &Facts::unknown(), t(3599 + 3601))),
            Some(RefusalReason::ApprovalExpired)
        );
        // budgets hold for approved plans like any action
        let mut c2 = cfg();
        c2.budgets.global = Budget {
            max: 1,
            per: PromDuration::secs(3600),
        };
        let mut g = guard(&c2);
        assert_eq!(act(&mut g, &pod_plan("web", "w"), t(0)), None);
        assert_eq!(
            reason(&g.check(&approved, &Facts::unknown(), t(61))),
            Some(RefusalReason::GlobalBudget)
        );
    }

    fn ns_policy(
        ns: &str,
        name: &str,
        spec: serde_json::Value,
    ) -> crate::policy::namespaced::NamespacePolicy {
        let cluster = Policy::from_yaml("routes: [{remediation: delete-pod}]").unwrap();
        crate::policy::namespaced::accept(ns, name, &spec, &cluster).unwrap()
    }

    #[test]
    fn a_namespaces_policy_opts_out_switches_off_and_names_both_policies() {
        let mut g = guard(&cfg());
        g.set_namespace_policies(&[
            ns_policy(
                "shop",
                "team",
                serde_json::json!({"disabled": ["delete-pod"]}),
            ),
            ns_policy("web", "team", serde_json::json!({"optOut": true})),
        ]);
        let d = g.check(&pod_plan("shop", "p"), &Facts::unknown(), t(0));
        assert_eq!(reason(&d), Some(RefusalReason::NamespacePolicy));
        let Verdict::Refuse(r) = d.verdict else {
            unreachable!()
        };
        assert!(
            r.message.contains("switches delete-pod off"),
            "{}",
            r.message
        );
        assert!(
            r.message
                .contains("the cluster's and RemediationPolicy shop/team"),
            "{}",
            r.message
        );
        assert_eq!(
            reason(&g.check(&pod_plan("web", "p"), &Facts::unknown(), t(0))),
            Some(RefusalReason::NamespacePolicy)
        );
        // other namespaces: the cluster policy alone, and its refusals say only that
        assert_eq!(act(&mut g, &pod_plan("other", "p"), t(0)), None);
        let Verdict::Refuse(r) = g
            .check(&pod_plan("kube-system", "p"), &Facts::unknown(), t(0))
            .verdict
        else {
            unreachable!()
        };
        assert!(!r.message.contains("RemediationPolicy"), "{}", r.message);
        // protected namespaces stay protected whatever a policy there says
        g.set_namespace_policies(&[ns_policy(
            "kube-system",
            "x",
            serde_json::json!({"mode": "observe"}),
        )]);
        assert_eq!(
            reason(&g.check(&pod_plan("kube-system", "p"), &Facts::unknown(), t(0))),
            Some(RefusalReason::ProtectedNamespace)
        );
    }

    #[test]
    fn a_namespaces_policy_forces_a_lower_rung_and_lower_budgets() {
        let mut g = guard(&cfg());
        g.set_namespace_policies(&[
            ns_policy(
                "shop",
                "team",
                serde_json::json!({"mode": "approve",
                "budgets": {"perNamespace": {"max": 1, "per": "10m"}}}),
            ),
            ns_policy("web", "team", serde_json::json!({"mode": "observe"})),
        ]);
        assert_eq!(
            effect_of(&mut g, &routed("direct", "delete-pod"), t(0)),
            Effect::AwaitApproval
        );
        let web = plan_for(
            &[("alertname", "A"), ("namespace", "web"), ("pod", "p")],
            "{remediation: delete-pod}",
        );
        assert_eq!(effect_of(&mut g, &web, t(0)), Effect::Observe("namespace"));
        // a rung below the cap stays where it is
        assert_eq!(
            effect_of(&mut g, &routed("observe", "delete-pod"), t(0)),
            Effect::Observe("route")
        );
        // the namespace's budget of 1: a second approved action waits for it
        let approve = |name: &str| {
            let mut p = plan_for(
                &[("alertname", "A"), ("namespace", "shop"), ("pod", name)],
                "{remediation: delete-pod, mode: approve}",
            );
            p.approval = Some(crate::plan::Approval {
                requested_at: t(0),
                expires_at: t(3600),
                uid: None,
                node: None,
                approved_by: Some("alice".into()),
                approved_at: Some(t(1)),
            });
            p
        };
        assert_eq!(act(&mut g, &approve("a"), t(2)), None);
        let d = g.check(&approve("b"), &Facts::unknown(), t(3));
        assert_eq!(reason(&d), Some(RefusalReason::NamespaceBudget));
        let Verdict::Refuse(r) = d.verdict else {
            unreachable!()
        };
        assert!(
            r.message.contains("RemediationPolicy shop/team: at most 1"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_namespaces_policy_caps_its_actions_in_flight_by_class() {
        let mut g = guard(&cfg());
        g.set_namespace_policies(&[ns_policy(
            "shop",
            "team",
            serde_json::json!({"maxInFlight": {"pods": 1}}),
        )]);
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "a-1"), "a"), t(0)),
            None
        );
        // a-1's action is in flight (not settled): the next pod action in shop waits
        let d = g.check(
            &owned(pod_plan("shop", "b-1"), "b"),
            &Facts::unknown(),
            t(1),
        );
        assert_eq!(reason(&d), Some(RefusalReason::ClassInFlight));
        let Verdict::Refuse(r) = d.verdict else {
            unreachable!()
        };
        assert!(r.message.contains("maxInFlight.pods 1"), "{}", r.message);
        // elsewhere the cluster's limits alone apply
        assert_eq!(act(&mut g, &owned(pod_plan("web", "w-1"), "w"), t(1)), None);
        // once settled, shop may act again
        g.settle("Deployment/shop/a", RemediationKind::DeletePod, t(2));
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "b-1"), "b"), t(3)),
            None
        );
    }

    #[test]
    fn a_namespaces_policy_lowers_a_class_rate_there_only() {
        let mut g = guard(&cfg());
        g.set_namespace_policies(&[ns_policy(
            "shop",
            "team",
            serde_json::json!({"rate": {"pods": {"max": 1, "per": "10m"}}}),
        )]);
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "a-1"), "a"), t(0)),
            None
        );
        g.settle("Deployment/shop/a", RemediationKind::DeletePod, t(1));
        // settled, yet the namespace's rate is spent for 10 minutes
        let d = g.check(
            &owned(pod_plan("shop", "b-1"), "b"),
            &Facts::unknown(),
            t(2),
        );
        assert_eq!(reason(&d), Some(RefusalReason::ClassRate));
        let Verdict::Refuse(r) = d.verdict else {
            unreachable!()
        };
        assert!(
            r.message
                .contains("RemediationPolicy shop/team: rate.pods at most 1"),
            "{}",
            r.message
        );
        // elsewhere the cluster's limits alone apply
        assert_eq!(act(&mut g, &owned(pod_plan("web", "w-1"), "w"), t(2)), None);
        // the window slides
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "b-1"), "b"), t(601)),
            None
        );
    }

    #[test]
    fn observations_are_restored_from_the_record_for_the_cooldown_only() {
        let mut g = guard(&cfg());
        let p = routed("observe", "delete-pod");
        let e = g.record(&p, t(0)).unwrap();
        assert!(matches!(e.event, GuardEvent::Observed { .. }), "{e:?}");
        let mut restored = guard(&cfg());
        restored.restore([e]);
        assert_eq!(
            reason(&restored.check(&routed("direct", "delete-pod"), &Facts::unknown(), t(5))),
            Some(RefusalReason::Cooldown)
        );
        assert_eq!(restored.budget_use(t(5), 5).global.used, 0);
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
    }

    #[test]
    fn escalation_is_a_latch_not_a_sliding_window() {
        let mut c = cfg();
        c.cooldown = PromDuration::secs(60);
        c.budgets.per_workload.max = 100;
        let mut g = guard(&c); // escalate after 3 within 1h
        let p = |n: &str| owned(pod_plan("shop", n), "api");
        for (i, n) in ["a", "b", "c"].into_iter().enumerate() {
            assert_eq!(act(&mut g, &p(n), t(120 * i as i64)), None);
        }
        assert_eq!(act(&mut g, &p("d"), t(360)), Some(RefusalReason::Escalated));
        // long after the actions left the window, it is still escalated
        for h in [2, 5, 24, 24 * 7] {
            assert_eq!(
                act(&mut g, &p("x"), t(3600 * h)),
                Some(RefusalReason::Escalated),
                "{h}h later"
            );
        }
        // a verified recovery ends it
        g.record_recovery("Deployment/shop/api", RecoveryBy::Verified, t(3600 * 200));
        assert_eq!(act(&mut g, &p("y"), t(3600 * 200 + 1)), None);
    }

    #[test]
    fn escalation_ends_only_by_what_the_policy_names() {
        let mut c = cfg();
        c.cooldown = PromDuration::secs(1);
        c.budgets.per_workload.max = 100;
        c.escalation.after = 1;
        c.escalation.cleared_by = vec![RecoveryBy::Human];
        let mut g = guard(&c);
        let p = owned(pod_plan("shop", "a"), "api");
        assert_eq!(act(&mut g, &p, t(0)), None);
        assert_eq!(act(&mut g, &p, t(10)), Some(RefusalReason::Escalated));
        g.record_recovery("Deployment/shop/api", RecoveryBy::Verified, t(20));
        assert_eq!(act(&mut g, &p, t(30)), Some(RefusalReason::Escalated));
        g.record_recovery("Deployment/shop/api", RecoveryBy::Human, t(40));
        assert!(!g.is_escalated("Deployment/shop/api", RemediationKind::DeletePod));
        assert_eq!(act(&mut g, &p, t(50)), None);
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
                recovered: Some(PastEvent {
                    at: t(20),
                    event: GuardEvent::Recovered {
                        key: "HorizontalPodAutoscaler/shop/api".into(),
                        by: RecoveryBy::AlertResolved
                    }
                })
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
        c.nodes.rate.max = 10;
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
            cluster: Some(crate::facts::ClusterFacts {
                nodes_total: total,
                nodes_unhealthy: unhealthy,
                nodes_in_remediation: busy.iter().map(|s| s.to_string()).collect(),
            }),
            ..Facts::default()
        }
    }

    fn drain(n: &str) -> Plan {
        plan_for(
            &[("alertname", "KubeNodeNotReady"), ("node", n)],
            "{remediation: drain-node}",
        )
    }

    fn node_check(g: &mut Guard, n: &str, facts: &Facts, at: i64) -> Option<RefusalReason> {
        let p = drain(n);
        let d = g.check(&p, facts, t(at));
        let r = reason(&d);
        if r.is_none() {
            g.record(&p, t(at));
        }
        r
    }

    #[test]
    fn a_partition_arriving_node_by_node_drains_one_node() {
        // 5 of 10 nodes go NotReady 2 s apart; a drained node stays held
        // (cordoned by heal8s) and counts as unhealthy and in flight
        let mut g = guard(&cfg());
        let mut held: Vec<String> = Vec::new();
        let mut acted = Vec::new();
        for i in 0..5u32 {
            let name = format!("n{i}");
            let busy: Vec<&str> = held.iter().map(String::as_str).collect();
            // unhealthy: the nodes down so far (held ones included, once each)
            let facts = cluster(10, i + 1, &busy);
            let r = node_check(&mut g, &name, &facts, i64::from(i) * 2);
            if r.is_none() {
                acted.push(name.clone());
                held.push(name);
            }
        }
        assert_eq!(acted, ["n0"], "one node, then the breakers hold");
        // the in-flight cap alone would stop it; the rate holds even without it
        let mut c = cfg();
        c.nodes.max_in_flight = 10;
        let mut g = guard(&c);
        assert_eq!(node_check(&mut g, "n0", &cluster(10, 1, &[]), 0), None);
        assert_eq!(
            node_check(&mut g, "n1", &cluster(10, 2, &["n0"]), 2),
            Some(RefusalReason::ClassRate)
        );
        // ... and the mass flip holds even with a generous rate
        c.nodes.rate.max = 100;
        let mut g = guard(&c);
        let mut reasons = Vec::new();
        for i in 0..5u32 {
            reasons.push(node_check(
                &mut g,
                &format!("n{i}"),
                &cluster(100, 1, &[]),
                i64::from(i) * 2,
            ));
        }
        assert_eq!(reasons[3], Some(RefusalReason::MassFlip), "{reasons:?}");
        assert_eq!(reasons[4], Some(RefusalReason::MassFlip), "{reasons:?}");
        // the flips age out
        assert_eq!(node_check(&mut g, "n9", &cluster(100, 1, &[]), 400), None);
    }

    #[test]
    fn the_partition_breaker_trips_at_the_threshold_as_a_count_or_a_share() {
        let mut g = guard(&cfg()); // 40% of 10 = 4
        assert_eq!(
            node_check(&mut g, "a", &cluster(10, 4, &[]), 0),
            Some(RefusalReason::Partition)
        );
        assert_eq!(node_check(&mut g, "a", &cluster(10, 3, &[]), 0), None);
        let mut c = cfg();
        c.nodes.max_unhealthy = crate::policy::Threshold::Count(2);
        let mut g = guard(&c);
        assert_eq!(
            node_check(&mut g, "a", &cluster(50, 2, &[]), 0),
            Some(RefusalReason::Partition)
        );
        assert_eq!(node_check(&mut g, "a", &cluster(50, 1, &[]), 0), None);
        // a share is never below 2: one bad node in a small pool is healable
        c.nodes.max_unhealthy = crate::policy::Threshold::Percent(33);
        let mut g = guard(&c);
        assert_eq!(node_check(&mut g, "a", &cluster(3, 1, &[]), 0), None);
        let mut g = guard(&c);
        assert_eq!(
            node_check(&mut g, "a", &cluster(3, 2, &[]), 0),
            Some(RefusalReason::Partition)
        );
        // minHealthy: never leave fewer healthy nodes than this
        c.nodes.min_healthy = 3;
        let mut g = guard(&c);
        assert_eq!(
            node_check(&mut g, "a", &cluster(3, 1, &[]), 0),
            Some(RefusalReason::Partition)
        );
    }

    #[test]
    fn a_flapping_node_keeps_its_count_across_recoveries_and_escalates() {
        let mut c = cfg();
        c.cooldown = PromDuration::secs(60);
        c.nodes.rate.max = 100;
        c.escalation.after = 2;
        let mut g = guard(&c);
        let key = "Node/-/w1";
        assert_eq!(node_check(&mut g, "w1", &cluster(10, 1, &[]), 0), None);
        g.record_recovery(key, RecoveryBy::Verified, t(100));
        assert_eq!(node_check(&mut g, "w1", &cluster(10, 1, &[]), 200), None);
        // back again, and down again: a resolved alert is no reset either
        let mut s = signal(&[("alertname", "KubeNodeNotReady"), ("node", "w1")]);
        s.status = AlertStatus::Resolved;
        s.first_seen = t(250);
        assert!(matches!(
            g.admit(&s, t(300)),
            Admission::Resolved { recovered: Some(_) }
        ));
        assert_eq!(
            node_check(&mut g, "w1", &cluster(10, 1, &[]), 400),
            Some(RefusalReason::Escalated)
        );
        // a pod's workload, by contrast, starts over after a recovery
        c.budgets.per_workload.max = 100;
        let mut g = guard(&c);
        let p = owned(pod_plan("shop", "a"), "api");
        assert_eq!(act(&mut g, &p, t(0)), None);
        g.record_recovery("Deployment/shop/api", RecoveryBy::Verified, t(100));
        assert_eq!(act(&mut g, &p, t(200)), None, "the count started over");
        assert_eq!(act(&mut g, &p, t(400)), None);
        assert_eq!(
            act(&mut g, &p, t(600)),
            Some(RefusalReason::Escalated),
            "two since the recovery"
        );
        g.record_recovery("Deployment/shop/api", RecoveryBy::Verified, t(700));
        assert_eq!(
            act(&mut g, &p, t(800)),
            None,
            "none since the last recovery"
        );
    }

    #[test]
    fn a_breaker_closes_when_it_no_longer_holds_without_a_plan() {
        let mut g = guard(&cfg());
        // a partition: 2 of 4 down
        assert_eq!(
            node_check(&mut g, "a", &cluster(4, 2, &[]), 0),
            Some(RefusalReason::Partition)
        );
        // no facts: node breakers stay
        assert!(g.release_breakers(t(5), None).is_empty());
        assert!(g.nodes_held());
        // still 2 of 4: stays
        assert!(
            g.release_breakers(t(6), cluster(4, 2, &[]).cluster.as_ref())
                .is_empty()
        );
        // healed
        assert_eq!(
            g.release_breakers(t(7), cluster(4, 0, &[]).cluster.as_ref()),
            [ActionClass::Nodes]
        );
        assert!(g.breakers().is_empty());
        // a spent global budget closes when its window slides
        let mut c = cfg();
        c.budgets.global.max = 1;
        let mut g = guard(&c);
        assert_eq!(act(&mut g, &pod_plan("a", "p"), t(0)), None);
        assert_eq!(
            act(&mut g, &pod_plan("b", "p"), t(1)),
            Some(RefusalReason::GlobalBudget)
        );
        assert!(g.release_breakers(t(30), None).is_empty());
        assert_eq!(g.release_breakers(t(61), None), [ActionClass::Pods]);
    }

    #[test]
    fn namespace_deletions_have_a_rate_of_their_own() {
        let mut c = cfg();
        c.budgets.per_namespace.max = 100;
        c.budgets.global.max = 100;
        let mut g = guard(&c); // 5 per 10m, 3 in flight
        let ns = |n: &str| {
            plan_for(
                &[("alertname", "Stale"), ("namespace", n)],
                "{remediation: delete-namespace, params: {namePattern: 'test-.*'}}",
            )
        };
        for i in 0..5 {
            let p = ns(&format!("test-{i}"));
            assert_eq!(act(&mut g, &p, t(i * 10)), None);
            g.settle(&p.workload_key(), p.kind(), t(i * 10 + 5));
        }
        assert_eq!(
            act(&mut g, &ns("test-5"), t(60)),
            Some(RefusalReason::ClassRate)
        );
        assert_eq!(act(&mut g, &ns("test-6"), t(601)), None);
    }

    #[test]
    fn namespace_deletions_in_flight_are_capped_until_verified_or_stale() {
        let mut c = cfg();
        c.budgets.per_namespace.max = 100;
        c.budgets.global.max = 100;
        c.classes.namespaces.rate = None;
        let mut g = guard(&c); // 3 in flight
        let ns = |n: &str| {
            plan_for(
                &[("alertname", "Stale"), ("namespace", n)],
                "{remediation: delete-namespace, params: {namePattern: 'test-.*'}}",
            )
        };
        let mut ledger = Vec::new();
        for i in 0..3 {
            let p = ns(&format!("test-{i}"));
            assert_eq!(reason(&g.check(&p, &Facts::unknown(), t(i))), None);
            let started = g.record(&p, t(i)).unwrap();
            // the deletion call returned; the namespace is still Terminating
            ledger.extend(g.ended(&started, t(i)));
            ledger.push(started);
        }
        // a fourth namespace waits while three are deleting
        let fourth = ns("test-3");
        let d = g.check(&fourth, &Facts::unknown(), t(10));
        let Verdict::Refuse(r) = d.verdict else {
            panic!("allowed a fourth namespace in flight")
        };
        assert_eq!(r.reason, RefusalReason::ClassInFlight);
        assert!(r.message.contains("3 action(s) in flight"), "{}", r.message);
        assert_eq!(g.breakers()[0].class, ActionClass::Namespaces);
        // precheck says the same without a live read
        assert_eq!(
            g.precheck(&fourth, t(11)).map(|r| r.reason),
            Some(RefusalReason::ClassInFlight)
        );
        // a restarted replica restores the flights from the ledger
        let mut restored = guard(&c);
        restored.restore(ledger.clone());
        assert_eq!(
            reason(&restored.check(&fourth, &Facts::unknown(), t(12))),
            Some(RefusalReason::ClassInFlight)
        );
        // one verified (gone, or not): it leaves flight, and the breaker opens no more
        let first = ns("test-0");
        let settled = g
            .settle(&first.workload_key(), first.kind(), t(20))
            .unwrap();
        assert!(
            g.settle(&first.workload_key(), first.kind(), t(21))
                .is_none()
        );
        assert!(
            g.release_breakers(t(21), None)
                .contains(&ActionClass::Namespaces)
        );
        assert_eq!(act(&mut g, &fourth, t(22)), None);
        // the settlement survives a restart too
        ledger.push(settled);
        restored.restore(ledger.clone());
        assert_eq!(
            reason(&restored.check(&fourth, &Facts::unknown(), t(23))),
            None
        );
        // an action whose record shows no end was cut off by a crash: no one
        // carries it on, so after a restart it is not in flight
        let cut_off: Vec<PastEvent> = ledger
            .iter()
            .filter(|e| matches!(e.event, GuardEvent::Action { .. }))
            .cloned()
            .collect();
        let mut after_crash = guard(&c);
        after_crash.restore(cut_off);
        assert_eq!(
            reason(&after_crash.check(&fourth, &Facts::unknown(), t(12))),
            None
        );
        // never verified (a crash): out of flight after IN_FLIGHT_AT_MOST
        let late = i64::try_from(IN_FLIGHT_AT_MOST.as_secs()).unwrap() + 30;
        assert_eq!(act(&mut g, &ns("test-4"), t(late)), None);
    }

    #[test]
    fn a_breaker_episode_is_kept_until_its_class_acts_again() {
        let mut g = guard(&cfg());
        assert_eq!(
            node_check(&mut g, "a", &cluster(4, 2, &[]), 0),
            Some(RefusalReason::Partition)
        );
        assert_eq!(
            node_check(&mut g, "b", &cluster(4, 2, &[]), 5),
            Some(RefusalReason::Partition)
        );
        let b = g.breakers();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].class, ActionClass::Nodes);
        assert_eq!(b[0].reason, RefusalReason::Partition);
        assert_eq!(b[0].since, t(0));
        assert_eq!(b[0].blocked, ["Node/-/a", "Node/-/b"]);
        assert_eq!(node_check(&mut g, "a", &cluster(4, 1, &[]), 10), None);
        assert!(g.breakers().is_empty());
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

    fn action_at(at: i64) -> PastEvent {
        PastEvent {
            at: t(at),
            event: GuardEvent::Action {
                key: "Deployment/shop/api".into(),
                namespace: Some("shop".into()),
                remediation: RemediationKind::DeletePod,
                class: None,
            },
        }
    }

    #[test]
    fn restored_actions_keep_cooldowns_and_escalation_across_restarts() {
        let mut c = cfg();
        c.budgets.per_workload.max = 100;
        let mut g = guard(&c);
        g.restore([action_at(-100)]);
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "new-pod"), "api"), t(0)),
            Some(RefusalReason::Cooldown)
        );
        let mut g = guard(&c);
        g.restore([action_at(-3000), action_at(-2000), action_at(-1000)]);
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "new-pod"), "api"), t(0)),
            Some(RefusalReason::Escalated)
        );
    }

    #[test]
    fn the_cooldown_counts_from_the_end_of_an_action_also_after_a_failover() {
        let c = cfg(); // cooldown 10m
        let p = owned(pod_plan("shop", "a"), "api");
        let mut live = guard(&c);
        assert_eq!(reason(&live.check(&p, &Facts::unknown(), t(0))), None);
        let started = live.record(&p, t(0)).unwrap();
        // a long action: it ends 9 minutes later
        let ended = live.ended(&started, t(540)).unwrap();
        // 5 minutes after its end: still cooling down, live and restored alike
        let mut restored = guard(&c);
        restored.restore([started.clone(), ended.clone()]);
        for g in [&mut live, &mut restored] {
            assert_eq!(
                reason(&g.check(
                    &owned(pod_plan("shop", "b"), "api"),
                    &Facts::unknown(),
                    t(840)
                )),
                Some(RefusalReason::Cooldown)
            );
            assert_eq!(
                reason(&g.check(
                    &owned(pod_plan("shop", "b"), "api"),
                    &Facts::unknown(),
                    t(1141)
                )),
                None
            );
        }
        // an action cut off by a crash (no end known) counts from its start;
        // the takeover's "interrupted" mark is no run of its own
        let mut g = guard(&c);
        g.restore([started]);
        assert_eq!(
            reason(&g.check(
                &owned(pod_plan("shop", "b"), "api"),
                &Facts::unknown(),
                t(601)
            )),
            None
        );
    }

    #[test]
    fn restore_replaces_memory_instead_of_adding_to_it() {
        // a replica that was leader, lost the lease and regained it reads its
        // own actions back from the records: they must not count twice
        let mut c = cfg();
        c.budgets.per_workload.max = 2;
        c.cooldown = PromDuration::secs(1);
        let mut g = guard(&c);
        let p = owned(pod_plan("shop", "a"), "api");
        let e = g.check(&p, &Facts::unknown(), t(0));
        assert_eq!(reason(&e), None);
        let ev = g.record(&p, t(0)).unwrap();
        g.restore([ev]);
        assert_eq!(act(&mut g, &p, t(10)), None, "one action so far, not two");
    }

    #[test]
    fn restored_recovery_and_escalation_are_kept() {
        let mut c = cfg();
        c.budgets.per_workload.max = 100;
        let esc = PastEvent {
            at: t(-500),
            event: GuardEvent::Escalated {
                key: "Deployment/shop/api".into(),
                remediation: RemediationKind::DeletePod,
            },
        };
        let rec = |at, by| PastEvent {
            at: t(at),
            event: GuardEvent::Recovered {
                key: "Deployment/shop/api".into(),
                by,
            },
        };
        let plan = owned(pod_plan("shop", "new-pod"), "api");
        // escalated a week ago, never cleared: still escalated
        let mut g = guard(&c);
        g.restore([esc.clone()]);
        assert_eq!(
            act(&mut g, &plan, t(7 * 24 * 3600)),
            Some(RefusalReason::Escalated)
        );
        // three actions, then a verified recovery: no escalation, only the cooldown is gone too
        let mut g = guard(&c);
        g.restore([
            action_at(-3000),
            action_at(-2000),
            action_at(-1000),
            rec(-900, RecoveryBy::Verified),
        ]);
        assert_eq!(act(&mut g, &plan, t(0)), None);
        // escalation then a human clear, given in any order
        let mut g = guard(&c);
        g.restore([rec(-100, RecoveryBy::Human), esc]);
        assert_eq!(act(&mut g, &plan, t(0)), None);
    }

    #[test]
    fn notify_only_is_never_counted_as_an_action() {
        let mut c = cfg();
        c.budgets.per_workload.max = 1;
        let mut g = guard(&c);
        let n = plan_for(
            &[("alertname", "A"), ("namespace", "shop"), ("pod", "p")],
            "{remediation: notify-only}",
        );
        for i in 0..20 {
            assert!(g.record(&owned(n.clone(), "api"), t(i)).is_none());
        }
        assert_eq!(
            act(&mut g, &owned(pod_plan("shop", "p"), "api"), t(30)),
            None
        );
    }

    #[test]
    fn restored_occurrences_are_deduped() {
        let mut g = guard(&cfg());
        let s = signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")]);
        g.restore_seen([(s.fingerprint.clone(), s.first_seen)], t(0));
        assert_eq!(g.admit(&s, t(1)), Admission::Duplicate);
    }

    fn in_cluster(name: Option<&str>) -> GuardConfig {
        GuardConfig {
            cluster_name: name.map(str::to_string),
            ..cfg()
        }
    }

    fn refusal(d: &Decision) -> Option<&Refusal> {
        match &d.verdict {
            Verdict::Refuse(r) => Some(r),
            Verdict::Allow { .. } => None,
        }
    }

    #[test]
    fn an_alert_about_another_cluster_is_refused_before_routing() {
        let mut g = guard(&in_cluster(Some("prod-eu-1")));
        let pod = |cluster: Option<&str>| {
            let mut l = vec![("alertname", "A"), ("namespace", "shop"), ("pod", "p")];
            l.extend(cluster.map(|c| ("cluster", c)));
            signal(&l)
        };
        match g.admit(&pod(Some("prod-eu-2")), t(0)) {
            Admission::Refused(r) => {
                assert_eq!(r.reason, RefusalReason::WrongCluster);
                assert!(r.message.contains("\"prod-eu-2\""), "{}", r.message);
                assert!(r.message.contains("\"prod-eu-1\""), "{}", r.message);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(g.admit(&pod(Some("prod-eu-1")), t(0)), Admission::New);
        // a single-cluster Prometheus adds no label; an empty label is no label
        assert_eq!(g.admit(&pod(None), t(0)), Admission::New);
        let mut empty = pod(Some(""));
        empty.fingerprint.push('e');
        assert_eq!(g.admit(&empty, t(0)), Admission::New);
        // detectors watch heal8s's own cluster, whatever labels they carry
        let mut d = pod(Some("prod-eu-2"));
        d.source = crate::signal::Source::Detector {
            name: "pods".into(),
        };
        assert_eq!(g.admit(&d, t(0)), Admission::New);
    }

    #[test]
    fn without_a_cluster_name_an_alert_naming_a_cluster_is_refused_with_advice() {
        let mut g = guard(&in_cluster(None));
        let s = signal(&[
            ("alertname", "A"),
            ("namespace", "shop"),
            ("pod", "p"),
            ("cluster", "prod-eu-2"),
        ]);
        match g.admit(&s, t(0)) {
            Admission::Refused(r) => {
                assert_eq!(r.reason, RefusalReason::WrongCluster);
                assert!(r.message.contains("--cluster-name"), "{}", r.message);
            }
            other => panic!("{other:?}"),
        }
        let unlabelled = signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")]);
        assert_eq!(g.admit(&unlabelled, t(0)), Admission::New);
    }

    #[test]
    fn the_cluster_label_is_configurable_and_compared_exactly() {
        let mut c = in_cluster(Some("prod-eu-1"));
        c.cluster_label = "k8s_cluster".into();
        let mut g = guard(&c);
        let with = |label: &str, value: &str| {
            signal(&[
                ("alertname", "A"),
                ("namespace", "shop"),
                ("pod", "p"),
                (label, value),
            ])
        };
        // `cluster` is just another label now
        assert_eq!(g.admit(&with("cluster", "elsewhere"), t(0)), Admission::New);
        assert_eq!(
            g.admit(&with("k8s_cluster", "prod-eu-1"), t(0)),
            Admission::New
        );
        for near_miss in ["Prod-EU-1", "prod-eu-1 ", "prod-eu-10", "prod"] {
            assert!(
                matches!(
                    g.admit(&with("k8s_cluster", near_miss), t(0)),
                    Admission::Refused(Refusal {
                        reason: RefusalReason::WrongCluster,
                        ..
                    })
                ),
                "{near_miss:?}"
            );
        }
    }

    #[test]
    fn every_remediation_is_refused_for_another_cluster_notify_only_too() {
        let mut g = guard(&in_cluster(Some("prod-eu-1")));
        let routes = [
            ("pod", "{remediation: delete-pod}"),
            ("pod", "{remediation: evict-pod}"),
            ("pod", "{remediation: bump-memory}"),
            ("pod", "{remediation: rollback-image}"),
            ("pod", "{remediation: notify-only}"),
            ("horizontalpodautoscaler", "{remediation: scale-up}"),
            ("node", "{remediation: drain-node}"),
            ("node", "{remediation: delete-node}"),
            (
                "namespace",
                "{remediation: delete-namespace, params: {namePattern: 'shop'}}",
            ),
            (
                "name",
                "{remediation: cleanup-resource, params: {apiVersion: kubevirt.io/v1, kind: VirtualMachine}}",
            ),
        ];
        for (label, route) in routes {
            let labels = |cluster: &'static str| {
                let mut l = vec![("alertname", "A"), ("namespace", "shop"), (label, "x")];
                if label == "namespace" {
                    l.truncate(2);
                }
                l.push(("cluster", cluster));
                l
            };
            let theirs = plan_for(&labels("prod-eu-2"), route);
            let d = g.check(&theirs, &Facts::unknown(), t(0));
            assert_eq!(
                refusal(&d).map(|r| r.reason),
                Some(RefusalReason::WrongCluster),
                "{route}"
            );
            let ours = plan_for(&labels("prod-eu-1"), route);
            let d = g.check(&ours, &Facts::unknown(), t(0));
            assert_ne!(
                refusal(&d).map(|r| r.reason),
                Some(RefusalReason::WrongCluster),
                "{route}"
            );
        }
    }

    #[test]
    fn another_clusters_resolved_alert_resets_no_escalation_here() {
        let mut c = in_cluster(Some("prod-eu-1"));
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
        let mut theirs = signal(&[
            ("alertname", "KubeHpaMaxedOut"),
            ("namespace", "shop"),
            ("horizontalpodautoscaler", "api"),
            ("cluster", "prod-eu-2"),
        ]);
        theirs.status = AlertStatus::Resolved;
        assert!(matches!(g.admit(&theirs, t(20)), Admission::Refused(_)));
        assert_eq!(act(&mut g, &p, t(30)), Some(RefusalReason::Escalated));
    }

    /// One step of a scenario for the restart property.
    #[derive(Debug, Clone)]
    enum Op {
        /// A crash-looping pod of workload `w` (0..3) is signalled.
        Pod { w: u8, pod: u8 },
        /// A notify-only signal about workload `w`.
        Notify { w: u8 },
        /// Node `n` (0..2) is signalled for a drain (identity-keeping target).
        Node { n: u8 },
        /// heal8s verified that workload `w` recovered.
        Verified { w: u8 },
        /// The alert about node `n` resolved.
        NodeResolved { n: u8 },
        /// A person cleared the escalation of workload `w`.
        Cleared { w: u8 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = (Op, u16)> {
        use proptest::prelude::*;
        let op = prop_oneof![
            6 => (0u8..3, 0u8..50).prop_map(|(w, pod)| Op::Pod { w, pod }),
            1 => (0u8..3).prop_map(|w| Op::Notify { w }),
            2 => (0u8..2).prop_map(|n| Op::Node { n }),
            2 => (0u8..3).prop_map(|w| Op::Verified { w }),
            1 => (0u8..2).prop_map(|n| Op::NodeResolved { n }),
            1 => (0u8..3).prop_map(|w| Op::Cleared { w }),
        ];
        // seconds since the previous step
        (op, 1u16..900)
    }

    /// Run one step; returns the decision (as a refusal reason or none) and
    /// the guard events it produced, as the pipeline hands them to the record.
    fn step(g: &mut Guard, op: &Op, now: Timestamp) -> (Option<RefusalReason>, Vec<PastEvent>) {
        let key = |w: u8| format!("Deployment/shop/w{w}");
        let node_plan = |n: u8| {
            plan_for(
                &[("alertname", "NodeDown"), ("node", &format!("n{n}"))],
                "{remediation: drain-node}",
            )
        };
        let decide = |g: &mut Guard, p: &Plan| {
            let d = g.check(p, &Facts::unknown(), now);
            let mut events: Vec<PastEvent> = d.event.clone().into_iter().collect();
            let r = reason(&d);
            if r.is_none() {
                let started = g.record(p, now);
                let ended = started.as_ref().and_then(|s| g.ended(s, now));
                events.extend(started);
                events.extend(ended);
            }
            (r, events)
        };
        match op {
            Op::Pod { w, pod } => {
                let p = owned(pod_plan("shop", &format!("w{w}-{pod}")), &format!("w{w}"));
                decide(g, &p)
            }
            Op::Notify { w } => {
                let p = plan_for(
                    &[("alertname", "A"), ("namespace", "shop"), ("pod", "x")],
                    "{remediation: notify-only}",
                );
                decide(g, &owned(p, &format!("w{w}")))
            }
            Op::Node { n } => decide(g, &node_plan(*n)),
            Op::Verified { w } => (
                None,
                vec![g.record_recovery(&key(*w), RecoveryBy::Verified, now)],
            ),
            Op::Cleared { w } => (
                None,
                vec![g.record_recovery(&key(*w), RecoveryBy::Human, now)],
            ),
            Op::NodeResolved { n } => {
                let mut s = signal(&[("alertname", "NodeDown"), ("node", &format!("n{n}"))]);
                s.status = AlertStatus::Resolved;
                s.first_seen = now;
                match g.admit(&s, now) {
                    Admission::Resolved { recovered } => (None, recovered.into_iter().collect()),
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Any sequence of actions, verifications, resolutions and clears,
        /// then a restart that restores the guard from the events the record
        /// kept (through their JSON form), gives the same decisions from then
        /// on as a guard that never restarted.
        #[test]
        fn a_restored_guard_decides_like_one_that_never_restarted(
            before in proptest::collection::vec(op(), 0..40),
            after in proptest::collection::vec(op(), 1..30),
        ) {
            let mut c = cfg();
            c.cooldown = PromDuration::secs(300);
            c.escalation.after = 2;
            c.budgets.per_workload = Budget { max: 4, per: PromDuration::secs(3600) };
            c.budgets.per_namespace = Budget { max: 3, per: PromDuration::secs(600) };
            c.budgets.global = Budget { max: 5, per: PromDuration::secs(600) };
            c.nodes.max_unhealthy = crate::policy::Threshold::Percent(100);
            let mut live = guard(&c);
            let mut now = 0i64;
            let mut kept: Vec<serde_json::Value> = Vec::new();
            for (op, dt) in &before {
                now += i64::from(*dt);
                let (_, events) = step(&mut live, op, t(now));
                kept.extend(events.iter().map(|e| serde_json::to_value(e).unwrap()));
            }
            let mut restarted = guard(&c);
            restarted.restore(
                kept.into_iter()
                    .map(|v| serde_json::from_value::<PastEvent>(v).unwrap()),
            );
            for (op, dt) in &after {
                now += i64::from(*dt);
                let a = step(&mut live, op, t(now));
                let b = step(&mut restarted, op, t(now));
                proptest::prop_assert_eq!(a, b, "after {:?} at {}", op, now);
            }
        }
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
