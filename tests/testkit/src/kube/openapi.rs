//! A minimal OpenAPI v3 surface for kubectl: the `/openapi/v3` root listing
//! every served group version, and per group version a document whose PATCH
//! operations carry `x-kubernetes-group-version-kind` and the
//! `fieldValidation` parameter, so kubectl knows the server validates fields
//! itself and needs no schemas. No schemas are served.

use serde_json::{Map, Value, json};

use super::discovery::SERVER_MINOR;
use super::resources::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The document for one group version (`api/v1`, `apis/apps/v1`), if served.
pub fn group_version_doc(reg: &Registry, rel: &str) -> Option<Value> {
    let (group, version) = match rel.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return None,
    };
    let defs = reg.resources(&group, &version);
    if defs.is_empty() {
        return None;
    }
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let mut paths = Map::new();
    // only what kubectl patches and replaces (not create-only SelfSubjectReview)
    for d in defs
        .into_iter()
        .filter(|d| d.served_verbs().contains(&"patch"))
    {
        let base = format!("/{}", gv_path(&group, &version));
        let path = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", d.plural)
        } else {
            format!("{base}/{}/{{name}}", d.plural)
        };
        let gvk = json!({"group": d.group, "version": d.version, "kind": d.kind});
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", d.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(path, json!({"patch": op("patch"), "put": op("put")}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{SERVER_MINOR}.0")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// `/openapi/v3`: where each group version's document lives.
pub fn root(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, versions) in reg.groups() {
        for v in versions {
            let rel = gv_path(&group, &v);
            let hash = group_version_doc(reg, &rel)
                .map(|d| fnv(&d.to_string()))
                .unwrap_or(0);
            paths.insert(
                rel.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{rel}?hash={hash:016X}")}),
            );
        }
    }
    json!({"paths": paths})
}
