//! The one leader gate: whether this replica may act now, as the
//! coordination.k8s.io Lease (kube-lease-manager, held in the receiver) says. Every
//! replica receives webhooks and runs detectors, but only the leader acts:
//! a follower answers webhooks with 503 `not_leader` (Alertmanager retries
//! 5xx at once, and the Service sends the retry to a replica at random until
//! it reaches the leader), its detectors keep their caches warm but signal
//! nothing (a new leader signals everything it sees at its next resync), and
//! its executor refuses to act. Losing the lease stops an action in progress.

use std::sync::Arc;

use async_trait::async_trait;
use receiver_core::{ActError, ActionReport, Executor, Plan};
use tokio::sync::watch;

/// Whether this replica may act now.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
}

impl Leadership {
    /// Always the leader (no election: a single replica).
    pub fn always() -> Leadership {
        let (tx, rx) = watch::channel(true);
        // keep the sender alive for the life of the process
        std::mem::forget(tx);
        Leadership { rx }
    }

    /// Follow a lease manager's channel.
    pub fn following(rx: watch::Receiver<bool>) -> Leadership {
        Leadership { rx }
    }

    /// Whether this replica holds the lease now.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes when this replica is the leader (at once without election).
    pub async fn acquired(&self) {
        let mut rx = self.rx.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Completes when this replica is no longer the leader (or never was).
    pub async fn lost(&self) {
        let mut rx = self.rx.clone();
        while *rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Acts only while leader; an action in progress is abandoned the moment the lease is lost.
pub struct LeaderGated {
    pub inner: Arc<dyn Executor>,
    pub leadership: Leadership,
}

impl std::fmt::Debug for LeaderGated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderGated").finish_non_exhaustive()
    }
}

#[async_trait]
impl Executor for LeaderGated {
    async fn execute(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, ActError> {
        let not_leader = |m: &str| ActError {
            category: "not_leader",
            message: m.to_string(),
        };
        if !self.leadership.is_leader() {
            return Err(not_leader(
                "this replica is not the leader; it does not act",
            ));
        }
        tokio::select! {
            r = self.inner.execute(plan, dry_run) => r,
            () = self.leadership.lost() => Err(not_leader("the lease was lost while acting; the action was stopped")),
        }
    }
}
