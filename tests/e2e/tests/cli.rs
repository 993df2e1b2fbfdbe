//! The `heal8s` binary as users run it: `plan`, `check-config`, `serve` startup
//! errors and graceful shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use testkit::{Heal8s, TempDir, heal8s_bin};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../receiver/core/tests/fixtures")
        .join(name)
}

fn heal8s(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(heal8s_bin())
        .args(args)
        .env_remove("HEAL8S_WEBHOOK_TOKEN")
        .env_remove("HEAL8S_POLICY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn plan_prints_route_plan_and_guard_decision_for_each_alert() {
    let f = fixture("sample-webhook-from-prometheus.json");
    let (code, out, err) = heal8s(&["plan", "--alert", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("KubePodCrashLooping [firing] fingerprint 9a8c103d3a23f192"),
        "{out}"
    );
    assert!(
        out.contains("target: Pod shop/api-7d9c-x2 container api"),
        "{out}"
    );
    assert!(
        out.contains("route crashloop-delete-pod: delete-pod (direct) -> dry_run"),
        "{out}"
    );
    assert!(
        out.contains("route crashloop-rollback-image: rollback-image (pull-request) -> dry_run"),
        "{out}"
    );
}

#[test]
fn plan_of_a_resolved_payload_acts_on_nothing() {
    let f = fixture("sample-webhook-resolved.json");
    let (code, out, _) = heal8s(&["plan", "--alert", f.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["result"], "resolved");
}

#[test]
fn plan_applies_the_guard_to_a_protected_namespace() {
    let dir = TempDir::new("cli");
    let body = std::fs::read_to_string(fixture("sample-webhook.json"))
        .unwrap()
        .replace("\"namespace\": \"shop\"", "\"namespace\": \"kube-system\"");
    let p = dir.path().join("p.json");
    std::fs::write(&p, body).unwrap();
    let (code, out, _) = heal8s(&["plan", "--alert", p.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("refused [protected_namespace]"), "{out}");
}

#[test]
fn plan_with_a_bad_payload_names_the_problem() {
    let dir = TempDir::new("cli");
    let p = dir.path().join("bad.json");
    std::fs::write(&p, r#"{"version":"4","alerts":[{"status":"firing"}]}"#).unwrap();
    let (code, _, err) = heal8s(&["plan", "--alert", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("alerts[0]"), "{err}");
}

#[test]
fn check_config_lists_every_error_and_fails() {
    let dir = TempDir::new("cli");
    let p = dir.path().join("policy.yaml");
    std::fs::write(
        &p,
        "guard:\n  cooldown: soon\nroutes:\n  - remediation: drain-node\n    params: {timeout: 1s}\n  - remediation: bump-memory\n    mode: direct\n",
    )
    .unwrap();
    let (code, _, err) = heal8s(&["check-config", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("3 problem(s)"), "{err}");
    for path in [
        "guard.cooldown",
        "routes[0].params.timeout",
        "routes[1].mode",
    ] {
        assert!(err.contains(path), "{path} missing in {err}");
    }
}

#[test]
fn check_config_accepts_the_default_and_the_examples() {
    let dir = TempDir::new("cli");
    let p = dir.path().join("default.yaml");
    let (code, out, _) = heal8s(&["default-policy"]);
    assert_eq!(code, 0);
    std::fs::write(&p, out).unwrap();
    let (code, out, err) = heal8s(&["check-config", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK (12 routes"), "{out}");
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let mut n = 0;
    for e in std::fs::read_dir(&examples).unwrap() {
        let path = e.unwrap().path();
        let (code, _, err) = heal8s(&["check-config", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", path.display());
        n += 1;
    }
    assert!(
        n >= 2,
        "expected example policies in {}",
        examples.display()
    );
}

#[test]
fn serve_without_a_token_refuses_to_start() {
    let (code, _, err) = heal8s(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 1);
    assert!(err.contains("no webhook token configured"), "{err}");
}

#[test]
fn serve_with_an_invalid_policy_refuses_to_start() {
    let dir = TempDir::new("cli");
    let p = dir.path().join("policy.yaml");
    std::fs::write(&p, "routes: []\n").unwrap();
    let (code, _, err) = heal8s(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--insecure-no-auth",
        "--policy",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("routes: at least one route is required"),
        "{err}"
    );
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let mut h = Heal8s::start(
        "tok",
        &["--no-cluster", "--dry-run", "--log-format", "json"],
    )
    .await
    .unwrap();
    assert_eq!(h.metric("heal8s_dry_run").await, 1.0);
    h.proc.terminate();
    let code = h.proc.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{}", h.proc.output());
    let out = h.proc.output();
    assert!(out.contains("Shutdown complete."), "{out}");
    // every log line is a JSON object
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let serving = lines
        .iter()
        .find(|v| v["message"] == "heal8s is serving.")
        .expect("a startup line");
    assert_eq!(serving["level"], "INFO");
    assert_eq!(serving["dry_run"], true);
}

#[test]
fn the_crd_in_the_chart_is_what_heal8s_crd_prints() {
    let (code, out, err) = heal8s(&["crd"]);
    assert_eq!(code, 0, "{err}");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../charts/heal8s/crds/remediations.heal8s.io.yaml");
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == out,
        "{} is stale: regenerate it with `cargo run -p receiver --bin heal8s -- crd > {}`",
        path.display(),
        path.display()
    );
    assert!(out.contains("name: remediations.heal8s.io"));
    assert!(out.contains("jsonPath: .status.phase"));
}

#[test]
fn serve_refuses_a_record_ttl_shorter_than_the_guard_windows() {
    let (code, _, err) = heal8s(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--insecure-no-auth",
        "--no-cluster",
        "--record-ttl",
        "30m",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--record-ttl 30m must be longer"), "{err}");
}
