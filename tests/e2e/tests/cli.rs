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
        .env_remove("HEAL8S_CLUSTER_NAME")
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
    // its alerts carry `cluster: harness`, the capturing Prometheus's external label
    let f = fixture("sample-webhook-from-prometheus.json");
    let (code, out, err) = heal8s(&[
        "plan",
        "--cluster-name",
        "harness",
        "--alert",
        f.to_str().unwrap(),
    ]);
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
        out.contains("route crashloop-delete-pod: delete-pod (direct) -> observed"),
        "{out}"
    );
    assert!(
        out.contains("route crashloop-rollback-image: rollback-image (propose) -> observed"),
        "{out}"
    );
}

#[test]
fn plan_refuses_alerts_about_another_cluster_or_an_unnamed_one() {
    let f = fixture("sample-webhook-from-prometheus.json");
    let (code, out, err) = heal8s(&["plan", "--alert", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("-> refused [wrong_cluster]"), "{out}");
    assert!(out.contains("set --cluster-name"), "{out}");
    assert!(!out.contains("-> observed"), "{out}");
    let (code, out, err) = heal8s(&[
        "plan",
        "--cluster-name",
        "prod-eu-1",
        "--alert",
        f.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("refused [wrong_cluster]: the alert is about cluster \"harness\""),
        "{out}"
    );
    assert!(!out.contains("-> observed"), "{out}");
    let (code, _, err) = heal8s(&[
        "plan",
        "--cluster-name",
        " harness",
        "--alert",
        f.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--cluster-name"), "{err}");
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
    assert!(out.contains("OK (13 routes"), "{out}");
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
fn the_remediation_policy_crd_in_the_chart_is_what_heal8s_crd_prints() {
    let (code, out, err) = heal8s(&["crd", "--kind", "remediation-policy"]);
    assert_eq!(code, 0, "{err}");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../charts/heal8s/crds/remediationpolicies.heal8s.io.yaml");
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == out,
        "{} is stale: regenerate it with `cargo run -p receiver --bin heal8s -- crd --kind remediation-policy > {}`",
        path.display(),
        path.display()
    );
    assert!(out.contains("kind: RemediationPolicy"), "{out}");
    let (code, _, err) = heal8s(&["crd", "--kind", "nonsense"]);
    assert_ne!(code, 0);
    assert!(err.contains("nonsense"), "{err}");
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

/// `/policy` answers only a token, and what it serves is a policy file:
/// `heal8s check-config` accepts it. The read token reads but cannot post.
#[tokio::test]
async fn the_served_policy_needs_a_token_and_passes_check_config() {
    let dir = TempDir::new("served-policy");
    let read_token = dir.path().join("read-token");
    std::fs::write(&read_token, "dashboard-token\n").unwrap();
    let policy =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies/production.yaml");
    let h = Heal8s::start(
        "tok",
        &[
            "--no-cluster",
            "--policy",
            policy.to_str().unwrap(),
            "--read-token-file",
            read_token.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{}{path}", h.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for path in ["/policy", "/outcomes"] {
        assert_eq!(get(path, None).await.unwrap().status(), 401, "{path}");
        assert_eq!(
            get(path, Some("dashboard-token")).await.unwrap().status(),
            200,
            "{path}"
        );
    }
    assert_eq!(get("/metrics", None).await.unwrap().status(), 200);
    let alert: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("sample-webhook.json")).unwrap())
            .unwrap();
    assert_eq!(h.post_webhook("dashboard-token", &alert).await, 403);

    let served = h.policy().await;
    let file = dir.path().join("served.json");
    std::fs::write(&file, serde_json::to_string_pretty(&served).unwrap()).unwrap();
    let (code, out, err) = heal8s(&["check-config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}\n{served:#}");
    assert!(out.contains("OK (10 routes"), "{out}");
}

#[test]
fn serve_refuses_a_read_token_that_is_the_webhook_token_or_without_auth() {
    let (code, _, err) = heal8s(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--webhook-token",
        "same",
        "--read-token",
        "same",
        "--no-cluster",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the read token equals the webhook token"),
        "{err}"
    );
    let (code, _, err) = heal8s(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--insecure-no-auth",
        "--read-token",
        "r",
        "--no-cluster",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("reads are open"), "{err}");
}
