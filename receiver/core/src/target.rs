//! What a signal is about: the Kubernetes object named by an alert's labels.
//!
//! Owns: reading a target out of labels, and checking that every name is a valid
//! Kubernetes name before it goes anywhere. Must not guess owners: a `pod` label
//! is a pod, never a Deployment; the live cluster resolves owners.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An API group/version/kind for custom resources (KubeVirt VMs, DataVolumes, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceType {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl ResourceType {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Every way this type breaks the Kubernetes grammars: the group a DNS
    /// subdomain (or empty, the core group), the version a DNS label, the kind
    /// `[A-Z][A-Za-z0-9]*` (at most 63). A type from an alert goes nowhere
    /// (not even into a discovery URL) unless this is empty.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.group.is_empty() && !is_dns1123_subdomain(&self.group) {
            out.push(format!("group {:?} is not a DNS subdomain", self.group));
        }
        if !is_dns1123_label(&self.version) {
            out.push(format!("version {:?} is not a DNS label", self.version));
        }
        if !is_kind(&self.kind) {
            out.push(format!(
                "kind {:?} is not a Kubernetes kind ([A-Z][A-Za-z0-9]*, at most 63)",
                self.kind
            ));
        }
        out
    }

    /// Parse `apiVersion` (`kubevirt.io/v1`, `v1`) plus a kind.
    pub fn from_api_version(api_version: &str, kind: &str) -> ResourceType {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        ResourceType {
            group,
            version,
            kind: kind.to_string(),
        }
    }
}

/// A Kubernetes kind heal8s names by itself: where the API serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KnownKind {
    pub kind: &'static str,
    /// Empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// The resource name in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Whether its objects live in a namespace.
    pub namespaced: bool,
}

impl KnownKind {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        self.resource_type().api_version()
    }

    /// The kind as a group/version/kind.
    pub fn resource_type(&self) -> ResourceType {
        ResourceType {
            group: self.group.to_string(),
            version: self.version.to_string(),
            kind: self.kind.to_string(),
        }
    }
}

const fn known(
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> KnownKind {
    KnownKind {
        kind,
        group,
        version,
        plural,
        namespaced,
    }
}

/// The one table of the Kubernetes kinds heal8s names in its own code (its
/// targets, their owners, the workloads it reads): every other place asks
/// [`known_kind`] or [`TargetKind::known`]. Custom resources are not here;
/// they travel with their own group/version ([`ResourceType`]).
pub const KNOWN_KINDS: &[KnownKind] = &[
    known("Pod", "", "v1", "pods", true),
    known("Node", "", "v1", "nodes", false),
    known("Namespace", "", "v1", "namespaces", false),
    known("Deployment", "apps", "v1", "deployments", true),
    known("ReplicaSet", "apps", "v1", "replicasets", true),
    known("StatefulSet", "apps", "v1", "statefulsets", true),
    known("DaemonSet", "apps", "v1", "daemonsets", true),
    known("Job", "batch", "v1", "jobs", true),
    known("CronJob", "batch", "v1", "cronjobs", true),
    known(
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        true,
    ),
];

/// Where the API serves `kind`, when it is one of [`KNOWN_KINDS`].
pub fn known_kind(kind: &str) -> Option<&'static KnownKind> {
    KNOWN_KINDS.iter().find(|k| k.kind == kind)
}

/// The kind of object a target is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum TargetKind {
    Pod,
    Node,
    Namespace,
    Deployment,
    StatefulSet,
    DaemonSet,
    HorizontalPodAutoscaler,
    Job,
    Custom(ResourceType),
}

impl TargetKind {
    /// Whether the object keeps its identity while it is remediated. A pod
    /// does not (a deleted pod is replaced by a new one), so its alert
    /// resolving is no evidence that anything recovered; a node, an HPA or a
    /// namespace does.
    pub fn keeps_identity(&self) -> bool {
        !matches!(self, TargetKind::Pod)
    }

    /// The Kubernetes kind name.
    pub fn kind_name(&self) -> &str {
        match self {
            TargetKind::Pod => "Pod",
            TargetKind::Node => "Node",
            TargetKind::Namespace => "Namespace",
            TargetKind::Deployment => "Deployment",
            TargetKind::StatefulSet => "StatefulSet",
            TargetKind::DaemonSet => "DaemonSet",
            TargetKind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            TargetKind::Job => "Job",
            TargetKind::Custom(t) => &t.kind,
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(&self) -> bool {
        !matches!(self, TargetKind::Node | TargetKind::Namespace)
    }

    /// Where the API serves this kind; `None` for a custom resource.
    pub fn known(&self) -> Option<&'static KnownKind> {
        match self {
            TargetKind::Custom(_) => None,
            k => known_kind(k.kind_name()),
        }
    }

    /// The kind as a group/version/kind.
    pub fn resource_type(&self) -> ResourceType {
        match (self, self.known()) {
            (TargetKind::Custom(rt), _) => rt.clone(),
            (_, Some(k)) => k.resource_type(),
            // every built-in variant is in the table (a test proves it)
            (k, None) => ResourceType::from_api_version("v1", k.kind_name()),
        }
    }

    /// The kind's `apiVersion`, e.g. `apps/v1`.
    pub fn api_version(&self) -> String {
        self.resource_type().api_version()
    }

    /// The target kind of an object of `kind` in `api_version`: a built-in
    /// variant when both match the table, else a custom resource (a `Pod`
    /// of another group is not a pod).
    pub fn of(api_version: &str, kind: &str) -> TargetKind {
        let rt = ResourceType::from_api_version(api_version, kind);
        let builtin = [
            TargetKind::Pod,
            TargetKind::Node,
            TargetKind::Namespace,
            TargetKind::Deployment,
            TargetKind::StatefulSet,
            TargetKind::DaemonSet,
            TargetKind::HorizontalPodAutoscaler,
            TargetKind::Job,
        ];
        builtin
            .into_iter()
            .find(|k| k.resource_type() == rt)
            .unwrap_or(TargetKind::Custom(rt))
    }
}

/// One Kubernetes object a signal points at, plus the context the labels gave.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    pub kind: TargetKind,
    /// The object's namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
    /// The container the signal is about, when the labels name one.
    pub container: Option<String>,
    /// The node the object runs on, when the labels name one.
    pub node: Option<String>,
    /// The object's UID when the labels carry it (kube-state-metrics adds `uid`):
    /// lets the executor tell a recreated object with the same name from the one alerted on.
    pub uid: Option<String>,
}

impl Target {
    /// A target of `kind` with just a namespace and name.
    pub fn new(kind: TargetKind, namespace: Option<&str>, name: &str) -> Target {
        Target {
            kind,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            container: None,
            node: None,
            uid: None,
        }
    }

    /// A stable key such as `Pod/shop/api-1` or `Node/-/worker-3`: used for cooldowns and budgets.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind.kind_name(),
            self.namespace.as_deref().unwrap_or("-"),
            self.name
        )
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind.kind_name(), ns, self.name)?,
            None => write!(f, "{} {}", self.kind.kind_name(), self.name)?,
        }
        if let Some(c) = &self.container {
            write!(f, " container {c}")?;
        }
        Ok(())
    }
}

/// Why labels did not yield a usable target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("label `{label}` value {value:?} is not a valid Kubernetes {what}")]
    InvalidName {
        label: String,
        value: String,
        what: &'static str,
    },
    #[error("label `{label}` needs a `namespace` label beside it")]
    MissingNamespace { label: String },
}

/// Labels that name a namespaced workload, in the order they are preferred.
/// `job` is deliberately absent: in Prometheus it is the scrape job, not a batch Job.
const NAMESPACED: &[(&str, TargetKind)] = &[
    ("pod", TargetKind::Pod),
    (
        "horizontalpodautoscaler",
        TargetKind::HorizontalPodAutoscaler,
    ),
    ("deployment", TargetKind::Deployment),
    ("statefulset", TargetKind::StatefulSet),
    ("daemonset", TargetKind::DaemonSet),
    ("job_name", TargetKind::Job),
];

/// Read the target out of alert labels.
///
/// Preference: a pod (with its container), then an HPA, Deployment, StatefulSet,
/// DaemonSet, Job (`job_name`), then a custom resource described by
/// kube-state-metrics' `customresource_group/version/kind` plus `name`, then a
/// node, then a bare namespace. `Ok(None)` when the labels name nothing.
pub fn extract(labels: &BTreeMap<String, String>) -> Result<Option<Target>, TargetError> {
    let get = |k: &str| labels.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let namespace = get("namespace");
    if let Some(ns) = namespace {
        check(ns, "namespace", is_dns1123_label, "namespace name")?;
    }
    let node = get("node");
    if let Some(n) = node {
        check(n, "node", is_dns1123_subdomain, "node name")?;
    }
    let container = get("container");
    if let Some(c) = container {
        check(c, "container", is_dns1123_label, "container name")?;
    }
    let uid = get("uid").map(str::to_string);

    for (label, kind) in NAMESPACED {
        if let Some(name) = get(label) {
            check(name, label, is_dns1123_subdomain, "object name")?;
            let ns = namespace.ok_or_else(|| TargetError::MissingNamespace {
                label: (*label).to_string(),
            })?;
            let mut t = Target::new(kind.clone(), Some(ns), name);
            t.node = node.map(str::to_string);
            t.uid = uid;
            if *kind == TargetKind::Pod || container.is_some() {
                t.container = container.map(str::to_string);
            }
            return Ok(Some(t));
        }
    }
    if let (Some(kind), Some(version), Some(name)) = (
        get("customresource_kind"),
        get("customresource_version"),
        get("name"),
    ) {
        check(name, "name", is_dns1123_subdomain, "object name")?;
        let group = get("customresource_group").unwrap_or_default();
        let rt = ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        };
        check(
            group,
            "customresource_group",
            |g| g.is_empty() || is_dns1123_subdomain(g),
            "API group",
        )?;
        check(
            version,
            "customresource_version",
            is_dns1123_label,
            "API version",
        )?;
        check(kind, "customresource_kind", is_kind, "kind")?;
        let mut t = Target::new(TargetKind::Custom(rt), namespace, name);
        t.uid = uid;
        return Ok(Some(t));
    }
    if let Some(n) = node {
        let mut t = Target::new(TargetKind::Node, None, n);
        t.node = Some(n.to_string());
        return Ok(Some(t));
    }
    if let Some(ns) = namespace {
        return Ok(Some(Target::new(TargetKind::Namespace, None, ns)));
    }
    Ok(None)
}

/// Whether `s` is a Kubernetes kind: `[A-Z][A-Za-z0-9]*`, at most 63 characters.
pub fn is_kind(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn check(
    value: &str,
    label: &str,
    valid: fn(&str) -> bool,
    what: &'static str,
) -> Result<(), TargetError> {
    if valid(value) {
        Ok(())
    } else {
        Err(TargetError::InvalidName {
            label: label.to_string(),
            value: value.chars().take(80).collect(),
            what,
        })
    }
}

/// RFC 1123 label: lower-case alphanumerics and '-', 1..=63, alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_rfc1123_part(s)
}

/// Lower-case alphanumerics and '-', alphanumeric at both ends, not empty
/// (a label without its length limit).
fn is_rfc1123_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// RFC 1123 subdomain: dot-separated labels, 1..=253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    // Kubernetes' IsDNS1123Subdomain: at most 253 in all, dot-separated parts
    // of lower-case alphanumerics and '-', alphanumeric at both ends; unlike
    // a label, a part has no length limit of its own
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_rfc1123_part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_subdomain_part_may_be_longer_than_a_label_as_in_kubernetes() {
        let long = "a".repeat(100);
        assert!(is_dns1123_subdomain(&long));
        assert!(!is_dns1123_label(&long));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        for bad in ["", "a..b", ".a", "a.", "-a", "a-", "A", "a_b", "a/b"] {
            assert!(!is_dns1123_subdomain(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_resource_type_from_labels_must_follow_the_kubernetes_grammars() {
        let with = |group: &str, version: &str, kind: &str| {
            extract(&labels(&[
                ("customresource_group", group),
                ("customresource_version", version),
                ("customresource_kind", kind),
                ("namespace", "e2e-1"),
                ("name", "x"),
            ]))
        };
        assert!(with("cdi.kubevirt.io", "v1beta1", "DataVolume").is_ok());
        assert!(
            with("", "v1", "Secret").is_ok(),
            "grammar only; the policy refuses it"
        );
        for (g, v, k) in [
            (
                "apps/v1/namespaces/kube-system/deployments/coredns#",
                "v1",
                "Deployment",
            ),
            ("apps", "v1?dryRun=All&x=", "Deployment"),
            ("apps", "v1", "deployments/coredns"),
            ("Apps", "v1", "Deployment"),
            ("apps", "V1", "Deployment"),
            ("apps", "v1", "deployment"),
            ("apps", "v1", "Deploy\nment"),
            ("apps%2fv1", "v1", "Deployment"),
            ("..", "v1", "Deployment"),
        ] {
            let r = with(g, v, k);
            assert!(
                matches!(r, Err(TargetError::InvalidName { .. })),
                "{g:?} {v:?} {k:?}: {r:?}"
            );
        }
    }

    #[test]
    fn pod_label_is_a_pod_with_its_container_and_node() {
        let t = extract(&labels(&[
            ("namespace", "shop"),
            ("pod", "api-7d9c-x2"),
            ("container", "api"),
            ("node", "worker-1"),
            ("uid", "0b1e"),
            ("job", "kube-state-metrics"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(t.kind, TargetKind::Pod);
        assert_eq!(t.namespace.as_deref(), Some("shop"));
        assert_eq!(t.name, "api-7d9c-x2");
        assert_eq!(t.container.as_deref(), Some("api"));
        assert_eq!(t.node.as_deref(), Some("worker-1"));
        assert_eq!(t.uid.as_deref(), Some("0b1e"));
        assert_eq!(t.key(), "Pod/shop/api-7d9c-x2");
    }

    #[test]
    fn pod_wins_over_deployment_label_and_is_never_renamed() {
        let t = extract(&labels(&[
            ("namespace", "shop"),
            ("pod", "api-7d9c-x2"),
            ("deployment", "api"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(t.kind, TargetKind::Pod);
        assert_eq!(t.name, "api-7d9c-x2");
    }

    #[test]
    fn workload_labels_map_to_their_kinds() {
        for (label, kind) in [
            (
                "horizontalpodautoscaler",
                TargetKind::HorizontalPodAutoscaler,
            ),
            ("deployment", TargetKind::Deployment),
            ("statefulset", TargetKind::StatefulSet),
            ("daemonset", TargetKind::DaemonSet),
            ("job_name", TargetKind::Job),
        ] {
            let t = extract(&labels(&[("namespace", "ns"), (label, "w")]))
                .unwrap()
                .unwrap();
            assert_eq!(t.kind, kind, "{label}");
            assert_eq!(t.name, "w");
        }
    }

    #[test]
    fn scrape_job_label_is_not_a_batch_job() {
        let t = extract(&labels(&[
            ("namespace", "ns"),
            ("job", "kube-state-metrics"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(t.kind, TargetKind::Namespace);
        assert_eq!(t.name, "ns");
    }

    #[test]
    fn node_label_alone_is_a_node() {
        let t = extract(&labels(&[("node", "worker-3.example")]))
            .unwrap()
            .unwrap();
        assert_eq!(t.kind, TargetKind::Node);
        assert_eq!(t.namespace, None);
        assert_eq!(t.key(), "Node/-/worker-3.example");
    }

    #[test]
    fn custom_resource_labels_from_kube_state_metrics() {
        let t = extract(&labels(&[
            ("customresource_group", "kubevirt.io"),
            ("customresource_version", "v1"),
            ("customresource_kind", "VirtualMachineInstance"),
            ("namespace", "e2e-12"),
            ("name", "vm-a"),
        ]))
        .unwrap()
        .unwrap();
        match &t.kind {
            TargetKind::Custom(r) => {
                assert_eq!(r.api_version(), "kubevirt.io/v1");
                assert_eq!(r.kind, "VirtualMachineInstance");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(t.namespace.as_deref(), Some("e2e-12"));
    }

    #[test]
    fn no_identifying_labels_is_no_target() {
        assert_eq!(
            extract(&labels(&[("alertname", "Watchdog")])).unwrap(),
            None
        );
    }

    #[test]
    fn invalid_names_are_refused_not_passed_on() {
        for (k, v) in [
            ("pod", "../../etc"),
            ("pod", "Api"),
            ("namespace", "a.b"),
            ("node", ""),
        ] {
            let mut l = labels(&[("namespace", "ns"), (k, v)]);
            if v.is_empty() {
                // an empty label is "absent", as in Prometheus
                l.remove("namespace");
                assert_eq!(extract(&l).unwrap(), None);
                continue;
            }
            assert!(extract(&l).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn namespaced_workload_without_namespace_is_an_error() {
        let e = extract(&labels(&[("pod", "p")])).unwrap_err();
        assert_eq!(
            e,
            TargetError::MissingNamespace {
                label: "pod".into()
            }
        );
    }

    const BUILTIN: [TargetKind; 8] = [
        TargetKind::Pod,
        TargetKind::Node,
        TargetKind::Namespace,
        TargetKind::Deployment,
        TargetKind::StatefulSet,
        TargetKind::DaemonSet,
        TargetKind::HorizontalPodAutoscaler,
        TargetKind::Job,
    ];

    #[test]
    fn every_builtin_target_kind_is_in_the_kind_table() {
        for k in BUILTIN {
            let known = k
                .known()
                .unwrap_or_else(|| panic!("{k:?} is not in the table"));
            assert_eq!(known.kind, k.kind_name());
            assert_eq!(known.namespaced, k.is_namespaced(), "{k:?}");
            assert_eq!(TargetKind::of(&k.api_version(), k.kind_name()), k);
        }
        let kinds: std::collections::BTreeSet<&str> = KNOWN_KINDS.iter().map(|k| k.kind).collect();
        assert_eq!(kinds.len(), KNOWN_KINDS.len(), "a kind is listed twice");
    }

    #[test]
    fn the_kind_table_names_each_kinds_api() {
        let api = |k: &str| known_kind(k).map(|k| (k.api_version(), k.plural));
        assert_eq!(api("Pod"), Some(("v1".into(), "pods")));
        assert_eq!(api("Node"), Some(("v1".into(), "nodes")));
        assert_eq!(api("Namespace"), Some(("v1".into(), "namespaces")));
        assert_eq!(api("Deployment"), Some(("apps/v1".into(), "deployments")));
        assert_eq!(api("ReplicaSet"), Some(("apps/v1".into(), "replicasets")));
        assert_eq!(api("StatefulSet"), Some(("apps/v1".into(), "statefulsets")));
        assert_eq!(api("DaemonSet"), Some(("apps/v1".into(), "daemonsets")));
        assert_eq!(api("Job"), Some(("batch/v1".into(), "jobs")));
        assert_eq!(api("CronJob"), Some(("batch/v1".into(), "cronjobs")));
        assert_eq!(
            api("HorizontalPodAutoscaler"),
            Some(("autoscaling/v2".into(), "horizontalpodautoscalers"))
        );
        assert_eq!(api("VirtualMachine"), None);
        assert_eq!(api("deployment"), None, "kinds are case-sensitive");
        assert!(!known_kind("Node").unwrap().namespaced);
    }

    #[test]
    fn a_custom_resource_keeps_its_own_api() {
        let vm = TargetKind::of("kubevirt.io/v1", "VirtualMachine");
        assert_eq!(
            vm,
            TargetKind::Custom(ResourceType::from_api_version(
                "kubevirt.io/v1",
                "VirtualMachine"
            ))
        );
        assert_eq!(vm.api_version(), "kubevirt.io/v1");
        assert_eq!(vm.known(), None);
        // a kind's name in another group is not the built-in kind
        let pod = TargetKind::of("example.com/v1", "Pod");
        assert!(matches!(pod, TargetKind::Custom(_)), "{pod:?}");
        assert!(pod.keeps_identity());
        assert!(!TargetKind::of("v1", "Pod").keeps_identity());
        // kinds without a target variant are custom-shaped but keep the table's API
        assert_eq!(
            TargetKind::of("apps/v1", "ReplicaSet").resource_type(),
            known_kind("ReplicaSet").unwrap().resource_type()
        );
    }

    #[test]
    fn dns_name_rules() {
        assert!(is_dns1123_label("a-1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
    }
}
