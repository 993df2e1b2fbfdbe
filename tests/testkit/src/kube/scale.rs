//! The scale subresource: an `autoscaling/v1` `Scale` view of
//! `spec.replicas` / `status.replicas` / the selector, and writing replicas
//! back through the store's update rules.

use serde_json::{Value, json};

use super::error::ApiError;
use super::object;
use super::patch::{self, PatchType};
use super::policies::{Attributes, Operation};
use super::resources::ResourceDef;
use super::selectors::LabelSelector;
use super::store::{Part, State, WriteOpts};

/// The Scale object for `obj`.
pub(crate) fn to_scale(def: &ResourceDef, obj: &Value) -> Value {
    let m = object::meta(obj);
    let pick = |f: &str| m.and_then(|m| m.get(f)).cloned().unwrap_or(Value::Null);
    let selector = if def.group == "apps" {
        LabelSelector::from_object(obj.pointer("/spec/selector"))
            .map(|s| s.to_query())
            .unwrap_or_default()
    } else {
        obj.pointer("/status/selector")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": { "replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1) },
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// How a scale write arrives.
#[derive(Debug)]
pub(crate) enum ScaleWrite<'a> {
    /// PUT with a whole Scale.
    Replace(&'a Value),
    /// PATCH of the Scale.
    Patch(PatchType, &'a Value),
}

/// Write a Scale: set `spec.replicas` of the scaled object; returns the new Scale.
pub(crate) fn write_scale(
    state: &mut State,
    def: &ResourceDef,
    namespace: Option<&str>,
    name: &str,
    write: ScaleWrite<'_>,
    opts: WriteOpts,
) -> Result<Value, ApiError> {
    let current = state.get(def, namespace, name)?.value();
    let scale = to_scale(def, &current);
    let wanted = match write {
        ScaleWrite::Replace(body) => {
            if object::stale(body, &current) {
                return Err(ApiError::stale(&def.group, &def.plural, name));
            }
            body.clone()
        }
        ScaleWrite::Patch(kind, p) => patch::apply_patch(kind, &scale, p, true)?,
    };
    let replicas = wanted
        .pointer("/spec/replicas")
        .map(|r| r.as_i64().filter(|r| *r >= 0))
        .unwrap_or(Some(0))
        .ok_or_else(|| {
            ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                "spec.replicas",
                "Invalid value: must be greater than or equal to 0",
            )
        })?;
    let mut obj = current.clone();
    if let Some(s) = object::child_map(&mut obj, "spec") {
        s.insert("replicas".into(), json!(replicas));
    }
    // admission sees the `scale` subresource and Scale objects, not the
    // object scaled (a policy on `deployments` does not see scaling)
    if let Some(by) = opts.by.filter(|_| !opts.direct) {
        state.admit_policies(
            &Attributes {
                def,
                subresource: "scale",
                kind: ("autoscaling", "v1", "Scale"),
                operation: Operation::Update,
                namespace: namespace.unwrap_or(""),
                name,
                object: &to_scale(def, &obj),
                old: Some(&scale),
                dry_run: opts.dry_run,
            },
            by,
        )?;
    }
    let opts = WriteOpts { by: None, ..opts };
    let updated = state.update(def, namespace, name, obj, Part::Main, opts)?;
    Ok(to_scale(def, &updated))
}
