//! Detector and feature settings of the policy file, and the two profiles that
//! give them their defaults (`production`, `test-cluster`).
//!
//! Owns: the settings types, their defaults per profile, and their validation.

use serde::{Deserialize, Serialize};

use crate::duration::PromDuration;

/// A named set of defaults for `features` and `detectors`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Safe: pod healing and node cordon+drain on; node deletion, custom
    /// resource / VM / namespace cleanup and finalizer removal off.
    #[default]
    Production,
    /// Shared end-to-end test clusters: every cleanup on, stale age 6m,
    /// finalizer removal on.
    TestCluster,
}

impl Profile {
    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Production => "production",
            Profile::TestCluster => "test-cluster",
        }
    }
}

/// Which remediations may run at all. A disabled remediation is refused by
/// the guard (`disabled`) whatever the routes say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Features {
    /// delete-pod and evict-pod.
    pub heal_pods: bool,
    /// drain-node (cordon and drain).
    pub drain_nodes: bool,
    /// delete-node.
    pub delete_nodes: bool,
    /// cleanup-resource (custom resources, VMs, Jobs).
    pub cleanup_resources: bool,
    /// delete-namespace.
    pub delete_namespaces: bool,
    /// Removing stuck finalizers as a last resort (cleanup-resource with removeFinalizers).
    pub remove_finalizers: bool,
    /// Evicting non-test pods to free room for test namespaces while the cluster is strained.
    pub strain_eviction: bool,
}

impl Features {
    /// The defaults of `profile`.
    pub fn for_profile(profile: Profile) -> Features {
        let test = profile == Profile::TestCluster;
        Features {
            heal_pods: true,
            drain_nodes: true,
            delete_nodes: false,
            cleanup_resources: test,
            delete_namespaces: test,
            remove_finalizers: test,
            strain_eviction: false,
        }
    }
}

/// Pod detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodDetector {
    pub enabled: bool,
    /// A crash-looping container is signalled from this many restarts.
    pub restart_threshold: u32,
    /// Image pull and config errors, and waiting containers of running pods,
    /// are signalled after this long.
    pub waiting_after: PromDuration,
    /// Pods Pending this long are signalled.
    pub pending_after: PromDuration,
    /// Pods Unschedulable this long are signalled.
    pub unschedulable_after: PromDuration,
    /// Only pods in namespaces matching these patterns (`*` wildcards); empty = all.
    pub namespaces: Vec<String>,
}

/// Node detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeDetector {
    pub enabled: bool,
    /// Ready=False for this long is signalled (Heal8sNodeNotReady).
    pub not_ready_after: PromDuration,
    /// Ready=Unknown for this long is signalled (Heal8sNodeUnreachable).
    pub unknown_after: PromDuration,
    /// Share of nodes under Memory/Disk/PID pressure (percent) from which the cluster is "strained".
    pub strain_threshold_percent: u32,
}

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

/// Namespace detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceDetector {
    pub enabled: bool,
    /// Names or `*` patterns to watch; a name such as `test-123` also watches `test-*`.
    pub watch: Vec<String>,
    /// Names or `*` patterns never signalled as stale (their pods are still healed).
    pub exclude: Vec<String>,
    /// Watched namespaces older than this are stale.
    pub stale_age: PromDuration,
}

/// Strain relief settings (used only with `features.strainEviction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StrainRelief {
    /// At most this many pods are evicted per round.
    pub max_per_run: u32,
    /// Rounds run this often while the cluster is strained.
    pub every: PromDuration,
}

/// All detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Detectors {
    pub pods: PodDetector,
    pub nodes: NodeDetector,
    pub virtual_machines: VmDetector,
    pub custom_resources: CustomResourceDetector,
    pub namespaces: NamespaceDetector,
    pub strain_relief: StrainRelief,
    /// How often every cached object is re-evaluated (time-based conditions need it).
    pub resync: PromDuration,
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

impl Detectors {
    /// The defaults of `profile`.
    pub fn for_profile(profile: Profile) -> Detectors {
        let test = profile == Profile::TestCluster;
        let stale = if test {
            PromDuration::secs(6 * 60)
        } else {
            PromDuration::secs(24 * 3600)
        };
        Detectors {
            pods: PodDetector {
                enabled: true,
                restart_threshold: 3,
                waiting_after: PromDuration::secs(5 * 60),
                pending_after: PromDuration::secs(15 * 60),
                unschedulable_after: PromDuration::secs(5 * 60),
                namespaces: Vec::new(),
            },
            nodes: NodeDetector {
                enabled: true,
                not_ready_after: PromDuration::secs(5 * 60),
                unknown_after: PromDuration::secs(2 * 60),
                strain_threshold_percent: 30,
            },
            virtual_machines: VmDetector {
                enabled: test,
                stale_age: stale,
                unschedulable_after: PromDuration::secs(3 * 60),
            },
            custom_resources: CustomResourceDetector {
                enabled: test,
                resources: DEFAULT_CUSTOM_RESOURCES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                stale_age: stale,
                terminating_after: PromDuration::secs(5 * 60),
            },
            namespaces: NamespaceDetector {
                enabled: test,
                watch: if test {
                    vec!["test-*".into(), "e2e-*".into()]
                } else {
                    Vec::new()
                },
                exclude: Vec::new(),
                stale_age: stale,
            },
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
        let mut min = |path: &str, d: PromDuration, lo: u64| {
            if d.get().as_secs() < lo {
                out.push((
                    path.to_string(),
                    format!("must be at least {}", PromDuration::secs(lo)),
                ));
            }
        };
        min("pods.waitingAfter", self.pods.waiting_after, 1);
        min("pods.pendingAfter", self.pods.pending_after, 1);
        min("pods.unschedulableAfter", self.pods.unschedulable_after, 1);
        min("nodes.notReadyAfter", self.nodes.not_ready_after, 1);
        min("nodes.unknownAfter", self.nodes.unknown_after, 1);
        min(
            "virtualMachines.staleAge",
            self.virtual_machines.stale_age,
            60,
        );
        min(
            "virtualMachines.unschedulableAfter",
            self.virtual_machines.unschedulable_after,
            1,
        );
        min(
            "customResources.staleAge",
            self.custom_resources.stale_age,
            60,
        );
        min(
            "customResources.terminatingAfter",
            self.custom_resources.terminating_after,
            1,
        );
        min("namespaces.staleAge", self.namespaces.stale_age, 60);
        min("resync", self.resync, 1);
        min("strainRelief.every", self.strain_relief.every, 1);
        if !(1..=100).contains(&self.strain_relief.max_per_run) {
            out.push((
                "strainRelief.maxPerRun".into(),
                "must be between 1 and 100".into(),
            ));
        }
        if self.pods.restart_threshold == 0 {
            out.push(("pods.restartThreshold".into(), "must be at least 1".into()));
        }
        if !(1..=100).contains(&self.nodes.strain_threshold_percent) {
            out.push((
                "nodes.strainThresholdPercent".into(),
                "must be between 1 and 100".into(),
            ));
        }
        for (i, r) in self.custom_resources.resources.iter().enumerate() {
            match crate::detect::ResourceSpec::parse(r) {
                Err(e) => out.push((format!("customResources.resources[{i}]"), e)),
                // what is listed here may be cleaned up: never a core,
                // workload or API-machinery type, nor heal8s's own records
                Ok(spec)
                    if crate::remediation::cleanup_resource::FORBIDDEN_GROUPS
                        .contains(&spec.group.as_str()) =>
                {
                    out.push((
                        format!("customResources.resources[{i}]"),
                        format!(
                            "{r:?} is in API group {:?}, whose types heal8s never cleans up; list custom resources only",
                            spec.group
                        ),
                    ));
                }
                Ok(_) => {}
            }
        }
        for (field, list) in [
            ("pods.namespaces", &self.pods.namespaces),
            ("namespaces.watch", &self.namespaces.watch),
            ("namespaces.exclude", &self.namespaces.exclude),
        ] {
            for (i, p) in list.iter().enumerate() {
                if !crate::detect::namespace::is_valid_pattern(p) {
                    out.push((
                        format!("{field}[{i}]"),
                        format!("{p:?} is not a namespace name or `*` pattern"),
                    ));
                }
            }
        }
        out
    }
}
