//! Alertmanager webhook payload (version "4") and its strict-but-tolerant parser.
//!
//! Owns: the wire types and the checks that make a payload acceptable. Must not
//! decide anything about remediation; that is `route`, `plan` and `guard`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

/// The only webhook payload version Alertmanager has ever sent (0.x through today).
pub const SUPPORTED_VERSION: &str = "4";

/// A webhook delivery from Alertmanager. Unknown fields (newer Alertmanagers add
/// `notification_reason`, `routeLabels`, ...) are ignored on purpose.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    /// How many alerts Alertmanager left out because of `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

/// One alert of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    /// `None` for firing alerts: Alertmanager sends Go's zero time
    /// `0001-01-01T00:00:00Z` there, which we read as "no end yet".
    #[serde(default, deserialize_with = "go_time_opt")]
    pub ends_at: Option<Timestamp>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

/// Whether an alert is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    /// Lower-case name, as on the wire and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// Go's `time.Time{}` marshals as year 1; anything before 1970 is treated as unset.
fn go_time_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let t: Option<Timestamp> = Option::deserialize(d)?;
    Ok(t.filter(|t| t.as_second() > 0))
}

/// Why a payload was not accepted. The message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("malformed JSON at {path}: {message}")]
    Malformed { path: String, message: String },
    #[error(
        "unsupported payload version {found:?} (field `version`); heal8s understands version \"4\""
    )]
    UnsupportedVersion { found: String },
    #[error("`{path}` is invalid: {message}")]
    Invalid { path: String, message: String },
}

/// Parse and check a webhook body. Every accepted alert has an `alertname`
/// label, a status and a start time; nothing else is required.
pub fn parse(body: &[u8]) -> Result<WebhookPayload, PayloadError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let payload: WebhookPayload = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        PayloadError::Malformed {
            path: if path == "." { "$".into() } else { path },
            message: e.into_inner().to_string(),
        }
    })?;
    if payload.version != SUPPORTED_VERSION {
        return Err(PayloadError::UnsupportedVersion {
            found: payload.version,
        });
    }
    for (i, alert) in payload.alerts.iter().enumerate() {
        match alert.labels.get("alertname") {
            Some(name) if !name.is_empty() => {}
            _ => {
                return Err(PayloadError::Invalid {
                    path: format!("alerts[{i}].labels.alertname"),
                    message: "every alert needs a non-empty alertname label".into(),
                });
            }
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRING: &str = include_str!("../tests/fixtures/sample-webhook.json");
    const RESOLVED: &str = include_str!("../tests/fixtures/sample-webhook-resolved.json");
    const FROM_PROMETHEUS: &str =
        include_str!("../tests/fixtures/sample-webhook-from-prometheus.json");

    #[test]
    fn real_firing_payload_parses_with_go_zero_end_time() {
        let p = parse(FIRING.as_bytes()).unwrap();
        assert_eq!(p.alerts.len(), 1);
        let a = &p.alerts[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.ends_at, None);
        assert_eq!(a.fingerprint, "d8369421dcf3241e");
        assert_eq!(a.labels["pod"], "api-7d9c-x2");
        // nanosecond precision survives
        assert_eq!(a.starts_at.subsec_nanosecond(), 797_833_253);
    }

    #[test]
    fn real_resolved_payload_has_an_end_time() {
        let p = parse(RESOLVED.as_bytes()).unwrap();
        let a = &p.alerts[0];
        assert_eq!(a.status, AlertStatus::Resolved);
        assert!(a.ends_at.is_some());
    }

    #[test]
    fn payload_from_prometheus_chain_keeps_all_labels() {
        let p = parse(FROM_PROMETHEUS.as_bytes()).unwrap();
        let a = &p.alerts[0];
        assert_eq!(a.labels["job"], "kube-state-metrics");
        assert_eq!(a.labels["reason"], "CrashLoopBackOff");
        assert_eq!(a.starts_at.subsec_nanosecond(), 645_000_000);
    }

    #[test]
    fn unknown_fields_from_newer_alertmanagers_are_ignored() {
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        v["notification_reason"] = "repeat".into();
        v["routeLabels"] = serde_json::json!({"team": "a"});
        v["alerts"][0]["silencedBy"] = serde_json::json!([]);
        let p = parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(p.alerts.len(), 1);
    }

    #[test]
    fn truncated_alerts_count_is_read() {
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        v["truncatedAlerts"] = 7.into();
        assert_eq!(parse(v.to_string().as_bytes()).unwrap().truncated_alerts, 7);
    }

    #[test]
    fn wrong_version_is_rejected_naming_the_field() {
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        v["version"] = "3".into();
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert!(matches!(e, PayloadError::UnsupportedVersion { ref found } if found == "3"));
        assert!(e.to_string().contains("version"));
    }

    #[test]
    fn malformed_json_reports_where() {
        let e = parse(b"{\"version\":\"4\",\"alerts\":[{").unwrap_err();
        assert!(matches!(e, PayloadError::Malformed { .. }), "{e}");
    }

    #[test]
    fn bad_timestamp_reports_its_path() {
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        v["alerts"][0]["startsAt"] = "yesterday".into();
        let e = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(e.contains("alerts[0].startsAt"), "{e}");
    }

    #[test]
    fn unknown_status_is_rejected_with_its_path() {
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        v["alerts"][0]["status"] = "pending".into();
        let e = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(e.contains("alerts[0].status"), "{e}");
    }

    #[test]
    fn alert_without_alertname_is_rejected() {
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        v["alerts"][0]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("alertname");
        let e = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(e.contains("alerts[0].labels.alertname"), "{e}");
    }

    #[test]
    fn missing_alerts_field_is_rejected() {
        let e = parse(br#"{"version":"4"}"#).unwrap_err().to_string();
        assert!(e.contains("alerts"), "{e}");
    }
}
