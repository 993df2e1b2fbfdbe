//! GitOps-aware direct actions (issue 14) with a real `heal8s serve` against
//! the Kubernetes API emulation: a stale test namespace an Argo CD
//! application manages is refused `gitops_owned` and stays; one Flux manages
//! stays too; an unmanaged one is deleted; a crash-looping pod carrying Argo
//! CD's label is deleted as always (its owner recreates it); and
//! `guard.gitops.allowDelete` lets heal8s delete the managed one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use receiver_core::{OutcomeKind, RefusalReason};
use serde_json::json;
use testkit::kube::{Controller, Emulator};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "gitops-token";
const WAIT: Duration = Duration::from_secs(40);

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

fn namespace(emu: &Emulator, name: &str, labels: serde_json::Value, age_secs: i64) {
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "creationTimestamp": ago(age_secs)}}))
        .unwrap();
}

async fn heal8s(emu: &Emulator, dir: &TempDir, guard: &str) -> Heal8s {
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"profile: test-cluster
detectors:
  resync: 1s
  pods: {{waitingAfter: 1s}}
  namespaces: {{enabled: true, watch: ["test-*"], staleAge: 10m}}
guard:
  cooldown: 1s
{guard}
routes:
- {{name: stale-ns, matchers: ['alertname="Heal8sStaleNamespace"'], remediation: delete-namespace}}
- {{name: crashloop, matchers: ['alertname="Heal8sPodCrashLooping"'], remediation: delete-pod}}
"#
        ),
    )
    .unwrap();
    Heal8s::start(
        TOKEN,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_namespaces_stay_unmanaged_ones_go_and_managed_pods_are_healed() {
    let emu = Emulator::start().await.unwrap();
    let _played = emu.play(&[Controller::Kubelet, Controller::Namespace]);
    namespace(&emu, "heal8s", json!({}), 3600);
    namespace(&emu, "shop", json!({}), 3600);
    namespace(
        &emu,
        "test-argo",
        json!({"argocd.argoproj.io/instance": "e2e-env"}),
        3600,
    );
    namespace(
        &emu,
        "test-flux",
        json!({"kustomize.toolkit.fluxcd.io/name": "e2e", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}),
        3600,
    );
    namespace(&emu, "test-plain", json!({}), 3600);
    emu.create(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "lastTransitionTime": ago(600)}]}
    }))
    .unwrap();
    // a bare crash-looping pod carrying Argo CD's label (as a chart's
    // template labels can put it on pods)
    emu.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api-1", "namespace": "shop",
                     "labels": {"app": "api", "argocd.argoproj.io/instance": "shop"}},
        "spec": {"nodeName": "w1", "containers": [{"name": "api", "image": "registry/app:1"}]},
        "status": {"phase": "Running", "startTime": ago(600),
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ago(300)}],
            "containerStatuses": [{"name": "api", "image": "registry/app:1", "imageID": "",
                "ready": false, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    }))
    .unwrap();
    let dir = TempDir::new("gitops-owned");
    let h = heal8s(&emu, &dir, "").await;

    let done = eventually(
        WAIT,
        "the plain namespace and the pod gone, the managed refused",
        || {
            let (emu, h) = (&emu, &h);
            async move {
                let outcomes = h.outcomes().await;
                let refused = |ns: &str| {
                    outcomes.iter().any(|o| {
                        o.reason == Some(RefusalReason::GitopsOwned)
                            && o.target.as_deref() == Some(&format!("Namespace {ns}"))
                    })
                };
                (emu.get("v1", "Namespace", "", "test-plain").is_none()
                    && emu.get("v1", "Pod", "shop", "api-1").is_none()
                    && refused("test-argo")
                    && refused("test-flux"))
                .then_some(outcomes)
            }
        },
    )
    .await;
    let outcomes = done.unwrap_or_else(|e| panic!("{e}\n{}", h.proc.output()));
    let argo = outcomes
        .iter()
        .find(|o| o.target.as_deref() == Some("Namespace test-argo"))
        .unwrap();
    assert!(
        argo.message.contains("Argo CD application e2e-env")
            && argo.message.contains("allowDelete"),
        "{}",
        argo.message
    );
    assert!(
        outcomes.iter().any(|o| o.result == OutcomeKind::Acted
            && o.remediation.map(|r| r.as_str()) == Some("delete-pod")),
        "the managed pod is healed"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for ns in ["test-argo", "test-flux"] {
        let live = emu.get("v1", "Namespace", "", ns).unwrap();
        assert!(
            live["metadata"]["deletionTimestamp"].is_null(),
            "{ns} was never deleted"
        );
    }
    assert_eq!(
        h.metric(r#"heal8s_guard_refusals_total{reason="gitops_owned"}"#)
            .await
            .min(1.0),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_delete_lets_heal8s_delete_a_managed_namespace() {
    let emu = Emulator::start().await.unwrap();
    let _played = emu.play(&[Controller::Kubelet, Controller::Namespace]);
    namespace(&emu, "heal8s", json!({}), 3600);
    namespace(
        &emu,
        "test-argo",
        json!({"argocd.argoproj.io/instance": "e2e-env"}),
        3600,
    );
    let dir = TempDir::new("gitops-allow");
    let h = heal8s(&emu, &dir, "  gitops: {allowDelete: true}").await;
    let gone = eventually(WAIT, "the managed namespace deleted", || {
        let emu = &emu;
        async move {
            emu.get("v1", "Namespace", "", "test-argo")
                .is_none()
                .then_some(())
        }
    })
    .await;
    if let Err(e) = gone {
        panic!("{e}\n{}", h.proc.output());
    }
    assert_eq!(
        h.policy().await["guard"]["gitops"],
        json!({"owned": "refuse", "allowDelete": true})
    );
}
