//! The seams between decisions and IO: what the live cluster says about a target
//! (`FactSource`) and who carries a plan out (`Executor`).
//!
//! Owns: the traits and the plain data crossing them. Implementations live at the
//! edges (receiver-k8s, gitops, the receiver's offline executor).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::plan::{Plan, WorkloadRef};

/// Labels and annotations of one live object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObjectMeta {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Whether the condition that triggered a plan still holds on the live object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "why", rename_all = "camelCase")]
pub enum LiveState {
    /// Not checked (no cluster).
    #[default]
    Unknown,
    /// Still broken: act.
    Holds(String),
    /// The object recovered: a stale, repeated or forged signal. Do nothing.
    Cleared(String),
    /// The object is gone, or was replaced by another with the same name (UID differs).
    Gone(String),
}

/// Cluster-wide facts for node remediations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterFacts {
    pub nodes_total: u32,
    /// Nodes whose Ready condition is not True, or that heal8s holds
    /// (cordoned, not yet back), each counted once.
    pub nodes_unhealthy: u32,
    /// Nodes heal8s holds right now (its mark on, still unschedulable): in
    /// flight until Ready again and uncordoned, or deleted.
    pub nodes_in_remediation: Vec<String>,
}

/// What the live cluster says about a plan's target. Every field is optional:
/// offline (no cluster), nothing is known and the guard checks what it can.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// The target object itself, when it was read.
    pub object: Option<ObjectMeta>,
    /// The target's namespace, when it was read.
    pub namespace: Option<ObjectMeta>,
    /// The workload owning the target, when resolved.
    pub owner: Option<WorkloadRef>,
    /// Every object up the target's chain of controllers, nearest first
    /// (`Kind namespace/name` and its metadata): a ReplicaSet, then its
    /// Deployment. The opt-out holds on each of them.
    pub owners: Vec<(String, ObjectMeta)>,
    /// Whether the triggering condition still holds.
    pub state: LiveState,
    /// Node counts, for node remediations.
    pub cluster: Option<ClusterFacts>,
    /// How discovery resolved the target's type (custom resources).
    pub resource: Option<ServedType>,
}

/// A resource type as the API server serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedType {
    /// The plural resource name, e.g. `datavolumes`.
    pub plural: String,
    /// False for cluster-scoped types: their objects are in no namespace,
    /// whatever a signal says.
    pub namespaced: bool,
}

impl Facts {
    /// Nothing known.
    pub fn unknown() -> Facts {
        Facts::default()
    }
}

/// A failure to learn facts or to act, with a bounded category for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ActError {
    /// A bounded label such as `kube_api`, `not_found`, `timeout`, `unsupported`.
    pub category: &'static str,
    pub message: String,
}

/// Reads what the live cluster says about a plan's target.
#[async_trait]
pub trait FactSource: Send + Sync {
    /// Facts about `plan`'s target (and its namespace and owner).
    async fn facts(&self, plan: &Plan) -> Result<Facts, ActError>;

    /// The node counts alone, to see whether a node breaker still holds;
    /// `None` when unknown (offline).
    async fn cluster(&self) -> Option<ClusterFacts> {
        None
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
}

/// A pull request heal8s opened or updated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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

/// Writes the durable record of outcomes (the Remediation custom resource in a
/// cluster). Failing to write is logged by the implementation, never fatal.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Record `outcome`.
    async fn write(&self, outcome: &crate::pipeline::Outcome);

    /// This replica (again) leads: whatever it knew of the records may be
    /// out of date (another replica wrote in between).
    async fn resume(&self) {}

    /// Record that `plan` is about to be carried out for real, before it is,
    /// with the action `event` the guard counted: a crash in the middle then
    /// leaves a trace the next process honours. (The outcome written after
    /// carries the same event again; keeping it is idempotent.)
    async fn begin(&self, _plan: &Plan, _event: Option<&crate::guard::PastEvent>) {}

    /// Record whether the target of an executed `plan` recovered; `events`
    /// are what the guard applied (the action settled, and its recovery if
    /// it did).
    async fn verified(
        &self,
        _plan: &Plan,
        _verification: &Verification,
        _events: &[crate::guard::PastEvent],
    ) {
    }

    /// The alert with `fingerprint` resolved: records of actions it triggered
    /// on targets that keep their identity, still being verified, count as
    /// recovered. (A pod's alert resolves because the pod was deleted: that is
    /// no evidence; its workload's verification settles the record.)
    async fn resolved(&self, _fingerprint: &str) {}

    /// Keep guard events that concern no single plan (a recovery, a cleared
    /// escalation) with the records of the key they are about; `cleared` says
    /// the guard ended an escalation with them.
    async fn remember(&self, _events: &[crate::guard::PastEvent], _cleared: bool) {}
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

/// A journal that keeps nothing (offline, or the CRD is not installed).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJournal;

#[async_trait]
impl Journal for NoJournal {
    async fn write(&self, _outcome: &crate::pipeline::Outcome) {}
}

/// Reads back what the durable record says was done, for a replica that starts
/// or becomes leader.
#[async_trait]
pub trait History: Send + Sync {
    /// Past guard events and alert occurrences (fingerprint, startsAt); `None` when unreadable.
    async fn load(&self) -> Option<(Vec<crate::guard::PastEvent>, Vec<(String, jiff::Timestamp)>)>;
}
