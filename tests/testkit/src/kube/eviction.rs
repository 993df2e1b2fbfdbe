//! The pod eviction subresource: PodDisruptionBudget arithmetic computed from
//! the pods themselves (no disruption controller runs), the real server's
//! answers (429 with a DisruptionBudget cause, 500 for several budgets), then
//! deletion through the store's delete rules.

use serde_json::{Value, json};

use super::error::ApiError;
use super::object;
use super::selectors::LabelSelector;
use super::store::{DeleteOpts, State};

/// The message of a refused eviction, as the real API server words it.
pub const PDB_VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// `value` of an int-or-string (`2` or `"50%"`) against `total`, rounded up.
fn scaled(value: &Value, total: i64) -> Result<i64, ApiError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| ApiError::bad_request(format!("invalid int-or-string {n}"))),
        Value::String(s) => match s.strip_suffix('%') {
            Some(p) => {
                let p: i64 = p
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid percentage {s:?}")))?;
                Ok((p * total + 99) / 100)
            }
            None => s
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid int-or-string {s:?}"))),
        },
        other => Err(ApiError::bad_request(format!(
            "invalid int-or-string {other}"
        ))),
    }
}

fn is_terminal(pod: &Value) -> bool {
    matches!(
        object::path(pod, "status.phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// Terminal, pending or already terminating pods are evicted without consulting budgets.
fn can_ignore_pdb(pod: &Value) -> bool {
    is_terminal(pod)
        || object::path(pod, "status.phase").and_then(Value::as_str) == Some("Pending")
        || object::is_terminating(pod)
}

/// Evict pod `namespace/name` as `POST .../pods/{name}/eviction` with `body` does.
pub(crate) fn evict(
    state: &mut State,
    namespace: &str,
    name: &str,
    body: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    if let Some(n) = object::name(body)
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object ({n} != {name})"
        )));
    }
    let pod_def = state
        .registry
        .find("", "v1", "pods")
        .cloned()
        .ok_or_else(|| ApiError::internal("pods are not registered"))?;
    let pod = state.get(&pod_def, Some(namespace), name)?.value();
    let opts = DeleteOpts::from_options(body.get("deleteOptions"), dry_run);
    if !can_ignore_pdb(&pod) {
        check_budgets(state, namespace, &pod)?;
    }
    state.delete(&pod_def, Some(namespace), name, &opts)?;
    Ok(())
}

fn check_budgets(state: &State, namespace: &str, pod: &Value) -> Result<(), ApiError> {
    let pdb_storage = ("policy".to_string(), "poddisruptionbudgets".to_string());
    let mut matching = Vec::new();
    for pdb in state.objects_in(&pdb_storage, Some(namespace)) {
        let pdb = pdb.value();
        let sel = LabelSelector::from_object(pdb.pointer("/spec/selector"))?;
        if sel.matches_object(pod) {
            matching.push((pdb, sel));
        }
    }
    if matching.len() > 1 {
        return Err(ApiError::internal(
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    let Some((pdb, sel)) = matching.into_iter().next() else {
        return Ok(());
    };
    let pods_storage = (String::new(), "pods".to_string());
    let covered: Vec<_> = state
        .objects_in(&pods_storage, Some(namespace))
        .into_iter()
        .map(|p| p.value())
        .filter(|p| sel.matches_object(p) && !is_terminal(p))
        .collect();
    let expected = covered.len() as i64;
    let healthy = covered
        .iter()
        .filter(|p| object::pod_is_ready(p) && !object::is_terminating(p))
        .count() as i64;
    let spec = pdb.get("spec").cloned().unwrap_or(Value::Null);
    let desired = if let Some(min) = spec.get("minAvailable") {
        scaled(min, expected)?
    } else if let Some(max) = spec.get("maxUnavailable") {
        (expected - scaled(max, expected)?).max(0)
    } else {
        0
    };
    let allowed = healthy - desired;
    let pdb_name = object::name(&pdb).unwrap_or("");
    let refuse = || {
        ApiError::new(429, "TooManyRequests", PDB_VIOLATION).with_details(json!({
            "causes": [{
                "reason": "DisruptionBudget",
                "message": format!(
                    "The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"
                ),
            }]
        }))
    };
    if object::pod_is_ready(pod) {
        if allowed < 1 {
            return Err(refuse());
        }
    } else {
        let always = spec
            .get("unhealthyPodEvictionPolicy")
            .and_then(Value::as_str)
            == Some("AlwaysAllow");
        if !always && allowed < 0 {
            return Err(refuse());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn int_or_percent_rounds_up() {
        assert_eq!(scaled(&json!(2), 10).unwrap(), 2);
        assert_eq!(scaled(&json!("50%"), 3).unwrap(), 2);
        assert_eq!(scaled(&json!("3"), 10).unwrap(), 3);
        assert!(scaled(&json!("x%"), 3).is_err());
    }
}
