//! The resource types the emulator serves: `ResourceDef`, the built-in set,
//! the registry (lookups by path, by kind, by storage), and turning a
//! CustomResourceDefinition into definitions. No objects are stored here.

use std::cmp::Reverse;

use serde_json::Value;

use super::object;

/// One served resource type in one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group (`""` for core).
    pub group: String,
    /// Version (`v1`, `v1beta1`...).
    pub version: String,
    /// Kind (`Pod`).
    pub kind: String,
    /// Plural resource name used in paths (`pods`).
    pub plural: String,
    /// Singular name (`pod`); empty means the lower-cased kind.
    pub singular: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Served subresources: `status`, `scale`, `eviction`, `resize`.
    pub subresources: Vec<String>,
    /// Short names for kubectl (`po`).
    pub short_names: Vec<String>,
    /// Categories for kubectl (`all`).
    pub categories: Vec<String>,
    /// A CRD's additionalPrinterColumns, for `kubectl get` tables.
    pub printer_columns: Vec<PrinterColumn>,
    /// A deprecated API version: the warning every request to it gets
    /// (a `Warning: 299 - "..."` header).
    pub deprecation: Option<String>,
    /// The verbs served when not all of them (`SelfSubjectReview`: only
    /// `create`); empty for every verb.
    pub verbs: Vec<String>,
}

/// One additionalPrinterColumn of a CRD version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// A simple JSONPath such as `.spec.target.key`.
    pub json_path: String,
    pub priority: i64,
}

impl ResourceDef {
    /// A definition with no subresources, short names or categories.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceDef {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: String::new(),
            namespaced,
            subresources: Vec::new(),
            short_names: Vec::new(),
            categories: Vec::new(),
            printer_columns: Vec::new(),
            deprecation: None,
            verbs: Vec::new(),
        }
    }

    /// With these subresources (`status`, `scale`).
    pub fn with_subresources(mut self, subs: &[&str]) -> Self {
        self.subresources = subs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// With these kubectl short names.
    pub fn with_short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// With these kubectl categories.
    pub fn with_categories(mut self, cats: &[&str]) -> Self {
        self.categories = cats.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Serving only these verbs.
    pub fn with_verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The verbs served on the resource itself.
    pub fn served_verbs(&self) -> Vec<&str> {
        if self.verbs.is_empty() {
            RESOURCE_VERBS.to_vec()
        } else {
            self.verbs.iter().map(String::as_str).collect()
        }
    }

    /// Deprecated: every request to it gets `warning` as a `Warning` header.
    pub fn with_deprecation(mut self, warning: &str) -> Self {
        self.deprecation = Some(warning.to_string());
        self
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The singular name (defaulted from the kind).
    pub fn singular_name(&self) -> String {
        if self.singular.is_empty() {
            self.kind.to_lowercase()
        } else {
            self.singular.clone()
        }
    }

    /// Whether subresource `sub` is served.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }

    /// Where objects of this type live in the store (all versions share it).
    pub(crate) fn storage(&self) -> StorageKey {
        (self.group.clone(), self.plural.clone())
    }

    /// Built into Kubernetes (strategic merge patch works) rather than a custom resource.
    pub(crate) fn is_builtin_type(&self) -> bool {
        self.group.is_empty() || !self.group.contains('.') || self.group.ends_with(".k8s.io")
    }

    pub(crate) fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }
}

/// Store key of a resource type: (group, plural).
pub(crate) type StorageKey = (String, String);

/// The verbs served on a main resource.
pub(crate) const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// (group, version, kind, verbs) a subresource answers with.
pub(crate) fn subresource_info(
    def: &ResourceDef,
    sub: &str,
) -> (String, String, String, Vec<&'static str>) {
    match sub {
        "scale" => (
            "autoscaling".into(),
            "v1".into(),
            "Scale".into(),
            vec!["get", "patch", "update"],
        ),
        "eviction" => (
            "policy".into(),
            "v1".into(),
            "Eviction".into(),
            vec!["create"],
        ),
        "finalize" => (
            String::new(),
            String::new(),
            def.kind.clone(),
            vec!["update"],
        ),
        _ => (
            String::new(),
            String::new(),
            def.kind.clone(),
            vec!["get", "patch", "update"],
        ),
    }
}

/// The resource types every emulator serves from the start.
pub fn builtin_resources() -> Vec<ResourceDef> {
    let d = ResourceDef::new;
    vec![
        d("", "v1", "Pod", "pods", true)
            .with_subresources(&["status", "eviction", "resize"])
            .with_short_names(&["po"])
            .with_categories(&["all"]),
        d("", "v1", "Node", "nodes", false)
            .with_subresources(&["status"])
            .with_short_names(&["no"]),
        d("", "v1", "Namespace", "namespaces", false)
            .with_subresources(&["status", "finalize"])
            .with_short_names(&["ns"]),
        d("", "v1", "Event", "events", true).with_short_names(&["ev"]),
        d("", "v1", "ConfigMap", "configmaps", true).with_short_names(&["cm"]),
        d("", "v1", "Secret", "secrets", true),
        d("", "v1", "Service", "services", true)
            .with_subresources(&["status"])
            .with_short_names(&["svc"])
            .with_categories(&["all"]),
        d("", "v1", "ServiceAccount", "serviceaccounts", true).with_short_names(&["sa"]),
        // served and deprecated in Kubernetes 1.33, the version the emulation claims
        d("", "v1", "Endpoints", "endpoints", true)
            .with_short_names(&["ep"])
            .with_deprecation(
                "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
            ),
        d(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
        )
        .with_subresources(&["status"])
        .with_short_names(&["pvc"]),
        d("apps", "v1", "Deployment", "deployments", true)
            .with_subresources(&["status", "scale"])
            .with_short_names(&["deploy"])
            .with_categories(&["all"]),
        d("apps", "v1", "ReplicaSet", "replicasets", true)
            .with_subresources(&["status", "scale"])
            .with_short_names(&["rs"])
            .with_categories(&["all"]),
        d("apps", "v1", "StatefulSet", "statefulsets", true)
            .with_subresources(&["status", "scale"])
            .with_short_names(&["sts"])
            .with_categories(&["all"]),
        d("apps", "v1", "DaemonSet", "daemonsets", true)
            .with_subresources(&["status"])
            .with_short_names(&["ds"])
            .with_categories(&["all"]),
        d("batch", "v1", "Job", "jobs", true)
            .with_subresources(&["status"])
            .with_categories(&["all"]),
        d(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        )
        .with_subresources(&["status"])
        .with_short_names(&["hpa"])
        .with_categories(&["all"]),
        d(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
        )
        .with_subresources(&["status"])
        .with_short_names(&["pdb"]),
        d("coordination.k8s.io", "v1", "Lease", "leases", true),
        // `kubectl auth whoami`; nothing is stored
        d(
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
        )
        .with_verbs(&["create"]),
        d(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicies",
            false,
        )
        .with_subresources(&["status"])
        .with_categories(&["api-extensions"]),
        d(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            false,
        )
        .with_categories(&["api-extensions"]),
        d(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
        ),
        d("events.k8s.io", "v1", "Event", "events", true).with_short_names(&["ev"]),
        d(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )
        .with_subresources(&["status"])
        .with_short_names(&["crd", "crds"]),
        d(
            "kubevirt.io",
            "v1",
            "VirtualMachine",
            "virtualmachines",
            true,
        )
        .with_subresources(&["status"])
        .with_short_names(&["vm", "vms"])
        .with_categories(&["all"]),
        d(
            "kubevirt.io",
            "v1",
            "VirtualMachineInstance",
            "virtualmachineinstances",
            true,
        )
        .with_subresources(&["status"])
        .with_short_names(&["vmi", "vmis"])
        .with_categories(&["all"]),
        d(
            "cdi.kubevirt.io",
            "v1beta1",
            "DataVolume",
            "datavolumes",
            true,
        )
        .with_subresources(&["status"])
        .with_short_names(&["dv", "dvs"])
        .with_categories(&["all"]),
        d("heal8s.io", "v1alpha1", "Remediation", "remediations", true)
            .with_subresources(&["status"]),
    ]
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first.
pub(crate) fn version_priority(v: &str) -> (u8, u32, u32, Reverse<String>) {
    let parse = || -> Option<(u8, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let major: u32 = rest.get(..digits)?.parse().ok()?;
        let tail = rest.get(digits..)?;
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        for (word, rank) in [("beta", 2u8), ("alpha", 1u8)] {
            if let Some(n) = tail.strip_prefix(word) {
                return Some((rank, major, n.parse().ok()?));
            }
        }
        None
    };
    match parse() {
        Some((rank, major, minor)) => (rank, major, minor, Reverse(String::new())),
        None => (0, 0, 0, Reverse(v.to_string())),
    }
}

/// The served resource types.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    defs: Vec<ResourceDef>,
}

impl Registry {
    /// A registry holding the built-in types.
    pub fn with_builtins() -> Registry {
        let mut r = Registry::default();
        for d in builtin_resources() {
            r.register(d);
        }
        r
    }

    /// Add or replace (same group, version, plural) a definition.
    pub fn register(&mut self, def: ResourceDef) {
        if let Some(existing) = self
            .defs
            .iter_mut()
            .find(|d| d.group == def.group && d.version == def.version && d.plural == def.plural)
        {
            *existing = def;
        } else {
            self.defs.push(def);
        }
    }

    /// Remove every version of (group, plural).
    pub fn unregister_all(&mut self, group: &str, plural: &str) {
        self.defs.retain(|d| !d.is(group, plural));
    }

    /// The definition served at `/apis/{group}/{version}/.../{plural}`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
    }

    /// The definition for `apiVersion` and a kind, plural, singular or short name.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceDef> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let lower = kind.to_lowercase();
        let candidates = || {
            self.defs
                .iter()
                .filter(move |d| d.group == group && d.version == version)
        };
        candidates().find(|d| d.kind == kind).or_else(|| {
            candidates().find(|d| {
                d.plural == lower || d.singular_name() == lower || d.short_names.contains(&lower)
            })
        })
    }

    /// The preferred-version definition storing objects under `key`.
    pub fn for_storage(&self, key: &StorageKey) -> Option<&ResourceDef> {
        self.defs
            .iter()
            .filter(|d| d.group == key.0 && d.plural == key.1)
            .max_by_key(|d| version_priority(&d.version))
    }

    /// Every storage key of namespaced resources.
    pub fn namespaced_storages(&self) -> Vec<StorageKey> {
        let mut keys: Vec<StorageKey> = self
            .defs
            .iter()
            .filter(|d| d.namespaced)
            .map(ResourceDef::storage)
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Groups in registration order with their versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in &self.defs {
            match out.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, vs)) => {
                    if !vs.contains(&d.version) {
                        vs.push(d.version.clone());
                    }
                }
                None => out.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        for (_, vs) in &mut out {
            vs.sort_by_key(|v| Reverse(version_priority(v)));
        }
        out
    }

    /// Definitions served in one group version, in registration order.
    pub fn resources(&self, group: &str, version: &str) -> Vec<&ResourceDef> {
        self.defs
            .iter()
            .filter(|d| d.group == group && d.version == version)
            .collect()
    }
}

/// The definitions a CustomResourceDefinition object asks to serve (its served versions).
pub fn defs_from_crd(crd: &Value) -> Result<Vec<ResourceDef>, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let group = s(spec.get("group"));
    let names = spec.get("names").ok_or("spec.names is required")?;
    let kind = s(names.get("kind"));
    let plural = s(names.get("plural"));
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Err("spec.group, spec.names.kind and spec.names.plural are required".into());
    }
    let namespaced = s(spec.get("scope")) != "Cluster";
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is required")?;
    let mut out = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let version = s(v.get("name"));
        if version.is_empty() {
            return Err("spec.versions[].name is required".into());
        }
        let deprecation = (v.get("deprecated").and_then(Value::as_bool) == Some(true)).then(|| {
            match v.get("deprecationWarning").and_then(Value::as_str) {
                Some(w) => w.to_string(),
                None => default_deprecation_warning(&group, &kind, &version, versions),
            }
        });
        let mut subresources = Vec::new();
        if let Some(subs) = v.get("subresources").and_then(Value::as_object) {
            for sub in ["status", "scale"] {
                if subs.contains_key(sub) {
                    subresources.push(sub.to_string());
                }
            }
        }
        let printer_columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: s(c.get("name")),
                        type_: s(c.get("type")),
                        json_path: s(c.get("jsonPath")),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceDef {
            group: group.clone(),
            version,
            kind: kind.clone(),
            plural: plural.clone(),
            singular: s(names.get("singular")),
            namespaced,
            subresources,
            short_names: object::strings_at(names, "/shortNames"),
            categories: object::strings_at(names, "/categories"),
            printer_columns,
            deprecation,
            verbs: Vec::new(),
        });
    }
    Ok(out)
}

/// The string formats a CRD schema may use in the Kubernetes version the
/// emulation claims (1.33; `k8s-short-name` and `k8s-long-name` came in 1.34).
const STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "quantity",
];

/// Formats in a CRD's schemas the API server does not recognize (it warns
/// `unrecognized format "<f>"` for each), in schema order: for integers
/// only `int32` and `int64` are known, for numbers `float` and `double`,
/// for strings (or no type) the validation formats (dashes ignored).
pub(crate) fn unrecognized_formats(crd: &Value) -> Vec<String> {
    fn walk(schema: &Value, out: &mut Vec<String>) {
        let Some(m) = schema.as_object() else {
            return;
        };
        if let Some(f) = m
            .get("format")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
        {
            let known = match m.get("type").and_then(Value::as_str).unwrap_or("") {
                "" | "string" => STRING_FORMATS.contains(&f.replace('-', "").as_str()),
                "integer" => matches!(f, "int32" | "int64"),
                "number" => matches!(f, "float" | "double"),
                _ => false,
            };
            if !known {
                out.push(f.to_string());
            }
        }
        for key in ["items", "additionalProperties", "not", "additionalItems"] {
            match m.get(key) {
                Some(Value::Array(a)) => a.iter().for_each(|s| walk(s, out)),
                Some(s) => walk(s, out),
                None => {}
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(a)) = m.get(key) {
                a.iter().for_each(|s| walk(s, out));
            }
        }
        for key in [
            "properties",
            "patternProperties",
            "definitions",
            "dependencies",
        ] {
            if let Some(Value::Object(props)) = m.get(key) {
                props.values().for_each(|s| walk(s, out));
            }
        }
    }
    let mut out = Vec::new();
    if let Some(s) = crd.pointer("/spec/validation/openAPIV3Schema") {
        walk(s, &mut out);
    }
    for v in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(s) = v.pointer("/schema/openAPIV3Schema") {
            walk(s, &mut out);
        }
    }
    out
}

/// The warning for a deprecated CRD version without its own
/// `deprecationWarning`, as the API server words it: `<group>/<version>
/// <Kind> is deprecated`, then `; use <group>/<newest> <Kind>` when a newer
/// served version is not deprecated.
fn default_deprecation_warning(
    group: &str,
    kind: &str,
    version: &str,
    versions: &[Value],
) -> String {
    let mut msg = format!("{group}/{version} {kind} is deprecated");
    let newest = versions
        .iter()
        .filter(|v| {
            v.get("served").and_then(Value::as_bool) != Some(false)
                && v.get("deprecated").and_then(Value::as_bool) != Some(true)
        })
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .filter(|n| version_priority(n) > version_priority(version))
        .max_by_key(|n| version_priority(n));
    if let Some(n) = newest {
        msg.push_str(&format!("; use {group}/{n} {kind}"));
    }
    msg
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut vs = vec!["v1alpha1", "v2beta1", "v1", "v1beta2", "v2", "foo"];
        vs.sort_by_key(|v| Reverse(version_priority(v)));
        assert_eq!(vs, ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn kinds_are_found_by_kind_plural_or_short_name() {
        let r = Registry::with_builtins();
        assert_eq!(r.find_kind("v1", "Pod").unwrap().plural, "pods");
        assert_eq!(r.find_kind("apps/v1", "deploy").unwrap().kind, "Deployment");
        assert_eq!(r.find_kind("v1", "pods").unwrap().kind, "Pod");
        assert!(r.find_kind("v2", "Pod").is_none());
    }

    #[test]
    fn unknown_formats_in_crd_schemas_are_found() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {
            "count": {"type": "integer", "format": "uint64"},
            "small": {"type": "integer", "format": "int32"},
            "at": {"type": "string", "format": "date-time"},
            "list": {"type": "array", "items": {"type": "integer", "format": "uint32"}},
            "ratio": {"type": "number", "format": "double"}
        }}}}]}});
        assert_eq!(unrecognized_formats(&crd), ["uint64", "uint32"]);
    }

    #[test]
    fn deprecated_crd_versions_point_at_the_newest_served_one() {
        let crd = json!({"spec": {"group": "x.io", "names": {"kind": "W", "plural": "ws"},
        "versions": [
            {"name": "v1alpha1", "served": true, "deprecated": true},
            {"name": "v1beta1", "served": true},
            {"name": "v1", "served": true, "storage": true},
            {"name": "v2", "served": false}
        ]}});
        let defs = defs_from_crd(&crd).unwrap();
        assert_eq!(
            defs[0].deprecation.as_deref(),
            Some("x.io/v1alpha1 W is deprecated; use x.io/v1 W")
        );
        assert_eq!(defs[1].deprecation, None);
    }

    #[test]
    fn crd_served_versions_become_definitions() {
        let crd = json!({"spec": {"group": "x.io", "scope": "Cluster",
        "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
        "versions": [
            {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
            {"name": "v0", "served": false, "storage": false}
        ]}});
        let defs = defs_from_crd(&crd).unwrap();
        assert_eq!(defs.len(), 1);
        assert!(!defs[0].namespaced);
        assert!(defs[0].has_subresource("status"));
        assert_eq!(defs[0].short_names, ["wd"]);
    }
}
