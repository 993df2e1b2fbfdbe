//! Fuzz target: the manifest patcher on any text, with a target and an edit
//! chosen by the input. Patching never panics; a patched file re-parses, and
//! means the original with exactly the fields the patch reports changed set
//! to their new values: every other path of every document reads as before.
//!
//! Input layout (so seeds can be written by hand): 8 bytes of [`Choice`],
//! one per field in order, then the file's text (up to its first invalid
//! UTF-8 byte). Seeds: `fuzz/corpus/patch/` (8 bytes + a manifest).

#![no_main]

use gitops::arith::{BumpRule, Requests};
use gitops::patch::{Edit, Patched, Target, patch};
use gitops::yaml::{Seg, Tree, Value};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// What to do to the text; each byte picks from a table or from the text.
#[derive(Debug, Arbitrary)]
struct Choice {
    target: u8,
    kind: u8,
    name: u8,
    namespace: u8,
    container: u8,
    edit: u8,
    amount: u8,
    other: u8,
}

#[derive(Debug, Arbitrary)]
struct Input {
    choice: Choice,
    /// Last, so it takes the rest of the bytes.
    text: String,
}

const KINDS: [&str; 8] = [
    "Deployment",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "CronJob",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Job",
];
const REPLICAS: [u32; 7] = [0, 1, 2, 3, 7, 100, u32::MAX];
const PERCENTS: [u32; 6] = [0, 1, 50, 100, 1000, u32::MAX];
const QUANTITIES: [&str; 12] = [
    "3Gi",
    "512Mi",
    "1G",
    "0",
    "1e3",
    "100m",
    "-1Gi",
    "abc",
    "",
    "99999999999999999999999Ei",
    "1.5Gi",
    "0x10",
];
const IMAGES: [&str; 8] = [
    "registry.example/app:2.0",
    "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "app",
    ":tag",
    "bad image",
    "",
    "a\nb",
    "x:#y",
];
const MI: u128 = 1 << 20;

fn pick<T: Copy>(table: &[T], at: u8) -> T {
    table[usize::from(at) % table.len()]
}

/// The values written after `key:` on the text's lines (quotes and a
/// trailing comment dropped): kinds and names the file declares.
fn values_of<'t>(text: &'t str, key: &str) -> Vec<&'t str> {
    text.lines()
        .filter_map(|l| l.trim_start().trim_start_matches("- ").strip_prefix(key))
        .filter_map(|rest| rest.strip_prefix(':'))
        .map(|v| {
            v.split(" #")
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['"', '\''])
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Mapping keys written at the start of the text's lines, without dots (a
/// Helm values path is shown joined by dots, and read back split at them).
fn keys_of(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.trim_start().split_once(':').map(|(k, _)| k))
        .filter(|k| !k.is_empty() && !k.contains(['.', ' ', '#', '-', '"', '\'']))
        .collect()
}

/// Pick from what the text offers first, then from the fallbacks.
fn choose<'a>(found: &[&'a str], fallback: &[&'a str], at: u8) -> &'a str {
    let all: Vec<&str> = found.iter().chain(fallback).copied().collect();
    all[usize::from(at) % all.len()]
}

fn target(c: &Choice, text: &str) -> Target {
    if c.target % 4 == 3 {
        let keys = keys_of(text);
        let mut path = Vec::new();
        for i in 0..c.other % 3 {
            match keys.get(usize::from(c.amount.wrapping_add(i)) % keys.len().max(1)) {
                Some(k) => path.push((*k).to_string()),
                None => path.push("0".to_string()),
            }
        }
        return Target::HelmValues { path };
    }
    let names = values_of(text, "name");
    let namespace = match c.namespace % 3 {
        0 => None,
        1 => Some(choose(&values_of(text, "namespace"), &["default"], c.namespace).to_string()),
        _ => Some("other".to_string()),
    };
    let container = match c.container % 3 {
        0 => None,
        1 => Some(choose(&names, &["app"], c.container).to_string()),
        _ => Some("app".to_string()),
    };
    Target::Manifest {
        kind: choose(&values_of(text, "kind"), &KINDS, c.kind).to_string(),
        name: choose(&names, &["web"], c.name).to_string(),
        namespace,
        container,
    }
}

fn edit(c: &Choice) -> Edit {
    match c.edit % 5 {
        0 => Edit::Replicas(pick(&REPLICAS, c.amount)),
        1 => Edit::ScaleUp {
            percent: pick(&PERCENTS, c.amount),
            cap: pick(&REPLICAS, c.other),
        },
        2 => Edit::Memory(pick(&QUANTITIES, c.amount).to_string()),
        3 => Edit::Image(pick(&IMAGES, c.amount).to_string()),
        // only rules a policy can give (receiver-core validates bump-memory)
        _ => Edit::BumpMemory(BumpRule {
            factor: pick(&[1.2, 1.5, 2.0, 4.0], c.amount),
            step: pick(&[0, 64 * MI, 1024 * MI], c.other),
            max: pick(&[1024 * MI, 64 * 1024 * MI], c.other >> 2),
            default: 512 * MI,
            requests: pick(
                &[Requests::Keep, Requests::Scale, Requests::MatchLimit],
                c.other >> 4,
            ),
        }),
    }
}

fuzz_target!(|input: Input| {
    let target = target(&input.choice, &input.text);
    let edit = edit(&input.choice);
    match patch(&input.text, &target, &edit) {
        Ok(patched) => only_the_edited_paths_changed(&input.text, &patched, &edit),
        Err(e) => assert!(!e.to_string().is_empty(), "empty message for {e:?}"),
    }
});

/// A shown path (`spec.template.spec.containers.0.image`) as segments, read
/// against the document: a number indexes only where there is a list.
fn segs(doc: &Value, shown: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut at = Some(doc);
    for part in shown.split('.') {
        let seg = match (at, part.parse::<usize>()) {
            (Some(Value::Seq(_)), Ok(i)) => Seg::Index(i),
            _ => Seg::key(part),
        };
        at = at.and_then(|v| v.at(std::slice::from_ref(&seg)));
        out.push(seg);
    }
    out
}

/// A value as loaders read it: of a repeated key, the last entry. `Value`'s
/// own equality reads repeats the same way (gitops/tests/props.rs,
/// `a_parsed_document_equals_itself_whatever_key_it_repeats`); the fuzz
/// target keeps its own copy of the rule so it does not trust what it checks.
fn last_wins(v: &Value) -> Value {
    match v {
        Value::Map(entries) => {
            let mut out: Vec<(Value, Value)> = Vec::new();
            for (k, v) in entries {
                let (k, v) = (last_wins(k), last_wins(v));
                match out.iter_mut().find(|(seen, _)| *seen == k) {
                    Some(slot) => slot.1 = v,
                    None => out.push((k, v)),
                }
            }
            Value::Map(out)
        }
        Value::Seq(items) => Value::Seq(items.iter().map(last_wins).collect()),
        other => other.clone(),
    }
}

fn only_the_edited_paths_changed(before: &str, patched: &Patched, edit: &Edit) {
    let parse = |text: &str| Tree::parse(text).and_then(|t| t.values());
    let (Ok(mut expected), Ok(after)) = (parse(before), parse(&patched.text)) else {
        panic!("the patched file does not parse:\n{}", patched.text);
    };
    assert!(!patched.changes.is_empty(), "Ok with no change");
    let Some(doc) = expected.get_mut(patched.doc) else {
        panic!("document {} of {}", patched.doc, after.len());
    };
    for change in &patched.changes {
        let new = match edit {
            Edit::Replicas(_) | Edit::ScaleUp { .. } => match change.after.parse::<i128>() {
                Ok(n) => Value::Int(n),
                Err(_) => panic!("replica count {:?}", change.after),
            },
            _ => Value::Str(change.after.clone()),
        };
        let path = segs(doc, &change.path);
        assert!(doc.set(&path, new), "{} cannot be set", change.path);
    }
    let (expected, after): (Vec<Value>, Vec<Value>) = (
        expected.iter().map(last_wins).collect(),
        after.iter().map(last_wins).collect(),
    );
    assert_eq!(
        expected, after,
        "the patch changed more than {:?}:\n{}",
        patched.changes, patched.text
    );
}
