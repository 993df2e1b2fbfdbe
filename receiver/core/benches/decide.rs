//! Bench binary (prints figures): how fast the pure core parses deliveries and
//! decides (admit → route → plan → guard) per signal.
//!
//! Run: `cargo bench -p receiver-core --bench decide`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use receiver_core::{
    ActError, ActionReport, Clock, Engine, Executor, FactSource, Facts, Plan, Policy, Signal,
    alertmanager,
};

const FIXTURE: &str = include_str!("../tests/fixtures/sample-webhook-from-prometheus.json");

struct NoFacts;
#[async_trait]
impl FactSource for NoFacts {
    async fn facts(&self, _: &Plan) -> Result<Facts, ActError> {
        Ok(Facts::unknown())
    }
}

struct Noop;
#[async_trait]
impl Executor for Noop {
    async fn execute(&self, _: &Plan, _: bool) -> Result<ActionReport, ActError> {
        Ok(ActionReport {
            simulated: true,
            message: String::new(),
            ..Default::default()
        })
    }
}

struct Fixed(Timestamp);
impl Clock for Fixed {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// Poll a future that never waits (the bench's fact source and executor are immediate).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("bench future was not immediately ready"),
    }
}

fn payload(n: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let alert = v["alerts"][0].clone();
    v["alerts"] = (0..n)
        .map(|i| {
            let mut a = alert.clone();
            a["labels"]["pod"] = format!("api-{i}").into();
            a["labels"]["namespace"] = format!("ns-{}", i % 100).into();
            a["fingerprint"] = format!("{i:016x}").into();
            a
        })
        .collect::<Vec<_>>()
        .into();
    v.to_string()
}

fn report(what: &str, iters: u64, per: u64, elapsed: Duration) {
    let ns = elapsed.as_nanos() as f64 / (iters * per) as f64;
    println!(
        "{what:<48} {ns:>10.0} ns/op {:>12.0} ops/s  ({iters}x{per} in {elapsed:?})",
        1e9 / ns
    );
}

fn main() {
    let body = payload(100);
    let iters = 300;
    let t = Instant::now();
    for _ in 0..iters {
        let p = alertmanager::parse(black_box(body.as_bytes())).unwrap();
        black_box(Signal::from_payload(&p));
    }
    report(
        "parse + signals, per alert (100-alert delivery)",
        iters,
        100,
        t.elapsed(),
    );

    let big = payload(10_000);
    let signals = Signal::from_payload(&alertmanager::parse(big.as_bytes()).unwrap());
    let mut policy = Policy::default_policy().unwrap();
    // the fixture's alerts carry `cluster: harness`: decide them as that cluster's heal8s
    policy.guard.cluster_name = Some("harness".into());
    let clock = Fixed(Timestamp::now());
    let mut engine = Engine::new(policy.clone(), "heal8s").unwrap();
    let t = Instant::now();
    for s in &signals {
        black_box(ready(engine.process(s, &NoFacts, &Noop, &clock)));
    }
    report(
        "admit+route+plan+guard, per new signal",
        1,
        signals.len() as u64,
        t.elapsed(),
    );

    let t = Instant::now();
    for s in &signals {
        black_box(ready(engine.process(s, &NoFacts, &Noop, &clock)));
    }
    report(
        "same signals again (deduped), per signal",
        1,
        signals.len() as u64,
        t.elapsed(),
    );
}
