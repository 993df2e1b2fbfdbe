//! The work queue between the edges (webhook, detectors) and the one worker:
//! the pure two-lane queue of `receiver_core::lanes` behind a lock, with
//! waiting for work (the worker) and for room (detectors).
//!
//! Owns: the async handoff and closing (the queue closes when every sender
//! is gone, or on `close`; the worker then drains what is left). Must not
//! decide anything: lanes, bounds and coalescing are `Lanes`'.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use receiver_core::Signal;
use receiver_core::lanes::{Closed, Lane, Lanes, Repeats, SignalSink, Taken};
use receiver_core::signal::SourceKind;
use tokio::sync::Notify;

#[derive(Debug)]
struct Shared {
    lanes: Mutex<Lanes>,
    /// Signalled when a signal is queued or the queue closes.
    work: Notify,
    /// Signalled when a signal leaves (room for a waiting detector).
    room: Notify,
    senders: AtomicUsize,
    closed: AtomicBool,
    /// Where coalesced signals are counted, once set.
    metrics: OnceLock<Arc<crate::metrics::Metrics>>,
    /// This queue's part of the depth gauges (alerts, detectors).
    depths: OnceLock<[crate::metrics::Level; 2]>,
}

impl Shared {
    /// Keep `heal8s_queue_depth` (the alert lane) and
    /// `heal8s_detector_queue_depth` up to date.
    fn depth(&self, lanes: &Lanes) {
        if let Some([alerts, detectors]) = self.depths.get() {
            alerts.set_count(lanes.len_of(Lane::Alerts));
            detectors.set_count(lanes.len_of(Lane::Detectors));
        }
    }

    fn coalesced(&self, source: SourceKind, n: usize) {
        if n > 0
            && let Some(m) = self.metrics.get()
        {
            m.signals_coalesced
                .get_or_create(&crate::metrics::SourceLabel {
                    source: source.as_str(),
                })
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.work.notify_one();
        self.room.notify_waiters();
    }
}

/// Why a delivery was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The alert lane has no room for the delivery.
    Full,
    /// The queue is closed (shutting down).
    Closed,
}

/// The sending side: the webhook and the detectors hold clones.
#[derive(Debug)]
pub struct WorkQueue {
    shared: Arc<Shared>,
}

/// The worker's side.
#[derive(Debug)]
pub struct QueueReceiver {
    shared: Arc<Shared>,
}

/// A work queue whose lanes hold `capacity` signals each.
pub fn work_queue(capacity: usize) -> (WorkQueue, QueueReceiver) {
    queue_of(Lanes::new(capacity))
}

/// A work queue whose lanes hold `capacity` signals each, answering a
/// delivery of an alert occurrence taken in within `dedupe_window` (the
/// guard's) at the door: see [`Repeats`].
pub fn work_queue_with_repeats(
    capacity: usize,
    dedupe_window: std::time::Duration,
) -> (WorkQueue, QueueReceiver) {
    queue_of(Lanes::new(capacity).with_repeats(Repeats::new(dedupe_window, usize::MAX)))
}

fn queue_of(lanes: Lanes) -> (WorkQueue, QueueReceiver) {
    let shared = Arc::new(Shared {
        lanes: Mutex::new(lanes),
        work: Notify::new(),
        room: Notify::new(),
        senders: AtomicUsize::new(1),
        closed: AtomicBool::new(false),
        metrics: OnceLock::new(),
        depths: OnceLock::new(),
    });
    (
        WorkQueue {
            shared: shared.clone(),
        },
        QueueReceiver { shared },
    )
}

impl Clone for WorkQueue {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::SeqCst);
        WorkQueue {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for WorkQueue {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.close();
        }
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Lanes> {
    // a panic while holding the lock leaves plain data behind: keep going
    shared
        .lanes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WorkQueue {
    /// Queue every alert of one delivery, or none. `Ok` says how many
    /// replaced a waiting alert of their series, and how many were repeats
    /// answered at the door (counted in `heal8s_alerts_repeated_total`).
    pub fn send_alerts(&self, signals: Vec<Signal>) -> Result<Taken, QueueError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(QueueError::Closed);
        }
        let now = jiff::Timestamp::now();
        let taken = {
            let mut lanes = lock(&self.shared);
            let taken = lanes
                .push_alerts(signals, now)
                .map_err(|_| QueueError::Full)?;
            self.shared.depth(&lanes);
            taken
        };
        self.shared.work.notify_one();
        self.shared.coalesced(SourceKind::Alert, taken.replaced);
        if taken.repeats > 0
            && let Some(m) = self.shared.metrics.get()
        {
            m.alerts_repeated
                .inc_by(u64::try_from(taken.repeats).unwrap_or(u64::MAX));
        }
        Ok(taken)
    }

    /// Count into `metrics`: coalesced signals (`heal8s_signals_coalesced_total`)
    /// and the depths of the lanes, as signals come and go.
    pub fn count_into(&self, metrics: Arc<crate::metrics::Metrics>) {
        let _ = self.shared.depths.set([
            crate::metrics::Level::of(&metrics.queue_depth),
            crate::metrics::Level::of(&metrics.detector_queue_depth),
        ]);
        let _ = self.shared.metrics.set(metrics);
    }

    /// How many signals one lane holds at most.
    pub fn max_capacity(&self) -> usize {
        lock(&self.shared).capacity()
    }

    /// How many signals wait, in both lanes.
    pub fn len(&self) -> usize {
        lock(&self.shared).len()
    }

    /// Whether no signal waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many signals wait in `lane`.
    pub fn len_of(&self, lane: Lane) -> usize {
        lock(&self.shared).len_of(lane)
    }

    /// Close the queue now: nothing more is accepted; the worker drains it.
    pub fn close(&self) {
        self.shared.close();
    }
}

#[async_trait]
impl SignalSink for WorkQueue {
    async fn send(&self, signal: Signal) -> Result<(), Closed> {
        let mut signal = signal;
        signal.received.get_or_insert_with(jiff::Timestamp::now);
        // a detector's report starts the signal's trace; it ends once queued
        let _received = signal.trace.is_none().then(|| {
            let mut stage = crate::trace::start("receive", None);
            stage.set("heal8s.source", "detector");
            stage.set("heal8s.detector", signal.name().to_string());
            stage.set("heal8s.fingerprint", signal.fingerprint.clone());
            if let Some(t) = &signal.target {
                stage.set("heal8s.target", t.to_string());
            }
            signal.trace = Some(stage.context());
            stage
        });
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // registered before looking, so a signal leaving in between wakes us
            room.as_mut().enable();
            if self.shared.closed.load(Ordering::SeqCst) {
                return Err(Closed);
            }
            let pushed = {
                let mut lanes = lock(&self.shared);
                let pushed = lanes.push_detector(signal);
                self.shared.depth(&lanes);
                pushed
            };
            match pushed {
                Ok(replaced) => {
                    self.shared.work.notify_one();
                    self.shared
                        .coalesced(SourceKind::Detector, usize::from(replaced));
                    return Ok(());
                }
                Err(back) => signal = *back,
            }
            room.await;
        }
    }
}

impl QueueReceiver {
    /// Forget that an alert occurrence was taken in (see `Lanes::forget_occurrence`).
    pub fn forget_occurrence(&self, fingerprint: &str, start: jiff::Timestamp) {
        lock(&self.shared).forget_occurrence(fingerprint, start);
    }

    /// The next signal without waiting, if one is queued.
    pub fn try_recv(&mut self) -> Option<Signal> {
        let s = {
            let mut lanes = lock(&self.shared);
            let s = lanes.pop();
            if s.is_some() {
                self.shared.depth(&lanes);
            }
            s
        };
        if s.is_some() {
            self.shared.room.notify_waiters();
        }
        s
    }

    /// The next signal; `None` once the queue is closed and empty.
    pub async fn recv(&mut self) -> Option<Signal> {
        loop {
            if let Some(s) = self.try_recv() {
                return Some(s);
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                // a sender may have queued just before closing
                return self.try_recv();
            }
            self.shared.work.notified().await;
        }
    }

    /// How many signals wait, in both lanes.
    pub fn len(&self) -> usize {
        lock(&self.shared).len()
    }

    /// Whether no signal waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use std::time::Duration;

    use super::*;

    fn signal(source: &str, pod: &str) -> Signal {
        let labels = [("alertname", "A"), ("namespace", "shop"), ("pod", pod)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Signal {
            source: if source == "alert" {
                receiver_core::Source::Alert {
                    alertname: "A".into(),
                    receiver: "heal8s".into(),
                    group_key: String::new(),
                    generator_url: String::new(),
                }
            } else {
                receiver_core::Source::Detector {
                    name: "pods".into(),
                }
            },
            status: receiver_core::AlertStatus::Firing,
            labels,
            annotations: Default::default(),
            target: None,
            target_problem: None,
            evidence: Default::default(),
            first_seen: jiff::Timestamp::UNIX_EPOCH,
            ended_at: None,
            fingerprint: format!("{source}-{pod}"),
            received: None,
            trace: None,
        }
    }

    #[tokio::test]
    async fn a_detector_waits_for_room_and_the_worker_drains_after_close() {
        let (tx, mut rx) = work_queue(1);
        tx.send(signal("detector", "a")).await.unwrap();
        let waiting = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(signal("detector", "b")).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the detector lane is full");
        // alerts still get in
        tx.send_alerts(vec![signal("alert", "x")]).unwrap();
        assert_eq!(rx.recv().await.unwrap().fingerprint, "alert-x");
        assert_eq!(rx.recv().await.unwrap().fingerprint, "detector-a");
        waiting.await.unwrap().unwrap();
        drop(tx);
        assert_eq!(rx.recv().await.unwrap().fingerprint, "detector-b");
        assert!(rx.recv().await.is_none(), "closed and drained");
    }
}
