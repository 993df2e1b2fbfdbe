//! Real `kubectl` against the in-process Kubernetes API emulation: the
//! common verbs (create, apply, get, patch, delete, cordon, drain), checked
//! against what the emulation stored and what kubectl printed. kubectl's
//! typed clients (`create namespace`, `create deployment`, a drain's
//! DeleteOptions...) send protobuf bodies, which the emulation decodes; a
//! body it cannot decode gets the API server's 415 or 400 Status.
//! Needs kubectl (`$KUBECTL` or on PATH).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::process::Output;

use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator, EmulatorOptions, PlayedControllers};
use testkit::{TempDir, kubectl_bin};

/// An emulation on loopback, a kubeconfig for it, and the played
/// controllers a test asked for.
struct Cluster {
    emu: Emulator,
    dir: TempDir,
    kubeconfig: PathBuf,
    _played: Option<PlayedControllers>,
}

impl Cluster {
    async fn start(play: &[Controller]) -> Cluster {
        let emu = Emulator::start().await.unwrap();
        let dir = TempDir::new("kubectl");
        let kubeconfig = dir.path().join("kubeconfig");
        emu.write_kubeconfig(&kubeconfig).unwrap();
        let played = (!play.is_empty()).then(|| emu.play(play));
        Cluster {
            emu,
            dir,
            kubeconfig,
            _played: played,
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(kubectl_bin().unwrap())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .await
            .expect("cannot run kubectl")
    }

    /// Run kubectl, which must succeed; its stdout and stderr.
    async fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{stderr}"
        );
        (stdout, stderr)
    }

    /// Run kubectl, which must fail with exit code 1; its stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Node `node-1`, Ready (stored as its kubelet would report it: the
    /// HTTP API keeps no status on create).
    fn ready_node(&self) {
        self.emu
            .create(json!({
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }))
            .unwrap();
    }

    fn pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.emu.get("v1", "Pod", ns, name)
    }

    /// `METHOD path -> status` of every request so far.
    fn log(&self) -> Vec<String> {
        self.emu
            .requests()
            .iter()
            .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
            .collect()
    }
}

/// kubectl's `-v=8` log shows each request's headers.
fn sent_protobuf(stderr: &str) -> bool {
    stderr.contains("Content-Type: application/vnd.kubernetes.protobuf")
}

/// A JSON object without nulls and empty objects: Go writes
/// `creationTimestamp: null`, `resources: {}` and `status: {}` for unset
/// values, which are no content.
fn without_empties(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| without_empties(v).map(|v| (k.clone(), v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .map(|i| without_empties(i).unwrap_or_else(|| json!({})))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: solo}
spec:
  containers:
  - name: c
    image: busybox:1
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
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
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_creates_a_namespace_sending_protobuf() {
    let c = Cluster::start(&[]).await;
    let (out, err) = c.ok(&["create", "namespace", "shop", "-v=8"]).await;
    assert!(out.contains("namespace/shop created"), "{out}");
    assert!(sent_protobuf(&err), "kubectl sent protobuf:\n{err}");
    let ns = c.emu.get("v1", "Namespace", "", "shop").unwrap();
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert!(
        ns["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );

    // the second one is the API server's 409, decoded from protobuf too
    let err = c.fails(&["create", "namespace", "shop"]).await;
    assert!(
        err.contains(r#"Error from server (AlreadyExists): namespaces "shop" already exists"#),
        "{err}"
    );
}

/// Each `kubectl create <generator>` sends its object as protobuf; what the
/// emulation stores is what kubectl itself renders as JSON (`--dry-run=client`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_create_generators_store_what_kubectl_encodes() {
    let c = Cluster::start(&[]).await;
    let cases: &[(&[&str], &str, &str, &str)] = &[
        (
            &[
                "deployment",
                "web",
                "--image=nginx:1.25",
                "--replicas=0",
                "--port=80",
            ],
            "apps/v1",
            "Deployment",
            "web",
        ),
        (
            &["configmap", "cm", "--from-literal=a=b"],
            "v1",
            "ConfigMap",
            "cm",
        ),
        (
            &["secret", "generic", "s", "--from-literal=password=hunter2"],
            "v1",
            "Secret",
            "s",
        ),
        (
            &["service", "nodeport", "svc", "--tcp=80:http"],
            "v1",
            "Service",
            "svc",
        ),
        (
            &["job", "j", "--image=busybox", "--", "echo", "hi"],
            "batch/v1",
            "Job",
            "j",
        ),
        (
            &["serviceaccount", "robot"],
            "v1",
            "ServiceAccount",
            "robot",
        ),
        (
            &["pdb", "budget", "--selector=app=web", "--min-available=50%"],
            "policy/v1",
            "PodDisruptionBudget",
            "budget",
        ),
    ];
    for (args, api_version, kind, name) in cases {
        // flags first: a job's command follows `--`
        let dry = [&["create", "--dry-run=client", "-o", "json"], *args].concat();
        let (rendered, _) = c.ok(&dry).await;
        let (out, err) = c.ok(&[&["create", "-v=8"], *args].concat()).await;
        assert!(out.contains(&format!("/{name} created")), "{out}");
        assert!(sent_protobuf(&err), "{kind} went as protobuf:\n{err}");

        let want: Value = serde_json::from_str(&rendered).unwrap();
        let stored = c.emu.get(api_version, kind, "default", name).unwrap();
        for part in ["spec", "data", "type"] {
            assert_eq!(
                stored.get(part).and_then(without_empties),
                want.get(part).and_then(without_empties),
                "{kind} {part}"
            );
        }
        assert_eq!(
            stored["metadata"]["labels"], want["metadata"]["labels"],
            "{kind}"
        );
    }
    // a Go pointer set to zero stays zero
    let d = c
        .emu
        .get("apps/v1", "Deployment", "default", "web")
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 0);
    // bytes arrive as the base64 JSON has them
    let s = c.emu.get("v1", "Secret", "default", "s").unwrap();
    assert_eq!(s["data"]["password"], "aHVudGVyMg==");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_creates_a_pod_and_a_deployment_from_files() {
    let c = Cluster::start(&[]).await;
    let pod = c.file("pod.yaml", POD);
    let deployment = c.file("deployment.yaml", DEPLOYMENT);
    let (out, _) = c.ok(&["create", "-f", &pod, "-f", &deployment]).await;
    assert!(out.contains("pod/solo created"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let p = c.pod("default", "solo").unwrap();
    assert_eq!(p["spec"]["containers"][0]["image"], "busybox:1");
    let d = c
        .emu
        .get("apps/v1", "Deployment", "default", "web")
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "128Mi"
    );

    let err = c.fails(&["create", "-f", &pod]).await;
    assert!(
        err.contains(r#"Error from server (AlreadyExists): error when creating"#)
            && err.contains(r#"pods "solo" already exists"#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_applies_then_reapplies_a_changed_field() {
    let c = Cluster::start(&[]).await;
    let first = c.file("d1.yaml", DEPLOYMENT);
    let (out, _) = c.ok(&["apply", "-f", &first]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let d = c
        .emu
        .get("apps/v1", "Deployment", "default", "web")
        .unwrap();
    let applied = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert!(applied.contains("nginx:1.25"), "{applied}");

    c.emu.clear_requests();
    let second = c.file("d2.yaml", &DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"));
    let (out, _) = c.ok(&["apply", "-f", &second]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    // client-side apply: a strategic merge patch computed from the annotation
    assert!(
        c.log()
            .contains(&"PATCH /apis/apps/v1/namespaces/default/deployments/web -> 200".to_string()),
        "{:#?}",
        c.log()
    );
    let d = c
        .emu
        .get("apps/v1", "Deployment", "default", "web")
        .unwrap();
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.26");
    assert_eq!(container["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(d["metadata"]["generation"], 2);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap()
            .contains("nginx:1.26")
    );

    let (out, _) = c.ok(&["apply", "-f", &second]).await;
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_gets_pods_as_a_table_and_as_json() {
    let c = Cluster::start(&[]).await;
    c.ok(&["create", "-f", &c.file("pod.yaml", POD)]).await;
    let (table, _) = c.ok(&["get", "pods"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["solo", "0/1", "Pending", "0"], "{table}");

    let (json, _) = c.ok(&["get", "pods", "-o", "json"]).await;
    let list: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "solo");
    assert_eq!(list["items"][0]["metadata"]["namespace"], "default");
    assert_eq!(list["items"][0]["spec"]["containers"][0]["name"], "c");

    let err = c.fails(&["get", "pod", "nope"]).await;
    assert!(
        err.contains(r#"Error from server (NotFound): pods "nope" not found"#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_patches_with_merge_json_and_strategic_patches() {
    let c = Cluster::start(&[]).await;
    c.ok(&["create", "-f", &c.file("d.yaml", DEPLOYMENT)]).await;
    let deployment = || {
        c.emu
            .get("apps/v1", "Deployment", "default", "web")
            .unwrap()
    };

    let (out, _) = c
        .ok(&[
            "patch",
            "deployment",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":"front"}},"spec":{"replicas":3}}"#,
        ])
        .await;
    assert!(out.contains("deployment.apps/web patched"), "{out}");
    assert_eq!(deployment()["metadata"]["labels"]["tier"], "front");
    assert_eq!(deployment()["spec"]["replicas"], 3);

    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.27"}]"#,
    ])
    .await;
    assert_eq!(
        deployment()["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    // a JSON patch whose test fails is the server's 422
    let err = c
        .fails(&[
            "patch",
            "deployment",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
        ])
        .await;
    assert!(err.contains("The request is invalid"), "{err}");

    // strategic (kubectl's default): containers merge by name
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"envoy:1"}]}}}}"#,
    ])
    .await;
    let names: Vec<Value> = deployment()["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("web"), json!("sidecar")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_deletes_a_pod_once_its_kubelet_confirms() {
    let c = Cluster::start(&[Controller::Kubelet]).await;
    c.ready_node();
    let bound = POD.replace("spec:\n", "spec:\n  nodeName: node-1\n");
    c.ok(&["create", "-f", &c.file("pod.yaml", &bound)]).await;
    assert_eq!(
        c.pod("default", "solo").unwrap()["spec"]["nodeName"],
        "node-1"
    );
    let (out, _) = c.ok(&["delete", "pod", "solo"]).await;
    assert!(out.contains(r#"pod "solo" deleted"#), "{out}");
    assert!(c.pod("default", "solo").is_none());

    let err = c.fails(&["delete", "pod", "solo"]).await;
    assert!(
        err.contains(r#"Error from server (NotFound): pods "solo" not found"#),
        "{err}"
    );
}

/// A node with a DaemonSet's pod, a ReplicaSet's pod with an emptyDir
/// volume and one without.
const WORKLOAD_ON_NODE: &str = r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
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
  labels: {app: web}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-abc, uid: 11111111-1111-4111-8111-111111111111, controller: true}
spec:
  nodeName: node-1
  containers: [{name: web, image: nginx}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_cordons_and_uncordons_a_node() {
    let c = Cluster::start(&[]).await;
    c.ready_node();
    let (out, _) = c.ok(&["cordon", "node-1"]).await;
    assert!(out.contains("node/node-1 cordoned"), "{out}");
    let node = c.emu.get("v1", "Node", "", "node-1").unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    let (nodes, _) = c.ok(&["get", "nodes"]).await;
    assert!(nodes.contains("SchedulingDisabled"), "{nodes}");
    let (out, _) = c.ok(&["cordon", "node-1"]).await;
    assert!(out.contains("node/node-1 already cordoned"), "{out}");

    let (out, _) = c.ok(&["uncordon", "node-1"]).await;
    assert!(out.contains("node/node-1 uncordoned"), "{out}");
    let node = c.emu.get("v1", "Node", "", "node-1").unwrap();
    assert!(node["spec"]["unschedulable"].is_null(), "{node}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_drains_a_node_through_evictions() {
    let c = Cluster::start(&[Controller::Kubelet]).await;
    c.ready_node();
    c.ok(&["create", "-f", &c.file("w.yaml", WORKLOAD_ON_NODE)])
        .await;
    c.emu.clear_requests();
    let (out, err) = c
        .ok(&[
            "drain",
            "node-1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=30s",
        ])
        .await;
    assert!(out.contains("node/node-1 cordoned"), "{out}");
    assert!(out.contains("pod/web-1 evicted"), "{out}");
    assert!(out.contains("node/node-1 drained"), "{out}");
    assert!(err.contains("Warning: ignoring DaemonSet-managed Pods: default/agent-x"));
    let log = c.log();
    for p in ["web-1", "web-2"] {
        let eviction = format!("POST /api/v1/namespaces/default/pods/{p}/eviction -> 201");
        assert!(log.contains(&eviction), "{log:#?}");
        assert!(c.pod("default", p).is_none(), "{p} is gone");
    }
    assert!(c.pod("default", "agent-x").is_some(), "DaemonSet pods stay");
    let node = c.emu.get("v1", "Node", "", "node-1").unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
}

/// `--disable-eviction` deletes instead, with DeleteOptions sent as protobuf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_drains_with_deletes_sending_protobuf_delete_options() {
    let c = Cluster::start(&[Controller::Kubelet]).await;
    c.ready_node();
    c.ok(&["create", "-f", &c.file("w.yaml", WORKLOAD_ON_NODE)])
        .await;
    c.emu.clear_requests();
    let (out, err) = c
        .ok(&[
            "drain",
            "node-1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--disable-eviction",
            "--grace-period=0",
            "--timeout=30s",
            "-v=8",
        ])
        .await;
    assert!(out.contains("node/node-1 drained"), "{out}");
    assert!(sent_protobuf(&err), "{err}");
    let log = c.log();
    assert!(
        log.contains(&"DELETE /api/v1/namespaces/default/pods/web-1 -> 200".to_string()),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("/eviction")), "{log:#?}");
    assert!(c.pod("default", "web-1").is_none());
    assert!(c.pod("default", "web-2").is_none());
}

/// Bodies a real API server cannot decode either get its answers: a 400
/// Status for broken data (through kubectl), a 415 Status naming the
/// accepted media types for an unknown one, and for protobuf sent to a
/// custom resource, which has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_and_raw_requests_get_the_api_servers_status_for_undecodable_bodies() {
    let c = Cluster::start(&[]).await;
    c.ok(&["create", "namespace", "shop"]).await;
    let garbage = c.file("garbage", "not an object");
    let err = c
        .fails(&[
            "replace",
            "--raw",
            "/api/v1/namespaces/shop",
            "-f",
            &garbage,
        ])
        .await;
    assert!(
        err.contains("Error from server (BadRequest): the object provided is unrecognized (Namespace: 6e6f7420616e206f626a656374): couldn't get version/kind; json parse error:"),
        "{err}"
    );
    assert!(c.emu.get("v1", "Namespace", "", "shop").is_some());

    let http = reqwest::Client::new();
    let post = |path: &str, content_type: &str, body: &'static [u8]| {
        http.post(format!("{}{path}", c.emu.url()))
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let r = post("/api/v1/namespaces/shop/configmaps", "text/plain", b"a=b")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let status: Value = r.json().await.unwrap();
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": "UnsupportedMediaType", "code": 415,
            "message": "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        })
    );

    let r = post(
        "/apis/heal8s.io/v1alpha1/namespaces/shop/remediations",
        "application/vnd.kubernetes.protobuf",
        b"k8s\0",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let status: Value = r.json().await.unwrap();
    assert_eq!(
        status["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
    );

    let r = post(
        "/api/v1/namespaces/shop/configmaps",
        "application/vnd.kubernetes.protobuf",
        b"{\"kind\":\"ConfigMap\"}",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"].as_str().unwrap().ends_with(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        ),
        "{status}"
    );
    assert!(c.emu.list("v1", "ConfigMap", "shop").is_empty());
}

/// `kubectl auth whoami` with a kubeconfig holding a bearer token names the
/// user the token was added for (its SelfSubjectReview, sent as protobuf by
/// kubectl's typed client); an unknown token is the API server's 401.
/// kubectl sends a kubeconfig's token only over TLS: the emulation serves
/// HTTPS here, the kubeconfig naming its CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_auth_whoami_names_the_token_user() {
    let emu = Emulator::start_with(EmulatorOptions {
        tls: true,
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    emu.add_user("alice-token", "alice", &["sre"]);
    let dir = TempDir::new("kubectl-whoami");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let c = Cluster {
        emu,
        dir,
        kubeconfig,
        _played: None,
    };
    let whoami = |kubeconfig: PathBuf| {
        let cache = c.dir.path().join("cache");
        async move {
            tokio::process::Command::new(kubectl_bin().unwrap())
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--cache-dir")
                .arg(cache)
                .args(["auth", "whoami", "-o", "json", "-v=8"])
                .env_remove("KUBECONFIG")
                .output()
                .await
                .expect("cannot run kubectl")
        }
    };
    let alice = c.dir.path().join("alice.kubeconfig");
    c.emu.write_kubeconfig_as(&alice, "alice-token").unwrap();
    let out = whoami(alice).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Authorization: Bearer <masked>"),
        "{stderr}"
    );
    assert!(sent_protobuf(&stderr), "{stderr}");
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["kind"], "SelfSubjectReview");
    assert_eq!(
        review["status"]["userInfo"],
        json!({"username": "alice", "groups": ["sre", "system:authenticated"]})
    );

    // without a token, the admin
    let (stdout, _) = c.ok(&["auth", "whoami", "-o", "json"]).await;
    let review: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "kubernetes-admin");

    let stranger = c.dir.path().join("stranger.kubeconfig");
    c.emu
        .write_kubeconfig_as(&stranger, "no-such-token")
        .unwrap();
    let out = whoami(stranger).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: You must be logged in to the server (Unauthorized)"),
        "{stderr}"
    );
    assert!(
        c.log()
            .contains(&"POST /apis/authentication.k8s.io/v1/selfsubjectreviews -> 401".to_string()),
        "{:?}",
        c.log()
    );
}
