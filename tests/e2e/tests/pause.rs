//! The pause switch (issue 14): `POST /pause` and `/resume` against a real
//! `heal8s serve`, and the `heal8s-pause` ConfigMap in a cluster (the
//! Kubernetes API emulation): while paused, nothing is changed and every
//! plan is refused `paused`; resumed, heal8s acts again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use receiver_core::{OutcomeKind, RefusalReason};
use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "pause-token";
const WAIT: Duration = Duration::from_secs(30);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

fn crashloop(ns: &str, pod: &str, fingerprint: &str, starts: i64) -> Value {
    json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}",
        "alerts": [{"status": "firing", "startsAt": ago(starts), "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": fingerprint,
            "labels": {"alertname": "KubePodCrashLooping", "namespace": ns, "pod": pod}}]})
}

async fn post(h: &Heal8s, path: &str, token: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", h.url))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_pause_refuses_every_change_until_resumed() {
    let dir = TempDir::new("pause-api");
    let read = dir.path().join("read-token");
    std::fs::write(&read, "reader").unwrap();
    let h = Heal8s::start(
        TOKEN,
        &["--no-cluster", "--read-token-file", read.to_str().unwrap()],
    )
    .await
    .unwrap();
    // the read token may not pause; nobody without a token may
    assert_eq!(post(&h, "/pause", "reader", "").await.0, 403);
    assert_eq!(post(&h, "/pause", "wrong", "").await.0, 401);
    assert_eq!(post(&h, "/pause", TOKEN, "{\"colour\": 1}").await.0, 400);
    // `heal8s pause`, as a person would run it
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let out = std::process::Command::new(testkit::heal8s_bin())
        .args([
            "pause",
            "--url",
            &h.url,
            "--webhook-token-file",
            token_file.to_str().unwrap(),
            "--reason",
            "incident 42",
            "--by",
            "alice",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.starts_with("heal8s is PAUSED (via api") && said.contains("incident 42"),
        "{said}"
    );
    let bad = std::process::Command::new(testkit::heal8s_bin())
        .args(["resume", "--url", &h.url])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("401"),
        "no token: refused"
    );
    assert_eq!(h.metric("heal8s_paused").await, 1.0);
    let ready = reqwest::get(format!("{}/readyz", h.url)).await.unwrap();
    assert_eq!(ready.status(), 200, "paused is still ready: it records");
    let said = ready.text().await.unwrap();
    assert!(
        said.starts_with("ready (paused since") && said.contains("incident 42"),
        "{said}"
    );
    h.post_webhook(TOKEN, &crashloop("shop", "api-1", "f000000000000001", 300))
        .await;
    let refused = eventually(WAIT, "the paused refusal", || async {
        h.outcomes()
            .await
            .into_iter()
            .find(|o| o.reason == Some(RefusalReason::Paused))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert!(refused.message.contains("by alice") && refused.message.contains("incident 42"));
    let (code, state) = post(&h, "/resume", TOKEN, "").await;
    assert_eq!((code, state["paused"].clone()), (200, Value::Null));
    h.post_webhook(TOKEN, &crashloop("shop", "api-2", "f000000000000002", 300))
        .await;
    let acted = eventually(WAIT, "an action after resuming", || async {
        h.outcomes().await.into_iter().find(|o| {
            o.result == OutcomeKind::Observed && o.target.as_deref() == Some("Pod shop/api-2")
        })
    })
    .await;
    assert!(acted.is_ok(), "{}", h.proc.output());
    assert_eq!(h.metric("heal8s_paused").await, 0.0);
    assert!(h.proc.output().contains("heal8s is PAUSED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pause_configmap_holds_heal8s_until_it_is_deleted() {
    let emu = Emulator::start().await.unwrap();
    let _played = emu.play(&[Controller::Kubelet]);
    testkit::scenario::seed_crash_loops(&emu, &["heal8s", "shop"], &["api-1"]).unwrap();
    let dir = TempDir::new("pause-cm");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    // `heal8s pause --configmap`, as a person would pause every replica
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(testkit::heal8s_bin())
            .args(args)
            .args([
                "--configmap",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "-n",
                "heal8s",
            ])
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {said}");
        said
    };
    let said = cli(&["pause", "--reason", "change freeze", "--by", "sre"]);
    assert!(
        said.starts_with("heal8s is PAUSED (via configmap heal8s/heal8s-pause")
            && said.contains("by sre")
            && said.contains("change freeze"),
        "{said}"
    );
    let cm = emu
        .get("v1", "ConfigMap", "heal8s", "heal8s-pause")
        .unwrap();
    assert_eq!(cm["data"], json!({"reason": "change freeze", "by": "sre"}));
    // pausing again changes nothing and says so
    let again = cli(&["pause", "--reason", "other", "--by", "someone"]);
    assert!(
        again.contains("(already)") && again.contains("change freeze"),
        "{again}"
    );
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "detectors:\n  resync: 1s\n  pods: {waitingAfter: 1s}\nguard: {cooldown: 1s}\nroutes:\n- {name: crashloop, matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}\n",
    )
    .unwrap();
    let h = Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    let refused = eventually(WAIT, "the paused refusal", || async {
        h.outcomes()
            .await
            .into_iter()
            .find(|o| o.reason == Some(RefusalReason::Paused))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    assert!(
        refused.message.contains("change freeze"),
        "{}",
        refused.message
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        emu.get("v1", "Pod", "shop", "api-1").is_some(),
        "nothing deleted while paused"
    );
    // an API resume does not end the ConfigMap's pause
    let (_, state) = post(&h, "/resume", TOKEN, "").await;
    assert_eq!(state["heldByConfigMap"], true);
    assert_eq!(state["paused"]["source"], "configmap");
    let said = cli(&["resume"]);
    assert!(said.contains("heal8s/heal8s-pause deleted"), "{said}");
    assert!(
        cli(&["resume"]).contains("was not paused"),
        "resuming twice is harmless"
    );
    let gone = eventually(WAIT, "the pod deleted once resumed", || async {
        emu.get("v1", "Pod", "shop", "api-1")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone.is_ok(), "{}", h.proc.output());
}
