//! Hostile files: the patcher's work is bounded, and each limit is named in
//! the refusal (file size, nodes, anchors, aliases, scalar size, alias
//! expansion, depth). The time and memory such files cost are measured by
//! the `patch` bench (`make bench`), not here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gitops::patch::{Edit, Target, patch};
use gitops::yaml::{MAX_ANCHORS, MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, MAX_SCALAR_BYTES, Tree};

fn deploy() -> Target {
    Target::Manifest {
        kind: "Deployment".into(),
        name: "web".into(),
        namespace: None,
        container: None,
    }
}

/// A valid Deployment `web` followed by `tail` at the top level.
fn manifest_with(tail: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - name: app\n        image: app:1\n{tail}"
    )
}

/// Patch `text` and return the refusal's text (it must be refused).
fn refused(text: &str) -> String {
    match patch(text, &deploy(), &Edit::Replicas(2)) {
        Ok(p) => panic!("patched a hostile file ({} bytes)", p.text.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_limit_is_named_in_the_refusal() {
    let big = "x".repeat(MAX_FILE_BYTES);
    let cases: Vec<(String, &str)> = vec![
        // a single-line flow document larger than the file limit
        (format!("a: [{big}]\n"), "limit on file size"),
        // many small nodes in a flow sequence
        (
            manifest_with(&format!("extra: [{}]\n", "1,".repeat(MAX_NODES))),
            "limit on nodes",
        ),
        (
            manifest_with(
                &(0..=MAX_ANCHORS)
                    .map(|i| format!("a{i}: &a{i} v\n"))
                    .collect::<String>(),
            ),
            "limit on anchors",
        ),
        (
            manifest_with(&format!(
                "base: &b v\nmany: [{}]\n",
                "*b,".repeat(MAX_ANCHORS + 1)
            )),
            "limit on aliases",
        ),
        (
            manifest_with(&format!("blob: {}\n", "y".repeat(MAX_SCALAR_BYTES + 1))),
            "limit on scalar size",
        ),
        (
            manifest_with(&format!(
                "deep: {}1{}\n",
                "[".repeat(MAX_DEPTH + 1),
                "]".repeat(MAX_DEPTH + 1)
            )),
            // the parser's own depth limit stops it first
            "recursion limit",
        ),
    ];
    for (text, says) in &cases {
        let e = refused(text);
        assert!(e.contains(says), "{says}: {e}");
    }
}

#[test]
fn a_billion_laughs_is_refused_not_expanded() {
    let mut text = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    let e = refused(&manifest_with(&text));
    assert!(e.contains("too large"), "{e}");
}

#[test]
fn files_just_under_the_limits_are_still_edited() {
    // within every limit: edited as usual
    let tail: String = (0..MAX_ANCHORS - 1)
        .map(|i| format!("a{i}: &a{i} v{i}\n"))
        .collect();
    let text = manifest_with(&tail);
    assert!(text.len() < MAX_FILE_BYTES);
    let out = patch(&text, &deploy(), &Edit::Replicas(2)).unwrap();
    assert!(out.text.contains("  replicas: 2\n"));
    assert!(Tree::parse(&format!("s: {}\n", "y".repeat(MAX_SCALAR_BYTES - 8))).is_ok());
}
