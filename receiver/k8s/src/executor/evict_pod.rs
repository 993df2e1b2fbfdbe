//! evict-pod: evict the pod through the Eviction API, so PodDisruptionBudgets
//! are honoured; a 429 is retried until the timeout, then, with
//! `fallbackToDelete`, the pod is deleted.

use async_trait::async_trait;
use receiver_core::remediation::EvictPod;
use receiver_core::{ActionReport, Target};
use tokio::time::Instant;

use super::{Janitor, KubeExecutor, done, prefix};
use crate::K8sError;
use crate::drain::{self, Evicted};

#[async_trait]
impl Janitor for EvictPod {
    async fn carry_out(
        &self,
        x: &KubeExecutor,
        t: &Target,
        _mark: &receiver_core::ownership::Mark, // the object goes: its record keeps it
        dry_run: bool,
    ) -> Result<ActionReport, K8sError> {
        evict(
            x,
            t,
            self.grace_period_seconds,
            self.fallback_to_delete,
            dry_run,
        )
        .await
    }
}

async fn evict(
    x: &KubeExecutor,
    t: &Target,
    grace: Option<u32>,
    fallback: bool,
    dry_run: bool,
) -> Result<ActionReport, K8sError> {
    let ns = t.namespace.as_deref().unwrap_or("default");
    let deadline = Instant::now() + x.settings.eviction_timeout;
    match drain::evict_until(
        &x.clients,
        ns,
        &t.name,
        grace,
        dry_run,
        deadline,
        x.settings.eviction_retry,
    )
    .await
    {
        Ok(Evicted::Evicted) => {
            x.event(
                t,
                dry_run,
                false,
                "PodEvicted",
                format!("heal8s evicted pod {ns}/{}", t.name),
            )
            .await;
            done(format!("{}evicted pod {ns}/{}", prefix(dry_run), t.name))
        }
        Ok(Evicted::AlreadyGone) => done(format!("pod {ns}/{} was already gone", t.name)),
        Err(K8sError::Timeout(msg)) if fallback => {
            tracing::warn!(namespace = ns, pod = %t.name, "Eviction kept being refused; deleting the pod (fallbackToDelete).");
            let r = super::delete_pod::delete(x, t, grace, dry_run).await?;
            done(format!("{msg}; fell back to deletion: {}", r.message))
        }
        Err(e) => {
            x.event(t, dry_run, true, "EvictionFailed", e.to_string())
                .await;
            Err(e)
        }
    }
}
