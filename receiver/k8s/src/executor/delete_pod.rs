//! delete-pod: delete the pod (only the one the signal was about) so its
//! controller recreates it.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use receiver_core::remediation::DeletePod;
use receiver_core::{ActionReport, Target};

use super::{Janitor, KubeExecutor, done, prefix, same_object};
use crate::{K8sError, is_not_found};

#[async_trait]
impl Janitor for DeletePod {
    async fn carry_out(
        &self,
        x: &KubeExecutor,
        t: &Target,
        _mark: &receiver_core::ownership::Mark, // the object goes: its record keeps it
        dry_run: bool,
    ) -> Result<ActionReport, K8sError> {
        delete(x, t, self.grace_period_seconds, dry_run).await
    }
}

/// Delete pod `t` (evict-pod falls back to this).
pub(super) async fn delete(
    x: &KubeExecutor,
    t: &Target,
    grace: Option<u32>,
    dry_run: bool,
) -> Result<ActionReport, K8sError> {
    let ns = t.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(x.clients.main.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: grace,
        dry_run,
        preconditions: same_object(t),
        ..DeleteParams::default()
    };
    match api.delete(&t.name, &dp).await {
        Ok(_) => {
            x.event(
                t,
                dry_run,
                false,
                "PodDeleted",
                format!("heal8s deleted pod {ns}/{}", t.name),
            )
            .await;
            done(format!("{}deleted pod {ns}/{}", prefix(dry_run), t.name))
        }
        Err(e) if is_not_found(&e) => done(format!("pod {ns}/{} was already gone", t.name)),
        Err(e) => Err(e.into()),
    }
}
