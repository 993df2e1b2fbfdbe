//! Bench binary (prints figures, not a timed test): a real `heal8s serve`
//! (release build) against the Kubernetes API emulation with many pods.
//!
//! Prints: time from a pod status update on the emulation to heal8s's action
//! (the pod deleted) as p50/p99, with a steady stream of unrelated pod updates;
//! heal8s's resident memory per watched pod; API requests per minute at rest.
//! Then the same latency while DRAINS node drains run at once, each held for
//! minutes by an eviction the API server is slow to answer, with
//! `--max-running 32`: a long drain holds one of the running plans, not the
//! worker.
//!
//! Run: `cargo bench -p e2e --bench detect_to_action -- [PODS...] [--drains DRAINS]`
//! (default 10000 100000 --drains 20; `--drains 0` skips it)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::kube::Emulator;
use testkit::{Heal8s, TempDir};

const NAMESPACES: usize = 100;
const SAMPLES: usize = 40;
const CHURN_PER_SEC: u64 = 200;

const POLICY: &str = r#"profile: production
guard:
  cooldown: 1s
  budgets:
    global: {max: 100000, per: 1m}
    perNamespace: {max: 100000, per: 1m}
    perWorkload: {max: 100000, per: 1m}
detectors:
  resync: 5m
  pods: {restartThreshold: 1}
  nodes: {enabled: false}
routes:
  - {matchers: ['alertname="Heal8sPodCrashLooping"'], remediation: delete-pod}
"#;

/// The policy of the drains run: a NotReady node is drained, and the node
/// caps let DRAINS of them run at once.
fn drains_policy(drains: usize) -> String {
    format!(
        r#"profile: production
guard:
  cooldown: 1s
  budgets:
    global: {{max: 100000, per: 1m}}
    perNamespace: {{max: 100000, per: 1m}}
    perWorkload: {{max: 100000, per: 1m}}
  nodes:
    maxUnhealthy: 1000
    minHealthy: 0
    maxInFlight: {drains}
    rate: {{max: {drains}, per: 1m}}
    massFlip: {{targets: 1000, within: 1m}}
detectors:
  resync: 5m
  pods: {{restartThreshold: 1}}
  nodes: {{enabled: true}}
routes:
  - {{matchers: ['alertname="Heal8sPodCrashLooping"'], remediation: delete-pod}}
  - {{matchers: ['alertname="Heal8sNodeNotReady"'], remediation: drain-node}}
"#
    )
}

fn pod(ns: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
        "spec": {"nodeName": "w1", "containers": [{"name": "app", "image": "registry/app:1"}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "image": "registry/app:1", "imageID": "", "ready": true,
                                   "restartCount": 0, "state": {"running": {}}}]}
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Run {
    emu: Arc<Emulator>,
    heal8s: Heal8s,
    _dir: TempDir,
}

async fn start(pods: usize) -> Run {
    start_with(pods, 0).await
}

/// `pods` pods, and `drains` NotReady nodes, each with one pod whose
/// eviction the API server takes ten minutes to answer.
async fn start_with(pods: usize, drains: usize) -> Run {
    let emu = Emulator::start().await.unwrap();
    if drains > 0 {
        emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "held"}}))
            .unwrap();
    }
    let held_rs = (drains > 0).then(|| {
        emu.create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "held-rs", "namespace": "held"},
            "spec": {"replicas": drains, "selector": {"matchLabels": {"app": "held"}},
                     "template": {"metadata": {"labels": {"app": "held"}},
                                  "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]}}}}))
            .unwrap()
    });
    for d in 0..drains {
        let node = format!("pressed-{d}");
        emu.create(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
            "status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        )
        .unwrap();
        let mut p = pod("held", &format!("held-{d}"));
        p["metadata"]["labels"] = json!({"app": "held"});
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "held-rs", "uid": held_rs.as_ref().unwrap()["metadata"]["uid"], "controller": true}]);
        p["spec"]["nodeName"] = json!(node);
        emu.create(p).unwrap();
    }
    if drains > 0 {
        // a slow API server: each eviction of a held pod takes ten minutes
        emu.faults().delay(
            testkit::kube::RequestMatch::any()
                .verb("create")
                .path("/namespaces/held/pods/"),
            Duration::from_secs(600),
        );
    }
    for i in 0..NAMESPACES {
        emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("bench-{i}")}}))
            .unwrap();
    }
    emu.create(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
                      "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    for i in 0..pods {
        emu.create(pod(&format!("bench-{}", i % NAMESPACES), &format!("p-{i}")))
            .unwrap();
    }
    let dir = TempDir::new("bench");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let policy = dir.path().join("policy.yaml");
    if drains > 0 {
        std::fs::write(&policy, drains_policy(drains)).unwrap();
    } else {
        std::fs::write(&policy, POLICY).unwrap();
    }
    let heal8s = Heal8s::start(
        "bench",
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--log-level",
            "warn",
            "--max-running",
            "32",
        ],
    )
    .await
    .unwrap();
    let emu = Arc::new(emu);
    // synced once heal8s has opened its pod watch after the initial list
    let t = Instant::now();
    while !emu
        .requests()
        .iter()
        .any(|r| r.verb == "watch" && r.path == "/api/v1/pods")
    {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "heal8s never started watching pods"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Run {
        emu,
        heal8s,
        _dir: dir,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Crash-loop `SAMPLES` of the `n` pods one after another: how long from
/// each status update to its deletion, sorted.
async fn samples(run: &Run, n: usize) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for s in 0..SAMPLES.min(n) {
        let k = (s * 104_729 + 13) % n;
        let (ns, name) = (format!("bench-{}", k % NAMESPACES), format!("p-{k}"));
        let t0 = Instant::now();
        run.emu
            .modify("v1", "Pod", &ns, &name, |p| {
                p["status"]["containerStatuses"][0]["state"] =
                    json!({"waiting": {"reason": "CrashLoopBackOff"}});
                p["status"]["containerStatuses"][0]["restartCount"] = json!(4);
                p["status"]["containerStatuses"][0]["ready"] = json!(false);
                p["status"]["conditions"][0]["status"] = json!("False");
            })
            .unwrap();
        loop {
            // deleted: gone, or Terminating (heal8s's delete accepted; no
            // kubelet is played here to confirm it)
            let deleted = run
                .emu
                .get("v1", "Pod", &ns, &name)
                .is_none_or(|p| p["metadata"]["deletionTimestamp"].is_string());
            if deleted {
                latencies.push(t0.elapsed());
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "pod {ns}/{name} was never deleted"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    latencies.sort();
    latencies
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let drains = args
        .iter()
        .position(|a| a == "--drains")
        .and_then(|i| args.get(i + 1))
        .map_or(20, |d| d.parse().expect("--drains takes a number"));
    let sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--drains")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };

    let base = start(0).await;
    let base_rss = rss_kib(base.heal8s.proc.child.id());
    println!("heal8s RSS with 0 pods: {base_rss} KiB");
    drop(base);

    for n in sizes {
        let run = start(n).await;
        let rss = rss_kib(run.heal8s.proc.child.id());
        println!(
            "pods={n}: heal8s RSS {rss} KiB; {:.0} bytes per watched pod",
            (rss.saturating_sub(base_rss) * 1024) as f64 / n as f64
        );

        // API requests per minute at rest (no problems, no churn)
        let before = run.emu.request_count();
        let window = Duration::from_secs(20);
        tokio::time::sleep(window).await;
        let at_rest = run.emu.request_count() - before;
        println!(
            "pods={n}: {:.1} API requests per minute at rest",
            at_rest as f64 * 60.0 / window.as_secs_f64()
        );

        // a steady stream of unrelated pod updates
        let stop = Arc::new(AtomicBool::new(false));
        let churn = {
            let emu = run.emu.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut i = 0usize;
                let mut tick =
                    tokio::time::interval(Duration::from_micros(1_000_000 / CHURN_PER_SEC));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let k = (i * 7919) % n.max(1);
                    let _ = emu.modify(
                        "v1",
                        "Pod",
                        &format!("bench-{}", k % NAMESPACES),
                        &format!("p-{k}"),
                        |p| {
                            p["metadata"]["annotations"] = json!({"bench/tick": i.to_string()});
                        },
                    );
                    i += 1;
                }
            })
        };
        let before = run.emu.request_count();
        let latencies = samples(&run, n).await;
        let busy = run.emu.request_count() - before;
        stop.store(true, Ordering::Relaxed);
        let _ = churn.await;
        println!(
            "pods={n}: status update -> pod deleted: p50 {:?}, p99 {:?}, max {:?} ({} samples, {} unrelated updates/s)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().unwrap(),
            latencies.len(),
            CHURN_PER_SEC
        );
        println!(
            "pods={n}: {:.1} API requests per remediation ({} deletions: re-read pod, owner chain, namespace; delete; record an Event)",
            busy as f64 / latencies.len().max(1) as f64,
            latencies.len()
        );
    }

    if drains > 0 {
        let n = 1000;
        let run = start_with(n, drains).await;
        // every drain cordoned its node and is retrying a refused eviction
        let t = Instant::now();
        loop {
            let running = testkit::metric_value(&run.heal8s.metrics().await, "heal8s_running");
            let cordoned = (0..drains)
                .filter(|d| {
                    run.emu
                        .get("v1", "Node", "", &format!("pressed-{d}"))
                        .is_some_and(|n| n["spec"]["unschedulable"] == true)
                })
                .count();
            if running as usize >= drains && cordoned == drains {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                let outcomes = run.heal8s.outcomes().await;
                panic!(
                    "only {running} running and {cordoned} cordoned of {drains} drains\n{:#?}\n{}",
                    &outcomes[outcomes.len().saturating_sub(3)..],
                    run.heal8s.proc.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let evictions = || {
            run.emu
                .requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
                .count()
        };
        let before = evictions();
        let latencies = samples(&run, n).await;
        let running = testkit::metric_value(&run.heal8s.metrics().await, "heal8s_running");
        println!(
            "under {drains} drains held by slow evictions ({} evictions answered meanwhile, {running} plans still running): status update -> pod deleted: p50 {:?}, p99 {:?}, max {:?} ({} samples, {n} pods)",
            evictions() - before,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().unwrap(),
            latencies.len(),
        );
    }
}
