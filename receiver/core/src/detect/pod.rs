//! Pod detector: crash loops, image/config errors, unhealthy running pods (the
//! Pod Cleaner case), OOM kills, and pods stuck Pending or Unschedulable.
//!
//! Pure: a `Pod` and the time in, findings out. Also the "is it still broken?"
//! re-check executors run on the live pod before acting.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use super::config::{Overrides, Profile};
use super::pod_view::PodView;
use super::{Detector, DetectorSpec, Finding, Object, Watched, age, at_least, namespace};
use crate::duration::PromDuration;
use crate::signal::Evidence;
use crate::target::{Target, TargetKind};

/// Pod detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodDetector {
    pub enabled: bool,
    /// A crash-looping container is signalled from this many restarts.
    pub restart_threshold: u32,
    /// Image pull and config errors, and waiting containers of running pods,
    /// are signalled after this long.
    pub waiting_after: PromDuration,
    /// Pods Pending this long are signalled.
    pub pending_after: PromDuration,
    /// Pods Unschedulable this long are signalled.
    pub unschedulable_after: PromDuration,
    /// Only pods in namespaces matching these patterns (`*` wildcards); empty = all.
    pub namespaces: Vec<String>,
}

impl DetectorSpec for PodDetector {
    const KEY: &'static str = "pods";

    fn defaults(_profile: Profile) -> PodDetector {
        PodDetector {
            enabled: true,
            restart_threshold: 3,
            waiting_after: PromDuration::secs(5 * 60),
            pending_after: PromDuration::secs(15 * 60),
            unschedulable_after: PromDuration::secs(5 * 60),
            namespaces: Vec::new(),
        }
    }

    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        at_least(&mut out, "waitingAfter", self.waiting_after, 1);
        at_least(&mut out, "pendingAfter", self.pending_after, 1);
        at_least(&mut out, "unschedulableAfter", self.unschedulable_after, 1);
        if self.restart_threshold == 0 {
            out.push(("restartThreshold".into(), "must be at least 1".into()));
        }
        namespace::check_patterns(&mut out, "namespaces", &self.namespaces);
        out
    }

    fn apply(&mut self, o: &Overrides) {
        if !o.namespaces.is_empty() {
            self.namespaces.clone_from(&o.namespaces);
        }
    }
}

impl Detector for PodDetector {
    fn name(&self) -> &'static str {
        "pods"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn watches(&self) -> Vec<Watched> {
        vec![Watched::Pods]
    }

    fn detect(&self, o: Object<'_>, now: Timestamp) -> Vec<Finding> {
        match o {
            Object::Pod(p) => detect_view(p, self, now),
            _ => Vec::new(),
        }
    }
}


/// Waiting reasons that mean the image or the container config is wrong.
pub const IMAGE_OR_CONFIG_ERRORS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
];

/// Waiting reasons that are part of a normal start.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// How long after an OOM kill it is still signalled.
pub const OOM_RECENT: Duration = Duration::from_secs(3600);

/// The evidence detail naming the pod's controller, `Kind/name` (e.g.
/// `ReplicaSet/api-7d9c`): lets the guard count a pod against its workload
/// before anything is read from the cluster.
pub const CONTROLLER_DETAIL: &str = "controller";

/// When the pod's containers stopped being ready, else when it started, else when it was created.
fn unhealthy_since(pod: &PodView, now: Timestamp) -> Timestamp {
    pod.containers_not_ready_since
        .or(pod.started)
        .or(pod.created)
        .unwrap_or(now)
}

/// Everything the detector finds wrong with `pod` at `now`.
pub fn detect(pod: &Pod, cfg: &PodDetector, now: Timestamp) -> Vec<Finding> {
    detect_view(&PodView::of(pod), cfg, now)
}

/// Everything the detector finds wrong with the pod `pod` shows, at `now`.
pub fn detect_view(pod: &PodView, cfg: &PodDetector, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let (Some(ns), Some(name)) = (pod.namespace.as_deref(), pod.name.as_deref()) else {
        return out;
    };
    if pod.deleting {
        return out;
    }
    if !cfg.namespaces.is_empty() && !namespace::matches_any(&cfg.namespaces, ns) {
        return out;
    }
    let phase = pod.phase.as_deref().unwrap_or("");
    let node = pod.node.as_deref().map(str::to_string);
    let target = |container: Option<&str>| Target {
        kind: TargetKind::Pod,
        namespace: Some(ns.to_string()),
        name: name.to_string(),
        container: container.map(str::to_string),
        node: node.clone(),
        uid: pod.uid.as_deref().map(str::to_string),
    };
    let since = unhealthy_since(pod, now);
    let waited = age(now, since);

    for cs in pod.containers.iter() {
        let evidence = |reason: &str| Evidence {
            reason: Some(reason.to_string()),
            restart_count: u32::try_from(cs.restart_count).ok(),
            ..Evidence::default()
        };
        if let Some(w) = &cs.waiting {
            let reason = w.as_deref().unwrap_or("Waiting");
            let restarts = u32::try_from(cs.restart_count).unwrap_or(0);
            if reason == "CrashLoopBackOff" && restarts >= cfg.restart_threshold {
                out.push(Finding {
                    name: "Heal8sPodCrashLooping",
                    detector: "pods",
                    target: target(Some(&cs.name)),
                    reason: reason.to_string(),
                    since,
                    evidence: evidence(reason),
                    summary: format!(
                        "container {} of pod {ns}/{name} is crash looping ({restarts} restarts)",
                        cs.name
                    ),
                });
            } else if IMAGE_OR_CONFIG_ERRORS.contains(&reason) && waited >= cfg.waiting_after.get()
            {
                out.push(Finding {
                    name: "Heal8sContainerWaiting",
                    detector: "pods",
                    target: target(Some(&cs.name)),
                    reason: reason.to_string(),
                    since,
                    evidence: evidence(reason),
                    summary: format!(
                        "container {} of pod {ns}/{name} has been waiting in {reason}",
                        cs.name
                    ),
                });
            } else if phase == "Running"
                && reason != "CrashLoopBackOff"
                && !STARTING.contains(&reason)
                && waited >= cfg.waiting_after.get()
            {
                out.push(unhealthy(
                    target(Some(&cs.name)),
                    since,
                    evidence(reason),
                    reason,
                    ns,
                    name,
                ));
            }
        } else if let Some(term) = &cs.terminated
            && phase == "Running"
            && term.exit_code != 0
        {
            let reason = term.reason.as_deref().unwrap_or("Error");
            let mut ev = evidence(reason);
            ev.details
                .insert("exitCode".into(), term.exit_code.to_string());
            let since = term.finished.unwrap_or(since);
            out.push(unhealthy(
                target(Some(&cs.name)),
                since,
                ev,
                reason,
                ns,
                name,
            ));
        }
        let oom = [cs.last_terminated.as_ref(), cs.terminated.as_ref()]
            .into_iter()
            .flatten()
            .filter(|t| t.reason.as_deref() == Some("OOMKilled"))
            .filter_map(|t| t.finished)
            .max();
        if let Some(at) = oom
            && age(now, at) <= OOM_RECENT
        {
            let mut ev = evidence("OOMKilled");
            ev.details.insert("lastOOMKill".into(), at.to_string());
            out.push(Finding {
                name: "Heal8sContainerOOMKilled",
                detector: "pods",
                target: target(Some(&cs.name)),
                reason: "OOMKilled".into(),
                since: at,
                evidence: ev,
                summary: format!(
                    "container {} of pod {ns}/{name} was OOM-killed at {at}",
                    cs.name
                ),
            });
        }
    }

    if phase == "Pending" && !out.iter().any(|f| f.name != "Heal8sContainerOOMKilled") {
        if let Some(c) = &pod.unschedulable {
            let since = c.since.unwrap_or(since);
            if age(now, since) >= cfg.unschedulable_after.get() {
                out.push(Finding {
                    name: "Heal8sPodUnschedulable",
                    detector: "pods",
                    target: target(None),
                    reason: "Unschedulable".into(),
                    since,
                    evidence: Evidence {
                        reason: Some("Unschedulable".into()),
                        details: c
                            .message
                            .iter()
                            .map(|m| ("message".to_string(), m.to_string()))
                            .collect(),
                        ..Evidence::default()
                    },
                    summary: format!("pod {ns}/{name} cannot be scheduled"),
                });
            }
        } else if let Some(c) = pod.created
            && age(now, c) >= cfg.pending_after.get()
        {
            out.push(Finding {
                name: "Heal8sPodPending",
                detector: "pods",
                target: target(None),
                reason: "Pending".into(),
                since: c,
                evidence: Evidence {
                    reason: Some("Pending".into()),
                    ..Evidence::default()
                },
                summary: format!("pod {ns}/{name} has been Pending since {c}"),
            });
        }
    }
    if let Some((kind, name)) = &pod.controller {
        let c = format!("{kind}/{name}");
        for f in &mut out {
            f.evidence
                .details
                .insert(CONTROLLER_DETAIL.to_string(), c.clone());
        }
    }
    out
}

fn unhealthy(
    target: Target,
    since: Timestamp,
    evidence: Evidence,
    reason: &str,
    ns: &str,
    name: &str,
) -> Finding {
    let container = target.container.clone().unwrap_or_default();
    Finding {
        name: "Heal8sPodUnhealthy",
        detector: "pods",
        target,
        reason: reason.to_string(),
        since,
        evidence,
        summary: format!("pod {ns}/{name} is Running but container {container} is {reason}"),
    }
}

/// Whether the live pod is still broken, with the reason; `None` when it is healthy.
/// Looser than `detect` (no thresholds; an OOM kill within the last hour counts):
/// used to re-check a signal before acting.
pub fn still_broken(pod: &Pod, now: Timestamp) -> Option<String> {
    let pod = PodView::of(pod);
    if pod.deleting {
        return None;
    }
    let relaxed = PodDetector {
        enabled: true,
        restart_threshold: 1,
        waiting_after: crate::duration::PromDuration::default(),
        pending_after: crate::duration::PromDuration::default(),
        unschedulable_after: crate::duration::PromDuration::default(),
        namespaces: Vec::new(),
    };
    if let Some(f) = detect_view(&pod, &relaxed, now).into_iter().next() {
        return Some(f.summary);
    }
    match pod.phase.as_deref() {
        Some("Failed") => return Some("pod phase is Failed".into()),
        Some("Unknown") => return Some("pod phase is Unknown".into()),
        Some("Succeeded") => return None,
        _ => {}
    }
    if pod.not_ready {
        return Some("pod is not Ready".into());
    }
    let restarting = pod
        .containers
        .iter()
        .find(|cs| cs.waiting.as_ref().and_then(|w| w.as_deref()) == Some("CrashLoopBackOff"));
    restarting.map(|cs| format!("container {} is in CrashLoopBackOff", cs.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detectors;
    use crate::detect::config::Profile;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn cfg() -> PodDetector {
        Detectors::for_profile(Profile::Production).pods
    }

    fn mk_pod(phase: &str, statuses: serde_json::Value, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "api-1", "namespace": "shop", "uid": "u-1",
                         "creationTimestamp": t(0).to_string()},
            "spec": {"nodeName": "worker-1", "containers": [{"name": "api"}]},
            "status": {"phase": phase, "startTime": t(0).to_string(),
                       "containerStatuses": statuses, "conditions": conditions}
        }))
        .unwrap()
    }

    fn waiting(reason: &str, restarts: i32) -> serde_json::Value {
        json!([{"name": "api", "image": "i", "imageID": "", "ready": false,
                "restartCount": restarts, "state": {"waiting": {"reason": reason}}}])
    }

    fn names(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.name).collect()
    }

    #[test]
    fn crashloop_over_the_restart_threshold_is_found() {
        let p = mk_pod("Running", waiting("CrashLoopBackOff", 3), json!([]));
        let f = detect(&p, &cfg(), t(600));
        assert_eq!(names(&f), ["Heal8sPodCrashLooping"]);
        assert_eq!(f[0].target.container.as_deref(), Some("api"));
        assert_eq!(f[0].target.node.as_deref(), Some("worker-1"));
        assert_eq!(f[0].target.uid.as_deref(), Some("u-1"));
        assert_eq!(f[0].evidence.restart_count, Some(3));
    }

    #[test]
    fn crashloop_under_the_threshold_is_not() {
        let p = mk_pod("Running", waiting("CrashLoopBackOff", 2), json!([]));
        assert!(detect(&p, &cfg(), t(600)).is_empty());
    }

    #[test]
    fn image_pull_errors_are_found_after_the_waiting_threshold() {
        let p = mk_pod("Pending", waiting("ImagePullBackOff", 0), json!([]));
        assert!(detect(&p, &cfg(), t(60)).is_empty());
        assert_eq!(
            names(&detect(&p, &cfg(), t(301))),
            ["Heal8sContainerWaiting"]
        );
    }

    #[test]
    fn running_pod_with_a_dead_container_is_unhealthy() {
        let p = mk_pod(
            "Running",
            json!([{"name": "sidecar", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": t(10).to_string()}}}]),
            json!([]),
        );
        let f = detect(&p, &cfg(), t(20));
        assert_eq!(names(&f), ["Heal8sPodUnhealthy"]);
        assert_eq!(f[0].evidence.details["exitCode"], "137");
        // exit code 0 is a finished sidecar, not a problem
        let ok = mk_pod(
            "Running",
            json!([{"name": "init", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0}}}]),
            json!([]),
        );
        assert!(detect(&ok, &cfg(), t(20)).is_empty());
    }

    #[test]
    fn recent_oom_kill_is_found_and_old_one_is_not() {
        let statuses = json!([{"name": "api", "image": "i", "imageID": "", "ready": true, "restartCount": 1,
            "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": t(100).to_string()}}}]);
        let p = mk_pod("Running", statuses, json!([]));
        let f = detect(&p, &cfg(), t(200));
        assert_eq!(names(&f), ["Heal8sContainerOOMKilled"]);
        assert_eq!(f[0].since, t(100));
        assert!(detect(&p, &cfg(), t(100 + 3601)).is_empty());
    }

    #[test]
    fn pending_and_unschedulable_after_their_thresholds() {
        let p = mk_pod("Pending", json!([]), json!([]));
        assert!(detect(&p, &cfg(), t(60)).is_empty());
        assert_eq!(names(&detect(&p, &cfg(), t(15 * 60))), ["Heal8sPodPending"]);
        let u = mk_pod(
            "Pending",
            json!([]),
            json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/3 nodes are available", "lastTransitionTime": t(0).to_string()}]),
        );
        assert!(detect(&u, &cfg(), t(60)).is_empty());
        let f = detect(&u, &cfg(), t(300));
        assert_eq!(names(&f), ["Heal8sPodUnschedulable"]);
        assert_eq!(f[0].evidence.details["message"], "0/3 nodes are available");
    }

    #[test]
    fn terminating_pods_and_other_namespaces_are_ignored() {
        let mut p = mk_pod("Running", waiting("CrashLoopBackOff", 9), json!([]));
        let mut c = cfg();
        c.namespaces = vec!["test-*".into()];
        assert!(detect(&p, &c, t(600)).is_empty());
        p.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(1)));
        assert!(detect(&p, &cfg(), t(600)).is_empty());
    }

    #[test]
    fn recheck_sees_recovery() {
        let broken = mk_pod("Running", waiting("CrashLoopBackOff", 1), json!([]));
        assert!(still_broken(&broken, t(1)).is_some());
        let healthy = mk_pod(
            "Running",
            json!([{"name": "api", "image": "i", "imageID": "", "ready": true, "restartCount": 5,
                    "state": {"running": {}}}]),
            json!([{"type": "Ready", "status": "True"}]),
        );
        assert_eq!(still_broken(&healthy, t(1)), None);
        let failed = mk_pod("Failed", json!([]), json!([]));
        assert!(still_broken(&failed, t(1)).is_some());
    }
}
