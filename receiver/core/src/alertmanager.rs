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
    /// An alert carries more, or larger, labels or annotations than [`AlertLimits`] allow.
    #[error("`{path}` is too large: {message}")]
    TooLarge { path: String, message: String },
}

/// Longest label or annotation name, in bytes. Prometheus names are identifiers;
/// nothing real comes close.
pub const MAX_NAME_BYTES: usize = 256;

/// Longest alert fingerprint, in bytes. Alertmanager's are 16 hex digits.
pub const MAX_FINGERPRINT_BYTES: usize = 128;

/// Bounds on what one alert may carry, checked at parse time: alert senders are
/// untrusted, and what heal8s accepts it keeps (queue, plans, records, the
/// outcome view). A real Alertmanager alert is a few kilobytes: tens of labels
/// of tens of bytes, and annotations (summary, description, runbook) of a few
/// hundred. The defaults are generous for those and bound memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertLimits {
    /// Largest label value, in bytes (`--max-label-bytes`).
    pub label_value_bytes: usize,
    /// Largest annotation value, `generatorURL` or `groupKey`, in bytes
    /// (`--max-annotation-bytes`).
    pub annotation_value_bytes: usize,
    /// Most labels, and most annotations, one alert may carry (`--max-labels-per-alert`).
    pub entries: usize,
    /// Most bytes one alert may carry in all: the names and values of its labels
    /// and annotations, its `generatorURL` and fingerprint, and the delivery's
    /// `groupKey` and `receiver` (each queued signal keeps a copy) (`--max-alert-bytes`).
    pub alert_bytes: usize,
}

impl Default for AlertLimits {
    fn default() -> AlertLimits {
        AlertLimits {
            label_value_bytes: 4 * 1024,
            annotation_value_bytes: 16 * 1024,
            entries: 128,
            alert_bytes: 64 * 1024,
        }
    }
}

impl AlertLimits {
    /// Every problem with these limits (zero, or a value limit above the alert limit).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, v) in [
            ("--max-label-bytes", self.label_value_bytes),
            ("--max-annotation-bytes", self.annotation_value_bytes),
            ("--max-labels-per-alert", self.entries),
            ("--max-alert-bytes", self.alert_bytes),
        ] {
            if v == 0 {
                out.push(format!("{flag} must be greater than 0"));
            }
        }
        for (flag, v) in [
            ("--max-label-bytes", self.label_value_bytes),
            ("--max-annotation-bytes", self.annotation_value_bytes),
        ] {
            if v > self.alert_bytes {
                out.push(format!(
                    "{flag} ({v}) must not exceed --max-alert-bytes ({})",
                    self.alert_bytes
                ));
            }
        }
        out
    }
}

/// A name as shown in an error: quoted with control characters escaped, and
/// cut after 64 bytes (the sender's own name can be the oversized part).
fn shown(name: &str) -> String {
    const SHOWN: usize = 64;
    if name.len() <= SHOWN {
        return format!("{name:?}");
    }
    let mut end = SHOWN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &name[..end], name.len())
}

fn too_large(path: String, message: String) -> PayloadError {
    PayloadError::TooLarge { path, message }
}

/// Check one label or annotation map against the limits; the bytes it carries.
fn check_map(
    path: &str,
    map: &BTreeMap<String, String>,
    value_limit: (usize, &str),
    limits: &AlertLimits,
) -> Result<usize, PayloadError> {
    if map.len() > limits.entries {
        return Err(too_large(
            path.to_string(),
            format!(
                "{} entries; the limit is {} (--max-labels-per-alert)",
                map.len(),
                limits.entries
            ),
        ));
    }
    let mut bytes = 0;
    for (name, value) in map {
        if name.len() > MAX_NAME_BYTES {
            return Err(too_large(
                format!("{path}[{}]", shown(name)),
                format!(
                    "the name is {} bytes; the limit is {MAX_NAME_BYTES}",
                    name.len()
                ),
            ));
        }
        if value.len() > value_limit.0 {
            return Err(too_large(
                format!("{path}[{}]", shown(name)),
                format!(
                    "the value is {} bytes; the limit is {} ({})",
                    value.len(),
                    value_limit.0,
                    value_limit.1
                ),
            ));
        }
        bytes += name.len() + value.len();
    }
    Ok(bytes)
}

/// Check one string field against a limit.
fn check_text(path: &str, text: &str, limit: (usize, &str)) -> Result<usize, PayloadError> {
    if text.len() > limit.0 {
        return Err(too_large(
            path.to_string(),
            format!(
                "{} bytes; the limit is {} ({})",
                text.len(),
                limit.0,
                limit.1
            ),
        ));
    }
    Ok(text.len())
}

/// Check a parsed payload against `limits`; the first problem, by path.
fn check_limits(p: &WebhookPayload, limits: &AlertLimits) -> Result<(), PayloadError> {
    let label = (limits.label_value_bytes, "--max-label-bytes");
    let annotation = (limits.annotation_value_bytes, "--max-annotation-bytes");
    check_map("groupLabels", &p.group_labels, label, limits)?;
    check_map("commonLabels", &p.common_labels, label, limits)?;
    check_map(
        "commonAnnotations",
        &p.common_annotations,
        annotation,
        limits,
    )?;
    check_text("externalURL", &p.external_url, annotation)?;
    check_text("status", &p.status, label)?;
    let shared = check_text("groupKey", &p.group_key, annotation)?
        + check_text("receiver", &p.receiver, label)?;
    for (i, a) in p.alerts.iter().enumerate() {
        let at = |field: &str| format!("alerts[{i}].{field}");
        let fingerprint = (MAX_FINGERPRINT_BYTES, "fixed");
        let bytes = shared
            + check_map(&at("labels"), &a.labels, label, limits)?
            + check_map(&at("annotations"), &a.annotations, annotation, limits)?
            + check_text(&at("generatorURL"), &a.generator_url, annotation)?
            + check_text(&at("fingerprint"), &a.fingerprint, fingerprint)?;
        if bytes > limits.alert_bytes {
            return Err(too_large(
                format!("alerts[{i}]"),
                format!(
                    "its labels, annotations, generatorURL, fingerprint, and the delivery's groupKey and receiver come to {bytes} bytes; the limit is {} (--max-alert-bytes)",
                    limits.alert_bytes
                ),
            ));
        }
    }
    Ok(())
}

/// Parse and check a webhook body under the default [`AlertLimits`].
pub fn parse(body: &[u8]) -> Result<WebhookPayload, PayloadError> {
    parse_with(body, &AlertLimits::default())
}

/// Parse and check a webhook body. The body is exactly one JSON object; every
/// accepted alert has an `alertname` label, a status and a start time, and
/// stays within `limits`; nothing else is required.
pub fn parse_with(body: &[u8], limits: &AlertLimits) -> Result<WebhookPayload, PayloadError> {
    // the common case, fast; a body that fails is parsed again for the
    // path to what is wrong
    let payload = match serde_json::from_slice::<WebhookPayload>(body) {
        Ok(p) => p,
        Err(_) => parse_for_error(body)?,
    };
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
    check_limits(&payload, limits)?;
    Ok(payload)
}

/// `WebhookPayload` parsed keeping the path to the first thing wrong.
fn parse_for_error(body: &[u8]) -> Result<WebhookPayload, PayloadError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let payload: WebhookPayload = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        PayloadError::Malformed {
            // the top level, or a top-level key that is empty
            path: match path.as_str() {
                "." => "$".into(),
                "" => r#"$[""]"#.into(),
                _ => path,
            },
            message: e.into_inner().to_string(),
        }
    })?;
    // whitespace may follow the object; anything else (a second payload, junk) is refused
    de.end().map_err(|e| PayloadError::Malformed {
        path: "$".into(),
        message: format!(
            "data after the JSON object at line {} column {}; send exactly one payload per request",
            e.line(),
            e.column()
        ),
    })?;
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
    fn trailing_data_after_the_payload_is_rejected() {
        let junk = format!("{FIRING}xyz");
        let e = parse(junk.as_bytes()).unwrap_err();
        assert!(matches!(e, PayloadError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains("data after the JSON object"), "{e}");
        let twice = format!("{FIRING}{FIRING}");
        assert!(parse(twice.as_bytes()).is_err());
        // trailing whitespace (a newline from curl -d @file) is fine
        assert!(parse(format!("{FIRING}\n \t").as_bytes()).is_ok());
    }

    fn with_label(name: &str, value: &str) -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        v["alerts"][0]["labels"][name] = value.into();
        v
    }

    #[test]
    fn oversized_label_value_is_refused_naming_the_alert_and_label() {
        let limits = AlertLimits::default();
        let ok = with_label("big", &"x".repeat(limits.label_value_bytes));
        assert!(parse(ok.to_string().as_bytes()).is_ok());
        let v = with_label("big", &"x".repeat(limits.label_value_bytes + 1));
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert!(matches!(e, PayloadError::TooLarge { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains(r#"alerts[0].labels["big"]"#), "{e}");
        assert!(e.contains("--max-label-bytes"), "{e}");
    }

    #[test]
    fn oversized_label_name_is_shown_cut_and_escaped() {
        let name = format!("\u{1b}]0;pwned\u{7}{}", "n".repeat(1000));
        let e = parse(with_label(&name, "v").to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("alerts[0].labels["), "{e}");
        assert!(e.contains("bytes)"), "{e}");
        assert!(
            e.len() < 400,
            "the error echoes the whole name: {} bytes",
            e.len()
        );
        assert!(!e.contains('\u{1b}'), "{e:?}");
    }

    #[test]
    fn too_many_labels_or_annotations_are_refused() {
        let limits = AlertLimits::default();
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        for i in 0..=limits.entries {
            v["alerts"][0]["annotations"][format!("a{i}")] = "x".into();
        }
        let e = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(e.contains("alerts[0].annotations"), "{e}");
        assert!(e.contains("--max-labels-per-alert"), "{e}");
    }

    #[test]
    fn an_alert_over_its_total_is_refused_though_each_value_fits() {
        let limits = AlertLimits {
            alert_bytes: 8 * 1024,
            ..AlertLimits::default()
        };
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        for i in 0..3 {
            v["alerts"][0]["labels"][format!("l{i}")] = "x".repeat(3000).into();
        }
        let e = parse_with(v.to_string().as_bytes(), &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`alerts[0]`"), "{e}");
        assert!(e.contains("--max-alert-bytes"), "{e}");
        assert!(parse(v.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn oversized_fingerprint_url_and_group_key_are_refused() {
        let big = "f".repeat(20 * 1024);
        for (field, path) in [
            ("fingerprint", "alerts[0].fingerprint"),
            ("generatorURL", "alerts[0].generatorURL"),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
            v["alerts"][0][field] = big.clone().into();
            let e = parse(v.to_string().as_bytes()).unwrap_err().to_string();
            assert!(e.contains(path), "{e}");
        }
        let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
        v["groupKey"] = big.into();
        let e = parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(e.contains("groupKey"), "{e}");
    }

    #[test]
    fn limits_report_every_problem() {
        let bad = AlertLimits {
            label_value_bytes: 0,
            annotation_value_bytes: 1 << 20,
            entries: 0,
            alert_bytes: 1024,
        };
        let p = bad.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(AlertLimits::default().problems().is_empty());
    }

    #[test]
    fn missing_alerts_field_is_rejected() {
        let e = parse(br#"{"version":"4"}"#).unwrap_err().to_string();
        assert!(e.contains("alerts"), "{e}");
    }
}
