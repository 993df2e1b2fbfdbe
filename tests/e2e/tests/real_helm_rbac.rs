//! The Helm chart's RBAC against what heal8s really asks of the API: heal8s
//! (two-replica leader election on, the test-cluster profile's features)
//! handles the demo scenario against the Kubernetes API emulation, which logs
//! every request; each one must be allowed by the ClusterRoles and Roles the
//! chart renders for `profile=test-cluster, replicas=2`, bound to heal8s's
//! ServiceAccount, evaluated as the API server's RBAC authorizer does. And
//! the production profile's RBAC must refuse what only the test-cluster
//! features need.
//!
//! Needs the chart tools (`scripts/chart-check.py render`: helm-python-sdk
//! and the harness's helmlite.py; `.ci/run` installs them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use receiver_core::{OutcomeKind, RemediationKind};
use serde_json::Value;
use testkit::github::GithubEmulator;
use testkit::kube::Emulator;
use testkit::scenario::{self, Problems, REPOSITORY};
use testkit::{Heal8s, eventually};

const TOKEN: &str = "rbac-e2e-token";
const NAMESPACE: &str = "heal8s";

/// The chart's objects rendered with `sets`, as JSON.
fn render(sets: &[&str]) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("scripts/chart-check.py")).args([
        "render",
        "--namespace",
        NAMESPACE,
        "--name",
        "heal8s",
    ]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.current_dir(&root).output().unwrap();
    assert!(
        out.status.success(),
        "chart render failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One API request in RBAC terms.
#[derive(Debug, Clone)]
struct Attributes {
    verb: String,
    group: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
}

/// A resource request's attributes, or `None` for discovery and other
/// non-resource paths (allowed to every authenticated user).
fn attributes(verb: &str, path: &str) -> Option<Attributes> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", g, _v, rest @ ..] if !rest.is_empty() => (*g, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() => (Some(ns.to_string()), r),
        r => (None, r),
    };
    let (resource, name, sub) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s] => (*r, Some(n.to_string()), Some(*s)),
        _ => panic!("unexpected path {path}"),
    };
    // a namespace object is named in the namespace position of its own path
    let (namespace, name) = if resource == "namespaces" {
        (None, name)
    } else {
        (namespace, name)
    };
    Some(Attributes {
        verb: verb.to_string(),
        group: group.to_string(),
        resource: match sub {
            Some(s) => format!("{resource}/{s}"),
            None => resource.to_string(),
        },
        namespace,
        name,
    })
}

fn has(list: &Value, want: &str) -> bool {
    list.as_array()
        .is_some_and(|a| a.iter().any(|v| v == want || v == "*"))
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    has(&rule["apiGroups"], &a.group)
        && has(&rule["resources"], &a.resource)
        && has(&rule["verbs"], &a.verb)
        && match rule["resourceNames"].as_array() {
            None => true,
            Some(names) if names.is_empty() => true,
            Some(names) => a
                .name
                .as_deref()
                .is_some_and(|n| names.iter().any(|x| x == n)),
        }
}

/// Whether the objects' RBAC lets heal8s's ServiceAccount make the request.
fn allowed(objects: &[Value], a: &Attributes) -> bool {
    let bound = |binding: &Value| {
        binding["subjects"].as_array().is_some_and(|s| {
            s.iter().any(|x| {
                x["kind"] == "ServiceAccount"
                    && x["name"] == "heal8s"
                    && x["namespace"] == NAMESPACE
            })
        })
    };
    let role = |kind: &str, name: &Value, ns: Option<&str>| {
        objects.iter().find(|o| {
            o["kind"] == kind
                && &o["metadata"]["name"] == name
                && ns.is_none_or(|n| o["metadata"]["namespace"] == n)
        })
    };
    objects.iter().any(|b| {
        if !bound(b) {
            return false;
        }
        let rules = match b["kind"].as_str() {
            Some("ClusterRoleBinding") => role("ClusterRole", &b["roleRef"]["name"], None),
            Some("RoleBinding") => {
                let ns = b["metadata"]["namespace"].as_str().unwrap_or("");
                if a.namespace.as_deref() != Some(ns) {
                    return false;
                }
                role(
                    b["roleRef"]["kind"].as_str().unwrap_or(""),
                    &b["roleRef"]["name"],
                    (b["roleRef"]["kind"] == "Role").then_some(ns),
                )
            }
            _ => None,
        };
        rules.is_some_and(|r| {
            r["rules"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|rule| rule_allows(rule, a)))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_helm_rbac_allows_every_request_heal8s_makes_and_production_refuses_cleanup() {
    let test_cluster = render(&["profile=test-cluster", "replicas=2"]);
    let production = render(&["replicas=2"]);

    let kube = Emulator::start().await.unwrap();
    scenario::seed(&kube, Problems::all()).unwrap();
    let gh = GithubEmulator::start().await.unwrap();
    gh.create_repo("acme", "manifests", 7).unwrap();
    gh.put_files(REPOSITORY, "main", &scenario::manifest_files(), "manifests")
        .unwrap();
    let (h, _files) = Heal8s::start_against(
        TOKEN,
        &kube,
        &gh,
        scenario::POLICY,
        &[
            "--namespace",
            NAMESPACE,
            "--leader-elect",
            "--pod-name",
            "heal8s-0",
        ],
    )
    .await
    .unwrap();
    // every kind of action the scenario calls for has run
    let done = eventually(
        Duration::from_secs(60),
        "the scenario to be handled",
        || async {
            let acted: Vec<RemediationKind> = h
                .outcomes()
                .await
                .into_iter()
                .filter(|o| o.result == OutcomeKind::Acted)
                .filter_map(|o| o.remediation)
                .collect();
            [
                RemediationKind::DeletePod,
                RemediationKind::DrainNode,
                RemediationKind::CleanupResource,
                RemediationKind::DeleteNamespace,
                RemediationKind::BumpMemory,
            ]
            .iter()
            .all(|r| acted.iter().any(|a| a == r))
            .then_some(())
        },
    )
    .await;
    if let Err(e) = done {
        panic!("{e}\n{:#?}\n{}", h.outcomes().await, h.proc.output());
    }
    // and a record was written and settled
    tokio::time::sleep(Duration::from_secs(2)).await;

    let requests = kube.requests();
    let mut checked = 0;
    let mut denied = Vec::new();
    let mut verbs = std::collections::BTreeSet::new();
    for r in &requests {
        let Some(a) = attributes(&r.verb, &r.path) else {
            continue;
        };
        checked += 1;
        verbs.insert(format!("{} {}/{}", a.verb, a.group, a.resource));
        if !allowed(&test_cluster, &a) {
            denied.push(format!("{} {}?{} -> {a:?}", r.method, r.path, r.query));
        }
    }
    assert!(
        denied.is_empty(),
        "the chart's RBAC denies {} of {checked} requests:\n{}\n(all kinds seen: {verbs:#?})",
        denied.len(),
        denied.join("\n")
    );
    // the scenario exercised the write paths, so this proves something
    for want in [
        "delete /pods",
        "create /pods/eviction",
        "patch /nodes",
        "delete /namespaces",
        "delete kubevirt.io/virtualmachines",
        "create heal8s.io/remediations",
        "patch heal8s.io/remediations/status",
        "create coordination.k8s.io/leases",
    ] {
        assert!(verbs.contains(want), "no {want:?} request in {verbs:#?}");
    }

    // production grants none of the test-cluster cleanup
    for (verb, group, resource, ns) in [
        ("delete", "", "namespaces", None),
        ("delete", "kubevirt.io", "virtualmachines", Some("vms")),
        ("delete", "", "nodes", None),
    ] {
        let a = Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: ns.map(str::to_string),
            name: Some("x".into()),
        };
        assert!(!allowed(&production, &a), "production allows {a:?}");
        assert!(allowed(&test_cluster, &a) || resource == "nodes", "{a:?}");
    }
    // and a Lease other than heal8s's is not heal8s's to touch
    let other_lease = Attributes {
        verb: "patch".into(),
        group: "coordination.k8s.io".into(),
        resource: "leases".into(),
        namespace: Some(NAMESPACE.into()),
        name: Some("someone-elses".into()),
    };
    assert!(!allowed(&test_cluster, &other_lease));
}
