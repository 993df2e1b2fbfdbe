//! Kustomize edits proven by the real `kubectl kustomize`: heal8s locates the
//! workload in a manifest repository, writes the edit where the field is set
//! (an overlay's `images:` or `replicas:` entry, an overlay patch, the base),
//! and the build output carries the new value, for that overlay only when the
//! edit is in the overlay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::process::Command;

use gitops::locate::{Workload, edit_source, load_dir, locate};
use gitops::patch::Edit;
use gitops::yaml::{Seg, Tree, Value};
use testkit::{TempDir, kubectl_bin};

fn fixture_copy() -> TempDir {
    let dir = TempDir::new("kustomize");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gitops/tests/fixtures/repo");
    for (rel, text) in load_dir(&src).unwrap() {
        let path = dir.path().join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// `kubectl kustomize DIR`: the built Deployment's value at `path`.
fn built(repo: &Path, overlay: &str, path: &[Seg]) -> Value {
    let out = Command::new(kubectl_bin().unwrap())
        .arg("kustomize")
        .arg(repo.join(overlay))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let tree = Tree::parse(&text).unwrap();
    let deployment = tree
        .values()
        .unwrap()
        .into_iter()
        .find(|d| d.at(&[Seg::key("kind")]) == Some(&Value::Str("Deployment".into())))
        .unwrap();
    deployment.at(path).cloned().unwrap_or(Value::Null)
}

fn container(i: usize, rest: &[&str]) -> Vec<Seg> {
    let mut p = vec![
        Seg::key("spec"),
        Seg::key("template"),
        Seg::key("spec"),
        Seg::key("containers"),
        Seg::Index(i),
    ];
    p.extend(rest.iter().map(|k| Seg::key(k)));
    p
}

fn apply(repo: &Path, ns: &str, name: &str, container: Option<&str>, edit: Edit) -> String {
    let files = load_dir(repo).unwrap();
    let w = Workload {
        kind: "Deployment".into(),
        namespace: Some(ns.into()),
        name: name.into(),
        source_annotation: None,
    };
    let source = locate(&files, &w, &[], None).unwrap();
    let e = edit_source(&files, &source, container, &edit).unwrap();
    std::fs::write(repo.join(&e.file), &e.text).unwrap();
    e.file
}

#[test]
fn real_kubectl_kustomize_builds_the_edited_overlay() {
    let dir = fixture_copy();
    let repo = dir.path();
    let image = container(0, &["image"]);
    let memory = container(0, &["resources", "limits", "memory"]);
    let replicas = [Seg::key("spec"), Seg::key("replicas")];
    assert_eq!(
        built(repo, "overlays/prod", &image),
        Value::Str("registry.example/api:1.1.0".into())
    );

    let file = apply(
        repo,
        "prod",
        "prod-api",
        Some("app"),
        Edit::Image("registry.example/api:1.0.9".into()),
    );
    assert_eq!(file, "overlays/prod/kustomization.yaml");
    assert_eq!(
        built(repo, "overlays/prod", &image),
        Value::Str("registry.example/api:1.0.9".into())
    );

    let file = apply(
        repo,
        "prod",
        "prod-api",
        None,
        Edit::ScaleUp {
            percent: 50,
            cap: 20,
        },
    );
    assert_eq!(file, "overlays/prod/kustomization.yaml");
    assert_eq!(built(repo, "overlays/prod", &replicas), Value::Int(5));

    let file = apply(
        repo,
        "prod",
        "prod-api",
        Some("app"),
        Edit::Memory("1Gi".into()),
    );
    assert_eq!(file, "overlays/prod/memory.yaml");
    assert_eq!(
        built(repo, "overlays/prod", &memory),
        Value::Str("1Gi".into())
    );
    assert_eq!(
        built(
            repo,
            "overlays/prod",
            &container(0, &["resources", "requests", "memory"])
        ),
        Value::Str("1Gi".into())
    );

    // staging was not touched by any of that
    assert_eq!(
        built(repo, "overlays/staging", &image),
        Value::Str("registry.example/api:1.0.0".into())
    );
    assert_eq!(built(repo, "overlays/staging", &replicas), Value::Int(1));
    assert_eq!(
        built(repo, "overlays/staging", &memory),
        Value::Str("256Mi".into())
    );
}

#[test]
fn real_kubectl_kustomize_builds_an_edited_base() {
    let dir = fixture_copy();
    let repo = dir.path();
    let file = apply(repo, "staging", "api", Some("app"), Edit::Image("registry.example/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into()));
    assert_eq!(file, "base/deployment.yaml");
    assert_eq!(
        built(repo, "overlays/staging", &container(0, &["image"])),
        Value::Str("registry.example/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into())
    );
    let file = apply(repo, "staging", "api", None, Edit::Replicas(2));
    assert_eq!(file, "base/deployment.yaml");
    assert_eq!(
        built(
            repo,
            "overlays/staging",
            &[Seg::key("spec"), Seg::key("replicas")]
        ),
        Value::Int(2)
    );
    // prod's own replicas entry still wins there
    assert_eq!(
        built(
            repo,
            "overlays/prod",
            &[Seg::key("spec"), Seg::key("replicas")]
        ),
        Value::Int(3)
    );
}
