//! The shipped Prometheus rules: `promtool check rules` accepts them and
//! `promtool test rules` proves what fires when (Debian's `prometheus`
//! package; `.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("promtool is not installed (apt-get install prometheus; .ci/run does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn real_promtool_accepts_and_unit_tests_the_rules() {
    let checked = promtool(&["check", "rules", "heal8s-rules.yaml"]);
    assert!(checked.contains("SUCCESS: 12 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "heal8s-rules.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The trigger names are the ones heal8s's default policy routes on.
#[test]
fn the_default_policy_routes_on_the_shipped_triggers() {
    let rules = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/prometheus/heal8s-rules.yaml"),
    )
    .unwrap();
    let policy = receiver_core::policy::DEFAULT_POLICY_YAML;
    for alert in [
        "KubePodCrashLooping",
        "KubeContainerOOMKilled",
        "KubeHpaMaxedOut",
        "KubeNodeNotReady",
    ] {
        assert!(
            rules.contains(&format!("- alert: {alert}\n")),
            "{alert} not shipped"
        );
        assert!(
            policy.contains(alert),
            "the default policy does not route {alert}"
        );
    }
}
