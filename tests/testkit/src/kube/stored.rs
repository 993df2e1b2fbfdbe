//! One stored object in compact form: its JSON text, plus the labels and
//! selectable field values extracted once at write time, so lists, selectors
//! and watches never re-parse it (100k pods fit in about 1 KB each).

use serde_json::Value;

use super::object;
use super::selectors::{FieldSelector, LabelSelector, selectable_fields};

/// A stored object version (immutable; a write stores a new one).
#[derive(Debug)]
pub(crate) struct Stored {
    json: Box<str>,
    api_version: Box<str>,
    labels: Box<[(Box<str>, Box<str>)]>,
    /// Values of the type's selectable fields that are not empty.
    fields: Box<[(&'static str, Box<str>)]>,
    /// `metadata.deletionTimestamp` is set (what the played controllers look for).
    deleting: bool,
}

impl Stored {
    /// Capture `obj` (of resource `group`/`plural`).
    pub(crate) fn new(obj: &Value, group: &str, plural: &str) -> Stored {
        let labels = object::labels(obj)
            .map(|ls| {
                ls.iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().unwrap_or("").into()))
                    .collect()
            })
            .unwrap_or_default();
        let fields = selectable_fields(group, plural)
            .into_iter()
            .filter_map(|f| {
                let v = object::path_string(obj, f);
                (!v.is_empty()).then(|| (f, v.into_boxed_str()))
            })
            .collect();
        Stored {
            json: serde_json::to_string(obj).unwrap_or_default().into(),
            api_version: obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            labels,
            fields,
            deleting: object::is_terminating(obj),
        }
    }

    /// Whether `metadata.deletionTimestamp` is set.
    pub(crate) fn deleting(&self) -> bool {
        self.deleting
    }

    /// The object as a `Value` (parsed on demand).
    pub(crate) fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }

    /// The object's JSON text.
    pub(crate) fn json(&self) -> &str {
        &self.json
    }

    /// The `apiVersion` it was written in.
    pub(crate) fn api_version(&self) -> &str {
        &self.api_version
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(f, _)| *f == name)
            .map_or("", |(_, v)| &**v)
    }

    /// Whether it satisfies both selectors.
    pub(crate) fn matches(&self, labels: &LabelSelector, fields: &FieldSelector) -> bool {
        labels.matches_with(|k| self.label(k)) && fields.matches_with(|f| self.field(f))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_on_extracted_labels_and_fields() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let s = Stored::new(&pod, "", "pods");
        let allowed = selectable_fields("", "pods");
        let m = |l: &str, f: &str| {
            s.matches(
                &LabelSelector::parse(l).unwrap(),
                &FieldSelector::parse(f, &allowed).unwrap(),
            )
        };
        assert!(m("app=web", "spec.nodeName=n1,metadata.namespace=ns"));
        assert!(m("", "spec.schedulerName="));
        assert!(!m("app=db", ""));
        assert!(!m("", "status.phase!=Running"));
        assert_eq!(s.value(), pod);
        assert_eq!(s.api_version(), "v1");
    }
}
