//! Bench binary (prints figures): webhook handling in process (auth, body read,
//! parse, all-or-nothing enqueue), with a consumer draining the queue.
//!
//! Run: `cargo bench -p receiver --bench webhook`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use receiver::http::{AppState, Token, WEBHOOK_PATH, router};
use receiver::metrics::Metrics;
use receiver::worker::Recorder;
use receiver_core::Policy;
use tower::ServiceExt;

const FIXTURE: &str = include_str!("../core/tests/fixtures/sample-webhook.json");

fn payload(n: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let alert = v["alerts"][0].clone();
    v["alerts"] = (0..n)
        .map(|i| {
            let mut a = alert.clone();
            a["labels"]["pod"] = format!("api-{i}").into();
            a
        })
        .collect::<Vec<_>>()
        .into();
    v.to_string()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let metrics = Arc::new(Metrics::new());
        let (tx, mut rx) = receiver::queue::work_queue(100_000);
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let recorder = Arc::new(Recorder::new(metrics.clone()));
        let app = router(AppState {
            token: Token::new("bench-token"),
            read_token: None,
            front: receiver::front::Front::One {
                queue: tx,
                recorder: recorder.clone(),
            },
            metrics: metrics.clone(),
            recorder,
            policy: Arc::new(Policy::default_policy().unwrap().to_json()),
            max_body_bytes: 8 << 20,
            alert_limits: Default::default(),
            accepting: Arc::new(AtomicBool::new(true)),
            leadership: receiver_k8s::leader::Leadership::always(),
        });
        for n in [1usize, 100] {
            let body = payload(n);
            let iters = if n == 1 { 20_000 } else { 1_000 };
            let t = Instant::now();
            for _ in 0..iters {
                let req = Request::post(WEBHOOK_PATH)
                    .header(header::AUTHORIZATION, "Bearer bench-token")
                    .body(Body::from(body.clone()))
                    .unwrap();
                let resp = app.clone().oneshot(req).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
            }
            let el = t.elapsed();
            println!(
                "webhook delivery of {n:>3} alert(s): {:>8.1} us/request {:>9.0} alerts/s  ({iters} requests in {el:?})",
                el.as_secs_f64() * 1e6 / f64::from(iters),
                (n as f64 * f64::from(iters)) / el.as_secs_f64()
            );
        }
    });
}
