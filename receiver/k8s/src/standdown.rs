//! Standing down, told through Kubernetes: per breaker episode a `Remediation`
//! record in heal8s's namespace (target `ActionClass/-/<class>`, phase
//! `Holding`, then `Cleared`) and an Event when it opens and when it closes;
//! per refusal aggregate and window an Event on one of the refused objects.
//!
//! Writes only what receiver-core's `standdown::Board` decided. A write that
//! fails is logged, never fatal; without the CRD, Events regard heal8s's pod.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use receiver_core::standdown::{Episode, Notice, RefusalCount, StandDown};

use crate::record::{
    HISTORY, HistoryEntry, Phase, Remediation, RemediationSpec, RemediationStatus, TargetSpec,
    TriggerSpec,
};

/// The kind a breaker record's target names: the class is no API object.
pub const CLASS_KIND: &str = "ActionClass";

/// The `spec.remediation` of a breaker record.
pub const STAND_DOWN: &str = "stand-down";

/// Event reasons.
pub const BREAKER_OPENED: &str = "BreakerOpened";
pub const BREAKER_CLOSED: &str = "BreakerClosed";
pub const REMEDIATIONS_REFUSED: &str = "RemediationsRefused";

/// Publishes stand-down notices as records and Events.
#[derive(Clone)]
pub struct KubeStandDown {
    client: kube::Client,
    namespace: String,
    identity: String,
    /// Whether the Remediation CRD is served.
    records: bool,
}

impl std::fmt::Debug for KubeStandDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStandDown").finish_non_exhaustive()
    }
}

impl KubeStandDown {
    /// A publisher writing to `namespace` (heal8s's own) as `identity` (this
    /// replica's pod name); records only where the CRD is served.
    pub async fn connect(client: kube::Client, namespace: &str, identity: &str) -> KubeStandDown {
        let records = crate::resources::Resources::new(client.clone())
            .by_kind("heal8s.io", "v1alpha1", "Remediation")
            .await
            .ok()
            .flatten()
            .is_some();
        KubeStandDown {
            client,
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            records,
        }
    }

    fn api(&self) -> Api<Remediation> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// What an episode's Events regard: its record, or heal8s's own pod without the CRD.
    fn regarding(&self, e: &Episode, uid: Option<String>) -> ObjectReference {
        if self.records {
            ObjectReference {
                api_version: Some("heal8s.io/v1alpha1".into()),
                kind: Some("Remediation".into()),
                namespace: Some(self.namespace.clone()),
                name: Some(e.record.clone()),
                uid,
                ..ObjectReference::default()
            }
        } else {
            ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(self.namespace.clone()),
                name: Some(self.identity.clone()),
                ..ObjectReference::default()
            }
        }
    }

    /// Create one Event (a new object each time: every window's count is its own).
    async fn event(&self, regarding: ObjectReference, warning: bool, reason: &str, note: String) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or("heal8s"),
            now.as_nanosecond()
        );
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some("StandDown".into()),
            reason: Some(reason.into()),
            note: Some(note.chars().take(1000).collect()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding),
            reporting_controller: Some("heal8s".into()),
            reporting_instance: Some(self.identity.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::warn!(error = %e, reason, "Could not record a Kubernetes Event.");
        }
    }

    async fn opened(&self, e: &Episode) -> Result<Option<String>, kube::Error> {
        if !self.records {
            return Ok(None);
        }
        let api = self.api();
        let r = Remediation::new(&e.record, spec(e));
        let uid = match api.create(&PostParams::default(), &r).await {
            Ok(r) => r.metadata.uid,
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                api.get_opt(&e.record).await?.and_then(|r| r.metadata.uid)
            }
            Err(e) => return Err(e),
        };
        let mut status = RemediationStatus::default();
        fill(&mut status, e);
        status.phase = Some(Phase::Holding);
        status.started_at = Some(e.breaker.since.to_string());
        push_history(
            &mut status,
            HistoryEntry {
                at: jiff::Timestamp::now().to_string(),
                phase: Phase::Holding,
                by: self.identity.clone(),
                message: short(&format!(
                    "{} stands down: {}",
                    e.breaker.class, e.breaker.message
                )),
            },
        );
        write_status(&api, &e.record, &status).await?;
        Ok(uid)
    }

    async fn updated(&self, e: &Episode) -> Result<(), kube::Error> {
        if !self.records {
            return Ok(());
        }
        let api = self.api();
        let Some(r) = api.get_opt(&e.record).await? else {
            // a person deleted it: the Event said it opened; the close says the rest
            return Ok(());
        };
        let mut status = r.status.unwrap_or_default();
        if status.phase != Some(Phase::Holding) {
            return Ok(());
        }
        fill(&mut status, e);
        write_status(&api, &e.record, &status).await
    }

    async fn closed(&self, e: &Episode) -> Result<Option<String>, kube::Error> {
        if !self.records {
            return Ok(None);
        }
        let api = self.api();
        let Some(r) = api.get_opt(&e.record).await? else {
            return Ok(None);
        };
        let uid = r.metadata.uid.clone();
        let mut status = r.status.unwrap_or_default();
        fill(&mut status, e);
        let message = closing(e);
        settle(&mut status, "BreakerClosed", &message, &self.identity);
        write_status(&api, &e.record, &status).await?;
        Ok(uid)
    }

    /// Settle breaker records another process left `Holding` (it stopped or
    /// lost its lease): this replica decides afresh.
    async fn took_over(&self, holding: &[String]) -> Result<usize, kube::Error> {
        if !self.records {
            return Ok(0);
        }
        let api = self.api();
        let mut n = 0;
        for r in api.list(&ListParams::default()).await?.items {
            let Some(name) = r.metadata.name.as_deref() else {
                continue;
            };
            let Some(mut status) = r.status.clone() else {
                continue;
            };
            if r.spec.target.kind != CLASS_KIND
                || status.phase != Some(Phase::Holding)
                || holding.iter().any(|h| h == name)
            {
                continue;
            }
            settle(
                &mut status,
                "Superseded",
                "the heal8s process that held this breaker stopped or lost its lease; the one acting now decides afresh (its own episodes have records of their own)",
                &self.identity,
            );
            write_status(&api, name, &status).await?;
            n += 1;
        }
        Ok(n)
    }

    async fn refusals(&self, counts: &[RefusalCount], omitted: u64) {
        for c in counts {
            let Some(example) = c.examples.first() else {
                continue;
            };
            let reference = ObjectReference {
                api_version: Some(example.kind.api_version()),
                kind: Some(example.kind.kind_name().to_string()),
                name: Some(example.name.clone()),
                namespace: example.namespace.clone(),
                uid: example.uid.clone(),
                ..ObjectReference::default()
            };
            self.event(
                reference,
                c.warning(),
                REMEDIATIONS_REFUSED,
                refusal_note(c),
            )
            .await;
        }
        if omitted > 0 {
            tracing::warn!(
                omitted,
                "Refusals under more reasons, classes and namespaces than one window reports were counted, not put in Events."
            );
        }
    }
}

#[async_trait::async_trait]
impl StandDown for KubeStandDown {
    async fn publish(&self, notice: &Notice) {
        match notice {
            Notice::Opened(e) => {
                let uid = self.opened(e).await.unwrap_or_else(|err| {
                    tracing::warn!(error = %err, record = %e.record, "Could not write the breaker record.");
                    None
                });
                self.event(self.regarding(e, uid), true, BREAKER_OPENED, opening(e))
                    .await;
            }
            Notice::Updated(e) => {
                if let Err(err) = self.updated(e).await {
                    tracing::warn!(error = %err, record = %e.record, "Could not update the breaker record.");
                }
            }
            Notice::Closed(e) => {
                let uid = self.closed(e).await.unwrap_or_else(|err| {
                    tracing::warn!(error = %err, record = %e.record, "Could not settle the breaker record.");
                    None
                });
                self.event(self.regarding(e, uid), false, BREAKER_CLOSED, closing(e))
                    .await;
            }
            Notice::Refusals {
                counts, omitted, ..
            } => self.refusals(counts, *omitted).await,
            Notice::TookOver { holding } => match self.took_over(holding).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    records = n,
                    "Breaker records another heal8s process left holding were settled (Superseded)."
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "Could not check for breaker records left holding.")
                }
            },
        }
    }
}

/// A breaker record's spec: the class as its target, the reason as its trigger.
fn spec(e: &Episode) -> RemediationSpec {
    let class = e.breaker.class.as_str();
    RemediationSpec {
        trigger: TriggerSpec {
            source: "guard".into(),
            alertname: e.breaker.reason.as_str().into(),
            fingerprint: e.record.clone(),
            labels: [
                ("class".to_string(), class.to_string()),
                ("reason".to_string(), e.breaker.reason.as_str().to_string()),
            ]
            .into(),
            first_seen: e.breaker.since.to_string(),
        },
        target: TargetSpec {
            api_version: "heal8s.io/v1alpha1".into(),
            kind: CLASS_KIND.into(),
            namespace: None,
            name: class.into(),
            container: None,
            workload: None,
            key: format!("{CLASS_KIND}/-/{class}"),
        },
        remediation: STAND_DOWN.into(),
        parameters: serde_json::json!({}),
        mode: "guard".into(),
        approval: None,
    }
}

/// Copy what the episode knows now into a record's status.
fn fill(status: &mut RemediationStatus, e: &Episode) {
    status.reason = e.breaker.reason.as_str().into();
    status.message = e.breaker.message.chars().take(1000).collect();
    status.blocked.clone_from(&e.breaker.blocked);
    status.refusals = e
        .refusals
        .iter()
        .map(|c| crate::record::RefusalCount {
            reason: c.reason.as_str().into(),
            namespace: c.namespace.clone(),
            count: c.count,
            examples: c.examples.iter().map(receiver_core::Target::key).collect(),
            first: c.first.to_string(),
            last: c.last.to_string(),
        })
        .collect();
    status.refusals_omitted = e.refusals_omitted;
}

fn settle(status: &mut RemediationStatus, reason: &str, message: &str, me: &str) {
    let now = jiff::Timestamp::now().to_string();
    status.phase = Some(Phase::Cleared);
    status.reason = reason.into();
    status.message = message.chars().take(1000).collect();
    status.finished_at = Some(now.clone());
    push_history(
        status,
        HistoryEntry {
            at: now,
            phase: Phase::Cleared,
            by: me.to_string(),
            message: short(message),
        },
    );
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

fn push_history(status: &mut RemediationStatus, entry: HistoryEntry) {
    status.history.push(entry);
    let excess = status.history.len().saturating_sub(HISTORY);
    status.history.drain(..excess);
}

async fn write_status(
    api: &Api<Remediation>,
    name: &str,
    status: &RemediationStatus,
) -> Result<(), kube::Error> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"status": status})),
    )
    .await?;
    Ok(())
}

/// `Node/-/a, Node/-/b (+3 more)` of at most `n` blocked targets.
fn blocked_text(blocked: &[String], n: usize) -> String {
    let shown: Vec<&str> = blocked.iter().take(n).map(String::as_str).collect();
    match blocked.len().saturating_sub(n) {
        0 => shown.join(", "),
        more => format!("{} (+{more} more)", shown.join(", ")),
    }
}

/// The note of the Event that opens an episode.
pub fn opening(e: &Episode) -> String {
    format!(
        "heal8s stands down {} actions ({}): {}. Blocked: {}. It re-checks as signals come; see remediation/{} for the targets it holds back.",
        e.breaker.class,
        e.breaker.reason,
        e.breaker.message,
        blocked_text(&e.breaker.blocked, 10),
        e.record
    )
}

/// The note of the Event (and the record message) that closes an episode.
pub fn closing(e: &Episode) -> String {
    let held = e
        .closed
        .map(|c| c.duration_since(e.breaker.since).as_secs().max(0))
        .unwrap_or_default();
    format!(
        "heal8s may act on {} again after {held}s; while the breaker held it refused {} action(s) on {} target(s): {}",
        e.breaker.class,
        e.refused(),
        e.breaker.blocked.len(),
        blocked_text(&e.breaker.blocked, 10),
    )
}

/// The note of one refusal aggregate's Event.
pub fn refusal_note(c: &RefusalCount) -> String {
    let place = match &c.namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "cluster-wide".into(),
    };
    format!(
        "heal8s refused {} {} action(s) {place} between {} and {} ({}): {}. Targets: {}",
        c.count,
        c.class,
        c.first,
        c.last,
        c.reason,
        c.message,
        c.examples_text()
    )
}

/// Delete breaker records that were `Cleared` more than `ttl` ago in
/// `namespace`; returns how many. (Other records: `record::collect_garbage`.)
pub async fn collect_garbage(
    client: kube::Client,
    namespace: &str,
    ttl: std::time::Duration,
) -> Result<usize, kube::Error> {
    let api: Api<Remediation> = Api::namespaced(client, namespace);
    let now = jiff::Timestamp::now();
    let mut deleted = 0;
    for r in api.list(&ListParams::default()).await?.items {
        let (Some(name), Some(status)) = (r.metadata.name.as_deref(), &r.status) else {
            continue;
        };
        let finished = status
            .finished_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let expired = r.spec.target.kind == CLASS_KIND
            && status.phase == Some(Phase::Cleared)
            && finished.is_some_and(|f| receiver_core::detect::age(now, f) > ttl);
        if !expired {
            continue;
        }
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => deleted += 1,
            Err(e) if crate::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}
