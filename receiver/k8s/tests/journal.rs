//! The journal of Remediation records (`KubeJournal`) against the Kubernetes
//! API emulation through a real `kube::Client`, with the CRD the chart ships
//! installed: what each step of a remediation (begun, its outcome, its
//! verification, its alert resolved) leaves in the record's status, and what
//! a restarted replica reads back (`load_history`, `mark_interrupted`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::Duration;

use jiff::Timestamp;
use kube::Api;
use receiver_core::alertmanager::AlertStatus;
use receiver_core::names::record_name;
use receiver_core::{
    Engine, GuardEvent, Journal, Mode, Outcome, OutcomeKind, Plan, RecoveryBy, RefusalReason,
    RemediationKind, SystemClock, Verification, Verifier, VerifyResult,
};
use receiver_k8s::KubeFacts;
use receiver_k8s::record::{
    KubeJournal, Phase, Remediation, RemediationStatus, load_history, mark_interrupted,
};
use receiver_k8s::verify::KubeVerifier;
use support::{Cluster, INSTANCE, OWN_NAMESPACE, alert, plan, policy, settings};
use testkit::fixtures::{
    DELETE_POD_POLICY, DeploymentFixture, JANITOR_POLICY, NodeFixture, PodFixture,
    ReplicaSetFixture,
};
use testkit::kube::Controller;

/// A cluster serving the Remediation type only because the chart's CRD was
/// installed (the emulation's own built-in definition is taken away first).
async fn cluster_with_crd() -> Cluster {
    let c = Cluster::new().await;
    c.emu.unregister("heal8s.io", "remediations");
    c.install_remediation_crd();
    c
}

async fn journal(c: &Cluster, identity: &str) -> KubeJournal {
    KubeJournal::connect(c.clients.main.clone(), OWN_NAMESPACE, identity)
        .await
        .expect("the CRD is installed")
}

/// The record of `plan`, read through the typed API.
async fn record(c: &Cluster, ns: &str, plan: &Plan) -> Remediation {
    let name = record_name(plan.target.as_ref().unwrap(), plan.kind());
    Api::<Remediation>::namespaced(c.clients.main.clone(), ns)
        .get(&name)
        .await
        .unwrap()
}

fn status(r: &Remediation) -> &RemediationStatus {
    r.status.as_ref().unwrap()
}

/// A condition's (status, reason).
fn condition<'a>(s: &'a RemediationStatus, type_: &str) -> Option<(&'a str, &'a str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
}

fn records(c: &Cluster) -> usize {
    c.emu.list("heal8s.io/v1alpha1", "Remediation", "").len()
}

/// The outcome the pipeline gives `plan` when it ends with `result`.
fn outcome(plan: &Plan, result: OutcomeKind, message: &str) -> Outcome {
    Outcome {
        at: Timestamp::now(),
        source: plan.trigger.source,
        name: plan.trigger.name.clone(),
        fingerprint: plan.trigger.fingerprint.clone(),
        status: AlertStatus::Firing,
        target: plan.target.as_ref().map(ToString::to_string),
        route: Some(plan.route.clone()),
        remediation: Some(plan.kind()),
        mode: Some(Mode::Direct),
        result,
        reason: None,
        escalated: false,
        message: message.into(),
        pull_request: None,
        deferred: None,
        plan: Some(plan.clone()),
        ledger: Vec::new(),
        deleted: None,
        cluster: None,
        approved_by: None,
        trace: None,
    }
}

fn pod_plan(name: &str) -> Plan {
    plan(
        DELETE_POD_POLICY,
        "delete-pod",
        &alert(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", name),
        ]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn there_is_a_journal_only_once_the_remediation_crd_is_installed() {
    let c = Cluster::new().await;
    c.emu.unregister("heal8s.io", "remediations");
    assert!(
        KubeJournal::connect(c.clients.main.clone(), OWN_NAMESPACE, INSTANCE)
            .await
            .is_none()
    );
    c.install_remediation_crd();
    assert!(
        KubeJournal::connect(c.clients.main.clone(), OWN_NAMESPACE, INSTANCE)
            .await
            .is_some()
    );
}

/// The service's steps, in its order, on a crash-looping pod of a
/// Deployment: the engine plans, reads the facts, lets the guard decide and
/// carries the plan out (the journal records the start first); the worker
/// writes the outcome; the verifier watches; the worker records the verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_is_recorded_as_started_acted_and_verified_and_its_ledger_reads_back() {
    let c = cluster_with_crd().await.playing(&[Controller::Kubelet]);
    c.create(NodeFixture::new("w1").json());
    let d = c.create(DeploymentFixture::new("shop", "api").json());
    let rs = c.create(
        ReplicaSetFixture::new("shop", "api-7d9c")
            .owned_by(&d)
            .json(),
    );
    let pod = c.create(
        PodFixture::new("shop", "api-7d9c-x2")
            .owned_by(&rs)
            .label("app", "api")
            .crash_looping(5)
            .on_node("w1")
            .json(),
    );
    let signal = alert(&[
        ("alertname", "KubePodCrashLooping"),
        ("namespace", "shop"),
        ("pod", "api-7d9c-x2"),
        ("uid", pod["metadata"]["uid"].as_str().unwrap()),
    ]);
    let mut engine = Engine::new(policy(DELETE_POD_POLICY), OWN_NAMESPACE).unwrap();
    let facts = KubeFacts::new(c.clients.clone());
    let executor = c.executor(settings());
    let j = journal(&c, INSTANCE).await;

    let outcomes = engine
        .process_with(&signal, &facts, &executor, &j, &SystemClock)
        .await;
    assert_eq!(outcomes.len(), 1, "{outcomes:#?}");
    let o = &outcomes[0];
    assert_eq!(o.result, OutcomeKind::Acted, "{o:#?}");
    let plan = o.plan.clone().unwrap();
    assert_eq!(plan.workload_key(), "Deployment/shop/api");

    // begun: recorded before the executor acted
    let r = record(&c, "shop", &plan).await;
    let s = status(&r);
    assert_eq!(s.phase, Some(Phase::Acting));
    assert_eq!(s.reason, "Started");
    assert_eq!(s.history.last().unwrap().message, "started");
    assert_eq!(s.history.last().unwrap().by, INSTANCE);
    assert_eq!(r.spec.remediation, "delete-pod");
    assert_eq!(r.spec.target.key, "Pod/shop/api-7d9c-x2");
    assert_eq!(r.spec.target.workload.as_ref().unwrap().name, "api");
    assert_eq!(r.spec.trigger.fingerprint, signal.fingerprint);

    // the outcome replaces the "started" entry; the action is being verified
    for o in &outcomes {
        j.write(o).await;
    }
    let r = record(&c, "shop", &plan).await;
    let s = status(&r);
    assert_eq!(s.phase, Some(Phase::Acting));
    assert_eq!(s.reason, "Acted");
    assert_eq!(s.attempts, 1);
    assert_eq!(condition(s, "Acted"), Some(("True", "Acted")));
    assert_eq!(condition(s, "Recovered"), Some(("Unknown", "Verifying")));
    let phases: Vec<(Phase, &str)> = s
        .history
        .iter()
        .map(|h| (h.phase, h.message.as_str()))
        .collect();
    assert_eq!(phases, [(Phase::Acting, "deleted pod shop/api-7d9c-x2")]);
    assert!(
        s.ledger.iter().any(|e| matches!(&e.event,
            GuardEvent::Action { key, remediation: RemediationKind::DeletePod, .. } if key == "Deployment/shop/api")),
        "{:#?}",
        s.ledger
    );

    // the Deployment is ready (its new pod up): verified, settled, recovered
    let v = KubeVerifier::new(
        c.clients.clone(),
        Some(Duration::from_secs(5)),
        Duration::ZERO,
    )
    .verify(&plan)
    .await;
    assert_eq!(v.result, VerifyResult::Recovered, "{v:?}");
    let now = Timestamp::now();
    let events: Vec<_> = engine
        .settled(&plan, now)
        .into_iter()
        .chain(Some(engine.recovered(&plan, now)))
        .collect();
    j.verified(&plan, &v, &events).await;
    let r = record(&c, "shop", &plan).await;
    let s = status(&r);
    assert_eq!(s.phase, Some(Phase::Succeeded));
    assert_eq!(s.reason, "Recovered");
    assert_eq!(s.message, v.message);
    assert!(s.finished_at.is_some());
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(condition(s, "Recovered"), Some(("True", "Recovered")));
    assert_eq!(s.history.last().unwrap().phase, Phase::Succeeded);
    for e in &events {
        assert!(s.ledger.contains(e), "{e:?} missing from {:#?}", s.ledger);
    }
    assert!(s.ledger.iter().any(|e| matches!(
        &e.event,
        GuardEvent::Recovered {
            by: RecoveryBy::Verified,
            ..
        }
    )));

    // a restarted replica reads back exactly the ledger, and the alert it acted on
    let h = load_history(c.clients.main.clone()).await.unwrap();
    assert_eq!(h.events, s.ledger);
    assert_eq!(h.alerts, [(signal.fingerprint.clone(), signal.first_seen)]);
    // so its guard knows this occurrence was handled
    let mut restarted = Engine::new(policy(DELETE_POD_POLICY), OWN_NAMESPACE).unwrap();
    restarted.restore(h.events, h.alerts, Timestamp::now());
    let again = restarted
        .process_with(&signal, &facts, &executor, &j, &SystemClock)
        .await;
    assert_eq!(again[0].result, OutcomeKind::Deduped, "{again:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_pod_alert_is_no_evidence_and_only_the_verification_settles_the_record() {
    let c = cluster_with_crd().await;
    let j = journal(&c, INSTANCE).await;
    let plan = pod_plan("api-1");
    j.begin(&plan, None).await;
    j.write(&outcome(
        &plan,
        OutcomeKind::Acted,
        "deleted pod shop/api-1",
    ))
    .await;
    j.resolved(&plan.trigger.fingerprint).await;
    let s = status(&record(&c, "shop", &plan).await).clone();
    assert_eq!(s.phase, Some(Phase::Acting));
    assert!(
        s.history
            .last()
            .unwrap()
            .message
            .contains("the pod is gone, which is no evidence of recovery"),
        "{:#?}",
        s.history
    );
    let v = Verification {
        result: VerifyResult::NotRecovered,
        message: "not recovered within 3m (Deployment shop/api has 0/1 ready replicas)".into(),
    };
    j.verified(&plan, &v, &[]).await;
    let s = status(&record(&c, "shop", &plan).await).clone();
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(s.reason, "NotRecovered");
    assert_eq!(condition(&s, "Recovered"), Some(("False", "NotRecovered")));
    // a settled record stays as it settled
    j.verified(
        &plan,
        &Verification {
            result: VerifyResult::Recovered,
            message: "late".into(),
        },
        &[],
    )
    .await;
    assert_eq!(
        status(&record(&c, "shop", &plan).await).phase,
        Some(Phase::Failed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_creates_no_record_and_a_failure_creates_one_that_later_refusals_do_not_hide() {
    let c = cluster_with_crd().await;
    let j = journal(&c, INSTANCE).await;
    let plan = pod_plan("api-1");
    let refusal = Outcome {
        reason: Some(RefusalReason::Cooldown),
        ..outcome(&plan, OutcomeKind::Refused, "in cooldown")
    };
    j.write(&refusal).await;
    assert_eq!(records(&c), 0, "most refusals have no record");

    j.write(&outcome(
        &plan,
        OutcomeKind::Failed,
        "Kubernetes API error: Precondition failed",
    ))
    .await;
    let s = status(&record(&c, "shop", &plan).await).clone();
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(s.attempts, 1);
    assert!(s.finished_at.is_some());
    assert_eq!(condition(&s, "Acted"), Some(("False", "ActionFailed")));

    j.write(&refusal).await;
    let s = status(&record(&c, "shop", &plan).await).clone();
    assert_eq!(
        s.phase,
        Some(Phase::Failed),
        "a refused repeat is history, not news"
    );
    let last = s.history.last().unwrap();
    assert_eq!(
        (last.phase, last.message.as_str()),
        (Phase::Refused, "in cooldown")
    );
    assert_eq!(records(&c), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_record_lives_in_heal8s_namespace_and_another_replica_marks_it_interrupted() {
    let c = cluster_with_crd().await;
    let plan = plan(
        JANITOR_POLICY,
        "drain-node",
        &alert(&[("alertname", "KubeNodeNotReady"), ("node", "w1")]),
    );
    journal(&c, "heal8s-a").await.begin(&plan, None).await;
    let r = record(&c, OWN_NAMESPACE, &plan).await;
    assert_eq!(r.spec.target.key, "Node/-/w1");
    let s = status(&r);
    assert_eq!(s.phase, Some(Phase::Acting));
    assert_eq!(s.history.last().unwrap().by, "heal8s-a");

    // heal8s-a stopped while draining; heal8s-b takes over
    assert_eq!(
        mark_interrupted(c.clients.main.clone(), "heal8s-b")
            .await
            .unwrap(),
        1
    );
    let s = status(&record(&c, OWN_NAMESPACE, &plan).await).clone();
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(s.reason, "Interrupted");
    assert!(
        s.message.starts_with("heal8s stopped while acting"),
        "{}",
        s.message
    );
    assert_eq!(s.history.last().unwrap().by, "heal8s-b");
    // once is enough
    assert_eq!(
        mark_interrupted(c.clients.main.clone(), "heal8s-b")
            .await
            .unwrap(),
        0
    );
}
