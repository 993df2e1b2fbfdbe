//! The docs keep up with the code: every flag and environment variable of the
//! `heal8s` CLI is in docs/cli.md, every refusal reason in docs/safety.md or
//! docs/http.md, every metric heal8s registers in docs/metrics.md, every
//! remediation in docs/actions.md or docs/policy.md, every key of the shipped
//! policies (as `/policy` serves them) in docs/policy.md, and every relative link
//! of README.md, CONTRIBUTING.md and docs/*.md reaches a file (and heading).
//!
//! Reads the markdown files and asks the code (clap, the metrics registry,
//! the core's `ALL` lists); never edits anything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use receiver::cli::Cli;
use receiver::metrics::Metrics;
use receiver_core::{RefusalReason, RemediationKind};

/// The workspace root (receiver/ is one level down).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("receiver/ has a parent")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// Whether `word` occurs in `text` not as part of a longer name: the
/// characters around it are not letters, digits, `_` or `-`.
fn mentions(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// Every `(command path, --long flag, env var)` of the CLI, subcommands included.
fn cli_args() -> Vec<(String, String, Option<String>)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String, Option<String>)>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                if long == "help" || long == "version" {
                    continue;
                }
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                out.push((path.to_string(), format!("--{long}"), env));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), "heal8s", &mut out);
    out
}

#[test]
fn every_cli_flag_and_environment_variable_is_in_docs_cli() {
    let doc = read("docs/cli.md");
    let args = cli_args();
    assert!(
        args.iter()
            .any(|(c, f, _)| c == "heal8s serve" && f == "--listen"),
        "the CLI walk found no `heal8s serve --listen`: {args:?}"
    );
    let mut missing = BTreeSet::new();
    for (cmd, flag, env) in &args {
        if !mentions(&doc, flag) {
            missing.insert(format!("{cmd} {flag}"));
        }
        if let Some(env) = env
            && !mentions(&doc, env)
        {
            missing.insert(format!("{cmd} {flag}: ${env}"));
        }
    }
    let subcommands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|s| format!("heal8s {}", s.get_name()))
        .collect();
    for sub in &subcommands {
        if !doc.contains(sub.as_str()) {
            missing.insert(sub.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/cli.md does not mention: {missing:#?}"
    );
}

#[test]
fn every_refusal_reason_is_in_the_safety_or_http_docs() {
    let docs = read("docs/safety.md") + &read("docs/http.md");
    let missing: Vec<&str> = RefusalReason::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| !mentions(&docs, &format!("`{r}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/safety.md and docs/http.md do not mention the refusal reasons {missing:?}"
    );
}

#[test]
fn every_remediation_is_in_the_actions_or_policy_docs() {
    let docs = read("docs/actions.md") + &read("docs/policy.md");
    let missing: Vec<&str> = RemediationKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|k| !mentions(&docs, &format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/actions.md and docs/policy.md do not mention the remediations {missing:?}"
    );
}

/// Every metric of a fresh registry, as scraped: `name_total` for counters.
fn metric_names() -> BTreeSet<String> {
    let text = Metrics::new().encode();
    let names: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next().expect("a TYPE line names a metric");
            match parts.next() {
                Some("counter") => format!("{name}_total"),
                _ => name.to_string(),
            }
        })
        .collect();
    assert!(
        names.len() >= 10 && names.iter().all(|n| n.starts_with("heal8s_")),
        "unexpected metric names from the registry: {names:?}"
    );
    names
}

#[test]
fn every_registered_metric_is_in_docs_metrics() {
    let doc = read("docs/metrics.md");
    let missing: Vec<String> = metric_names()
        .into_iter()
        .filter(|n| !mentions(&doc, n))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/metrics.md does not mention the metrics {missing:?}"
    );
}

/// The markdown files whose links are checked, relative to the root.
fn markdown_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string(), "CONTRIBUTING.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| {
            e.expect("a docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The text outside fenced code blocks, with inline code spans blanked out.
fn prose(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => out.push(strip_code_spans(line)),
            _ => {}
        }
    }
    out
}

fn strip_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let delim = "`".repeat(ticks);
        let after = &rest[start + ticks..];
        match after.find(delim.as_str()) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                return out;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The link targets of `[text](target)` in `line`.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                let target = after[..end].split_whitespace().next().unwrap_or("");
                out.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// GitHub's anchor for a heading: lower-case, punctuation other than `-`
/// and `_` dropped, spaces turned into `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor of a markdown file's headings (repeats get `-1`, `-2`, ...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(m) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            fence = match fence {
                None => Some(m),
                Some(open) if open == m => None,
                other => other,
            };
            continue;
        }
        if fence.is_some() {
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = anchor(line[hashes..].trim_end_matches('#'));
            let mut a = base.clone();
            let mut n = 0;
            while seen.contains(&a) {
                n += 1;
                a = format!("{base}-{n}");
            }
            seen.insert(a);
        }
    }
    seen
}

#[test]
fn the_anchor_rules_are_githubs() {
    assert_eq!(anchor("`serve` flags"), "serve-flags");
    assert_eq!(
        anchor("Alerts are hints, also for pull requests"),
        "alerts-are-hints-also-for-pull-requests"
    );
    assert_eq!(
        anchor("Adding a detector or a remediation"),
        "adding-a-detector-or-a-remediation"
    );
    assert_eq!(
        anchor("What works today, and what does not yet"),
        "what-works-today-and-what-does-not-yet"
    );
    let a = anchors("# A\n## Same\n```\n# not a heading\n```\n## Same\n");
    assert_eq!(
        a,
        ["a", "same", "same-1"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(
        link_targets("see [x](a.md#b) and [`y`](../c/ \"t\")"),
        ["a.md#b", "../c/"]
    );
    assert_eq!(strip_code_spans("a `[x](y)` b"), "a  b");
}

#[test]
fn every_relative_link_in_the_docs_reaches_a_file_and_heading() {
    let root = root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        let dir = root
            .join(&file)
            .parent()
            .expect("a file has a dir")
            .to_path_buf();
        for line in prose(&text) {
            for target in link_targets(&line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, fragment) = match target.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (target.as_str(), None),
                };
                let dest = if path.is_empty() {
                    root.join(&file)
                } else {
                    dir.join(path)
                };
                if !dest.exists() {
                    broken.push(format!("{file}: {target}: no such file"));
                    continue;
                }
                if let Some(fragment) = fragment {
                    if !dest.is_file() || dest.extension().is_none_or(|e| e != "md") {
                        broken.push(format!(
                            "{file}: {target}: an anchor into a non-markdown file"
                        ));
                        continue;
                    }
                    let target_text = std::fs::read_to_string(&dest).unwrap();
                    if !anchors(&target_text).contains(fragment) {
                        broken.push(format!("{file}: {target}: no heading with that anchor"));
                    }
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} relative links found: is the parser right?"
    );
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

/// Every key of `v`'s mappings, nested ones too, except under `skip` (keys
/// whose values are maps of names, not of policy keys).
fn keys(v: &serde_json::Value, skip: &[&str], out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                if !skip.contains(&k.as_str()) {
                    keys(v, skip, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, skip, out)),
        _ => {}
    }
}

#[test]
fn every_policy_key_is_in_docs_policy() {
    let docs = read("docs/policy.md");
    let mut all = BTreeSet::new();
    // the shipped policies, as `/policy` serves them (every key the loader
    // fills in, defaults included)
    let dir = root().join("examples/policies");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let p = receiver_core::Policy::from_yaml(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            keys(&p.to_json(), &["labels", "matchLabels"], &mut all);
        }
    }
    assert!(all.len() > 50, "too few keys to prove anything: {all:?}");
    let missing: Vec<&String> = all.iter().filter(|k| !mentions(&docs, k)).collect();
    assert!(
        missing.is_empty(),
        "docs/policy.md does not mention the policy keys {missing:?}"
    );
}
