//! In-cluster detectors: pure predicates over Kubernetes objects that produce
//! the same `Signal`s alerts do, plus the emitter that turns a stream of
//! observations into signals (new, re-signalled while persisting, resolved).
//!
//! Owns: what counts as a problem, for pods, nodes, KubeVirt VMs, custom
//! resources and namespaces. Must not watch or act: receiver-k8s feeds objects
//! in and sends the signals on.

pub mod config;
pub mod custom;
pub mod kubevirt;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod strain;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

pub use config::{Detectors, Features, Profile};

use crate::alertmanager::AlertStatus;
use crate::signal::{Evidence, Signal, Source, label_fingerprint};
use crate::target::{ResourceType, Target, TargetKind};

/// The label carrying the detector's name on every detector signal.
pub const DETECTOR_LABEL: &str = "heal8s_detector";

/// One problem a detector found on one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The signal name, used as `alertname` (e.g. `Heal8sPodCrashLooping`).
    pub name: &'static str,
    /// The detector: `pods`, `nodes`, `virtual-machines`, `custom-resources`, `namespaces`.
    pub detector: &'static str,
    pub target: Target,
    /// A short reason such as `CrashLoopBackOff` or `OOMKilled`.
    pub reason: String,
    /// When the condition started, as well as the object tells.
    pub since: Timestamp,
    pub evidence: Evidence,
    /// One sentence for humans.
    pub summary: String,
}

impl Finding {
    /// The identity of this problem series: detector name, target and container
    /// (not the reason, which may flap between e.g. Error and CrashLoopBackOff).
    pub fn fingerprint(&self) -> String {
        let mut id = BTreeMap::new();
        id.insert("alertname".to_string(), self.name.to_string());
        id.insert("target".to_string(), self.target.key());
        if let Some(c) = &self.target.container {
            id.insert("container".to_string(), c.clone());
        }
        label_fingerprint(&id)
    }

    /// The signal for this finding with `status`.
    pub fn to_signal(&self, status: AlertStatus, now: Timestamp) -> Signal {
        let t = &self.target;
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), self.name.to_string());
        labels.insert(DETECTOR_LABEL.to_string(), self.detector.to_string());
        labels.insert("reason".to_string(), self.reason.clone());
        if let Some(ns) = &t.namespace {
            labels.insert("namespace".to_string(), ns.clone());
        }
        let name_label = match &t.kind {
            TargetKind::Pod => "pod",
            TargetKind::Node => "node",
            TargetKind::Namespace => "namespace",
            TargetKind::Deployment => "deployment",
            TargetKind::StatefulSet => "statefulset",
            TargetKind::DaemonSet => "daemonset",
            TargetKind::HorizontalPodAutoscaler => "horizontalpodautoscaler",
            TargetKind::Job => "job_name",
            TargetKind::Custom(r) => {
                labels.insert("customresource_group".into(), r.group.clone());
                labels.insert("customresource_version".into(), r.version.clone());
                labels.insert("customresource_kind".into(), r.kind.clone());
                "name"
            }
        };
        labels.insert(name_label.to_string(), t.name.clone());
        if let Some(c) = &t.container {
            labels.insert("container".to_string(), c.clone());
        }
        if let Some(n) = &t.node {
            labels.insert("node".to_string(), n.clone());
        }
        if let Some(u) = &t.uid {
            labels.insert("uid".to_string(), u.clone());
        }
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".to_string(), self.summary.clone());
        Signal {
            source: Source::Detector {
                name: self.detector.to_string(),
            },
            status,
            labels,
            annotations,
            target: Some(t.clone()),
            target_problem: None,
            evidence: self.evidence.clone(),
            first_seen: self.since,
            ended_at: (status == AlertStatus::Resolved).then_some(now),
            fingerprint: self.fingerprint(),
        }
    }
}

/// A watched resource type, written `plural.group/version` (or `plural/version` for core).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ResourceSpec {
    pub plural: String,
    pub group: String,
    pub version: String,
}

impl ResourceSpec {
    /// Parse `datavolumes.cdi.kubevirt.io/v1beta1`.
    pub fn parse(s: &str) -> Result<ResourceSpec, String> {
        let bad = || {
            format!("{s:?} is not `plural.group/version`, e.g. datavolumes.cdi.kubevirt.io/v1beta1")
        };
        let (left, version) = s.split_once('/').ok_or_else(bad)?;
        let (plural, group) = left.split_once('.').unwrap_or((left, ""));
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        };
        if !ok(plural) || !(group.is_empty() || ok(group)) || !ok(version) || version.contains('.')
        {
            return Err(bad());
        }
        Ok(ResourceSpec {
            plural: plural.into(),
            group: group.into(),
            version: version.into(),
        })
    }

    /// `group/version` or `version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource type with `kind` (learned from discovery).
    pub fn with_kind(&self, kind: &str) -> ResourceType {
        ResourceType {
            group: self.group.clone(),
            version: self.version.clone(),
            kind: kind.to_string(),
        }
    }
}

impl std::fmt::Display for ResourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}/{}", self.plural, self.version)
        } else {
            write!(f, "{}.{}/{}", self.plural, self.group, self.version)
        }
    }
}

/// How long ago `t` was, zero for the future.
pub fn age(now: Timestamp, t: Timestamp) -> Duration {
    let d = now.duration_since(t);
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

/// The finding for an object created at `created` that is older than `stale_age` at `now`.
pub fn stale(
    name: &'static str,
    detector: &'static str,
    target: Target,
    what: &str,
    created: Timestamp,
    stale_age: crate::duration::PromDuration,
    now: Timestamp,
) -> Option<Finding> {
    (age(now, created) >= stale_age.get()).then(|| Finding {
        name,
        detector,
        target,
        reason: "Stale".into(),
        since: plus(created, stale_age.get()),
        evidence: Evidence {
            reason: Some("Stale".into()),
            details: [("createdAt".to_string(), created.to_string())].into(),
            ..Evidence::default()
        },
        summary: format!(
            "{what} was created at {created}, longer ago than the stale age {stale_age}"
        ),
    })
}

/// `t + d`, saturating.
pub fn plus(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|sd| t.checked_add(sd).ok())
        .unwrap_or(t)
}

#[derive(Debug, Clone)]
struct Active {
    last_signalled: Timestamp,
    finding: Finding,
}

/// Turns per-object observations into signals: a new problem is signalled at
/// once, a persisting one again every `resignal_after` (so a refusal by budget
/// or cooldown is retried, level-triggered), and a problem that disappears is
/// signalled resolved.
#[derive(Debug)]
pub struct Emitter {
    resignal_after: Duration,
    by_object: HashMap<String, HashMap<String, Active>>,
}

impl Emitter {
    /// An emitter re-signalling persisting problems every `resignal_after`.
    pub fn new(resignal_after: Duration) -> Emitter {
        Emitter {
            resignal_after,
            by_object: HashMap::new(),
        }
    }

    /// `findings` is everything now wrong with the object `object_key`.
    pub fn observe(
        &mut self,
        object_key: &str,
        findings: Vec<Finding>,
        now: Timestamp,
    ) -> Vec<Signal> {
        let mut out = Vec::new();
        let previous = self.by_object.remove(object_key).unwrap_or_default();
        let mut current = HashMap::new();
        for f in findings {
            let fp = f.fingerprint();
            let last = previous.get(&fp).map(|a| a.last_signalled);
            let due = last.is_none_or(|l| age(now, l) >= self.resignal_after);
            if due {
                out.push(f.to_signal(AlertStatus::Firing, now));
            }
            current.insert(
                fp,
                Active {
                    last_signalled: if due { now } else { last.unwrap_or(now) },
                    finding: f,
                },
            );
        }
        for (fp, a) in previous {
            if !current.contains_key(&fp) {
                out.push(a.finding.to_signal(AlertStatus::Resolved, now));
            }
        }
        if !current.is_empty() {
            self.by_object.insert(object_key.to_string(), current);
        }
        out
    }

    /// The object is gone: resolve whatever was wrong with it.
    pub fn forget(&mut self, object_key: &str, now: Timestamp) -> Vec<Signal> {
        self.observe(object_key, Vec::new(), now)
    }

    /// How many problems are currently active.
    pub fn active(&self) -> usize {
        self.by_object.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn finding(name: &'static str, pod: &str) -> Finding {
        let mut target = Target::new(TargetKind::Pod, Some("shop"), pod);
        target.container = Some("api".into());
        Finding {
            name,
            detector: "pods",
            target,
            reason: "CrashLoopBackOff".into(),
            since: t(0),
            evidence: Evidence::default(),
            summary: "s".into(),
        }
    }

    #[test]
    fn detector_signal_carries_routable_labels_and_target() {
        let s = finding("Heal8sPodCrashLooping", "api-1").to_signal(AlertStatus::Firing, t(5));
        assert_eq!(s.labels["alertname"], "Heal8sPodCrashLooping");
        assert_eq!(s.labels["pod"], "api-1");
        assert_eq!(s.labels["namespace"], "shop");
        assert_eq!(s.labels["container"], "api");
        assert_eq!(s.labels[DETECTOR_LABEL], "pods");
        assert_eq!(s.source.kind(), "detector");
        // the labels alone give the same target as the detector did
        assert_eq!(crate::target::extract(&s.labels).unwrap(), s.target);
    }

    #[test]
    fn emitter_signals_new_then_resignals_persisting_then_resolves() {
        let mut e = Emitter::new(Duration::from_secs(600));
        let f = finding("Heal8sPodCrashLooping", "api-1");
        let s = e.observe("Pod/shop/api-1", vec![f.clone()], t(0));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].status, AlertStatus::Firing);
        assert!(
            e.observe("Pod/shop/api-1", vec![f.clone()], t(30))
                .is_empty()
        );
        assert_eq!(
            e.observe("Pod/shop/api-1", vec![f.clone()], t(600)).len(),
            1
        );
        let s = e.observe("Pod/shop/api-1", vec![], t(630));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].status, AlertStatus::Resolved);
        assert_eq!(e.active(), 0);
    }

    #[test]
    fn emitter_resolves_everything_of_a_deleted_object() {
        let mut e = Emitter::new(Duration::from_secs(600));
        let a = finding("Heal8sPodCrashLooping", "api-1");
        let b = finding("Heal8sContainerOOMKilled", "api-1");
        assert_eq!(e.observe("Pod/shop/api-1", vec![a, b], t(0)).len(), 2);
        let s = e.forget("Pod/shop/api-1", t(1));
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.status == AlertStatus::Resolved));
    }

    #[test]
    fn resource_specs_parse() {
        let r = ResourceSpec::parse("datavolumes.cdi.kubevirt.io/v1beta1").unwrap();
        assert_eq!(r.plural, "datavolumes");
        assert_eq!(r.api_version(), "cdi.kubevirt.io/v1beta1");
        assert_eq!(r.to_string(), "datavolumes.cdi.kubevirt.io/v1beta1");
        assert_eq!(ResourceSpec::parse("pods/v1").unwrap().api_version(), "v1");
        for bad in ["datavolumes", "Data.x/v1", "a.b/", "/v1", "a.b/v1/x"] {
            assert!(ResourceSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
