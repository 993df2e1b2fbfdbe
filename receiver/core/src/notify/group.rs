//! Grouping and rate limits per receiver: the first notice of a kind goes out
//! at once; repeats of the same kind within the group window are held and go
//! out as one summary when it ends ("12 more delete-pod done in shop in the
//! last 1m"). Past a receiver's rate limit, notices are held the same way,
//! never dropped: the summary counts them.
//!
//! Owns: the groups, their windows and the rate limit's sliding window. Pure;
//! the clock is passed in.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::duration::PromDuration;
use crate::guard::RefusalReason;
use crate::policy::Budget;
use crate::remediation::RemediationKind;

use super::{Event, Notice};

/// Targets a summary names at most.
pub const EXAMPLES: usize = 5;
/// Groups open at once at most: past it, a new kind of notice is sent
/// without a group (and still within the rate limit).
pub const MAX_GROUPS: usize = 4096;

/// What notices of one kind share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kind {
    receiver: String,
    event: Event,
    remediation: Option<RemediationKind>,
    namespace: Option<String>,
    reason: Option<RefusalReason>,
    /// For receivers that keep one incident per problem (a pager): the problem.
    key: Option<String>,
}

#[derive(Debug, Clone)]
struct Group {
    until: Timestamp,
    held: u32,
    examples: Vec<String>,
    /// The last notice held (the summary is made from it).
    last: Option<Notice>,
}

/// What to do with a notice now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    Send(Box<Notice>),
    /// Held for its group's summary.
    Held,
}

#[derive(Debug)]
pub struct Grouper {
    window: Duration,
    rate: Budget,
    groups: HashMap<Kind, Group>,
    sent: BTreeMap<String, VecDeque<Timestamp>>,
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

impl Grouper {
    pub fn new(window: Duration, rate: Budget) -> Grouper {
        Grouper {
            window,
            rate,
            groups: HashMap::new(),
            sent: BTreeMap::new(),
        }
    }

    /// Whether `receiver` may send one more message at `now`; if so, count it.
    fn take(&mut self, receiver: &str, now: Timestamp) -> bool {
        let per = self.rate.per.get();
        let sent = self.sent.entry(receiver.to_string()).or_default();
        while sent
            .front()
            .is_some_and(|t| now.duration_since(*t).unsigned_abs() >= per)
        {
            sent.pop_front();
        }
        if sent.len() >= self.rate.max as usize {
            return false;
        }
        sent.push_back(now);
        true
    }

    /// When `receiver` may send again (now, if it may).
    fn frees_at(&self, receiver: &str, now: Timestamp) -> Timestamp {
        match self.sent.get(receiver) {
            Some(s) if s.len() >= self.rate.max as usize => s
                .front()
                .map_or(now, |t| plus(*t, self.rate.per.get()).max(now)),
            _ => now,
        }
    }

    /// Offer `notice` for `receiver`. `per_problem`: the receiver keeps one
    /// incident per problem (PagerDuty), so only repeats of the same problem
    /// are grouped.
    pub fn offer(
        &mut self,
        receiver: &str,
        notice: Notice,
        per_problem: bool,
        now: Timestamp,
    ) -> Offer {
        let kind = Kind {
            receiver: receiver.to_string(),
            event: notice.event,
            remediation: notice.remediation,
            namespace: notice.namespace.clone(),
            reason: notice.reason,
            key: per_problem.then(|| notice.key.clone()),
        };
        if let Some(g) = self.groups.get_mut(&kind) {
            g.held += 1;
            if g.examples.len() < EXAMPLES
                && let Some(t) = &notice.target
                && !g.examples.contains(t)
            {
                g.examples.push(t.clone());
            }
            let severity = g.last.as_ref().map_or(notice.severity, |l| l.severity);
            let mut last = notice;
            last.severity = last.severity.max(severity);
            g.last = Some(last);
            return Offer::Held;
        }
        if self.groups.len() >= MAX_GROUPS {
            return if self.take(receiver, now) {
                Offer::Send(Box::new(notice))
            } else {
                Offer::Held
            };
        }
        let sendable = self.take(receiver, now);
        let mut g = Group {
            until: plus(now, self.window),
            held: 0,
            examples: Vec::new(),
            last: None,
        };
        if sendable {
            self.groups.insert(kind, g);
            Offer::Send(Box::new(notice))
        } else {
            g.held = 1;
            g.examples.extend(notice.target.clone());
            g.last = Some(notice);
            self.groups.insert(kind, g);
            Offer::Held
        }
    }

    /// The summaries due at `now`, with their receivers. A group that held
    /// nothing ends; one that held notices sends its summary and stays open
    /// for another window; one whose receiver is past its rate limit waits.
    pub fn due(&mut self, now: Timestamp) -> Vec<(String, Notice)> {
        let ready: Vec<Kind> = self
            .groups
            .iter()
            .filter(|(_, g)| g.until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for kind in ready {
            let Some(g) = self.groups.get(&kind) else {
                continue;
            };
            if g.held == 0 {
                self.groups.remove(&kind);
                continue;
            }
            if !self.take(&kind.receiver, now) {
                let at = self.frees_at(&kind.receiver, now);
                if let Some(g) = self.groups.get_mut(&kind) {
                    g.until = at;
                }
                continue;
            }
            let Some(g) = self.groups.get_mut(&kind) else {
                continue;
            };
            let summary = summarize(g, self.window);
            g.held = 0;
            g.examples.clear();
            g.last = None;
            g.until = plus(now, self.window);
            if let Some(s) = summary {
                out.push((kind.receiver.clone(), s));
            }
        }
        out
    }

    /// When the next summary may be due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.groups.values().map(|g| g.until).min()
    }

    /// Notices held now, over all groups.
    pub fn held(&self) -> u64 {
        self.groups.values().map(|g| u64::from(g.held)).sum()
    }
}

fn summarize(g: &Group, window: Duration) -> Option<Notice> {
    let mut n = g.last.clone()?;
    let what = match n.remediation {
        Some(r) => format!("{} {}", r.as_str(), n.event.as_str().replace('_', " ")),
        None => n.event.as_str().replace('_', " "),
    };
    let place = match (&n.namespace, &n.cluster) {
        (Some(ns), _) => format!(" in {ns}"),
        (None, Some(c)) => format!(" in cluster {c}"),
        (None, None) => String::new(),
    };
    let window = PromDuration(window);
    n.title = if g.held == 1 {
        format!("1 more {what}{place} in the last {window}")
    } else {
        format!("{} more {what}{place} in the last {window}", g.held)
    };
    n.count = g.held;
    n.examples = g.examples.clone();
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Severity;
    use crate::notify::tests::notice;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn g(max: u32) -> Grouper {
        Grouper::new(
            Duration::from_secs(60),
            Budget {
                max,
                per: PromDuration::secs(60),
            },
        )
    }

    #[test]
    fn the_first_goes_out_at_once_and_repeats_become_one_summary() {
        let mut gr = g(100);
        let first = notice(Event::Acted, "shop", "api-0");
        assert!(matches!(
            gr.offer("slack", first, false, t(0)),
            Offer::Send(_)
        ));
        for i in 1..=12 {
            let n = notice(Event::Acted, "shop", &format!("api-{i}"));
            assert_eq!(gr.offer("slack", n, false, t(i)), Offer::Held);
        }
        // another namespace is another kind
        assert!(matches!(
            gr.offer("slack", notice(Event::Acted, "web", "x"), false, t(0)),
            Offer::Send(_)
        ));
        assert_eq!(gr.held(), 12);
        assert!(gr.due(t(59)).is_empty(), "not before the window ends");
        let due = gr.due(t(60));
        assert_eq!(due.len(), 1, "{due:?}");
        let (to, s) = &due[0];
        assert_eq!(to, "slack");
        assert_eq!(s.count, 12);
        assert_eq!(s.title, "12 more delete-pod acted in shop in the last 1m");
        assert_eq!(s.examples.len(), EXAMPLES);
        assert_eq!(s.examples[0], "Pod shop/api-1");
        // the web group held nothing: it ends quietly; the shop group stays
        // open another window, and ends when that one held nothing
        assert_eq!(gr.groups.len(), 1);
        assert!(gr.due(t(120)).is_empty());
        assert!(gr.groups.is_empty());
        assert!(matches!(
            gr.offer(
                "slack",
                notice(Event::Acted, "shop", "api-13"),
                false,
                t(121)
            ),
            Offer::Send(_)
        ));
    }

    #[test]
    fn past_the_rate_limit_notices_are_held_and_counted_not_dropped() {
        let mut gr = g(2);
        let offer = |gr: &mut Grouper, ns: &str, at: i64| {
            matches!(
                gr.offer("r", notice(Event::Failed, ns, "p"), false, t(at)),
                Offer::Send(_)
            )
        };
        assert!(offer(&mut gr, "a", 0));
        assert!(offer(&mut gr, "b", 50));
        assert!(!offer(&mut gr, "c", 1), "past the limit: held");
        assert!(!offer(&mut gr, "d", 2));
        assert_eq!(gr.held(), 2);
        // another receiver has its own limit
        assert!(matches!(
            gr.offer("other", notice(Event::Failed, "a", "p"), false, t(3)),
            Offer::Send(_)
        ));
        // at 61 the send at 0 has left the window: c's summary goes
        let at61 = gr.due(t(61));
        assert_eq!(at61.len(), 1, "{at61:?}");
        assert_eq!(
            (at61[0].1.count, at61[0].1.namespace.as_deref()),
            (1, Some("c"))
        );
        // at 62 the limit is spent again (50 and 61): d waits until 110
        assert!(gr.due(t(62)).iter().all(|(r, _)| r != "r"));
        assert_eq!(gr.held(), 1);
        assert!(gr.due(t(109)).iter().all(|(r, _)| r != "r"));
        let at110 = gr.due(t(110));
        assert!(
            at110
                .iter()
                .any(|(r, s)| r == "r" && s.namespace.as_deref() == Some("d")),
            "{at110:?}"
        );
        assert_eq!(gr.held(), 0);
    }

    #[test]
    fn a_pager_groups_repeats_of_one_problem_only_and_keeps_the_loudest() {
        let mut gr = g(100);
        let mut a = notice(Event::Failed, "shop", "api-1");
        a.key = "Deployment/shop/api".into();
        let mut b = a.clone();
        b.key = "Deployment/shop/web".into();
        assert!(matches!(
            gr.offer("pd", a.clone(), true, t(0)),
            Offer::Send(_)
        ));
        assert!(matches!(gr.offer("pd", b, true, t(1)), Offer::Send(_)));
        let mut loud = a.clone();
        loud.severity = Severity::Critical;
        assert_eq!(gr.offer("pd", loud, true, t(2)), Offer::Held);
        assert_eq!(gr.offer("pd", a, true, t(3)), Offer::Held);
        let due = gr.due(t(60));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.count, 2);
        assert_eq!(due[0].1.severity, Severity::Critical);
        assert_eq!(due[0].1.key, "Deployment/shop/api");
        // the other problem's group ends when its window does
        assert_eq!(gr.next_due(), Some(t(61)));
        assert!(gr.due(t(61)).is_empty());
        assert_eq!(gr.next_due(), Some(t(120)));
    }
}
