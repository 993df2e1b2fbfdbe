//! Patch time on a 300 KB multi-document manifest file: parse, edit the last
//! document (an existing value, and keys that must be created), and prove the
//! result by parsing it again. Prints figures; run with `make bench`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use gitops::patch::{Edit, Target, patch};
use gitops::yaml::Tree;

fn document(i: usize) -> String {
    format!(
        "---
# service {i}: owned by team-{team}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: svc-{i}
  namespace: shop
  labels:
    app.kubernetes.io/name: svc-{i}
    app.kubernetes.io/part-of: shop # the storefront
spec:
  replicas: 2
  selector:
    matchLabels: {{app.kubernetes.io/name: svc-{i}}}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: svc-{i}
    spec:
      containers:
      - name: app
        image: \"registry.example/shop/svc-{i}:1.{i}.0\"
        args: [--port=8080, --log-format=json]
        ports:
        - {{containerPort: 8080, name: http}}
        env:
        - name: MODE
          value: production
        readinessProbe:
          httpGet: {{path: /readyz, port: http}}
        resources:
          requests:
            cpu: 100m
",
        team = i % 7
    )
}

fn measure(name: &str, text: &str, target: &Target, edit: &Edit) {
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) || times.len() < 20 {
        let t = Instant::now();
        let out = patch(black_box(text), target, edit);
        times.push(t.elapsed());
        assert!(out.is_ok(), "{out:?}");
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "{name:<44} n={:<5} p50 {:>8.2?}  p99 {:>8.2?}",
        times.len(),
        pct(0.5),
        pct(0.99)
    );
}

/// Peak resident memory of this process so far (VmHWM), in MiB; reset by
/// [`reset_peak`].
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Reset the peak (Linux: `5` to /proc/self/clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// One hostile file patched once: how long, how much memory at the peak,
/// and what came of it.
fn hostile(name: &str, text: String) {
    let target = Target::Manifest {
        kind: "Deployment".into(),
        name: "web".into(),
        namespace: None,
        container: None,
    };
    reset_peak();
    let before = peak_mib();
    let t = Instant::now();
    let result = patch(&text, &target, &Edit::Replicas(2));
    let took = t.elapsed();
    let peak = peak_mib();
    let said = match &result {
        Ok(_) => "edited".to_string(),
        Err(e) => {
            let e = e.to_string();
            e.chars().take(70).collect()
        }
    };
    drop(result);
    println!(
        "{name:<44} {:>6.1} MB  {took:>9.2?}  peak RSS {peak:>6.1} MiB (+{:.1})  {said}",
        text.len() as f64 / 1e6,
        peak - before
    );
}

fn hostile_files() {
    let head =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n";
    let anchors = |n: usize| -> String {
        let mut t = head.to_string();
        for i in 0..n {
            t.push_str(&format!("a{i}: &a{i} v{i}\n"));
        }
        t
    };
    println!("hostile files (one patch each; refusals name the limit):");
    hostile("100,000 anchors", anchors(100_000));
    hostile("9,999 anchors (within the limit)", anchors(9_999));
    hostile(
        "50 MB single-line flow document",
        format!("{head}x: [{}1]\n", "1,".repeat(25_000_000)),
    );
    hostile(
        "4 MB flow sequence, 1M nodes",
        format!("{head}x: [{}1]\n", "1,".repeat(1_000_000)),
    );
    hostile(
        "3.9 MB flow sequence, 240,000 nodes",
        format!("{head}x: [{}1]\n", "1234567890123456,".repeat(240_000)),
    );
    hostile(
        "billion laughs (10 levels of 10 aliases)",
        format!(
            "{head}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n{}",
            (1..10)
                .map(|i| format!(
                    "l{i}: &l{i} [{}]\n",
                    vec![format!("*l{}", i - 1); 10].join(", ")
                ))
                .collect::<String>()
        ),
    );
    hostile(
        "120,000 keys in one mapping (within limits)",
        format!(
            "{head}{}",
            (0..120_000)
                .map(|i| format!("k{i}: {i}\n"))
                .collect::<String>()
        ),
    );
    hostile(
        "a 3.9 MB scalar",
        format!("{head}blob: {}\n", "y".repeat(3_900_000)),
    );
}

fn main() {
    hostile_files();
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 300 * 1024 {
        text.push_str(&document(i));
        i += 1;
    }
    let last = Target::Manifest {
        kind: "Deployment".into(),
        name: format!("svc-{}", i - 1),
        namespace: Some("shop".into()),
        container: None,
    };
    println!("file: {} KB, {i} documents", text.len() / 1024);
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(2) {
        let _ = black_box(Tree::parse(black_box(&text)).map(|t| t.docs.len()));
        n += 1;
    }
    println!(
        "{:<44} {:>8.2?}",
        "parse (with spans), mean",
        t.elapsed() / n
    );
    measure(
        "patch: image (replace one scalar)",
        &text,
        &last,
        &Edit::Image("registry.example/shop/svc:0.9.0".into()),
    );
    measure("patch: replicas", &text, &last, &Edit::Replicas(3));
    measure(
        "patch: memory (create limits and requests)",
        &text,
        &last,
        &Edit::Memory("512Mi".into()),
    );
}
