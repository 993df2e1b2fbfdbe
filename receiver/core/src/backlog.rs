//! The backlog: plans the guard put off for want of budget, or while a
//! breaker holds, wait here and run as the budget frees, without being
//! signalled again. Plans that may run at once pass through it too, so that
//! the first budget window is shared fairly as well.
//!
//! Owns: the order waiting plans are offered in (round-robin across
//! namespaces, then across workloads within a namespace, oldest first within
//! a workload: the namespace, then the workload, served least recently goes
//! first, so one that comes late is not put behind those already served),
//! coalescing (a newer plan for the same target, remediation and
//! route takes the waiting one's place), and the bound: when full, a newcomer
//! takes the place of the newest plan of the namespace holding the most,
//! unless that is its own namespace, and then it is not kept. Pure: the caller
//! passes the time and judges each offered plan (the guard's precheck); the
//! worker owns the timing.

use std::collections::{HashMap, HashSet, VecDeque};

use jiff::Timestamp;

use crate::guard::{Refusal, RefusalReason};
use crate::plan::Plan;

/// Whether a plan refused for `reason` waits in the backlog (budgets and
/// breakers free with time) rather than ending refused (a cooldown, an
/// escalation, a protected namespace: the detector or Alertmanager signals
/// those again if they persist).
pub fn waits(reason: RefusalReason) -> bool {
    reason.is_breaker() || reason == RefusalReason::NamespaceBudget
}

/// One waiting plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub plan: Plan,
    /// When it first came.
    pub since: Timestamp,
    /// Not offered before this time (a plan the live check put off).
    pub not_before: Option<Timestamp>,
    /// Why it waits, as last said (and reported).
    pub blocked: Option<Refusal>,
    /// Tries whose live facts could not be read (see `Engine::admit`).
    pub unread: u32,
}

/// What the caller makes of an offered plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Take it out and run it now.
    Run,
    /// Leave it waiting; with a refusal, that is why (now).
    Wait(Option<Refusal>),
    /// Take it out: it will never run (a cooldown began, an escalation).
    Drop(Refusal),
}

/// A plan taken out of the backlog.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    Run(Waiting),
    Dropped(Waiting, Refusal),
}

/// What became of a pushed plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    /// It waits at the end of its workload's line.
    Queued,
    /// It took the place of this waiting plan for the same thing.
    Replaced(Box<crate::plan::Plan>),
    /// The backlog was full: it took the place of this plan, now not kept.
    Evicted(Waiting),
    /// The backlog was full and its namespace holds the most: not kept.
    Rejected(Waiting),
    /// A plan a person approved waits for the same thing: it is kept (an
    /// approval is for that plan), and this one, not approved, is not.
    Kept(Box<crate::plan::Plan>),
}

/// Whether a person approved `plan` (mode `approve`).
fn approved(plan: &crate::plan::Plan) -> bool {
    plan.approved_by().is_some()
}

#[derive(Debug, Clone)]
struct Group {
    key: String,
    plans: VecDeque<Waiting>,
}

#[derive(Debug, Clone)]
struct Space {
    namespace: String,
    groups: VecDeque<Group>,
    len: usize,
}

/// Plans waiting their turn. See the module documentation.
#[derive(Debug, Clone)]
pub struct Backlog {
    capacity: usize,
    /// In the order their first plan came.
    spaces: VecDeque<Space>,
    /// Each waiting plan's [`identity`], with the workload line it waits
    /// in (so a newer plan for the same work finds it without a scan).
    ids: HashMap<String, String>,
    len: usize,
    /// When each namespace, and each workload line (`namespace`, key), was
    /// last served (a count of plans taken to run); never served is 0.
    served: HashMap<(String, Option<String>), u64>,
    runs: u64,
}

/// Whether `a` and `b` are the same work (the same [`identity`]), without
/// allocating.
fn same_work(a: &Plan, b: &Plan) -> bool {
    fn target(p: &Plan) -> Option<(&str, Option<&str>, &str, &str)> {
        p.target.as_ref().map(|t| {
            (
                t.kind.kind_name(),
                t.namespace.as_deref(),
                t.name.as_str(),
                t.container.as_deref().unwrap_or(""),
            )
        })
    }
    a.route == b.route
        && a.kind() == b.kind()
        && match (target(a), target(b)) {
            (Some(x), Some(y)) => x == y,
            (None, None) => a.trigger.fingerprint == b.trigger.fingerprint,
            _ => false,
        }
}

/// What makes two plans the same work: route, remediation, target, container.
fn identity(plan: &Plan) -> String {
    let (target, container) = plan.target.as_ref().map_or_else(
        || (format!("signal/{}", plan.trigger.fingerprint), ""),
        |t| (t.key(), t.container.as_deref().unwrap_or("")),
    );
    format!(
        "{}\u{0}{}\u{0}{target}\u{0}{container}",
        plan.route,
        plan.kind().as_str()
    )
}

impl Backlog {
    /// An empty backlog holding at most `capacity` plans (at least 1).
    pub fn new(capacity: usize) -> Backlog {
        Backlog {
            capacity: capacity.max(1),
            spaces: VecDeque::new(),
            ids: HashMap::new(),
            len: 0,
            served: HashMap::new(),
            runs: 0,
        }
    }

    /// When `namespace` (or its workload line `line`) was last served.
    fn last_served(&self, namespace: &str, line: Option<&str>) -> u64 {
        self.served
            .get(&(namespace.to_string(), line.map(str::to_string)))
            .copied()
            .unwrap_or(0)
    }

    /// Note that `namespace` and its line `line` were served now.
    fn serve(&mut self, namespace: String, line: String) {
        self.runs += 1;
        // the memory of who was served stays bounded: lines whose
        // namespace no longer waits are forgotten first
        if self.served.len() >= 4 * self.capacity.max(1024) {
            let waiting: HashSet<&String> = self.spaces.iter().map(|s| &s.namespace).collect();
            self.served
                .retain(|(ns, l), _| l.is_none() || waiting.contains(ns));
        }
        self.served
            .insert((namespace.clone(), Some(line)), self.runs);
        self.served.insert((namespace, None), self.runs);
    }

    /// How many plans wait.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no plan waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most plans it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Every waiting plan, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Waiting> {
        self.spaces
            .iter()
            .flat_map(|s| s.groups.iter().flat_map(|g| g.plans.iter()))
    }

    /// Add `w`, counted against `workload` (the best key known for its
    /// owner) in its plan's namespace (cluster-scoped: the unnamed one).
    pub fn push(&mut self, w: Waiting, workload: &str) -> Pushed {
        let id = identity(&w.plan);
        let ns = w.plan.namespace().unwrap_or("").to_string();
        if let Some(line) = self.ids.get(&id)
            && let Some(old) = self
                .spaces
                .iter_mut()
                .filter(|s| s.namespace == ns)
                .flat_map(|s| s.groups.iter_mut().filter(|g| &g.key == line))
                .flat_map(|g| g.plans.iter_mut())
                .find(|old| same_work(&old.plan, &w.plan))
        {
            if approved(&old.plan) && !approved(&w.plan) {
                return Pushed::Kept(Box::new(w.plan));
            }
            let previous = std::mem::replace(&mut old.plan, w.plan);
            if w.blocked.is_some() {
                old.blocked = w.blocked;
            }
            return Pushed::Replaced(Box::new(previous));
        }
        let mut out = Pushed::Queued;
        if self.len >= self.capacity {
            let own = self
                .spaces
                .iter()
                .find(|s| s.namespace == ns)
                .map_or(0, |s| s.len);
            let fullest = self
                .spaces
                .iter()
                .enumerate()
                .max_by_key(|(_, s)| s.len)
                .map(|(i, s)| (i, s.len));
            match fullest {
                Some((i, n)) if n > own => match self.evict(i) {
                    Some(victim) => out = Pushed::Evicted(victim),
                    None => return Pushed::Rejected(w),
                },
                _ => return Pushed::Rejected(w),
            }
        }
        self.ids.insert(id, workload.to_string());
        self.len += 1;
        let space = match self.spaces.iter_mut().position(|s| s.namespace == ns) {
            Some(i) => &mut self.spaces[i],
            None => {
                self.spaces.push_back(Space {
                    namespace: ns,
                    groups: VecDeque::new(),
                    len: 0,
                });
                let last = self.spaces.len() - 1;
                &mut self.spaces[last]
            }
        };
        space.len += 1;
        match space.groups.iter_mut().find(|g| g.key == workload) {
            Some(g) => g.plans.push_back(w),
            None => space.groups.push_back(Group {
                key: workload.to_string(),
                plans: VecDeque::from([w]),
            }),
        }
        out
    }

    /// Put back a plan taken to run that the live check put off: first in
    /// its workload's line.
    pub fn requeue(&mut self, w: Waiting, workload: &str) {
        let id = identity(&w.plan);
        if self.ids.contains_key(&id) {
            return;
        }
        self.ids.insert(id, workload.to_string());
        self.len += 1;
        let ns = w.plan.namespace().unwrap_or("").to_string();
        let i = match self.spaces.iter().position(|s| s.namespace == ns) {
            Some(i) => i,
            None => {
                self.spaces.push_back(Space {
                    namespace: ns,
                    groups: VecDeque::new(),
                    len: 0,
                });
                self.spaces.len() - 1
            }
        };
        let space = &mut self.spaces[i];
        space.len += 1;
        match space.groups.iter_mut().find(|g| g.key == workload) {
            Some(g) => g.plans.push_front(w),
            None => space.groups.push_back(Group {
                key: workload.to_string(),
                plans: VecDeque::from([w]),
            }),
        }
    }

    /// The newest plan of the largest workload line of namespace `i`.
    fn evict(&mut self, i: usize) -> Option<Waiting> {
        let space = self.spaces.get_mut(i)?;
        let g = space
            .groups
            .iter()
            .enumerate()
            .max_by_key(|(_, g)| g.plans.len())
            .map(|(g, _)| g)?;
        let victim = space.groups[g].plans.pop_back()?;
        self.forget(i, g, &victim);
        Some(victim)
    }

    /// Bookkeeping after plan `w` left group `g` of namespace `i`.
    fn forget(&mut self, i: usize, g: usize, w: &Waiting) {
        self.ids.remove(&identity(&w.plan));
        self.len -= 1;
        let space = &mut self.spaces[i];
        space.len -= 1;
        if space.groups[g].plans.is_empty() {
            space.groups.remove(g);
        }
        if space.groups.is_empty() {
            self.spaces.remove(i);
        }
    }

    /// Offer the waiting plans to `judge` in fair order (the namespace
    /// served least recently first, then its workload line served least
    /// recently, oldest plan first; ties in the order they came), skipping
    /// those not due at `now`, until one is taken: to run, or dropped.
    /// `None` when every plan waits.
    pub fn next(
        &mut self,
        now: Timestamp,
        mut judge: impl FnMut(&Waiting) -> Offer,
    ) -> Option<Taken> {
        let mut spaces: Vec<usize> = (0..self.spaces.len()).collect();
        spaces.sort_by_key(|&i| self.last_served(&self.spaces[i].namespace, None));
        for i in spaces {
            let space = &self.spaces[i];
            let mut lines: Vec<usize> = (0..space.groups.len()).collect();
            lines.sort_by_key(|&g| self.last_served(&space.namespace, Some(&space.groups[g].key)));
            for g in lines {
                for p in 0..self.spaces[i].groups[g].plans.len() {
                    let w = &mut self.spaces[i].groups[g].plans[p];
                    if w.not_before.is_some_and(|t| t > now) {
                        continue;
                    }
                    match judge(w) {
                        Offer::Wait(why) => {
                            if why.is_some() {
                                w.blocked = why;
                            }
                        }
                        Offer::Run => {
                            let (ns, line) = (
                                self.spaces[i].namespace.clone(),
                                self.spaces[i].groups[g].key.clone(),
                            );
                            let taken = self.take(i, g, p)?;
                            self.serve(ns, line);
                            return Some(Taken::Run(taken));
                        }
                        Offer::Drop(why) => return Some(Taken::Dropped(self.take(i, g, p)?, why)),
                    }
                }
            }
        }
        None
    }

    /// Take plan `p` of group `g` of namespace `i` out.
    fn take(&mut self, i: usize, g: usize, p: usize) -> Option<Waiting> {
        let w = self.spaces[i].groups[g].plans.remove(p)?;
        self.forget(i, g, &w);
        Some(w)
    }

    /// Take out every plan `drop` picks; returns them.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&Waiting) -> bool) -> Vec<Waiting> {
        let mut out = Vec::new();
        for space in &mut self.spaces {
            for group in &mut space.groups {
                let (gone, kept): (VecDeque<Waiting>, VecDeque<Waiting>) =
                    group.plans.drain(..).partition(|w| drop(w));
                group.plans = kept;
                space.len -= gone.len();
                out.extend(gone);
            }
            space.groups.retain(|g| !g.plans.is_empty());
        }
        self.spaces.retain(|s| !s.groups.is_empty());
        for w in &out {
            self.ids.remove(&identity(&w.plan));
        }
        self.len -= out.len();
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use super::*;
    use crate::policy::Policy;
    use crate::testutil::signal;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn pod(ns: &str, name: &str) -> Plan {
        let p = Policy::from_yaml("routes: [{remediation: delete-pod}]").unwrap();
        Plan::build(
            &signal(&[("alertname", "A"), ("namespace", ns), ("pod", name)]),
            &p.routes[0],
        )
        .unwrap()
    }

    fn waiting(plan: Plan, at: i64) -> Waiting {
        Waiting {
            plan,
            since: t(at),
            not_before: None,
            blocked: None,
            unread: 0,
        }
    }

    fn push(b: &mut Backlog, ns: &str, workload: &str, name: &str) -> Pushed {
        b.push(waiting(pod(ns, name), 0), workload)
    }

    /// Everything, in the order the backlog offers it when all may run.
    fn drain(b: &mut Backlog) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Taken::Run(w)) = b.next(t(0), |_| Offer::Run) {
            out.push(w.plan.target.unwrap().name);
        }
        out
    }

    #[test]
    fn plans_are_offered_round_robin_across_namespaces_then_workloads() {
        let mut b = Backlog::new(100);
        // namespace a floods first, with two workloads
        for n in ["a1", "a2", "a3"] {
            push(&mut b, "a", "w1", n);
        }
        push(&mut b, "a", "w2", "a4");
        push(&mut b, "b", "w3", "b1");
        push(&mut b, "b", "w3", "b2");
        push(&mut b, "c", "w4", "c1");
        assert_eq!(
            drain(&mut b),
            ["a1", "b1", "c1", "a4", "b2", "a2", "a3"],
            "every namespace once before any twice; in a, w2 before w1's second"
        );
        assert!(b.is_empty());
    }

    #[test]
    fn a_namespace_that_comes_late_goes_before_those_already_served() {
        let mut b = Backlog::new(100);
        push(&mut b, "a", "w1", "a1");
        push(&mut b, "a", "w2", "a2");
        let Some(Taken::Run(first)) = b.next(t(0), |_| Offer::Run) else {
            panic!()
        };
        assert_eq!(first.plan.target.unwrap().name, "a1");
        // the rest of a storm arrives after its first plan ran
        push(&mut b, "b", "w3", "b1");
        push(&mut b, "c", "w4", "c1");
        push(&mut b, "a", "w1", "a3");
        assert_eq!(drain(&mut b), ["b1", "c1", "a2", "a3"]);
    }

    #[test]
    fn a_blocked_namespace_does_not_hold_up_the_others_and_keeps_its_turn() {
        let mut b = Backlog::new(100);
        push(&mut b, "a", "w1", "a1");
        push(&mut b, "b", "w2", "b1");
        push(&mut b, "b", "w3", "b2");
        let why = Refusal::new(RefusalReason::NamespaceBudget, "a is spent");
        let judge = |w: &Waiting| match w.plan.namespace() {
            Some("a") => Offer::Wait(Some(why.clone())),
            _ => Offer::Run,
        };
        let Some(Taken::Run(w)) = b.next(t(0), judge) else {
            panic!()
        };
        assert_eq!(w.plan.target.unwrap().name, "b1");
        assert_eq!(
            b.iter()
                .find(|w| w.plan.namespace() == Some("a"))
                .unwrap()
                .blocked,
            Some(why.clone())
        );
        // once a's budget frees, a goes first: it has not been served yet
        assert_eq!(drain(&mut b), ["a1", "b2"]);
    }

    #[test]
    fn a_newer_plan_for_the_same_target_takes_the_waiting_ones_place() {
        let mut b = Backlog::new(100);
        push(&mut b, "a", "w1", "a1");
        push(&mut b, "a", "w1", "a2");
        let mut newer = pod("a", "a1");
        newer.trigger.fingerprint = "newer".into();
        assert!(matches!(
            b.push(waiting(newer, 5), "w1"),
            Pushed::Replaced(_)
        ));
        assert_eq!(b.len(), 2);
        let Some(Taken::Run(w)) = b.next(t(9), |_| Offer::Run) else {
            panic!()
        };
        assert_eq!(w.plan.trigger.fingerprint, "newer");
        assert_eq!(w.since, t(0), "it keeps its place and its age");
    }

    #[test]
    fn an_approved_plan_keeps_its_place_over_a_newer_signal_and_gives_way_to_an_approved_one() {
        let mut b = Backlog::new(100);
        let mut approved = pod("a", "a1");
        approved.approval = Some(crate::plan::Approval {
            requested_at: t(0),
            expires_at: t(3600),
            uid: None,
            node: None,
            approved_by: Some("alice".into()),
            approved_at: Some(t(1)),
        });
        b.push(waiting(approved.clone(), 0), "w1");
        let mut newer = pod("a", "a1");
        newer.trigger.fingerprint = "newer".into();
        match b.push(waiting(newer, 5), "w1") {
            Pushed::Kept(p) => assert_eq!(p.trigger.fingerprint, "newer"),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.len(), 1);
        // another approval of the same work replaces it
        let mut again = approved.clone();
        again.trigger.fingerprint = "again".into();
        assert!(matches!(
            b.push(waiting(again, 6), "w1"),
            Pushed::Replaced(_)
        ));
        let Some(Taken::Run(w)) = b.next(t(9), |_| Offer::Run) else {
            panic!()
        };
        assert_eq!(w.plan.trigger.fingerprint, "again");
        assert!(approved_plan(&w.plan));
    }

    fn approved_plan(p: &Plan) -> bool {
        super::approved(p)
    }

    #[test]
    fn when_full_the_fullest_namespace_gives_way_and_its_own_newcomers_are_not_kept() {
        let mut b = Backlog::new(4);
        for n in ["a1", "a2", "a3"] {
            push(&mut b, "a", "w1", n);
        }
        push(&mut b, "b", "w2", "b1");
        // b holds fewer than a: a's newest gives way
        match push(&mut b, "b", "w2", "b2") {
            Pushed::Evicted(v) => assert_eq!(v.plan.target.unwrap().name, "a3"),
            other => panic!("{other:?}"),
        }
        // a and b hold two each: a's newcomer is not kept
        match push(&mut b, "a", "w1", "a9") {
            Pushed::Rejected(v) => assert_eq!(v.plan.target.unwrap().name, "a9"),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.len(), 4);
        assert_eq!(drain(&mut b), ["a1", "b1", "a2", "b2"]);
    }

    #[test]
    fn a_plan_put_off_by_the_live_check_is_not_offered_before_its_time() {
        let mut b = Backlog::new(10);
        let mut w = waiting(pod("a", "a1"), 0);
        w.not_before = Some(t(15));
        b.requeue(w, "w1");
        assert_eq!(b.next(t(14), |_| Offer::Run), None);
        assert!(matches!(b.next(t(15), |_| Offer::Run), Some(Taken::Run(_))));
    }

    #[test]
    fn dropped_and_removed_plans_leave_no_trace() {
        let mut b = Backlog::new(10);
        push(&mut b, "a", "w1", "a1");
        push(&mut b, "a", "w1", "a2");
        push(&mut b, "b", "w2", "b1");
        let cooldown = Refusal::new(RefusalReason::Cooldown, "cooling down");
        let taken = b.next(t(0), |_| Offer::Drop(cooldown.clone()));
        assert!(matches!(taken, Some(Taken::Dropped(_, r)) if r == cooldown));
        let gone = b.remove_where(|w| w.plan.namespace() == Some("b"));
        assert_eq!(gone.len(), 1);
        assert_eq!(b.len(), 1);
        // a removed plan may come back
        assert_eq!(push(&mut b, "b", "w2", "b1"), Pushed::Queued);
        assert_eq!(drain(&mut b), ["a2", "b1"]);
    }
}

/// The engine with its backlog, driven as the worker drives it, on a fake clock.
#[cfg(test)]
mod engine_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use std::collections::{BTreeMap, BTreeSet};
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use async_trait::async_trait;

    use super::*;
    use crate::detect::Finding;
    use crate::facts::{ActError, FactSource, Facts, LiveState};
    use crate::journal::NoJournal;
    use crate::outcome::{ActionReport, Executor};
    use crate::pipeline::{Clock, Engine, OutcomeKind};
    use crate::plan::WorkloadRef;
    use crate::policy::Policy;
    use crate::signal::{Evidence, Signal};
    use crate::target::{Target, TargetKind};

    fn ready<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("not ready"),
        }
    }

    struct FakeClock(Mutex<Timestamp>);
    impl Clock for FakeClock {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap()
        }
    }
    impl FakeClock {
        fn advance(&self, secs: i64) {
            let mut t = self.0.lock().unwrap();
            *t = t
                .checked_add(jiff::SignedDuration::from_secs(secs))
                .unwrap();
        }
    }

    /// Every pod is still broken; its owner is the Deployment its name starts with.
    #[derive(Default)]
    struct Cluster {
        reads: Mutex<Vec<String>>,
    }
    #[async_trait]
    impl FactSource for Cluster {
        async fn facts(&self, plan: &Plan) -> Result<Facts, ActError> {
            let t = plan.target.as_ref().unwrap();
            self.reads.lock().unwrap().push(t.name.clone());
            let deployment = t.name.rsplit_once('-').unwrap().0;
            Ok(Facts {
                state: LiveState::Holds("crash looping".into()),
                owner: Some(WorkloadRef {
                    kind: "Deployment".into(),
                    namespace: t.namespace.clone(),
                    name: deployment.into(),
                }),
                ..Facts::default()
            })
        }
    }

    #[derive(Default)]
    struct Deletions(Mutex<Vec<(Timestamp, String, String)>>);
    struct Deleting<'a>(&'a Deletions, &'a FakeClock);
    #[async_trait]
    impl Executor for Deleting<'_> {
        async fn execute(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, ActError> {
            let t = plan.target.as_ref().unwrap();
            self.0.0.lock().unwrap().push((
                self.1.now(),
                t.namespace.clone().unwrap(),
                t.name.clone(),
            ));
            Ok(ActionReport {
                simulated: dry_run,
                message: "deleted".into(),
                ..Default::default()
            })
        }
    }

    /// A crash-looping pod as the pod detector signals it: `deployment-n`,
    /// of ReplicaSet `deployment-rs`.
    fn crashloop(ns: &str, deployment: &str, n: usize, at: Timestamp) -> Signal {
        let mut target = Target::new(TargetKind::Pod, Some(ns), &format!("{deployment}-{n}"));
        target.container = Some("app".into());
        Finding {
            name: "Heal8sPodCrashLooping",
            detector: "pods",
            target,
            reason: "CrashLoopBackOff".into(),
            since: at,
            evidence: Evidence {
                reason: Some("CrashLoopBackOff".into()),
                restart_count: Some(5),
                details: BTreeMap::from([(
                    crate::detect::pod::CONTROLLER_DETAIL.to_string(),
                    format!("ReplicaSet/{deployment}-rs"),
                )]),
                ..Evidence::default()
            },
            summary: "crash looping".into(),
        }
        .to_signal(crate::alertmanager::AlertStatus::Firing, at)
    }

    fn engine(budgets: &str) -> Engine {
        let p = Policy::from_yaml(&format!(
            "guard:\n  cooldown: 10m\n  budgets: {budgets}\nroutes: [{{matchers: ['alertname=\"Heal8sPodCrashLooping\"'], remediation: delete-pod}}]"
        ))
        .unwrap();
        Engine::new(p, "heal8s").unwrap()
    }

    /// The worker's loop: every `step` seconds, run whatever is due.
    fn drive(e: &mut Engine, clock: &FakeClock, cluster: &Cluster, done: &Deletions, secs: i64) {
        let exec = Deleting(done, clock);
        for _ in 0..secs / 5 {
            loop {
                let (due, _) = e.next(clock.now());
                let Some(w) = due else { break };
                ready(e.run(w, cluster, &exec, &NoJournal, clock));
            }
            clock.advance(5);
        }
    }

    #[test]
    fn a_storm_is_healed_fairly_as_the_budget_frees_without_being_signalled_again() {
        let clock = FakeClock(Mutex::new(Timestamp::from_second(1_800_000_000).unwrap()));
        let start = clock.now();
        let mut e = engine("{global: {max: 5, per: 1m}, perNamespace: {max: 2, per: 1m}}");
        let cluster = Cluster::default();
        let done = Deletions::default();
        // 50 broken pods, one Deployment each, 5 namespaces, signalled a
        // namespace at a time (as a watch's initial list delivers them)
        let mut waiting = 0;
        for ns in 0..5 {
            for d in 0..10 {
                let out = e.intake(
                    &crashloop(&format!("ns-{ns}"), &format!("d{d}"), 0, start),
                    start,
                );
                assert!(out.is_empty(), "nothing spent yet: {out:?}");
                waiting += 1;
            }
        }
        assert_eq!(e.backlog().len(), waiting);
        drive(&mut e, &clock, &cluster, &done, 60);
        let first: BTreeSet<String> = done
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, ns, _)| ns.clone())
            .collect();
        assert_eq!(
            first.len(),
            5,
            "the first budget window reaches every namespace: {:?}",
            done.0.lock().unwrap()
        );
        // nothing is signalled again: the backlog carries the rest out as the budget frees
        drive(&mut e, &clock, &cluster, &done, 12 * 60);
        let done = done.0.lock().unwrap();
        assert_eq!(done.len(), 50, "{done:?}");
        assert!(e.backlog().is_empty());
        // the budget held in every window, and every window was shared
        for (i, (at, _, _)) in done.iter().enumerate() {
            let window: Vec<_> = done[..=i]
                .iter()
                .filter(|(t, _, _)| at.duration_since(*t).as_secs() < 60)
                .collect();
            assert!(
                window.len() <= 5,
                "global budget broken at {at}: {window:?}"
            );
            for ns in 0..5 {
                let name = format!("ns-{ns}");
                let n = window.iter().filter(|(_, n, _)| *n == name).count();
                assert!(n <= 2, "namespace budget of {name} broken at {at}");
            }
        }
        for chunk in done.chunks(5) {
            let spread: BTreeSet<&String> = chunk.iter().map(|(_, ns, _)| ns).collect();
            assert_eq!(spread.len(), 5, "round robin across namespaces: {chunk:?}");
        }
        assert_eq!(
            cluster.reads.lock().unwrap().len(),
            50,
            "a plan waiting for its budget is never read from the cluster"
        );
    }

    #[test]
    fn pods_of_a_workload_just_healed_are_refused_without_reading_the_cluster() {
        let clock = FakeClock(Mutex::new(Timestamp::from_second(1_800_000_000).unwrap()));
        let now = clock.now();
        let mut e = engine("{global: {max: 100, per: 1m}, perNamespace: {max: 100, per: 1m}}");
        let cluster = Cluster::default();
        let done = Deletions::default();
        e.intake(&crashloop("shop", "api", 0, now), now);
        drive(&mut e, &clock, &cluster, &done, 5);
        assert_eq!(done.0.lock().unwrap().len(), 1);
        let now = clock.now();
        let mut refused = Vec::new();
        for n in 1..5 {
            refused.extend(e.intake(&crashloop("shop", "api", n, now), now));
        }
        drive(&mut e, &clock, &cluster, &done, 5);
        assert_eq!(refused.len(), 4, "{refused:?}");
        for o in &refused {
            assert_eq!(o.result, OutcomeKind::Refused);
            assert_eq!(o.reason, Some(RefusalReason::Cooldown), "{o:?}");
            assert!(o.message.contains("Deployment/shop/api"), "{}", o.message);
        }
        assert_eq!(cluster.reads.lock().unwrap().as_slice(), ["api-0"]);
        assert!(e.backlog().is_empty());
    }

    #[test]
    fn a_plan_refused_on_guard_state_is_not_read_from_the_cluster() {
        // one signal at a time, as `heal8s plan` and the tests run them
        let clock = FakeClock(Mutex::new(Timestamp::from_second(1_800_000_000).unwrap()));
        let now = clock.now();
        let mut e = engine("{global: {max: 1, per: 1m}}");
        let cluster = Cluster::default();
        let done = Deletions::default();
        let exec = Deleting(&done, &clock);
        let first = ready(e.process(&crashloop("a", "x", 0, now), &cluster, &exec, &clock));
        assert_eq!(first[0].result, OutcomeKind::Acted);
        let second = ready(e.process(&crashloop("b", "y", 0, now), &cluster, &exec, &clock));
        assert_eq!(second[0].reason, Some(RefusalReason::GlobalBudget));
        assert_eq!(cluster.reads.lock().unwrap().as_slice(), ["x-0"]);
    }
}
