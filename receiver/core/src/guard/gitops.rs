//! GitOps-aware direct actions: an object an Argo CD application or a Flux
//! Kustomization/HelmRelease manages is re-created or reverted by its
//! controller, so a direct change to it (a cordon, deleting a namespace or a
//! custom resource) fights that controller in a loop. Deleting a pod does not
//! (the pod is not in git; its owner recreates it), and a pull request is
//! already the GitOps way.
//!
//! Owns: recognising the managers' marks on the live object, and the refusal
//! (`gitops_owned`) the policy's `guard.gitops` asks for. Pure.

use crate::facts::{Facts, ObjectMeta};
use crate::plan::Plan;
use crate::policy::{GitOpsGuard, GitOpsOwned};
use crate::remediation::RemediationKind;

use super::{Refusal, RefusalReason};

/// Argo CD's application label (its default tracking method).
pub const ARGO_INSTANCE: &str = "argocd.argoproj.io/instance";
/// Argo CD's annotation tracking method.
pub const ARGO_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Flux's labels on what a Kustomization or a HelmRelease applied.
pub const FLUX_KUSTOMIZE: &str = "kustomize.toolkit.fluxcd.io/";
pub const FLUX_HELM: &str = "helm.toolkit.fluxcd.io/";

/// Who manages `meta`, in words (`Argo CD application shop`), if a GitOps
/// controller does.
pub fn manager(meta: &ObjectMeta) -> Option<String> {
    if let Some(app) = meta.labels.get(ARGO_INSTANCE).filter(|v| !v.is_empty()) {
        return Some(format!("Argo CD application {app} (label {ARGO_INSTANCE})"));
    }
    if let Some(id) = meta
        .annotations
        .get(ARGO_TRACKING_ID)
        .filter(|v| !v.is_empty())
    {
        let app = id.split(':').next().unwrap_or(id);
        return Some(format!(
            "Argo CD application {app} (annotation {ARGO_TRACKING_ID})"
        ));
    }
    for (prefix, what) in [
        (FLUX_KUSTOMIZE, "Kustomization"),
        (FLUX_HELM, "HelmRelease"),
    ] {
        if meta.labels.keys().any(|k| k.starts_with(prefix)) {
            let name = meta.labels.get(&format!("{prefix}name"));
            let ns = meta.labels.get(&format!("{prefix}namespace"));
            let named = match (ns, name) {
                (Some(ns), Some(n)) => format!(" {ns}/{n}"),
                (None, Some(n)) => format!(" {n}"),
                _ => String::new(),
            };
            return Some(format!("Flux {what}{named} (labels {prefix}*)"));
        }
    }
    None
}

/// Whether `kind` removes the object it acts on.
fn deletes(kind: RemediationKind) -> bool {
    matches!(
        kind,
        RemediationKind::DeleteNamespace
            | RemediationKind::CleanupResource
            | RemediationKind::DeleteNode
    )
}

/// The refusal for `plan` on its live object, if a GitOps controller manages
/// that object and the policy does not let heal8s change it directly.
pub fn refusal(cfg: &GitOpsGuard, plan: &Plan, facts: &Facts) -> Option<Refusal> {
    let kind = plan.kind();
    // a pod is recreated by its owner whatever manages the owner; a pull
    // request is the GitOps way; notify-only changes nothing
    if !kind.is_mutating()
        || kind.is_declarative()
        || matches!(kind, RemediationKind::DeletePod | RemediationKind::EvictPod)
    {
        return None;
    }
    let by = manager(facts.object.as_ref()?)?;
    let target = plan
        .target
        .as_ref()
        .map_or_else(|| "the target".to_string(), ToString::to_string);
    // a delete is governed by allowDelete alone; other changes by `owned`
    if deletes(kind) {
        if cfg.allow_delete {
            return None;
        }
        return Some(Refusal::new(
            RefusalReason::GitopsOwned,
            format!(
                "{target} is managed by {by}: its controller would re-create what {kind} deletes; \
                 delete it in git, or set guard.gitops.allowDelete to let heal8s delete it"
            ),
        ));
    }
    if cfg.owned == GitOpsOwned::Refuse {
        return Some(Refusal::new(
            RefusalReason::GitopsOwned,
            format!(
                "{target} is managed by {by}: its controller would revert {kind}; \
                 fix it in git, or set guard.gitops.owned: act to act anyway"
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::LiveState;
    use crate::policy::Policy;
    use crate::testutil::signal;

    fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn plan(remediation: &str, labels: &[(&str, &str)]) -> Plan {
        let p = Policy::from_yaml(&format!(
            "routes: [{{remediation: {remediation}, params: {{namePattern: 'test-.*'}}}}]"
        ))
        .or_else(|_| Policy::from_yaml(&format!("routes: [{{remediation: {remediation}}}]")))
        .unwrap();
        Plan::build(&signal(labels), &p.routes[0]).unwrap()
    }

    fn facts(m: ObjectMeta) -> Facts {
        Facts {
            object: Some(m),
            state: LiveState::Holds("stale".into()),
            ..Facts::default()
        }
    }

    #[test]
    fn argo_and_flux_marks_are_recognised_and_plain_objects_are_not() {
        let by = |l: &[(&str, &str)], a: &[(&str, &str)]| manager(&meta(l, a));
        assert_eq!(
            by(&[(ARGO_INSTANCE, "shop")], &[]).unwrap(),
            "Argo CD application shop (label argocd.argoproj.io/instance)"
        );
        assert!(
            by(&[], &[(ARGO_TRACKING_ID, "shop:apps/Deployment:shop/api")])
                .unwrap()
                .starts_with("Argo CD application shop ")
        );
        assert_eq!(
            by(
                &[
                    ("kustomize.toolkit.fluxcd.io/name", "apps"),
                    ("kustomize.toolkit.fluxcd.io/namespace", "flux-system")
                ],
                &[]
            )
            .unwrap(),
            "Flux Kustomization flux-system/apps (labels kustomize.toolkit.fluxcd.io/*)"
        );
        assert!(
            by(&[("helm.toolkit.fluxcd.io/name", "redis")], &[])
                .unwrap()
                .starts_with("Flux HelmRelease redis")
        );
        assert_eq!(by(&[("app", "api"), (ARGO_INSTANCE, "")], &[]), None);
    }

    #[test]
    fn a_managed_namespace_is_never_deleted_unless_allowed_and_pods_are_always_healed() {
        let ns = plan(
            "delete-namespace",
            &[
                ("alertname", "Heal8sStaleNamespace"),
                ("namespace", "test-1"),
            ],
        );
        let managed = facts(meta(&[(ARGO_INSTANCE, "e2e")], &[]));
        let mut cfg = GitOpsGuard::default();
        let r = refusal(&cfg, &ns, &managed).unwrap();
        assert_eq!(r.reason, RefusalReason::GitopsOwned);
        assert!(r.message.contains("allowDelete"), "{}", r.message);
        // acting anyway does not cover deletion...
        cfg.owned = GitOpsOwned::Act;
        assert!(refusal(&cfg, &ns, &managed).is_some());
        // ...allowDelete does, whatever `owned` says
        cfg.allow_delete = true;
        assert!(refusal(&cfg, &ns, &managed).is_none());
        cfg.owned = GitOpsOwned::Refuse;
        assert!(refusal(&cfg, &ns, &managed).is_none());
        // an unmanaged namespace is no business of this rule
        assert!(refusal(&GitOpsGuard::default(), &ns, &facts(meta(&[], &[]))).is_none());
        // a pod of a managed workload is deleted as always
        let pod = plan(
            "delete-pod",
            &[("alertname", "A"), ("namespace", "shop"), ("pod", "api-1")],
        );
        assert!(refusal(&GitOpsGuard::default(), &pod, &managed).is_none());
    }

    #[test]
    fn a_cordon_of_a_managed_node_is_refused_unless_the_policy_says_act() {
        let drain = plan(
            "drain-node",
            &[("alertname", "KubeNodeNotReady"), ("node", "w1")],
        );
        let flux = facts(meta(&[("kustomize.toolkit.fluxcd.io/name", "infra")], &[]));
        let mut cfg = GitOpsGuard::default();
        let r = refusal(&cfg, &drain, &flux).unwrap();
        assert!(r.message.contains("owned: act"), "{}", r.message);
        cfg.owned = GitOpsOwned::Act;
        assert!(refusal(&cfg, &drain, &flux).is_none());
        // without a live read nothing is known: other rules decide
        assert!(refusal(&GitOpsGuard::default(), &drain, &Facts::unknown()).is_none());
    }
}
