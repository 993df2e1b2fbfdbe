//! delete-namespace: delete the namespace (only the one the signal was
//! about) and everything in it.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use receiver_core::remediation::DeleteNamespace;
use receiver_core::{ActionReport, Target};

use super::{Janitor, KubeExecutor, done, prefix, same_object};
use crate::{K8sError, is_not_found};

#[async_trait]
impl Janitor for DeleteNamespace {
    async fn carry_out(
        &self,
        x: &KubeExecutor,
        t: &Target,
        _mark: &receiver_core::ownership::Mark, // the object goes: its record keeps it
        dry_run: bool,
    ) -> Result<ActionReport, K8sError> {
        delete(x, t, dry_run).await
    }
}

async fn delete(x: &KubeExecutor, t: &Target, dry_run: bool) -> Result<ActionReport, K8sError> {
    let api: Api<Namespace> = Api::all(x.clients.main.clone());
    let dp = DeleteParams {
        dry_run,
        preconditions: same_object(t),
        ..DeleteParams::background()
    };
    match api.delete(&t.name, &dp).await {
        Ok(_) => {
            x.event(
                t,
                dry_run,
                false,
                "NamespaceDeleted",
                format!("heal8s deleted stale namespace {}", t.name),
            )
            .await;
            done(format!("{}deleted namespace {}", prefix(dry_run), t.name))
        }
        Err(e) if is_not_found(&e) => done(format!("namespace {} was already gone", t.name)),
        Err(e) => Err(e.into()),
    }
}
