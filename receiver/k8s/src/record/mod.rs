//! The `Remediation` custom resource (heal8s.io/v1alpha1): one record per
//! remediation of one target, in the target's namespace (cluster-scoped
//! targets such as nodes go to heal8s's own namespace).
//!
//! Owns the records' IO: the CRD type and its spec ([`Remediation`]), writing
//! what happens ([`KubeJournal`]), reading the guard's history back
//! ([`KubeHistory`]), upkeep (interrupted records, garbage collection) and
//! printing the object a record kept when heal8s deleted it ([`deleted_yaml`],
//! for `heal8s show-deleted`).
//! Must not decide how a status changes: that is receiver-core's
//! `status::apply`, pure and unit-tested; this module reads, applies, writes.

mod approval;
mod crd;
mod history;
mod journal;
mod show;
pub mod upkeep;

pub use approval::{Decision, decision_of};
pub use crd::{
    ApprovalSpec, CLEAR_ESCALATION, Remediation, RemediationSpec, TargetSpec, TriggerSpec,
    WorkloadSpec, crd_yaml,
};
pub use history::{
    History, KubeHistory, escalation_to_clear, load_history, past_events, watch_people,
};
pub use journal::{KubeJournal, open_pull_requests, settle_pull_request};
pub use receiver_core::deleted::Deleted;
pub use receiver_core::status::{
    ApprovalStatus, Condition, HISTORY, HistoryEntry, LEDGER, NO_REPOSITORY, Phase,
    PullRequestStatus, RefusalCount, RemediationStatus, STARTED, phase_of,
};
pub use show::{deleted_yaml, find};
pub use upkeep::{collect_garbage, mark_interrupted, note_on_node};

/// Replace a record's status (merge patch on the status subresource).
async fn write_status(
    api: &kube::Api<Remediation>,
    name: &str,
    status: &RemediationStatus,
) -> Result<(), kube::Error> {
    write_status_over(api, name, status, None).await
}

/// [`write_status`], where the record held `was` as its deleted object
/// before: a new one replaces it whole.
async fn write_status_over(
    api: &kube::Api<Remediation>,
    name: &str,
    status: &RemediationStatus,
    was: Option<&Deleted>,
) -> Result<(), kube::Error> {
    use kube::api::{Patch, PatchParams};
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&status_patch(status, was)),
    )
    .await?;
    Ok(())
}

/// The merge patch that writes `status` over a record whose deleted object
/// was `was`. A merge patch merges objects key by key: a new deleted
/// object would keep the fields of the old one it lacks, so those are
/// nulled (RFC 7386), and the new one replaces the old whole.
fn status_patch(status: &RemediationStatus, was: Option<&Deleted>) -> serde_json::Value {
    let mut patch = serde_json::json!({ "status": status });
    if let (Some(was), Some(now)) = (was, &status.deleted)
        && was != now
    {
        let old = serde_json::to_value(was).unwrap_or_default();
        let new = serde_json::to_value(now).unwrap_or_default();
        patch["status"]["deleted"] = replacing(&old, &new);
    }
    patch
}

/// The merge patch that turns `old` into `new`.
fn replacing(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = serde_json::Map::new();
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            for (k, v) in n {
                let v = match o.get(k) {
                    Some(was) => replacing(was, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// RFC 7386's merge, as the API server applies a merge patch.
    fn merge(target: &mut Value, patch: &Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            (t, p) => {
                let mut p = p.clone();
                if let Value::Object(m) = &mut p {
                    m.retain(|_, v| !v.is_null());
                }
                *t = p;
            }
        }
    }

    fn kept(object: Value) -> Deleted {
        receiver_core::deleted::keep(&object, receiver_core::deleted::MAX_BYTES)
    }

    #[test]
    fn a_new_deleted_object_replaces_the_old_one_whole() {
        let old = kept(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "test-1", "labels": {"old": "yes", "team": "a"},
                         "annotations": {"note": "x"}},
            "spec": {"finalizers": ["kubernetes"]}}));
        let mut old = old;
        old.truncated = true;
        let new = kept(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "test-1", "labels": {"team": "b"}}}));
        let mut before = RemediationStatus {
            deleted: Some(old.clone()),
            ..RemediationStatus::default()
        };
        let mut stored = json!({ "status": serde_json::to_value(&before).unwrap() });
        before.deleted = Some(new.clone());
        merge(&mut stored, &status_patch(&before, Some(&old)));
        let read: RemediationStatus = serde_json::from_value(stored["status"].clone()).unwrap();
        assert_eq!(read.deleted, Some(new.clone()));
        // unchanged, or not there before: the status as it is
        let same = RemediationStatus {
            deleted: Some(new.clone()),
            ..RemediationStatus::default()
        };
        assert_eq!(
            status_patch(&same, Some(&new)),
            json!({"status": serde_json::to_value(&same).unwrap()})
        );
        assert_eq!(
            status_patch(&same, None),
            json!({"status": serde_json::to_value(&same).unwrap()})
        );
    }
}
