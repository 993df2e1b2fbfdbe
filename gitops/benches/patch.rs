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

fn main() {
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
