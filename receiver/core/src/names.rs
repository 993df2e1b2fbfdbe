//! Names of the Kubernetes objects heal8s creates: valid RFC 1123 labels,
//! lower-case, at most 63 characters, ending in a stable hash of what they
//! stand for. Alert names and labels never reach a name as they are.

use crate::remediation::RemediationKind;
use crate::signal::label_fingerprint;
use crate::target::Target;

/// Lower-case, `[a-z0-9-]` only, no leading/trailing/double dashes.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// The name of the Remediation record of `remediation` on `target`:
/// `<remediation>-<kind>-<name>-<hash>`, cut to 63 characters, stable for the same
/// target and remediation whatever the alert was called.
pub fn record_name(target: &Target, remediation: RemediationKind) -> String {
    let id = [
        ("remediation".to_string(), remediation.as_str().to_string()),
        ("target".to_string(), target.key()),
        (
            "container".to_string(),
            target.container.clone().unwrap_or_default(),
        ),
    ]
    .into_iter()
    .collect();
    let hash = &label_fingerprint(&id)[..10];
    let readable = sanitize(&format!(
        "{}-{}-{}",
        remediation.as_str(),
        target.kind.kind_name(),
        target.name
    ));
    let room = 63 - hash.len() - 1;
    let mut head: String = readable.chars().take(room).collect();
    while head.ends_with('-') {
        head.pop();
    }
    format!("{head}-{hash}")
}

/// The namespace of the Remediation record of `target`: the target's own;
/// `None` (heal8s's namespace) for cluster-scoped targets such as nodes.
pub fn record_namespace(target: &Target) -> Option<&str> {
    match target.kind {
        crate::target::TargetKind::Node | crate::target::TargetKind::Namespace => None,
        _ => target.namespace.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{ResourceType, TargetKind, is_dns1123_label};

    #[test]
    fn records_live_in_the_targets_namespace_and_cluster_scoped_ones_in_heal8s_own() {
        let pod = Target::new(TargetKind::Pod, Some("shop"), "api-1");
        assert_eq!(record_namespace(&pod), Some("shop"));
        let node = Target::new(TargetKind::Node, None, "n1");
        assert_eq!(record_namespace(&node), None);
        let ns = Target::new(TargetKind::Namespace, Some("test-1"), "test-1");
        assert_eq!(record_namespace(&ns), None);
    }

    #[test]
    fn names_are_rfc1123_labels_and_stable() {
        let t = Target::new(TargetKind::Pod, Some("shop"), "api-7d9c-x2");
        let n = record_name(&t, RemediationKind::DeletePod);
        assert!(n.starts_with("delete-pod-pod-api-7d9c-x2-"), "{n}");
        assert!(is_dns1123_label(&n), "{n}");
        assert_eq!(n, record_name(&t, RemediationKind::DeletePod));
        assert_ne!(n, record_name(&t, RemediationKind::EvictPod));
        let other_ns = Target::new(TargetKind::Pod, Some("web"), "api-7d9c-x2");
        assert_ne!(n, record_name(&other_ns, RemediationKind::DeletePod));
    }

    #[test]
    fn long_and_odd_names_are_cut_and_cleaned() {
        let long = "a".repeat(250);
        let t = Target::new(TargetKind::Node, None, &format!("{long}.example.com"));
        let n = record_name(&t, RemediationKind::DrainNode);
        assert_eq!(n.len(), 63);
        assert!(is_dns1123_label(&n), "{n}");
        let cr = Target::new(
            TargetKind::Custom(ResourceType::from_api_version(
                "kubevirt.io/v1",
                "VirtualMachineInstance",
            )),
            Some("e2e"),
            "vm.a",
        );
        let n = record_name(&cr, RemediationKind::CleanupResource);
        assert!(
            n.starts_with("cleanup-resource-virtualmachineinstance-vm-a-"),
            "{n}"
        );
        assert!(is_dns1123_label(&n));
    }
}
