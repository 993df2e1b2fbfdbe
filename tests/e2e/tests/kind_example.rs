//! examples/kind: the failing workloads apply with real kubectl to the
//! Kubernetes API emulation, and the walkthrough's claims hold: the chart
//! values' policy sends each failure to the remediation the README names, and
//! the fixes it proposes are the numbers it states. The workloads really
//! failing is a kubelet's doing: kind was not run here (no container runtime
//! for kind's nodes), so that part is the README's word, not this test's.
//!
//! Needs kubectl (`$KUBECTL` or on PATH) and the chart tools
//! (`scripts/chart-check.py render`: helm-python-sdk and the harness's
//! helmlite.py; `.ci/run` installs them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use testkit::{KubeProcess, TempDir, heal8s_bin, kubectl_bin};

const NS: &str = "heal8s-examples";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kind() -> PathBuf {
    root().join("examples/kind")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn kubectl(server: &KubeProcess, args: &[&str]) -> String {
    let out = Command::new(kubectl_bin().unwrap())
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .arg("--cache-dir")
        .arg(server.dir.path().join("kubectl-cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("cannot run kubectl");
    let what = format!("kubectl {args:?} (server log:\n{})", server.log());
    ok(out, &what)
}

fn get(server: &KubeProcess, kind: &str, name: &str) -> Value {
    serde_json::from_str(&kubectl(
        server,
        &["get", kind, name, "-n", NS, "-o", "json"],
    ))
    .unwrap()
}

/// The policy the chart deploys with examples/kind/values.yaml, in a file.
fn kind_policy(dir: &TempDir) -> PathBuf {
    let out = Command::new("python3")
        .arg(root().join("scripts/chart-check.py"))
        .args(["render", "--no-crds", "-f"])
        .arg(kind().join("values.yaml"))
        .current_dir(root())
        .output()
        .unwrap();
    let objs: Vec<Value> = serde_json::from_str(&ok(out, "chart render")).unwrap();
    let cm = objs
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["data"]["policy.yaml"].is_string())
        .expect("the chart renders the policy ConfigMap");
    let path = dir.path().join("kind-policy.yaml");
    fs::write(&path, cm["data"]["policy.yaml"].as_str().unwrap()).unwrap();
    path
}

fn heal8s(args: &[&str]) -> String {
    let out = Command::new(heal8s_bin()).args(args).output().unwrap();
    ok(out, &format!("heal8s {args:?}"))
}

#[test]
fn real_kubectl_applies_the_kind_example_workloads_to_the_emulation() {
    let server = KubeProcess::start().unwrap();
    let dir = kind().join("workloads");
    let out = kubectl(&server, &["apply", "-f", dir.to_str().unwrap()]);
    for want in [
        "namespace/heal8s-examples created",
        "deployment.apps/crash-loop created",
        "deployment.apps/memory-leak created",
        "deployment.apps/bad-image created",
        "deployment.apps/web created",
        "horizontalpodautoscaler.autoscaling/web created",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }

    let names = kubectl(&server, &["get", "deployments", "-n", NS, "-o", "name"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "deployment.apps/bad-image",
            "deployment.apps/crash-loop",
            "deployment.apps/memory-leak",
            "deployment.apps/web"
        ]
    );

    // what makes each one fail on a real kubelet is in the stored objects
    let container = |d: &Value| d["spec"]["template"]["spec"]["containers"][0].clone();
    let crash = container(&get(&server, "deployment", "crash-loop"));
    assert!(crash["command"][2].as_str().unwrap().contains("exit 1"));
    let leak = container(&get(&server, "deployment", "memory-leak"));
    assert_eq!(leak["resources"]["limits"]["memory"], "64Mi");
    assert!(
        leak["command"][2]
            .as_str()
            .unwrap()
            .contains("head -c 1048576 /dev/zero")
    );
    let bad = container(&get(&server, "deployment", "bad-image"));
    assert_eq!(bad["image"], "registry.k8s.io/pause:3.10-does-not-exist");
    let hpa = get(&server, "hpa", "web");
    assert_eq!(hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "web");
    assert_eq!(get(&server, "deployment", "web")["spec"]["replicas"], 2);

    // applying again changes nothing: the manifests are what the server keeps
    let again = kubectl(&server, &["apply", "-f", dir.to_str().unwrap()]);
    assert!(!again.contains("configured"), "{again}");
}

/// An Alertmanager webhook payload with one firing alert.
fn alert(labels: Value) -> Value {
    json!({"version": "4", "groupKey": "{}", "status": "firing", "receiver": "heal8s",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": "0123456789abcdef"}]})
}

/// `heal8s plan` with the kind policy: the remediations the alert is routed to.
fn routed(policy: &Path, dir: &TempDir, payload: &Value) -> Vec<String> {
    let file = dir.path().join("alert.json");
    fs::write(&file, payload.to_string()).unwrap();
    let out = heal8s(&[
        "plan",
        "--policy",
        policy.to_str().unwrap(),
        "--alert",
        file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let outcomes: Vec<Value> = serde_json::from_str(&out).unwrap();
    outcomes
        .iter()
        .map(|o| o["remediation"].as_str().unwrap_or("none").to_string())
        .collect()
}

#[test]
fn real_helm_the_kind_policy_routes_each_failure_as_the_walkthrough_says() {
    let dir = TempDir::new("heal8s-kind");
    let policy = kind_policy(&dir);
    let out = heal8s(&["check-config", policy.to_str().unwrap()]);
    assert!(out.contains("OK"), "{out}");

    let pod = |alertname: &str, pod: &str| {
        json!({"alertname": alertname, "heal8s_detector": "pods", "namespace": NS,
               "pod": pod, "container": "app"})
    };
    assert_eq!(
        routed(
            &policy,
            &dir,
            &alert(pod("Heal8sPodCrashLooping", "crash-loop-7c9d5-x2f4q"))
        ),
        ["delete-pod", "rollback-image"]
    );
    assert_eq!(
        routed(
            &policy,
            &dir,
            &alert(pod("Heal8sContainerOOMKilled", "memory-leak-5b8f7-k8s2d"))
        ),
        ["bump-memory"]
    );
    assert_eq!(
        routed(
            &policy,
            &dir,
            &alert(pod("Heal8sContainerWaiting", "bad-image-6f4c8-p9q7z"))
        ),
        ["rollback-image"]
    );
    let hpa: Value =
        serde_json::from_str(&fs::read_to_string(kind().join("alerts/hpa-maxed.json")).unwrap())
            .unwrap();
    assert_eq!(routed(&policy, &dir, &hpa), ["scale-up"]);
    assert_eq!(
        routed(&policy, &dir, &alert(pod("Heal8sPodPending", "web-1"))),
        ["notify-only"]
    );

    // the fixes the README states, computed by the same rule with these parameters
    let leak = kind().join("workloads/memory-leak.yaml");
    let diff = heal8s(&[
        "patch",
        leak.to_str().unwrap(),
        "--kind",
        "Deployment",
        "--name",
        "memory-leak",
        "--bump-memory",
        "--policy",
        policy.to_str().unwrap(),
        "--diff",
    ]);
    assert!(
        diff.contains("+            limits: {memory: 192Mi}"),
        "{diff}"
    );
    assert!(
        diff.contains("+            requests: {cpu: 10m, memory: 80Mi}"),
        "{diff}"
    );
    let hpa = kind().join("workloads/hpa-maxed.yaml");
    let diff = heal8s(&[
        "patch",
        hpa.to_str().unwrap(),
        "--kind",
        "HorizontalPodAutoscaler",
        "--name",
        "web",
        "--scale-up",
        "--policy",
        policy.to_str().unwrap(),
        "--diff",
    ]);
    assert!(diff.contains("+  maxReplicas: 3"), "{diff}");
}
