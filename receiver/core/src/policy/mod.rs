//! The remediation policy file: guard settings and ordered routes.
//!
//! Owns: parsing (strict: unknown keys are errors), validation that reports every
//! problem at once with its path, the shipped default policy, and the
//! read-only serialized view served at `/policy`. Must not decide anything.

pub mod clusters;
pub mod matcher;
pub mod namespaced;
pub mod notifications;
pub mod pull_requests;

use std::collections::BTreeSet;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize, Serializer};

pub use matcher::{MatchOp, Matcher};

use crate::detect::{Detectors, Features, Profile};
use crate::duration::PromDuration;
use crate::remediation::{Mode, Remediation, RemediationKind};

/// The policy heal8s ships with (kube-prometheus-stack alert names plus KubeContainerOOMKilled).
pub const DEFAULT_POLICY_YAML: &str = include_str!("default-policy.yaml");

/// The built-in policy of the test-cluster profile (also `examples/policies/test-cluster.yaml`).
pub const TEST_CLUSTER_POLICY_YAML: &str =
    include_str!("../../../../examples/policies/test-cluster.yaml");

/// The namespaces no remediation touches unless the policy says otherwise.
pub const DEFAULT_PROTECTED_NAMESPACES: [&str; 3] =
    ["kube-system", "kube-public", "kube-node-lease"];

/// A validated policy. It serializes in the policy file's own schema
/// (camelCase keys, durations and matchers as text, defaults filled in), so
/// what `/policy` serves loads back into an equal policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// The profile that gave `features` and `detectors` their defaults.
    pub profile: Profile,
    pub guard: GuardConfig,
    /// Which remediations may run at all.
    pub features: Features,
    pub detectors: Detectors,
    /// Where declarative fixes go as pull requests.
    pub pull_requests: pull_requests::PullRequests,
    /// Who hears what heal8s did, and how.
    pub notifications: notifications::Notifications,
    /// The clusters this heal8s serves (empty: the one it connects to).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<clusters::Member>,
    pub routes: Vec<Route>,
}

/// Overlay `over` onto `base`: mappings merge key by key, anything else replaces.
fn overlay(base: &mut serde_json::Value, over: &serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => overlay(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Deserialize `section` of the file over `defaults`, strictly, reporting errors under `path`.
fn section<T: serde::de::DeserializeOwned + Serialize>(
    top: &serde_json::Map<String, serde_json::Value>,
    path: &str,
    defaults: T,
    issues: &mut Vec<PolicyIssue>,
) -> T {
    let Some(given) = top.get(path).filter(|v| !v.is_null()) else {
        return defaults;
    };
    if !given.is_object() {
        issues.push(PolicyIssue::new(path, "must be a mapping"));
        return defaults;
    }
    let mut merged = serde_json::to_value(&defaults).unwrap_or(serde_json::Value::Null);
    overlay(&mut merged, given);
    match serde_path_to_error::deserialize::<_, T>(&merged) {
        Ok(v) => v,
        Err(e) => {
            issues.push(serde_issue(path, e));
            defaults
        }
    }
}

/// A sliding-window budget: at most `max` actions per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Budget {
    pub max: u32,
    pub per: PromDuration,
}

/// Action budgets, all on by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Budgets {
    pub global: Budget,
    pub per_namespace: Budget,
    pub per_workload: Budget,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            global: Budget {
                max: 10,
                per: PromDuration::secs(60),
            },
            per_namespace: Budget {
                max: 3,
                per: PromDuration::secs(60),
            },
            per_workload: Budget {
                max: 3,
                per: PromDuration::secs(3600),
            },
        }
    }
}

/// Escalation: after `after` remediations of one target within `within` without
/// recovering, stop repeating that remediation and escalate. An escalation is a
/// latch: it holds until one of `cleared_by` happens, however long that takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Escalation {
    pub after: u32,
    pub within: PromDuration,
    /// What ends an escalation: a verified recovery, a resolved alert about a
    /// target that keeps its identity, a human (annotation on the record).
    pub cleared_by: Vec<crate::ledger::RecoveryBy>,
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            after: 3,
            within: PromDuration::secs(3600),
            cleared_by: vec![
                crate::ledger::RecoveryBy::Verified,
                crate::ledger::RecoveryBy::AlertResolved,
                crate::ledger::RecoveryBy::Human,
            ],
        }
    }
}

/// What a drain does with a pod heal8s must not touch (in a protected or
/// excluded namespace, or opted out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtectedPods {
    /// Leave it on the cordoned node, evict the rest, and name it in the report.
    #[default]
    Skip,
    /// Refuse the whole drain before anything is cordoned or evicted.
    Refuse,
}

/// A count of nodes (`2`) or a share of them (`"33%"`), as Cluster API's
/// MachineHealthCheck spells `maxUnhealthy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    Count(u32),
    Percent(u32),
}

impl Threshold {
    /// The count this threshold means in a pool of `total`: a percentage is
    /// rounded up, and never below 2, so one bad node in a small pool stays
    /// healable (Karpenter's fixed 20% blocked repair on small pools).
    pub fn limit(self, total: u32) -> u32 {
        match self {
            Threshold::Count(n) => n,
            Threshold::Percent(p) => {
                let n = (u64::from(total) * u64::from(p)).div_ceil(100);
                u32::try_from(n).unwrap_or(u32::MAX).max(2)
            }
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Threshold::Count(n) => write!(f, "{n}"),
            Threshold::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Threshold::Count(n) => s.serialize_u32(*n),
            Threshold::Percent(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Count(n) => Ok(Threshold::Count(n)),
            Raw::Text(t) => {
                let bad = || {
                    serde::de::Error::custom(format!(
                        "{t:?} is neither a count (2) nor a percentage (\"33%\")"
                    ))
                };
                let p = t.strip_suffix('%').ok_or_else(bad)?;
                let p: u32 = p.trim().parse().map_err(|_| bad())?;
                Ok(Threshold::Percent(p))
            }
        }
    }
}

/// How fast one class of actions may go: a sliding-window rate, and a
/// mass-flip breaker (more than `targets` distinct targets of the class
/// turning unhealthy within `within` is a detector fault, not a wave of
/// real failures: the class stops until the flips age out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClassLimits {
    /// At most this many actions of the class in flight (started, and not
    /// yet verified; see `receiver_core::guard::IN_FLIGHT_AT_MOST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// At most `max` actions of the class per `per`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Budget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mass_flip: Option<MassFlip>,
}

/// See [`ClassLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MassFlip {
    pub targets: u32,
    pub within: PromDuration,
}

/// Limits per class of action other than nodes (those are under `nodes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Classes {
    pub pods: ClassLimits,
    pub namespaces: ClassLimits,
    pub resources: ClassLimits,
    pub finalizers: ClassLimits,
}

impl Classes {
    /// Each class's limits with its key under `guard.classes`.
    pub fn named(&self) -> [(&'static str, &ClassLimits); 4] {
        [
            ("pods", &self.pods),
            ("namespaces", &self.namespaces),
            ("resources", &self.resources),
            ("finalizers", &self.finalizers),
        ]
    }

    /// The limits of `class` (`None`: nodes, pull requests and
    /// notifications have none here).
    pub fn of(&self, class: crate::remediation::ActionClass) -> Option<&ClassLimits> {
        use crate::remediation::ActionClass;
        match class {
            ActionClass::Pods => Some(&self.pods),
            ActionClass::Namespaces => Some(&self.namespaces),
            ActionClass::Resources => Some(&self.resources),
            ActionClass::Finalizers => Some(&self.finalizers),
            ActionClass::Nodes | ActionClass::PullRequests | ActionClass::Notify => None,
        }
    }
}

impl Default for Classes {
    fn default() -> Self {
        let rate = |max, mins: u64| {
            Some(Budget {
                max,
                per: PromDuration::secs(mins * 60),
            })
        };
        Classes {
            pods: ClassLimits {
                max_in_flight: None,
                rate: None,
                mass_flip: None,
            },
            namespaces: ClassLimits {
                max_in_flight: Some(3),
                rate: rate(5, 10),
                mass_flip: Some(MassFlip {
                    targets: 20,
                    within: PromDuration::secs(120),
                }),
            },
            resources: ClassLimits {
                max_in_flight: None,
                rate: None,
                mass_flip: None,
            },
            finalizers: ClassLimits {
                max_in_flight: Some(3),
                rate: rate(5, 10),
                mass_flip: None,
            },
        }
    }
}

/// Caps on node remediation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct NodeGuard {
    /// The partition breaker: no node remediation while this many nodes (or
    /// this share, never below 2) are unhealthy; a node heal8s holds
    /// (cordoned or drained, not yet back) counts as unhealthy.
    pub max_unhealthy: Threshold,
    /// No node remediation that would leave fewer healthy nodes than this.
    pub min_healthy: u32,
    /// At most this many nodes held by heal8s at a time (in flight until Ready
    /// again and uncordoned, or deleted).
    pub max_in_flight: u32,
    /// At most `max` node actions (drains, deletions) per `per`.
    pub rate: Budget,
    /// More than `targets` nodes turning unhealthy within `within` stops node
    /// remediation (a detector fault, or a partition arriving node by node).
    pub mass_flip: MassFlip,
    /// What a drain does with pods heal8s must not touch.
    pub protected_pods: ProtectedPods,
}

impl Default for NodeGuard {
    fn default() -> Self {
        NodeGuard {
            max_unhealthy: Threshold::Percent(40),
            min_healthy: 1,
            max_in_flight: 1,
            rate: Budget {
                max: 1,
                per: PromDuration::secs(600),
            },
            mass_flip: MassFlip {
                targets: 3,
                within: PromDuration::secs(300),
            },
            protected_pods: ProtectedPods::Skip,
        }
    }
}

/// Guard settings from the policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct GuardConfig {
    /// Decide and record everything, change nothing.
    pub dry_run: bool,
    /// Namespaces never remediated. heal8s's own namespace is always added.
    pub protected_namespaces: Vec<String>,
    /// Regular expressions (anchored) of namespaces never remediated.
    pub excluded_namespaces: Vec<String>,
    /// Minimum time between two runs of one remediation on one workload.
    pub cooldown: PromDuration,
    /// How long a delivered alert occurrence (fingerprint + startsAt) is remembered for dedupe.
    pub dedupe_window: PromDuration,
    /// A signal that waited longer than this (in the queue, or behind a
    /// budget or breaker) is dropped (`stale_signal`), never acted on as it was.
    pub max_signal_age: PromDuration,
    pub budgets: Budgets,
    pub escalation: Escalation,
    pub nodes: NodeGuard,
    /// Rates and mass-flip breakers per class of action.
    pub classes: Classes,
    /// This cluster's name. An alert whose `cluster_label` names another
    /// cluster is refused (`wrong_cluster`); `--cluster-name` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// The alert label that names the cluster an alert is about.
    pub cluster_label: String,
    /// Direct changes to objects a GitOps controller manages.
    pub gitops: GitOpsGuard,
    /// Times heal8s only records (refused `maintenance_window`).
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Remediations held while an alert fires (refused `held_by_alert`).
    pub hold_while_firing: Vec<HoldWhileFiring>,
    /// Routes in mode `approve`: how long a request stays open, and who may approve.
    pub approval: ApprovalPolicy,
}

/// How approvals work (`guard.approval`, for routes in mode `approve`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ApprovalPolicy {
    /// A request expires this long after heal8s made it; an approval given
    /// later, or acted on later, is refused (`approval_expired`).
    pub ttl: PromDuration,
    /// User names (as the API server knows them) whose approval counts;
    /// empty: anyone RBAC lets write the approval (the chart's `approval` values).
    pub approvers: Vec<String>,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            ttl: PromDuration::secs(3600),
            approvers: Vec::new(),
        }
    }
}

/// The longest `guard.approval.ttl`.
pub const MAX_APPROVAL_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A day of the week in a maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub fn as_str(self) -> &'static str {
        match self {
            Day::Mon => "mon",
            Day::Tue => "tue",
            Day::Wed => "wed",
            Day::Thu => "thu",
            Day::Fri => "fri",
            Day::Sat => "sat",
            Day::Sun => "sun",
        }
    }
}

fn utc() -> String {
    "UTC".into()
}

/// A maintenance window: from `start` to `end` (`HH:MM`, in `timeZone`) on
/// `days` (every day when empty); an `end` not after `start` runs past
/// midnight. `00:00` to `00:00` is the whole day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaintenanceWindow {
    pub name: String,
    #[serde(default)]
    pub days: Vec<Day>,
    pub start: String,
    pub end: String,
    /// An IANA time zone, e.g. `Europe/Berlin`.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Only these remediations (every one when empty).
    #[serde(default)]
    pub remediations: Vec<RemediationKind>,
    /// Only in namespaces matching these anchored regexes (every target when empty).
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// `HH:MM` as a time of day.
pub fn parse_time(s: &str) -> Option<jiff::civil::Time> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    jiff::civil::Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

impl MaintenanceWindow {
    /// Its time zone, times and namespace patterns, or what is wrong with them.
    #[allow(clippy::type_complexity)]
    pub fn parts(
        &self,
    ) -> Result<
        (
            jiff::tz::TimeZone,
            jiff::civil::Time,
            jiff::civil::Time,
            Vec<Regex>,
        ),
        String,
    > {
        let tz = jiff::tz::TimeZone::get(&self.time_zone)
            .map_err(|_| format!("{:?} is not a known time zone", self.time_zone))?;
        let start = parse_time(&self.start).ok_or("start must be HH:MM")?;
        let end = parse_time(&self.end).ok_or("end must be HH:MM")?;
        let namespaces = self
            .namespaces
            .iter()
            .map(|n| Regex::new(&format!("^(?:{n})$")).map_err(|e| format!("{n:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok((tz, start, end, namespaces))
    }
}

/// Every problem of the windows and holds, as (path under `guard`, message).
pub fn holds_problems(
    windows: &[MaintenanceWindow],
    rules: &[HoldWhileFiring],
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        if let Err(e) = w.parts() {
            problems.push((format!("maintenanceWindows[{i}]"), e));
        }
    }
    for (i, r) in rules.iter().enumerate() {
        if r.matchers.is_empty() {
            problems.push((
                format!("holdWhileFiring[{i}].matchers"),
                "at least one matcher is required (it would hold on every alert)".into(),
            ));
        }
    }
    problems
}

/// While an alert matching `matchers` fires (heal8s has seen it firing and
/// not resolved), `remediations` (every one when empty) are held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HoldWhileFiring {
    #[serde(with = "matcher::as_text")]
    pub matchers: Vec<Matcher>,
    #[serde(default)]
    pub remediations: Vec<RemediationKind>,
}

/// What a direct change to an object an Argo CD application or a Flux
/// Kustomization/HelmRelease manages does (`guard.gitops.owned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GitOpsOwned {
    /// Refused (`gitops_owned`): fix it in git instead.
    #[default]
    Refuse,
    /// Act anyway (its controller may revert it).
    Act,
}

/// `guard.gitops`: deleting or evicting pods is never affected.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct GitOpsGuard {
    pub owned: GitOpsOwned,
    /// Delete a namespace, custom resource or node a GitOps controller
    /// manages (refused otherwise, even with `owned: act`).
    pub allow_delete: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            dry_run: false,
            protected_namespaces: DEFAULT_PROTECTED_NAMESPACES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            excluded_namespaces: Vec::new(),
            cooldown: PromDuration::secs(600),
            dedupe_window: PromDuration::secs(24 * 3600),
            max_signal_age: PromDuration::secs(600),
            budgets: Budgets::default(),
            escalation: Escalation::default(),
            nodes: NodeGuard::default(),
            classes: Classes::default(),
            cluster_name: None,
            cluster_label: DEFAULT_CLUSTER_LABEL.to_string(),
            gitops: GitOpsGuard::default(),
            maintenance_windows: Vec::new(),
            hold_while_firing: Vec::new(),
            approval: ApprovalPolicy::default(),
        }
    }
}

/// The alert label that names the cluster, unless `guard.clusterLabel` says otherwise.
pub const DEFAULT_CLUSTER_LABEL: &str = "cluster";

/// Why `name` cannot be heal8s's cluster name (`guard.clusterName`, `--cluster-name`).
pub fn cluster_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty (leave it unset instead)")
    } else if name.trim() != name {
        Some("must not start or end with whitespace (it is compared exactly)")
    } else {
        None
    }
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl GuardConfig {
    /// The excluded-namespace patterns, compiled and anchored.
    pub fn excluded_regexes(&self) -> Result<Vec<Regex>, Vec<PolicyIssue>> {
        let mut out = Vec::new();
        let mut issues = Vec::new();
        for (i, p) in self.excluded_namespaces.iter().enumerate() {
            match Regex::new(&format!("^(?:{p})$")) {
                Ok(re) => out.push(re),
                Err(e) => issues.push(PolicyIssue::new(
                    format!("guard.excludedNamespaces[{i}]"),
                    format!("invalid regular expression: {e}"),
                )),
            }
        }
        if issues.is_empty() {
            Ok(out)
        } else {
            Err(issues)
        }
    }

    fn validate(&self) -> Vec<PolicyIssue> {
        let mut out = self.excluded_regexes().err().unwrap_or_default();
        let age = self.max_signal_age.get();
        if age < std::time::Duration::from_secs(10)
            || age > std::time::Duration::from_secs(24 * 3600)
        {
            out.push(PolicyIssue::new(
                "guard.maxSignalAge",
                "must be between 10s and 24h",
            ));
        }
        let ttl = self.approval.ttl.get();
        if ttl < std::time::Duration::from_secs(60) || ttl > MAX_APPROVAL_TTL {
            out.push(PolicyIssue::new(
                "guard.approval.ttl",
                "must be between 1m and 7d",
            ));
        }
        for (i, a) in self.approval.approvers.iter().enumerate() {
            if a.trim().is_empty() || a.trim() != a {
                out.push(PolicyIssue::new(
                    format!("guard.approval.approvers[{i}]"),
                    "must be a user name as the API server knows it (not empty, no surrounding spaces)",
                ));
            }
        }
        out.extend(
            holds_problems(&self.maintenance_windows, &self.hold_while_firing)
                .into_iter()
                .map(|(p, m)| PolicyIssue::new(format!("guard.{p}"), m)),
        );
        for (i, ns) in self.protected_namespaces.iter().enumerate() {
            if !crate::target::is_dns1123_label(ns) {
                out.push(PolicyIssue::new(
                    format!("guard.protectedNamespaces[{i}]"),
                    format!("{ns:?} is not a valid namespace name"),
                ));
            }
        }
        for (name, b) in [
            ("global", self.budgets.global),
            ("perNamespace", self.budgets.per_namespace),
            ("perWorkload", self.budgets.per_workload),
        ] {
            if b.max == 0 {
                out.push(PolicyIssue::new(
                    format!("guard.budgets.{name}.max"),
                    "must be at least 1 (use dryRun to stop all actions)",
                ));
            }
            if b.per.get().is_zero() {
                out.push(PolicyIssue::new(
                    format!("guard.budgets.{name}.per"),
                    "must be longer than 0s",
                ));
            }
        }
        if self.escalation.after == 0 {
            out.push(PolicyIssue::new(
                "guard.escalation.after",
                "must be at least 1",
            ));
        }
        if self.escalation.within.get().is_zero() {
            out.push(PolicyIssue::new(
                "guard.escalation.within",
                "must be longer than 0s",
            ));
        }
        if self.escalation.cleared_by.is_empty() {
            out.push(PolicyIssue::new(
                "guard.escalation.clearedBy",
                "must name at least one of verified, alertResolved, human (or an escalation could never end)",
            ));
        }
        match self.nodes.max_unhealthy {
            Threshold::Percent(p) if !(1..=100).contains(&p) => out.push(PolicyIssue::new(
                "guard.nodes.maxUnhealthy",
                "a percentage must be between 1% and 100%",
            )),
            Threshold::Count(0) => out.push(PolicyIssue::new(
                "guard.nodes.maxUnhealthy",
                "must be at least 1 (a count) or a percentage such as \"40%\"",
            )),
            _ => {}
        }
        if self.nodes.max_in_flight == 0 {
            out.push(PolicyIssue::new(
                "guard.nodes.maxInFlight",
                "must be at least 1",
            ));
        }
        let mut rate = |path: String, b: &Budget| {
            if b.max == 0 {
                out.push(PolicyIssue::new(
                    format!("{path}.max"),
                    "must be at least 1",
                ));
            }
            if b.per.get().is_zero() {
                out.push(PolicyIssue::new(
                    format!("{path}.per"),
                    "must be longer than 0s",
                ));
            }
        };
        rate("guard.nodes.rate".into(), &self.nodes.rate);
        for (name, c) in self.classes.named() {
            if let Some(b) = &c.rate {
                rate(format!("guard.classes.{name}.rate"), b);
            }
        }
        for (name, c) in self.classes.named() {
            if c.max_in_flight == Some(0) {
                out.push(PolicyIssue::new(
                    format!("guard.classes.{name}.maxInFlight"),
                    "must be at least 1 (leave it unset for no cap)",
                ));
            }
        }
        let mut flips = vec![("guard.nodes.massFlip".to_string(), self.nodes.mass_flip)];
        for (name, c) in self.classes.named() {
            if let Some(m) = c.mass_flip {
                flips.push((format!("guard.classes.{name}.massFlip"), m));
            }
        }
        for (path, m) in flips {
            if m.targets == 0 {
                out.push(PolicyIssue::new(
                    format!("{path}.targets"),
                    "must be at least 1",
                ));
            }
            if m.within.get().is_zero() {
                out.push(PolicyIssue::new(
                    format!("{path}.within"),
                    "must be longer than 0s",
                ));
            }
        }
        if self.dedupe_window.get().is_zero() {
            out.push(PolicyIssue::new(
                "guard.dedupeWindow",
                "must be longer than 0s",
            ));
        }
        if let Some(problem) = self.cluster_name.as_deref().and_then(cluster_name_problem) {
            out.push(PolicyIssue::new("guard.clusterName", problem));
        }
        if !is_label_name(&self.cluster_label) {
            out.push(PolicyIssue::new(
                "guard.clusterLabel",
                format!(
                    "{:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                    self.cluster_label
                ),
            ));
        }
        out
    }
}

/// One route: when its matchers all match a signal's labels, plan its remediation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub name: String,
    #[serde(serialize_with = "display_all")]
    pub matchers: Vec<Matcher>,
    #[serde(flatten)]
    pub remediation: Remediation,
    pub mode: Mode,
    /// Keep evaluating later routes after this one matched.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// Act only from the `minOccurrences`-th occurrence of the problem
    /// within `window` (absent: from the first).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<Occurrences>,
}

/// A route's occurrence threshold: `minOccurrences` within `window`,
/// counted per owning workload (or target) and reason (see
/// `guard::occurrences`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Occurrences {
    #[serde(rename = "minOccurrences")]
    pub min: u32,
    pub window: PromDuration,
}

/// The most occurrences a route may ask for.
pub const MAX_MIN_OCCURRENCES: u32 = 100;

fn display_all<S: Serializer>(ms: &[Matcher], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ms.iter().map(ToString::to_string))
}

/// The route as written in the file, before its parts are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRoute {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    remediation: String,
    #[serde(default)]
    params: Option<serde_json::Value>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default, rename = "continue")]
    continue_matching: bool,
    #[serde(default)]
    min_occurrences: Option<u32>,
    #[serde(default)]
    window: Option<PromDuration>,
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyIssue {
    /// Where: `routes[2].params.factor`, `guard.cooldown`, or `$` for the whole file.
    pub path: String,
    pub message: String,
}

impl PolicyIssue {
    fn new(path: impl Into<String>, message: impl Into<String>) -> PolicyIssue {
        PolicyIssue {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub issues: Vec<PolicyIssue>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the policy has {} problem(s):", self.issues.len())?;
        for i in &self.issues {
            write!(f, "\n  - {i}")?;
        }
        Ok(())
    }
}

fn serde_issue<E: fmt::Display>(prefix: &str, e: serde_path_to_error::Error<E>) -> PolicyIssue {
    let inner = e.path().to_string();
    let path = match (prefix, inner.as_str()) {
        ("", ".") => "$".to_string(),
        (p, ".") => p.to_string(),
        ("", i) => i.to_string(),
        (p, i) if i.starts_with('[') => format!("{p}{i}"),
        (p, i) => format!("{p}.{i}"),
    };
    PolicyIssue::new(path, e.into_inner().to_string())
}

impl Policy {
    /// The shipped default policy.
    pub fn default_policy() -> Result<Policy, PolicyError> {
        Policy::from_yaml(DEFAULT_POLICY_YAML)
    }

    /// The built-in policy of `profile`.
    pub fn builtin(profile: Profile) -> Result<Policy, PolicyError> {
        match profile {
            Profile::Production => Policy::from_yaml(DEFAULT_POLICY_YAML),
            Profile::TestCluster => Policy::from_yaml(TEST_CLUSTER_POLICY_YAML),
        }
    }

    /// Where the policy's values disagree with each other so that a signal can
    /// never be acted on (the policy still loads; `check-config` and `serve`
    /// say so): a route's live gate stricter than the detector that feeds it.
    pub fn warnings(&self) -> Vec<PolicyIssue> {
        let mut out = Vec::new();
        let ns = &self.detectors.namespaces;
        if ns.enabled {
            let stale: std::collections::BTreeMap<String, String> = [
                ("alertname".to_string(), "Heal8sStaleNamespace".to_string()),
                (
                    crate::detect::DETECTOR_LABEL.to_string(),
                    "namespaces".to_string(),
                ),
            ]
            .into();
            for (i, r) in self.routes.iter().enumerate() {
                if let crate::remediation::Remediation::DeleteNamespace(p) = &r.remediation
                    && r.matchers.iter().all(|m| m.matches(&stale))
                    && p.min_age > ns.stale_age
                {
                    out.push(PolicyIssue::new(
                        format!("routes[{i}].params.minAge"),
                        format!(
                            "minAge {} is longer than detectors.namespaces.staleAge {}: the namespace detector's findings are refused (condition_cleared) until a namespace is {} old; set minAge to at most {}",
                            p.min_age, ns.stale_age, p.min_age, ns.stale_age
                        ),
                    ));
                }
            }
        }
        out
    }

    /// Parse and validate a policy file; every problem is reported at once.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        let doc: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| PolicyError {
            issues: vec![PolicyIssue::new("$", format!("not valid YAML: {e}"))],
        })?;
        Policy::from_value(&doc)
    }

    /// Validate an already-parsed document (YAML or JSON).
    pub fn from_value(doc: &serde_json::Value) -> Result<Policy, PolicyError> {
        let mut issues = Vec::new();
        let Some(top) = doc.as_object() else {
            return Err(PolicyError {
                issues: vec![PolicyIssue::new(
                    "$",
                    "the policy must be a mapping with `guard` and `routes`",
                )],
            });
        };
        const KEYS: [&str; 8] = [
            "profile",
            "guard",
            "features",
            "detectors",
            "pullRequests",
            "notifications",
            "clusters",
            "routes",
        ];
        for key in top.keys() {
            if !KEYS.contains(&key.as_str()) {
                // the empty key is shown quoted, so the path names something
                let path = if key.is_empty() {
                    r#""""#.to_string()
                } else {
                    key.clone()
                };
                issues.push(PolicyIssue::new(
                    path,
                    format!("unknown key (expected one of {})", KEYS.join(", ")),
                ));
            }
        }
        let profile = match top.get("profile") {
            None | Some(serde_json::Value::Null) => Profile::default(),
            Some(v) => serde_json::from_value::<Profile>(v.clone()).unwrap_or_else(|_| {
                issues.push(PolicyIssue::new(
                    "profile",
                    format!("{v} is not a profile; expected production or test-cluster"),
                ));
                Profile::default()
            }),
        };
        let features = section(top, "features", Features::for_profile(profile), &mut issues);
        let detectors = section(
            top,
            "detectors",
            Detectors::for_profile(profile),
            &mut issues,
        );
        for (path, msg) in detectors.validate() {
            issues.push(PolicyIssue::new(format!("detectors.{path}"), msg));
        }
        let pull_requests = section(
            top,
            "pullRequests",
            pull_requests::PullRequests::default(),
            &mut issues,
        );
        for (path, msg) in pull_requests.validate() {
            issues.push(PolicyIssue::new(format!("pullRequests.{path}"), msg));
        }
        let notifications = section(
            top,
            "notifications",
            notifications::Notifications::default(),
            &mut issues,
        );
        for (path, msg) in notifications.validate() {
            issues.push(PolicyIssue::new(format!("notifications.{path}"), msg));
        }
        let guard = match top.get("guard") {
            None | Some(serde_json::Value::Null) => GuardConfig::default(),
            Some(v) => match serde_path_to_error::deserialize::<_, GuardConfig>(v) {
                Ok(g) => {
                    issues.extend(g.validate());
                    g
                }
                Err(e) => {
                    issues.push(serde_issue("guard", e));
                    GuardConfig::default()
                }
            },
        };
        let clusters = match top.get("clusters") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(v) => clusters::parse(v, &mut issues),
        };
        if !clusters.is_empty() && guard.cluster_name.is_some() {
            issues.push(PolicyIssue::new(
                "guard.clusterName",
                "with a clusters section each member's name is its cluster's name; leave guard.clusterName out",
            ));
        }
        if !clusters.is_empty() && pull_requests.repository.is_some() {
            issues.push(PolicyIssue::new(
                "pullRequests.repository",
                "with a clusters section heal8s proposes no pull requests yet: one repository's manifests would be patched for any of the clusters; serve the clusters whose fixes become pull requests with a heal8s each",
            ));
        }
        let mut routes = Vec::new();
        match top.get("routes") {
            Some(serde_json::Value::Array(raw)) if !raw.is_empty() => {
                let mut names = BTreeSet::new();
                for (i, r) in raw.iter().enumerate() {
                    match route_from(i, r, &mut issues) {
                        Some(route) => {
                            if !names.insert(route.name.clone()) {
                                issues.push(PolicyIssue::new(
                                    format!("routes[{i}].name"),
                                    format!("duplicate route name {:?}", route.name),
                                ));
                            }
                            routes.push(route);
                        }
                        None => continue,
                    }
                }
            }
            Some(serde_json::Value::Array(_)) | None | Some(serde_json::Value::Null) => {
                issues.push(PolicyIssue::new("routes", "at least one route is required"));
            }
            Some(_) => issues.push(PolicyIssue::new("routes", "must be a list of routes")),
        }
        if issues.is_empty() {
            Ok(Policy {
                profile,
                guard,
                features,
                detectors,
                pull_requests,
                notifications,
                clusters,
                routes,
            })
        } else {
            Err(PolicyError { issues })
        }
    }

    /// The policy as JSON, as served at `/policy`: a policy file with every
    /// default filled in, which `from_value` (and `heal8s check-config`) loads
    /// back into an equal policy. The policy holds no secrets: credentials
    /// come from files, and notification receivers name theirs as
    /// `{env: NAME}` or `{file: PATH}` ([`notifications::Secret`]), never
    /// the value; a field that ever does must serialize redacted here.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn route_from(i: usize, v: &serde_json::Value, issues: &mut Vec<PolicyIssue>) -> Option<Route> {
    let at = format!("routes[{i}]");
    let raw: RawRoute = match serde_path_to_error::deserialize(v) {
        Ok(r) => r,
        Err(e) => {
            issues.push(serde_issue(&at, e));
            return None;
        }
    };
    let before = issues.len();
    let mut matchers = Vec::new();
    for (j, m) in raw.matchers.iter().enumerate() {
        match Matcher::parse(m) {
            Ok(m) => matchers.push(m),
            Err(e) => issues.push(PolicyIssue::new(format!("{at}.matchers[{j}]"), e)),
        }
    }
    let name = raw.name.unwrap_or_else(|| format!("route-{i}"));
    if name.is_empty() || name.len() > 63 {
        issues.push(PolicyIssue::new(
            format!("{at}.name"),
            "must be 1..=63 characters",
        ));
    }
    let Some(kind) = RemediationKind::parse(&raw.remediation) else {
        issues.push(PolicyIssue::new(
            format!("{at}.remediation"),
            format!(
                "unknown remediation {:?}; expected one of {}",
                raw.remediation,
                RemediationKind::ALL.map(|k| k.as_str()).join(", ")
            ),
        ));
        return None;
    };
    let remediation = match Remediation::from_params(kind, raw.params.as_ref()) {
        Ok(r) => Some(r),
        Err(found) => {
            for (field, msg) in found {
                let path = if field.is_empty() {
                    format!("{at}.params")
                } else {
                    format!("{at}.params.{field}")
                };
                issues.push(PolicyIssue::new(path, msg));
            }
            None
        }
    };
    let mode = raw.mode.unwrap_or(kind.default_mode());
    if !kind.allows(mode) {
        issues.push(PolicyIssue::new(
            format!("{at}.mode"),
            format!(
                "{kind} cannot run in mode {mode}; its modes are {}",
                kind.modes()
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let occurrences = match (raw.min_occurrences, raw.window) {
        (None, None) | (Some(1), None) => None,
        (Some(n), _) if n == 0 || n > MAX_MIN_OCCURRENCES => {
            issues.push(PolicyIssue::new(
                format!("{at}.minOccurrences"),
                format!("must be between 1 and {MAX_MIN_OCCURRENCES}"),
            ));
            None
        }
        (Some(1), Some(_)) | (None, Some(_)) => {
            issues.push(PolicyIssue::new(
                format!("{at}.window"),
                "counts occurrences for minOccurrences above 1; set minOccurrences or leave window out",
            ));
            None
        }
        (Some(_), None) => {
            issues.push(PolicyIssue::new(
                format!("{at}.window"),
                "is required with minOccurrences above 1 (the occurrences are counted within it)",
            ));
            None
        }
        (Some(min), Some(window)) => {
            let w = window.get();
            if w < std::time::Duration::from_secs(1)
                || w > std::time::Duration::from_secs(24 * 3600)
            {
                issues.push(PolicyIssue::new(
                    format!("{at}.window"),
                    "must be between 1s and 24h",
                ));
            }
            Some(Occurrences { min, window })
        }
    };
    if issues.len() > before {
        return None;
    }
    Some(Route {
        name,
        matchers,
        remediation: remediation?,
        mode,
        continue_matching: raw.continue_matching,
        occurrences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid_and_covers_the_kube_prometheus_alerts() {
        let p = Policy::default_policy().unwrap();
        for alert in [
            "KubePodCrashLooping",
            "KubePodNotReady",
            "KubeContainerWaiting",
            "KubeHpaMaxedOut",
            "KubeNodeNotReady",
            "KubeNodeUnreachable",
            "KubeJobFailed",
            "KubeContainerOOMKilled",
        ] {
            let labels = [("alertname".to_string(), alert.to_string())].into();
            assert!(
                p.routes
                    .iter()
                    .any(|r| r.matchers.iter().all(|m| m.matches(&labels))),
                "{alert} has no route"
            );
        }
        assert_eq!(p.guard, GuardConfig::default());
    }

    #[test]
    fn builtin_profiles_load_with_their_profile() {
        assert_eq!(
            Policy::builtin(Profile::Production).unwrap().profile,
            Profile::Production
        );
        let t = Policy::builtin(Profile::TestCluster).unwrap();
        assert_eq!(t.profile, Profile::TestCluster);
        assert!(t.features.remove_finalizers);
    }

    #[test]
    fn minimal_policy_gets_safe_defaults() {
        let p = Policy::from_yaml(
            "routes:\n  - matchers: ['alertname=\"X\"']\n    remediation: delete-pod\n",
        )
        .unwrap();
        assert_eq!(p.routes[0].name, "route-0");
        assert_eq!(p.routes[0].mode, Mode::Direct);
        assert!(!p.guard.dry_run);
        assert!(
            p.guard
                .protected_namespaces
                .contains(&"kube-system".to_string())
        );
        assert_eq!(p.guard.budgets, Budgets::default());
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let text = r#"
guard:
  cooldown: 10 minutes
routes:
  - name: a
    matchers: ['alertname=~"("', 'bad']
    remediation: delete-pod
  - name: b
    remediation: bump-memory
    mode: direct
    params: {factor: 0.5}
  - name: c
    remediation: reboot-cluster
  - name: a
    remediation: delete-pod
    colour: blue
extra: 1
"#;
        let e = Policy::from_yaml(text).unwrap_err();
        let paths: Vec<_> = e.issues.iter().map(|i| i.path.as_str()).collect();
        for want in [
            "guard.cooldown",
            "routes[0].matchers[0]",
            "routes[0].matchers[1]",
            "routes[1].params.factor",
            "routes[1].mode",
            "routes[2].remediation",
            "routes[3].colour",
            "extra",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
        let shown = e.to_string();
        assert!(shown.contains("colour"), "{shown}");
    }

    #[test]
    fn profiles_set_feature_and_detector_defaults_and_keys_override_them() {
        let prod = Policy::from_yaml("routes: [{remediation: notify-only}]").unwrap();
        assert_eq!(prod.profile, Profile::Production);
        assert!(!prod.features.remove_finalizers && !prod.features.delete_nodes);
        assert!(prod.features.heal_pods && prod.features.drain_nodes);
        assert!(!prod.detectors.virtual_machines.enabled);
        let test = Policy::from_yaml(
            "profile: test-cluster\nfeatures: {removeFinalizers: false}\ndetectors: {pods: {restartThreshold: 5}}\nroutes: [{remediation: notify-only}]",
        )
        .unwrap();
        assert!(test.features.cleanup_resources && test.features.delete_namespaces);
        assert!(
            !test.features.remove_finalizers,
            "explicit key wins over the profile"
        );
        assert_eq!(test.detectors.pods.restart_threshold, 5);
        assert_eq!(
            test.detectors.pods.pending_after,
            PromDuration::secs(900),
            "siblings keep defaults"
        );
        assert_eq!(
            test.detectors.virtual_machines.stale_age,
            PromDuration::secs(360)
        );
    }

    #[test]
    fn unknown_profile_and_detector_keys_are_errors_with_paths() {
        let e = Policy::from_yaml(
            "profile: staging\ndetectors: {pods: {restartTreshold: 5}, customResources: {resources: [bogus]}}\nfeatures: {deleteEverything: true}\nroutes: [{remediation: notify-only}]",
        )
        .unwrap_err();
        let paths: Vec<_> = e.issues.iter().map(|i| i.path.as_str()).collect();
        assert!(paths.contains(&"profile"), "{paths:?}");
        assert!(
            paths.contains(&"detectors.pods.restartTreshold"),
            "{paths:?}"
        );
        assert!(paths.contains(&"features.deleteEverything"), "{paths:?}");
    }

    #[test]
    fn detector_values_are_validated() {
        let e = Policy::from_yaml(
            "detectors: {customResources: {resources: [bogus]}, nodes: {strainThresholdPercent: 0}, namespaces: {watch: ['Bad Name']}}\nroutes: [{remediation: notify-only}]",
        )
        .unwrap_err();
        let paths: Vec<_> = e.issues.iter().map(|i| i.path.as_str()).collect();
        assert!(
            paths.contains(&"detectors.customResources.resources[0]"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"detectors.nodes.strainThresholdPercent"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"detectors.namespaces.watch[0]"),
            "{paths:?}"
        );
    }

    #[test]
    fn duplicate_route_names_are_rejected() {
        let e = Policy::from_yaml(
            "routes:\n  - {name: a, remediation: delete-pod}\n  - {name: a, remediation: evict-pod}\n",
        )
        .unwrap_err();
        assert_eq!(e.issues[0].path, "routes[1].name");
    }

    #[test]
    fn guard_values_are_checked() {
        let e = Policy::from_yaml(
            "guard:\n  excludedNamespaces: ['(']\n  protectedNamespaces: ['Kube_System']\n  budgets: {global: {max: 0, per: 1m}}\n  escalation: {after: 0}\nroutes: [{remediation: notify-only}]\n",
        )
        .unwrap_err();
        let paths: Vec<_> = e.issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "guard.excludedNamespaces[0]",
                "guard.protectedNamespaces[0]",
                "guard.budgets.global.max",
                "guard.escalation.after"
            ]
        );
    }

    #[test]
    fn occurrence_thresholds_are_checked_and_served_back() {
        let ok = Policy::from_yaml(
            "routes: [{name: r, matchers: ['alertname=\"A\"'], remediation: delete-pod, minOccurrences: 3, window: 10m}]",
        )
        .unwrap();
        let t = ok.routes[0].occurrences.unwrap();
        assert_eq!((t.min, t.window.get().as_secs()), (3, 600));
        assert_eq!(Policy::from_value(&ok.to_json()).unwrap(), ok);
        assert_eq!(ok.to_json()["routes"][0]["minOccurrences"], 3);
        let one = Policy::from_yaml(
            "routes: [{name: r, matchers: ['alertname=\"A\"'], remediation: delete-pod, minOccurrences: 1}]",
        )
        .unwrap();
        assert_eq!(one.routes[0].occurrences, None);
        let e = Policy::from_yaml(
            "routes:\n- {name: a, remediation: delete-pod, minOccurrences: 0, window: 1m}\n- {name: b, remediation: delete-pod, minOccurrences: 3}\n- {name: c, remediation: delete-pod, window: 1m}\n- {name: d, remediation: delete-pod, minOccurrences: 2, window: 2d}\n- {name: f, remediation: delete-pod, minOccurrences: 101, window: 1m}",
        )
        .unwrap_err();
        let paths: Vec<&str> = e.issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "routes[0].minOccurrences",
                "routes[1].window",
                "routes[2].window",
                "routes[3].window",
                "routes[4].minOccurrences"
            ],
            "{e}"
        );
    }

    #[test]
    fn cluster_name_and_label_are_checked() {
        let p = Policy::from_yaml("routes: [{remediation: notify-only}]").unwrap();
        assert_eq!(p.guard.cluster_name, None);
        assert_eq!(p.guard.cluster_label, "cluster");
        let p = Policy::from_yaml(
            "guard: {clusterName: prod-eu-1, clusterLabel: k8s_cluster}\nroutes: [{remediation: notify-only}]",
        )
        .unwrap();
        assert_eq!(p.guard.cluster_name.as_deref(), Some("prod-eu-1"));
        assert_eq!(p.guard.cluster_label, "k8s_cluster");
        let e = Policy::from_yaml(
            "guard: {clusterName: '', clusterLabel: 'kube-cluster', cooldown: 0s, escalation: {after: 0}}\nroutes: [{remediation: notify-only}]",
        )
        .unwrap_err();
        let paths: Vec<_> = e.issues.iter().map(|i| i.path.as_str()).collect();
        for want in [
            "guard.clusterName",
            "guard.clusterLabel",
            "guard.escalation.after",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
        assert!(cluster_name_problem(" prod").is_some());
        assert!(cluster_name_problem("prod eu/2").is_none());
    }

    #[test]
    fn empty_or_non_mapping_policies_are_rejected() {
        assert_eq!(
            Policy::from_yaml("routes: []").unwrap_err().issues[0].path,
            "routes"
        );
        assert_eq!(Policy::from_yaml("- a").unwrap_err().issues[0].path, "$");
        assert_eq!(Policy::from_yaml("a: [").unwrap_err().issues[0].path, "$");
    }

    /// What `/policy` serves is a policy file `heal8s check-config` accepts,
    /// and it loads back to the same policy.
    #[test]
    fn served_policy_loads_back_to_an_equal_policy() {
        for (name, text) in [
            ("default", DEFAULT_POLICY_YAML),
            (
                "production",
                include_str!("../../../../examples/policies/production.yaml"),
            ),
            ("test-cluster", TEST_CLUSTER_POLICY_YAML),
            (
                "demo scenario",
                include_str!("../../../../tests/testkit/scenario/policy.yaml"),
            ),
        ] {
            let loaded = Policy::from_yaml(text).unwrap();
            let served = loaded.to_json();
            // check-config reads the file as YAML; JSON is YAML
            let text = serde_json::to_string_pretty(&served).unwrap();
            let again = Policy::from_yaml(&text)
                .unwrap_or_else(|e| panic!("{name}: the served policy does not load: {e}"));
            assert_eq!(again, loaded, "{name}");
            assert_eq!(again.to_json(), served, "{name}");
        }
    }

    #[test]
    fn served_policy_uses_the_file_keys() {
        let v = Policy::from_yaml(
            "pullRequests: {repository: acme/manifests}\nroutes: [{remediation: notify-only}]",
        )
        .unwrap()
        .to_json();
        assert_eq!(v["pullRequests"]["repository"], "acme/manifests");
        assert_eq!(v["pullRequests"]["pollInterval"], "5m");
        assert!(v.get("pull_requests").is_none(), "{v}");
    }

    #[test]
    fn served_view_shows_matchers_remediation_params_and_mode() {
        let p = Policy::from_yaml(
            "routes:\n  - name: oom\n    matchers: ['alertname=\"KubeContainerOOMKilled\"']\n    remediation: bump-memory\n    params: {max: 4Gi}\n",
        )
        .unwrap();
        let v = p.to_json();
        let r = &v["routes"][0];
        assert_eq!(r["matchers"][0], "alertname=\"KubeContainerOOMKilled\"");
        assert_eq!(r["remediation"], "bump-memory");
        assert_eq!(r["params"]["max"], "4Gi");
        assert_eq!(r["params"]["factor"], 1.2);
        assert_eq!(r["mode"], "propose");
        assert_eq!(v["guard"]["cooldown"], "10m");
    }
    #[test]
    fn a_route_gate_stricter_than_its_detector_is_a_warning() {
        let p = Policy::from_yaml(
            "profile: test-cluster\ndetectors: {namespaces: {enabled: true, watch: ['test-*'], staleAge: 6m}}\nroutes: [{matchers: ['alertname=\"Heal8sStaleNamespace\"'], remediation: delete-namespace}]",
        )
        .unwrap();
        let w = p.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].path, "routes[0].params.minAge");
        assert!(
            w[0].message.contains("1h") && w[0].message.contains("6m"),
            "{}",
            w[0].message
        );
        // the shipped profiles agree with themselves
        for profile in [Profile::Production, Profile::TestCluster] {
            let p = Policy::builtin(profile).unwrap();
            assert!(p.warnings().is_empty(), "{profile:?}: {:?}", p.warnings());
        }
    }
}
