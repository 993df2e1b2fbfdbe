//! Faults end to end (issue 12): a real `heal8s serve` against the
//! Kubernetes API emulation while the API server misbehaves. Bursts of
//! 503/504/429 answers are retried and the pod is still deleted exactly
//! once; a slow API server slows heal8s down but changes nothing else;
//! dropped watches resume from their resourceVersion, and watches expired
//! with a 410 re-list, so a problem that appeared while they were away is
//! still healed; an API server down for 20 s (its port closed, every
//! connection cut) leaves heal8s running and healing once it is back; and a
//! heal8s killed with SIGKILL in the middle of a drain is restarted without
//! repeating anything: no pod evicted twice, the drain recorded as
//! interrupted, the cooldowns held.
//!
//! Every cluster here plays the kubelets of its Ready nodes (graceful pod
//! deletions are confirmed) and the namespace controller. The emulation
//! serves from the test's own runtime, so the tests run multi-threaded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use receiver_core::signal::SourceKind;
use receiver_core::{Outcome, OutcomeKind, RefusalReason};
use serde_json::{Value, json};
use testkit::fixtures::{
    DeploymentFixture, NamespaceFixture, NodeFixture, PodFixture, ReplicaSetFixture, ago,
};
use testkit::kube::{Controller, Emulator, PlayedControllers, RequestMatch, RequestRecord};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "faults-e2e-token";
const WAIT: Duration = Duration::from_secs(30);
const RECORDS: &str = "heal8s.io/v1alpha1";

struct Cluster {
    emu: Emulator,
    dir: TempDir,
    /// The kubelets of Ready nodes and the namespace controller, played.
    _controllers: PlayedControllers,
}

impl Cluster {
    /// Namespaces `shop` and `heal8s`, and a Ready node `w1`.
    async fn new() -> Cluster {
        let emu = Emulator::start().await.unwrap();
        let controllers = emu.play(&[Controller::Kubelet, Controller::Namespace]);
        for ns in ["shop", "heal8s"] {
            emu.create(NamespaceFixture::new(ns).json()).unwrap();
        }
        let c = Cluster {
            emu,
            dir: TempDir::new("faults-e2e"),
            _controllers: controllers,
        };
        c.node("w1", true);
        c
    }

    fn node(&self, name: &str, ready: bool) {
        let n = NodeFixture::new(name);
        let n = if ready { n } else { n.not_ready_for(600) };
        self.emu.create(n.json()).unwrap();
    }

    /// Deployment `name` and its ReplicaSet `<name>-rs`, as the Deployment
    /// controller leaves them; the ReplicaSet, for its pods.
    fn workload(&self, name: &str) -> Value {
        let d = self
            .emu
            .create(DeploymentFixture::new("shop", name).json())
            .unwrap();
        self.emu
            .create(
                ReplicaSetFixture::new("shop", &format!("{name}-rs"))
                    .owned_by(&d)
                    .json(),
            )
            .unwrap()
    }

    /// Pod `name` of ReplicaSet `rs` on `node`, crash looping or healthy;
    /// the pod as stored (its resourceVersion says when it appeared).
    fn pod(&self, name: &str, rs: &Value, node: &str, crash_looping: bool) -> Value {
        let p = PodFixture::new("shop", name)
            .label(
                "app",
                rs["spec"]["selector"]["matchLabels"]["app"]
                    .as_str()
                    .unwrap(),
            )
            .owned_by(rs)
            .on_node(node);
        let p = if crash_looping { p.crash_looping(5) } else { p };
        self.emu.create(p.json()).unwrap()
    }

    fn exists(&self, kind: &str, ns: &str, name: &str) -> bool {
        self.emu.get("v1", kind, ns, name).is_some()
    }

    /// Start heal8s with `policy` and `extra` flags; a second start uses the
    /// same kubeconfig and policy files, as a restarted pod would.
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
            "--verify-stable-for",
            "1s",
            "--verify-timeout",
            "5s",
        ];
        args.extend_from_slice(extra);
        Heal8s::start(TOKEN, &args).await.unwrap()
    }

    /// Requests with `method` whose path ends with `suffix`, answered with `status`.
    fn answered(&self, method: &str, suffix: &str, ok: bool) -> Vec<RequestRecord> {
        self.emu
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .filter(|r| (r.status < 300) == ok)
            .collect()
    }

    /// Successful deletions of pod `name`.
    fn deletions(&self, name: &str) -> usize {
        self.answered("DELETE", &format!("/namespaces/shop/pods/{name}"), true)
            .len()
    }

    /// Wait until heal8s watches pods (its detectors are running).
    async fn wait_watching_pods(&self, h: &Heal8s) {
        let watching = eventually(WAIT, "heal8s to watch pods", || async {
            self.emu
                .requests()
                .iter()
                .any(|r| r.verb == "watch" && r.path == "/api/v1/pods" && r.status == 200)
                .then_some(())
        })
        .await;
        if let Err(e) = watching {
            panic!("{e}\n--- heal8s ---\n{}", h.proc.output());
        }
    }

    /// Wait until pod `name` is gone (up to `within`).
    async fn gone(&self, h: &Heal8s, name: &str, within: Duration) {
        let r = eventually(within, &format!("pod {name} to be deleted"), || async {
            (!self.exists("Pod", "shop", name)).then_some(())
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
}

/// Fast detectors (nodes only when `nodes`), and `routes`.
fn policy(nodes: bool, routes: &str) -> String {
    format!(
        r#"profile: production
detectors:
  resync: 1s
  pods: {{waitingAfter: 1s, pendingAfter: 1s, unschedulableAfter: 1s}}
  nodes: {{enabled: {nodes}, notReadyAfter: 1s, unknownAfter: 1s}}
routes:
{routes}
"#
    )
}

const DELETE_CRASHLOOPING: &str = "  - {matchers: ['alertname=~\"Heal8sPodCrashLooping|KubePodCrashLooping\"'], remediation: delete-pod}";

/// heal8s's outcomes about `target` (a substring of the outcome's target).
async fn outcomes_about(h: &Heal8s, target: &str) -> Vec<Outcome> {
    h.outcomes()
        .await
        .into_iter()
        .filter(|o| o.target.as_deref().is_some_and(|t| t.contains(target)))
        .collect()
}

async fn outcome_with(h: &Heal8s, what: &str, pred: impl Fn(&Outcome) -> bool) -> Outcome {
    let found = eventually(WAIT, what, || {
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

fn is(o: &Outcome, result: OutcomeKind, target_has: &str) -> bool {
    o.result == result && o.target.as_deref().is_some_and(|t| t.contains(target_has))
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The `resourceVersion` a request asked for, if any.
fn requested_rv(r: &RequestRecord) -> Option<u64> {
    r.query
        .split('&')
        .find_map(|kv| kv.strip_prefix("resourceVersion="))
        .and_then(|v| v.parse().ok())
}

/// Bursts of the answers an overloaded or restarting API server gives
/// (503, 504, 429 with Retry-After) hit the watches, the live read of the
/// pod, its record and the deletion itself. Fails on a heal8s that gives up
/// on a transient answer (the pod stays), or that repeats an action it
/// could not see succeed (two deletions, two counted attempts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_5xx_are_retried_and_the_pod_is_deleted_exactly_once() {
    let c = Cluster::new().await;
    let rs = c.workload("api");
    let h = c.heal8s(&policy(false, DELETE_CRASHLOOPING), &[]).await;
    c.wait_watching_pods(&h).await;

    let f = c.emu.faults();
    let pod = "api-rs-aaaaa";
    let pod_path = format!("/namespaces/shop/pods/{pod}");
    // the watches are dropped and their return refused for a while
    f.fail_next(4, RequestMatch::any().verb("watch"), 503);
    f.drop_watches();
    // then every step of the action meets a burst
    f.fail_next(2, RequestMatch::any().verb("get").path(&pod_path), 503);
    f.fail_next(1, RequestMatch::any().verb("get").path(&pod_path), 504);
    f.fail_next(
        2,
        RequestMatch::any().verb("create").path("/remediations"),
        503,
    );
    f.fail_next(2, RequestMatch::any().verb("delete").path(&pod_path), 503);
    f.fail_next(1, RequestMatch::any().verb("delete").path(&pod_path), 504);
    f.fail_next(1, RequestMatch::any().verb("delete").path(&pod_path), 429);
    let deletes = f.count_arrivals(RequestMatch::any().verb("delete").path(&pod_path));
    c.pod(pod, &rs, "w1", true);

    c.gone(&h, pod, WAIT).await;
    assert_eq!(f.active(), 0, "every burst was spent");
    assert_eq!(deletes.count(), 5, "4 refused tries, then the deletion");
    // nothing more happens: one deletion, one action, one record
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.deletions(pod), 1);
    assert_eq!(deletes.count(), 5);
    let about = outcomes_about(&h, pod).await;
    let acted: Vec<&Outcome> = about
        .iter()
        .filter(|o| o.result == OutcomeKind::Acted)
        .collect();
    assert_eq!(acted.len(), 1, "{about:#?}");
    assert!(
        about.iter().all(|o| o.result != OutcomeKind::Failed),
        "a transient answer failed the action: {about:#?}"
    );
    let records = c.emu.list(RECORDS, "Remediation", "shop");
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["spec"]["target"]["name"], pod);
    assert_eq!(records[0]["status"]["attempts"], 1, "{:#}", records[0]);
}

/// Every request takes 400 ms (the deletion 3 s), and while the deletion
/// hangs, Alertmanager sends an alert about the same pod. Fails on a heal8s
/// that times a slow API server out and gives up, or acts on the pod again
/// while its first action is still in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_api_server_slows_the_action_but_it_happens_once() {
    let c = Cluster::new().await;
    let rs = c.workload("api");
    let h = c.heal8s(&policy(false, DELETE_CRASHLOOPING), &[]).await;
    c.wait_watching_pods(&h).await;

    let f = c.emu.faults();
    let pod = "api-rs-aaaaa";
    let pod_path = format!("/namespaces/shop/pods/{pod}");
    f.delay(RequestMatch::any(), Duration::from_millis(400));
    f.delay(
        RequestMatch::any().verb("delete").path(&pod_path),
        Duration::from_millis(2600),
    );
    // slow watches come back slowly too
    f.drop_watches();
    let deletes = f.count_arrivals(RequestMatch::any().verb("delete").path(&pod_path));
    let started = Instant::now();
    c.pod(pod, &rs, "w1", true);

    eventually(WAIT, "the deletion to be sent", || async {
        (deletes.count() > 0).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n--- heal8s ---\n{}", h.proc.output()));
    // the same problem, from Alertmanager, while the deletion hangs
    let alert = json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}",
        "alerts": [{"status": "firing", "startsAt": ago(60), "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "fp-slow", "labels": {"alertname": "KubePodCrashLooping",
            "namespace": "shop", "pod": pod, "container": "app"}}]});
    assert_eq!(h.post_webhook(TOKEN, &alert).await, 200);
    c.gone(&h, pod, WAIT).await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the latency was not felt"
    );
    // the alert waits for the action in flight on its target, then finds
    // the pod gone (or meets its cooldown); never a second deletion
    let alert_outcome = outcome_with(&h, "the alert's outcome", |o| {
        o.source == SourceKind::Alert && o.name == "KubePodCrashLooping"
    })
    .await;
    assert_eq!(
        alert_outcome.result,
        OutcomeKind::Refused,
        "{alert_outcome:#?}"
    );
    assert!(
        matches!(
            alert_outcome.reason,
            Some(RefusalReason::TargetGone | RefusalReason::Cooldown)
        ),
        "{alert_outcome:#?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(deletes.count(), 1, "the pod was deleted again");
    assert_eq!(c.deletions(pod), 1);
    let acted: Vec<Outcome> = outcomes_about(&h, pod)
        .await
        .into_iter()
        .filter(|o| o.result == OutcomeKind::Acted)
        .collect();
    assert_eq!(acted.len(), 1, "{acted:#?}");
}

/// The watches are dropped and cannot come back for 2.5 s; meanwhile a pod
/// starts crash looping. Fails on a heal8s whose watches stay down after an
/// error, or that loses what happened while they were away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_resume_from_their_resource_version_and_heal_what_came_meanwhile() {
    let c = Cluster::new().await;
    let rs = c.workload("api");
    let h = c.heal8s(&policy(false, DELETE_CRASHLOOPING), &[]).await;
    c.wait_watching_pods(&h).await;

    let f = c.emu.faults();
    let blocked = f.fail_always(RequestMatch::any().verb("watch"), 503);
    f.drop_watches();
    let dropped_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pod = "api-rs-aaaaa";
    let created = c.pod(pod, &rs, "w1", true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        c.exists("Pod", "shop", pod),
        "heal8s saw the pod without a watch"
    );
    let lifted_at = Instant::now();
    f.remove(blocked);

    c.gone(&h, pod, WAIT).await;
    assert_eq!(c.deletions(pod), 1);
    // the pods watch resumed from before the pod appeared: the emulation
    // replayed the change; heal8s did not need to list the pods again
    let requests = c.emu.requests();
    let resumed: Vec<&RequestRecord> = requests
        .iter()
        .filter(|r| r.verb == "watch" && r.path == "/api/v1/pods" && r.at >= lifted_at)
        .filter(|r| r.status == 200)
        .collect();
    assert!(
        resumed
            .iter()
            .any(|r| requested_rv(r).is_some_and(|v| v < rv(&created))),
        "no pods watch resumed from before the pod's resourceVersion {}: {resumed:#?}",
        rv(&created)
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.verb == "list" && r.path == "/api/v1/pods" && r.at >= dropped_at),
        "the pods were listed again"
    );
}

/// Watches expired with a 410, both ways the API server says it: an ERROR
/// event on an open watch (etcd compacted under it), and, on resuming from
/// a compacted resourceVersion, a watch answered 200 whose only event is
/// that ERROR. Each time a pod starts crash looping while heal8s cannot
/// list or watch. Fails on a heal8s that keeps resuming from the expired
/// resourceVersion, or that does not re-list and so never sees the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_expired_with_410_relist_and_heal_what_they_missed() {
    let c = Cluster::new().await;
    let api = c.workload("api");
    let web = c.workload("web");
    let h = c.heal8s(&policy(false, DELETE_CRASHLOOPING), &[]).await;
    c.wait_watching_pods(&h).await;
    let f = c.emu.faults();
    let relisted_since = |since: Instant| {
        c.emu.requests().iter().any(|r| {
            r.verb == "list" && r.path == "/api/v1/pods" && r.status == 200 && r.at >= since
        })
    };

    // 1. an open watch expires (ERROR 410 Expired), and neither a list nor
    // a watch of pods gets through for a while
    let no_watch = f.fail_always(RequestMatch::any().verb("watch"), 503);
    let no_list = f.fail_always(RequestMatch::any().verb("list").path("/api/v1/pods"), 503);
    c.emu.compact_history();
    f.expire_watches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.pod("api-rs-aaaaa", &api, "w1", true);
    c.emu.compact_history();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(c.exists("Pod", "shop", "api-rs-aaaaa"));
    let lifted = Instant::now();
    f.remove(no_watch);
    f.remove(no_list);
    c.gone(&h, "api-rs-aaaaa", WAIT).await;
    assert!(relisted_since(lifted), "the pods were not listed again");
    let log = h.proc.output();
    assert!(
        log.contains("The resourceVersion for the provided watch is too old."),
        "heal8s never saw the 410 on its open watch:\n{log}"
    );

    // 2. the watches drop; by the time they may resume, the history they
    // would resume from is compacted away: 200, then ERROR 410
    let no_watch = f.fail_always(RequestMatch::any().verb("watch"), 503);
    f.drop_watches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.pod("web-rs-aaaaa", &web, "w1", true);
    c.emu.compact_history();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(c.exists("Pod", "shop", "web-rs-aaaaa"));
    let lifted = Instant::now();
    f.remove(no_watch);
    c.gone(&h, "web-rs-aaaaa", WAIT).await;
    assert!(relisted_since(lifted), "the pods were not listed again");
    let log = h.proc.output();
    assert!(
        log.contains("too old resource version"),
        "heal8s never resumed from a compacted resourceVersion:\n{log}"
    );
    assert_eq!(c.deletions("api-rs-aaaaa"), 1);
    assert_eq!(c.deletions("web-rs-aaaaa"), 1);
}

/// The API server is down for 20 s (its port closed: connections are
/// refused; every open connection, watches included, cut), and a pod
/// starts crash looping meanwhile. Fails on a heal8s that exits or stops
/// being ready when its cluster is unreachable, whose watches give up, or
/// that does not heal the pod once the API server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_down_for_20s_then_back_heals_what_broke_meanwhile() {
    let c = Cluster::new().await;
    let rs = c.workload("api");
    let mut h = c.heal8s(&policy(false, DELETE_CRASHLOOPING), &[]).await;
    c.wait_watching_pods(&h).await;

    let f = c.emu.faults();
    f.go_down();
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pod = "api-rs-aaaaa";
    c.pod(pod, &rs, "w1", true);
    // heal8s rides the outage out: still running, still ready
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.proc.wait_exit(Duration::ZERO), None, "heal8s exited");
    let ready = reqwest::get(format!("{}/readyz", h.url)).await.unwrap();
    assert_eq!(ready.status(), 200);
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(down_at.elapsed())).await;
    let served_while_down = c.emu.requests().iter().filter(|r| r.at >= down_at).count();
    assert_eq!(served_while_down, 0, "the emulation served while down");
    assert!(c.exists("Pod", "shop", pod));
    f.come_back();
    let back_at = Instant::now();

    // kube's watcher backs off up to 30 s (as client-go's reflector does)
    c.gone(&h, pod, Duration::from_secs(45)).await;
    eprintln!(
        "healed {:?} after the API server came back",
        back_at.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.deletions(pod), 1);
    let acted: Vec<Outcome> = outcomes_about(&h, pod)
        .await
        .into_iter()
        .filter(|o| o.result == OutcomeKind::Acted)
        .collect();
    assert_eq!(acted.len(), 1, "{acted:#?}");
    assert_eq!(h.proc.wait_exit(Duration::ZERO), None, "heal8s exited");
}

/// heal8s is reading a crash-looping pod's live state (the read held by a
/// slow API server) when the API server goes down for 3 s: the read fails
/// (`facts_unavailable`; the client's own retries span less than the
/// outage). The pod still crash loops when the server is back. Fails on a
/// heal8s that drops a plan whose live state it could not read and only
/// tries again when the detector re-signals, after `guard.cooldown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_being_read_when_the_api_server_went_down_is_healed_once_it_is_back() {
    let c = Cluster::new().await;
    let rs = c.workload("api");
    let h = c.heal8s(&policy(false, DELETE_CRASHLOOPING), &[]).await;
    c.wait_watching_pods(&h).await;

    let f = c.emu.faults();
    let pod = "api-rs-aaaaa";
    let pod_path = format!("/namespaces/shop/pods/{pod}");
    let reads = f.count_arrivals(RequestMatch::any().verb("get").path(&pod_path));
    f.delay(
        RequestMatch::any().verb("get").path(&pod_path),
        Duration::from_secs(2),
    );
    c.pod(pod, &rs, "w1", true);
    eventually(WAIT, "heal8s to read the pod", || async {
        (reads.count() > 0).then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}
--- heal8s ---
{}",
            h.proc.output()
        )
    });
    f.go_down();
    let unread = outcome_with(&h, "the failed read", |o| {
        o.reason == Some(RefusalReason::FactsUnavailable)
            && o.target.as_deref().is_some_and(|t| t.contains(pod))
    })
    .await;
    assert_eq!(unread.deferred.as_deref(), Some("Waiting"), "{unread:#?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    f.clear();
    f.come_back();

    c.gone(&h, pod, WAIT).await;
    assert_eq!(c.deletions(pod), 1);
}

/// The deletion of a crash-looping pod is answered once with a 500
/// InternalError (what the API server says when etcd or an admission
/// webhook fails for a moment; kube's client does not retry it). heal8s's
/// client repeats the delete (its uid precondition makes that safe). Fails
/// on a heal8s that leaves the pod crash looping until the detector
/// re-signals it after `guard.cooldown`, or that deletes it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_failed_by_a_transient_500_is_tried_again_and_done_once() {
    let c = Cluster::new().await;
    let rs = c.workload("api");
    let h = c.heal8s(&policy(false, DELETE_CRASHLOOPING), &[]).await;
    c.wait_watching_pods(&h).await;

    let f = c.emu.faults();
    let pod = "api-rs-aaaaa";
    let pod_path = format!("/namespaces/shop/pods/{pod}");
    f.fail_next(1, RequestMatch::any().verb("delete").path(&pod_path), 500);
    let deletes = f.count_arrivals(RequestMatch::any().verb("delete").path(&pod_path));
    c.pod(pod, &rs, "w1", true);
    outcome_with(&h, "the deletion", |o| is(o, OutcomeKind::Acted, pod)).await;

    c.gone(&h, pod, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.deletions(pod), 1);
    assert_eq!(deletes.count(), 2, "the 500, then the deletion");
}

/// heal8s drains dead node w1 (one pod evicted, the other's eviction held
/// by a slow API server) and has just deleted a crash-looping pod on w2
/// when it is killed with SIGKILL. A second heal8s starts with the same
/// kubeconfig and policy; w1 is still down and the crash-looping workload's
/// new pod crash loops too. Fails on a heal8s that evicts a pod again,
/// drains the node again, forgets the cooldown of what it acted on before
/// the crash, or leaves the cut-off drain recorded as in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_mid_drain_a_restart_repeats_nothing_and_cooldowns_hold() {
    let c = Cluster::new().await;
    c.emu
        .modify("v1", "Node", "", "w1", |n| {
            n["status"]["conditions"][0]["status"] = json!("False");
            n["status"]["conditions"][0]["reason"] = json!("KubeletNotReady");
            n["status"]["conditions"][0]["lastTransitionTime"] = json!(ago(600));
        })
        .unwrap();
    for n in ["w2", "w3", "w4"] {
        c.node(n, true);
    }
    let api = c.workload("api");
    let db = c.workload("db");
    let web = c.workload("web");
    c.pod("api-rs-aaaaa", &api, "w1", false);
    c.pod("db-rs-aaaaa", &db, "w1", false);
    c.pod("web-rs-aaaaa", &web, "w2", true);
    let f = c.emu.faults();
    // db's eviction is in flight for a minute: the drain cannot finish
    f.delay(
        RequestMatch::any().path("/pods/db-rs-aaaaa/eviction"),
        Duration::from_secs(60),
    );
    let evictions = |pod: &str| {
        f.count_arrivals(
            RequestMatch::any()
                .verb("create")
                .path(&format!("/pods/{pod}/eviction")),
        )
    };
    let (api_evictions, db_evictions) = (evictions("api-rs-aaaaa"), evictions("db-rs-aaaaa"));
    let web_deletes = f.count_arrivals(RequestMatch::any().verb("delete").path("/pods/web-rs-"));
    let p = policy(
        true,
        &format!(
            "{DELETE_CRASHLOOPING}\n  - {{matchers: ['alertname=\"Heal8sNodeNotReady\"'], remediation: drain-node, params: {{timeout: 60s}}}}"
        ),
    );
    let mut first = c.heal8s(&p, &["--pod-name", "first"]).await;
    let drain_record = || {
        c.emu
            .list(RECORDS, "Remediation", "heal8s")
            .into_iter()
            .find(|r| r["spec"]["target"]["name"] == "w1")
    };
    let in_flight = eventually(WAIT, "the drain to hang on db's eviction", || async {
        let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
        (db_evictions.count() == 1
            && !c
                .answered("POST", "/pods/api-rs-aaaaa/eviction", true)
                .is_empty()
            && c.deletions("web-rs-aaaaa") == 1
            && w1["metadata"]["annotations"]["heal8s.io/remediation"] == "draining"
            && drain_record().is_some_and(|r| r["status"]["reason"] == "Started"))
        .then_some(())
    })
    .await;
    if let Err(e) = in_flight {
        panic!("{e}\n--- first ---\n{}", first.proc.output());
    }

    // SIGKILL: no shutdown, the drain cut off in the middle
    first.proc.kill();
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    assert_eq!(
        w1["metadata"]["annotations"]["heal8s.io/remediation"], "draining",
        "{w1:#}"
    );
    // web's ReplicaSet replaces the deleted pod; the new one crash loops too
    c.pod("web-rs-bbbbb", &web, "w2", true);
    let second = c.heal8s(&p, &["--pod-name", "second"]).await;

    // the cooldown of the pod deleted before the crash holds
    let refused = outcome_with(&second, "the new web pod refused", |o| {
        is(o, OutcomeKind::Refused, "web-rs-bbbbb")
    })
    .await;
    assert_eq!(
        refused.reason,
        Some(RefusalReason::Cooldown),
        "{refused:#?}"
    );
    assert!(
        refused.message.contains("Deployment/shop/web"),
        "{refused:#?}"
    );
    // w1, still down, is signalled again and refused: it is not drained twice
    let node = outcome_with(&second, "w1 signalled again", |o| {
        o.target.as_deref().is_some_and(|t| t.contains("Node w1"))
    })
    .await;
    assert_eq!(node.result, OutcomeKind::Refused, "{node:#?}");
    assert!(
        matches!(
            node.reason,
            Some(RefusalReason::Cooldown | RefusalReason::ClassRate)
        ),
        "{node:#?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api_evictions.count(), 1, "api's pod was evicted again");
    assert_eq!(db_evictions.count(), 1, "db's pod was evicted again");
    assert_eq!(web_deletes.count(), 1, "web's new pod was deleted");
    assert!(c.exists("Pod", "shop", "web-rs-bbbbb"));
    let second_acted: Vec<Outcome> = second
        .outcomes()
        .await
        .into_iter()
        .filter(|o| o.result == OutcomeKind::Acted)
        .collect();
    assert!(second_acted.is_empty(), "{second_acted:#?}");
    // w1 stays cordoned, marked interrupted; its record says the drain was cut off
    let w1 = c.emu.get("v1", "Node", "", "w1").unwrap();
    assert_eq!(w1["spec"]["unschedulable"], true, "{w1:#}");
    assert_eq!(
        w1["metadata"]["annotations"]["heal8s.io/remediation"], "interrupted",
        "{w1:#}"
    );
    let record = drain_record().unwrap();
    assert_eq!(record["status"]["phase"], "Failed", "{record:#}");
    assert_eq!(record["status"]["reason"], "Interrupted", "{record:#}");
    let history = record["status"]["history"].as_array().unwrap();
    assert!(
        history.iter().any(|e| e["phase"] == "Failed"
            && e["message"] == "interrupted"
            && e["by"] == "second"),
        "{history:#?}"
    );
    assert!(
        !history
            .iter()
            .any(|e| e["by"] == "second" && e["phase"] == "Acting"),
        "the second process started the drain again: {history:#?}"
    );
}
