//! Recovery verification (`KubeVerifier`) against the Kubernetes API
//! emulation through a real `kube::Client`: looks at the owning workload's
//! status and its pods' restarts, the node, or the object's disappearance,
//! with a stability window of a second or less so each test stays short.
//! The verifier looks every second at first; a test that needs the window
//! to pass waits about two of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::{Duration, Instant};

use receiver_core::{FactSource, Plan, Verification, Verifier, VerifyResult};
use receiver_k8s::KubeFacts;
use receiver_k8s::verify::KubeVerifier;
use serde_json::{Value, json};
use support::{Cluster, alert, plan};
use testkit::eventually;
use testkit::fixtures::{
    DELETE_POD_POLICY, DeploymentFixture, JANITOR_POLICY, NamespaceFixture, NodeFixture,
    PodFixture, ReplicaSetFixture,
};
use testkit::kube::Controller;

const WAIT: Duration = Duration::from_secs(5);

/// The delete-pod plan for pod `shop/name`, completed with its owning
/// workload from the live facts, as the engine completes it before acting.
async fn pod_plan(c: &Cluster, name: &str, uid: &str) -> Plan {
    let mut p = plan(
        DELETE_POD_POLICY,
        "delete-pod",
        &alert(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", name),
            ("uid", uid),
        ]),
    );
    p.workload = KubeFacts::new(c.clients.clone())
        .facts(&p)
        .await
        .unwrap()
        .owner;
    p
}

fn verifier(c: &Cluster, timeout: Duration, stable_for: Duration) -> KubeVerifier {
    KubeVerifier::new(c.clients.clone(), Some(timeout), stable_for)
}

/// Deployment `shop/api` (with `ready` of its one replica ready), its
/// ReplicaSet and its pod `api-7d9c-x2` with `restarts`; the pod as stored.
fn deployment(c: &Cluster, ready: u32, restarts: u32) -> Value {
    let d = c.create(DeploymentFixture::new("shop", "api").ready(ready).json());
    let rs = c.create(
        ReplicaSetFixture::new("shop", "api-7d9c")
            .owned_by(&d)
            .json(),
    );
    c.create(
        PodFixture::new("shop", "api-7d9c-x2")
            .owned_by(&rs)
            .label("app", "api")
            .restarts(restarts)
            .json(),
    )
}

/// Wait until the verifier has listed the Deployment's pods (one look done).
async fn looked(c: &Cluster, looks: usize) {
    eventually(WAIT, "the verifier to look", || async {
        let n = c
            .emu
            .requests()
            .iter()
            .filter(|r| {
                r.path == "/api/v1/namespaces/shop/pods" && r.query.contains("labelSelector")
            })
            .count();
        (n >= looks).then_some(())
    })
    .await
    .unwrap();
}

async fn verify_in_background(
    v: KubeVerifier,
    plan: Plan,
) -> tokio::task::JoinHandle<(Verification, Duration)> {
    tokio::spawn(async move {
        let started = Instant::now();
        let result = v.verify(&plan).await;
        (result, started.elapsed())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_becomes_ready_is_recovered_after_the_stability_window() {
    let c = Cluster::new().await;
    let pod = deployment(&c, 0, 0);
    let plan = pod_plan(&c, "api-7d9c-x2", pod["metadata"]["uid"].as_str().unwrap()).await;
    assert_eq!(plan.workload.as_ref().unwrap().key(), "Deployment/shop/api");
    let task = verify_in_background(
        verifier(&c, Duration::from_secs(5), Duration::from_secs(1)),
        plan,
    )
    .await;
    looked(&c, 1).await;
    // what the Deployment controller would report once its new pod is ready
    c.emu
        .modify("apps/v1", "Deployment", "shop", "api", |d| {
            d["status"]["readyReplicas"] = json!(1);
        })
        .unwrap();
    let (v, took) = task.await.unwrap();
    assert_eq!(v.result, VerifyResult::Recovered, "{v:?}");
    assert_eq!(
        v.message,
        "Deployment shop/api has 1/1 ready replicas, healthy for 1s without a restart"
    );
    // unhealthy at the first look, healthy at the second, stable at the third
    assert!(took >= Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_the_stability_window_starts_it_over() {
    let c = Cluster::new().await;
    let pod = deployment(&c, 1, 0);
    let plan = pod_plan(&c, "api-7d9c-x2", pod["metadata"]["uid"].as_str().unwrap()).await;
    let task = verify_in_background(
        verifier(&c, Duration::from_secs(5), Duration::from_secs(1)),
        plan,
    )
    .await;
    // healthy with 0 restarts at the first look; then the container crashes again
    looked(&c, 1).await;
    c.emu
        .modify("v1", "Pod", "shop", "api-7d9c-x2", |p| {
            p["status"]["containerStatuses"][0]["restartCount"] = json!(1);
        })
        .unwrap();
    let (v, took) = task.await.unwrap();
    assert_eq!(v.result, VerifyResult::Recovered, "{v:?}");
    // without the restart the window would have passed at the second look (1 s)
    assert!(took >= Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_that_never_becomes_ready_is_not_recovered_within_the_budget() {
    let c = Cluster::new().await;
    let pod = deployment(&c, 0, 0);
    let plan = pod_plan(&c, "api-7d9c-x2", pod["metadata"]["uid"].as_str().unwrap()).await;
    let v = verifier(&c, Duration::from_secs(1), Duration::from_secs(1))
        .verify(&plan)
        .await;
    assert_eq!(v.result, VerifyResult::NotRecovered, "{v:?}");
    assert_eq!(
        v.message,
        "not recovered within 1s (Deployment shop/api has 0/1 ready replicas)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_pods_deletion_is_unverified() {
    let c = Cluster::new().await;
    let pod = c.create(PodFixture::new("shop", "debug").crash_looping(3).json());
    let plan = pod_plan(&c, "debug", pod["metadata"]["uid"].as_str().unwrap()).await;
    assert_eq!(plan.workload, None);
    let started = Instant::now();
    let v = verifier(&c, Duration::from_secs(5), Duration::from_secs(1))
        .verify(&plan)
        .await;
    assert_eq!(v.result, VerifyResult::Unverified, "{v:?}");
    assert!(
        v.message.contains("has no owner, so nothing recreates it"),
        "{v:?}"
    );
    // at once, not after the 5 s budget
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_back_ready_is_uncordoned_only_if_heal8s_cordoned_it() {
    let c = Cluster::new().await;
    c.create(
        NodeFixture::new("w1")
            .cordoned()
            .annotation("heal8s.io/remediation", "drained")
            .annotation("heal8s.io/cordoned", "true")
            .json(),
    );
    // drained by heal8s, but cordoned by a person before
    c.create(
        NodeFixture::new("w2")
            .cordoned()
            .annotation("heal8s.io/remediation", "drained")
            .json(),
    );
    let v = verifier(&c, Duration::from_secs(5), Duration::ZERO);
    for (node, said) in [
        ("w1", "heal8s uncordoned node w1 (its own cordon)"),
        (
            "w2",
            "node w2 stays cordoned: it was cordoned before heal8s came",
        ),
    ] {
        let p = plan(
            JANITOR_POLICY,
            "drain-node",
            &alert(&[("alertname", "KubeNodeNotReady"), ("node", node)]),
        );
        let r = v.verify(&p).await;
        assert_eq!(r.result, VerifyResult::Recovered, "{r:?}");
        assert!(r.message.ends_with(said), "{r:?}");
    }
    let w1 = c.node("w1").unwrap();
    assert!(w1["spec"]["unschedulable"].is_null(), "{w1:#}");
    assert!(w1["metadata"]["annotations"]["heal8s.io/remediation"].is_null());
    let w2 = c.node("w2").unwrap();
    assert_eq!(w2["spec"]["unschedulable"], true);
    assert!(w2["metadata"]["annotations"]["heal8s.io/remediation"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_counts_once_it_is_gone_not_while_it_is_terminating() {
    let c = Cluster::new().await;
    c.create(NodeFixture::new("w1").json());
    c.create(NamespaceFixture::new("e2e-1").created_ago(7200).json());
    c.create(PodFixture::new("e2e-1", "runner").on_node("w1").json());
    c.emu.delete("v1", "Namespace", "", "e2e-1").unwrap();
    // the namespace controller deletes the pod, which waits for its kubelet
    c.emu.play_once(Controller::Namespace);
    let p = plan(
        JANITOR_POLICY,
        "delete-namespace",
        &alert(&[("alertname", "StaleNamespace"), ("namespace", "e2e-1")]),
    );
    let v = verifier(&c, Duration::from_millis(500), Duration::ZERO);
    let r = v.verify(&p).await;
    assert_eq!(r.result, VerifyResult::NotRecovered, "{r:?}");
    assert!(
        r.message.contains("namespace e2e-1 is still Terminating"),
        "{r:?}"
    );
    // the kubelet of w1 confirms; the controller's next pass finalizes the empty namespace
    c.emu.play_once(Controller::Kubelet);
    c.emu.play_once(Controller::Namespace);
    assert!(c.get("v1", "Namespace", "", "e2e-1").is_none());
    let r = v.verify(&p).await;
    assert_eq!(r.result, VerifyResult::Recovered, "{r:?}");
    assert_eq!(r.message, "Namespace e2e-1 is gone");
}
