//! The live re-check before an action: does the condition that triggered it
//! still hold on the object as the cluster has it now? For a declarative fix,
//! is its evidence still there (an OOM kill for bump-memory, an HPA at its
//! ceiling for scale-up, a recent rollout with an earlier image for
//! rollback-image); for a node, is it still unhealthy; for a namespace, is it
//! old enough and not already going; for a cleanup, is the object still
//! stuck, failed or stale; for a Service without ready endpoints or a stuck
//! rollout (the services and rollouts detectors' signals), is it still so.
//!
//! Pure: k8s-openapi objects and plain data in, a `LiveState` (with a sentence)
//! out. The reads happen in receiver-k8s (`facts`); nothing here does IO.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ContainerStatus, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::duration::PromDuration;
use crate::facts::LiveState;

const OOM_KILLED: &str = "OOMKilled";

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("-"),
        meta.name.as_deref().unwrap_or("-")
    )
}

fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let s = pod.status.as_ref();
    s.and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            s.and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten(),
        )
}

/// When `cs` was OOM-killed, as far as its status says: its last termination
/// or its current state is `OOMKilled` (`Some(None)` when the time is unknown).
fn oom_kill(cs: &ContainerStatus) -> Option<Option<Timestamp>> {
    [
        cs.state.as_ref().and_then(|s| s.terminated.as_ref()),
        cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()),
    ]
    .into_iter()
    .flatten()
    .find(|t| t.reason.as_deref() == Some(OOM_KILLED))
    .map(|t| t.finished_at.as_ref().map(|f| f.0))
}

/// bump-memory's evidence on one pod: `container` (any container when `None`)
/// was OOM-killed, by its last termination or its current state.
pub fn oom_killed(pod: &Pod, container: Option<&str>) -> LiveState {
    oom_killed_in(
        std::slice::from_ref(pod),
        container,
        &format!("pod {}", name_of(&pod.metadata)),
    )
}

/// bump-memory's evidence on a workload: some pod of `pods` shows an OOM kill
/// of `container` (any container when `None`). `what` names the workload.
pub fn oom_killed_in(pods: &[Pod], container: Option<&str>, what: &str) -> LiveState {
    let wanted = |cs: &&ContainerStatus| container.is_none_or(|c| cs.name == c);
    for pod in pods {
        if let Some((cs, at)) = statuses(pod)
            .filter(wanted)
            .find_map(|cs| oom_kill(cs).map(|at| (cs, at)))
        {
            let at = at.map_or_else(|| "an unknown time".to_string(), |t| t.to_string());
            return LiveState::Holds(format!(
                "container {} of pod {} was OOM-killed at {at}",
                cs.name,
                name_of(&pod.metadata)
            ));
        }
    }
    let seen = pods
        .iter()
        .flat_map(statuses)
        .filter(wanted)
        .filter_map(|cs| {
            cs.last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.reason.clone())
        })
        .next();
    let last = match seen {
        Some(r) => format!(" (last termination: {r})"),
        None => String::new(),
    };
    LiveState::Cleared(match container {
        Some(c) => format!("container {c} of {what} shows no OOM kill{last}; no memory to raise"),
        None => format!("no container of {what} shows an OOM kill{last}; no memory to raise"),
    })
}

/// scale-up's evidence on an HPA: it runs at its ceiling
/// (`status.currentReplicas >= spec.maxReplicas`).
pub fn hpa_at_ceiling(hpa: &HorizontalPodAutoscaler) -> LiveState {
    let name = name_of(&hpa.metadata);
    let Some(max) = hpa.spec.as_ref().map(|s| s.max_replicas) else {
        return LiveState::Cleared(format!("HPA {name} has no spec; nothing to raise"));
    };
    let current = hpa
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    if current >= max {
        LiveState::Holds(format!("HPA {name} runs {current} of maxReplicas {max}"))
    } else {
        LiveState::Cleared(format!(
            "HPA {name} runs {current} of maxReplicas {max}, below its ceiling; nothing to raise"
        ))
    }
}

/// The live re-check of a plan on a node: a remediation holds while the node
/// is unhealthy (not Ready); a notify-only finding holds whatever its state
/// (`mutating` false), since it changes nothing.
pub fn node_state(node: &Node, mutating: bool) -> LiveState {
    let name = node.metadata.name.as_deref().unwrap_or("-");
    if crate::detect::node::is_unhealthy(node) || !mutating {
        LiveState::Holds(format!(
            "node {name} is Ready={}",
            crate::detect::node::ready_status(node).unwrap_or("absent")
        ))
    } else {
        LiveState::Cleared(format!("node {name} is Ready again"))
    }
}

/// The live re-check of a plan on a namespace: one already being deleted
/// needs nothing more; delete-namespace (`min_age` its `minAge`) never
/// deletes one younger than `min_age` at `now` (an unknown creation time is
/// no evidence of youth: the route's name pattern chose it).
pub fn namespace_state(ns: &Namespace, min_age: Option<PromDuration>, now: Timestamp) -> LiveState {
    let name = ns.metadata.name.as_deref().unwrap_or("-");
    let created = ns.metadata.creation_timestamp.as_ref().map(|c| c.0);
    if ns.metadata.deletion_timestamp.is_some() {
        LiveState::Cleared(format!("namespace {name} is already being deleted"))
    } else if let (Some(min_age), Some(c)) = (min_age, created)
        && crate::detect::age(now, c) < min_age.get()
    {
        LiveState::Cleared(format!("namespace {name} is younger than minAge {min_age}"))
    } else {
        LiveState::Holds(format!("namespace {name} exists"))
    }
}

/// One revision of a Deployment (its ReplicaSet), for the container concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// `deployment.kubernetes.io/revision`.
    pub number: u64,
    /// The container's image in that revision.
    pub image: String,
    /// When the revision's ReplicaSet was created: when it rolled out.
    pub created: Option<Timestamp>,
}

fn newest_first(revisions: &[Revision]) -> Vec<&Revision> {
    let mut r: Vec<&Revision> = revisions.iter().collect();
    r.sort_by_key(|r| std::cmp::Reverse(r.number));
    r
}

/// The image of the newest earlier revision that ran a different image than
/// the current (newest) one: the last good one before a bad release.
pub fn previous_image(revisions: &[Revision]) -> Option<&str> {
    let r = newest_first(revisions);
    let current = r.first()?;
    r.iter()
        .map(|r| r.image.as_str())
        .find(|i| *i != current.image)
}

/// rollback-image's evidence: an earlier revision ran another image, and the
/// current revision rolled out at most `max_rollout_age` before the problem
/// started (`first_seen`): a crash loop that began with the new image. A
/// problem that started before the rollout counts as age zero.
pub fn rollout_is_recent(
    revisions: &[Revision],
    first_seen: Timestamp,
    max_rollout_age: PromDuration,
    what: &str,
) -> LiveState {
    let r = newest_first(revisions);
    let Some(current) = r.first() else {
        return LiveState::Cleared(format!(
            "{what} has no revision history to roll back through"
        ));
    };
    let Some(previous) = previous_image(revisions) else {
        return LiveState::Cleared(format!(
            "no earlier revision of {what} ran another image than {}; nothing to roll back to",
            current.image
        ));
    };
    let Some(created) = current.created else {
        return LiveState::Cleared(format!(
            "revision {} of {what} has no creation time: when it rolled out is unknown",
            current.number
        ));
    };
    let age = Duration::from_secs(
        first_seen
            .duration_since(created)
            .as_secs()
            .max(0)
            .unsigned_abs(),
    );
    if age > max_rollout_age.get() {
        LiveState::Cleared(format!(
            "revision {} of {what} ({}) rolled out {} before the problem started, longer ago than maxRolloutAge {max_rollout_age}: the problem did not start with it",
            current.number,
            current.image,
            PromDuration(age)
        ))
    } else {
        LiveState::Holds(format!(
            "revision {} of {what} ({}) rolled out {} before the problem started; an earlier revision ran {previous}",
            current.number,
            current.image,
            PromDuration(age)
        ))
    }
}

/// A label selector as the list API takes it (`a=b,c in (d,e),!f`); `None`
/// when it selects nothing useful (empty, or an operator it does not know).
pub fn selector_string(sel: &LabelSelector) -> Option<String> {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => return None,
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn mk_pod(name: &str, statuses: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": {"phase": "Running", "containerStatuses": statuses}
        }))
        .unwrap()
    }

    fn status(name: &str, state: Value, last: Value) -> Value {
        json!({"name": name, "image": "i", "imageID": "", "ready": true, "restartCount": 1,
               "state": state, "lastState": last})
    }

    fn running() -> Value {
        json!({"running": {"startedAt": t(0).to_string()}})
    }

    fn terminated(reason: &str) -> Value {
        json!({"terminated": {"exitCode": 137, "reason": reason, "finishedAt": t(5).to_string()}})
    }

    fn holds(s: &LiveState) -> bool {
        matches!(s, LiveState::Holds(_))
    }

    fn why(s: &LiveState) -> &str {
        match s {
            LiveState::Holds(w) | LiveState::Cleared(w) | LiveState::Gone(w) => w,
            LiveState::Unknown => "",
        }
    }

    #[test]
    fn a_container_last_terminated_by_an_oom_kill_holds() {
        let p = mk_pod(
            "api-1",
            json!([status("app", running(), terminated("OOMKilled"))]),
        );
        let s = oom_killed(&p, Some("app"));
        assert!(holds(&s), "{s:?}");
        assert!(why(&s).contains(&t(5).to_string()), "{s:?}");
        // or terminated by one right now
        let p = mk_pod(
            "api-1",
            json!([status("app", terminated("OOMKilled"), json!({}))]),
        );
        assert!(holds(&oom_killed(&p, Some("app"))));
        // any container when the signal names none
        assert!(holds(&oom_killed(&p, None)));
    }

    #[test]
    fn a_healthy_container_without_an_oom_kill_is_cleared() {
        let never = mk_pod("api-1", json!([status("app", running(), json!({}))]));
        let s = oom_killed(&never, Some("app"));
        assert!(matches!(s, LiveState::Cleared(_)), "{s:?}");
        assert_eq!(
            why(&s),
            "container app of pod prod/api-1 shows no OOM kill; no memory to raise"
        );
        let crashed = mk_pod(
            "api-1",
            json!([status("app", running(), terminated("Error"))]),
        );
        let s = oom_killed(&crashed, Some("app"));
        assert!(matches!(s, LiveState::Cleared(_)), "{s:?}");
        assert!(why(&s).contains("last termination: Error"), "{s:?}");
    }

    #[test]
    fn another_containers_oom_kill_is_not_evidence() {
        let p = mk_pod(
            "api-1",
            json!([
                status("app", running(), json!({})),
                status("sidecar", running(), terminated("OOMKilled"))
            ]),
        );
        assert!(!holds(&oom_killed(&p, Some("app"))));
        assert!(holds(&oom_killed(&p, Some("sidecar"))));
        assert!(!holds(&oom_killed(&p, Some("missing"))));
    }

    #[test]
    fn a_workload_holds_when_any_of_its_pods_was_oom_killed() {
        let ok = mk_pod("api-1", json!([status("app", running(), json!({}))]));
        let oom = mk_pod(
            "api-2",
            json!([status("app", running(), terminated("OOMKilled"))]),
        );
        let s = oom_killed_in(&[ok.clone(), oom], Some("app"), "Deployment prod/api");
        assert!(holds(&s) && why(&s).contains("prod/api-2"), "{s:?}");
        let s = oom_killed_in(&[ok], Some("app"), "Deployment prod/api");
        assert!(
            !holds(&s) && why(&s).contains("Deployment prod/api"),
            "{s:?}"
        );
        assert!(!holds(&oom_killed_in(
            &[],
            Some("app"),
            "Deployment prod/api"
        )));
    }

    fn hpa(current: Option<i32>, max: i32) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": max},
            "status": {"currentReplicas": current, "desiredReplicas": current.unwrap_or(0)}
        }))
        .unwrap()
    }

    #[test]
    fn an_hpa_holds_only_at_its_ceiling() {
        let s = hpa_at_ceiling(&hpa(Some(6), 6));
        assert!(holds(&s) && why(&s).contains("6 of maxReplicas 6"), "{s:?}");
        assert!(holds(&hpa_at_ceiling(&hpa(Some(7), 6))));
        let s = hpa_at_ceiling(&hpa(Some(3), 6));
        assert!(matches!(s, LiveState::Cleared(_)), "{s:?}");
        assert!(why(&s).contains("3 of maxReplicas 6"), "{s:?}");
        assert!(!holds(&hpa_at_ceiling(&hpa(None, 6))));
    }

    fn rev(number: u64, image: &str, created: i64) -> Revision {
        Revision {
            number,
            image: image.into(),
            created: Some(t(created)),
        }
    }

    #[test]
    fn the_previous_image_is_the_newest_earlier_one_that_differs() {
        let r = [
            rev(1, "api:1.0", 0),
            rev(3, "api:1.1", 200),
            rev(2, "api:1.1", 100),
        ];
        assert_eq!(previous_image(&r), Some("api:1.0"));
        assert_eq!(
            previous_image(&[rev(1, "api:1.0", 0), rev(2, "api:1.0", 1)]),
            None
        );
        assert_eq!(previous_image(&[]), None);
    }

    #[test]
    fn a_rollback_needs_a_recent_rollout_and_an_earlier_image() {
        let hour = PromDuration::secs(3600);
        let history = [rev(1, "api:1.0", 0), rev(2, "api:1.1", 10_000)];
        // the crash loop began 10 minutes after the rollout
        let s = rollout_is_recent(&history, t(10_600), hour, "Deployment prod/api");
        assert!(holds(&s), "{s:?}");
        assert!(why(&s).contains("api:1.0"), "{s:?}");
        // ... or before it (clock skew, an alert of the old pods): age zero
        assert!(holds(&rollout_is_recent(&history, t(9_000), hour, "d")));
        // two hours after a rollout, with maxRolloutAge 1h: not a bad release
        let s = rollout_is_recent(&history, t(10_000 + 7200), hour, "Deployment prod/api");
        assert!(matches!(s, LiveState::Cleared(_)), "{s:?}");
        assert!(why(&s).contains("maxRolloutAge 1h"), "{s:?}");
        // exactly at the limit still counts
        assert!(holds(&rollout_is_recent(&history, t(13_600), hour, "d")));
    }

    #[test]
    fn no_earlier_image_or_no_history_is_no_rollback() {
        let hour = PromDuration::secs(3600);
        let same = [rev(1, "api:1.1", 0), rev(2, "api:1.1", 100)];
        let s = rollout_is_recent(&same, t(200), hour, "Deployment prod/api");
        assert!(matches!(s, LiveState::Cleared(_)), "{s:?}");
        assert!(why(&s).contains("nothing to roll back to"), "{s:?}");
        assert!(!holds(&rollout_is_recent(&[], t(0), hour, "d")));
        let unknown_time = [
            rev(1, "api:1.0", 0),
            Revision {
                created: None,
                ..rev(2, "api:1.1", 0)
            },
        ];
        assert!(!holds(&rollout_is_recent(&unknown_time, t(0), hour, "d")));
    }

    fn mk_namespace(created: i64, deleting: bool) -> Namespace {
        let mut meta = json!({"name": "e2e-1", "creationTimestamp": t(created).to_string()});
        if deleting {
            meta["deletionTimestamp"] = json!(t(0).to_string());
        }
        serde_json::from_value(json!({"metadata": meta})).unwrap()
    }

    #[test]
    fn a_namespace_younger_than_min_age_is_not_deleted() {
        let hour = Some(PromDuration::secs(3600));
        // created 59m59s before now
        let s = namespace_state(&mk_namespace(-3599, false), hour, t(0));
        assert_eq!(
            s,
            LiveState::Cleared("namespace e2e-1 is younger than minAge 1h".into())
        );
        // exactly minAge old: old enough
        let s = namespace_state(&mk_namespace(-3600, false), hour, t(0));
        assert_eq!(s, LiveState::Holds("namespace e2e-1 exists".into()));
        assert!(holds(&namespace_state(
            &mk_namespace(-86_400, false),
            hour,
            t(0)
        )));
        // the clock moving on makes a young namespace old enough
        assert!(holds(&namespace_state(
            &mk_namespace(-3599, false),
            hour,
            t(1)
        )));
    }

    #[test]
    fn a_namespace_already_being_deleted_is_cleared_whatever_its_age() {
        let s = namespace_state(
            &mk_namespace(-86_400, true),
            Some(PromDuration::secs(60)),
            t(0),
        );
        assert_eq!(
            s,
            LiveState::Cleared("namespace e2e-1 is already being deleted".into())
        );
        assert!(!holds(&namespace_state(
            &mk_namespace(-86_400, true),
            None,
            t(0)
        )));
    }

    #[test]
    fn without_min_age_or_creation_time_a_namespace_holds() {
        // not delete-namespace (a notification): no age rule
        assert!(holds(&namespace_state(
            &mk_namespace(-1, false),
            None,
            t(0)
        )));
        let unknown: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert!(holds(&namespace_state(
            &unknown,
            Some(PromDuration::secs(3600)),
            t(0)
        )));
    }

    fn mk_node(ready: Option<&str>) -> Node {
        let conditions = match ready {
            Some(r) => json!([{"type": "Ready", "status": r}]),
            None => json!([]),
        };
        serde_json::from_value(json!({"metadata": {"name": "worker-1"},
            "status": {"conditions": conditions}}))
        .unwrap()
    }

    #[test]
    fn a_node_remediation_holds_only_while_the_node_is_not_ready() {
        assert_eq!(
            node_state(&mk_node(Some("False")), true),
            LiveState::Holds("node worker-1 is Ready=False".into())
        );
        assert_eq!(
            node_state(&mk_node(None), true),
            LiveState::Holds("node worker-1 is Ready=absent".into())
        );
        assert_eq!(
            node_state(&mk_node(Some("True")), true),
            LiveState::Cleared("node worker-1 is Ready again".into())
        );
        // a notification changes nothing: it holds on a Ready node too
        assert!(holds(&node_state(&mk_node(Some("True")), false)));
    }

    #[test]
    fn selectors_become_list_api_strings() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "api", "tier": "web"},
            "matchExpressions": [
                {"key": "track", "operator": "In", "values": ["stable", "canary"]},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert_eq!(
            selector_string(&sel).as_deref(),
            Some("app=api,tier=web,track in (stable,canary),!legacy")
        );
        assert_eq!(selector_string(&LabelSelector::default()), None);
    }
}

/// The live re-check of a cleanup: is the object (of type `rt`, as JSON) still
/// what a cleanup is for? Stuck terminating, failed, or stale by the
/// detectors' own rules (`detectors`: a VirtualMachine by the VM detector's,
/// anything else by the custom-resource detector's). A forged or stale alert
/// about a fresh, healthy object is `Cleared`.
pub fn cleanup_state(
    obj: &serde_json::Value,
    rt: &crate::target::ResourceType,
    detectors: &crate::detect::Detectors,
    now: Timestamp,
) -> LiveState {
    use crate::detect::{custom, kubevirt};
    let what = crate::detect::custom::meta(obj).map_or_else(
        || rt.kind.clone(),
        |m| match &m.namespace {
            Some(ns) => format!("{} {ns}/{}", rt.kind, m.name),
            None => format!("{} {}", rt.kind, m.name),
        },
    );
    let mut findings = custom::detect(obj, rt, &detectors.custom_resources, now);
    if *rt == kubevirt::vm_type() {
        findings.extend(kubevirt::detect(obj, &detectors.virtual_machines, now));
    }
    match findings.first() {
        Some(f) => LiveState::Holds(f.summary.clone()),
        None => LiveState::Cleared(format!(
            "{what} is not stuck terminating, failed or stale (older than {} / terminating longer than {}): nothing to clean up",
            detectors.custom_resources.stale_age, detectors.custom_resources.terminating_after
        )),
    }
}

#[cfg(test)]
mod cleanup_tests {
    use super::*;
    use crate::detect::Detectors;
    use crate::detect::Profile;
    use crate::target::ResourceType;
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn obj(created_ago: i64, extra: serde_json::Value) -> serde_json::Value {
        let mut o = json!({"metadata": {"name": "vm-a", "namespace": "e2e-1",
            "creationTimestamp": t(-created_ago).to_string()}});
        if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        o
    }

    #[test]
    fn a_fresh_healthy_object_is_not_cleaned_up_whatever_the_alert_says() {
        let d = Detectors::for_profile(Profile::TestCluster); // staleAge 6m
        let vm = ResourceType::from_api_version("kubevirt.io/v1", "VirtualMachine");
        let dv = ResourceType::from_api_version("cdi.kubevirt.io/v1beta1", "DataVolume");
        for rt in [&vm, &dv] {
            assert!(
                matches!(
                    cleanup_state(&obj(5, json!({})), rt, &d, t(0)),
                    LiveState::Cleared(_)
                ),
                "{rt:?}"
            );
            assert!(
                matches!(
                    cleanup_state(&obj(3600, json!({})), rt, &d, t(0)),
                    LiveState::Holds(_)
                ),
                "{rt:?} an hour old is stale"
            );
        }
        // a failed Job is what the failed-jobs route is for, however young
        let job = ResourceType::from_api_version("batch/v1", "Job");
        let failed = obj(
            5,
            json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}),
        );
        assert!(matches!(
            cleanup_state(&failed, &job, &d, t(0)),
            LiveState::Holds(_)
        ));
        assert!(matches!(
            cleanup_state(&obj(5, json!({"status": {"active": 1}})), &job, &d, t(0)),
            LiveState::Cleared(_)
        ));
    }

    #[test]
    fn an_object_stuck_terminating_is_cleaned_up_only_after_the_timeout() {
        let d = Detectors::for_profile(Profile::TestCluster);
        let dv = ResourceType::from_api_version("cdi.kubevirt.io/v1beta1", "DataVolume");
        let stuck = |for_secs: i64| {
            json!({"metadata": {"name": "dv", "namespace": "e2e-1",
                "creationTimestamp": t(-30).to_string(),
                "deletionTimestamp": t(-for_secs).to_string(), "finalizers": ["cdi.kubevirt.io/x"]}})
        };
        assert!(matches!(
            cleanup_state(&stuck(10), &dv, &d, t(0)),
            LiveState::Cleared(_)
        ));
        assert!(matches!(
            cleanup_state(&stuck(3600), &dv, &d, t(0)),
            LiveState::Holds(_)
        ));
    }
}

/// The live re-check of a plan on `Heal8sServiceNoReadyEndpoints`: the
/// Service (with its live EndpointSlices and pods) still has no ready
/// endpoint while its selector matches pods, for at least `after` (the
/// services detector's own rule). A Service that gained a ready endpoint,
/// lost its selector or its pods is `Cleared`.
pub fn service_state(
    b: &crate::detect::service::Backends<'_>,
    after: PromDuration,
    now: Timestamp,
) -> LiveState {
    match crate::detect::service::examine(b, after, now) {
        Ok(f) => LiveState::Holds(f.summary),
        Err(why) => LiveState::Cleared(format!("{why}: nothing to tell")),
    }
}

/// The live re-check of a plan on `Heal8sRolloutStuck`: the Deployment is
/// still past its progress deadline with a newest revision that changed an
/// image (the rollouts detector's own rule). A rollout that completed, was
/// rolled back or changed since is `Cleared`.
pub fn rollout_state(r: &crate::detect::rollout::Rollout<'_>, now: Timestamp) -> LiveState {
    match crate::detect::rollout::examine(r, now) {
        Ok(f) => LiveState::Holds(f.summary),
        Err(why) => LiveState::Cleared(why),
    }
}

#[cfg(test)]
mod detector_tests {
    use super::*;
    use crate::detect::pod_view::PodView;
    use crate::detect::rollout::Rollout;
    use crate::detect::service::Backends;
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn pod(ready: &str) -> PodView {
        PodView::of(
            &serde_json::from_value::<Pod>(json!({
                "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
                "status": {"phase": "Running", "conditions": [
                    {"type": "ContainersReady", "status": ready, "lastTransitionTime": t(-600).to_string()},
                    {"type": "Ready", "status": ready, "lastTransitionTime": t(-600).to_string()}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_service_holds_until_it_has_a_ready_endpoint() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": t(-86_400).to_string()},
            "spec": {"selector": {"app": "web"}}
        }))
        .unwrap();
        let slice = |ready: bool| -> EndpointSlice {
            serde_json::from_value(json!({
                "metadata": {"name": "web-x", "namespace": "shop",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": ready}}]
            }))
            .unwrap()
        };
        let five = PromDuration::secs(300);
        let (unready, broken) = (pod("False"), slice(false));
        let b = Backends {
            service: &svc,
            slices: vec![&broken],
            pods: vec![&unready],
        };
        let s = service_state(&b, five, t(0));
        assert!(
            matches!(&s, LiveState::Holds(w) if w.contains("web-1")),
            "{s:?}"
        );
        // a stale signal: the pod is ready and serves again
        let (ready, serving) = (pod("True"), slice(true));
        let b = Backends {
            service: &svc,
            slices: vec![&serving],
            pods: vec![&ready],
        };
        let s = service_state(&b, five, t(0));
        assert!(
            matches!(&s, LiveState::Cleared(w) if w.contains("1 ready endpoints of 1")),
            "{s:?}"
        );
        // a forged one, about a Service that lost its endpoints a moment ago
        let b = Backends {
            service: &svc,
            slices: vec![&broken],
            pods: vec![&unready],
        };
        assert!(matches!(
            service_state(&b, PromDuration::secs(3600), t(0)),
            LiveState::Cleared(_)
        ));
    }

    #[test]
    fn a_rollout_holds_while_it_is_stuck_after_an_image_change() {
        let dep = |status: &str, reason: &str| -> Deployment {
            serde_json::from_value(json!({
                "metadata": {"name": "api", "namespace": "shop", "uid": "d"},
                "status": {"conditions": [{"type": "Progressing", "status": status, "reason": reason,
                                           "lastTransitionTime": t(-60).to_string()}]}
            }))
            .unwrap()
        };
        let rs = |n: u32, image: &str| -> ReplicaSet {
            serde_json::from_value(json!({
                "metadata": {"name": format!("api-{n}"), "namespace": "shop",
                    "annotations": {"deployment.kubernetes.io/revision": n.to_string()},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                                         "uid": "d", "controller": true}]},
                "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}
            }))
            .unwrap()
        };
        let (one, two) = (rs(1, "api:1.0"), rs(2, "api:1.1"));
        let stuck = dep("False", "ProgressDeadlineExceeded");
        let r = Rollout {
            deployment: &stuck,
            replica_sets: vec![&one, &two],
        };
        assert!(matches!(rollout_state(&r, t(0)), LiveState::Holds(_)));
        // it completed since, or a person rolled it back
        let done = dep("True", "NewReplicaSetAvailable");
        let r = Rollout {
            deployment: &done,
            replica_sets: vec![&one, &two],
        };
        assert!(matches!(rollout_state(&r, t(0)), LiveState::Cleared(_)));
        // its history lost the earlier image (the ReplicaSet was deleted)
        let r = Rollout {
            deployment: &stuck,
            replica_sets: vec![&two],
        };
        assert!(matches!(rollout_state(&r, t(0)), LiveState::Cleared(_)));
    }
}
