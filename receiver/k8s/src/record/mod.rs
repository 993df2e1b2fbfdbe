//! The `Remediation` custom resource (heal8s.io/v1alpha1): one record per
//! remediation of one target, in the target's namespace (cluster-scoped
//! targets such as nodes go to heal8s's own namespace).
//!
//! Owns the records' IO: the CRD type and its spec ([`Remediation`]), writing
//! what happens ([`KubeJournal`]), reading the guard's history back
//! ([`KubeHistory`]) and upkeep (interrupted records, garbage collection).
//! Must not decide how a status changes: that is receiver-core's
//! `status::apply`, pure and unit-tested; this module reads, applies, writes.

mod crd;
mod history;
mod journal;
pub mod upkeep;

pub use crd::{
    CLEAR_ESCALATION, Remediation, RemediationSpec, TargetSpec, TriggerSpec, WorkloadSpec, crd_yaml,
};
pub use history::{
    History, KubeHistory, escalation_to_clear, load_history, past_events, watch_clears,
};
pub use journal::{KubeJournal, open_pull_requests, settle_pull_request};
pub use receiver_core::status::{
    Condition, HISTORY, HistoryEntry, LEDGER, NO_REPOSITORY, Phase, PullRequestStatus,
    RefusalCount, RemediationStatus, STARTED, phase_of,
};
pub use upkeep::{collect_garbage, mark_interrupted, note_on_node};

/// Replace a record's status (merge patch on the status subresource).
async fn write_status(
    api: &kube::Api<Remediation>,
    name: &str,
    status: &RemediationStatus,
) -> Result<(), kube::Error> {
    use kube::api::{Patch, PatchParams};
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"status": status})),
    )
    .await?;
    Ok(())
}
