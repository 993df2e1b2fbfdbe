//! Bench binary (prints figures): a real `heal8s serve` with the Kubernetes
//! and GitHub emulations. For each of N Deployments an OOMKilled alert
//! becomes a new pull request; then, after the limit was raised on main, a
//! new occurrence updates it. Prints alert → pull request latency (p50/p99)
//! and GitHub API calls per new pull request and per update (from the
//! emulation's request log), everything on loopback.
//!
//! Run: `cargo bench -p e2e --bench alert_to_pr -- [N]` (default 12). Above
//! about 25 new pull requests a minute heal8s paces itself under GitHub's 80
//! content-creating requests a minute (three per new pull request), which
//! shows in the p99.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::Heal8s;
use testkit::github::GithubEmulator;
use testkit::kube::Emulator;

const TOKEN: &str = "bench-token";
const REPO: &str = "acme/manifests";

fn manifest(i: usize, memory: &str) -> String {
    format!(
        "# api {i}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api-{i}\n  namespace: prod\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example/api:1.0.0\n          resources:\n            limits:\n              memory: {memory}\n            requests:\n              memory: 256Mi\n"
    )
}

fn alert(i: usize, starts: &str) -> Value {
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}", "alerts": [{
        "status": "firing", "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": format!("{i:016x}"),
        "labels": {"alertname": "KubeContainerOOMKilled", "namespace": "prod",
                   "pod": format!("api-{i}-rs-x"), "container": "app"}}]})
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(12);
    let kube = Emulator::start().await.unwrap();
    kube.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}))
        .unwrap();
    let gh = GithubEmulator::start().await.unwrap();
    gh.create_repo("acme", "manifests", 1).unwrap();
    let files: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("apps/api-{i}/deployment.yaml"),
                manifest(i, "512Mi"),
            )
        })
        .collect();
    let list: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    gh.put_files(REPO, "main", &list, "manifests").unwrap();
    for i in 0..n {
        let d = kube
            .create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("api-{i}"), "namespace": "prod"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                         "template": {"metadata": {"labels": {"app": "api"}},
                                      "spec": {"containers": [{"name": "app", "image": "registry.example/api:1.0.0"}]}}}}))
            .unwrap();
        kube.create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("api-{i}-rs"), "namespace": "prod",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("api-{i}"),
                                     "uid": d["metadata"]["uid"], "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}},
                                  "spec": {"containers": [{"name": "app", "image": "registry.example/api:1.0.0"}]}}}}))
            .unwrap();
        kube.create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("api-{i}-rs-x"), "namespace": "prod",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("api-{i}-rs"),
                                     "uid": "rs", "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": "registry.example/api:1.0.0"}]},
            "status": {"phase": "Running"}}))
            .unwrap();
    }
    let policy = format!(
        "guard: {{cooldown: 1s, escalation: {{after: 100, within: 1h}}}}\npullRequests: {{repository: {REPO}, pollInterval: 1h, maxNewPerHour: 10000, maxOpen: 10000}}\ndetectors: {{pods: {{enabled: false}}, nodes: {{enabled: false}}}}\nroutes:\n  - {{matchers: ['alertname=\"KubeContainerOOMKilled\"'], remediation: bump-memory, mode: pull-request}}\n"
    );
    let (h, _files) = Heal8s::start_against(TOKEN, &kube, &gh, &policy, &[])
        .await
        .unwrap();
    let post = |body: Value| {
        let h = &h;
        async move { assert_eq!(h.post_webhook(TOKEN, &body).await, 200) }
    };
    let wait_for = |pred: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !pred() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out\n{}",
                h.proc.output()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };

    let mut new_latency = Vec::new();
    let mut new_calls = Vec::new();
    for i in 0..n {
        let before = gh.request_count();
        let t = Instant::now();
        post(alert(i, &jiff::Timestamp::now().to_string())).await;
        let branch = format!("heal8s/bump-memory/prod/api-{i}");
        wait_for(&|| gh.pulls(REPO).iter().any(|p| p.head_ref == branch));
        new_latency.push(t.elapsed());
        // the labels are added right after the pull request is opened
        std::thread::sleep(Duration::from_millis(50));
        new_calls.push(gh.request_count() - before);
    }
    // the limits were raised on main; new occurrences update the pull requests
    let raised: Vec<(String, String)> = (0..n)
        .map(|i| (format!("apps/api-{i}/deployment.yaml"), manifest(i, "1Gi")))
        .collect();
    let list: Vec<(&str, &str)> = raised
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    gh.put_files(REPO, "main", &list, "raise limits").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let mut upd_latency = Vec::new();
    let mut upd_calls = Vec::new();
    for i in 0..n {
        let branch = format!("heal8s/bump-memory/prod/api-{i}");
        let head = gh
            .pulls(REPO)
            .into_iter()
            .find(|p| p.head_ref == branch)
            .unwrap()
            .head_sha;
        let before = gh.request_count();
        let t = Instant::now();
        post(alert(i, &jiff::Timestamp::now().to_string())).await;
        wait_for(&|| {
            gh.pulls(REPO)
                .into_iter()
                .find(|p| p.head_ref == branch)
                .is_some_and(|p| {
                    p.head_sha != head && p.body.as_deref().is_some_and(|b| b.contains("`1280Mi`"))
                })
        });
        upd_latency.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
        upd_calls.push(gh.request_count() - before);
    }
    assert_eq!(gh.pulls(REPO).len(), n, "one pull request per workload");
    let paced = h
        .proc
        .output()
        .matches("pacing GitHub content creation")
        .count();
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
    println!("{n} workloads, one manifest file each, heal8s (release) on loopback");
    println!(
        "new pull request: alert -> PR p50 {:>7.1?}  p99 {:>7.1?}; GitHub calls mean {:.1} (first {}, later {})",
        pct(&mut new_latency.clone(), 0.5),
        pct(&mut new_latency, 0.99),
        mean(&new_calls),
        new_calls[0],
        new_calls.last().unwrap()
    );
    println!(
        "update:           alert -> PR p50 {:>7.1?}  p99 {:>7.1?}; GitHub calls mean {:.1}",
        pct(&mut upd_latency.clone(), 0.5),
        pct(&mut upd_latency, 0.99),
        mean(&upd_calls)
    );
    println!("pacing waits (80 content-creating requests a minute): {paced}");
}
