//! The work queue's consumer: takes accepted signals one at a time through the
//! engine, then records every outcome (log line, metrics, recent-outcomes view).
//!
//! Owns: the single task that holds the Engine (so guard state needs no lock),
//! and the recorder. Must not parse HTTP or decide anything itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use receiver_core::{Clock, Engine, Executor, FactSource, Journal, Outcome, OutcomeKind, Signal};
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
    }
}

/// The IO the worker needs, behind traits.
pub struct Acting {
    pub facts: Arc<dyn FactSource>,
    pub executor: Arc<dyn Executor>,
    pub clock: Arc<dyn Clock>,
    /// The durable record (Remediation objects), or `NoJournal`.
    pub journal: Arc<dyn Journal>,
}

impl std::fmt::Debug for Acting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acting").finish_non_exhaustive()
    }
}

/// Process queued signals until every sender is gone and the queue is empty.
pub async fn run(
    mut engine: Engine,
    mut queue: mpsc::Receiver<Signal>,
    acting: Acting,
    recorder: Arc<Recorder>,
    metrics: Arc<Metrics>,
) {
    while let Some(signal) = queue.recv().await {
        metrics
            .queue_depth
            .set(i64::try_from(queue.len()).unwrap_or(i64::MAX));
        let outcomes = engine
            .process(
                &signal,
                acting.facts.as_ref(),
                acting.executor.as_ref(),
                acting.clock.as_ref(),
            )
            .await;
        recorder.record(&signal, &outcomes);
        for o in &outcomes {
            acting.journal.write(o).await;
        }
    }
    tracing::info!("Work queue drained; worker stopped.");
}
