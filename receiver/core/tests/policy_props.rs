//! Properties of the policy loader (issue 12): no text makes it panic; every
//! problem names a field, or a position for text that is not YAML; a
//! mutated shipped policy is refused at what was mutated (or a sibling field
//! checked with it); a policy that loads survives the `/policy` round trip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod mutations;

use proptest::prelude::*;
use proptest::sample::select;
use receiver_core::policy::{DEFAULT_POLICY_YAML, TEST_CLUSTER_POLICY_YAML};
use receiver_core::{Policy, PolicyError};

const PRODUCTION: &str = include_str!("../../../examples/policies/production.yaml");

/// Every problem says what is wrong and where.
fn explains_itself(e: &PolicyError) -> Result<(), TestCaseError> {
    prop_assert!(!e.issues.is_empty(), "an error with no problem");
    for issue in &e.issues {
        prop_assert!(!issue.message.is_empty(), "no message: {:?}", issue);
        prop_assert!(!issue.path.is_empty(), "no field named: {:?}", issue);
        if issue.path == "$" && issue.message.starts_with("not valid YAML") {
            prop_assert!(issue.message.contains("line "), "no position: {:?}", issue);
        }
    }
    Ok(())
}

/// What `/policy` serves loads back into an equal policy.
fn round_trips(p: &Policy) -> Result<(), TestCaseError> {
    let again = Policy::from_value(&p.to_json());
    prop_assert_eq!(again.as_ref().ok(), Some(p), "{:?}", again);
    Ok(())
}

fn loads_or_explains(text: &str) -> Result<(), TestCaseError> {
    match Policy::from_yaml(text) {
        Ok(p) => round_trips(&p),
        Err(e) => explains_itself(&e),
    }
}

const KEYS: [&str; 34] = [
    "profile",
    "guard",
    "features",
    "detectors",
    "pullRequests",
    "routes",
    "name",
    "matchers",
    "remediation",
    "params",
    "mode",
    "continue",
    "dryRun",
    "cooldown",
    "dedupeWindow",
    "budgets",
    "global",
    "perNamespace",
    "max",
    "per",
    "escalation",
    "after",
    "within",
    "nodes",
    "maxUnhealthy",
    "protectedNamespaces",
    "excludedNamespaces",
    "factor",
    "step",
    "percent",
    "maxReplicas",
    "pods",
    "enabled",
    "x",
];

/// Scalars as written in a file: well-formed YAML, of every type a field
/// might expect or not.
const SCALARS: [&str; 31] = [
    "1",
    "-1",
    "0",
    "1.5",
    "true",
    "null",
    "~",
    "5m",
    "-5m",
    "0s",
    "99999999999h",
    "40%",
    "140%",
    "production",
    "test-cluster",
    "'alertname=\"X\"'",
    "'alertname=~\"(\"'",
    "evict-pod",
    "bump-memory",
    "notify-only",
    "dry-run",
    "&a x",
    "!!str 5",
    "!!binary eA==",
    "99999999999999999999",
    "0x1F",
    "0o17",
    "2026-01-01",
    "''",
    "[]",
    "{}",
];

/// Scalars the YAML reader refuses (an alias without its anchor, a lone
/// surrogate, non-finite floats): rare, so most documents reach the checks.
const REFUSED_SCALARS: [&str; 5] = ["*a", "\"\\ud800\"", "1e999", ".nan", ".inf"];

/// A YAML document built from the policy's own words.
#[derive(Debug, Clone)]
enum Yaml {
    Scalar(&'static str),
    Map(Vec<(&'static str, Yaml)>),
    Seq(Vec<Yaml>),
}

fn render(y: &Yaml, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    // a collection's entries go on the lines below its key or dash
    let inline = |v: &Yaml| match v {
        Yaml::Scalar(s) => Some(s.to_string()),
        Yaml::Map(m) if m.is_empty() => Some("{}".to_string()),
        Yaml::Seq(items) if items.is_empty() => Some("[]".to_string()),
        _ => None,
    };
    match y {
        Yaml::Scalar(s) => out.push_str(&format!("{pad}{s}\n")),
        Yaml::Map(entries) => {
            for (k, v) in entries {
                match inline(v) {
                    Some(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        render(v, indent + 2, out);
                    }
                }
            }
        }
        Yaml::Seq(items) => {
            for v in items {
                match inline(v) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}-\n"));
                        render(v, indent + 2, out);
                    }
                }
            }
        }
    }
}

/// Well-formed YAML: a mapping of policy sections (and one unknown key)
/// holding mappings, lists and scalars of the policy's vocabulary.
fn yaml_like() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        30 => select(SCALARS.to_vec()),
        1 => select(REFUSED_SCALARS.to_vec()),
    ]
    .prop_map(Yaml::Scalar);
    let tree = leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            // keys once each: the loader refuses a repeated key, rightly
            proptest::collection::btree_map(select(KEYS.to_vec()), inner.clone(), 0..5)
                .prop_map(|m| Yaml::Map(m.into_iter().collect())),
            proptest::collection::vec(inner, 0..4).prop_map(Yaml::Seq),
        ]
    });
    proptest::collection::btree_map(select(KEYS[..7].to_vec()), tree, 1..7).prop_map(|top| {
        let mut out = String::new();
        render(&Yaml::Map(top.into_iter().collect()), 0, &mut out);
        out
    })
}

/// Values a policy's fields take, right and wrong, beyond the generic ones.
const POLICY_VALUES: [&str; 16] = [
    "\"-5m\"",
    "\"0s\"",
    "\"99999999999h\"",
    "\"1.5h\"",
    "\"5\"",
    "\"140%\"",
    "\"-1%\"",
    "\"0%\"",
    "\"alertname=~\\\"(\\\"\"",
    "\"=x\"",
    "[\"alertname=\\\"X\\\"\", \"a\"]",
    "\"teleport\"",
    "\"evict-pod\"",
    "\"delete-node\"",
    "\"dry-run\"",
    "{\"max\": 0, \"per\": \"1m\"}",
];

fn shipped() -> impl Strategy<Value = serde_json::Value> {
    select(
        [PRODUCTION, DEFAULT_POLICY_YAML, TEST_CLUSTER_POLICY_YAML]
            .iter()
            .map(|t| serde_saphyr::from_str::<serde_json::Value>(t).unwrap())
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_and_problems_name_a_field_or_position(
        text in "[a-zA-Z0-9 :\\-\\[\\]{},&*!|>'\"#%@`?~.\\n\\t]{0,300}",
    ) {
        loads_or_explains(&text)?;
    }

    #[test]
    fn yaml_like_text_never_panics_and_problems_name_a_field_or_position(text in yaml_like()) {
        loads_or_explains(&text)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_shipped_policy_is_refused_at_or_beside_what_was_mutated(
        (base, muts) in shipped().prop_flat_map(|base| {
            let muts = mutations::mutations(&base, 2, &POLICY_VALUES);
            (Just(base), muts)
        }),
    ) {
        // JSON is YAML: the loader reads the mutated document as a file
        let (text, applied) = mutations::apply(&base, &muts);
        match Policy::from_yaml(&text) {
            Ok(p) => round_trips(&p)?,
            Err(e) => {
                explains_itself(&e)?;
                // a field is checked against its siblings (a kind against its
                // apiVersion), so a problem may be reported at a sibling
                let near = |path: &str, m: &mutations::Mutation| {
                    let at = m.path();
                    at.split_last().is_none_or(|(_, parent)| mutations::related(path, parent))
                };
                prop_assert!(
                    e.issues.iter().any(|i| applied.iter().any(|m| near(&i.path, m))),
                    "{} after {:?}",
                    e,
                    applied.iter().map(|m| mutations::show(&m.path())).collect::<Vec<_>>()
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn an_unknown_top_level_key_is_named(key in mutations::key()) {
        prop_assume!(!["profile", "guard", "features", "detectors", "pullRequests", "routes"].contains(&key.as_str()));
        let text = format!("{}: 1\n{PRODUCTION}", serde_json::to_string(&key).unwrap());
        let e = Policy::from_yaml(&text).unwrap_err();
        explains_itself(&e)?;
        // the empty key is named quoted
        let named = if key.is_empty() { r#""""# } else { key.as_str() };
        prop_assert!(e.issues.iter().any(|i| i.path == named), "{}", e);
    }
}
