//! The live-fact source (`KubeFacts`) against the Kubernetes API emulation
//! through a real `kube::Client`: what it reads back for a plan (the owner
//! chain, the opt-out on the object, its owners and its namespace, whether
//! the condition still holds) is what the guard then decides on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use receiver_core::act::LiveState;
use receiver_core::{FactSource, Facts, Plan, Protection, WorkloadRef};
use receiver_k8s::KubeFacts;
use serde_json::Value;
use support::{Cluster, alert, plan};
use testkit::fixtures::{
    DELETE_POD_POLICY, DeploymentFixture, JANITOR_POLICY, NamespaceFixture, NodeFixture,
    PodFixture, ReplicaSetFixture,
};

fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap()
}

/// The delete-pod plan for the alert about pod `ns/name` with UID `uid`.
fn pod_plan(ns: &str, name: &str, uid: &str) -> Plan {
    plan(
        DELETE_POD_POLICY,
        "delete-pod",
        &alert(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", ns),
            ("pod", name),
            ("uid", uid),
        ]),
    )
}

async fn facts(c: &Cluster, plan: &Plan) -> Facts {
    KubeFacts::new(c.clients.clone()).facts(plan).await.unwrap()
}

/// What the guard's protection says of the facts read for `plan`: the
/// refusal reason and message, if it refuses.
fn protection_says(plan: &Plan, f: &Facts) -> Option<(String, String)> {
    Protection::default()
        .refusal(
            plan.namespace(),
            f.object.as_ref(),
            &f.owners,
            f.namespace.as_ref(),
        )
        .map(|r| (r.reason.as_str().to_string(), r.message))
}

/// Deployment `ns/name` with ReplicaSet `<name>-7d9c` and its pod
/// `<name>-7d9c-x2`, crash looping; the pod as stored.
fn deployment_with_pod(c: &Cluster, ns: &str, name: &str, d: DeploymentFixture) -> Value {
    let d = c.create(d.json());
    let rs = c.create(
        ReplicaSetFixture::new(ns, &format!("{name}-7d9c"))
            .owned_by(&d)
            .json(),
    );
    c.create(
        PodFixture::new(ns, &format!("{name}-7d9c-x2"))
            .owned_by(&rs)
            .label("app", name)
            .crash_looping(5)
            .json(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashlooping_pods_facts_reach_its_deployment_through_its_replicaset() {
    let c = Cluster::new().await;
    let pod = deployment_with_pod(
        &c,
        "shop",
        "api",
        DeploymentFixture::new("shop", "api").label("team", "web"),
    );
    let plan = pod_plan("shop", "api-7d9c-x2", uid(&pod));
    let f = facts(&c, &plan).await;
    assert_eq!(
        f.owner,
        Some(WorkloadRef {
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "api".into(),
        })
    );
    let chain: Vec<&str> = f.owners.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(chain, ["ReplicaSet shop/api-7d9c", "Deployment shop/api"]);
    assert_eq!(f.owners[1].1.labels["team"], "web");
    assert_eq!(f.object.as_ref().unwrap().labels["app"], "api");
    assert!(f.namespace.is_some());
    assert_eq!(
        f.state,
        LiveState::Holds(
            "container app of pod shop/api-7d9c-x2 is crash looping (5 restarts)".into()
        )
    );
    assert_eq!(protection_says(&plan, &f), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_on_the_pod_its_owner_or_its_namespace_reaches_the_guard() {
    let c = Cluster::new().await;
    // on the pod itself
    let on_pod = c.create(
        PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .crash_looping(5)
            .opted_out()
            .json(),
    );
    // on the Deployment two levels up
    let on_owner = deployment_with_pod(
        &c,
        "shop",
        "web",
        DeploymentFixture::new("shop", "web").opted_out(),
    );
    // on the namespace
    c.create(NamespaceFixture::new("quiet").opted_out().json());
    let in_ns = c.create(
        PodFixture::new("quiet", "api-1")
            .owned_by_replicaset("api-7d9c")
            .crash_looping(5)
            .json(),
    );

    let cases = [
        (
            pod_plan("shop", "api-1", uid(&on_pod)),
            "opted_out",
            "the object carries heal8s.io/ignore=true",
        ),
        (
            pod_plan("shop", "web-7d9c-x2", uid(&on_owner)),
            "opted_out",
            "its owner Deployment shop/web carries heal8s.io/ignore=true",
        ),
        (
            pod_plan("quiet", "api-1", uid(&in_ns)),
            "namespace_opted_out",
            "its namespace carries heal8s.io/ignore=true",
        ),
    ];
    for (plan, reason, message) in cases {
        let f = facts(&c, &plan).await;
        assert!(matches!(f.state, LiveState::Holds(_)), "{:?}", f.state);
        assert_eq!(
            protection_says(&plan, &f),
            Some((reason.to_string(), message.to_string())),
            "{plan:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_or_replaced_by_a_namesake_is_gone() {
    let c = Cluster::new().await;
    let old = c.create(
        PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .crash_looping(5)
            .json(),
    );
    let plan = pod_plan("shop", "api-1", uid(&old));
    c.emu.delete_now("v1", "Pod", "shop", "api-1").unwrap();
    assert_eq!(
        facts(&c, &plan).await.state,
        LiveState::Gone("pod shop/api-1 no longer exists".into())
    );
    // its controller made a new one with the same name: not the pod alerted on
    c.create(
        PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .crash_looping(5)
            .json(),
    );
    let f = facts(&c, &plan).await;
    assert_eq!(
        f.state,
        LiveState::Gone("pod shop/api-1 was replaced by another with the same name".into())
    );
    assert_eq!(
        f.object, None,
        "nothing of the namesake is taken for the target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_is_healthy_now_is_cleared() {
    let c = Cluster::new().await;
    let pod = c.create(
        PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .restarts(5)
            .json(),
    );
    let f = facts(&c, &pod_plan("shop", "api-1", uid(&pod))).await;
    assert_eq!(
        f.state,
        LiveState::Cleared("pod shop/api-1 is healthy now; nothing to do".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_replaced_by_a_namesake_ends_the_owner_chain() {
    let c = Cluster::new().await;
    let rs = c.create(ReplicaSetFixture::new("shop", "api-7d9c").json());
    let pod = c.create(
        PodFixture::new("shop", "api-1")
            .owned_by(&rs)
            .crash_looping(5)
            .json(),
    );
    c.emu
        .delete_now("apps/v1", "ReplicaSet", "shop", "api-7d9c")
        .unwrap();
    // a namesake that opted out, owned by another Deployment: it is not the
    // pod's owner, so it says nothing about the pod, and its Deployment is
    // not the pod's workload
    let other = c.create(DeploymentFixture::new("shop", "other").json());
    c.create(
        ReplicaSetFixture::new("shop", "api-7d9c")
            .owned_by(&other)
            .opted_out()
            .json(),
    );
    let plan = pod_plan("shop", "api-1", uid(&pod));
    let f = facts(&c, &plan).await;
    assert!(f.owners.is_empty(), "{:?}", f.owners);
    assert_eq!(protection_says(&plan, &f), None);
    let workload = f.owner.expect("the pod's own controller, as it names it");
    assert_eq!(
        (workload.kind.as_str(), workload.name.as_str()),
        ("ReplicaSet", "api-7d9c")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_younger_than_min_age_or_already_deleting_is_cleared_and_an_older_one_holds() {
    let c = Cluster::new().await;
    c.create(NamespaceFixture::new("e2e-old").created_ago(7200).json());
    c.create(NamespaceFixture::new("e2e-new").created_ago(60).json());
    c.create(NamespaceFixture::new("e2e-going").created_ago(7200).json());
    // no namespace controller is played: it stays Terminating
    c.emu.delete("v1", "Namespace", "", "e2e-going").unwrap();
    let ns_plan = |ns: &str| {
        plan(
            JANITOR_POLICY,
            "delete-namespace",
            &alert(&[("alertname", "StaleNamespace"), ("namespace", ns)]),
        )
    };
    assert_eq!(
        facts(&c, &ns_plan("e2e-old")).await.state,
        LiveState::Holds("namespace e2e-old exists".into())
    );
    assert_eq!(
        facts(&c, &ns_plan("e2e-new")).await.state,
        LiveState::Cleared("namespace e2e-new is younger than minAge 1h".into())
    );
    assert_eq!(
        facts(&c, &ns_plan("e2e-going")).await.state,
        LiveState::Cleared("namespace e2e-going is already being deleted".into())
    );
    assert_eq!(
        facts(&c, &ns_plan("e2e-never")).await.state,
        LiveState::Gone("namespace e2e-never no longer exists".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_facts_count_the_clusters_nodes_for_the_breakers() {
    let c = Cluster::new().await;
    c.create(NodeFixture::new("w1").not_ready_for(600).json());
    c.create(NodeFixture::new("w2").unreachable_for(600).json());
    for n in ["w3", "w4"] {
        c.create(NodeFixture::new(n).json());
    }
    let plan = plan(
        JANITOR_POLICY,
        "drain-node",
        &alert(&[("alertname", "KubeNodeNotReady"), ("node", "w1")]),
    );
    let f = facts(&c, &plan).await;
    assert_eq!(f.state, LiveState::Holds("node w1 is Ready=False".into()));
    let cluster = f.cluster.unwrap();
    assert_eq!((cluster.nodes_total, cluster.nodes_unhealthy), (4, 2));
    assert!(cluster.nodes_in_remediation.is_empty());
    let ready = plan_for_node(&c, "w3").await;
    assert_eq!(ready, LiveState::Cleared("node w3 is Ready again".into()));
}

async fn plan_for_node(c: &Cluster, node: &str) -> LiveState {
    let plan = plan(
        JANITOR_POLICY,
        "drain-node",
        &alert(&[("alertname", "KubeNodeNotReady"), ("node", node)]),
    );
    facts(c, &plan).await.state
}
