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

/// What happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// u32/u64 fields as int64 with their bounds: the API server warns about uint formats
#[schemars(transform = crate::schema::kubernetes_formats)]
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
    /// The pull request of a declarative fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestStatus>,
    /// What this remediation changed in the guard's memory (actions counted,
    /// escalations, recoveries), oldest first: a restarted replica replays
    /// exactly these, so it counts what the running one counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "ledger_schema")]
    pub ledger: Vec<receiver_core::PastEvent>,
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
    pub refusals_omitted: u64,
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

/// How many guard events a record keeps (far more than any budget or
/// escalation threshold counts on one target).
pub const LEDGER: usize = 64;

/// Append guard events not kept yet (appending the same event twice keeps
/// one), keeping the last `LEDGER`.
fn push_ledger(status: &mut RemediationStatus, events: &[receiver_core::PastEvent]) {
    for e in events {
        if !status.ledger.contains(e) {
            status.ledger.push(e.clone());
        }
    }
    let excess = status.ledger.len().saturating_sub(LEDGER);
    status.ledger.drain(..excess);
}

/// Annotation a person sets on an escalated Remediation to end the escalation:
/// `kubectl annotate remediation NAME heal8s.io/clear-escalation=true`.
pub const CLEAR_ESCALATION: &str = "heal8s.io/clear-escalation";

/// The pull request a declarative fix opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestStatus {
    /// `owner/name`.
    pub repository: String,
    pub number: u64,
    pub url: String,
    pub branch: String,
    pub head_sha: String,
}

/// The CRD as YAML, as `heal8s crd` prints it and the chart ships it.
pub fn crd_yaml() -> Result<String, String> {
    use kube::CustomResourceExt;
    let crd = Remediation::crd();
    let json = serde_json::to_value(&crd).map_err(|e| e.to_string())?;
    serde_saphyr::to_string(&json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_times_never_go_backwards() {
        let mut s = RemediationStatus {
            started_at: Some("2026-12-07T10:00:00.043Z".into()),
            ..RemediationStatus::default()
        };
        let entry = |at: &str| HistoryEntry {
            at: at.into(),
            phase: Phase::Acting,
            by: String::new(),
            message: String::new(),
        };
        push_history(&mut s, entry("2026-12-07T10:00:00Z"));
        push_history(&mut s, entry("2026-12-07T10:00:05Z"));
        push_history(&mut s, entry("2026-12-07T10:00:04Z"));
        let at: Vec<jiff::Timestamp> = s.history.iter().map(|h| h.at.parse().unwrap()).collect();
        let started: jiff::Timestamp = "2026-12-07T10:00:00.043Z".parse().unwrap();
        assert!(at[0] >= started, "{at:?}");
        assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    }
}

/// How many history entries a record keeps.
pub const HISTORY: usize = 10;

/// Set condition `type_`; its transition time changes only when its status does.
fn set_condition(
    status: &mut RemediationStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let message: String = message.chars().take(300).collect();
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

/// Append `entry`, keeping the last `HISTORY` entries.
fn push_history(status: &mut RemediationStatus, mut entry: HistoryEntry) {
    // times in a record never go backwards: an outcome decided a moment
    // before its action was recorded as started is stamped no earlier
    let parse = |s: &str| s.parse::<jiff::Timestamp>().ok();
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

/// The history message of an action that has started and not yet ended.
pub const STARTED: &str = "started";

fn spec_for(
    plan: &receiver_core::Plan,
    t: &receiver_core::Target,
    kind: receiver_core::RemediationKind,
) -> RemediationSpec {
    RemediationSpec {
        trigger: TriggerSpec {
            source: plan.trigger.source.clone(),
            alertname: plan.trigger.name.clone(),
            fingerprint: plan.trigger.fingerprint.clone(),
            labels: plan.trigger.labels.clone(),
            first_seen: plan.trigger.first_seen.to_string(),
        },
        target: TargetSpec {
            api_version: crate::events::api_version(&t.kind),
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
    }
}

/// Mark records left `Acting` by another process (an earlier run, or a
/// leader that lost its lease) as `Failed`, reason `Interrupted`; returns how many.
pub async fn mark_interrupted(client: kube::Client, me: &str) -> Result<usize, kube::Error> {
    use kube::Api;
    use kube::api::ListParams;
    let all: Api<Remediation> = Api::all(client.clone());
    let now = jiff::Timestamp::now().to_string();
    let mut n = 0;
    for r in all.list(&ListParams::default()).await?.items {
        let Some(mut status) = r.status.clone() else {
            continue;
        };
        let last = status.history.last().cloned();
        let stale =
            status.phase == Some(Phase::Acting) && last.as_ref().is_some_and(|h| h.by != me);
        let (Some(ns), Some(name), true) = (
            r.metadata.namespace.as_deref(),
            r.metadata.name.as_deref(),
            stale,
        ) else {
            continue;
        };
        let message = if last.is_some_and(|h| h.message == STARTED) {
            "heal8s stopped while acting; the action may be incomplete and is not repeated blindly (the problem is signalled again if it persists)"
        } else {
            "heal8s stopped before recovery was verified"
        };
        status.phase = Some(Phase::Failed);
        status.reason = "Interrupted".into();
        status.message = message.into();
        status.finished_at = Some(now.clone());
        push_history(
            &mut status,
            HistoryEntry {
                at: now.clone(),
                phase: Phase::Failed,
                by: me.to_string(),
                message: "interrupted".into(),
            },
        );
        let api: Api<Remediation> = Api::namespaced(client.clone(), ns);
        write_status(&api, name, &status).await?;
        n += 1;
    }
    Ok(n)
}

/// Records whose pull request is open: (namespace, name, pull request).
pub async fn open_pull_requests(
    client: kube::Client,
) -> Result<Vec<(String, String, PullRequestStatus)>, kube::Error> {
    use kube::Api;
    use kube::api::ListParams;
    let all: Api<Remediation> = Api::all(client);
    Ok(all
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|r| {
            let status = r.status?;
            if status.phase != Some(Phase::PrOpen) {
                return None;
            }
            Some((
                r.metadata.namespace?,
                r.metadata.name?,
                status.pull_request?,
            ))
        })
        .collect())
}

/// A pull request was merged (`Merged`) or closed without merging
/// (`Refused`, reason `Declined`): settle its record.
pub async fn settle_pull_request(
    client: kube::Client,
    namespace: &str,
    name: &str,
    phase: Phase,
    reason: &str,
    message: &str,
    me: &str,
) -> Result<(), kube::Error> {
    use kube::Api;
    let api: Api<Remediation> = Api::namespaced(client, namespace);
    let Some(r) = api.get_opt(name).await? else {
        return Ok(());
    };
    let mut status = r.status.unwrap_or_default();
    if status.phase != Some(Phase::PrOpen) {
        return Ok(());
    }
    let now = jiff::Timestamp::now().to_string();
    status.phase = Some(phase);
    status.reason = reason.to_string();
    status.message = message.chars().take(1000).collect();
    if phase == Phase::Refused {
        status.finished_at = Some(now.clone());
    }
    push_history(
        &mut status,
        HistoryEntry {
            at: now,
            phase,
            by: me.to_string(),
            message: message.chars().take(200).collect(),
        },
    );
    write_status(&api, name, &status).await
}

/// The reason of a declarative fix that was not proposed because the policy
/// names no pull-request repository.
pub const NO_REPOSITORY: &str = "NoRepository";

/// The phase and reason an outcome gives a record. An action that went
/// through is `Acting` until its verification settles it; a notify-only
/// finding is `Notified` at once (settled, never an action).
pub fn phase_of(o: &receiver_core::Outcome) -> (Phase, String) {
    use receiver_core::OutcomeKind;
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
        OutcomeKind::DryRun => (Phase::Planned, "DryRun".into()),
        OutcomeKind::Deferred if o.deferred.as_deref() == Some(NO_REPOSITORY) => {
            (Phase::NotProposed, NO_REPOSITORY.into())
        }
        OutcomeKind::Deferred => (
            Phase::Planned,
            o.deferred.clone().unwrap_or_else(|| "Deferred".into()),
        ),
        OutcomeKind::Failed => (Phase::Failed, "Failed".into()),
        OutcomeKind::Refused
            if o.escalated || o.reason == Some(receiver_core::RefusalReason::Escalated) =>
        {
            (Phase::Escalated, "escalated".into())
        }
        _ => (
            Phase::Refused,
            o.reason.map(|r| r.as_str().to_string()).unwrap_or_default(),
        ),
    }
}

/// A record `begin` wrote: its `namespace/name`, the status written and the
/// record's generation.
type Begun = (String, RemediationStatus, Option<i64>);

/// The records a journal knows exist (`namespace/name`), and the
/// fingerprints of the signals that triggered them.
#[derive(Debug, Default)]
struct Known {
    records: std::collections::HashSet<String>,
    fingerprints: std::collections::HashSet<String>,
}

/// Writes Remediation objects: created when heal8s acts, simulates, fails or
/// escalates; updated on every later outcome for the same target and remediation.
#[derive(Clone)]
pub struct KubeJournal {
    client: kube::Client,
    own_namespace: String,
    identity: String,
    /// The records known to exist (`namespace/name`): an outcome that can
    /// only update a record (a refusal) costs no read when there is none.
    /// `None` until listed once, and again after this replica takes the lead.
    known: std::sync::Arc<std::sync::Mutex<Option<Known>>>,
    /// The status `begin` last wrote, by record (`namespace/name`), with the
    /// record's generation: the outcome written right after builds on it
    /// instead of reading the record back (the worker writes a record's
    /// status from one task, so nothing comes in between).
    begun: std::sync::Arc<std::sync::Mutex<Option<Begun>>>,
}

impl std::fmt::Debug for KubeJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeJournal").finish_non_exhaustive()
    }
}

impl KubeJournal {
    /// The record of `kind` on `t`: its API (in the target's namespace, or
    /// heal8s's own for cluster-scoped targets such as nodes) and its name.
    fn locate(
        &self,
        t: &receiver_core::Target,
        kind: receiver_core::RemediationKind,
    ) -> (kube::Api<Remediation>, String) {
        let ns = receiver_core::names::record_namespace(t)
            .unwrap_or(&self.own_namespace)
            .to_string();
        (
            kube::Api::namespaced(self.client.clone(), &ns),
            receiver_core::names::record_name(t, kind),
        )
    }

    /// `namespace/name` of the record of `kind` on `t`.
    fn record_key(
        &self,
        t: &receiver_core::Target,
        kind: receiver_core::RemediationKind,
    ) -> String {
        format!(
            "{}/{}",
            receiver_core::names::record_namespace(t).unwrap_or(&self.own_namespace),
            receiver_core::names::record_name(t, kind)
        )
    }

    /// What is known of the records, listing them once (one request) if
    /// nothing is; `f` reads it.
    async fn with_known<T>(&self, f: impl Fn(&Known) -> T) -> Result<T, kube::Error> {
        if let Ok(known) = self.known.lock()
            && let Some(k) = known.as_ref()
        {
            return Ok(f(k));
        }
        let api: kube::Api<Remediation> = kube::Api::all(self.client.clone());
        let mut listed = Known::default();
        for r in api.list(&kube::api::ListParams::default()).await?.items {
            if let (Some(ns), Some(name)) = (r.metadata.namespace, r.metadata.name) {
                listed.records.insert(format!("{ns}/{name}"));
                listed.fingerprints.insert(r.spec.trigger.fingerprint);
            }
        }
        let out = f(&listed);
        if let Ok(mut known) = self.known.lock() {
            *known = Some(listed);
        }
        Ok(out)
    }

    /// Whether the record of `kind` on `t` may exist: every record is listed
    /// once, then those this replica creates are added.
    async fn may_exist(
        &self,
        t: &receiver_core::Target,
        kind: receiver_core::RemediationKind,
    ) -> Result<bool, kube::Error> {
        let key = self.record_key(t, kind);
        self.with_known(|k| k.records.contains(&key)).await
    }

    /// The record of `kind` on `t` (triggered by `fingerprint`) exists, or is about to.
    fn note_exists(
        &self,
        t: &receiver_core::Target,
        kind: receiver_core::RemediationKind,
        fingerprint: &str,
    ) {
        if let Ok(mut known) = self.known.lock()
            && let Some(k) = known.as_mut()
        {
            k.records.insert(self.record_key(t, kind));
            k.fingerprints.insert(fingerprint.to_string());
        }
    }

    /// A journal when the CRD is served; `None` (with one warning) when it is not,
    /// so recording degrades to Events and logs.
    pub async fn connect(
        client: kube::Client,
        own_namespace: &str,
        identity: &str,
    ) -> Option<KubeJournal> {
        let resources = crate::resources::Resources::new(client.clone());
        match resources
            .by_kind("heal8s.io", "v1alpha1", "Remediation")
            .await
        {
            Ok(Some(_)) => Some(KubeJournal {
                client,
                own_namespace: own_namespace.to_string(),
                identity: identity.to_string(),
                known: Default::default(),
                begun: Default::default(),
            }),
            Ok(None) => {
                tracing::warn!(
                    "The Remediation CRD (remediations.heal8s.io) is not installed: outcomes are recorded as Events and logs only. Install charts/heal8s/crds/ to keep records."
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not check for the Remediation CRD: outcomes are recorded as Events and logs only.");
                None
            }
        }
    }

    async fn write_inner(&self, o: &receiver_core::Outcome) -> Result<(), kube::Error> {
        use kube::api::PostParams;
        use receiver_core::OutcomeKind;

        let (Some(plan), Some(kind)) = (&o.plan, o.remediation) else {
            return Ok(());
        };
        let Some(t) = &plan.target else {
            return Ok(());
        };
        let (api, name) = self.locate(t, kind);
        let (phase, reason) = phase_of(o);
        let now = o.at.to_string();
        let creates = matches!(
            o.result,
            OutcomeKind::Acted | OutcomeKind::DryRun | OutcomeKind::Failed | OutcomeKind::Deferred
        ) || phase == Phase::Escalated;
        // a refusal only adds to a record that exists: most have none
        if !creates && !self.may_exist(t, kind).await? {
            return Ok(());
        }
        let key = self.record_key(t, kind);
        let begun = self
            .begun
            .lock()
            .ok()
            .and_then(|mut b| b.take_if(|(k, _, _)| *k == key));
        let existing = match begun {
            Some((_, status, generation)) => Some((Some(status), generation)),
            None => api
                .get_opt(&name)
                .await?
                .map(|r| (r.status, r.metadata.generation)),
        };
        if existing.is_some() || creates {
            self.note_exists(t, kind, &plan.trigger.fingerprint);
        }
        let generation = existing.as_ref().and_then(|(_, g)| *g).unwrap_or(1);
        let mut status = match existing {
            Some((status, _)) => status.unwrap_or_default(),
            None if !creates => return Ok(()),
            None => {
                let spec = spec_for(plan, t, kind);
                let r = Remediation::new(&name, spec);
                match api.create(&PostParams::default(), &r).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                    Err(e) => return Err(e),
                }
                RemediationStatus::default()
            }
        };
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
            status.started_at.get_or_insert_with(|| now.clone());
        }
        if matches!(
            phase,
            Phase::Failed | Phase::Escalated | Phase::Notified | Phase::NotProposed
        ) {
            status.finished_at = Some(now.clone());
        }
        push_ledger(&mut status, &o.ledger);
        status.observed_generation = Some(generation);
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
                set_condition(
                    &mut status,
                    "Acted",
                    "True",
                    "PullRequestOpen",
                    &o.message,
                    &now,
                );
            }
            OutcomeKind::Acted if phase == Phase::Acting => {
                set_condition(&mut status, "Acted", "True", "Acted", &o.message, &now);
                set_condition(
                    &mut status,
                    "Recovered",
                    "Unknown",
                    "Verifying",
                    "watching the target recover",
                    &now,
                );
            }
            OutcomeKind::Failed => set_condition(
                &mut status,
                "Acted",
                "False",
                "ActionFailed",
                &o.message,
                &now,
            ),
            _ => {}
        }
        // a refused repeat (cooldown, the pod already gone) is history, not
        // news: it never hides that this remediation acted, is being
        // verified, succeeded or failed
        let acted_before = status
            .phase
            .is_some_and(|p| !matches!(p, Phase::Pending | Phase::Planned | Phase::Refused));
        if !(phase == Phase::Refused && acted_before) {
            status.phase = Some(phase);
            status.reason = reason;
            status.message = o.message.chars().take(1000).collect();
        }
        push_history(
            &mut status,
            HistoryEntry {
                at: now,
                phase,
                by: self.identity.clone(),
                message: o.message.chars().take(200).collect(),
            },
        );
        write_status(&api, &name, &status).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl receiver_core::Journal for KubeJournal {
    async fn resume(&self) {
        // another replica may have written records since: list them again
        if let Ok(mut known) = self.known.lock() {
            *known = None;
        }
    }

    async fn write(&self, outcome: &receiver_core::Outcome) {
        if let Err(e) = self.write_inner(outcome).await {
            tracing::warn!(error = %e, "Could not write the Remediation record.");
        }
    }

    async fn begin(&self, plan: &receiver_core::Plan, event: Option<&receiver_core::PastEvent>) {
        if let Err(e) = self.begin_inner(plan, event).await {
            tracing::warn!(error = %e, "Could not record the start of an action on the Remediation.");
        }
    }

    async fn resolved(&self, fingerprint: &str) {
        if let Err(e) = self.resolved_inner(fingerprint).await {
            tracing::warn!(error = %e, "Could not record the resolved alert on its Remediations.");
        }
    }

    async fn verified(
        &self,
        plan: &receiver_core::Plan,
        v: &receiver_core::Verification,
        events: &[receiver_core::PastEvent],
    ) {
        if let Err(e) = self.verified_inner(plan, v, events).await {
            tracing::warn!(error = %e, "Could not record the verification on the Remediation.");
        }
    }

    async fn remember(&self, events: &[receiver_core::PastEvent], cleared: bool) {
        if let Err(e) = self.remember_inner(events, cleared).await {
            tracing::warn!(error = %e, "Could not keep a recovery on the Remediation records.");
        }
    }
}

/// What the records tell a restarted replica.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every guard event the records kept (actions, escalations, recoveries).
    pub events: Vec<receiver_core::PastEvent>,
    /// Alert occurrences (fingerprint, startsAt) that led to a record.
    pub alerts: Vec<(String, jiff::Timestamp)>,
}

/// Read every Remediation object back, for the guard (cooldowns, budgets,
/// escalation, alert dedupe) after a restart.
pub async fn load_history(client: kube::Client) -> Result<History, kube::Error> {
    use kube::Api;
    use kube::api::ListParams;
    let api: Api<Remediation> = Api::all(client);
    let mut out = History::default();
    let now = jiff::Timestamp::now();
    for r in api.list(&ListParams::default()).await?.items {
        out.events.extend(past_events(&r, now));
        if r.spec.trigger.source == "alert"
            && let Ok(at) = r.spec.trigger.first_seen.parse()
        {
            out.alerts.push((r.spec.trigger.fingerprint.clone(), at));
        }
    }
    Ok(out)
}

/// The guard events one record stands for: its ledger, plus a human clear
/// (the annotation on an escalated record) that no leader has taken in yet.
pub fn past_events(r: &Remediation, now: jiff::Timestamp) -> Vec<receiver_core::PastEvent> {
    let mut out: Vec<receiver_core::PastEvent> = r
        .status
        .as_ref()
        .map(|s| s.ledger.clone())
        .unwrap_or_default();
    if let Some(key) = escalation_to_clear(r) {
        out.push(receiver_core::PastEvent {
            at: now,
            event: receiver_core::GuardEvent::Recovered {
                key,
                by: receiver_core::RecoveryBy::Human,
            },
        });
    }
    out
}

/// The key whose escalation a person asked to end on this record (phase
/// `Escalated` and the `heal8s.io/clear-escalation=true` annotation).
pub fn escalation_to_clear(r: &Remediation) -> Option<String> {
    let asked = r
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CLEAR_ESCALATION))
        .is_some_and(|v| v == "true");
    let status = r.status.as_ref()?;
    if !asked || status.phase != Some(Phase::Escalated) {
        return None;
    }
    status
        .ledger
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            receiver_core::GuardEvent::Escalated { key, .. } => Some(key.clone()),
            _ => None,
        })
        .or_else(|| {
            let t = &r.spec.target;
            Some(match &t.workload {
                Some(w) => format!(
                    "{}/{}/{}",
                    w.kind,
                    t.namespace.as_deref().unwrap_or("-"),
                    w.name
                ),
                None => t.key.clone(),
            })
        })
}

/// Watch Remediation records for a person's request to end an escalation
/// (`kubectl annotate remediation NAME heal8s.io/clear-escalation=true`) and
/// send the key to `tx`. Runs until `tx` is closed.
pub async fn watch_clears(client: kube::Client, tx: tokio::sync::mpsc::Sender<String>) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let api: kube::Api<Remediation> = kube::Api::all(client);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(r) => {
                if let Some(key) = escalation_to_clear(&r)
                    && tx.send(key).await.is_err()
                {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "Watching Remediation records failed; retrying."),
        }
    }
}

impl KubeJournal {
    async fn verified_inner(
        &self,
        plan: &receiver_core::Plan,
        v: &receiver_core::Verification,
        events: &[receiver_core::PastEvent],
    ) -> Result<(), kube::Error> {
        use receiver_core::VerifyResult;
        let Some(t) = &plan.target else { return Ok(()) };
        let (api, name) = self.locate(t, plan.kind());
        let Some(r) = api.get_opt(&name).await? else {
            return Ok(());
        };
        let generation = r.metadata.generation.unwrap_or(1);
        let mut status = r.status.unwrap_or_default();
        if status.phase != Some(Phase::Acting) {
            // already settled (e.g. its alert resolved first): the first settlement stands
            return Ok(());
        }
        let (phase, reason, condition) = match v.result {
            VerifyResult::Recovered => (Phase::Succeeded, "Recovered", "True"),
            VerifyResult::NotRecovered => (Phase::Failed, "NotRecovered", "False"),
            VerifyResult::Unverified => (Phase::Unverified, "Unverified", "Unknown"),
            VerifyResult::StillDown => (Phase::Drained, "NodeStillDown", "False"),
        };
        let now = jiff::Timestamp::now().to_string();
        status.observed_generation = Some(generation);
        set_condition(
            &mut status,
            "Recovered",
            condition,
            reason,
            &v.message,
            &now,
        );
        push_ledger(&mut status, events);
        status.phase = Some(phase);
        status.reason = reason.into();
        status.message = v.message.chars().take(1000).collect();
        status.finished_at = Some(now.clone());
        push_history(
            &mut status,
            HistoryEntry {
                at: now,
                phase,
                by: self.identity.clone(),
                message: v.message.chars().take(200).collect(),
            },
        );
        write_status(&api, &name, &status).await?;
        Ok(())
    }
}

/// Delete `Succeeded` records that finished more than `ttl` ago; returns how many.
/// Failed, refused and escalated records are kept for people to read.
pub async fn collect_garbage(
    client: kube::Client,
    ttl: std::time::Duration,
) -> Result<usize, kube::Error> {
    use kube::Api;
    use kube::api::{DeleteParams, ListParams};
    let all: Api<Remediation> = Api::all(client.clone());
    let now = jiff::Timestamp::now();
    let mut deleted = 0;
    for r in all.list(&ListParams::default()).await?.items {
        let Some(status) = &r.status else { continue };
        let finished = status
            .finished_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let expired = status.phase == Some(Phase::Succeeded)
            && finished.is_some_and(|f| receiver_core::detect::age(now, f) > ttl);
        if !expired {
            continue;
        }
        let (Some(ns), Some(name)) = (r.metadata.namespace.as_deref(), r.metadata.name.as_deref())
        else {
            continue;
        };
        let api: Api<Remediation> = Api::namespaced(client.clone(), ns);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => deleted += 1,
            Err(e) if crate::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

impl KubeJournal {
    async fn begin_inner(
        &self,
        plan: &receiver_core::Plan,
        event: Option<&receiver_core::PastEvent>,
    ) -> Result<(), kube::Error> {
        use kube::api::PostParams;
        let Some(t) = &plan.target else { return Ok(()) };
        let kind = plan.kind();
        let (api, name) = self.locate(t, kind);
        // a record known to be absent is created without reading it first
        let existing = if self.may_exist(t, kind).await? {
            api.get_opt(&name).await?
        } else {
            None
        };
        self.note_exists(t, kind, &plan.trigger.fingerprint);
        let (mut status, generation) = match existing {
            Some(r) => (r.status.unwrap_or_default(), r.metadata.generation),
            None => {
                let r = Remediation::new(&name, spec_for(plan, t, kind));
                match api.create(&PostParams::default(), &r).await {
                    Ok(created) => (RemediationStatus::default(), created.metadata.generation),
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {
                        // written by someone since heal8s listed the records
                        match api.get_opt(&name).await? {
                            Some(r) => (r.status.unwrap_or_default(), r.metadata.generation),
                            None => (RemediationStatus::default(), None),
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let now = jiff::Timestamp::now().to_string();
        status.phase = Some(Phase::Acting);
        status.reason = "Started".into();
        status.message = format!("started: {}", plan.describe());
        status.started_at.get_or_insert_with(|| now.clone());
        status.finished_at = None;
        if let Some(e) = event {
            push_ledger(&mut status, std::slice::from_ref(e));
        }
        push_history(
            &mut status,
            HistoryEntry {
                at: now,
                phase: Phase::Acting,
                by: self.identity.clone(),
                message: STARTED.into(),
            },
        );
        write_status(&api, &name, &status).await?;
        if let Ok(mut b) = self.begun.lock() {
            *b = Some((self.record_key(t, kind), status, generation));
        }
        Ok(())
    }
}

impl KubeJournal {
    async fn resolved_inner(&self, fingerprint: &str) -> Result<(), kube::Error> {
        use kube::Api;
        use kube::api::ListParams;
        // most signals that resolve (a pod that recovered, or was deleted
        // while its plan waited) triggered no record: nothing to read
        if !self
            .with_known(|k| k.fingerprints.contains(fingerprint))
            .await?
        {
            return Ok(());
        }
        let all: Api<Remediation> = Api::all(self.client.clone());
        for r in all.list(&ListParams::default()).await?.items {
            let Some(mut status) = r.status.clone() else {
                continue;
            };
            // an alert's or a detector's signal resolving alike
            if r.spec.trigger.fingerprint != fingerprint || status.phase != Some(Phase::Acting) {
                continue;
            }
            let (Some(ns), Some(name)) =
                (r.metadata.namespace.as_deref(), r.metadata.name.as_deref())
            else {
                continue;
            };
            let now = jiff::Timestamp::now().to_string();
            let api: Api<Remediation> = Api::namespaced(self.client.clone(), ns);
            if let Some(why) = verification_decides(&r.spec.remediation) {
                // the signal's resolution is no proof the action is done: a
                // detector stops seeing a namespace or resource the moment its
                // deletion is marked, though it may stay Terminating forever;
                // a node is back before heal8s gives back its cordon
                push_history(
                    &mut status,
                    HistoryEntry {
                        at: now,
                        phase: Phase::Acting,
                        by: self.identity.clone(),
                        message: format!(
                            "alert {} resolved; the record settles on its verification ({why})",
                            r.spec.trigger.alertname
                        ),
                    },
                );
                write_status(&api, name, &status).await?;
                continue;
            }
            if !keeps_identity(&r.spec.target) {
                // the pod's alert resolved because heal8s deleted the pod: no
                // evidence that its workload recovered; the verification settles it
                push_history(
                    &mut status,
                    HistoryEntry {
                        at: now,
                        phase: Phase::Acting,
                        by: self.identity.clone(),
                        message: format!(
                            "alert {} resolved: the pod is gone, which is no evidence of recovery; waiting for the workload's verification",
                            r.spec.trigger.alertname
                        ),
                    },
                );
                write_status(&api, name, &status).await?;
                continue;
            }
            let message = format!(
                "alert {} ({fingerprint}) resolved",
                r.spec.trigger.alertname
            );
            status.phase = Some(Phase::Succeeded);
            status.reason = "AlertResolved".into();
            status.message = message.clone();
            status.finished_at = Some(now.clone());
            set_condition(
                &mut status,
                "Recovered",
                "True",
                "AlertResolved",
                &message,
                &now,
            );
            push_history(
                &mut status,
                HistoryEntry {
                    at: now,
                    phase: Phase::Succeeded,
                    by: self.identity.clone(),
                    message,
                },
            );
            write_status(&api, name, &status).await?;
        }
        Ok(())
    }
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

/// Whether a record's target keeps its identity while remediated (see
/// `TargetKind::keeps_identity`): not a pod.
fn keeps_identity(t: &TargetSpec) -> bool {
    !(t.kind == "Pod" && t.api_version == "v1")
}

impl KubeJournal {
    /// Append a recovery (or a cleared escalation) to every record whose
    /// ledger concerns its key; with `cleared`, escalated records of that key
    /// become `Cleared`.
    async fn remember_inner(
        &self,
        events: &[receiver_core::PastEvent],
        cleared: bool,
    ) -> Result<(), kube::Error> {
        use kube::Api;
        use kube::api::ListParams;
        if events.is_empty() {
            return Ok(());
        }
        let all: Api<Remediation> = Api::all(self.client.clone());
        for r in all.list(&ListParams::default()).await?.items {
            let Some(mut status) = r.status.clone() else {
                continue;
            };
            let mine: Vec<receiver_core::PastEvent> = events
                .iter()
                .filter(|e| status.ledger.iter().any(|l| l.event.key() == e.event.key()))
                .cloned()
                .collect();
            let (Some(ns), Some(name), false) = (
                r.metadata.namespace.as_deref(),
                r.metadata.name.as_deref(),
                mine.is_empty(),
            ) else {
                continue;
            };
            push_ledger(&mut status, &mine);
            if cleared && status.phase == Some(Phase::Escalated) {
                let now = jiff::Timestamp::now().to_string();
                let by = mine
                    .iter()
                    .find_map(|e| match &e.event {
                        receiver_core::GuardEvent::Recovered { by, .. } => Some(by.as_str()),
                        _ => None,
                    })
                    .unwrap_or("recovery");
                let message = format!("escalation ended ({by}); heal8s may act on it again");
                status.phase = Some(Phase::Cleared);
                status.reason = "EscalationCleared".into();
                status.message = message.clone();
                status.finished_at = Some(now.clone());
                push_history(
                    &mut status,
                    HistoryEntry {
                        at: now,
                        phase: Phase::Cleared,
                        by: self.identity.clone(),
                        message,
                    },
                );
            }
            let api: Api<Remediation> = Api::namespaced(self.client.clone(), ns);
            write_status(&api, name, &status).await?;
        }
        Ok(())
    }
}

/// Add `message` to the history of every node remediation record of `node`.
pub async fn note_on_node(
    client: kube::Client,
    node: &str,
    message: &str,
    me: &str,
) -> Result<(), kube::Error> {
    use kube::Api;
    use kube::api::ListParams;
    let all: Api<Remediation> = Api::all(client.clone());
    for r in all.list(&ListParams::default()).await?.items {
        let t = &r.spec.target;
        let (Some(ns), Some(name), true) = (
            r.metadata.namespace.as_deref(),
            r.metadata.name.as_deref(),
            t.kind == "Node" && t.name == node,
        ) else {
            continue;
        };
        let mut status = r.status.clone().unwrap_or_default();
        let phase = status.phase.unwrap_or(Phase::Failed);
        push_history(
            &mut status,
            HistoryEntry {
                at: jiff::Timestamp::now().to_string(),
                phase,
                by: me.to_string(),
                message: message.chars().take(200).collect(),
            },
        );
        let api: Api<Remediation> = Api::namespaced(client.clone(), ns);
        write_status(&api, name, &status).await?;
    }
    Ok(())
}

/// Before a replica that becomes leader decides anything: reconcile drains
/// and records another process left in flight, then read the records back.
async fn take_over(client: kube::Client, me: &str) {
    // records first: a drain's "started" entry becomes Failed/Interrupted
    match mark_interrupted(client.clone(), me).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            records = n,
            "Remediations left in flight by another heal8s process were marked Failed (Interrupted)."
        ),
        Err(e) => tracing::debug!(error = %e, "Could not check for interrupted Remediations."),
    }
    match crate::drain::reconcile_interrupted(client.clone()).await {
        Ok(nodes) => {
            for (node, message) in nodes {
                if let Err(e) = note_on_node(client.clone(), &node, &message, me).await {
                    tracing::debug!(error = %e, node = %node, "Could not note the reconciled drain on its record.");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "Could not reconcile interrupted drains; a node left marked draining blocks other node remediations.")
        }
    }
}

/// The guard's history, read from Remediation records.
#[derive(Clone)]
pub struct KubeHistory {
    client: kube::Client,
    identity: String,
}

impl std::fmt::Debug for KubeHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeHistory").finish_non_exhaustive()
    }
}

impl KubeHistory {
    /// History through `client`; `identity` is this replica's name.
    pub fn new(client: kube::Client, identity: &str) -> KubeHistory {
        KubeHistory {
            client,
            identity: identity.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl receiver_core::History for KubeHistory {
    async fn load(
        &self,
    ) -> Option<(
        Vec<receiver_core::PastEvent>,
        Vec<(String, jiff::Timestamp)>,
    )> {
        take_over(self.client.clone(), &self.identity).await;
        match load_history(self.client.clone()).await {
            Ok(h) => {
                tracing::info!(
                    events = h.events.len(),
                    alerts = h.alerts.len(),
                    "Guard state restored from Remediation records."
                );
                Some((h.events, h.alerts))
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not read Remediation records; the guard goes on without history.");
                None
            }
        }
    }
}
