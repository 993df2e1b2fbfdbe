//! Standing down, made visible: turns the guard's breakers and the refused
//! outcomes into what people see (breaker episodes opened, updated, closed;
//! refusals counted per reason, class and namespace over a window).
//!
//! Owns: episode identity and record names, the throttle on record updates,
//! the refusal tallies and their caps. Pure: time is passed in, nothing here
//! does IO; the [`StandDown`] implementation (Events, records) sits at the edge.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::guard::{ActionClass, Breaker, RefusalReason};
use crate::outcome::{Outcome, OutcomeKind};
use crate::target::Target;

/// How many refused targets an aggregate names as examples.
pub const EXAMPLES: usize = 5;

/// How many aggregates a window (and an episode) keeps apart; refusals under
/// further keys are only counted (`omitted`), which bounds Events per window.
pub const MAX_AGGREGATES: usize = 50;

/// An open episode's record is rewritten at most this often (its opening and
/// closing are written at once).
pub const UPDATE_EVERY: Duration = Duration::from_secs(10);

/// How many closed episodes are remembered for `/breakers`.
pub const CLOSED_KEPT: usize = 16;

/// How many blocked targets an episode lists (the oldest go first), as the guard.
pub const BLOCKED_KEPT: usize = 100;

/// Refusals of one reason, class and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalCount {
    pub reason: RefusalReason,
    pub class: ActionClass,
    /// `None` for cluster-scoped targets (nodes).
    pub namespace: Option<String>,
    pub count: u64,
    /// The first few refused targets (distinct), at most [`EXAMPLES`].
    pub examples: Vec<Target>,
    pub first: Timestamp,
    pub last: Timestamp,
    /// The last refusal's sentence.
    pub message: String,
}

impl RefusalCount {
    /// Whether people should be warned: a breaker, a budget, an escalation or
    /// an unreadable cluster; a cooldown, protection or switched-off feature
    /// is the policy working as written.
    pub fn warning(&self) -> bool {
        !matches!(
            self.reason,
            RefusalReason::Cooldown
                | RefusalReason::ProtectedNamespace
                | RefusalReason::ExcludedNamespace
                | RefusalReason::OptedOut
                | RefusalReason::NamespaceOptedOut
                | RefusalReason::Disabled
                | RefusalReason::TypeNotAllowed
                | RefusalReason::GitopsOwned
                | RefusalReason::MaintenanceWindow
                | RefusalReason::HeldByAlert
                | RefusalReason::Paused
        )
    }

    /// `Pod/shop/a, Pod/shop/b (+3 more)`.
    pub fn examples_text(&self) -> String {
        let named: Vec<String> = self.examples.iter().map(Target::key).collect();
        let more = self.count.saturating_sub(named.len() as u64);
        if more == 0 {
            named.join(", ")
        } else {
            format!("{} (+{more} more)", named.join(", "))
        }
    }
}

/// Refusals counted per (reason, class, namespace), at most [`MAX_AGGREGATES`] keys.
#[derive(Debug, Clone, Default)]
struct Tally {
    counts: BTreeMap<(&'static str, ActionClass, Option<String>), RefusalCount>,
    omitted: u64,
}

impl Tally {
    fn add(&mut self, reason: RefusalReason, class: ActionClass, target: &Target, o: &Outcome) {
        let namespace = match target.kind {
            crate::target::TargetKind::Namespace => Some(target.name.clone()),
            _ => target.namespace.clone(),
        };
        let key = (reason.as_str(), class, namespace.clone());
        if !self.counts.contains_key(&key) && self.counts.len() >= MAX_AGGREGATES {
            self.omitted += 1;
            return;
        }
        let c = self.counts.entry(key).or_insert_with(|| RefusalCount {
            reason,
            class,
            namespace,
            count: 0,
            examples: Vec::new(),
            first: o.at,
            last: o.at,
            message: String::new(),
        });
        c.count += 1;
        c.last = o.at;
        c.message.clone_from(&o.message);
        if c.examples.len() < EXAMPLES && !c.examples.iter().any(|e| e.key() == target.key()) {
            c.examples.push(target.clone());
        }
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.omitted == 0
    }

    fn counts(&self) -> Vec<RefusalCount> {
        self.counts.values().cloned().collect()
    }
}

/// One breaker episode: from the first refusal of a class to the moment the
/// class may act again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Episode {
    /// The name of its record: `breaker-<class>-<since, unix seconds>`.
    pub record: String,
    #[serde(flatten)]
    pub breaker: Breaker,
    /// Every refusal of the class while it held, by reason and namespace.
    pub refusals: Vec<RefusalCount>,
    /// Refusals under keys past [`MAX_AGGREGATES`]: counted, not listed.
    pub refusals_omitted: u64,
    /// Since when the class was free (it was allowed to act, and no breaker
    /// held it again for a window); `None` while it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<Timestamp>,
}

impl Episode {
    /// How many refusals the episode counted.
    pub fn refused(&self) -> u64 {
        self.refusals.iter().map(|c| c.count).sum::<u64>() + self.refusals_omitted
    }
}

/// The record name of the episode of `class` that began at `since`.
pub fn record_name(class: ActionClass, since: Timestamp) -> String {
    format!("breaker-{}-{}", class.as_str(), since.as_second())
}

/// What people should be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A breaker began holding a class: an Event and a new record.
    Opened(Episode),
    /// An open episode blocked more (its record is rewritten, throttled).
    Updated(Episode),
    /// The class may act again: the record is settled, and an Event says so.
    Closed(Episode),
    /// Refusals of one window, one Event per aggregate.
    Refusals {
        since: Timestamp,
        until: Timestamp,
        counts: Vec<RefusalCount>,
        /// Refusals under keys past [`MAX_AGGREGATES`].
        omitted: u64,
    },
    /// This process became the one that acts: records of episodes other than
    /// `holding` were left by another process and are settled.
    TookOver { holding: Vec<String> },
}

#[derive(Debug, Clone)]
struct Open {
    episode: Episode,
    tally: Tally,
    written: Timestamp,
    dirty: bool,
    /// The guard's `since` of the breaker seen last (it starts over each
    /// time the class acts).
    guard_since: Timestamp,
    /// Since when no breaker has held the class.
    free_since: Option<Timestamp>,
}

impl Open {
    fn snapshot(&self) -> Episode {
        let mut e = self.episode.clone();
        e.refusals = self.tally.counts();
        e.refusals_omitted = self.tally.omitted;
        e
    }
}

/// The state between observations: open episodes, the refusal window and
/// the last few closed episodes.
#[derive(Debug, Clone)]
pub struct Board {
    window: Duration,
    open: BTreeMap<ActionClass, Open>,
    tally: Tally,
    window_start: Option<Timestamp>,
    closed: std::collections::VecDeque<Episode>,
}

fn elapsed(now: Timestamp, then: Timestamp) -> Duration {
    now.duration_since(then).unsigned_abs()
}

/// The class and target of a refusal worth reporting: one with a plan and a
/// target, whose target still needs help (not gone, not recovered).
fn refusal(o: &Outcome) -> Option<(RefusalReason, ActionClass, &Target)> {
    let reason = o.reason?;
    if o.result != OutcomeKind::Refused
        || matches!(
            reason,
            RefusalReason::ConditionCleared | RefusalReason::TargetGone
        )
    {
        return None;
    }
    let plan = o.plan.as_ref()?;
    Some((reason, ActionClass::of(plan), plan.target.as_ref()?))
}

impl Board {
    /// A board whose window is `window`: one Event per refusal aggregate per
    /// window, and an episode closes once its class was free for a window.
    pub fn new(window: Duration) -> Board {
        Board {
            window,
            open: BTreeMap::new(),
            tally: Tally::default(),
            window_start: None,
            closed: std::collections::VecDeque::new(),
        }
    }

    /// Take in the guard's breakers as they are now and the outcomes of the
    /// signal just processed (none on a tick); say what people should be told.
    pub fn observe(
        &mut self,
        breakers: &[Breaker],
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        // an episode ends once no breaker has held its class for a whole
        // window: a class that acts once between refusals (a budget that
        // frees one slot at a time) is one episode, not dozens
        let mut ended = Vec::new();
        for (class, o) in &mut self.open {
            match breakers.iter().find(|b| b.class == *class) {
                Some(b) => {
                    let anew = o.free_since.take().is_some() || b.since != o.guard_since;
                    o.guard_since = b.since;
                    let e = &mut o.episode.breaker;
                    let before = (e.reason, e.message.len(), e.blocked.len());
                    e.reason = b.reason;
                    e.message.clone_from(&b.message);
                    for t in &b.blocked {
                        if !e.blocked.contains(t) {
                            if e.blocked.len() == BLOCKED_KEPT {
                                e.blocked.remove(0);
                            }
                            e.blocked.push(t.clone());
                        }
                    }
                    if anew || before != (e.reason, e.message.len(), e.blocked.len()) {
                        o.dirty = true;
                    }
                }
                None => {
                    let free = *o.free_since.get_or_insert(now);
                    if elapsed(now, free) >= self.window {
                        ended.push(*class);
                    }
                }
            }
        }
        for class in ended {
            if let Some(o) = self.open.remove(&class) {
                let mut e = o.snapshot();
                e.closed = o.free_since;
                if self.closed.len() == CLOSED_KEPT {
                    self.closed.pop_front();
                }
                self.closed.push_back(e.clone());
                out.push(Notice::Closed(e));
            }
        }
        let mut opened = Vec::new();
        for b in breakers {
            if self.open.contains_key(&b.class) {
                continue;
            }
            opened.push(b.class);
            self.open.insert(
                b.class,
                Open {
                    episode: Episode {
                        record: record_name(b.class, b.since),
                        breaker: b.clone(),
                        refusals: Vec::new(),
                        refusals_omitted: 0,
                        closed: None,
                    },
                    tally: Tally::default(),
                    written: now,
                    dirty: false,
                    guard_since: b.since,
                    free_since: None,
                },
            );
        }
        for o in outcomes {
            let Some((reason, class, target)) = refusal(o) else {
                continue;
            };
            self.tally.add(reason, class, target, o);
            self.window_start.get_or_insert(o.at);
            if let Some(open) = self.open.get_mut(&class) {
                open.tally.add(reason, class, target, o);
                open.dirty = true;
            }
        }
        for class in &opened {
            if let Some(o) = self.open.get_mut(class) {
                o.dirty = false;
                out.push(Notice::Opened(o.snapshot()));
            }
        }
        for o in self.open.values_mut() {
            if o.dirty && elapsed(now, o.written) >= UPDATE_EVERY {
                o.dirty = false;
                o.written = now;
                out.push(Notice::Updated(o.snapshot()));
            }
        }
        if let Some(start) = self.window_start
            && elapsed(now, start) >= self.window
            && !self.tally.is_empty()
        {
            let tally = std::mem::take(&mut self.tally);
            self.window_start = None;
            out.push(Notice::Refusals {
                since: start,
                until: now,
                counts: tally.counts(),
                omitted: tally.omitted,
            });
        }
        out
    }

    /// The episodes holding now, by class.
    pub fn open(&self) -> Vec<Episode> {
        self.open.values().map(Open::snapshot).collect()
    }

    /// The last few episodes that ended, oldest first.
    pub fn closed(&self) -> Vec<Episode> {
        self.closed.iter().cloned().collect()
    }

    /// The notice for becoming the process that acts.
    pub fn took_over(&self) -> Notice {
        Notice::TookOver {
            holding: self
                .open
                .values()
                .map(|o| o.episode.record.clone())
                .collect(),
        }
    }
}

/// Where notices go: Kubernetes Events and records, or nowhere offline.
#[async_trait::async_trait]
pub trait StandDown: Send + Sync {
    /// Tell people; failures are logged, never fatal.
    async fn publish(&self, notice: &Notice);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::alertmanager::AlertStatus;
    use crate::plan::Plan;
    use crate::policy::Policy;
    use crate::target::TargetKind;
    use crate::testutil::signal;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn breaker(class: ActionClass, since: i64, blocked: &[&str]) -> Breaker {
        Breaker {
            class,
            reason: RefusalReason::Partition,
            since: t(since),
            message: "2 of 4 nodes are unhealthy".into(),
            blocked: blocked.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn refused(
        kind: TargetKind,
        ns: Option<&str>,
        name: &str,
        reason: RefusalReason,
        at: i64,
    ) -> Outcome {
        let (labels, route) = match kind {
            TargetKind::Node => (
                vec![("alertname", "N"), ("node", name)],
                "{remediation: drain-node}",
            ),
            _ => (
                vec![
                    ("alertname", "P"),
                    ("namespace", ns.unwrap_or_default()),
                    ("pod", name),
                ],
                "{remediation: delete-pod}",
            ),
        };
        let p = Policy::from_yaml(&format!("routes: [{route}]")).unwrap();
        let plan = Plan::build(&signal(&labels), &p.routes[0]).unwrap();
        Outcome {
            at: t(at),
            source: crate::signal::SourceKind::Alert,
            name: "P".into(),
            fingerprint: "f".into(),
            status: AlertStatus::Firing,
            target: plan.target.as_ref().map(ToString::to_string),
            route: None,
            remediation: Some(plan.kind()),
            mode: Some(plan.mode),
            result: OutcomeKind::Refused,
            reason: Some(reason),
            escalated: false,
            message: format!("refused: {}", reason.as_str()),
            pull_request: None,
            deferred: None,
            plan: Some(plan),
            ledger: Vec::new(),
            deleted: None,
            cluster: None,
            approved_by: None,
            trace: None,
        }
    }

    fn node(name: &str, at: i64) -> Outcome {
        refused(TargetKind::Node, None, name, RefusalReason::Partition, at)
    }

    fn pod(ns: &str, name: &str, reason: RefusalReason, at: i64) -> Outcome {
        refused(TargetKind::Pod, Some(ns), name, reason, at)
    }

    fn kinds(n: &[Notice]) -> Vec<&'static str> {
        n.iter()
            .map(|n| match n {
                Notice::Opened(_) => "opened",
                Notice::Updated(_) => "updated",
                Notice::Closed(_) => "closed",
                Notice::Refusals { .. } => "refusals",
                Notice::TookOver { .. } => "took_over",
            })
            .collect()
    }

    #[test]
    fn an_episode_opens_once_updates_at_most_every_ten_seconds_and_closes() {
        let mut b = Board::new(Duration::from_secs(60));
        let n = b.observe(
            &[breaker(ActionClass::Nodes, 0, &["Node/-/a"])],
            &[node("a", 0)],
            t(0),
        );
        assert_eq!(kinds(&n), ["opened"]);
        let Notice::Opened(e) = &n[0] else { panic!() };
        assert_eq!(e.record, "breaker-nodes-1700000000");
        assert_eq!(e.breaker.blocked, ["Node/-/a"]);
        assert_eq!(e.refused(), 1, "the refusal that opened it counts");
        // a second node blocked 3 s later: no rewrite yet
        let two = breaker(ActionClass::Nodes, 0, &["Node/-/a", "Node/-/b"]);
        assert!(
            b.observe(std::slice::from_ref(&two), &[node("b", 3)], t(3))
                .is_empty()
        );
        // the tick after the throttle writes it, once
        let n = b.observe(std::slice::from_ref(&two), &[], t(10));
        assert_eq!(kinds(&n), ["updated"]);
        let Notice::Updated(e) = &n[0] else { panic!() };
        assert_eq!(e.breaker.blocked, ["Node/-/a", "Node/-/b"]);
        assert_eq!(e.refused(), 2);
        assert!(b.observe(std::slice::from_ref(&two), &[], t(30)).is_empty());
        assert_eq!(b.open().len(), 1);
        // the guard let the class act again: closed once it stayed free a window
        assert!(b.observe(&[], &[], t(40)).is_empty());
        assert_eq!(b.open().len(), 1, "the gauge holds until it is closed");
        let n = b.observe(&[], &[], t(100));
        assert_eq!(
            kinds(&n),
            ["closed", "refusals"],
            "and the window's two refusals"
        );
        let Notice::Closed(e) = &n[0] else { panic!() };
        assert_eq!(
            e.closed,
            Some(t(40)),
            "free since the first look without it"
        );
        assert_eq!(e.breaker.blocked, ["Node/-/a", "Node/-/b"]);
        assert!(b.open().is_empty());
        assert_eq!(b.closed().len(), 1);
        assert!(b.observe(&[], &[], t(200)).is_empty(), "closed once");
    }

    #[test]
    fn a_class_that_acts_once_between_refusals_stays_one_episode() {
        // a spent budget frees one slot at a time: allowed, then held anew
        let mut b = Board::new(Duration::from_secs(60));
        b.observe(&[breaker(ActionClass::Pods, 0, &["Pod/shop/a"])], &[], t(0));
        assert!(b.observe(&[], &[], t(6)).is_empty());
        let n = b.observe(
            &[breaker(ActionClass::Pods, 7, &["Pod/shop/c"])],
            &[],
            t(20),
        );
        assert_eq!(kinds(&n), ["updated"], "{n:?}");
        let Notice::Updated(e) = &n[0] else { panic!() };
        assert_eq!(e.record, "breaker-pods-1700000000", "the same record");
        assert_eq!(e.breaker.since, t(0));
        assert_eq!(e.breaker.blocked, ["Pod/shop/a", "Pod/shop/c"]);
        // free for a whole window after that: closed; held again later: a new episode
        assert_eq!(kinds(&b.observe(&[], &[], t(21))), Vec::<&str>::new());
        assert_eq!(kinds(&b.observe(&[], &[], t(81))), ["closed"]);
        let n = b.observe(
            &[breaker(ActionClass::Pods, 90, &["Pod/shop/d"])],
            &[],
            t(90),
        );
        let [Notice::Opened(e)] = n.as_slice() else {
            panic!("{n:?}")
        };
        assert_eq!(e.record, "breaker-pods-1700000090");
        assert_eq!(e.breaker.blocked, ["Pod/shop/d"]);
    }

    #[test]
    fn refusals_are_counted_per_reason_class_and_namespace_once_per_window() {
        let mut b = Board::new(Duration::from_secs(60));
        let mut outcomes: Vec<Outcome> = (0..30)
            .map(|i| pod("shop", &format!("api-{i}"), RefusalReason::GlobalBudget, 1))
            .collect();
        outcomes.push(pod("blog", "web-1", RefusalReason::Cooldown, 2));
        outcomes.push(pod("blog", "web-2", RefusalReason::Cooldown, 2));
        // not standing down: the target is fine or gone
        outcomes.push(pod("blog", "ok-1", RefusalReason::ConditionCleared, 2));
        outcomes.push(pod("blog", "ok-2", RefusalReason::TargetGone, 2));
        assert!(
            b.observe(&[], &outcomes, t(2)).is_empty(),
            "not before the window ends"
        );
        let n = b.observe(
            &[],
            &[pod("shop", "api-0", RefusalReason::GlobalBudget, 30)],
            t(30),
        );
        assert!(n.is_empty());
        let n = b.observe(&[], &[], t(61));
        let [
            Notice::Refusals {
                since,
                until,
                counts,
                omitted,
            },
        ] = n.as_slice()
        else {
            panic!("{n:?}")
        };
        assert_eq!((*since, *until, *omitted), (t(1), t(61), 0));
        assert_eq!(counts.len(), 2, "{counts:#?}");
        let shop = counts
            .iter()
            .find(|c| c.namespace.as_deref() == Some("shop"))
            .unwrap();
        assert_eq!(
            (shop.reason, shop.class, shop.count),
            (RefusalReason::GlobalBudget, ActionClass::Pods, 31)
        );
        assert_eq!(
            shop.examples.len(),
            EXAMPLES,
            "distinct examples, at most {EXAMPLES}"
        );
        assert_eq!(
            shop.examples_text(),
            "Pod/shop/api-0, Pod/shop/api-1, Pod/shop/api-2, Pod/shop/api-3, Pod/shop/api-4 (+26 more)"
        );
        assert!(shop.warning());
        let blog = counts
            .iter()
            .find(|c| c.namespace.as_deref() == Some("blog"))
            .unwrap();
        assert_eq!((blog.reason, blog.count), (RefusalReason::Cooldown, 2));
        assert!(!blog.warning(), "a cooldown is the policy working");
        // the window starts over
        assert!(b.observe(&[], &[], t(200)).is_empty());
    }

    #[test]
    fn aggregates_past_the_cap_are_counted_not_listed() {
        let mut b = Board::new(Duration::from_secs(1));
        let outcomes: Vec<Outcome> = (0..MAX_AGGREGATES + 7)
            .map(|i| pod(&format!("ns-{i}"), "p", RefusalReason::NamespaceBudget, 0))
            .collect();
        let n = b.observe(&[], &outcomes, t(5));
        let [
            Notice::Refusals {
                counts, omitted, ..
            },
        ] = n.as_slice()
        else {
            panic!("{n:?}")
        };
        assert_eq!((counts.len(), *omitted), (MAX_AGGREGATES, 7));
    }

    #[test]
    fn an_episode_keeps_the_refusals_of_its_class_while_it_holds() {
        let mut b = Board::new(Duration::from_secs(60));
        let pods = Breaker {
            class: ActionClass::Pods,
            reason: RefusalReason::GlobalBudget,
            since: t(0),
            message: "10 actions in the last 1m".into(),
            blocked: vec!["Pod/shop/api-0".into()],
        };
        let outcomes = [
            pod("shop", "api-0", RefusalReason::GlobalBudget, 0),
            pod("shop", "api-1", RefusalReason::NamespaceBudget, 0),
            node("w1", 0),
        ];
        let n = b.observe(std::slice::from_ref(&pods), &outcomes, t(0));
        let Notice::Opened(e) = &n[0] else {
            panic!("{n:?}")
        };
        let reasons: Vec<_> = e.refusals.iter().map(|c| (c.reason, c.count)).collect();
        assert_eq!(
            reasons,
            [
                (RefusalReason::GlobalBudget, 1),
                (RefusalReason::NamespaceBudget, 1)
            ],
            "a node refusal is not the pods episode's"
        );
    }

    #[test]
    fn taking_over_names_the_records_this_process_holds() {
        let mut b = Board::new(Duration::from_secs(60));
        b.observe(&[breaker(ActionClass::Nodes, 0, &[])], &[], t(0));
        assert_eq!(
            b.took_over(),
            Notice::TookOver {
                holding: vec!["breaker-nodes-1700000000".into()]
            }
        );
    }
}
