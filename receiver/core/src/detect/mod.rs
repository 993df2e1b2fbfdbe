//! In-cluster detectors: pure predicates over Kubernetes objects that produce
//! the same `Signal`s alerts do, plus the emitter that turns a stream of
//! observations into signals (new, re-signalled while persisting, resolved).
//!
//! Owns: what counts as a problem, for pods, nodes, KubeVirt VMs, custom
//! resources, namespaces, Services and Deployment rollouts. Must not watch or
//! act: receiver-k8s feeds objects in and sends the signals on.

pub mod config;
pub mod pod_view;
pub mod strain;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Node};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use config::{Features, Overrides, Profile, StrainRelief};

use crate::alertmanager::AlertStatus;
use crate::duration::PromDuration;
use crate::signal::{Evidence, Signal, Source, label_fingerprint};
use crate::target::{ResourceType, Target, TargetKind};

/// An object a detector looks at, as its watch delivers it.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    Pod(&'a pod_view::PodView),
    Node(&'a Node),
    Namespace(&'a Namespace),
    /// An object of a type found through discovery, as JSON, with its type.
    Dynamic(&'a serde_json::Value, &'a ResourceType),
    /// A Service with its namespace's EndpointSlices and pods.
    Service(&'a service::Backends<'a>),
    /// A Deployment with its namespace's ReplicaSets.
    Deployment(&'a rollout::Rollout<'a>),
}

/// What a detector watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    Pods,
    Nodes,
    Namespaces,
    /// Services, with their EndpointSlices and the pod cache.
    Services,
    /// Deployments, with their ReplicaSets.
    Deployments,
    /// A type that may not be installed, found by its kind.
    Kind(ResourceType),
    /// A type that may not be installed, found by its plural.
    Resource(ResourceSpec),
}

/// A detector as the watches use it: what it watches and what it finds.
/// Implemented by each detector's settings, in the detector's own file.
pub trait Detector: Send + Sync + std::fmt::Debug {
    /// Its name on signals (`heal8s_detector`) and in logs: `virtual-machines`.
    fn name(&self) -> &'static str;
    /// Whether it runs.
    fn enabled(&self) -> bool;
    /// The types it watches.
    fn watches(&self) -> Vec<Watched>;
    /// Everything it finds wrong with `o` at `now`.
    fn detect(&self, o: Object<'_>, now: Timestamp) -> Vec<Finding>;
}

/// A detector's settings as the policy holds them (`detectors.<KEY>`): its
/// defaults per profile, its checks and the command-line overrides it takes.
pub trait DetectorSpec: Detector + Sized + Clone + Serialize + DeserializeOwned + 'static {
    /// Its key under `detectors` in the policy: `virtualMachines`.
    const KEY: &'static str;
    /// The defaults of `profile`.
    fn defaults(profile: Profile) -> Self;
    /// Every problem, as (path below `detectors.<KEY>`, message).
    fn validate(&self) -> Vec<(String, String)>;
    /// Take the command line's overrides that concern it.
    fn apply(&mut self, _o: &Overrides) {}
}

/// Add a problem when `d` (at `path`) is shorter than `lo` seconds.
pub(crate) fn at_least(out: &mut Vec<(String, String)>, path: &str, d: PromDuration, lo: u64) {
    if d.get().as_secs() < lo {
        out.push((
            path.to_string(),
            format!("must be at least {}", PromDuration::secs(lo)),
        ));
    }
}

/// When VMs, custom resources and watched namespaces are stale by default.
fn stale_age_of(profile: Profile) -> PromDuration {
    if profile == Profile::TestCluster {
        PromDuration::secs(6 * 60)
    } else {
        PromDuration::secs(24 * 3600)
    }
}

/// The registry: one line per detector, `field: module::Settings`. It
/// declares the module and generates [`Detectors`] (the policy's
/// `detectors` section) and its dispatch.
macro_rules! registry {
    ($($field:ident : $module:ident :: $ty:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// All detector settings.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Detectors {
            $(pub $field: $module::$ty,)+
            pub strain_relief: StrainRelief,
            /// How often every cached object is re-evaluated (time-based conditions need it).
            pub resync: PromDuration,
        }

        impl Detectors {
            /// The defaults of `profile`.
            pub fn for_profile(profile: Profile) -> Detectors {
                Detectors {
                    $($field: <$module::$ty as DetectorSpec>::defaults(profile),)+
                    strain_relief: StrainRelief {
                        max_per_run: 2,
                        every: PromDuration::secs(300),
                    },
                    resync: PromDuration::secs(30),
                }
            }

            /// Every problem, as (path below `detectors`, message).
            pub fn validate(&self) -> Vec<(String, String)> {
                let mut out = Vec::new();
                $(
                    for (path, msg) in DetectorSpec::validate(&self.$field) {
                        out.push((format!("{}.{path}", <$module::$ty as DetectorSpec>::KEY), msg));
                    }
                )+
                at_least(&mut out, "resync", self.resync, 1);
                at_least(&mut out, "strainRelief.every", self.strain_relief.every, 1);
                if !(1..=100).contains(&self.strain_relief.max_per_run) {
                    out.push((
                        "strainRelief.maxPerRun".into(),
                        "must be between 1 and 100".into(),
                    ));
                }
                out
            }

            /// Take the command line's overrides, each detector those that concern it.
            pub fn apply(&mut self, o: &Overrides) {
                $(DetectorSpec::apply(&mut self.$field, o);)+
            }

            /// The detectors that run, in registry order.
            pub fn enabled(&self) -> Vec<Arc<dyn Detector>> {
                let all: Vec<Arc<dyn Detector>> = vec![$(Arc::new(self.$field.clone()),)+];
                all.into_iter().filter(|d| d.enabled()).collect()
            }

            /// Every detector's policy key, in registry order.
            pub const KEYS: &'static [&'static str] = &[$(<$module::$ty as DetectorSpec>::KEY,)+];
        }
    };
}

registry! {
    pods: pod::PodDetector,
    nodes: node::NodeDetector,
    virtual_machines: kubevirt::VmDetector,
    custom_resources: custom::CustomResourceDetector,
    namespaces: namespace::NamespaceDetector,
    services: service::ServiceDetector,
    rollouts: rollout::RolloutDetector,
}

/// The label carrying the detector's name on every detector signal.
pub const DETECTOR_LABEL: &str = "heal8s_detector";

/// One problem a detector found on one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The signal name, used as `alertname` (e.g. `Heal8sPodCrashLooping`).
    pub name: &'static str,
    /// The detector: `pods`, `nodes`, `virtual-machines`, `custom-resources`,
    /// `namespaces`, `services`, `rollouts`.
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
            received: None,
            trace: None,
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

    #[test]
    fn the_registry_keys_each_detector_as_the_policy_spells_it() {
        let d = Detectors::for_profile(Profile::TestCluster);
        let v = serde_json::to_value(&d).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.retain(|k| !matches!(*k, "strainRelief" | "resync"));
        let mut registered = Detectors::KEYS.to_vec();
        keys.sort_unstable();
        registered.sort_unstable();
        assert_eq!(keys, registered);
        // every detector runs in the test profile, each under its own name
        let names: Vec<&str> = d.enabled().iter().map(|d| d.name()).collect();
        assert_eq!(
            names,
            [
                "pods",
                "nodes",
                "virtual-machines",
                "custom-resources",
                "namespaces",
                "services",
                "rollouts"
            ]
        );
        assert_eq!(
            Detectors::for_profile(Profile::Production)
                .enabled()
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>(),
            ["pods", "nodes", "services", "rollouts"]
        );
    }

    #[test]
    fn each_detector_reports_its_problems_under_its_key() {
        let mut d = Detectors::for_profile(Profile::TestCluster);
        d.pods.restart_threshold = 0;
        d.virtual_machines.stale_age = PromDuration::secs(1);
        d.custom_resources.resources = vec!["secrets/v1".into()];
        d.namespaces.exclude = vec!["Bad Name".into()];
        d.services.after = PromDuration::secs(0);
        d.rollouts.namespaces = vec!["Bad Name".into()];
        d.resync = PromDuration::secs(0);
        let paths: Vec<String> = d.validate().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "pods.restartThreshold",
                "virtualMachines.staleAge",
                "customResources.resources[0]",
                "namespaces.exclude[0]",
                "services.after",
                "rollouts.namespaces[0]",
                "resync"
            ]
        );
    }

    #[test]
    fn overrides_reach_each_detector_that_takes_them() {
        let mut d = Detectors::for_profile(Profile::Production);
        d.apply(&Overrides {
            namespaces: vec!["ci-*".into()],
            exclude_namespaces: vec!["ci-keep".into()],
            stale_age: Some(PromDuration::secs(600)),
            resources: vec!["datavolumes.cdi.kubevirt.io/v1beta1".into()],
            strain_threshold_percent: Some(50),
        });
        assert_eq!(d.pods.namespaces, ["ci-*"]);
        assert_eq!(d.services.namespaces, ["ci-*"]);
        assert_eq!(d.rollouts.namespaces, ["ci-*"]);
        assert_eq!(d.namespaces.watch, ["ci-*"]);
        assert_eq!(d.namespaces.exclude, ["ci-keep"]);
        for a in [
            d.virtual_machines.stale_age,
            d.custom_resources.stale_age,
            d.namespaces.stale_age,
        ] {
            assert_eq!(a, PromDuration::secs(600));
        }
        assert_eq!(
            d.custom_resources.watches(),
            [Watched::Resource(
                ResourceSpec::parse("datavolumes.cdi.kubevirt.io/v1beta1").unwrap()
            )]
        );
        assert_eq!(d.nodes.strain_threshold_percent, 50);
        // an empty override changes nothing
        let before = d.clone();
        d.apply(&Overrides::default());
        assert_eq!(d, before);
    }

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
        assert_eq!(s.source.kind(), crate::signal::SourceKind::Detector);
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
