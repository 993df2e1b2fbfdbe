//! Custom resource detector (KubeVirt, CDI, snapshots, clones, ... from a
//! configurable list): stale objects, objects stuck terminating on finalizers,
//! and objects in a failed/error phase or condition. Objects are plain JSON.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{Overrides, Profile};
use super::{Detector, DetectorSpec, Finding, Object, ResourceSpec, Watched, age, at_least, stale};
use crate::duration::PromDuration;
use crate::signal::Evidence;
use crate::target::{ResourceType, Target, TargetKind};

/// Custom resource detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomResourceDetector {
    pub enabled: bool,
    /// Resources to watch, as `plural.group/version` (e.g. `datavolumes.cdi.kubevirt.io/v1beta1`).
    pub resources: Vec<String>,
    /// Objects older than this are stale.
    pub stale_age: PromDuration,
    /// Objects terminating (deletionTimestamp set, finalizers left) this long are stuck.
    pub terminating_after: PromDuration,
}

/// The custom resources watched by default (the k8s-healer seed's list).
pub const DEFAULT_CUSTOM_RESOURCES: &[&str] = &[
    "virtualmachineinstances.kubevirt.io/v1",
    "virtualmachineinstancemigrations.kubevirt.io/v1",
    "virtualmachineinstancereplicasets.kubevirt.io/v1",
    "datavolumes.cdi.kubevirt.io/v1beta1",
    "virtualmachinesnapshots.snapshot.kubevirt.io/v1beta1",
    "virtualmachinerestores.snapshot.kubevirt.io/v1beta1",
    "virtualmachineclones.clone.kubevirt.io/v1beta1",
    "virtualmachineinstancetypes.instancetype.kubevirt.io/v1beta1",
    "virtualmachinepreferences.instancetype.kubevirt.io/v1beta1",
    "network-attachment-definitions.k8s.cni.cncf.io/v1",
    "templates.template.openshift.io/v1",
];

impl DetectorSpec for CustomResourceDetector {
    const KEY: &'static str = "customResources";

    fn defaults(profile: Profile) -> CustomResourceDetector {
        CustomResourceDetector {
            enabled: profile == Profile::TestCluster,
            resources: DEFAULT_CUSTOM_RESOURCES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            stale_age: super::stale_age_of(profile),
            terminating_after: PromDuration::secs(5 * 60),
        }
    }

    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        at_least(&mut out, "staleAge", self.stale_age, 60);
        at_least(&mut out, "terminatingAfter", self.terminating_after, 1);
        for (i, r) in self.resources.iter().enumerate() {
            match ResourceSpec::parse(r) {
                Err(e) => out.push((format!("resources[{i}]"), e)),
                // what is listed here may be cleaned up: never a core,
                // workload or API-machinery type, nor heal8s's own records
                Ok(spec)
                    if crate::remediation::cleanup_resource::FORBIDDEN_GROUPS
                        .contains(&spec.group.as_str()) =>
                {
                    out.push((
                        format!("resources[{i}]"),
                        format!(
                            "{r:?} is in API group {:?}, whose types heal8s never cleans up; list custom resources only",
                            spec.group
                        ),
                    ));
                }
                Ok(_) => {}
            }
        }
        out
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(a) = o.stale_age {
            self.stale_age = a;
        }
        if !o.resources.is_empty() {
            self.resources.clone_from(&o.resources);
        }
    }
}

impl Detector for CustomResourceDetector {
    fn name(&self) -> &'static str {
        "custom-resources"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn watches(&self) -> Vec<Watched> {
        self.resources
            .iter()
            .filter_map(|r| ResourceSpec::parse(r).ok())
            .map(Watched::Resource)
            .collect()
    }

    fn detect(&self, o: Object<'_>, now: Timestamp) -> Vec<Finding> {
        match o {
            Object::Dynamic(v, rt) => detect(v, rt, self, now),
            _ => Vec::new(),
        }
    }
}


/// The metadata detectors read from a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub created: Option<Timestamp>,
    pub deleting_since: Option<Timestamp>,
    pub finalizers: Vec<String>,
}

fn ts(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

/// Read the metadata of a JSON object; `None` without a name.
pub fn meta(obj: &Value) -> Option<Meta> {
    let m = obj.get("metadata")?;
    Some(Meta {
        name: m.get("name")?.as_str()?.to_string(),
        namespace: m
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        uid: m.get("uid").and_then(Value::as_str).map(str::to_string),
        created: m.get("creationTimestamp").and_then(ts),
        deleting_since: m.get("deletionTimestamp").and_then(ts),
        finalizers: m
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The target for a JSON object of type `rt`.
pub fn target_of(rt: &ResourceType, m: &Meta) -> Target {
    let mut t = Target::new(
        TargetKind::Custom(rt.clone()),
        m.namespace.as_deref(),
        &m.name,
    );
    t.uid = m.uid.clone();
    t
}

/// How long the object has been terminating with finalizers left, if it is.
pub fn stuck_terminating_for(m: &Meta, now: Timestamp) -> Option<std::time::Duration> {
    m.deleting_since
        .filter(|_| !m.finalizers.is_empty())
        .map(|d| age(now, d))
}

/// An error phase or condition, if the object reports one.
pub fn failure(obj: &Value) -> Option<String> {
    let status = obj.get("status")?;
    if let Some(phase) = status.get("phase").and_then(Value::as_str) {
        let p = phase.to_ascii_lowercase();
        if p.contains("fail") || p.contains("error") {
            return Some(format!("phase {phase}"));
        }
    }
    for c in status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ty = c.get("type").and_then(Value::as_str).unwrap_or("");
        let st = c.get("status").and_then(Value::as_str).unwrap_or("");
        let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
        if (matches!(ty, "Failed" | "Failure" | "Error") && st == "True")
            || (ty == "Ready" && st == "False" && reason.to_ascii_lowercase().contains("error"))
        {
            return Some(
                format!("condition {ty}={st} {reason}")
                    .trim_end()
                    .to_string(),
            );
        }
    }
    None
}

/// Everything the detector finds wrong with `obj` (of type `rt`) at `now`.
pub fn detect(
    obj: &Value,
    rt: &ResourceType,
    cfg: &CustomResourceDetector,
    now: Timestamp,
) -> Vec<Finding> {
    let Some(m) = meta(obj) else {
        return Vec::new();
    };
    let target = target_of(rt, &m);
    let what = format!(
        "{} {}",
        rt.kind,
        target
            .namespace
            .as_deref()
            .map_or(m.name.clone(), |ns| format!("{ns}/{}", m.name))
    );
    if let Some(d) = stuck_terminating_for(&m, now) {
        if d < cfg.terminating_after.get() {
            return Vec::new();
        }
        let since = m.deleting_since.unwrap_or(now);
        return vec![Finding {
            name: "Heal8sResourceStuckTerminating",
            detector: "custom-resources",
            target,
            reason: "StuckTerminating".into(),
            since,
            evidence: Evidence {
                reason: Some("StuckTerminating".into()),
                details: [("finalizers".to_string(), m.finalizers.join(","))].into(),
                ..Evidence::default()
            },
            summary: format!(
                "{what} has been terminating since {since}, held by finalizers {}",
                m.finalizers.join(", ")
            ),
        }];
    }
    if m.deleting_since.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(f) = failure(obj) {
        out.push(Finding {
            name: "Heal8sResourceFailed",
            detector: "custom-resources",
            target: target.clone(),
            reason: "Failed".into(),
            since: m.created.unwrap_or(now),
            evidence: Evidence {
                reason: Some(f.clone()),
                ..Evidence::default()
            },
            summary: format!("{what} reports {f}"),
        });
    }
    if let Some(c) = m.created {
        out.extend(stale(
            "Heal8sStaleResource",
            "custom-resources",
            target,
            &what,
            c,
            cfg.stale_age,
            now,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detectors;
    use crate::detect::config::Profile;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn dv() -> ResourceType {
        ResourceType::from_api_version("cdi.kubevirt.io/v1beta1", "DataVolume")
    }

    fn cfg() -> CustomResourceDetector {
        Detectors::for_profile(Profile::TestCluster).custom_resources
    }

    #[test]
    fn stale_after_the_stale_age() {
        let o = json!({"metadata": {"name": "dv", "namespace": "e2e-1", "creationTimestamp": t(0).to_string()}});
        assert!(detect(&o, &dv(), &cfg(), t(359)).is_empty());
        let f = detect(&o, &dv(), &cfg(), t(360));
        assert_eq!(f[0].name, "Heal8sStaleResource");
        assert_eq!(f[0].target.namespace.as_deref(), Some("e2e-1"));
    }

    #[test]
    fn stuck_terminating_names_its_finalizers() {
        let o = json!({"metadata": {"name": "dv", "namespace": "e2e-1", "creationTimestamp": t(0).to_string(),
            "deletionTimestamp": t(10).to_string(), "finalizers": ["cdi.kubevirt.io/dataVolumeFinalizer"]}});
        assert!(detect(&o, &dv(), &cfg(), t(100)).is_empty());
        let f = detect(&o, &dv(), &cfg(), t(310));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "Heal8sResourceStuckTerminating");
        assert_eq!(
            f[0].evidence.details["finalizers"],
            "cdi.kubevirt.io/dataVolumeFinalizer"
        );
    }

    #[test]
    fn failed_phase_or_condition() {
        let o = json!({"metadata": {"name": "dv", "creationTimestamp": t(0).to_string()}, "status": {"phase": "Failed"}});
        assert_eq!(
            detect(&o, &dv(), &cfg(), t(1))[0].name,
            "Heal8sResourceFailed"
        );
        let c = json!({"metadata": {"name": "x"}, "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "ImportError"}]}});
        assert!(failure(&c).is_some());
        let ok = json!({"metadata": {"name": "x"}, "status": {"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(failure(&ok), None);
    }
}
