//! Fuzz target: any bytes as an Alertmanager webhook body. Parsing never
//! panics; a refusal says what is wrong and where; an accepted delivery
//! becomes signals that the engine takes in without panicking.
//!
//! Seeds: `fuzz/corpus/webhook/` (the receiver-core fixtures).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use receiver_core::alertmanager::{self, AlertLimits, PayloadError, WebhookPayload};
use receiver_core::{Engine, Policy, Signal};

/// Limits small enough that the fixtures' own alerts hit every one of them.
const TIGHT: AlertLimits = AlertLimits {
    label_value_bytes: 16,
    annotation_value_bytes: 32,
    entries: 4,
    alert_bytes: 256,
};

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    // the shipped policy loads (a unit test in receiver-core says so); if it
    // ever does not, every input fails here at once, which is loud enough
    POLICY.get_or_init(|| Policy::default_policy().expect("the default policy loads"))
}

fuzz_target!(|data: &[u8]| {
    let default = alertmanager::parse(data);
    let tight = alertmanager::parse_with(data, &TIGHT);
    match (&default, &tight) {
        (Err(e), _) | (Ok(_), Err(e)) => refusal_explains_itself(e),
        (Ok(_), Ok(_)) => {}
    }
    // the tight limits are below the defaults in every dimension, so what
    // they accept the defaults accept too, as the same payload
    if let Ok(p) = &tight {
        assert_eq!(
            default.as_ref().ok(),
            Some(p),
            "tight accepted, default did not"
        );
    }
    if let Ok(p) = default {
        accepted_payload_holds(&p);
        take_in(&p);
    }
});

fn refusal_explains_itself(e: &PayloadError) {
    assert!(!e.to_string().is_empty(), "empty message for {e:?}");
    let path = match e {
        PayloadError::Malformed { path, .. }
        | PayloadError::Invalid { path, .. }
        | PayloadError::TooLarge { path, .. } => path.as_str(),
        PayloadError::UnsupportedVersion { .. } => "version",
    };
    assert!(!path.is_empty(), "no path in {e:?}");
}

/// What `parse` promises about what it accepts.
fn accepted_payload_holds(p: &WebhookPayload) {
    assert_eq!(p.version, alertmanager::SUPPORTED_VERSION);
    for a in &p.alerts {
        assert!(a.labels.get("alertname").is_some_and(|n| !n.is_empty()));
    }
}

/// Route the delivery's signals through a fresh engine, as the worker would
/// before reading the cluster: intake, then every plan it offers.
fn take_in(p: &WebhookPayload) {
    let signals = Signal::from_payload(p);
    assert_eq!(signals.len(), p.alerts.len());
    let Ok(mut engine) = Engine::new(policy().clone(), "heal8s") else {
        panic!("the default policy builds an engine");
    };
    // a fixed clock: the same input always takes the same path
    let now = jiff::Timestamp::from_second(1_800_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    for s in &signals {
        let _ = engine.intake(s, now);
    }
    // each offer takes a plan out of the backlog, so this ends
    for _ in 0..=signals.len() {
        if engine.next(now).0.is_none() {
            break;
        }
    }
}
