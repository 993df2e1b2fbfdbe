//! The apply-on-merge workflow's steps run here with bash, in a checkout
//! with stub `gh` and `kubectl` commands that record what they were asked
//! (`kubectl kustomize` is passed to the real kubectl). Shared by the test
//! files that run the workflow; no assertions of its own.

#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;

use gitops::yaml::{Seg, Tree, Value};
use testkit::TempDir;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn workflow() -> Value {
    let text = std::fs::read_to_string(root().join(".github/workflows/heal8s-apply.yml")).unwrap();
    let tree = Tree::parse(&text).unwrap();
    tree.values().unwrap().remove(0)
}

pub fn steps() -> Vec<Value> {
    match workflow().at(&[Seg::key("jobs"), Seg::key("apply"), Seg::key("steps")]) {
        Some(Value::Seq(s)) => s.clone(),
        other => panic!("{other:?}"),
    }
}

/// The `run:` script of the step named `name`.
pub fn script(name: &str) -> String {
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

/// A ConfigMap manifest.
pub fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
}

/// The default checkout: a plain manifest, a kustomize overlay over a base,
/// an overlay that does not build the base, a values file and a file outside
/// the usual roots.
pub fn default_files() -> Vec<(String, String)> {
    [
        ("apps/web/deployment.yaml", config_map("web")),
        (
            "overlays/prod/kustomization.yaml",
            "resources:\n  - ../../base\nnamePrefix: prod-\n".to_string(),
        ),
        (
            "overlays/other/kustomization.yaml",
            "resources:\n  - other.yaml\n".to_string(),
        ),
        ("overlays/other/other.yaml", config_map("other")),
        (
            "base/kustomization.yaml",
            "resources:\n  - deployment.yaml\n".to_string(),
        ),
        ("base/deployment.yaml", config_map("api")),
        ("charts/x/values.yaml", "replicas: 1\n".to_string()),
        ("secret/x.yaml", config_map("x")),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t))
    .collect()
}

/// What a step did.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    /// `targets.txt`: what the later steps apply.
    pub targets: String,
    /// The step's `GITHUB_OUTPUT`.
    pub output: String,
    /// Its stdout and stderr, then the stub commands' calls.
    pub log: String,
}

/// A repository checkout with stub `gh` and `kubectl` on PATH.
#[derive(Debug)]
pub struct Sandbox {
    pub dir: TempDir,
}

impl Sandbox {
    /// [`default_files`], and `changed` as the pull request's changed files.
    pub fn new(changed: &[&str]) -> Sandbox {
        Sandbox::with_files(&default_files(), changed)
    }

    /// A checkout of `files`; the pull request changed `changed`.
    pub fn with_files(files: &[(String, String)], changed: &[&str]) -> Sandbox {
        let dir = TempDir::new("workflow");
        let d = dir.path();
        for (f, text) in files {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), text).unwrap();
        }
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::write(d.join("changed"), changed.join("\n") + "\n").unwrap();
        let gh = "#!/bin/sh\necho \"gh $*\" >> \"$LOG\"\ncase \"$1\" in api) grep -v '^$' \"$CHANGED\";; esac\nexit 0\n";
        let kubectl = "#!/bin/sh\n\
            case \"$1\" in kustomize) [ -n \"$REAL_KUBECTL\" ] || { echo 'no real kubectl' >&2; exit 3; }; exec \"$REAL_KUBECTL\" \"$@\";; esac\n\
            echo \"kubectl $*\" >> \"$LOG\"\n\
            case \"$*\" in *dry-run=server*fail*) exit 1;; diff*) exit 1;; esac\nexit 0\n";
        for (name, body) in [("gh", gh), ("kubectl", kubectl)] {
            let p = d.join("bin").join(name);
            std::fs::write(&p, body).unwrap();
            Command::new("chmod").arg("+x").arg(&p).status().unwrap();
        }
        Sandbox { dir }
    }

    /// Run step `step` with the pull request `body` and `roots`; `env` adds
    /// or overrides variables (the step's own `env:`).
    pub fn run(&self, step: &str, body: &str, roots: &str, env: &[(&str, &str)]) -> Run {
        let d = self.dir.path();
        let real = testkit::kubectl_bin()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let _ = std::fs::remove_file(d.join("tmp/output"));
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
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
            .env("REAL_KUBECTL", real)
            .env("LOG", d.join("log"))
            .env("CHANGED", d.join("changed"))
            .env("RUNNER_TEMP", d.join("tmp"))
            .env("GITHUB_OUTPUT", d.join("tmp/output"))
            .env("REPO", "acme/manifests")
            .env("PR", "7")
            .env("PR_BODY", body)
            .env("ROOTS", roots)
            .env("HEAL8S_NAMESPACE", "heal8s")
            .env("ENVIRONMENT", "prod")
            .env("RECORD", "bump-memory-shop-web-1a2b")
            .env("RECORD_NAMESPACE", "shop");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        Run {
            ok: out.status.success(),
            targets: std::fs::read_to_string(d.join("tmp/targets.txt")).unwrap_or_default(),
            output: std::fs::read_to_string(d.join("tmp/output")).unwrap_or_default(),
            log: String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr)
                + &std::fs::read_to_string(d.join("log")).unwrap_or_default(),
        }
    }
}

/// A body ending in the markers block heal8s writes, holding `markers`.
pub fn body_with_block(text: &str, markers: &[&str]) -> String {
    let mut b = format!("{text}\n\n<!-- heal8s-markers -->\n");
    for m in markers {
        b.push_str(m);
        b.push('\n');
    }
    b.push_str("<!-- /heal8s-markers -->\n");
    b
}
