//! Pod eviction against the Kubernetes API emulation through
//! `Api::<Pod>::evict`: PodDisruptionBudget arithmetic (minAvailable,
//! maxUnavailable, percentages, unready pods), 404, 429, 500 for two
//! budgets, finalizers, and answers forced through faults.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, EvictParams, PostParams};
use kube::core::Status;
use serde_json::{Value, json};
use testkit::kube::{ApiError, Controller, Emulator, PDB_VIOLATION, RequestMatch};

fn running_pod(emu: &Emulator, name: &str, app: &str, ready: bool) {
    emu.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
        .unwrap();
}

fn pdb(emu: &Emulator, name: &str, spec: Value) {
    emu.create(
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "shop"}, "spec": spec}),
    )
    .unwrap();
}

async fn setup() -> (Emulator, Api<Pod>) {
    let emu = Emulator::start().await.unwrap();
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    emu.play_once(Controller::ServiceAccount);
    // the pods' node, Ready: its kubelet (played with `confirm`) confirms evictions
    emu.create(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    // Without kube's default retries, to see each 429 as the server answers it
    // (a production client would retry it up to 15 times).
    let mut config = emu.config().await.unwrap();
    config.default_retry = false;
    let pods = Api::namespaced(kube::Client::try_from(config).unwrap(), "shop");
    (emu, pods)
}

fn api_error(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn exists(emu: &Emulator, name: &str) -> bool {
    emu.get("v1", "Pod", "shop", name).is_some()
}

fn terminating(emu: &Emulator, name: &str) -> bool {
    emu.get("v1", "Pod", "shop", name)
        .is_some_and(|p| p["metadata"]["deletionTimestamp"].is_string())
}

/// n1's kubelet stops the evicted pods and confirms their deletion.
fn confirm(emu: &Emulator) {
    emu.play_once(Controller::Kubelet);
}

#[tokio::test]
async fn eviction_without_a_budget_deletes_the_pod() {
    let (emu, pods) = setup().await;
    running_pod(&emu, "a", "web", true);
    let status = pods.evict("a", &EvictParams::default()).await.unwrap();
    assert!(status.is_success());
    assert_eq!(status.code, 201);
    assert!(
        terminating(&emu, "a"),
        "evicted, until its kubelet confirms"
    );
    confirm(&emu);
    assert!(!exists(&emu, "a"));
}

#[tokio::test]
async fn eviction_of_a_missing_pod_is_404() {
    let (_emu, pods) = setup().await;
    let err = api_error(
        pods.evict("ghost", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn eviction_that_would_violate_min_available_is_429() {
    let (emu, pods) = setup().await;
    for p in ["a", "b", "c"] {
        running_pod(&emu, p, "web", true);
    }
    running_pod(&emu, "other", "db", true);
    pdb(
        &emu,
        "web",
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
    );

    pods.evict("a", &EvictParams::default()).await.unwrap();
    let err = api_error(pods.evict("b", &EvictParams::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(err.message, PDB_VIOLATION);
    assert!(exists(&emu, "b"));
    // pods the budget does not select are unaffected
    pods.evict("other", &EvictParams::default()).await.unwrap();

    // the cause names the budget, as the real server's does
    let raw = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/namespaces/shop/pods/b/eviction",
            emu.url()
        ))
        .json(&json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "b"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 429);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );
}

#[tokio::test]
async fn max_unavailable_counts_unready_pods_against_the_budget() {
    let (emu, pods) = setup().await;
    running_pod(&emu, "a", "web", true);
    running_pod(&emu, "b", "web", true);
    running_pod(&emu, "c", "web", true);
    running_pod(&emu, "d", "web", false);
    // 4 expected, 34% of 4 rounds up to 2 unavailable allowed, 1 already unready
    pdb(
        &emu,
        "web",
        json!({"maxUnavailable": "34%", "selector": {"matchLabels": {"app": "web"}}}),
    );
    pods.evict("a", &EvictParams::default()).await.unwrap();
    // (expected counts the pods themselves: the evicted one counts until it is gone)
    confirm(&emu);
    // now 3 expected: 2 allowed unavailable (34% of 3 rounds up to 2), 1 unready → 1 left
    pods.evict("b", &EvictParams::default()).await.unwrap();
    confirm(&emu);
    // now 2 expected: 1 allowed (34% of 2 → 1), 1 unready → none left for the ready pod
    let err = api_error(pods.evict("c", &EvictParams::default()).await.unwrap_err());
    assert_eq!(err.code, 429);
}

#[tokio::test]
async fn unready_pods_are_evictable_while_the_budget_is_healthy() {
    let (emu, pods) = setup().await;
    running_pod(&emu, "ready-1", "web", true);
    running_pod(&emu, "ready-2", "web", true);
    running_pod(&emu, "sick", "web", false);
    pdb(
        &emu,
        "web",
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
    );
    // healthy (2) >= desired (2): the unready pod may go, a ready one may not
    let err = api_error(
        pods.evict("ready-1", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 429);
    pods.evict("sick", &EvictParams::default()).await.unwrap();

    // with the budget already violated, an unready pod is protected unless AlwaysAllow
    running_pod(&emu, "sick-2", "web", false);
    emu.modify("v1", "Pod", "shop", "ready-2", |p| {
        p["status"]["conditions"][0]["status"] = json!("False");
    })
    .unwrap();
    let err = api_error(
        pods.evict("sick-2", &EvictParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 429);
    emu.modify("policy/v1", "PodDisruptionBudget", "shop", "web", |b| {
        b["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
    })
    .unwrap();
    pods.evict("sick-2", &EvictParams::default()).await.unwrap();
}

#[tokio::test]
async fn pending_and_finished_pods_skip_the_budget() {
    let (emu, pods) = setup().await;
    running_pod(&emu, "a", "web", true);
    pdb(
        &emu,
        "web",
        json!({"minAvailable": "100%", "selector": {"matchLabels": {"app": "web"}}}),
    );
    let err = api_error(pods.evict("a", &EvictParams::default()).await.unwrap_err());
    assert_eq!(err.code, 429);
    emu.modify("v1", "Pod", "shop", "a", |p| {
        p["status"]["phase"] = json!("Succeeded");
    })
    .unwrap();
    pods.evict("a", &EvictParams::default()).await.unwrap();
    let pending: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}))
        .unwrap();
    pods.create(&PostParams::default(), &pending).await.unwrap();
    pods.evict("p", &EvictParams::default()).await.unwrap();
    assert!(!exists(&emu, "p"));
}

#[tokio::test]
async fn two_matching_budgets_are_an_internal_error() {
    let (emu, pods) = setup().await;
    running_pod(&emu, "a", "web", true);
    running_pod(&emu, "b", "web", true);
    pdb(
        &emu,
        "one",
        json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
    );
    pdb(&emu, "two", json!({"maxUnavailable": 1, "selector": {}}));
    let err = api_error(pods.evict("a", &EvictParams::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert!(
        err.message.contains("more than one PodDisruptionBudget"),
        "{}",
        err.message
    );
    assert!(exists(&emu, "a"));
}

#[tokio::test]
async fn evicting_a_pod_with_finalizers_leaves_it_terminating() {
    let (emu, pods) = setup().await;
    for name in ["a", "b"] {
        running_pod(&emu, name, "web", true);
        emu.modify("v1", "Pod", "shop", name, |p| {
            p["metadata"]["finalizers"] = json!(["heal8s.io/hold"]);
        })
        .unwrap();
    }
    let raw = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/namespaces/shop/pods/a/eviction",
            emu.url()
        ))
        .json(
            &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a"},
            "deleteOptions": {"gracePeriodSeconds": 7}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 201);
    let p = emu.get("v1", "Pod", "shop", "a").unwrap();
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 7);
    // a terminating pod may be evicted again
    pods.evict("a", &EvictParams::default()).await.unwrap();

    // kube 5 sends EvictParams::delete_options as `delete_options`, which the
    // API server does not know (it reads `deleteOptions`): the pod's own grace applies.
    let ep = EvictParams {
        delete_options: Some(kube::api::DeleteParams::default().grace_period(7)),
        ..Default::default()
    };
    pods.evict("b", &ep).await.unwrap();
    let p = emu.get("v1", "Pod", "shop", "b").unwrap();
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
}

#[tokio::test]
async fn eviction_answers_can_be_forced_with_faults() {
    let (emu, pods) = setup().await;
    running_pod(&emu, "a", "web", true);
    let budget = ApiError::new(429, "TooManyRequests", PDB_VIOLATION);
    emu.faults().fail_next_with(
        2,
        RequestMatch::any().verb("create").path("/eviction"),
        budget,
    );
    for _ in 0..2 {
        let err = api_error(pods.evict("a", &EvictParams::default()).await.unwrap_err());
        assert_eq!((err.code, err.message.as_str()), (429, PDB_VIOLATION));
    }
    emu.faults()
        .fail_next(1, RequestMatch::any().path("pods/a/eviction"), 500);
    assert_eq!(
        api_error(pods.evict("a", &EvictParams::default()).await.unwrap_err()).code,
        500
    );
    pods.evict("a", &EvictParams::default()).await.unwrap();
    confirm(&emu);
    assert!(!exists(&emu, "a"));
}
