//! End to end against the Kubernetes API emulation: a real `heal8s serve`
//! process with a real `kube::Client` (from a kubeconfig) watches and acts on
//! the emulated cluster. The emulation runs no controllers; every cluster
//! here plays the kubelets of its Ready nodes (graceful pod deletions are
//! confirmed; pods on nodes that are not Ready stay Terminating) and the
//! namespace controller, and tests script what a ReplicaSet or a returning
//! kubelet would do. The emulation serves from the test's own
//! runtime, so the tests run multi-threaded: waiting for a process to exit
//! blocks a thread, never the emulation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use receiver_core::{Outcome, OutcomeKind, RefusalReason, RemediationKind};
use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator, PlayedControllers, RequestMatch};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "kube-e2e-token";
const WAIT: Duration = Duration::from_secs(30);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

struct Cluster {
    emu: Emulator,
    dir: TempDir,
    /// The kubelets of Ready nodes and the namespace controller, played.
    _controllers: PlayedControllers,
}

impl Cluster {
    async fn new() -> Cluster {
        let emu = Emulator::start().await.unwrap();
        let controllers = emu.play(&[Controller::Kubelet, Controller::Namespace]);
        Cluster {
            emu,
            dir: TempDir::new("kube-e2e"),
            _controllers: controllers,
        }
    }

    fn namespace(&self, name: &str) {
        if !self.exists("v1", "Namespace", "", name) {
            self.emu
                .create(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
                )
                .unwrap();
        }
    }

    fn node(&self, name: &str, ready: &str, since_secs: i64) {
        self.emu
            .create(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                           "lastTransitionTime": ago(since_secs)}]}
            }))
            .unwrap();
    }

    /// A Deployment with one ReplicaSet, as the Deployment controller would leave them.
    fn deployment(&self, ns: &str, name: &str, rs: &str) {
        let d = self
            .emu
            .create(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": name, "image": "registry/app:1"}]}}}
            }))
            .unwrap();
        self.emu
            .create(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs, "namespace": ns,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                         "uid": d["metadata"]["uid"], "controller": true}]},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": name, "image": "registry/app:1"}]}}}
            }))
            .unwrap();
    }

    /// A pod of ReplicaSet `rs` (or a bare/DaemonSet pod), crash looping or healthy.
    fn pod(
        &self,
        ns: &str,
        name: &str,
        owner: Option<(&str, &str)>,
        node: &str,
        crashloop: bool,
    ) -> Value {
        let owner_refs = match owner {
            Some((kind, oname)) => {
                let api = if kind == "ReplicaSet" || kind == "DaemonSet" {
                    "apps/v1"
                } else {
                    "v1"
                };
                // the owner's real UID when it exists, as its controller would set it
                let uid = self
                    .emu
                    .get(api, kind, ns, oname)
                    .map_or(json!("owner-uid"), |o| o["metadata"]["uid"].clone());
                json!([{"apiVersion": api, "kind": kind, "name": oname, "uid": uid, "controller": true}])
            }
            None => json!([]),
        };
        let (state, ready) = if crashloop {
            (json!({"waiting": {"reason": "CrashLoopBackOff"}}), "False")
        } else {
            (json!({"running": {"startedAt": ago(600)}}), "True")
        };
        self.emu
            .create(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": "api"},
                             "ownerReferences": owner_refs},
                "spec": {"nodeName": node, "containers": [{"name": "api", "image": "registry/app:2"}]},
                "status": {"phase": "Running", "startTime": ago(600),
                    "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": ago(300)},
                                   {"type": "ContainersReady", "status": ready, "lastTransitionTime": ago(300)}],
                    "containerStatuses": [{"name": "api", "image": "registry/app:2", "imageID": "",
                        "ready": !crashloop, "restartCount": if crashloop { 5 } else { 0 }, "state": state}]}
            }))
            .unwrap()
    }

    fn exists(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> bool {
        self.emu.get(api_version, kind, ns, name).is_some()
    }

    async fn heal8s(&self, policy: &str, extra: &[&str]) -> Heal8s {
        let kubeconfig = self.dir.path().join("kubeconfig");
        self.emu.write_kubeconfig(&kubeconfig).unwrap();
        let policy_file = self.dir.path().join("policy.yaml");
        std::fs::write(&policy_file, policy).unwrap();
        let mut args = vec![
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy_file.to_str().unwrap(),
            // a short stability window keeps verification quick in tests
            "--verify-stable-for",
            "1s",
        ];
        if !extra.contains(&"--eviction-retry") {
            args.extend_from_slice(&["--eviction-retry", "200ms"]);
        }
        args.extend_from_slice(extra);
        Heal8s::start(TOKEN, &args).await.unwrap()
    }

    fn events(&self, ns: &str) -> Vec<Value> {
        self.emu.list("events.k8s.io/v1", "Event", ns)
    }
}

/// Fast detector settings for tests, on top of `profile`.
fn policy(profile: &str, extra: &str, routes: &str) -> String {
    format!(
        r#"profile: {profile}
detectors:
  resync: 1s
  pods: {{waitingAfter: 1s, pendingAfter: 1s, unschedulableAfter: 1s}}
  nodes: {{notReadyAfter: 1s, unknownAfter: 1s}}
  customResources: {{terminatingAfter: 1s, resources: ["datavolumes.cdi.kubevirt.io/v1beta1"]}}
{extra}
routes:
{routes}
"#
    )
}

async fn outcome_with(h: &Heal8s, pred: impl Fn(&Outcome) -> bool) -> Outcome {
    let found = eventually(WAIT, "an outcome", || {
        let outcomes = h.outcomes();
        let pred = &pred;
        async move { outcomes.await.into_iter().find(|o| pred(o)) }
    })
    .await;
    match found {
        Ok(o) => o,
        Err(e) => panic!(
            "{e}\noutcomes: {:#?}\n--- heal8s ---\n{}",
            h.outcomes().await,
            h.proc.output()
        ),
    }
}

async fn gone(c: &Cluster, h: &Heal8s, api_version: &str, kind: &str, ns: &str, name: &str) {
    let r = eventually(WAIT, &format!("{kind} {name} to be deleted"), || async {
        (!c.exists(api_version, kind, ns, name)).then_some(())
    })
    .await;
    if let Err(e) = r {
        panic!(
            "{e}\noutcomes: {:#?}\n--- heal8s ---\n{}",
            h.outcomes().await,
            h.proc.output()
        );
    }
}

fn is(o: &Outcome, result: OutcomeKind, reason: Option<RefusalReason>, target_has: &str) -> bool {
    o.result == result
        && reason.is_none_or(|r| o.reason == Some(r))
        && o.target.as_deref().is_some_and(|t| t.contains(target_has))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashlooping_pod_of_a_deployment_is_deleted_once_then_the_cooldown_holds() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("shop", "api", "api-7d9c");
    c.pod(
        "shop",
        "api-7d9c-aaaaa",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            ),
            &[],
        )
        .await;
    gone(&c, &h, "v1", "Pod", "shop", "api-7d9c-aaaaa").await;
    let acted = outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "api-7d9c-aaaaa")).await;
    let workload = acted.plan.as_ref().and_then(|p| p.workload.as_ref());
    assert_eq!(
        workload.map(|w| w.kind.as_str()),
        Some("Deployment"),
        "{acted:#?}"
    );
    assert_eq!(workload.map(|w| w.name.as_str()), Some("api"));
    // the ReplicaSet recreates the pod under a new name; it crash loops too
    c.pod(
        "shop",
        "api-7d9c-bbbbb",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    let refused = outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::Cooldown),
            "api-7d9c-bbbbb",
        )
    })
    .await;
    assert!(
        refused.message.contains("Deployment/shop/api"),
        "{refused:#?}"
    );
    assert!(c.exists("v1", "Pod", "shop", "api-7d9c-bbbbb"));
    // the action is recorded as a Remediation in the pod's namespace
    let records = c.emu.list("heal8s.io/v1alpha1", "Remediation", "shop");
    let rec = records
        .iter()
        .find(|r| r["spec"]["target"]["name"] == "api-7d9c-aaaaa")
        .unwrap_or_else(|| panic!("no record: {records:#?}"));
    assert!(
        rec["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("delete-pod-pod-api-7d9c-aaaaa-"),
        "{rec:#}"
    );
    assert_eq!(rec["spec"]["remediation"], "delete-pod");
    assert_eq!(rec["spec"]["target"]["workload"]["kind"], "Deployment");
    assert_eq!(rec["spec"]["trigger"]["alertname"], "Heal8sPodCrashLooping");
    assert_eq!(rec["spec"]["trigger"]["labels"]["heal8s_detector"], "pods");
    assert_eq!(
        rec["status"]["phase"], "Acting",
        "not verified yet: {rec:#}"
    );
    assert_eq!(rec["status"]["attempts"], 1);
    // the deletion left a Kubernetes Event on the pod
    let events = c.events("shop");
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "PodDeleted" && e["regarding"]["name"] == "api-7d9c-aaaaa"),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_in_kube_system_is_never_touched() {
    let c = Cluster::new().await;
    c.namespace("kube-system");
    c.node("w1", "True", 600);
    c.pod(
        "kube-system",
        "coredns-1",
        Some(("ReplicaSet", "coredns-x")),
        "w1",
        true,
    );
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            ),
            &[],
        )
        .await;
    outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::ProtectedNamespace),
            "coredns-1",
        )
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(c.exists("v1", "Pod", "kube-system", "coredns-1"));
    assert!(
        c.emu.requests().iter().all(|r| r.method != "DELETE"),
        "heal8s sent a DELETE: {:?}",
        c.emu
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_blocked_by_a_pdb_retries_then_gives_up_cleanly() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", true);
    c.emu
        .create(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                       "metadata": {"name": "api", "namespace": "shop"},
                       "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}}),
        )
        .unwrap();
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: evict-pod}",
            ),
            &["--eviction-timeout", "2s"],
        )
        .await;
    let failed = outcome_with(&h, |o| is(o, OutcomeKind::Failed, None, "api-1")).await;
    let msg = &failed.message;
    assert!(msg.contains("PodDisruptionBudget"), "{msg}");
    assert!(c.exists("v1", "Pod", "shop", "api-1"));
    let evictions = c
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
        .count();
    assert!(evictions >= 3, "only {evictions} eviction attempts");
    let events = c.events("shop");
    assert!(
        events.iter().any(|e| e["reason"] == "EvictionFailed"),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_ready_node_is_cordoned_and_drained_but_daemonset_pods_stay() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.namespace("heal8s");
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", false);
    c.pod("shop", "logs-1", Some(("DaemonSet", "logs")), "w1", false);
    c.pod("shop", "api-2", Some(("ReplicaSet", "api-rs")), "w2", false);
    let h = c
        .heal8s(
            &policy("production", "", "  - {matchers: ['alertname=\"Heal8sNodeNotReady\"'], remediation: drain-node, params: {timeout: 20s}}"),
            &[],
        )
        .await;
    let acted = outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "Node w1")).await;
    assert!(acted.message.contains("shop/api-1"), "{acted:#?}");
    let node = c.emu.get("v1", "Node", "", "w1").unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_eq!(
        node["metadata"]["annotations"]["heal8s.io/remediation"],
        "drained"
    );
    // evicted, but w1's kubelet is gone: nothing confirms the deletion, and
    // the pod stays Terminating, as on a real cluster
    let api_1 = c.emu.get("v1", "Pod", "shop", "api-1").unwrap();
    assert!(
        api_1["metadata"]["deletionTimestamp"].is_string(),
        "{api_1:#}"
    );
    assert!(
        c.exists("v1", "Pod", "shop", "logs-1"),
        "DaemonSet pods are not evicted"
    );
    assert!(
        c.exists("v1", "Pod", "shop", "api-2"),
        "pods on other nodes stay"
    );
    assert!(c.emu.get("v1", "Node", "", "w2").unwrap()["spec"]["unschedulable"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_drain_fails_is_not_deleted() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", false);
    c.emu
        .create(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                       "metadata": {"name": "api", "namespace": "shop"},
                       "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}}),
        )
        .unwrap();
    let h = c
        .heal8s(
            &policy(
                "production",
                "features: {deleteNodes: true}",
                "  - {matchers: ['alertname=\"Heal8sNodeNotReady\"'], remediation: delete-node, params: {drainTimeout: 10s}}",
            ),
            &[],
        )
        .await;
    let failed = outcome_with(&h, |o| is(o, OutcomeKind::Failed, None, "Node w1")).await;
    assert!(failed.message.contains("not deleted"), "{failed:#?}");
    let node = c
        .emu
        .get("v1", "Node", "", "w1")
        .expect("the node must not be deleted");
    assert_eq!(
        node["metadata"]["annotations"]["heal8s.io/remediation"],
        "failed"
    );
    assert!(c.exists("v1", "Pod", "shop", "api-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_half_the_nodes_not_ready_nothing_is_drained() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "False", 600);
    c.node("w2", "Unknown", 600);
    c.node("w3", "True", 600);
    c.node("w4", "True", 600);
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", false);
    let h = c
        .heal8s(
            &policy("production", "", "  - {matchers: ['alertname=~\"Heal8sNodeNotReady|Heal8sNodeUnreachable\"'], remediation: drain-node}"),
            &[],
        )
        .await;
    outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::Partition),
            "Node w1",
        )
    })
    .await;
    outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::Partition),
            "Node w2",
        )
    })
    .await;
    for n in ["w1", "w2"] {
        assert!(
            c.emu.get("v1", "Node", "", n).unwrap()["spec"]["unschedulable"].is_null(),
            "{n} cordoned"
        );
    }
    assert!(c.exists("v1", "Pod", "shop", "api-1"));
}

fn vm_and_datavolume(c: &Cluster) {
    c.namespace("e2e-1");
    c.emu
        .create(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                       "metadata": {"name": "vm-a", "namespace": "e2e-1", "creationTimestamp": ago(600)},
                       "spec": {"running": true}, "status": {"printableStatus": "Running"}}))
        .unwrap();
    c.emu
        .create(
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                       "metadata": {"name": "dv-a", "namespace": "e2e-1",
                                    "finalizers": ["cdi.kubevirt.io/dataVolumeFinalizer"]},
                       "spec": {}}),
        )
        .unwrap();
    // someone deleted it; the finalizer's controller is gone, so it hangs
    c.emu
        .delete("cdi.kubevirt.io/v1beta1", "DataVolume", "e2e-1", "dv-a")
        .unwrap();
}

const CLEANUP_ROUTES: &str = "  - {matchers: ['alertname=\"Heal8sStaleVirtualMachine\"'], remediation: cleanup-resource, params: {apiVersion: kubevirt.io/v1, kind: VirtualMachine}}
  - {matchers: ['alertname=\"Heal8sResourceStuckTerminating\"'], remediation: cleanup-resource, params: {removeFinalizers: true}}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cluster_profile_cleans_a_stale_vm_and_a_stuck_terminating_datavolume() {
    let c = Cluster::new().await;
    vm_and_datavolume(&c);
    // the DataVolume's last state, as a watch sees it go: the state the
    // finalizer-removal patch left (as the API server's DELETED event carries)
    let dvs: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        c.emu.client().await.unwrap(),
        "e2e-1",
        &kube::discovery::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("cdi.kubevirt.io", "v1beta1", "DataVolume"),
            "datavolumes",
        ),
    );
    let rv = dvs
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = futures::StreamExt::boxed(
        dvs.watch(&kube::api::WatchParams::default(), &rv)
            .await
            .unwrap(),
    );
    let last_state = tokio::spawn(async move {
        while let Some(Ok(e)) = futures::StreamExt::next(&mut events).await {
            if let kube::api::WatchEvent::Deleted(o) = e {
                return Some(o);
            }
        }
        None
    });
    let h = c
        .heal8s(&policy("test-cluster", "", CLEANUP_ROUTES), &[])
        .await;
    gone(&c, &h, "kubevirt.io/v1", "VirtualMachine", "e2e-1", "vm-a").await;
    gone(
        &c,
        &h,
        "cdi.kubevirt.io/v1beta1",
        "DataVolume",
        "e2e-1",
        "dv-a",
    )
    .await;
    let removed = outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "dv-a")).await;
    assert!(
        removed
            .message
            .contains("removed finalizers [cdi.kubevirt.io/dataVolumeFinalizer]"),
        "{removed:#?}"
    );
    let events = c.events("e2e-1");
    assert!(
        events.iter().any(|e| e["reason"] == "FinalizersRemoved"),
        "{events:#?}"
    );
    // the patch that removed the finalizers carried heal8s's marks
    let last = tokio::time::timeout(Duration::from_secs(10), last_state)
        .await
        .unwrap()
        .unwrap()
        .expect("the DataVolume's deletion, watched");
    let marks = last.metadata.annotations.unwrap_or_default();
    assert_eq!(
        marks.get("heal8s.io/changed-by").map(String::as_str),
        Some("heal8s"),
        "{marks:#?}"
    );
    assert_eq!(
        marks.get("heal8s.io/reason").map(String::as_str),
        Some("Heal8sResourceStuckTerminating"),
        "{marks:#?}"
    );
    assert!(marks.contains_key("heal8s.io/changed-at"), "{marks:#?}");
    let record = &marks["heal8s.io/record"];
    assert!(
        c.emu
            .get("heal8s.io/v1alpha1", "Remediation", "e2e-1", record)
            .is_some(),
        "the mark names the record: {record}"
    );
    assert_eq!(
        last.metadata.finalizers.unwrap_or_default(),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_profile_removes_no_finalizers_and_deletes_no_vms() {
    let c = Cluster::new().await;
    vm_and_datavolume(&c);
    let extra = "  virtualMachines: {enabled: true, staleAge: 6m}\n  # detectors on, cleanup features off (production)";
    let p = policy("production", "", CLEANUP_ROUTES).replace(
        "  customResources: {terminatingAfter: 1s,",
        &format!("{extra}\n  customResources: {{enabled: true, terminatingAfter: 1s,"),
    );
    let h = c.heal8s(&p, &[]).await;
    outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::Disabled),
            "vm-a",
        )
    })
    .await;
    outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::Disabled),
            "dv-a",
        )
    })
    .await;
    assert!(c.exists("kubevirt.io/v1", "VirtualMachine", "e2e-1", "vm-a"));
    let dv = c
        .emu
        .get("cdi.kubevirt.io/v1beta1", "DataVolume", "e2e-1", "dv-a")
        .unwrap();
    assert_eq!(
        dv["metadata"]["finalizers"][0],
        "cdi.kubevirt.io/dataVolumeFinalizer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_test_namespace_is_deleted_and_an_excluded_one_is_not() {
    let c = Cluster::new().await;
    c.namespace("heal8s");
    for ns in ["test-1", "test-keep-2"] {
        c.emu
            .create(json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": ns, "creationTimestamp": ago(3600)}}))
            .unwrap();
    }
    c.emu
        .create(json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "test-new-3"}}))
        .unwrap();
    let h = c
        .heal8s(
            &policy("test-cluster", "", "  - {matchers: ['alertname=\"Heal8sStaleNamespace\"'], remediation: delete-namespace}"),
            &["--namespaces", "test-1", "--exclude-namespaces", "test-keep-*", "--stale-age", "10m"],
        )
        .await;
    gone(&c, &h, "v1", "Namespace", "", "test-1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        c.exists("v1", "Namespace", "", "test-keep-2"),
        "excluded namespaces are never deleted"
    );
    assert!(
        c.exists("v1", "Namespace", "", "test-new-3"),
        "young namespaces are not stale"
    );
    // the detector's signal resolves once the namespace is gone, and the
    // record settles on it, as docs/records.md promises
    let record = eventually(WAIT, "the namespace record to settle", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
            .into_iter()
            .chain(c.emu.list("heal8s.io/v1alpha1", "Remediation", "test-1"))
            .find(|r| {
                r["spec"]["remediation"] == "delete-namespace" && r["status"]["phase"] != "Acting"
            })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    // the detector stops seeing the namespace once its deletion is marked;
    // the record settles when the namespace controller (played here) has
    // removed it, not before
    assert_eq!(
        (&record["status"]["phase"], &record["status"]["reason"]),
        (&json!("Succeeded"), &json!("Recovered")),
        "{record:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_about_a_pod_that_recovered_or_vanished_does_nothing() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.pod(
        "shop",
        "api-healthy",
        Some(("ReplicaSet", "api-rs")),
        "w1",
        false,
    );
    let p = policy(
        "production",
        "",
        "  - {matchers: ['alertname=\"KubePodCrashLooping\"'], remediation: delete-pod}",
    )
    .replace("  pods: {", "  pods: {enabled: false, ");
    let h = c.heal8s(&p, &[]).await;
    let alert = |pod: &str| {
        json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}", "alerts": [{
            "status": "firing", "startsAt": ago(60), "endsAt": "0001-01-01T00:00:00Z", "fingerprint": format!("fp-{pod}"),
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": pod, "container": "api"}}]})
    };
    for pod in ["api-healthy", "api-vanished"] {
        assert_eq!(h.post_webhook(TOKEN, &alert(pod)).await, 200);
    }
    outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::ConditionCleared),
            "api-healthy",
        )
    })
    .await;
    outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::TargetGone),
            "api-vanished",
        )
    })
    .await;
    assert!(c.exists("v1", "Pod", "shop", "api-healthy"));
    assert!(c.emu.requests().iter().all(|r| r.method != "DELETE"));
    let _ = RequestMatch::any();
}

/// Behind a central Alertmanager, an alert about a pod of another cluster
/// names a pod that may exist here too: the namesake is never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_about_another_cluster_never_touches_a_namesake_here() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("shop", "api", "api-7d9c");
    c.pod(
        "shop",
        "api-7d9c-aaaaa",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    let p = policy(
        "production",
        "",
        "  - {matchers: ['alertname=\"KubePodCrashLooping\"'], remediation: delete-pod}",
    )
    .replace("  pods: {", "  pods: {enabled: false, ");
    let h = c.heal8s(&p, &["--cluster-name", "prod-eu-1"]).await;
    let alert = |cluster: &str| {
        json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}", "alerts": [{
            "status": "firing", "startsAt": ago(60), "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": format!("fp-{cluster}"),
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "api-7d9c-aaaaa",
                       "container": "api", "cluster": cluster}}]})
    };
    assert_eq!(h.post_webhook(TOKEN, &alert("prod-eu-2")).await, 200);
    let refused = outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::WrongCluster),
            "api-7d9c-aaaaa",
        )
    })
    .await;
    assert!(refused.message.contains("prod-eu-2"), "{refused:#?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(c.exists("v1", "Pod", "shop", "api-7d9c-aaaaa"));
    assert!(
        c.emu.requests().iter().all(|r| r.method != "DELETE"),
        "heal8s sent a DELETE for another cluster's alert"
    );
    // the same alert about this cluster is acted on: the setup would delete
    assert_eq!(h.post_webhook(TOKEN, &alert("prod-eu-1")).await, 200);
    gone(&c, &h, "v1", "Pod", "shop", "api-7d9c-aaaaa").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_asks_the_api_server_and_changes_nothing() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", true);
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            ),
            &["--dry-run"],
        )
        .await;
    let o = outcome_with(&h, |o| is(o, OutcomeKind::Observed, None, "api-1")).await;
    assert!(o.message.contains("nothing changed"), "{o:#?}");
    assert!(c.exists("v1", "Pod", "shop", "api-1"));
    let deletes: Vec<_> = c
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    // kube sends dryRun in the DeleteOptions body; the pod surviving the DELETE shows it was honoured
    assert!(!deletes.is_empty(), "the API server was asked");
    assert!(c.events("shop").is_empty(), "no Event for a dry run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_strain_broken_non_test_pods_are_evicted_and_test_pods_are_not() {
    let c = Cluster::new().await;
    for ns in ["web", "test-1"] {
        c.namespace(ns);
    }
    c.emu
        .create(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ago(600)},
                {"type": "MemoryPressure", "status": "True", "lastTransitionTime": ago(60)}]}}),
        )
        .unwrap();
    c.node("w2", "True", 600);
    c.pod(
        "web",
        "web-crash",
        Some(("ReplicaSet", "web-rs")),
        "w1",
        true,
    );
    c.pod("web", "web-ok", Some(("ReplicaSet", "web-rs")), "w1", false);
    c.pod(
        "test-1",
        "test-crash",
        Some(("ReplicaSet", "t-rs")),
        "w1",
        true,
    );
    let p = policy(
        "production",
        "features: {strainEviction: true}",
        "  - {matchers: ['alertname=\"Heal8sStrainRelief\"'], remediation: evict-pod}",
    )
    .replace("  resync: 1s\n", "  resync: 1s\n  strainRelief: {every: 1s, maxPerRun: 5}\n  namespaces: {enabled: true, watch: ['test-*']}\n");
    let h = c.heal8s(&p, &[]).await;
    gone(&c, &h, "v1", "Pod", "web", "web-crash").await;
    // creating namespaces while strained is logged with guidance
    c.namespace("test-2");
    c.namespace("shop");
    eventually(WAIT, "the strain log lines", || async {
        let out = h.proc.output();
        (out.contains("Test namespace created while the cluster is strained")
            && out.contains("Namespace created while the cluster is strained"))
        .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        c.exists("v1", "Pod", "web", "web-ok"),
        "healthy pods are not evicted"
    );
    assert!(
        c.exists("v1", "Pod", "test-1", "test-crash"),
        "test namespaces are what strain relief protects"
    );
    let o = outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "web-crash")).await;
    assert_eq!(o.remediation, Some(RemediationKind::EvictPod));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_cooldown_of_a_healed_workload_still_holds() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("shop", "api", "api-7d9c");
    c.pod(
        "shop",
        "api-7d9c-aaaaa",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    let p = policy(
        "production",
        "",
        "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
    );
    let mut first = c.heal8s(&p, &[]).await;
    gone(&c, &first, "v1", "Pod", "shop", "api-7d9c-aaaaa").await;
    first.proc.terminate();
    assert_eq!(
        first.proc.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        first.proc.output()
    );
    // a new heal8s process; the ReplicaSet's replacement crash loops too
    let second = c.heal8s(&p, &[]).await;
    c.pod(
        "shop",
        "api-7d9c-bbbbb",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    let refused = outcome_with(&second, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::Cooldown),
            "api-7d9c-bbbbb",
        )
    })
    .await;
    assert!(
        refused.message.contains("Deployment/shop/api"),
        "{refused:#?}"
    );
    assert!(c.exists("v1", "Pod", "shop", "api-7d9c-bbbbb"));
    assert!(
        second
            .proc
            .output()
            .contains("Guard state restored from Remediation records.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_is_verified_and_recorded_or_reported_as_not_recovered() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("shop", "api", "api-7d9c");
    c.deployment("shop", "web", "web-5f5f");
    c.pod(
        "shop",
        "api-7d9c-aaaaa",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    c.pod(
        "shop",
        "web-5f5f-aaaaa",
        Some(("ReplicaSet", "web-5f5f")),
        "w1",
        true,
    );
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            ),
            &["--verify-timeout", "4s"],
        )
        .await;
    gone(&c, &h, "v1", "Pod", "shop", "api-7d9c-aaaaa").await;
    gone(&c, &h, "v1", "Pod", "shop", "web-5f5f-aaaaa").await;
    // the Deployment controller brings api back to 1/1 ready; web never recovers
    c.emu
        .modify("apps/v1", "Deployment", "shop", "api", |d| {
            d["status"] = json!({"replicas": 1, "readyReplicas": 1});
        })
        .unwrap();
    let phase_of = |target: &'static str| {
        let emu = &c.emu;
        move || async move {
            emu.list("heal8s.io/v1alpha1", "Remediation", "shop")
                .into_iter()
                .find(|r| r["spec"]["target"]["name"] == target)
                .and_then(|r| r["status"]["phase"].as_str().map(str::to_string))
                .filter(|p| p != "Acting")
        }
    };
    let api = eventually(WAIT, "api's verification", phase_of("api-7d9c-aaaaa"))
        .await
        .unwrap();
    assert_eq!(api, "Succeeded");
    let web = eventually(WAIT, "web's verification", phase_of("web-5f5f-aaaaa"))
        .await
        .unwrap();
    assert_eq!(web, "Failed");
    let api_record = c
        .emu
        .list("heal8s.io/v1alpha1", "Remediation", "shop")
        .into_iter()
        .find(|r| r["spec"]["target"]["name"] == "api-7d9c-aaaaa")
        .unwrap();
    let conditions = api_record["status"]["conditions"].as_array().unwrap();
    let cond = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap()["status"].clone();
    assert_eq!(cond("Acted"), "True", "{api_record:#}");
    assert_eq!(cond("Recovered"), "True", "{api_record:#}");
    assert_eq!(api_record["status"]["observedGeneration"], 1);
    let m = h.metrics().await;
    assert_eq!(
        testkit::metric_value(&m, "heal8s_verifications_total{result=\"recovered\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        testkit::metric_value(&m, "heal8s_verifications_total{result=\"not_recovered\"}"),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeeded_records_past_their_ttl_are_collected_and_others_are_kept() {
    let c = Cluster::new().await;
    c.namespace("shop");
    let record = |name: &str, phase: &str, finished_secs_ago: i64| {
        c.emu
            .create(json!({
                "apiVersion": "heal8s.io/v1alpha1", "kind": "Remediation",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"trigger": {"source": "detector", "alertname": "Heal8sPodCrashLooping", "fingerprint": "f",
                                     "firstSeen": ago(finished_secs_ago + 60)},
                         "target": {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": name, "key": format!("Pod/shop/{name}")},
                         "remediation": "delete-pod", "parameters": {}, "mode": "direct"},
                "status": {"phase": phase, "finishedAt": ago(finished_secs_ago), "attempts": 1}
            }))
            .unwrap();
    };
    record("old-succeeded", "Succeeded", 8 * 86400);
    record("new-succeeded", "Succeeded", 3600);
    record("old-failed", "Failed", 8 * 86400);
    let h = c
        .heal8s(
            &policy("production", "", "  - {remediation: notify-only}"),
            &["--record-ttl", "7d"],
        )
        .await;
    let r = eventually(WAIT, "the old record to be collected", || async {
        (!c.exists("heal8s.io/v1alpha1", "Remediation", "shop", "old-succeeded")).then_some(())
    })
    .await;
    if let Err(e) = r {
        panic!("{e}\n{}", h.proc.output());
    }
    assert!(c.exists("heal8s.io/v1alpha1", "Remediation", "shop", "new-succeeded"));
    assert!(c.exists("heal8s.io/v1alpha1", "Remediation", "shop", "old-failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_exactly_one_acts_and_the_other_takes_over() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.namespace("heal8s");
    c.node("w1", "True", 600);
    c.pod("shop", "a-1", Some(("ReplicaSet", "a-rs")), "w1", true);
    let p = policy(
        "production",
        "",
        "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
    );
    let args = ["--leader-elect", "--lease-duration", "3"];
    let one = c
        .heal8s(&p, &[&args[..], &["--pod-name", "one"]].concat())
        .await;
    let two = c
        .heal8s(&p, &[&args[..], &["--pod-name", "two"]].concat())
        .await;
    gone(&c, &one, "v1", "Pod", "shop", "a-1").await;
    assert!(one.proc.output().contains("Leader election on"));
    let deletes = |name: &str| {
        c.emu
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.path.ends_with(&format!("/pods/{name}")))
            .count()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(deletes("a-1"), 1, "exactly one replica acted");
    let lease = c
        .emu
        .get("coordination.k8s.io/v1", "Lease", "heal8s", "heal8s-leader")
        .unwrap();
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut leader, follower) = if holder == "one" {
        (one, two)
    } else {
        (two, one)
    };
    // the follower refuses webhooks so that Alertmanager retries against the leader
    let alert = json!({"version": "4", "alerts": [{"status": "firing", "startsAt": ago(5),
        "labels": {"alertname": "Watchdog"}, "fingerprint": "w"}]});
    let mut statuses = Vec::new();
    for h in [&leader, &follower] {
        statuses.push(h.post_webhook(TOKEN, &alert).await);
    }
    assert_eq!(
        statuses,
        [200, 503],
        "the leader ({holder}) accepts, the follower refuses"
    );
    // the leader stops and releases the lease; the other takes over and acts
    leader.proc.terminate();
    assert_eq!(
        leader.proc.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        leader.proc.output()
    );
    c.pod("shop", "a-2", Some(("ReplicaSet", "a-rs2")), "w1", true);
    let r = eventually(
        Duration::from_secs(20),
        "the other replica to take over and act",
        || async { (!c.exists("v1", "Pod", "shop", "a-2")).then_some(()) },
    )
    .await;
    if let Err(e) = r {
        panic!("{e}\n--- follower ---\n{}", follower.proc.output());
    }
    assert_eq!(deletes("a-2"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_cut_off_by_a_crash_is_reconciled_and_blocks_no_other_node() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.namespace("heal8s");
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4", "w5", "w6"] {
        c.node(n, "True", 600);
    }
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", false);
    c.emu
        .create(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                       "metadata": {"name": "api", "namespace": "shop"},
                       "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}}),
        )
        .unwrap();
    let p = policy(
        "production",
        // w2's drain comes right after w1's: lift the node rate (1 per 10m)
        "guard: {nodes: {rate: {max: 10, per: 10m}}}",
        "  - {matchers: ['alertname=\"Heal8sNodeNotReady\"'], remediation: drain-node, params: {timeout: 60s}}",
    );
    // slow retries keep the PDB-blocked drain of the dead node in flight
    // (3 tries) long enough to cut it off
    let first = c
        .heal8s(&p, &["--pod-name", "first", "--eviction-retry", "10s"])
        .await;
    let record_phase = || {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
            .into_iter()
            .next()
            .map(|r| (r["status"]["phase"].clone(), r["status"]["reason"].clone()))
    };
    let draining = || {
        c.emu.get("v1", "Node", "", "w1").unwrap()["metadata"]["annotations"]["heal8s.io/remediation"]
            == "draining"
    };
    eventually(WAIT, "the drain to start", || async {
        (record_phase() == Some((json!("Acting"), json!("Started"))) && draining()).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", first.proc.output()));
    // the process dies in the middle of the drain (SIGKILL)
    drop(first);
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    assert_eq!(
        w1["metadata"]["annotations"]["heal8s.io/remediation"], "draining",
        "{w1:#}"
    );
    // w1's kubelet comes back; then w2 fails
    c.emu
        .modify("v1", "Node", "", "w1", |n| {
            n["status"]["conditions"][0]["status"] = json!("True");
        })
        .unwrap();
    let second = c.heal8s(&p, &["--pod-name", "second"]).await;
    c.emu
        .modify("v1", "Node", "", "w2", |n| {
            n["status"]["conditions"][0]["status"] = json!("False");
            n["status"]["conditions"][0]["lastTransitionTime"] = json!(ago(600));
        })
        .unwrap();
    // w1's stale mark does not block w2: w2 is drained
    outcome_with(&second, |o| is(o, OutcomeKind::Acted, None, "Node w2")).await;
    // w1 was reconciled: heal8s's own cordon undone, its marks removed
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    assert!(
        w1["spec"]["unschedulable"].is_null() || w1["spec"]["unschedulable"] == false,
        "{w1:#}"
    );
    assert!(
        w1["metadata"]["annotations"]["heal8s.io/remediation"].is_null(),
        "{w1:#}"
    );
    // ... and the record says so, after marking the drain interrupted
    let history: Vec<Value> = c
        .emu
        .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
        .into_iter()
        .filter(|r| r["spec"]["target"]["name"] == "w1")
        .flat_map(|r| {
            r["status"]["history"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert!(
        history.iter().any(|h| h["phase"] == "Failed"
            && h["message"] == "interrupted"
            && h["by"] == "second"),
        "{history:#?}"
    );
    assert!(
        history.iter().any(|h| h["message"]
            .as_str()
            .is_some_and(|m| m.contains("undid its own cordon"))),
        "{history:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_cut_off_on_a_node_still_down_keeps_the_cordon_and_is_not_repeated() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.namespace("heal8s");
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", false);
    c.emu
        .create(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                       "metadata": {"name": "api", "namespace": "shop"},
                       "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}}),
        )
        .unwrap();
    let p = policy(
        "production",
        "",
        "  - {matchers: ['alertname=\"Heal8sNodeNotReady\"'], remediation: drain-node, params: {timeout: 60s}}",
    );
    // slow retries keep the PDB-blocked drain of the dead node in flight
    // (3 tries) long enough to cut it off
    let first = c
        .heal8s(&p, &["--pod-name", "first", "--eviction-retry", "10s"])
        .await;
    eventually(WAIT, "the drain to start", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
            .into_iter()
            .next()
            .filter(|r| r["status"]["reason"] == "Started")
            .filter(|_| {
                c.emu.get("v1", "Node", "", "w1").unwrap()["metadata"]["annotations"]
                    ["heal8s.io/remediation"]
                    == "draining"
            })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", first.proc.output()));
    drop(first);
    let evictions = || {
        c.emu
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
            .count()
    };
    let before = evictions();
    let second = c.heal8s(&p, &["--pod-name", "second"]).await;
    // the node is signalled again, and the restored action holds: the node
    // rate (or the cooldown) refuses a second drain
    outcome_with(&second, |o| {
        is(o, OutcomeKind::Refused, None, "Node w1")
            && matches!(
                o.reason,
                Some(RefusalReason::Cooldown | RefusalReason::ClassRate)
            )
    })
    .await;
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    assert_eq!(w1["spec"]["unschedulable"], true, "{w1:#}");
    assert_eq!(
        w1["metadata"]["annotations"]["heal8s.io/remediation"], "interrupted",
        "{w1:#}"
    );
    assert_eq!(evictions(), before, "the second process evicted nothing");
    let log = second.proc.output();
    assert!(log.contains("interrupted drain reconciled"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_alert_resolved_by_the_deletion_is_no_evidence_and_verification_settles_the_record() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("shop", "api", "api-7d9c");
    c.pod(
        "shop",
        "api-7d9c-aaaaa",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    let p = policy(
        "production",
        "",
        "  - {matchers: ['alertname=~\"KubePodCrashLooping|KubePodNotReady\"'], remediation: delete-pod}",
    )
    .replace("  pods: {", "  pods: {enabled: false, ");
    let h = c.heal8s(&p, &["--verify-timeout", "4s"]).await;
    let starts = ago(120);
    let delivery = |status: &str, ends: &str| {
        json!({"version": "4", "status": status, "receiver": "heal8s", "groupKey": "{}", "alerts": [{
            "status": status, "startsAt": starts, "endsAt": ends, "fingerprint": "fp-crash",
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "api-7d9c-aaaaa", "container": "api"}}]})
    };
    let post = |body: Value| {
        let h = &h;
        async move { assert_eq!(h.post_webhook(TOKEN, &body).await, 200) }
    };
    post(delivery("firing", "0001-01-01T00:00:00Z")).await;
    gone(&c, &h, "v1", "Pod", "shop", "api-7d9c-aaaaa").await;
    // a second alert about the deleted pod is refused, and that refusal
    // goes into the history without hiding the action being verified
    let mut again = delivery("firing", "0001-01-01T00:00:00Z");
    again["alerts"][0]["fingerprint"] = "fp-crash-again".into();
    again["alerts"][0]["labels"]["alertname"] = "KubePodNotReady".into();
    post(again).await;
    outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::TargetGone),
            "api-7d9c-aaaaa",
        )
    })
    .await;
    // (the outcome is listed before the record is written: wait for it)
    let record = eventually(WAIT, "the refusal in the record's history", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .next()
            .filter(|r| {
                r["status"]["history"]
                    .as_array()
                    .and_then(|h| h.last())
                    .is_some_and(|h| h["phase"] == "Refused")
            })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert_eq!(record["status"]["phase"], "Acting", "{record:#}");
    // the alert resolves because the pod is gone; the Deployment is 0/1 ready
    post(delivery("resolved", &ago(0))).await;
    let settled = eventually(WAIT, "the record to settle", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .next()
            .filter(|r| r["status"]["phase"] != "Acting")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    // the workload never recovered: the verification's verdict stands
    assert_eq!(
        (&settled["status"]["phase"], &settled["status"]["reason"]),
        (&json!("Failed"), &json!("NotRecovered")),
        "{settled:#}"
    );
    let history = settled["status"]["history"].as_array().unwrap();
    assert!(
        history.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("no evidence of recovery"))),
        "{settled:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_heal8s_still_acts_and_records_events_and_logs() {
    let c = Cluster::new().await;
    c.emu.unregister("heal8s.io", "remediations");
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", true);
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            ),
            &[],
        )
        .await;
    gone(&c, &h, "v1", "Pod", "shop", "api-1").await;
    outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "api-1")).await;
    assert!(c.events("shop").iter().any(|e| e["reason"] == "PodDeleted"));
    let log = h.proc.output();
    assert_eq!(
        log.matches("The Remediation CRD (remediations.heal8s.io) is not installed")
            .count(),
        1,
        "one startup warning: {log}"
    );
    assert!(
        !log.contains("Could not write the Remediation record"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_only_findings_settle_and_never_count_as_actions_after_a_restart() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("shop", "api", "api-7d9c");
    for i in 0..5 {
        c.pod(
            "shop",
            &format!("api-7d9c-n{i}"),
            Some(("ReplicaSet", "api-7d9c")),
            "w1",
            true,
        );
    }
    // alerts are told apart by name: notify about them, delete on the detector
    let p = policy(
        "production",
        "",
        "  - {matchers: ['alertname=\"Heads-up\"'], remediation: notify-only}\n  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
    )
    .replace("  pods: {", "  pods: {enabled: false, ");
    let mut first = c.heal8s(&p, &["--pod-name", "first"]).await;
    for i in 0..5 {
        let body = json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}",
            "alerts": [{"status": "firing", "startsAt": ago(60), "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": format!("fp-n{i}"),
                "labels": {"alertname": "Heads-up", "namespace": "shop", "pod": format!("api-7d9c-n{i}")}}]});
        assert_eq!(first.post_webhook(TOKEN, &body).await, 200);
    }
    let notified = eventually(WAIT, "five settled notify-only records", || async {
        let rs: Vec<Value> = c
            .emu
            .list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .filter(|r| {
                r["spec"]["remediation"] == "notify-only" && r["status"]["phase"] == "Notified"
            })
            .collect();
        (rs.len() == 5).then_some(rs)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", first.proc.output()));
    assert!(
        notified.iter().all(|r| r["status"]["ledger"].is_null()),
        "a notify-only record carries no guard event: {notified:#?}"
    );
    first.proc.terminate();
    assert_eq!(first.proc.wait_exit(Duration::from_secs(15)), Some(0));
    // after a restart, the workload heal8s never touched is not over its budget
    // (3 actions per hour by default): its crash-looping pod is deleted
    let second = c
        .heal8s(
            &p.replace("pods: {enabled: false, ", "pods: {"),
            &["--pod-name", "second"],
        )
        .await;
    outcome_with(&second, |o| o.result == OutcomeKind::Acted).await;
    // the others wait out the cooldown of the one deleted; none is over a budget
    let outcomes = second.outcomes().await;
    assert!(
        outcomes
            .iter()
            .filter(|o| o.result == OutcomeKind::Refused)
            .all(|o| o.reason == Some(RefusalReason::Cooldown)),
        "{outcomes:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_out_on_the_owning_deployment_protects_its_pods() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("shop", "api", "api-7d9c");
    c.emu
        .modify("apps/v1", "Deployment", "shop", "api", |d| {
            d["metadata"]["annotations"] = json!({"heal8s.io/ignore": "true"});
        })
        .unwrap();
    c.pod(
        "shop",
        "api-7d9c-aaaaa",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            ),
            &[],
        )
        .await;
    let refused = outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::OptedOut),
            "api-7d9c-aaaaa",
        )
    })
    .await;
    assert!(
        refused.message.contains("Deployment shop/api"),
        "{refused:#?}"
    );
    assert!(c.exists("v1", "Pod", "shop", "api-7d9c-aaaaa"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_leaves_protected_and_opted_out_pods_alone() {
    let c = Cluster::new().await;
    for ns in ["shop", "kube-system", "heal8s"] {
        c.namespace(ns);
    }
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    c.deployment("shop", "web", "web-66f1");
    c.deployment("shop", "db", "db-1a2b");
    c.deployment("kube-system", "coredns", "coredns-6d4b");
    c.pod(
        "shop",
        "web-66f1-b2",
        Some(("ReplicaSet", "web-66f1")),
        "w1",
        false,
    );
    c.pod(
        "kube-system",
        "coredns-6d4b-k2",
        Some(("ReplicaSet", "coredns-6d4b")),
        "w1",
        false,
    );
    c.pod(
        "shop",
        "db-1a2b-q1",
        Some(("ReplicaSet", "db-1a2b")),
        "w1",
        false,
    );
    c.emu
        .modify("v1", "Pod", "shop", "db-1a2b-q1", |p| {
            p["metadata"]["labels"]["heal8s.io/ignore"] = json!("true");
        })
        .unwrap();
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sNodeNotReady\"'], remediation: drain-node}",
            ),
            &[],
        )
        .await;
    let acted = outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "Node w1")).await;
    let message = &acted.message;
    assert!(message.contains("evicted [shop/web-66f1-b2]"), "{message}");
    assert!(
        message.contains("kube-system/coredns-6d4b-k2 (protected_namespace"),
        "{message}"
    );
    assert!(message.contains("shop/db-1a2b-q1 (opted_out"), "{message}");
    let evictions: Vec<String> = c
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(evictions.len(), 1, "{evictions:#?}");
    assert!(evictions[0].contains("web-66f1-b2"), "{evictions:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_protected_pods_refuse_a_drain_changes_nothing() {
    let c = Cluster::new().await;
    for ns in ["shop", "kube-system", "heal8s"] {
        c.namespace(ns);
    }
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    c.deployment("kube-system", "coredns", "coredns-6d4b");
    c.pod(
        "kube-system",
        "coredns-6d4b-k2",
        Some(("ReplicaSet", "coredns-6d4b")),
        "w1",
        false,
    );
    let h = c
        .heal8s(
            &policy(
                "production",
                "guard: {nodes: {protectedPods: refuse}}",
                "  - {matchers: ['alertname=\"Heal8sNodeNotReady\"'], remediation: drain-node}",
            ),
            &[],
        )
        .await;
    let failed = outcome_with(&h, |o| is(o, OutcomeKind::Failed, None, "Node w1")).await;
    assert!(
        failed
            .message
            .contains("kube-system/coredns-6d4b-k2 must not be touched"),
        "{failed:#?}"
    );
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    assert!(
        w1["spec"]["unschedulable"].is_null(),
        "not even cordoned: {w1:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_holds_until_a_person_clears_it_on_the_record() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("shop", "api", "api-7d9c");
    c.pod(
        "shop",
        "api-7d9c-a",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    let h = c
        .heal8s(
            &policy(
                "production",
                "guard: {cooldown: 1s, escalation: {after: 1, within: 1h}}",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            ),
            &[],
        )
        .await;
    gone(&c, &h, "v1", "Pod", "shop", "api-7d9c-a").await;
    // the replacement crash loops too: escalated, not deleted
    c.pod(
        "shop",
        "api-7d9c-b",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        true,
    );
    outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::Escalated),
            "api-7d9c-b",
        )
    })
    .await;
    let escalated = eventually(WAIT, "the escalated record", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .find(|r| r["status"]["phase"] == "Escalated")
    })
    .await
    .unwrap();
    // still escalated a while later (the pod is re-signalled every cooldown)
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(c.exists("v1", "Pod", "shop", "api-7d9c-b"));
    // a person clears it
    let name = escalated["metadata"]["name"].as_str().unwrap().to_string();
    c.emu
        .modify("heal8s.io/v1alpha1", "Remediation", "shop", &name, |r| {
            r["metadata"]["annotations"] = json!({"heal8s.io/clear-escalation": "true"});
        })
        .unwrap();
    gone(&c, &h, "v1", "Pod", "shop", "api-7d9c-b").await;
    let cleared = c
        .emu
        .get("heal8s.io/v1alpha1", "Remediation", "shop", &name)
        .unwrap();
    // the history tells the story: escalated, cleared by a person, acted
    let phases: Vec<&str> = cleared["status"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["phase"].as_str())
        .collect();
    let at = |p: &str| phases.iter().position(|x| *x == p);
    assert!(
        at("Escalated") < at("Cleared")
            && at("Cleared").is_some()
            && phases.last() == Some(&"Acting"),
        "{cleared:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declarative_fix_without_a_repository_says_so_and_is_not_proposed() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("shop", "api", "api-7d9c");
    c.pod(
        "shop",
        "api-7d9c-a",
        Some(("ReplicaSet", "api-7d9c")),
        "w1",
        false,
    );
    c.emu
        .modify("v1", "Pod", "shop", "api-7d9c-a", |p| {
            p["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "256Mi"}});
            p["status"]["containerStatuses"][0]["restartCount"] = json!(3);
            p["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {
                "reason": "OOMKilled", "exitCode": 137, "startedAt": ago(120), "finishedAt": ago(60)}});
        })
        .unwrap();
    let p = policy(
        "production",
        "",
        "  - {matchers: ['alertname=\"KubeContainerOOMKilled\"'], remediation: bump-memory}",
    )
    .replace("  pods: {", "  pods: {enabled: false, ");
    let h = c.heal8s(&p, &[]).await;
    let body = json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}",
        "alerts": [{"status": "firing", "startsAt": ago(60), "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "fp-oom",
            "labels": {"alertname": "KubeContainerOOMKilled", "namespace": "shop", "pod": "api-7d9c-a", "container": "api"}}]});
    assert_eq!(h.post_webhook(TOKEN, &body).await, 200);
    let o = outcome_with(&h, |o| o.remediation == Some(RemediationKind::BumpMemory)).await;
    assert_eq!(o.result, OutcomeKind::Deferred, "{o:#?}");
    let message = &o.message;
    assert!(
        message.contains("no pull-request repository is configured"),
        "{message}"
    );
    assert!(!message.contains("not implemented"), "{message}");
    let record = eventually(WAIT, "the record", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .find(|r| r["spec"]["remediation"] == "bump-memory")
    })
    .await
    .unwrap();
    assert_eq!(record["status"]["phase"], "NotProposed", "{record:#}");
    assert_eq!(record["status"]["reason"], "NoRepository", "{record:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_owner_heal8s_cannot_read_is_unverified_not_recovered() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.node("w1", "True", 600);
    // a pod of a controller kind heal8s knows nothing about
    c.pod("shop", "game-0", None, "w1", true);
    c.emu
        .modify("v1", "Pod", "shop", "game-0", |p| {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps.kruise.io/v1alpha1",
                "kind": "CloneSet", "name": "game", "uid": "cs-uid", "controller": true}]);
        })
        .unwrap();
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            ),
            &["--verify-timeout", "3s"],
        )
        .await;
    gone(&c, &h, "v1", "Pod", "shop", "game-0").await;
    let record = eventually(WAIT, "the verification", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .find(|r| r["status"]["phase"] != "Acting")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert_eq!(record["status"]["phase"], "Unverified", "{record:#}");
    assert!(
        record["status"]["message"]
            .as_str()
            .unwrap()
            .contains("CloneSet"),
        "{record:#}"
    );
}

const DRAIN_ROUTE: &str = "  - {matchers: ['alertname=\"Heal8sNodeNotReady\"'], remediation: drain-node, params: {timeout: 20s}}";

fn set_ready(c: &Cluster, node: &str, status: &str) {
    c.emu
        .modify("v1", "Node", "", node, |n| {
            n["status"]["conditions"][0]["status"] = json!(status);
            n["status"]["conditions"][0]["lastTransitionTime"] = json!(ago(600));
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_arriving_node_by_node_drains_one_node_and_refuses_the_rest() {
    let c = Cluster::new().await;
    c.namespace("heal8s");
    for i in 0..10 {
        c.node(&format!("n{i}"), "True", 600);
    }
    let h = c.heal8s(&policy("production", "", DRAIN_ROUTE), &[]).await;
    // 5 of 10 nodes go NotReady 2 s apart
    for i in 0..5 {
        set_ready(&c, &format!("n{i}"), "False");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for i in 1..5 {
        let o = outcome_with(&h, |o| {
            is(o, OutcomeKind::Refused, None, &format!("Node n{i}"))
        })
        .await;
        assert!(
            matches!(
                o.reason,
                Some(
                    RefusalReason::NodeInRemediation
                        | RefusalReason::ClassRate
                        | RefusalReason::MassFlip
                        | RefusalReason::Partition
                )
            ),
            "{o:#?}"
        );
    }
    let cordoned: Vec<String> = (0..10)
        .map(|i| format!("n{i}"))
        .filter(|n| c.emu.get("v1", "Node", "", n).unwrap()["spec"]["unschedulable"] == true)
        .collect();
    assert_eq!(cordoned, ["n0"], "{:#?}", h.outcomes().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_back_ready_is_uncordoned_and_only_then_recovered() {
    let c = Cluster::new().await;
    c.namespace("heal8s");
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    let h = c
        .heal8s(
            &policy("production", "", DRAIN_ROUTE),
            &["--verify-timeout", "30s"],
        )
        .await;
    outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "Node w1")).await;
    assert_eq!(
        c.emu.get("v1", "Node", "", "w1").unwrap()["spec"]["unschedulable"],
        true
    );
    set_ready(&c, "w1", "True");
    let record = eventually(WAIT, "the drain record to settle", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
            .into_iter()
            .find(|r| r["spec"]["target"]["name"] == "w1" && r["status"]["phase"] != "Acting")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert_eq!(record["status"]["phase"], "Succeeded", "{record:#}");
    assert!(
        record["status"]["message"]
            .as_str()
            .unwrap()
            .contains("uncordoned node w1"),
        "{record:#}"
    );
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    assert!(
        w1["spec"]["unschedulable"].is_null() || w1["spec"]["unschedulable"] == false,
        "{w1:#}"
    );
    assert!(
        w1["metadata"]["annotations"]["heal8s.io/remediation"].is_null(),
        "{w1:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordon_changed_by_a_person_is_left_as_they_left_it() {
    let c = Cluster::new().await;
    c.namespace("heal8s");
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    let h = c
        .heal8s(
            &policy("production", "", DRAIN_ROUTE),
            &["--verify-timeout", "30s"],
        )
        .await;
    outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "Node w1")).await;
    // someone marks the node for debugging before it comes back
    c.emu
        .modify("v1", "Node", "", "w1", |n| {
            n["metadata"]["annotations"]["heal8s.io/remediation"] = json!("keep-for-debugging");
        })
        .unwrap();
    set_ready(&c, "w1", "True");
    let record = eventually(WAIT, "the drain record to settle", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
            .into_iter()
            .find(|r| r["spec"]["target"]["name"] == "w1" && r["status"]["phase"] != "Acting")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert!(
        record["status"]["message"]
            .as_str()
            .unwrap()
            .contains("left as it is"),
        "{record:#}"
    );
    assert_eq!(
        c.emu.get("v1", "Node", "", "w1").unwrap()["spec"]["unschedulable"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_still_down_after_its_drain_is_drained_not_failed_and_escalates_to_delete_node() {
    let c = Cluster::new().await;
    c.namespace("heal8s");
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    let routes = format!(
        "{DRAIN_ROUTE}\n  - {{matchers: ['alertname=\"Heal8sNodeStillDownAfterDrain\"'], remediation: delete-node, params: {{drainFirst: false}}}}"
    );
    let h = c
        .heal8s(
            &policy(
                "production",
                "features: {deleteNodes: true}\nguard: {nodes: {rate: {max: 10, per: 10m}}}",
                &routes,
            ),
            &["--verify-timeout", "2s"],
        )
        .await;
    outcome_with(&h, |o| {
        is(o, OutcomeKind::Acted, None, "Node w1")
            && o.remediation == Some(RemediationKind::DrainNode)
    })
    .await;
    let record = eventually(WAIT, "the drain record to settle", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
            .into_iter()
            .find(|r| r["spec"]["remediation"] == "drain-node" && r["status"]["phase"] != "Acting")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert_eq!(record["status"]["phase"], "Drained", "{record:#}");
    assert_eq!(record["status"]["reason"], "NodeStillDown", "{record:#}");
    // escalated to delete-node, through the guard like any signal
    gone(&c, &h, "v1", "Node", "", "w1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_drain_names_the_budget_that_blocks_it_and_stops_early() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.namespace("heal8s");
    c.node("w1", "Unknown", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", false);
    c.emu
        .create(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}}),
        )
        .unwrap();
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=~\"Heal8sNode.*\"'], remediation: drain-node, params: {timeout: 10m}}",
            ),
            &[],
        )
        .await;
    // well within the 10-minute timeout: a dead node's budget will not change its mind
    let failed = outcome_with(&h, |o| is(o, OutcomeKind::Failed, None, "Node w1")).await;
    let message = &failed.message;
    assert!(
        message.contains("shop/api-1 blocked by PodDisruptionBudget shop/api (minAvailable 1"),
        "{message}"
    );
    assert!(message.contains("kubelet is gone"), "{message}");
    assert!(
        message.contains("unhealthyPodEvictionPolicy: AlwaysAllow"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_gets_the_out_of_service_taint_when_the_route_opts_in() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.namespace("heal8s");
    c.node("w1", "Unknown", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    c.pod("shop", "db-0", Some(("ReplicaSet", "db-rs")), "w1", false);
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=~\"Heal8sNode.*\"'], remediation: drain-node, params: {outOfServiceTaint: true}}",
            ),
            &[],
        )
        .await;
    let acted = outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "Node w1")).await;
    let message = &acted.message;
    assert!(message.contains("kubelet is gone"), "{message}");
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    let taints = w1["spec"]["taints"].as_array().cloned().unwrap_or_default();
    assert!(
        taints
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/out-of-service"
                && t["value"] == "nodeshutdown"
                && t["effect"] == "NoExecute"),
        "{w1:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordon_carries_heal8s_s_mark_and_a_person_s_uncordon_stands_for_the_episode() {
    let c = Cluster::new().await;
    c.namespace("heal8s");
    c.node("w1", "False", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    let h = c
        .heal8s(
            &policy(
                "production",
                "guard: {cooldown: 1s, nodes: {rate: {max: 10, per: 10m}}}",
                DRAIN_ROUTE,
            ),
            &["--verify-timeout", "60s"],
        )
        .await;
    outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "Node w1")).await;
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    let a = &w1["metadata"]["annotations"];
    assert_eq!(a["heal8s.io/changed-by"], "heal8s", "{w1:#}");
    assert_eq!(a["heal8s.io/reason"], "Heal8sNodeNotReady", "{w1:#}");
    assert!(
        a["heal8s.io/changed-at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    let record = a["heal8s.io/record"].as_str().unwrap().to_string();
    assert!(
        c.emu
            .get("heal8s.io/v1alpha1", "Remediation", "heal8s", &record)
            .is_some(),
        "the mark names the record: {record}"
    );
    // a person uncordons the node while it is still down
    c.emu
        .modify("v1", "Node", "", "w1", |n| {
            n["spec"]["unschedulable"] = json!(false);
        })
        .unwrap();
    // the detector signals it again: heal8s does not cordon it again
    let refused = outcome_with(&h, |o| {
        is(
            o,
            OutcomeKind::Refused,
            Some(RefusalReason::HumanOverride),
            "Node w1",
        )
    })
    .await;
    assert!(refused.message.contains(&record), "{}", refused.message);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        c.emu.get("v1", "Node", "", "w1").unwrap()["spec"]["unschedulable"],
        false
    );
    // it recovers: heal8s takes its marks off and leaves the node as the person left it
    set_ready(&c, "w1", "True");
    let record = eventually(WAIT, "the drain record to settle", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
            .into_iter()
            .find(|r| r["spec"]["target"]["name"] == "w1" && r["status"]["phase"] == "Succeeded")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert!(
        record["status"]["message"]
            .as_str()
            .unwrap()
            .contains("uncordoned by someone else"),
        "{record:#}"
    );
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    let a = &w1["metadata"]["annotations"];
    for k in [
        "heal8s.io/changed-by",
        "heal8s.io/record",
        "heal8s.io/remediation",
        "heal8s.io/cordoned",
    ] {
        assert!(a[k].is_null(), "{k}: {w1:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal8s_lifts_the_taint_it_set_and_only_that_one() {
    let c = Cluster::new().await;
    c.namespace("shop");
    c.namespace("heal8s");
    c.node("w1", "Unknown", 600);
    for n in ["w2", "w3", "w4"] {
        c.node(n, "True", 600);
    }
    c.pod("shop", "db-0", Some(("ReplicaSet", "db-rs")), "w1", false);
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=~\"Heal8sNode.*\"'], remediation: drain-node, params: {outOfServiceTaint: true, timeout: 20s}}",
            ),
            &["--verify-timeout", "60s"],
        )
        .await;
    outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "Node w1")).await;
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    assert_eq!(
        w1["metadata"]["annotations"]["heal8s.io/tainted"], "node.kubernetes.io/out-of-service",
        "{w1:#}"
    );
    // a person adds a taint of their own, then the node comes back
    c.emu
        .modify("v1", "Node", "", "w1", |n| {
            n["spec"]["taints"]
                .as_array_mut()
                .unwrap()
                .push(json!({"key": "team/maintenance", "effect": "NoSchedule"}));
        })
        .unwrap();
    set_ready(&c, "w1", "True");
    let record = eventually(WAIT, "the drain record to settle", || async {
        c.emu
            .list("heal8s.io/v1alpha1", "Remediation", "heal8s")
            .into_iter()
            .find(|r| r["spec"]["target"]["name"] == "w1" && r["status"]["phase"] == "Succeeded")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert!(
        record["status"]["message"]
            .as_str()
            .unwrap()
            .contains("lifted its taint node.kubernetes.io/out-of-service"),
        "{record:#}"
    );
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    let keys: Vec<&str> = w1["spec"]["taints"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["key"].as_str()).collect())
        .unwrap_or_default();
    assert!(keys.contains(&"team/maintenance"), "{w1:#}");
    assert!(
        !keys.contains(&"node.kubernetes.io/out-of-service"),
        "{w1:#}"
    );
    assert!(
        w1["metadata"]["annotations"]["heal8s.io/tainted"].is_null(),
        "{w1:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_blocked_eviction_loop_does_not_hold_up_a_crash_loop_elsewhere() {
    let c = Cluster::new().await;
    c.namespace("blocked");
    c.namespace("shop");
    c.node("w1", "True", 600);
    c.deployment("blocked", "db", "db-rs");
    c.pod("blocked", "db-1", Some(("ReplicaSet", "db-rs")), "w1", true);
    c.emu
        .create(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                       "metadata": {"name": "db", "namespace": "blocked"},
                       "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}}),
        )
        .unwrap();
    let h = c
        .heal8s(
            &policy(
                "production",
                "",
                "  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"', 'namespace=\"blocked\"'], remediation: evict-pod}\n  - {matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}",
            ),
            // the eviction loop would hold a single worker for ten minutes
            &["--eviction-timeout", "10m"],
        )
        .await;
    let evictions = || {
        c.emu
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
            .count()
    };
    eventually(WAIT, "the eviction loop to be retrying", || async {
        (evictions() >= 2).then_some(())
    })
    .await
    .unwrap();
    // a crash loop in another namespace, while the loop goes on
    c.deployment("shop", "api", "api-rs");
    let started = std::time::Instant::now();
    c.pod("shop", "api-1", Some(("ReplicaSet", "api-rs")), "w1", true);
    gone(&c, &h, "v1", "Pod", "shop", "api-1").await;
    let took = started.elapsed();
    println!("crash-looping pod deleted {took:?} after it appeared, during the eviction loop");
    let acted = outcome_with(&h, |o| is(o, OutcomeKind::Acted, None, "shop/api-1")).await;
    assert_eq!(
        acted.remediation,
        Some(RemediationKind::DeletePod),
        "{acted:#?}"
    );
    // the eviction loop is still at it: nothing about db-1 has ended
    let outcomes = h.outcomes().await;
    assert!(
        !outcomes
            .iter()
            .any(|o| is(o, OutcomeKind::Failed, None, "blocked/db-1")
                || is(o, OutcomeKind::Acted, None, "blocked/db-1")),
        "{outcomes:#?}"
    );
    let before = evictions();
    eventually(WAIT, "the eviction loop to go on", || async {
        (evictions() > before).then_some(())
    })
    .await
    .unwrap();
    assert!(c.exists("v1", "Pod", "blocked", "db-1"));
    assert!(
        took < Duration::from_secs(10),
        "the deletion waited {took:?} behind the eviction loop"
    );
}
