//! The work queue's two lanes: alerts and detector signals wait apart, each
//! with its own bound, so a burst of detector signals never leaves
//! Alertmanager a full queue (503); the worker takes from them in turn.
//!
//! Owns: which lane a signal goes to, coalescing (a newer signal of the same
//! series, about the same target, replaces the one still waiting, keeping its
//! place), the bounds, and the order signals leave in. Pure: the async queue
//! around it (waiting for room or for work) lives with the service, and
//! detectors reach it through [`SignalSink`].

use std::collections::{HashMap, VecDeque};

use async_trait::async_trait;

use crate::signal::Signal;

/// A lane of the work queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Alertmanager deliveries.
    Alerts,
    /// heal8s's own detectors.
    Detectors,
}

impl Lane {
    /// The lane `signal` waits in.
    pub fn of(signal: &Signal) -> Lane {
        match signal.source {
            crate::signal::Source::Alert { .. } => Lane::Alerts,
            crate::signal::Source::Detector { .. } => Lane::Detectors,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    order: VecDeque<String>,
    waiting: HashMap<String, Signal>,
}

impl Queue {
    fn len(&self) -> usize {
        self.order.len()
    }

    /// Add `s`; true when it replaced a waiting signal of its series.
    fn push(&mut self, s: Signal) -> bool {
        if let Some(old) = self.waiting.get_mut(&s.fingerprint) {
            *old = s;
            return true;
        }
        self.order.push_back(s.fingerprint.clone());
        self.waiting.insert(s.fingerprint.clone(), s);
        false
    }

    fn pop(&mut self) -> Option<Signal> {
        let fp = self.order.pop_front()?;
        self.waiting.remove(&fp)
    }
}

/// The two lanes. See the module documentation.
#[derive(Debug)]
pub struct Lanes {
    capacity: usize,
    alerts: Queue,
    detectors: Queue,
    /// The lane that goes first when both hold signals.
    turn: Lane,
}

impl Lanes {
    /// Lanes of at most `capacity` signals each (at least 1).
    pub fn new(capacity: usize) -> Lanes {
        Lanes {
            capacity: capacity.max(1),
            alerts: Queue::default(),
            detectors: Queue::default(),
            turn: Lane::Alerts,
        }
    }

    /// How many signals one lane holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many signals wait, in both lanes.
    pub fn len(&self) -> usize {
        self.alerts.len() + self.detectors.len()
    }

    /// Whether no signal waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many signals wait in `lane`.
    pub fn len_of(&self, lane: Lane) -> usize {
        match lane {
            Lane::Alerts => self.alerts.len(),
            Lane::Detectors => self.detectors.len(),
        }
    }

    /// Queue every signal of one delivery, or none: `Err` (with the signals
    /// back) when the alert lane has no room for those that replace nothing.
    /// `Ok` says how many replaced a waiting signal of their series.
    pub fn push_alerts(&mut self, signals: Vec<Signal>) -> Result<usize, Vec<Signal>> {
        let mut fresh: Vec<&str> = signals
            .iter()
            .map(|s| s.fingerprint.as_str())
            .filter(|fp| !self.alerts.waiting.contains_key(*fp))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        if self.alerts.len() + fresh.len() > self.capacity {
            return Err(signals);
        }
        Ok(signals
            .into_iter()
            .map(|s| self.alerts.push(s))
            .filter(|replaced| *replaced)
            .count())
    }

    /// Queue one detector signal: `Ok(true)` when it replaced a waiting
    /// signal of its series, `Err` (with it back) when the lane is full.
    pub fn push_detector(&mut self, signal: Signal) -> Result<bool, Box<Signal>> {
        if self.detectors.len() >= self.capacity
            && !self.detectors.waiting.contains_key(&signal.fingerprint)
        {
            return Err(Box::new(signal));
        }
        Ok(self.detectors.push(signal))
    }

    /// The next signal: the lanes take turns while both hold signals.
    pub fn pop(&mut self) -> Option<Signal> {
        let (first, second) = match self.turn {
            Lane::Alerts => (Lane::Alerts, Lane::Detectors),
            Lane::Detectors => (Lane::Detectors, Lane::Alerts),
        };
        for lane in [first, second] {
            let q = match lane {
                Lane::Alerts => &mut self.alerts,
                Lane::Detectors => &mut self.detectors,
            };
            if let Some(s) = q.pop() {
                self.turn = second;
                return Some(s);
            }
        }
        None
    }
}

/// The work queue is closed (shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the work queue is closed")]
pub struct Closed;

/// Where detectors put their signals: the detector lane of the work queue.
#[async_trait]
pub trait SignalSink: Send + Sync + std::fmt::Debug {
    /// Queue `signal`, waiting while the detector lane is full.
    async fn send(&self, signal: Signal) -> Result<(), Closed>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use super::*;
    use crate::alertmanager::AlertStatus;
    use crate::testutil::signal;

    fn alert(pod: &str) -> Signal {
        signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", pod)])
    }

    fn detector(pod: &str) -> Signal {
        let mut s = alert(pod);
        s.source = crate::signal::Source::Detector {
            name: "pods".into(),
        };
        s
    }

    #[test]
    fn a_detector_burst_leaves_the_alert_lane_its_room() {
        let mut l = Lanes::new(3);
        for i in 0..3 {
            assert_eq!(l.push_detector(detector(&format!("d{i}"))), Ok(false));
        }
        assert!(
            l.push_detector(detector("d9")).is_err(),
            "the detector lane is full"
        );
        assert_eq!(l.push_alerts(vec![alert("a1"), alert("a2")]), Ok(0));
        assert_eq!(l.len_of(Lane::Alerts), 2);
        // all or nothing: two more alerts do not fit in the one place left
        assert!(l.push_alerts(vec![alert("a3"), alert("a4")]).is_err());
        assert_eq!(l.len_of(Lane::Alerts), 2);
    }

    #[test]
    fn the_lanes_take_turns() {
        let mut l = Lanes::new(10);
        for i in 0..3 {
            l.push_detector(detector(&format!("d{i}"))).unwrap();
        }
        l.push_alerts(vec![alert("a0"), alert("a1")]).unwrap();
        let order: Vec<String> = std::iter::from_fn(|| l.pop())
            .map(|s| format!("{}:{}", s.source.kind(), s.labels["pod"]))
            .collect();
        assert_eq!(
            order,
            [
                "alert:a0",
                "detector:d0",
                "alert:a1",
                "detector:d1",
                "detector:d2"
            ]
        );
    }

    #[test]
    fn a_newer_signal_of_a_series_replaces_the_waiting_one_in_its_place() {
        let mut l = Lanes::new(2);
        l.push_detector(detector("d0")).unwrap();
        l.push_detector(detector("d1")).unwrap();
        let mut resolved = detector("d0");
        resolved.status = AlertStatus::Resolved;
        // the lane is full, but a replacement needs no room
        assert_eq!(l.push_detector(resolved), Ok(true));
        assert_eq!(l.len(), 2);
        let first = l.pop().unwrap();
        assert_eq!(
            (first.labels["pod"].as_str(), first.status),
            ("d0", AlertStatus::Resolved)
        );
        // alerts too: a repeated delivery takes no more room
        l.push_alerts(vec![alert("a0")]).unwrap();
        assert_eq!(l.push_alerts(vec![alert("a0"), alert("a0")]), Ok(2));
        assert_eq!(l.len_of(Lane::Alerts), 1);
    }
}
