//! The guard's first pass, before anything is read from the cluster: the rules
//! guard state alone decides (another cluster's alert, a switched-off
//! remediation, protected and excluded namespaces, class rates and mass flips,
//! escalation latches, cooldowns, budgets). A plan refused here costs no API
//! request; a plan it lets through still meets [`Guard::check`] with the live
//! facts before anything is done, so the guard stays the one authority.
//!
//! Owns: [`Guard::precheck`] (read-only) and [`Guard::note_refusal`] (what
//! `check` would have remembered of such a refusal). Must not refuse anything
//! `check` would allow: a refusal here is the refusal `check` gives the same
//! plan, reason and sentence, when nothing live contradicts it. Where `check`
//! would change the guard's memory (a new escalation, a target's first sighting
//! in a mass-flip window) precheck stands aside and lets `check` run.

use jiff::Timestamp;

use super::{ActionClass, Guard, Refusal, RefusalReason, since, wrong_cluster};
use crate::duration::PromDuration;
use crate::facts::Facts;
use crate::plan::Plan;
use crate::remediation::Remediation;
use crate::target::TargetKind;

impl Guard {
    /// What the guard can refuse `plan` for at `now` without reading the live
    /// cluster, or `None` when it cannot tell (or would let it pass). Never
    /// changes the guard. `plan` is as `check` would see it: the caller puts
    /// in the owning workload when it knows it; a pod plan without one is
    /// judged only by the rules that do not depend on its owner.
    pub fn precheck(&self, plan: &Plan, now: Timestamp) -> Option<Refusal> {
        if let Some(r) = wrong_cluster(&self.cfg, plan.trigger.source, &plan.trigger.labels) {
            return Some(r);
        }
        let kind = plan.kind();
        if !kind.is_mutating() {
            return None;
        }
        if !self.enabled(kind) {
            return Some(Refusal::new(
                RefusalReason::Disabled,
                format!(
                    "{kind} is switched off (features; enable it in the policy or with an --enable flag)"
                ),
            ));
        }
        // a window or a hold needs no live read: refused before any
        if let Some(r) = self
            .paused_refusal()
            .or_else(|| self.holds.refusal(plan, now))
        {
            return Some(r);
        }
        let target = plan.target.as_ref()?;
        if let TargetKind::Custom(rt) = &target.kind {
            // discovery says whether it is namespaced (a cluster-scoped
            // object is in no namespace, whatever the signal said), and
            // whether a route without a type may clean it up
            let routed =
                matches!(&plan.remediation, Remediation::CleanupResource(p) if !p.kind.is_empty());
            let cleanup = matches!(&plan.remediation, Remediation::CleanupResource(_));
            if target.namespace.is_some()
                || (cleanup
                    && !routed
                    && crate::remediation::cleanup_resource::forbidden(rt).is_none())
            {
                return None;
            }
        }
        if let Some(r) = self.cleanup_type(plan, &Facts::unknown()) {
            return Some(r);
        }
        if let Some(r) = self.protection.refusal(plan.namespace(), None, &[], None) {
            return Some(r);
        }

        let class = ActionClass::of(plan);
        if let Some(r) = self.class_refusal(plan, class, now) {
            return r;
        }

        let key = plan.workload_key();
        // a pod's cooldown, budget and escalation count against its owner,
        // which only the live read tells for sure
        let key_known = plan.workload.is_some() || target.kind != TargetKind::Pod;
        if key_known {
            if let Some(at) = self.escalated.get(&(key.clone(), kind)) {
                let cleared_by: Vec<&str> = self
                    .cfg
                    .escalation
                    .cleared_by
                    .iter()
                    .map(|b| b.as_str())
                    .collect();
                return Some(Refusal::new(
                    RefusalReason::Escalated,
                    format!(
                        "{kind} on {key} was escalated at {at} and stays escalated until cleared ({})",
                        cleared_by.join(", ")
                    ),
                ));
            }
            let esc = &self.cfg.escalation;
            let recovered_at = self.recoveries.get(&key).copied();
            let repeats = self
                .actions
                .iter()
                .filter(|a| a.key == key && a.kind == kind)
                .filter(|a| since(now, a.at) < esc.within.get())
                .filter(|a| recovered_at.is_none_or(|r| a.at > r))
                .count();
            if repeats >= esc.after as usize {
                // `check` escalates now, and keeps the event: let it
                return None;
            }
            // as `check` counts it
            if let Some(r) = self.cooldown_refusal(plan, &key, now) {
                return Some(r);
            }
        }
        if kind.is_declarative() {
            return None;
        }
        let b = &self.cfg.budgets;
        let count = |pred: &dyn Fn(&super::ActionRecord) -> bool, per: PromDuration| {
            self.actions
                .iter()
                .filter(|a| !a.kind.is_declarative() && since(now, a.at) < per.get() && pred(a))
                .count()
        };
        if key_known {
            let n = count(&|a| a.key == key, b.per_workload.per);
            if n >= b.per_workload.max as usize {
                return Some(Refusal::new(
                    RefusalReason::WorkloadBudget,
                    format!("{n} actions on {key} in the last {}", b.per_workload.per),
                ));
            }
        }
        if let Some(ns) = plan.namespace() {
            let n = count(&|a| a.namespace.as_deref() == Some(ns), b.per_namespace.per);
            if n >= b.per_namespace.max as usize {
                return Some(Refusal::new(
                    RefusalReason::NamespaceBudget,
                    format!(
                        "{n} actions in namespace {ns} in the last {}",
                        b.per_namespace.per
                    ),
                ));
            }
        }
        let n = count(&|_| true, b.global.per);
        if n >= b.global.max as usize {
            return Some(Refusal::new(
                RefusalReason::GlobalBudget,
                format!("{n} actions in the last {}", b.global.per),
            ));
        }
        None
    }

    /// The class breakers guard state decides (the mass flip, the class
    /// rate): `Some(None)` when `check` would note `plan`'s target as a new
    /// flip (precheck stands aside), `Some(Some(r))` for a refusal, `None` to
    /// go on. Node counts (partition, in flight) need the live cluster and
    /// are left to `check`.
    fn class_refusal(
        &self,
        plan: &Plan,
        class: ActionClass,
        now: Timestamp,
    ) -> Option<Option<Refusal>> {
        let target = plan
            .target
            .as_ref()
            .map_or_else(|| plan.workload_key(), |t| t.key());
        if let (Some(m), _) = self.limits_of(class) {
            // as `check` sees the window: the aged sightings at its front dropped
            let window: Vec<&String> = self
                .flips
                .get(&class)
                .into_iter()
                .flatten()
                .skip_while(|(at, _)| since(now, *at) >= m.within.get())
                .map(|(_, k)| k)
                .collect();
            if !window.contains(&&target) {
                return Some(None);
            }
            if let Some(r) = Guard::mass_flip_refusal(class, window.len(), m) {
                return Some(Some(r));
            }
        }
        if let Some(r) = self.in_flight_refusal(class, &plan.workload_key(), now) {
            return Some(Some(r));
        }
        if let Some(r) = self.rate_refusal(class, now) {
            return Some(Some(r));
        }
        None
    }

    /// Remember what `check` would have remembered had it given `plan` the
    /// `refusal` that [`Guard::precheck`] gave at `now`: a breaker's episode
    /// (its start and the targets it held) for the refusals that stand a
    /// class down. Nothing else: precheck refuses only where `check` would
    /// change nothing more.
    pub fn note_refusal(&mut self, plan: &Plan, refusal: &Refusal, now: Timestamp) {
        if matches!(
            refusal.reason,
            RefusalReason::MassFlip
                | RefusalReason::ClassInFlight
                | RefusalReason::ClassRate
                | RefusalReason::GlobalBudget
        ) {
            let class = ActionClass::of(plan);
            let _ = self.stand_down(class, plan, refusal.clone(), now);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use proptest::prelude::*;

    use super::*;
    use crate::detect::{Features, Profile};
    use crate::facts::ObjectMeta;
    use crate::guard::{Decision, RecoveryBy, Verdict};
    use crate::plan::WorkloadRef;
    use crate::policy::{Budget, ClassLimits, GuardConfig, MassFlip, Policy, Threshold};
    use crate::testutil::signal;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn plan_for(labels: &[(&str, &str)], route: &str) -> Plan {
        let p = Policy::from_yaml(&format!("routes: [{route}]")).unwrap();
        Plan::build(&signal(labels), &p.routes[0]).unwrap()
    }

    fn refusal(d: &Decision) -> Option<&Refusal> {
        match &d.verdict {
            Verdict::Refuse(r) => Some(r),
            Verdict::Allow { .. } => None,
        }
    }

    /// A plan of one kind about one of a few targets.
    #[derive(Debug, Clone)]
    enum Probe {
        /// delete-pod of pod `pod` of Deployment `w` in namespace `ns`;
        /// `owned`: the plan already carries its owner.
        Pod {
            ns: u8,
            w: u8,
            pod: u8,
            owned: bool,
        },
        /// bump-memory (declarative) on a pod of Deployment `w`.
        Bump {
            ns: u8,
            w: u8,
            owned: bool,
        },
        Drain {
            node: u8,
        },
        DeleteNamespace {
            ns: u8,
        },
        /// cleanup-resource of a cluster-scoped custom resource; `typed`:
        /// the route names its type.
        Cleanup {
            name: u8,
            typed: bool,
        },
        Notify {
            ns: u8,
        },
    }

    const NAMESPACES: [&str; 4] = ["shop", "kube-system", "ci-1", "heal8s"];

    fn probe() -> impl Strategy<Value = Probe> {
        prop_oneof![
            6 => (0u8..4, 0u8..3, 0u8..6, any::<bool>())
                .prop_map(|(ns, w, pod, owned)| Probe::Pod { ns, w, pod, owned }),
            1 => (0u8..4, 0u8..3, any::<bool>()).prop_map(|(ns, w, owned)| Probe::Bump { ns, w, owned }),
            2 => (0u8..4).prop_map(|node| Probe::Drain { node }),
            1 => (0u8..4).prop_map(|ns| Probe::DeleteNamespace { ns }),
            1 => (0u8..3, any::<bool>()).prop_map(|(name, typed)| Probe::Cleanup { name, typed }),
            1 => (0u8..4).prop_map(|ns| Probe::Notify { ns }),
        ]
    }

    fn owner(ns: &str, w: u8) -> WorkloadRef {
        WorkloadRef {
            kind: "Deployment".into(),
            namespace: Some(ns.into()),
            name: format!("w{w}"),
        }
    }

    /// The plan of `p`, and the owner the live cluster would tell for it.
    fn build(p: &Probe) -> (Plan, Option<WorkloadRef>) {
        let pod = |ns: u8, w: u8, pod: u8, route: &str, owned: bool| {
            let ns = NAMESPACES[ns as usize];
            let mut plan = plan_for(
                &[
                    ("alertname", "A"),
                    ("namespace", ns),
                    ("pod", &format!("w{w}-{pod}")),
                    ("container", "app"),
                ],
                route,
            );
            if owned {
                plan.workload = Some(owner(ns, w));
            }
            (plan, Some(owner(ns, w)))
        };
        match *p {
            Probe::Pod {
                ns,
                w,
                pod: n,
                owned,
            } => pod(ns, w, n, "{remediation: delete-pod}", owned),
            Probe::Bump { ns, w, owned } => pod(
                ns,
                w,
                0,
                "{remediation: bump-memory, mode: pull-request}",
                owned,
            ),
            Probe::Drain { node } => (
                plan_for(
                    &[("alertname", "NodeDown"), ("node", &format!("n{node}"))],
                    "{remediation: drain-node}",
                ),
                None,
            ),
            Probe::DeleteNamespace { ns } => (
                plan_for(
                    &[
                        ("alertname", "Stale"),
                        ("namespace", NAMESPACES[ns as usize]),
                    ],
                    "{remediation: delete-namespace, params: {namePattern: 'shop|kube-system|ci-1|heal8s'}}",
                ),
                None,
            ),
            Probe::Cleanup { name, typed } => {
                let route = if typed {
                    "{remediation: cleanup-resource, params: {apiVersion: example.io/v1, kind: Widget}}"
                } else {
                    "{remediation: cleanup-resource}"
                };
                (
                    plan_for(
                        &[
                            ("alertname", "Stale"),
                            ("customresource_group", "example.io"),
                            ("customresource_version", "v1"),
                            ("customresource_kind", "Widget"),
                            ("name", &format!("x{name}")),
                        ],
                        route,
                    ),
                    None,
                )
            }
            Probe::Notify { ns } => (
                plan_for(
                    &[
                        ("alertname", "A"),
                        ("namespace", NAMESPACES[ns as usize]),
                        ("pod", "p"),
                    ],
                    "{remediation: notify-only}",
                ),
                None,
            ),
        }
    }

    /// One step of a guard's history.
    #[derive(Debug, Clone)]
    enum Step {
        /// `check`, and `record` when allowed (what the pipeline does).
        Act(Probe),
        Verified {
            ns: u8,
            w: u8,
        },
        Cleared {
            ns: u8,
            w: u8,
        },
    }

    fn step() -> impl Strategy<Value = (Step, u16)> {
        let s = prop_oneof![
            8 => probe().prop_map(Step::Act),
            1 => (0u8..4, 0u8..3).prop_map(|(ns, w)| Step::Verified { ns, w }),
            1 => (0u8..4, 0u8..3).prop_map(|(ns, w)| Step::Cleared { ns, w }),
        ];
        (s, 0u16..400)
    }

    /// A policy with small limits, so histories reach them.
    fn config() -> impl Strategy<Value = GuardConfig> {
        (
            1u32..4,
            1u32..6,
            1u32..8,
            1u32..4,
            0u64..400,
            any::<bool>(),
            any::<bool>(),
            1u32..4,
        )
            .prop_map(
                |(ns, global, wl, after, cooldown, pod_limits, dry, flips)| {
                    let mut c = GuardConfig {
                        dry_run: dry,
                        cooldown: PromDuration::secs(cooldown),
                        excluded_namespaces: vec!["ci-.*".into()],
                        ..GuardConfig::default()
                    };
                    c.escalation.after = after;
                    c.escalation.within = PromDuration::secs(1800);
                    c.budgets.global = Budget {
                        max: global,
                        per: PromDuration::secs(300),
                    };
                    c.budgets.per_namespace = Budget {
                        max: ns,
                        per: PromDuration::secs(300),
                    };
                    c.budgets.per_workload = Budget {
                        max: wl,
                        per: PromDuration::secs(900),
                    };
                    c.nodes.max_unhealthy = Threshold::Percent(100);
                    c.nodes.rate = Budget {
                        max: 2,
                        per: PromDuration::secs(600),
                    };
                    c.nodes.mass_flip = MassFlip {
                        targets: flips,
                        within: PromDuration::secs(300),
                    };
                    if pod_limits {
                        c.classes.pods = ClassLimits {
                            max_in_flight: Some(flips + 1),
                            rate: Some(Budget {
                                max: 3,
                                per: PromDuration::secs(120),
                            }),
                            mass_flip: Some(MassFlip {
                                targets: flips + 2,
                                within: PromDuration::secs(200),
                            }),
                        };
                    }
                    c
                },
            )
    }

    fn guard(c: &GuardConfig, features: &Features) -> Guard {
        Guard::new(c, features, "heal8s").unwrap()
    }

    /// `check` with the live facts (`owner` completes a pod plan, as the
    /// pipeline does), then `record` when allowed.
    fn act(g: &mut Guard, plan: &Plan, owner: Option<&WorkloadRef>, now: Timestamp) -> Decision {
        let mut plan = plan.clone();
        if plan.workload.is_none() {
            plan.workload = owner.cloned();
        }
        let d = g.check(&plan, &Facts::unknown(), now);
        if refusal(&d).is_none()
            && let Some(started) = g.record(&plan, now)
        {
            // the cooldown counts from the end, as the pipeline says it
            g.ended(&started, now);
        }
        d
    }

    fn run(g: &mut Guard, s: &Step, now: Timestamp) -> Option<RefusalReason> {
        match s {
            Step::Act(p) => {
                let (plan, owner) = build(p);
                refusal(&act(g, &plan, owner.as_ref(), now)).map(|r| r.reason)
            }
            Step::Verified { ns, w } => {
                let key = owner(NAMESPACES[*ns as usize], *w).key();
                g.settle(&key, crate::remediation::RemediationKind::DeletePod, now);
                g.record_recovery(&key, RecoveryBy::Verified, now);
                None
            }
            Step::Cleared { ns, w } => {
                g.record_recovery(
                    &owner(NAMESPACES[*ns as usize], *w).key(),
                    RecoveryBy::Human,
                    now,
                );
                None
            }
        }
    }

    fn features(all: bool) -> Features {
        let mut f = Features::for_profile(Profile::TestCluster);
        if !all {
            f.drain_nodes = false;
        }
        f
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Whatever the guard remembers, a plan precheck refuses is refused by
        /// `check` for the same reason and in the same words when nothing live
        /// says otherwise; and once `note_refusal` has run, the guard that
        /// prechecked and the guard that checked decide everything after alike.
        #[test]
        fn precheck_refuses_only_what_check_refuses_and_leaves_the_guard_as_check_would(
            cfg in config(),
            all_features in any::<bool>(),
            history in proptest::collection::vec(step(), 0..40),
            probe in probe(),
            after in proptest::collection::vec(step(), 1..12),
        ) {
            let f = features(all_features);
            let (mut pre, mut full) = (guard(&cfg, &f), guard(&cfg, &f));
            let mut now = 0i64;
            for (s, dt) in &history {
                now += i64::from(*dt);
                run(&mut pre, s, t(now));
                run(&mut full, s, t(now));
            }
            now += 1;
            let (plan, live_owner) = build(&probe);
            let early = pre.precheck(&plan, t(now));
            let checked = act(&mut full, &plan, live_owner.as_ref(), t(now));
            match &early {
                Some(r) => {
                    prop_assert!(refusal(&checked).is_some(), "precheck refused {r:?}, check allowed {plan:?}");
                    // a pod plan without its owner is judged without the
                    // owner's rules; check may refuse it for one of those first
                    let owner_rules = plan.workload.is_none()
                        && matches!(probe, Probe::Pod { .. } | Probe::Bump { .. });
                    if !owner_rules {
                        prop_assert_eq!(Some(r), refusal(&checked));
                    }
                    pre.note_refusal(&plan, r, t(now));
                    if !owner_rules {
                        prop_assert_eq!(pre.breakers(), full.breakers());
                    }
                }
                None => {
                    // precheck stood aside: the pipeline checks with facts
                    act(&mut pre, &plan, live_owner.as_ref(), t(now));
                    prop_assert_eq!(pre.breakers(), full.breakers());
                }
            }
            let exact = early.is_none()
                || plan.workload.is_some()
                || !matches!(probe, Probe::Pod { .. } | Probe::Bump { .. });
            if exact {
                for (s, dt) in &after {
                    now += i64::from(*dt);
                    let a = run(&mut pre, s, t(now));
                    let b = run(&mut full, s, t(now));
                    prop_assert_eq!(a, b, "after {:?} at {}", s, now);
                    prop_assert_eq!(pre.breakers(), full.breakers());
                }
            }
        }

        /// Whatever the live cluster says (opt-outs on the object, its
        /// owners or its namespace; the pod's owner), a plan precheck refused
        /// is refused by `check` too.
        #[test]
        fn precheck_never_refuses_what_check_would_allow_whatever_the_live_facts(
            cfg in config(),
            history in proptest::collection::vec(step(), 0..40),
            probe in probe(),
            opt_out in 0u8..4,
        ) {
            let f = features(true);
            let (mut pre, mut full) = (guard(&cfg, &f), guard(&cfg, &f));
            let mut now = 0i64;
            for (s, dt) in &history {
                now += i64::from(*dt);
                run(&mut pre, s, t(now));
                run(&mut full, s, t(now));
            }
            now += 1;
            let (plan, live_owner) = build(&probe);
            let Some(r) = pre.precheck(&plan, t(now)) else {
                return Ok(());
            };
            let ignore = ObjectMeta {
                labels: [(crate::guard::OPT_OUT_KEY.to_string(), "true".to_string())].into(),
                ..ObjectMeta::default()
            };
            let facts = Facts {
                object: (opt_out == 1).then(|| ignore.clone()),
                owners: if opt_out == 2 {
                    vec![("Deployment shop/w0".into(), ignore.clone())]
                } else {
                    Vec::new()
                },
                namespace: (opt_out == 3).then_some(ignore),
                owner: live_owner.clone(),
                ..Facts::default()
            };
            let mut completed = plan.clone();
            if completed.workload.is_none() {
                completed.workload = live_owner;
            }
            let d = full.check(&completed, &facts, t(now));
            prop_assert!(refusal(&d).is_some(), "precheck refused {r:?}; check allowed with {facts:?}");
        }
    }

    #[test]
    fn a_storm_past_its_budget_is_refused_without_the_live_cluster() {
        let mut c = GuardConfig::default();
        c.budgets.global = Budget {
            max: 2,
            per: PromDuration::secs(60),
        };
        let f = features(true);
        let mut g = guard(&c, &f);
        let pod = |ns: &str, w: u8, n: u8, owned: bool| {
            build(&Probe::Pod {
                ns: NAMESPACES.iter().position(|x| *x == ns).unwrap() as u8,
                w,
                pod: n,
                owned,
            })
            .0
        };
        assert_eq!(g.precheck(&pod("shop", 0, 0, false), t(0)), None);
        act(
            &mut g,
            &pod("shop", 0, 0, false),
            Some(&owner("shop", 0)),
            t(0),
        );
        act(
            &mut g,
            &pod("shop", 1, 0, false),
            Some(&owner("shop", 1)),
            t(1),
        );
        // a pod of an acted-on workload, its owner known: cooldown, at once
        let r = g.precheck(&pod("shop", 0, 1, true), t(2)).unwrap();
        assert_eq!(r.reason, RefusalReason::Cooldown);
        assert!(r.message.contains("Deployment/shop/w0"), "{}", r.message);
        // any other pod: the global budget, owner known or not
        for owned in [false, true] {
            let r = g.precheck(&pod("shop", 2, 0, owned), t(3)).unwrap();
            assert_eq!(r.reason, RefusalReason::GlobalBudget);
        }
        // protected namespaces, before anything else
        let r = g.precheck(&pod("kube-system", 0, 0, false), t(3)).unwrap();
        assert_eq!(r.reason, RefusalReason::ProtectedNamespace);
        // the budget frees after its window
        assert_eq!(g.precheck(&pod("shop", 2, 0, false), t(61)), None);
    }

    #[test]
    fn precheck_stands_aside_where_check_would_remember_something_new() {
        let mut c = GuardConfig {
            cooldown: PromDuration::secs(1),
            ..GuardConfig::default()
        };
        c.escalation.after = 1;
        c.budgets.per_workload.max = 100;
        c.nodes.mass_flip = MassFlip {
            targets: 1,
            within: PromDuration::secs(300),
        };
        c.nodes.max_unhealthy = Threshold::Percent(100);
        let f = features(true);
        let mut g = guard(&c, &f);
        let (pod, own) = build(&Probe::Pod {
            ns: 0,
            w: 0,
            pod: 0,
            owned: true,
        });
        act(&mut g, &pod, own.as_ref(), t(0));
        // the next one escalates: `check` must run to keep the event
        assert_eq!(g.precheck(&pod, t(10)), None);
        let d = act(&mut g, &pod, own.as_ref(), t(10));
        assert!(d.newly_escalated, "{d:?}");
        // then the latch refuses without the live cluster
        assert_eq!(
            g.precheck(&pod, t(20)).map(|r| r.reason),
            Some(RefusalReason::Escalated)
        );
        // a node never seen in the mass-flip window: `check` notes it
        let (n0, _) = build(&Probe::Drain { node: 0 });
        let (n1, _) = build(&Probe::Drain { node: 1 });
        assert_eq!(g.precheck(&n0, t(30)), None);
        act(&mut g, &n0, None, t(30));
        assert_eq!(g.precheck(&n1, t(31)), None);
        let d = act(&mut g, &n1, None, t(31));
        assert_eq!(refusal(&d).map(|r| r.reason), Some(RefusalReason::MassFlip));
        // both are in the window now: precheck refuses, and notes the episode
        let r = g.precheck(&n1, t(32)).unwrap();
        assert_eq!(r.reason, RefusalReason::MassFlip);
        g.note_refusal(&n1, &r, t(32));
        assert_eq!(g.breakers().len(), 1);
    }
}
