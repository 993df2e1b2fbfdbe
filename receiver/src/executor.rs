//! The offline executor and fact source, for `heal8s serve --no-cluster`:
//! they change nothing and know nothing of a cluster.
//!
//! With a cluster, `serve` acts through `receiver_k8s::KubeExecutor` (and the
//! pull-request executor, `gitops::executor`, for declarative fixes); without
//! one, every allowed plan is simulated and recorded as such.

use async_trait::async_trait;
use receiver_core::{ActError, ActionReport, Executor, FactSource, Facts, Plan};

/// Knows nothing about the live cluster (`--no-cluster`: no connection).
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineFacts;

#[async_trait]
impl FactSource for OfflineFacts {
    async fn facts(&self, _plan: &Plan) -> Result<Facts, ActError> {
        Ok(Facts::unknown())
    }
}

/// Logs what it would do and changes nothing. Every report is `simulated`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimulatingExecutor;

#[async_trait]
impl Executor for SimulatingExecutor {
    async fn execute(&self, plan: &Plan, dry_run: bool) -> Result<ActionReport, ActError> {
        let why = if dry_run {
            "dry-run"
        } else {
            "no cluster (--no-cluster)"
        };
        Ok(ActionReport {
            simulated: true,
            message: format!("{why}: would {} ({})", plan.describe(), plan.mode),
            ..Default::default()
        })
    }
}
