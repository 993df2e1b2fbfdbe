//! Fault injection and the request log of the Kubernetes API emulation, seen
//! through a real `kube::Client`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use testkit::kube::{Emulator, RequestMatch};

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A client that does not retry 429/503/504, to observe every injected answer.
async fn raw_client(emu: &Emulator) -> kube::Client {
    let mut config = emu.config().await.unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn the_next_n_matching_requests_fail_with_the_given_status() {
    let emu = Emulator::start().await.unwrap();
    let client = raw_client(&emu).await;
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client);
    emu.faults()
        .fail_next(2, RequestMatch::any().verb("list").path("/pods"), 503);
    nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        code(pods.list(&ListParams::default()).await.unwrap_err()),
        503
    );
    assert_eq!(
        code(pods.list(&ListParams::default()).await.unwrap_err()),
        503
    );
    pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(emu.faults().active(), 0);

    let id = emu
        .faults()
        .fail_always(RequestMatch::any().verb("PATCH").path("/nodes/"), 429);
    emu.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}))
        .unwrap();
    let cordon = json!({"spec": {"unschedulable": true}});
    for _ in 0..3 {
        let e = nodes
            .patch("n1", &PatchParams::default(), &Patch::Strategic(&cordon))
            .await
            .unwrap_err();
        match e {
            kube::Error::Api(s) => {
                assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"))
            }
            other => panic!("{other:?}"),
        }
    }
    emu.faults().remove(id);
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Strategic(&cordon))
        .await
        .unwrap();
    assert_eq!(
        emu.get("v1", "Node", "", "n1").unwrap()["spec"]["unschedulable"],
        true
    );
}

#[tokio::test]
async fn the_production_client_retries_transient_failures_by_itself() {
    let emu = Emulator::start().await.unwrap();
    let pods: Api<Pod> = Api::all(emu.client().await.unwrap());
    emu.faults()
        .fail_next(2, RequestMatch::any().verb("list").path("/pods"), 503);
    pods.list(&ListParams::default()).await.unwrap();
    let statuses: Vec<u16> = emu
        .requests()
        .iter()
        .filter(|r| r.verb == "list")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    // a 500 is not retried
    emu.faults()
        .fail_next(1, RequestMatch::any().verb("list").path("/pods"), 500);
    assert_eq!(
        code(pods.list(&ListParams::default()).await.unwrap_err()),
        500
    );
}

#[tokio::test]
async fn latency_delays_only_matching_requests() {
    let emu = Emulator::start().await.unwrap();
    let client = emu.client().await.unwrap();
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client);
    emu.faults().delay(
        RequestMatch::any().path("/pods"),
        Duration::from_millis(300),
    );
    let t = Instant::now();
    pods.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    nodes.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(300));
    emu.faults().clear();
    let t = Instant::now();
    pods.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn the_request_log_records_verbs_paths_queries_and_statuses() {
    let emu = Emulator::start().await.unwrap();
    let client = emu.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let before = emu.request_count();
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let _ = pods.get("missing").await.unwrap_err();
    pods.patch(
        "missing",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
    )
    .await
    .unwrap_err();
    assert_eq!(emu.request_count(), before + 3);
    let log = emu.requests();
    let last3: Vec<(String, String, u16)> = log[log.len() - 3..]
        .iter()
        .map(|r| (r.verb.clone(), r.path.clone(), r.status))
        .collect();
    assert_eq!(
        last3,
        [
            (
                "list".to_string(),
                "/api/v1/namespaces/default/pods".to_string(),
                200
            ),
            (
                "get".to_string(),
                "/api/v1/namespaces/default/pods/missing".to_string(),
                404
            ),
            (
                "patch".to_string(),
                "/api/v1/namespaces/default/pods/missing".to_string(),
                404
            ),
        ]
    );
    assert!(log[log.len() - 3].query.contains("labelSelector=app%3Dweb"));
    emu.clear_requests();
    assert!(emu.requests().is_empty());
    assert_eq!(
        emu.request_count(),
        before + 3,
        "the count survives clearing the log"
    );
}

#[tokio::test]
async fn store_api_calls_are_never_faulted_or_logged() {
    let emu = Emulator::start().await.unwrap();
    emu.faults().fail_always(RequestMatch::any(), 500);
    let before = emu.request_count();
    emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
        .unwrap();
    assert!(emu.get("v1", "ConfigMap", "default", "x").is_some());
    assert_eq!(emu.request_count(), before);
}
