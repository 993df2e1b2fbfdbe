//! Mutations of a JSON document for the property tests: a field removed, a
//! value replaced by one of the wrong type or of a size at or past a limit,
//! an odd key added. Each mutation keeps its path, shown the way
//! serde_path_to_error shows error paths (`alerts[0].labels.pod`), so a test
//! can check that an error points at what was changed.
//!
//! Shared by receiver-core's and receiver's property tests (`#[path]`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write;

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// What a mutation does at its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Remove,
    /// Replace the value by this JSON text (valid JSON syntax; its meaning
    /// may be out of range, like `1e999` or a lone surrogate).
    Replace(String),
    /// Add (or overwrite) a key of the mapping at the path.
    Add(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    pub at: Vec<Step>,
    pub op: Op,
}

impl Mutation {
    /// The path of the value this mutation changes.
    pub fn path(&self) -> Vec<Step> {
        let mut p = self.at.clone();
        if let Op::Add(k, _) = &self.op {
            p.push(Step::Key(k.clone()));
        }
        p
    }
}

/// A path as serde_path_to_error shows one: keys joined by `.`, indexes as
/// `[i]`, the root as the empty string.
pub fn show(path: &[Step]) -> String {
    let mut s = String::new();
    for (i, step) in path.iter().enumerate() {
        match step {
            Step::Key(k) => {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(n) => write!(s, "[{n}]").unwrap(),
        }
    }
    s
}

/// Whether an error's path and a mutation's path are on one line: one is a
/// prefix of the other, at a step boundary. `$` and `.` are the root; a key
/// shown quoted in brackets (`labels["pod"]`, possibly cut) stands for any
/// key of that mapping.
pub fn related(error_path: &str, mutated: &[Step]) -> bool {
    let e = match error_path {
        "$" | "." => "",
        p => p.split_once("[\"").map_or(p, |(head, _)| head),
    };
    let m = show(mutated);
    let prefix = |short: &str, long: &str| {
        long.starts_with(short)
            && (short.is_empty()
                || long.len() == short.len()
                || matches!(long.as_bytes()[short.len()], b'.' | b'['))
    };
    prefix(e, &m) || prefix(&m, e)
}

/// Every path in `v`, the root first.
pub fn paths(v: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    at.push(Step::Key(k.clone()));
                    walk(child, at, out);
                    at.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    at.push(Step::Index(i));
                    walk(child, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn get_mut<'v>(v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |v, step| match (v, step) {
        (Value::Object(m), Step::Key(k)) => m.get_mut(k),
        (Value::Array(a), Step::Index(i)) => a.get_mut(*i),
        _ => None,
    })
}

/// Keep the paths of mutations already applied true after `m`: what `m`
/// removed or replaced is gone, and a removed list item moves the later
/// items of its list up by one.
fn follow(applied: &mut Vec<Mutation>, m: &Mutation) {
    let gone = m.path();
    applied.retain(|a| !a.path().starts_with(&gone));
    if let (Op::Remove, Some((Step::Index(removed), list))) = (&m.op, gone.split_last()) {
        for a in applied.iter_mut() {
            if a.at.len() > list.len()
                && a.at.starts_with(list)
                && let Step::Index(i) = &mut a.at[list.len()]
                && *i > *removed
            {
                *i -= 1;
            }
        }
    }
}

/// `base` with `mutations` applied in order, as JSON text, and the
/// mutations that took effect (a path an earlier one removed is skipped).
pub fn apply(base: &Value, mutations: &[Mutation]) -> (String, Vec<Mutation>) {
    let mut v = base.clone();
    let mut applied = Vec::new();
    let mut raws = Vec::new();
    for (i, m) in mutations.iter().enumerate() {
        // the raw JSON goes in after serializing: a string stands in for it
        let stand_in = format!("\u{1}mutation-{i}\u{1}");
        let done = match &m.op {
            Op::Remove => match m.at.split_last() {
                None => false,
                Some((last, parent)) => match (get_mut(&mut v, parent), last) {
                    (Some(Value::Object(o)), Step::Key(k)) => o.remove(k).is_some(),
                    (Some(Value::Array(a)), Step::Index(i)) if *i < a.len() => {
                        a.remove(*i);
                        true
                    }
                    _ => false,
                },
            },
            Op::Replace(raw) => match get_mut(&mut v, &m.at) {
                Some(slot) => {
                    *slot = Value::String(stand_in.clone());
                    raws.push((stand_in, raw.clone()));
                    true
                }
                None => false,
            },
            Op::Add(key, raw) => match get_mut(&mut v, &m.at) {
                Some(Value::Object(o)) => {
                    o.insert(key.clone(), Value::String(stand_in.clone()));
                    raws.push((stand_in, raw.clone()));
                    true
                }
                _ => false,
            },
        };
        if done {
            follow(&mut applied, m);
            applied.push(m.clone());
        }
    }
    let mut text = serde_json::to_string(&v).unwrap();
    for (stand_in, raw) in raws {
        let quoted = serde_json::to_string(&stand_in).unwrap();
        text = text.replacen(&quoted, &raw, 1);
    }
    (text, applied)
}

/// A JSON string literal of `n` bytes.
fn string_of(n: usize) -> String {
    format!("\"{}\"", "x".repeat(n))
}

/// A JSON mapping of `n` string entries (`alertname` among them).
fn mapping_of(n: usize) -> String {
    let entries: Vec<String> = (0..n)
        .map(|i| match i {
            0 => "\"alertname\":\"A\"".to_string(),
            _ => format!("\"k{i}\":\"v\""),
        })
        .collect();
    format!("{{{}}}", entries.join(","))
}

/// Replacement values: every JSON type, numbers past i64/u64/f64, strings at
/// and just past the webhook's limits (128, 256, 4 KiB, 16 KiB, 64 KiB),
/// nesting past serde_json's depth limit, mappings past 128 entries,
/// escapes, control characters and lone surrogates, plus `extra`.
pub fn raw_value(extra: &[&'static str]) -> BoxedStrategy<String> {
    let mut fixed: Vec<String> = [
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1.5",
        "-0",
        "1e999",
        "-1e999",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "[]",
        "{}",
        "[1,\"a\",null,{}]",
        "{\"a\":{\"b\":[]}}",
        "\"\"",
        "\" \"",
        "\"4\"",
        "4",
        "\"firing\"",
        "\"resolved\"",
        "\"FIRING\"",
        "\"\\ud800\"",
        "\"\\u0000\\u001b]0;x\\u0007\"",
        "\"ünï😀\\u2028\"",
        "\"0001-01-01T00:00:00Z\"",
        "\"9999-12-31T23:59:59.999999999Z\"",
        "\"-009999-01-01T00:00:00Z\"",
        "\"2026-13-45T99:00:00Z\"",
        "\"yesterday\"",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    fixed.extend(extra.iter().map(|s| s.to_string()));
    prop_oneof![
        4 => select(fixed),
        2 => prop_oneof![
            0usize..64,
            select(vec![128usize, 129, 256, 257, 4096, 4097, 16384, 16385, 65536, 70000]),
        ]
        .prop_map(string_of),
        1 => (1usize..200).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        1 => select(vec![0usize, 1, 128, 129, 200]).prop_map(mapping_of),
        1 => "[ -~]{0,24}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
    ]
    .boxed()
}

/// Keys to add: plain, empty, dotted, bracketed, over the 256-byte name
/// limit, with terminal escapes, non-ASCII.
pub fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z]{1,10}",
        1 => select(vec![
            String::new(),
            "alertname".to_string(),
            "a.b".to_string(),
            "[0]".to_string(),
            "\u{1b}]0;pwned\u{7}".to_string(),
            "n".repeat(256),
            "n".repeat(257),
            "ü".repeat(200),
        ]),
    ]
    .boxed()
}

/// One to `max` mutations of `base`, at its own paths.
pub fn mutations(
    base: &Value,
    max: usize,
    extra: &[&'static str],
) -> impl Strategy<Value = Vec<Mutation>> + use<> {
    let all = paths(base);
    let mut objects: Vec<Vec<Step>> = all
        .iter()
        .filter(|p| {
            let mut v = base.clone();
            matches!(get_mut(&mut v, p), Some(Value::Object(_)))
        })
        .cloned()
        .collect();
    let mut strings: Vec<Vec<Step>> = all
        .iter()
        .filter(|p| {
            let mut v = base.clone();
            matches!(get_mut(&mut v, p), Some(Value::String(_)))
        })
        .cloned()
        .collect();
    if objects.is_empty() {
        objects.push(Vec::new());
    }
    if strings.is_empty() {
        strings.push(Vec::new());
    }
    let one = prop_oneof![
        2 => select(all.clone()).prop_map(|at| Mutation { at, op: Op::Remove }),
        5 => (select(all), raw_value(extra))
            .prop_map(|(at, raw)| Mutation { at, op: Op::Replace(raw) }),
        2 => (select(objects.clone()), key(), raw_value(extra))
            .prop_map(|(at, k, raw)| Mutation { at, op: Op::Add(k, raw) }),
        // the right type, at or just past a size limit
        2 => (select(strings), select(vec![128usize, 129, 256, 257, 4096, 4097, 16384, 16385, 40000]))
            .prop_map(|(at, n)| Mutation { at, op: Op::Replace(string_of(n)) }),
        1 => (select(objects), select(vec![128usize, 129]))
            .prop_map(|(at, n)| Mutation { at, op: Op::Replace(mapping_of(n)) }),
    ];
    proptest::collection::vec(one, 1..=max)
}
