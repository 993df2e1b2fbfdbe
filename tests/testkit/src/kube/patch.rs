//! Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902),
//! strategic merge patch (lists merged by their Kubernetes merge keys, with
//! the `$patch`, `$retainKeys`, `$setElementOrder` and
//! `$deleteFromPrimitiveList` directives kubectl sends) and a server-side
//! apply approximation. Pure functions over `serde_json::Value`.

use serde_json::{Map, Value};

use super::error::ApiError;

/// The patch content types the API server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// From a `Content-Type` header value, for a built-in type or a custom
    /// resource (no strategic merge). The API server drops parameters, and
    /// takes no CBOR apply patches while its CBOR feature gate is off (1.33).
    pub fn from_content_type(ct: &str, builtin: bool) -> Result<PatchType, ApiError> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" if builtin => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" => Ok(PatchType::Apply),
            _ => Err(unsupported_patch_type(builtin)),
        }
    }
}

/// The API server's 415 for a patch type it does not take, naming those it does.
fn unsupported_patch_type(builtin: bool) -> ApiError {
    let strategic = if builtin {
        "application/strategic-merge-patch+json, "
    } else {
        ""
    };
    ApiError::unsupported_media_type(format!(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, {strategic}application/apply-patch+yaml"
    ))
}

/// Parse a patch body: JSON for every type; apply patches may also be YAML.
pub fn parse_body(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if kind == PatchType::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("apply patch is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|ye| {
                ApiError::bad_request(format!("error decoding YAML: {ye} (as JSON: {e})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// Apply `patch` of `kind` to `target`; `builtin` says whether the type has
/// Kubernetes patch metadata (strategic merge is refused for custom resources,
/// as the real server does).
pub fn apply_patch(
    kind: PatchType,
    target: &Value,
    patch: &Value,
    builtin: bool,
) -> Result<Value, ApiError> {
    let mut out = target.clone();
    match kind {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(&mut out, patch);
        }
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut out, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchType::Strategic => {
            if !builtin {
                return Err(unsupported_patch_type(false));
            }
            strategic_merge(&mut out, patch, "")?;
        }
        PatchType::Apply => {
            apply_merge(&mut out, patch, "", builtin);
        }
    }
    Ok(out)
}

/// The merge key of a list field in built-in types, if it merges by key.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "taints" => "key",
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// The dotted path of field `k` below `path`.
fn child(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// Primitive lists merged as sets (`patchStrategy: merge` on a list of strings).
fn is_set_list(parent_path: &str, field: &str) -> bool {
    field == "finalizers" && parent_path.ends_with("metadata")
}

/// Strip directives and nulls from a value being inserted as new.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| i.get("$patch").is_none())
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Strategic merge patch of `patch` into `target` (at `path`, dotted).
pub fn strategic_merge(target: &mut Value, patch: &Value, path: &str) -> Result<(), ApiError> {
    let Value::Object(pm) = patch else {
        *target = clean(patch);
        return Ok(());
    };
    match pm.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = clean(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other}"
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tm) = target else {
        return Ok(());
    };
    let mut orders: Vec<(&str, &Vec<Value>)> = Vec::new();
    for (k, v) in pm {
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Value::Array(order) = v {
                orders.push((field, order));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (tm.get_mut(field), v) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        let child_path = child(path, k);
        match v {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(_) => {
                let slot = tm.entry(k.clone()).or_insert(Value::Null);
                if slot.is_object() {
                    strategic_merge(slot, v, &child_path)?;
                } else {
                    let mut fresh = Value::Object(Map::new());
                    strategic_merge(&mut fresh, v, &child_path)?;
                    *slot = fresh;
                }
            }
            Value::Array(items) => {
                let merged = merge_list(tm.get(k), items, path, k)?;
                tm.insert(k.clone(), merged);
            }
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = tm.get_mut(field) {
            reorder(list, order, field);
        }
    }
    if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        tm.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn merge_list(
    current: Option<&Value>,
    items: &[Value],
    parent_path: &str,
    field: &str,
) -> Result<Value, ApiError> {
    let current: Vec<Value> = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(clean(&Value::Array(items.to_vec())));
    }
    if is_set_list(parent_path, field) {
        let mut out = current;
        for i in items {
            if !out.contains(i) {
                out.push(i.clone());
            }
        }
        return Ok(Value::Array(out));
    }
    let key = merge_key(field, items).or_else(|| merge_key(field, &current));
    let Some(key) = key.filter(|_| items.iter().all(Value::is_object)) else {
        return Ok(clean(&Value::Array(items.to_vec())));
    };
    let mut out = current;
    let child_path = format!("{parent_path}.{field}");
    for item in items {
        let id = item.get(key);
        let pos = out.iter().position(|x| x.get(key) == id && id.is_some());
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(p) = pos {
                out.remove(p);
            }
            continue;
        }
        match pos {
            Some(p) => strategic_merge(&mut out[p], item, &child_path)?,
            None => out.push(clean(item)),
        }
    }
    Ok(Value::Array(out))
}

/// Order `list` like `order` (entries of `$setElementOrder`); unlisted items keep their place at the end.
fn reorder(list: &mut Vec<Value>, order: &[Value], field: &str) {
    let key = merge_key(field, list);
    let id = |v: &Value| -> Value {
        match key {
            Some(k) if v.is_object() => v.get(k).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let mut rest = std::mem::take(list);
    for o in order {
        let want = id(o);
        if let Some(p) = rest.iter().position(|x| id(x) == want) {
            list.push(rest.remove(p));
        }
    }
    list.extend(rest);
}

/// Server-side apply, approximated: maps merge recursively, lists with merge
/// keys (built-in types) merge by key, `metadata.finalizers` as a set, other
/// lists are replaced. Fields no longer applied are not removed.
fn apply_merge(target: &mut Value, applied: &Value, path: &str, builtin: bool) {
    let Value::Object(am) = applied else {
        *target = applied.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tm) = target else {
        return;
    };
    for (k, v) in am {
        let child_path = child(path, k);
        match v {
            Value::Object(_) => {
                let slot = tm.entry(k.clone()).or_insert(Value::Null);
                apply_merge(slot, v, &child_path, builtin);
            }
            Value::Array(items) => {
                let merged = if is_set_list(path, k) || builtin {
                    merge_list(tm.get(k), items, path, k)
                        .unwrap_or_else(|_| Value::Array(items.clone()))
                } else {
                    Value::Array(items.clone())
                };
                tm.insert(k.clone(), merged);
            }
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value) -> Value {
        apply_patch(PatchType::Strategic, &target, &patch, true).unwrap()
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "resources": {"limits": {"memory": "1Gi"}}},
            {"name": "b", "image": "b:1"}
        ]}});
        let out = smp(
            pod,
            json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"memory": "2Gi"}}}]}}),
        );
        assert_eq!(out["spec"]["containers"][0]["image"], "a:1");
        assert_eq!(
            out["spec"]["containers"][0]["resources"]["limits"]["memory"],
            "2Gi"
        );
        assert_eq!(out["spec"]["containers"][1]["name"], "b");
    }

    #[test]
    fn strategic_merge_handles_kubectl_directives() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"]},
            "spec": {"containers": [{"name": "x"}, {"name": "y"}], "tolerations": [{"key": "k"}]}});
        let out = smp(
            obj,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
                "spec": {"$setElementOrder/containers": [{"name": "y"}, {"name": "x"}],
                          "containers": [{"name": "x", "$patch": "delete"}],
                          "tolerations": [{"key": "z"}]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "y"}]));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "z"}]));
    }

    #[test]
    fn strategic_merge_unions_finalizers_and_merges_conditions_by_type() {
        let obj = json!({"metadata": {"finalizers": ["a"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}});
        let out = smp(
            obj,
            json!({"metadata": {"finalizers": ["b"]},
                   "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(out["status"]["conditions"][0]["status"], "False");
        assert_eq!(out["status"]["conditions"][1]["type"], "X");
    }

    #[test]
    fn strategic_merge_is_refused_for_custom_resources() {
        let err = apply_patch(PatchType::Strategic, &json!({}), &json!({}), false).unwrap_err();
        assert_eq!(err.code, 415);
    }

    #[test]
    fn merge_and_json_patches_follow_their_rfcs() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1, 2]}});
        let out = apply_patch(
            PatchType::Merge,
            &obj,
            &json!({"metadata": {"labels": {"a": null}}, "spec": {"x": [3]}}),
            true,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"x": [3]}})
        );
        let out = apply_patch(
            PatchType::Json,
            &obj,
            &json!([{"op": "replace", "path": "/spec/x/0", "value": 9}]),
            true,
        )
        .unwrap();
        assert_eq!(out["spec"]["x"], json!([9, 2]));
        let err = apply_patch(
            PatchType::Json,
            &obj,
            &json!([{"op": "test", "path": "/spec/x/0", "value": 5}]),
            true,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn patch_media_types_are_the_api_servers() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8", true),
            Ok(PatchType::Merge)
        );
        let e = PatchType::from_content_type("application/json", true).unwrap_err();
        assert_eq!(e.code, 415);
        assert_eq!(
            e.message,
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
        );
        let e = PatchType::from_content_type("application/strategic-merge-patch+json", false)
            .unwrap_err();
        assert!(e.message.ends_with(
            "include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        ));
        assert!(PatchType::from_content_type("application/apply-patch+cbor", true).is_err());
    }

    #[test]
    fn apply_patches_may_be_yaml() {
        let v = parse_body(
            PatchType::Apply,
            b"metadata:\n  name: x\nspec:\n  replicas: 2\n",
        )
        .unwrap();
        assert_eq!(v["spec"]["replicas"], 2);
    }
}
