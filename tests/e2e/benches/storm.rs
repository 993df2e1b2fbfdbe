//! Bench binary (prints figures, not a timed test): a storm of crash-looping
//! pods against a real `heal8s serve` (release build) on the Kubernetes API
//! emulation, which logs every request.
//!
//! 1,000 pods (10 namespaces x 10 Deployments x 10 replicas) are healthy
//! while heal8s starts, then all turn CrashLoopBackOff at once. heal8s runs
//! the production profile with its budgets (10 actions per window, 3 per
//! namespace) over a shorter window, so a few windows pass in a minute or two.
//!
//! Prints: API requests per acted deletion (split into facts, the action and
//! its record, and the recovery checks that follow) and per refused signal
//! (requests naming a pod heal8s did not act on, and Events summing refusals
//! up), the peak request rate, the work-queue and backlog depths
//! (`heal8s_queue_depth`, `heal8s_detector_queue_depth`,
//! `heal8s_backlog_depth`), and how many namespaces got an action in each
//! budget window.
//!
//! Run: `cargo bench -p e2e --bench storm -- [WINDOW_SECS] [WINDOWS]` (default 20 4)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::kube::{Emulator, RequestRecord};
use testkit::{Heal8s, TempDir, metric_value};

const NAMESPACES: usize = 10;
const DEPLOYMENTS: usize = 10;
const REPLICAS: usize = 10;

fn policy(window: u64) -> String {
    format!(
        r#"profile: production
guard:
  budgets:
    global: {{max: 10, per: {window}s}}
    perNamespace: {{max: 3, per: {window}s}}
detectors:
  resync: 10s
  pods: {{restartThreshold: 1}}
  nodes: {{enabled: false}}
routes:
  - {{matchers: ['alertname="Heal8sPodCrashLooping"'], remediation: delete-pod}}
"#
    )
}

fn ns(i: usize) -> String {
    format!("storm-{i}")
}

fn deployment(d: usize) -> String {
    format!("app-{d}")
}

fn replicaset(d: usize) -> String {
    format!("app-{d}-7d9c")
}

fn pod_name(d: usize, r: usize) -> String {
    format!("app-{d}-7d9c-p{r}")
}

/// A cluster with every Deployment, its ReplicaSet and healthy pods.
fn populate(emu: &Emulator) {
    emu.create(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    for n in 0..NAMESPACES {
        let ns = ns(n);
        emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
        for d in 0..DEPLOYMENTS {
            let spec = json!({"replicas": REPLICAS, "selector": {"matchLabels": {"app": deployment(d)}},
                "template": {"metadata": {"labels": {"app": deployment(d)}},
                             "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]}}});
            let dep = emu
                .create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": deployment(d), "namespace": ns}, "spec": spec}))
                .unwrap();
            let rs = emu
                .create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": replicaset(d), "namespace": ns,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                            "name": deployment(d), "uid": dep["metadata"]["uid"], "controller": true}]},
                    "spec": spec}))
                .unwrap();
            for r in 0..REPLICAS {
                emu.create(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod_name(d, r), "namespace": ns, "labels": {"app": deployment(d)},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "name": replicaset(d), "uid": rs["metadata"]["uid"], "controller": true}]},
                    "spec": {"nodeName": "w1", "containers": [{"name": "app", "image": "registry/app:1"}]},
                    "status": {"phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "containerStatuses": [{"name": "app", "image": "registry/app:1", "imageID": "",
                            "ready": true, "restartCount": 0, "state": {"running": {}}}]}
                }))
                .unwrap();
            }
        }
    }
}

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Use {
    /// Facts before an action: the pod, its owners, its namespace.
    Facts,
    /// The deletion, and its Remediation record: created, "started", outcome.
    Act,
    /// Events written: one per deletion, the rest sum up refusals.
    Event,
    /// After the action: the recovery check (owner reads, the namespace
    /// count that sizes its budget, its record update), and the resolution
    /// of the deleted pod's signal (a list of the records, a note on its own).
    After,
    /// Anything naming a pod heal8s did not act on, or its record.
    Unacted,
    /// Everything else (leases, discovery, breaker records).
    Other,
}

/// What each request was for. `deleted`: when each acted pod was deleted.
fn classify(requests: &[RequestRecord], deleted: &HashMap<(String, String), Instant>) -> Vec<Use> {
    // a workload's first deletion: its owners read before it were facts
    let mut workload_deleted: HashMap<(String, String), Instant> = HashMap::new();
    for ((n, p), at) in deleted {
        let d = p.split("-7d9c").next().unwrap().to_string();
        let e = workload_deleted.entry((n.clone(), d)).or_insert(*at);
        *e = (*e).min(*at);
    }
    let mut record_writes: HashMap<String, usize> = HashMap::new();
    requests
        .iter()
        .map(|r| {
            let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
            // /api/v1/namespaces/NS/pods/NAME, /apis/G/V/namespaces/NS/R/NAME
            let (ns, resource, name) = match parts.as_slice() {
                ["api", "v1", "namespaces", ns, res, name, ..] => (*ns, *res, Some(*name)),
                ["apis", _, _, "namespaces", ns, res, name, ..] => (*ns, *res, Some(*name)),
                ["apis", _, _, "namespaces", ns, res] | ["api", "v1", "namespaces", ns, res] => {
                    (*ns, *res, None)
                }
                ["api", "v1", "namespaces", ns] => (*ns, "namespaces", Some(*ns)),
                ["api", "v1", "namespaces"] => return Use::After,
                ["apis", "heal8s.io", _, "remediations"] => return Use::After,
                _ => return Use::Other,
            };
            let key = |n: &str| (ns.to_string(), n.to_string());
            match (resource, name) {
                ("pods", Some(p)) => match deleted.get(&key(p)) {
                    Some(_) if r.verb == "delete" => Use::Act,
                    Some(at) if r.at <= *at => Use::Facts,
                    Some(_) => Use::After,
                    None => Use::Unacted,
                },
                ("remediations", Some(rec)) if rec.starts_with("delete-pod-pod-") => {
                    let acted = deleted
                        .keys()
                        .any(|(n, p)| n == ns && rec.starts_with(&format!("delete-pod-pod-{p}-")));
                    if !acted {
                        return Use::Unacted;
                    }
                    // "started" and the outcome; later writes follow the action
                    let n = record_writes.entry(rec.to_string()).or_default();
                    *n += 1;
                    if *n <= 2 { Use::Act } else { Use::After }
                }
                ("remediations", None) if r.verb == "create" && ns.starts_with("storm-") => {
                    Use::Act
                }
                ("events", _) if r.method == "POST" => Use::Event,
                ("replicasets" | "deployments", Some(w)) => {
                    match workload_deleted.get(&key(w.trim_end_matches("-7d9c"))) {
                        Some(at) if r.at <= *at => Use::Facts,
                        Some(_) => Use::After,
                        None => Use::Unacted,
                    }
                }
                ("namespaces", Some(_)) if r.verb == "get" => Use::Facts,
                ("pods", None) if r.verb == "list" => Use::After,
                _ => Use::Other,
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let window = args.first().copied().unwrap_or(20);
    let windows = args.get(1).copied().unwrap_or(4);

    let emu = Emulator::start().await.unwrap();
    populate(&emu);
    // the kubelet confirms deletions, as on a real cluster
    let _kubelet = emu.kubelet();
    let dir = TempDir::new("storm");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy(window)).unwrap();
    let heal8s = Heal8s::start(
        "bench",
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy_file.to_str().unwrap(),
            "--log-level",
            "warn",
        ],
    )
    .await
    .unwrap();
    let t = Instant::now();
    while !emu
        .requests()
        .iter()
        .any(|r| r.verb == "watch" && r.path == "/api/v1/pods")
    {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "heal8s never watched pods"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods = NAMESPACES * DEPLOYMENTS * REPLICAS;
    println!(
        "storm: {pods} pods ({NAMESPACES} namespaces x {DEPLOYMENTS} Deployments x {REPLICAS} replicas) turn CrashLoopBackOff at once; budgets 10 per {window}s, 3 per namespace per {window}s; {windows} windows"
    );

    emu.clear_requests();
    let started = Instant::now();
    for n in 0..NAMESPACES {
        for d in 0..DEPLOYMENTS {
            for r in 0..REPLICAS {
                emu.modify("v1", "Pod", &ns(n), &pod_name(d, r), |p| {
                    let cs = &mut p["status"]["containerStatuses"][0];
                    cs["state"] = json!({"waiting": {"reason": "CrashLoopBackOff"}});
                    cs["restartCount"] = json!(5);
                    cs["ready"] = json!(false);
                    p["status"]["conditions"][0]["status"] = json!("False");
                })
                .unwrap();
            }
        }
    }
    println!("storm: all pods turned in {:?}", started.elapsed());

    // watch heal8s work: queue and backlog depths
    let (mut queue_peak, mut detector_peak, mut backlog_peak) = (0f64, 0f64, 0f64);
    let end = started + Duration::from_secs(window * windows + 3);
    while Instant::now() < end {
        let m = heal8s.metrics().await;
        queue_peak = queue_peak.max(metric_value(&m, "heal8s_queue_depth"));
        detector_peak = detector_peak.max(metric_value(&m, "heal8s_detector_queue_depth"));
        backlog_peak = backlog_peak.max(metric_value(&m, "heal8s_backlog_depth"));
        // the burst passes in well under a second: look closely at first
        let every = if started.elapsed() < Duration::from_secs(3) {
            5
        } else {
            100
        };
        tokio::time::sleep(Duration::from_millis(every)).await;
    }
    let m = heal8s.metrics().await;
    let requests: Vec<RequestRecord> = emu
        .requests()
        .into_iter()
        .filter(|r| r.verb != "watch")
        .collect();
    // every pod deletion, when it was asked for
    let mut deleted: HashMap<(String, String), Instant> = HashMap::new();
    for r in &requests {
        if r.verb == "delete" && r.path.contains("/pods/") && r.status < 300 {
            let p: Vec<&str> = r.path.split('/').collect();
            deleted
                .entry((p[4].to_string(), p[6].to_string()))
                .or_insert(r.at);
        }
    }

    let uses = classify(&requests, &deleted);
    let mut by_use: BTreeMap<Use, usize> = BTreeMap::new();
    let mut detail: BTreeMap<(Use, String), usize> = BTreeMap::new();
    for (r, u) in requests.iter().zip(&uses) {
        *by_use.entry(*u).or_default() += 1;
        let resource = r
            .path
            .split('/')
            .rev()
            .find(|p| p.ends_with('s') && !p.starts_with("storm-") && !p.starts_with("app-"))
            .unwrap_or("?");
        *detail
            .entry((*u, format!("{} {}", r.verb, resource)))
            .or_default() += 1;
    }
    let acted = deleted.len();
    let refused = metric_value(&m, r#"heal8s_outcomes_total{result="refused"}"#);
    let waiting = metric_value(&m, r#"heal8s_guard_refusals_total{reason="global_budget"}"#)
        + metric_value(
            &m,
            r#"heal8s_guard_refusals_total{reason="namespace_budget"}"#,
        );
    let signals = metric_value(&m, r#"heal8s_signals_total{source="detector"}"#);
    let coalesced = metric_value(&m, r#"heal8s_signals_coalesced_total{source="detector"}"#);
    let get = |u: Use| by_use.get(&u).copied().unwrap_or(0);
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    for r in &requests {
        *per_second
            .entry(r.at.saturating_duration_since(started).as_secs())
            .or_default() += 1;
    }
    let peak = per_second.values().max().copied().unwrap_or(0);

    println!(
        "storm: {} API requests (watches excluded) in {}s, peak {peak}/s; {signals} detector signals ({coalesced} coalesced in the queue), {acted} deletions, {refused} refused outcomes ({waiting} of them for a budget)",
        requests.len(),
        window * windows + 3
    );
    let per = |n: usize| n as f64 / acted.max(1) as f64;
    // one Event per deletion; the others sum up refusals
    let deletion_events = get(Use::Event).min(acted);
    let refusal_events = get(Use::Event) - deletion_events;
    println!(
        "storm: per acted deletion: {:.1} API requests to decide and act ({:.1} facts + {:.1} delete and record + {:.1} Event), then {:.1} after it (recovery check, resolution of its signal)",
        per(get(Use::Facts) + get(Use::Act) + deletion_events),
        per(get(Use::Facts)),
        per(get(Use::Act)),
        per(deletion_events),
        per(get(Use::After)),
    );
    println!(
        "storm: per refused signal: {:.3} API requests ({} naming a pod not acted on or its record, {refusal_events} Events summing refusals up); {} other requests (leases, discovery, breaker records)",
        (get(Use::Unacted) + refusal_events) as f64 / refused.max(1.0),
        get(Use::Unacted),
        get(Use::Other),
    );
    let breakdown: Vec<String> = detail
        .iter()
        .map(|((u, what), n)| format!("{u:?} {what} {:.2}", *n as f64 / acted.max(1) as f64))
        .collect();
    println!(
        "storm: requests per deletion by use: {}",
        breakdown.join(", ")
    );
    if std::env::var_os("STORM_DEBUG").is_some() {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (r, u) in requests.iter().zip(&uses) {
            if matches!(u, Use::Other | Use::Unacted) {
                *seen
                    .entry(format!("{u:?} {} {} {}", r.method, r.verb, r.path))
                    .or_default() += 1;
            }
        }
        for (what, n) in seen.iter().take(60) {
            println!("storm: debug: {n} x {what}");
        }
    }
    println!(
        "storm: work queue depth peak: alert lane {queue_peak}, detector lane {detector_peak} (of {} each; sampled every 5 ms for 3 s, then every 100 ms); backlog depth peak {backlog_peak}",
        metric_value(&m, "heal8s_queue_capacity")
    );
    let first = deleted.values().min().copied().unwrap_or(started);
    let mut per_window: BTreeMap<u64, (usize, BTreeSet<String>)> = BTreeMap::new();
    for ((n, _), at) in &deleted {
        let w = at.saturating_duration_since(first).as_secs() / window;
        let e = per_window.entry(w).or_default();
        e.0 += 1;
        e.1.insert(n.clone());
    }
    for (w, (n, spaces)) in &per_window {
        println!(
            "storm: window {}: {n} deletions in {} of {NAMESPACES} namespaces",
            w + 1,
            spaces.len()
        );
    }
    drop(heal8s);
}
