//! Bench binary (prints figures, not a timed test): webhook ingest of a real
//! `heal8s serve` (release, `--no-cluster`) against a bare axum JSON handler
//! on the same machine and payload, in one run.
//!
//! Both servers run as processes of their own (the bare one is this binary
//! started again with `--bare-server`), and the same load generator drives
//! each: C keep-alive connections posting a 20-alert Alertmanager v4 payload
//! as fast as they are answered for S seconds. Prints requests/s answered 2xx
//! and 503 for each and heal8s's share of the bare handler's rate; then
//! heal8s's ack latency (p50/p99) at a steady 2,000 requests/s; and that
//! every accepted alert is accounted for in its metrics (processed by the
//! worker, answered at the door as a repeat, coalesced, or still queued).
//! The payloads cycle through 2,000 distinct ones, as Alertmanager re-sends
//! its groups: most deliveries after the first 2,000 are repeats.
//!
//! Then the storm: 10,000 alerts a second (500 deliveries of 20, every alert
//! a new problem about one of 5,000 pods) for STORM seconds against a fresh
//! heal8s: the rate accepted and turned away (503), the p99 ack, heal8s's
//! peak RSS, and that every accepted alert is accounted for.
//!
//! Run: `cargo bench -p e2e --bench ingest -- [SECONDS] [CONNECTIONS] [STORM]`
//! (default 10 32 60)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use testkit::{Heal8s, Proc, TempDir, free_port, metric_value};

const TOKEN: &str = "bench-token";
const FIXTURE: &str = include_str!("../../../receiver/core/tests/fixtures/sample-webhook.json");

/// A 20-alert payload; `round` makes each delivery a new occurrence.
fn payload(round: u64) -> String {
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
    v.to_string()
}

/// The bare handler: parse the JSON, answer 200.
async fn bare_server(port: u16) {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/webhook/alertmanager",
        post(|axum::Json(_): axum::Json<serde_json::Value>| async { "ok" }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    busy: AtomicU64,
    other: AtomicU64,
}

/// Post one delivery: its HTTP status, or `None` when no answer came.
async fn deliver(client: &reqwest::Client, url: &str, body: String) -> Option<u16> {
    client
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// `connections` clients posting as fast as answered for `secs`: (2xx/s, 503/s, other).
async fn flood(
    url: &str,
    connections: usize,
    secs: u64,
    bodies: Arc<Vec<String>>,
) -> (f64, f64, u64) {
    let counts = Arc::new(Counts::default());
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (url, counts, bodies) = (url.to_string(), counts.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = c;
            while Instant::now() < end {
                let r = deliver(&client, &url, bodies[i % bodies.len()].clone()).await;
                i += connections;
                match r {
                    Some(200..=299) => counts.ok.fetch_add(1, Ordering::Relaxed),
                    Some(503) => counts.busy.fetch_add(1, Ordering::Relaxed),
                    _ => counts.other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = secs as f64;
    (
        counts.ok.load(Ordering::Relaxed) as f64 / s,
        counts.busy.load(Ordering::Relaxed) as f64 / s,
        counts.other.load(Ordering::Relaxed),
    )
}

/// A steady `rate` requests/s for `secs`: the ack latencies.
async fn steady(url: &str, rate: u64, secs: u64, bodies: Arc<Vec<String>>) -> Vec<Duration> {
    let lat = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..rate * secs {
        tick.tick().await;
        let (client, url, lat, body) = (
            client.clone(),
            url.to_string(),
            lat.clone(),
            bodies[usize::try_from(i).unwrap() % bodies.len()].clone(),
        );
        tasks.spawn(async move {
            let t = Instant::now();
            let r = deliver(&client, &url, body).await;
            if r.is_some_and(|code| (200..300).contains(&code)) {
                lat.lock().unwrap().push(t.elapsed());
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut v = lat.lock().unwrap().clone();
    v.sort();
    v
}

/// `rate` deliveries a second of 20 new alerts each (fresh occurrences,
/// numbered from `first`) for `secs`: ack latencies of the accepted ones,
/// and how many were turned away (503) or failed otherwise.
async fn storm(url: &str, rate: u64, secs: u64, first: u64) -> (Vec<Duration>, u64, u64) {
    let lat = Arc::new(std::sync::Mutex::new(Vec::new()));
    let counts = Arc::new(Counts::default());
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..rate * secs {
        tick.tick().await;
        let (client, url, lat, counts) =
            (client.clone(), url.to_string(), lat.clone(), counts.clone());
        tasks.spawn(async move {
            let body = payload(first + i);
            let t = Instant::now();
            let r = deliver(&client, &url, body).await;
            match r {
                Some(200..=299) => lat.lock().unwrap().push(t.elapsed()),
                Some(503) => {
                    counts.busy.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    counts.other.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // reap as we go: the set stays small
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut v = lat.lock().unwrap().clone();
    v.sort();
    (
        v,
        counts.busy.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed),
    )
}

/// The peak resident set of process `pid`, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// heal8s's accounting of accepted alerts, from its metrics.
async fn accounting(heal8s: &Heal8s) -> String {
    let m = heal8s.metrics().await;
    let received = metric_value(&m, r#"heal8s_alerts_received_total{status="firing"}"#);
    let signals = metric_value(&m, r#"heal8s_signals_total{source="alert"}"#);
    let repeated = metric_value(&m, "heal8s_alerts_repeated_total");
    let coalesced = metric_value(&m, r#"heal8s_signals_coalesced_total{source="alert"}"#);
    let queued = metric_value(&m, "heal8s_queue_depth");
    format!(
        "{received} alerts accepted = {signals} processed by the worker + {repeated} repeats answered at the door + {coalesced} coalesced in the queue + {queued} still queued ({})",
        if received == signals + repeated + coalesced + queued {
            "all accounted for"
        } else {
            "MISMATCH"
        }
    )
}

fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() - 1) as f64 * p) as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--bare-server") {
        let port: u16 = args[1].parse().unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(bare_server(port));
        return;
    }
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let secs = nums.first().copied().unwrap_or(10);
    let connections = usize::try_from(nums.get(1).copied().unwrap_or(32)).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let bodies = Arc::new((0..2000).map(payload).collect::<Vec<_>>());

        // the bare handler, a process of its own
        let dir = TempDir::new("ingest");
        let port = free_port();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--bare-server", &port.to_string()]);
        let bare = Proc::spawn(cmd, dir.path().join("bare.log")).unwrap();
        let bare_url = format!("http://127.0.0.1:{port}/webhook/alertmanager");
        let client = reqwest::Client::new();
        while client.post(&bare_url).body("{}").header("content-type", "application/json").send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (bare_ok, _, _) = flood(&bare_url, connections, secs, bodies.clone()).await;
        drop(bare);

        let heal8s = Heal8s::start(TOKEN, &["--no-cluster", "--log-level", "warn"])
            .await
            .unwrap();
        let url = format!("{}/webhook/alertmanager", heal8s.url);
        let (ok, busy, other) = flood(&url, connections, secs, bodies.clone()).await;
        println!(
            "ingest: {connections} connections, 20-alert payloads, {secs}s each: bare axum JSON handler {bare_ok:.0} req/s; heal8s {ok:.0} req/s 2xx ({:.0}% of bare), {busy:.0} req/s 503 (queue full), {other} other",
            ok * 100.0 / bare_ok.max(1.0)
        );
        // let the queue drain before the latency run
        tokio::time::sleep(Duration::from_secs(3)).await;
        let lat = steady(&url, 2000, 5, bodies.clone()).await;
        println!(
            "ingest: heal8s at 2,000 req/s for 5s: {} acked, ack latency p50 {:?}, p99 {:?}, max {:?}",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!("ingest: heal8s accounted for: {}", accounting(&heal8s).await);
        drop(heal8s);

        // the storm: new problems only, at 10,000 alerts a second
        let storm_secs = nums.get(2).copied().unwrap_or(60);
        let heal8s = Heal8s::start(TOKEN, &["--no-cluster", "--log-level", "warn"])
            .await
            .unwrap();
        let url = format!("{}/webhook/alertmanager", heal8s.url);
        let (lat, busy, other) = storm(&url, 500, storm_secs, 1 << 32).await;
        let sent = 500 * storm_secs;
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!(
            "storm: 10,000 new alerts/s (500 deliveries of 20) for {storm_secs}s: {:.0} alerts/s accepted, {:.0} deliveries/s turned away (503), {other} other; ack p50 {:?}, p99 {:?}, max {:?}; heal8s peak RSS {:.0} MB",
            lat.len() as f64 * 20.0 / storm_secs as f64,
            busy as f64 / storm_secs as f64,
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or_default(),
            peak_rss_mb(heal8s.proc.child.id()),
        );
        assert_eq!(lat.len() as u64 + busy + other, sent);
        println!("storm: heal8s accounted for: {}", accounting(&heal8s).await);
    });
}
