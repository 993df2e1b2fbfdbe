//! `Plan`: the concrete remediation of one target, with its parameters, mode and trigger.
//!
//! Owns: building a plan from a signal and a route. The live cluster completes it
//! (owner workload) through `act::Facts`; nothing here does IO.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::policy::Route;
use crate::remediation::{Mode, Remediation, RemediationKind, TargetMismatch};
use crate::signal::{Evidence, Signal, SourceKind};
use crate::target::Target;

/// What set a plan off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// `alert` or `detector`.
    pub source: SourceKind,
    /// The alert or detector name.
    pub name: String,
    pub fingerprint: String,
    pub first_seen: Timestamp,
    /// The signal's labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The alert's `generatorURL` (its source), as sent: untrusted, checked
    /// where it is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    /// The alert's `runbook_url` annotation, as sent: untrusted, checked
    /// where it is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    /// The signal's trace (its receive span): every span of the plan is part
    /// of it, and the record, pull request and logs name its trace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceContext>,
}

/// Longest link a plan keeps. Pull requests show links of at most 2048
/// characters; a longer one is cut just past that, so it stays small in
/// memory and is still refused as too long where it would be shown.
const MAX_LINK: usize = 2049;

/// A non-empty link, cut to [`MAX_LINK`] bytes (on a character boundary).
fn link(u: &str) -> Option<String> {
    if u.is_empty() {
        return None;
    }
    let mut end = u.len().min(MAX_LINK);
    while !u.is_char_boundary(end) {
        end -= 1;
    }
    Some(u[..end].to_string())
}

/// The workload that owns a target (a pod's Deployment, StatefulSet, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl WorkloadRef {
    /// `Deployment/shop/api`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind,
            self.namespace.as_deref().unwrap_or("-"),
            self.name
        )
    }
}

/// One concrete remediation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The route that chose it.
    pub route: String,
    #[serde(flatten)]
    pub remediation: Remediation,
    /// The mode from the route (the guard may still turn it into a dry run).
    pub mode: Mode,
    /// The object acted on; `None` only for notify-only without a target.
    pub target: Option<Target>,
    /// The owning workload, once the live cluster told us.
    pub workload: Option<WorkloadRef>,
    pub trigger: Trigger,
    pub evidence: Evidence,
    /// A plan of a route in mode `approve`: what heal8s asked a person to
    /// approve, and, once approved, who did (`None` for other plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// A request for approval (mode `approve`) and, once given, the approval.
/// heal8s writes the request into the record's status (which only it may
/// write); a person's approval comes from the record's `spec.approval`,
/// written by `heal8s approve` with the name the API server says they have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// When heal8s asked; also names the request (`spec.approval.request`).
    pub requested_at: Timestamp,
    /// When the request expires (`guard.approval.ttl` after it was made).
    pub expires_at: Timestamp,
    /// The target's UID when the plan was made: an approval is for that object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// A pod target's node when the plan was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Who approved (the API server's name for them), once someone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When they approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Timestamp>,
}

impl Approval {
    /// The request's name, as `heal8s approve` copies it into `spec.approval.request`.
    pub fn request(&self) -> String {
        self.requested_at.to_string()
    }
}

impl Plan {
    /// Build the plan `route` makes for `signal`, or say why the signal does not fit it.
    pub fn build(signal: &Signal, route: &Route) -> Result<Plan, TargetMismatch> {
        let target = route.remediation.target_for(signal)?;
        Ok(Plan {
            route: route.name.clone(),
            remediation: route.remediation.clone(),
            mode: route.mode,
            target,
            workload: None,
            trigger: Trigger {
                source: signal.source.kind(),
                name: signal.name().to_string(),
                fingerprint: signal.fingerprint.clone(),
                first_seen: signal.first_seen,
                labels: signal.labels.clone(),
                generator_url: match &signal.source {
                    crate::signal::Source::Alert { generator_url, .. } => link(generator_url),
                    crate::signal::Source::Detector { .. } => None,
                },
                runbook_url: signal.annotations.get("runbook_url").and_then(|u| link(u)),
                trace: signal.trace,
            },
            evidence: signal.evidence.clone(),
            approval: None,
        })
    }

    /// Who approved the plan (mode `approve`), once someone did.
    pub fn approved_by(&self) -> Option<&str> {
        self.approval
            .as_ref()
            .and_then(|a| a.approved_by.as_deref())
    }

    /// What the plan does, as a sentence fragment: "delete Pod shop/api-1".
    pub fn describe(&self) -> String {
        let target = match &self.target {
            None => "(no target)".to_string(),
            // a pod is deleted or evicted whole, whatever container the signal named
            Some(t) if self.remediation.whole_pod() => Target {
                container: None,
                ..t.clone()
            }
            .to_string(),
            Some(t) => t.to_string(),
        };
        self.remediation.describe(&target)
    }

    /// The remediation's name.
    pub fn kind(&self) -> RemediationKind {
        self.remediation.kind()
    }

    /// The namespace the plan touches; `None` for cluster-scoped targets.
    pub fn namespace(&self) -> Option<&str> {
        let t = self.target.as_ref()?;
        match t.kind {
            crate::target::TargetKind::Namespace => Some(t.name.as_str()),
            _ => t.namespace.as_deref(),
        }
    }

    /// The key cooldowns, workload budgets and escalation count against: the
    /// owning workload when known (a recreated pod has a new name), else the target.
    pub fn workload_key(&self) -> String {
        match (&self.workload, &self.target) {
            (Some(w), _) => w.key(),
            (None, Some(t)) => t.key(),
            (None, None) => format!("signal/{}", self.trigger.fingerprint),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::policy::Policy;
    use crate::testutil::signal;

    #[test]
    fn an_alerts_source_and_runbook_links_travel_with_its_plan() {
        let p = Policy::from_yaml(
            "routes: [{name: oom, matchers: ['alertname=\"X\"'], remediation: bump-memory, mode: pull-request}]",
        )
        .unwrap();
        let mut s = signal(&[("alertname", "X"), ("namespace", "shop"), ("pod", "web-1")]);
        let plan = Plan::build(&s, &p.routes[0]).unwrap();
        assert_eq!(
            (plan.trigger.generator_url, plan.trigger.runbook_url),
            (None, None)
        );
        if let crate::signal::Source::Alert { generator_url, .. } = &mut s.source {
            *generator_url = "http://prometheus:9090/graph?g0.expr=x".into();
        }
        s.annotations.insert(
            "runbook_url".into(),
            format!("https://runbooks.example/{}", "é".repeat(5000)),
        );
        let plan = Plan::build(&s, &p.routes[0]).unwrap();
        assert_eq!(
            plan.trigger.generator_url.as_deref(),
            Some("http://prometheus:9090/graph?g0.expr=x")
        );
        let runbook = plan.trigger.runbook_url.unwrap();
        assert!(runbook.starts_with("https://runbooks.example/é"));
        assert!(
            runbook.len() <= MAX_LINK && runbook.len() > 2048,
            "{}",
            runbook.len()
        );
    }
}
