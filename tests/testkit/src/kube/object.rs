//! Small helpers over objects held as `serde_json::Value`: metadata access,
//! timestamps, uids, generated names, and the name/label validation the real
//! API server applies. No storage, no HTTP.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use super::error::ApiError;

/// `metadata` of an object, if it is a map.
pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata` of an object, created if absent or not a map.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else {
        unreachable!("just made an object")
    };
    let m = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    match m {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

/// `metadata.name`.
pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name")
}

/// `metadata.resourceVersion` as a number (0 when absent or not a number).
pub fn resource_version(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `metadata.labels`, if present.
pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
}

/// Whether a write's `metadata.resourceVersion`, when it sets one, is not
/// `current`'s (a 409 for the writer).
pub fn stale(written: &Value, current: &Value) -> bool {
    meta_str(written, "resourceVersion").is_some_and(|rv| {
        !rv.is_empty() && rv.parse::<u64>().ok() != Some(resource_version(current))
    })
}

/// The strings of the list at JSON pointer `at` (none when absent).
pub fn strings_at(obj: &Value, at: &str) -> Vec<String> {
    obj.pointer(at)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    strings_at(obj, "/metadata/finalizers")
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_terminating(obj: &Value) -> bool {
    meta(obj)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

/// Set a string field of `metadata`.
pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    meta_mut(obj).insert(field.to_string(), value);
}

/// The map in top-level field `field`, created when absent (`None` when
/// `obj` or the field is something else than a map).
pub fn child_map<'a>(obj: &'a mut Value, field: &str) -> Option<&'a mut Map<String, Value>> {
    obj.as_object_mut()?
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

/// Set a top-level field.
pub fn set_field(obj: &mut Value, field: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.insert(field.to_string(), value);
    }
}

/// Look up a dotted path (`spec.nodeName`); `None` when any step is missing.
pub fn path<'a>(obj: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(obj, |v, step| v.as_object().and_then(|m| m.get(step)))
}

/// The value at a dotted path as a field-selector string: strings as is,
/// booleans and numbers printed, anything missing or null as "".
pub fn path_string(obj: &Value, dotted: &str) -> String {
    match path(obj, dotted) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Whether a pod has condition `Ready=True`.
pub fn pod_is_ready(pod: &Value) -> bool {
    path(pod, "status.conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Now, as the API server writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// `now + seconds` in the same format.
pub fn rfc3339_in(seconds: i64) -> String {
    let s = jiff::Timestamp::now().as_second().saturating_add(seconds);
    jiff::Timestamp::from_second(s)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now_rfc3339())
}

/// An RFC 3339 timestamp moved by `seconds`, in the same format.
pub fn rfc3339_shift(ts: &str, seconds: i64) -> Option<String> {
    let t: jiff::Timestamp = ts.parse().ok()?;
    let s = t.as_second().checked_add(seconds)?;
    jiff::Timestamp::from_second(s).ok().map(|t| t.to_string())
}

/// Whether a node has condition `Ready=True`.
pub fn node_is_ready(node: &Value) -> bool {
    node_ready_status(node) == Some("True")
}

/// The status of a node's `Ready` condition (`True`, `False`, `Unknown`), if it has one.
pub fn node_ready_status(node: &Value) -> Option<&str> {
    path(node, "status.conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
}

fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = STATE.load(Ordering::Relaxed);
    if seed == 0 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let _ = STATE.compare_exchange(
            0,
            t ^ u64::from(std::process::id()).rotate_left(32) | 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    // splitmix64: not cryptographic, only unique enough for uids and names.
    let mut z = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random version-4-shaped UUID.
pub fn new_uid() -> String {
    let a = next_random();
    let b = next_random();
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        8 + (b >> 62),
        &hex[17..20],
        &hex[20..32]
    )
}

/// Five characters from the alphabet the API server uses for `generateName`.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = next_random();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: lower-case alphanumerics, '-' and '.', at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    // as the API server's IsDNS1123Subdomain: 253 in all, no limit per part
    let part = |p: &str| {
        let b = p.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(part)
}

/// Validate `metadata.name` for a kind (namespaces need a DNS label, most others a subdomain).
pub fn validate_name(group: &str, kind: &str, name: &str) -> Result<(), ApiError> {
    let (ok, rule) = if kind == "Namespace" && group.is_empty() {
        (
            is_dns_label(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        )
    } else {
        (
            is_dns_subdomain(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        )
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            group,
            kind,
            name,
            "metadata.name",
            &format!("Invalid value: \"{name}\": {rule}"),
        ))
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && s.as_bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name`.
pub fn is_qualified_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(key),
    }
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn is_label_value(v: &str) -> bool {
    v.is_empty() || is_qualified_name_part(v)
}

/// Validate labels, annotations and finalizers the way the API server does.
pub fn validate_meta(group: &str, kind: &str, obj: &Value) -> Result<(), ApiError> {
    let Some(m) = meta(obj) else {
        return Ok(());
    };
    let name = m.get("name").and_then(Value::as_str).unwrap_or("");
    let bad = |field: &str, why: String| Err(ApiError::invalid(group, kind, name, field, &why));
    match m.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ls)) => {
            for (k, v) in ls {
                if !is_qualified_key(k) {
                    return bad(
                        "metadata.labels",
                        format!(
                            "Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                        ),
                    );
                }
                match v.as_str() {
                    Some(s) if is_label_value(s) => {}
                    _ => {
                        return bad(
                            "metadata.labels",
                            format!(
                                "Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                            ),
                        );
                    }
                }
            }
        }
        Some(_) => return bad("metadata.labels", "must be a map of strings".into()),
    }
    match m.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(anns)) => {
            let mut total = 0usize;
            for (k, v) in anns {
                if !is_qualified_key(k) {
                    return bad(
                        "metadata.annotations",
                        format!(
                            "Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"
                        ),
                    );
                }
                let Some(s) = v.as_str() else {
                    return bad(
                        "metadata.annotations",
                        format!("Invalid value: {v}: must be a string"),
                    );
                };
                total += k.len() + s.len();
            }
            if total > 256 * 1024 {
                return bad(
                    "metadata.annotations",
                    "Too long: must have at most 262144 bytes".into(),
                );
            }
        }
        Some(_) => return bad("metadata.annotations", "must be a map of strings".into()),
    }
    match m.get("finalizers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(fs)) => {
            for f in fs {
                match f.as_str() {
                    Some(s) if is_qualified_key(s) => {}
                    _ => {
                        return bad(
                            "metadata.finalizers",
                            format!("Invalid value: {f}: must be a qualified name"),
                        );
                    }
                }
            }
        }
        Some(_) => return bad("metadata.finalizers", "must be a list of strings".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn uids_look_like_uuids_and_differ() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(
            a.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }

    #[test]
    fn names_and_labels_are_validated_like_the_api_server() {
        assert!(validate_name("", "Pod", "api-1.x").is_ok());
        assert!(validate_name("", "Pod", "Api").is_err());
        assert!(validate_name("", "Namespace", "a.b").is_err());
        assert!(is_label_value("HighMemory_1"));
        assert!(!is_label_value("has space"));
        assert!(is_qualified_key("app.kubernetes.io/name"));
        let bad = json!({"metadata": {"name": "x", "labels": {"a": "b c"}}});
        assert_eq!(validate_meta("", "Pod", &bad).unwrap_err().code, 422);
    }

    #[test]
    fn timestamps_are_whole_second_rfc3339() {
        let t = now_rfc3339();
        assert!(t.ends_with('Z') && !t.contains('.'), "{t}");
    }
}
