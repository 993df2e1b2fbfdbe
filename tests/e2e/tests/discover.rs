//! What heal8s tells about a cluster, against the Kubernetes API emulation:
//! `heal8s discover` (its API groups grouped, the configured custom
//! resources present and missing, `-o json`, an unreachable cluster), and
//! the cluster summary `heal8s serve` logs once connected (one JSON event
//! with every item a field; text lines; `unknown` for what a slow API does
//! not answer in time, without holding serving up).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::kube::{Emulator, RequestMatch};
use testkit::{Heal8s, TempDir, eventually, free_port, heal8s_bin};

const TOKEN: &str = "discover-e2e-token";

/// A CustomResourceDefinition for `plural.group`, served at `version`.
fn crd(group: &str, kind: &str, plural: &str, version: &str, scope: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
            "versions": [{"name": version, "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

fn namespace(emu: &Emulator, name: &str) {
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .unwrap();
}

fn node(emu: &Emulator, name: &str, ready: &str) {
    emu.create(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": ready}]}}),
    )
    .unwrap();
}

/// The emulated cluster: an installed CRD (widgets.example.com/v1 with 3
/// objects), OpenShift's config group, 2 DataVolumes, 1 VirtualMachine,
/// 3 nodes of which 2 are Ready.
fn cluster(emu: &Emulator) {
    emu.create(crd("example.com", "Widget", "widgets", "v1", "Namespaced"))
        .unwrap();
    emu.create(crd(
        "config.openshift.io",
        "ClusterVersion",
        "clusterversions",
        "v1",
        "Cluster",
    ))
    .unwrap();
    namespace(emu, "e2e-1");
    for n in 0..3 {
        emu.create(json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": format!("w{n}"), "namespace": "e2e-1"}}))
            .unwrap();
    }
    for n in 0..2 {
        emu.create(
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": format!("dv{n}"), "namespace": "e2e-1"}}),
        )
        .unwrap();
    }
    emu.create(
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "vm0", "namespace": "e2e-1"}}),
    )
    .unwrap();
    node(emu, "w1", "True");
    node(emu, "w2", "True");
    node(emu, "w3", "False");
}

/// The policy: the custom resource detector on, with a present CRD, a
/// built-in KubeVirt type and a missing one.
const POLICY: &str = r#"profile: test-cluster
detectors:
  customResources:
    enabled: true
    resources:
      - widgets.example.com/v1
      - datavolumes.cdi.kubevirt.io/v1beta1
      - gadgets.example.org/v1
routes:
  - {matchers: ['alertname="KubePodCrashLooping"'], remediation: delete-pod}
"#;

struct Files {
    dir: TempDir,
}

impl Files {
    fn new(emu: &Emulator) -> Files {
        let dir = TempDir::new("discover");
        emu.write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
        Files { dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn policy(&self) -> PathBuf {
        self.dir.path().join("policy.yaml")
    }
}

fn heal8s(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(heal8s_bin());
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HEAL8S_") || k == "KUBECONFIG" {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The process is blocking: run it off the emulation's runtime threads.
async fn discover(kubeconfig: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<String> = vec![
        "discover".into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        heal8s(&a)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_lists_the_groups_and_which_configured_custom_resources_exist() {
    let emu = Emulator::start().await.unwrap();
    cluster(&emu);
    let f = Files::new(&emu);
    let policy = f.policy().display().to_string();

    let (code, out, err) = discover(&f.kubeconfig(), &["--policy", &policy]).await;
    assert_eq!(code, 0, "{err}");
    for want in [
        &format!(
            "Cluster: {}, kubeconfig context heal8s-emulator (cluster heal8s-emulator)",
            emu.url()
        ) as &str,
        "Kubernetes v1.33.0-heal8s-emulator (linux/amd64), distribution OpenShift, add-ons: KubeVirt, CDI",
        "\ncore (",
        "  v1: ",
        "  apps/v1: daemonsets, deployments, replicasets, statefulsets",
        "\nKubeVirt/CDI (2 API groups)",
        "  kubevirt.io/v1: virtualmachineinstances, virtualmachines",
        "  cdi.kubevirt.io/v1beta1: datavolumes",
        "\nOpenShift (1 API group)",
        "  config.openshift.io/v1: clusterversions",
        "\nothers (",
        "  example.com/v1: widgets",
        "the detector is on",
        "  present  widgets.example.com/v1 (Widget, namespaced)",
        "  present  datavolumes.cdi.kubevirt.io/v1beta1 (DataVolume, namespaced)",
        "  missing  gadgets.example.org/v1: API group example.org/v1 is not installed",
        "  2 present, 1 missing",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }

    let (code, out, err) = discover(&f.kubeconfig(), &["--policy", &policy, "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["version"]["gitVersion"], "v1.33.0-heal8s-emulator");
    assert_eq!(
        v["platform"],
        json!({"openshift": true, "kubevirt": true, "cdi": true})
    );
    assert_eq!(v["connection"]["context"], "heal8s-emulator");
    assert_eq!(v["connection"]["inCluster"], false);
    let names = |family: &str| -> Vec<String> {
        v["groups"][family]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names("core").contains(&String::new()), "{v:#}");
    assert!(names("core").contains(&"apps".to_string()));
    assert_eq!(names("kubevirt"), ["kubevirt.io", "cdi.kubevirt.io"]);
    assert_eq!(names("openshift"), ["config.openshift.io"]);
    assert!(names("other").contains(&"example.com".to_string()));
    let widgets = v["groups"]["other"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "example.com")
        .unwrap();
    assert_eq!(
        widgets["resources"],
        json!([{"name": "widgets", "kind": "Widget", "namespaced": true}])
    );
    assert_eq!(v["customResourcesEnabled"], true);
    let custom = v["customResources"].as_array().unwrap();
    assert_eq!(custom.len(), 3);
    assert_eq!(custom[0]["resource"], "widgets.example.com/v1");
    assert_eq!(custom[0]["present"], true);
    assert_eq!(custom[0]["kind"], "Widget");
    assert_eq!(custom[2]["resource"], "gadgets.example.org/v1");
    assert_eq!(custom[2]["present"], false);
    assert!(
        custom[2]["reason"]
            .as_str()
            .unwrap()
            .contains("not installed")
    );

    // --crd-resources replaces the list; the default (production) policy's detector is off
    let (code, out, _) = discover(
        &f.kubeconfig(),
        &["--crd-resources", "widgets.example.com/v2", "-o", "json"],
    )
    .await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["customResourcesEnabled"], false);
    assert_eq!(v["customResources"][0]["present"], false);
    assert!(
        v["customResources"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("example.com/v2 is not installed"),
        "{v:#}"
    );

    // a context the kubeconfig does not have
    let (code, _, err) = discover(&f.kubeconfig(), &["--context", "elsewhere"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "--context elsewhere: no such context in the kubeconfig (it has: heal8s-emulator)"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_of_a_cluster_that_cannot_be_reached_fails_clearly() {
    let dir = TempDir::new("discover-down");
    let port = free_port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster:
    server: http://127.0.0.1:{port}
users:
- name: u
  user: {{}}
contexts:
- name: gone
  context: {{cluster: gone, user: u}}
current-context: gone
"
        ),
    )
    .unwrap();
    let _ = tokio::task::spawn_blocking(heal8s_bin).await;
    let started = Instant::now();
    let (code, out, err) = discover(&kubeconfig, &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!(
            "heal8s: cannot reach the Kubernetes API at http://127.0.0.1:{port}, kubeconfig context gone (cluster gone)"
        )),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Every JSON line of `h`'s output whose message is `message`.
fn events(h: &Heal8s, message: &str) -> Vec<Value> {
    h.proc
        .output()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_one_cluster_summary_event_in_json() {
    let emu = Emulator::start().await.unwrap();
    cluster(&emu);
    let f = Files::new(&emu);
    let (kubeconfig, policy) = (
        f.kubeconfig().display().to_string(),
        f.policy().display().to_string(),
    );
    let h = Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            &kubeconfig,
            "--policy",
            &policy,
            "--log-format",
            "json",
            "--enable-vm-cleanup",
            "--dry-run",
        ],
    )
    .await
    .unwrap();
    let found = eventually(Duration::from_secs(10), "the cluster summary", || async {
        let e = events(&h, "Cluster summary.");
        (!e.is_empty()).then_some(())
    })
    .await;
    if let Err(e) = found {
        panic!("{e}\n{}", h.proc.output());
    }
    // and no second one
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = events(&h, "Cluster summary.");
    assert_eq!(all.len(), 1, "{all:#?}");
    let s = &all[0];
    assert_eq!(s["level"], "INFO");
    assert_eq!(s["target"], "receiver::banner");
    assert_eq!(s["kubernetes_version"], "v1.33.0-heal8s-emulator");
    assert_eq!(s["platform"], "linux/amd64");
    assert_eq!(s["distribution"], "OpenShift");
    assert_eq!(s["openshift"], true);
    assert_eq!(s["kubevirt"], true);
    assert_eq!(s["cdi"], true);
    assert_eq!(s["api_host"], emu.url());
    assert_eq!(s["in_cluster"], false);
    assert_eq!(s["context"], "heal8s-emulator");
    assert_eq!(s["cluster"], "heal8s-emulator");
    assert_eq!(s["kubeconfig"], kubeconfig);
    assert_eq!(s["nodes_total"], 3);
    assert_eq!(s["nodes_ready"], 2);
    assert_eq!(s["no_cluster"], false);
    assert_eq!(s["profile"], "test-cluster");
    assert_eq!(s["dry_run"], true);
    let features: Vec<&str> = s["features"].as_str().unwrap().split(',').collect();
    for f in [
        "healPods",
        "drainNodes",
        "cleanupResources",
        "deleteNamespaces",
    ] {
        assert!(features.contains(&f), "{f} not on: {features:?}");
    }
    assert!(!features.contains(&"deleteNodes"), "{features:?}");
    assert_eq!(s["stale_namespaces"], "test-*,e2e-*");
    let detectors: Value = serde_json::from_str(s["detectors"].as_str().unwrap()).unwrap();
    assert_eq!(detectors["pods"]["restartThreshold"], "3");
    assert_eq!(detectors["customResources"]["staleAge"], "6m");
    let custom: Value = serde_json::from_str(s["custom_resources"].as_str().unwrap()).unwrap();
    assert_eq!(
        custom,
        json!({
            "VirtualMachine.kubevirt.io/v1": 1,
            "widgets.example.com/v1": 3,
            "datavolumes.cdi.kubevirt.io/v1beta1": 2,
            "gadgets.example.org/v1": "not installed",
        })
    );
    assert_eq!(s["unknown"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_api_reads_unknown_in_the_summary_and_does_not_hold_serving_up() {
    let emu = Emulator::start().await.unwrap();
    cluster(&emu);
    // /version answers after 20 s
    emu.faults().delay(
        RequestMatch::any().path("/version"),
        Duration::from_secs(20),
    );
    let f = Files::new(&emu);
    let (kubeconfig, policy) = (
        f.kubeconfig().display().to_string(),
        f.policy().display().to_string(),
    );
    // built before the clock starts
    let _ = tokio::task::spawn_blocking(heal8s_bin).await;
    let started = Instant::now();
    let h = Heal8s::start(TOKEN, &["--kubeconfig", &kubeconfig, "--policy", &policy])
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "serving waited for the summary: {:?}",
        started.elapsed()
    );
    let line = eventually(
        Duration::from_secs(8),
        "the summary's first line",
        || async {
            h.proc
                .output()
                .lines()
                .find(|l| l.contains("receiver::banner: Cluster: "))
                .map(str::to_string)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert!(
        line.contains(
            "Cluster: Kubernetes unknown (unknown), distribution OpenShift, add-ons: KubeVirt, CDI."
        ),
        "{line}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the summary waited for the slow answer"
    );
    let out = h.proc.output();
    for want in [
        &format!(
            "API: {}, kubeconfig context heal8s-emulator (cluster heal8s-emulator) from {kubeconfig}; nodes: 3 (2 ready).",
            emu.url()
        ) as &str,
        "Policy: profile test-cluster, dry-run off; pods healed in: all namespaces; namespaces watched for staleness: test-*, e2e-* (excluded: none).",
        "Custom resources watched: VirtualMachine.kubevirt.io/v1: 1 object, widgets.example.com/v1: 3 objects, datavolumes.cdi.kubevirt.io/v1beta1: 2 objects, gadgets.example.org/v1: not installed.",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let summary: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" INFO receiver::banner: "))
        .collect();
    assert_eq!(summary.len(), 5, "{summary:#?}");
}
