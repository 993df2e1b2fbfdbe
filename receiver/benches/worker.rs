//! Bench binary (prints figures): the worker's rate on trivial work, in
//! process. The ingest bench's mix (20-alert payloads about 5,000 pods, each
//! payload delivered again and again) is parsed once, then fed to the real
//! worker (`worker::run`, default policy, simulated actions, no cluster):
//! most signals are repeats (deduped) or refusals (budget), the work that
//! must never fill the queue. Prints signals per second and per signal.
//!
//! Run: `cargo bench -p receiver --bench worker -- [SIGNALS]` (default 400000)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::sync::Arc;
use std::time::Instant;

use receiver::metrics::Metrics;
use receiver::worker::{Acting, Recorder, run};
use receiver_core::{Engine, Policy, Signal, alertmanager};

const FIXTURE: &str = include_str!("../core/tests/fixtures/sample-webhook.json");

/// The signals of one 20-alert payload, as the ingest bench sends it.
fn signals(round: u64) -> Vec<Signal> {
    let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let alert = v["alerts"][0].clone();
    v["alerts"] = (0..20)
        .map(|i| {
            let mut a = alert.clone();
            a["labels"]["pod"] = format!("api-{}", (round * 20 + i) % 5000).into();
            a["fingerprint"] = format!("{:016x}", round * 20 + i).into();
            a
        })
        .collect::<Vec<_>>()
        .into();
    let p = alertmanager::parse(v.to_string().as_bytes()).unwrap();
    p.alerts.iter().map(|a| Signal::from_alert(&p, a)).collect()
}

fn main() {
    let total: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(400_000);
    let payloads: Vec<Vec<Signal>> = (0..2000).map(signals).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let recorder = Arc::new(Recorder::new(metrics.clone()));
        let engine = Engine::new(Policy::default_policy().unwrap(), "heal8s").unwrap();
        let (tx, rx) = receiver::queue::work_queue(100_000);
        let acting = Acting::offline();
        let worker = tokio::spawn(run(engine, rx, acting, recorder, metrics.clone()));
        let t = Instant::now();
        let mut sent = 0;
        let mut i = 0;
        while sent < total {
            let batch = payloads[i % payloads.len()].clone();
            i += 1;
            let n = batch.len();
            // the queue full: wait for room, as a sender retrying would
            let mut batch = Some(batch);
            while let Some(b) = batch.take() {
                if tx.send_alerts(b.clone()).is_err() {
                    tokio::task::yield_now().await;
                    batch = Some(b);
                }
            }
            sent += n;
        }
        tx.close();
        drop(tx);
        worker.await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "worker: {sent} signals (20-alert payloads about 5,000 pods, 2,000 payloads sent again and again) in {secs:.2}s: {:.0} signals/s, {:.1} µs per signal",
            sent as f64 / secs,
            secs * 1e6 / sent as f64
        );
    });
}
