//! What came of a signal: the `Outcome` each one ends in, what an
//! `Executor` did, and what a `Verifier` saw afterwards.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alertmanager::AlertStatus;
use crate::deleted::Deleted;
use crate::facts::ActError;
use crate::guard::RefusalReason;
use crate::ledger::PastEvent;
use crate::plan::Plan;
use crate::remediation::{Mode, RemediationKind};
use crate::signal::SourceKind;

/// How a signal (or one of its plans) ended. `as_str` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The executor changed something.
    Acted,
    /// Allowed, but only observed (mode `observe`, `guard.dryRun`, or no
    /// live executor): what would have been done is recorded, nothing changed.
    #[serde(alias = "dry_run")]
    Observed,
    /// A janitor action in mode `propose`: simulated and proposed to people
    /// (a notification, a record in phase `Proposed`); nothing changed.
    Proposed,
    /// Mode `approve`: the plan waits in its record for a person's approval
    /// (`heal8s approve`); nothing changed.
    AwaitingApproval,
    /// Refused, with a reason.
    Refused,
    /// The same occurrence was delivered before.
    Deduped,
    /// A resolved signal: recorded, never acted on.
    Resolved,
    /// The executor or the fact lookup failed.
    Failed,
    /// Allowed, but put off by the executor (a pull request cap, or a
    /// declined pull request); nothing was changed.
    Deferred,
}

impl OutcomeKind {
    /// Every result, in declaration order: the metrics start each label at 0.
    /// A new result goes here too.
    pub const ALL: [OutcomeKind; 9] = [
        OutcomeKind::Acted,
        OutcomeKind::Observed,
        OutcomeKind::Proposed,
        OutcomeKind::AwaitingApproval,
        OutcomeKind::Refused,
        OutcomeKind::Deduped,
        OutcomeKind::Resolved,
        OutcomeKind::Failed,
        OutcomeKind::Deferred,
    ];

    /// snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Acted => "acted",
            OutcomeKind::Observed => "observed",
            OutcomeKind::Proposed => "proposed",
            OutcomeKind::AwaitingApproval => "awaiting_approval",
            OutcomeKind::Refused => "refused",
            OutcomeKind::Deduped => "deduped",
            OutcomeKind::Resolved => "resolved",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Deferred => "deferred",
        }
    }
}

/// The record of what happened to one signal under one route (or before routing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub at: Timestamp,
    pub source: SourceKind,
    pub name: String,
    pub fingerprint: String,
    pub status: AlertStatus,
    /// The target as text, e.g. `Pod shop/api-1 container api`.
    pub target: Option<String>,
    pub route: Option<String>,
    pub remediation: Option<RemediationKind>,
    pub mode: Option<Mode>,
    pub result: OutcomeKind,
    pub reason: Option<RefusalReason>,
    /// True when the guard escalated the workload with this refusal for the first time.
    pub escalated: bool,
    pub message: String,
    /// The pull request a declarative fix opened or updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestRef>,
    /// Why the executor put it off (see [`OutcomeKind::Deferred`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// The plan, when one was made (for `heal8s plan` and `/outcomes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// What this outcome changed in the guard's memory (an action counted, an
    /// escalation, a recovery): the durable record keeps exactly these, and a
    /// restarted replica replays them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<PastEvent>,
    /// The object the action deleted (or removed finalizers from), as the
    /// record keeps it (see [`crate::deleted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Deleted>,
    /// The cluster it is about, when heal8s knows its name (a `clusters`
    /// member, or `guard.clusterName`): the service fills it in where it
    /// records outcomes (the engine serves one cluster and does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Who approved the plan this outcome carried out (mode `approve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The trace of the signal this outcome is about (see [`crate::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceContext>,
}

impl Outcome {
    /// An outcome about `signal` at `at`, before any route: `result`, saying `message`.
    pub fn about(
        signal: &crate::signal::Signal,
        result: OutcomeKind,
        message: String,
        at: Timestamp,
    ) -> Outcome {
        Outcome {
            at,
            source: signal.source.kind(),
            name: signal.name().to_string(),
            fingerprint: signal.fingerprint.clone(),
            status: signal.status,
            target: signal.target.as_ref().map(ToString::to_string),
            route: None,
            remediation: None,
            mode: None,
            result,
            reason: None,
            escalated: false,
            message,
            pull_request: None,
            deferred: None,
            plan: None,
            ledger: Vec::new(),
            deleted: None,
            cluster: None,
            approved_by: None,
            trace: signal.trace,
        }
    }

    /// The trace id (32 hex digits) of the signal this outcome is about.
    pub fn trace_id(&self) -> Option<String> {
        self.trace.map(|t| t.trace_id_hex())
    }
}

/// What an executor did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionReport {
    /// True when nothing was changed (dry-run, or no live executor for this mode).
    pub simulated: bool,
    /// One sentence a human can read.
    pub message: String,
    /// The pull request a declarative fix opened or updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestRef>,
    /// Nothing was done for now, for this reason (`RateLimited`: a cap on new
    /// pull requests; `Declined`: a pull request for it was closed unmerged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// The object deleted (or whose finalizers were removed), read right
    /// before; never set by a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Deleted>,
}

/// A pull request heal8s opened or updated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestRef {
    /// `owner/name`.
    pub repository: String,
    pub number: u64,
    pub url: String,
    pub branch: String,
    pub head_sha: String,
    /// `created`, `updated` or `unchanged`.
    pub action: String,
}

/// Carries a plan out. Implementations must be idempotent: the same plan twice does no harm.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Act on `plan`; with `dry_run` change nothing and say what would happen.
    async fn execute(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, ActError>;
}

/// What watching a target after an action showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum VerifyResult {
    /// Healthy, and stayed healthy for the stability window.
    Recovered,
    /// Not healthy (or not for long enough) within the budget.
    NotRecovered,
    /// Nothing heal8s can read says whether it recovered (an owner of an
    /// unknown kind, a bare pod): neither success nor failure is claimed.
    Unverified,
    /// A drain that did its job on a node that stayed down: the workloads
    /// moved away, the node did not come back (a candidate for delete-node).
    StillDown,
}

/// Whether a target recovered after an action, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub result: VerifyResult,
    pub message: String,
}

impl Verification {
    /// Whether the target recovered.
    pub fn recovered(&self) -> bool {
        self.result == VerifyResult::Recovered
    }
}

/// Watches a target after an action until it recovers or the budget runs out.
#[async_trait]
pub trait Verifier: Send + Sync {
    /// Wait (within the verifier's budget) for `plan`'s target to recover.
    async fn verify(&self, plan: &Plan) -> Verification;
}
