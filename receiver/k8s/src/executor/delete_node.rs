//! delete-node: delete the Node object (so a machine controller replaces the
//! machine), after a clean drain when `drainFirst` is set.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::DeleteParams;
use receiver_core::remediation::DeleteNode;
use receiver_core::{ActionReport, Target};

use super::{Janitor, KubeExecutor, done, prefix, same_object};
use crate::drain::DrainOptions;
use crate::{K8sError, is_not_found};

#[async_trait]
impl Janitor for DeleteNode {
    async fn carry_out(
        &self,
        x: &KubeExecutor,
        t: &Target,
        mark: &receiver_core::ownership::Mark,
        dry_run: bool,
    ) -> Result<ActionReport, K8sError> {
        let mut said = String::new();
        if self.drain_first {
            let opts = DrainOptions {
                grace_period_seconds: None,
                delete_emptydir_data: false,
                timeout: self.drain_timeout.get(),
                retry_every: x.settings.eviction_retry,
                dry_run,
                protection: x.settings.protection.clone(),
                protected_pods: x.settings.protected_pods,
            };
            // the node is deleted only after a clean drain
            let r = x.drain_node(t, mark, opts, false).await.map_err(|e| {
                K8sError::Refused(format!(
                    "node {} was not deleted because its drain failed: {e}",
                    t.name
                ))
            })?;
            said = format!("drained (evicted {}), then ", r.evicted.len());
        }
        delete(x, t, dry_run).await?;
        done(format!("{}{said}deleted node {}", prefix(dry_run), t.name))
    }
}

async fn delete(x: &KubeExecutor, t: &Target, dry_run: bool) -> Result<(), K8sError> {
    let api: Api<Node> = Api::all(x.clients.main.clone());
    // only the node the plan was checked on (and kept), not one re-registered since
    let dp = DeleteParams {
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
                "NodeDeleted",
                format!("heal8s deleted node {}", t.name),
            )
            .await;
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
