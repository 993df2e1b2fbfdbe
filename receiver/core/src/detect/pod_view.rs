//! The fields of a pod that heal8s reads from its watch cache, and nothing
//! else: what the pod detector, strain relief and verification look at.
//! Strings that repeat across pods (namespaces, label keys and values, node
//! names, owner kinds, container names, reasons) are shared through an
//! [`Interner`], so 100k watched pods cost little more than their names.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};

/// Shares equal strings: each distinct one is kept once.
#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<Arc<str>>,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.set.insert(a.clone());
        a
    }

    /// How many distinct strings it holds.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Forget every string (those in use stay valid; new ones are shared anew).
    pub fn clear(&mut self) {
        self.set.clear();
    }
}

/// How a container ended, as its status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: Option<Arc<str>>,
    pub finished: Option<Timestamp>,
}

/// One container's status (init containers first, as the pod lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: Arc<str>,
    pub restart_count: i32,
    /// `Some(reason)` while waiting (`None` inside: no reason given).
    pub waiting: Option<Option<Arc<str>>>,
    /// The current state, when terminated.
    pub terminated: Option<Terminated>,
    /// The previous run, when it terminated.
    pub last_terminated: Option<Terminated>,
}

/// The pod's `PodScheduled=False, reason Unschedulable` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    pub since: Option<Timestamp>,
    pub message: Option<Box<str>>,
}

/// What heal8s keeps of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub namespace: Option<Arc<str>>,
    pub name: Option<Box<str>>,
    pub uid: Option<Box<str>>,
    pub labels: Box<[(Arc<str>, Arc<str>)]>,
    /// Kind and name of its controller (its first owner when none is marked).
    pub controller: Option<(Arc<str>, Box<str>)>,
    pub node: Option<Arc<str>>,
    pub phase: Option<Arc<str>>,
    pub created: Option<Timestamp>,
    /// It has a deletionTimestamp.
    pub deleting: bool,
    pub started: Option<Timestamp>,
    /// When `ContainersReady` turned False.
    pub containers_not_ready_since: Option<Timestamp>,
    /// Whether a `Ready=False` condition is present.
    pub not_ready: bool,
    pub unschedulable: Option<Unschedulable>,
    pub priority: Option<i32>,
    pub priority_class: Option<Arc<str>>,
    pub containers: Box<[ContainerView]>,
}

fn condition<'a>(
    conditions: &'a [PodCondition],
    type_: &str,
    status: &str,
) -> Option<&'a PodCondition> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
}

fn terminated(
    t: Option<&k8s_openapi::api::core::v1::ContainerStateTerminated>,
    i: &mut Interner,
) -> Option<Terminated> {
    t.map(|t| Terminated {
        exit_code: t.exit_code,
        reason: t.reason.as_deref().map(|r| i.get(r)),
        finished: t.finished_at.as_ref().map(|f| f.0),
    })
}

fn container(cs: &ContainerStatus, i: &mut Interner) -> ContainerView {
    let state = cs.state.as_ref();
    ContainerView {
        name: i.get(&cs.name),
        restart_count: cs.restart_count,
        waiting: state
            .and_then(|s| s.waiting.as_ref())
            .map(|w| w.reason.as_deref().map(|r| i.get(r))),
        terminated: terminated(state.and_then(|s| s.terminated.as_ref()), i),
        last_terminated: terminated(
            cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()),
            i,
        ),
    }
}

impl PodView {
    /// What heal8s keeps of `pod`, sharing strings through `i`.
    pub fn new(pod: &Pod, i: &mut Interner) -> PodView {
        let m = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let conditions: &[PodCondition] = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let controller = m.owner_references.as_ref().and_then(|refs| {
            refs.iter()
                .find(|r| r.controller == Some(true))
                .or_else(|| refs.first())
                .map(|r| (i.get(&r.kind), r.name.as_str().into()))
        });
        let containers = status
            .and_then(|s| s.init_container_statuses.as_ref())
            .into_iter()
            .flatten()
            .chain(
                status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten(),
            )
            .map(|cs| container(cs, i))
            .collect();
        PodView {
            namespace: m.namespace.as_deref().map(|n| i.get(n)),
            name: m.name.as_deref().map(Into::into),
            uid: m.uid.as_deref().map(Into::into),
            labels: m
                .labels
                .iter()
                .flatten()
                .map(|(k, v)| (i.get(k), i.get(v)))
                .collect(),
            controller,
            node: spec.and_then(|s| s.node_name.as_deref()).map(|n| i.get(n)),
            phase: status.and_then(|s| s.phase.as_deref()).map(|p| i.get(p)),
            created: m.creation_timestamp.as_ref().map(|t| t.0),
            deleting: m.deletion_timestamp.is_some(),
            started: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
            containers_not_ready_since: condition(conditions, "ContainersReady", "False")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0),
            not_ready: condition(conditions, "Ready", "False").is_some(),
            unschedulable: conditions
                .iter()
                .find(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
                .map(|c| Unschedulable {
                    since: c.last_transition_time.as_ref().map(|t| t.0),
                    message: c.message.as_deref().map(Into::into),
                }),
            priority: spec.and_then(|s| s.priority),
            priority_class: spec
                .and_then(|s| s.priority_class_name.as_deref())
                .map(|c| i.get(c)),
            containers,
        }
    }

    /// What heal8s keeps of `pod`, sharing nothing (a one-off read).
    pub fn of(pod: &Pod) -> PodView {
        PodView::new(pod, &mut Interner::default())
    }

    /// Whether every pair of `selector` is among its labels.
    pub fn selected_by<'a>(&self, selector: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        selector.into_iter().all(|(k, v)| {
            self.labels
                .iter()
                .any(|(have_k, have_v)| &**have_k == k && &**have_v == v)
        })
    }

    /// The restarts of all its containers.
    pub fn restarts(&self) -> u64 {
        self.containers
            .iter()
            .map(|c| u64::try_from(c.restart_count).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "uid": "u",
                         "labels": {"app": "api", "tier": "web"},
                         "ownerReferences": [
                             {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "1"},
                             {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9c", "uid": "2", "controller": true}]},
            "spec": {"nodeName": "w1", "priority": 7, "priorityClassName": "low",
                     "containers": [{"name": "api"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "ContainersReady", "status": "False", "lastTransitionTime": "2027-01-15T08:00:00Z"},
                               {"type": "Ready", "status": "False"}],
                "initContainerStatuses": [{"name": "init", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0}}}],
                "containerStatuses": [{"name": "api", "image": "i", "imageID": "", "ready": false, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2027-01-15T08:01:00Z"}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_view_keeps_what_the_detectors_read() {
        let v = PodView::of(&pod("api-1"));
        assert_eq!(v.namespace.as_deref(), Some("shop"));
        assert_eq!(v.name.as_deref(), Some("api-1"));
        assert_eq!(
            v.controller.as_ref().map(|(k, n)| (&**k, &**n)),
            Some(("ReplicaSet", "api-7d9c"))
        );
        assert_eq!(v.node.as_deref(), Some("w1"));
        assert_eq!(v.phase.as_deref(), Some("Running"));
        assert!(v.not_ready);
        assert!(v.containers_not_ready_since.is_some());
        assert_eq!(
            (v.priority, v.priority_class.as_deref()),
            (Some(7), Some("low"))
        );
        // init containers first
        let names: Vec<&str> = v.containers.iter().map(|c| &*c.name).collect();
        assert_eq!(names, ["init", "api"]);
        let api = &v.containers[1];
        assert_eq!(api.waiting, Some(Some("CrashLoopBackOff".into())));
        assert_eq!(
            api.last_terminated
                .as_ref()
                .and_then(|t| t.reason.as_deref()),
            Some("OOMKilled")
        );
        assert_eq!(v.restarts(), 4);
        assert!(v.selected_by([("app", "api")]));
        assert!(!v.selected_by([("app", "api"), ("tier", "db")]));
    }

    #[test]
    fn equal_strings_are_kept_once() {
        let mut i = Interner::default();
        let a = PodView::new(&pod("api-1"), &mut i);
        let b = PodView::new(&pod("api-2"), &mut i);
        assert!(Arc::ptr_eq(
            a.namespace.as_ref().unwrap(),
            b.namespace.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(&a.labels[0].1, &b.labels[0].1));
        let n = i.len();
        let _ = PodView::new(&pod("api-3"), &mut i);
        assert_eq!(i.len(), n, "a third alike pod adds no string");
    }
}
