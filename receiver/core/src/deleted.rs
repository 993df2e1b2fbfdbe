//! What heal8s keeps of an object it deletes (issue 13): the manifest, ready
//! to re-apply, that the Remediation record holds in `status.deleted` so the
//! object can be inspected or re-created (`heal8s show-deleted`).
//!
//! Owns: [`Deleted`] and the pure rules of [`keep`]: what of the live object
//! is dropped (server-set metadata, owner references, `status`, a pod's node),
//! what is never copied (a Secret's `data` and `stringData`), and the size
//! cap. Must not do IO: the executors in receiver-k8s read the live object
//! right before deleting it, call [`keep`], and put the result in their
//! report; the record takes it from the outcome (`status::apply`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most bytes (compact JSON) of a manifest a record keeps: an object
/// larger than this keeps only its identity, labels and annotations.
pub const MAX_BYTES: usize = 64 * 1024;

/// Metadata the API server sets (or that ties the object to one moment of
/// one cluster): a re-created object gets its own. Owner references go too:
/// a re-created object naming an owner's old uid would be garbage-collected
/// at once (or adopted by the wrong owner).
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "ownerReferences",
];

/// The annotation `kubectl apply` leaves: a second copy of the object (a
/// Secret's data included), and `kubectl apply` writes a new one anyway.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Annotation values longer than this are the first to go when an object
/// is truncated.
const LONG_ANNOTATION: usize = 256;

/// The note of a Secret whose data was left out.
pub const SECRET_NOTE: &str =
    "a Secret's data and stringData are never kept: re-created, it holds no data";

/// An object heal8s deleted (or whose finalizers it removed), as the record
/// keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// The object as it was, ready to re-apply: without the metadata the API
    /// server sets, owner references, `status`, a pod's `spec.nodeName`, a
    /// Secret's data. When `truncated`, only its identity, labels and
    /// annotations.
    #[schemars(schema_with = "free_form")]
    pub manifest: Value,
    /// The finalizers heal8s removed (cleanup-resource with
    /// `removeFinalizers`); the manifest still lists them, as they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers_removed: Vec<String>,
    /// The object was larger than the cap: the manifest is not enough to
    /// re-create it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// The object's size, in bytes of compact JSON, once cleaned (before any truncation).
    #[serde(default)]
    #[schemars(extend("format" = "int64"))]
    pub size: u64,
    /// What was left out and why, one sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// RFC 3339: when heal8s deleted it (the time of the action's outcome;
    /// the record sets it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub at: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

impl Deleted {
    /// `self`, noting that heal8s removed `finalizers` from it.
    pub fn with_finalizers_removed(mut self, finalizers: &[String]) -> Deleted {
        self.finalizers_removed = finalizers.to_vec();
        self
    }

    /// `Kind namespace/name` (or `Kind name`) of the kept object.
    pub fn describe(&self) -> String {
        let m = &self.manifest;
        let kind = m["kind"].as_str().unwrap_or("object");
        let name = m["metadata"]["name"].as_str().unwrap_or("");
        match m["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        }
    }
}

/// Whether `object` is a Secret: a v1 Secret, and, to be safe, any kind
/// named `Secret` (a custom resource of that name may hold secrets too).
fn is_secret(object: &Value) -> bool {
    object["kind"].as_str() == Some("Secret")
}

/// Whether `kind` deletes the object it is about (and so keeps it first).
/// A drain evicts pods but deletes no node; a pull request deletes nothing.
pub fn deletes_target(kind: crate::remediation::RemediationKind) -> bool {
    use crate::remediation::RemediationKind as K;
    matches!(
        kind,
        K::DeletePod | K::EvictPod | K::DeleteNode | K::DeleteNamespace | K::CleanupResource
    )
}

/// What the record keeps of the object a plan is about to delete, read
/// live as `facts.live`; nothing in a dry run or for a plan that deletes
/// nothing.
pub fn before_delete(
    kind: crate::remediation::RemediationKind,
    dry_run: bool,
    live: Option<&Value>,
) -> Option<Deleted> {
    (!dry_run && deletes_target(kind))
        .then_some(live)
        .flatten()
        .map(|o| keep(o, MAX_BYTES))
}

/// What of `object` (the live object, as the API server serves it) a record
/// keeps, at most `max_bytes` of compact JSON (see [`Deleted`]).
pub fn keep(object: &Value, max_bytes: usize) -> Deleted {
    let secret = is_secret(object);
    let mut notes = Vec::new();
    // copied field by field: what is never kept is never copied
    let mut out = Map::new();
    if let Some(fields) = object.as_object() {
        for (k, v) in fields {
            match k.as_str() {
                "status" => {}
                "data" | "stringData" if secret => {}
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if secret {
        notes.push(SECRET_NOTE.to_string());
    }
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_METADATA {
            meta.remove(*f);
        }
        let empty = meta
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
            .map(|a| {
                a.remove(LAST_APPLIED);
                a.is_empty()
            });
        if empty == Some(true) {
            meta.remove("annotations");
        }
    }
    let pod = object["kind"].as_str() == Some("Pod") && object["apiVersion"].as_str() == Some("v1");
    if pod && let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        // a node that may be gone (it often is: heal8s deletes pods of
        // broken nodes); the scheduler picks one for the re-created pod
        spec.remove("nodeName");
        // the API server refuses them at creation
        if spec.remove("ephemeralContainers").is_some() {
            notes.push(
                "the pod's ephemeral containers are not kept (they cannot be set at creation)"
                    .into(),
            );
        }
    }
    let manifest = Value::Object(out);
    let size = json_len(&manifest);
    if size <= max_bytes {
        return Deleted {
            manifest,
            size: size as u64,
            notes,
            ..Deleted::default()
        };
    }
    let (manifest, kept) = identity(&manifest, max_bytes);
    notes.push(format!(
        "truncated: the object was {size} bytes, more than the {max_bytes} a record keeps; only {kept} are kept, not enough to re-create it"
    ));
    Deleted {
        manifest,
        truncated: true,
        size: size as u64,
        notes,
        ..Deleted::default()
    }
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// The largest identity of `manifest` within `max_bytes`: apiVersion, kind,
/// name and namespace, then labels, then annotations (the short ones, if all
/// do not fit); and what it holds, in words.
fn identity(manifest: &Value, max_bytes: usize) -> (Value, &'static str) {
    let meta = &manifest["metadata"];
    let mut base = Map::new();
    for k in ["apiVersion", "kind"] {
        if let Some(v) = manifest.get(k) {
            base.insert(k.into(), v.clone());
        }
    }
    let mut m = Map::new();
    for k in ["name", "generateName", "namespace"] {
        if let Some(v) = meta.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    let with = |labels: bool, annotations: Option<&Value>| {
        let mut m = m.clone();
        if labels && let Some(l) = meta.get("labels") {
            m.insert("labels".into(), l.clone());
        }
        if let Some(a) = annotations {
            m.insert("annotations".into(), a.clone());
        }
        let mut o = base.clone();
        o.insert("metadata".into(), Value::Object(m));
        Value::Object(o)
    };
    let short: Option<Value> = meta.get("annotations").and_then(Value::as_object).map(|a| {
        Value::Object(
            a.iter()
                .filter(|(_, v)| v.as_str().is_some_and(|s| s.len() <= LONG_ANNOTATION))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    });
    let candidates = [
        (
            with(true, meta.get("annotations")),
            "its apiVersion, kind, name, namespace, labels and annotations",
        ),
        (
            with(true, short.as_ref()),
            "its apiVersion, kind, name, namespace, labels and short annotations",
        ),
        (
            with(true, None),
            "its apiVersion, kind, name, namespace and labels",
        ),
    ];
    for (v, what) in candidates {
        if json_len(&v) <= max_bytes {
            return (v, what);
        }
    }
    (
        with(false, None),
        "its apiVersion, kind, name and namespace",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod as the API server serves it: server metadata, an owner, a node, a status.
    fn mk_pod(name: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "namespace": "shop", "generateName": "api-7d9c-",
                "uid": "u-1", "resourceVersion": "42", "generation": 1,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "deletionTimestamp": "2026-01-01T01:00:00Z", "deletionGracePeriodSeconds": 30,
                "selfLink": "/api/v1/namespaces/shop/pods/x",
                "managedFields": [{"manager": "kubelet"}],
                "labels": {"app": "api"},
                "annotations": {"team": "shop", LAST_APPLIED: "{\"kind\":\"Pod\"}"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9c", "uid": "rs-1", "controller": true}],
                "finalizers": ["example.com/keep"]
            },
            "spec": {"nodeName": "w1", "containers": [{"name": "api", "image": "registry/app:2"}],
                     "restartPolicy": "Always"},
            "status": {"phase": "Running"}
        })
    }

    fn mk_secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "namespace": "shop", "uid": "u-2",
                         "annotations": {LAST_APPLIED: "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"token": "hunter2"}
        })
    }

    #[test]
    fn a_pod_keeps_its_name_labels_and_spec_without_server_metadata_owner_node_or_status() {
        let d = keep(&mk_pod("api-7d9c-aaaaa"), MAX_BYTES);
        assert!(!d.truncated);
        assert!(d.notes.is_empty(), "{:?}", d.notes);
        assert_eq!(
            d.manifest,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": "api-7d9c-aaaaa", "namespace": "shop", "generateName": "api-7d9c-",
                    "labels": {"app": "api"}, "annotations": {"team": "shop"},
                    "finalizers": ["example.com/keep"]
                },
                "spec": {"containers": [{"name": "api", "image": "registry/app:2"}],
                         "restartPolicy": "Always"}
            })
        );
        assert_eq!(
            d.size as usize,
            serde_json::to_vec(&d.manifest).unwrap().len()
        );
        assert_eq!(d.describe(), "Pod shop/api-7d9c-aaaaa");
    }

    #[test]
    fn a_secrets_data_is_never_kept_and_a_note_says_so() {
        let d = keep(&mk_secret(), MAX_BYTES);
        let text = serde_json::to_string(&d).unwrap();
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(d.manifest.get("data").is_none());
        assert!(d.manifest.get("stringData").is_none());
        assert_eq!(d.manifest["type"], "Opaque");
        assert!(d.manifest["metadata"].get("annotations").is_none());
        assert_eq!(d.notes, vec![SECRET_NOTE.to_string()]);
        // its data does not count against the cap
        let mut big = mk_secret();
        big["data"]["blob"] = json!("A".repeat(100_000));
        let d = keep(&big, 1024);
        assert!(!d.truncated);
        assert!(d.manifest.get("data").is_none());
        // nor is it kept when the rest is too large to keep whole
        big["metadata"]["annotations"]["huge"] = json!("h".repeat(100_000));
        let d = keep(&big, 1024);
        assert!(d.truncated);
        let text = serde_json::to_string(&d).unwrap();
        assert!(!text.contains("aHVudGVyMg==") && !text.contains("hunter2"));
        assert!(!text.contains("AAAA"));
        // a custom kind named Secret is treated alike
        let mut custom = mk_secret();
        custom["apiVersion"] = json!("example.com/v1");
        assert!(keep(&custom, MAX_BYTES).manifest.get("data").is_none());
    }

    #[test]
    fn another_kinds_data_and_a_nodes_or_custom_resources_spec_stay() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "shop"}, "data": {"k": "v"}});
        assert_eq!(keep(&cm, MAX_BYTES).manifest["data"]["k"], "v");
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1", "uid": "n"},
                          "spec": {"providerID": "aws:///i-1", "unschedulable": true},
                          "status": {"conditions": []}});
        let d = keep(&node, MAX_BYTES);
        assert_eq!(
            d.manifest,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
                   "spec": {"providerID": "aws:///i-1", "unschedulable": true}})
        );
        assert_eq!(d.describe(), "Node w1");
        // only a core v1 Pod loses its node name
        let vm = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                        "metadata": {"name": "vm-a", "namespace": "e2e-1"},
                        "spec": {"running": true, "nodeName": "w1"}});
        assert_eq!(keep(&vm, MAX_BYTES).manifest["spec"]["nodeName"], "w1");
    }

    #[test]
    fn a_pods_ephemeral_containers_are_dropped_with_a_note() {
        let mut p = mk_pod("p");
        p["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
        let d = keep(&p, MAX_BYTES);
        assert!(d.manifest["spec"].get("ephemeralContainers").is_none());
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
    }

    #[test]
    fn an_object_over_the_cap_keeps_its_identity_labels_and_annotations_and_says_truncated() {
        let mut p = mk_pod("big");
        p["spec"]["containers"][0]["args"] = json!(["x".repeat(10_000)]);
        let d = keep(&p, 4096);
        assert!(d.truncated);
        assert!(d.size > 10_000);
        assert_eq!(
            d.manifest,
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "big", "namespace": "shop", "generateName": "api-7d9c-",
                                "labels": {"app": "api"}, "annotations": {"team": "shop"}}})
        );
        assert!(d.notes[0].starts_with("truncated:"), "{:?}", d.notes);
        assert!(json_len(&d.manifest) <= 4096);
        // long annotations go first, then all annotations, then the labels
        p["metadata"]["annotations"]["huge"] = json!("h".repeat(3000));
        let d = keep(&p, 2048);
        assert_eq!(
            d.manifest["metadata"]["annotations"],
            json!({"team": "shop"})
        );
        let d = keep(&p, 150);
        assert!(d.manifest["metadata"].get("annotations").is_none());
        assert_eq!(d.manifest["metadata"]["labels"], json!({"app": "api"}));
        let d = keep(&p, 10);
        assert_eq!(
            d.manifest,
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "big", "namespace": "shop", "generateName": "api-7d9c-"}})
        );
    }

    #[test]
    fn exactly_at_the_cap_is_kept_whole() {
        let p = keep(&mk_pod("p"), MAX_BYTES);
        let d = keep(&mk_pod("p"), p.size as usize);
        assert!(!d.truncated);
        assert!(keep(&mk_pod("p"), p.size as usize - 1).truncated);
    }

    #[test]
    fn removed_finalizers_are_listed_and_the_manifest_keeps_them() {
        let dv = json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                        "metadata": {"name": "dv-a", "namespace": "e2e-1",
                                     "deletionTimestamp": "2026-01-01T00:00:00Z",
                                     "finalizers": ["cdi.kubevirt.io/dataVolumeFinalizer"]},
                        "spec": {}});
        let f = vec!["cdi.kubevirt.io/dataVolumeFinalizer".to_string()];
        let d = keep(&dv, MAX_BYTES).with_finalizers_removed(&f);
        assert_eq!(d.finalizers_removed, f);
        assert_eq!(d.manifest["metadata"]["finalizers"], json!(f));
        assert!(d.manifest["metadata"].get("deletionTimestamp").is_none());
    }

    #[test]
    fn the_kept_object_reads_back_as_written_and_skips_empty_fields() {
        let d = keep(&mk_pod("p"), MAX_BYTES);
        let v = serde_json::to_value(&d).unwrap();
        assert!(v.get("truncated").is_none() && v.get("notes").is_none());
        assert!(v.get("finalizersRemoved").is_none());
        let back: Deleted = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn not_an_object_keeps_an_empty_manifest() {
        let d = keep(&json!(null), MAX_BYTES);
        assert_eq!(d.manifest, json!({}));
        assert!(!d.truncated);
    }
}
