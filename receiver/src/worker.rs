//! The work queue's consumer: takes accepted signals in through the engine
//! (no API request), runs the plans of the backlog in their turn, then records
//! every outcome (log line, metrics, recent-outcomes view).
//!
//! Owns: the single task that holds the Engine, so guard state needs no lock
//! and every admission is decided one at a time (no cap can let two through
//! where one is allowed; a plan's facts are read here too, so budgets are
//! shared in the backlog's fair order), while the slow parts run
//! concurrently in tasks of their own: carrying plans out (at most
//! `--max-running` at once; a long drain holds one of them, not the worker),
//! and recovery checks (at most [`VERIFYING_AT_ONCE`] at once). Must not
//! parse HTTP or decide anything itself.

use std::sync::{Arc, Mutex};

use receiver_core::pipeline::{Admitted, Ticket, carry_out};
use receiver_core::signal::SourceKind;
use receiver_core::{
    ActError, ActionReport, Clock, Engine, Executor, FactSource, History, Journal, Outcome,
    OutcomeKind, Plan, Signal, Verification, Verifier, VerifyResult,
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::outcomes::{Rings, Which};

/// How many recent outcomes `/outcomes` answers at most in one page (each of
/// its two rings keeps as many, see `crate::outcomes`).
pub const RECENT_OUTCOMES: usize = crate::outcomes::RING_OUTCOMES;

/// How many bytes one kept outcome may take. A larger one is kept cut: long
/// strings shortened, long lists and maps shortened, and `"truncated": true`.
pub const OUTCOME_BYTES: usize = 32 << 10;

/// In a cut outcome: the longest string, in bytes, and the most entries of a
/// nested list or map.
const CUT_STRING_BYTES: usize = 512;
const CUT_ENTRIES: usize = 32;

/// How often settling outcomes writes the dashboard's view of the guard at most.
const SHOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Records outcomes: a structured log line each, metrics, a bounded view
/// of recent ones (refusals apart from the rest, see `crate::outcomes`), and
/// the breakers standing down (see `crate::breakers`).
#[derive(Debug)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    /// Shared by the recorders of every served cluster: one `/outcomes`.
    recent: Arc<Mutex<Rings>>,
    /// The cluster its outcomes are about, when heal8s knows its name.
    cluster: Option<String>,
    stand_down: crate::breakers::Reporter,
    board: crate::dashboard::Board,
    pause: crate::pause::Switch,
}

impl Recorder {
    /// A recorder counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Recorder {
        Recorder {
            stand_down: crate::breakers::Reporter::new(metrics.clone()),
            pause: crate::pause::Switch::with_gauge(&metrics.paused),
            metrics,
            recent: Arc::new(Mutex::new(Rings::default())),
            cluster: None,
            board: crate::dashboard::Board::default(),
        }
    }

    /// A recorder for `cluster`'s outcomes that keeps them with this one's
    /// (one `/outcomes`, the same metrics), with a stand-down report, a
    /// dashboard board and a pause switch of its own.
    pub fn for_cluster(&self, cluster: Option<String>) -> Recorder {
        Recorder {
            stand_down: crate::breakers::Reporter::new(self.metrics.clone()),
            pause: crate::pause::Switch::with_gauge(&self.metrics.paused),
            metrics: self.metrics.clone(),
            recent: self.recent.clone(),
            cluster,
            board: crate::dashboard::Board::default(),
        }
    }

    /// This recorder, for the outcomes of the cluster named `cluster`.
    pub fn named(mut self, cluster: Option<String>) -> Recorder {
        self.cluster = cluster;
        self
    }

    /// The cluster this recorder's outcomes are about.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// The pause switch (`/pause`, the pause ConfigMap).
    pub fn pause(&self) -> &crate::pause::Switch {
        &self.pause
    }

    /// What the dashboard shows.
    pub fn board(&self) -> &crate::dashboard::Board {
        &self.board
    }

    /// Where breaker episodes and refusal counts are reported.
    pub fn stand_down(&self) -> &crate::breakers::Reporter {
        &self.stand_down
    }

    /// Log, count and remember the outcomes of one signal.
    pub fn record(&self, signal: &Signal, outcomes: &[Outcome]) {
        self.metrics.observe_signal(signal);
        self.record_outcomes(outcomes);
    }

    /// Log, count and remember outcomes that no new signal brought (a plan
    /// that waited in the backlog ran, or was refused there).
    pub fn record_outcomes(&self, outcomes: &[Outcome]) {
        self.metrics.observe_outcomes(outcomes);
        let cluster = self.cluster.as_deref();
        for o in outcomes {
            log(o, o.cluster.as_deref().or(cluster));
        }
        let values: Vec<(Which, Value)> = outcomes
            .iter()
            .map(|o| {
                let mut v = bounded(o);
                if o.cluster.is_none()
                    && let (Some(c), Value::Object(m)) = (cluster, &mut v)
                {
                    m.insert("cluster".into(), c.into());
                }
                (Which::of(o.result), v)
            })
            .collect();
        if let Ok(mut rings) = self.recent.lock() {
            for (which, mut v) in values {
                let seq = rings.next_seq();
                if let Value::Object(m) = &mut v {
                    m.insert("seq".into(), seq.into());
                }
                rings.push(which, seq, v.to_string());
            }
        }
    }

    /// A page of kept outcomes as a JSON array, oldest first: with `since`, the
    /// first `limit` whose `seq` is greater; without, the newest `limit`.
    pub fn page(&self, since: Option<u64>, limit: usize) -> String {
        self.page_of(Which::All, since, limit)
    }

    /// `page`, of the outcomes `which` only.
    pub fn page_of(&self, which: Which, since: Option<u64>, limit: usize) -> String {
        self.recent
            .lock()
            .map(|r| r.page(which, since, limit))
            .unwrap_or_else(|_| "[]".into())
    }

    /// Every kept outcome, oldest first.
    pub fn recent(&self) -> Vec<Value> {
        self.recent
            .lock()
            .map(|r| {
                r.all()
                    .into_iter()
                    .filter_map(|k| serde_json::from_str(k).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The memory the kept outcomes take, counted from what is stored.
    pub fn stored_bytes(&self) -> usize {
        self.recent
            .lock()
            .map(|r| r.stored_bytes())
            .unwrap_or_default()
    }
}

/// An outcome as kept for `/outcomes`: its JSON, cut down to [`OUTCOME_BYTES`]
/// when larger (the full record is in the log line and the Remediation record).
fn bounded(o: &Outcome) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or_else(|e| {
        serde_json::json!({"result": o.result.as_str(), "error": format!("unserializable outcome: {e}")})
    });
    // the manifest of a deleted object stays in the record (heal8s
    // show-deleted): kept here it would crowd the recent outcomes out
    if let Some(m) = v.pointer_mut("/deleted/manifest") {
        *m = Value::Null;
    }
    // headroom for `seq` and `truncated`
    let fits = |v: &Value| v.to_string().len() + 64 <= OUTCOME_BYTES;
    if fits(&v) {
        return v;
    }
    let Value::Object(top) = &mut v else {
        return v;
    };
    for field in top.values_mut() {
        cut(field);
    }
    top.insert("truncated".into(), true.into());
    for dropped in ["plan", "ledger"] {
        if fits(&v) {
            return v;
        }
        if let Value::Object(top) = &mut v {
            top.remove(dropped);
        }
    }
    if fits(&v) {
        return v;
    }
    serde_json::json!({"at": o.at, "result": o.result.as_str(), "truncated": true})
}

/// Shorten strings, lists and maps in `v`, recursively.
fn cut(v: &mut Value) {
    match v {
        Value::String(s) => cut_str(s),
        Value::Array(a) => {
            a.truncate(CUT_ENTRIES);
            a.iter_mut().for_each(cut);
        }
        Value::Object(m) => {
            let entries = std::mem::take(m);
            *m = entries
                .into_iter()
                .take(CUT_ENTRIES)
                .map(|(mut k, mut v)| {
                    cut_str(&mut k);
                    cut(&mut v);
                    (k, v)
                })
                .collect();
        }
        _ => {}
    }
}

fn cut_str(s: &mut String) {
    if s.len() <= CUT_STRING_BYTES {
        return;
    }
    let mut end = CUT_STRING_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let total = s.len();
    s.truncate(end);
    s.push_str(&format!("… ({total} bytes)"));
}

/// Put what `outcomes` came to on a stage's span: how many, and the first's
/// result and reason (a refusal fails the span, saying why).
fn traced(stage: &mut crate::trace::Stage, outcomes: &[Outcome]) {
    stage.set(
        "heal8s.outcomes",
        i64::try_from(outcomes.len()).unwrap_or(i64::MAX),
    );
    if let Some(o) = outcomes.first() {
        stage.set("heal8s.result", o.result.as_str());
        if let Some(route) = &o.route {
            stage.set("heal8s.route", route.clone());
        }
        if let Some(r) = o.reason {
            stage.set("heal8s.reason", r.as_str());
        }
    }
}

fn log(o: &Outcome, cluster: Option<&str>) {
    let remediation = o.remediation.map(|r| r.as_str());
    let mode = o.mode.map(|m| m.as_str());
    let reason = o.reason.map(|r| r.as_str());
    let dry_run = o.result == OutcomeKind::Observed;
    macro_rules! emit {
        ($level:ident, $msg:literal) => {
            tracing::$level!(
                result = o.result.as_str(),
                dry_run,
                reason,
                escalated = o.escalated,
                alertname = ?o.name,
                source = %o.source,
                fingerprint = ?o.fingerprint,
                status = o.status.as_str(),
                // not `target`: tracing's JSON lines use that key for the module
                object = o.target.as_deref(),
                route = o.route.as_deref(),
                remediation,
                mode,
                cluster,
                deferred = o.deferred.as_deref(),
                approved_by = o.approved_by.as_deref(),
                trace_id = o.trace_id().map(tracing::field::display),
                detail = ?o.message,
                $msg
            )
        };
    }
    match o.result {
        OutcomeKind::Acted => emit!(info, "Remediation carried out."),
        OutcomeKind::Observed => emit!(
            info,
            "Remediation observed (what would be done); nothing was changed."
        ),
        OutcomeKind::Proposed => emit!(info, "Remediation proposed; nothing was changed."),
        OutcomeKind::AwaitingApproval => emit!(
            warn,
            "Remediation awaits a person's approval (heal8s approve); nothing was changed."
        ),
        OutcomeKind::Refused if o.escalated => {
            emit!(
                warn,
                "Remediation refused and escalated: repeated without recovery."
            )
        }
        OutcomeKind::Refused => emit!(info, "Remediation refused by the guard."),
        OutcomeKind::Deduped => emit!(debug, "Repeated delivery ignored."),
        OutcomeKind::Resolved => emit!(info, "Alert resolved."),
        OutcomeKind::Failed => emit!(warn, "Remediation failed."),
        OutcomeKind::Deferred => emit!(info, "Remediation put off; nothing was changed."),
    }
}

/// The sentence a verification is logged with, and whether it warns: each
/// result says what happened (a failed check is never "verified").
pub fn verification_sentence(result: VerifyResult) -> (bool, &'static str) {
    match result {
        VerifyResult::Recovered => (false, "Recovery verified: the target recovered."),
        VerifyResult::NotRecovered => (
            true,
            "Not recovered: the target did not recover within the verification budget.",
        ),
        VerifyResult::Unverified => (
            false,
            "Recovery unverified: nothing heal8s can read says whether the target recovered.",
        ),
        VerifyResult::StillDown => (
            true,
            "Drained, but the node stayed down: the drain did its job; the node did not come back.",
        ),
    }
}

fn log_verification(plan: &Plan, v: &Verification) {
    let (warn, sentence) = verification_sentence(v.result);
    let remediation = plan.kind().as_str();
    let object = plan.target.as_ref().map(ToString::to_string);
    let trace_id = plan
        .trigger
        .trace
        .map(|t| tracing::field::display(t.trace_id_hex()));
    if warn {
        tracing::warn!(remediation, object, trace_id, result = ?v.result, detail = ?v.message, "{sentence}");
    } else {
        tracing::info!(remediation, object, trace_id, result = ?v.result, detail = ?v.message, "{sentence}");
    }
}

/// The IO the worker needs, behind traits.
pub struct Acting {
    pub facts: Arc<dyn FactSource>,
    pub executor: Arc<dyn Executor>,
    pub clock: Arc<dyn Clock>,
    /// The durable record (Remediation objects), or `NoJournal`.
    pub journal: Arc<dyn Journal>,
    /// Watches targets recover after actions; `None` offline.
    pub verifier: Option<Arc<dyn Verifier>>,
    /// Only the leader processes detector signals.
    pub leadership: receiver_k8s::leader::Leadership,
    /// The durable history the guard is restored from whenever this replica
    /// becomes leader (at once without election); `None` offline.
    pub history: Option<Arc<dyn History>>,
    /// Keys whose escalation a person cleared (annotation on the record).
    pub clears: Option<mpsc::Receiver<String>>,
    /// People's decisions on plans awaiting approval (on their records).
    pub approvals: Option<mpsc::Receiver<receiver_k8s::record::Decision>>,
    /// The accepted RemediationPolicies (a team's own policy for its namespace).
    pub namespace_policies: Option<
        tokio::sync::watch::Receiver<Vec<receiver_core::policy::namespaced::NamespacePolicy>>,
    >,
    /// Who hears what heal8s did; `None` with no receivers configured.
    pub notices: Option<Notices>,
    /// Keeps the alerts that hold remediations across restarts and
    /// failovers; `None` offline.
    pub holds: Option<Arc<dyn receiver_core::journal::HoldKeeper>>,
}

/// Notifications: the decisions (what, how loud, to whom) and the outbox
/// that delivers them off the remediation path.
#[derive(Debug)]
pub struct Notices {
    pub notifier: receiver_core::notify::Notifier,
    pub outbox: receiver_notify::Outbox,
}

impl Notices {
    /// Tell people about `outcomes` (as the leader: a follower acts on nothing).
    fn outcomes(&mut self, outcomes: &[Outcome], now: jiff::Timestamp) {
        for o in outcomes {
            if let Some((n, to)) = self.notifier.outcome(o, now) {
                self.outbox.post(n, to);
            }
        }
    }
}

impl Acting {
    /// Without a cluster (`--no-cluster`): no facts, every allowed action
    /// simulated, no record, always the leader.
    pub fn offline() -> Acting {
        Acting {
            facts: Arc::new(crate::executor::OfflineFacts),
            executor: Arc::new(crate::executor::SimulatingExecutor),
            clock: Arc::new(receiver_core::SystemClock),
            journal: Arc::new(receiver_core::NoJournal),
            verifier: None,
            leadership: receiver_k8s::leader::Leadership::always(),
            history: None,
            clears: None,
            approvals: None,
            namespace_policies: None,
            notices: None,
            holds: None,
        }
    }
}

impl std::fmt::Debug for Acting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acting").finish_non_exhaustive()
    }
}

/// The next cleared key, or never when there is no source of clears.
async fn next_clear(clears: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match clears {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The namespaces' policies once they change, or never without a source.
async fn next_policies(
    rx: &mut Option<
        tokio::sync::watch::Receiver<Vec<receiver_core::policy::namespaced::NamespacePolicy>>,
    >,
) -> Option<Vec<receiver_core::policy::namespaced::NamespacePolicy>> {
    match rx {
        Some(r) => match r.changed().await {
            Ok(()) => Some(r.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The next decision on a plan awaiting approval, or never without a source.
async fn next_decision(
    approvals: &mut Option<mpsc::Receiver<receiver_k8s::record::Decision>>,
) -> Option<receiver_k8s::record::Decision> {
    match approvals {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// How often plans waiting in the backlog are checked again against the
/// guard's state (no API request) when nothing else happens.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// At most this many queued signals are taken in before the next plan runs.
const INTAKE_BATCH: usize = 1024;

/// A burst (at least `GATHER_FROM` signals queued at once) is let finish
/// arriving before the next plan runs, so the backlog shares the budget
/// across all of it: until no signal came for `GATHER_QUIET`, at most
/// `GATHER_MAX`. A lone signal, or a few (a problem and the resolution of the
/// last one, in a steady stream), runs at once.
const GATHER_FROM: usize = 8;
const GATHER_QUIET: std::time::Duration = std::time::Duration::from_millis(50);
const GATHER_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the worker waits for a plan's live facts (several reads, each
/// with the client's own retries) before it puts the plan off to read again.
pub const FACTS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// While the records cannot be read (warming up), they are read again this often.
const WARM_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// While alerts hold remediations, they are written down again this often
/// (their last delivery moves; a new leader forgets one a day after it).
const HOLDS_REFRESH: std::time::Duration = std::time::Duration::from_secs(3600);

/// At most this many recovery checks run at once; the rest wait their turn.
pub const VERIFYING_AT_ONCE: usize = 64;

/// A plan carried out by a task of its own, with what came of it.
type Done = (Box<Ticket>, Result<ActionReport, ActError>);

/// The worker task's state: the engine and everything around it.
struct Worker {
    /// People's decisions seen (record and request): each is taken once.
    decided: std::collections::HashSet<(String, String)>,
    /// Decisions not taken yet, by record (a follower's wait until it leads).
    undecided: std::collections::BTreeMap<String, receiver_k8s::record::Decision>,
    engine: Engine,
    acting: Acting,
    recorder: Arc<Recorder>,
    metrics: Arc<Metrics>,
    verified_tx: mpsc::UnboundedSender<(Plan, Verification)>,
    steps: mpsc::UnboundedSender<Done>,
    /// Plans being carried out.
    running: usize,
    verifying: Arc<tokio::sync::Semaphore>,
    was_leader: bool,
    /// When the dashboard's view of the guard was last written.
    shown: Option<tokio::time::Instant>,
    /// Pauses set or lifted by people.
    pauses: tokio::sync::watch::Receiver<Option<receiver_core::guard::Pause>>,
    /// This worker's part of the gauges: plans running, waiting in the backlog.
    running_level: crate::metrics::Level,
    backlog_level: crate::metrics::Level,
    /// Held for the worker's life: its part of `heal8s_backlog_capacity`.
    _capacity_level: crate::metrics::Level,
    /// Leading, but the history could not be read yet: nothing is decided.
    warming: bool,
    /// Signals taken from the queue while warming up, in order (at most one
    /// queue's worth: the worker stops taking more while warming).
    waiting: std::collections::VecDeque<Signal>,
    /// Where the alerts holding remediations go to be kept (a task writes them).
    holds_tx: Option<tokio::sync::watch::Sender<Vec<receiver_core::guard::holds::HeldAlert>>>,
    /// The guard's hold changes last handed over, and when.
    holds_kept: (u64, Option<tokio::time::Instant>),
}

impl Worker {
    /// Whether this replica leads now. On becoming leader the guard is
    /// restored from the durable record first; on losing the lead, the plans
    /// detectors left waiting go (the new leader's detectors signal them again).
    async fn lead(&mut self) -> Option<bool> {
        if self.pauses.has_changed().unwrap_or(false) {
            let pause = self.pauses.borrow_and_update().clone();
            self.apply_pause(pause);
        }
        let leader = self.acting.leadership.is_leader();
        if leader && !self.was_leader {
            // what other processes did is the truth: nothing is decided
            // before it is read (warm-up); unreadable, signals wait
            if let Some(h) = &self.acting.history {
                let Some((actions, alerts)) = h.load().await else {
                    if !self.warming {
                        self.warming = true;
                        tracing::warn!(
                            "Leading, but the Remediation records cannot be read: heal8s decides nothing until it has read them; signals wait in the queue."
                        );
                    }
                    return None;
                };
                // severity from history counts what the records say too
                if let Some(n) = &mut self.acting.notices {
                    n.notifier.observe(&actions);
                }
                self.engine
                    .restore(actions, alerts, self.acting.clock.now());
            }
            if self.warming {
                self.warming = false;
                tracing::info!("The Remediation records are read: heal8s decides again.");
            }
            self.acting.journal.resume().await;
            // the alerts holding remediations, as the last leader kept them
            if let Some(k) = &self.acting.holds
                && let Some(kept) = k.load().await
            {
                if !kept.is_empty() {
                    tracing::info!(
                        alerts = kept.len(),
                        "Holding remediations again for the alerts the last leader saw firing."
                    );
                }
                self.engine.restore_holds(&kept, self.acting.clock.now());
            }
        }
        if !leader && self.was_leader {
            let n = self
                .engine
                .abandon(|w| w.plan.trigger.source == SourceKind::Detector);
            self.metrics
                .signals_skipped_not_leader
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
        self.was_leader = leader;
        Some(leader)
    }

    /// Take one signal in: admitted, routed, planned and prechecked, with no
    /// API request; its plans join the backlog.
    async fn take_in(&mut self, signal: Signal) {
        if self.warming {
            self.waiting.push_back(signal);
            return;
        }
        let Some(leader) = self.lead().await else {
            // warming up: it waits, in order, until the history is read
            self.waiting.push_back(signal);
            return;
        };
        if signal.source.kind() == SourceKind::Detector && !leader {
            // queued just before the lease was lost; the new leader's detectors signal it again
            self.metrics.signals_skipped_not_leader.inc();
            return;
        }
        let mut stage = crate::trace::start("route", signal.trace);
        let outcomes = self.engine.intake(&signal, self.acting.clock.now());
        traced(&mut stage, &outcomes);
        // the plans it made that wait their turn (most do: a plan runs from
        // the backlog); looked for only when the span goes somewhere
        let queued: Vec<&str> = if crate::trace::exporting() {
            self.engine
                .backlog()
                .iter()
                .filter(|w| w.plan.trigger.fingerprint == signal.fingerprint)
                .map(|w| w.plan.route.as_str())
                .collect()
        } else {
            Vec::new()
        };
        if !queued.is_empty() {
            stage.set(
                "heal8s.queued",
                i64::try_from(queued.len()).unwrap_or(i64::MAX),
            );
            if outcomes.is_empty() {
                stage.set("heal8s.route", queued.join(","));
            }
        }
        drop(stage);
        self.keep_holds(leader, false);
        self.recorder.record(&signal, &outcomes);
        self.settle(&outcomes, leader).await;
    }

    /// Take the decisions waiting, each once, if this replica leads; whether
    /// any was taken.
    async fn take_decisions(&mut self) -> bool {
        if self.undecided.is_empty() || !self.acting.leadership.is_leader() {
            return false;
        }
        for (_, d) in std::mem::take(&mut self.undecided) {
            if self.decided.insert((d.record.clone(), d.request.clone())) {
                self.decide(d).await;
            }
        }
        true
    }

    /// Take a person's decision on a plan awaiting approval: the record
    /// first (it takes a decision once), then, if approved, the plan goes to
    /// the engine like any other (live state read again, the whole guard).
    async fn decide(&mut self, d: receiver_k8s::record::Decision) {
        let now = self.acting.clock.now();
        let took = self
            .acting
            .journal
            .decided(&d.plan, &d.request, &d.by, d.approved)
            .await;
        if !took {
            return;
        }
        let mut stage = crate::trace::start("approve", d.plan.trigger.trace);
        stage.set("heal8s.record", d.record.clone());
        stage.set("heal8s.decided_by", d.by.clone());
        stage.set("heal8s.approved", d.approved);
        drop(stage);
        tracing::info!(
            trace_id = d.plan.trigger.trace.map(|t| tracing::field::display(t.trace_id_hex())),
            record = %d.record,
            by = %d.by,
            approved = d.approved,
            "A person decided on a plan awaiting approval."
        );
        if !d.approved {
            return;
        }
        let mut plan = d.plan;
        if let Some(a) = &mut plan.approval {
            a.approved_by = Some(d.by.clone());
            // when heal8s took it: the time a person wrote is theirs to claim
            a.approved_at = Some(now);
        }
        let outcomes = self.engine.approved(plan, now);
        if !outcomes.is_empty() {
            self.recorder.record_outcomes(&outcomes);
            self.settle(&outcomes, true).await;
        }
    }

    /// Start the next plan whose turn it is, if another may run: its facts
    /// are read and it is checked here, in turn (so budgets are shared in
    /// the backlog's fair order), then carried out in a task of its own.
    /// False when none may start now.
    async fn start_next(&mut self) -> bool {
        if self.running >= self.engine.max_running() {
            return false;
        }
        let Some(leader) = self.lead().await else {
            return false;
        };
        let (due, outcomes) = self.engine.take(self.acting.clock.now());
        if !outcomes.is_empty() {
            self.recorder.record_outcomes(&outcomes);
            self.settle(&outcomes, leader).await;
        }
        let Some(started) = due else {
            return false;
        };
        let trace = started.plan().trigger.trace;
        let mut stage = crate::trace::start("recheck", trace);
        // a server that takes connections and never answers holds no one
        // for long: the plan is read again later (see `Engine::admit`)
        let live = tokio::time::timeout(FACTS_TIMEOUT, self.acting.facts.facts(started.plan()))
            .await
            .unwrap_or_else(|_| {
                Err(ActError {
                    category: "timeout",
                    message: format!(
                        "no answer from the Kubernetes API within {}s",
                        FACTS_TIMEOUT.as_secs()
                    ),
                })
            });
        if let Err(e) = &live {
            stage.fail(e.message.clone());
        }
        drop(stage);
        let mut stage = crate::trace::start("guard", trace);
        let admitted = self.engine.admit(started, live, self.acting.clock.now());
        match &admitted {
            Admitted::Go(ticket) => {
                stage.set("heal8s.verdict", "allow");
                stage.set("heal8s.observe", ticket.dry_run);
            }
            Admitted::Done(outcomes) => traced(&mut stage, outcomes),
        }
        drop(stage);
        match admitted {
            Admitted::Go(ticket) => {
                // a destructive action is announced before it starts
                if !ticket.dry_run
                    && let Some(n) = &mut self.acting.notices
                    && let Some((notice, to)) =
                        n.notifier.starting(&ticket.plan, self.acting.clock.now())
                {
                    n.outbox.post(notice, to);
                }
                self.running += 1;
                self.running_level.set_count(self.running);
                let (executor, journal, steps) = (
                    self.acting.executor.clone(),
                    self.acting.journal.clone(),
                    self.steps.clone(),
                );
                tokio::spawn(async move {
                    let plan = &ticket.plan;
                    let name = if plan.kind().is_declarative() {
                        "pull_request"
                    } else {
                        "act"
                    };
                    let mut stage = crate::trace::start(name, plan.trigger.trace);
                    stage.set("heal8s.action", plan.describe());
                    stage.set("heal8s.observe", ticket.dry_run);
                    let result = carry_out(&ticket, executor.as_ref(), journal.as_ref()).await;
                    match &result {
                        Ok(report) => {
                            stage.set("heal8s.result", report.message.clone());
                            if let Some(pr) = &report.pull_request {
                                stage.set("heal8s.pull_request", pr.url.clone());
                            }
                        }
                        Err(e) => stage.fail(format!("{}: {}", e.category, e.message)),
                    }
                    drop(stage);
                    let _ = steps.send((ticket, result));
                });
            }
            Admitted::Done(outcomes) => {
                self.recorder.record_outcomes(&outcomes);
                self.settle(&outcomes, leader).await;
            }
        }
        true
    }

    /// A plan was carried out: its end, and what follows.
    async fn done(&mut self, (ticket, result): Done) {
        let leader = self.acting.leadership.is_leader();
        let o = self.engine.finish(*ticket, result, self.acting.clock.now());
        self.running = self.running.saturating_sub(1);
        self.running_level.set_count(self.running);
        let outcomes = [o];
        self.recorder.record_outcomes(&outcomes);
        self.settle(&outcomes, leader).await;
    }

    /// Hand the alerts holding remediations to their keeper when one started
    /// or stopped holding (or, with `refresh`, every [`HOLDS_REFRESH`] while
    /// any holds, so their last delivery stays current). The leader only.
    fn keep_holds(&mut self, leader: bool, refresh: bool) {
        let Some(tx) = &self.holds_tx else {
            return;
        };
        if !leader {
            return;
        }
        // every signal passes here: only a change (or the hourly refresh)
        // costs the list
        let guard = self.engine.guard();
        let changes = guard.hold_changes();
        let (seen, at) = self.holds_kept;
        let due = refresh && at.is_none_or(|t| t.elapsed() >= HOLDS_REFRESH);
        if changes == seen && !due {
            return;
        }
        let kept = guard.kept_holds(self.acting.clock.now());
        if changes == seen && kept.is_empty() {
            return;
        }
        self.holds_kept = (changes, Some(tokio::time::Instant::now()));
        let _ = tx.send(kept);
    }

    /// Pause heal8s or let it act again, and say so.
    fn apply_pause(&mut self, pause: Option<receiver_core::guard::Pause>) {
        match &pause {
            Some(p) => {
                tracing::warn!(source = %p.source, by = %p.by, reason = %p.reason, "heal8s is PAUSED: it decides and records, and changes nothing until resumed.")
            }
            None if self.engine.guard().pause().is_some() => {
                tracing::info!("heal8s is resumed: it acts again.")
            }
            None => {}
        }
        self.engine.set_pause(pause);
    }

    /// Write the guard's state where the dashboard reads it (at most every
    /// [`SHOW_EVERY`] from settling: a storm settles thousands of outcomes a
    /// second; the report tick writes it regardless).
    fn show(&mut self, leader: bool) {
        self.shown = Some(tokio::time::Instant::now());
        let now = self.acting.clock.now();
        let guard = self.engine.guard();
        self.recorder.board().update(crate::dashboard::GuardView {
            at: now,
            leader,
            budgets: guard.budget_use(now, 10),
            breakers: guard.breakers(),
            backlog: self.engine.backlog().len(),
            running: self.running,
            holding: guard.holding_alerts(now),
            paused: guard.pause().cloned(),
        });
    }

    /// Everything that follows outcomes: breaker reports, the durable
    /// record, and verification of what was done.
    async fn settle(&mut self, outcomes: &[Outcome], leader: bool) {
        if self.shown.is_none_or(|t| t.elapsed() >= SHOW_EVERY) {
            self.show(leader);
        }
        self.backlog_level.set_count(self.engine.backlog().len());
        self.recorder.stand_down().observe(
            &self.engine.guard().breakers(),
            outcomes,
            self.acting.clock.now(),
            leader,
        );
        if leader && let Some(n) = &mut self.acting.notices {
            n.outcomes(outcomes, self.acting.clock.now());
        }
        for o in outcomes {
            // an alert's or a detector's signal: both settle what they triggered
            if o.result == OutcomeKind::Resolved {
                self.acting.journal.resolved(&o.fingerprint).await;
                // the escalation ended if the policy lets a resolved alert end it
                let cleared = o
                    .ledger
                    .iter()
                    .any(|e| !self.engine.guard().has_escalation(e.event.key()));
                self.acting.journal.remember(&o.ledger, cleared).await;
            }
            self.acting.journal.write(o).await;
            if let (OutcomeKind::Acted, Some(plan), Some(verifier)) =
                (o.result, &o.plan, &self.acting.verifier)
                && plan.kind().is_mutating()
                && !plan.kind().is_declarative()
            {
                let (plan, verifier, tx) =
                    (plan.clone(), verifier.clone(), self.verified_tx.clone());
                let (turns, gauge) = (self.verifying.clone(), self.metrics.verifying.clone());
                gauge.inc();
                tokio::spawn(async move {
                    // bounded: the rest wait for a turn
                    let turn = turns.acquire_owned().await;
                    let mut stage = crate::trace::start("verify", plan.trigger.trace);
                    let v = verifier.verify(&plan).await;
                    stage.set("heal8s.verification", verification_sentence(v.result).1);
                    if v.result == VerifyResult::NotRecovered {
                        stage.fail(v.message.clone());
                    }
                    drop(stage);
                    drop(turn);
                    gauge.dec();
                    let _ = tx.send((plan, v));
                });
            }
        }
    }
}

/// Process queued signals until every sender is gone and the queue is empty.
///
/// Each round takes in every queued signal (no API request: admit, route,
/// plan, precheck), then starts the plans whose turn it is in the backlog,
/// as many as may run (facts, check, act: the check here, one at a time,
/// the rest in tasks). Plans put off for want of budget wait there and are
/// checked again against the guard every [`RECHECK`], so they run as the
/// budget frees without being signalled again.
pub async fn run(
    engine: Engine,
    mut queue: crate::queue::QueueReceiver,
    mut acting: Acting,
    recorder: Arc<Recorder>,
    metrics: Arc<Metrics>,
) {
    let (verified_tx, mut verified) = mpsc::unbounded_channel::<(Plan, Verification)>();
    let (steps, mut stepped) = mpsc::unbounded_channel::<Done>();
    let mut clears = acting.clears.take();
    let mut approvals = acting.approvals.take();
    let mut namespace_policies = acting.namespace_policies.take();
    let capacity_level = crate::metrics::Level::of(&metrics.backlog_capacity);
    capacity_level.set_count(engine.backlog().capacity());
    let pauses = recorder.pause().subscribe();
    let holds_tx = acting.holds.clone().map(|keeper| {
        let (tx, mut rx) = tokio::sync::watch::channel(Vec::new());
        // one write at a time, the newest state, at most one a second
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let held = rx.borrow_and_update().clone();
                keeper.save(&held).await;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        tx
    });
    let running_level = crate::metrics::Level::of(&metrics.running);
    let backlog_level = crate::metrics::Level::of(&metrics.backlog_depth);
    let mut w = Worker {
        engine,
        acting,
        recorder,
        metrics,
        verified_tx,
        steps,
        running: 0,
        verifying: Arc::new(tokio::sync::Semaphore::new(VERIFYING_AT_ONCE)),
        was_leader: false,
        shown: None,
        pauses,
        running_level,
        backlog_level,
        _capacity_level: capacity_level,
        holds_tx,
        holds_kept: (0, None),
        warming: false,
        waiting: std::collections::VecDeque::new(),
        decided: Default::default(),
        undecided: Default::default(),
    };
    let paused = w.recorder.pause().current();
    w.apply_pause(paused);
    // breakers close and refusal windows end with no signal to notice them
    let mut report = tokio::time::interval(crate::breakers::TICK);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // budgets free with time: waiting plans are checked again
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due = true;
    loop {
        // warming up (leading, the records unread): nothing more is taken
        // from the queue and nothing is decided; what was taken waits here
        if w.warming {
            if w.lead().await.is_none() {
                tokio::select! {
                    _ = tokio::time::sleep(WARM_RETRY) => {}
                    Some(done) = stepped.recv() => w.done(done).await,
                }
                continue;
            }
            while let Some(s) = w.waiting.pop_front() {
                w.take_in(s).await;
            }
            due = true;
        }
        let mut took = 0;
        while took < INTAKE_BATCH
            && !w.warming
            && let Some(s) = queue.try_recv()
        {
            took += 1;
            w.take_in(s).await;
        }
        if took >= GATHER_FROM {
            let started = tokio::time::Instant::now();
            while started.elapsed() < GATHER_MAX
                && !w.warming
                && let Ok(Some(s)) = tokio::time::timeout(GATHER_QUIET, queue.recv()).await
            {
                w.take_in(s).await;
                while !w.warming
                    && let Some(s) = queue.try_recv()
                {
                    w.take_in(s).await;
                }
            }
        }
        // a signal whose plans only join the waiting ones changes nothing
        // that may run; time does (the recheck tick), and so does a plan
        // that passed its precheck
        if took > 0 && w.engine.has_fresh() {
            due = true;
        }
        if due {
            while w.start_next().await {}
            due = false;
            // stale alerts dropped: their next delivery is news at the door too
            for (fingerprint, start) in w.engine.take_forgotten() {
                queue.forget_occurrence(&fingerprint, start);
            }
        }
        if w.warming {
            continue;
        }
        let signal = tokio::select! {
            s = queue.recv() => match s {
                Some(s) => s,
                None => break,
            },
            Some(done) = stepped.recv() => {
                w.done(done).await;
                due = true;
                continue;
            }
            _ = recheck.tick(), if !w.engine.backlog().is_empty() => {
                due = true;
                continue;
            }
            _ = report.tick() => {
                let leader = w.acting.leadership.is_leader();
                // decisions seen while following are taken once this replica leads
                due |= w.take_decisions().await;
                w.keep_holds(leader, true);
                // nodes coming back raise no plan: see whether breakers still hold
                let cluster = if w.engine.guard().nodes_held() {
                    w.acting.facts.cluster().await
                } else {
                    None
                };
                w.engine.release_breakers(w.acting.clock.now(), cluster.as_ref());
                w.recorder.stand_down().observe(&w.engine.guard().breakers(), &[], w.acting.clock.now(), leader);
                w.show(leader);
                continue;
            }
            Some((plan, v)) = verified.recv() => {
                due = true;
                let key = plan.workload_key();
                let escalated = w.engine.guard().has_escalation(&key);
                let settled = w.engine.settled(&plan, w.acting.clock.now());
                let event = v
                    .recovered()
                    .then(|| w.engine.recovered(&plan, w.acting.clock.now()));
                let cleared = escalated && !w.engine.guard().has_escalation(&key);
                w.metrics
                    .verifications
                    .get_or_create(&crate::metrics::ResultLabel {
                        result: match v.result {
                            VerifyResult::Recovered => "recovered",
                            VerifyResult::NotRecovered => "not_recovered",
                            VerifyResult::Unverified => "unverified",
                            VerifyResult::StillDown => "still_down",
                        },
                    })
                    .inc();
                log_verification(&plan, &v);
                if let Some(n) = &mut w.acting.notices
                    && let Some((notice, to)) = n.notifier.verification(&plan, &v, w.acting.clock.now())
                {
                    n.outbox.post(notice, to);
                }
                let events: Vec<_> = settled.into_iter().chain(event.clone()).collect();
                if let Some(n) = &mut w.acting.notices {
                    n.notifier.observe(&events);
                }
                w.acting.journal.verified(&plan, &v, &events).await;
                // a recovery also reaches the other records of its workload
                if let Some(e) = event {
                    w.acting.journal.remember(&[e], cleared).await;
                }
                // a node that stayed down after its drain is signalled again
                // (routes may send it to delete-node), through the guard as always
                match receiver_core::verify::still_down_signal(&plan, &v, w.acting.clock.now()) {
                    Some(s) => s,
                    None => continue,
                }
            }
            Some(p) = next_policies(&mut namespace_policies) => {
                w.engine.set_namespace_policies(&p);
                tracing::info!(policies = p.len(), "The namespaces' own RemediationPolicies changed.");
                due = true;
                continue;
            }
            Some(d) = next_decision(&mut approvals) => {
                w.undecided.insert(d.record.clone(), d);
                due |= w.take_decisions().await;
                continue;
            }
            Some(key) = next_clear(&mut clears) => {
                due = true;
                if w.acting.leadership.is_leader() && w.engine.guard().has_escalation(&key) {
                    let e = w.engine.clear_escalation(&key, w.acting.clock.now());
                    tracing::info!(key = ?key, "Escalation cleared by a person; heal8s may act on it again.");
                    w.acting.journal.remember(&[e], true).await;
                }
                continue;
            }
        };
        w.take_in(signal).await;
        due |= w.engine.has_fresh();
    }
    // what runs finishes, and what may still run does; what waits for its
    // budget is given up (past the shutdown deadline, the serve task stops
    // this one: an action cut off stays "started" in its record, and the
    // next leader marks it interrupted)
    loop {
        while w.start_next().await {}
        if w.running == 0 {
            break;
        }
        match stepped.recv().await {
            Some(done) => w.done(done).await,
            None => break,
        }
    }
    let left = w.engine.backlog().len();
    if left > 0 {
        tracing::info!(
            waiting = left,
            "Plans still waiting for their budget are given up (detectors and Alertmanager signal them again)."
        );
    }
    tracing::info!("Work queue drained; worker stopped (pending recovery checks are abandoned).");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::executor::{OfflineFacts, SimulatingExecutor};
    use crate::outcomes::RECENT_OUTCOMES_BYTES;
    use receiver_core::{NoJournal, Policy, SystemClock, alertmanager};

    const FIRING: &str = include_str!("../core/tests/fixtures/sample-webhook.json");

    /// Outcomes of alerts carrying `label_bytes` of hostile label each, through the real engine.
    async fn hostile(recorder: &Recorder, n: usize, label_bytes: impl Fn(usize) -> usize) -> usize {
        let mut engine = Engine::new(Policy::default_policy().unwrap(), "heal8s").unwrap();
        let payload = alertmanager::parse(FIRING.as_bytes()).unwrap();
        let mut biggest = 0;
        for i in 0..n {
            let mut alert = payload.alerts[0].clone();
            alert.fingerprint = format!("{i:016x}");
            alert
                .labels
                .insert("evil".into(), "x".repeat(label_bytes(i)));
            let signal = Signal::from_alert(&payload, &alert);
            let outcomes = engine
                .process_with(
                    &signal,
                    &OfflineFacts,
                    &SimulatingExecutor,
                    &NoJournal,
                    &SystemClock,
                )
                .await;
            for o in &outcomes {
                biggest = biggest.max(serde_json::to_string(o).unwrap().len());
            }
            recorder.record(&signal, &outcomes);
        }
        biggest
    }

    #[tokio::test]
    async fn kept_outcomes_stay_within_their_byte_budget_under_hostile_labels() {
        let recorder = Recorder::new(Arc::new(Metrics::new()));
        // mostly just under the per-outcome cap (so the byte budget, not the
        // count, is what binds), with a 1 MiB label now and then (the attack)
        let biggest = hostile(
            &recorder,
            700,
            |i| {
                if i % 50 == 0 { 1 << 20 } else { 24 << 10 }
            },
        )
        .await;
        assert!(
            biggest > 1 << 20,
            "the hostile label never reached an outcome"
        );
        let stored = recorder.stored_bytes();
        assert!(
            stored <= RECENT_OUTCOMES_BYTES,
            "{stored} bytes kept; the budget is {RECENT_OUTCOMES_BYTES}"
        );
        assert!(
            stored > crate::outcomes::RING_BYTES / 2,
            "too little kept to prove the budget binds: {stored}"
        );
        let kept = recorder.recent();
        assert!(kept.len() < RECENT_OUTCOMES, "{}", kept.len());
        for o in &kept {
            assert!(
                o.to_string().len() <= OUTCOME_BYTES,
                "{}",
                o.to_string().len()
            );
        }
        // the newest outcome is kept, and a cut one says so
        let last = kept.last().unwrap();
        assert_eq!(
            last["plan"]["trigger"]["labels"]["pod"], "api-7d9c-x2",
            "{last}"
        );
        assert!(
            kept.iter().any(|o| o["truncated"] == true),
            "no 1 MiB outcome was cut"
        );
        assert!(
            kept.windows(2)
                .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64())
        );
    }

    /// Facts that never come: an API server that took the connection and
    /// went quiet.
    struct Silent;

    #[async_trait::async_trait]
    impl receiver_core::FactSource for Silent {
        async fn facts(&self, _: &Plan) -> Result<receiver_core::Facts, ActError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_api_server_holds_the_worker_no_longer_than_the_facts_timeout() {
        let metrics = Arc::new(Metrics::new());
        let recorder = Arc::new(Recorder::new(metrics.clone()));
        let engine = Engine::new(Policy::default_policy().unwrap(), "heal8s").unwrap();
        let (tx, rx) = crate::queue::work_queue(16);
        let acting = Acting {
            facts: Arc::new(Silent),
            ..Acting::offline()
        };
        let worker = tokio::spawn(run(engine, rx, acting, recorder.clone(), metrics));
        let payload = alertmanager::parse(FIRING.as_bytes()).unwrap();
        let signal = Signal::from_alert(&payload, &payload.alerts[0]);
        tx.send_alerts(vec![signal]).unwrap();
        let waited = tokio::time::Instant::now();
        let put_off = loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if let Some(o) = recorder
                .recent()
                .into_iter()
                .find(|o| o["reason"] == "facts_unavailable")
            {
                break o;
            }
            assert!(waited.elapsed() < FACTS_TIMEOUT * 2, "still waiting");
        };
        assert!(waited.elapsed() >= FACTS_TIMEOUT, "{:?}", waited.elapsed());
        let message = put_off["message"].as_str().unwrap();
        assert!(
            message.contains("no answer from the Kubernetes API within 15s"),
            "{message}"
        );
        assert!(message.contains("read again in 2s"), "{message}");
        tx.close();
        worker.abort();
    }

    #[test]
    fn each_verification_result_says_what_happened() {
        let all = [
            VerifyResult::Recovered,
            VerifyResult::NotRecovered,
            VerifyResult::Unverified,
            VerifyResult::StillDown,
        ];
        let sentences: std::collections::BTreeSet<&str> =
            all.iter().map(|r| verification_sentence(*r).1).collect();
        assert_eq!(sentences.len(), all.len(), "one sentence per result");
        let (warn, failed) = verification_sentence(VerifyResult::NotRecovered);
        assert!(warn);
        assert!(!failed.contains("verified"), "{failed}");
        assert!(failed.contains("did not recover"), "{failed}");
        let (_, unverified) = verification_sentence(VerifyResult::Unverified);
        assert!(
            unverified.starts_with("Recovery unverified"),
            "{unverified}"
        );
        assert!(!verification_sentence(VerifyResult::Recovered).0);
    }

    #[tokio::test]
    async fn pages_are_newest_by_default_and_follow_a_cursor() {
        let recorder = Recorder::new(Arc::new(Metrics::new()));
        hostile(&recorder, 10, |_| 1).await;
        let all = recorder.recent();
        let seqs = |text: String| -> Vec<u64> {
            serde_json::from_str::<Vec<Value>>(&text)
                .unwrap()
                .iter()
                .map(|o| o["seq"].as_u64().unwrap())
                .collect()
        };
        let n = all.len() as u64;
        assert!(n >= 10);
        assert_eq!(seqs(recorder.page(None, 3)), vec![n - 2, n - 1, n]);
        assert_eq!(seqs(recorder.page(Some(0), 2)), vec![1, 2]);
        assert_eq!(seqs(recorder.page(Some(n - 1), 5)), vec![n]);
        assert_eq!(seqs(recorder.page(Some(n), 5)), Vec::<u64>::new());
    }
}
