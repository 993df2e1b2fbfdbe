//! Properties of the Alertmanager webhook parser (issue 12): no body makes
//! it panic; every refusal has a message and a path, and a refusal of a
//! mutated real delivery points at what was mutated; limits only ever refuse
//! more as they tighten.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod mutations;

use proptest::prelude::*;
use receiver_core::PayloadError;
use receiver_core::alertmanager::{self, AlertLimits};

const FIXTURES: [&str; 3] = [
    include_str!("fixtures/sample-webhook.json"),
    include_str!("fixtures/sample-webhook-resolved.json"),
    include_str!("fixtures/sample-webhook-from-prometheus.json"),
];

/// The path a refusal names (an unsupported version is about `version`).
fn path_of(e: &PayloadError) -> &str {
    match e {
        PayloadError::Malformed { path, .. }
        | PayloadError::Invalid { path, .. }
        | PayloadError::TooLarge { path, .. } => path,
        PayloadError::UnsupportedVersion { .. } => "version",
    }
}

/// A refusal says what is wrong and where, in its message.
fn explains_itself(e: &PayloadError) -> Result<(), TestCaseError> {
    let message = e.to_string();
    let path = path_of(e);
    prop_assert!(!path.is_empty(), "no path: {:?}", e);
    prop_assert!(message.len() > path.len(), "no message: {:?}", e);
    prop_assert!(
        message.contains(path),
        "the message does not name the path: {}",
        message
    );
    Ok(())
}

fn fixture() -> impl Strategy<Value = serde_json::Value> {
    proptest::sample::select(
        FIXTURES
            .iter()
            .map(|f| serde_json::from_str::<serde_json::Value>(f).unwrap())
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_refusals_explain_themselves(
        body in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        if let Err(e) = alertmanager::parse(&body) {
            explains_itself(&e)?;
        }
    }

    #[test]
    fn json_like_text_never_panics_and_refusals_explain_themselves(
        body in "[{}\\[\\]\":, 0-9a-zA-Z.\\-\\\\]{0,200}",
        prefix in prop_oneof![Just(""), Just("{\"version\":\"4\",\"alerts\":["), Just("{\"version\":\"4\",\"alerts\":[{\"labels\":")],
    ) {
        if let Err(e) = alertmanager::parse(format!("{prefix}{body}").as_bytes()) {
            explains_itself(&e)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_delivery_is_refused_at_what_was_mutated(
        (base, muts) in fixture().prop_flat_map(|base| {
            let muts = mutations::mutations(&base, 3, &[]);
            (Just(base), muts)
        }),
    ) {
        let (body, applied) = mutations::apply(&base, &muts);
        if let Err(e) = alertmanager::parse(body.as_bytes()) {
            explains_itself(&e)?;
            let at = path_of(&e);
            prop_assert!(
                applied.iter().any(|m| mutations::related(at, &m.path())),
                "{} is refused at {:?}, which none of {:?} touched",
                e,
                at,
                applied.iter().map(|m| mutations::show(&m.path())).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn what_tight_limits_accept_looser_limits_accept_alike(
        (base, muts) in fixture().prop_flat_map(|base| {
            let muts = mutations::mutations(&base, 2, &[]);
            (Just(base), muts)
        }),
        tight in (1usize..64, 1usize..256, 1usize..8, 1usize..2048),
        slack in (0usize..8192, 0usize..32768, 0usize..256, 0usize..131072),
    ) {
        let (body, _) = mutations::apply(&base, &muts);
        let tight = AlertLimits {
            label_value_bytes: tight.0,
            annotation_value_bytes: tight.1,
            entries: tight.2,
            alert_bytes: tight.3,
        };
        let loose = AlertLimits {
            label_value_bytes: tight.label_value_bytes + slack.0,
            annotation_value_bytes: tight.annotation_value_bytes + slack.1,
            entries: tight.entries + slack.2,
            alert_bytes: tight.alert_bytes + slack.3,
        };
        let strict = alertmanager::parse_with(body.as_bytes(), &tight);
        let lenient = alertmanager::parse_with(body.as_bytes(), &loose);
        match &strict {
            Ok(p) => prop_assert_eq!(lenient.as_ref().ok(), Some(p)),
            Err(e) => {
                explains_itself(e)?;
                // a refusal the limits did not cause does not depend on them
                if !matches!(e, PayloadError::TooLarge { .. }) {
                    prop_assert_eq!(lenient.as_ref().err(), Some(e));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_refusal_under_any_top_level_key_names_a_path(
        key in mutations::key(),
        // a raw control character: invalid even in a value serde skips
        bad in prop_oneof![Just("\"\u{1}\""), Just("1x"), Just("[1,]")],
    ) {
        let mut v: serde_json::Value = serde_json::from_str(FIXTURES[0]).unwrap();
        let stand_in = "\u{1}stand-in\u{1}";
        v[key.as_str()] = stand_in.into();
        let body = v.to_string().replacen(&serde_json::to_string(stand_in).unwrap(), bad, 1);
        let e = alertmanager::parse(body.as_bytes());
        prop_assert!(e.is_err(), "{}", body);
        explains_itself(&e.unwrap_err())?;
    }
}
