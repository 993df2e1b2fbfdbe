//! Standing down, reported: after each processed signal and on a tick the
//! worker hands over the guard's breakers and the outcomes; this keeps
//! `heal8s_breaker_open{class}`, the `/breakers` view and the log lines, and
//! passes what receiver-core's `standdown::Board` decided to a publisher
//! (Events and records) running in a task of its own.
//!
//! Owns: the board, the gauge, the channel to the publisher. Must not decide
//! whether a class may act (the guard does) nor do IO in the worker's task.
//! Notifications (issue 13) plug in as one more `StandDown` publisher.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use jiff::Timestamp;
use receiver_core::Outcome;
use receiver_core::guard::{ActionClass, Breaker};
use receiver_core::standdown::{Board, Notice, StandDown};
use tokio::sync::mpsc;

use crate::metrics::{ClassLabel, Metrics};

/// How often the worker reports with no signal (breakers closing, windows ending).
pub const TICK: Duration = Duration::from_secs(5);

/// The default `--report-interval`.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Notices waiting for the publisher; past this they are dropped (and logged).
const QUEUED_NOTICES: usize = 256;

/// Reports breaker episodes and refusal counts.
#[derive(Debug)]
pub struct Reporter {
    board: Mutex<Board>,
    window: Mutex<Duration>,
    publisher: OnceLock<mpsc::Sender<Notice>>,
    leader: AtomicBool,
    /// This reporter's part of `heal8s_breaker_open`, per class.
    open: Vec<(ActionClass, crate::metrics::Level)>,
}

impl Reporter {
    /// A reporter setting the gauge in `metrics`; it publishes nowhere until
    /// [`Reporter::publish_to`].
    pub fn new(metrics: Arc<Metrics>) -> Reporter {
        let open = ActionClass::ALL
            .into_iter()
            .map(|class| {
                let g = metrics.breaker_open.get_or_create(&ClassLabel {
                    class: class.as_str(),
                });
                (class, crate::metrics::Level::of(&g))
            })
            .collect();
        Reporter {
            open,
            board: Mutex::new(Board::new(DEFAULT_WINDOW)),
            window: Mutex::new(DEFAULT_WINDOW),
            publisher: OnceLock::new(),
            leader: AtomicBool::new(false),
        }
    }

    /// Count refusals over `window` (one Event per aggregate per window), and
    /// close an episode once its class was free for a window.
    pub fn set_window(&self, window: Duration) {
        if let (Ok(mut w), Ok(mut b)) = (self.window.lock(), self.board.lock()) {
            *w = window;
            *b = Board::new(window);
        }
    }

    /// Hand notices to `sink` from now on, in a task of its own (one at a
    /// time, in order). Only the first call counts.
    pub fn publish_to(&self, sink: Arc<dyn StandDown>) {
        let (tx, mut rx) = mpsc::channel::<Notice>(QUEUED_NOTICES);
        if self.publisher.set(tx).is_ok() {
            tokio::spawn(async move {
                while let Some(n) = rx.recv().await {
                    sink.publish(&n).await;
                }
            });
        }
    }

    /// Take in the guard's breakers and the outcomes of the signal just
    /// processed (none on a tick). Only the process that acts reports; one
    /// that stops acting forgets its episodes (the next leader settles their
    /// records).
    pub fn observe(
        &self,
        breakers: &[Breaker],
        outcomes: &[Outcome],
        now: Timestamp,
        leader: bool,
    ) {
        let was_leader = self.leader.swap(leader, Ordering::SeqCst);
        let Ok(mut board) = self.board.lock() else {
            return;
        };
        if !leader {
            if was_leader {
                *board = Board::new(self.window.lock().map(|w| *w).unwrap_or(DEFAULT_WINDOW));
                self.gauge(&[]);
            }
            return;
        }
        let mut notices = Vec::new();
        if !was_leader {
            notices.push(board.took_over());
        }
        notices.extend(board.observe(breakers, outcomes, now));
        let open: Vec<ActionClass> = board.open().iter().map(|e| e.breaker.class).collect();
        drop(board);
        self.gauge(&open);
        for n in notices {
            log(&n);
            if let Some(tx) = self.publisher.get()
                && tx.try_send(n).is_err()
            {
                tracing::warn!(
                    "Too many stand-down notices waiting for the Kubernetes API; one was dropped (the log line above has it)."
                );
            }
        }
    }

    fn gauge(&self, open: &[ActionClass]) {
        for (class, level) in &self.open {
            level.set(i64::from(open.contains(class)));
        }
    }

    /// What `/breakers` answers: the episodes holding now and the last few
    /// that ended, each with its blocked targets and refusal counts.
    pub fn view(&self) -> serde_json::Value {
        match self.board.lock() {
            Ok(b) => serde_json::json!({"open": b.open(), "closed": b.closed()}),
            Err(_) => serde_json::json!({"open": [], "closed": []}),
        }
    }
}

fn log(n: &Notice) {
    match n {
        Notice::Opened(e) => tracing::warn!(
            class = e.breaker.class.as_str(),
            reason = e.breaker.reason.as_str(),
            record = %e.record,
            blocked = ?e.breaker.blocked,
            detail = %e.breaker.message,
            "A breaker holds: heal8s stands this class of actions down."
        ),
        Notice::Updated(_) | Notice::TookOver { .. } => {}
        Notice::Closed(e) => tracing::info!(
            class = e.breaker.class.as_str(),
            reason = e.breaker.reason.as_str(),
            record = %e.record,
            refused = e.refused(),
            blocked = e.breaker.blocked.len(),
            "A breaker episode ended: heal8s may act on this class again."
        ),
        Notice::Refusals { counts, .. } => {
            for c in counts {
                tracing::info!(
                    reason = c.reason.as_str(),
                    class = c.class.as_str(),
                    namespace = c.namespace.as_deref(),
                    count = c.count,
                    examples = %c.examples_text(),
                    "Remediations refused in the last window."
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use receiver_core::RefusalReason;

    fn breaker(since: i64) -> Breaker {
        Breaker {
            class: ActionClass::Nodes,
            reason: RefusalReason::Partition,
            since: Timestamp::from_second(since).unwrap(),
            message: "2 of 4 nodes are unhealthy".into(),
            blocked: vec!["Node/-/a".into(), "Node/-/b".into()],
        }
    }

    fn open(m: &Metrics, class: &str) -> f64 {
        sample(
            &m.encode(),
            &format!(r#"heal8s_breaker_open{{class="{class}"}}"#),
        )
    }

    fn sample(text: &str, sample: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(-1.0)
    }

    struct Sink(tokio::sync::mpsc::UnboundedSender<Notice>);

    #[async_trait::async_trait]
    impl StandDown for Sink {
        async fn publish(&self, n: &Notice) {
            let _ = self.0.send(n.clone());
        }
    }

    #[tokio::test]
    async fn the_gauge_and_the_publisher_follow_an_episode() {
        let metrics = Arc::new(Metrics::new());
        let r = Reporter::new(metrics.clone());
        r.set_window(Duration::from_secs(10));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        r.publish_to(Arc::new(Sink(tx)));
        assert_eq!(open(&metrics, "nodes"), 0.0);
        let t = |s| Timestamp::from_second(s).unwrap();
        r.observe(&[breaker(100)], &[], t(100), true);
        assert_eq!(open(&metrics, "nodes"), 1.0);
        assert_eq!(open(&metrics, "pods"), 0.0);
        assert!(matches!(rx.recv().await, Some(Notice::TookOver { .. })));
        let Some(Notice::Opened(e)) = rx.recv().await else {
            panic!()
        };
        assert_eq!(e.breaker.blocked, ["Node/-/a", "Node/-/b"]);
        let view = r.view();
        assert_eq!(view["open"][0]["class"], "nodes", "{view}");
        assert_eq!(view["open"][0]["blocked"][1], "Node/-/b", "{view}");
        // the class acted; free for a window: closed
        r.observe(&[], &[], t(105), true);
        assert_eq!(open(&metrics, "nodes"), 1.0);
        r.observe(&[], &[], t(116), true);
        assert_eq!(open(&metrics, "nodes"), 0.0);
        assert!(matches!(rx.recv().await, Some(Notice::Closed(_))));
        assert_eq!(r.view()["closed"][0]["record"], "breaker-nodes-100");
    }

    #[tokio::test]
    async fn a_follower_reports_nothing_and_forgets_what_it_held() {
        let metrics = Arc::new(Metrics::new());
        let r = Reporter::new(metrics.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        r.publish_to(Arc::new(Sink(tx)));
        let t = |s| Timestamp::from_second(s).unwrap();
        r.observe(&[breaker(100)], &[], t(100), false);
        assert_eq!(open(&metrics, "nodes"), 0.0);
        r.observe(&[breaker(100)], &[], t(101), true);
        assert_eq!(open(&metrics, "nodes"), 1.0);
        r.observe(&[breaker(100)], &[], t(102), false);
        assert_eq!(open(&metrics, "nodes"), 0.0, "lost the lease");
        assert_eq!(r.view()["open"], serde_json::json!([]));
        let mut got = Vec::new();
        while let Ok(n) = rx.try_recv() {
            got.push(n);
        }
        // give the publisher task its turn
        tokio::task::yield_now().await;
        while let Ok(n) = rx.try_recv() {
            got.push(n);
        }
        assert!(
            got.iter().all(|n| !matches!(n, Notice::Closed(_))),
            "a follower writes nothing: {got:?}"
        );
    }
}
