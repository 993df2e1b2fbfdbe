//! Chainable builders for the objects tests put into the Kubernetes API
//! emulation (`PodFixture::new("shop", "api-1").crash_looping(5).json()`),
//! each returning the `serde_json::Value` that `Emulator::create` takes, and
//! the policies several test files share. Builders only describe objects:
//! they never talk to an emulator, and they set no field the API server owns
//! (uid, resourceVersion, generation), except a backdated
//! `creationTimestamp`, which the emulation's store API keeps to script the past.
//!
//! Owner references carry the owner's real UID when built with `owned_by`
//! from the object `Emulator::create` returned: heal8s checks that UID, as a
//! garbage collector would, and treats an owner with another UID as a
//! namesake, not the owner.

use serde_json::{Map, Value, json};

/// RFC 3339 time `secs` seconds ago.
pub fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

/// The label and annotation (`heal8s.io/ignore`) that opts an object out of heal8s.
pub const OPT_OUT: &str = "heal8s.io/ignore";

/// One `delete-pod` route for crash-looping pods: the plan most tests that
/// need some janitor action on a pod use.
pub const DELETE_POD_POLICY: &str = r#"profile: test-cluster
routes:
  - {name: delete-pod, matchers: ['alertname="KubePodCrashLooping"'], remediation: delete-pod}
"#;

/// A route for every janitor action and the variants the executor tests
/// need, each named after what it does (tests pick a route by name). Node
/// deletion is a feature the test-cluster profile leaves off; it is on here.
pub const JANITOR_POLICY: &str = r#"profile: test-cluster
features: {deleteNodes: true}
routes:
  - {name: delete-pod, matchers: ['alertname="KubePodCrashLooping"'], remediation: delete-pod}
  - {name: evict-pod, matchers: ['alertname="KubePodNotReady"'], remediation: evict-pod}
  - {name: evict-pod-or-delete, matchers: ['alertname="KubePodNotReady"'], remediation: evict-pod, params: {fallbackToDelete: true}}
  - {name: drain-node, matchers: ['alertname="KubeNodeNotReady"'], remediation: drain-node, params: {timeout: 10s}}
  - {name: cordon-node, matchers: ['alertname="KubeNodeNotReady"'], remediation: drain-node, params: {cordonOnly: true}}
  - {name: delete-node, matchers: ['alertname="KubeNodeNotReady"'], remediation: delete-node, params: {drainTimeout: 10s}}
  - {name: cleanup-resource, matchers: ['alertname="StaleResource"'], remediation: cleanup-resource}
  - {name: cleanup-resource-finalizers, matchers: ['alertname="StaleResource"'], remediation: cleanup-resource, params: {removeFinalizers: true}}
  - {name: delete-namespace, matchers: ['alertname="StaleNamespace"'], remediation: delete-namespace, params: {namePattern: 'e2e-.*', minAge: 1h}}
"#;

fn insert(obj: &mut Value, pointer: &str, key: &str, value: Value) {
    if let Some(m) = obj.pointer_mut(pointer).and_then(Value::as_object_mut) {
        m.insert(key.to_string(), value);
    }
}

fn owner_reference(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A stand-in owner reference for an owner the test does not create; its
/// UID matches no object the emulation will ever hold.
fn absent_owner(api_version: &str, kind: &str, name: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": format!("absent-{}-{name}", kind.to_ascii_lowercase()),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Metadata shared by every builder: labels, annotations, owners.
macro_rules! metadata_setters {
    () => {
        /// Add the label `key=value`.
        pub fn label(mut self, key: &str, value: &str) -> Self {
            insert(&mut self.obj, "/metadata/labels", key, json!(value));
            self
        }

        /// Add the annotation `key: value`.
        pub fn annotation(mut self, key: &str, value: &str) -> Self {
            insert(&mut self.obj, "/metadata/annotations", key, json!(value));
            self
        }

        /// Opt the object out of heal8s (`heal8s.io/ignore=true`, as a label).
        pub fn opted_out(self) -> Self {
            self.label(OPT_OUT, "true")
        }

        /// Created `secs` seconds ago (the store API keeps a backdated
        /// `creationTimestamp`; the HTTP API never would).
        pub fn created_ago(mut self, secs: i64) -> Self {
            insert(
                &mut self.obj,
                "/metadata",
                "creationTimestamp",
                json!(ago(secs)),
            );
            self
        }

        /// The object, for `Emulator::create`.
        pub fn json(self) -> Value {
            self.obj
        }
    };
}

/// Controller owner references.
macro_rules! owner_setters {
    () => {
        /// Controlled by `owner`, an object as `Emulator::create` returned it
        /// (its apiVersion, kind, name and real UID).
        pub fn owned_by(mut self, owner: &Value) -> Self {
            self.obj["metadata"]["ownerReferences"] = json!([owner_reference(owner)]);
            self
        }
    };
}

/// A pod: by default Running and Ready for ten minutes, one container `app`
/// (image `registry/app:1`), on no node and owned by nothing.
#[derive(Debug, Clone)]
pub struct PodFixture {
    obj: Value,
}

impl PodFixture {
    /// Pod `namespace/name`, running and ready.
    pub fn new(namespace: &str, name: &str) -> PodFixture {
        PodFixture {
            obj: json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": {}, "annotations": {}},
                "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]},
                "status": {
                    "phase": "Running",
                    "startTime": ago(600),
                    "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": ago(600)},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": ago(600)},
                    ],
                    "containerStatuses": [{
                        "name": "app", "image": "registry/app:1", "imageID": "",
                        "ready": true, "started": true, "restartCount": 0,
                        "state": {"running": {"startedAt": ago(600)}},
                    }],
                },
            }),
        }
    }

    metadata_setters!();
    owner_setters!();

    /// Controlled by ReplicaSet `name`, which the test does not create (a
    /// stand-in UID: for an owner chain heal8s follows, create the
    /// ReplicaSet and use [`PodFixture::owned_by`]).
    pub fn owned_by_replicaset(mut self, name: &str) -> PodFixture {
        self.obj["metadata"]["ownerReferences"] =
            json!([absent_owner("apps/v1", "ReplicaSet", name)]);
        self
    }

    /// Controlled by DaemonSet `name`, which the test does not create.
    pub fn owned_by_daemonset(mut self, name: &str) -> PodFixture {
        self.obj["metadata"]["ownerReferences"] =
            json!([absent_owner("apps/v1", "DaemonSet", name)]);
        self
    }

    /// Bound to node `node`.
    pub fn on_node(mut self, node: &str) -> PodFixture {
        self.obj["spec"]["nodeName"] = json!(node);
        self
    }

    /// Its one container is called `name` (in the spec and the status).
    pub fn container(mut self, name: &str) -> PodFixture {
        self.obj["spec"]["containers"][0]["name"] = json!(name);
        self.obj["status"]["containerStatuses"][0]["name"] = json!(name);
        self
    }

    /// Its container has restarted `restarts` times and is waiting in
    /// `CrashLoopBackOff` after exiting with 1; the pod is not Ready.
    pub fn crash_looping(self, restarts: u32) -> PodFixture {
        let mut p = self.not_ready();
        let cs = &mut p.obj["status"]["containerStatuses"][0];
        cs["restartCount"] = json!(restarts);
        cs["started"] = json!(false);
        cs["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
            "message": "back-off 5m0s restarting failed container"}});
        cs["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
            "startedAt": ago(90), "finishedAt": ago(60)}});
        p
    }

    /// Its container has restarted `restarts` times (and runs again).
    pub fn restarts(mut self, restarts: u32) -> PodFixture {
        self.obj["status"]["containerStatuses"][0]["restartCount"] = json!(restarts);
        self
    }

    /// Running, but not Ready.
    pub fn not_ready(mut self) -> PodFixture {
        for c in self.obj["status"]["conditions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            c["status"] = json!("False");
            c["lastTransitionTime"] = json!(ago(300));
        }
        self.obj["status"]["containerStatuses"][0]["ready"] = json!(false);
        self
    }

    /// Mounts an emptyDir volume (a drain refuses it unless `deleteEmptydirData`).
    pub fn with_emptydir(mut self) -> PodFixture {
        self.obj["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
        self.obj["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "scratch", "mountPath": "/scratch"}]);
        self
    }
}

/// A Deployment: by default one replica, ready, selecting `app=<name>`,
/// with one container `app` (image `registry/app:1`).
#[derive(Debug, Clone)]
pub struct DeploymentFixture {
    obj: Value,
}

impl DeploymentFixture {
    /// Deployment `namespace/name`, its one replica ready.
    pub fn new(namespace: &str, name: &str) -> DeploymentFixture {
        DeploymentFixture {
            obj: json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace, "labels": {}, "annotations": {}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]},
                    },
                },
                "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                           "readyReplicas": 1, "availableReplicas": 1},
            }),
        }
    }

    metadata_setters!();

    /// Wants `n` replicas (all of them ready unless [`DeploymentFixture::ready`] says otherwise).
    pub fn replicas(mut self, n: u32) -> DeploymentFixture {
        self.obj["spec"]["replicas"] = json!(n);
        for f in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ] {
            self.obj["status"][f] = json!(n);
        }
        self
    }

    /// `n` of its replicas are ready (and available).
    pub fn ready(mut self, n: u32) -> DeploymentFixture {
        self.obj["status"]["readyReplicas"] = json!(n);
        self.obj["status"]["availableReplicas"] = json!(n);
        self
    }
}

/// A ReplicaSet: by default one replica, selecting `app=<name>`; owned by
/// a Deployment with [`ReplicaSetFixture::owned_by`], from which it takes
/// its selector and pod template, as the Deployment controller makes it.
#[derive(Debug, Clone)]
pub struct ReplicaSetFixture {
    obj: Value,
}

impl ReplicaSetFixture {
    /// ReplicaSet `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> ReplicaSetFixture {
        ReplicaSetFixture {
            obj: json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": namespace, "labels": {},
                             "annotations": {"deployment.kubernetes.io/revision": "1"}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]},
                    },
                },
                "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1},
            }),
        }
    }

    metadata_setters!();

    /// Controlled by Deployment `owner` (as `Emulator::create` returned it):
    /// its UID, replicas, selector and pod template.
    pub fn owned_by(mut self, owner: &Value) -> ReplicaSetFixture {
        self.obj["metadata"]["ownerReferences"] = json!([owner_reference(owner)]);
        for f in ["replicas", "selector", "template"] {
            if let Some(v) = owner["spec"].get(f) {
                self.obj["spec"][f] = v.clone();
            }
        }
        self
    }

    /// Its revision (`deployment.kubernetes.io/revision`).
    pub fn revision(self, n: u32) -> ReplicaSetFixture {
        self.annotation("deployment.kubernetes.io/revision", &n.to_string())
    }
}

/// A node: by default Ready for ten minutes, schedulable.
#[derive(Debug, Clone)]
pub struct NodeFixture {
    obj: Value,
}

impl NodeFixture {
    /// Node `name`, Ready.
    pub fn new(name: &str) -> NodeFixture {
        NodeFixture {
            obj: json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}, "annotations": {}},
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status", "lastTransitionTime": ago(600),
                    "lastHeartbeatTime": ago(5)}]},
            }),
        }
    }

    metadata_setters!();

    fn ready_condition(mut self, status: &str, reason: &str, message: &str, secs: i64) -> Self {
        self.obj["status"]["conditions"] = json!([{"type": "Ready", "status": status,
            "reason": reason, "message": message, "lastTransitionTime": ago(secs),
            "lastHeartbeatTime": ago(secs)}]);
        self
    }

    /// Ready `False` for `secs` seconds: its kubelet says it is not ready
    /// (and no kubelet confirms a pod's deletion there).
    pub fn not_ready_for(self, secs: i64) -> NodeFixture {
        self.ready_condition(
            "False",
            "KubeletNotReady",
            "container runtime is down",
            secs,
        )
    }

    /// Ready `Unknown` for `secs` seconds: its kubelet stopped posting status.
    pub fn unreachable_for(self, secs: i64) -> NodeFixture {
        self.ready_condition(
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
            secs,
        )
    }

    /// Cordoned (`spec.unschedulable`), by someone other than heal8s.
    pub fn cordoned(mut self) -> NodeFixture {
        self.obj["spec"]["unschedulable"] = json!(true);
        self
    }
}

/// A namespace: by default created now, with no labels.
#[derive(Debug, Clone)]
pub struct NamespaceFixture {
    obj: Value,
}

impl NamespaceFixture {
    /// Namespace `name`.
    pub fn new(name: &str) -> NamespaceFixture {
        NamespaceFixture {
            obj: json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": name, "labels": {}, "annotations": {}}}),
        }
    }

    metadata_setters!();
}

/// A PodDisruptionBudget: by default `minAvailable: 1`, selecting nothing
/// until [`PodDisruptionBudgetFixture::selecting`] says what.
#[derive(Debug, Clone)]
pub struct PodDisruptionBudgetFixture {
    obj: Value,
}

impl PodDisruptionBudgetFixture {
    /// PodDisruptionBudget `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> PodDisruptionBudgetFixture {
        PodDisruptionBudgetFixture {
            obj: json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                        "metadata": {"name": name, "namespace": namespace, "labels": {}, "annotations": {}},
                        "spec": {"minAvailable": 1, "selector": {"matchLabels": {}}}}),
        }
    }

    metadata_setters!();

    /// Covers the pods labelled `key=value` (added to its matchLabels).
    pub fn selecting(mut self, key: &str, value: &str) -> PodDisruptionBudgetFixture {
        insert(
            &mut self.obj,
            "/spec/selector/matchLabels",
            key,
            json!(value),
        );
        self
    }

    /// At least `n` covered pods must stay healthy.
    pub fn min_available(mut self, n: u32) -> PodDisruptionBudgetFixture {
        let spec = &mut self.obj["spec"];
        if let Some(m) = spec.as_object_mut() {
            m.remove("maxUnavailable");
        }
        spec["minAvailable"] = json!(n);
        self
    }

    /// At most `n` covered pods may be unhealthy.
    pub fn max_unavailable(mut self, n: u32) -> PodDisruptionBudgetFixture {
        let spec = &mut self.obj["spec"];
        if let Some(m) = spec.as_object_mut() {
            m.remove("minAvailable");
        }
        spec["maxUnavailable"] = json!(n);
        self
    }
}

/// Any other object, typically a custom resource the emulation serves
/// (`kubevirt.io/v1` VirtualMachine, `cdi.kubevirt.io/v1beta1` DataVolume).
#[derive(Debug, Clone)]
pub struct ObjectFixture {
    obj: Value,
}

impl ObjectFixture {
    /// An object of `api_version` and `kind`, `namespace/name` (`namespace`
    /// empty for a cluster-scoped type), with an empty spec.
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> ObjectFixture {
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(name));
        if !namespace.is_empty() {
            metadata.insert("namespace".into(), json!(namespace));
        }
        metadata.insert("labels".into(), json!({}));
        metadata.insert("annotations".into(), json!({}));
        ObjectFixture {
            obj: json!({"apiVersion": api_version, "kind": kind,
                        "metadata": metadata, "spec": {}}),
        }
    }

    metadata_setters!();
    owner_setters!();

    /// Held by finalizer `name` once deleted.
    pub fn finalizer(mut self, name: &str) -> ObjectFixture {
        let fs = &mut self.obj["metadata"]["finalizers"];
        if !fs.is_array() {
            *fs = json!([]);
        }
        if let Some(a) = fs.as_array_mut() {
            a.push(json!(name));
        }
        self
    }

    /// Set `field` of its spec.
    pub fn spec(mut self, field: &str, value: Value) -> ObjectFixture {
        self.obj["spec"][field] = value;
        self
    }

    /// Set `field` of its status.
    pub fn status(mut self, field: &str, value: Value) -> ObjectFixture {
        self.obj["status"][field] = value;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_fixture_chains_into_the_object_the_emulation_takes() {
        let p = PodFixture::new("shop", "api-1")
            .owned_by_replicaset("api-7d9c")
            .crash_looping(5)
            .on_node("w1")
            .label("app", "api")
            .json();
        assert_eq!(p["metadata"]["namespace"], "shop");
        assert_eq!(p["metadata"]["labels"]["app"], "api");
        assert_eq!(p["spec"]["nodeName"], "w1");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["restartCount"], 5);
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(p["status"]["conditions"][0]["status"], "False");
    }

    #[test]
    fn an_owner_reference_carries_the_owners_real_uid() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "api", "namespace": "shop", "uid": "d-uid"},
                       "spec": DeploymentFixture::new("shop", "api").json()["spec"].clone()});
        let rs = ReplicaSetFixture::new("shop", "api-7d9c")
            .owned_by(&d)
            .json();
        assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-uid");
        assert_eq!(rs["spec"]["selector"]["matchLabels"]["app"], "api");
        assert_eq!(rs["spec"]["template"]["metadata"]["labels"]["app"], "api");
    }

    #[test]
    fn a_node_not_ready_says_since_when() {
        let n = NodeFixture::new("w1").not_ready_for(600).json();
        let c = &n["status"]["conditions"][0];
        assert_eq!(
            (c["type"].as_str(), c["status"].as_str()),
            (Some("Ready"), Some("False"))
        );
        let since: jiff::Timestamp = c["lastTransitionTime"]
            .as_str()
            .unwrap_or("")
            .parse()
            .unwrap();
        let age = jiff::Timestamp::now().duration_since(since).as_secs();
        assert!((599..=660).contains(&age), "{age}");
    }

    #[test]
    fn the_shared_policies_name_their_routes() {
        for name in [
            "delete-pod",
            "evict-pod-or-delete",
            "cordon-node",
            "delete-namespace",
        ] {
            assert!(JANITOR_POLICY.contains(&format!("name: {name},")), "{name}");
        }
        assert!(DELETE_POD_POLICY.contains("remediation: delete-pod"));
    }
}
