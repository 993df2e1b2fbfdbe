//! The guard's memory as a list of events: actions, their ends and
//! settlements, recoveries and escalations. The pipeline hands every event it
//! applies to the durable record; a restarted replica replays them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::remediation::{ActionClass, RemediationKind};

/// What ends an escalation (policy `guard.escalation.clearedBy`) and, in
/// every case, starts the count of repeats over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecoveryBy {
    /// heal8s watched the target recover after acting.
    Verified,
    /// The alert about a target that keeps its identity resolved.
    AlertResolved,
    /// A person cleared it (annotation on the Remediation record).
    Human,
}

impl RecoveryBy {
    /// camelCase name, as in the policy and the record.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryBy::Verified => "verified",
            RecoveryBy::AlertResolved => "alertResolved",
            RecoveryBy::Human => "human",
        }
    }
}

/// One change to what the guard remembers. The pipeline hands every event it
/// applies to the durable record, and a restarted replica replays the same
/// events: so the in-memory guard and the restored guard count the same things.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum GuardEvent {
    /// A remediation was carried out, simulated or attempted (it counts
    /// against cooldowns, budgets and escalation).
    #[serde(rename_all = "camelCase")]
    Action {
        /// The workload (or target) key it counts against.
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        remediation: RemediationKind,
        /// Its class, for the class rates (absent in records written before
        /// classes existed: then the remediation's usual class).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<ActionClass>,
    },
    /// `remediation` on `key` was observed, proposed or put up for approval
    /// (modes `observe`, `propose`, `approve`): nothing was changed. It counts
    /// for the cooldown (one problem, one record), never against budgets,
    /// breakers or escalation.
    Observed {
        key: String,
        remediation: RemediationKind,
    },
    /// `key` recovered: its count of repeats starts over, and its escalation
    /// ends when `by` is in `clearedBy`.
    Recovered { key: String, by: RecoveryBy },
    /// `remediation` on `key` was escalated: refused until cleared.
    Escalated {
        key: String,
        remediation: RemediationKind,
    },
    /// The action of `remediation` on `key` that started at `started` ended
    /// (done, failed or simulated): its cooldown counts from now. An action
    /// with no end (cut off by a crash) counts from its start.
    Ended {
        key: String,
        remediation: RemediationKind,
        started: Timestamp,
    },
    /// What the action of `remediation` on `key` that started at `started`
    /// did is known (verified, or nothing to verify): it is no longer in
    /// flight (see `maxInFlight`). An action never settled stops counting
    /// as in flight after `guard::IN_FLIGHT_AT_MOST`.
    Settled {
        key: String,
        remediation: RemediationKind,
        started: Timestamp,
    },
}

impl GuardEvent {
    /// The workload or target key the event is about.
    pub fn key(&self) -> &str {
        match self {
            GuardEvent::Action { key, .. }
            | GuardEvent::Observed { key, .. }
            | GuardEvent::Recovered { key, .. }
            | GuardEvent::Escalated { key, .. }
            | GuardEvent::Ended { key, .. }
            | GuardEvent::Settled { key, .. } => key,
        }
    }
}

/// A [`GuardEvent`] with its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastEvent {
    pub at: Timestamp,
    #[serde(flatten)]
    pub event: GuardEvent,
}
