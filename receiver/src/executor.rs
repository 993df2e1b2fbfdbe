//! The executor and fact source this build has: offline ones that change nothing.
//!
//! Kubernetes (receiver-k8s) and pull-request (gitops) executors replace them in
//! later issues; until then every allowed plan is simulated and recorded as such.

use async_trait::async_trait;
use receiver_core::{ActError, ActionReport, Executor, FactSource, Facts, Plan};

/// Knows nothing about the live cluster (no cluster connection in this build).
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
            "no live executor in this build"
        };
        Ok(ActionReport {
            simulated: true,
            message: format!("{why}: would {} ({})", plan.describe(), plan.mode),
            ..Default::default()
        })
    }
}
