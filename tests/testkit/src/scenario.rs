//! A realistic small cluster with problems, and the manifest repository that
//! declares its workloads: the demo (`heal8s-demo`) and the full-chain test
//! (Prometheus → Alertmanager → heal8s) both start from it.
//!
//! The cluster (namespace `shop` unless said otherwise):
//! - `api`: a Deployment whose pod `api-7d9c-x2` is crash looping (the pod of
//!   the captured Alertmanager payloads);
//! - `checkout`: a Deployment whose pod `checkout-5b8f-q4` was OOM-killed at
//!   its 256Mi limit;
//! - `web`: healthy, one of its pods on node `w2`, which has been NotReady for
//!   20 minutes;
//! - `vms/vm-fedora-ci`: a KubeVirt VirtualMachine left over from a CI run 3 hours ago;
//! - `e2e-run-4711`: a test namespace created 2 hours ago;
//! - `heal8s`: heal8s's own namespace (records of cluster-scoped targets);
//! - nodes `w1` and `w3` are Ready;
//! - `kube-system/coredns-6d4b-k2`: crash looping in a protected namespace.

use anyhow::Context;
use serde_json::{Value, json};

use crate::kube::Emulator;

/// The manifest repository's owner/name.
pub const REPOSITORY: &str = "acme/manifests";

/// The policy heal8s runs with: the test-cluster profile plus pull requests.
pub const POLICY: &str = include_str!("../scenario/policy.yaml");

/// The crash-looping pod (namespace `shop`, container `api`).
pub const CRASHLOOP_POD: &str = "api-7d9c-x2";
/// The OOM-killed pod (namespace `shop`, container `checkout`).
pub const OOM_POD: &str = "checkout-5b8f-q4";
/// The NotReady node.
pub const BAD_NODE: &str = "w2";
/// The stale test namespace.
pub const STALE_NAMESPACE: &str = "e2e-run-4711";
/// The stale VM (namespace `vms`).
pub const STALE_VM: &str = "vm-fedora-ci";
/// The crash-looping pod heal8s must leave alone (namespace `kube-system`).
pub const PROTECTED_POD: &str = "coredns-6d4b-k2";

/// The repository's files, path and text.
pub fn manifest_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("README.md", include_str!("../scenario/manifests/README.md")),
        (
            "apps/shop/api.yaml",
            include_str!("../scenario/manifests/apps/shop/api.yaml"),
        ),
        (
            "apps/shop/checkout.yaml",
            include_str!("../scenario/manifests/apps/shop/checkout.yaml"),
        ),
        (
            "apps/shop/web.yaml",
            include_str!("../scenario/manifests/apps/shop/web.yaml"),
        ),
    ]
}

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

/// Which problems to seed.
#[derive(Debug, Clone, Copy)]
pub struct Problems {
    pub crashloop: bool,
    pub oom: bool,
    pub node: bool,
    pub vm: bool,
    pub namespace: bool,
    pub protected: bool,
}

impl Problems {
    /// Every problem.
    pub fn all() -> Problems {
        Problems {
            crashloop: true,
            oom: true,
            node: true,
            vm: true,
            namespace: true,
            protected: true,
        }
    }
}

/// Seed `emu` with the cluster and the chosen problems.
pub fn seed(emu: &Emulator, problems: Problems) -> anyhow::Result<()> {
    let create = |o: Value| -> anyhow::Result<Value> {
        let what = format!(
            "{} {}",
            o["kind"].as_str().unwrap_or("?"),
            o["metadata"]["name"].as_str().unwrap_or("?")
        );
        emu.create(owned_by_live(emu, o))
            .with_context(|| format!("seeding {what}"))
    };
    for ns in ["heal8s", "shop", "kube-system", "vms"] {
        if emu.get("v1", "Namespace", "", ns).is_some() {
            continue;
        }
        create(json!({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": ns, "creationTimestamp": ago(90 * 86400)}}))?;
    }
    create(node("w1", "True", 30 * 86400))?;
    create(node("w3", "True", 30 * 86400))?;
    if problems.node {
        create(node(BAD_NODE, "Unknown", 20 * 60))?;
    } else {
        create(node(BAD_NODE, "True", 30 * 86400))?;
    }

    // api: a bad release, crash looping
    workload(
        emu,
        "shop",
        "api",
        "7d9c",
        "registry.example/shop/api:1.8.0",
        json!({"limits": {"memory": "512Mi"}}),
        1,
        if problems.crashloop { 0 } else { 1 },
    )?;
    create(pod(
        "shop",
        CRASHLOOP_POD,
        "api",
        "7d9c",
        "api",
        "registry.example/shop/api:1.8.0",
        json!({"limits": {"memory": "512Mi"}}),
        "w1",
        if problems.crashloop {
            PodState::CrashLoop
        } else {
            PodState::Healthy
        },
    ))?;

    // checkout: OOM-killed at its limit
    let checkout_resources = json!({"requests": {"cpu": "100m", "memory": "192Mi"},
                                    "limits": {"memory": "256Mi"}});
    workload(
        emu,
        "shop",
        "checkout",
        "5b8f",
        "registry.example/shop/checkout:2.3.0",
        checkout_resources.clone(),
        2,
        2,
    )?;
    for (name, state) in [
        (
            OOM_POD,
            if problems.oom {
                PodState::OomKilled
            } else {
                PodState::Healthy
            },
        ),
        ("checkout-5b8f-r7", PodState::Healthy),
    ] {
        create(pod(
            "shop",
            name,
            "checkout",
            "5b8f",
            "checkout",
            "registry.example/shop/checkout:2.3.0",
            checkout_resources.clone(),
            "w1",
            state,
        ))?;
    }

    // web: healthy, one pod on each node
    workload(
        emu,
        "shop",
        "web",
        "66f1",
        "registry.example/shop/web:5.1.0",
        json!({}),
        2,
        if problems.node { 1 } else { 2 },
    )?;
    for (name, on) in [("web-66f1-a1", "w1"), ("web-66f1-b2", BAD_NODE)] {
        create(pod(
            "shop",
            name,
            "web",
            "66f1",
            "web",
            "registry.example/shop/web:5.1.0",
            json!({}),
            on,
            PodState::Healthy,
        ))?;
    }

    // kube-system: crash looping too, but protected
    workload(
        emu,
        "kube-system",
        "coredns",
        "6d4b",
        "registry.k8s.io/coredns/coredns:v1.11.1",
        json!({"limits": {"memory": "170Mi"}}),
        1,
        if problems.protected { 0 } else { 1 },
    )?;
    create(pod(
        "kube-system",
        PROTECTED_POD,
        "coredns",
        "6d4b",
        "coredns",
        "registry.k8s.io/coredns/coredns:v1.11.1",
        json!({"limits": {"memory": "170Mi"}}),
        "w1",
        if problems.protected {
            PodState::CrashLoop
        } else {
            PodState::Healthy
        },
    ))?;

    if problems.vm {
        create(
            json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": STALE_VM, "namespace": "vms", "creationTimestamp": ago(3 * 3600),
                         "labels": {"ci-run": "4698"}},
            "spec": {"runStrategy": "Always"},
            "status": {"printableStatus": "Running", "ready": true}}),
        )?;
    }
    if problems.namespace {
        create(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": STALE_NAMESPACE, "creationTimestamp": ago(2 * 3600),
                         "labels": {"ci-run": "4711"}}}))?;
    }
    Ok(())
}

fn node(name: &str, ready: &str, since_secs: i64) -> Value {
    let reason = if ready == "True" {
        "KubeletReady"
    } else {
        "NodeStatusUnknown"
    };
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "creationTimestamp": ago(60 * 86400),
                     "labels": {"kubernetes.io/hostname": name}},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason,
                                   "lastTransitionTime": ago(since_secs)}],
                   "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                   "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}}})
}

/// A Deployment and its ReplicaSet `<name>-<hash>`, as the Deployment
/// controller leaves them, `ready` of `replicas` ready.
#[allow(clippy::too_many_arguments)]
pub fn workload(
    emu: &Emulator,
    ns: &str,
    name: &str,
    hash: &str,
    image: &str,
    resources: Value,
    replicas: i64,
    ready: i64,
) -> anyhow::Result<()> {
    let template = json!({"metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": name, "image": image, "resources": resources}]}});
    let d = emu.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": ago(30 * 86400)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template},
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}
    }))?;
    emu.create(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("{name}-{hash}"), "namespace": ns,
            "annotations": {"deployment.kubernetes.io/revision": "4"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                 "uid": d["metadata"]["uid"], "controller": true}]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template},
        "status": {"replicas": replicas, "readyReplicas": ready}
    }))?;
    Ok(())
}

/// `o` with its controller reference pointing at the live owner's uid, as
/// the controller that made it would write it (heal8s follows an owner
/// reference only to the object with that uid, never to a namesake).
pub fn owned_by_live(emu: &Emulator, mut o: Value) -> Value {
    let ns = o["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
        for r in refs {
            let (Some(api), Some(kind), Some(name)) = (
                r["apiVersion"].as_str(),
                r["kind"].as_str(),
                r["name"].as_str(),
            ) else {
                continue;
            };
            if let Some(owner) = emu.get(api, kind, &ns, name) {
                r["uid"] = owner["metadata"]["uid"].clone();
            }
        }
    }
    o
}

/// How a seeded pod is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    Healthy,
    CrashLoop,
    OomKilled,
}

/// A pod of ReplicaSet `<app>-<hash>` on `node_name`.
#[allow(clippy::too_many_arguments)]
pub fn pod(
    ns: &str,
    name: &str,
    app: &str,
    hash: &str,
    container: &str,
    image: &str,
    resources: Value,
    node_name: &str,
    state: PodState,
) -> Value {
    let (ready, restarts, current, last) = match state {
        PodState::Healthy => (
            true,
            0,
            json!({"running": {"startedAt": ago(3 * 3600)}}),
            json!({}),
        ),
        PodState::CrashLoop => (
            false,
            7,
            json!({"waiting": {"reason": "CrashLoopBackOff",
                   "message": "back-off 5m0s restarting failed container"}}),
            json!({"terminated": {"reason": "Error", "exitCode": 1,
                   "startedAt": ago(330), "finishedAt": ago(320)}}),
        ),
        PodState::OomKilled => (
            true,
            4,
            json!({"running": {"startedAt": ago(40)}}),
            json!({"terminated": {"reason": "OOMKilled", "exitCode": 137,
                   "startedAt": ago(900), "finishedAt": ago(41)}}),
        ),
    };
    let ready_s = if ready { "True" } else { "False" };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app},
            "creationTimestamp": ago(3 * 3600),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": format!("{app}-{hash}"), "uid": format!("{app}-{hash}-uid"),
                                 "controller": true}]},
        "spec": {"nodeName": node_name,
                 "containers": [{"name": container, "image": image, "resources": resources}]},
        "status": {"phase": "Running", "startTime": ago(3 * 3600),
            "conditions": [{"type": "Ready", "status": ready_s, "lastTransitionTime": ago(300)},
                           {"type": "ContainersReady", "status": ready_s, "lastTransitionTime": ago(300)}],
            "containerStatuses": [{"name": container, "image": image, "imageID": "",
                "ready": ready, "restartCount": restarts, "state": current, "lastState": last}]}
    })
}

/// The UIDs the emulation gave the crash-looping and the OOM-killed pods
/// (kube-state-metrics labels its series with them; heal8s checks them).
#[derive(Debug, Clone)]
pub struct PodUids {
    pub crashloop: String,
    pub oom: String,
}

impl PodUids {
    /// Read them from `emu`.
    pub fn read(emu: &Emulator) -> anyhow::Result<PodUids> {
        let uid = |name: &str| -> anyhow::Result<String> {
            emu.get("v1", "Pod", "shop", name)
                .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_string))
                .with_context(|| format!("pod shop/{name} is not seeded"))
        };
        Ok(PodUids {
            crashloop: uid(CRASHLOOP_POD)?,
            oom: uid(OOM_POD)?,
        })
    }
}

/// kube-state-metrics series describing the scenario's pods for Prometheus:
/// `crashloop` adds the crash-looping container's waiting reason, and
/// `oom_restarts` is the OOM-killed container's restart count (raise it to
/// make the OOM rule's `increase(...)` see a restart).
pub fn kube_state_metrics(uids: &PodUids, crashloop: bool, oom_restarts: u32) -> String {
    let (api_uid, checkout_uid) = (&uids.crashloop, &uids.oom);
    let mut out = String::from(
        "# HELP kube_pod_container_status_waiting_reason Describes the reason the container is currently in waiting state.\n\
         # TYPE kube_pod_container_status_waiting_reason gauge\n",
    );
    if crashloop {
        out.push_str(&format!(
            "kube_pod_container_status_waiting_reason{{namespace=\"shop\",pod=\"{CRASHLOOP_POD}\",uid=\"{api_uid}\",container=\"api\",reason=\"CrashLoopBackOff\"}} 1\n"
        ));
    }
    out.push_str(&format!(
        "# HELP kube_pod_container_status_restarts_total The number of container restarts per container.\n\
         # TYPE kube_pod_container_status_restarts_total counter\n\
         kube_pod_container_status_restarts_total{{namespace=\"shop\",pod=\"{OOM_POD}\",uid=\"{checkout_uid}\",container=\"checkout\"}} {oom_restarts}\n\
         kube_pod_container_status_restarts_total{{namespace=\"shop\",pod=\"{CRASHLOOP_POD}\",uid=\"{api_uid}\",container=\"api\"}} 7\n\
         # HELP kube_pod_container_status_last_terminated_reason Describes the last reason the container was in terminated state.\n\
         # TYPE kube_pod_container_status_last_terminated_reason gauge\n\
         kube_pod_container_status_last_terminated_reason{{namespace=\"shop\",pod=\"{OOM_POD}\",uid=\"{checkout_uid}\",container=\"checkout\",reason=\"OOMKilled\"}} 1\n\
         kube_pod_container_status_last_terminated_reason{{namespace=\"shop\",pod=\"{CRASHLOOP_POD}\",uid=\"{api_uid}\",container=\"api\",reason=\"Error\"}} 1\n"
    ));
    out
}

/// A crash-looping pod `ns/name` on `node` with no owner (a delete ends it;
/// nothing tells whether its workload recovered).
pub fn lone_crash_looping_pod(ns: &str, name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "api"}},
        "spec": {"nodeName": node, "containers": [{"name": "api", "image": "registry/app:1"}]},
        "status": {"phase": "Running", "startTime": ago(600),
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ago(300)}],
            "containerStatuses": [{"name": "api", "image": "registry/app:1", "imageID": "",
                "ready": false, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    })
}

/// An Alertmanager webhook with one firing `KubePodCrashLooping` alert
/// about `ns/pod`, started five minutes ago, with `fingerprint`.
pub fn crash_loop_alert(fingerprint: &str, ns: &str, pod: &str) -> Value {
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}",
        "alerts": [{"status": "firing", "startsAt": ago(300), "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": fingerprint,
            "labels": {"alertname": "KubePodCrashLooping", "namespace": ns, "pod": pod}}]})
}

/// The namespaces `namespaces`, a Ready node `w1`, and a lone crash-looping
/// pod `shop/<name>` on it for each of `pods` (see [`lone_crash_looping_pod`]).
pub fn seed_crash_loops(emu: &Emulator, namespaces: &[&str], pods: &[&str]) -> anyhow::Result<()> {
    for ns in namespaces {
        emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))?;
    }
    emu.create(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "lastTransitionTime": ago(600)}]}}),
    )?;
    for pod in pods {
        emu.create(lone_crash_looping_pod("shop", pod, "w1"))?;
    }
    Ok(())
}
