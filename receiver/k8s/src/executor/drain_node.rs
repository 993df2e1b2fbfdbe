//! drain-node: cordon the node and evict its pods as a drain does (what the
//! drain evicts, skips or refuses on is decided by `receiver_core::drain`);
//! on a node whose kubelet is gone, optionally taint it out of service.

use async_trait::async_trait;
use receiver_core::remediation::DrainNode;
use receiver_core::{ActionReport, Target};

use super::{Janitor, KubeExecutor, done, prefix};
use crate::K8sError;
use crate::drain::{self, DrainOptions};

#[async_trait]
impl Janitor for DrainNode {
    async fn carry_out(
        &self,
        x: &KubeExecutor,
        t: &Target,
        mark: &receiver_core::ownership::Mark,
        dry_run: bool,
    ) -> Result<ActionReport, K8sError> {
        let opts = DrainOptions {
            grace_period_seconds: self.grace_period_seconds,
            delete_emptydir_data: self.delete_emptydir_data,
            timeout: self.timeout.get(),
            retry_every: x.settings.eviction_retry,
            dry_run,
            protection: x.settings.protection.clone(),
            protected_pods: x.settings.protected_pods,
        };
        let r = x.drain_node(t, mark, opts, self.cordon_only).await?;
        if self.cordon_only {
            done(format!("{}cordoned node {}", prefix(dry_run), t.name))
        } else {
            let mut said = format!(
                "{}cordoned and drained node {}: evicted [{}], skipped [{}]",
                prefix(dry_run),
                t.name,
                r.evicted.join(", "),
                r.skipped.join(", ")
            );
            if r.kubelet_gone {
                said.push_str(&format!(
                    "; the node's kubelet is gone, so evicted pods stay Terminating until the node is fenced or deleted: [{}]",
                    r.terminating.join(", ")
                ));
                if self.out_of_service_taint {
                    drain::taint_out_of_service(&x.clients, &t.name, mark, dry_run).await?;
                    said.push_str(&format!(
                        "; tainted {}=nodeshutdown:NoExecute (outOfServiceTaint: the node must be shut down)",
                        drain::OUT_OF_SERVICE_TAINT
                    ));
                }
            }
            done(said)
        }
    }
}
