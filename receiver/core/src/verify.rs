//! Recovery verification, decided: what one look at a target says
//! ([`Health`]), how a workload's status reads as health, and the stability
//! window that turns a run of looks into a verdict ([`Stability`]).
//!
//! Owns: every rule about when heal8s may say "recovered". Pure: the
//! verifier in receiver-k8s reads the objects and feeds the looks in with
//! their time; nothing here does IO.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use crate::duration::PromDuration;
use crate::outcome::{Verification, VerifyResult};

/// What one look at a target said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Healthy now; `restarts` is the container restart total of its pods
    /// (a rise means it crashed again).
    Healthy { evidence: String, restarts: u64 },
    /// Not healthy now.
    Unhealthy(String),
    /// The object a deletion was meant to remove is gone: done.
    Gone(String),
    /// Nothing heal8s can read says whether it recovered.
    Unknowable(String),
}

/// The API group and version through which heal8s reads the status of an
/// owner of `kind`, for the kinds whose status it understands (see
/// [`workload_health`]); built-in kinds as [`crate::target::known_kind`] serves them.
pub fn owner_api(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            crate::target::known_kind(kind).map(|k| (k.group, k.version))
        }
        // Argo Rollouts: a custom resource, not a Kubernetes kind
        "Rollout" => Some(("argoproj.io", "v1alpha1")),
        _ => None,
    }
}

fn num(o: &serde_json::Value, pointer: &str) -> Option<i64> {
    o.pointer(pointer).and_then(serde_json::Value::as_i64)
}

/// How a workload's own status reads (the object as JSON), for an owner of
/// `kind` in `ns`; `restarts` is the restart total of its pods.
pub fn workload_health(kind: &str, ns: &str, o: &serde_json::Value, restarts: u64) -> Health {
    let name = o
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("?");
    let healthy = |evidence: String| Health::Healthy { evidence, restarts };
    match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" | "Rollout" => {
            let ready = num(o, "/status/readyReplicas").unwrap_or(0);
            let want = num(o, "/spec/replicas").unwrap_or(1);
            let msg = format!("{kind} {ns}/{name} has {ready}/{want} ready replicas");
            if ready >= want {
                healthy(msg)
            } else {
                Health::Unhealthy(msg)
            }
        }
        "DaemonSet" => {
            let ready = num(o, "/status/numberReady").unwrap_or(0);
            let want = num(o, "/status/desiredNumberScheduled").unwrap_or(1);
            let msg = format!("DaemonSet {ns}/{name} has {ready}/{want} ready pods");
            if ready >= want {
                healthy(msg)
            } else {
                Health::Unhealthy(msg)
            }
        }
        "Job" => {
            let conditions = o
                .pointer("/status/conditions")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            let holds = |t: &str| {
                conditions
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            let succeeded = num(o, "/status/succeeded").unwrap_or(0);
            let completions = num(o, "/spec/completions").unwrap_or(1);
            let ready = num(o, "/status/ready").unwrap_or(0);
            if holds("Failed") {
                Health::Unhealthy(format!("Job {ns}/{name} failed"))
            } else if holds("Complete") || succeeded >= completions {
                healthy(format!(
                    "Job {ns}/{name} completed ({succeeded}/{completions})"
                ))
            } else if ready > 0 {
                healthy(format!("Job {ns}/{name} has {ready} ready pod(s) running"))
            } else {
                Health::Unhealthy(format!("Job {ns}/{name} has no ready pod"))
            }
        }
        other => Health::Unknowable(format!("heal8s cannot read whether a {other} recovered")),
    }
}

/// The container restart total of `pods` (init containers included), as
/// [`crate::detect::pod_view::PodView::restarts`] counts it in the pod cache.
pub fn restarts<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> u64 {
    pods.into_iter()
        .map(|p| crate::detect::pod_view::PodView::of(p).restarts())
        .sum()
}

/// The signal name of a node that stayed down after heal8s drained it: a
/// policy routes it to `delete-node` where that is enabled (so the machine
/// controller replaces the node), like any other signal through the guard.
pub const NODE_STILL_DOWN: &str = "Heal8sNodeStillDownAfterDrain";

/// The signal a drain verified as `StillDown` raises, `None` for any other
/// verification.
pub fn still_down_signal(
    plan: &crate::plan::Plan,
    v: &Verification,
    now: Timestamp,
) -> Option<crate::signal::Signal> {
    if v.result != VerifyResult::StillDown {
        return None;
    }
    let target = plan.target.clone()?;
    let finding = crate::detect::Finding {
        name: NODE_STILL_DOWN,
        detector: "nodes",
        target,
        reason: "StillDownAfterDrain".into(),
        since: now,
        evidence: crate::signal::Evidence {
            reason: Some("StillDownAfterDrain".into()),
            ..crate::signal::Evidence::default()
        },
        summary: v.message.clone(),
    };
    Some(finding.to_signal(crate::alertmanager::AlertStatus::Firing, now))
}

/// Turns looks at a target into a verdict: recovered only once it has been
/// healthy, without a new restart, for `stable_for`.
#[derive(Debug, Clone)]
pub struct Stability {
    stable_for: Duration,
    /// Since when it has looked healthy, and its restart total then.
    since: Option<(Timestamp, u64)>,
    last: String,
}

impl Stability {
    /// A verdict-in-waiting requiring `stable_for` of health.
    pub fn new(stable_for: Duration) -> Stability {
        Stability {
            stable_for,
            since: None,
            last: "not looked at yet".into(),
        }
    }

    /// Take one look at `now`; a verdict once there is one.
    pub fn observe(&mut self, now: Timestamp, health: Health) -> Option<Verification> {
        match health {
            Health::Gone(evidence) => Some(Verification {
                result: VerifyResult::Recovered,
                message: evidence,
            }),
            Health::Unknowable(why) => Some(Verification {
                result: VerifyResult::Unverified,
                message: why,
            }),
            Health::Unhealthy(why) => {
                self.since = None;
                self.last = why;
                None
            }
            Health::Healthy { evidence, restarts } => {
                let since = match self.since {
                    Some((at, before)) if restarts <= before => at,
                    Some(_) => {
                        self.last = format!("{evidence}, but a container restarted again");
                        self.since = Some((now, restarts));
                        return None;
                    }
                    None => {
                        self.since = Some((now, restarts));
                        now
                    }
                };
                let held = now.duration_since(since).unsigned_abs();
                if held >= self.stable_for {
                    return Some(Verification {
                        result: VerifyResult::Recovered,
                        message: format!(
                            "{evidence}, healthy for {} without a restart",
                            PromDuration(Duration::from_secs(held.as_secs()))
                        ),
                    });
                }
                self.last = format!(
                    "{evidence}, healthy for {}s of the {} required",
                    held.as_secs(),
                    PromDuration(self.stable_for)
                );
                None
            }
        }
    }

    /// Whether to give up at `now`: past `deadline` and not healthy, or past
    /// `deadline` plus the window (a target healthy at the deadline may finish
    /// its window).
    pub fn expired(&self, now: Timestamp, deadline: Timestamp) -> bool {
        let window = jiff::SignedDuration::try_from(self.stable_for).unwrap_or_default();
        match self.since {
            None => now >= deadline,
            Some(_) => now >= deadline.checked_add(window).unwrap_or(deadline),
        }
    }

    /// The verdict when giving up.
    pub fn give_up(&self, budget: Duration) -> Verification {
        Verification {
            result: VerifyResult::NotRecovered,
            message: format!(
                "not recovered within {} ({})",
                PromDuration(Duration::from_secs(budget.as_secs())),
                self.last
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn ok(restarts: u64) -> Health {
        Health::Healthy {
            evidence: "Deployment shop/api has 1/1 ready replicas".into(),
            restarts,
        }
    }

    #[test]
    fn a_moment_of_health_is_not_a_recovery() {
        let mut s = Stability::new(Duration::from_secs(60));
        assert_eq!(s.observe(t(0), ok(0)), None);
        assert_eq!(s.observe(t(2), ok(0)), None);
        // ready for 2 s, then crashing again
        assert_eq!(s.observe(t(3), Health::Unhealthy("0/1 ready".into())), None);
        assert_eq!(s.observe(t(30), ok(1)), None);
        assert_eq!(s.observe(t(89), ok(1)), None);
        let v = s.observe(t(90), ok(1)).unwrap();
        assert_eq!(v.result, VerifyResult::Recovered);
        assert!(v.message.contains("healthy for 1m"), "{}", v.message);
    }

    #[test]
    fn a_new_restart_starts_the_window_over() {
        let mut s = Stability::new(Duration::from_secs(60));
        assert_eq!(s.observe(t(0), ok(3)), None);
        assert_eq!(s.observe(t(50), ok(4)), None, "restarted at 50s");
        assert_eq!(s.observe(t(100), ok(4)), None);
        assert_eq!(
            s.observe(t(110), ok(4)).map(|v| v.result),
            Some(VerifyResult::Recovered)
        );
    }

    #[test]
    fn giving_up_waits_for_a_window_that_started_before_the_deadline() {
        let mut s = Stability::new(Duration::from_secs(60));
        assert!(!s.expired(t(10), t(100)));
        assert!(
            s.expired(t(100), t(100)),
            "never healthy: give up at the deadline"
        );
        s.observe(t(90), ok(0));
        assert!(!s.expired(t(120), t(100)));
        assert!(s.expired(t(160), t(100)));
        let v = s.give_up(Duration::from_secs(100));
        assert_eq!(v.result, VerifyResult::NotRecovered);
    }

    #[test]
    fn unknown_owners_are_unverified_not_recovered() {
        let mut s = Stability::new(Duration::from_secs(60));
        let h = workload_health("CloneSet", "shop", &json!({}), 0);
        assert_eq!(
            s.observe(t(0), h).map(|v| v.result),
            Some(VerifyResult::Unverified)
        );
    }

    #[test]
    fn workload_status_reads() {
        let dep = json!({"metadata": {"name": "api"}, "spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        assert!(matches!(
            workload_health("Deployment", "shop", &dep, 0),
            Health::Unhealthy(_)
        ));
        let dep = json!({"metadata": {"name": "api"}, "spec": {"replicas": 2}, "status": {"readyReplicas": 2}});
        assert!(matches!(
            workload_health("Deployment", "shop", &dep, 0),
            Health::Healthy { .. }
        ));
        let ro = json!({"metadata": {"name": "r"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 1}});
        assert!(matches!(
            workload_health("Rollout", "shop", &ro, 0),
            Health::Unhealthy(_)
        ));
        let job = json!({"metadata": {"name": "j"}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert!(matches!(
            workload_health("Job", "shop", &job, 0),
            Health::Unhealthy(_)
        ));
        let job = json!({"metadata": {"name": "j"}, "status": {"ready": 0, "active": 1}});
        assert!(matches!(
            workload_health("Job", "shop", &job, 0),
            Health::Unhealthy(_)
        ));
        let job = json!({"metadata": {"name": "j"}, "spec": {"completions": 1}, "status": {"succeeded": 1}});
        assert!(matches!(
            workload_health("Job", "shop", &job, 0),
            Health::Healthy { .. }
        ));
        let ds = json!({"metadata": {"name": "d"}, "status": {"numberReady": 3, "desiredNumberScheduled": 3}});
        assert!(matches!(
            workload_health("DaemonSet", "shop", &ds, 0),
            Health::Healthy { .. }
        ));
        assert_eq!(owner_api("Rollout"), Some(("argoproj.io", "v1alpha1")));
        assert_eq!(owner_api("CloneSet"), None);
        assert_eq!(owner_api("ReplicaSet"), Some(("apps", "v1")));
        assert_eq!(owner_api("Job"), Some(("batch", "v1")));
        // an HPA or a CronJob has no status that reads as health
        assert_eq!(owner_api("HorizontalPodAutoscaler"), None);
        assert_eq!(owner_api("CronJob"), None);
    }

    #[test]
    fn deletions_are_done_when_the_object_is_gone() {
        let mut s = Stability::new(Duration::from_secs(60));
        assert_eq!(
            s.observe(t(0), Health::Gone("namespace e2e-1 is gone".into()))
                .map(|v| v.result),
            Some(VerifyResult::Recovered)
        );
    }
}
