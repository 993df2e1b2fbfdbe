//! The `Remediation` custom resource type (heal8s.io/v1alpha1) and its spec;
//! its CRD is generated from it (`heal8s crd`, committed under
//! charts/heal8s/crds/). The status is receiver-core's
//! (`receiver_core::status`), which also owns how it changes.

use std::collections::BTreeMap;

use kube::CustomResource;
use receiver_core::status::RemediationStatus;
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

impl TargetSpec {
    /// The target's kind as receiver-core names it.
    pub fn target_kind(&self) -> receiver_core::TargetKind {
        receiver_core::TargetKind::of(&self.api_version, &self.kind)
    }
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
        name = "Approved By",
        type_ = "string",
        json_path = ".status.approval.approvedBy"
    ),
    printcolumn(
        name = "Trace",
        type_ = "string",
        json_path = ".status.traceId",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::kubernetes_formats)]
pub struct RemediationSpec {
    pub trigger: TriggerSpec,
    pub target: TargetSpec,
    /// The remediation's name, e.g. `delete-pod`.
    pub remediation: String,
    /// Its parameters, as in the policy.
    #[serde(default)]
    #[schemars(schema_with = "free_form")]
    pub parameters: serde_json::Value,
    /// The route's mode: `observe`, `propose`, `approve` or `direct`.
    pub mode: String,
    /// A person's decision on the request in `status.approval` (mode
    /// `approve`), written by `heal8s approve` or `heal8s reject` with the
    /// name the API server gives the caller. The chart's
    /// ValidatingAdmissionPolicy refuses a name other than the requester's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
}

/// A person's decision on a request for approval (`spec.approval`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    /// The request decided on (`status.approval.request`): a decision on an
    /// older request does not count for a newer one.
    pub request: String,
    /// Who approved it (the API server's name for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    /// Who rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_at: Option<String>,
}

impl ApprovalSpec {
    /// Who decided and whether they approved; `None` unless exactly one of
    /// `approvedBy` and `rejectedBy` names someone.
    pub fn decision(&self) -> Option<(&str, bool, Option<&str>)> {
        match (self.approved_by.as_deref(), self.rejected_by.as_deref()) {
            (Some(a), None) if !a.is_empty() => Some((a, true, self.approved_at.as_deref())),
            (None, Some(r)) if !r.is_empty() => Some((r, false, self.rejected_at.as_deref())),
            _ => None,
        }
    }
}

fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Annotation a person sets on an escalated Remediation to end the escalation:
/// `kubectl annotate remediation NAME heal8s.io/clear-escalation=true`.
pub const CLEAR_ESCALATION: &str = "heal8s.io/clear-escalation";

/// The CRD as YAML, as `heal8s crd` prints it and the chart ships it.
pub fn crd_yaml() -> Result<String, String> {
    use kube::CustomResourceExt;
    let crd = Remediation::crd();
    let json = serde_json::to_value(&crd).map_err(|e| e.to_string())?;
    serde_saphyr::to_string(&json).map_err(|e| e.to_string())
}

/// The spec of the record of `kind` on `t` that `plan` starts.
pub(super) fn spec_for(
    plan: &receiver_core::Plan,
    t: &receiver_core::Target,
    kind: receiver_core::RemediationKind,
) -> RemediationSpec {
    RemediationSpec {
        trigger: TriggerSpec {
            source: plan.trigger.source.to_string(),
            alertname: plan.trigger.name.clone(),
            fingerprint: plan.trigger.fingerprint.clone(),
            labels: plan.trigger.labels.clone(),
            first_seen: plan.trigger.first_seen.to_string(),
        },
        target: TargetSpec {
            api_version: t.kind.api_version(),
            kind: t.kind.kind_name().to_string(),
            namespace: t.namespace.clone(),
            name: t.name.clone(),
            container: t.container.clone(),
            workload: plan.workload.as_ref().map(|w| WorkloadSpec {
                kind: w.kind.clone(),
                name: w.name.clone(),
            }),
            key: t.key(),
        },
        remediation: kind.as_str().to_string(),
        parameters: serde_json::to_value(&plan.remediation)
            .ok()
            .and_then(|v| v.get("params").cloned())
            .unwrap_or(serde_json::Value::Null),
        mode: plan.mode.as_str().to_string(),
        approval: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(api_version: &str, kind: &str) -> TargetSpec {
        TargetSpec {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: "x".into(),
            container: None,
            workload: None,
            key: format!("{kind}/shop/x"),
        }
    }

    #[test]
    fn a_records_target_reads_back_as_the_kind_it_was_written_from() {
        use receiver_core::{Target, TargetKind};
        for kind in [TargetKind::Pod, TargetKind::Deployment, TargetKind::Node] {
            let t = Target::new(kind.clone(), Some("shop"), "x");
            let s = spec(&t.kind.api_version(), t.kind.kind_name());
            assert_eq!(s.target_kind(), kind);
        }
        assert!(!spec("v1", "Pod").target_kind().keeps_identity());
        assert!(spec("example.com/v1", "Pod").target_kind().keeps_identity());
    }
}
