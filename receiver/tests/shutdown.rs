//! Graceful shutdown of the real server (`serve::run_with` on a loopback socket):
//! queued work is finished within the deadline, and what cannot be is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use receiver::executor::OfflineFacts;
use receiver::http::Token;
use receiver::serve::{Settings, run_with};
use receiver::worker::Acting;
use receiver_core::{ActError, ActionReport, Executor, Plan, Policy, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const FIRING: &str = include_str!("../core/tests/fixtures/sample-webhook.json");

/// An executor that takes its time and counts its calls.
struct Slow {
    delay: Duration,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl Executor for Slow {
    async fn execute(&self, _plan: &Plan, _dry_run: bool) -> Result<ActionReport, ActError> {
        tokio::time::sleep(self.delay).await;
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(ActionReport {
            simulated: true,
            message: "slow".into(),
            ..Default::default()
        })
    }
}

fn payload(n: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
    let alert = v["alerts"][0].clone();
    v["alerts"] = (0..n)
        .map(|i| {
            let mut a = alert.clone();
            a["labels"]["pod"] = format!("api-{i}").into();
            a["labels"]["namespace"] = format!("ns-{i}").into();
            a["fingerprint"] = format!("{i:016x}").into();
            a
        })
        .collect::<Vec<_>>()
        .into();
    v.to_string()
}

async fn scenario(timeout: Duration) -> (receiver::serve::ShutdownReport, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = Settings {
        token: Token::new("t"),
        read_token: None,
        policy: Policy::default_policy().unwrap(),
        namespace: "heal8s".into(),
        max_body_bytes: 1 << 20,
        alert_limits: Default::default(),
        queue_capacity: 64,
        backlog_capacity: 64,
        max_running: 16,
        listen: receiver::listen::Limits {
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_connections: 64,
        },
        shutdown_timeout: timeout,
        record_ttl: Duration::from_secs(7 * 86400),
        report_interval: Duration::from_secs(60),
        identity: "test".into(),
        rediscover_every: Duration::from_secs(180),
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let acting = Acting {
        facts: Arc::new(OfflineFacts),
        executor: Arc::new(Slow {
            delay: Duration::from_millis(400),
            calls: calls.clone(),
        }),
        clock: Arc::new(SystemClock),
        journal: Arc::new(receiver_core::NoJournal),
        verifier: None,
        leadership: receiver_k8s::leader::Leadership::always(),
        history: None,
        clears: None,
        approvals: None,
        namespace_policies: None,
        notices: None,
        holds: None,
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(run_with(listener, settings, acting, None, async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/webhook/alertmanager");
    let resp = client
        .post(&url)
        .bearer_auth("t")
        .body(payload(4))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    stop_tx.send(()).unwrap();
    let report = server.await.unwrap().unwrap();
    // new connections are refused once the server has stopped
    assert!(
        client
            .post(&url)
            .bearer_auth("t")
            .body(payload(1))
            .send()
            .await
            .is_err()
    );
    (report, calls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn queued_work_is_finished_before_exit() {
    // 4 alerts x 2 routes (crash loop: delete-pod, then rollback-image) x
    // 400 ms: the pods' plans run at once, each pod's two one after the other
    let (report, calls) = scenario(Duration::from_secs(10)).await;
    assert_eq!(report.unprocessed, 0);
    assert_eq!(calls, 8);
}

#[tokio::test]
async fn work_left_at_the_deadline_is_reported_not_hidden() {
    let (report, calls) = scenario(Duration::from_millis(250)).await;
    assert!(calls < 8, "{calls}");
    assert!(report.unprocessed >= 1, "{report:?}");
}
