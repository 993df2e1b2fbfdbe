//! Fuzz target: any text as a policy file. Loading never panics; every
//! problem names a field, or, for text that is not YAML, a position; a policy
//! that loads builds an engine and survives the `/policy` round trip.
//!
//! Seeds: `fuzz/corpus/policy/` (the shipped policies and a few variations).

#![no_main]

use libfuzzer_sys::fuzz_target;
use receiver_core::{Engine, Policy};

fuzz_target!(|data: &[u8]| {
    // a policy file is text; bytes that are not UTF-8 never reach the loader
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::from_yaml(text) {
        Ok(policy) => loaded_policy_holds(policy),
        Err(e) => {
            assert!(!e.issues.is_empty(), "an error with no issue");
            for issue in &e.issues {
                assert!(!issue.message.is_empty(), "no message: {issue:?}");
                assert!(!issue.path.is_empty(), "no field named: {issue:?}");
                if issue.path == "$" && issue.message.starts_with("not valid YAML") {
                    assert!(issue.message.contains("line "), "no position: {issue:?}");
                }
            }
        }
    }
});

fn loaded_policy_holds(policy: Policy) {
    // what `/policy` serves loads back into an equal policy (its doc says so)
    let again = Policy::from_value(&policy.to_json());
    assert_eq!(again.as_ref().ok(), Some(&policy), "round trip: {again:?}");
    // `check-config` accepting a policy that `serve` then refuses would be a surprise
    if let Err(e) = Engine::new(policy, "heal8s") {
        panic!("a loaded policy builds no engine: {e}");
    }
}
