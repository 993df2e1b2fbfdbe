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

    #[test]
    fn dns_name_rules() {
        assert!(is_dns1123_label("a-1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
    }
}
