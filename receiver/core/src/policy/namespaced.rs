//! A team's own policy for its namespace: the `RemediationPolicy` custom
//! resource. It can only tighten the cluster policy: opt the namespace out,
//! switch remediations off, force a lower rung of the mode ladder, lower the
//! budgets and each class's in-flight cap and rate, raise the occurrence
//! threshold, narrow who may approve. A field
//! that would loosen the cluster policy is refused, with its path, and the
//! object is not applied at all (`Accepted=False`).
//!
//! Owns: the spec ([`RemediationPolicySpec`], the CRD's schema), [`accept`]
//! (validation against the cluster policy, every problem at once) and
//! [`Effective`] (what several accepted objects in one namespace add up to).
//! The guard applies it (`Guard::set_namespace_policies`). Must not do IO.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Budget, MAX_MIN_OCCURRENCES, Occurrences, Policy, PolicyIssue};
use crate::duration::PromDuration;
use crate::remediation::{ActionClass, Mode, RemediationKind};

/// What a team asks of heal8s in its namespace (`RemediationPolicy.spec`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemediationPolicySpec {
    /// heal8s changes nothing in this namespace (it still records).
    #[serde(default)]
    pub opt_out: bool,
    /// Remediations switched off in this namespace, e.g. `delete-pod`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled: Vec<String>,
    /// The highest rung of the mode ladder routes may use here: `observe`,
    /// `propose` or `approve` (`direct` would loosen nothing and is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Lower budgets for this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<NamespaceBudgets>,
    /// Act only from the N-th occurrence of a problem within `window` (at
    /// least the route's own threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int64", "minimum" = 1, "maximum" = 100))]
    pub min_occurrences: Option<u32>,
    /// The occurrence window (`10m`), with `minOccurrences`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Only these people may approve plans here (user names as the API
    /// server knows them; within the cluster policy's approvers, if it names any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// At most this many actions of a class in flight in this namespace at
    /// once (no more than the cluster's `guard.classes.*.maxInFlight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<InFlightSpec>,
    /// At most `max` actions of a class per `per` in this namespace (no more
    /// than the cluster's `guard.classes.*.rate` allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateSpec>,
}

/// Rates per class of action in one namespace (`{max: 1, per: 10m}` each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateSpec {
    /// delete-pod, evict-pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<BudgetSpec>,
    /// delete-namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<BudgetSpec>,
    /// cleanup-resource without finalizer removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<BudgetSpec>,
    /// cleanup-resource that may remove finalizers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<BudgetSpec>,
}

impl RateSpec {
    /// Each rate with its class.
    pub fn by_class(&self) -> [(ActionClass, Option<&BudgetSpec>); 4] {
        [
            (ActionClass::Pods, self.pods.as_ref()),
            (ActionClass::Namespaces, self.namespaces.as_ref()),
            (ActionClass::Resources, self.resources.as_ref()),
            (ActionClass::Finalizers, self.finalizers.as_ref()),
        ]
    }
}

/// In-flight caps per class of action in one namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InFlightSpec {
    /// delete-pod, evict-pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int64", "minimum" = 0, "maximum" = 4294967295u32))]
    pub pods: Option<u32>,
    /// delete-namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int64", "minimum" = 0, "maximum" = 4294967295u32))]
    pub namespaces: Option<u32>,
    /// cleanup-resource without finalizer removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int64", "minimum" = 0, "maximum" = 4294967295u32))]
    pub resources: Option<u32>,
    /// cleanup-resource that may remove finalizers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int64", "minimum" = 0, "maximum" = 4294967295u32))]
    pub finalizers: Option<u32>,
}

impl InFlightSpec {
    /// Each cap with its class.
    pub fn by_class(&self) -> [(ActionClass, Option<u32>); 4] {
        [
            (ActionClass::Pods, self.pods),
            (ActionClass::Namespaces, self.namespaces),
            (ActionClass::Resources, self.resources),
            (ActionClass::Finalizers, self.finalizers),
        ]
    }
}

/// Budgets a namespace may lower (`{max: 1, per: 10m}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceBudgets {
    /// Actions in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_namespace: Option<BudgetSpec>,
    /// Actions on one workload here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_workload: Option<BudgetSpec>,
}

/// A budget as written: at most `max` actions per `per`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    #[schemars(extend("format" = "int64", "minimum" = 0, "maximum" = 4294967295u32))]
    pub max: u32,
    pub per: String,
}

/// An accepted `RemediationPolicy`: what it tightens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespacePolicy {
    /// `namespace/name`.
    pub name: String,
    pub namespace: String,
    pub opt_out: bool,
    pub disabled: Vec<RemediationKind>,
    pub mode: Option<Mode>,
    pub per_namespace: Option<Budget>,
    pub per_workload: Option<Budget>,
    pub occurrences: Option<Occurrences>,
    pub approvers: Vec<String>,
    /// In-flight caps per class in this namespace.
    pub max_in_flight: BTreeMap<ActionClass, u32>,
    /// Rates per class in this namespace.
    pub rates: BTreeMap<ActionClass, Budget>,
}

/// Check `spec` of the RemediationPolicy `name` in `namespace` against the
/// cluster policy: what it tightens, or every problem with its path
/// (`spec.…`) and why.
pub fn accept(
    namespace: &str,
    name: &str,
    spec: &serde_json::Value,
    cluster: &Policy,
) -> Result<NamespacePolicy, Vec<PolicyIssue>> {
    let spec: RemediationPolicySpec = match serde_path_to_error::deserialize(spec) {
        Ok(s) => s,
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." {
                "spec".to_string()
            } else {
                format!("spec.{path}")
            };
            return Err(vec![PolicyIssue::new(path, e.into_inner().to_string())]);
        }
    };
    let mut issues = Vec::new();
    let mut disabled = Vec::new();
    for (i, d) in spec.disabled.iter().enumerate() {
        match RemediationKind::parse(d) {
            Some(k) => disabled.push(k),
            None => issues.push(PolicyIssue::new(
                format!("spec.disabled[{i}]"),
                format!("unknown remediation {d:?}"),
            )),
        }
    }
    let mode = match spec.mode.as_deref() {
        None => None,
        Some("observe" | "dry-run") => Some(Mode::Observe),
        Some("propose" | "pull-request") => Some(Mode::Propose),
        Some("approve") => Some(Mode::Approve),
        Some("direct") => {
            issues.push(PolicyIssue::new(
                "spec.mode",
                "direct would loosen the cluster policy: a namespace may force observe, propose or approve",
            ));
            None
        }
        Some(other) => {
            issues.push(PolicyIssue::new(
                "spec.mode",
                format!(
                    "unknown mode {other:?}; a namespace may force observe, propose or approve"
                ),
            ));
            None
        }
    };
    let b = &cluster.guard.budgets;
    // `cluster`: the budget or rate it may only lower (`None`: no limit there)
    let mut budget = |path: &str,
                      given: Option<&BudgetSpec>,
                      cluster: Option<Budget>|
     -> Option<Budget> {
        let given = given?;
        let per = match given.per.parse::<PromDuration>() {
            Ok(p) if !p.get().is_zero() => p,
            _ => {
                issues.push(PolicyIssue::new(
                    format!("{path}.per"),
                    format!("{:?} is not a duration such as 10m", given.per),
                ));
                return None;
            }
        };
        // tighter: no more actions, over no shorter a window
        if let Some(cluster) = cluster
            && (given.max > cluster.max || per.get() < cluster.per.get())
        {
            issues.push(PolicyIssue::new(
                path,
                format!(
                    "{} per {per} would loosen the cluster policy's {} per {}: a namespace may only lower a budget",
                    given.max, cluster.max, cluster.per
                ),
            ));
            return None;
        }
        Some(Budget {
            max: given.max,
            per,
        })
    };
    let budgets = spec.budgets.clone().unwrap_or_default();
    let per_namespace = budget(
        "spec.budgets.perNamespace",
        budgets.per_namespace.as_ref(),
        Some(b.per_namespace),
    );
    let per_workload = budget(
        "spec.budgets.perWorkload",
        budgets.per_workload.as_ref(),
        Some(b.per_workload),
    );
    let mut rates = BTreeMap::new();
    for (class, given) in spec.rate.clone().unwrap_or_default().by_class() {
        let key = class.as_str();
        let cluster_rate = cluster.guard.classes.of(class).and_then(|l| l.rate);
        if let Some(r) = budget(&format!("spec.rate.{key}"), given, cluster_rate) {
            rates.insert(class, r);
        }
    }
    let occurrences = match (spec.min_occurrences, spec.window.as_deref()) {
        (None, None) => None,
        (Some(n), _) if n == 0 || n > MAX_MIN_OCCURRENCES => {
            issues.push(PolicyIssue::new(
                "spec.minOccurrences",
                format!("must be between 1 and {MAX_MIN_OCCURRENCES}"),
            ));
            None
        }
        (Some(n), Some(w)) => match w.parse::<PromDuration>() {
            Ok(window)
                if window.get() >= std::time::Duration::from_secs(1)
                    && window.get() <= std::time::Duration::from_secs(24 * 3600) =>
            {
                Some(Occurrences { min: n, window })
            }
            _ => {
                issues.push(PolicyIssue::new(
                    "spec.window",
                    format!("{w:?}: must be a duration between 1s and 24h"),
                ));
                None
            }
        },
        (Some(_), None) => {
            issues.push(PolicyIssue::new(
                "spec.window",
                "required with minOccurrences",
            ));
            None
        }
        (None, Some(_)) => {
            issues.push(PolicyIssue::new(
                "spec.minOccurrences",
                "required with window",
            ));
            None
        }
    };
    let cluster_approvers = &cluster.guard.approval.approvers;
    for (i, a) in spec.approvers.iter().enumerate() {
        if a.trim().is_empty() || a.trim() != a {
            issues.push(PolicyIssue::new(
                format!("spec.approvers[{i}]"),
                "must be a user name as the API server knows it",
            ));
        } else if !cluster_approvers.is_empty() && !cluster_approvers.contains(a) {
            issues.push(PolicyIssue::new(
                format!("spec.approvers[{i}]"),
                format!(
                    "{a} is not among the cluster policy's approvers ({}): a namespace may only narrow who approves",
                    cluster_approvers.join(", ")
                ),
            ));
        }
    }
    let mut max_in_flight = BTreeMap::new();
    for (class, cap) in spec.max_in_flight.unwrap_or_default().by_class() {
        let Some(cap) = cap else { continue };
        let key = class.as_str();
        let cluster_cap = cluster
            .guard
            .classes
            .of(class)
            .and_then(|l| l.max_in_flight);
        match cluster_cap {
            Some(c) if cap > c => issues.push(PolicyIssue::new(
                format!("spec.maxInFlight.{key}"),
                format!(
                    "{cap} would loosen the cluster policy's guard.classes.{key}.maxInFlight {c}: a namespace may only lower it"
                ),
            )),
            _ => {
                max_in_flight.insert(class, cap);
            }
        }
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(NamespacePolicy {
        name: format!("{namespace}/{name}"),
        namespace: namespace.to_string(),
        opt_out: spec.opt_out,
        disabled,
        mode,
        per_namespace,
        per_workload,
        occurrences,
        approvers: spec.approvers,
        max_in_flight,
        rates,
    })
}

/// What the accepted policies of one namespace add up to: the strictest of
/// each (several objects in a namespace tighten together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    /// The objects it comes from (`namespace/name`), for refusals.
    pub names: Vec<String>,
    /// Which object opts the namespace out, if one does.
    pub opt_out: Option<String>,
    /// Each remediation switched off, with the object that does it.
    pub disabled: BTreeMap<RemediationKind, String>,
    pub mode: Option<(Mode, String)>,
    pub per_namespace: Option<(Budget, String)>,
    pub per_workload: Option<(Budget, String)>,
    pub occurrences: Option<Occurrences>,
    /// Who may approve here (empty: as the cluster policy says).
    pub approvers: Vec<String>,
    /// In-flight caps per class here, with the object that sets each.
    pub max_in_flight: BTreeMap<ActionClass, (u32, String)>,
    /// Rates per class here, with the object that sets each.
    pub rates: BTreeMap<ActionClass, (Budget, String)>,
}

fn rung(m: Mode) -> u8 {
    match m {
        Mode::Observe => 0,
        Mode::Propose => 1,
        Mode::Approve => 2,
        Mode::Direct => 3,
    }
}

/// The lower of two rungs.
pub fn lower(a: Mode, b: Mode) -> Mode {
    if rung(b) < rung(a) { b } else { a }
}

fn stricter(a: Budget, b: Budget) -> bool {
    // fewer actions per second allowed
    (a.max as u128) * b.per.get().as_millis() < (b.max as u128) * a.per.get().as_millis()
}

impl Effective {
    /// The strictest of `policies` (all of one namespace), by namespace.
    pub fn by_namespace(policies: &[NamespacePolicy]) -> BTreeMap<String, Effective> {
        let mut out: BTreeMap<String, Effective> = BTreeMap::new();
        let mut sorted: Vec<&NamespacePolicy> = policies.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        for p in sorted {
            let e = out.entry(p.namespace.clone()).or_default();
            e.names.push(p.name.clone());
            if p.opt_out && e.opt_out.is_none() {
                e.opt_out = Some(p.name.clone());
            }
            for k in &p.disabled {
                e.disabled.entry(*k).or_insert_with(|| p.name.clone());
            }
            if let Some(m) = p.mode
                && e.mode.as_ref().is_none_or(|(cur, _)| rung(m) < rung(*cur))
            {
                e.mode = Some((m, p.name.clone()));
            }
            for (mine, theirs) in [
                (&mut e.per_namespace, p.per_namespace),
                (&mut e.per_workload, p.per_workload),
            ] {
                if let Some(b) = theirs
                    && mine.as_ref().is_none_or(|(cur, _)| stricter(b, *cur))
                {
                    *mine = Some((b, p.name.clone()));
                }
            }
            if let Some(o) = p.occurrences
                && e.occurrences.is_none_or(|cur| o.min > cur.min)
            {
                e.occurrences = Some(o);
            }
            for (class, cap) in &p.max_in_flight {
                let e = e
                    .max_in_flight
                    .entry(*class)
                    .or_insert((*cap, p.name.clone()));
                if *cap < e.0 {
                    *e = (*cap, p.name.clone());
                }
            }
            for (class, rate) in &p.rates {
                let mine = e.rates.entry(*class).or_insert((*rate, p.name.clone()));
                if stricter(*rate, mine.0) {
                    *mine = (*rate, p.name.clone());
                }
            }
            if !p.approvers.is_empty() {
                e.approvers = if e.approvers.is_empty() {
                    p.approvers.clone()
                } else {
                    e.approvers
                        .iter()
                        .filter(|a| p.approvers.contains(a))
                        .cloned()
                        .collect()
                };
            }
        }
        out
    }

    /// The namespace (of its first object).
    pub fn namespace(&self) -> &str {
        self.names
            .first()
            .and_then(|n| n.split('/').next())
            .unwrap_or("")
    }

    /// How refusals name it: `RemediationPolicy shop/team`.
    pub fn named(&self) -> String {
        format!("RemediationPolicy {}", self.names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use serde_json::json;

    use super::*;

    fn cluster() -> Policy {
        Policy::from_yaml(
            "guard: {budgets: {perNamespace: {max: 5, per: 5m}, perWorkload: {max: 3, per: 1h}}, approval: {approvers: [alice, bob]}}\nroutes: [{remediation: delete-pod}]",
        )
        .unwrap()
    }

    fn paths(r: Result<NamespacePolicy, Vec<PolicyIssue>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|i| i.path).collect()
    }

    #[test]
    fn a_policy_that_only_tightens_is_accepted() {
        let p = accept(
            "shop",
            "team",
            &json!({"disabled": ["delete-pod"], "mode": "approve",
                "budgets": {"perNamespace": {"max": 1, "per": "10m"}},
                "minOccurrences": 3, "window": "10m", "approvers": ["alice"]}),
            &cluster(),
        )
        .unwrap();
        assert_eq!(p.name, "shop/team");
        assert_eq!(p.disabled, [RemediationKind::DeletePod]);
        assert_eq!(p.mode, Some(Mode::Approve));
        assert_eq!(p.per_namespace.unwrap().max, 1);
        assert_eq!(p.occurrences.unwrap().min, 3);
    }

    #[test]
    fn every_loosening_or_bad_field_is_refused_with_its_path() {
        let p = paths(accept(
            "shop",
            "team",
            &json!({"disabled": ["reboot"], "mode": "direct",
                "budgets": {"perNamespace": {"max": 9, "per": "5m"}, "perWorkload": {"max": 3, "per": "1m"}},
                "minOccurrences": 0, "approvers": ["mallory"]}),
            &cluster(),
        ));
        assert_eq!(
            p,
            [
                "spec.disabled[0]",
                "spec.mode",
                "spec.budgets.perNamespace",
                "spec.budgets.perWorkload",
                "spec.minOccurrences",
                "spec.approvers[0]"
            ]
        );
        // an unknown field, or a wrong type, names the field
        assert_eq!(
            paths(accept("shop", "t", &json!({"colour": 1}), &cluster())),
            ["spec.colour"]
        );
        let p = paths(accept("shop", "t", &json!({"optOut": "yes"}), &cluster()));
        assert_eq!(p, ["spec.optOut"]);
        // a mode it does not know
        assert_eq!(
            paths(accept("shop", "t", &json!({"mode": "yolo"}), &cluster())),
            ["spec.mode"]
        );
    }

    #[test]
    fn class_rates_only_go_down_from_the_clusters_and_add_up_to_the_strictest() {
        let c = Policy::from_yaml(
            "guard: {classes: {namespaces: {rate: {max: 5, per: 10m}}}}\nroutes: [{remediation: delete-pod}]",
        )
        .unwrap();
        let p = accept(
            "shop",
            "t",
            &json!({"rate": {"namespaces": {"max": 1, "per": "1h"}, "pods": {"max": 4, "per": "1m"}}}),
            &c,
        )
        .unwrap();
        let r = p.rates[&ActionClass::Namespaces];
        assert_eq!((r.max, r.per.get().as_secs()), (1, 3600));
        // the cluster sets no rate for pods: any rate is a tightening
        assert_eq!(p.rates[&ActionClass::Pods].max, 4);
        // more actions, or a shorter window, would loosen it
        for loose in [
            json!({"max": 6, "per": "10m"}),
            json!({"max": 5, "per": "5m"}),
        ] {
            assert_eq!(
                paths(accept(
                    "shop",
                    "t",
                    &json!({"rate": {"namespaces": loose}}),
                    &c
                )),
                ["spec.rate.namespaces"]
            );
        }
        assert_eq!(
            paths(accept(
                "shop",
                "t",
                &json!({"rate": {"pods": {"max": 1, "per": "soon"}}}),
                &c
            )),
            ["spec.rate.pods.per"]
        );
        assert_eq!(
            paths(accept(
                "shop",
                "t",
                &json!({"rate": {"nodes": {"max": 1, "per": "1m"}}}),
                &c
            )),
            ["spec.rate.nodes"]
        );
        // two objects: the one allowing fewer actions per second wins
        let a = accept(
            "shop",
            "a",
            &json!({"rate": {"pods": {"max": 2, "per": "1m"}}}),
            &c,
        )
        .unwrap();
        let b = accept(
            "shop",
            "b",
            &json!({"rate": {"pods": {"max": 10, "per": "1h"}}}),
            &c,
        )
        .unwrap();
        let e = &Effective::by_namespace(&[a, b])["shop"];
        let (r, by) = &e.rates[&ActionClass::Pods];
        assert_eq!((r.max, by.as_str()), (10, "shop/b"));
    }

    #[test]
    fn in_flight_caps_only_go_down_from_the_clusters() {
        let c = Policy::from_yaml(
            "guard: {classes: {namespaces: {maxInFlight: 2}}}\nroutes: [{remediation: delete-pod}]",
        )
        .unwrap();
        let p = accept(
            "shop",
            "t",
            &json!({"maxInFlight": {"namespaces": 1, "pods": 3}}),
            &c,
        )
        .unwrap();
        assert_eq!(p.max_in_flight[&ActionClass::Namespaces], 1);
        // the cluster sets no cap on pods: any number is a tightening
        assert_eq!(p.max_in_flight[&ActionClass::Pods], 3);
        assert_eq!(
            paths(accept(
                "shop",
                "t",
                &json!({"maxInFlight": {"namespaces": 5}}),
                &c
            )),
            ["spec.maxInFlight.namespaces"]
        );
        assert_eq!(
            paths(accept(
                "shop",
                "t",
                &json!({"maxInFlight": {"nodes": 1}}),
                &c
            )),
            ["spec.maxInFlight.nodes"]
        );
        let a = accept("shop", "a", &json!({"maxInFlight": {"pods": 3}}), &c).unwrap();
        let e = Effective::by_namespace(&[p, a]);
        assert_eq!(
            e["shop"].max_in_flight[&ActionClass::Pods],
            (3, "shop/a".to_string())
        );
        assert_eq!(e["shop"].max_in_flight[&ActionClass::Namespaces].0, 1);
    }

    #[test]
    fn several_policies_in_a_namespace_add_up_to_the_strictest() {
        let c = cluster();
        let a = accept("shop", "a", &json!({"mode": "approve", "budgets": {"perNamespace": {"max": 2, "per": "10m"}}, "approvers": ["alice", "bob"]}), &c).unwrap();
        let b = accept("shop", "b", &json!({"mode": "observe", "budgets": {"perNamespace": {"max": 3, "per": "10m"}}, "approvers": ["bob"], "disabled": ["evict-pod"]}), &c).unwrap();
        let o = accept("other", "x", &json!({"optOut": true}), &c).unwrap();
        let e = Effective::by_namespace(&[a, b, o]);
        let shop = &e["shop"];
        assert_eq!(shop.mode, Some((Mode::Observe, "shop/b".into())));
        assert_eq!(shop.per_namespace.as_ref().unwrap().0.max, 2);
        assert_eq!(shop.approvers, ["bob"]);
        assert_eq!(shop.disabled[&RemediationKind::EvictPod], "shop/b");
        assert_eq!(shop.opt_out, None);
        assert_eq!(e["other"].opt_out.as_deref(), Some("other/x"));
        assert_eq!(shop.named(), "RemediationPolicy shop/a, shop/b");
        assert_eq!(lower(Mode::Direct, Mode::Approve), Mode::Approve);
        assert_eq!(lower(Mode::Observe, Mode::Approve), Mode::Observe);
    }
}
