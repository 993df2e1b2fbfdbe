//! The work queue's two lanes: alerts and detector signals wait apart, each
//! with its own bound, so a burst of detector signals never leaves
//! Alertmanager a full queue (503); the worker takes from them in turn.
//!
//! Owns: which lane a signal goes to, coalescing (a newer signal of the same
//! series, about the same target, replaces the one still waiting, keeping its
//! place), repeats at the door (a delivery of an alert occurrence already
//! taken in, see [`Repeats`]), the bounds, and the order signals leave in.
//! Pure: the async queue around it (waiting for room or for work) lives with
//! the service, and detectors reach it through [`SignalSink`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::alertmanager::AlertStatus;
use crate::signal::Signal;

/// One occurrence of an alert: its series, when it started, and whether it
/// fires or resolved (the guard's dedupe key, see `Guard::admit`).
type Occurrence = (String, Timestamp, AlertStatus);

fn occurrence(s: &Signal) -> Occurrence {
    (s.fingerprint.clone(), s.first_seen, s.status)
}

/// Alert occurrences taken into the queue lately, so a repeated delivery
/// (Alertmanager re-sends every group on each flush) is answered at the door
/// without queueing it again for the worker. Alertmanager re-sends far more
/// than it reports new problems, and the worker is one task: without this, a
/// queue full of repeats would turn new problems away.
///
/// The guard stays the judge: an occurrence counts as a repeat only while
/// the guard still remembers it too. Each is remembered from when it was
/// taken in (before the guard saw it) for less than the guard's dedupe
/// window, and at most half as many as the guard keeps
/// ([`crate::guard::MAX_REMEMBERED_OCCURRENCES`]), oldest forgotten first in
/// the order the guard saw them. One that never reached the guard (replaced
/// while waiting by a newer signal of its series) is forgotten at once.
#[derive(Debug)]
pub struct Repeats {
    window: Duration,
    capacity: usize,
    /// By series: the starts and statuses of its occurrences remembered
    /// (looked up without copying the fingerprint).
    known: HashMap<String, Vec<(Timestamp, AlertStatus)>>,
    order: VecDeque<(Timestamp, Occurrence)>,
}

impl Repeats {
    /// Occurrences remembered for `window` (the guard's dedupe window), at
    /// most `capacity` of them (capped at half the guard's).
    pub fn new(window: Duration, capacity: usize) -> Repeats {
        Repeats {
            window,
            capacity: capacity.min(crate::guard::MAX_REMEMBERED_OCCURRENCES / 2),
            known: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.order.front() {
            let age = now.duration_since(*at).unsigned_abs();
            if age < self.window && self.order.len() <= self.capacity {
                break;
            }
            if let Some((_, (fp, start, status))) = self.order.pop_front() {
                self.remove(&fp, start, status);
            }
        }
    }

    fn remove(&mut self, fingerprint: &str, start: Timestamp, status: AlertStatus) {
        if let Some(seen) = self.known.get_mut(fingerprint) {
            seen.retain(|o| *o != (start, status));
            if seen.is_empty() {
                self.known.remove(fingerprint);
            }
        }
    }

    fn knows(&self, s: &Signal) -> bool {
        self.known
            .get(s.fingerprint.as_str())
            .is_some_and(|seen| seen.contains(&(s.first_seen, s.status)))
    }

    /// Remember `s`, which it does not know yet.
    fn remember(&mut self, s: &Signal, now: Timestamp) {
        self.known
            .entry(s.fingerprint.clone())
            .or_default()
            .push((s.first_seen, s.status));
        self.order.push_back((now, occurrence(s)));
    }

    fn forget(&mut self, s: &Signal) {
        // its place in `order` stays and ages out; only membership matters
        self.remove(&s.fingerprint, s.first_seen, s.status);
    }

    /// How many occurrences are remembered.
    pub fn len(&self) -> usize {
        self.known.values().map(Vec::len).sum()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

/// What became of one delivery's alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    /// Queued in place of a waiting signal of their series.
    pub replaced: usize,
    /// Occurrences taken in before (see [`Repeats`]): not queued again.
    pub repeats: usize,
}

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

    /// Add `s`; with the waiting signal of its series it replaced.
    fn push(&mut self, s: Signal) -> Option<Signal> {
        if let Some(old) = self.waiting.get_mut(&s.fingerprint) {
            return Some(std::mem::replace(old, s));
        }
        self.order.push_back(s.fingerprint.clone());
        self.waiting.insert(s.fingerprint.clone(), s);
        None
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
    /// Alert occurrences taken in lately; `None`: every delivery is queued.
    repeats: Option<Repeats>,
}

impl Lanes {
    /// Lanes of at most `capacity` signals each (at least 1).
    pub fn new(capacity: usize) -> Lanes {
        Lanes {
            capacity: capacity.max(1),
            alerts: Queue::default(),
            detectors: Queue::default(),
            turn: Lane::Alerts,
            repeats: None,
        }
    }

    /// The same lanes, answering repeated deliveries at the door (see
    /// [`Repeats`]).
    pub fn with_repeats(mut self, repeats: Repeats) -> Lanes {
        self.repeats = Some(repeats);
        self
    }

    /// The alert occurrences remembered at the door, if any are.
    pub fn repeats(&self) -> Option<&Repeats> {
        self.repeats.as_ref()
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

    /// Queue every signal of one delivery taken in at `now`, or none: `Err`
    /// (with the signals back) when the alert lane has no room for those
    /// that replace nothing. `Ok` says how many replaced a waiting signal of
    /// their series, and how many were repeats, not queued again.
    pub fn push_alerts(
        &mut self,
        signals: Vec<Signal>,
        now: Timestamp,
    ) -> Result<Taken, Vec<Signal>> {
        if let Some(r) = &mut self.repeats {
            r.expire(now);
        }
        let repeat = |s: &Signal| self.repeats.as_ref().is_some_and(|r| r.knows(s));
        let mut fresh: Vec<&str> = signals
            .iter()
            .filter(|s| !repeat(s))
            .map(|s| s.fingerprint.as_str())
            .filter(|fp| !self.alerts.waiting.contains_key(*fp))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        if self.alerts.len() + fresh.len() > self.capacity {
            return Err(signals);
        }
        let mut taken = Taken::default();
        for mut s in signals {
            s.received.get_or_insert(now);
            let Some(r) = &mut self.repeats else {
                taken.replaced += usize::from(self.alerts.push(s).is_some());
                continue;
            };
            if r.knows(&s) {
                taken.repeats += 1;
                continue;
            }
            r.remember(&s, now);
            if let Some(old) = self.alerts.push(s) {
                taken.replaced += 1;
                // it never reaches the guard: a delivery of it again is news
                if let Some(r) = &mut self.repeats {
                    r.forget(&old);
                }
            }
        }
        Ok(taken)
    }

    /// Forget that the occurrence `fingerprint` started at `start` was taken
    /// in: its next delivery is news again (a plan of it was dropped as
    /// stale, and only a fresh delivery may bring it back).
    pub fn forget_occurrence(&mut self, fingerprint: &str, start: Timestamp) {
        if let Some(r) = &mut self.repeats {
            r.remove(fingerprint, start, AlertStatus::Firing);
        }
    }

    /// Queue one detector signal: `Ok(true)` when it replaced a waiting
    /// signal of its series, `Err` (with it back) when the lane is full.
    pub fn push_detector(&mut self, signal: Signal) -> Result<bool, Box<Signal>> {
        if self.detectors.len() >= self.capacity
            && !self.detectors.waiting.contains_key(&signal.fingerprint)
        {
            return Err(Box::new(signal));
        }
        Ok(self.detectors.push(signal).is_some())
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
        assert_eq!(
            l.push_alerts(vec![alert("a1"), alert("a2")], t(0)),
            Ok(Taken::default())
        );
        assert_eq!(l.len_of(Lane::Alerts), 2);
        // all or nothing: two more alerts do not fit in the one place left
        assert!(l.push_alerts(vec![alert("a3"), alert("a4")], t(0)).is_err());
        assert_eq!(l.len_of(Lane::Alerts), 2);
    }

    #[test]
    fn the_lanes_take_turns() {
        let mut l = Lanes::new(10);
        for i in 0..3 {
            l.push_detector(detector(&format!("d{i}"))).unwrap();
        }
        l.push_alerts(vec![alert("a0"), alert("a1")], t(0)).unwrap();
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
        l.push_alerts(vec![alert("a0")], t(0)).unwrap();
        assert_eq!(
            l.push_alerts(vec![alert("a0"), alert("a0")], t(0)),
            Ok(Taken {
                replaced: 2,
                repeats: 0
            })
        );
        assert_eq!(l.len_of(Lane::Alerts), 1);
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    const WINDOW: Duration = Duration::from_secs(60);

    fn door(capacity: usize) -> Lanes {
        Lanes::new(capacity).with_repeats(Repeats::new(WINDOW, usize::MAX))
    }

    #[test]
    fn a_repeated_delivery_is_answered_at_the_door_and_takes_no_room() {
        let mut l = door(2);
        l.push_alerts(vec![alert("a0"), alert("a1")], t(0)).unwrap();
        // the lane is full, and the same delivery again needs no room
        assert_eq!(
            l.push_alerts(vec![alert("a0"), alert("a1")], t(1)),
            Ok(Taken {
                replaced: 0,
                repeats: 2
            })
        );
        assert_eq!(l.len_of(Lane::Alerts), 2);
        while l.pop().is_some() {}
        // taken by the worker, still a repeat; a new occurrence is not
        let mut again = alert("a0");
        again.first_seen = t(5);
        let taken = l
            .push_alerts(vec![alert("a0"), alert("a1"), again], t(2))
            .unwrap();
        assert_eq!(taken.repeats, 2);
        assert_eq!(l.len_of(Lane::Alerts), 1);
        let mut resolved = alert("a1");
        resolved.status = AlertStatus::Resolved;
        assert_eq!(l.push_alerts(vec![resolved], t(3)).unwrap().repeats, 0);
    }

    #[test]
    fn a_repeat_is_news_again_once_the_window_passed() {
        let mut l = door(10);
        l.push_alerts(vec![alert("a0")], t(0)).unwrap();
        l.pop();
        assert_eq!(l.push_alerts(vec![alert("a0")], t(59)).unwrap().repeats, 1);
        assert_eq!(l.push_alerts(vec![alert("a0")], t(60)).unwrap().repeats, 0);
        assert_eq!(l.len_of(Lane::Alerts), 1);
    }

    #[test]
    fn an_occurrence_replaced_while_waiting_is_news_when_delivered_again() {
        let mut l = door(10);
        l.push_alerts(vec![alert("a0")], t(0)).unwrap();
        let mut resolved = alert("a0");
        resolved.status = AlertStatus::Resolved;
        assert_eq!(l.push_alerts(vec![resolved], t(1)).unwrap().replaced, 1);
        // the firing occurrence never reached the guard
        assert_eq!(l.push_alerts(vec![alert("a0")], t(2)).unwrap().repeats, 0);
        assert_eq!(l.pop().unwrap().status, AlertStatus::Firing);
    }

    #[test]
    fn a_delivery_turned_away_is_not_remembered() {
        let mut l = door(1);
        l.push_alerts(vec![alert("a0")], t(0)).unwrap();
        assert!(l.push_alerts(vec![alert("a1"), alert("a2")], t(1)).is_err());
        l.pop();
        assert_eq!(l.push_alerts(vec![alert("a1")], t(2)).unwrap().repeats, 0);
    }

    #[test]
    fn the_door_remembers_at_most_half_what_the_guard_does() {
        let r = Repeats::new(WINDOW, usize::MAX);
        assert_eq!(r.capacity, crate::guard::MAX_REMEMBERED_OCCURRENCES / 2);
        let mut l = Lanes::new(100).with_repeats(Repeats::new(WINDOW, 3));
        for i in 0..5 {
            l.push_alerts(vec![alert(&format!("a{i}"))], t(i)).unwrap();
        }
        l.push_alerts(vec![], t(5)).unwrap();
        assert_eq!(l.repeats().unwrap().len(), 3);
        // the oldest went first
        assert_eq!(l.push_alerts(vec![alert("a4")], t(6)).unwrap().repeats, 1);
        assert_eq!(l.push_alerts(vec![alert("a0")], t(6)).unwrap().repeats, 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A delivery of these alerts (series, start, resolved) after `dt` seconds.
        Deliver { dt: u8, alerts: Vec<(u8, u8, bool)> },
        /// The worker takes `n` signals to the guard after `dt` seconds.
        Take { dt: u8, n: u8 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (
                0u8..40,
                proptest::collection::vec((0u8..4, 0u8..2, any::<bool>()), 1..4)
            )
                .prop_map(|(dt, alerts)| Op::Deliver { dt, alerts }),
            (0u8..40, 0u8..4).prop_map(|(dt, n)| Op::Take { dt, n }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 400,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// The door never turns away what the guard would judge: every
        /// delivery it answers as a repeat is of an occurrence waiting in
        /// the lane (the guard will see it, and this delivery would be its
        /// duplicate), or one the guard admitted less than its dedupe
        /// window ago (the guard would call it a duplicate now).
        #[test]
        fn every_repeat_is_one_the_guard_would_call_a_duplicate(
            ops in proptest::collection::vec(op(), 1..60)
        ) {
            let policy = crate::policy::Policy::from_yaml(
                "guard: {dedupeWindow: 60s}\nroutes: [{remediation: delete-pod}]",
            )
            .unwrap();
            let mut guard = crate::guard::Guard::new(&policy.guard, &policy.features, "heal8s").unwrap();
            let mut l = door(6);
            let mut now = 0;
            // when the guard admitted each occurrence (duplicates included)
            let mut admitted: HashMap<Occurrence, Vec<i64>> = HashMap::new();
            let make = |(series, start, resolved): (u8, u8, bool)| {
                let mut s = alert(&format!("p{series}"));
                s.first_seen = t(i64::from(start) * 1000);
                if resolved {
                    s.status = AlertStatus::Resolved;
                }
                s
            };
            let mut take = |l: &mut Lanes, n: usize, now: i64, admitted: &mut HashMap<Occurrence, Vec<i64>>| {
                for _ in 0..n {
                    let Some(s) = l.pop() else { break };
                    guard.admit(&s, t(now));
                    admitted.entry(occurrence(&s)).or_default().push(now);
                }
            };
            for op in ops {
                match op {
                    Op::Deliver { dt, alerts } => {
                        now += i64::from(dt);
                        // one alert at a time, so each verdict is known
                        for s in alerts.into_iter().map(make) {
                            let waiting = l
                                .alerts
                                .waiting
                                .get(&s.fingerprint)
                                .is_some_and(|w| occurrence(w) == occurrence(&s));
                            let occ = occurrence(&s);
                            let Ok(taken) = l.push_alerts(vec![s], t(now)) else {
                                continue;
                            };
                            if taken.repeats == 0 {
                                continue;
                            }
                            let recent = admitted
                                .get(&occ)
                                .is_some_and(|at| at.iter().any(|a| now - a < 60));
                            proptest::prop_assert!(
                                waiting || recent,
                                "{occ:?} turned away at {now}s: neither waiting nor admitted within the window ({:?})",
                                admitted.get(&occ)
                            );
                        }
                    }
                    Op::Take { dt, n } => {
                        now += i64::from(dt);
                        take(&mut l, usize::from(n), now, &mut admitted);
                    }
                }
            }
        }
    }
}
