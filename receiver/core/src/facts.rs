//! What the live cluster says about a plan's target, and the seam that
//! reads it (`FactSource`). Implementations live at the edges
//! (receiver-k8s; offline, none).

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
    /// The target object as read, whole: what the record keeps of it when
    /// the plan deletes it (`crate::deleted`), from the read the plan was
    /// checked on, so a delete costs no second read.
    #[serde(skip)]
    pub live: Option<serde_json::Value>,
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
