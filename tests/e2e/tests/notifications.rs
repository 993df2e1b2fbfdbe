//! Notifications from a real `heal8s serve` against the Kubernetes API
//! emulation (issue 13): a crash-looping pod deleted by the detector is told
//! to a Slack webhook and a generic webhook on loopback; severity routes keep
//! the pager quiet for a first delete; the secret URL never shows in the logs
//! or `/policy`; a receiver that never answers does not slow remediation; a
//! missing secret stops heal8s at start, naming the receiver and field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use receiver_core::OutcomeKind;
use serde_json::{Value, json};
use testkit::kube::Emulator;
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "notifications-token";
const WAIT: Duration = Duration::from_secs(40);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

/// Every POST a local receiver got: (path, body).
type Got = Arc<Mutex<Vec<(String, Value)>>>;

async fn take(
    State(got): State<Got>,
    Path(path): Path<String>,
    body: axum::body::Bytes,
) -> &'static str {
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    got.lock().unwrap().push((path, v));
    "ok"
}

/// A local HTTP server taking POSTs on any path; its base URL.
async fn receivers() -> (String, Got) {
    let got: Got = Arc::default();
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(take))
        .with_state(got.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

/// A port that takes connections and never answers.
async fn silent() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    url
}

/// A crash-looping pod of Deployment `name` in `ns`, owned through its live ReplicaSet.
fn crashlooping(emu: &Emulator, ns: &str, name: &str) -> String {
    let d = emu
        .create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]}}}
        }))
        .unwrap();
    let rs = format!("{name}-5d4f");
    let r = emu
        .create(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs, "namespace": ns,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                     "uid": d["metadata"]["uid"], "controller": true}]},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]}}}
        }))
        .unwrap();
    let pod = format!("{rs}-aaaaa");
    emu.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "namespace": ns, "labels": {"app": name},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                 "uid": r["metadata"]["uid"], "controller": true}]},
        "spec": {"nodeName": "w1", "containers": [{"name": "app", "image": "registry/app:1"}]},
        "status": {"phase": "Running", "startTime": ago(600),
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ago(300)}],
            "containerStatuses": [{"name": "app", "image": "registry/app:1", "imageID": "",
                "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    }))
    .unwrap();
    pod
}

async fn cluster(namespaces: &[&str]) -> Emulator {
    let emu = Emulator::start().await.unwrap();
    for ns in namespaces.iter().chain(&["heal8s"]) {
        emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    emu.create(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "lastTransitionTime": ago(600)}]}
    }))
    .unwrap();
    emu
}

async fn heal8s(emu: &Emulator, dir: &TempDir, notifications: &str) -> Heal8s {
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "profile: production\ndetectors:\n  resync: 1s\n  pods: {{waitingAfter: 1s}}\n{notifications}\nroutes:\n- name: crashloop\n  matchers: ['alertname=\"Heal8sPodCrashLooping\"']\n  remediation: delete-pod\n"
        ),
    )
    .unwrap();
    Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--cluster-name",
            "e2e",
        ],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_told_to_slack_and_a_webhook_and_the_quiet_pager_hears_nothing() {
    let emu = cluster(&["shop"]).await;
    let pod = crashlooping(&emu, "shop", "api");
    let (base, got) = receivers().await;
    let dir = TempDir::new("notify-e2e");
    let secret = |name: &str, value: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, value).unwrap();
        p.to_string_lossy().to_string()
    };
    let slack = secret("slack", format!("{base}/slack/T000/B000/SEKRIT1"));
    let hook = secret("hook", format!("{base}/hook/SEKRIT2"));
    let pd = secret("pd", "SEKRIT3ROUTINGKEY".into());
    let h = heal8s(
        &emu,
        &dir,
        &format!(
            r#"notifications:
  dashboardUrl: https://heal8s.example/ui
  receivers:
  - {{name: chat, slack: {{url: {{file: {slack}}}}}}}
  - {{name: hook, webhook: {{url: {{file: {hook}}}}}}}
  - {{name: pager, pagerduty: {{routingKey: {{file: {pd}}}, url: "{base}/pd"}}}}
  routes:
  - {{matchers: ['severity=~"high|critical"'], receivers: [pager], continue: true}}
  - {{receivers: [chat, hook]}}
"#
        ),
    )
    .await;
    let acted = eventually(WAIT, "the pod deleted and both told", || {
        let got = got.clone();
        async move {
            let g = got.lock().unwrap();
            let slack = g.iter().find(|(p, v)| {
                p.starts_with("slack/") && v.to_string().contains("Done: delete Pod")
            });
            let hook = g
                .iter()
                .find(|(p, v)| p.starts_with("hook/") && v["notice"]["event"] == "acted");
            slack.zip(hook).map(|(s, h)| (s.1.clone(), h.1.clone()))
        }
    })
    .await;
    let (slack, hook) =
        acted.unwrap_or_else(|e| panic!("{e}\n{:#?}\n{}", got.lock().unwrap(), h.proc.output()));
    // the webhook carries the whole notice
    let n = &hook["notice"];
    assert_eq!(n["target"], format!("Pod shop/{pod}"));
    assert_eq!(n["cluster"], "e2e");
    assert_eq!(n["severity"], "info");
    assert_eq!(n["remediation"], "delete-pod");
    assert_eq!(n["source"], "detector");
    assert_eq!(n["evidence"]["reason"], "CrashLoopBackOff");
    assert!(
        n["links"]["record"]
            .as_str()
            .unwrap()
            .starts_with("https://heal8s.example/ui#delete-pod-pod-"),
        "{n}"
    );
    // Slack got blocks naming the pod
    assert!(
        slack["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "{slack}"
    );
    assert!(slack.to_string().contains(&pod), "{slack}");
    // the action itself is recorded as always
    assert!(
        h.outcomes()
            .await
            .iter()
            .any(|o| o.result == OutcomeKind::Acted)
    );
    // a first delete is `info`: the pager route (high, critical) stays quiet
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !got.lock().unwrap().iter().any(|(p, _)| p == "pd"),
        "{:#?}",
        got.lock().unwrap()
    );
    assert_eq!(
        h.metric(r#"heal8s_notifications_total{receiver="chat",result="sent"}"#)
            .await,
        1.0
    );
    assert_eq!(
        h.metric(r#"heal8s_notifications_total{receiver="pager",result="sent"}"#)
            .await,
        0.0
    );
    // secrets: never in the logs, /policy names only their files
    let policy = h.policy().await;
    assert_eq!(
        policy["notifications"]["receivers"][0]["slack"]["url"],
        json!({"file": slack_path(&policy)})
    );
    let served = policy.to_string();
    let logs = h.proc.output();
    for s in ["SEKRIT1", "SEKRIT2", "SEKRIT3"] {
        assert!(!served.contains(s), "{s} in /policy");
        assert!(!logs.contains(s), "{s} in the logs:\n{logs}");
    }
}

fn slack_path(policy: &Value) -> String {
    policy["notifications"]["receivers"][0]["slack"]["url"]["file"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_slow_remediation() {
    let namespaces = ["a", "b", "c"];
    let emu = cluster(&namespaces).await;
    let pods: Vec<(String, String)> = namespaces
        .iter()
        .map(|ns| (ns.to_string(), crashlooping(&emu, ns, "api")))
        .collect();
    let dead = silent().await;
    let dir = TempDir::new("notify-dead");
    let url = dir.path().join("url");
    std::fs::write(&url, &dead).unwrap();
    let h = heal8s(
        &emu,
        &dir,
        &format!(
            "notifications:\n  receivers:\n  - {{name: dead, webhook: {{url: {{file: {}}}}}}}\n  delivery: {{timeout: 60s}}\n",
            url.display()
        ),
    )
    .await;
    // every pod is deleted (terminating: no kubelet confirms) while the
    // receiver holds its first message
    let gone = eventually(WAIT, "every pod deleted", || {
        let (emu, pods) = (&emu, &pods);
        async move {
            pods.iter()
                .all(|(ns, p)| {
                    emu.get("v1", "Pod", ns, p)
                        .is_none_or(|p| p["metadata"]["deletionTimestamp"].is_string())
                })
                .then_some(())
        }
    })
    .await;
    if let Err(e) = gone {
        panic!("{e}\n{}", h.proc.output());
    }
    assert_eq!(
        h.metric(r#"heal8s_notifications_total{receiver="dead",result="sent"}"#)
            .await
            + h.metric(r#"heal8s_notifications_total{receiver="dead",result="failed"}"#)
                .await,
        0.0,
        "the receiver never answered"
    );
}

#[test]
fn a_missing_secret_stops_heal8s_at_start_naming_the_receiver_and_field() {
    let dir = TempDir::new("notify-missing");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "notifications:\n  receivers:\n  - {name: chat, slack: {url: {env: HEAL8S_E2E_SURELY_UNSET}}}\n  - {name: pager, pagerduty: {routingKey: {file: /nonexistent/pd-key}}}\nroutes:\n- {matchers: ['alertname=\"X\"'], remediation: notify-only}\n",
    )
    .unwrap();
    let out = std::process::Command::new(testkit::heal8s_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-no-auth",
            "--no-cluster",
            "--policy",
            policy.to_str().unwrap(),
        ])
        .env_remove("HEAL8S_E2E_SURELY_UNSET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            r#"receiver "chat" url: environment variable HEAL8S_E2E_SURELY_UNSET is not set"#
        ),
        "{err}"
    );
    assert!(
        err.contains(r#"receiver "pager" routingKey: /nonexistent/pd-key"#),
        "{err}"
    );
}
