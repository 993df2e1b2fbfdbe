//! The work queue's consumer: takes accepted signals one at a time through the
//! engine, then records every outcome (log line, metrics, recent-outcomes view).
//!
//! Owns: the single task that holds the Engine (so guard state needs no lock),
//! and the recorder. Must not parse HTTP or decide anything itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use receiver_core::{
    Clock, Engine, Executor, FactSource, History, Journal, Outcome, OutcomeKind, Plan, Signal,
    Verification, Verifier, VerifyResult,
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// How many recent outcomes `/outcomes` keeps at most.
pub const RECENT_OUTCOMES: usize = 512;

/// How many bytes the recent outcomes may take together (their JSON): the
/// oldest go first when a new one would pass it. It also bounds a response.
pub const RECENT_OUTCOMES_BYTES: usize = 8 << 20;

/// How many bytes one kept outcome may take. A larger one is kept cut: long
/// strings shortened, long lists and maps shortened, and `"truncated": true`.
pub const OUTCOME_BYTES: usize = 32 << 10;

/// In a cut outcome: the longest string, in bytes, and the most entries of a
/// nested list or map.
const CUT_STRING_BYTES: usize = 512;
const CUT_ENTRIES: usize = 32;

/// One kept outcome: its sequence number and its JSON (with `seq` in it).
#[derive(Debug)]
struct Kept {
    seq: u64,
    json: Box<str>,
}

impl Kept {
    /// What it costs in memory: its text and its slot.
    fn cost(&self) -> usize {
        self.json.len() + std::mem::size_of::<Kept>()
    }
}

#[derive(Debug, Default)]
struct Ring {
    kept: VecDeque<Kept>,
    bytes: usize,
    next_seq: u64,
}

/// Records outcomes: a structured log line each, metrics, and a bounded view
/// of recent ones (at most [`RECENT_OUTCOMES`] and [`RECENT_OUTCOMES_BYTES`]).
#[derive(Debug)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    recent: Mutex<Ring>,
}

impl Recorder {
    /// A recorder counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Recorder {
        Recorder {
            metrics,
            recent: Mutex::new(Ring {
                next_seq: 1,
                ..Ring::default()
            }),
        }
    }

    /// Log, count and remember the outcomes of one signal.
    pub fn record(&self, signal: &Signal, outcomes: &[Outcome]) {
        self.metrics.observe(signal, outcomes);
        for o in outcomes {
            log(o);
        }
        let values: Vec<Value> = outcomes.iter().map(bounded).collect();
        if let Ok(mut ring) = self.recent.lock() {
            for mut v in values {
                let seq = ring.next_seq;
                ring.next_seq += 1;
                if let Value::Object(m) = &mut v {
                    m.insert("seq".into(), seq.into());
                }
                let kept = Kept {
                    seq,
                    json: v.to_string().into_boxed_str(),
                };
                while ring.kept.len() == RECENT_OUTCOMES
                    || (!ring.kept.is_empty() && ring.bytes + kept.cost() > RECENT_OUTCOMES_BYTES)
                {
                    if let Some(old) = ring.kept.pop_front() {
                        ring.bytes -= old.cost();
                    }
                }
                ring.bytes += kept.cost();
                ring.kept.push_back(kept);
            }
        }
    }

    /// A page of kept outcomes as a JSON array, oldest first: with `since`, the
    /// first `limit` whose `seq` is greater; without, the newest `limit`.
    pub fn page(&self, since: Option<u64>, limit: usize) -> String {
        let Ok(ring) = self.recent.lock() else {
            return "[]".into();
        };
        let chosen: Vec<&Kept> = match since {
            Some(after) => ring
                .kept
                .iter()
                .filter(|k| k.seq > after)
                .take(limit)
                .collect(),
            None => {
                let skip = ring.kept.len().saturating_sub(limit);
                ring.kept.iter().skip(skip).collect()
            }
        };
        let mut out =
            String::with_capacity(chosen.iter().map(|k| k.json.len() + 1).sum::<usize>() + 2);
        out.push('[');
        for (i, k) in chosen.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&k.json);
        }
        out.push(']');
        out
    }

    /// Every kept outcome, oldest first.
    pub fn recent(&self) -> Vec<Value> {
        self.recent
            .lock()
            .map(|r| {
                r.kept
                    .iter()
                    .filter_map(|k| serde_json::from_str(&k.json).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The memory the kept outcomes take, counted from what is stored.
    pub fn stored_bytes(&self) -> usize {
        self.recent
            .lock()
            .map(|r| r.kept.iter().map(Kept::cost).sum())
            .unwrap_or_default()
    }
}

/// An outcome as kept for `/outcomes`: its JSON, cut down to [`OUTCOME_BYTES`]
/// when larger (the full record is in the log line and the Remediation record).
fn bounded(o: &Outcome) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or_else(|e| {
        serde_json::json!({"result": o.result.as_str(), "error": format!("unserializable outcome: {e}")})
    });
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

fn log(o: &Outcome) {
    let remediation = o.remediation.map(|r| r.as_str());
    let mode = o.mode.map(|m| m.as_str());
    let reason = o.reason.map(|r| r.as_str());
    let dry_run = o.result == OutcomeKind::DryRun;
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
                target = o.target.as_deref(),
                route = o.route.as_deref(),
                remediation,
                mode,
                detail = ?o.message,
                $msg
            )
        };
    }
    match o.result {
        OutcomeKind::Acted => emit!(info, "Remediation carried out."),
        OutcomeKind::DryRun => emit!(
            info,
            "Remediation simulated (dry run); nothing was changed."
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
    pub leadership: crate::leader::Leadership,
    /// The durable history the guard is restored from whenever this replica
    /// becomes leader (at once without election); `None` offline.
    pub history: Option<Arc<dyn History>>,
    /// Keys whose escalation a person cleared (annotation on the record).
    pub clears: Option<mpsc::Receiver<String>>,
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

/// Process queued signals until every sender is gone and the queue is empty.
pub async fn run(
    mut engine: Engine,
    mut queue: mpsc::Receiver<Signal>,
    mut acting: Acting,
    recorder: Arc<Recorder>,
    metrics: Arc<Metrics>,
) {
    let (verified_tx, mut verified) = mpsc::unbounded_channel::<(Plan, Verification)>();
    let mut clears = acting.clears.take();
    let mut was_leader = false;
    loop {
        let signal = tokio::select! {
            s = queue.recv() => match s {
                Some(s) => s,
                None => break,
            },
            Some((plan, v)) = verified.recv() => {
                let key = plan.workload_key();
                let escalated = engine.guard().has_escalation(&key);
                let event = v
                    .recovered()
                    .then(|| engine.recovered(&plan, acting.clock.now()));
                let cleared = escalated && !engine.guard().has_escalation(&key);
                metrics
                    .verifications
                    .get_or_create(&crate::metrics::ResultLabel {
                        result: match v.result {
                            VerifyResult::Recovered => "recovered",
                            VerifyResult::NotRecovered => "not_recovered",
                            VerifyResult::Unverified => "unverified",
                        },
                    })
                    .inc();
                tracing::info!(
                    remediation = plan.kind().as_str(),
                    target = plan.target.as_ref().map(ToString::to_string),
                    result = ?v.result,
                    detail = ?v.message,
                    "Recovery verified."
                );
                acting.journal.verified(&plan, &v, event.as_ref()).await;
                if let Some(e) = event {
                    acting.journal.remember(&[e], cleared).await;
                }
                continue;
            }
            Some(key) = next_clear(&mut clears) => {
                if acting.leadership.is_leader() && engine.guard().has_escalation(&key) {
                    let e = engine.clear_escalation(&key, acting.clock.now());
                    tracing::info!(key = ?key, "Escalation cleared by a person; heal8s may act on it again.");
                    acting.journal.remember(&[e], true).await;
                }
                continue;
            }
        };
        metrics
            .queue_depth
            .set(i64::try_from(queue.len()).unwrap_or(i64::MAX));
        let leader = acting.leadership.is_leader();
        if leader && !was_leader {
            // what other processes did is the truth; read it before deciding anything
            if let Some(h) = &acting.history
                && let Some((actions, alerts)) = h.load().await
            {
                engine.restore(actions, alerts, acting.clock.now());
            }
        }
        was_leader = leader;
        if signal.source.kind() == "detector" && !leader {
            // queued just before the lease was lost; the new leader's detectors signal it again
            metrics.signals_skipped_not_leader.inc();
            continue;
        }
        let outcomes = engine
            .process_with(
                &signal,
                acting.facts.as_ref(),
                acting.executor.as_ref(),
                acting.journal.as_ref(),
                acting.clock.as_ref(),
            )
            .await;
        recorder.record(&signal, &outcomes);
        for o in &outcomes {
            if o.result == OutcomeKind::Resolved && o.source == "alert" {
                acting.journal.resolved(&o.fingerprint).await;
                // the escalation ended if the policy lets a resolved alert end it
                let cleared = o
                    .ledger
                    .iter()
                    .any(|e| !engine.guard().has_escalation(e.event.key()));
                acting.journal.remember(&o.ledger, cleared).await;
            }
            acting.journal.write(o).await;
            if let (OutcomeKind::Acted, Some(plan), Some(verifier)) =
                (o.result, &o.plan, &acting.verifier)
                && plan.kind().is_mutating()
                && !plan.kind().is_declarative()
            {
                let (plan, verifier, tx) = (plan.clone(), verifier.clone(), verified_tx.clone());
                tokio::spawn(async move {
                    let v = verifier.verify(&plan).await;
                    let _ = tx.send((plan, v));
                });
            }
        }
    }
    tracing::info!("Work queue drained; worker stopped (pending recovery checks are abandoned).");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::executor::{OfflineFacts, SimulatingExecutor};
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
            stored > RECENT_OUTCOMES_BYTES / 2,
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
