//! Keeping generated CRD schemas to the OpenAPI formats Kubernetes knows.
//!
//! schemars writes Rust's integer widths as formats (`uint32`, `uint64`,
//! `int8`...); the API server knows only `int32`/`int64` for integers,
//! `float`/`double` for numbers and a fixed list for strings, and warns
//! `unrecognized format "uint64"` for every other one it meets when the CRD
//! is created. [`kubernetes_formats`] rewrites a schema into known formats
//! (bounds kept as `minimum`/`maximum`); [`unknown_formats`] lists what the
//! API server would warn about. The rule is the API server's own
//! (apiextensions-apiserver `GetUnrecognizedFormats`); the chart check
//! (`scripts/chart-check.py`) applies the same rule to the shipped CRDs.

use schemars::Schema;
use serde_json::{Map, Value};

/// String formats every supported Kubernetes version knows (kube-openapi's
/// strfmt registry as CRD validation uses it; `-` is ignored, so `date-time`
/// is `datetime`).
pub const STRING_FORMATS: &[&str] = &[
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
];

/// Whether the API server knows `format` for a schema of type `type_`
/// (`None`: no type given).
pub fn known_format(type_: Option<&str>, format: &str) -> bool {
    match type_ {
        None | Some("string") => STRING_FORMATS.contains(&format.replace('-', "").as_str()),
        Some("integer") => matches!(format, "int32" | "int64"),
        Some("number") => matches!(format, "float" | "double"),
        Some(_) => false,
    }
}

/// A schema node's single type: `type: T`, or `type: [T, "null"]` as
/// schemars writes an `Option<T>` before kube turns it into `nullable`.
fn type_of(node: &Map<String, Value>) -> Option<&str> {
    match node.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(ts) => {
            let mut non_null = ts.iter().filter_map(Value::as_str).filter(|t| *t != "null");
            match (non_null.next(), non_null.next()) {
                (Some(t), None) => Some(t),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Every format in `schema` (and below it) the API server would warn about,
/// as `path: format`.
pub fn unknown_formats(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(schema, "", &mut |path, node| {
        if let Some(f) = node.get("format").and_then(Value::as_str)
            && !f.is_empty()
            && !known_format(type_of(node), f)
        {
            out.push(format!("{}: {f}", if path.is_empty() { "." } else { path }));
        }
    });
    out
}

/// A schemars transform (`#[schemars(transform = ...)]`): every format in
/// the schema becomes one Kubernetes knows. Unsigned and narrow integers
/// become `int64` (or `int32` where they fit), keeping their range as
/// `minimum`/`maximum`; formats Kubernetes has no name for are dropped, as
/// the API server itself would drop them.
pub fn kubernetes_formats(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        rewrite(obj);
    }
}

fn rewrite(node: &mut Map<String, Value>) {
    if let Some(format) = node
        .get("format")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        let type_ = type_of(node).map(str::to_string);
        if !known_format(type_.as_deref(), &format) {
            match (type_.as_deref(), integer_range(&format)) {
                (Some("integer"), Some((known, min, max))) => {
                    node.insert("format".into(), known.into());
                    if let Some(min) = min {
                        node.entry("minimum").or_insert(min.into());
                    }
                    if let Some(max) = max {
                        node.entry("maximum").or_insert(max.into());
                    }
                }
                _ => {
                    node.remove("format");
                }
            }
        }
    }
    for v in node.values_mut() {
        match v {
            Value::Object(o) => rewrite(o),
            Value::Array(items) => {
                for i in items.iter_mut() {
                    if let Value::Object(o) = i {
                        rewrite(o);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The known format and bounds for one of schemars's integer formats.
fn integer_range(format: &str) -> Option<(&'static str, Option<i64>, Option<u64>)> {
    Some(match format {
        "int8" => ("int32", Some(i8::MIN.into()), Some(i8::MAX as u64)),
        "int16" => ("int32", Some(i16::MIN.into()), Some(i16::MAX as u64)),
        "uint8" => ("int32", Some(0), Some(u8::MAX.into())),
        "uint16" => ("int32", Some(0), Some(u16::MAX.into())),
        "uint32" => ("int64", Some(0), Some(u32::MAX.into())),
        "uint64" | "uint128" | "uint" => ("int64", Some(0), None),
        "int128" | "int" => ("int64", None, None),
        _ => return None,
    })
}

/// Visit every schema object below `v` with its JSON path.
fn walk(v: &Value, path: &str, f: &mut dyn FnMut(&str, &Map<String, Value>)) {
    match v {
        Value::Object(o) => {
            f(path, o);
            for (k, child) in o {
                walk(child, &format!("{path}.{k}"), f);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, &format!("{path}[{i}]"), f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_api_servers_rule_by_type() {
        assert!(known_format(Some("integer"), "int64"));
        assert!(known_format(Some("number"), "double"));
        assert!(known_format(Some("string"), "date-time"));
        assert!(known_format(None, "uuid"));
        assert!(!known_format(Some("integer"), "uint64"));
        assert!(!known_format(Some("integer"), "uint32"));
        assert!(!known_format(Some("integer"), "double"));
        assert!(!known_format(Some("string"), "int64"));
        assert!(!known_format(Some("string"), "ip"));
        assert!(!known_format(Some("boolean"), "int32"));
    }

    #[test]
    fn unsigned_and_narrow_integers_become_known_formats_with_their_range() {
        let mut s = Schema::from(
            json!({"type": "object", "properties": {
                "a": {"type": "integer", "format": "uint32", "minimum": 0},
                "b": {"type": "array", "items": {"type": "integer", "format": "uint64", "minimum": 0}},
                "c": {"type": "integer", "format": "uint8", "minimum": 0, "maximum": 255},
                "d": {"type": "string", "format": "ip"},
                "e": {"type": "string", "format": "date-time"},
                "f": {"anyOf": [{"type": "integer", "format": "int128"}]},
                "g": {"type": ["integer", "null"], "format": "int64"},
                "h": {"type": ["integer", "null"], "format": "uint32"}
            }})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        assert_eq!(unknown_formats(s.as_value()).len(), 6);
        kubernetes_formats(&mut s);
        let v = s.as_value();
        assert_eq!(unknown_formats(v), Vec::<String>::new(), "{v:#}");
        let p = &v["properties"];
        assert_eq!(
            p["a"],
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u64})
        );
        assert_eq!(p["b"]["items"]["format"], "int64");
        assert_eq!(p["c"]["format"], "int32");
        assert_eq!(p["c"]["maximum"], 255);
        assert_eq!(p["d"], json!({"type": "string"}));
        assert_eq!(p["e"]["format"], "date-time");
        assert_eq!(p["f"]["anyOf"][0]["format"], "int64");
        assert_eq!(p["g"]["format"], "int64");
        assert_eq!(p["h"]["format"], "int64");
    }

    #[test]
    fn the_remediation_crd_has_only_formats_kubernetes_knows() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(crate::record::Remediation::crd()).unwrap_or_default();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert!(schema.is_object(), "{crd:#}");
        assert_eq!(unknown_formats(schema), Vec::<String>::new());
    }
}
