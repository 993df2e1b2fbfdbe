//! The pipeline from one Signal to its outcomes: admit (dedupe) → route → plan →
//! precheck → facts → guard → act → record. One path for alerts and detectors alike.
//!
//! Owns: the order of the steps and the `Outcome` each signal ends in. The
//! guard's precheck runs before any live read, so a plan refused on guard
//! state alone (budgets, cooldowns, escalations, protection, class breakers)
//! costs no API request. In the service, plans then wait in the backlog
//! (`backlog`), which offers them fairly and keeps those put off for want of
//! budget until it frees ([`Engine::intake`], [`Engine::next`],
//! [`Engine::run`]); [`Engine::process`] carries one signal through at once.
//! The IO steps go through the `facts`, `outcome` (`Executor`) and `journal` traits; this module does no
//! IO itself.

use jiff::Timestamp;

use std::collections::HashMap;
use std::time::Duration;

use crate::alertmanager::AlertStatus;
use crate::backlog::{Backlog, Offer, Pushed, Taken, Waiting, waits};
use crate::facts::{ActError, FactSource, Facts, LiveState};
use crate::guard::{Admission, Effect, Guard, Refusal, RefusalReason, Verdict};
use crate::outcome::{ActionReport, Executor};
pub use crate::outcome::{Outcome, OutcomeKind};
use crate::plan::{Plan, WorkloadRef};
use crate::policy::{Policy, PolicyError};
use crate::remediation::{Remediation, TargetMismatch};
use crate::route;
use crate::signal::Signal;

/// What a plan holds while it runs: its target and its workload's line.
fn keys_of(owners: &HashMap<String, WorkloadRef>, plan: &Plan) -> [String; 2] {
    let target = plan
        .target
        .as_ref()
        .map_or_else(|| plan.workload_key(), crate::target::Target::key);
    [
        format!("target {target}"),
        format!("line {}", line_of(owners, plan)),
    ]
}

/// Carry a ticket out: the durable "started" first (a crash in the middle
/// leaves a trace), then the executor. Runs outside the engine, so many can
/// run at once.
pub async fn carry_out(
    t: &Ticket,
    executor: &dyn Executor,
    journal: &dyn crate::journal::Journal,
) -> Result<ActionReport, ActError> {
    if t.records_start() {
        journal.begin(&t.plan, t.counted.as_ref()).await;
    }
    executor.execute(&t.plan, t.dry_run).await
}

/// A source of the current time; tests use a fake one.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Route, plan and guard state for one heal8s process.
#[derive(Debug)]
pub struct Engine {
    policy: Policy,
    guard: Guard,
    backlog: Backlog,
    /// What owns a pod's controller, as the live cluster last said
    /// (`namespace/ReplicaSet/name` → its Deployment): lets precheck count a
    /// detector's pod against its workload without reading anything.
    owners: HashMap<String, WorkloadRef>,
    /// Whether a verifier follows up on actions (they stay in flight until it has).
    verifies: bool,
    /// Targets and workload lines of plans taken out to run and not yet
    /// finished: a second plan for either waits until the first is done.
    busy: std::collections::HashSet<String>,
    /// At most this many plans run at once (see [`Engine::with_max_running`]).
    max_running: usize,
    /// Alert occurrences whose plan was dropped as stale, for the work
    /// queue's door to forget too (see [`Engine::take_forgotten`]).
    forgotten: Vec<(String, Timestamp)>,
    /// A plan that may run joined the backlog, or the guard changed, since
    /// the last [`Engine::next`]: only then can a new look find one to run
    /// (besides time passing: see [`Engine::has_fresh`]).
    fresh: bool,
}

/// How many plans run at once unless told otherwise.
pub const DEFAULT_MAX_RUNNING: usize = 16;

/// A plan taken out of the backlog to run ([`Engine::take`]): its facts are
/// read next, then [`Engine::admit`]. Its target and workload line are busy
/// until it is admitted and finished, or refused.
#[derive(Debug)]
pub struct Started {
    pub waiting: Waiting,
    keys: [String; 2],
}

impl Started {
    /// The plan to read the facts of.
    pub fn plan(&self) -> &Plan {
        &self.waiting.plan
    }
}

/// A plan the full check allowed, counted by the guard: carry it out, then
/// [`Engine::finish`] it.
#[derive(Debug)]
pub struct Ticket {
    /// The plan as checked (owner and scope from the live read).
    pub plan: Plan,
    /// Change nothing (observe or propose, by policy, route or flag): the
    /// executor only says what it would do.
    pub dry_run: bool,
    /// What the guard allowed (see [`Effect`]).
    pub effect: Effect,
    /// The action the guard counted, for `Journal::begin`.
    pub counted: Option<crate::guard::PastEvent>,
    /// What the record keeps of the object the plan deletes, from the live
    /// read it was checked on.
    kept: Option<crate::deleted::Deleted>,
    outcome: Outcome,
    keys: [String; 2],
}

impl Ticket {
    /// Whether carrying it out changes something, so `Journal::begin`
    /// records it first.
    pub fn records_start(&self) -> bool {
        !self.dry_run && self.plan.kind().is_mutating()
    }
}

/// What [`Engine::admit`] made of a plan and its facts.
#[derive(Debug)]
pub enum Admitted {
    /// Carry it out.
    Go(Box<Ticket>),
    /// It ends here (refused, failed to read, or put back to wait).
    Done(Vec<Outcome>),
}

/// How many plans the backlog holds unless told otherwise.
pub const DEFAULT_BACKLOG: usize = 4096;

/// A plan the live check put off (a breaker only the live cluster shows,
/// such as a partition) is offered again after this long.
pub const LIVE_RETRY: Duration = Duration::from_secs(15);

/// How many times a plan's live facts are read before it fails for want of
/// them (the first try included).
pub const UNREAD_TRIES: u32 = 6;

/// The wait before reading a plan's live facts again after `tries` failed:
/// 2 s, doubling to at most 30 s (about 90 s in all, longer than an API
/// server restart); `None` once [`UNREAD_TRIES`] were spent.
pub fn unread_retry(tries: u32) -> Option<Duration> {
    if tries == 0 || tries >= UNREAD_TRIES {
        return None;
    }
    let wait = Duration::from_secs(2).saturating_mul(1 << (tries - 1).min(16));
    Some(wait.min(Duration::from_secs(30)))
}

/// At most this many pod controllers' owners are remembered (then the memory starts over).
const OWNERS_KEPT: usize = 10_000;

/// How long from `then` to `now` (zero if `then` is later).
fn since(now: Timestamp, then: Timestamp) -> std::time::Duration {
    now.duration_since(then).try_into().unwrap_or_default()
}

/// Why `w`, which waited `waited`, is dropped: older than `max`.
fn stale(w: &Waiting, waited: std::time::Duration, max: crate::duration::PromDuration) -> Refusal {
    let behind = match &w.blocked {
        Some(r) => format!(" behind {}", r.reason),
        None => String::new(),
    };
    Refusal::new(
        RefusalReason::StaleSignal,
        format!(
            "the signal waited {}s{behind}, longer than guard.maxSignalAge {max}: not acted on as it was; a problem that persists is signalled again (detectors re-signal it, Alertmanager re-sends it)",
            waited.as_secs()
        ),
    )
}

/// The outcome of `plan` at `at`, before anything is known of how it ends.
fn outcome_of(plan: &Plan, at: Timestamp) -> Outcome {
    Outcome {
        at,
        source: plan.trigger.source,
        name: plan.trigger.name.clone(),
        fingerprint: plan.trigger.fingerprint.clone(),
        status: AlertStatus::Firing,
        target: plan.target.as_ref().map(ToString::to_string),
        route: Some(plan.route.clone()),
        remediation: Some(plan.kind()),
        mode: Some(plan.mode),
        result: OutcomeKind::Refused,
        reason: None,
        escalated: false,
        message: String::new(),
        pull_request: None,
        deferred: None,
        plan: None,
        ledger: Vec::new(),
        deleted: None,
        cluster: None,
        approved_by: plan.approved_by().map(str::to_string),
        trace: plan.trigger.trace,
    }
}

/// `o` refused with `r`.
fn refused(mut o: Outcome, plan: Plan, r: Refusal) -> Outcome {
    o.result = OutcomeKind::Refused;
    o.reason = Some(r.reason);
    o.message = r.message;
    o.plan = Some(plan);
    o
}

/// What [`Outcome::deferred`] says of a plan waiting in the backlog.
pub const WAITING: &str = "Waiting";

/// `o` refused with `r` for now: its plan waits in the backlog (`n` waiting).
fn waiting(o: Outcome, plan: Plan, r: Refusal, n: usize) -> Outcome {
    let mut o = refused(o, plan, r);
    o.message = format!(
        "{}; waits its turn in the backlog ({n} waiting) and runs as the budget frees, checked against the live cluster first",
        o.message
    );
    o.deferred = Some(WAITING.into());
    o
}

/// The outcome of a plan the full backlog did not keep.
fn not_kept(w: Waiting, capacity: usize, at: Timestamp) -> Outcome {
    let o = outcome_of(&w.plan, at);
    let why = match &w.blocked {
        Some(b) => format!("{}; ", b.message),
        None => String::new(),
    };
    refused(
        o,
        w.plan,
        Refusal::new(
            RefusalReason::BacklogFull,
            format!(
                "{why}the backlog of waiting plans is full ({capacity}) and this one was not kept: it runs when signalled again (a detector after the cooldown, Alertmanager at its repeat interval)"
            ),
        ),
    )
}

/// The pod controller a detector saw on `plan`'s pod (`Kind/name`), and its namespace.
fn controller_of(plan: &Plan) -> Option<(&str, &str, Option<&str>)> {
    // only heal8s's own watch cache is trusted to say; an alert could say anything
    if plan.trigger.source != crate::signal::SourceKind::Detector {
        return None;
    }
    let t = plan.target.as_ref()?;
    if t.kind != crate::target::TargetKind::Pod {
        return None;
    }
    let (kind, name) = plan
        .evidence
        .details
        .get(crate::detect::pod::CONTROLLER_DETAIL)?
        .split_once('/')?;
    Some((kind, name, t.namespace.as_deref()))
}

/// The workload a detector's pod plan counts against, as known without a
/// live read: the pod's controller when that is the workload (StatefulSet,
/// DaemonSet, Job, ...), else what the live cluster last said owns its
/// ReplicaSet. `None` when unknown, or when the plan already names it.
fn known_owner(owners: &HashMap<String, WorkloadRef>, plan: &Plan) -> Option<WorkloadRef> {
    if plan.workload.is_some() {
        return None;
    }
    let (kind, name, ns) = controller_of(plan)?;
    if kind == "ReplicaSet" {
        return owners
            .get(&format!("{}/{kind}/{name}", ns.unwrap_or("-")))
            .cloned();
    }
    Some(WorkloadRef {
        kind: kind.to_string(),
        namespace: ns.map(str::to_string),
        name: name.to_string(),
    })
}

/// The guard's precheck of `plan` with its known owner; a refusal is noted
/// as `check` would have noted it.
fn precheck(
    guard: &mut Guard,
    owners: &HashMap<String, WorkloadRef>,
    plan: &Plan,
    now: Timestamp,
) -> Option<Refusal> {
    let owned;
    let probe = match known_owner(owners, plan) {
        Some(w) => {
            owned = Plan {
                workload: Some(w),
                ..plan.clone()
            };
            &owned
        }
        None => plan,
    };
    let r = guard.precheck(probe, now)?;
    guard.note_refusal(probe, &r, now);
    Some(r)
}

/// The workload line of the backlog `plan` waits in: its owner when known,
/// else its pod's controller, else its target.
fn line_of(owners: &HashMap<String, WorkloadRef>, plan: &Plan) -> String {
    if let Some(w) = &plan.workload {
        return w.key();
    }
    if let Some(w) = known_owner(owners, plan) {
        return w.key();
    }
    match controller_of(plan) {
        Some((kind, name, ns)) => format!("{kind}/{}/{name}", ns.unwrap_or("-")),
        None => plan.workload_key(),
    }
}

impl Engine {
    /// An engine for `policy`; `own_namespace` is always protected.
    pub fn new(policy: Policy, own_namespace: &str) -> Result<Engine, PolicyError> {
        let listed = policy
            .detectors
            .custom_resources
            .resources
            .iter()
            .filter_map(|r| crate::detect::ResourceSpec::parse(r).ok())
            .collect();
        let guard =
            Guard::new(&policy.guard, &policy.features, own_namespace)?.with_listed_types(listed);
        Ok(Engine {
            policy,
            guard,
            backlog: Backlog::new(DEFAULT_BACKLOG),
            owners: HashMap::new(),
            verifies: true,
            busy: std::collections::HashSet::new(),
            max_running: DEFAULT_MAX_RUNNING,
            forgotten: Vec::new(),
            fresh: true,
        })
    }

    /// The same engine, running at most `n` plans at once (at least 1): a
    /// long drain or eviction loop holds one of them, not the worker.
    pub fn with_max_running(mut self, n: usize) -> Engine {
        self.max_running = n.max(1);
        self
    }

    /// At most this many plans run at once.
    pub fn max_running(&self) -> usize {
        self.max_running
    }

    /// Whether something may run that did not at the last [`Engine::next`]:
    /// a plan that passed its precheck joined the backlog, or the guard's
    /// memory was replaced. Otherwise only time frees a waiting plan (a
    /// budget's window sliding), so a caller need not look again for every
    /// signal that only joined the queue of waiting ones: a storm of
    /// refusals then costs nothing per signal beyond its own precheck.
    pub fn has_fresh(&self) -> bool {
        self.fresh
    }

    /// The same engine, told whether a verifier follows up on what it does:
    /// without one, an action leaves flight as soon as it ends.
    pub fn with_verification(mut self, verifies: bool) -> Engine {
        self.verifies = verifies;
        self
    }

    /// The same engine with a backlog of at most `capacity` plans.
    pub fn with_backlog_capacity(mut self, capacity: usize) -> Engine {
        self.backlog = Backlog::new(capacity);
        self
    }

    /// The plans waiting their turn.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// The policy in effect.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Take back guard events and alert occurrences from the durable record
    /// (see `Guard::restore` and `Guard::restore_seen`).
    pub fn restore(
        &mut self,
        past: Vec<crate::guard::PastEvent>,
        seen: Vec<(String, Timestamp)>,
        now: Timestamp,
    ) {
        self.guard.restore(past);
        self.guard.restore_seen(seen, now);
        self.fresh = true;
    }

    /// A verified recovery of `plan`'s target: its count of repeats starts
    /// over (and its escalation ends, as the policy says). Returns the event
    /// for the durable record.
    pub fn recovered(&mut self, plan: &Plan, now: Timestamp) -> crate::guard::PastEvent {
        self.guard.record_recovery(
            &plan.workload_key(),
            crate::guard::RecoveryBy::Verified,
            now,
        )
    }

    /// Close the breakers that no longer hold (see `Guard::release_breakers`).
    pub fn release_breakers(
        &mut self,
        now: Timestamp,
        cluster: Option<&crate::facts::ClusterFacts>,
    ) -> Vec<crate::guard::ActionClass> {
        self.guard.release_breakers(now, cluster)
    }

    /// A person cleared the escalation of `key`. Returns the event for the record.
    pub fn clear_escalation(&mut self, key: &str, now: Timestamp) -> crate::guard::PastEvent {
        self.guard
            .record_recovery(key, crate::guard::RecoveryBy::Human, now)
    }

    /// The guard (read-only), e.g. to list protected namespaces.
    /// Replace the namespaces' own policies (accepted RemediationPolicies).
    pub fn set_namespace_policies(
        &mut self,
        policies: &[crate::policy::namespaced::NamespacePolicy],
    ) {
        self.guard.set_namespace_policies(policies);
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Alert occurrences whose plan was dropped as stale since the last call:
    /// the work queue's door forgets them too, so their next delivery is news.
    pub fn take_forgotten(&mut self) -> Vec<(String, Timestamp)> {
        std::mem::take(&mut self.forgotten)
    }

    /// Pause heal8s or let it act again (see [`Guard::set_pause`]).
    pub fn set_pause(&mut self, pause: Option<crate::guard::Pause>) {
        self.guard.set_pause(pause);
    }

    /// Hold again for the alerts kept durably (see [`Guard::restore_holds`]).
    pub fn restore_holds(&mut self, kept: &[crate::guard::holds::HeldAlert], now: Timestamp) {
        self.guard.restore_holds(kept, now);
    }

    /// Carry one signal through the whole pipeline. Every signal yields at least one outcome.
    pub async fn process(
        &mut self,
        signal: &Signal,
        facts: &dyn FactSource,
        executor: &dyn Executor,
        clock: &dyn Clock,
    ) -> Vec<Outcome> {
        self.process_with(signal, facts, executor, &crate::journal::NoJournal, clock)
            .await
    }

    /// `process`, telling `journal` before each real (not dry-run) action.
    pub async fn process_with(
        &mut self,
        signal: &Signal,
        facts: &dyn FactSource,
        executor: &dyn Executor,
        journal: &dyn crate::journal::Journal,
        clock: &dyn Clock,
    ) -> Vec<Outcome> {
        let now = clock.now();
        let (mut out, plans) = self.plans(signal, now);
        for (o, plan) in plans {
            match precheck(&mut self.guard, &self.owners, &plan, now) {
                Some(r) => out.push(refused(o, plan, r)),
                None => {
                    let started = self.start(Waiting {
                        plan,
                        since: now,
                        not_before: None,
                        blocked: None,
                        unread: 0,
                    });
                    let live = facts.facts(started.plan()).await;
                    match self.admit_once(started, live, clock.now()) {
                        Err(o) => out.push(*o),
                        Ok(t) => {
                            let result = carry_out(&t, executor, journal).await;
                            out.push(self.finish(*t, result, clock.now()));
                        }
                    }
                }
            }
        }
        out
    }

    /// Admit `signal`, route it and make its plans: the outcomes of what
    /// ended there (a repeat, a resolution, no route, no target), and the
    /// plans with the outcome each will fill in.
    fn plans(&mut self, signal: &Signal, now: Timestamp) -> (Vec<Outcome>, Vec<(Outcome, Plan)>) {
        let base =
            |result: OutcomeKind, message: String| Outcome::about(signal, result, message, now);
        match self.guard.admit(signal, now) {
            Admission::Duplicate => {
                return (
                    vec![base(
                        OutcomeKind::Deduped,
                        "this occurrence was delivered before".into(),
                    )],
                    Vec::new(),
                );
            }
            Admission::Resolved { recovered } => {
                let msg = match &recovered {
                    Some(e) => format!(
                        "resolved; for escalation {} counts as recovered (a record settles on its verification)",
                        e.event.key()
                    ),
                    None => "resolved".into(),
                };
                let mut o = base(OutcomeKind::Resolved, msg);
                o.ledger.extend(recovered);
                return (vec![o], Vec::new());
            }
            Admission::Refused(Refusal { reason, message }) => {
                let mut o = base(OutcomeKind::Refused, message);
                o.reason = Some(reason);
                return (vec![o], Vec::new());
            }
            Admission::New => {}
        }
        let routes = route::route(&self.policy, signal);
        if routes.is_empty() {
            let mut o = base(OutcomeKind::Refused, "no route matched".into());
            o.reason = Some(RefusalReason::NoRoute);
            return (vec![o], Vec::new());
        }
        let routes: Vec<_> = routes.into_iter().cloned().collect();
        let (mut out, mut plans) = (Vec::new(), Vec::with_capacity(routes.len()));
        for r in &routes {
            let mut o = base(OutcomeKind::Refused, String::new());
            o.route = Some(r.name.clone());
            o.remediation = Some(r.remediation.kind());
            o.mode = Some(r.mode);
            match Plan::build(signal, r) {
                Ok(mut plan) => {
                    o.target = plan.target.as_ref().map(ToString::to_string);
                    // finalizer removal needs both the route's parameter and the feature
                    if let Remediation::CleanupResource(p) = &mut plan.remediation {
                        p.remove_finalizers &= self.policy.features.remove_finalizers;
                    }
                    // one blip changes nothing: the route's threshold first
                    // (or its namespace's, when that asks for more)
                    let ns_threshold = plan
                        .namespace()
                        .and_then(|ns| self.guard.namespace_policy(ns))
                        .and_then(|e| e.occurrences);
                    let threshold = match (r.occurrences, ns_threshold) {
                        (Some(a), Some(b)) if b.min > a.min => Some(b),
                        (None, b) => b,
                        (a, _) => a,
                    };
                    if let Some(t) = threshold {
                        let line = line_of(&self.owners, &plan);
                        let c = self.guard.count_occurrence(&plan, &line, t, now);
                        if !c.met() {
                            o.result = OutcomeKind::Deferred;
                            o.deferred = Some(format!("occurrences {}/{}", c.seen, c.min));
                            o.message = format!(
                                "occurrence {}/{} of this problem on {line} within {}: heal8s acts once it has seen {} (route {})",
                                c.seen, c.min, t.window, c.min, plan.route
                            );
                            o.plan = Some(plan);
                            out.push(o);
                            continue;
                        }
                    }
                    plans.push((o, plan));
                }
                Err(e) => {
                    o.reason = Some(match e {
                        TargetMismatch::Missing(_) => RefusalReason::MissingTarget,
                        _ => RefusalReason::TargetMismatch,
                    });
                    o.message = e.to_string();
                    out.push(o);
                }
            }
        }
        (out, plans)
    }

    /// Take `signal` in without reading the cluster: admit, route, plan and
    /// precheck. Plans refused for good end here; the others join the
    /// backlog (those put off for want of budget with an outcome saying so)
    /// and run when [`Engine::next`] offers them. Returns the outcomes so far.
    pub fn intake(&mut self, signal: &Signal, now: Timestamp) -> Vec<Outcome> {
        if signal.status == AlertStatus::Resolved {
            // the problem is over: nothing of it waits any longer
            let fp = &signal.fingerprint;
            self.backlog
                .remove_where(|w| &w.plan.trigger.fingerprint == fp);
        }
        let (mut out, plans) = self.plans(signal, now);
        for (o, plan) in plans {
            // its age counts from when heal8s took the signal in
            let since = signal.received.unwrap_or(now).min(now);
            self.enqueue(o, plan, since, now, &mut out);
        }
        out
    }

    /// Precheck `plan` (whose outcome so far is `o`) and put it in the
    /// backlog, waiting since `since`; what ends here goes to `out`.
    fn enqueue(
        &mut self,
        o: Outcome,
        plan: Plan,
        since: Timestamp,
        now: Timestamp,
        out: &mut Vec<Outcome>,
    ) {
        let blocked = match precheck(&mut self.guard, &self.owners, &plan, now) {
            Some(r) if !waits(r.reason) => {
                out.push(refused(o, plan, r));
                return;
            }
            blocked => blocked,
        };
        let line = line_of(&self.owners, &plan);
        let w = Waiting {
            plan: plan.clone(),
            since,
            not_before: None,
            blocked: blocked.clone(),
            unread: 0,
        };
        let capacity = self.backlog.capacity();
        if blocked.is_none() {
            self.fresh = true;
        }
        match self.backlog.push(w, &line) {
            Pushed::Queued => {}
            // accepted input is never dropped silently: the plan it
            // replaced says so
            Pushed::Replaced(previous) => {
                let mut o = outcome_of(&previous, now);
                o.result = OutcomeKind::Deduped;
                o.message = format!(
                    "superseded while waiting by a newer signal about the same target ({} {})",
                    plan.trigger.source, plan.trigger.name
                );
                o.plan = Some(*previous);
                out.push(o);
            }
            Pushed::Kept(newer) => {
                let mut o = outcome_of(&newer, now);
                o.result = OutcomeKind::Deduped;
                o.message =
                    "a plan a person approved waits for the same target: it goes first, this signal adds nothing"
                        .into();
                o.plan = Some(*newer);
                out.push(o);
                return;
            }
            Pushed::Evicted(victim) => out.push(not_kept(victim, capacity, now)),
            Pushed::Rejected(w) => {
                out.push(not_kept(w, capacity, now));
                return;
            }
        }
        if let Some(r) = blocked {
            out.push(waiting(o, plan, r, self.backlog.len()));
        }
    }

    /// A plan a person approved (mode `approve`; `plan.approval` says who
    /// and when), taken in at `now`: it runs like any plan (the live state
    /// read again, the whole guard, approval rules included), if the policy
    /// still routes it as it was approved. Returns the outcomes so far.
    pub fn approved(&mut self, mut plan: Plan, now: Timestamp) -> Vec<Outcome> {
        let mut out = Vec::new();
        let route = self.policy.routes.iter().find(|r| r.name == plan.route);
        match route {
            Some(r) if r.remediation == plan.remediation => plan.mode = r.mode,
            _ => {
                let r = Refusal::new(
                    RefusalReason::NoRoute,
                    format!(
                        "approved, but the policy no longer has route {} with these parameters: nothing is done (the problem is signalled again if it persists)",
                        plan.route
                    ),
                );
                out.push(refused(outcome_of(&plan, now), plan, r));
                return out;
            }
        }
        let o = outcome_of(&plan, now);
        self.enqueue(o, plan, now, now, &mut out);
        out
    }

    /// The next plan due to run at `now`, offered fairly (see `backlog`) and
    /// prechecked again; with the outcomes of plans found put off for the
    /// first time or refused for good on the way.
    pub fn next(&mut self, now: Timestamp) -> (Option<Waiting>, Vec<Outcome>) {
        self.fresh = false;
        let mut out = Vec::new();
        let max_age = self.policy.guard.max_signal_age;
        loop {
            let (guard, owners) = (&mut self.guard, &self.owners);
            let n = self.backlog.len();
            let busy = &self.busy;
            let taken = self.backlog.next(now, |w| {
                // never acted on as it was: a signal that waited too long goes
                let waited = since(now, w.since);
                if waited > max_age.get() {
                    return Offer::Drop(stale(w, waited, max_age));
                }
                if keys_of(owners, &w.plan).iter().any(|k| busy.contains(k)) {
                    // another plan for this target or workload is running
                    return Offer::Wait(None);
                }
                match precheck(guard, owners, &w.plan, now) {
                    None => Offer::Run,
                    Some(r) if waits(r.reason) => {
                        if w.blocked.is_none() {
                            out.push(waiting(
                                outcome_of(&w.plan, now),
                                w.plan.clone(),
                                r.clone(),
                                n,
                            ));
                        }
                        Offer::Wait(Some(r))
                    }
                    Some(r) => Offer::Drop(r),
                }
            });
            match taken {
                Some(Taken::Run(w)) => return (Some(w), out),
                Some(Taken::Dropped(w, r)) => {
                    // an alert's next delivery brings a stale one back, fresh
                    if r.reason == RefusalReason::StaleSignal
                        && w.plan.trigger.source == crate::signal::SourceKind::Alert
                    {
                        let t = &w.plan.trigger;
                        self.guard.forget_occurrence(&t.fingerprint, t.first_seen);
                        self.forgotten.push((t.fingerprint.clone(), t.first_seen));
                    }
                    out.push(refused(outcome_of(&w.plan, now), w.plan, r));
                }
                None => return (None, out),
            }
        }
    }

    /// The next plan due to run at `now`, as [`Engine::next`] offers it,
    /// taken out to run: its target and workload are busy from now on.
    pub fn take(&mut self, now: Timestamp) -> (Option<Started>, Vec<Outcome>) {
        let (w, out) = self.next(now);
        (w.map(|w| self.start(w)), out)
    }

    /// Mark `w`'s target and workload busy.
    fn start(&mut self, w: Waiting) -> Started {
        let keys = keys_of(&self.owners, &w.plan);
        for k in &keys {
            self.busy.insert(k.clone());
        }
        Started { waiting: w, keys }
    }

    fn release(&mut self, keys: &[String; 2]) {
        for k in keys {
            self.busy.remove(k);
        }
    }

    /// Carry out a plan [`Engine::next`] gave, at once: facts, the full
    /// check, the action (what [`Engine::take`], [`Engine::admit`] and
    /// [`Engine::finish`] do step by step).
    pub async fn run(
        &mut self,
        w: Waiting,
        facts: &dyn FactSource,
        executor: &dyn Executor,
        journal: &dyn crate::journal::Journal,
        clock: &dyn Clock,
    ) -> Vec<Outcome> {
        let started = self.start(w);
        let live = facts.facts(started.plan()).await;
        match self.admit(started, live, clock.now()) {
            Admitted::Done(out) => out,
            Admitted::Go(t) => {
                let result = carry_out(&t, executor, journal).await;
                vec![self.finish(*t, result, clock.now())]
            }
        }
    }

    /// The full check of a started plan on its live facts, at `now`: a
    /// ticket to carry it out (the guard counted it), or its end. A plan the
    /// live check puts off for want of budget or for a breaker goes back to
    /// the backlog, offered again after [`LIVE_RETRY`] (its outcome says so
    /// the first time). All admissions go through the one engine, one at a
    /// time, so no cap can let two through where one is allowed.
    pub fn admit(
        &mut self,
        started: Started,
        live: Result<Facts, ActError>,
        now: Timestamp,
    ) -> Admitted {
        let line = line_of(&self.owners, &started.waiting.plan);
        let w = Waiting {
            plan: started.waiting.plan.clone(),
            since: started.waiting.since,
            not_before: started.waiting.not_before,
            blocked: started.waiting.blocked.clone(),
            unread: started.waiting.unread,
        };
        let o = match self.admit_once(started, live, now) {
            Ok(t) => return Admitted::Go(t),
            Err(o) => *o,
        };
        if o.reason == Some(RefusalReason::FactsUnavailable) {
            return self.unread(w, o, &line, now);
        }
        let put_off =
            o.result == OutcomeKind::Refused && !o.escalated && o.reason.is_some_and(waits);
        if !put_off {
            return Admitted::Done(vec![o]);
        }
        let mut plan = w.plan;
        // what the live cluster said owns it counts from now on
        if let Some(checked) = &o.plan {
            plan.workload.clone_from(&checked.workload);
        }
        let first = w.blocked.is_none();
        let r = Refusal::new(
            o.reason.unwrap_or(RefusalReason::GlobalBudget),
            o.message.clone(),
        );
        let retry = jiff::SignedDuration::try_from(LIVE_RETRY).unwrap_or_default();
        self.backlog.requeue(
            Waiting {
                plan: plan.clone(),
                since: w.since,
                not_before: now.checked_add(retry).ok(),
                blocked: Some(r.clone()),
                unread: 0,
            },
            &line,
        );
        if !first {
            return Admitted::Done(Vec::new());
        }
        Admitted::Done(vec![waiting(o, plan, r, self.backlog.len())])
    }

    /// A plan whose live facts could not be read (the API server down or
    /// failing for a moment): nothing was decided or changed, so it goes
    /// back to the backlog and is read again after [`unread_retry`], up to
    /// [`UNREAD_TRIES`] tries in all; then it fails for good. Its outcome
    /// says so the first time and the last.
    fn unread(&mut self, w: Waiting, mut o: Outcome, line: &str, now: Timestamp) -> Admitted {
        let tries = w.unread + 1;
        let Some(wait) = unread_retry(tries) else {
            o.message = format!("{}; gave up after {tries} tries", o.message);
            return Admitted::Done(vec![o]);
        };
        let r = Refusal::new(RefusalReason::FactsUnavailable, o.message.clone());
        let plan = w.plan.clone();
        self.backlog.requeue(
            Waiting {
                not_before: now
                    .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
                    .ok(),
                blocked: Some(r.clone()),
                unread: tries,
                ..w
            },
            line,
        );
        self.fresh = true;
        if tries > 1 {
            return Admitted::Done(Vec::new());
        }
        let mut o = refused(o, plan, r);
        o.message = format!(
            "{}; read again in {}s (try {tries} of {UNREAD_TRIES}), nothing was changed",
            o.message,
            wait.as_secs()
        );
        o.deferred = Some(WAITING.into());
        Admitted::Done(vec![o])
    }

    /// The full check on the live facts: a ticket, or the outcome that ends
    /// it (the busy keys given back).
    fn admit_once(
        &mut self,
        started: Started,
        live: Result<Facts, ActError>,
        now: Timestamp,
    ) -> Result<Box<Ticket>, Box<Outcome>> {
        let Started { waiting, keys } = started;
        let mut plan = waiting.plan;
        let mut o = outcome_of(&plan, now);
        let end = |engine: &mut Engine, mut o: Outcome, plan: Plan| {
            engine.release(&keys);
            o.plan = Some(plan);
            Err(Box::new(o))
        };
        let live = match live {
            Ok(f) => f,
            Err(e) => {
                o.reason = Some(RefusalReason::FactsUnavailable);
                o.result = OutcomeKind::Failed;
                o.message = format!("could not read the live object: {e}");
                return end(self, o, plan);
            }
        };
        self.learn_owner(&plan, &live);
        self.complete(&mut plan, &live);
        let cleared = match &live.state {
            LiveState::Gone(why) => Some((RefusalReason::TargetGone, why.clone())),
            LiveState::Cleared(why) => Some((RefusalReason::ConditionCleared, why.clone())),
            LiveState::Holds(_) | LiveState::Unknown => None,
        };
        if let Some((reason, why)) = cleared {
            o.reason = Some(reason);
            o.message = why;
            return end(self, o, plan);
        }
        let decision = self.guard.check(&plan, &live, now);
        o.ledger.extend(decision.event);
        let effect = match decision.verdict {
            Verdict::Refuse(Refusal { reason, message }) => {
                o.reason = Some(reason);
                o.escalated = decision.newly_escalated;
                o.message = message;
                return end(self, o, plan);
            }
            Verdict::Allow { effect } => effect,
        };
        // the action counts from the moment it starts: a crash in the
        // middle leaves it in the record, and a restart honours it (below
        // mode direct it counts for the cooldown only)
        let counted = self.guard.record(&plan, now);
        if effect == Effect::AwaitApproval {
            // nothing is done: the plan and what it is for wait in the record
            let a = self.guard.ask_approval(&plan, live.live.as_ref(), now);
            o.result = OutcomeKind::AwaitingApproval;
            o.message = format!(
                "awaiting approval: {} (heal8s approve <record>; the request expires at {})",
                plan.describe(),
                a.expires_at
            );
            o.ledger.extend(counted);
            plan.approval = Some(a);
            return end(self, o, plan);
        }
        let dry_run = !effect.acts();
        let kept = crate::deleted::before_delete(plan.kind(), dry_run, live.live.as_ref());
        // the delete names the object read (and kept), not a namesake created since
        if crate::deleted::deletes_target(plan.kind())
            && let Some(t) = &mut plan.target
            && t.uid.is_none()
        {
            t.uid = live
                .live
                .as_ref()
                .and_then(|o| o["metadata"]["uid"].as_str())
                .map(str::to_string);
        }
        Ok(Box::new(Ticket {
            plan,
            dry_run,
            effect,
            counted,
            kept,
            outcome: o,
            keys,
        }))
    }

    /// What came of carrying `t` out, at `now`: its cooldown counts from
    /// here, its target and workload are free again, and its outcome.
    pub fn finish(
        &mut self,
        t: Ticket,
        result: Result<ActionReport, ActError>,
        now: Timestamp,
    ) -> Outcome {
        let Ticket {
            plan,
            effect,
            counted,
            kept,
            mut outcome,
            keys,
            ..
        } = t;
        self.release(&keys);
        let o = &mut outcome;
        // the cooldown counts from the end of the action
        let ended = counted.as_ref().and_then(|c| self.guard.ended(c, now));
        let counted_some = counted.is_some();
        o.ledger.extend(counted);
        o.ledger.extend(ended);
        match result {
            Ok(report) => {
                o.result = if report.deferred.is_some() {
                    OutcomeKind::Deferred
                } else if report.simulated && effect == Effect::Propose {
                    OutcomeKind::Proposed
                } else if report.simulated {
                    OutcomeKind::Observed
                } else {
                    OutcomeKind::Acted
                };
                o.message = match &o.approved_by {
                    Some(by) => format!("{} (approved by {by})", report.message),
                    None => report.message,
                };
                o.pull_request = report.pull_request;
                o.deferred = report.deferred;
                // what the executor read itself (finalizers removed), else
                // the live read the plan was checked on; only if it acted
                o.deleted = report
                    .deleted
                    .or(kept)
                    .filter(|_| o.result == OutcomeKind::Acted);
            }
            Err(e) => {
                o.result = OutcomeKind::Failed;
                o.message = e.to_string();
            }
        }
        // only an action that was carried out has something to verify; what
        // failed, was simulated, deferred or proposed leaves flight at once
        let verifies =
            self.verifies && o.result == OutcomeKind::Acted && !plan.kind().is_declarative();
        if !verifies && counted_some {
            o.ledger
                .extend(self.guard.settle(&plan.workload_key(), plan.kind(), now));
        }
        o.plan = Some(plan);
        outcome
    }

    /// Take out of the backlog every plan `drop` picks (a follower leaves
    /// detectors' plans to the leader); returns how many.
    pub fn abandon(&mut self, drop: impl FnMut(&Waiting) -> bool) -> usize {
        self.backlog.remove_where(drop).len()
    }

    /// What `plan`'s action did is known (verified, or nothing verifies it):
    /// it is no longer in flight. Returns the event for the durable record.
    pub fn settled(&mut self, plan: &Plan, now: Timestamp) -> Option<crate::guard::PastEvent> {
        self.guard.settle(&plan.workload_key(), plan.kind(), now)
    }

    /// Remember what the live cluster said owns the controller of `plan`'s pod.
    fn learn_owner(&mut self, plan: &Plan, live: &Facts) {
        let (Some((kind, name, ns)), Some(owner)) = (controller_of(plan), &live.owner) else {
            return;
        };
        if kind != "ReplicaSet" {
            return;
        }
        if self.owners.len() >= OWNERS_KEPT {
            self.owners.clear();
        }
        self.owners.insert(
            format!("{}/{kind}/{name}", ns.unwrap_or("-")),
            owner.clone(),
        );
    }

    fn complete(&self, plan: &mut Plan, facts: &Facts) {
        if plan.workload.is_none() {
            plan.workload.clone_from(&facts.owner);
        }
        // a cluster-scoped object is in no namespace, whatever the signal
        // said: protection and budgets look at its live scope
        if facts.resource.as_ref().is_some_and(|r| !r.namespaced)
            && let Some(t) = &mut plan.target
        {
            t.namespace = None;
        }
        // finalizer removal needs both the route's parameter and the feature
        if let Remediation::CleanupResource(p) = &mut plan.remediation {
            p.remove_finalizers &= self.policy.features.remove_finalizers;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use async_trait::async_trait;

    use super::*;
    use crate::facts::ActError;
    use crate::outcome::ActionReport;
    use crate::testutil::signal;

    fn ready<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("not ready"),
        }
    }

    struct Fixed(LiveState);
    #[async_trait]
    impl FactSource for Fixed {
        async fn facts(&self, _: &Plan) -> Result<Facts, ActError> {
            Ok(Facts {
                state: self.0.clone(),
                ..Facts::default()
            })
        }
    }

    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);
    #[async_trait]
    impl Executor for Recording {
        async fn execute(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, ActError> {
            self.0.lock().unwrap().push(plan.describe());
            Ok(ActionReport {
                simulated: dry_run,
                message: "done".into(),
                ..Default::default()
            })
        }
    }

    fn engine() -> Engine {
        let p =
            Policy::from_yaml("routes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]")
                .unwrap();
        Engine::new(p, "heal8s").unwrap()
    }

    fn crash() -> Signal {
        signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")])
    }

    fn holds() -> Result<Facts, ActError> {
        Ok(Facts {
            state: LiveState::Holds("CrashLoopBackOff".into()),
            ..Facts::default()
        })
    }

    fn acted() -> Result<ActionReport, ActError> {
        Ok(ActionReport {
            message: "done".into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_delete_keeps_the_object_it_was_checked_on_and_names_its_uid() {
        let now = Timestamp::from_second(1_800_000_100).unwrap();
        let live = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "shop", "uid": "u-1", "resourceVersion": "9"},
            "spec": {"nodeName": "w1", "containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": "Running"}
        });
        let facts = || {
            Ok(Facts {
                state: LiveState::Holds("CrashLoopBackOff".into()),
                live: Some(live.clone()),
                ..Facts::default()
            })
        };
        let mut e = engine();
        e.intake(&crash(), now);
        let (Some(s), _) = e.take(now) else {
            panic!("nothing to take")
        };
        let Admitted::Go(t) = e.admit(s, facts(), now) else {
            panic!("not admitted")
        };
        // the delete names the uid read: never a namesake created since
        assert_eq!(
            t.plan.target.as_ref().and_then(|t| t.uid.as_deref()),
            Some("u-1")
        );
        let o = e.finish(*t, acted(), now);
        let kept = o.deleted.expect("kept");
        assert_eq!(kept.manifest["metadata"]["name"], "p");
        assert!(kept.manifest["metadata"].get("uid").is_none());
        assert!(kept.manifest.get("status").is_none());
        // a failed delete keeps nothing
        let later = now
            .checked_add(jiff::SignedDuration::from_secs(3600))
            .unwrap();
        let mut again = crash();
        again.first_seen = later;
        e.intake(&again, later);
        let (Some(s), _) = e.take(later) else {
            panic!("nothing to take")
        };
        let Admitted::Go(t) = e.admit(s, facts(), later) else {
            panic!("not admitted")
        };
        let failed = e.finish(
            *t,
            Err(ActError {
                category: "kube_api",
                message: "boom".into(),
            }),
            later,
        );
        assert_eq!(failed.result, OutcomeKind::Failed);
        assert!(failed.deleted.is_none());
        // dry run: nothing is deleted, nothing kept
        assert_eq!(
            crate::deleted::before_delete(
                crate::remediation::RemediationKind::DeletePod,
                true,
                Some(&live)
            ),
            None
        );
        assert_eq!(
            crate::deleted::before_delete(
                crate::remediation::RemediationKind::DrainNode,
                false,
                Some(&live)
            ),
            None
        );
    }

    #[test]
    fn a_signal_that_waited_longer_than_max_signal_age_is_dropped_not_acted_on() {
        let p = Policy::from_yaml(
            "guard: {maxSignalAge: 10m, budgets: {global: {max: 1, per: 1h}}}\nroutes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]",
        )
        .unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let t0 = Timestamp::from_second(1_800_000_100).unwrap();
        let at = |secs: i64| {
            t0.checked_add(jiff::SignedDuration::from_secs(secs))
                .unwrap()
        };
        let pod = |name: &str| signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", name)]);
        // the first spends the budget; the second waits behind it
        e.intake(&pod("p1"), t0);
        let (Some(s), _) = e.take(t0) else {
            panic!("the first plan runs")
        };
        let Admitted::Go(t) = e.admit(s, holds(), t0) else {
            panic!("the first plan passes")
        };
        e.finish(*t, acted(), t0);
        let mut waiting = pod("p2");
        // it was taken in a minute before the engine saw it (the queue)
        waiting.received = Some(at(-60));
        e.intake(&waiting, t0);
        assert!(e.take(at(300)).0.is_none(), "behind the budget");
        // 9 minutes in the engine, 10 since it was received: dropped
        let (none, out) = e.take(at(541));
        assert!(none.is_none());
        let stale: Vec<&Outcome> = out
            .iter()
            .filter(|o| o.reason == Some(RefusalReason::StaleSignal))
            .collect();
        assert_eq!(stale.len(), 1, "{out:?}");
        assert!(
            stale[0].message.contains("behind global_budget"),
            "{}",
            stale[0].message
        );
        assert!(e.backlog().is_empty());
        // Alertmanager's next delivery of it is news, fresh
        assert_eq!(
            e.take_forgotten(),
            [(waiting.fingerprint.clone(), waiting.first_seen)]
        );
        assert!(e.take_forgotten().is_empty());
        let again = e.intake(&pod("p2"), at(542));
        assert!(
            again.iter().all(|o| o.result != OutcomeKind::Deduped),
            "{again:?}"
        );
        assert_eq!(e.backlog().len(), 1);
        // a policy that does not allow a sane age is refused
        let bad = Policy::from_yaml(
            "guard: {maxSignalAge: 1s}\nroutes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]",
        )
        .unwrap_err();
        assert_eq!(bad.issues[0].path, "guard.maxSignalAge");
    }

    #[test]
    fn a_thousand_plans_admitted_at_once_pass_exactly_the_budget() {
        let p = Policy::from_yaml(
            "guard: {budgets: {global: {max: 10, per: 1m}, perNamespace: {max: 1000, per: 1m}, perWorkload: {max: 1000, per: 1m}}}\nroutes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]",
        )
        .unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let now = Timestamp::from_second(1_800_000_100).unwrap();
        for i in 0..1000 {
            let ns = format!("ns-{}", i % 50);
            let pod = format!("p-{i}");
            e.intake(
                &signal(&[("alertname", "A"), ("namespace", &ns), ("pod", &pod)]),
                now,
            );
        }
        // every plan is taken out before any is admitted: 1,000 facts reads
        // in flight at once, as concurrent tasks would have them
        let mut started = Vec::new();
        while let (Some(s), _) = e.take(now) {
            started.push(s);
        }
        assert_eq!(started.len(), 1000);
        let mut tickets = Vec::new();
        let mut put_off = 0;
        for s in started {
            match e.admit(s, holds(), now) {
                Admitted::Go(t) => tickets.push(t),
                Admitted::Done(out) => {
                    assert!(
                        out.iter()
                            .all(|o| o.reason == Some(RefusalReason::GlobalBudget))
                    );
                    put_off += 1;
                }
            }
        }
        assert_eq!(tickets.len(), 10, "exactly the budget passes");
        assert_eq!(put_off, 990);
        for t in tickets {
            assert_eq!(e.finish(*t, acted(), now).result, OutcomeKind::Acted);
        }
        // the rest wait for the budget, none runs before it frees
        assert!(e.take(now).0.is_none());
        assert_eq!(e.backlog().len(), 990);
        let later = now
            .checked_add(jiff::SignedDuration::from_secs(61))
            .unwrap();
        let mut next = Vec::new();
        while let (Some(s), _) = e.take(later) {
            next.push(s);
        }
        let go = next
            .into_iter()
            .map(|s| e.admit(s, holds(), later))
            .filter(|a| matches!(a, Admitted::Go(_)))
            .count();
        assert_eq!(
            go, 10,
            "the next window lets exactly the budget through again"
        );
    }

    #[test]
    fn a_plan_waits_while_another_for_its_target_runs() {
        let p = Policy::from_yaml(
            "guard: {cooldown: 1s}\nroutes: [{matchers: ['alertname=~\"A|B\"'], remediation: delete-pod}]",
        )
        .unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let now = Timestamp::from_second(1_800_000_100).unwrap();
        e.intake(
            &signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")]),
            now,
        );
        e.intake(
            &signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "q")]),
            now,
        );
        let (first, _) = e.take(now);
        let first = first.unwrap();
        assert_eq!(first.plan().target.as_ref().unwrap().name, "p");
        // another problem with pod p arrives while p's plan runs
        e.intake(
            &signal(&[("alertname", "B"), ("namespace", "shop"), ("pod", "p")]),
            now,
        );
        // the other plan for pod p waits; pod q's runs meanwhile
        let (other, _) = e.take(now);
        let other = other.unwrap();
        assert_eq!(other.plan().target.as_ref().unwrap().name, "q");
        assert!(
            e.take(now).0.is_none(),
            "nothing else may run while p's plan runs"
        );
        let Admitted::Go(t) = e.admit(first, holds(), now) else {
            panic!("refused")
        };
        assert!(e.take(now).0.is_none(), "still running");
        e.finish(*t, acted(), now);
        let later = now.checked_add(jiff::SignedDuration::from_secs(2)).unwrap();
        let (again, _) = e.take(later);
        assert_eq!(again.unwrap().plan().trigger.name, "B");
        drop(other);
    }

    fn unreadable() -> Result<Facts, ActError> {
        Err(ActError {
            category: "kube_api",
            message: "client error (Connect)".into(),
        })
    }

    #[test]
    fn a_plan_whose_facts_cannot_be_read_is_read_again_later_then_runs() {
        let p = Policy::from_yaml("routes: [{remediation: delete-pod}]").unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        e.intake(
            &signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")]),
            t(0),
        );
        let (first, _) = e.take(t(0));
        let Admitted::Done(out) = e.admit(first.unwrap(), unreadable(), t(0)) else {
            panic!("admitted without facts")
        };
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, Some(RefusalReason::FactsUnavailable));
        assert_eq!(out[0].result, OutcomeKind::Refused, "{:?}", out[0]);
        assert!(
            out[0].message.contains("read again in 2s (try 1 of 6)"),
            "{}",
            out[0].message
        );
        assert_eq!(e.backlog().len(), 1, "it waits");
        assert!(e.take(t(1)).0.is_none(), "not before its retry");
        // the API server is still down: read again later, quietly
        let (second, _) = e.take(t(2));
        let Admitted::Done(out) = e.admit(second.unwrap(), unreadable(), t(2)) else {
            panic!()
        };
        assert!(out.is_empty(), "{out:?}");
        assert!(e.take(t(5)).0.is_none(), "the second wait is 4s");
        // back: it runs, once
        let (third, _) = e.take(t(6));
        let Admitted::Go(ticket) = e.admit(third.unwrap(), holds(), t(6)) else {
            panic!("refused")
        };
        assert_eq!(e.finish(*ticket, acted(), t(6)).result, OutcomeKind::Acted);
        assert!(e.backlog().is_empty());
    }

    #[test]
    fn a_plan_whose_facts_stay_unreadable_fails_after_its_tries() {
        let p = Policy::from_yaml("routes: [{remediation: delete-pod}]").unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        e.intake(
            &signal(&[("alertname", "A"), ("namespace", "shop"), ("pod", "p")]),
            t(0),
        );
        let (mut now, mut ends) = (0, Vec::new());
        for _ in 0..UNREAD_TRIES {
            let (started, _) = e.take(t(now));
            let started = started.expect("due again");
            let Admitted::Done(out) = e.admit(started, unreadable(), t(now)) else {
                panic!()
            };
            ends.extend(out);
            now += 31;
        }
        assert!(e.backlog().is_empty(), "given up");
        assert!(e.take(t(now)).0.is_none());
        let last = ends.last().unwrap();
        assert_eq!(last.result, OutcomeKind::Failed);
        assert!(
            last.message.ends_with("gave up after 6 tries"),
            "{}",
            last.message
        );
        assert_eq!(ends.len(), 2, "the first try and the last say so: {ends:?}");
        let waits: Vec<u64> = (1..UNREAD_TRIES)
            .filter_map(unread_retry)
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 30]);
    }

    #[test]
    fn outcomes_read_back_as_written() {
        let p = Policy::from_yaml(
            "routes: [{matchers: ['alertname=\"A\"'], remediation: evict-pod, params: {gracePeriodSeconds: 30}}, {matchers: ['alertname=\"B\"'], remediation: notify-only}]",
        )
        .unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let holds = Fixed(LiveState::Holds("CrashLoopBackOff".into()));
        let mut all = ready(e.process(&crash(), &holds, &Recording::default(), &SystemClock));
        // the same problem again: refused for the cooldown
        let again = signal(&[
            ("alertname", "A"),
            ("namespace", "shop"),
            ("pod", "p"),
            ("x", "1"),
        ]);
        all.extend(ready(e.process(
            &again,
            &holds,
            &Recording::default(),
            &SystemClock,
        )));
        let b = signal(&[("alertname", "B"), ("namespace", "shop"), ("pod", "q")]);
        all.extend(ready(e.process(
            &b,
            &holds,
            &Recording::default(),
            &SystemClock,
        )));
        let kinds: Vec<OutcomeKind> = all.iter().map(|o| o.result).collect();
        assert!(kinds.contains(&OutcomeKind::Acted), "{kinds:?}");
        assert!(kinds.contains(&OutcomeKind::Refused), "{kinds:?}");
        for o in &all {
            let json = serde_json::to_string(o).unwrap();
            let back: Outcome = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, o, "{json}");
        }
        // a plan whose parameters no policy would accept does not read back
        let mut bad = serde_json::to_value(&all[0]).unwrap();
        bad["plan"]["params"]["gracePeriodSeconds"] = serde_json::json!(99999);
        let e = serde_json::from_value::<Outcome>(bad).unwrap_err();
        assert!(e.to_string().contains("gracePeriodSeconds"), "{e}");
    }

    #[test]
    fn a_recovered_target_is_not_acted_on() {
        let exec = Recording::default();
        let out = ready(engine().process(
            &crash(),
            &Fixed(LiveState::Cleared("pod is Ready".into())),
            &exec,
            &SystemClock,
        ));
        assert_eq!(out[0].result, OutcomeKind::Refused);
        assert_eq!(out[0].reason, Some(RefusalReason::ConditionCleared));
        assert!(exec.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_gone_target_is_not_acted_on() {
        let exec = Recording::default();
        let out = ready(engine().process(
            &crash(),
            &Fixed(LiveState::Gone("uid differs".into())),
            &exec,
            &SystemClock,
        ));
        assert_eq!(out[0].reason, Some(RefusalReason::TargetGone));
        assert!(exec.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_target_still_broken_is_acted_on_once() {
        let exec = Recording::default();
        let mut e = engine();
        let facts = Fixed(LiveState::Holds("crash looping".into()));
        let out = ready(e.process(&crash(), &facts, &exec, &SystemClock));
        assert_eq!(out[0].result, OutcomeKind::Acted);
        let again = ready(e.process(&crash(), &facts, &exec, &SystemClock));
        assert_eq!(again[0].result, OutcomeKind::Deduped);
        assert_eq!(exec.0.lock().unwrap().as_slice(), ["delete Pod shop/p"]);
    }

    #[test]
    fn a_route_with_an_occurrence_threshold_acts_from_the_nth_occurrence_only() {
        let p = Policy::from_yaml(
            "guard: {cooldown: 1s, budgets: {perWorkload: {max: 10, per: 1h}, perNamespace: {max: 10, per: 1h}}}\nroutes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod, minOccurrences: 3, window: 10m}]",
        )
        .unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let exec = Recording::default();
        let facts = Fixed(LiveState::Holds("crash looping".into()));
        // occurrences of one problem: a new fingerprint or start each time
        let occurrence = |i: i64, reason: &str| {
            let mut s = signal(&[
                ("alertname", "A"),
                ("namespace", "shop"),
                ("pod", "p"),
                ("reason", reason),
            ]);
            s.fingerprint = format!("f{i}");
            s.first_seen = Timestamp::from_second(1_800_000_000 + i).unwrap();
            s
        };
        let first = ready(e.process(
            &occurrence(1, "CrashLoopBackOff"),
            &facts,
            &exec,
            &SystemClock,
        ));
        assert_eq!(first[0].result, OutcomeKind::Deferred);
        assert_eq!(first[0].deferred.as_deref(), Some("occurrences 1/3"));
        assert!(first[0].message.contains("1/3"), "{}", first[0].message);
        // the same occurrence again (a repeat) does not count, nor another reason
        let repeat = ready(e.process(
            &occurrence(1, "CrashLoopBackOff"),
            &facts,
            &exec,
            &SystemClock,
        ));
        assert_eq!(repeat[0].result, OutcomeKind::Deduped);
        let other = ready(e.process(&occurrence(9, "OOMKilled"), &facts, &exec, &SystemClock));
        assert_eq!(other[0].deferred.as_deref(), Some("occurrences 1/3"));
        let second = ready(e.process(
            &occurrence(2, "CrashLoopBackOff"),
            &facts,
            &exec,
            &SystemClock,
        ));
        assert_eq!(second[0].deferred.as_deref(), Some("occurrences 2/3"));
        assert!(
            exec.0.lock().unwrap().is_empty(),
            "nothing done before the third"
        );
        let third = ready(e.process(
            &occurrence(3, "CrashLoopBackOff"),
            &facts,
            &exec,
            &SystemClock,
        ));
        assert_eq!(third[0].result, OutcomeKind::Acted, "{:?}", third[0]);
        assert_eq!(exec.0.lock().unwrap().as_slice(), ["delete Pod shop/p"]);
    }

    #[test]
    fn an_alert_about_another_cluster_is_not_routed_looked_up_or_acted_on() {
        struct Unreadable;
        #[async_trait]
        impl FactSource for Unreadable {
            async fn facts(&self, _: &Plan) -> Result<Facts, ActError> {
                panic!("the live cluster was read for another cluster's alert")
            }
        }
        let p = Policy::from_yaml(
            "guard: {clusterName: prod-eu-1}\nroutes: [{matchers: ['alertname=\"A\"'], remediation: delete-pod}]",
        )
        .unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let exec = Recording::default();
        let theirs = signal(&[
            ("alertname", "A"),
            ("namespace", "shop"),
            ("pod", "p"),
            ("cluster", "prod-eu-2"),
        ]);
        let out = ready(e.process(&theirs, &Unreadable, &exec, &SystemClock));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].result, OutcomeKind::Refused);
        assert_eq!(out[0].reason, Some(RefusalReason::WrongCluster));
        assert_eq!(out[0].route, None);
        assert!(exec.0.lock().unwrap().is_empty());
        let ours = signal(&[
            ("alertname", "A"),
            ("namespace", "shop"),
            ("pod", "p"),
            ("cluster", "prod-eu-1"),
        ]);
        let out = ready(e.process(
            &ours,
            &Fixed(LiveState::Holds("crash looping".into())),
            &exec,
            &SystemClock,
        ));
        assert_eq!(out[0].result, OutcomeKind::Acted);
    }

    struct ClusterScoped;
    #[async_trait]
    impl FactSource for ClusterScoped {
        async fn facts(&self, _: &Plan) -> Result<Facts, ActError> {
            Ok(Facts {
                state: LiveState::Holds("stale".into()),
                resource: Some(crate::facts::ServedType {
                    plural: "widgets".into(),
                    namespaced: false,
                }),
                ..Facts::default()
            })
        }
    }

    #[test]
    fn a_cluster_scoped_object_is_in_no_namespace_whatever_the_alert_says() {
        // protect "shop"; the alert puts a cluster-scoped Widget "in" an
        // unprotected namespace: the plan must carry no namespace at all
        let p = Policy::from_yaml(
            "profile: test-cluster\ndetectors: {customResources: {resources: [widgets.example.com/v1]}}\nroutes: [{remediation: cleanup-resource}]",
        )
        .unwrap();
        let mut e = Engine::new(p, "heal8s").unwrap();
        let exec = Recording::default();
        let s = signal(&[
            ("alertname", "X"),
            ("customresource_group", "example.com"),
            ("customresource_version", "v1"),
            ("customresource_kind", "Widget"),
            ("namespace", "e2e-1"),
            ("name", "w"),
        ]);
        let out = ready(e.process(&s, &ClusterScoped, &exec, &SystemClock));
        assert_eq!(out[0].result, OutcomeKind::Acted, "{:?}", out[0]);
        let plan = out[0].plan.as_ref().unwrap();
        assert_eq!(plan.namespace(), None, "{plan:?}");
    }

    #[test]
    fn finalizer_removal_needs_the_feature() {
        let p = Policy::from_yaml(
            "routes: [{remediation: cleanup-resource, params: {apiVersion: kubevirt.io/v1, kind: VirtualMachine, removeFinalizers: true}}]",
        )
        .unwrap();
        assert!(!p.features.remove_finalizers);
        let mut e = Engine::new(p, "heal8s").unwrap();
        let exec = Recording::default();
        let s = signal(&[("alertname", "X"), ("namespace", "e2e-1"), ("name", "vm-a")]);
        let out = ready(e.process(
            &s,
            &Fixed(LiveState::Holds("stale".into())),
            &exec,
            &SystemClock,
        ));
        // production disables cleanup-resource entirely
        assert_eq!(out[0].reason, Some(RefusalReason::Disabled));
        match &out[0].plan.as_ref().unwrap().remediation {
            Remediation::CleanupResource(c) => assert!(!c.remove_finalizers),
            other => panic!("{other:?}"),
        }
    }
}
