//! Maintenance windows and holds while an alert fires (issue 14), through a
//! real `heal8s serve --no-cluster` and its webhook: a drain is held while
//! KubeAPIErrorBudgetBurn fires and goes ahead once it resolved; a pod
//! delete inside an open window is refused `maintenance_window` and one
//! outside its namespaces is not; a bad window stops heal8s at start. In a
//! cluster (the Kubernetes API emulation), what holds is kept in the
//! ConfigMap `heal8s-holds`: a restarted heal8s holds at once, before the
//! alert is delivered again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use receiver_core::{Outcome, OutcomeKind, RefusalReason};
use serde_json::{Value, json};
use testkit::kube::{Controller, Emulator};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "holds-token";
const WAIT: Duration = Duration::from_secs(20);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

/// One alert delivery; `starts` tells occurrences apart.
fn delivery(status: &str, labels: Value, fingerprint: &str, starts: i64) -> Value {
    json!({"version": "4", "status": status, "receiver": "heal8s", "groupKey": "{}",
        "alerts": [{"status": status, "startsAt": ago(starts),
            "endsAt": if status == "resolved" { ago(1) } else { "0001-01-01T00:00:00Z".into() },
            "fingerprint": fingerprint, "labels": labels}]})
}

async fn heal8s(dir: &TempDir, guard: &str) -> Heal8s {
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"guard:
  cooldown: 1s
{guard}
routes:
- {{name: drain, matchers: ['alertname="KubeNodeNotReady"'], remediation: drain-node}}
- {{name: crashloop, matchers: ['alertname="KubePodCrashLooping"'], remediation: delete-pod}}
"#
        ),
    )
    .unwrap();
    Heal8s::start(
        TOKEN,
        &["--no-cluster", "--policy", policy.to_str().unwrap()],
    )
    .await
    .unwrap()
}

async fn outcome_for(h: &Heal8s, target: &str, n: usize) -> Outcome {
    let found = eventually(WAIT, "the outcome", || async {
        let about: Vec<Outcome> = h
            .outcomes()
            .await
            .into_iter()
            .filter(|o| o.target.as_deref() == Some(target) && o.remediation.is_some())
            .collect();
        (about.len() >= n).then(|| about[n - 1].clone())
    })
    .await;
    found.unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_is_held_while_the_alert_fires_and_goes_ahead_once_it_resolved() {
    let dir = TempDir::new("holds");
    let h = heal8s(
        &dir,
        "  holdWhileFiring:\n  - {matchers: ['alertname=\"KubeAPIErrorBudgetBurn\"'], remediations: [drain-node]}",
    )
    .await;
    let burn = json!({"alertname": "KubeAPIErrorBudgetBurn", "severity": "critical"});
    assert_eq!(
        h.post_webhook(
            TOKEN,
            &delivery("firing", burn.clone(), "b0000000000000b1", 600)
        )
        .await,
        200
    );
    let node = json!({"alertname": "KubeNodeNotReady", "node": "w1"});
    h.post_webhook(
        TOKEN,
        &delivery("firing", node.clone(), "a0000000000000a1", 300),
    )
    .await;
    let held = outcome_for(&h, "Node w1", 1).await;
    assert_eq!(held.reason, Some(RefusalReason::HeldByAlert), "{held:#?}");
    assert!(
        held.message.contains("KubeAPIErrorBudgetBurn"),
        "{}",
        held.message
    );
    // a pod delete is not held by this rule
    h.post_webhook(
        TOKEN,
        &delivery(
            "firing",
            json!({"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "api-1"}),
            "c0000000000000c1",
            300,
        ),
    )
    .await;
    assert_eq!(
        outcome_for(&h, "Pod shop/api-1", 1).await.result,
        OutcomeKind::Observed,
        "simulated without a cluster, not held"
    );
    // the burn resolves; the node's next occurrence is drained (simulated)
    h.post_webhook(TOKEN, &delivery("resolved", burn, "b0000000000000b1", 600))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.post_webhook(TOKEN, &delivery("firing", node, "a0000000000000a1", 100))
        .await;
    let after = outcome_for(&h, "Node w1", 2).await;
    assert_eq!(after.result, OutcomeKind::Observed, "{after:#?}");
    assert!(
        h.metric(r#"heal8s_guard_refusals_total{reason="held_by_alert"}"#)
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_window_refuses_what_it_covers_only() {
    let dir = TempDir::new("windows");
    // open all day, every day, in shop only
    let h = heal8s(
        &dir,
        "  maintenanceWindows:\n  - {name: shop-freeze, start: \"00:00\", end: \"00:00\", timeZone: Europe/Berlin, namespaces: [shop]}",
    )
    .await;
    for (ns, fp) in [("shop", "d0000000000000d1"), ("web", "e0000000000000e1")] {
        h.post_webhook(
            TOKEN,
            &delivery(
                "firing",
                json!({"alertname": "KubePodCrashLooping", "namespace": ns, "pod": "api-1"}),
                fp,
                300,
            ),
        )
        .await;
    }
    let shop = outcome_for(&h, "Pod shop/api-1", 1).await;
    assert_eq!(
        shop.reason,
        Some(RefusalReason::MaintenanceWindow),
        "{shop:#?}"
    );
    assert!(shop.message.contains("shop-freeze"), "{}", shop.message);
    assert_eq!(
        outcome_for(&h, "Pod web/api-1", 1).await.result,
        OutcomeKind::Observed
    );
}

#[test]
fn a_bad_window_stops_heal8s_at_start_naming_it() {
    let dir = TempDir::new("bad-window");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "guard:\n  maintenanceWindows:\n  - {name: x, start: \"9:00\", end: \"10:00\", timeZone: Mars/Base}\nroutes:\n- {matchers: ['alertname=\"X\"'], remediation: notify-only}\n",
    )
    .unwrap();
    let out = std::process::Command::new(testkit::heal8s_bin())
        .args(["check-config", policy.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("guard.maintenanceWindows[0]") && err.contains("Mars/Base"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_heal8s_holds_at_once_from_what_was_kept() {
    let emu = Emulator::start().await.unwrap();
    let _played = emu.play(&[Controller::Kubelet]);
    testkit::scenario::seed_crash_loops(&emu, &["heal8s", "shop"], &["api-1", "api-2"]).unwrap();
    let policy = r#"guard:
  cooldown: 1s
  holdWhileFiring:
  - {matchers: ['alertname="KubeAPIErrorBudgetBurn"'], remediations: [delete-pod]}
routes:
- {name: crashloop, matchers: ['alertname="KubePodCrashLooping"'], remediation: delete-pod}
"#;
    let start = || async {
        Heal8s::start_in(TOKEN, &emu, policy, &["--namespace", "heal8s"])
            .await
            .unwrap()
    };
    let burn = json!({"alertname": "KubeAPIErrorBudgetBurn", "severity": "critical"});
    let crash =
        |pod: &str| json!({"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": pod});
    let kept = |emu: &Emulator| {
        emu.get("v1", "ConfigMap", "heal8s", "heal8s-holds")
            .and_then(|cm| cm["data"]["held.json"].as_str().map(str::to_string))
            .and_then(|t| serde_json::from_str::<Vec<Value>>(&t).ok())
    };

    let (mut first, _first_files) = start().await;
    first
        .post_webhook(
            TOKEN,
            &delivery("firing", burn.clone(), "b000000000000001", 600),
        )
        .await;
    let written = eventually(WAIT, "the hold kept in heal8s-holds", || async {
        kept(&emu).filter(|k| k.len() == 1)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", first.proc.output()));
    assert_eq!(written[0]["fingerprint"], "b000000000000001");
    assert_eq!(written[0]["alertname"], "KubeAPIErrorBudgetBurn");
    first.proc.kill();

    // a new process: the alert is not delivered again, yet it holds
    let (second, _second_files) = start().await;
    second
        .post_webhook(
            TOKEN,
            &delivery("firing", crash("api-1"), "c000000000000001", 300),
        )
        .await;
    let held = outcome_for(&second, "Pod shop/api-1", 1).await;
    assert_eq!(
        held.reason,
        Some(RefusalReason::HeldByAlert),
        "{held:?}\n{}",
        second.proc.output()
    );
    assert!(
        held.message.contains("KubeAPIErrorBudgetBurn"),
        "{}",
        held.message
    );
    assert!(emu.get("v1", "Pod", "shop", "api-1").is_some());
    assert!(second.proc.output().contains("Holding remediations again"));

    // resolved: the kept list empties, and the pod is healed
    second
        .post_webhook(TOKEN, &delivery("resolved", burn, "b000000000000001", 600))
        .await;
    eventually(WAIT, "the kept holds to empty", || async {
        kept(&emu).filter(Vec::is_empty)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", second.proc.output()));
    second
        .post_webhook(
            TOKEN,
            &delivery("firing", crash("api-2"), "c000000000000002", 300),
        )
        .await;
    let acted = outcome_for(&second, "Pod shop/api-2", 1).await;
    assert_eq!(acted.result, OutcomeKind::Acted, "{acted:?}");
}
