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
    /// Whether the switch `f` is on.
    pub fn enabled(&self, f: crate::remediation::Feature) -> bool {
        use crate::remediation::Feature;
        match f {
            Feature::HealPods => self.heal_pods,
            Feature::DrainNodes => self.drain_nodes,
            Feature::DeleteNodes => self.delete_nodes,
            Feature::CleanupResources => self.cleanup_resources,
            Feature::DeleteNamespaces => self.delete_namespaces,
        }
    }

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

/// Strain relief settings (used only with `features.strainEviction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StrainRelief {
    /// At most this many pods are evicted per round.
    pub max_per_run: u32,
    /// Rounds run this often while the cluster is strained.
    pub every: PromDuration,
}

/// Overrides of detector settings from the command line (`heal8s serve`
/// flags); each detector takes those that concern it (`DetectorSpec::apply`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--namespaces` and `--namespace-pattern`: the namespaces whose pods
    /// are healed, whose Services and rollouts are watched, and which are
    /// watched for staleness.
    pub namespaces: Vec<String>,
    /// `--exclude-namespaces`: never deleted as stale.
    pub exclude_namespaces: Vec<String>,
    /// `--stale-age`: when VMs, custom resources and watched namespaces are stale.
    pub stale_age: Option<PromDuration>,
    /// `--crd-resources`: the custom resources watched.
    pub resources: Vec<String>,
    /// `--strain-threshold`: the share of nodes under pressure that strains the cluster.
    pub strain_threshold_percent: Option<u32>,
}
