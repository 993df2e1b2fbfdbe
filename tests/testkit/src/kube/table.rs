//! Server-side printing for kubectl: `meta.k8s.io/v1` `Table` responses with
//! the usual columns for pods, nodes, namespaces and workloads, and NAME/AGE
//! for everything else. Pure functions over stored objects.

use serde_json::{Value, json};

use super::object;
use super::resources::ResourceDef;

/// Kubernetes' short human duration (`45s`, `3m20s`, `5h`, `12d`).
pub fn human_age(seconds: i64) -> String {
    if seconds < 0 {
        return "0s".into();
    }
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86400);
    if seconds < 120 {
        format!("{seconds}s")
    } else if m < 10 {
        if seconds % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", seconds % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else {
        format!("{d}d")
    }
}

fn age(obj: &Value) -> String {
    let created =
        object::meta_str(obj, "creationTimestamp").and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match created {
        Some(t) => human_age(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn s(obj: &Value, ptr: &str) -> String {
    match obj.pointer(ptr) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn n(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn pod_cells(p: &Value) -> Vec<Value> {
    let statuses = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
        .sum();
    let waiting = statuses
        .iter()
        .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str));
    let status = if object::is_terminating(p) {
        "Terminating".to_string()
    } else if let Some(w) = waiting {
        w.to_string()
    } else {
        let phase = s(p, "/status/phase");
        if phase.is_empty() {
            "Pending".into()
        } else {
            phase
        }
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(age(p)),
        json!(s(p, "/status/podIP")),
        json!(s(p, "/spec/nodeName")),
    ]
}

fn node_cells(nd: &Value) -> Vec<Value> {
    let ready = object::node_ready_status(nd)
        .map(|st| if st == "True" { "Ready" } else { "NotReady" })
        .unwrap_or("Unknown");
    let mut status = ready.to_string();
    if nd.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = object::labels(nd)
        .map(|ls| {
            ls.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    vec![
        json!(status),
        json!(roles),
        json!(age(nd)),
        json!(s(nd, "/status/nodeInfo/kubeletVersion")),
    ]
}

/// Extra column names and types (after NAME).
type Columns = Vec<(&'static str, &'static str)>;
/// The cells of those columns for one object.
type Cells = fn(&Value) -> Vec<Value>;

fn columns_and_cells(def: &ResourceDef) -> (Columns, Cells) {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => (
            vec![
                ("Ready", "string"),
                ("Status", "string"),
                ("Restarts", "integer"),
                ("Age", "string"),
                ("IP", "string"),
                ("Node", "string"),
            ],
            pod_cells,
        ),
        ("", "nodes") => (
            vec![
                ("Status", "string"),
                ("Roles", "string"),
                ("Age", "string"),
                ("Version", "string"),
            ],
            node_cells,
        ),
        ("", "namespaces") => (vec![("Status", "string"), ("Age", "string")], |o| {
            vec![json!(s(o, "/status/phase")), json!(age(o))]
        }),
        ("apps", "deployments") => (
            vec![
                ("Ready", "string"),
                ("Up-to-date", "integer"),
                ("Available", "integer"),
                ("Age", "string"),
            ],
            |o| {
                vec![
                    json!(format!(
                        "{}/{}",
                        n(o, "/status/readyReplicas"),
                        n(o, "/spec/replicas")
                    )),
                    json!(n(o, "/status/updatedReplicas")),
                    json!(n(o, "/status/availableReplicas")),
                    json!(age(o)),
                ]
            },
        ),
        ("policy", "poddisruptionbudgets") => (
            vec![
                ("Min Available", "string"),
                ("Max Unavailable", "string"),
                ("Allowed Disruptions", "integer"),
                ("Age", "string"),
            ],
            |o| {
                let or_na = |v: String| if v.is_empty() { "N/A".to_string() } else { v };
                vec![
                    json!(or_na(s(o, "/spec/minAvailable"))),
                    json!(or_na(s(o, "/spec/maxUnavailable"))),
                    json!(n(o, "/status/disruptionsAllowed")),
                    json!(age(o)),
                ]
            },
        ),
        _ => (vec![("Age", "string")], |o| vec![json!(age(o))]),
    }
}

/// A Table of `items`; rows carry `PartialObjectMetadata` (what kubectl asks for by default).
pub fn render(
    def: &ResourceDef,
    items: &[Value],
    resource_version: u64,
    continue_token: Option<&str>,
) -> Value {
    let (cols, cells) = columns_and_cells(def);
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    if def.printer_columns.is_empty() {
        for (name, ty) in &cols {
            // Like the real printers, these only show with `-o wide`.
            let priority = i32::from(matches!(*name, "IP" | "Node"));
            defs.push(json!({"name": name, "type": ty, "format": "", "description": "", "priority": priority}));
        }
    } else {
        // a CRD's additionalPrinterColumns (dates print as ages, as kubectl shows them)
        for c in &def.printer_columns {
            let ty = if c.type_ == "date" {
                "string"
            } else {
                c.type_.as_str()
            };
            defs.push(json!({"name": c.name, "type": ty, "format": "", "description": "", "priority": c.priority}));
        }
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut c = vec![json!(object::name(o).unwrap_or(""))];
            if def.printer_columns.is_empty() {
                c.extend(cells(o));
            } else {
                for col in &def.printer_columns {
                    let pointer = col.json_path.replace('.', "/");
                    let v = o.pointer(&pointer).cloned().unwrap_or(Value::Null);
                    c.push(match (col.type_.as_str(), &v) {
                        ("date", Value::String(t)) => {
                            json!(age(&json!({"metadata": {"creationTimestamp": t}})))
                        }
                        (_, Value::Null) => json!("<none>"),
                        _ => v,
                    });
                }
            }
            json!({
                "cells": c,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(Value::Null),
                },
            })
        })
        .collect();
    let mut meta = json!({"resourceVersion": resource_version.to_string()});
    if let (Some(c), Some(m)) = (continue_token, meta.as_object_mut()) {
        m.insert("continue".into(), json!(c));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(150), "2m30s");
        assert_eq!(human_age(3600 * 5 + 60), "5h1m");
        assert_eq!(human_age(86400 * 3), "3d");
    }
}
