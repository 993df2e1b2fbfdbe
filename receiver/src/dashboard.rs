//! The dashboard: `GET /ui` (and `/`) serves one page, `GET /ui/state` the
//! data it shows, read-only: the Remediation records (so it survives
//! restarts), the recent outcomes, refusals by reason, budgets and breakers,
//! dry-run and leadership.
//!
//! The page itself holds no data and needs no token, so a browser can load
//! it; what it shows comes from `/ui/state`, which needs the webhook token or
//! the read token (`--read-token-file`), as `/outcomes` does. The page asks
//! for the token and keeps it in the tab's session storage.
//!
//! Owns: the board the worker writes its view of the guard to, the record
//! listing, and the state's shape. Must not decide anything.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use receiver_core::guard::{Breaker, BudgetUse};
use serde::Serialize;
use serde_json::{Value, json};

/// The page: HTML, CSS and a little JS, no build step.
pub const PAGE: &str = include_str!("dashboard.html");

/// Records the state carries at most (the newest).
pub const MAX_RECORDS: usize = 200;
/// Outcomes the state carries at most (the newest).
pub const MAX_OUTCOMES: usize = 100;

/// The worker's view of the guard, as it last wrote it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardView {
    pub at: Timestamp,
    pub leader: bool,
    pub budgets: BudgetUse,
    pub breakers: Vec<Breaker>,
    /// Plans waiting for their budget or their turn.
    pub backlog: usize,
    /// Plans being carried out.
    pub running: usize,
    /// The alerts holding remediations now (`guard.holdWhileFiring`).
    pub holding: Vec<String>,
    /// The pause in force, as the worker applied it.
    pub paused: Option<receiver_core::guard::Pause>,
}

/// Reads the Remediation records.
#[async_trait]
pub trait RecordSource: Send + Sync {
    /// The newest `limit` records (as the API serves them), or why not.
    async fn list(&self, limit: usize) -> Result<Vec<Value>, String>;
}

/// What the dashboard shows between requests.
#[derive(Default)]
pub struct Board {
    view: Mutex<Option<GuardView>>,
    records: Mutex<Option<Arc<dyn RecordSource>>>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").finish_non_exhaustive()
    }
}

impl Board {
    /// The worker's latest view.
    pub fn update(&self, view: GuardView) {
        if let Ok(mut v) = self.view.lock() {
            *v = Some(view);
        }
    }

    /// Where records are read from (with a cluster).
    pub fn read_records_from(&self, source: Arc<dyn RecordSource>) {
        if let Ok(mut r) = self.records.lock() {
            *r = Some(source);
        }
    }

    pub fn view(&self) -> Option<GuardView> {
        self.view.lock().ok().and_then(|v| v.clone())
    }

    fn source(&self) -> Option<Arc<dyn RecordSource>> {
        self.records.lock().ok().and_then(|r| r.clone())
    }

    /// The records, newest first, each cut to what the page shows.
    pub async fn records(&self) -> Value {
        match self.source() {
            None => {
                json!({"available": false, "why": "no cluster: records are kept as Remediation objects in one", "items": []})
            }
            Some(s) => match s.list(MAX_RECORDS).await {
                Ok(mut items) => {
                    items.sort_by_key(|r| std::cmp::Reverse(updated(r)));
                    let items: Vec<Value> = items.iter().map(summary).collect();
                    json!({"available": true, "items": items})
                }
                Err(why) => json!({"available": false, "why": why, "items": []}),
            },
        }
    }
}

fn updated(r: &Value) -> String {
    let s = &r["status"];
    s["finishedAt"]
        .as_str()
        .or_else(|| s["startedAt"].as_str())
        .or_else(|| r["metadata"]["creationTimestamp"].as_str())
        .unwrap_or("")
        .to_string()
}

/// A record as the page shows it: never a kept object's manifest (it may be
/// large; `heal8s show-deleted` prints it), only that one is kept.
fn summary(r: &Value) -> Value {
    let (spec, status) = (&r["spec"], &r["status"]);
    let history: Vec<Value> = status["history"]
        .as_array()
        .map(|h| h.iter().rev().take(10).rev().cloned().collect())
        .unwrap_or_default();
    json!({
        "name": r["metadata"]["name"],
        "namespace": r["metadata"]["namespace"],
        "created": r["metadata"]["creationTimestamp"],
        "updated": updated(r),
        "remediation": spec["remediation"],
        "mode": spec["mode"],
        "target": spec["target"],
        "trigger": spec["trigger"],
        // what the record found: each condition's reason and message
        // (e.g. Verified: Recovered, Deployment shop/api has 1/1 ready replicas)
        "evidence": evidence(status),
        "phase": status["phase"],
        "reason": status["reason"],
        "message": status["message"],
        "attempts": status["attempts"],
        "pullRequest": status["pullRequest"],
        "deletedKept": !status["deleted"].is_null(),
        "history": history,
    })
}

/// A record's conditions as `type → "reason: message"`; null without any.
fn evidence(status: &Value) -> Value {
    let Some(conditions) = status["conditions"].as_array().filter(|c| !c.is_empty()) else {
        return Value::Null;
    };
    let mut out = serde_json::Map::new();
    for c in conditions {
        let (Some(t), reason, message) = (
            c["type"].as_str(),
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or(""),
        ) else {
            continue;
        };
        let text = match (reason.is_empty(), message.is_empty()) {
            (false, false) => format!("{reason}: {message}"),
            (false, true) => reason.to_string(),
            _ => message.to_string(),
        };
        out.insert(t.to_string(), text.into());
    }
    Value::Object(out)
}

/// Lists Remediation records through the Kubernetes API.
#[derive(Clone)]
pub struct KubeRecords {
    api: kube::Api<kube::api::DynamicObject>,
}

impl std::fmt::Debug for KubeRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeRecords")
    }
}

impl KubeRecords {
    pub fn new(client: kube::Client) -> KubeRecords {
        let ar = kube::api::ApiResource {
            group: "heal8s.io".into(),
            version: "v1alpha1".into(),
            api_version: "heal8s.io/v1alpha1".into(),
            kind: "Remediation".into(),
            plural: "remediations".into(),
        };
        KubeRecords {
            api: kube::Api::all_with(client, &ar),
        }
    }
}

#[async_trait]
impl RecordSource for KubeRecords {
    async fn list(&self, limit: usize) -> Result<Vec<Value>, String> {
        let lp = kube::api::ListParams::default().limit(u32::try_from(limit).unwrap_or(u32::MAX));
        let list = tokio::time::timeout(std::time::Duration::from_secs(10), self.api.list(&lp))
            .await
            .map_err(|_| "the Kubernetes API did not answer within 10s".to_string())?
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 404 => {
                    "the Remediation CRD is not installed (`heal8s crd | kubectl apply -f -`)"
                        .to_string()
                }
                kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
                other => other.to_string(),
            })?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_shows_its_conditions_as_evidence_and_never_its_kept_manifest() {
        let r = json!({
            "metadata": {"name": "delete-pod-pod-api-1-abc", "namespace": "shop"},
            "spec": {"remediation": "delete-pod", "target": {"kind": "Pod", "name": "api-1"}},
            "status": {"phase": "Succeeded", "finishedAt": "2026-12-07T10:00:00Z",
                "conditions": [
                    {"type": "Acted", "status": "True", "reason": "Deleted", "message": "deleted pod shop/api-1"},
                    {"type": "Verified", "status": "True", "reason": "Recovered", "lastTransitionTime": "x"}
                ],
                "deleted": {"manifest": {"kind": "Pod", "spec": {"containers": []}}}}
        });
        let s = summary(&r);
        assert_eq!(s["evidence"]["Acted"], "Deleted: deleted pod shop/api-1");
        assert_eq!(s["evidence"]["Verified"], "Recovered");
        assert_eq!(s["deletedKept"], true);
        assert!(!s.to_string().contains("containers"), "{s}");
        assert_eq!(s["updated"], "2026-12-07T10:00:00Z");
        assert!(summary(&json!({"status": {}}))["evidence"].is_null());
    }
}
