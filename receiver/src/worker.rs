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
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// How many recent outcomes `/outcomes` shows.
pub const RECENT_OUTCOMES: usize = 512;

/// Records outcomes: a structured log line each, metrics, and a bounded list of recent ones.
#[derive(Debug)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    recent: Mutex<VecDeque<Outcome>>,
}

impl Recorder {
    /// A recorder counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Recorder {
        Recorder {
            metrics,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_OUTCOMES)),
        }
    }

    /// Log, count and remember the outcomes of one signal.
    pub fn record(&self, signal: &Signal, outcomes: &[Outcome]) {
        self.metrics.observe(signal, outcomes);
        for o in outcomes {
            log(o);
        }
        if let Ok(mut recent) = self.recent.lock() {
            for o in outcomes {
                if recent.len() == RECENT_OUTCOMES {
                    recent.pop_front();
                }
                recent.push_back(o.clone());
            }
        }
    }

    /// The most recent outcomes, oldest first.
    pub fn recent(&self) -> Vec<Outcome> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
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
                alertname = %o.name,
                source = %o.source,
                fingerprint = %o.fingerprint,
                status = o.status.as_str(),
                target = o.target.as_deref(),
                route = o.route.as_deref(),
                remediation,
                mode,
                detail = %o.message,
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
                    detail = %v.message,
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
                    tracing::info!(key = %key, "Escalation cleared by a person; heal8s may act on it again.");
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
