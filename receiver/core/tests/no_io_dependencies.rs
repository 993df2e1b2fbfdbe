//! Proves the compiler keeps receiver-core pure: none of its (transitive, normal)
//! dependencies is a Kubernetes client, an HTTP server or client, octocrab or tokio.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

const FORBIDDEN: &[&str] = &[
    "kube",
    "kube-client",
    "kube-runtime",
    "axum",
    "hyper",
    "reqwest",
    "octocrab",
    "tokio",
    "mio",
    "tower",
];

#[test]
fn receiver_core_has_no_io_dependencies() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            // only normal (non-dev, non-build) dependency edges count
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap())
                .collect();
            (n["id"].as_str().unwrap(), deps)
        })
        .collect();
    let root = names
        .iter()
        .find(|(_, n)| **n == "receiver-core")
        .map(|(id, _)| *id)
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if seen.insert(id) {
            stack.extend(nodes[id].iter().copied());
        }
    }
    let all: BTreeSet<&str> = seen.iter().map(|id| names[id]).collect();
    let bad: Vec<_> = FORBIDDEN.iter().filter(|f| all.contains(*f)).collect();
    assert!(
        bad.is_empty(),
        "receiver-core depends on {bad:?}; all: {all:?}"
    );
    // and the check itself sees real dependencies
    assert!(all.contains("serde") && all.contains("regex"), "{all:?}");
}
