//! What a `Remediation` record says happened (its `status`), and every rule
//! about how that changes: one pure transition, [`apply`], over typed
//! [`Event`]s (an action begun, an outcome, a verification, a resolved
//! alert, a recovery remembered, an interruption, a pull request settled).
//!
//! Owns: the status types (plain serde, with the schema the CRD publishes)
//! and the state machine. Must not do IO: receiver-k8s reads the record,
//! calls [`apply`] with the time and this replica's name, and writes the
//! status back.

use std::time::Duration;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::deleted::Deleted;
// through the crate's root: the types stay put there while modules move
use crate::{
    GuardEvent, Outcome, OutcomeKind, PastEvent, RefusalReason, TargetKind, Verification,
    VerifyResult,
};

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
    /// A notify-only finding was recorded (nothing changed; never an action).
    Notified,
    /// Acted, but nothing heal8s can read says whether the target recovered.
    Unverified,
    /// An escalation was ended (a recovery, or a person cleared it), or a
    /// breaker episode ended (the class may act again).
    Cleared,
    /// A declarative fix was computed but not proposed: the policy names no
    /// pull-request repository.
    NotProposed,
    /// A drain did its job, but the node stayed down (it may be deleted next).
    Drained,
    /// A breaker record: heal8s stands a class of actions down (a partition,
    /// a rate, a mass flip); `Cleared` once the class may act again.
    Holding,
    /// Mode `observe`: what heal8s would have done; nothing was changed.
    Observed,
    /// Mode `propose`, a janitor action: proposed to people (a
    /// notification); nothing was changed.
    Proposed,
    /// Mode `approve`: the plan (`status.approval`) waits for a person's
    /// approval (`heal8s approve`); nothing was changed.
    AwaitingApproval,
    /// A person approved the plan: heal8s checks the live state and the
    /// guard again, then acts (the record moves on to `Acting`).
    Approved,
    /// A person rejected the plan: nothing is done.
    Rejected,
}

/// One step of a remediation's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// RFC 3339.
    pub at: String,
    pub phase: Phase,
    /// The heal8s replica that wrote the entry.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
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

// Integers are published as the formats the API server knows (`int64`, with
// an unsigned type's bounds): it warns about schemars's `uint32`/`uint64`.
// receiver-k8s's schema test and the committed CRD check keep this true.

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
    #[schemars(extend("format" = "int64", "maximum" = 4294967295u32))]
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
    /// The pull request of a declarative fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestStatus>,
    /// What this remediation changed in the guard's memory (actions counted,
    /// escalations, recoveries), oldest first: a restarted replica replays
    /// exactly these, so it counts what the running one counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "ledger_schema")]
    pub ledger: Vec<PastEvent>,
    /// A breaker record: the targets the breaker refused in this episode
    /// (`Kind/namespace/name`, at most 100, oldest first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<String>,
    /// A breaker record: the refusals of its class while it held, by reason
    /// and namespace (at most 50 entries; the rest in `refusalsOmitted`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<RefusalCount>,
    /// A breaker record: refusals counted but not listed in `refusals`.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(extend("format" = "int64"))]
    pub refusals_omitted: u64,
    /// The object the last action deleted (or removed finalizers from), as
    /// it was: its manifest ready to re-apply (`heal8s show-deleted`), a
    /// Secret's data never kept, at most 64 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Deleted>,
    /// Mode `approve`: the request (with the plan), and the decision once
    /// heal8s took it. Written only by heal8s (the status subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalStatus>,
    /// The trace id (32 hex digits) of the signal behind the record's latest
    /// outcome: its spans, when heal8s exports traces, and its log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// A record's request for approval, as heal8s keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalStatus {
    /// The request's name (`heal8s approve` copies it into `spec.approval.request`).
    pub request: String,
    /// RFC 3339 times.
    pub requested_at: String,
    pub expires_at: String,
    /// The plan to approve, as heal8s made it (route, remediation,
    /// parameters, target, the object's UID and node).
    #[schemars(schema_with = "free_form")]
    pub plan: serde_json::Value,
    /// Who approved, as heal8s took it (the API server's name for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    /// Who rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
}

fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

impl ApprovalStatus {
    /// The plan awaiting approval, with its request, as heal8s wrote it.
    pub fn plan(&self) -> Option<crate::plan::Plan> {
        serde_json::from_value(self.plan.clone()).ok()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Refusals of one reason in one namespace, as a breaker record keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalCount {
    /// The refusal reason, e.g. `partition`, `global_budget`.
    pub reason: String,
    /// Absent for cluster-scoped targets (nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[schemars(extend("format" = "int64"))]
    pub count: u64,
    /// The first few refused targets (`Kind/namespace/name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// RFC 3339 time of the first refusal.
    pub first: String,
    /// RFC 3339 time of the last refusal.
    pub last: String,
}

fn ledger_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}

/// The pull request a declarative fix opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestStatus {
    /// `owner/name`.
    pub repository: String,
    #[schemars(extend("format" = "int64"))]
    pub number: u64,
    pub url: String,
    pub branch: String,
    pub head_sha: String,
}

/// How many guard events a record keeps (far more than any budget or
/// escalation threshold counts on one target).
pub const LEDGER: usize = 64;

/// How many history entries a record keeps.
pub const HISTORY: usize = 10;

/// The history message of an action that has started and not yet ended.
pub const STARTED: &str = "started";

/// The reason of a declarative fix that was not proposed because the policy
/// names no pull-request repository.
pub const NO_REPOSITORY: &str = "NoRepository";

/// Something that happened to a remediation, as its record takes it in.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// An action is about to be carried out for real (`what`: the plan,
    /// described), with the action the guard counted.
    Begun {
        what: &'a str,
        action: Option<&'a PastEvent>,
    },
    /// The pipeline's outcome for the record's target and remediation;
    /// `generation` is the record's.
    Outcome {
        outcome: &'a Outcome,
        generation: i64,
    },
    /// Watching the target after the action ended; `ledger` is what the
    /// guard applied with it.
    Verified {
        verification: &'a Verification,
        ledger: &'a [PastEvent],
        generation: i64,
    },
    /// The signal that triggered the record (alert `alertname`, fingerprint
    /// `fingerprint`) resolved. `remediation` and `target` are the record's.
    Resolved {
        alertname: &'a str,
        fingerprint: &'a str,
        remediation: &'a str,
        target: &'a TargetKind,
    },
    /// Guard events that concern no single plan (a recovery, a cleared
    /// escalation); `cleared` says the guard ended an escalation with them.
    Remembered {
        events: &'a [PastEvent],
        cleared: bool,
    },
    /// The replica writing (`by`) took over from a process that stopped or
    /// lost its lease.
    Interrupted,
    /// The record's pull request was merged or closed unmerged.
    PullRequestSettled {
        phase: Phase,
        reason: &'a str,
        message: &'a str,
    },
    /// A note for the history (e.g. a drain reconciled after a restart).
    Noted { message: &'a str },
    /// heal8s took a person's decision on the request `request`: approved
    /// (it acts next, after checking again) or rejected, by `by`.
    Decided {
        request: &'a str,
        by: &'a str,
        approved: bool,
    },
}

/// Take `event` into `status` at `now`, written by replica `by`; whether the
/// status changed (the record needs writing). An outcome is stamped with its
/// own time: pass `outcome.at` as `now`.
pub fn apply(status: &mut RemediationStatus, event: Event<'_>, now: Timestamp, by: &str) -> bool {
    let now = now.to_string();
    match event {
        Event::Begun { what, action } => {
            status.phase = Some(Phase::Acting);
            status.reason = "Started".into();
            status.message = format!("started: {what}");
            status.started_at.get_or_insert_with(|| now.clone());
            status.finished_at = None;
            if let Some(e) = action {
                push_ledger(status, std::slice::from_ref(e));
            }
            push_history(status, entry(&now, Phase::Acting, by, STARTED.into()));
            true
        }
        Event::Outcome {
            outcome,
            generation,
        } => {
            take_outcome(status, outcome, generation, &now, by);
            true
        }
        Event::Verified {
            verification,
            ledger,
            generation,
        } => {
            if status.phase != Some(Phase::Acting) {
                // already settled (e.g. its alert resolved first): the first settlement stands
                return false;
            }
            let v = verification;
            let (phase, reason, condition) = match v.result {
                VerifyResult::Recovered => (Phase::Succeeded, "Recovered", "True"),
                VerifyResult::NotRecovered => (Phase::Failed, "NotRecovered", "False"),
                VerifyResult::Unverified => (Phase::Unverified, "Unverified", "Unknown"),
                VerifyResult::StillDown => (Phase::Drained, "NodeStillDown", "False"),
            };
            status.observed_generation = Some(generation);
            set_condition(status, "Recovered", condition, reason, &v.message, &now);
            push_ledger(status, ledger);
            status.phase = Some(phase);
            status.reason = reason.into();
            status.message = truncate(&v.message, 1000);
            status.finished_at = Some(now.clone());
            push_history(status, entry(&now, phase, by, truncate(&v.message, 200)));
            true
        }
        Event::Resolved {
            alertname,
            fingerprint,
            remediation,
            target,
        } => {
            if status.phase != Some(Phase::Acting) {
                return false;
            }
            if let Some(why) = verification_decides(remediation) {
                // the signal's resolution is no proof the action is done: a
                // detector stops seeing a namespace or resource the moment its
                // deletion is marked, though it may stay Terminating forever;
                // a node is back before heal8s gives back its cordon
                let message = format!(
                    "alert {alertname} resolved; the record settles on its verification ({why})"
                );
                push_history(status, entry(&now, Phase::Acting, by, message));
                return true;
            }
            if !target.keeps_identity() {
                // the pod's alert resolved because heal8s deleted the pod: no
                // evidence that its workload recovered; the verification settles it
                let message = format!(
                    "alert {alertname} resolved: the pod is gone, which is no evidence of recovery; waiting for the workload's verification"
                );
                push_history(status, entry(&now, Phase::Acting, by, message));
                return true;
            }
            let message = format!("alert {alertname} ({fingerprint}) resolved");
            status.phase = Some(Phase::Succeeded);
            status.reason = "AlertResolved".into();
            status.message = message.clone();
            status.finished_at = Some(now.clone());
            set_condition(status, "Recovered", "True", "AlertResolved", &message, &now);
            push_history(status, entry(&now, Phase::Succeeded, by, message));
            true
        }
        Event::Remembered { events, cleared } => {
            // only events about a key this record's ledger concerns
            let mine: Vec<PastEvent> = events
                .iter()
                .filter(|e| status.ledger.iter().any(|l| l.event.key() == e.event.key()))
                .cloned()
                .collect();
            if mine.is_empty() {
                return false;
            }
            push_ledger(status, &mine);
            if cleared && status.phase == Some(Phase::Escalated) {
                let who = mine
                    .iter()
                    .find_map(|e| match &e.event {
                        GuardEvent::Recovered { by, .. } => Some(by.as_str()),
                        _ => None,
                    })
                    .unwrap_or("recovery");
                let message = format!("escalation ended ({who}); heal8s may act on it again");
                status.phase = Some(Phase::Cleared);
                status.reason = "EscalationCleared".into();
                status.message = message.clone();
                status.finished_at = Some(now.clone());
                push_history(status, entry(&now, Phase::Cleared, by, message));
            }
            true
        }
        Event::Interrupted => {
            let last = status.history.last().cloned();
            // left Acting by another process; this replica's own are in flight
            let stale =
                status.phase == Some(Phase::Acting) && last.as_ref().is_some_and(|h| h.by != by);
            if !stale {
                return false;
            }
            let message = if last.is_some_and(|h| h.message == STARTED) {
                "heal8s stopped while acting; the action may be incomplete and is not repeated blindly (the problem is signalled again if it persists)"
            } else {
                "heal8s stopped before recovery was verified"
            };
            status.phase = Some(Phase::Failed);
            status.reason = "Interrupted".into();
            status.message = message.into();
            status.finished_at = Some(now.clone());
            push_history(status, entry(&now, Phase::Failed, by, "interrupted".into()));
            true
        }
        Event::PullRequestSettled {
            phase,
            reason,
            message,
        } => {
            if status.phase != Some(Phase::PrOpen) {
                return false;
            }
            status.phase = Some(phase);
            status.reason = reason.to_string();
            status.message = truncate(message, 1000);
            if phase == Phase::Refused {
                status.finished_at = Some(now.clone());
            }
            push_history(status, entry(&now, phase, by, truncate(message, 200)));
            true
        }
        Event::Decided {
            request,
            by: who,
            approved,
        } => {
            let Some(a) = status.approval.as_mut() else {
                return false;
            };
            let open = status.phase == Some(Phase::AwaitingApproval);
            if !open || a.request != request {
                return false;
            }
            let (phase, reason, message) = if approved {
                a.approved_by = Some(who.to_string());
                a.approved_at = Some(now.clone());
                (
                    Phase::Approved,
                    "Approved",
                    format!("approved by {who}; checking the live state and the guard again"),
                )
            } else {
                a.rejected_by = Some(who.to_string());
                status.finished_at = Some(now.clone());
                (
                    Phase::Rejected,
                    "Rejected",
                    format!("rejected by {who}; nothing is done"),
                )
            };
            status.phase = Some(phase);
            status.reason = reason.into();
            status.message = message.clone();
            push_history(status, entry(&now, phase, by, message));
            true
        }
        Event::Noted { message } => {
            let phase = status.phase.unwrap_or(Phase::Failed);
            push_history(status, entry(&now, phase, by, truncate(message, 200)));
            true
        }
    }
}

fn take_outcome(status: &mut RemediationStatus, o: &Outcome, generation: i64, now: &str, by: &str) {
    let (phase, reason) = phase_of(o);
    if matches!(o.result, OutcomeKind::Acted | OutcomeKind::Failed) {
        // the outcome replaces the "started" entry `begin` wrote for this action
        if status
            .history
            .last()
            .is_some_and(|h| h.phase == Phase::Acting && h.message == STARTED)
        {
            status.history.pop();
        }
        status.attempts += 1;
        status.started_at.get_or_insert_with(|| now.to_string());
    }
    if matches!(
        phase,
        Phase::Failed | Phase::Escalated | Phase::Notified | Phase::NotProposed
    ) {
        status.finished_at = Some(now.to_string());
    }
    push_ledger(status, &o.ledger);
    status.observed_generation = Some(generation);
    if let Some(id) = o.trace_id() {
        status.trace_id = Some(id);
    }
    if let Some(d) = &o.deleted {
        // the last object deleted replaces any earlier one
        let mut d = d.clone();
        if d.at.is_empty() {
            d.at = now.to_string();
        }
        status.deleted = Some(d);
    }
    match o.result {
        OutcomeKind::Acted if o.pull_request.is_some() => {
            if let Some(pr) = &o.pull_request {
                status.pull_request = Some(PullRequestStatus {
                    repository: pr.repository.clone(),
                    number: pr.number,
                    url: pr.url.clone(),
                    branch: pr.branch.clone(),
                    head_sha: pr.head_sha.clone(),
                });
            }
            set_condition(status, "Acted", "True", "PullRequestOpen", &o.message, now);
        }
        OutcomeKind::Acted if phase == Phase::Acting => {
            set_condition(status, "Acted", "True", "Acted", &o.message, now);
            set_condition(
                status,
                "Recovered",
                "Unknown",
                "Verifying",
                "watching the target recover",
                now,
            );
        }
        OutcomeKind::Failed => {
            set_condition(status, "Acted", "False", "ActionFailed", &o.message, now)
        }
        _ => {}
    }
    if o.result == OutcomeKind::AwaitingApproval
        && let Some(p) = &o.plan
        && let Some(a) = &p.approval
    {
        // one open request per record: a repeat while it is open keeps it
        // (a person may be approving it right now)
        let open = status.phase == Some(Phase::AwaitingApproval)
            && status.approval.as_ref().is_some_and(|x| {
                x.expires_at.parse::<Timestamp>().is_ok_and(|e| e > o.at)
                    && x.plan()
                        .and_then(|xp| xp.approval)
                        .is_some_and(|xa| xa.uid == a.uid && xa.node == a.node)
            });
        if open {
            push_history(
                status,
                entry(now, phase, by, "still awaiting approval".into()),
            );
            return;
        }
        status.approval = Some(ApprovalStatus {
            request: a.request(),
            requested_at: a.requested_at.to_string(),
            expires_at: a.expires_at.to_string(),
            plan: serde_json::to_value(p).unwrap_or_default(),
            approved_by: None,
            approved_at: None,
            rejected_by: None,
        });
    }
    // a refused repeat (cooldown, the pod already gone) is history, not
    // news: it never hides that this remediation acted, is being
    // verified, succeeded or failed, or waits for approval; a refusal of
    // an approved plan is the news
    let acted_before = status
        .phase
        .is_some_and(|p| !matches!(p, Phase::Pending | Phase::Planned | Phase::Refused));
    if !(phase == Phase::Refused && acted_before && o.approved_by.is_none()) {
        status.phase = Some(phase);
        status.reason = reason;
        status.message = truncate(&o.message, 1000);
    }
    push_history(status, entry(now, phase, by, truncate(&o.message, 200)));
}

/// The phase and reason an outcome gives a record. An action that went
/// through is `Acting` until its verification settles it; a notify-only
/// finding is `Notified` at once (settled, never an action).
pub fn phase_of(o: &Outcome) -> (Phase, String) {
    match o.result {
        OutcomeKind::Acted if o.pull_request.is_some() => (
            Phase::PrOpen,
            match o.pull_request.as_ref().map(|p| p.action.as_str()) {
                Some("created") => "PullRequestOpened".into(),
                Some("updated") => "PullRequestUpdated".into(),
                _ => "PullRequestOpen".into(),
            },
        ),
        OutcomeKind::Acted if !o.remediation.is_some_and(|k| k.is_mutating()) => {
            (Phase::Notified, "Notified".into())
        }
        OutcomeKind::Acted => (Phase::Acting, "Acted".into()),
        OutcomeKind::Observed => (Phase::Observed, "Observed".into()),
        OutcomeKind::Proposed => (Phase::Proposed, "Proposed".into()),
        OutcomeKind::AwaitingApproval => (Phase::AwaitingApproval, "AwaitingApproval".into()),
        OutcomeKind::Deferred if o.deferred.as_deref() == Some(NO_REPOSITORY) => {
            (Phase::NotProposed, NO_REPOSITORY.into())
        }
        OutcomeKind::Deferred => (
            Phase::Planned,
            o.deferred.clone().unwrap_or_else(|| "Deferred".into()),
        ),
        OutcomeKind::Failed => (Phase::Failed, "Failed".into()),
        OutcomeKind::Refused if o.escalated || o.reason == Some(RefusalReason::Escalated) => {
            (Phase::Escalated, "escalated".into())
        }
        _ => (
            Phase::Refused,
            o.reason.map(|r| r.as_str().to_string()).unwrap_or_default(),
        ),
    }
}

/// Whether `outcome` creates its record when there is none. Only what heal8s
/// did, simulated, failed at, put off or escalated does: a refusal only adds
/// to a record that exists (most refusals have none).
pub fn creates_record(outcome: &Outcome) -> bool {
    matches!(
        outcome.result,
        OutcomeKind::Acted
            | OutcomeKind::Observed
            | OutcomeKind::Proposed
            | OutcomeKind::AwaitingApproval
            | OutcomeKind::Failed
            | OutcomeKind::Deferred
    ) || phase_of(outcome).0 == Phase::Escalated
}

/// Whether a record with `status` may be deleted at `now`: it `Succeeded`
/// and finished more than `ttl` ago. Failed, refused and escalated records
/// are kept for people to read.
pub fn expired(status: &RemediationStatus, now: Timestamp, ttl: Duration) -> bool {
    let finished = status
        .finished_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    status.phase == Some(Phase::Succeeded)
        && finished.is_some_and(|f| crate::detect::age(now, f) > ttl)
}

/// Why a resolved signal does not settle a record of `remediation` (its
/// verification does), or `None` when it may.
fn verification_decides(remediation: &str) -> Option<&'static str> {
    match remediation {
        "drain-node" => {
            Some("the node has been Ready for the settle period and heal8s has released its cordon")
        }
        "delete-namespace" | "cleanup-resource" | "delete-node" => {
            Some("the object is gone, not merely Terminating")
        }
        _ => None,
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn entry(at: &str, phase: Phase, by: &str, message: String) -> HistoryEntry {
    HistoryEntry {
        at: at.to_string(),
        phase,
        by: by.to_string(),
        message,
    }
}

/// Append guard events not kept yet (appending the same event twice keeps
/// one), keeping the last [`LEDGER`].
pub fn push_ledger(status: &mut RemediationStatus, events: &[PastEvent]) {
    for e in events {
        if !status.ledger.contains(e) {
            status.ledger.push(e.clone());
        }
    }
    let excess = status.ledger.len().saturating_sub(LEDGER);
    status.ledger.drain(..excess);
}

/// Append `entry`, keeping the last [`HISTORY`] entries.
pub fn push_history(status: &mut RemediationStatus, mut entry: HistoryEntry) {
    // times in a record never go backwards: an outcome decided a moment
    // before its action was recorded as started is stamped no earlier
    let parse = |s: &str| s.parse::<Timestamp>().ok();
    let floor = status
        .history
        .last()
        .and_then(|h| parse(&h.at))
        .into_iter()
        .chain(status.started_at.as_deref().and_then(parse))
        .max();
    if let (Some(floor), Some(at)) = (floor, parse(&entry.at))
        && at < floor
    {
        entry.at = floor.to_string();
    }
    status.history.push(entry);
    let excess = status.history.len().saturating_sub(HISTORY);
    status.history.drain(..excess);
}

/// Set condition `type_`; its transition time changes only when its status does.
fn set_condition(
    status: &mut RemediationStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let message = truncate(message, 300);
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != value {
                c.status = value.to_string();
                c.last_transition_time = now.to_string();
            }
            c.reason = reason.to_string();
            c.message = message;
        }
        None => status.conditions.push(Condition {
            type_: type_.to_string(),
            status: value.to_string(),
            last_transition_time: now.to_string(),
            reason: reason.to_string(),
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlertStatus, RecoveryBy, RemediationKind};

    const ME: &str = "heal8s-0";

    /// A fake clock: `t(s)` is `s` seconds after a fixed instant.
    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn mk_outcome(result: OutcomeKind, at: i64, message: &str) -> Outcome {
        Outcome {
            at: t(at),
            source: crate::signal::SourceKind::Alert,
            name: "KubePodCrashLooping".into(),
            fingerprint: "f1".into(),
            status: AlertStatus::Firing,
            target: Some("Pod shop/api-1".into()),
            route: Some("crashloops".into()),
            remediation: Some(RemediationKind::DeletePod),
            mode: None,
            result,
            reason: None,
            escalated: false,
            message: message.into(),
            pull_request: None,
            deferred: None,
            plan: None,
            ledger: Vec::new(),
            deleted: None,
            cluster: None,
            approved_by: None,
            trace: None,
        }
    }

    fn refused(at: i64, reason: RefusalReason) -> Outcome {
        Outcome {
            reason: Some(reason),
            ..mk_outcome(OutcomeKind::Refused, at, "refused")
        }
    }

    fn action(key: &str, at: i64) -> PastEvent {
        PastEvent {
            at: t(at),
            event: GuardEvent::Action {
                key: key.into(),
                namespace: Some("shop".into()),
                remediation: RemediationKind::DeletePod,
                class: None,
            },
        }
    }

    fn verified(result: VerifyResult, message: &str) -> Verification {
        Verification {
            result,
            message: message.into(),
        }
    }

    fn begin(s: &mut RemediationStatus, at: i64, event: Option<&PastEvent>) -> bool {
        apply(
            s,
            Event::Begun {
                what: "delete-pod on Pod shop/api-1",
                action: event,
            },
            t(at),
            ME,
        )
    }

    fn outcome(s: &mut RemediationStatus, o: &Outcome) -> bool {
        apply(
            s,
            Event::Outcome {
                outcome: o,
                generation: 1,
            },
            o.at,
            ME,
        )
    }

    fn verify(s: &mut RemediationStatus, at: i64, v: &Verification) -> bool {
        apply(
            s,
            Event::Verified {
                verification: v,
                ledger: &[],
                generation: 1,
            },
            t(at),
            ME,
        )
    }

    fn resolve(s: &mut RemediationStatus, at: i64, remediation: &str, target: TargetKind) -> bool {
        apply(
            s,
            Event::Resolved {
                alertname: "KubeDeploymentDown",
                fingerprint: "f1",
                remediation,
                target: &target,
            },
            t(at),
            ME,
        )
    }

    fn condition<'a>(s: &'a RemediationStatus, type_: &str) -> Option<&'a Condition> {
        s.conditions.iter().find(|c| c.type_ == type_)
    }

    fn phases(s: &RemediationStatus) -> Vec<Phase> {
        s.history.iter().map(|h| h.phase).collect()
    }

    #[test]
    fn the_record_names_the_trace_of_its_latest_signal() {
        let first =
            crate::TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap();
        let later =
            crate::TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
                .unwrap();
        let mut s = RemediationStatus::default();
        outcome(&mut s, &mk_outcome(OutcomeKind::Acted, 0, "deleted"));
        assert_eq!(s.trace_id, None, "an outcome without a trace names none");
        let traced = |at, t| Outcome {
            trace: Some(t),
            ..mk_outcome(OutcomeKind::Acted, at, "deleted")
        };
        outcome(&mut s, &traced(1, first));
        assert_eq!(
            s.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        outcome(&mut s, &traced(2, later));
        assert_eq!(
            s.trace_id.as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        // an outcome without a trace (an older replica's) leaves the last one
        outcome(&mut s, &mk_outcome(OutcomeKind::Refused, 3, "refused"));
        assert_eq!(
            s.trace_id.as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["traceId"], "0af7651916cd43dd8448eb211c80319c");
    }

    #[test]
    fn begun_then_acted_then_verified_recovered_succeeds() {
        let mut s = RemediationStatus::default();
        assert!(begin(&mut s, 0, None));
        assert_eq!(s.phase, Some(Phase::Acting));
        assert_eq!(s.reason, "Started");
        assert_eq!(s.message, "started: delete-pod on Pod shop/api-1");
        assert_eq!(s.started_at, Some(t(0).to_string()));
        assert_eq!(s.history.len(), 1);
        assert_eq!(s.history[0].message, STARTED);
        assert_eq!(s.history[0].by, ME);

        assert!(outcome(
            &mut s,
            &mk_outcome(OutcomeKind::Acted, 1, "deleted pod shop/api-1")
        ));
        assert_eq!(s.phase, Some(Phase::Acting));
        assert_eq!(s.reason, "Acted");
        assert_eq!(s.attempts, 1);
        assert_eq!(s.started_at, Some(t(0).to_string()), "the start stands");
        assert_eq!(s.finished_at, None);
        assert_eq!(s.observed_generation, Some(1));
        // the outcome replaced the "started" entry
        assert_eq!(s.history.len(), 1);
        assert_eq!(s.history[0].message, "deleted pod shop/api-1");
        assert_eq!(
            condition(&s, "Acted").map(|c| c.status.as_str()),
            Some("True")
        );
        let recovered = condition(&s, "Recovered").unwrap();
        assert_eq!(
            (recovered.status.as_str(), recovered.reason.as_str()),
            ("Unknown", "Verifying")
        );

        assert!(verify(
            &mut s,
            60,
            &verified(
                VerifyResult::Recovered,
                "Deployment shop/api has 3/3 ready replicas"
            )
        ));
        assert_eq!(s.phase, Some(Phase::Succeeded));
        assert_eq!(s.reason, "Recovered");
        assert_eq!(s.finished_at, Some(t(60).to_string()));
        let recovered = condition(&s, "Recovered").unwrap();
        assert_eq!(recovered.status, "True");
        assert_eq!(recovered.last_transition_time, t(60).to_string());
        assert_eq!(phases(&s), [Phase::Acting, Phase::Succeeded]);
    }

    #[test]
    fn begun_then_failed_is_failed_and_finished() {
        let mut s = RemediationStatus::default();
        begin(&mut s, 0, None);
        outcome(
            &mut s,
            &mk_outcome(OutcomeKind::Failed, 2, "Kubernetes API error: forbidden"),
        );
        assert_eq!(s.phase, Some(Phase::Failed));
        assert_eq!(s.reason, "Failed");
        assert_eq!(s.attempts, 1);
        assert_eq!(s.finished_at, Some(t(2).to_string()));
        let acted = condition(&s, "Acted").unwrap();
        assert_eq!(
            (acted.status.as_str(), acted.reason.as_str()),
            ("False", "ActionFailed")
        );
        assert_eq!(
            phases(&s),
            [Phase::Failed],
            "the started entry was replaced"
        );
        // a failed record is not verified into success later
        assert!(!verify(
            &mut s,
            60,
            &verified(VerifyResult::Recovered, "ok")
        ));
        assert_eq!(s.phase, Some(Phase::Failed));
    }

    #[test]
    fn a_refused_repeat_never_hides_that_the_remediation_acted() {
        let mut s = RemediationStatus::default();
        outcome(&mut s, &mk_outcome(OutcomeKind::Acted, 0, "deleted pod"));
        outcome(&mut s, &refused(30, RefusalReason::Cooldown));
        assert_eq!(s.phase, Some(Phase::Acting));
        assert_eq!(s.reason, "Acted");
        assert_eq!(s.message, "deleted pod");
        assert_eq!(s.attempts, 1, "a refusal is no attempt");
        // ... but it is history
        assert_eq!(phases(&s), [Phase::Acting, Phase::Refused]);
        // the same after the verification settled it
        verify(
            &mut s,
            60,
            &verified(VerifyResult::NotRecovered, "still crashing"),
        );
        outcome(&mut s, &refused(90, RefusalReason::Cooldown));
        assert_eq!(s.phase, Some(Phase::Failed));
        assert_eq!(s.reason, "NotRecovered");
    }

    #[test]
    fn a_refusal_on_a_record_that_never_acted_is_its_phase() {
        let mut s = RemediationStatus::default();
        outcome(&mut s, &mk_outcome(OutcomeKind::Deferred, 0, "waiting"));
        assert_eq!(s.phase, Some(Phase::Planned));
        outcome(&mut s, &refused(10, RefusalReason::Cooldown));
        assert_eq!(s.phase, Some(Phase::Refused));
        assert_eq!(s.reason, RefusalReason::Cooldown.as_str());
        assert_eq!(s.attempts, 0);
    }

    fn awaiting(at: i64, uid: &str) -> Outcome {
        let policy = crate::policy::Policy::from_yaml(
            "routes: [{name: crashloops, remediation: delete-pod, mode: approve}]",
        )
        .unwrap();
        let signal = crate::testutil::signal(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", "api-1"),
        ]);
        let mut plan = crate::plan::Plan::build(&signal, &policy.routes[0]).unwrap();
        let live = serde_json::json!({"metadata": {"uid": uid}, "spec": {"nodeName": "n1"}});
        plan.approval = Some(crate::guard::approval::ask(
            &plan,
            Some(&live),
            &policy.guard.approval,
            t(at),
        ));
        Outcome {
            plan: Some(plan),
            ..mk_outcome(OutcomeKind::AwaitingApproval, at, "awaiting approval")
        }
    }

    #[test]
    fn a_request_for_approval_keeps_the_plan_and_one_open_request_per_record() {
        let mut s = RemediationStatus::default();
        outcome(&mut s, &awaiting(0, "u1"));
        assert_eq!(s.phase, Some(Phase::AwaitingApproval));
        let a = s.approval.clone().unwrap();
        assert_eq!(a.request, t(0).to_string());
        let plan = a.plan().unwrap();
        assert_eq!(plan.approval.as_ref().unwrap().uid.as_deref(), Some("u1"));
        assert_eq!(plan.route, "crashloops");
        // a repeat while the request is open keeps it
        outcome(&mut s, &awaiting(100, "u1"));
        assert_eq!(s.approval.as_ref().unwrap().request, a.request);
        // a repeat for another object (the pod was replaced) is a new request
        outcome(&mut s, &awaiting(200, "u2"));
        assert_eq!(s.approval.as_ref().unwrap().request, t(200).to_string());
        // and so is one after the request expired (1h)
        outcome(&mut s, &awaiting(200 + 3601, "u2"));
        assert_eq!(
            s.approval.as_ref().unwrap().request,
            t(200 + 3601).to_string()
        );
    }

    #[test]
    fn a_decision_is_taken_once_and_only_for_the_open_request() {
        let now = t(50);
        let mut s = RemediationStatus::default();
        outcome(&mut s, &awaiting(0, "u1"));
        let request = s.approval.as_ref().unwrap().request.clone();
        let decide = |s: &mut RemediationStatus, request: &str, approved: bool| {
            apply(
                s,
                Event::Decided {
                    request,
                    by: "alice",
                    approved,
                },
                now,
                "heal8s-0",
            )
        };
        assert!(
            !decide(&mut s, "2020-01-01T00:00:00Z", true),
            "another request"
        );
        assert_eq!(s.phase, Some(Phase::AwaitingApproval));
        assert!(decide(&mut s, &request, true));
        assert_eq!(s.phase, Some(Phase::Approved));
        assert_eq!(
            s.approval.as_ref().unwrap().approved_by.as_deref(),
            Some("alice")
        );
        assert!(s.message.contains("approved by alice"), "{}", s.message);
        // taken once: a second decision changes nothing
        assert!(!decide(&mut s, &request, false));
        assert_eq!(s.phase, Some(Phase::Approved));
        // a refusal of the approved plan is the news
        let mut r = refused(60, RefusalReason::TargetChanged);
        r.approved_by = Some("alice".into());
        outcome(&mut s, &r);
        assert_eq!(s.phase, Some(Phase::Refused));
        assert_eq!(s.reason, "target_changed");
        // a rejection ends it
        let mut s = RemediationStatus::default();
        outcome(&mut s, &awaiting(0, "u1"));
        assert!(decide(&mut s, &request, false));
        assert_eq!(s.phase, Some(Phase::Rejected));
        assert_eq!(
            s.approval.as_ref().unwrap().rejected_by.as_deref(),
            Some("alice")
        );
        assert!(s.finished_at.is_some());
    }

    #[test]
    fn what_was_observed_or_proposed_stays_the_news_over_a_refused_repeat() {
        for (kind, phase) in [
            (OutcomeKind::Observed, Phase::Observed),
            (OutcomeKind::Proposed, Phase::Proposed),
        ] {
            let mut s = RemediationStatus::default();
            outcome(&mut s, &mk_outcome(kind, 0, "would delete"));
            assert_eq!(s.phase, Some(phase));
            outcome(&mut s, &refused(10, RefusalReason::Cooldown));
            assert_eq!(s.phase, Some(phase), "{kind:?}");
            assert_eq!(s.history.len(), 2);
            assert_eq!(s.attempts, 0, "nothing was done");
        }
    }

    #[test]
    fn the_first_settlement_stands() {
        // a target that keeps its identity: its alert resolving settles the record
        let mut s = RemediationStatus::default();
        outcome(&mut s, &mk_outcome(OutcomeKind::Acted, 0, "scaled"));
        assert!(resolve(&mut s, 20, "delete-pod", TargetKind::Deployment));
        assert_eq!(s.phase, Some(Phase::Succeeded));
        assert_eq!(s.reason, "AlertResolved");
        assert_eq!(s.message, "alert KubeDeploymentDown (f1) resolved");
        assert_eq!(s.finished_at, Some(t(20).to_string()));
        let settled = s.clone();
        // a verification that comes later changes nothing (no write)
        assert!(!verify(
            &mut s,
            60,
            &verified(VerifyResult::NotRecovered, "0/3 ready")
        ));
        assert_eq!(s, settled);
        // nor does the alert resolving again
        assert!(!resolve(&mut s, 70, "delete-pod", TargetKind::Deployment));
        assert_eq!(s, settled);
    }

    #[test]
    fn a_pods_resolved_alert_waits_for_the_workloads_verification() {
        let mut s = RemediationStatus::default();
        outcome(&mut s, &mk_outcome(OutcomeKind::Acted, 0, "deleted pod"));
        assert!(resolve(&mut s, 5, "delete-pod", TargetKind::Pod));
        assert_eq!(s.phase, Some(Phase::Acting));
        assert!(
            s.history[1]
                .message
                .contains("the pod is gone, which is no evidence"),
            "{:?}",
            s.history
        );
        verify(
            &mut s,
            60,
            &verified(VerifyResult::NotRecovered, "0/1 ready"),
        );
        assert_eq!(s.phase, Some(Phase::Failed));
    }

    #[test]
    fn deletions_and_drains_settle_on_their_verification_not_their_alert() {
        for remediation in [
            "drain-node",
            "delete-node",
            "delete-namespace",
            "cleanup-resource",
        ] {
            let mut s = RemediationStatus::default();
            outcome(&mut s, &mk_outcome(OutcomeKind::Acted, 0, "acted"));
            assert!(resolve(&mut s, 5, remediation, TargetKind::Node));
            assert_eq!(s.phase, Some(Phase::Acting), "{remediation}");
            assert!(
                s.history[1].message.contains("settles on its verification"),
                "{remediation}: {:?}",
                s.history
            );
        }
    }

    #[test]
    fn a_drained_node_that_stays_down_is_drained_not_failed() {
        let mut s = RemediationStatus::default();
        outcome(&mut s, &mk_outcome(OutcomeKind::Acted, 0, "drained"));
        verify(
            &mut s,
            60,
            &verified(VerifyResult::StillDown, "node is NotReady"),
        );
        assert_eq!(s.phase, Some(Phase::Drained));
        assert_eq!(s.reason, "NodeStillDown");
        verify(&mut s, 60, &verified(VerifyResult::Unverified, "?"));
        assert_eq!(s.phase, Some(Phase::Drained));
    }

    #[test]
    fn an_escalated_record_is_cleared_by_a_recovery_of_its_key() {
        let key = "Deployment/shop/api";
        let escalation = PastEvent {
            at: t(0),
            event: GuardEvent::Escalated {
                key: key.into(),
                remediation: RemediationKind::DeletePod,
            },
        };
        let o = Outcome {
            escalated: true,
            ledger: vec![escalation],
            ..refused(0, RefusalReason::Escalated)
        };
        assert!(creates_record(&o));
        let mut s = RemediationStatus::default();
        outcome(&mut s, &o);
        assert_eq!(s.phase, Some(Phase::Escalated));
        assert_eq!(s.finished_at, Some(t(0).to_string()));

        let recovery = |k: &str| PastEvent {
            at: t(100),
            event: GuardEvent::Recovered {
                key: k.into(),
                by: RecoveryBy::Human,
            },
        };
        // another key's recovery is not this record's business
        let other = [recovery("Deployment/shop/web")];
        assert!(!apply(
            &mut s,
            Event::Remembered {
                events: &other,
                cleared: true
            },
            t(100),
            ME
        ));
        assert_eq!(s.phase, Some(Phase::Escalated));

        let mine = [recovery(key)];
        assert!(apply(
            &mut s,
            Event::Remembered {
                events: &mine,
                cleared: true
            },
            t(100),
            ME
        ));
        assert_eq!(s.phase, Some(Phase::Cleared));
        assert_eq!(s.reason, "EscalationCleared");
        assert_eq!(
            s.message,
            "escalation ended (human); heal8s may act on it again"
        );
        assert_eq!(s.finished_at, Some(t(100).to_string()));
        assert_eq!(s.ledger.len(), 2);
    }

    #[test]
    fn a_recovery_without_a_clear_is_kept_but_changes_no_phase() {
        let mut s = RemediationStatus::default();
        let a = action("Deployment/shop/api", 0);
        outcome(
            &mut s,
            &Outcome {
                ledger: vec![a],
                ..mk_outcome(OutcomeKind::Acted, 0, "deleted")
            },
        );
        let recovered = [PastEvent {
            at: t(50),
            event: GuardEvent::Recovered {
                key: "Deployment/shop/api".into(),
                by: RecoveryBy::Verified,
            },
        }];
        assert!(apply(
            &mut s,
            Event::Remembered {
                events: &recovered,
                cleared: false
            },
            t(50),
            ME
        ));
        assert_eq!(s.phase, Some(Phase::Acting));
        assert_eq!(s.ledger.len(), 2);
    }

    #[test]
    fn history_is_bounded_and_keeps_the_newest() {
        let mut s = RemediationStatus::default();
        for i in 0..25 {
            apply(
                &mut s,
                Event::Noted {
                    message: &format!("note {i}"),
                },
                t(i),
                ME,
            );
        }
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(s.history[0].message, "note 15");
        assert_eq!(s.history[HISTORY - 1].message, "note 24");
        // a note on a record with no phase yet reads as Failed
        assert_eq!(s.history[0].phase, Phase::Failed);
    }

    #[test]
    fn the_ledger_keeps_each_event_once_and_is_bounded() {
        let mut s = RemediationStatus::default();
        let a = action("Pod/shop/api-1", 0);
        begin(&mut s, 0, Some(&a));
        // the outcome carries the same action again
        outcome(
            &mut s,
            &Outcome {
                ledger: vec![a.clone()],
                ..mk_outcome(OutcomeKind::Acted, 1, "deleted")
            },
        );
        assert_eq!(s.ledger, vec![a]);
        let many: Vec<PastEvent> = (0..100)
            .map(|i| action(&format!("Pod/shop/p{i}"), i))
            .collect();
        push_ledger(&mut s, &many);
        assert_eq!(s.ledger.len(), LEDGER);
        assert_eq!(s.ledger.last(), many.last());
    }

    #[test]
    fn history_times_never_go_backwards() {
        let mut s = RemediationStatus {
            started_at: Some("2026-12-07T10:00:00.043Z".into()),
            ..RemediationStatus::default()
        };
        let at = |at: &str| HistoryEntry {
            at: at.into(),
            phase: Phase::Acting,
            by: String::new(),
            message: String::new(),
        };
        push_history(&mut s, at("2026-12-07T10:00:00Z"));
        push_history(&mut s, at("2026-12-07T10:00:05Z"));
        push_history(&mut s, at("2026-12-07T10:00:04Z"));
        let at: Vec<Timestamp> = s.history.iter().map(|h| h.at.parse().unwrap()).collect();
        let started: Timestamp = "2026-12-07T10:00:00.043Z".parse().unwrap();
        assert!(at[0] >= started, "{at:?}");
        assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    }

    #[test]
    fn an_outcome_decided_before_its_start_was_recorded_is_stamped_no_earlier() {
        let mut s = RemediationStatus::default();
        begin(&mut s, 10, None);
        outcome(&mut s, &mk_outcome(OutcomeKind::Acted, 9, "deleted"));
        assert_eq!(s.history[0].at, t(10).to_string());
    }

    #[test]
    fn an_action_left_acting_by_another_process_is_interrupted() {
        let mut s = RemediationStatus::default();
        apply(
            &mut s,
            Event::Begun {
                what: "drain",
                action: None,
            },
            t(0),
            "heal8s-old",
        );
        // the replica's own action in flight is not interrupted
        assert!(!apply(&mut s, Event::Interrupted, t(5), "heal8s-old"));
        assert!(apply(&mut s, Event::Interrupted, t(5), ME));
        assert_eq!(s.phase, Some(Phase::Failed));
        assert_eq!(s.reason, "Interrupted");
        assert!(
            s.message.starts_with("heal8s stopped while acting"),
            "{}",
            s.message
        );
        assert_eq!(s.finished_at, Some(t(5).to_string()));
        assert_eq!(
            s.history.last().map(|h| h.message.as_str()),
            Some("interrupted")
        );
        // once settled, never again
        assert!(!apply(&mut s, Event::Interrupted, t(9), "heal8s-2"));

        // acted and being verified: recovery was not verified
        let mut s = RemediationStatus::default();
        apply(
            &mut s,
            Event::Outcome {
                outcome: &mk_outcome(OutcomeKind::Acted, 0, "deleted"),
                generation: 1,
            },
            t(0),
            "heal8s-old",
        );
        assert!(apply(&mut s, Event::Interrupted, t(5), ME));
        assert_eq!(s.message, "heal8s stopped before recovery was verified");
    }

    #[test]
    fn a_pull_request_settles_only_an_open_record() {
        let pr = crate::outcome::PullRequestRef {
            repository: "acme/manifests".into(),
            number: 7,
            url: "https://github.com/acme/manifests/pull/7".into(),
            branch: "heal8s/bump".into(),
            head_sha: "abc".into(),
            action: "created".into(),
        };
        let opened = Outcome {
            pull_request: Some(pr),
            remediation: Some(RemediationKind::BumpMemory),
            ..mk_outcome(OutcomeKind::Acted, 0, "opened #7")
        };
        let mut s = RemediationStatus::default();
        outcome(&mut s, &opened);
        assert_eq!(s.phase, Some(Phase::PrOpen));
        assert_eq!(s.reason, "PullRequestOpened");
        assert_eq!(s.pull_request.as_ref().map(|p| p.number), Some(7));
        let settle = |s: &mut RemediationStatus, phase: Phase, reason: &str| {
            apply(
                s,
                Event::PullRequestSettled {
                    phase,
                    reason,
                    message: "merged by a maintainer",
                },
                t(100),
                ME,
            )
        };
        let mut merged = s.clone();
        assert!(settle(&mut merged, Phase::Merged, "Merged"));
        assert_eq!(merged.phase, Some(Phase::Merged));
        assert_eq!(
            merged.finished_at, None,
            "merged is not the end: it is applied next"
        );
        assert!(!settle(&mut merged, Phase::Refused, "Declined"));
        assert!(settle(&mut s, Phase::Refused, "Declined"));
        assert_eq!(s.finished_at, Some(t(100).to_string()));
    }

    #[test]
    fn the_deleted_object_is_kept_stamped_and_replaced_only_by_a_later_one() {
        let pod = |image: &str| {
            crate::deleted::keep(
                &serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "api-1", "namespace": "shop", "uid": "u"},
                    "spec": {"containers": [{"name": "api", "image": image}]}}),
                crate::deleted::MAX_BYTES,
            )
        };
        let mut s = RemediationStatus::default();
        outcome(
            &mut s,
            &Outcome {
                deleted: Some(pod("app:1")),
                ..mk_outcome(OutcomeKind::Acted, 5, "deleted pod shop/api-1")
            },
        );
        let kept = s.deleted.clone().unwrap();
        assert_eq!(kept.at, t(5).to_string());
        assert_eq!(kept.manifest["spec"]["containers"][0]["image"], "app:1");
        assert!(kept.manifest["metadata"].get("uid").is_none());
        // a refused repeat, a verification: the deleted object stays
        outcome(&mut s, &refused(10, RefusalReason::Cooldown));
        apply(
            &mut s,
            Event::Verified {
                verification: &verified(VerifyResult::Recovered, "ok"),
                ledger: &[],
                generation: 1,
            },
            t(20),
            ME,
        );
        assert_eq!(s.deleted.as_ref(), Some(&kept));
        // a later deletion replaces it
        outcome(
            &mut s,
            &Outcome {
                deleted: Some(pod("app:2")),
                ..mk_outcome(OutcomeKind::Acted, 30, "deleted pod shop/api-1")
            },
        );
        let later = s.deleted.as_ref().unwrap();
        assert_eq!(later.manifest["spec"]["containers"][0]["image"], "app:2");
        assert_eq!(later.at, t(30).to_string());
        // and the status reads back with it
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["deleted"]["manifest"]["kind"], "Pod");
        let back: RemediationStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn outcomes_map_to_phases() {
        let notify = Outcome {
            remediation: Some(RemediationKind::NotifyOnly),
            ..mk_outcome(OutcomeKind::Acted, 0, "recorded")
        };
        assert_eq!(phase_of(&notify), (Phase::Notified, "Notified".into()));
        let not_proposed = Outcome {
            deferred: Some(NO_REPOSITORY.into()),
            ..mk_outcome(OutcomeKind::Deferred, 0, "")
        };
        assert_eq!(phase_of(&not_proposed).0, Phase::NotProposed);
        let capped = Outcome {
            deferred: Some("RateLimited".into()),
            ..mk_outcome(OutcomeKind::Deferred, 0, "")
        };
        assert_eq!(phase_of(&capped), (Phase::Planned, "RateLimited".into()));
        assert!(creates_record(&capped));
        assert!(!creates_record(&refused(0, RefusalReason::Cooldown)));
        assert!(!creates_record(&mk_outcome(OutcomeKind::Deduped, 0, "")));

        let mut s = RemediationStatus::default();
        outcome(&mut s, &notify);
        assert_eq!(
            s.finished_at,
            Some(t(0).to_string()),
            "a notification is settled at once"
        );
        assert_eq!(s.attempts, 1);
    }

    #[test]
    fn a_conditions_transition_time_moves_only_when_its_status_does() {
        let mut s = RemediationStatus::default();
        outcome(&mut s, &mk_outcome(OutcomeKind::Acted, 0, "deleted"));
        outcome(&mut s, &mk_outcome(OutcomeKind::Acted, 30, "deleted again"));
        let acted = condition(&s, "Acted").unwrap();
        assert_eq!(acted.last_transition_time, t(0).to_string());
        assert_eq!(acted.message, "deleted again");
        outcome(&mut s, &mk_outcome(OutcomeKind::Failed, 40, "forbidden"));
        let acted = condition(&s, "Acted").unwrap();
        assert_eq!(acted.last_transition_time, t(40).to_string());
    }

    #[test]
    fn only_old_successes_expire() {
        let hour = Duration::from_secs(3600);
        let done = |phase: Phase, at: i64| RemediationStatus {
            phase: Some(phase),
            finished_at: Some(t(at).to_string()),
            ..RemediationStatus::default()
        };
        assert!(expired(&done(Phase::Succeeded, 0), t(3601), hour));
        assert!(!expired(&done(Phase::Succeeded, 0), t(3600), hour));
        assert!(!expired(&done(Phase::Failed, 0), t(86_400), hour));
        assert!(!expired(&done(Phase::Escalated, 0), t(86_400), hour));
        assert!(!expired(
            &RemediationStatus {
                phase: Some(Phase::Succeeded),
                ..RemediationStatus::default()
            },
            t(86_400),
            hour
        ));
    }

    #[test]
    fn the_status_reads_and_writes_as_the_crd_spells_it() {
        let mut s = RemediationStatus::default();
        begin(&mut s, 0, Some(&action("Pod/shop/api-1", 0)));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["phase"], "Acting");
        assert_eq!(v["startedAt"], t(0).to_string());
        assert_eq!(v["history"][0]["by"], ME);
        assert_eq!(v["attempts"], 0);
        assert!(v.get("refusalsOmitted").is_none());
        assert_eq!(serde_json::from_value::<RemediationStatus>(v).unwrap(), s);
        let pr_open: Phase = serde_json::from_value(serde_json::json!("PROpen")).unwrap();
        assert_eq!(pr_open, Phase::PrOpen);
    }
}
