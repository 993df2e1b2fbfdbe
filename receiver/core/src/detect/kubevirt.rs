//! KubeVirt VirtualMachine detector: stale VMs, VMs unschedulable too long, and
//! VMs in another error status (signalled so they are at least recorded).

use jiff::Timestamp;
use serde_json::Value;

use super::config::VmDetector;
use super::custom::{meta, target_of};
use super::{Finding, age, stale};
use crate::signal::Evidence;
use crate::target::ResourceType;

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
