//! The janitor executors (`KubeExecutor`) against the Kubernetes API
//! emulation through a real `kube::Client`, without the service around
//! them: a plan built from an alert and a policy route is carried out, and
//! the tests read the emulated cluster's objects and the Events heal8s
//! wrote. What the guard would refuse is not the executor's business; here
//! only what it does with a plan it is given.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::{Duration, Instant};

use receiver_core::Executor;
use receiver_core::policy::ProtectedPods;
use receiver_k8s::KubeExecutorSettings;
use serde_json::Value;
use support::{Cluster, INSTANCE, alert, plan, settings, terminating};
use testkit::eventually;
use testkit::fixtures::{
    JANITOR_POLICY, NamespaceFixture, NodeFixture, ObjectFixture, PodDisruptionBudgetFixture,
    PodFixture, ReplicaSetFixture,
};
use testkit::kube::Controller;

const WAIT: Duration = Duration::from_secs(5);

fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap()
}

fn pod_alert(name: &str, uid: &str) -> receiver_core::Signal {
    alert(&[
        ("alertname", "KubePodCrashLooping"),
        ("namespace", "shop"),
        ("pod", name),
        ("uid", uid),
    ])
}

fn node_alert(name: &str) -> receiver_core::Signal {
    alert(&[("alertname", "KubeNodeNotReady"), ("node", name)])
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

// ------------------------------------------------------------ delete-pod

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pod_deletes_the_pod_the_alert_named_and_leaves_an_event() {
    let c = Cluster::new().await.playing(&[Controller::Kubelet]);
    c.create(NodeFixture::new("w1").json());
    let pod = c.create(
        PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .crash_looping(5)
            .on_node("w1")
            .json(),
    );
    let plan = plan(JANITOR_POLICY, "delete-pod", &pod_alert("api-1", uid(&pod)));
    let r = c.executor(settings()).execute(&plan, false).await.unwrap();
    assert!(!r.simulated, "{r:?}");
    assert_eq!(r.message, "deleted pod shop/api-1");
    // a graceful deletion: gone once w1's kubelet confirms it
    eventually(
        WAIT,
        "the kubelet of w1 to confirm the deletion",
        || async { c.pod("api-1").is_none().then_some(()) },
    )
    .await
    .unwrap();
    let events = c.events();
    let e = events
        .iter()
        .find(|e| e["reason"] == "PodDeleted")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["action"], "Remediate");
    assert_eq!(e["note"], "heal8s deleted pod shop/api-1");
    assert_eq!(e["reportingController"], "heal8s");
    assert_eq!(e["reportingInstance"], INSTANCE);
    assert_eq!(e["regarding"]["kind"], "Pod");
    assert_eq!(e["regarding"]["uid"], uid(&pod));
    assert_eq!(e["metadata"]["namespace"], "shop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pod_leaves_a_namesake_created_since_alone() {
    let c = Cluster::new().await;
    let old = c.create(
        PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .crash_looping(5)
            .json(),
    );
    let plan = plan(JANITOR_POLICY, "delete-pod", &pod_alert("api-1", uid(&old)));
    // between the alert and the action, the pod was replaced by a namesake
    c.emu.delete_now("v1", "Pod", "shop", "api-1").unwrap();
    let new = c.create(
        PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .json(),
    );
    let err = c
        .executor(settings())
        .execute(&plan, false)
        .await
        .unwrap_err();
    assert_eq!(err.category, "kube_api", "{err:?}");
    assert!(err.message.contains("Precondition failed"), "{err:?}");
    let now = c.pod("api-1").unwrap();
    assert_eq!(uid(&now), uid(&new));
    assert!(!terminating(&now), "{now:#}");
    assert_eq!(c.event_reasons("api-1"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pod_of_a_pod_already_gone_is_success_without_an_event() {
    let c = Cluster::new().await;
    let plan = plan(
        JANITOR_POLICY,
        "delete-pod",
        &pod_alert("api-1", "9b0e1d2c-0000-4000-8000-000000000001"),
    );
    let r = c.executor(settings()).execute(&plan, false).await.unwrap();
    assert_eq!(r.message, "pod shop/api-1 was already gone");
    assert!(!r.simulated);
    assert!(c.events().is_empty(), "{:#?}", c.events());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pod_in_dry_run_asks_the_api_server_and_changes_nothing() {
    let c = Cluster::new().await;
    let pod = c.create(
        PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .crash_looping(5)
            .json(),
    );
    let plan = plan(JANITOR_POLICY, "delete-pod", &pod_alert("api-1", uid(&pod)));
    let r = c.executor(settings()).execute(&plan, true).await.unwrap();
    assert!(r.simulated, "{r:?}");
    assert!(
        r.message.starts_with(
            "dry run, validated by the API server and nothing changed: deleted pod shop/api-1"
        ),
        "{r:?}"
    );
    let after = c.pod("api-1").unwrap();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        pod["metadata"]["resourceVersion"]
    );
    // the API server answered the DELETE (dryRun: [All] in its DeleteOptions)
    let deletes = c.requests_to("/namespaces/shop/pods/api-1");
    assert_eq!(deletes, [("DELETE".to_string(), String::new(), 200)]);
    assert!(c.events().is_empty(), "{:#?}", c.events());
}

// ------------------------------------------------------------ evict-pod

/// Pods `api-1` (and `api-2` when `two`) of ReplicaSet `api-7d9c`, Ready,
/// labelled `app=api`, and a budget that keeps one of them available.
fn budgeted_pods(c: &Cluster, two: bool) -> Value {
    c.create(
        PodDisruptionBudgetFixture::new("shop", "api")
            .selecting("app", "api")
            .min_available(1)
            .json(),
    );
    if two {
        c.create(
            PodFixture::new("shop", "api-2")
                .owned_by_replicaset("api-7d9c")
                .label("app", "api")
                .json(),
        );
    }
    c.create(
        PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .label("app", "api")
            .json(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_pod_evicts_through_the_eviction_api_when_the_budget_allows() {
    let c = Cluster::new().await;
    let pod = budgeted_pods(&c, true);
    let plan = plan(JANITOR_POLICY, "evict-pod", &pod_alert("api-1", uid(&pod)));
    let r = c.executor(settings()).execute(&plan, false).await.unwrap();
    assert_eq!(r.message, "evicted pod shop/api-1");
    assert!(c.pod("api-1").is_none(), "a pod on no node goes at once");
    assert!(c.pod("api-2").is_some());
    let evictions = c.requests_to("/pods/api-1/eviction");
    assert_eq!(evictions.len(), 1, "{evictions:?}");
    assert!((200..300).contains(&evictions[0].2), "{evictions:?}");
    assert_eq!(c.event_reasons("api-1"), ["PodEvicted"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_the_budget_refuses_is_retried_until_the_timeout_then_fails() {
    let c = Cluster::new().await;
    let pod = budgeted_pods(&c, false);
    let plan = plan(JANITOR_POLICY, "evict-pod", &pod_alert("api-1", uid(&pod)));
    let started = Instant::now();
    let err = c
        .executor(settings())
        .execute(&plan, false)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.category, "timeout", "{err:?}");
    assert!(err.message.contains("PodDisruptionBudget"), "{err:?}");
    assert!(took >= Duration::from_millis(500), "{took:?}");
    let evictions = c.requests_to("/pods/api-1/eviction");
    assert!(evictions.len() >= 2, "retried: {evictions:?}");
    assert!(
        evictions.iter().all(|(m, _, s)| m == "POST" && *s == 429),
        "{evictions:?}"
    );
    assert!(!terminating(&c.pod("api-1").unwrap()));
    let events = c.events();
    let failed = events
        .iter()
        .find(|e| e["reason"] == "EvictionFailed")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(failed["type"], "Warning");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fallback_to_delete_a_refused_eviction_ends_in_a_deletion() {
    let c = Cluster::new().await;
    let pod = budgeted_pods(&c, false);
    let plan = plan(
        JANITOR_POLICY,
        "evict-pod-or-delete",
        &pod_alert("api-1", uid(&pod)),
    );
    let r = c.executor(settings()).execute(&plan, false).await.unwrap();
    assert!(r.message.contains("refused"), "{r:?}");
    assert!(
        r.message
            .ends_with("; fell back to deletion: deleted pod shop/api-1"),
        "{r:?}"
    );
    assert!(c.pod("api-1").is_none());
    assert_eq!(c.event_reasons("api-1"), ["PodDeleted"]);
}

// ------------------------------------------------------------ drain-node

/// Node `w1` (Ready, or NotReady for ten minutes) with a ReplicaSet's pod
/// `api-1` and a DaemonSet's pod `logs-1`; node `w2` with `api-2`.
fn two_nodes(c: &Cluster, w1_ready: bool) {
    let w1 = NodeFixture::new("w1");
    c.create(if w1_ready { w1 } else { w1.not_ready_for(600) }.json());
    c.create(NodeFixture::new("w2").json());
    for (name, node) in [("api-1", "w1"), ("api-2", "w2")] {
        c.create(
            PodFixture::new("shop", name)
                .owned_by_replicaset("api-7d9c")
                .label("app", "api")
                .on_node(node)
                .json(),
        );
    }
    c.create(
        PodFixture::new("shop", "logs-1")
            .owned_by_daemonset("logs")
            .on_node("w1")
            .json(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_cordons_the_node_and_waits_until_its_pods_are_gone_but_leaves_daemonset_pods() {
    let c = Cluster::new().await.playing(&[Controller::Kubelet]);
    two_nodes(&c, true);
    let plan = plan(JANITOR_POLICY, "drain-node", &node_alert("w1"));
    let r = c.executor(settings()).execute(&plan, false).await.unwrap();
    assert_eq!(
        r.message,
        "cordoned and drained node w1: evicted [shop/api-1], skipped [shop/logs-1 (DaemonSet)]"
    );
    // the drain waited for the kubelet of w1 to confirm, as kubectl drain does
    assert!(c.pod("api-1").is_none());
    assert!(!terminating(&c.pod("logs-1").unwrap()));
    assert!(!terminating(&c.pod("api-2").unwrap()));
    let w1 = c.node("w1").unwrap();
    assert_eq!(w1["spec"]["unschedulable"], true);
    assert_eq!(annotation(&w1, "heal8s.io/remediation"), Some("drained"));
    assert_eq!(annotation(&w1, "heal8s.io/cordoned"), Some("true"));
    assert!(c.node("w2").unwrap()["spec"]["unschedulable"].is_null());
    assert_eq!(c.event_reasons("w1"), ["NodeCordoned", "NodeDrained"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_of_a_dead_node_leaves_protected_and_opted_out_pods_and_says_which_stay_terminating()
 {
    let c = Cluster::new().await.playing(&[Controller::Kubelet]);
    two_nodes(&c, false);
    c.create(
        PodFixture::new("kube-system", "coredns-1")
            .owned_by_replicaset("coredns-6d4b")
            .on_node("w1")
            .json(),
    );
    // opted out on its owner, not on itself: the drain reads the owner chain
    let rs = c.create(ReplicaSetFixture::new("shop", "db-5f6a").opted_out().json());
    c.create(
        PodFixture::new("shop", "db-1")
            .owned_by(&rs)
            .on_node("w1")
            .json(),
    );
    let plan = plan(JANITOR_POLICY, "drain-node", &node_alert("w1"));
    let r = c.executor(settings()).execute(&plan, false).await.unwrap();
    assert!(r.message.contains("evicted [shop/api-1]"), "{r:?}");
    assert!(
        r.message.contains("kube-system/coredns-1 (protected_namespace: namespace kube-system is protected; left on the cordoned node)"),
        "{r:?}"
    );
    assert!(
        r.message.contains(
            "shop/db-1 (opted_out: its owner ReplicaSet shop/db-5f6a carries heal8s.io/ignore=true"
        ),
        "{r:?}"
    );
    assert!(
        r.message.contains("the node's kubelet is gone, so evicted pods stay Terminating until the node is fenced or deleted: [shop/api-1]"),
        "{r:?}"
    );
    // no kubelet confirms on a NotReady node: evicted, still Terminating
    assert!(terminating(&c.pod("api-1").unwrap()));
    assert!(!terminating(
        &c.get("v1", "Pod", "kube-system", "coredns-1").unwrap()
    ));
    assert!(!terminating(&c.pod("db-1").unwrap()));
    assert_eq!(c.node("w1").unwrap()["spec"]["unschedulable"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_protected_pods_refuse_a_drain_changes_nothing_not_even_the_cordon() {
    let c = Cluster::new().await;
    two_nodes(&c, false);
    c.create(
        PodFixture::new("kube-system", "coredns-1")
            .owned_by_replicaset("coredns-6d4b")
            .on_node("w1")
            .json(),
    );
    let x = c.executor(KubeExecutorSettings {
        protected_pods: ProtectedPods::Refuse,
        ..settings()
    });
    let plan = plan(JANITOR_POLICY, "drain-node", &node_alert("w1"));
    let err = x.execute(&plan, false).await.unwrap_err();
    assert_eq!(err.category, "refused", "{err:?}");
    assert!(
        err.message
            .contains("kube-system/coredns-1 must not be touched"),
        "{err:?}"
    );
    let w1 = c.node("w1").unwrap();
    assert!(w1["spec"]["unschedulable"].is_null(), "{w1:#}");
    assert_eq!(annotation(&w1, "heal8s.io/remediation"), None);
    assert!(!terminating(&c.pod("api-1").unwrap()));
    assert!(c.events().is_empty(), "{:#?}", c.events());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_only_evicts_nothing_and_a_persons_cordon_is_not_taken_for_heal8s_own() {
    let c = Cluster::new().await;
    two_nodes(&c, false);
    c.create(NodeFixture::new("w3").cordoned().not_ready_for(600).json());
    let x = c.executor(settings());
    let r = x
        .execute(
            &plan(JANITOR_POLICY, "cordon-node", &node_alert("w1")),
            false,
        )
        .await
        .unwrap();
    assert_eq!(r.message, "cordoned node w1");
    let w1 = c.node("w1").unwrap();
    assert_eq!(w1["spec"]["unschedulable"], true);
    assert_eq!(annotation(&w1, "heal8s.io/remediation"), Some("cordoned"));
    assert_eq!(annotation(&w1, "heal8s.io/cordoned"), Some("true"));
    assert!(!terminating(&c.pod("api-1").unwrap()));
    assert_eq!(c.event_reasons("w1"), ["NodeCordoned"]);

    x.execute(
        &plan(JANITOR_POLICY, "cordon-node", &node_alert("w3")),
        false,
    )
    .await
    .unwrap();
    let w3 = c.node("w3").unwrap();
    assert_eq!(annotation(&w3, "heal8s.io/remediation"), Some("cordoned"));
    assert_eq!(
        annotation(&w3, "heal8s.io/cordoned"),
        None,
        "w3 was cordoned before heal8s came: heal8s must never undo it"
    );
}

// ------------------------------------------------------------ delete-node

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_node_drains_first_then_deletes_the_node() {
    let c = Cluster::new().await;
    two_nodes(&c, false);
    let r = c
        .executor(settings())
        .execute(
            &plan(JANITOR_POLICY, "delete-node", &node_alert("w1")),
            false,
        )
        .await
        .unwrap();
    assert_eq!(r.message, "drained (evicted 1), then deleted node w1");
    assert!(c.node("w1").is_none());
    assert!(c.node("w2").is_some());
    assert_eq!(
        c.event_reasons("w1"),
        ["NodeCordoned", "NodeDrained", "NodeDeleted"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_drain_a_budget_blocks_is_not_deleted() {
    let c = Cluster::new().await;
    two_nodes(&c, false);
    c.create(
        PodDisruptionBudgetFixture::new("shop", "api")
            .selecting("app", "api")
            .min_available(2)
            .json(),
    );
    let err = c
        .executor(settings())
        .execute(
            &plan(JANITOR_POLICY, "delete-node", &node_alert("w1")),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.category, "refused", "{err:?}");
    assert!(
        err.message
            .contains("node w1 was not deleted because its drain failed"),
        "{err:?}"
    );
    assert!(
        err.message
            .contains("shop/api-1 blocked by PodDisruptionBudget shop/api"),
        "{err:?}"
    );
    let w1 = c.node("w1").expect("the node must not be deleted");
    assert_eq!(annotation(&w1, "heal8s.io/remediation"), Some("failed"));
    assert!(!terminating(&c.pod("api-1").unwrap()));
    assert_eq!(c.event_reasons("w1"), ["NodeCordoned", "NodeDrainFailed"]);
}

// ------------------------------------------------------------ cleanup-resource

fn resource_alert(
    api_group: &str,
    version: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> receiver_core::Signal {
    alert(&[
        ("alertname", "StaleResource"),
        ("customresource_group", api_group),
        ("customresource_version", version),
        ("customresource_kind", kind),
        ("namespace", ns),
        ("name", name),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_resource_deletes_the_custom_resource_and_again_is_already_gone() {
    let c = Cluster::new().await;
    c.create(NamespaceFixture::new("e2e-1").json());
    c.create(
        ObjectFixture::new("kubevirt.io/v1", "VirtualMachine", "e2e-1", "vm-a")
            .spec("running", serde_json::json!(true))
            .json(),
    );
    let plan = plan(
        JANITOR_POLICY,
        "cleanup-resource",
        &resource_alert("kubevirt.io", "v1", "VirtualMachine", "e2e-1", "vm-a"),
    );
    let x = c.executor(settings());
    let r = x.execute(&plan, false).await.unwrap();
    assert_eq!(r.message, "deleted VirtualMachine e2e-1/vm-a");
    assert!(
        c.get("kubevirt.io/v1", "VirtualMachine", "e2e-1", "vm-a")
            .is_none()
    );
    assert_eq!(c.event_reasons("vm-a"), ["ResourceDeleted"]);
    let again = x.execute(&plan, false).await.unwrap();
    assert_eq!(again.message, "VirtualMachine e2e-1/vm-a was already gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_finalizers_are_removed_only_when_the_route_asks_and_past_the_gate() {
    let c = Cluster::new().await;
    c.create(NamespaceFixture::new("e2e-1").json());
    const DV: (&str, &str) = ("cdi.kubevirt.io/v1beta1", "DataVolume");
    const FINALIZER: &str = "cdi.kubevirt.io/dataVolumeFinalizer";
    c.create(
        ObjectFixture::new(DV.0, DV.1, "e2e-1", "dv-a")
            .finalizer(FINALIZER)
            .json(),
    );
    // someone deleted it; its finalizer's controller is gone, so it hangs
    c.emu.delete(DV.0, DV.1, "e2e-1", "dv-a").unwrap();
    let signal = resource_alert("cdi.kubevirt.io", "v1beta1", "DataVolume", "e2e-1", "dv-a");
    let finalizers = |c: &Cluster| {
        c.get(DV.0, DV.1, "e2e-1", "dv-a")
            .map(|o| o["metadata"]["finalizers"].clone())
    };

    // the route does not ask for it
    let r = c
        .executor(settings())
        .execute(&plan(JANITOR_POLICY, "cleanup-resource", &signal), false)
        .await
        .unwrap();
    assert!(
        r.message.contains("finalizer removal is not enabled"),
        "{r:?}"
    );
    assert_eq!(finalizers(&c), Some(serde_json::json!([FINALIZER])));

    // the route asks, but the object has not been stuck for long enough (5m)
    let asks = plan(JANITOR_POLICY, "cleanup-resource-finalizers", &signal);
    let r = c.executor(settings()).execute(&asks, false).await.unwrap();
    assert!(
        r.message.contains(&format!(
            "finalizers [{FINALIZER}] are removed only after 300s"
        )),
        "{r:?}"
    );
    assert_eq!(finalizers(&c), Some(serde_json::json!([FINALIZER])));
    assert_eq!(c.event_reasons("dv-a"), Vec::<String>::new());

    // past the gate: removed, as a recorded last resort
    let x = c.executor(KubeExecutorSettings {
        finalizers_after: Duration::ZERO,
        ..settings()
    });
    let r = x.execute(&asks, false).await.unwrap();
    assert!(
        r.message.starts_with(&format!(
            "heal8s removed finalizers [{FINALIZER}] from DataVolume e2e-1/dv-a"
        )),
        "{r:?}"
    );
    assert_eq!(
        finalizers(&c),
        None,
        "the object is gone with its finalizers"
    );
    let events = c.events();
    let e = events
        .iter()
        .find(|e| e["reason"] == "FinalizersRemoved")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(e["type"], "Warning");
}

// ------------------------------------------------------------ delete-namespace

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_namespace_deletes_it_and_the_namespace_controller_empties_it() {
    let c = Cluster::new().await.playing(&[Controller::Namespace]);
    c.create(NamespaceFixture::new("e2e-1").created_ago(7200).json());
    c.create(PodFixture::new("e2e-1", "runner").json());
    let plan = plan(
        JANITOR_POLICY,
        "delete-namespace",
        &alert(&[("alertname", "StaleNamespace"), ("namespace", "e2e-1")]),
    );
    let r = c.executor(settings()).execute(&plan, false).await.unwrap();
    assert_eq!(r.message, "deleted namespace e2e-1");
    eventually(WAIT, "the namespace controller to remove e2e-1", || async {
        c.get("v1", "Namespace", "", "e2e-1")
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    assert!(c.get("v1", "Pod", "e2e-1", "runner").is_none());
    assert_eq!(c.event_reasons("e2e-1"), ["NamespaceDeleted"]);
    assert!(c.get("v1", "Namespace", "", "shop").is_some());
}
