//! The chart's values schema names every remediation and detector the
//! registries hold (`receiver_core::remediation`, `receiver_core::detect`):
//! adding one without the chart step fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use receiver_core::RemediationKind;
use receiver_core::detect::Detectors;
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/heal8s/values.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn policy(s: &Value) -> &Value {
    s.pointer("/definitions/policy/properties").unwrap()
}

#[test]
fn the_chart_schema_lists_every_registered_remediation() {
    let s = schema();
    let routes = s.pointer("/definitions/route/properties/remediation/enum");
    let listed: Vec<&str> = routes
        .and_then(Value::as_array)
        .expect("definitions.route.remediation has an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let registered: Vec<&str> = RemediationKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(listed, registered);
}

#[test]
fn the_chart_schema_lists_every_registered_detector() {
    let s = schema();
    let mut listed: Vec<&str> = policy(&s)
        .pointer("/detectors/properties")
        .and_then(Value::as_object)
        .expect("definitions.policy.detectors has properties")
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "resync" | "strainRelief"))
        .collect();
    let mut registered = Detectors::KEYS.to_vec();
    listed.sort_unstable();
    registered.sort_unstable();
    assert_eq!(listed, registered);
}
