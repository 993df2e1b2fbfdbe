//! Storms end to end against the Kubernetes API emulation: a real `heal8s
//! serve` with a small budget meets many broken pods at once. Every
//! namespace gets its turn, a signal the guard refuses on its own state costs
//! no read of the pod or its record, and what waited for the budget is done
//! as the budget frees, without being signalled again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::kube::{Emulator, RequestRecord};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "storm-e2e-token";

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

/// A Deployment `name` with ReplicaSet `name-rs` and `pods` crash-looping pods `name-N`.
fn workload(emu: &Emulator, ns: &str, name: &str, pods: usize) {
    let spec = json!({"replicas": pods, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]}}});
    let d = emu
        .create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .unwrap();
    let rs = emu
        .create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{name}-rs"), "namespace": ns,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                     "uid": d["metadata"]["uid"], "controller": true}]},
            "spec": spec}))
        .unwrap();
    for i in 0..pods {
        emu.create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-{i}"), "namespace": ns, "labels": {"app": name},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": format!("{name}-rs"), "uid": rs["metadata"]["uid"], "controller": true}]},
            "spec": {"nodeName": "w1", "containers": [{"name": "app", "image": "registry/app:1"}]},
            "status": {"phase": "Running", "startTime": ago(600),
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ago(300)},
                               {"type": "ContainersReady", "status": "False", "lastTransitionTime": ago(300)}],
                "containerStatuses": [{"name": "app", "image": "registry/app:1", "imageID": "",
                    "ready": false, "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        }))
        .unwrap();
    }
}

/// `(namespace, pod)` of each pod deletion heal8s asked for, in order.
fn deletions(emu: &Emulator) -> Vec<(String, String, Instant)> {
    emu.requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/pods/") && r.status < 300)
        .map(|r| {
            let p: Vec<&str> = r.path.split('/').collect();
            (p[4].to_string(), p[6].to_string(), r.at)
        })
        .collect()
}

/// Reads of a pod, or of a pod's Remediation record, in `requests`.
fn reads_of(requests: &[RequestRecord], ns: &str, pod: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method == "GET" && r.verb == "get")
        .filter(|r| {
            r.path == format!("/api/v1/namespaces/{ns}/pods/{pod}")
                || (r.path.contains(&format!("/namespaces/{ns}/remediations/"))
                    && r.path.contains(&format!("-pod-{pod}-")))
        })
        .map(|r| r.path.clone())
        .collect()
}

/// 50 crash-looping pods in 5 namespaces (5 Deployments of 2 each) meet a
/// budget of 5 deletions per 4s, 2 per namespace. Fails on a heal8s that
/// reads every plan's pod and record, acts in arrival order (the first
/// namespaces take the budget) and retries refused work only when signalled
/// again (the detector re-signals once per cooldown, 10 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_healed_round_robin_as_the_budget_frees_and_refusals_read_nothing() {
    let emu = Emulator::start().await.unwrap();
    emu.create(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    let namespaces: Vec<String> = (0..5).map(|i| format!("team-{i}")).collect();
    for ns in &namespaces {
        emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
        for w in 0..5 {
            workload(&emu, ns, &format!("w{w}"), 2);
        }
    }
    // the kubelet confirms deletions, as on a real cluster
    let _kubelet = emu.kubelet();
    let dir = TempDir::new("storm-e2e");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        r#"profile: production
guard:
  cooldown: 10m
  budgets:
    global: {max: 5, per: 4s}
    perNamespace: {max: 2, per: 4s}
    perWorkload: {max: 3, per: 1h}
detectors:
  resync: 1s
  pods: {waitingAfter: 1s}
  nodes: {enabled: false}
routes:
  - {matchers: ['alertname="Heal8sPodCrashLooping"'], remediation: delete-pod}
"#,
    )
    .unwrap();
    let h = Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--verify-timeout",
            "2s",
        ],
    )
    .await
    .unwrap();
    let fail =
        |e: &dyn std::fmt::Display| -> ! { panic!("{e}\n--- heal8s ---\n{}", h.proc.output()) };

    // one pod of each of the 25 Deployments is deleted, 5 per window
    let done = eventually(Duration::from_secs(60), "25 deletions", || async {
        let d = deletions(&emu);
        (d.len() >= 25).then_some(d)
    })
    .await
    .unwrap_or_else(|e| fail(&e));
    // the other pod of each has its workload's cooldown: refused, not deleted
    let refused = eventually(Duration::from_secs(20), "25 cooldown refusals", || async {
        let outcomes = h.read("/outcomes?result=refused&limit=512").await;
        let cooldowns: Vec<Value> = outcomes
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["reason"] == "cooldown")
            .cloned()
            .collect();
        (cooldowns.len() >= 25).then_some(cooldowns)
    })
    .await
    .unwrap_or_else(|e| fail(&e));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done_now = deletions(&emu);
    assert_eq!(
        done_now.len(),
        25,
        "one deletion per Deployment: {done_now:?}"
    );

    // fair: every run of 5 deletions reaches all 5 namespaces
    let mut order = done.clone();
    order.sort_by_key(|(_, _, at)| *at);
    for chunk in order.chunks(5) {
        let spread: BTreeSet<&String> = chunk.iter().map(|(ns, _, _)| ns).collect();
        assert_eq!(spread.len(), 5, "not round robin: {chunk:?}");
    }
    // and within the budget: at most 5 in any 4s, 2 per namespace
    for (i, (_, _, at)) in order.iter().enumerate() {
        let window: Vec<_> = order[..=i]
            .iter()
            .filter(|(_, _, t)| at.duration_since(*t) < Duration::from_millis(3500))
            .collect();
        assert!(window.len() <= 5, "global budget broken: {window:?}");
        let mut per_ns: BTreeMap<&String, usize> = BTreeMap::new();
        for (ns, _, _) in &window {
            *per_ns.entry(ns).or_default() += 1;
        }
        assert!(
            per_ns.values().all(|n| *n <= 2),
            "namespace budget broken: {window:?}"
        );
    }
    // the budget freed four times over and the waiting deletions ran: no
    // detector signal was repeated (each pod signalled once, plus the
    // resolution of each deleted one)
    let signals = h.metric(r#"heal8s_signals_total{source="detector"}"#).await;
    assert!(signals <= 50.0 + 25.0, "signalled again: {signals}");
    assert!(
        h.metric(r#"heal8s_guard_refusals_total{reason="global_budget"}"#)
            .await
            + h.metric(r#"heal8s_guard_refusals_total{reason="namespace_budget"}"#)
                .await
            > 0.0,
        "the budget never put anything off"
    );

    // refusals read nothing: neither the refused pods nor their records
    let requests = emu.requests();
    let acted: BTreeSet<(String, String)> = done_now
        .iter()
        .map(|(ns, p, _)| (ns.clone(), p.clone()))
        .collect();
    for o in &refused {
        let plan = &o["plan"]["target"];
        let (ns, pod) = (
            plan["namespace"].as_str().unwrap(),
            plan["name"].as_str().unwrap(),
        );
        assert!(!acted.contains(&(ns.to_string(), pod.to_string())), "{o:#}");
        assert!(
            o["message"].as_str().unwrap().contains("Deployment/"),
            "counted against its Deployment: {o:#}"
        );
        let reads = reads_of(&requests, ns, pod);
        assert!(reads.is_empty(), "a refused pod was read: {reads:?}");
    }
    // nor did the plans that waited for their budget, before their turn:
    // each deleted pod was read once, right before its deletion
    for (ns, pod, at) in &done_now {
        let before: Vec<&RequestRecord> = requests
            .iter()
            .filter(|r| r.path == format!("/api/v1/namespaces/{ns}/pods/{pod}") && r.verb == "get")
            .filter(|r| r.at <= *at)
            .collect();
        assert_eq!(
            before.len(),
            1,
            "{ns}/{pod} read {} times before its deletion",
            before.len()
        );
    }
    // heal8s says what it is doing with the queue and the backlog
    let m = h.metrics().await;
    for sample in [
        "heal8s_queue_depth",
        "heal8s_backlog_depth",
        "heal8s_backlog_capacity",
    ] {
        assert!(
            m.lines().any(|l| l.starts_with(sample)),
            "{sample} missing:\n{m}"
        );
    }
}
