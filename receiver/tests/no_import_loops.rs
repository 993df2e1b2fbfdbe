//! The modules of each crate form no loop: if `a` uses `b`, `b` does not use
//! `a`, directly or through others. (A module and its own submodules may use
//! each other; siblings may not loop.) Read from the sources, test code
//! excluded: a loop is where a change ripples both ways, and where a file
//! split did not really split.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, as (module path, text without tests and comments).
fn modules(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(dir).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts
                    .last()
                    .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
                {
                    parts.pop();
                }
                let text = std::fs::read_to_string(&p).unwrap();
                let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                let code: String = text
                    .lines()
                    .map(|l| l.split("//").next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n");
                out.insert(parts.join("::"), code);
            }
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The longest known module that `path` (`a::b::c`) names.
fn resolve(known: &BTreeSet<String>, path: &[&str]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| known.contains(m))
}

fn is_within(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.is_empty()
}

/// Edges `module → module it uses`, without ancestor/descendant pairs.
fn graph(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code) in mods {
        let parent: Vec<&str> = m.split("::").filter(|s| !s.is_empty()).collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        let mut add = |path: Vec<&str>| {
            if let Some(to) = resolve(&known, &path)
                && !is_within(&to, m)
                && !is_within(m, &to)
            {
                g.entry(m.clone()).or_default().insert(to);
            }
        };
        for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.to_vec())] {
            for (i, _) in code.match_indices(prefix) {
                let mut path = base.clone();
                let mut rest = &code[i + prefix.len()..];
                loop {
                    let id = ident_at(rest);
                    if id.is_empty() {
                        break;
                    }
                    path.push(id);
                    rest = &rest[id.len()..];
                    match rest.strip_prefix("::") {
                        Some(r) => rest = r,
                        None => break,
                    }
                }
                add(path);
            }
        }
    }
    g
}

/// A loop in `g`, if there is one, as the modules along it.
fn a_loop(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

fn crate_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn no_crate_has_an_import_loop() {
    for dir in ["core/src", "k8s/src", "src", "../gitops/src"] {
        let mods = modules(&crate_dir(dir));
        assert!(mods.len() > 3, "{dir}: no modules read");
        if let Some(c) = a_loop(&graph(&mods)) {
            panic!("{dir}: modules use each other in a loop: {}", c.join(" → "));
        }
    }
}

#[test]
fn the_check_finds_a_loop_between_siblings() {
    let mods: BTreeMap<String, String> = [
        ("", "pub mod a; pub mod b;"),
        ("a", "use crate::b::X; use super::b;"),
        ("b", "fn f() { crate::a::g() }"),
        ("d", "pub mod config; pub mod ns;"),
        ("d::config", "use super::ns::is_valid;"),
        ("d::ns", "use super::config::Cfg; use super::Finding;"),
    ]
    .into_iter()
    .map(|(m, c)| (m.to_string(), c.to_string()))
    .collect();
    let g = graph(&mods);
    // a module and its parent are not a loop
    assert!(!g.get("d::ns").unwrap().contains("d"));
    let c = a_loop(&g).unwrap();
    assert!(
        c == ["a", "b", "a"] || c == ["d::config", "d::ns", "d::config"],
        "{c:?}"
    );
    let mut without: BTreeMap<String, String> = mods.clone();
    without.insert("b".into(), String::new());
    let c = a_loop(&graph(&without)).unwrap();
    assert_eq!(c, ["d::config", "d::ns", "d::config"]);
    without.insert("d::config".into(), String::new());
    assert_eq!(a_loop(&graph(&without)), None);
}
