//! End to end with a **real** Alertmanager (Debian's `prometheus-alertmanager`)
//! delivering webhooks to a real `heal8s serve` process, both on loopback.
//! Alerts are injected through Alertmanager's own API, as Prometheus does.
//!
//! Needs `prometheus-alertmanager` on PATH (`.ci/run` installs it); every test
//! name starts with `real_alertmanager_` so `make test-fast` can leave them out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use receiver_core::{AlertStatus, Mode, OutcomeKind, RemediationKind};
use serde_json::json;
use testkit::{Alertmanager, AmTiming, Heal8s, eventually};

const TOKEN: &str = "e2e-token-0123456789";
const WAIT: Duration = Duration::from_secs(30);

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn crashloop(pod: &str, starts_at: &str, ends_at: Option<&str>) -> serde_json::Value {
    let mut a = json!({
        "labels": {
            "alertname": "KubePodCrashLooping",
            "namespace": "shop",
            "pod": pod,
            "container": "api",
            "severity": "warning",
        },
        "annotations": {"summary": "crash looping"},
        "startsAt": starts_at,
        "generatorURL": "http://127.0.0.1/e2e",
    });
    if let Some(e) = ends_at {
        a["endsAt"] = e.into();
    }
    json!([a])
}

async fn webhook_url(h: &Heal8s) -> String {
    format!("{}/webhook/alertmanager", h.url)
}

fn context(h: &Heal8s, am: &Alertmanager) -> String {
    format!(
        "--- heal8s ---\n{}\n--- alertmanager ---\n{}",
        h.proc.output(),
        am.log()
    )
}

#[tokio::test]
async fn real_alertmanager_firing_then_resolved_is_accepted_planned_and_marked_resolved() {
    let h = Heal8s::start(TOKEN, &["--no-cluster"]).await.unwrap();
    let am = Alertmanager::start(&webhook_url(&h).await, TOKEN, AmTiming::default())
        .await
        .unwrap();
    let starts = now();
    am.post_alerts(crashloop("api-7d9c-x2", &starts, None))
        .await
        .unwrap();

    let planned = eventually(WAIT, "the firing alert to be planned", || async {
        let o = h.outcomes().await;
        (o.len() >= 2).then_some(o)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", context(&h, &am)));
    assert_eq!(planned[0].name, "KubePodCrashLooping");
    assert_eq!(planned[0].status, AlertStatus::Firing);
    assert_eq!(planned[0].route.as_deref(), Some("crashloop-delete-pod"));
    assert_eq!(planned[0].remediation, Some(RemediationKind::DeletePod));
    assert_eq!(
        planned[0].target.as_deref(),
        Some("Pod shop/api-7d9c-x2 container api")
    );
    // without a cluster (--no-cluster) nothing acts: the plan is simulated and says so
    assert_eq!(planned[0].result, OutcomeKind::Observed);
    assert_eq!(
        planned[1].route.as_deref(),
        Some("crashloop-rollback-image")
    );
    assert_eq!(planned[1].mode, Some(Mode::Propose));
    assert_eq!(
        h.metric("heal8s_alerts_received_total{status=\"firing\"}")
            .await,
        1.0
    );
    assert_eq!(
        h.metric("heal8s_plans_total{remediation=\"delete-pod\",mode=\"direct\"}")
            .await,
        1.0
    );

    // resolve it: Alertmanager sends a "resolved" webhook (send_resolved: true)
    am.post_alerts(crashloop("api-7d9c-x2", &starts, Some(&now())))
        .await
        .unwrap();
    eventually(WAIT, "the resolved alert to be recorded", || async {
        (h.metric("heal8s_outcomes_total{result=\"resolved\"}").await >= 1.0).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", context(&h, &am)));
    // resolving acted on nothing more
    assert_eq!(
        h.metric("heal8s_plans_total{remediation=\"delete-pod\",mode=\"direct\"}")
            .await,
        1.0
    );
    assert!(
        am.log().contains("Notify success"),
        "alertmanager did not log a successful notification\n{}",
        am.log()
    );
}

#[tokio::test]
async fn real_alertmanager_repeated_delivery_is_deduped_not_replanned() {
    let h = Heal8s::start(TOKEN, &["--no-cluster"]).await.unwrap();
    // a short repeat interval makes Alertmanager re-send the same occurrence
    let timing = AmTiming {
        repeat_interval: "3s",
        ..AmTiming::default()
    };
    let am = Alertmanager::start(&webhook_url(&h).await, TOKEN, timing)
        .await
        .unwrap();
    am.post_alerts(crashloop("api-1", &now(), None))
        .await
        .unwrap();
    // answered at the door as a repeat, or deduped by the guard
    eventually(WAIT, "a repeated delivery to be deduped", || async {
        let deduped = h.metric("heal8s_outcomes_total{result=\"deduped\"}").await;
        let repeated = h.metric("heal8s_alerts_repeated_total").await;
        (deduped + repeated >= 1.0).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", context(&h, &am)));
    let received = h
        .metric("heal8s_alerts_received_total{status=\"firing\"}")
        .await;
    assert!(received >= 2.0, "received {received}");
    // planned once, however often it was delivered
    assert_eq!(
        h.metric("heal8s_plans_total{remediation=\"delete-pod\",mode=\"direct\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn real_alertmanager_with_wrong_token_is_refused_and_nothing_is_acted() {
    let h = Heal8s::start(TOKEN, &["--no-cluster"]).await.unwrap();
    let am = Alertmanager::start(&webhook_url(&h).await, "not-the-token", AmTiming::default())
        .await
        .unwrap();
    am.post_alerts(crashloop("api-1", &now(), None))
        .await
        .unwrap();
    eventually(
        WAIT,
        "alertmanager to log the failed notification",
        || async {
            let log = am.log();
            (log.contains("401") && log.contains("Notify for alerts failed")).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", context(&h, &am)));
    assert!(
        h.metric("heal8s_webhook_requests_total{code=\"401\"}")
            .await
            >= 1.0
    );
    assert_eq!(
        h.metric("heal8s_alerts_received_total{status=\"firing\"}")
            .await,
        0.0
    );
    assert!(h.outcomes().await.is_empty());
}

#[test]
fn real_alertmanager_amtool_accepts_the_example_receiver_config() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/alertmanager/alertmanager.yml");
    let out = std::process::Command::new("amtool")
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("amtool is installed with prometheus-alertmanager");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}
