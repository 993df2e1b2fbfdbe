//! Real `kubectl` against the standalone Kubernetes API emulation
//! (`testkit kube`): client-side and server-side apply, get (tables and JSON),
//! api-resources, status patches, delete, cordon and drain with evictions and
//! a blocking PodDisruptionBudget, against a cluster whose controllers and
//! kubelets are played (`--play`); and against a bare API server, where
//! evicted pods wait for a kubelet that is gone, a deleted namespace waits
//! for its controller, and the server's warnings reach kubectl's stderr.
//! Needs kubectl (`$KUBECTL` or on PATH).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::process::{Command, Output};

use serde_json::Value;
use testkit::{KubeProcess, kubectl_bin};

/// One kubectl invocation against a standalone emulator.
struct Kubectl {
    server: KubeProcess,
}

impl Kubectl {
    /// A cluster: the emulation with its controllers and the kubelets of
    /// Ready nodes played.
    fn start() -> Kubectl {
        Kubectl {
            server: KubeProcess::start_with(&[
                "--play",
                "kubelet,namespace,serviceaccount,node-lifecycle",
            ])
            .unwrap(),
        }
    }

    /// A bare API server: nothing plays the controllers or the kubelets.
    fn bare() -> Kubectl {
        Kubectl {
            server: KubeProcess::start().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let cache = self.server.dir.path().join("kubectl-cache");
        Command::new(kubectl_bin().unwrap())
            .arg("--kubeconfig")
            .arg(&self.server.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .expect("cannot run kubectl")
    }

    /// Run kubectl, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    fn apply(&self, name: &str, yaml: &str) -> String {
        let path = self.server.dir.path().join(name);
        fs::write(&path, yaml).unwrap();
        self.ok(&["apply", "-f", path.to_str().unwrap()])
    }

    /// Create namespace `name` and wait for its `default` ServiceAccount (the
    /// played ServiceAccount controller's work): as on a real cluster, a pod
    /// created in the same breath as its namespace can race that controller.
    fn namespace(&self, name: &str) {
        self.apply(
            "ns.yaml",
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"),
        );
        for _ in 0..100 {
            if self
                .run(&["get", "serviceaccount", "default", "-n", name])
                .status
                .success()
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no default ServiceAccount in {name}");
    }
}

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        resources:
          limits: {memory: 128Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  namespace: shop
  labels: {app: solo}
spec:
  containers:
  - name: c
    image: busybox:1
"#;

const NODE_AND_PODS: &str = r#"apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels: {node-role.kubernetes.io/worker: ""}
status:
  conditions:
  - {type: Ready, status: "True"}
  nodeInfo: {kubeletVersion: v1.33.0}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: shop}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: agent:1}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: agent-x
  namespace: shop
  labels: {app: agent}
  ownerReferences:
  - {apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: 22222222-2222-4222-8222-222222222222, controller: true}
spec:
  nodeName: node-1
  containers: [{name: agent, image: agent:1}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  labels: {app: web}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-abc, uid: 11111111-1111-4111-8111-111111111111, controller: true}
spec:
  nodeName: node-1
  containers: [{name: web, image: nginx}]
  volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web-2
  namespace: shop
  labels: {app: web}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-abc, uid: 11111111-1111-4111-8111-111111111111, controller: true}
spec:
  nodeName: node-1
  containers: [{name: web, image: nginx}]
"#;

const READY: &str =
    r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;

#[test]
fn real_kubectl_applies_gets_patches_and_deletes() {
    let k = Kubectl::start();
    k.namespace("shop");
    let out = k.apply("app.yaml", APP);
    assert!(out.contains("namespace/shop unchanged"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("pod/solo created"), "{out}");

    // re-apply with changes: a three-way strategic merge patch
    let changed = APP
        .replace("nginx:1.25", "nginx:1.26")
        .replace("128Mi", "256Mi")
        .replace("labels: {app: solo}", "labels: {app: solo, tier: x}");
    let out = k.apply("app2.yaml", &changed);
    assert!(out.contains("namespace/shop unchanged"), "{out}");
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("pod/solo configured"), "{out}");
    assert!(
        k.server
            .log()
            .contains("content-type: application/strategic-merge-patch+json"),
        "kubectl patched with a strategic merge patch"
    );
    let d = k.json(&["get", "deployment", "web", "-n", "shop"]);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.26");
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(d["metadata"]["generation"], 2);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap()
            .contains("nginx:1.26")
    );

    let pods = k.json(&["get", "pods", "-n", "shop"]);
    assert_eq!(pods["items"][0]["metadata"]["labels"]["tier"], "x");
    assert_eq!(pods["items"][0]["status"]["phase"], "Pending");

    let out = k.ok(&[
        "patch",
        "pod",
        "solo",
        "-n",
        "shop",
        "--subresource=status",
        "--type=merge",
        "-p",
        READY,
    ]);
    assert!(out.contains("pod/solo patched"), "{out}");
    let table = k.ok(&["get", "pods", "-n", "shop"]);
    let row = table.lines().find(|l| l.starts_with("solo")).unwrap();
    assert!(row.contains("Running"), "{table}");

    let resources = k.ok(&["api-resources"]);
    for want in [
        "pods",
        "nodes",
        "deployments",
        "poddisruptionbudgets",
        "leases",
        "virtualmachines",
        "datavolumes",
        "remediations",
    ] {
        assert!(
            resources
                .lines()
                .any(|l| l.starts_with(&format!("{want} "))),
            "{want} missing from:\n{resources}"
        );
    }

    let out = k.ok(&["delete", "pod", "solo", "-n", "shop"]);
    assert!(out.contains("pod \"solo\" deleted"), "{out}");
    let gone = k.run(&["get", "pod", "solo", "-n", "shop"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));

    // server-side apply is accepted too
    let out = k.ok(&[
        "apply",
        "--server-side",
        "-f",
        k.server.dir.path().join("app2.yaml").to_str().unwrap(),
    ]);
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
}

#[test]
fn real_kubectl_cordons_and_drains_a_node_through_evictions() {
    let k = Kubectl::start();
    k.namespace("shop");
    k.apply("node.yaml", NODE_AND_PODS);
    for p in ["web-1", "web-2", "agent-x"] {
        k.ok(&[
            "patch",
            "pod",
            p,
            "-n",
            "shop",
            "--subresource=status",
            "--type=merge",
            "-p",
            READY,
        ]);
    }
    let nodes = k.ok(&["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("node-1") && l.contains("Ready") && l.contains("worker")),
        "{nodes}"
    );

    let out = k.ok(&["cordon", "node-1"]);
    assert!(out.contains("node/node-1 cordoned"), "{out}");
    let node = k.json(&["get", "node", "node-1"]);
    assert_eq!(node["spec"]["unschedulable"], true);
    assert!(k.ok(&["get", "nodes"]).contains("SchedulingDisabled"));

    // a budget that allows no disruption: drain retries evictions until its timeout
    k.apply(
        "pdb.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web, namespace: shop}\n\
         spec:\n  minAvailable: 2\n  selector: {matchLabels: {app: web}}\n",
    );
    let blocked = k.run(&[
        "drain",
        "node-1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=6s",
    ]);
    assert!(!blocked.status.success());
    let err = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{err}"
    );
    assert!(err.contains("global timeout reached: 6s"), "{err}");
    let log = k.server.log();
    assert!(
        log.contains("GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1"),
        "{log}"
    );
    let refused = log
        .lines()
        .filter(|l| {
            l.starts_with("POST /api/v1/namespaces/shop/pods/web-1/eviction")
                && l.contains("-> 429")
        })
        .count();
    assert!(
        refused >= 2,
        "drain retried the eviction ({refused} attempts)"
    );
    assert_eq!(
        k.json(&["get", "pods", "-n", "shop"])["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    k.ok(&["delete", "pdb", "web", "-n", "shop"]);
    let out = k.ok(&[
        "drain",
        "node-1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=20s",
    ]);
    assert!(out.contains("node/node-1 drained"), "{out}");
    let left: Vec<String> = k.json(&["get", "pods", "-n", "shop"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["agent-x"], "DaemonSet pods stay");
    assert!(
        k.server
            .log()
            .contains("POST /api/v1/namespaces/shop/pods/web-1/eviction -> 201")
    );

    let out = k.ok(&["uncordon", "node-1"]);
    assert!(out.contains("node/node-1 uncordoned"), "{out}");
}

#[test]
fn real_kubectl_applies_a_crd_and_then_its_objects() {
    let k = Kubectl::start();
    k.apply(
        "crd.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    subresources: {status: {}}
"#,
    );
    let w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n";
    assert!(
        k.apply("w.yaml", w)
            .contains("widget.example.com/w1 created")
    );
    assert!(
        k.apply("w.yaml", &w.replace("size: 3", "size: 4"))
            .contains("configured")
    );
    let got = k.json(&["get", "wd", "w1"]);
    assert_eq!(got["spec"]["size"], 4);
    assert!(k.ok(&["get", "widgets"]).contains("w1"));
    k.ok(&["delete", "crd", "widgets.example.com"]);
    let gone = k.run(&["get", "widgets.example.com"]);
    assert!(!gone.status.success(), "the type is no longer served");
}

#[test]
fn real_kubectl_drains_a_dead_node_into_terminating_pods_on_a_bare_api_server() {
    let k = Kubectl::bare();
    // no ServiceAccount controller runs: the test makes the account itself
    k.apply(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: shop}\n",
    );
    // the node's kubelet is gone: it last said NotReady
    k.apply(
        "node.yaml",
        &NODE_AND_PODS.replace(
            r#"{type: Ready, status: "True"}"#,
            r#"{type: Ready, status: "False"}"#,
        ),
    );
    let node = k.json(&["get", "node", "node-1"]);
    assert_eq!(
        node["spec"]["taints"][0]["key"], "node.kubernetes.io/not-ready",
        "a new node is tainted not-ready at registration"
    );
    for p in ["web-1", "web-2"] {
        k.ok(&[
            "patch",
            "pod",
            p,
            "-n",
            "shop",
            "--subresource=status",
            "--type=merge",
            "-p",
            READY,
        ]);
    }
    let out = k.run(&[
        "drain",
        "node-1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=4s",
    ]);
    assert!(!out.status.success(), "nothing confirms the evictions");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "error when waiting for pod \"web-1\" in namespace \"shop\" to terminate: context deadline exceeded"
        ),
        "{err}"
    );
    let log = k.server.log();
    assert!(
        log.contains("POST /api/v1/namespaces/shop/pods/web-1/eviction -> 201"),
        "{log}"
    );
    let table = k.ok(&["get", "pods", "-n", "shop"]);
    for p in ["web-1", "web-2"] {
        let row = table.lines().find(|l| l.starts_with(p)).unwrap();
        assert!(row.contains("Terminating"), "{table}");
    }

    // a namespace waits for its controller; kubectl is told so on a second delete
    k.ok(&["delete", "namespace", "shop", "--wait=false"]);
    let ns = k.ok(&["get", "namespace", "shop"]);
    assert!(ns.contains("Terminating"), "{ns}");
    let again = k.run(&["delete", "namespace", "shop", "--wait=false"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("Error from server (Conflict): Operation cannot be fulfilled on namespaces \"shop\": The system is ensuring all content is removed from this namespace."),
        "{err}"
    );
}

#[test]
fn real_kubectl_shows_the_servers_warnings() {
    let k = Kubectl::bare();
    let path = k.server.dir.path().join("crd.yaml");
    fs::write(
        &path,
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {type: integer, format: uint32}
"#,
    )
    .unwrap();
    let out = k.run(&["apply", "-f", path.to_str().unwrap()]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"Warning: unrecognized format "uint32""#),
        "{err}"
    );
    let out = k.run(&["get", "endpoints", "-A"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"
        ),
        "{err}"
    );
}
