//! Occurrence thresholds (a route's `minOccurrences` within `window`): one
//! probe blip changes nothing; heal8s acts from the N-th occurrence of a
//! problem within the window.
//!
//! A problem is an owning workload (or the target, without one) and a
//! reason (the detector's or the alert's `reason`, else the route's
//! remediation). An occurrence is one signal occurrence (its fingerprint and
//! when it started): Alertmanager's repeats of an alert, and a detector
//! signalling a problem that persists, are the same occurrence and count
//! once; an alert and a detector signal about the same problem count as two.
//!
//! Owns: the counting, bounded. Pure; the clock is passed in. The counts
//! live in memory: after a restart or a failover they start again (heal8s
//! then waits longer, never less).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;

/// Problems counted at once at most; past it the quietest are forgotten.
pub const MAX_PROBLEMS: usize = 10_000;

/// The occurrences seen per problem, newest last.
#[derive(Debug, Clone, Default)]
pub struct Occurrences {
    seen: HashMap<String, VecDeque<(Timestamp, String)>>,
}

/// Where a problem stands against its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Distinct occurrences within the window, this one included.
    pub seen: usize,
    pub min: u32,
}

impl Count {
    /// Whether the threshold is met.
    pub fn met(self) -> bool {
        self.seen >= self.min as usize
    }
}

impl Occurrences {
    /// Count occurrence `id` of `problem` at `now` against `min` within
    /// `window`: a repeat of an `id` already counted in the window counts once.
    pub fn count(
        &mut self,
        problem: &str,
        id: &str,
        min: u32,
        window: Duration,
        now: Timestamp,
    ) -> Count {
        if self.seen.len() >= MAX_PROBLEMS && !self.seen.contains_key(problem) {
            self.forget(now, window);
        }
        let q = self.seen.entry(problem.to_string()).or_default();
        while q
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at).unsigned_abs() >= window)
        {
            q.pop_front();
        }
        if !q.iter().any(|(_, seen)| seen == id) {
            q.push_back((now, id.to_string()));
        }
        // no more than the threshold needs is kept
        while q.len() > min as usize {
            q.pop_front();
        }
        Count { seen: q.len(), min }
    }

    /// Make room: problems with nothing inside `window` go; if that is not
    /// enough, the half seen least recently.
    fn forget(&mut self, now: Timestamp, window: Duration) {
        self.seen.retain(|_, q| {
            q.back()
                .is_some_and(|(at, _)| now.duration_since(*at).unsigned_abs() < window)
        });
        if self.seen.len() >= MAX_PROBLEMS {
            let mut last: Vec<(Timestamp, String)> = self
                .seen
                .iter()
                .filter_map(|(k, q)| q.back().map(|(at, _)| (*at, k.clone())))
                .collect();
            last.sort();
            for (_, k) in last.into_iter().take(MAX_PROBLEMS / 2) {
                self.seen.remove(&k);
            }
        }
    }

    /// How many problems are being counted.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    const W: Duration = Duration::from_secs(600);

    #[test]
    fn the_nth_distinct_occurrence_within_the_window_meets_the_threshold() {
        let mut o = Occurrences::default();
        let c = o.count("Deployment/shop/api|CrashLoopBackOff", "a@1", 3, W, at(0));
        assert_eq!((c.seen, c.met()), (1, false));
        // a repeat of the same occurrence counts once
        let c = o.count("Deployment/shop/api|CrashLoopBackOff", "a@1", 3, W, at(60));
        assert_eq!(c.seen, 1);
        assert_eq!(
            o.count("Deployment/shop/api|CrashLoopBackOff", "b@2", 3, W, at(120))
                .seen,
            2
        );
        // another problem counts apart
        assert_eq!(
            o.count("Deployment/shop/web|CrashLoopBackOff", "c@3", 3, W, at(130))
                .seen,
            1
        );
        assert_eq!(
            o.count("Deployment/shop/api|OOMKilled", "d@4", 3, W, at(130))
                .seen,
            1
        );
        let c = o.count("Deployment/shop/api|CrashLoopBackOff", "e@5", 3, W, at(180));
        assert_eq!((c.seen, c.met()), (3, true));
    }

    #[test]
    fn occurrences_older_than_the_window_no_longer_count() {
        let mut o = Occurrences::default();
        o.count("p", "a", 2, W, at(0));
        // exactly one window later the first is out
        let c = o.count("p", "b", 2, W, at(600));
        assert_eq!((c.seen, c.met()), (1, false));
        let c = o.count("p", "c", 2, W, at(601));
        assert!(c.met());
        // the same id again after the window is a fresh sighting of it
        let mut o = Occurrences::default();
        o.count("p", "a", 2, W, at(0));
        assert_eq!(o.count("p", "a", 2, W, at(700)).seen, 1);
    }

    #[test]
    fn memory_is_bounded() {
        let mut o = Occurrences::default();
        for i in 0..(MAX_PROBLEMS + 10) {
            o.count(&format!("p{i}"), "x", 100, W, at(i as i64));
        }
        assert!(o.len() <= MAX_PROBLEMS, "{}", o.len());
        // the newest problems are still counted
        assert!(o.seen.contains_key(&format!("p{}", MAX_PROBLEMS + 9)));
        assert!(!o.seen.contains_key("p0"), "the quietest went");
        let mut o = Occurrences::default();
        for i in 0..1000 {
            o.count("p", &format!("id{i}"), 5, W, at(i));
        }
        assert_eq!(o.seen["p"].len(), 5, "no more than the threshold is kept");
    }
}
