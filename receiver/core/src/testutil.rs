//! Builders shared by this crate's unit tests.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::alertmanager::AlertStatus;
use crate::signal::{Evidence, Signal, Source, label_fingerprint};
use crate::target;

/// A firing alert signal with `labels`, first seen at a fixed time.
pub fn signal(labels: &[(&str, &str)]) -> Signal {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (target, target_problem) = match target::extract(&labels) {
        Ok(t) => (t, None),
        Err(e) => (None, Some(e.to_string())),
    };
    Signal {
        source: Source::Alert {
            alertname: labels.get("alertname").cloned().unwrap_or_default(),
            receiver: "heal8s".into(),
            group_key: String::new(),
            generator_url: String::new(),
        },
        status: AlertStatus::Firing,
        fingerprint: label_fingerprint(&labels),
        labels,
        annotations: BTreeMap::new(),
        target,
        target_problem,
        evidence: Evidence::default(),
        first_seen: Timestamp::from_second(1_800_000_000).unwrap(),
        ended_at: None,
        received: None,
        trace: None,
    }
}
