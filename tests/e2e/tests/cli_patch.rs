//! `heal8s patch` as users run it: the new text, the diff, in place, standard
//! input, the policy's parameters, and the documented exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write;
use std::process::{Command, Stdio};

use testkit::{TempDir, heal8s_bin};

const DEPLOY: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2 # matches the HPA floor
  template:
    spec:
      containers:
      - name: app
        image: registry.example/app:1.4.2
        resources:
          limits:
            memory: 1Gi # raised after the March incident
";

fn heal8s(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(heal8s_bin())
        .args(args)
        .env_remove("HEAL8S_POLICY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn file(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn prints_the_new_text_and_says_what_changed() {
    let dir = TempDir::new("patch");
    let f = file(&dir, "deploy.yaml", DEPLOY);
    let (code, out, err) = heal8s(
        &[
            "patch",
            &f,
            "--kind",
            "Deployment",
            "--name",
            "web",
            "--namespace",
            "shop",
            "--bump-memory",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    // 1Gi × 1.2 = 1228.8Mi, rounded up to 64Mi = 1280Mi, written in Mi (not exact in Gi)
    assert_eq!(out, DEPLOY.replace("memory: 1Gi #", "memory: 1280Mi #"));
    assert!(
        err.contains("resources.limits.memory 1Gi -> 1280Mi"),
        "{err}"
    );
    assert!(err.contains("from the current limit 1Gi"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        DEPLOY,
        "the file is untouched"
    );
}

#[test]
fn prints_a_unified_diff() {
    let dir = TempDir::new("patch");
    let f = file(&dir, "deploy.yaml", DEPLOY);
    let (code, out, err) = heal8s(
        &[
            "patch",
            &f,
            "--kind",
            "Deployment",
            "--name",
            "web",
            "--image",
            "registry.example/app:1.4.1",
            "--diff",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("-        image: registry.example/app:1.4.2\n+        image: registry.example/app:1.4.1\n"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
            .count(),
        2,
        "{out}"
    );
}

#[test]
fn writes_in_place_and_reads_standard_input() {
    let dir = TempDir::new("patch");
    let f = file(&dir, "deploy.yaml", DEPLOY);
    let (code, out, err) = heal8s(
        &[
            "patch",
            &f,
            "--kind",
            "Deployment",
            "--name",
            "web",
            "--scale-up",
            "--in-place",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        DEPLOY.replace("replicas: 2 #", "replicas: 3 #")
    );
    let (code, out, err) = heal8s(
        &[
            "patch",
            "-",
            "--kind",
            "Deployment",
            "--name",
            "web",
            "--replicas",
            "4",
        ],
        Some(DEPLOY),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replicas: 4 # matches"), "{out}");
}

#[test]
fn policy_parameters_drive_the_rules() {
    let dir = TempDir::new("patch");
    let f = file(&dir, "deploy.yaml", DEPLOY);
    let policy = file(
        &dir,
        "policy.yaml",
        "routes:\n  - matchers: ['alertname=\"X\"']\n    remediation: bump-memory\n    mode: pull-request\n    params: {factor: 2.0, step: 100Mi, max: 1536Mi}\n  - matchers: ['alertname=\"Y\"']\n    remediation: scale-up\n    mode: pull-request\n    params: {percent: 100, maxReplicas: 10}\n",
    );
    let (code, out, err) = heal8s(
        &[
            "patch",
            &f,
            "--kind",
            "Deployment",
            "--name",
            "web",
            "--bump-memory",
            "--policy",
            &policy,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("memory: 1536Mi #"),
        "capped at the policy's max: {out}"
    );
    let (code, out, err) = heal8s(
        &[
            "patch",
            &f,
            "--kind",
            "Deployment",
            "--name",
            "web",
            "--scale-up",
            "--policy",
            &policy,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replicas: 4 #"), "{out}");
}

#[test]
fn exit_codes_say_why_nothing_was_written() {
    let dir = TempDir::new("patch");
    let f = file(&dir, "deploy.yaml", DEPLOY);
    let run = |extra: &[&str]| {
        let mut args = vec!["patch", f.as_str()];
        args.extend_from_slice(extra);
        heal8s(&args, None)
    };
    // 1: refused, with the reason and the candidates
    let (code, _, err) = run(&["--kind", "Deployment", "--name", "api", "--replicas", "3"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no Deployment api") && err.contains("Deployment web in namespace shop"),
        "{err}"
    );
    let (code, _, err) = run(&["--kind", "Deployment", "--name", "web", "--replicas", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("never lowers"), "{err}");
    let (code, _, err) = run(&["--kind", "Deployment", "--name", "web", "--memory", "lots"]);
    assert_eq!(code, 1);
    assert!(err.contains("\"lots\" is not a memory quantity"), "{err}");
    // 2: a command-line error names the flag
    let (code, _, err) = run(&["--kind", "Deployment", "--name", "web"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&[
        "--kind",
        "Deployment",
        "--name",
        "web",
        "--replicas",
        "3",
        "--image",
        "x:1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--image"), "{err}");
    // 3: nothing to change
    let (code, _, err) = run(&["--kind", "Deployment", "--name", "web", "--replicas", "2"]);
    assert_eq!(code, 3, "{err}");
    // 4: at the cap
    let tiny = file(
        &dir,
        "tiny.yaml",
        "routes:\n  - matchers: ['alertname=\"X\"']\n    remediation: bump-memory\n    mode: pull-request\n    params: {max: 1Gi, default: 512Mi}\n",
    );
    let (code, _, err) = run(&[
        "--kind",
        "Deployment",
        "--name",
        "web",
        "--bump-memory",
        "--policy",
        &tiny,
    ]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("escalate"), "{err}");
    // every refusal leaves the file as it was
    assert_eq!(std::fs::read_to_string(&f).unwrap(), DEPLOY);
    let (code, _, err) = run(&[
        "--kind",
        "Deployment",
        "--name",
        "web",
        "--replicas",
        "1",
        "--in-place",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), DEPLOY);
}

#[test]
fn helm_values_by_values_path() {
    let dir = TempDir::new("patch");
    let values = "replicaCount: 1\nimage:\n  repository: bitnami/redis\n  tag: \"7.2.4\"\nmetrics:\n  resources: {}\n";
    let f = file(&dir, "values.yaml", values);
    let (code, out, err) = heal8s(
        &[
            "patch",
            &f,
            "--values-path",
            ".",
            "--image",
            "bitnami/redis:7.2.3",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, values.replace("\"7.2.4\"", "\"7.2.3\""));
    let (code, out, err) = heal8s(
        &["patch", &f, "--values-path", "metrics", "--memory", "256Mi"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("resources: {limits: {memory: 256Mi}, requests: {memory: 256Mi}}"),
        "{out}"
    );
}

fn fixture_repo() -> TempDir {
    let dir = TempDir::new("patch-repo");
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gitops/tests/fixtures/repo");
    for (rel, text) in gitops::locate::load_dir(&src).unwrap() {
        let path = dir.path().join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn a_repository_checkout_is_searched_and_the_right_file_edited() {
    let dir = fixture_repo();
    let repo = dir.path().to_str().unwrap();
    let (code, out, err) = heal8s(
        &[
            "patch",
            "--repo",
            repo,
            "--kind",
            "Deployment",
            "--name",
            "prod-api",
            "--namespace",
            "prod",
            "--container",
            "app",
            "--image",
            "registry.example/api:1.0.9",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            "--- a/overlays/prod/kustomization.yaml\n+++ b/overlays/prod/kustomization.yaml\n"
        ),
        "{out}"
    );
    assert!(out.contains("-    newTag: \"1.1.0\" # promoted on Monday\n+    newTag: \"1.0.9\" # promoted on Monday\n"), "{out}");
    // --in-place writes that file and nothing else
    let before = gitops::locate::load_dir(dir.path()).unwrap();
    let (code, _, err) = heal8s(
        &[
            "patch",
            "--repo",
            repo,
            "--kind",
            "Deployment",
            "--name",
            "api",
            "--namespace",
            "staging",
            "--container",
            "app",
            "--memory",
            "1Gi",
            "--in-place",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "note: base/deployment.yaml is a base that overlays/prod/kustomization.yaml also builds"
        ),
        "{err}"
    );
    let after = gitops::locate::load_dir(dir.path()).unwrap();
    let changed: Vec<&String> = after.keys().filter(|k| after[*k] != before[*k]).collect();
    assert_eq!(changed, vec!["base/deployment.yaml"]);
}

#[test]
fn a_sources_file_maps_workloads_and_bad_ones_are_named() {
    let dir = fixture_repo();
    let repo = dir.path().to_str().unwrap();
    let sources = file(
        &dir,
        "sources.yaml",
        "sources:\n  - namespace: cache\n    name: redis*\n    path: charts/redis/values.yaml\n    valuesPath: .\n",
    );
    let (code, out, err) = heal8s(
        &[
            "patch",
            "--repo",
            repo,
            "--sources",
            &sources,
            "--kind",
            "StatefulSet",
            "--name",
            "redis-master",
            "--namespace",
            "cache",
            "--replicas",
            "3",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("-replicaCount: 1\n+replicaCount: 3\n"),
        "{out}"
    );
    let bad = file(
        &dir,
        "bad.yaml",
        "sources:\n  - namespace: cache\n    pth: x\n",
    );
    let (code, _, err) = heal8s(
        &[
            "patch",
            "--repo",
            repo,
            "--sources",
            &bad,
            "--kind",
            "StatefulSet",
            "--name",
            "redis",
            "--replicas",
            "3",
        ],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sources[0].pth: unknown field"), "{err}");
    let (code, _, err) = heal8s(
        &[
            "patch",
            "--repo",
            repo,
            "--kind",
            "Deployment",
            "--name",
            "nope",
            "--replicas",
            "3",
        ],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Deployment nope is declared nowhere"), "{err}");
}

#[test]
fn a_file_past_the_size_limit_is_refused_without_reading_it_all() {
    let dir = TempDir::new("patch");
    // 1 GiB, sparse: heal8s reads one byte past the limit, not the file
    let path = dir.path().join("huge.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (code, out, err) = heal8s(
        &[
            "patch",
            path.to_str().unwrap(),
            "--kind",
            "Deployment",
            "--name",
            "web",
            "--replicas",
            "3",
        ],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("larger than the 4 MiB limit on file size"),
        "{err}"
    );
    // just under the limit is read (and refused for what it is, not its size)
    let f = file(
        &dir,
        "big.yaml",
        &format!("{DEPLOY}# {}\n", "x".repeat(4 << 20 >> 1)),
    );
    let (code, _, err) = heal8s(
        &[
            "patch",
            &f,
            "--kind",
            "Deployment",
            "--name",
            "web",
            "--replicas",
            "3",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
}
