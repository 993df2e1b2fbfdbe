//! KubeVirt VirtualMachine detector: stale VMs, VMs unschedulable too long, and
//! VMs in another error status (signalled so they are at least recorded).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{Overrides, Profile};
use super::custom::{meta, target_of};
use super::{Detector, DetectorSpec, Finding, Object, Watched, age, at_least, stale};
use crate::duration::PromDuration;
use crate::signal::Evidence;
use crate::target::ResourceType;

/// KubeVirt VirtualMachine detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmDetector {
    pub enabled: bool,
    /// VMs older than this are stale.
    pub stale_age: PromDuration,
    /// `printableStatus: ErrorUnschedulable` for this long is signalled.
    pub unschedulable_after: PromDuration,
}

impl DetectorSpec for VmDetector {
    const KEY: &'static str = "virtualMachines";

    fn defaults(profile: Profile) -> VmDetector {
        VmDetector {
            enabled: profile == Profile::TestCluster,
            stale_age: super::stale_age_of(profile),
            unschedulable_after: PromDuration::secs(3 * 60),
        }
    }

    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        at_least(&mut out, "staleAge", self.stale_age, 60);
        at_least(&mut out, "unschedulableAfter", self.unschedulable_after, 1);
        out
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(a) = o.stale_age {
            self.stale_age = a;
        }
    }
}

impl Detector for VmDetector {
    fn name(&self) -> &'static str {
        "virtual-machines"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn watches(&self) -> Vec<Watched> {
        let t = vm_type();
        vec![Watched::Kind(t)]
    }

    fn detect(&self, o: Object<'_>, now: Timestamp) -> Vec<Finding> {
        match o {
            Object::Dynamic(v, _) => detect(v, self, now),
            _ => Vec::new(),
        }
    }
}


/// Printable statuses that mean the VM is broken.
pub const ERROR_STATUSES: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "CrashLoopBackOff",
    "DataVolumeError",
    "ErrorPvcNotFound",
    "ErrorDataVolumeNotFound",
];

/// The KubeVirt VirtualMachine resource type.
pub fn vm_type() -> ResourceType {
    ResourceType::from_api_version("kubevirt.io/v1", "VirtualMachine")
}

/// Everything the detector finds wrong with the VM `obj` at `now`.
pub fn detect(obj: &Value, cfg: &VmDetector, now: Timestamp) -> Vec<Finding> {
    let Some(m) = meta(obj) else {
        return Vec::new();
    };
    if m.deleting_since.is_some() {
        return Vec::new();
    }
    let target = target_of(&vm_type(), &m);
    let what = format!(
        "VirtualMachine {}/{}",
        m.namespace.as_deref().unwrap_or("-"),
        m.name
    );
    let status = obj
        .pointer("/status/printableStatus")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = Vec::new();
    if status == "ErrorUnschedulable" {
        let since = obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("reason").and_then(Value::as_str) == Some("Unschedulable"))
            .and_then(|c| c.get("lastTransitionTime"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .or(m.created)
            .unwrap_or(now);
        if age(now, since) >= cfg.unschedulable_after.get() {
            out.push(Finding {
                name: "Heal8sVirtualMachineUnschedulable",
                detector: "virtual-machines",
                target: target.clone(),
                reason: status.into(),
                since,
                evidence: Evidence {
                    reason: Some(status.into()),
                    ..Evidence::default()
                },
                summary: format!("{what} has been unschedulable since {since}"),
            });
        }
    } else if ERROR_STATUSES.contains(&status) {
        out.push(Finding {
            name: "Heal8sVirtualMachineError",
            detector: "virtual-machines",
            target: target.clone(),
            reason: status.into(),
            since: m.created.unwrap_or(now),
            evidence: Evidence {
                reason: Some(status.into()),
                ..Evidence::default()
            },
            summary: format!("{what} is in {status}"),
        });
    }
    if let Some(c) = m.created {
        out.extend(stale(
            "Heal8sStaleVirtualMachine",
            "virtual-machines",
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

    fn cfg() -> VmDetector {
        Detectors::for_profile(Profile::TestCluster).virtual_machines
    }

    fn vm(status: &str) -> Value {
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
               "metadata": {"name": "vm-a", "namespace": "e2e-1", "creationTimestamp": t(0).to_string()},
               "status": {"printableStatus": status}})
    }

    #[test]
    fn stale_vm_after_six_minutes() {
        assert!(detect(&vm("Running"), &cfg(), t(359)).is_empty());
        let f = detect(&vm("Running"), &cfg(), t(360));
        assert_eq!(f[0].name, "Heal8sStaleVirtualMachine");
        assert_eq!(f[0].target.kind.kind_name(), "VirtualMachine");
    }

    #[test]
    fn unschedulable_after_three_minutes_and_errors_at_once() {
        assert!(detect(&vm("ErrorUnschedulable"), &cfg(), t(179)).is_empty());
        assert_eq!(
            detect(&vm("ErrorUnschedulable"), &cfg(), t(180))[0].name,
            "Heal8sVirtualMachineUnschedulable"
        );
        assert_eq!(
            detect(&vm("DataVolumeError"), &cfg(), t(1))[0].name,
            "Heal8sVirtualMachineError"
        );
    }
}
