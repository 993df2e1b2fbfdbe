//! cleanup-resource: delete a custom resource; remove its stuck finalizers
//! only when the core's finalizer gate (`receiver_core::finalizers`) says so,
//! as a recorded last resort. The object read for the gate is what the
//! record keeps (with the finalizers removed, if any).

use async_trait::async_trait;
use jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use receiver_core::deleted::{self, Deleted};
use receiver_core::detect::custom;
use receiver_core::finalizers::{self, Finalizers};
use receiver_core::remediation::CleanupResource;
use receiver_core::{ActionReport, Target, TargetKind};
use serde_json::json;

use super::{Janitor, KubeExecutor, done, done_deleting, prefix, same_object};
use crate::{K8sError, is_not_found};

#[async_trait]
impl Janitor for CleanupResource {
    async fn carry_out(
        &self,
        x: &KubeExecutor,
        t: &Target,
        mark: &receiver_core::ownership::Mark,
        dry_run: bool,
    ) -> Result<ActionReport, K8sError> {
        cleanup(x, t, mark, self.remove_finalizers, dry_run).await
    }
}

async fn cleanup(
    x: &KubeExecutor,
    t: &Target,
    mark: &receiver_core::ownership::Mark,
    remove_finalizers: bool,
    dry_run: bool,
) -> Result<ActionReport, K8sError> {
    let TargetKind::Custom(rt) = &t.kind else {
        return Err(K8sError::Refused(format!(
            "cleanup-resource cannot act on {t}"
        )));
    };
    if rt.kind == "Namespace" && rt.group.is_empty() {
        return Err(K8sError::Refused("namespaces are deleted with delete-namespace; their spec.finalizers are never stripped".into()));
    }
    let res = x
        .resources
        .by_kind(&rt.group, &rt.version, &rt.kind)
        .await?
        .ok_or_else(|| K8sError::UnknownResource(rt.api_version() + " " + &rt.kind))?;
    let api: Api<DynamicObject> = match (&t.namespace, res.namespaced) {
        (Some(ns), true) => Api::namespaced_with(x.clients.main.clone(), ns, &res.resource),
        _ => Api::all_with(x.clients.main.clone(), &res.resource),
    };
    let Some(obj) = api.get_opt(&t.name).await? else {
        return done(format!("{t} was already gone"));
    };
    let value = serde_json::to_value(&obj).unwrap_or_default();
    let gate = finalizers::Gate {
        enabled: remove_finalizers,
        after: x.settings.finalizers_after,
    };
    // core decides; this carries it out
    let decision = custom::meta(&value).map_or(Finalizers::NotTerminating, |m| {
        finalizers::decide(&m, gate, Timestamp::now())
    });
    let mut said = Vec::new();
    // what the record keeps: the object as read, when heal8s deleted it or
    // removed its finalizers for real
    let mut kept: Option<Deleted> = None;
    if decision == Finalizers::NotTerminating {
        // the object read, kept and deleted is one and the same
        let uid = obj.metadata.uid.clone();
        let dp = DeleteParams {
            dry_run,
            preconditions: same_object(t).or(uid.map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            })),
            ..DeleteParams::background()
        };
        match api.delete(&t.name, &dp).await {
            Ok(_) => {
                said.push(format!("{}deleted {t}", prefix(dry_run)));
                if !dry_run {
                    kept = Some(deleted::keep(&value, deleted::MAX_BYTES));
                }
            }
            Err(e) if is_not_found(&e) => return done(format!("{t} was already gone")),
            Err(e) => return Err(e.into()),
        }
        x.event(
            t,
            dry_run,
            false,
            "ResourceDeleted",
            format!("heal8s deleted {t}"),
        )
        .await;
    }
    match &decision {
        Finalizers::NotTerminating | Finalizers::None => {}
        Finalizers::Wait { .. } => said.extend(decision.sentence(t)),
        Finalizers::Remove { finalizers, .. } => {
            let pp = PatchParams {
                dry_run,
                ..PatchParams::default()
            };
            api.patch(
                &t.name,
                &pp,
                // the object carries heal8s's mark for as long as it lasts
                &Patch::Merge(
                    &json!({"metadata": {"finalizers": null, "annotations": mark.annotations()}}),
                ),
            )
            .await?;
            if !dry_run {
                kept = Some(
                    deleted::keep(&value, deleted::MAX_BYTES).with_finalizers_removed(finalizers),
                );
            }
            let note = decision.sentence(t).unwrap_or_default();
            tracing::warn!(object = %t, finalizers = ?finalizers, dry_run, "Removed stuck finalizers as a last resort.");
            x.event(t, dry_run, true, "FinalizersRemoved", note.clone())
                .await;
            said.push(format!("{}{note}", prefix(dry_run)));
        }
    }
    done_deleting(said.join("; "), kept)
}
