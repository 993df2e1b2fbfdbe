use super::*;
use crate::ledger::{GuardEvent, PastEvent};
use crate::outcome::PullRequestRef;
use crate::policy::Policy;
use crate::testutil::signal;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// A plan of `remediation` for a crash-looping pod `ns/name` of Deployment `api`.
pub(crate) fn plan(remediation: &str, ns: &str, name: &str) -> Plan {
    let policy = Policy::from_yaml(&format!(
        "routes:\n  - name: r\n    matchers: ['alertname=\"KubePodCrashLooping\"']\n    remediation: {remediation}\n"
    ))
    .unwrap();
    let mut s = signal(&[
        ("alertname", "KubePodCrashLooping"),
        ("namespace", ns),
        ("pod", name),
    ]);
    s.evidence.reason = Some("CrashLoopBackOff".into());
    s.evidence.restart_count = Some(7);
    s.annotations.insert(
        "runbook_url".into(),
        "https://runbooks.example/crashloop".into(),
    );
    let mut p = Plan::build(&s, &policy.routes[0]).unwrap();
    p.workload = Some(crate::plan::WorkloadRef {
        kind: "Deployment".into(),
        namespace: Some(ns.into()),
        name: "api".into(),
    });
    p
}

/// A notice of `event` about pod `ns/name`.
pub(crate) fn notice(event: Event, ns: &str, name: &str) -> Notice {
    let p = plan("delete-pod", ns, name);
    let mut n = Notice::of_plan(
        event,
        &p,
        t(0),
        "acted",
        "deleted",
        Context {
            cluster: Some("prod"),
            dashboard_url: None,
        },
    );
    n.severity = Severity::Info;
    n
}

fn outcome(result: OutcomeKind, plan: Plan, at: Timestamp) -> Outcome {
    let ledger = if result == OutcomeKind::Acted {
        vec![PastEvent {
            at,
            event: GuardEvent::Action {
                key: plan.workload_key(),
                namespace: plan.namespace().map(str::to_string),
                remediation: plan.kind(),
                class: Some(ActionClass::of(&plan)),
            },
        }]
    } else {
        Vec::new()
    };
    Outcome {
        at,
        source: SourceKind::Alert,
        name: "KubePodCrashLooping".into(),
        fingerprint: "f".into(),
        status: crate::alertmanager::AlertStatus::Firing,
        target: plan.target.as_ref().map(ToString::to_string),
        route: Some(plan.route.clone()),
        remediation: Some(plan.kind()),
        mode: Some(plan.mode),
        result,
        reason: None,
        escalated: false,
        message: "deleted pod shop/api-1".into(),
        pull_request: None,
        deferred: None,
        plan: Some(plan),
        ledger,
        deleted: None,
        cluster: None,
        approved_by: None,
        trace: None,
    }
}

fn notifications(yaml: &str) -> Notifications {
    let v: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    let n: Notifications = serde_json::from_value(v).unwrap();
    assert!(n.validate().is_empty(), "{:?}", n.validate());
    n
}

const TWO: &str = r#"
receivers:
- name: chat
  slack: {url: {env: SLACK_URL}}
- name: pager
  pagerduty: {routingKey: {env: PD_KEY}}
routes:
- matchers: ['severity=~"high|critical"']
  receivers: [pager]
  continue: true
- receivers: [chat]
"#;

#[test]
fn an_action_says_what_where_why_and_links_its_runbook_and_record() {
    let o = outcome(
        OutcomeKind::Acted,
        plan("delete-pod", "shop", "api-1"),
        t(0),
    );
    let cx = Context {
        cluster: Some("prod-eu"),
        dashboard_url: Some("https://heal8s.example/ui/"),
    };
    let n = Notice::of_outcome(&o, cx).unwrap();
    assert_eq!(n.event, Event::Acted);
    assert_eq!(n.title, "Done: delete Pod shop/api-1");
    assert_eq!(n.namespace.as_deref(), Some("shop"));
    assert_eq!(
        (n.kind.as_deref(), n.name.as_deref()),
        (Some("Pod"), Some("api-1"))
    );
    assert_eq!(n.signal, "KubePodCrashLooping");
    assert_eq!(n.evidence["reason"], "CrashLoopBackOff");
    assert_eq!(n.evidence["restarts"], "7");
    assert_eq!(
        n.links.runbook.as_deref(),
        Some("https://runbooks.example/crashloop")
    );
    let record = n.record.clone().unwrap();
    assert!(record.starts_with("delete-pod-pod-api-1-"), "{record}");
    assert_eq!(
        n.links.record,
        Some(format!("https://heal8s.example/ui#{record}"))
    );
    assert_eq!(n.key, "Deployment/shop/api");
    assert_eq!(n.dedup_key(), "heal8s/prod-eu/Deployment/shop/api");
}

#[test]
fn only_outcomes_that_matter_are_told() {
    let p = || plan("delete-pod", "shop", "api-1");
    let cx = Context {
        cluster: None,
        dashboard_url: None,
    };
    let of = |o: &Outcome| Notice::of_outcome(o, cx).map(|n| n.event);
    assert_eq!(
        of(&outcome(OutcomeKind::Acted, p(), t(0))),
        Some(Event::Acted)
    );
    assert_eq!(
        of(&outcome(OutcomeKind::Observed, p(), t(0))),
        Some(Event::Observed)
    );
    assert_eq!(
        of(&outcome(OutcomeKind::Failed, p(), t(0))),
        Some(Event::Failed)
    );
    for r in [
        OutcomeKind::Deduped,
        OutcomeKind::Resolved,
        OutcomeKind::Deferred,
    ] {
        assert_eq!(of(&outcome(r, p(), t(0))), None, "{r:?}");
    }
    let mut refused = outcome(OutcomeKind::Refused, p(), t(0));
    for (reason, told) in [
        (RefusalReason::Cooldown, None),
        (RefusalReason::ProtectedNamespace, None),
        (RefusalReason::Disabled, None),
        (RefusalReason::ConditionCleared, None),
        (RefusalReason::Escalated, None),
        (RefusalReason::GlobalBudget, Some(Event::Refused)),
        (RefusalReason::Partition, Some(Event::Refused)),
        (RefusalReason::ClassRate, Some(Event::Refused)),
        (RefusalReason::FactsUnavailable, Some(Event::Refused)),
    ] {
        refused.reason = Some(reason);
        assert_eq!(of(&refused), told, "{reason:?}");
    }
    refused.reason = Some(RefusalReason::Escalated);
    refused.escalated = true;
    assert_eq!(of(&refused), Some(Event::Escalated), "the first escalation");
    // a pull request opened or updated, not one left unchanged
    let mut pr = outcome(
        OutcomeKind::Acted,
        plan("rollback-image", "shop", "api-1"),
        t(0),
    );
    pr.pull_request = Some(PullRequestRef {
        repository: "o/r".into(),
        number: 7,
        url: "https://github.com/o/r/pull/7".into(),
        branch: "b".into(),
        head_sha: "s".into(),
        action: "created".into(),
    });
    let n = Notice::of_outcome(&pr, cx).unwrap();
    assert_eq!(n.event, Event::PullRequest);
    assert_eq!(
        n.links.pull_request.as_deref(),
        Some("https://github.com/o/r/pull/7")
    );
    pr.pull_request.as_mut().unwrap().action = "unchanged".into();
    assert_eq!(of(&pr), None);
    // no plan, nothing to tell (no route, a malformed alert)
    let mut bare = outcome(OutcomeKind::Refused, p(), t(0));
    bare.plan = None;
    bare.reason = Some(RefusalReason::GlobalBudget);
    assert_eq!(of(&bare), None);
}

#[test]
fn hostile_alert_text_stays_on_one_line_and_bad_links_are_dropped() {
    let mut p = plan("delete-pod", "shop", "api-1");
    p.trigger.name = format!("X\n<!channel> *pwned*{}", "y".repeat(5000));
    p.trigger.runbook_url = Some("javascript:alert(1)".into());
    p.trigger.generator_url = Some("https://user:pw@evil.example/".into());
    p.evidence
        .details
        .insert("k\u{202e}".into(), "v\r\nSubject: x".into());
    let n = Notice::of_outcome(
        &outcome(OutcomeKind::Acted, p, t(0)),
        Context {
            cluster: None,
            dashboard_url: None,
        },
    )
    .unwrap();
    assert!(!n.signal.contains('\n'), "{}", n.signal);
    assert!(n.signal.chars().count() <= MAX_VALUE);
    assert_eq!(n.links.runbook, None);
    assert_eq!(n.links.source, None);
    for (k, v) in &n.evidence {
        assert!(!k.chars().any(crate::text::hazardous), "{k:?}");
        assert!(!v.chars().any(crate::text::hazardous), "{v:?}");
    }
}

#[test]
fn severity_rises_with_repeats_and_routes_page_only_the_loud_ones() {
    let mut nf = Notifier::new(notifications(TWO), Some("prod".into()));
    let told = |nf: &mut Notifier, at: i64| {
        nf.outcome(
            &outcome(
                OutcomeKind::Acted,
                plan("delete-pod", "shop", "api-1"),
                t(at),
            ),
            t(at),
        )
        .unwrap()
    };
    let (n, to) = told(&mut nf, 0);
    assert_eq!((n.severity, to), (Severity::Info, vec!["chat".to_string()]));
    let (n, to) = told(&mut nf, 60);
    assert_eq!(
        n.severity,
        Severity::High,
        "the second time within the hour"
    );
    assert_eq!(to, vec!["pager".to_string(), "chat".to_string()]);
    told(&mut nf, 120);
    let (n, _) = told(&mut nf, 180);
    assert_eq!(n.severity, Severity::Critical);
    // a failed action is at least a warning even the first time
    let mut other = plan("delete-pod", "web", "w-1");
    other.workload = None;
    let (n, to) = nf
        .outcome(&outcome(OutcomeKind::Failed, other, t(200)), t(200))
        .unwrap();
    assert_eq!(
        (n.severity, to),
        (Severity::Warning, vec!["chat".to_string()])
    );
}

#[test]
fn a_recovery_is_told_as_loud_as_the_problem_so_the_pager_hears_it() {
    let mut nf = Notifier::new(notifications(TWO), None);
    let p = plan("delete-pod", "shop", "api-1");
    for at in [0, 60] {
        nf.outcome(&outcome(OutcomeKind::Acted, p.clone(), t(at)), t(at));
    }
    let ok = Verification {
        result: VerifyResult::Recovered,
        message: "ready for 60s".into(),
    };
    let (n, to) = nf.verification(&p, &ok, t(200)).unwrap();
    assert_eq!(n.event, Event::Recovered);
    assert_eq!(n.severity, Severity::High);
    assert!(to.contains(&"pager".to_string()), "{to:?}");
    // a recovery check that failed counts as a failure of the workload
    let mut nf = Notifier::new(notifications(TWO), None);
    nf.outcome(&outcome(OutcomeKind::Acted, p.clone(), t(0)), t(0));
    let bad = Verification {
        result: VerifyResult::NotRecovered,
        message: "still crash-looping".into(),
    };
    let (n, to) = nf.verification(&p, &bad, t(300)).unwrap();
    assert_eq!((n.event, n.severity), (Event::Unverified, Severity::High));
    assert!(to.contains(&"pager".to_string()));
}

#[test]
fn history_replayed_after_a_restart_gives_the_same_severity() {
    let p = plan("delete-pod", "shop", "api-1");
    let first = outcome(OutcomeKind::Acted, p.clone(), t(0));
    let mut restarted = Notifier::new(notifications(TWO), None);
    restarted.observe(&first.ledger);
    let (n, _) = restarted
        .outcome(&outcome(OutcomeKind::Acted, p, t(60)), t(60))
        .unwrap();
    assert_eq!(n.severity, Severity::High);
}

#[test]
fn without_routes_every_receiver_hears_and_without_receivers_nothing_is_made() {
    let mut all = notifications(
        "receivers:\n- name: a\n  bark: {url: {env: B}}\n- name: b\n  webhook: {url: {env: W}}\n",
    );
    let n = notice(Event::Acted, "shop", "p");
    assert_eq!(route(&all, &n), vec!["a".to_string(), "b".to_string()]);
    all.routes.push(NotifyRoute {
        matchers: vec![crate::policy::Matcher::parse("event=\"failed\"").unwrap()],
        receivers: vec!["b".into()],
        continue_matching: false,
    });
    assert!(route(&all, &n).is_empty(), "routes given, none matches");
    let mut off = Notifier::new(Notifications::default(), None);
    assert!(
        off.outcome(
            &outcome(OutcomeKind::Acted, plan("delete-pod", "s", "p"), t(0)),
            t(0)
        )
        .is_none()
    );
}

#[test]
fn a_destructive_action_is_announced_before_it_starts_and_others_are_not() {
    let mut nf = Notifier::new(notifications(TWO), Some("test".into()));
    let pod = plan("delete-pod", "e2e-1", "p");
    assert!(
        nf.starting(&pod, t(0)).is_none(),
        "delete-pod is not announced by default"
    );
    let policy = Policy::from_yaml(
        "routes:\n  - name: ns\n    matchers: ['alertname=\"Stale\"']\n    remediation: delete-namespace\n    params: {namePattern: 'e2e-.*'}\n",
    )
    .unwrap();
    let s = signal(&[("alertname", "Stale"), ("namespace", "e2e-4711")]);
    let ns = Plan::build(&s, &policy.routes[0]).unwrap();
    let (n, to) = nf.starting(&ns, t(0)).unwrap();
    assert_eq!(n.event, Event::Starting);
    assert_eq!(n.title, "About to delete Namespace e2e-4711");
    assert_eq!(to, vec!["chat".to_string()]);
    // announcing counts nothing: the action's own outcome does
    assert_eq!(nf.starting(&ns, t(1)).unwrap().0.severity, Severity::Info);
}

#[test]
fn a_resolved_alert_that_counts_as_recovery_resolves_what_was_told_once() {
    let mut nf = Notifier::new(notifications(TWO), None);
    let node = |at: i64| {
        let policy = Policy::from_yaml(
            "routes:\n  - name: node\n    matchers: ['alertname=\"KubeNodeNotReady\"']\n    remediation: drain-node\n",
        )
        .unwrap();
        let s = signal(&[("alertname", "KubeNodeNotReady"), ("node", "w2")]);
        outcome(
            OutcomeKind::Acted,
            Plan::build(&s, &policy.routes[0]).unwrap(),
            t(at),
        )
    };
    let (told, _) = nf.outcome(&node(0), t(0)).unwrap();
    assert_eq!(told.severity, Severity::High, "nodes start high");
    let mut resolved = outcome(OutcomeKind::Resolved, plan("delete-pod", "x", "y"), t(60));
    resolved.plan = None;
    resolved.target = Some("Node w2".into());
    resolved.ledger = vec![PastEvent {
        at: t(60),
        event: GuardEvent::Recovered {
            key: told.key.clone(),
            by: crate::ledger::RecoveryBy::AlertResolved,
        },
    }];
    let (n, to) = nf.outcome(&resolved, t(60)).unwrap();
    assert_eq!(n.event, Event::Recovered);
    assert_eq!(n.severity, Severity::High);
    assert_eq!(
        n.dedup_key(),
        told.dedup_key(),
        "the pager resolves the same incident"
    );
    assert!(to.contains(&"pager".to_string()));
    assert_eq!(n.title, "Recovered: Node w2 (its alert resolved)");
    // told once: a second resolution of the same key says nothing
    assert!(nf.outcome(&resolved, t(61)).is_none());
    // a resolution of something never told says nothing
    let mut other = resolved.clone();
    other.ledger[0].event = GuardEvent::Recovered {
        key: "Node/-/w9".into(),
        by: crate::ledger::RecoveryBy::AlertResolved,
    };
    assert!(nf.outcome(&other, t(62)).is_none());
}
