//! The durable record of what heal8s did (the Remediation custom resource
//! in a cluster): the `Journal` that writes it and the `History` a replica
//! reads back when it starts or becomes leader.

use async_trait::async_trait;

use crate::ledger::PastEvent;
use crate::outcome::{Outcome, Verification};
use crate::plan::Plan;

/// Writes the durable record of outcomes (the Remediation custom resource in a
/// cluster). Failing to write is logged by the implementation, never fatal.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Record `outcome`.
    async fn write(&self, outcome: &Outcome);

    /// This replica (again) leads: whatever it knew of the records may be
    /// out of date (another replica wrote in between).
    async fn resume(&self) {}

    /// Record that `plan` is about to be carried out for real, before it is,
    /// with the action `event` the guard counted: a crash in the middle then
    /// leaves a trace the next process honours. (The outcome written after
    /// carries the same event again; keeping it is idempotent.)
    async fn begin(&self, _plan: &Plan, _event: Option<&PastEvent>) {}

    /// Record whether the target of an executed `plan` recovered; `events`
    /// are what the guard applied (the action settled, and its recovery if
    /// it did).
    async fn verified(&self, _plan: &Plan, _verification: &Verification, _events: &[PastEvent]) {}

    /// The alert with `fingerprint` resolved: records of actions it triggered
    /// on targets that keep their identity, still being verified, count as
    /// recovered. (A pod's alert resolves because the pod was deleted: that is
    /// no evidence; its workload's verification settles the record.)
    async fn resolved(&self, _fingerprint: &str) {}

    /// Keep guard events that concern no single plan (a recovery, a cleared
    /// escalation) with the records of the key they are about; `cleared` says
    /// the guard ended an escalation with them.
    async fn remember(&self, _events: &[PastEvent], _cleared: bool) {}

    /// A person decided on the request `request` of the record of `plan`
    /// (mode `approve`): `by` approved it (heal8s checks again, then acts)
    /// or rejected it. Whether the record took the decision (it was still
    /// awaiting it): a decision it did not take is not acted on.
    async fn decided(&self, _plan: &Plan, _request: &str, _by: &str, _approved: bool) -> bool {
        false
    }
}

/// A journal that keeps nothing (offline, or the CRD is not installed).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJournal;

#[async_trait]
impl Journal for NoJournal {
    async fn write(&self, _outcome: &Outcome) {}
}

/// Reads back what the durable record says was done, for a replica that starts
/// or becomes leader.
#[async_trait]
pub trait History: Send + Sync {
    /// Past guard events and alert occurrences (fingerprint, startsAt); `None` when unreadable.
    async fn load(&self) -> Option<(Vec<PastEvent>, Vec<(String, jiff::Timestamp)>)>;
}

/// Keeps the alerts that hold remediations (`guard.holdWhileFiring`)
/// durably, so a restarted or new leader holds from its first moment.
#[async_trait]
pub trait HoldKeeper: Send + Sync {
    /// What was kept; `None` when unreadable (the holds start empty, and
    /// fill again as the alerts are re-sent).
    async fn load(&self) -> Option<Vec<crate::guard::holds::HeldAlert>>;
    /// Keep `held` (replacing what was kept); failures are logged.
    async fn save(&self, held: &[crate::guard::holds::HeldAlert]);
}
