//! `Signal`: the one type for "something looks wrong with this target", from any source.
//!
//! Owns: the Signal type and its construction from an Alertmanager alert.
//! Detectors build the same type. Must not route or decide.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alertmanager::{Alert, AlertStatus, WebhookPayload};
use crate::target::{self, Target};

/// Where a signal came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Source {
    /// An Alertmanager webhook.
    #[serde(rename_all = "camelCase")]
    Alert {
        alertname: String,
        receiver: String,
        group_key: String,
        generator_url: String,
    },
    /// An in-cluster detector of heal8s's own.
    Detector { name: String },
}

/// Whether a signal came from Alertmanager or from heal8s's own detectors:
/// what may be trusted of it differs (only a detector's view of a pod's
/// controller is believed before the live read; another cluster's label is
/// checked on alerts only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Alert,
    Detector,
}

impl SourceKind {
    /// Both, for metrics that start at 0.
    pub const ALL: [SourceKind; 2] = [SourceKind::Alert, SourceKind::Detector];

    /// `alert` or `detector`: a bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Alert => "alert",
            SourceKind::Detector => "detector",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Source {
    /// Alert or detector.
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::Alert { .. } => SourceKind::Alert,
            Source::Detector { .. } => SourceKind::Detector,
        }
    }

    /// The alert or detector name, for logs.
    pub fn name(&self) -> &str {
        match self {
            Source::Alert { alertname, .. } => alertname,
            Source::Detector { name } => name,
        }
    }
}

/// Facts that support the signal. Detectors fill more of it than alerts can.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// A waiting/termination reason such as `CrashLoopBackOff` or `OOMKilled`.
    pub reason: Option<String>,
    pub restart_count: Option<u32>,
    /// Observed peak memory in bytes, when a source knows it.
    pub memory_peak_bytes: Option<u64>,
    /// Free-form extra facts (bounded by their sources).
    pub details: BTreeMap<String, String>,
}

/// One problem report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub source: Source,
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The object the signal is about, if the labels named a valid one.
    pub target: Option<Target>,
    /// Why no target could be read when labels named an invalid one.
    pub target_problem: Option<String>,
    pub evidence: Evidence,
    /// When the problem started (an alert's `startsAt`).
    pub first_seen: Timestamp,
    /// When the problem ended, for resolved signals.
    pub ended_at: Option<Timestamp>,
    /// Stable identity of the problem series (Alertmanager's fingerprint).
    pub fingerprint: String,
    /// When heal8s took it in (the work queue sets it): how long it waited
    /// is measured from here (`guard.maxSignalAge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<Timestamp>,
    /// The trace its spans belong to: a webhook's `traceparent` when it sent
    /// one, then the signal's own receive span (see [`crate::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceContext>,
}

impl Signal {
    /// Build a signal from one alert of a webhook delivery.
    pub fn from_alert(payload: &WebhookPayload, alert: &Alert) -> Signal {
        let (target, target_problem) = match target::extract(&alert.labels) {
            Ok(t) => (t, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let fingerprint = if alert.fingerprint.is_empty() {
            label_fingerprint(&alert.labels)
        } else {
            alert.fingerprint.clone()
        };
        Signal {
            source: Source::Alert {
                alertname: alert.labels.get("alertname").cloned().unwrap_or_default(),
                receiver: payload.receiver.clone(),
                group_key: payload.group_key.clone(),
                generator_url: alert.generator_url.clone(),
            },
            status: alert.status,
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            target,
            target_problem,
            evidence: Evidence {
                reason: alert.labels.get("reason").cloned(),
                ..Evidence::default()
            },
            first_seen: alert.starts_at,
            ended_at: alert.ends_at,
            fingerprint,
            received: None,
            trace: None,
        }
    }

    /// All signals of a delivery, in payload order.
    pub fn from_payload(payload: &WebhookPayload) -> Vec<Signal> {
        payload
            .alerts
            .iter()
            .map(|a| Signal::from_alert(payload, a))
            .collect()
    }

    /// The signal's name: its `alertname` label (alerts, and detector signals
    /// such as `Heal8sPodCrashLooping`), else the source's name.
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map_or_else(|| self.source.name(), String::as_str)
    }

    /// The identity of one delivery of one problem occurrence: Alertmanager
    /// re-sends the same (fingerprint, startsAt) every group/repeat interval,
    /// and an HA pair sends it twice.
    pub fn occurrence(&self) -> (String, Timestamp) {
        (self.fingerprint.clone(), self.first_seen)
    }
}

/// A 16-hex-digit fingerprint of a label set, for alerts that arrive without one.
pub fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    // FNV-1a, 64 bit: stable across processes and releases (unlike std's SipHash keys).
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 ^= u64::from(*b);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for (k, v) in labels {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alertmanager;
    use crate::target::TargetKind;

    const FROM_PROMETHEUS: &str =
        include_str!("../tests/fixtures/sample-webhook-from-prometheus.json");

    #[test]
    fn alert_becomes_signal_with_target_and_evidence() {
        let p = alertmanager::parse(FROM_PROMETHEUS.as_bytes()).unwrap();
        let s = Signal::from_alert(&p, &p.alerts[0]);
        assert_eq!(s.source.kind(), SourceKind::Alert);
        assert_eq!(s.source.name(), "KubePodCrashLooping");
        assert_eq!(s.status, AlertStatus::Firing);
        let t = s.target.unwrap();
        assert_eq!(t.kind, TargetKind::Pod);
        assert_eq!(t.container.as_deref(), Some("api"));
        assert_eq!(s.evidence.reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(s.fingerprint, "9a8c103d3a23f192");
        assert_eq!(s.first_seen, p.alerts[0].starts_at);
    }

    #[test]
    fn invalid_target_labels_are_kept_as_a_problem() {
        let mut p = alertmanager::parse(FROM_PROMETHEUS.as_bytes()).unwrap();
        p.alerts[0].labels.insert("pod".into(), "Not/A/Name".into());
        let s = Signal::from_alert(&p, &p.alerts[0]);
        assert_eq!(s.target, None);
        assert!(s.target_problem.unwrap().contains("pod"));
    }

    #[test]
    fn missing_fingerprint_is_computed_from_labels_stably() {
        let mut p = alertmanager::parse(FROM_PROMETHEUS.as_bytes()).unwrap();
        p.alerts[0].fingerprint.clear();
        let a = Signal::from_alert(&p, &p.alerts[0]).fingerprint;
        let b = Signal::from_alert(&p, &p.alerts[0]).fingerprint;
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
        p.alerts[0].labels.insert("pod".into(), "other".into());
        assert_ne!(Signal::from_alert(&p, &p.alerts[0]).fingerprint, a);
    }
}
