//! Where the webhook's alerts go: the one work queue, or, when heal8s serves
//! several clusters (the policy's `clusters`), the queue of the cluster each
//! alert names. Which one is the guard's rule (`guard::members`): an alert
//! that names no served cluster is refused `unknown_cluster` here, recorded
//! like any outcome, and never reaches a cluster.
//!
//! Owns: the split of one delivery among the clusters' queues, and the
//! recorders of the clusters (pause, dashboard, breakers). Must not decide
//! what may be done to anything: each cluster's own guard does.

use std::sync::Arc;

use receiver_core::guard::members::member_of;
use receiver_core::policy::clusters::Member;
use receiver_core::{Outcome, OutcomeKind, Signal};

use crate::queue::{QueueError, WorkQueue};
use crate::worker::Recorder;

/// The queues alerts go to, and the recorders of the clusters served.
#[derive(Debug, Clone)]
pub enum Front {
    /// One cluster (or none, offline): every alert goes to its queue; its
    /// own guard refuses one about another cluster (`wrong_cluster`).
    One {
        queue: WorkQueue,
        recorder: Arc<Recorder>,
    },
    /// Several clusters: the cluster label picks the queue.
    Clusters(Arc<Clusters>),
}

/// The clusters served, in the policy's order.
#[derive(Debug)]
pub struct Clusters {
    /// The label that names an alert's cluster (`guard.clusterLabel`).
    pub label: String,
    pub members: Vec<Member>,
    /// Each member's queue and recorder, in the same order.
    pub fronts: Vec<(WorkQueue, Arc<Recorder>)>,
}

/// How one delivery was split.
#[derive(Debug, Default)]
pub struct Split {
    /// The signals for each queue (in `Front::queues` order).
    pub per_queue: Vec<Vec<Signal>>,
    /// The signals refused at the door, each with its outcome.
    pub refused: Vec<(Signal, Outcome)>,
}

impl Front {
    /// The queues, in order.
    pub fn queues(&self) -> Vec<&WorkQueue> {
        match self {
            Front::One { queue, .. } => vec![queue],
            Front::Clusters(c) => c.fronts.iter().map(|(q, _)| q).collect(),
        }
    }

    /// The recorders of the clusters served, in order.
    pub fn recorders(&self) -> Vec<&Arc<Recorder>> {
        match self {
            Front::One { recorder, .. } => vec![recorder],
            Front::Clusters(c) => c.fronts.iter().map(|(_, r)| r).collect(),
        }
    }

    /// Split `signals` among the queues; with several clusters, an alert
    /// naming none of them is refused (`now` is the refusal's time).
    pub fn split(&self, signals: Vec<Signal>, now: jiff::Timestamp) -> Split {
        match self {
            Front::One { .. } => Split {
                per_queue: vec![signals],
                refused: Vec::new(),
            },
            Front::Clusters(c) => {
                let mut split = Split {
                    per_queue: vec![Vec::new(); c.members.len()],
                    refused: Vec::new(),
                };
                for s in signals {
                    match member_of(&c.members, &c.label, &s.labels) {
                        Ok(m) => {
                            // `m` is one of `members`, whose order the parts follow
                            let i = c.members.iter().position(|x| std::ptr::eq(x, m));
                            if let Some(part) = i.and_then(|i| split.per_queue.get_mut(i)) {
                                part.push(s);
                            }
                        }
                        Err(r) => {
                            let o = refused_at_door(&s, r, now);
                            split.refused.push((s, o));
                        }
                    }
                }
                split
            }
        }
    }

    /// Queue a split delivery: each cluster's part all or nothing. The first
    /// error is returned; parts queued before it stay queued (Alertmanager
    /// resends the delivery, and the door answers their repeats).
    pub fn send(&self, per_queue: Vec<Vec<Signal>>) -> Result<(), QueueError> {
        for (queue, part) in self.queues().into_iter().zip(per_queue) {
            if !part.is_empty() {
                queue.send_alerts(part)?;
            }
        }
        Ok(())
    }
}

/// The outcome of an alert refused before any cluster saw it.
fn refused_at_door(s: &Signal, r: receiver_core::guard::Refusal, now: jiff::Timestamp) -> Outcome {
    let mut o = Outcome::about(s, OutcomeKind::Refused, r.message, now);
    o.reason = Some(r.reason);
    o
}

impl Front {
    /// The pause in force somewhere (the API's pauses every cluster; a
    /// ConfigMap, its own), for `/readyz` and `/pause`.
    pub fn paused(&self) -> Option<receiver_core::guard::Pause> {
        self.recorders()
            .into_iter()
            .find_map(|r| r.pause().current())
    }

    /// The names of the clusters served (none with one cluster).
    pub fn names(&self) -> Vec<&str> {
        match self {
            Front::One { .. } => Vec::new(),
            Front::Clusters(c) => c.members.iter().map(|m| m.name.as_str()).collect(),
        }
    }

    /// The recorder of cluster `name` (the first without one), or `None`
    /// when no cluster of that name is served.
    pub fn recorder_of(&self, name: Option<&str>) -> Option<&Arc<Recorder>> {
        match (self, name) {
            (Front::One { recorder, .. }, None) => Some(recorder),
            (Front::One { recorder, .. }, Some(n)) => {
                (recorder.cluster() == Some(n)).then_some(recorder)
            }
            (Front::Clusters(c), None) => c.fronts.first().map(|(_, r)| r),
            (Front::Clusters(c), Some(n)) => c
                .members
                .iter()
                .zip(&c.fronts)
                .find(|(m, _)| m.name == n)
                .map(|(_, (_, r))| r),
        }
    }

    /// `/breakers`: every cluster's episodes holding now and the last few
    /// that ended; with several clusters each names its cluster.
    pub fn breakers(&self) -> serde_json::Value {
        if let Front::One { recorder, .. } = self {
            return recorder.stand_down().view();
        }
        let (mut open, mut closed) = (Vec::new(), Vec::new());
        for r in self.recorders() {
            let v = r.stand_down().view();
            for (into, key) in [(&mut open, "open"), (&mut closed, "closed")] {
                for mut e in v[key].as_array().cloned().unwrap_or_default() {
                    if let serde_json::Value::Object(m) = &mut e {
                        m.insert("cluster".into(), r.cluster().into());
                    }
                    into.push(e);
                }
            }
        }
        serde_json::json!({"open": open, "closed": closed})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::metrics::Metrics;
    use receiver_core::RefusalReason;

    fn signals(clusters: &[Option<&str>]) -> Vec<Signal> {
        let alerts: Vec<serde_json::Value> = clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut labels = serde_json::json!({"alertname": "A", "namespace": "shop", "pod": format!("p-{i}")});
                if let Some(c) = c {
                    labels["cluster"] = (*c).into();
                }
                serde_json::json!({"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": "2026-12-07T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": format!("{i:016x}")})
            })
            .collect();
        let body = serde_json::json!({"version": "4", "status": "firing", "receiver": "heal8s",
            "groupKey": "{}", "alerts": alerts});
        let payload = receiver_core::alertmanager::parse(body.to_string().as_bytes()).unwrap();
        Signal::from_payload(&payload)
    }

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            context: Some(name.into()),
            kubeconfig: None,
            namespace: None,
            detectors: true,
        }
    }

    fn two() -> (Front, Vec<crate::queue::QueueReceiver>) {
        let metrics = Arc::new(Metrics::new());
        let door = Recorder::new(metrics);
        let (mut fronts, mut rxs) = (Vec::new(), Vec::new());
        for name in ["east", "west"] {
            let (tx, rx) = crate::queue::work_queue(8);
            fronts.push((tx, Arc::new(door.for_cluster(Some(name.into())))));
            rxs.push(rx);
        }
        let front = Front::Clusters(Arc::new(Clusters {
            label: "cluster".into(),
            members: vec![member("east"), member("west")],
            fronts,
        }));
        (front, rxs)
    }

    #[test]
    fn each_alert_goes_to_the_cluster_it_names_and_no_other() {
        let (front, rxs) = two();
        let now = jiff::Timestamp::UNIX_EPOCH;
        let split = front.split(
            signals(&[
                Some("west"),
                Some("east"),
                None,
                Some("north"),
                Some("west"),
            ]),
            now,
        );
        let pods = |part: &[Signal]| -> Vec<String> {
            part.iter().map(|s| s.labels["pod"].clone()).collect()
        };
        assert_eq!(pods(&split.per_queue[0]), ["p-1"]);
        assert_eq!(pods(&split.per_queue[1]), ["p-0", "p-4"]);
        let refused: Vec<(String, Option<RefusalReason>)> = split
            .refused
            .iter()
            .map(|(s, o)| (s.labels["pod"].clone(), o.reason))
            .collect();
        assert_eq!(
            refused,
            [
                ("p-2".to_string(), Some(RefusalReason::UnknownCluster)),
                ("p-3".to_string(), Some(RefusalReason::UnknownCluster)),
            ]
        );
        assert!(split.refused.iter().all(|(_, o)| o.cluster.is_none()));
        front.send(split.per_queue).unwrap();
        assert_eq!((rxs[0].len(), rxs[1].len()), (1, 2));
        assert_eq!(front.names(), ["east", "west"]);
        assert_eq!(
            front.recorder_of(Some("west")).unwrap().cluster(),
            Some("west")
        );
        assert_eq!(front.recorder_of(None).unwrap().cluster(), Some("east"));
        assert!(front.recorder_of(Some("north")).is_none());
    }

    #[test]
    fn one_cluster_takes_every_alert_its_guard_decides_on() {
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = crate::queue::work_queue(8);
        let front = Front::One {
            queue: tx,
            recorder: Arc::new(Recorder::new(metrics)),
        };
        let split = front.split(signals(&[None, Some("other")]), jiff::Timestamp::UNIX_EPOCH);
        assert!(
            split.refused.is_empty(),
            "wrong_cluster is the guard's, later"
        );
        front.send(split.per_queue).unwrap();
        assert_eq!(rx.len(), 2);
        assert!(front.names().is_empty());
    }
}
