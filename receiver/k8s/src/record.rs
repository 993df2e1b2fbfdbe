//! The `Remediation` custom resource (heal8s.io/v1alpha1): one record per
//! remediation of one target, in the target's namespace (cluster-scoped
//! targets such as nodes go to heal8s's own namespace).
//!
//! Owns: the type (its CRD is generated from it: `heal8s crd`, committed under
//! charts/heal8s/crds/) and its RFC 1123 names. Writing records, durable guard
//! state and leader election come with the rest of issue 4.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What set the remediation off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerSpec {
    /// `alert` or `detector`.
    pub source: String,
    /// The alert or detector signal name (as is; never used in object names).
    pub alertname: String,
    pub fingerprint: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339.
    pub first_seen: String,
}

/// The workload owning the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    pub kind: String,
    pub name: String,
}

/// The object acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadSpec>,
    /// `Kind/namespace/name`, for `kubectl get`.
    pub key: String,
}

/// A Remediation: what heal8s decided to do about one target, and what happened.
// kube's printcolumn(...) repeats attribute keys on purpose
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "heal8s.io",
    version = "v1alpha1",
    kind = "Remediation",
    namespaced,
    status = "RemediationStatus",
    shortname = "rem",
    category = "heal8s",
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.target.key"),
    printcolumn(name = "Action", type_ = "string", json_path = ".spec.remediation"),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        priority = "1"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RemediationSpec {
    pub trigger: TriggerSpec,
    pub target: TargetSpec,
    /// The remediation's name, e.g. `delete-pod`.
    pub remediation: String,
    /// Its parameters, as in the policy.
    #[serde(default)]
    #[schemars(schema_with = "free_form")]
    pub parameters: serde_json::Value,
    /// `direct`, `pull-request` or `dry-run`.
    pub mode: String,
}

fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Where a remediation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    Pending,
    Planned,
    Acting,
    Succeeded,
    Failed,
    Refused,
    Escalated,
    #[serde(rename = "PROpen")]
    PrOpen,
    Merged,
    Applied,
}

/// One step of a remediation's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// RFC 3339.
    pub at: String,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A standard condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// A bounded reason, e.g. `cooldown`, `Evicted`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default)]
    pub attempts: u32,
    /// RFC 3339 times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The last few phase changes, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The CRD as YAML, as `heal8s crd` prints it and the chart ships it.
pub fn crd_yaml() -> Result<String, String> {
    use kube::CustomResourceExt;
    let crd = Remediation::crd();
    let json = serde_json::to_value(&crd).map_err(|e| e.to_string())?;
    serde_saphyr::to_string(&json).map_err(|e| e.to_string())
}
