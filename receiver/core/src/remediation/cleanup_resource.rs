//! cleanup-resource: delete a stale custom resource (KubeVirt VM, DataVolume, a failed Job, ...),
//! removing stuck finalizers only when allowed and only as a recorded last resort.

use serde::{Deserialize, Serialize};

use super::{ActionClass, Feature, ParamIssue, RemediationSpec, Style, TargetMismatch};
use crate::signal::Signal;
use crate::target::{self, ResourceType, Target, TargetKind};

/// Parameters of `cleanup-resource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct CleanupResource {
    /// The resource's apiVersion, e.g. `kubevirt.io/v1`. With `kind`: only that
    /// type is cleaned up. Without both: the custom resource the signal is about
    /// (detector signals name it).
    pub api_version: String,
    /// The resource's kind, e.g. `VirtualMachineInstance`.
    pub kind: String,
    /// The alert label holding the object's name when the alert is not about
    /// this kind directly (default `name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_label: Option<String>,
    /// Remove finalizers still blocking deletion after the grace timeout. Off by default.
    pub remove_finalizers: bool,
}

/// API groups whose types cleanup-resource never deletes, whatever a route
/// or a signal says: the core group (Secrets, ConfigMaps, Pods, Nodes,
/// Namespaces, Services, volumes …; pods, nodes and namespaces have their own
/// remediations, with their own checks), workloads, the API's own machinery
/// (CRDs, API services, webhooks, RBAC, leases, policies) and heal8s's own
/// records.
pub const FORBIDDEN_GROUPS: &[&str] = &[
    "",
    "apps",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "admissionregistration.k8s.io",
    "rbac.authorization.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "autoscaling",
    "heal8s.io",
    "config.openshift.io",
    "security.openshift.io",
    "operator.openshift.io",
    "machine.openshift.io",
    "user.openshift.io",
    "oauth.openshift.io",
];

/// Why cleanup-resource must never delete objects of type `rt`, if it must not.
pub fn forbidden(rt: &ResourceType) -> Option<String> {
    if FORBIDDEN_GROUPS.contains(&rt.group.as_str()) {
        let group = if rt.group.is_empty() {
            "the core API group"
        } else {
            rt.group.as_str()
        };
        return Some(format!(
            "cleanup-resource never deletes a {} ({group}): core, workload and API-machinery types and heal8s's own records are out of its reach",
            rt.kind
        ));
    }
    if rt.group == "batch" && rt.kind != "Job" {
        return Some(format!(
            "cleanup-resource deletes only Jobs from batch, not a {}",
            rt.kind
        ));
    }
    None
}

impl RemediationSpec for CleanupResource {
    const NAME: &'static str = "cleanup-resource";
    const STYLE: Style = Style::Janitor;
    const FEATURE: Option<Feature> = Some(Feature::CleanupResources);
    const CLASS: ActionClass = ActionClass::Resources;
    /// Custom resources, by `apiVersion`/`kind` or the signal's (see `target_for`).
    const TARGETS: &'static [TargetKind] = &[];

    /// Every problem with these parameters.
    fn validate(&self) -> Vec<ParamIssue> {
        let mut out = Vec::new();
        if self.api_version.is_empty() && self.kind.is_empty() {
            return out;
        }
        if self.api_version.is_empty() {
            out.push((
                "apiVersion".into(),
                "is required with kind, e.g. kubevirt.io/v1".into(),
            ));
        } else if self.api_version.split('/').count() > 2
            || self.api_version.split('/').any(str::is_empty)
        {
            out.push((
                "apiVersion".into(),
                format!("{:?} is not group/version or version", self.api_version),
            ));
        }
        if self.kind.is_empty() {
            out.push((
                "kind".into(),
                "is required with apiVersion, e.g. VirtualMachineInstance".into(),
            ));
        } else if !self.kind.chars().all(|c| c.is_ascii_alphanumeric())
            || !self.kind.starts_with(|c: char| c.is_ascii_uppercase())
        {
            out.push((
                "kind".into(),
                format!("{:?} is not a Kubernetes kind", self.kind),
            ));
        }
        if matches!(self.kind.as_str(), "Namespace" | "Node" | "Pod")
            && !self.api_version.contains('/')
        {
            out.push((
                "kind".into(),
                "use delete-namespace, delete-node or delete-pod for core kinds".into(),
            ));
        } else if out.is_empty()
            && let Some(why) = forbidden(&self.resource_type())
        {
            out.push(("kind".into(), why));
        }
        out
    }

    fn describe(&self, target: &str) -> String {
        format!("delete {target}")
    }

    /// Removing finalizers is a class of its own, with its own limits.
    fn class(&self) -> ActionClass {
        if self.remove_finalizers {
            ActionClass::Finalizers
        } else {
            Self::CLASS
        }
    }

    fn target_for(&self, signal: &Signal) -> Result<Option<Target>, TargetMismatch> {
        self.target(signal).map(Some)
    }
}

impl CleanupResource {
    /// The resource type this cleanup deletes.
    pub fn resource_type(&self) -> ResourceType {
        ResourceType::from_api_version(&self.api_version, &self.kind)
    }

    fn target(&self, signal: &Signal) -> Result<Target, TargetMismatch> {
        if self.kind.is_empty() {
            return match &signal.target {
                Some(Target {
                    kind: TargetKind::Custom(rt),
                    ..
                }) if forbidden(rt).is_some() => Err(TargetMismatch::NotAllowed(
                    forbidden(rt).unwrap_or_default(),
                )),
                Some(t) if matches!(t.kind, TargetKind::Custom(_)) => Ok(t.clone()),
                Some(t) => Err(TargetMismatch::WrongKind {
                    remediation_needs: "a custom resource (or set apiVersion and kind)".into(),
                    found: t.kind.kind_name().to_string(),
                }),
                None => Err(TargetMismatch::Missing(signal.target_problem.clone())),
            };
        }
        if let Some(t) = &signal.target
            && t.kind.kind_name() == self.kind
            && match &t.kind {
                TargetKind::Custom(r) => r.api_version() == self.api_version,
                _ => true,
            }
        {
            let mut t = t.clone();
            t.kind = TargetKind::Custom(self.resource_type());
            return Ok(t);
        }
        let label = self.name_label.as_deref().unwrap_or("name");
        let name = signal
            .labels
            .get(label)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                TargetMismatch::Missing(Some(format!(
                    "no `{label}` label naming the {} to clean up",
                    self.kind
                )))
            })?;
        if !target::is_dns1123_subdomain(name) {
            return Err(TargetMismatch::NotAllowed(format!(
                "label `{label}` value is not a valid Kubernetes name"
            )));
        }
        let ns = signal.labels.get("namespace").filter(|v| !v.is_empty());
        if let Some(ns) = ns
            && !target::is_dns1123_label(ns)
        {
            return Err(TargetMismatch::NotAllowed(
                "label `namespace` value is not a valid namespace name".into(),
            ));
        }
        Ok(Target::new(
            TargetKind::Custom(self.resource_type()),
            ns.map(String::as_str),
            name,
        ))
    }
}
