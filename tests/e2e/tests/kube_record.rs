//! The Remediation CRD heal8s generates is accepted by the API (emulation)
//! and round-trips the Rust type through a real `kube::Client`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use kube::Api;
use kube::api::PostParams;
use receiver_core::names::record_name;
use receiver_core::{RemediationKind, Target, TargetKind};
use receiver_k8s::record::{
    Phase, Remediation, RemediationSpec, RemediationStatus, TargetSpec, TriggerSpec,
};
use serde_json::json;
use testkit::kube::Emulator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_crd_is_served_and_a_remediation_round_trips() {
    let emu = Emulator::start().await.unwrap();
    let yaml = receiver_k8s::record::crd_yaml().unwrap();
    let crd: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    // the emulation serves heal8s.io already; creating the CRD must still be accepted
    let _ = emu.create(crd);
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<Remediation> = Api::namespaced(client, "shop");
    let target = Target::new(TargetKind::Pod, Some("shop"), "api-7d9c-x2");
    let name = record_name(&target, RemediationKind::DeletePod);
    let mut r = Remediation::new(
        &name,
        RemediationSpec {
            trigger: TriggerSpec {
                source: "alert".into(),
                alertname: "KubePodCrashLooping".into(),
                fingerprint: "d8369421dcf3241e".into(),
                labels: [("alertname".to_string(), "KubePodCrashLooping".to_string())].into(),
                first_seen: "2026-11-22T12:52:25Z".into(),
            },
            target: TargetSpec {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: Some("shop".into()),
                name: "api-7d9c-x2".into(),
                container: Some("api".into()),
                workload: None,
                key: target.key(),
            },
            remediation: "delete-pod".into(),
            parameters: json!({"gracePeriodSeconds": 30}),
            mode: "direct".into(),
            approval: None,
        },
    );
    r.status = Some(RemediationStatus {
        phase: Some(Phase::Planned),
        ..RemediationStatus::default()
    });
    let created = api.create(&PostParams::default(), &r).await.unwrap();
    let got = api.get(&name).await.unwrap();
    assert_eq!(got.spec, r.spec);
    assert_eq!(created.spec.parameters["gracePeriodSeconds"], 30);
}

/// `kubectl get remediations` (real kubectl, standalone emulation) prints the CRD's columns.
#[test]
fn real_kubectl_get_remediations_prints_target_action_phase_and_age() {
    let kube = testkit::KubeProcess::start().unwrap();
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(testkit::kubectl_bin().unwrap())
            .arg("--kubeconfig")
            .arg(&kube.kubeconfig)
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "kubectl {args:?}: {text}");
        text
    };
    let crd = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../charts/heal8s/crds/remediations.heal8s.io.yaml");
    kubectl(&["apply", "-f", crd.to_str().unwrap()]);
    let dir = testkit::TempDir::new("rem");
    // (kubectl create sends protobuf, which the emulation does not speak; apply sends JSON)
    let ns = dir.path().join("ns.json");
    std::fs::write(
        &ns,
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}}"#,
    )
    .unwrap();
    kubectl(&["apply", "-f", ns.to_str().unwrap()]);
    let obj = dir.path().join("rem.json");
    std::fs::write(
        &obj,
        json!({"apiVersion": "heal8s.io/v1alpha1", "kind": "Remediation",
               "metadata": {"name": "delete-pod-pod-api-1-0123456789", "namespace": "shop"},
               "spec": {"trigger": {"source": "alert", "alertname": "KubePodCrashLooping", "fingerprint": "f",
                                    "firstSeen": "2026-11-22T12:52:25Z"},
                        "target": {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "api-1",
                                   "key": "Pod/shop/api-1"},
                        "remediation": "delete-pod", "parameters": {}, "mode": "direct"}})
        .to_string(),
    )
    .unwrap();
    kubectl(&["apply", "-f", obj.to_str().unwrap()]);
    let table = kubectl(&["get", "remediations", "-n", "shop"]);
    let header = table.lines().next().unwrap();
    for col in ["NAME", "TARGET", "ACTION", "PHASE", "AGE"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        !header.contains("MODE"),
        "priority-1 columns only with -o wide: {table}"
    );
    assert!(
        table.contains("Pod/shop/api-1") && table.contains("delete-pod"),
        "{table}"
    );
    let wide = kubectl(&["get", "rem", "-n", "shop", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("MODE"), "{wide}");
    assert!(wide.contains("direct"), "{wide}");
}
